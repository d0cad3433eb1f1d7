//! The scenario file (`apiVersion: twin.sophia.dev/v1`, `kind: Scenario`) and the service
//! profiles file (`kind: ServiceProfiles`), as serde types. Every field is documented with an
//! example in `docs/scenarios.md`. Unknown fields are refused; durations are Kubernetes or
//! Prometheus strings (`30s`, `5m`, `1h30m`), refused when malformed.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::engine::{SimDuration, parse_duration};

/// The only apiVersion twin's own files carry.
pub const API_VERSION: &str = "twin.sophia.dev/v1";

/// A duration written as a string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub SimDuration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A Kubernetes quantity written as a string or a number (`900Mi`, `50m`, `0.5`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Qty(pub f64);

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a quantity, found {other}"
                )));
            }
        };
        let q =
            crate::manifests::quantity::parse_quantity(&text).map_err(serde::de::Error::custom)?;
        Ok(Qty(q.millis as f64 / 1000.0))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioFile {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub duration: Dur,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Folders and files of manifests, relative to the scenario file.
    pub manifests: Vec<String>,
    /// A topology file, relative to the scenario file.
    pub topology: String,
    /// A service profiles file, relative to the scenario file.
    pub profiles: String,
    /// A GPU calibration file or folder of them, relative to the scenario file (default: the
    /// shipped `fixtures/calibration/`, built in). Read only when a profile has `gpu.work`.
    pub calibration: Option<String>,
    /// Per-Deployment changes to the profiles (only the fields given).
    #[serde(default)]
    pub profile_overrides: BTreeMap<String, ProfilePatch>,
    #[serde(default)]
    pub patches: Vec<Patch>,
    #[serde(default)]
    pub assumptions: Assumptions,
    #[serde(default)]
    pub load: Vec<LoadSpec>,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Releases driven through a progressive-delivery strategy, each with its analysis.
    #[serde(default)]
    pub rollouts: Vec<RolloutSpec>,
    #[serde(default)]
    pub expectations: Vec<ExpectationSpec>,
}

fn default_seed() -> u64 {
    1
}

/// A JSON merge patch (RFC 7386) over one named object of the inventory.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub patch: serde_json::Value,
}

