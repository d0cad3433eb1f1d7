//! From the combined metric proposal to the replica count that is written: the legacy path when
//! `spec.behavior` is absent (§1.9) and stabilization plus rate policies when it is set (§1.10),
//! with the scale-event bookkeeping that feeds the policies on later syncs.

use std::collections::BTreeMap;

use super::{
    Behavior, Condition, ConditionType, ControllerMemory, HpaCase, LimitedBy, PolicyKind,
    Recommendation, ScaleEvent, ScalingPolicy, ScalingRules, SelectPolicy, condition,
};
use crate::engine::SimDuration;

/// What normalization did to the proposal.
pub(crate) struct Normalized {
    pub stabilized: i32,
    pub replicas: i32,
    pub limited_by: Option<LimitedBy>,
}

/// A direction's rules after API defaulting and the controller's window default.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingRulesResolved {
    pub stabilization_window: SimDuration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

impl ScalingRulesResolved {
    /// scaleUp defaults: no window, Max of 4 pods or 100 % per 15 s.
    pub fn scale_up(rules: Option<&ScalingRules>) -> Self {
        let defaults = ScalingRulesResolved {
            stabilization_window: SimDuration::ZERO,
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
        };
        Self::fill(rules, defaults)
    }

    /// scaleDown defaults: the controller's window, Max of 100 % per 15 s.
    pub fn scale_down(rules: Option<&ScalingRules>, controller_window: SimDuration) -> Self {
        let defaults = ScalingRulesResolved {
            stabilization_window: controller_window,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
        };
        Self::fill(rules, defaults)
    }

    fn fill(rules: Option<&ScalingRules>, mut resolved: ScalingRulesResolved) -> Self {
        if let Some(rules) = rules {
            if let Some(window) = rules.stabilization_window_seconds {
                resolved.stabilization_window =
                    SimDuration::from_secs(u64::try_from(window).unwrap_or(0));
            }
            if let Some(select) = rules.select_policy {
                resolved.select_policy = select;
            }
            // A given list replaces the defaults as a whole.
            if let Some(policies) = &rules.policies {
                resolved.policies = policies.clone();
            }
        }
        resolved
    }

    fn longest_period_seconds(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
            .max(0)
    }
}

fn history(memory: &mut ControllerMemory) -> &mut Vec<Recommendation> {
    memory.recommendations.get_or_insert_with(Vec::new)
}

