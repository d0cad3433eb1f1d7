//! Rule files, rule groups and the alert state machine, as Prometheus 2.42 runs them
//! (`rules/manager.go`, `rules/alerting.go`, `rules/recording.go`, `model/rulefmt/rulefmt.go`;
//! spec/prometheus.md §1-4).
//!
//! What it owns: reading a rule file (plain `groups:`) with promtool's rejections and a
//! file:line:column for each; recording rules; alerting rules with the inactive -> pending ->
//! firing -> resolved machine, `for` and `keep_firing_for`; the `ALERTS` / `ALERTS_FOR_STATE`
//! series; stale markers for series a rule stopped producing; group slotting (hash offset)
//! and a live-server schedule reporting each alert transition and lifetime; what is sent to
//! Alertmanager (resend delay, resolutions); `for`-state restoration after a restart.
//!
//! Invariants: evaluation never reads a clock (times are passed in, in Unix milliseconds);
//! alerts are kept in a `BTreeMap` keyed by their label set, so every report is ordered; a
//! failing rule marks itself unhealthy for that evaluation and the group goes on, as upstream.
//! The query engine and the series store are reached only through [`RuleStorage`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::promql::template::{self, TemplateData};
use crate::promql::{Engine, EngineOptions, Value};
use crate::telemetry::store::{Labels, Matcher, Store};

#[cfg(test)]
mod tests;

/// A label set, ordered by name (Prometheus's sorted `labels.Labels`).
pub type LabelSet = BTreeMap<String, String>;

/// The metric-name label.
pub const METRIC_NAME: &str = "__name__";
/// Bit pattern of Prometheus's stale marker (`model/value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// How long a resolved alert is kept so it can be sent as resolved (`resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// One element of an instant-query result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: LabelSet,
    pub value: f64,
}

/// What a rule group needs from the rest of the twin: instant queries and appends.
///
/// A scalar result must come back as one sample with no labels (`EngineQueryFunc` does this);
/// any other result kind is an error "rule result is not a vector or scalar".
pub trait RuleStorage {
    /// Runs `expr` as an instant query at `t_ms` (Unix milliseconds).
    fn query(&mut self, expr: &str, t_ms: i64) -> Result<Vec<Sample>, String>;
    /// Appends one sample; an error (duplicate or out-of-order sample) is counted, not fatal.
    fn append(&mut self, labels: &LabelSet, t_ms: i64, value: f64) -> Result<(), String>;
    /// The newest raw sample (stale markers included) of the series with exactly `labels`
    /// in `[from_ms, to_ms]`, as `(t_ms, value)`: what `for`-state restoration reads.
    fn latest_sample(&self, labels: &LabelSet, from_ms: i64, to_ms: i64) -> Option<(i64, f64)>;
}

/// [`RuleStorage`] over the twin's series store and PromQL engine.
pub struct StoreStorage {
    pub store: Store,
    pub options: EngineOptions,
    /// Each rule's expression, parsed at its first evaluation (a rule group evaluates the same
    /// few expressions thousands of times in a day).
    parsed: std::collections::HashMap<String, promql_parser::parser::Expr>, // lookup only
}

impl StoreStorage {
    pub fn new(options: EngineOptions) -> StoreStorage {
        StoreStorage {
            store: Store::new(),
            options,
            parsed: std::collections::HashMap::new(), // lookup only
        }
    }
}

