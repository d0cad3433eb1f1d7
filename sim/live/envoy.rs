//! Driving a real Envoy on loopback: write a bootstrap around one upstream cluster, start the
//! binary, send a bounded load through its listener, and read back what it did from its access
//! log (status, response flags, chosen upstream host per request) and its outlier-detection
//! event log (every ejection and un-ejection).
//!
//! Mirrors the sidecar's outbound path as istiod configures it (../shared/spec/mesh.md §2): one
//! listener, one route, one cluster; `--concurrency 1`, so the outlier and load-balancer state
//! is that of a single worker, which is what twin's mesh model holds per client proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{LiveError, io_err, require_loopback};
use crate::engine::SimDuration;
use crate::mesh::policy::{ClusterPolicy, LbPolicy};

/// The name of the one upstream cluster in every bootstrap twin writes.
pub const CLUSTER_NAME: &str = "twin_upstream";
/// The request header carrying twin's request index, echoed into the access log.
pub const REQUEST_HEADER: &str = "x-twin-request";

/// What to start: the cluster body (everything but `name` and `load_assignment`, as
/// `twin mesh envoy-config` prints it), the route action, and the upstream hosts.
#[derive(Clone, Debug)]
pub struct EnvoySetup {
    pub binary: PathBuf,
    pub cluster: Value,
    /// The route's action (`cluster`, `timeout`, `retry_policy`); `cluster` is filled in.
    pub route: Value,
    pub hosts: Vec<SocketAddr>,
    /// Folder for the bootstrap, logs and the admin address file.
    pub workdir: PathBuf,
}

/// A running Envoy.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    listener: SocketAddr,
    access_log: PathBuf,
    event_log: PathBuf,
    stderr_log: PathBuf,
}

/// One line of the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub request: Option<u64>,
    pub status: u16,
    pub flags: String,
    /// The upstream host that answered (`None`: no host was chosen, e.g. overflow).
    pub upstream: Option<SocketAddr>,
}

/// One outlier-detection event.
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierEvent {
    /// `EJECT` or `UNEJECT`.
    pub action: String,
    /// The detector that fired (`CONSECUTIVE_5XX`, `CONSECUTIVE_GATEWAY_FAILURE`, ...).
    pub kind: String,
    pub host: Option<SocketAddr>,
    pub enforced: bool,
    pub num_ejections: u64,
    /// Wall time of the event, seconds since the Unix epoch.
    pub timestamp_secs: f64,
}

