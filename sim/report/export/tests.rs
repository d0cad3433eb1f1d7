use std::path::{Path, PathBuf};

use super::*;
use crate::promql::promtool::expand_values;
use crate::telemetry::store::stale_nan;

fn same(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x.to_bits() == y.to_bits()
                    || (x.is_nan() && y.is_nan() && !is_stale_nan(*x) && !is_stale_nan(*y))
            }
            _ => false,
        })
}

#[test]
fn compacted_values_expand_back_to_the_same_slots_bit_for_bit() {
    // Goal: the notation twin writes is read back by the expander (which adds as promtool
    // does) into exactly the run's values. Method: counters, gauges with fractions, gaps,
    // stale markers, resets and negative steps, compacted and expanded.
    let cases: Vec<Vec<Option<f64>>> = vec![
        vec![
            None,
            Some(0.0),
            Some(5.0),
            Some(10.0),
            Some(15.0),
            None,
            None,
            None,
            Some(2.0),
        ],
        vec![Some(0.1), Some(0.2), Some(0.30000000000000004), Some(0.4)],
        vec![
            Some(7.0),
            Some(7.0),
            Some(7.0),
            Some(stale_nan()),
            None,
            Some(1.0),
        ],
        vec![
            Some(100.0),
            Some(90.0),
            Some(80.0),
            Some(0.0),
            Some(1.5),
            Some(1e300),
        ],
        vec![
            Some(-5.0),
            Some(-4.0),
            Some(-3.0),
            Some(f64::INFINITY),
            Some(f64::NAN),
        ],
        vec![Some(0.0)],
        vec![],
    ];
    for values in cases {
        let text = compact(&values);
        let back = expand_values(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(same(&values, &back), "{values:?} -> {text:?} -> {back:?}");
    }
    assert_eq!(
        compact(&[None, Some(0.0), Some(5.0), Some(10.0)]),
        "_ 0.0+5.0x2"
    );
    assert_eq!(
        compact(&[Some(3.0), Some(3.0), Some(3.0), None, None]),
        "3.0x2 _x2"
    );
    assert_eq!(compact(&[Some(9.0), Some(6.0), Some(3.0)]), "9.0-3.0x2");
}

#[test]
fn rule_file_paths_are_relative_to_the_test_file_folder() {
    // Goal: promtool resolves rule_files against the test file's folder. Method: three layouts.
    assert_eq!(
        relative_to(Path::new("/r/run/rules/a.yaml"), Path::new("/r/run")),
        PathBuf::from("rules/a.yaml")
    );
    assert_eq!(
        relative_to(Path::new("/r/run/rules/a.yaml"), Path::new("/r/tests")),
        PathBuf::from("../run/rules/a.yaml")
    );
    assert_eq!(
        relative_to(Path::new("/r/run/rules/a.yaml"), Path::new("/r/run/x/../")),
        PathBuf::from("rules/a.yaml")
    );
}
