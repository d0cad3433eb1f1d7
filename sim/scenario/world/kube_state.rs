//! The kube-state-metrics series of the World (kube-state-metrics v2.x names and labels, all
//! with `job="kube-state-metrics"`), written at each scrape when the scenario assumes the
//! cluster exporters are scraped (`assumptions.clusterExporters`):
//!
//! - `kube_deployment_spec_replicas{namespace, deployment}`: `spec.replicas`;
//! - `kube_deployment_status_replicas_available{namespace, deployment}`: pods available
//!   (Ready for `minReadySeconds`, not terminating);
//! - `kube_pod_status_phase{namespace, pod, phase}`: one series per pod and phase (`Pending`,
//!   `Running`, `Succeeded`, `Failed`, `Unknown`), 1 for the pod's phase and 0 for the others;
//! - `kube_horizontalpodautoscaler_status_desired_replicas{namespace, horizontalpodautoscaler}`:
//!   the HPA's last decision (its target's `spec.replicas` before the first sync).
//!
//! Phases follow the Pod API: a pod is `Pending` until its container started (unbound, or
//! ContainerCreating), `Running` afterwards, in CrashLoopBackOff and while terminating too (the
//! restart policy is Always, so it is never Succeeded or Failed).
//!
//! A pod or object that is gone drops out of kube-state-metrics' answer, and Prometheus marks
//! a series that a successful scrape no longer returns stale; so does this scrape, for these
//! series.

use crate::cluster::runtime::PodStatus;
use crate::telemetry::store::{Matcher, is_stale_nan, stale_nan};

use super::World;

const JOB: &str = "kube-state-metrics";
const NAMES: [&str; 4] = [
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
    "kube_pod_status_phase",
    "kube_horizontalpodautoscaler_status_desired_replicas",
];
const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

impl World {
    pub(super) fn scrape_kube_state_metrics(&mut self, now: crate::engine::SimTime) {
        let t_ms = now.as_millis();
        let mut rows: Vec<(&'static str, Vec<(String, String)>, f64)> = Vec::new();
        let job = ("job".to_string(), JOB.to_string());
        for (idx, d) in self.cluster.deployments.iter().enumerate() {
            let labels = vec![
                ("namespace".to_string(), d.model.namespace.clone()),
                ("deployment".to_string(), d.model.name.clone()),
                job.clone(),
            ];
            let min_ready =
                crate::engine::SimDuration::from_secs(d.model.min_ready_seconds.max(0) as u64);
            let available = self
                .cluster
                .pods
                .values()
                .filter(|p| p.deployment == idx && p.is_available(now, min_ready))
                .count();
            rows.push((
                "kube_deployment_spec_replicas",
                labels.clone(),
                f64::from(d.replicas),
            ));
            rows.push((
                "kube_deployment_status_replicas_available",
                labels,
                available as f64,
            ));
        }
        for pod in self.cluster.pods.values() {
            let phase = match pod.status {
                PodStatus::Pending { .. } | PodStatus::ContainerCreating => "Pending",
                PodStatus::Running
                | PodStatus::CrashLoopBackOff { .. }
                | PodStatus::Terminating => "Running",
            };
            for candidate in PHASES {
                rows.push((
                    "kube_pod_status_phase",
                    vec![
                        ("namespace".to_string(), pod.spec.namespace.clone()),
                        ("pod".to_string(), pod.name.clone()),
                        ("phase".to_string(), candidate.to_string()),
                        job.clone(),
                    ],
                    if candidate == phase { 1.0 } else { 0.0 },
                ));
            }
        }
        for hpa in &self.hpas {
            let target = &self.cluster.deployments[hpa.deployment];
            let desired = self
                .hpa_records
                .iter()
                .rev()
                .find(|r| r.hpa == hpa.controller.name)
                .map_or(target.replicas, |r| r.desired);
            rows.push((
                "kube_horizontalpodautoscaler_status_desired_replicas",
                vec![
                    ("namespace".to_string(), target.model.namespace.clone()),
                    (
                        "horizontalpodautoscaler".to_string(),
                        hpa.controller.name.clone(),
                    ),
                    job.clone(),
                ],
                f64::from(desired),
            ));
        }
        for (name, labels, value) in rows {
            self.append(&labels, name, &[], t_ms, value);
        }
        // Series of objects that are gone: stale from this scrape on.
        let stale = stale_nan();
        for name in NAMES {
            let matchers = [Matcher::equal("__name__", name), Matcher::equal("job", JOB)];
            for id in self.storage.store.select(&matchers) {
                let last = self.storage.store.series(id).samples().last().copied();
                if last.is_some_and(|s| s.t_ms < t_ms && !is_stale_nan(s.value)) {
                    let _ = self.storage.store.append_to(id, t_ms, stale);
                }
            }
        }
    }
}
