//! `autoscale`: the HorizontalPodAutoscaler decision and the HPA case files that exercise it.
//!
//! - [`hpa`] owns the pure decision `hpa::recommend(&HpaCase) -> Decision`: one reconcile of one
//!   HPA (autoscaling/v2) at "now", with the controller's memory (recommendation history, scale
//!   events) passed in and handed back, so an engine can call it on every 15 s sync.
//! - [`case_file`] reads the case format of `spec/kubernetes.md` Appendix A, rejects what the API
//!   server would reject, and compares a decision with a case's `expected` block.
//!
//! Invariants: nothing here reads a clock or draws random numbers; every time is an age relative
//! to the reconcile instant; iteration that reaches output is over ordered maps. The model follows
//! kube-controller-manager v1.35 (`spec/kubernetes.md` §1) unless a case names an older
//! `kubernetesVersion`, in which case the older rules of Appendix C apply.

pub mod case_file;
pub mod controller;
pub mod hpa;