impl RuleStorage for StoreStorage {
    fn query(&mut self, expr: &str, t_ms: i64) -> Result<Vec<Sample>, String> {
        if !self.parsed.contains_key(expr) {
            let parsed = super::parse(expr).map_err(|e| e.to_string())?;
            self.parsed.insert(expr.to_string(), parsed);
        }
        let parsed = &self.parsed[expr];
        let engine = Engine::with_options(&self.store, self.options);
        match engine
            .eval_instant_expr(parsed, t_ms)
            .map_err(|e| e.to_string())?
        {
            Value::Vector(samples) => Ok(samples
                .into_iter()
                .map(|s| Sample {
                    labels: s
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    value: s.value,
                })
                .collect()),
            Value::Scalar(v) => Ok(vec![Sample {
                labels: LabelSet::new(),
                value: v,
            }]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }

    fn latest_sample(&self, labels: &LabelSet, from_ms: i64, to_ms: i64) -> Option<(i64, f64)> {
        let matchers: Vec<Matcher> = labels.iter().map(|(k, v)| Matcher::equal(k, v)).collect();
        self.store
            .select(&matchers)
            .into_iter()
            .map(|id| self.store.series(id))
            .find(|series| series.labels.len() == labels.len())
            .and_then(|series| {
                series
                    .samples_between(from_ms, to_ms)
                    .last()
                    .map(|s| (s.t_ms, s.value))
            })
    }

    fn append(&mut self, labels: &LabelSet, t_ms: i64, value: f64) -> Result<(), String> {
        let labels = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.store
            .append(&labels, t_ms, value)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: cannot read rule file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

// ---------------------------------------------------------------------------------------------
// Durations

/// Prometheus's `model.ParseDuration`: `1y2w3d4h5m6s7ms` units in that order, integers only,
/// "0" allowed. Returns milliseconds.
pub fn parse_prom_duration(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("empty duration string".to_string());
    }
    if text == "0" {
        return Ok(0);
    }
    let units: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let invalid = || format!("not a valid duration string: {text:?}");
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len == 0 {
            return Err(invalid());
        }
        let number: i64 = rest[..digits_len].parse().map_err(|_| invalid())?;
        rest = &rest[digits_len..];
        // "ms" must be tried before "m".
        let unit_idx = (next_unit..units.len())
            .filter(|&i| rest.starts_with(units[i].0))
            .max_by_key(|&i| units[i].0.len())
            .filter(|&i| !(units[i].0 == "m" && rest.starts_with("ms")))
            .ok_or_else(invalid)?;
        rest = &rest[units[unit_idx].0.len()..];
        next_unit = unit_idx + 1;
        total = number
            .checked_mul(units[unit_idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// Prints milliseconds as Prometheus's `model.Duration.String()` (`1h30m`, `0s`).
pub fn format_prom_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut left = ms;
    if left < 0 {
        out.push('-');
        left = -left;
    }
    // Years and weeks only when they divide exactly ("30d", not "4w2d"), as upstream.
    for (unit, size, exact) in [
        ("y", 365 * 86_400_000i64, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && left % size != 0 {
            continue;
        }
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rule file format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileDoc {
    #[serde(default)]
    groups: Vec<Spanned<GroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    name: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    rules: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    record: Option<Spanned<String>>,
    #[serde(default)]
    alert: Option<Spanned<String>>,
    #[serde(default)]
    expr: Option<Spanned<String>>,
    #[serde(default, rename = "for")]
    for_: Option<Spanned<String>>,
    #[serde(default)]
    keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    labels: Option<IndexMap<String, String>>,
    #[serde(default)]
    annotations: Option<IndexMap<String, String>>,
}

/// The kind-specific part of a rule.
#[derive(Clone, Debug)]
pub enum RuleKind {
    Recording { record: String },
    Alerting(AlertingRule),
}

/// One rule of a group, in file order.
#[derive(Clone, Debug)]
pub struct Rule {
    pub expr: String,
    /// Labels in file order; alerting rules expand them as templates.
    pub labels: IndexMap<String, String>,
    pub kind: RuleKind,
    /// Where the rule starts in its file.
    pub location: Location,
    /// Series this rule wrote at its previous evaluation (for stale markers).
    series_in_previous_eval: BTreeSet<LabelSet>,
    /// The last evaluation's error, if it failed.
    pub last_error: Option<String>,
}

impl Rule {
    /// The rule's name: `record` or `alert`.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording { record } => record,
            RuleKind::Alerting(a) => &a.name,
        }
    }
}

/// A rule group as loaded from a file.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    /// The rule file path as given (it enters the slot hash).
    pub file: String,
    /// Evaluation period [ms]; the global evaluation_interval when the file gives none.
    pub interval_ms: i64,
    /// 0 means no limit.
    pub limit: u64,
    pub rules: Vec<Rule>,
    /// Evaluations left before `for` state is restored (0: nothing pending).
    evals_until_restore: u8,
}

/// Reads one rule file with promtool's checks. `default_interval_ms` is the server's
/// `global.evaluation_interval`.
pub fn load_rule_file(path: &Path, default_interval_ms: i64) -> Result<Vec<Group>, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_rule_file(path, &text, default_interval_ms).map_err(RulesError::Invalid)
}

fn at(path: &Path, line: u64, column: u64) -> Location {
    Location {
        file: path.to_path_buf(),
        document: 0,
        line: line as usize,
        column: column as usize,
    }
}

fn spanned_at<T>(path: &Path, s: &Spanned<T>) -> Location {
    at(path, s.referenced.line(), s.referenced.column())
}

/// Reads YAML into `T`; a failure is a diagnostic with line, column and the field path.
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, Diagnostic> {
    let mut field = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            field = field_path(err.path());
            err.into_inner()
        })
    })
    .map_err(|err| {
        let mut diag = yaml_error(path, &err);
        diag.field = field;
        diag
    })
}

/// Keys whose values (or list items) are read through `Spanned`, which adds a `value` level
/// the YAML does not have.
const SPANNED_KEYS: &[&str] = &[
    "groups",
    "rules",
    "name",
    "interval",
    "record",
    "alert",
    "expr",
    "for",
    "keep_firing_for",
    "rule_files",
    "evaluation_interval",
    "group_eval_order",
    "tests",
    "input_series",
    "series",
    "values",
    "alert_rule_test",
    "promql_expr_test",
    "eval_time",
];

/// The YAML field path (`tests[0].input_series[1].values`) without `Spanned`'s extra level.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut last_key: Option<String> = None;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if key == "value"
                    && last_key
                        .as_deref()
                        .is_some_and(|k| SPANNED_KEYS.contains(&k))
                {
                    last_key = None;
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
                last_key = Some(key.clone());
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// Turns a serde-saphyr error into a diagnostic at its line and column.
pub(crate) fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = err.without_snippet().to_string();
    // The crate's plain message may repeat the position; keep the first line, it is the reason.
    let message = message.lines().next().unwrap_or("invalid YAML");
    // The position is already in the diagnostic's prefix.
    let message = match message.rfind(" at line ") {
        Some(idx) if message[idx..].contains(", column ") => &message[..idx],
        _ => message,
    };
    let message = message.to_string();
    Diagnostic::error(at(path, line, column), "", message)
}

fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses rule-file text; every problem found is reported together.
pub fn parse_rule_file(
    path: &Path,
    text: &str,
    default_interval_ms: i64,
) -> Result<Vec<Group>, Diagnostics> {
    let doc: RuleFileDoc = from_yaml(path, text).map_err(|d| Diagnostics(vec![d]))?;
    let mut diags = Vec::new();
    let mut groups = Vec::new();
    let mut seen_names = BTreeSet::new();
    for (group_idx, spanned_group) in doc.groups.into_iter().enumerate() {
        // promtool points at the group's mapping, not its name.
        let group_loc = spanned_at(path, &spanned_group);
        let group_doc = spanned_group.value;
        let group_field = format!("groups[{group_idx}]");
        let name = group_doc.name.value.clone();
        if name.is_empty() {
            diags.push(Diagnostic::error(
                group_loc.clone(),
                format!("{group_field}.name"),
                "Groupname must not be empty",
            ));
        }
        if !seen_names.insert(name.clone()) {
            diags.push(Diagnostic::error(
                group_loc.clone(),
                format!("{group_field}.name"),
                format!("groupname: \"{name}\" is repeated in the same file"),
            ));
        }
        let interval_ms = match &group_doc.interval {
            None => default_interval_ms,
            Some(iv) => match parse_prom_duration(&iv.value) {
                // A zero interval means the global one (`Manager.LoadGroups`).
                Ok(0) => default_interval_ms,
                Ok(ms) => ms,
                Err(msg) => {
                    diags.push(Diagnostic::error(
                        spanned_at(path, iv),
                        format!("{group_field}.interval"),
                        msg,
                    ));
                    default_interval_ms
                }
            },
        };
        let mut rules = Vec::new();
        for (rule_idx, rule_doc) in group_doc.rules.into_iter().enumerate() {
            let rule_loc = spanned_at(path, &rule_doc);
            let field = format!("{group_field}.rules[{rule_idx}]");
            match build_rule(path, &name, rule_idx, rule_doc.value, rule_loc, &field) {
                Ok(rule) => rules.push(rule),
                Err(mut errs) => diags.append(&mut errs),
            }
        }
        groups.push(Group {
            name,
            file: path.display().to_string(),
            interval_ms,
            limit: group_doc.limit.unwrap_or(0),
            rules,
            evals_until_restore: 0,
        });
    }
    if diags.is_empty() {
        Ok(groups)
    } else {
        Err(Diagnostics(diags))
    }
}

/// Gives a parser message promtool's `line:col: parse error: ` prefix where the position
/// can be recovered (promql-parser's messages carry none): the end of input for unclosed
/// constructs, the function name for unknown functions. Other messages stay as they are.
fn with_parse_position(expr: &str, message: &str) -> String {
    let position_of = |byte: usize| {
        let before = &expr[..byte];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        format!("{line}:{col}")
    };
    if message.starts_with("unclosed") || message.starts_with("unexpected end of input") {
        return format!("{}: parse error: {message}", position_of(expr.len()));
    }
    if let Some(name) = message.strip_prefix("unknown function with name ") {
        let name = name.trim_matches(['\'', '"']);
        let pattern = format!(
            r"(?:^|[^A-Za-z0-9_:])(?P<name>{})\s*\(",
            regex::escape(name)
        );
        let found = regex::Regex::new(&pattern).ok().and_then(|re| {
            re.captures(expr)
                .and_then(|c| c.name("name"))
                .map(|m| m.start())
        });
        if let Some(byte) = found {
            return format!(
                "{}: parse error: unknown function with name \"{name}\"",
                position_of(byte)
            );
        }
    }
    message.to_string()
}

