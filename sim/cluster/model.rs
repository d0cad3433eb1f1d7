//! The model types the scheduler and quota admission read: nodes, pods as the scheduler sees
//! them, taints, tolerations, selectors and affinity terms. They are our own small types (not
//! k8s-openapi); `manifests` lowers the real objects into them.
//!
//! Units: cpu in millicores, memory and storage in bytes, everything else in counts.

use std::collections::BTreeMap;

use crate::cluster::gpu::NodeGpus;

/// The resource name of NVIDIA GPUs as the device plugin advertises them.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The well-known hostname label; every node carries it.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The well-known zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A resource list as written on a container: resource name to amount in base units
/// (`cpu` in millicores, `memory` in bytes). A key that is absent was not set, which quota
/// admission cares about (`must specify ...`).
pub type ResourceList = BTreeMap<String, i64>;

/// Aggregated amounts the scheduler computes with. Extended resources (`nvidia.com/gpu`) are
/// kept by name in `extended`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
    /// Pod slots (only meaningful for a node's allocatable).
    pub pods: i64,
    pub extended: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list, splitting the well-known names from extended ones.
    pub fn from_list(list: &ResourceList) -> Resources {
        let mut out = Resources::default();
        for (name, amount) in list {
            out.set(name, *amount);
        }
        out
    }

    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.cpu_millis,
            "memory" => self.memory_bytes,
            "ephemeral-storage" => self.ephemeral_storage_bytes,
            "pods" => self.pods,
            other => self.extended.get(other).copied().unwrap_or(0),
        }
    }

    pub fn set(&mut self, name: &str, amount: i64) {
        match name {
            "cpu" => self.cpu_millis = amount,
            "memory" => self.memory_bytes = amount,
            "ephemeral-storage" => self.ephemeral_storage_bytes = amount,
            "pods" => self.pods = amount,
            other => {
                self.extended.insert(other.to_string(), amount);
            }
        }
    }

    /// Adds `other` times `sign` (+1 or -1) into `self`; the pod count is left alone.
    pub fn add_scaled(&mut self, other: &Resources, sign: i64) {
        self.cpu_millis += sign * other.cpu_millis;
        self.memory_bytes += sign * other.memory_bytes;
        self.ephemeral_storage_bytes += sign * other.ephemeral_storage_bytes;
        for (name, amount) in &other.extended {
            *self.extended.entry(name.clone()).or_insert(0) += sign * amount;
        }
    }

    /// Component-wise maximum (used for init containers).
    pub fn max_with(&mut self, other: &Resources) {
        self.cpu_millis = self.cpu_millis.max(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.max(other.memory_bytes);
        self.ephemeral_storage_bytes = self
            .ephemeral_storage_bytes
            .max(other.ephemeral_storage_bytes);
        for (name, amount) in &other.extended {
            let slot = self.extended.entry(name.clone()).or_insert(0);
            *slot = (*slot).max(*amount);
        }
    }

    /// True when nothing at all is requested (the pod count aside).
    pub fn is_zero(&self) -> bool {
        self.cpu_millis == 0
            && self.memory_bytes == 0
            && self.ephemeral_storage_bytes == 0
            && self.extended.values().all(|v| *v == 0)
    }
}

/// A taint's effect.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    /// Empty when the taint has no value.
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

/// A pod's toleration. An empty `key` with `Exists` tolerates every taint; `effect: None`
/// matches every effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration matches `taint` (component-helpers `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(effect) = self.effect
            && effect != taint.effect
        {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            // An empty key with Equal never matches (validation requires Exists for it).
            TolerationOperator::Equal => !self.key.is_empty() && self.value == taint.value,
        }
    }
}

/// `matchExpressions` operators of label selectors and node selector terms. `Gt`/`Lt` are
/// valid in node selector terms only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                // Both sides must parse as integers, otherwise the requirement does not match.
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == SelectorOperator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A label selector (`matchLabels` and `matchExpressions`, ANDed). The empty selector
/// matches everything, except where a caller says otherwise (PDBs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    pub fn from_labels(labels: BTreeMap<String, String>) -> Self {
        LabelSelector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// One `nodeSelectorTerms` entry: all expressions must match (an empty term matches nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
}

impl NodeSelectorTerm {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_expressions.is_empty()
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// A preferred node affinity term with its weight (1..100).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferredSchedulingTerm {
    pub weight: i64,
    pub preference: NodeSelectorTerm,
}

/// A pod (anti-)affinity term: pods matching `selector` in `namespaces` (empty: the owning
/// pod's namespace) within the topology domain named by `topology_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodAffinityTerm {
    pub selector: LabelSelector,
    pub namespaces: Vec<String>,
    pub topology_key: String,
}

