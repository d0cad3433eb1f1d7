//! The function library of Prometheus 2.42 (`promql/functions.go`, `promql/quantile.go`) over
//! float samples, and the Go float semantics it depends on (`math.Max`/`math.Min` with NaN
//! and infinities, Kahan-compensated sums in `*_over_time`).

use indexmap::IndexMap;
use promql_parser::parser::Expr;

use super::eval::{Ctx, Evaluator, FastBuild, Window, check_unique, go_heap, unwrap_parens};
use super::{PromqlError, Value, VectorSample};
use crate::telemetry::store::{self, Labels, METRIC_NAME, Sample};

/// Go's `math.Max`: +Inf wins over NaN, NaN over everything else, +0 over -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over everything else, -0 over +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// Go's `math.Frexp`: `x = frac * 2^exp` with `frac` in [0.5, 1); zero, infinities and NaN
/// come back unchanged with exponent 0.
fn go_frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || x.is_infinite() || x.is_nan() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        // Normalise a subnormal first.
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Go's `math.Log` (the FreeBSD `e_log.c` algorithm Go implements), which can differ from
/// C's `log` in the last bit; `ln`, `log2` and `log10` go through it, as in Go.
// The constants are written as in Go's source (and FreeBSD's), digits beyond f64 included.
#[allow(clippy::excessive_precision)]
pub(crate) fn go_log(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = go_frexp(x);
    if f1 < std::f64::consts::SQRT_2 / 2.0 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = ki as f64;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log2`, which is exact for powers of two and otherwise goes through `Log`.
pub(crate) fn go_log2(x: f64) -> f64 {
    let (frac, exp) = go_frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    // Go folds `1/Ln2` exactly at compile time: the correctly rounded log2(e).
    go_log(frac) * std::f64::consts::LOG2_E + exp as f64
}

/// Go's `math.Log10`: `Log(x) * (1/Ln10)`, which can differ from C's `log10` in the last
/// bit (log10(20) is 1.301029995663981 in Go, 1.3010299956639813 in C).
pub(crate) fn go_log10(x: f64) -> f64 {
    // Go folds `1/Ln10` exactly at compile time: the correctly rounded log10(e).
    go_log(x) * std::f64::consts::LOG10_E
}

/// Go's `math.Pow` agrees with C's `pow` on the special cases PromQL reaches.
pub(crate) fn go_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// `quantile` of 2.42 (aggregation and `quantile_over_time`): linear interpolation between
/// the closest ranks, NaN sorting first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = go_max(0.0, rank.floor());
    let upper = go_min(n - 1.0, lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// One classic histogram bucket: upper bound and cumulative count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// `bucketQuantile` of 2.42 (spec/prometheus.md §9).
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce equal bounds (e.g. le="1" and le="1.0").
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    // Monotonicity fix, exact comparison as in 2.42.
    let mut max = merged[0].count;
    for b in merged.iter_mut().skip(1) {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n_search = merged.len() - 1;
    let b = merged[..n_search].partition_point(|bucket| bucket.count < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].upper_bound;
    }
    if b == 0 && merged[0].upper_bound <= 0.0 {
        return merged[0].upper_bound;
    }
    let bucket_end = merged[b].upper_bound;
    let mut count = merged[b].count;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = merged[b - 1].upper_bound;
        count -= merged[b - 1].count;
        rank -= merged[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// `extrapolatedRate` of 2.42: `rate`, `increase` and `delta` with the zero clamp applied
/// before the extrapolation threshold test (spec/prometheus.md §6.1).
pub(crate) fn extrapolated_rate(
    samples: &[Sample],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.value - first.value;
    if is_counter {
        let mut prev = first.value;
        for s in &samples[1..] {
            if s.value < prev {
                result += prev;
            }
            prev = s.value;
        }
    }
    let mut to_start = (first.t_ms - range_start_ms) as f64 / 1000.0;
    let to_end = (range_end_ms - last.t_ms) as f64 / 1000.0;
    let sampled = (last.t_ms - first.t_ms) as f64 / 1000.0;
    let avg = sampled / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut extrapolate_to = sampled;
    extrapolate_to += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    extrapolate_to += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    let mut factor = extrapolate_to / sampled;
    if is_rate {
        factor /= (range_end_ms - range_start_ms) as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(samples: &[Sample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let last = samples[samples.len() - 1];
    let prev = samples[samples.len() - 2];
    let mut result = if is_rate && last.value < prev.value {
        last.value
    } else {
        last.value - prev.value
    };
    let interval_ms = last.t_ms - prev.t_ms;
    if interval_ms == 0 {
        return None;
    }
    if is_rate {
        result /= interval_ms as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit with Kahan sums (`linearRegression` of 2.42); x in seconds from
/// `intercept_ms`.
fn linear_regression(samples: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = samples[0].value;
    let mut const_y = true;
    for (i, s) in samples.iter().enumerate() {
        if const_y && i > 0 && s.value != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t_ms - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(s.value, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * s.value, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn holt_winters(samples: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (mut s0, mut s1, mut b) = (0.0, samples[0].value, samples[1].value - samples[0].value);
    for (i, s) in samples.iter().enumerate().skip(1) {
        let x = sf * s.value;
        // calcTrendValue(i-1, ...): the first trend is the initial difference.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

fn over_time(name: &str, samples: &[Sample], q: f64) -> f64 {
    match name {
        "avg_over_time" => {
            let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
            for s in samples {
                count += 1.0;
                if mean.is_infinite() {
                    if s.value.is_infinite() && (mean > 0.0) == (s.value > 0.0) {
                        continue;
                    }
                    if !s.value.is_infinite() && !s.value.is_nan() {
                        continue;
                    }
                }
                (mean, c) = kahan_inc(s.value / count - mean / count, mean, c);
            }
            if mean.is_infinite() { mean } else { mean + c }
        }
        "count_over_time" => samples.len() as f64,
        "max_over_time" => {
            let mut max = samples[0].value;
            for s in samples {
                if s.value > max || max.is_nan() {
                    max = s.value;
                }
            }
            max
        }
        "min_over_time" => {
            let mut min = samples[0].value;
            for s in samples {
                if s.value < min || min.is_nan() {
                    min = s.value;
                }
            }
            min
        }
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0f64, 0.0);
            for s in samples {
                (sum, c) = kahan_inc(s.value, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for s in samples {
                count += 1.0;
                let delta = s.value - (mean + c_mean);
                (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
                (aux, c_aux) = kahan_inc(delta * (s.value - (mean + c_mean)), aux, c_aux);
            }
            let var = (aux + c_aux) / count;
            if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            }
        }
        "quantile_over_time" => {
            let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
            quantile(q, &mut values)
        }
        "present_over_time" => 1.0,
        "last_over_time" => samples[samples.len() - 1].value,
        "resets" => {
            let mut resets = 0;
            for w in samples.windows(2) {
                if w[1].value < w[0].value {
                    resets += 1;
                }
            }
            resets as f64
        }
        "changes" => {
            let mut changes = 0;
            for w in samples.windows(2) {
                if w[1].value != w[0].value && !(w[1].value.is_nan() && w[0].value.is_nan()) {
                    changes += 1;
                }
            }
            changes as f64
        }
        _ => f64::NAN,
    }
}

/// Labels for `absent`/`absent_over_time`: the selector's equality matchers, except
/// `__name__`; a label named twice, or also by another matcher, is dropped.
fn absent_labels(expr: &Expr) -> Labels {
    let vs = match unwrap_parens(expr) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut out: IndexMap<String, Option<String>> = IndexMap::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let is_equal = matches!(m.op, promql_parser::label::MatchOp::Equal);
        if is_equal && !out.contains_key(&m.name) {
            out.insert(m.name.clone(), Some(m.value.clone()));
        } else {
            out.insert(m.name.clone(), None);
        }
    }
    Labels::from_pairs(out.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
}

fn string_arg(expr: &Expr) -> Result<&str, PromqlError> {
    match unwrap_parens(expr) {
        Expr::StringLiteral(s) => Ok(&s.val),
        _ => Err(PromqlError::eval("expected a string literal argument")),
    }
}

fn simple(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => go_log,
        "log2" => go_log2,
        "log10" => go_log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Civil date of a Unix time in seconds (UTC), as Go's `time.Unix(s, 0).UTC()`.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
    year_day: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    let year_day = (days - days_from_civil(year, 1, 1) + 1) as u32;
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: ((rem % 3600) / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        year_day,
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn date_part(name: &str, secs: i64) -> f64 {
    let c = civil(secs);
    match name {
        "year" => c.year as f64,
        "month" => c.month as f64,
        "day_of_month" => c.day as f64,
        "day_of_week" => c.weekday as f64,
        "day_of_year" => c.year_day as f64,
        "hour" => c.hour as f64,
        "minute" => c.minute as f64,
        _ => match c.month {
            2 if is_leap(c.year) => 29.0,
            2 => 28.0,
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
    }
}

/// Go's `int64(f)` conversion of a float (truncation; out-of-range values saturate here,
/// where Go's result is platform-defined).
fn go_int64(f: f64) -> i64 {
    if f.is_nan() { i64::MIN } else { f as i64 }
}

const MATRIX_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "resets",
    "changes",
    "deriv",
    "predict_linear",
    "holt_winters",
    "avg_over_time",
    "count_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
];

/// Evaluates a function call.
pub(crate) fn call(
    ev: &Evaluator<'_, '_>,
    name: &str,
    args: &[Box<Expr>],
    ctx: &Ctx,
) -> Result<Value, PromqlError> {
    if MATRIX_FUNCTIONS.contains(&name) {
        return call_matrix(ev, name, args, ctx);
    }
    let arg = |i: usize| -> Result<&Expr, PromqlError> {
        args.get(i)
            .map(|b| b.as_ref())
            .ok_or_else(|| PromqlError::eval(format!("{name}: missing argument {}", i + 1)))
    };
    if let Some(f) = simple(name) {
        let input = ev.eval_vector(arg(0)?, ctx)?;
        let out: Vec<VectorSample> = input
            .into_iter()
            .map(|s| VectorSample {
                labels: s.labels.without_metric_name(),
                value: f(s.value),
            })
            .collect();
        check_unique(&out)?;
        return Ok(Value::Vector(out));
    }
    let out: Vec<VectorSample> = match name {
        "time" => return Ok(Value::Scalar(ctx.t_ms as f64 / 1000.0)),
        "pi" => return Ok(Value::Scalar(std::f64::consts::PI)),
        "scalar" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            return Ok(Value::Scalar(if input.len() == 1 {
                input[0].value
            } else {
                f64::NAN
            }));
        }
        "vector" => vec![VectorSample {
            labels: Labels::empty(),
            value: ev.eval_scalar(arg(0)?, ctx)?,
        }],
        "timestamp" => match unwrap_parens(arg(0)?) {
            Expr::VectorSelector(vs) => ev
                .select_instant(vs, ctx)?
                .into_iter()
                .map(|(labels, t_ms, _)| VectorSample {
                    labels: labels.without_metric_name(),
                    value: t_ms as f64 / 1000.0,
                })
                .collect(),
            other => ev
                .eval_vector(other, ctx)?
                .into_iter()
                .map(|s| VectorSample {
                    labels: s.labels.without_metric_name(),
                    value: ctx.t_ms as f64 / 1000.0,
                })
                .collect(),
        },
        "absent" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            if input.is_empty() {
                vec![VectorSample {
                    labels: absent_labels(arg(0)?),
                    value: 1.0,
                }]
            } else {
                Vec::new()
            }
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            let (min, max) = match name {
                "clamp" => (ev.eval_scalar(arg(1)?, ctx)?, ev.eval_scalar(arg(2)?, ctx)?),
                "clamp_min" => (ev.eval_scalar(arg(1)?, ctx)?, f64::NAN),
                _ => (f64::NAN, ev.eval_scalar(arg(1)?, ctx)?),
            };
            if name == "clamp" && max < min {
                return Ok(Value::Vector(Vec::new()));
            }
            input
                .into_iter()
                .map(|s| {
                    let value = match name {
                        "clamp" => go_max(min, go_min(max, s.value)),
                        "clamp_min" => go_max(min, s.value),
                        _ => go_min(max, s.value),
                    };
                    VectorSample {
                        labels: s.labels.without_metric_name(),
                        value,
                    }
                })
                .collect()
        }
        "round" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            let to_nearest = if args.len() >= 2 {
                ev.eval_scalar(arg(1)?, ctx)?
            } else {
                1.0
            };
            let inverse = 1.0 / to_nearest;
            input
                .into_iter()
                .map(|s| VectorSample {
                    labels: s.labels.without_metric_name(),
                    value: (s.value * inverse + 0.5).floor() / inverse,
                })
                .collect()
        }
        "sort" | "sort_desc" => {
            let mut input = ev.eval_vector(arg(0)?, ctx)?;
            // sort.Sort(sort.Reverse(heap)): Less(i, j) becomes the heap's Less(j, i).
            if name == "sort" {
                go_heap::insertion_sort(&mut input, |a, b| {
                    super::eval::by_reverse_value_less(b, a)
                });
            } else {
                go_heap::insertion_sort(&mut input, |a, b| super::eval::by_value_less(b, a));
            }
            return Ok(Value::Vector(input));
        }
        "label_replace" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            let dst = string_arg(arg(1)?)?;
            let replacement = string_arg(arg(2)?)?;
            let src = string_arg(arg(3)?)?;
            let regex_text = string_arg(arg(4)?)?;
            let regex = regex::Regex::new(&format!("^(?:{regex_text})$")).map_err(|_| {
                PromqlError::eval(format!(
                    "invalid regular expression in label_replace(): {regex_text}"
                ))
            })?;
            if !store::is_valid_label_name(dst) {
                return Err(PromqlError::eval(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            input
                .into_iter()
                .map(|s| {
                    let src_value = s.labels.get_or_empty(src);
                    let labels = match regex.captures(src_value) {
                        None => s.labels.clone(),
                        Some(caps) => {
                            let mut expanded = String::new();
                            caps.expand(replacement, &mut expanded);
                            s.labels.with(dst, &expanded)
                        }
                    };
                    VectorSample {
                        labels,
                        value: s.value,
                    }
                })
                .collect()
        }
        "label_join" => {
            let input = ev.eval_vector(arg(0)?, ctx)?;
            let dst = string_arg(arg(1)?)?;
            let sep = string_arg(arg(2)?)?;
            let mut srcs = Vec::new();
            for a in args.iter().skip(3) {
                let src = string_arg(a)?;
                if !store::is_valid_label_name(src) {
                    return Err(PromqlError::eval(format!(
                        "invalid source label name in label_join(): {src}"
                    )));
                }
                srcs.push(src);
            }
            if !store::is_valid_label_name(dst) {
                return Err(PromqlError::eval(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            input
                .into_iter()
                .map(|s| {
                    let joined: Vec<&str> =
                        srcs.iter().map(|src| s.labels.get_or_empty(src)).collect();
                    let labels = s.labels.with(dst, &joined.join(sep));
                    VectorSample {
                        labels,
                        value: s.value,
                    }
                })
                .collect()
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?, ctx)?;
            let input = ev.eval_vector(arg(1)?, ctx)?;
            let mut groups: IndexMap<Labels, (Labels, Vec<Bucket>), FastBuild> =
                IndexMap::default();
            for s in input {
                let Some(upper_bound) = s.labels.get("le").and_then(parse_go_float) else {
                    continue;
                };
                let key = s.labels.remove(&["le".to_string()]);
                let entry = groups
                    .entry(key)
                    .or_insert_with_key(|k| (k.without_metric_name(), Vec::new()));
                entry.1.push(Bucket {
                    upper_bound,
                    count: s.value,
                });
            }
            groups
                .into_values()
                .map(|(labels, mut buckets)| VectorSample {
                    labels,
                    value: bucket_quantile(q, &mut buckets),
                })
                .collect()
        }
        // Native-histogram functions: 2.42 skips float samples, and the store holds floats only.
        "histogram_count" | "histogram_sum" => {
            ev.eval_vector(arg(0)?, ctx)?;
            Vec::new()
        }
        "histogram_fraction" => {
            ev.eval_scalar(arg(0)?, ctx)?;
            ev.eval_scalar(arg(1)?, ctx)?;
            ev.eval_vector(arg(2)?, ctx)?;
            Vec::new()
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            if args.is_empty() {
                vec![VectorSample {
                    labels: Labels::empty(),
                    value: date_part(name, ctx.t_ms.div_euclid(1000)),
                }]
            } else {
                ev.eval_vector(arg(0)?, ctx)?
                    .into_iter()
                    .map(|s| VectorSample {
                        labels: s.labels.without_metric_name(),
                        value: date_part(name, go_int64(s.value)),
                    })
                    .collect()
            }
        }
        other => return Err(PromqlError::unsupported(format!("function {other}()"))),
    };
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// Go's `strconv.ParseFloat` for the values `le` labels take (numbers, `+Inf`, `NaN`).
pub(crate) fn parse_go_float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    text.parse::<f64>().ok()
}

fn call_matrix(
    ev: &Evaluator<'_, '_>,
    name: &str,
    args: &[Box<Expr>],
    ctx: &Ctx,
) -> Result<Value, PromqlError> {
    let matrix_index = if name == "quantile_over_time" { 1 } else { 0 };
    let Some(matrix_arg) = args.get(matrix_index) else {
        return Err(PromqlError::eval(format!(
            "{name}: missing range vector argument"
        )));
    };
    let mut scalars = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != matrix_index {
            scalars.push(ev.eval_scalar(a, ctx)?);
        }
    }
    let n_scalars = match name {
        "holt_winters" => 2,
        "predict_linear" | "quantile_over_time" => 1,
        _ => 0,
    };
    if scalars.len() != n_scalars {
        return Err(PromqlError::eval(format!(
            "{name}: expected {} arguments, got {}",
            n_scalars + 1,
            args.len()
        )));
    }
    let Some((range_start_ms, range_end_ms)) = ev.range_window(matrix_arg, ctx) else {
        return Err(PromqlError::eval(format!(
            "{name}: expected a range vector argument"
        )));
    };
    let matrix: Vec<Window<'_>> = ev.eval_range_arg(matrix_arg, ctx)?;
    if name == "absent_over_time" {
        return Ok(Value::Vector(
            if matrix.iter().any(|s| !s.samples.is_empty()) {
                Vec::new()
            } else {
                vec![VectorSample {
                    labels: absent_labels(matrix_arg),
                    value: 1.0,
                }]
            },
        ));
    }
    if name == "holt_winters" {
        let (sf, tf) = (scalars[0], scalars[1]);
        if sf <= 0.0 || sf >= 1.0 {
            return Err(PromqlError::eval(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
        if tf <= 0.0 || tf >= 1.0 {
            return Err(PromqlError::eval(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
    }
    let mut out = Vec::with_capacity(matrix.len());
    let mut inputs = Vec::with_capacity(matrix.len());
    for series in matrix {
        let samples: &[Sample] = &series.samples;
        if samples.is_empty() {
            continue;
        }
        let value = match name {
            "rate" => extrapolated_rate(samples, range_start_ms, range_end_ms, true, true),
            "increase" => extrapolated_rate(samples, range_start_ms, range_end_ms, true, false),
            "delta" => extrapolated_rate(samples, range_start_ms, range_end_ms, false, false),
            "irate" => instant_value(samples, true),
            "idelta" => instant_value(samples, false),
            "deriv" => (samples.len() >= 2).then(|| linear_regression(samples, samples[0].t_ms).0),
            "predict_linear" => (samples.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(samples, ctx.t_ms);
                slope * scalars[0] + intercept
            }),
            "holt_winters" => holt_winters(samples, scalars[0], scalars[1]),
            "quantile_over_time" => Some(over_time(name, samples, scalars[0])),
            _ => Some(over_time(name, samples, 0.0)),
        };
        if let Some(value) = value {
            // last_over_time acts like an offset and keeps the metric name.
            let labels = if name == "last_over_time" {
                series.labels.clone()
            } else {
                series.labels_without_name
            };
            out.push(VectorSample { labels, value });
            inputs.push(series.labels);
        }
    }
    check_unique(&out)?;
    ev.note_outputs(
        args.as_ptr() as usize,
        out.iter().map(|o| &o.labels).zip(&inputs),
    )?;
    Ok(Value::Vector(out))
}
