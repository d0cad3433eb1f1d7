//! Open-loop load and the service model of one pod: arrival processes, service-time
//! distributions, the pod's concurrency-limited FIFO queue, and the queueing theory the model
//! is checked against.
//!
//! Data flow: an [`arrivals::Arrivals`] stream yields request times; each request enters a
//! [`queue::PodQueue`], which starts it at once or holds it in its backlog; a started request
//! takes a time drawn from a [`service::ServiceTimeSampler`]. [`single_pod`] wires these onto
//! the [`crate::engine::Engine`], and [`theory`] gives the closed forms (Erlang C,
//! Pollaczek–Khinchine) with the batch-means interval used to compare them. [`trace`] reads
//! recorded load for replay, and [`calibration`] the measured (or estimated) GPU service
//! times and co-tenant slowdowns that GPU pods serve by.
//!
//! Invariants: `workload` draws randomness only from the [`crate::engine::SimRng`] streams it is
//! handed and never reads a wall clock; a distribution or process with an impossible shape
//! (negative rate, p99 below p50, an empty histogram) is refused when it is built, so sampling
//! never fails; arrival times never go backwards.

pub mod arrivals;
pub mod calibration;
pub mod queue;
pub mod service;
pub mod single_pod;
pub mod theory;
pub mod trace;

pub use arrivals::{ArrivalProcess, Arrivals, Spacing};
pub use queue::{Admission, PodQueue, Started};
pub use service::{HistogramBucket, ServiceTime, ServiceTimeSampler};

/// Why a workload description was refused. `field` is the path of the offending value inside
/// the description (`diurnal.peak_per_sec`), so the caller can prefix its own file location.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    #[error("{field}: {value} is not a rate; it must be finite and zero or more [req/s]")]
    InvalidRate { field: &'static str, value: f64 },
    #[error("{field}: {why}")]
    InvalidShape { field: &'static str, why: String },
    #[error(
        "lognormal: p99 ({p99}) is below p50 ({p50}); the 99th percentile cannot be the smaller"
    )]
    QuantilesInverted {
        p50: crate::engine::SimDuration,
        p99: crate::engine::SimDuration,
    },
    #[error("empirical.buckets[{index}]: {why}")]
    BadBucket { index: usize, why: String },
    #[error("empirical.buckets: no observation in any bucket, so there is nothing to sample")]
    EmptyHistogram,
}

#[cfg(test)]
mod tests;
