//! `twin explain schedule` end to end: every case under fixtures/cases/schedule/ must match
//! its hand-derived `expected` block, bad input must exit 2 with a located diagnostic, and a
//! wrong expectation must exit 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXPECTED_FIELDS: [&str; 7] = [
    "feasibleNodes",
    "filterFailures",
    "scores",
    "selectedNode",
    "topNodes",
    "unschedulable",
    "preemption",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn explain(case: &Path, format: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twin"))
        .current_dir(root())
        .args(["explain", "schedule", "--case"])
        .arg(case)
        .args(["--format", format])
        .output()
        .expect("the twin binary runs")
}

fn cases() -> Vec<PathBuf> {
    let dir = root().join("fixtures/cases/schedule");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/cases/schedule exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_schedule_case_matches_its_hand_derived_expectation() {
    // Goal: the scheduler reproduces each case's expected outcome, in both output formats.
    // Method: run the binary on every case; JSON must carry exactly the expected fields and
    // exit 0; text must say the expectation matches.
    let files = cases();
    assert!(
        files.len() >= 12,
        "at least 12 cases, found {}",
        files.len()
    );
    for file in files {
        let text: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("readable"))
                .expect("cases are JSON");
        assert!(
            text.get("expected").is_some() && text.get("note").is_some(),
            "{}: needs expected and note",
            file.display()
        );
        let json = explain(&file, "json");
        assert_eq!(
            json.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&json.stderr)
        );
        let outcome: serde_json::Value =
            serde_json::from_slice(&json.stdout).expect("stdout is one JSON object");
        let mut keys: Vec<&str> = outcome
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want = EXPECTED_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{}", file.display());
        let human = explain(&file, "text");
        assert_eq!(human.status.code(), Some(0), "{}", file.display());
        assert!(
            String::from_utf8_lossy(&human.stdout).contains("expected: matches"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn the_same_case_prints_the_same_bytes_every_time() {
    // Goal: determinism of the report. Method: run two cases twice, including the tie.
    for name in ["score-tie.json", "preemption-respects-pdb.json"] {
        let file = root().join("fixtures/cases/schedule").join(name);
        assert_eq!(
            explain(&file, "json").stdout,
            explain(&file, "json").stdout,
            "{name}"
        );
    }
}

#[test]
fn a_tie_is_reported_with_every_top_node_and_the_deterministic_pick() {
    // Goal: the text output says upstream picks at random and which node twin binds to.
    // Method: the tie case in text form.
    let out = explain(
        &root().join("fixtures/cases/schedule/score-tie.json"),
        "text",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "tie between n-a, n-b: upstream picks one of them at random; twin binds to n-a"
        ),
        "{text}"
    );
}

#[test]
fn a_wrong_expectation_exits_1_and_names_the_field() {
    // Goal: exit code 1 for a failed expectation. Method: a case expecting the wrong winner.
    let out = explain(
        &root().join("fixtures/cases/schedule/mismatch/wrong-winner.json"),
        "json",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mismatch: selectedNode: expected \"n1\", got \"n2\""),
        "{stderr}"
    );
}

#[test]
fn bad_case_files_exit_2_with_file_line_column_and_field() {
    // Goal: strict input with compiler-style errors. Method: an unknown field, a pod on a
    // missing node, malformed JSON and a missing file.
    let expectations = [
        (
            "err/unknown-field.json",
            "err/unknown-field.json:6:12: nodes[0].taint: unknown field `taint`",
        ),
        (
            "err/missing-node.json",
            "err/missing-node.json:8:55: existingPods[0].node: pod is bound to node \"n2\", which does not exist",
        ),
        (
            "err/malformed.json",
            "err/malformed.json:5:3: nodes: trailing comma",
        ),
        ("err/does-not-exist.json", "cannot read"),
    ];
    for (name, headline) in expectations {
        let out = explain(
            Path::new(&format!("fixtures/cases/schedule/{name}")),
            "text",
        );
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(headline), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing is scheduled on bad input"
        );
    }
}
