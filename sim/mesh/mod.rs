//! What one client sidecar (Envoy, configured by istiod) does with a request to a service:
//! VirtualService routing, AuthorizationPolicy, host selection, connection pools with their
//! circuit breakers, outlier detection with its delayed effect on the load balancer, and
//! route retries. [`upstream::Upstream`] wires one cluster's parts together for an event loop;
//! [`istio::cluster_policy`] turns a DestinationRule's traffic policy into the Envoy fields
//! the parts read ([`policy::ClusterPolicy`]).
//!
//! Mirrors Envoy 1.40.0 and istiod `master` (2026-08), as written down in `spec/mesh.md`; each
//! submodule names the section it follows. Where the spec and Envoy's source differ, the
//! source wins and the module says so.
//!
//! ```text
//! request ─> authz::check ─> route::VirtualService::route ─> cluster (per destination)
//!                 403            404 NR / 503 UH                │
//!                                            lb::LoadBalancer::pick (503 UH, panic)
//!                                                               │
//!                                      pool::ConnectionPools (503 UO, FIFO pending)
//!                                                               │
//!                          response status ─> outlier::OutlierDetector ─> merge::UpdateMerge
//!                                 │                                       └─> lb host health
//!                                 └─> retriable? retry after a back-off, on another host
//! ```
//!
//! Invariants: every model is a pure state machine driven by calls that carry the virtual time;
//! none reads a clock or schedules anything itself; randomness comes only from the
//! [`crate::engine::SimRng`] stream each model is handed; state is per client proxy and per
//! cluster, as in Envoy, so nothing here is shared between two callers of the same service.

pub mod authz;
pub mod conformance;
pub mod istio;
pub mod lb;
pub mod lower;
pub mod merge;
pub mod outlier;
pub mod policy;
pub mod pool;
pub mod route;
pub mod script;
pub mod upstream;

use std::fmt;

/// One endpoint (pod IP and port) of a cluster, numbered from 0 in the order the cluster
/// lists its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub u32);

impl HostId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host-{}", self.0)
    }
}

/// The response flags Envoy writes in its access log for the failures the mesh itself makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseFlag {
    /// `NR`: no route matched (404).
    NoRouteFound,
    /// `UH`: no healthy upstream host (503).
    NoHealthyUpstream,
    /// `UO`: a circuit breaker overflowed (503).
    UpstreamOverflow,
    /// `UC`: the upstream connection closed mid-request (the pod died with it in flight).
    UpstreamConnectionTermination,
}

impl ResponseFlag {
    /// The access-log spelling.
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::UpstreamConnectionTermination => "UC",
        }
    }

    /// The status the client sees.
    pub fn status(self) -> u16 {
        match self {
            ResponseFlag::NoRouteFound => 404,
            ResponseFlag::NoHealthyUpstream
            | ResponseFlag::UpstreamOverflow
            | ResponseFlag::UpstreamConnectionTermination => 503,
        }
    }
}

/// Why a mesh policy was refused. `field` is the path inside the Istio object or the policy
/// (`trafficPolicy.loadBalancer.consistentHash`, `http[1].match[0].headers.x-user.regex`), so
/// the manifest reader can prefix it with the file, document and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    #[error("{field}: {why}")]
    Invalid { field: String, why: String },
    #[error("{field}: {what} is valid Istio but not modelled by the simulator")]
    Unsupported { field: String, what: String },
}

impl MeshError {
    pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        MeshError::Invalid {
            field: field.into(),
            why: why.into(),
        }
    }
}

#[cfg(test)]
mod tests;
