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
pub mod prometheus;
pub mod quantity;
pub mod sloth;
pub mod topology;
mod validate;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
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
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Location};
use argo::Application;
use configs::{GpuSharing, LokiConfig, PromtailConfig};
use grafana::Dashboard;
use istio::{AuthorizationPolicy, DestinationRule, VirtualService};
use prometheus::{PrometheusConfig, PrometheusRule, RuleFile, RuleGroup};
use sloth::{PrometheusServiceLevel, SloForm, SloSpec};
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

    /// Counts by kind and namespace, for `twin lint` and friends to print.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            files: self.files.len(),
            warnings: self.warnings.len(),
            ..Default::default()
        };
        let mut add = |kind: &str, namespace: Option<&str>, cluster_scoped: bool| {
            *summary.by_kind.entry(kind.to_string()).or_default() += 1;
            let namespace = match namespace {
                Some(name) => name.to_string(),
                None if cluster_scoped => "(cluster)".to_string(),
                None => "(none)".to_string(),
            };
            *summary
                .by_namespace
                .entry(namespace)
                .or_default()
                .entry(kind.to_string())
                .or_default() += 1;
        };
        fn ns(meta: &ObjectMeta) -> Option<&str> {
            meta.namespace.as_deref()
        }
        fn embedded_ns<T>(item: &Sourced<T>) -> Option<&str> {
            item.embedded_in
                .as_ref()
                .and_then(|e| e.namespace.as_deref())
        }
        for item in &self.namespaces {
            add("Namespace", None, true);
            let _ = item;
        }
        for item in &self.resource_quotas {
            add("ResourceQuota", ns(&item.metadata), false);
        }
        for _ in &self.priority_classes {
            add("PriorityClass", None, true);
        }
        for item in &self.config_maps {
            add("ConfigMap", ns(&item.metadata), false);
        }
        for item in &self.secrets {
            add("Secret", ns(&item.metadata), false);
        }
        for item in &self.service_accounts {
            add("ServiceAccount", ns(&item.metadata), false);
        }
        for item in &self.deployments {
            add("Deployment", ns(&item.metadata), false);
        }
        for item in &self.services {
            add("Service", ns(&item.metadata), false);
        }
        for item in &self.hpas {
            add("HorizontalPodAutoscaler", ns(&item.metadata), false);
        }
        for item in &self.pod_disruption_budgets {
            add("PodDisruptionBudget", ns(&item.metadata), false);
        }
        for item in &self.virtual_services {
            add("VirtualService", ns(&item.metadata), false);
        }
        for item in &self.destination_rules {
            add("DestinationRule", ns(&item.metadata), false);
        }
        for item in &self.authorization_policies {
            add("AuthorizationPolicy", ns(&item.metadata), false);
        }
        for item in &self.slos {
            add(
                "PrometheusServiceLevel",
                item.metadata.as_ref().and_then(ns),
                false,
            );
        }
        for item in &self.rule_files {
            add("RuleFile", embedded_ns(item), false);
        }
        for item in &self.prometheus_rules {
            add("PrometheusRule", ns(&item.metadata), false);
        }
        for item in &self.prometheus_configs {
            add("PrometheusConfig", embedded_ns(item), false);
        }
        for item in &self.loki_configs {
            add("LokiConfig", embedded_ns(item), false);
        }
        for item in &self.promtail_configs {
            add("PromtailConfig", embedded_ns(item), false);
        }
        for item in &self.gpu_sharing {
            add("GpuSharing", embedded_ns(item), false);
        }
        for _ in &self.dashboards {
            add("GrafanaDashboard", None, false);
        }
        for item in &self.argo_applications {
            add("Application", ns(&item.metadata), false);
        }
        for _ in &self.topologies {
            add("Topology", None, false);
        }
        for item in &self.unknown {
            let kind = item.kind.clone().unwrap_or_else(|| "(unknown)".to_string());
            add(&kind, item.namespace.as_deref(), false);
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

/// Reads every `.yaml`, `.yml` and `.json` file below `dir`, in sorted path order. Hidden
/// entries (names starting with `.`) are skipped; symbolic links to folders are not followed.
/// Any error in any file fails the whole load, with every error found.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Inventory, ManifestError> {
    let dir = dir.as_ref();
    let here = Location {
        file: dir.to_path_buf(),
        ..Default::default()
    };
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
                here,
                "",
                "no such directory",
            )]));
        }
        Err(err) => {
            return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
                here,
                "",
                format!("cannot read: {err}"),
            )]));
        }
    };
    if !meta.is_dir() {
        return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
            here,
            "",
            "not a directory",
        )]));
    }
    let mut errors = Vec::new();
    let files = collect_files(dir, &mut errors);
    let mut inventory = Inventory::default();
    for file in files {
        match read_text(&file) {
            Ok(text) => load_text_into(&file, &text, &mut inventory, &mut errors),
            Err(diag) => errors.push(diag),
        }
    }
    if errors.is_empty() {
        Ok(inventory)
    } else {
        Err(ManifestError::from_diagnostics(errors))
    }
}

