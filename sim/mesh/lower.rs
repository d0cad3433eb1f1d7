//! Lowering the manifests' Istio objects into the mesh model: a DestinationRule's traffic
//! policy per subset (the §1 merge: a subset's block replaces the top-level block whole), and a
//! VirtualService's HTTP routes. Validation follows what Istio's webhook refuses (durations,
//! `maxEjectionPercent` within 0..=100, subsets with labels, route weights that sum to 100).
//!
//! Invariants: a refused field is a [`MeshLowerError`] naming the file, line and field, never
//! a default; nothing is dropped silently (a field the model does not simulate is refused by
//! [`super::istio::cluster_policy`] as unsupported).

use std::collections::BTreeMap;

use super::istio::{
    IstioConnectionPool, IstioHttpSettings, IstioLoadBalancer, IstioOutlierDetection,
    IstioSimpleLb, IstioTcpSettings, IstioTrafficPolicy,
};
use super::route::{Destination, HttpRouteSpec, RouteMatchSpec, StringMatchSpec};
use crate::diag::Diagnostic;
use crate::engine::{SimDuration, parse_duration};
use crate::manifests::Sourced;
use crate::manifests::istio::{DestinationRule, StringMatch, TrafficPolicy, VirtualService};

/// A field Istio would refuse, or the model cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", diagnostic.headline())]
pub struct MeshLowerError {
    pub diagnostic: Diagnostic,
}

fn bad<T>(object: &Sourced<T>, field: &str, message: impl Into<String>) -> MeshLowerError {
    MeshLowerError {
        diagnostic: Diagnostic::error(object.field_location(field), field, message),
    }
}

fn duration<T>(
    object: &Sourced<T>,
    field: &str,
    text: Option<&String>,
) -> Result<Option<SimDuration>, MeshLowerError> {
    match text {
        None => Ok(None),
        Some(text) => parse_duration(text)
            .map(Some)
            .map_err(|err| bad(object, field, format!("invalid duration: {err}"))),
    }
}

fn non_negative<T>(
    object: &Sourced<T>,
    field: &str,
    value: Option<i32>,
) -> Result<Option<u32>, MeshLowerError> {
    match value {
        None => Ok(None),
        Some(v) if v < 0 => Err(bad(object, field, format!("{v} must be non-negative"))),
        Some(v) => Ok(Some(v as u32)),
    }
}

