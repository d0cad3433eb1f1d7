use std::collections::BTreeMap;

use super::score::{balanced_allocation, default_normalize, least_allocated, min_max_normalize};
use super::*;
use crate::cluster::model::*;
use crate::cluster::state::NodeUsage;

const MIB: i64 = 1024 * 1024;

fn node(name: &str, cpu_millis: i64, memory_mib: i64) -> Node {
    let mut labels = BTreeMap::new();
    labels.insert(HOSTNAME_LABEL.to_string(), name.to_string());
    let allocatable = Resources {
        cpu_millis,
        memory_bytes: memory_mib * MIB,
        pods: 110,
        ..Resources::default()
    };
    Node {
        name: name.to_string(),
        labels,
        capacity: allocatable.clone(),
        allocatable,
        ..Node::default()
    }
}

fn in_zone(mut node: Node, zone: &str) -> Node {
    node.labels.insert(ZONE_LABEL.to_string(), zone.to_string());
    node
}

fn pod(name: &str, cpu_millis: i64, memory_mib: i64) -> PodSpec {
    let mut requests = ResourceList::new();
    requests.insert("cpu".into(), cpu_millis);
    requests.insert("memory".into(), memory_mib * MIB);
    PodSpec {
        name: name.to_string(),
        namespace: "default".to_string(),
        containers: vec![Container {
            name: "c0".into(),
            requests,
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn labelled(mut pod: PodSpec, key: &str, value: &str) -> PodSpec {
    pod.labels.insert(key.to_string(), value.to_string());
    pod
}

fn term(key: &str, value: &str, topology_key: &str) -> PodAffinityTerm {
    let mut labels = BTreeMap::new();
    labels.insert(key.to_string(), value.to_string());
    PodAffinityTerm {
        selector: LabelSelector::from_labels(labels),
        namespaces: Vec::new(),
        topology_key: topology_key.to_string(),
    }
}

fn failure_of(placement: &Placement, cluster: &ClusterState, node: &str) -> Option<FilterFailure> {
    placement.verdicts[cluster.node_by_name(node).expect("node exists")].clone()
}

fn v129() -> SchedulerConfig {
    SchedulerConfig {
        kubernetes_version: KubernetesVersion {
            major: 1,
            minor: 29,
        },
        ..SchedulerConfig::default()
    }
}

#[test]
fn scheduler_never_binds_to_a_cordoned_node_unless_the_pod_tolerates_the_cordon() {
    // Goal: NodeUnschedulable rejects cordoned nodes, unresolvably, except for pods that
    // tolerate node.kubernetes.io/unschedulable. Method: one cordoned node, two pods.
    let mut cordoned = node("n1", 4000, 8192);
    cordoned.unschedulable = true;
    let cluster = ClusterState::new(vec![cordoned]).expect("unique names");
    let plain = pod("p", 100, 100);
    let placement = schedule(&cluster, &plain, &SchedulerConfig::default());
    let failure = failure_of(&placement, &cluster, "n1").expect("cordoned node fails");
    assert_eq!(failure.plugin, FilterPlugin::NodeUnschedulable);
    assert_eq!(failure.reasons, vec!["node(s) were unschedulable"]);
    assert!(failure.unresolvable);

    let mut tolerant = plain.clone();
    tolerant.tolerations.push(Toleration {
        key: "node.kubernetes.io/unschedulable".into(),
        operator: TolerationOperator::Exists,
        value: String::new(),
        effect: Some(TaintEffect::NoSchedule),
    });
    assert_eq!(
        schedule(&cluster, &tolerant, &SchedulerConfig::default()).selected,
        Some(0)
    );
}

#[test]
fn node_name_pins_the_pod_to_the_named_node() {
    // Goal: spec.nodeName leaves only that node feasible. Method: two nodes, pin to n2.
    let cluster =
        ClusterState::new(vec![node("n1", 4000, 8192), node("n2", 4000, 8192)]).expect("unique");
    let mut pinned = pod("p", 100, 100);
    pinned.node_name = Some("n2".into());
    let placement = schedule(&cluster, &pinned, &SchedulerConfig::default());
    assert_eq!(placement.selected, Some(1));
    let failure = failure_of(&placement, &cluster, "n1").expect("n1 fails");
    assert_eq!(
        (failure.plugin, failure.reasons[0].as_ref()),
        (
            FilterPlugin::NodeName,
            "node(s) didn't match the requested node name"
        )
    );
}

#[test]
fn tolerations_match_by_key_operator_value_and_effect() {
    // Goal: the toleration matching rules of spec 2.3. Method: table of toleration/taint pairs.
    let taint = Taint {
        key: "gpu".into(),
        value: "a100".into(),
        effect: TaintEffect::NoSchedule,
    };
    let tol = |key: &str, operator, value: &str, effect| Toleration {
        key: key.into(),
        operator,
        value: value.into(),
        effect,
    };
    use TolerationOperator::*;
    assert!(tol("gpu", Equal, "a100", Some(TaintEffect::NoSchedule)).tolerates(&taint));
    assert!(
        tol("gpu", Equal, "a100", None).tolerates(&taint),
        "empty effect matches every effect"
    );
    assert!(tol("gpu", Exists, "", None).tolerates(&taint));
    assert!(
        tol("", Exists, "", None).tolerates(&taint),
        "empty key with Exists tolerates everything"
    );
    assert!(
        !tol("gpu", Equal, "h100", None).tolerates(&taint),
        "values differ"
    );
    assert!(
        !tol("gpu", Equal, "a100", Some(TaintEffect::NoExecute)).tolerates(&taint),
        "effects differ"
    );
    assert!(
        !tol("other", Exists, "", None).tolerates(&taint),
        "keys differ"
    );
    assert!(
        !tol("", Equal, "", None).tolerates(&taint),
        "empty key needs Exists"
    );
}

#[test]
fn no_execute_taints_filter_and_prefer_no_schedule_taints_do_not() {
    // Goal: only NoSchedule/NoExecute taints reject; the message follows the version.
    // Method: one NoExecute node, one PreferNoSchedule node; v1.35 and v1.29 messages.
    let mut hard = node("hard", 4000, 8192);
    hard.taints.push(Taint {
        key: "maintenance".into(),
        value: "yes".into(),
        effect: TaintEffect::NoExecute,
    });
    let mut soft = node("soft", 4000, 8192);
    soft.taints.push(Taint {
        key: "spot".into(),
        value: String::new(),
        effect: TaintEffect::PreferNoSchedule,
    });
    let cluster = ClusterState::new(vec![hard, soft]).expect("unique");
    let p = pod("p", 100, 100);
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.feasible, vec![1]);
    assert_eq!(
        failure_of(&placement, &cluster, "hard")
            .expect("fails")
            .reasons,
        vec!["node(s) had untolerated taint(s)"]
    );
    let old = schedule(&cluster, &p, &v129());
    assert_eq!(
        failure_of(&old, &cluster, "hard").expect("fails").reasons,
        vec!["node(s) had untolerated taint {maintenance: yes}"]
    );
}

#[test]
fn node_selector_and_required_node_affinity_must_both_hold() {
    // Goal: NodeAffinity ANDs nodeSelector with the ORed required terms. Method: three nodes
    // that satisfy neither, one, or both.
    let mut both = node("both", 4000, 8192);
    both.labels.insert("disk".into(), "ssd".into());
    both.labels.insert("gen".into(), "5".into());
    let mut selector_only = node("selector-only", 4000, 8192);
    selector_only.labels.insert("disk".into(), "ssd".into());
    selector_only.labels.insert("gen".into(), "2".into());
    let neither = node("neither", 4000, 8192);
    let cluster = ClusterState::new(vec![both, selector_only, neither]).expect("unique");
    let mut p = pod("p", 100, 100);
    p.node_selector.insert("disk".into(), "ssd".into());
    p.node_affinity_required = Some(vec![NodeSelectorTerm {
        match_expressions: vec![Requirement {
            key: "gen".into(),
            operator: SelectorOperator::Gt,
            values: vec!["4".into()],
        }],
    }]);
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.feasible, vec![0]);
    for name in ["selector-only", "neither"] {
        let failure = failure_of(&placement, &cluster, name).expect("fails");
        assert_eq!(
            failure.reasons,
            vec!["node(s) didn't match Pod's node affinity/selector"]
        );
        assert!(failure.unresolvable);
    }
}

#[test]
fn resources_fit_reports_every_short_resource_and_marks_requests_above_allocatable_unresolvable() {
    // Goal: NodeResourcesFit lists each insufficient resource in check order; v1.34+ marks a
    // request above allocatable unresolvable, v1.29 does not. Method: a small node with a
    // GPU-less allocatable and a pod asking for more cpu, memory and a GPU.
    let cluster = ClusterState::new(vec![node("small", 1000, 1024)]).expect("unique");
    let mut p = pod("p", 2000, 512);
    p.containers[0].requests.insert(GPU_RESOURCE.into(), 1);
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    let failure = failure_of(&placement, &cluster, "small").expect("fails");
    assert_eq!(
        failure.reasons,
        vec!["Insufficient cpu", "Insufficient nvidia.com/gpu"]
    );
    assert!(failure.unresolvable);
    let old = schedule(&cluster, &p, &v129());
    assert!(
        !failure_of(&old, &cluster, "small")
            .expect("fails")
            .unresolvable
    );
}

#[test]
fn too_many_pods_counts_bound_pods_even_for_a_pod_requesting_nothing() {
    // Goal: the pod-count check runs before the "requests nothing" shortcut. Method: a node
    // allowing 1 pod that already has one; a best-effort incoming pod.
    let mut full = node("full", 4000, 8192);
    full.allocatable.pods = 1;
    let mut cluster = ClusterState::new(vec![full]).expect("unique");
    cluster
        .bind(pod("existing", 100, 100), "full", None)
        .expect("node exists");
    let best_effort = PodSpec {
        name: "be".into(),
        namespace: "default".into(),
        ..PodSpec::default()
    };
    let placement = schedule(&cluster, &best_effort, &SchedulerConfig::default());
    let failure = failure_of(&placement, &cluster, "full").expect("fails");
    assert_eq!(failure.reasons, vec!["Too many pods"]);
    assert!(!failure.unresolvable);
}

#[test]
fn init_and_sidecar_containers_shape_the_effective_request() {
    // Goal: request = max(Σ app + Σ sidecars, max over init of (init + earlier sidecars)).
    // Method: app 500m, sidecar 100m, a later regular init container of 1000m.
    let mut p = pod("p", 500, 100);
    let sidecar = Container {
        name: "proxy".into(),
        requests: [("cpu".to_string(), 100)].into(),
        restart_policy_always: true,
        ..Container::default()
    };
    let init = Container {
        name: "migrate".into(),
        requests: [("cpu".to_string(), 1000)].into(),
        ..Container::default()
    };
    p.init_containers = vec![sidecar, init];
    // Regular init runs next to the sidecar: 1000 + 100 = 1100 > 500 + 100.
    assert_eq!(p.requests().cpu_millis, 1100);
    p.init_containers.pop();
    assert_eq!(p.requests().cpu_millis, 600);
}

#[test]
fn anti_affinity_by_zone_excludes_the_whole_zone_but_not_nodes_without_the_label() {
    // Goal: a zone-keyed anti-affinity term blocks every node of the matching pod's zone;
    // nodes lacking the topology label never fail. Method: zone-a with the db pod, zone-b,
    // and an unlabelled node.
    let nodes = vec![
        in_zone(node("a1", 4000, 8192), "zone-a"),
        in_zone(node("a2", 4000, 8192), "zone-a"),
        in_zone(node("b1", 4000, 8192), "zone-b"),
        node("bare", 4000, 8192),
    ];
    let mut cluster = ClusterState::new(nodes).expect("unique");
    cluster
        .bind(labelled(pod("db-0", 100, 100), "app", "db"), "a1", None)
        .expect("node exists");
    let mut p = labelled(pod("db-1", 100, 100), "app", "db");
    p.pod_anti_affinity_required
        .push(term("app", "db", ZONE_LABEL));
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.feasible, vec![2, 3]);
    let failure = failure_of(&placement, &cluster, "a2").expect("same zone fails");
    assert_eq!(
        failure.reasons,
        vec!["node(s) didn't match pod anti-affinity rules"]
    );
    assert!(!failure.unresolvable);
}

#[test]
fn anti_affinity_terms_only_match_their_namespaces() {
    // Goal: a term without namespaces covers only the owner's namespace. Method: the same
    // labels in another namespace do not block.
    let mut cluster = ClusterState::new(vec![node("n1", 4000, 8192)]).expect("unique");
    let mut other = labelled(pod("web-0", 100, 100), "app", "web");
    other.namespace = "staging".into();
    cluster.bind(other, "n1", None).expect("node exists");
    let mut p = labelled(pod("web-1", 100, 100), "app", "web");
    p.pod_anti_affinity_required
        .push(term("app", "web", HOSTNAME_LABEL));
    assert_eq!(
        schedule(&cluster, &p, &SchedulerConfig::default()).selected,
        Some(0)
    );
    p.pod_anti_affinity_required[0].namespaces = vec!["staging".into()];
    assert_eq!(
        schedule(&cluster, &p, &SchedulerConfig::default()).selected,
        None
    );
}

#[test]
fn existing_pods_anti_affinity_keeps_a_matching_pod_away() {
    // Goal: the symmetric check: an existing pod's required anti-affinity term that matches
    // the incoming pod blocks the existing pod's domain. Method: guard pod on n1.
    let mut cluster =
        ClusterState::new(vec![node("n1", 4000, 8192), node("n2", 4000, 8192)]).expect("unique");
    let mut guard = labelled(pod("guard", 100, 100), "app", "guard");
    guard
        .pod_anti_affinity_required
        .push(term("app", "batch", HOSTNAME_LABEL));
    cluster.bind(guard, "n1", None).expect("node exists");
    let p = labelled(pod("job", 100, 100), "app", "batch");
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.feasible, vec![1]);
    assert_eq!(
        failure_of(&placement, &cluster, "n1")
            .expect("fails")
            .reasons,
        vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
    );
}

