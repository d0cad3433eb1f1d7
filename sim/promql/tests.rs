use proptest::prelude::*;

use super::functions::{Bucket, bucket_quantile, extrapolated_rate};
use super::*;
use crate::telemetry::store::{Labels, Sample, Store};

fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(t_s, value)| Sample {
            t_ms: t_s * 1000,
            value,
        })
        .collect()
}

fn store_with(series: &[(&[(&str, &str)], &[(i64, f64)])]) -> Store {
    let mut store = Store::new();
    for (labels, points) in series {
        let labels = Labels::from_pairs(labels.iter().copied());
        for &(t_s, v) in points.iter() {
            store
                .append(&labels, t_s * 1000, v)
                .expect("points are in time order");
        }
    }
    store
}

fn vector(value: Value) -> Vec<(String, f64)> {
    match value {
        Value::Vector(v) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[test]
fn increase_clamps_to_the_zero_point_before_the_threshold_test_as_in_2_42() {
    // Goal: 2.42's order of the zero clamp (spec §6.1 [ver]). Method: a counter first seen 120s
    // into a 360s window with value 8, rising 10 per minute. toZero = 240 * 8 / 40 = 48 lies
    // between avg/2 = 30 and 1.1 * avg = 66, so 2.42 extrapolates by 48 (2.51+ would use 30).
    let window = samples(&[
        (120, 8.0),
        (180, 18.0),
        (240, 28.0),
        (300, 38.0),
        (360, 48.0),
    ]);
    let increase = extrapolated_rate(&window, 0, 360_000, true, false).expect("five samples");
    assert_eq!(increase, 40.0 * (240.0 + 48.0) / 240.0);
}

#[test]
fn extrapolation_stops_at_half_an_interval_when_the_series_ends_early() {
    // Goal: near the series end the extrapolation is capped. Method: samples every 60s ending
    // 200s before the window end (beyond 1.1 * 60), so the end side adds avg/2 = 30s only.
    let window = samples(&[(0, 0.0), (60, 10.0), (120, 20.0), (180, 30.0), (240, 40.0)]);
    let increase = extrapolated_rate(&window, 0, 440_000, true, false).expect("five samples");
    assert_eq!(increase, 40.0 * (240.0 + 30.0) / 240.0);
}

#[test]
fn a_counter_reset_counts_the_value_before_the_drop() {
    // Goal: reset handling (spec §6.1 step 2). Method: 10, 20, 5, 15 over a window the samples
    // fill exactly: the increase is (15 - 10) + 20 = 25; delta() ignores resets and gives 5.
    let window = samples(&[(0, 10.0), (60, 20.0), (120, 5.0), (180, 15.0)]);
    assert_eq!(
        extrapolated_rate(&window, 0, 180_000, true, false),
        Some(25.0)
    );
    assert_eq!(
        extrapolated_rate(&window, 0, 180_000, false, false),
        Some(5.0)
    );
    assert_eq!(
        extrapolated_rate(&window[..1], 0, 180_000, true, true),
        None
    );
}

#[test]
fn histogram_quantile_needs_an_inf_bucket_and_caps_at_the_last_finite_bound() {
    // Goal: the +Inf bucket rules of spec §9. Method: no +Inf bucket gives NaN; a rank in the
    // +Inf bucket gives the highest finite bound; q outside [0, 1] gives -Inf/+Inf.
    let mut no_inf = vec![
        Bucket {
            upper_bound: 1.0,
            count: 5.0,
        },
        Bucket {
            upper_bound: 2.0,
            count: 10.0,
        },
    ];
    assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    let buckets = vec![
        Bucket {
            upper_bound: f64::INFINITY,
            count: 100.0,
        },
        Bucket {
            upper_bound: 1.0,
            count: 50.0,
        },
        Bucket {
            upper_bound: 2.5,
            count: 90.0,
        },
    ];
    assert_eq!(bucket_quantile(0.99, &mut buckets.clone()), 2.5);
    assert_eq!(bucket_quantile(0.5, &mut buckets.clone()), 1.0);
    assert_eq!(bucket_quantile(1.5, &mut buckets.clone()), f64::INFINITY);
    assert_eq!(
        bucket_quantile(-0.5, &mut buckets.clone()),
        f64::NEG_INFINITY
    );
    let mut only_inf = vec![Bucket {
        upper_bound: f64::INFINITY,
        count: 3.0,
    }];
    assert!(bucket_quantile(0.5, &mut only_inf).is_nan());
}

#[test]
fn the_lookback_includes_a_sample_exactly_five_minutes_old() {
    // Goal: 2.42's closed lookback boundary (spec §5). Method: one sample at 0; query at 300s
    // and at 300.001s.
    let store = store_with(&[(&[("__name__", "x")], &[(0, 1.0)])]);
    let engine = Engine::new(&store);
    assert_eq!(
        vector(engine.eval_instant("x", 300_000).expect("valid")).len(),
        1
    );
    assert!(vector(engine.eval_instant("x", 300_001).expect("valid")).is_empty());
}

#[test]
fn a_stale_marker_hides_the_series_at_once_but_not_from_range_functions() {
    // Goal: staleness (spec §5). Method: samples at 0s and 30s, a stale marker at 60s. At 90s
    // the instant selector is empty, while count_over_time still sees the two real samples.
    let mut store = store_with(&[(&[("__name__", "x")], &[(0, 1.0), (30, 2.0)])]);
    store
        .mark_stale(&Labels::from_pairs([("__name__", "x")]), 60_000)
        .expect("after the last sample");
    let engine = Engine::new(&store);
    assert!(vector(engine.eval_instant("x", 90_000).expect("valid")).is_empty());
    assert_eq!(
        vector(
            engine
                .eval_instant("count_over_time(x[5m])", 90_000)
                .expect("valid")
        ),
        [("{}".to_string(), 2.0)]
    );
}

#[test]
fn empty_inputs_give_empty_results_not_zero() {
    // Goal: aggregations and operators over nothing (spec §7, §8). Method: sum/count/binary
    // operators over a missing metric, and the `or vector(0)` idiom.
    let store = store_with(&[(&[("__name__", "x")], &[(0, 1.0)])]);
    let engine = Engine::new(&store);
    for expr in [
        "sum(missing)",
        "count(missing)",
        "missing / x",
        "x / missing",
        "missing and x",
        "topk(2, missing)",
    ] {
        assert!(
            vector(engine.eval_instant(expr, 0).expect("valid")).is_empty(),
            "{expr}"
        );
    }
    assert_eq!(
        vector(
            engine
                .eval_instant("count(missing) or vector(0)", 0)
                .expect("valid")
        ),
        [("{}".to_string(), 0.0)]
    );
    assert_eq!(
        vector(
            engine
                .eval_instant("absent(missing{job=\"a\"})", 0)
                .expect("valid")
        ),
        [("{job=\"a\"}".to_string(), 1.0)]
    );
}

#[test]
fn duplicate_series_and_ambiguous_matches_are_errors_with_upstreams_wording() {
    // Goal: the 2.42 errors (spec §8). Method: dropping the names of two metrics with equal
    // labels; a many-to-one match without group_left; duplicates on the "one" side.
    let store = store_with(&[
        (&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
        (&[("__name__", "b"), ("x", "1")], &[(0, 2.0)]),
        (&[("__name__", "c"), ("x", "1"), ("y", "1")], &[(0, 3.0)]),
        (&[("__name__", "c"), ("x", "1"), ("y", "2")], &[(0, 4.0)]),
    ]);
    let engine = Engine::new(&store);
    let err = engine
        .eval_instant("-{__name__=~\"a|b\"}", 0)
        .expect_err("same labels without names");
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    let err = engine
        .eval_instant("c / on(x) a", 0)
        .expect_err("two left matches");
    assert!(
        err.to_string()
            .starts_with("multiple matches for labels: many-to-one matching must be explicit"),
        "{err}"
    );
    let err = engine
        .eval_instant("a / on(x) c", 0)
        .expect_err("duplicates on the right");
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
    assert_eq!(
        vector(
            engine
                .eval_instant("c / on(x) group_left a", 0)
                .expect("valid")
        )
        .len(),
        2
    );
}

#[test]
fn constructs_beyond_prometheus_2_42_are_named_errors_not_empty_results() {
    // Goal: never a silent empty result. Method: functions and aggregations that the parser
    // (which follows Prometheus 3) knows but 2.42 does not.
    let store = store_with(&[(&[("__name__", "x"), ("a", "1")], &[(0, 1.0)])]);
    let engine = Engine::new(&store);
    for (expr, named) in [
        ("sort_by_label(x, \"a\")", "sort_by_label"),
        ("limitk(1, x)", "limitk"),
        ("mad_over_time(x[5m])", "mad_over_time"),
    ] {
        match engine.eval_instant(expr, 0) {
            Err(PromqlError::Unsupported { construct }) => {
                assert!(construct.contains(named), "{construct}")
            }
            other => panic!("{expr}: expected an unsupported error, got {other:?}"),
        }
    }
}

#[test]
fn a_range_query_returns_series_ordered_by_label_set_with_one_point_per_step() {
    // Goal: eval_range's shape. Method: two series, a 3-step range; the series come out sorted
    // and each has a point at every step where it has a value.
    let store = store_with(&[
        (&[("__name__", "x"), ("i", "b")], &[(0, 1.0), (60, 2.0)]),
        (&[("__name__", "x"), ("i", "a")], &[(0, 5.0)]),
    ]);
    let engine = Engine::new(&store);
    let Value::Matrix(m) = engine
        .eval_range("x * 2", 0, 120_000, 60_000)
        .expect("valid")
    else {
        panic!("a range query returns a matrix");
    };
    let got: Vec<(String, Vec<(i64, f64)>)> = m
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|p| (p.t_ms, p.value)).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "{i=\"a\"}".to_string(),
                vec![(0, 10.0), (60_000, 10.0), (120_000, 10.0)]
            ),
            (
                "{i=\"b\"}".to_string(),
                vec![(0, 2.0), (60_000, 4.0), (120_000, 4.0)]
            ),
        ]
    );
}

