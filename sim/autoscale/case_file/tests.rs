use std::path::Path;

use super::locate::{Step, locate};
use super::*;

fn parse_text(text: &str) -> Result<LoadedCase, Diagnostics> {
    parse(Path::new("case.json"), text)
}

/// A valid minimal case with `spec` spliced in.
fn with_spec(spec: &str) -> String {
    format!(r#"{{"name": "t", "spec": {spec}, "currentReplicas": 3, "pods": []}}"#)
}

fn messages(result: Result<LoadedCase, Diagnostics>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.0.iter().map(|d| d.headline()).collect(),
    }
}

#[test]
fn locate_finds_nested_keys_and_indexes_by_line_and_column() {
    // Goal: a field path maps to the position of its value in the text.
    // Method: a small document with an array of objects; look up a deep field and a missing one.
    let text = "{\n  \"a\": [\n    {\"b\": 1},\n    {\"c\": \"x,}\", \"d\": 22}\n  ]\n}";
    let path = [Step::Key("a".into()), Step::Index(1), Step::Key("d".into())];
    assert_eq!(locate(text, &path), (4, 23));
    // A missing key points at the deepest object that exists.
    let missing = [
        Step::Key("a".into()),
        Step::Index(0),
        Step::Key("zz".into()),
    ];
    assert_eq!(locate(text, &missing), (3, 5));
}

#[test]
fn every_api_server_rejection_in_a_file_is_reported_together() {
    // Goal: validation collects all problems, each with its field path and upstream wording.
    // Method: one spec with min > max, a zero utilization and a bad window; count and read them.
    let spec = r#"{"minReplicas": 4, "maxReplicas": 2,
        "metrics": [{"type": "Resource", "resource": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 3601}}}"#;
    let found = messages(parse_text(&with_spec(spec)));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains(
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
    ));
    assert!(found[1].contains(
        "spec.metrics[0].target.averageUtilization: Invalid value: 0: must be greater than 0"
    ));
    assert!(found[2].contains(
        "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 3601: must be less than or equal to 3600"
    ));
}

