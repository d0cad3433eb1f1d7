//! The default Filter plugins, in upstream's order; a node reports the first plugin that
//! rejects it (only NodeResourcesFit can give several reasons at once).

use std::borrow::Cow;

use crate::cluster::model::{Node, PodSpec, Resources, Taint, TaintEffect};
use crate::cluster::schedule::interpod::InterPodState;
use crate::cluster::schedule::{FilterFailure, FilterPlugin, SchedulerConfig};
use crate::cluster::state::ClusterState;

pub(crate) const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub(crate) const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub(crate) const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub(crate) const REASON_TAINTS_SHORT: &str = "node(s) had untolerated taint(s)";
pub(crate) const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub(crate) const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub(crate) const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// What one cycle computes once for the incoming pod (upstream's PreFilter state).
pub(crate) struct Cycle<'a> {
    pub pod: &'a PodSpec,
    pub request: Resources,
    pub config: &'a SchedulerConfig,
    pub inter: InterPodState,
}

/// The node-local numbers a filter reads; preemption passes a copy with victims removed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeView<'a> {
    pub requested: &'a Resources,
    pub pod_count: i64,
    /// The anti-affinity checks precomputed for this node (bit 0: the pod's own terms, bit
    /// 1: existing pods' terms), or `None` to read them from the counts (preemption's dry
    /// runs change the counts node by node).
    pub anti_affinity_mask: Option<u8>,
}

/// Runs every filter on one node; `Ok` when it passes them all.
pub(crate) fn run_filters(
    cycle: &Cycle<'_>,
    node: &Node,
    view: NodeView<'_>,
    inter: &InterPodState,
) -> Result<(), FilterFailure> {
    node_unschedulable(cycle.pod, node)?;
    node_name(cycle.pod, node)?;
    taint_toleration(cycle.pod, node, cycle.config)?;
    node_affinity(cycle.pod, node)?;
    resources_fit(&cycle.request, node, view, cycle.config)?;
    inter_pod_affinity(cycle.pod, node, inter, view.anti_affinity_mask)?;
    Ok(())
}

/// RunFilterPluginsWithNominatedPods: when pods of equal or higher priority are nominated to
/// the node, the filters must pass both with them added and without them (adding pods can
/// help pod affinity); the first failure is reported.
pub(crate) fn filter_with_nominated(
    cluster: &ClusterState,
    cycle: &Cycle<'_>,
    node_idx: usize,
    view: NodeView<'_>,
    inter: &InterPodState,
) -> Result<(), FilterFailure> {
    let node = &cluster.nodes()[node_idx];
    let pod = cycle.pod;
    let mut nominated = cluster
        .nominated()
        .iter()
        .filter(|n| n.node == node_idx && n.spec.priority >= pod.priority)
        .filter(|n| !(n.spec.namespace == pod.namespace && n.spec.name == pod.name))
        .peekable();
    if nominated.peek().is_none() {
        return run_filters(cycle, node, view, inter);
    }
    let mut requested = view.requested.clone();
    let mut pod_count = view.pod_count;
    let mut with_nominated = inter.clone();
    for n in nominated {
        requested.add_scaled(&n.requests, 1);
        pod_count += 1;
        with_nominated.account(pod, &n.spec, node, 1);
    }
    let with = NodeView {
        requested: &requested,
        pod_count,
        anti_affinity_mask: None,
    };
    run_filters(cycle, node, with, &with_nominated)?;
    run_filters(cycle, node, view, inter)
}

fn fail(
    plugin: FilterPlugin,
    reason: impl Into<Cow<'static, str>>,
    unresolvable: bool,
) -> Result<(), FilterFailure> {
    Err(FilterFailure {
        plugin,
        reasons: vec![reason.into()],
        unresolvable,
    })
}

