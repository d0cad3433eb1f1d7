//! Request scripts for one cluster (`twin mesh simulate`, `twin mesh conformance`): the file
//! format (`kind: MeshScript`, documented with examples in `docs/mesh-script.md`), its
//! validation, and a run of the mesh model alone on it ([`simulate`]): [`Upstream`] with its
//! balancer, pools, outlier detector and merge window, driven on the engine.
//!
//! A script names the hosts of the cluster and how each answers over time (status and latency,
//! changed at an instant or from a request index on), and the requests: how many, when
//! (open loop at a rate or at listed instants, or closed loop with a number of clients and a
//! gap), with which path and headers. The same compiled [`MeshScript`] drives the real Envoy
//! in `live::conformance`, and both arms return a [`ScriptRun`] of the same shape, so that
//! `mesh::conformance` can compare them.
//!
//! Invariants: a script that loads is bounded (at most [`MAX_REQUESTS`] requests and
//! [`MAX_HOSTS`] hosts); a host's behaviour for a request is read when the request reaches
//! it, in both arms; the model run is deterministic in its seed and reads no clock; the
//! route has no retries (Istio's default retries fire on connect failures and resets only,
//! which a script's hosts never produce), so every request is one attempt.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::outlier::{AttemptResult, OutlierAction, OutlierEvent};
use super::policy::ClusterPolicy;
use super::pool::ConnId;
use super::upstream::{AttemptId, Upstream, UpstreamEvent};
use super::{HostId, MeshError};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{Engine, RngTree, SimDuration, SimTime, parse_duration};
use crate::manifests::{self, Sourced};

/// The apiVersion of twin's own files.
pub const API_VERSION: &str = "twin.sophia.dev/v1";
/// The most requests one script may send (every load loop is bounded).
pub const MAX_REQUESTS: u64 = 100_000;
/// The most hosts one script may name.
pub const MAX_HOSTS: usize = 64;

/// A duration written as a string (`20ms`, `1.5s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub SimDuration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshScriptFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the model's random streams (balancer picks, round-robin start).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long the model takes to open an upstream connection (default 0).
    #[serde(default)]
    pub connect_time: Option<Dur>,
    pub hosts: Vec<HostSpec>,
    pub requests: RequestsSpec,
}

fn default_seed() -> u64 {
    1
}

fn default_status() -> u16 {
    200
}

fn default_path() -> String {
    "/".into()
}

/// One host (endpoint) of the cluster, in the cluster's endpoint order.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// Status of every answer until a change says otherwise (default 200).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Time the host takes to answer (default 0).
    #[serde(default)]
    pub latency: Option<Dur>,
    #[serde(default)]
    pub changes: Vec<ChangeSpec>,
}

/// A change of a host's behaviour: from an instant (`at`, since the first request) or from the
/// request with index `fromRequest` on (applied just before that request is sent).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeSpec {
    #[serde(default)]
    pub at: Option<Dur>,
    #[serde(default)]
    pub from_request: Option<u64>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency: Option<Dur>,
}

/// The requests: exactly one of `rate`, `times`, or `concurrency` (closed loop, with `gap`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestsSpec {
    /// How many requests (required unless `times` lists them).
    #[serde(default)]
    pub count: Option<u64>,
    /// Open loop: request `i` is sent at `i / rate` seconds [req/s].
    #[serde(default)]
    pub rate: Option<f64>,
    /// Open loop: request `i` is sent at `times[i]`.
    #[serde(default)]
    pub times: Option<Vec<Dur>>,
    /// Closed loop: this many clients, each sending its next request `gap` after its answer.
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub gap: Option<Dur>,
    #[serde(default = "default_path")]
    pub path: String,
    /// Headers on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// When a change applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    At(SimDuration),
    FromRequest(u64),
}

/// What a host answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBehaviour {
    pub status: u16,
    pub latency: SimDuration,
}

/// One change, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub trigger: Trigger,
    pub status: Option<u16>,
    pub latency: Option<SimDuration>,
}

