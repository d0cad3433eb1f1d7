use super::authz::{
    self, AuthorizationPolicy, AuthzAction, AuthzDecision, AuthzOperation, AuthzRule, AuthzSource,
};
use super::istio::*;
use super::lb::{HostSet, LoadBalancer, Pick};
use super::merge::{Delivery, UpdateMerge};
use super::outlier::{AttemptResult, DetectionType, OutlierAction, OutlierDetector, OutlierEvent};
use super::policy::{CircuitBreakers, LbPolicy, OutlierConfig};
use super::pool::{ConnectionPools, PoolOutcome};
use super::route::{
    Destination, HttpRequest, HttpRouteSpec, RouteDecision, RouteMatchSpec, StringMatchSpec,
    VirtualService,
};
use super::*;
use crate::engine::{RngTree, SimDuration, SimRng, SimTime};

fn rng(label: &str) -> SimRng {
    RngTree::new(42).stream(label)
}

fn ms(n: u64) -> SimTime {
    SimTime::from_nanos(n * 1_000_000)
}

// ---------------------------------------------------------------------------------------------
// istio: DestinationRule -> Envoy cluster

fn with_outlier(outlier: IstioOutlierDetection) -> IstioTrafficPolicy {
    IstioTrafficPolicy {
        outlier_detection: Some(outlier),
        ..IstioTrafficPolicy::default()
    }
}

#[test]
fn a_cluster_without_destination_rule_gets_istio_defaults() {
    // Goal: §2 defaults with no DR. Method: translate an empty policy for the current release.
    let policy = cluster_policy(&IstioTrafficPolicy::default(), IstioVersion::CURRENT).unwrap();
    assert_eq!(policy.lb, LbPolicy::LEAST_REQUEST_DEFAULT);
    assert_eq!(policy.circuit_breakers, CircuitBreakers::ISTIO_UNLIMITED);
    assert_eq!(
        policy.outlier, None,
        "istiod never enables outlier detection by default"
    );
    assert_eq!(policy.healthy_panic_threshold_percent, 50.0);
    assert_eq!(policy.connect_timeout, SimDuration::from_secs(10));
}

#[test]
fn an_empty_outlier_block_ejects_after_five_consecutive_5xx_with_panic_off() {
    // Goal: an outlier block, even empty, takes Envoy's defaults (§2.3, §3.10). Method: map an
    // empty block and read every field that differs from "off".
    let policy = cluster_policy(
        &with_outlier(IstioOutlierDetection::default()),
        IstioVersion::CURRENT,
    )
    .unwrap();
    let outlier = policy.outlier.unwrap();
    assert_eq!(
        (outlier.consecutive_5xx, outlier.enforcing_consecutive_5xx),
        (5, 100)
    );
    assert_eq!(
        (
            outlier.consecutive_gateway_failure,
            outlier.enforcing_consecutive_gateway_failure
        ),
        (5, 0)
    );
    assert_eq!(outlier.enforcing_success_rate, 0);
    assert_eq!(outlier.max_ejection_percent, 10);
    assert_eq!(outlier.interval, SimDuration::from_secs(10));
    assert_eq!(outlier.base_ejection_time, SimDuration::from_secs(30));
    assert_eq!(
        outlier.effective_max_ejection_time(),
        SimDuration::from_secs(300)
    );
    assert_eq!(
        policy.healthy_panic_threshold_percent, 0.0,
        "minHealthPercent 0 is written, turning panic off"
    );
}

#[test]
fn consecutive_errors_meant_gateway_errors_before_istio_1_7_and_nothing_since() {
    // Goal: the deprecated field's two meanings (§2.3). Method: map `consecutiveErrors: 5`
    // for 1.6 and 1.7, then feed each detector five 500s: the legacy one detects but does not
    // enforce (the oracle's `enforced: false`), the modern one ejects after exactly five.
    let outlier = IstioOutlierDetection {
        consecutive_errors: Some(5),
        max_ejection_percent: Some(100),
        ..Default::default()
    };
    let legacy = cluster_policy(&with_outlier(outlier.clone()), IstioVersion::new(1, 6))
        .unwrap()
        .outlier
        .unwrap();
    assert_eq!(
        (
            legacy.consecutive_gateway_failure,
            legacy.enforcing_consecutive_gateway_failure
        ),
        (5, 100)
    );
    assert_eq!(legacy.enforcing_consecutive_5xx, 0);
    let modern = cluster_policy(&with_outlier(outlier), IstioVersion::new(1, 7))
        .unwrap()
        .outlier
        .unwrap();
    assert_eq!(
        modern,
        OutlierConfig {
            enforcing_success_rate: 0,
            max_ejection_percent: 100,
            ..OutlierConfig::default()
        }
    );

    let mut legacy_detector = OutlierDetector::new(legacy, 2, rng("legacy")).unwrap();
    let mut modern_detector = OutlierDetector::new(modern, 2, rng("modern")).unwrap();
    let mut legacy_events = Vec::new();
    let mut modern_events = Vec::new();
    for i in 0..5 {
        legacy_events.extend(
            legacy_detector
                .report(ms(i), HostId(0), AttemptResult::Status(500))
                .iter()
                .copied(),
        );
        modern_events.extend(
            modern_detector
                .report(ms(i), HostId(0), AttemptResult::Status(500))
                .iter()
                .copied(),
        );
    }
    assert_eq!(legacy_events.len(), 1);
    assert_eq!(legacy_events[0].action, OutlierAction::NotEnforced);
    assert_eq!(
        legacy_events[0].detection,
        Some(DetectionType::Consecutive5xx)
    );
    assert!(!legacy_detector.is_ejected(HostId(0)));
    assert_eq!(modern_events.len(), 1);
    assert_eq!(
        (modern_events[0].action, modern_events[0].time),
        (OutlierAction::Ejected, ms(4))
    );
    // The legacy meaning does eject on gateway errors.
    for i in 10..15 {
        legacy_detector.report(ms(i), HostId(1), AttemptResult::Status(503));
    }
    assert!(legacy_detector.is_ejected(HostId(1)));
}

#[test]
fn the_old_meaning_is_written_today_as_gateway_errors_with_5xx_off() {
    // Goal: the spec's recipe for the legacy behaviour on a current istiod. Method: map
    // `consecutiveGatewayErrors: 5, consecutive5xxErrors: 0` and compare with 1.6's output.
    let outlier = IstioOutlierDetection {
        consecutive_gateway_errors: Some(5),
        consecutive_5xx_errors: Some(0),
        ..Default::default()
    };
    let config = cluster_policy(&with_outlier(outlier), IstioVersion::CURRENT)
        .unwrap()
        .outlier
        .unwrap();
    assert_eq!(
        (config.consecutive_5xx, config.enforcing_consecutive_5xx),
        (0, 0)
    );
    assert_eq!(
        (
            config.consecutive_gateway_failure,
            config.enforcing_consecutive_gateway_failure
        ),
        (5, 100)
    );
}

#[test]
fn the_plan_destination_rule_maps_as_checked_on_real_envoy() {
    // Goal: §8, the plan's DR. Method: translate it for the current release.
    let traffic_policy = IstioTrafficPolicy {
        connection_pool: Some(IstioConnectionPool {
            tcp: Some(IstioTcpSettings {
                max_connections: Some(100),
                ..Default::default()
            }),
            http: Some(IstioHttpSettings {
                http1_max_pending_requests: Some(50),
                http2_max_requests: Some(100),
                max_requests_per_connection: Some(2),
                ..Default::default()
            }),
        }),
        load_balancer: None,
        outlier_detection: Some(IstioOutlierDetection {
            consecutive_errors: Some(5),
            interval: Some(SimDuration::from_secs(30)),
            base_ejection_time: Some(SimDuration::from_secs(30)),
            max_ejection_percent: Some(50),
            min_health_percent: Some(30),
            ..Default::default()
        }),
    };
    let policy = cluster_policy(&traffic_policy, IstioVersion::CURRENT).unwrap();
    assert_eq!(
        policy.circuit_breakers,
        CircuitBreakers {
            max_connections: 100,
            max_pending_requests: 50,
            max_requests: 100,
            max_retries: u64::from(u32::MAX)
        }
    );
    assert_eq!(policy.max_requests_per_connection, Some(2));
    let outlier = policy.outlier.unwrap();
    assert_eq!(
        (outlier.consecutive_5xx, outlier.enforcing_consecutive_5xx),
        (5, 100),
        "Envoy's default, not consecutiveErrors"
    );
    assert_eq!(outlier.max_ejection_percent, 50);
    assert_eq!(policy.healthy_panic_threshold_percent, 30.0);
}

