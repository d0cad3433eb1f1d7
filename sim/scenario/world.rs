//! The World: every model wired to one engine. Requests arrive, Istio routes them, the client
//! proxy's cluster (balancer, pools, outlier detection) picks a pod, the pod queues and serves
//! them; the cluster runtime moves pods and nodes; the HPAs sync; Prometheus scrapes the
//! synthesized series and evaluates the real rule groups; faults strike at their instants.
//!
//! ```text
//! Arrival ─> VirtualService ─> cluster (service, subset) ─> Upstream ─> pod queue ─> Completion
//!                                                             ^  outlier, merge window
//! Cluster events (pods, probes, nodes) ─> endpoints reconcile ─┘
//! Scrape ─> store ─> RuleEval (alerts), HpaSync (replicas) ─> ClusterRuntime::scale
//! ```
//!
//! Modelling choices, stated here and in the report: one client proxy (the ingress gateway's
//! sidecar) holds every cluster's state; connections open in 1 ms; a request's status is drawn
//! at its completion from its pod's profile; CPU use is the profile's baseline plus CPU seconds
//! per request; a deleted pod leaves the endpoints at once and finishes the requests it holds
//! within its termination grace period, and what is left when it goes is cut (503 UC).
//! metrics-server (v0.7, `/metrics/resource`) scrapes every pod's cumulative CPU
//! counter and memory every `metrics_resolution` (15 s, the `--metric-resolution` of its published
//! manifests; the binary's own default is 60 s) and reports the CPU rate between its last two
//! scrapes, so the window is one resolution and a container needs two scrapes before it has a
//! sample; the kubelet's counters are read exact at the scrape instant (cAdvisor's housekeeping
//! lag is not modelled). The custom-metrics adapter (when assumed) reports each pod's request
//! rate over `adapter_rate_window` (1 m by default) from the counter values Prometheus scraped,
//! without `rate()`'s extrapolation; a pod Prometheus does not scrape, or a scrape gap, leaves
//! it without samples, as the adapter's query would.
//!
//! Invariants: every arrival ends in exactly one counted outcome (`outcomes` sums to
//! `arrivals`); virtual time only; every random draw comes from a named stream.

use std::collections::{BTreeMap, BTreeSet};

mod rollout;
pub use rollout::{Analysis, ReleaseModel, RolloutRuntime, RouteControl, Strategy};

use hdrhistogram::Histogram;
use rand::RngExt;

use crate::autoscale::controller::HpaController;
use crate::autoscale::hpa::{self, MetricSpec};
use crate::cluster::runtime::{AppBehaviour, ClusterEvent, ClusterRuntime, PodKey, PodStatus};
use crate::engine::{Engine, RngTree, Scheduler, SimDuration, SimRng, SimTime};
use crate::mesh::outlier::AttemptResult;
use crate::mesh::pool::ConnId;
use crate::mesh::route::{HttpRequest, VirtualService};
use crate::mesh::upstream::{AttemptId, Upstream, UpstreamEvent};
use crate::mesh::{HostId, ResponseFlag};
use crate::promql::rules::{EvalContext, Group, StoreStorage, Transition};
use crate::telemetry::store::Labels;
use crate::workload::calibration::GpuWork;
use crate::workload::{Admission, Arrivals, PodQueue, ServiceTimeSampler};

mod gpu;
mod kube_state;
use gpu::GpuSeat;

/// The Prometheus client's default histogram buckets [s].
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Time to open an upstream connection inside the cluster.
pub const CONNECT_TIME: SimDuration = SimDuration::from_millis(1);

/// One request in flight, as the client proxy's cluster holds it across its attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub arrived: SimTime,
    pub load: u16,
    /// Which of its stream's prebuilt requests it is (method, path, headers, principal).
    pub variant: u16,
}

/// One attempt on a pod: what the pod's queue holds. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodWork {
    /// Unique per attempt on a pod, to find it again at its completion.
    pub id: u64,
    pub cluster: u16,
    pub attempt: AttemptId,
    pub host: HostId,
    pub conn: ConnId,
    /// When it reached the pod (the application's own latency starts here).
    pub reached: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Cluster(ClusterEvent),
    Arrival { load: u16 },
    Completion { pod: PodKey, id: u64 },
    Connected { cluster: u16, conn: ConnId },
    MergeTimer { cluster: u16 },
    Retry { cluster: u16, attempt: AttemptId },
    OutlierSweep { cluster: u16 },
    Scrape,
    MetricsServerScrape,
    HpaSync { hpa: u16 },
    RuleEval { group: u16 },
    Fault { index: u16 },
    OomKill { pod: PodKey, generation: u32 },
    RolloutTick { rollout: u16 },
}

/// How one Deployment's pods serve requests.
#[derive(Clone, Debug)]
pub struct ServiceModel {
    pub service_time: ServiceTimeSampler,
    pub concurrency: u32,
    pub cpu_per_request_secs: f64,
    pub cpu_baseline_cores: f64,
    pub memory_baseline_bytes: f64,
    pub memory_per_in_flight_bytes: f64,
    pub error_rate: f64,
    pub error_status: u16,
    pub llm_cost_per_request: f64,
    pub agent_tasks_per_request: Vec<(String, f64)>,
    pub gpu_memory_baseline_bytes: f64,
    pub gpu_memory_per_in_flight_bytes: f64,
    /// Service time from the GPU calibration instead of `service_time` (see `world/gpu.rs`).
    pub gpu_work: Option<Box<GpuWork>>,
    pub extra_latency: SimDuration,
    pub leak_bytes_per_sec: f64,
}

/// The serving state of one pod.
#[derive(Debug)]
struct PodServe {
    queue: PodQueue<PodWork>,
    in_service: Vec<PodWork>,
    /// Its Deployment, and the ReplicaSet whose model it serves with.
    deployment: usize,
    model: usize,
    /// Container generation this state belongs to; a restart resets the counters.
    generation: u32,
    counters: PodCounters,
    /// Whether its series were written at the last scrape (for stale markers).
    scraped: bool,
    /// Its scrape target's `instance` label.
    instance: String,
    /// Its GPU class and current co-tenant slowdown, when its model is calibrated.
    gpu: Option<GpuSeat>,
    /// The AuthorizationPolicies its sidecar enforces (an index into `World::authz_sets`),
    /// `None` when none selects it.
    authz: Option<u16>,
}

/// The serving pods, by key. Keys are handed out in sequence and a run creates a few hundred
/// pods, so a slot per key ever used is small, and finding a pod on every request is an index
/// instead of a tree search. Iteration is in key order, as a `BTreeMap`'s would be.
#[derive(Debug, Default)]
struct PodTable {
    slots: Vec<Option<PodServe>>,
}

impl PodTable {
    #[inline]
    fn get(&self, key: &PodKey) -> Option<&PodServe> {
        self.slots.get(key.0 as usize)?.as_ref()
    }

    #[inline]
    fn get_mut(&mut self, key: &PodKey) -> Option<&mut PodServe> {
        self.slots.get_mut(key.0 as usize)?.as_mut()
    }

    fn contains_key(&self, key: &PodKey) -> bool {
        self.get(key).is_some()
    }

    fn insert(&mut self, key: PodKey, serve: PodServe) {
        let at = key.0 as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        self.slots[at] = Some(serve);
    }

    fn remove(&mut self, key: &PodKey) -> Option<PodServe> {
        self.slots.get_mut(key.0 as usize)?.take()
    }

    fn iter(&self) -> impl Iterator<Item = (PodKey, &PodServe)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(at, slot)| slot.as_ref().map(|serve| (PodKey(at as u32), serve)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (PodKey, &mut PodServe)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(at, slot)| slot.as_mut().map(|serve| (PodKey(at as u32), serve)))
    }

    fn keys(&self) -> impl Iterator<Item = PodKey> + '_ {
        self.iter().map(|(key, _)| key)
    }
}

impl std::ops::Index<&PodKey> for PodTable {
    type Output = PodServe;
    fn index(&self, key: &PodKey) -> &PodServe {
        self.get(key).expect("the pod is serving")
    }
}

/// A set of AuthorizationPolicies some pods' sidecars enforce together, and the verdicts it has
/// reached. A verdict depends on nothing but the policies and the request, and a load stream
/// sends a fixed list of prebuilt requests, so each (stream, request) is checked once.
#[derive(Debug)]
struct AuthzSet {
    /// Indices into `World::authz_policies`.
    members: Vec<usize>,
    policies: Vec<crate::mesh::authz::AuthorizationPolicy>,
    /// Per load stream, per request variant: `None` until checked, then whether it is refused.
    refused: Vec<Vec<Option<bool>>>,
}

