//! DefaultPreemption (the PostFilter): when no node fits, find on which node removing
//! lower-priority pods would let the pod fit, with the fewest and least important victims
//! and PodDisruptionBudgets respected where possible.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::cluster::model::{PodDisruptionBudget, PreemptionPolicy};
use crate::cluster::schedule::filter::{Cycle, NodeView, filter_with_nominated};
use crate::cluster::schedule::{FilterFailure, Preemption, fit_error_message};
use crate::cluster::state::{BoundPod, ClusterState};

pub(crate) const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub(crate) const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

struct Candidate<'a> {
    node: usize,
    /// Most important first.
    victims: Vec<&'a BoundPod>,
    pdb_violations: i64,
}

/// "Start time" for ordering: a pod that has not started counts as starting now, i.e. after
/// every started pod.
fn start_of(pod: &BoundPod) -> i64 {
    pod.start_time_secs.unwrap_or(i64::MAX)
}

/// util.MoreImportantPod: higher priority first, then earlier start.
fn importance(a: &BoundPod, b: &BoundPod) -> Ordering {
    b.spec
        .priority
        .cmp(&a.spec.priority)
        .then(start_of(a).cmp(&start_of(b)))
}

/// Runs preemption. Returns the nomination, if any, and the PostFilter message upstream
/// appends to the FailedScheduling event (empty on success).
pub(crate) fn preempt(
    cluster: &ClusterState,
    cycle: &Cycle<'_>,
    verdicts: &[Option<FilterFailure>],
) -> (Option<Preemption>, String) {
    if cycle.pod.preemption_policy == PreemptionPolicy::Never {
        return (
            None,
            "preemption: not eligible due to preemptionPolicy=Never.".to_string(),
        );
    }
    // A pod that already preempted waits for its victims (PodEligibleToPreemptOthers),
    // unless its nominated node has become unresolvable for it.
    if let Some(nominated) = cycle.pod.nominated_node_name.as_deref()
        && let Some(node) = cluster.node_by_name(nominated)
        && !verdicts[node].as_ref().is_some_and(|f| f.unresolvable)
        && cluster
            .usage(node)
            .pods
            .iter()
            .map(|&slot| cluster.pod_at(slot))
            .any(|p| p.spec.priority < cycle.pod.priority && p.terminating_by_preemption)
    {
        return (
            None,
            "preemption: not eligible due to a terminating pod on the nominated node.".to_string(),
        );
    }
    let n_nodes = cluster.nodes().len();
    let potential: Vec<usize> = (0..n_nodes)
        .filter(|&idx| {
            verdicts[idx]
                .as_ref()
                .is_some_and(|failure| !failure.unresolvable)
        })
        .collect();
    // Nodes not tried report "not helpful"; tried ones report why they did not work.
    let mut statuses: Vec<Option<Vec<Cow<'static, str>>>> = vec![None; n_nodes];
    let mut candidates = Vec::new();
    for &node in &potential {
        match select_victims(cluster, cycle, node) {
            Ok(candidate) => candidates.push(candidate),
            Err(reasons) => statuses[node] = Some(reasons),
        }
    }
    if candidates.is_empty() {
        let reasons = statuses.iter().flat_map(|status| match status {
            Some(reasons) => reasons.iter().map(|r| r.as_ref()).collect::<Vec<_>>(),
            None => vec![NOT_HELPFUL],
        });
        let message = fit_error_message(n_nodes, reasons);
        return (None, format!("preemption: {message}"));
    }
    // The final tie is arbitrary upstream (map order); we take the smallest node name.
    candidates.sort_by(|a, b| {
        cluster.nodes()[a.node]
            .name
            .cmp(&cluster.nodes()[b.node].name)
    });
    let best = pick_one(candidates);
    let preemption = Preemption {
        nominated_node: best.node,
        victims: best.victims.iter().map(|p| p.id).collect(),
        pdb_violations: best.pdb_violations,
    };
    (Some(preemption), String::new())
}

