//! The in-memory series store: one series per label set (the metric name is the `__name__`
//! label), each holding `(t_ms, value)` samples in time order.
//!
//! Mirrors what Prometheus 2.42's TSDB head gives the query engine (spec/prometheus.md §5):
//! series come out sorted by label set, samples in time order, and a stale marker is the NaN
//! with bit pattern `0x7ff0000000000002` ([`STALE_NAN_BITS`]), distinct from an ordinary NaN.
//!
//! Invariants: within a series timestamps strictly increase (an older or equal timestamp is
//! refused, as Prometheus refuses out-of-order samples); label sets are sorted by name with no
//! duplicate names and no empty values (an empty value means "no such label", as upstream);
//! every iteration is ordered by label set.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use regex::Regex;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of Prometheus's stale marker (`model/value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether a sample value is a stale marker (and not an ordinary NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Errors of the store.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error(
        "out of order sample for {labels}: {t_ms} ms is not after the last sample at {last_t_ms} ms"
    )]
    OutOfOrder {
        labels: String,
        t_ms: i64,
        last_t_ms: i64,
    },
    #[error("invalid label name {name:?}")]
    InvalidLabelName { name: String },
}

/// One label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A sorted label set, cheap to clone (shared).
///
/// Ordering is Prometheus's `labels.Compare`: label by label (name, then value), a shorter set
/// first when one is a prefix of the other.
///
/// The set carries a hash of its contents, computed once when it is built, so the lookup
/// tables of evaluation (grouping, matching) hash a label set in O(1).
#[derive(Clone, Debug)]
pub struct Labels {
    labels: Arc<[Label]>,
    hash: u64,
}

/// A hash of label contents (the Fx hash); never reaches any output.
fn contents_hash(labels: &[Label]) -> u64 {
    let mut hash: u64 = 0;
    let mut add =
        |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    for label in labels {
        for part in [&label.name, &label.value] {
            let bytes = part.as_bytes();
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                add(u64::from_le_bytes(word));
            }
            let mut word = [0u8; 8];
            word[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            // The length separates "ab","c" from "a","bc".
            add(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
        }
    }
    hash
}

impl Labels {
    /// Wraps labels that are already sorted, unique and without empty values.
    fn from_sorted(labels: Vec<Label>) -> Labels {
        let hash = contents_hash(&labels);
        Labels {
            labels: labels.into(),
            hash,
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::from_sorted(Vec::new())
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.labels, &other.labels) || self.labels == other.labels)
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.labels.cmp(&other.labels)
    }
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Labels {
    /// Builds a label set from pairs: sorts by name, drops empty values, and keeps the last
    /// value when a name is given twice.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(name, value)| Label {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        Labels::from_vec(&mut labels)
    }

    /// Builds from a vector of labels (same normalisation as [`Labels::from_pairs`]).
    pub fn from_vec(labels: &mut Vec<Label>) -> Labels {
        // A stable sort keeps the given order among equal names, so the last one wins below.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels.drain(..) {
            if let Some(last) = out.last_mut()
                && last.name == label.name
            {
                *last = label;
                continue;
            }
            out.push(label);
        }
        out.retain(|l| !l.value.is_empty());
        Labels::from_sorted(out)
    }

    /// The empty label set.
    pub fn empty() -> Labels {
        Labels::default()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The value of a label; `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// The value of a label, or "" when absent (how matchers see a missing label).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The same set without `__name__` (shares the allocation when there is none).
    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// Keeps only the labels whose names are listed.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// Removes the listed labels.
    pub fn remove(&self, names: &[String]) -> Labels {
        if !self.labels.iter().any(|l| names.contains(&l.name)) {
            return self.clone();
        }
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// Returns the set with one label set (or removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        if self.get(name) == Some(value) {
            return self.clone();
        }
        let mut labels: Vec<Label> = self
            .labels
            .iter()
            .filter(|l| l.name != name)
            .cloned()
            .collect();
        if !value.is_empty() {
            labels.push(Label {
                name: name.into(),
                value: value.into(),
            });
            labels.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Labels::from_sorted(labels)
    }

    /// Copies the labels into a vector for editing.
    pub fn to_vec(&self) -> Vec<Label> {
        self.labels.to_vec()
    }
}

/// Whether a string is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes a string as a double-quoted Go-style literal.
pub fn write_quoted(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

impl fmt::Display for Labels {
    /// PromQL form: `name{a="1", b="2"}`, or `{a="1"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.labels.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(&label.name)?;
            f.write_str("=")?;
            write_quoted(f, &label.value)?;
        }
        f.write_str("}")
    }
}

/// One sample: a Unix timestamp in milliseconds and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t_ms: i64,
    pub value: f64,
}

/// Index of a series in its store, in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId(pub u32);

