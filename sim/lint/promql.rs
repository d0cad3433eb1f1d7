//! What the monitoring checks need to know about a PromQL expression, read from the
//! promql-parser AST (never from the text): the selectors it reads, the time unit of its value,
//! its divisions and what their denominators are.

use promql_parser::label::MatchOp;
use promql_parser::parser::token::{T_DIV, T_LOR, T_MUL};
use promql_parser::parser::{self, Expr};

/// Sloth's window placeholder, which is not PromQL; it is replaced by a real range before
/// parsing so a templated SLI query can still be analysed.
const WINDOW_PLACEHOLDER: &str = r"\{\{\s*\.window\s*\}\}";

/// Parses an expression, accepting Sloth's `{{ .window }}` placeholder.
pub fn parse(text: &str) -> Result<Expr, String> {
    let placeholder = regex::Regex::new(WINDOW_PLACEHOLDER).expect("the placeholder pattern is valid");
    parser::parse(&placeholder.replace_all(text, "5m"))
}

/// Whether the text holds Sloth's `{{ .window }}` placeholder.
pub fn has_window_placeholder(text: &str) -> bool {
    regex::Regex::new(WINDOW_PLACEHOLDER).expect("the placeholder pattern is valid").is_match(text)
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
        self.matchers.iter().find(|m| m.label == label && m.op == "=").map(|m| m.value.as_str())
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
            matchers.push(LabelMatch { label: m.name.clone(), op, value: m.value.clone() });
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
    PerSecond { factor: f64 },
    /// An amount over a window: `increase()` over `window_secs`.
    PerWindow { window_secs: f64 },
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
                "sum" | "avg" | "max" | "min" | "topk" | "bottomk" | "quantile" => time_unit(&agg.expr),
                _ => TimeUnit::NotARate,
            }
        }
        Expr::Call(call) => match call.func.name {
            "rate" | "irate" | "deriv" => TimeUnit::PerSecond { factor: 1.0 },
            "increase" => match call.args.args.first().map(|a| a.as_ref()) {
                Some(Expr::MatrixSelector(ms)) => TimeUnit::PerWindow { window_secs: ms.range.as_secs_f64() },
                _ => TimeUnit::Unknown,
            },
            "abs" | "ceil" | "floor" | "round" | "clamp" | "clamp_max" | "clamp_min" | "sort" | "sort_desc" => {
                call.args.args.first().map_or(TimeUnit::Unknown, |a| time_unit(a))
            }
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
                (TimeUnit::PerSecond { factor }, Some(k), _, _) => {
                    TimeUnit::PerSecond { factor: if divide { factor / k } else { factor * k } }
                }
                (_, _, Some(k), TimeUnit::PerSecond { factor }) if !divide => TimeUnit::PerSecond { factor: factor * k },
                // A rate over a rate is a ratio.
                (TimeUnit::PerSecond { .. }, _, _, TimeUnit::PerSecond { .. }) if divide => TimeUnit::NotARate,
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
        let Some(metric) = selector.metric.as_deref() else { continue };
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

/// If `expr` divides histogram buckets below a bound by the total count, the ratio of *good*
/// events: returns the bucket selector's `le` value.
pub fn good_ratio_bucket(expr: &Expr) -> Option<String> {
    for (lhs, rhs) in divisions(expr) {
        let bucket = selectors(&lhs).into_iter().find_map(|s| {
            let metric = s.metric.as_deref()?;
            if metric.ends_with("_bucket") { s.equal("le").map(str::to_string) } else { None }
        });
        let over_total = selectors(&rhs).iter().any(|s| {
            s.metric.as_deref().is_some_and(|m| m.ends_with("_count") || m.ends_with("_total"))
                || (s.metric.as_deref().is_some_and(|m| m.ends_with("_bucket")) && s.equal("le") == Some("+Inf"))
        });
        if let Some(le) = bucket
            && over_total
        {
            return Some(le);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sum_of_rates_over_an_hour_is_still_per_second() {
        // Goal: the plan's HighLLMCosts computes dollars per second whatever the range.
        // Method: the unit of `sum(rate(x[1h])) > 100` is per second with factor 1.
        let expr = parse("sum(rate(llm_api_cost_dollars[1h])) > 100").unwrap();
        assert_eq!(time_unit(&expr), TimeUnit::PerSecond { factor: 1.0 });
        let per_hour = parse("sum(rate(llm_api_cost_dollars[1h])) * 3600 > 100").unwrap();
        assert_eq!(time_unit(&per_hour), TimeUnit::PerSecond { factor: 3600.0 });
    }

    #[test]
    fn a_ratio_of_rates_is_not_a_rate() {
        // Goal: an error ratio is dimensionless. Method: rate / rate gives NotARate.
        let expr = parse("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.05").unwrap();
        assert_eq!(time_unit(&expr), TimeUnit::NotARate);
    }

    #[test]
    fn bucket_under_a_bound_over_the_count_is_a_good_ratio() {
        // Goal: detect the plan's inverted latency SLI. Method: le="1" bucket over _count.
        let expr = parse("sum(rate(h_bucket{le=\"1\"}[5m])) / sum(rate(h_count[5m]))").unwrap();
        assert_eq!(good_ratio_bucket(&expr).as_deref(), Some("1"));
        let errors = parse("sum(rate(h_count[5m])) - sum(rate(h_bucket{le=\"1\"}[5m]))").unwrap();
        assert_eq!(good_ratio_bucket(&errors), None);
    }

    #[test]
    fn or_vector_zero_in_a_denominator_is_reported() {
        // Goal: `count(x) or vector(0)` as a denominator is zero by construction.
        // Method: the reason names the `or vector(0)`; a plain gauge denominator has none.
        let expr = parse("count(a) / (count(b) or vector(0))").unwrap();
        let (_, rhs) = divisions(&expr).remove(0);
        assert!(zero_denominator_reason(&rhs).unwrap().contains("vector(0)"));
        let gauges = parse("a / b").unwrap();
        let (_, rhs) = divisions(&gauges).remove(0);
        assert_eq!(zero_denominator_reason(&rhs), None);
    }

    #[test]
    fn the_window_placeholder_parses() {
        // Goal: Sloth templates can be analysed. Method: parse a query holding `{{ .window }}`.
        assert!(parse("sum(rate(x[{{ .window }}]))").is_ok());
        assert!(has_window_placeholder("rate(x[{{.window}}])"));
        assert!(!has_window_placeholder("rate(x[5m])"));
    }
}
