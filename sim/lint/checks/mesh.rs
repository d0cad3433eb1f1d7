//! Istio checks: subsets against pod labels, routes against what exists, DestinationRule fields
//! that istiod ignores or translates surprisingly (spec/mesh.md §1, §2.3, §3.4, §4.1, §6), Gateways,
//! and AuthorizationPolicy rule structure.

use crate::diag::Severity;
use crate::lint::Sink;
use crate::lint::model::{DestinationRule, Model, Service, Workload, contains_all, show_labels};

use super::resolve_service;

pub(super) fn run(model: &Model, out: &mut Sink<'_>) {
    for dr in &model.destination_rules {
        subsets_select_pods(model, dr, out);
        ignored_outlier_fields(model, dr, out);
    }
    routes_reach_something(model, out);
    gateways_exist(model, out);
    authorization_rules_combine(model, out);
}

/// The Deployments whose pods a Service selects.
pub(super) fn backing_workloads<'m>(model: &'m Model, service: &Service) -> Vec<&'m Workload> {
    let Some(selector) = &service.selector else {
        return Vec::new();
    };
    model
        .workloads
        .iter()
        .filter(|w| {
            w.namespace == service.namespace
                && !selector.is_empty()
                && contains_all(&w.pod_labels, selector)
        })
        .collect()
}

fn subsets_select_pods(model: &Model, dr: &DestinationRule, out: &mut Sink<'_>) {
    let service = match resolve_service(model, &dr.host, &dr.namespace) {
        Ok(Some(service)) => service,
        Ok(None) => {
            out.push(
                Severity::Warning,
                "destination-rule-host-unknown",
                dr.src,
                "spec.host",
                format!("host `{}` is no Service of the inventory, so its subsets select nothing here", dr.host),
                "point spec.host at the Service (name, name.namespace or its cluster.local name), or add the Service",
            );
            return;
        }
        Err(()) => return,
    };
    if service.selector.is_none() {
        return;
    }
    let backing = backing_workloads(model, service);
    if backing.is_empty() {
        out.push(
            Severity::Error,
            "service-selects-no-pod",
            service.src,
            "spec.selector",
            format!(
                "Service {} selects {} and no Deployment's pod template carries those labels: it has no endpoints",
                service.name,
                show_labels(service.selector.as_ref().expect("checked above"))
            ),
            "make the selector match the pod template labels of the Deployment that serves it",
        );
        return;
    }
    for subset in &dr.subsets {
        let selected: Vec<&&Workload> = backing
            .iter()
            .filter(|w| contains_all(&w.pod_labels, &subset.labels))
            .collect();
        if !selected.is_empty() {
            continue;
        }
        let carried: Vec<String> = backing
            .iter()
            .map(|w| {
                let shown: Vec<String> = subset
                    .labels
                    .keys()
                    .map(|k| {
                        format!(
                            "{k}={}",
                            w.pod_labels.get(k).map_or("(absent)", String::as_str)
                        )
                    })
                    .collect();
                format!("Deployment {} has {}", w.name, shown.join(", "))
            })
            .collect();
        out.push(
            Severity::Error,
            "subset-selects-no-pod",
            dr.src,
            format!("{}.labels", subset.field),
            format!(
                "subset `{}` wants {} but no pod of Service {} has it ({}): the subset's cluster has no endpoints and traffic routed to it gets 503 `no healthy upstream`",
                subset.name,
                show_labels(&subset.labels),
                service.name,
                carried.join("; ")
            ),
            format!(
                "label the pod template of the Deployment meant for `{}` with {}, or change the subset's labels to ones its pods carry",
                subset.name,
                show_labels(&subset.labels)
            ),
        );
    }
}

/// The DestinationRules that could define a subset for a Service.
fn rules_for<'m>(model: &'m Model, service: &Service) -> Vec<&'m DestinationRule> {
    model
        .destination_rules
        .iter()
        .filter(|dr| {
            matches!(resolve_service(model, &dr.host, &dr.namespace), Ok(Some(s)) if s.name == service.name && s.namespace == service.namespace)
        })
        .collect()
}

