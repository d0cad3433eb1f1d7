//! Capacity checks: what the scheduler, quota admission and the HPA will do at the replica counts
//! the manifests allow (spec/kubernetes.md §1.8, §2.3, §3, §4).

use std::collections::BTreeMap;

use crate::diag::Severity;
use crate::lint::Sink;
use crate::lint::model::{GPU_RESOURCE, Hpa, IntOrPercent, Model, Node, Workload};

use super::show_quantity;

pub(super) fn run(model: &Model, out: &mut Sink<'_>) {
    for hpa in &model.hpas {
        hpa_target_exists(model, hpa, out);
        hpa_metrics_have_an_adapter(model, hpa, out);
    }
    for workload in &model.workloads {
        let hpa = hpa_of(model, workload);
        anti_affinity_fits_the_nodes(model, workload, hpa, out);
        argo_self_heal_fights_the_hpa(model, workload, hpa, out);
        if let Some(nodes) = &model.nodes {
            some_node_admits(workload, nodes, out);
            gpu_classes_left_out(workload, nodes, out);
        }
    }
    quota_holds_the_ceilings(model, out);
}

/// The HPA that scales a Deployment, if any.
pub(super) fn hpa_of<'m>(model: &'m Model, workload: &Workload) -> Option<&'m Hpa> {
    model.hpas.iter().find(|h| {
        h.namespace == workload.namespace
            && h.target_kind == "Deployment"
            && h.target_name == workload.name
    })
}

/// The most replicas a Deployment can have: its HPA's ceiling, else its replicas (default 1).
fn ceiling(workload: &Workload, hpa: Option<&Hpa>) -> i64 {
    match hpa {
        Some(hpa) => i64::from(hpa.max_replicas),
        None => i64::from(workload.replicas.unwrap_or(1)),
    }
}

/// The fewest replicas it runs with: its HPA's floor (default 1), else its replicas.
fn floor(workload: &Workload, hpa: Option<&Hpa>) -> i64 {
    match hpa {
        Some(hpa) => i64::from(hpa.min_replicas.unwrap_or(1)),
        None => i64::from(workload.replicas.unwrap_or(1)),
    }
}

fn hpa_target_exists(model: &Model, hpa: &Hpa, out: &mut Sink<'_>) {
    if hpa.target_kind != "Deployment" {
        return;
    }
    if model
        .workloads
        .iter()
        .any(|w| w.namespace == hpa.namespace && w.name == hpa.target_name)
    {
        return;
    }
    out.push(
        Severity::Error,
        "hpa-target-missing",
        hpa.src,
        "spec.scaleTargetRef.name",
        format!("the HPA scales Deployment {}, which is not in the inventory: it reports FailedGetScale and does nothing", hpa.target_name),
        "point scaleTargetRef at an existing Deployment of the same namespace",
    );
}

fn hpa_metrics_have_an_adapter(model: &Model, hpa: &Hpa, out: &mut Sink<'_>) {
    if !model.metrics_adapters.is_empty() {
        return;
    }
    let n_metrics = hpa.metrics.len();
    for metric in &hpa.metrics {
        let api = match metric.kind.as_str() {
            "Pods" | "Object" => "custom.metrics.k8s.io",
            "External" => "external.metrics.k8s.io",
            _ => continue,
        };
        let effect = if n_metrics == 1 {
            "the HPA never scales".to_string()
        } else {
            "a failed metric never blocks a scale-up but always blocks a scale-down, so once scaled up the HPA never scales back down".to_string()
        };
        out.push(
            Severity::Error,
            "hpa-metric-without-adapter",
            hpa.src,
            metric.field.clone(),
            format!(
                "{} metric `{}` is read from {api}, and nothing in the inventory serves it (no prometheus-adapter Deployment, APIService or adapter config): the metric fails (FailedGet{}Metric) and {effect}",
                metric.kind, metric.metric_name, metric.kind
            ),
            format!("deploy prometheus-adapter with a rule exposing `{}` (and its APIService), or drop the metric", metric.metric_name),
        );
    }
}

fn argo_self_heal_fights_the_hpa(
    model: &Model,
    workload: &Workload,
    hpa: Option<&Hpa>,
    out: &mut Sink<'_>,
) {
    let (Some(_), Some(replicas)) = (hpa, workload.replicas) else {
        return;
    };
    let Some(app) = model.argo_applications.iter().find(|app| {
        app.self_heal && !app.ignores_replicas && app.destination_namespace == workload.namespace
    }) else {
        return;
    };
    out.push(
        Severity::Warning,
        "hpa-fights-argo-self-heal",
        workload.src,
        "spec.replicas",
        format!(
            "the Deployment sets `replicas: {replicas}` and is scaled by an HPA, while Argo CD Application {} syncs namespace {} with selfHeal: every HPA change shows as drift and selfHeal resets it to {replicas}",
            app.name, workload.namespace
        ),
        "remove spec.replicas from the manifest, or add ignoreDifferences on /spec/replicas for Deployments to the Application",
    );
}

