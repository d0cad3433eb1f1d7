//! Alert label and annotation templating: the subset of Go's `text/template` that real rule
//! files use, with Prometheus 2.42's template functions (`template/template.go`) and Go's `fmt`
//! number formatting (spec/prometheus.md §4).
//!
//! What is covered: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* */}}` comments;
//! pipelines with `|`; variables (`$x := ...`, `$x = ...`) scoped to their block; `.Field` and
//! `$var.key` access; string (quoted and raw), number, `true`/`false`/`nil` literals;
//! parenthesised pipelines; `if`/`else if`/`else`, `with`/`else`, `range` over maps (sorted by
//! key, as Go does); the builtins `and or not len index print printf println eq ne lt le gt ge`;
//! and Prometheus's `humanize humanize1024 humanizeDuration humanizePercentage
//! humanizeTimestamp title toUpper toLower match reReplaceAll stripPort safeHtml`.
//! Query functions (`query`, `first`, `value`, `label`, ...) are absent: a template using one
//! fails to parse with the same "function not defined" error Go gives for unknown names.
//!
//! Invariants: expansion never panics on any template text; it returns `Err` and the caller
//! (`rules`) turns that into `<error expanding template: ...>` as Prometheus does. Maps are
//! `BTreeMap`, so output never depends on hash order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

#[cfg(test)]
mod tests;

/// What a rule template sees: the prepended definitions of Prometheus make `$labels`,
/// `$externalLabels`, `$externalURL` and `$value` aliases of these fields of dot.
#[derive(Clone, Debug, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

/// A failure to parse or execute a template; the message reads like Go's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Expands `text` for an alert named `name` (Go names the template `__alert_<name>`).
///
/// Prometheus first prepends `{{$labels := .Labels}}...` to the text; we bind those variables
/// directly, which is the same for every template that does not redefine them.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    Template::new(name, text).expand(data)
}

/// A label or annotation template parsed once, to be expanded at every evaluation.
#[derive(Clone, Debug)]
pub struct Template {
    text: String,
    /// `__alert_<name>`.
    template_name: String,
    /// The parsed text, or the parse error every expansion reports.
    nodes: Result<Vec<Node>, TemplateError>,
}

impl Template {
    /// Parses `text` for an alert named `name`.
    pub fn new(name: &str, text: &str) -> Template {
        let template_name = format!("__alert_{name}");
        let nodes = parse(text).map_err(|err| {
            TemplateError(format!(
                "error parsing template {template_name}: template: {template_name}:{}: {}",
                err.line, err.message
            ))
        });
        Template {
            text: text.to_string(),
            template_name,
            nodes,
        }
    }