#[test]
fn the_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_topology_keys() {
    // Goal: required affinity that matches no pod anywhere is waived when the pod matches
    // its own terms; once a match exists, only its domain passes. Method: empty cluster,
    // then bind one group member and ask again.
    let mut cluster = ClusterState::new(vec![
        in_zone(node("a", 4000, 8192), "z1"),
        in_zone(node("b", 4000, 8192), "z2"),
    ])
    .expect("unique");
    let mut p = labelled(pod("g-0", 100, 100), "group", "g");
    p.pod_affinity_required.push(term("group", "g", ZONE_LABEL));
    assert_eq!(
        schedule(&cluster, &p, &SchedulerConfig::default()).feasible,
        vec![0, 1]
    );
    cluster.bind(p.clone(), "b", None).expect("node exists");
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.feasible, vec![1]);
    let failure = failure_of(&placement, &cluster, "a").expect("fails");
    assert_eq!(
        failure.reasons,
        vec!["node(s) didn't match pod affinity rules"]
    );
    assert!(failure.unresolvable);
}

#[test]
fn least_allocated_and_balanced_allocation_match_the_spec_worked_example() {
    // Goal: the arithmetic of spec 2.4's worked example. Method: call the scorers on n2
    // (4 CPU, 8 Gi, 1 CPU/2 Gi used) and n3 (8 CPU, 16 Gi) for a 2 CPU/1 Gi pod.
    let n2 = node("n2", 4000, 8192);
    let used = NodeUsage {
        requested: Resources {
            cpu_millis: 1000,
            memory_bytes: 2048 * MIB,
            ..Resources::default()
        },
        non_zero_cpu_millis: 1000,
        non_zero_memory_bytes: 2048 * MIB,
        pod_count: 1,
        pods: Vec::new(),
    };
    let n3 = node("n3", 8000, 16384);
    let empty = NodeUsage::default();
    let request = (2000, 1024 * MIB);
    assert_eq!(least_allocated(&n2, &used, request), 43);
    assert_eq!(balanced_allocation(&n2, &used, request), 81);
    assert_eq!(least_allocated(&n3, &empty, request), 84);
    assert_eq!(balanced_allocation(&n3, &empty, request), 90);
}

