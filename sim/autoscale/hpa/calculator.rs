//! Per-metric replica counts: upstream's replica_calculator.go and metrics/utilization.go
//! (§1.4-§1.7). Integer truncations and float64 comparisons are kept exactly as upstream has them,
//! because the outcome at the edges (a truncated percentage, a ratio of exactly 1.1) depends on them.

use super::{
    HpaCase, MetricFailure, MetricOutcome, MetricProposal, MetricSpec, Pod, PodPhase,
    ResourceTarget, Tolerances, ValueTarget,
};

/// Go's `int32(math.Ceil(x))` for the values the controller produces, saturating where Go
/// would wrap, as upstream clamps at MaxInt32 in the paths where that can happen.
fn ceil_to_i32(x: f64) -> i32 {
    let c = x.ceil();
    if c.is_nan() {
        0
    } else if c >= i32::MAX as f64 {
        i32::MAX
    } else if c <= i32::MIN as f64 {
        i32::MIN
    } else {
        c as i32
    }
}

fn failure(reason: &'static str, message: impl Into<String>) -> MetricFailure {
    MetricFailure {
        reason,
        message: message.into(),
    }
}

/// One metric's proposal, working from `current` (`scale.spec.replicas`).
pub(crate) fn replicas_for_metric(
    case: &HpaCase,
    metric: &MetricSpec,
    current: i32,
    tolerances: Tolerances,
) -> MetricOutcome {
    match metric {
        MetricSpec::Resource {
            resource,
            container,
            target,
        } => {
            let reason = if container.is_some() {
                "FailedGetContainerResourceMetric"
            } else {
                "FailedGetResourceMetric"
            };
            let samples = resource_samples(case, resource, container.as_deref());
            if samples.is_empty() {
                return Err(failure(
                    reason,
                    format!(
                        "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
                    ),
                ));
            }
            match *target {
                ResourceTarget::Utilization(target_utilization) => utilization_replicas(
                    case,
                    samples,
                    resource,
                    container.as_deref(),
                    target_utilization,
                    current,
                    tolerances,
                )
                .map(|(replicas, utilization, raw)| MetricProposal {
                    replicas,
                    description: format!("{resource} resource utilization (percentage of request)"),
                    utilization: Some(utilization),
                    value_milli: raw,
                })
                .map_err(|message| {
                    failure(
                        reason,
                        format!("failed to get {resource} utilization: {message}"),
                    )
                }),
                ResourceTarget::AverageValueMilli(target_milli) => {
                    plain_replicas(case, samples, resource, target_milli, current, tolerances)
                        .map(|(replicas, usage)| MetricProposal {
                            replicas,
                            description: format!("{resource} resource"),
                            utilization: None,
                            value_milli: usage,
                        })
                        .map_err(|message| {
                            failure(reason, format!("failed to get {resource} usage: {message}"))
                        })
                }
            }
        }
        MetricSpec::Pods {
            name,
            target_average_milli,
        } => {
            let samples = plain_samples(case, name);
            if samples.is_empty() {
                return Err(failure(
                    "FailedGetPodsMetric",
                    format!(
                        "unable to get metric {name}: no metrics returned from custom metrics API"
                    ),
                ));
            }
            plain_replicas(
                case,
                samples,
                "",
                *target_average_milli,
                current,
                tolerances,
            )
            .map(|(replicas, usage)| MetricProposal {
                replicas,
                description: format!("pods metric {name}"),
                utilization: None,
                value_milli: usage,
            })
            .map_err(|message| {
                failure(
                    "FailedGetPodsMetric",
                    format!("failed to get pods metric value: {message}"),
                )
            })
        }
        MetricSpec::Object {
            name,
            described_kind,
            described_name,
            observed_milli,
            target,
        } => {
            let Some(usage) = *observed_milli else {
                return Err(failure(
                    "FailedGetObjectMetric",
                    format!(
                        "failed to get object metric value: unable to get metric {name} on {described_kind} {described_name}"
                    ),
                ));
            };
            value_target_replicas(case, usage, *target, current, tolerances)
                .map(|(replicas, value)| MetricProposal {
                    replicas,
                    description: format!("{described_kind} metric {name}"),
                    utilization: None,
                    value_milli: value,
                })
                .map_err(|message| {
                    failure(
                        "FailedGetObjectMetric",
                        format!("failed to get object metric value: {message}"),
                    )
                })
        }
        MetricSpec::External {
            name,
            selector,
            observed_milli,
            target,
        } => {
            let Some(values) = observed_milli else {
                return Err(failure(
                    "FailedGetExternalMetric",
                    format!(
                        "failed to get external metric value: unable to get external metric {name}"
                    ),
                ));
            };
            // Summed as upstream does, capped at MaxInt64 instead of overflowing.
            let usage = values
                .iter()
                .fold(0i64, |sum, value| sum.saturating_add(*value));
            value_target_replicas(case, usage, *target, current, tolerances)
                .map(|(replicas, value)| MetricProposal {
                    replicas,
                    description: format!("external metric {name}({selector})"),
                    utilization: None,
                    value_milli: value,
                })
                .map_err(|message| {
                    failure(
                        "FailedGetExternalMetric",
                        format!("failed to get external metric value: {message}"),
                    )
                })
        }
        MetricSpec::Unknown { type_name } => Err(failure(
            "InvalidMetricSourceType",
            format!("unknown metric source type \"{type_name}\""),
        )),
    }
}

