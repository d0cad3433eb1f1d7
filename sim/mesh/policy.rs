//! The Envoy side of a cluster's policy: the fields of `envoy.config.cluster.v3.Cluster` that
//! the models read, with Envoy 1.40's defaults (`spec/mesh.md` §2 and §3.10). istiod's output is
//! built from these by [`super::istio::cluster_policy`].
//!
//! Invariant: a validated [`OutlierConfig`] has a non-zero interval and a maximum ejection time
//! of at least the base, as Envoy's config validation demands.

use super::MeshError;
use crate::engine::SimDuration;

/// `lb_policy`, with the one knob each policy has in an Istio-built cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LbPolicy {
    RoundRobin,
    Random,
    /// Power of `choice_count` choices when weights are equal; EDF over
    /// `weight / (active + 1)^active_request_bias` when they differ (§4.2).
    LeastRequest {
        choice_count: u32,
        active_request_bias: f64,
    },
}

impl LbPolicy {
    /// `LEAST_REQUEST` with `least_request_lb_config` unset, as istiod emits it.
    pub const LEAST_REQUEST_DEFAULT: LbPolicy = LbPolicy::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
    };
}

/// `circuit_breakers.thresholds[0]` (default priority), cluster-wide for one proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreakers {
    pub max_connections: u64,
    pub max_pending_requests: u64,
    pub max_requests: u64,
    pub max_retries: u64,
}

impl CircuitBreakers {
    /// Envoy's own defaults, which apply only to clusters istiod did not build.
    pub const ENVOY_DEFAULT: CircuitBreakers = CircuitBreakers {
        max_connections: 1024,
        max_pending_requests: 1024,
        max_requests: 1024,
        max_retries: 3,
    };
    /// What istiod writes for every outbound sidecar cluster when the DR leaves a limit unset.
    pub const ISTIO_UNLIMITED: CircuitBreakers = CircuitBreakers {
        max_connections: u32::MAX as u64,
        max_pending_requests: u32::MAX as u64,
        max_requests: u32::MAX as u64,
        max_retries: u32::MAX as u64,
    };
}

/// `outlier_detection`, every field Envoy 1.40 reads for external- and local-origin errors.
/// Percentages are 0..=100; `success_rate_stdev_factor` is in thousandths (1900 = 1.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    pub consecutive_5xx: u32,
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub split_external_local_origin_errors: bool,
    pub consecutive_local_origin_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub interval: SimDuration,
    pub base_ejection_time: SimDuration,
    /// `None` means Envoy's default, `max(300 s, base_ejection_time)`.
    pub max_ejection_time: Option<SimDuration>,
    pub max_ejection_time_jitter: SimDuration,
    pub max_ejection_percent: u32,
    pub always_eject_one_host: bool,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    pub enforcing_success_rate: u32,
    pub failure_percentage_threshold: u32,
    pub enforcing_failure_percentage: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
}

impl Default for OutlierConfig {
    /// Envoy's defaults for an `outlier_detection` message with no field set (§3.10).
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            interval: SimDuration::from_secs(10),
            base_ejection_time: SimDuration::from_secs(30),
            max_ejection_time: None,
            max_ejection_time_jitter: SimDuration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            enforcing_success_rate: 100,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
        }
    }
}

impl OutlierConfig {
    /// The cap on one ejection's length: the configured value, else `max(300 s, base)`.
    pub fn effective_max_ejection_time(&self) -> SimDuration {
        self.max_ejection_time
            .unwrap_or(self.base_ejection_time.max(SimDuration::from_secs(300)))
    }

