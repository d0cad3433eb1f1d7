//! The run directory and its exports, against the real peers: the OpenMetrics export imported
//! by `promtool tsdb create-blocks-from openmetrics` and served by a real Prometheus 2.42 on
//! loopback, range-queried with every panel expression of the plan's Grafana dashboard next
//! to twin's own range evaluation; and the promtool unit test made from a rehearsal, run by
//! both `twin rules test` and `promtool test rules`. Without the peers these tests say why
//! they skipped, and fail instead when `TWIN_REQUIRE_PEERS=1` (CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twin::live::prometheus::Prometheus;
use twin::live::{find_peer, peers_required};
use twin::promql::{Engine, RangeSeries, Value};
use twin::report::run_dir;
use twin::telemetry::store::{Store, is_stale_nan};

use super::support::{root, twin};

/// The peer, or `None` after printing why the test skips (a failure under TWIN_REQUIRE_PEERS=1).
fn peer(test: &str, var: &str, name: &str) -> Option<PathBuf> {
    match find_peer(var, name) {
        Ok(path) => Some(path),
        Err(why) => {
            assert!(!peers_required(), "{name} is required: {why}");
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// Runs a scenario with `--out` into `out` and returns its run directory.
fn run_into(scenario: &str, out: &Path) -> PathBuf {
    let out_text = out.display().to_string();
    let (code, stdout, stderr) = twin(&["run", scenario, "--out", &out_text]);
    assert!(
        code == 0 || code == 1,
        "twin run {scenario}: {stdout}{stderr}"
    );
    let name = Path::new(scenario)
        .file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let dir = out.join(name);
    assert!(
        stdout.contains(&format!("run directory: {}", dir.display())),
        "{stdout}"
    );
    dir
}

/// Every `expr` of every panel of the plan's dashboards, with the panel's title.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dir = root().join("fixtures/sophia/monitoring/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the dashboards folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let json: serde_json::Value = serde_json::from_str(&text).expect("a dashboard is JSON");
        let dashboard = json.get("dashboard").unwrap_or(&json);
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((
                        panel["title"].as_str().unwrap_or("").to_string(),
                        expr.to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// Equal within float tolerance: the same bits, both NaN, or a relative difference of at
/// most 1e-9 (sums over series may add in another order: Prometheus adds in the order its
/// blocks return series, twin in label-set order).
fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn differences(twin: &[RangeSeries], prometheus: &[RangeSeries]) -> Vec<String> {
    let mut out = Vec::new();
    let labels = |s: &[RangeSeries]| s.iter().map(|r| r.labels.to_string()).collect::<Vec<_>>();
    if labels(twin) != labels(prometheus) {
        out.push(format!(
            "series differ: twin {:?}, prometheus {:?}",
            labels(twin),
            labels(prometheus)
        ));
        return out;
    }
    for (t, p) in twin.iter().zip(prometheus) {
        let times = |r: &RangeSeries| r.samples.iter().map(|s| s.t_ms).collect::<Vec<_>>();
        if times(t) != times(p) {
            out.push(format!(
                "{}: steps differ: twin {:?}, prometheus {:?}",
                t.labels,
                times(t),
                times(p)
            ));
            continue;
        }
        for (a, b) in t.samples.iter().zip(&p.samples) {
            if !close(a.value, b.value) {
                out.push(format!(
                    "{} at {} ms: twin {}, prometheus {}",
                    t.labels, a.t_ms, a.value, b.value
                ));
            }
        }
    }
    out
}

#[test]
fn a_run_directory_holds_the_report_the_series_bit_for_bit_and_the_rule_files() {
    // Goal: the run directory is self-contained and lossless. Method: run a scenario in
    // process, write its directory, read the series back and compare every sample's bits
    // with the run's store; check run.json and the copied rules against their sources.
    let loaded = twin::scenario::load(root().join("fixtures/scenarios/export-steady.yaml"))
        .expect("the fixture scenario loads");
    let result = twin::scenario::run(&loaded, None).expect("it runs");
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = run_dir::write(&result, &loaded, tmp.path()).expect("written");
    assert_eq!(dir, tmp.path().join("export-steady"));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(run_dir::REPORT_FILE)).expect("report.json"),
    )
    .expect("JSON");
    assert_eq!(report, twin::report::json(&result));
    let back = run_dir::read_series(&dir).expect("series.jsonl reads back");
    let store = &result.world.storage.store;
    assert_eq!(back.len(), store.len());
    assert_eq!(back.n_samples(), store.n_samples());
    for (a, b) in store.ids().zip(back.ids()) {
        let (a, b) = (store.series(a), back.series(b));
        assert_eq!(a.labels, b.labels);
        let bits = |s: &[twin::telemetry::store::Sample]| {
            s.iter()
                .map(|x| (x.t_ms, x.value.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(a.samples()), bits(b.samples()), "{}", a.labels);
    }
    let info = run_dir::read_run(&dir).expect("run.json reads back");
    assert_eq!(info, run_dir::run_info(&result, &loaded));
    assert_eq!((info.seed, info.duration_ms), (3, 600_000));
    assert_eq!(info.scrape_interval_ms, 15_000);
    let groups: Vec<(&str, i64)> = info
        .rule_groups
        .iter()
        .map(|g| (g.name.as_str(), g.interval_ms))
        .collect();
    assert_eq!(
        groups,
        [("sophia-critical", 30_000), ("sophia-performance", 60_000)]
    );
    for rf in &info.rule_files {
        assert_eq!(
            std::fs::read(dir.join(&rf.copy)).expect("the copy"),
            std::fs::read(&rf.source).expect("the source"),
            "{}",
            rf.copy
        );
    }
    assert!(
        info.rule_groups
            .iter()
            .all(|g| g.file == "rules/alerts.yaml")
    );
}

#[test]
fn prometheus_serving_the_openmetrics_export_agrees_with_twin_on_every_dashboard_panel() {
    // Goal: the export is what a real Prometheus would have stored, and twin's range
    // evaluation is Prometheus's, on every expression the plan's dashboard draws. Method: run
    // a quiet scenario (no pod goes away, so no stale marker, which OpenMetrics cannot carry,
    // touches a series the panels read; checked first), export it, import it with promtool,
    // serve the blocks with Prometheus 2.42 on loopback, and compare `query_range` of each
    // panel expression over the whole run at the scrape step with twin's `eval_range` over
    // the run's own store: same series, same steps, values within a relative 1e-9.
    let test =
        "prometheus_serving_the_openmetrics_export_agrees_with_twin_on_every_dashboard_panel";
    let Some(promtool) = peer(test, "TWIN_PROMTOOL", "promtool") else {
        return;
    };
    let Some(prometheus) = peer(test, "TWIN_PROMETHEUS", "prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = run_into(
        "fixtures/scenarios/export-steady.yaml",
        &tmp.path().join("runs"),
    );
    let store: Store = run_dir::read_series(&dir).expect("series.jsonl");
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 8, "the dashboard's panels: {exprs:?}");
    for (_, expr) in &exprs {
        let parsed = twin::promql::parse(expr).expect("a panel expression parses");
        for selector in twin::lint::promql::selectors(&parsed) {
            let name = selector.metric.clone().unwrap_or_default();
            let matcher = twin::telemetry::store::Matcher::equal("__name__", &name);
            for id in store.select(&[matcher]) {
                let series = store.series(id);
                assert!(
                    !series.samples().iter().any(|s| is_stale_nan(s.value)),
                    "{} has a stale marker: the comparison's premise fails",
                    series.labels
                );
            }
        }
    }
    let om = tmp.path().join("export.om");
    let om_text = om.display().to_string();
    let (code, _, stderr) = twin(&[
        "export",
        "openmetrics",
        &dir.display().to_string(),
        "-o",
        &om_text,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let data = tmp.path().join("data");
    let import = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .expect("promtool runs");
    assert!(
        import.status.success(),
        "promtool refused the export: {}{}",
        String::from_utf8_lossy(&import.stdout),
        String::from_utf8_lossy(&import.stderr)
    );
    let server = Prometheus::start(&prometheus, &data, tmp.path(), Duration::from_secs(60))
        .expect("Prometheus starts on the imported blocks");
    let engine = Engine::new(&store);
    let (start_ms, end_ms, step_ms) = (0, 600_000, 15_000);
    let mut problems = Vec::new();
    let mut non_empty = 0;
    for (title, expr) in &exprs {
        let ours = match engine.eval_range(expr, start_ms, end_ms, step_ms) {
            Ok(Value::Matrix(m)) => m,
            other => panic!("{title}: {expr}: twin gave {other:?}"),
        };
        let theirs = server
            .query_range(expr, start_ms, end_ms, step_ms)
            .unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
        if !ours.is_empty() {
            non_empty += 1;
        }
        for why in differences(&ours, &theirs) {
            problems.push(format!("{title}: {expr}: {why}"));
        }
    }
    drop(server);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        non_empty,
        exprs.len(),
        "every panel draws something from the run's series"
    );
}

#[test]
fn a_rehearsal_becomes_a_promtool_test_that_twin_and_promtool_both_pass() {
    // Goal: `twin export promtool-test` turns fired alerts into a regression test users can
    // keep with their rules. Method: rehearse the bad canary (HighErrorRate fires), export the
    // test into another folder (so rule_files must be relative to it), check it names the
    // alert with its labels and annotations, and run it through `twin rules test` and, when
    // present, `promtool test rules` 2.42: both must pass.
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = run_into(
        "scenarios/bad-canary-rollback.yaml",
        &tmp.path().join("runs"),
    );
    let file = tmp.path().join("kept/bad-canary.test.yaml");
    let (code, _, stderr) = twin(&[
        "export",
        "promtool-test",
        &dir.display().to_string(),
        "-o",
        &file.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 fired alerts skipped"), "{stderr}");
    let text = std::fs::read_to_string(&file).expect("the test file");
    assert!(
        text.contains("- \"../runs/bad-canary-rollback/rules/alerts.yaml\""),
        "{text}"
    );
    assert!(text.contains("alertname: \"HighErrorRate\""), "{text}");
    assert!(
        text.contains("exp_labels: {\"severity\": \"critical\", \"team\": \"platform\"}"),
        "{text}"
    );
    assert!(text.contains("\"description\": \"Error rate is "), "{text}");
    let (code, stdout, _) = twin(&["rules", "test", &file.display().to_string()]);
    assert_eq!(code, 0, "twin rules test: {stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    let test = "a_rehearsal_becomes_a_promtool_test_that_twin_and_promtool_both_pass";
    let Some(promtool) = peer(test, "TWIN_PROMTOOL", "promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_of_a_directory_that_is_not_a_run_is_bad_input() {
    // Goal: a clear error and exit 2, no panic. Method: export a folder without run.json,
    // then one whose series.jsonl has a bad line.
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (code, _, stderr) = twin(&["export", "openmetrics", &tmp.path().display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("series.jsonl"), "{stderr}");
    std::fs::write(
        tmp.path().join("series.jsonl"),
        "{\"labels\":{\"__name__\":\"up\"},\"samples\":[[1000,1]]}\n{\"labels\":3}\n",
    )
    .expect("written");
    let (code, _, stderr) = twin(&["export", "openmetrics", &tmp.path().display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("series.jsonl:2:1: labels:"), "{stderr}");
    let (code, _, stderr) = twin(&["export", "promtool-test", &tmp.path().display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("run.json"), "{stderr}");
}
