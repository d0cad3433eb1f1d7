//! The request path the `request_path` bench times and `examples/request_path_memory.rs`
//! measures the memory of: 10 pods behind a VirtualService, a balancer and FIFO pod queues
//! (see the bench's header). `run` and `run_full_mesh` return (requests recorded, p99 in us).

#![allow(dead_code)]

use hdrhistogram::Histogram;
use rand::RngExt;
use twin::engine::{Engine, RngTree, SimDuration, SimRng, SimTime};
use twin::mesh::HostId;
use twin::mesh::istio::{
    IstioConnectionPool, IstioHttpSettings, IstioOutlierDetection, IstioTcpSettings,
    IstioTrafficPolicy, IstioVersion, cluster_policy, default_retry_policy,
};
use twin::mesh::lb::{HostSet, LoadBalancer, Pick};
use twin::mesh::outlier::AttemptResult;
use twin::mesh::policy::LbPolicy;
use twin::mesh::pool::ConnId;
use twin::mesh::route::{
    Destination, HttpRequest, HttpRouteSpec, RouteDecision, RouteMatchSpec, StringMatchSpec,
    VirtualService,
};
use twin::mesh::upstream::{AttemptId, Upstream, UpstreamEvent};
use twin::workload::{
    Admission, ArrivalProcess, Arrivals, PodQueue, ServiceTime, ServiceTimeSampler,
};

const N_PODS: usize = 10;
/// Pods 0..8 are subset v1, 8..10 subset v2.
const V1_PODS: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Event {
    Arrival,
    /// A request done on `pod`; it arrived at `arrived`.
    Completion {
        pod: u8,
        arrived: SimTime,
    },
}

fn virtual_service() -> VirtualService {
    let destination = |subset: &str, weight| Destination {
        host: "checkout".into(),
        subset: Some(subset.into()),
        port: None,
        weight,
    };
    VirtualService::new(&[
        HttpRouteSpec {
            name: Some("canary-header".into()),
            matches: vec![RouteMatchSpec {
                headers: vec![("x-canary".into(), StringMatchSpec::Exact("yes".into()))],
                ..RouteMatchSpec::default()
            }],
            route: vec![destination("v2", 0)],
        },
        HttpRouteSpec {
            name: Some("split".into()),
            matches: vec![],
            route: vec![destination("v1", 90), destination("v2", 10)],
        },
    ])
    .expect("valid routes")
}

/// What both paths share: the seeded streams, the arrivals, the service time and the routes.
struct Load {
    tree: RngTree,
    arrivals: Arrivals,
    service: ServiceTimeSampler,
    service_rng: SimRng,
    route_rng: SimRng,
    vs: VirtualService,
    request: HttpRequest,
}

impl Load {
    fn new(seed: u64) -> Load {
        let tree = RngTree::new(seed);
        // 10 pods x 4 slots / 20 ms mean service = 2000 req/s of capacity; load it to 70 %.
        let arrivals = Arrivals::new(
            ArrivalProcess::Poisson {
                rate_per_sec: 1400.0,
            },
            tree.stream("workload/arrivals"),
            SimTime::ZERO,
        )
        .expect("valid process");
        let service = ServiceTime::LogNormal {
            p50: SimDuration::from_millis(15),
            p99: SimDuration::from_millis(80),
        }
        .sampler()
        .expect("valid distribution");
        Load {
            service_rng: tree.stream("workload/service"),
            route_rng: tree.stream("mesh/route"),
            tree,
            arrivals,
            service,
            vs: virtual_service(),
            request: HttpRequest::new("GET", "/cart"),
        }
    }
}