/// The Envoy cluster twin models as equivalent to `policy` (`spec/mesh.md` §2): everything but
/// `name` and `load_assignment`, every field the models read written out, so that what a
/// conformance run feeds Envoy is exactly what the model runs with. `twin mesh envoy-config`
/// prints it through [`cluster`].
pub fn cluster_config(policy: &ClusterPolicy) -> Value {
    let breakers = policy.circuit_breakers;
    let mut cluster = serde_json::Map::new();
    cluster.insert("type".into(), json!("STATIC"));
    cluster.insert(
        "connect_timeout".into(),
        json!(duration_text(policy.connect_timeout)),
    );
    match policy.lb {
        LbPolicy::RoundRobin => {
            cluster.insert("lb_policy".into(), json!("ROUND_ROBIN"));
        }
        LbPolicy::Random => {
            cluster.insert("lb_policy".into(), json!("RANDOM"));
        }
        LbPolicy::LeastRequest {
            choice_count,
            active_request_bias,
        } => {
            cluster.insert("lb_policy".into(), json!("LEAST_REQUEST"));
            // istiod leaves `least_request_lb_config` unset, which is 2 choices and bias 1.0.
            if choice_count != 2 || active_request_bias != 1.0 {
                cluster.insert(
                    "least_request_lb_config".into(),
                    json!({"choice_count": choice_count, "active_request_bias": {"default_value": active_request_bias, "runtime_key": "twin.active_request_bias"}}),
                );
            }
        }
    }
    cluster.insert(
        "circuit_breakers".into(),
        json!({"thresholds": [{
            "max_connections": breakers.max_connections,
            "max_pending_requests": breakers.max_pending_requests,
            "max_requests": breakers.max_requests,
            "max_retries": breakers.max_retries
        }]}),
    );
    cluster.insert(
        "common_lb_config".into(),
        json!({"healthy_panic_threshold": {"value": policy.healthy_panic_threshold_percent}}),
    );
    let mut protocol = serde_json::Map::new();
    if let Some(n) = policy.max_requests_per_connection {
        protocol.insert("max_requests_per_connection".into(), json!(n));
    }
    if let Some(idle) = policy.idle_timeout {
        protocol.insert("idle_timeout".into(), json!(duration_text(idle)));
    }
    // HTTP/1.1 to the upstream, as a sidecar speaks to a plain HTTP port.
    cluster.insert(
        "typed_extension_protocol_options".into(),
        json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": protocol,
            "explicit_http_config": {"http_protocol_options": {}}
        }}),
    );
    if let Some(outlier) = &policy.outlier {
        let mut od = json!({
            "consecutive_5xx": outlier.consecutive_5xx,
            "enforcing_consecutive_5xx": outlier.enforcing_consecutive_5xx,
            "consecutive_gateway_failure": outlier.consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure": outlier.enforcing_consecutive_gateway_failure,
            "split_external_local_origin_errors": outlier.split_external_local_origin_errors,
            "consecutive_local_origin_failure": outlier.consecutive_local_origin_failure,
            "enforcing_consecutive_local_origin_failure": outlier.enforcing_consecutive_local_origin_failure,
            "interval": duration_text(outlier.interval),
            "base_ejection_time": duration_text(outlier.base_ejection_time),
            "max_ejection_time_jitter": duration_text(outlier.max_ejection_time_jitter),
            "max_ejection_percent": outlier.max_ejection_percent,
            "always_eject_one_host": outlier.always_eject_one_host,
            "success_rate_minimum_hosts": outlier.success_rate_minimum_hosts,
            "success_rate_request_volume": outlier.success_rate_request_volume,
            "success_rate_stdev_factor": outlier.success_rate_stdev_factor,
            "enforcing_success_rate": outlier.enforcing_success_rate,
            "failure_percentage_threshold": outlier.failure_percentage_threshold,
            "enforcing_failure_percentage": outlier.enforcing_failure_percentage,
            "failure_percentage_minimum_hosts": outlier.failure_percentage_minimum_hosts,
            "failure_percentage_request_volume": outlier.failure_percentage_request_volume
        });
        if let (Some(max), Value::Object(fields)) = (outlier.max_ejection_time, &mut od) {
            fields.insert("max_ejection_time".into(), json!(duration_text(max)));
        }
        cluster.insert("outlier_detection".into(), od);
    }
    Value::Object(cluster)
}

/// A protobuf JSON duration: whole seconds, or seconds with up to nine decimals (`0.5s`).
pub fn duration_text(duration: SimDuration) -> String {
    let nanos = duration.as_nanos();
    let (secs, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if frac == 0 {
        format!("{secs}s")
    } else {
        let digits = format!("{frac:09}");
        format!("{secs}.{}s", digits.trim_end_matches('0'))
    }
}

/// A whole cluster as the bootstrap holds it: `body` (from [`cluster_config`]) with `name`,
/// the defaults Envoy needs, and one endpoint per host in order.
pub fn cluster(name: &str, body: &Value, hosts: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = hosts
        .iter()
        .map(|addr| {
            json!({"endpoint": {"address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}}}})
        })
        .collect();
    let mut cluster = body.clone();
    if let Value::Object(fields) = &mut cluster {
        fields.insert("name".into(), json!(name));
        fields.entry("connect_timeout").or_insert(json!("10s"));
        fields.entry("type").or_insert(json!("STATIC"));
        fields.insert(
            "load_assignment".into(),
            json!({"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}),
        );
    }
    cluster
}

/// Writes the bootstrap for `setup`, with the listener and admin on port 0 (Envoy picks).
pub fn bootstrap(setup: &EnvoySetup, access_log: &Path, event_log: &Path) -> Value {
    let cluster = cluster(CLUSTER_NAME, &setup.cluster, &setup.hosts);
    let mut route = setup.route.clone();
    if let Value::Object(fields) = &mut route {
        fields.insert("cluster".into(), json!(CLUSTER_NAME));
    }
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "twin_listener",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "twin",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": route}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "access_log": [{
                            "name": "envoy.access_loggers.file",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                "path": access_log.display().to_string(),
                                "log_format": {"json_format": {
                                    "request": format!("%REQ({})%", REQUEST_HEADER.to_uppercase()),
                                    "status": "%RESPONSE_CODE%",
                                    "flags": "%RESPONSE_FLAGS%",
                                    "upstream": "%UPSTREAM_HOST%"
                                }}
                            }
                        }]
                    }
                }]}]
            }],
            "clusters": [cluster]
        },
        "cluster_manager": {"outlier_detection": {"event_log_path": event_log.display().to_string()}}
    })
}

