use super::*;

#[test]
fn quantities_read_into_base_units_rounding_up() {
    // Goal: suffixes, fractions and exponents as apimachinery reads them. Method: a table.
    let milli = |s: &str| Quantity::parse(s).and_then(Quantity::milli_value);
    let value = |s: &str| Quantity::parse(s).and_then(Quantity::value);
    assert_eq!(milli("500m"), Ok(500));
    assert_eq!(milli("2"), Ok(2000));
    assert_eq!(milli("0.1"), Ok(100));
    assert_eq!(milli("0.0001"), Ok(1), "rounds up to a whole millicore");
    assert_eq!(value("1Gi"), Ok(1 << 30));
    assert_eq!(value("1.5Mi"), Ok(3 << 19));
    assert_eq!(value("2k"), Ok(2000));
    assert_eq!(value("1e3"), Ok(1000));
    assert_eq!(value("+7"), Ok(7));
    assert_eq!(value("-1"), Ok(-1));
}

#[test]
fn malformed_quantities_are_errors() {
    // Goal: no panic, a clear error. Method: junk suffixes and numbers.
    for text in ["2x", "", ".", "1.2.3", "Gi", "1e99"] {
        assert!(Quantity::parse(text).is_err(), "{text:?}");
    }
    // Parses, but does not fit in i64 milli-units.
    let huge = Quantity::parse("999999999999999999999999999999Ei").and_then(Quantity::milli_value);
    assert!(huge.is_err());
    let big = Quantity::parse("100000000000000000").and_then(Quantity::milli_value);
    assert!(matches!(big, Err(QuantityError::OutOfRange(_))));
}

#[test]
fn amounts_print_in_the_api_servers_canonical_form() {
    // Goal: quota messages print cpu as `500m`/`2` and bytes with the largest exact binary
    // suffix. Method: a table.
    assert_eq!(format_amount("requests.cpu", 500), "500m");
    assert_eq!(format_amount("limits.cpu", 3000), "3");
    assert_eq!(format_amount("requests.memory", 1536 << 20), "1536Mi");
    assert_eq!(format_amount("requests.memory", 2 << 30), "2Gi");
    assert_eq!(format_amount("requests.storage", 1500), "1500");
    assert_eq!(format_amount("pods", 12), "12");
    assert_eq!(format_amount("requests.nvidia.com/gpu", 2), "2");
}
