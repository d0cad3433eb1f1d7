//! The cluster as the scheduler sees it: nodes plus the pods bound to them, with per-node
//! aggregates kept up to date on every bind and removal, so a scheduling cycle never sums a
//! node's pods again (upstream keeps the same numbers in its `NodeInfo`).

use std::collections::HashMap;

use crate::cluster::ClusterError;
use crate::cluster::model::{GPU_RESOURCE, Node, PodDisruptionBudget, PodSpec, Resources};

/// A bound pod's id, numbered in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodId(pub u32);

/// A pod bound to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundPod {
    pub id: PodId,
    pub spec: PodSpec,
    pub node: usize,
    /// Start time in seconds on the caller's clock (smaller = earlier); `None` = not started,
    /// which preemption treats as "now".
    pub start_time_secs: Option<i64>,
    /// Cached effective requests (actual, and with scoring defaults).
    pub requests: Resources,
    pub non_zero_cpu_millis: i64,
    pub non_zero_memory_bytes: i64,
    /// Deleted by preemption and still terminating: it keeps its resources until removed.
    pub terminating_by_preemption: bool,
}

/// Per-node sums over bound pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Σ actual requests.
    pub requested: Resources,
    /// Σ requests with the 100m / 200Mi defaults (scoring).
    pub non_zero_cpu_millis: i64,
    pub non_zero_memory_bytes: i64,
    pub pod_count: i64,
    /// Slots into `ClusterState::pods`, in bind order.
    pub pods: Vec<usize>,
}

impl NodeUsage {
    pub(crate) fn add(&mut self, pod: &BoundPod, slot: usize, sign: i64) {
        self.requested.add_scaled(&pod.requests, sign);
        self.non_zero_cpu_millis += sign * pod.non_zero_cpu_millis;
        self.non_zero_memory_bytes += sign * pod.non_zero_memory_bytes;
        self.pod_count += sign;
        if sign > 0 {
            self.pods.push(slot);
        } else {
            self.pods.retain(|s| *s != slot);
        }
    }
}

/// Nodes and bound pods. Iteration is in node order and bind order, never hash order.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    nodes: Vec<Node>,
    node_index: HashMap<String, usize>, // lookup only: never iterated into output
    pods: Vec<Option<BoundPod>>,
    usage: Vec<NodeUsage>,
    /// Slots of pods with required affinity or preferred (anti-)affinity terms, the ones
    /// InterPodAffinity scoring must visit.
    with_scoring_terms: Vec<usize>,
    /// Required anti-affinity terms of bound pods, keyed by one `matchLabels` pair of their
    /// selector: an incoming pod can only match terms filed under one of its own labels.
    anti_affinity_by_label: HashMap<(String, String), Vec<usize>>, // lookup only: never iterated into output
    /// Pods with a required anti-affinity term that has no `matchLabels` to file it under.
    anti_affinity_unindexed: Vec<usize>,
    /// (label key, label value) -> slots of pods carrying that label, so an affinity term
    /// with `matchLabels` looks at the few pods it can match instead of every pod.
    label_index: HashMap<(String, String), Vec<usize>>, // lookup only: never iterated into output
    pdbs: Vec<PodDisruptionBudget>,
    /// (label key, label value) -> nodes carrying it, to turn a topology domain into nodes.
    nodes_by_label: HashMap<(String, String), Vec<usize>>, // lookup only: never iterated into output
    /// Pods nominated to a node by preemption but not bound yet, in nomination order.
    nominated: Vec<Nominated>,
    next_id: u32,
}

/// A pod waiting for its preemption victims to leave a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nominated {
    pub spec: PodSpec,
    pub node: usize,
    pub requests: Resources,
}

impl ClusterState {
    /// A cluster of `nodes` with no pods. Node names must be unique.
    pub fn new(nodes: Vec<Node>) -> Result<Self, ClusterError> {
        let mut node_index = HashMap::new();
        for (idx, node) in nodes.iter().enumerate() {
            if node_index.insert(node.name.clone(), idx).is_some() {
                return Err(ClusterError::DuplicateNode(node.name.clone()));
            }
        }
        let usage = vec![NodeUsage::default(); nodes.len()];
        let mut nodes_by_label: HashMap<(String, String), Vec<usize>> = HashMap::new(); // lookup only: never iterated into output
        for (idx, node) in nodes.iter().enumerate() {
            for (key, value) in &node.labels {
                nodes_by_label
                    .entry((key.clone(), value.clone()))
                    .or_default()
                    .push(idx);
            }
        }
        Ok(ClusterState {
            nodes,
            node_index,
            pods: Vec::new(),
            usage,
            with_scoring_terms: Vec::new(),
            anti_affinity_by_label: HashMap::new(),
            anti_affinity_unindexed: Vec::new(),
            label_index: HashMap::new(),
            pdbs: Vec::new(),
            nodes_by_label,
            nominated: Vec::new(),
            next_id: 0,
        })
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node_by_name(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).copied()
    }

