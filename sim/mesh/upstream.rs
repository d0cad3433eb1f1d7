//! One cluster as one client proxy drives it (`spec/mesh.md` §7): host pick, connection pool,
//! outlier reporting, and the merge window between the detector and the balancer, wired
//! together so that the caller's event loop only has to schedule what this returns.
//!
//! ```text
//! send ─> LoadBalancer::pick ─UH─> Rejected
//!              │ host
//!              v
//!      ConnectionPools::request ─UO─> Rejected
//!              │ Started / Connect (caller schedules `connected`)
//! finished(status) ─> OutlierDetector::report ─> UpdateMerge ─> HostSet (what the LB sees)
//!                                                     └─ DeliverAt (caller schedules `merge_timer`)
//! sweep (every interval; caller schedules it) ─> unejections ─> UpdateMerge
//! ```
//!
//! Invariants: every request given to `send` comes back exactly once, as `Started` (then the
//! caller reports its `finished`) or as `Rejected`; the balancer sees the detector's health
//! only through deliveries; nothing here keeps time of its own.

use super::lb::{HostSet, LoadBalancer, Pick};
use super::merge::{Delivery, UpdateMerge};
use super::outlier::{AttemptResult, OutlierAction, OutlierDetector, OutlierEvent};
use super::policy::ClusterPolicy;
use super::pool::{ConnId, ConnectionPools, PoolOutcome};
use super::{HostId, MeshError, ResponseFlag};
use crate::engine::{ChildTree, SimDuration, SimTime};

/// What the caller must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamEvent<T> {
    /// The request is on the wire to `host` over `conn`; report its end with `finished`.
    Started {
        request: T,
        host: HostId,
        conn: ConnId,
    },
    /// The mesh answered for the upstream: 503 `UH` or 503 `UO`.
    Rejected { request: T, flag: ResponseFlag },
    /// Call `connected(conn)` when the connection is up (after the connect time).
    Connect { conn: ConnId },
    /// Call `merge_timer` at this instant.
    DeliverAt(SimTime),
}

/// A cluster with its balancer, pools, detector and merge window.
pub struct Upstream<T> {
    hosts: HostSet,
    lb: LoadBalancer,
    pools: ConnectionPools<T>,
    detector: Option<OutlierDetector>,
    merge: UpdateMerge,
    panic_threshold_percent: f64,
    health: Vec<bool>,
    pool_out: Vec<PoolOutcome<T>>,
    sweep_events: Vec<OutlierEvent>,
    outlier_log: Vec<OutlierEvent>,
    keep_log: bool,
}

impl<T> Upstream<T> {
    /// A cluster of `n_hosts` equal-weight hosts under `policy`, drawing from `rng`'s
    /// `lb` and `outlier` streams.
    pub fn new(policy: &ClusterPolicy, n_hosts: u32, rng: &ChildTree) -> Result<Self, MeshError> {
        let detector = match &policy.outlier {
            Some(config) => Some(OutlierDetector::new(
                config.clone(),
                n_hosts,
                rng.stream("outlier"),
            )?),
            None => None,
        };
        Ok(Upstream {
            hosts: HostSet::uniform(n_hosts),
            lb: LoadBalancer::new(
                policy.lb,
                policy.healthy_panic_threshold_percent,
                rng.stream("lb"),
            ),
            pools: ConnectionPools::new(
                policy.circuit_breakers,
                policy.max_requests_per_connection,
                n_hosts,
            ),
            detector,
            merge: UpdateMerge::default(),
            panic_threshold_percent: policy.healthy_panic_threshold_percent,
            health: Vec::with_capacity(n_hosts as usize),
            pool_out: Vec::new(),
            sweep_events: Vec::new(),
            outlier_log: Vec::new(),
            keep_log: false,
        })
    }

    /// A new endpoint joins the cluster at `now` (a membership change): it starts healthy,
    /// with an empty pool and clean outlier counters, and the balancer sees it at once.
    pub fn add_host(&mut self, now: SimTime) -> HostId {
        let host = self.hosts.push(1);
        let pool_host = self.pools.add_host();
        debug_assert_eq!(host, pool_host);
        if let Some(detector) = self.detector.as_mut() {
            let detector_host = detector.add_host();
            debug_assert_eq!(host, detector_host);
        }
        self.merge.membership_changed(now);
        // A membership update carries every host's current health, held changes included.
        self.deliver();
        host
    }

    /// Removes a host from the endpoints (its pod stopped being Ready or went away): the
    /// balancer stops picking it at once, requests already on it finish, and the detector
    /// forgets it.
    pub fn remove_host(&mut self, host: HostId) {
        self.hosts.remove(host);
        if let Some(detector) = self.detector.as_mut() {
            detector.remove_host(host);
        }
    }

