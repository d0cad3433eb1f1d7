//! Reading the platform's configuration files into typed objects: the [`Inventory`].
//!
//! ```text
//! folder ─> files (sorted, size-limited, UTF-8) ─> YAML documents (yaml.rs: Value + positions)
//!        ─> kind by apiVersion/kind, or by shape for files without them (rule files, prometheus.yml,
//!           Sloth plain specs, Grafana JSON) ─> typed object (serde_path_to_error) ─> Inventory
//!        └> ConfigMap data keys holding a known config (prometheus.yml, loki.yaml, promtail.yaml,
//!           rule files, gpu-sharing) are parsed again as what they are, positions mapped back
//! ```
//!
//! Core kinds use k8s-openapi's types with the `earliest` feature (the v1.33 API). The plan targets
//! Kubernetes 1.29; the schemas of the kinds read here (Namespace, ResourceQuota, PriorityClass,
//! ConfigMap, Secret, ServiceAccount, Deployment, Service, autoscaling/v2 HorizontalPodAutoscaler,
//! policy/v1 PodDisruptionBudget) have not changed between 1.29 and 1.33 in any field we read.
//! Istio, Sloth, Prometheus, Argo CD and Grafana have their own types in the sibling files.
//!
//! Invariants: every object keeps its [`Origin`] and the positions of its fields; a folder with
//! any error returns no inventory at all (all its errors, together); an unknown kind is a warning,
//! never an error; no input-derived value is unwrapped; files above [`MAX_FILE_BYTES`] are refused
//! before they are read.

pub mod argo;
pub mod configs;
pub mod grafana;
pub mod istio;
mod load;
pub mod prometheus;
pub mod quantity;
pub mod scalar;
pub mod sloth;
pub mod topology;
mod validate;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Location};
use argo::Application;
use configs::{GpuSharing, LokiConfig, PromtailConfig};
use grafana::Dashboard;
use istio::{AuthorizationPolicy, DestinationRule, VirtualService};
pub use load::{decode_block, load_dir, load_file, load_str, load_typed, typed_from_str};
use prometheus::{PrometheusConfig, PrometheusRule, RuleFile, RuleGroup};
use sloth::PrometheusServiceLevel;
use topology::Topology;
pub use yaml::{FieldPositions, FieldSpan, Position};

/// Largest file read, in bytes. Real manifests are a few kilobytes; the limit keeps a stray
/// dump or binary from being read into memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// File extensions read by [`load_dir`].
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Why manifests could not be loaded. Each carries every problem found, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{} problem(s) in the input", .0.0.len())]
    Invalid(#[source] Diagnostics),
}

impl ManifestError {
    /// Every diagnostic, in file and document order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Invalid(diags) => &diags.0,
        }
    }

    fn from_diagnostics(mut diags: Vec<Diagnostic>) -> ManifestError {
        diags.sort_by(|a, b| a.location.cmp(&b.location));
        ManifestError::Invalid(Diagnostics(diags))
    }
}

/// Where an object came from: the file, the 1-based document within it, and the line and
/// column where the document's root (or, for an embedded config, the config's text) begins.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub line: usize,
    pub column: usize,
}

impl Origin {
    /// The origin as a diagnostic location.
    pub fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            document: self.document,
            line: self.line,
            column: self.column,
        }
    }

    /// A location in the same file and document at `position`.
    pub fn at(&self, position: Position) -> Location {
        Location {
            file: self.file.clone(),
            document: self.document,
            line: position.line,
            column: position.column,
        }
    }
}

/// The ConfigMap entry an embedded config was read from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EmbeddedIn {
    pub namespace: Option<String>,
    pub config_map: String,
    pub key: String,
}

/// An object with where it came from and where each of its fields is.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    pub origin: Origin,
    /// Set when the object was read from a ConfigMap's data key.
    pub embedded_in: Option<EmbeddedIn>,
    /// Field paths are relative to this object (for a core kind, the document root).
    pub positions: Arc<FieldPositions>,
    pub object: T,
}

impl<T> Deref for Sourced<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T> Sourced<T> {
    /// The line and column of a field path (`spec.metrics[2].pods.target.averageValue`), or of
    /// its nearest ancestor when the field is absent.
    pub fn field_position(&self, path: &str) -> Option<Position> {
        self.positions.nearest(path).map(|(_, span)| span.value)
    }

