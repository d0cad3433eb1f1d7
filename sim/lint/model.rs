//! The small, flat view of an inventory that the checks read.
//!
//! The checks never touch the manifest types directly: `lower.rs` copies out just the fields
//! they need (label maps, quantities already in milli-units, query text, field paths), so each
//! check reads like the rule it states and can be unit-tested from a hand-built [`Model`].
//! Every object keeps a [`SourceId`] into [`Model::sources`] so a finding can point at the
//! object's file, document and line, and a field path so it can point at the field itself.
//!
//! Maps are `BTreeMap`s and lists keep the inventory's (file, document) order, so findings come
//! out in the same order on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::diag::Location;
use crate::manifests::{FieldPositions, Origin};

/// Labels or annotations, ordered so messages list them the same way every time.
pub type Labels = BTreeMap<String, String>;

/// Index into [`Model::sources`].
pub type SourceId = usize;

/// `kind/namespace/name`, the way a finding names its object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for cluster-scoped objects and for files that are not Kubernetes objects.
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where an object came from, and a way to find one of its fields.
#[derive(Clone, Debug)]
pub struct Source {
    pub object: ObjectRef,
    /// Where the object starts (for an alert rule, where the rule starts).
    pub origin: Location,
    /// The loader's field positions for the object's document, when it came from a file.
    pub positions: Option<(Origin, Arc<FieldPositions>)>,
    /// Prefixed to a finding's field path before looking it up in `positions`.
    pub path_prefix: String,
}

/// Everything the checks read.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub sources: Vec<Source>,
    pub workloads: Vec<Workload>,
    pub services: Vec<Service>,
    pub hpas: Vec<Hpa>,
    pub quotas: Vec<Quota>,
    pub destination_rules: Vec<DestinationRule>,
    pub virtual_services: Vec<VirtualService>,
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Istio Gateways defined, as `(namespace, name)`.
    pub gateways: BTreeSet<(String, String)>,
    pub priority_classes: BTreeSet<String>,
    /// Namespaced objects defined, as `(namespace, name)`, by kind.
    pub service_accounts: BTreeSet<(String, String)>,
    pub secrets: BTreeSet<(String, String)>,
    pub config_maps: BTreeSet<(String, String)>,
    pub persistent_volume_claims: BTreeSet<(String, String)>,
    /// What in the inventory serves `custom.metrics.k8s.io` (a prometheus-adapter Deployment,
    /// an APIService, an adapter ConfigMap), if anything does.
    pub metrics_adapters: Vec<String>,
    pub alerts: Vec<Alert>,
    pub slos: Vec<SloObject>,
    pub scrape_jobs: Vec<ScrapeJob>,
    pub dashboard_queries: Vec<DashboardQuery>,
    pub argo_applications: Vec<ArgoApplication>,
    /// The nodes of the topology, when one was given.
    pub nodes: Option<Vec<Node>>,
}

impl Model {
    pub fn add_source(&mut self, source: Source) -> SourceId {
        self.sources.push(source);
        self.sources.len() - 1
    }
}