    /// PodDisruptionBudgets preemption must respect where it can.
    pub fn pdbs(&self) -> &[PodDisruptionBudget] {
        &self.pdbs
    }

    pub fn add_pdb(&mut self, pdb: PodDisruptionBudget) {
        self.pdbs.push(pdb);
    }

    pub fn usage(&self, node: usize) -> &NodeUsage {
        &self.usage[node]
    }

    /// Bound pods in bind order.
    pub fn pods(&self) -> impl Iterator<Item = &BoundPod> {
        self.pods.iter().flatten()
    }

    pub fn pod(&self, id: PodId) -> Option<&BoundPod> {
        self.pods.iter().flatten().find(|p| p.id == id)
    }

    pub(crate) fn pod_at(&self, slot: usize) -> &BoundPod {
        self.pods[slot]
            .as_ref()
            .expect("slots listed in aggregates are occupied")
    }

    /// Nodes whose label `key` has `value`, in node order.
    pub fn nodes_with_label(&self, key: &str, value: &str) -> &[usize] {
        self.nodes_by_label
            .get(&(key.to_string(), value.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub(crate) fn scoring_slots(&self) -> &[usize] {
        &self.with_scoring_terms
    }

    /// Slots of bound pods whose required anti-affinity might match a pod with `labels`
    /// (sorted, no duplicates); callers still check the terms.
    pub(crate) fn anti_affinity_candidates(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Vec<usize> {
        let mut slots = self.anti_affinity_unindexed.clone();
        for (key, value) in labels {
            if let Some(list) = self
                .anti_affinity_by_label
                .get(&(key.clone(), value.clone()))
            {
                slots.extend_from_slice(list);
            }
        }
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// Slots of the pods a selector can possibly match: the shortest posting list among its
    /// `matchLabels` pairs, or `None` when it has none (the caller scans every pod). Callers
    /// still check the full selector.
    pub(crate) fn candidate_slots(
        &self,
        selector: &crate::cluster::model::LabelSelector,
    ) -> Option<&[usize]> {
        const EMPTY: &[usize] = &[];
        let mut best: Option<&[usize]> = None;
        for (key, value) in &selector.match_labels {
            let list = self
                .label_index
                .get(&(key.clone(), value.clone()))
                .map_or(EMPTY, Vec::as_slice);
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        best
    }

    /// Every occupied slot, in bind order.
    pub(crate) fn all_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(slot, _)| slot)
    }

    /// Binds `spec` to the node called `node_name` without running any filter (a snapshot of
    /// a real cluster may be overcommitted). GPU units are placed on devices when the node
    /// describes them.
    pub fn bind(
        &mut self,
        spec: PodSpec,
        node_name: &str,
        start_time_secs: Option<i64>,
    ) -> Result<PodId, ClusterError> {
        let node = self
            .node_by_name(node_name)
            .ok_or_else(|| ClusterError::UnknownNode {
                pod: spec.name.clone(),
                node: node_name.to_string(),
            })?;
        let id = PodId(self.next_id);
        let requests = spec.requests();
        let gpu_units = requests.extended.get(GPU_RESOURCE).copied().unwrap_or(0);
        if let Some(gpus) = self.nodes[node].gpus.as_mut()
            && gpu_units > 0
        {
            let units = u32::try_from(gpu_units).map_err(|_| ClusterError::Gpu {
                pod: spec.name.clone(),
                source: crate::cluster::gpu::GpuError::NotEnoughUnits {
                    requested: u32::MAX,
                    free: gpus.free_units(),
                },
            })?;
            gpus.allocate(id, units)
                .map_err(|source| ClusterError::Gpu {
                    pod: spec.name.clone(),
                    source,
                })?;
        }
        self.next_id += 1;
        let (non_zero_cpu_millis, non_zero_memory_bytes) = spec.non_zero_requests();
        let pod = BoundPod {
            id,
            spec,
            node,
            start_time_secs,
            requests,
            non_zero_cpu_millis,
            non_zero_memory_bytes,
            terminating_by_preemption: false,
        };
        let slot = self.pods.len();
        self.usage[node].add(&pod, slot, 1);
        if has_scoring_terms(&pod.spec) {
            self.with_scoring_terms.push(slot);
        }
        for term in &pod.spec.pod_anti_affinity_required {
            match term.selector.match_labels.iter().next() {
                Some((key, value)) => self
                    .anti_affinity_by_label
                    .entry((key.clone(), value.clone()))
                    .or_default()
                    .push(slot),
                None => self.anti_affinity_unindexed.push(slot),
            }
        }
        for (key, value) in &pod.spec.labels {
            self.label_index
                .entry((key.clone(), value.clone()))
                .or_default()
                .push(slot);
        }
        self.pods.push(Some(pod));
        Ok(id)
    }

    /// The physical GPUs `units` units would land on if a pod were bound to `node` now;
    /// `None` when the node describes no devices.
    pub fn preview_gpu_devices(
        &self,
        node: usize,
        units: u32,
    ) -> Option<Result<Vec<usize>, crate::cluster::gpu::GpuError>> {
        let mut gpus = self.nodes.get(node)?.gpus.clone()?;
        // A throwaway id: the copy is dropped right after.
        Some(gpus.allocate(PodId(u32::MAX), units))
    }

    /// Records that `spec` is nominated to `node_name` (after a preemption): until it is
    /// bound or the nomination cleared, pods of lower or equal priority see the node as if it
    /// already ran there. A pod has at most one nomination; a new one replaces the old.
    pub fn nominate(&mut self, spec: PodSpec, node_name: &str) -> Result<(), ClusterError> {
        let node = self
            .node_by_name(node_name)
            .ok_or_else(|| ClusterError::UnknownNode {
                pod: spec.name.clone(),
                node: node_name.to_string(),
            })?;
        self.clear_nomination(&spec.namespace, &spec.name);
        let requests = spec.requests();
        self.nominated.push(Nominated {
            spec,
            node,
            requests,
        });
        Ok(())
    }

    /// Drops the nomination of pod `namespace/name`, if any (it bound, or was deleted).
    pub fn clear_nomination(&mut self, namespace: &str, name: &str) {
        self.nominated
            .retain(|n| !(n.spec.namespace == namespace && n.spec.name == name));
    }

    /// Nominated pods, in nomination order.
    pub fn nominated(&self) -> &[Nominated] {
        &self.nominated
    }

    /// Marks a pod as deleted by preemption (`DisruptionTarget`, reason
    /// `PreemptionByScheduler`): it stays bound, holding its resources, until [`Self::remove`].
    pub fn mark_preempted(&mut self, id: PodId) -> bool {
        match self.pods.iter_mut().flatten().find(|p| p.id == id) {
            Some(pod) => {
                pod.terminating_by_preemption = true;
                true
            }
            None => false,
        }
    }

    /// Cordons or uncordons a node (`spec.unschedulable`).
    pub fn set_unschedulable(&mut self, node: usize, unschedulable: bool) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.unschedulable = unschedulable;
        }
    }

    /// Replaces a node's taints (the node lifecycle controller's unreachable taints).
    pub fn set_taints(&mut self, node: usize, taints: Vec<crate::cluster::model::Taint>) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.taints = taints;
        }
    }

