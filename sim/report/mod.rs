//! Reports of a run: the stable JSON (schema in `docs/report.md`), the terminal summary, the
//! summary row `twin rehearse` prints, the HTML page ([`html`]), the run directory
//! ([`run_dir`]: report, series, rule files) and the exports made from it ([`export`]:
//! OpenMetrics, promtool unit tests).
//!
//! Invariants: the JSON and the HTML are pure functions of the run (ordered maps, fixed float
//! precision), so the same scenario and seed give the same bytes.

pub mod html;

pub mod export;
pub mod run_dir;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::engine::SimDuration;
use crate::promql::rules::AlertState;
use crate::scenario::RunResult;

/// Rounds to `digits` decimals, so floats print the same everywhere.
fn fixed(value: f64, digits: i32) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    let scale = 10f64.powi(digits);
    json!((value * scale).round() / scale)
}

/// One alert's life: when it went pending, fired and resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertLife {
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    pub pending_at_secs: Option<f64>,
    pub firing_at_secs: Option<f64>,
    pub resolved_at_secs: Option<f64>,
}

/// Folds the alert transitions into lives, in order of first activity.
pub fn alert_lives(result: &RunResult) -> Vec<AlertLife> {
    let mut lives: Vec<AlertLife> = Vec::new();
    for t in &result.world.alert_transitions {
        let at = t.at_ms as f64 / 1000.0;
        let alert = t.labels.get("alertname").cloned().unwrap_or_default();
        let open = lives
            .iter_mut()
            .rev()
            .find(|l| l.labels == t.labels && l.resolved_at_secs.is_none());
        match (t.to, open) {
            (AlertState::Pending, None) => lives.push(AlertLife {
                alert,
                labels: t.labels.clone(),
                pending_at_secs: Some(at),
                firing_at_secs: None,
                resolved_at_secs: None,
            }),
            (AlertState::Firing, Some(life)) => life.firing_at_secs = Some(at),
            (AlertState::Firing, None) => lives.push(AlertLife {
                alert,
                labels: t.labels.clone(),
                pending_at_secs: None,
                firing_at_secs: Some(at),
                resolved_at_secs: None,
            }),
            (AlertState::Inactive, Some(life)) => life.resolved_at_secs = Some(at),
            _ => {}
        }
    }
    lives
}

/// One run in a summary table (`twin rehearse`'s and the HTML index's), as text.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub name: String,
    pub passed: bool,
    /// Each alert that fired, with its first firing time: `HighErrorRate@14m28.621s`.
    pub alerts: String,
    /// The availability SLO's share of its 30-day budget the run used.
    pub budget: String,
    /// Per Deployment that answered requests, its application p99.
    pub p99: String,
    pub replicas: String,
    pub pending: String,
}

