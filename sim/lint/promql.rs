//! What the monitoring checks need to know about a PromQL expression, read from the
//! promql-parser AST (never from the text): the selectors it reads, the time unit of its value,
//! its divisions and what their denominators are.

use promql_parser::label::MatchOp;
use promql_parser::parser::token::{T_DIV, T_GTR, T_LOR, T_MUL, T_NEQ, T_SUB};
use promql_parser::parser::{self, Expr};

/// Sloth's window placeholder, which is not PromQL; it is replaced by a real range before
/// parsing so a templated SLI query can still be analysed.
const WINDOW_PLACEHOLDER: &str = r"\{\{\s*\.window\s*\}\}";

/// Parses an expression, accepting Sloth's `{{ .window }}` placeholder.
pub fn parse(text: &str) -> Result<Expr, String> {
    let placeholder =
        regex::Regex::new(WINDOW_PLACEHOLDER).expect("the placeholder pattern is valid");
    parser::parse(&placeholder.replace_all(text, "5m"))
}

/// Whether the text holds Sloth's `{{ .window }}` placeholder.
pub fn has_window_placeholder(text: &str) -> bool {
    regex::Regex::new(WINDOW_PLACEHOLDER)
        .expect("the placeholder pattern is valid")
        .is_match(text)
}

/// A vector selector as written: metric name and label matchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub metric: Option<String>,
    pub matchers: Vec<LabelMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatch {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    pub value: String,
}

impl Selector {
    /// The value of an `=` matcher on `label`.
    pub fn equal(&self, label: &str) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.label == label && m.op == "=")
            .map(|m| m.value.as_str())
    }
}

/// Every vector selector in the expression, left to right.
pub fn selectors(expr: &Expr) -> Vec<Selector> {
    let mut out = Vec::new();
    walk(expr, &mut |node| {
        let vs = match node {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return,
        };
        let mut matchers = Vec::new();
        let mut metric = vs.name.clone();
        for m in &vs.matchers.matchers {
            let op = match &m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Re(_) => "=~",
                MatchOp::NotRe(_) => "!~",
            };
            if m.name == "__name__" && op == "=" {
                metric = Some(m.value.clone());
                continue;
            }
            matchers.push(LabelMatch {
                label: m.name.clone(),
                op,
                value: m.value.clone(),
            });
        }
        out.push(Selector { metric, matchers });
    });
    out
}

