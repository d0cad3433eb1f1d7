//! The evaluator: one instant at a time, recursively over the AST. A range query evaluates
//! every step as an instant; subqueries do the same over their own aligned steps.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use promql_parser::label::MatchOp;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    SubqueryExpr, VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::{EngineOptions, PromqlError, RangeSeries, Value, VectorSample, format_float};
use crate::telemetry::store::{self, Labels, METRIC_NAME, Sample, SeriesId, Store, is_stale_nan};

/// The time of one instant evaluation plus the query's bounds (what `@ start()` and
/// `@ end()` refer to, also inside subqueries).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub t_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One series of a range argument; the samples are borrowed from the store when possible.
pub(crate) struct Window<'s> {
    pub labels: Labels,
    pub labels_without_name: Labels,
    pub samples: Cow<'s, [Sample]>,
}

/// A fast, non-cryptographic hasher (the Fx hash of rustc) for the lookup tables of one
/// evaluation. They are never iterated, so the hash cannot reach any output.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FastBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FastMap<K, V> = HashMap<K, V, FastBuild>; // lookup only: never iterated into output
pub(crate) type FastSet<K> = HashSet<K, FastBuild>; // lookup only: never iterated into output

/// Series matched per selector node, keyed by the node's address and checked against a copy
/// of the selector on every hit (an address can be reused by another expression). Valid for
/// as long as the store is borrowed, since the store cannot change meanwhile.
#[derive(Default)]
pub(crate) struct SelectionCache {
    entries: RefCell<FastMap<usize, CachedSelection>>,
}

/// A selector as it was when matched, and the series it matched.
type CachedSelection = (VectorSelector, Arc<[SeriesId]>);

/// Most steps one subquery may take. Prometheus bounds the work through its sample limit
/// (50 M by default) and query timeout; the twin bounds the steps so that a typo such as
/// `x[1y:1ms]` fails fast with a message instead of running for hours.
const SUBQUERY_STEPS_MAX: i64 = 1_000_000;

/// Beyond this many cached selectors the cache starts over (a long-lived engine fed many
/// distinct expressions).
const SELECTION_CACHE_MAX: usize = 4096;

pub(crate) struct Evaluator<'s, 'c> {
    pub store: &'s Store,
    pub options: EngineOptions,
    start_ms: i64,
    end_ms: i64,
    selections: &'c SelectionCache,
    /// Above zero while evaluating over several steps (a range query, a subquery).
    multi_step_depth: Cell<u32>,
    /// For nodes that upstream checks as a whole matrix (range functions, unary minus): which
    /// input series produced each output label set, keyed by node address.
    outputs_by_node: RefCell<FastMap<(usize, Labels), Labels>>,
}

/// A duration in milliseconds, saturating (durations come from the query text).
fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => duration_ms(d).saturating_neg(),
    }
}

/// An `@` time (a parsed value, not a clock reading) in Unix milliseconds, saturating.
fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(before) => duration_ms(&before.duration()).saturating_neg(),
    }
}

/// Strips parentheses, as upstream's `unwrapParenExpr`.
pub(crate) fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

