//! The bundled rehearsals: each meets its expectations, reruns byte for byte, matches its golden
//! report, and bad scenario files are refused with file and line before anything runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::support::{root, twin};

fn bundled() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn report(path: &Path, seed: Option<u64>) -> (String, bool, Vec<String>) {
    let loaded = twin::scenario::load(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let result =
        twin::scenario::run(&loaded, seed).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let failed = result
        .expectations
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(what, _, detail)| format!("{what}: {detail}"))
        .collect();
    let text =
        serde_json::to_string_pretty(&twin::report::json(&result)).expect("reports serialize");
    (text, result.passed(), failed)
}

#[test]
fn every_bundled_scenario_meets_its_expectations_reruns_byte_identical_and_matches_its_golden_report()
 {
    // Goal: the rehearsals CI keeps showing; determinism. Method: run each scenario twice with
    // its own seed and compare the JSON bytes, then against fixtures/reports/<name>.json
    // (UPDATE_GOLDEN=1 rewrites them; review the diff like code).
    let files = bundled();
    assert!(files.len() >= 9, "at least nine rehearsals are bundled");
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    for path in files {
        let (first, passed, failed) = report(&path, None);
        assert!(
            passed,
            "{} fails its expectations: {failed:?}",
            path.display()
        );
        let (second, _, _) = report(&path, None);
        assert!(
            first == second,
            "{} is not deterministic: two runs with the same seed differ",
            path.display()
        );
        let name = path
            .file_stem()
            .expect("a file name")
            .to_string_lossy()
            .to_string();
        let golden = root().join("fixtures/reports").join(format!("{name}.json"));
        if update {
            std::fs::write(&golden, format!("{first}\n")).expect("writes the golden report");
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!(
                    "{} is missing (UPDATE_GOLDEN=1 writes it)",
                    golden.display()
                )
            });
            assert!(
                want.trim_end() == first,
                "{} differs from {}; rerun with UPDATE_GOLDEN=1 and review the diff",
                path.display(),
                golden.display()
            );
        }
    }
}

#[test]
fn another_seed_changes_a_randomized_rehearsal() {
    // Goal: the seed really drives the randomness. Method: the canary rehearsal (Poisson
    // arrivals, lognormal service, error draws) under two seeds.
    let path = root().join("scenarios/bad-canary-rollback.yaml");
    let (a, _, _) = report(&path, Some(1));
    let (b, _, _) = report(&path, Some(2));
    assert_ne!(a, b);
}

#[test]
fn bad_scenarios_are_refused_with_file_and_line_and_nothing_runs() {
    // Goal: each kind of bad input the issue names exits 2 with a diagnostic pointing at it.
    // Method: one small file per mistake under fixtures/scenarios/err/, each naming the text the
    // error must contain.
    let cases = [
        (
            "syntax-error.yaml",
            "syntax-error.yaml:8:1: document 1: load[0]: YAML syntax error",
        ),
        ("unknown-field.yaml", "unknown field `loadd`"),
        (
            "fault-unknown-deployment.yaml",
            "no Deployment named agno-coordinatr",
        ),
        ("negative-rate.yaml", "rate"),
        ("zero-duration.yaml", "a scenario lasts longer than zero"),
        (
            "unknown-alert.yaml",
            "no alerting rule named HighErrorRates",
        ),
        (
            "rollout-bad-abort-rule.yaml",
            "rollouts[0].analysis.abortWhen",
        ),
        (
            "rollout-unknown-subset.yaml",
            "the DestinationRule of agno-coordinator has no subset named preview",
        ),
        (
            "rollout-expectation-unknown.yaml",
            "no rollout named coordinator-2.0",
        ),
        (
            "zero-metric-resolution.yaml",
            "zero-metric-resolution.yaml:10:28: document 1: assumptions.metricsServerResolution: must be longer than zero",
        ),
    ];
    for (file, needle) in cases {
        let path = format!("fixtures/scenarios/err/{file}");
        let (code, stdout, stderr) = twin(&["run", &path]);
        assert_eq!(code, 2, "{file}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains(needle),
            "{file}: stderr lacks {needle:?}:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("{file}:")),
            "{file}: the diagnostic names the file:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(
            stdout.is_empty(),
            "{file}: nothing is simulated or printed: {stdout}"
        );
    }
}

