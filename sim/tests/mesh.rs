//! Integration tests of `workload` and `mesh` through the public API, on the real engine.

use twin::engine::SimDuration;
use twin::workload::single_pod::{SinglePodCase, simulate};
use twin::workload::theory::{mg1_mean_wait_secs, mmc_mean_wait_secs};
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
use twin::mesh::outlier::AttemptResult;
use twin::mesh::policy::{CircuitBreakers, ClusterPolicy, LbPolicy, OutlierConfig};
use twin::mesh::pool::ConnId;
use twin::mesh::route::{Destination, HttpRequest, HttpRouteSpec, RouteDecision, VirtualService};
use twin::mesh::upstream::{Upstream, UpstreamEvent};

#[derive(Clone, Copy, Debug)]
enum MeshEvent {
    Arrival(u64),
    Connected(ConnId),
    Finish {
        request: u64,
        host: HostId,
        conn: ConnId,
    },
    Sweep,
    MergeTimer,
}

/// One cluster run: its policy, and how each host answers (the probability that a response
/// is a 503, per host).
#[derive(Clone, Debug)]
struct ClusterCase {
    policy: ClusterPolicy,
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
    digest: u64,
}

fn fold(digest: u64, value: u64) -> u64 {
    (digest ^ value).wrapping_mul(0x0000_0100_0000_01b3)
}

fn run_cluster(case: &ClusterCase) -> ClusterRun {
    let tree = RngTree::new(case.seed);
    let mut upstream: Upstream<u64> =
        Upstream::new(&case.policy, case.n_hosts, &tree.child("mesh/cluster"))
            .expect("valid policy");
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
        match event {
            MeshEvent::Arrival(request) => {
                if request + 1 < case.requests {
                    scheduler.after(case.arrival_gap, MeshEvent::Arrival(request + 1));
                }
                if let Some(host) = upstream.send(request, &mut out) {
                    run.picks.push((now, host));
                    let detector = upstream.detector();
                    let long_ejected = detector
                        .and_then(|d| d.ejected_at(host))
                        .is_some_and(|at| now.since(at) > window);
                    if long_ejected && !upstream.in_panic() {
                        run.picks_of_long_ejected_hosts_outside_panic += 1;
                    }
                }
            }
            MeshEvent::Connected(conn) => upstream.connected(conn, &mut out),
            MeshEvent::Finish {
                request,
                host,
                conn,
            } => {
                run.outcomes[request as usize] += 1;
                let fails = responses.random::<f64>() < case.failure_probability[host.index()];
                let status = if fails { 503 } else { 200 };
                run.digest = fold(
                    fold(run.digest, request),
                    u64::from(status) << 32 | u64::from(host.0),
                );
                upstream.finished(now, host, conn, AttemptResult::Status(status), &mut out);
            }
            MeshEvent::Sweep => {
                upstream.sweep(now, &mut out);
                let interval = upstream
                    .sweep_interval()
                    .expect("sweeps only with a detector");
                if now < arrivals_end + SimDuration::from_secs(30) {
                    scheduler.after(interval, MeshEvent::Sweep);
                }
            }
            MeshEvent::MergeTimer => upstream.merge_timer(now),
        }
        if let Some(detector) = upstream.detector() {
            run.max_ejected_seen = run.max_ejected_seen.max(detector.ejected_count());
        }
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    request,
                    host,
                    conn,
                } => scheduler.after(
                    case.service,
                    MeshEvent::Finish {
                        request,
                        host,
                        conn,
                    },
                ),
                UpstreamEvent::Rejected { request, flag } => {
                    run.outcomes[request as usize] += 1;
                    run.digest = fold(run.digest, request ^ 0xdead);
                    match flag {
                        twin::mesh::ResponseFlag::NoHealthyUpstream => {
                            run.rejected_no_healthy_upstream += 1
                        }
                        twin::mesh::ResponseFlag::UpstreamOverflow => run.rejected_overflow += 1,
                        twin::mesh::ResponseFlag::NoRouteFound => {
                            unreachable!("the cluster never routes")
                        }
                    }
                }
                UpstreamEvent::Connect { conn } => {
                    scheduler.after(case.connect, MeshEvent::Connected(conn))
                }
                UpstreamEvent::DeliverAt(at) => scheduler.at(at, MeshEvent::MergeTimer),
            }
        }
    });
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
                circuit_breakers: CircuitBreakers { max_connections, max_pending_requests: max_pending, max_requests, max_retries: 3 },
                max_requests_per_connection: per_connection,
                outlier: Some(outlier),
                healthy_panic_threshold_percent: panic_threshold,
                ..ClusterPolicy::default()
            },
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
        // Goal: conservation through LB, pools and detector. Method: random limits, policies
        // and failure rates; each request is counted once when it completes or is rejected
        // (503 UH or UO), and never twice.
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