/// Fails when two elements share a label set (2.42 checks every operator's output).
pub(crate) fn check_unique(samples: &[VectorSample]) -> Result<(), PromqlError> {
    if samples.len() < 2 {
        return Ok(());
    }
    // Outputs of per-series operators over a selection usually stay in label-set order;
    // strictly increasing labels are unique without hashing.
    if samples.windows(2).all(|w| w[0].labels < w[1].labels) {
        return Ok(());
    }
    let mut seen = FastSet::with_capacity_and_hasher(samples.len(), FastBuild::default());
    for sample in samples {
        if !seen.insert(&sample.labels) {
            return Err(PromqlError::eval(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

impl<'s, 'c> Evaluator<'s, 'c> {
    pub fn new(
        store: &'s Store,
        options: EngineOptions,
        start_ms: i64,
        end_ms: i64,
        selections: &'c SelectionCache,
    ) -> Evaluator<'s, 'c> {
        Evaluator {
            store,
            options,
            start_ms,
            end_ms,
            selections,
            multi_step_depth: Cell::new(0),
            outputs_by_node: RefCell::new(FastMap::default()),
        }
    }

    /// Upstream evaluates range functions and unary minus over all steps at once and fails
    /// when two input series give the same output labels, even at different steps. Per step
    /// we see one instant, so over several steps we remember which input produced each
    /// output of the node and fail as upstream does.
    pub fn note_outputs<'a>(
        &self,
        node: usize,
        pairs: impl Iterator<Item = (&'a Labels, &'a Labels)>,
    ) -> Result<(), PromqlError> {
        if self.multi_step_depth.get() == 0 {
            return Ok(());
        }
        let mut seen = self.outputs_by_node.borrow_mut();
        for (output, input) in pairs {
            match seen.get(&(node, output.clone())) {
                Some(first) if first != input => {
                    return Err(PromqlError::eval(
                        "vector cannot contain metrics with the same labelset",
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert((node, output.clone()), input.clone());
                }
            }
        }
        Ok(())
    }

    fn ctx(&self, t_ms: i64) -> Ctx {
        Ctx {
            t_ms,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
        }
    }

    pub fn eval_top(&self, expr: &Expr, t_ms: i64) -> Result<Value, PromqlError> {
        self.eval(expr, &self.ctx(t_ms))
    }

    pub fn eval_range(&self, expr: &Expr, step_ms: i64) -> Result<Value, PromqlError> {
        self.multi_step_depth.set(self.multi_step_depth.get() + 1);
        let result = self.eval_range_steps(expr, step_ms);
        self.multi_step_depth.set(self.multi_step_depth.get() - 1);
        result
    }

    fn eval_range_steps(&self, expr: &Expr, step_ms: i64) -> Result<Value, PromqlError> {
        let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t_ms = self.start_ms;
        while t_ms <= self.end_ms {
            match self.eval(expr, &self.ctx(t_ms))? {
                Value::Scalar(value) => out
                    .entry(Labels::empty())
                    .or_default()
                    .push(Sample { t_ms, value }),
                Value::Vector(samples) => {
                    for s in samples {
                        out.entry(s.labels).or_default().push(Sample {
                            t_ms,
                            value: s.value,
                        });
                    }
                }
                other => {
                    return Err(PromqlError::eval(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )));
                }
            }
            let Some(next) = t_ms.checked_add(step_ms) else {
                break;
            };
            t_ms = next;
        }
        Ok(Value::Matrix(
            out.into_iter()
                .map(|(labels, samples)| RangeSeries { labels, samples })
                .collect(),
        ))
    }

    pub fn eval(&self, expr: &Expr, ctx: &Ctx) -> Result<Value, PromqlError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ctx),
            Expr::Unary(u) => match self.eval(&u.expr, ctx)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(samples) => {
                    let out: Vec<VectorSample> = samples
                        .iter()
                        .map(|s| VectorSample {
                            labels: s.labels.without_metric_name(),
                            value: -s.value,
                        })
                        .collect();
                    check_unique(&out)?;
                    self.note_outputs(
                        u as *const _ as usize,
                        out.iter()
                            .zip(&samples)
                            .map(|(o, i)| (&o.labels, &i.labels)),
                    )?;
                    Ok(Value::Vector(out))
                }
                other => Err(PromqlError::eval(format!(
                    "unary minus on a {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => {
                let selected = self.select_instant(vs, ctx)?;
                Ok(Value::Vector(
                    selected
                        .into_iter()
                        .map(|(labels, _, value)| VectorSample { labels, value })
                        .collect(),
                ))
            }
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.select_range(ms, ctx)?)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.eval_subquery(sq, ctx)?)),
            Expr::Binary(b) => self.eval_binary(b, ctx),
            Expr::Aggregate(a) => self.eval_aggregate(a, ctx),
            Expr::Call(c) => self.eval_call(c, ctx),
            Expr::Extension(_) => Err(PromqlError::unsupported("parser extension expressions")),
        }
    }

    pub fn eval_scalar(&self, expr: &Expr, ctx: &Ctx) -> Result<f64, PromqlError> {
        match self.eval(expr, ctx)? {
            Value::Scalar(v) => Ok(v),
            other => Err(PromqlError::eval(format!(
                "expected a scalar, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn eval_vector(&self, expr: &Expr, ctx: &Ctx) -> Result<Vec<VectorSample>, PromqlError> {
        match self.eval(expr, ctx)? {
            Value::Vector(v) => Ok(v),
            other => Err(PromqlError::eval(format!(
                "expected an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// The reference time of a selector or subquery: its `@` time (or the evaluation time)
    /// minus its offset.
    fn reference_ms(&self, at: &Option<AtModifier>, offset: &Option<Offset>, ctx: &Ctx) -> i64 {
        let base = match at {
            None => ctx.t_ms,
            Some(AtModifier::Start) => ctx.start_ms,
            Some(AtModifier::End) => ctx.end_ms,
            Some(AtModifier::At(t)) => system_time_ms(t),
        };
        base.saturating_sub(offset_ms(offset))
    }

    /// The series a selector matches, in label-set order (memoised per node).
    fn selection(&self, vs: &VectorSelector) -> Result<Arc<[SeriesId]>, PromqlError> {
        let key = vs as *const VectorSelector as usize;
        if let Some((cached, ids)) = self.selections.entries.borrow().get(&key)
            && cached == vs
        {
            return Ok(ids.clone());
        }
        if !vs.matchers.or_matchers.is_empty() {
            return Err(PromqlError::unsupported(
                "`or` inside label matchers (not in Prometheus 2.42)",
            ));
        }
        let mut matchers: Vec<store::Matcher> = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            matchers.push(store::Matcher::equal(METRIC_NAME, name));
        }
        for m in &vs.matchers.matchers {
            let kind = match &m.op {
                MatchOp::Equal => store::MatchKind::Equal(m.value.clone()),
                MatchOp::NotEqual => store::MatchKind::NotEqual(m.value.clone()),
                MatchOp::Re(re) => store::MatchKind::Regex(re.clone()),
                MatchOp::NotRe(re) => store::MatchKind::NotRegex(re.clone()),
            };
            matchers.push(store::Matcher {
                name: m.name.clone(),
                kind,
            });
        }
        let ids = self.store.select_shared(&matchers);
        let mut entries = self.selections.entries.borrow_mut();
        if entries.len() >= SELECTION_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (vs.clone(), ids.clone()));
        Ok(ids)
    }

    /// Instant selection: per series the newest sample at or before the reference time, if
    /// it is within the lookback (a sample exactly `lookback` old counts, 2.42) and not a
    /// stale marker. Returns (labels, sample time, value).
    pub fn select_instant(
        &self,
        vs: &VectorSelector,
        ctx: &Ctx,
    ) -> Result<Vec<(Labels, i64, f64)>, PromqlError> {
        let ids = self.selection(vs)?;
        let ref_ms = self.reference_ms(&vs.at, &vs.offset, ctx);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            let series = self.store.series(*id);
            if let Some(sample) = series.latest_at_or_before(ref_ms)
                && sample.t_ms >= ref_ms.saturating_sub(self.options.lookback_ms)
                && !is_stale_nan(sample.value)
            {
                out.push((series.labels.clone(), sample.t_ms, sample.value));
            }
        }
        Ok(out)
    }

    /// Range selection: the samples in `[ref - range, ref]`, stale markers dropped; series
    /// with no sample left are omitted.
    pub fn select_range(
        &self,
        ms: &MatrixSelector,
        ctx: &Ctx,
    ) -> Result<Vec<RangeSeries>, PromqlError> {
        Ok(self
            .select_windows(ms, ctx)?
            .into_iter()
            .map(|w| RangeSeries {
                labels: w.labels,
                samples: w.samples.into_owned(),
            })
            .collect())
    }

    /// [`Evaluator::select_range`] borrowing the samples from the store where the window
    /// holds no stale marker (the common case), so range functions copy nothing.
    pub fn select_windows(
        &self,
        ms: &MatrixSelector,
        ctx: &Ctx,
    ) -> Result<Vec<Window<'s>>, PromqlError> {
        let ids = self.selection(&ms.vs)?;
        let ref_ms = self.reference_ms(&ms.vs.at, &ms.vs.offset, ctx);
        let from_ms = ref_ms.saturating_sub(duration_ms(&ms.range));
        let store: &'s Store = self.store;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            let series = store.series(*id);
            let slice = series.samples_between(from_ms, ref_ms);
            let samples: Cow<'s, [Sample]> = if slice.iter().any(|s| is_stale_nan(s.value)) {
                Cow::Owned(
                    slice
                        .iter()
                        .copied()
                        .filter(|s| !is_stale_nan(s.value))
                        .collect(),
                )
            } else {
                Cow::Borrowed(slice)
            };
            if !samples.is_empty() {
                out.push(Window {
                    labels: series.labels.clone(),
                    labels_without_name: series.labels_without_metric_name().clone(),
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// The window `[from, to]` a range argument covers at this instant.
    pub fn range_window(&self, expr: &Expr, ctx: &Ctx) -> Option<(i64, i64)> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                let to = self.reference_ms(&ms.vs.at, &ms.vs.offset, ctx);
                Some((to.saturating_sub(duration_ms(&ms.range)), to))
            }
            Expr::Subquery(sq) => {
                let to = self.reference_ms(&sq.at, &sq.offset, ctx);
                Some((to.saturating_sub(duration_ms(&sq.range)), to))
            }
            _ => None,
        }
    }

    /// A subquery: the inner expression at every multiple of the step inside
    /// `[ref - range, ref]`, gathered per label set.
    pub fn eval_subquery(
        &self,
        sq: &SubqueryExpr,
        ctx: &Ctx,
    ) -> Result<Vec<RangeSeries>, PromqlError> {
        let ref_ms = self.reference_ms(&sq.at, &sq.offset, ctx);
        let range_ms = duration_ms(&sq.range);
        let step_ms = match &sq.step {
            Some(step) => duration_ms(step),
            None => self.options.default_subquery_step_ms,
        };
        if step_ms <= 0 {
            return Err(PromqlError::eval("subquery step must be positive"));
        }
        let from_ms = ref_ms.saturating_sub(range_ms);
        if (ref_ms - from_ms) / step_ms > SUBQUERY_STEPS_MAX {
            return Err(PromqlError::eval(format!(
                "subquery would evaluate {} steps, more than the twin's limit of {SUBQUERY_STEPS_MAX}",
                (ref_ms - from_ms) / step_ms
            )));
        }
        // Go's integer division truncates toward zero; so does Rust's, which keeps the
        // alignment identical for negative times too.
        let mut t_ms = step_ms * (from_ms / step_ms);
        if t_ms < from_ms {
            t_ms = t_ms.saturating_add(step_ms);
        }
        self.multi_step_depth.set(self.multi_step_depth.get() + 1);
        let result = self.subquery_steps(sq, ctx, t_ms, ref_ms, step_ms);
        self.multi_step_depth.set(self.multi_step_depth.get() - 1);
        result
    }

    fn subquery_steps(
        &self,
        sq: &SubqueryExpr,
        ctx: &Ctx,
        mut t_ms: i64,
        ref_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RangeSeries>, PromqlError> {
        let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        while t_ms <= ref_ms {
            let inner = Ctx { t_ms, ..*ctx };
            match self.eval(&sq.expr, &inner)? {
                Value::Scalar(value) => out
                    .entry(Labels::empty())
                    .or_default()
                    .push(Sample { t_ms, value }),
                Value::Vector(samples) => {
                    for s in samples {
                        out.entry(s.labels).or_default().push(Sample {
                            t_ms,
                            value: s.value,
                        });
                    }
                }
                other => {
                    return Err(PromqlError::eval(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )));
                }
            }
            let Some(next) = t_ms.checked_add(step_ms) else {
                break;
            };
            t_ms = next;
        }
        Ok(out
            .into_iter()
            .map(|(labels, samples)| RangeSeries { labels, samples })
            .collect())
    }

    /// The range series of a function's matrix argument.
    pub fn eval_range_arg(&self, expr: &Expr, ctx: &Ctx) -> Result<Vec<Window<'s>>, PromqlError> {
        let owned = |m: Vec<RangeSeries>| {
            m.into_iter()
                .map(|s| Window {
                    labels_without_name: s.labels.without_metric_name(),
                    labels: s.labels,
                    samples: Cow::Owned(s.samples),
                })
                .collect()
        };
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => self.select_windows(ms, ctx),
            Expr::Subquery(sq) => Ok(owned(self.eval_subquery(sq, ctx)?)),
            other => match self.eval(other, ctx)? {
                Value::Matrix(m) => Ok(owned(m)),
                v => Err(PromqlError::eval(format!(
                    "expected a range vector, got {}",
                    v.type_name()
                ))),
            },
        }
    }

    fn eval_call(&self, call: &Call, ctx: &Ctx) -> Result<Value, PromqlError> {
        functions::call(self, call.func.name, &call.args.args, ctx)
    }

    // ---------------------------------------------------------------------------------------
    // Binary operators

    fn eval_binary(&self, b: &BinaryExpr, ctx: &Ctx) -> Result<Value, PromqlError> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, ctx)?;
        let rhs = self.eval(&b.rhs, ctx)?;
        let out = match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                return Ok(Value::Scalar(scalar_binop(op, l, r)?));
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                vector_scalar_binop(op, v, s, false, return_bool)?
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                vector_scalar_binop(op, v, s, true, return_bool)?
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let (on, names): (bool, Vec<String>) =
                    match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                        Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                        Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                        None => (false, Vec::new()),
                    };
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| &m.card)
                    .unwrap_or(&VectorMatchCardinality::OneToOne);
                if b.modifier
                    .as_ref()
                    .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
                {
                    return Err(PromqlError::unsupported(
                        "fill modifiers (not in Prometheus 2.42)",
                    ));
                }
                let matching = Matching { on, names };
                match op {
                    token::T_LAND => vector_and(l, r, &matching),
                    token::T_LOR => vector_or(l, r, &matching),
                    token::T_LUNLESS => vector_unless(l, r, &matching),
                    _ => vector_binop(op, l, r, &matching, card, return_bool)?,
                }
            }
            (l, r) => {
                return Err(PromqlError::eval(format!(
                    "binary operator between {} and {} is not allowed",
                    l.type_name(),
                    r.type_name()
                )));
            }
        };
        check_unique(&out)?;
        Ok(Value::Vector(out))
    }

    // ---------------------------------------------------------------------------------------
    // Aggregations

    fn eval_aggregate(&self, a: &AggregateExpr, ctx: &Ctx) -> Result<Value, PromqlError> {
        let op = a.op.id();
        let (without, grouping): (bool, Vec<String>) = match &a.modifier {
            Some(LabelModifier::Include(ls)) => (false, ls.labels.clone()),
            Some(LabelModifier::Exclude(ls)) => (true, ls.labels.clone()),
            None => (false, Vec::new()),
        };
        let param = match &a.param {
            None => Param::None,
            Some(p) => match self.eval(p, ctx)? {
                Value::Scalar(v) => Param::Number(v),
                Value::String(s) => Param::Text(s),
                other => {
                    return Err(PromqlError::eval(format!(
                        "aggregation parameter must be a scalar or string, got {}",
                        other.type_name()
                    )));
                }
            },
        };
        let input = self.eval_vector(&a.expr, ctx)?;
        let out = aggregate(op, &grouping, without, param, input)?;
        Ok(Value::Vector(out))
    }
}

