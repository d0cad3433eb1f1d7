use std::collections::BTreeMap;

use proptest::prelude::*;

use super::normalize::{ScalingRulesResolved, scale_down_limit, scale_up_limit};
use super::*;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn cpu_util(target: i32) -> MetricSpec {
    MetricSpec::Resource {
        resource: "cpu".into(),
        container: None,
        target: ResourceTarget::Utilization(target),
    }
}

/// A ready pod, started long ago, requesting 1000m CPU and using `cpu_milli`.
fn cpu_pod(name: &str, cpu_milli: i64) -> Pod {
    Pod {
        name: name.into(),
        phase: PodPhase::Running,
        ready: Some(true),
        deleted: false,
        started_ago: Some(secs(600)),
        ready_transition_ago: Some(secs(590)),
        metric_age: SimDuration::ZERO,
        requests: BTreeMap::from([("cpu".to_string(), 1000)]),
        usage: BTreeMap::from([("cpu".to_string(), cpu_milli)]),
        containers: Vec::new(),
    }
}

/// v1.35 defaults, min 1 / max 10, one 50 % CPU metric, no behavior, an empty history.
fn base_case(current: i32) -> HpaCase {
    let version = KubernetesVersion::CURRENT;
    HpaCase {
        name: "unit".into(),
        version,
        controller: ControllerConfig::defaults_for(version),
        spec: HpaSpec {
            min_replicas: 1,
            max_replicas: 10,
            metrics: vec![cpu_util(50)],
            behavior: None,
        },
        spec_replicas: current,
        status_replicas: current,
        metric_window: secs(60),
        metric_desired_replicas: None,
        pods: Vec::new(),
        extra_samples: Vec::new(),
        memory: ControllerMemory {
            recommendations: Some(Vec::new()),
            ..ControllerMemory::default()
        },
    }
}

fn proposals(decision: &Decision) -> Vec<Option<i32>> {
    decision
        .per_metric
        .iter()
        .map(|o| o.as_ref().ok().map(|p| p.replicas))
        .collect()
}

fn reason(decision: &Decision, kind: ConditionType) -> &'static str {
    decision
        .conditions
        .get(&kind)
        .map_or("untouched", |c| c.reason)
}

#[test]
fn tolerance_band_is_inclusive_at_both_ends_from_v1_33() {
    // Goal: the v1.33+ band keeps the size at exactly 0.9 and 1.1; the older absolute form
    // scales at 1.1 because 1 - 1.1 is -0.10000000000000009 in float64.
    // Method: ask both forms about the two boundary ratios computed as the controller does.
    let band = Tolerances {
        scale_up: 0.1,
        scale_down: 0.1,
        absolute_form: false,
    };
    let absolute = Tolerances {
        absolute_form: true,
        ..band
    };
    let upper = 55.0 / 50.0;
    let lower = 45.0 / 50.0;
    assert!(band.is_within(upper) && band.is_within(lower));
    assert!(!absolute.is_within(upper));
    assert!(absolute.is_within(lower));
}

#[test]
fn utilization_is_truncated_to_a_whole_percentage_before_the_ratio() {
    // Goal: 115m of 3000m is 3 %, not 3.83 %, and the ratio uses the truncated value.
    // Method: three pods sharing 115m against a 10 % target; ratio 0.3 gives ceil(0.9) = 1.
    let mut case = base_case(3);
    case.spec.metrics = vec![cpu_util(10)];
    case.pods = vec![cpu_pod("a", 115), cpu_pod("b", 0), cpu_pod("c", 0)];
    let decision = recommend(&case);
    assert_eq!(decision.current_utilization, Some(3));
    assert_eq!(proposals(&decision), vec![Some(1)]);
}

