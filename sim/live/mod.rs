//! The only networked part of twin: the stand-in server (one simulated pod behind a real HTTP
//! port) and the drivers of real peers (Envoy, Prometheus) on loopback, for conformance tests;
//! [`conformance`] runs a mesh request script through stand-ins behind a real Envoy.
//!
//! Invariants: every socket binds or connects to a loopback address only (checked by
//! [`require_loopback`]); every load loop is bounded in count and in wall time and stops by
//! itself; tokio lives here and nowhere else in `sim/`. Wall-clock time is allowed here, and only
//! here, because these drivers talk to real processes.

pub mod conformance;
pub mod envoy;
pub mod prometheus;
pub mod stand_in;

use std::net::SocketAddr;

/// Why a live driver could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{addr} is not a loopback address: twin sends traffic to loopback only")]
    NotLoopback { addr: SocketAddr },
    #[error("io error while {doing}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    #[error("http error while {doing}: {message}")]
    Http { doing: String, message: String },
    #[error("envoy did not become ready within {seconds} s; its log ends with:\n{log_tail}")]
    EnvoyNotReady { seconds: u64, log_tail: String },
    #[error("envoy exited early with {status}; its log ends with:\n{log_tail}")]
    EnvoyExited { status: String, log_tail: String },
    #[error("bad profile: {0}")]
    Profile(String),
}

/// Refuses any address outside 127.0.0.0/8 and ::1.
pub fn require_loopback(addr: SocketAddr) -> Result<(), LiveError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(LiveError::NotLoopback { addr })
    }
}

pub(crate) fn io_err(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> LiveError {
    let doing = doing.into();
    move |source| LiveError::Io { doing, source }
}

#[cfg(test)]
mod tests;

/// Finds a peer binary: the environment variable `var` if set, else `name` on `PATH`.
/// `Err` carries the reason it is missing, for a test to print when it skips.
pub fn find_peer(var: &str, name: &str) -> Result<std::path::PathBuf, String> {
    if let Some(path) = std::env::var_os(var) {
        let path = std::path::PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{var}={} is not a file", path.display()))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "`{name}` is not on PATH and {var} is not set (ci/test installs it)"
    ))
}

/// For tests: whether a missing peer must fail the run (CI sets `TWIN_REQUIRE_PEERS=1`) rather
/// than skip with a printed reason.
pub fn peers_required() -> bool {
    std::env::var("TWIN_REQUIRE_PEERS").is_ok_and(|value| value == "1")
}
