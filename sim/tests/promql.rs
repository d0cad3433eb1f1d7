//! PromQL conformance: Prometheus 2.42's own promqltest suite (the ratchet) and our fixtures
//! for the plan's expressions.

use std::path::{Path, PathBuf};

use twin::promql::promqltest::{self, Outcome, Tally};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "test"))
        .collect();
    files.sort();
    files
}

/// Runs every file, returning the tally and a line per statement that did not pass.
fn run_all(files: &[PathBuf]) -> (Tally, Vec<String>) {
    let mut total = Tally::default();
    let mut problems = Vec::new();
    for path in files {
        let results =
            promqltest::run_file(path).unwrap_or_else(|diag| panic!("{}", diag.render_from_disk()));
        let tally = Tally::of(&results);
        total.passed += tally.passed;
        total.failed += tally.failed;
        total.unsupported += tally.unsupported;
        for r in results {
            match r.outcome {
                Outcome::Pass => {}
                Outcome::Fail(why) | Outcome::Unsupported(why) => {
                    problems.push(format!("{}:{}: {}: {why}", path.display(), r.line, r.expr))
                }
            }
        }
    }
    (total, problems)
}

#[test]
fn upstream_promqltest_suite_passes_at_least_the_recorded_count() {
    // Goal: the evaluator never regresses against Prometheus 2.42's own test suite. Method: run
    // every upstream file and compare the passing count with fixtures/promql/upstream-pass-count.
    let upstream = repo_root().join("../shared/upstream/prometheus-v2.42.0-promqltest");
    if !upstream.is_dir() {
        println!(
            "skipped: {} is absent (the upstream suite is not vendored)",
            upstream.display()
        );
        return;
    }
    let recorded_text =
        std::fs::read_to_string(repo_root().join("fixtures/promql/upstream-pass-count"))
            .expect("fixtures/promql/upstream-pass-count is part of the repository");
    let recorded: usize = recorded_text
        .trim()
        .parse()
        .expect("upstream-pass-count holds one integer");
    let (tally, problems) = run_all(&test_files(&upstream));
    println!(
        "upstream: {} passed, {} failed, {} unsupported",
        tally.passed, tally.failed, tally.unsupported
    );
    for p in &problems {
        println!("  {p}");
    }
    assert!(
        tally.passed >= recorded,
        "{} upstream statements pass, fewer than the recorded {recorded}:\n{}",
        tally.passed,
        problems.join("\n")
    );
}

#[test]
fn the_plans_alert_slo_and_dashboard_expressions_give_their_hand_derived_values() {
    // Goal: the plan's own expressions evaluate as derived by hand. Method: run every
    // fixtures/promql/*.test file; each statement must pass.
    let files = test_files(&repo_root().join("fixtures/promql"));
    assert!(
        files.len() >= 3,
        "the alert, SLO and dashboard fixtures are present"
    );
    let (tally, problems) = run_all(&files);
    assert!(
        problems.is_empty(),
        "fixture statements failed:\n{}",
        problems.join("\n")
    );
    assert!(
        tally.passed >= 28,
        "every fixture statement ran ({} passed)",
        tally.passed
    );
}

mod differential;

fn twin_promql_test(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twin"))
        .arg("promql")
        .arg("test")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("the twin binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn twin_promql_test_reports_per_file_and_in_total_with_exit_codes() {
    // Goal: the CLI contract (0 all passed, 1 a statement failed, 2 malformed input; per-file
    // lines and the closing total). Method: run the binary on a passing fixture, a file with
    // a wrong and an unsupported statement, and a malformed file.
    let (code, stdout, _) = twin_promql_test(&["fixtures/promql/alerts.test"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("fixtures/promql/alerts.test: 13 passed, 0 failed, 0 unsupported"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("13 passed, 0 failed, 0 skipped")
    );

    let (code, stdout, _) = twin_promql_test(&["--verbose", "fixtures/promql/cli/one-wrong.test"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("one-wrong.test: 1 passed, 1 failed, 1 unsupported"),
        "{stdout}"
    );
    assert!(stdout.contains("one-wrong.test:9: FAIL"), "{stdout}");
    assert!(
        stdout.contains("one-wrong.test:12: UNSUPPORTED"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 2 failed, 0 skipped"));

    let (code, _, stderr) = twin_promql_test(&["fixtures/promql/cli/malformed.test"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("fixtures/promql/cli/malformed.test:4:"),
        "{stderr}"
    );
}
