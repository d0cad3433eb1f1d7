//! kube-state-metrics series of the World: names, labels and values as kube-state-metrics
//! v2.x exports them, checked through PromQL over a run's store.

use std::path::PathBuf;

use twin::promql::{Engine, Value};

fn vector(engine: &Engine<'_>, expr: &str, t_ms: i64) -> Vec<(String, f64)> {
    match engine.eval_instant(expr, t_ms) {
        Ok(Value::Vector(v)) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
        other => panic!("{expr}: {other:?}"),
    }
}

#[test]
fn kube_state_metrics_report_replicas_phases_and_the_hpa_of_a_quiet_run() {
    // Goal: the ksm series say what the cluster holds. Method: run the quiet export fixture
    // (clusterExporters assumed) and query its store at the end: each pod has exactly one
    // phase at 1 out of five series, Deployments' spec and available replicas agree with the
    // run, and the HPA's desired replicas series exists with ksm 2.x's name and labels.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let loaded =
        twin::scenario::load(root.join("fixtures/scenarios/export-steady.yaml")).expect("loads");
    let result = twin::scenario::run(&loaded, None).expect("runs");
    let store = &result.world.storage.store;
    let engine = Engine::new(store);
    let end = 600_000;
    let per_pod = vector(
        &engine,
        r#"count by (pod) (kube_pod_status_phase{job="kube-state-metrics"})"#,
        end,
    );
    assert!(!per_pod.is_empty());
    assert!(per_pod.iter().all(|(_, n)| *n == 5.0), "{per_pod:?}");
    let phase_sum = vector(&engine, "sum by (pod) (kube_pod_status_phase)", end);
    assert!(phase_sum.iter().all(|(_, n)| *n == 1.0), "{phase_sum:?}");
    let running = vector(
        &engine,
        r#"sum(kube_pod_status_phase{phase="Running"})"#,
        end,
    );
    let pods = result.world.cluster.pods.len() as f64;
    assert_eq!(running, [("{}".to_string(), pods)]);
    let spec = vector(&engine, "kube_deployment_spec_replicas", end);
    for (idx, d) in result.world.cluster.deployments.iter().enumerate() {
        let want = format!(
            "kube_deployment_spec_replicas{{deployment=\"{}\", job=\"kube-state-metrics\", namespace=\"{}\"}}",
            d.model.name, d.model.namespace
        );
        assert!(
            spec.contains(&(want.clone(), f64::from(d.replicas))),
            "{want} in {spec:?} (deployment {idx})"
        );
    }
    let available = vector(
        &engine,
        "kube_deployment_status_replicas_available == kube_deployment_spec_replicas",
        end,
    );
    assert_eq!(
        available.len(),
        spec.len(),
        "a quiet run has every replica available"
    );
    let hpa = vector(
        &engine,
        "kube_horizontalpodautoscaler_status_desired_replicas",
        end,
    );
    assert_eq!(hpa.len(), result.world.hpas.len(), "{hpa:?}");
    assert!(
        hpa.iter()
            .all(|(l, _)| l.contains("horizontalpodautoscaler=\"")),
        "{hpa:?}"
    );
}