    /// Refuses what Envoy's cluster validation refuses.
    pub fn validate(&self) -> Result<(), MeshError> {
        if self.interval == SimDuration::ZERO {
            return Err(MeshError::invalid(
                "outlier_detection.interval",
                "must be above zero",
            ));
        }
        if let Some(max) = self.max_ejection_time
            && max < self.base_ejection_time
        {
            return Err(MeshError::invalid(
                "outlier_detection.max_ejection_time",
                format!(
                    "{max} is below base_ejection_time {}",
                    self.base_ejection_time
                ),
            ));
        }
        for (field, value) in [
            ("enforcing_consecutive_5xx", self.enforcing_consecutive_5xx),
            (
                "enforcing_consecutive_gateway_failure",
                self.enforcing_consecutive_gateway_failure,
            ),
            (
                "enforcing_consecutive_local_origin_failure",
                self.enforcing_consecutive_local_origin_failure,
            ),
            ("enforcing_success_rate", self.enforcing_success_rate),
            (
                "enforcing_failure_percentage",
                self.enforcing_failure_percentage,
            ),
            (
                "failure_percentage_threshold",
                self.failure_percentage_threshold,
            ),
        ] {
            if value > 100 {
                return Err(MeshError::invalid(
                    format!("outlier_detection.{field}"),
                    format!("{value} is not a percentage"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything the mesh models read from one Envoy cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPolicy {
    pub lb: LbPolicy,
    pub circuit_breakers: CircuitBreakers,
    /// `max_requests_per_connection`; `None` is unlimited (keep-alive forever).
    pub max_requests_per_connection: Option<u32>,
    pub connect_timeout: SimDuration,
    /// `idle_timeout` of upstream connections; `None` is Envoy's 1 h.
    pub idle_timeout: Option<SimDuration>,
    /// `None`: no `outlier_detection` message, so no detector at all.
    pub outlier: Option<OutlierConfig>,
    /// `common_lb_config.healthy_panic_threshold` [%].
    pub healthy_panic_threshold_percent: f64,
}

impl Default for ClusterPolicy {
    /// What istiod emits for an outbound sidecar cluster without any DestinationRule.
    fn default() -> Self {
        ClusterPolicy {
            lb: LbPolicy::LEAST_REQUEST_DEFAULT,
            circuit_breakers: CircuitBreakers::ISTIO_UNLIMITED,
            max_requests_per_connection: None,
            connect_timeout: SimDuration::from_secs(10),
            idle_timeout: None,
            outlier: None,
            healthy_panic_threshold_percent: 50.0,
        }
    }
}

impl ClusterPolicy {
    /// The same policy with the outlier detector's `interval`, `base_ejection_time` and
    /// `max_ejection_time` divided by `divisor` (at least 1 ms each), so that a conformance run
    /// sees several ejection cycles in seconds. The merge window is Envoy's and is not scaled
    /// (`spec/mesh.md` §3.8), so a scaled interval under 1 s changes what happens; that is
    /// what the real Envoy does with the same numbers, and the comparison holds.
    pub fn with_outlier_times_divided(mut self, divisor: f64) -> ClusterPolicy {
        let scale = |d: SimDuration| {
            SimDuration::from_secs_f64(d.as_secs_f64() / divisor).max(SimDuration::from_millis(1))
        };
        if let Some(outlier) = self.outlier.as_mut() {
            outlier.interval = scale(outlier.interval);
            outlier.base_ejection_time = scale(outlier.base_ejection_time);
            outlier.max_ejection_time = outlier.max_ejection_time.map(scale);
        }
        self
    }
}

/// A route's `retry_policy` (Envoy router filter), reduced to what the models can trigger:
/// connect failures and listed response statuses. Overflows (503 `UO`) are never retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub num_retries: u32,
    /// `connect-failure` in `retry_on`.
    pub retry_on_connect_failure: bool,
    /// `retriable-status-codes` with `retriable_status_codes`.
    pub retriable_status_codes: Vec<u16>,
    /// `host_selection_retry_max_attempts`: extra picks to find a host not tried yet.
    pub host_selection_retry_max_attempts: u32,
    /// The `previous_hosts` retry host predicate.
    pub avoid_previous_hosts: bool,
    /// Back-off base; before retry `n` Envoy waits `random % ((2^n - 1) * base)` ms, at most
    /// `max_interval` (default ten times the base).
    pub base_interval: SimDuration,
    pub max_interval: SimDuration,
}

impl Default for RetryPolicy {
    /// No retries at all (a VirtualService with `retries.attempts: 0`).
    fn default() -> Self {
        RetryPolicy {
            num_retries: 0,
            retry_on_connect_failure: false,
            retriable_status_codes: Vec::new(),
            host_selection_retry_max_attempts: 0,
            avoid_previous_hosts: false,
            base_interval: SimDuration::from_millis(25),
            max_interval: SimDuration::from_millis(250),
        }
    }
}
