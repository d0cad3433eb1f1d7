//! `hpa::recommend` for one realistic reconcile: 10 pods, 3 metrics (CPU utilization, memory
//! utilization, a Pods metric), `behavior` with both directions set and a carried memory.
//! Target: at most 2 µs per call.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use twin::autoscale::hpa::{
    Behavior, ControllerConfig, ControllerMemory, HpaCase, HpaSpec, KubernetesVersion, MetricSpec,
    Pod, PodPhase, PolicyKind, Recommendation, ResourceTarget, ScaleEvent, ScalingPolicy,
    ScalingRules, recommend,
};
use twin::engine::SimDuration;

fn coordinator_like_case() -> HpaCase {
    let version = KubernetesVersion::CURRENT;
    let pods = (0..10)
        .map(|idx| Pod {
            name: format!("agno-coordinator-{idx:04}"),
            phase: PodPhase::Running,
            ready: Some(true),
            deleted: false,
            started_ago: Some(SimDuration::from_secs(900)),
            ready_transition_ago: Some(SimDuration::from_secs(880)),
            metric_age: SimDuration::ZERO,
            requests: BTreeMap::from([
                ("cpu".to_string(), 500),
                ("memory".to_string(), 1_073_741_824_000),
            ]),
            usage: BTreeMap::from([
                ("cpu".to_string(), 400 + idx * 7),
                ("memory".to_string(), 800_000_000_000 + idx * 1000),
                ("http_requests_per_second".to_string(), 120_000 + idx * 500),
            ]),
            containers: Vec::new(),
        })
        .collect();
    let rules = |window: i32, value: i32| ScalingRules {
        stabilization_window_seconds: Some(window),
        select_policy: None,
        policies: Some(vec![ScalingPolicy {
            kind: PolicyKind::Percent,
            value,
            period_seconds: 60,
        }]),
        tolerance: None,
    };
    HpaCase {
        name: "bench/coordinator".into(),
        version,
        controller: ControllerConfig::defaults_for(version),
        spec: HpaSpec {
            min_replicas: 3,
            max_replicas: 20,
            metrics: vec![
                MetricSpec::Resource {
                    resource: "cpu".into(),
                    container: None,
                    target: ResourceTarget::Utilization(70),
                },
                MetricSpec::Resource {
                    resource: "memory".into(),
                    container: None,
                    target: ResourceTarget::Utilization(80),
                },
                MetricSpec::Pods {
                    name: "http_requests_per_second".into(),
                    target_average_milli: 100_000,
                },
            ],
            behavior: Some(Behavior {
                scale_up: Some(rules(60, 100)),
                scale_down: Some(rules(300, 10)),
            }),
        },
        spec_replicas: 10,
        status_replicas: 10,
        metric_window: SimDuration::from_secs(60),
        metric_desired_replicas: None,
        pods,
        extra_samples: Vec::new(),
        memory: ControllerMemory {
            recommendations: Some(
                (0..20)
                    .map(|k| Recommendation {
                        age: SimDuration::from_secs(15 * k),
                        replicas: 10,
                    })
                    .collect(),
            ),
            scale_up_events: vec![ScaleEvent {
                age: SimDuration::from_secs(45),
                delta: 2,
                outdated: false,
            }],
            scale_down_events: Vec::new(),
        },
    }
}

fn bench_recommend(c: &mut Criterion) {
    let case = coordinator_like_case();
    c.bench_function("hpa_recommend_10_pods_3_metrics_behavior", |b| {
        b.iter(|| recommend(black_box(&case)))
    });
}

criterion_group!(benches, bench_recommend);
criterion_main!(benches);
