//! HTTP/1.1 upstream connection pools of one cluster with its circuit breakers
//! (`spec/mesh.md` §5; Envoy `conn_pool_base.cc`: `newStreamImpl`, `attachStreamToClient`,
//! `tryCreateNewConnection`, `onUpstreamReady`, `onStreamClosed`).
//!
//! One pool per host (one worker). A request asks its host's pool for a stream:
//! - an idle connection is used at once, if `active < max_requests`; otherwise 503 `UO`;
//! - with no idle connection, the request is queued if `pending < max_pending_requests`
//!   (otherwise 503 `UO`) and a connection is opened when the queue outgrows the connections
//!   already being established, provided `open < max_connections`; at the limit Envoy counts
//!   `upstream_cx_overflow` and the request waits, except that a host with no connection at all
//!   always gets one (so the real count can exceed the limit by one per host);
//! - a finishing request hands its connection to the host's oldest pending request; after
//!   `max_requests_per_connection` requests the connection drains and closes, and a new one is
//!   opened if requests are waiting;
//! - attaching a pending request re-checks `max_requests`, so a queued request can still end in
//!   503 `UO`.
//!
//! The pool does not keep time: opening a connection is reported as [`PoolOutcome::Connect`]
//! and the caller calls [`ConnectionPools::connected`] when the handshake would finish (at
//! once for a zero connect time). Overflows are returned to the caller; they never reach the
//! outlier detector and are never retried.
//!
//! Invariants: `active <= max_requests` and `pending <= max_pending_requests` at every step;
//! pending requests of a host start in arrival order; each request leaves as exactly one
//! `Started` or one `Overflow`.

use std::collections::VecDeque;

use super::HostId;
use super::policy::CircuitBreakers;

/// A connection, numbered by the pool; ids are reused after a connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// What a pool call produced, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolOutcome<T> {
    /// The request is on the wire on `conn`.
    Started {
        request: T,
        host: HostId,
        conn: ConnId,
    },
    /// A circuit breaker refused it: 503 `UO`, `x-envoy-overloaded: true`.
    Overflow { request: T, host: HostId },
    /// A connection is being opened; call [`ConnectionPools::connected`] when it is up.
    Connect { conn: ConnId, host: HostId },
}

/// Counters named as Envoy's cluster stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub upstream_rq_total: u64,
    pub upstream_rq_pending_total: u64,
    pub upstream_rq_pending_overflow: u64,
    pub upstream_cx_total: u64,
    pub upstream_cx_overflow: u64,
    pub upstream_cx_max_requests: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Idle,
    Busy,
    /// Serving its last allowed request; closes when that finishes.
    Draining,
    Closed,
}

#[derive(Clone, Debug)]
struct Connection {
    host: HostId,
    state: ConnState,
    /// Requests it may still start (`u32::MAX` when unlimited).
    remaining: u32,
}

#[derive(Clone, Debug)]
struct HostPool<T> {
    pending: VecDeque<T>,
    idle: Vec<ConnId>,
    connecting: u32,
    /// Connections in any state but closed, draining ones included.
    open: u32,
    draining: u32,
}

impl<T> Default for HostPool<T> {
    fn default() -> Self {
        HostPool {
            pending: VecDeque::new(),
            idle: Vec::new(),
            connecting: 0,
            open: 0,
            draining: 0,
        }
    }
}

/// The pools of every host of one cluster, sharing the cluster's circuit breakers.
#[derive(Clone, Debug)]
pub struct ConnectionPools<T> {
    limits: CircuitBreakers,
    requests_per_connection: u32,
    connections: Vec<Connection>,
    free_ids: Vec<ConnId>,
    hosts: Vec<HostPool<T>>,
    /// `rq_active` per host: what LEAST_REQUEST reads.
    active_per_host: Vec<u32>,
    active: u64,
    pending: u64,
    open: u64,
    stats: PoolStats,
}

impl<T> ConnectionPools<T> {
    pub fn new(
        limits: CircuitBreakers,
        max_requests_per_connection: Option<u32>,
        n_hosts: u32,
    ) -> Self {
        ConnectionPools {
            limits,
            requests_per_connection: max_requests_per_connection
                .filter(|&n| n > 0)
                .unwrap_or(u32::MAX),
            connections: Vec::new(),
            free_ids: Vec::new(),
            hosts: (0..n_hosts).map(|_| HostPool::default()).collect(),
            active_per_host: vec![0; n_hosts as usize],
            active: 0,
            pending: 0,
            open: 0,
            stats: PoolStats::default(),
        }
    }