#[derive(Clone, Debug, Default)]
struct PodCounters {
    requests_by_status: Tally<u16>,
    /// Requests per bucket of `DEFAULT_BUCKETS` (not cumulative: the scrape sums them up).
    buckets: [u64; 11],
    count: u64,
    sum_secs: f64,
    cost_dollars: f64,
    /// Agent tasks completed, in the order of the model's `agent_tasks_per_request`.
    tasks: Vec<f64>,
    cpu_secs: f64,
    /// Until when the baseline CPU is already in `cpu_secs`.
    baseline_accrued_at: Option<SimTime>,
    /// CPU seconds at the previous metrics-server scrape, and that scrape's time.
    cpu_mark: Option<(SimTime, f64)>,
    /// metrics-server's latest sample: its time, CPU [cores] and memory [bytes].
    resource_sample: Option<(SimTime, f64, f64)>,
    /// Request counts Prometheus scraped within the adapter's rate window.
    request_marks: Vec<(SimTime, u64)>,
}

/// One Envoy cluster of the client proxy: a (service, subset) pair and its endpoints.
pub struct MeshCluster {
    pub service: String,
    pub subset: Option<String>,
    /// Labels a pod must carry: the service selector plus the subset's labels.
    pub selector: BTreeMap<String, String>,
    upstream: Upstream<Request>,
    hosts: Vec<PodKey>,
    by_pod: BTreeMap<PodKey, HostId>,
    sweep_armed: bool,
    /// The most hosts the detector held ejected at once.
    pub most_ejected: usize,
}

/// The cluster of each destination of each rule of `vs`, by the destination's short host and
/// subset; `None` where the mesh has no such cluster.
pub fn route_table(
    vs: &VirtualService,
    clusters: &[(String, Option<String>, u16)],
) -> Vec<Vec<Option<u16>>> {
    vs.destinations()
        .map(|destinations| {
            destinations
                .iter()
                .map(|destination| {
                    let host = crate::mesh::lower::short_host(&destination.host);
                    clusters
                        .iter()
                        .find(|(service, subset, _)| {
                            service == host && *subset == destination.subset
                        })
                        .map(|(_, _, idx)| *idx)
                })
                .collect()
        })
        .collect()
}

/// Where one load stream's requests go.
pub enum Target {
    /// `clusters`: (service short name, subset, cluster index), searched without allocating.
    Routed {
        vs: VirtualService,
        clusters: Vec<(String, Option<String>, u16)>,
        /// The cluster of each rule's each destination ([`route_table`]), so that routing a
        /// request compares no names.
        table: Vec<Vec<Option<u16>>>,
        /// The VirtualService's name and its rules as written, for a rollout to reweigh.
        vs_name: String,
        specs: Vec<crate::mesh::route::HttpRouteSpec>,
    },
    Direct {
        cluster: u16,
    },
}

pub struct LoadStream {
    pub name: String,
    pub arrivals: Arrivals,
    pub until: SimTime,
    pub target: Target,
    /// The request with every combination of the optional headers, by bitmask.
    pub variants: Vec<HttpRequest>,
    pub header_shares: Vec<f64>,
    /// A request trace's base variant per arrival, in order (empty when it sets nothing per
    /// request), and the index of the next arrival's.
    pub trace_variants: Vec<u32>,
    pub trace_next: usize,
    pub rng: SimRng,
}

/// One HPA and the Deployment it scales.
pub struct HpaRuntime {
    pub controller: HpaController,
    pub deployment: usize,
    pub sync_period: SimDuration,
}

/// A scheduled fault, already resolved to model indices.
#[derive(Clone, Debug)]
pub enum FaultAction {
    PodKill {
        deployment: usize,
        index: usize,
    },
    NodeLoss {
        node: usize,
    },
    NodeDrain {
        node: usize,
    },
    GpuFault {
        node: usize,
        device: usize,
    },
    NewRevision {
        deployment: usize,
        labels: BTreeMap<String, String>,
        model: Box<ServiceModel>,
        behaviour: AppBehaviour,
    },
    Latency {
        deployment: usize,
        extra: SimDuration,
    },
    MemoryLeak {
        deployment: usize,
        bytes_per_sec: f64,
    },
    CostSurge {
        deployment: usize,
        factor: f64,
    },
    MetricsOutage {
        until: SimTime,
    },
    ScrapeGap {
        until: SimTime,
    },
    CrashLoop {
        deployment: usize,
        after: SimDuration,
    },
    RolloutUndo {
        deployment: usize,
    },
}

/// How one request ended, as the client saw it: the status, and Envoy's response flag when the
/// mesh answered for the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    pub status: u16,
    pub flag: Option<&'static str>,
}

/// Counts by key (requests by outcome, by status), in key order. A run sees a handful of
/// distinct keys and counts one per request, so a sorted vector searched from the front beats a
/// map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally<K = Outcome>(Vec<(K, u64)>);

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally(Vec::new())
    }
}

impl<K: Ord + Copy> Tally<K> {
    #[inline]
    pub fn add(&mut self, key: K) {
        if let Some((_, n)) = self.0.iter_mut().find(|(k, _)| *k == key) {
            *n += 1;
            return;
        }
        let at = self.0.partition_point(|(k, _)| *k < key);
        self.0.insert(at, (key, 1));
    }

    /// `(key, count)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u64)> {
        self.0.iter().map(|(k, n)| (k, n))
    }

    pub fn get(&self, key: &K) -> Option<&u64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    pub fn values(&self) -> impl Iterator<Item = &u64> {
        self.0.iter().map(|(_, n)| n)
    }
}

impl<'a, K> IntoIterator for &'a Tally<K> {
    type Item = (&'a K, &'a u64);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (K, u64)>, fn(&'a (K, u64)) -> (&'a K, &'a u64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, n)| (k, n))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flag {
            Some(flag) => write!(f, "{} {flag}", self.status),
            None => write!(f, "{}", self.status),
        }
    }
}

/// A line of the run's timeline.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TimelineEntry {
    pub at_secs: f64,
    pub kind: String,
    pub object: String,
    pub message: String,
}

/// A Deployment's pod counts from a moment on, kept whenever one of them changes (a step
/// series: each value holds until the Deployment's next sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSample {
    pub at: SimTime,
    /// Index into `World::deployment_names`.
    pub deployment: usize,
    /// `spec.replicas`.
    pub spec: i32,
    /// Pods with the Ready condition, not terminating.
    pub ready: u32,
    /// Pods bound to no node, not terminating.
    pub pending: u32,
}

/// One HPA decision, as the report keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HpaRecord {
    pub at_secs: f64,
    pub hpa: String,
    pub current: i32,
    pub desired: i32,
    pub proposals: Vec<Option<i32>>,
    pub limited_by: Option<String>,
    pub conditions: BTreeMap<String, String>,
    /// What the reconcile read: `scale.status.replicas`, and each pod as the API and the
    /// metrics pipeline reported it (phase, readiness, samples).
    #[serde(skip)]
    pub status_replicas: i32,
    #[serde(skip)]
    pub pods: Vec<hpa::Pod>,
    /// The whole decision (per-metric values, stabilized count, controller memory).
    #[serde(skip)]
    pub decision: hpa::Decision,
}

/// Request statistics of one Deployment (or of an outcome without a pod).
pub struct ServiceStats {
    pub latency_us: Histogram<u64>,
    pub by_status: Tally<u16>,
}

impl ServiceStats {
    fn new() -> Self {
        ServiceStats {
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds are valid"),
            by_status: Tally::default(),
        }
    }
}

