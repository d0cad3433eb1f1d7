//! Scheduling case files (spec/kubernetes.md Appendix B): a cluster snapshot, one incoming
//! pod and optionally the `expected` outcome. Read strictly: an unknown field, a malformed
//! value or a pod bound to a missing node is a diagnostic naming the file, line, column and
//! field path, and nothing is scheduled.
//!
//! Units in the file: `cpu` in millicores, `memory` in MiB, counts for the rest; a string is
//! read as a Kubernetes quantity (`"500m"`, `"2Gi"`). A node's `kubernetes.io/hostname` label
//! defaults to its name (the kubelet always sets it). Beyond Appendix B a case may carry
//! `kubernetesVersion`, `gpu` on nodes, and on pods `affinity`, `preferredAffinity`,
//! `preferredAntiAffinity`, `nodeAffinity`, `preferredNodeAffinity`, `nodeName`,
//! `nominatedNodeName` (incoming), `terminatingByPreemption` (existing), `initContainers`
//! and container `limits`.

mod locate;
mod report;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::cluster::ClusterError;
use crate::cluster::gpu::{GpuDevice, GpuSharing, NodeGpus};
use crate::cluster::model::{
    Container, GPU_RESOURCE, HOSTNAME_LABEL, LabelSelector, Node, NodeSelectorTerm,
    PodAffinityTerm, PodDisruptionBudget, PodSpec, PreemptionPolicy, PreferredSchedulingTerm,
    Requirement, ResourceList, Resources, SelectorOperator, Taint, TaintEffect, Toleration,
    TolerationOperator, WeightedPodAffinityTerm,
};
use crate::cluster::quantity::{Quantity, is_cpu_resource};
use crate::cluster::schedule::{KubernetesVersion, SchedulerConfig};
use crate::cluster::state::ClusterState;
use crate::diag::{Diagnostic, Diagnostics, Location};
pub use locate::Seg;
pub use report::{Mismatch, compare, placement_json};

const MIB: i64 = 1024 * 1024;
/// The largest amount a case may give (10^16 base units: 10 PB of memory): sums over
/// thousands of pods and the scorers' ×100 then stay far inside i64.
const MAX_AMOUNT: i64 = 10_000_000_000_000_000;
/// The most GPUs, and sharing replicas per GPU, a case node may describe.
const MAX_GPUS: u32 = 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseFile {
    name: Option<String>,
    source: Option<String>,
    note: Option<String>,
    version_notes: Option<Value>,
    kubernetes_version: Option<String>,
    nodes: Vec<CaseNode>,
    #[serde(default)]
    existing_pods: Vec<CasePod>,
    #[serde(default)]
    pdbs: Vec<CasePdb>,
    pod: CasePod,
    expected: Option<serde_json::Map<String, Value>>,
}