/// NodeUnschedulable: a cordoned node, unless the pod tolerates the cordon taint.
pub(crate) fn node_unschedulable(pod: &PodSpec, node: &Node) -> Result<(), FilterFailure> {
    if !node.unschedulable {
        return Ok(());
    }
    let cordon = Taint {
        key: "node.kubernetes.io/unschedulable".to_string(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    };
    if pod.tolerations.iter().any(|t| t.tolerates(&cordon)) {
        return Ok(());
    }
    fail(FilterPlugin::NodeUnschedulable, REASON_UNSCHEDULABLE, true)
}

pub(crate) fn node_name(pod: &PodSpec, node: &Node) -> Result<(), FilterFailure> {
    match &pod.node_name {
        Some(name) if *name != node.name => fail(FilterPlugin::NodeName, REASON_NODE_NAME, true),
        _ => Ok(()),
    }
}

/// TaintToleration: the first NoSchedule/NoExecute taint no toleration matches.
pub(crate) fn taint_toleration(
    pod: &PodSpec,
    node: &Node,
    config: &SchedulerConfig,
) -> Result<(), FilterFailure> {
    let untolerated = node.taints.iter().find(|taint| {
        matches!(
            taint.effect,
            TaintEffect::NoSchedule | TaintEffect::NoExecute
        ) && !pod.tolerations.iter().any(|t| t.tolerates(taint))
    });
    match untolerated {
        None => Ok(()),
        Some(taint) => {
            let reason = if config.kubernetes_version.short_taint_message() {
                REASON_TAINTS_SHORT.to_string()
            } else {
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    taint.key, taint.value
                )
            };
            fail(FilterPlugin::TaintToleration, reason, true)
        }
    }
}

/// NodeAffinity: every nodeSelector pair, and at least one required term when given.
pub(crate) fn node_affinity(pod: &PodSpec, node: &Node) -> Result<(), FilterFailure> {
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let affinity_ok = pod
        .node_affinity_required
        .as_ref()
        .is_none_or(|terms| terms.iter().any(|term| term.matches(&node.labels)));
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        fail(FilterPlugin::NodeAffinity, REASON_NODE_AFFINITY, true)
    }
}

/// NodeResourcesFit against allocatable minus the requests already bound.
pub(crate) fn resources_fit(
    request: &Resources,
    node: &Node,
    view: NodeView<'_>,
    config: &SchedulerConfig,
) -> Result<(), FilterFailure> {
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if view.pod_count + 1 > node.allocatable.pods {
        reasons.push(Cow::Borrowed("Too many pods"));
    }
    if !request.is_zero() {
        let mut check = |name: &str, wanted: i64, allocatable: i64, used: i64| {
            if wanted > 0 && wanted > allocatable - used {
                reasons.push(match name {
                    "cpu" => Cow::Borrowed("Insufficient cpu"),
                    "memory" => Cow::Borrowed("Insufficient memory"),
                    "ephemeral-storage" => Cow::Borrowed("Insufficient ephemeral-storage"),
                    other => Cow::Owned(format!("Insufficient {other}")),
                });
                // Newer releases know that no preemption can make room beyond allocatable.
                if config.kubernetes_version.unresolvable_fit() && wanted > allocatable {
                    unresolvable = true;
                }
            }
        };
        let (have, used) = (&node.allocatable, view.requested);
        check("cpu", request.cpu_millis, have.cpu_millis, used.cpu_millis);
        check(
            "memory",
            request.memory_bytes,
            have.memory_bytes,
            used.memory_bytes,
        );
        check(
            "ephemeral-storage",
            request.ephemeral_storage_bytes,
            have.ephemeral_storage_bytes,
            used.ephemeral_storage_bytes,
        );
        for (name, wanted) in &request.extended {
            let amount = |r: &Resources| r.extended.get(name).copied().unwrap_or(0);
            check(name, *wanted, amount(have), amount(used));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(FilterFailure {
            plugin: FilterPlugin::NodeResourcesFit,
            reasons,
            unresolvable,
        })
    }
}

/// InterPodAffinity: required affinity (unresolvable), then the pod's anti-affinity, then
/// existing pods' anti-affinity (both resolvable: removing pods can help).
pub(crate) fn inter_pod_affinity(
    pod: &PodSpec,
    node: &Node,
    inter: &InterPodState,
    mask: Option<u8>,
) -> Result<(), FilterFailure> {
    if !inter.satisfies_affinity(pod, node) {
        return fail(FilterPlugin::InterPodAffinity, REASON_AFFINITY, true);
    }
    let (own_blocked, existing_blocked) = match mask {
        Some(bits) => (bits & 1 != 0, bits & 2 != 0),
        None => (
            !inter.satisfies_anti_affinity(pod, node),
            !inter.satisfies_existing_anti_affinity(node),
        ),
    };
    if own_blocked {
        return fail(FilterPlugin::InterPodAffinity, REASON_ANTI_AFFINITY, false);
    }
    if existing_blocked {
        return fail(
            FilterPlugin::InterPodAffinity,
            REASON_EXISTING_ANTI_AFFINITY,
            false,
        );
    }
    Ok(())
}
