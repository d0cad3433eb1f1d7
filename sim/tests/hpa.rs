//! `twin explain hpa` end to end: every case under `fixtures/cases/hpa/` through the binary,
//! plus the exit codes for a failed expectation and for input the API server would reject.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn explain(case: &Path, format: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(["explain", "hpa", "--case"])
        .arg(case)
        .args(["--format", format])
        .output()
        .expect("the twin binary runs")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("fixtures/cases/hpa"))
        .expect("fixtures/cases/hpa exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_hpa_case_matches_its_hand_derived_expectation() {
    // Goal: each fixture's `expected` (derived by hand in its note) is what the binary decides.
    // Method: run `--format json` on every case; require exit 0 and compare the printed
    // desiredReplicas, perMetricProposals and conditions with the file's own expected block,
    // independently of the binary's comparison.
    let files = case_files();
    assert!(
        files.len() >= 18,
        "expected at least 18 HPA cases, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("case file is readable");
        let case: serde_json::Value = serde_json::from_str(&text).expect("case file is JSON");
        let expected = &case["expected"];
        assert!(
            expected.is_object(),
            "{} has no expected block",
            file.display()
        );
        let output = explain(file, "json");
        if output.status.code() != Some(0) {
            failures.push(format!(
                "{}: exit {:?}\n{}",
                file.display(),
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let got: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
        for field in [
            "desiredReplicas",
            "currentUtilization",
            "perMetricProposals",
            "limitedBy",
        ] {
            if let Some(want) = expected.get(field) {
                let got_field = &got[field];
                let want = if field == "limitedBy" && want == "none" {
                    &serde_json::Value::Null
                } else {
                    want
                };
                if got_field != want {
                    failures.push(format!(
                        "{}: {field}: expected {want}, got {got_field}",
                        file.display()
                    ));
                }
            }
        }
        if let Some(want) = expected.get("conditions")
            && &got["conditions"] != want
        {
            failures.push(format!(
                "{}: conditions: expected {want}, got {}",
                file.display(),
                got["conditions"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_case_whose_expectation_is_wrong_exits_1_and_says_why() {
    // Goal: a mismatch is a finding (exit 1), reported field by field.
    // Method: copy a case with its desiredReplicas changed and run it in text mode.
    let source = std::fs::read_to_string(repo_path(
        "fixtures/cases/hpa/behavior-default-scale-up-limit.json",
    ))
    .expect("fixture is readable");
    let altered = source.replace("\"desiredReplicas\": 20", "\"desiredReplicas\": 21");
    assert_ne!(source, altered, "the fixture still says 20");
    let path = std::env::temp_dir().join(format!("twin-hpa-mismatch-{}.json", std::process::id()));
    std::fs::write(&path, altered).expect("temp file is writable");
    let output = explain(&path, "text");
    let _ = std::fs::remove_file(&path);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("desiredReplicas: expected 21, got 20"),
        "{stdout}"
    );
}

#[test]
fn input_the_api_server_rejects_exits_2_with_its_reason_and_position() {
    // Goal: invalid HPAs and malformed files are bad input (exit 2) with file:line:col, field
    // path and the API server's wording. Method: run each file under err/ and look for the line.
    let table = [
        (
            "min-above-max.json",
            "min-above-max.json:7:20: spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
        ),
        (
            "utilization-on-pods-metric.json",
            "spec.metrics[0].target.averageValueMilli: Required value: must specify a positive target averageValue",
        ),
        (
            "policy-period-too-long.json",
            "policy-period-too-long.json:10:78: spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
        ),
        (
            "policy-period-too-long.json",
            "policies[0].value: Invalid value: 0: must be greater than zero",
        ),
        (
            "unknown-field.json",
            "unknown-field.json:6:12: replicas: unknown field `replicas`",
        ),
        (
            "malformed.json",
            "malformed.json:3:47: key must be a string",
        ),
    ];
    for (file, needle) in table {
        let output = explain(
            &repo_path(&format!("fixtures/cases/hpa/err/{file}")),
            "text",
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{file}: missing {needle:?} in\n{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{file}: nothing is decided on bad input"
        );
    }
}

#[test]
fn text_output_shows_proposals_limit_and_conditions() {
    // Goal: the text form carries every part of the decision a reader needs.
    // Method: run a multi-metric case with one failed metric and look for each part.
    let output = explain(
        &repo_path("fixtures/cases/hpa/invalid-metrics-scale-up-on-valid.json"),
        "text",
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "replicas: 3 -> 5",
        "current utilization: 90%",
        "[0] cpu resource utilization (percentage of request): 5 replicas",
        "[1] failed: FailedGetExternalMetric",
        "limited by: nothing",
        "ScalingActive True ValidMetricFound",
        "expected: matches",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
}

#[test]
fn a_one_element_array_is_read_as_its_case() {
    // Goal: Appendix A files are arrays; a one-element array is accepted, a longer one is not.
    // Method: wrap a fixture in [ ] (exit 0), then in [ x, x ] (exit 2).
    let source = std::fs::read_to_string(repo_path("fixtures/cases/hpa/cpu-util-scale-up.json"))
        .expect("fixture is readable");
    let dir = std::env::temp_dir();
    let one = dir.join(format!("twin-hpa-one-{}.json", std::process::id()));
    let two = dir.join(format!("twin-hpa-two-{}.json", std::process::id()));
    std::fs::write(&one, format!("[{source}]")).expect("temp file is writable");
    std::fs::write(&two, format!("[{source},{source}]")).expect("temp file is writable");
    let one_out = explain(&one, "json");
    let two_out = explain(&two, "json");
    let _ = std::fs::remove_file(&one);
    let _ = std::fs::remove_file(&two);
    assert_eq!(
        one_out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one_out.stderr)
    );
    assert_eq!(two_out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&two_out.stderr).contains("expected one case per file"));
}

mod coordinator {
    //! The plan's coordinator HPA (fixtures/sophia/ops/kubernetes/deployments/agno-coordinator.yaml)
    //! through a load step, with the controller memory carried from sync to sync.

    use std::collections::BTreeMap;

    use twin::autoscale::hpa::{
        Behavior, ControllerConfig, ControllerMemory, HpaCase, HpaSpec, KubernetesVersion,
        MetricSpec, Pod, PodPhase, PolicyKind, ResourceTarget, ScalingPolicy, ScalingRules,
        recommend,
    };
    use twin::engine::SimDuration;

    const SYNC_SECONDS: u64 = 15;

    /// The HPA as the manifest writes it: min 3, max 10; CPU 70 %, memory 80 %, Pods
    /// http_requests_per_second averageValue 100; scaleUp window 60 s, Percent 100 per 60 s;
    /// scaleDown window 300 s, Percent 10 per 60 s.
    fn coordinator_spec() -> HpaSpec {
        let percent_per_minute = |value| {
            vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value,
                period_seconds: 60,
            }]
        };
        HpaSpec {
            min_replicas: 3,
            max_replicas: 10,
            metrics: vec![
                MetricSpec::Resource {
                    resource: "cpu".into(),
                    container: None,
                    target: ResourceTarget::Utilization(70),
                },
                MetricSpec::Resource {
                    resource: "memory".into(),
                    container: None,
                    target: ResourceTarget::Utilization(80),
                },
                MetricSpec::Pods {
                    name: "http_requests_per_second".into(),
                    target_average_milli: 100_000,
                },
            ],
            behavior: Some(Behavior {
                scale_up: Some(ScalingRules {
                    stabilization_window_seconds: Some(60),
                    policies: Some(percent_per_minute(100)),
                    ..ScalingRules::default()
                }),
                scale_down: Some(ScalingRules {
                    stabilization_window_seconds: Some(300),
                    policies: Some(percent_per_minute(10)),
                    ..ScalingRules::default()
                }),
            }),
        }
    }

    /// `replicas` ready pods sharing `total_rps` evenly. Load model (ours, not the plan's): 5m CPU
    /// per request/s against a 1000m request, memory flat at 10 % of its request.
    fn pods(replicas: i32, total_rps: i64) -> Vec<Pod> {
        let n = i64::from(replicas);
        (0..replicas)
            .map(|idx| Pod {
                name: format!("agno-coordinator-{idx:04}"),
                phase: PodPhase::Running,
                ready: Some(true),
                deleted: false,
                // New pods are taken as ready at once and past the CPU initialization period.
                started_ago: Some(SimDuration::from_secs(3600)),
                ready_transition_ago: Some(SimDuration::from_secs(3500)),
                metric_age: SimDuration::ZERO,
                requests: BTreeMap::from([("cpu".into(), 1000), ("memory".into(), 1_000_000)]),
                usage: BTreeMap::from([
                    ("cpu".into(), 5 * total_rps / n),
                    ("memory".into(), 100_000),
                    ("http_requests_per_second".into(), 1000 * total_rps / n),
                ]),
                containers: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn coordinator_follows_the_hand_derived_trajectory_through_a_load_step() {
        // Goal: the plan's behavior policies give the trajectory derived below when load steps
        // from 300 to 1,200 req/s at t = 0 and back to 300 at t = 600 s.
        // Method: 20 steady syncs before the step (the controller starts with no list, so it
        // seeds one), then a sync every 15 s to t = 1,260 s, each decision's memory aged 15 s
        // and its replica count fed back as scale.spec.replicas.
        //
        // Hand derivation. The rps metric proposes ceil((1000 R / N) / 100000 * N) = ceil(R/100)
        // whenever it is out of band; CPU proposes 9 at 1,200 req/s and 3 at 300; memory at most 2.
        // - t < 0, R = 300, N = 3: ratio 1.0 is in band, proposal 3, steady at 3.
        // - t = 0, 15, 30 (R = 1,200): proposal 12, but the 60 s up window still holds the 3s
        //   recorded at t = -15, -30, -45: up = min(12, 3) = 3, stabilized 3 (ScaleUpStabilized).
        // - t = 45: the last 3 (t = -15) is now exactly 60 s old, not < 60: up = 12. Percent 100
        //   per 60 s from period start 3: ceil(3 * 2) = 6 < max 10, so 6 (ScaleUpLimit).
        // - t = 60, 75, 90: the +3 event is younger than 60 s: start 6 - 3 = 3, limit 6: hold 6.
        // - t = 105: the event is 60 s old: start 6, limit 12, but max 10: 10 (TooManyReplicas).
        // - t = 120 .. 585: R/N = 120 per pod, ratio 1.2, proposal 12, capped at 10.
        // - t = 600 (R = 300): proposal 3, but the down window holds max(12s recorded at t <= 585):
        //   stabilized stays 10 until t = 885, when the t = 585 entry is exactly 300 s old.
        // - t = 885: down = 3; Percent 10 per 60 s from 10: trunc(10 * 0.9) = 9 (ScaleDownLimit).
        //   Each later minute: start = current + the last minute's 1, so trunc(start * 0.9) keeps
        //   the size until that event is 60 s old; then trunc(9 * 0.9) = 8 at 945, 7 at 1005
        //   (trunc 7.2), 6 at 1065 (trunc 6.3), 5 at 1125, 4 at 1185 (trunc 4.5), and at 1245
        //   trunc(3.6) = 3 = minReplicas (TooFewReplicas): 3.
        let version = KubernetesVersion::CURRENT;
        let mut case = HpaCase {
            name: "sophia/agno-coordinator".into(),
            version,
            controller: ControllerConfig::defaults_for(version),
            spec: coordinator_spec(),
            spec_replicas: 3,
            status_replicas: 3,
            metric_window: SimDuration::from_secs(60),
            metric_desired_replicas: None,
            pods: Vec::new(),
            extra_samples: Vec::new(),
            memory: ControllerMemory::default(),
        };
        let mut trajectory = BTreeMap::new();
        for sync in -20i64..=84 {
            let t = sync * SYNC_SECONDS as i64;
            let total_rps = if (0..600).contains(&t) { 1200 } else { 300 };
            case.pods = pods(case.spec_replicas, total_rps);
            let decision = recommend(&case);
            trajectory.insert(t, decision.desired_replicas);
            case.spec_replicas = decision.desired_replicas;
            case.status_replicas = decision.desired_replicas;
            case.memory = decision.memory.aged(SimDuration::from_secs(SYNC_SECONDS));
        }
        let expected_at = |t: i64| match t {
            ..45 => 3,
            45..105 => 6,
            105..885 => 10,
            885..945 => 9,
            945..1005 => 8,
            1005..1065 => 7,
            1065..1125 => 6,
            1125..1185 => 5,
            1185..1245 => 4,
            _ => 3,
        };
        let wrong: Vec<String> = trajectory
            .iter()
            .filter(|(t, replicas)| expected_at(**t) != **replicas)
            .map(|(t, replicas)| format!("t={t}s: expected {}, got {replicas}", expected_at(*t)))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
