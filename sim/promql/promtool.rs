//! promtool's rule unit tests (`promtool test rules`), run the way promtool 2.42 runs them
//! (`cmd/promtool/unittest.go`, `promql/test.go`; spec/prometheus.md §11).
//!
//! What it owns: the test-file format (strict: unknown keys are errors), the expanding series
//! notation (`a+bxN`, `a-bxN`, `axN`, `_`, `_xN`, `stale`), the evaluation loop and promtool's
//! failure texts. It differs from a live server on purpose, as promtool does: every group is
//! evaluated at every step of the file's `evaluation_interval` from t=0 (the group's own
//! `interval` and slot offset are ignored), groups run in `group_eval_order` (an unlisted
//! group counts as position 0, like the first listed one, as in promtool's sort; ties keep
//! file order where promtool's order is random), every alerting rule counts as restored, and
//! only firing, unresolved alerts are compared.
//!
//! Invariants: a malformed test or rule file is a [`Diagnostic`] naming file, line and column,
//! and nothing is evaluated for that file; test groups are independent (fresh store, fresh
//! alert state); output is ordered and byte-stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::promql::EngineOptions;
use crate::promql::rules::{
    self, EvalContext, Group, LabelSet, RuleStorage, StoreStorage, format_prom_duration,
    parse_prom_duration,
};
use crate::promql::template::format_float_e;

#[cfg(test)]
mod tests;

/// Errors of this module: a file that cannot be run at all.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PromtoolError {
    /// The test file or a rule file it names is malformed; every problem found is listed.
    #[error("{0}")]
    Malformed(Diagnostics),
}

