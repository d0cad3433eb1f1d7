use super::*;

fn secs(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

fn probe(kind: ProbeKind, initial: i64, period: i64, success: i64, failure: i64) -> Probe {
    Probe::from_fields(
        kind,
        ProbeFields {
            initial_delay_seconds: Some(initial),
            period_seconds: Some(period),
            timeout_seconds: None,
            success_threshold: Some(success),
            failure_threshold: Some(failure),
        },
    )
    .expect("valid probe")
}

#[test]
fn probe_defaults_are_the_kubelets() {
    let probe = Probe::from_fields(ProbeKind::Liveness, ProbeFields::default())
        .expect("defaults are valid");
    assert_eq!(probe.period, SimDuration::from_secs(10));
    assert_eq!(probe.timeout, SimDuration::from_secs(1));
    assert_eq!((probe.success_threshold, probe.failure_threshold), (1, 3));
    assert_eq!(probe.initial_delay, SimDuration::ZERO);
}

#[test]
fn probe_fields_below_their_minimum_are_refused_as_the_api_server_does() {
    let err = Probe::from_fields(
        ProbeKind::Readiness,
        ProbeFields {
            period_seconds: Some(0),
            ..Default::default()
        },
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "periodSeconds: Invalid value: 0: must be greater than or equal to 1"
    );
    let err = Probe::from_fields(
        ProbeKind::Liveness,
        ProbeFields {
            success_threshold: Some(2),
            ..Default::default()
        },
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "successThreshold: Invalid value: 2: must be 1"
    );
    let err = Probe::from_fields(
        ProbeKind::Startup,
        ProbeFields {
            initial_delay_seconds: Some(-1),
            ..Default::default()
        },
    );
    assert!(err.is_err());
}

#[test]
fn the_plans_coordinator_is_ready_at_the_first_tick_after_its_initial_delay() {
    // Goal: the plan's readiness probe (initialDelay 20 s, period 5 s) on a container started
    // 3 s after the worker was created. Method: ticks fall at 0, 5, 10, ... from creation; the
    // first with floor(t - 3) >= 20 is t = 25.
    let readiness = probe(ProbeKind::Readiness, 20, 5, 1, 3);
    assert_eq!(ready_time(&readiness, secs(0), secs(3)), secs(25));
    // Two successes needed: one period later.
    let readiness = probe(ProbeKind::Readiness, 20, 5, 2, 3);
    assert_eq!(ready_time(&readiness, secs(0), secs(3)), secs(30));
    // Started exactly on a tick after no delay: ready on that very tick.
    let readiness = probe(ProbeKind::Readiness, 0, 10, 1, 3);
    assert_eq!(ready_time(&readiness, secs(0), secs(20)), secs(20));
}

#[test]
fn liveness_kills_after_failure_threshold_consecutive_failures() {
    // Goal: first failing probe at t_f, kill at t_f + (failureThreshold - 1) * period (§5.2).
    let liveness = probe(ProbeKind::Liveness, 30, 10, 1, 3);
    let mut worker = ProbeWorker::new(ProbeKind::Liveness, liveness, secs(0));
    let running = ContainerRun::Running {
        started_at: secs(0),
        started: true,
    };
    // Healthy until 60 s, failing from then on.
    let mut kill_at = None;
    let mut t = 0;
    while t <= 200 {
        let outcome = worker.tick(secs(t), running, || t < 60);
        if outcome == ProbeOutcome::Kill {
            kill_at = Some(t);
            break;
        }
        t += 10;
    }
    assert_eq!(kill_at, Some(80));
    // On hold until a new container appears.
    assert_eq!(
        worker.tick(secs(90), running, || false),
        ProbeOutcome::Unchanged
    );
    worker.new_container();
    assert_eq!(worker.result(), ProbeResult::Success);
}

#[test]
fn readiness_drops_after_failure_threshold_and_comes_back_after_success_threshold() {
    let readiness = probe(ProbeKind::Readiness, 0, 5, 2, 3);
    let mut worker = ProbeWorker::new(ProbeKind::Readiness, readiness, secs(0));
    let running = ContainerRun::Running {
        started_at: secs(0),
        started: true,
    };
    let health = |t: u64| !(20..40).contains(&t);
    let mut transitions = Vec::new();
    for t in (0..80).step_by(5) {
        if let ProbeOutcome::Published(result) = worker.tick(secs(t), running, || health(t)) {
            transitions.push((t, result));
        }
    }
    // Success twice (0, 5) → Ready at 5; failures at 20, 25, 30 → NotReady at 30;
    // successes at 40, 45 → Ready at 45.
    assert_eq!(
        transitions,
        vec![
            (5, ProbeResult::Success),
            (30, ProbeResult::Failure),
            (45, ProbeResult::Success)
        ]
    );
}

#[test]
fn liveness_and_readiness_wait_for_the_startup_probe() {
    let readiness = probe(ProbeKind::Readiness, 0, 5, 1, 3);
    let mut worker = ProbeWorker::new(ProbeKind::Readiness, readiness, secs(0));
    let not_started = ContainerRun::Running {
        started_at: secs(0),
        started: false,
    };
    assert_eq!(
        worker.tick(secs(5), not_started, || panic!(
            "must not run before Started"
        )),
        ProbeOutcome::Unchanged
    );
    let startup = probe(ProbeKind::Startup, 0, 10, 1, 3);
    let mut startup_worker = ProbeWorker::new(ProbeKind::Startup, startup, secs(0));
    let outcomes: Vec<_> = (0..4)
        .map(|k| startup_worker.tick(secs(10 * k), not_started, || false))
        .collect();
    assert_eq!(
        outcomes[2],
        ProbeOutcome::Kill,
        "startup allowed initialDelay + failureThreshold x period"
    );
}

#[test]
fn crash_loop_back_off_doubles_from_ten_seconds_to_five_minutes() {
    // Goal: delays after consecutive crashes: immediate, 10, 20, 40, 80, 160, 300, 300 s, each
    // from the previous exit (§5.3). Method: a container that exits 1 s after each start.
    let mut backoff = RestartBackoff::default();
    let mut now = secs(0);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let finished_at = now + SimDuration::from_secs(1);
        let start = backoff.next_start(finished_at);
        if start > finished_at {
            // Asked at the exit, the kubelet waits until exactly `start`.
            let RestartDecision::BackOff { until, .. } = backoff.decide(finished_at, finished_at)
            else {
                panic!("a restart before the back-off has passed must wait");
            };
            assert_eq!(until, start);
        }
        assert_eq!(
            backoff.decide(finished_at, start),
            RestartDecision::StartNow
        );
        delays.push(start.since(finished_at).as_secs());
        now = start;
    }
    assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn back_off_starts_over_after_ten_minutes_of_running() {
    let mut backoff = RestartBackoff::default();
    assert_eq!(backoff.decide(secs(1), secs(1)), RestartDecision::StartNow);
    assert_eq!(backoff.decide(secs(2), secs(12)), RestartDecision::StartNow);
    // Ran from 12 s to 700 s: more than 600 s since the last start.
    assert_eq!(backoff.next_start(secs(700)), secs(700));
    assert_eq!(
        backoff.decide(secs(700), secs(700)),
        RestartDecision::StartNow
    );
    assert_eq!(backoff.next_start(secs(705)), secs(715));
    assert_eq!(
        RestartBackoff::message(SimDuration::from_secs(20), "app", "web-0"),
        "back-off 20s restarting failed container=app pod=web-0"
    );
}
