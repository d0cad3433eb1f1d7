//! Kubernetes resource quantities (`100m`, `2Gi`, `1.5`, `129e6`) as exact milli-units.
//!
//! Mirrors `k8s.io/apimachinery/pkg/api/resource` (`ParseQuantity`, `MilliValue`) of Kubernetes
//! 1.29: the grammar is a signed decimal number (`1`, `1.5`, `.5`, `5.`) followed by nothing, a
//! binary suffix (`Ki Mi Gi Ti Pi Ei`), a decimal suffix (`n u m k M G T P E`) or a decimal
//! exponent (`e3`, `E-2`). A value finer than one milli-unit is rounded up, away from zero, as
//! `MilliValue` does (`inf.RoundUp`). Spaces, other suffixes and an empty string are errors.
//!
//! Like `ParseQuantity`, a magnitude above 2^63-1 units is capped there ([`MAX_MILLIS`]).
//!
//! Invariant: arithmetic is exact (integers only); nothing wraps.

use std::fmt;

/// A quantity in thousandths of its unit (millicores for CPU, millibytes for memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Quantity {
    pub millis: i128,
}

impl Quantity {
    pub fn from_millis(millis: i128) -> Quantity {
        Quantity { millis }
    }

    /// The whole value, rounded up away from zero as Kubernetes' `Value()` does (`1500m` → 2).
    pub fn value_ceil(self) -> i128 {
        let whole = self.millis / 1000;
        if self.millis % 1000 == 0 {
            whole
        } else if self.millis > 0 {
            whole + 1
        } else {
            whole - 1
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis % 1000 == 0 {
            write!(f, "{}", self.millis / 1000)
        } else {
            write!(f, "{}m", self.millis)
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(text: &str) -> Result<Quantity, QuantityError> {
        parse_quantity(text)
    }
}

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{input:?} is not a quantity: {why}")]
    Invalid { input: String, why: &'static str },
}

/// Significant decimal digits kept exactly; any further non-zero digit still rounds up.
const KEPT_DIGITS: usize = 30;

/// The largest quantity Kubernetes holds: `ParseQuantity` caps the magnitude at 2^63-1 units.
pub const MAX_MILLIS: i128 = (i64::MAX as i128) * 1000;

/// Parses a quantity into exact milli-units.
pub fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    let invalid = |why| QuantityError::Invalid {
        input: input.to_string(),
        why,
    };

    if input.is_empty() {
        return Err(invalid("empty"));
    }
    let bytes = input.as_bytes();
    let mut pos = 0;
    let negative = match bytes[0] {
        b'-' => {
            pos += 1;
            true
        }
        b'+' => {
            pos += 1;
            false
        }
        _ => false,
    };
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &input[int_start..pos];
    let mut frac_digits = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &input[frac_start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(invalid("expected a number (such as 2, 1.5 or 100m)"));
    }
    let suffix = &input[pos..];
    // (power of ten, power of 1024) the suffix multiplies by.
    let (mut exponent10, power1024): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => {
            let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
                return Err(invalid(
                    "unknown suffix (one of n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent e3)",
                ));
            };
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("an exponent must be a whole number, as in 129e6"));
            }
            // Beyond ±9999 the value is capped or rounds up to one milli-unit either way.
            let exponent = if digits.len() > 4 {
                if exp.starts_with('-') {
                    -99_999
                } else {
                    99_999
                }
            } else {
                exp.parse::<i64>()
                    .map_err(|_| invalid("an exponent must be a whole number, as in 129e6"))?
            };
            (exponent, 0)
        }
    };
    let all_digits = format!("{int_digits}{frac_digits}");
    let significant = all_digits.trim_start_matches('0');
    // Keep the leading digits exactly; remember whether anything non-zero was dropped, which
    // only matters for rounding up (a 30-digit mantissa is already far above the cap).
    let (kept, dropped, sticky) = if significant.len() > KEPT_DIGITS {
        let (kept, rest) = significant.split_at(KEPT_DIGITS);
        (kept, rest.len() as i64, rest.bytes().any(|b| b != b'0'))
    } else {
        (significant, 0, false)
    };
    let mantissa: i128 = kept.parse().unwrap_or(0);
    // value = mantissa * 10^(exponent10 + dropped - frac_len) * 1024^power1024; we want it * 1000.
    exponent10 += 3 + dropped - frac_digits.len() as i64;
    let mut millis = Some(mantissa);
    for _ in 0..power1024 {
        millis = millis.and_then(|m| m.checked_mul(1024));
    }
    let millis = match millis {
        None => MAX_MILLIS,
        Some(0) => 0,
        Some(numerator) if exponent10 >= 0 => {
            let mut scaled = Some(numerator);
            for _ in 0..exponent10.min(40) {
                scaled = scaled.and_then(|m| m.checked_mul(10));
            }
            scaled.unwrap_or(MAX_MILLIS).min(MAX_MILLIS)
        }
        Some(numerator) => {
            let shift = (-exponent10) as u32;
            if shift > 38 {
                // Far below one milli-unit: a non-zero value rounds up to one.
                1
            } else {
                let denominator = 10i128.pow(shift);
                let whole = numerator / denominator;
                let exact = numerator % denominator == 0 && !sticky;
                (if exact { whole } else { whole + 1 }).min(MAX_MILLIS)
            }
        }
    };
    Ok(Quantity {
        millis: if negative { -millis } else { millis },
    })
}