/// The summary row of a run.
pub fn summary_row(result: &RunResult) -> SummaryRow {
    let lives = alert_lives(result);
    let mut alerts: Vec<String> = lives
        .iter()
        .filter_map(|l| {
            l.firing_at_secs
                .map(|t| format!("{}@{}", l.alert, SimDuration::from_secs_f64(t)))
        })
        .collect();
    alerts.dedup();
    let budget = result
        .slo_budget
        .iter()
        .find(|(n, _)| n == "availability")
        .map_or("-".into(), |(_, u)| format!("{:.2}%", u * 100.0));
    let w = &result.world;
    let p99 = w
        .stats
        .iter()
        .zip(&w.deployment_names)
        .filter(|(s, _)| !s.latency_us.is_empty())
        .map(|(s, n)| {
            format!(
                "{n} {:.0}ms",
                s.latency_us.value_at_quantile(0.99) as f64 / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let replicas = w
        .deployment_names
        .iter()
        .zip(&w.most_replicas)
        .map(|(n, r)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    SummaryRow {
        name: result.name.clone(),
        passed: result.passed(),
        alerts: if alerts.is_empty() {
            "-".into()
        } else {
            alerts.join(" ")
        },
        budget,
        p99: if p99.is_empty() { "-".into() } else { p99 },
        replicas,
        pending: format!("{}", w.longest_pending),
    }
}

/// The run as stable JSON.
pub fn json(result: &RunResult) -> Value {
    let w = &result.world;
    let mut latency = serde_json::Map::new();
    for (idx, name) in w.deployment_names.iter().enumerate() {
        let h = &w.stats[idx].latency_us;
        if h.is_empty() {
            continue;
        }
        latency.insert(
            name.clone(),
            json!({
                "requests": h.len(),
                "p50Ms": fixed(h.value_at_quantile(0.5) as f64 / 1000.0, 3),
                "p95Ms": fixed(h.value_at_quantile(0.95) as f64 / 1000.0, 3),
                "p99Ms": fixed(h.value_at_quantile(0.99) as f64 / 1000.0, 3),
                "byStatus": w.stats[idx].by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            }),
        );
    }
    let loads: Vec<Value> = w
        .loads
        .iter()
        .enumerate()
        .map(|(idx, l)| {
            let outcomes: serde_json::Map<String, Value> = w.outcomes[idx]
                .iter()
                .map(|(k, n)| (k.to_string(), json!(n)))
                .collect();
            json!({"target": l.name, "outcomes": outcomes})
        })
        .collect();
    let alerts: Vec<Value> = alert_lives(result)
        .iter()
        .map(|l| {
            json!({
                "alert": l.alert,
                "labels": l.labels,
                "pendingAtSecs": l.pending_at_secs.map(|v| fixed(v, 3)),
                "firingAtSecs": l.firing_at_secs.map(|v| fixed(v, 3)),
                "resolvedAtSecs": l.resolved_at_secs.map(|v| fixed(v, 3)),
            })
        })
        .collect();
    let mut timeline: Vec<Value> = w
        .cluster
        .records
        .iter()
        .map(|r| json!({"atSecs": fixed(r.at.as_secs_f64(), 3), "kind": r.reason, "object": r.object, "message": r.message}))
        .chain(w.timeline.iter().map(|t| json!({"atSecs": fixed(t.at_secs, 3), "kind": t.kind, "object": t.object, "message": t.message})))
        .collect();
    timeline.sort_by(|a, b| {
        a["atSecs"]
            .as_f64()
            .partial_cmp(&b["atSecs"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let hpa: Vec<Value> = w
        .hpa_records
        .iter()
        .filter(|r| r.current != r.desired)
        .map(|r| json!({"atSecs": fixed(r.at_secs, 3), "hpa": r.hpa, "from": r.current, "to": r.desired, "proposals": r.proposals, "limitedBy": r.limited_by, "conditions": r.conditions}))
        .collect();
    let ejections: Vec<Value> = w
        .clusters
        .iter()
        .flat_map(|c| {
            c.outlier_log().iter().filter_map(move |e| {
                let action = match e.action {
                    crate::mesh::outlier::OutlierAction::Ejected => "eject",
                    crate::mesh::outlier::OutlierAction::Unejected => "uneject",
                    _ => return None,
                };
                let pod = c.pod_of(e.host).and_then(|k| w.cluster.pods.get(&k)).map(|p| p.name.clone()).unwrap_or_else(|| format!("host-{}", e.host.0));
                Some(json!({"atSecs": fixed(e.time.as_secs_f64(), 3), "cluster": format!("{}|{}", c.service, c.subset.as_deref().unwrap_or("")), "pod": pod, "action": action}))
            })
        })
        .collect();
    json!({
        "schema": "twin.report/v1",
        "scenario": result.name,
        "description": result.description,
        "seed": result.seed,
        "durationSecs": fixed(result.duration.as_secs_f64(), 3),
        "verdict": if result.passed() { "pass" } else { "fail" },
        "expectations": result.expectations.iter().map(|(what, ok, detail)| json!({"expectation": what, "passed": ok, "observed": detail})).collect::<Vec<_>>(),
        "requests": {"arrived": w.arrivals, "ended": w.ended, "inFlightAtEnd": w.arrivals - w.ended, "byTarget": loads},
        "latency": latency,
        "authzDenied": w.deployment_names.iter().zip(&w.authz_denied).filter(|(_, n)| **n > 0).map(|(name, n)| (name.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "alerts": alerts,
        "ruleErrors": w.rule_errors.iter().collect::<Vec<_>>(),
        "sloBudgetUsed": result.slo_budget.iter().map(|(n, u)| (n.clone(), fixed(*u, 6))).collect::<serde_json::Map<_, _>>(),
        "mostReplicas": w.deployment_names.iter().zip(&w.most_replicas).map(|(n, r)| (n.clone(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "longestPendingSecs": fixed(w.longest_pending.as_secs_f64(), 3),
        "hpaRescales": hpa,
        "outlierEjections": ejections,
        "rollouts": w.rollouts.iter().map(|r| json!({
            "rollout": r.name,
            "type": r.kind,
            "startedAtSecs": fixed(r.at.as_secs_f64(), 3),
            "result": r.ended.map(|(_, how)| match how {
                crate::scenario::schema::RolloutResult::Succeeded => "succeeded",
                crate::scenario::schema::RolloutResult::Aborted => "aborted",
            }),
            "endedAtSecs": r.ended.map(|(at, _)| fixed(at.as_secs_f64(), 3)),
            "weights": r.weights.iter().map(|(at, w)| json!({"atSecs": fixed(at.as_secs_f64(), 3), "weight": w})).collect::<Vec<_>>(),
            "checks": r.checks,
            "failedChecks": r.failed_checks,
            "serverErrors": r.server_errors,
            "meshErrors": r.mesh_errors,
        })).collect::<Vec<_>>(),
        "timeline": timeline,
        "events": result.events,
        "series": w.storage.store.len(),
        "samples": w.storage.store.n_samples(),
    })
}

/// A few lines for the terminal.
pub fn text(result: &RunResult) -> String {
    let report = json(result);
    let mut out = format!(
        "{} (seed {}): {}\n  {} requests; events {}\n",
        result.name,
        result.seed,
        if result.passed() { "PASS" } else { "FAIL" },
        result.world.arrivals,
        result.events
    );
    for (what, ok, detail) in &result.expectations {
        out.push_str(&format!(
            "  [{}] {what}: {detail}\n",
            if *ok { "ok" } else { "FAILED" }
        ));
    }
    for life in alert_lives(result) {
        out.push_str(&format!(
            "  alert {} {:?}: pending {} firing {} resolved {}\n",
            life.alert,
            life.labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .collect::<BTreeMap<_, _>>(),
            life.pending_at_secs.map_or("-".into(), |s| format!("{s}s")),
            life.firing_at_secs.map_or("-".into(), |s| format!("{s}s")),
            life.resolved_at_secs
                .map_or("-".into(), |s| format!("{s}s"))
        ));
    }
    if let Some(latency) = report["latency"].as_object() {
        for (name, l) in latency {
            out.push_str(&format!(
                "  {name}: p50 {} ms, p99 {} ms, {} requests\n",
                l["p50Ms"], l["p99Ms"], l["requests"]
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