/// The parameter of an aggregation: `topk(k, ..)`, `quantile(q, ..)`, `count_values("l", ..)`.
pub(crate) enum Param {
    None,
    Number(f64),
    Text(String),
}

/// Vector matching of a binary operator: `on(names)` (`on` true) or `ignoring(names)`.
pub(crate) struct Matching {
    on: bool,
    names: Vec<String>,
}

impl Matching {
    /// The join key of a series: the `on` labels, or everything but `__name__` and the
    /// `ignoring` labels.
    fn signature(&self, labels: &Labels) -> Labels {
        if self.on {
            labels.keep(&self.names)
        } else {
            labels.without_metric_name().remove(&self.names)
        }
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// Arithmetic drops the metric name; comparisons keep it (shouldDropMetricName).
fn drops_metric_name(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_POW | token::T_MOD
    )
}

fn bool_to_float(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Go's `math.Mod` and Rust's `%` are both C's `fmod`.
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), PromqlError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (functions::go_pow(l, r), true),
        token::T_MOD => (l % r, true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        other => {
            return Err(PromqlError::unsupported(format!(
                "binary operator {}",
                promql_parser::parser::token::TokenType::new(other)
            )));
        }
    })
}

fn scalar_binop(op: TokenId, l: f64, r: f64) -> Result<f64, PromqlError> {
    let (value, keep) = elem_binop(op, l, r)?;
    Ok(if is_comparison(op) {
        bool_to_float(keep)
    } else {
        value
    })
}

