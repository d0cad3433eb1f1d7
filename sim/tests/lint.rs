//! `twin lint` end to end: the built binary on the plan's manifests, on JSON output, and on bad
//! input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn twin_lint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twin"))
        .arg("lint")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the twin binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh scratch folder under the target dir (no wall clock, no random names: the test name).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lint")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

#[test]
fn the_plan_fails_lint_and_every_known_problem_is_reported() {
    // Goal: `twin lint fixtures/sophia --topology ...` exits 1 and names each of the plan's
    // problems. Method: run the binary and look for each check id and its key fact.
    let out = twin_lint(&[
        "fixtures/sophia",
        "--topology",
        "fixtures/sophia/topology.yaml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let expected = [
        (
            "error[subset-selects-no-pod]",
            "subset `stable` wants version=stable",
        ),
        (
            "error[subset-selects-no-pod]",
            "subset `canary` wants version=canary",
        ),
        (
            "error[route-to-nothing]",
            "90% of the traffic of spec.http[1] goes to subset `stable`",
        ),
        ("error[anti-affinity-exceeds-nodes]", "only 3 nodes pass"),
        ("error[rollout-cannot-surge]", "with maxUnavailable 0"),
        (
            "error[hpa-metric-without-adapter]",
            "http_requests_per_second",
        ),
        ("error[alert-unit-mismatch]", "HighLLMCosts"),
        ("error[slo-inverted-ratio]", "le=\"1\""),
        (
            "error[series-never-produced]",
            "kube_pod_container_status_restarts_total",
        ),
        (
            "error[series-never-produced]",
            "container_memory_usage_bytes",
        ),
        (
            "error[series-never-produced]",
            "`job=\"agno-coordinator\"` selects nothing",
        ),
        ("error[sloth-field-case]", "`error_ratio_query`"),
        ("error[slo-query-without-window]", "{{ .window }}"),
        (
            "warning[image-latest-if-not-present]",
            "sophia-ai/agno-coordinator:latest",
        ),
        ("warning[gpu-pod-without-probes]", "mcp-agents-gpu"),
        ("warning[node-selector-excludes-gpu-class]", "H100"),
        ("warning[istio-ignored-field]", "consecutive_5xx=5"),
        (
            "warning[zero-denominator]",
            "container_spec_memory_limit_bytes",
        ),
        ("warning[zero-denominator]", "vector(0)"),
        ("warning[authorization-rules-split]", "from anyone"),
        (
            "warning[reference-undefined]",
            "ServiceAccount sophia-production/agno-coordinator",
        ),
        (
            "warning[reference-undefined]",
            "Gateway sophia-production/sophia-gateway",
        ),
        ("warning[hpa-fights-argo-self-heal]", "selfHeal"),
        ("info[istio-field-meaning]", "healthy_panic_threshold 30"),
    ];
    for (head, fact) in expected {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(head) && line.contains(fact)),
            "expected a line starting {head} containing {fact}:\n{stdout}"
        );
    }
    // Every finding has a file:line:col and a fix line.
    let findings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error[") || l.starts_with("warning[") || l.starts_with("info["))
        .collect();
    let fixes = stdout.lines().filter(|l| l.starts_with("  fix: ")).count();
    assert_eq!(findings.len(), fixes);
    let position = regex::Regex::new(r"^\w+\[[a-z0-9-]+\] fixtures/sophia/\S+:\d+:\d+ ").unwrap();
    for line in findings {
        assert!(position.is_match(line), "no file:line:col in {line}");
    }
    assert!(
        stdout.starts_with("inventory:\n"),
        "the inventory comes first:\n{stdout}"
    );
}

#[test]
fn without_a_topology_the_node_count_needed_is_stated() {
    // Goal: the anti-affinity check works without a topology. Method: run without --topology.
    let out = twin_lint(&["fixtures/sophia"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("needs at least 10 schedulable nodes"),
        "{stdout}"
    );
}

#[test]
fn json_output_is_one_stable_object() {
    // Goal: `--format json` prints one object with the inventory and the findings, the same
    // bytes on every run. Method: parse it, check fields, run twice and compare.
    let args = [
        "fixtures/sophia",
        "--topology",
        "fixtures/sophia/topology.yaml",
        "--format",
        "json",
    ];
    let first = twin_lint(&args);
    let second = twin_lint(&args);
    assert_eq!(first.status.code(), Some(1));
    assert_eq!(first.stdout, second.stdout, "same input, same bytes");
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).expect("stdout is JSON");
    assert_eq!(report["inventory"]["Deployment"]["sophia-production"], 2);
    let findings = report["findings"].as_array().expect("findings is an array");
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "subset-selects-no-pod" && f["severity"] == "error")
    );
    for finding in findings {
        for key in ["severity", "check", "object", "location", "message", "fix"] {
            assert!(finding[key].is_string(), "{key} in {finding}");
        }
        assert!(
            finding["line"].as_u64().unwrap_or(0) > 0,
            "a line in {finding}"
        );
    }
}

#[test]
fn a_clean_folder_exits_zero() {
    // Goal: exit 0 when no finding is an error. Method: lint a fixture whose findings are at most
    // warnings.
    let out = twin_lint(&["fixtures/lint/image-latest-if-not-present/good"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn a_yaml_syntax_error_exits_2_with_its_position() {
    // Goal: bad input is reported with file:line:col and a caret, exit 2, no panic.
    // Method: write a file with a key indented under a scalar and lint its folder.
    let dir = scratch("yaml-syntax-error");
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n    bad: indent\ndata: {}\n",
    )
    .unwrap();
    let out = twin_lint(&[dir.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("bad.yaml:5:8"), "file:line:col in {stderr}");
    assert!(
        stderr.contains("5 |     bad: indent") && stderr.contains('^'),
        "the line and a caret in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_directory_exits_2() {
    // Goal: a folder that does not exist is bad input, not a panic. Method: lint a missing path.
    let out = twin_lint(&["fixtures/lint/no-such-folder"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-folder"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_topology_file_exits_2() {
    // Goal: a bad --topology is bad input too. Method: point it at a missing file.
    let out = twin_lint(&[
        "fixtures/lint/subset-selects-no-pod/good",
        "--topology",
        "fixtures/lint/none.yaml",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
