//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `1e3`) read into base units, and
//! printed back the way the API server prints them in quota messages.
//!
//! Rounding follows apimachinery: a quantity's milli-value and value round up (a CPU request
//! of `0.0001` is 1 millicore).

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    #[error("{0:?} is not a quantity")]
    Malformed(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// An exact quantity as a fraction `numerator / denominator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    numerator: i128,
    denominator: i128,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let malformed = || QuantityError::Malformed(text.to_string());
        let trimmed = text.trim();
        let (negative, body) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(malformed());
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.len() + fraction.len() > 30 {
            return Err(QuantityError::OutOfRange(text.to_string()));
        }
        let digits = format!("{whole}{fraction}");
        let mut numerator: i128 = digits.parse().map_err(|_| malformed())?;
        let mut denominator: i128 = 10i128.pow(fraction.len() as u32);
        let (multiplier, divisor): (i128, i128) = match suffix {
            "" => (1, 1),
            "n" => (1, 1_000_000_000),
            "u" => (1, 1_000_000),
            "m" => (1, 1_000),
            "k" => (1_000, 1),
            "M" => (1_000_000, 1),
            "G" => (1_000_000_000, 1),
            "T" => (1_000_000_000_000, 1),
            "P" => (1_000_000_000_000_000, 1),
            "E" => (1_000_000_000_000_000_000, 1),
            "Ki" => (1 << 10, 1),
            "Mi" => (1 << 20, 1),
            "Gi" => (1 << 30, 1),
            "Ti" => (1 << 40, 1),
            "Pi" => (1 << 50, 1),
            "Ei" => (1 << 60, 1),
            exp if exp.starts_with(['e', 'E']) => {
                let power: i32 = exp[1..].parse().map_err(|_| malformed())?;
                if power.unsigned_abs() > 18 {
                    return Err(QuantityError::OutOfRange(text.to_string()));
                }
                let scale = 10i128.pow(power.unsigned_abs());
                if power >= 0 { (scale, 1) } else { (1, scale) }
            }
            _ => return Err(malformed()),
        };
        numerator = numerator
            .checked_mul(multiplier)
            .ok_or_else(|| QuantityError::OutOfRange(text.to_string()))?;
        denominator *= divisor;
        if negative {
            numerator = -numerator;
        }
        Ok(Quantity {
            numerator,
            denominator,
        })
    }

    /// The value in thousandths, rounded up (cpu millicores).
    pub fn milli_value(self) -> Result<i64, QuantityError> {
        self.scaled_ceil(1000)
    }

    /// The value in base units, rounded up (bytes, counts).
    pub fn value(self) -> Result<i64, QuantityError> {
        self.scaled_ceil(1)
    }

    fn scaled_ceil(self, scale: i128) -> Result<i64, QuantityError> {
        let out_of_range =
            || QuantityError::OutOfRange(format!("{}/{}", self.numerator, self.denominator));
        let scaled = self.numerator.checked_mul(scale).ok_or_else(out_of_range)?;
        let mut out = scaled.div_euclid(self.denominator);
        if scaled.rem_euclid(self.denominator) != 0 {
            out += 1;
        }
        i64::try_from(out).map_err(|_| out_of_range())
    }
}

/// Whether a resource name is counted in millicores (cpu) rather than base units.
pub fn is_cpu_resource(name: &str) -> bool {
    name == "cpu" || name.ends_with(".cpu")
}

fn is_byte_resource(name: &str) -> bool {
    let base = name.rsplit('.').next().unwrap_or(name);
    name.ends_with("memory")
        || name.ends_with("storage")
        || base.starts_with("hugepages-")
        || name.contains("hugepages-")
}

/// Prints an amount of `name` (millicores for cpu, base units otherwise) in the API
/// server's canonical form: `500m` / `2` for cpu, the largest exact binary suffix for
/// memory and storage (`512Mi`, `1Gi`, `1500`), a plain integer for counts.
pub fn format_amount(name: &str, amount: i64) -> String {
    if is_cpu_resource(name) {
        return if amount % 1000 == 0 {
            format!("{}", amount / 1000)
        } else {
            format!("{amount}m")
        };
    }
    if is_byte_resource(name) && amount != 0 {
        for (suffix, shift) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            let unit = 1i64 << shift;
            if amount % unit == 0 {
                return format!("{}{suffix}", amount / unit);
            }
        }
    }
    amount.to_string()
}

#[cfg(test)]
mod tests;