/// SelectVictimsOnNode: remove every lower-priority pod; if the pod then fits, reprieve as
/// many as possible, PDB-violating ones first, most important first.
fn select_victims<'a>(
    cluster: &'a ClusterState,
    cycle: &Cycle<'_>,
    node_idx: usize,
) -> Result<Candidate<'a>, Vec<Cow<'static, str>>> {
    let node = &cluster.nodes()[node_idx];
    let usage = cluster.usage(node_idx);
    // Most nodes in a busy cluster have nothing to give: answer before collecting anything.
    if !usage
        .pods
        .iter()
        .any(|&slot| cluster.pod_at(slot).spec.priority < cycle.pod.priority)
    {
        return Err(vec![Cow::Borrowed(NO_VICTIMS)]);
    }
    let mut lower: Vec<&BoundPod> = usage
        .pods
        .iter()
        .map(|&slot| cluster.pod_at(slot))
        .filter(|p| p.spec.priority < cycle.pod.priority)
        .collect();
    let mut requested = usage.requested.clone();
    let mut pod_count = usage.pod_count;
    let mut inter = cycle.inter.clone();
    for pod in &lower {
        requested.add_scaled(&pod.requests, -1);
        pod_count -= 1;
        inter.account(cycle.pod, &pod.spec, node, -1);
    }
    if let Err(failure) = filter_with_nominated(
        cluster,
        cycle,
        node_idx,
        NodeView {
            requested: &requested,
            pod_count,
            anti_affinity_mask: None,
        },
        &inter,
    ) {
        return Err(failure.reasons);
    }
    // Stable sort: equal priority and start keep bind order (upstream's sort is unstable).
    lower.sort_by(|a, b| importance(a, b));
    let (violating, non_violating) = split_by_pdb(&lower, cluster.pdbs());
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (pods, counts_as_violation) in [(&violating, true), (&non_violating, false)] {
        for pod in pods.iter() {
            requested.add_scaled(&pod.requests, 1);
            pod_count += 1;
            inter.account(cycle.pod, &pod.spec, node, 1);
            if filter_with_nominated(
                cluster,
                cycle,
                node_idx,
                NodeView {
                    requested: &requested,
                    pod_count,
                    anti_affinity_mask: None,
                },
                &inter,
            )
            .is_err()
            {
                requested.add_scaled(&pod.requests, -1);
                pod_count -= 1;
                inter.account(cycle.pod, &pod.spec, node, -1);
                victims.push(*pod);
                if counts_as_violation {
                    pdb_violations += 1;
                }
            }
        }
    }
    if !violating.is_empty() && !non_violating.is_empty() {
        victims.sort_by(|a, b| importance(a, b));
    }
    if victims.is_empty() {
        // Cannot happen: the pod did not fit with every pod present.
        return Err(vec![Cow::Borrowed(NO_VICTIMS)]);
    }
    Ok(Candidate {
        node: node_idx,
        victims,
        pdb_violations,
    })
}

/// filterPodsWithPDBViolation: walk pods in importance order, spending each matching PDB's
/// allowed disruptions; a pod that drives a budget below zero is violating.
fn split_by_pdb<'a>(
    pods: &[&'a BoundPod],
    pdbs: &[PodDisruptionBudget],
) -> (Vec<&'a BoundPod>, Vec<&'a BoundPod>) {
    let mut allowed: Vec<i64> = pdbs
        .iter()
        .map(|p| i64::from(p.disruptions_allowed))
        .collect();
    let (mut violating, mut non_violating) = (Vec::new(), Vec::new());
    for &pod in pods {
        let mut violated = false;
        if !pod.spec.labels.is_empty() {
            for (idx, pdb) in pdbs.iter().enumerate() {
                if pdb.namespace != pod.spec.namespace
                    || pdb.selector.is_empty()
                    || !pdb.selector.matches(&pod.spec.labels)
                    || pdb.disrupted_pods.contains(&pod.spec.name)
                {
                    continue;
                }
                allowed[idx] -= 1;
                if allowed[idx] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod)
        } else {
            non_violating.push(pod)
        }
    }
    (violating, non_violating)
}

/// pickOneNodeForPreemption: each criterion keeps the best-scoring nodes; the first one that
/// leaves a single node decides.
fn pick_one(candidates: Vec<Candidate<'_>>) -> Candidate<'_> {
    let criteria: [fn(&Candidate<'_>) -> i128; 5] = [
        |c| -i128::from(c.pdb_violations),
        |c| -i128::from(c.victims[0].spec.priority),
        |c| {
            -c.victims
                .iter()
                .map(|p| i128::from(p.spec.priority) + (1i128 << 31))
                .sum::<i128>()
        },
        |c| -(c.victims.len() as i128),
        |c| {
            // The earliest start among the highest-priority victims; later is better.
            let top = c.victims[0].spec.priority;
            let earliest = c
                .victims
                .iter()
                .filter(|p| p.spec.priority == top)
                .map(|p| start_of(p))
                .min();
            i128::from(earliest.unwrap_or(i64::MIN))
        },
    ];
    let mut remaining = candidates;
    for criterion in criteria {
        let best = remaining
            .iter()
            .map(criterion)
            .max()
            .expect("at least one candidate");
        remaining.retain(|c| criterion(c) == best);
        if remaining.len() == 1 {
            break;
        }
    }
    remaining
        .into_iter()
        .next()
        .expect("at least one candidate")
}