fn traffic_policy<T>(
    object: &Sourced<T>,
    base: &str,
    policy: &TrafficPolicy,
) -> Result<IstioTrafficPolicy, MeshLowerError> {
    let mut out = IstioTrafficPolicy::default();
    if let Some(pool) = &policy.connection_pool {
        let tcp = match &pool.tcp {
            Some(tcp) => Some(IstioTcpSettings {
                max_connections: non_negative(
                    object,
                    &format!("{base}.connectionPool.tcp.maxConnections"),
                    tcp.max_connections,
                )?,
                connect_timeout: duration(
                    object,
                    &format!("{base}.connectionPool.tcp.connectTimeout"),
                    tcp.connect_timeout.as_ref(),
                )?,
                idle_timeout: duration(
                    object,
                    &format!("{base}.connectionPool.tcp.idleTimeout"),
                    tcp.idle_timeout.as_ref(),
                )?,
            }),
            None => None,
        };
        let http = match &pool.http {
            Some(http) => {
                let field = |name: &str| format!("{base}.connectionPool.http.{name}");
                Some(IstioHttpSettings {
                    http1_max_pending_requests: non_negative(
                        object,
                        &field("http1MaxPendingRequests"),
                        http.http1_max_pending_requests,
                    )?,
                    http2_max_requests: non_negative(
                        object,
                        &field("http2MaxRequests"),
                        http.http2_max_requests,
                    )?,
                    max_requests_per_connection: non_negative(
                        object,
                        &field("maxRequestsPerConnection"),
                        http.max_requests_per_connection,
                    )?,
                    max_retries: non_negative(object, &field("maxRetries"), http.max_retries)?,
                    idle_timeout: duration(
                        object,
                        &field("idleTimeout"),
                        http.idle_timeout.as_ref(),
                    )?,
                })
            }
            None => None,
        };
        out.connection_pool = Some(IstioConnectionPool { tcp, http });
    }
    if let Some(lb) = &policy.load_balancer {
        let simple = match lb.simple.as_deref() {
            None => None,
            Some("UNSPECIFIED") => Some(IstioSimpleLb::Unspecified),
            Some("LEAST_CONN") => Some(IstioSimpleLb::LeastConn),
            Some("RANDOM") => Some(IstioSimpleLb::Random),
            Some("PASSTHROUGH") => Some(IstioSimpleLb::Passthrough),
            Some("ROUND_ROBIN") => Some(IstioSimpleLb::RoundRobin),
            Some("LEAST_REQUEST") => Some(IstioSimpleLb::LeastRequest),
            Some(other) => {
                return Err(bad(
                    object,
                    &format!("{base}.loadBalancer.simple"),
                    format!("unknown load balancer {other:?}"),
                ));
            }
        };
        out.load_balancer = Some(IstioLoadBalancer {
            simple,
            consistent_hash: lb.consistent_hash.is_some(),
            warmup_duration: duration(
                object,
                &format!("{base}.loadBalancer.warmupDurationSecs"),
                lb.warmup_duration_secs.as_ref(),
            )?,
        });
    }
    if let Some(od) = &policy.outlier_detection {
        let field = |name: &str| format!("{base}.outlierDetection.{name}");
        let max_ejection_percent = non_negative(
            object,
            &field("maxEjectionPercent"),
            od.max_ejection_percent,
        )?;
        if let Some(p) = max_ejection_percent.filter(|p| *p > 100) {
            return Err(bad(
                object,
                &field("maxEjectionPercent"),
                format!("outlier detection maxEjectionPercent must be in range [0, 100], got {p}"),
            ));
        }
        let min_health_percent =
            non_negative(object, &field("minHealthPercent"), od.min_health_percent)?;
        if let Some(p) = min_health_percent.filter(|p| *p > 100) {
            return Err(bad(
                object,
                &field("minHealthPercent"),
                format!("outlier detection minHealthPercent must be in range [0, 100], got {p}"),
            ));
        }
        let interval = duration(object, &field("interval"), od.interval.as_ref())?;
        let base_ejection_time = duration(
            object,
            &field("baseEjectionTime"),
            od.base_ejection_time.as_ref(),
        )?;
        for (name, value) in [
            ("interval", interval),
            ("baseEjectionTime", base_ejection_time),
        ] {
            if value.is_some_and(|d| d < SimDuration::from_millis(1)) {
                return Err(bad(
                    object,
                    &field(name),
                    "duration must be greater than 1ms",
                ));
            }
        }
        out.outlier_detection = Some(IstioOutlierDetection {
            consecutive_5xx_errors: od.consecutive_5xx_errors,
            consecutive_gateway_errors: od.consecutive_gateway_errors,
            consecutive_errors: non_negative(
                object,
                &field("consecutiveErrors"),
                od.consecutive_errors,
            )?,
            interval,
            base_ejection_time,
            max_ejection_percent,
            min_health_percent,
            split_external_local_origin_errors: od.split_external_local_origin_errors,
            consecutive_local_origin_failures: od.consecutive_local_origin_failures,
        });
    }
    Ok(out)
}

/// The policy of one DestinationRule cluster: the default cluster (`subset: None`) or a subset's.
#[derive(Clone, Debug, PartialEq)]
pub struct SubsetPolicy {
    pub subset: Option<String>,
    /// Pod labels the subset selects (label-superset); empty for the default cluster.
    pub labels: BTreeMap<String, String>,
    pub policy: IstioTrafficPolicy,
}

