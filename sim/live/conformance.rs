//! The real-Envoy arm of `twin mesh conformance`: one stand-in per scripted host on loopback,
//! a real Envoy in front of them with the cluster [`envoy::cluster_config`] writes for the
//! policy, and the script's requests sent through it at the script's instants. The result is a
//! [`ScriptRun`] of the same shape as the model's ([`crate::mesh::script::simulate`]).
//!
//! Times: instant 0 is when the first request is due. A request's `sent_at` is when the
//! driver sent it, `done_at` when its answer arrived; an ejection's time is Envoy's event-log
//! timestamp (wall clock, milliseconds) minus the wall-clock instant 0. The upstream host and
//! the response flags come from Envoy's access log, matched by request index.
//!
//! Behaviour changes: a `fromRequest` change is applied to its stand-in just before that
//! request is sent; an `at` change by a timer at its instant. Stand-in latencies are whole
//! milliseconds (a script's sub-millisecond latency is rounded).
//!
//! Invariants: loopback only; the load is the script's (at most `MAX_REQUESTS` requests) and
//! the whole run stops by itself within the script's span plus [`TAIL`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;
use serde_json::json;

use super::envoy::{self, Envoy, EnvoySetup, REQUEST_HEADER};
use super::stand_in::{self, Behaviour, StandInHandle};
use super::{LiveError, require_loopback};
use crate::engine::SimDuration;
use crate::mesh::conformance::{Check, Summary, compare, summarize};
use crate::mesh::policy::ClusterPolicy;
use crate::mesh::script::{
    HostBehaviour, HostEvent, MeshScript, RequestRecord, Schedule, ScriptRun, Trigger,
};

/// How long the run may outlast the script's own span before it is cut off.
pub const TAIL: Duration = Duration::from_secs(30);

fn stand_in_behaviour(behaviour: HostBehaviour) -> Behaviour {
    Behaviour {
        status: behaviour.status,
        latency_ms: (behaviour.latency.as_nanos() + 500_000) / 1_000_000,
    }
}

/// Changes by request index, applied in order as requests go out.
struct ByRequest {
    changes: Vec<(u64, usize, HostBehaviourChange)>,
    next: usize,
}

#[derive(Clone, Copy)]
struct HostBehaviourChange {
    status: Option<u16>,
    latency: Option<SimDuration>,
}

fn apply(handle: &StandInHandle, change: HostBehaviourChange) {
    let mut behaviour = handle.behaviour();
    if let Some(status) = change.status {
        behaviour.status = status;
    }
    if let Some(latency) = change.latency {
        behaviour.latency_ms = (latency.as_nanos() + 500_000) / 1_000_000;
    }
    handle.set_behaviour(behaviour);
}

impl ByRequest {
    fn apply_through(&mut self, index: u64, hosts: &[StandInHandle]) {
        while self.next < self.changes.len() && self.changes[self.next].0 <= index {
            let (_, host, change) = self.changes[self.next];
            apply(&hosts[host], change);
            self.next += 1;
        }
    }
}

/// Runs `script` through a real Envoy at `binary` configured from `policy`, in `workdir`.
/// Builds its own tokio runtime; call it from plain (non-async) code.
pub fn run(
    binary: PathBuf,
    policy: &ClusterPolicy,
    script: &MeshScript,
    workdir: PathBuf,
) -> Result<ScriptRun, LiveError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(super::io_err("starting the tokio runtime"))?;
    runtime.block_on(run_async(binary, policy, script, workdir))
}