#[test]
fn zero_pool_limits_mean_unlimited_not_none_allowed() {
    // Goal: istiod's `> 0` checks (§2.1). Method: every limit written as 0.
    let traffic_policy = IstioTrafficPolicy {
        connection_pool: Some(IstioConnectionPool {
            tcp: Some(IstioTcpSettings {
                max_connections: Some(0),
                ..Default::default()
            }),
            http: Some(IstioHttpSettings {
                http1_max_pending_requests: Some(0),
                http2_max_requests: Some(0),
                max_requests_per_connection: Some(0),
                max_retries: Some(0),
                idle_timeout: None,
            }),
        }),
        ..Default::default()
    };
    let policy = cluster_policy(&traffic_policy, IstioVersion::CURRENT).unwrap();
    assert_eq!(policy.circuit_breakers, CircuitBreakers::ISTIO_UNLIMITED);
    assert_eq!(policy.max_requests_per_connection, None);
}

#[test]
fn load_balancer_default_depends_on_the_istio_release() {
    // Goal: §2.2. Method: unset before and after 1.14, the LEAST_CONN alias, and the refused
    // shapes.
    let simple = |simple| IstioTrafficPolicy {
        load_balancer: Some(IstioLoadBalancer {
            simple: Some(simple),
            ..Default::default()
        }),
        ..Default::default()
    };
    let lb = |policy: &IstioTrafficPolicy, version| cluster_policy(policy, version).map(|p| p.lb);
    assert_eq!(
        lb(&IstioTrafficPolicy::default(), IstioVersion::new(1, 13)),
        Ok(LbPolicy::RoundRobin)
    );
    assert_eq!(
        lb(
            &simple(IstioSimpleLb::Unspecified),
            IstioVersion::new(1, 14)
        ),
        Ok(LbPolicy::LEAST_REQUEST_DEFAULT)
    );
    assert_eq!(
        lb(&simple(IstioSimpleLb::LeastConn), IstioVersion::CURRENT),
        Ok(LbPolicy::LEAST_REQUEST_DEFAULT)
    );
    assert_eq!(
        lb(&simple(IstioSimpleLb::Random), IstioVersion::CURRENT),
        Ok(LbPolicy::Random)
    );
    assert_eq!(
        lb(&simple(IstioSimpleLb::RoundRobin), IstioVersion::CURRENT),
        Ok(LbPolicy::RoundRobin)
    );
    let error = lb(&simple(IstioSimpleLb::Passthrough), IstioVersion::CURRENT).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("trafficPolicy.loadBalancer.simple: PASSTHROUGH"),
        "{error}"
    );
    let hashed = IstioTrafficPolicy {
        load_balancer: Some(IstioLoadBalancer {
            consistent_hash: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        lb(&hashed, IstioVersion::CURRENT),
        Err(MeshError::Unsupported { .. })
    ));
}

#[test]
fn default_retries_stopped_retrying_503_in_istio_1_24() {
    // Goal: §2.4. Method: the policy for 1.23 and 1.24.
    assert_eq!(
        default_retry_policy(IstioVersion::new(1, 23)).retriable_status_codes,
        vec![503]
    );
    let current = default_retry_policy(IstioVersion::new(1, 24));
    assert!(current.retriable_status_codes.is_empty());
    assert_eq!(
        (
            current.num_retries,
            current.host_selection_retry_max_attempts
        ),
        (2, 5)
    );
}

#[test]
fn an_outlier_config_with_max_below_base_is_refused() {
    // Goal: Envoy's validation. Method: max 10 s under base 30 s; interval 0.
    let config = OutlierConfig {
        max_ejection_time: Some(SimDuration::from_secs(10)),
        ..OutlierConfig::default()
    };
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("outlier_detection.max_ejection_time")
    );
    let config = OutlierConfig {
        interval: SimDuration::ZERO,
        ..OutlierConfig::default()
    };
    assert!(config.validate().is_err());
}

// ---------------------------------------------------------------------------------------------
// outlier detection

fn detector(config: OutlierConfig, n_hosts: u32) -> OutlierDetector {
    OutlierDetector::new(config, n_hosts, rng("outlier")).expect("valid config")
}

fn all_out() -> OutlierConfig {
    OutlierConfig {
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    }
}

fn report_all(
    detector: &mut OutlierDetector,
    host: u32,
    statuses: &[u16],
    at: SimTime,
) -> Vec<OutlierEvent> {
    statuses
        .iter()
        .flat_map(|&status| {
            detector
                .report(at, HostId(host), AttemptResult::Status(status))
                .iter()
                .copied()
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn five_consecutive_5xx_eject_and_a_success_in_between_starts_over() {
    // Goal: §3.2 counting. Method: four 500s, a 200, four 500s (no event), then a fifth.
    let mut detector = detector(all_out(), 4);
    assert!(
        report_all(
            &mut detector,
            0,
            &[500, 500, 500, 500, 200, 500, 500, 500, 500],
            ms(0)
        )
        .is_empty()
    );
    let events = report_all(&mut detector, 0, &[503], ms(1));
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].action, events[0].num_ejections),
        (OutlierAction::Ejected, 1)
    );
    assert!(detector.is_ejected(HostId(0)));
    assert_eq!(detector.stats().ejections_enforced_consecutive_5xx, 1);
    // Successes on other hosts do not touch host 0's counter, and host 1 has its own.
    assert!(report_all(&mut detector, 1, &[500, 500, 500, 500], ms(2)).is_empty());
    report_all(&mut detector, 2, &[200; 10], ms(2));
    assert_eq!(report_all(&mut detector, 1, &[500], ms(3)).len(), 1);
}

#[test]
fn a_threshold_of_zero_never_fires() {
    // Goal: the equality test (§3.2). Method: consecutive_5xx 0 and 100 failures.
    let mut detector = detector(
        OutlierConfig {
            consecutive_5xx: 0,
            ..all_out()
        },
        2,
    );
    assert!(report_all(&mut detector, 0, &[500; 100], ms(0)).is_empty());
}

#[test]
fn gateway_event_is_handled_first_and_the_5xx_event_is_then_ignored() {
    // Goal: §3.2 order and §3.3 "already ejected". Method: both thresholds 5, enforced; five
    // 503s raise GATEWAY (ejects) then 5XX (ignored: no detection counted).
    let config = OutlierConfig {
        enforcing_consecutive_gateway_failure: 100,
        ..all_out()
    };
    let mut detector = detector(config, 2);
    let events = report_all(&mut detector, 0, &[503; 5], ms(0));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detection,
        Some(DetectionType::ConsecutiveGatewayFailure)
    );
    assert_eq!(
        detector
            .stats()
            .ejections_detected_consecutive_gateway_failure,
        1
    );
    assert_eq!(detector.stats().ejections_detected_consecutive_5xx, 0);
    // While ejected, further failures raise nothing at all.
    assert!(report_all(&mut detector, 0, &[503; 20], ms(1)).is_empty());
    assert_eq!(detector.stats().ejections_detected_consecutive_5xx, 0);
}