    /// The template text as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The expansion of a template without actions: its own text, whatever the data.
    pub fn as_text(&self) -> Option<&str> {
        match self.nodes.as_ref().ok()?.as_slice() {
            [] => Some(""),
            [Node::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Expands the template over `data`.
    pub fn expand(&self, data: &TemplateData) -> Result<String, TemplateError> {
        if let Some(text) = self.as_text() {
            return Ok(text.to_string());
        }
        let nodes = self.nodes.as_ref().map_err(Clone::clone)?;
        let template_name = &self.template_name;
        let mut exec = Exec {
            vars: Vec::new(),
            out: String::new(),
        };
        let dot = Value::Struct(vec![
            ("Labels".to_string(), Value::Map(data.labels.clone())),
            (
                "ExternalLabels".to_string(),
                Value::Map(data.external_labels.clone()),
            ),
            (
                "ExternalURL".to_string(),
                Value::Str(data.external_url.clone()),
            ),
            ("Value".to_string(), Value::Float(data.value)),
        ]);
        exec.vars.push(("$".to_string(), dot.clone()));
        exec.vars
            .push(("$labels".to_string(), Value::Map(data.labels.clone())));
        exec.vars.push((
            "$externalLabels".to_string(),
            Value::Map(data.external_labels.clone()),
        ));
        exec.vars.push((
            "$externalURL".to_string(),
            Value::Str(data.external_url.clone()),
        ));
        exec.vars
            .push(("$value".to_string(), Value::Float(data.value)));
        exec.run(nodes, &dot).map_err(|err| {
            let (place, context) = match &err.at {
                Some((pos, command)) => {
                    let (line, col) = go_error_position(&self.text, *pos);
                    (format!("{line}:{col}"), format!(" at <{command}>"))
                }
                None => (err.line.to_string(), String::new()),
            };
            TemplateError(format!(
                "error executing template {template_name}: template: {template_name}:{place}: executing \"{template_name}\"{context}: {}",
                err.message
            ))
        })?;
        Ok(exec.out)
    }
}

/// Length of the definitions Prometheus prepends to every alert template
/// (`{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`),
/// which shifts Go's error columns on the first line.
const PREPENDED_DEFS_LEN: usize = 22 + 38 + 32 + 20;

/// Go's `Tree.ErrorContext` position of a byte offset of the user text: line from 1, and the
/// 0-based byte column (on line 1 counted from the start of the prepended definitions).
fn go_error_position(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos).unwrap_or(text);
    match before.rfind('\n') {
        Some(newline) => (1 + before.matches('\n').count(), pos - (newline + 1)),
        None => (1, PREPENDED_DEFS_LEN + pos),
    }
}

/// Checks that a template parses (what `promtool check rules` does for labels/annotations).
/// `name` is the alert name; the message reads like Go's (`template: __alert_X:1: ...`).
pub fn check(name: &str, text: &str) -> Result<(), TemplateError> {
    parse(text).map(|_| ()).map_err(|err| {
        TemplateError(format!(
            "template: __alert_{name}:{}: {}",
            err.line, err.message
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Values

/// A template value. Go's reflection-based values reduced to the kinds rule templates meet.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Float(f64),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    /// A struct with named fields in declaration order (only dot is one).
    Struct(Vec<(String, Value)>),
    Nil,
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Float(_) => "float64",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Map(_) => "map[string]string",
            Value::Struct(_) => {
                "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }"
            }
            Value::Nil => "nil",
        }
    }

    /// Go's truth: the zero value of any kind (and empty maps) is false.
    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Float(v) => *v != 0.0,
            Value::Int(v) => *v != 0,
            Value::Bool(b) => *b,
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
            Value::Nil => false,
        }
    }

    /// Go's `%v` / `fmt.Fprint` form.
    fn display(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Float(v) => format_float_shortest(*v),
            Value::Int(v) => v.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Map(m) => {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", parts.join(" "))
            }
            Value::Struct(fields) => {
                let parts: Vec<String> = fields.iter().map(|(_, v)| v.display()).collect();
                format!("{{{}}}", parts.join(" "))
            }
            Value::Nil => "<nil>".to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Go number formatting

/// Decimal digits and the position of the decimal point: value = 0.d1d2d3... x 10^point.
struct Digits {
    digits: Vec<u8>,
    point: i32,
}

/// The shortest digits that read back as `v` (finite, non-zero magnitude).
fn shortest_digits(v: f64) -> Digits {
    // Rust's `{:e}` prints the shortest round-tripping mantissa, as Go's shortest mode does.
    digits_from_exp_form(&format!("{:e}", v.abs()))
}

/// Digits of `v` rounded to `n` significant digits, trailing zeros removed (Go's `%.Ng`).
fn rounded_digits(v: f64, n: usize) -> Digits {
    let mut d = digits_from_exp_form(&format!("{:.*e}", n.max(1) - 1, v.abs()));
    while d.digits.len() > 1 && d.digits.last() == Some(&b'0') {
        d.digits.pop();
    }
    d
}

fn digits_from_exp_form(text: &str) -> Digits {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if digits.iter().all(|d| *d == b'0') {
        return Digits {
            digits: vec![b'0'],
            point: 1,
        };
    }
    Digits {
        digits,
        point: exponent + 1,
    }
}

fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".to_string())
    } else if v == f64::INFINITY {
        Some("+Inf".to_string())
    } else if v == f64::NEG_INFINITY {
        Some("-Inf".to_string())
    } else {
        None
    }
}

fn sign(v: f64) -> &'static str {
    if v.is_sign_negative() { "-" } else { "" }
}

/// Go's `%e` layout of given digits with `frac` digits after the point.
fn layout_e(neg: &str, d: &Digits, frac: usize, upper: bool) -> String {
    let mut out = String::from(neg);
    out.push(d.digits[0] as char);
    if frac > 0 {
        out.push('.');
        for i in 1..=frac {
            out.push(*d.digits.get(i).unwrap_or(&b'0') as char);
        }
    }
    let exp = if d.digits == [b'0'] { 0 } else { d.point - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

/// Go's `%f` layout of given digits with `frac` digits after the point.
fn layout_f(neg: &str, d: &Digits, frac: usize) -> String {
    let mut out = String::from(neg);
    if d.point > 0 {
        for i in 0..d.point as usize {
            out.push(*d.digits.get(i).unwrap_or(&b'0') as char);
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            let idx = d.point + i;
            let c = if idx < 0 {
                b'0'
            } else {
                *d.digits.get(idx as usize).unwrap_or(&b'0')
            };
            out.push(c as char);
        }
    }
    out
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`, which is what `%v` and `{{ $value }}` print.
pub fn format_float_shortest(v: f64) -> String {
    if let Some(text) = non_finite(v) {
        return text;
    }
    let neg = sign(v);
    if v == 0.0 {
        return format!("{neg}0");
    }
    let d = shortest_digits(v);
    let exp = d.point - 1;
    // Shortest mode decides between %e and %f with precision 6 (strconv `formatDigits`).
    if !(-4..6).contains(&exp) {
        let frac = d.digits.len() - 1;
        return layout_e(neg, &d, frac, false);
    }
    let frac = (d.digits.len() as i32 - d.point).max(0) as usize;
    layout_f(neg, &d, frac)
}

/// Go's `%.<prec>g`.
pub fn format_float_g(v: f64, prec: usize) -> String {
    if let Some(text) = non_finite(v) {
        return text;
    }
    let prec = prec.max(1);
    let neg = sign(v);
    let d = if v == 0.0 {
        Digits {
            digits: vec![b'0'],
            point: 1,
        }
    } else {
        rounded_digits(v, prec)
    };
    let nd = d.digits.len() as i32;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= d.point {
        eprec = nd;
    }
    let exp = d.point - 1;
    if exp < -4 || exp >= eprec {
        let p = (prec as i32).min(nd);
        return layout_e(neg, &d, (p - 1).max(0) as usize, false);
    }
    let p = if prec as i32 > d.point {
        nd
    } else {
        prec as i32
    };
    layout_f(neg, &d, (p - d.point).max(0) as usize)
}

/// Go's `%.<prec>f`.
pub fn format_float_f(v: f64, prec: usize) -> String {
    if let Some(text) = non_finite(v) {
        return text;
    }
    // Rust and Go both round the exact binary value correctly (ties to even) here.
    let text = format!("{:.*}", prec, v.abs());
    format!("{}{}", sign(v), text)
}

/// Go's `%.<prec>e`.
pub fn format_float_e(v: f64, prec: usize, upper: bool) -> String {
    if let Some(text) = non_finite(v) {
        return text;
    }
    let neg = sign(v);
    let d = if v == 0.0 {
        Digits {
            digits: vec![b'0'],
            point: 1,
        }
    } else {
        digits_from_exp_form(&format!("{:.*e}", prec, v.abs()))
    };
    layout_e(neg, &d, prec, upper)
}

// ---------------------------------------------------------------------------------------------
// Prometheus template functions (template/template.go, v2.42.0)

fn convert_to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// `strconv.ParseFloat` for the spellings rule templates meet.
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches(['+']) {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    s.parse::<f64>().ok()
}

/// `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_float_g(v, 4))
}

/// `humanize1024`: binary prefixes, only above 1.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float_g(v, 4))
}

/// `humanizeDuration`: seconds as `1d 10h 17m 36s`, sub-second as `ms`/`us`/...
pub fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", format_float_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        // Go converts with int64(v): truncation toward zero, saturating like Rust's `as`.
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_float_g(v, 4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float_g(v, 4))
}

