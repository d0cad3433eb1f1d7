use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::configs::GpuSharingStrategy;
use super::quantity::parse_quantity;
use super::sloth::SloForm;
use super::topology::{TaintEffect, load_topology};
use super::*;

/// Renders what loading produced: the summary and warnings, or every diagnostic's headline.
fn render_outcome(result: &Result<Inventory, ManifestError>) -> String {
    match result {
        Ok(inventory) => {
            let mut out = format!("ok\n{}", inventory.summary());
            for warning in &inventory.warnings {
                out.push_str(&format!("{}: {}\n", warning.severity, warning.headline()));
            }
            out
        }
        Err(err) => {
            let mut out = String::from("error\n");
            for diag in err.diagnostics() {
                out.push_str(&format!("{}: {}\n", diag.severity, diag.headline()));
            }
            out
        }
    }
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it instead.
fn assert_golden(expected_path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(expected_path, actual).expect("golden files are writable when updating");
        return;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with UPDATE_GOLDEN=1 to create it",
            expected_path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from {}",
        expected_path.display()
    );
}

/// Loads `fixtures/manifests/<case>` (a file or a folder) and compares the outcome with the
/// `.expected` file beside it.
fn check(case: &str) {
    let input = Path::new("fixtures/manifests").join(case);
    let result = if input.is_dir() {
        load_dir(&input)
    } else {
        load_file(&input)
    };
    assert_golden(&input.with_extension("expected"), &render_outcome(&result));
}

/// As [`check`], for topology files: the expanded nodes, or every diagnostic.
fn check_topology(case: &str) {
    let input = Path::new("fixtures/manifests/topology").join(case);
    let actual = match load_topology(&input) {
        Ok(topology) => render_topology(&topology),
        Err(err) => {
            let mut out = String::from("error\n");
            for diag in err.diagnostics() {
                out.push_str(&format!("{}: {}\n", diag.severity, diag.headline()));
            }
            out
        }
    };
    assert_golden(&input.with_extension("expected"), &actual);
}

fn render_topology(topology: &Topology) -> String {
    let mut out = format!("ok: Kubernetes {}\n", topology.kubernetes_version);
    for node in &topology.nodes {
        let allocatable: Vec<String> = node
            .allocatable
            .iter()
            .map(|(name, q)| format!("{name}={q}"))
            .collect();
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{} [{}] {{{}}}\n",
            node.name,
            allocatable.join(" "),
            labels.join(", ")
        ));
    }
    out
}

fn sophia() -> Inventory {
    load_dir("fixtures/sophia").unwrap_or_else(|err| {
        let lines: Vec<String> = err.diagnostics().iter().map(Diagnostic::headline).collect();
        panic!("fixtures/sophia should load:\n{}", lines.join("\n"))
    })
}

// ---- the plan's own files --------------------------------------------------------------------

