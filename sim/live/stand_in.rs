//! The stand-in: one simulated pod as a real HTTP/1.1 server on loopback.
//!
//! It answers every request after its current latency with its current status, and serves a
//! small control surface under `/__twin/`:
//!
//! - `GET /__twin/health`: always 200 (the pod's own health, independent of its behaviour);
//! - `GET /__twin/behaviour`, `PUT /__twin/behaviour` with `{"status": 503, "latencyMs": 20}`:
//!   read or change what it answers, so a test can start and stop a failure;
//! - `GET /__twin/stats`: `{"served": N}`, the requests answered outside `/__twin/`.
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

use super::{LiveError, io_err, require_loopback};

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

struct Shared {
    behaviour: Mutex<Behaviour>,
    served: AtomicU64,
    slots: Option<Semaphore>,
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
    require_loopback(listen)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(io_err(format!("binding {listen}")))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("reading the bound address"))?;
    let shared = Arc::new(Shared {
        behaviour: Mutex::new(behaviour),
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
    let behaviour = *shared
        .behaviour
        .lock()
        .expect("behaviour lock is never poisoned");
    if behaviour.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
    }
    shared.served.fetch_add(1, Ordering::SeqCst);
    let status =
        StatusCode::from_u16(behaviour.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(text(
        status,
        format!("stand-in answered {}\n", status.as_u16()),
    ))
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
        (Method::GET, "behaviour") => {
            let behaviour = *shared
                .behaviour
                .lock()
                .expect("behaviour lock is never poisoned");
            text(
                StatusCode::OK,
                serde_json::to_string(&behaviour).expect("behaviour serializes"),
            )
        }
        (Method::PUT, "behaviour") => {
            let body = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    return text(StatusCode::BAD_REQUEST, format!("unreadable body: {err}\n"));
                }
            };
            match serde_json::from_slice::<Behaviour>(&body) {
                Ok(behaviour) if StatusCode::from_u16(behaviour.status).is_ok() => {
                    *shared
                        .behaviour
                        .lock()
                        .expect("behaviour lock is never poisoned") = behaviour;
                    text(StatusCode::OK, "ok\n")
                }
                Ok(behaviour) => text(
                    StatusCode::BAD_REQUEST,
                    format!("{} is not an HTTP status\n", behaviour.status),
                ),
                Err(err) => text(StatusCode::BAD_REQUEST, format!("bad behaviour: {err}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "unknown control endpoint\n"),
    }
}
