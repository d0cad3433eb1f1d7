//! twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
//!
//! Code map (dependencies point down this list):
//!
//! - [`diag`]: diagnostics for bad input, compiler-style.
//! - [`engine`]: virtual time, the event queue, the RNG tree, the run loop. No wall clock.
//! - [`manifests`]: YAML/JSON files into a typed [`manifests::Inventory`], with file, document and line:column.
//! - [`lint`]: cross-object findings over a loaded inventory. Reads, never simulates.
//!
//! Invariants held across the crate: virtual time only inside a run; one seeded RNG tree;
//! ordered iteration wherever order reaches output; bad input is an error naming file,
//! document and line, never a panic.

pub mod diag;
pub mod engine;
pub mod manifests;
pub mod lint;