#[test]
fn superfluous_samples_count_in_plain_averages_but_not_in_utilization() {
    // Goal: a sample for a pod outside the pod list is skipped by the request-weighted sum but
    // counts in a plain average and in the metric count.
    // Method: one listed pod at 1000m and an extra sample at 3000m; CPU utilization sees 100 %,
    // a Pods metric sees (1000 + 3000) / 2 = 2000.
    let mut case = base_case(1);
    case.spec.metrics = vec![cpu_util(50)];
    let mut pod = cpu_pod("a", 1000);
    pod.usage.insert("qps".into(), 1000);
    case.pods = vec![pod];
    case.extra_samples = vec![ExtraSample {
        pod: "ghost".into(),
        usage: BTreeMap::from([("cpu".into(), 3000), ("qps".into(), 3000)]),
    }];
    let utilization = recommend(&case);
    assert_eq!(utilization.current_utilization, Some(100));
    assert_eq!(proposals(&utilization), vec![Some(2)]);

    case.spec.metrics = vec![MetricSpec::Pods {
        name: "qps".into(),
        target_average_milli: 1000,
    }];
    let plain = recommend(&case);
    let proposal = plain.per_metric[0].as_ref().expect("pods metric computes");
    assert_eq!(proposal.value_milli, 2000);
    assert_eq!(proposal.replicas, 2);
}

#[test]
fn a_pod_that_was_ready_before_keeps_counting_after_it_turns_not_ready() {
    // Goal: outside the CPU initialization period only never-ready pods are left out.
    // Method: two pods at 900m / 1000m (target 50 %); one turned NotReady 100 s ago, long after
    // its start, so it still counts: 90 %, ratio 1.8, ceil(3.6) = 4. A pod that flipped 10 s
    // after its start is left out instead and the unready fill-in keeps the size.
    let mut case = base_case(2);
    let mut flipped_late = cpu_pod("b", 900);
    flipped_late.ready = Some(false);
    flipped_late.ready_transition_ago = Some(secs(100));
    case.pods = vec![cpu_pod("a", 900), flipped_late.clone()];
    assert_eq!(proposals(&recommend(&case)), vec![Some(4)]);

    let mut never_ready = flipped_late;
    never_ready.ready_transition_ago = Some(secs(590));
    case.pods = vec![cpu_pod("a", 900), never_ready];
    assert_eq!(proposals(&recommend(&case)), vec![Some(2)]);
}

#[test]
fn a_pod_without_a_request_makes_the_resource_metric_fail() {
    // Goal: utilization needs every pod's request; one missing request fails the metric.
    // Method: drop one pod's request and read the failure reason and the fatal outcome.
    let mut case = base_case(2);
    let mut no_request = cpu_pod("b", 500);
    no_request.requests.clear();
    case.pods = vec![cpu_pod("a", 500), no_request];
    let decision = recommend(&case);
    let failure = decision.per_metric[0]
        .as_ref()
        .expect_err("the metric fails");
    assert_eq!(failure.reason, "FailedGetResourceMetric");
    assert!(
        failure.message.contains("missing request for cpu"),
        "{}",
        failure.message
    );
    assert_eq!(
        reason(&decision, ConditionType::ScalingActive),
        "FailedGetResourceMetric"
    );
    assert_eq!(decision.desired_replicas, 2);
}

#[test]
fn an_object_value_scales_from_zero_without_tolerance_or_pod_count() {
    // Goal: at zero replicas (minReplicas 0) an Object Value metric proposes ceil(ratio).
    // Method: value 2500m against 1000m: ceil(2.5) = 3; legacy cap max(0, 4) = 4.
    let mut case = base_case(0);
    case.spec.min_replicas = 0;
    case.spec.metrics = vec![MetricSpec::Object {
        name: "qps".into(),
        described_kind: "Service".into(),
        described_name: "front".into(),
        observed_milli: Some(2500),
        target: ValueTarget::ValueMilli(1000),
    }];
    let decision = recommend(&case);
    assert_eq!(proposals(&decision), vec![Some(3)]);
    assert_eq!(decision.desired_replicas, 3);
}