/// A resource amount: an integer in the case's units, or a quantity string.
enum Amount {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl serde::de::Visitor<'_> for AmountVisitor {
            type Value = Amount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer (cpu in millicores, memory in MiB, counts) or a quantity string like \"1.5Gi\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                i64::try_from(v)
                    .map(Amount::Number)
                    .map_err(|_| E::custom("amount out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                Ok(Amount::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

type AmountMap = BTreeMap<String, Amount>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseNode {
    name: String,
    capacity: Option<AmountMap>,
    allocatable: AmountMap,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: Vec<CaseTaint>,
    #[serde(default)]
    unschedulable: bool,
    gpu: Option<CaseGpu>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseTaint {
    key: String,
    #[serde(default)]
    value: String,
    effect: TaintEffect,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseGpu {
    count: u32,
    class: String,
    #[serde(rename = "memoryMiB")]
    memory_mib: u64,
    sharing: Option<CaseGpuSharing>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseGpuSharing {
    strategy: SharingStrategy,
    replicas: u32,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum SharingStrategy {
    TimeSlicing,
    Mps,
}

/// Existing and incoming pods share one shape; fields that make no sense for one of them
/// (`node` on the incoming pod) are rejected after parsing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CasePod {
    name: Option<String>,
    namespace: Option<String>,
    node: Option<String>,
    #[serde(default)]
    priority: i32,
    preemption_policy: Option<PreemptionPolicy>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    started_seconds_ago: Option<i64>,
    #[serde(default)]
    containers: Vec<CaseContainer>,
    #[serde(default)]
    init_containers: Vec<CaseContainer>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    node_affinity: Option<Vec<CaseNodeSelectorTerm>>,
    #[serde(default)]
    preferred_node_affinity: Vec<CasePreferredNodeTerm>,
    #[serde(default)]
    tolerations: Vec<CaseToleration>,
    #[serde(default)]
    affinity: Vec<CaseAffinityTerm>,
    #[serde(default)]
    anti_affinity: Vec<CaseAffinityTerm>,
    #[serde(default)]
    preferred_affinity: Vec<CaseWeightedTerm>,
    #[serde(default)]
    preferred_anti_affinity: Vec<CaseWeightedTerm>,
    node_name: Option<String>,
    nominated_node_name: Option<String>,
    #[serde(default)]
    terminating_by_preemption: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseContainer {
    name: Option<String>,
    #[serde(default)]
    requests: AmountMap,
    #[serde(default)]
    limits: AmountMap,
    restart_policy: Option<RestartPolicy>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum RestartPolicy {
    Always,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseToleration {
    #[serde(default)]
    key: String,
    #[serde(default)]
    operator: TolerationOperator,
    #[serde(default)]
    value: String,
    effect: Option<TaintEffect>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseRequirement {
    key: String,
    operator: SelectorOperator,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FullSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<CaseRequirement>,
}

/// `{"matchLabels": {...}, "matchExpressions": [...]}`, or a bare label map (Appendix B's
/// shorthand for `matchLabels`).
#[derive(Deserialize)]
#[serde(untagged)]
enum CaseSelector {
    Full(FullSelector),
    Labels(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseAffinityTerm {
    label_selector: CaseSelector,
    topology_key: String,
    #[serde(default)]
    namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseWeightedTerm {
    weight: i64,
    pod_affinity_term: CaseAffinityTerm,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseNodeSelectorTerm {
    #[serde(default)]
    match_expressions: Vec<CaseRequirement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CasePreferredNodeTerm {
    weight: i64,
    preference: CaseNodeSelectorTerm,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CasePdb {
    name: String,
    namespace: Option<String>,
    selector: CaseSelector,
    disruptions_allowed: i32,
    #[serde(default)]
    disrupted_pods: Vec<String>,
}

/// A case, read and checked: ready to schedule.
#[derive(Debug)]
pub struct ScheduleCase {
    pub name: Option<String>,
    pub source: Option<String>,
    pub note: Option<String>,
    pub version_notes: Option<Value>,
    pub config: SchedulerConfig,
    pub cluster: ClusterState,
    pub pod: PodSpec,
    /// The `expected` block as written (keys are checked; values compared by [`compare`]).
    pub expected: Option<serde_json::Map<String, Value>>,
}

/// The `expected` keys a case may carry (Appendix B).
pub const EXPECTED_FIELDS: [&str; 7] = [
    "feasibleNodes",
    "filterFailures",
    "scores",
    "selectedNode",
    "topNodes",
    "unschedulable",
    "preemption",
];

/// Collects diagnostics while lowering the parsed file.
struct Lowering<'a> {
    file: &'a Path,
    text: &'a str,
    /// The prefix added when the case is wrapped in a one-element array.
    root: Vec<Seg>,
    diags: Vec<Diagnostic>,
}

fn key(name: &str) -> Seg {
    Seg::Key(name.to_string())
}

impl Lowering<'_> {
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        let mut full = self.root.clone();
        full.extend_from_slice(path);
        let (line, column) = locate::locate(self.text, &full);
        let location = Location {
            file: self.file.to_path_buf(),
            document: 0,
            line,
            column,
        };
        self.diags
            .push(Diagnostic::error(location, locate::render(path), message));
    }

    fn amount(&mut self, path: &[Seg], name: &str, amount: &Amount) -> i64 {
        let value = match amount {
            Amount::Number(n) if name == "memory" => n.checked_mul(MIB),
            Amount::Number(n) => Some(*n),
            Amount::Text(text) => match Quantity::parse(text) {
                Ok(q) => if is_cpu_resource(name) {
                    q.milli_value()
                } else {
                    q.value()
                }
                .ok(),
                Err(err) => {
                    self.error(path, err.to_string());
                    return 0;
                }
            },
        };
        match value {
            Some(v) if (0..=MAX_AMOUNT).contains(&v) => v,
            _ => {
                self.error(
                    path,
                    format!("must be between 0 and {MAX_AMOUNT} base units"),
                );
                0
            }
        }
    }

    fn amounts(&mut self, path: &[Seg], map: &AmountMap) -> ResourceList {
        let mut out = ResourceList::new();
        for (name, amount) in map {
            let mut here = path.to_vec();
            here.push(key(name));
            let value = self.amount(&here, name, amount);
            out.insert(name.clone(), value);
        }
        out
    }

    fn requirement(
        &mut self,
        path: &[Seg],
        req: &CaseRequirement,
        node_selector: bool,
    ) -> Requirement {
        let problem = match req.operator {
            SelectorOperator::In | SelectorOperator::NotIn if req.values.is_empty() => {
                Some("needs at least one value")
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !req.values.is_empty() => {
                Some("takes no values")
            }
            SelectorOperator::Gt | SelectorOperator::Lt if !node_selector => {
                Some("Gt and Lt are for node selectors only")
            }
            SelectorOperator::Gt | SelectorOperator::Lt
                if req.values.len() != 1 || req.values[0].parse::<i64>().is_err() =>
            {
                Some("needs exactly one integer value")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            let mut here = path.to_vec();
            here.push(key("operator"));
            self.error(&here, format!("{:?} {problem}", req.operator));
        }
        Requirement {
            key: req.key.clone(),
            operator: req.operator,
            values: req.values.clone(),
        }
    }

    fn selector(&mut self, path: &[Seg], selector: &CaseSelector) -> LabelSelector {
        match selector {
            CaseSelector::Labels(labels) => LabelSelector::from_labels(labels.clone()),
            CaseSelector::Full(full) => {
                let mut expressions = Vec::new();
                for (idx, req) in full.match_expressions.iter().enumerate() {
                    let mut here = path.to_vec();
                    here.extend([key("matchExpressions"), Seg::Index(idx)]);
                    expressions.push(self.requirement(&here, req, false));
                }
                LabelSelector {
                    match_labels: full.match_labels.clone(),
                    match_expressions: expressions,
                }
            }
        }
    }

    fn term(&mut self, path: &[Seg], term: &CaseAffinityTerm) -> PodAffinityTerm {
        let mut here = path.to_vec();
        here.push(key("labelSelector"));
        if term.topology_key.is_empty() {
            let mut at = path.to_vec();
            at.push(key("topologyKey"));
            self.error(&at, "must not be empty");
        }
        PodAffinityTerm {
            selector: self.selector(&here, &term.label_selector),
            namespaces: term.namespaces.clone(),
            topology_key: term.topology_key.clone(),
        }
    }

    fn terms(
        &mut self,
        path: &[Seg],
        field: &str,
        terms: &[CaseAffinityTerm],
    ) -> Vec<PodAffinityTerm> {
        (0..terms.len())
            .map(|idx| {
                let mut here = path.to_vec();
                here.extend([key(field), Seg::Index(idx)]);
                self.term(&here, &terms[idx])
            })
            .collect()
    }

    fn weighted(
        &mut self,
        path: &[Seg],
        field: &str,
        terms: &[CaseWeightedTerm],
    ) -> Vec<WeightedPodAffinityTerm> {
        (0..terms.len())
            .map(|idx| {
                let mut here = path.to_vec();
                here.extend([key(field), Seg::Index(idx)]);
                if !(1..=100).contains(&terms[idx].weight) {
                    let mut at = here.clone();
                    at.push(key("weight"));
                    self.error(&at, "must be in 1..100");
                }
                here.push(key("podAffinityTerm"));
                WeightedPodAffinityTerm {
                    weight: terms[idx].weight,
                    term: self.term(&here, &terms[idx].pod_affinity_term),
                }
            })
            .collect()
    }

    fn node_term(&mut self, path: &[Seg], term: &CaseNodeSelectorTerm) -> NodeSelectorTerm {
        let expressions = (0..term.match_expressions.len())
            .map(|idx| {
                let mut here = path.to_vec();
                here.extend([key("matchExpressions"), Seg::Index(idx)]);
                self.requirement(&here, &term.match_expressions[idx], true)
            })
            .collect();
        NodeSelectorTerm {
            match_expressions: expressions,
        }
    }

    fn containers(
        &mut self,
        path: &[Seg],
        field: &str,
        list: &[CaseContainer],
        init: bool,
    ) -> Vec<Container> {
        let prefix = if init { "init" } else { "c" };
        (0..list.len())
            .map(|idx| {
                let mut here = path.to_vec();
                here.extend([key(field), Seg::Index(idx)]);
                let c = &list[idx];
                let mut at = here.clone();
                at.push(key("requests"));
                let requests = self.amounts(&at, &c.requests);
                at.pop();
                at.push(key("limits"));
                let limits = self.amounts(&at, &c.limits);
                if c.restart_policy.is_some() && !init {
                    at.pop();
                    at.push(key("restartPolicy"));
                    self.error(&at, "only init containers take a restartPolicy");
                }
                Container {
                    name: c.name.clone().unwrap_or_else(|| format!("{prefix}{idx}")),
                    requests,
                    limits,
                    restart_policy_always: c.restart_policy == Some(RestartPolicy::Always),
                }
            })
            .collect()
    }

    fn pod(&mut self, path: &[Seg], pod: &CasePod, default_name: &str) -> PodSpec {
        let tolerations = (0..pod.tolerations.len())
            .map(|idx| {
                let t = &pod.tolerations[idx];
                let mut here = path.to_vec();
                here.extend([key("tolerations"), Seg::Index(idx)]);
                if t.key.is_empty() && t.operator == TolerationOperator::Equal {
                    here.push(key("operator"));
                    self.error(&here, "an empty key needs operator Exists");
                } else if t.operator == TolerationOperator::Exists && !t.value.is_empty() {
                    here.push(key("value"));
                    self.error(&here, "operator Exists takes no value");
                }
                Toleration {
                    key: t.key.clone(),
                    operator: t.operator,
                    value: t.value.clone(),
                    effect: t.effect,
                }
            })
            .collect();
        let node_affinity_required = pod.node_affinity.as_ref().map(|terms| {
            (0..terms.len())
                .map(|idx| {
                    let mut here = path.to_vec();
                    here.extend([key("nodeAffinity"), Seg::Index(idx)]);
                    self.node_term(&here, &terms[idx])
                })
                .collect()
        });
        let node_affinity_preferred = (0..pod.preferred_node_affinity.len())
            .map(|idx| {
                let mut here = path.to_vec();
                here.extend([key("preferredNodeAffinity"), Seg::Index(idx)]);
                let term = &pod.preferred_node_affinity[idx];
                if !(1..=100).contains(&term.weight) {
                    let mut at = here.clone();
                    at.push(key("weight"));
                    self.error(&at, "must be in 1..100");
                }
                here.push(key("preference"));
                PreferredSchedulingTerm {
                    weight: term.weight,
                    preference: self.node_term(&here, &term.preference),
                }
            })
            .collect();
        PodSpec {
            name: pod.name.clone().unwrap_or_else(|| default_name.to_string()),
            namespace: pod
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            labels: pod.labels.clone(),
            priority: pod.priority,
            preemption_policy: pod.preemption_policy.unwrap_or_default(),
            containers: self.containers(path, "containers", &pod.containers, false),
            init_containers: self.containers(path, "initContainers", &pod.init_containers, true),
            node_selector: pod.node_selector.clone(),
            node_affinity_required,
            node_affinity_preferred,
            tolerations,
            pod_affinity_required: self.terms(path, "affinity", &pod.affinity),
            pod_anti_affinity_required: self.terms(path, "antiAffinity", &pod.anti_affinity),
            pod_affinity_preferred: self.weighted(
                path,
                "preferredAffinity",
                &pod.preferred_affinity,
            ),
            pod_anti_affinity_preferred: self.weighted(
                path,
                "preferredAntiAffinity",
                &pod.preferred_anti_affinity,
            ),
            node_name: pod.node_name.clone(),
            nominated_node_name: pod.nominated_node_name.clone(),
        }
    }

    fn node(&mut self, idx: usize, node: &CaseNode) -> Node {
        let path = [key("nodes"), Seg::Index(idx)];
        let mut allocatable = Resources::from_list(&self.amounts(
            &[path[0].clone(), path[1].clone(), key("allocatable")],
            &node.allocatable,
        ));
        let capacity = match &node.capacity {
            Some(map) => Resources::from_list(
                &self.amounts(&[path[0].clone(), path[1].clone(), key("capacity")], map),
            ),
            None => allocatable.clone(),
        };
        let gpus = node.gpu.as_ref().map(|gpu| {
            let sharing = match &gpu.sharing {
                None => GpuSharing::Exclusive,
                Some(s) if s.replicas == 0 => {
                    self.error(
                        &[
                            path[0].clone(),
                            path[1].clone(),
                            key("gpu"),
                            key("sharing"),
                            key("replicas"),
                        ],
                        "must be at least 1",
                    );
                    GpuSharing::Exclusive
                }
                Some(CaseGpuSharing {
                    strategy: SharingStrategy::TimeSlicing,
                    replicas,
                }) => GpuSharing::TimeSlicing {
                    replicas: *replicas,
                },
                Some(CaseGpuSharing {
                    strategy: SharingStrategy::Mps,
                    replicas,
                }) => GpuSharing::Mps {
                    replicas: *replicas,
                },
            };
            let sharing = if gpu.count > MAX_GPUS || sharing.replicas() > MAX_GPUS {
                self.error(
                    &[path[0].clone(), path[1].clone(), key("gpu")],
                    format!("count and sharing replicas may be at most {MAX_GPUS}"),
                );
                GpuSharing::Exclusive
            } else {
                sharing
            };
            let memory_bytes = gpu.memory_mib.checked_mul(MIB as u64).unwrap_or_else(|| {
                self.error(
                    &[
                        path[0].clone(),
                        path[1].clone(),
                        key("gpu"),
                        key("memoryMiB"),
                    ],
                    "out of range",
                );
                0
            });
            let device = GpuDevice {
                class: gpu.class.clone(),
                memory_bytes,
            };
            NodeGpus::new(vec![device; gpu.count.min(MAX_GPUS) as usize], sharing)
        });
        if let Some(gpus) = &gpus {
            let advertised = gpus.advertised_units();
            match node.allocatable.get(GPU_RESOURCE) {
                None => allocatable.set(GPU_RESOURCE, advertised),
                Some(_) if allocatable.get(GPU_RESOURCE) == advertised => {}
                Some(_) => self.error(
                    &[
                        path[0].clone(),
                        path[1].clone(),
                        key("allocatable"),
                        key(GPU_RESOURCE),
                    ],
                    format!(
                        "the device plugin would advertise {advertised} (GPUs × sharing replicas)"
                    ),
                ),
            }
        }
        let mut labels = node.labels.clone();
        labels
            .entry(HOSTNAME_LABEL.to_string())
            .or_insert_with(|| node.name.clone());
        let taints = node
            .taints
            .iter()
            .map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect,
            })
            .collect();
        Node {
            name: node.name.clone(),
            labels,
            taints,
            capacity,
            allocatable,
            unschedulable: node.unschedulable,
            gpus,
        }
    }
}

fn bad_case(diags: Vec<Diagnostic>) -> ClusterError {
    ClusterError::Case(Diagnostics(diags))
}

/// Strips serde_json's " at line L column C" tail (the location goes in front instead).
fn bare_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_string(),
        None => text,
    }
}

/// Reads a case from `text` (`file` names it in diagnostics).
pub fn parse(file: &Path, text: &str) -> Result<ScheduleCase, ClusterError> {
    let location = |line: usize, column: usize| Location {
        file: file.to_path_buf(),
        document: 0,
        line,
        column,
    };
    let wrapped = text.trim_start().starts_with('[');
    let parsed: Result<Vec<CaseFile>, _> = if wrapped {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
    } else {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map(|one| vec![one])
    };
    let mut cases = parsed.map_err(|err| {
        let inner = err.inner();
        let path = err.path().to_string();
        let field = if path == "." { String::new() } else { path };
        bad_case(vec![Diagnostic::error(
            location(inner.line(), inner.column()),
            field,
            bare_message(inner),
        )])
    })?;
    if cases.len() != 1 {
        return Err(bad_case(vec![Diagnostic::error(
            location(1, 1),
            "",
            format!(
                "a case file holds one case (an object or a one-element array), found {}",
                cases.len()
            ),
        )]));
    }
    let case = cases.remove(0);
    let mut low = Lowering {
        file,
        text,
        root: if wrapped {
            vec![Seg::Index(0)]
        } else {
            Vec::new()
        },
        diags: Vec::new(),
    };

    let version = match &case.kubernetes_version {
        None => KubernetesVersion::DEFAULT,
        Some(text) => KubernetesVersion::parse(text).unwrap_or_else(|| {
            low.error(
                &[key("kubernetesVersion")],
                format!("{text:?} is not a Kubernetes version like \"v1.35\""),
            );
            KubernetesVersion::DEFAULT
        }),
    };
    let config = SchedulerConfig {
        kubernetes_version: version,
        ..SchedulerConfig::default()
    };

    let mut nodes = Vec::new();
    let mut seen = BTreeMap::new();
    for (idx, node) in case.nodes.iter().enumerate() {
        if seen.insert(node.name.clone(), idx).is_some() {
            low.error(
                &[key("nodes"), Seg::Index(idx), key("name")],
                format!("duplicate node name {:?}", node.name),
            );
        }
        nodes.push(low.node(idx, node));
    }
    if nodes.is_empty() {
        low.error(&[key("nodes")], "a case needs at least one node");
    }

    let mut bound = Vec::new();
    let mut pod_names = BTreeMap::new();
    for (idx, pod) in case.existing_pods.iter().enumerate() {
        let path = [key("existingPods"), Seg::Index(idx)];
        let spec = low.pod(&path, pod, &format!("pod-{idx}"));
        if pod.name.is_none() {
            low.error(&path, "missing field `name`");
        }
        if pod_names
            .insert((spec.namespace.clone(), spec.name.clone()), idx)
            .is_some()
        {
            low.error(
                &[path[0].clone(), path[1].clone(), key("name")],
                format!("duplicate pod {}/{}", spec.namespace, spec.name),
            );
        }
        if pod.preemption_policy.is_some()
            || pod.node_name.is_some()
            || pod.nominated_node_name.is_some()
        {
            low.error(
                &path,
                "preemptionPolicy, nodeName and nominatedNodeName belong to the incoming pod",
            );
        }
        match &pod.node {
            None => low.error(&path, "missing field `node`"),
            Some(node) if !seen.contains_key(node) => low.error(
                &[path[0].clone(), path[1].clone(), key("node")],
                format!("pod is bound to node {node:?}, which does not exist"),
            ),
            Some(node) => bound.push((
                spec,
                node.clone(),
                pod.started_seconds_ago.map(|ago| -ago),
                idx,
            )),
        }
    }
    let incoming = low.pod(&[key("pod")], &case.pod, "incoming");
    if case.pod.node.is_some()
        || case.pod.started_seconds_ago.is_some()
        || case.pod.terminating_by_preemption
    {
        low.error(
            &[key("pod")],
            "the incoming pod is not bound yet: drop `node`, `startedSecondsAgo` and `terminatingByPreemption`",
        );
    }
    if let Some(nominated) = &case.pod.nominated_node_name
        && !seen.contains_key(nominated)
    {
        low.error(
            &[key("pod"), key("nominatedNodeName")],
            format!("node {nominated:?} does not exist"),
        );
    }

    let mut pdbs = Vec::new();
    for (idx, pdb) in case.pdbs.iter().enumerate() {
        let path = [key("pdbs"), Seg::Index(idx), key("selector")];
        let selector = low.selector(&path, &pdb.selector);
        pdbs.push(PodDisruptionBudget {
            name: pdb.name.clone(),
            namespace: pdb
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            selector,
            disruptions_allowed: pdb.disruptions_allowed,
            disrupted_pods: pdb.disrupted_pods.clone(),
        });
    }

    if let Some(expected) = &case.expected {
        for (name, value) in expected {
            if !EXPECTED_FIELDS.contains(&name.as_str()) {
                low.error(
                    &[key("expected"), key(name)],
                    format!(
                        "unknown field `{name}`, expected one of {}",
                        EXPECTED_FIELDS.join(", ")
                    ),
                );
            } else if let Err(problem) = report::check_expected_shape(name, value) {
                low.error(&[key("expected"), key(name)], problem);
            }
        }
    }

    if !low.diags.is_empty() {
        return Err(bad_case(low.diags));
    }
    let mut cluster = ClusterState::new(nodes)?;
    for (spec, node, start, idx) in bound {
        match cluster.bind(spec, &node, start) {
            Ok(id) if case.existing_pods[idx].terminating_by_preemption => {
                cluster.mark_preempted(id);
            }
            Ok(_) => {}
            Err(err) => low.error(&[key("existingPods"), Seg::Index(idx)], err.to_string()),
        }
    }
    if !low.diags.is_empty() {
        return Err(bad_case(low.diags));
    }
    for pdb in pdbs {
        cluster.add_pdb(pdb);
    }
    Ok(ScheduleCase {
        name: case.name,
        source: case.source,
        note: case.note,
        version_notes: case.version_notes,
        config,
        cluster,
        pod: incoming,
        expected: case.expected,
    })
}

/// Reads a case file from disk.
pub fn load(file: &Path) -> Result<ScheduleCase, ClusterError> {
    let text = std::fs::read_to_string(file).map_err(|err| {
        bad_case(vec![Diagnostic::error(
            Location {
                file: file.to_path_buf(),
                ..Location::default()
            },
            "",
            format!("cannot read: {err}"),
        )])
    })?;
    parse(file, &text)
}

#[cfg(test)]
mod tests;
