//! One reconcile of a HorizontalPodAutoscaler (autoscaling/v2): `recommend(&HpaCase) -> Decision`.
//!
//! Mirrors kube-controller-manager v1.35 `pkg/controller/podautoscaler` (horizontal.go,
//! replica_calculator.go, metrics/utilization.go) as written down in `spec/kubernetes.md` §1:
//! per-metric proposals with upstream's treatment of unready pods and missing metrics, the
//! maximum over metrics, the rule for invalid metrics, then either the legacy normalization
//! (no `behavior`) or stabilization windows and rate policies (with `behavior`). Older rules are
//! selected by [`KubernetesVersion`] where Appendix C names them.
//!
//! Invariants: `recommend` is a pure function of its input; it never reads a clock (every time is
//! an age before the reconcile instant), never draws random numbers, and the controller memory it
//! returns is the memory upstream would hold after this reconcile. When the target is within
//! `[minReplicas, maxReplicas]` the result is too; a target at zero replicas with `minReplicas > 0`
//! stays at zero.

mod calculator;
mod normalize;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::engine::SimDuration;

pub use normalize::ScalingRulesResolved;

/// A Kubernetes minor release, e.g. v1.35. Rules that changed between releases compare against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubernetesVersion {
    /// The pinned release (Appendix C): the default when a case names none.
    pub const CURRENT: KubernetesVersion = KubernetesVersion {
        major: 1,
        minor: 35,
    };

    pub const fn new(major: u32, minor: u32) -> Self {
        KubernetesVersion { major, minor }
    }

    /// The inclusive per-direction tolerance band replaced `|1 - r| <= tolerance` in v1.33.
    pub fn has_tolerance_band(self) -> bool {
        self >= KubernetesVersion::new(1, 33)
    }

    /// HPAConfigurableTolerance is alpha (off) in v1.33-v1.34 and beta (on) from v1.35.
    pub fn configurable_tolerance_by_default(self) -> bool {
        self >= KubernetesVersion::new(1, 35)
    }

    /// Missing pods count as `max(100 %, target)` of their request on a scale-down since v1.26
    /// (kubernetes/kubernetes#112178); before that, as exactly 100 %.
    pub fn has_target_fallback_for_missing_pods(self) -> bool {
        self >= KubernetesVersion::new(1, 26)
    }

    /// `currentReplicas` has been `scale.spec.replicas` since v1.16 (kubernetes/kubernetes#79035);
    /// before, the controller read `scale.status.replicas`.
    pub fn reads_spec_replicas(self) -> bool {
        self >= KubernetesVersion::new(1, 16)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// kube-controller-manager settings for the HPA controller (§1.1).
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
    /// `--horizontal-pod-autoscaler-tolerance`, a fraction of the target.
    pub tolerance: f64,
    pub cpu_initialization_period: SimDuration,
    pub initial_readiness_delay: SimDuration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization_window: SimDuration,
    /// Legacy (no `behavior`) scale-up limit: `max(factor * current, minimum)`.
    pub scale_up_limit_factor: f64,
    pub scale_up_limit_minimum: f64,
    /// The HPAConfigurableTolerance feature gate: per-direction tolerances from `behavior`.
    pub configurable_tolerance: bool,
}

impl ControllerConfig {
    /// Production defaults of the given release.
    pub fn defaults_for(version: KubernetesVersion) -> Self {
        ControllerConfig {
            tolerance: 0.1,
            cpu_initialization_period: SimDuration::from_secs(300),
            initial_readiness_delay: SimDuration::from_secs(30),
            downscale_stabilization_window: SimDuration::from_secs(300),
            scale_up_limit_factor: 2.0,
            scale_up_limit_minimum: 4.0,
            configurable_tolerance: version.configurable_tolerance_by_default(),
        }
    }
}

/// What a Resource / ContainerResource metric aims for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceTarget {
    /// Percentage of the pods' requests.
    Utilization(i32),
    /// Average per-pod usage [milli-units].
    AverageValueMilli(i64),
}

/// What an Object / External metric aims for [milli-units].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueTarget {
    /// The whole metric value.
    ValueMilli(i64),
    /// The metric value divided among `statusReplicas` pods.
    AverageValueMilli(i64),
    /// `target.type` names neither of the values given: the controller cannot use the metric.
    Unset,
}

