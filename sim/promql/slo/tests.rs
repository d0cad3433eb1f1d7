use super::*;
use std::path::Path;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The plan's availability SLO with `{{.window}}` in place of its hard-coded `[5m]`.
pub(crate) fn sophia_availability() -> SloInput {
    let common = labels(&[]);
    let annotations = labels(&[("summary", "Sophia AI availability is below SLO")]);
    SloInput {
        service: "sophia-ai".to_string(),
        name: "availability".to_string(),
        objective_percent: 99.9,
        sli: Sli::Events {
            error_query: "sum(rate(http_requests_total{job=\"agno-coordinator\",status=~\"5..\"}[{{.window}}]))".to_string(),
            total_query: "sum(rate(http_requests_total{job=\"agno-coordinator\"}[{{ .window }}]))".to_string(),
        },
        labels: labels(&[("team", "platform"), ("tier", "critical")]),
        page_alert: AlertMeta::merged(
            "SophiaAvailabilityAlert",
            &common,
            &annotations,
            &labels(&[("severity", "critical")]),
            &labels(&[]),
            false,
        ),
        ticket_alert: AlertMeta::merged("SophiaAvailabilityAlert", &common, &annotations, &labels(&[]), &labels(&[]), false),
        period_days: 30,
        info: SlothInfo { version: "v0.16.0".to_string(), mode: "cli-gen-prom".to_string(), spec: "sloth.slok.dev/v1".to_string() },
    }
}

#[test]
fn burn_factors_follow_the_google_windows() {
    // Goal: factors = share x period hours / long window hours (§12.2). Method: 30d and 28d.
    let f30: Vec<f64> = WINDOWS.iter().map(|w| burn_factor(w, 30)).collect();
    assert_eq!(f30, vec![14.4, 6.0, 3.0, 1.0]);
    let f28: Vec<String> = WINDOWS
        .iter()
        .map(|w| format_float_shortest(burn_factor(w, 28)))
        .collect();
    // Sloth's own 28d integration output carries the same float artefacts.
    assert_eq!(
        f28,
        vec![
            "13.44",
            "5.6000000000000005",
            "2.8000000000000003",
            "0.9333333333333333"
        ]
    );
    assert_eq!(
        format_float_shortest(error_budget_ratio(99.9)),
        "0.0009999999999999432"
    );
}

#[test]
fn sli_recordings_replace_the_window_and_carry_the_id_labels() {
    // Goal: one SLI recording per window (5m..3d) plus the optimized 30d one (§12.3).
    let groups = generate(&sophia_availability()).expect("valid SLO");
    assert_eq!(
        groups[0].name,
        "sloth-slo-sli-recordings-sophia-ai-availability"
    );
    let records: Vec<&str> = groups[0]
        .rules
        .iter()
        .map(|r| match r {
            GeneratedRule::Recording { record, .. } => record.as_str(),
            GeneratedRule::Alerting { alert, .. } => alert.as_str(),
        })
        .collect();
    let windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"];
    assert_eq!(
        records,
        windows
            .iter()
            .map(|w| format!("slo:sli_error:ratio_rate{w}"))
            .collect::<Vec<_>>()
    );
    let GeneratedRule::Recording {
        expr, labels: l, ..
    } = &groups[0].rules[1]
    else {
        panic!("recording")
    };
    assert_eq!(
        expr,
        "(sum(rate(http_requests_total{job=\"agno-coordinator\",status=~\"5..\"}[30m])))\n/\n(sum(rate(http_requests_total{job=\"agno-coordinator\"}[30m])))\n"
    );
    assert_eq!(
        *l,
        labels(&[
            ("sloth_id", "sophia-ai-availability"),
            ("sloth_service", "sophia-ai"),
            ("sloth_slo", "availability"),
            ("sloth_window", "30m"),
            ("team", "platform"),
            ("tier", "critical")
        ])
    );
    let GeneratedRule::Recording { expr, .. } = &groups[0].rules[7] else {
        panic!("recording")
    };
    let filter = "{sloth_id=\"sophia-ai-availability\", sloth_service=\"sophia-ai\", sloth_slo=\"availability\"}";
    assert_eq!(
        *expr,
        format!(
            "sum_over_time(slo:sli_error:ratio_rate5m{filter}[30d])\n/ ignoring (sloth_window)\ncount_over_time(slo:sli_error:ratio_rate5m{filter}[30d])\n"
        )
    );
}

