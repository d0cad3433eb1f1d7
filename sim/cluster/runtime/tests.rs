use super::*;
use crate::cluster::lower;
use crate::cluster::schedule::KubernetesVersion;
use crate::engine::Engine;
use crate::manifests::{load_dir, topology::load_topology};

/// The plan's cluster on the topology fixture, with both Deployments added at time 0.
struct Sophia {
    engine: Engine<ClusterEvent>,
    cluster: ClusterRuntime,
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

impl Sophia {
    fn new() -> Sophia {
        Sophia::with_models(|_| {})
    }

    /// The plan with each lowered Deployment changed by `edit` before it is added.
    fn with_models(edit: impl Fn(&mut crate::cluster::lower::DeploymentModel)) -> Sophia {
        let inventory = load_dir(root().join("fixtures/sophia")).expect("the plan loads");
        let topology = load_topology(root().join("fixtures/sophia/topology.yaml"))
            .expect("the topology loads");
        let sharing = lower::gpu_sharing(inventory.gpu_sharing().first().map(|s| &s.object));
        let config = SchedulerConfig {
            kubernetes_version: KubernetesVersion::parse(&topology.kubernetes_version)
                .expect("a version"),
            ..SchedulerConfig::default()
        };
        let mut cluster = ClusterRuntime::new(
            lower::nodes(&topology, sharing),
            lower::quotas(&inventory).expect("quotas lower"),
            config,
        )
        .expect("nodes");
        let mut engine = Engine::new();
        let mut out = Vec::new();
        for d in inventory.deployments() {
            let mut model = lower::deployment(&inventory, d).expect("deployment lowers");
            edit(&mut model);
            cluster.add_deployment(SimTime::ZERO, model, AppBehaviour::default(), &mut out);
        }
        for (at, ev) in out {
            engine.scheduler().at(at, ev);
        }
        Sophia { engine, cluster }
    }

    fn run_until(&mut self, secs: u64) {
        let cluster = &mut self.cluster;
        let mut out = Vec::new();
        self.engine
            .run_until(SimTime::from_secs(secs), |sched, ev| {
                cluster.handle(sched.now(), ev, &mut out);
                for (at, ev) in out.drain(..) {
                    sched.at(at, ev);
                }
            });
    }

    /// Applies an action taken between events (a scale, a node loss) and schedules its timers.
    fn act(
        &mut self,
        action: impl FnOnce(&mut ClusterRuntime, SimTime, &mut Vec<(SimTime, ClusterEvent)>),
    ) {
        let now = self.engine.now();
        let mut out = Vec::new();
        action(&mut self.cluster, now, &mut out);
        for (at, ev) in out {
            self.engine.scheduler().at(at, ev);
        }
    }

    fn deployment(&self, name: &str) -> usize {
        self.cluster
            .deployments
            .iter()
            .position(|d| d.model.name == name)
            .expect("deployment exists")
    }

