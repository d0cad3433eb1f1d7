//! HPA case files (`spec/kubernetes.md` Appendix A): reading one case, rejecting what the API
//! server would reject, lowering it into [`HpaCase`], and comparing a [`Decision`] with the case's
//! `expected` block.
//!
//! Invariants: a case that fails any check yields every problem found as a [`Diagnostic`] with
//! file, line:column and field path, and no [`HpaCase`], so nothing is decided on half-read input.
//! Checks mirror the API server's validation of autoscaling/v2 (reasons worded as upstream words
//! them, e.g. `Invalid value: 1801: must be less than or equal to 1800`). A metric `type` the
//! controller does not know is deliberately not an input error here: it reaches the controller as
//! the `InvalidMetricSourceType` condition, which is what the case format asks for.
//!
//! Extensions over Appendix A, all optional: `kubernetesVersion` (top level or in `controller`),
//! `controller.featureGates` (`HPAConfigurableTolerance`, `HPAScaleToZero`), `ContainerResource`
//! metrics with `container` and per-pod `containers[]`, `metricAgeSeconds` per pod, `outdated`
//! on scale events, and `expected.limitedBy`.

mod locate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::autoscale::hpa::{
    Behavior, Container, ControllerConfig, ControllerMemory, Decision, ExtraSample, HpaCase,
    HpaSpec, KubernetesVersion, MetricSpec, Pod, PodPhase, PolicyKind, Recommendation,
    ResourceTarget, ScaleEvent, ScalingPolicy, ScalingRules, SelectPolicy, ValueTarget,
};
use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::engine::SimDuration;
use locate::Step;

/// Why a case file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseFileError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable HPA case")]
    Invalid {
        path: PathBuf,
        #[source]
        diagnostics: Diagnostics,
    },
}

/// A case read from a file: the model input and what it expects, if anything.
#[derive(Clone, Debug)]
pub struct LoadedCase {
    pub case: HpaCase,
    pub expected: Option<Expected>,
    /// Where the case comes from (an upstream test, `adapted from ...`, or `derived`).
    pub source: Option<String>,
    /// The hand derivation and version notes, as text.
    pub notes: Vec<String>,
}

/// The case's `expected` block.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expected {
    pub desired_replicas: i32,
    #[serde(default)]
    pub current_utilization: Option<i32>,
    #[serde(default)]
    pub per_metric_proposals: Option<Vec<Option<i32>>>,
    #[serde(default)]
    pub conditions: Option<BTreeMap<String, ExpectedCondition>>,
    #[serde(default)]
    pub limited_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCondition {
    pub status: String,
    pub reason: String,
}

/// Reads and checks one case file.
pub fn load(path: &Path) -> Result<LoadedCase, CaseFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| CaseFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text).map_err(|diagnostics| CaseFileError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })
}

/// Parses and checks case text; `path` only names the file in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<LoadedCase, Diagnostics> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|err| {
        Diagnostics(vec![Diagnostic::error(
            Location {
                file: path.to_path_buf(),
                document: 0,
                line: err.line(),
                column: err.column(),
            },
            "",
            strip_position(&err),
        )])
    })?;
    // A single case object, or a one-element array holding it.
    let prefix = match &value {
        serde_json::Value::Array(items) if items.len() == 1 => vec![Step::Index(0)],
        serde_json::Value::Array(items) => {
            return Err(Diagnostics(vec![Diagnostic::error(
                Location {
                    file: path.to_path_buf(),
                    document: 0,
                    line: 1,
                    column: 1,
                },
                "",
                format!(
                    "expected one case per file, found an array of {}",
                    items.len()
                ),
            )]));
        }
        _ => Vec::new(),
    };
    // Deserialize from the text (not the Value) so serde_json reports line and column.
    let raw: RawCase = if prefix.is_empty() {
        deserialize_located(path, text, |de| serde_path_to_error::deserialize(de))?
    } else {
        let cases: Vec<RawCase> =
            deserialize_located(path, text, |de| serde_path_to_error::deserialize(de))?;
        cases
            .into_iter()
            .next()
            .expect("the array was checked to hold one element")
    };
    let mut checker = Checker {
        path,
        text,
        prefix,
        diagnostics: Vec::new(),
    };
    let loaded = checker.lower(raw);
    if checker.diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(checker.diagnostics))
    }
}