/// A label selector as Kubernetes writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: Labels,
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry (also used for node selector terms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist` (and `Gt`, `Lt` for node affinity).
    pub operator: String,
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a label set satisfies the requirement, as apimachinery's `labels.Selector` does.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // Gt/Lt compare integers; a non-integer label or operand never matches.
            "Gt" | "Lt" => {
                let (Some(label), Some(operand)) = (value, self.values.first()) else {
                    return false;
                };
                match (label.parse::<i64>(), operand.parse::<i64>()) {
                    (Ok(l), Ok(o)) if self.operator == "Gt" => l > o,
                    (Ok(l), Ok(o)) => l < o,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

impl LabelSelector {
    /// Whether `labels` satisfies every `matchLabels` pair and every expression. An empty
    /// selector matches everything, as in Kubernetes.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| req.matches(labels))
    }
}

/// Whether every pair of `wanted` is in `labels` (Service selectors, Istio subsets).
pub fn contains_all(labels: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Shows a label map as `k=v, k=v`.
pub fn show_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "(none)".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pod toleration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `Exists` or `Equal` (empty means `Equal`).
    pub operator: String,
    pub value: String,
    /// Empty matches every effect.
    pub effect: String,
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl Toleration {
    /// The scheduler's toleration test (spec/kubernetes.md §2.3).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "Exists" => true,
            // An empty key with `Equal` is invalid upstream; it never matches here.
            _ => !self.key.is_empty() && self.value == taint.value,
        }
    }
}

/// One container of a pod template.
#[derive(Clone, Debug, Default)]
pub struct Container {
    pub name: String,
    /// Field path of the container, e.g. `spec.template.spec.containers[0]`.
    pub field: String,
    pub image: String,
    pub image_pull_policy: Option<String>,
    /// Requests by resource name, in milli-units (`cpu: "1"` is 1000, `memory: 2Gi` is
    /// 2 * 2^30 * 1000).
    pub requests_milli: BTreeMap<String, i128>,
    pub limits_milli: BTreeMap<String, i128>,
    pub has_liveness_probe: bool,
    pub has_readiness_probe: bool,
}

/// `maxSurge` / `maxUnavailable`: an absolute number or a percentage of the replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// Resolves against `replicas`, rounding up (maxSurge) or down (maxUnavailable) as the
    /// Deployment controller does.
    pub fn resolve(&self, replicas: i64, round_up: bool) -> i64 {
        match self {
            IntOrPercent::Int(n) => *n,
            IntOrPercent::Percent(p) if round_up => (p * replicas + 99) / 100,
            IntOrPercent::Percent(p) => p * replicas / 100,
        }
    }
}

/// A Deployment (the only workload kind of the plan).
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    /// `spec.replicas` as written (`None` when absent: Kubernetes defaults it to 1).
    pub replicas: Option<i32>,
    pub pod_labels: Labels,
    pub pod_annotations: Labels,
    pub node_selector: Labels,
    /// Required node affinity: the pod fits a node matching any term; a term matches when all
    /// its requirements do.
    pub required_node_terms: Vec<Vec<Requirement>>,
    pub tolerations: Vec<Toleration>,
    /// Required pod anti-affinity terms on `kubernetes.io/hostname`.
    pub hostname_anti_affinity: Vec<LabelSelector>,
    pub containers: Vec<Container>,
    pub priority_class: Option<String>,
    pub service_account: Option<String>,
    /// Objects the pod template names: `(name, field path)`.
    pub secret_refs: Vec<(String, String)>,
    pub config_map_refs: Vec<(String, String)>,
    pub pvc_refs: Vec<(String, String)>,
    /// `None` when the strategy is Recreate.
    pub max_surge: Option<IntOrPercent>,
    pub max_unavailable: Option<IntOrPercent>,
}

impl Workload {
    /// Pod requests summed over app containers, in milli-units.
    pub fn pod_requests_milli(&self) -> BTreeMap<String, i128> {
        sum_resources(self.containers.iter().map(|c| &c.requests_milli))
    }

    pub fn pod_limits_milli(&self) -> BTreeMap<String, i128> {
        sum_resources(self.containers.iter().map(|c| &c.limits_milli))
    }

    pub fn gpu_count(&self) -> i128 {
        self.pod_requests_milli()
            .get(GPU_RESOURCE)
            .copied()
            .unwrap_or(0)
            / 1000
    }

    /// Whether the pods repel each other per node: a required hostname term selecting them.
    pub fn one_pod_per_node(&self) -> bool {
        self.hostname_anti_affinity
            .iter()
            .any(|sel| sel.matches(&self.pod_labels))
    }
}

/// The extended resource name NVIDIA's device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

fn sum_resources<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, i128>>,
) -> BTreeMap<String, i128> {
    let mut total = BTreeMap::new();
    for map in maps {
        for (name, milli) in map {
            *total.entry(name.clone()).or_insert(0) += milli;
        }
    }
    total
}

#[derive(Clone, Debug, Default)]
pub struct Service {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    /// `None` for a Service without a selector (endpoints managed by hand).
    pub selector: Option<Labels>,
}

#[derive(Clone, Debug, Default)]
pub struct Hpa {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    pub target_kind: String,
    pub target_name: String,
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    pub metrics: Vec<HpaMetric>,
}

#[derive(Clone, Debug, Default)]
pub struct HpaMetric {
    /// `Resource`, `ContainerResource`, `Pods`, `Object` or `External`.
    pub kind: String,
    pub metric_name: String,
    /// e.g. `spec.metrics[2]`.
    pub field: String,
}

#[derive(Clone, Debug, Default)]
pub struct Quota {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    /// `spec.hard` in milli-units.
    pub hard_milli: BTreeMap<String, i128>,
}

#[derive(Clone, Debug, Default)]
pub struct DestinationRule {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    pub host: String,
    pub subsets: Vec<Subset>,
    /// Outlier detection blocks: the top-level one and each subset's, with their field paths.
    pub outlier_detections: Vec<OutlierDetection>,
}

#[derive(Clone, Debug, Default)]
pub struct Subset {
    pub name: String,
    pub labels: Labels,
    /// e.g. `spec.subsets[0]`.
    pub field: String,
}

/// The fields of an `outlierDetection` block that change what Envoy runs.
#[derive(Clone, Debug, Default)]
pub struct OutlierDetection {
    /// e.g. `spec.trafficPolicy.outlierDetection`.
    pub field: String,
    pub consecutive_errors: Option<i64>,
    pub consecutive_5xx_errors: Option<i64>,
    pub consecutive_gateway_errors: Option<i64>,
    pub max_ejection_percent: Option<i64>,
    pub min_health_percent: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct VirtualService {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    /// `(gateway as written, field path)`; `mesh` is the reserved name for sidecars.
    pub gateways: Vec<(String, String)>,
    pub destinations: Vec<RouteDestination>,
}

#[derive(Clone, Debug, Default)]
pub struct RouteDestination {
    /// e.g. `spec.http[1].route[0].destination`.
    pub field: String,
    pub host: String,
    pub subset: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct AuthorizationPolicy {
    pub src: SourceId,
    pub namespace: String,
    pub name: String,
    /// `ALLOW` when absent.
    pub action: String,
    pub rules: Vec<AuthorizationRule>,
}

#[derive(Clone, Debug, Default)]
pub struct AuthorizationRule {
    pub field: String,
    /// One line each: `principals cluster.local/ns/x/sa/y`, `methods GET paths /health/*`.
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub has_when: bool,
}

/// One alerting rule.
#[derive(Clone, Debug, Default)]
pub struct Alert {
    pub src: SourceId,
    pub group: String,
    pub name: String,
    pub expr: String,
    /// e.g. `groups[0].rules[3].expr`.
    pub expr_field: String,
    pub annotations: Labels,
    /// Field path prefix for annotations, e.g. `groups[0].rules[3].annotations`.
    pub annotations_field: String,
}

/// A Sloth SLO document.
#[derive(Clone, Debug, Default)]
pub struct SloObject {
    pub src: SourceId,
    pub name: String,
    /// `sloth.slok.dev/v1` (the CRD, camelCase) or `prometheus/v1` (snake_case).
    pub schema: String,
    /// Every key path present in the document's spec, as written (`spec.slos[0].sli.events.error_query`).
    pub raw_field_paths: Vec<String>,
    pub objectives: Vec<SloObjective>,
}

#[derive(Clone, Debug, Default)]
pub struct SloObjective {
    pub name: String,
    /// Percent of good events, e.g. 99.9.
    pub objective_percent: Option<f64>,
    /// e.g. `spec.slos[1]`.
    pub field: String,
    /// `(query, field path)` for each SLI query present, in any spelling.
    pub error_query: Option<(String, String)>,
    pub total_query: Option<(String, String)>,
    pub error_ratio_query: Option<(String, String)>,
}

/// One Prometheus scrape job.
#[derive(Clone, Debug, Default)]
pub struct ScrapeJob {
    pub src: SourceId,
    /// e.g. `data.prometheus.yml.scrape_configs[0]`.
    pub field: String,
    pub job_name: String,
    /// Kubernetes service discovery roles (`pod`, `endpoints`, `node`, ...).
    pub kubernetes_sd_roles: Vec<String>,
    /// Namespaces service discovery is limited to (empty: all).
    pub kubernetes_sd_namespaces: Vec<String>,
    pub metrics_path: Option<String>,
    pub static_targets: Vec<String>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

#[derive(Clone, Debug, Default)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    /// Prometheus's default is `(.*)`.
    pub regex: Option<String>,
    /// Prometheus's default is `replace`.
    pub action: Option<String>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
}

/// One Grafana panel target.
#[derive(Clone, Debug, Default)]
pub struct DashboardQuery {
    pub src: SourceId,
    pub panel: String,
    pub expr: String,
    pub field: String,
}

#[derive(Clone, Debug, Default)]
pub struct ArgoApplication {
    pub src: SourceId,
    pub name: String,
    pub destination_namespace: String,
    pub self_heal: bool,
    /// Whether `ignoreDifferences` covers `/spec/replicas` of Deployments.
    pub ignores_replicas: bool,
}

/// One node of the topology.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// Allocatable by resource name, in milli-units (`nvidia.com/gpu` included).
    pub allocatable_milli: BTreeMap<String, i128>,
    pub gpu_class: Option<String>,
}

impl Node {
    /// Whether the pod passes this node's nodeSelector, required node affinity and taint
    /// filters (spec/kubernetes.md §2.3), ignoring resources and other pods.
    pub fn admits(&self, workload: &Workload) -> bool {
        let selector_ok = contains_all(&self.labels, &workload.node_selector);
        let affinity_ok = workload.required_node_terms.is_empty()
            || workload
                .required_node_terms
                .iter()
                .any(|term| term.iter().all(|req| req.matches(&self.labels)));
        let taints_ok = self
            .taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|taint| workload.tolerations.iter().any(|tol| tol.tolerates(taint)));
        selector_ok && affinity_ok && taints_ok
    }

    /// Whether one pod of the workload fits the node's allocatable when the node is empty.
    pub fn fits_empty(&self, workload: &Workload) -> bool {
        workload
            .pod_requests_milli()
            .iter()
            .filter(|(_, milli)| **milli > 0)
            .all(|(name, milli)| {
                self.allocatable_milli
                    .get(name)
                    .is_some_and(|alloc| alloc >= milli)
            })
    }
}