/// One entry of `spec.metrics`, with what the metrics APIs return for it this round.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricSpec {
    /// A resource metric of the pods (`container: None`) or of one container (ContainerResource).
    /// Samples come from each pod's `usage[resource]` (or the container's).
    Resource {
        resource: String,
        container: Option<String>,
        target: ResourceTarget,
    },
    /// A custom per-pod metric; samples come from each pod's `usage[name]`.
    Pods {
        name: String,
        target_average_milli: i64,
    },
    /// A metric of another object; `observed_milli: None` means the metrics API call failed.
    Object {
        name: String,
        described_kind: String,
        described_name: String,
        observed_milli: Option<i64>,
        target: ValueTarget,
    },
    /// An external metric: the sum of all returned series; `None` means the call failed.
    External {
        name: String,
        selector: String,
        observed_milli: Option<Vec<i64>>,
        target: ValueTarget,
    },
    /// A source type the controller does not know (condition `InvalidMetricSourceType`).
    Unknown { type_name: String },
}

/// `spec.behavior.scaleUp` / `scaleDown` as written; `None` fields take the §1.10 defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScalingRules {
    pub stabilization_window_seconds: Option<i32>,
    pub select_policy: Option<SelectPolicy>,
    pub policies: Option<Vec<ScalingPolicy>>,
    /// Per-direction tolerance (HPAConfigurableTolerance).
    pub tolerance: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalingPolicy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i32,
}

/// `spec.behavior`; a missing direction is `None` and takes the defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Behavior {
    pub scale_up: Option<ScalingRules>,
    pub scale_down: Option<ScalingRules>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HpaSpec {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub metrics: Vec<MetricSpec>,
    pub behavior: Option<Behavior>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One container's requests and samples, for ContainerResource metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Container {
    pub name: String,
    /// Requests by resource name [milli-units].
    pub requests: BTreeMap<String, i64>,
    /// Samples by resource name [milli-units]; an absent key is a missing sample.
    pub usage: BTreeMap<String, i64>,
}

/// A pod matched by the target's selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Pod {
    pub name: String,
    pub phase: PodPhase,
    /// The Ready condition's status; `None` when the pod has no Ready condition.
    pub ready: Option<bool>,
    /// A deletion timestamp is set.
    pub deleted: bool,
    /// Age of `status.startTime`; `None` when the pod has no start time.
    pub started_ago: Option<SimDuration>,
    /// Age of the Ready condition's last transition; `None` reads as the zero time (long ago).
    pub ready_transition_ago: Option<SimDuration>,
    /// Age of this pod's metric samples.
    pub metric_age: SimDuration,
    /// Per-pod request totals by resource name [milli-units].
    pub requests: BTreeMap<String, i64>,
    /// Samples by resource or metric name [milli-units]; an absent key is a missing sample.
    pub usage: BTreeMap<String, i64>,
    pub containers: Vec<Container>,
}

/// A sample for a pod that is not in the pod list ("superfluous" in upstream's words).
#[derive(Clone, Debug, PartialEq)]
pub struct ExtraSample {
    pub pod: String,
    pub usage: BTreeMap<String, i64>,
}

/// One timestamped unstabilized recommendation of the controller's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub age: SimDuration,
    pub replicas: i32,
}

/// One recorded rescale (behavior only); `delta` is positive in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    pub age: SimDuration,
    pub delta: i32,
    /// Marked for reuse: older than the direction's longest policy period when last checked.
    pub outdated: bool,
}

/// The per-HPA lists the controller keeps in memory (never in the API; lost on restart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerMemory {
    /// `None`: the controller has no list for this HPA yet (the seed rule of §1.1 applies).
    pub recommendations: Option<Vec<Recommendation>>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

