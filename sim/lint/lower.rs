//! Lowers an [`Inventory`] (and a [`Topology`]) into the flat [`Model`] the checks read.
//!
//! Only copies: nothing here judges. Quantities that do not parse are left out (the loader
//! reports bad quantities itself); defaults are applied only where Kubernetes applies them
//! (a RollingUpdate strategy of 25 % / 25 %).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container as KubeContainer, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KubeLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::diag::Location;
use crate::manifests::quantity::parse_quantity;
use crate::manifests::topology::Topology;
use crate::manifests::{FieldPositions, Inventory, Origin, Sourced};

use super::model::{
    Alert, ArgoApplication, AuthorizationPolicy, AuthorizationRule, Container, DashboardQuery,
    DestinationRule, Hpa, HpaMetric, IntOrPercent, LabelSelector, Model, Node, ObjectRef,
    OutlierDetection, Quota, RelabelConfig, Requirement, RouteDestination, ScrapeJob, Service,
    SloObject, SloObjective, Source, SourceId, Subset, Taint, Toleration, VirtualService, Workload,
};

/// Builds the model the checks read.
pub fn lower(inventory: &Inventory, topology: Option<&Topology>) -> Model {
    let mut model = Model::default();
    lower_core(inventory, &mut model);
    lower_mesh(inventory, &mut model);
    lower_monitoring(inventory, &mut model);
    model.nodes = topology.map(lower_topology);
    model
}

fn add<T>(
    model: &mut Model,
    item: &Sourced<T>,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> SourceId {
    model.add_source(Source {
        object: ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: name.to_string(),
        },
        origin: item.origin.location(),
        positions: Some((item.origin.clone(), Arc::clone(&item.positions))),
        path_prefix: String::new(),
    })
}

fn quantities(map: Option<&BTreeMap<String, KubeQuantity>>) -> BTreeMap<String, i128> {
    map.into_iter()
        .flatten()
        .filter_map(|(name, q)| {
            parse_quantity(&q.0)
                .ok()
                .map(|parsed| (name.clone(), parsed.millis))
        })
        .collect()
}

