//! Exports made from a run directory ([`super::run_dir`]), so that a rehearsal can be looked at
//! and kept with tools that are not twin:
//!
//! - [`openmetrics`]: every series as OpenMetrics text, which `promtool tsdb
//!   create-blocks-from openmetrics` turns into TSDB blocks a real Prometheus serves
//!   (stale markers are left out: see [`crate::telemetry::openmetrics`]).
//! - [`promtool_test`]: a promtool unit-test file for the alerts that fired: the series the
//!   rules read as `input_series` in the expanding notation, the run's copied rule files, and
//!   an `alert_rule_test` for each fired alert at a time when promtool, too, sees it firing.
//!
//! promtool evaluates every group at the test's `evaluation_interval` from t=0, where the run
//! evaluated each group at its own interval and slot (spec/prometheus.md §11), so an alert
//! goes pending and fires up to an interval apart in the two schedules and its `$value` is
//! read at other instants. The expected alerts are therefore those of promtool's schedule,
//! found by stepping the generated file with twin's promtool runner
//! ([`crate::promql::promtool::step_test_group`]); the run picks the times: for each alert the
//! run fired, the step nearest the middle of its firing span at which promtool's schedule has
//! the same alert (same labels) firing. An alert with no such step is listed as skipped, in
//! the file's header and in [`PromtoolTest::skipped`], never silently.
//!
//! Invariants: the output is a pure function of the run directory (and the output path, which
//! the rule file paths are relative to); bad input is an [`ExportError`] naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::run_dir::{self, RunDirError, RunInfo};
use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::promql::promtool;
use crate::promql::rules::{self, LabelSet, RuleKind, RulesError, format_prom_duration};
use crate::telemetry::openmetrics::{self as om, OpenMetricsError};
use crate::telemetry::store::{MatchKind, Matcher, Store, is_stale_nan};

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    OpenMetrics(#[from] OpenMetricsError),
    /// A copied rule file or the generated test does not parse.
    #[error("invalid rules or test")]
    Invalid(#[source] Diagnostics),
    /// promtool's schedule fails to evaluate the rules on the run's series.
    #[error("the rules fail under promtool's schedule:\n{}", .0.join("\n"))]
    Evaluation(Vec<String>),
}

fn invalid(file: &Path, message: impl Into<String>) -> ExportError {
    ExportError::Invalid(Diagnostics(vec![Diagnostic::error(
        Location {
            file: file.to_path_buf(),
            ..Location::default()
        },
        "",
        message,
    )]))
}

/// The run's series as OpenMetrics text.
pub fn openmetrics(run_dir: &Path) -> Result<String, ExportError> {
    let store = run_dir::read_series(run_dir)?;
    Ok(om::write(&store)?)
}

/// A generated promtool test file.
#[derive(Clone, Debug)]
pub struct PromtoolTest {
    pub text: String,
    /// Input series written (the ones the rules read).
    pub n_series: usize,
    /// `alert_rule_test` entries written.
    pub n_alert_tests: usize,
    /// Alerts the run fired that promtool's schedule never shows firing, with why.
    pub skipped: Vec<String>,
}

/// A store matcher from a selector's matcher as written.
fn matcher(m: &crate::lint::promql::LabelMatch) -> Option<Matcher> {
    match m.op {
        "=" => Some(Matcher::equal(&m.label, &m.value)),
        "!=" => Some(Matcher {
            name: m.label.clone(),
            kind: MatchKind::NotEqual(m.value.clone()),
        }),
        "=~" => Matcher::regex(&m.label, &m.value, false).ok(),
        _ => Matcher::regex(&m.label, &m.value, true).ok(),
    }
}

/// A float as the series notation reads it back exactly.
fn notation_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Writes slot values in promtool's expanding notation, as short as the values allow: runs
/// of empty slots as `_xN`, runs that repeated addition reproduces bit for bit (the way
/// promtool expands `a+bxN`) as `a+bxN`, constants as `axN`.
pub fn compact(values: &[Option<f64>]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let Some(v) = values[i] else {
            let mut j = i;
            while j < values.len() && values[j].is_none() {
                j += 1;
            }
            parts.push(if j - i == 1 {
                "_".to_string()
            } else {
                format!("_x{}", j - i)
            });
            i = j;
            continue;
        };
        if is_stale_nan(v) {
            parts.push("stale".to_string());
            i += 1;
            continue;
        }
        let next = values.get(i + 1).copied().flatten();
        let step = next
            .filter(|n| !is_stale_nan(*n) && v.is_finite() && n.is_finite())
            .map(|n| n - v)
            .filter(|d| (v + d).to_bits() == next.map_or(0, f64::to_bits));
        let Some(step) = step else {
            parts.push(notation_number(v));
            i += 1;
            continue;
        };
        let mut run_end = i + 1;
        let mut at = v + step;
        while let Some(Some(n)) = values.get(run_end + 1) {
            let expected = at + step;
            if n.to_bits() != expected.to_bits() {
                break;
            }
            at = expected;
            run_end += 1;
        }
        let n = run_end - i;
        parts.push(if step == 0.0 && v.to_bits() == at.to_bits() {
            format!("{}x{n}", notation_number(v))
        } else if step < 0.0 {
            format!("{}{}x{n}", notation_number(v), notation_number(step))
        } else {
            format!("{}+{}x{n}", notation_number(v), notation_number(step))
        });
        i = run_end + 1;
    }
    parts.join(" ")
}

