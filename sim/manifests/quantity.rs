//! Kubernetes resource quantities (`100m`, `2Gi`, `1.5`, `129e6`) as exact milli-units.
//!
//! Mirrors `k8s.io/apimachinery/pkg/api/resource` (`ParseQuantity`, `MilliValue`) of Kubernetes
//! 1.29: the grammar is a signed decimal number (`1`, `1.5`, `.5`, `5.`) followed by nothing, a
//! binary suffix (`Ki Mi Gi Ti Pi Ei`), a decimal suffix (`n u m k M G T P E`) or a decimal
//! exponent (`e3`, `E-2`). A value finer than one milli-unit is rounded up, away from zero, as
//! `MilliValue` does (`inf.RoundUp`). Spaces, other suffixes and an empty string are errors.
//!
//! Invariant: arithmetic is exact (integers only); a quantity beyond what an `i128` of
//! milli-units holds is an error, never a wrapped or saturated number.

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
    #[error("{input:?} is too large a quantity for twin")]
    TooLarge { input: String },
}

/// Decimal digits kept; beyond this a quantity is refused rather than rounded silently.
const MAX_DIGITS: usize = 30;

/// Parses a quantity into exact milli-units.
pub fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    let invalid = |why| QuantityError::Invalid {
        input: input.to_string(),
        why,
    };
    let too_large = || QuantityError::TooLarge {
        input: input.to_string(),
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
            if digits.len() > 4 {
                return Err(too_large());
            }
            let exponent = exp
                .parse::<i64>()
                .map_err(|_| invalid("an exponent must be a whole number, as in 129e6"))?;
            (exponent, 0)
        }
    };
    let all_digits = format!("{int_digits}{frac_digits}");
    let significant = all_digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(too_large());
    }
    let mantissa: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| too_large())?
    };
    // value = mantissa * 10^(exponent10 - frac_len) * 1024^power1024; we want value * 1000.
    exponent10 += 3 - frac_digits.len() as i64;
    let mut numerator = mantissa;
    for _ in 0..power1024 {
        numerator = numerator.checked_mul(1024).ok_or_else(too_large)?;
    }
    let millis = if exponent10 >= 0 {
        for _ in 0..exponent10 {
            numerator = numerator.checked_mul(10).ok_or_else(too_large)?;
        }
        numerator
    } else {
        let shift = (-exponent10) as u32;
        if shift > 38 {
            // Far below one milli-unit: zero stays zero, anything else rounds up to one.
            i128::from(numerator != 0)
        } else {
            let denominator = 10i128.pow(shift);
            let whole = numerator / denominator;
            if numerator % denominator == 0 {
                whole
            } else {
                whole + 1
            }
        }
    };
    Ok(Quantity {
        millis: if negative { -millis } else { millis },
    })
}