/// One series: its labels and its samples in strictly increasing time order.
#[derive(Debug)]
pub struct Series {
    pub labels: Labels,
    /// `labels` without `__name__`, kept because most PromQL operators drop the name.
    labels_without_name: Labels,
    samples: Vec<Sample>,
    /// Where the last time lookup landed: rules evaluate at increasing times, so the next
    /// lookup is usually a few samples further on and found by galloping from here.
    lookup_hint: AtomicUsize,
}

impl Clone for Series {
    fn clone(&self) -> Self {
        Series {
            labels: self.labels.clone(),
            labels_without_name: self.labels_without_name.clone(),
            samples: self.samples.clone(),
            lookup_hint: AtomicUsize::new(self.lookup_hint.load(Ordering::Relaxed)),
        }
    }
}

impl Series {
    /// The labels without `__name__`.
    pub fn labels_without_metric_name(&self) -> &Labels {
        &self.labels_without_name
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The index of the first sample at or after `t_ms` (the samples' length if none).
    fn first_at_or_after(&self, t_ms: i64) -> usize {
        let samples = &self.samples;
        let n = samples.len();
        let hint = self.lookup_hint.load(Ordering::Relaxed).min(n);
        let left_ok = hint == 0 || samples[hint - 1].t_ms < t_ms;
        let idx = if left_ok && (hint == n || samples[hint].t_ms >= t_ms) {
            hint
        } else if left_ok {
            // Gallop forward from the hint: samples[lo] is known to be before t_ms.
            let mut lo = hint;
            let mut step = 1;
            loop {
                let probe = lo + step;
                if probe >= n || samples[probe].t_ms >= t_ms {
                    let hi = probe.min(n);
                    break lo + 1 + samples[lo + 1..hi].partition_point(|s| s.t_ms < t_ms);
                }
                lo = probe;
                step *= 2;
            }
        } else {
            samples[..hint].partition_point(|s| s.t_ms < t_ms)
        };
        self.lookup_hint.store(idx, Ordering::Relaxed);
        idx
    }

    /// The samples with `from_ms <= t_ms <= to_ms` (closed window, as 2.42's range selectors).
    pub fn samples_between(&self, from_ms: i64, to_ms: i64) -> &[Sample] {
        let lo = self.first_at_or_after(from_ms);
        // Windows are short next to a series: scan forward from `lo` rather than search again.
        let mut hi = lo;
        while hi < self.samples.len() && self.samples[hi].t_ms <= to_ms {
            hi += 1;
        }
        &self.samples[lo..hi]
    }

    /// The newest sample at or before `t_ms`.
    pub fn latest_at_or_before(&self, t_ms: i64) -> Option<Sample> {
        let idx = match t_ms.checked_add(1) {
            Some(next) => self.first_at_or_after(next),
            None => self.samples.len(),
        };
        if idx == 0 {
            None
        } else {
            Some(self.samples[idx - 1])
        }
    }
}

/// How a matcher compares a label value.
#[derive(Clone, Debug)]
pub enum MatchKind {
    Equal(String),
    NotEqual(String),
    /// A fully anchored regular expression (`^(?:re)$`).
    Regex(Regex),
    NotRegex(Regex),
}

/// A label matcher; a missing label matches as the empty string, as upstream.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchKind,
}

impl Matcher {
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_string(),
            kind: MatchKind::Equal(value.to_string()),
        }
    }

    /// Builds a regex matcher, anchoring the expression on both ends as Prometheus does.
    pub fn regex(name: &str, re: &str, negate: bool) -> Result<Matcher, regex::Error> {
        let compiled = Regex::new(&format!("^(?:{re})$"))?;
        let kind = if negate {
            MatchKind::NotRegex(compiled)
        } else {
            MatchKind::Regex(compiled)
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get_or_empty(&self.name);
        match &self.kind {
            MatchKind::Equal(v) => value == v,
            MatchKind::NotEqual(v) => value != v,
            MatchKind::Regex(re) => re.is_match(value),
            MatchKind::NotRegex(re) => !re.is_match(value),
        }
    }
}

/// Memoised selections: matcher key -> (number of series when last brought up to date, the
/// matching ids in label-set order). Series are only ever added, so an entry is extended
/// with the series created since, never recomputed. Never iterated.
#[derive(Debug, Default)]
struct SelectionMemo(Mutex<HashMap<String, MemoEntry>>); // lookup only: never iterated into output

/// Series count the entry is up to date with, and the matching ids.
type MemoEntry = (usize, Arc<[SeriesId]>);

impl Clone for SelectionMemo {
    fn clone(&self) -> Self {
        SelectionMemo::default()
    }
}

/// Beyond this many distinct matcher sets the memo starts over.
const SELECTION_MEMO_MAX: usize = 4096;

/// The store. See the module doc for its invariants.
#[derive(Clone, Debug, Default)]
pub struct Store {
    series: Vec<Series>,
    by_labels: BTreeMap<Labels, SeriesId>,
    /// Series of each metric name, kept sorted by label set.
    by_name: BTreeMap<String, Vec<SeriesId>>,
    n_samples: usize,
    memo: SelectionMemo,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        *self = Store::default();
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of samples over all series (stale markers included).
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    pub fn series(&self, id: SeriesId) -> &Series {
        &self.series[id.0 as usize]
    }