#[test]
fn the_combined_proposal_is_the_maximum_over_metrics() {
    // Goal: several valid metrics combine by maximum, named by the metric that reached it.
    // Method: CPU proposes 4 (ratio 1.8 on 2 pods), an external value proposes ceil(3 * 2) = 6.
    let mut case = base_case(2);
    case.pods = vec![cpu_pod("a", 900), cpu_pod("b", 900)];
    case.spec.metrics.push(MetricSpec::External {
        name: "queue".into(),
        selector: "nil".into(),
        observed_milli: Some(vec![3000]),
        target: ValueTarget::ValueMilli(1000),
    });
    let decision = recommend(&case);
    assert_eq!(proposals(&decision), vec![Some(4), Some(6)]);
    assert_eq!(decision.metric_desired_replicas, Some(6));
    let rescale = decision.rescale.expect("a scale-up is written");
    assert_eq!(rescale.reason, "external metric queue(nil) above target");
    // The legacy up limit max(2 * 2, 4) = 4 then caps the write.
    assert_eq!(rescale.to, 4);
    assert_eq!(decision.limited_by, Some(LimitedBy::ScaleUpLimit));
}

#[test]
fn legacy_history_overwrites_the_last_entry_older_than_the_window() {
    // Goal: recommendation memory stays bounded: the last entry older than the window is reused.
    // Method: two old entries and one recent; after one reconcile the later old slot holds (0, 2).
    let mut case = base_case(3);
    case.metric_desired_replicas = Some(2);
    case.memory.recommendations = Some(vec![
        Recommendation {
            age: secs(400),
            replicas: 7,
        },
        Recommendation {
            age: secs(350),
            replicas: 6,
        },
        Recommendation {
            age: secs(100),
            replicas: 3,
        },
    ]);
    let decision = recommend(&case);
    assert_eq!(
        decision.desired_replicas, 3,
        "the 100 s old 3 holds the scale-down"
    );
    assert_eq!(
        decision.memory.recommendations,
        Some(vec![
            Recommendation {
                age: secs(400),
                replicas: 7
            },
            Recommendation {
                age: SimDuration::ZERO,
                replicas: 2
            },
            Recommendation {
                age: secs(100),
                replicas: 3
            },
        ])
    );
}

#[test]
fn a_controller_without_a_list_seeds_one_but_an_empty_list_is_kept_empty() {
    // Goal: the seed rule distinguishes "no list" from "empty list".
    // Method: propose a scale-down from 5 to 2 with both memories.
    let mut case = base_case(5);
    case.metric_desired_replicas = Some(2);
    case.memory.recommendations = None;
    let seeded = recommend(&case);
    assert_eq!(seeded.desired_replicas, 5);
    assert_eq!(
        reason(&seeded, ConditionType::AbleToScale),
        "ScaleDownStabilized"
    );

    case.memory.recommendations = Some(Vec::new());
    assert_eq!(recommend(&case).desired_replicas, 2);
}

#[test]
fn scale_events_reuse_the_last_outdated_entry_of_their_direction() {
    // Goal: a rescale is recorded in its direction's list, reusing an entry older than the
    // longest policy period (default scale-up rules: 15 s).
    // Method: scale up 4 -> 8 with up events 20 s and 10 s old; the 20 s one is replaced.
    let mut case = base_case(4);
    case.spec.behavior = Some(Behavior::default());
    case.metric_desired_replicas = Some(8);
    case.memory.scale_up_events = vec![
        ScaleEvent {
            age: secs(20),
            delta: 1,
            outdated: false,
        },
        ScaleEvent {
            age: secs(10),
            delta: 1,
            outdated: false,
        },
    ];
    let decision = recommend(&case);
    // periodStart = 4 - 1 (the 10 s event) = 3: Pods 7, Percent 6, Max 7.
    assert_eq!(decision.desired_replicas, 7);
    assert_eq!(
        decision.memory.scale_up_events,
        vec![
            ScaleEvent {
                age: SimDuration::ZERO,
                delta: 3,
                outdated: false
            },
            ScaleEvent {
                age: secs(10),
                delta: 1,
                outdated: false
            },
        ]
    );
    assert!(decision.memory.scale_down_events.is_empty());
}