    /// The position of the key naming a field (`replicas:` rather than its value), falling back
    /// as [`Sourced::field_position`] does.
    pub fn key_position(&self, path: &str) -> Option<Position> {
        self.positions
            .nearest(path)
            .map(|(_, span)| span.key.unwrap_or(span.value))
    }

    /// A diagnostic location for a field path, falling back to the object's origin.
    pub fn field_location(&self, path: &str) -> Location {
        match self.field_position(path) {
            Some(position) => self.origin.at(position),
            None => self.origin.location(),
        }
    }
}

/// An object of a kind this reader does not know, kept as written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnknownObject {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub value: Value,
}

/// Where a rule group came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RuleSource {
    /// A plain Prometheus rule file.
    File,
    /// A rule file held in a ConfigMap data key.
    ConfigMap,
    /// A `monitoring.coreos.com/v1` PrometheusRule.
    PrometheusRule,
}

/// One rule group, from any source, with a way to point at its fields.
#[derive(Clone, Debug)]
pub struct RuleGroupRef<'a> {
    pub group: &'a RuleGroup,
    pub source: RuleSource,
    pub origin: &'a Origin,
    pub embedded_in: Option<&'a EmbeddedIn>,
    positions: &'a FieldPositions,
    /// Path of the group in its object: `groups[0]` or `spec.groups[0]`.
    pub path: String,
}

impl RuleGroupRef<'_> {
    /// Location of a field path inside the group (`rules[1].expr`).
    pub fn field_location(&self, path_in_group: &str) -> Location {
        let full = if path_in_group.is_empty() {
            self.path.clone()
        } else if path_in_group.starts_with('[') {
            format!("{}{path_in_group}", self.path)
        } else {
            format!("{}.{path_in_group}", self.path)
        };
        match self.positions.nearest(&full) {
            Some((_, span)) => self.origin.at(span.value),
            None => self.origin.location(),
        }
    }
}

/// Whether an object lives in a namespace, in the cluster as a whole, or in no cluster at all
/// (a plain config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Scope {
    Namespaced,
    Cluster,
    File,
}

/// One object of any kind, as [`Inventory::objects`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef<'a> {
    /// `Deployment`, `PrometheusConfig`, ... (an unknown object's own `kind`).
    pub kind: String,
    /// The object's namespace, or for an embedded config its ConfigMap's.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub scope: Scope,
    pub origin: &'a Origin,
    pub embedded_in: Option<&'a EmbeddedIn>,
}