/// Choices the plan leaves open, each stated in the report.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assumptions {
    /// Assume a custom-metrics adapter serves the HPAs' Pods metrics (the plan ships none; the
    /// default is upstream's behaviour without one: the metric is unavailable).
    #[serde(default)]
    pub metrics_adapter: bool,
    /// Assume kube-state-metrics and cAdvisor are scraped (the plan's Prometheus config scrapes
    /// neither, so the series the crash-loop and memory alerts read do not exist by default).
    #[serde(default)]
    pub cluster_exporters: bool,
    /// Assume the pods' `job` label is their `app` label (the plan's relabeling sets
    /// `job="kubernetes-pods"`, so `job="agno-coordinator"` selectors match nothing).
    #[serde(default)]
    pub job_from_app_label: bool,
    /// metrics-server's `--metric-resolution` (default 15 s, as its published manifests set it):
    /// its scrape period and so the CPU window the HPA reads.
    pub metrics_server_resolution: Option<Dur>,
    /// The custom-metrics adapter's rate window (default 1 m).
    pub metrics_adapter_rate_window: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSpec {
    /// A VirtualService host (routed through it) or a Deployment name (straight to its pods).
    pub target: String,
    pub process: ProcessSpec,
    /// When the stream starts and stops (default: the whole run).
    pub from: Option<Dur>,
    pub until: Option<Dur>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// Headers set on a share of the requests: name → {value, share in [0, 1]}.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderShare>,
    pub principal: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderShare {
    pub value: String,
    pub share: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "type"
)]
pub enum ProcessSpec {
    Constant {
        rate: f64,
    },
    Poisson {
        rate: f64,
    },
    Step {
        before: f64,
        after: f64,
        at: Dur,
    },
    Ramp {
        from: f64,
        to: f64,
        start: Dur,
        over: Dur,
    },
    Spike {
        base: f64,
        peak: f64,
        start: Dur,
        lasting: Dur,
    },
    Diurnal {
        peak: f64,
        trough: f64,
        period: Dur,
        phase: Dur,
    },
    /// Replay of a trace file (docs/scenarios.md, "Trace files"), relative to the scenario.
    Trace {
        file: String,
        /// For a `time,rps` trace: `poisson` (default) or `even` arrivals within the rate.
        spacing: Option<SpacingSpec>,
    },
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SpacingSpec {
    Poisson,
    Even,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "type"
)]
pub enum Fault {
    /// Deletes the `index`-th pod (creation order) of a Deployment.
    PodKill {
        at: Dur,
        deployment: String,
        #[serde(default)]
        index: usize,
    },
    /// The node stops answering.
    NodeLoss { at: Dur, node: String },
    /// `kubectl drain`: cordon, then evict the node's pods as their disruption budgets allow.
    NodeDrain { at: Dur, node: String },
    /// One GPU device of a node fails: the pods on it fail and are rescheduled.
    GpuFault {
        at: Dur,
        node: String,
        device: usize,
    },
    /// A new revision of a Deployment whose pods behave differently (and carry extra labels).
    BadRelease {
        at: Dur,
        deployment: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        profile: ProfilePatch,
    },
    /// Every request of a Deployment takes this much longer, until `until`.
    Latency {
        at: Dur,
        deployment: String,
        extra: Dur,
        until: Option<Dur>,
    },
    /// A Deployment's pods grow their memory by `rate` bytes per second until OOM-killed.
    MemoryLeak {
        at: Dur,
        deployment: String,
        per_second: Qty,
    },
    /// LLM cost per request multiplied by `factor` from now on.
    CostSurge {
        at: Dur,
        deployment: String,
        factor: f64,
    },
    /// The metrics pipeline the HPAs read stops answering for `lasting`.
    MetricsOutage { at: Dur, lasting: Dur },
    /// Prometheus scrapes nothing for `lasting`.
    ScrapeGap { at: Dur, lasting: Dur },
    /// A Deployment's containers exit this long after each start (a crash loop).
    CrashLoop {
        at: Dur,
        deployment: String,
        after: Dur,
    },
    /// `kubectl rollout undo` on a Deployment.
    RolloutUndo { at: Dur, deployment: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "type"
)]
pub enum ExpectationSpec {
    /// The alert fires (reaches firing) no later than `within` after the start (or `after`).
    AlertFires {
        alert: String,
        within: Dur,
        after: Option<Dur>,
    },
    /// The alert never fires.
    AlertNeverFires { alert: String },
    /// The Deployment's spec.replicas reaches at least `count`.
    ReplicasReach { deployment: String, count: i32 },
    /// The Deployment's spec.replicas never exceeds `count`.
    ReplicasNeverExceed { deployment: String, count: i32 },
    /// No pod stays Pending longer than `longest`.
    PendingAtMost { longest: Dur },
    /// Some pod stays Pending at least `longest` (a scenario that shows a problem).
    PendingAtLeast { longest: Dur },
    /// The p99 latency of the requests answered by a Deployment stays below `below`.
    P99Below { deployment: String, below: Dur },
    /// The share of requests to a target answered with 5xx (or, with `status`, with that
    /// status: 403 for what an AuthorizationPolicy refuses) lies in [`min`, `max`].
    ErrorShare {
        target: String,
        status: Option<u16>,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// The error budget an SLO uses over the run stays below `fraction` of its 30-day budget.
    SloBudgetBelow { slo: String, fraction: f64 },
    /// Outlier detection ejects at least `min` distinct pods of a Deployment over the run, and
    /// never more than `max_at_once` of them at the same time.
    HostsEjected {
        deployment: String,
        min: Option<usize>,
        max_at_once: Option<usize>,
    },
    /// Every request ends with exactly one counted outcome.
    NoRequestsLost {},
    /// The rollout ends as `result` (`succeeded` or `aborted`), within `within` of its start.
    RolloutEnds {
        rollout: String,
        result: RolloutResult,
        within: Option<Dur>,
    },
    /// No request ends with a 5xx while the rollout is in progress (with `meshOnly`, only the
    /// ones Envoy answered itself count: 503 UH, UO, UC and the like, not the application's).
    #[serde(rename = "no5xxDuringRollout")]
    No5xxDuringRollout {
        rollout: String,
        #[serde(default)]
        mesh_only: bool,
    },
}

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutResult {
    Succeeded,
    Aborted,
}

/// A release driven the way Argo Rollouts and Flagger drive one: a strategy, the new version,
/// and an analysis whose abort rule, a PromQL expression, rolls the release back by itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    tag = "type"
)]
pub enum RolloutSpec {
    /// The Deployment's own RollingUpdate to the new version, watched by the analysis from the
    /// start until `analysisFor` after the last old pod is gone; an abort is `rollout undo`.
    RollingUpdate {
        name: String,
        at: Dur,
        deployment: String,
        release: Release,
        analysis: Option<AnalysisSpec>,
        analysis_for: Option<Dur>,
    },
    /// Istio canary steps: the new version goes to `canaryDeployment` (the pods of the
    /// DestinationRule's canary subset), then the VirtualService's weights move step by step,
    /// each held for its pause while the analysis runs. After the last step the stable
    /// Deployment is promoted to the new version and, once its rollout completes, takes all
    /// traffic. An abort sends all traffic back to stable and undoes the canary's revision.
    Canary {
        name: String,
        at: Dur,
        deployment: String,
        canary_deployment: String,
        virtual_service: String,
        #[serde(default = "default_stable_subset")]
        stable_subset: String,
        #[serde(default = "default_canary_subset")]
        canary_subset: String,
        /// Replicas the canary runs with during the release (default: as its manifest says).
        canary_replicas: Option<i32>,
        release: Release,
        steps: Vec<CanaryStep>,
        analysis: Option<AnalysisSpec>,
    },
    /// Blue-green: the new version goes to `previewDeployment` (the green subset); once all its
    /// pods are Ready and `switchAfter` has passed, every request moves to it at once. The
    /// analysis runs for `analysisFor` after the switch; an abort switches back.
    BlueGreen {
        name: String,
        at: Dur,
        deployment: String,
        preview_deployment: String,
        virtual_service: String,
        #[serde(default = "default_stable_subset")]
        active_subset: String,
        #[serde(default = "default_canary_subset")]
        preview_subset: String,
        preview_replicas: Option<i32>,
        release: Release,
        #[serde(default)]
        switch_after: Dur,
        analysis: Option<AnalysisSpec>,
        analysis_for: Option<Dur>,
    },
}

