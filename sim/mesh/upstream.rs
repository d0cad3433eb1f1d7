//! One cluster as one client proxy drives it (`spec/mesh.md` §7): host pick, connection pool,
//! outlier reporting, the merge window between the detector and the balancer, and the
//! route's retries, wired together so that the caller's event loop only has to schedule what
//! this returns.
//!
//! ```text
//! send ─> LoadBalancer::pick ─UH─> Rejected
//!              │ host (a retry re-picks to avoid hosts already tried)
//!              v
//!      ConnectionPools::request ─UO─> Rejected (never retried)
//!              │ Started (caller schedules `finished`) / Connect (caller schedules `connected`)
//! finished(result) ─> OutlierDetector::report ─> UpdateMerge ─> HostSet (what the LB sees)
//!        │                                           └─ DeliverAt (caller schedules `merge_timer`)
//!        └─> retriable and allowed? ─> RetryAt (caller schedules `retry`) ; else Completed
//! sweep (every interval; caller schedules it) ─> unejections ─> UpdateMerge
//! ```
//!
//! Retries follow Envoy's router: each attempt counts for outlier detection on its own host;
//! the `max_retries` breaker bounds retries in flight (`upstream_rq_retry_overflow` when it
//! refuses one); the back-off before retry `n` is `random % ((2^n - 1) * 25 ms)`, at most
//! 250 ms; with `previous_hosts` the balancer is asked up to `1 + host_selection_retry_max_attempts`
//! times for a host not tried yet, and the last answer is taken anyway.
//!
//! Invariants: every request given to `send` comes back exactly once, as `Completed` or
//! `Rejected`; the balancer sees the detector's health only through deliveries; nothing here
//! keeps time of its own.

use rand::Rng;

use super::lb::{HostSet, LoadBalancer, Pick};
use super::merge::{Delivery, UpdateMerge};
use super::outlier::{AttemptResult, OutlierAction, OutlierDetector, OutlierEvent};
use super::policy::{ClusterPolicy, RetryPolicy};
use super::pool::{ConnId, ConnectionPools, PoolOutcome};
use super::{HostId, MeshError, ResponseFlag};
use crate::engine::{ChildTree, SimDuration, SimRng, SimTime};

/// One in-flight request inside the cluster, across its attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptId(pub u32);

/// What the caller must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamEvent<T> {
    /// An attempt is on the wire to `host` over `conn`; report its end with `finished`.
    Started {
        attempt: AttemptId,
        host: HostId,
        conn: ConnId,
    },
    /// The request is done: `result` is what the client sees from the upstream, after
    /// `retries` retries.
    Completed {
        request: T,
        result: AttemptResult,
        retries: u32,
    },
    /// The mesh answered for the upstream: 503 `UH` or 503 `UO`.
    Rejected { request: T, flag: ResponseFlag },
    /// Call `retry(attempt)` at this instant (after the back-off).
    RetryAt { attempt: AttemptId, at: SimTime },
    /// Call `connected(conn)` when the connection is up (after the connect time).
    Connect { conn: ConnId },
    /// Call `merge_timer` at this instant.
    DeliverAt(SimTime),
}

/// Counters named as Envoy's cluster stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryStats {
    pub upstream_rq_retry: u64,
    pub upstream_rq_retry_overflow: u64,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    request: Option<T>,
    retries: u32,
    /// Hosts tried so far, for `previous_hosts`; empty until a retry needs it.
    tried: Vec<HostId>,
    /// Whether this attempt holds one unit of the `max_retries` breaker.
    holds_retry_budget: bool,
}

/// A cluster with its balancer, pools, detector, merge window and retry policy.
pub struct Upstream<T> {
    hosts: HostSet,
    lb: LoadBalancer,
    pools: ConnectionPools<AttemptId>,
    detector: Option<OutlierDetector>,
    merge: UpdateMerge,
    panic_threshold_percent: f64,
    max_retries_in_flight: u64,
    retry_policy: RetryPolicy,
    retry_rng: SimRng,
    retries_in_flight: u64,
    retry_stats: RetryStats,
    slots: Vec<Slot<T>>,
    free_slots: Vec<AttemptId>,
    health: Vec<bool>,
    pool_out: Vec<PoolOutcome<AttemptId>>,
    sweep_events: Vec<OutlierEvent>,
    outlier_log: Vec<OutlierEvent>,
    keep_log: bool,
}