#[test]
fn a_non_gateway_5xx_resets_the_gateway_counter_but_not_the_5xx_counter() {
    // Goal: §3.2 step 1. Method: gateway threshold 3, 5xx threshold 6: 503 503 500 503 503
    // raises nothing, the sixth 5xx (503) raises 5XX, and only then does GATEWAY reach 3.
    let config = OutlierConfig {
        consecutive_gateway_failure: 3,
        enforcing_consecutive_gateway_failure: 0,
        consecutive_5xx: 6,
        enforcing_consecutive_5xx: 0,
        ..all_out()
    };
    let mut detector = detector(config, 2);
    assert!(report_all(&mut detector, 0, &[503, 503, 500, 503, 503], ms(0)).is_empty());
    let events = report_all(&mut detector, 0, &[503], ms(1));
    let detections: Vec<_> = events.iter().map(|e| e.detection.unwrap()).collect();
    assert_eq!(
        detections,
        vec![
            DetectionType::ConsecutiveGatewayFailure,
            DetectionType::Consecutive5xx
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.action == OutlierAction::NotEnforced)
    );
}

#[test]
fn max_ejection_percent_is_strict_with_no_free_first_ejection() {
    // Goal: the oracle's maxima (§3.4). Method: every host fails; count the hosts ejected at
    // once for 4 hosts at 50 %, 3 at 50 %, 4 at 10 %, and 4 at 10 % with always_eject_one_host.
    let cases = [
        (4, 50, false, 2),
        (3, 50, false, 1),
        (4, 10, false, 0),
        (4, 10, true, 1),
    ];
    for (n_hosts, percent, always_one, expected) in cases {
        let config = OutlierConfig {
            max_ejection_percent: percent,
            always_eject_one_host: always_one,
            ..OutlierConfig::default()
        };
        let mut detector = detector(config, n_hosts);
        for host in 0..n_hosts {
            report_all(&mut detector, host, &[500; 5], ms(0));
        }
        assert_eq!(
            detector.ejected_count(),
            expected,
            "{n_hosts} hosts at {percent} %"
        );
        assert_eq!(
            detector.stats().ejections_overflow,
            u64::from(n_hosts - expected)
        );
    }
}

/// One ejection of the driven host: when it left and came back [s], and `num_ejections`.
#[derive(Clone, Copy, Debug)]
struct Cycle {
    start: f64,
    end: f64,
    num_ejections: u32,
}

impl Cycle {
    fn out_secs(&self) -> f64 {
        self.end - self.start
    }
}

/// Drives one host that fails (a 500 every 10 ms, except for 12 s of 200s from
/// `healthy_from`) with sweeps every `interval`, and returns its ejections.
fn failing_host_cycles(
    config: OutlierConfig,
    until: SimTime,
    healthy_from: Option<SimTime>,
) -> (OutlierDetector, Vec<Cycle>) {
    let interval = config.interval.as_nanos();
    let mut detector = detector(config, 1);
    let mut cycles = Vec::new();
    let mut ejected: Option<(SimTime, u32)> = None;
    let mut events = Vec::new();
    let mut t = 0;
    while t < until.as_nanos() {
        t += 10_000_000;
        let now = SimTime::from_nanos(t);
        if t % interval == 0 {
            events.clear();
            detector.sweep(now, &mut events);
            if let (Some((start, num_ejections)), true) = (
                ejected,
                events.iter().any(|e| e.action == OutlierAction::Unejected),
            ) {
                cycles.push(Cycle {
                    start: start.as_secs_f64(),
                    end: now.as_secs_f64(),
                    num_ejections,
                });
                ejected = None;
            }
        }
        let status =
            if healthy_from.is_some_and(|h| now >= h && now < h + SimDuration::from_secs(12)) {
                200
            } else {
                500
            };
        if !detector.is_ejected(HostId(0)) {
            for event in detector
                .report(now, HostId(0), AttemptResult::Status(status))
                .iter()
            {
                if event.action == OutlierAction::Ejected {
                    ejected = Some((now, event.num_ejections));
                }
            }
        }
    }
    (detector, cycles)
}

#[test]
fn ejection_time_grows_with_the_multiplier_and_rounds_up_to_the_next_sweep() {
    // Goal: §3.5–§3.6 against the oracle (interval = base = 1 s: out 1.29–1.69, 2.53–2.75,
    // 3.47–3.67, 4.44–4.80 s). Method: a continuously failing host; each ejection lasts
    // [base * m, base * m + interval) for m = 1, 2, 3, 4.
    let config = OutlierConfig {
        interval: SimDuration::from_secs(1),
        base_ejection_time: SimDuration::from_secs(1),
        ..all_out()
    };
    let (_, cycles) = failing_host_cycles(config, SimTime::from_secs(16), None);
    assert!(cycles.len() >= 4, "{cycles:?}");
    for (m, cycle) in cycles.iter().take(4).enumerate() {
        let out = cycle.out_secs();
        let base_times_m = (m + 1) as f64;
        assert!(
            out >= base_times_m && out < base_times_m + 1.0,
            "ejection {m}: out {out:.2} s"
        );
    }
}

#[test]
fn the_multiplier_stops_at_the_cap() {
    // Goal: the oracle's cap run (max_ejection_time 2 s: multipliers 1, 2, 2, 2, 2). Method:
    // ejection lengths stay in [2, 3) s after the first.
    let config = OutlierConfig {
        interval: SimDuration::from_secs(1),
        base_ejection_time: SimDuration::from_secs(1),
        max_ejection_time: Some(SimDuration::from_secs(2)),
        ..all_out()
    };
    let (detector, cycles) = failing_host_cycles(config, SimTime::from_secs(20), None);
    assert!(cycles.len() >= 5);
    assert!((1.0..2.0).contains(&cycles[0].out_secs()));
    for cycle in &cycles[1..5] {
        assert!((2.0..3.0).contains(&cycle.out_secs()), "{cycle:?}");
    }
    assert_eq!(detector.multiplier(HostId(0)), 3, "max / base + 1");
}

#[test]
fn twelve_seconds_in_service_decay_the_multiplier_but_not_num_ejections() {
    // Goal: the oracle's decay run: after 12 s in service the next ejection had multiplier 1
    // while num_ejections read 5. Method: four cycles, then 12 s of successes, then failures.
    let config = OutlierConfig {
        interval: SimDuration::from_secs(1),
        base_ejection_time: SimDuration::from_secs(1),
        ..all_out()
    };
    let (_, first_run) = failing_host_cycles(config.clone(), SimTime::from_secs(16), None);
    assert!(first_run.len() >= 4);
    // The same run, healthy for 12 s from the fourth unejection.
    let healthy_from = SimTime::from_nanos((first_run[3].end * 1e9).round() as u64);
    let (_, cycles) = failing_host_cycles(config, SimTime::from_secs(40), Some(healthy_from));
    let fifth = cycles[4];
    assert!(
        fifth.start >= healthy_from.as_secs_f64() + 12.0,
        "{cycles:?}"
    );
    assert!(
        (1.0..2.0).contains(&fifth.out_secs()),
        "multiplier 1 again: {fifth:?}"
    );
    assert_eq!(fifth.num_ejections, 5);
}

#[test]
fn success_rate_ejects_an_outlier_only_when_enforced() {
    // Goal: §3.7 success rate. Method: 6 hosts with 200 requests in one interval, host 5 at
    // 60 % success, the rest at 99 %; Envoy's default enforcement ejects it, Istio's 0 only
    // counts the detection.
    for (enforcing, ejected) in [(100, true), (0, false)] {
        let config = OutlierConfig {
            enforcing_success_rate: enforcing,
            consecutive_5xx: 0,
            ..all_out()
        };
        let mut detector = detector(config, 6);
        for host in 0..6u32 {
            let failures = if host == 5 { 80 } else { 2 };
            for i in 0..200 {
                let status = if i % (200 / failures) == 0 { 500 } else { 200 };
                detector.report(ms(0), HostId(host), AttemptResult::Status(status));
            }
        }
        let mut events = Vec::new();
        detector.sweep(SimTime::from_secs(10), &mut events);
        assert_eq!(
            detector.stats().ejections_detected_success_rate,
            1,
            "only host 5 is below the threshold"
        );
        assert_eq!(detector.is_ejected(HostId(5)), ejected);
        assert_eq!(events[0].detection, Some(DetectionType::SuccessRate));
    }
}

