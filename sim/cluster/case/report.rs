//! A placement in the case format's `expected` shape, and the comparison with a case's
//! `expected` block.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cluster::schedule::Placement;
use crate::cluster::state::ClusterState;

/// The outcome as one JSON object with exactly the `expected` fields (Appendix B).
pub fn placement_json(cluster: &ClusterState, placement: &Placement) -> Value {
    let nodes = cluster.nodes();
    let name = |idx: usize| Value::String(nodes[idx].name.clone());
    let mut feasible: Vec<&str> = placement
        .feasible
        .iter()
        .map(|&i| nodes[i].name.as_str())
        .collect();
    feasible.sort_unstable();
    let mut failures = Map::new();
    let mut failing: Vec<(usize, &crate::cluster::schedule::FilterFailure)> = placement
        .verdicts
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|f| (i, f)))
        .collect();
    failing.sort_by(|a, b| nodes[a.0].name.cmp(&nodes[b.0].name));
    for (idx, failure) in failing {
        failures.insert(
            nodes[idx].name.clone(),
            json!({"reasons": failure.reasons, "unresolvable": failure.unresolvable}),
        );
    }
    let mut scores = Map::new();
    let mut ordered: Vec<_> = placement.scores.iter().collect();
    ordered.sort_by(|a, b| nodes[a.node].name.cmp(&nodes[b.node].name));
    for s in ordered {
        let mut entry = Map::new();
        entry.insert("NodeResourcesFit".into(), json!(s.resources_fit));
        entry.insert(
            "NodeResourcesBalancedAllocation".into(),
            json!(s.balanced_allocation),
        );
        entry.insert("TaintToleration".into(), json!(s.taint_toleration));
        if let Some(v) = s.node_affinity {
            entry.insert("NodeAffinity".into(), json!(v));
        }
        if let Some(v) = s.inter_pod_affinity {
            entry.insert("InterPodAffinity".into(), json!(v));
        }
        entry.insert("total".into(), json!(s.total));
        scores.insert(nodes[s.node].name.clone(), Value::Object(entry));
    }
    // A tie has no single winner upstream (it picks at random), so the field is null.
    let selected = match placement.selected {
        Some(idx) if !placement.is_tie() => name(idx),
        _ => Value::Null,
    };
    let unschedulable = match &placement.unschedulable {
        None => Value::Null,
        Some(u) => json!({"reasonCounts": u.reason_counts, "message": u.message}),
    };
    let preemption = match &placement.preemption {
        None => Value::Null,
        Some(p) => {
            let victims: Vec<String> = p
                .victims
                .iter()
                .map(|id| {
                    cluster
                        .pod(*id)
                        .map(|b| b.spec.name.clone())
                        .unwrap_or_default()
                })
                .collect();
            json!({"nominatedNode": name(p.nominated_node), "victims": victims, "pdbViolations": p.pdb_violations})
        }
    };
    json!({
        "feasibleNodes": feasible,
        "filterFailures": failures,
        "scores": scores,
        "selectedNode": selected,
        "topNodes": placement.top_nodes.iter().map(|&i| name(i)).collect::<Vec<_>>(),
        "unschedulable": unschedulable,
        "preemption": preemption,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFailure {
    #[serde(rename = "reasons")]
    _reasons: Vec<String>,
    #[serde(rename = "unresolvable")]
    _unresolvable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedUnschedulable {
    #[serde(rename = "reasonCounts")]
    _reason_counts: Option<BTreeMap<String, usize>>,
    #[serde(rename = "message")]
    _message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedPreemption {
    #[serde(rename = "nominatedNode")]
    _nominated_node: String,
    #[serde(rename = "victims")]
    _victims: Vec<String>,
    #[serde(rename = "pdbViolations")]
    _pdb_violations: i64,
}

const SCORE_KEYS: [&str; 6] = [
    "NodeResourcesFit",
    "NodeResourcesBalancedAllocation",
    "TaintToleration",
    "NodeAffinity",
    "InterPodAffinity",
    "total",
];

/// Checks the shape of one `expected` field; the message says what is wrong.
pub(crate) fn check_expected_shape(field: &str, value: &Value) -> Result<(), String> {
    let shape = |r: Result<(), serde_json::Error>| r.map_err(|e| e.to_string());
    match field {
        "feasibleNodes" | "topNodes" => shape(Vec::<String>::deserialize(value).map(|_| ())),
        "selectedNode" => shape(Option::<String>::deserialize(value).map(|_| ())),
        "filterFailures" => {
            shape(BTreeMap::<String, ExpectedFailure>::deserialize(value).map(|_| ()))
        }
        "unschedulable" => shape(Option::<ExpectedUnschedulable>::deserialize(value).map(|_| ())),
        "preemption" => shape(Option::<ExpectedPreemption>::deserialize(value).map(|_| ())),
        "scores" => {
            let scores = BTreeMap::<String, BTreeMap<String, Option<i64>>>::deserialize(value)
                .map_err(|e| e.to_string())?;
            for (node, plugins) in scores {
                if let Some(bad) = plugins.keys().find(|k| !SCORE_KEYS.contains(&k.as_str())) {
                    return Err(format!(
                        "node {node:?}: unknown score `{bad}`, expected one of {}",
                        SCORE_KEYS.join(", ")
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!("unknown field `{field}`")),
    }
}

/// One difference between `expected` and the outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub field: String,
    pub expected: Value,
    pub actual: Value,
}

fn sorted_strings(value: &Value) -> Value {
    let mut items: Vec<Value> = value.as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    Value::Array(items)
}

/// Compares a case's `expected` with [`placement_json`]'s output. Lists of node names
/// compare as sets; per-node score objects and `unschedulable` compare only the keys the
/// case gives (a case may leave out the message); everything else compares exactly.
pub fn compare(expected: &Map<String, Value>, actual: &Value) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (field, want) in expected {
        let got = actual.get(field).cloned().unwrap_or(Value::Null);
        let mut push = |field: String, want: &Value, got: &Value| {
            out.push(Mismatch {
                field,
                expected: want.clone(),
                actual: got.clone(),
            });
        };
        match field.as_str() {
            "feasibleNodes" | "topNodes" => {
                if sorted_strings(want) != sorted_strings(&got) {
                    push(field.clone(), want, &got);
                }
            }
            "scores" => {
                let (Some(want_nodes), Some(got_nodes)) = (want.as_object(), got.as_object())
                else {
                    push(field.clone(), want, &got);
                    continue;
                };
                let mut want_keys: Vec<&String> = want_nodes.keys().collect();
                let mut got_keys: Vec<&String> = got_nodes.keys().collect();
                want_keys.sort();
                got_keys.sort();
                if want_keys != got_keys {
                    push(
                        format!("{field} (nodes)"),
                        &json!(want_keys),
                        &json!(got_keys),
                    );
                    continue;
                }
                for (node, plugins) in want_nodes {
                    for (plugin, score) in plugins.as_object().into_iter().flatten() {
                        let actual_score =
                            got_nodes[node].get(plugin).cloned().unwrap_or(Value::Null);
                        if *score != actual_score {
                            push(format!("{field}.{node}.{plugin}"), score, &actual_score);
                        }
                    }
                }
            }
            "unschedulable" => match (want.as_object(), got.as_object()) {
                (Some(want_fields), Some(got_fields)) => {
                    for (key, value) in want_fields {
                        let actual_value = got_fields.get(key).cloned().unwrap_or(Value::Null);
                        if *value != actual_value {
                            push(format!("{field}.{key}"), value, &actual_value);
                        }
                    }
                }
                _ if *want != got => push(field.clone(), want, &got),
                _ => {}
            },
            _ => {
                if *want != got {
                    push(field.clone(), want, &got);
                }
            }
        }
    }
    out
}