#[test]
fn count_values_labels_values_the_way_go_formats_floats() {
    // Goal: count_values uses strconv.FormatFloat(v, 'f', -1). Method: values 1, 1, 0.5 and +Inf.
    let store = store_with(&[
        (&[("__name__", "x"), ("i", "1")], &[(0, 1.0)]),
        (&[("__name__", "x"), ("i", "2")], &[(0, 1.0)]),
        (&[("__name__", "x"), ("i", "3")], &[(0, 0.5)]),
        (&[("__name__", "x"), ("i", "4")], &[(0, f64::INFINITY)]),
    ]);
    let engine = Engine::new(&store);
    let got = vector(
        engine
            .eval_instant("count_values(\"v\", x)", 0)
            .expect("valid"),
    );
    assert_eq!(
        got,
        [
            ("{v=\"1\"}".to_string(), 2.0),
            ("{v=\"0.5\"}".to_string(), 1.0),
            ("{v=\"+Inf\"}".to_string(), 1.0)
        ]
    );
}

/// A counter sampled every `interval_s`, with resets to `reset_to` at the flagged steps.
fn counter_series() -> impl Strategy<Value = (Vec<(f64, bool, f64)>, i64)> {
    (
        prop::collection::vec((0.0f64..100.0, any::<bool>(), 0.0f64..10.0), 2..40),
        1i64..120,
    )
}