/// Calls `visit` on every node, parents before children, left before right.
pub fn walk(expr: &Expr, visit: &mut dyn FnMut(&Expr)) {
    visit(expr);
    match expr {
        Expr::Aggregate(agg) => {
            if let Some(param) = &agg.param {
                walk(param, visit);
            }
            walk(&agg.expr, visit);
        }
        Expr::Unary(unary) => walk(&unary.expr, visit),
        Expr::Binary(bin) => {
            walk(&bin.lhs, visit);
            walk(&bin.rhs, visit);
        }
        Expr::Paren(paren) => walk(&paren.expr, visit),
        Expr::Subquery(sub) => walk(&sub.expr, visit),
        Expr::Call(call) => {
            for arg in &call.args.args {
                walk(arg, visit);
            }
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// The time unit of an expression's value, as far as it can be told from the AST.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeUnit {
    /// A rate: `rate()`, `irate()`, `deriv()` give per-second values; `factor` is what they
    /// were multiplied by afterwards (3600 makes it per hour).
    PerSecond {
        factor: f64,
    },
    /// An amount over a window: `increase()` over `window_secs`.
    PerWindow {
        window_secs: f64,
    },
    /// Not a rate of anything (a gauge, a ratio of two rates, a quantile).
    NotARate,
    Unknown,
}

/// The time unit of the value an expression (or an alert's `$value`) carries. A filtering
/// comparison (`x > 100`) keeps its left-hand value, so it has its left side's unit.
pub fn time_unit(expr: &Expr) -> TimeUnit {
    match expr {
        Expr::Paren(p) => time_unit(&p.expr),
        Expr::Aggregate(agg) => {
            let op = agg.op.to_string();
            match op.as_str() {
                "sum" | "avg" | "max" | "min" | "topk" | "bottomk" | "quantile" => {
                    time_unit(&agg.expr)
                }
                _ => TimeUnit::NotARate,
            }
        }
        Expr::Call(call) => match call.func.name {
            "rate" | "irate" | "deriv" => TimeUnit::PerSecond { factor: 1.0 },
            "increase" => match call.args.args.first().map(|a| a.as_ref()) {
                Some(Expr::MatrixSelector(ms)) => TimeUnit::PerWindow {
                    window_secs: ms.range.as_secs_f64(),
                },
                _ => TimeUnit::Unknown,
            },
            "abs" | "ceil" | "floor" | "round" | "clamp" | "clamp_max" | "clamp_min" | "sort"
            | "sort_desc" => call
                .args
                .args
                .first()
                .map_or(TimeUnit::Unknown, |a| time_unit(a)),
            "histogram_quantile" => TimeUnit::NotARate,
            _ => TimeUnit::Unknown,
        },
        Expr::Binary(bin) if bin.op.is_comparison_operator() => time_unit(&bin.lhs),
        Expr::Binary(bin) if bin.op.id() == T_MUL || bin.op.id() == T_DIV => {
            let (lhs, rhs) = (time_unit(&bin.lhs), time_unit(&bin.rhs));
            let number = |e: &Expr| match e {
                Expr::NumberLiteral(n) => Some(n.val),
                Expr::Paren(p) => match p.expr.as_ref() {
                    Expr::NumberLiteral(n) => Some(n.val),
                    _ => None,
                },
                _ => None,
            };
            let divide = bin.op.id() == T_DIV;
            match (lhs, number(&bin.rhs), number(&bin.lhs), rhs) {
                (TimeUnit::PerSecond { factor }, Some(k), _, _) => TimeUnit::PerSecond {
                    factor: if divide { factor / k } else { factor * k },
                },
                (_, _, Some(k), TimeUnit::PerSecond { factor }) if !divide => {
                    TimeUnit::PerSecond { factor: factor * k }
                }
                // A rate over a rate is a ratio.
                (TimeUnit::PerSecond { .. }, _, _, TimeUnit::PerSecond { .. }) if divide => {
                    TimeUnit::NotARate
                }
                _ => TimeUnit::Unknown,
            }
        }
        Expr::VectorSelector(_) => TimeUnit::NotARate,
        _ => TimeUnit::Unknown,
    }
}

/// Every division `lhs / rhs` in the expression.
pub fn divisions(expr: &Expr) -> Vec<(Expr, Expr)> {
    let mut out = Vec::new();
    walk(expr, &mut |node| {
        if let Expr::Binary(bin) = node
            && bin.op.id() == T_DIV
        {
            out.push(((*bin.lhs).clone(), (*bin.rhs).clone()));
        }
    });
    out
}

/// Why a denominator can be 0 for real objects, if it can.
pub fn zero_denominator_reason(rhs: &Expr) -> Option<String> {
    if is_guarded(rhs) {
        return None;
    }
    let mut reason = None;
    // `x or vector(0)` is 0 by construction whenever x is empty.
    walk(rhs, &mut |node| {
        if reason.is_some() {
            return;
        }
        if let Expr::Binary(bin) = node
            && bin.op.id() == T_LOR
            && is_vector_zero(&bin.rhs)
        {
            reason = Some(format!(
                "`{}` is 0 whenever `{}` is empty, so the ratio is +Inf or NaN",
                strip(&node.to_string()),
                strip(&bin.lhs.to_string())
            ));
        }
    });
    if reason.is_some() {
        return reason;
    }
    for selector in selectors(rhs) {
        let Some(metric) = selector.metric.as_deref() else {
            continue;
        };
        if metric == "container_spec_memory_limit_bytes" || metric == "container_spec_cpu_quota" {
            return Some(format!(
                "`{metric}` is 0 for a container without a limit (and for the pod-level and pause cgroups), so the ratio is +Inf there"
            ));
        }
    }
    if let TimeUnit::PerSecond { .. } = time_unit(rhs) {
        return Some(format!(
            "`{}` is 0 when there is no traffic, so the ratio is NaN (0/0) and whatever reads it goes blind",
            strip(&rhs.to_string())
        ));
    }
    None
}

/// Whether the denominator filters out zero itself: `(x > 0)`, `(x > 1)`, `(x != 0)`.
fn is_guarded(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => is_guarded(&p.expr),
        Expr::Binary(bin) if !bin.return_bool() => match (bin.op.id(), bin.rhs.as_ref()) {
            (T_GTR, Expr::NumberLiteral(n)) => n.val >= 0.0,
            (T_NEQ, Expr::NumberLiteral(n)) => n.val == 0.0,
            _ => false,
        },
        _ => false,
    }
}

fn is_vector_zero(expr: &Expr) -> bool {
    match expr {
        Expr::Call(call) if call.func.name == "vector" => {
            matches!(call.args.args.first().map(|a| a.as_ref()), Some(Expr::NumberLiteral(n)) if n.val == 0.0)
        }
        Expr::Paren(p) => is_vector_zero(&p.expr),
        _ => false,
    }
}

/// Collapses whitespace so an expression fits on one message line.
pub fn strip(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// If `expr` computes the ratio of *good* events (histogram buckets under a bound over the total
/// count), the bucket selector's `le` value. `1 - good` and `(total - good) / total` are error
/// ratios and give `None`.
pub fn good_ratio_bucket(expr: &Expr) -> Option<String> {
    match ratio_polarity(expr)? {
        (true, le) => Some(le),
        (false, _) => None,
    }
}

/// `(is_good_ratio, le)` of a bucket ratio expression.
fn ratio_polarity(expr: &Expr) -> Option<(bool, String)> {
    match expr {
        Expr::Paren(p) => ratio_polarity(&p.expr),
        Expr::Aggregate(agg) => ratio_polarity(&agg.expr),
        Expr::Binary(bin) if bin.op.is_comparison_operator() => ratio_polarity(&bin.lhs),
        Expr::Binary(bin) if bin.op.id() == T_DIV => {
            let le = bucket_le(&bin.lhs)?;
            is_total(&bin.rhs).then_some((true, le))
        }
        Expr::Binary(bin) if bin.op.id() == T_SUB => match bin.lhs.as_ref() {
            Expr::NumberLiteral(n) if n.val == 1.0 => {
                ratio_polarity(&bin.rhs).map(|(good, le)| (!good, le))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Strips parentheses, aggregations and range functions down to the selector they read.
fn inner_selector(expr: &Expr) -> Option<Selector> {
    match expr {
        Expr::Paren(p) => inner_selector(&p.expr),
        Expr::Aggregate(agg) => inner_selector(&agg.expr),
        Expr::Call(call) if matches!(call.func.name, "rate" | "irate" | "increase") => {
            inner_selector(call.args.args.first()?)
        }
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => selectors(expr).into_iter().next(),
        _ => None,
    }
}

/// The `le` of an expression that is (a sum of rates of) one finite histogram bucket.
fn bucket_le(expr: &Expr) -> Option<String> {
    let selector = inner_selector(expr)?;
    let le = selector.equal("le")?;
    (selector.metric.as_deref()?.ends_with("_bucket") && le != "+Inf").then(|| le.to_string())
}

/// Whether an expression is (a sum of rates of) a total: `_count`, `_total` or the `+Inf` bucket.
fn is_total(expr: &Expr) -> bool {
    let Some(selector) = inner_selector(expr) else {
        return false;
    };
    let Some(metric) = selector.metric.as_deref() else {
        return false;
    };
    metric.ends_with("_count")
        || metric.ends_with("_total")
        || (metric.ends_with("_bucket") && selector.equal("le") == Some("+Inf"))
}