#[test]
fn least_allocated_leaves_out_a_resource_the_node_does_not_offer() {
    // Goal: a zero allocatable resource is skipped with its weight, not scored 0. Method: a
    // node with memory but no cpu.
    let no_cpu = node("odd", 0, 8192);
    assert_eq!(
        least_allocated(&no_cpu, &NodeUsage::default(), (0, 4096 * MIB)),
        50
    );
}

#[test]
fn score_normalizations_follow_upstream_helpers() {
    // Goal: DefaultNormalizeScore (reverse and not) and InterPodAffinity's min-max scaling.
    // Method: small vectors with hand-computed results.
    let mut taints = vec![2, 1, 0];
    default_normalize(&mut taints, true);
    assert_eq!(taints, vec![0, 50, 100]);
    let mut none = vec![0, 0];
    default_normalize(&mut none, true);
    assert_eq!(none, vec![100, 100]);
    let mut weights = vec![30, 0, 90];
    default_normalize(&mut weights, false);
    assert_eq!(weights, vec![33, 0, 100]);
    let mut signed = vec![-60, -60, 0, -30];
    min_max_normalize(&mut signed);
    assert_eq!(signed, vec![0, 0, 100, 50]);
    let mut flat = vec![5, 5];
    min_max_normalize(&mut flat);
    assert_eq!(flat, vec![0, 0]);
}