/// Counts of what was loaded, by kind and by namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: usize,
    pub by_kind: BTreeMap<String, usize>,
    /// Namespace (`(cluster)` for cluster-scoped objects, `(none)` for plain config files) to
    /// kind to count.
    pub by_namespace: BTreeMap<String, BTreeMap<String, usize>>,
    pub warnings: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.by_kind.values().sum();
        writeln!(
            f,
            "{total} object(s) from {} file(s), {} warning(s)",
            self.files, self.warnings
        )?;
        for (kind, count) in &self.by_kind {
            writeln!(f, "  {kind:<28} {count}")?;
        }
        for (namespace, kinds) in &self.by_namespace {
            let parts: Vec<String> = kinds
                .iter()
                .map(|(kind, count)| format!("{kind} {count}"))
                .collect();
            writeln!(f, "  namespace {namespace}: {}", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Everything read from a folder, grouped by kind, each group in (file, document) order.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    files: Vec<PathBuf>,
    namespaces: Vec<Sourced<Namespace>>,
    resource_quotas: Vec<Sourced<ResourceQuota>>,
    priority_classes: Vec<Sourced<PriorityClass>>,
    config_maps: Vec<Sourced<ConfigMap>>,
    secrets: Vec<Sourced<Secret>>,
    service_accounts: Vec<Sourced<ServiceAccount>>,
    deployments: Vec<Sourced<Deployment>>,
    services: Vec<Sourced<Service>>,
    hpas: Vec<Sourced<HorizontalPodAutoscaler>>,
    pod_disruption_budgets: Vec<Sourced<PodDisruptionBudget>>,
    virtual_services: Vec<Sourced<VirtualService>>,
    destination_rules: Vec<Sourced<DestinationRule>>,
    authorization_policies: Vec<Sourced<AuthorizationPolicy>>,
    slos: Vec<Sourced<PrometheusServiceLevel>>,
    rule_files: Vec<Sourced<RuleFile>>,
    prometheus_rules: Vec<Sourced<PrometheusRule>>,
    prometheus_configs: Vec<Sourced<PrometheusConfig>>,
    loki_configs: Vec<Sourced<LokiConfig>>,
    promtail_configs: Vec<Sourced<PromtailConfig>>,
    gpu_sharing: Vec<Sourced<GpuSharing>>,
    dashboards: Vec<Sourced<Dashboard>>,
    argo_applications: Vec<Sourced<Application>>,
    topologies: Vec<Sourced<Topology>>,
    unknown: Vec<Sourced<UnknownObject>>,
    /// Things worth knowing that are not errors: kinds this reader does not know, files
    /// without any document skipped on purpose.
    pub warnings: Vec<Diagnostic>,
}

impl Inventory {
    /// The files read, in the order read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
    pub fn namespaces(&self) -> &[Sourced<Namespace>] {
        &self.namespaces
    }
    pub fn resource_quotas(&self) -> &[Sourced<ResourceQuota>] {
        &self.resource_quotas
    }
    pub fn priority_classes(&self) -> &[Sourced<PriorityClass>] {
        &self.priority_classes
    }
    pub fn config_maps(&self) -> &[Sourced<ConfigMap>] {
        &self.config_maps
    }
    pub fn secrets(&self) -> &[Sourced<Secret>] {
        &self.secrets
    }
    pub fn service_accounts(&self) -> &[Sourced<ServiceAccount>] {
        &self.service_accounts
    }
    pub fn deployments(&self) -> &[Sourced<Deployment>] {
        &self.deployments
    }
    pub fn services(&self) -> &[Sourced<Service>] {
        &self.services
    }
    pub fn hpas(&self) -> &[Sourced<HorizontalPodAutoscaler>] {
        &self.hpas
    }
    pub fn pod_disruption_budgets(&self) -> &[Sourced<PodDisruptionBudget>] {
        &self.pod_disruption_budgets
    }
    pub fn virtual_services(&self) -> &[Sourced<VirtualService>] {
        &self.virtual_services
    }
    pub fn destination_rules(&self) -> &[Sourced<DestinationRule>] {
        &self.destination_rules
    }
    pub fn authorization_policies(&self) -> &[Sourced<AuthorizationPolicy>] {
        &self.authorization_policies
    }
    /// Sloth SLO documents, both forms.
    pub fn slos(&self) -> &[Sourced<PrometheusServiceLevel>] {
        &self.slos
    }
    /// Plain rule files and rule files held in ConfigMaps (see `embedded_in`).
    pub fn rule_files(&self) -> &[Sourced<RuleFile>] {
        &self.rule_files
    }
    pub fn prometheus_rules(&self) -> &[Sourced<PrometheusRule>] {
        &self.prometheus_rules
    }
    /// Every rule group from every source (rule files, ConfigMaps, PrometheusRules), in
    /// (file, document, group) order.
    pub fn rule_groups(&self) -> Vec<RuleGroupRef<'_>> {
        let mut out = Vec::new();
        for file in &self.rule_files {
            let source = if file.embedded_in.is_some() {
                RuleSource::ConfigMap
            } else {
                RuleSource::File
            };
            for (idx, group) in file.groups.iter().enumerate() {
                out.push(RuleGroupRef {
                    group,
                    source,
                    origin: &file.origin,
                    embedded_in: file.embedded_in.as_ref(),
                    positions: &file.positions,
                    path: format!("groups[{idx}]"),
                });
            }
        }
        for rule in &self.prometheus_rules {
            for (idx, group) in rule.spec.groups.iter().enumerate() {
                out.push(RuleGroupRef {
                    group,
                    source: RuleSource::PrometheusRule,
                    origin: &rule.origin,
                    embedded_in: None,
                    positions: &rule.positions,
                    path: format!("spec.groups[{idx}]"),
                });
            }
        }
        out.sort_by(|a, b| a.origin.cmp(b.origin));
        out
    }
    pub fn prometheus_configs(&self) -> &[Sourced<PrometheusConfig>] {
        &self.prometheus_configs
    }
    pub fn loki_configs(&self) -> &[Sourced<LokiConfig>] {
        &self.loki_configs
    }
    pub fn promtail_configs(&self) -> &[Sourced<PromtailConfig>] {
        &self.promtail_configs
    }
    /// GPU sharing blocks found in ConfigMaps.
    pub fn gpu_sharing(&self) -> &[Sourced<GpuSharing>] {
        &self.gpu_sharing
    }
    pub fn dashboards(&self) -> &[Sourced<Dashboard>] {
        &self.dashboards
    }
    pub fn argo_applications(&self) -> &[Sourced<Application>] {
        &self.argo_applications
    }
    /// `twin.sophia.dev/v1` Topology documents found among the manifests.
    pub fn topologies(&self) -> &[Sourced<Topology>] {
        &self.topologies
    }
    /// Documents of kinds this reader does not know (each also has a warning).
    pub fn unknown(&self) -> &[Sourced<UnknownObject>] {
        &self.unknown
    }

    /// Every object, of every kind, in (file, document) order: a uniform view for listings and
    /// for checks that apply to all objects.
    pub fn objects(&self) -> Vec<ObjectRef<'_>> {
        fn named<'a, T>(
            out: &mut Vec<ObjectRef<'a>>,
            kind: &'static str,
            scope: Scope,
            items: &'a [Sourced<T>],
            meta: impl Fn(&'a T) -> Option<&'a ObjectMeta>,
        ) {
            for item in items {
                let metadata = meta(&item.object);
                let embedded_namespace = item
                    .embedded_in
                    .as_ref()
                    .and_then(|e| e.namespace.as_deref());
                out.push(ObjectRef {
                    kind: kind.to_string(),
                    namespace: metadata
                        .and_then(|m| m.namespace.as_deref())
                        .or(embedded_namespace),
                    name: metadata.and_then(|m| m.name.as_deref()),
                    scope,
                    origin: &item.origin,
                    embedded_in: item.embedded_in.as_ref(),
                });
            }
        }
        use Scope::{Cluster, File, Namespaced};
        let mut out = Vec::new();
        named(&mut out, "Namespace", Cluster, &self.namespaces, |o| {
            Some(&o.metadata)
        });
        named(
            &mut out,
            "ResourceQuota",
            Namespaced,
            &self.resource_quotas,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "PriorityClass",
            Cluster,
            &self.priority_classes,
            |o| Some(&o.metadata),
        );
        named(&mut out, "ConfigMap", Namespaced, &self.config_maps, |o| {
            Some(&o.metadata)
        });
        named(&mut out, "Secret", Namespaced, &self.secrets, |o| {
            Some(&o.metadata)
        });
        named(
            &mut out,
            "ServiceAccount",
            Namespaced,
            &self.service_accounts,
            |o| Some(&o.metadata),
        );
        named(&mut out, "Deployment", Namespaced, &self.deployments, |o| {
            Some(&o.metadata)
        });
        named(&mut out, "Service", Namespaced, &self.services, |o| {
            Some(&o.metadata)
        });
        named(
            &mut out,
            "HorizontalPodAutoscaler",
            Namespaced,
            &self.hpas,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "PodDisruptionBudget",
            Namespaced,
            &self.pod_disruption_budgets,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "VirtualService",
            Namespaced,
            &self.virtual_services,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "DestinationRule",
            Namespaced,
            &self.destination_rules,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "AuthorizationPolicy",
            Namespaced,
            &self.authorization_policies,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "PrometheusServiceLevel",
            Namespaced,
            &self.slos,
            |o| o.metadata.as_ref(),
        );
        named(&mut out, "RuleFile", File, &self.rule_files, |_| None);
        named(
            &mut out,
            "PrometheusRule",
            Namespaced,
            &self.prometheus_rules,
            |o| Some(&o.metadata),
        );
        named(
            &mut out,
            "PrometheusConfig",
            File,
            &self.prometheus_configs,
            |_| None,
        );
        named(&mut out, "LokiConfig", File, &self.loki_configs, |_| None);
        named(
            &mut out,
            "PromtailConfig",
            File,
            &self.promtail_configs,
            |_| None,
        );
        named(&mut out, "GpuSharing", File, &self.gpu_sharing, |_| None);
        named(&mut out, "GrafanaDashboard", File, &self.dashboards, |_| {
            None
        });
        named(
            &mut out,
            "Application",
            Namespaced,
            &self.argo_applications,
            |o| Some(&o.metadata),
        );
        named(&mut out, "Topology", File, &self.topologies, |_| None);
        for item in &self.unknown {
            out.push(ObjectRef {
                kind: item.kind.clone().unwrap_or_else(|| "(unknown)".to_string()),
                namespace: item.namespace.as_deref(),
                name: item.name.as_deref(),
                scope: if item.kind.is_some() {
                    Namespaced
                } else {
                    File
                },
                origin: &item.origin,
                embedded_in: None,
            });
        }
        out.sort_by(|a, b| a.origin.cmp(b.origin));
        out
    }

    /// Counts by kind and namespace, for `twin lint` and friends to print.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            files: self.files.len(),
            warnings: self.warnings.len(),
            ..Default::default()
        };
        for object in self.objects() {
            *summary.by_kind.entry(object.kind.clone()).or_default() += 1;
            let namespace = match (object.namespace, object.scope) {
                (Some(name), _) => name.to_string(),
                (None, Scope::Cluster) => "(cluster)".to_string(),
                (None, _) => "(none)".to_string(),
            };
            *summary
                .by_namespace
                .entry(namespace)
                .or_default()
                .entry(object.kind)
                .or_default() += 1;
        }
        summary
    }

    pub fn merge(&mut self, other: Inventory) {
        self.files.extend(other.files);
        self.namespaces.extend(other.namespaces);
        self.resource_quotas.extend(other.resource_quotas);
        self.priority_classes.extend(other.priority_classes);
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
        self.service_accounts.extend(other.service_accounts);
        self.deployments.extend(other.deployments);
        self.services.extend(other.services);
        self.hpas.extend(other.hpas);
        self.pod_disruption_budgets
            .extend(other.pod_disruption_budgets);
        self.virtual_services.extend(other.virtual_services);
        self.destination_rules.extend(other.destination_rules);
        self.authorization_policies
            .extend(other.authorization_policies);
        self.slos.extend(other.slos);
        self.rule_files.extend(other.rule_files);
        self.prometheus_rules.extend(other.prometheus_rules);
        self.prometheus_configs.extend(other.prometheus_configs);
        self.loki_configs.extend(other.loki_configs);
        self.promtail_configs.extend(other.promtail_configs);
        self.gpu_sharing.extend(other.gpu_sharing);
        self.dashboards.extend(other.dashboards);
        self.argo_applications.extend(other.argo_applications);
        self.topologies.extend(other.topologies);
        self.unknown.extend(other.unknown);
        self.warnings.extend(other.warnings);
    }
}