impl PromtoolError {
    pub fn diagnostics(&self) -> &Diagnostics {
        match self {
            PromtoolError::Malformed(diags) => diags,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// File format

/// A YAML scalar read as text whatever its YAML type (`values: 1` is the string "1"), as Go's
/// yaml.v2 does for a `string` field.
#[derive(Clone, Debug, Default)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFileDoc {
    #[serde(default)]
    rule_files: Vec<Spanned<Text>>,
    #[serde(default)]
    evaluation_interval: Option<Spanned<Text>>,
    #[serde(default)]
    group_eval_order: Vec<Spanned<Text>>,
    #[serde(default)]
    tests: Vec<Spanned<TestGroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroupDoc {
    #[serde(default)]
    name: Option<Text>,
    #[serde(default)]
    interval: Option<Spanned<Text>>,
    #[serde(default)]
    input_series: Vec<Spanned<SeriesDoc>>,
    #[serde(default)]
    alert_rule_test: Vec<Spanned<AlertTestDoc>>,
    #[serde(default)]
    promql_expr_test: Vec<Spanned<ExprTestDoc>>,
    #[serde(default)]
    external_labels: BTreeMap<String, Text>,
    #[serde(default)]
    external_url: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesDoc {
    series: Spanned<Text>,
    values: Spanned<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestDoc {
    eval_time: Spanned<Text>,
    #[serde(default)]
    alertname: Text,
    #[serde(default)]
    exp_alerts: Vec<ExpAlertDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlertDoc {
    #[serde(default)]
    exp_labels: BTreeMap<String, Text>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTestDoc {
    expr: Spanned<Text>,
    eval_time: Spanned<Text>,
    #[serde(default)]
    exp_samples: Vec<ExpSampleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSampleDoc {
    #[serde(default)]
    labels: Text,
    value: f64,
}

/// A parsed, validated test file.
#[derive(Clone, Debug)]
pub struct TestFile {
    pub path: PathBuf,
    pub evaluation_interval_ms: i64,
    pub group_eval_order: Vec<String>,
    pub groups: Vec<Group>,
    pub tests: Vec<TestGroup>,
}

/// One entry of `tests:`.
#[derive(Clone, Debug)]
pub struct TestGroup {
    pub name: String,
    /// Input sample spacing [ms]; 0 when left out (2.42 then loads every sample at t=0).
    pub interval_ms: i64,
    pub input_series: Vec<InputSeries>,
    pub alert_tests: Vec<AlertTest>,
    pub expr_tests: Vec<ExprTest>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

/// A series and its values slot by slot (`None` = no sample in that slot).
#[derive(Clone, Debug, PartialEq)]
pub struct InputSeries {
    pub labels: LabelSet,
    pub values: Vec<Option<f64>>,
}

#[derive(Clone, Debug)]
pub struct AlertTest {
    pub eval_time_ms: i64,
    pub alertname: String,
    /// Expected (labels incl. alertname, annotations), sorted by labels.
    pub expected: Vec<(LabelSet, BTreeMap<String, String>)>,
}

#[derive(Clone, Debug)]
pub struct ExprTest {
    pub expr: String,
    pub eval_time_ms: i64,
    /// Expected `(labels, value)`; `Err` keeps a label text that does not parse, which
    /// promtool reports when the test runs.
    pub expected: Result<Vec<(LabelSet, f64)>, String>,
}

fn loc(path: &Path, line: u64, column: u64) -> Location {
    Location {
        file: path.to_path_buf(),
        document: 0,
        line: line as usize,
        column: column as usize,
    }
}

fn span_loc<T>(path: &Path, s: &Spanned<T>) -> Location {
    loc(path, s.referenced.line(), s.referenced.column())
}

/// Parses one promtool test file and the rule files it names.
pub fn load_test_file(path: &Path) -> Result<TestFile, PromtoolError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PromtoolError::Malformed(Diagnostics(vec![Diagnostic::error(
            loc(path, 0, 0),
            "",
            format!("cannot read test file: {e}"),
        )]))
    })?;
    parse_test_file(path, &text)
}

/// Parses test-file text; `path` locates the rule files and names the file in diagnostics.
pub fn parse_test_file(path: &Path, text: &str) -> Result<TestFile, PromtoolError> {
    parse_test_text(path, text).map_err(PromtoolError::Malformed)
}

fn parse_test_text(path: &Path, text: &str) -> Result<TestFile, Diagnostics> {
    let doc: TestFileDoc = rules::from_yaml(path, text).map_err(|d| Diagnostics(vec![d]))?;
    let mut diags = Vec::new();
    let duration = |value: &Spanned<Text>, field: String, diags: &mut Vec<Diagnostic>| -> i64 {
        parse_prom_duration(&value.value.0).unwrap_or_else(|msg| {
            diags.push(Diagnostic::error(span_loc(path, value), field, msg));
            0
        })
    };
    let evaluation_interval_ms = match &doc.evaluation_interval {
        None => 60_000,
        Some(v) => match duration(v, "evaluation_interval".to_string(), &mut diags) {
            0 => 60_000,
            ms => ms,
        },
    };
    let mut tests = Vec::new();
    for (group_idx, spanned) in doc.tests.iter().enumerate() {
        let field = format!("tests[{group_idx}]");
        let doc = &spanned.value;
        let interval_ms = doc
            .interval
            .as_ref()
            .map(|v| duration(v, format!("{field}.interval"), &mut diags))
            .unwrap_or(0);
        let mut input_series = Vec::new();
        for (idx, series) in doc.input_series.iter().enumerate() {
            let labels = match parse_series_labels(&series.value.series.value.0) {
                Ok(labels) => labels,
                Err(msg) => {
                    diags.push(Diagnostic::error(
                        span_loc(path, &series.value.series),
                        format!("{field}.input_series[{idx}].series"),
                        msg,
                    ));
                    continue;
                }
            };
            let values = match expand_values(&series.value.values.value.0) {
                Ok(values) => values,
                Err(msg) => {
                    diags.push(Diagnostic::error(
                        span_loc(path, &series.value.values),
                        format!("{field}.input_series[{idx}].values"),
                        msg,
                    ));
                    continue;
                }
            };
            input_series.push(InputSeries { labels, values });
        }
        let mut alert_tests = Vec::new();
        for (idx, test) in doc.alert_rule_test.iter().enumerate() {
            let t = &test.value;
            let eval_time_ms = duration(
                &t.eval_time,
                format!("{field}.alert_rule_test[{idx}].eval_time"),
                &mut diags,
            );
            let mut expected: Vec<(LabelSet, BTreeMap<String, String>)> = t
                .exp_alerts
                .iter()
                .map(|a| {
                    let mut labels: LabelSet = a
                        .exp_labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect();
                    labels.insert("alertname".to_string(), t.alertname.0.clone());
                    let annotations = a
                        .exp_annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect();
                    (labels, annotations)
                })
                .collect();
            expected.sort();
            alert_tests.push(AlertTest {
                eval_time_ms,
                alertname: t.alertname.0.clone(),
                expected,
            });
        }
        let mut expr_tests = Vec::new();
        for (idx, test) in doc.promql_expr_test.iter().enumerate() {
            let t = &test.value;
            let eval_time_ms = duration(
                &t.eval_time,
                format!("{field}.promql_expr_test[{idx}].eval_time"),
                &mut diags,
            );
            let expected: Result<Vec<(LabelSet, f64)>, String> = t
                .exp_samples
                .iter()
                .map(|s| {
                    parse_series_labels(&s.labels.0)
                        .map(|l| (l, s.value))
                        .map_err(|e| format!("labels {:?}: {e}", s.labels.0))
                })
                .collect();
            expr_tests.push(ExprTest {
                expr: t.expr.value.0.clone(),
                eval_time_ms,
                expected,
            });
        }
        tests.push(TestGroup {
            name: doc.name.as_ref().map(|n| n.0.clone()).unwrap_or_default(),
            interval_ms,
            input_series,
            alert_tests,
            expr_tests,
            external_labels: doc
                .external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            external_url: doc
                .external_url
                .as_ref()
                .map(|u| u.0.clone())
                .unwrap_or_default(),
        });
    }
    // Rule files are relative to the test file (promtool's resolveAndGlobFilepaths).
    let base = path.parent().unwrap_or(Path::new("."));
    let mut groups = Vec::new();
    for rule_file in &doc.rule_files {
        let pattern = &rule_file.value.0;
        let resolved = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let files = match glob(&resolved) {
            Ok(files) if !files.is_empty() => files,
            _ => {
                diags.push(Diagnostic::error(
                    span_loc(path, rule_file),
                    "rule_files",
                    format!("no rule file matches {}", resolved.display()),
                ));
                continue;
            }
        };
        for file in files {
            match rules::load_rule_file(&file, evaluation_interval_ms) {
                Ok(mut loaded) => groups.append(&mut loaded),
                Err(rules::RulesError::Invalid(mut d)) => diags.append(&mut d.0),
                Err(err @ rules::RulesError::Read { .. }) => diags.push(Diagnostic::error(
                    span_loc(path, rule_file),
                    "rule_files",
                    err.to_string(),
                )),
            }
        }
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    Ok(TestFile {
        path: path.to_path_buf(),
        evaluation_interval_ms,
        group_eval_order: doc
            .group_eval_order
            .iter()
            .map(|g| g.value.0.clone())
            .collect(),
        groups,
        tests,
    })
}

/// Expands `*` and `?` in the last path component (enough for `rules/*.yaml`); a path without
/// them is returned when it exists.
fn glob(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let regex_text = format!(
        "^{}$",
        regex::escape(&name)
            .replace("\\*", ".*")
            .replace("\\?", ".")
    );
    let re = regex::Regex::new(&regex_text).map_err(std::io::Error::other)?;
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Series notation

/// Parses `name{a="b", ...}`, `name` or `{...}` (promql's `ParseMetric`).
pub fn parse_series_labels(text: &str) -> Result<LabelSet, String> {
    if text.trim().is_empty() {
        // promtool 2.42 accepts `labels: ''` as the empty label set (checked).
        return Ok(LabelSet::new());
    }
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let mut out = LabelSet::new();
    let ident = |i: &mut usize, metric: bool| -> String {
        let mut s = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            let ok = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
            if !ok || (s.is_empty() && c.is_ascii_digit()) {
                break;
            }
            s.push(c);
            *i += 1;
        }
        s
    };
    let skip = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let name = ident(&mut i, true);
    if !name.is_empty() {
        out.insert(rules::METRIC_NAME.to_string(), name.clone());
    }
    skip(&mut i);
    if i < chars.len() && chars[i] == '{' {
        i += 1;
        loop {
            skip(&mut i);
            if i < chars.len() && chars[i] == '}' {
                i += 1;
                break;
            }
            let label = ident(&mut i, false);
            if label.is_empty() {
                return Err(format!(
                    "1:{}: parse error: unexpected character in label matching",
                    i + 1
                ));
            }
            skip(&mut i);
            if chars.get(i) != Some(&'=') {
                return Err(format!(
                    "1:{}: parse error: expected '=' after label {label}",
                    i + 1
                ));
            }
            i += 1;
            skip(&mut i);
            let Some(&quote) = chars.get(i).filter(|c| matches!(c, '"' | '\'' | '`')) else {
                return Err(format!(
                    "1:{}: parse error: expected a quoted label value",
                    i + 1
                ));
            };
            i += 1;
            let mut value = String::new();
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err("parse error: unterminated quoted string".to_string());
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c == '\\' && quote != '`' {
                    let Some(&e) = chars.get(i) else {
                        return Err("parse error: unterminated escape".to_string());
                    };
                    i += 1;
                    value.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                } else {
                    value.push(c);
                }
            }
            if !value.is_empty() {
                out.insert(label, value);
            }
            skip(&mut i);
            match chars.get(i) {
                Some(',') => i += 1,
                Some('}') => {}
                _ => return Err(format!("1:{}: parse error: expected ',' or '}}'", i + 1)),
            }
        }
    } else if name.is_empty() {
        return Err("1:1: parse error: unexpected end of input".to_string());
    }
    skip(&mut i);
    if i != chars.len() {
        return Err(format!(
            "1:{}: parse error: unexpected character after the series",
            i + 1
        ));
    }
    Ok(out)
}

/// `strconv.ParseFloat` plus PromQL's number spellings (`Inf`, `NaN`).
fn parse_number(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let (sign, body) = match lower.strip_prefix('-') {
        Some(b) => (-1.0, b.to_string()),
        None => (1.0, lower.strip_prefix('+').unwrap_or(&lower).to_string()),
    };
    match body.as_str() {
        "inf" | "infinity" => return Some(sign * f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// The most slots one series may expand to: bad input must be an error, not an allocation
/// that takes the machine down.
const SLOTS_MAX: usize = 10_000_000;

/// The most evaluation steps one test group may take.
const STEPS_MAX: i64 = 1_000_000;

/// Expands the values notation into slots. `a+bxN` gives N+1 samples built by repeated
/// addition (as upstream's parser does, so rounding matches); `_xN` gives N empty slots.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let stale = f64::from_bits(rules::STALE_NAN_BITS);
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if out.len() > SLOTS_MAX {
            return Err(format!(
                "the series expands to more than {SLOTS_MAX} samples"
            ));
        }
        if token == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = token.strip_prefix("_x") {
            let n: usize =
                n.parse().ok().filter(|n| *n <= SLOTS_MAX).ok_or_else(|| {
                    format!("invalid repetition in {token:?} (at most {SLOTS_MAX})")
                })?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if token == "stale" {
            out.push(Some(stale));
            continue;
        }
        let value_of =
            |t: &str| parse_number(t).ok_or_else(|| format!("invalid value {t:?} in {token:?}"));
        // The last `x` separates the repetition count.
        let x_pos = token.rfind('x');
        let Some(x_pos) = x_pos else {
            out.push(Some(value_of(token)?));
            continue;
        };
        let (head, count) = (&token[..x_pos], &token[x_pos + 1..]);
        let n: u64 = count
            .parse()
            .ok()
            .filter(|n| *n < SLOTS_MAX as u64)
            .ok_or_else(|| format!("invalid repetition in {token:?} (at most {SLOTS_MAX})"))?;
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
        match split {
            None => {
                let v = if head == "stale" {
                    stale
                } else {
                    value_of(head)?
                };
                out.extend((0..=n).map(|_| Some(v)));
            }
            Some(i) => {
                let mut v = value_of(&head[..i])?;
                let inc = value_of(&head[i..])?;
                out.push(Some(v));
                for _ in 0..n {
                    v += inc;
                    out.push(Some(v));
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Running

/// The verdict on one test file.
#[derive(Clone, Debug, PartialEq)]
pub enum FileOutcome {
    Passed,
    /// promtool's failure lines, one entry per failed check.
    Failed(Vec<String>),
}

/// Runs every test group of a loaded file.
pub fn run_test_file(file: &TestFile) -> FileOutcome {
    let mut errors = Vec::new();
    // promtool 2.42 rejects a repeated name; a name no rule file defines is simply unused
    // (checked).
    let mut seen = std::collections::BTreeSet::new();
    for name in &file.group_eval_order {
        if !seen.insert(name) {
            errors.push(format!("group name repeated in evaluation order: {name}"));
            break;
        }
    }
    if !errors.is_empty() {
        return FileOutcome::Failed(errors);
    }
    for test in &file.tests {
        errors.extend(run_test_group(file, test));
    }
    if errors.is_empty() {
        FileOutcome::Passed
    } else {
        FileOutcome::Failed(errors)
    }
}

/// Groups in evaluation order: by position in `group_eval_order`, unlisted ones counting as
/// position 0 (as promtool's sort does), ties in file order.
fn ordered_groups(file: &TestFile) -> Vec<Group> {
    let mut groups = file.groups.clone();
    let position = |g: &Group| {
        file.group_eval_order
            .iter()
            .position(|n| *n == g.name)
            .unwrap_or(0)
    };
    groups.sort_by_key(position);
    groups
}

fn labels_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// promtool's `indentLines`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i > 0 {
                format!("{indent}{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// promtool's `labelsAndAnnotations.String`.
fn alerts_string(alerts: &[(LabelSet, BTreeMap<String, String>)]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let mut s = String::from("[");
    for (i, (labels, annotations)) in alerts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let one = format!(
            "\nLabels:{}\nAnnotations:{}",
            labels_string(labels),
            labels_string(annotations)
        );
        let _ = write!(s, "\n{i}:{}", indent_lines(&one, "  "));
    }
    s.push_str("\n]");
    s
}

/// promtool's `parsedSamplesString`.
fn samples_string(samples: &[(LabelSet, f64)]) -> String {
    if samples.is_empty() {
        return "nil".to_string();
    }
    samples
        .iter()
        .map(|(l, v)| format!("{} {}", labels_string(l), format_float_upper_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `strconv.FormatFloat(v, 'E', -1, 64)`.
fn format_float_upper_e(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float_e(v, 0, true);
    }
    // Shortest digits, then the %E layout with as many fraction digits as they need.
    let shortest = format!("{:e}", v.abs());
    let mantissa = shortest.split('e').next().unwrap_or("0");
    let frac = mantissa.split('.').nth(1).map(str::len).unwrap_or(0);
    format_float_e(v, frac, true)
}

/// Steps one test group the way promtool 2.42 does, from t=0 to `until_ms` at the file's
/// `evaluation_interval`: before each step the input samples up to that time are loaded
/// (promtool's lazy loader), then every group is evaluated in evaluation order, then
/// `after_step(ts, groups)` sees the groups' alert state. The first step whose evaluation
/// reports rule errors ends the run with promtool's lines for them.
///
/// `twin rules test` checks its `alert_rule_test` entries from `after_step`;
/// `twin export promtool-test` uses it to find when promtool will see each alert firing.
pub fn step_test_group(
    file: &TestFile,
    test: &TestGroup,
    until_ms: i64,
    mut after_step: impl FnMut(i64, &[Group]),
) -> Result<StoreStorage, Vec<String>> {
    let mut storage = StoreStorage::new(EngineOptions::default());
    // Each input series' store id, found once (a label set promtool's appender would refuse
    // has none, and its samples are dropped as the appender drops them).
    let ids: Vec<Option<crate::telemetry::store::SeriesId>> = test
        .input_series
        .iter()
        .map(|series| {
            let labels = crate::telemetry::store::Labels::from_pairs(
                series.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            storage.store.series_id(&labels).ok()
        })
        .collect();
    // Input samples are loaded lazily before each evaluation (LazyLoader): every series has
    // its samples at the test's interval, so a cursor per series (its next slot) keeps them in
    // time order, series by series within one time as the loader appends them.
    let mut next_slot: Vec<usize> = vec![0; test.input_series.len()];
    let mut groups = ordered_groups(file);
    let ctx = EvalContext {
        external_labels: test.external_labels.clone(),
        external_url: test.external_url.clone(),
        // promtool compares alert states, it sends nothing.
        skip_notifications: true,
        ..EvalContext::default()
    };
    let step = file.evaluation_interval_ms.max(1);
    // promtool would grind through any number of steps; a typo like `eval_time: 100y` at
    // 1s steps is reported instead of running for hours.
    if until_ms / step > STEPS_MAX {
        return Err(vec![format!(
            "    {}evaluation up to {} at {} steps needs more than {STEPS_MAX} steps",
            if test.name.is_empty() {
                String::new()
            } else {
                format!("name: {}, ", test.name)
            },
            format_prom_duration(until_ms),
            format_prom_duration(step)
        )]);
    }
    let mut ts = 0;
    while ts <= until_ms {
        for (series_idx, series) in test.input_series.iter().enumerate() {
            let Some(id) = ids[series_idx] else { continue };
            let slot = &mut next_slot[series_idx];
            while *slot < series.values.len() && (*slot as i64) * test.interval_ms <= ts {
                if let Some(v) = series.values[*slot] {
                    // A refused sample (same timestamp twice) is dropped, as the loader's
                    // appender does.
                    let _ = storage
                        .store
                        .append_to(id, *slot as i64 * test.interval_ms, v);
                }
                *slot += 1;
            }
        }
        let mut eval_errors = Vec::new();
        for group in &mut groups {
            let report = group.evaluate(ts, &mut storage, &ctx);
            for (rule, err) in report.errors {
                eval_errors.push(format!(
                    "    rule: {rule}, time: {}, err: {err}",
                    format_go_duration_ms(ts)
                ));
            }
        }
        if !eval_errors.is_empty() {
            return Err(eval_errors);
        }
        after_step(ts, &groups);
        ts += step;
    }
    Ok(storage)
}

/// The firing, unresolved alerts of `alertname` as promtool compares them: (labels,
/// annotations), sorted.
pub fn firing_alerts(
    groups: &[Group],
    alertname: &str,
) -> Vec<(LabelSet, BTreeMap<String, String>)> {
    let mut got: Vec<(LabelSet, BTreeMap<String, String>)> = Vec::new();
    for group in groups {
        for rule in group.alerting_rules().filter(|r| r.name == alertname) {
            for alert in rule
                .active_alerts()
                .filter(|a| a.state == rules::AlertState::Firing)
            {
                got.push((alert.labels.clone(), rule.annotations(alert)));
            }
        }
    }
    got.sort();
    got
}

fn run_test_group(file: &TestFile, test: &TestGroup) -> Vec<String> {
    let test_name = if test.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", test.name)
    };
    let mut alert_times: Vec<i64> = test.alert_tests.iter().map(|t| t.eval_time_ms).collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    let max_eval_ms = test
        .alert_tests
        .iter()
        .map(|t| t.eval_time_ms)
        .chain(test.expr_tests.iter().map(|t| t.eval_time_ms))
        .max()
        .unwrap_or(0);
    let step = file.evaluation_interval_ms.max(1);
    let mut errors = Vec::new();
    let mut curr = 0;
    let stepped = step_test_group(file, test, max_eval_ms, |ts, groups| {
        while curr < alert_times.len() && ts <= alert_times[curr] && alert_times[curr] < ts + step {
            let t = alert_times[curr];
            for case in test.alert_tests.iter().filter(|c| c.eval_time_ms == t) {
                let got = firing_alerts(groups, &case.alertname);
                if got != case.expected {
                    errors.push(format!(
                        "{test_name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        format_prom_duration(case.eval_time_ms),
                        indent_lines(&alerts_string(&case.expected), "            "),
                        indent_lines(&alerts_string(&got), "            ")
                    ));
                }
            }
            curr += 1;
        }
    });
    let mut storage = match stepped {
        Ok(storage) => storage,
        Err(eval_errors) => return eval_errors,
    };
    for case in &test.expr_tests {
        let time = format_prom_duration(case.eval_time_ms);
        let mut got = match storage.query(&case.expr, case.eval_time_ms) {
            Ok(samples) => samples
                .into_iter()
                .map(|s| (s.labels, s.value))
                .collect::<Vec<_>>(),
            Err(err) => {
                errors.push(format!(
                    "    expr: {}, time: {time}, err: {err}",
                    go_quote(&case.expr)
                ));
                continue;
            }
        };
        let mut expected = match &case.expected {
            Ok(e) => e.clone(),
            Err(err) => {
                errors.push(format!(
                    "    expr: {}, time: {time}, err: {err}",
                    go_quote(&case.expr)
                ));
                continue;
            }
        };
        let by_labels = |a: &(LabelSet, f64), b: &(LabelSet, f64)| a.0.cmp(&b.0);
        got.sort_by(by_labels);
        expected.sort_by(by_labels);
        // Exact comparison, NaN never equal (reflect.DeepEqual on float64).
        let equal = got.len() == expected.len()
            && got
                .iter()
                .zip(&expected)
                .all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !equal {
            errors.push(format!(
                "    expr: {}, time: {time},\n        exp: {}\n        got: {}",
                go_quote(&case.expr),
                samples_string(&expected),
                samples_string(&got)
            ));
        }
    }
    errors
}

/// Go's `time.Duration.String()` for whole milliseconds (`1m30s`, `0s`, `1h0m0s`).
fn format_go_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let total_secs = ms / 1000;
    let millis = ms % 1000;
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let secs = if millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

/// The outcome of `twin rules test` on one file, with promtool's report text.
#[derive(Clone, Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub result: Result<FileOutcome, PromtoolError>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        matches!(self.result, Ok(FileOutcome::Passed))
    }

    /// promtool 2.42's text for this file (malformed files print their diagnostics).
    pub fn render(&self) -> String {
        let mut out = format!("Unit Testing:  {}\n", self.path.display());
        match &self.result {
            Ok(FileOutcome::Passed) => out.push_str("  SUCCESS\n"),
            Ok(FileOutcome::Failed(errors)) => {
                out.push_str("  FAILED:\n");
                for e in errors {
                    out.push_str(e);
                    out.push('\n');
                }
            }
            Err(err) => {
                out.push_str("  FAILED:\n");
                for d in &err.diagnostics().0 {
                    out.push_str(&d.render_from_disk());
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Loads and runs one file.
pub fn test_file(path: &Path) -> FileReport {
    let result = load_test_file(path).map(|file| run_test_file(&file));
    FileReport {
        path: path.to_path_buf(),
        result,
    }
}
