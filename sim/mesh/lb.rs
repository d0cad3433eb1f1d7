//! Host selection of one cluster (`spec/mesh.md` §4; Envoy `load_balancer_impl.cc`,
//! `least_request_lb.cc`, `round_robin_lb.h`, `edf_scheduler.h`), single priority and locality.
//!
//! - The candidates are the hosts the balancer last *heard* are healthy ([`HostSet`] holds the
//!   delivered view, which lags the detector by the merge window of §3.8).
//! - Panic: `availability = min(100, 140 * healthy / total)`; at 100 there is never panic,
//!   otherwise the cluster is in panic when `100 * healthy / total < threshold`, and then every
//!   host is a candidate. No candidate at all means 503 `UH`.
//! - ROUND_ROBIN with equal weights indexes the candidate list with one counter per list kind
//!   (healthy, all), started at a random value; unequal weights use EDF on the static weights.
//! - RANDOM picks uniformly among the candidates and ignores weights. The spec says it is
//!   weighted when weights differ; Envoy 1.40's `RandomLoadBalancer::peekOrChoose` indexes
//!   `hosts[random % size]`, and upstream wins.
//! - LEAST_REQUEST with equal weights draws `choice_count` hosts with replacement and keeps the
//!   first unless a later one has strictly fewer active requests; with unequal weights it runs
//!   EDF on `weight / (active + 1)^bias`, recomputing a host's weight when it is picked.
//!
//! Invariants: a pick never returns a host outside the candidate set; the balancer draws only
//! from its own stream; candidate lists are rebuilt only when the host set's generation moves.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;

use super::HostId;
use super::policy::LbPolicy;
use crate::engine::SimRng;

/// Envoy's default overprovisioning factor, 140 %.
const OVERPROVISIONING_FACTOR: f64 = 1.4;

/// The hosts of a cluster as the load balancer sees them.
#[derive(Clone, Debug)]
pub struct HostSet {
    weights: Vec<u32>,
    healthy: Vec<bool>,
    /// Whether the host is still an endpoint; a removed host keeps its index (ids are never
    /// reused) but the balancer, panic mode included, never sees it again.
    members: Vec<bool>,
    generation: u64,
}

impl HostSet {
    /// `n_hosts` healthy hosts of weight 1 (Kubernetes endpoints carry no weight).
    pub fn uniform(n_hosts: u32) -> Self {
        HostSet::weighted(vec![1; n_hosts as usize])
    }

    /// Healthy hosts with the given weights (each at least 1, as EDS requires).
    pub fn weighted(weights: Vec<u32>) -> Self {
        assert!(
            weights.iter().all(|&w| w >= 1),
            "EDS weights are at least 1"
        );
        let healthy = vec![true; weights.len()];
        let members = vec![true; weights.len()];
        HostSet {
            weights,
            healthy,
            members,
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn is_healthy(&self, host: HostId) -> bool {
        self.healthy[host.index()]
    }

    /// Healthy hosts among the current members.
    pub fn healthy_count(&self) -> usize {
        self.healthy
            .iter()
            .zip(&self.members)
            .filter(|(h, m)| **h && **m)
            .count()
    }

    /// Hosts that are still endpoints.
    pub fn member_count(&self) -> usize {
        self.members.iter().filter(|&&m| m).count()
    }

    pub fn is_member(&self, host: HostId) -> bool {
        self.members[host.index()]
    }

    /// Removes a host from the endpoints (an EDS membership change, seen at once).
    pub fn remove(&mut self, host: HostId) {
        if std::mem::replace(&mut self.members[host.index()], false) {
            self.generation += 1;
        }
    }

    /// Delivers a new health view (one bool per host), as a host-set update does.
    pub fn set_health(&mut self, healthy: &[bool]) {
        assert_eq!(
            healthy.len(),
            self.healthy.len(),
            "a health update covers every host"
        );
        if self.healthy != healthy {
            self.healthy.copy_from_slice(healthy);
            self.generation += 1;
        }
    }

    /// Adds a healthy host: a membership change, which the balancer sees at once.
    pub fn push(&mut self, weight: u32) -> HostId {
        assert!(weight >= 1, "EDS weights are at least 1");
        self.weights.push(weight);
        self.healthy.push(true);
        self.members.push(true);
        self.generation += 1;
        HostId(self.weights.len() as u32 - 1)
    }

    /// Whether the cluster is in panic with this health view (§4.1).
    pub fn in_panic(&self, threshold_percent: f64) -> bool {
        let total = self.member_count();
        if total == 0 {
            return false;
        }
        let healthy_percent = 100.0 * self.healthy_count() as f64 / total as f64;
        let availability = (OVERPROVISIONING_FACTOR * healthy_percent).min(100.0);
        availability < 100.0 && healthy_percent < threshold_percent.min(100.0)
    }
}

/// The result of one pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Host {
        host: HostId,
        panic: bool,
    },
    /// No candidate: 503 `UH`, body `no healthy upstream`.
    NoHealthyUpstream,
}

/// Counters the balancer keeps, named as Envoy's cluster stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbStats {
    pub lb_healthy_panic: u64,
}

/// An f64 deadline ordered for a min-heap, ties broken by insertion order as Envoy's EDF does.
#[derive(Clone, Copy, Debug)]
struct EdfEntry {
    deadline: f64,
    order: u64,
    host: HostId,
}

impl PartialEq for EdfEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for EdfEntry {}
impl PartialOrd for EdfEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for EdfEntry {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .total_cmp(&self.deadline)
            .then_with(|| other.order.cmp(&self.order))
    }
}

/// Earliest-deadline-first scheduling: a host of weight `w` is due every `1 / w`.
#[derive(Clone, Debug, Default)]
struct Edf {
    heap: BinaryHeap<EdfEntry>,
    now: f64,
    order: u64,
}

