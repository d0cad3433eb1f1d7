//! The ReplicaSet controller's pod creation against ResourceQuota (spec/kubernetes.md §3.3):
//! slow-start batches of 1, 2, 4, ..., the first batch with a rejected create stops the
//! rest, each rejection a `FailedCreate` event, and the `ReplicaFailure` condition carrying
//! the error. Follows pkg/controller/replicaset (manageReplicas, slowStartBatch) of
//! Kubernetes v1.35; a sync creates at most 500 pods (`burstReplicas`).
//!
//! Invariants: pods are admitted one at a time against the quotas as charged so far (the
//! API server serializes the parallel creates of a batch); a rejected pod charges nothing.

use crate::cluster::model::PodSpec;
use crate::cluster::quota::{QuotaObject, ResourceQuota, admit};

/// The most pods one sync creates or deletes.
pub const BURST_REPLICAS: usize = 500;

/// What one sync's creates did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOutcome {
    pub created: usize,
    pub rejected: usize,
    /// Pods never attempted this sync (after a failed batch, or beyond the burst limit);
    /// the next sync tries again.
    pub not_attempted: usize,
    /// One `FailedCreate` Warning event message per rejected pod.
    pub failed_create_events: Vec<String>,
    /// `ReplicaFailure=True, reason FailedCreate` with this message, when a create failed.
    pub replica_failure: Option<String>,
    /// The quotas with the created pods charged.
    pub quotas: Vec<ResourceQuota>,
}

/// Creates `missing` pods from `template` (named from `generate_name`, e.g. `web-7d9f8b6c5-`)
/// against `quotas`.
pub fn create_pods(
    quotas: &[ResourceQuota],
    template: &PodSpec,
    generate_name: &str,
    missing: usize,
) -> CreateOutcome {
    let wanted = missing.min(BURST_REPLICAS);
    let mut quotas = quotas.to_vec();
    let (mut created, mut rejected, mut attempted) = (0, 0, 0);
    let mut failed_create_events = Vec::new();
    let mut first_error = None;
    let mut batch = wanted.min(1);
    while batch > 0 {
        let mut batch_failed = false;
        for _ in 0..batch {
            attempted += 1;
            match admit(&quotas, &QuotaObject::Pod(template)) {
                Ok(charged) => {
                    quotas = charged;
                    created += 1;
                }
                Err(rejection) => {
                    rejected += 1;
                    batch_failed = true;
                    failed_create_events.push(rejection.failed_create_event(generate_name));
                    first_error.get_or_insert_with(|| rejection.forbidden("pods", generate_name));
                }
            }
        }
        if batch_failed {
            break;
        }
        batch = (2 * batch).min(wanted - attempted);
    }
    CreateOutcome {
        created,
        rejected,
        not_attempted: missing - attempted,
        failed_create_events,
        replica_failure: first_error,
        quotas,
    }
}

#[cfg(test)]
mod tests;
