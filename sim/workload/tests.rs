use super::theory::{BatchMeans, erlang_c, mg1_mean_wait_secs, mmc_mean_wait_secs, student_t_975};
use super::*;
use crate::engine::{RngTree, SimDuration, SimTime};
use proptest::prelude::*;

fn stream(label: &str) -> crate::engine::SimRng {
    RngTree::new(7).stream(label)
}

fn count_between(
    process: &ArrivalProcess,
    from: SimDuration,
    to: SimDuration,
    seed_label: &str,
) -> u64 {
    let arrivals =
        Arrivals::new(process.clone(), stream(seed_label), SimTime::ZERO).expect("valid process");
    arrivals
        .take_while(|t| t.as_nanos() < to.as_nanos())
        .filter(|t| t.as_nanos() >= from.as_nanos())
        .count() as u64
}

/// A Poisson count with mean `expected` lies within 4 standard deviations (a 1-in-15,000 miss).
fn assert_poisson_count(observed: u64, expected: f64, what: &str) {
    let tolerance = 4.0 * expected.sqrt();
    assert!(
        (observed as f64 - expected).abs() <= tolerance,
        "{what}: {observed} arrivals, expected {expected:.1} ± {tolerance:.1}"
    );
}

#[test]
fn constant_arrivals_are_exactly_one_period_apart() {
    // Goal: the deterministic process has no jitter and no drift. Method: 4 req/s gives a
    // 250 ms spacing from the start; the 1001st arrival is at exactly 250 s.
    let mut arrivals = Arrivals::new(
        ArrivalProcess::Constant { rate_per_sec: 4.0 },
        stream("c"),
        SimTime::from_secs(10),
    )
    .unwrap();
    let times: Vec<SimTime> = arrivals.by_ref().take(1001).collect();
    assert_eq!(times[0], SimTime::from_secs(10));
    assert_eq!(times[1], SimTime::from_nanos(10_250_000_000));
    assert_eq!(times[1000], SimTime::from_secs(260));
}

#[test]
fn poisson_arrival_counts_match_the_rate() {
    // Goal: the homogeneous process has the stated rate. Method: count 1000 s at 50 req/s.
    let process = ArrivalProcess::Poisson { rate_per_sec: 50.0 };
    let observed = count_between(
        &process,
        SimDuration::ZERO,
        SimDuration::from_secs(1000),
        "p",
    );
    assert_poisson_count(observed, 50_000.0, "poisson");
}

#[test]
fn thinned_processes_follow_their_rate_shape_window_by_window() {
    // Goal: thinning reproduces each time-varying shape. Method: for every process, count the
    // arrivals in consecutive windows and compare each count with the integral of its rate.
    let processes = [
        ArrivalProcess::Step {
            before_per_sec: 20.0,
            after_per_sec: 80.0,
            at: SimDuration::from_secs(50),
        },
        ArrivalProcess::Ramp {
            from_per_sec: 10.0,
            to_per_sec: 100.0,
            start: SimDuration::from_secs(20),
            duration: SimDuration::from_secs(60),
        },
        ArrivalProcess::Spike {
            base_per_sec: 5.0,
            peak_per_sec: 200.0,
            start: SimDuration::from_secs(30),
            duration: SimDuration::from_secs(10),
        },
        ArrivalProcess::Diurnal {
            peak_per_sec: 120.0,
            trough_per_sec: 10.0,
            period: SimDuration::from_secs(100),
            phase: SimDuration::from_secs(25),
        },
    ];
    for (index, process) in processes.iter().enumerate() {
        let window = SimDuration::from_secs(10);
        let times: Vec<SimTime> = Arrivals::new(
            process.clone(),
            stream(&format!("shape{index}")),
            SimTime::ZERO,
        )
        .unwrap()
        .take_while(|t| t.as_nanos() < 100_000_000_000)
        .collect();
        for window_idx in 0..10u64 {
            let from = window_idx * window.as_nanos();
            let to = from + window.as_nanos();
            let observed = times
                .iter()
                .filter(|t| t.as_nanos() >= from && t.as_nanos() < to)
                .count() as u64;
            let expected = process.expected_arrivals(SimDuration::from_nanos(to))
                - process.expected_arrivals(SimDuration::from_nanos(from));
            assert_poisson_count(
                observed,
                expected,
                &format!("{process:?} window {window_idx}"),
            );
        }
    }
}

