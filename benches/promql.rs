//! PromQL evaluation over N series: the plan's six alert expressions over ~400 series holding a
//! day of samples at a 15s scrape interval (about 2.3 M samples), evaluated at the 2,880
//! instants of a 30s rule interval.

use criterion::{Criterion, criterion_group, criterion_main};
use twin::promql::{Engine, parse};
use twin::telemetry::store::{Labels, Store};

const SCRAPE_MS: i64 = 15_000;
const DAY_MS: i64 = 86_400_000;
const RULE_INTERVAL_MS: i64 = 30_000;

const ALERTS: [&str; 6] = [
    r#"(sum(rate(http_requests_total{status=~"5..",job="agno-coordinator"}[5m])) / sum(rate(http_requests_total{job="agno-coordinator"}[5m]))) > 0.05"#,
    r#"rate(kube_pod_container_status_restarts_total{namespace="sophia-production"}[5m]) > 0"#,
    r#"(DCGM_FI_DEV_FB_USED / DCGM_FI_DEV_FB_TOTAL) > 0.9"#,
    r#"sum(rate(llm_api_cost_dollars[1h])) > 100"#,
    r#"histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{job="agno-coordinator"}[5m])) by (le)) > 3"#,
    r#"container_memory_usage_bytes{namespace="sophia-production"} / container_spec_memory_limit_bytes > 0.8"#,
];

/// A series' value at scrape step `i`.
type ValueAt = Box<dyn Fn(i64) -> f64>;

/// Builds the store: 400 series, one sample per series every 15s for a day. Values follow
/// simple deterministic formulas (counters rise, gauges wave), so the bench needs no RNG.
fn build_store() -> Store {
    let mut series: Vec<(Labels, ValueAt)> = Vec::new();
    for pod in 0..10 {
        for (status, per_step) in [("200", 90.0), ("500", 3.0)] {
            let labels = Labels::from_pairs([
                ("__name__", "http_requests_total".to_string()),
                ("job", "agno-coordinator".to_string()),
                ("status", status.to_string()),
                ("pod", format!("agno-{pod}")),
            ]);
            series.push((labels, Box::new(move |step| per_step * step as f64)));
        }
        for (i, le) in [
            "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
        ]
        .iter()
        .enumerate()
        {
            let labels = Labels::from_pairs([
                (
                    "__name__",
                    "http_request_duration_seconds_bucket".to_string(),
                ),
                ("job", "agno-coordinator".to_string()),
                ("le", le.to_string()),
                ("pod", format!("agno-{pod}")),
            ]);
            let share = (i as f64 + 1.0) / 10.0;
            series.push((
                labels,
                Box::new(move |step| (93.0 * share).floor() * step as f64),
            ));
        }
    }
    for pod in 0..100 {
        let labels = Labels::from_pairs([
            (
                "__name__",
                "kube_pod_container_status_restarts_total".to_string(),
            ),
            ("namespace", "sophia-production".to_string()),
            ("pod", format!("pod-{pod}")),
        ]);
        series.push((labels, Box::new(move |step| ((step + pod) / 2000) as f64)));
    }
    for gpu in 0..32 {
        for (name, f) in [("DCGM_FI_DEV_FB_USED", 1.0), ("DCGM_FI_DEV_FB_TOTAL", 0.0)] {
            let labels = Labels::from_pairs([
                ("__name__", name.to_string()),
                ("gpu", (gpu % 8).to_string()),
                ("Hostname", format!("gpu-node-{}", gpu / 8)),
            ]);
            series.push((
                labels,
                Box::new(move |step| {
                    if f == 0.0 {
                        80_000.0
                    } else {
                        60_000.0 + 15_000.0 * ((step + gpu) as f64 / 300.0).sin()
                    }
                }),
            ));
        }
    }
    for model in 0..8 {
        let labels = Labels::from_pairs([
            ("__name__", "llm_api_cost_dollars".to_string()),
            ("model", format!("model-{model}")),
        ]);
        series.push((
            labels,
            Box::new(move |step| 0.5 * (model + 1) as f64 * step as f64),
        ));
    }
    for pod in 0..54 {
        for (name, limit) in [
            ("container_memory_usage_bytes", false),
            ("container_spec_memory_limit_bytes", true),
        ] {
            let labels = Labels::from_pairs([
                ("__name__", name.to_string()),
                ("namespace", "sophia-production".to_string()),
                ("pod", format!("svc-{pod}")),
                ("container", "app".to_string()),
            ]);
            series.push((
                labels,
                Box::new(move |step| {
                    if limit {
                        4e9
                    } else {
                        2.5e9 + 1e9 * ((step + pod) as f64 / 500.0).sin()
                    }
                }),
            ));
        }
    }
    let mut store = Store::new();
    let ids: Vec<_> = series
        .iter()
        .map(|(labels, _)| store.series_id(labels).expect("valid label names"))
        .collect();
    for step in 0..DAY_MS / SCRAPE_MS {
        for (id, (_, value)) in ids.iter().zip(&series) {
            store
                .append_to(*id, step * SCRAPE_MS, value(step))
                .expect("time moves forward");
        }
    }
    store
}

/// Evaluates the six alerts at every rule instant of the day; returns the number of
/// result elements (so the work cannot be optimised away). A fresh engine per instant, as a
/// rule group gets while the scraper keeps appending between its evaluations.
fn sweep(store: &Store, exprs: &[twin::promql::Expr]) -> usize {
    let mut n_elements = 0;
    let mut t_ms = 0;
    while t_ms < DAY_MS {
        let engine = Engine::new(store);
        for expr in exprs {
            if let Ok(twin::promql::Value::Vector(v)) = engine.eval_instant_expr(expr, t_ms) {
                n_elements += v.len();
            }
        }
        t_ms += RULE_INTERVAL_MS;
    }
    n_elements
}

fn bench(c: &mut Criterion) {
    let store = build_store();
    let exprs: Vec<_> = ALERTS
        .iter()
        .map(|e| parse(e).expect("the plan's alerts parse"))
        .collect();
    println!(
        "store: {} series, {} samples; {} instants x {} alerts",
        store.len(),
        store.n_samples(),
        DAY_MS / RULE_INTERVAL_MS,
        exprs.len()
    );
    let mut group = c.benchmark_group("promql");
    group.sample_size(10);
    group.bench_function("six_alerts_2880_instants_400_series", |b| {
        b.iter(|| sweep(&store, &exprs))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
