//! Lowering: the manifests' objects (k8s-openapi types and the topology) into the cluster's own
//! small model types, so the scheduler, quota admission and the runtime never see k8s-openapi.
//!
//! Quantities are read exactly (`manifests::quantity`); CPU becomes millicores, memory bytes
//! (rounded up, as `Quantity.Value()` does), extended resources whole counts (rounded up).
//!
//! Invariants: a field that cannot be lowered is a [`LowerError`] naming the object and the
//! field path, never a default; priority comes from the named PriorityClass, as the Priority
//! admission plugin resolves it (a missing class is an error, as the API server rejects the pod).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use super::gpu::{GpuDevice, GpuSharing, NodeGpus};
use super::kubelet::{Probe, ProbeError, ProbeFields, ProbeKind};
use super::model::{
    Container, GPU_RESOURCE, LabelSelector, Node, NodeSelectorTerm, PodAffinityTerm, PodSpec,
    PreemptionPolicy, PreferredSchedulingTerm, Requirement, ResourceList, Resources,
    SelectorOperator, Taint, TaintEffect, Toleration, TolerationOperator, WeightedPodAffinityTerm,
};
use super::quota::ResourceQuota;
use crate::diag::{Diagnostic, Location};
use crate::manifests::configs::{GpuSharing as SharingBlock, GpuSharingStrategy};
use crate::manifests::quantity::{Quantity, parse_quantity};
use crate::manifests::topology::{Taint as TopologyTaint, TaintEffect as TopologyEffect, Topology};
use crate::manifests::{Inventory, Sourced};

/// A field that could not be lowered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", diagnostic.headline())]
pub struct LowerError {
    pub diagnostic: Diagnostic,
}

fn error_at<T>(object: &Sourced<T>, field: &str, message: String) -> LowerError {
    LowerError {
        diagnostic: Diagnostic::error(object.field_location(field), field, message),
    }
}

/// The kubelet-facing part of a container: what it runs and how it is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub startup: Option<Probe>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    /// `limits.memory` [bytes], the OOM-kill line; `None` when unlimited.
    pub memory_limit_bytes: Option<i64>,
}

/// A Deployment as the runtime drives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentModel {
    pub name: String,
    pub namespace: String,
    pub replicas: i32,
    pub selector: LabelSelector,
    /// The pod template as the scheduler sees it (name left empty: pods get generated names).
    pub template: PodSpec,
    pub containers: Vec<ContainerRuntime>,
    pub strategy: Strategy,
    pub min_ready_seconds: i64,
    pub progress_deadline_seconds: i64,
    pub termination_grace_seconds: i64,
    pub location: Location,
}

/// The rollout strategy, fenceposts still as written (resolved against spec.replicas per sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

/// An absolute count or a percentage, as `intstr.IntOrString` carries them (the rollout
/// step's own type, so the lowered strategy feeds it directly).
pub use super::rollout::IntOrPercent;

fn int_or_percent(
    value: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Option<IntOrPercent> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match value {
        IntOrString::Int(v) => Some(IntOrPercent::Int(i64::from(*v))),
        IntOrString::String(text) => text
            .strip_suffix('%')
            .and_then(|p| p.parse().ok())
            .map(IntOrPercent::Percent),
    }
}

/// Base units of a quantity for a resource: millicores for cpu, counts (rounded up) otherwise.
pub fn resource_amount(name: &str, quantity: &Quantity) -> Option<i64> {
    let amount = if name == "cpu" || name.ends_with(".cpu") {
        quantity.millis
    } else {
        quantity.value_ceil()
    };
    i64::try_from(amount).ok()
}