#[test]
fn diurnal_rate_peaks_at_the_phase_and_bottoms_half_a_period_later() {
    // Goal: `phase` is the offset of the peak. Method: read the rate at the phase, half a
    // period on, and a quarter period on (the midpoint).
    let process = ArrivalProcess::Diurnal {
        peak_per_sec: 100.0,
        trough_per_sec: 20.0,
        period: SimDuration::from_secs(86_400),
        phase: SimDuration::from_secs(14 * 3600),
    };
    assert!((process.rate_at(SimDuration::from_secs(14 * 3600)) - 100.0).abs() < 1e-9);
    assert!((process.rate_at(SimDuration::from_secs(2 * 3600)) - 20.0).abs() < 1e-9);
    assert!((process.rate_at(SimDuration::from_secs(20 * 3600)) - 60.0).abs() < 1e-9);
    // The shape repeats every period.
    assert!((process.rate_at(SimDuration::from_secs(86_400 + 14 * 3600)) - 100.0).abs() < 1e-9);
}

#[test]
fn a_process_with_zero_rate_everywhere_ends_instead_of_spinning() {
    // Goal: no infinite loop on an idle service. Method: both a flat and a shaped zero rate.
    for process in [
        ArrivalProcess::Poisson { rate_per_sec: 0.0 },
        ArrivalProcess::Step {
            before_per_sec: 0.0,
            after_per_sec: 0.0,
            at: SimDuration::from_secs(5),
        },
    ] {
        let mut arrivals = Arrivals::new(process, stream("zero"), SimTime::ZERO).unwrap();
        assert_eq!(arrivals.next_arrival(), None);
    }
}

#[test]
fn impossible_arrival_shapes_are_refused_with_the_field_named() {
    // Goal: bad rates are errors, not silent zeros. Method: one bad field per process.
    let cases = [
        (
            ArrivalProcess::Poisson { rate_per_sec: -1.0 },
            "poisson.rate_per_sec",
        ),
        (
            ArrivalProcess::Constant {
                rate_per_sec: f64::NAN,
            },
            "constant.rate_per_sec",
        ),
        (
            ArrivalProcess::Diurnal {
                peak_per_sec: 10.0,
                trough_per_sec: 20.0,
                period: SimDuration::from_secs(60),
                phase: SimDuration::ZERO,
            },
            "diurnal.trough_per_sec",
        ),
        (
            ArrivalProcess::Diurnal {
                peak_per_sec: 10.0,
                trough_per_sec: 2.0,
                period: SimDuration::ZERO,
                phase: SimDuration::ZERO,
            },
            "diurnal.period",
        ),
    ];
    for (process, field) in cases {
        let error = Arrivals::new(process, stream("bad"), SimTime::ZERO)
            .err()
            .expect("refused");
        assert!(
            error.to_string().starts_with(field),
            "{error} should name {field}"
        );
    }
}

proptest! {
    #[test]
    fn arrival_times_never_go_backwards(seed in any::<u64>(), peak in 0.1f64..500.0, trough_fraction in 0.0f64..1.0) {
        // Goal: every process yields a non-decreasing sequence. Method: random diurnal and
        // spike shapes from random seeds, 2000 arrivals each.
        let processes = [
            ArrivalProcess::Diurnal { peak_per_sec: peak, trough_per_sec: peak * trough_fraction, period: SimDuration::from_secs(30), phase: SimDuration::from_secs(3) },
            ArrivalProcess::Spike { base_per_sec: peak * trough_fraction, peak_per_sec: peak, start: SimDuration::from_secs(1), duration: SimDuration::from_secs(2) },
        ];
        for process in processes {
            let arrivals = Arrivals::new(process, RngTree::new(seed).stream("p"), SimTime::ZERO).unwrap();
            let mut last = SimTime::ZERO;
            for t in arrivals.take(2000) {
                prop_assert!(t >= last);
                last = t;
            }
        }
    }

    #[test]
    fn the_diurnal_window_minimum_bounds_the_rate_and_is_reached(
        peak in 1.0f64..2000.0,
        trough_fraction in 0.0f64..1.0,
        period_s in 1u64..100_000,
        phase_s in 0u64..200_000,
        from_ms in 0u64..400_000_000,
        width_ms in 0u64..200_000,
    ) {
        // Goal: the thinning squeeze never keeps a candidate the rate would refuse, and stays
        // tight. Method: the rate at 200 points across a random window of a random shape is
        // never below the window's minimum, and the minimum is one of those points or the
        // trough (an end of the window or the trough inside it).
        let process = ArrivalProcess::Diurnal {
            peak_per_sec: peak,
            trough_per_sec: peak * trough_fraction,
            period: SimDuration::from_secs(period_s),
            phase: SimDuration::from_secs(phase_s),
        };
        let (from, to) = (SimDuration::from_millis(from_ms), SimDuration::from_millis(from_ms + width_ms));
        let min = process.diurnal_min_between(from, to).unwrap();
        let mut lowest = f64::INFINITY;
        for k in 0..=200u64 {
            let t = SimDuration::from_nanos(from.as_nanos() + (to.as_nanos() - from.as_nanos()) * k / 200);
            let rate = process.rate_at(t);
            prop_assert!(rate >= min * (1.0 - 1e-9), "rate {rate} at {t} below the minimum {min}");
            lowest = lowest.min(rate);
        }
        let trough = peak * trough_fraction;
        prop_assert!((lowest - min).abs() <= 1e-9 * peak || (min - trough).abs() <= 1e-9 * peak);
        prop_assert_eq!(ArrivalProcess::Poisson { rate_per_sec: 1.0 }.diurnal_min_between(from, to), None);
    }
}

