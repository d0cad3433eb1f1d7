use super::*;

/// A storage whose query answers come from a function of time, recording every append.
struct Scripted<F: FnMut(&str, i64) -> Vec<Sample>> {
    answer: F,
    appended: Vec<(LabelSet, i64, f64)>,
}

impl<F: FnMut(&str, i64) -> Vec<Sample>> RuleStorage for Scripted<F> {
    fn latest_sample(&self, labels: &LabelSet, from_ms: i64, to_ms: i64) -> Option<(i64, f64)> {
        self.appended
            .iter()
            .filter(|(l, t, _)| l == labels && (from_ms..=to_ms).contains(t))
            .max_by_key(|(_, t, _)| *t)
            .map(|(_, t, v)| (*t, *v))
    }
    fn query(&mut self, expr: &str, t_ms: i64) -> Result<Vec<Sample>, String> {
        Ok((self.answer)(expr, t_ms))
    }
    fn append(&mut self, labels: &LabelSet, t_ms: i64, value: f64) -> Result<(), String> {
        self.appended.push((labels.clone(), t_ms, value));
        Ok(())
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn one_group(yaml: &str) -> Group {
    let mut groups =
        parse_rule_file(Path::new("rules.yaml"), yaml, 30_000).expect("test rule file parses");
    groups.remove(0)
}

const SEC: i64 = 1000;

/// Runs the group every 30s from 0 to `end_s`, with the condition true when `cond(t_s)`.
fn run(
    group: &mut Group,
    end_s: i64,
    mut cond: impl FnMut(i64) -> bool,
) -> (Vec<Transition>, Vec<(LabelSet, i64, f64)>) {
    let mut storage = Scripted {
        answer: |_: &str, t: i64| {
            if cond(t / SEC) {
                vec![Sample {
                    labels: labels(&[("__name__", "x"), ("pod", "p0")]),
                    value: 0.5,
                }]
            } else {
                vec![]
            }
        },
        appended: Vec::new(),
    };
    let mut all = Vec::new();
    let mut t = 0;
    while t <= end_s * SEC {
        all.extend(
            group
                .evaluate(t, &mut storage, &EvalContext::default())
                .transitions,
        );
        t += 30 * SEC;
    }
    (all, storage.appended)
}

const ALERT_RULE: &str = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 0\n    for: 5m\n    labels:\n      severity: page\n    annotations:\n      summary: 'pod {{ $labels.pod }} at {{ $value | humanizePercentage }}'\n";

#[test]
fn alert_goes_pending_then_fires_after_for_on_evaluation_timestamps() {
    // Goal: pending -> firing once ts - ActiveAt >= for (§3.1). Method: condition true from 30s,
    // for 5m, 30s steps: pending at 30s, firing at 5m30s, not earlier.
    let mut group = one_group(ALERT_RULE);
    let (transitions, _) = run(&mut group, 600, |t| t >= 30);
    let pend = &transitions[0];
    assert_eq!(
        (pend.from, pend.to, pend.at_ms),
        (AlertState::Inactive, AlertState::Pending, 30 * SEC)
    );
    let fire = &transitions[1];
    assert_eq!(
        (fire.from, fire.to, fire.at_ms),
        (AlertState::Pending, AlertState::Firing, 330 * SEC)
    );
    assert_eq!(transitions.len(), 2);
    let RuleKind::Alerting(rule) = &group.rules[0].kind else {
        panic!("alerting rule expected")
    };
    let alert = rule.active.values().next().expect("one alert");
    assert_eq!(
        alert.labels,
        labels(&[("alertname", "A"), ("pod", "p0"), ("severity", "page")])
    );
    assert_eq!(
        rule.annotations(alert).get("summary").map(String::as_str),
        Some("pod p0 at 50%")
    );
}

#[test]
fn condition_breaking_when_for_is_reached_never_fires() {
    // Goal: the promotion check uses the refreshing evaluation (§3.1, HighLatency case).
    // Method: true at 30s..5m, false at 5m30s exactly when it would fire.
    let mut group = one_group(ALERT_RULE);
    let (transitions, _) = run(&mut group, 600, |t| (30..330).contains(&t));
    assert!(
        transitions.iter().all(|t| t.to != AlertState::Firing),
        "{transitions:?}"
    );
    assert_eq!(
        transitions.last().map(|t| (t.to, t.at_ms)),
        Some((AlertState::Inactive, 330 * SEC))
    );
}

#[test]
fn firing_alert_resolves_and_its_series_get_stale_markers() {
    // Goal: a firing alert whose condition goes false resolves at that evaluation and its
    // ALERTS series is stale-marked (§2, §3.2). Method: true 0..7m, false from 7m30s.
    let mut group = one_group(ALERT_RULE);
    let (transitions, appended) = run(&mut group, 600, |t| t < 450);
    let resolve = transitions.last().expect("transitions");
    assert_eq!(
        (resolve.from, resolve.to, resolve.at_ms),
        (AlertState::Firing, AlertState::Inactive, 450 * SEC)
    );
    let firing_series = labels(&[
        ("__name__", "ALERTS"),
        ("alertname", "A"),
        ("alertstate", "firing"),
        ("pod", "p0"),
        ("severity", "page"),
    ]);
    let stale: Vec<i64> = appended
        .iter()
        .filter(|(l, _, v)| *l == firing_series && v.to_bits() == STALE_NAN_BITS)
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(stale, vec![450 * SEC]);
    // The pending series went stale when the alert fired at 5m.
    let pending_series = firing_series
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "alertstate" {
                    "pending".to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect::<LabelSet>();
    let stale_pending: Vec<i64> = appended
        .iter()
        .filter(|(l, _, v)| *l == pending_series && v.is_nan())
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(stale_pending, vec![300 * SEC]);
    // ALERTS_FOR_STATE carries ActiveAt in seconds.
    assert!(
        appended
            .iter()
            .any(
                |(l, t, v)| l.get("__name__").map(String::as_str) == Some("ALERTS_FOR_STATE")
                    && *t == 60 * SEC
                    && *v == 0.0
            )
    );
}

#[test]
fn keep_firing_for_holds_a_firing_alert_then_resolves() {
    // Goal: keep_firing_for = 2m keeps firing at 7m, 7m30s, 8m and resolves at 8m30s when the
    // condition is false from 6m30s (the spec's checked case, §3.1). Method: for 1m from 0s.
    let yaml = "groups:\n- name: g\n  rules:\n  - alert: K\n    expr: x > 0\n    for: 1m\n    keep_firing_for: 2m\n";
    let mut group = one_group(yaml);
    let (transitions, appended) = run(&mut group, 600, |t| t < 390);
    let changes: Vec<(AlertState, i64)> =
        transitions.iter().map(|t| (t.to, t.at_ms / SEC)).collect();
    assert_eq!(
        changes,
        vec![
            (AlertState::Pending, 0),
            (AlertState::Firing, 60),
            (AlertState::Inactive, 510)
        ]
    );
    let firing_times: Vec<i64> = appended
        .iter()
        .filter(|(l, _, v)| l.get("alertstate").map(String::as_str) == Some("firing") && *v == 1.0)
        .map(|(_, t, _)| t / SEC)
        .collect();
    assert!(
        firing_times.contains(&480) && !firing_times.contains(&510),
        "{firing_times:?}"
    );
}

#[test]
fn pending_alert_is_dropped_when_condition_goes_false() {
    // Goal: pending alerts are deleted at once, never kept (§3.1). Method: true 0..1m only.
    let mut group = one_group(ALERT_RULE);
    let _ = run(&mut group, 120, |t| t <= 60);
    let RuleKind::Alerting(rule) = &group.rules[0].kind else {
        panic!("alerting rule expected")
    };
    assert!(rule.active.is_empty());
}

#[test]
fn recording_rule_sets_name_and_labels_and_rejects_duplicates() {
    // Goal: recorded samples get __name__ = record and the rule labels; two results with the
    // same final labels fail the evaluation (§2). Method: scripted results.
    let yaml = "groups:\n- name: g\n  rules:\n  - record: job:x:sum\n    expr: sum(x)\n    labels:\n      team: a\n";
    let mut group = one_group(yaml);
    let mut storage = Scripted {
        answer: |_: &str, _t: i64| {
            vec![Sample {
                labels: labels(&[("job", "j"), ("team", "b")]),
                value: 2.0,
            }]
        },
        appended: Vec::new(),
    };
    let report = group.evaluate(0, &mut storage, &EvalContext::default());
    assert!(report.errors.is_empty());
    assert_eq!(
        storage.appended,
        vec![(
            labels(&[("__name__", "job:x:sum"), ("job", "j"), ("team", "a")]),
            0,
            2.0
        )]
    );
    let mut dup = Scripted {
        answer: |_: &str, _t: i64| {
            vec![
                Sample {
                    labels: labels(&[("team", "b")]),
                    value: 1.0,
                },
                Sample {
                    labels: labels(&[("team", "c")]),
                    value: 2.0,
                },
            ]
        },
        appended: Vec::new(),
    };
    let report = group.evaluate(30_000, &mut dup, &EvalContext::default());
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].1.contains("same labelset"));
}

#[test]
fn group_slots_sit_on_the_hash_offset_grid_after_start() {
    // Goal: evaluation times are k*interval + offset and the first is strictly after start-up
    // (§2). Method: several start times; check grid membership and the first slot.
    let group = one_group(ALERT_RULE);
    let interval_ns = 30 * 1_000_000_000i64;
    let offset = group.offset_ns();
    assert!((0..interval_ns).contains(&offset));
    assert_eq!(offset, group_offset_ns("rules.yaml", "g", interval_ns));
    assert_ne!(
        offset,
        group_offset_ns("other.yaml", "g", interval_ns),
        "the file path enters the hash"
    );
    for start in [0i64, 1, offset, offset + 1, 1_700_000_000_000_000_000] {
        let times = group.evaluation_times_ns(start, start + 5 * interval_ns);
        assert_eq!(times.len(), 5, "start {start}");
        assert!(times[0] > start && times[0] - start <= interval_ns);
        for t in &times {
            assert_eq!((t - offset).rem_euclid(interval_ns), 0);
        }
    }
    assert_eq!(group.eval_timestamp_ns(offset), offset);
}

#[test]
fn durations_follow_prometheus_model_parse_duration() {
    // Goal: model.ParseDuration's grammar. Method: valid and invalid spellings.
    assert_eq!(parse_prom_duration("5m"), Ok(300_000));
    assert_eq!(parse_prom_duration("1h30m"), Ok(5_400_000));
    assert_eq!(parse_prom_duration("1d"), Ok(86_400_000));
    assert_eq!(parse_prom_duration("250ms"), Ok(250));
    assert_eq!(parse_prom_duration("1m500ms"), Ok(60_500));
    assert_eq!(parse_prom_duration("0"), Ok(0));
    assert!(parse_prom_duration("5x").is_err());
    assert!(parse_prom_duration("1.5m").is_err());
    assert!(parse_prom_duration("30m1h").is_err());
    assert!(parse_prom_duration("").is_err());
    assert_eq!(format_prom_duration(5_400_000), "1h30m");
    assert_eq!(format_prom_duration(0), "0s");
    assert_eq!(format_prom_duration(30 * 86_400_000), "30d");
    assert_eq!(format_prom_duration(28 * 86_400_000), "4w");
    assert_eq!(format_prom_duration(86_400_000), "1d");
}

#[test]
fn promtool_rejections_name_the_file_line_and_reason() {
    // Goal: promtool's rule-file rejections (duplicate group, missing expr, invalid `for`,
    // PromQL syntax error), each with its place. Method: one file with all four problems.
    let yaml = "groups:\n- name: a\n  rules:\n  - alert: X\n    expr: up == 0\n- name: a\n  rules:\n  - alert: Z\n  - alert: W\n    expr: sum(rate(x[5m])\n  - alert: V\n    expr: up\n    for: 5x\n";
    let diags = parse_rule_file(Path::new("bad.yaml"), yaml, 60_000).expect_err("invalid file");
    let lines: Vec<String> = diags.0.iter().map(|d| d.headline()).collect();
    assert!(
        lines[0].starts_with("bad.yaml:6:3: groups[1].name: groupname: \"a\" is repeated"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("bad.yaml:8:5:")
            && l.contains("rule 1, \"Z\": field 'expr' must be set")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.yaml:10:11:") && l.contains("could not parse expression")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("bad.yaml:13:10:")
            && l.contains("not a valid duration string: \"5x\"")),
        "{lines:?}"
    );
}

#[test]
fn unknown_fields_and_bad_templates_are_rejected() {
    // Goal: strict parsing (unknown keys) and template parse checks, like promtool.
    let unknown = "groups:\n- name: a\n  rules:\n  - alert: U\n    expr: up\n    bogus: 1\n";
    let diags = parse_rule_file(Path::new("u.yaml"), unknown, 60_000).expect_err("unknown field");
    assert_eq!(diags.0[0].location.line, 6, "{:?}", diags.0);
    assert_eq!(
        diags.0[0].field, "groups[0].rules[0].bogus",
        "{:?}",
        diags.0
    );
    let template = "groups:\n- name: a\n  rules:\n  - alert: V\n    expr: up\n    annotations:\n      a: '{{ $value | nosuch }}'\n";
    let diags = parse_rule_file(Path::new("t.yaml"), template, 60_000).expect_err("bad template");
    assert!(
        diags.0[0]
            .message
            .contains("function \"nosuch\" not defined"),
        "{:?}",
        diags.0
    );
}

#[test]
fn timelines_fold_transitions_into_episodes() {
    // Goal: transitions become pending/fire/resolve times per episode.
    let mut group = one_group(ALERT_RULE);
    let (transitions, _) = run(&mut group, 900, |t| !(450..600).contains(&t));
    let lives = timelines(&transitions);
    assert_eq!(lives.len(), 2);
    assert_eq!(
        (
            lives[0].pending_at_ms,
            lives[0].fired_at_ms,
            lives[0].resolved_at_ms
        ),
        (0, Some(300 * SEC), Some(450 * SEC))
    );
    assert_eq!(
        (
            lives[1].pending_at_ms,
            lives[1].fired_at_ms,
            lives[1].resolved_at_ms
        ),
        (600 * SEC, Some(900 * SEC), None)
    );
}

#[test]
fn live_schedule_runs_each_group_on_its_own_grid() {
    // Goal: a server runs groups independently on interval + offset slots and reports alert
    // lifetimes on those slots (§2, unlike promtool). Method: a 30s and a 1m group, both
    // alerting on an always-true condition with for: 1m; check plan order and fire times.
    let yaml = "groups:\n- name: fast\n  interval: 30s\n  rules:\n  - alert: F\n    expr: x > 0\n    for: 1m\n- name: slow\n  interval: 1m\n  rules:\n  - alert: S\n    expr: x > 0\n    for: 1m\n";
    let mut groups = parse_rule_file(Path::new("sched.yaml"), yaml, 60_000).expect("parses");
    let start_ns = 1_700_000_000_000_000_000i64;
    let end_ns = start_ns + 5 * 60 * 1_000_000_000;
    let plan = evaluation_plan(&groups, start_ns, end_ns);
    assert_eq!(plan.iter().filter(|e| e.group_idx == 0).count(), 10);
    assert_eq!(plan.iter().filter(|e| e.group_idx == 1).count(), 5);
    assert!(
        plan.windows(2)
            .all(|w| (w[0].t_ns, w[0].group_idx) <= (w[1].t_ns, w[1].group_idx))
    );
    let mut storage = Scripted {
        answer: |_: &str, _t: i64| {
            vec![Sample {
                labels: labels(&[("pod", "p")]),
                value: 1.0,
            }]
        },
        appended: Vec::new(),
    };
    let run = run_schedule(
        &mut groups,
        start_ns,
        end_ns,
        &mut storage,
        &EvalContext::default(),
    );
    assert!(run.errors.is_empty());
    for (name, group_idx, interval_ms) in [("F", 0, 30_000), ("S", 1, 60_000)] {
        let life = run
            .timelines
            .iter()
            .find(|l| l.alertname == name)
            .expect("an alert lifetime");
        let first_ms = plan
            .iter()
            .find(|e| e.group_idx == group_idx)
            .map(|e| e.t_ns / 1_000_000)
            .expect("slots");
        assert_eq!(life.pending_at_ms, first_ms);
        // for: 1m is reached on the group's own grid.
        assert_eq!(life.fired_at_ms, Some(first_ms + 60_000));
        assert_eq!((life.fired_at_ms.unwrap() - first_ms) % interval_ms, 0);
    }
}

#[test]
fn parse_errors_get_promtools_position_where_it_can_be_recovered() {
    // Goal: PromQL syntax errors name the position inside the expression like promtool
    // (`1:16: parse error: ...`). Method: the cases checked against promtool 2.42.
    assert_eq!(
        with_parse_position("sum(rate(x[5m])", "unclosed left parenthesis"),
        "1:16: parse error: unclosed left parenthesis"
    );
    assert_eq!(
        with_parse_position("up\nand\nbar(x)\n", "unknown function with name 'bar'"),
        "3:1: parse error: unknown function with name \"bar\""
    );
    assert_eq!(
        with_parse_position("é + nosuch(x)", "unknown function with name 'nosuch'"),
        "1:5: parse error: unknown function with name \"nosuch\""
    );
    assert_eq!(
        with_parse_position("up ==", "invalid promql query"),
        "invalid promql query"
    );
}

/// Firing state of the one alert after each 30s step, for a condition given per step.
fn firing_per_step(for_steps: i64, keep_steps: i64, cond: &[bool]) -> Vec<bool> {
    let yaml = format!(
        "groups:\n- name: g\n  rules:\n  - alert: P\n    expr: x > 0\n    for: {}s\n    keep_firing_for: {}s\n",
        for_steps * 30,
        keep_steps * 30
    );
    let mut group = one_group(&yaml);
    let cond_at = cond.to_vec();
    let mut storage = Scripted {
        answer: move |_: &str, t: i64| {
            if cond_at[(t / (30 * SEC)) as usize] {
                vec![Sample {
                    labels: labels(&[("pod", "p")]),
                    value: 1.0,
                }]
            } else {
                vec![]
            }
        },
        appended: Vec::new(),
    };
    let mut out = Vec::new();
    for step in 0..cond.len() as i64 {
        group.evaluate(step * 30 * SEC, &mut storage, &EvalContext::default());
        let RuleKind::Alerting(rule) = &group.rules[0].kind else {
            panic!("alerting rule expected")
        };
        out.push(rule.active_alerts().any(|a| a.state == AlertState::Firing));
    }
    out
}

proptest::proptest! {
    #[test]
    fn an_alert_fires_exactly_when_its_condition_held_for_the_whole_for_window(
        cond in proptest::collection::vec(proptest::bool::ANY, 1..40),
        for_steps in 0i64..6,
        keep_steps in 0i64..4,
    ) {
        // Goal: the state machine's contract over any condition history (§3.1). Method:
        // random condition per 30s step; check (1) a condition true over the last `for`
        // window means firing, (2) firing with the condition true needs that window, and
        // (3) firing with the condition false is keep_firing_for holding, for less than K
        // since the first false step after the alert last saw the condition.
        let firing = firing_per_step(for_steps, keep_steps, &cond);
        let f = for_steps as usize;
        for i in 0..cond.len() {
            let window_true = i >= f && cond[i - f..=i].iter().all(|c| *c);
            if window_true {
                proptest::prop_assert!(firing[i], "step {i}: window true but not firing");
            }
            if firing[i] && cond[i] {
                // The alert went active at the start of a run of trues (or earlier, when it
                // was kept firing across a gap); either way a full window exists by now.
                let run_start = (0..=i).rev().take_while(|&j| cond[j]).last().unwrap_or(i);
                let kept_across_gap = run_start > 0 && firing[run_start - 1];
                proptest::prop_assert!(kept_across_gap || i - run_start >= f, "step {i}: fired early");
            }
            if firing[i] && !cond[i] {
                proptest::prop_assert!(keep_steps > 0, "step {i}: firing on a false condition without keep_firing_for");
                let last_true = (0..i).rev().find(|&j| cond[j]);
                proptest::prop_assert!(last_true.is_some());
                let first_false = last_true.unwrap_or(0) + 1;
                proptest::prop_assert!(((i - first_false) as i64) < keep_steps, "step {i}: kept too long");
            }
        }
    }
}

#[test]
fn notifications_skip_pending_resend_after_the_delay_and_send_resolutions_at_once() {
    // Goal: what Alertmanager receives (§3.3): never pending alerts; a firing alert when it
    // fires and again only once the 1m resend delay has strictly passed (every 1m30s at 30s
    // steps); the resolution at once with EndsAt = ResolvedAt; external labels added.
    // Method: condition true 0..7m, for 5m, 30s steps; collect sends.
    let mut group = one_group(ALERT_RULE);
    let ctx = EvalContext {
        external_labels: BTreeMap::from([("cluster".to_string(), "lambda".to_string())]),
        ..EvalContext::default()
    };
    let mut storage = Scripted {
        answer: |_: &str, t: i64| {
            if t < 450 * SEC {
                vec![Sample {
                    labels: labels(&[("pod", "p0")]),
                    value: 0.5,
                }]
            } else {
                vec![]
            }
        },
        appended: Vec::new(),
    };
    let mut sent = Vec::new();
    for step in 0..=20 {
        sent.extend(
            group
                .evaluate(step * 30 * SEC, &mut storage, &ctx)
                .notifications,
        );
    }
    let times: Vec<(i64, bool)> = sent
        .iter()
        .map(|n| (n.sent_at_ms / SEC, n.resolved))
        .collect();
    // Fires at 300s; resent at 390s; resolved at 450s; the resolved alert is resent at 540s.
    assert_eq!(
        times,
        vec![(300, false), (390, false), (450, true), (540, true)]
    );
    assert_eq!(sent[0].starts_at_ms, 300 * SEC);
    assert_eq!(sent[0].ends_at_ms, 300 * SEC + 4 * 60 * SEC);
    assert_eq!(sent[2].ends_at_ms, 450 * SEC);
    assert_eq!(
        sent[0].labels.get("cluster").map(String::as_str),
        Some("lambda")
    );
}

/// Runs `yaml`'s single alert (condition always true) every 30s to `end_s`, restarting the
/// server at `restart_s`; returns the time it fired after the restart [s].
fn fire_time_after_restart(yaml: &str, restart_s: i64, end_s: i64) -> Option<i64> {
    let mut group = one_group(yaml);
    let mut storage = Scripted {
        answer: |_: &str, _t: i64| {
            vec![Sample {
                labels: labels(&[("pod", "p0")]),
                value: 1.0,
            }]
        },
        appended: Vec::new(),
    };
    let ctx = EvalContext::default();
    let mut t = 0;
    let mut fired = None;
    while t <= end_s * SEC {
        if t == restart_s * SEC {
            group.start_after_restart();
        }
        let report = group.evaluate(t, &mut storage, &ctx);
        if t >= restart_s * SEC
            && fired.is_none()
            && report
                .transitions
                .iter()
                .any(|tr| tr.to == AlertState::Firing)
        {
            fired = Some(t / SEC);
        }
        t += 30 * SEC;
    }
    fired
}

#[test]
fn restart_restores_for_state_with_the_grace_period() {
    // Goal: §3.3 restoration. Method: always-true alerts; the server restarts at 9m30s.
    // for: 10m, active since 0: 9m spent, 1m left, under the 10m grace period, so ActiveAt is
    // moved to restore time (10m) + grace - for: it fires at 20m instead of 10m.
    let long = "groups:\n- name: g\n  rules:\n  - alert: L\n    expr: x > 0\n    for: 10m\n";
    assert_eq!(fire_time_after_restart(long, 570, 1500), Some(1200));
    // for: 30m, 9m spent, 21m left (over the grace period): ActiveAt shifts by the downtime
    // (restore at 10m minus last sample at 9m = 1m), firing at 31m rather than 30m.
    let longer = "groups:\n- name: g\n  rules:\n  - alert: M\n    expr: x > 0\n    for: 30m\n";
    assert_eq!(fire_time_after_restart(longer, 570, 2400), Some(1860));
    // for: 5m is under the grace period: no restoration, it waits a full `for` from the
    // first evaluation after the restart (9m30s + 5m).
    let short = "groups:\n- name: g\n  rules:\n  - alert: S\n    expr: x > 0\n    for: 5m\n";
    assert_eq!(fire_time_after_restart(short, 570, 1200), Some(870));
}

#[test]
fn unrestored_rules_write_no_alerts_series() {
    // Goal: until restoration, ALERTS and ALERTS_FOR_STATE are not written (§3.2).
    let mut group = one_group(ALERT_RULE);
    group.start_after_restart();
    let mut storage = Scripted {
        answer: |_: &str, _t: i64| {
            vec![Sample {
                labels: labels(&[("pod", "p0")]),
                value: 1.0,
            }]
        },
        appended: Vec::new(),
    };
    group.evaluate(0, &mut storage, &EvalContext::default());
    assert!(storage.appended.is_empty());
    group.evaluate(30 * SEC, &mut storage, &EvalContext::default());
    group.evaluate(60 * SEC, &mut storage, &EvalContext::default());
    assert!(
        storage.appended.iter().all(|(_, t, _)| *t == 60 * SEC) && !storage.appended.is_empty()
    );
}