impl ControllerMemory {
    /// The same memory seen `by` later: every age grows by `by`. Carry a decision's memory to
    /// the next sync with `decision.memory.aged(sync_period)`.
    pub fn aged(&self, by: SimDuration) -> ControllerMemory {
        let grow = |age: SimDuration| SimDuration(age.0.saturating_add(by.0));
        ControllerMemory {
            recommendations: self.recommendations.as_ref().map(|recs| {
                recs.iter()
                    .map(|r| Recommendation {
                        age: grow(r.age),
                        replicas: r.replicas,
                    })
                    .collect()
            }),
            scale_up_events: self
                .scale_up_events
                .iter()
                .map(|e| ScaleEvent {
                    age: grow(e.age),
                    ..*e
                })
                .collect(),
            scale_down_events: self
                .scale_down_events
                .iter()
                .map(|e| ScaleEvent {
                    age: grow(e.age),
                    ..*e
                })
                .collect(),
        }
    }
}

/// Everything one reconcile of one HPA reads.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaCase {
    pub name: String,
    pub version: KubernetesVersion,
    pub controller: ControllerConfig,
    pub spec: HpaSpec,
    /// `scale.spec.replicas`.
    pub spec_replicas: i32,
    /// `scale.status.replicas` (Object/External AverageValue targets; `currentReplicas` before v1.16).
    pub status_replicas: i32,
    /// The metric sample window `W` reported by the resource metrics API.
    pub metric_window: SimDuration,
    /// Skips metric evaluation and uses this as the combined proposal (normalization-only cases).
    pub metric_desired_replicas: Option<i32>,
    pub pods: Vec<Pod>,
    pub extra_samples: Vec<ExtraSample>,
    pub memory: ControllerMemory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    AbleToScale,
    ScalingActive,
    ScalingLimited,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::AbleToScale => "AbleToScale",
            ConditionType::ScalingActive => "ScalingActive",
            ConditionType::ScalingLimited => "ScalingLimited",
        }
    }
}

/// An HPA status condition as this reconcile leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub status: bool,
    /// Upstream's reason string, e.g. `SucceededRescale`.
    pub reason: &'static str,
    /// Upstream's message; fixed texts are borrowed so a reconcile allocates little.
    pub message: Cow<'static, str>,
}

/// The rule that moved the result away from the combined metric proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitedBy {
    /// The target sits at zero replicas with `minReplicas > 0`: autoscaling is off.
    ScalingDisabled,
    /// Some or all metrics failed and the valid ones did not ask for a scale-up: no change.
    InvalidMetrics,
    ScaleUpStabilized,
    ScaleDownStabilized,
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
}

impl LimitedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitedBy::ScalingDisabled => "ScalingDisabled",
            LimitedBy::InvalidMetrics => "InvalidMetrics",
            LimitedBy::ScaleUpStabilized => "ScaleUpStabilized",
            LimitedBy::ScaleDownStabilized => "ScaleDownStabilized",
            LimitedBy::ScaleUpLimit => "ScaleUpLimit",
            LimitedBy::ScaleDownLimit => "ScaleDownLimit",
            LimitedBy::TooManyReplicas => "TooManyReplicas",
            LimitedBy::TooFewReplicas => "TooFewReplicas",
        }
    }
}

/// A metric's replica count, with what the controller would report in `status.currentMetrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricProposal {
    pub replicas: i32,
    /// Upstream's description, used in the rescale reason (`cpu resource utilization ...`).
    pub description: String,
    /// Utilization [%] for Utilization targets.
    pub utilization: Option<i32>,
    /// The current value: average per pod, object value or external sum [milli-units].
    pub value_milli: i64,
}

/// Why a metric gave no proposal this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricFailure {
    /// The ScalingActive reason, e.g. `FailedGetResourceMetric`.
    pub reason: &'static str,
    pub message: String,
}

pub type MetricOutcome = Result<MetricProposal, MetricFailure>;

/// A write of `scale.spec.replicas` and the event upstream records for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rescale {
    pub from: i32,
    pub to: i32,
    /// The `SuccessfulRescale` event reason text, e.g. `All metrics below target`.
    pub reason: String,
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// `scale.spec.replicas` after the reconcile (the current count when nothing is written).
    pub desired_replicas: i32,
    /// The `currentReplicas` this reconcile worked from.
    pub current_replicas: i32,
    /// The combined proposal of the metrics, before normalization (`None` when not computed).
    pub metric_desired_replicas: Option<i32>,
    /// The recommendation after stabilization, before the rate and bound clamps.
    pub stabilized_replicas: Option<i32>,
    /// Utilization [%] of the first Utilization metric, when it was computed.
    pub current_utilization: Option<i32>,
    /// One outcome per `spec.metrics` entry, in spec order (empty when metrics were not read).
    pub per_metric: Vec<MetricOutcome>,
    pub limited_by: Option<LimitedBy>,
    pub conditions: BTreeMap<ConditionType, Condition>,
    pub rescale: Option<Rescale>,
    /// The controller memory after this reconcile (ages relative to this reconcile).
    pub memory: ControllerMemory,
}