#[test]
fn the_sophia_fixtures_yield_exactly_the_plans_objects() {
    // Goal: every object of the plan is read, as its kind, and nothing else. Method: load the
    // folder and compare the summary's counts by kind with a hand count of the plan's files.
    let inventory = sophia();
    let summary = inventory.summary();
    let expected: BTreeMap<String, usize> = [
        ("Application", 1),
        ("AuthorizationPolicy", 1),
        ("ConfigMap", 4),
        ("Deployment", 2),
        ("DestinationRule", 1),
        ("GpuSharing", 1),
        ("GrafanaDashboard", 1),
        ("HorizontalPodAutoscaler", 1),
        ("LokiConfig", 1),
        ("Namespace", 1),
        ("PriorityClass", 2),
        ("PrometheusConfig", 1),
        ("PrometheusServiceLevel", 1),
        ("PromtailConfig", 1),
        ("ResourceQuota", 1),
        ("RuleFile", 1),
        ("Service", 1),
        ("Topology", 1),
        ("VirtualService", 1),
    ]
    .into_iter()
    .map(|(kind, count)| (kind.to_string(), count))
    .collect();
    assert_eq!(summary.by_kind, expected);
    // The plan's eleven files, the topology and the service profiles (which a manifest folder
    // skips: they are twin's own inputs).
    assert_eq!(summary.files, 13);
    assert!(
        inventory.warnings.is_empty(),
        "unexpected warnings: {:?}",
        inventory.warnings
    );
    assert!(inventory.unknown().is_empty());
    let deployments: Vec<_> = inventory
        .deployments()
        .iter()
        .map(|d| d.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(deployments, ["agno-coordinator", "mcp-agents-gpu"]);
}

#[test]
fn the_gpu_sharing_block_reads_as_mps_shared_by_four() {
    // Goal: the plan's `gpu-sharing` ConfigMap key is understood. Method: read the fixtures and
    // look at the one sharing block, and at where it says it came from.
    let inventory = sophia();
    let [sharing] = inventory.gpu_sharing() else {
        panic!("expected one GPU sharing block")
    };
    assert_eq!(sharing.strategy, GpuSharingStrategy::Mps);
    assert_eq!(sharing.replicas, 4);
    let embedded = sharing.embedded_in.as_ref().expect("read from a ConfigMap");
    assert_eq!(embedded.config_map, "gpu-scheduling-config");
    assert_eq!(embedded.key, "gpu-sharing");
    // The strategy line is line 48 of cluster-config.yaml, indented by 4.
    let location = sharing.field_location("nvidia.com/gpu.sharing.strategy");
    assert_eq!(
        (location.line, location.column, location.document),
        (48, 38, 5)
    );
}

#[test]
fn the_prometheus_config_inside_its_config_map_is_parsed() {
    // Goal: `prometheus.yml` inside the ConfigMap is read as a Prometheus config, with positions
    // in the outer file. Method: check intervals, jobs, and the line of `scrape_interval`.
    let inventory = sophia();
    let [config] = inventory.prometheus_configs() else {
        panic!("expected one Prometheus config")
    };
    assert_eq!(config.global.scrape_interval.as_deref(), Some("15s"));
    assert_eq!(config.global.evaluation_interval.as_deref(), Some("15s"));
    assert_eq!(
        config
            .global
            .external_labels
            .get("cluster")
            .map(String::as_str),
        Some("sophia-production")
    );
    assert_eq!(config.rule_files, ["/etc/prometheus/rules/*.yml"]);
    let jobs: Vec<&str> = config
        .scrape_configs
        .iter()
        .map(|job| job.job_name.as_str())
        .collect();
    assert_eq!(jobs, ["kubernetes-pods", "gpu-metrics"]);
    let pods = &config.scrape_configs[0];
    assert_eq!(pods.kubernetes_sd_configs[0].role, "pod");
    assert_eq!(pods.relabel_configs.len(), 4);
    // `regex: true` is a YAML boolean that Prometheus reads as the regex "true".
    assert_eq!(pods.relabel_configs[0].regex.as_deref(), Some("true"));
    assert_eq!(
        config.scrape_configs[1].static_configs[0].targets,
        ["nvidia-dcgm-exporter:9400"]
    );
    assert_eq!(
        config.scrape_configs[1].metric_relabel_configs[0]
            .regex
            .as_deref(),
        Some("DCGM_.*")
    );
    assert!(config.other.contains_key("alerting"));
    let location = config.field_location("global.scrape_interval");
    assert_eq!((location.line, location.column), (10, 24));
}

#[test]
fn the_rule_groups_keep_their_intervals() {
    // Goal: rule groups come out of every source with their intervals. Method: list the groups
    // of the fixtures and point at one rule's expression.
    let inventory = sophia();
    let groups = inventory.rule_groups();
    let seen: Vec<(&str, Option<&str>, usize)> = groups
        .iter()
        .map(|g| {
            (
                g.group.name.as_str(),
                g.group.interval.as_deref(),
                g.group.rules.len(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("sophia-critical", Some("30s"), 4),
            ("sophia-performance", Some("1m"), 2)
        ]
    );
    assert!(groups.iter().all(|g| g.source == RuleSource::File));
    // A `|` block's value starts on the line after `expr: |`, where the expression is.
    let high_latency = groups[1].field_location("rules[0].expr");
    assert_eq!(high_latency.line, 58);
    assert_eq!(groups[0].group.rules[0].for_duration.as_deref(), Some("5m"));
}

#[test]
fn the_dashboard_has_six_panels_with_queries() {
    // Goal: the Grafana JSON, wrapped in `dashboard`, is read. Method: count panels and targets.
    let inventory = sophia();
    let [dashboard] = inventory.dashboards() else {
        panic!("expected one dashboard")
    };
    assert_eq!(dashboard.title, "Sophia AI Production Overview");
    assert_eq!(dashboard.uid.as_deref(), Some("sophia-prod-overview"));
    assert_eq!(dashboard.panels.len(), 6);
    let targets: usize = dashboard.panels.iter().map(|p| p.targets.len()).sum();
    assert_eq!(targets, 8);
    assert_eq!(
        dashboard.panels[1].targets[2].legend_format.as_deref(),
        Some("p99")
    );
    // Paths inside the wrapper are relative to the dashboard.
    assert_eq!(dashboard.field_location("panels[2].title").line, 40);
}

#[test]
fn the_slo_has_three_objectives_and_its_snake_case_fields_are_recorded() {
    // Goal: the Sloth CRD with snake_case fields is read, not refused, and the mismatch is kept
    // for lint. Method: check objectives and the recorded field spellings.
    let inventory = sophia();
    let [slo] = inventory.slos() else {
        panic!("expected one SLO document")
    };
    assert_eq!(slo.form, SloForm::Crd);
    let objectives: Vec<(&str, f64)> = slo
        .spec
        .slos
        .iter()
        .map(|s| (s.name.as_str(), s.objective))
        .collect();
    assert_eq!(
        objectives,
        [
            ("availability", 99.9),
            ("latency", 99.0),
            ("gpu-availability", 95.0)
        ]
    );
    let mismatched: Vec<&str> = slo.mismatched_fields().map(|f| f.path.as_str()).collect();
    assert_eq!(
        mismatched,
        [
            "spec.slos[0].alerting.page_alert",
            "spec.slos[0].sli.events.error_query",
            "spec.slos[0].sli.events.total_query",
            "spec.slos[1].alerting.page_alert",
            "spec.slos[1].sli.raw.error_ratio_query",
            "spec.slos[2].sli.events.error_query",
            "spec.slos[2].sli.events.total_query",
        ]
    );
    assert_eq!(
        slo.key_position("spec.slos[1].sli.raw.error_ratio_query")
            .map(|p| p.line),
        Some(33)
    );
}

#[test]
fn every_object_keeps_its_file_document_and_field_positions() {
    // Goal: lint can point at any field. Method: look up the HPA (third document of its file)
    // and the line:column of one of its metric targets.
    let inventory = sophia();
    let [hpa] = inventory.hpas() else {
        panic!("expected one HPA")
    };
    assert_eq!(
        hpa.origin.file,
        Path::new("fixtures/sophia/ops/kubernetes/deployments/agno-coordinator.yaml")
    );
    assert_eq!(hpa.origin.document, 3);
    let location = hpa.field_location("spec.metrics[2].pods.target.averageValue");
    assert_eq!(
        (location.line, location.column, location.document),
        (145, 23, 3)
    );
    // An absent field falls back to its nearest present ancestor.
    assert_eq!(
        hpa.field_location("spec.metrics[2].pods.target.nothing")
            .line,
        144
    );
}

#[test]
fn the_other_plan_configs_are_read_as_what_they_are() {
    // Goal: Loki, Promtail, Argo CD and the Istio objects carry their main fields. Method: spot
    // checks on each.
    let inventory = sophia();
    let [loki] = inventory.loki_configs() else {
        panic!("expected one Loki config")
    };
    assert_eq!(loki.auth_enabled, Some(false));
    assert_eq!(
        loki.server.as_ref().and_then(|s| s.http_listen_port),
        Some(3100)
    );
    let [promtail] = inventory.promtail_configs() else {
        panic!("expected one Promtail config")
    };
    assert_eq!(promtail.clients[0].url, "http://loki:3100/loki/api/v1/push");
    assert_eq!(promtail.scrape_configs[0].pipeline_stages.len(), 5);
    let [app] = inventory.argo_applications() else {
        panic!("expected one Application")
    };
    assert_eq!(
        app.spec.destination.namespace.as_deref(),
        Some("sophia-production")
    );
    assert_eq!(
        app.spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.automated.as_ref())
            .and_then(|a| a.self_heal),
        Some(true)
    );
    let [rule] = inventory.destination_rules() else {
        panic!("expected one DestinationRule")
    };
    let policy = rule
        .spec
        .traffic_policy
        .as_ref()
        .expect("the plan sets a traffic policy");
    assert_eq!(
        policy
            .outlier_detection
            .as_ref()
            .and_then(|o| o.consecutive_errors),
        Some(5)
    );
    let subsets: Vec<&str> = rule.spec.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(subsets, ["stable", "canary"]);
    let [service] = inventory.virtual_services() else {
        panic!("expected one VirtualService")
    };
    assert_eq!(
        service.spec.http[1]
            .route
            .iter()
            .filter_map(|r| r.weight)
            .sum::<i32>(),
        100
    );
    let [policy] = inventory.authorization_policies() else {
        panic!("expected one AuthorizationPolicy")
    };
    assert_eq!(policy.spec.rules.len(), 2);
}

// ---- bad input -------------------------------------------------------------------------------

#[test]
fn a_yaml_syntax_error_names_its_line() {
    // Goal: a syntax error is one clear diagnostic. Method: golden output.
    check("err/yaml_syntax_error.yaml");
}

#[test]
fn a_string_where_a_number_belongs_names_the_field_and_document() {
    // Goal: `replicas: "three"` in document 2 points at that value. Method: golden output.
    check("err/wrong_type_replicas.yaml");
}

#[test]
fn an_hpa_without_scale_target_ref_is_refused() {
    // Goal: a missing required field is named. Method: golden output.
    check("err/hpa_missing_scale_target_ref.yaml");
}

#[test]
fn an_unknown_field_inside_an_istio_traffic_policy_is_refused() {
    // Goal: Istio's closed schema is enforced and the unknown key is pointed at. Method: golden.
    check("err/istio_unknown_traffic_policy_field.yaml");
}

#[test]
fn an_empty_file_is_an_error_naming_the_file() {
    // Goal: an empty file is not silently skipped. Method: golden output for an empty file and
    // for one holding comments only.
    check("err/empty.yaml");
    check("err/comments_only.yaml");
}

#[test]
fn an_alias_bomb_is_refused_with_bounded_work() {
    // Goal: billion laughs does not expand. Method: golden output; the test finishing at all
    // shows the expansion stopped (9^9 nodes would not fit in memory).
    check("err/alias_bomb.yaml");
}

#[test]
fn a_deployment_whose_selector_misses_its_template_is_refused_as_the_api_server_does() {
    // Goal: API-server validation with its wording. Method: golden output.
    check("err/deployment_selector_mismatch.yaml");
}

#[test]
fn max_surge_and_max_unavailable_both_zero_is_refused_as_the_api_server_does() {
    // Goal: the message of Kubernetes 1.29's ValidateRollingUpdateDeployment. Method: golden.
    check("err/deployment_zero_surge_zero_unavailable.yaml");
}

#[test]
fn an_hpa_with_min_replicas_above_max_replicas_is_refused() {
    // Goal: validateHorizontalPodAutoscalerSpec's check. Method: golden output.
    check("err/hpa_min_above_max.yaml");
}

#[test]
fn a_bad_metric_target_names_the_full_field_path() {
    // Goal: the brief's example path `spec.metrics[1].pods.target.averageValue`. Method: golden.
    check("err/hpa_metric_bad_quantity.yaml");
}

#[test]
fn an_error_inside_an_embedded_config_points_into_the_outer_file() {
    // Goal: a typo in prometheus.yml inside a ConfigMap is reported at the outer file's line.
    // Method: golden outputs for a Prometheus config and a GPU sharing block.
    check("err/embedded_prometheus_error.yaml");
    check("err/embedded_gpu_sharing_error.yaml");
}

#[test]
fn rule_files_are_strict_like_prometheus() {
    // Goal: Prometheus refuses unknown rule fields; so do we. Method: golden output.
    check("err/rule_file_unknown_field.yaml");
}

#[test]
fn duplicate_keys_non_mappings_and_a_kind_without_api_version_are_refused() {
    // Goal: malformed documents each get a diagnostic. Method: golden outputs.
    check("err/duplicate_key.yaml");
    check("err/not_a_mapping.yaml");
    check("err/kind_without_api_version.yaml");
}

#[test]
fn a_folder_reports_every_bad_file_together_and_returns_nothing() {
    // Goal: all errors of a folder at once, and no inventory from half-read input. Method:
    // golden output for a folder of two bad files and one good one.
    check("err-dir");
}

#[test]
fn a_missing_directory_is_an_error() {
    // Goal: a clear error, not a panic or an empty inventory. Method: load a path that is not.
    let err = load_dir("fixtures/manifests/no-such-folder").expect_err("the folder does not exist");
    let [diag] = err.diagnostics() else {
        panic!("expected one diagnostic")
    };
    assert_eq!(
        diag.headline(),
        "fixtures/manifests/no-such-folder: no such directory"
    );
    let err = load_dir("fixtures/sophia/topology.yaml").expect_err("a file is not a folder");
    assert_eq!(err.diagnostics()[0].message, "not a directory");
}

#[test]
fn a_file_above_the_size_limit_is_refused_before_it_is_read() {
    // Goal: a 50 MB file is refused without reading it. Method: a sparse 50 MB file (no data
    // written, so reading it whole would be the only way to spend memory on it) in a temp dir.
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(50 * 1024 * 1024).expect("sparse length");
    let err = load_dir(dir.path()).expect_err("too large");
    let [diag] = err.diagnostics() else {
        panic!("expected one diagnostic")
    };
    assert_eq!(diag.location.file, path);
    assert_eq!(
        diag.message,
        "file is 52428800 bytes, above the limit of 8388608 bytes (8 MiB); not read"
    );
}

#[test]
fn a_file_that_is_not_text_is_refused() {
    // Goal: binary input is named as such. Method: a file with NUL bytes and one with invalid
    // UTF-8, written at test time.
    let dir = tempfile::tempdir().expect("a temp dir");
    let nul = dir.path().join("a-binary.yaml");
    std::fs::write(&nul, b"apiVersion: v1\nkind: \x00\x01\x02").expect("write");
    let latin = dir.path().join("b-latin1.yaml");
    std::fs::write(
        &latin,
        b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: caf\xe9\n",
    )
    .expect("write");
    let err = load_dir(dir.path()).expect_err("not text");
    let found: Vec<(String, usize, usize)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.message.clone(), d.location.line, d.location.column))
        .collect();
    assert_eq!(
        found,
        [
            ("not a text file: NUL byte at offset 21".to_string(), 2, 7),
            (
                "not UTF-8 text: invalid byte at offset 52".to_string(),
                4,
                12
            ),
        ]
    );
}

