//! The kubelet's pieces that decide when a pod is Ready, when a container is killed, and when a
//! crashed container starts again: the probe worker and the container restart back-off.
//!
//! Follows the kubelet of Kubernetes v1.35 (../shared/spec/kubernetes.md §5): probe defaults and
//! minimums (§5.1), one worker per (container, probe type) ticking every `periodSeconds` from
//! its creation with an immediate first run (§5.2), results published after `successThreshold`
//! or `failureThreshold` identical results in a row, and the CrashLoopBackOff sequence 10 s
//! doubling to 300 s, reset after 10 minutes of running (§5.3).
//!
//! Modelling choices, stated: a restart happens exactly at `F + backoff` (the spec leaves the
//! choice between that and the kubelet's 10 s retry cadence: we take the exact instant, so the
//! timeline reads the back-off sequence directly); readiness's extra runs on pod status updates
//! are not modelled (they only make Ready earlier by less than one period when a probe was
//! skipped for the initial delay).
//!
//! Invariants: pure; no randomness; times are [`SimTime`].

use crate::engine::{SimDuration, SimTime};

/// Back-off constants of the kubelet's container restarts.
pub const BACKOFF_INITIAL: SimDuration = SimDuration::from_secs(10);
pub const BACKOFF_MAX: SimDuration = SimDuration::from_secs(300);
/// A container that ran longer than this before exiting starts its back-off over.
pub const BACKOFF_RESET: SimDuration = SimDuration::from_secs(600);

/// Which probe a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

/// A probe's timing fields, defaults applied (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub initial_delay: SimDuration,
    pub period: SimDuration,
    pub timeout: SimDuration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The fields as a manifest gives them (`None`: absent), in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeFields {
    pub initial_delay_seconds: Option<i64>,
    pub period_seconds: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub success_threshold: Option<i64>,
    pub failure_threshold: Option<i64>,
}

/// A probe field the API server would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: Invalid value: {value}: {why}")]
pub struct ProbeError {
    pub field: &'static str,
    pub value: i64,
    pub why: &'static str,
}

impl Probe {
    /// Applies the kubelet defaults and the API server's validation.
    pub fn from_fields(kind: ProbeKind, fields: ProbeFields) -> Result<Probe, ProbeError> {
        let at_least = |field: &'static str,
                        value: Option<i64>,
                        default: i64,
                        minimum: i64|
         -> Result<i64, ProbeError> {
            let value = value.unwrap_or(default);
            if value < minimum {
                let why = if minimum == 0 {
                    "must be greater than or equal to 0"
                } else {
                    "must be greater than or equal to 1"
                };
                return Err(ProbeError { field, value, why });
            }
            Ok(value)
        };
        let initial_delay = at_least("initialDelaySeconds", fields.initial_delay_seconds, 0, 0)?;
        let period = at_least("periodSeconds", fields.period_seconds, 10, 1)?;
        let timeout = at_least("timeoutSeconds", fields.timeout_seconds, 1, 1)?;
        let success_threshold = at_least("successThreshold", fields.success_threshold, 1, 1)?;
        let failure_threshold = at_least("failureThreshold", fields.failure_threshold, 3, 1)?;
        if kind != ProbeKind::Readiness && success_threshold != 1 {
            return Err(ProbeError {
                field: "successThreshold",
                value: success_threshold,
                why: "must be 1",
            });
        }
        let secs = |value: i64| SimDuration::from_secs(value as u64);
        Ok(Probe {
            initial_delay: secs(initial_delay),
            period: secs(period),
            timeout: secs(timeout),
            success_threshold: success_threshold as u32,
            failure_threshold: failure_threshold as u32,
        })
    }
}

/// A probe's result as the kubelet publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Unknown,
    Success,
    Failure,
}

/// What the container is doing when a probe tick comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerRun {
    /// Not running (waiting, or exited).
    NotRunning,
    /// Running since `started_at`; `started` is true once the startup probe succeeded (or
    /// there is none).
    Running { started_at: SimTime, started: bool },
}

/// What a tick changed, for the caller to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Nothing new was published.
    Unchanged,
    /// A new result was published (readiness: Ready or not; startup: Started).
    Published(ProbeResult),
    /// A liveness or startup failure was published: kill the container.
    Kill,
}

/// One probe worker (§5.2).
#[derive(Clone, Debug)]
pub struct ProbeWorker {
    pub kind: ProbeKind,
    pub probe: Probe,
    /// When the worker was created: ticks fall at `created_at + k * period`.
    pub created_at: SimTime,
    published: ProbeResult,
    last: Option<ProbeResult>,
    run_length: u32,
    on_hold: bool,
}

impl ProbeWorker {
    pub fn new(kind: ProbeKind, probe: Probe, created_at: SimTime) -> Self {
        ProbeWorker {
            kind,
            probe,
            created_at,
            published: Self::initial(kind),
            last: None,
            run_length: 0,
            on_hold: false,
        }
    }