/// `humanizePercentage`: the ratio times 100 with `%.4g`, then `%`.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", format_float_g(v * 100.0, 4))
}

/// `humanizeTimestamp`: Unix seconds as Go's `time.Time.String()` in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    // Prometheus goes through model.TimeFromUnixNano, which keeps whole milliseconds.
    let timestamp_ns = v * 1e9;
    if timestamp_ns > i64::MAX as f64 || timestamp_ns < i64::MIN as f64 {
        return format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_float_shortest(v)
        );
    }
    let millis = (timestamp_ns as i64) / 1_000_000;
    let seconds = millis.div_euclid(1000);
    let nanos = millis.rem_euclid(1000) * 1_000_000;
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    );
    if nanos > 0 {
        // Go's ".999999999" layout: fractional digits without trailing zeros.
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's deprecated `strings.Title`: upper-case the first letter of each word.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_is_separator = true;
    for c in s.chars() {
        if prev_is_separator {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_is_separator = is_title_separator(c);
    }
    out
}

fn is_title_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

// ---------------------------------------------------------------------------------------------
// Go's printf subset

struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

/// `fmt.Sprintf` over template values, with Go's `%!verb(type=value)` complaints.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut arg_idx = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec {
            minus: false,
            plus: false,
            zero: false,
            space: false,
            width: None,
            prec: None,
            verb: '%',
        };
        while i < chars.len() {
            match chars[i] {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = String::new();
        while i < chars.len() && chars[i].is_ascii_digit() {
            width.push(chars[i]);
            i += 1;
        }
        spec.width = width.parse().ok();
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let mut prec = String::new();
            while i < chars.len() && chars[i].is_ascii_digit() {
                prec.push(chars[i]);
                i += 1;
            }
            spec.prec = Some(prec.parse().unwrap_or(0));
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        spec.verb = verb;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(arg_idx) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        arg_idx += 1;
        out.push_str(&format_one(&spec, arg));
    }
    if arg_idx < args.len() {
        let extra: Vec<String> = args[arg_idx..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.display()))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

fn format_one(spec: &Spec, arg: &Value) -> String {
    let bad = || format!("%!{}({}={})", spec.verb, arg.type_name(), arg.display());
    let body = match (spec.verb, arg) {
        ('v', Value::Float(v)) => format_float_shortest(*v),
        ('v', other) => other.display(),
        ('s', Value::Str(s)) => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', Value::Map(_)) => arg.display(),
        ('q', Value::Str(s)) => go_quote(s),
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Int(v)) => v.to_string(),
        ('x', Value::Int(v)) => format!("{v:x}"),
        ('X', Value::Int(v)) => format!("{v:X}"),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('f' | 'F', Value::Float(v)) => format_float_f(*v, spec.prec.unwrap_or(6)),
        ('e' | 'E', Value::Float(v)) => {
            format_float_e(*v, spec.prec.unwrap_or(6), spec.verb == 'E')
        }
        ('g' | 'G', Value::Float(v)) => match spec.prec {
            Some(p) => format_float_g(*v, p),
            None => format_float_shortest(*v),
        },
        _ => return bad(),
    };
    let numeric = matches!(arg, Value::Float(_) | Value::Int(_));
    let mut body = body;
    if numeric && !body.starts_with('-') {
        if spec.plus {
            body.insert(0, '+');
        } else if spec.space {
            body.insert(0, ' ');
        }
    }
    pad(spec, body, numeric)
}