pub(crate) async fn http(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(u16, Bytes), LiveError> {
    require_loopback(addr)?;
    let doing = format!("{method} http://{addr}{path}");
    let stream = TcpStream::connect(addr)
        .await
        .map_err(io_err(doing.clone()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| LiveError::Http {
            doing: doing.clone(),
            message: err.to_string(),
        })?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "twin");
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|err| LiveError::Http {
            doing: doing.clone(),
            message: err.to_string(),
        })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| LiveError::Http {
            doing: doing.clone(),
            message: err.to_string(),
        })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| LiveError::Http {
            doing,
            message: err.to_string(),
        })?;
    Ok((status, body.to_bytes()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Envoy {
    /// Starts Envoy and waits (at most 30 s) until its admin says it is live.
    pub async fn start(setup: &EnvoySetup) -> Result<Envoy, LiveError> {
        for host in &setup.hosts {
            require_loopback(*host)?;
        }
        std::fs::create_dir_all(&setup.workdir)
            .map_err(io_err(format!("creating {}", setup.workdir.display())))?;
        let access_log = setup.workdir.join("access.log");
        let event_log = setup.workdir.join("outlier-events.log");
        let stderr_log = setup.workdir.join("envoy.log");
        let admin_file = setup.workdir.join("admin-address");
        let config_path = setup.workdir.join("bootstrap.json");
        for stale in [&access_log, &event_log, &admin_file] {
            let _ = std::fs::remove_file(stale);
        }
        let config = bootstrap(setup, &access_log, &event_log);
        let config_text = serde_json::to_string_pretty(&config).expect("bootstrap serializes");
        std::fs::write(&config_path, config_text)
            .map_err(io_err(format!("writing {}", config_path.display())))?;
        let stderr = std::fs::File::create(&stderr_log)
            .map_err(io_err(format!("creating {}", stderr_log.display())))?;
        let mut child = Command::new(&setup.binary)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warning",
            ])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_err(format!("starting {}", setup.binary.display())))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let admin = loop {
            if let Some(status) = child.try_wait().map_err(io_err("polling envoy"))? {
                return Err(LiveError::EnvoyExited {
                    status: status.to_string(),
                    log_tail: tail(&stderr_log),
                });
            }
            if let Some(addr) = std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|text| text.trim().parse::<SocketAddr>().ok())
            {
                if let Ok((200, _)) = http(addr, Method::GET, "/ready", &[]).await {
                    break addr;
                }
            }
            if Instant::now() > deadline {
                return Err(LiveError::EnvoyNotReady {
                    seconds: 30,
                    log_tail: tail(&stderr_log),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (_, listeners) = http(admin, Method::GET, "/listeners?format=json", &[]).await?;
        let listeners: Value =
            serde_json::from_slice(&listeners).map_err(|err| LiveError::Http {
                doing: "reading envoy's listeners".into(),
                message: err.to_string(),
            })?;
        let port =
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .ok_or_else(|| LiveError::Http {
                    doing: "reading envoy's listeners".into(),
                    message: format!("no port in {listeners}"),
                })?;
        let listener = SocketAddr::from(([127, 0, 0, 1], port as u16));
        Ok(Envoy {
            child,
            admin,
            listener,
            access_log,
            event_log,
            stderr_log,
        })
    }

    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// One request through Envoy, tagged with twin's request index; returns the status.
    pub async fn request(
        &self,
        index: u64,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<u16, LiveError> {
        let mut all = vec![(REQUEST_HEADER, index.to_string())];
        all.extend(headers.iter().cloned());
        Ok(http(self.listener, Method::GET, path, &all).await?.0)
    }

    /// Fetches an admin endpoint as JSON text (e.g. `/clusters?format=json`, `/stats?format=json`).
    pub async fn admin_get(&self, path: &str) -> Result<String, LiveError> {
        let (_, body) = http(self.admin, Method::GET, path, &[]).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Asks Envoy to exit, waits (at most 10 s, then kills it) and reads both logs.
    pub async fn stop(mut self) -> Result<(Vec<AccessRecord>, Vec<OutlierEvent>), LiveError> {
        let _ = http(self.admin, Method::POST, "/quitquitquit", &[]).await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
        let access = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let events = std::fs::read_to_string(&self.event_log).unwrap_or_default();
        let _ = &self.stderr_log;
        Ok((parse_access_log(&access), parse_event_log(&events)))
    }
}

fn json_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// Parses the JSON access log written by [`bootstrap`]'s format; unreadable lines are skipped.
pub fn parse_access_log(text: &str) -> Vec<AccessRecord> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|record| AccessRecord {
            request: json_u64(&record["request"]),
            status: json_u64(&record["status"]).unwrap_or(0) as u16,
            flags: record["flags"].as_str().unwrap_or("-").to_string(),
            upstream: record["upstream"]
                .as_str()
                .and_then(|text| text.parse().ok()),
        })
        .collect()
}

/// Parses Envoy's outlier-detection event log (one JSON object per line).
pub fn parse_event_log(text: &str) -> Vec<OutlierEvent> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|event| OutlierEvent {
            action: event["action"].as_str().unwrap_or_default().to_string(),
            kind: event["type"].as_str().unwrap_or_default().to_string(),
            host: event["upstream_url"]
                .as_str()
                .and_then(|text| text.parse().ok()),
            enforced: event["enforced"].as_bool().unwrap_or(false),
            num_ejections: json_u64(&event["num_ejections"]).unwrap_or(0),
            timestamp_secs: event["timestamp"]
                .as_str()
                .map(parse_rfc3339_secs)
                .unwrap_or(0.0),
        })
        .collect()
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp such as `2026-12-03T09:41:07.123Z`
/// (what Envoy writes); only differences between events are ever used.
fn parse_rfc3339_secs(text: &str) -> f64 {
    let (date, time) = match text.split_once('T') {
        Some(parts) => parts,
        None => return 0.0,
    };
    let mut ymd = date.split('-').filter_map(|part| part.parse::<i64>().ok());
    let (Some(year), Some(month), Some(day)) = (ymd.next(), ymd.next(), ymd.next()) else {
        return 0.0;
    };
    let time = time.trim_end_matches('Z');
    let mut hms = time.split(':');
    let (Some(h), Some(m), Some(s)) = (hms.next(), hms.next(), hms.next()) else {
        return 0.0;
    };
    let (Ok(h), Ok(m), Ok(s)) = (h.parse::<f64>(), m.parse::<f64>(), s.parse::<f64>()) else {
        return 0.0;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86_400.0 + h * 3_600.0 + m * 60.0 + s
}

/// A bounded load: `count` requests over `connections` keep-alive connections, each connection
/// sending its next request when the previous answer arrives, optionally paced to `rate` [req/s]
/// in total. Stops at `count` or at `deadline`, whichever comes first. Returns the client-side
/// status per request index (`None`: the request failed at the transport).
pub async fn drive(
    envoy: &Envoy,
    count: u64,
    connections: usize,
    rate: Option<f64>,
    deadline: Duration,
) -> Vec<Option<u16>> {
    let results = Arc::new(std::sync::Mutex::new(vec![None; count as usize]));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let listener = envoy.listener;
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let results = results.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst) as u64;
                if index >= count || started.elapsed() > deadline {
                    break;
                }
                if let Some(rate) = rate.filter(|rate| *rate > 0.0) {
                    let due = Duration::from_secs_f64(index as f64 / rate);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let status = http(
                    listener,
                    Method::GET,
                    "/",
                    &[(REQUEST_HEADER, index.to_string())],
                )
                .await
                .ok()
                .map(|r| r.0);
                results.lock().expect("results lock is never poisoned")[index as usize] = status;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let results = results
        .lock()
        .expect("results lock is never poisoned")
        .clone();
    results
}
