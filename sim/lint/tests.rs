//! Unit tests of the checks: each check has a fixture folder that triggers it (`bad/`) and one
//! that does not (`good/`) under `fixtures/lint/<check>/`; the PromQL helpers are tested on
//! expressions.

use std::path::Path;

use super::model::{LabelSelector, Requirement, Taint, Toleration};
use super::{Finding, lint, promql};
use crate::diag::Severity;
use crate::manifests::{load_dir, topology::load_topology};

/// Lints a fixture folder, with a topology file of `fixtures/lint/` when named.
fn lint_fixture(dir: &str, topology: Option<&str>) -> Vec<Finding> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lint");
    let inventory =
        load_dir(root.join(dir)).unwrap_or_else(|err| panic!("fixture {dir} loads: {err:?}"));
    let topology = topology.map(|name| {
        load_topology(root.join(name))
            .unwrap_or_else(|err| panic!("topology {name} loads: {err:?}"))
    });
    lint(&inventory, topology.as_ref())
}

/// The one helper of this area: `bad/` raises `check` with `severity`, `good/` does not raise it.
fn check(check: &str, severity: Severity, topology: Option<&str>) {
    let bad = lint_fixture(&format!("{check}/bad"), topology);
    let hits: Vec<&Finding> = bad.iter().filter(|f| f.check == check).collect();
    assert!(!hits.is_empty(), "{check}/bad raises {check}; got {bad:#?}");
    assert!(
        hits.iter().all(|f| f.severity == severity),
        "{check} is a {severity}: {hits:#?}"
    );
    assert!(
        hits.iter().all(|f| f.location.line > 0),
        "{check} points at a line: {hits:#?}"
    );
    let good = lint_fixture(&format!("{check}/good"), topology);
    let false_hits: Vec<&Finding> = good.iter().filter(|f| f.check == check).collect();
    assert!(
        false_hits.is_empty(),
        "{check}/good raises nothing of {check}: {false_hits:#?}"
    );
}

const THREE_NODES: Option<&str> = Some("topology-3-general.yaml");
const TWO_GPU_CLASSES: Option<&str> = Some("topology-a100-h100.yaml");

#[test]
fn a_subset_whose_labels_no_pod_carries_is_an_error() {
    // Goal: a DestinationRule subset selecting no pod of its Service is found.
    // Method: bad subset wants version=stable, the pods carry version=v1; good wants v1.
    check("subset-selects-no-pod", Severity::Error, None);
}

#[test]
fn a_route_to_a_missing_host_or_subset_is_an_error() {
    // Goal: VirtualService destinations that reach nothing are found.
    // Method: bad routes to an undefined subset and an absent Service; good routes to a
    // defined subset through the host's cluster.local name.
    check("route-to-nothing", Severity::Error, None);
}

#[test]
fn hostname_anti_affinity_above_the_eligible_nodes_is_an_error() {
    // Goal: an HPA ceiling above the nodes a one-per-node pod can use is found.
    // Method: 3 untainted nodes (the GPU pool is tainted); bad maxReplicas 5, good 3.
    check("anti-affinity-exceeds-nodes", Severity::Error, THREE_NODES);
}

#[test]
fn without_a_topology_anti_affinity_states_the_nodes_needed() {
    // Goal: without a topology the check still says how many nodes are needed.
    // Method: lint the bad folder with no topology and read the warning.
    let findings = lint_fixture("anti-affinity-exceeds-nodes/bad", None);
    let hit = findings
        .iter()
        .find(|f| f.check == "anti-affinity-exceeds-nodes")
        .expect("a finding");
    assert_eq!(hit.severity, Severity::Warning);
    assert!(
        hit.message.contains("at least 5 schedulable nodes"),
        "{}",
        hit.message
    );
}

#[test]
fn a_rollout_that_must_surge_onto_full_nodes_is_an_error() {
    // Goal: maxUnavailable 0 with one pod per node and every eligible node used stalls a rollout.
    // Method: 3 replicas on 3 eligible nodes; bad maxUnavailable 0, good 1.
    check("rollout-cannot-surge", Severity::Error, THREE_NODES);
}

#[test]
fn a_quota_below_the_hpa_ceiling_is_an_error() {
    // Goal: HPA ceiling x requests above the namespace quota is found, per Deployment and summed.
    // Method: bad 10 x 2 CPU (plus a 2-replica worker) against 8 CPU; good 2 x 2 + 2 x 2.
    check("quota-blocks-hpa-ceiling", Severity::Error, None);
    let findings = lint_fixture("quota-blocks-hpa-ceiling/bad", None);
    let messages: Vec<&str> = findings
        .iter()
        .filter(|f| f.check == "quota-blocks-hpa-ceiling")
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("10 x 2 requests.cpu per pod = 20") && m.contains("beyond 4")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("needs requests.cpu 24 (web 10 x 2 + worker 2 x 2)")),
        "{messages:#?}"
    );
}

#[test]
fn a_pods_metric_without_an_adapter_is_an_error() {
    // Goal: an HPA Pods metric with nothing serving custom.metrics.k8s.io is found.
    // Method: bad has no adapter; good adds a prometheus-adapter Deployment.
    check("hpa-metric-without-adapter", Severity::Error, None);
}

