//! twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
//!
//! Code map (dependencies point down this list; `live` stands apart, the only networked part):
//!
//! - [`diag`]: diagnostics for bad input, compiler-style: file:line:col, the line, a caret.
//! - [`engine`]: virtual time, the event queue, the RNG tree, the run loop. No wall clock.
//! - [`manifests`]: YAML/JSON files into a typed [`manifests::Inventory`], with file, document and line:column; the topology.
//! - [`lint`]: cross-object findings over the inventory (`twin lint`).
//! - [`cluster`]: nodes and GPUs, the scheduler, quota admission, rollouts, the kubelet's probes and back-off.
//! - [`workload`]: arrival processes (trace replay among them), service-time distributions, the GPU calibration, the per-pod queue, queueing theory oracles.
//! - [`mesh`]: Istio routing, subsets, load balancers, connection pools, outlier detection, AuthorizationPolicy.
//! - [`telemetry`]: the in-memory series store the simulated scrape writes and PromQL reads.
//! - [`autoscale`]: the HPA: a pure decision, `hpa::recommend(&HpaCase) -> Decision`.
//! - [`promql`]: PromQL evaluation with Prometheus 2.42 semantics, rule groups, alerts, SLOs, promtool tests.
//! - [`live`]: the only networked code: the stand-in server and the drivers of real peers on loopback.
//!
//! Invariants held across the crate: virtual time only inside a run; one seeded RNG tree;
//! ordered iteration wherever order reaches output; bad input is an error naming file,
//! document and line, never a panic.

pub mod autoscale;
pub mod cluster;
pub mod diag;
pub mod engine;
pub mod lint;
pub mod live;
pub mod manifests;
pub mod mesh;
pub mod promql;
pub mod report;
pub mod scenario;
pub mod telemetry;
pub mod workload;