fn deserialize_located<T>(
    path: &Path,
    text: &str,
    run: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
    ) -> Result<T, serde_path_to_error::Error<serde_json::Error>>,
) -> Result<T, Diagnostics> {
    let mut de = serde_json::Deserializer::from_str(text);
    run(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        Diagnostics(vec![Diagnostic::error(
            Location {
                file: path.to_path_buf(),
                document: 0,
                line: inner.line(),
                column: inner.column(),
            },
            if field == "." { String::new() } else { field },
            strip_position(&inner),
        )])
    })
}

/// serde_json appends " at line L column C"; the diagnostic carries the position itself.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_string(),
        None => text,
    }
}

// ---- raw file types (Appendix A, field for field) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCase {
    name: String,
    #[serde(default)]
    source: Option<String>,
    /// Free text (a string, or an array of lines); shown, never interpreted.
    #[serde(default)]
    note: Option<serde_json::Value>,
    #[serde(default)]
    version_notes: Option<serde_json::Value>,
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    controller: Option<RawController>,
    spec: RawSpec,
    current_replicas: i32,
    #[serde(default)]
    status_replicas: Option<i32>,
    #[serde(default)]
    metric_window_seconds: Option<f64>,
    #[serde(default)]
    metric_desired_replicas: Option<i32>,
    #[serde(default)]
    pods: Vec<RawPod>,
    #[serde(default)]
    extra_metrics: Vec<RawExtra>,
    #[serde(default)]
    recommendation_history: Option<Vec<RawRecommendation>>,
    #[serde(default)]
    scale_up_events: Option<Vec<RawEvent>>,
    #[serde(default)]
    scale_down_events: Option<Vec<RawEvent>>,
    #[serde(default)]
    expected: Option<Expected>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawController {
    #[serde(default)]
    tolerance: Option<f64>,
    #[serde(default)]
    cpu_initialization_period_seconds: Option<f64>,
    #[serde(default)]
    initial_readiness_delay_seconds: Option<f64>,
    #[serde(default)]
    downscale_stabilization_seconds: Option<f64>,
    #[serde(default)]
    scale_up_limit_factor: Option<f64>,
    #[serde(default)]
    scale_up_limit_minimum: Option<f64>,
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    feature_gates: BTreeMap<String, bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    min_replicas: Option<i32>,
    max_replicas: i32,
    #[serde(default)]
    metrics: Vec<RawMetric>,
    #[serde(default)]
    behavior: Option<RawBehavior>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetric {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    described_object: Option<RawDescribedObject>,
    #[serde(default)]
    selector: Option<serde_json::Value>,
    #[serde(default)]
    observed: Option<RawObserved>,
    #[serde(default)]
    target: Option<RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDescribedObject {
    /// Accepted for fidelity with the API object; the controller only names the kind and name.
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<serde::de::IgnoredAny>,
    kind: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawObserved {
    #[serde(default)]
    value_milli: Option<i64>,
    #[serde(default)]
    values_milli: Option<Vec<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTarget {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    average_utilization: Option<i32>,
    #[serde(default)]
    average_value_milli: Option<i64>,
    #[serde(default)]
    value_milli: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBehavior {
    #[serde(default)]
    scale_up: Option<RawRules>,
    #[serde(default)]
    scale_down: Option<RawRules>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRules {
    #[serde(default)]
    stabilization_window_seconds: Option<i32>,
    #[serde(default)]
    select_policy: Option<String>,
    #[serde(default)]
    policies: Option<Vec<RawPolicy>>,
    #[serde(default)]
    tolerance: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    #[serde(rename = "type")]
    kind: String,
    value: i32,
    period_seconds: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPod {
    name: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    started_seconds_ago: Option<f64>,
    #[serde(default)]
    ready_transition_seconds_ago: Option<f64>,
    #[serde(default)]
    metric_age_seconds: Option<f64>,
    #[serde(default)]
    requests: BTreeMap<String, i64>,
    #[serde(default)]
    usage: BTreeMap<String, i64>,
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawContainer {
    name: String,
    #[serde(default)]
    requests: BTreeMap<String, i64>,
    #[serde(default)]
    usage: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExtra {
    pod: String,
    #[serde(default)]
    usage: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRecommendation {
    seconds_ago: f64,
    replicas: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEvent {
    seconds_ago: f64,
    delta: i32,
    #[serde(default)]
    outdated: bool,
}

// ---- checking and lowering ----

/// A field path being built: steps for locating, text for the diagnostic.
#[derive(Clone)]
struct FieldPath(Vec<Step>);

impl FieldPath {
    fn root() -> Self {
        FieldPath(Vec::new())
    }
    fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_string()));
        FieldPath(steps)
    }
    fn index(&self, idx: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(idx));
        FieldPath(steps)
    }
    fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.0 {
            match step {
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(idx) => out.push_str(&format!("[{idx}]")),
            }
        }
        out
    }
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    prefix: Vec<Step>,
    diagnostics: Vec<Diagnostic>,
}

const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
const MAX_PERIOD_SECONDS: i32 = 1800;

impl Checker<'_> {
    fn error(&mut self, at: &FieldPath, message: impl Into<String>) {
        let mut steps = self.prefix.clone();
        steps.extend(at.0.iter().cloned());
        let (line, column) = locate::locate(self.text, &steps);
        self.diagnostics.push(Diagnostic::error(
            Location {
                file: self.path.to_path_buf(),
                document: 0,
                line,
                column,
            },
            at.render(),
            message,
        ));
    }

    /// A non-negative, finite number of seconds as a duration.
    fn seconds(&mut self, at: &FieldPath, seconds: f64) -> SimDuration {
        if !seconds.is_finite() || seconds < 0.0 {
            self.error(
                at,
                format!("Invalid value: {seconds}: must be greater than or equal to 0"),
            );
            return SimDuration::ZERO;
        }
        SimDuration::from_secs_f64(seconds)
    }

    fn version(&mut self, at: &FieldPath, text: &str) -> KubernetesVersion {
        let trimmed = text.strip_prefix('v').unwrap_or(text);
        let mut parts = trimmed.split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
        let patch_ok = parts.next().is_none_or(|p| {
            p.split(['-', '+'])
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        });
        match (major, minor, patch_ok) {
            (Some(major), Some(minor), true) => KubernetesVersion::new(major, minor),
            _ => {
                self.error(
                    at,
                    format!("\"{text}\" is not a Kubernetes version (expected e.g. \"v1.35\")"),
                );
                KubernetesVersion::CURRENT
            }
        }
    }

    fn lower(&mut self, raw: RawCase) -> LoadedCase {
        let root = FieldPath::root();
        let raw_controller = raw.controller.unwrap_or_default();
        let version = match (&raw.kubernetes_version, &raw_controller.kubernetes_version) {
            (Some(v), _) => self.version(&root.key("kubernetesVersion"), v),
            (None, Some(v)) => self.version(&root.key("controller").key("kubernetesVersion"), v),
            (None, None) => KubernetesVersion::CURRENT,
        };
        let controller = self.controller(&root.key("controller"), &raw_controller, version);
        let scale_to_zero = raw_controller
            .feature_gates
            .get("HPAScaleToZero")
            .copied()
            .unwrap_or(false);
        let spec = self.spec(&root.key("spec"), raw.spec, scale_to_zero);

        if raw.current_replicas < 0 {
            self.error(
                &root.key("currentReplicas"),
                format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    raw.current_replicas
                ),
            );
        }
        let status_replicas = raw.status_replicas.unwrap_or(raw.current_replicas);
        if status_replicas < 0 {
            self.error(
                &root.key("statusReplicas"),
                format!("Invalid value: {status_replicas}: must be greater than or equal to 0"),
            );
        }
        // Upstream's fake metrics server reports a one-minute window; the case may override it.
        let metric_window = match raw.metric_window_seconds {
            Some(s) => self.seconds(&root.key("metricWindowSeconds"), s),
            None => SimDuration::from_secs(60),
        };

        let mut names = std::collections::BTreeSet::new();
        let mut pods = Vec::with_capacity(raw.pods.len());
        for (idx, raw_pod) in raw.pods.into_iter().enumerate() {
            let at = root.key("pods").index(idx);
            if !names.insert(raw_pod.name.clone()) {
                self.error(
                    &at.key("name"),
                    format!("Duplicate value: \"{}\"", raw_pod.name),
                );
            }
            pods.push(self.pod(&at, raw_pod));
        }
        let mut extra_samples = Vec::new();
        for (idx, extra) in raw.extra_metrics.into_iter().enumerate() {
            if !names.insert(extra.pod.clone()) {
                self.error(
                    &root.key("extraMetrics").index(idx).key("pod"),
                    format!(
                        "Duplicate value: \"{}\" (samples of listed pods belong in pods[].usage)",
                        extra.pod
                    ),
                );
            }
            extra_samples.push(ExtraSample {
                pod: extra.pod,
                usage: extra.usage,
            });
        }

        let recommendations = raw.recommendation_history.map(|recs| {
            recs.into_iter()
                .enumerate()
                .map(|(idx, rec)| Recommendation {
                    age: self.seconds(
                        &root
                            .key("recommendationHistory")
                            .index(idx)
                            .key("secondsAgo"),
                        rec.seconds_ago,
                    ),
                    replicas: rec.replicas,
                })
                .collect()
        });
        let scale_up_events = self.events(
            &root.key("scaleUpEvents"),
            raw.scale_up_events.unwrap_or_default(),
        );
        let scale_down_events = self.events(
            &root.key("scaleDownEvents"),
            raw.scale_down_events.unwrap_or_default(),
        );

        let case = HpaCase {
            name: raw.name,
            version,
            controller,
            spec,
            spec_replicas: raw.current_replicas,
            status_replicas,
            metric_window,
            metric_desired_replicas: raw.metric_desired_replicas,
            pods,
            extra_samples,
            memory: ControllerMemory {
                recommendations,
                scale_up_events,
                scale_down_events,
            },
        };
        let notes = [("note", raw.note), ("versionNotes", raw.version_notes)]
            .into_iter()
            .filter_map(|(label, value)| value.map(|v| format!("{label}: {}", note_text(&v))))
            .collect();
        LoadedCase {
            case,
            expected: raw.expected,
            source: raw.source,
            notes,
        }
    }

    fn events(&mut self, at: &FieldPath, raw: Vec<RawEvent>) -> Vec<ScaleEvent> {
        raw.into_iter()
            .enumerate()
            .map(|(idx, event)| {
                let event_at = at.index(idx);
                if event.delta < 0 {
                    self.error(
                        &event_at.key("delta"),
                        format!("Invalid value: {}: must be positive", event.delta),
                    );
                }
                ScaleEvent {
                    age: self.seconds(&event_at.key("secondsAgo"), event.seconds_ago),
                    delta: event.delta,
                    outdated: event.outdated,
                }
            })
            .collect()
    }

    fn controller(
        &mut self,
        at: &FieldPath,
        raw: &RawController,
        version: KubernetesVersion,
    ) -> ControllerConfig {
        let mut config = ControllerConfig::defaults_for(version);
        if let Some(t) = raw.tolerance {
            if !t.is_finite() || t < 0.0 {
                self.error(
                    &at.key("tolerance"),
                    format!("Invalid value: {t}: must be greater than or equal to 0"),
                );
            }
            config.tolerance = t;
        }
        if let Some(s) = raw.cpu_initialization_period_seconds {
            config.cpu_initialization_period =
                self.seconds(&at.key("cpuInitializationPeriodSeconds"), s);
        }
        if let Some(s) = raw.initial_readiness_delay_seconds {
            config.initial_readiness_delay =
                self.seconds(&at.key("initialReadinessDelaySeconds"), s);
        }
        if let Some(s) = raw.downscale_stabilization_seconds {
            config.downscale_stabilization_window =
                self.seconds(&at.key("downscaleStabilizationSeconds"), s);
        }
        if let Some(f) = raw.scale_up_limit_factor {
            config.scale_up_limit_factor = f;
        }
        if let Some(m) = raw.scale_up_limit_minimum {
            config.scale_up_limit_minimum = m;
        }
        for (gate, enabled) in &raw.feature_gates {
            match gate.as_str() {
                "HPAConfigurableTolerance" => config.configurable_tolerance = *enabled,
                "HPAScaleToZero" => {}
                other => self.error(
                    &at.key("featureGates").key(other),
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"HPAConfigurableTolerance\", \"HPAScaleToZero\""
                    ),
                ),
            }
        }
        config
    }

    fn spec(&mut self, at: &FieldPath, raw: RawSpec, scale_to_zero: bool) -> HpaSpec {
        let min = raw.min_replicas.unwrap_or(1);
        let has_object_or_external = raw
            .metrics
            .iter()
            .any(|m| m.kind == "Object" || m.kind == "External");
        // minReplicas 0 needs the HPAScaleToZero gate and a metric that can see a workload at zero.
        let min_allowed = if scale_to_zero && has_object_or_external {
            0
        } else {
            1
        };
        if min < min_allowed {
            self.error(
                &at.key("minReplicas"),
                format!("Invalid value: {min}: must be greater than or equal to {min_allowed}"),
            );
        }
        if raw.max_replicas < 1 {
            self.error(
                &at.key("maxReplicas"),
                format!(
                    "Invalid value: {}: must be greater than or equal to 1",
                    raw.max_replicas
                ),
            );
        }
        if raw.max_replicas < min {
            self.error(
                &at.key("maxReplicas"),
                format!(
                    "Invalid value: {}: must be greater than or equal to `minReplicas`",
                    raw.max_replicas
                ),
            );
        }
        let mut metrics = Vec::with_capacity(raw.metrics.len());
        for (idx, metric) in raw.metrics.into_iter().enumerate() {
            metrics.push(self.metric(&at.key("metrics").index(idx), metric));
        }
        if metrics.is_empty() {
            // API defaulting: no metrics means 80 % CPU utilization.
            metrics.push(MetricSpec::Resource {
                resource: "cpu".to_string(),
                container: None,
                target: ResourceTarget::Utilization(80),
            });
        }
        let behavior = raw.behavior.map(|b| {
            let at = at.key("behavior");
            Behavior {
                scale_up: b.scale_up.map(|r| self.rules(&at.key("scaleUp"), r)),
                scale_down: b.scale_down.map(|r| self.rules(&at.key("scaleDown"), r)),
            }
        });
        HpaSpec {
            min_replicas: min,
            max_replicas: raw.max_replicas,
            metrics,
            behavior,
        }
    }

    fn rules(&mut self, at: &FieldPath, raw: RawRules) -> ScalingRules {
        if let Some(window) = raw.stabilization_window_seconds {
            if window < 0 {
                self.error(
                    &at.key("stabilizationWindowSeconds"),
                    format!("Invalid value: {window}: must be greater than or equal to zero"),
                );
            } else if window > MAX_STABILIZATION_WINDOW_SECONDS {
                self.error(
                    &at.key("stabilizationWindowSeconds"),
                    format!("Invalid value: {window}: must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
                );
            }
        }
        let select_policy = raw.select_policy.as_deref().map(|s| match s {
            "Max" => SelectPolicy::Max,
            "Min" => SelectPolicy::Min,
            "Disabled" => SelectPolicy::Disabled,
            other => {
                self.error(
                    &at.key("selectPolicy"),
                    format!("Unsupported value: \"{other}\": supported values: \"Disabled\", \"Max\", \"Min\""),
                );
                SelectPolicy::Max
            }
        });
        let policies = raw.policies.map(|policies| {
            if policies.is_empty() {
                self.error(&at.key("policies"), "Required value: must specify at least one Policy");
            }
            policies
                .into_iter()
                .enumerate()
                .map(|(idx, p)| {
                    let p_at = at.key("policies").index(idx);
                    let kind = match p.kind.as_str() {
                        "Pods" => PolicyKind::Pods,
                        "Percent" => PolicyKind::Percent,
                        other => {
                            self.error(
                                &p_at.key("type"),
                                format!("Unsupported value: \"{other}\": supported values: \"Percent\", \"Pods\""),
                            );
                            PolicyKind::Pods
                        }
                    };
                    if p.value <= 0 {
                        self.error(&p_at.key("value"), format!("Invalid value: {}: must be greater than zero", p.value));
                    }
                    if p.period_seconds <= 0 {
                        self.error(
                            &p_at.key("periodSeconds"),
                            format!("Invalid value: {}: must be greater than zero", p.period_seconds),
                        );
                    } else if p.period_seconds > MAX_PERIOD_SECONDS {
                        self.error(
                            &p_at.key("periodSeconds"),
                            format!("Invalid value: {}: must be less than or equal to {MAX_PERIOD_SECONDS}", p.period_seconds),
                        );
                    }
                    ScalingPolicy { kind, value: p.value, period_seconds: p.period_seconds }
                })
                .collect()
        });
        if let Some(t) = raw.tolerance
            && (!t.is_finite() || t < 0.0)
        {
            self.error(
                &at.key("tolerance"),
                format!("Invalid value: {t}: must be greater than or equal to 0"),
            );
        }
        ScalingRules {
            stabilization_window_seconds: raw.stabilization_window_seconds,
            select_policy,
            policies,
            tolerance: raw.tolerance,
        }
    }

    /// validateMetricTarget: the checks common to every source type.
    fn target_common(&mut self, at: &FieldPath, target: &RawTarget) {
        if !matches!(
            target.kind.as_str(),
            "Utilization" | "Value" | "AverageValue"
        ) {
            self.error(
                &at.key("type"),
                format!(
                    "Invalid value: \"{}\": must be either Utilization, Value, or AverageValue",
                    target.kind
                ),
            );
        }
        if let Some(v) = target.value_milli.filter(|v| *v <= 0) {
            self.error(
                &at.key("valueMilli"),
                format!("Invalid value: {v}: must be positive"),
            );
        }
        if let Some(v) = target.average_value_milli.filter(|v| *v <= 0) {
            self.error(
                &at.key("averageValueMilli"),
                format!("Invalid value: {v}: must be positive"),
            );
        }
        if let Some(u) = target.average_utilization.filter(|u| *u < 1) {
            self.error(
                &at.key("averageUtilization"),
                format!("Invalid value: {u}: must be greater than 0"),
            );
        }
    }

    fn required_name(&mut self, at: &FieldPath, field: &str, name: Option<String>) -> String {
        match name {
            Some(name) if !name.is_empty() => name,
            _ => {
                self.error(
                    &at.key(field),
                    format!("Required value: must specify a {field}"),
                );
                String::new()
            }
        }
    }

    fn metric(&mut self, at: &FieldPath, raw: RawMetric) -> MetricSpec {
        let known = matches!(
            raw.kind.as_str(),
            "Resource" | "ContainerResource" | "Pods" | "Object" | "External"
        );
        if !known {
            return MetricSpec::Unknown {
                type_name: raw.kind,
            };
        }
        let target_at = at.key("target");
        let Some(target) = raw.target else {
            self.error(&target_at, "Required value: must specify a metric target");
            return MetricSpec::Unknown {
                type_name: raw.kind,
            };
        };
        self.target_common(&target_at, &target);
        match raw.kind.as_str() {
            "Resource" | "ContainerResource" => {
                let resource = self.required_name(at, "resource", raw.resource);
                let container = if raw.kind == "ContainerResource" {
                    Some(self.required_name(at, "container", raw.container))
                } else {
                    None
                };
                let target = match (target.average_value_milli, target.average_utilization) {
                    (Some(_), Some(_)) => {
                        self.error(
                            &target_at.key("averageValueMilli"),
                            "Forbidden: may not set both a target raw value and a target utilization",
                        );
                        ResourceTarget::Utilization(1)
                    }
                    (Some(v), None) => ResourceTarget::AverageValueMilli(v),
                    (None, Some(u)) => ResourceTarget::Utilization(u),
                    (None, None) => {
                        self.error(
                            &target_at.key("averageUtilization"),
                            "Required value: must set either a target raw value or a target utilization",
                        );
                        ResourceTarget::Utilization(1)
                    }
                };
                MetricSpec::Resource {
                    resource,
                    container,
                    target,
                }
            }
            "Pods" => {
                let name = self.required_name(at, "name", raw.name);
                let Some(average) = target.average_value_milli else {
                    self.error(
                        &target_at.key("averageValueMilli"),
                        "Required value: must specify a positive target averageValue",
                    );
                    return MetricSpec::Pods {
                        name,
                        target_average_milli: 1,
                    };
                };
                MetricSpec::Pods {
                    name,
                    target_average_milli: average,
                }
            }
            "Object" => {
                let name = self.required_name(at, "name", raw.name);
                let (described_kind, described_name) = match raw.described_object {
                    Some(object) => (object.kind, object.name),
                    None => {
                        self.error(
                            &at.key("describedObject"),
                            "Required value: must specify a describedObject",
                        );
                        (String::new(), String::new())
                    }
                };
                if target.value_milli.is_none() && target.average_value_milli.is_none() {
                    self.error(
                        &target_at.key("averageValueMilli"),
                        "Required value: must set either a target value or averageValue",
                    );
                }
                MetricSpec::Object {
                    name,
                    described_kind,
                    described_name,
                    observed_milli: raw.observed.and_then(|o| o.value_milli),
                    target: value_target(&target),
                }
            }
            _ => {
                let name = self.required_name(at, "name", raw.name);
                match (target.value_milli, target.average_value_milli) {
                    (None, None) => self.error(
                        &target_at.key("averageValueMilli"),
                        "Required value: must set either a target value for metric or a per-pod target",
                    ),
                    (Some(_), Some(_)) => self.error(
                        &target_at.key("valueMilli"),
                        "Forbidden: may not set both a target value for metric and a per-pod target",
                    ),
                    _ => {}
                }
                let selector = match &raw.selector {
                    Some(value) => value.to_string(),
                    None => "nil".to_string(),
                };
                MetricSpec::External {
                    name,
                    selector,
                    observed_milli: raw.observed.and_then(|o| o.values_milli),
                    target: value_target(&target),
                }
            }
        }
    }

    fn pod(&mut self, at: &FieldPath, raw: RawPod) -> Pod {
        let phase = match raw.phase.as_deref().unwrap_or("Running") {
            "Pending" => PodPhase::Pending,
            "Running" => PodPhase::Running,
            "Succeeded" => PodPhase::Succeeded,
            "Failed" => PodPhase::Failed,
            "Unknown" => PodPhase::Unknown,
            other => {
                self.error(
                    &at.key("phase"),
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"Failed\", \"Pending\", \"Running\", \"Succeeded\", \"Unknown\""
                    ),
                );
                PodPhase::Running
            }
        };
        let started_ago = raw
            .started_seconds_ago
            .map(|s| self.seconds(&at.key("startedSecondsAgo"), s));
        let ready_transition_ago = raw
            .ready_transition_seconds_ago
            .map(|s| self.seconds(&at.key("readyTransitionSecondsAgo"), s));
        // Requests are quantities the API server keeps non-negative; a negative total would
        // also break the utilization arithmetic.
        for (resource, value) in &raw.requests {
            if *value < 0 {
                self.error(
                    &at.key("requests").key(resource),
                    format!("Invalid value: {value}: must be greater than or equal to 0"),
                );
            }
        }
        for (idx, container) in raw.containers.iter().enumerate() {
            for (resource, value) in &container.requests {
                if *value < 0 {
                    self.error(
                        &at.key("containers")
                            .index(idx)
                            .key("requests")
                            .key(resource),
                        format!("Invalid value: {value}: must be greater than or equal to 0"),
                    );
                }
            }
        }
        let metric_age = raw.metric_age_seconds.map_or(SimDuration::ZERO, |s| {
            self.seconds(&at.key("metricAgeSeconds"), s)
        });
        Pod {
            name: raw.name,
            phase,
            ready: raw.ready,
            deleted: raw.deleted,
            started_ago,
            ready_transition_ago,
            metric_age,
            requests: raw.requests,
            usage: raw.usage,
            containers: raw
                .containers
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    requests: c.requests,
                    usage: c.usage,
                })
                .collect(),
        }
    }
}

/// A note as one line of text: strings as they are, arrays joined, anything else as JSON.
fn note_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(note_text).collect::<Vec<_>>().join(" ")
        }
        other => other.to_string(),
    }
}

