//! Envoy's outlier detector for one cluster of one proxy, as a pure state machine
//! (`spec/mesh.md` §3; Envoy 1.40 `outlier_detection_impl.cc`).
//!
//! - [`OutlierDetector::report`] takes one upstream attempt's result at time `t`, updates the
//!   host's consecutive counters (§3.2) and handles any event inline (§3.3–§3.5): an already
//!   ejected host ignores it without resetting the counter; otherwise "detected" is counted,
//!   the max-ejection check runs (`100 * (ejected + 1) / total <= max_ejection_percent`, no
//!   eject-at-least-one unless `always_eject_one_host`), enforcement is drawn, and the
//!   counter of that type alone is reset whatever the outcome.
//! - [`OutlierDetector::sweep`] is the interval timer (§3.6–§3.7): per host, uneject when
//!   `now - last_ejection >= min(base * multiplier, max) + jitter`, or decay the multiplier of
//!   a host in service whose last unejection is at least an interval old; then rotate the
//!   success-rate buckets and run success-rate and failure-percentage detection.
//!
//! Where the spec and Envoy's source differ: the spec lists the multiplier decay after the
//! success-rate step; Envoy decays it inside the per-host unejection loop, before success-rate
//! ejections, which is what this model does (it matters only for a host ejected by success
//! rate in the same sweep).
//!
//! Invariants: the number of ejected hosts never exceeds what the max-ejection check allows
//! (with `always_eject_one_host`, one more); unejection happens only in a sweep; the detector
//! draws random numbers only for enforcement percentages strictly between 0 and 100 and for
//! a non-zero jitter, so default configurations consume none.

use rand::Rng;

use super::policy::OutlierConfig;
use super::{HostId, MeshError};
use crate::engine::{SimDuration, SimRng, SimTime};

/// What one upstream attempt reported to its host's monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A response was received with this status.
    Status(u16),
    /// The connection could not be established (or was reset before the response).
    ConnectFailed,
    /// The upstream did not answer in time.
    Timeout,
    /// The connection was established; in split mode this resets the local-origin counter.
    ConnectSucceeded,
}

/// Which detector rule raised an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DetectionType {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
    FailurePercentage,
}

/// What the detector did, one entry per line of Envoy's outlier event log (plus overflows,
/// which Envoy only counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutlierAction {
    /// The host left service.
    Ejected,
    /// Detected and allowed, but the enforcement draw said no (`enforced: false`).
    NotEnforced,
    /// Detected but the max-ejection limit refused it (`ejections_overflow`).
    Overflow,
    /// The host came back into service.
    Unejected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierEvent {
    pub time: SimTime,
    pub host: HostId,
    pub action: OutlierAction,
    /// `None` for unejections.
    pub detection: Option<DetectionType>,
    /// The host's lifetime ejection count after this event (the event log's `num_ejections`).
    pub num_ejections: u32,
}

/// Up to two events from one report (a gateway event and a 5xx event can fire together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    events: [Option<OutlierEvent>; 2],
}

impl Reported {
    fn push(&mut self, event: OutlierEvent) {
        let slot = self
            .events
            .iter_mut()
            .find(|e| e.is_none())
            .expect("a report raises at most two events");
        *slot = Some(event);
    }

    pub fn iter(&self) -> impl Iterator<Item = &OutlierEvent> {
        self.events.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.events[0].is_none()
    }

    /// Whether any event changed a host's ejection state (what the load balancer must learn).
    pub fn changed_health(&self) -> bool {
        self.iter().any(|e| e.action == OutlierAction::Ejected)
    }
}

/// Counters under `cluster.<name>.outlier_detection.`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutlierStats {
    pub ejections_active: u32,
    pub ejections_enforced_total: u64,
    pub ejections_overflow: u64,
    pub ejections_enforced_consecutive_5xx: u64,
    pub ejections_detected_consecutive_5xx: u64,
    pub ejections_enforced_consecutive_gateway_failure: u64,
    pub ejections_detected_consecutive_gateway_failure: u64,
    pub ejections_enforced_consecutive_local_origin_failure: u64,
    pub ejections_detected_consecutive_local_origin_failure: u64,
    pub ejections_enforced_success_rate: u64,
    pub ejections_detected_success_rate: u64,
    pub ejections_enforced_failure_percentage: u64,
    pub ejections_detected_failure_percentage: u64,
}