/// Runs `n_requests` through the path and returns the histogram's count and p99 [us].
pub fn run(n_requests: u64, seed: u64) -> (u64, u64) {
    let Load {
        tree,
        mut arrivals,
        service,
        mut service_rng,
        mut route_rng,
        vs,
        request,
    } = Load::new(seed);
    let subsets = [
        HostSet::uniform(V1_PODS as u32),
        HostSet::uniform((N_PODS - V1_PODS) as u32),
    ];
    let mut balancers = [
        LoadBalancer::new(
            LbPolicy::LEAST_REQUEST_DEFAULT,
            50.0,
            tree.stream("mesh/lb/v1"),
        ),
        LoadBalancer::new(
            LbPolicy::LEAST_REQUEST_DEFAULT,
            50.0,
            tree.stream("mesh/lb/v2"),
        ),
    ];
    let mut active = [vec![0u32; V1_PODS], vec![0u32; N_PODS - V1_PODS]];
    // Each request carries its arrival time through the queues: nothing per request is kept.
    let mut pods: Vec<PodQueue<SimTime>> = (0..N_PODS)
        .map(|_| PodQueue::new(4).expect("a positive limit"))
        .collect();
    let mut generated = 0u64;
    let mut latency_us =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let mut engine: Engine<Event> = Engine::new();
    let first = arrivals.next_arrival().expect("a positive rate");
    engine.scheduler().at(first, Event::Arrival);
    engine.run_until(SimTime::MAX, |scheduler, event| {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                generated += 1;
                if generated < n_requests
                    && let Some(next) = arrivals.next_arrival()
                {
                    scheduler.at(next, Event::Arrival);
                }
                let subset = usize::from(routes_to_v2(&vs, &request, &mut route_rng));
                let Pick::Host { host, .. } =
                    balancers[subset].pick(&subsets[subset], &active[subset])
                else {
                    unreachable!("every pod is healthy");
                };
                active[subset][host.index()] += 1;
                let pod = if subset == 0 {
                    host.index()
                } else {
                    V1_PODS + host.index()
                };
                if let Admission::Started(started) = pods[pod].arrive(now, now) {
                    let completion = Event::Completion {
                        pod: pod as u8,
                        arrived: started.item,
                    };
                    scheduler.after(service.sample(&mut service_rng), completion);
                }
            }
            Event::Completion { pod, arrived } => {
                let pod = usize::from(pod);
                let (subset, host) = if pod < V1_PODS {
                    (0, pod)
                } else {
                    (1, pod - V1_PODS)
                };
                active[subset][host] -= 1;
                latency_us.saturating_record(now.since(arrived).as_nanos() / 1000 + 1);
                if let Some(next) = pods[pod].complete(now) {
                    let completion = Event::Completion {
                        pod: pod as u8,
                        arrived: next.item,
                    };
                    scheduler.after(service.sample(&mut service_rng), completion);
                }
            }
        }
    });
    (latency_us.len(), latency_us.value_at_quantile(0.99))
}

/// Routes one request by the 90/10 split: whether it goes to subset v2.
fn routes_to_v2(vs: &VirtualService, request: &HttpRequest, rng: &mut SimRng) -> bool {
    let RouteDecision::Forward { destination, .. } = vs.route(request, rng.random::<u64>()) else {
        unreachable!("the split rule matches everything");
    };
    destination.subset.as_deref() == Some("v2")
}

/// The plan's DestinationRule as istiod translates it.
fn plan_policy() -> twin::mesh::policy::ClusterPolicy {
    let traffic_policy = IstioTrafficPolicy {
        connection_pool: Some(IstioConnectionPool {
            tcp: Some(IstioTcpSettings {
                max_connections: Some(100),
                ..Default::default()
            }),
            http: Some(IstioHttpSettings {
                http1_max_pending_requests: Some(50),
                http2_max_requests: Some(100),
                max_requests_per_connection: Some(2),
                ..Default::default()
            }),
        }),
        load_balancer: None,
        outlier_detection: Some(IstioOutlierDetection {
            consecutive_errors: Some(5),
            interval: Some(SimDuration::from_secs(30)),
            base_ejection_time: Some(SimDuration::from_secs(30)),
            max_ejection_percent: Some(50),
            min_health_percent: Some(30),
            ..Default::default()
        }),
    };
    cluster_policy(&traffic_policy, IstioVersion::CURRENT).expect("the plan's policy maps")
}

#[derive(Clone, Copy, Debug)]
struct InPod {
    subset: u8,
    attempt: AttemptId,
    host: HostId,
    conn: ConnId,
}

#[derive(Clone, Copy, Debug)]
enum MeshEvent {
    Arrival,
    Connected { subset: u8, conn: ConnId },
    Done { pod: u8, in_pod: InPod },
    Retry { subset: u8, attempt: AttemptId },
    Sweep { subset: u8 },
    Merge { subset: u8 },
}

