//! Argo CD `argoproj.io/v1alpha1` Application (Argo CD 2.x): where it syncs from and to, and how.
//!
//! Only the fields the twin reads are typed; the CRD allows more (`ignoreDifferences`, `info`),
//! which are kept in `other`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ObjectMeta;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ApplicationSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    pub project: String,
    pub source: Option<ApplicationSource>,
    #[serde(default)]
    pub sources: Vec<ApplicationSource>,
    pub destination: ApplicationDestination,
    pub sync_policy: Option<SyncPolicy>,
    pub revision_history_limit: Option<i64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    pub target_revision: Option<String>,
    pub path: Option<String>,
    pub chart: Option<String>,
    pub helm: Option<Value>,
    pub kustomize: Option<Value>,
    pub directory: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    pub server: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    pub automated: Option<AutomatedSync>,
    #[serde(default)]
    pub sync_options: Vec<String>,
    pub retry: Option<RetryStrategy>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomatedSync {
    pub prune: Option<bool>,
    pub self_heal: Option<bool>,
    pub allow_empty: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    pub limit: Option<i64>,
    pub backoff: Option<Backoff>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    pub duration: Option<String>,
    pub factor: Option<i64>,
    pub max_duration: Option<String>,
}