#[derive(Clone, Debug, Default)]
struct HostMonitor {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local_origin: u32,
    ejected: bool,
    /// The backoff multiplier of §3.5 (Envoy's `ejectTimeBackoff`).
    multiplier: u32,
    num_ejections: u32,
    last_ejection: Option<SimTime>,
    last_unejection: Option<SimTime>,
    jitter: SimDuration,
    /// Success-rate buckets: the one being filled, and the last full interval's.
    current_total: u64,
    current_success: u64,
    previous_total: u64,
    previous_success: u64,
    /// The host left the endpoints; it is never reported on again.
    removed: bool,
}

/// The detector of one cluster.
#[derive(Clone, Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    max_ejection_time: SimDuration,
    hosts: Vec<HostMonitor>,
    ejected_count: u32,
    /// Hosts that left the endpoints (they keep their index; ids are never reused).
    removed_count: usize,
    rng: SimRng,
    stats: OutlierStats,
}

impl OutlierDetector {
    /// A detector for `n_hosts` hosts; refuses a config Envoy would refuse.
    pub fn new(config: OutlierConfig, n_hosts: u32, rng: SimRng) -> Result<Self, MeshError> {
        config.validate()?;
        let max_ejection_time = config.effective_max_ejection_time();
        Ok(OutlierDetector {
            config,
            max_ejection_time,
            hosts: vec![HostMonitor::default(); n_hosts as usize],
            ejected_count: 0,
            removed_count: 0,
            rng,
            stats: OutlierStats::default(),
        })
    }

    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    pub fn stats(&self) -> &OutlierStats {
        &self.stats
    }

    pub fn is_ejected(&self, host: HostId) -> bool {
        self.hosts[host.index()].ejected
    }

