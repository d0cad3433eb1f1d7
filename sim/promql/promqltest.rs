//! Prometheus's PromQL test language (`promql/test.go` of 2.42) run over our engine.
//!
//! Commands: `load <step>` followed by series lines in the expanding notation (`a+bxN`,
//! `a-bxN`, `axN`, `_`, `_xN`, `stale`), `clear`, and `eval[_fail|_ordered] instant at <time>
//! <expr>` followed by expected lines (`<series> <value>` or a bare number for a scalar).
//! Lines starting with `#` are comments; a blank line ends a block.
//!
//! Each eval statement is checked as upstream's runner checks it: the instant query, then the
//! same expression as a range query from `t-1m` to `t+1m` at a 1m step, whose middle step must
//! match too (skipped for `eval_ordered`, whose order a range query does not keep); and, unless
//! the expression uses a time-dependent function, the expression with every selector pinned
//! by `@ t` must give the same result at other times (-10t, 0, t/5, t, 10t). Values are
//! compared with upstream's `almostEqual` (relative error 1e-6, NaN equals NaN).
//!
//! Invariants: a malformed file is a [`Diagnostic`] naming the line; nothing is evaluated from
//! a file that did not parse completely.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Expr};

use crate::diag::{Diagnostic, Location};
use crate::telemetry::store::{Labels, Store, stale_nan};

use super::{Engine, EngineOptions, PromqlError, Value, VectorSample, format_go_value};

/// How an eval statement checks its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalKind {
    Plain,
    Fail,
    Ordered,
}

/// The expected result of an eval statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Scalar(f64),
    /// Series with their 1-based position in the file (for `eval_ordered`).
    Vector(Vec<(Labels, f64, usize)>),
}

#[derive(Clone, Debug)]
pub struct EvalStatement {
    /// 1-based line of the `eval` command.
    pub line: usize,
    pub kind: EvalKind,
    pub t_ms: i64,
    pub expr: String,
    pub expected: Expected,
}

#[derive(Clone, Debug)]
pub enum Command {
    Clear,
    /// `load <step>`: series with their `(t_ms, value)` samples, slot i at `i * step_ms`.
    Load {
        line: usize,
        step_ms: i64,
        series: Vec<(Labels, Vec<(i64, f64)>)>,
    },
    Eval(EvalStatement),
}

/// A parsed test file.
#[derive(Clone, Debug, Default)]
pub struct TestFile {
    pub commands: Vec<Command>,
}

/// What became of one eval statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The expression uses something this engine does not implement (or cannot parse).
    Unsupported(String),
}

#[derive(Clone, Debug)]
pub struct StatementResult {
    pub line: usize,
    pub expr: String,
    pub outcome: Outcome,
}

/// Counts over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
}

impl Tally {
    pub fn of(results: &[StatementResult]) -> Tally {
        let mut tally = Tally::default();
        for r in results {
            match r.outcome {
                Outcome::Pass => tally.passed += 1,
                Outcome::Fail(_) => tally.failed += 1,
                Outcome::Unsupported(_) => tally.unsupported += 1,
            }
        }
        tally
    }
}

