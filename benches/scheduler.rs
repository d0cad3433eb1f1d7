//! Scheduling decisions per second: 10,000 pods onto 1,000 nodes of mixed sizes, a third
//! with required anti-affinity (by hostname or zone), a tenth asking for GPUs. Each pod is
//! scheduled with the full default profile and bound to the chosen node, so the cluster
//! fills up as it goes. Target: 5,000 pods/s or better (release build).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt as _;
use twin::cluster::model::{
    Container, GPU_RESOURCE, HOSTNAME_LABEL, LabelSelector, Node, PodAffinityTerm, PodSpec,
    ResourceList, Resources, Taint, TaintEffect, Toleration, TolerationOperator, ZONE_LABEL,
};
use twin::cluster::{ClusterState, GpuDevice, GpuSharing, NodeGpus, SchedulerConfig, schedule};
use twin::engine::RngTree;

const N_NODES: usize = 1_000;
const N_PODS: usize = 10_000;
const MIB: i64 = 1024 * 1024;

fn nodes(tree: &RngTree) -> Vec<Node> {
    let mut rng = tree.stream("bench/scheduler/nodes");
    (0..N_NODES)
        .map(|idx| {
            let name = format!("node-{idx:04}");
            let mut labels = BTreeMap::new();
            labels.insert(HOSTNAME_LABEL.to_string(), name.clone());
            labels.insert(ZONE_LABEL.to_string(), format!("zone-{}", idx % 3));
            let (cores, memory_gib) =
                [(8, 32), (16, 64), (32, 128), (64, 256)][rng.random_range(0..4)];
            let mut allocatable = Resources {
                cpu_millis: cores * 1000,
                memory_bytes: memory_gib << 30,
                pods: 110,
                ..Resources::default()
            };
            let mut taints = Vec::new();
            // Every tenth node is a GPU node: 4 GPUs time-sliced in 2, tainted for GPU pods.
            let gpus = (idx % 10 == 0).then(|| {
                let gpus = NodeGpus::new(
                    vec![
                        GpuDevice {
                            class: "A100".into(),
                            memory_bytes: 80 << 30
                        };
                        4
                    ],
                    GpuSharing::TimeSlicing { replicas: 2 },
                );
                allocatable.set(GPU_RESOURCE, gpus.advertised_units());
                taints.push(Taint {
                    key: GPU_RESOURCE.into(),
                    value: String::new(),
                    effect: TaintEffect::NoSchedule,
                });
                gpus
            });
            Node {
                name,
                labels,
                taints,
                capacity: allocatable.clone(),
                allocatable,
                unschedulable: false,
                gpus,
            }
        })
        .collect()
}

fn pods(tree: &RngTree) -> Vec<PodSpec> {
    let mut rng = tree.stream("bench/scheduler/pods");
    (0..N_PODS)
        .map(|idx| {
            let app = format!("app-{}", rng.random_range(0..400));
            let mut requests = ResourceList::new();
            requests.insert("cpu".into(), rng.random_range(1..20) * 100);
            requests.insert("memory".into(), rng.random_range(1..32) * 128 * MIB);
            let mut tolerations = Vec::new();
            if idx % 10 == 0 {
                requests.insert(GPU_RESOURCE.into(), 1);
                tolerations.push(Toleration {
                    key: GPU_RESOURCE.into(),
                    operator: TolerationOperator::Exists,
                    value: String::new(),
                    effect: Some(TaintEffect::NoSchedule),
                });
            }
            let mut spec = PodSpec {
                name: format!("pod-{idx:05}"),
                namespace: "default".into(),
                labels: [("app".to_string(), app.clone())].into(),
                containers: vec![Container {
                    name: "c0".into(),
                    requests,
                    ..Container::default()
                }],
                tolerations,
                ..PodSpec::default()
            };
            if idx % 3 == 0 {
                let topology_key = if idx % 2 == 0 {
                    HOSTNAME_LABEL
                } else {
                    ZONE_LABEL
                };
                spec.pod_anti_affinity_required.push(PodAffinityTerm {
                    selector: LabelSelector::from_labels([("app".to_string(), app)].into()),
                    namespaces: Vec::new(),
                    topology_key: topology_key.into(),
                });
            }
            spec
        })
        .collect()
}

/// Schedules and binds every pod; returns how many found a node.
fn run(nodes: &[Node], pods: &[PodSpec]) -> usize {
    let mut cluster = ClusterState::new(nodes.to_vec()).expect("unique node names");
    let config = SchedulerConfig::default();
    let mut bound = 0;
    for (idx, pod) in pods.iter().enumerate() {
        let placement = schedule(&cluster, pod, &config);
        if let Some(chosen) = placement.selected {
            let name = cluster.nodes()[chosen].name.clone();
            cluster
                .bind(pod.clone(), &name, Some(idx as i64))
                .expect("the chosen node fits");
            bound += 1;
        }
    }
    bound
}

fn bench_scheduler(c: &mut Criterion) {
    let tree = RngTree::new(7);
    let (nodes, pods) = (nodes(&tree), pods(&tree));
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N_PODS as u64));
    group.bench_function("schedule_and_bind_10k_pods_on_1k_nodes", |b| {
        b.iter(|| black_box(run(&nodes, &pods)))
    });
    group.finish();
}

criterion_group!(benches, bench_scheduler);
criterion_main!(benches);
