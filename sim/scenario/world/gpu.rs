//! GPU work under sharing: a calibrated pod's service time is the calibration's GPU time for its
//! device's class, times the slowdown for the number of pods serving on that device.
//!
//! Modelling choices: a pod "serves" on a device while its container runs (it holds the model
//! and its clients' contexts whether or not a request is in flight), so co-tenants are counted
//! when containers start and stop, never per request; a pod holding units on several devices
//! takes the slowest of them; a request's time is fixed when it starts, so a co-tenant that
//! starts or stops later does not change it. Non-GPU pods and uncalibrated GPU pods count as
//! co-tenants too (they hold the device) but keep their own service time.
//!
//! Invariant: the per-request cost is one multiplication; [`World::seat_gpu_pods`] runs only
//! when the set of serving pods changed, and every calibrated pod is seated before it can be an
//! endpoint.

use std::collections::BTreeMap;

use super::{ServiceModel, World};
use crate::cluster::state::PodId;
use crate::engine::{SimDuration, SimRng};

/// Where a calibrated pod does its GPU work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct GpuSeat {
    /// Index into its model's `GpuWork::classes`.
    class: usize,
    /// The co-tenant slowdown on its device, at least 1.
    slowdown: f64,
}

/// One request's service time on a pod of `model` seated at `seat`.
#[inline]
pub(super) fn service_time(
    model: &ServiceModel,
    seat: Option<GpuSeat>,
    rng: &mut SimRng,
) -> SimDuration {
    match &model.gpu_work {
        None => model.service_time.sample(rng),
        Some(work) => {
            let seat = seat.expect("a calibrated pod is seated on its GPU before it serves");
            let alone = work.classes[seat.class].service_time.sample(rng);
            SimDuration::from_secs_f64(alone.as_secs_f64() * seat.slowdown)
        }
    }
}

impl World {
    /// Recounts the serving pods on every GPU device and re-seats each calibrated pod.
    pub(super) fn seat_gpu_pods(&mut self) {
        if !self.models.iter().flatten().any(|m| m.gpu_work.is_some()) {
            return;
        }
        let serving: BTreeMap<PodId, super::PodKey> = self
            .cluster
            .pods
            .values()
            .filter(|p| self.pods.contains_key(&p.key))
            .filter_map(|p| p.bound.map(|id| (id, p.key)))
            .collect();
        // Per serving pod: (GPU class, most co-tenants on any of its devices).
        let mut seats: BTreeMap<super::PodKey, (&str, u32)> = BTreeMap::new();
        for node in self.cluster.state.nodes() {
            let Some(gpus) = &node.gpus else { continue };
            for occupancy in gpus.occupancy() {
                let tenants: Vec<super::PodKey> = occupancy
                    .pods
                    .iter()
                    .filter_map(|(id, _)| serving.get(id).copied())
                    .collect();
                let class = gpus.devices[occupancy.device_index].class.as_str();
                for key in &tenants {
                    let seat = seats.entry(*key).or_insert((class, 0));
                    seat.1 = seat.1.max(tenants.len() as u32);
                }
            }
        }
        for (key, serve) in self.pods.iter_mut() {
            let Some(pod) = self.cluster.pods.get(&key) else {
                continue;
            };
            let Some(work) = &self.models[pod.deployment][serve.model].gpu_work else {
                continue;
            };
            serve.gpu = seats.get(&key).and_then(|(class, tenants)| {
                let class = work.class_index(class)?;
                Some(GpuSeat {
                    class,
                    slowdown: work.classes[class].slowdown.factor(*tenants),
                })
            });
        }
    }
}