/// Reads one file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Inventory, ManifestError> {
    let path = path.as_ref();
    let text = read_text(path).map_err(|diag| ManifestError::from_diagnostics(vec![diag]))?;
    load_str(path, &text)
}

/// Reads text as if it were the file `name` (the name's extension does not matter).
pub fn load_str(name: impl AsRef<Path>, text: &str) -> Result<Inventory, ManifestError> {
    let name = name.as_ref();
    let mut inventory = Inventory::default();
    let mut errors = Vec::new();
    if let Err(diag) = check_text(name, text.as_bytes()) {
        return Err(ManifestError::from_diagnostics(vec![diag]));
    }
    load_text_into(name, text, &mut inventory, &mut errors);
    if errors.is_empty() {
        Ok(inventory)
    } else {
        Err(ManifestError::from_diagnostics(errors))
    }
}

fn collect_files(dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) => {
                errors.push(Diagnostic::error(
                    Location {
                        file: folder.clone(),
                        ..Default::default()
                    },
                    "",
                    format!("cannot list: {err}"),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    errors.push(Diagnostic::error(
                        Location {
                            file: folder.clone(),
                            ..Default::default()
                        },
                        "",
                        format!("cannot list: {err}"),
                    ));
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if has_known_extension(&path) && (kind.is_file() || path.is_file()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn has_known_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .map(|ext| {
            EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
        .unwrap_or(false)
}

/// Reads a file as text, refusing large and non-text files. The size is checked before reading
/// and the read itself is capped, so a file growing meanwhile cannot be read whole either.
fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let here = || Location {
        file: path.to_path_buf(),
        ..Default::default()
    };
    let file = std::fs::File::open(path)
        .map_err(|err| Diagnostic::error(here(), "", format!("cannot read: {err}")))?;
    let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(),
            "",
            format!(
                "file is {size} bytes, above the limit of {MAX_FILE_BYTES} bytes (8 MiB); not read"
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Diagnostic::error(here(), "", format!("cannot read: {err}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(),
            "",
            format!("file is above the limit of {MAX_FILE_BYTES} bytes (8 MiB); not read"),
        ));
    }
    check_text(path, &bytes)?;
    String::from_utf8(bytes)
        .map_err(|err| Diagnostic::error(here(), "", format!("not UTF-8 text: {err}")))
}

/// Refuses empty and non-text input, naming the first bad byte.
fn check_text(path: &Path, bytes: &[u8]) -> Result<(), Diagnostic> {
    let here = |line: usize, column: usize| Location {
        file: path.to_path_buf(),
        document: 0,
        line,
        column,
    };
    if bytes.is_empty() {
        return Err(Diagnostic::error(here(0, 0), "", "file is empty"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(0, 0),
            "",
            format!("input is above the limit of {MAX_FILE_BYTES} bytes (8 MiB)"),
        ));
    }
    let line_col = |offset: usize| {
        let before = &bytes[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|at| at + 1)
                .unwrap_or(0)
            + 1;
        (line, column)
    };
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        let (line, column) = line_col(offset);
        return Err(Diagnostic::error(
            here(line, column),
            "",
            format!("not a text file: NUL byte at offset {offset}"),
        ));
    }
    if let Err(err) = std::str::from_utf8(bytes) {
        let offset = err.valid_up_to();
        let (line, column) = line_col(offset);
        return Err(Diagnostic::error(
            here(line, column),
            "",
            format!("not UTF-8 text: invalid byte at offset {offset}"),
        ));
    }
    Ok(())
}

/// What one document is being read as: its file, index and positions.
struct DocContext<'a> {
    file: &'a Path,
    document: usize,
    positions: Arc<FieldPositions>,
    start: Position,
}

impl DocContext<'_> {
    fn origin(&self) -> Origin {
        Origin {
            file: self.file.to_path_buf(),
            document: self.document,
            line: self.start.line,
            column: self.start.column,
        }
    }

    /// The location of `path`: its value, or its key when `at_key`, or the nearest ancestor.
    fn location(&self, path: &str, at_key: bool) -> Location {
        let position = match self.positions.nearest(path) {
            Some((found, span)) if found == path && at_key => span.key.unwrap_or(span.value),
            Some((_, span)) => span.key.filter(|_| at_key).unwrap_or(span.value),
            None => self.start,
        };
        Location {
            file: self.file.to_path_buf(),
            document: self.document,
            line: position.line,
            column: position.column,
        }
    }

    fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.location(path, false), path, message)
    }

    fn sourced<T>(&self, object: T) -> Sourced<T> {
        Sourced {
            origin: self.origin(),
            embedded_in: None,
            positions: self.positions.clone(),
            object,
        }
    }

    fn embedded<T>(&self, embedded_in: &EmbeddedIn, object: T) -> Sourced<T> {
        Sourced {
            origin: self.origin(),
            embedded_in: Some(embedded_in.clone()),
            positions: self.positions.clone(),
            object,
        }
    }
}

