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