/// A sample as the metrics API returns it: its value and its age.
#[derive(Clone, Copy, Debug)]
struct Sample {
    value: i64,
    age: crate::engine::SimDuration,
}

/// What the metrics API returned: one entry per listed pod (by index; `None` is no sample) and
/// the samples of pods outside the list. Indexes instead of name maps keep a reconcile free of
/// per-pod allocations; pod names are unique, so this is the same map upstream builds.
struct Samples {
    pods: Vec<Option<Sample>>,
    extras: Vec<i64>,
}

impl Samples {
    fn is_empty(&self) -> bool {
        self.extras.is_empty() && self.pods.iter().all(Option::is_none)
    }
}

fn resource_samples(case: &HpaCase, resource: &str, container: Option<&str>) -> Samples {
    let pods = case
        .pods
        .iter()
        .map(|pod| {
            let value = match container {
                None => pod.usage.get(resource).copied(),
                Some(container) => pod
                    .containers
                    .iter()
                    .find(|c| c.name == container)
                    .and_then(|c| c.usage.get(resource).copied()),
            };
            value.map(|value| Sample {
                value,
                age: pod.metric_age,
            })
        })
        .collect();
    // Container metrics are looked up per listed pod, so only pod-level samples have extras.
    let extras = match container {
        None => case
            .extra_samples
            .iter()
            .filter_map(|e| e.usage.get(resource).copied())
            .collect(),
        Some(_) => Vec::new(),
    };
    Samples { pods, extras }
}

fn plain_samples(case: &HpaCase, metric: &str) -> Samples {
    Samples {
        pods: case
            .pods
            .iter()
            .map(|pod| {
                pod.usage.get(metric).map(|value| Sample {
                    value: *value,
                    age: pod.metric_age,
                })
            })
            .collect(),
        extras: case
            .extra_samples
            .iter()
            .filter_map(|e| e.usage.get(metric).copied())
            .collect(),
    }
}

/// The buckets of §1.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bucket {
    Ignored,
    Unready,
    Missing,
    Ready,
}