impl Edf {
    fn add(&mut self, host: HostId, weight: f64) {
        self.heap.push(EdfEntry {
            deadline: self.now + 1.0 / weight,
            order: self.order,
            host,
        });
        self.order += 1;
    }

    fn pick_and_add(&mut self, weight_of: impl Fn(HostId) -> f64) -> Option<HostId> {
        let entry = self.heap.pop()?;
        self.now = entry.deadline;
        self.add(entry.host, weight_of(entry.host));
        Some(entry.host)
    }
}

/// One load-balancer instance (one per worker in Envoy).
#[derive(Clone, Debug)]
pub struct LoadBalancer {
    policy: LbPolicy,
    panic_threshold_percent: f64,
    rng: SimRng,
    /// Round-robin counters for the healthy list (0) and the all-hosts list (1), shared by
    /// whatever list of that kind is current.
    round_robin_index: [u64; 2],
    /// `None` until the first pick; then the host set generation the lists below describe.
    generation: Option<u64>,
    panic: bool,
    candidates: Vec<HostId>,
    weights_equal: bool,
    edf: Edf,
    stats: LbStats,
}

impl LoadBalancer {
    /// A balancer for `policy` with `healthy_panic_threshold` in percent, drawing from `rng`.
    pub fn new(policy: LbPolicy, panic_threshold_percent: f64, mut rng: SimRng) -> Self {
        let seed = rng.next_u64();
        LoadBalancer {
            policy,
            panic_threshold_percent,
            rng,
            round_robin_index: [seed, seed],
            generation: None,
            panic: false,
            candidates: Vec::new(),
            weights_equal: true,
            edf: Edf::default(),
            stats: LbStats::default(),
        }
    }

    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    pub fn stats(&self) -> LbStats {
        self.stats
    }

    /// The current candidate list (after the last pick's refresh).
    pub fn candidates(&self) -> &[HostId] {
        &self.candidates
    }

    fn refresh(&mut self, hosts: &HostSet, active: &[u32]) {
        self.panic = hosts.in_panic(self.panic_threshold_percent);
        self.candidates.clear();
        for index in 0..hosts.len() {
            if hosts.members[index] && (self.panic || hosts.healthy[index]) {
                self.candidates.push(HostId(index as u32));
            }
        }
        let first_weight = self.candidates.first().map(|h| hosts.weights[h.index()]);
        self.weights_equal = self
            .candidates
            .iter()
            .all(|h| Some(hosts.weights[h.index()]) == first_weight);
        self.edf = Edf::default();
        if !self.weights_equal {
            for &host in &self.candidates {
                let weight = self.effective_weight(hosts, active, host);
                self.edf.add(host, weight);
            }
            // Envoy starts a rebuilt scheduler after a random number of picks, so that every
            // rebuild does not hand the first request to the same host.
            let warm_picks = self.rng.next_u64() % self.candidates.len() as u64;
            for _ in 0..warm_picks {
                let (policy, weights) = (self.policy, &hosts.weights);
                self.edf
                    .pick_and_add(|h| Self::weight_for(policy, weights, active, h));
            }
        }
        self.generation = Some(hosts.generation);
    }

    fn weight_for(policy: LbPolicy, weights: &[u32], active: &[u32], host: HostId) -> f64 {
        let weight = f64::from(weights[host.index()]);
        match policy {
            LbPolicy::LeastRequest {
                active_request_bias,
                ..
            } => {
                let active = f64::from(active.get(host.index()).copied().unwrap_or(0));
                if active_request_bias == 1.0 {
                    weight / (active + 1.0)
                } else {
                    weight / (active + 1.0).powf(active_request_bias)
                }
            }
            LbPolicy::RoundRobin | LbPolicy::Random => weight,
        }
    }

    fn effective_weight(&self, hosts: &HostSet, active: &[u32], host: HostId) -> f64 {
        Self::weight_for(self.policy, &hosts.weights, active, host)
    }

    /// Picks a host for one request. `active` is each host's in-flight request count
    /// (`rq_active`), indexed by host; it matters only to LEAST_REQUEST.
    #[inline]
    pub fn pick(&mut self, hosts: &HostSet, active: &[u32]) -> Pick {
        if self.generation != Some(hosts.generation) {
            self.refresh(hosts, active);
        }
        let n = self.candidates.len() as u64;
        if n == 0 {
            return Pick::NoHealthyUpstream;
        }
        if self.panic {
            self.stats.lb_healthy_panic += 1;
        }
        let host = match self.policy {
            LbPolicy::RoundRobin if self.weights_equal => {
                let list = usize::from(self.panic);
                let index = self.round_robin_index[list];
                self.round_robin_index[list] = index.wrapping_add(1);
                self.candidates[(index % n) as usize]
            }
            LbPolicy::Random => self.candidates[(self.rng.next_u64() % n) as usize],
            LbPolicy::LeastRequest { choice_count, .. } if self.weights_equal => {
                let mut chosen = self.candidates[(self.rng.next_u64() % n) as usize];
                for _ in 1..choice_count.max(1) {
                    let sampled = self.candidates[(self.rng.next_u64() % n) as usize];
                    if active[sampled.index()] < active[chosen.index()] {
                        chosen = sampled;
                    }
                }
                chosen
            }
            LbPolicy::RoundRobin | LbPolicy::LeastRequest { .. } => {
                let (policy, weights) = (self.policy, &hosts.weights);
                self.edf
                    .pick_and_add(|h| Self::weight_for(policy, weights, active, h))
                    .expect("the scheduler holds every candidate")
            }
        };
        Pick::Host {
            host,
            panic: self.panic,
        }
    }
}
