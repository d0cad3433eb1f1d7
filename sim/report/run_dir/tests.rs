use std::path::Path;

use super::*;
use crate::telemetry::store::{Labels, Store, is_stale_nan, stale_nan};

fn store_with_every_kind_of_value() -> Store {
    let mut store = Store::new();
    let up = Labels::from_pairs([("__name__", "up"), ("job", "a\"b\\c\n")]);
    for (t_ms, v) in [
        (15_000, 1.0),
        (30_000, 0.1 + 0.2),
        (45_000, f64::NAN),
        (60_000, f64::INFINITY),
        (75_000, f64::NEG_INFINITY),
        (90_000, 1e300),
        (100_123, stale_nan()),
        (105_000, -0.0),
    ] {
        store.append(&up, t_ms, v).expect("in order");
    }
    let other = Labels::from_pairs([("__name__", "x_total"), ("pod", "p-0001")]);
    store.append(&other, 15_000, 5e-324).expect("in order");
    store
}

#[test]
fn series_read_back_are_the_series_written_bit_for_bit_stale_markers_included() {
    // Goal: series.jsonl loses nothing: labels with quotes and newlines, subnormal and huge
    // numbers, infinities, NaN and the stale marker kept apart. Method: write, parse, compare.
    let store = store_with_every_kind_of_value();
    let text: String = store
        .ids()
        .map(|id| {
            let s = store.series(id);
            series_line(&s.labels, s.samples()) + "\n"
        })
        .collect();
    assert!(text.contains("[100123,\"stale\"]"), "{text}");
    assert!(text.contains("[45000,\"NaN\"]"), "{text}");
    let back = parse_series(Path::new("series.jsonl"), &text).expect("our own output parses");
    assert_eq!(back.len(), store.len());
    for (a, b) in store.ids().zip(back.ids()) {
        let (a, b) = (store.series(a), back.series(b));
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.samples().len(), b.samples().len());
        for (x, y) in a.samples().iter().zip(b.samples()) {
            assert_eq!(x.t_ms, y.t_ms);
            assert_eq!(is_stale_nan(x.value), is_stale_nan(y.value));
            if x.value.is_nan() {
                assert!(y.value.is_nan());
            } else {
                assert_eq!(
                    x.value.to_bits(),
                    y.value.to_bits(),
                    "{} vs {}",
                    x.value,
                    y.value
                );
            }
        }
    }
}

#[test]
fn a_malformed_series_line_is_an_error_naming_the_file_and_line() {
    // Goal: bad input names where it is. Method: three bad files, each checked for its line
    // and reason.
    let good = r#"{"labels":{"__name__":"up"},"samples":[[1000,1]]}"#;
    for (text, line, why) in [
        (format!("{good}\nnot json\n"), 2, "not a JSON object"),
        (
            format!("{good}\n{{\"labels\":{{}},\"samples\":[[1,\"x\"]]}}\n"),
            2,
            "is not a number",
        ),
        (
            r#"{"labels":{"__name__":"up"},"samples":[[2000,1],[1000,1]]}"#.to_string(),
            1,
            "out of order",
        ),
    ] {
        let err = parse_series(Path::new("run/series.jsonl"), &text).expect_err("malformed");
        let RunDirError::Malformed(diag) = err else {
            panic!("expected a diagnostic")
        };
        assert_eq!(diag.location.line, line, "{}", diag.headline());
        assert!(
            diag.headline().starts_with("run/series.jsonl:"),
            "{}",
            diag.headline()
        );
        assert!(diag.message.contains(why), "{}", diag.headline());
    }
}

#[test]
fn copies_of_rule_files_with_the_same_name_get_distinct_names() {
    // Goal: two rule files called alerts.yaml in different folders both survive in rules/.
    // Method: name three copies.
    let taken = vec!["alerts.yaml".to_string()];
    assert_eq!(copy_name(Path::new("a/x.yaml"), &taken), "x.yaml");
    assert_eq!(
        copy_name(Path::new("b/alerts.yaml"), &taken),
        "alerts-2.yaml"
    );
    let taken = vec!["alerts.yaml".to_string(), "alerts-2.yaml".to_string()];
    assert_eq!(
        copy_name(Path::new("c/alerts.yaml"), &taken),
        "alerts-3.yaml"
    );
}