fn default_stable_subset() -> String {
    "stable".into()
}
fn default_canary_subset() -> String {
    "canary".into()
}

/// The new version: labels its pods gain and how they behave.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub profile: ProfilePatch,
}

/// One canary step: the canary subset's weight [percent] and how long it is held.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    pub weight: u32,
    pub pause: Dur,
}

/// The analysis: `abortWhen` is evaluated every `interval` over the run's Prometheus, like an
/// alert's expression: a check fails when it returns any sample (a scalar fails when it is
/// not 0), and the release aborts at the `failureLimit`-th failed check.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisSpec {
    pub abort_when: String,
    #[serde(default = "default_analysis_interval")]
    pub interval: Dur,
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
}

fn default_analysis_interval() -> Dur {
    Dur(SimDuration::from_secs(60))
}
fn default_failure_limit() -> u32 {
    1
}

/// A service profile: how one Deployment's pods behave.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// Required unless `gpu.work` takes the service time from the calibration.
    pub service_time: Option<ServiceTimeSpec>,
    /// Requests served at once per pod (worker slots).
    pub concurrency: u32,
    /// Image pull plus container start.
    pub startup: Dur,
    /// CPU per request [CPU seconds] and the idle baseline [cores].
    pub cpu_per_request: Qty,
    pub cpu_baseline: Qty,
    /// Memory at rest [bytes] and per request in flight [bytes].
    pub memory_baseline: Qty,
    pub memory_per_in_flight: Qty,
    /// Share of requests answered with `error_status`.
    pub error_rate: f64,
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// LLM API cost per request [dollars].
    #[serde(default)]
    pub llm_cost_per_request: f64,
    /// Agent tasks completed per request, by agent type.
    #[serde(default)]
    pub agent_tasks_per_request: BTreeMap<String, f64>,
    pub gpu: Option<GpuProfile>,
}

