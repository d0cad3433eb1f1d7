//! A real Prometheus server (the Debian 2.42 `prometheus` binary) on loopback, serving TSDB
//! blocks made by `promtool tsdb create-blocks-from openmetrics`, for side-by-side range
//! queries against twin's evaluator.
//!
//! The server scrapes nothing (its configuration has no scrape jobs) and listens on a free
//! 127.0.0.1 port; readiness is polled for a bounded time; the process is killed when the
//! handle drops. Queries are plain HTTP/1.0 GETs (so the answer is neither chunked nor
//! compressed), each with a read timeout.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{LiveError, io_err, require_loopback};
use crate::promql::RangeSeries;
use crate::telemetry::store::{Labels, Sample};

/// A running Prometheus; killed on drop.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

/// Bytes outside RFC 3986's unreserved set, percent-encoded.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One GET; returns the status code and the body.
fn get(addr: SocketAddr, target: &str) -> Result<(u16, String), LiveError> {
    require_loopback(addr)?;
    let doing = format!("GET {target}");
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io_err(doing.clone()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io_err(doing.clone()))?;
    write!(stream, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(io_err(doing.clone()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(io_err(doing.clone()))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| LiveError::Http {
        doing: doing.clone(),
        message: "no header/body separator in the answer".into(),
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LiveError::Http {
            doing,
            message: format!("no status in {:?}", head.lines().next().unwrap_or("")),
        })?;
    Ok((status, body.to_string()))
}

impl Prometheus {
    /// Starts `binary` on the TSDB at `data_dir` (blocks already in it), with its config and
    /// log in `work_dir`, and waits up to `ready_within` for `/-/ready`.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        work_dir: &Path,
        ready_within: Duration,
    ) -> Result<Prometheus, LiveError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_err("finding a free port"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        require_loopback(addr)?;
        let config = work_dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
        )
        .map_err(io_err("writing the Prometheus config"))?;
        let log = work_dir.join("prometheus.log");
        let log_file =
            std::fs::File::create(&log).map_err(io_err("creating the Prometheus log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=100y")
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io_err("sharing the log"))?)
            .stderr(log_file)
            .spawn()
            .map_err(io_err(format!("starting {}", binary.display())))?;
        let mut server = Prometheus { child, addr, log };
        let deadline = Instant::now() + ready_within;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(LiveError::Http {
                    doing: "starting Prometheus".into(),
                    message: format!(
                        "it exited with {status}; its log ends with:\n{}",
                        log_tail(&server.log)
                    ),
                });
            }
            if let Ok((200, _)) = get(addr, "/-/ready") {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let message = format!(
                    "not ready within {} s; its log ends with:\n{}",
                    ready_within.as_secs(),
                    log_tail(&server.log)
                );
                server.stop();
                return Err(LiveError::Http {
                    doing: "starting Prometheus".into(),
                    message,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The address it listens on (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `/api/v1/query_range` of `expr` from `start_ms` to `end_ms` every `step_ms`, as
    /// series in label-set order (a vector result's `__name__` is kept when the server
    /// keeps it).
    pub fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RangeSeries>, LiveError> {
        let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
        let target = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            url_encode(expr),
            secs(start_ms),
            secs(end_ms),
            secs(step_ms)
        );
        let doing = format!("querying {expr}");
        let (status, body) = get(self.addr, &target)?;
        let bad = |message: String| LiveError::Http {
            doing: doing.clone(),
            message,
        };
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| bad(format!("status {status}, body is not JSON ({e}): {body}")))?;
        if status != 200 || json["status"] != "success" {
            return Err(bad(format!("status {status}: {body}")));
        }
        let mut out = Vec::new();
        for series in json["data"]["result"].as_array().into_iter().flatten() {
            let labels = Labels::from_pairs(
                series["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
            );
            let mut samples = Vec::new();
            for point in series["values"].as_array().into_iter().flatten() {
                let t = point[0]
                    .as_f64()
                    .ok_or_else(|| bad(format!("bad point {point}")))?;
                let v = point[1]
                    .as_str()
                    .and_then(|s| match s {
                        "NaN" => Some(f64::NAN),
                        "+Inf" => Some(f64::INFINITY),
                        "-Inf" => Some(f64::NEG_INFINITY),
                        s => s.parse().ok(),
                    })
                    .ok_or_else(|| bad(format!("bad point {point}")))?;
                samples.push(Sample {
                    t_ms: (t * 1000.0).round() as i64,
                    value: v,
                });
            }
            out.push(RangeSeries { labels, samples });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