/// Parses a Prometheus duration (`model.ParseDuration`): units y w d h m s ms, each at most
/// once and in that order, e.g. `1h30m`; a bare `0` is zero.
pub fn parse_prometheus_duration_ms(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    if text.is_empty() {
        return None;
    }
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if start == pos {
            return None;
        }
        let number: i64 = text[start..pos].parse().ok()?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        if idx < next_unit {
            return None;
        }
        next_unit = idx + 1;
        total = total.checked_add(number.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat(s, 64)`, as upstream's `parseNumber`.
fn parse_number(text: &str) -> Option<f64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let int = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(if neg { -(i as f64) } else { i as f64 });
    }
    parse_float_token(text)
}

/// A float as the series notation and Go's `ParseFloat` accept it.
fn parse_float_token(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok()
}

struct LineParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> LineParser<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn ident(&mut self, allow_colon: bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':');
            if !ok || (self.pos == start && c.is_ascii_digit()) {
                break;
            }
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("expected a quoted label value")?;
        if !matches!(quote, '"' | '\'' | '`') {
            return Err(format!("expected a quoted label value, found {quote:?}"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or("unterminated quoted string")?;
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                let e = self.peek().ok_or("unterminated escape")?;
                self.pos += e.len_utf8();
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    other => return Err(format!("unknown escape sequence \\{other}")),
                }
            } else {
                out.push(c);
            }
        }
    }

    /// `name{a="b", ...}`, `name` or `{...}`.
    fn series(&mut self) -> Result<Labels, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let name = self.ident(true);
        if !name.is_empty() {
            pairs.push(("__name__".to_string(), name.to_string()));
        }
        if self.peek() == Some('{') {
            self.pos += 1;
            loop {
                self.skip_space();
                if self.peek() == Some('}') {
                    self.pos += 1;
                    break;
                }
                let label = self.ident(false);
                if label.is_empty() {
                    return Err(format!("expected a label name at column {}", self.pos + 1));
                }
                self.skip_space();
                if self.peek() != Some('=') {
                    return Err(format!("expected '=' after label {label}"));
                }
                self.pos += 1;
                self.skip_space();
                let value = self.quoted()?;
                pairs.push((label.to_string(), value));
                self.skip_space();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some('}') => {}
                    _ => return Err(format!("expected ',' or '}}' at column {}", self.pos + 1)),
                }
            }
        } else if name.is_empty() {
            return Err("expected a metric name or '{'".to_string());
        }
        Ok(Labels::from_pairs(pairs))
    }
}

/// Largest `N` accepted in `axN`/`_xN`: far beyond any test, small enough to allocate.
const REPETITION_MAX: usize = 1_000_000;

/// One item of the expanding notation; `None` is an omitted slot, values are in order.
fn expand_item(token: &str) -> Result<Vec<Option<f64>>, String> {
    if token == "_" {
        return Ok(vec![None]);
    }
    if let Some(n) = token.strip_prefix("_x") {
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n <= REPETITION_MAX)
            .ok_or_else(|| format!("invalid repetition in {token:?}"))?;
        return Ok(vec![None; n]);
    }
    let value_of = |text: &str| -> Result<f64, String> {
        if text == "stale" {
            return Ok(stale_nan());
        }
        parse_float_token(text).ok_or_else(|| format!("invalid value {text:?}"))
    };
    let Some(x_pos) = token.rfind('x') else {
        return Ok(vec![Some(value_of(token)?)]);
    };
    let (head, count) = (&token[..x_pos], &token[x_pos + 1..]);
    let n: u64 = count
        .parse()
        .ok()
        .filter(|n| *n <= REPETITION_MAX as u64)
        .ok_or_else(|| format!("invalid repetition in {token:?} (at most {REPETITION_MAX})"))?;
    // Split `a+b` / `a-b`: the operator is the first sign after the first character that is
    // not part of an exponent.
    let bytes = head.as_bytes();
    let mut split = None;
    for i in 1..bytes.len() {
        if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            split = Some(i);
            break;
        }
    }
    match split {
        None => {
            let v = value_of(head)?;
            Ok((0..=n).map(|_| Some(v)).collect())
        }
        Some(i) => {
            let mut v = value_of(&head[..i])?;
            let inc = value_of(&head[i..])?;
            let mut out = Vec::with_capacity(n as usize + 1);
            out.push(Some(v));
            // Repeated addition, as upstream's parser, not a + i*b.
            for _ in 0..n {
                v += inc;
                out.push(Some(v));
            }
            Ok(out)
        }
    }
}

fn series_line(text: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let mut p = LineParser { text, pos: 0 };
    let labels = p.series()?;
    let mut values = Vec::new();
    for token in p.text[p.pos..].split_whitespace() {
        values.extend(expand_item(token)?);
    }
    Ok((labels, values))
}

