//! `schedule`: one scheduling cycle of the default kube-scheduler profile for one pod, as a
//! pure function of the cluster snapshot. Follows kube-scheduler v1.35 (spec/kubernetes.md
//! §2, Appendix C): filters NodeUnschedulable → NodeName → TaintToleration → NodeAffinity →
//! NodeResourcesFit → InterPodAffinity, scores NodeResourcesFit (LeastAllocated, weight 1),
//! NodeResourcesBalancedAllocation (1), TaintToleration (3), NodeAffinity (2) and
//! InterPodAffinity (2), and DefaultPreemption when nothing fits.
//!
//! Deliberate differences from upstream, each deterministic where upstream is random:
//! - score ties go to the smallest node name (upstream: uniformly at random); every tied
//!   node is reported in `top_nodes`;
//! - every node is filtered and scored (upstream stops after `percentageOfNodesToScore`
//!   feasible nodes in clusters over 100 nodes, from a rotating start index);
//! - preemption dry-runs every candidate node (upstream samples from a random offset) and
//!   breaks its final tie by node name;
//! - NodePorts, volume plugins, PodTopologySpread and ImageLocality are not modelled (pods
//!   here have no host ports, volumes, spread constraints or images); DynamicResources only
//!   as far as pods without ResourceClaims see it (its PostFilter message, v1.34+);
//! - nominated pods count on their node in filtering, preemption's dry runs included
//!   (RunFilterPluginsWithNominatedPods), but not in scoring, as upstream.
//!
//! Invariants: `schedule` never mutates the cluster and draws no random numbers; its output
//! depends only on its inputs.

mod filter;
mod interpod;
mod preempt;
mod score;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::cluster::model::PodSpec;
use crate::cluster::state::{ClusterState, PodId};
use filter::{Cycle, NodeView, filter_with_nominated};
use interpod::InterPodState;

/// A Kubernetes minor version; the scheduler's messages and a few rules depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubernetesVersion {
    /// The pinned default (spec Appendix C).
    pub const DEFAULT: KubernetesVersion = KubernetesVersion {
        major: 1,
        minor: 35,
    };

    /// Reads `v1.35`, `1.35` or `v1.35.2` (the patch is ignored).
    pub fn parse(text: &str) -> Option<KubernetesVersion> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        if let Some(patch) = parts.next() {
            patch.parse::<u32>().ok()?;
        }
        if parts.next().is_some() || major != 1 {
            return None;
        }
        Some(KubernetesVersion { major, minor })
    }

    /// v1.35 prints `node(s) had untolerated taint(s)`; earlier releases name the taint.
    pub fn short_taint_message(self) -> bool {
        self >= KubernetesVersion {
            major: 1,
            minor: 35,
        }
    }

    /// v1.34+ marks a request above the node's allocatable as unresolvable.
    pub fn unresolvable_fit(self) -> bool {
        self >= KubernetesVersion {
            major: 1,
            minor: 34,
        }
    }

    /// v1.34+ enables DynamicResourceAllocation by default (GA): its plugin's PostFilter
    /// runs before DefaultPreemption and, for a pod without ResourceClaims, adds
    /// `no new claims to deallocate` to the FailedScheduling message.
    pub fn dra_post_filter(self) -> bool {
        self >= KubernetesVersion {
            major: 1,
            minor: 34,
        }
    }

    /// v1.33+ skips BalancedAllocation for pods requesting neither cpu nor memory.
    pub fn balanced_skips_best_effort(self) -> bool {
        self >= KubernetesVersion {
            major: 1,
            minor: 33,
        }
    }
}

impl Default for KubernetesVersion {
    fn default() -> Self {
        KubernetesVersion::DEFAULT
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// The scheduler profile's knobs that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub kubernetes_version: KubernetesVersion,
    /// InterPodAffinityArgs.hardPodAffinityWeight (default 1).
    pub hard_pod_affinity_weight: i64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            kubernetes_version: KubernetesVersion::DEFAULT,
            hard_pod_affinity_weight: 1,
        }
    }
}

/// The default filter plugins, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilterPlugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodeResourcesFit,
    InterPodAffinity,
}

