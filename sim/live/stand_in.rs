//! The stand-in: one simulated pod as a real HTTP/1.1 server on loopback.
//!
//! It answers every request after its current latency with its current status, and serves a
//! small control surface under `/__twin/`:
//!
//! - `GET /__twin/health`: always 200 (the pod's own health, independent of its behaviour);
//! - `GET /__twin/behaviour`, `PUT /__twin/behaviour` with `{"status": 503, "latencyMs": 20}`:
//!   read or change what it answers, so a test can start and stop a failure; `DELETE
//!   /__twin/behaviour` goes back to what it answered when it started;
//! - `GET /__twin/stats`: `{"served": N}`, the requests answered outside `/__twin/`.
//!
//! Two modes. A fixed stand-in ([`spawn`]) answers every request with one [`Behaviour`]. A
//! profile stand-in ([`spawn_profile`], `twin stand-in --profile`) is one pod of a service
//! profile: each request takes a service time drawn from the profile's distribution and fails
//! with the profile's error status at its error rate; a `PUT` overrides that (the status, and
//! the latency when `latencyMs` is given, else the drawn service time stays) until a `DELETE`.
//!
//! A concurrency limit (a semaphore) makes it queue like a pod with a fixed number of worker
//! slots. Behaviour can also be changed in-process through [`StandInHandle::set_behaviour`],
//! which is what the conformance runner does so that a change lands at a precise instant.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use rand::RngExt;

use super::{LiveError, io_err, require_loopback};
use crate::engine::{RngTree, SimRng};
use crate::workload::ServiceTimeSampler;

/// What a stand-in answers right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Behaviour {
    /// HTTP status of every answer.
    pub status: u16,
    /// Time spent before answering [ms].
    #[serde(default)]
    pub latency_ms: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            latency_ms: 0,
        }
    }
}

/// One pod of a service profile, as [`spawn_profile`] serves it.
#[derive(Clone, Debug)]
pub struct PodProfile {
    pub service_time: ServiceTimeSampler,
    /// Share of answers that fail [0, 1].
    pub error_rate: f64,
    pub error_status: u16,
    /// Worker slots (requests served at once); `None`: unlimited.
    pub concurrency: Option<usize>,
    /// Seed of the draws (service times, failures).
    pub seed: u64,
}

struct ProfileState {
    profile: PodProfile,
    rng: Mutex<SimRng>,
    /// A `PUT` override: the status, and the latency if one was given [ms].
    overridden: Mutex<Option<(u16, Option<u64>)>>,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    initial: Behaviour,
    profile: Option<ProfileState>,
    served: AtomicU64,
    slots: Option<Semaphore>,
}

/// The body of `PUT /__twin/behaviour`.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BehaviourUpdate {
    status: u16,
    #[serde(default)]
    latency_ms: Option<u64>,
}

/// A running stand-in. Dropping it stops the server.
pub struct StandInHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl StandInHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .expect("behaviour lock is never poisoned") = behaviour;
    }

    pub fn behaviour(&self) -> Behaviour {
        *self
            .shared
            .behaviour
            .lock()
            .expect("behaviour lock is never poisoned")
    }

    /// Requests answered outside the control surface.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }
}

impl Drop for StandInHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts a stand-in on `listen` (loopback only; port 0 picks a free port) inside the current
/// tokio runtime. `concurrency` limits requests served at once (`None`: unlimited).
pub async fn spawn(
    listen: SocketAddr,
    behaviour: Behaviour,
    concurrency: Option<usize>,
) -> Result<StandInHandle, LiveError> {
    serve(listen, behaviour, None, concurrency).await
}

/// Starts a stand-in that serves as one pod of `profile` (loopback only).
pub async fn spawn_profile(
    listen: SocketAddr,
    profile: PodProfile,
) -> Result<StandInHandle, LiveError> {
    if !(0.0..=1.0).contains(&profile.error_rate) {
        return Err(LiveError::Profile(format!(
            "errorRate {} is not in [0, 1]",
            profile.error_rate
        )));
    }
    if StatusCode::from_u16(profile.error_status).is_err() {
        return Err(LiveError::Profile(format!(
            "errorStatus {} is not an HTTP status",
            profile.error_status
        )));
    }
    let concurrency = profile.concurrency;
    let rng = RngTree::new(profile.seed).stream("stand-in");
    let state = ProfileState {
        profile,
        rng: Mutex::new(rng),
        overridden: Mutex::new(None),
    };
    serve(listen, Behaviour::default(), Some(state), concurrency).await
}

