//! The day-long input of the PromQL bench and of the promtool timing example
//! (`examples/promtool_day.rs`, which includes this file by path): about 400 series of 20 pods' worth of the plan's metrics, one
//! sample every 15 s for a day (about 2.3 M samples).

use twin::telemetry::store::{Labels, Store};

/// Scrape interval [ms].
pub const SCRAPE_MS: i64 = 15_000;
/// A day [ms].
pub const DAY_MS: i64 = 86_400_000;

/// A series' value at scrape step `i`.
pub type ValueAt = Box<dyn Fn(i64) -> f64>;

/// The day's 400 series and their values. Values follow simple deterministic formulas
/// (counters rise, gauges wave), so neither the bench nor the example needs an RNG.
pub fn series() -> Vec<(Labels, ValueAt)> {
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
    series
}

/// Builds the store: the 400 series, one sample per series every 15s for a day.
#[allow(dead_code)] // the example writes the series out instead
pub fn build_store() -> Store {
    let series = series();
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