#[test]
fn a_recent_scale_down_raises_the_scale_up_allowance() {
    // Goal: both event lists feed the period start, so a scale-down inside the period gives
    // back room for a scale-up.
    // Method: Pods 2 per 60 s with a 3-replica scale-down 30 s ago: start 5 + 3 = 8, limit 10.
    let rules = ScalingRulesResolved {
        stabilization_window: SimDuration::ZERO,
        select_policy: SelectPolicy::Max,
        policies: vec![ScalingPolicy {
            kind: PolicyKind::Pods,
            value: 2,
            period_seconds: 60,
        }],
    };
    let down = [ScaleEvent {
        age: secs(30),
        delta: 3,
        outdated: false,
    }];
    assert_eq!(scale_up_limit(5, &[], &down, &rules), 10);
    assert_eq!(scale_up_limit(5, &[], &[], &rules), 7);
}

#[test]
fn a_percent_scale_down_truncates_toward_zero_and_min_picks_the_smaller_change() {
    // Goal: Percent down limits truncate; Min selects the policy with the smallest change.
    // Method: 7 replicas, Percent 50 -> trunc(3.5) = 3; with Pods 1 and Min -> 6.
    let percent = ScalingPolicy {
        kind: PolicyKind::Percent,
        value: 50,
        period_seconds: 60,
    };
    let pods = ScalingPolicy {
        kind: PolicyKind::Pods,
        value: 1,
        period_seconds: 60,
    };
    let max_rules = ScalingRulesResolved {
        stabilization_window: SimDuration::ZERO,
        select_policy: SelectPolicy::Max,
        policies: vec![percent, pods],
    };
    assert_eq!(scale_down_limit(7, &[], &[], &max_rules), 3);
    let min_rules = ScalingRulesResolved {
        select_policy: SelectPolicy::Min,
        ..max_rules
    };
    assert_eq!(scale_down_limit(7, &[], &[], &min_rules), 6);
}

#[test]
fn with_behavior_stabilization_never_moves_past_current_in_the_other_direction() {
    // Goal: unlike the legacy path, stabilization with behavior only holds a change back.
    // Method: current 6, proposal 4, a recommendation of 8 inside the down window: the
    // stabilized value is capped at max(4, 8) but starts from current 6, so it stays 6.
    let mut case = base_case(6);
    case.spec.behavior = Some(Behavior::default());
    case.metric_desired_replicas = Some(4);
    case.memory.recommendations = Some(vec![Recommendation {
        age: secs(60),
        replicas: 8,
    }]);
    let decision = recommend(&case);
    assert_eq!(decision.desired_replicas, 6);
    assert_eq!(decision.limited_by, Some(LimitedBy::ScaleDownStabilized));
}

#[test]
fn aging_memory_moves_every_entry_back_in_time() {
    // Goal: carried memory ages by the time between syncs, in both event lists and the history.
    // Method: age a small memory by 15 s and read the ages.
    let memory = ControllerMemory {
        recommendations: Some(vec![Recommendation {
            age: secs(5),
            replicas: 3,
        }]),
        scale_up_events: vec![ScaleEvent {
            age: SimDuration::ZERO,
            delta: 2,
            outdated: false,
        }],
        scale_down_events: vec![ScaleEvent {
            age: secs(1),
            delta: 1,
            outdated: true,
        }],
    };
    let aged = memory.aged(secs(15));
    assert_eq!(
        aged.recommendations,
        Some(vec![Recommendation {
            age: secs(20),
            replicas: 3
        }])
    );
    assert_eq!(aged.scale_up_events[0].age, secs(15));
    assert_eq!(
        aged.scale_down_events[0],
        ScaleEvent {
            age: secs(16),
            delta: 1,
            outdated: true
        }
    );
}

// ---- properties ----

fn policy_strategy() -> impl Strategy<Value = ScalingPolicy> {
    (
        prop_oneof![Just(PolicyKind::Pods), Just(PolicyKind::Percent)],
        1i32..200,
        1i32..1800,
    )
        .prop_map(|(kind, value, period_seconds)| ScalingPolicy {
            kind,
            value,
            period_seconds,
        })
}