/// The per-direction tolerance band of §1.3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tolerances {
    pub scale_up: f64,
    pub scale_down: f64,
    /// Before v1.33: `|1 - r| <= tolerance` (only differs from the band exactly at `1 + t`).
    pub absolute_form: bool,
}

impl Tolerances {
    fn for_case(case: &HpaCase) -> Tolerances {
        let flag = case.controller.tolerance;
        let mut tolerances = Tolerances {
            scale_up: flag,
            scale_down: flag,
            absolute_form: !case.version.has_tolerance_band(),
        };
        if let (Some(behavior), true) =
            (&case.spec.behavior, case.controller.configurable_tolerance)
        {
            if let Some(t) = behavior.scale_up.as_ref().and_then(|r| r.tolerance) {
                tolerances.scale_up = t;
            }
            if let Some(t) = behavior.scale_down.as_ref().and_then(|r| r.tolerance) {
                tolerances.scale_down = t;
            }
        }
        tolerances
    }

    /// True when the usage ratio is close enough to 1 that the replica count stays.
    pub fn is_within(self, usage_ratio: f64) -> bool {
        if self.absolute_form {
            (1.0 - usage_ratio).abs() <= self.scale_up
        } else {
            (1.0 - self.scale_down) <= usage_ratio && usage_ratio <= (1.0 + self.scale_up)
        }
    }
}

fn condition(
    status: bool,
    reason: &'static str,
    message: impl Into<Cow<'static, str>>,
) -> Condition {
    Condition {
        status,
        reason,
        message: message.into(),
    }
}