pub struct World {
    pub cluster: ClusterRuntime,
    /// Per Deployment (cluster index): per ReplicaSet, its service model.
    pub models: Vec<Vec<ServiceModel>>,
    pub deployment_names: Vec<String>,
    pods: PodTable,
    pub clusters: Vec<MeshCluster>,
    pub loads: Vec<LoadStream>,
    pub hpas: Vec<HpaRuntime>,
    pub hpa_records: Vec<HpaRecord>,
    pub groups: Vec<Group>,
    pub storage: StoreStorage,
    pub eval_ctx: EvalContext,
    pub alert_transitions: Vec<Transition>,
    pub rule_errors: BTreeSet<String>,
    pub faults: Vec<(SimTime, FaultAction)>,
    pub rollouts: Vec<RolloutRuntime>,
    /// How many rollouts are in progress (requests count their 5xx against each).
    rollouts_active: usize,
    pub timeline: Vec<TimelineEntry>,
    pub scrape_interval: SimDuration,
    /// metrics-server's `--metric-resolution`: its scrape period and so its CPU window.
    pub metrics_resolution: SimDuration,
    /// The custom-metrics adapter's rate window.
    pub adapter_rate_window: SimDuration,
    pub scraped_pods: BTreeSet<usize>,
    pub job_from_app: bool,
    pub cluster_exporters: bool,
    pub metrics_adapter: bool,
    /// The mesh's AuthorizationPolicies, each with the pods it selects.
    pub authz_policies: Vec<crate::mesh::lower::ScopedAuthorizationPolicy>,
    /// Distinct sets of policies a pod's sidecar enforces.
    authz_sets: Vec<AuthzSet>,
    /// Requests a server sidecar refused with 403 (RBAC), per Deployment.
    pub authz_denied: Vec<u64>,
    /// Load streams whose first denial is already in the timeline.
    authz_noted: BTreeSet<u16>,
    /// Series ids of what the scrapes write, by a digest of their pairs (lookup only).
    series_by_digest: std::collections::HashMap<u128, crate::telemetry::store::SeriesId>, // lookup only
    metrics_down_until: SimTime,
    scrape_down_until: SimTime,
    /// Per Deployment, by outcome; index `deployment_names.len()` holds requests no pod answered.
    pub stats: Vec<ServiceStats>,
    /// Per load stream: status → count (the client's view).
    pub outcomes: Vec<Tally>,
    pub arrivals: u64,
    pub ended: u64,
    /// Most replicas each Deployment's spec asked for, and the longest Pending seen.
    pub most_replicas: Vec<i32>,
    pub longest_pending: SimDuration,
    /// Replicas, Ready and Pending pods per Deployment over time, in time order.
    pub replica_history: Vec<ReplicaSample>,
    next_request: u64,
    rng: SimRng,
    cluster_out: Vec<(SimTime, ClusterEvent)>,
    upstream_out: Vec<UpstreamEvent<Request>>,
}

