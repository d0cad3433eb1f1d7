//! GPUs on a node and how the NVIDIA device plugin shares them.
//!
//! Mirrors the sharing settings of NVIDIA's k8s-device-plugin (v0.15 and later:
//! `sharing.timeSlicing` and `sharing.mps` with `replicas`). Without sharing each physical
//! GPU is one unit of `nvidia.com/gpu`. With `replicas: N` the plugin advertises every
//! physical GPU as N units, so a node with 4 GPUs and 4 replicas shows `nvidia.com/gpu: 16`.
//! The scheduler only counts units; which physical device a unit lands on is the device
//! plugin's choice at allocation time, outside the scheduler. We place units on the
//! least-occupied device first (ties: lowest index), which keeps sharing even and the choice
//! deterministic.
//!
//! Invariants: a device never holds more units than its replica count; a pod's units are
//! released all at once. `workload` reads [`NodeGpus::occupancy`] to slow down co-located
//! pods, `telemetry` to report per-GPU utilization and memory.

use std::collections::BTreeMap;

use crate::cluster::state::PodId;

/// How physical GPUs are shared between pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuSharing {
    /// One unit per GPU, exclusive.
    #[default]
    Exclusive,
    /// Device plugin time-slicing: each GPU is `replicas` units; pods interleave in time.
    TimeSlicing { replicas: u32 },
    /// CUDA MPS: each GPU is `replicas` units, each with an equal share of memory and compute.
    Mps { replicas: u32 },
}

impl GpuSharing {
    pub fn replicas(self) -> u32 {
        match self {
            GpuSharing::Exclusive => 1,
            GpuSharing::TimeSlicing { replicas } | GpuSharing::Mps { replicas } => replicas.max(1),
        }
    }
}

/// One physical GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuDevice {
    /// Product class, e.g. `A100-SXM4-80GB`.
    pub class: String,
    pub memory_bytes: u64,
}

/// A node's GPUs, the sharing mode, and which pod holds which units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeGpus {
    pub devices: Vec<GpuDevice>,
    pub sharing: GpuSharing,
    /// Per device: pod -> units held on it.
    held: Vec<BTreeMap<PodId, u32>>,
}

/// What one physical GPU is doing right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOccupancy {
    pub device_index: usize,
    pub units_used: u32,
    pub units_total: u32,
    /// Pods sharing the device, with the units each holds.
    pub pods: Vec<(PodId, u32)>,
    /// Memory each unit may use: the whole device when time-sliced (no isolation), an equal
    /// share under MPS.
    pub memory_bytes_per_unit: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    #[error("{requested} nvidia.com/gpu unit(s) requested but only {free} free on the node")]
    NotEnoughUnits { requested: u32, free: u32 },
}

impl NodeGpus {
    pub fn new(devices: Vec<GpuDevice>, sharing: GpuSharing) -> Self {
        let held = vec![BTreeMap::new(); devices.len()];
        NodeGpus {
            devices,
            sharing,
            held,
        }
    }

    /// The `nvidia.com/gpu` amount the device plugin advertises.
    pub fn advertised_units(&self) -> i64 {
        self.devices.len() as i64 * i64::from(self.sharing.replicas())
    }

    pub fn free_units(&self) -> u32 {
        let total = self.devices.len() as u32 * self.sharing.replicas();
        total
            - self
                .held
                .iter()
                .map(|d| d.values().sum::<u32>())
                .sum::<u32>()
    }

    /// Hands `units` units to `pod`, least-occupied device first. Returns the devices used.
    pub fn allocate(&mut self, pod: PodId, units: u32) -> Result<Vec<usize>, GpuError> {
        let free = self.free_units();
        if units > free {
            return Err(GpuError::NotEnoughUnits {
                requested: units,
                free,
            });
        }
        let replicas = self.sharing.replicas();
        let mut used = Vec::new();
        for _ in 0..units {
            let (device_index, _) = self
                .held
                .iter()
                .enumerate()
                .map(|(idx, d)| (idx, d.values().sum::<u32>()))
                .filter(|(_, n)| *n < replicas)
                .min_by_key(|(idx, n)| (*n, *idx))
                .expect("free units were counted above");
            *self.held[device_index].entry(pod).or_insert(0) += 1;
            if !used.contains(&device_index) {
                used.push(device_index);
            }
        }
        used.sort_unstable();
        Ok(used)
    }

    /// Releases every unit `pod` holds.
    pub fn release(&mut self, pod: PodId) {
        for device in &mut self.held {
            device.remove(&pod);
        }
    }

    pub fn occupancy(&self) -> Vec<DeviceOccupancy> {
        let replicas = self.sharing.replicas();
        self.devices
            .iter()
            .zip(&self.held)
            .enumerate()
            .map(|(device_index, (device, held))| DeviceOccupancy {
                device_index,
                units_used: held.values().sum(),
                units_total: replicas,
                pods: held.iter().map(|(p, n)| (*p, *n)).collect(),
                memory_bytes_per_unit: match self.sharing {
                    GpuSharing::Mps { .. } => device.memory_bytes / u64::from(replicas),
                    _ => device.memory_bytes,
                },
            })
            .collect()
    }
}
