//! twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
//!
//! Code map (dependencies point down this list):
//!
//! - [`diag`]: diagnostics for bad input, compiler-style.
//! - [`engine`]: virtual time, the event queue, the RNG tree, the run loop. No wall clock.
//! - [`cluster`]: nodes and GPUs, the scheduler (filter, score, preempt), quota admission and
//!   ReplicaSet creates, Deployment rollout steps; pure decisions, no clock, no random draws.
//!
//! Invariants held across the crate: virtual time only inside a run; one seeded RNG tree;
//! ordered iteration wherever order reaches output; bad input is an error naming file,
//! document and line, never a panic.

pub mod cluster;
pub mod diag;
pub mod engine;