#[test]
fn deeply_nested_input_is_refused_not_overflowed() {
    // Goal: nesting cannot blow the stack in the parser, serde or Drop. Method: 200 nested
    // sequences (past our limit of 128) and 10,000 (past the parser's own limit).
    let text = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
    let err = load_str("deep.yaml", &text).expect_err("too deep");
    assert_eq!(
        err.diagnostics()[0].message,
        "nested deeper than 128 levels"
    );
    let text = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = load_str("deeper.yaml", &text).expect_err("too deep");
    assert!(
        err.diagnostics()[0].message.contains("recursion limit"),
        "{err:?}"
    );
}

// ---- things that are not errors --------------------------------------------------------------

#[test]
fn an_unknown_kind_is_kept_with_a_warning() {
    // Goal: kinds twin does not read never fail a load. Method: golden output.
    check("ok/unknown_kind.yaml");
    let inventory = load_file("fixtures/manifests/ok/unknown_kind.yaml").expect("loads");
    assert_eq!(inventory.unknown()[0].kind.as_deref(), Some("Certificate"));
    assert_eq!(inventory.service_accounts().len(), 1);
}

#[test]
fn the_plain_sloth_form_is_read_with_its_snake_case_fields() {
    // Goal: `version: prometheus/v1` files are SLOs too, and snake_case is right there. Method:
    // load one and check that nothing is reported as mismatched.
    check("ok/sloth_plain.yaml");
    let inventory = load_file("fixtures/manifests/ok/sloth_plain.yaml").expect("loads");
    let [slo] = inventory.slos() else {
        panic!("expected one SLO")
    };
    assert_eq!(slo.form, SloForm::Plain);
    assert_eq!(slo.mismatched_fields().count(), 0);
    assert_eq!(slo.written_fields.len(), 4);
}