    /// The id of a label set's series, creating an empty series when it is new.
    pub fn series_id(&mut self, labels: &Labels) -> Result<SeriesId, StoreError> {
        if let Some(id) = self.by_labels.get(labels) {
            return Ok(*id);
        }
        if let Some(bad) = labels.iter().find(|l| !is_valid_label_name(&l.name)) {
            return Err(StoreError::InvalidLabelName {
                name: bad.name.to_string(),
            });
        }
        let id = SeriesId(self.series.len() as u32);
        self.series.push(Series {
            labels: labels.clone(),
            labels_without_name: labels.without_metric_name(),
            samples: Vec::new(),
            lookup_hint: AtomicUsize::new(0),
        });
        self.by_labels.insert(labels.clone(), id);
        let name = labels.metric_name().unwrap_or("").to_string();
        let ids = self.by_name.entry(name).or_default();
        let pos = ids.partition_point(|other| self.series[other.0 as usize].labels < *labels);
        ids.insert(pos, id);
        Ok(id)
    }

    /// Appends a sample to the series with these labels (created on first use).
    pub fn append(
        &mut self,
        labels: &Labels,
        t_ms: i64,
        value: f64,
    ) -> Result<SeriesId, StoreError> {
        let id = self.series_id(labels)?;
        self.append_to(id, t_ms, value)?;
        Ok(id)
    }

    /// Appends a stale marker: the series reads as absent from `t_ms` on until its next sample.
    pub fn mark_stale(&mut self, labels: &Labels, t_ms: i64) -> Result<SeriesId, StoreError> {
        self.append(labels, t_ms, stale_nan())
    }

    /// Appends by id: the scraper's fast path once it knows its series.
    pub fn append_to(&mut self, id: SeriesId, t_ms: i64, value: f64) -> Result<(), StoreError> {
        let series = &mut self.series[id.0 as usize];
        if let Some(last) = series.samples.last()
            && t_ms <= last.t_ms
        {
            return Err(StoreError::OutOfOrder {
                labels: series.labels.to_string(),
                t_ms,
                last_t_ms: last.t_ms,
            });
        }
        series.samples.push(Sample { t_ms, value });
        self.n_samples += 1;
        Ok(())
    }

    /// Every series id, ordered by label set.
    pub fn ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.by_labels.values().copied()
    }

    /// The series matching all matchers, ordered by label set. An equality matcher on
    /// `__name__` narrows the scan to that metric's series.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        self.select_uncached(matchers)
    }

    /// [`Store::select`], memoised across calls: a rule evaluated every interval matches
    /// its selectors once, then only against the series created since.
    pub fn select_shared(&self, matchers: &[Matcher]) -> Arc<[SeriesId]> {
        let mut key = String::new();
        for m in matchers {
            let (op, value) = match &m.kind {
                MatchKind::Equal(v) => ("=", v.as_str()),
                MatchKind::NotEqual(v) => ("!=", v.as_str()),
                MatchKind::Regex(re) => ("=~", re.as_str()),
                MatchKind::NotRegex(re) => ("!~", re.as_str()),
            };
            for part in [m.name.as_str(), op, value] {
                key.push_str(part);
                key.push('\u{0}');
            }
        }
        let mut memo = self.memo.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n_series = self.series.len();
        if let Some((seen, ids)) = memo.get(&key) {
            if *seen == n_series {
                return ids.clone();
            }
            let mut ids = ids.to_vec();
            for idx in *seen..n_series {
                let labels = &self.series[idx].labels;
                if matchers.iter().all(|m| m.matches(labels)) {
                    let pos =
                        ids.partition_point(|other| self.series[other.0 as usize].labels < *labels);
                    ids.insert(pos, SeriesId(idx as u32));
                }
            }
            let ids: Arc<[SeriesId]> = ids.into();
            memo.insert(key, (n_series, ids.clone()));
            return ids;
        }
        let ids: Arc<[SeriesId]> = self.select_uncached(matchers).into();
        if memo.len() >= SELECTION_MEMO_MAX {
            memo.clear();
        }
        memo.insert(key, (n_series, ids.clone()));
        ids
    }

    fn select_uncached(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let by_name = matchers.iter().find_map(|m| match &m.kind {
            MatchKind::Equal(v) if m.name == METRIC_NAME => Some(v.as_str()),
            _ => None,
        });
        let keep = |id: &SeriesId| {
            matchers
                .iter()
                .all(|m| m.matches(&self.series[id.0 as usize].labels))
        };
        match by_name {
            Some(name) => self
                .by_name
                .get(name)
                .map(|ids| ids.iter().copied().filter(keep).collect())
                .unwrap_or_default(),
            None => self.ids().filter(keep).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
