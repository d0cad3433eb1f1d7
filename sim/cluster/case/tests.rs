use std::path::Path;

use super::locate::{Seg, locate};
use super::*;

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(Path::new("case.json"), text) {
        Err(ClusterError::Case(Diagnostics(diags))) => diags,
        Err(other) => panic!("expected case diagnostics, got {other}"),
        Ok(_) => panic!("expected the case to be refused"),
    }
}

const MINIMAL: &str = r#"{
  "nodes": [{"name": "n1", "allocatable": {"cpu": 4000, "memory": 8192, "pods": 110}}],
  "pod": {"containers": [{"requests": {"cpu": "500m", "memory": "1Gi"}}]}
}"#;

#[test]
fn a_minimal_case_reads_with_units_and_defaults() {
    // Goal: numbers are millicores/MiB, strings are quantities, hostname and namespace
    // default. Method: parse MINIMAL and inspect the model.
    let case = parse(Path::new("case.json"), MINIMAL).expect("valid");
    let node = &case.cluster.nodes()[0];
    assert_eq!(node.allocatable.memory_bytes, 8192 * MIB);
    assert_eq!(
        node.labels.get(HOSTNAME_LABEL).map(String::as_str),
        Some("n1")
    );
    assert_eq!(case.pod.requests().cpu_millis, 500);
    assert_eq!(case.pod.requests().memory_bytes, 1024 * MIB);
    assert_eq!(case.pod.namespace, "default");
    assert_eq!(case.config.kubernetes_version, KubernetesVersion::DEFAULT);
}

#[test]
fn a_one_element_array_is_accepted_and_longer_ones_are_not() {
    // Goal: Appendix B files are arrays; a case file holds one. Method: wrap MINIMAL.
    assert!(parse(Path::new("case.json"), &format!("[{MINIMAL}]")).is_ok());
    let diags = errors(&format!("[{MINIMAL}, {MINIMAL}]"));
    assert!(diags[0].message.contains("found 2"), "{}", diags[0].message);
}

#[test]
fn an_unknown_field_names_its_path_line_and_column() {
    // Goal: strict input. Method: a typo in a node field on line 3.
    let text =
        "{\n  \"nodes\": [\n    {\"name\": \"n1\", \"alocatable\": {}}\n  ],\n  \"pod\": {}\n}";
    let diags = errors(text);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].location.line, 3);
    assert_eq!(diags[0].field, "nodes[0].alocatable");
    assert!(
        diags[0].message.starts_with("unknown field `alocatable`"),
        "{}",
        diags[0].message
    );
    assert!(
        !diags[0].message.contains(" at line "),
        "location is not repeated in the message"
    );
}

#[test]
fn a_pod_bound_to_a_missing_node_points_at_its_node_field() {
    // Goal: checks after parsing still give line and column. Method: the second existing
    // pod names node n9.
    let text = r#"{
  "nodes": [{"name": "n1", "allocatable": {"cpu": 1000, "memory": 1024, "pods": 10}}],
  "existingPods": [
    {"name": "a", "node": "n1", "containers": []},
    {"name": "b",
     "node": "n9", "containers": []}
  ],
  "pod": {}
}"#;
    let diags = errors(text);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].field, "existingPods[1].node");
    assert_eq!((diags[0].location.line, diags[0].location.column), (6, 14));
    assert!(diags[0].message.contains("\"n9\", which does not exist"));
}

#[test]
fn malformed_json_and_bad_values_are_diagnostics_not_panics() {
    // Goal: every kind of bad input becomes a diagnostic. Method: truncated JSON, a bad
    // quantity, a bad version, duplicate nodes and an unknown expected field together.
    let truncated = errors("{\"nodes\": [");
    assert!(truncated[0].location.line >= 1);
    let text = r#"{
  "kubernetesVersion": "latest",
  "nodes": [
    {"name": "n1", "allocatable": {"cpu": "2x", "memory": 1, "pods": 1}},
    {"name": "n1", "allocatable": {"cpu": 1, "memory": 1, "pods": 1}}
  ],
  "pod": {"tolerations": [{"value": "x"}]},
  "expected": {"selected": "n1", "topNodes": "n1"}
}"#;
    let fields: Vec<String> = errors(text).into_iter().map(|d| d.field).collect();
    assert_eq!(
        fields,
        vec![
            "kubernetesVersion",
            "nodes[0].allocatable.cpu",
            "nodes[1].name",
            "pod.tolerations[0].operator",
            "expected.selected",
            "expected.topNodes",
        ]
    );
}