async fn run_async(
    binary: PathBuf,
    policy: &ClusterPolicy,
    script: &MeshScript,
    workdir: PathBuf,
) -> Result<ScriptRun, LiveError> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    let mut hosts = Vec::new();
    for host in &script.hosts {
        hosts.push(stand_in::spawn(loopback, stand_in_behaviour(host.initial), None).await?);
    }
    let hosts = Arc::new(hosts);
    let addresses: Vec<SocketAddr> = hosts.iter().map(|h| h.addr()).collect();
    let host_index: BTreeMap<SocketAddr, u32> = addresses
        .iter()
        .enumerate()
        .map(|(idx, addr)| (*addr, idx as u32))
        .collect();
    let setup = EnvoySetup {
        binary,
        cluster: envoy::cluster_config(policy),
        route: json!({"timeout": "0s"}),
        hosts: addresses.clone(),
        workdir,
    };
    let proxy = Envoy::start(&setup).await?;
    let listener = proxy.listener();
    require_loopback(listener)?;

    let mut by_request = Vec::new();
    let mut timed = Vec::new();
    for (host_idx, host) in script.hosts.iter().enumerate() {
        for change in &host.changes {
            let what = HostBehaviourChange {
                status: change.status,
                latency: change.latency,
            };
            match change.trigger {
                Trigger::FromRequest(index) => by_request.push((index, host_idx, what)),
                Trigger::At(at) => timed.push((at, host_idx, what)),
            }
        }
    }
    by_request.sort_by_key(|(index, host, _)| (*index, *host));
    let by_request = Arc::new(Mutex::new(ByRequest {
        changes: by_request,
        next: 0,
    }));
    let count = script.count as usize;
    let records: Arc<Mutex<Vec<Option<(Duration, Duration, u16)>>>> =
        Arc::new(Mutex::new(vec![None; count]));
    let path = script.path.clone();
    let headers: Vec<(String, String)> = script
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // Instant 0, on both clocks: the monotonic one for the driver, the wall one for the logs.
    let start = Instant::now() + Duration::from_millis(20);
    let start_wall = SystemTime::now() + Duration::from_millis(20);
    let deadline = start + script_span(script) + TAIL;
    for (at, host, change) in timed {
        let hosts = hosts.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + Duration::from_nanos(at.as_nanos())).into()).await;
            apply(&hosts[host], change);
        });
    }
    let send = {
        let path = path.clone();
        let headers = headers.clone();
        move |index: u64| {
            let path = path.clone();
            let headers = headers.clone();
            async move {
                let mut all: Vec<(&str, String)> = vec![(REQUEST_HEADER, index.to_string())];
                all.extend(headers.iter().map(|(k, v)| (k.as_str(), v.clone())));
                let answer =
                    tokio::time::timeout(TAIL, envoy::http(listener, Method::GET, &path, &all))
                        .await;
                match answer {
                    Ok(Ok((status, _))) => status,
                    _ => 0,
                }
            }
        }
    };
    match &script.schedule {
        Schedule::OpenLoop(offsets) => {
            let mut tasks = Vec::with_capacity(count);
            for (index, offset) in offsets.iter().enumerate() {
                let due = start + Duration::from_nanos(offset.as_nanos());
                if due > deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                by_request
                    .lock()
                    .expect("never poisoned")
                    .apply_through(index as u64, &hosts);
                let records = records.clone();
                let request = send(index as u64);
                let sent = start.elapsed_since_start();
                tasks.push(tokio::spawn(async move {
                    let status = request.await;
                    let done = start.elapsed_since_start();
                    records.lock().expect("never poisoned")[index] = Some((sent, done, status));
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        Schedule::ClosedLoop { clients, gap } => {
            let next = Arc::new(Mutex::new(0usize));
            let gap = Duration::from_nanos(gap.as_nanos());
            let mut tasks = Vec::new();
            tokio::time::sleep_until(start.into()).await;
            for _ in 0..*clients {
                let next = next.clone();
                let records = records.clone();
                let by_request = by_request.clone();
                let hosts = hosts.clone();
                let send = send.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let index = {
                            let mut next = next.lock().expect("never poisoned");
                            let index = *next;
                            *next += 1;
                            index
                        };
                        if index >= count || Instant::now() > deadline {
                            break;
                        }
                        by_request
                            .lock()
                            .expect("never poisoned")
                            .apply_through(index as u64, &hosts);
                        let sent = start.elapsed_since_start();
                        let status = send(index as u64).await;
                        let done = start.elapsed_since_start();
                        records.lock().expect("never poisoned")[index] = Some((sent, done, status));
                        if !gap.is_zero() {
                            tokio::time::sleep(gap).await;
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }
    let (access, events) = proxy.stop().await?;
    let access: BTreeMap<u64, envoy::AccessRecord> = access
        .into_iter()
        .filter_map(|record| record.request.map(|index| (index, record)))
        .collect();
    let records = records.lock().expect("never poisoned").clone();
    let mut requests = Vec::with_capacity(count);
    for (index, record) in records.into_iter().enumerate() {
        let Some((sent, done, status)) = record else {
            return Err(LiveError::Http {
                doing: format!("sending request {index} through envoy"),
                message: "the run's deadline passed before it was sent".into(),
            });
        };
        let logged = access.get(&(index as u64));
        requests.push(RequestRecord {
            index: index as u64,
            sent_at: SimDuration::from_nanos(sent.as_nanos() as u64),
            done_at: SimDuration::from_nanos(done.as_nanos() as u64),
            host: logged
                .and_then(|r| r.upstream)
                .and_then(|addr| host_index.get(&addr).copied()),
            status,
            flags: logged.map_or("-".into(), |r| r.flags.clone()),
        });
    }
    let start_epoch = start_wall
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut host_events = Vec::new();
    for event in events {
        let Some(host) = event.host.and_then(|addr| host_index.get(&addr).copied()) else {
            continue;
        };
        let ejected = match (event.action.as_str(), event.enforced) {
            ("EJECT", true) => true,
            ("UNEJECT", _) => false,
            _ => continue,
        };
        host_events.push(HostEvent {
            time: SimDuration::from_secs_f64(event.timestamp_secs - start_epoch),
            host,
            ejected,
            detection: if ejected { event.kind } else { String::new() },
        });
    }
    host_events.sort_by_key(|e| e.time);
    let mut run = ScriptRun {
        requests,
        events: host_events,
    };
    run.trim_events();
    Ok(run)
}

/// The time the script's sends take, as far as it can be known before the run.
fn script_span(script: &MeshScript) -> Duration {
    match &script.schedule {
        Schedule::OpenLoop(offsets) => {
            Duration::from_nanos(offsets.last().map_or(0, |d| d.as_nanos()))
        }
        Schedule::ClosedLoop { clients, gap } => {
            let slowest = script
                .hosts
                .iter()
                .flat_map(|h| {
                    std::iter::once(h.initial.latency)
                        .chain(h.changes.iter().filter_map(|c| c.latency))
                })
                .max()
                .unwrap_or_default();
            let per_request = slowest + *gap + SimDuration::from_millis(5);
            let rounds = script.count.div_ceil(u64::from((*clients).max(1)));
            Duration::from_nanos(per_request.as_nanos().saturating_mul(rounds))
        }
    }
}

trait SinceStart {
    fn elapsed_since_start(&self) -> Duration;
}

impl SinceStart for Instant {
    /// Time since this instant, zero while it is still ahead.
    fn elapsed_since_start(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }
}

/// Both arms of one conformance run, side by side.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seeds the model ran under.
    pub seeds: Vec<u64>,
    pub checks: Vec<Check>,
    /// One model run (the first seed) and Envoy's, for printing.
    pub model_run: ScriptRun,
    pub envoy_run: ScriptRun,
}

impl Report {
    pub fn agrees(&self) -> bool {
        self.checks.iter().all(|check| check.agrees)
    }
}

/// Where Envoy's interval timer stood relative to the first request: its sweeps are the only
/// instants it unejects at, so the first unejection gives the phase (`None` without one).
pub fn sweep_phase(run: &ScriptRun, interval: SimDuration) -> Option<SimDuration> {
    let first = run.events.iter().find(|e| !e.ejected)?;
    let phase = first.time.as_nanos() % interval.as_nanos().max(1);
    Some(if phase == 0 {
        interval
    } else {
        SimDuration::from_nanos(phase)
    })
}

/// Runs `script` once on the real Envoy at `binary` and on the model under `seeds` seeds (from
/// the script's own), the model's first sweep at the phase Envoy's run shows
/// ([`sweep_phase`]), and compares them ([`crate::mesh::conformance::compare`]).
pub fn conformance(
    binary: PathBuf,
    policy: &ClusterPolicy,
    script: &MeshScript,
    seeds: u64,
    workdir: PathBuf,
) -> Result<Report, LiveError> {
    let n_hosts = script.hosts.len();
    let seeds: Vec<u64> = (0..seeds.max(1)).map(|k| script.seed + k).collect();
    let envoy_run = run(binary, policy, script, workdir)?;
    let interval = policy.outlier.as_ref().map(|o| o.interval);
    let first_sweep = interval.and_then(|interval| sweep_phase(&envoy_run, interval));
    let mut model_runs = Vec::new();
    for &seed in &seeds {
        let run = crate::mesh::script::simulate_with_first_sweep(policy, script, seed, first_sweep)
            .map_err(|err| LiveError::Profile(err.to_string()))?;
        model_runs.push(run);
    }
    let summaries: Vec<Summary> = model_runs.iter().map(|r| summarize(r, n_hosts)).collect();
    let checks = compare(&summaries, &summarize(&envoy_run, n_hosts), interval);
    Ok(Report {
        seeds,
        checks,
        model_run: model_runs.swap_remove(0),
        envoy_run,
    })
}
