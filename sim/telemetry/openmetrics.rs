//! The store as OpenMetrics text, in the form `promtool tsdb create-blocks-from openmetrics`
//! (Prometheus 2.42) reads back into TSDB blocks.
//!
//! Shape: one metric family per block of lines, families in name order, each opened by its
//! `# TYPE` line; inside a family, each series' samples one a line in time order, series in
//! label-set order; the text ends with `# EOF`. Timestamps are seconds (OpenMetrics' unit),
//! written with the digits that Prometheus's parser, which multiplies the parsed seconds by
//! 1000 and truncates, turns back into the exact millisecond.
//!
//! Types: `<family>_total` series are a `counter`; `<family>_bucket` series with an `le`
//! label, with `<family>_count` or `<family>_sum` beside them, make a `histogram`; every
//! other metric is `unknown` (the store does not know whether a name is a gauge).
//!
//! Stale markers: OpenMetrics has no way to write one (a `NaN` value reads back as an
//! ordinary NaN, which queries return as a value). They are left out, so after the import a
//! series that stopped (a pod that went away) is still seen by instant selectors for up to
//! the 5-minute lookback after its last sample, where the run itself stopped seeing it at
//! once. Range-vector functions (`rate` and the like) never read stale markers, so they are
//! unaffected. [`n_stale_markers`] tells a caller how many were left out.
//!
//! Invariants: the output is a pure function of the store (families and series in name and
//! label-set order); a series without a metric name cannot be written in OpenMetrics and is
//! refused ([`OpenMetricsError`]), never dropped silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::store::{METRIC_NAME, Series, Store, is_stale_nan};

/// Why a store cannot be written as OpenMetrics.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpenMetricsError {
    #[error("series {labels} has no metric name; OpenMetrics cannot carry it")]
    NoMetricName { labels: String },
}

/// What family a metric name belongs to, and the family's type.
fn families(store: &Store) -> BTreeMap<String, (&'static str, Vec<&Series>)> {
    let names: std::collections::BTreeSet<&str> = store
        .ids()
        .filter_map(|id| store.series(id).labels.metric_name())
        .collect();
    let histogram_base = |name: &str| -> Option<String> {
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_count"))
            .or_else(|| name.strip_suffix("_sum"))?;
        let bucket = format!("{base}_bucket");
        let has_buckets = names.contains(bucket.as_str())
            && store
                .ids()
                .map(|id| &store.series(id).labels)
                .any(|l| l.metric_name() == Some(bucket.as_str()) && l.get("le").is_some());
        let has_totals = names.contains(format!("{base}_count").as_str())
            || names.contains(format!("{base}_sum").as_str());
        (has_buckets && has_totals).then(|| base.to_string())
    };
    let mut out: BTreeMap<String, (&'static str, Vec<&Series>)> = BTreeMap::new();
    let mut kind_of: BTreeMap<&str, (String, &'static str)> = BTreeMap::new();
    for name in &names {
        let kind = if let Some(base) = histogram_base(name) {
            (base, "histogram")
        } else if let Some(base) = name.strip_suffix("_total").filter(|b| !b.is_empty()) {
            (base.to_string(), "counter")
        } else {
            (name.to_string(), "unknown")
        };
        kind_of.insert(name, kind);
    }
    // Two names could claim one family with different types (`x` unknown and `x_total` a
    // counter); the later one in name order then keeps its full name as an `unknown` family.
    for id in store.ids() {
        let series = store.series(id);
        let Some(name) = series.labels.metric_name() else {
            continue;
        };
        let (family, kind) = kind_of[name].clone();
        let (family, kind) = match out.get(&family) {
            Some((other, _)) if *other != kind => (name.to_string(), "unknown"),
            _ => (family, kind),
        };
        out.entry(family)
            .or_insert_with(|| (kind, Vec::new()))
            .1
            .push(series);
    }
    out
}

/// The number of stale markers in the store (which the export leaves out).
pub fn n_stale_markers(store: &Store) -> usize {
    store
        .ids()
        .map(|id| {
            store
                .series(id)
                .samples()
                .iter()
                .filter(|s| is_stale_nan(s.value))
                .count()
        })
        .sum()
}

/// Milliseconds as OpenMetrics seconds that Prometheus's parser reads back exactly: it
/// computes `int64(seconds * 1000)`, truncating, so a decimal like `0.291` (0.29099... as a
/// float, times 1000 is 290.99...) would lose a millisecond; the next float up is used then.
pub fn timestamp_secs(t_ms: i64) -> String {
    let plain = if t_ms % 1000 == 0 {
        format!("{}", t_ms / 1000)
    } else {
        let sign = if t_ms < 0 { "-" } else { "" };
        let abs = t_ms.unsigned_abs();
        let frac = format!("{:03}", abs % 1000);
        format!("{sign}{}.{}", abs / 1000, frac.trim_end_matches('0'))
    };
    let reads_back = |text: &str| {
        text.parse::<f64>()
            .is_ok_and(|secs| (secs * 1000.0) as i64 == t_ms)
    };
    if reads_back(&plain) {
        return plain;
    }
    let mut secs: f64 = plain.parse().expect("digits parse");
    for _ in 0..8 {
        secs = if t_ms >= 0 {
            secs.next_up()
        } else {
            secs.next_down()
        };
        let text = format!("{secs:?}");
        if reads_back(&text) {
            return text;
        }
    }
    // Not reachable for timestamps within ±2^53 ms; the plain form is the closest we have.
    plain
}

/// A label value in double quotes with OpenMetrics' three escapes (`\\`, `\"`, `\n`); the
/// parser keeps any other character as it is, tabs included.
fn push_label_value(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A sample value as OpenMetrics spells it.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Writes the store as OpenMetrics text (see the module doc), stale markers left out.
pub fn write(store: &Store) -> Result<String, OpenMetricsError> {
    if let Some(id) = store
        .ids()
        .find(|id| store.series(*id).labels.metric_name().is_none())
    {
        return Err(OpenMetricsError::NoMetricName {
            labels: store.series(id).labels.to_string(),
        });
    }
    let mut out = String::new();
    for (family, (kind, series)) in families(store) {
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for s in series {
            let mut head = s.labels.metric_name().unwrap_or_default().to_string();
            let rest: Vec<_> = s.labels.iter().filter(|l| l.name != METRIC_NAME).collect();
            if !rest.is_empty() {
                head.push('{');
                for (idx, label) in rest.iter().enumerate() {
                    if idx > 0 {
                        head.push(',');
                    }
                    head.push_str(&label.name);
                    head.push('=');
                    push_label_value(&mut head, &label.value);
                }
                head.push('}');
            }
            for sample in s.samples() {
                if is_stale_nan(sample.value) {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "{head} {} {}",
                    value_text(sample.value),
                    timestamp_secs(sample.t_ms)
                );
            }
        }
    }
    out.push_str("# EOF\n");
    Ok(out)
}

#[cfg(test)]
mod tests;