/// Validates and builds one rule (`RuleNode.Validate` plus template parsing).
fn build_rule(
    path: &Path,
    group: &str,
    rule_idx: usize,
    doc: RuleDoc,
    rule_loc: Location,
    field: &str,
) -> Result<Rule, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let record = doc
        .record
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    let alert = doc
        .alert
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    let rule_name = if record.is_empty() {
        alert.clone()
    } else {
        record.clone()
    };
    // promtool names the rule by group, 1-based index and name.
    let mut push = |loc: Location, sub: &str, message: String| {
        let field = if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        };
        diags.push(Diagnostic::error(
            loc,
            field,
            format!(
                "group \"{group}\", rule {}, \"{rule_name}\": {message}",
                rule_idx + 1
            ),
        ));
    };
    if !record.is_empty() && !alert.is_empty() {
        push(
            rule_loc.clone(),
            "",
            "only one of 'record' and 'alert' must be set".to_string(),
        );
    }
    if record.is_empty() && alert.is_empty() {
        push(
            rule_loc.clone(),
            "",
            "one of 'record' or 'alert' must be set".to_string(),
        );
    }
    let expr = doc
        .expr
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    match &doc.expr {
        None => push(
            rule_loc.clone(),
            "",
            "field 'expr' must be set in rule".to_string(),
        ),
        Some(e) if e.value.is_empty() => push(
            spanned_at(path, e),
            "expr",
            "field 'expr' must be set in rule".to_string(),
        ),
        Some(e) => {
            if let Err(msg) = promql_parser::parser::parse(&e.value) {
                push(
                    spanned_at(path, e),
                    "expr",
                    format!(
                        "could not parse expression: {}",
                        with_parse_position(&e.value, msg.trim())
                    ),
                );
            }
        }
    }
    let labels = doc.labels.clone().unwrap_or_default();
    let annotations = doc.annotations.clone().unwrap_or_default();
    if !record.is_empty() {
        if doc.annotations.is_some() && !annotations.is_empty() {
            push(
                rule_loc.clone(),
                "annotations",
                "invalid field 'annotations' in recording rule".to_string(),
            );
        }
        if let Some(f) = &doc.for_ {
            push(
                spanned_at(path, f),
                "for",
                "invalid field 'for' in recording rule".to_string(),
            );
        }
        if let Some(k) = &doc.keep_firing_for {
            push(
                spanned_at(path, k),
                "keep_firing_for",
                "invalid field 'keep_firing_for' in recording rule".to_string(),
            );
        }
        if !is_valid_metric_name(&record) {
            push(
                rule_loc.clone(),
                "record",
                format!("invalid recording rule name: {record}"),
            );
        }
    }
    for (name, value) in &labels {
        if !is_valid_label_name(name) || name == METRIC_NAME {
            push(
                rule_loc.clone(),
                &format!("labels.{name}"),
                format!("invalid label name: {name}"),
            );
        }
        if std::str::from_utf8(value.as_bytes()).is_err() {
            push(
                rule_loc.clone(),
                &format!("labels.{name}"),
                format!("invalid label value: {value}"),
            );
        }
    }
    for name in annotations.keys() {
        if !is_valid_label_name(name) {
            push(
                rule_loc.clone(),
                &format!("annotations.{name}"),
                format!("invalid annotation name: {name}"),
            );
        }
    }
    let mut duration_field = |value: &Option<Spanned<String>>, sub: &str| -> i64 {
        let Some(v) = value else { return 0 };
        parse_prom_duration(&v.value).unwrap_or_else(|msg| {
            diags.push(Diagnostic::error(
                spanned_at(path, v),
                format!("{field}.{sub}"),
                msg,
            ));
            0
        })
    };
    let for_ms = duration_field(&doc.for_, "for");
    let keep_firing_for_ms = duration_field(&doc.keep_firing_for, "keep_firing_for");
    if !alert.is_empty() {
        for (kind, map) in [("label", &labels), ("annotation", &annotations)] {
            for (name, text) in map {
                if let Err(err) = template::check(&alert, text) {
                    diags.push(Diagnostic::error(
                        rule_loc.clone(),
                        format!("{field}.{kind}s.{name}"),
                        format!(
                            "group \"{group}\", rule {}, \"{rule_name}\": {kind} {name:?}: {err}",
                            rule_idx + 1
                        ),
                    ));
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let kind = if record.is_empty() {
        RuleKind::Alerting(AlertingRule {
            label_templates: labels
                .iter()
                .map(|(name, text)| (name.clone(), template::Template::new(&alert, text)))
                .collect(),
            annotations: annotations
                .iter()
                .map(|(name, text)| (name.clone(), template::Template::new(&alert, text)))
                .collect(),
            name: alert,
            for_ms,
            keep_firing_for_ms,
            active: BTreeMap::new(),
            restored: true,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        })
    } else {
        RuleKind::Recording { record }
    };
    Ok(Rule {
        expr,
        labels,
        kind,
        location: rule_loc,
        series_in_previous_eval: BTreeSet::new(),
        last_error: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Alerting

/// The state of one alert (`rules.AlertState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        })
    }
}

/// One alert of an alerting rule: a label set and its history. Times in Unix milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: LabelSet,
    /// The query sample's labels at the last evaluation that found the alert: `$labels` in
    /// its annotation templates ([`AlertingRule::annotations`]).
    pub sample_labels: LabelSet,
    pub value: f64,
    pub state: AlertState,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub keep_firing_since_ms: Option<i64>,
    /// Last time the alert was handed to the notifier [Unix ms].
    pub last_sent_at_ms: Option<i64>,
    /// Scratch of [`AlertingRule::eval`]: the state before this evaluation, whether this
    /// evaluation's result holds the alert.
    state_before_eval: AlertState,
    in_result: bool,
}

/// An alerting rule with its alerts.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    pub name: String,
    /// `for` [ms].
    pub for_ms: i64,
    /// `keep_firing_for` [ms].
    pub keep_firing_for_ms: i64,
    /// The rule's label templates, parsed once.
    pub label_templates: IndexMap<String, template::Template>,
    /// The rule's annotation templates, parsed once.
    pub annotations: IndexMap<String, template::Template>,
    /// Alerts by label set, including resolved ones kept for [`RESOLVED_RETENTION_MS`].
    pub active: BTreeMap<LabelSet, Alert>,
    /// Whether `for` state has been restored; until then no `ALERTS`/`ALERTS_FOR_STATE`
    /// series are written. Loaded rules start restored (promtool's view, and a server that
    /// never restarts); [`Group::start_after_restart`] clears it.
    pub restored: bool,
    /// The external labels and URL of the last evaluation, which annotations expand with.
    external_labels: BTreeMap<String, String>,
    external_url: String,
}

/// Context shared by every template expansion of a group evaluation.
#[derive(Clone, Debug, Default)]
pub struct EvalContext {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// `--rules.alert.resend-delay` [ms]; `None` means Prometheus's default, 1m.
    pub resend_delay_ms: Option<i64>,
    /// `--rules.alert.for-outage-tolerance` [ms]; `None` means the default, 1h.
    pub for_outage_tolerance_ms: Option<i64>,
    /// `--rules.alert.for-grace-period` [ms]; `None` means the default, 10m.
    pub for_grace_period_ms: Option<i64>,
    /// Build no [`Notification`]s (promtool's runner, which only compares alert states).
    pub skip_notifications: bool,
}

/// One alert as handed to Alertmanager (`notifier.Alert` built by `SendAlerts`): external
/// labels are added at this point, never during evaluation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Notification {
    /// When the group evaluation sent it [Unix ms].
    pub sent_at_ms: i64,
    pub labels: LabelSet,
    pub annotations: BTreeMap<String, String>,
    /// `FiredAt` [Unix ms].
    pub starts_at_ms: i64,
    /// `ResolvedAt` for a resolved alert, else `ValidUntil` = sent + 4 x max(resend delay,
    /// group interval) [Unix ms].
    pub ends_at_ms: i64,
    pub resolved: bool,
}

impl AlertingRule {
    /// The alerts to send after an evaluation at `ts_ms` (`sendAlerts` / `needsSending`,
    /// v2.42.0): never pending ones; a resolution at once; otherwise again only once the
    /// resend delay has strictly passed, so with 30s evaluations and a 1m delay a firing alert
    /// is re-sent every 1m30s. Resolved alerts are re-sent the same way while retained.
    pub fn notifications(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        external_labels: &BTreeMap<String, String>,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if alert.state == AlertState::Pending {
                continue;
            }
            let resolved_since_sent = match (alert.resolved_at_ms, alert.last_sent_at_ms) {
                (Some(resolved), Some(sent)) => resolved > sent,
                (Some(_), None) => true,
                _ => false,
            };
            let resend_due = alert
                .last_sent_at_ms
                .is_none_or(|sent| sent + resend_delay_ms < ts_ms);
            if !(resolved_since_sent || resend_due) {
                continue;
            }
            alert.last_sent_at_ms = Some(ts_ms);
            let valid_until = ts_ms + 4 * resend_delay_ms.max(interval_ms);
            let mut labels = alert.labels.clone();
            for (name, value) in external_labels {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
            out.push(Notification {
                sent_at_ms: ts_ms,
                labels,
                annotations: annotations_of(
                    &self.annotations,
                    &self.external_labels,
                    &self.external_url,
                    alert,
                ),
                starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                ends_at_ms: alert.resolved_at_ms.unwrap_or(valid_until),
                resolved: alert.resolved_at_ms.is_some(),
            });
        }
        out
    }
}

impl AlertingRule {
    /// The annotations of one of this rule's alerts. Prometheus expands them at every
    /// evaluation; twin keeps what they expand from (the alert's last sample and value, the
    /// evaluation's external labels and URL) and expands them when they are read, which gives
    /// the same text for a fraction of the work: most evaluations read no annotation.
    pub fn annotations(&self, alert: &Alert) -> BTreeMap<String, String> {
        annotations_of(
            &self.annotations,
            &self.external_labels,
            &self.external_url,
            alert,
        )
    }

    /// The rule's state: the highest state of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Alerts that are pending or firing (`ActiveAlerts`: no resolve time).
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().filter(|a| a.resolved_at_ms.is_none())
    }

    /// One evaluation at `ts_ms` over the query result (`AlertingRule.Eval`, v2.42.0).
    /// Returns the `ALERTS` and `ALERTS_FOR_STATE` samples to append.
    pub fn eval(
        &mut self,
        result: Vec<Sample>,
        ts_ms: i64,
        ctx: &EvalContext,
        limit: u64,
        transitions: &mut Vec<Transition>,
    ) -> Result<Vec<Sample>, String> {
        if self.external_labels != ctx.external_labels {
            self.external_labels.clone_from(&ctx.external_labels);
        }
        if self.external_url != ctx.external_url {
            self.external_url.clone_from(&ctx.external_url);
        }
        // The alerts of this result: (labels, sample labels, value), checked for duplicates
        // before any state changes, as upstream does.
        let mut fresh: BTreeMap<LabelSet, (LabelSet, f64)> = BTreeMap::new();
        for sample in result {
            let mut labels = sample.labels.clone();
            labels.remove(METRIC_NAME);
            // The data is built only for a label that has actions to expand.
            let mut data: Option<TemplateData> = None;
            for (name, template) in &self.label_templates {
                let value = match template.as_text() {
                    Some(text) => text.to_string(),
                    None => expanded(
                        template,
                        data.get_or_insert_with(|| TemplateData {
                            labels: sample.labels.clone(),
                            external_labels: ctx.external_labels.clone(),
                            external_url: ctx.external_url.clone(),
                            value: sample.value,
                        }),
                    ),
                };
                set_label(&mut labels, name, value);
            }
            labels.insert("alertname".to_string(), self.name.clone());
            if fresh.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            fresh.insert(labels, (sample.labels, sample.value));
        }
        let mark = transitions.len();
        for alert in self.active.values_mut() {
            alert.state_before_eval = alert.state;
            alert.in_result = false;
        }
        for (key, (sample_labels, value)) in fresh {
            match self.active.get_mut(&key) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = value;
                    existing.sample_labels = sample_labels;
                    existing.in_result = true;
                }
                _ => {
                    let alert = Alert {
                        labels: key.clone(),
                        sample_labels,
                        value,
                        state: AlertState::Pending,
                        active_at_ms: ts_ms,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                        keep_firing_since_ms: None,
                        last_sent_at_ms: None,
                        state_before_eval: AlertState::Inactive,
                        in_result: true,
                    };
                    self.active.insert(key, alert);
                }
            }
        }
        let mut out = Vec::new();
        let mut n_active = 0u64;
        let mut to_delete = Vec::new();
        for (key, alert) in self.active.iter_mut() {
            let mut emit = true;
            if !alert.in_result {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *alert.keep_firing_since_ms.get_or_insert(ts_ms);
                    keep_firing = ts_ms - since < self.keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending
                    || alert
                        .resolved_at_ms
                        .is_some_and(|r| ts_ms - r > RESOLVED_RETENTION_MS)
                {
                    to_delete.push(key.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(ts_ms);
                }
                emit = keep_firing;
            } else {
                alert.keep_firing_since_ms = None;
            }
            if emit {
                n_active += 1;
                if alert.state == AlertState::Pending && ts_ms - alert.active_at_ms >= self.for_ms {
                    alert.state = AlertState::Firing;
                    alert.fired_at_ms = Some(ts_ms);
                }
            }
            if alert.state != alert.state_before_eval {
                let deleted = to_delete.last() == Some(key);
                transitions.push(Transition {
                    alertname: self.name.clone(),
                    labels: key.clone(),
                    from: alert.state_before_eval,
                    to: alert.state,
                    at_ms: ts_ms,
                    // A deleted alert's transition carries the evaluation time and no value.
                    active_at_ms: if deleted { ts_ms } else { alert.active_at_ms },
                    value: if deleted { f64::NAN } else { alert.value },
                });
            }
            if !emit || !self.restored {
                continue;
            }
            let mut alerts = alert.labels.clone();
            alerts.insert(METRIC_NAME.to_string(), "ALERTS".to_string());
            alerts.insert("alertstate".to_string(), alert.state.to_string());
            out.push(Sample {
                labels: alerts,
                value: 1.0,
            });
            let mut for_state = alert.labels.clone();
            for_state.insert(METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string());
            // Unix seconds, integer part (time.Unix()), floor for negative times as Go does.
            out.push(Sample {
                labels: for_state,
                value: alert.active_at_ms.div_euclid(1000) as f64,
            });
        }
        if limit > 0 && n_active > limit {
            // Every alert is dropped: each that was pending or firing before ends inactive.
            transitions.truncate(mark);
            for (key, alert) in std::mem::take(&mut self.active) {
                if alert.state_before_eval != AlertState::Inactive {
                    transitions.push(Transition {
                        alertname: self.name.clone(),
                        labels: key,
                        from: alert.state_before_eval,
                        to: AlertState::Inactive,
                        at_ms: ts_ms,
                        active_at_ms: ts_ms,
                        value: f64::NAN,
                    });
                }
            }
            return Err(format!("exceeded limit of {limit} with {n_active} alerts"));
        }
        for key in to_delete {
            self.active.remove(&key);
        }
        Ok(out)
    }
}