fn resource_list<T>(
    object: &Sourced<T>,
    field: &str,
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Result<ResourceList, LowerError> {
    let mut out = ResourceList::new();
    for (name, quantity) in list.into_iter().flatten() {
        let path = format!("{field}.{name}");
        let parsed =
            parse_quantity(&quantity.0).map_err(|err| error_at(object, &path, err.to_string()))?;
        let amount = resource_amount(name, &parsed)
            .ok_or_else(|| error_at(object, &path, format!("{:?} is too large", quantity.0)))?;
        out.insert(name.clone(), amount);
    }
    Ok(out)
}

fn operator(text: &str) -> Option<SelectorOperator> {
    Some(match text {
        "In" => SelectorOperator::In,
        "NotIn" => SelectorOperator::NotIn,
        "Exists" => SelectorOperator::Exists,
        "DoesNotExist" => SelectorOperator::DoesNotExist,
        "Gt" => SelectorOperator::Gt,
        "Lt" => SelectorOperator::Lt,
        _ => return None,
    })
}

fn label_selector<T>(
    object: &Sourced<T>,
    field: &str,
    selector: &meta::LabelSelector,
) -> Result<LabelSelector, LowerError> {
    let mut out = LabelSelector::from_labels(selector.match_labels.clone().unwrap_or_default());
    for (idx, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let op = operator(&expr.operator)
            .filter(|op| !matches!(op, SelectorOperator::Gt | SelectorOperator::Lt))
            .ok_or_else(|| {
                error_at(
                    object,
                    &format!("{field}.matchExpressions[{idx}].operator"),
                    format!("{:?} is not a valid label selector operator", expr.operator),
                )
            })?;
        out.match_expressions.push(Requirement {
            key: expr.key.clone(),
            operator: op,
            values: expr.values.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

fn node_term<T>(
    object: &Sourced<T>,
    field: &str,
    term: &core::NodeSelectorTerm,
) -> Result<NodeSelectorTerm, LowerError> {
    let mut out = NodeSelectorTerm::default();
    for (idx, expr) in term.match_expressions.iter().flatten().enumerate() {
        let op = operator(&expr.operator).ok_or_else(|| {
            error_at(
                object,
                &format!("{field}.matchExpressions[{idx}].operator"),
                format!("{:?} is not a valid node selector operator", expr.operator),
            )
        })?;
        out.match_expressions.push(Requirement {
            key: expr.key.clone(),
            operator: op,
            values: expr.values.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

fn pod_term<T>(
    object: &Sourced<T>,
    field: &str,
    term: &core::PodAffinityTerm,
) -> Result<PodAffinityTerm, LowerError> {
    let selector = match &term.label_selector {
        Some(selector) => label_selector(object, &format!("{field}.labelSelector"), selector)?,
        // A term without a selector selects no pod (upstream: a nil selector matches nothing).
        None => LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: String::new(),
                operator: SelectorOperator::In,
                values: Vec::new(),
            }],
        },
    };
    Ok(PodAffinityTerm {
        selector,
        namespaces: term.namespaces.clone().unwrap_or_default(),
        topology_key: term.topology_key.clone(),
    })
}

/// The required and preferred terms of a podAffinity or podAntiAffinity block at `base`.
#[allow(clippy::type_complexity)]
fn pod_terms<T>(
    object: &Sourced<T>,
    base: &str,
    terms: Option<(
        &Option<Vec<core::PodAffinityTerm>>,
        &Option<Vec<core::WeightedPodAffinityTerm>>,
    )>,
) -> Result<(Vec<PodAffinityTerm>, Vec<WeightedPodAffinityTerm>), LowerError> {
    let mut required = Vec::new();
    let mut preferred = Vec::new();
    if let Some((req, pref)) = terms {
        for (idx, term) in req.iter().flatten().enumerate() {
            required.push(pod_term(
                object,
                &format!("{base}.requiredDuringSchedulingIgnoredDuringExecution[{idx}]"),
                term,
            )?);
        }
        for (idx, term) in pref.iter().flatten().enumerate() {
            let field = format!(
                "{base}.preferredDuringSchedulingIgnoredDuringExecution[{idx}].podAffinityTerm"
            );
            preferred.push(WeightedPodAffinityTerm {
                weight: i64::from(term.weight),
                term: pod_term(object, &field, &term.pod_affinity_term)?,
            });
        }
    }
    Ok((required, preferred))
}

fn probe<T>(
    object: &Sourced<T>,
    field: &str,
    kind: ProbeKind,
    probe: Option<&core::Probe>,
) -> Result<Option<Probe>, LowerError> {
    let Some(p) = probe else { return Ok(None) };
    let fields = ProbeFields {
        initial_delay_seconds: p.initial_delay_seconds.map(i64::from),
        period_seconds: p.period_seconds.map(i64::from),
        timeout_seconds: p.timeout_seconds.map(i64::from),
        success_threshold: p.success_threshold.map(i64::from),
        failure_threshold: p.failure_threshold.map(i64::from),
    };
    Probe::from_fields(kind, fields).map(Some).map_err(
        |ProbeError {
             field: name,
             value,
             why,
         }| {
            error_at(
                object,
                &format!("{field}.{name}"),
                format!("Invalid value: {value}: {why}"),
            )
        },
    )
}

/// The priority a pod template resolves to: its PriorityClass's value (0 without one, or the
/// globalDefault class's value when one exists).
fn priority(
    inventory: &Inventory,
    deployment: &Sourced<Deployment>,
    spec: &core::PodSpec,
) -> Result<(i32, PreemptionPolicy), LowerError> {
    let classes = inventory.priority_classes();
    let policy = |text: Option<&String>| match text.map(String::as_str) {
        Some("Never") => PreemptionPolicy::Never,
        _ => PreemptionPolicy::PreemptLowerPriority,
    };
    match &spec.priority_class_name {
        Some(name) => {
            let class = classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| {
                    error_at(
                        deployment,
                        "spec.template.spec.priorityClassName",
                        format!("no PriorityClass with name {name} was found"),
                    )
                })?;
            Ok((
                class.value,
                policy(
                    spec.preemption_policy
                        .as_ref()
                        .or(class.preemption_policy.as_ref()),
                ),
            ))
        }
        None => {
            let default = classes.iter().find(|c| c.global_default == Some(true));
            Ok((
                default.map_or(0, |c| c.value),
                policy(spec.preemption_policy.as_ref()),
            ))
        }
    }
}

/// Lowers one Deployment.
pub fn deployment(
    inventory: &Inventory,
    deployment: &Sourced<Deployment>,
) -> Result<DeploymentModel, LowerError> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let namespace = deployment
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let spec = deployment
        .spec
        .as_ref()
        .ok_or_else(|| error_at(deployment, "spec", "a Deployment needs a spec".to_string()))?;
    let pod = spec.template.spec.as_ref().ok_or_else(|| {
        error_at(
            deployment,
            "spec.template.spec",
            "the pod template needs a spec".to_string(),
        )
    })?;
    let base = "spec.template.spec";
    let mut containers = Vec::new();
    let mut runtimes = Vec::new();
    for (idx, c) in pod.containers.iter().enumerate() {
        let field = format!("{base}.containers[{idx}]");
        let resources = c.resources.as_ref();
        let requests = resource_list(
            deployment,
            &format!("{field}.resources.requests"),
            resources.and_then(|r| r.requests.as_ref()),
        )?;
        let limits = resource_list(
            deployment,
            &format!("{field}.resources.limits"),
            resources.and_then(|r| r.limits.as_ref()),
        )?;
        // As the API server defaults it: a limit without a request sets the request.
        let mut requests = requests;
        for (resource, amount) in &limits {
            requests.entry(resource.clone()).or_insert(*amount);
        }
        runtimes.push(ContainerRuntime {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            startup: probe(
                deployment,
                &format!("{field}.startupProbe"),
                ProbeKind::Startup,
                c.startup_probe.as_ref(),
            )?,
            readiness: probe(
                deployment,
                &format!("{field}.readinessProbe"),
                ProbeKind::Readiness,
                c.readiness_probe.as_ref(),
            )?,
            liveness: probe(
                deployment,
                &format!("{field}.livenessProbe"),
                ProbeKind::Liveness,
                c.liveness_probe.as_ref(),
            )?,
            memory_limit_bytes: limits.get("memory").copied(),
        });
        containers.push(Container {
            name: c.name.clone(),
            requests,
            limits,
            restart_policy_always: false,
        });
    }
    let mut init_containers = Vec::new();
    for (idx, c) in pod.init_containers.iter().flatten().enumerate() {
        let field = format!("{base}.initContainers[{idx}]");
        let resources = c.resources.as_ref();
        init_containers.push(Container {
            name: c.name.clone(),
            requests: resource_list(
                deployment,
                &format!("{field}.resources.requests"),
                resources.and_then(|r| r.requests.as_ref()),
            )?,
            limits: resource_list(
                deployment,
                &format!("{field}.resources.limits"),
                resources.and_then(|r| r.limits.as_ref()),
            )?,
            restart_policy_always: c.restart_policy.as_deref() == Some("Always"),
        });
    }
    let mut tolerations = Vec::new();
    for (idx, t) in pod.tolerations.iter().flatten().enumerate() {
        let field = format!("{base}.tolerations[{idx}]");
        let operator = match t.operator.as_deref() {
            None | Some("Equal") => TolerationOperator::Equal,
            Some("Exists") => TolerationOperator::Exists,
            Some(other) => {
                return Err(error_at(
                    deployment,
                    &format!("{field}.operator"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Equal\", \"Exists\""
                    ),
                ));
            }
        };
        let effect = match t.effect.as_deref() {
            None | Some("") => None,
            Some("NoSchedule") => Some(TaintEffect::NoSchedule),
            Some("PreferNoSchedule") => Some(TaintEffect::PreferNoSchedule),
            Some("NoExecute") => Some(TaintEffect::NoExecute),
            Some(other) => {
                return Err(error_at(
                    deployment,
                    &format!("{field}.effect"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                    ),
                ));
            }
        };
        tolerations.push(Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator,
            value: t.value.clone().unwrap_or_default(),
            effect,
        });
    }
    let affinity = pod.affinity.as_ref();
    let mut node_affinity_required = None;
    let mut node_affinity_preferred = Vec::new();
    if let Some(node) = affinity.and_then(|a| a.node_affinity.as_ref()) {
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let mut terms = Vec::new();
            for (idx, term) in required.node_selector_terms.iter().enumerate() {
                terms.push(node_term(deployment, &format!("{base}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{idx}]"), term)?);
            }
            node_affinity_required = Some(terms);
        }
        for (idx, pref) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let field = format!(
                "{base}.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{idx}]"
            );
            node_affinity_preferred.push(PreferredSchedulingTerm {
                weight: i64::from(pref.weight),
                preference: node_term(
                    deployment,
                    &format!("{field}.preference"),
                    &pref.preference,
                )?,
            });
        }
    }
    // Pod affinity and anti-affinity have the same shape: required terms and weighted
    // preferred ones, lowered by one function.
    let (pod_affinity_required, pod_affinity_preferred) = pod_terms(
        deployment,
        &format!("{base}.affinity.podAffinity"),
        affinity.and_then(|a| a.pod_affinity.as_ref()).map(|pa| {
            (
                &pa.required_during_scheduling_ignored_during_execution,
                &pa.preferred_during_scheduling_ignored_during_execution,
            )
        }),
    )?;
    let (pod_anti_affinity_required, pod_anti_affinity_preferred) = pod_terms(
        deployment,
        &format!("{base}.affinity.podAntiAffinity"),
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .map(|pa| {
                (
                    &pa.required_during_scheduling_ignored_during_execution,
                    &pa.preferred_during_scheduling_ignored_during_execution,
                )
            }),
    )?;
    let (priority, preemption_policy) = priority(inventory, deployment, pod)?;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template = PodSpec {
        name: String::new(),
        namespace: namespace.clone(),
        labels,
        priority,
        preemption_policy,
        containers,
        init_containers,
        node_selector: pod.node_selector.clone().unwrap_or_default(),
        node_affinity_required,
        node_affinity_preferred,
        tolerations,
        pod_affinity_required,
        pod_anti_affinity_required,
        pod_affinity_preferred,
        pod_anti_affinity_preferred,
        node_name: pod.node_name.clone(),
        nominated_node_name: None,
    };
    let strategy = match spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        Some("Recreate") => Strategy::Recreate,
        _ => {
            let rolling = spec
                .strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref());
            let read =
                |value: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
                 field: &str|
                 -> Result<IntOrPercent, LowerError> {
                    match value {
                        None => Ok(IntOrPercent::Percent(25)),
                        Some(v) => int_or_percent(v).ok_or_else(|| {
                            error_at(
                                deployment,
                                field,
                                format!("{v:?} is neither a count nor a percentage"),
                            )
                        }),
                    }
                };
            Strategy::RollingUpdate {
                max_surge: read(
                    rolling.and_then(|r| r.max_surge.as_ref()),
                    "spec.strategy.rollingUpdate.maxSurge",
                )?,
                max_unavailable: read(
                    rolling.and_then(|r| r.max_unavailable.as_ref()),
                    "spec.strategy.rollingUpdate.maxUnavailable",
                )?,
            }
        }
    };
    let selector = label_selector(deployment, "spec.selector", &spec.selector)?;
    Ok(DeploymentModel {
        name,
        namespace,
        replicas: spec.replicas.unwrap_or(1),
        selector,
        template,
        containers: runtimes,
        strategy,
        min_ready_seconds: i64::from(spec.min_ready_seconds.unwrap_or(0)),
        progress_deadline_seconds: i64::from(spec.progress_deadline_seconds.unwrap_or(600)),
        termination_grace_seconds: pod.termination_grace_period_seconds.unwrap_or(30),
        location: deployment.origin.location(),
    })
}