/// Parses a test file. `path` is only used to name the file in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<TestFile, Diagnostic> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') { "" } else { t }
        })
        .collect();
    let raw: Vec<&str> = text.lines().collect();
    let error = |i: usize, message: String| {
        let column = raw
            .get(i)
            .map(|r| r.len() - r.trim_start().len() + 1)
            .unwrap_or(1);
        Diagnostic::error(
            Location {
                file: path.to_path_buf(),
                document: 0,
                line: i + 1,
                column,
            },
            "",
            message,
        )
    };
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if word == "clear" {
            commands.push(Command::Clear);
            i += 1;
        } else if word == "load" {
            let step_text = line[4..].trim();
            let step_ms = parse_prometheus_duration_ms(step_text)
                .ok_or_else(|| error(i, format!("invalid step definition {step_text:?}")))?;
            let load_line = i + 1;
            let mut defs: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                let (labels, values) = series_line(lines[i]).map_err(|m| error(i, m))?;
                let samples: Vec<(i64, f64)> = values
                    .into_iter()
                    .enumerate()
                    .filter_map(|(slot, v)| v.map(|v| (slot as i64 * step_ms, v)))
                    .collect();
                defs.insert(labels, samples);
                i += 1;
            }
            commands.push(Command::Load {
                line: load_line,
                step_ms,
                series: defs.into_iter().collect(),
            });
        } else if word.starts_with("eval") {
            let statement_line = i;
            let (kind, rest) = if let Some(r) = line.strip_prefix("eval_fail") {
                (EvalKind::Fail, r)
            } else if let Some(r) = line.strip_prefix("eval_ordered") {
                (EvalKind::Ordered, r)
            } else if let Some(r) = line.strip_prefix("eval") {
                (EvalKind::Plain, r)
            } else {
                return Err(error(i, format!("invalid command {line:?}")));
            };
            let bad = || {
                error(i, "invalid evaluation command. (eval[_fail|_ordered] instant [at <offset:duration>] <query>".into())
            };
            let rest = rest.trim_start();
            let rest = rest.strip_prefix("instant").ok_or_else(bad)?.trim_start();
            let (t_ms, expr) = match rest.strip_prefix("at") {
                Some(after) if after.starts_with([' ', '\t']) => {
                    let after = after.trim_start();
                    let (time_text, expr) = after.split_once([' ', '\t']).ok_or_else(bad)?;
                    let t_ms = parse_prometheus_duration_ms(time_text).ok_or_else(|| {
                        error(i, format!("invalid evaluation time {time_text:?}"))
                    })?;
                    (t_ms, expr.trim())
                }
                _ => (0, rest),
            };
            if expr.is_empty() {
                return Err(bad());
            }
            let mut expected_vector = Vec::new();
            let mut expected_scalar = None;
            let mut position = 0;
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                if let Some(v) = parse_number(lines[i]) {
                    expected_scalar = Some(v);
                    i += 1;
                    break;
                }
                let (labels, values) = series_line(lines[i]).map_err(|m| error(i, m))?;
                if values.len() != 1 {
                    return Err(error(
                        i,
                        "expecting exactly one value per series in instant evaluation".into(),
                    ));
                }
                position += 1;
                expected_vector.push((labels, values[0].unwrap_or(f64::NAN), position));
                i += 1;
            }
            let expected = match expected_scalar {
                Some(v) => Expected::Scalar(v),
                None => Expected::Vector(expected_vector),
            };
            commands.push(Command::Eval(EvalStatement {
                line: statement_line + 1,
                kind,
                t_ms,
                expr: expr.to_string(),
                expected,
            }));
        } else {
            return Err(error(i, format!("invalid command {line:?}")));
        }
    }
    Ok(TestFile { commands })
}

const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
const EPSILON: f64 = 0.000001;

/// Upstream's `almostEqual`: NaN equals NaN, otherwise a relative error under 1e-6.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

fn compare(statement: &EvalStatement, result: &Value, ordered: bool) -> Result<(), String> {
    match (result, &statement.expected) {
        (Value::Matrix(_), _) => Err("received range result on instant evaluation".into()),
        (Value::String(_), _) => {
            Err("received a string result; the test language cannot check it".into())
        }
        (Value::Scalar(v), Expected::Scalar(want)) => {
            if almost_equal(*want, *v) {
                Ok(())
            } else {
                Err(format!(
                    "expected scalar {} but got {}",
                    format_go_value(*want),
                    format_go_value(*v)
                ))
            }
        }
        (Value::Scalar(v), Expected::Vector(_)) => Err(format!(
            "expected a vector but got scalar {}",
            format_go_value(*v)
        )),
        (Value::Vector(samples), expected) => compare_vector(samples, expected, ordered),
    }
}