/// Deserializes `value` (found at `base` in the document) as `T`, turning a failure into a
/// diagnostic at the failing field.
fn decode<T: DeserializeOwned>(
    ctx: &DocContext<'_>,
    value: &Value,
    base: &str,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let mut path = base.to_string();
        for segment in err.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    path = yaml::join_index(&path, *index)
                }
                serde_path_to_error::Segment::Map { key }
                | serde_path_to_error::Segment::Enum { variant: key } => {
                    path = yaml::join_key(&path, key)
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = err.inner().to_string();
        // serde names the offending field in backticks. serde_path_to_error already ends the
        // path with an unknown key (point at the key, not its value); a missing field is reported
        // at its parent, so extend the path to name the field itself.
        let named = message.split('`').nth(1).map(str::to_string);
        if let Some(field) = named.as_deref() {
            if message.starts_with("unknown field") {
                return Diagnostic::error(ctx.location(&path, true), path, message);
            }
            if message.starts_with("missing field") {
                let field_path = yaml::join_key(&path, field);
                return Diagnostic::error(ctx.location(&path, true), field_path, message);
            }
        }
        Diagnostic::error(ctx.location(&path, false), path, message)
    })
}

fn string_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Reads every document of one file's text into `inventory`, or pushes its errors.
fn load_text_into(
    file: &Path,
    text: &str,
    inventory: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents = match yaml::parse_documents(text) {
        Ok(documents) => documents,
        Err(err) => {
            errors.push(yaml_error_diagnostic(file, &err, |p| p));
            return;
        }
    };
    if documents.is_empty() {
        errors.push(Diagnostic::error(
            Location {
                file: file.to_path_buf(),
                ..Default::default()
            },
            "",
            "file holds no document (only blank lines or comments)",
        ));
        return;
    }
    let mut local = Inventory {
        files: vec![file.to_path_buf()],
        ..Default::default()
    };
    let mut local_errors = Vec::new();
    for document in documents {
        let ctx = DocContext {
            file,
            document: document.index,
            positions: Arc::new(document.positions),
            start: document.start,
        };
        if let Err(diag) = load_document(&ctx, text, &document.value, &mut local, &mut local_errors)
        {
            local_errors.push(diag);
        }
    }
    if local_errors.is_empty() {
        inventory.merge(local);
    } else {
        errors.extend(local_errors);
    }
}