impl Change {
    pub fn apply(&self, behaviour: &mut HostBehaviour) {
        if let Some(status) = self.status {
            behaviour.status = status;
        }
        if let Some(latency) = self.latency {
            behaviour.latency = latency;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostScript {
    pub name: String,
    pub initial: HostBehaviour,
    /// In file order; a later change wins when two apply at once.
    pub changes: Vec<Change>,
}

/// When requests are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Request `i` at `offsets[i]` after the first, whatever the answers.
    OpenLoop(Vec<SimDuration>),
    /// `clients` clients, each sending its next request `gap` after its previous answer.
    ClosedLoop { clients: u32, gap: SimDuration },
}

/// A validated script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshScript {
    pub seed: u64,
    pub connect_time: SimDuration,
    pub hosts: Vec<HostScript>,
    pub count: u64,
    pub schedule: Schedule,
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

/// Why a script cannot be used: every problem found, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("the mesh script cannot be used")]
pub struct ScriptError(#[source] pub Diagnostics);

impl From<manifests::ManifestError> for ScriptError {
    fn from(err: manifests::ManifestError) -> Self {
        ScriptError(Diagnostics(err.diagnostics().to_vec()))
    }
}

/// Reads and validates a script file.
pub fn load(path: impl AsRef<Path>) -> Result<MeshScript, ScriptError> {
    let file: Sourced<MeshScriptFile> = manifests::load_typed(path.as_ref())?;
    validate(&file)
}

/// [`load`] on text, as if read from `name`.
pub fn from_str(name: &Path, text: &str) -> Result<MeshScript, ScriptError> {
    let file: Sourced<MeshScriptFile> = manifests::typed_from_str(name, text)?;
    validate(&file)
}

fn status_ok(status: u16) -> bool {
    (100..=599).contains(&status)
}

/// Checks a parsed script, collecting every problem.
pub fn validate(file: &Sourced<MeshScriptFile>) -> Result<MeshScript, ScriptError> {
    let mut problems = Vec::new();
    let mut bad = |field: String, message: String| {
        problems.push(Diagnostic::error(
            file.field_location(&field),
            field,
            message,
        ));
    };
    if file.api_version != API_VERSION {
        bad(
            "apiVersion".into(),
            format!("expected {API_VERSION:?}, found {:?}", file.api_version),
        );
    }
    if file.kind != "MeshScript" {
        bad(
            "kind".into(),
            format!("expected \"MeshScript\", found {:?}", file.kind),
        );
    }
    if file.hosts.is_empty() {
        bad("hosts".into(), "name at least one host".into());
    }
    if file.hosts.len() > MAX_HOSTS {
        bad(
            "hosts".into(),
            format!("{} hosts; at most {MAX_HOSTS}", file.hosts.len()),
        );
    }
    let requests = &file.requests;
    let count = match (&requests.times, requests.count) {
        (Some(times), None) => times.len() as u64,
        (Some(times), Some(count)) if count == times.len() as u64 => count,
        (Some(times), Some(count)) => {
            bad(
                "requests.count".into(),
                format!("count {count} but {} times listed", times.len()),
            );
            count
        }
        (None, Some(count)) => count,
        (None, None) => {
            bad(
                "requests.count".into(),
                "say how many requests (count), or list their times".into(),
            );
            0
        }
    };
    if count == 0 && requests.count.is_some() {
        bad("requests.count".into(), "at least one request".into());
    }
    if count > MAX_REQUESTS {
        bad(
            "requests.count".into(),
            format!("{count} requests; at most {MAX_REQUESTS}"),
        );
    }
    let modes = [
        requests.rate.is_some(),
        requests.times.is_some(),
        requests.concurrency.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if modes != 1 {
        bad(
            "requests".into(),
            "set exactly one of rate (open loop), times (open loop) or concurrency (closed loop)"
                .into(),
        );
    }
    if requests.gap.is_some() && requests.concurrency.is_none() {
        bad(
            "requests.gap".into(),
            "gap is the closed-loop pause; it needs concurrency".into(),
        );
    }
    let mut schedule = Schedule::OpenLoop(Vec::new());
    if let Some(rate) = requests.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
            bad(
                "requests.rate".into(),
                format!("rate {rate} must be above 0 and at most 10000 req/s"),
            );
        } else if count <= MAX_REQUESTS {
            schedule = Schedule::OpenLoop(
                (0..count)
                    .map(|i| SimDuration::from_secs_f64(i as f64 / rate))
                    .collect(),
            );
        }
    }
    if let Some(times) = &requests.times {
        for (idx, pair) in times.windows(2).enumerate() {
            if pair[1] < pair[0] {
                bad(
                    format!("requests.times[{}]", idx + 1),
                    format!(
                        "{} is before the time listed before it, {}",
                        pair[1].0, pair[0].0
                    ),
                );
            }
        }
        schedule = Schedule::OpenLoop(times.iter().map(|t| t.0).collect());
    }
    if let Some(clients) = requests.concurrency {
        if clients == 0 || clients > 1_000 {
            bad(
                "requests.concurrency".into(),
                format!("concurrency {clients} must be 1 to 1000"),
            );
        }
        schedule = Schedule::ClosedLoop {
            clients,
            gap: requests.gap.map_or(SimDuration::ZERO, |g| g.0),
        };
    }
    if !requests.path.starts_with('/') {
        bad(
            "requests.path".into(),
            format!("{:?} must start with /", requests.path),
        );
    }
    for name in requests.headers.keys() {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            bad(
                format!("requests.headers.{name}"),
                format!("{name:?} is not a header name"),
            );
        }
    }
    let mut hosts = Vec::new();
    for (idx, host) in file.hosts.iter().enumerate() {
        let base = format!("hosts[{idx}]");
        if !status_ok(host.status) {
            bad(
                format!("{base}.status"),
                format!("{} is not an HTTP status", host.status),
            );
        }
        let mut changes = Vec::new();
        for (cidx, change) in host.changes.iter().enumerate() {
            let cbase = format!("{base}.changes[{cidx}]");
            let trigger = match (change.at, change.from_request) {
                (Some(at), None) => Trigger::At(at.0),
                (None, Some(index)) => {
                    if index >= count && count > 0 {
                        bad(
                            format!("{cbase}.fromRequest"),
                            format!("request {index} is past the last request ({})", count - 1),
                        );
                    }
                    Trigger::FromRequest(index)
                }
                _ => {
                    bad(
                        cbase.clone(),
                        "set exactly one of at (an instant) or fromRequest (a request index)"
                            .into(),
                    );
                    continue;
                }
            };
            if change.status.is_none() && change.latency.is_none() {
                bad(
                    cbase.clone(),
                    "a change sets status, latency or both".into(),
                );
            }
            if let Some(status) = change.status.filter(|s| !status_ok(*s)) {
                bad(
                    format!("{cbase}.status"),
                    format!("{status} is not an HTTP status"),
                );
            }
            changes.push(Change {
                trigger,
                status: change.status,
                latency: change.latency.map(|l| l.0),
            });
        }
        hosts.push(HostScript {
            name: host.name.clone().unwrap_or_else(|| format!("host-{idx}")),
            initial: HostBehaviour {
                status: host.status,
                latency: host.latency.map_or(SimDuration::ZERO, |l| l.0),
            },
            changes,
        });
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        return Err(ScriptError(Diagnostics(problems)));
    }
    Ok(MeshScript {
        seed: file.seed,
        connect_time: file.connect_time.map_or(SimDuration::ZERO, |d| d.0),
        hosts,
        count,
        schedule,
        path: requests.path.clone(),
        headers: requests.headers.clone(),
    })
}

/// The script `twin mesh conformance` runs when it is given none: `n_hosts` hosts answering
/// in 2 ms, the first of them 503 throughout, at 50 requests per second for long enough to see
/// its first ejection, its return, its second ejection and the end of that one: three base
/// ejection times and three intervals, plus 2 s (at most 60 s of traffic). Without outlier
/// detection, 200 requests.
pub fn built_in(policy: &ClusterPolicy, n_hosts: u32) -> MeshScript {
    let rate = 50.0;
    let span_secs = match &policy.outlier {
        Some(outlier) => (3.0 * outlier.base_ejection_time.as_secs_f64()
            + 3.0 * outlier.interval.as_secs_f64()
            + 2.0)
            .min(60.0),
        None => 4.0,
    };
    let count = (span_secs * rate).ceil() as u64;
    let hosts = (0..n_hosts.max(1))
        .map(|idx| HostScript {
            name: format!("host-{idx}"),
            initial: HostBehaviour {
                status: if idx == 0 { 503 } else { 200 },
                latency: SimDuration::from_millis(2),
            },
            changes: Vec::new(),
        })
        .collect();
    MeshScript {
        seed: 1,
        connect_time: SimDuration::ZERO,
        hosts,
        count,
        schedule: Schedule::OpenLoop(
            (0..count)
                .map(|i| SimDuration::from_secs_f64(i as f64 / rate))
                .collect(),
        ),
        path: "/".into(),
        headers: BTreeMap::new(),
    }
}

/// What happened to one request, in either arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub index: u64,
    /// When it was sent, since the first request [ns].
    pub sent_at: SimDuration,
    /// When its answer arrived.
    pub done_at: SimDuration,
    /// The host that answered (the access log's upstream host); `None` when the mesh answered.
    pub host: Option<u32>,
    /// 0 when no answer came back at all (a transport failure).
    pub status: u16,
    /// Envoy's response flags (`-` for none, `UO`, `UH`).
    pub flags: String,
}

