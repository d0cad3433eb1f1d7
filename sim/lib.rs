//! twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
//!
//! Code map (dependencies point down this list):
//!
//! - [`diag`]: diagnostics for bad input, compiler-style.
//! - [`engine`]: virtual time, the event queue, the RNG tree, the run loop. No wall clock.
//! - [`mesh`]: Istio routing and authorization, Envoy load balancing, pools and outlier detection, as pure state machines.
//! - [`workload`]: arrival processes, service-time distributions, the pod queue. Draws only from handed streams.
//!
//! Invariants held across the crate: virtual time only inside a run; one seeded RNG tree;
//! ordered iteration wherever order reaches output; bad input is an error naming file,
//! document and line, never a panic.

pub mod diag;
pub mod engine;
pub mod mesh;
pub mod workload;