/// A DestinationRule as clusters: the default one first, then each subset in order.
pub fn destination_rule(
    dr: &Sourced<DestinationRule>,
) -> Result<Vec<SubsetPolicy>, MeshLowerError> {
    let top = match &dr.spec.traffic_policy {
        Some(policy) => traffic_policy(dr, "spec.trafficPolicy", policy)?,
        None => IstioTrafficPolicy::default(),
    };
    let mut out = vec![SubsetPolicy {
        subset: None,
        labels: BTreeMap::new(),
        policy: top.clone(),
    }];
    let mut seen = std::collections::BTreeSet::new();
    for (idx, subset) in dr.spec.subsets.iter().enumerate() {
        let base = format!("spec.subsets[{idx}]");
        if subset.name.is_empty() {
            return Err(bad(
                dr,
                &format!("{base}.name"),
                "subset name is invalid: subset must have a name",
            ));
        }
        if !seen.insert(subset.name.clone()) {
            return Err(bad(
                dr,
                &format!("{base}.name"),
                format!("duplicate subset names: {}", subset.name),
            ));
        }
        if subset.labels.is_empty() {
            return Err(bad(
                dr,
                &format!("{base}.labels"),
                format!("subset {} must have at least one label", subset.name),
            ));
        }
        let mut policy = top.clone();
        if let Some(own) = &subset.traffic_policy {
            // §1: each block the subset writes replaces the parent's block whole.
            let own = traffic_policy(dr, &format!("{base}.trafficPolicy"), own)?;
            if own.connection_pool.is_some() {
                policy.connection_pool = own.connection_pool;
            }
            if own.load_balancer.is_some() {
                policy.load_balancer = own.load_balancer;
            }
            if own.outlier_detection.is_some() {
                policy.outlier_detection = own.outlier_detection;
            }
        }
        out.push(SubsetPolicy {
            subset: Some(subset.name.clone()),
            labels: subset.labels.clone(),
            policy,
        });
    }
    Ok(out)
}

fn string_match<T>(
    object: &Sourced<T>,
    field: &str,
    m: &StringMatch,
) -> Result<StringMatchSpec, MeshLowerError> {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(v), None, None) => Ok(StringMatchSpec::Exact(v.clone())),
        (None, Some(v), None) => Ok(StringMatchSpec::Prefix(v.clone())),
        (None, None, Some(v)) => Ok(StringMatchSpec::Regex(v.clone())),
        (None, None, None) => Ok(StringMatchSpec::Present),
        _ => Err(bad(
            object,
            field,
            "a string match sets exactly one of exact, prefix, regex",
        )),
    }
}

/// A VirtualService's HTTP routes in the mesh model's form.
pub fn virtual_service(vs: &Sourced<VirtualService>) -> Result<Vec<HttpRouteSpec>, MeshLowerError> {
    let mut routes = Vec::new();
    for (idx, http) in vs.spec.http.iter().enumerate() {
        let base = format!("spec.http[{idx}]");
        let mut matches = Vec::new();
        for (midx, m) in http.matches.iter().enumerate() {
            let mbase = format!("{base}.match[{midx}]");
            let mut spec = RouteMatchSpec {
                ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
                ..Default::default()
            };
            if let Some(uri) = &m.uri {
                spec.uri = Some(string_match(vs, &format!("{mbase}.uri"), uri)?);
            }
            if let Some(method) = &m.method {
                spec.method = Some(string_match(vs, &format!("{mbase}.method"), method)?);
            }
            for (name, value) in &m.headers {
                spec.headers.push((
                    name.clone(),
                    string_match(vs, &format!("{mbase}.headers.{name}"), value)?,
                ));
            }
            for (name, value) in &m.without_headers {
                spec.without_headers.push((
                    name.clone(),
                    string_match(vs, &format!("{mbase}.withoutHeaders.{name}"), value)?,
                ));
            }
            matches.push(spec);
        }
        let single = http.route.len() == 1;
        let mut total = 0i64;
        let mut destinations = Vec::new();
        for (ridx, r) in http.route.iter().enumerate() {
            let weight = match r.weight {
                Some(w) if w < 0 => {
                    return Err(bad(
                        vs,
                        &format!("{base}.route[{ridx}].weight"),
                        format!("weight {w} < 0"),
                    ));
                }
                Some(w) => w as u32,
                // One destination without a weight takes all the traffic.
                None if single => 100,
                None => 0,
            };
            total += i64::from(weight);
            destinations.push(Destination {
                host: r.destination.host.clone(),
                subset: r.destination.subset.clone(),
                port: r
                    .destination
                    .port
                    .as_ref()
                    .and_then(|p| u16::try_from(p.number).ok()),
                weight,
            });
        }
        if !single && total != 100 && !destinations.is_empty() {
            return Err(bad(
                vs,
                &format!("{base}.route"),
                format!("total destination weight {total} != 100"),
            ));
        }
        routes.push(HttpRouteSpec {
            name: http.name.clone(),
            matches,
            route: destinations,
        });
    }
    Ok(routes)
}