#[test]
fn a_prometheus_rule_adds_its_groups_to_rule_groups() {
    // Goal: rule_groups() covers PrometheusRule objects. Method: load one, list its groups.
    check("ok/prometheus_rule.yaml");
    let inventory = load_file("fixtures/manifests/ok/prometheus_rule.yaml").expect("loads");
    let groups = inventory.rule_groups();
    let names: Vec<(&str, RuleSource)> = groups
        .iter()
        .map(|g| (g.group.name.as_str(), g.source))
        .collect();
    assert_eq!(
        names,
        [
            ("shop-recording", RuleSource::PrometheusRule),
            ("shop-alerts", RuleSource::PrometheusRule)
        ]
    );
    assert_eq!(groups[1].field_location("rules[0].expr").line, 16);
}

#[test]
fn a_bare_dashboard_with_rows_is_read() {
    // Goal: the bare Grafana form and row panels. Method: count panels, rows' included.
    check("ok/dashboard_bare.json");
    let inventory = load_file("fixtures/manifests/ok/dashboard_bare.json").expect("loads");
    let [dashboard] = inventory.dashboards() else {
        panic!("expected one dashboard")
    };
    let titles: Vec<&str> = dashboard
        .all_panels()
        .iter()
        .filter_map(|p| p.title.as_deref())
        .collect();
    assert_eq!(titles, ["Traffic", "Requests", "Errors"]);
}