fn yaml_error_diagnostic(
    file: &Path,
    err: &yaml::YamlError,
    map: impl Fn(Position) -> Position,
) -> Diagnostic {
    let position = map(err.position);
    Diagnostic::error(
        Location {
            file: file.to_path_buf(),
            document: err.document,
            line: position.line,
            column: position.column,
        },
        err.path.clone(),
        err.message.clone(),
    )
}

/// Reads one document by its apiVersion and kind, or by its shape when it has neither.
fn load_document(
    ctx: &DocContext<'_>,
    text: &str,
    value: &Value,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    if !value.is_object() {
        return Err(ctx.error(
            "",
            "a document must be a mapping (an object), not a sequence or a scalar",
        ));
    }
    let api_version = value.get("apiVersion");
    let kind = value.get("kind");
    if kind.is_some() || api_version.is_some() {
        let Some(api_version) = api_version.and_then(Value::as_str) else {
            return Err(ctx.error(
                "apiVersion",
                "apiVersion must be set to a string when kind is set",
            ));
        };
        let Some(kind) = kind.and_then(Value::as_str) else {
            return Err(ctx.error(
                "kind",
                "kind must be set to a string when apiVersion is set",
            ));
        };
        return load_kind(ctx, text, value, api_version, kind, inv, errors);
    }
    load_shape(ctx, value, inv)
}