fn pad(spec: &Spec, body: String, numeric: bool) -> String {
    let Some(width) = spec.width else { return body };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    let finite = !body.contains("Inf") && !body.contains("NaN");
    if spec.zero && numeric && finite {
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
            _ => (String::new(), body.clone()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
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
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Debug)]
struct ParseError {
    line: usize,
    message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `.A.B` (empty for a bare `.`).
    Field(Vec<String>),
    /// `$x.A.B` (name includes `$`).
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action {
        line: usize,
        pipe: Pipeline,
    },
    If {
        line: usize,
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    With {
        line: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        line: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Debug)]
struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`).
    vars: Vec<String>,
    declare: bool,
    commands: Vec<Command>,
}

/// One command of a pipeline, with where it starts in the template text [byte] and its text
/// as Go prints a command node (for "at <...>" in execution errors).
#[derive(Clone, Debug)]
struct Command {
    args: Vec<Arg>,
    pos: usize,
    text: String,
}

/// Where a token starts in the template text [byte] and its source text.
#[derive(Clone, Debug)]
struct Span {
    pos: usize,
    text: String,
}

#[derive(Clone, Debug)]
enum Arg {
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Sub(Pipeline),
}

/// One `{{ ... }}` action after lexing, or a run of text.
enum Piece {
    Text(String),
    Action {
        line: usize,
        tokens: Vec<Token>,
        spans: Vec<Span>,
    },
}

const BUILTINS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "title",
    "toUpper",
    "toLower",
    "match",
    "reReplaceAll",
    "stripPort",
    "safeHtml",
];

fn split_pieces(text: &str) -> Result<Vec<Piece>, ParseError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(open) = rest.find("{{") {
        // Byte offset of `rest` in `text`, for token positions.
        let consumed = text.len() - rest.len();
        let mut before = &rest[..open];
        let mut inner_start = open + 2;
        let trim_left = rest[inner_start..].starts_with("- ")
            || rest[inner_start..].starts_with("-\t")
            || rest[inner_start..].starts_with("-\n");
        if trim_left {
            before = before.trim_end();
            inner_start += 1;
        }
        line += rest[..open].matches('\n').count();
        pieces.push(Piece::Text(before.to_string()));
        let after_open = &rest[inner_start..];
        let (close_rel, trim_right) = find_close(after_open).ok_or(ParseError {
            line,
            message: "unclosed action".to_string(),
        })?;
        let inner = &after_open[..close_rel];
        let action_line = line;
        line += inner.matches('\n').count();
        let inner_trim = inner.trim();
        let mut next = &after_open[close_rel + if trim_right { 3 } else { 2 }..];
        if trim_right {
            next = next.trim_start();
        }
        if inner_trim.starts_with("/*") {
            if !inner_trim.ends_with("*/") {
                return Err(ParseError {
                    line: action_line,
                    message: "unclosed comment".to_string(),
                });
            }
        } else {
            let (tokens, spans) = lex(inner, consumed + inner_start, action_line)?;
            pieces.push(Piece::Action {
                line: action_line,
                tokens,
                spans,
            });
        }
        // Lines skipped by right-trimming still count.
        line += after_open[close_rel..after_open.len() - next.len()]
            .matches('\n')
            .count();
        rest = next;
    }
    pieces.push(Piece::Text(rest.to_string()));
    Ok(pieces)
}

/// Finds `}}` (or ` -}}`) outside string literals; returns its offset and whether it trims.
fn find_close(s: &str) -> Option<(usize, bool)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q == b'"' {
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' | b'`' | b'\'' => quote = Some(b),
            b'-' if s[i..].starts_with("-}}") && i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                return Some((i, true));
            }
            b'}' if s[i..].starts_with("}}") => return Some((i, false)),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Lexes one action's text; `base` is its byte offset in the template (for token spans).
fn lex(s: &str, base: usize, line: usize) -> Result<(Vec<Token>, Vec<Span>), ParseError> {
    let err = |message: String| ParseError { line, message };
    let chars: Vec<char> = s.chars().collect();
    let byte_at: Vec<usize> = s
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .collect();
    let mut tokens = Vec::new();
    let mut spans = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let read_fields = |i: &mut usize| -> Vec<String> {
        let mut fields = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            let mut name = String::new();
            *i += 1;
            while *i < chars.len() && ident_char(chars[*i]) {
                name.push(chars[*i]);
                *i += 1;
            }
            if name.is_empty() {
                break;
            }
            fields.push(name);
        }
        fields
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let n_tokens = tokens.len();
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2
            }
            '=' => {
                tokens.push(Token::Assign);
                i += 1
            }
            '"' => {
                let mut out = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("unterminated quoted string".to_string()));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err(err("unterminated quoted string".to_string()));
                            };
                            i += 1;
                            match e {
                                'n' => out.push('\n'),
                                't' => out.push('\t'),
                                'r' => out.push('\r'),
                                '\\' => out.push('\\'),
                                '"' => out.push('"'),
                                '\'' => out.push('\''),
                                _ => {
                                    return Err(err(format!(
                                        "invalid syntax: unknown escape \\{e}"
                                    )));
                                }
                            }
                        }
                        '\n' => return Err(err("unterminated quoted string".to_string())),
                        c => out.push(c),
                    }
                }
                tokens.push(Token::Str(out));
            }
            '`' => {
                let mut out = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("unterminated raw quoted string".to_string()));
                    };
                    i += 1;
                    if c == '`' {
                        break;
                    }
                    out.push(c);
                }
                tokens.push(Token::Str(out));
            }
            '$' => {
                let mut name = String::from("$");
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    name.push(chars[i]);
                    i += 1;
                }
                let fields = read_fields(&mut i);
                tokens.push(Token::Var(name, fields));
            }
            '.' if chars.get(i + 1).is_none_or(|c| !c.is_ascii_digit()) => {
                let fields = read_fields(&mut i);
                tokens.push(Token::Field(fields));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    // An exponent sign belongs to the number.
                    if (chars[i] == 'e' || chars[i] == 'E')
                        && matches!(chars.get(i + 1), Some('+' | '-'))
                    {
                        i += 1;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if let Ok(v) = text.parse::<i64>() {
                    tokens.push(Token::Int(v));
                } else if let Some(v) = parse_go_int_literal(&text) {
                    tokens.push(Token::Int(v));
                } else if let Ok(v) = text.parse::<f64>() {
                    tokens.push(Token::Float(v));
                } else {
                    return Err(err(format!("bad number syntax: {text:?}")));
                }
            }
            c if ident_char(c) => {
                let mut name = String::new();
                while i < chars.len() && ident_char(chars[i]) {
                    name.push(chars[i]);
                    i += 1;
                }
                tokens.push(Token::Ident(name));
            }
            other => return Err(err(format!("unexpected {other:?} in command"))),
        }
        if tokens.len() > n_tokens {
            spans.push(Span {
                pos: base + byte_at[start],
                text: chars[start..i].iter().collect(),
            });
        }
    }
    Ok((tokens, spans))
}

