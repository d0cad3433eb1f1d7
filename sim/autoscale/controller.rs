//! The HPA controller in the engine: a HorizontalPodAutoscaler manifest lowered into
//! [`hpa::HpaSpec`], and the state one HPA keeps between syncs (the controller's memory, aged
//! by the time between reconciles). Each sync builds an [`hpa::HpaCase`] from what the metrics
//! pipeline reports and calls the pure [`hpa::recommend`]; the caller writes `spec.replicas`.
//!
//! Invariants: the manifest is checked as the API server would (min ≤ max, policy periods in
//! 1..=1800, Utilization only on Resource metrics); a metric type the controller cannot use is
//! kept as [`hpa::MetricSpec::Unknown`], which upstream reports as InvalidMetricSourceType.

use k8s_openapi::api::autoscaling::v2;

use super::hpa::{
    self, Behavior, ControllerConfig, ControllerMemory, Decision, HpaCase, HpaSpec,
    KubernetesVersion, MetricSpec, PolicyKind, ResourceTarget, ScalingPolicy, ScalingRules,
    SelectPolicy, ValueTarget,
};
use crate::diag::Diagnostic;
use crate::engine::{SimDuration, SimTime};
use crate::manifests::Sourced;
use crate::manifests::quantity::parse_quantity;

/// A field of an HPA manifest the API server would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", diagnostic.headline())]
pub struct HpaManifestError {
    pub diagnostic: Diagnostic,
}

fn bad(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
    field: &str,
    message: String,
) -> HpaManifestError {
    HpaManifestError {
        diagnostic: Diagnostic::error(hpa.field_location(field), field, message),
    }
}

fn milli(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
    field: &str,
    q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Result<i64, HpaManifestError> {
    let parsed = parse_quantity(&q.0).map_err(|err| bad(hpa, field, err.to_string()))?;
    i64::try_from(parsed.millis).map_err(|_| bad(hpa, field, format!("{:?} is too large", q.0)))
}

fn value_target(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
    field: &str,
    target: &v2::MetricTarget,
) -> Result<ValueTarget, HpaManifestError> {
    Ok(match target.type_.as_str() {
        "Value" => match &target.value {
            Some(q) => ValueTarget::ValueMilli(milli(hpa, &format!("{field}.value"), q)?),
            None => ValueTarget::Unset,
        },
        "AverageValue" => match &target.average_value {
            Some(q) => ValueTarget::AverageValueMilli(milli(hpa, &format!("{field}.averageValue"), q)?),
            None => ValueTarget::Unset,
        },
        "Utilization" => return Err(bad(hpa, &format!("{field}.type"), "Invalid value: \"Utilization\": must be either Value or AverageValue for this metric source".into())),
        _ => ValueTarget::Unset,
    })
}

fn resource_target(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
    field: &str,
    target: &v2::MetricTarget,
) -> Result<Option<ResourceTarget>, HpaManifestError> {
    Ok(match target.type_.as_str() {
        "Utilization" => target.average_utilization.map(ResourceTarget::Utilization),
        "AverageValue" => match &target.average_value {
            Some(q) => Some(ResourceTarget::AverageValueMilli(milli(
                hpa,
                &format!("{field}.averageValue"),
                q,
            )?)),
            None => None,
        },
        _ => None,
    })
}

fn rules(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
    field: &str,
    rules: Option<&v2::HPAScalingRules>,
) -> Result<Option<ScalingRules>, HpaManifestError> {
    let Some(r) = rules else { return Ok(None) };
    let mut policies = Vec::new();
    for (idx, p) in r.policies.iter().flatten().enumerate() {
        let pfield = format!("{field}.policies[{idx}]");
        if p.period_seconds <= 0 || p.period_seconds > 1800 {
            return Err(bad(
                hpa,
                &format!("{pfield}.periodSeconds"),
                format!(
                    "Invalid value: {}: must be greater than zero and less than or equal to 1800",
                    p.period_seconds
                ),
            ));
        }
        if p.value <= 0 {
            return Err(bad(
                hpa,
                &format!("{pfield}.value"),
                format!("Invalid value: {}: must be greater than zero", p.value),
            ));
        }
        let kind = match p.type_.as_str() {
            "Pods" => PolicyKind::Pods,
            "Percent" => PolicyKind::Percent,
            other => {
                return Err(bad(
                    hpa,
                    &format!("{pfield}.type"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Percent\", \"Pods\""
                    ),
                ));
            }
        };
        policies.push(ScalingPolicy {
            kind,
            value: p.value,
            period_seconds: p.period_seconds,
        });
    }
    let select_policy = match r.select_policy.as_deref() {
        None => None,
        Some("Max") => Some(SelectPolicy::Max),
        Some("Min") => Some(SelectPolicy::Min),
        Some("Disabled") => Some(SelectPolicy::Disabled),
        Some(other) => {
            return Err(bad(
                hpa,
                &format!("{field}.selectPolicy"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"Disabled\", \"Max\", \"Min\""
                ),
            ));
        }
    };
    Ok(Some(ScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy,
        policies: r.policies.as_ref().map(|_| policies),
        tolerance: r
            .tolerance
            .as_ref()
            .and_then(|q| parse_quantity(&q.0).ok())
            .map(|q| q.millis as f64 / 1000.0),
    }))
}

