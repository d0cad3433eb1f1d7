//! The cluster: nodes, the scheduler, quota, rollouts and the pod lifecycle.

pub mod kubelet;
