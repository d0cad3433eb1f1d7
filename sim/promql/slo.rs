//! Sloth SLOs: what a `PrometheusServiceLevel` becomes, and error-budget arithmetic over a run.
//!
//! Mirrors slok/sloth's default plugins (`sli_rules_v1`, `metadata_rules_v1`,
//! `alert_rules_v1`), its Google multiwindow multi-burn-rate windows for 30d and 28d periods
//! and its SLO validation (spec/prometheus.md §12). [`generate`] is a function over plain
//! inputs so that any front (the CRD in `manifests`, a plain `prometheus/v1` file, a test) can
//! feed it; it returns the three rule groups Sloth writes per SLO, which [`to_rule_file`]
//! prints as a Prometheus rule file that `rules` (and promtool) load.
//!
//! Invariants: generation is pure and deterministic (labels in `BTreeMap`s, numbers printed
//! as Go prints them: `%g` for ratios, `strconv 'f' -1` for the objective label); an SLO Sloth
//! would reject is an [`SloError`] with Sloth's reason, and nothing is generated for it.

use std::collections::BTreeMap;

use crate::promql::rules::{format_prom_duration, is_valid_label_name};
use crate::promql::template::format_float_shortest;

#[cfg(test)]
mod tests;

/// The SLI of an SLO: the two event queries, or a raw error-ratio query. Each query must hold
/// `{{.window}}` (spaces allowed), which Sloth replaces by each window.
#[derive(Clone, Debug, PartialEq)]
pub enum Sli {
    Events {
        error_query: String,
        total_query: String,
    },
    Raw {
        error_ratio_query: String,
    },
}

/// One generated alert's metadata (`model.PromAlertMeta`): common `alerting.labels` and
/// `alerting.annotations` already merged with the page or ticket specific ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertMeta {
    pub disable: bool,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl AlertMeta {
    /// Merges `alerting.{labels,annotations}` with the page/ticket ones (the latter win), as
    /// Sloth's spec loaders do.
    pub fn merged(
        name: &str,
        common_labels: &BTreeMap<String, String>,
        common_annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        disable: bool,
    ) -> AlertMeta {
        let mut all_labels = common_labels.clone();
        all_labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut all_annotations = common_annotations.clone();
        all_annotations.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        AlertMeta {
            disable,
            name: name.to_string(),
            labels: all_labels,
            annotations: all_annotations,
        }
    }
}

/// What `sloth_slo_info` reports about the generator.
#[derive(Clone, Debug, PartialEq)]
pub struct SlothInfo {
    pub version: String,
    /// `cli-gen-prom` for the CLI, `ctrl-gen-k8s` for the controller, ...
    pub mode: String,
    /// `prometheus/v1` or `sloth.slok.dev/v1`.
    pub spec: String,
}

/// One SLO, in plain terms.
#[derive(Clone, Debug, PartialEq)]
pub struct SloInput {
    pub service: String,
    pub name: String,
    /// Objective [%], in (0, 100].
    pub objective_percent: f64,
    pub sli: Sli,
    /// Service labels merged with the SLO's own labels.
    pub labels: BTreeMap<String, String>,
    pub page_alert: AlertMeta,
    pub ticket_alert: AlertMeta,
    /// The SLO period [days]: 30 (Sloth's default) or 28.
    pub period_days: u32,
    pub info: SlothInfo,
}

/// An SLO Sloth refuses, with Sloth's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    #[error("{id}: {reason}")]
    Invalid { id: String, reason: String },
}

