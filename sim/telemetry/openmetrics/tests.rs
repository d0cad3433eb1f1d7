use super::*;
use crate::telemetry::store::{Labels, Store, stale_nan};

#[test]
fn every_millisecond_timestamp_reads_back_exactly_through_prometheus_arithmetic() {
    // Goal: no sample moves by a millisecond on import. Method: for every millisecond of the
    // first 20 minutes and around a day and a year, apply the parser's int64(secs * 1000).
    let days = [0i64, 86_400_000, 365 * 86_400_000];
    for base in days {
        for t_ms in base..base + 1_200_000 {
            let text = timestamp_secs(t_ms);
            let secs: f64 = text.parse().expect("a float");
            assert_eq!((secs * 1000.0) as i64, t_ms, "{text}");
        }
    }
    assert_eq!(timestamp_secs(15_000), "15");
    assert_eq!(timestamp_secs(15_250), "15.25");
}

#[test]
fn families_are_typed_and_stale_markers_are_left_out() {
    // Goal: the text is what promtool's OpenMetrics parser wants: a TYPE line per family,
    // counters by their _total suffix, histograms by bucket/count/sum, `# EOF` last, and no
    // stale marker written as a NaN. Method: a small store, the exact text.
    let mut store = Store::new();
    let requests = Labels::from_pairs([("__name__", "http_requests_total"), ("pod", "a\"\\\n\tb")]);
    store.append(&requests, 15_000, 1.0).expect("in order");
    store.append(&requests, 30_000, 2.5).expect("in order");
    store
        .append(&requests, 31_001, stale_nan())
        .expect("in order");
    for (name, le) in [
        ("rt_seconds_bucket", "0.5"),
        ("rt_seconds_bucket", "+Inf"),
        ("rt_seconds_count", ""),
    ] {
        let labels = Labels::from_pairs([("__name__", name), ("le", le)]);
        store.append(&labels, 15_000, 3.0).expect("in order");
    }
    let gauge = Labels::from_pairs([("__name__", "temperature")]);
    store.append(&gauge, 15_000, f64::NAN).expect("in order");
    store
        .append(&gauge, 30_000, f64::NEG_INFINITY)
        .expect("in order");
    assert_eq!(n_stale_markers(&store), 1);
    let text = write(&store).expect("every series has a name");
    assert_eq!(
        text,
        "# TYPE http_requests counter\n\
         http_requests_total{pod=\"a\\\"\\\\\\n\tb\"} 1.0 15\n\
         http_requests_total{pod=\"a\\\"\\\\\\n\tb\"} 2.5 30\n\
         # TYPE rt_seconds histogram\n\
         rt_seconds_bucket{le=\"+Inf\"} 3.0 15\n\
         rt_seconds_bucket{le=\"0.5\"} 3.0 15\n\
         rt_seconds_count 3.0 15\n\
         # TYPE temperature unknown\n\
         temperature NaN 15\n\
         temperature -Inf 30\n\
         # EOF\n"
    );
}

#[test]
fn a_series_without_a_name_is_refused() {
    // Goal: nothing is dropped silently. Method: a nameless series.
    let mut store = Store::new();
    store
        .append(&Labels::from_pairs([("job", "x")]), 1, 1.0)
        .expect("in order");
    assert!(matches!(
        write(&store),
        Err(OpenMetricsError::NoMetricName { .. })
    ));
}