/// Which pods an AuthorizationPolicy applies to, with the policy in the mesh model's form.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopedAuthorizationPolicy {
    /// The policy's namespace; the root namespace (`istio-system`) makes it mesh-wide.
    pub namespace: String,
    /// `spec.selector.matchLabels`; `None` selects every workload of the namespace.
    pub selector: Option<BTreeMap<String, String>>,
    pub policy: crate::mesh::authz::AuthorizationPolicy,
}

/// Istio's default root namespace: a policy there applies to the whole mesh.
pub const ROOT_NAMESPACE: &str = "istio-system";

impl ScopedAuthorizationPolicy {
    /// Whether the policy applies to a pod of `namespace` with `labels`.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.namespace == ROOT_NAMESPACE || self.namespace == namespace)
            && self
                .selector
                .as_ref()
                .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// An AuthorizationPolicy in the mesh model's form. ALLOW and DENY with principals, methods
/// and paths are modelled; AUDIT and CUSTOM, `when` conditions, `targetRef(s)`, and sources
/// or operations by namespace, IP, request principal, service account, host or port are valid
/// Istio the simulator refuses rather than ignore (ignoring one would allow or deny what the
/// real sidecar does not).
pub fn authorization_policy(
    ap: &Sourced<crate::manifests::istio::AuthorizationPolicy>,
) -> Result<ScopedAuthorizationPolicy, MeshLowerError> {
    use crate::mesh::authz::{
        AuthorizationPolicy, AuthzAction, AuthzOperation, AuthzRule, AuthzSource,
    };
    let unsupported = |field: &str, what: &str| MeshLowerError {
        diagnostic: Diagnostic::error(
            ap.field_location(field),
            field,
            format!("{what} is valid Istio but not modelled by the simulator"),
        ),
    };
    // A match field the model does not evaluate must be empty.
    let refuse_if_set = |field: &str, name: &str, list: &[String], what: &str| {
        if list.is_empty() {
            Ok(())
        } else {
            Err(unsupported(
                &format!("{field}.{name}"),
                &format!("{what} by {name}"),
            ))
        }
    };
    let spec = &ap.spec;
    let action = match spec.action.as_deref() {
        None | Some("ALLOW") => AuthzAction::Allow,
        Some("DENY") => AuthzAction::Deny,
        Some(other @ ("AUDIT" | "CUSTOM")) => {
            return Err(unsupported("spec.action", &format!("action {other}")));
        }
        Some(other) => {
            return Err(bad(
                ap,
                "spec.action",
                format!("unknown action {other:?}: one of ALLOW, DENY, AUDIT, CUSTOM"),
            ));
        }
    };
    if spec.target_ref.is_some() || spec.target_refs.is_some() {
        return Err(unsupported("spec.targetRef", "a targetRef"));
    }
    if spec.provider.is_some() {
        return Err(unsupported("spec.provider", "a CUSTOM provider"));
    }
    let mut rules = Vec::with_capacity(spec.rules.len());
    for (idx, rule) in spec.rules.iter().enumerate() {
        let base = format!("spec.rules[{idx}]");
        if !rule.when.is_empty() {
            return Err(unsupported(&format!("{base}.when"), "a when condition"));
        }
        let mut from = Vec::with_capacity(rule.from.len());
        for (fidx, f) in rule.from.iter().enumerate() {
            let field = format!("{base}.from[{fidx}].source");
            let s = &f.source;
            for (name, list) in [
                ("requestPrincipals", &s.request_principals),
                ("notRequestPrincipals", &s.not_request_principals),
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
                ("ipBlocks", &s.ip_blocks),
                ("notIpBlocks", &s.not_ip_blocks),
                ("remoteIpBlocks", &s.remote_ip_blocks),
                ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
                ("serviceAccounts", &s.service_accounts),
                ("notServiceAccounts", &s.not_service_accounts),
            ] {
                refuse_if_set(&field, name, list, "a source")?;
            }
            from.push(AuthzSource {
                principals: s.principals.clone(),
                not_principals: s.not_principals.clone(),
            });
        }
        let mut to = Vec::with_capacity(rule.to.len());
        for (tidx, t) in rule.to.iter().enumerate() {
            let field = format!("{base}.to[{tidx}].operation");
            let o = &t.operation;
            for (name, list) in [
                ("hosts", &o.hosts),
                ("notHosts", &o.not_hosts),
                ("ports", &o.ports),
                ("notPorts", &o.not_ports),
            ] {
                refuse_if_set(&field, name, list, "an operation")?;
            }
            to.push(AuthzOperation {
                methods: o.methods.clone(),
                not_methods: o.not_methods.clone(),
                paths: o.paths.clone(),
                not_paths: o.not_paths.clone(),
            });
        }
        rules.push(AuthzRule { from, to });
    }
    Ok(ScopedAuthorizationPolicy {
        namespace: ap
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        selector: spec.selector.as_ref().map(|s| s.match_labels.clone()),
        policy: AuthorizationPolicy {
            name: ap.metadata.name.clone().unwrap_or_default(),
            action,
            rules,
        },
    })
}

/// The short name of a destination host (`agno-coordinator`, `agno-coordinator.ns`,
/// `agno-coordinator.ns.svc.cluster.local` all name the Service `agno-coordinator`).
pub fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// One cluster of a DestinationRule, as the Envoy of a client sidecar gets it.
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationRuleCluster {
    /// The DR's `spec.host` as written.
    pub host: String,
    /// `None` for the service's default cluster.
    pub subset: Option<String>,
    pub policy: crate::mesh::policy::ClusterPolicy,
}

/// Reads the one DestinationRule of a file (other kinds in it are ignored) and translates its
/// default cluster and each subset's as istiod `version` would. Every refusal names the file,
/// line and field.
pub fn load_destination_rule_file(
    path: &std::path::Path,
    version: crate::mesh::istio::IstioVersion,
) -> Result<Vec<DestinationRuleCluster>, crate::diag::Diagnostics> {
    use crate::diag::{Diagnostics, Location};
    let inventory =
        crate::manifests::load_file(path).map_err(|err| Diagnostics(err.diagnostics().to_vec()))?;
    let here = Location {
        file: path.to_path_buf(),
        ..Default::default()
    };
    let dr = match inventory.destination_rules() {
        [dr] => dr,
        [] => {
            return Err(Diagnostics(vec![Diagnostic::error(
                here,
                "",
                "no DestinationRule (networking.istio.io) in this file",
            )]));
        }
        many => {
            let names: Vec<&str> = many.iter().map(|dr| dr.spec.host.as_str()).collect();
            return Err(Diagnostics(vec![Diagnostic::error(
                here,
                "",
                format!(
                    "{} DestinationRules in this file (hosts {}); give a file with one",
                    many.len(),
                    names.join(", ")
                ),
            )]));
        }
    };
    let subsets = destination_rule(dr).map_err(|err| Diagnostics(vec![err.diagnostic]))?;
    let mut out = Vec::new();
    for subset in subsets {
        let base = match &subset.subset {
            None => "spec".to_string(),
            Some(name) => {
                let idx = dr
                    .spec
                    .subsets
                    .iter()
                    .position(|s| &s.name == name)
                    .unwrap_or(0);
                format!("spec.subsets[{idx}]")
            }
        };
        let policy =
            crate::mesh::istio::cluster_policy(&subset.policy, version).map_err(|err| {
                let field = match &err {
                    crate::mesh::MeshError::Invalid { field, .. }
                    | crate::mesh::MeshError::Unsupported { field, .. } => {
                        if field.starts_with("trafficPolicy") {
                            format!("{base}.{field}")
                        } else {
                            format!("{base}.trafficPolicy")
                        }
                    }
                };
                let message = match &err {
                    crate::mesh::MeshError::Invalid { why, .. } => why.clone(),
                    crate::mesh::MeshError::Unsupported { what, .. } => {
                        format!("{what} is valid Istio but not modelled by the simulator")
                    }
                };
                Diagnostics(vec![Diagnostic::error(
                    dr.field_location(&field),
                    field.clone(),
                    message,
                )])
            })?;
        out.push(DestinationRuleCluster {
            host: dr.spec.host.clone(),
            subset: subset.subset,
            policy,
        });
    }
    Ok(out)
}