#[test]
fn the_remaining_kinds_and_embedded_rule_files_are_read() {
    // Goal: Secret, PDB, Istio v1 objects and a rules key in a ConfigMap. Method: golden output
    // and the embedded group's source.
    check("ok/everything_else.yaml");
    let inventory = load_file("fixtures/manifests/ok/everything_else.yaml").expect("loads");
    let groups = inventory.rule_groups();
    assert_eq!(groups[0].source, RuleSource::ConfigMap);
    assert_eq!(groups[0].field_location("rules[0].expr").line, 51);
    assert_eq!(
        inventory.gpu_sharing()[0].strategy,
        GpuSharingStrategy::TimeSlicing
    );
    assert_eq!(inventory.gpu_sharing()[0].replicas, 2);
}

#[test]
fn plain_scalars_resolve_as_yaml_v2_does() {
    // Goal: the scalars Kubernetes and Prometheus see are the scalars we see. Method: resolve a
    // table of plain scalars.
    use serde_json::json;
    let cases = [
        ("yes", json!(true)),
        ("Off", json!(false)),
        ("~", json!(null)),
        ("10", json!(10)),
        ("0x1F", json!(31)),
        ("0o17", json!(15)),
        ("017", json!(15)),
        ("-5", json!(-5)),
        ("1.5", json!(1.5)),
        ("1e3", json!(1000.0)),
        ("2023-01-01", json!("2023-01-01")),
        ("15s", json!("15s")),
        ("1_000", json!(1000)),
        ("0x1_0", json!(16)),
        ("_1", json!("_1")),
        ("08", json!(8.0)),
        ("1_000.5", json!(1000.5)),
        ("+.5", json!(0.5)),
        ("18446744073709551615", json!(18446744073709551615u64)),
        ("-9223372036854775808", json!(-9223372036854775808i64)),
    ];
    for (text, expected) in cases {
        assert_eq!(yaml::resolve_plain(text), expected, "resolving {text:?}");
    }
}

// ---- quantities ------------------------------------------------------------------------------

#[test]
fn quantities_parse_exactly_as_kubernetes_does() {
    // Goal: milli-unit values match apimachinery's MilliValue. Method: a table of the brief's
    // examples and the suffix families.
    let cases: [(&str, i128); 16] = [
        ("100m", 100),
        ("2", 2_000),
        ("1.5", 1_500),
        ("2Gi", 2 * 1024 * 1024 * 1024 * 1000),
        ("128974848", 128_974_848_000),
        ("129e6", 129_000_000_000),
        ("129M", 129_000_000_000),
        ("123Mi", 123 * 1024 * 1024 * 1000),
        ("1k", 1_000_000),
        (".5", 500),
        ("5.", 5_000),
        ("+3", 3_000),
        ("-1", -1_000),
        ("1.0001m", 2),
        ("100n", 1),
        ("1E", 1_000_000_000_000_000_000_000),
    ];
    for (text, millis) in cases {
        assert_eq!(
            parse_quantity(text).map(|q| q.millis),
            Ok(millis),
            "parsing {text:?}"
        );
    }
    assert_eq!(parse_quantity("1500m").map(|q| q.value_ceil()), Ok(2));
}

#[test]
fn malformed_quantities_are_errors() {
    // Goal: nothing that Kubernetes refuses becomes a number. Method: a table of bad strings.
    for text in [
        "2x", "", "Gi", "1 Gi", "1.2.3", "1e", "1e1.5", "1KiB", "--1", "0x10", "1ki",
    ] {
        assert!(parse_quantity(text).is_err(), "{text:?} should be refused");
    }
    assert_eq!(
        parse_quantity("2x").map_err(|e| e.to_string()),
        Err("\"2x\" is not a quantity: unknown suffix (one of n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent e3)".to_string())
    );
}