    /// Adds a host's (empty) pool.
    pub fn add_host(&mut self) -> HostId {
        self.hosts.push(HostPool::default());
        self.active_per_host.push(0);
        HostId(self.hosts.len() as u32 - 1)
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// In-flight requests per host, indexed by host.
    pub fn active_per_host(&self) -> &[u32] {
        &self.active_per_host
    }

    /// `upstream_rq_active`: requests on the wire, cluster-wide.
    pub fn active(&self) -> u64 {
        self.active
    }

    /// `upstream_rq_pending_active`: requests waiting for a connection, cluster-wide.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// `upstream_cx_active`: open connections (connecting, idle, busy, draining).
    pub fn open_connections(&self) -> u64 {
        self.open
    }

    pub fn pending_on(&self, host: HostId) -> usize {
        self.hosts[host.index()].pending.len()
    }

    /// Asks `host`'s pool for a stream for `request`.
    #[inline]
    pub fn request(&mut self, host: HostId, request: T, out: &mut Vec<PoolOutcome<T>>) {
        if let Some(conn) = self.hosts[host.index()].idle.pop() {
            if self.active >= self.limits.max_requests {
                self.hosts[host.index()].idle.push(conn);
                self.stats.upstream_rq_pending_overflow += 1;
                out.push(PoolOutcome::Overflow { request, host });
                return;
            }
            self.attach(conn, host, request, out);
            return;
        }
        if self.pending >= self.limits.max_pending_requests {
            self.stats.upstream_rq_pending_overflow += 1;
            out.push(PoolOutcome::Overflow { request, host });
            return;
        }
        self.hosts[host.index()].pending.push_back(request);
        self.pending += 1;
        self.stats.upstream_rq_pending_total += 1;
        self.try_open(host, out);
    }

    /// Opens connections for `host` while its queue outgrows the connections being
    /// established, at most three per call as Envoy's `tryCreateNewConnections` does.
    fn try_open(&mut self, host: HostId, out: &mut Vec<PoolOutcome<T>>) {
        for _ in 0..3 {
            if !self.try_open_one(host, out) {
                break;
            }
        }
    }

    /// One connection attempt; `true` when a connection was opened within the limit.
    fn try_open_one(&mut self, host: HostId, out: &mut Vec<PoolOutcome<T>>) -> bool {
        let pool = &self.hosts[host.index()];
        if pool.pending.len() as u64 <= u64::from(pool.connecting) {
            return false;
        }
        let can_create = self.open < self.limits.max_connections;
        if !can_create {
            self.stats.upstream_cx_overflow += 1;
            // Draining connections do not count: they will take no new request.
            if pool.open - pool.draining > 0 {
                return false;
            }
        }
        let conn = match self.free_ids.pop() {
            Some(id) => {
                self.connections[id.0 as usize] = Connection {
                    host,
                    state: ConnState::Connecting,
                    remaining: self.requests_per_connection,
                };
                id
            }
            None => {
                self.connections.push(Connection {
                    host,
                    state: ConnState::Connecting,
                    remaining: self.requests_per_connection,
                });
                ConnId(self.connections.len() as u32 - 1)
            }
        };
        let pool = &mut self.hosts[host.index()];
        pool.connecting += 1;
        pool.open += 1;
        self.open += 1;
        self.stats.upstream_cx_total += 1;
        out.push(PoolOutcome::Connect { conn, host });
        can_create
    }

    fn attach(&mut self, conn: ConnId, host: HostId, request: T, out: &mut Vec<PoolOutcome<T>>) {
        let connection = &mut self.connections[conn.0 as usize];
        connection.remaining -= 1;
        if connection.remaining == 0 {
            connection.state = ConnState::Draining;
            self.hosts[host.index()].draining += 1;
            self.stats.upstream_cx_max_requests += 1;
        } else {
            connection.state = ConnState::Busy;
        }
        self.active += 1;
        self.active_per_host[host.index()] += 1;
        self.stats.upstream_rq_total += 1;
        out.push(PoolOutcome::Started {
            request,
            host,
            conn,
        });
    }

    /// `conn` is ready for requests: it takes the host's oldest pending requests.
    pub fn connected(&mut self, conn: ConnId, out: &mut Vec<PoolOutcome<T>>) {
        let connection = &mut self.connections[conn.0 as usize];
        assert_eq!(
            connection.state,
            ConnState::Connecting,
            "{conn:?} connected twice"
        );
        connection.state = ConnState::Idle;
        let host = connection.host;
        self.hosts[host.index()].connecting -= 1;
        self.hosts[host.index()].idle.push(conn);
        self.on_upstream_ready(host, out);
    }

    /// Attaches pending requests to idle connections, oldest request first.
    fn on_upstream_ready(&mut self, host: HostId, out: &mut Vec<PoolOutcome<T>>) {
        loop {
            let pool = &mut self.hosts[host.index()];
            let Some(&conn) = pool.idle.last() else { break };
            let Some(request) = pool.pending.pop_front() else {
                break;
            };
            self.pending -= 1;
            if self.active >= self.limits.max_requests {
                self.stats.upstream_rq_pending_overflow += 1;
                out.push(PoolOutcome::Overflow { request, host });
                continue;
            }
            self.hosts[host.index()].idle.pop();
            self.attach(conn, host, request, out);
        }
    }

    /// The request on `conn` finished (any status). Frees its slot and serves what waits.
    pub fn finished(&mut self, conn: ConnId, out: &mut Vec<PoolOutcome<T>>) {
        let connection = &mut self.connections[conn.0 as usize];
        let host = connection.host;
        assert!(
            matches!(connection.state, ConnState::Busy | ConnState::Draining),
            "{conn:?} finished with no request on it"
        );
        self.active -= 1;
        self.active_per_host[host.index()] -= 1;
        if connection.state == ConnState::Draining {
            connection.state = ConnState::Closed;
            self.free_ids.push(conn);
            let pool = &mut self.hosts[host.index()];
            pool.open -= 1;
            pool.draining -= 1;
            self.open -= 1;
            self.try_open(host, out);
        } else {
            connection.state = ConnState::Idle;
            self.hosts[host.index()].idle.push(conn);
            self.on_upstream_ready(host, out);
        }
    }
}