/// Upstream's groupPods. `resource` is the metric's resource name ("" for custom metrics); only
/// `cpu` gets the readiness rules, since only CPU is distorted by start-up work.
fn group_pods(case: &HpaCase, samples: &Samples, resource: &str) -> Vec<Bucket> {
    let init_period = case.controller.cpu_initialization_period.0 as i128;
    let readiness_delay = case.controller.initial_readiness_delay.0 as i128;
    let window = case.metric_window.0 as i128;
    case.pods
        .iter()
        .zip(&samples.pods)
        .map(|(pod, sample)| {
            if pod.deleted || pod.phase == PodPhase::Failed {
                return Bucket::Ignored;
            }
            if pod.phase == PodPhase::Pending {
                return Bucket::Unready;
            }
            let Some(sample) = sample else {
                return Bucket::Missing;
            };
            if resource == "cpu"
                && cpu_sample_is_unready(pod, sample, init_period, readiness_delay, window)
            {
                return Bucket::Unready;
            }
            Bucket::Ready
        })
        .collect()
}

/// The CPU readiness rule, in ages before now [ns] (a later instant has a smaller age).
fn cpu_sample_is_unready(
    pod: &Pod,
    sample: &Sample,
    init_period: i128,
    readiness_delay: i128,
    window: i128,
) -> bool {
    let (Some(ready), Some(started_ago)) = (pod.ready, pod.started_ago) else {
        return true;
    };
    let started_ago = started_ago.0 as i128;
    // No transition time reads as Go's zero time: earlier than anything else in the case.
    let transition_ago = pod
        .ready_transition_ago
        .map_or(i128::from(u64::MAX) * 2, |d| d.0 as i128);
    let metric_ago = sample.age.0 as i128;
    if started_ago < init_period {
        // Inside the initialization period a sample only counts once a full window has been
        // collected since the last readiness change: start-up CPU bursts would scale up otherwise.
        // metric.Timestamp.Before(transition + window), in ages.
        !ready || transition_ago - metric_ago < window
    } else {
        // Afterwards, only a pod that has never become ready is left out.
        // start + readinessDelay after transition, in ages.
        !ready && started_ago - readiness_delay < transition_ago
    }
}

/// Per-pod requests for the metric's resource, by pod index (all pods, as upstream computes them).
fn pod_requests(
    case: &HpaCase,
    resource: &str,
    container: Option<&str>,
) -> Result<Vec<i64>, String> {
    let mut requests = Vec::with_capacity(case.pods.len());
    for pod in &case.pods {
        let request = match container {
            Some(container) => {
                let Some(c) = pod.containers.iter().find(|c| c.name == container) else {
                    return Err(format!(
                        "container {container} not found in Pod {}",
                        pod.name
                    ));
                };
                match c.requests.get(resource) {
                    Some(value) => *value,
                    None => {
                        return Err(format!(
                            "missing request for {resource} in container {container} of Pod {}",
                            pod.name
                        ));
                    }
                }
            }
            None => match pod.requests.get(resource) {
                Some(value) => *value,
                None => {
                    if pod.containers.is_empty() {
                        return Err(format!(
                            "missing request for {resource} in Pod {}",
                            pod.name
                        ));
                    }
                    let mut sum = 0i64;
                    for c in &pod.containers {
                        match c.requests.get(resource) {
                            Some(value) => sum = sum.saturating_add(*value),
                            None => {
                                return Err(format!(
                                    "missing request for {resource} in container {} of Pod {}",
                                    c.name, pod.name
                                ));
                            }
                        }
                    }
                    sum
                }
            },
        };
        requests.push(request);
    }
    Ok(requests)
}

/// The metric map as upstream holds it after grouping and fill-in: listed pods by index
/// (`None` = not in the map), then the samples of pods outside the list.
struct Values<'a> {
    pods: Vec<Option<i64>>,
    extras: &'a [i64],
}

impl<'a> Values<'a> {
    /// The samples of ready pods, plus the extras (ignored and unready samples are removed).
    fn of_ready(samples: &'a Samples, buckets: &[Bucket]) -> Self {
        let pods = samples
            .pods
            .iter()
            .zip(buckets)
            .map(|(sample, bucket)| match (sample, bucket) {
                (Some(sample), Bucket::Ready) => Some(sample.value),
                _ => None,
            })
            .collect();
        Values {
            pods,
            extras: &samples.extras,
        }
    }