proptest! {
    #[test]
    fn rate_of_a_counter_is_never_negative_across_resets((steps, interval_s) in counter_series(), window_steps in 1i64..50, at_step in 0i64..45) {
        // Goal: rate() of a counter is >= 0 whatever the resets. Method: random increments with
        // random resets to a small value, random window and evaluation time.
        let mut store = Store::new();
        let labels = Labels::from_pairs([("__name__", "c")]);
        let mut value = 0.0;
        for (i, (inc, reset, reset_to)) in steps.iter().enumerate() {
            value = if *reset { *reset_to } else { value + inc };
            store.append(&labels, i as i64 * interval_s * 1000, value).expect("in order");
        }
        let engine = Engine::new(&store);
        let window_s = window_steps * interval_s;
        let expr = format!("rate(c[{window_s}s])");
        let t_ms = at_step * interval_s * 1000;
        for (_, v) in vector(engine.eval_instant(&expr, t_ms).expect("valid")) {
            prop_assert!(v >= 0.0, "rate {} at {} ms", v, t_ms);
        }
    }

    #[test]
    fn histogram_quantile_is_monotone_in_the_quantile(increments in prop::collection::vec(0.0f64..50.0, 1..8), q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0) {
        // Goal: p(q1) <= p(q2) for q1 <= q2. Method: random cumulative buckets at bounds
        // 1, 2, 3, ... plus +Inf; compare two random quantiles.
        let mut count = 0.0;
        let mut buckets: Vec<Bucket> = increments
            .iter()
            .enumerate()
            .map(|(i, inc)| { count += inc; Bucket { upper_bound: (i + 1) as f64, count } })
            .collect();
        buckets.push(Bucket { upper_bound: f64::INFINITY, count: count + 1.0 });
        let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
        let a = bucket_quantile(lo, &mut buckets.clone());
        let b = bucket_quantile(hi, &mut buckets.clone());
        prop_assert!(a <= b, "p({}) = {} > p({}) = {}", lo, a, hi, b);
    }

    #[test]
    fn evaluating_twice_gives_the_same_result(values in prop::collection::vec(-100.0f64..100.0, 1..30), t_s in 0i64..400) {
        // Goal: evaluation is deterministic. Method: a random store of three series and a set of
        // expressions covering selectors, functions, aggregations and binary operators;
        // compare the two results bit for bit (via their Debug form, which keeps NaN).
        let mut store = Store::new();
        for (i, v) in values.iter().enumerate() {
            let labels = Labels::from_pairs([("__name__", "m"), ("k", ["a", "b", "c"][i % 3])]);
            store.append(&labels, (i as i64 / 3) * 15_000, *v).expect("in order");
        }
        let engine = Engine::new(&store);
        for expr in ["m", "rate(m[1m])", "sum by (k) (m)", "topk(2, m)", "m / on(k) m", "quantile(0.3, m)", "avg_over_time(m[2m:15s])", "sort_desc(m)"] {
            let first = format!("{:?}", engine.eval_instant(expr, t_s * 1000));
            let second = format!("{:?}", engine.eval_instant(expr, t_s * 1000));
            prop_assert_eq!(first, second);
        }
    }

    #[test]
    fn random_expression_strings_never_panic_the_parse_and_eval_path(tokens in prop::collection::vec(prop::sample::select(vec![
        "m", "x", "(", ")", "[5m]", "[1m:10s]", "{k=\"a\"}", "{k=~\"a|b\"}", "+", "-", "*", "/", "%", "^", " and ", " or ", " unless ",
        ">", "==", " bool ", "sum", "by (k)", "without (k)", "rate", "irate", "histogram_quantile", "topk", "count_values", "quantile",
        "label_replace", "absent", "scalar", "vector", "time()", ",", "1", "0.5", "-1", "\"k\"", "offset 1m", "@ 10", "@ start()",
        " on(k) ", " group_left ", "holt_winters", "sort", "clamp", "round", "timestamp", "day_of_week", "NaN", "Inf",
    ]), 1..12), t_s in -100i64..1000) {
        // Goal: no input string panics parsing or evaluation. Method: random token soup over
        // a small store; any Ok or Err is fine.
        let store = store_with(&[
            (&[("__name__", "m"), ("k", "a"), ("le", "1")], &[(0, 1.0), (60, 3.0)]),
            (&[("__name__", "m"), ("k", "b"), ("le", "+Inf")], &[(0, 2.0), (60, 5.0)]),
        ]);
        let engine = Engine::new(&store);
        let expr: String = tokens.concat();
        let _ = engine.eval_instant(&expr, t_s * 1000);
        let _ = engine.eval_range(&expr, t_s * 1000, t_s * 1000 + 120_000, 60_000);
    }
}
