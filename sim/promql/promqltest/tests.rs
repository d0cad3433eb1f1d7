use std::path::Path;

use super::*;

fn parse_text(text: &str) -> Result<TestFile, Diagnostic> {
    parse(Path::new("t.test"), text)
}

fn run_text(text: &str) -> Vec<Outcome> {
    let file = parse_text(text).expect("well-formed test file");
    run(&file)
        .expect("loads succeed")
        .into_iter()
        .map(|r| r.outcome)
        .collect()
}

#[test]
fn the_expanding_notation_follows_upstream() {
    // Goal: `a+bxN` gives N+1 values, `_xN` N empty slots, `axN` N+1 copies, `stale` a marker.
    // Method: expand each form.
    assert_eq!(
        expand_item("1+2x3").expect("valid"),
        [Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
    );
    assert_eq!(
        expand_item("10-5x2").expect("valid"),
        [Some(10.0), Some(5.0), Some(0.0)]
    );
    assert_eq!(
        expand_item("-2+4x1").expect("valid"),
        [Some(-2.0), Some(2.0)]
    );
    assert_eq!(
        expand_item("0x2").expect("valid"),
        [Some(0.0), Some(0.0), Some(0.0)]
    );
    assert_eq!(expand_item("_x3").expect("valid"), [None, None, None]);
    assert_eq!(expand_item("1e3").expect("valid"), [Some(1000.0)]);
    let stale = expand_item("stale").expect("valid");
    assert!(stale[0].is_some_and(crate::telemetry::store::is_stale_nan));
    assert!(expand_item("1+x").is_err());
    assert!(expand_item("abc").is_err());
}

#[test]
fn a_malformed_file_names_the_line() {
    // Goal: bad input is a diagnostic with a line number. Method: an unknown command on line 4
    // and a bad series value on line 2.
    let err = parse_text("load 1m\n  x 1 2\n\nfrobnicate\n").expect_err("unknown command");
    assert_eq!(err.location.line, 4);
    assert!(err.message.contains("invalid command"), "{}", err.message);
    let err = parse_text("load 1m\n  x{a=\"1\"} 1 two\n").expect_err("bad value");
    assert_eq!(err.location.line, 2);
    let err = parse_text("load 1m\n  x 1\n\neval instant at soon x\n").expect_err("bad time");
    assert_eq!(err.location.line, 4);
}

#[test]
fn a_wrong_expectation_fails_and_a_right_one_passes() {
    // Goal: the runner can fail (no test that cannot fail). Method: the same query with a right
    // value, a wrong value, a missing series, an extra series and a wrong eval_fail.
    let outcomes = run_text(concat!(
        "load 1m\n  x{a=\"1\"} 0+1x10\n  x{a=\"2\"} 5x10\n\n",
        "eval instant at 5m x{a=\"1\"}\n  x{a=\"1\"} 5\n\n",
        "eval instant at 5m x{a=\"1\"}\n  x{a=\"1\"} 6\n\n",
        "eval instant at 5m x\n  x{a=\"1\"} 5\n\n",
        "eval instant at 5m x{a=\"1\"}\n  x{a=\"1\"} 5\n  x{a=\"3\"} 5\n\n",
        "eval_fail instant at 5m x\n\n",
        "eval instant at 5m scalar(x{a=\"2\"})\n  5\n",
    ));
    assert_eq!(outcomes[0], Outcome::Pass);
    assert!(matches!(outcomes[1], Outcome::Fail(_)));
    assert!(matches!(outcomes[2], Outcome::Fail(_)));
    assert!(matches!(outcomes[3], Outcome::Fail(_)));
    assert!(matches!(outcomes[4], Outcome::Fail(_)));
    assert_eq!(outcomes[5], Outcome::Pass);
}

#[test]
fn eval_ordered_checks_positions() {
    // Goal: eval_ordered compares the order. Method: sort() with the expectation in and out
    // of ascending order.
    let outcomes = run_text(concat!(
        "load 1m\n  x{a=\"1\"} 3\n  x{a=\"2\"} 1\n\n",
        "eval_ordered instant at 0m sort(x)\n  x{a=\"2\"} 1\n  x{a=\"1\"} 3\n\n",
        "eval_ordered instant at 0m sort(x)\n  x{a=\"1\"} 3\n  x{a=\"2\"} 1\n",
    ));
    assert_eq!(outcomes[0], Outcome::Pass);
    assert!(matches!(outcomes[1], Outcome::Fail(_)));
}

#[test]
fn almost_equal_is_upstreams_relative_comparison() {
    // Goal: the float comparison of promql/test.go. Method: boundary values.
    assert!(almost_equal(f64::NAN, f64::NAN));
    assert!(almost_equal(1.0, 1.0 + 1e-9));
    assert!(!almost_equal(1.0, 1.0001));
    assert!(!almost_equal(0.0, 1e-300));
    assert!(almost_equal(f64::INFINITY, f64::INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
}

#[test]
fn prometheus_durations_parse_with_units_in_order() {
    // Goal: model.ParseDuration. Method: compound, bare zero, and out-of-order units.
    assert_eq!(parse_prometheus_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(parse_prometheus_duration_ms("0"), Some(0));
    assert_eq!(parse_prometheus_duration_ms("1ms"), Some(1));
    assert_eq!(parse_prometheus_duration_ms("30m1h"), None);
    assert_eq!(parse_prometheus_duration_ms("5"), None);
}