/// An enforced ejection or an unejection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEvent {
    pub time: SimDuration,
    pub host: u32,
    pub ejected: bool,
    /// The detector for an ejection (`CONSECUTIVE_5XX`, ...), empty for an unejection.
    pub detection: String,
}

/// One arm's run of a script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptRun {
    /// By request index.
    pub requests: Vec<RequestRecord>,
    /// In time order, only up to the last answer.
    pub events: Vec<HostEvent>,
}

impl ScriptRun {
    /// The index of the last request sent at or before `time` (0 when none was).
    pub fn request_index_at(&self, time: SimDuration) -> u64 {
        let sent = self.requests.partition_point(|r| r.sent_at <= time);
        sent.saturating_sub(1) as u64
    }

    /// When the last answer arrived.
    pub fn end(&self) -> SimDuration {
        self.requests
            .iter()
            .map(|r| r.done_at)
            .max()
            .unwrap_or_default()
    }

    /// The run as JSON: `requests` (index, sentAt [s], host, status, flags) and `events`
    /// (time [s], host, action `EJECT` or `UNEJECT`, detection, request index), times at
    /// microsecond precision so that the output is stable.
    pub fn to_json(&self) -> serde_json::Value {
        let secs = |d: SimDuration| (d.as_nanos() / 1_000) as f64 / 1e6;
        let requests: Vec<serde_json::Value> = self
            .requests
            .iter()
            .map(|r| {
                serde_json::json!({
                    "index": r.index,
                    "sentAt": secs(r.sent_at),
                    "doneAt": secs(r.done_at),
                    "host": r.host,
                    "status": r.status,
                    "flags": r.flags,
                })
            })
            .collect();
        let events: Vec<serde_json::Value> = self
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "time": secs(e.time),
                    "host": e.host,
                    "action": if e.ejected { "EJECT" } else { "UNEJECT" },
                    "detection": e.detection,
                    "atRequest": self.request_index_at(e.time),
                })
            })
            .collect();
        serde_json::json!({"requests": requests, "events": events})
    }

    /// Drops the events after the last answer, so that both arms cover the same span.
    pub fn trim_events(&mut self) {
        let end = self.end();
        self.events.retain(|e| e.time <= end);
    }
}