impl FilterPlugin {
    pub const ALL: [FilterPlugin; 6] = [
        FilterPlugin::NodeUnschedulable,
        FilterPlugin::NodeName,
        FilterPlugin::TaintToleration,
        FilterPlugin::NodeAffinity,
        FilterPlugin::NodeResourcesFit,
        FilterPlugin::InterPodAffinity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FilterPlugin::NodeUnschedulable => "NodeUnschedulable",
            FilterPlugin::NodeName => "NodeName",
            FilterPlugin::TaintToleration => "TaintToleration",
            FilterPlugin::NodeAffinity => "NodeAffinity",
            FilterPlugin::NodeResourcesFit => "NodeResourcesFit",
            FilterPlugin::InterPodAffinity => "InterPodAffinity",
        }
    }
}

/// Why a node was rejected: the plugin, upstream's reason texts, and whether preemption
/// could help (`unresolvable` = it cannot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterFailure {
    pub plugin: FilterPlugin,
    /// Upstream's texts; most are fixed strings, so they are borrowed, not allocated.
    pub reasons: Vec<Cow<'static, str>>,
    pub unresolvable: bool,
}

/// Per-plugin scores of a feasible node after normalization. `None` = the plugin skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScores {
    pub node: usize,
    pub resources_fit: i64,
    pub balanced_allocation: Option<i64>,
    pub taint_toleration: i64,
    pub node_affinity: Option<i64>,
    pub inter_pod_affinity: Option<i64>,
    /// Σ weight × score.
    pub total: i64,
}

/// The FailedScheduling outcome when no node is feasible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    /// Reason text -> number of nodes that reported it.
    pub reason_counts: BTreeMap<String, usize>,
    /// The event message exactly as upstream prints it, PostFilter part included.
    pub message: String,
}

/// A preemption decision: the pod is nominated, not bound, this cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preemption {
    pub nominated_node: usize,
    /// Most important first.
    pub victims: Vec<PodId>,
    pub pdb_violations: i64,
}

/// The outcome of one cycle, with everything `twin explain schedule` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Per node (cluster order): `None` when it passed every filter.
    pub verdicts: Vec<Option<FilterFailure>>,
    /// Feasible nodes in cluster order.
    pub feasible: Vec<usize>,
    /// Scores of the feasible nodes, same order.
    pub scores: Vec<NodeScores>,
    /// The node the pod binds to: the best total, ties to the smallest name.
    pub selected: Option<usize>,
    /// Every node with the best total, by name; more than one means upstream would pick one
    /// of them at random.
    pub top_nodes: Vec<usize>,
    pub unschedulable: Option<Unschedulable>,
    pub preemption: Option<Preemption>,
}

impl Placement {
    pub fn is_tie(&self) -> bool {
        self.top_nodes.len() > 1
    }
}

/// `0/N nodes are available: <count> <reason>, ....` with reasons sorted as strings.
pub(crate) fn fit_error_message<'a>(
    n_nodes: usize,
    reasons: impl Iterator<Item = &'a str>,
) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_insert(0) += 1;
    }
    let mut items: Vec<String> = counts
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    items.sort();
    let mut message = format!("0/{n_nodes} nodes are available:");
    if !items.is_empty() {
        message.push_str(&format!(" {}.", items.join(", ")));
    }
    message
}