fn secs(t: SimTime) -> f64 {
    t.as_secs_f64()
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cluster: ClusterRuntime,
        models: Vec<Vec<ServiceModel>>,
        clusters: Vec<MeshCluster>,
        loads: Vec<LoadStream>,
        hpas: Vec<HpaRuntime>,
        groups: Vec<Group>,
        storage: StoreStorage,
        eval_ctx: EvalContext,
        faults: Vec<(SimTime, FaultAction)>,
        scrape_interval: SimDuration,
        scraped_pods: BTreeSet<usize>,
        rng: &RngTree,
    ) -> World {
        let deployment_names: Vec<String> = cluster
            .deployments
            .iter()
            .map(|d| d.model.name.clone())
            .collect();
        let n = deployment_names.len();
        let n_loads = loads.len();
        World {
            cluster,
            models,
            stats: (0..=n).map(|_| ServiceStats::new()).collect(),
            most_replicas: vec![0; n],
            deployment_names,
            pods: PodTable::default(),
            clusters,
            loads,
            hpas,
            hpa_records: Vec::new(),
            groups,
            storage,
            eval_ctx,
            alert_transitions: Vec::new(),
            rule_errors: BTreeSet::new(),
            faults,
            rollouts: Vec::new(),
            rollouts_active: 0,
            timeline: Vec::new(),
            scrape_interval,
            metrics_resolution: SimDuration::from_secs(15),
            adapter_rate_window: SimDuration::from_secs(60),
            scraped_pods,
            job_from_app: false,
            cluster_exporters: false,
            metrics_adapter: false,
            metrics_down_until: SimTime::ZERO,
            scrape_down_until: SimTime::ZERO,
            outcomes: vec![Tally::default(); n_loads],
            authz_policies: Vec::new(),
            authz_sets: Vec::new(),
            authz_denied: vec![0; n],
            authz_noted: BTreeSet::new(),
            series_by_digest: std::collections::HashMap::new(), // lookup only
            arrivals: 0,
            ended: 0,
            longest_pending: SimDuration::ZERO,
            replica_history: Vec::new(),
            next_request: 0,
            rng: rng.stream("world/requests"),
            cluster_out: Vec::new(),
            upstream_out: Vec::new(),
        }
    }

    fn note(
        &mut self,
        at: SimTime,
        kind: &str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.timeline.push(TimelineEntry {
            at_secs: secs(at),
            kind: kind.to_string(),
            object: object.into(),
            message: message.into(),
        });
    }

    /// Schedules the first events of every periodic process and load stream.
    pub fn start(&mut self, engine: &mut Engine<Event>) {
        let sched = engine.scheduler();
        for (idx, load) in self.loads.iter_mut().enumerate() {
            if let Some(t) = load.arrivals.next_arrival().filter(|t| *t < load.until) {
                sched.at(t, Event::Arrival { load: idx as u16 });
            }
        }
        sched.at(SimTime::ZERO + self.scrape_interval, Event::Scrape);
        sched.at(
            SimTime::ZERO + self.metrics_resolution,
            Event::MetricsServerScrape,
        );
        for (idx, hpa) in self.hpas.iter().enumerate() {
            sched.at(
                SimTime::ZERO + hpa.sync_period,
                Event::HpaSync { hpa: idx as u16 },
            );
        }
        for (idx, group) in self.groups.iter().enumerate() {
            // The first slot after start-up lies within two intervals of it.
            let horizon = 2 * group.interval_ms.max(1) * 1_000_000;
            if let Some(first) = group.evaluation_times_ns(0, horizon).first() {
                sched.at(
                    SimTime::from_nanos(*first as u64),
                    Event::RuleEval { group: idx as u16 },
                );
            }
        }
        for (idx, (at, _)) in self.faults.iter().enumerate() {
            sched.at(*at, Event::Fault { index: idx as u16 });
        }
        for (idx, r) in self.rollouts.iter().enumerate() {
            sched.at(
                r.at,
                Event::RolloutTick {
                    rollout: idx as u16,
                },
            );
        }
        let initial: Vec<_> = std::mem::take(&mut self.cluster_out);
        for (at, ev) in initial {
            sched.at(at, Event::Cluster(ev));
        }
        self.reconcile_endpoints(sched);
    }

    /// Timers the cluster runtime asked for, into the engine.
    pub fn take_cluster_timers(&mut self, timers: Vec<(SimTime, ClusterEvent)>) {
        self.cluster_out.extend(timers);
    }

    fn flush_cluster(&mut self, sched: &mut Scheduler<Event>) {
        for (at, ev) in self.cluster_out.drain(..) {
            sched.at(at.max(sched.now()), Event::Cluster(ev));
        }
        self.reconcile_endpoints(sched);
    }

    /// Handles one event.
    pub fn handle(&mut self, sched: &mut Scheduler<Event>, event: Event) {
        let now = sched.now();
        match event {
            Event::Arrival { load } => self.arrival(sched, load),
            Event::Completion { pod, id } => self.completion(sched, pod, id),
            Event::Connected { cluster, conn } => {
                let mut out = std::mem::take(&mut self.upstream_out);
                self.clusters[cluster as usize]
                    .upstream
                    .connected(conn, &mut out);
                self.apply_upstream(sched, cluster, &mut out, false);
                self.upstream_out = out;
            }
            Event::MergeTimer { cluster } => {
                self.clusters[cluster as usize].upstream.merge_timer(now)
            }
            Event::Retry { cluster, attempt } => {
                let mut out = std::mem::take(&mut self.upstream_out);
                self.clusters[cluster as usize]
                    .upstream
                    .retry(attempt, &mut out);
                self.apply_upstream(sched, cluster, &mut out, false);
                self.upstream_out = out;
            }
            Event::OutlierSweep { cluster } => {
                let mut out = std::mem::take(&mut self.upstream_out);
                let c = &mut self.clusters[cluster as usize];
                c.upstream.sweep(now, &mut out);
                if let Some(interval) = c.upstream.sweep_interval() {
                    sched.after(interval, Event::OutlierSweep { cluster });
                }
                self.apply_upstream(sched, cluster, &mut out, false);
                self.upstream_out = out;
            }
            Event::Cluster(ev) => {
                let mut out = std::mem::take(&mut self.cluster_out);
                self.cluster.handle(now, ev, &mut out);
                self.cluster_out = out;
                self.flush_cluster(sched);
            }
            Event::Scrape => {
                self.scrape(now);
                sched.after(self.scrape_interval, Event::Scrape);
            }
            Event::MetricsServerScrape => {
                self.metrics_server_scrape(now);
                sched.after(self.metrics_resolution, Event::MetricsServerScrape);
            }
            Event::HpaSync { hpa } => {
                self.hpa_sync(now, hpa as usize);
                sched.after(self.hpas[hpa as usize].sync_period, Event::HpaSync { hpa });
                self.flush_cluster(sched);
            }
            Event::RuleEval { group } => {
                let g = &mut self.groups[group as usize];
                let report = g.evaluate(now.as_millis(), &mut self.storage, &self.eval_ctx);
                for (rule, err) in report.errors {
                    self.rule_errors.insert(format!("{rule}: {err}"));
                }
                self.alert_transitions.extend(report.transitions);
                sched.after(
                    SimDuration::from_millis(self.groups[group as usize].interval_ms.max(1) as u64),
                    Event::RuleEval { group },
                );
            }
            Event::RolloutTick { rollout } => {
                self.rollout_tick(sched, rollout as usize);
                self.rollouts_active = self.rollouts.iter().filter(|r| r.in_progress()).count();
                self.flush_cluster(sched);
            }
            Event::Fault { index } => {
                let action = self.faults[index as usize].1.clone();
                self.fault(now, action);
                self.flush_cluster(sched);
            }
            Event::OomKill { pod, generation } => {
                let still =
                    self.cluster.pods.get(&pod).is_some_and(|p| {
                        p.generation == generation && p.status == PodStatus::Running
                    });
                if still {
                    let name = self.cluster.pods[&pod].name.clone();
                    self.note(
                        now,
                        "OOMKilled",
                        format!("pod/{name}"),
                        "container memory reached its limit",
                    );
                    let mut out = std::mem::take(&mut self.cluster_out);
                    self.cluster.handle(
                        now,
                        ClusterEvent::ContainerExited { pod, generation },
                        &mut out,
                    );
                    self.cluster_out = out;
                    self.flush_cluster(sched);
                }
            }
        }
    }

    fn outcome(&mut self, load: u16, key: Outcome) {
        self.outcomes[load as usize].add(key);
        self.ended += 1;
        if self.rollouts_active > 0 && key.status >= 500 {
            for r in self.rollouts.iter_mut().filter(|r| r.in_progress()) {
                r.server_errors += 1;
                r.mesh_errors += u64::from(key.flag.is_some());
            }
        }
    }

    fn arrival(&mut self, sched: &mut Scheduler<Event>, load: u16) {
        let now = sched.now();
        self.arrivals += 1;
        let stream = &mut self.loads[load as usize];
        if let Some(t) = stream.arrivals.next_arrival().filter(|t| *t < stream.until) {
            sched.at(t, Event::Arrival { load });
        }
        // Which of the stream's optional headers this request carries picks a prebuilt request;
        // a request trace's row picks the base the headers are added to.
        let mut variant = match stream.trace_variants.get(stream.trace_next) {
            Some(base) => (*base as usize) << stream.header_shares.len(),
            None => 0,
        };
        stream.trace_next += 1;
        for (bit, share) in stream.header_shares.iter().enumerate() {
            if stream.rng.random::<f64>() < *share {
                variant |= 1 << bit;
            }
        }
        let request = &stream.variants[variant];
        let cluster = match &stream.target {
            Target::Direct { cluster } => Some(*cluster),
            Target::Routed { vs, table, .. } => {
                let draw: u64 = stream.rng.random();
                match vs.route(request, draw) {
                    crate::mesh::route::RouteDecision::NoRoute => None,
                    crate::mesh::route::RouteDecision::Forward { rule, index, .. } => {
                        table[rule][index]
                    }
                }
            }
        };
        let Some(cluster) = cluster else {
            self.record_unanswered(load, now, now, 404, Some(ResponseFlag::NoRouteFound));
            return;
        };
        let req = Request {
            arrived: now,
            load,
            variant: variant as u16,
        };
        let mut out = std::mem::take(&mut self.upstream_out);
        self.clusters[cluster as usize].upstream.send(req, &mut out);
        self.apply_upstream(sched, cluster, &mut out, false);
        self.upstream_out = out;
    }

    /// The set of AuthorizationPolicies that select `pod`, if any.
    fn authz_set_of(&mut self, pod: PodKey) -> Option<u16> {
        let spec = &self.cluster.pods[&pod].spec;
        let selecting: Vec<usize> = self
            .authz_policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.selects(&spec.namespace, &spec.labels))
            .map(|(idx, _)| idx)
            .collect();
        if selecting.is_empty() {
            return None;
        }
        let idx = match self
            .authz_sets
            .iter()
            .position(|set| set.members == selecting)
        {
            Some(idx) => idx,
            None => {
                let policies = selecting
                    .iter()
                    .map(|&i| self.authz_policies[i].policy.clone())
                    .collect();
                self.authz_sets.push(AuthzSet {
                    members: selecting,
                    policies,
                    refused: Vec::new(),
                });
                self.authz_sets.len() - 1
            }
        };
        Some(idx as u16)
    }

    /// Whether the server sidecar enforcing policy set `set` refuses the request of `work`;
    /// the first refusal of each load stream goes into the timeline with its reason.
    fn authz_denies(&mut self, now: SimTime, set: u16, work: PodWork) -> bool {
        let Some(request) = self.clusters[work.cluster as usize]
            .upstream
            .request(work.attempt)
            .copied()
        else {
            return false;
        };
        let (load, variant) = (request.load as usize, request.variant as usize);
        let stream = &self.loads[load];
        let set = &mut self.authz_sets[set as usize];
        if set.refused.len() <= load {
            set.refused.resize(self.loads.len(), Vec::new());
        }
        if set.refused[load].is_empty() {
            set.refused[load] = vec![None; stream.variants.len()];
        }
        if let Some(known) = set.refused[load][variant] {
            return known;
        }
        let http = &stream.variants[variant];
        let decision = crate::mesh::authz::check(&set.policies, http);
        let crate::mesh::authz::AuthzDecision::Deny { policy } = decision else {
            set.refused[load][variant] = Some(false);
            return false;
        };
        // Each (stream, request) is checked once, so a stream's first refusal is seen here.
        if self.authz_noted.insert(request.load) {
            let why = match policy {
                Some(name) => format!("DENY policy {name} matches"),
                None => format!(
                    "no ALLOW policy of {} admits it",
                    set.policies
                        .iter()
                        .filter(|p| p.action == crate::mesh::authz::AuthzAction::Allow)
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let detail = format!(
                "403 RBAC: access denied to {} {} from {}: {why}",
                http.method,
                http.path,
                http.principal
                    .as_deref()
                    .unwrap_or("a caller without a mesh identity"),
            );
            let name = stream.name.clone();
            set.refused[load][variant] = Some(true);
            self.note(now, "RequestDenied", format!("load/{name}"), detail);
        } else {
            set.refused[load][variant] = Some(true);
        }
        true
    }

    /// The server sidecar answers 403 at once: the application never sees the request.
    fn deny_request(&mut self, sched: &mut Scheduler<Event>, deployment: usize, work: PodWork) {
        // Counted by status, kept out of the latency histogram: that is the application's.
        self.authz_denied[deployment] += 1;
        self.stats[deployment].by_status.add(403);
        self.end_attempt(sched, work, 403, false);
    }

    /// Hands the end of an attempt on a pod to its cluster and acts on what follows. `cut`: the
    /// pod died with it (see `apply_upstream`).
    fn end_attempt(&mut self, sched: &mut Scheduler<Event>, work: PodWork, status: u16, cut: bool) {
        let mut out = std::mem::take(&mut self.upstream_out);
        self.clusters[work.cluster as usize].upstream.finished(
            sched.now(),
            work.attempt,
            work.host,
            work.conn,
            AttemptResult::Status(status),
            &mut out,
        );
        self.apply_upstream(sched, work.cluster, &mut out, cut);
        self.upstream_out = out;
    }

    fn record_unanswered(
        &mut self,
        load: u16,
        arrived: SimTime,
        now: SimTime,
        status: u16,
        flag: Option<ResponseFlag>,
    ) {
        self.outcome(
            load,
            Outcome {
                status,
                flag: flag.map(ResponseFlag::code),
            },
        );
        let stats = self.stats.last_mut().expect("the unanswered slot exists");
        stats.by_status.add(status);
        let _ = stats
            .latency_us
            .record(now.since(arrived).as_nanos().div_ceil(1000).max(1));
    }

    /// Acts on what a cluster asked for. `cut`: the attempt that ended was cut by its pod's
    /// death, so a request completing now ends as 503 `UC`.
    fn apply_upstream(
        &mut self,
        sched: &mut Scheduler<Event>,
        cluster: u16,
        out: &mut Vec<UpstreamEvent<Request>>,
        cut: bool,
    ) {
        let now = sched.now();
        let c = &mut self.clusters[cluster as usize];
        c.most_ejected = c.most_ejected.max(c.ejected());
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                } => {
                    let pod = self.clusters[cluster as usize].hosts[host.index()];
                    self.next_request += 1;
                    let work = PodWork {
                        id: self.next_request,
                        cluster,
                        attempt,
                        host,
                        conn,
                        reached: now,
                    };
                    self.start_on_pod(sched, pod, work);
                }
                UpstreamEvent::Completed {
                    request, result, ..
                } => {
                    let status = match result {
                        AttemptResult::Status(status) => status,
                        _ => 503,
                    };
                    if cut && status == 503 {
                        self.record_unanswered(
                            request.load,
                            request.arrived,
                            now,
                            503,
                            Some(ResponseFlag::UpstreamConnectionTermination),
                        );
                    } else {
                        self.outcome(request.load, Outcome { status, flag: None });
                    }
                }
                UpstreamEvent::Rejected { request, flag } => self.record_unanswered(
                    request.load,
                    request.arrived,
                    now,
                    flag.status(),
                    Some(flag),
                ),
                UpstreamEvent::RetryAt { attempt, at } => {
                    sched.at(at.max(now), Event::Retry { cluster, attempt })
                }
                UpstreamEvent::Connect { conn } => {
                    sched.after(CONNECT_TIME, Event::Connected { cluster, conn })
                }
                UpstreamEvent::DeliverAt(at) => {
                    sched.at(at.max(now), Event::MergeTimer { cluster })
                }
            }
        }
    }

    fn start_on_pod(&mut self, sched: &mut Scheduler<Event>, pod: PodKey, request: PodWork) {
        let Some(serve) = self.pods.get_mut(&pod) else {
            // The endpoint went away between the pick and the connection: a reset.
            self.fail_request(sched, request, ResponseFlag::UpstreamConnectionTermination);
            return;
        };
        if let Some(set) = serve.authz {
            let deployment = serve.deployment;
            if self.authz_denies(sched.now(), set, request) {
                self.deny_request(sched, deployment, request);
                return;
            }
        }
        let serve = self.pods.get_mut(&pod).expect("looked up above");
        match serve.queue.arrive(sched.now(), request) {
            Admission::Started(started) => self.begin_service(sched, pod, started.item),
            Admission::Queued => {}
            Admission::Rejected(item) => {
                self.fail_request(sched, item, ResponseFlag::UpstreamOverflow)
            }
        }
    }

    fn begin_service(&mut self, sched: &mut Scheduler<Event>, pod: PodKey, request: PodWork) {
        let serve = self.pods.get_mut(&pod).expect("serving pods exist");
        let model = &self.models[serve.deployment][serve.model];
        let service = gpu::service_time(model, serve.gpu, &mut self.rng) + model.extra_latency;
        serve.in_service.push(request);
        sched.after(
            service,
            Event::Completion {
                pod,
                id: request.id,
            },
        );
    }

    /// An attempt that cannot be answered by its pod: a reset (the pod died) or a full backlog.
    fn fail_request(&mut self, sched: &mut Scheduler<Event>, work: PodWork, flag: ResponseFlag) {
        let cut = flag == ResponseFlag::UpstreamConnectionTermination;
        self.end_attempt(sched, work, 503, cut);
    }

    fn completion(&mut self, sched: &mut Scheduler<Event>, pod: PodKey, id: u64) {
        let now = sched.now();
        let Some(serve) = self.pods.get_mut(&pod) else {
            return;
        };
        let Some(pos) = serve.in_service.iter().position(|r| r.id == id) else {
            return;
        };
        let work = serve.in_service.swap_remove(pos);
        let deployment = serve.deployment;
        let model = &self.models[deployment][serve.model];
        let status = if self.rng.random::<f64>() < model.error_rate {
            model.error_status
        } else {
            200
        };
        // The application's own view: from the request reaching the pod to its answer.
        let latency = now.since(work.reached);
        let latency_secs = latency.as_secs_f64();
        let c = &mut serve.counters;
        c.requests_by_status.add(status);
        c.count += 1;
        c.sum_secs += latency_secs;
        if let Some(idx) = DEFAULT_BUCKETS.iter().position(|le| latency_secs <= *le) {
            c.buckets[idx] += 1;
        }
        c.cost_dollars += model.llm_cost_per_request;
        if c.tasks.len() < model.agent_tasks_per_request.len() {
            c.tasks.resize(model.agent_tasks_per_request.len(), 0.0);
        }
        for (slot, (_, per)) in c.tasks.iter_mut().zip(&model.agent_tasks_per_request) {
            *slot += per;
        }
        c.cpu_secs += model.cpu_per_request_secs;
        let next = serve.queue.complete(now);
        let stats = &mut self.stats[deployment];
        stats.by_status.add(status);
        let _ = stats
            .latency_us
            .record(latency.as_nanos().div_ceil(1000).max(1));
        self.end_attempt(sched, work, status, false);
        if let Some(started) = next {
            self.begin_service(sched, pod, started.item);
        }
    }

    /// Brings every cluster's endpoints in line with the Ready pods, and the serving state in
    /// line with the running containers: requests on a container that stopped fail with UC.
    fn reconcile_endpoints(&mut self, sched: &mut Scheduler<Event>) {
        let now = sched.now();
        // Serving state: one per running container.
        let mut dead = Vec::new();
        for (key, serve) in self.pods.iter() {
            match self.cluster.pods.get(&key) {
                // A terminating pod is out of the endpoints but finishes what it holds within
                // its grace period (the application handles SIGTERM, the sidecar drains).
                Some(p)
                    if matches!(p.status, PodStatus::Running | PodStatus::Terminating)
                        && p.generation == serve.generation => {}
                _ => dead.push(key),
            }
        }
        let mut serving_changed = !dead.is_empty();
        for key in dead {
            let mut serve = self.pods.remove(&key).expect("listed above");
            let mut failed: Vec<PodWork> = serve.in_service.drain(..).collect();
            failed.extend(serve.queue.drain());
            for request in failed {
                self.fail_request(sched, request, ResponseFlag::UpstreamConnectionTermination);
            }
            if serve.scraped {
                self.stale_pod_series(now, &serve.instance);
            }
        }
        let running: Vec<(PodKey, usize, usize, u32)> = self
            .cluster
            .pods
            .values()
            .filter(|p| p.status == PodStatus::Running && !self.pods.contains_key(&p.key))
            .map(|p| (p.key, p.deployment, p.replica_set, p.generation))
            .collect();
        serving_changed |= !running.is_empty();
        for (key, deployment, rs, generation) in running {
            let model = rs.min(self.models[deployment].len().saturating_sub(1));
            let concurrency = self.models[deployment][model].concurrency.max(1);
            let queue = PodQueue::new(concurrency).expect("a concurrency of at least 1 is valid");
            let authz = self.authz_set_of(key);
            self.pods.insert(
                key,
                PodServe {
                    queue,
                    in_service: Vec::new(),
                    deployment,
                    model,
                    generation,
                    counters: PodCounters::default(),
                    scraped: false,
                    instance: format!("{}:9090", self.cluster.pods[&key].name),
                    gpu: None,
                    authz,
                },
            );
            if let Some(leak) =
                Some(self.models[deployment][model].leak_bytes_per_sec).filter(|l| *l > 0.0)
            {
                self.schedule_oom(sched, key, deployment, model, generation, leak);
            }
        }
        if serving_changed {
            self.seat_gpu_pods();
        }
        // Endpoints: Ready, not terminating, labels match.
        for (idx, cluster) in self.clusters.iter_mut().enumerate() {
            let wanted: BTreeSet<PodKey> = self
                .cluster
                .pods
                .values()
                .filter(|p| p.ready && !p.is_terminating() && self.pods.contains_key(&p.key))
                .filter(|p| {
                    cluster
                        .selector
                        .iter()
                        .all(|(k, v)| p.spec.labels.get(k) == Some(v))
                })
                .map(|p| p.key)
                .collect();
            let current: Vec<PodKey> = cluster.by_pod.keys().copied().collect();
            for key in current {
                if !wanted.contains(&key) {
                    let host = cluster.by_pod.remove(&key).expect("listed");
                    cluster.upstream.remove_host(host);
                }
            }
            for key in wanted {
                if !cluster.by_pod.contains_key(&key) {
                    let host = cluster.upstream.add_host(now);
                    if cluster.hosts.len() <= host.index() {
                        cluster.hosts.resize(host.index() + 1, key);
                    }
                    cluster.hosts[host.index()] = key;
                    cluster.by_pod.insert(key, host);
                }
            }
            if !cluster.sweep_armed
                && let Some(interval) = cluster.upstream.sweep_interval()
            {
                cluster.sweep_armed = true;
                sched.at(
                    now + interval,
                    Event::OutlierSweep {
                        cluster: idx as u16,
                    },
                );
            }
        }
        for (idx, d) in self.cluster.deployments.iter().enumerate() {
            self.most_replicas[idx] = self.most_replicas[idx].max(d.replicas);
        }
        for p in self.cluster.pending() {
            self.longest_pending = self.longest_pending.max(now.since(p.created_at));
        }
        self.note_replicas(now);
    }

    /// Appends a [`ReplicaSample`] for each Deployment whose counts changed since its last one.
    fn note_replicas(&mut self, now: SimTime) {
        let n = self.deployment_names.len();
        let mut ready = vec![0u32; n];
        let mut pending = vec![0u32; n];
        for p in self.cluster.pods.values() {
            if p.is_terminating() || p.deployment >= n {
                continue;
            }
            if p.node.is_none() {
                pending[p.deployment] += 1;
            } else if p.ready {
                ready[p.deployment] += 1;
            }
        }
        for (idx, d) in self.cluster.deployments.iter().enumerate() {
            let last = self
                .replica_history
                .iter()
                .rev()
                .find(|s| s.deployment == idx);
            let counts = (d.replicas, ready[idx], pending[idx]);
            if last.map(|s| (s.spec, s.ready, s.pending)) != Some(counts) {
                self.replica_history.push(ReplicaSample {
                    at: now,
                    deployment: idx,
                    spec: counts.0,
                    ready: counts.1,
                    pending: counts.2,
                });
            }
        }
    }

    fn schedule_oom(
        &mut self,
        sched: &mut Scheduler<Event>,
        pod: PodKey,
        deployment: usize,
        model: usize,
        generation: u32,
        leak: f64,
    ) {
        let limit = self.cluster.deployments[deployment]
            .model
            .containers
            .first()
            .and_then(|c| c.memory_limit_bytes);
        let Some(limit) = limit else { return };
        let base = self.models[deployment][model].memory_baseline_bytes;
        let room = (limit as f64 - base).max(0.0);
        sched.after(
            SimDuration::from_secs_f64(room / leak),
            Event::OomKill { pod, generation },
        );
    }

    fn pod_memory_bytes(&self, key: PodKey, serve: &PodServe, now: SimTime) -> f64 {
        let Some(pod) = self.cluster.pods.get(&key) else {
            return 0.0;
        };
        let model = &self.models[pod.deployment][serve.model];
        let running_for = pod.started_at.map_or(0.0, |s| now.since(s).as_secs_f64());
        model.memory_baseline_bytes
            + model.memory_per_in_flight_bytes * serve.in_service.len() as f64
            + model.leak_bytes_per_sec * running_for
    }

    fn pod_labels(&self, key: PodKey) -> Vec<(String, String)> {
        let pod = &self.cluster.pods[&key];
        let mut labels: Vec<(String, String)> = pod
            .spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let job = if self.job_from_app {
            pod.spec
                .labels
                .get("app")
                .cloned()
                .unwrap_or_else(|| "kubernetes-pods".into())
        } else {
            "kubernetes-pods".to_string()
        };
        labels.push(("job".into(), job));
        labels.push(("instance".into(), self.pods[&key].instance.clone()));
        labels
    }

    fn append(
        &mut self,
        labels: &[(String, String)],
        name: &str,
        extra: &[(&str, String)],
        t_ms: i64,
        value: f64,
    ) {
        // The same pairs always make the same series: a scrape looks its series up by a
        // 128-bit digest of what it writes instead of building and sorting the label set.
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut lo = std::collections::hash_map::DefaultHasher::new();
            let mut hi = std::collections::hash_map::DefaultHasher::new();
            0xa5u8.hash(&mut hi);
            for h in [&mut lo, &mut hi] {
                labels.hash(h);
                for (k, v) in extra {
                    k.hash(h);
                    v.hash(h);
                }
                name.hash(h);
            }
            (u128::from(hi.finish()) << 64) | u128::from(lo.finish())
        };
        if let Some(&id) = self.series_by_digest.get(&digest) {
            let _ = self.storage.store.append_to(id, t_ms, value);
            return;
        }
        let mut all: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in extra {
            all.push((k, v.as_str()));
        }
        all.push(("__name__", name));
        let labels = Labels::from_pairs(all.into_iter());
        if let Ok(id) = self.storage.store.append(&labels, t_ms, value) {
            self.series_by_digest.insert(digest, id);
        }
    }

    /// A scraped container stopped: its target's scrape fails (or the target is gone), and
    /// Prometheus marks every series of that target stale, so instant queries stop seeing
    /// them at once instead of after the 5-minute lookback.
    fn stale_pod_series(&mut self, now: SimTime, instance: &str) {
        let matcher = crate::telemetry::store::Matcher::equal("instance", instance);
        let stale = crate::telemetry::store::stale_nan();
        for id in self.storage.store.select(&[matcher]) {
            // A series already written at this very millisecond keeps that sample.
            let _ = self.storage.store.append_to(id, now.as_millis(), stale);
        }
    }

    fn scrape(&mut self, now: SimTime) {
        let t_ms = now.as_millis();
        let scraping = now >= self.scrape_down_until;
        let keys: Vec<PodKey> = self.pods.keys().collect();
        for key in keys {
            let Some(pod) = self.cluster.pods.get(&key) else {
                continue;
            };
            let deployment = pod.deployment;
            let serve = &self.pods[&key];
            let memory = self.pod_memory_bytes(key, serve, now);
            if !scraping {
                continue;
            }
            if self.scraped_pods.contains(&deployment) {
                // What the adapter's rate query will read: the counter as Prometheus stored it.
                let window = self.adapter_rate_window;
                let counters = &mut self.pods.get_mut(&key).expect("listed").counters;
                let count: u64 = counters.requests_by_status.values().sum();
                counters.request_marks.push((now, count));
                counters
                    .request_marks
                    .retain(|(at, _)| now.since(*at) <= window);
            }
            let mut written = false;
            if self.scraped_pods.contains(&deployment) {
                let labels = self.pod_labels(key);
                let counters = self.pods[&key].counters.clone();
                for (status, n) in &counters.requests_by_status {
                    self.append(
                        &labels,
                        "http_requests_total",
                        &[("status", status.to_string())],
                        t_ms,
                        *n as f64,
                    );
                }
                let mut cumulative = 0u64;
                for (idx, le) in DEFAULT_BUCKETS.iter().enumerate() {
                    cumulative += counters.buckets[idx];
                    self.append(
                        &labels,
                        "http_request_duration_seconds_bucket",
                        &[("le", format_le(*le))],
                        t_ms,
                        cumulative as f64,
                    );
                }
                self.append(
                    &labels,
                    "http_request_duration_seconds_bucket",
                    &[("le", "+Inf".into())],
                    t_ms,
                    counters.count as f64,
                );
                self.append(
                    &labels,
                    "http_request_duration_seconds_count",
                    &[],
                    t_ms,
                    counters.count as f64,
                );
                self.append(
                    &labels,
                    "http_request_duration_seconds_sum",
                    &[],
                    t_ms,
                    counters.sum_secs,
                );
                if self.models[deployment][self.pods[&key].model].llm_cost_per_request > 0.0 {
                    self.append(
                        &labels,
                        "llm_api_cost_dollars",
                        &[],
                        t_ms,
                        counters.cost_dollars,
                    );
                }
                let agents: Vec<String> = self.models[deployment][self.pods[&key].model]
                    .agent_tasks_per_request
                    .iter()
                    .map(|(a, _)| a.clone())
                    .collect();
                for (agent, n) in agents.iter().zip(&counters.tasks) {
                    self.append(
                        &labels,
                        "agno_agent_tasks_completed_total",
                        &[("agent_type", agent.clone())],
                        t_ms,
                        n.floor(),
                    );
                }
                written = true;
            }
            if self.cluster_exporters {
                let pod = &self.cluster.pods[&key];
                let (ns, name) = (pod.spec.namespace.clone(), pod.name.clone());
                let container = self.cluster.deployments[deployment]
                    .model
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let restarts = pod.restarts;
                let limit = self.cluster.deployments[deployment]
                    .model
                    .containers
                    .first()
                    .and_then(|c| c.memory_limit_bytes)
                    .unwrap_or(0);
                let base = vec![
                    ("namespace".to_string(), ns),
                    ("pod".to_string(), name),
                    ("container".to_string(), container),
                ];
                let mut ksm = base.clone();
                ksm.push(("job".into(), "kube-state-metrics".into()));
                self.append(
                    &ksm,
                    "kube_pod_container_status_restarts_total",
                    &[],
                    t_ms,
                    f64::from(restarts),
                );
                let mut kubelet = base;
                kubelet.push(("job".into(), "kubelet".into()));
                self.append(&kubelet, "container_memory_usage_bytes", &[], t_ms, memory);
                self.append(
                    &kubelet,
                    "container_spec_memory_limit_bytes",
                    &[],
                    t_ms,
                    limit as f64,
                );
            }
            self.pods.get_mut(&key).expect("listed").scraped = written;
        }
        if self.cluster_exporters && scraping {
            // Restart counts of pods in back-off (not serving) are still exported.
            let waiting: Vec<_> = self
                .cluster
                .pods
                .values()
                .filter(|p| {
                    !self.pods.contains_key(&p.key) && p.started_at.is_some() && !p.is_terminating()
                })
                .map(|p| {
                    (
                        p.spec.namespace.clone(),
                        p.name.clone(),
                        p.deployment,
                        p.restarts,
                    )
                })
                .collect();
            for (ns, name, deployment, restarts) in waiting {
                let container = self.cluster.deployments[deployment]
                    .model
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let labels = vec![
                    ("namespace".to_string(), ns),
                    ("pod".to_string(), name),
                    ("container".to_string(), container),
                    ("job".to_string(), "kube-state-metrics".to_string()),
                ];
                self.append(
                    &labels,
                    "kube_pod_container_status_restarts_total",
                    &[],
                    t_ms,
                    f64::from(restarts),
                );
            }
            self.scrape_kube_state_metrics(now);
        }
        if scraping {
            self.scrape_gpus(t_ms);
        }
    }

    /// metrics-server's scrape of every kubelet: the CPU rate since its previous scrape of the
    /// same container, and memory now.
    fn metrics_server_scrape(&mut self, now: SimTime) {
        let keys: Vec<PodKey> = self.pods.keys().collect();
        for key in keys {
            let Some(pod) = self.cluster.pods.get(&key) else {
                continue;
            };
            let started = pod.started_at.unwrap_or(now);
            let serve = &self.pods[&key];
            let memory = self.pod_memory_bytes(key, serve, now);
            let baseline = self.models[pod.deployment][serve.model].cpu_baseline_cores;
            let counters = &mut self.pods.get_mut(&key).expect("listed").counters;
            let since = counters.baseline_accrued_at.unwrap_or(started).min(now);
            counters.cpu_secs += baseline * now.since(since).as_secs_f64();
            counters.baseline_accrued_at = Some(now);
            let cpu_now = counters.cpu_secs;
            if let Some((at, mark)) = counters.cpu_mark {
                let window = now.since(at).as_secs_f64();
                if window > 0.0 {
                    counters.resource_sample = Some((now, (cpu_now - mark) / window, memory));
                }
            }
            counters.cpu_mark = Some((now, cpu_now));
        }
    }

    fn scrape_gpus(&mut self, t_ms: i64) {
        let mut rows = Vec::new();
        for (node_idx, node) in self.cluster.state.nodes().iter().enumerate() {
            if !self.cluster.node_ready(node_idx) {
                continue;
            }
            let Some(gpus) = &node.gpus else { continue };
            for occ in gpus.occupancy() {
                let mut busy = 0.0;
                let mut fb = 0.0;
                let mut pod_name = String::new();
                for (pod_id, _units) in &occ.pods {
                    let Some(pod) = self
                        .cluster
                        .pods
                        .values()
                        .find(|p| p.bound == Some(*pod_id))
                    else {
                        continue;
                    };
                    if pod_name.is_empty() {
                        pod_name = pod.name.clone();
                    }
                    if let Some(serve) = self.pods.get(&pod.key) {
                        let model = &self.models[pod.deployment][serve.model];
                        busy += serve.in_service.len() as f64 / f64::from(model.concurrency.max(1));
                        fb += model.gpu_memory_baseline_bytes
                            + model.gpu_memory_per_in_flight_bytes * serve.in_service.len() as f64;
                    }
                }
                let total_mib = gpus.devices[occ.device_index].memory_bytes as f64 / 1_048_576.0;
                rows.push((
                    node.name.clone(),
                    occ.device_index,
                    pod_name,
                    (busy * 100.0).min(100.0).round(),
                    (fb / 1_048_576.0).round().min(total_mib),
                    total_mib,
                ));
            }
        }
        for (node, device, pod, util, used, total) in rows {
            let labels = vec![
                ("job".to_string(), "gpu-metrics".to_string()),
                (
                    "instance".to_string(),
                    "nvidia-dcgm-exporter:9400".to_string(),
                ),
                ("Hostname".to_string(), node),
                ("gpu".to_string(), device.to_string()),
                ("kubernetes_pod_name".to_string(), pod),
            ];
            self.append(&labels, "DCGM_FI_DEV_GPU_UTIL", &[], t_ms, util);
            self.append(&labels, "DCGM_FI_DEV_FB_USED", &[], t_ms, used);
            self.append(&labels, "DCGM_FI_DEV_FB_TOTAL", &[], t_ms, total);
        }
    }

    fn hpa_sync(&mut self, now: SimTime, idx: usize) {
        let deployment = self.hpas[idx].deployment;
        let metrics_up = now >= self.metrics_down_until;
        let spec_replicas = self.cluster.deployments[deployment].replicas;
        let mut pods = Vec::new();
        let mut status_replicas = 0;
        for pod in self
            .cluster
            .pods
            .values()
            .filter(|p| p.deployment == deployment)
        {
            status_replicas += 1;
            let mut usage = BTreeMap::new();
            let mut requests = BTreeMap::new();
            for c in &pod.spec.containers {
                for (name, amount) in &c.requests {
                    let milli = if name == "cpu" {
                        *amount
                    } else {
                        amount.saturating_mul(1000)
                    };
                    *requests.entry(name.clone()).or_insert(0) += milli;
                }
            }
            let mut metric_age = SimDuration::ZERO;
            if metrics_up && let Some(serve) = self.pods.get(&pod.key) {
                if let Some((at, cores, memory)) = serve.counters.resource_sample {
                    usage.insert("cpu".to_string(), (cores * 1000.0).round() as i64);
                    usage.insert("memory".to_string(), (memory * 1000.0).round() as i64);
                    metric_age = now.since(at);
                }
                if self.metrics_adapter
                    && let (Some(first), Some(last)) = (
                        serve.counters.request_marks.first(),
                        serve.counters.request_marks.last(),
                    )
                {
                    let window = last.0.since(first.0).as_secs_f64();
                    if window > 0.0 {
                        let rate = (last.1 - first.1) as f64 / window;
                        usage.insert(
                            "http_requests_per_second".to_string(),
                            (rate * 1000.0).round() as i64,
                        );
                    }
                }
            }
            pods.push(hpa::Pod {
                name: pod.name.clone(),
                phase: if pod.node.is_some() && pod.started_at.is_some() {
                    hpa::PodPhase::Running
                } else {
                    hpa::PodPhase::Pending
                },
                ready: Some(pod.ready),
                deleted: pod.is_terminating(),
                started_ago: pod
                    .started_at
                    .or(pod.node.map(|_| pod.created_at))
                    .map(|s| now.since(s)),
                ready_transition_ago: Some(
                    pod.ready_since
                        .map_or_else(|| now.since(pod.created_at), |s| now.since(s)),
                ),
                metric_age,
                requests,
                usage,
                containers: Vec::new(),
            });
        }
        let hpa = &mut self.hpas[idx];
        let metrics: Vec<MetricSpec> = hpa.controller.spec.metrics.clone();
        let decision = hpa.controller.sync(
            now,
            spec_replicas,
            status_replicas,
            self.metrics_resolution,
            metrics,
            pods.clone(),
        );
        let record = HpaRecord {
            at_secs: secs(now),
            hpa: hpa.controller.name.clone(),
            current: decision.current_replicas,
            desired: decision.desired_replicas,
            proposals: decision
                .per_metric
                .iter()
                .map(|m| m.as_ref().ok().map(|p| p.replicas))
                .collect(),
            limited_by: decision.limited_by.map(|l| l.as_str().to_string()),
            conditions: decision
                .conditions
                .iter()
                .map(|(k, c)| {
                    (
                        k.as_str().to_string(),
                        format!("{} {}", if c.status { "True" } else { "False" }, c.reason),
                    )
                })
                .collect(),
            status_replicas,
            pods,
            decision: decision.clone(),
        };
        let changed = decision.desired_replicas != spec_replicas;
        let name = record.hpa.clone();
        self.hpa_records.push(record);
        if changed {
            self.note(
                now,
                "SuccessfulRescale",
                format!("hpa/{name}"),
                format!(
                    "New size: {}; {}",
                    decision.desired_replicas,
                    decision
                        .rescale
                        .as_ref()
                        .map(|r| r.reason.clone())
                        .unwrap_or_default()
                ),
            );
            let mut out = std::mem::take(&mut self.cluster_out);
            self.cluster
                .scale(now, deployment, decision.desired_replicas, &mut out);
            self.cluster_out = out;
        }
    }

    fn fault(&mut self, now: SimTime, action: FaultAction) {
        let mut out = std::mem::take(&mut self.cluster_out);
        match action {
            FaultAction::PodKill { deployment, index } => {
                let key = self
                    .cluster
                    .pods
                    .values()
                    .filter(|p| p.deployment == deployment && !p.is_terminating())
                    .nth(index)
                    .map(|p| p.key);
                if let Some(key) = key {
                    let name = self.cluster.pods[&key].name.clone();
                    self.note(now, "Fault", format!("pod/{name}"), "pod killed");
                    self.cluster.kill_pod(now, key, &mut out);
                }
            }
            FaultAction::NodeLoss { node } => {
                let name = self.cluster.state.nodes()[node].name.clone();
                self.note(now, "Fault", format!("node/{name}"), "node lost");
                self.cluster.lose_node(now, node, &mut out);
            }
            FaultAction::NodeDrain { node } => {
                let name = self.cluster.state.nodes()[node].name.clone();
                self.note(now, "Fault", format!("node/{name}"), "kubectl drain");
                self.cluster.drain_node(now, node, &mut out);
            }
            FaultAction::GpuFault { node, device } => {
                let name = self.cluster.state.nodes()[node].name.clone();
                let victims: Vec<PodKey> = self.cluster.state.nodes()[node]
                    .gpus
                    .as_ref()
                    .and_then(|g| g.occupancy().into_iter().find(|o| o.device_index == device))
                    .map(|o| {
                        o.pods
                            .iter()
                            .filter_map(|(id, _)| {
                                self.cluster
                                    .pods
                                    .values()
                                    .find(|p| p.bound == Some(*id))
                                    .map(|p| p.key)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.note(
                    now,
                    "Fault",
                    format!("node/{name}"),
                    format!("GPU {device} failed; {} pod(s) on it fail", victims.len()),
                );
                for key in victims {
                    self.cluster.kill_pod(now, key, &mut out);
                }
            }
            FaultAction::NewRevision {
                deployment,
                labels,
                model,
                behaviour,
            } => {
                let mut template = self.cluster.deployments[deployment].model.template.clone();
                template.labels.extend(labels);
                self.models[deployment].push(*model);
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Fault",
                    format!("deployment/{name}"),
                    "new revision rolled out",
                );
                self.cluster
                    .roll_out(now, deployment, template, behaviour, &mut out);
            }
            FaultAction::Latency { deployment, extra } => {
                for m in &mut self.models[deployment] {
                    m.extra_latency = extra;
                }
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Fault",
                    format!("deployment/{name}"),
                    format!("latency +{extra}"),
                );
            }
            FaultAction::MemoryLeak {
                deployment,
                bytes_per_sec,
            } => {
                for m in &mut self.models[deployment] {
                    m.leak_bytes_per_sec = bytes_per_sec;
                }
                // Running pods restart their clocks: the leak starts now for them.
                let keys: Vec<PodKey> = self
                    .pods
                    .keys()
                    .filter(|k| {
                        self.cluster
                            .pods
                            .get(k)
                            .is_some_and(|p| p.deployment == deployment)
                    })
                    .collect();
                for key in keys {
                    if let Some(pod) = self.cluster.pods.get_mut(&key) {
                        pod.started_at = Some(now);
                    }
                }
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Fault",
                    format!("deployment/{name}"),
                    "memory leak starts",
                );
                // OOM timers for the running pods are set by the next endpoint reconcile.
                let keys: Vec<PodKey> = self.pods.keys().collect();
                for key in keys {
                    if self
                        .cluster
                        .pods
                        .get(&key)
                        .is_some_and(|p| p.deployment == deployment)
                    {
                        self.pods.remove(&key);
                    }
                }
            }
            FaultAction::CostSurge { deployment, factor } => {
                for m in &mut self.models[deployment] {
                    m.llm_cost_per_request *= factor;
                }
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Fault",
                    format!("deployment/{name}"),
                    format!("LLM cost x{factor}"),
                );
            }
            FaultAction::MetricsOutage { until } => {
                self.metrics_down_until = until;
                self.note(now, "Fault", "metrics-server", "metrics pipeline down");
            }
            FaultAction::ScrapeGap { until } => {
                self.scrape_down_until = until;
                self.note(now, "Fault", "prometheus", "scrapes stop");
            }
            FaultAction::CrashLoop { deployment, after } => {
                let current = self.cluster.deployments[deployment].current;
                self.cluster.deployments[deployment].replica_sets[current]
                    .behaviour
                    .crash_after = Some(after);
                let keys: Vec<PodKey> = self
                    .cluster
                    .pods
                    .values()
                    .filter(|p| p.deployment == deployment)
                    .map(|p| p.key)
                    .collect();
                for key in keys {
                    if let Some(pod) = self.cluster.pods.get_mut(&key) {
                        pod.behaviour.crash_after = Some(after);
                        if pod.status == PodStatus::Running {
                            out.push((
                                now + after,
                                ClusterEvent::ContainerExited {
                                    pod: key,
                                    generation: pod.generation,
                                },
                            ));
                        }
                    }
                }
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Fault",
                    format!("deployment/{name}"),
                    format!("containers exit {after} after each start"),
                );
            }
            FaultAction::RolloutUndo { deployment } => {
                let name = self.deployment_names[deployment].clone();
                self.note(
                    now,
                    "Rollback",
                    format!("deployment/{name}"),
                    "kubectl rollout undo",
                );
                self.cluster.undo(now, deployment, &mut out);
            }
        }
        self.cluster_out = out;
    }
}

/// `le` as the Prometheus Go client writes it.
fn format_le(le: f64) -> String {
    let text = format!("{le}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

impl MeshCluster {
    pub fn new(
        service: String,
        subset: Option<String>,
        selector: BTreeMap<String, String>,
        upstream: Upstream<Request>,
    ) -> Self {
        MeshCluster {
            service,
            subset,
            selector,
            upstream,
            hosts: Vec::new(),
            by_pod: BTreeMap::new(),
            sweep_armed: false,
            most_ejected: 0,
        }
    }

    /// Hosts ejected right now, as the detector sees them.
    pub fn ejected(&self) -> usize {
        self.upstream
            .detector()
            .map_or(0, |d| d.ejected_count() as usize)
    }

    pub fn outlier_log(&self) -> &[crate::mesh::outlier::OutlierEvent] {
        self.upstream.outlier_log()
    }

    pub fn pod_of(&self, host: HostId) -> Option<PodKey> {
        self.hosts.get(host.index()).copied()
    }
}