    pub fn ejected_count(&self) -> u32 {
        self.ejected_count
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// The health view to deliver to the load balancer: `true` for hosts in service.
    pub fn health_view(&self, out: &mut Vec<bool>) {
        out.clear();
        out.extend(self.hosts.iter().map(|h| !h.ejected));
    }

    /// The host's current backoff multiplier (for tests and `explain`).
    pub fn multiplier(&self, host: HostId) -> u32 {
        self.hosts[host.index()].multiplier
    }

    /// When the host's current ejection began; `None` while it is in service.
    pub fn ejected_at(&self, host: HostId) -> Option<SimTime> {
        let monitor = &self.hosts[host.index()];
        monitor.last_ejection.filter(|_| monitor.ejected)
    }

    /// When the host, if ejected, becomes eligible for unejection (the next sweep at or after
    /// this instant brings it back).
    pub fn eligible_for_unejection_at(&self, host: HostId) -> Option<SimTime> {
        let monitor = &self.hosts[host.index()];
        let ejected_at = monitor.last_ejection.filter(|_| monitor.ejected)?;
        Some(ejected_at + self.ejection_duration(monitor))
    }

    /// Removes a host (it left the endpoints): it no longer counts toward the ejection limit,
    /// and an ejection it was serving ends with it, as Envoy drops the host's monitor.
    pub fn remove_host(&mut self, host: HostId) {
        let monitor = &mut self.hosts[host.index()];
        if monitor.removed {
            return;
        }
        monitor.removed = true;
        if std::mem::replace(&mut monitor.ejected, false) {
            self.ejected_count -= 1;
        }
        self.removed_count += 1;
    }

    /// Adds a host (an EDS membership change); it starts in service with clean counters.
    pub fn add_host(&mut self) -> HostId {
        self.hosts.push(HostMonitor::default());
        HostId(self.hosts.len() as u32 - 1)
    }

    fn ejection_duration(&self, monitor: &HostMonitor) -> SimDuration {
        self.config
            .base_ejection_time
            .saturating_mul(u64::from(monitor.multiplier))
            .min(self.max_ejection_time)
            + monitor.jitter
    }

    /// Reports one attempt's result on `host` at `now`, handling any event it raises.
    #[inline]
    pub fn report(&mut self, now: SimTime, host: HostId, result: AttemptResult) -> Reported {
        let mut reported = Reported::default();
        if self.hosts[host.index()].removed {
            return reported;
        }
        if self.config.split_external_local_origin_errors {
            match result {
                AttemptResult::Status(status) => self.put_status(now, host, status, &mut reported),
                AttemptResult::ConnectFailed | AttemptResult::Timeout => {
                    let monitor = &mut self.hosts[host.index()];
                    monitor.consecutive_local_origin += 1;
                    if monitor.consecutive_local_origin
                        == self.config.consecutive_local_origin_failure
                    {
                        self.on_consecutive(
                            now,
                            host,
                            DetectionType::ConsecutiveLocalOriginFailure,
                            &mut reported,
                        );
                    }
                }
                AttemptResult::ConnectSucceeded => {
                    self.hosts[host.index()].consecutive_local_origin = 0
                }
            }
        } else {
            // Without the split, local-origin failures stand in for the status they cause.
            let status = match result {
                AttemptResult::Status(status) => status,
                AttemptResult::ConnectFailed => 503,
                AttemptResult::Timeout => 504,
                AttemptResult::ConnectSucceeded => return reported,
            };
            self.put_status(now, host, status, &mut reported);
        }
        reported
    }

    fn put_status(&mut self, now: SimTime, host: HostId, status: u16, reported: &mut Reported) {
        let monitor = &mut self.hosts[host.index()];
        monitor.current_total += 1;
        if !(500..600).contains(&status) {
            monitor.current_success += 1;
            monitor.consecutive_5xx = 0;
            monitor.consecutive_gateway = 0;
            return;
        }
        let mut gateway_fired = false;
        if matches!(status, 502..=504) {
            monitor.consecutive_gateway += 1;
            gateway_fired = monitor.consecutive_gateway == self.config.consecutive_gateway_failure;
        } else {
            monitor.consecutive_gateway = 0;
        }
        monitor.consecutive_5xx += 1;
        let five_xx_fired = monitor.consecutive_5xx == self.config.consecutive_5xx;
        if gateway_fired {
            self.on_consecutive(
                now,
                host,
                DetectionType::ConsecutiveGatewayFailure,
                reported,
            );
        }
        if five_xx_fired {
            self.on_consecutive(now, host, DetectionType::Consecutive5xx, reported);
        }
    }

    fn on_consecutive(
        &mut self,
        now: SimTime,
        host: HostId,
        detection: DetectionType,
        reported: &mut Reported,
    ) {
        if self.hosts[host.index()].ejected {
            return;
        }
        if let Some(event) = self.detect_and_eject(now, host, detection) {
            reported.push(event);
        }
        let monitor = &mut self.hosts[host.index()];
        match detection {
            DetectionType::Consecutive5xx => monitor.consecutive_5xx = 0,
            DetectionType::ConsecutiveGatewayFailure => monitor.consecutive_gateway = 0,
            DetectionType::ConsecutiveLocalOriginFailure => monitor.consecutive_local_origin = 0,
            DetectionType::SuccessRate | DetectionType::FailurePercentage => {}
        }
    }

    fn enforcement_percent(&self, detection: DetectionType) -> u32 {
        match detection {
            DetectionType::Consecutive5xx => self.config.enforcing_consecutive_5xx,
            DetectionType::ConsecutiveGatewayFailure => {
                self.config.enforcing_consecutive_gateway_failure
            }
            DetectionType::ConsecutiveLocalOriginFailure => {
                self.config.enforcing_consecutive_local_origin_failure
            }
            DetectionType::SuccessRate => self.config.enforcing_success_rate,
            DetectionType::FailurePercentage => self.config.enforcing_failure_percentage,
        }
    }

    /// Counts the detection, then runs the max-ejection check and the enforcement draw.
    fn detect_and_eject(
        &mut self,
        now: SimTime,
        host: HostId,
        detection: DetectionType,
    ) -> Option<OutlierEvent> {
        let stats = &mut self.stats;
        match detection {
            DetectionType::Consecutive5xx => stats.ejections_detected_consecutive_5xx += 1,
            DetectionType::ConsecutiveGatewayFailure => {
                stats.ejections_detected_consecutive_gateway_failure += 1
            }
            DetectionType::ConsecutiveLocalOriginFailure => {
                stats.ejections_detected_consecutive_local_origin_failure += 1
            }
            DetectionType::SuccessRate => stats.ejections_detected_success_rate += 1,
            DetectionType::FailurePercentage => stats.ejections_detected_failure_percentage += 1,
        }
        let total = (self.hosts.len() - self.removed_count) as u64;
        let max_percent = u64::from(self.config.max_ejection_percent.min(100));
        // Integer form of `100 * (ejected + 1) / total <= max`, exact where Envoy's double is.
        let allowed = 100 * (u64::from(self.ejected_count) + 1) <= max_percent * total
            || (self.config.always_eject_one_host && self.ejected_count == 0);
        let num_ejections = self.hosts[host.index()].num_ejections;
        let event = |action, num_ejections| OutlierEvent {
            time: now,
            host,
            action,
            detection: Some(detection),
            num_ejections,
        };
        if !allowed {
            self.stats.ejections_overflow += 1;
            return Some(event(OutlierAction::Overflow, num_ejections));
        }
        let percent = self.enforcement_percent(detection);
        let enforce = match percent {
            0 => false,
            100.. => true,
            p => self.rng.next_u64() % 100 < u64::from(p),
        };
        if !enforce {
            return Some(event(OutlierAction::NotEnforced, num_ejections));
        }
        self.eject(now, host, detection);
        Some(event(
            OutlierAction::Ejected,
            self.hosts[host.index()].num_ejections,
        ))
    }

    fn eject(&mut self, now: SimTime, host: HostId, detection: DetectionType) {
        let base_ns = self.config.base_ejection_time.as_nanos();
        let max_ns = self.max_ejection_time.as_nanos();
        // Envoy draws the jitter in whole milliseconds: `random % (max_jitter_ms + 1)`.
        let jitter_ms = self.config.max_ejection_time_jitter.as_millis();
        let jitter = if jitter_ms == 0 {
            SimDuration::ZERO
        } else {
            SimDuration::from_millis(self.rng.next_u64() % (jitter_ms + 1))
        };
        let monitor = &mut self.hosts[host.index()];
        monitor.ejected = true;
        monitor.num_ejections += 1;
        monitor.last_ejection = Some(now);
        monitor.jitter = jitter;
        if u64::from(monitor.multiplier).saturating_mul(base_ns) < max_ns.saturating_add(base_ns) {
            monitor.multiplier += 1;
        }
        self.ejected_count += 1;
        let stats = &mut self.stats;
        stats.ejections_active = self.ejected_count;
        stats.ejections_enforced_total += 1;
        match detection {
            DetectionType::Consecutive5xx => stats.ejections_enforced_consecutive_5xx += 1,
            DetectionType::ConsecutiveGatewayFailure => {
                stats.ejections_enforced_consecutive_gateway_failure += 1
            }
            DetectionType::ConsecutiveLocalOriginFailure => {
                stats.ejections_enforced_consecutive_local_origin_failure += 1
            }
            DetectionType::SuccessRate => stats.ejections_enforced_success_rate += 1,
            DetectionType::FailurePercentage => stats.ejections_enforced_failure_percentage += 1,
        }
    }

    /// The interval timer firing at `now`: unejections and multiplier decay, then the
    /// success-rate and failure-percentage rules. Events are appended to `events` in host order.
    pub fn sweep(&mut self, now: SimTime, events: &mut Vec<OutlierEvent>) {
        for index in 0..self.hosts.len() {
            let monitor = &self.hosts[index];
            if !monitor.ejected {
                if monitor
                    .last_unejection
                    .is_some_and(|at| now.since(at) >= self.config.interval)
                {
                    let monitor = &mut self.hosts[index];
                    monitor.multiplier = monitor.multiplier.saturating_sub(1);
                }
            } else if let Some(ejected_at) = monitor.last_ejection
                && now.since(ejected_at) >= self.ejection_duration(monitor)
            {
                let monitor = &mut self.hosts[index];
                monitor.ejected = false;
                monitor.consecutive_5xx = 0;
                monitor.consecutive_gateway = 0;
                monitor.consecutive_local_origin = 0;
                monitor.last_unejection = Some(now);
                self.ejected_count -= 1;
                self.stats.ejections_active = self.ejected_count;
                events.push(OutlierEvent {
                    time: now,
                    host: HostId(index as u32),
                    action: OutlierAction::Unejected,
                    detection: None,
                    num_ejections: monitor.num_ejections,
                });
            }
            let monitor = &mut self.hosts[index];
            monitor.previous_total = std::mem::take(&mut monitor.current_total);
            monitor.previous_success = std::mem::take(&mut monitor.current_success);
        }
        self.success_rate_rules(now, events);
    }

    /// §3.7: both rules read the interval that just ended.
    fn success_rate_rules(&mut self, now: SimTime, events: &mut Vec<OutlierEvent>) {
        let config = &self.config;
        let n_hosts = self.hosts.len() as u64;
        if n_hosts < u64::from(config.success_rate_minimum_hosts)
            && n_hosts < u64::from(config.failure_percentage_minimum_hosts)
        {
            return;
        }
        let sr_volume = u64::from(config.success_rate_request_volume.max(1));
        let fp_volume = u64::from(config.failure_percentage_request_volume.max(1));
        let mut success_rate_hosts: Vec<(HostId, f64)> = Vec::new();
        let mut failure_percentage_hosts: Vec<(HostId, f64)> = Vec::new();
        for (index, monitor) in self.hosts.iter().enumerate() {
            if monitor.ejected || monitor.previous_total == 0 {
                continue;
            }
            let rate = 100.0 * monitor.previous_success as f64 / monitor.previous_total as f64;
            if monitor.previous_total >= sr_volume {
                success_rate_hosts.push((HostId(index as u32), rate));
            }
            if monitor.previous_total >= fp_volume {
                failure_percentage_hosts.push((HostId(index as u32), rate));
            }
        }
        if !success_rate_hosts.is_empty()
            && success_rate_hosts.len() as u64 >= u64::from(config.success_rate_minimum_hosts)
        {
            let count = success_rate_hosts.len() as f64;
            let mean = success_rate_hosts.iter().map(|(_, r)| r).sum::<f64>() / count;
            let variance = success_rate_hosts
                .iter()
                .map(|(_, r)| (r - mean) * (r - mean))
                .sum::<f64>()
                / count;
            let threshold =
                mean - f64::from(config.success_rate_stdev_factor) / 1000.0 * variance.sqrt();
            for &(host, rate) in &success_rate_hosts {
                if rate < threshold && !self.hosts[host.index()].ejected {
                    events.extend(self.detect_and_eject(now, host, DetectionType::SuccessRate));
                }
            }
        }
        let config = &self.config;
        if !failure_percentage_hosts.is_empty()
            && failure_percentage_hosts.len() as u64
                >= u64::from(config.failure_percentage_minimum_hosts)
        {
            let threshold = f64::from(config.failure_percentage_threshold);
            for &(host, rate) in &failure_percentage_hosts {
                if 100.0 - rate >= threshold && !self.hosts[host.index()].ejected {
                    events.extend(self.detect_and_eject(
                        now,
                        host,
                        DetectionType::FailurePercentage,
                    ));
                }
            }
        }
    }
}