#[test]
fn a_gpu_node_advertises_devices_times_replicas() {
    // Goal: the device plugin's advertised count is derived, and a contradicting allocatable
    // is refused. Method: 2 GPUs with 4 MPS replicas.
    let text = r#"{"nodes": [{"name": "g", "allocatable": {"cpu": 1, "memory": 1, "pods": 1},
      "gpu": {"count": 2, "class": "A100", "memoryMiB": 40960, "sharing": {"strategy": "mps", "replicas": 4}}}],
      "pod": {}}"#;
    let case = parse(Path::new("case.json"), text).expect("valid");
    assert_eq!(case.cluster.nodes()[0].allocatable.get(GPU_RESOURCE), 8);
    let clash = text.replace("\"pods\": 1}", "\"pods\": 1, \"nvidia.com/gpu\": 2}");
    assert_eq!(
        errors(&clash)[0].field,
        "nodes[0].allocatable.nvidia.com/gpu"
    );
}

#[test]
fn the_locator_finds_nested_values_and_falls_back_to_the_nearest_parent() {
    // Goal: locate() walks objects and arrays. Method: a small document.
    let text = "{\"a\": [1, {\"b\": \"x\"}],\n \"c\": {\"d\": [true]}}";
    assert_eq!(
        locate(
            text,
            &[Seg::Key("a".into()), Seg::Index(1), Seg::Key("b".into())]
        ),
        (1, 17)
    );
    assert_eq!(
        locate(
            text,
            &[Seg::Key("c".into()), Seg::Key("d".into()), Seg::Index(0)]
        ),
        (2, 14)
    );
    assert_eq!(
        locate(text, &[Seg::Key("c".into()), Seg::Key("zzz".into())]),
        (2, 7)
    );
}

#[test]
fn comparison_treats_node_lists_as_sets_and_score_objects_as_subsets() {
    // Goal: compare() semantics. Method: an expected block with reordered lists and a score
    // object without the optional keys.
    let actual = serde_json::json!({
        "feasibleNodes": ["a", "b"], "topNodes": ["a"], "selectedNode": "a",
        "scores": {"a": {"NodeResourcesFit": 1, "NodeAffinity": 5, "total": 9}, "b": {"NodeResourcesFit": 0, "total": 3}},
        "unschedulable": null
    });
    let expected = serde_json::json!({
        "feasibleNodes": ["b", "a"], "selectedNode": "a",
        "scores": {"a": {"total": 9}, "b": {"total": 3}}, "unschedulable": null
    });
    assert!(compare(expected.as_object().expect("object"), &actual).is_empty());
    let wrong =
        serde_json::json!({"scores": {"a": {"total": 8}, "b": {"total": 3}}, "topNodes": ["b"]});
    let fields: Vec<String> = compare(wrong.as_object().expect("object"), &actual)
        .into_iter()
        .map(|m| m.field)
        .collect();
    assert_eq!(fields, vec!["scores.a.total", "topNodes"]);
}

#[test]
fn a_fractional_number_is_refused_with_the_units_spelled_out() {
    // Goal: a float where an integer amount is expected says what is expected. Method: cpu 0.5.
    let diags = errors(&MINIMAL.replace("\"cpu\": 4000", "\"cpu\": 0.5"));
    assert_eq!(diags[0].field, "nodes[0].allocatable.cpu");
    assert!(
        diags[0]
            .message
            .contains("cpu in millicores, memory in MiB"),
        "{}",
        diags[0].message
    );
}

#[test]
fn amounts_beyond_the_supported_range_are_refused_not_overflowed() {
    // Goal: no arithmetic overflow on hostile input. Method: an absurd cpu, memory in MiB
    // that overflows once converted to bytes, and an absurd GPU count.
    let diags = errors(&MINIMAL.replace("\"cpu\": 4000", "\"cpu\": 90000000000000000"));
    assert_eq!(diags[0].field, "nodes[0].allocatable.cpu");
    let diags = errors(&MINIMAL.replace("\"memory\": 8192", "\"memory\": 9000000000000000000"));
    assert_eq!(diags[0].field, "nodes[0].allocatable.memory");
    let gpu = MINIMAL.replace(
        "\"pods\": 110}",
        "\"pods\": 110}, \"gpu\": {\"count\": 4000000000, \"class\": \"x\", \"memoryMiB\": 1}",
    );
    assert_eq!(errors(&gpu)[0].field, "nodes[0].gpu");
}