fn routes_reach_something(model: &Model, out: &mut Sink<'_>) {
    for vs in &model.virtual_services {
        for dest in &vs.destinations {
            let service = match resolve_service(model, &dest.host, &vs.namespace) {
                Ok(Some(service)) => service,
                Ok(None) => {
                    out.push(
                        Severity::Error,
                        "route-to-nothing",
                        vs.src,
                        format!("{}.host", dest.field),
                        format!("route destination host `{}` is no Service of the inventory: requests routed there fail", dest.host),
                        "point the destination at an existing Service, or add the Service",
                    );
                    continue;
                }
                Err(()) => continue,
            };
            let Some(subset_name) = &dest.subset else {
                continue;
            };
            let rules = rules_for(model, service);
            let subset = rules
                .iter()
                .flat_map(|dr| dr.subsets.iter())
                .find(|s| &s.name == subset_name);
            let share = route_share(vs, &dest.field, dest.weight);
            match subset {
                None => out.push(
                    Severity::Error,
                    "route-to-nothing",
                    vs.src,
                    format!("{}.subset", dest.field),
                    format!(
                        "{share} goes to subset `{subset_name}` of {}, which no DestinationRule defines: Envoy has no such cluster and answers 503 (NC)",
                        service.name
                    ),
                    format!("define subset `{subset_name}` in the DestinationRule for host {}", service.name),
                ),
                Some(subset) => {
                    let backing = backing_workloads(model, service);
                    if !backing.is_empty() && !backing.iter().any(|w| contains_all(&w.pod_labels, &subset.labels)) {
                        out.push(
                            Severity::Error,
                            "route-to-nothing",
                            vs.src,
                            format!("{}.subset", dest.field),
                            format!(
                                "{share} goes to subset `{subset_name}` of {}, which selects no pod ({}): those requests get 503 `no healthy upstream` (UH)",
                                service.name,
                                show_labels(&subset.labels)
                            ),
                            format!("fix the labels of subset `{subset_name}` or of the pods it is meant to select"),
                        );
                    }
                }
            }
        }
    }
}

/// Describes the traffic share of one destination among its rule's destinations.
fn route_share(
    vs: &crate::lint::model::VirtualService,
    field: &str,
    weight: Option<i64>,
) -> String {
    let rule = field.split(".route[").next().unwrap_or(field);
    let siblings: Vec<_> = vs
        .destinations
        .iter()
        .filter(|d| d.field.split(".route[").next() == Some(rule))
        .collect();
    // A single destination takes all the traffic of its rule whatever its weight (mesh.md §6.3).
    if siblings.len() <= 1 {
        return format!("all traffic of {rule}");
    }
    let total: i64 = siblings.iter().map(|d| d.weight.unwrap_or(0)).sum();
    match weight {
        Some(w) if total > 0 => format!("{}% of the traffic of {rule}", w * 100 / total),
        _ => format!("part of the traffic of {rule}"),
    }
}

