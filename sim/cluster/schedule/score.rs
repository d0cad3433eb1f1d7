//! The default Score plugins that matter without images or spread constraints, each with
//! upstream's arithmetic (integer truncation where Go truncates) and normalization.

use std::collections::HashMap;

use crate::cluster::model::{Node, PodSpec, TaintEffect};
use crate::cluster::state::{ClusterState, NodeUsage};

pub(crate) const MAX_NODE_SCORE: i64 = 100;

/// NodeResourcesFit with the LeastAllocated strategy over cpu and memory (weight 1 each),
/// using requests with the 100m / 200Mi defaults. A resource the node does not offer is left
/// out, weight and all.
pub(crate) fn least_allocated(node: &Node, usage: &NodeUsage, pod_non_zero: (i64, i64)) -> i64 {
    let pairs = [
        (
            node.allocatable.cpu_millis,
            usage.non_zero_cpu_millis + pod_non_zero.0,
        ),
        (
            node.allocatable.memory_bytes,
            usage.non_zero_memory_bytes + pod_non_zero.1,
        ),
    ];
    let (mut total, mut weights) = (0i64, 0i64);
    for (allocatable, requested) in pairs {
        if allocatable == 0 {
            continue;
        }
        let score = if requested > allocatable {
            0
        } else {
            (allocatable - requested) * MAX_NODE_SCORE / allocatable
        };
        total += score;
        weights += 1;
    }
    if weights == 0 { 0 } else { total / weights }
}

/// NodeResourcesBalancedAllocation over cpu and memory with actual requests: 100 × (1 −
/// the standard deviation of the two utilization fractions), truncated.
pub(crate) fn balanced_allocation(node: &Node, usage: &NodeUsage, pod_request: (i64, i64)) -> i64 {
    let fraction = |allocatable: i64, requested: i64| {
        (allocatable != 0).then(|| (requested as f64 / allocatable as f64).min(1.0))
    };
    let cpu = fraction(
        node.allocatable.cpu_millis,
        usage.requested.cpu_millis + pod_request.0,
    );
    let memory = fraction(
        node.allocatable.memory_bytes,
        usage.requested.memory_bytes + pod_request.1,
    );
    // With one resource left the deviation is 0, as upstream's general formula gives.
    let std = match (cpu, memory) {
        (Some(a), Some(b)) => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// TaintToleration raw score: PreferNoSchedule taints not tolerated by the pod's
/// tolerations whose effect is empty or PreferNoSchedule.
pub(crate) fn intolerable_prefer_no_schedule(pod: &PodSpec, node: &Node) -> i64 {
    let scoring_tolerations = || {
        pod.tolerations
            .iter()
            .filter(|t| t.effect.is_none_or(|e| e == TaintEffect::PreferNoSchedule))
    };
    node.taints
        .iter()
        .filter(|taint| taint.effect == TaintEffect::PreferNoSchedule)
        .filter(|taint| !scoring_tolerations().any(|t| t.tolerates(taint)))
        .count() as i64
}

/// helper.DefaultNormalizeScore: scale to 0..100 by the maximum; `reverse` flips it.
pub(crate) fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

/// NodeAffinity raw score: the sum of weights of the preferred terms the node matches.
pub(crate) fn preferred_node_affinity(pod: &PodSpec, node: &Node) -> i64 {
    pod.node_affinity_preferred
        .iter()
        .filter(|t| t.preference.matches(&node.labels))
        .map(|t| t.weight)
        .sum()
}

/// InterPodAffinity's PreScore map: topology key -> value -> Σ signed weights. `None` when
/// nothing contributes (the plugin is skipped).
/// Scores by topology key and value: looked up per node and summed, never iterated into output.
pub(crate) type TopologyScores = HashMap<String, HashMap<String, i64>>; // lookup only

pub(crate) fn inter_pod_topology_scores(
    cluster: &ClusterState,
    pod: &PodSpec,
    hard_pod_affinity_weight: i64,
) -> Option<TopologyScores> {
    // lookup only: never iterated into output
    let has_preferred =
        !pod.pod_affinity_preferred.is_empty() || !pod.pod_anti_affinity_preferred.is_empty();
    let mut scores: HashMap<String, HashMap<String, i64>> = HashMap::new(); // lookup only: never iterated into output
    let mut add = |key: &str, node: &Node, amount: i64| {
        if let Some(value) = node.labels.get(key) {
            *scores
                .entry(key.to_string())
                .or_default()
                .entry(value.clone())
                .or_insert(0) += amount;
        }
    };
    let mut visit = |slot_pod: &crate::cluster::state::BoundPod| {
        let node = &cluster.nodes()[slot_pod.node];
        let existing = &slot_pod.spec;
        for weighted in &pod.pod_affinity_preferred {
            if weighted.term.matches_pod(&pod.namespace, existing) {
                add(&weighted.term.topology_key, node, weighted.weight);
            }
        }
        for weighted in &pod.pod_anti_affinity_preferred {
            if weighted.term.matches_pod(&pod.namespace, existing) {
                add(&weighted.term.topology_key, node, -weighted.weight);
            }
        }
        if hard_pod_affinity_weight > 0 && !node.labels.is_empty() {
            for term in &existing.pod_affinity_required {
                if term.matches_pod(&existing.namespace, pod) {
                    add(&term.topology_key, node, hard_pod_affinity_weight);
                }
            }
        }
        for weighted in &existing.pod_affinity_preferred {
            if weighted.term.matches_pod(&existing.namespace, pod) {
                add(&weighted.term.topology_key, node, weighted.weight);
            }
        }
        for weighted in &existing.pod_anti_affinity_preferred {
            if weighted.term.matches_pod(&existing.namespace, pod) {
                add(&weighted.term.topology_key, node, -weighted.weight);
            }
        }
    };
    if has_preferred {
        for bound in cluster.pods() {
            visit(bound);
        }
    } else {
        // Without preferred terms of its own, only pods with affinity or preferred terms can
        // contribute (required anti-affinity of existing pods does not score).
        for &slot in cluster.scoring_slots() {
            visit(cluster.pod_at(slot));
        }
    }
    if scores.is_empty() {
        None
    } else {
        Some(scores)
    }
}

pub(crate) fn inter_pod_node_score(
    scores: &HashMap<String, HashMap<String, i64>>, // lookup only: never iterated into output
    node: &Node,
) -> i64 {
    scores
        .iter()
        .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
        .sum()
}

/// InterPodAffinity normalization: min-max scaling to 0..100 (all 0 when every node ties).
pub(crate) fn min_max_normalize(scores: &mut [i64]) {
    let (Some(min), Some(max)) = (scores.iter().copied().min(), scores.iter().copied().max())
    else {
        return;
    };
    let spread = max - min;
    for score in scores.iter_mut() {
        *score = if spread > 0 {
            (MAX_NODE_SCORE as f64 * ((*score - min) as f64 / spread as f64)) as i64
        } else {
            0
        };
    }
}
