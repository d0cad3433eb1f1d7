//! One sync of the Deployment controller (spec/kubernetes.md §4.2–§4.3), as a pure
//! function: given the Deployment's desired size and strategy and its ReplicaSets' sizes and
//! availability, what does this sync scale, and to what.
//!
//! Follows pkg/controller/deployment (rolling.go, recreate.go, util/deployment_util.go) of
//! Kubernetes v1.35: a sync scales the new ReplicaSet up or, only when it did not, the old
//! ones down, oldest first, unhealthy replicas first. Which pods go is the ReplicaSet's
//! business (§4.6) and not decided here; nor is proportional scaling of a resized Deployment.
//!
//! Invariants: with RollingUpdate, a sync never takes Σ replicas above `replicas + surge`,
//! and never scales old ReplicaSets below what keeps `replicas - maxUnavailable` available.

/// `maxSurge` / `maxUnavailable`: an absolute count or a percentage of `spec.replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// intstr.GetScaledValueFromIntOrPercent: a percentage of `total`, rounded up or down.
    pub fn scaled(self, total: i64, round_up: bool) -> i64 {
        match self {
            IntOrPercent::Int(value) => value,
            IntOrPercent::Percent(percent) => {
                let product = percent * total;
                if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentStrategy {
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
    Recreate,
}

impl Default for DeploymentStrategy {
    /// The API defaults: RollingUpdate with 25 % / 25 %.
    fn default() -> Self {
        DeploymentStrategy::RollingUpdate {
            max_surge: IntOrPercent::Percent(25),
            max_unavailable: IntOrPercent::Percent(25),
        }
    }
}

/// A ReplicaSet as the Deployment controller reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetView {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i64,
    /// `status.availableReplicas`.
    pub available: i64,
    /// Pods of this ReplicaSet still running (terminating ones included); Recreate waits
    /// for this to reach 0 on every old ReplicaSet.
    pub running: i64,
}

/// A Deployment mid-rollout: `new` is the ReplicaSet of the current template (`None` when
/// the template just changed and it does not exist yet); `old` oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutState {
    pub replicas: i64,
    pub strategy: DeploymentStrategy,
    pub new: Option<ReplicaSetView>,
    pub old: Vec<ReplicaSetView>,
}

/// What one sync did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAction {
    /// The new ReplicaSet's size changed (up, or down to `replicas`).
    ScaledNew,
    /// One or more old ReplicaSets were scaled down.
    ScaledOld,
    /// Recreate: old pods are still running, nothing else happens yet.
    WaitingForOldPods,
    /// Nothing to change this sync.
    Nothing,
}

/// The outcome of a sync: the new sizes (old ReplicaSets in the input order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutStep {
    pub created_new: bool,
    /// The new ReplicaSet's `spec.replicas` after the sync (0 when it still does not exist).
    pub new_replicas: i64,
    pub old_replicas: Vec<i64>,
    pub action: SyncAction,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("maxSurge and maxUnavailable may not both be 0")]
    BothZero,
    #[error("{field} must not be negative")]
    Negative { field: &'static str },
    #[error("maxUnavailable may not exceed 100%")]
    UnavailableOver100,
    #[error("spec.replicas must not be negative")]
    NegativeReplicas,
}

/// The resolved fenceposts of a rolling update: (surge, maxUnavailable), upstream's
/// `MaxSurge` and `MaxUnavailable`. Percentages: surge rounds up, unavailable down; if both
/// come out 0, unavailable becomes 1; maxUnavailable is capped at `replicas` and is 0 for an
/// empty Deployment (surge is not: an absolute surge stays as given).
pub fn resolve_fenceposts(
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    replicas: i64,
) -> Result<(i64, i64), RolloutError> {
    let negative =
        |v: IntOrPercent| matches!(v, IntOrPercent::Int(n) | IntOrPercent::Percent(n) if n < 0);
    if negative(max_surge) {
        return Err(RolloutError::Negative { field: "maxSurge" });
    }
    if negative(max_unavailable) {
        return Err(RolloutError::Negative {
            field: "maxUnavailable",
        });
    }
    let as_given_zero =
        |v: IntOrPercent| matches!(v, IntOrPercent::Int(0) | IntOrPercent::Percent(0));
    if as_given_zero(max_surge) && as_given_zero(max_unavailable) {
        return Err(RolloutError::BothZero);
    }
    if matches!(max_unavailable, IntOrPercent::Percent(p) if p > 100) {
        return Err(RolloutError::UnavailableOver100);
    }
    let surge = max_surge.scaled(replicas, true);
    let mut unavailable = max_unavailable.scaled(replicas, false);
    if surge == 0 && unavailable == 0 {
        // Rounding can give 0/0; upstream then allows one unavailable pod, since surging may
        // be impossible (quota).
        unavailable = 1;
    }
    let unavailable = if replicas == 0 {
        0
    } else {
        unavailable.min(replicas)
    };
    Ok((surge, unavailable))
}