    fn nodes_of(&self, name: &str) -> Vec<String> {
        let d = self.deployment(name);
        let mut nodes: Vec<String> = self
            .cluster
            .pods
            .values()
            .filter(|p| p.deployment == d && !p.is_terminating())
            .filter_map(|p| p.node.map(|n| self.cluster.state.nodes()[n].name.clone()))
            .collect();
        nodes.sort();
        nodes
    }
}

#[test]
fn the_coordinators_three_replicas_land_on_three_distinct_general_nodes_and_become_ready() {
    // Goal: issue 3's first Sophia check. Method: the plan on the topology fixture; after the
    // 5 s start and the readiness probe's 20 s initial delay (ticks every 5 s from binding,
    // first at 25 s), all three are Ready.
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    assert_eq!(
        sophia.nodes_of("agno-coordinator"),
        vec!["general-0", "general-1", "general-2"]
    );
    let d = sophia.deployment("agno-coordinator");
    let ready: Vec<_> = sophia
        .cluster
        .ready_pods(d)
        .map(|p| p.ready_since)
        .collect();
    assert_eq!(ready, vec![Some(SimTime::from_secs(25)); 3]);
}

#[test]
fn the_gpu_pods_land_only_on_the_a100_node_with_their_toleration() {
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    assert_eq!(sophia.nodes_of("mcp-agents-gpu"), vec!["a100-0", "a100-0"]);
    // No probes: Ready as soon as the container runs.
    let d = sophia.deployment("mcp-agents-gpu");
    assert_eq!(sophia.cluster.ready_pods(d).count(), 2);
}

#[test]
fn a_fourth_coordinator_replica_stays_pending_with_the_anti_affinity_message() {
    // Goal: required anti-affinity on kubernetes.io/hostname with 3 general nodes. The two GPU
    // nodes are tainted; the 1.29 scheduler prints the taint with its key and empty value.
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    let d = sophia.deployment("agno-coordinator");
    sophia.act(|c, now, out| c.scale(now, d, 4, out));
    sophia.run_until(120);
    let pending: Vec<_> = sophia.cluster.pending().collect();
    assert_eq!(pending.len(), 1);
    let PodStatus::Pending { message } = &pending[0].status else {
        panic!("pending")
    };
    assert!(
        message.starts_with("0/5 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: }, 3 node(s) didn't match pod anti-affinity rules."),
        "{message}"
    );
    assert!(
        sophia
            .cluster
            .records
            .iter()
            .any(|r| r.reason == "FailedScheduling" && r.message == *message)
    );
}

#[test]
fn a_ninth_single_gpu_pod_is_refused_by_the_eight_gpu_quota() {
    // Goal: quota admission on pod creation. MPS with 4 clients advertises 32 units on the
    // A100 node, so the node has room; the namespace's requests.nvidia.com/gpu: 8 does not.
    let mut sophia = Sophia::new();
    sophia.run_until(30);
    let d = sophia.deployment("mcp-agents-gpu");
    sophia.act(|c, now, out| c.scale(now, d, 9, out));
    sophia.run_until(90);
    assert_eq!(sophia.nodes_of("mcp-agents-gpu").len(), 8);
    let failed: Vec<_> = sophia
        .cluster
        .records
        .iter()
        .filter(|r| r.reason == "FailedCreate")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "recorded once while the message stays the same"
    );
    assert!(
        failed[0]
            .message
            .contains("exceeded quota: sophia-resource-quota"),
        "{}",
        failed[0].message
    );
    assert!(
        failed[0].message.contains("requests.nvidia.com/gpu"),
        "{}",
        failed[0].message
    );
    // Scaling back makes room: the refusal ends.
    sophia.act(|c, now, out| c.scale(now, d, 8, out));
    sophia.run_until(120);
    assert!(
        sophia.cluster.deployments[d].replica_sets[0]
            .failed_create
            .is_none()
    );
}