/// The same load through the full client-side model; returns the recorded count and p99 [us].
pub fn run_full_mesh(n_requests: u64, seed: u64) -> (u64, u64) {
    let Load {
        tree,
        mut arrivals,
        service,
        mut service_rng,
        mut route_rng,
        vs,
        request,
    } = Load::new(seed);
    let policy = plan_policy();
    let mut upstreams: [Upstream<SimTime>; 2] =
        [V1_PODS as u32, (N_PODS - V1_PODS) as u32].map(|n_hosts| {
            Upstream::new(
                &policy,
                n_hosts,
                &tree.child(&format!("mesh/cluster-{n_hosts}")),
            )
            .expect("valid policy")
            .with_retry_policy(default_retry_policy(IstioVersion::CURRENT))
        });
    let mut pods: Vec<PodQueue<InPod>> = (0..N_PODS)
        .map(|_| PodQueue::new(4).expect("a positive limit"))
        .collect();
    let mut latency_us =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let mut engine: Engine<MeshEvent> = Engine::new();
    let first = arrivals.next_arrival().expect("a positive rate");
    engine.scheduler().at(first, MeshEvent::Arrival);
    for subset in 0..2u8 {
        let interval = upstreams[usize::from(subset)]
            .sweep_interval()
            .expect("the plan has outlier detection");
        engine
            .scheduler()
            .after(interval, MeshEvent::Sweep { subset });
    }
    let mut out: Vec<UpstreamEvent<SimTime>> = Vec::new();
    let mut generated = 0u64;
    engine.run_until(SimTime::MAX, |scheduler, event| {
        let now = scheduler.now();
        let subset = match event {
            MeshEvent::Arrival => {
                generated += 1;
                if generated < n_requests
                    && let Some(next) = arrivals.next_arrival()
                {
                    scheduler.at(next, MeshEvent::Arrival);
                }
                let subset = u8::from(routes_to_v2(&vs, &request, &mut route_rng));
                upstreams[usize::from(subset)].send(now, &mut out);
                subset
            }
            MeshEvent::Connected { subset, conn } => {
                upstreams[usize::from(subset)].connected(conn, &mut out);
                subset
            }
            MeshEvent::Done { pod, in_pod } => {
                let pod = usize::from(pod);
                if let Some(next) = pods[pod].complete(now) {
                    let done = MeshEvent::Done {
                        pod: pod as u8,
                        in_pod: next.item,
                    };
                    scheduler.after(service.sample(&mut service_rng), done);
                }
                let InPod {
                    subset,
                    attempt,
                    host,
                    conn,
                } = in_pod;
                upstreams[usize::from(subset)].finished(
                    now,
                    attempt,
                    host,
                    conn,
                    AttemptResult::Status(200),
                    &mut out,
                );
                subset
            }
            MeshEvent::Retry { subset, attempt } => {
                upstreams[usize::from(subset)].retry(attempt, &mut out);
                subset
            }
            MeshEvent::Sweep { subset } => {
                let upstream = &mut upstreams[usize::from(subset)];
                upstream.sweep(now, &mut out);
                // Stop the timers once the load has passed, so the run ends.
                if generated < n_requests {
                    scheduler.after(
                        upstream.sweep_interval().expect("outlier detection"),
                        MeshEvent::Sweep { subset },
                    );
                }
                subset
            }
            MeshEvent::Merge { subset } => {
                upstreams[usize::from(subset)].merge_timer(now);
                subset
            }
        };
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                } => {
                    let pod = if subset == 0 {
                        host.index()
                    } else {
                        V1_PODS + host.index()
                    };
                    let in_pod = InPod {
                        subset,
                        attempt,
                        host,
                        conn,
                    };
                    if let Admission::Started(started) = pods[pod].arrive(now, in_pod) {
                        let done = MeshEvent::Done {
                            pod: pod as u8,
                            in_pod: started.item,
                        };
                        scheduler.after(service.sample(&mut service_rng), done);
                    }
                }
                UpstreamEvent::Completed { request, .. } => {
                    latency_us.saturating_record(now.since(request).as_nanos() / 1000 + 1);
                }
                UpstreamEvent::Rejected { .. } => {
                    unreachable!("the plan's limits are far above this load")
                }
                UpstreamEvent::RetryAt { attempt, at } => {
                    scheduler.at(at, MeshEvent::Retry { subset, attempt })
                }
                UpstreamEvent::Connect { conn } => {
                    scheduler.after(SimDuration::ZERO, MeshEvent::Connected { subset, conn })
                }
                UpstreamEvent::DeliverAt(at) => scheduler.at(at, MeshEvent::Merge { subset }),
            }
        }
    });
    (latency_us.len(), latency_us.value_at_quantile(0.99))
}