#[test]
fn an_explicitly_empty_policy_list_is_rejected_but_a_null_one_takes_defaults() {
    // Goal: `policies: []` is an API error, `policies: null` is defaulted.
    // Method: parse both forms of the same spec.
    let empty = with_spec(r#"{"maxReplicas": 5, "behavior": {"scaleUp": {"policies": []}}}"#);
    let found = messages(parse_text(&empty));
    assert!(
        found
            .iter()
            .any(|m| m.contains("Required value: must specify at least one Policy")),
        "{found:#?}"
    );
    let null = with_spec(r#"{"maxReplicas": 5, "behavior": {"scaleUp": {"policies": null}}}"#);
    assert!(parse_text(&null).is_ok());
}

#[test]
fn an_unknown_metric_type_reaches_the_controller_instead_of_failing_the_file() {
    // Goal: the case format keeps an unusable metric type as the InvalidMetricSourceType
    // condition. Method: parse a spec with type "Custom" and check the lowered metric.
    let text = with_spec(
        r#"{"maxReplicas": 5, "metrics": [{"type": "Custom", "target": {"type": "Value", "valueMilli": 1}}]}"#,
    );
    let loaded = parse_text(&text).expect("an unknown type is not an input error");
    assert_eq!(
        loaded.case.spec.metrics,
        vec![MetricSpec::Unknown {
            type_name: "Custom".into()
        }]
    );
}

#[test]
fn no_metrics_defaults_to_eighty_percent_cpu_and_min_defaults_to_one() {
    // Goal: API defaulting of an HPA without metrics or minReplicas.
    // Method: parse a bare spec and read the lowered values.
    let loaded = parse_text(&with_spec(r#"{"maxReplicas": 5}"#)).expect("valid");
    assert_eq!(loaded.case.spec.min_replicas, 1);
    assert_eq!(
        loaded.case.spec.metrics,
        vec![MetricSpec::Resource {
            resource: "cpu".into(),
            container: None,
            target: ResourceTarget::Utilization(80)
        }]
    );
}

#[test]
fn min_replicas_zero_needs_the_scale_to_zero_gate_and_an_object_or_external_metric() {
    // Goal: minReplicas 0 follows HPAScaleToZero (off by default).
    // Method: the same spec with and without the gate.
    let spec = r#"{"minReplicas": 0, "maxReplicas": 5, "metrics": [{"type": "External", "name": "q",
        "observed": {"valuesMilli": [1]}, "target": {"type": "Value", "valueMilli": 1}}]}"#;
    let without = messages(parse_text(&with_spec(spec)));
    assert!(without.iter().any(|m| {
        m.contains("spec.minReplicas: Invalid value: 0: must be greater than or equal to 1")
    }));
    let gated = format!(
        r#"{{"name": "t", "controller": {{"featureGates": {{"HPAScaleToZero": true}}}}, "spec": {spec}, "currentReplicas": 0}}"#
    );
    assert!(parse_text(&gated).is_ok());
}

#[test]
fn the_kubernetes_version_selects_the_gate_defaults() {
    // Goal: kubernetesVersion (top level or in controller) picks the release's defaults.
    // Method: parse v1.34 in the controller block and v1.35 by default; read the gate.
    let old = r#"{"name": "t", "controller": {"kubernetesVersion": "1.34.2"}, "spec": {"maxReplicas": 5}, "currentReplicas": 1}"#;
    let loaded = parse_text(old).expect("valid");
    assert_eq!(loaded.case.version, KubernetesVersion::new(1, 34));
    assert!(!loaded.case.controller.configurable_tolerance);
    let current = parse_text(&with_spec(r#"{"maxReplicas": 5}"#)).expect("valid");
    assert_eq!(current.case.version, KubernetesVersion::CURRENT);
    assert!(current.case.controller.configurable_tolerance);
    let bad = r#"{"name": "t", "kubernetesVersion": "one", "spec": {"maxReplicas": 5}, "currentReplicas": 1}"#;
    assert!(
        messages(parse_text(bad))[0]
            .contains("kubernetesVersion: \"one\" is not a Kubernetes version")
    );
}

#[test]
fn a_wrong_type_names_the_field_path_and_position() {
    // Goal: serde errors keep serde_json's line:column and gain the field path.
    // Method: a string where an integer belongs.
    let text = "{\"name\": \"t\",\n \"spec\": {\"maxReplicas\": \"five\"}, \"currentReplicas\": 1}";
    let found = match parse_text(text) {
        Err(diagnostics) => diagnostics.0,
        Ok(_) => panic!("a string maxReplicas must not parse"),
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "spec.maxReplicas");
    assert_eq!((found[0].location.line, found[0].location.column), (2, 31));
    assert!(
        found[0]
            .message
            .starts_with("invalid type: string \"five\""),
        "{}",
        found[0].message
    );
}

#[test]
fn mismatches_list_every_differing_field_and_extra_conditions() {
    // Goal: the comparison reports each difference, including a condition the case did not expect.
    // Method: decide a scale-up case, then compare with a deliberately wrong expectation.
    let text = r#"{"name": "t", "spec": {"maxReplicas": 10, "behavior": null}, "currentReplicas": 2,
        "metricDesiredReplicas": 3, "recommendationHistory": [],
        "expected": {"desiredReplicas": 4, "conditions": {"AbleToScale": {"status": "True", "reason": "SucceededRescale"}},
                     "limitedBy": "ScaleUpLimit"}}"#;
    let loaded = parse_text(text).expect("valid");
    let decision = crate::autoscale::hpa::recommend(&loaded.case);
    let found = mismatches(&decision, loaded.expected.as_ref().expect("has expected"));
    assert_eq!(
        found,
        vec![
            "desiredReplicas: expected 4, got 3".to_string(),
            "conditions.ScalingActive: expected untouched, got True ValidMetricFound".to_string(),
            "conditions.ScalingLimited: expected untouched, got False DesiredWithinRange"
                .to_string(),
            "limitedBy: expected ScaleUpLimit, got none".to_string(),
        ]
    );
}

proptest::proptest! {
    #[test]
    fn mangled_case_text_gives_an_error_or_a_decision_never_a_panic(
        cut in 0usize..4000,
        insert in "[ -~]{0,6}",
        drop in 0usize..4,
    ) {
        // Goal: no input text makes the reader (or the decision on what it accepts) panic.
        // Method: splice printable junk into a real fixture and delete a few bytes after it;
        // parse, and decide whatever parses.
        let base = include_str!("../../../fixtures/cases/hpa/upstream-scale-down.json");
        let at = cut.min(base.len());
        let rest = (at + drop).min(base.len());
        let text = format!("{}{}{}", &base[..at], insert, &base[rest..]);
        if let Ok(loaded) = parse_text(&text) {
            let decision = crate::autoscale::hpa::recommend(&loaded.case);
            proptest::prop_assert!(decision.desired_replicas >= 0);
        }
    }
}
