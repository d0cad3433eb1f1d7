use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

#[test]
fn series_come_out_ordered_by_label_set_whatever_the_insertion_order() {
    // Goal: deterministic iteration. Method: insert three series out of order, select them all.
    let mut store = Store::new();
    for instance in ["2", "0", "1"] {
        store
            .append(
                &labels(&[("__name__", "up"), ("instance", instance)]),
                0,
                1.0,
            )
            .expect("fresh series");
    }
    let got: Vec<String> = store
        .select(&[Matcher::equal(METRIC_NAME, "up")])
        .into_iter()
        .map(|id| store.series(id).labels.get_or_empty("instance").to_string())
        .collect();
    assert_eq!(got, ["0", "1", "2"]);
}

#[test]
fn a_stale_marker_is_told_apart_from_an_ordinary_nan() {
    // Goal: staleness uses the exact bit pattern. Method: compare the marker with f64::NAN.
    assert!(is_stale_nan(stale_nan()));
    assert!(!is_stale_nan(f64::NAN));
    let mut store = Store::new();
    let up = labels(&[("__name__", "up")]);
    store.append(&up, 0, 1.0).expect("first sample");
    let id = store
        .mark_stale(&up, 15_000)
        .expect("stale marker after the sample");
    assert!(is_stale_nan(store.series(id).samples()[1].value));
}

#[test]
fn an_out_of_order_sample_is_refused() {
    // Goal: samples stay in time order. Method: append at 10s then at 5s and at 10s again.
    let mut store = Store::new();
    let up = labels(&[("__name__", "up")]);
    store.append(&up, 10_000, 1.0).expect("first sample");
    assert!(matches!(
        store.append(&up, 5_000, 1.0),
        Err(StoreError::OutOfOrder { .. })
    ));
    assert!(matches!(
        store.append(&up, 10_000, 1.0),
        Err(StoreError::OutOfOrder { .. })
    ));
}

#[test]
fn regex_matchers_are_anchored_and_a_missing_label_matches_empty() {
    // Goal: matcher semantics of Prometheus. Method: a partial regex must not match; `x=""`
    // selects the series that lack `x`.
    let mut store = Store::new();
    store
        .append(&labels(&[("__name__", "a"), ("job", "api-server")]), 0, 1.0)
        .expect("fresh");
    store
        .append(
            &labels(&[("__name__", "a"), ("job", "api"), ("x", "1")]),
            0,
            1.0,
        )
        .expect("fresh");
    let partial = Matcher::regex("job", "api", false).expect("valid regex");
    assert_eq!(store.select(&[partial]).len(), 1);
    assert_eq!(store.select(&[Matcher::equal("x", "")]).len(), 1);
}

#[test]
fn window_lookup_is_closed_on_both_ends() {
    // Goal: 2.42 range selectors are [t-d, t]. Method: samples every 10s, window [10s, 30s].
    let mut store = Store::new();
    let up = labels(&[("__name__", "up")]);
    for i in 0..5 {
        store.append(&up, i * 10_000, i as f64).expect("in order");
    }
    let id = store.select(&[Matcher::equal(METRIC_NAME, "up")])[0];
    let window = store.series(id).samples_between(10_000, 30_000);
    assert_eq!(
        window.iter().map(|s| s.value).collect::<Vec<_>>(),
        [1.0, 2.0, 3.0]
    );
    assert_eq!(
        store
            .series(id)
            .latest_at_or_before(35_000)
            .map(|s| s.value),
        Some(3.0)
    );
}

#[test]
fn a_memoised_selection_picks_up_series_created_after_it() {
    // Goal: select_shared never serves a stale answer. Method: select, add a matching and a
    // non-matching series, select again; compare with the unmemoised select.
    let mut store = Store::new();
    store
        .append(&labels(&[("__name__", "up"), ("job", "b")]), 0, 1.0)
        .expect("fresh");
    let matchers = [
        Matcher::equal(METRIC_NAME, "up"),
        Matcher::regex("job", "a|b", false).expect("valid"),
    ];
    assert_eq!(store.select_shared(&matchers).len(), 1);
    store
        .append(&labels(&[("__name__", "up"), ("job", "a")]), 0, 1.0)
        .expect("fresh");
    store
        .append(&labels(&[("__name__", "up"), ("job", "c")]), 0, 1.0)
        .expect("fresh");
    assert_eq!(
        store.select_shared(&matchers).to_vec(),
        store.select(&matchers)
    );
    assert_eq!(store.select_shared(&matchers).len(), 2);
    store.clear();
    assert!(store.select_shared(&matchers).is_empty());
}