fn rules_strategy() -> impl Strategy<Value = Option<ScalingRules>> {
    proptest::option::of(
        (
            proptest::option::of(0i32..3600),
            proptest::option::of(prop_oneof![
                Just(SelectPolicy::Max),
                Just(SelectPolicy::Min),
                Just(SelectPolicy::Disabled)
            ]),
            proptest::option::of(proptest::collection::vec(policy_strategy(), 1..4)),
        )
            .prop_map(|(stabilization_window_seconds, select_policy, policies)| {
                ScalingRules {
                    stabilization_window_seconds,
                    select_policy,
                    policies,
                    tolerance: None,
                }
            }),
    )
}

fn behavior_strategy() -> impl Strategy<Value = Option<Behavior>> {
    proptest::option::of(
        (rules_strategy(), rules_strategy()).prop_map(|(scale_up, scale_down)| Behavior {
            scale_up,
            scale_down,
        }),
    )
}

fn memory_strategy() -> impl Strategy<Value = ControllerMemory> {
    let event = (0u64..2000, 1i32..50).prop_map(|(age, delta)| ScaleEvent {
        age: secs(age),
        delta,
        outdated: false,
    });
    (
        proptest::option::of(proptest::collection::vec(
            (0u64..2000, 0i32..200).prop_map(|(age, replicas)| Recommendation {
                age: secs(age),
                replicas,
            }),
            0..6,
        )),
        proptest::collection::vec(event.clone(), 0..4),
        proptest::collection::vec(event, 0..4),
    )
        .prop_map(
            |(recommendations, scale_up_events, scale_down_events)| ControllerMemory {
                recommendations,
                scale_up_events,
                scale_down_events,
            },
        )
}

/// A case with random bounds, behavior, memory and either a direct proposal or CPU pods.
fn case_strategy() -> impl Strategy<Value = HpaCase> {
    (
        1i32..20,
        0i32..30,
        0i32..60,
        behavior_strategy(),
        memory_strategy(),
        proptest::option::of(0i32..200),
        proptest::collection::vec((0i64..4000, any::<bool>(), 0u64..900), 1..8),
        1i32..150,
    )
        .prop_map(
            |(min, extra, current, behavior, memory, direct, pods, target)| {
                let mut case = base_case(current);
                case.spec.min_replicas = min;
                case.spec.max_replicas = min + extra;
                case.spec.metrics = vec![cpu_util(target)];
                case.spec.behavior = behavior;
                case.memory = memory;
                case.metric_desired_replicas = direct;
                case.pods = pods
                    .into_iter()
                    .enumerate()
                    .map(|(idx, (cpu, ready, started))| {
                        let mut pod = cpu_pod(&format!("p{idx}"), cpu);
                        pod.ready = Some(ready);
                        pod.started_ago = Some(secs(started));
                        pod.ready_transition_ago = Some(secs(started / 2));
                        pod
                    })
                    .collect();
                case
            },
        )
}

