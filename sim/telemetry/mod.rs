//! Telemetry: the simulated metrics the model exports and the in-memory series store they are
//! scraped into. The store is what `promql` evaluates over.
//!
//! Invariants: no wall clock (timestamps are handed in by the caller, in Unix milliseconds of
//! virtual time); iteration over series is ordered by label set, so anything computed from the
//! store reads the same on every run.
//!
//! [`openmetrics`] writes the store as OpenMetrics text for `promtool tsdb create-blocks-from`.

pub mod openmetrics;
pub mod store;
