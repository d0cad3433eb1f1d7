//! Integration tests of `workload` and `mesh` through the public API, on the real engine.

use twin::engine::SimDuration;
use twin::workload::single_pod::{SinglePodCase, simulate};
use twin::workload::theory::{erlang_c, mg1_mean_wait_secs, mmc_mean_wait_secs};
use twin::workload::{ArrivalProcess, ServiceTime};

/// Requests per queueing oracle run. One million runs in a few seconds in a debug build, so
/// the full-size check is the one `cargo test` runs; there is no reduced debug variant.
const ORACLE_REQUESTS: u64 = 1_000_000;

fn oracle_case(
    arrival_rate_per_sec: f64,
    service: ServiceTime,
    concurrency: u32,
    seed: u64,
) -> SinglePodCase {
    SinglePodCase {
        arrivals: ArrivalProcess::Poisson {
            rate_per_sec: arrival_rate_per_sec,
        },
        service,
        concurrency,
        requests: ORACLE_REQUESTS,
        // The queue starts empty; the first 1 % is the transient before it reaches steady state.
        warmup_requests: ORACLE_REQUESTS / 100,
        batches: 20,
        seed,
    }
}

#[test]
fn one_pod_with_concurrency_10_matches_erlang_c_for_m_m_10() {
    // Goal: the first oracle. Method: Poisson arrivals at 8/s, exponential service at
    // 1/s, concurrency 10 with a FIFO backlog is M/M/10; over 1,000,000 requests on the engine
    // the mean queue wait's 95 % batch-means interval (20 batches) contains the Erlang C value.
    let expected = mmc_mean_wait_secs(8.0, 1.0, 10).expect("stable queue");
    assert!(
        (expected - 0.2046).abs() < 5e-5,
        "Erlang C gives {expected}, tables give 0.2046"
    );
    let run = simulate(&oracle_case(
        8.0,
        ServiceTime::Exponential {
            mean: SimDuration::from_secs(1),
        },
        10,
        11,
    ))
    .unwrap();
    assert_eq!(run.completed, ORACLE_REQUESTS);
    let interval = run.wait_secs.interval().expect("20 batches");
    assert!(
        interval.contains(expected),
        "simulated {:.4} ± {:.4} s, Erlang C {expected:.4} s",
        interval.mean,
        interval.half_width
    );
    // The interval must also be tight enough to mean something: within 8 % of the value.
    assert!(
        interval.half_width < 0.08 * expected,
        "half-width {:.4} s is too loose",
        interval.half_width
    );
    // The share of requests that waited at all is Erlang C's P(wait), 0.4092: over a million
    // correlated arrivals, within one percentage point.
    let probability_wait = erlang_c(10, 8.0).unwrap();
    let waited_share = run.waited as f64 / run.started as f64;
    assert!(
        (waited_share - probability_wait).abs() < 0.01,
        "{waited_share:.4} waited, Erlang C {probability_wait:.4}"
    );
}

#[test]
fn one_pod_with_concurrency_1_matches_m_m_1() {
    // Goal: the single-server case. Method: lambda 0.7/s, mu 1/s; Wq = rho / (mu - lambda) =
    // 2.333 s, from the Erlang C code with c = 1 and from Pollaczek–Khinchine, which must agree.
    let expected = mmc_mean_wait_secs(0.7, 1.0, 1).unwrap();
    let pollaczek_khinchine = mg1_mean_wait_secs(0.7, 1.0, 2.0).unwrap();
    assert!((expected - pollaczek_khinchine).abs() < 1e-12);
    let run = simulate(&oracle_case(
        0.7,
        ServiceTime::Exponential {
            mean: SimDuration::from_secs(1),
        },
        1,
        12,
    ))
    .unwrap();
    let interval = run.wait_secs.interval().unwrap();
    assert!(
        interval.contains(expected),
        "simulated {:.4} ± {:.4} s, M/M/1 {expected:.4} s",
        interval.mean,
        interval.half_width
    );
    assert!(interval.half_width < 0.05 * expected);
}