fn quantile(sorted: &[SimDuration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64()
}

#[test]
fn lognormal_fitted_from_p50_and_p99_gives_back_those_quantiles() {
    // Goal: the two-quantile fit is right. Method: 200,000 draws for p50 = 80 ms and
    // p99 = 400 ms; the sample quantiles lie within 2 % of the targets.
    let sampler = ServiceTime::LogNormal {
        p50: SimDuration::from_millis(80),
        p99: SimDuration::from_millis(400),
    }
    .sampler()
    .unwrap();
    let mut rng = stream("lognormal");
    let mut draws: Vec<SimDuration> = (0..200_000).map(|_| sampler.sample(&mut rng)).collect();
    draws.sort();
    assert!(
        (quantile(&draws, 0.50) / 0.080 - 1.0).abs() < 0.02,
        "p50 {}",
        quantile(&draws, 0.5)
    );
    assert!(
        (quantile(&draws, 0.99) / 0.400 - 1.0).abs() < 0.02,
        "p99 {}",
        quantile(&draws, 0.99)
    );
    let mean = draws.iter().map(|d| d.as_secs_f64()).sum::<f64>() / draws.len() as f64;
    assert!(
        (mean / sampler.mean_secs() - 1.0).abs() < 0.02,
        "mean {mean} against {}",
        sampler.mean_secs()
    );
}

#[test]
fn lognormal_with_p99_below_p50_is_an_error() {
    // Goal: inverted quantiles are refused. Method: p50 200 ms, p99 100 ms.
    let error = ServiceTime::LogNormal {
        p50: SimDuration::from_millis(200),
        p99: SimDuration::from_millis(100),
    }
    .sampler()
    .unwrap_err();
    assert!(matches!(error, WorkloadError::QuantilesInverted { .. }));
    assert!(
        error.to_string().contains("p99 (0.1s) is below p50 (0.2s)"),
        "{error}"
    );
}

#[test]
fn exponential_and_constant_service_times_have_their_means() {
    // Goal: the simple distributions are what they say. Method: sample means over 200,000.
    let mut rng = stream("exp");
    let exponential = ServiceTime::Exponential {
        mean: SimDuration::from_millis(250),
    }
    .sampler()
    .unwrap();
    let mean = (0..200_000)
        .map(|_| exponential.sample(&mut rng).as_secs_f64())
        .sum::<f64>()
        / 200_000.0;
    assert!(
        (mean - 0.25).abs() < 0.25 * 4.0 / (200_000f64).sqrt(),
        "exponential mean {mean}"
    );
    let constant = ServiceTime::Constant(SimDuration::from_millis(30))
        .sampler()
        .unwrap();
    assert_eq!(constant.sample(&mut rng), SimDuration::from_millis(30));
    assert!((exponential.second_moment_secs2() - 2.0 * 0.25 * 0.25).abs() < 1e-12);
}

#[test]
fn empirical_service_times_stay_in_their_buckets_in_proportion() {
    // Goal: sampling reads the histogram as histogram_quantile does. Method: buckets with
    // counts 100 / 0 / 300 (cumulative 100, 100, 400); no draw falls in the empty bucket and
    // the other two get 1/4 and 3/4 of the draws.
    let buckets = vec![
        HistogramBucket {
            le: SimDuration::from_millis(10),
            count: 100,
        },
        HistogramBucket {
            le: SimDuration::from_millis(50),
            count: 100,
        },
        HistogramBucket {
            le: SimDuration::from_millis(100),
            count: 400,
        },
    ];
    let sampler = ServiceTime::Empirical { buckets }.sampler().unwrap();
    let mut rng = stream("empirical");
    let (mut first, mut third) = (0u32, 0u32);
    for _ in 0..40_000 {
        let ms = sampler.sample(&mut rng).as_secs_f64() * 1000.0;
        assert!((0.0..=100.0).contains(&ms));
        assert!(
            !(ms > 10.0 && ms < 50.0),
            "{ms} ms fell in the empty bucket"
        );
        if ms <= 10.0 {
            first += 1;
        } else {
            third += 1;
        }
    }
    assert!((f64::from(first) / 40_000.0 - 0.25).abs() < 0.01, "{first}");
    assert!((f64::from(third) / 40_000.0 - 0.75).abs() < 0.01, "{third}");
    assert!((sampler.mean_secs() - (0.25 * 0.005 + 0.75 * 0.075)).abs() < 1e-12);
}

#[test]
fn malformed_histograms_are_refused_with_the_bucket_named() {
    // Goal: each histogram mistake is an error naming the bucket. Method: decreasing bounds,
    // decreasing counts, and all-zero counts.
    let bucket = |ms, count| HistogramBucket {
        le: SimDuration::from_millis(ms),
        count,
    };
    let decreasing_le = ServiceTime::Empirical {
        buckets: vec![bucket(10, 1), bucket(5, 2)],
    }
    .sampler()
    .unwrap_err();
    assert_eq!(
        decreasing_le,
        WorkloadError::BadBucket {
            index: 1,
            why: "le 0.005s is not above the previous bucket's le 0.01s".into()
        }
    );
    let decreasing_count = ServiceTime::Empirical {
        buckets: vec![bucket(10, 5), bucket(20, 2)],
    }
    .sampler()
    .unwrap_err();
    assert!(matches!(
        decreasing_count,
        WorkloadError::BadBucket { index: 1, .. }
    ));
    let empty = ServiceTime::Empirical {
        buckets: vec![bucket(10, 0)],
    }
    .sampler()
    .unwrap_err();
    assert_eq!(empty, WorkloadError::EmptyHistogram);
    assert_eq!(
        ServiceTime::Empirical { buckets: vec![] }
            .sampler()
            .unwrap_err(),
        WorkloadError::EmptyHistogram
    );
}

#[test]
fn pod_queue_starts_up_to_its_limit_then_serves_the_backlog_in_arrival_order() {
    // Goal: the concurrency limit and FIFO order. Method: limit 2, four arrivals, then
    // completions; the waits are measured from each request's own arrival.
    let mut queue = PodQueue::new(2).unwrap();
    let t = SimTime::from_secs;
    assert!(matches!(
        queue.arrive(t(0), "a"),
        Admission::Started(Started { item: "a", .. })
    ));
    assert!(matches!(queue.arrive(t(1), "b"), Admission::Started(_)));
    assert_eq!(queue.arrive(t(2), "c"), Admission::Queued);
    assert_eq!(queue.arrive(t(3), "d"), Admission::Queued);
    assert_eq!((queue.in_service(), queue.backlog_len()), (2, 2));
    assert_eq!(
        queue.complete(t(5)),
        Some(Started {
            item: "c",
            waited: SimDuration::from_secs(3)
        })
    );
    assert_eq!(
        queue.complete(t(6)),
        Some(Started {
            item: "d",
            waited: SimDuration::from_secs(3)
        })
    );
    assert_eq!(queue.complete(t(7)), None);
    assert_eq!((queue.in_service(), queue.backlog_len()), (1, 0));
    assert_eq!(queue.complete(t(8)), None);
    assert_eq!(queue.in_service(), 0);
}

#[test]
fn a_full_backlog_rejects_and_hands_the_request_back() {
    // Goal: the optional backlog limit. Method: limit 1, backlog 1, three arrivals.
    let mut queue = PodQueue::new(1).unwrap().with_backlog_limit(1);
    assert!(matches!(
        queue.arrive(SimTime::ZERO, 1),
        Admission::Started(_)
    ));
    assert_eq!(queue.arrive(SimTime::ZERO, 2), Admission::Queued);
    assert_eq!(queue.arrive(SimTime::ZERO, 3), Admission::Rejected(3));
}

#[test]
fn erlang_c_gives_the_textbook_wait_for_m_m_10_at_80_percent() {
    // Goal: the Erlang C code is right before any simulation is compared with it. Method:
    // M/M/10 with lambda 8/s and mu 1/s has P(wait) 0.4092 and Wq 0.2046 s (queueing tables);
    // M/M/1 reduces to rho / (mu - lambda) and agrees with Pollaczek–Khinchine.
    let probability = erlang_c(10, 8.0).unwrap();
    assert!((probability - 0.4092).abs() < 5e-4, "{probability}");
    let wait = mmc_mean_wait_secs(8.0, 1.0, 10).unwrap();
    assert!((wait - 0.2046).abs() < 5e-5, "{wait}");
    let mm1 = mmc_mean_wait_secs(0.5, 1.0, 1).unwrap();
    assert!((mm1 - 1.0).abs() < 1e-12);
    assert!((mg1_mean_wait_secs(0.5, 1.0, 2.0).unwrap() - mm1).abs() < 1e-12);
    assert!(
        (mg1_mean_wait_secs(0.5, 1.0, 1.0).unwrap() - 0.5).abs() < 1e-12,
        "M/D/1 waits half as long"
    );
    assert_eq!(
        mmc_mean_wait_secs(10.0, 1.0, 10),
        None,
        "rho = 1 has no stationary wait"
    );
    assert_eq!(mg1_mean_wait_secs(2.0, 1.0, 2.0), None);
}

#[test]
fn student_t_quantile_matches_the_table() {
    // Goal: the 97.5 % t quantile is accurate enough for batch means. Method: table values.
    for (df, table) in [(10, 2.228), (19, 2.093), (29, 2.045), (99, 1.984)] {
        assert!(
            (student_t_975(df) - table).abs() < 0.003,
            "df {df}: {}",
            student_t_975(df)
        );
    }
}

#[test]
fn batch_means_interval_covers_the_mean_of_independent_draws() {
    // Goal: the interval arithmetic. Method: 20 batches of the values 0..2000 in order; the
    // grand mean is 999.5 and the batches are 100 apart, so the half-width is known.
    let mut batches = BatchMeans::new(2000, 20);
    for value in 0..2000 {
        batches.record(f64::from(value));
    }
    let interval = batches.interval().unwrap();
    assert!((interval.mean - 999.5).abs() < 1e-9);
    // Batch means 49.5, 149.5, ...: sample standard deviation 100 * sqrt(35) = 591.6.
    let expected = student_t_975(19) * 591.607_978_309_961_6 / 20f64.sqrt();
    assert!(
        (interval.half_width - expected).abs() < 1e-6,
        "{}",
        interval.half_width
    );
}

#[test]
fn single_pod_simulation_completes_every_request_it_generates() {
    // Goal: conservation on the engine path. Method: a small overloaded M/M/2 run; every
    // arrival starts and completes once, and some of them waited.
    let case = single_pod::SinglePodCase {
        arrivals: ArrivalProcess::Poisson { rate_per_sec: 3.0 },
        service: ServiceTime::Exponential {
            mean: SimDuration::from_secs(1),
        },
        concurrency: 2,
        requests: 5000,
        warmup_requests: 0,
        batches: 10,
        seed: 3,
    };
    let run = single_pod::simulate(&case).unwrap();
    assert_eq!((run.started, run.completed), (5000, 5000));
    assert!(
        run.waited > 2500,
        "an overloaded pod makes most requests wait: {}",
        run.waited
    );
    assert_eq!(run.events, 10_000);
}

#[test]
fn arrival_streams_repeat_per_seed_and_label_and_differ_across_them() {
    // Goal: determinism of the arrival streams. Method: the same seed and label give the same
    // 1000 times; another label (another service) or another seed gives different ones.
    let process = ArrivalProcess::Diurnal {
        peak_per_sec: 50.0,
        trough_per_sec: 5.0,
        period: SimDuration::from_secs(60),
        phase: SimDuration::ZERO,
    };
    let times = |seed: u64, label: &str| -> Vec<SimTime> {
        Arrivals::new(
            process.clone(),
            RngTree::new(seed).stream(label),
            SimTime::ZERO,
        )
        .unwrap()
        .take(1000)
        .collect()
    };
    assert_eq!(
        times(1, "workload/a/arrivals"),
        times(1, "workload/a/arrivals")
    );
    assert_ne!(
        times(1, "workload/a/arrivals"),
        times(1, "workload/b/arrivals")
    );
    assert_ne!(
        times(1, "workload/a/arrivals"),
        times(2, "workload/a/arrivals")
    );
}

#[test]
fn a_pod_with_no_concurrency_is_refused() {
    // Goal: a zero limit is an error, not a pod that never serves. Method: build one directly
    // and through the single-pod simulation.
    assert!(matches!(
        PodQueue::<u32>::new(0),
        Err(WorkloadError::InvalidShape {
            field: "concurrency",
            ..
        })
    ));
    let case = single_pod::SinglePodCase {
        arrivals: ArrivalProcess::Poisson { rate_per_sec: 1.0 },
        service: ServiceTime::Constant(SimDuration::from_secs(1)),
        concurrency: 0,
        requests: 10,
        warmup_requests: 0,
        batches: 10,
        seed: 1,
    };
    assert!(single_pod::simulate(&case).is_err());
}

// Trace replay.

fn rate_trace(steps: &[(u64, f64)], spacing: Spacing) -> ArrivalProcess {
    ArrivalProcess::RateTrace {
        steps: steps
            .iter()
            .map(|(from_secs, rate)| (SimDuration::from_secs(*from_secs), *rate))
            .collect(),
        spacing,
    }
}

#[test]
fn a_rate_trace_with_a_header_row_and_one_without_read_the_same() {
    // Goal: the header row is optional and detected. Method: the same rows with and without
    // `time,rps`, times as seconds and as durations, with comments and blank lines.
    let with = trace::parse("time,rps\n# warm-up\n0,5\n\n1m,20\n90.5,0\n").unwrap();
    let without = trace::parse("0,5\n60,20\n1m30.5s,0\n").unwrap();
    assert_eq!(with, without);
    assert_eq!(
        with,
        trace::Trace::Rates(vec![
            (SimDuration::ZERO, 5.0),
            (SimDuration::from_secs(60), 20.0),
            (SimDuration::from_millis(90_500), 0.0),
        ])
    );
}

#[test]
fn a_request_trace_carries_method_path_and_headers_per_row() {
    // Goal: per-request columns reach the rows, empty cells leave defaults, and quoting works.
    // Method: three rows with a header column set on one of them.
    let parsed =
        trace::parse("time,method,path,header:Canary\n0.5,GET,/a,true\n1,,,\n1,POST,\"/b,c\",\n")
            .unwrap();
    let trace::Trace::Requests(rows) = parsed else {
        panic!("a request trace")
    };
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].at, SimDuration::from_millis(500));
    assert_eq!(rows[0].method.as_deref(), Some("GET"));
    assert_eq!(
        rows[0].headers,
        vec![("canary".to_string(), "true".to_string())]
    );
    assert!(!rows[1].sets_fields());
    assert_eq!(rows[2].path.as_deref(), Some("/b,c"));
    assert!(rows[2].headers.is_empty());
}