/// A template's expansion, or Prometheus's error text in its place.
fn expanded(template: &template::Template, data: &TemplateData) -> String {
    match template.expand(data) {
        Ok(out) => out,
        Err(err) => format!("<error expanding template: {err}>"),
    }
}

/// The annotations of `alert` expanded from its last sample and value.
fn annotations_of(
    templates: &IndexMap<String, template::Template>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    alert: &Alert,
) -> BTreeMap<String, String> {
    if templates.is_empty() {
        return BTreeMap::new();
    }
    let data = TemplateData {
        labels: alert.sample_labels.clone(),
        external_labels: external_labels.clone(),
        external_url: external_url.to_string(),
        value: alert.value,
    };
    templates
        .iter()
        .map(|(name, text)| (name.clone(), expanded(text, &data)))
        .collect()
}

/// Sets a label, or removes it when the value is empty (`labels.Builder.Set`).
fn set_label(labels: &mut LabelSet, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_string(), value);
    }
}

/// Recording rule output (`RecordingRule.Eval`, v2.42.0).
fn eval_recording(
    record: &str,
    rule_labels: &IndexMap<String, String>,
    result: Vec<Sample>,
    limit: u64,
) -> Result<Vec<Sample>, String> {
    let mut out = Vec::with_capacity(result.len());
    let mut seen = BTreeSet::new();
    for mut sample in result {
        sample
            .labels
            .insert(METRIC_NAME.to_string(), record.to_string());
        for (name, value) in rule_labels {
            set_label(&mut sample.labels, name, value.clone());
        }
        if !seen.insert(sample.labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        out.push(sample);
    }
    if limit > 0 && out.len() as u64 > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Group evaluation and scheduling

/// A change of one alert's state seen by one evaluation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Transition {
    pub alertname: String,
    pub labels: LabelSet,
    pub from: AlertState,
    pub to: AlertState,
    /// Evaluation time of the change [Unix ms].
    pub at_ms: i64,
    /// The alert's `ActiveAt` [Unix ms].
    pub active_at_ms: i64,
    pub value: f64,
}

/// What one group evaluation did.
#[derive(Clone, Debug, Default)]
pub struct GroupEval {
    pub transitions: Vec<Transition>,
    /// Alerts handed to the notifier, in rule order then label-set order.
    pub notifications: Vec<Notification>,
    /// `(rule name, error)` for each rule that failed this evaluation.
    pub errors: Vec<(String, String)>,
}

impl Group {
    /// Evaluates every rule in file order at `ts_ms` (`Group.Eval`, v2.42.0): each rule's output
    /// is appended before the next rule runs, then series the rule wrote last time but not now
    /// get a stale marker at `ts_ms`.
    pub fn evaluate(
        &mut self,
        ts_ms: i64,
        storage: &mut dyn RuleStorage,
        ctx: &EvalContext,
    ) -> GroupEval {
        let mut report = GroupEval::default();
        for rule in &mut self.rules {
            let result = storage.query(&rule.expr, ts_ms);
            let output = result.and_then(|samples| match &mut rule.kind {
                RuleKind::Recording { record } => {
                    eval_recording(record, &rule.labels, samples, self.limit)
                }
                RuleKind::Alerting(alerting) => {
                    alerting.eval(samples, ts_ms, ctx, self.limit, &mut report.transitions)
                }
            });
            let samples = match output {
                Ok(samples) => {
                    rule.last_error = None;
                    if let (RuleKind::Alerting(alerting), false) =
                        (&mut rule.kind, ctx.skip_notifications)
                    {
                        let resend_delay_ms = ctx.resend_delay_ms.unwrap_or(60_000);
                        report.notifications.extend(alerting.notifications(
                            ts_ms,
                            resend_delay_ms,
                            self.interval_ms,
                            &ctx.external_labels,
                        ));
                    }
                    samples
                }
                Err(err) => {
                    // Upstream returns before registering the stale-marker pass: no markers.
                    report.errors.push((rule.name().to_string(), err.clone()));
                    rule.last_error = Some(err);
                    continue;
                }
            };
            let mut returned = BTreeSet::new();
            for sample in samples {
                if storage.append(&sample.labels, ts_ms, sample.value).is_ok() {
                    returned.insert(sample.labels);
                }
            }
            let stale = f64::from_bits(STALE_NAN_BITS);
            for gone in rule.series_in_previous_eval.difference(&returned) {
                let _ = storage.append(gone, ts_ms, stale);
            }
            rule.series_in_previous_eval = returned;
        }
        // A restarted server restores `for` state after its second evaluation, once
        // recording rules have caught up (`Group.run`).
        if self.evals_until_restore > 0 {
            self.evals_until_restore -= 1;
            if self.evals_until_restore == 0 {
                self.restore_for_state(ts_ms, storage, ctx);
            }
        }
        report
    }

    /// Models a server (re)start: in-memory alert state is gone, alerting rules write no
    /// `ALERTS` until their `for` state is restored after the group's second evaluation.
    pub fn start_after_restart(&mut self) {
        for rule in &mut self.rules {
            rule.series_in_previous_eval.clear();
            rule.last_error = None;
            if let RuleKind::Alerting(alerting) = &mut rule.kind {
                alerting.active.clear();
                alerting.restored = false;
            }
        }
        self.evals_until_restore = 2;
    }

    /// `Group.RestoreForState` (v2.42.0): each active alert takes its `ActiveAt` back from the
    /// newest `ALERTS_FOR_STATE` sample within the outage tolerance, shifted by the downtime,
    /// or pushed so that at least the grace period remains before it fires. Rules whose `for`
    /// is under the grace period are not restored (they simply wait `for` again).
    pub fn restore_for_state(&mut self, ts_ms: i64, storage: &dyn RuleStorage, ctx: &EvalContext) {
        let tolerance_ms = ctx.for_outage_tolerance_ms.unwrap_or(3_600_000);
        let grace_ms = ctx.for_grace_period_ms.unwrap_or(600_000);
        for rule in &mut self.rules {
            let RuleKind::Alerting(alerting) = &mut rule.kind else {
                continue;
            };
            if alerting.for_ms < grace_ms {
                alerting.restored = true;
                continue;
            }
            for alert in alerting.active.values_mut() {
                let mut labels = alert.labels.clone();
                labels.insert(METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string());
                let Some((t_ms, value)) =
                    storage.latest_sample(&labels, ts_ms - tolerance_ms, ts_ms)
                else {
                    continue;
                };
                if value.to_bits() == STALE_NAN_BITS {
                    continue;
                }
                // Both times go through whole seconds upstream (time.Unix(t/1000, 0)).
                let down_at_ms = (t_ms / 1000) * 1000;
                let mut restored_active_ms = (value as i64) * 1000;
                let remaining_ms = alerting.for_ms - (down_at_ms - restored_active_ms);
                if remaining_ms <= 0 {
                    // It was firing when the server went down; the next evaluation decides.
                } else if remaining_ms < grace_ms {
                    restored_active_ms = ts_ms + grace_ms - alerting.for_ms;
                } else {
                    restored_active_ms += ts_ms - down_at_ms;
                }
                alert.active_at_ms = restored_active_ms;
            }
            alerting.restored = true;
        }
    }

    /// All alerting rules of the group.
    pub fn alerting_rules(&self) -> impl Iterator<Item = &AlertingRule> {
        self.rules.iter().filter_map(|r| match &r.kind {
            RuleKind::Alerting(a) => Some(a),
            RuleKind::Recording { .. } => None,
        })
    }

    /// The group's slot offset [ns]: xxhash64 of `{file, name}` modulo the interval.
    pub fn offset_ns(&self) -> i64 {
        group_offset_ns(&self.file, &self.name, self.interval_ms * 1_000_000)
    }

    /// The latest slot at or before `now_ns` (`Group.EvalTimestamp`).
    pub fn eval_timestamp_ns(&self, now_ns: i64) -> i64 {
        let interval_ns = self.interval_ms * 1_000_000;
        if interval_ns <= 0 {
            return now_ns;
        }
        let offset = self.offset_ns();
        let start = now_ns - offset;
        // Go's `%` truncates; for the positive Unix times a server sees that is the same as
        // this floor, which also keeps the slot at or before `now` for sim times near zero.
        let base = start - start.rem_euclid(interval_ns);
        base + offset
    }

    /// Evaluation times [ns] of a server started at `start_ns`, up to `end_ns` inclusive: the
    /// first slot strictly after start-up, then every interval (`Group.run`).
    pub fn evaluation_times_ns(&self, start_ns: i64, end_ns: i64) -> Vec<i64> {
        let interval_ns = self.interval_ms * 1_000_000;
        let mut out = Vec::new();
        if interval_ns <= 0 {
            return out;
        }
        let mut t = self.eval_timestamp_ns(start_ns) + interval_ns;
        while t <= end_ns {
            out.push(t);
            t += interval_ns;
        }
        out
    }
}

/// The group hash of Prometheus: xxhash64 over `file 0xff <file> 0xff name 0xff <name> 0xff`
/// (`labels.FromStrings("name", name, "file", file).Hash()`), modulo the interval [ns].
pub fn group_offset_ns(file: &str, name: &str, interval_ns: i64) -> i64 {
    if interval_ns <= 0 {
        return 0;
    }
    let mut bytes = Vec::with_capacity(file.len() + name.len() + 12);
    for (label, value) in [("file", file), ("name", name)] {
        bytes.extend_from_slice(label.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xff);
    }
    let hash = xxhash_rust::xxh64::xxh64(&bytes, 0);
    (hash % interval_ns as u64) as i64
}

/// One alert's life over a run: when it became pending, fired and resolved.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AlertTimeline {
    pub alertname: String,
    pub labels: LabelSet,
    pub pending_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
}