#[test]
fn one_pod_with_constant_service_matches_pollaczek_khinchine_for_m_d_1() {
    // Goal: a non-exponential service time. Method: lambda 0.7/s with a constant 1 s service
    // is M/D/1, whose wait is half the M/M/1 wait: Wq = lambda E[S^2] / (2 (1 - rho)) = 1.1667 s
    // with E[S^2] taken from the sampler itself.
    let service = ServiceTime::Constant(SimDuration::from_secs(1));
    let sampler = service.sampler().unwrap();
    let expected =
        mg1_mean_wait_secs(0.7, sampler.mean_secs(), sampler.second_moment_secs2()).unwrap();
    assert!((expected - 7.0 / 6.0).abs() < 1e-12);
    let run = simulate(&oracle_case(0.7, service, 1, 13)).unwrap();
    let interval = run.wait_secs.interval().unwrap();
    assert!(
        interval.contains(expected),
        "simulated {:.4} ± {:.4} s, M/D/1 {expected:.4} s",
        interval.mean,
        interval.half_width
    );
    assert!(interval.half_width < 0.05 * expected);
}

// ---------------------------------------------------------------------------------------------
// mesh: one cluster of one client proxy driven on the engine

use proptest::prelude::*;
use rand::RngExt;
use twin::engine::{Engine, RngTree, SimRng, SimTime};
use twin::mesh::HostId;
use twin::mesh::istio::{IstioVersion, default_retry_policy};
use twin::mesh::outlier::AttemptResult;
use twin::mesh::policy::{CircuitBreakers, ClusterPolicy, LbPolicy, OutlierConfig, RetryPolicy};
use twin::mesh::pool::ConnId;
use twin::mesh::route::{Destination, HttpRequest, HttpRouteSpec, RouteDecision, VirtualService};
use twin::mesh::upstream::{AttemptId, Upstream, UpstreamEvent};

#[derive(Clone, Copy, Debug)]
enum MeshEvent {
    Arrival(u64),
    Connected(ConnId),
    Finish {
        attempt: AttemptId,
        host: HostId,
        conn: ConnId,
    },
    Retry(AttemptId),
    Sweep,
    MergeTimer,
}

/// One cluster run: its policy, and how each host answers (the probability that a response
/// is a 503, per host).
#[derive(Clone, Debug)]
struct ClusterCase {
    policy: ClusterPolicy,
    retry_policy: RetryPolicy,
    n_hosts: u32,
    failure_probability: Vec<f64>,
    requests: u64,
    arrival_gap: SimDuration,
    service: SimDuration,
    connect: SimDuration,
    seed: u64,
}

/// What a run saw.
#[derive(Debug, Default)]
struct ClusterRun {
    /// Per request: how many outcomes it got (must be exactly one).
    outcomes: Vec<u8>,
    rejected_no_healthy_upstream: u64,
    rejected_overflow: u64,
    /// Every pick: time and host.
    picks: Vec<(SimTime, HostId)>,
    /// Picks of a host the detector had ejected more than the merge window (1 s) before,
    /// made while the cluster was not in panic.
    picks_of_long_ejected_hosts_outside_panic: u64,
    max_ejected_seen: u32,
    /// Requests that ended with a 200, and retries made in all.
    completed_ok: u64,
    retries: u64,
    ejections: u64,
    digest: u64,
}

fn fold(digest: u64, value: u64) -> u64 {
    (digest ^ value).wrapping_mul(0x0000_0100_0000_01b3)
}