fn selector(sel: &KubeLabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: sel.match_labels.clone().unwrap_or_default(),
        match_expressions: sel
            .match_expressions
            .iter()
            .flatten()
            .map(|e| Requirement {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn int_or_percent(value: &IntOrString) -> Option<IntOrPercent> {
    match value {
        IntOrString::Int(n) => Some(IntOrPercent::Int(i64::from(*n))),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse().ok())
            .map(IntOrPercent::Percent),
    }
}

fn container(c: &KubeContainer, field: String) -> Container {
    let resources = c.resources.as_ref();
    Container {
        name: c.name.clone(),
        field,
        image: c.image.clone().unwrap_or_default(),
        image_pull_policy: c.image_pull_policy.clone(),
        requests_milli: quantities(resources.and_then(|r| r.requests.as_ref())),
        limits_milli: quantities(resources.and_then(|r| r.limits.as_ref())),
        has_liveness_probe: c.liveness_probe.is_some(),
        has_readiness_probe: c.readiness_probe.is_some(),
    }
}

fn workload(deployment: &Deployment, src: SourceId) -> Workload {
    let meta = &deployment.metadata;
    let spec = deployment.spec.as_ref();
    let template = spec.map(|s| &s.template);
    let pod_meta = template.and_then(|t| t.metadata.as_ref());
    let default_pod = PodSpec::default();
    let pod = template
        .and_then(|t| t.spec.as_ref())
        .unwrap_or(&default_pod);
    let base = "spec.template.spec";
    let mut out = Workload {
        src,
        namespace: meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        name: meta.name.clone().unwrap_or_default(),
        replicas: spec.and_then(|s| s.replicas),
        pod_labels: pod_meta.and_then(|m| m.labels.clone()).unwrap_or_default(),
        pod_annotations: pod_meta
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default(),
        node_selector: pod.node_selector.clone().unwrap_or_default(),
        priority_class: pod.priority_class_name.clone(),
        service_account: pod.service_account_name.clone(),
        ..Default::default()
    };
    let affinity = pod.affinity.as_ref();
    if let Some(required) = affinity
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        out.required_node_terms = required
            .node_selector_terms
            .iter()
            .map(|term| {
                term.match_expressions
                    .iter()
                    .flatten()
                    .map(|e| Requirement {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: e.values.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect();
    }
    if let Some(terms) = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        out.hostname_anti_affinity = terms
            .iter()
            .filter(|t| t.topology_key == "kubernetes.io/hostname")
            .map(|t| t.label_selector.as_ref().map(selector).unwrap_or_default())
            .collect();
    }
    out.tolerations = pod
        .tolerations
        .iter()
        .flatten()
        .map(|t| Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator: t.operator.clone().unwrap_or_default(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone().unwrap_or_default(),
        })
        .collect();
    for (idx, c) in pod.containers.iter().enumerate() {
        let field = format!("{base}.containers[{idx}]");
        for (env_idx, from) in c.env_from.iter().flatten().enumerate() {
            if let Some(secret) = &from.secret_ref
                && secret.optional != Some(true)
            {
                out.secret_refs.push((
                    secret.name.clone(),
                    format!("{field}.envFrom[{env_idx}].secretRef.name"),
                ));
            }
            if let Some(map) = &from.config_map_ref
                && map.optional != Some(true)
            {
                out.config_map_refs.push((
                    map.name.clone(),
                    format!("{field}.envFrom[{env_idx}].configMapRef.name"),
                ));
            }
        }
        for (env_idx, env) in c.env.iter().flatten().enumerate() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(key) = &from.secret_key_ref
                && key.optional != Some(true)
            {
                out.secret_refs.push((
                    key.name.clone(),
                    format!("{field}.env[{env_idx}].valueFrom.secretKeyRef.name"),
                ));
            }
            if let Some(key) = &from.config_map_key_ref
                && key.optional != Some(true)
            {
                out.config_map_refs.push((
                    key.name.clone(),
                    format!("{field}.env[{env_idx}].valueFrom.configMapKeyRef.name"),
                ));
            }
        }
        out.containers.push(container(c, field));
    }
    for (idx, volume) in pod.volumes.iter().flatten().enumerate() {
        let field = format!("{base}.volumes[{idx}]");
        if let Some(map) = &volume.config_map
            && map.optional != Some(true)
        {
            out.config_map_refs
                .push((map.name.clone(), format!("{field}.configMap.name")));
        }
        if let Some(secret) = &volume.secret
            && secret.optional != Some(true)
            && let Some(name) = &secret.secret_name
        {
            out.secret_refs
                .push((name.clone(), format!("{field}.secret.secretName")));
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            out.pvc_refs.push((
                claim.claim_name.clone(),
                format!("{field}.persistentVolumeClaim.claimName"),
            ));
        }
    }
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if !recreate {
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        let default = IntOrPercent::Percent(25);
        out.max_surge = Some(
            rolling
                .and_then(|r| r.max_surge.as_ref())
                .and_then(int_or_percent)
                .unwrap_or(default.clone()),
        );
        out.max_unavailable = Some(
            rolling
                .and_then(|r| r.max_unavailable.as_ref())
                .and_then(int_or_percent)
                .unwrap_or(default),
        );
    }
    out
}

/// Words that mark an object as serving the custom or external metrics APIs.
const ADAPTER_HINTS: [&str; 4] = [
    "prometheus-adapter",
    "k8s-prometheus-adapter",
    "keda",
    "custom-metrics",
];

fn lower_core(inventory: &Inventory, model: &mut Model) {
    for item in inventory.deployments() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let src = add(
            model,
            item,
            "Deployment",
            item.metadata.namespace.as_deref(),
            &name,
        );
        let lowered = workload(item, src);
        let images = lowered
            .containers
            .iter()
            .map(|c| c.image.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        if ADAPTER_HINTS
            .iter()
            .any(|hint| name.to_lowercase().contains(hint) || images.contains(hint))
        {
            model.metrics_adapters.push(format!("Deployment {name}"));
        }
        model.workloads.push(lowered);
    }
    for item in inventory.services() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(model, item, "Service", Some(&namespace), &name);
        let selector = item.spec.as_ref().and_then(|s| s.selector.clone());
        model.services.push(Service {
            src,
            namespace,
            name,
            selector,
        });
    }
    for item in inventory.hpas() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(
            model,
            item,
            "HorizontalPodAutoscaler",
            Some(&namespace),
            &name,
        );
        let Some(spec) = &item.spec else { continue };
        let metrics = spec
            .metrics
            .iter()
            .flatten()
            .enumerate()
            .map(|(idx, m)| {
                let metric_name = match m.type_.as_str() {
                    "Pods" => m.pods.as_ref().map(|p| p.metric.name.clone()),
                    "Object" => m.object.as_ref().map(|o| o.metric.name.clone()),
                    "External" => m.external.as_ref().map(|e| e.metric.name.clone()),
                    "Resource" => m.resource.as_ref().map(|r| r.name.clone()),
                    "ContainerResource" => m.container_resource.as_ref().map(|r| r.name.clone()),
                    _ => None,
                };
                HpaMetric {
                    kind: m.type_.clone(),
                    metric_name: metric_name.unwrap_or_default(),
                    field: format!("spec.metrics[{idx}]"),
                }
            })
            .collect();
        model.hpas.push(Hpa {
            src,
            namespace,
            name,
            target_kind: spec.scale_target_ref.kind.clone(),
            target_name: spec.scale_target_ref.name.clone(),
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            metrics,
        });
    }
    for item in inventory.resource_quotas() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(model, item, "ResourceQuota", Some(&namespace), &name);
        let hard = quantities(item.spec.as_ref().and_then(|s| s.hard.as_ref()));
        model.quotas.push(Quota {
            src,
            namespace,
            name,
            hard_milli: hard,
        });
    }
    let key = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            meta.namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            meta.name.clone().unwrap_or_default(),
        )
    };
    model.priority_classes = inventory
        .priority_classes()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    model.service_accounts = inventory
        .service_accounts()
        .iter()
        .map(|s| key(&s.metadata))
        .collect();
    model.secrets = inventory
        .secrets()
        .iter()
        .map(|s| key(&s.metadata))
        .collect();
    model.config_maps = inventory
        .config_maps()
        .iter()
        .map(|c| key(&c.metadata))
        .collect();
    for map in inventory.config_maps() {
        let name = map.metadata.name.clone().unwrap_or_default();
        if ADAPTER_HINTS
            .iter()
            .any(|hint| name.to_lowercase().contains(hint))
        {
            model.metrics_adapters.push(format!("ConfigMap {name}"));
        }
    }
    for item in inventory.unknown() {
        let kind = item.kind.as_deref().unwrap_or_default();
        let name = item.name.clone().unwrap_or_default();
        let namespace = item
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        match kind {
            "Gateway"
                if item
                    .api_version
                    .as_deref()
                    .is_some_and(|v| v.starts_with("networking.istio.io/")) =>
            {
                model.gateways.insert((namespace, name));
            }
            "PersistentVolumeClaim" => {
                model.persistent_volume_claims.insert((namespace, name));
            }
            "APIService"
                if name.contains("custom.metrics.k8s.io")
                    || name.contains("external.metrics.k8s.io") =>
            {
                model.metrics_adapters.push(format!("APIService {name}"));
            }
            _ => {}
        }
    }
    for item in inventory.argo_applications() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let src = add(
            model,
            item,
            "Application",
            item.metadata.namespace.as_deref(),
            &name,
        );
        let self_heal = item
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.automated.as_ref())
            .and_then(|a| a.self_heal)
            == Some(true);
        let ignores_replicas = item
            .spec
            .other
            .get("ignoreDifferences")
            .is_some_and(|v| v.to_string().contains("/spec/replicas"));
        model.argo_applications.push(ArgoApplication {
            src,
            name,
            destination_namespace: item.spec.destination.namespace.clone().unwrap_or_default(),
            self_heal,
            ignores_replicas,
        });
    }
}