/// Folds transitions (in time order) into alert lifetimes, one per pending episode.
pub fn timelines(transitions: &[Transition]) -> Vec<AlertTimeline> {
    let mut open: BTreeMap<(String, LabelSet), usize> = BTreeMap::new();
    let mut out: Vec<AlertTimeline> = Vec::new();
    for t in transitions {
        let key = (t.alertname.clone(), t.labels.clone());
        match t.to {
            AlertState::Pending => {
                open.insert(key, out.len());
                out.push(AlertTimeline {
                    alertname: t.alertname.clone(),
                    labels: t.labels.clone(),
                    pending_at_ms: t.active_at_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                });
            }
            AlertState::Firing => {
                let idx = *open.entry(key).or_insert_with(|| {
                    out.push(AlertTimeline {
                        alertname: t.alertname.clone(),
                        labels: t.labels.clone(),
                        pending_at_ms: t.active_at_ms,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                    });
                    out.len() - 1
                });
                out[idx].fired_at_ms = Some(t.at_ms);
            }
            AlertState::Inactive => {
                if let Some(idx) = open.remove(&key)
                    && out[idx].fired_at_ms.is_some()
                {
                    out[idx].resolved_at_ms = Some(t.at_ms);
                }
            }
        }
    }
    out
}

/// One group evaluation of a live-server schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledEval {
    /// Evaluation time [ns].
    pub t_ns: i64,
    /// Index of the group in the slice given to [`evaluation_plan`].
    pub group_idx: usize,
}