fn parse_go_int_literal(text: &str) -> Option<i64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let body = body.replace('_', "");
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse(text: &str) -> Result<Vec<Node>, ParseError> {
    let pieces = split_pieces(text)?;
    let mut parser = Parser { pieces, pos: 0 };
    let (nodes, end) = parser.parse_list()?;
    if let Some((line, keyword)) = end {
        return Err(ParseError {
            line,
            message: format!("unexpected {{{{{keyword}}}}}"),
        });
    }
    Ok(nodes)
}

struct Parser {
    pieces: Vec<Piece>,
    pos: usize,
}

/// How a list of nodes ended: `{{end}}` or `{{else ...}}` (with the tokens after `else`).
type ListEnd = Option<(usize, String)>;

impl Parser {
    /// Parses nodes until `{{end}}`/`{{else}}` (returned) or the end of input (`None`).
    fn parse_list(&mut self) -> Result<(Vec<Node>, ListEnd), ParseError> {
        let mut nodes = Vec::new();
        while self.pos < self.pieces.len() {
            let piece_idx = self.pos;
            self.pos += 1;
            let (line, tokens, spans) = match &self.pieces[piece_idx] {
                Piece::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t.clone()));
                    }
                    continue;
                }
                Piece::Action {
                    line,
                    tokens,
                    spans,
                } => (*line, tokens.clone(), spans.clone()),
            };
            match tokens.first() {
                Some(Token::Ident(k)) if k == "end" => {
                    if tokens.len() > 1 {
                        return Err(ParseError {
                            line,
                            message: "unexpected tokens in end".to_string(),
                        });
                    }
                    return Ok((nodes, Some((line, "end".to_string()))));
                }
                Some(Token::Ident(k)) if k == "else" => {
                    // Keep the tokens after `else` for `else if`; stash them back as a piece.
                    self.pos -= 1;
                    self.pieces[piece_idx] = Piece::Action {
                        line,
                        tokens: tokens[1..].to_vec(),
                        spans: spans[1..].to_vec(),
                    };
                    return Ok((nodes, Some((line, "else".to_string()))));
                }
                Some(Token::Ident(k)) if k == "if" => {
                    nodes.push(self.parse_if(line, &tokens[1..], &spans[1..])?)
                }
                Some(Token::Ident(k)) if k == "with" || k == "range" => {
                    let pipe = parse_pipeline(&tokens[1..], &spans[1..], line)?;
                    let (body, end) = self.parse_list()?;
                    let otherwise = self.parse_else_tail(line, end, k)?;
                    nodes.push(if k == "with" {
                        Node::With {
                            line,
                            pipe,
                            body,
                            otherwise,
                        }
                    } else {
                        Node::Range {
                            line,
                            pipe,
                            body,
                            otherwise,
                        }
                    });
                }
                Some(Token::Ident(k))
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(ParseError {
                        line,
                        message: format!("{{{{{k}}}}} is not supported by twin"),
                    });
                }
                None => {
                    return Err(ParseError {
                        line,
                        message: "missing value for command".to_string(),
                    });
                }
                _ => nodes.push(Node::Action {
                    line,
                    pipe: parse_pipeline(&tokens, &spans, line)?,
                }),
            }
        }
        Ok((nodes, None))
    }

    fn parse_if(
        &mut self,
        line: usize,
        cond: &[Token],
        cond_spans: &[Span],
    ) -> Result<Node, ParseError> {
        let mut branches = Vec::new();
        let mut pipe = parse_pipeline(cond, cond_spans, line)?;
        loop {
            let (body, end) = self.parse_list()?;
            branches.push((pipe, body));
            match end {
                None => {
                    return Err(ParseError {
                        line,
                        message: "unexpected EOF".to_string(),
                    });
                }
                Some((_, k)) if k == "end" => {
                    return Ok(Node::If {
                        line,
                        branches,
                        otherwise: Vec::new(),
                    });
                }
                Some((else_line, _)) => {
                    let Piece::Action { tokens, spans, .. } = &self.pieces[self.pos] else {
                        return Err(ParseError {
                            line: else_line,
                            message: "internal: else lost".to_string(),
                        });
                    };
                    let (tokens, spans) = (tokens.clone(), spans.clone());
                    self.pos += 1;
                    if let Some(Token::Ident(k)) = tokens.first()
                        && k == "if"
                    {
                        pipe = parse_pipeline(&tokens[1..], &spans[1..], else_line)?;
                        continue;
                    }
                    if !tokens.is_empty() {
                        return Err(ParseError {
                            line: else_line,
                            message: "unexpected tokens after else".to_string(),
                        });
                    }
                    let (otherwise, end) = self.parse_list()?;
                    return match end {
                        Some((_, k)) if k == "end" => Ok(Node::If {
                            line,
                            branches,
                            otherwise,
                        }),
                        _ => Err(ParseError {
                            line,
                            message: "expected end; found else or EOF".to_string(),
                        }),
                    };
                }
            }
        }
    }

    /// After the body of `with`/`range`: an optional `{{else}}` part, then `{{end}}`.
    fn parse_else_tail(
        &mut self,
        line: usize,
        end: ListEnd,
        keyword: &str,
    ) -> Result<Vec<Node>, ParseError> {
        match end {
            None => Err(ParseError {
                line,
                message: format!("unexpected EOF in {keyword}"),
            }),
            Some((_, k)) if k == "end" => Ok(Vec::new()),
            Some((else_line, _)) => {
                let Piece::Action { tokens, .. } = &self.pieces[self.pos] else {
                    return Err(ParseError {
                        line: else_line,
                        message: "internal: else lost".to_string(),
                    });
                };
                if !tokens.is_empty() {
                    return Err(ParseError {
                        line: else_line,
                        message: "unexpected tokens after else".to_string(),
                    });
                }
                self.pos += 1;
                let (otherwise, end) = self.parse_list()?;
                match end {
                    Some((_, k)) if k == "end" => Ok(otherwise),
                    _ => Err(ParseError {
                        line,
                        message: format!("expected end in {keyword}"),
                    }),
                }
            }
        }
    }
}