#[test]
fn metadata_and_alerts_match_sloths_shapes() {
    // Goal: meta recordings and the two same-named page/ticket alerts (§12.3). Method: exact
    // expressions, labels and annotations for the plan's availability SLO.
    let groups = generate(&sophia_availability()).expect("valid SLO");
    let meta = &groups[1].rules;
    let expr_of = |r: &GeneratedRule| match r {
        GeneratedRule::Recording { expr, .. } | GeneratedRule::Alerting { expr, .. } => {
            expr.clone()
        }
    };
    assert_eq!(expr_of(&meta[0]), "vector(0.9990000000000001)");
    assert_eq!(expr_of(&meta[1]), "vector(1-0.9990000000000001)");
    assert_eq!(expr_of(&meta[2]), "vector(30)");
    assert!(
        expr_of(&meta[3]).contains(
            "/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{"
        )
    );
    let GeneratedRule::Recording { labels: info, .. } = &meta[6] else {
        panic!("info")
    };
    assert_eq!(
        info.get("sloth_objective").map(String::as_str),
        Some("99.9")
    );
    let alerts = &groups[2].rules;
    assert_eq!(alerts.len(), 2);
    let GeneratedRule::Alerting {
        alert,
        expr,
        labels: l,
        annotations,
    } = &alerts[0]
    else {
        panic!("alert")
    };
    assert_eq!(alert, "SophiaAvailabilityAlert");
    assert!(expr.starts_with("(\n    max(slo:sli_error:ratio_rate5m{sloth_id=\"sophia-ai-availability\", sloth_service=\"sophia-ai\", sloth_slo=\"availability\"} > (14.4 * 0.0009999999999999432)) without (sloth_window)\n    and\n"), "{expr}");
    assert!(expr.contains("ratio_rate6h{sloth_id=\"sophia-ai-availability\", sloth_service=\"sophia-ai\", sloth_slo=\"availability\"} > (6 * 0.0009999999999999432))"));
    assert_eq!(
        *l,
        labels(&[("severity", "critical"), ("sloth_severity", "page")])
    );
    assert_eq!(
        annotations.get("summary").map(String::as_str),
        Some("Sophia AI availability is below SLO")
    );
    assert_eq!(
        annotations.get("title").map(String::as_str),
        Some(
            "(page) {{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is too fast."
        )
    );
    let GeneratedRule::Alerting {
        expr, labels: l, ..
    } = &alerts[1]
    else {
        panic!("alert")
    };
    assert!(expr.contains("ratio_rate3d{") && expr.contains("> (1 * 0.0009999999999999432)"));
    assert_eq!(*l, labels(&[("sloth_severity", "ticket")]));
}

#[test]
fn sloth_rejects_what_the_plan_writes() {
    // Goal: Sloth's validation reasons. Method: the plan's own queries (hard-coded [5m], no
    // {{.window}}), an SLO without alert name, an objective out of range.
    let mut slo = sophia_availability();
    slo.sli = Sli::Events {
        error_query: "sum(rate(http_requests_total{status=~\"5..\"}[5m]))".to_string(),
        total_query: "sum(rate(http_requests_total[5m]))".to_string(),
    };
    let err = generate(&slo).expect_err("no window variable");
    assert!(
        err.to_string()
            .contains("template must contain the {{ .window }} variable"),
        "{err}"
    );
    let mut slo = sophia_availability();
    slo.page_alert.name.clear();
    assert!(
        generate(&slo)
            .expect_err("no name")
            .to_string()
            .contains("page alert: alert name is required")
    );
    let mut slo = sophia_availability();
    slo.objective_percent = 0.0;
    assert!(generate(&slo).is_err());
    let mut slo = sophia_availability();
    slo.ticket_alert.disable = true;
    slo.page_alert.disable = true;
    assert_eq!(generate(&slo).expect("alerts disabled")[2].rules.len(), 0);
}

#[test]
fn generated_rule_file_loads_and_matches_the_golden_file() {
    // Goal: the printed rule file is valid for the rule loader (and promtool, through the
    // fixtures that use it) and stays byte-stable. Method: parse it; compare with
    // fixtures/promtool/slo/sophia-availability.rules.yaml (UPDATE_GOLDEN=1 rewrites it).
    let text = to_rule_file(&generate(&sophia_availability()).expect("valid SLO"));
    let groups = crate::promql::rules::parse_rule_file(Path::new("generated.yaml"), &text, 60_000)
        .expect("loads");
    assert_eq!(groups.len(), 3);
    assert_eq!(
        groups.iter().map(|g| g.rules.len()).sum::<usize>(),
        8 + 7 + 2
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/promtool/slo/sophia-availability.rules.yaml");
    let header = "# Generated by twin's Sloth model (sim/promql/slo.rs) for the plan's availability SLO,\n# with {{.window}} in its queries. UPDATE_GOLDEN=1 cargo test rewrites it.\n";
    let want = format!("{header}{text}");
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&golden, &want).expect("write golden");
    }
    let have =
        std::fs::read_to_string(&golden).expect("golden file exists (UPDATE_GOLDEN=1 creates it)");
    assert_eq!(have, want);
}

#[test]
fn budget_over_a_run_is_burn_rate_times_run_share() {
    // Goal: budget arithmetic. Method: 1 hour at 2% errors on a 99.9% SLO burns at 20x and
    // spends 20/720 of the 30-day budget; the series form agrees with the event form.
    let by_events = budget_from_events(200.0, 10_000.0, HOUR_MS, 99.9, 30);
    assert!((by_events.burn_rate - 20.0).abs() < 1e-9);
    assert!((by_events.budget_consumed_ratio - 20.0 / 720.0).abs() < 1e-9);
    let by_series =
        budget_from_ratio_series(&[(0, 0.02), (30 * MINUTE_MS, 0.02)], HOUR_MS, 99.9, 30);
    assert!((by_series.budget_consumed_ratio - by_events.budget_consumed_ratio).abs() < 1e-12);
    let idle = budget_from_ratio_series(&[(0, f64::NAN)], HOUR_MS, 99.9, 30);
    assert_eq!(idle.budget_consumed_ratio, 0.0);
    assert_eq!(
        budget_from_events(0.0, 0.0, HOUR_MS, 99.9, 30).burn_rate,
        0.0
    );
}