#[test]
fn best_effort_pods_skip_balanced_allocation_from_v1_33() {
    // Goal: BalancedAllocation is skipped for a pod requesting neither cpu nor memory in
    // v1.35 and scored in v1.29. Method: one empty node.
    let cluster = ClusterState::new(vec![node("n1", 4000, 8192)]).expect("unique");
    let best_effort = PodSpec {
        name: "be".into(),
        namespace: "default".into(),
        ..PodSpec::default()
    };
    let now = schedule(&cluster, &best_effort, &SchedulerConfig::default());
    assert_eq!(now.scores[0].balanced_allocation, None);
    let old = schedule(&cluster, &best_effort, &v129());
    assert_eq!(old.scores[0].balanced_allocation, Some(100));
}

#[test]
fn score_ties_go_to_the_smallest_node_name_and_list_every_top_node() {
    // Goal: deterministic tie-break with the tie reported. Method: identical nodes given
    // in reverse name order.
    let cluster = ClusterState::new(vec![
        node("c", 4000, 8192),
        node("a", 4000, 8192),
        node("b", 4000, 8192),
    ])
    .expect("unique");
    let placement = schedule(&cluster, &pod("p", 100, 100), &SchedulerConfig::default());
    assert!(placement.is_tie());
    assert_eq!(placement.top_nodes, vec![1, 2, 0]);
    assert_eq!(placement.selected, Some(1));
}