#[test]
fn huge_and_tiny_quantities_are_capped_and_rounded_as_kubernetes_does() {
    // Goal: ParseQuantity's cap at 2^63-1 units and its round-up of tiny values. Method: values
    // past the cap, far below a milli-unit, and with more digits than are kept exactly.
    let max = quantity::MAX_MILLIS;
    for text in [
        "10E",
        "1e99999",
        "999999999999999999999999999999999Ei",
        "9223372036854775808",
    ] {
        assert_eq!(
            parse_quantity(text).map(|q| q.millis),
            Ok(max),
            "capping {text:?}"
        );
    }
    assert_eq!(parse_quantity("-10E").map(|q| q.millis), Ok(-max));
    assert_eq!(
        parse_quantity("9223372036854775807").map(|q| q.millis),
        Ok(max)
    );
    assert_eq!(parse_quantity("1e-99999").map(|q| q.millis), Ok(1));
    assert_eq!(parse_quantity("0e-99999").map(|q| q.millis), Ok(0));
    assert_eq!(
        parse_quantity("1.0000000000000000000000000000000000001").map(|q| q.millis),
        Ok(1_001)
    );
    assert_eq!(
        parse_quantity("1.0000000000000000000000000000000000000").map(|q| q.millis),
        Ok(1_000)
    );
    assert_eq!(parse_quantity("-1.0001m").map(|q| q.millis), Ok(-2));
}

// ---- topology --------------------------------------------------------------------------------

#[test]
fn the_sophia_topology_expands_to_named_nodes() {
    // Goal: pools become nodes with kubelet labels and allocatable. Method: load the fixture.
    let topology = load_topology("fixtures/sophia/topology.yaml").expect("the fixture loads");
    assert_eq!(topology.kubernetes_version, "1.29");
    let names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["general-0", "general-1", "general-2", "a100-0", "h100-0"]
    );
    let a100 = &topology.nodes[3];
    assert_eq!(
        a100.labels
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("a100-0")
    );
    assert_eq!(
        a100.labels
            .get("topology.kubernetes.io/zone")
            .map(String::as_str),
        Some("us-east-1a")
    );
    assert_eq!(
        a100.labels.get("gpu.nvidia.com/class").map(String::as_str),
        Some("A100")
    );
    assert_eq!(
        a100.allocatable.get("nvidia.com/gpu").map(|q| q.millis),
        Some(8_000)
    );
    assert_eq!(a100.allocatable.get("cpu").map(|q| q.millis), Some(240_000));
    assert_eq!(a100.taints[0].effect, TaintEffect::NoSchedule);
    assert_eq!(
        a100.gpus.as_ref().and_then(|g| g.memory).map(|q| q.millis),
        Some(80 * 1024 * 1024 * 1024 * 1000)
    );
    assert!(!topology.nodes[0].allocatable.contains_key("nvidia.com/gpu"));
    assert_eq!(topology.gpu_count(), 16);
    assert_eq!(sophia().topologies()[0].object, topology);
}

#[test]
fn a_topology_block_can_be_embedded_in_another_file() {
    // Goal: a scenario file can carry the same block. Method: parse a document and hand the
    // block at `cluster.topology` to Topology::from_value.
    let path = Path::new("fixtures/manifests/topology/ok/embedded.yaml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let documents = yaml::parse_documents(&text).expect("valid YAML");
    let document = &documents[0];
    let block = &document.value["cluster"]["topology"];
    let topology = Topology::from_value(
        block,
        &document.positions,
        path,
        document.index,
        "cluster.topology",
    )
    .expect("a valid block");
    assert_golden(
        &path.with_extension("expected"),
        &render_topology(&topology),
    );
    // An error in an embedded block carries the full path and the outer line.
    let bad = text.replace("count: 2", "count: two");
    let documents = yaml::parse_documents(&bad).expect("valid YAML");
    let document = &documents[0];
    let block = &document.value["cluster"]["topology"];
    let errors = Topology::from_value(
        block,
        &document.positions,
        path,
        document.index,
        "cluster.topology",
    )
    .expect_err("a bad count");
    assert_eq!(errors[0].field, "cluster.topology.nodePools[0].count");
    assert_eq!(errors[0].location.line, 8);
}

#[test]
fn topology_mistakes_are_errors_naming_line_and_field() {
    // Goal: strict reading of topology files. Method: golden outputs, one per mistake.
    for case in [
        "err/negative_count.yaml",
        "err/fractional_count.yaml",
        "err/gpu_without_class.yaml",
        "err/unknown_taint_effect.yaml",
        "err/bad_quantity.yaml",
        "err/unknown_field.yaml",
        "err/several_problems.yaml",
        "err/wrong_kind.yaml",
    ] {
        check_topology(case);
    }
}

// ---- never a panic ---------------------------------------------------------------------------

/// The plan's files, read once per test process.
fn plan_files() -> &'static [(String, String)] {
    static FILES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        sophia()
            .files()
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("a plan file is readable");
                (path.display().to_string(), text)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn load_str_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Goal: no input panics. Method: arbitrary bytes, made text the lossy way.
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str("fuzz.yaml", &text);
    }

    #[test]
    fn load_str_never_panics_on_mutated_plan_files(
        file_idx in 0usize..12,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..4, "[ -~\n\t]{0,3}"), 1..6),
    ) {
        // Goal: realistic near-misses (a deleted, replaced or inserted character somewhere in a
        // real manifest) never panic. Method: mutate one of the plan's files and load it.
        let files = plan_files();
        let (name, original) = &files[file_idx % files.len()];
        let mut text: Vec<char> = original.chars().collect();
        for (at, op, insert) in edits {
            if text.is_empty() { break; }
            let idx = at.index(text.len());
            match op {
                0 => { text.remove(idx); }
                1 => { text.splice(idx..=idx, insert.chars()); }
                _ => { text.splice(idx..idx, insert.chars()); }
            }
        }
        let text: String = text.into_iter().collect();
        let _ = load_str(name, &text);
    }

    #[test]
    fn load_str_never_panics_on_yaml_ish_text(
        text in "(apiVersion: (v1|apps/v1|autoscaling/v2|networking.istio.io/v1)\n|kind: (Deployment|ConfigMap|HorizontalPodAutoscaler|DestinationRule|Service)\n|metadata:\n  name: x\n|spec:\n|  [a-z]{1,8}: [-0-9a-z\"\\[\\]{}&*!|>:, ]{0,12}\n|data:\n  prometheus.yml: \\|\n    [a-z_]{1,8}: [0-9a-z\\[\\]:]{0,6}\n|---\n|  - [a-z&*]{0,5}\n){0,16}"
    ) {
        // Goal: no near-miss of a manifest panics. Method: lines drawn from manifest shapes.
        let _ = load_str("fuzz.yaml", &text);
    }
}