fn load_kind(
    ctx: &DocContext<'_>,
    text: &str,
    value: &Value,
    api_version: &str,
    kind: &str,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let (group, _version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    // k8s-openapi fills a missing required field with its default; the API server refuses it.
    require(ctx, value, required_fields(api_version, kind))?;
    match (api_version, kind) {
        ("v1", "Namespace") => inv.namespaces.push(ctx.sourced(decode(ctx, value, "")?)),
        ("v1", "ResourceQuota") => inv
            .resource_quotas
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("v1", "Secret") => inv.secrets.push(ctx.sourced(decode(ctx, value, "")?)),
        ("v1", "ServiceAccount") => inv
            .service_accounts
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("v1", "Service") => inv.services.push(ctx.sourced(decode(ctx, value, "")?)),
        ("v1", "ConfigMap") => {
            let config_map: ConfigMap = decode(ctx, value, "")?;
            load_embedded(ctx, text, &config_map, inv, errors);
            inv.config_maps.push(ctx.sourced(config_map));
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => inv
            .priority_classes
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("apps/v1", "Deployment") => {
            let deployment: Deployment = decode(ctx, value, "")?;
            errors.extend(validate::deployment(ctx, &deployment));
            inv.deployments.push(ctx.sourced(deployment));
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            let hpa: HorizontalPodAutoscaler = decode(ctx, value, "")?;
            errors.extend(validate::hpa(ctx, &hpa));
            inv.hpas.push(ctx.sourced(hpa));
        }
        ("policy/v1", "PodDisruptionBudget") => inv
            .pod_disruption_budgets
            .push(ctx.sourced(decode(ctx, value, "")?)),
        (_, "VirtualService") if is_istio_networking(api_version) => inv
            .virtual_services
            .push(ctx.sourced(decode(ctx, value, "")?)),
        (_, "DestinationRule") if is_istio_networking(api_version) => inv
            .destination_rules
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("security.istio.io/v1beta1" | "security.istio.io/v1", "AuthorizationPolicy") => inv
            .authorization_policies
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("sloth.slok.dev/v1", "PrometheusServiceLevel") => {
            let metadata: ObjectMeta = match value.get("metadata") {
                Some(meta) => decode(ctx, meta, "metadata")?,
                None => return Err(ctx.error("metadata", "missing field `metadata`")),
            };
            let Some(spec_value) = value.get("spec") else {
                return Err(ctx.error("spec", "missing field `spec`"));
            };
            for key in value
                .as_object()
                .map(|map| map.keys())
                .into_iter()
                .flatten()
            {
                if !matches!(
                    key.as_str(),
                    "apiVersion" | "kind" | "metadata" | "spec" | "status"
                ) {
                    return Err(Diagnostic::error(
                        ctx.location(key, true),
                        key.clone(),
                        format!(
                            "unknown field `{key}`, expected one of `apiVersion`, `kind`, `metadata`, `spec`"
                        ),
                    ));
                }
            }
            let spec: SloSpec = decode(ctx, spec_value, "spec")?;
            let written_fields = sloth::written_fields(spec_value, "spec");
            inv.slos.push(ctx.sourced(PrometheusServiceLevel {
                form: SloForm::Crd,
                metadata: Some(metadata),
                spec,
                written_fields,
            }));
        }
        ("monitoring.coreos.com/v1", "PrometheusRule") => inv
            .prometheus_rules
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("argoproj.io/v1alpha1", "Application") => inv
            .argo_applications
            .push(ctx.sourced(decode(ctx, value, "")?)),
        (topology::API_VERSION, topology::KIND) => {
            let topology = Topology::from_value(value, &ctx.positions, ctx.file, ctx.document, "")
                .map_err(|mut diags| {
                    let first = diags.remove(0);
                    errors.extend(diags);
                    first
                })?;
            inv.topologies.push(ctx.sourced(topology));
        }
        _ => {
            let reason = if group.is_empty() || group.ends_with("k8s.io") || !group.contains('.') {
                format!("{api_version} {kind} is not a kind twin reads; kept as is")
            } else {
                format!("{kind} of {api_version} is not a kind twin reads; kept as is")
            };
            inv.warnings.push(Diagnostic::warning(
                ctx.location("kind", false),
                "kind",
                reason,
            ));
            inv.unknown.push(ctx.sourced(unknown_object(value)));
        }
    }
    Ok(())
}

/// The fields the API server (or the CRD's schema) requires, as dotted paths, parents first.
fn required_fields(api_version: &str, kind: &str) -> &'static [&'static str] {
    const NAMED: &[&str] = &["metadata", "metadata.name"];
    match (api_version, kind) {
        ("apps/v1", "Deployment") => &[
            "metadata",
            "metadata.name",
            "spec",
            "spec.selector",
            "spec.template",
        ],
        ("autoscaling/v2", "HorizontalPodAutoscaler") => &[
            "metadata",
            "metadata.name",
            "spec",
            "spec.scaleTargetRef",
            "spec.scaleTargetRef.kind",
            "spec.scaleTargetRef.name",
            "spec.maxReplicas",
        ],
        ("scheduling.k8s.io/v1", "PriorityClass") => &["metadata", "metadata.name", "value"],
        ("v1", _)
        | ("policy/v1", _)
        | ("monitoring.coreos.com/v1", _)
        | ("argoproj.io/v1alpha1", _) => NAMED,
        (_, "VirtualService" | "DestinationRule") if is_istio_networking(api_version) => {
            &["metadata", "metadata.name", "spec"]
        }
        (_, "AuthorizationPolicy") => NAMED,
        _ => &[],
    }
}

/// Refuses the first absent path of `required` (a `null` counts as absent, as in the API).
fn require(ctx: &DocContext<'_>, value: &Value, required: &[&str]) -> Result<(), Diagnostic> {
    for path in required {
        let mut node = Some(value);
        for key in path.split('.') {
            node = node.and_then(|n| n.get(key)).filter(|n| !n.is_null());
        }
        if node.is_none() {
            let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
            let location = if parent.is_empty() {
                ctx.location("", false)
            } else {
                ctx.location(parent, true)
            };
            return Err(Diagnostic::error(
                location,
                *path,
                format!("missing field `{field}`"),
            ));
        }
    }
    Ok(())
}

fn is_istio_networking(api_version: &str) -> bool {
    matches!(
        api_version,
        "networking.istio.io/v1alpha3" | "networking.istio.io/v1beta1" | "networking.istio.io/v1"
    )
}

fn unknown_object(value: &Value) -> UnknownObject {
    let metadata = value.get("metadata");
    UnknownObject {
        api_version: string_at(value, "apiVersion").map(str::to_string),
        kind: string_at(value, "kind").map(str::to_string),
        name: metadata
            .and_then(|m| string_at(m, "name"))
            .map(str::to_string),
        namespace: metadata
            .and_then(|m| string_at(m, "namespace"))
            .map(str::to_string),
        value: value.clone(),
    }
}

/// Files without apiVersion and kind: recognised by their top-level keys.
fn load_shape(ctx: &DocContext<'_>, value: &Value, inv: &mut Inventory) -> Result<(), Diagnostic> {
    let has = |key: &str| value.get(key).is_some();
    if has("groups") {
        inv.rule_files.push(ctx.sourced(decode(ctx, value, "")?));
    } else if has("scrape_configs") || (has("global") && (has("rule_files") || has("alerting"))) {
        inv.prometheus_configs
            .push(ctx.sourced(decode(ctx, value, "")?));
    } else if string_at(value, "version") == Some("prometheus/v1") && has("slos") {
        let spec: SloSpec = decode(ctx, value, "")?;
        let written_fields = sloth::written_fields(value, "");
        inv.slos.push(ctx.sourced(PrometheusServiceLevel {
            form: SloForm::Plain,
            metadata: None,
            spec,
            written_fields,
        }));
    } else if let Some(inner) = value.get("dashboard").filter(|inner| inner.is_object()) {
        let dashboard: Dashboard = decode(ctx, inner, "dashboard")?;
        let mut sourced = ctx.sourced(dashboard);
        sourced.positions = Arc::new(ctx.positions.subtree("dashboard"));
        inv.dashboards.push(sourced);
    } else if has("panels") && has("title") {
        inv.dashboards.push(ctx.sourced(decode(ctx, value, "")?));
    } else {
        inv.warnings.push(Diagnostic::warning(
            ctx.location("", false),
            "",
            "document has no apiVersion and kind and is not a config file twin recognises; kept as is",
        ));
        inv.unknown.push(ctx.sourced(unknown_object(value)));
    }
    Ok(())
}

/// What a ConfigMap data key holds, judged by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EmbeddedKind {
    Prometheus,
    Loki,
    Promtail,
    Rules,
    GpuSharing,
}

