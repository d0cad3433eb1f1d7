//! `cluster`: nodes and their GPUs, the pods bound to them, the default kube-scheduler
//! (filter, score, preempt), ResourceQuota admission, the ReplicaSet controller's
//! quota-limited pod creation and the Deployment controller's rollout step, each decision a
//! pure function.
//!
//! Follows Kubernetes v1.35 by default (spec/kubernetes.md §2–§4, Appendix C); a case or
//! topology may pin an older `kubernetesVersion` where upstream's wording or rules changed.
//!
//! Invariants: nothing here reads a clock or draws a random number (upstream's random score
//! tie-break is replaced by the smallest node name, and said so in the output); iteration
//! that reaches output follows node order, bind order or a `BTreeMap`; a scheduling cycle
//! never mutates the cluster, binding does; bad case input is a [`ClusterError`] carrying
//! diagnostics, never a panic.
//!
//! ```text
//! case file ──> case::load ──> ClusterState + PodSpec ──> schedule ──> Placement ──> explain
//!                                                     └─> quota::admit ──> charged quotas | QuotaRejection
//! PodSpec template + quotas ──> replicaset::create_pods ──> CreateOutcome (FailedCreate)
//! RolloutState ──> rollout::rollout_step ──> RolloutStep
//! ```

pub mod case;
pub mod gpu;
pub mod kubelet;
pub mod lower;
pub mod model;
pub mod quantity;
pub mod quota;
pub mod replicaset;
pub mod rollout;
pub mod runtime;
pub mod schedule;
pub mod state;

pub use gpu::{DeviceOccupancy, GpuDevice, GpuError, GpuSharing, NodeGpus};
pub use model::{Node, PodSpec, Resources};
pub use schedule::{KubernetesVersion, Placement, SchedulerConfig, schedule};
pub use state::{BoundPod, ClusterState, Nominated, PodId};

use crate::diag::Diagnostics;

/// Everything that can go wrong in `cluster` with bad input.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("duplicate node name {0:?}")]
    DuplicateNode(String),
    #[error("pod {pod:?} is bound to node {node:?}, which does not exist")]
    UnknownNode { pod: String, node: String },
    #[error("pod {pod:?} cannot get its GPUs")]
    Gpu {
        pod: String,
        #[source]
        source: GpuError,
    },
    #[error("invalid schedule case")]
    Case(#[source] Diagnostics),
}

#[cfg(test)]
mod tests;
