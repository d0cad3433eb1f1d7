//! Prometheus rule files and server configuration, as our own serde types.
//!
//! Mirrors Prometheus 2.42 (`model/rulefmt` and `config`): both decode YAML strictly
//! (`UnmarshalStrict`), so the rule-file types deny unknown fields. The server configuration is
//! large; the fields the twin reads are typed and the rest of each section is kept, by name, in
//! `other`, so nothing is silently dropped. String fields take any scalar, as yaml.v2 fills
//! them (see [`super::scalar`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{ObjectMeta, scalar};

/// A Prometheus rule file: `groups:` at the top.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    #[serde(deserialize_with = "scalar::string")]
    pub name: String,
    /// Evaluation interval such as `30s`; the global `evaluation_interval` when absent.
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub query_offset: Option<String>,
    pub limit: Option<u64>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// An alerting rule (`alert`) or a recording rule (`record`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub record: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub alert: Option<String>,
    #[serde(deserialize_with = "scalar::string")]
    pub expr: String,
    #[serde(rename = "for")]
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub for_duration: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub keep_firing_for: Option<String>,
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub annotations: BTreeMap<String, String>,
}

/// `monitoring.coreos.com/v1` PrometheusRule (the Prometheus Operator's wrapper of a rule file).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusRule {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: RuleFile,
}

/// The Prometheus server configuration (`prometheus.yml`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PrometheusConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default, deserialize_with = "scalar::string_vec")]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Sections the twin does not model (`alerting`, `remote_write`, ...), kept as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct GlobalConfig {
    /// Default `1m` in Prometheus.
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub scrape_interval: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub scrape_timeout: Option<String>,
    /// Default `1m` in Prometheus.
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub evaluation_interval: Option<String>,
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ScrapeConfig {
    #[serde(deserialize_with = "scalar::string")]
    pub job_name: String,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub scrape_interval: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub scrape_timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub metrics_path: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub scheme: Option<String>,
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct KubernetesSdConfig {
    /// `node`, `service`, `pod`, `endpoints`, `endpointslice`, `ingress`.
    #[serde(deserialize_with = "scalar::string")]
    pub role: String,
    pub namespaces: Option<NamespaceDiscovery>,
    #[serde(default)]
    pub selectors: Vec<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NamespaceDiscovery {
    #[serde(default, deserialize_with = "scalar::string_vec")]
    pub names: Vec<String>,
    pub own_namespace: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct StaticConfig {
    #[serde(default, deserialize_with = "scalar::string_vec")]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub labels: BTreeMap<String, String>,
}

/// One relabelling step. Defaults as Prometheus: action `replace`, regex `(.*)`, separator `;`,
/// replacement `$1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default, deserialize_with = "scalar::string_vec")]
    pub source_labels: Vec<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub separator: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub target_label: Option<String>,
    /// Written as a YAML scalar; a plain `true` is the regex `true`, as yaml.v2 decodes it into
    /// Prometheus' string-typed field.
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub replacement: Option<String>,
    #[serde(default, deserialize_with = "scalar::opt_string")]
    pub action: Option<String>,
}

/// Accepts any scalar for a string field, as `gopkg.in/yaml.v2` does when decoding into a Go
/// string (see [`scalar`]).
pub fn scalar_as_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    scalar::opt_string(deserializer)
}
