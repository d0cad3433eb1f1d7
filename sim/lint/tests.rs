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
    // The events form: error_query counting the fast buckets over total_query.
    let findings = lint_fixture("slo-inverted-ratio/bad-events", None);
    assert!(
        findings
            .iter()
            .any(|f| f.check == "slo-inverted-ratio" && f.field.ends_with("errorQuery")),
        "{findings:#?}"
    );
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
fn an_allowed_principal_no_workload_runs_as_is_a_warning() {
    // Goal: an ALLOW principal that no Deployment of its namespace presents is found.
    // Method: bad allows sa/frontend while the frontend runs as `default`; good sets the account.
    check(
        "authorization-principal-matches-nothing",
        Severity::Warning,
        None,
    );
}

#[test]
fn fixed_replicas_under_an_hpa_and_argo_self_heal_is_a_warning() {
    // Goal: Argo CD selfHeal resetting an HPA-scaled Deployment's replicas is found.
    // Method: bad has selfHeal without ignoreDifferences; good ignores /spec/replicas.
    check("hpa-fights-argo-self-heal", Severity::Warning, None);
}

#[test]
fn a_service_whose_selector_matches_no_deployment_is_an_error() {
    // Goal: a Service without endpoints is found. Method: bad selects app=api, good app=web.
    check("service-selects-no-pod", Severity::Error, None);
}

#[test]
fn a_destination_rule_for_a_host_with_no_service_is_a_warning() {
    // Goal: a DestinationRule whose host is no Service is found.
    // Method: bad host `api`; good host `web.shop` (the name.namespace form).
    check("destination-rule-host-unknown", Severity::Warning, None);
}

#[test]
fn an_hpa_scaling_a_missing_deployment_is_an_error() {
    // Goal: an HPA whose scaleTargetRef names nothing is found. Method: bad targets `api`.
    check("hpa-target-missing", Severity::Error, None);
}

#[test]
fn a_pod_no_node_admits_is_an_error() {
    // Goal: a nodeSelector no node of the topology satisfies is found.
    // Method: bad selects disktype=ssd, which no node has; good selects nothing.
    check("no-node-admits-pod", Severity::Error, THREE_NODES);
}

#[test]
fn a_container_without_the_request_a_quota_tracks_is_an_error() {
    // Goal: quota on requests.cpu rejects pods whose containers set no cpu request.
    // Method: bad requests only memory; good requests both.
    check("quota-requires-requests", Severity::Error, None);
}

#[test]
fn the_default_max_ejection_percent_with_few_hosts_never_ejects() {
    // Goal: Envoy's default 10 % with 2 hosts allows no ejection (mesh.md §3.4).
    // Method: bad leaves maxEjectionPercent unset; good sets 50.
    check("outlier-detection-never-ejects", Severity::Warning, None);
}

#[test]
fn min_health_percent_is_explained_as_the_panic_threshold() {
    // Goal: minHealthPercent is explained as Envoy's healthy_panic_threshold.
    // Method: bad sets it (30, with maxEjectionPercent 50: panic never starts); good leaves it out.
    check("istio-field-meaning", Severity::Info, None);
    let findings = lint_fixture("istio-field-meaning/bad", None);
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("panic mode never starts")),
        "{findings:#?}"
    );
}

#[test]
fn an_expression_that_does_not_parse_is_an_error() {
    // Goal: an invalid PromQL expression is reported, not skipped (the loader checks rule files;
    // dashboards reach the lint as written). Method: a dashboard query lacking a `)`.
    check("promql-parse-error", Severity::Error, None);
}

#[test]
fn an_argo_source_path_outside_the_linted_files_is_a_warning() {
    // Goal: an Application syncing a folder none of the linted files is in is found.
    // Method: bad syncs `deploy` from a folder without it; good lives in `good/deploy/`.
    check("argo-path-not-in-inventory", Severity::Warning, None);
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

#[test]
fn every_loadable_fixture_lints_without_panicking() {
    // Goal: the checks hold up on inputs written for other purposes (other kinds, plain Sloth
    // files, PrometheusRules, odd shapes). Method: lint each file of fixtures/manifests/ok and
    // every lint fixture with each topology; every finding must name a check and a fix.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("fixtures/manifests/ok"))
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"));
    files.sort();
    for file in files {
        let Ok(inventory) = crate::manifests::load_file(&file) else {
            continue;
        };
        for finding in lint(&inventory, None) {
            assert!(
                !finding.check.is_empty() && !finding.fix.is_empty(),
                "{finding:?}"
            );
        }
    }
    let topologies = [THREE_NODES, TWO_GPU_CLASSES, None];
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("fixtures/lint"))
        .expect("fixtures/lint")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        for case in ["bad", "good"] {
            let name = format!(
                "{}/{case}",
                dir.file_name().expect("a name").to_string_lossy()
            );
            for topology in topologies {
                let _ = lint_fixture(&name, topology);
            }
        }
    }
}

