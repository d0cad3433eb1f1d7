use super::*;

#[test]
fn expanding_notation_matches_promtool() {
    // Goal: the series notation of §11.1. Method: each form against its hand expansion.
    assert_eq!(
        expand_values("1 2 3").unwrap(),
        vec![Some(1.0), Some(2.0), Some(3.0)]
    );
    assert_eq!(
        expand_values("0+10x3").unwrap(),
        vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(
        expand_values("10-2x2").unwrap(),
        vec![Some(10.0), Some(8.0), Some(6.0)]
    );
    assert_eq!(expand_values("5x2").unwrap(), vec![Some(5.0); 3]);
    assert_eq!(
        expand_values("_ 1 _x3").unwrap(),
        vec![None, Some(1.0), None, None, None]
    );
    assert_eq!(
        expand_values("-1+1x1").unwrap(),
        vec![Some(-1.0), Some(0.0)]
    );
    assert_eq!(
        expand_values("1e3 Inf -Inf").unwrap(),
        vec![Some(1000.0), Some(f64::INFINITY), Some(f64::NEG_INFINITY)]
    );
    let stale = expand_values("1 stale").unwrap();
    assert_eq!(stale[1].map(f64::to_bits), Some(rules::STALE_NAN_BITS));
    assert!(
        expand_values("NaN").unwrap()[0]
            .is_some_and(|v| v.is_nan() && v.to_bits() != rules::STALE_NAN_BITS)
    );
    // Repeated addition, not a + i*b: 0.1 added three times is 0.30000000000000004.
    assert_eq!(expand_values("0+0.1x3").unwrap()[3], Some(0.1 + 0.1 + 0.1));
    assert!(expand_values("1+x3").is_err());
    assert!(expand_values("abc").is_err());
    assert!(expand_values("1x").is_err());
    // Bad input is an error, not an enormous allocation.
    assert!(expand_values("1x99999999999").is_err());
    assert!(expand_values("_x99999999999").is_err());
}

#[test]
fn series_labels_parse_like_parse_metric() {
    // Goal: `name{a="b"}`, `{...}` and bare names. Method: parse and compare maps.
    let l = parse_series_labels("up{job=\"a\", instance='x:1'}").unwrap();
    assert_eq!(l.get("__name__").map(String::as_str), Some("up"));
    assert_eq!(l.get("instance").map(String::as_str), Some("x:1"));
    assert_eq!(parse_series_labels("{}").unwrap(), LabelSet::new());
    assert_eq!(parse_series_labels("job:rate5m").unwrap().len(), 1);
    assert!(parse_series_labels("up{job=a}").is_err());
    assert!(parse_series_labels("up{job=\"a\"").is_err());
    assert_eq!(parse_series_labels("").unwrap(), LabelSet::new());
    assert!(parse_series_labels("{").is_err());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file writes");
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twin-promtool-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const RULES: &str = "groups:\n- name: g\n  interval: 5m\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n    labels:\n      severity: page\n    annotations:\n      summary: '{{ $labels.job }} down'\n";

#[test]
fn alert_test_sees_firing_alerts_at_each_step_not_the_group_interval() {
    // Goal: §11.2: every group runs at evaluation_interval from 0 (its 5m interval ignored);
    // pending alerts are invisible. Method: up=0 from 30s, for 1m: pending at 1m, firing at 1m30s.
    let dir = temp_dir("steps");
    write(&dir, "rules.yaml", RULES);
    let test = "rule_files: [rules.yaml]\nevaluation_interval: 30s\ntests:\n- interval: 30s\n  input_series:\n  - series: 'up{job=\"a\"}'\n    values: '1 0x10'\n  alert_rule_test:\n  - eval_time: 1m\n    alertname: Down\n  - eval_time: 1m45s\n    alertname: Down\n    exp_alerts:\n    - exp_labels: {severity: page, job: a}\n      exp_annotations: {summary: a down}\n";
    let path = write(&dir, "ok.yaml", test);
    let report = test_file(&path);
    assert!(report.passed(), "{}", report.render());
    let wrong = test.replace("eval_time: 1m\n", "eval_time: 1m30s\n");
    let path = write(&dir, "bad.yaml", &wrong);
    let report = test_file(&path);
    let text = report.render();
    assert!(!report.passed());
    assert!(text.contains("alertname: Down, time: 1m30s, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"Down\", job=\"a\", severity=\"page\"}\n              Annotations:{summary=\"a down\"}\n            ]"), "{text}");
}

#[test]
fn expr_test_reads_input_and_rule_output_with_exact_values() {
    // Goal: promql_expr_test runs after all steps and sees ALERTS; values compare exactly.
    let dir = temp_dir("expr");
    write(&dir, "rules.yaml", RULES);
    let test = "rule_files: [rules.yaml]\nevaluation_interval: 30s\ntests:\n- interval: 30s\n  input_series:\n  - series: 'up{job=\"a\"}'\n    values: '1 0x10'\n  promql_expr_test:\n  - expr: ALERTS\n    eval_time: 2m\n    exp_samples:\n    - labels: 'ALERTS{alertname=\"Down\", alertstate=\"firing\", job=\"a\", severity=\"page\"}'\n      value: 1\n  - expr: sum(up) + 0.5\n    eval_time: 0s\n    exp_samples:\n    - labels: '{}'\n      value: 1.5\n";
    let report = test_file(&write(&dir, "expr.yaml", test));
    assert!(report.passed(), "{}", report.render());
    let report = test_file(&write(
        &dir,
        "expr-bad.yaml",
        &test.replace("value: 1.5", "value: 1.25"),
    ));
    assert!(
        report
            .render()
            .contains("exp: {} 1.25E+00\n        got: {} 1.5E+00"),
        "{}",
        report.render()
    );
}

#[test]
fn malformed_test_files_name_the_line() {
    // Goal: bad input is a diagnostic with file:line:col (exit 2 in the CLI). Method: an
    // unknown key, a bad duration and bad series notation.
    let dir = temp_dir("malformed");
    write(&dir, "rules.yaml", RULES);
    let unknown = write(
        &dir,
        "u.yaml",
        "rule_files: [rules.yaml]\ntests:\n- interval: 1m\n  bogus: 1\n",
    );
    let err = load_test_file(&unknown).expect_err("unknown key");
    let diags = err.diagnostics();
    assert_eq!(diags.0[0].location.line, 4, "{diags}");
    assert_eq!(diags.0[0].field, "tests[0].bogus", "{diags}");
    let bad_values = write(
        &dir,
        "v.yaml",
        "rule_files: [rules.yaml]\ntests:\n- interval: 1m\n  input_series:\n  - series: up\n    values: '1 2 zz'\n",
    );
    let err = load_test_file(&bad_values).expect_err("bad values");
    let diags = err.diagnostics();
    assert_eq!(
        (diags.0[0].location.line, diags.0[0].field.as_str()),
        (6, "tests[0].input_series[0].values"),
        "{diags}"
    );
    let missing = write(&dir, "m.yaml", "rule_files: [nope.yaml]\ntests: []\n");
    assert!(load_test_file(&missing).is_err());
}

#[test]
fn group_eval_order_lets_a_later_group_read_an_earlier_groups_output() {
    // Goal: groups run in group_eval_order at each step (§11.2). Method: an alert on a
    // recorded series is firing at its first step only when the recording group runs first.
    let dir = temp_dir("order");
    write(
        &dir,
        "rules.yaml",
        "groups:\n- name: alerts\n  rules:\n  - alert: High\n    expr: rec > 1\n- name: rec\n  rules:\n  - record: rec\n    expr: x\n",
    );
    let body = "evaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  - series: x\n    values: '5'\n  alert_rule_test:\n  - eval_time: 0s\n    alertname: High\n    exp_alerts:\n    - exp_labels: {}\n";
    let ordered = write(
        &dir,
        "ordered.yaml",
        &format!("rule_files: [rules.yaml]\ngroup_eval_order: [rec, alerts]\n{body}"),
    );
    assert!(
        test_file(&ordered).passed(),
        "{}",
        test_file(&ordered).render()
    );
    let unordered = write(
        &dir,
        "unordered.yaml",
        &format!("rule_files: [rules.yaml]\n{body}"),
    );
    assert!(!test_file(&unordered).passed());
    let repeated = write(
        &dir,
        "repeated.yaml",
        &format!("rule_files: [rules.yaml]\ngroup_eval_order: [rec, rec]\n{body}"),
    );
    assert!(
        test_file(&repeated)
            .render()
            .contains("group name repeated in evaluation order: rec")
    );
    // An unknown name is unused, not an error (promtool 2.42).
    let unknown = write(
        &dir,
        "unknown.yaml",
        &format!("rule_files: [rules.yaml]\ngroup_eval_order: [nope, rec, alerts]\n{body}"),
    );
    assert!(
        test_file(&unknown).passed(),
        "{}",
        test_file(&unknown).render()
    );
}

#[test]
fn without_a_test_interval_all_samples_pile_up_at_zero() {
    // Goal: 2.42 has no default input interval: only the first value survives (§11.1 [ver]).
    let dir = temp_dir("nointerval");
    write(&dir, "rules.yaml", RULES);
    let test = "rule_files: [rules.yaml]\ntests:\n- input_series:\n  - series: x\n    values: '1 2 3'\n  promql_expr_test:\n  - expr: x\n    eval_time: 2m\n    exp_samples:\n    - labels: x\n      value: 1\n";
    assert!(test_file(&write(&dir, "t.yaml", test)).passed());
}