#[test]
fn losing_the_a100_node_leaves_the_gpu_pods_pending() {
    // Goal: node loss → NotReady at once → eviction after the 300 s default toleration →
    // replacements that fit nowhere, since the nodeSelector excludes the H100 node.
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    let a100 = sophia.cluster.state.node_by_name("a100-0").expect("node");
    sophia.act(|c, now, out| c.lose_node(now, a100, out));
    let d = sophia.deployment("mcp-agents-gpu");
    assert_eq!(
        sophia.cluster.ready_pods(d).count(),
        0,
        "Ready drops with the node"
    );
    sophia.run_until(359);
    assert_eq!(
        sophia.cluster.pending().count(),
        0,
        "still bound before the toleration ends"
    );
    sophia.run_until(361);
    let pending: Vec<_> = sophia
        .cluster
        .pending()
        .filter(|p| p.deployment == d)
        .collect();
    assert_eq!(pending.len(), 2);
    let PodStatus::Pending { message } = &pending[0].status else {
        panic!("pending")
    };
    assert!(message.starts_with("0/5 nodes are available:"), "{message}");
    assert!(
        message.contains("node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );
}

#[test]
fn a_crash_looping_container_restarts_on_the_back_off_sequence() {
    // Goal: the kubelet's back-off in the runtime: exits 1 s after each start; restarts at
    // 0, 10, 20, 40 s after each exit.
    let mut sophia = Sophia::new();
    let d = sophia.deployment("mcp-agents-gpu");
    sophia.cluster.deployments[d].replica_sets[0]
        .behaviour
        .crash_after = Some(SimDuration::from_secs(1));
    sophia.act(|c, now, out| c.scale(now, d, 3, out));
    sophia.run_until(200);
    let crashing = sophia
        .cluster
        .pods
        .values()
        .find(|p| p.deployment == d && p.behaviour.crash_after.is_some())
        .expect("new pod");
    let name = crashing.name.clone();
    let starts: Vec<u64> = sophia
        .cluster
        .records
        .iter()
        .filter(|r| r.reason == "Started" && r.object == format!("pod/{name}"))
        .map(|r| r.at.as_nanos() / 1_000_000_000)
        .collect();
    // Created at 0, started at 5 (profile startup), exits at 6, 6+0 → 6, exits 7, +10 → 17,
    // exits 18, +20 → 38, exits 39, +40 → 79, exits 80, +80 → 160.
    assert_eq!(starts, vec![5, 6, 17, 38, 79, 160]);
    assert!(sophia.cluster.records.iter().any(|r| {
        r.reason == "BackOff"
            && r.message
                .starts_with("back-off 20s restarting failed container=mcp-agents")
    }));
}

#[test]
fn a_rolling_update_never_drops_below_replicas_minus_max_unavailable() {
    // Goal: the plan's maxSurge 1 / maxUnavailable 0 on the coordinator, on a cluster where
    // anti-affinity does not bind (the surge pod needs a fourth node). Method: roll out a new
    // template and check availability and total pods after every event.
    // Drop the anti-affinity so the surge fits on 3 nodes.
    let mut sophia = Sophia::with_models(|m| m.template.pod_anti_affinity_required.clear());
    let d = sophia.deployment("agno-coordinator");
    let mut template = sophia.cluster.deployments[d].model.template.clone();
    sophia.run_until(60);
    template.labels.insert("version".into(), "v2".into());
    sophia.act(|c, now, out| c.roll_out(now, d, template, AppBehaviour::default(), out));
    let mut t = 60;
    while t < 400 {
        t += 1;
        sophia.run_until(t);
        let now = SimTime::from_secs(t);
        let available: i32 = (0..sophia.cluster.deployments[d].replica_sets.len())
            .map(|rs| sophia.cluster.available(now, d, rs))
            .sum();
        let total = sophia
            .cluster
            .pods
            .values()
            .filter(|p| p.deployment == d && !p.is_terminating())
            .count();
        assert!(available >= 3, "available {available} at {t}s");
        assert!(total <= 4, "total {total} at {t}s");
    }
    let rs = &sophia.cluster.deployments[d].replica_sets;
    assert_eq!((rs[0].replicas, rs[1].replicas), (0, 3));
    assert_eq!(
        sophia
            .cluster
            .ready_pods(d)
            .filter(|p| p.replica_set == 1)
            .count(),
        3
    );
}

#[test]
fn a_drain_cordons_the_node_and_waits_for_the_disruption_budget() {
    // Goal: kubectl drain through the eviction API. Method: the coordinator (3 replicas, one
    // per general node) under a PDB with minAvailable 3: evicting from general-0 would leave 2,
    // so it is refused and retried until, with the budget lowered, the pod goes; its
    // replacement cannot use the cordoned node and, with anti-affinity on 3 nodes, stays Pending.
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    let d = sophia.deployment("agno-coordinator");
    let selector = sophia.cluster.deployments[d].model.selector.clone();
    sophia.cluster.budgets.push(DisruptionBudget {
        name: "coordinator-pdb".into(),
        namespace: "sophia-production".into(),
        selector,
        min_available: Some(IntOrPercent::Int(3)),
        max_unavailable: None,
    });
    let node = sophia
        .cluster
        .state
        .node_by_name("general-0")
        .expect("node");
    sophia.act(|c, now, out| c.drain_node(now, node, out));
    assert!(
        sophia.cluster.state.nodes()[node].unschedulable,
        "cordoned at once"
    );
    sophia.run_until(70);
    let blocked = sophia
        .cluster
        .records
        .iter()
        .filter(|r| r.reason == "EvictionBlocked")
        .count();
    assert!(blocked >= 2, "refused, then retried every 5 s: {blocked}");
    assert_eq!(
        sophia.nodes_of("agno-coordinator"),
        vec!["general-0", "general-1", "general-2"]
    );
    sophia.cluster.budgets[0].min_available = Some(IntOrPercent::Int(2));
    sophia.run_until(120);
    assert!(
        sophia
            .cluster
            .records
            .iter()
            .any(|r| r.reason == "Killing" && r.message.contains("evicted by drain"))
    );
    assert_eq!(
        sophia.nodes_of("agno-coordinator"),
        vec!["general-1", "general-2"]
    );
    assert_eq!(
        sophia.cluster.pending().count(),
        1,
        "the replacement has nowhere to go"
    );
}

#[test]
fn a_rollout_that_cannot_progress_reports_progress_deadline_exceeded() {
    // Goal: §4.5 on the plan: maxSurge 1 / maxUnavailable 0 with required anti-affinity on 3
    // nodes; the surge pod stays Pending, so after progressDeadlineSeconds (600 s default)
    // the Deployment reports ProgressDeadlineExceeded, once.
    let mut sophia = Sophia::new();
    sophia.run_until(60);
    let d = sophia.deployment("agno-coordinator");
    let mut template = sophia.cluster.deployments[d].model.template.clone();
    template.labels.insert("release".into(), "v2".into());
    sophia.act(|c, now, out| c.roll_out(now, d, template, AppBehaviour::default(), out));
    sophia.run_until(600);
    assert!(
        !sophia
            .cluster
            .records
            .iter()
            .any(|r| r.reason == "ProgressDeadlineExceeded")
    );
    sophia.run_until(1_400);
    let exceeded: Vec<_> = sophia
        .cluster
        .records
        .iter()
        .filter(|r| r.reason == "ProgressDeadlineExceeded")
        .collect();
    assert_eq!(exceeded.len(), 1, "reported once");
    assert!(
        exceeded[0].at > SimTime::from_secs(660) && exceeded[0].at <= SimTime::from_secs(662),
        "{}",
        exceeded[0].at
    );
    assert_eq!(
        exceeded[0].message,
        "ReplicaSet \"agno-coordinator-r2\" has timed out progressing."
    );
}

#[test]
fn a_higher_priority_pod_preempts_a_lower_one_and_binds_once_it_is_gone() {
    // Goal: DefaultPreemption in the runtime. Method: one general node (32 CPUs); a
    // priority-0 Deployment holding 20 CPUs, then a priority-1000 one asking 20 CPUs. The
    // scheduler nominates the node, the victim is deleted with its 30 s grace period, and the
    // high-priority pod binds when it is gone; the victim's replacement stays Pending.
    let inventory = load_dir(root().join("fixtures/sophia")).expect("the plan loads");
    let topology =
        load_topology(root().join("fixtures/sophia/topology.yaml")).expect("the topology loads");
    let nodes: Vec<_> = lower::nodes(&topology, lower::gpu_sharing(None))
        .into_iter()
        .filter(|n| n.name == "general-0")
        .collect();
    let mut cluster =
        ClusterRuntime::new(nodes, Vec::new(), SchedulerConfig::default()).expect("nodes");
    let base = lower::deployment(&inventory, &inventory.deployments()[0]).expect("lowers");
    let sized = |name: &str, priority: i32| {
        let mut m = base.clone();
        m.name = name.to_string();
        m.replicas = 1;
        m.template.priority = priority;
        m.template.pod_anti_affinity_required.clear();
        m.template.labels.insert("app".into(), name.to_string());
        m.selector = crate::cluster::model::LabelSelector::from_labels(
            [("app".to_string(), name.to_string())].into(),
        );
        m.template.containers[0]
            .requests
            .insert("cpu".into(), 20_000);
        m.template.containers[0].limits.insert("cpu".into(), 20_000);
        m
    };
    let mut engine: Engine<ClusterEvent> = Engine::new();
    let mut out = Vec::new();
    cluster.add_deployment(
        SimTime::ZERO,
        sized("batch", 0),
        AppBehaviour::default(),
        &mut out,
    );
    for (at, ev) in out.drain(..) {
        engine.scheduler().at(at, ev);
    }
    let step = |engine: &mut Engine<ClusterEvent>, cluster: &mut ClusterRuntime, until: u64| {
        let mut out = Vec::new();
        engine.run_until(SimTime::from_secs(until), |sched, ev| {
            cluster.handle(sched.now(), ev, &mut out);
            for (at, ev) in out.drain(..) {
                sched.at(at, ev);
            }
        });
    };
    step(&mut engine, &mut cluster, 60);
    cluster.add_deployment(
        SimTime::from_secs(60),
        sized("critical", 1000),
        AppBehaviour::default(),
        &mut out,
    );
    for (at, ev) in out.drain(..) {
        engine.scheduler().at(at, ev);
    }
    assert!(
        cluster
            .records
            .iter()
            .any(|r| r.reason == "Preempted" && r.object.starts_with("pod/batch"))
    );
    step(&mut engine, &mut cluster, 120);
    let bound: Vec<&str> = cluster
        .pods
        .values()
        .filter(|p| p.node.is_some() && !p.is_terminating())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(bound.len(), 1);
    assert!(bound[0].starts_with("critical"), "{bound:?}");
    assert_eq!(
        cluster.pending().count(),
        1,
        "the victim's replacement waits"
    );
}