/// One generated rule.
#[derive(Clone, Debug, PartialEq)]
pub enum GeneratedRule {
    Recording {
        record: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
    Alerting {
        alert: String,
        expr: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
}

/// One generated group (Sloth sets no `interval`).
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedGroup {
    pub name: String,
    pub rules: Vec<GeneratedRule>,
}

/// A multiwindow multi-burn-rate alert's pair of windows and its burn factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnWindow {
    /// Share of the error budget this alert spends before firing [%].
    pub budget_percent: f64,
    pub short_ms: i64,
    pub long_ms: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Google's recommended windows (Sloth `google-30d.yaml` / `google-28d.yaml`): page quick,
/// page slow, ticket quick, ticket slow.
pub const WINDOWS: [BurnWindow; 4] = [
    BurnWindow {
        budget_percent: 2.0,
        short_ms: 5 * MINUTE_MS,
        long_ms: HOUR_MS,
    },
    BurnWindow {
        budget_percent: 5.0,
        short_ms: 30 * MINUTE_MS,
        long_ms: 6 * HOUR_MS,
    },
    BurnWindow {
        budget_percent: 10.0,
        short_ms: 2 * HOUR_MS,
        long_ms: DAY_MS,
    },
    BurnWindow {
        budget_percent: 10.0,
        short_ms: 6 * HOUR_MS,
        long_ms: 3 * DAY_MS,
    },
];

/// The burn factor: how many times faster than "even" the budget share is spent within the
/// long window (`getBurnRateFactor`, same float order: percent x period hours / 100 / hours).
pub fn burn_factor(window: &BurnWindow, period_days: u32) -> f64 {
    let period_hours = f64::from(period_days) * 24.0;
    let hours_required = window.budget_percent * period_hours / 100.0;
    hours_required / (window.long_ms as f64 / HOUR_MS as f64)
}

/// The error budget as a ratio, `(100 - objective) / 100` in float64 (for 99.9:
/// 0.0009999999999999432).
pub fn error_budget_ratio(objective_percent: f64) -> f64 {
    (100.0 - objective_percent) / 100.0
}

/// The SLO id: `<service>-<slo name>`.
pub fn slo_id(input: &SloInput) -> String {
    format!("{}-{}", input.service, input.name)
}

fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: u8| b.is_ascii_alphanumeric();
    bytes.len() >= 2
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn has_window_var(query: &str) -> bool {
    window_regex().is_match(query)
}

fn window_regex() -> regex::Regex {
    regex::Regex::new(r"\{\{ *\.window *\}\}").expect("constant regex")
}

/// Sloth's `ValidateSLO` (Prometheus dialect), in its order; the first problem is reported.
pub fn validate(input: &SloInput) -> Result<(), SloError> {
    let id = slo_id(input);
    let fail = |reason: String| {
        Err(SloError::Invalid {
            id: id.clone(),
            reason,
        })
    };
    for (what, name) in [
        ("SLO ID", id.as_str()),
        ("SLO name", &input.name),
        ("SLO service", &input.service),
    ] {
        if name.is_empty() {
            return fail(format!("invalid {what}: required"));
        }
        if !is_valid_name(name) {
            return fail(format!(
                "invalid {what}: name must start and end with an alphanumeric and can only contain alphanumeric, '.', '_', and '-'"
            ));
        }
    }
    if input.period_days != 30 && input.period_days != 28 {
        return fail(format!(
            "the {}d SLO period time window is not supported",
            input.period_days
        ));
    }
    if !(input.objective_percent > 0.0 && input.objective_percent <= 100.0) {
        return fail("objective must >0 and <=100".to_string());
    }
    for key in input.labels.keys() {
        if !is_valid_label_name(key) {
            return fail(format!("invalid SLO label key {key:?}"));
        }
    }
    let check_query = |what: &str, query: &str| -> Result<(), String> {
        if query.is_empty() {
            return Err(format!(
                "invalid SLI: {what} template: query template is required: required"
            ));
        }
        if !has_window_var(query) {
            return Err(format!(
                "invalid SLI: {what} template: template must contain the {{{{ .window }}}} variable"
            ));
        }
        let rendered = window_regex().replace_all(query, "5m");
        crate::promql::parse(&rendered)
            .map_err(|e| format!("invalid SLI: {what} expression: {e}"))?;
        Ok(())
    };
    match &input.sli {
        Sli::Events {
            error_query,
            total_query,
        } => {
            if error_query == total_query {
                return fail(
                    "invalid SLI: both error and total queries can't be the same".to_string(),
                );
            }
            check_query("sli error query", error_query).or_else(fail)?;
            check_query("sli total query", total_query).or_else(fail)?;
        }
        Sli::Raw { error_ratio_query } => {
            check_query("sli raw query", error_ratio_query).or_else(fail)?
        }
    }
    for (which, alert) in [("page", &input.page_alert), ("ticket", &input.ticket_alert)] {
        if alert.disable {
            continue;
        }
        if alert.name.is_empty() {
            return fail(format!(
                "invalid alert: {which} alert: alert name is required"
            ));
        }
        for key in alert.labels.keys() {
            if !is_valid_label_name(key) {
                return fail(format!(
                    "invalid alert: {which} alert: invalid alert label key {key:?}"
                ));
            }
        }
        for key in alert.annotations.keys() {
            if !is_valid_label_name(key) {
                return fail(format!(
                    "invalid alert: {which} alert: invalid alert annotation key {key:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The Prometheus filter of the SLO's id labels: `{sloth_id="..", sloth_service="..", sloth_slo=".."}`.
fn id_filter(input: &SloInput) -> String {
    let labels = id_labels(input);
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn id_labels(input: &SloInput) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sloth_id".to_string(), slo_id(input)),
        ("sloth_service".to_string(), input.service.clone()),
        ("sloth_slo".to_string(), input.name.clone()),
    ])
}

fn sli_metric(window_ms: i64) -> String {
    format!(
        "slo:sli_error:ratio_rate{}",
        format_prom_duration(window_ms)
    )
}

/// Generates Sloth's three groups for one SLO: SLI recordings, metadata recordings, alerts.
pub fn generate(input: &SloInput) -> Result<Vec<GeneratedGroup>, SloError> {
    validate(input)?;
    let id = slo_id(input);
    let period_ms = i64::from(input.period_days) * DAY_MS;
    let filter = id_filter(input);
    let mut base_labels = id_labels(input);
    base_labels.extend(input.labels.iter().map(|(k, v)| (k.clone(), v.clone())));

    // SLI recordings: every alert window, sorted and unique, then the whole period.
    let mut windows: Vec<i64> = WINDOWS
        .iter()
        .flat_map(|w| [w.short_ms, w.long_ms])
        .collect();
    windows.sort_unstable();
    windows.dedup();
    let mut sli_rules = Vec::new();
    for &window_ms in &windows {
        let window = format_prom_duration(window_ms);
        let expr = match &input.sli {
            Sli::Events {
                error_query,
                total_query,
            } => {
                format!(
                    "({})\n/\n({})\n",
                    render_window(error_query, &window),
                    render_window(total_query, &window)
                )
            }
            Sli::Raw { error_ratio_query } => {
                format!("({})", render_window(error_ratio_query, &window))
            }
        };
        sli_rules.push(GeneratedRule::Recording {
            record: sli_metric(window_ms),
            expr,
            labels: with_window(input, &window),
        });
    }
    let short = sli_metric(WINDOWS[0].short_ms);
    let period = format_prom_duration(period_ms);
    sli_rules.push(GeneratedRule::Recording {
        record: sli_metric(period_ms),
        expr: format!(
            "sum_over_time({short}{filter}[{period}])\n/ ignoring (sloth_window)\ncount_over_time({short}{filter}[{period}])\n"
        ),
        labels: with_window(input, &period),
    });

    // Metadata recordings.
    let objective_ratio = input.objective_percent / 100.0;
    let burn_expr = |metric: &str| {
        format!(
            "{metric}{filter}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{filter}\n"
        )
    };
    let mut info_labels = base_labels.clone();
    info_labels.insert("sloth_version".to_string(), input.info.version.clone());
    info_labels.insert("sloth_mode".to_string(), input.info.mode.clone());
    info_labels.insert("sloth_spec".to_string(), input.info.spec.clone());
    info_labels.insert(
        "sloth_objective".to_string(),
        format_float_f_shortest(input.objective_percent),
    );
    let record =
        |record: &str, expr: String, labels: &BTreeMap<String, String>| GeneratedRule::Recording {
            record: record.to_string(),
            expr,
            labels: labels.clone(),
        };
    let meta_rules = vec![
        record(
            "slo:objective:ratio",
            format!("vector({})", format_float_shortest(objective_ratio)),
            &base_labels,
        ),
        record(
            "slo:error_budget:ratio",
            format!("vector(1-{})", format_float_shortest(objective_ratio)),
            &base_labels,
        ),
        record(
            "slo:time_period:days",
            format!(
                "vector({})",
                format_float_shortest(period_ms as f64 / DAY_MS as f64)
            ),
            &base_labels,
        ),
        record(
            "slo:current_burn_rate:ratio",
            burn_expr(&short),
            &base_labels,
        ),
        record(
            "slo:period_burn_rate:ratio",
            burn_expr(&sli_metric(period_ms)),
            &base_labels,
        ),
        record(
            "slo:period_error_budget_remaining:ratio",
            format!("1 - slo:period_burn_rate:ratio{filter}"),
            &base_labels,
        ),
        record("sloth_slo_info", "vector(1)".to_string(), &info_labels),
    ];

    // Alerts: page from the first two windows, ticket from the last two.
    let budget = error_budget_ratio(input.objective_percent);
    let mut alert_rules = Vec::new();
    for (severity, meta, quick, slow) in [
        ("page", &input.page_alert, WINDOWS[0], WINDOWS[1]),
        ("ticket", &input.ticket_alert, WINDOWS[2], WINDOWS[3]),
    ] {
        if meta.disable {
            continue;
        }
        let fq = format_float_shortest(burn_factor(&quick, input.period_days));
        let fs = format_float_shortest(burn_factor(&slow, input.period_days));
        let b = format_float_shortest(budget);
        let term = |window_ms: i64, factor: &str| {
            format!(
                "max({}{filter} > ({factor} * {b})) without (sloth_window)",
                sli_metric(window_ms)
            )
        };
        let expr = format!(
            "(\n    {}\n    and\n    {}\n)\nor\n(\n    {}\n    and\n    {}\n)\n",
            term(quick.short_ms, &fq),
            term(quick.long_ms, &fq),
            term(slow.short_ms, &fs),
            term(slow.long_ms, &fs)
        );
        let mut annotations = BTreeMap::from([
            (
                "title".to_string(),
                format!("({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast."),
            ),
            (
                "summary".to_string(),
                "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.".to_string(),
            ),
        ]);
        annotations.extend(meta.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut labels = BTreeMap::from([("sloth_severity".to_string(), severity.to_string())]);
        labels.extend(meta.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        alert_rules.push(GeneratedRule::Alerting {
            alert: meta.name.clone(),
            expr,
            labels,
            annotations,
        });
    }

    Ok(vec![
        GeneratedGroup {
            name: format!("sloth-slo-sli-recordings-{id}"),
            rules: sli_rules,
        },
        GeneratedGroup {
            name: format!("sloth-slo-meta-recordings-{id}"),
            rules: meta_rules,
        },
        GeneratedGroup {
            name: format!("sloth-slo-alerts-{id}"),
            rules: alert_rules,
        },
    ])
}

fn with_window(input: &SloInput, window: &str) -> BTreeMap<String, String> {
    // MergeLabels(id labels, window, SLO labels): later maps win.
    let mut labels = id_labels(input);
    labels.insert("sloth_window".to_string(), window.to_string());
    labels.extend(input.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// Replaces `{{.window}}` (Sloth renders the query as a Go template whose only variable is
/// `window`; the queries real SLOs use hold no other action).
fn render_window(query: &str, window: &str) -> String {
    window_regex().replace_all(query, window).into_owned()
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
fn format_float_f_shortest(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        format_float_shortest(v)
    }
}

/// Prints generated groups as a Prometheus rule file (what `sloth generate` writes).
pub fn to_rule_file(groups: &[GeneratedGroup]) -> String {
    let mut out = String::from("groups:\n");
    let scalar = |key: &str, value: &str, indent: &str| -> String {
        if value.contains('\n') {
            let mut block = format!("{indent}{key}: |\n");
            for line in value.trim_end_matches('\n').split('\n') {
                block.push_str(&format!("{indent}  {line}\n"));
            }
            block
        } else {
            format!("{indent}{key}: {}\n", go_quote(value))
        }
    };
    for group in groups {
        out.push_str(&format!("- name: {}\n  rules:\n", go_quote(&group.name)));
        for rule in &group.rules {
            let (head, expr, labels, annotations) = match rule {
                GeneratedRule::Recording {
                    record,
                    expr,
                    labels,
                } => (("record", record), expr, labels, None),
                GeneratedRule::Alerting {
                    alert,
                    expr,
                    labels,
                    annotations,
                } => (("alert", alert), expr, labels, Some(annotations)),
            };
            out.push_str(&format!("  - {}: {}\n", head.0, go_quote(head.1)));
            out.push_str(&scalar("expr", expr, "    "));
            for (section, map) in [("labels", Some(labels)), ("annotations", annotations)] {
                let Some(map) = map.filter(|m| !m.is_empty()) else {
                    continue;
                };
                out.push_str(&format!("    {section}:\n"));
                for (k, v) in map {
                    out.push_str(&format!("      {k}: {}\n", go_quote(v)));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Error budget over a run

/// Burn rate: the error ratio relative to the budget ratio (1 = spending the budget exactly
/// over the period).
pub fn burn_rate(error_ratio: f64, objective_percent: f64) -> f64 {
    error_ratio / error_budget_ratio(objective_percent)
}

/// Error budget spent by a run, measured by events.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BudgetReport {
    /// Error ratio over the run.
    pub error_ratio: f64,
    /// Mean burn rate over the run.
    pub burn_rate: f64,
    /// Share of the whole period's budget the run consumed (burn rate x run / period).
    pub budget_consumed_ratio: f64,
    /// 1 - consumed.
    pub budget_remaining_ratio: f64,
}

/// Budget consumed by `errors` out of `total` events during a run of `run_ms`, for an SLO
/// over `period_days`. A run without events consumes nothing.
pub fn budget_from_events(
    errors: f64,
    total: f64,
    run_ms: i64,
    objective_percent: f64,
    period_days: u32,
) -> BudgetReport {
    let error_ratio = if total > 0.0 { errors / total } else { 0.0 };
    let rate = burn_rate(error_ratio, objective_percent);
    let consumed = rate * run_ms as f64 / (f64::from(period_days) * DAY_MS as f64);
    BudgetReport {
        error_ratio,
        burn_rate: rate,
        budget_consumed_ratio: consumed,
        budget_remaining_ratio: 1.0 - consumed,
    }
}

/// Budget consumed by a step series of error ratios `(t_ms, ratio)` in time order, each held
/// until the next point; the last point is held until `end_ms`. NaN ratios (no traffic) count
/// as no errors.
pub fn budget_from_ratio_series(
    points: &[(i64, f64)],
    end_ms: i64,
    objective_percent: f64,
    period_days: u32,
) -> BudgetReport {
    let mut weighted = 0.0;
    let mut span_ms = 0i64;
    for (idx, &(t_ms, ratio)) in points.iter().enumerate() {
        let next = points.get(idx + 1).map(|p| p.0).unwrap_or(end_ms);
        let width = (next - t_ms).max(0);
        let ratio = if ratio.is_nan() { 0.0 } else { ratio };
        weighted += ratio * width as f64;
        span_ms += width;
    }
    let error_ratio = if span_ms > 0 {
        weighted / span_ms as f64
    } else {
        0.0
    };
    let rate = burn_rate(error_ratio, objective_percent);
    let consumed = rate * span_ms as f64 / (f64::from(period_days) * DAY_MS as f64);
    BudgetReport {
        error_ratio,
        burn_rate: rate,
        budget_consumed_ratio: consumed,
        budget_remaining_ratio: 1.0 - consumed,
    }
}
