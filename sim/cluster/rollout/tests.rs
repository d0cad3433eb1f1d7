use proptest::prelude::*;

use super::*;

fn rs(name: &str, replicas: i64, available: i64) -> ReplicaSetView {
    ReplicaSetView {
        name: name.into(),
        replicas,
        available,
        running: replicas,
    }
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    // Goal: spec 4.2's examples. Method: D=10 and D=1 at 25 %/25 %, D=3 at 0/10 %, D=0.
    let quarter = IntOrPercent::Percent(25);
    assert_eq!(resolve_fenceposts(quarter, quarter, 10), Ok((3, 2)));
    assert_eq!(resolve_fenceposts(quarter, quarter, 1), Ok((1, 0)));
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(0), IntOrPercent::Percent(10), 3),
        Ok((0, 1)),
        "0/0 after rounding"
    );
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(2), IntOrPercent::Int(5), 3),
        Ok((2, 3)),
        "capped at replicas"
    );
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(1), IntOrPercent::Int(1), 0),
        Ok((1, 0)),
        "absolute surge survives D=0"
    );
}

#[test]
fn invalid_strategies_are_refused() {
    // Goal: validation of 4.1. Method: both zero as given, >100 %, negative.
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(0), IntOrPercent::Percent(0), 5),
        Err(RolloutError::BothZero)
    );
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(1), IntOrPercent::Percent(120), 5),
        Err(RolloutError::UnavailableOver100)
    );
    assert_eq!(
        resolve_fenceposts(IntOrPercent::Int(-1), IntOrPercent::Int(1), 5),
        Err(RolloutError::Negative { field: "maxSurge" })
    );
}

#[test]
fn the_worked_example_rolls_ten_replicas_in_five_syncs() {
    // Goal: spec 4.3's table, D=10 at 25 %/25 %, pods becoming available between syncs.
    // Method: feed each step's sizes back with available = replicas.
    let mut state = RolloutState {
        replicas: 10,
        strategy: DeploymentStrategy::default(),
        new: None,
        old: vec![rs("v1", 10, 10)],
    };
    let mut table = Vec::new();
    for _ in 0..6 {
        let step = rollout_step(&state).expect("valid");
        table.push((step.old_replicas[0], step.new_replicas, step.action));
        state.old[0] = rs("v1", step.old_replicas[0], step.old_replicas[0]);
        state.new = Some(rs("v2", step.new_replicas, step.new_replicas));
    }
    assert_eq!(
        table,
        vec![
            (8, 3, SyncAction::ScaledOld),
            (8, 5, SyncAction::ScaledNew),
            (3, 5, SyncAction::ScaledOld),
            (3, 10, SyncAction::ScaledNew),
            (0, 10, SyncAction::ScaledOld),
            (0, 10, SyncAction::Nothing),
        ]
    );
}

#[test]
fn unavailable_new_pods_shrink_the_scale_down_budget() {
    // Goal: newUnavailable gates scale-down; unhealthy old replicas go first. Method: the new
    // ReplicaSet at 3 with nothing available, and an old one with 2 unavailable pods.
    let state = RolloutState {
        replicas: 10,
        strategy: DeploymentStrategy::default(),
        new: Some(rs("v2", 3, 0)),
        old: vec![rs("v1", 10, 8)],
    };
    // total 13, minAvailable 8, newUnavailable 3: budget 2 -> the 2 unhealthy old replicas go;
    // available 8 is not above minAvailable, so nothing more.
    let step = rollout_step(&state).expect("valid");
    assert_eq!(
        (step.old_replicas[0], step.new_replicas, step.action),
        (8, 3, SyncAction::ScaledOld)
    );
    // At full surge (5 + 8 = 13) with no new pod available: budget 13 - 8 - 5 = 0.
    let blocked = RolloutState {
        new: Some(rs("v2", 5, 0)),
        old: vec![rs("v1", 8, 8)],
        ..state
    };
    assert_eq!(
        rollout_step(&blocked).expect("valid").action,
        SyncAction::Nothing
    );
}

#[test]
fn recreate_scales_old_to_zero_waits_then_creates_the_new_set() {
    // Goal: Recreate's three phases. Method: old at 3, then old at 0 with pods still running,
    // then none running.
    let mut state = RolloutState {
        replicas: 3,
        strategy: DeploymentStrategy::Recreate,
        new: None,
        old: vec![rs("v1", 3, 3)],
    };
    let step = rollout_step(&state).expect("valid");
    assert_eq!(
        (step.old_replicas.clone(), step.new_replicas, step.action),
        (vec![0], 0, SyncAction::ScaledOld)
    );
    state.old[0] = ReplicaSetView {
        name: "v1".into(),
        replicas: 0,
        available: 0,
        running: 2,
    };
    assert_eq!(
        rollout_step(&state).expect("valid").action,
        SyncAction::WaitingForOldPods
    );
    state.old[0].running = 0;
    let step = rollout_step(&state).expect("valid");
    assert_eq!(
        (step.created_new, step.new_replicas, step.action),
        (true, 3, SyncAction::ScaledNew)
    );
}

proptest! {
    #[test]
    fn a_rolling_update_stays_within_surge_and_availability_and_finishes(
        replicas in 0i64..30,
        surge_percent in 0i64..60,
        unavailable_percent in 0i64..60,
        lag in proptest::collection::vec(any::<bool>(), 64),
    ) {
        // Goal: the §4.3 invariants: Σ replicas <= D + surge, available stays >= D -
        // maxUnavailable, and the rollout completes. Method: random fenceposts; after each
        // sync the new pods become available only when `lag` says so (old pods stay
        // available until removed).
        prop_assume!(surge_percent > 0 || unavailable_percent > 0);
        let strategy = DeploymentStrategy::RollingUpdate {
            max_surge: IntOrPercent::Percent(surge_percent),
            max_unavailable: IntOrPercent::Percent(unavailable_percent),
        };
        let (surge, max_unavailable) = resolve_fenceposts(IntOrPercent::Percent(surge_percent), IntOrPercent::Percent(unavailable_percent), replicas).expect("valid");
        let mut state = RolloutState { replicas, strategy, new: None, old: vec![rs("v1", replicas, replicas)] };
        let mut finished = false;
        for round in 0..200 {
            let step = rollout_step(&state).expect("valid");
            let total = step.new_replicas + step.old_replicas[0];
            prop_assert!(total <= replicas + surge, "total {} > {} + {}", total, replicas, surge);
            let old_available = step.old_replicas[0].min(state.old[0].available);
            let previous_new_available = state.new.as_ref().map_or(0, |n| n.available);
            let new_available = if lag.get(round).copied().unwrap_or(true) { step.new_replicas } else { previous_new_available.min(step.new_replicas) };
            prop_assert!(old_available + previous_new_available.min(step.new_replicas) >= replicas - max_unavailable,
                "availability dropped below {} at round {}", replicas - max_unavailable, round);
            state.old[0] = rs("v1", step.old_replicas[0], old_available);
            state.new = Some(rs("v2", step.new_replicas, new_available));
            if step.new_replicas == replicas && step.old_replicas[0] == 0 && new_available == replicas {
                finished = true;
                break;
            }
        }
        prop_assert!(finished, "rollout did not finish");
    }
}