#[test]
fn failure_message_counts_distinct_reasons_sorted_as_strings() {
    // Goal: the FitError format. Method: reasons whose counts sort before their text.
    let reasons = ["b reason", "a reason", "b reason", "Insufficient cpu"];
    assert_eq!(
        fit_error_message(4, reasons.into_iter()),
        "0/4 nodes are available: 1 Insufficient cpu, 1 a reason, 2 b reason."
    );
}

fn preemption_cluster() -> ClusterState {
    let mut cluster =
        ClusterState::new(vec![node("n1", 4000, 8192), node("n2", 4000, 8192)]).expect("unique");
    for (name, node_name, priority, start) in [
        ("a", "n1", 10, -100),
        ("b", "n1", 20, -50),
        ("c", "n2", 10, -300),
        ("d", "n2", 10, -200),
    ] {
        let mut p = labelled(pod(name, 2000, 100), "app", node_name);
        p.priority = priority;
        cluster
            .bind(p, node_name, Some(start))
            .expect("node exists");
    }
    cluster
}

#[test]
fn preemption_reprieves_important_pods_and_prefers_evicting_the_latest_started() {
    // Goal: reprieve runs most important first, and among equal candidates the node whose
    // victims started latest wins. Method: n1 keeps b (priority 20) and loses a (started
    // 100 s ago); n2 keeps c (earlier) and loses d (started 200 s ago). Both victims have
    // priority 10, one each, no PDBs: the start-time criterion picks n1.
    let cluster = preemption_cluster();
    let mut p = pod("urgent", 2000, 100);
    p.priority = 100;
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    let preemption = placement.preemption.expect("preempts");
    assert_eq!(preemption.nominated_node, 0);
    let victims: Vec<&str> = preemption
        .victims
        .iter()
        .map(|id| cluster.pod(*id).expect("bound").spec.name.as_str())
        .collect();
    assert_eq!(victims, vec!["a"]);
    assert_eq!(preemption.pdb_violations, 0);
}