/// The detector's name as Envoy's event log writes it.
pub fn detection_name(event: &OutlierEvent) -> String {
    use super::outlier::DetectionType::*;
    match event.detection {
        Some(Consecutive5xx) => "CONSECUTIVE_5XX",
        Some(ConsecutiveGatewayFailure) => "CONSECUTIVE_GATEWAY_FAILURE",
        Some(ConsecutiveLocalOriginFailure) => "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
        Some(SuccessRate) => "SUCCESS_RATE",
        Some(FailurePercentage) => "FAILURE_PERCENTAGE",
        None => "",
    }
    .to_string()
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    /// Send request `index` (for client `client` in closed loop).
    Send {
        index: u64,
        client: u32,
    },
    Change {
        host: u32,
        change: usize,
    },
    Connected(ConnId),
    Finish {
        attempt: AttemptId,
        host: HostId,
        conn: ConnId,
        status: u16,
    },
    Retry(AttemptId),
    Sweep,
    Merge,
}

/// The request carried through the cluster: its index and its client (closed loop).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    index: u64,
    client: u32,
}

/// Runs the mesh model alone on `script` under `policy`, with the random streams of `seed`;
/// the detector's first sweep is one interval after the first request.
pub fn simulate(
    policy: &ClusterPolicy,
    script: &MeshScript,
    seed: u64,
) -> Result<ScriptRun, MeshError> {
    simulate_with_first_sweep(policy, script, seed, None)
}

