use std::collections::BTreeMap;

use proptest::prelude::*;

use super::model::*;
use super::quota::{QuotaObject, ResourceQuota, admit};
use super::*;

const MIB: i64 = 1024 * 1024;

fn gpu_node(name: &str, gpus: usize, sharing: GpuSharing) -> Node {
    let devices = vec![
        GpuDevice {
            class: "A100".into(),
            memory_bytes: 80 << 30
        };
        gpus
    ];
    let gpus = NodeGpus::new(devices, sharing);
    let mut allocatable = Resources {
        cpu_millis: 64_000,
        memory_bytes: 256 << 30,
        pods: 110,
        ..Resources::default()
    };
    allocatable.set(GPU_RESOURCE, gpus.advertised_units());
    Node {
        name: name.into(),
        allocatable,
        gpus: Some(gpus),
        ..Node::default()
    }
}

fn gpu_pod(name: &str, units: i64) -> PodSpec {
    let requests: ResourceList = [(GPU_RESOURCE.to_string(), units)].into();
    PodSpec {
        name: name.into(),
        namespace: "default".into(),
        containers: vec![Container {
            requests,
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

#[test]
fn time_sliced_gpus_spread_units_over_the_least_occupied_device() {
    // Goal: N replicas per GPU, least-occupied device first, per-device occupancy, release.
    // Method: 2 GPUs × 2 replicas; a 1-unit pod, then a 2-unit pod, then release the first.
    let mut cluster = ClusterState::new(vec![gpu_node(
        "g",
        2,
        GpuSharing::TimeSlicing { replicas: 2 },
    )])
    .expect("unique");
    assert_eq!(cluster.nodes()[0].allocatable.get(GPU_RESOURCE), 4);
    let first = cluster.bind(gpu_pod("a", 1), "g", None).expect("fits");
    let second = cluster.bind(gpu_pod("b", 2), "g", None).expect("fits");
    let occupancy = cluster.nodes()[0].gpus.as_ref().expect("gpus").occupancy();
    assert_eq!(occupancy[0].pods, vec![(first, 1), (second, 1)]);
    assert_eq!(occupancy[1].pods, vec![(second, 1)]);
    assert_eq!(
        occupancy[0].memory_bytes_per_unit,
        80 << 30,
        "time-slicing does not split memory"
    );
    cluster.remove(first).expect("bound");
    let occupancy = cluster.nodes()[0].gpus.as_ref().expect("gpus").occupancy();
    assert_eq!(
        occupancy.iter().map(|d| d.units_used).collect::<Vec<_>>(),
        vec![1, 1]
    );
    assert_eq!(cluster.usage(0).requested.get(GPU_RESOURCE), 2);
}

#[test]
fn mps_splits_device_memory_and_refuses_more_units_than_exist() {
    // Goal: MPS shares memory per replica; a snapshot asking for more units than the node
    // has is an error, not a silent overcommit. Method: 1 GPU × 4 MPS replicas, 5 units.
    let mut cluster =
        ClusterState::new(vec![gpu_node("g", 1, GpuSharing::Mps { replicas: 4 })]).expect("unique");
    let occupancy = cluster.nodes()[0].gpus.as_ref().expect("gpus").occupancy();
    assert_eq!(occupancy[0].memory_bytes_per_unit, 20 << 30);
    let err = cluster
        .bind(gpu_pod("greedy", 5), "g", None)
        .expect_err("only 4 units");
    assert!(matches!(err, ClusterError::Gpu { .. }));
}

#[test]
fn binding_to_an_unknown_node_is_an_error_and_duplicate_nodes_are_refused() {
    // Goal: ClusterState keeps its own invariants. Method: the two error paths.
    let mut cluster =
        ClusterState::new(vec![gpu_node("g", 1, GpuSharing::Exclusive)]).expect("unique");
    assert!(matches!(
        cluster.bind(gpu_pod("p", 1), "nope", None),
        Err(ClusterError::UnknownNode { .. })
    ));
    assert!(matches!(
        ClusterState::new(vec![
            gpu_node("g", 1, GpuSharing::Exclusive),
            gpu_node("g", 1, GpuSharing::Exclusive)
        ]),
        Err(ClusterError::DuplicateNode(_))
    ));
}

// ---- properties ----------------------------------------------------------------------

const TAINTS: [(&str, TaintEffect); 3] = [
    ("dedicated", TaintEffect::NoSchedule),
    ("evict", TaintEffect::NoExecute),
    ("soft", TaintEffect::PreferNoSchedule),
];

#[derive(Clone, Debug)]
struct NodeSeed {
    cpu_cores: i64,
    memory_gib: i64,
    pods: i64,
    zone: Option<u8>,
    taint: Option<usize>,
    tier: bool,
    gpus: usize,
    replicas: u32,
    cordoned: bool,
}

fn node_seed() -> impl Strategy<Value = NodeSeed> {
    (
        1i64..16,
        1i64..32,
        1i64..8,
        proptest::option::of(0u8..3),
        proptest::option::of(0usize..3),
        any::<bool>(),
        0usize..3,
        1u32..4,
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(cpu_cores, memory_gib, pods, zone, taint, tier, gpus, replicas, cordoned)| NodeSeed {
                cpu_cores,
                memory_gib,
                pods,
                zone,
                taint,
                tier,
                gpus,
                replicas,
                cordoned,
            },
        )
}

fn build_node(idx: usize, seed: &NodeSeed) -> Node {
    let name = format!("node-{idx:03}");
    let mut labels = BTreeMap::new();
    labels.insert(HOSTNAME_LABEL.to_string(), name.clone());
    if let Some(zone) = seed.zone {
        labels.insert(ZONE_LABEL.to_string(), format!("zone-{zone}"));
    }
    labels.insert(
        "tier".to_string(),
        if seed.tier { "fast" } else { "slow" }.to_string(),
    );
    let mut allocatable = Resources {
        cpu_millis: seed.cpu_cores * 1000,
        memory_bytes: seed.memory_gib << 30,
        pods: seed.pods,
        ..Resources::default()
    };
    let gpus = (seed.gpus > 0).then(|| {
        let gpus = NodeGpus::new(
            vec![
                GpuDevice {
                    class: "L4".into(),
                    memory_bytes: 24 << 30
                };
                seed.gpus
            ],
            GpuSharing::TimeSlicing {
                replicas: seed.replicas,
            },
        );
        allocatable.set(GPU_RESOURCE, gpus.advertised_units());
        gpus
    });
    let taints = seed
        .taint
        .map(|t| {
            vec![Taint {
                key: TAINTS[t].0.into(),
                value: String::new(),
                effect: TAINTS[t].1,
            }]
        })
        .unwrap_or_default();
    Node {
        name,
        labels,
        taints,
        capacity: allocatable.clone(),
        allocatable,
        unschedulable: seed.cordoned,
        gpus,
    }
}

#[derive(Clone, Debug)]
struct PodSeed {
    cpu_millis: i64,
    memory_mib: i64,
    gpus: i64,
    app: u8,
    priority: i32,
    tolerate: Vec<bool>,
    fast_only: bool,
    anti_affinity: Option<bool>,
}

fn pod_seed() -> impl Strategy<Value = PodSeed> {
    (
        0i64..40,
        0i64..64,
        proptest::bool::weighted(0.2),
        0u8..4,
        0i32..3,
        proptest::collection::vec(any::<bool>(), 3),
        proptest::bool::weighted(0.2),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(cpu, mem, gpu, app, priority, tolerate, fast_only, anti_affinity)| PodSeed {
                cpu_millis: cpu * 100,
                memory_mib: mem * 128,
                gpus: i64::from(gpu),
                app,
                priority,
                tolerate,
                fast_only,
                anti_affinity,
            },
        )
}

fn build_pod(idx: usize, seed: &PodSeed) -> PodSpec {
    let mut requests = ResourceList::new();
    if seed.cpu_millis > 0 {
        requests.insert("cpu".into(), seed.cpu_millis);
    }
    if seed.memory_mib > 0 {
        requests.insert("memory".into(), seed.memory_mib * MIB);
    }
    if seed.gpus > 0 {
        requests.insert(GPU_RESOURCE.into(), seed.gpus);
    }
    let app = format!("app-{}", seed.app);
    let tolerations = TAINTS
        .iter()
        .zip(&seed.tolerate)
        .filter(|(_, on)| **on)
        .map(|((key, _), _)| Toleration {
            key: (*key).into(),
            operator: TolerationOperator::Exists,
            value: String::new(),
            effect: None,
        })
        .collect();
    let mut spec = PodSpec {
        name: format!("pod-{idx:04}"),
        namespace: "default".into(),
        labels: [("app".to_string(), app.clone())].into(),
        priority: seed.priority,
        containers: vec![Container {
            name: "c0".into(),
            requests,
            ..Container::default()
        }],
        tolerations,
        ..PodSpec::default()
    };
    if seed.fast_only {
        spec.node_selector.insert("tier".into(), "fast".into());
    }
    if let Some(by_zone) = seed.anti_affinity {
        spec.pod_anti_affinity_required.push(PodAffinityTerm {
            selector: LabelSelector::from_labels([("app".to_string(), app)].into()),
            namespaces: Vec::new(),
            topology_key: if by_zone { ZONE_LABEL } else { HOSTNAME_LABEL }.into(),
        });
    }
    spec
}

/// An independent statement of the filters, summing the node's pods from scratch.
fn reference_fits(cluster: &ClusterState, pod: &PodSpec, node_idx: usize) -> Result<(), String> {
    let node = &cluster.nodes()[node_idx];
    if node.unschedulable {
        return Err("cordoned".into());
    }
    for taint in &node.taints {
        let filters = matches!(
            taint.effect,
            TaintEffect::NoSchedule | TaintEffect::NoExecute
        );
        if filters && !pod.tolerations.iter().any(|t| t.tolerates(taint)) {
            return Err(format!("taint {}", taint.key));
        }
    }
    if pod
        .node_selector
        .iter()
        .any(|(k, v)| node.labels.get(k) != Some(v))
    {
        return Err("selector".into());
    }
    let on_node: Vec<&BoundPod> = cluster.pods().filter(|p| p.node == node_idx).collect();
    if on_node.len() as i64 + 1 > node.allocatable.pods {
        return Err("pods".into());
    }
    let request = pod.requests();
    for name in ["cpu", "memory", GPU_RESOURCE] {
        let used: i64 = on_node.iter().map(|p| p.spec.requests().get(name)).sum();
        let wanted = request.get(name);
        if wanted > 0 && wanted > node.allocatable.get(name) - used {
            return Err(format!("insufficient {name}"));
        }
    }
    for term in &pod.pod_anti_affinity_required {
        let Some(value) = node.labels.get(&term.topology_key) else {
            continue;
        };
        for other in cluster.pods() {
            let other_node = &cluster.nodes()[other.node];
            if other_node.labels.get(&term.topology_key) == Some(value)
                && term.matches_pod(&pod.namespace, &other.spec)
            {
                return Err(format!("anti-affinity with {}", other.spec.name));
            }
        }
    }
    for other in cluster.pods() {
        for term in &other.spec.pod_anti_affinity_required {
            let other_value = cluster.nodes()[other.node].labels.get(&term.topology_key);
            if other_value.is_some()
                && other_value == node.labels.get(&term.topology_key)
                && term.matches_pod(&other.spec.namespace, pod)
            {
                return Err(format!("existing anti-affinity of {}", other.spec.name));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_chosen_node_always_passes_every_filter(
        nodes in proptest::collection::vec(node_seed(), 1..8),
        existing in proptest::collection::vec((pod_seed(), 0usize..8), 0..16),
        incoming in pod_seed(),
    ) {
        // Goal: the scheduler's choice satisfies an independent restatement of the filters
        // (resources, taints, selectors, anti-affinity both ways), and feasibility agrees with
        // it on every node. Method: random clusters with pods bound unchecked, one random pod.
        let nodes: Vec<Node> = nodes.iter().enumerate().map(|(i, s)| build_node(i, s)).collect();
        let n_nodes = nodes.len();
        let mut cluster = ClusterState::new(nodes).expect("unique names");
        for (idx, (seed, node)) in existing.iter().enumerate() {
            let mut spec = build_pod(idx, seed);
            // GPUs of bound pods must exist on the device level; drop them where they cannot.
            spec.containers[0].requests.remove(GPU_RESOURCE);
            let node_name = cluster.nodes()[node % n_nodes].name.clone();
            cluster.bind(spec, &node_name, Some(-(idx as i64))).expect("node exists");
        }
        let pod = build_pod(999, &incoming);
        let placement = schedule(&cluster, &pod, &SchedulerConfig::default());
        for idx in 0..n_nodes {
            let reference = reference_fits(&cluster, &pod, idx);
            prop_assert_eq!(placement.verdicts[idx].is_none(), reference.is_ok(), "node {} reference {:?} verdict {:?}", idx, reference, placement.verdicts[idx]);
        }
        if let Some(chosen) = placement.selected {
            prop_assert!(reference_fits(&cluster, &pod, chosen).is_ok());
        }
    }

    #[test]
    fn preemption_victims_are_lower_priority_sufficient_and_each_necessary(
        nodes in proptest::collection::vec(node_seed(), 1..6),
        existing in proptest::collection::vec((pod_seed(), 0usize..6), 1..24),
        incoming in pod_seed(),
    ) {
        // Goal: a nomination is sound and minimal: victims have lower priority, the pod fits
        // the nominated node once they are gone, and putting any one victim back makes it
        // not fit again. Method: random clusters (pods bound unchecked, so often full) and a
        // high-priority pod; check with the independent reference filters.
        let nodes: Vec<Node> = nodes.iter().enumerate().map(|(i, s)| build_node(i, s)).collect();
        let n_nodes = nodes.len();
        let mut cluster = ClusterState::new(nodes).expect("unique names");
        for (idx, (seed, node)) in existing.iter().enumerate() {
            let mut spec = build_pod(idx, seed);
            spec.containers[0].requests.remove(GPU_RESOURCE);
            let node_name = cluster.nodes()[node % n_nodes].name.clone();
            cluster.bind(spec, &node_name, Some(-(idx as i64))).expect("node exists");
        }
        let mut pod = build_pod(999, &incoming);
        pod.priority = 2;
        let placement = schedule(&cluster, &pod, &SchedulerConfig::default());
        let Some(preemption) = placement.preemption else { return Ok(()) };
        let node = preemption.nominated_node;
        let mut freed = cluster.clone();
        let mut victims = Vec::new();
        for id in &preemption.victims {
            let victim = freed.remove(*id).expect("victims are bound");
            prop_assert!(victim.spec.priority < pod.priority);
            prop_assert_eq!(victim.node, node);
            victims.push(victim);
        }
        prop_assert!(reference_fits(&freed, &pod, node).is_ok(), "{:?}", reference_fits(&freed, &pod, node));
        let node_name = freed.nodes()[node].name.clone();
        for victim in victims {
            let mut again = freed.clone();
            again.bind(victim.spec.clone(), &node_name, victim.start_time_secs).expect("node exists");
            prop_assert!(reference_fits(&again, &pod, node).is_err(), "victim {} was not needed", victim.spec.name);
        }
    }

    #[test]
    fn binding_repeatedly_never_exceeds_allocatable(
        nodes in proptest::collection::vec(node_seed(), 1..6),
        pods in proptest::collection::vec(pod_seed(), 1..40),
    ) {
        // Goal: scheduling then binding, pod after pod, never overcommits cpu, memory, GPUs,
        // pod slots or a GPU device. Method: an empty random cluster and a random pod stream.
        let nodes: Vec<Node> = nodes.iter().enumerate().map(|(i, s)| build_node(i, s)).collect();
        let mut cluster = ClusterState::new(nodes).expect("unique names");
        for (idx, seed) in pods.iter().enumerate() {
            let pod = build_pod(idx, seed);
            let placement = schedule(&cluster, &pod, &SchedulerConfig::default());
            if let Some(chosen) = placement.selected {
                let name = cluster.nodes()[chosen].name.clone();
                cluster.bind(pod, &name, Some(idx as i64)).expect("a feasible node has the GPU units");
            }
        }
        for (idx, node) in cluster.nodes().iter().enumerate() {
            let on_node: Vec<&BoundPod> = cluster.pods().filter(|p| p.node == idx).collect();
            prop_assert!(on_node.len() as i64 <= node.allocatable.pods);
            for name in ["cpu", "memory", GPU_RESOURCE] {
                let used: i64 = on_node.iter().map(|p| p.spec.requests().get(name)).sum();
                prop_assert!(used <= node.allocatable.get(name), "{} on {}: {} > {}", name, node.name, used, node.allocatable.get(name));
            }
            if let Some(gpus) = &node.gpus {
                for device in gpus.occupancy() {
                    prop_assert!(device.units_used <= device.units_total);
                }
            }
        }
    }

    #[test]
    fn quota_usage_never_exceeds_hard(
        hard_cpu in 0i64..8000,
        hard_memory_mib in 0i64..8192,
        hard_pods in 0i64..20,
        hard_gpus in 0i64..4,
        pods in proptest::collection::vec(pod_seed(), 1..40),
    ) {
        // Goal: admission keeps every quota's used within hard, whatever the pod stream.
        // Method: one quota tracking cpu, memory, pods and GPUs; admit pods in turn, keeping
        // the charged quota on success.
        let hard: ResourceList = [
            ("requests.cpu".to_string(), hard_cpu),
            ("requests.memory".to_string(), hard_memory_mib * MIB),
            ("pods".to_string(), hard_pods),
            (format!("requests.{GPU_RESOURCE}"), hard_gpus),
        ].into();
        let used: ResourceList = hard.keys().map(|k| (k.clone(), 0)).collect();
        let mut quotas = vec![ResourceQuota { name: "q".into(), namespace: "default".into(), hard: Some(hard.clone()), used, scopes: Vec::new() }];
        for (idx, seed) in pods.iter().enumerate() {
            let pod = build_pod(idx, seed);
            if let Ok(updated) = admit(&quotas, &QuotaObject::Pod(&pod)) {
                quotas = updated;
            }
            for (name, limit) in &hard {
                prop_assert!(quotas[0].used[name] <= *limit, "{} {} > {}", name, quotas[0].used[name], limit);
            }
        }
    }
}