fn lower_mesh(inventory: &Inventory, model: &mut Model) {
    for item in inventory.destination_rules() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(model, item, "DestinationRule", Some(&namespace), &name);
        let spec = &item.spec;
        let mut outlier_detections = Vec::new();
        let outlier =
            |od: &crate::manifests::istio::OutlierDetection, field: String| OutlierDetection {
                field,
                consecutive_errors: od.consecutive_errors.map(i64::from),
                consecutive_5xx_errors: od.consecutive_5xx_errors.map(i64::from),
                consecutive_gateway_errors: od.consecutive_gateway_errors.map(i64::from),
                max_ejection_percent: od.max_ejection_percent.map(i64::from),
                min_health_percent: od.min_health_percent.map(i64::from),
            };
        if let Some(od) = spec
            .traffic_policy
            .as_ref()
            .and_then(|t| t.outlier_detection.as_ref())
        {
            outlier_detections.push(outlier(
                od,
                "spec.trafficPolicy.outlierDetection".to_string(),
            ));
        }
        let mut subsets = Vec::new();
        for (idx, subset) in spec.subsets.iter().enumerate() {
            let field = format!("spec.subsets[{idx}]");
            if let Some(od) = subset
                .traffic_policy
                .as_ref()
                .and_then(|t| t.outlier_detection.as_ref())
            {
                outlier_detections.push(outlier(
                    od,
                    format!("{field}.trafficPolicy.outlierDetection"),
                ));
            }
            subsets.push(Subset {
                name: subset.name.clone(),
                labels: subset.labels.clone(),
                field,
            });
        }
        model.destination_rules.push(DestinationRule {
            src,
            namespace,
            name,
            host: spec.host.clone(),
            subsets,
            outlier_detections,
        });
    }
    for item in inventory.virtual_services() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(model, item, "VirtualService", Some(&namespace), &name);
        let gateways = item
            .spec
            .gateways
            .iter()
            .enumerate()
            .map(|(idx, g)| (g.clone(), format!("spec.gateways[{idx}]")))
            .collect();
        let mut destinations = Vec::new();
        for (rule_idx, rule) in item.spec.http.iter().enumerate() {
            for (idx, route) in rule.route.iter().enumerate() {
                destinations.push(RouteDestination {
                    field: format!("spec.http[{rule_idx}].route[{idx}].destination"),
                    host: route.destination.host.clone(),
                    subset: route.destination.subset.clone(),
                    weight: route.weight.map(i64::from),
                });
            }
        }
        model.virtual_services.push(VirtualService {
            src,
            namespace,
            name,
            gateways,
            destinations,
        });
    }
    for item in inventory.authorization_policies() {
        let name = item.metadata.name.clone().unwrap_or_default();
        let namespace = item
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let src = add(model, item, "AuthorizationPolicy", Some(&namespace), &name);
        let rules = item
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(idx, rule)| AuthorizationRule {
                field: format!("spec.rules[{idx}]"),
                from: rule
                    .from
                    .iter()
                    .map(|f| {
                        let s = &f.source;
                        let mut parts = Vec::new();
                        for (what, list) in [
                            ("principals", &s.principals),
                            ("requestPrincipals", &s.request_principals),
                            ("namespaces", &s.namespaces),
                            ("ipBlocks", &s.ip_blocks),
                        ] {
                            if !list.is_empty() {
                                parts.push(format!("{what} {}", list.join(", ")));
                            }
                        }
                        if parts.is_empty() {
                            "any source".to_string()
                        } else {
                            parts.join(" ")
                        }
                    })
                    .collect(),
                to: rule
                    .to
                    .iter()
                    .map(|t| {
                        let o = &t.operation;
                        let mut parts = Vec::new();
                        for (what, list) in [
                            ("methods", &o.methods),
                            ("paths", &o.paths),
                            ("ports", &o.ports),
                            ("hosts", &o.hosts),
                        ] {
                            if !list.is_empty() {
                                parts.push(format!("{what} {}", list.join(", ")));
                            }
                        }
                        if parts.is_empty() {
                            "any operation".to_string()
                        } else {
                            parts.join(" ")
                        }
                    })
                    .collect(),
                has_when: !rule.when.is_empty(),
            })
            .collect();
        let action = item
            .spec
            .action
            .clone()
            .unwrap_or_else(|| "ALLOW".to_string());
        model.authorization_policies.push(AuthorizationPolicy {
            src,
            namespace,
            name,
            action,
            rules,
        });
    }
}

