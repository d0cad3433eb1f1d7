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
        if let Some(want) = expected.get("conditions") {
            if &got["conditions"] != want {
                failures.push(format!(
                    "{}: conditions: expected {want}, got {}",
                    file.display(),
                    got["conditions"]
                ));
            }
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