/// `path` relative to the folder `from` (both made absolute against the working directory).
fn relative_to(path: &Path, from: &Path) -> PathBuf {
    let absolute = |p: &Path| -> Vec<String> {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut parts: Vec<String> = Vec::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    parts.pop();
                }
                Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        parts
    };
    let (to, from) = (absolute(path), absolute(from));
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part);
    }
    out
}

fn yaml_string(text: &str) -> String {
    Value::from(text).to_string()
}

fn yaml_map(map: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}: {}", yaml_string(k), yaml_string(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// One fired alert of the run, from `report.json`.
struct FiredAlert {
    labels: LabelSet,
    firing_at_ms: i64,
    resolved_at_ms: Option<i64>,
}

fn fired_alerts(run_dir: &Path) -> Result<Vec<FiredAlert>, ExportError> {
    let path = run_dir.join(run_dir::REPORT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| RunDirError::Io {
        doing: "reading",
        path: path.clone(),
        source,
    })?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|e| invalid(&path, format!("not the JSON report: {e}")))?;
    let mut out = Vec::new();
    for alert in report["alerts"].as_array().into_iter().flatten() {
        let Some(firing) = alert["firingAtSecs"].as_f64() else {
            continue;
        };
        let labels: LabelSet = alert["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(FiredAlert {
            labels,
            firing_at_ms: (firing * 1000.0).round() as i64,
            resolved_at_ms: alert["resolvedAtSecs"]
                .as_f64()
                .map(|s| (s * 1000.0).round() as i64),
        });
    }
    Ok(out)
}