#[test]
fn preemption_prefers_the_node_whose_most_important_victim_matters_least() {
    // Goal: the second criterion: the lowest highest-priority victim. Method: the preemptor
    // needs the whole of n1 (both a and b must go, b has priority 20) or of n2 (c and d,
    // priority 10 each): n2 wins.
    let cluster = preemption_cluster();
    let mut p = pod("urgent", 4000, 100);
    p.priority = 100;
    let preemption = schedule(&cluster, &p, &SchedulerConfig::default())
        .preemption
        .expect("preempts");
    assert_eq!(preemption.nominated_node, 1);
    let victims: Vec<&str> = preemption
        .victims
        .iter()
        .map(|id| cluster.pod(*id).expect("bound").spec.name.as_str())
        .collect();
    assert_eq!(
        victims,
        vec!["c", "d"],
        "most important (earliest started) first"
    );
}

#[test]
fn preemption_never_evicts_pods_of_equal_or_higher_priority() {
    // Goal: only strictly lower priorities are victims. Method: a preemptor of priority 10
    // against pods of priority 10 and 20: nothing is lower, so no node has victims.
    let cluster = preemption_cluster();
    let mut p = pod("peer", 2000, 100);
    p.priority = 10;
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(placement.preemption, None);
    let message = &placement.unschedulable.expect("unschedulable").message;
    assert!(
        message.ends_with(
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        ),
        "{message}"
    );
}

#[test]
fn preemption_violates_a_pdb_only_when_every_candidate_would() {
    // Goal: PDBs are best effort. Method: budgets of 0 cover every pod on both nodes; the
    // scheduler still nominates, counting the violation.
    let mut cluster = preemption_cluster();
    for app in ["n1", "n2"] {
        cluster.add_pdb(PodDisruptionBudget {
            name: format!("pdb-{app}"),
            namespace: "default".into(),
            selector: LabelSelector::from_labels([("app".to_string(), app.to_string())].into()),
            disruptions_allowed: 0,
            disrupted_pods: Vec::new(),
        });
    }
    let mut p = pod("urgent", 2000, 100);
    p.priority = 100;
    let preemption = schedule(&cluster, &p, &SchedulerConfig::default())
        .preemption
        .expect("still preempts");
    assert_eq!(preemption.pdb_violations, 1);
    assert_eq!(
        preemption.nominated_node, 0,
        "equal violations: the later-started victim decides, as without PDBs"
    );
}

#[test]
fn preemption_skips_nodes_where_removing_pods_cannot_help() {
    // Goal: unresolvable nodes are never candidates and a node that still does not fit
    // after removing every lower pod reports its filter reason. Method: a tainted node and a
    // node too small even when empty (v1.29, where that is still resolvable).
    let mut tainted = node("tainted", 8000, 8192);
    tainted.taints.push(Taint {
        key: "k".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    });
    let mut cluster = ClusterState::new(vec![tainted, node("small", 1000, 8192)]).expect("unique");
    cluster
        .bind(pod("low", 500, 100), "small", None)
        .expect("node exists");
    let mut p = pod("big", 2000, 100);
    p.priority = 5;
    let placement = schedule(&cluster, &p, &v129());
    assert_eq!(placement.preemption, None);
    assert_eq!(
        placement.unschedulable.expect("unschedulable").message,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: }. \
         preemption: 0/2 nodes are available: 1 Insufficient cpu, 1 Preemption is not helpful for scheduling."
    );
}