impl Inventory {
    /// Applies a JSON merge patch (RFC 7386) to the object of `kind` named `name` (in
    /// `namespace` when given). Supported kinds: Deployment, HorizontalPodAutoscaler,
    /// DestinationRule, VirtualService, ResourceQuota, Service. Returns why it could not.
    pub fn patch(
        &mut self,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
        patch: &Value,
    ) -> Result<(), String> {
        fn apply<T: Serialize + serde::de::DeserializeOwned>(
            items: &mut [Sourced<T>],
            meta: impl Fn(&T) -> &ObjectMeta,
            name: &str,
            namespace: Option<&str>,
            patch: &Value,
        ) -> Result<(), String> {
            let item = items
                .iter_mut()
                .find(|i| {
                    meta(&i.object).name.as_deref() == Some(name)
                        && namespace
                            .is_none_or(|ns| meta(&i.object).namespace.as_deref() == Some(ns))
                })
                .ok_or_else(|| format!("no object named {name:?} to patch"))?;
            let mut value = serde_json::to_value(&item.object).map_err(|e| e.to_string())?;
            json_patch::merge(&mut value, patch);
            item.object = serde_path_to_error::deserialize(value).map_err(|e| {
                format!("the patched object is invalid: {}: {}", e.path(), e.inner())
            })?;
            Ok(())
        }
        match kind {
            "Deployment" => apply(
                &mut self.deployments,
                |d| &d.metadata,
                name,
                namespace,
                patch,
            ),
            "HorizontalPodAutoscaler" => {
                apply(&mut self.hpas, |d| &d.metadata, name, namespace, patch)
            }
            "DestinationRule" => apply(
                &mut self.destination_rules,
                |d| &d.metadata,
                name,
                namespace,
                patch,
            ),
            "VirtualService" => apply(
                &mut self.virtual_services,
                |d| &d.metadata,
                name,
                namespace,
                patch,
            ),
            "ResourceQuota" => apply(
                &mut self.resource_quotas,
                |d| &d.metadata,
                name,
                namespace,
                patch,
            ),
            "Service" => apply(&mut self.services, |d| &d.metadata, name, namespace, patch),
            other => Err(format!(
                "patching a {other} is not supported (Deployment, HorizontalPodAutoscaler, DestinationRule, VirtualService, ResourceQuota, Service)"
            )),
        }
    }
}
