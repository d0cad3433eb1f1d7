//! The bundled rehearsals: each meets its expectations, reruns byte for byte, matches its golden
//! report, and bad scenario files are refused with file and line before anything runs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

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

fn twin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("twin runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
