//! The Istio side: a plain mirror of `DestinationRule.trafficPolicy` (the blocks the simulator
//! models, every field optional as in the proto) and istiod's translation of it into an Envoy
//! [`ClusterPolicy`] (`spec/mesh.md` §2; istiod `cluster_traffic_policy.go`, `applyConnectionPool`,
//! `applyLoadBalancer`, `applyOutlierDetection`).
//!
//! The translation depends on the istiod release, so it takes an [`IstioVersion`]:
//! - before 1.7, `consecutiveErrors: N` meant gateway errors only (`consecutive_gateway_failure:
//!   N` enforced, `consecutive_5xx` not enforced), and success-rate ejection kept Envoy's 100 %
//!   enforcement; from 1.7 the field is ignored and `enforcing_success_rate` is always 0;
//! - before 1.14 an unset `loadBalancer` meant `ROUND_ROBIN`, since then `LEAST_REQUEST`;
//! - before 1.24 the default route retry policy also retried upstream 503 responses.
//!
//! Invariants: the translation is a pure function; merging port-level and subset policies
//! (§1) happens before it, in the caller, block by block; a block that is absent here is
//! absent in the output (no outlier block means no outlier detection).

use super::MeshError;
use super::policy::{CircuitBreakers, ClusterPolicy, LbPolicy, OutlierConfig};
use crate::engine::SimDuration;

/// An istiod release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IstioVersion {
    pub major: u32,
    pub minor: u32,
}

impl IstioVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        IstioVersion { major, minor }
    }
    /// The istiod the spec was written against (`master`, 2026-08).
    pub const CURRENT: IstioVersion = IstioVersion::new(1, 29);
    /// The first release that ignores `consecutiveErrors` (istio/istio #24087).
    pub const IGNORES_CONSECUTIVE_ERRORS: IstioVersion = IstioVersion::new(1, 7);
    /// The first release whose default load balancer is `LEAST_REQUEST` (istio/istio #37220).
    pub const DEFAULTS_TO_LEAST_REQUEST: IstioVersion = IstioVersion::new(1, 14);
    /// The first release whose default retries leave out status 503 (istio/istio #52111).
    pub const STOPS_RETRYING_503: IstioVersion = IstioVersion::new(1, 24);
}

/// `trafficPolicy` of a DestinationRule (after the §1 merge).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IstioTrafficPolicy {
    pub connection_pool: Option<IstioConnectionPool>,
    pub load_balancer: Option<IstioLoadBalancer>,
    pub outlier_detection: Option<IstioOutlierDetection>,
}

/// `trafficPolicy.connectionPool`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IstioConnectionPool {
    pub tcp: Option<IstioTcpSettings>,
    pub http: Option<IstioHttpSettings>,
}

/// `connectionPool.tcp`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IstioTcpSettings {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<SimDuration>,
    pub idle_timeout: Option<SimDuration>,
}

/// `connectionPool.http`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IstioHttpSettings {
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<SimDuration>,
}

/// `loadBalancer.simple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IstioSimpleLb {
    Unspecified,
    LeastConn,
    Random,
    Passthrough,
    RoundRobin,
    LeastRequest,
}

/// `trafficPolicy.loadBalancer`. Only `simple` is modelled; the others are recorded so that
/// a policy using them is refused instead of silently balanced some other way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IstioLoadBalancer {
    pub simple: Option<IstioSimpleLb>,
    pub consistent_hash: bool,
    pub warmup_duration: Option<SimDuration>,
}

/// `trafficPolicy.outlierDetection`. `None` is "not written"; the wrapper-typed fields
/// (`consecutive5xxErrors`, `consecutiveGatewayErrors`, `consecutiveLocalOriginFailures`)
/// distinguish an explicit 0 from absence, as the proto does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IstioOutlierDetection {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    /// Deprecated; see the module doc for what it means per release.
    pub consecutive_errors: Option<u32>,
    pub interval: Option<SimDuration>,
    pub base_ejection_time: Option<SimDuration>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
    pub split_external_local_origin_errors: Option<bool>,
    pub consecutive_local_origin_failures: Option<u32>,
}

/// istiod's translation of a (merged) traffic policy into the Envoy cluster fields.
pub fn cluster_policy(
    traffic_policy: &IstioTrafficPolicy,
    version: IstioVersion,
) -> Result<ClusterPolicy, MeshError> {
    let mut policy = ClusterPolicy {
        lb: default_lb(version),
        ..ClusterPolicy::default()
    };
    if let Some(pool) = &traffic_policy.connection_pool {
        apply_connection_pool(&mut policy, pool);
    }
    if let Some(load_balancer) = &traffic_policy.load_balancer {
        policy.lb = lb_policy(load_balancer, version)?;
    }
    if let Some(outlier) = &traffic_policy.outlier_detection {
        let (config, panic_threshold) = outlier_config(outlier, version);
        config.validate()?;
        policy.outlier = Some(config);
        policy.healthy_panic_threshold_percent = panic_threshold;
    }
    Ok(policy)
}

fn default_lb(version: IstioVersion) -> LbPolicy {
    if version >= IstioVersion::DEFAULTS_TO_LEAST_REQUEST {
        LbPolicy::LEAST_REQUEST_DEFAULT
    } else {
        LbPolicy::RoundRobin
    }
}