fn embedded_kind(key: &str) -> Option<EmbeddedKind> {
    let lower = key.to_ascii_lowercase();
    match lower.as_str() {
        "prometheus.yml" | "prometheus.yaml" => Some(EmbeddedKind::Prometheus),
        "loki.yaml" | "loki.yml" | "loki-config.yaml" | "loki-config.yml" => {
            Some(EmbeddedKind::Loki)
        }
        "promtail.yaml" | "promtail.yml" | "promtail-config.yaml" | "promtail-config.yml" => {
            Some(EmbeddedKind::Promtail)
        }
        "gpu-sharing" | "gpu-sharing.yaml" | "gpu-sharing.yml" => Some(EmbeddedKind::GpuSharing),
        "alerts.yml"
        | "alerts.yaml"
        | "rules.yml"
        | "rules.yaml"
        | "alerting_rules.yml"
        | "recording_rules.yml" => Some(EmbeddedKind::Rules),
        _ if lower.ends_with(".rules")
            || lower.ends_with(".rules.yml")
            || lower.ends_with(".rules.yaml") =>
        {
            Some(EmbeddedKind::Rules)
        }
        _ => None,
    }
}

/// Parses the ConfigMap data keys that hold a known config, mapping positions back to the outer
/// file. Errors go to `errors`; the ConfigMap itself is kept either way (the caller fails the file).
fn load_embedded(
    ctx: &DocContext<'_>,
    text: &str,
    config_map: &ConfigMap,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(data) = &config_map.data else { return };
    for (key, body) in data {
        let Some(kind) = embedded_kind(key) else {
            continue;
        };
        let outer_path = yaml::join_key("data", key);
        let shown_path = format!("data[{key:?}]");
        let mapper = LineMapper::new(ctx, text, &outer_path);
        let documents = match yaml::parse_documents(body) {
            Ok(documents) => documents,
            Err(err) => {
                let mut diag = yaml_error_diagnostic(ctx.file, &err, |p| mapper.map(p));
                diag.location.document = ctx.document;
                diag.field = join_shown(&shown_path, &err.path);
                errors.push(diag);
                continue;
            }
        };
        let embedded_in = EmbeddedIn {
            namespace: config_map.metadata.namespace.clone(),
            config_map: config_map.metadata.name.clone().unwrap_or_default(),
            key: key.clone(),
        };
        for document in documents {
            let mut positions = document.positions;
            positions.remap(|p| mapper.map(p));
            let start = mapper.map(document.start);
            let inner = DocContext {
                file: ctx.file,
                document: ctx.document,
                positions: Arc::new(positions),
                start,
            };
            let result = load_embedded_document(&inner, kind, &document.value, &embedded_in, inv);
            if let Err(mut diag) = result {
                diag.field = join_shown(&shown_path, &diag.field);
                errors.push(diag);
            }
        }
    }
}

