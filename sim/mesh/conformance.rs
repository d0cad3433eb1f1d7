//! Comparing a script's run on the model with its run on a real Envoy (`twin mesh
//! conformance`): what each arm did, reduced to the quantities `spec/mesh.md` makes claims
//! about, and whether Envoy's value lies where the model says it can.
//!
//! The model runs the script under many seeds; each quantity's envelope (the least and the
//! greatest value over those seeds) is what the model allows, since the balancers' draws, the
//! round-robin start and Envoy's own random choices differ run to run. Envoy's value must lie in
//! that envelope widened by a slack that is stated per quantity, from what the model leaves out:
//!
//! - ejection request index: [`INDEX_SLACK`] request, because Envoy's event log stamps an
//!   ejection to the millisecond and it is mapped to the last request sent before it, plus the
//!   requests of [`JITTER`] at the run's rate, rounded up;
//! - ejection duration: twice [`JITTER`]. An unejection waits for the next sweep (§3.6), whose
//!   phase Envoy sets when the cluster starts; the runner takes that phase from Envoy's first
//!   unejection and starts the model's sweeps at it (`live::conformance::sweep_phase`), so
//!   what is left is the drift of Envoy's re-armed timer and the scheduling of both processes;
//! - requests a host received while ejected (the merge window, §3.8): [`HELD_SLACK`] requests,
//!   the traffic of [`JITTER`] at the script's rate, rounded up, plus one;
//! - most hosts ejected at once, and which requests got 503 `UO`: none (they are exact);
//! - traffic shares: [`SHARE_SLACK`], for the proxy's own latency on top of the hosts'
//!   (about a millisecond per request on loopback, which the model does not add);
//! - 503 `UH` count: twice the slack of an ejection's index, since the span of UH answers
//!   starts at an ejection and ends at a sweep.
//!
//! Invariant: a check that cannot be decided (a quantity absent from both arms) is not made;
//! one absent from one arm only is a disagreement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::script::ScriptRun;
use crate::engine::SimDuration;

/// Slack on an ejection's request index [requests].
pub const INDEX_SLACK: u64 = 1;
/// Scheduling jitter of the processes on loopback, in both directions.
pub const JITTER: SimDuration = SimDuration::from_millis(50);
/// Slack on the requests a host received while ejected [requests].
pub const HELD_SLACK: u64 = 3;
/// Slack on a host's share of the traffic [fraction].
pub const SHARE_SLACK: f64 = 0.03;

/// One ejection of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// The last request sent before the ejection.
    pub index: u64,
    /// Until its unejection; `None` when it was still out at the end.
    pub duration: Option<SimDuration>,
    /// Requests the balancer still sent it while it was ejected.
    pub requests_while_ejected: u64,
}

/// What one run did, in the terms the checks use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub ejections: BTreeMap<u32, Vec<Ejection>>,
    pub max_ejected_at_once: u32,
    /// Indices of the requests answered 503 `UO`.
    pub overflowed: Vec<u64>,
    pub no_healthy_upstream: u64,
    /// Per host, its share of the requests an upstream host answered.
    pub shares: Vec<f64>,
    /// Requests per second over the run.
    pub rate_per_sec: f64,
}

/// Reduces a run on `n_hosts` hosts.
pub fn summarize(run: &ScriptRun, n_hosts: usize) -> Summary {
    let mut summary = Summary::default();
    let end = run.end();
    let mut out: BTreeMap<u32, SimDuration> = BTreeMap::new();
    let mut at_once = 0u32;
    for event in &run.events {
        if event.ejected {
            at_once += 1;
            summary.max_ejected_at_once = summary.max_ejected_at_once.max(at_once);
            out.insert(event.host, event.time);
            summary
                .ejections
                .entry(event.host)
                .or_default()
                .push(Ejection {
                    index: run.request_index_at(event.time),
                    duration: None,
                    requests_while_ejected: 0,
                });
        } else if let Some(since) = out.remove(&event.host) {
            at_once = at_once.saturating_sub(1);
            if let Some(last) = summary
                .ejections
                .get_mut(&event.host)
                .and_then(|list| list.last_mut())
            {
                last.duration = Some(SimDuration(event.time.0.saturating_sub(since.0)));
            }
        }
    }
    // Requests each ejection still received, from the ejection to the unejection (or the end).
    for (host, list) in summary.ejections.iter_mut() {
        let mut starts: Vec<SimDuration> = run
            .events
            .iter()
            .filter(|e| e.ejected && e.host == *host)
            .map(|e| e.time)
            .collect();
        starts.truncate(list.len());
        for (ejection, start) in list.iter_mut().zip(starts) {
            let stop = ejection.duration.map_or(end, |d| start + d);
            ejection.requests_while_ejected = run
                .requests
                .iter()
                .filter(|r| r.host == Some(*host) && r.sent_at > start && r.sent_at < stop)
                .count() as u64;
        }
    }
    let mut answered = vec![0u64; n_hosts];
    for request in &run.requests {
        match request.flags.as_str() {
            "UO" => summary.overflowed.push(request.index),
            "UH" => summary.no_healthy_upstream += 1,
            _ => {}
        }
        if let Some(host) = request.host
            && (host as usize) < n_hosts
        {
            answered[host as usize] += 1;
        }
    }
    let total: u64 = answered.iter().sum();
    summary.shares = answered
        .iter()
        .map(|&n| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        })
        .collect();
    let span = end.as_secs_f64();
    summary.rate_per_sec = if span > 0.0 {
        run.requests.len() as f64 / span
    } else {
        0.0
    };
    summary
}

