//! Reports of a run: the stable JSON (schema in `docs/report.md`), the terminal summary, the
//! run directory ([`run_dir`]: report, series, rule files) and the exports made from it
//! ([`export`]: OpenMetrics, promtool unit tests).
//!
//! Invariants: the JSON is a pure function of the run (ordered maps, fixed float precision), so
//! the same scenario and seed give the same bytes.

pub mod export;
pub mod run_dir;

use std::collections::BTreeMap;

use serde_json::{Value, json};

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
        "alerts": alerts,
        "ruleErrors": w.rule_errors.iter().collect::<Vec<_>>(),
        "sloBudgetUsed": result.slo_budget.iter().map(|(n, u)| (n.clone(), fixed(*u, 6))).collect::<serde_json::Map<_, _>>(),
        "mostReplicas": w.deployment_names.iter().zip(&w.most_replicas).map(|(n, r)| (n.clone(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "longestPendingSecs": fixed(w.longest_pending.as_secs_f64(), 3),
        "hpaRescales": hpa,
        "outlierEjections": ejections,
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