    /// Keeps every outlier event (ejections, overflows, unejections) for [`Upstream::outlier_log`].
    pub fn with_outlier_log(mut self) -> Self {
        self.keep_log = true;
        self
    }

    pub fn outlier_log(&self) -> &[OutlierEvent] {
        &self.outlier_log
    }

    pub fn hosts(&self) -> &HostSet {
        &self.hosts
    }

    pub fn lb(&self) -> &LoadBalancer {
        &self.lb
    }

    pub fn pools(&self) -> &ConnectionPools<T> {
        &self.pools
    }

    pub fn detector(&self) -> Option<&OutlierDetector> {
        self.detector.as_ref()
    }

    pub fn merge(&self) -> &UpdateMerge {
        &self.merge
    }

    /// The sweep period, when outlier detection is on.
    pub fn sweep_interval(&self) -> Option<SimDuration> {
        self.detector.as_ref().map(|d| d.config().interval)
    }

    fn drain_pool(&mut self, out: &mut Vec<UpstreamEvent<T>>) {
        for outcome in self.pool_out.drain(..) {
            out.push(match outcome {
                PoolOutcome::Started {
                    request,
                    host,
                    conn,
                } => UpstreamEvent::Started {
                    request,
                    host,
                    conn,
                },
                PoolOutcome::Overflow { request, .. } => UpstreamEvent::Rejected {
                    request,
                    flag: ResponseFlag::UpstreamOverflow,
                },
                PoolOutcome::Connect { conn, .. } => UpstreamEvent::Connect { conn },
            });
        }
    }

    /// A request for this cluster: picks a host and asks its pool. Returns the host picked
    /// (the access log's upstream host), or `None` for 503 `UH`.
    #[inline]
    pub fn send(&mut self, request: T, out: &mut Vec<UpstreamEvent<T>>) -> Option<HostId> {
        match self.lb.pick(&self.hosts, self.pools.active_per_host()) {
            Pick::NoHealthyUpstream => {
                out.push(UpstreamEvent::Rejected {
                    request,
                    flag: ResponseFlag::NoHealthyUpstream,
                });
                None
            }
            Pick::Host { host, .. } => {
                self.pools.request(host, request, &mut self.pool_out);
                self.drain_pool(out);
                Some(host)
            }
        }
    }

    /// Whether the balancer picks among all hosts now (panic, §4.1).
    pub fn in_panic(&self) -> bool {
        self.hosts.in_panic(self.panic_threshold_percent)
    }

    /// A connection opened earlier is up.
    pub fn connected(&mut self, conn: ConnId, out: &mut Vec<UpstreamEvent<T>>) {
        self.pools.connected(conn, &mut self.pool_out);
        self.drain_pool(out);
    }

    /// The request on `conn` to `host` ended at `now` with `result`.
    #[inline]
    pub fn finished(
        &mut self,
        now: SimTime,
        host: HostId,
        conn: ConnId,
        result: AttemptResult,
        out: &mut Vec<UpstreamEvent<T>>,
    ) {
        self.pools.finished(conn, &mut self.pool_out);
        self.drain_pool(out);
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        let reported = detector.report(now, host, result);
        if reported.is_empty() {
            return;
        }
        if self.keep_log {
            self.outlier_log.extend(reported.iter().copied());
        }
        if reported.changed_health() {
            self.health_changed(now, out);
        }
    }

    /// The detector's interval timer at `now`; the caller re-arms it one interval later.
    pub fn sweep(&mut self, now: SimTime, out: &mut Vec<UpstreamEvent<T>>) {
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        self.sweep_events.clear();
        detector.sweep(now, &mut self.sweep_events);
        if self.keep_log {
            self.outlier_log.extend(self.sweep_events.iter().copied());
        }
        let changed = self
            .sweep_events
            .iter()
            .any(|e| matches!(e.action, OutlierAction::Ejected | OutlierAction::Unejected));
        if changed {
            self.health_changed(now, out);
        }
    }

    fn health_changed(&mut self, now: SimTime, out: &mut Vec<UpstreamEvent<T>>) {
        match self.merge.health_changed(now) {
            Delivery::Now => self.deliver(),
            Delivery::HeldUntil(at) => out.push(UpstreamEvent::DeliverAt(at)),
            Delivery::Joined(_) => {}
        }
    }

    /// A delivery timer set by `DeliverAt` fired at `now`.
    pub fn merge_timer(&mut self, now: SimTime) {
        if self.merge.timer_fired(now) {
            self.deliver();
        }
    }

    /// Copies the detector's current health into what the balancer sees.
    fn deliver(&mut self) {
        if let Some(detector) = &self.detector {
            detector.health_view(&mut self.health);
            self.hosts.set_health(&self.health);
        }
    }
}