#[test]
fn a_quantity_that_kubernetes_refuses_names_its_container_field() {
    // Goal: STYLE's own example, `requests.cpu: "2x" is not a quantity`. Method: golden output;
    // both bad quantities of the file are reported together.
    check("err/deployment_bad_cpu.yaml");
}

#[test]
fn rule_files_are_validated_as_prometheus_loads_them() {
    // Goal: what `promtool check rules` refuses, we refuse, with its messages. Method: golden
    // output for a file with one mistake of each kind.
    check("err/rule_file_invalid_rules.yaml");
}

#[test]
fn a_prometheus_config_is_validated_as_prometheus_loads_it() {
    // Goal: unknown sections, timeouts above intervals, duplicate jobs and unknown relabel
    // actions are errors, as in `config.Load`. Method: golden output.
    check("err/prometheus_config_invalid.yaml");
}

#[test]
fn embedded_positions_survive_every_block_style() {
    // Goal: an error inside an embedded config lands on the right outer line and column however
    // the block is written. Method: the same bad duration under `|-`, a leading blank line, an
    // indentation indicator, CRLF line ends, a comment after `|`, and a quoted string (which can
    // only point at the string's start).
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\ndata:\n";
    let cases = [
        (
            "  prometheus.yml: |-\n    global:\n      scrape_interval: 15x\n",
            (8, 24),
        ),
        (
            "  prometheus.yml: |\n\n    global:\n      scrape_interval: 15x\n",
            (9, 24),
        ),
        (
            "  prometheus.yml: |2\n      global:\n        scrape_interval: 15x\n",
            (8, 26),
        ),
        (
            "  prometheus.yml: | # the server's config\n    global:\n      scrape_interval: 15x\n",
            (8, 24),
        ),
        (
            "  prometheus.yml: \"global:\\n  scrape_interval: 15x\\n\"\n",
            (6, 19),
        ),
    ];
    for (body, expected) in cases {
        let text = format!("{head}{body}");
        let err = load_str("case.yaml", &text).expect_err("a bad duration");
        let diag = &err.diagnostics()[0];
        assert_eq!(
            diag.field, "data[\"prometheus.yml\"].global.scrape_interval",
            "{body:?}"
        );
        assert_eq!(
            (diag.location.line, diag.location.column),
            expected,
            "{body:?}"
        );
    }
    let crlf = format!("{head}  prometheus.yml: |\n    global:\n      scrape_interval: 15x\n")
        .replace('\n', "\r\n");
    let err = load_str("crlf.yaml", &crlf).expect_err("a bad duration");
    let location = &err.diagnostics()[0].location;
    assert_eq!((location.line, location.column), (8, 24));
}

#[test]
fn json_with_tabs_reads_with_positions() {
    // Goal: JSON files (Grafana exports are tab-indented sometimes) read through the same path
    // and keep positions. Method: a tab-indented rule file with a bad interval.
    let text =
        "{\n\t\"groups\": [\n\t\t{\"name\": \"a\", \"interval\": \"1x\", \"rules\": []}\n\t]\n}\n";
    let err = load_str("rules.json", text).expect_err("a bad interval");
    let diag = &err.diagnostics()[0];
    assert_eq!(
        diag.headline(),
        "rules.json:3:29: document 1: groups[0].interval: not a valid duration string: \"1x\""
    );
}

