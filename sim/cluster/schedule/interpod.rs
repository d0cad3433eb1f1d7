//! InterPodAffinity's PreFilter state: counts of matching pods per topology domain, built
//! once per cycle so each node's check costs O(terms + labels), never O(pods). Upstream keeps
//! the same three maps (interpodaffinity/filtering.go) and updates them through
//! AddPod/RemovePod while preemption tries victims; [`InterPodState::account`] is that update.

use std::collections::HashMap;

use crate::cluster::model::{Node, PodAffinityTerm, PodSpec};
use crate::cluster::state::ClusterState;

/// topology key -> topology value -> matching pods. Nested so lookups borrow `&str`.
type DomainCounts = HashMap<String, HashMap<String, i64>>; // lookup only: never iterated into output

fn count_of(map: &DomainCounts, key: &str, value: &str) -> i64 {
    map.get(key)
        .and_then(|values| values.get(value))
        .copied()
        .unwrap_or(0)
}

#[derive(Clone, Debug, Default)]
pub(crate) struct InterPodState {
    /// Domains holding a pod that matches *all* of the incoming pod's required affinity terms.
    affinity_counts: DomainCounts,
    /// Domains holding a pod matched by one of the incoming pod's required anti-affinity terms.
    anti_affinity_counts: DomainCounts,
    /// Domains holding a pod whose own required anti-affinity term matches the incoming pod.
    existing_anti_affinity_counts: DomainCounts,
}

fn bump(map: &mut DomainCounts, term: &PodAffinityTerm, node: &Node, delta: i64) {
    if let Some(value) = node.labels.get(&term.topology_key) {
        let values = map.entry(term.topology_key.clone()).or_default();
        let slot = values.entry(value.clone()).or_insert(0);
        *slot += delta;
        // Drop empty entries, as upstream does, so "no pod matches anywhere" stays cheap.
        if *slot == 0 {
            values.remove(value);
        }
    }
}

impl InterPodState {
    pub(crate) fn build(cluster: &ClusterState, pod: &PodSpec) -> Self {
        let mut state = InterPodState::default();
        // Existing pods' anti-affinity: only terms filed under one of the pod's labels (or
        // without matchLabels) can match it.
        for slot in cluster.anti_affinity_candidates(&pod.labels) {
            let existing = cluster.pod_at(slot);
            state.account_existing_terms(&existing.spec, &cluster.nodes()[existing.node], pod, 1);
        }
        if !pod.has_required_pod_affinity() {
            return state;
        }
        // The incoming pod's terms: look only at pods the term's labels can match.
        let mut seen = std::collections::HashSet::new();
        let mut visit = |slot: usize, state: &mut InterPodState| {
            if seen.insert(slot) {
                let existing = cluster.pod_at(slot);
                state.account_incoming_terms(
                    pod,
                    &existing.spec,
                    &cluster.nodes()[existing.node],
                    1,
                );
            }
        };
        let terms = pod
            .pod_affinity_required
            .iter()
            .chain(&pod.pod_anti_affinity_required);
        let candidates: Option<Vec<&[usize]>> = terms
            .map(|t| cluster.candidate_slots(&t.selector))
            .collect();
        match candidates {
            Some(lists) => {
                for list in lists {
                    for &slot in list {
                        visit(slot, &mut state);
                    }
                }
            }
            None => {
                for slot in cluster.all_slots() {
                    visit(slot, &mut state);
                }
            }
        }
        state
    }

    /// Adds (`delta` = 1) or removes (-1) one existing pod on `node`, as upstream's
    /// AddPod/RemovePod PreFilter extensions do.
    pub(crate) fn account(
        &mut self,
        incoming: &PodSpec,
        existing: &PodSpec,
        node: &Node,
        delta: i64,
    ) {
        self.account_existing_terms(existing, node, incoming, delta);
        self.account_incoming_terms(incoming, existing, node, delta);
    }

    fn account_existing_terms(
        &mut self,
        existing: &PodSpec,
        node: &Node,
        incoming: &PodSpec,
        delta: i64,
    ) {
        for term in &existing.pod_anti_affinity_required {
            if term.matches_pod(&existing.namespace, incoming) {
                bump(&mut self.existing_anti_affinity_counts, term, node, delta);
            }
        }
    }

    fn account_incoming_terms(
        &mut self,
        incoming: &PodSpec,
        existing: &PodSpec,
        node: &Node,
        delta: i64,
    ) {
        for term in &incoming.pod_anti_affinity_required {
            if term.matches_pod(&incoming.namespace, existing) {
                bump(&mut self.anti_affinity_counts, term, node, delta);
            }
        }
        let affinity = &incoming.pod_affinity_required;
        if !affinity.is_empty()
            && affinity
                .iter()
                .all(|t| t.matches_pod(&incoming.namespace, existing))
        {
            for term in affinity {
                bump(&mut self.affinity_counts, term, node, delta);
            }
        }
    }

    /// Per node, which anti-affinity check fails (bit 0: the pod's own terms, bit 1:
    /// existing pods' terms), found from the blocked domains through the cluster's
    /// node-label index instead of per-node lookups. Same answers as
    /// [`InterPodState::satisfies_anti_affinity`] and
    /// [`InterPodState::satisfies_existing_anti_affinity`].
    pub(crate) fn anti_affinity_masks(&self, cluster: &ClusterState, pod: &PodSpec) -> Vec<u8> {
        let mut masks = vec![0u8; cluster.nodes().len()];
        let mut mark = |counts: &DomainCounts, key: &str, bit: u8| {
            for (value, count) in counts.get(key).into_iter().flatten() {
                if *count > 0 {
                    for &node in cluster.nodes_with_label(key, value) {
                        masks[node] |= bit;
                    }
                }
            }
        };
        for term in &pod.pod_anti_affinity_required {
            mark(&self.anti_affinity_counts, &term.topology_key, 1);
        }
        for key in self.existing_anti_affinity_counts.keys() {
            mark(&self.existing_anti_affinity_counts, key, 2);
        }
        masks
    }

    /// Required pod affinity. A pod whose terms match no pod anywhere may still go where
    /// every topology key exists, if it matches its own terms (the first pod of a group).
    pub(crate) fn satisfies_affinity(&self, pod: &PodSpec, node: &Node) -> bool {
        let mut pods_exist = true;
        for term in &pod.pod_affinity_required {
            let Some(value) = node.labels.get(&term.topology_key) else {
                return false;
            };
            let count = count_of(&self.affinity_counts, &term.topology_key, value);
            if count <= 0 {
                pods_exist = false;
            }
        }
        if pods_exist {
            return true;
        }
        let none_anywhere = self.affinity_counts.values().all(HashMap::is_empty);
        none_anywhere
            && pod
                .pod_affinity_required
                .iter()
                .all(|t| t.matches_pod(&pod.namespace, pod))
    }

    pub(crate) fn satisfies_anti_affinity(&self, pod: &PodSpec, node: &Node) -> bool {
        pod.pod_anti_affinity_required.iter().all(|term| {
            node.labels.get(&term.topology_key).is_none_or(|value| {
                count_of(&self.anti_affinity_counts, &term.topology_key, value) <= 0
            })
        })
    }

    pub(crate) fn satisfies_existing_anti_affinity(&self, node: &Node) -> bool {
        self.existing_anti_affinity_counts
            .iter()
            .all(|(key, values)| {
                node.labels
                    .get(key)
                    .is_none_or(|v| values.get(v).copied().unwrap_or(0) <= 0)
            })
    }
}