    fn initial(kind: ProbeKind) -> ProbeResult {
        match kind {
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }

    /// The published result.
    pub fn result(&self) -> ProbeResult {
        self.published
    }

    /// The tick at or after `t`.
    pub fn next_tick_at_or_after(&self, t: SimTime) -> SimTime {
        if t <= self.created_at {
            return self.created_at;
        }
        let period = self.probe.period.as_nanos().max(1);
        let elapsed = t.since(self.created_at).as_nanos();
        let ticks = elapsed.div_ceil(period);
        self.created_at + SimDuration::from_nanos(ticks * period)
    }

    /// A new container replaced the old one: results start over and a hold is lifted.
    pub fn new_container(&mut self) {
        self.published = Self::initial(self.kind);
        self.last = None;
        self.run_length = 0;
        self.on_hold = false;
    }

    /// One run of the worker at `now`. `probe_succeeds` is asked only when the probe really runs.
    pub fn tick(
        &mut self,
        now: SimTime,
        container: ContainerRun,
        probe_succeeds: impl FnOnce() -> bool,
    ) -> ProbeOutcome {
        if self.on_hold {
            return ProbeOutcome::Unchanged;
        }
        let (started_at, started) = match container {
            ContainerRun::NotRunning => {
                // A stopped container fails readiness at once; other probes wait for it.
                if self.kind == ProbeKind::Readiness && self.published != ProbeResult::Failure {
                    self.published = ProbeResult::Failure;
                    self.last = Some(ProbeResult::Failure);
                    self.run_length = 0;
                    return ProbeOutcome::Published(ProbeResult::Failure);
                }
                return ProbeOutcome::Unchanged;
            }
            ContainerRun::Running {
                started_at,
                started,
            } => (started_at, started),
        };
        // The kubelet compares whole seconds since the start against the initial delay.
        if now.since(started_at).as_secs() < self.probe.initial_delay.as_secs() {
            return ProbeOutcome::Unchanged;
        }
        match self.kind {
            ProbeKind::Startup if started => return ProbeOutcome::Unchanged,
            ProbeKind::Liveness | ProbeKind::Readiness if !started => {
                return ProbeOutcome::Unchanged;
            }
            _ => {}
        }
        let result = if probe_succeeds() {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        };
        if self.last == Some(result) {
            self.run_length = self.run_length.saturating_add(1);
        } else {
            self.last = Some(result);
            self.run_length = 1;
        }
        let threshold = if result == ProbeResult::Success {
            self.probe.success_threshold
        } else {
            self.probe.failure_threshold
        };
        if self.run_length < threshold || self.published == result {
            return ProbeOutcome::Unchanged;
        }
        self.published = result;
        if result == ProbeResult::Failure && self.kind != ProbeKind::Readiness {
            self.on_hold = true;
            return ProbeOutcome::Kill;
        }
        ProbeOutcome::Published(result)
    }
}

/// The instant a readiness probe that always succeeds first reports Ready, for a container
/// started at `started_at` whose worker was created at `worker_created_at` (§5.2, derived).
pub fn ready_time(probe: &Probe, worker_created_at: SimTime, started_at: SimTime) -> SimTime {
    let mut worker = ProbeWorker::new(ProbeKind::Readiness, *probe, worker_created_at);
    let mut tick = worker.next_tick_at_or_after(started_at);
    loop {
        let outcome = worker.tick(
            tick,
            ContainerRun::Running {
                started_at,
                started: true,
            },
            || true,
        );
        if outcome == ProbeOutcome::Published(ProbeResult::Success) {
            return tick;
        }
        tick += probe.period;
    }
}

/// What the kubelet does when it wants to start an exited container again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start it now.
    StartNow,
    /// Stay in CrashLoopBackOff until `until`; `backoff` is the delay the message prints.
    BackOff {
        until: SimTime,
        backoff: SimDuration,
    },
}

/// The per-container back-off entry (§5.3): `None` until the first restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartBackoff {
    entry: Option<(SimDuration, SimTime)>,
}

impl RestartBackoff {
    /// Asked at `now` for a container whose last run finished at `finished_at`. Starting
    /// updates the entry; waiting leaves it.
    pub fn decide(&mut self, finished_at: SimTime, now: SimTime) -> RestartDecision {
        match self.entry {
            Some((backoff, last_update)) if finished_at.since(last_update) <= BACKOFF_RESET => {
                if now.since(finished_at) < backoff {
                    RestartDecision::BackOff {
                        until: finished_at + backoff,
                        backoff,
                    }
                } else {
                    let doubled = SimDuration::from_nanos(backoff.as_nanos().saturating_mul(2));
                    self.entry = Some((doubled.min(BACKOFF_MAX), now));
                    RestartDecision::StartNow
                }
            }
            _ => {
                self.entry = Some((BACKOFF_INITIAL, now));
                RestartDecision::StartNow
            }
        }
    }

    /// The instant the next start will happen for a container that exited at `finished_at`,
    /// without changing the entry: `finished_at` itself on a first or reset restart.
    pub fn next_start(&self, finished_at: SimTime) -> SimTime {
        match self.entry {
            Some((backoff, last_update)) if finished_at.since(last_update) <= BACKOFF_RESET => {
                finished_at + backoff
            }
            _ => finished_at,
        }
    }

    /// The kubelet's message while waiting, e.g. `back-off 20s restarting failed container=app pod=x`.
    pub fn message(backoff: SimDuration, container: &str, pod: &str) -> String {
        format!("back-off {backoff} restarting failed container={container} pod={pod}")
    }
}

#[cfg(test)]
mod tests;