impl PodAffinityTerm {
    /// Whether `pod` is selected by this term owned by a pod of `owner_namespace`.
    pub fn matches_pod(&self, owner_namespace: &str, pod: &PodSpec) -> bool {
        let in_namespace = if self.namespaces.is_empty() {
            pod.namespace == owner_namespace
        } else {
            self.namespaces.contains(&pod.namespace)
        };
        in_namespace && self.selector.matches(&pod.labels)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedPodAffinityTerm {
    pub weight: i64,
    pub term: PodAffinityTerm,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum PreemptionPolicy {
    #[default]
    PreemptLowerPriority,
    Never,
}

/// A container's resources. `restart_policy_always` marks a sidecar-style init container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub requests: ResourceList,
    pub limits: ResourceList,
    pub restart_policy_always: bool,
}

/// A pod as the scheduler and quota admission see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    pub preemption_policy: PreemptionPolicy,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity: the node must match at least one term. `None` = not set.
    pub node_affinity_required: Option<Vec<NodeSelectorTerm>>,
    pub node_affinity_preferred: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub pod_affinity_required: Vec<PodAffinityTerm>,
    pub pod_anti_affinity_required: Vec<PodAffinityTerm>,
    pub pod_affinity_preferred: Vec<WeightedPodAffinityTerm>,
    pub pod_anti_affinity_preferred: Vec<WeightedPodAffinityTerm>,
    /// `spec.nodeName` set by the user: only that node passes the NodeName filter.
    pub node_name: Option<String>,
    /// `status.nominatedNodeName`: set by an earlier preemption; while lower-priority pods
    /// on that node are still terminating, the pod waits instead of preempting again.
    pub nominated_node_name: Option<String>,
}

/// The scheduler's defaults for containers that do not request cpu or memory, used by
/// scoring only (`NonMissingContainerRequests`): 100 millicores and 200 MiB.
pub const DEFAULT_CPU_REQUEST_MILLIS: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST_BYTES: i64 = 200 * 1024 * 1024;

impl PodSpec {
    /// The effective request of the pod: max(Σ app containers + Σ sidecars, max over regular
    /// init containers of (its request + sidecars started before it)).
    pub fn requests(&self) -> Resources {
        self.effective(|c| Resources::from_list(&c.requests))
    }

    /// The effective limits, computed like [`PodSpec::requests`].
    pub fn limits(&self) -> Resources {
        self.effective(|c| Resources::from_list(&c.limits))
    }

    /// Requests with the scoring defaults applied to containers missing cpu or memory.
    pub fn non_zero_requests(&self) -> (i64, i64) {
        let total = self.effective(|c| {
            let mut r = Resources::from_list(&c.requests);
            if !c.requests.contains_key("cpu") {
                r.cpu_millis = DEFAULT_CPU_REQUEST_MILLIS;
            }
            if !c.requests.contains_key("memory") {
                r.memory_bytes = DEFAULT_MEMORY_REQUEST_BYTES;
            }
            r
        });
        (total.cpu_millis, total.memory_bytes)
    }

    fn effective(&self, of: impl Fn(&Container) -> Resources) -> Resources {
        let mut sum = Resources::default();
        for container in &self.containers {
            sum.add_scaled(&of(container), 1);
        }
        let mut sidecars = Resources::default();
        let mut init_max = Resources::default();
        for container in &self.init_containers {
            let own = of(container);
            if container.restart_policy_always {
                sidecars.add_scaled(&own, 1);
                init_max.max_with(&sidecars);
            } else {
                let mut with_sidecars = own;
                with_sidecars.add_scaled(&sidecars, 1);
                init_max.max_with(&with_sidecars);
            }
        }
        sum.add_scaled(&sidecars, 1);
        sum.max_with(&init_max);
        sum
    }

    pub fn has_required_pod_affinity(&self) -> bool {
        !self.pod_affinity_required.is_empty() || !self.pod_anti_affinity_required.is_empty()
    }

    pub fn has_any_pod_affinity(&self) -> bool {
        self.has_required_pod_affinity()
            || !self.pod_affinity_preferred.is_empty()
            || !self.pod_anti_affinity_preferred.is_empty()
    }
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub capacity: Resources,
    /// What the scheduler may hand out; never capacity.
    pub allocatable: Resources,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// Physical GPUs and how they are shared, when the node has any described.
    pub gpus: Option<NodeGpus>,
}

impl Node {
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(ZONE_LABEL).map(String::as_str)
    }
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDisruptionBudget {
    pub name: String,
    pub namespace: String,
    pub selector: LabelSelector,
    pub disruptions_allowed: i32,
    /// Pods the API server already counted as disrupted (`status.disruptedPods`).
    pub disrupted_pods: Vec<String>,
}