fn run_cluster(case: &ClusterCase) -> ClusterRun {
    let tree = RngTree::new(case.seed);
    let mut upstream: Upstream<u64> =
        Upstream::new(&case.policy, case.n_hosts, &tree.child("mesh/cluster"))
            .expect("valid policy")
            .with_retry_policy(case.retry_policy.clone());
    let mut responses: SimRng = tree.stream("test/responses");
    let mut engine: Engine<MeshEvent> = Engine::new();
    let mut run = ClusterRun {
        outcomes: vec![0; case.requests as usize],
        digest: 0xcbf2_9ce4_8422_2325,
        ..Default::default()
    };
    let arrivals_end = SimTime::ZERO + case.arrival_gap.saturating_mul(case.requests);
    let horizon = arrivals_end + SimDuration::from_secs(120);
    engine.scheduler().at(SimTime::ZERO, MeshEvent::Arrival(0));
    if let Some(interval) = upstream.sweep_interval() {
        engine.scheduler().after(interval, MeshEvent::Sweep);
    }
    let mut out = Vec::new();
    let window = SimDuration::from_secs(1);
    engine.run_until(horizon, |scheduler, event| {
        let now = scheduler.now();
        let picked = match event {
            MeshEvent::Arrival(request) => {
                if request + 1 < case.requests {
                    scheduler.after(case.arrival_gap, MeshEvent::Arrival(request + 1));
                }
                upstream.send(request, &mut out)
            }
            MeshEvent::Retry(attempt) => upstream.retry(attempt, &mut out),
            MeshEvent::Connected(conn) => {
                upstream.connected(conn, &mut out);
                None
            }
            MeshEvent::Finish {
                attempt,
                host,
                conn,
            } => {
                let fails = responses.random::<f64>() < case.failure_probability[host.index()];
                let status = if fails { 503 } else { 200 };
                upstream.finished(
                    now,
                    attempt,
                    host,
                    conn,
                    AttemptResult::Status(status),
                    &mut out,
                );
                None
            }
            MeshEvent::Sweep => {
                upstream.sweep(now, &mut out);
                let interval = upstream
                    .sweep_interval()
                    .expect("sweeps only with a detector");
                if now < arrivals_end + SimDuration::from_secs(30) {
                    scheduler.after(interval, MeshEvent::Sweep);
                }
                None
            }
            MeshEvent::MergeTimer => {
                upstream.merge_timer(now);
                None
            }
        };
        if let Some(host) = picked {
            run.picks.push((now, host));
            let long_ejected = upstream
                .detector()
                .and_then(|d| d.ejected_at(host))
                .is_some_and(|at| now.since(at) > window);
            if long_ejected && !upstream.in_panic() {
                run.picks_of_long_ejected_hosts_outside_panic += 1;
            }
        }
        if let Some(detector) = upstream.detector() {
            run.max_ejected_seen = run.max_ejected_seen.max(detector.ejected_count());
        }
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                } => scheduler.after(
                    case.service,
                    MeshEvent::Finish {
                        attempt,
                        host,
                        conn,
                    },
                ),
                UpstreamEvent::Completed {
                    request,
                    result,
                    retries,
                } => {
                    run.outcomes[request as usize] += 1;
                    run.retries += u64::from(retries);
                    if result == AttemptResult::Status(200) {
                        run.completed_ok += 1;
                    }
                    let status = match result {
                        AttemptResult::Status(status) => u64::from(status),
                        _ => 0,
                    };
                    run.digest = fold(fold(run.digest, request), status << 32 | now.as_nanos());
                }
                UpstreamEvent::Rejected { request, flag } => {
                    run.outcomes[request as usize] += 1;
                    run.digest = fold(run.digest, request ^ 0xdead);
                    match flag {
                        twin::mesh::ResponseFlag::NoHealthyUpstream => {
                            run.rejected_no_healthy_upstream += 1
                        }
                        twin::mesh::ResponseFlag::UpstreamOverflow => run.rejected_overflow += 1,
                        twin::mesh::ResponseFlag::NoRouteFound
                        | twin::mesh::ResponseFlag::UpstreamConnectionTermination => {
                            unreachable!(
                                "the cluster never routes and never resets a request itself"
                            )
                        }
                    }
                }
                UpstreamEvent::RetryAt { attempt, at } => {
                    scheduler.at(at, MeshEvent::Retry(attempt))
                }
                UpstreamEvent::Connect { conn } => {
                    scheduler.after(case.connect, MeshEvent::Connected(conn))
                }
                UpstreamEvent::DeliverAt(at) => scheduler.at(at, MeshEvent::MergeTimer),
            }
        }
    });
    run.ejections = upstream
        .detector()
        .map_or(0, |d| d.stats().ejections_enforced_total);
    run
}

fn lb_policy_strategy() -> impl Strategy<Value = LbPolicy> {
    prop_oneof![
        Just(LbPolicy::RoundRobin),
        Just(LbPolicy::Random),
        Just(LbPolicy::LEAST_REQUEST_DEFAULT)
    ]
}