#[test]
fn failure_percentage_ejects_at_85_percent_failures_when_enabled() {
    // Goal: §3.7 failure percentage. Method: 5 hosts with 60 requests each; host 0 fails 90 %.
    // Off by default (enforcement 0); with enforcement 100 it ejects host 0 only.
    let config = OutlierConfig {
        enforcing_failure_percentage: 100,
        enforcing_success_rate: 0,
        consecutive_5xx: 0,
        ..all_out()
    };
    let mut detector = detector(config, 5);
    for host in 0..5u32 {
        for i in 0..60 {
            let status = if host == 0 && i % 10 != 0 { 500 } else { 200 };
            detector.report(ms(0), HostId(host), AttemptResult::Status(status));
        }
    }
    let mut events = Vec::new();
    detector.sweep(SimTime::from_secs(10), &mut events);
    assert!(detector.is_ejected(HostId(0)));
    assert_eq!(detector.ejected_count(), 1);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.detection == Some(DetectionType::FailurePercentage))
            .count(),
        1
    );
}

#[test]
fn local_origin_failures_count_apart_only_in_split_mode() {
    // Goal: §3.1 and the split option. Method: five connect failures eject as gateway/5xx
    // errors without the split, and as local-origin failures with it; in split mode a
    // successful connect resets the local-origin counter.
    let mut plain = detector(
        OutlierConfig {
            enforcing_consecutive_gateway_failure: 100,
            ..all_out()
        },
        2,
    );
    for i in 0..5 {
        plain.report(ms(i), HostId(0), AttemptResult::ConnectFailed);
    }
    assert_eq!(
        plain.stats().ejections_enforced_consecutive_gateway_failure,
        1
    );
    let mut split = detector(
        OutlierConfig {
            split_external_local_origin_errors: true,
            ..all_out()
        },
        2,
    );
    for i in 0..4 {
        split.report(ms(i), HostId(0), AttemptResult::ConnectFailed);
    }
    split.report(ms(5), HostId(0), AttemptResult::ConnectSucceeded);
    for i in 0..4 {
        split.report(ms(10 + i), HostId(0), AttemptResult::Timeout);
    }
    assert!(!split.is_ejected(HostId(0)));
    let reported = split.report(ms(20), HostId(0), AttemptResult::ConnectFailed);
    assert_eq!(
        reported.iter().next().unwrap().detection,
        Some(DetectionType::ConsecutiveLocalOriginFailure)
    );
    assert!(split.is_ejected(HostId(0)));
}

#[test]
fn partial_enforcement_ejects_that_share_of_detections() {
    // Goal: §3.4 "eject with probability enforcing %". Method: enforcement 30 %, 2000
    // independent single-host detectors each reaching five 500s; about 30 % eject (within
    // 4 binomial standard deviations), the rest log `NotEnforced`.
    let config = OutlierConfig {
        enforcing_consecutive_5xx: 30,
        ..all_out()
    };
    let mut rng_tree_stream = rng("enforcement");
    let mut ejected = 0;
    for _ in 0..2000 {
        let stream_seed = rand::Rng::next_u64(&mut rng_tree_stream);
        let mut detector = OutlierDetector::new(
            config.clone(),
            1,
            RngTree::new(stream_seed).stream("outlier"),
        )
        .unwrap();
        let events = report_all(&mut detector, 0, &[500; 5], ms(0));
        assert_eq!(events.len(), 1);
        match events[0].action {
            OutlierAction::Ejected => ejected += 1,
            OutlierAction::NotEnforced => {}
            other => panic!("{other:?}"),
        }
    }
    let sigma = (2000.0f64 * 0.3 * 0.7).sqrt();
    assert!(
        (f64::from(ejected) - 600.0).abs() < 4.0 * sigma,
        "{ejected} of 2000 ejected"
    );
}

#[test]
fn jitter_lengthens_an_ejection_by_at_most_its_maximum() {
    // Goal: §3.5 jitter. Method: base 10 s, jitter up to 5 s; the unejection instant of
    // 200 ejections lies in [10 s, 15 s] after the ejection and is not always the same.
    let config = OutlierConfig {
        base_ejection_time: SimDuration::from_secs(10),
        max_ejection_time_jitter: SimDuration::from_secs(5),
        ..all_out()
    };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200u64 {
        let mut detector =
            OutlierDetector::new(config.clone(), 1, RngTree::new(seed).stream("outlier")).unwrap();
        report_all(&mut detector, 0, &[500; 5], ms(0));
        let eligible = detector.eligible_for_unejection_at(HostId(0)).unwrap();
        assert!(
            eligible >= SimTime::from_secs(10) && eligible <= SimTime::from_secs(15),
            "{eligible}"
        );
        seen.insert(eligible);
    }
    assert!(
        seen.len() > 100,
        "jitter varies: {} distinct values",
        seen.len()
    );
}

// ---------------------------------------------------------------------------------------------
// merge window

#[test]
fn health_changes_reach_the_balancer_at_once_or_one_window_later() {
    // Goal: §3.8 rules in order. Method: a first change (at once), a change 300 ms later (held
    // to +1 s), one joining it, the timer firing, a change 1.5 s after that delivery while
    // nothing is pending (at once), and a stale timer.
    let mut merge = UpdateMerge::default();
    assert_eq!(merge.health_changed(ms(1_000)), Delivery::Now);
    assert_eq!(
        merge.health_changed(ms(1_300)),
        Delivery::HeldUntil(ms(2_300))
    );
    assert_eq!(merge.health_changed(ms(1_900)), Delivery::Joined(ms(2_300)));
    assert!(!merge.timer_fired(ms(2_299)));
    assert!(merge.timer_fired(ms(2_300)));
    assert_eq!(merge.health_changed(ms(3_900)), Delivery::Now);
    assert_eq!(merge.stats().update_merge_cancelled, 0);
}

#[test]
fn a_change_after_the_window_cancels_a_held_delivery() {
    // Goal: the oracle's cancellation case (§3.8). Method: deliver at 0, hold a change at 0.9 s
    // (due 1.9 s), then change again at 1.2 s: more than 1 s since the last delivery, so it
    // applies at once and the held delivery's timer does nothing.
    let mut merge = UpdateMerge::default();
    assert_eq!(merge.health_changed(ms(0)), Delivery::Now);
    assert_eq!(
        merge.health_changed(ms(900)),
        Delivery::HeldUntil(ms(1_900))
    );
    assert_eq!(merge.health_changed(ms(1_200)), Delivery::Now);
    assert_eq!(merge.stats().update_merge_cancelled, 1);
    assert!(!merge.timer_fired(ms(1_900)));
}

#[test]
fn the_merge_gap_is_compared_in_whole_milliseconds() {
    // Goal: Envoy's `delta_ms > window_ms`. Method: a change 1000.9 ms after the last delivery
    // is still inside the window; one at 1001 ms is outside.
    let mut merge = UpdateMerge::default();
    merge.health_changed(SimTime::ZERO);
    assert!(matches!(
        merge.health_changed(SimTime::from_nanos(1_000_900_000)),
        Delivery::HeldUntil(_)
    ));
    let mut merge = UpdateMerge::default();
    merge.health_changed(SimTime::ZERO);
    assert_eq!(merge.health_changed(ms(1_001)), Delivery::Now);
}

// ---------------------------------------------------------------------------------------------
// load balancing

fn shares(counts: &[u32]) -> Vec<f64> {
    let total: u32 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| f64::from(c) / f64::from(total))
        .collect()
}

fn pick_host(lb: &mut LoadBalancer, hosts: &HostSet, active: &[u32]) -> HostId {
    match lb.pick(hosts, active) {
        Pick::Host { host, .. } => host,
        Pick::NoHealthyUpstream => panic!("expected a host"),
    }
}