fn vector_scalar_binop(
    op: TokenId,
    vector: Vec<VectorSample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<VectorSample>, PromqlError> {
    let mut out = Vec::with_capacity(vector.len());
    for mut sample in vector {
        let (l, r) = if swap {
            (scalar, sample.value)
        } else {
            (sample.value, scalar)
        };
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        // With the scalar on the left a comparison still yields the vector's value.
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = bool_to_float(keep);
            keep = true;
        }
        if keep {
            sample.value = value;
            if drops_metric_name(op) || return_bool {
                sample.labels = sample.labels.without_metric_name();
            }
            out.push(sample);
        }
    }
    Ok(out)
}

fn vector_and(lhs: Vec<VectorSample>, rhs: Vec<VectorSample>, m: &Matching) -> Vec<VectorSample> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: FastSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&m.signature(&s.labels)))
        .collect()
}

fn vector_or(lhs: Vec<VectorSample>, rhs: Vec<VectorSample>, m: &Matching) -> Vec<VectorSample> {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let left: FastSet<Labels> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&m.signature(&s.labels))),
    );
    out
}

fn vector_unless(
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    m: &Matching,
) -> Vec<VectorSample> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let right: FastSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !right.contains(&m.signature(&s.labels)))
        .collect()
}

/// Vector/vector arithmetic and comparison (`VectorBinop` of 2.42).
fn vector_binop(
    op: TokenId,
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    m: &Matching,
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Result<Vec<VectorSample>, PromqlError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let (one_to_many, include): (bool, &[String]) = match card {
        VectorMatchCardinality::OneToOne => (false, &[]),
        VectorMatchCardinality::ManyToOne(ls) => (false, &ls.labels),
        VectorMatchCardinality::OneToMany(ls) => (true, &ls.labels),
        VectorMatchCardinality::ManyToMany => {
            return Err(PromqlError::eval(
                "many-to-many only allowed for set operators",
            ));
        }
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // For one-to-many swap sides so that `rhs` is always the "one" side.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: FastMap<Labels, &VectorSample> =
        FastMap::with_capacity_and_hasher(one.len(), FastBuild::default());
    for sample in &one {
        let sig = m.signature(&sample.labels);
        if let Some(dup) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(PromqlError::eval(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                sig, sample.labels, dup.labels
            )));
        }
        one_by_sig.insert(sig, sample);
    }
    let mut matched: FastMap<Labels, FastSet<Labels>> = FastMap::default();
    let mut out = Vec::new();
    for sample in &many {
        let sig = m.signature(&sample.labels);
        let Some(partner) = one_by_sig.get(&sig) else {
            continue;
        };
        let (vl, vr) = if one_to_many {
            (partner.value, sample.value)
        } else {
            (sample.value, partner.value)
        };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = bool_to_float(keep);
        } else if !keep {
            continue;
        }
        let mut labels = result_labels(&sample.labels, &partner.labels, op, m, one_to_one, include);
        if return_bool {
            labels = labels.without_metric_name();
        }
        if one_to_one {
            if matched.contains_key(&sig) {
                return Err(PromqlError::eval(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            matched.insert(sig, FastSet::default());
        } else {
            let inserted = matched.entry(sig).or_default();
            if !inserted.insert(labels.clone()) {
                return Err(PromqlError::eval(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        out.push(VectorSample { labels, value });
    }
    Ok(out)
}

/// The labels of a vector/vector result (`resultMetric` of 2.42).
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: TokenId,
    m: &Matching,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut labels = if drops_metric_name(op) {
        many.without_metric_name()
    } else {
        many.clone()
    };
    if one_to_one {
        labels = if m.on {
            labels.keep(&m.names)
        } else {
            labels.remove(&m.names)
        };
    }
    for name in include {
        labels = labels.with(name, one.get_or_empty(name));
    }
    labels
}

// -------------------------------------------------------------------------------------------
// Aggregation (`aggregation` of 2.42)

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: usize,
    heap: Vec<VectorSample>,
}

/// Go's `container/heap` over a slice with a `less` order, so that ties come out of
/// `topk`/`bottomk` in the same order as upstream's.
pub(crate) mod go_heap {
    use super::VectorSample;

    pub fn up(
        h: &mut [VectorSample],
        mut j: usize,
        less: fn(&VectorSample, &VectorSample) -> bool,
    ) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !less(&h[j], &h[i]) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    }

    pub fn down(
        h: &mut [VectorSample],
        i0: usize,
        n: usize,
        less: fn(&VectorSample, &VectorSample) -> bool,
    ) {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && less(&h[j2], &h[j1]) {
                j = j2;
            }
            if !less(&h[j], &h[i]) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
    }

    pub fn push(
        h: &mut Vec<VectorSample>,
        x: VectorSample,
        less: fn(&VectorSample, &VectorSample) -> bool,
    ) {
        h.push(x);
        let n = h.len();
        up(h, n - 1, less);
    }

    pub fn pop(h: &mut Vec<VectorSample>, less: fn(&VectorSample, &VectorSample) -> bool) {
        let n = h.len() - 1;
        h.swap(0, n);
        down(h, 0, n, less);
        h.pop();
    }

    /// Go's `sort.Sort` on at most 12 elements is an insertion sort; we use it for every
    /// size (the results only differ in the order of equal values beyond 12 elements).
    pub fn insertion_sort(
        v: &mut [VectorSample],
        less: impl Fn(&VectorSample, &VectorSample) -> bool,
    ) {
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && less(&v[j], &v[j - 1]) {
                v.swap(j, j - 1);
                j -= 1;
            }
        }
    }
}

/// `vectorByValueHeap.Less`: NaN sorts first.
pub(crate) fn by_value_less(a: &VectorSample, b: &VectorSample) -> bool {
    a.value.is_nan() || a.value < b.value
}

/// `vectorByReverseValueHeap.Less`.
pub(crate) fn by_reverse_value_less(a: &VectorSample, b: &VectorSample) -> bool {
    a.value.is_nan() || a.value > b.value
}

fn aggregate(
    op: TokenId,
    grouping: &[String],
    without: bool,
    param: Param,
    input: Vec<VectorSample>,
) -> Result<Vec<VectorSample>, PromqlError> {
    let mut k: usize = 0;
    if matches!(op, token::T_TOPK | token::T_BOTTOMK) {
        let Param::Number(f) = param else {
            return Err(PromqlError::eval("topk/bottomk need a scalar parameter"));
        };
        // convertibleToInt64: NaN and out-of-range values are errors.
        if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&f) {
            return Err(PromqlError::eval(format!(
                "Scalar value {} overflows int64",
                format_float(f)
            )));
        }
        let k_i64 = f as i64;
        if k_i64 < 1 {
            return Ok(Vec::new());
        }
        k = usize::try_from(k_i64).unwrap_or(usize::MAX);
    }
    let mut q = 0.0;
    if op == token::T_QUANTILE {
        let Param::Number(f) = param else {
            return Err(PromqlError::eval("quantile needs a scalar parameter"));
        };
        q = f;
    }
    let mut value_label = String::new();
    let mut grouping: Vec<String> = grouping.to_vec();
    if op == token::T_COUNT_VALUES {
        let Param::Text(label) = &param else {
            return Err(PromqlError::eval("count_values needs a string parameter"));
        };
        if !store::is_valid_label_name(label) {
            return Err(PromqlError::eval(format!("invalid label name {label:?}")));
        }
        value_label = label.clone();
        if !without {
            grouping.push(value_label.clone());
        }
    } else if !matches!(
        op,
        token::T_SUM
            | token::T_AVG
            | token::T_COUNT
            | token::T_MIN
            | token::T_MAX
            | token::T_GROUP
            | token::T_STDDEV
            | token::T_STDVAR
            | token::T_TOPK
            | token::T_BOTTOMK
            | token::T_QUANTILE
    ) {
        return Err(PromqlError::unsupported(format!(
            "aggregation {} (not in Prometheus 2.42)",
            promql_parser::parser::token::TokenType::new(op)
        )));
    }

    let mut groups: IndexMap<Labels, Group, FastBuild> = IndexMap::default();
    for sample in input {
        let metric = if op == token::T_COUNT_VALUES {
            sample
                .labels
                .with(&value_label, &format_float(sample.value))
        } else {
            sample.labels.clone()
        };
        let key = if without {
            let mut names = grouping.clone();
            names.push(METRIC_NAME.to_string());
            metric.remove(&names)
        } else if !grouping.is_empty() {
            metric.keep(&grouping)
        } else {
            Labels::empty()
        };
        let Some(group) = groups.get_mut(&key) else {
            let mut group = Group {
                labels: key.clone(),
                value: sample.value,
                mean: sample.value,
                count: 1,
                heap: Vec::new(),
            };
            match op {
                token::T_STDDEV | token::T_STDVAR => group.value = 0.0,
                token::T_TOPK | token::T_BOTTOMK | token::T_QUANTILE => group.heap.push(sample),
                token::T_GROUP => group.value = 1.0,
                _ => {}
            }
            groups.insert(key, group);
            continue;
        };
        let v = sample.value;
        match op {
            token::T_SUM => group.value += v,
            token::T_AVG => {
                group.count += 1;
                if group.mean.is_infinite() {
                    if v.is_infinite() && (group.mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                let n = group.count as f64;
                group.mean += v / n - group.mean / n;
            }
            token::T_GROUP => {}
            token::T_MAX if (group.value < v || group.value.is_nan()) => {
                group.value = v;
            }
            token::T_MIN if (group.value > v || group.value.is_nan()) => {
                group.value = v;
            }
            token::T_COUNT | token::T_COUNT_VALUES => group.count += 1,
            token::T_STDDEV | token::T_STDVAR => {
                group.count += 1;
                let delta = v - group.mean;
                group.mean += delta / group.count as f64;
                group.value += delta * (v - group.mean);
            }
            token::T_TOPK => {
                let heap = &mut group.heap;
                if heap.len() < k || heap[0].value < v || heap[0].value.is_nan() {
                    if heap.len() == k {
                        if k == 1 {
                            heap[0] = sample;
                            continue;
                        }
                        go_heap::pop(heap, by_value_less);
                    }
                    go_heap::push(heap, sample, by_value_less);
                }
            }
            token::T_BOTTOMK => {
                let heap = &mut group.heap;
                if heap.len() < k || heap[0].value > v || heap[0].value.is_nan() {
                    if heap.len() == k {
                        if k == 1 {
                            heap[0] = sample;
                            continue;
                        }
                        go_heap::pop(heap, by_reverse_value_less);
                    }
                    go_heap::push(heap, sample, by_reverse_value_less);
                }
            }
            token::T_QUANTILE => group.heap.push(sample),
            _ => {}
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for (_, mut group) in groups {
        let value = match op {
            token::T_AVG => group.mean,
            token::T_COUNT | token::T_COUNT_VALUES => group.count as f64,
            token::T_STDVAR => group.value / group.count as f64,
            token::T_STDDEV => (group.value / group.count as f64).sqrt(),
            token::T_TOPK => {
                // sort.Reverse of the min-heap: largest first.
                go_heap::insertion_sort(&mut group.heap, |a, b| by_value_less(b, a));
                out.extend(group.heap);
                continue;
            }
            token::T_BOTTOMK => {
                go_heap::insertion_sort(&mut group.heap, |a, b| by_reverse_value_less(b, a));
                out.extend(group.heap);
                continue;
            }
            token::T_QUANTILE => {
                let mut values: Vec<f64> = group.heap.iter().map(|s| s.value).collect();
                functions::quantile(q, &mut values)
            }
            _ => group.value,
        };
        out.push(VectorSample {
            labels: group.labels,
            value,
        });
    }
    Ok(out)
}