fn lower_monitoring(inventory: &Inventory, model: &mut Model) {
    let mut rule_sources: Vec<(
        &Origin,
        &Arc<FieldPositions>,
        Option<String>,
        &crate::manifests::prometheus::RuleFile,
        &str,
    )> = Vec::new();
    for file in inventory.rule_files() {
        let namespace = file.embedded_in.as_ref().and_then(|e| e.namespace.clone());
        rule_sources.push((&file.origin, &file.positions, namespace, &file.object, ""));
    }
    for rule in inventory.prometheus_rules() {
        rule_sources.push((
            &rule.origin,
            &rule.positions,
            rule.metadata.namespace.clone(),
            &rule.spec,
            "spec.",
        ));
    }
    for (origin, positions, namespace, file, prefix) in rule_sources {
        for (group_idx, group) in file.groups.iter().enumerate() {
            for (rule_idx, rule) in group.rules.iter().enumerate() {
                let Some(alert) = &rule.alert else { continue };
                let path = format!("{prefix}groups[{group_idx}].rules[{rule_idx}]");
                let at = positions
                    .nearest(&path)
                    .map(|(_, span)| origin.at(span.key.unwrap_or(span.value)));
                let src = model.add_source(Source {
                    object: ObjectRef {
                        kind: "AlertRule".into(),
                        namespace: namespace.clone().unwrap_or_default(),
                        name: alert.clone(),
                    },
                    origin: at.unwrap_or_else(|| origin.location()),
                    positions: Some((origin.clone(), Arc::clone(positions))),
                    path_prefix: String::new(),
                });
                model.alerts.push(Alert {
                    src,
                    group: group.name.clone(),
                    name: alert.clone(),
                    expr: rule.expr.clone(),
                    expr_field: format!("{path}.expr"),
                    annotations: rule.annotations.clone(),
                    annotations_field: format!("{path}.annotations"),
                });
            }
        }
    }
    for item in inventory.slos() {
        let namespace = item.metadata.as_ref().and_then(|m| m.namespace.clone());
        let name = item
            .metadata
            .as_ref()
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| item.spec.service.clone());
        let src = add(
            model,
            item,
            "PrometheusServiceLevel",
            namespace.as_deref(),
            &name,
        );
        let schema = match item.form {
            crate::manifests::sloth::SloForm::Crd => "sloth.slok.dev/v1",
            crate::manifests::sloth::SloForm::Plain => "prometheus/v1",
        };
        let spec_prefix = match item.form {
            crate::manifests::sloth::SloForm::Crd => "spec.",
            crate::manifests::sloth::SloForm::Plain => "",
        };
        let raw_field_paths = item.written_fields.iter().map(|f| f.path.clone()).collect();
        let objectives = item
            .spec
            .slos
            .iter()
            .enumerate()
            .map(|(idx, slo)| {
                let field = format!("{spec_prefix}slos[{idx}]");
                // Find the query's real key path, whichever spelling the file used.
                let written = |snake: &str, camel: &str, block: &str| {
                    let base = format!("{field}.sli.{block}");
                    item.written_fields
                        .iter()
                        .find(|f| {
                            f.path == format!("{base}.{snake}")
                                || f.path == format!("{base}.{camel}")
                        })
                        .map(|f| f.path.clone())
                        .unwrap_or_else(|| format!("{base}.{camel}"))
                };
                let events = slo.sli.events.as_ref();
                SloObjective {
                    name: slo.name.clone(),
                    objective_percent: Some(slo.objective),
                    field: field.clone(),
                    error_query: events.map(|e| {
                        (
                            e.error_query.clone(),
                            written("error_query", "errorQuery", "events"),
                        )
                    }),
                    total_query: events.map(|e| {
                        (
                            e.total_query.clone(),
                            written("total_query", "totalQuery", "events"),
                        )
                    }),
                    error_ratio_query: slo.sli.raw.as_ref().map(|r| {
                        (
                            r.error_ratio_query.clone(),
                            written("error_ratio_query", "errorRatioQuery", "raw"),
                        )
                    }),
                }
            })
            .collect();
        model.slos.push(SloObject {
            src,
            name,
            schema: schema.to_string(),
            raw_field_paths,
            objectives,
        });
    }
    for item in inventory.prometheus_configs() {
        let name = item
            .embedded_in
            .as_ref()
            .map(|e| e.config_map.clone())
            .unwrap_or_else(|| "prometheus.yml".to_string());
        let namespace = item.embedded_in.as_ref().and_then(|e| e.namespace.clone());
        let src = add(model, item, "PrometheusConfig", namespace.as_deref(), &name);
        for (idx, job) in item.scrape_configs.iter().enumerate() {
            let relabel =
                |rules: &[crate::manifests::prometheus::RelabelConfig]| -> Vec<RelabelConfig> {
                    rules
                        .iter()
                        .map(|r| RelabelConfig {
                            source_labels: r.source_labels.clone(),
                            regex: r.regex.clone(),
                            action: r.action.clone(),
                            target_label: r.target_label.clone(),
                            replacement: r.replacement.clone(),
                        })
                        .collect()
                };
            model.scrape_jobs.push(ScrapeJob {
                src,
                field: format!("scrape_configs[{idx}]"),
                job_name: job.job_name.clone(),
                kubernetes_sd_roles: job
                    .kubernetes_sd_configs
                    .iter()
                    .map(|k| k.role.clone())
                    .collect(),
                kubernetes_sd_namespaces: job
                    .kubernetes_sd_configs
                    .iter()
                    .flat_map(|k| k.namespaces.iter().flat_map(|n| n.names.iter().cloned()))
                    .collect(),
                metrics_path: job.metrics_path.clone(),
                static_targets: job
                    .static_configs
                    .iter()
                    .flat_map(|s| s.targets.iter().cloned())
                    .collect(),
                relabel_configs: relabel(&job.relabel_configs),
                metric_relabel_configs: relabel(&job.metric_relabel_configs),
            });
        }
    }
    for item in inventory.dashboards() {
        let src = add(model, item, "GrafanaDashboard", None, &item.title);
        let prefix = if item.positions.get("dashboard").is_some() {
            "dashboard."
        } else {
            ""
        };
        collect_panels(model, src, &item.panels, &format!("{prefix}panels"));
    }
}