#[test]
fn malformed_trace_rows_are_refused_with_their_line() {
    // Goal: every kind of bad row names its 1-based line. Method: one text per mistake.
    let cases = [
        ("time,rps\n0,1\n1,abc\n", 3, "rps \"abc\" is not a rate"),
        ("time,rps\n0,1\n2,1\n1,1\n", 4, "not after the previous row"),
        ("0,1\n-1,1\n", 2, "is not a time"),
        ("time\n2\n1\n", 3, "before the previous row"),
        (
            "time,rps\n0,1,2\n",
            2,
            "3 field(s), but the trace has 2 column(s)",
        ),
        ("time,colour\n0,red\n", 1, "unknown column \"colour\""),
        ("time,method,rps\n", 1, "exactly the columns time and rps"),
        ("0,1,2\n", 1, "no header row"),
        ("time,path\n0,nope\n", 2, "does not start with /"),
        ("time,path\n0,\"/a\n", 2, "not closed"),
        ("time,rps\n0,-3\n", 2, "not a rate"),
        ("# nothing\n", 0, "no rows"),
    ];
    for (text, line, needle) in cases {
        let err = trace::parse(text).expect_err(text);
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.why.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn a_replayed_request_trace_yields_exactly_its_times_from_the_stream_start() {
    // Goal: replay is exact. Method: three recorded offsets from a start at 10 s, then the end.
    let process = ArrivalProcess::Replay {
        offsets: vec![
            SimDuration::from_millis(0),
            SimDuration::from_millis(250),
            SimDuration::from_millis(250),
        ]
        .into(),
    };
    let times: Vec<SimTime> = Arrivals::new(process, stream("r"), SimTime::from_secs(10))
        .unwrap()
        .collect();
    assert_eq!(
        times,
        vec![
            SimTime::from_secs(10),
            SimTime::from_nanos(10_250_000_000),
            SimTime::from_nanos(10_250_000_000)
        ]
    );
}

#[test]
fn an_evenly_spaced_rate_trace_gives_each_interval_its_expected_count() {
    // Goal: deterministic spacing carries fractions across rows. Method: 0.5 req/s for 3 s
    // then 2 req/s for 2 s then 0: the expected count reaches k - 1/2 at 1 s, 3 s (the end of
    // the first row holds 1.5), 3.5 s, 4 s, 4.5 s, and the trace ends at 5.5 expected.
    let process = rate_trace(&[(0, 0.5), (3, 2.0), (5, 0.0)], Spacing::Even);
    let times: Vec<f64> = Arrivals::new(process, stream("e"), SimTime::ZERO)
        .unwrap()
        .map(|t| t.as_secs_f64())
        .collect();
    assert_eq!(times, vec![1.0, 3.0, 3.5, 4.0, 4.5]);
}

#[test]
fn a_poisson_rate_trace_has_each_rows_rate() {
    // Goal: the non-homogeneous Poisson replay has the trace's rate in every row. Method:
    // 1000 s at 20 req/s, 500 s at nothing, 1000 s at 80 req/s; counts within 4 sigma.
    let process = rate_trace(&[(0, 20.0), (1000, 0.0), (1500, 80.0)], Spacing::Poisson);
    let count = |from: u64, to: u64| {
        count_between(
            &process,
            SimDuration::from_secs(from),
            SimDuration::from_secs(to),
            "pt",
        )
    };
    assert_poisson_count(count(0, 1000), 20_000.0, "first row");
    assert_eq!(count(1000, 1500), 0, "a zero-rate row has no arrivals");
    assert_poisson_count(count(1500, 2500), 80_000.0, "last row");
    assert!(
        (process.expected_arrivals(SimDuration::from_secs(2500)) - 100_000.0).abs() < 1e-6,
        "expected arrivals integrate the steps exactly"
    );
}

#[test]
fn a_rate_trace_ending_in_zero_ends_its_stream() {
    // Goal: a trace with a last zero row stops instead of looping. Method: count everything.
    let process = rate_trace(&[(0, 100.0), (2, 0.0)], Spacing::Poisson);
    let n = Arrivals::new(process, stream("z"), SimTime::ZERO)
        .unwrap()
        .inspect(|t| assert!(*t < SimTime::from_secs(2)))
        .count();
    assert!((100..=300).contains(&n), "{n} arrivals in 2 s at 100 req/s");
}

#[test]
fn the_shipped_example_trace_parses() {
    // Goal: the example under scenarios/traces/ stays valid. Method: read it from disk.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/traces");
    for entry in std::fs::read_dir(path).expect("scenarios/traces exists") {
        let path = entry.expect("readable").path();
        trace::load(&path).unwrap_or_else(|d| panic!("{d}"));
    }
}

// GPU calibration.

#[test]
fn the_shipped_calibration_is_valid_and_covers_the_sophia_gpu_classes() {
    // Goal: the defaults load, and the topology's classes (A100, H100) are all calibrated.
    // Method: the built-in copy and the folder on disk agree on the classes.
    let builtin = calibration::builtin();
    let on_disk = calibration::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/calibration"),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let classes: Vec<&String> = builtin.classes.keys().collect();
    assert_eq!(classes, vec!["A100", "H100"]);
    assert_eq!(classes, on_disk.classes.keys().collect::<Vec<_>>());
}

fn calibration_text(service_time: &str, slowdown: &str) -> String {
    format!(
        r#"{{
  "schemaVersion": 1,
  "kind": "GpuCalibration",
  "gpuClass": "T",
  "device": "test",
  "source": "estimate",
  "basis": "test",
  "serviceTime": [{service_time}],
  "slowdown": {{"mps": [{slowdown}]}}
}}"#
    )
}