/// Runs one scheduling cycle for `pod` against `cluster`.
pub fn schedule(cluster: &ClusterState, pod: &PodSpec, config: &SchedulerConfig) -> Placement {
    let cycle = Cycle {
        pod,
        request: pod.requests(),
        config,
        inter: InterPodState::build(cluster, pod),
    };
    let nodes = cluster.nodes();
    let masks = cycle.inter.anti_affinity_masks(cluster, pod);
    let verdicts: Vec<Option<FilterFailure>> = (0..nodes.len())
        .map(|idx| {
            let usage = cluster.usage(idx);
            let view = NodeView {
                requested: &usage.requested,
                pod_count: usage.pod_count,
                anti_affinity_mask: Some(masks[idx]),
            };
            filter_with_nominated(cluster, &cycle, idx, view, &cycle.inter).err()
        })
        .collect();
    let feasible: Vec<usize> = (0..nodes.len())
        .filter(|&idx| verdicts[idx].is_none())
        .collect();

    if feasible.is_empty() {
        let reasons = verdicts
            .iter()
            .flatten()
            .flat_map(|f| f.reasons.iter().map(|r| r.as_ref()));
        let mut reason_counts = BTreeMap::new();
        for reason in reasons.clone() {
            *reason_counts.entry(reason.to_string()).or_insert(0) += 1;
        }
        let mut message = fit_error_message(nodes.len(), reasons);
        let (preemption, post_filter) = preempt::preempt(cluster, &cycle, &verdicts);
        // PostFilter plugins run in order until one succeeds; the reasons of those that did
        // not are joined with ", ". A successful preemption therefore leaves no message.
        if !post_filter.is_empty() {
            message.push(' ');
            if config.kubernetes_version.dra_post_filter() {
                message.push_str("no new claims to deallocate, ");
            }
            message.push_str(&post_filter);
        }
        return Placement {
            verdicts,
            feasible,
            scores: Vec::new(),
            selected: None,
            top_nodes: Vec::new(),
            unschedulable: Some(Unschedulable {
                reason_counts,
                message,
            }),
            preemption,
        };
    }

    let scores = score_nodes(cluster, &cycle, &feasible);
    let best = scores
        .iter()
        .map(|s| s.total)
        .max()
        .expect("feasible is not empty");
    let mut top_nodes: Vec<usize> = scores
        .iter()
        .filter(|s| s.total == best)
        .map(|s| s.node)
        .collect();
    top_nodes.sort_by(|a, b| nodes[*a].name.cmp(&nodes[*b].name));
    Placement {
        verdicts,
        feasible,
        scores,
        selected: top_nodes.first().copied(),
        top_nodes,
        unschedulable: None,
        preemption: None,
    }
}

fn score_nodes(cluster: &ClusterState, cycle: &Cycle<'_>, feasible: &[usize]) -> Vec<NodeScores> {
    let pod = cycle.pod;
    let nodes = cluster.nodes();
    let non_zero = pod.non_zero_requests();
    let actual = (cycle.request.cpu_millis, cycle.request.memory_bytes);
    let skip_balanced =
        cycle.config.kubernetes_version.balanced_skips_best_effort() && actual == (0, 0);

    let mut taint: Vec<i64> = feasible
        .iter()
        .map(|&n| score::intolerable_prefer_no_schedule(pod, &nodes[n]))
        .collect();
    score::default_normalize(&mut taint, true);

    let node_affinity = (!pod.node_affinity_preferred.is_empty()).then(|| {
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|&n| score::preferred_node_affinity(pod, &nodes[n]))
            .collect();
        score::default_normalize(&mut raw, false);
        raw
    });

    let inter_pod =
        score::inter_pod_topology_scores(cluster, pod, cycle.config.hard_pod_affinity_weight).map(
            |map| {
                let mut raw: Vec<i64> = feasible
                    .iter()
                    .map(|&n| score::inter_pod_node_score(&map, &nodes[n]))
                    .collect();
                score::min_max_normalize(&mut raw);
                raw
            },
        );

    feasible
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let usage = cluster.usage(n);
            let resources_fit = score::least_allocated(&nodes[n], usage, non_zero);
            let balanced_allocation =
                (!skip_balanced).then(|| score::balanced_allocation(&nodes[n], usage, actual));
            let node_affinity = node_affinity.as_ref().map(|v| v[i]);
            let inter_pod_affinity = inter_pod.as_ref().map(|v| v[i]);
            let total = resources_fit
                + balanced_allocation.unwrap_or(0)
                + 3 * taint[i]
                + 2 * node_affinity.unwrap_or(0)
                + 2 * inter_pod_affinity.unwrap_or(0);
            NodeScores {
                node: n,
                resources_fit,
                balanced_allocation,
                taint_toleration: taint[i],
                node_affinity,
                inter_pod_affinity,
                total,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