fn taint(t: &TopologyTaint) -> Taint {
    Taint {
        key: t.key.clone(),
        value: t.value.clone().unwrap_or_default(),
        effect: match t.effect {
            TopologyEffect::NoSchedule => TaintEffect::NoSchedule,
            TopologyEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
            TopologyEffect::NoExecute => TaintEffect::NoExecute,
        },
    }
}

/// How the inventory's GPU sharing block asks the device plugin to share GPUs.
pub fn gpu_sharing(block: Option<&SharingBlock>) -> GpuSharing {
    match block {
        None => GpuSharing::Exclusive,
        Some(b) if b.replicas <= 1 => GpuSharing::Exclusive,
        Some(b) => match b.strategy {
            GpuSharingStrategy::Mps => GpuSharing::Mps {
                replicas: b.replicas,
            },
            GpuSharingStrategy::TimeSlicing => GpuSharing::TimeSlicing {
                replicas: b.replicas,
            },
        },
    }
}

/// The topology's nodes, with each GPU advertised as `sharing.replicas()` units of
/// `nvidia.com/gpu`, as the device plugin does under time-slicing or MPS.
pub fn nodes(topology: &Topology, sharing: GpuSharing) -> Vec<Node> {
    topology
        .nodes
        .iter()
        .map(|n| {
            let mut allocatable = Resources::default();
            for (resource, quantity) in &n.allocatable {
                if let Some(amount) = resource_amount(resource, quantity) {
                    allocatable.set(resource, amount);
                }
            }
            let gpus = n.gpus.as_ref().map(|g| {
                let memory_bytes = g
                    .memory
                    .as_ref()
                    .map_or(0, |m| u64::try_from(m.value_ceil()).unwrap_or(0));
                let devices = (0..g.count)
                    .map(|_| GpuDevice {
                        class: g.class.clone(),
                        memory_bytes,
                    })
                    .collect();
                NodeGpus::new(devices, sharing)
            });
            if let Some(g) = &n.gpus {
                allocatable.set(
                    GPU_RESOURCE,
                    i64::from(g.count) * i64::from(sharing.replicas()),
                );
            }
            Node {
                name: n.name.clone(),
                labels: n.labels.clone(),
                taints: n.taints.iter().map(taint).collect(),
                capacity: allocatable.clone(),
                allocatable,
                unschedulable: false,
                gpus,
            }
        })
        .collect()
}