impl<T> Upstream<T> {
    /// A cluster of `n_hosts` equal-weight hosts under `policy`, with no retries, drawing from
    /// `rng`'s `lb`, `outlier` and `retry` streams.
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
            max_retries_in_flight: policy.circuit_breakers.max_retries,
            retry_policy: RetryPolicy::default(),
            retry_rng: rng.stream("retry"),
            retries_in_flight: 0,
            retry_stats: RetryStats::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            health: Vec::with_capacity(n_hosts as usize),
            pool_out: Vec::new(),
            sweep_events: Vec::new(),
            outlier_log: Vec::new(),
            keep_log: false,
        })
    }

    /// The route's retry policy for requests sent to this cluster.
    pub fn with_retry_policy(mut self, retry_policy: RetryPolicy) -> Self {
        self.retry_policy = retry_policy;
        self
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

    pub fn pools(&self) -> &ConnectionPools<AttemptId> {
        &self.pools
    }

    pub fn detector(&self) -> Option<&OutlierDetector> {
        self.detector.as_ref()
    }

    pub fn merge(&self) -> &UpdateMerge {
        &self.merge
    }

    pub fn retry_stats(&self) -> RetryStats {
        self.retry_stats
    }

    /// The sweep period, when outlier detection is on.
    /// The request an attempt in flight carries.
    pub fn request(&self, attempt: AttemptId) -> Option<&T> {
        self.slots
            .get(attempt.0 as usize)
            .and_then(|slot| slot.request.as_ref())
    }

    pub fn sweep_interval(&self) -> Option<SimDuration> {
        self.detector.as_ref().map(|d| d.config().interval)
    }

    /// Whether the balancer picks among all hosts now (panic, §4.1).
    pub fn in_panic(&self) -> bool {
        self.hosts.in_panic(self.panic_threshold_percent)
    }

    fn take_request(&mut self, attempt: AttemptId) -> (T, u32) {
        let slot = &mut self.slots[attempt.0 as usize];
        if std::mem::take(&mut slot.holds_retry_budget) {
            self.retries_in_flight -= 1;
        }
        let request = slot
            .request
            .take()
            .expect("a live attempt holds its request");
        let retries = slot.retries;
        slot.tried.clear();
        self.free_slots.push(attempt);
        (request, retries)
    }

    fn drain_pool(&mut self, out: &mut Vec<UpstreamEvent<T>>) {
        // Taken out and put back, so that its capacity is reused and no call allocates.
        let mut outcomes = std::mem::take(&mut self.pool_out);
        for outcome in outcomes.drain(..) {
            let event = match outcome {
                PoolOutcome::Started {
                    request: attempt,
                    host,
                    conn,
                } => UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                },
                PoolOutcome::Overflow {
                    request: attempt, ..
                } => {
                    let (request, _) = self.take_request(attempt);
                    UpstreamEvent::Rejected {
                        request,
                        flag: ResponseFlag::UpstreamOverflow,
                    }
                }
                PoolOutcome::Connect { conn, .. } => UpstreamEvent::Connect { conn },
            };
            out.push(event);
        }
        self.pool_out = outcomes;
    }

    /// A request for this cluster: picks a host and asks its pool. Returns the host picked
    /// (the access log's upstream host), or `None` for 503 `UH`.
    #[inline]
    pub fn send(&mut self, request: T, out: &mut Vec<UpstreamEvent<T>>) -> Option<HostId> {
        let slot = Slot {
            request: Some(request),
            retries: 0,
            tried: Vec::new(),
            holds_retry_budget: false,
        };
        let attempt = match self.free_slots.pop() {
            Some(id) => {
                let reused = &mut self.slots[id.0 as usize];
                let tried = std::mem::take(&mut reused.tried);
                *reused = Slot { tried, ..slot };
                id
            }
            None => {
                self.slots.push(slot);
                AttemptId(self.slots.len() as u32 - 1)
            }
        };
        self.dispatch(attempt, out)
    }

    /// A retry scheduled by `RetryAt` is due.
    pub fn retry(&mut self, attempt: AttemptId, out: &mut Vec<UpstreamEvent<T>>) -> Option<HostId> {
        self.dispatch(attempt, out)
    }

    fn pick(&mut self, attempt: AttemptId) -> Pick {
        let slot = &self.slots[attempt.0 as usize];
        let avoid = self.retry_policy.avoid_previous_hosts && !slot.tried.is_empty();
        let picks = if avoid {
            1 + self.retry_policy.host_selection_retry_max_attempts
        } else {
            1
        };
        let mut pick = Pick::NoHealthyUpstream;
        for _ in 0..picks {
            pick = self.lb.pick(&self.hosts, self.pools.active_per_host());
            match pick {
                Pick::Host { host, .. }
                    if avoid && self.slots[attempt.0 as usize].tried.contains(&host) =>
                {
                    continue;
                }
                _ => break,
            }
        }
        pick
    }

    fn dispatch(&mut self, attempt: AttemptId, out: &mut Vec<UpstreamEvent<T>>) -> Option<HostId> {
        match self.pick(attempt) {
            Pick::NoHealthyUpstream => {
                let (request, _) = self.take_request(attempt);
                out.push(UpstreamEvent::Rejected {
                    request,
                    flag: ResponseFlag::NoHealthyUpstream,
                });
                None
            }
            Pick::Host { host, .. } => {
                self.pools.request(host, attempt, &mut self.pool_out);
                self.drain_pool(out);
                Some(host)
            }
        }
    }

    /// A connection opened earlier is up.
    pub fn connected(&mut self, conn: ConnId, out: &mut Vec<UpstreamEvent<T>>) {
        self.pools.connected(conn, &mut self.pool_out);
        self.drain_pool(out);
    }

    /// The attempt on `conn` to `host` ended at `now` with `result`.
    #[inline]
    pub fn finished(
        &mut self,
        now: SimTime,
        attempt: AttemptId,
        host: HostId,
        conn: ConnId,
        result: AttemptResult,
        out: &mut Vec<UpstreamEvent<T>>,
    ) {
        self.pools.finished(conn, &mut self.pool_out);
        self.drain_pool(out);
        if let Some(detector) = self.detector.as_mut() {
            let reported = detector.report(now, host, result);
            if !reported.is_empty() {
                if self.keep_log {
                    self.outlier_log.extend(reported.iter().copied());
                }
                if reported.changed_health() {
                    self.health_changed(now, out);
                }
            }
        }
        match self.retry_decision(attempt, host, result) {
            Some(backoff) => out.push(UpstreamEvent::RetryAt {
                attempt,
                at: now + backoff,
            }),
            None => {
                let (request, retries) = self.take_request(attempt);
                out.push(UpstreamEvent::Completed {
                    request,
                    result,
                    retries,
                });
            }
        }
    }

    /// `Some(back-off)` when the attempt is retried; takes the retry budget for it.
    fn retry_decision(
        &mut self,
        attempt: AttemptId,
        host: HostId,
        result: AttemptResult,
    ) -> Option<SimDuration> {
        let policy = &self.retry_policy;
        let retriable = match result {
            AttemptResult::ConnectFailed => policy.retry_on_connect_failure,
            AttemptResult::Status(status) => policy.retriable_status_codes.contains(&status),
            AttemptResult::Timeout | AttemptResult::ConnectSucceeded => false,
        };
        let slot = &mut self.slots[attempt.0 as usize];
        if !retriable || slot.retries >= policy.num_retries {
            return None;
        }
        // The attempt that just ended gives back its unit before the next one asks.
        if std::mem::take(&mut slot.holds_retry_budget) {
            self.retries_in_flight -= 1;
        }
        if self.retries_in_flight >= self.max_retries_in_flight {
            self.retry_stats.upstream_rq_retry_overflow += 1;
            return None;
        }
        self.retries_in_flight += 1;
        self.retry_stats.upstream_rq_retry += 1;
        slot.holds_retry_budget = true;
        slot.retries += 1;
        slot.tried.push(host);
        // Envoy's jittered exponential back-off, in whole milliseconds as Envoy computes it.
        let base_ms = policy.base_interval.as_millis().max(1);
        let max_ms = policy.max_interval.as_millis();
        let ceiling_ms = ((1u64 << slot.retries.min(32)) - 1).saturating_mul(base_ms);
        let backoff_ms = (self.retry_rng.next_u64() % ceiling_ms).min(max_ms);
        Some(SimDuration::from_millis(backoff_ms))
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

    /// Copies the detector's current health into what the balancer sees.
    fn deliver(&mut self) {
        if let Some(detector) = &self.detector {
            detector.health_view(&mut self.health);
            self.hosts.set_health(&self.health);
        }
    }
}