/// One side-by-side line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub what: String,
    pub model: String,
    pub envoy: String,
    pub tolerance: String,
    pub agrees: bool,
}

fn envelope<T: Copy + PartialOrd>(values: &[T]) -> Option<(T, T)> {
    let mut iter = values.iter().copied();
    let first = iter.next()?;
    Some(iter.fold((first, first), |(lo, hi), v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    }))
}

fn range_text<T: Copy + PartialEq + std::fmt::Display>(range: (T, T)) -> String {
    if range.0 == range.1 {
        range.0.to_string()
    } else {
        format!("{}..{}", range.0, range.1)
    }
}

fn secs(d: SimDuration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Compares Envoy's run with the model's runs (one per seed). `interval` is the outlier sweep
/// period both arms ran with (`None`: no outlier detection).
pub fn compare(model: &[Summary], envoy: &Summary, interval: Option<SimDuration>) -> Vec<Check> {
    // The interval only says whether outlier detection ran.
    let mut checks = Vec::new();
    let hosts: std::collections::BTreeSet<u32> = model
        .iter()
        .flat_map(|s| s.ejections.keys().copied())
        .chain(envoy.ejections.keys().copied())
        .collect();
    let slack_duration = JITTER + JITTER;
    let slack_index = INDEX_SLACK + (envoy.rate_per_sec * JITTER.as_secs_f64()).ceil() as u64;
    for host in hosts {
        for ordinal in 0..2usize {
            let pick = |s: &Summary| s.ejections.get(&host).and_then(|l| l.get(ordinal)).cloned();
            let model_values: Vec<Option<Ejection>> = model.iter().map(pick).collect();
            let envoy_value = pick(envoy);
            let nth = if ordinal == 0 { "first" } else { "second" };
            let present: Vec<Ejection> = model_values.iter().flatten().cloned().collect();
            let sometimes_absent = present.len() < model_values.len();
            if present.is_empty() && envoy_value.is_none() {
                continue;
            }
            // The ejection itself.
            let indices: Vec<u64> = present.iter().map(|e| e.index).collect();
            let (model_text, agrees) = match (envelope(&indices), &envoy_value) {
                (Some((lo, hi)), Some(e)) => (
                    range_text((lo, hi)),
                    e.index + slack_index >= lo && e.index <= hi + slack_index,
                ),
                (Some(range), None) => (range_text(range), sometimes_absent),
                (None, Some(_)) => ("none".to_string(), false),
                (None, None) => unreachable!("skipped above"),
            };
            let model_text = if sometimes_absent && !present.is_empty() {
                format!("{model_text} or none")
            } else {
                model_text
            };
            checks.push(Check {
                what: format!("host-{host} {nth} ejection at request"),
                model: model_text,
                envoy: envoy_value
                    .as_ref()
                    .map_or("none".into(), |e| e.index.to_string()),
                tolerance: format!("±{slack_index}"),
                agrees,
            });
            // Its duration, when both arms saw it end.
            let durations: Vec<SimDuration> = present.iter().filter_map(|e| e.duration).collect();
            if let (Some((lo, hi)), Some(Some(d))) = (
                envelope(&durations),
                envoy_value.as_ref().map(|e| e.duration),
            ) {
                checks.push(Check {
                    what: format!("host-{host} {nth} ejection lasted"),
                    model: if lo == hi {
                        secs(lo)
                    } else {
                        format!("{}..{}", secs(lo), secs(hi))
                    },
                    envoy: secs(d),
                    tolerance: format!("±{}", secs(slack_duration)),
                    agrees: d + slack_duration >= lo && d <= hi + slack_duration,
                });
            }
            // The traffic it still got: the merge window.
            let held: Vec<u64> = present.iter().map(|e| e.requests_while_ejected).collect();
            if let (Some((lo, hi)), Some(e)) = (envelope(&held), envoy_value.as_ref()) {
                let slack = HELD_SLACK + (envoy.rate_per_sec * JITTER.as_secs_f64()).ceil() as u64;
                checks.push(Check {
                    what: format!("host-{host} {nth} ejection: requests it still got"),
                    model: range_text((lo, hi)),
                    envoy: e.requests_while_ejected.to_string(),
                    tolerance: format!("±{slack}"),
                    agrees: e.requests_while_ejected + slack >= lo
                        && e.requests_while_ejected <= hi + slack,
                });
            }
        }
    }
    if interval.is_some() {
        let values: Vec<u32> = model.iter().map(|s| s.max_ejected_at_once).collect();
        if let Some((lo, hi)) = envelope(&values) {
            checks.push(Check {
                what: "most hosts ejected at once".into(),
                model: range_text((lo, hi)),
                envoy: envoy.max_ejected_at_once.to_string(),
                tolerance: "exact".into(),
                agrees: (lo..=hi).contains(&envoy.max_ejected_at_once),
            });
        }
    }
    // Overflows: Envoy's count in the model's range, and each of its overflowed requests one
    // the model overflowed under some seed.
    let counts: Vec<usize> = model.iter().map(|s| s.overflowed.len()).collect();
    let union: std::collections::BTreeSet<u64> = model
        .iter()
        .flat_map(|s| s.overflowed.iter().copied())
        .collect();
    if let Some((lo, hi)) = envelope(&counts)
        && (hi > 0 || !envoy.overflowed.is_empty())
    {
        let unexpected: Vec<u64> = envoy
            .overflowed
            .iter()
            .copied()
            .filter(|i| !union.contains(i))
            .collect();
        checks.push(Check {
            what: "requests answered 503 UO".into(),
            model: format!("{} {}", range_text((lo, hi)), index_list(&union)),
            envoy: format!(
                "{} {}",
                envoy.overflowed.len(),
                index_list(&envoy.overflowed)
            ),
            tolerance: "exact".into(),
            agrees: (lo..=hi).contains(&envoy.overflowed.len()) && unexpected.is_empty(),
        });
    }
    let uh: Vec<u64> = model.iter().map(|s| s.no_healthy_upstream).collect();
    if let Some((lo, hi)) = envelope(&uh)
        && (hi > 0 || envoy.no_healthy_upstream > 0)
    {
        // UH starts when the last host is ejected and ends at a sweep: twice an index's slack.
        let slack = 2 * slack_index;
        checks.push(Check {
            what: "requests answered 503 UH".into(),
            model: range_text((lo, hi)),
            envoy: envoy.no_healthy_upstream.to_string(),
            tolerance: format!("±{slack}"),
            agrees: envoy.no_healthy_upstream + slack >= lo
                && envoy.no_healthy_upstream <= hi + slack,
        });
    }
    for (host, envoy_share) in envoy.shares.iter().enumerate() {
        let values: Vec<f64> = model
            .iter()
            .filter_map(|s| s.shares.get(host).copied())
            .collect();
        if let Some((lo, hi)) = envelope(&values) {
            checks.push(Check {
                what: format!("host-{host} share of traffic"),
                model: if (hi - lo).abs() < 5e-4 {
                    format!("{lo:.3}")
                } else {
                    format!("{lo:.3}..{hi:.3}")
                },
                envoy: format!("{envoy_share:.3}"),
                tolerance: format!("±{SHARE_SLACK}"),
                agrees: *envoy_share >= lo - SHARE_SLACK && *envoy_share <= hi + SHARE_SLACK,
            });
        }
    }
    checks
}

fn index_list<'a>(indices: impl IntoIterator<Item = &'a u64>) -> String {
    let mut out = String::from("[");
    for (n, index) in indices.into_iter().enumerate() {
        if n == 12 {
            out.push_str(", ...");
            break;
        }
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{index}");
    }
    out.push(']');
    out
}