/// The inventory's ResourceQuotas, synced (`status.hard` = `spec.hard`, nothing used yet).
pub fn quotas(inventory: &Inventory) -> Result<Vec<ResourceQuota>, LowerError> {
    let mut out = Vec::new();
    for quota in inventory.resource_quotas() {
        let hard = resource_list(
            quota,
            "spec.hard",
            quota.spec.as_ref().and_then(|s| s.hard.as_ref()),
        )?;
        let used = hard.keys().map(|k| (k.clone(), 0)).collect();
        out.push(ResourceQuota {
            name: quota.metadata.name.clone().unwrap_or_default(),
            namespace: quota
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            hard: Some(hard),
            used,
            scopes: Vec::new(),
        });
    }
    Ok(out)
}

/// The inventory's PodDisruptionBudgets, as the eviction API evaluates them.
pub fn budgets(inventory: &Inventory) -> Result<Vec<super::runtime::DisruptionBudget>, LowerError> {
    let mut out = Vec::new();
    for pdb in inventory.pod_disruption_budgets() {
        let spec = pdb.spec.as_ref();
        let selector = match spec.and_then(|s| s.selector.as_ref()) {
            Some(selector) => label_selector(pdb, "spec.selector", selector)?,
            None => LabelSelector::default(),
        };
        let read = |value: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
                    field: &str|
         -> Result<Option<IntOrPercent>, LowerError> {
            match value {
                None => Ok(None),
                Some(v) => int_or_percent(v).map(Some).ok_or_else(|| {
                    error_at(
                        pdb,
                        field,
                        format!("{v:?} is neither a count nor a percentage"),
                    )
                }),
            }
        };
        out.push(super::runtime::DisruptionBudget {
            name: pdb.metadata.name.clone().unwrap_or_default(),
            namespace: pdb
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            selector,
            min_available: read(
                spec.and_then(|s| s.min_available.as_ref()),
                "spec.minAvailable",
            )?,
            max_unavailable: read(
                spec.and_then(|s| s.max_unavailable.as_ref()),
                "spec.maxUnavailable",
            )?,
        });
    }
    Ok(out)
}
