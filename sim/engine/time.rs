//! Virtual time: [`SimTime`] (an instant since the run began) and [`SimDuration`], both in
//! integer nanoseconds, and the parser for the duration strings Kubernetes and Prometheus write.
//!
//! Invariant: no floating point reaches a stored time; fractional inputs ("1.5h", "0.25s") are
//! converted once, exactly where the decimal digits allow, and rejected when they would round.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Nanoseconds per unit, for the suffixes both Go's `time.ParseDuration` and Prometheus's
/// `model.ParseDuration` accept. Prometheus's `d`, `w` and `y` are fixed lengths (24 h, 7 d, 365 d).
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
    ("y", 365 * 86_400 * 1_000_000_000),
];

/// A span of virtual time [ns].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(pub u64);

/// An instant of virtual time: nanoseconds since the run started [ns].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

/// `x.round() as u64` for `0 <= x < 2^64`, without the library call that `f64::round` is on
/// baseline x86-64 (every sampled duration goes through here). Exact: below 2^53 the integer
/// part and the fraction are both exact in `f64`; at or above it `x` is already whole.
#[inline]
pub(crate) fn round_positive(x: f64) -> u64 {
    let whole = x as u64;
    whole + u64::from(x - whole as f64 >= 0.5)
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);
    pub const MAX: SimDuration = SimDuration(u64::MAX);

    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms * 1_000_000)
    }
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s * 1_000_000_000)
    }
    /// From seconds as a float [s]; negative and NaN inputs give zero, huge ones saturate.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_nan() || s <= 0.0 {
            SimDuration(0)
        } else {
            let ns = s * 1e9;
            if ns >= u64::MAX as f64 {
                SimDuration(u64::MAX)
            } else {
                SimDuration(round_positive(ns))
            }
        }
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// Whole seconds, truncated.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub fn saturating_mul(self, k: u64) -> Self {
        SimDuration(self.0.saturating_mul(k))
    }
}

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);

    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }
    pub const fn from_secs(s: u64) -> Self {
        SimTime(s * 1_000_000_000)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Milliseconds since the start, as Prometheus timestamps are counted [ms].
    pub const fn as_millis(self) -> i64 {
        (self.0 / 1_000_000) as i64
    }
    /// Time elapsed since `earlier`; zero when `earlier` is later.
    pub fn since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    /// Saturates at [`SimTime::MAX`] rather than wrapping: "never" stays never.
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}
impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        *self = *self + d;
    }
}
impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, earlier: SimTime) -> SimDuration {
        self.since(earlier)
    }
}
impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

/// Writes `1h2m3.5s` style: largest units first, zero units left out, the seconds with as
/// many decimals as they need (up to nanoseconds); `0s` for zero.
fn write_nanos(f: &mut fmt::Formatter<'_>, ns: u64) -> fmt::Result {
    if ns == 0 {
        return f.write_str("0s");
    }
    const S: u64 = 1_000_000_000;
    let (d, rest) = (ns / (86_400 * S), ns % (86_400 * S));
    let (h, rest) = (rest / (3_600 * S), rest % (3_600 * S));
    let (m, rest) = (rest / (60 * S), rest % (60 * S));
    let (s, frac) = (rest / S, rest % S);
    let mut out = String::new();
    if d > 0 {
        out.push_str(&format!("{d}d"));
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || frac > 0 {
        if frac == 0 {
            out.push_str(&format!("{s}s"));
        } else {
            let digits = format!("{frac:09}");
            out.push_str(&format!("{s}.{}s", digits.trim_end_matches('0')));
        }
    }
    f.write_str(&out)
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_nanos(f, self.0)
    }
}
impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_nanos(f, self.0)
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("{input:?} is not a duration: {why}")]
    Invalid { input: String, why: &'static str },
    #[error("{input:?} is negative; a duration here must be zero or more")]
    Negative { input: String },
    #[error("{input:?} is too long to represent")]
    Overflow { input: String },
}

/// Parses a duration as Kubernetes (Go's `time.ParseDuration`: `1h30m`, `1.5h`, `300ms`) and
/// Prometheus (`30s`, `5m`, `1d`, `2w`, `1y`) write them. A sequence of number-unit pairs; each
/// number may have a decimal part; a bare `0` is zero. Anything else is an error, never zero.
pub fn parse_duration(input: &str) -> Result<SimDuration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative {
            input: input.to_string(),
        });
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(SimDuration::ZERO);
    }
    let invalid = |why| DurationError::Invalid {
        input: input.to_string(),
        why,
    };
    let overflow = || DurationError::Overflow {
        input: input.to_string(),
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut total: u64 = 0;
    while pos < bytes.len() {
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &text[int_start..pos];
        let mut frac_digits = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &text[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("expected a number before each unit"));
        }
        let unit_start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_digit() && bytes[pos] != b'.' {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        if unit.is_empty() {
            return Err(invalid(
                "missing unit (one of ns, us, ms, s, m, h, d, w, y)",
            ));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| invalid("unknown unit (one of ns, us, ms, s, m, h, d, w, y)"))?;
        let whole: u64 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| overflow())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(overflow)?;
        if !frac_digits.is_empty() {
            // Exact decimal arithmetic: frac / 10^len * scale, keeping the nanoseconds whole.
            let mut numerator: u128 = 0;
            let mut denominator: u128 = 1;
            for digit in frac_digits.bytes().take(30) {
                numerator = numerator * 10 + u128::from(digit - b'0');
                denominator *= 10;
            }
            let frac_ns = numerator * u128::from(scale) / denominator;
            part = part
                .checked_add(u64::try_from(frac_ns).map_err(|_| overflow())?)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    Ok(SimDuration(total))
}

impl std::str::FromStr for SimDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}