fn collect_panels(
    model: &mut Model,
    src: SourceId,
    panels: &[crate::manifests::grafana::Panel],
    base: &str,
) {
    for (idx, panel) in panels.iter().enumerate() {
        let field = format!("{base}[{idx}]");
        for (target_idx, target) in panel.targets.iter().enumerate() {
            let Some(expr) = &target.expr else { continue };
            model.dashboard_queries.push(DashboardQuery {
                src,
                panel: panel.title.clone().unwrap_or_default(),
                expr: expr.clone(),
                field: format!("{field}.targets[{target_idx}].expr"),
            });
        }
        collect_panels(model, src, &panel.panels, &format!("{field}.panels"));
    }
}

fn lower_topology(topology: &Topology) -> Vec<Node> {
    topology
        .nodes
        .iter()
        .map(|node| Node {
            name: node.name.clone(),
            labels: node.labels.clone(),
            taints: node
                .taints
                .iter()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: format!("{:?}", t.effect),
                })
                .collect(),
            allocatable_milli: node
                .allocatable
                .iter()
                .map(|(name, q)| (name.clone(), q.millis))
                .collect(),
            gpu_class: node
                .gpus
                .as_ref()
                .filter(|g| g.count > 0)
                .map(|g| g.class.clone()),
        })
        .collect()
}

/// The location of a source's field, from the loader's positions.
pub(super) fn field_location(source: &Source, field: &str) -> Option<Location> {
    let (origin, positions) = source.positions.as_ref()?;
    let path = format!("{}{field}", source.path_prefix);
    positions
        .get(&path)
        .map(|span| origin.at(span.key.unwrap_or(span.value)))
}