/// istiod writes a limit only when it is above 0, so 0 means unlimited, not "none allowed".
fn limit(value: Option<u32>) -> u64 {
    match value {
        Some(v) if v > 0 => u64::from(v),
        _ => u64::from(u32::MAX),
    }
}

fn apply_connection_pool(policy: &mut ClusterPolicy, pool: &IstioConnectionPool) {
    let tcp = pool.tcp.clone().unwrap_or_default();
    let http = pool.http.clone().unwrap_or_default();
    policy.circuit_breakers = CircuitBreakers {
        max_connections: limit(tcp.max_connections),
        max_pending_requests: limit(http.http1_max_pending_requests),
        max_requests: limit(http.http2_max_requests),
        max_retries: limit(http.max_retries),
    };
    policy.max_requests_per_connection = http.max_requests_per_connection.filter(|&n| n > 0);
    if let Some(timeout) = tcp.connect_timeout {
        policy.connect_timeout = timeout;
    }
    policy.idle_timeout = http.idle_timeout.or(tcp.idle_timeout);
}

fn lb_policy(
    load_balancer: &IstioLoadBalancer,
    version: IstioVersion,
) -> Result<LbPolicy, MeshError> {
    if load_balancer.consistent_hash {
        return Err(MeshError::Unsupported {
            field: "trafficPolicy.loadBalancer.consistentHash".into(),
            what: "RING_HASH / MAGLEV balancing".into(),
        });
    }
    if load_balancer.warmup_duration.is_some() {
        return Err(MeshError::Unsupported {
            field: "trafficPolicy.loadBalancer.warmupDurationSecs".into(),
            what: "slow start".into(),
        });
    }
    Ok(
        match load_balancer.simple.unwrap_or(IstioSimpleLb::Unspecified) {
            IstioSimpleLb::Unspecified => default_lb(version),
            IstioSimpleLb::LeastRequest | IstioSimpleLb::LeastConn => {
                LbPolicy::LEAST_REQUEST_DEFAULT
            }
            IstioSimpleLb::RoundRobin => LbPolicy::RoundRobin,
            IstioSimpleLb::Random => LbPolicy::Random,
            IstioSimpleLb::Passthrough => {
                return Err(MeshError::Unsupported {
                    field: "trafficPolicy.loadBalancer.simple".into(),
                    what: "PASSTHROUGH (an ORIGINAL_DST cluster)".into(),
                });
            }
        },
    )
}

/// A consecutive-errors threshold and its enforcement: 100 % when the threshold is above 0.
fn enforced(threshold: u32) -> (u32, u32) {
    (threshold, if threshold > 0 { 100 } else { 0 })
}

/// The outlier block and the panic threshold it implies.
fn outlier_config(outlier: &IstioOutlierDetection, version: IstioVersion) -> (OutlierConfig, f64) {
    let mut config = OutlierConfig::default();
    if version >= IstioVersion::IGNORES_CONSECUTIVE_ERRORS {
        // istio/istio #25534: success-rate ejection is never enforced.
        config.enforcing_success_rate = 0;
    } else if let Some(n) = outlier.consecutive_errors.filter(|&n| n > 0) {
        // istio/api #617: the old field counted gateway errors (502, 503, 504) only.
        config.consecutive_gateway_failure = n;
        config.enforcing_consecutive_gateway_failure = 100;
        config.enforcing_consecutive_5xx = 0;
    }
    // The explicit fields are applied after the legacy one, so they win over it.
    if let Some(n) = outlier.consecutive_5xx_errors {
        (config.consecutive_5xx, config.enforcing_consecutive_5xx) = enforced(n);
    }
    if let Some(n) = outlier.consecutive_gateway_errors {
        (
            config.consecutive_gateway_failure,
            config.enforcing_consecutive_gateway_failure,
        ) = enforced(n);
    }
    if let Some(interval) = outlier.interval {
        config.interval = interval;
    }
    if let Some(base) = outlier.base_ejection_time {
        config.base_ejection_time = base;
    }
    if let Some(percent) = outlier.max_ejection_percent.filter(|&p| p > 0) {
        config.max_ejection_percent = percent.min(100);
    }
    if outlier.split_external_local_origin_errors == Some(true) {
        config.split_external_local_origin_errors = true;
        if let Some(n) = outlier.consecutive_local_origin_failures.filter(|&n| n > 0) {
            (
                config.consecutive_local_origin_failure,
                config.enforcing_consecutive_local_origin_failure,
            ) = (n, 100);
        }
    }
    // Written whenever the block exists, so the proto default 0 turns panic mode off.
    let panic_threshold = f64::from(outlier.min_health_percent.unwrap_or(0).min(100));
    (config, panic_threshold)
}

/// The retry policy istiod gives a route whose VirtualService sets no `retries` (§2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub num_retries: u32,
    /// Upstream response statuses that are retried (besides resets and connect failures).
    pub retriable_status_codes: Vec<u16>,
    pub host_selection_retry_max_attempts: u32,
}

/// istiod's default route retry policy for `version`.
pub fn default_retry_policy(version: IstioVersion) -> RetryPolicy {
    RetryPolicy {
        num_retries: 2,
        retriable_status_codes: if version >= IstioVersion::STOPS_RETRYING_503 {
            Vec::new()
        } else {
            vec![503]
        },
        host_selection_retry_max_attempts: 5,
    }
}