/// Upstream picks the Object/External path by `target.type` and the matching field.
fn value_target(target: &RawTarget) -> ValueTarget {
    match (
        target.kind.as_str(),
        target.value_milli,
        target.average_value_milli,
    ) {
        ("Value", Some(v), _) => ValueTarget::ValueMilli(v),
        ("AverageValue", _, Some(v)) => ValueTarget::AverageValueMilli(v),
        _ => ValueTarget::Unset,
    }
}

// ---- expectations and output ----

fn status_word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Every way `decision` differs from `expected`; empty when it matches.
pub fn mismatches(decision: &Decision, expected: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    if decision.desired_replicas != expected.desired_replicas {
        out.push(format!(
            "desiredReplicas: expected {}, got {}",
            expected.desired_replicas, decision.desired_replicas
        ));
    }
    if let Some(utilization) = expected.current_utilization
        && decision.current_utilization != Some(utilization)
    {
        let got = decision
            .current_utilization
            .map_or("none".to_string(), |u| u.to_string());
        out.push(format!(
            "currentUtilization: expected {utilization}, got {got}"
        ));
    }
    if let Some(proposals) = &expected.per_metric_proposals {
        let got = proposals_of(decision);
        if *proposals != got {
            out.push(format!(
                "perMetricProposals: expected {}, got {}",
                list(proposals),
                list(&got)
            ));
        }
    }
    if let Some(conditions) = &expected.conditions {
        let got: BTreeMap<String, (String, String)> = decision
            .conditions
            .iter()
            .map(|(kind, c)| {
                (
                    kind.as_str().to_string(),
                    (status_word(c.status).to_string(), c.reason.to_string()),
                )
            })
            .collect();
        for (kind, want) in conditions {
            match got.get(kind) {
                Some((status, reason)) if *status == want.status && *reason == want.reason => {}
                Some((status, reason)) => out.push(format!(
                    "conditions.{kind}: expected {} {}, got {status} {reason}",
                    want.status, want.reason
                )),
                None => out.push(format!(
                    "conditions.{kind}: expected {} {}, got untouched",
                    want.status, want.reason
                )),
            }
        }
        for (kind, (status, reason)) in &got {
            if !conditions.contains_key(kind) {
                out.push(format!(
                    "conditions.{kind}: expected untouched, got {status} {reason}"
                ));
            }
        }
    }
    if let Some(limited_by) = &expected.limited_by {
        let got = decision.limited_by.map_or("none", |l| l.as_str());
        if got != limited_by {
            out.push(format!("limitedBy: expected {limited_by}, got {got}"));
        }
    }
    out
}

fn list(items: &[Option<i32>]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|p| p.map_or("null".to_string(), |n| n.to_string()))
        .collect();
    format!("[{}]", inner.join(", "))
}

fn proposals_of(decision: &Decision) -> Vec<Option<i32>> {
    decision
        .per_metric
        .iter()
        .map(|outcome| outcome.as_ref().ok().map(|p| p.replicas))
        .collect()
}

/// The decision as the JSON object of `twin explain hpa --format json`: the fields of
/// `expected` plus `limitedBy`, in a fixed order.
pub fn decision_json(decision: &Decision) -> serde_json::Value {
    let mut conditions = serde_json::Map::new();
    for (kind, c) in &decision.conditions {
        conditions.insert(
            kind.as_str().to_string(),
            serde_json::json!({ "status": status_word(c.status), "reason": c.reason }),
        );
    }
    serde_json::json!({
        "desiredReplicas": decision.desired_replicas,
        "currentUtilization": decision.current_utilization,
        "perMetricProposals": proposals_of(decision),
        "conditions": conditions,
        "limitedBy": decision.limited_by.map(|l| l.as_str()),
    })
}

#[cfg(test)]
mod tests;