proptest! {
    #[test]
    fn desired_replicas_stay_within_min_and_max(case in case_strategy()) {
        // Goal: whatever the metrics, memory and behavior, a target inside [min, max] ends
        // inside it; a target outside is brought to the nearest bound; zero stays zero.
        // Method: random cases through recommend, checking the bound that applies.
        let decision = recommend(&case);
        let (min, max, current) = (case.spec.min_replicas, case.spec.max_replicas, case.spec_replicas);
        if current == 0 {
            prop_assert_eq!(decision.desired_replicas, 0);
        } else {
            prop_assert!(decision.desired_replicas >= min && decision.desired_replicas <= max,
                "desired {} outside [{}, {}] from current {}", decision.desired_replicas, min, max, current);
        }
    }

    #[test]
    fn identical_inputs_give_identical_decisions(case in case_strategy()) {
        // Goal: recommend is a pure function. Method: decide twice, compare everything.
        prop_assert_eq!(recommend(&case), recommend(&case.clone()));
    }

    #[test]
    fn scale_up_never_exceeds_what_the_policy_allows_in_any_period(
        policy in policy_strategy(),
        proposals in proptest::collection::vec(1i32..400, 1..40),
        start in 1i32..20,
    ) {
        // Goal: over any window shorter than the policy period, the replicas added stay within
        // the policy's allowance measured from the size at the window's start.
        // Method: one scale-up policy, scale-down disabled, syncs every 15 s with carried memory;
        // for each sync, find the size before the earliest sync inside (t - period, t] and check
        // the current size against Pods (+value) or Percent (ceil(x * (1 + value/100))).
        let mut case = base_case(start);
        case.spec.max_replicas = 100_000;
        case.spec.behavior = Some(Behavior {
            scale_up: Some(ScalingRules { policies: Some(vec![policy]), ..ScalingRules::default() }),
            scale_down: Some(ScalingRules { select_policy: Some(SelectPolicy::Disabled), ..ScalingRules::default() }),
        });
        let sync = 15u64;
        let mut sizes = vec![start];
        for proposal in proposals {
            case.metric_desired_replicas = Some(proposal);
            let decision = recommend(&case);
            sizes.push(decision.desired_replicas);
            case.spec_replicas = decision.desired_replicas;
            case.status_replicas = decision.desired_replicas;
            case.memory = decision.memory.aged(secs(sync));
        }
        // sizes[k] is the size after sync k (sizes[0] before the first sync); sync k happens at 15 k.
        for now in 1..sizes.len() {
            let first_inside = (1..=now).find(|k| (now - k) as u64 * sync < policy.period_seconds as u64).unwrap_or(now);
            let base = i64::from(sizes[first_inside - 1]);
            let allowed = match policy.kind {
                PolicyKind::Pods => base + i64::from(policy.value),
                PolicyKind::Percent => (base as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64,
            };
            prop_assert!(i64::from(sizes[now]) <= allowed.max(base),
                "size {} at sync {} exceeds {} allowed from {}", sizes[now], now, allowed, base);
        }
    }

    #[test]
    fn scale_down_never_goes_below_the_highest_recommendation_in_the_window(
        window_seconds in 0i32..600,
        proposals in proptest::collection::vec(1i32..50, 1..40),
        legacy in any::<bool>(),
    ) {
        // Goal: a scale-down lands at or above every unstabilized recommendation made within the
        // stabilization window (strictly younger with behavior; at most the window old without).
        // Method: syncs every 15 s with carried memory; whenever the size drops, compare it with
        // the proposals of the syncs inside the window, including this one.
        let mut case = base_case(25);
        case.spec.max_replicas = 50;
        if legacy {
            case.controller.downscale_stabilization_window = secs(window_seconds as u64);
        } else {
            case.spec.behavior = Some(Behavior {
                scale_up: None,
                scale_down: Some(ScalingRules { stabilization_window_seconds: Some(window_seconds), ..ScalingRules::default() }),
            });
        }
        let sync = 15u64;
        let window = window_seconds as u64;
        let mut history: Vec<i32> = Vec::new();
        for proposal in proposals {
            case.metric_desired_replicas = Some(proposal);
            history.push(proposal);
            let before = case.spec_replicas;
            let decision = recommend(&case);
            if decision.desired_replicas < before {
                let now = history.len() - 1;
                let highest = history.iter().enumerate()
                    .filter(|(k, _)| {
                        let age = (now - k) as u64 * sync;
                        if legacy { age <= window } else { age < window || age == 0 }
                    })
                    .map(|(_, p)| *p)
                    .max()
                    .unwrap_or(proposal);
                prop_assert!(decision.desired_replicas >= highest,
                    "dropped to {} with {} recommended inside the window", decision.desired_replicas, highest);
            }
            case.spec_replicas = decision.desired_replicas;
            case.status_replicas = decision.desired_replicas;
            case.memory = decision.memory.aged(secs(sync));
        }
    }
}