    fn len(&self) -> usize {
        self.pods.iter().filter(|v| v.is_some()).count() + self.extras.len()
    }

    fn fill(&mut self, buckets: &[Bucket], which: Bucket, value: impl Fn(usize) -> i64) {
        for (idx, bucket) in buckets.iter().enumerate() {
            if *bucket == which {
                self.pods[idx] = Some(value(idx));
            }
        }
    }
}

/// Upstream's GetResourceUtilizationRatio: (ratio, utilization %, raw average [milli]).
fn utilization_ratio(
    values: &Values,
    requests: &[i64],
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let mut metrics_total = 0i64;
    let mut requests_total = 0i64;
    let mut n_entries = 0i64;
    // Samples of pods outside the pod list have no request: skipped here, counted elsewhere.
    for (value, request) in values.pods.iter().zip(requests) {
        if let Some(value) = value {
            metrics_total = metrics_total.saturating_add(*value);
            requests_total = requests_total.saturating_add(*request);
            n_entries += 1;
        }
    }
    // Upstream tests `== 0`; requests are never negative there, and a negative total here would
    // only come from a malformed case, which must not reach the division.
    if requests_total <= 0 {
        return Err("no metrics returned matched known pods".to_string());
    }
    let utilization = (metrics_total.saturating_mul(100) / requests_total) as i32;
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        metrics_total / n_entries,
    ))
}

/// Upstream's GetMetricUsageRatio: (ratio, average [milli]).
fn usage_ratio(values: &Values, target_milli: i64) -> (f64, i64) {
    let listed = values.pods.iter().flatten();
    let total = listed
        .chain(values.extras)
        .fold(0i64, |sum, v| sum.saturating_add(*v));
    let usage = total / values.len().max(1) as i64;
    (usage as f64 / target_milli as f64, usage)
}

fn count(buckets: &[Bucket], which: Bucket) -> usize {
    buckets.iter().filter(|b| **b == which).count()
}

/// GetResourceReplicas: (replicas, utilization %, raw average [milli]).
fn utilization_replicas(
    case: &HpaCase,
    samples: Samples,
    resource: &str,
    container: Option<&str>,
    target_utilization: i32,
    current: i32,
    tolerances: Tolerances,
) -> Result<(i32, i32, i64), String> {
    if case.pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".to_string());
    }
    let buckets = group_pods(case, &samples, resource);
    let mut values = Values::of_ready(&samples, &buckets);
    if values.len() == 0 {
        return Err(
            "did not receive metrics for targeted pods (pods might be unready)".to_string(),
        );
    }
    let requests = pod_requests(case, resource, container)?;
    let (ratio, utilization, raw) = utilization_ratio(&values, &requests, target_utilization)?;

    let n_missing = count(&buckets, Bucket::Missing);
    let scale_up_with_unready = count(&buckets, Bucket::Unready) > 0 && ratio > 1.0;
    if !scale_up_with_unready && n_missing == 0 {
        if tolerances.is_within(ratio) {
            return Ok((current, utilization, raw));
        }
        let ready_count = count(&buckets, Bucket::Ready);
        return Ok((ceil_to_i32(ratio * ready_count as f64), utilization, raw));
    }

    if n_missing > 0 {
        if ratio < 1.0 {
            // On a scale-down a pod without a sample is assumed busy, so the estimate errs on the
            // side of keeping capacity. Since v1.26 "busy" is at least the target when it exceeds 100 %.
            let fallback_percent = if case.version.has_target_fallback_for_missing_pods() {
                i64::from(target_utilization.max(100))
            } else {
                100
            };
            values.fill(&buckets, Bucket::Missing, |idx| {
                requests[idx].saturating_mul(fallback_percent) / 100
            });
        } else if ratio > 1.0 {
            values.fill(&buckets, Bucket::Missing, |_| 0);
        }
    }
    if scale_up_with_unready {
        // Unready pods are assumed idle on a scale-up: they will take load once ready.
        values.fill(&buckets, Bucket::Unready, |_| 0);
    }

    let (new_ratio, _, _) = utilization_ratio(&values, &requests, target_utilization)?;
    if tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok((current, utilization, raw));
    }
    let new_replicas = ceil_to_i32(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok((current, utilization, raw));
    }
    Ok((new_replicas, utilization, raw))
}