/// §1.9: scale-down stabilization over the controller's window, then min/max and the
/// `max(factor * current, minimum)` scale-up limit.
pub(crate) fn legacy(
    case: &HpaCase,
    current: i32,
    desired: i32,
    memory: &mut ControllerMemory,
    conditions: &mut BTreeMap<ConditionType, Condition>,
) -> Normalized {
    let window = case.controller.downscale_stabilization_window;
    let recommendations = history(memory);
    let mut stabilized = desired;
    let mut old_sample = None;
    for (idx, rec) in recommendations.iter().enumerate() {
        if rec.age > window {
            old_sample = Some(idx);
        } else if rec.replicas > stabilized {
            stabilized = rec.replicas;
        }
    }
    let entry = Recommendation {
        age: SimDuration::ZERO,
        replicas: desired,
    };
    match old_sample {
        Some(idx) => recommendations[idx] = entry,
        None => recommendations.push(entry),
    }

    let able = if stabilized != desired {
        condition(
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    } else {
        condition(
            true,
            "ReadyForNewScale",
            "recommended size matches current size",
        )
    };
    conditions.insert(ConditionType::AbleToScale, able);

    let min = case.spec.min_replicas;
    let max = case.spec.max_replicas;
    // Guards against a bogus usage spike multiplying the workload in one sync (kubernetes#32304).
    let up_limit = {
        let limit = (case.controller.scale_up_limit_factor * f64::from(current))
            .max(case.controller.scale_up_limit_minimum);
        if limit >= i32::MAX as f64 {
            i32::MAX
        } else {
            limit as i32
        }
    };
    let (max_allowed, mut why, mut message) = if max > up_limit {
        (
            up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    let result = if stabilized < min {
        why = "TooFewReplicas";
        message = "the desired replica count is less than the minimum replica count";
        min
    } else if stabilized > max_allowed {
        max_allowed
    } else {
        why = "DesiredWithinRange";
        message = "the desired count is within the acceptable range";
        stabilized
    };
    conditions.insert(
        ConditionType::ScalingLimited,
        condition(result != stabilized, why, message),
    );
    Normalized {
        stabilized,
        replicas: result,
        limited_by: limited_by(desired, stabilized, result, why, current),
    }
}

/// The rule that moved the value: a clamp wins over the stabilization before it.
fn limited_by(
    desired: i32,
    stabilized: i32,
    result: i32,
    why: &str,
    current: i32,
) -> Option<LimitedBy> {
    if result != stabilized {
        return match why {
            "ScaleUpLimit" => Some(LimitedBy::ScaleUpLimit),
            "ScaleDownLimit" => Some(LimitedBy::ScaleDownLimit),
            "TooManyReplicas" => Some(LimitedBy::TooManyReplicas),
            "TooFewReplicas" => Some(LimitedBy::TooFewReplicas),
            _ => None,
        };
    }
    if stabilized != desired {
        return Some(if desired >= current {
            LimitedBy::ScaleUpStabilized
        } else {
            LimitedBy::ScaleDownStabilized
        });
    }
    None
}

/// §1.10: stabilization in both directions, then the rate policies and min/max.
pub(crate) fn with_behavior(
    case: &HpaCase,
    behavior: &Behavior,
    current: i32,
    desired: i32,
    memory: &mut ControllerMemory,
    conditions: &mut BTreeMap<ConditionType, Condition>,
) -> Normalized {
    let up_rules = ScalingRulesResolved::scale_up(behavior.scale_up.as_ref());
    let down_rules = ScalingRulesResolved::scale_down(
        behavior.scale_down.as_ref(),
        case.controller.downscale_stabilization_window,
    );

    let up_window = up_rules.stabilization_window;
    let down_window = down_rules.stabilization_window;
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    let mut old_sample = None;
    let recommendations = history(memory);
    for (idx, rec) in recommendations.iter().enumerate() {
        if rec.age < up_window {
            up_recommendation = up_recommendation.min(rec.replicas);
        }
        if rec.age < down_window {
            down_recommendation = down_recommendation.max(rec.replicas);
        }
        if rec.age > up_window && rec.age > down_window {
            old_sample = Some(idx);
        }
    }
    // Start from the current size: stabilization can hold a change back but never push the
    // size past current in the other direction.
    let mut stabilized = current;
    if stabilized < up_recommendation {
        stabilized = up_recommendation;
    }
    if stabilized > down_recommendation {
        stabilized = down_recommendation;
    }
    let entry = Recommendation {
        age: SimDuration::ZERO,
        replicas: desired,
    };
    match old_sample {
        Some(idx) => recommendations[idx] = entry,
        None => recommendations.push(entry),
    }

    let able = if stabilized == desired {
        condition(
            true,
            "ReadyForNewScale",
            "recommended size matches current size",
        )
    } else if desired >= current {
        condition(
            true,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        condition(
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    };
    conditions.insert(ConditionType::AbleToScale, able);

    let min = case.spec.min_replicas;
    let max = case.spec.max_replicas;
    let mut why = "DesiredWithinRange";
    let mut message = "the desired count is within the acceptable range";
    let mut result = stabilized;
    if stabilized > current {
        let up_limit = scale_up_limit(
            current,
            &memory.scale_up_events,
            &memory.scale_down_events,
            &up_rules,
        )
        .max(current);
        let cap = if max > up_limit {
            why = "ScaleUpLimit";
            message = "the desired replica count is increasing faster than the maximum scale rate";
            up_limit
        } else {
            why = "TooManyReplicas";
            message = "the desired replica count is more than the maximum replica count";
            max
        };
        if stabilized > cap {
            result = cap;
        } else {
            why = "DesiredWithinRange";
            message = "the desired count is within the acceptable range";
        }
    } else if stabilized < current {
        let down_limit = scale_down_limit(
            current,
            &memory.scale_up_events,
            &memory.scale_down_events,
            &down_rules,
        )
        .min(current);
        let floor = if min < down_limit {
            why = "ScaleDownLimit";
            message = "the desired replica count is decreasing faster than the maximum scale rate";
            down_limit
        } else {
            why = "TooFewReplicas";
            message = "the desired replica count is less than the minimum replica count";
            min
        };
        if stabilized < floor {
            result = floor;
        } else {
            why = "DesiredWithinRange";
            message = "the desired count is within the acceptable range";
        }
    }
    conditions.insert(
        ConditionType::ScalingLimited,
        condition(result != stabilized, why, message),
    );
    Normalized {
        stabilized,
        replicas: result,
        limited_by: limited_by(desired, stabilized, result, why, current),
    }
}

/// Σ delta of the events younger than the period (strictly).
fn change_in_period(period_seconds: i32, events: &[ScaleEvent]) -> i64 {
    let period = SimDuration::from_secs(u64::try_from(period_seconds).unwrap_or(0));
    events
        .iter()
        .filter(|e| e.age < period)
        .map(|e| i64::from(e.delta))
        .sum()
}

fn period_start(
    current: i32,
    policy: &ScalingPolicy,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
) -> i64 {
    i64::from(current) - change_in_period(policy.period_seconds, up_events)
        + change_in_period(policy.period_seconds, down_events)
}

fn saturate(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The most replicas the scale-up policies allow now (before the `>= current` floor).
pub(crate) fn scale_up_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &ScalingRulesResolved,
) -> i32 {
    // Max picks the policy allowing the largest change; for a scale-up that is the largest value.
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MAX, std::cmp::min),
        SelectPolicy::Max => (i32::MIN, std::cmp::max),
    };
    for policy in &rules.policies {
        let start = period_start(current, policy, up_events, down_events);
        let proposed = match policy.kind {
            PolicyKind::Pods => saturate(start + i64::from(policy.value)),
            // Rounded up, or a small workload could never grow by a percentage.
            PolicyKind::Percent => {
                let x = (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil();
                if x >= i32::MAX as f64 {
                    i32::MAX
                } else if x <= i32::MIN as f64 {
                    i32::MIN
                } else {
                    x as i32
                }
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas the scale-down policies allow now (before the `<= current` cap).
pub(crate) fn scale_down_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &ScalingRulesResolved,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MIN, std::cmp::max),
        SelectPolicy::Max => (i32::MAX, std::cmp::min),
    };
    for policy in &rules.policies {
        let start = period_start(current, policy, up_events, down_events);
        let proposed = match policy.kind {
            PolicyKind::Pods => saturate(start - i64::from(policy.value)),
            // Go's float-to-int conversion truncates toward zero.
            PolicyKind::Percent => {
                let x = (start as f64 * (1.0 - f64::from(policy.value) / 100.0)).trunc();
                if x >= i32::MAX as f64 {
                    i32::MAX
                } else if x <= i32::MIN as f64 {
                    i32::MIN
                } else {
                    x as i32
                }
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// Records a successful rescale in the list of its direction, reusing the last entry that is
/// older than that direction's longest policy period so the list stays bounded.
pub(crate) fn store_scale_event(
    behavior: &Behavior,
    previous: i32,
    new: i32,
    memory: &mut ControllerMemory,
) {
    let (events, longest) = if new > previous {
        (
            &mut memory.scale_up_events,
            ScalingRulesResolved::scale_up(behavior.scale_up.as_ref()).longest_period_seconds(),
        )
    } else {
        // The window default does not matter here: only the policies are read.
        (
            &mut memory.scale_down_events,
            ScalingRulesResolved::scale_down(behavior.scale_down.as_ref(), SimDuration::ZERO)
                .longest_period_seconds(),
        )
    };
    let cutoff = SimDuration::from_secs(u64::try_from(longest).unwrap_or(0));
    for event in events.iter_mut() {
        if event.age > cutoff {
            event.outdated = true;
        }
    }
    let delta = saturate((i64::from(new) - i64::from(previous)).abs());
    let entry = ScaleEvent {
        age: SimDuration::ZERO,
        delta,
        outdated: false,
    };
    match events.iter().rposition(|e| e.outdated) {
        Some(idx) => events[idx] = entry,
        None => events.push(entry),
    }
}