#[test]
fn preemption_frees_an_anti_affinity_domain_by_evicting_the_blocking_pod() {
    // Goal: the dry run updates the inter-pod counts (RemovePod), so evicting a lower-priority
    // pod that the preemptor's anti-affinity matches makes the node fit. Method: one node
    // with a low-priority app=web pod; a high-priority app=web pod with hostname anti-affinity.
    let mut cluster = ClusterState::new(vec![node("n1", 4000, 8192)]).expect("unique");
    cluster
        .bind(labelled(pod("old-web", 100, 100), "app", "web"), "n1", None)
        .expect("node exists");
    let mut p = labelled(pod("new-web", 100, 100), "app", "web");
    p.priority = 1000;
    p.pod_anti_affinity_required
        .push(term("app", "web", HOSTNAME_LABEL));
    let preemption = schedule(&cluster, &p, &SchedulerConfig::default())
        .preemption
        .expect("preempts");
    assert_eq!(
        cluster.pod(preemption.victims[0]).expect("bound").spec.name,
        "old-web"
    );
}

#[test]
fn kubernetes_versions_parse_with_or_without_v_and_patch() {
    // Goal: accepted spellings. Method: a table.
    assert_eq!(
        KubernetesVersion::parse("v1.29"),
        Some(KubernetesVersion {
            major: 1,
            minor: 29
        })
    );
    assert_eq!(
        KubernetesVersion::parse("1.35.2"),
        Some(KubernetesVersion {
            major: 1,
            minor: 35
        })
    );
    assert_eq!(KubernetesVersion::parse("v2.0"), None);
    assert_eq!(KubernetesVersion::parse("latest"), None);
}

#[test]
fn preferred_node_affinity_scores_matching_weights_normalized_to_the_best_node() {
    // Goal: NodeAffinity score = Σ matching preferred weights, scaled so the best node gets
    // 100; skipped without preferred terms. Method: weights 30 and 60 on two labels.
    let mut both = node("both", 4000, 8192);
    both.labels.insert("ssd".into(), "yes".into());
    both.labels.insert("fast".into(), "yes".into());
    let mut one = node("one", 4000, 8192);
    one.labels.insert("ssd".into(), "yes".into());
    let cluster = ClusterState::new(vec![both, one, node("none", 4000, 8192)]).expect("unique");
    let exists = |key: &str| NodeSelectorTerm {
        match_expressions: vec![Requirement {
            key: key.into(),
            operator: SelectorOperator::Exists,
            values: Vec::new(),
        }],
    };
    let mut p = pod("p", 100, 100);
    assert!(
        schedule(&cluster, &p, &SchedulerConfig::default())
            .scores
            .iter()
            .all(|s| s.node_affinity.is_none())
    );
    p.node_affinity_preferred = vec![
        PreferredSchedulingTerm {
            weight: 30,
            preference: exists("ssd"),
        },
        PreferredSchedulingTerm {
            weight: 60,
            preference: exists("fast"),
        },
    ];
    let placement = schedule(&cluster, &p, &SchedulerConfig::default());
    let scores: Vec<Option<i64>> = placement.scores.iter().map(|s| s.node_affinity).collect();
    assert_eq!(scores, vec![Some(100), Some(33), Some(0)]);
    assert_eq!(placement.selected, Some(0));
}

#[test]
fn inter_pod_affinity_scores_count_existing_pods_required_affinity_at_the_hard_weight() {
    // Goal: an existing pod's required affinity to the incoming pod's labels scores its domain
    // at hardPodAffinityWeight (1), then min-max normalizes. Method: a client pod on n1 with
    // required affinity to app=server by hostname; the incoming server pod has no terms.
    let mut cluster =
        ClusterState::new(vec![node("n1", 4000, 8192), node("n2", 4000, 8192)]).expect("unique");
    let mut client = labelled(pod("client", 100, 100), "app", "client");
    client
        .pod_affinity_required
        .push(term("app", "server", HOSTNAME_LABEL));
    cluster.bind(client, "n1", None).expect("node exists");
    let server = labelled(pod("server", 100, 100), "app", "server");
    let placement = schedule(&cluster, &server, &SchedulerConfig::default());
    let scores: Vec<Option<i64>> = placement
        .scores
        .iter()
        .map(|s| s.inter_pod_affinity)
        .collect();
    assert_eq!(scores, vec![Some(100), Some(0)]);
    let off = SchedulerConfig {
        hard_pod_affinity_weight: 0,
        ..SchedulerConfig::default()
    };
    assert!(
        schedule(&cluster, &server, &off)
            .scores
            .iter()
            .all(|s| s.inter_pod_affinity.is_none()),
        "nothing contributes: skipped"
    );
}

