//! PromQL evaluation over the telemetry [`Store`], parsed by `promql-parser`.
//!
//! Mirrors the query engine of Prometheus 2.42.0 (`promql/engine.go`, `promql/functions.go`,
//! `promql/quantile.go`) for float samples; the semantics are in spec/prometheus.md §5-§9:
//! 5-minute lookback that includes a sample exactly 5m old, closed range windows `[t-d, t]`,
//! stale markers, `offset` and `@` (with `start()`/`end()`), subqueries aligned to their step,
//! 2.42's `rate` extrapolation order (zero clamp before the threshold test), plain summation,
//! the incremental `avg`, and the exact duplicate-series and matching errors.
//!
//! Invariants: evaluation never mutates the store and never reads a clock; results are
//! deterministic (series in label-set order unless the operator defines an order, as `topk`
//! and `sort` do); a construct the evaluator does not handle is a [`PromqlError::Unsupported`]
//! naming it, never a silently empty result. Native histograms are out of scope (the store
//! holds floats only).
//!
//! Conformance: all 566 eval statements of Prometheus 2.42's own promqltest suite pass (the
//! ratchet in `fixtures/promql/upstream-pass-count`), and promtool 2.42 agrees with us on all
//! 566 and on every fixture statement (`sim/tests/promql/differential.rs`), bit for bit except
//! where addition order differs (below). Logarithms follow Go's `math` formulas.
//!
//! Where this engine knowingly differs from 2.42:
//! - Addition order. Upstream aggregates in the order its head block returns series, which is
//!   series creation order (the engine selects without sorting); we use label-set order, so
//!   `sum`/`avg`/`stddev` over three or more series can differ in the last bits.
//! - Ties in `sort`, `sort_desc`, `topk` and `bottomk` come out as Go's insertion sort orders
//!   them, which is Go's `sort.Sort` up to 12 elements; beyond that Go's pdqsort may order
//!   equal values differently.
//! - No sample limit (`--query.max-samples`) or timeout; instead a subquery may take at most
//!   1,000,000 steps. The parser follows Prometheus 3: `holt_winters` is registered under its
//!   2.42 name, and functions, aggregations and modifiers newer than 2.42 are
//!   [`PromqlError::Unsupported`].
//!
//! Range queries and subqueries evaluate step by step; the errors upstream raises for a whole
//! matrix (two series that lose their names to a range function or unary minus, even at
//! different steps) are reproduced by remembering each such node's outputs over the steps.
//!
//! [`promqltest`] runs Prometheus's PromQL test language over this engine.

mod eval;
mod functions;
pub mod promqltest;
pub mod promtool;
pub mod rules;
pub mod slo;
pub mod template;

use std::fmt;

pub use promql_parser::parser::Expr;

use crate::telemetry::store::{Labels, Sample, Store};

/// Errors of parsing or evaluating an expression.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PromqlError {
    /// The expression does not parse.
    #[error("parse error: {message}")]
    Parse { message: String },
    /// A construct this evaluator does not implement (named), e.g. native histograms.
    #[error("unsupported: {construct}")]
    Unsupported { construct: String },
    /// A runtime error with Prometheus 2.42's wording, e.g. "vector cannot contain metrics
    /// with the same labelset" or the many-to-many matching errors.
    #[error("{message}")]
    Eval { message: String },
}

impl PromqlError {
    pub(crate) fn eval(message: impl Into<String>) -> PromqlError {
        PromqlError::Eval {
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(construct: impl Into<String>) -> PromqlError {
        PromqlError::Unsupported {
            construct: construct.into(),
        }
    }
}

/// One element of an instant vector: its labels and its value at the evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range vector (matrix): labels and samples in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The result of an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<VectorSample>),
    Matrix(Vec<RangeSeries>),
    String(String),
}

impl Value {
    /// The PromQL name of the value's type, as in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
            Value::String(_) => "string",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(v) => write!(f, "scalar: {}", format_go_value(*v)),
            Value::String(s) => write!(f, "string: {s:?}"),
            Value::Vector(samples) => {
                for sample in samples {
                    writeln!(f, "{} => {}", sample.labels, format_go_value(sample.value))?;
                }
                Ok(())
            }
            Value::Matrix(series) => {
                for s in series {
                    let points: Vec<String> = s
                        .samples
                        .iter()
                        .map(|p| format!("{} @{}", format_go_value(p.value), p.t_ms))
                        .collect();
                    writeln!(f, "{} => {}", s.labels, points.join(" "))?;
                }
                Ok(())
            }
        }
    }
}