#[test]
fn round_robin_is_a_strict_cycle_from_a_random_start() {
    // Goal: §4.3. Method: 4 hosts, 8 picks: each host twice, in host order; different seeds
    // start at different hosts; after an ejection the same counter walks the shorter list.
    let hosts = HostSet::uniform(4);
    let mut starts = std::collections::BTreeSet::new();
    for seed in 0..16 {
        let mut lb = LoadBalancer::new(LbPolicy::RoundRobin, 50.0, RngTree::new(seed).stream("lb"));
        let picks: Vec<u32> = (0..8)
            .map(|_| pick_host(&mut lb, &hosts, &[0; 4]).0)
            .collect();
        for pair in picks.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 4, "{picks:?}");
        }
        starts.insert(picks[0]);
    }
    assert!(starts.len() > 1, "the start is random");
    let mut lb = LoadBalancer::new(LbPolicy::RoundRobin, 0.0, rng("rr"));
    let mut hosts = HostSet::uniform(4);
    let first = pick_host(&mut lb, &hosts, &[0; 4]);
    hosts.set_health(&[true, false, true, true]);
    let next: Vec<HostId> = (0..6)
        .map(|_| pick_host(&mut lb, &hosts, &[0; 4]))
        .collect();
    assert!(next.iter().all(|&h| h != HostId(1)));
    assert!(first.0 < 4);
}

#[test]
fn least_request_keeps_the_first_draw_unless_a_later_one_is_strictly_less_busy() {
    // Goal: §4.2 power of two choices with replacement. Method: 2 hosts with 5 and 0 active
    // requests: the busy host is chosen only when both draws hit it, 1/4 of the time; with
    // equal load the pick is uniform.
    let hosts = HostSet::uniform(2);
    let mut lb = LoadBalancer::new(LbPolicy::LEAST_REQUEST_DEFAULT, 50.0, rng("p2c"));
    let mut counts = [0u32; 2];
    for _ in 0..40_000 {
        counts[pick_host(&mut lb, &hosts, &[5, 0]).index()] += 1;
    }
    assert!((shares(&counts)[0] - 0.25).abs() < 0.01, "{counts:?}");
    let mut counts = [0u32; 2];
    for _ in 0..40_000 {
        counts[pick_host(&mut lb, &hosts, &[3, 3]).index()] += 1;
    }
    assert!((shares(&counts)[0] - 0.5).abs() < 0.01, "{counts:?}");
}

#[test]
fn least_request_with_unequal_weights_runs_edf_on_weight_over_active_plus_one() {
    // Goal: Envoy's weighted variant (§4.2). Method: weights 1 and 3 with no load give a 1:3
    // split; with host 1 holding 5 requests its effective weight 3/6 is below host 0's 1/1,
    // so host 0 gets the larger share (2:1).
    let hosts = HostSet::weighted(vec![1, 3]);
    let mut lb = LoadBalancer::new(LbPolicy::LEAST_REQUEST_DEFAULT, 50.0, rng("edf"));
    let mut counts = [0u32; 2];
    for _ in 0..4000 {
        counts[pick_host(&mut lb, &hosts, &[0, 0]).index()] += 1;
    }
    assert!((shares(&counts)[1] - 0.75).abs() < 0.01, "{counts:?}");
    let mut counts = [0u32; 2];
    for _ in 0..3000 {
        counts[pick_host(&mut lb, &hosts, &[0, 5]).index()] += 1;
    }
    assert!((shares(&counts)[0] - 2.0 / 3.0).abs() < 0.02, "{counts:?}");
}

#[test]
fn weighted_round_robin_follows_the_weights_and_random_ignores_them() {
    // Goal: §4.3 with unequal weights, as Envoy 1.40 does it (RANDOM is `hosts[random % n]`
    // whatever the weights). Method: weights 1, 2, 5 over 8000 picks each.
    let hosts = HostSet::weighted(vec![1, 2, 5]);
    let mut lb = LoadBalancer::new(LbPolicy::Random, 50.0, rng("random"));
    let mut counts = [0u32; 3];
    for _ in 0..9000 {
        counts[pick_host(&mut lb, &hosts, &[0; 3]).index()] += 1;
    }
    assert!(
        shares(&counts).iter().all(|s| (s - 1.0 / 3.0).abs() < 0.02),
        "{counts:?}"
    );
    let mut lb = LoadBalancer::new(LbPolicy::RoundRobin, 50.0, rng("weighted"));
    let mut counts = [0u32; 3];
    for _ in 0..8000 {
        counts[pick_host(&mut lb, &hosts, &[0; 3]).index()] += 1;
    }
    let share = shares(&counts);
    for (index, expected) in [0.125, 0.25, 0.625].iter().enumerate() {
        assert!((share[index] - expected).abs() < 0.02, "{counts:?}");
    }
}

#[test]
fn panic_mode_spreads_over_all_hosts_below_the_threshold() {
    // Goal: §4.1 and its oracle. Method: 2 of 4 hosts ejected: threshold 60 panics (about
    // 25 % each, counted in lb_healthy_panic), threshold 50 does not (50 % is not below 50);
    // 3 of 4 healthy never panics (availability 105 % caps at 100), even at threshold 80.
    let mut hosts = HostSet::uniform(4);
    hosts.set_health(&[true, false, true, false]);
    let mut lb = LoadBalancer::new(LbPolicy::Random, 60.0, rng("panic"));
    let mut counts = [0u32; 4];
    for _ in 0..8000 {
        counts[pick_host(&mut lb, &hosts, &[0; 4]).index()] += 1;
    }
    assert!(
        shares(&counts).iter().all(|s| (s - 0.25).abs() < 0.02),
        "{counts:?}"
    );
    assert_eq!(lb.stats().lb_healthy_panic, 8000);
    assert!(!hosts.in_panic(50.0));
    let mut lb = LoadBalancer::new(LbPolicy::Random, 50.0, rng("calm"));
    for _ in 0..100 {
        let host = pick_host(&mut lb, &hosts, &[0; 4]);
        assert!(host == HostId(0) || host == HostId(2));
    }
    hosts.set_health(&[true, true, true, false]);
    assert!(!hosts.in_panic(80.0));
}

#[test]
fn no_healthy_host_with_panic_off_is_503_uh() {
    // Goal: the oracle's "threshold 0, both of 2 ejected" case. Method: pick with every host
    // unhealthy; with a threshold above 0 the same cluster panics and picks anyway.
    let mut hosts = HostSet::uniform(2);
    hosts.set_health(&[false, false]);
    let mut lb = LoadBalancer::new(LbPolicy::LEAST_REQUEST_DEFAULT, 0.0, rng("uh"));
    assert_eq!(lb.pick(&hosts, &[0, 0]), Pick::NoHealthyUpstream);
    let mut lb = LoadBalancer::new(LbPolicy::LEAST_REQUEST_DEFAULT, 30.0, rng("uh"));
    assert!(matches!(
        lb.pick(&hosts, &[0, 0]),
        Pick::Host { panic: true, .. }
    ));
    let mut lb = LoadBalancer::new(LbPolicy::RoundRobin, 50.0, rng("empty"));
    assert_eq!(lb.pick(&HostSet::uniform(0), &[]), Pick::NoHealthyUpstream);
}

// ---------------------------------------------------------------------------------------------
// connection pools

fn drain<T>(out: &mut Vec<PoolOutcome<T>>) -> Vec<PoolOutcome<T>> {
    std::mem::take(out)
}

/// Opens every requested connection at once (zero connect time), collecting what follows.
fn settle<T>(
    pools: &mut ConnectionPools<T>,
    mut pending: Vec<PoolOutcome<T>>,
) -> Vec<PoolOutcome<T>> {
    let mut result = Vec::new();
    while let Some(outcome) = pending.pop() {
        if let PoolOutcome::Connect { conn, .. } = outcome {
            let mut out = Vec::new();
            pools.connected(conn, &mut out);
            pending.extend(out);
        } else {
            result.push(outcome);
        }
    }
    result
}