/// Go's `CommandNode.String()`: the command's tokens joined by spaces, parentheses tight.
fn command_text(spans: &[Span]) -> String {
    let mut out = String::new();
    for (idx, span) in spans.iter().enumerate() {
        let tight = idx == 0 || span.text == ")" || spans[idx - 1].text == "(";
        if !tight {
            out.push(' ');
        }
        out.push_str(&span.text);
    }
    out
}

fn parse_pipeline(tokens: &[Token], spans: &[Span], line: usize) -> Result<Pipeline, ParseError> {
    let err = |message: &str| ParseError {
        line,
        message: message.to_string(),
    };
    let mut vars = Vec::new();
    let mut declare = false;
    let mut rest = tokens;
    let mut rest_spans = spans;
    // `$x :=`, `$x =`, `$k, $v :=`.
    let mut probe = 0;
    let mut names = Vec::new();
    while let Some(Token::Var(name, fields)) = rest.get(probe) {
        if !fields.is_empty() {
            break;
        }
        names.push(name.clone());
        probe += 1;
        if rest.get(probe) == Some(&Token::Comma) {
            probe += 1;
            continue;
        }
        break;
    }
    match rest.get(probe) {
        Some(Token::Declare) if !names.is_empty() => {
            vars = names;
            declare = true;
            rest = &rest[probe + 1..];
            rest_spans = &rest_spans[(probe + 1).min(rest_spans.len())..];
        }
        Some(Token::Assign) if !names.is_empty() => {
            vars = names;
            rest = &rest[probe + 1..];
            rest_spans = &rest_spans[(probe + 1).min(rest_spans.len())..];
        }
        _ => {}
    }
    if rest.is_empty() {
        return Err(err("missing value for command"));
    }
    let mut commands = Vec::new();
    let mut args = Vec::new();
    let mut command_start = 0;
    let finish = |args: Vec<Arg>, from: usize, to: usize| {
        let spans = rest_spans
            .get(from..to.min(rest_spans.len()))
            .unwrap_or(&[]);
        Command {
            args,
            pos: spans.first().map(|s| s.pos).unwrap_or(0),
            text: command_text(spans),
        }
    };
    let mut i = 0;
    while i < rest.len() {
        match &rest[i] {
            Token::Pipe => {
                if args.is_empty() {
                    return Err(err("missing command before |"));
                }
                commands.push(finish(std::mem::take(&mut args), command_start, i));
                command_start = i + 1;
            }
            Token::LParen => {
                let mut depth = 1;
                let start = i + 1;
                let mut j = start;
                while j < rest.len() {
                    match rest[j] {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    return Err(err("unclosed left paren"));
                }
                let sub_spans = rest_spans
                    .get(start..j.min(rest_spans.len()))
                    .unwrap_or(&[]);
                args.push(Arg::Sub(parse_pipeline(&rest[start..j], sub_spans, line)?));
                i = j;
            }
            Token::RParen => return Err(err("unexpected right paren")),
            Token::Ident(name) => args.push(match name.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ if BUILTINS.contains(&name.as_str()) => Arg::Ident(name.clone()),
                _ => return Err(err(&format!("function {name:?} not defined"))),
            }),
            Token::Field(f) => args.push(Arg::Field(f.clone())),
            Token::Var(n, f) => args.push(Arg::Var(n.clone(), f.clone())),
            Token::Str(s) => args.push(Arg::Str(s.clone())),
            Token::Int(v) => args.push(Arg::Int(*v)),
            Token::Float(v) => args.push(Arg::Float(*v)),
            Token::Declare | Token::Assign | Token::Comma => {
                return Err(err("unexpected assignment"));
            }
        }
        i += 1;
    }
    if args.is_empty() {
        return Err(err("missing command after |"));
    }
    commands.push(finish(args, command_start, rest.len()));
    Ok(Pipeline {
        vars,
        declare,
        commands,
    })
}