/// Formats a float as Go's `fmt` `%v` does (`strconv.FormatFloat(v, 'g', -1, 64)`), which is
/// how upstream's test framework and templates print values: the shortest digits that read
/// back as the same float, in exponent form (`1e+06`, `1.234e-05`) when the decimal exponent
/// is below -4 or at least 6; `NaN`, `+Inf`, `-Inf`.
pub fn format_go_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:e}` gives the same shortest digits as Go, as `d.ddde<exp>`.
    let sci = format!("{v:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        // Rust's `{}` is the shortest round-trip digits in positional form.
        return format!("{v}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'f', -1, 64)`, which `count_values` uses:
/// shortest round-trip digits, no exponent, `+Inf`/`-Inf`/`NaN` spelled Go's way.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Engine settings; the defaults are Prometheus's.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// `--query.lookback-delta` [ms]: how old a sample an instant selector still returns.
    pub lookback_ms: i64,
    /// Step of a subquery written without one (`x[5m:]`) [ms]: the global evaluation
    /// interval on a server, 1m in the promqltest framework.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_ms: 5 * 60 * 1000,
            default_subquery_step_ms: 60 * 1000,
        }
    }
}

/// Parses an expression.
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    register_removed_functions();
    promql_parser::parser::parse(expr).map_err(|message| PromqlError::Parse { message })
}

/// promql-parser follows Prometheus 3, which renamed `holt_winters` to
/// `double_exponential_smoothing`; 2.42 knows only the old name, so we teach it to the parser
/// (once per process: the parser's registry is global).
fn register_removed_functions() {
    use promql_parser::parser::Function;
    use promql_parser::parser::value::ValueType;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let holt_winters = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        // The only failure is a clash with a built-in name, which would mean the parser
        // has the function already; either way the name then parses.
        let _ = promql_parser::parser::function::register_extra_functions(vec![holt_winters]);
    });
}

/// The query engine over one store.
pub struct Engine<'s> {
    store: &'s Store,
    options: EngineOptions,
    /// Selector matches, reused across queries on this engine (the store is borrowed, so it
    /// cannot change underneath).
    selections: eval::SelectionCache,
}

impl<'s> Engine<'s> {
    pub fn new(store: &'s Store) -> Engine<'s> {
        Engine::with_options(store, EngineOptions::default())
    }

    pub fn with_options(store: &'s Store, options: EngineOptions) -> Engine<'s> {
        Engine {
            store,
            options,
            selections: eval::SelectionCache::default(),
        }
    }

    /// Parses and evaluates an instant query at `t_ms` (Unix milliseconds).
    pub fn eval_instant(&self, expr: &str, t_ms: i64) -> Result<Value, PromqlError> {
        self.eval_instant_expr(&parse(expr)?, t_ms)
    }

    /// Evaluates a parsed instant query at `t_ms`.
    pub fn eval_instant_expr(&self, expr: &Expr, t_ms: i64) -> Result<Value, PromqlError> {
        eval::Evaluator::new(self.store, self.options, t_ms, t_ms, &self.selections)
            .eval_top(expr, t_ms)
    }

    /// Parses and evaluates a range query: the expression at `start_ms`, `start_ms + step_ms`,
    /// ... up to `end_ms`. The result is a [`Value::Matrix`] ordered by label set.
    pub fn eval_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, PromqlError> {
        self.eval_range_expr(&parse(expr)?, start_ms, end_ms, step_ms)
    }

    /// Evaluates a parsed range query (see [`Engine::eval_range`]).
    pub fn eval_range_expr(
        &self,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, PromqlError> {
        if step_ms <= 0 {
            return Err(PromqlError::eval(
                "zero or negative query resolution step widths are not accepted",
            ));
        }
        if end_ms < start_ms {
            return Err(PromqlError::eval(
                "end timestamp must not be before start time",
            ));
        }
        eval::Evaluator::new(self.store, self.options, start_ms, end_ms, &self.selections)
            .eval_range(expr, step_ms)
    }
}

#[cfg(test)]
mod tests;