/// One reconcile of the HPA in `case` (the reconcile outline of §1.2).
pub fn recommend(case: &HpaCase) -> Decision {
    let mut conditions = BTreeMap::new();
    let mut memory = case.memory.clone();
    let current = if case.version.reads_spec_replicas() {
        case.spec_replicas
    } else {
        case.status_replicas
    };

    conditions.insert(
        ConditionType::AbleToScale,
        condition(
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        ),
    );
    // Seed rule: a controller with no list for this HPA starts one at the current size, which
    // holds any scale-down for a full stabilization window after a restart.
    if memory.recommendations.is_none() {
        memory.recommendations = Some(vec![Recommendation {
            age: SimDuration::ZERO,
            replicas: current,
        }]);
    }

    let min = case.spec.min_replicas;
    let max = case.spec.max_replicas;
    let mut decision = Decision {
        desired_replicas: current,
        current_replicas: current,
        metric_desired_replicas: None,
        stabilized_replicas: None,
        current_utilization: None,
        per_metric: Vec::new(),
        limited_by: None,
        conditions: BTreeMap::new(),
        rescale: None,
        memory: ControllerMemory::default(),
    };

    let desired;
    let rescale_reason;
    if current == 0 && min != 0 {
        conditions.insert(
            ConditionType::ScalingActive,
            condition(
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            ),
        );
        decision.limited_by = Some(LimitedBy::ScalingDisabled);
        desired = 0;
        rescale_reason = String::new();
    } else if current > max {
        desired = max;
        decision.limited_by = Some(LimitedBy::TooManyReplicas);
        rescale_reason = "Current number of replicas above Spec.MaxReplicas".to_string();
    } else if current < min {
        desired = min;
        decision.limited_by = Some(LimitedBy::TooFewReplicas);
        rescale_reason = "Current number of replicas below Spec.MinReplicas".to_string();
    } else {
        let tolerances = Tolerances::for_case(case);
        let (combined, metric_name) = match case.metric_desired_replicas {
            Some(replicas) => {
                conditions.insert(
                    ConditionType::ScalingActive,
                    condition(
                        true,
                        "ValidMetricFound",
                        "the HPA was able to successfully calculate a replica count",
                    ),
                );
                (replicas, String::from("metrics"))
            }
            None => {
                let outcomes: Vec<MetricOutcome> = case
                    .spec
                    .metrics
                    .iter()
                    .map(|metric| {
                        calculator::replicas_for_metric(case, metric, current, tolerances)
                    })
                    .collect();
                decision.current_utilization = outcomes
                    .iter()
                    .zip(&case.spec.metrics)
                    .find(|(_, spec)| {
                        matches!(
                            spec,
                            MetricSpec::Resource {
                                target: ResourceTarget::Utilization(_),
                                ..
                            }
                        )
                    })
                    .and_then(|(outcome, _)| outcome.as_ref().ok())
                    .and_then(|proposal| proposal.utilization);
                let combined = combine_metrics(&outcomes, current, &mut conditions);
                decision.per_metric = outcomes;
                match combined {
                    Some(found) => found,
                    None => {
                        // A fatal metrics error: nothing is written and normalization is skipped.
                        decision.limited_by = Some(LimitedBy::InvalidMetrics);
                        decision.conditions = conditions;
                        decision.memory = memory;
                        return decision;
                    }
                }
            }
        };
        decision.metric_desired_replicas = Some(combined);
        let proposal = combined.max(0);
        rescale_reason = if proposal > current {
            format!("{metric_name} above target")
        } else if proposal < current {
            "All metrics below target".to_string()
        } else {
            String::new()
        };
        let normalized = match &case.spec.behavior {
            None => normalize::legacy(case, current, proposal, &mut memory, &mut conditions),
            Some(behavior) => normalize::with_behavior(
                case,
                behavior,
                current,
                proposal,
                &mut memory,
                &mut conditions,
            ),
        };
        decision.stabilized_replicas = Some(normalized.stabilized);
        decision.limited_by = normalized.limited_by;
        desired = normalized.replicas;
    }

    if desired != current {
        conditions.insert(
            ConditionType::AbleToScale,
            condition(
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            ),
        );
        if let Some(behavior) = &case.spec.behavior {
            normalize::store_scale_event(behavior, current, desired, &mut memory);
        }
        decision.rescale = Some(Rescale {
            from: current,
            to: desired,
            reason: rescale_reason,
        });
        decision.desired_replicas = desired;
    }
    decision.conditions = conditions;
    decision.memory = memory;
    decision
}

/// The maximum of the valid proposals and the ScalingActive condition (§1.8). `None` is the fatal
/// case: every metric failed, or some failed and the valid ones would scale down.
fn combine_metrics(
    outcomes: &[MetricOutcome],
    current: i32,
    conditions: &mut BTreeMap<ConditionType, Condition>,
) -> Option<(i32, String)> {
    let mut replicas = 0;
    let mut metric_name = String::new();
    let mut first_failure: Option<&MetricFailure> = None;
    let mut n_invalid = 0;
    for outcome in outcomes {
        match outcome {
            Err(failure) => {
                first_failure.get_or_insert(failure);
                n_invalid += 1;
            }
            // Upstream's `replicas == 0 || proposal > replicas`: the maximum, named by the first
            // metric that reached it.
            Ok(proposal) => {
                if replicas == 0 || proposal.replicas > replicas {
                    replicas = proposal.replicas;
                    metric_name = proposal.description.clone();
                }
            }
        }
    }
    if n_invalid >= outcomes.len() || (n_invalid > 0 && replicas < current) {
        // A broken metric never blocks a scale-up but always blocks a scale-down, so a partial
        // outage cannot shrink the workload on the metrics that happen to still answer.
        let (reason, message) = match first_failure {
            Some(failure) => (failure.reason, failure.message.clone()),
            None => (
                "InvalidMetricSourceType",
                "the HPA has no metrics".to_string(),
            ),
        };
        conditions.insert(
            ConditionType::ScalingActive,
            condition(
                false,
                reason,
                format!("the HPA was unable to compute the replica count: {message}"),
            ),
        );
        return None;
    }
    conditions.insert(
        ConditionType::ScalingActive,
        condition(
            true,
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {metric_name}"
            ),
        ),
    );
    Some((replicas, metric_name))
}

#[cfg(test)]
mod tests;