/// A one-container Deployment `web` in `shop`, one pod per node, requesting `cpu_milli`.
fn spread_workload(model: &mut super::model::Model, replicas: i32, cpu_milli: i128) {
    use super::model::{Container, ObjectRef, Source, Workload};
    let src = model.add_source(Source {
        object: ObjectRef {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
        },
        origin: crate::diag::Location {
            file: "web.yaml".into(),
            document: 1,
            line: 1,
            column: 1,
        },
        positions: None,
        path_prefix: String::new(),
    });
    let labels: super::model::Labels = [("app".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    model.workloads.push(Workload {
        src,
        namespace: "shop".into(),
        name: "web".into(),
        replicas: Some(replicas),
        pod_labels: labels.clone(),
        hostname_anti_affinity: vec![LabelSelector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }],
        containers: vec![Container {
            name: "web".into(),
            field: "spec.template.spec.containers[0]".into(),
            image: "web:1".into(),
            requests_milli: [
                ("cpu".to_string(), cpu_milli),
                ("memory".to_string(), 1 << 30),
            ]
            .into_iter()
            .collect(),
            has_liveness_probe: true,
            has_readiness_probe: true,
            ..Default::default()
        }],
        ..Default::default()
    });
}

proptest::proptest! {
    #[test]
    fn anti_affinity_is_reported_exactly_when_replicas_exceed_eligible_nodes(
        replicas in 0i32..20,
        n_nodes in 0usize..8,
        n_tainted in 0usize..4,
    ) {
        // Goal: the anti-affinity error holds exactly when the replicas outnumber the nodes the
        // pod can use. Method: untainted nodes are eligible, tainted ones are not (no toleration).
        use super::model::{Model, Node};
        let mut model = Model::default();
        spread_workload(&mut model, replicas, 500);
        let mut nodes = Vec::new();
        for idx in 0..n_nodes + n_tainted {
            let taints = if idx < n_nodes {
                Vec::new()
            } else {
                vec![Taint { key: "dedicated".into(), value: "gpu".into(), effect: "NoSchedule".into() }]
            };
            nodes.push(Node {
                name: format!("node-{idx}"),
                taints,
                allocatable_milli: [("cpu".to_string(), 4000), ("memory".to_string(), 16i128 << 40)].into_iter().collect(),
                ..Default::default()
            });
        }
        model.nodes = Some(nodes);
        let findings = super::lint_model(&model);
        let reported = findings.iter().any(|f| f.check == "anti-affinity-exceeds-nodes");
        proptest::prop_assert_eq!(reported, i64::from(replicas.max(0)) > n_nodes as i64);
    }

    #[test]
    fn the_quota_error_holds_exactly_when_the_ceiling_does_not_fit(
        replicas in 1i32..30,
        cpu_milli in 1i128..4000,
        quota_cpu_milli in 1i128..40_000,
    ) {
        // Goal: quota-blocks-hpa-ceiling is raised exactly when replicas x request > hard.
        // Method: one Deployment without HPA against a requests.cpu quota.
        use super::model::{Model, ObjectRef, Quota, Source};
        let mut model = Model::default();
        spread_workload(&mut model, replicas, cpu_milli);
        let src = model.add_source(Source {
            object: ObjectRef { kind: "ResourceQuota".into(), namespace: "shop".into(), name: "q".into() },
            origin: Default::default(),
            positions: None,
            path_prefix: String::new(),
        });
        model.quotas.push(Quota {
            src,
            namespace: "shop".into(),
            name: "q".into(),
            hard_milli: [("requests.cpu".to_string(), quota_cpu_milli)].into_iter().collect(),
        });
        let findings = super::lint_model(&model);
        let reported = findings.iter().any(|f| f.check == "quota-blocks-hpa-ceiling");
        proptest::prop_assert_eq!(reported, i128::from(replicas) * cpu_milli > quota_cpu_milli);
    }
}