prop_compose! {
    fn cluster_case()(
        n_hosts in 1u32..7,
        lb in lb_policy_strategy(),
        max_connections in 1u64..12,
        max_pending in 0u64..12,
        max_requests in 1u64..24,
        per_connection in prop_oneof![Just(None), (1u32..4).prop_map(Some)],
        max_ejection_percent in 0u32..101,
        always_eject_one_host in any::<bool>(),
        panic_threshold in prop_oneof![Just(0.0), Just(50.0), 0.0f64..100.0],
        failures in proptest::collection::vec(prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0], 7),
        gap_ms in 1u64..20,
        service_ms in 1u64..200,
        connect_ms in 0u64..5,
        retries_503 in any::<bool>(),
        max_retries in 1u64..4,
        seed in any::<u64>(),
    ) -> ClusterCase {
        let outlier = OutlierConfig {
            interval: SimDuration::from_millis(500),
            base_ejection_time: SimDuration::from_millis(700),
            max_ejection_percent,
            always_eject_one_host,
            ..OutlierConfig::default()
        };
        ClusterCase {
            policy: ClusterPolicy {
                lb,
                circuit_breakers: CircuitBreakers { max_connections, max_pending_requests: max_pending, max_requests, max_retries },
                max_requests_per_connection: per_connection,
                outlier: Some(outlier),
                healthy_panic_threshold_percent: panic_threshold,
                ..ClusterPolicy::default()
            },
            // Istio's default retries, with or without the pre-1.24 retry of 503 responses.
            retry_policy: default_retry_policy(if retries_503 { IstioVersion::new(1, 23) } else { IstioVersion::CURRENT }),
            n_hosts,
            failure_probability: failures,
            requests: 400,
            arrival_gap: SimDuration::from_millis(gap_ms),
            service: SimDuration::from_millis(service_ms),
            connect: SimDuration::from_millis(connect_ms),
            seed,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_request_ends_in_exactly_one_outcome(case in cluster_case()) {
        // Goal: conservation through LB, pools, detector and retries. Method: random limits,
        // policies, failure rates and retry policies; each request is counted once when it
        // completes (after any retries) or is rejected (503 UH or UO), and never twice.
        let run = run_cluster(&case);
        let unfinished = run.outcomes.iter().filter(|&&n| n == 0).count();
        let doubled = run.outcomes.iter().filter(|&&n| n > 1).count();
        prop_assert_eq!((unfinished, doubled), (0, 0), "seed {}", case.seed);
    }

    #[test]
    fn ejected_hosts_never_exceed_max_ejection_percent(case in cluster_case()) {
        // Goal: §3.4 as an invariant. Method: after every event, the ejected count stays within
        // floor(max% * hosts / 100), or 1 when always_eject_one_host allows a first ejection.
        let run = run_cluster(&case);
        let outlier = case.policy.outlier.as_ref().unwrap();
        let mut allowed = u64::from(outlier.max_ejection_percent) * u64::from(case.n_hosts) / 100;
        if outlier.always_eject_one_host {
            allowed = allowed.max(1);
        }
        prop_assert!(u64::from(run.max_ejected_seen) <= allowed, "{} ejected, {} allowed, seed {}", run.max_ejected_seen, allowed, case.seed);
    }

    #[test]
    fn an_ejected_host_gets_no_traffic_after_the_merge_window_unless_in_panic(case in cluster_case()) {
        // Goal: §3.8 bounds the lag between detector and balancer. Method: at every pick, a
        // host the detector ejected more than 1 s ago is picked only while the cluster panics.
        let run = run_cluster(&case);
        prop_assert_eq!(run.picks_of_long_ejected_hosts_outside_panic, 0, "seed {}", case.seed);
    }

    #[test]
    fn weighted_split_converges_to_the_weights(weights in proptest::collection::vec(0u32..100, 2..5), seed in any::<u64>()) {
        // Goal: §6.3 over many requests. Method: 20,000 draws from a seeded stream; each
        // destination's share lies within 5 binomial standard deviations of weight / total.
        prop_assume!(weights.iter().sum::<u32>() > 0);
        let destinations: Vec<Destination> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Destination { host: "svc".into(), subset: Some(format!("v{i}")), port: None, weight })
            .collect();
        let vs = VirtualService::new(&[HttpRouteSpec { name: None, matches: vec![], route: destinations }]).unwrap();
        let mut rng = RngTree::new(seed).stream("route");
        let request = HttpRequest::new("GET", "/");
        let mut counts = vec![0u32; weights.len()];
        let n = 20_000;
        for _ in 0..n {
            let RouteDecision::Forward { destination, .. } = vs.route(&request, rng.random::<u64>()) else {
                panic!("a rule without match blocks matches everything");
            };
            let index: usize = destination.subset.as_ref().unwrap()[1..].parse().unwrap();
            counts[index] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (index, &weight) in weights.iter().enumerate() {
            let p = f64::from(weight) / f64::from(total);
            let share = f64::from(counts[index]) / f64::from(n);
            let sigma = (p * (1.0 - p) / f64::from(n)).sqrt();
            prop_assert!((share - p).abs() <= 5.0 * sigma + 1e-9, "destination {}: {} against {}", index, share, p);
        }
    }
}

fn failing_first_host_case(seed: u64) -> ClusterCase {
    ClusterCase {
        policy: ClusterPolicy {
            lb: LbPolicy::RoundRobin,
            outlier: Some(OutlierConfig {
                interval: SimDuration::from_secs(1),
                base_ejection_time: SimDuration::from_secs(1),
                max_ejection_percent: 50,
                ..OutlierConfig::default()
            }),
            healthy_panic_threshold_percent: 0.0,
            ..ClusterPolicy::default()
        },
        retry_policy: RetryPolicy::default(),
        n_hosts: 2,
        failure_probability: vec![1.0, 0.0],
        requests: 500,
        arrival_gap: SimDuration::from_millis(20),
        service: SimDuration::from_millis(1),
        connect: SimDuration::ZERO,
        seed,
    }
}

#[test]
fn a_host_reejected_within_a_second_of_its_unejection_keeps_traffic_for_one_more_second() {
    // Goal: the §3.8 oracle on the whole request path. Method: 2 hosts, round robin at
    // 50 req/s, host 0 always 503, interval = base = 1 s. The first ejection removes host 0
    // at once (the next picks avoid it); it comes back at a sweep, fails 5 times within
    // 0.2 s and is ejected again, less than 1 s after the unejection's delivery, so the
    // balancer keeps sending it 1 s of traffic (about 25 requests at its 25 req/s share).
    let case = failing_first_host_case(5);
    let run = run_cluster(&case);
    let to_host_0: Vec<f64> = run
        .picks
        .iter()
        .filter(|(_, host)| *host == HostId(0))
        .map(|(t, _)| t.as_secs_f64())
        .collect();
    // Bursts of picks to host 0 are separated by its ejections; find the gaps over 0.5 s.
    let mut bursts: Vec<(f64, f64, usize)> = Vec::new();
    for &t in &to_host_0 {
        match bursts.last_mut() {
            Some((_, end, count)) if t - *end < 0.5 => {
                *end = t;
                *count += 1;
            }
            _ => bursts.push((t, t, 1)),
        }
    }
    assert!(bursts.len() >= 3, "{bursts:?}");
    // First burst: the five failures before the first ejection, then nothing.
    assert_eq!(bursts[0].2, 5, "{bursts:?}");
    // Second burst: five failures, the re-ejection, then the held second of traffic.
    let (start, end, count) = bursts[1];
    assert!(
        (1.0..1.3).contains(&(end - start)),
        "held for {:.2} s: {bursts:?}",
        end - start
    );
    assert!(
        (28..=32).contains(&count),
        "{count} requests in the second burst"
    );
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_a_different_one() {
    // Goal: determinism of the mesh path (DESIGN: tested, not assumed). Method: a random-LB
    // cluster with a flaky host, run twice per seed; compare the outcome digests.
    let case = |seed| ClusterCase {
        policy: ClusterPolicy {
            lb: LbPolicy::Random,
            ..failing_first_host_case(seed).policy
        },
        failure_probability: vec![0.3, 0.05],
        ..failing_first_host_case(seed)
    };
    assert_eq!(run_cluster(&case(1)).digest, run_cluster(&case(1)).digest);
    assert_ne!(run_cluster(&case(1)).digest, run_cluster(&case(2)).digest);
}

#[test]
fn retrying_503_hides_a_failing_host_from_clients_but_it_is_still_ejected() {
    // Goal: the §2.4 oracle: with the pre-1.24 retry policy in front of a host returning 503,
    // all 200 client requests saw 200 while that host still reached 5 errors and was ejected.
    // Method: 4 hosts, host 0 always 503, max ejection 50 %, 200 requests; once with Istio
    // 1.23's default retries and once with the current ones (no 503 retry), which lets the
    // first five failures through to the client.
    let case = |version| ClusterCase {
        policy: ClusterPolicy {
            lb: LbPolicy::RoundRobin,
            outlier: Some(OutlierConfig {
                max_ejection_percent: 50,
                ..OutlierConfig::default()
            }),
            healthy_panic_threshold_percent: 0.0,
            ..ClusterPolicy::default()
        },
        retry_policy: default_retry_policy(version),
        n_hosts: 4,
        failure_probability: vec![1.0, 0.0, 0.0, 0.0],
        requests: 200,
        arrival_gap: SimDuration::from_millis(10),
        service: SimDuration::from_millis(2),
        connect: SimDuration::ZERO,
        seed: 21,
    };
    let old = run_cluster(&case(IstioVersion::new(1, 23)));
    assert_eq!(old.completed_ok, 200, "every client request saw 200");
    assert_eq!(
        old.ejections, 1,
        "host 0 still reached 5 consecutive errors"
    );
    assert_eq!(old.retries, 5);
    let current = run_cluster(&case(IstioVersion::CURRENT));
    assert_eq!(
        current.completed_ok, 195,
        "the five failures before the ejection reach the client"
    );
    assert_eq!((current.ejections, current.retries), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// The plan's Istio objects (fixtures/sophia/ops/kubernetes/istio/virtual-service.yaml), written
// out by hand in the mesh's own structs: reading the YAML is the manifests module's job.

use twin::mesh::authz::{
    self, AuthorizationPolicy, AuthzAction, AuthzOperation, AuthzRule, AuthzSource,
};
use twin::mesh::route::{RouteMatchSpec, StringMatchSpec};

fn plan_virtual_service() -> VirtualService {
    let destination = |subset: &str, weight| Destination {
        host: "agno-coordinator".into(),
        subset: Some(subset.into()),
        port: None,
        weight,
    };
    VirtualService::new(&[
        HttpRouteSpec {
            name: None,
            matches: vec![RouteMatchSpec {
                headers: vec![("canary".into(), StringMatchSpec::Exact("true".into()))],
                ..RouteMatchSpec::default()
            }],
            route: vec![destination("canary", 100)],
        },
        HttpRouteSpec {
            name: None,
            matches: vec![],
            route: vec![destination("stable", 90), destination("canary", 10)],
        },
    ])
    .expect("the plan's routes compile")
}

fn plan_authorization_policy() -> AuthorizationPolicy {
    let source = |principal: &str| AuthzSource {
        principals: vec![principal.into()],
        ..AuthzSource::default()
    };
    AuthorizationPolicy {
        name: "sophia-auth-policy".into(),
        action: AuthzAction::Allow,
        rules: vec![
            AuthzRule {
                from: vec![
                    source("cluster.local/ns/sophia-production/sa/dashboard"),
                    source("cluster.local/ns/sophia-production/sa/mcp-*"),
                ],
                to: vec![],
            },
            AuthzRule {
                from: vec![],
                to: vec![AuthzOperation {
                    methods: vec!["GET".into()],
                    paths: vec!["/health/*".into(), "/metrics".into()],
                    ..AuthzOperation::default()
                }],
            },
        ],
    }
}

#[test]
fn the_plan_routes_canary_header_traffic_to_canary_and_splits_the_rest_90_10() {
    // Goal: the plan's VirtualService as a sidecar applies it. Method: `canary: true` always
    // goes to canary; `canary: True` (case differs) and no header take the 90/10 split, which
    // over 20,000 seeded draws gives canary 10 % within 5 binomial standard deviations.
    let vs = plan_virtual_service();
    let mut rng = RngTree::new(8).stream("route");
    let subset = |request: &HttpRequest, draw: u64| match vs.route(request, draw) {
        RouteDecision::Forward { destination, .. } => destination.subset.clone().unwrap(),
        RouteDecision::NoRoute => panic!("the second rule is a catch-all"),
    };
    let canary = HttpRequest::new("POST", "/v1/agents").with_header("canary", "true");
    for _ in 0..100 {
        assert_eq!(subset(&canary, rng.random::<u64>()), "canary");
    }
    let other_case = HttpRequest::new("POST", "/v1/agents").with_header("canary", "True");
    let plain = HttpRequest::new("POST", "/v1/agents");
    for request in [other_case, plain] {
        let n = 20_000;
        let to_canary = (0..n)
            .filter(|_| subset(&request, rng.random::<u64>()) == "canary")
            .count() as f64;
        let sigma = (0.1f64 * 0.9 / f64::from(n)).sqrt();
        assert!(
            (to_canary / f64::from(n) - 0.1).abs() < 5.0 * sigma,
            "{to_canary}"
        );
    }
}

#[test]
fn the_plan_authorization_policy_allows_its_callers_and_any_health_or_metrics_get() {
    // Goal: what the plan's ALLOW policy lets through. Method: its two rules are OR'd, so the
    // dashboard and any `mcp-*` service account may call anything, and anyone (even without
    // mTLS) may GET /health/* and /metrics; everything else is 403.
    let policies = [plan_authorization_policy()];
    let ns = "cluster.local/ns/sophia-production/sa";
    let status = |request: HttpRequest| authz::check(&policies, &request).status();
    assert_eq!(
        status(HttpRequest::new("POST", "/v1/agents").with_principal(&format!("{ns}/dashboard"))),
        200
    );
    assert_eq!(
        status(HttpRequest::new("DELETE", "/v1/x").with_principal(&format!("{ns}/mcp-search"))),
        200
    );
    assert_eq!(
        status(HttpRequest::new("POST", "/v1/agents").with_principal(&format!("{ns}/billing"))),
        403
    );
    assert_eq!(
        status(HttpRequest::new("GET", "/health/live")),
        200,
        "no identity needed for health"
    );
    assert_eq!(status(HttpRequest::new("GET", "/metrics?x=1")), 200);
    assert_eq!(status(HttpRequest::new("POST", "/metrics")), 403);
    assert_eq!(
        status(HttpRequest::new("GET", "/healthz")),
        403,
        "`/health/*` is a prefix of `/health/`"
    );
}

#[test]
fn least_request_sends_a_slow_host_about_a_tenth_of_eight_closed_loop_clients() {
    // Goal: the §4.2 oracle: 8 concurrent clients, one host at 200 ms and three at 20 ms,
    // gave the slow host about 9.5 % and the others about 30 % each on real Envoy. Method:
    // 8 closed-loop clients on the engine (each sends again when its answer arrives) through
    // `Upstream` with LEAST_REQUEST (P2C) for 60 s. The model gives the slow host 7.7 % (seed
    // 3); the tolerance, 2.5 points, covers what the model leaves out (network and client
    // latency on top of the service times, two Envoy workers). Fast hosts: 30 % ± 2 points.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        Send(u64),
        Connected(ConnId),
        Finish(AttemptId, HostId, ConnId),
    }
    let policy = ClusterPolicy {
        lb: LbPolicy::LEAST_REQUEST_DEFAULT,
        ..ClusterPolicy::default()
    };
    let tree = RngTree::new(3);
    let mut upstream: Upstream<u64> = Upstream::new(&policy, 4, &tree.child("mesh")).unwrap();
    let mut engine: Engine<Ev> = Engine::new();
    for client in 0..8 {
        engine.scheduler().at(SimTime::ZERO, Ev::Send(client));
    }
    let mut picks = [0u32; 4];
    let mut out = Vec::new();
    let end = SimTime::from_secs(60);
    engine.run_until(end, |scheduler, event| {
        match event {
            Ev::Send(client) => {
                if let Some(host) = upstream.send(client, &mut out) {
                    picks[host.index()] += 1;
                }
            }
            Ev::Connected(conn) => upstream.connected(conn, &mut out),
            Ev::Finish(attempt, host, conn) => upstream.finished(
                scheduler.now(),
                attempt,
                host,
                conn,
                AttemptResult::Status(200),
                &mut out,
            ),
        }
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                } => {
                    let service =
                        SimDuration::from_millis(if host == HostId(0) { 200 } else { 20 });
                    scheduler.after(service, Ev::Finish(attempt, host, conn));
                }
                UpstreamEvent::Completed {
                    request: client, ..
                } if scheduler.now() < end => scheduler.after(SimDuration::ZERO, Ev::Send(client)),
                UpstreamEvent::Connect { conn } => {
                    scheduler.after(SimDuration::ZERO, Ev::Connected(conn))
                }
                _ => {}
            }
        }
    });
    let total: u32 = picks.iter().sum();
    let share = |host: usize| f64::from(picks[host]) / f64::from(total);
    assert!(
        (share(0) - 0.095).abs() < 0.02,
        "slow host share {:.3} ({picks:?})",
        share(0)
    );
    for host in 1..4 {
        assert!(
            (share(host) - 0.30).abs() < 0.02,
            "fast host {host} share {:.3}",
            share(host)
        );
    }
}