#[test]
fn the_plan_pool_queues_fifty_and_overflows_ten_of_sixty() {
    // Goal: the §5 oracle (100/50/100, maxRequestsPerConnection 2). Method: one host, 100
    // requests in flight, then 60 more: 50 wait, 10 get 503 UO at once.
    let limits = CircuitBreakers {
        max_connections: 100,
        max_pending_requests: 50,
        max_requests: 100,
        max_retries: 3,
    };
    let mut pools = ConnectionPools::new(limits, Some(2), 1);
    let mut out = Vec::new();
    let mut started = Vec::new();
    for request in 0..100 {
        pools.request(HostId(0), request, &mut out);
        started.extend(settle(&mut pools, drain(&mut out)));
    }
    assert_eq!(
        started
            .iter()
            .filter(|o| matches!(o, PoolOutcome::Started { .. }))
            .count(),
        100
    );
    assert_eq!(pools.active(), 100);
    let mut overflowed = 0;
    for request in 100..160 {
        pools.request(HostId(0), request, &mut out);
        overflowed += settle(&mut pools, drain(&mut out))
            .iter()
            .filter(|o| matches!(o, PoolOutcome::Overflow { .. }))
            .count();
    }
    assert_eq!(overflowed, 10);
    assert_eq!(pools.pending(), 50);
    // The queued 50 are then served: each finishing request hands its connection on.
    let mut served_from_queue = 0;
    for outcome in started {
        let PoolOutcome::Started { conn, .. } = outcome else {
            continue;
        };
        pools.finished(conn, &mut out);
        served_from_queue += settle(&mut pools, drain(&mut out))
            .iter()
            .filter(|o| matches!(o, PoolOutcome::Started { request, .. } if *request >= 100))
            .count();
    }
    assert_eq!(served_from_queue, 50);
    assert_eq!(pools.pending(), 0);
    assert_eq!(pools.stats().upstream_rq_pending_overflow, 10);
    assert_eq!(
        pools.stats().upstream_cx_overflow,
        50,
        "every queued request found the connection limit reached"
    );
}

#[test]
fn queued_requests_start_in_arrival_order_as_connections_free_up() {
    // Goal: FIFO pending (§5 step 5). Method: max_connections 1, one host: request 0 runs,
    // 1..=3 wait; each finish hands the connection to the oldest waiting request.
    let limits = CircuitBreakers {
        max_connections: 1,
        ..CircuitBreakers::ISTIO_UNLIMITED
    };
    let mut pools = ConnectionPools::new(limits, None, 1);
    let mut out = Vec::new();
    for request in 0..4 {
        pools.request(HostId(0), request, &mut out);
    }
    let started = settle(&mut pools, drain(&mut out));
    let PoolOutcome::Started {
        request: 0, conn, ..
    } = started[0]
    else {
        panic!("{started:?}")
    };
    for expected in 1..4 {
        pools.finished(conn, &mut out);
        let next = drain(&mut out);
        assert!(
            matches!(next.as_slice(), [PoolOutcome::Started { request, .. }] if *request == expected),
            "{next:?}"
        );
    }
}

#[test]
fn a_connection_closes_after_max_requests_per_connection_and_a_new_one_opens() {
    // Goal: maxRequestsPerConnection (§5 step 5). Method: limit 2 with two requests waiting
    // behind a connection's second request: when it finishes the connection closes and a
    // fresh one is opened for the waiting work.
    let limits = CircuitBreakers {
        max_connections: 1,
        ..CircuitBreakers::ISTIO_UNLIMITED
    };
    let mut pools = ConnectionPools::new(limits, Some(2), 1);
    let mut out = Vec::new();
    for request in 0..3 {
        pools.request(HostId(0), request, &mut out);
    }
    let started = settle(&mut pools, drain(&mut out));
    let PoolOutcome::Started { conn, .. } = started[0] else {
        panic!()
    };
    pools.finished(conn, &mut out);
    let PoolOutcome::Started {
        request: 1,
        conn: same,
        ..
    } = drain(&mut out)[0]
    else {
        panic!()
    };
    assert_eq!(same, conn);
    pools.finished(conn, &mut out);
    let after_close = drain(&mut out);
    assert!(
        matches!(after_close.as_slice(), [PoolOutcome::Connect { .. }]),
        "{after_close:?}"
    );
    assert_eq!(pools.stats().upstream_cx_max_requests, 1);
    assert_eq!(pools.stats().upstream_cx_total, 2);
}

#[test]
fn a_host_with_no_connection_always_gets_one_above_the_limit() {
    // Goal: §5 step 4's exception. Method: max_connections 1 taken by host 0; host 1 still
    // opens a connection (counted as cx_overflow), so two are open.
    let limits = CircuitBreakers {
        max_connections: 1,
        ..CircuitBreakers::ISTIO_UNLIMITED
    };
    let mut pools = ConnectionPools::new(limits, None, 2);
    let mut out = Vec::new();
    pools.request(HostId(0), 0, &mut out);
    settle(&mut pools, drain(&mut out));
    pools.request(HostId(1), 1, &mut out);
    let started = settle(&mut pools, drain(&mut out));
    assert!(matches!(
        started.as_slice(),
        [PoolOutcome::Started { request: 1, .. }]
    ));
    assert_eq!(pools.open_connections(), 2);
    assert_eq!(pools.stats().upstream_cx_overflow, 1);
}