#[test]
fn twin_run_prints_the_seed_and_the_rerun_command_and_exits_by_verdict() {
    let (code, stdout, _) = twin(&["run", "scenarios/canary-subsets-select-nothing.yaml"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("(seed 11): PASS"), "{stdout}");
    assert!(
        stdout.contains("rerun: twin run scenarios/canary-subsets-select-nothing.yaml --seed 11"),
        "{stdout}"
    );
    let (code, stdout, _) = twin(&["run", "fixtures/scenarios/failing-expectation.yaml"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[FAILED]"), "{stdout}");
}

#[test]
fn a_reader_that_goes_away_ends_twin_quietly_not_in_a_panic() {
    // Goal: `twin run ... | head` stops without a panic. Method: the pipe's read end is closed
    // before twin writes its first line; twin must end with SIGPIPE's status (141) and no
    // panic on stderr.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twin"))
        .args([
            "run",
            "scenarios/canary-subsets-select-nothing.yaml",
            "--out",
        ])
        .arg(std::env::temp_dir().join("twin-broken-pipe"))
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("twin starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("twin ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/scenarios").join(name)
}

fn run_loaded(loaded: &twin::scenario::Loaded) -> twin::scenario::RunResult {
    twin::scenario::run(loaded, None).unwrap_or_else(|e| panic!("{e:?}"))
}

fn deployment_index(result: &twin::scenario::RunResult, name: &str) -> usize {
    result
        .world
        .deployment_names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

#[test]
fn a_request_traces_header_column_reaches_the_requests_and_routes_them() {
    // Goal: per-request header columns of a trace reach the request the VirtualService
    // matches. Method: ten replayed requests, three with `x-route: b`, which the route sends to
    // web-b; the others go to web-a. Every request is answered 200.
    let loaded = twin::scenario::load(fixture("trace-replay.yaml")).expect("loads");
    let result = run_loaded(&loaded);
    let answered = |name: &str| -> u64 {
        result.world.stats[deployment_index(&result, name)]
            .by_status
            .values()
            .sum()
    };
    assert_eq!(answered("web-b"), 3);
    assert_eq!(answered("web-a"), 7);
    assert_eq!(result.world.arrivals, 10);
}

#[test]
fn authorization_policies_refuse_with_403_before_the_application() {
    // Goal: the server sidecar enforces the AuthorizationPolicies selecting its pod: a DENY
    // policy wins over the plan's ALLOW one, an identity the ALLOW policy does not list is
    // refused, and the application never sees a refused request. Method: constant streams from
    // 2 m to 5 m: the dashboard's POST /v1/agents/run (20/s, admitted), its GET
    // /admin/reindex?full=1 (5/s, DENY on /admin/*, the query string ignored), and billing's
    // POST (2/s, not admitted): exactly 900 and 360 refusals, none among the first stream.
    let loaded = twin::scenario::load(fixture("authz-deny.yaml")).expect("loads");
    let result = run_loaded(&loaded);
    let count = |load: usize, status: u16| -> u64 {
        result.world.outcomes[load]
            .iter()
            .filter(|(k, _)| k.status == status)
            .map(|(_, n)| *n)
            .sum()
    };
    assert_eq!(count(0, 403), 0);
    assert!(count(0, 200) > 3500, "{:?}", result.world.outcomes[0]);
    assert_eq!(count(1, 403), 900, "{:?}", result.world.outcomes[1]);
    assert_eq!(count(2, 403), 360, "{:?}", result.world.outcomes[2]);
    let coordinator = deployment_index(&result, "agno-coordinator");
    assert_eq!(result.world.authz_denied[coordinator], 1260);
    // The application's histogram holds only what it answered.
    let stats = &result.world.stats[coordinator];
    assert_eq!(stats.by_status.get(&403), Some(&1260));
    assert_eq!(stats.latency_us.len(), count(0, 200) + count(0, 500));
    let report = twin::report::json(&result);
    let denials: Vec<&str> = report["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .filter(|e| e["kind"] == "RequestDenied")
        .map(|e| e["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(
        denials[0].contains("DENY policy deny-admin matches"),
        "{denials:?}"
    );
    assert!(
        denials[1].contains("sa/billing: no ALLOW policy of sophia-auth-policy admits it"),
        "{denials:?}"
    );
}

#[test]
fn an_authorization_policy_the_model_cannot_evaluate_is_refused_with_its_line() {
    // Goal: a `when` condition is valid Istio the model does not evaluate: refused before
    // anything runs, naming the manifest, the document, the line and the field.
    let (code, stdout, stderr) = twin(&["run", "fixtures/scenarios/err/authz-unsupported.yaml"]);
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "nothing simulated: {stdout}");
    assert!(
        stderr.contains("authz-when.yaml:16:7: document 1: spec.rules[0].when: a when condition is valid Istio but not modelled"),
        "{stderr}"
    );
}

#[test]
fn a_canary_answering_20_percent_503s_is_ejected_and_its_twin_takes_the_canary_traffic() {
    // Goal: the plan's outlier rule (Envoy's default 5 consecutive 5xx, ejection 30 s x times
    // ejected, maxEjectionPercent 50 of 2 canary pods) on a canary failing 20 % of its
    // requests: a pod is ejected now and then, never both at once, and while one is out the
    // other takes all the canary subset's traffic (10 % of the split plus the 5 % with the
    // canary header: about 43.5 req/s), the ejected one none. Method: the pods' own
    // http_requests_total as scraped every 15 s, between the first scrape 10 s after each
    // ejection (the 1 s merge window and the requests already in flight have passed) and the
    // last scrape 1 s before its unejection.
    let loaded = twin::scenario::load(fixture("canary-20pct-503.yaml")).expect("loads");
    let result = run_loaded(&loaded);
    assert!(result.passed(), "{:?}", result.expectations);
    let report = twin::report::json(&result);
    let log = report["outlierEjections"].as_array().expect("a log");
    let store = &result.world.storage.store;
    // A pod's requests as of the last scrape at or before `t_ms`: (that scrape's time, count).
    let served = |pod: &str, t_ms: i64| -> (i64, f64) {
        let matchers = [
            twin::telemetry::store::Matcher::equal("__name__", "http_requests_total"),
            // The plan's scrape job labels a pod's series with its target, `<pod>:9090`.
            twin::telemetry::store::Matcher::equal("instance", &format!("{pod}:9090")),
        ];
        let mut at = 0;
        let mut total = 0.0;
        for id in store.select(&matchers) {
            if let Some(sample) = store.series(id).samples_between(t_ms - 14_999, t_ms).last() {
                at = at.max(sample.t_ms);
                total += sample.value;
            }
        }
        (at, total)
    };
    let canary_pods: BTreeSet<String> = log
        .iter()
        .map(|e| e["pod"].as_str().expect("a pod").to_string())
        .collect();
    let mut windows = 0;
    for pair in log.chunks(2) {
        let [eject, uneject] = pair else { break };
        assert_eq!(
            (eject["action"].as_str(), uneject["action"].as_str()),
            (Some("eject"), Some("uneject"))
        );
        assert_eq!(
            eject["pod"], uneject["pod"],
            "one pod out at a time: {log:?}"
        );
        let out = eject["pod"].as_str().expect("a pod");
        let at = |e: &serde_json::Value| (e["atSecs"].as_f64().expect("a time") * 1000.0) as i64;
        // Scrapes every 15 s: the one at or before t1 is at least 10 s into the ejection.
        let (t1, t2) = (at(eject) + 25_000, at(uneject) - 1_000);
        let twin_pod = canary_pods
            .iter()
            .find(|p| p.as_str() != out)
            .expect("the other canary pod was ejected at some point too");
        let ((s1, before), (s2, after)) = (served(twin_pod, t1), served(twin_pod, t2));
        if s2 <= s1 {
            continue;
        }
        windows += 1;
        assert_eq!(
            served(out, t2).1 - served(out, t1).1,
            0.0,
            "{out} served while ejected, scrapes in [{t1}, {t2}] ms"
        );
        let rate = (after - before) / ((s2 - s1) as f64 / 1000.0);
        assert!(
            (35.0..52.0).contains(&rate),
            "{twin_pod} took {rate:.1} req/s while {out} was out"
        );
    }
    assert!(windows >= 3, "ejection windows checked: {windows}");
}

#[test]
fn requests_in_flight_on_a_container_that_dies_fail_with_503_uc() {
    // Goal: the status Envoy gives for an upstream reset before the response headers (503,
    // flag UC) is what in-flight requests get when their pod dies. Method: the worker takes 10 s
    // per request, 1 request a second arrives from 10 s, its container exits at 35.5 s: the ten
    // requests that arrived at 26 s to 35 s are in flight and cut; the sixteen before completed.
    let loaded = twin::scenario::load(fixture("in-flight-cut.yaml")).expect("loads");
    let result = run_loaded(&loaded);
    let outcomes = &result.world.outcomes[0];
    let count = |status: u16, flag: Option<&str>| -> u64 {
        outcomes
            .iter()
            .filter(|(k, _)| k.status == status && k.flag == flag)
            .map(|(_, n)| *n)
            .sum()
    };
    assert_eq!(count(503, Some("UC")), 10, "{outcomes:?}");
    assert_eq!(count(200, None), 16, "{outcomes:?}");
    assert_eq!(result.world.arrivals, 26);
}

#[test]
fn two_gpu_pods_sharing_one_device_serve_slower_than_one_alone_by_the_calibrated_factor() {
    // Goal: GPU work is slowed by co-tenants per the calibration. Method: the test calibration
    // gives 100 ms alone and a factor of 1.5 for two pods under MPS; the load is light enough
    // that nothing queues, so the pod-side latency is the service time: 150 ms with both
    // replicas on the one device, 100 ms with one replica (a patch), within hdrhistogram's
    // 3-digit precision.
    let mean_ms = |loaded: &twin::scenario::Loaded| -> f64 {
        let result = run_loaded(loaded);
        let stats = &result.world.stats[deployment_index(&result, "gpu-worker")];
        assert!(stats.latency_us.len() > 200, "requests were served");
        stats.latency_us.mean() / 1000.0
    };
    let shared = twin::scenario::load(fixture("gpu-shared-device.yaml")).expect("loads");
    let mut alone = twin::scenario::load(fixture("gpu-shared-device.yaml")).expect("loads");
    alone
        .inventory
        .patch(
            "Deployment",
            "gpu-worker",
            None,
            &serde_json::json!({"spec": {"replicas": 1}}),
        )
        .expect("the Deployment exists");
    let (shared_ms, alone_ms) = (mean_ms(&shared), mean_ms(&alone));
    assert!((alone_ms - 100.0).abs() < 0.2, "alone: {alone_ms} ms");
    assert!((shared_ms - 150.0).abs() < 0.3, "shared: {shared_ms} ms");
}

#[test]
fn bad_traces_calibrations_and_histograms_are_refused_naming_their_file_and_line() {
    // Goal: the new inputs fail like every other: exit 2, the file and line of the mistake.
    // Method: one scenario per mistake under fixtures/scenarios/err/.
    let cases = [
        (
            "trace-bad-row.yaml",
            "traces/bad-row.csv:3:1: rps \"fast\" is not a rate",
        ),
        (
            "calibration-not-monotone.yaml",
            "calibration-not-monotone.json:14:",
        ),
        ("calibration-not-monotone.yaml", "factor 0.9 is below 1"),
        (
            "empirical-unsampleable.yaml",
            "3 observation(s) lie above the last finite bound",
        ),
    ];
    for (file, needle) in cases {
        let path = format!("fixtures/scenarios/err/{file}");
        let (code, stdout, stderr) = twin(&["run", &path]);
        assert_eq!(code, 2, "{file}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains(needle),
            "{file}: stderr lacks {needle:?}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(stdout.is_empty(), "{file}: {stdout}");
    }
}