#[test]
fn a_per_hour_annotation_over_a_rate_is_an_error() {
    // Goal: `/hour` stated over `sum(rate(x[1h]))` (per second) is found, with the real threshold.
    // Method: bad is the plan's HighLLMCosts shape; good multiplies by 3600.
    check("alert-unit-mismatch", Severity::Error, None);
    let findings = lint_fixture("alert-unit-mismatch/bad", None);
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("360000 per hour")),
        "{findings:#?}"
    );
}

#[test]
fn a_bucket_over_count_error_ratio_is_an_error() {
    // Goal: a Sloth raw error ratio that computes the good ratio is found.
    // Method: bad divides le="1" buckets by the count; good takes 1 minus that.
    check("slo-inverted-ratio", Severity::Error, None);
}

#[test]
fn an_sli_query_without_the_window_placeholder_is_an_error() {
    // Goal: Sloth rejects SLI queries without `{{ .window }}`; the lint says so first.
    // Method: bad hard-codes [5m]; good uses the placeholder.
    check("slo-query-without-window", Severity::Error, None);
}

#[test]
fn snake_case_fields_under_the_crd_header_are_an_error() {
    // Goal: plain-spec spelling under the sloth.slok.dev/v1 header is found.
    // Method: bad writes error_query/total_query/page_alert; good the camelCase names.
    check("sloth-field-case", Severity::Error, None);
}

#[test]
fn a_latest_image_with_if_not_present_is_a_warning() {
    // Goal: a moving tag that nodes never re-pull is found.
    // Method: bad `:latest` + IfNotPresent; good a version tag.
    check("image-latest-if-not-present", Severity::Warning, None);
}

#[test]
fn a_gpu_deployment_without_probes_is_a_warning() {
    // Goal: GPU pods without liveness/readiness probes are found. Method: bad has none, good both.
    check("gpu-pod-without-probes", Severity::Warning, None);
}

#[test]
fn a_node_selector_leaving_out_a_gpu_class_is_a_warning() {
    // Goal: a GPU class of the topology that the GPU Deployment cannot use is found.
    // Method: A100 + H100 nodes; bad selects class A100, good selects the shared gpu label.
    check(
        "node-selector-excludes-gpu-class",
        Severity::Warning,
        TWO_GPU_CLASSES,
    );
}

#[test]
fn consecutive_errors_is_reported_with_what_really_runs() {
    // Goal: the ignored `consecutiveErrors` is found and the message says what Envoy runs.
    // Method: bad sets consecutiveErrors, good consecutive5xxErrors; read the message.
    check("istio-ignored-field", Severity::Warning, None);
    let findings = lint_fixture("istio-ignored-field/bad", None);
    let hit = findings
        .iter()
        .find(|f| f.check == "istio-ignored-field")
        .expect("a finding");
    assert!(hit.message.contains("since Istio 1.7"), "{}", hit.message);
    assert!(
        hit.message.contains("consecutive_5xx=5 at 100%"),
        "{}",
        hit.message
    );
    assert!(
        hit.message.contains("consecutive_gateway_failure is off"),
        "{}",
        hit.message
    );
}

#[test]
fn a_series_no_scrape_job_produces_is_an_error() {
    // Goal: a kube-state-metrics series with no such job, and a job matcher no job sets, are found.
    // Method: bad reads kube_* and matches job="web" under a labelmap pods job; good matches app.
    check("series-never-produced", Severity::Error, None);
    let findings = lint_fixture("series-never-produced/bad", None);
    let messages: Vec<&str> = findings
        .iter()
        .filter(|f| f.check == "series-never-produced")
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("kube-state-metrics")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("job=\"web\"") && m.contains("app=\"web\"")),
        "{messages:#?}"
    );
}

#[test]
fn a_denominator_that_is_zero_without_a_limit_is_a_warning() {
    // Goal: dividing by container_spec_memory_limit_bytes (0 without a limit) is found.
    // Method: bad divides by it; good divides by `(limit > 0)`.
    check("zero-denominator", Severity::Warning, None);
}

#[test]
fn a_priority_class_or_service_account_not_defined_is_a_warning() {
    // Goal: references to objects the inventory lacks are found.
    // Method: bad names a PriorityClass and a ServiceAccount; good defines both.
    check("reference-undefined", Severity::Warning, None);
}

#[test]
fn from_and_to_in_separate_allow_rules_is_a_warning() {
    // Goal: an ALLOW policy whose sources and operations sit in separate (ORed) rules is found.
    // Method: bad splits them; good puts them in one rule.
    check("authorization-rules-split", Severity::Warning, None);
}

#[test]
fn fixed_replicas_under_an_hpa_and_argo_self_heal_is_a_warning() {
    // Goal: Argo CD selfHeal resetting an HPA-scaled Deployment's replicas is found.
    // Method: bad has selfHeal without ignoreDifferences; good ignores /spec/replicas.
    check("hpa-fights-argo-self-heal", Severity::Warning, None);
}