fn ignored_outlier_fields(model: &Model, dr: &DestinationRule, out: &mut Sink<'_>) {
    let hosts = match resolve_service(model, &dr.host, &dr.namespace) {
        Ok(Some(service)) => {
            let backing = backing_workloads(model, service);
            if backing.is_empty() {
                None
            } else {
                Some(
                    backing
                        .iter()
                        .map(|w| i64::from(w.replicas.unwrap_or(1)))
                        .sum::<i64>(),
                )
            }
        }
        _ => None,
    };
    for block in &dr.outlier_detections {
        let five_xx = match block.consecutive_5xx_errors {
            Some(0) => "consecutive_5xx is off (consecutive5xxErrors: 0)".to_string(),
            Some(n) => format!("consecutive_5xx={n} at 100% enforcement (from consecutive5xxErrors)"),
            None => "Envoy's default consecutive_5xx=5 at 100% enforcement (consecutive5xxErrors unset): any 5xx, five in a row, ejects a host".to_string(),
        };
        let gateway = match block.consecutive_gateway_errors {
            Some(0) | None => "consecutive_gateway_failure is off (enforcement 0%)".to_string(),
            Some(n) => format!("consecutive_gateway_failure={n} at 100% (502/503/504 only)"),
        };
        if let Some(n) = block.consecutive_errors {
            out.push(
                Severity::Warning,
                "istio-ignored-field",
                dr.src,
                format!("{}.consecutiveErrors", block.field),
                format!("`consecutiveErrors: {n}` has been ignored by istiod since Istio 1.7; what runs is {five_xx}, and {gateway}"),
                "write consecutive5xxErrors (any 5xx counts), or consecutiveGatewayErrors with consecutive5xxErrors: 0 for the pre-1.7 meaning (only 502/503/504)",
            );
        }
        let max_ejection = block.max_ejection_percent.unwrap_or(10).clamp(0, 100);
        if let Some(min_health) = block.min_health_percent {
            let never = 100 - max_ejection >= min_health;
            out.push(
                Severity::Info,
                "istio-field-meaning",
                dr.src,
                format!("{}.minHealthPercent", block.field),
                format!(
                    "`minHealthPercent: {min_health}` becomes Envoy's healthy_panic_threshold {min_health}, not a floor on ejections: below {min_health}% healthy hosts Envoy balances over all hosts, ejected ones included{}",
                    if never {
                        format!("; with maxEjectionPercent {max_ejection} at least {}% of hosts stay in, so panic mode never starts", 100 - max_ejection)
                    } else {
                        String::new()
                    }
                ),
                "use maxEjectionPercent to bound ejections; keep minHealthPercent only if panic routing is wanted",
            );
        }
        if let Some(n_hosts) = hosts {
            // Envoy 1.40's strict test: 100 * (ejected + 1) / total <= max (mesh.md §3.4).
            let max_ejected = (max_ejection * n_hosts) / 100;
            if max_ejected == 0 {
                out.push(
                    Severity::Warning,
                    "outlier-detection-never-ejects",
                    dr.src,
                    block.field.clone(),
                    format!(
                        "with maxEjectionPercent {max_ejection} and {n_hosts} hosts, Envoy may eject no host at all (100 x 1 / {n_hosts} > {max_ejection}): every detection becomes ejections_overflow"
                    ),
                    format!("set maxEjectionPercent to at least {}", (100 + n_hosts - 1) / n_hosts),
                );
            }
        }
    }
}

fn gateways_exist(model: &Model, out: &mut Sink<'_>) {
    for vs in &model.virtual_services {
        for (gateway, field) in &vs.gateways {
            if gateway == "mesh" {
                continue;
            }
            let (namespace, name) = match gateway.split_once('/') {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => (vs.namespace.clone(), gateway.clone()),
            };
            if model.gateways.contains(&(namespace.clone(), name.clone())) {
                continue;
            }
            out.push(
                Severity::Warning,
                "reference-undefined",
                vs.src,
                field.clone(),
                format!(
                    "Gateway {namespace}/{name} is not in the inventory (it may be created elsewhere): without it nothing serves this VirtualService's hosts{}",
                    if vs.gateways.iter().any(|(g, _)| g == "mesh") {
                        ""
                    } else {
                        ", and since `mesh` is not listed its routes do not apply to sidecar traffic either"
                    }
                ),
                format!("add the Gateway {namespace}/{name} (networking.istio.io), or list `mesh` to route in-mesh traffic"),
            );
        }
    }
}

fn authorization_rules_combine(model: &Model, out: &mut Sink<'_>) {
    for policy in &model.authorization_policies {
        if policy.action != "ALLOW" {
            continue;
        }
        let only_from: Vec<_> = policy
            .rules
            .iter()
            .filter(|r| !r.from.is_empty() && r.to.is_empty() && !r.has_when)
            .collect();
        let only_to: Vec<_> = policy
            .rules
            .iter()
            .filter(|r| r.from.is_empty() && !r.to.is_empty() && !r.has_when)
            .collect();
        if only_from.is_empty() || only_to.is_empty() {
            continue;
        }
        let sources = only_from
            .iter()
            .flat_map(|r| r.from.iter().cloned())
            .collect::<Vec<_>>()
            .join(" or ");
        let operations = only_to
            .iter()
            .flat_map(|r| r.to.iter().cloned())
            .collect::<Vec<_>>()
            .join(" or ");
        out.push(
            Severity::Warning,
            "authorization-rules-split",
            policy.src,
            only_to[0].field.clone(),
            format!(
                "rules are ORed and fields inside one rule are ANDed: this ALLOWs {operations} from anyone (no `from`, so unauthenticated callers too), and any method on any path from {sources}"
            ),
            "if the intent is \"these callers may do these operations\", put `from` and `to` in the same rule",
        );
    }
}