/// The evaluations a server started at `start_ns` performs up to `end_ns`: every group on its
/// own grid (`interval`, hash offset), first slot strictly after start (§2). Groups are
/// independent loops upstream; at equal times we order by group index so runs are stable.
pub fn evaluation_plan(groups: &[Group], start_ns: i64, end_ns: i64) -> Vec<ScheduledEval> {
    let mut plan: Vec<ScheduledEval> = groups
        .iter()
        .enumerate()
        .flat_map(|(group_idx, g)| {
            g.evaluation_times_ns(start_ns, end_ns)
                .into_iter()
                .map(move |t_ns| ScheduledEval { t_ns, group_idx })
        })
        .collect();
    plan.sort_by_key(|e| (e.t_ns, e.group_idx));
    plan
}

/// What a scheduled run did: every transition in time order and each alert's lifetime.
#[derive(Clone, Debug, Default)]
pub struct ScheduleRun {
    pub transitions: Vec<Transition>,
    pub notifications: Vec<Notification>,
    pub timelines: Vec<AlertTimeline>,
    /// `(time [ms], group, rule, error)` of failed rule evaluations.
    pub errors: Vec<(i64, String, String, String)>,
}

/// Evaluates `groups` over an already-filled storage as a live server would between
/// `start_ns` and `end_ns` (sample timestamps are milliseconds, as upstream's
/// `timestamp.FromTime`).
pub fn run_schedule(
    groups: &mut [Group],
    start_ns: i64,
    end_ns: i64,
    storage: &mut dyn RuleStorage,
    ctx: &EvalContext,
) -> ScheduleRun {
    let mut run = ScheduleRun::default();
    for step in evaluation_plan(groups, start_ns, end_ns) {
        let ts_ms = step.t_ns.div_euclid(1_000_000);
        let group = &mut groups[step.group_idx];
        let report = group.evaluate(ts_ms, storage, ctx);
        run.transitions.extend(report.transitions);
        run.notifications.extend(report.notifications);
        for (rule, err) in report.errors {
            run.errors.push((ts_ms, group.name.clone(), rule, err));
        }
    }
    run.timelines = timelines(&run.transitions);
    run
}