/// calcPlainMetricReplicas (Resource AverageValue, Pods): (replicas, average usage [milli]).
fn plain_replicas(
    case: &HpaCase,
    samples: Samples,
    resource: &str,
    target_milli: i64,
    current: i32,
    tolerances: Tolerances,
) -> Result<(i32, i64), String> {
    if case.pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".to_string());
    }
    let buckets = group_pods(case, &samples, resource);
    let mut values = Values::of_ready(&samples, &buckets);
    if values.len() == 0 {
        return Err(
            "did not receive metrics for targeted pods (pods might be unready)".to_string(),
        );
    }
    let (ratio, usage) = usage_ratio(&values, target_milli);

    let n_missing = count(&buckets, Bucket::Missing);
    let scale_up_with_unready = count(&buckets, Bucket::Unready) > 0 && ratio > 1.0;
    if !scale_up_with_unready && n_missing == 0 {
        if tolerances.is_within(ratio) {
            return Ok((current, usage));
        }
        let ready_count = count(&buckets, Bucket::Ready);
        return Ok((ceil_to_i32(ratio * ready_count as f64), usage));
    }
    if n_missing > 0 {
        if ratio < 1.0 {
            // A missing pod counts as exactly on target for a scale-down.
            values.fill(&buckets, Bucket::Missing, |_| target_milli);
        } else if ratio > 1.0 {
            values.fill(&buckets, Bucket::Missing, |_| 0);
        }
    }
    if scale_up_with_unready {
        values.fill(&buckets, Bucket::Unready, |_| 0);
    }
    let (new_ratio, _) = usage_ratio(&values, target_milli);
    if tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok((current, usage));
    }
    let new_replicas = ceil_to_i32(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok((current, usage));
    }
    Ok((new_replicas, usage))
}

/// Object and External targets (§1.7): (replicas, reported value [milli]).
fn value_target_replicas(
    case: &HpaCase,
    usage: i64,
    target: ValueTarget,
    current: i32,
    tolerances: Tolerances,
) -> Result<(i32, i64), String> {
    match target {
        ValueTarget::ValueMilli(target_milli) => {
            let ratio = usage as f64 / target_milli as f64;
            if current == 0 {
                // Scale from zero: no tolerance and no pods to count.
                return Ok((ceil_to_i32(ratio), usage));
            }
            if tolerances.is_within(ratio) {
                return Ok((current, usage));
            }
            if case.pods.is_empty() {
                return Err(
                    "unable to calculate ready pods: no pods returned by selector while calculating replica count"
                        .to_string(),
                );
            }
            let ready_pods = case
                .pods
                .iter()
                .filter(|pod| pod.phase == PodPhase::Running && pod.ready == Some(true))
                .count();
            Ok((ceil_to_i32(ratio * ready_pods as f64), usage))
        }
        ValueTarget::Unset => Err(
            "invalid metric source: neither a value target nor an average value target was set"
                .to_string(),
        ),
        ValueTarget::AverageValueMilli(target_milli) => {
            let status_replicas = case.status_replicas;
            let ratio = usage as f64 / (target_milli as f64 * f64::from(status_replicas));
            let replicas = if tolerances.is_within(ratio) {
                status_replicas
            } else {
                ceil_to_i32(usage as f64 / target_milli as f64)
            };
            let per_pod = (usage as f64 / f64::from(status_replicas)).ceil();
            let per_pod = if per_pod.is_finite() {
                per_pod as i64
            } else {
                i64::MAX
            };
            Ok((replicas, per_pod))
        }
    }
}