#[test]
fn a_nominated_pod_waits_while_its_victims_terminate() {
    // Goal: PodEligibleToPreemptOthers: after preempting, the pod does not preempt again while
    // a lower-priority victim on its nominated node is still terminating; once the victim is
    // gone it schedules. Method: preempt, mark the victim, retry, remove it, retry.
    let mut cluster = preemption_cluster();
    let mut p = pod("urgent", 2000, 100);
    p.priority = 100;
    let first = schedule(&cluster, &p, &SchedulerConfig::default())
        .preemption
        .expect("preempts");
    for id in &first.victims {
        assert!(cluster.mark_preempted(*id));
    }
    p.nominated_node_name = Some(cluster.nodes()[first.nominated_node].name.clone());
    let waiting = schedule(&cluster, &p, &SchedulerConfig::default());
    assert_eq!(waiting.preemption, None);
    let message = waiting.unschedulable.expect("still unschedulable").message;
    assert!(
        message
            .ends_with("preemption: not eligible due to a terminating pod on the nominated node."),
        "{message}"
    );
    for id in &first.victims {
        cluster.remove(*id).expect("bound");
    }
    assert_eq!(
        schedule(&cluster, &p, &SchedulerConfig::default()).selected,
        Some(first.nominated_node)
    );
}

#[test]
fn from_v1_34_the_dynamic_resources_post_filter_speaks_before_preemption() {
    // Goal: v1.34+ (DRA on by default) prefixes the PostFilter part with DynamicResources'
    // reason for a pod without claims; v1.29 does not; a successful preemption adds nothing.
    // Method: a full node and a non-preempting pod in both versions, then a preempting one.
    let mut cluster = ClusterState::new(vec![node("n1", 1000, 8192)]).expect("unique");
    cluster
        .bind(pod("busy", 1000, 100), "n1", None)
        .expect("node exists");
    let mut p = pod("p", 500, 100);
    p.priority = 10;
    p.preemption_policy = PreemptionPolicy::Never;
    let message = |config: &SchedulerConfig, p: &PodSpec| {
        schedule(&cluster, p, config)
            .unschedulable
            .expect("unschedulable")
            .message
    };
    assert_eq!(
        message(&SchedulerConfig::default(), &p),
        "0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."
    );
    assert_eq!(
        message(&v129(), &p),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
    p.preemption_policy = PreemptionPolicy::PreemptLowerPriority;
    assert_eq!(
        message(&SchedulerConfig::default(), &p),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
}

#[test]
fn a_nominated_pod_holds_its_room_against_pods_of_lower_or_equal_priority() {
    // Goal: RunFilterPluginsWithNominatedPods: a pod nominated to a node counts there for
    // pods of lower or equal priority, not for higher ones, and not for itself. Method: a
    // 2000m node with a 1500m nomination of priority 100; 1000m pods of priority 10 and 200.
    let mut cluster = ClusterState::new(vec![node("n1", 2000, 8192)]).expect("unique");
    let mut waiting = pod("waiting", 1500, 100);
    waiting.priority = 100;
    cluster
        .nominate(waiting.clone(), "n1")
        .expect("node exists");
    let mut low = pod("low", 1000, 100);
    low.priority = 10;
    let placement = schedule(&cluster, &low, &SchedulerConfig::default());
    assert_eq!(
        failure_of(&placement, &cluster, "n1")
            .expect("held")
            .reasons,
        vec!["Insufficient cpu"]
    );
    let mut high = pod("high", 1000, 100);
    high.priority = 200;
    assert_eq!(
        schedule(&cluster, &high, &SchedulerConfig::default()).selected,
        Some(0)
    );
    assert_eq!(
        schedule(&cluster, &waiting, &SchedulerConfig::default()).selected,
        Some(0),
        "its own nomination is not counted"
    );
    cluster.clear_nomination("default", "waiting");
    assert_eq!(
        schedule(&cluster, &low, &SchedulerConfig::default()).selected,
        Some(0)
    );
}
