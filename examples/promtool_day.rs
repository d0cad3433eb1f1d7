//! Writes the day-long input of `benches/promql.rs` (about 400 series, 2.3 M samples at 15 s)
//! as a promtool unit-test file over the plan's rule file, for timing `twin rules test`
//! against `promtool test rules` on the same work (README, "Performance"):
//!
//! ```sh
//! cargo run --release --example promtool_day -- target/day.test.yaml
//! /usr/bin/time -v target/release/twin rules test target/day.test.yaml
//! /usr/bin/time -v promtool test rules target/day.test.yaml
//! ```
//!
//! Both tools then evaluate every group of the plan at every 30 s step of the day (2,880
//! steps), as promtool evaluates a test file. The expected alerts at the last step are what
//! twin's promtool runner finds there, so the file passes when promtool agrees with twin.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use twin::promql::promtool;
use twin::report::export::compact;

#[path = "../benches/support/day_input.rs"]
mod day_input;

const EVAL_MS: i64 = 30_000;
const ALERTS: [&str; 6] = [
    "GPUMemoryExhaustion",
    "HighErrorRate",
    "HighLLMCosts",
    "HighLatency",
    "HighMemoryUsage",
    "PodCrashLooping",
];

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/day.test.yaml".into()),
    );
    let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sophia/monitoring/prometheus/alerts.yaml");
    let mut text = format!(
        "# Made by `cargo run --example promtool_day`: a day of 400 series at 15s.\n\
         rule_files:\n- {}\nevaluation_interval: 30s\ntests:\n- interval: 15s\n  input_series:\n",
        quoted(&rules.display().to_string())
    );
    let steps = day_input::DAY_MS / day_input::SCRAPE_MS;
    let mut n_samples = 0;
    let series = day_input::series();
    for (labels, value) in &series {
        let values: Vec<Option<f64>> = (0..steps).map(|step| Some(value(step))).collect();
        n_samples += values.len();
        let _ = writeln!(text, "  - series: {}", quoted(&labels.to_string()));
        let _ = writeln!(text, "    values: {}", quoted(&compact(&values)));
    }
    let eval_ms = day_input::DAY_MS - EVAL_MS;
    let file = promtool::parse_test_file(&out, &text).unwrap_or_else(|e| panic!("{e}"));
    let mut expected = Vec::new();
    promtool::step_test_group(&file, &file.tests[0], eval_ms, |ts, groups| {
        if ts == eval_ms {
            expected = ALERTS
                .iter()
                .map(|name| (*name, promtool::firing_alerts(groups, name)))
                .collect();
        }
    })
    .unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    text.push_str("  alert_rule_test:\n");
    let map = |m: &std::collections::BTreeMap<String, String>| {
        let parts: Vec<String> = m
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{}: {}", quoted(k), quoted(v)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    };
    let mut n_firing = 0;
    for (name, firing) in &expected {
        let _ = writeln!(
            text,
            "  - eval_time: {}\n    alertname: {name}",
            twin::promql::rules::format_prom_duration(eval_ms)
        );
        if firing.is_empty() {
            text.push_str("    exp_alerts: []\n");
        } else {
            text.push_str("    exp_alerts:\n");
        }
        for (labels, annotations) in firing {
            n_firing += 1;
            let _ = writeln!(text, "    - exp_labels: {}", map(labels));
            let _ = writeln!(text, "      exp_annotations: {}", map(annotations));
        }
    }
    std::fs::write(&out, &text).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    eprintln!(
        "wrote {}: {} series, {n_samples} samples, {} bytes; {n_firing} alerts firing at {}",
        out.display(),
        series.len(),
        text.len(),
        twin::promql::rules::format_prom_duration(eval_ms)
    );
}
