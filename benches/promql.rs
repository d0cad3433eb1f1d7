//! PromQL evaluation over N series: the plan's six alert expressions over ~400 series holding a
//! day of samples at a 15s scrape interval (about 2.3 M samples), evaluated at the 2,880
//! instants of a 30s rule interval.

use criterion::{Criterion, criterion_group, criterion_main};
use twin::promql::{Engine, parse};
use twin::telemetry::store::Store;

#[path = "support/day_input.rs"]
mod day_input;
use day_input::{DAY_MS, build_store};
use twin::promql::rules::{EvalContext, Group, StoreStorage, load_rule_file};

const RULE_INTERVAL_MS: i64 = 30_000;

const ALERTS: [&str; 6] = [
    r#"(sum(rate(http_requests_total{status=~"5..",job="agno-coordinator"}[5m])) / sum(rate(http_requests_total{job="agno-coordinator"}[5m]))) > 0.05"#,
    r#"rate(kube_pod_container_status_restarts_total{namespace="sophia-production"}[5m]) > 0"#,
    r#"(DCGM_FI_DEV_FB_USED / DCGM_FI_DEV_FB_TOTAL) > 0.9"#,
    r#"sum(rate(llm_api_cost_dollars[1h])) > 100"#,
    r#"histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{job="agno-coordinator"}[5m])) by (le)) > 3"#,
    r#"container_memory_usage_bytes{namespace="sophia-production"} / container_spec_memory_limit_bytes > 0.8"#,
];

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

/// The plan's rule groups (templating, `for` state, ALERTS series and all) evaluated over
/// the day, each at its own interval (30s and 1m): 4,320 group evaluations. Returns the
/// number of alert transitions.
fn evaluate_groups(mut groups: Vec<Group>, store: Store) -> usize {
    let mut storage = StoreStorage::new(twin::promql::EngineOptions::default());
    storage.store = store;
    let ctx = EvalContext::default();
    let mut transitions = 0;
    let mut t_ms = 0;
    while t_ms < DAY_MS {
        for g in &mut groups {
            if t_ms % g.interval_ms.max(1) == 0 {
                transitions += g.evaluate(t_ms, &mut storage, &ctx).transitions.len();
            }
        }
        t_ms += RULE_INTERVAL_MS;
    }
    transitions
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
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sophia/monitoring/prometheus/alerts.yaml");
    let groups = load_rule_file(&rules, 15_000).expect("the plan's rule file loads");
    group.bench_function("plan_rule_groups_at_their_intervals_over_a_day", |b| {
        b.iter_batched(
            || (groups.clone(), store.clone()),
            |(groups, store)| evaluate_groups(groups, store),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