/// The nodes a pod of the workload can land on, ignoring other pods.
fn eligible_nodes<'n>(workload: &Workload, nodes: &'n [Node]) -> Vec<&'n Node> {
    nodes
        .iter()
        .filter(|n| n.admits(workload) && n.fits_empty(workload))
        .collect()
}

fn node_names(nodes: &[&Node]) -> String {
    if nodes.is_empty() {
        return "none".to_string();
    }
    nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn anti_affinity_fits_the_nodes(
    model: &Model,
    workload: &Workload,
    hpa: Option<&Hpa>,
    out: &mut Sink<'_>,
) {
    if !workload.one_pod_per_node() {
        return;
    }
    let most = ceiling(workload, hpa);
    let fewest = floor(workload, hpa);
    let (src, field, who) = match hpa {
        Some(hpa) => (
            hpa.src,
            "spec.maxReplicas".to_string(),
            format!("HPA {} can scale it to {most}", hpa.name),
        ),
        None => (
            workload.src,
            "spec.replicas".to_string(),
            format!("it asks for {most} replicas"),
        ),
    };
    let Some(nodes) = &model.nodes else {
        out.push(
            Severity::Warning,
            "anti-affinity-exceeds-nodes",
            src,
            field,
            format!(
                "required pod anti-affinity on kubernetes.io/hostname puts at most one pod of Deployment {} on a node and {who}: that needs at least {most} schedulable nodes that accept the pod (no topology given to check)",
                workload.name
            ),
            "check the node count with --topology, or use preferred anti-affinity / a topologySpreadConstraint",
        );
        return;
    };
    let eligible = eligible_nodes(workload, nodes);
    let n_eligible = eligible.len() as i64;
    if most > n_eligible {
        out.push(
            Severity::Error,
            "anti-affinity-exceeds-nodes",
            src,
            field,
            format!(
                "required pod anti-affinity on kubernetes.io/hostname puts at most one pod of Deployment {} on a node and {who}, but only {n_eligible} nodes pass its nodeSelector, node affinity and taints ({}): replicas {}..{most} stay Pending",
                workload.name,
                node_names(&eligible),
                n_eligible + 1
            ),
            format!("lower maxReplicas to {n_eligible}, add nodes, or use preferred anti-affinity / a topologySpreadConstraint"),
        );
    }
    // A rolling update with maxUnavailable 0 must first place a surge pod on a free node.
    if let (Some(surge), Some(unavailable)) = (&workload.max_surge, &workload.max_unavailable) {
        let surge_pods = surge.resolve(fewest, true);
        let unavailable_pods = unavailable.resolve(fewest, false);
        if unavailable_pods == 0 && surge_pods > 0 && fewest >= n_eligible && n_eligible > 0 {
            out.push(
                Severity::Error,
                "rollout-cannot-surge",
                workload.src,
                "spec.strategy.rollingUpdate",
                format!(
                    "with maxUnavailable {} a rollout must first start a surge pod, but at {fewest} replicas the required hostname anti-affinity already fills all {n_eligible} nodes that accept the pod: the surge pod stays Pending and the rollout stalls until ProgressDeadlineExceeded",
                    show_int_or_percent(unavailable)
                ),
                "allow maxUnavailable 1, add a node, or use preferred anti-affinity",
            );
        }
    }
}

fn show_int_or_percent(value: &IntOrPercent) -> String {
    match value {
        IntOrPercent::Int(n) => n.to_string(),
        IntOrPercent::Percent(p) => format!("{p}%"),
    }
}

fn some_node_admits(workload: &Workload, nodes: &[Node], out: &mut Sink<'_>) {
    if !eligible_nodes(workload, nodes).is_empty() {
        return;
    }
    out.push(
        Severity::Error,
        "no-node-admits-pod",
        workload.src,
        "spec.template.spec",
        format!(
            "no node of the topology passes the pod's nodeSelector ({}), node affinity, taints and resource requests: every pod of Deployment {} stays Pending",
            crate::lint::model::show_labels(&workload.node_selector),
            workload.name
        ),
        "fix the nodeSelector or tolerations, or add a node pool that matches",
    );
}

fn gpu_classes_left_out(workload: &Workload, nodes: &[Node], out: &mut Sink<'_>) {
    if workload.gpu_count() == 0 {
        return;
    }
    let eligible = eligible_nodes(workload, nodes);
    let mut excluded: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in nodes {
        let Some(class) = node.gpu_class.as_deref() else {
            continue;
        };
        if eligible
            .iter()
            .any(|n| n.gpu_class.as_deref() == Some(class))
        {
            continue;
        }
        excluded.entry(class).or_default().push(&node.name);
    }
    for (class, names) in excluded {
        out.push(
            Severity::Warning,
            "node-selector-excludes-gpu-class",
            workload.src,
            "spec.template.spec.nodeSelector",
            format!(
                "the GPU Deployment {} cannot use the topology's {class} nodes ({}): its nodeSelector {} leaves them out, so that GPU capacity is idle for it",
                workload.name,
                names.join(", "),
                crate::lint::model::show_labels(&workload.node_selector)
            ),
            format!("select GPU nodes by a label both classes share (node.kubernetes.io/gpu), or use node affinity `In` over the classes the workload supports, e.g. {class}"),
        );
    }
}

/// The quota resource names that charge a pod's requests and limits (kubernetes.md §3.1).
fn charged(
    resource: &str,
    requests: &BTreeMap<String, i128>,
    limits: &BTreeMap<String, i128>,
) -> Option<i128> {
    let get = |map: &BTreeMap<String, i128>, name: &str| map.get(name).copied().unwrap_or(0);
    match resource {
        "requests.cpu" | "cpu" => Some(get(requests, "cpu")),
        "requests.memory" | "memory" => Some(get(requests, "memory")),
        "limits.cpu" => Some(get(limits, "cpu")),
        "limits.memory" => Some(get(limits, "memory")),
        "pods" => Some(1000),
        other => other
            .strip_prefix("requests.")
            .filter(|name| *name != "storage")
            .map(|name| get(requests, name)),
    }
}

fn quota_holds_the_ceilings(model: &Model, out: &mut Sink<'_>) {
    for quota in &model.quotas {
        let workloads: Vec<&Workload> = model
            .workloads
            .iter()
            .filter(|w| w.namespace == quota.namespace)
            .collect();
        // A quota on cpu or memory rejects pods whose containers leave that value unset.
        for workload in &workloads {
            for (resource, kind) in [
                ("requests.cpu", "cpu"),
                ("cpu", "cpu"),
                ("requests.memory", "memory"),
                ("memory", "memory"),
                ("limits.cpu", "cpu"),
                ("limits.memory", "memory"),
            ] {
                if !quota.hard_milli.contains_key(resource) {
                    continue;
                }
                let limits = resource.starts_with("limits.");
                for container in &workload.containers {
                    let map = if limits {
                        &container.limits_milli
                    } else {
                        &container.requests_milli
                    };
                    if map.contains_key(kind) {
                        continue;
                    }
                    out.push(
                        Severity::Error,
                        "quota-requires-requests",
                        workload.src,
                        format!("{}.resources", container.field),
                        format!(
                            "ResourceQuota {} tracks {resource}, so every container must set it; container {} does not, and its pods are rejected (`must specify {}`)",
                            quota.name,
                            container.name,
                            if limits { format!("limits.{kind}") } else { format!("requests.{kind}") }
                        ),
                        format!("set resources.{}.{kind} on container {}", if limits { "limits" } else { "requests" }, container.name),
                    );
                }
            }
        }
        let mut totals: BTreeMap<&str, (i128, Vec<String>)> = BTreeMap::new();
        for (resource, hard) in &quota.hard_milli {
            for workload in &workloads {
                let hpa = hpa_of(model, workload);
                let n_pods = ceiling(workload, hpa);
                let Some(per_pod) = charged(
                    resource,
                    &workload.pod_requests_milli(),
                    &workload.pod_limits_milli(),
                ) else {
                    continue;
                };
                if per_pod == 0 {
                    continue;
                }
                let need = per_pod * i128::from(n_pods);
                let entry = totals.entry(resource.as_str()).or_default();
                entry.0 += need;
                entry.1.push(format!(
                    "{} {n_pods} x {}",
                    workload.name,
                    show_quantity(resource, per_pod)
                ));
                if need > *hard {
                    let allowed = hard / per_pod;
                    let (src, field, who) = match hpa {
                        Some(hpa) => (
                            hpa.src,
                            "spec.maxReplicas",
                            format!("HPA {} ceiling", hpa.name),
                        ),
                        None => (workload.src, "spec.replicas", "replicas".to_string()),
                    };
                    out.push(
                        Severity::Error,
                        "quota-blocks-hpa-ceiling",
                        src,
                        field,
                        format!(
                            "{who} {n_pods} x {} {resource} per pod = {} exceeds ResourceQuota {} ({resource} {}): pods beyond {allowed} are rejected at admission",
                            show_quantity(resource, per_pod),
                            show_quantity(resource, need),
                            quota.name,
                            show_quantity(resource, *hard)
                        ),
                        format!("lower the ceiling to {allowed} or raise {resource} in the quota to {}", show_quantity(resource, need)),
                    );
                }
            }
        }
        for (resource, (need, parts)) in totals {
            let hard = quota.hard_milli[resource];
            if need <= hard || parts.len() < 2 {
                continue;
            }
            out.push(
                Severity::Error,
                "quota-blocks-hpa-ceiling",
                quota.src,
                format!("spec.hard.{resource}"),
                format!(
                    "at every HPA ceiling (Deployments without HPA at their replicas) namespace {} needs {resource} {} ({}), above the quota's {}: the last pods to scale are rejected",
                    quota.namespace,
                    show_quantity(resource, need),
                    parts.join(" + "),
                    show_quantity(resource, hard)
                ),
                format!("raise {resource} to {} or lower the ceilings", show_quantity(resource, need)),
            );
        }
    }
    let _ = GPU_RESOURCE;
}