/// The input series: every series a rule selects, except what the rules themselves write
/// (recording rules' names, `ALERTS`, `ALERTS_FOR_STATE`), as slots of `interval_ms` from 0.
fn input_series(
    store: &Store,
    groups: &[rules::Group],
    interval_ms: i64,
    series_file: &Path,
) -> Result<Vec<(String, String)>, ExportError> {
    let mut written: BTreeSet<String> = ["ALERTS", "ALERTS_FOR_STATE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut ids = BTreeSet::new();
    for group in groups {
        for rule in &group.rules {
            if let RuleKind::Recording { record } = &rule.kind {
                written.insert(record.clone());
            }
        }
    }
    for group in groups {
        for rule in &group.rules {
            let Ok(expr) = crate::lint::promql::parse(&rule.expr) else {
                continue;
            };
            for selector in crate::lint::promql::selectors(&expr) {
                let mut matchers: Vec<Matcher> =
                    selector.matchers.iter().filter_map(matcher).collect();
                if let Some(name) = &selector.metric {
                    matchers.push(Matcher::equal("__name__", name));
                }
                ids.extend(store.select(&matchers));
            }
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let series = store.series(id);
        if series
            .labels
            .metric_name()
            .is_some_and(|n| written.contains(n))
        {
            continue;
        }
        let mut slots: Vec<Option<f64>> = Vec::new();
        for sample in series.samples() {
            let on_grid = sample.t_ms % interval_ms == 0;
            if !on_grid && !is_stale_nan(sample.value) {
                return Err(invalid(
                    series_file,
                    format!(
                        "{} has a sample at {} ms, off the {} ms scrape grid; the series \
                         notation cannot place it",
                        series.labels, sample.t_ms, interval_ms
                    ),
                ));
            }
            // A stale marker between scrapes moves to the next slot: at the evaluation steps
            // (multiples of the interval) the series reads the same either way.
            let slot = (sample.t_ms + interval_ms - 1).div_euclid(interval_ms) as usize;
            if slots.len() <= slot {
                slots.resize(slot + 1, None);
            }
            if !(on_grid || slots[slot].is_none()) {
                continue;
            }
            slots[slot] = Some(sample.value);
        }
        if slots.is_empty() {
            continue;
        }
        out.push((series.labels.to_string(), compact(&slots)));
    }
    Ok(out)
}

/// Turns a run into a promtool unit-test file meant to be written at `out_file` (its
/// `rule_files` are relative to that file's folder, which must exist).
pub fn promtool_test(run_dir: &Path, out_file: &Path) -> Result<PromtoolTest, ExportError> {
    let info: RunInfo = run_dir::read_run(run_dir)?;
    let store = run_dir::read_series(run_dir)?;
    let fired = fired_alerts(run_dir)?;
    let out_folder = out_file.parent().unwrap_or(Path::new(""));
    let mut groups = Vec::new();
    let mut rule_paths = Vec::new();
    for rf in &info.rule_files {
        let copy = run_dir.join(&rf.copy);
        groups.extend(
            rules::load_rule_file(&copy, info.evaluation_interval_ms).map_err(|e| match e {
                RulesError::Invalid(diags) => ExportError::Invalid(diags),
                RulesError::Read { path, source } => ExportError::RunDir(RunDirError::Io {
                    doing: "reading",
                    path,
                    source,
                }),
            })?,
        );
        rule_paths.push(relative_to(&copy, out_folder));
    }
    let interval_ms = info.scrape_interval_ms.max(1);
    let series = input_series(
        &store,
        &groups,
        interval_ms,
        &run_dir.join(run_dir::SERIES_FILE),
    )?;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "# promtool unit test made by `twin export promtool-test` from the run of {} (seed {}, {}).",
        info.scenario, info.seed, info.scenario_file
    );
    let _ = writeln!(
        head,
        "# Input: the {} series the rules read, every {} from t=0, as the run scraped them.",
        series.len(),
        format_prom_duration(interval_ms)
    );
    let _ = writeln!(
        head,
        "# Expected: each alert the run fired, at a time promtool's schedule (every group at every\n\
         # evaluation_interval from 0) also has it firing; labels and annotations as templated then."
    );
    let mut body = String::from("rule_files:\n");
    for path in &rule_paths {
        let _ = writeln!(body, "- {}", yaml_string(&path.display().to_string()));
    }
    let _ = writeln!(
        body,
        "evaluation_interval: {}",
        format_prom_duration(info.evaluation_interval_ms)
    );
    body.push_str("tests:\n");
    let _ = writeln!(
        body,
        "- name: {}",
        yaml_string(&format!("{} seed {}", info.scenario, info.seed))
    );
    let _ = writeln!(body, "  interval: {}", format_prom_duration(interval_ms));
    if !info.external_labels.is_empty() {
        let _ = writeln!(
            body,
            "  external_labels: {}",
            yaml_map(&info.external_labels)
        );
    }
    body.push_str("  input_series:\n");
    for (labels, values) in &series {
        let _ = writeln!(body, "  - series: {}", yaml_string(labels));
        let _ = writeln!(body, "    values: {}", yaml_string(values));
    }
    // Step the file as promtool will, recording every firing alert at every step.
    let alertnames: BTreeSet<String> = fired
        .iter()
        .filter_map(|a| a.labels.get("alertname").cloned())
        .collect();
    let file = promtool::parse_test_file(out_file, &body).map_err(|e| match e {
        promtool::PromtoolError::Malformed(diags) => ExportError::Invalid(diags),
    })?;
    type Firing = Vec<(LabelSet, BTreeMap<String, String>)>;
    let mut seen: BTreeMap<String, Vec<(i64, Firing)>> = BTreeMap::new();
    promtool::step_test_group(&file, &file.tests[0], info.duration_ms, |ts, groups| {
        for name in &alertnames {
            let firing = promtool::firing_alerts(groups, name);
            if !firing.is_empty() {
                seen.entry(name.clone()).or_default().push((ts, firing));
            }
        }
    })
    .map_err(ExportError::Evaluation)?;
    let mut tests: BTreeMap<(i64, String), Firing> = BTreeMap::new();
    let mut skipped = Vec::new();
    for alert in &fired {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        let end_ms = alert.resolved_at_ms.unwrap_or(info.duration_ms);
        let middle = (alert.firing_at_ms + end_ms) / 2;
        let best = seen
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|(ts, firing)| {
                (alert.firing_at_ms..=end_ms).contains(ts)
                    && firing.iter().any(|(l, _)| *l == alert.labels)
            })
            .min_by_key(|(ts, _)| ((ts - middle).abs(), *ts));
        match best {
            Some((ts, firing)) => {
                tests.insert((*ts, name), firing.clone());
            }
            None => skipped.push(format!(
                "{} {} fired at {} but promtool's schedule never has it firing before {}",
                name,
                yaml_map(&alert.labels),
                format_prom_duration(alert.firing_at_ms),
                format_prom_duration(end_ms)
            )),
        }
    }
    for why in &skipped {
        let _ = writeln!(head, "# Skipped: {why}.");
    }
    if tests.is_empty() {
        body.push_str("  alert_rule_test: []\n");
    } else {
        body.push_str("  alert_rule_test:\n");
    }
    for ((ts, name), firing) in &tests {
        let _ = writeln!(body, "  - eval_time: {}", format_prom_duration(*ts));
        let _ = writeln!(body, "    alertname: {}", yaml_string(name));
        body.push_str("    exp_alerts:\n");
        for (labels, annotations) in firing {
            let mut labels = labels.clone();
            labels.remove("alertname");
            let _ = writeln!(body, "    - exp_labels: {}", yaml_map(&labels));
            let _ = writeln!(body, "      exp_annotations: {}", yaml_map(annotations));
        }
    }
    Ok(PromtoolTest {
        text: head + &body,
        n_series: series.len(),
        n_alert_tests: tests.len(),
        skipped,
    })
}

#[cfg(test)]
mod tests;