fn compare_vector(
    samples: &[VectorSample],
    expected: &Expected,
    ordered: bool,
) -> Result<(), String> {
    let Expected::Vector(want) = expected else {
        return Err(format!(
            "expected a scalar but got a vector of {} elements",
            samples.len()
        ));
    };
    let by_labels: HashMap<&Labels, (f64, usize)> = // lookup only: never iterated into output
        want.iter().map(|(l, v, p)| (l, (*v, *p))).collect();
    let mut seen = 0;
    for (pos, s) in samples.iter().enumerate() {
        let Some((value, want_pos)) = by_labels.get(&s.labels) else {
            return Err(format!("unexpected metric {} in result", s.labels));
        };
        if ordered && *want_pos != pos + 1 {
            return Err(format!(
                "expected metric {} at position {} but was at {}",
                s.labels,
                want_pos,
                pos + 1
            ));
        }
        if !almost_equal(*value, s.value) {
            return Err(format!(
                "expected {} for {} but got {}",
                format_go_value(*value),
                s.labels,
                format_go_value(s.value)
            ));
        }
        seen += 1;
    }
    if seen != by_labels.len() {
        let got: Vec<&Labels> = samples.iter().map(|s| &s.labels).collect();
        for (labels, _) in by_labels.iter() {
            if !got.contains(labels) {
                return Err(format!("expected metric {labels} not found"));
            }
        }
    }
    Ok(())
}

fn classify(err: &PromqlError) -> Outcome {
    match err {
        PromqlError::Unsupported { construct } => Outcome::Unsupported(construct.clone()),
        other => Outcome::Fail(other.to_string()),
    }
}

/// Functions whose result changes with the evaluation time even when their arguments do
/// not (`AtModifierUnsafeFunctions` of 2.42).
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

fn contains_at_unsafe_function(expr: &Expr) -> bool {
    match expr {
        Expr::Call(c) => {
            AT_UNSAFE_FUNCTIONS.contains(&c.func.name)
                || c.args.args.iter().any(|a| contains_at_unsafe_function(a))
        }
        Expr::Aggregate(a) => {
            contains_at_unsafe_function(&a.expr)
                || a.param.as_deref().is_some_and(contains_at_unsafe_function)
        }
        Expr::Binary(b) => {
            contains_at_unsafe_function(&b.lhs) || contains_at_unsafe_function(&b.rhs)
        }
        Expr::Paren(p) => contains_at_unsafe_function(&p.expr),
        Expr::Unary(u) => contains_at_unsafe_function(&u.expr),
        Expr::Subquery(s) => contains_at_unsafe_function(&s.expr),
        _ => false,
    }
}

/// Gives every selector and outermost subquery without an `@` the modifier `@ at`; nothing
/// inside a subquery changes (upstream's `atModifierTestCases`).
fn set_at_modifier(expr: &mut Expr, at: &AtModifier) {
    match expr {
        Expr::VectorSelector(vs) if vs.at.is_none() => {
            vs.at = Some(at.clone());
        }
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => {
            ms.vs.at = Some(at.clone());
        }
        Expr::Subquery(sq) if sq.at.is_none() => {
            sq.at = Some(at.clone());
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| set_at_modifier(a, at)),
        Expr::Aggregate(a) => {
            set_at_modifier(&mut a.expr, at);
            if let Some(p) = a.param.as_deref_mut() {
                set_at_modifier(p, at);
            }
        }
        Expr::Binary(b) => {
            set_at_modifier(&mut b.lhs, at);
            set_at_modifier(&mut b.rhs, at);
        }
        Expr::Paren(p) => set_at_modifier(&mut p.expr, at),
        Expr::Unary(u) => set_at_modifier(&mut u.expr, at),
        _ => {}
    }
}

fn at_time(t_ms: i64) -> AtModifier {
    let magnitude = Duration::from_millis(t_ms.unsigned_abs());
    let time = if t_ms >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    };
    AtModifier::At(time)
}

/// The queries upstream runs for one statement: the statement itself, then (unless the
/// expression has a time-dependent function) the expression pinned with `@ t` evaluated at
/// other times, which must give the same result.
fn queries(expr: &Expr, t_ms: i64) -> Vec<(Expr, i64)> {
    let mut out = vec![(expr.clone(), t_ms)];
    if contains_at_unsafe_function(expr) {
        return out;
    }
    let mut pinned = expr.clone();
    set_at_modifier(&mut pinned, &at_time(t_ms));
    let times: Vec<i64> = if t_ms == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![
            t_ms.saturating_mul(-10),
            0,
            t_ms / 5,
            t_ms,
            t_ms.saturating_mul(10),
        ]
    };
    out.extend(times.into_iter().map(|t| (pinned.clone(), t)));
    out
}