/// Lowers an HPA manifest (autoscaling/v2).
pub fn lower(
    hpa: &Sourced<v2::HorizontalPodAutoscaler>,
) -> Result<(String, HpaSpec), HpaManifestError> {
    let spec = hpa
        .spec
        .as_ref()
        .ok_or_else(|| bad(hpa, "spec", "an HPA needs a spec".into()))?;
    let min_replicas = spec.min_replicas.unwrap_or(1);
    if spec.max_replicas < min_replicas {
        return Err(bad(
            hpa,
            "spec.minReplicas",
            format!("Invalid value: {min_replicas}: must be less than or equal to maxReplicas"),
        ));
    }
    let mut metrics = Vec::new();
    let specs = spec.metrics.clone().unwrap_or_else(|| {
        // The API server's default: 80 % CPU utilization.
        vec![v2::MetricSpec {
            type_: "Resource".into(),
            resource: Some(v2::ResourceMetricSource {
                name: "cpu".into(),
                target: v2::MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]
    });
    for (idx, m) in specs.iter().enumerate() {
        let field = format!("spec.metrics[{idx}]");
        let unknown = || MetricSpec::Unknown {
            type_name: m.type_.clone(),
        };
        let lowered = match m.type_.as_str() {
            "Resource" => match &m.resource {
                Some(r) => {
                    match resource_target(hpa, &format!("{field}.resource.target"), &r.target)? {
                        Some(target) => MetricSpec::Resource {
                            resource: r.name.clone(),
                            container: None,
                            target,
                        },
                        None => unknown(),
                    }
                }
                None => unknown(),
            },
            "ContainerResource" => match &m.container_resource {
                Some(r) => match resource_target(
                    hpa,
                    &format!("{field}.containerResource.target"),
                    &r.target,
                )? {
                    Some(target) => MetricSpec::Resource {
                        resource: r.name.clone(),
                        container: Some(r.container.clone()),
                        target,
                    },
                    None => unknown(),
                },
                None => unknown(),
            },
            "Pods" => match &m.pods {
                Some(p) => {
                    if p.target.type_ == "Utilization" {
                        return Err(bad(hpa, &format!("{field}.pods.target.type"), "Invalid value: \"Utilization\": must be AverageValue for a Pods metric".into()));
                    }
                    match &p.target.average_value {
                        Some(q) => MetricSpec::Pods {
                            name: p.metric.name.clone(),
                            target_average_milli: milli(
                                hpa,
                                &format!("{field}.pods.target.averageValue"),
                                q,
                            )?,
                        },
                        None => unknown(),
                    }
                }
                None => unknown(),
            },
            "Object" => match &m.object {
                Some(o) => MetricSpec::Object {
                    name: o.metric.name.clone(),
                    described_kind: o.described_object.kind.clone(),
                    described_name: o.described_object.name.clone(),
                    observed_milli: None,
                    target: value_target(hpa, &format!("{field}.object.target"), &o.target)?,
                },
                None => unknown(),
            },
            "External" => match &m.external {
                Some(e) => MetricSpec::External {
                    name: e.metric.name.clone(),
                    selector: String::new(),
                    observed_milli: None,
                    target: value_target(hpa, &format!("{field}.external.target"), &e.target)?,
                },
                None => unknown(),
            },
            _ => unknown(),
        };
        metrics.push(lowered);
    }
    let behavior = match &spec.behavior {
        Some(b) => Some(Behavior {
            scale_up: rules(hpa, "spec.behavior.scaleUp", b.scale_up.as_ref())?,
            scale_down: rules(hpa, "spec.behavior.scaleDown", b.scale_down.as_ref())?,
        }),
        None => None,
    };
    Ok((
        spec.scale_target_ref.name.clone(),
        HpaSpec {
            min_replicas,
            max_replicas: spec.max_replicas,
            metrics,
            behavior,
        },
    ))
}

/// One HPA as the controller keeps it between syncs.
#[derive(Clone, Debug)]
pub struct HpaController {
    pub name: String,
    pub target: String,
    pub spec: HpaSpec,
    pub version: KubernetesVersion,
    pub config: ControllerConfig,
    memory: ControllerMemory,
    last_sync: Option<SimTime>,
}

impl HpaController {
    pub fn new(name: String, target: String, spec: HpaSpec, version: KubernetesVersion) -> Self {
        let config = ControllerConfig::defaults_for(version);
        HpaController {
            name,
            target,
            spec,
            version,
            config,
            memory: ControllerMemory::default(),
            last_sync: None,
        }
    }

    /// One reconcile at `now`. `metrics` is the spec's metrics with this round's observations
    /// filled in (Object/External values), `pods` what the metrics pipeline and the API report.
    pub fn sync(
        &mut self,
        now: SimTime,
        spec_replicas: i32,
        status_replicas: i32,
        metric_window: SimDuration,
        metrics: Vec<MetricSpec>,
        pods: Vec<hpa::Pod>,
    ) -> Decision {
        let memory = match self.last_sync {
            Some(last) => self.memory.aged(now.since(last)),
            None => self.memory.clone(),
        };
        let case = HpaCase {
            name: self.name.clone(),
            version: self.version,
            controller: self.config.clone(),
            spec: HpaSpec {
                metrics,
                ..self.spec.clone()
            },
            spec_replicas,
            status_replicas,
            metric_window,
            metric_desired_replicas: None,
            pods,
            extra_samples: Vec::new(),
            memory,
        };
        let decision = hpa::recommend(&case);
        self.memory = decision.memory.clone();
        self.last_sync = Some(now);
        decision
    }
}