/// [`simulate`] with the detector's first sweep at `first_sweep` after the first request
/// (then every interval). Envoy arms its interval timer when the cluster is created, before
/// any request, so a comparison with a real run takes that phase from the real run.
pub fn simulate_with_first_sweep(
    policy: &ClusterPolicy,
    script: &MeshScript,
    seed: u64,
    first_sweep: Option<SimDuration>,
) -> Result<ScriptRun, MeshError> {
    let tree = RngTree::new(seed);
    let n_hosts = script.hosts.len() as u32;
    let mut upstream: Upstream<InFlight> =
        Upstream::new(policy, n_hosts, &tree.child("mesh/script"))?.with_outlier_log();
    let mut behaviour: Vec<HostBehaviour> = script.hosts.iter().map(|h| h.initial).collect();
    // Changes by request index: (index, host, change), applied before that request is sent.
    let mut by_request: Vec<(u64, u32, usize)> = Vec::new();
    let mut engine: Engine<Ev> = Engine::new();
    for (host_idx, host) in script.hosts.iter().enumerate() {
        for (change_idx, change) in host.changes.iter().enumerate() {
            match change.trigger {
                Trigger::At(at) => engine.scheduler().at(
                    SimTime::ZERO + at,
                    Ev::Change {
                        host: host_idx as u32,
                        change: change_idx,
                    },
                ),
                Trigger::FromRequest(index) => {
                    by_request.push((index, host_idx as u32, change_idx))
                }
            }
        }
    }
    by_request.sort();
    let mut next_change = 0;
    let mut next_index = 0u64;
    match &script.schedule {
        Schedule::OpenLoop(offsets) => {
            for (index, offset) in offsets.iter().enumerate() {
                engine.scheduler().at(
                    SimTime::ZERO + *offset,
                    Ev::Send {
                        index: index as u64,
                        client: 0,
                    },
                );
            }
            next_index = script.count;
        }
        Schedule::ClosedLoop { clients, .. } => {
            for client in 0..*clients {
                if next_index < script.count {
                    engine.scheduler().at(
                        SimTime::ZERO,
                        Ev::Send {
                            index: next_index,
                            client,
                        },
                    );
                    next_index += 1;
                }
            }
        }
    }
    if let Some(interval) = upstream.sweep_interval() {
        engine
            .scheduler()
            .at(SimTime::ZERO + first_sweep.unwrap_or(interval), Ev::Sweep);
    }
    let gap = match script.schedule {
        Schedule::ClosedLoop { gap, .. } => Some(gap),
        Schedule::OpenLoop(_) => None,
    };
    let mut requests: Vec<Option<RequestRecord>> = vec![None; script.count as usize];
    let mut answered = 0u64;
    let mut out = Vec::new();
    // Bounded: every request is answered within its host's latency (no timeouts), so the run
    // ends when the last answer is in; the horizon only guards against a model bug.
    let horizon = SimTime::from_secs(365 * 86_400);
    let mut stopped = false;
    engine.run_until(horizon, |scheduler, event| {
        if stopped {
            return;
        }
        let now = scheduler.now();
        let since_start = now.since(SimTime::ZERO);
        match event {
            Ev::Send { index, client } => {
                while next_change < by_request.len() && by_request[next_change].0 <= index {
                    let (_, host, change) = by_request[next_change];
                    script.hosts[host as usize].changes[change]
                        .apply(&mut behaviour[host as usize]);
                    next_change += 1;
                }
                let host = upstream.send(InFlight { index, client }, &mut out);
                requests[index as usize] = Some(RequestRecord {
                    index,
                    sent_at: since_start,
                    done_at: since_start,
                    host: host.map(|h| h.0),
                    status: 0,
                    flags: "-".into(),
                });
            }
            Ev::Change { host, change } => {
                script.hosts[host as usize].changes[change].apply(&mut behaviour[host as usize]);
            }
            Ev::Connected(conn) => upstream.connected(conn, &mut out),
            Ev::Finish {
                attempt,
                host,
                conn,
                status,
            } => upstream.finished(
                now,
                attempt,
                host,
                conn,
                AttemptResult::Status(status),
                &mut out,
            ),
            Ev::Retry(attempt) => {
                upstream.retry(attempt, &mut out);
            }
            Ev::Sweep => {
                upstream.sweep(now, &mut out);
                let interval = upstream
                    .sweep_interval()
                    .expect("sweeps only with a detector");
                scheduler.after(interval, Ev::Sweep);
            }
            Ev::Merge => upstream.merge_timer(now),
        }
        for event in out.drain(..) {
            match event {
                UpstreamEvent::Started {
                    attempt,
                    host,
                    conn,
                } => {
                    // The host's behaviour is read when the request reaches it.
                    let answer = behaviour[host.index()];
                    scheduler.after(
                        answer.latency,
                        Ev::Finish {
                            attempt,
                            host,
                            conn,
                            status: answer.status,
                        },
                    );
                }
                UpstreamEvent::Completed {
                    request, result, ..
                } => {
                    let record = requests[request.index as usize]
                        .as_mut()
                        .expect("a completed request was sent");
                    record.done_at = since_start;
                    record.status = match result {
                        AttemptResult::Status(status) => status,
                        _ => 0,
                    };
                    answered += 1;
                    if let Some(gap) = gap
                        && next_index < script.count
                    {
                        scheduler.after(
                            gap,
                            Ev::Send {
                                index: next_index,
                                client: request.client,
                            },
                        );
                        next_index += 1;
                    }
                }
                UpstreamEvent::Rejected { request, flag } => {
                    let record = requests[request.index as usize]
                        .as_mut()
                        .expect("a rejected request was sent");
                    record.done_at = since_start;
                    record.status = flag.status();
                    record.flags = flag.code().to_string();
                    // Envoy's access log names no upstream host for an overflow.
                    record.host = None;
                    answered += 1;
                    if let Some(gap) = gap
                        && next_index < script.count
                    {
                        scheduler.after(
                            gap,
                            Ev::Send {
                                index: next_index,
                                client: request.client,
                            },
                        );
                        next_index += 1;
                    }
                }
                UpstreamEvent::RetryAt { attempt, at } => scheduler.at(at, Ev::Retry(attempt)),
                UpstreamEvent::Connect { conn } => {
                    scheduler.after(script.connect_time, Ev::Connected(conn))
                }
                UpstreamEvent::DeliverAt(at) => scheduler.at(at, Ev::Merge),
            }
        }
        if answered == script.count {
            stopped = true;
        }
    });
    let requests: Vec<RequestRecord> = requests
        .into_iter()
        .map(|r| r.expect("every request of the script is sent"))
        .collect();
    let events = upstream
        .outlier_log()
        .iter()
        .filter_map(|e| match e.action {
            OutlierAction::Ejected | OutlierAction::Unejected => Some(HostEvent {
                time: e.time.since(SimTime::ZERO),
                host: e.host.0,
                ejected: e.action == OutlierAction::Ejected,
                detection: detection_name(e),
            }),
            OutlierAction::NotEnforced | OutlierAction::Overflow => None,
        })
        .collect();
    let mut run = ScriptRun { requests, events };
    run.trim_events();
    Ok(run)
}
