//! twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
//!
//! Code map (dependencies point down this list):
//!
//! - [`diag`]: diagnostics for bad input, compiler-style.
//! - [`engine`]: virtual time, the event queue, the RNG tree, the run loop. No wall clock.
//! - [`telemetry`]: the in-memory series store (label sets, samples, stale markers), ordered by label set.
//! - [`promql`]: PromQL evaluation over the store with Prometheus 2.42 semantics; the promqltest runner.
//!   Also rule groups, alert states, templating, Sloth SLOs and the promtool rule-test runner.
//!
//! Invariants held across the crate: virtual time only inside a run; one seeded RNG tree;
//! ordered iteration wherever order reaches output; bad input is an error naming file,
//! document and line, never a panic.

pub mod diag;
pub mod engine;
pub mod promql;
pub mod telemetry;