fn default_error_status() -> u16 {
    500
}

/// What a GPU pod does to its device.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuProfile {
    /// Device memory the model holds [bytes] and per request in flight [bytes].
    pub memory_baseline: Qty,
    pub memory_per_in_flight: Qty,
    /// The service time is the GPU work of the calibration for the pod's GPU class, slowed by
    /// the pods sharing its device (docs/calibration.md); `serviceTime` is then not given.
    pub work: Option<GpuWorkSpec>,
}

/// GPU work per request, looked up in the calibration.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuWorkSpec {
    /// The calibration row: requests run in batches of this size [requests].
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
}

fn default_batch_size() -> u32 {
    1
}

/// The fields of a profile a scenario may change.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePatch {
    /// Replaces the profile's service time, calibrated or not.
    pub service_time: Option<ServiceTimeSpec>,
    /// Replaces the profile's service time with the calibrated GPU work (a GPU profile only).
    pub gpu_work: Option<GpuWorkSpec>,
    pub error_rate: Option<f64>,
    pub error_status: Option<u16>,
    pub startup: Option<Dur>,
    pub llm_cost_per_request: Option<f64>,
    /// The pods fail their readiness and liveness probes.
    pub unhealthy: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ServiceTimeSpec {
    Constant(Dur),
    Exponential {
        mean: Dur,
    },
    Lognormal {
        p50: Dur,
        p99: Dur,
    },
    /// Prometheus-style cumulative buckets: `count` requests took at most `le`.
    Empirical {
        buckets: Vec<BucketSpec>,
    },
}

/// One cumulative histogram bucket, as `histogram_quantile` reads them.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSpec {
    /// Upper bound: seconds (`0.25`), a duration (`250ms`), or `+Inf` for the last bucket.
    pub le: Le,
    pub count: u64,
}

/// A bucket's upper bound; `None` is `+Inf`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Le(pub Option<SimDuration>);

impl<'de> Deserialize<'de> for Le {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let bad = |shown: String| {
            serde::de::Error::custom(format!(
                "le {shown} is not a bucket bound: give seconds (0.25), a duration (250ms) or +Inf"
            ))
        };
        match &value {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(secs) if secs.is_finite() && secs >= 0.0 => {
                    Ok(Le(Some(SimDuration::from_secs_f64(secs))))
                }
                _ => Err(bad(n.to_string())),
            },
            serde_json::Value::String(text) if text == "+Inf" || text == "Inf" => Ok(Le(None)),
            serde_json::Value::String(text) => match text.parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                    Ok(Le(Some(SimDuration::from_secs_f64(secs))))
                }
                Ok(_) => Err(bad(format!("{text:?}"))),
                Err(_) => parse_duration(text)
                    .map(|d| Le(Some(d)))
                    .map_err(|_| bad(format!("{text:?}"))),
            },
            other => Err(bad(other.to_string())),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilesFile {
    pub api_version: String,
    pub kind: String,
    pub profiles: BTreeMap<String, Profile>,
}

impl Fault {
    /// When the fault strikes, from the start of the run.
    pub fn at(&self) -> Dur {
        match self {
            Fault::PodKill { at, .. }
            | Fault::NodeLoss { at, .. }
            | Fault::NodeDrain { at, .. }
            | Fault::GpuFault { at, .. }
            | Fault::BadRelease { at, .. }
            | Fault::Latency { at, .. }
            | Fault::MemoryLeak { at, .. }
            | Fault::CostSurge { at, .. }
            | Fault::MetricsOutage { at, .. }
            | Fault::ScrapeGap { at, .. }
            | Fault::CrashLoop { at, .. }
            | Fault::RolloutUndo { at, .. } => *at,
        }
    }
}