fn check_calibration(text: &str) -> Result<calibration::Calibration, Vec<String>> {
    let file = crate::manifests::typed_from_str::<calibration::CalibrationFile>(
        std::path::Path::new("cal.json"),
        text,
    )
    .map_err(|e| {
        e.diagnostics()
            .iter()
            .map(|d| d.headline())
            .collect::<Vec<_>>()
    })?;
    calibration::validate(&file).map_err(|ds| ds.iter().map(|d| d.headline()).collect())
}

const ONE_ROW: &str = r#"{"batchSize": 1, "p50Ms": 100, "p99Ms": 100, "basis": "b"}"#;
const ALONE: &str = r#"{"tenants": 1, "factor": 1, "basis": "b"}"#;

#[test]
fn bad_calibration_files_are_refused_naming_file_line_and_json_path() {
    // Goal: each validation rule holds and its error points at the value. Method: one file
    // per mistake; the headline carries `cal.json:LINE:COL` and the JSON path.
    let two = |a: &str, b: &str| format!("{a},\n{b}");
    let cases = [
        (
            calibration_text(ONE_ROW, ALONE)
                .replace("\"schemaVersion\": 1", "\"schemaVersion\": 2"),
            "cal.json:2:20: document 1: schemaVersion: schema version 2 is not one this twin reads",
        ),
        (
            calibration_text(
                &two(
                    ONE_ROW,
                    r#"{"batchSize": 1, "p50Ms": 100, "p99Ms": 100, "basis": "b"}"#,
                ),
                ALONE,
            ),
            "cal.json:9:15: document 1: serviceTime[1].batchSize: batch size 1 is not above",
        ),
        (
            calibration_text(
                &two(
                    ONE_ROW,
                    r#"{"batchSize": 2, "p50Ms": 50, "p99Ms": 100, "basis": "b"}"#,
                ),
                ALONE,
            ),
            "serviceTime[1].p50Ms: 50 ms is below the previous row's 100 ms",
        ),
        (
            calibration_text(
                r#"{"batchSize": 1, "p50Ms": 100, "p99Ms": 90, "basis": "b"}"#,
                ALONE,
            ),
            "serviceTime[0].p99Ms: p99 90 ms is below p50 100 ms",
        ),
        (
            calibration_text(
                ONE_ROW,
                &two(ALONE, r#"{"tenants": 2, "factor": 0.8, "basis": "b"}"#),
            ),
            "slowdown.mps[1]: factor 0.8 is below 1",
        ),
        (
            calibration_text(
                ONE_ROW,
                &two(
                    ALONE,
                    r#"{"tenants": 2, "factor": 2, "basis": "b"}, {"tenants": 3, "factor": 1.5, "basis": "b"}"#,
                ),
            ),
            "slowdown.mps[2]: factor 1.5 is below the previous row's 2",
        ),
        (
            calibration_text(ONE_ROW, r#"{"tenants": 2, "factor": 2, "basis": "b"}"#),
            "slowdown.mps: the first row must be {tenants: 1, factor: 1}",
        ),
        (
            calibration_text(
                r#"{"batchSize": 1, "p50Ms": 100, "p99Ms": 100, "basis": " "}"#,
                ALONE,
            ),
            "serviceTime[0].basis: state where this row comes from",
        ),
        (
            calibration_text(ONE_ROW, ALONE).replace("\"device\"", "\"devise\""),
            "unknown field `devise`",
        ),
    ];
    for (text, needle) in cases {
        let problems = check_calibration(&text).expect_err(needle);
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle:?} not in {problems:?}"
        );
        assert!(
            problems.iter().all(|p| p.starts_with("cal.json:")),
            "{problems:?}"
        );
    }
}