#[test]
fn unknown_fields_of_core_kinds_are_refused_as_kubectl_strict_validation_does() {
    // Goal: a typo in a Deployment is not silently dropped by k8s-openapi. Method: golden output
    // for two misspelt fields (and a `null` the API drops without complaint).
    check("err/deployment_unknown_field.yaml");
}

#[test]
fn merge_keys_fill_in_what_a_mapping_does_not_set() {
    // Goal: `<<: *defaults` works as in yaml.v2, explicit keys win, and a merged key may be
    // overridden without counting as a duplicate. Method: parse and compare values.
    let text = "base: &base {a: 1, b: 2}\nmore: &more {c: 3, a: 9}\nlisted:\n  <<: [*base, *more]\n  b: 20\nsingle:\n  b: 5\n  <<: *base\n";
    let documents = yaml::parse_documents(text).expect("valid YAML");
    let value = &documents[0].value;
    assert_eq!(
        value["listed"],
        serde_json::json!({"a": 1, "b": 20, "c": 3})
    );
    assert_eq!(value["single"], serde_json::json!({"b": 5, "a": 1}));
    let err = yaml::parse_documents("x:\n  <<: 3\n").expect_err("not a mapping");
    assert_eq!(
        err.message,
        "a merge key `<<` takes a mapping or a list of mappings"
    );
    let quoted = yaml::parse_documents("x:\n  \"<<\": 3\n").expect("a quoted << is a plain key");
    assert_eq!(quoted[0].value["x"]["<<"], serde_json::json!(3));
}

#[test]
fn objects_lists_every_kind_in_file_and_document_order() {
    // Goal: one uniform listing for lint and reports. Method: list the plan's objects of one file
    // and check order, names, namespaces and scopes.
    let inventory = sophia();
    let objects = inventory.objects();
    assert_eq!(objects.len(), 24);
    let cluster_config: Vec<(String, Option<&str>, Option<&str>, Scope)> = objects
        .iter()
        .filter(|o| o.origin.file.ends_with("cluster-config.yaml"))
        .map(|o| (o.kind.clone(), o.namespace, o.name, o.scope))
        .collect();
    assert_eq!(
        cluster_config,
        [
            (
                "Namespace".to_string(),
                None,
                Some("sophia-production"),
                Scope::Cluster
            ),
            (
                "ResourceQuota".to_string(),
                Some("sophia-production"),
                Some("sophia-resource-quota"),
                Scope::Namespaced
            ),
            (
                "PriorityClass".to_string(),
                None,
                Some("sophia-critical"),
                Scope::Cluster
            ),
            (
                "PriorityClass".to_string(),
                None,
                Some("sophia-high"),
                Scope::Cluster
            ),
            (
                "ConfigMap".to_string(),
                Some("sophia-production"),
                Some("gpu-scheduling-config"),
                Scope::Namespaced
            ),
            (
                "GpuSharing".to_string(),
                Some("sophia-production"),
                None,
                Scope::File
            ),
        ]
    );
}

#[test]
fn slo_documents_are_validated_as_sloth_validates_them() {
    // Goal: what `sloth generate` refuses, we refuse. Method: golden output for an objective
    // out of range, a query that does not parse, a missing alert name, a repeated name and an
    // empty SLI.
    check("err/sloth_invalid.yaml");
}

#[test]
fn hpa_metrics_and_behavior_are_validated_as_the_api_server_does() {
    // Goal: the checks of validateMetricSpec, validateMetricTarget and validateBehavior, with
    // their wording. Method: golden output for one HPA with a mistake of each kind.
    check("err/hpa_invalid_metrics_and_behavior.yaml");
}

#[test]
fn object_names_follow_the_api_servers_rules() {
    // Goal: DNS label, DNS-1035 and subdomain rules with upstream's messages; a dotted ConfigMap
    // name is fine. Method: golden output.
    check("err/invalid_names.yaml");
}

#[test]
fn string_fields_of_yaml_v2_formats_take_any_scalar() {
    // Goal: a rule label `priority: 1` loads as Prometheus loads it (the text "1"), while the
    // same number in a Kubernetes string field is refused (see wrong_type_replicas and
    // env values). Method: load a rule file with unquoted scalars and read them back.
    check("ok/yaml_v2_scalars.yaml");
    let inventory = load_file("fixtures/manifests/ok/yaml_v2_scalars.yaml").expect("loads");
    let group = &inventory.rule_files()[0].groups[0];
    assert_eq!(group.name, "2024");
    let labels: Vec<(&str, &str)> = group.rules[0]
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("paging", "true"), ("priority", "1"), ("ratio", "0.5")]
    );
    assert_eq!(
        group.rules[0]
            .annotations
            .get("runbook")
            .map(String::as_str),
        Some("42")
    );
    let env = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  count: 3\n";
    let err = load_str("cm.yaml", env).expect_err("a ConfigMap value must be a string");
    assert_eq!(err.diagnostics()[0].field, "data.count");
}

#[test]
fn strict_decoding_has_no_false_alarms_on_a_rich_deployment() {
    // Goal: the round-trip check for unknown fields accepts every field real charts set.
    // Method: golden output for a Deployment with many of them, and the selector expression
    // matched against the template's labels.
    check("ok/rich_deployment.yaml");
}