// ---------------------------------------------------------------------------------------------
// Execution

struct ExecError {
    line: usize,
    message: String,
    /// The failing command: its byte offset in the template and its text.
    at: Option<(usize, String)>,
}

struct Exec {
    /// The variable stack; blocks truncate it back on exit, as Go's scoping does.
    vars: Vec<(String, Value)>,
    out: String,
}

impl Exec {
    fn run(&mut self, nodes: &[Node], dot: &Value) -> Result<(), ExecError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action { line, pipe } => {
                    let value = self.pipeline(pipe, dot, *line)?;
                    if pipe.vars.is_empty() {
                        self.out.push_str(&value.display());
                    }
                }
                Node::If {
                    line,
                    branches,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        if self.pipeline(cond, dot, *line)?.truthy() {
                            self.run(body, dot)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.run(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With {
                    line,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let value = self.pipeline(pipe, dot, *line)?;
                    if value.truthy() {
                        self.run(body, &value)?;
                    } else {
                        self.run(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range {
                    line,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let declared: Vec<String> = pipe.vars.clone();
                    let bare = Pipeline {
                        vars: Vec::new(),
                        declare: false,
                        commands: pipe.commands.clone(),
                    };
                    let value = self.pipeline(&bare, dot, *line)?;
                    let items: Vec<(Value, Value)> = match &value {
                        Value::Map(m) => m
                            .iter()
                            .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                            .collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(ExecError {
                                line: *line,
                                message: format!("range can't iterate over {}", other.display()),
                                at: None,
                            });
                        }
                    };
                    if items.is_empty() {
                        self.run(otherwise, dot)?;
                    }
                    for (key, item) in items {
                        let inner = self.vars.len();
                        match declared.as_slice() {
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [k, v] => {
                                self.vars.push((k.clone(), key));
                                self.vars.push((v.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.run(body, &item)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value, line: usize) -> Result<Value, ExecError> {
        let mut piped: Option<Value> = None;
        for command in &pipe.commands {
            let value = self
                .command(&command.args, dot, piped, line)
                .map_err(|mut err| {
                    // The innermost command that failed is the one Go names.
                    err.at
                        .get_or_insert_with(|| (command.pos, command.text.clone()));
                    err
                })?;
            piped = Some(value);
        }
        let value = piped.unwrap_or(Value::Nil);
        for name in &pipe.vars {
            if pipe.declare {
                self.vars.push((name.clone(), value.clone()));
            } else {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => {
                        return Err(ExecError {
                            line,
                            message: format!("undefined variable: {name}"),
                            at: None,
                        });
                    }
                }
            }
        }
        Ok(value)
    }

    fn command(
        &mut self,
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, ExecError> {
        let err = |message: String| ExecError {
            line,
            message,
            at: None,
        };
        let Some(first) = args.first() else {
            return Err(err("empty command".to_string()));
        };
        if let Arg::Ident(name) = first {
            // `and`/`or` stop at the deciding argument, as Go 1.18+ does.
            if name == "and" || name == "or" {
                let mut last = Value::Nil;
                let n_args = args.len() - 1 + usize::from(piped.is_some());
                if n_args == 0 {
                    return Err(err(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
                for arg in &args[1..] {
                    last = self.arg(arg, dot, line)?;
                    if last.truthy() == (name == "or") {
                        return Ok(last);
                    }
                }
                if let Some(p) = piped {
                    last = p;
                }
                return Ok(last);
            }
            let mut values = Vec::with_capacity(args.len());
            for arg in &args[1..] {
                values.push(self.arg(arg, dot, line)?);
            }
            if let Some(p) = piped {
                values.push(p);
            }
            return call(name, &values).map_err(|m| err(format!("error calling {name}: {m}")));
        }
        if args.len() > 1 || piped.is_some() {
            return Err(err(format!(
                "can't give argument to non-function {}",
                describe_arg(first)
            )));
        }
        self.arg(first, dot, line)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value, line: usize) -> Result<Value, ExecError> {
        match arg {
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(v) => Ok(Value::Int(*v)),
            Arg::Float(v) => Ok(Value::Float(*v)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Err(ExecError {
                line,
                message: "nil is not a command".to_string(),
                at: None,
            }),
            Arg::Sub(p) => self.pipeline(p, dot, line),
            Arg::Ident(name) => call(name, &[]).map_err(|m| ExecError {
                line,
                message: format!("error calling {name}: {m}"),
                at: None,
            }),
            Arg::Field(fields) => fields_of(dot.clone(), fields, line),
            Arg::Var(name, fields) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(ExecError {
                        line,
                        message: format!("undefined variable: {name}"),
                        at: None,
                    });
                };
                fields_of(v.clone(), fields, line)
            }
        }
    }
}

fn describe_arg(arg: &Arg) -> String {
    match arg {
        Arg::Field(f) => format!(".{}", f.join(".")),
        Arg::Var(n, f) if f.is_empty() => n.clone(),
        Arg::Var(n, f) => format!("{n}.{}", f.join(".")),
        Arg::Str(s) => go_quote(s),
        Arg::Int(v) => v.to_string(),
        Arg::Float(v) => format_float_shortest(*v),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".to_string(),
        Arg::Ident(n) => n.clone(),
        Arg::Sub(_) => "(...)".to_string(),
    }
}

fn fields_of(mut value: Value, fields: &[String], line: usize) -> Result<Value, ExecError> {
    for field in fields {
        value = match value {
            // missingkey=zero on map[string]string: a missing label is "".
            Value::Map(m) => Value::Str(m.get(field).cloned().unwrap_or_default()),
            Value::Struct(fs) => match fs.into_iter().find(|(n, _)| n == field) {
                Some((_, v)) => v,
                None => {
                    return Err(ExecError {
                        line,
                        message: format!("can't evaluate field {field} in type struct"),
                        at: None,
                    });
                }
            },
            other => {
                return Err(ExecError {
                    line,
                    message: format!("can't evaluate field {field} in type {}", other.type_name()),
                    at: None,
                });
            }
        };
    }
    Ok(value)
}

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn as_str<'a>(name: &str, v: &'a Value) -> Result<&'a str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {name})",
            other.type_name()
        )),
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let float_fn = |f: fn(f64) -> String| -> Result<Value, String> {
        want_args(name, args, 1)?;
        Ok(Value::Str(f(convert_to_float(&args[0])?)))
    };
    match name {
        "humanize" => float_fn(humanize),
        "humanize1024" => float_fn(humanize1024),
        "humanizeDuration" => float_fn(humanize_duration),
        "humanizePercentage" => float_fn(humanize_percentage),
        "humanizeTimestamp" => float_fn(humanize_timestamp),
        "title" => {
            want_args(name, args, 1)?;
            Ok(Value::Str(title(as_str(name, &args[0])?)))
        }
        "toUpper" => {
            want_args(name, args, 1)?;
            Ok(Value::Str(as_str(name, &args[0])?.to_uppercase()))
        }
        "toLower" => {
            want_args(name, args, 1)?;
            Ok(Value::Str(as_str(name, &args[0])?.to_lowercase()))
        }
        "safeHtml" => {
            want_args(name, args, 1)?;
            Ok(Value::Str(as_str(name, &args[0])?.to_string()))
        }
        "stripPort" => {
            want_args(name, args, 1)?;
            let host = as_str(name, &args[0])?;
            Ok(Value::Str(strip_port(host)))
        }
        "match" => {
            want_args(name, args, 2)?;
            let re = regex::Regex::new(as_str(name, &args[0])?).map_err(|e| e.to_string())?;
            Ok(Value::Bool(re.is_match(as_str(name, &args[1])?)))
        }
        "reReplaceAll" => {
            want_args(name, args, 3)?;
            let re = regex::Regex::new(as_str(name, &args[0])?).map_err(|e| e.to_string())?;
            // Go's Expand and Rust's replacement syntax agree: `$1`, `${1}`, `$name`, and a
            // name runs as far as letters, digits and `_` go (`$1x` is the group `1x`).
            let replacement = as_str(name, &args[1])?;
            Ok(Value::Str(
                re.replace_all(as_str(name, &args[2])?, replacement)
                    .into_owned(),
            ))
        }
        "printf" => {
            let Some((format, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".to_string());
            };
            Ok(Value::Str(sprintf(as_str(name, format)?, rest)))
        }
        "print" => Ok(Value::Str(go_sprint(args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::display).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "len" => {
            want_args(name, args, 1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => Err(format!("len of type {}", other.type_name())),
            }
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".to_string());
            };
            let mut value = first.clone();
            for key in keys {
                value = match (&value, key) {
                    (Value::Map(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    (Value::Str(s), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                            Some(b) => Value::Int(i64::from(*b)),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (v, _) => return Err(format!("can't index item of type {}", v.type_name())),
                };
            }
            Ok(value)
        }
        "not" => {
            want_args(name, args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("missing argument for comparison".to_string());
            };
            if rest.is_empty() {
                return Err("missing argument for comparison".to_string());
            }
            for other in rest {
                if compare(first, other)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, args, 2)?;
            let ord = compare(&args[0], &args[1])?;
            if name != "ne" && matches!(&args[0], Value::Bool(_)) {
                return Err("invalid type for comparison".to_string());
            }
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => ord != Equal,
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            }))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        // Go compares NaN as unequal to everything, and neither less nor greater.
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Greater)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => Err("incompatible types for comparison".to_string()),
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !matches!(arg, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&arg.display());
    }
    out
}

fn strip_port(host: &str) -> String {
    // net.SplitHostPort semantics: `[v6]:port` or `host:port`; anything else stays as is.
    if let Some(rest) = host.strip_prefix('[')
        && let Some((inner, port)) = rest.split_once("]:")
        && !port.contains(':')
    {
        return inner.to_string();
    }
    match host.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => host.to_string(),
    }
}