async fn serve(
    listen: SocketAddr,
    behaviour: Behaviour,
    profile: Option<ProfileState>,
    concurrency: Option<usize>,
) -> Result<StandInHandle, LiveError> {
    require_loopback(listen)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(io_err(format!("binding {listen}")))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("reading the bound address"))?;
    let shared = Arc::new(Shared {
        behaviour: Mutex::new(behaviour),
        initial: behaviour,
        profile,
        served: AtomicU64::new(0),
        slots: concurrency.map(Semaphore::new),
    });
    let (stop, mut stopped) = watch::channel(false);
    let server_shared = shared.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    let conn_shared = server_shared.clone();
                    let mut conn_stopped = stopped.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| handle(conn_shared.clone(), req));
                        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = conn_stopped.changed() => conn.as_mut().graceful_shutdown(),
                        }
                    });
                }
            }
        }
    });
    Ok(StandInHandle { addr, shared, stop })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(control) = path.strip_prefix("/__twin/") {
        return Ok(control_request(&shared, control, req).await);
    }
    // Read the whole request body before answering, as a real server would.
    let _ = req.into_body().collect().await;
    let _permit = match &shared.slots {
        Some(slots) => Some(
            slots
                .acquire()
                .await
                .expect("the semaphore is never closed"),
        ),
        None => None,
    };
    let behaviour = answer(&shared);
    if behaviour.latency > Duration::ZERO {
        tokio::time::sleep(behaviour.latency).await;
    }
    shared.served.fetch_add(1, Ordering::SeqCst);
    let status =
        StatusCode::from_u16(behaviour.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(text(
        status,
        format!("stand-in answered {}\n", status.as_u16()),
    ))
}

struct Answer {
    status: u16,
    latency: Duration,
}

/// What to answer this request: the fixed behaviour, or the profile's draws (or its override).
fn answer(shared: &Shared) -> Answer {
    let Some(state) = &shared.profile else {
        let behaviour = *shared
            .behaviour
            .lock()
            .expect("behaviour lock is never poisoned");
        return Answer {
            status: behaviour.status,
            latency: Duration::from_millis(behaviour.latency_ms),
        };
    };
    let overridden = *state
        .overridden
        .lock()
        .expect("override lock is never poisoned");
    let mut rng = state.rng.lock().expect("rng lock is never poisoned");
    let drawn = Duration::from_nanos(state.profile.service_time.sample(&mut rng).as_nanos());
    match overridden {
        Some((status, latency_ms)) => Answer {
            status,
            latency: latency_ms.map_or(drawn, Duration::from_millis),
        },
        None => {
            let fails = rng.random::<f64>() < state.profile.error_rate;
            Answer {
                status: if fails {
                    state.profile.error_status
                } else {
                    200
                },
                latency: drawn,
            }
        }
    }
}

async fn control_request(
    shared: &Shared,
    control: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match (req.method().clone(), control) {
        (Method::GET, "health") => text(StatusCode::OK, "ok\n"),
        (Method::GET, "stats") => text(
            StatusCode::OK,
            format!("{{\"served\":{}}}\n", shared.served.load(Ordering::SeqCst)),
        ),
        (Method::GET, "behaviour") => match &shared.profile {
            None => {
                let behaviour = *shared
                    .behaviour
                    .lock()
                    .expect("behaviour lock is never poisoned");
                text(
                    StatusCode::OK,
                    serde_json::to_string(&behaviour).expect("behaviour serializes"),
                )
            }
            Some(state) => {
                let overridden = *state
                    .overridden
                    .lock()
                    .expect("override lock is never poisoned");
                let body = match overridden {
                    None => serde_json::json!({"profile": true, "override": null}),
                    Some((status, latency_ms)) => {
                        serde_json::json!({"profile": true, "override": {"status": status, "latencyMs": latency_ms}})
                    }
                };
                text(StatusCode::OK, body.to_string())
            }
        },
        (Method::DELETE, "behaviour") => {
            match &shared.profile {
                None => {
                    *shared
                        .behaviour
                        .lock()
                        .expect("behaviour lock is never poisoned") = shared.initial
                }
                Some(state) => {
                    *state
                        .overridden
                        .lock()
                        .expect("override lock is never poisoned") = None
                }
            }
            text(StatusCode::OK, "ok\n")
        }
        (Method::PUT, "behaviour") => {
            let body = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    return text(StatusCode::BAD_REQUEST, format!("unreadable body: {err}\n"));
                }
            };
            match serde_json::from_slice::<BehaviourUpdate>(&body) {
                Ok(update) if StatusCode::from_u16(update.status).is_ok() => {
                    match &shared.profile {
                        None => {
                            *shared
                                .behaviour
                                .lock()
                                .expect("behaviour lock is never poisoned") = Behaviour {
                                status: update.status,
                                latency_ms: update.latency_ms.unwrap_or(0),
                            }
                        }
                        Some(state) => {
                            *state
                                .overridden
                                .lock()
                                .expect("override lock is never poisoned") =
                                Some((update.status, update.latency_ms))
                        }
                    }
                    text(StatusCode::OK, "ok\n")
                }
                Ok(update) => text(
                    StatusCode::BAD_REQUEST,
                    format!("{} is not an HTTP status\n", update.status),
                ),
                Err(err) => text(StatusCode::BAD_REQUEST, format!("bad behaviour: {err}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "unknown control endpoint\n"),
    }
}