fn join_shown(outer: &str, inner: &str) -> String {
    if inner.is_empty() {
        outer.to_string()
    } else if inner.starts_with('[') {
        format!("{outer}{inner}")
    } else {
        format!("{outer}.{inner}")
    }
}

fn load_embedded_document(
    ctx: &DocContext<'_>,
    kind: EmbeddedKind,
    value: &Value,
    embedded_in: &EmbeddedIn,
    inv: &mut Inventory,
) -> Result<(), Diagnostic> {
    match kind {
        EmbeddedKind::Prometheus => {
            let config: PrometheusConfig = decode(ctx, value, "")?;
            inv.prometheus_configs
                .push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Loki => {
            let config: LokiConfig = decode(ctx, value, "")?;
            inv.loki_configs.push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Promtail => {
            let config: PromtailConfig = decode(ctx, value, "")?;
            inv.promtail_configs.push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Rules => {
            let rules: RuleFile = decode(ctx, value, "")?;
            inv.rule_files.push(ctx.embedded(embedded_in, rules));
        }
        EmbeddedKind::GpuSharing => {
            let sharing = GpuSharing::from_value(value).map_err(|problem| {
                Diagnostic::error(
                    ctx.location(&problem.field, problem.at_key),
                    problem.field.clone(),
                    problem.message,
                )
            })?;
            inv.gpu_sharing.push(ctx.embedded(embedded_in, sharing));
        }
    }
    Ok(())
}

/// Maps a position inside a string scalar back to the outer file. Exact for `|` blocks (each
/// content line is one source line); for other styles every position maps to the scalar's start,
/// which is the best an editor can be told.
struct LineMapper {
    start: Position,
    literal: Option<(usize, usize)>,
}

impl LineMapper {
    fn new(ctx: &DocContext<'_>, text: &str, path: &str) -> LineMapper {
        let span = ctx.positions.get(path).unwrap_or_default();
        let start = span.value;
        let literal = match ctx.positions.form(path) {
            Some(yaml::ScalarForm::Literal) => {
                // saphyr-parser starts a `|` block's span on the line after the indicator, where
                // content begins; content is indented by its first non-blank line's indentation.
                let indicator_line = start.line.saturating_sub(1);
                let indent = text
                    .lines()
                    .skip(indicator_line)
                    .find(|line| !line.trim().is_empty())
                    .map(|line| line.len() - line.trim_start_matches(' ').len())
                    .unwrap_or(0);
                Some((indicator_line, indent))
            }
            _ => None,
        };
        LineMapper { start, literal }
    }

    fn map(&self, inner: Position) -> Position {
        match self.literal {
            Some((indicator_line, indent)) => Position {
                line: indicator_line + inner.line,
                column: inner.column + indent,
            },
            None => self.start,
        }
    }
}

/// Reads a file of exactly one YAML or JSON document as `T` (a twin input format: a scenario,
/// service profiles), with the same limits, text checks and `file:line:col` diagnostics as
/// the manifests. `T` should deny unknown fields where its schema is closed.
pub fn load_typed<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Sourced<T>, ManifestError> {
    let path = path.as_ref();
    let text = read_text(path).map_err(|diag| ManifestError::from_diagnostics(vec![diag]))?;
    typed_from_str(path, &text)
}

/// [`load_typed`] on text, as if read from the file `name`.
pub fn typed_from_str<T: DeserializeOwned>(name: &Path, text: &str) -> Result<Sourced<T>, ManifestError> {
    let fail = |diags: Vec<Diagnostic>| ManifestError::from_diagnostics(diags);
    check_text(name, text.as_bytes()).map_err(|diag| fail(vec![diag]))?;
    let documents = yaml::parse_documents(text).map_err(|err| fail(vec![yaml_error_diagnostic(name, &err, |p| p)]))?;
    let [document] = documents.as_slice() else {
        let here = Location { file: name.to_path_buf(), ..Default::default() };
        return Err(fail(vec![Diagnostic::error(here, "", format!("expected exactly one document, found {}", documents.len()))]));
    };
    let ctx = DocContext { file: name, document: document.index, positions: Arc::new(document.positions.clone()), start: document.start };
    let object = decode::<T>(&ctx, &document.value, "").map_err(|diag| fail(vec![diag]))?;
    Ok(ctx.sourced(object))
}

/// Deserializes a block of a parsed document (`value`, found at `base`) as `T`, with its
/// diagnostics placed by `positions`; for formats that embed another (a scenario's topology).
pub fn decode_block<T: DeserializeOwned>(file: &Path, document: usize, positions: Arc<FieldPositions>, value: &Value, base: &str) -> Result<T, Diagnostic> {
    let ctx = DocContext { file, document, positions, start: Position::default() };
    decode::<T>(&ctx, value, base)
}

impl Inventory {
    /// Applies a JSON merge patch (RFC 7386) to the object of `kind` named `name` (in
    /// `namespace` when given). Supported kinds: Deployment, HorizontalPodAutoscaler,
    /// DestinationRule, VirtualService, ResourceQuota, Service. Returns why it could not.
    pub fn patch(&mut self, kind: &str, name: &str, namespace: Option<&str>, patch: &Value) -> Result<(), String> {
        fn apply<T: Serialize + DeserializeOwned>(items: &mut [Sourced<T>], meta: impl Fn(&T) -> &ObjectMeta, name: &str, namespace: Option<&str>, patch: &Value) -> Result<(), String> {
            let item = items
                .iter_mut()
                .find(|i| meta(&i.object).name.as_deref() == Some(name) && namespace.is_none_or(|ns| meta(&i.object).namespace.as_deref() == Some(ns)))
                .ok_or_else(|| format!("no object named {name:?} to patch"))?;
            let mut value = serde_json::to_value(&item.object).map_err(|e| e.to_string())?;
            json_patch::merge(&mut value, patch);
            item.object = serde_path_to_error::deserialize(value).map_err(|e| format!("the patched object is invalid: {}: {}", e.path(), e.inner()))?;
            Ok(())
        }
        match kind {
            "Deployment" => apply(&mut self.deployments, |d| &d.metadata, name, namespace, patch),
            "HorizontalPodAutoscaler" => apply(&mut self.hpas, |d| &d.metadata, name, namespace, patch),
            "DestinationRule" => apply(&mut self.destination_rules, |d| &d.metadata, name, namespace, patch),
            "VirtualService" => apply(&mut self.virtual_services, |d| &d.metadata, name, namespace, patch),
            "ResourceQuota" => apply(&mut self.resource_quotas, |d| &d.metadata, name, namespace, patch),
            "Service" => apply(&mut self.services, |d| &d.metadata, name, namespace, patch),
            other => Err(format!("patching a {other} is not supported (Deployment, HorizontalPodAutoscaler, DestinationRule, VirtualService, ResourceQuota, Service)")),
        }
    }
}