fn run_statement(engine: &Engine<'_>, statement: &EvalStatement) -> Outcome {
    let expr = match super::parse(&statement.expr) {
        Ok(expr) => expr,
        Err(err) => return Outcome::Unsupported(err.to_string()),
    };
    for (query, t_ms) in queries(&expr, statement.t_ms) {
        let pinned = if t_ms == statement.t_ms && query == expr {
            String::new()
        } else {
            format!(" (pinned with @, at {t_ms} ms)")
        };
        if let Err(outcome) = run_query(engine, statement, &query, t_ms) {
            return match outcome {
                Outcome::Fail(why) => Outcome::Fail(format!("{why}{pinned}")),
                other => other,
            };
        }
    }
    Outcome::Pass
}

/// One query of a statement; `Err` carries the outcome when it does not pass.
fn run_query(
    engine: &Engine<'_>,
    statement: &EvalStatement,
    expr: &Expr,
    t_ms: i64,
) -> Result<(), Outcome> {
    let result = engine.eval_instant_expr(expr, t_ms);
    let result = match (result, statement.kind) {
        (Err(PromqlError::Unsupported { construct }), _) => {
            return Err(Outcome::Unsupported(construct));
        }
        (Err(_), EvalKind::Fail) => return Ok(()),
        (Err(err), _) => return Err(Outcome::Fail(format!("error evaluating query: {err}"))),
        (Ok(_), EvalKind::Fail) => {
            return Err(Outcome::Fail("expected an error but got none".into()));
        }
        (Ok(v), _) => v,
    };
    compare(statement, &result, statement.kind == EvalKind::Ordered).map_err(Outcome::Fail)?;
    // Range mode, as upstream: the middle step of [t-1m, t+1m] must give the same result.
    let range = match engine.eval_range_expr(
        expr,
        t_ms.saturating_sub(60_000),
        t_ms.saturating_add(60_000),
        60_000,
    ) {
        Ok(Value::Matrix(m)) => m,
        Ok(other) => {
            return Err(Outcome::Fail(format!(
                "range mode returned {}",
                other.type_name()
            )));
        }
        Err(err) => return Err(classify(&err)),
    };
    if statement.kind == EvalKind::Ordered {
        return Ok(());
    }
    let at_t: Vec<VectorSample> = range
        .into_iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t_ms == t_ms)
                .map(|p| VectorSample {
                    labels: s.labels,
                    value: p.value,
                })
        })
        .collect();
    let check = if let Value::Scalar(_) = result {
        match at_t.first() {
            Some(first) => compare(statement, &Value::Scalar(first.value), false),
            None => Err("range mode gave no value at the evaluation time".into()),
        }
    } else {
        compare(statement, &Value::Vector(at_t), false)
    };
    check.map_err(|message| Outcome::Fail(format!("range mode: {message}")))
}

/// Runs a parsed file with the promqltest engine settings (5m lookback, 1m default subquery
/// step). A `load` that the store refuses (e.g. out-of-order samples) is an error.
pub fn run(file: &TestFile) -> Result<Vec<StatementResult>, (usize, String)> {
    let mut store = Store::new();
    let mut results = Vec::new();
    for command in &file.commands {
        match command {
            Command::Clear => store.clear(),
            Command::Load { line, series, .. } => {
                for (labels, samples) in series {
                    for (t_ms, value) in samples {
                        store
                            .append(labels, *t_ms, *value)
                            .map_err(|e| (*line, e.to_string()))?;
                    }
                }
            }
            Command::Eval(statement) => {
                let engine = Engine::with_options(&store, EngineOptions::default());
                results.push(StatementResult {
                    line: statement.line,
                    expr: statement.expr.clone(),
                    outcome: run_statement(&engine, statement),
                });
            }
        }
    }
    Ok(results)
}

/// Parses and runs one file from disk.
pub fn run_file(path: &Path) -> Result<Vec<StatementResult>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error(
            Location {
                file: path.to_path_buf(),
                ..Location::default()
            },
            "",
            format!("cannot read: {e}"),
        )
    })?;
    let file = parse(path, &text)?;
    run(&file).map_err(|(line, message)| {
        Diagnostic::error(
            Location {
                file: path.to_path_buf(),
                document: 0,
                line,
                column: 1,
            },
            "",
            message,
        )
    })
}

#[cfg(test)]
mod tests;