/// Runs one sync of the Deployment controller.
pub fn rollout_step(state: &RolloutState) -> Result<RolloutStep, RolloutError> {
    if state.replicas < 0 {
        return Err(RolloutError::NegativeReplicas);
    }
    match state.strategy {
        DeploymentStrategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let (surge, max_unavailable) =
                resolve_fenceposts(max_surge, max_unavailable, state.replicas)?;
            Ok(rolling(state, surge, max_unavailable))
        }
        DeploymentStrategy::Recreate => Ok(recreate(state)),
    }
}

fn rolling(state: &RolloutState, surge: i64, max_unavailable: i64) -> RolloutStep {
    let desired = state.replicas;
    let mut old: Vec<ReplicaSetView> = state.old.clone();
    let old_total: i64 = old.iter().map(|rs| rs.replicas).sum();
    let new_replicas_for = |total: i64, current_new: i64| {
        if total >= desired + surge {
            current_new
        } else {
            current_new + (desired + surge - total).min(desired - current_new)
        }
    };
    // A missing new ReplicaSet is created at the size a scale-up would give it; creating it
    // is not a scale-up, so the same sync goes on to the old ReplicaSets.
    let created_new = state.new.is_none();
    let mut new = state.new.clone().unwrap_or_default();
    if created_new {
        new.replicas = new_replicas_for(old_total, 0);
    }
    let step = |new: &ReplicaSetView, old: &[ReplicaSetView], action| RolloutStep {
        created_new,
        new_replicas: new.replicas,
        old_replicas: old.iter().map(|rs| rs.replicas).collect(),
        action,
    };

    // reconcileNewReplicaSet
    if new.replicas != desired {
        let target = if new.replicas > desired {
            desired
        } else {
            new_replicas_for(old_total + new.replicas, new.replicas)
        };
        if target != new.replicas {
            new.replicas = target;
            return step(&new, &old, SyncAction::ScaledNew);
        }
    }

    // reconcileOldReplicaSets
    if old_total == 0 {
        return step(&new, &old, SyncAction::Nothing);
    }
    let all_total = old_total + new.replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let budget = all_total - min_available - new_unavailable;
    if budget <= 0 {
        return step(&new, &old, SyncAction::Nothing);
    }
    let mut scaled_down = 0;
    // Unhealthy replicas first, oldest ReplicaSet first, within the budget.
    for rs in old.iter_mut() {
        if scaled_down >= budget {
            break;
        }
        if rs.replicas == 0 || rs.replicas == rs.available {
            continue;
        }
        let count = (budget - scaled_down).min(rs.replicas - rs.available);
        rs.replicas -= count;
        scaled_down += count;
    }
    // Then available ones, as far as availability allows (independent of the budget).
    let available: i64 = old.iter().map(|rs| rs.available).sum::<i64>() + new.available;
    if available > min_available {
        let to_remove = available - min_available;
        let mut removed = 0;
        for rs in old.iter_mut() {
            if removed >= to_remove {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let count = rs.replicas.min(to_remove - removed);
            rs.replicas -= count;
            removed += count;
        }
        scaled_down += removed;
    }
    let action = if scaled_down > 0 {
        SyncAction::ScaledOld
    } else {
        SyncAction::Nothing
    };
    step(&new, &old, action)
}

fn recreate(state: &RolloutState) -> RolloutStep {
    let mut old_replicas: Vec<i64> = state.old.iter().map(|rs| rs.replicas).collect();
    let current_new = state.new.as_ref().map_or(0, |rs| rs.replicas);
    let result = |created_new, new_replicas, old_replicas, action| RolloutStep {
        created_new,
        new_replicas,
        old_replicas,
        action,
    };
    if old_replicas.iter().any(|r| *r > 0) {
        old_replicas.iter_mut().for_each(|r| *r = 0);
        return result(false, current_new, old_replicas, SyncAction::ScaledOld);
    }
    if state.old.iter().any(|rs| rs.running > 0) {
        return result(
            false,
            current_new,
            old_replicas,
            SyncAction::WaitingForOldPods,
        );
    }
    let created_new = state.new.is_none();
    let action = if current_new != state.replicas || created_new {
        SyncAction::ScaledNew
    } else {
        SyncAction::Nothing
    };
    result(created_new, state.replicas, old_replicas, action)
}

#[cfg(test)]
mod tests;