#[test]
fn findings_come_out_in_the_same_order_every_time() {
    // Goal: determinism of the output. Method: lint the plan twice and compare.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inventory = load_dir(root.join("fixtures/sophia")).expect("the plan loads");
    let topology =
        load_topology(root.join("fixtures/sophia/topology.yaml")).expect("the topology loads");
    let first = lint(&inventory, Some(&topology));
    let second = lint(&inventory, Some(&topology));
    assert_eq!(first, second);
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| {
        (std::cmp::Reverse(a.severity), &a.location)
            .cmp(&(std::cmp::Reverse(b.severity), &b.location))
    });
    assert_eq!(first, sorted, "errors first, then by position");
}

#[test]
fn label_selector_expressions_follow_apimachinery() {
    // Goal: In/NotIn/Exists/DoesNotExist behave as in Kubernetes.
    // Method: evaluate each operator on a label set with and without the key.
    let labels = [("app".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    let req = |op: &str, values: &[&str]| Requirement {
        key: "app".into(),
        operator: op.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    assert!(req("In", &["web", "api"]).matches(&labels));
    assert!(!req("NotIn", &["web"]).matches(&labels));
    assert!(req("Exists", &[]).matches(&labels));
    assert!(!req("DoesNotExist", &[]).matches(&labels));
    assert!(req("NotIn", &["web"]).matches(&Default::default()));
    let empty = LabelSelector::default();
    assert!(
        empty.matches(&labels),
        "an empty selector matches everything"
    );
}

#[test]
fn a_toleration_matches_taints_as_the_scheduler_does() {
    // Goal: the toleration test of kubernetes.md §2.3. Method: Exists, Equal and effect cases.
    let taint = Taint {
        key: "nvidia.com/gpu".into(),
        value: String::new(),
        effect: "NoSchedule".into(),
    };
    let exists = Toleration {
        key: "nvidia.com/gpu".into(),
        operator: "Exists".into(),
        ..Default::default()
    };
    assert!(exists.tolerates(&taint));
    let wrong_effect = Toleration {
        effect: "NoExecute".into(),
        ..exists.clone()
    };
    assert!(!wrong_effect.tolerates(&taint));
    let equal_other = Toleration {
        key: "nvidia.com/gpu".into(),
        operator: "Equal".into(),
        value: "x".into(),
        effect: String::new(),
    };
    assert!(!equal_other.tolerates(&taint));
}

#[test]
fn a_sum_of_rates_over_an_hour_is_still_per_second() {
    // Goal: the plan's HighLLMCosts computes dollars per second whatever the range.
    // Method: the unit of `sum(rate(x[1h])) > 100` is per second with factor 1.
    let expr = promql::parse("sum(rate(llm_api_cost_dollars[1h])) > 100").unwrap();
    assert_eq!(
        promql::time_unit(&expr),
        promql::TimeUnit::PerSecond { factor: 1.0 }
    );
    let per_hour = promql::parse("sum(rate(llm_api_cost_dollars[1h])) * 3600 > 100").unwrap();
    assert_eq!(
        promql::time_unit(&per_hour),
        promql::TimeUnit::PerSecond { factor: 3600.0 }
    );
}

#[test]
fn a_ratio_of_rates_is_not_a_rate() {
    // Goal: an error ratio is dimensionless. Method: rate / rate gives NotARate.
    let expr = promql::parse("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.05").unwrap();
    assert_eq!(promql::time_unit(&expr), promql::TimeUnit::NotARate);
}

#[test]
fn bucket_under_a_bound_over_the_count_is_a_good_ratio() {
    // Goal: detect the plan's inverted latency SLI. Method: le="1" bucket over _count.
    let expr = promql::parse("sum(rate(h_bucket{le=\"1\"}[5m])) / sum(rate(h_count[5m]))").unwrap();
    assert_eq!(promql::good_ratio_bucket(&expr).as_deref(), Some("1"));
    let errors =
        promql::parse("sum(rate(h_count[5m])) - sum(rate(h_bucket{le=\"1\"}[5m]))").unwrap();
    assert_eq!(promql::good_ratio_bucket(&errors), None);
}

#[test]
fn or_vector_zero_in_a_denominator_is_reported() {
    // Goal: `count(x) or vector(0)` as a denominator is zero by construction.
    // Method: the reason names the `or vector(0)`; a plain gauge denominator has none.
    let expr = promql::parse("count(a) / (count(b) or vector(0))").unwrap();
    let (_, rhs) = promql::divisions(&expr).remove(0);
    assert!(
        promql::zero_denominator_reason(&rhs)
            .unwrap()
            .contains("vector(0)")
    );
    let gauges = promql::parse("a / b").unwrap();
    let (_, rhs) = promql::divisions(&gauges).remove(0);
    assert_eq!(promql::zero_denominator_reason(&rhs), None);
}

#[test]
fn the_window_placeholder_parses() {
    // Goal: Sloth templates can be analysed. Method: parse a query holding `{{ .window }}`.
    assert!(promql::parse("sum(rate(x[{{ .window }}]))").is_ok());
    assert!(promql::has_window_placeholder("rate(x[{{.window}}])"));
    assert!(!promql::has_window_placeholder("rate(x[5m])"));
}