#[test]
fn an_idle_connection_still_overflows_at_max_requests() {
    // Goal: §5 step 2. Method: max_requests 1 across two hosts: host 0 runs one request; host 1
    // has an idle connection from an earlier request, yet its next request gets 503 UO.
    let limits = CircuitBreakers {
        max_requests: 1,
        ..CircuitBreakers::ISTIO_UNLIMITED
    };
    let mut pools = ConnectionPools::new(limits, None, 2);
    let mut out = Vec::new();
    pools.request(HostId(1), 0, &mut out);
    let PoolOutcome::Started { conn, .. } = settle(&mut pools, drain(&mut out))[0] else {
        panic!()
    };
    pools.finished(conn, &mut out);
    pools.request(HostId(0), 1, &mut out);
    settle(&mut pools, drain(&mut out));
    pools.request(HostId(1), 2, &mut out);
    assert_eq!(
        drain(&mut out),
        vec![PoolOutcome::Overflow {
            request: 2,
            host: HostId(1)
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// routing

fn destination(host: &str, subset: &str, weight: u32) -> Destination {
    Destination {
        host: host.into(),
        subset: Some(subset.into()),
        port: None,
        weight,
    }
}

fn header_rule(name: &str, matcher: StringMatchSpec, subset: &str) -> HttpRouteSpec {
    HttpRouteSpec {
        name: None,
        matches: vec![RouteMatchSpec {
            headers: vec![(name.into(), matcher)],
            ..Default::default()
        }],
        route: vec![destination("reviews", subset, 0)],
    }
}

fn subset_of(vs: &VirtualService, request: &HttpRequest) -> Option<String> {
    match vs.route(request, 0) {
        RouteDecision::Forward { destination, .. } => destination.subset.clone(),
        RouteDecision::NoRoute => None,
    }
}

#[test]
fn the_first_matching_rule_wins_and_header_values_are_case_sensitive() {
    // Goal: §6.1–§6.2 and the oracle's `Jason` case. Method: a header rule for v2 before a
    // catch-all for v1.
    let vs = VirtualService::new(&[
        header_rule("end-user", StringMatchSpec::Exact("jason".into()), "v2"),
        HttpRouteSpec {
            name: None,
            matches: vec![],
            route: vec![destination("reviews", "v1", 0)],
        },
    ])
    .unwrap();
    let request = |user: &str| HttpRequest::new("GET", "/reviews").with_header("End-User", user);
    assert_eq!(subset_of(&vs, &request("jason")).as_deref(), Some("v2"));
    assert_eq!(subset_of(&vs, &request("Jason")).as_deref(), Some("v1"));
    assert_eq!(
        subset_of(&vs, &HttpRequest::new("GET", "/")).as_deref(),
        Some("v1")
    );
}

#[test]
fn nothing_matching_is_404_nr() {
    // Goal: no fallback route (§6.1). Method: one prefix rule and a request outside it.
    let rule = HttpRouteSpec {
        name: None,
        matches: vec![RouteMatchSpec {
            uri: Some(StringMatchSpec::Prefix("/api".into())),
            ..Default::default()
        }],
        route: vec![destination("api", "v1", 0)],
    };
    let vs = VirtualService::new(&[rule]).unwrap();
    assert_eq!(
        vs.route(&HttpRequest::new("GET", "/web"), 0),
        RouteDecision::NoRoute
    );
    assert_eq!(
        vs.resolve(&HttpRequest::new("GET", "/web"), 0, |_| 1),
        Err(ResponseFlag::NoRouteFound)
    );
    assert_eq!(ResponseFlag::NoRouteFound.code(), "NR");
    assert_eq!(ResponseFlag::NoRouteFound.status(), 404);
}

#[test]
fn match_blocks_are_ored_and_conditions_inside_a_block_are_anded() {
    // Goal: §6.1. Method: block A = uri prefix /a AND method POST; block B = header x-b
    // present. Requests satisfying A fully, A partly, and B.
    let rule = HttpRouteSpec {
        name: None,
        matches: vec![
            RouteMatchSpec {
                uri: Some(StringMatchSpec::Prefix("/a".into())),
                method: Some(StringMatchSpec::Exact("POST".into())),
                ..Default::default()
            },
            RouteMatchSpec {
                headers: vec![("x-b".into(), StringMatchSpec::Present)],
                ..Default::default()
            },
        ],
        route: vec![destination("svc", "v1", 0)],
    };
    let vs = VirtualService::new(&[rule]).unwrap();
    assert!(subset_of(&vs, &HttpRequest::new("POST", "/a/1")).is_some());
    assert!(subset_of(&vs, &HttpRequest::new("GET", "/a/1")).is_none());
    assert!(subset_of(&vs, &HttpRequest::new("GET", "/z").with_header("x-b", "")).is_some());
}

#[test]
fn uri_matches_follow_envoy_path_rules() {
    // Goal: §6.2 URI semantics. Method: exact ignores the query, prefix is a plain string
    // prefix, regex must match the whole path, ignoreUriCase folds case.
    let uri_rule = |uri, ignore_uri_case| HttpRouteSpec {
        name: None,
        matches: vec![RouteMatchSpec {
            uri: Some(uri),
            ignore_uri_case,
            ..Default::default()
        }],
        route: vec![destination("svc", "v1", 0)],
    };
    let matches = |uri: StringMatchSpec, ignore: bool, path: &str| {
        subset_of(
            &VirtualService::new(&[uri_rule(uri, ignore)]).unwrap(),
            &HttpRequest::new("GET", path),
        )
        .is_some()
    };
    assert!(matches(
        StringMatchSpec::Exact("/login".into()),
        false,
        "/login?next=/"
    ));
    assert!(!matches(
        StringMatchSpec::Exact("/login".into()),
        false,
        "/login/x"
    ));
    assert!(
        matches(StringMatchSpec::Prefix("/api".into()), false, "/apiv2"),
        "a string prefix, not a path segment"
    );
    assert!(matches(
        StringMatchSpec::Regex("/v[0-9]+/.*".into()),
        false,
        "/v2/users"
    ));
    assert!(
        !matches(
            StringMatchSpec::Regex("/v[0-9]+".into()),
            false,
            "/v2/users"
        ),
        "the regex must match the whole path"
    );
    assert!(matches(
        StringMatchSpec::Exact("/Login".into()),
        true,
        "/LOGIN"
    ));
    assert!(!matches(
        StringMatchSpec::Exact("/Login".into()),
        false,
        "/LOGIN"
    ));
    assert!(matches(
        StringMatchSpec::Regex("/admin".into()),
        true,
        "/ADMIN"
    ));
}

#[test]
fn header_regex_is_anchored_and_star_means_present_and_without_headers_inverts() {
    // Goal: §6.2 header details. Method: regex `v[12]` against `v1` and `v10`; `regex: "*"`
    // against a present and a missing header; withoutHeaders on a missing header reads "".
    let vs = VirtualService::new(&[header_rule(
        "version",
        StringMatchSpec::Regex("v[12]".into()),
        "hit",
    )])
    .unwrap();
    assert!(
        subset_of(
            &vs,
            &HttpRequest::new("GET", "/").with_header("version", "v1")
        )
        .is_some()
    );
    assert!(
        subset_of(
            &vs,
            &HttpRequest::new("GET", "/").with_header("version", "v10")
        )
        .is_none()
    );
    let vs = VirtualService::new(&[header_rule(
        "x-debug",
        StringMatchSpec::Regex("*".into()),
        "hit",
    )])
    .unwrap();
    assert!(
        subset_of(
            &vs,
            &HttpRequest::new("GET", "/").with_header("x-debug", "anything")
        )
        .is_some()
    );
    assert!(subset_of(&vs, &HttpRequest::new("GET", "/")).is_none());
    let without = HttpRouteSpec {
        name: None,
        matches: vec![RouteMatchSpec {
            without_headers: vec![("x-canary".into(), StringMatchSpec::Exact("yes".into()))],
            ..Default::default()
        }],
        route: vec![destination("svc", "stable", 0)],
    };
    let vs = VirtualService::new(&[without]).unwrap();
    assert!(
        subset_of(&vs, &HttpRequest::new("GET", "/")).is_some(),
        "a missing header is not `yes`"
    );
    assert!(
        subset_of(
            &vs,
            &HttpRequest::new("GET", "/").with_header("x-canary", "yes")
        )
        .is_none()
    );
}

#[test]
fn weighted_destinations_split_by_cumulative_range_of_the_draw() {
    // Goal: §6.3 `random % total`. Method: 80/0/20: draws 0..80 go to v1, 80..100 to v2, the
    // weight-0 destination never, and the draw wraps modulo the total (not 100).
    let rule = HttpRouteSpec {
        name: None,
        matches: vec![],
        route: vec![
            destination("svc", "v1", 80),
            destination("svc", "never", 0),
            destination("svc", "v2", 20),
        ],
    };
    let vs = VirtualService::new(&[rule]).unwrap();
    let subset = |draw| match vs.route(&HttpRequest::new("GET", "/"), draw) {
        RouteDecision::Forward { destination, .. } => destination.subset.clone().unwrap(),
        RouteDecision::NoRoute => unreachable!("a rule with no match block matches everything"),
    };
    assert_eq!(subset(0), "v1");
    assert_eq!(subset(79), "v1");
    assert_eq!(subset(80), "v2");
    assert_eq!(subset(99), "v2");
    assert_eq!(subset(100), "v1");
    let single = HttpRouteSpec {
        name: None,
        matches: vec![],
        route: vec![destination("svc", "only", 0)],
    };
    assert!(
        VirtualService::new(&[single]).is_ok(),
        "a single destination's weight is ignored"
    );
}

#[test]
fn bad_route_definitions_are_refused_with_the_field_named() {
    // Goal: validation (§6.3 and RE2). Method: all-zero weights and an unbalanced regex.
    let zero = HttpRouteSpec {
        name: None,
        matches: vec![],
        route: vec![destination("a", "x", 0), destination("a", "y", 0)],
    };
    let error = VirtualService::new(&[zero]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("http[0].route: the destination weights add up to 0"),
        "{error}"
    );
    let error = VirtualService::new(&[header_rule(
        "x-user",
        StringMatchSpec::Regex("(".into()),
        "v1",
    )])
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("http[0].match[0].headers.x-user.regex:"),
        "{error}"
    );
}

#[test]
fn a_subset_with_no_ready_endpoint_is_503_uh() {
    // Goal: the routing half of UH. Method: v2 has no Ready endpoint.
    let rule = HttpRouteSpec {
        name: None,
        matches: vec![],
        route: vec![destination("svc", "v2", 0)],
    };
    let vs = VirtualService::new(&[rule]).unwrap();
    let ready = |d: &Destination| {
        if d.subset.as_deref() == Some("v2") {
            0
        } else {
            3
        }
    };
    assert_eq!(
        vs.resolve(&HttpRequest::new("GET", "/"), 0, ready),
        Err(ResponseFlag::NoHealthyUpstream)
    );
    assert_eq!(ResponseFlag::NoHealthyUpstream.status(), 503);
}

// ---------------------------------------------------------------------------------------------
// authorization

fn allow(name: &str, rules: Vec<AuthzRule>) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: name.into(),
        action: AuthzAction::Allow,
        rules,
    }
}

fn from_principals(principals: &[&str]) -> AuthzRule {
    AuthzRule {
        from: vec![AuthzSource {
            principals: principals.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }],
        to: vec![],
    }
}

#[test]
fn without_allow_policies_everything_is_allowed_and_an_empty_allow_allows_nothing() {
    // Goal: the evaluation order's base cases. Method: no policy; ALLOW with no rules;
    // ALLOW with one empty rule.
    let request = HttpRequest::new("GET", "/");
    assert_eq!(authz::check(&[], &request), AuthzDecision::Allow);
    assert_eq!(
        authz::check(&[allow("nothing", vec![])], &request),
        AuthzDecision::Deny { policy: None }
    );
    assert_eq!(
        authz::check(&[allow("everything", vec![AuthzRule::default()])], &request),
        AuthzDecision::Allow
    );
}

#[test]
fn principals_match_exactly_or_with_a_wildcard_at_either_end() {
    // Goal: Istio's value matching. Method: prefix, suffix and `*` patterns against several
    // identities, and a plaintext request with no principal.
    let policy = allow(
        "ns",
        vec![from_principals(&[
            "cluster.local/ns/app/*",
            "*/sa/admin",
            "exact/one",
        ])],
    );
    let decide = |principal: Option<&str>| {
        let mut request = HttpRequest::new("GET", "/");
        request.principal = principal.map(str::to_string);
        authz::check(std::slice::from_ref(&policy), &request).status()
    };
    assert_eq!(decide(Some("cluster.local/ns/app/sa/web")), 200);
    assert_eq!(decide(Some("cluster.local/ns/ops/sa/admin")), 200);
    assert_eq!(decide(Some("exact/one")), 200);
    assert_eq!(decide(Some("exact/one/more")), 403);
    assert_eq!(decide(None), 403);
    let any = allow("any", vec![from_principals(&["*"])]);
    assert_eq!(
        authz::check(std::slice::from_ref(&any), &HttpRequest::new("GET", "/")).status(),
        403,
        "`*` needs an identity"
    );
}

#[test]
fn deny_wins_over_allow_and_operations_check_methods_and_paths() {
    // Goal: DENY first, then ALLOW; operation fields. Method: ALLOW GET on /api/*, DENY any
    // method on /api/admin (query stripped), and a notMethods operation.
    let allow_get = allow(
        "read",
        vec![AuthzRule {
            from: vec![],
            to: vec![AuthzOperation {
                methods: vec!["GET".into()],
                paths: vec!["/api/*".into()],
                ..Default::default()
            }],
        }],
    );
    let deny_admin = AuthorizationPolicy {
        name: "no-admin".into(),
        action: AuthzAction::Deny,
        rules: vec![AuthzRule {
            from: vec![],
            to: vec![AuthzOperation {
                paths: vec!["/api/admin".into()],
                ..Default::default()
            }],
        }],
    };
    let policies = [allow_get, deny_admin];
    assert_eq!(
        authz::check(&policies, &HttpRequest::new("GET", "/api/users")),
        AuthzDecision::Allow
    );
    assert_eq!(
        authz::check(&policies, &HttpRequest::new("POST", "/api/users")).status(),
        403
    );
    assert_eq!(
        authz::check(&policies, &HttpRequest::new("GET", "/api/admin?x=1")),
        AuthzDecision::Deny {
            policy: Some("no-admin".into())
        }
    );
    let not_delete = allow(
        "no-delete",
        vec![AuthzRule {
            from: vec![],
            to: vec![AuthzOperation {
                not_methods: vec!["DELETE".into()],
                ..Default::default()
            }],
        }],
    );
    assert_eq!(
        authz::check(
            std::slice::from_ref(&not_delete),
            &HttpRequest::new("PUT", "/x")
        )
        .status(),
        200
    );
    assert_eq!(
        authz::check(
            std::slice::from_ref(&not_delete),
            &HttpRequest::new("DELETE", "/x")
        )
        .status(),
        403
    );
}

// ---------------------------------------------------------------------------------------------
// upstream: the parts wired together

use super::policy::ClusterPolicy;
use super::upstream::{Upstream, UpstreamEvent};

/// Sends one request and finishes it at `now` with the status its host gives; returns the
/// host it went to.
fn round_trip(
    upstream: &mut Upstream<u32>,
    now: SimTime,
    status_of: impl Fn(HostId) -> u16,
    out: &mut Vec<UpstreamEvent<u32>>,
) -> HostId {
    let host = upstream.send(0, out).expect("a host");
    let mut pending: Vec<UpstreamEvent<u32>> = std::mem::take(out);
    while let Some(event) = pending.pop() {
        match event {
            UpstreamEvent::Connect { conn } => upstream.connected(conn, &mut pending),
            UpstreamEvent::Started { host, conn, .. } => {
                upstream.finished(now, host, conn, AttemptResult::Status(status_of(host)), out);
            }
            other => out.push(other),
        }
    }
    host
}

#[test]
fn a_membership_change_delivers_held_health_changes_at_once() {
    // Goal: §3.8's "membership changes are never held", through `Upstream`. Method: round
    // robin over 3 hosts, host 0 always 503. Its first ejection is delivered at once; the
    // sweep at 2 s unejects it (delivered at once, over 1 s after the last delivery); it is
    // ejected again within 1 s, which is held; adding a host at 2.5 s then delivers the held
    // ejection immediately, along with the new host.
    let policy = ClusterPolicy {
        lb: LbPolicy::RoundRobin,
        outlier: Some(OutlierConfig {
            interval: SimDuration::from_secs(2),
            base_ejection_time: SimDuration::from_secs(1),
            ..all_out()
        }),
        healthy_panic_threshold_percent: 0.0,
        ..ClusterPolicy::default()
    };
    let mut upstream: Upstream<u32> =
        Upstream::new(&policy, 3, &RngTree::new(9).child("mesh")).unwrap();
    let status_of = |host: HostId| if host == HostId(0) { 503 } else { 200 };
    let mut out = Vec::new();
    let mut t = 0;
    while !upstream.detector().unwrap().is_ejected(HostId(0)) {
        t += 10;
        round_trip(&mut upstream, ms(t), status_of, &mut out);
    }
    assert!(t < 200, "five failures take 15 round-robin requests");
    assert!(
        !upstream.hosts().is_healthy(HostId(0)),
        "the first ejection is delivered at once"
    );
    upstream.sweep(ms(2_000), &mut out);
    assert!(
        upstream.hosts().is_healthy(HostId(0)),
        "the unejection is delivered at once"
    );
    let mut t = 2_000;
    while !upstream.detector().unwrap().is_ejected(HostId(0)) {
        t += 10;
        round_trip(&mut upstream, ms(t), status_of, &mut out);
    }
    assert!(
        upstream.hosts().is_healthy(HostId(0)),
        "the re-ejection is held"
    );
    assert_eq!(out, vec![UpstreamEvent::DeliverAt(ms(t + 1_000))]);
    let new_host = upstream.add_host(ms(2_500));
    assert_eq!(new_host, HostId(3));
    assert!(
        !upstream.hosts().is_healthy(HostId(0)),
        "delivered with the membership change"
    );
    assert!(upstream.hosts().is_healthy(new_host));
    assert_eq!(upstream.merge().stats().update_merge_cancelled, 1);
    upstream.merge_timer(ms(t + 1_000));
    assert!(
        !upstream.hosts().is_healthy(HostId(0)),
        "the cancelled timer changes nothing"
    );
}