#[test]
fn batch_sizes_between_rows_interpolate_and_outside_the_table_are_refused() {
    // Goal: the stated lookup rule for batch sizes. Method: rows at 1 and 5; batch 2 lies a
    // quarter of the way, batch 6 is outside.
    let text = calibration_text(
        &format!(
            "{ONE_ROW}, {}",
            r#"{"batchSize": 5, "p50Ms": 300, "p99Ms": 500, "basis": "b"}"#
        ),
        ALONE,
    );
    let cal = check_calibration(&text).unwrap();
    assert_eq!(
        cal.service_time(2).unwrap(),
        ServiceTime::LogNormal {
            p50: SimDuration::from_millis(150),
            p99: SimDuration::from_millis(200)
        }
    );
    assert_eq!(
        cal.service_time(5).unwrap(),
        ServiceTime::LogNormal {
            p50: SimDuration::from_millis(300),
            p99: SimDuration::from_millis(500)
        }
    );
    assert!(cal.service_time(6).unwrap_err().contains("outside"));
    assert!(cal.service_time(0).is_err());
}

#[test]
fn slowdown_is_one_alone_interpolates_between_rows_and_grows_in_proportion_past_the_table() {
    // Goal: the stated lookup rule for co-tenants. Method: rows (1, 1), (2, 1.8), (4, 3).
    let table = calibration::Slowdown::new(vec![(1, 1.0), (2, 1.8), (4, 3.0)]).unwrap();
    assert_eq!(table.factor(0), 1.0);
    assert_eq!(table.factor(1), 1.0);
    assert_eq!(table.factor(2), 1.8);
    assert!((table.factor(3) - 2.4).abs() < 1e-12);
    assert_eq!(table.factor(4), 3.0);
    assert!((table.factor(8) - 6.0).abs() < 1e-12);
    let shipped = calibration::builtin();
    let a100 = &shipped.classes["A100"];
    let mps = a100
        .slowdown(crate::cluster::gpu::GpuSharing::Mps { replicas: 4 })
        .expect("the A100 file has an MPS table");
    assert_eq!(mps.factor(2), 1.7);
    assert_eq!(
        a100.slowdown(crate::cluster::gpu::GpuSharing::Exclusive)
            .unwrap()
            .factor(3),
        1.0,
        "without sharing there is nothing to slow down"
    );
}

proptest! {
    #[test]
    fn slowdown_never_falls_as_co_tenants_are_added(
        steps in proptest::collection::vec((1u32..5, 0.0f64..3.0), 0..6),
        probe in 0u32..64,
    ) {
        // Goal: any valid table is monotone in the co-tenant count and never below 1, inside
        // the table, between rows and beyond it. Method: random increasing rows, every count
        // up to `probe` and one past it.
        let mut rows = vec![(1u32, 1.0f64)];
        for (gap, rise) in steps {
            let (n, f) = *rows.last().unwrap();
            rows.push((n + gap, f + rise));
        }
        let table = calibration::Slowdown::new(rows).unwrap();
        let mut before = table.factor(0);
        prop_assert!(before >= 1.0);
        for tenants in 1..=probe + 1 {
            let now = table.factor(tenants);
            prop_assert!(now >= before, "factor({tenants}) = {now} < factor({}) = {before}", tenants - 1);
            before = now;
        }
    }

    #[test]
    fn trace_parsing_never_panics_on_arbitrary_text(text in "[0-9a-z,\"#:.\\n /-]{0,200}") {
        // Goal: bad input is an error, never a panic. Method: random short texts.
        let _ = trace::parse(&text);
    }
}