    /// Removes a bound pod (deleted or preempted) and frees what it held.
    pub fn remove(&mut self, id: PodId) -> Option<BoundPod> {
        let slot = self
            .pods
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))?;
        let pod = self.pods[slot].take()?;
        self.usage[pod.node].add(&pod, slot, -1);
        self.with_scoring_terms.retain(|s| *s != slot);
        self.anti_affinity_unindexed.retain(|s| *s != slot);
        for term in &pod.spec.pod_anti_affinity_required {
            if let Some((key, value)) = term.selector.match_labels.iter().next()
                && let Some(slots) = self
                    .anti_affinity_by_label
                    .get_mut(&(key.clone(), value.clone()))
            {
                slots.retain(|s| *s != slot);
            }
        }
        for (key, value) in &pod.spec.labels {
            if let Some(slots) = self.label_index.get_mut(&(key.clone(), value.clone())) {
                slots.retain(|s| *s != slot);
            }
        }
        if let Some(gpus) = self.nodes[pod.node].gpus.as_mut() {
            gpus.release(id);
        }
        Some(pod)
    }
}

fn has_scoring_terms(spec: &PodSpec) -> bool {
    !spec.pod_affinity_required.is_empty()
        || !spec.pod_affinity_preferred.is_empty()
        || !spec.pod_anti_affinity_preferred.is_empty()
}
