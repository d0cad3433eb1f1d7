//! Service-time distributions: how long one request occupies a pod's concurrency slot.
//!
//! A [`ServiceTime`] is the description (what a scenario writes); [`ServiceTime::sampler`]
//! validates it once and returns a [`ServiceTimeSampler`] whose draws cannot fail.
//!
//! - `LogNormal` is fitted from two quantiles: `mu = ln(p50)`, `sigma = ln(p99 / p50) / z99`
//!   with `z99` the standard normal 99th percentile, which is how latency SLOs are usually
//!   stated. `p99 == p50` is a degenerate (constant) lognormal; `p99 < p50` is an error.
//! - `Empirical` takes Prometheus-style cumulative histogram buckets (`le` upper bounds with
//!   cumulative counts) and samples the way `histogram_quantile` reads them: pick a bucket in
//!   proportion to its count, then a uniform point inside it, the first bucket starting at 0.
//!
//! Invariant: every sampled duration is finite and non-negative.

use rand::RngExt;
use rand_distr::{Distribution, Exp, LogNormal};

use super::WorkloadError;
use crate::engine::{SimDuration, SimRng};

/// The standard normal distribution's 0.99 quantile.
pub const Z_99: f64 = 2.326_347_874_040_841;

/// One cumulative histogram bucket: `count` observations were at most `le`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramBucket {
    pub le: SimDuration,
    pub count: u64,
}

/// How long a request takes once it holds a concurrency slot.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceTime {
    Constant(SimDuration),
    Exponential {
        mean: SimDuration,
    },
    LogNormal {
        p50: SimDuration,
        p99: SimDuration,
    },
    /// Cumulative buckets with strictly increasing finite bounds (drop the `+Inf` bucket).
    Empirical {
        buckets: Vec<HistogramBucket>,
    },
}

/// A validated distribution, ready to draw from.
#[derive(Clone, Debug)]
pub struct ServiceTimeSampler {
    kind: SamplerKind,
    mean_secs: f64,
    second_moment_secs2: f64,
}

#[derive(Clone, Debug)]
enum SamplerKind {
    Constant(SimDuration),
    Exponential(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Empirical {
        lower_secs: Vec<f64>,
        upper_secs: Vec<f64>,
        cumulative: Vec<u64>,
        total: u64,
    },
}

impl ServiceTime {
    /// Validates the description and builds its sampler.
    pub fn sampler(&self) -> Result<ServiceTimeSampler, WorkloadError> {
        match self {
            ServiceTime::Constant(duration) => {
                let secs = duration.as_secs_f64();
                Ok(ServiceTimeSampler {
                    kind: SamplerKind::Constant(*duration),
                    mean_secs: secs,
                    second_moment_secs2: secs * secs,
                })
            }
            ServiceTime::Exponential { mean } => {
                if *mean == SimDuration::ZERO {
                    return Err(WorkloadError::InvalidShape {
                        field: "exponential.mean",
                        why: "an exponential service time needs a mean above zero".to_string(),
                    });
                }
                let mean_secs = mean.as_secs_f64();
                let exp =
                    Exp::new(1.0 / mean_secs).map_err(|error| WorkloadError::InvalidShape {
                        field: "exponential.mean",
                        why: error.to_string(),
                    })?;
                Ok(ServiceTimeSampler {
                    kind: SamplerKind::Exponential(exp),
                    mean_secs,
                    second_moment_secs2: 2.0 * mean_secs * mean_secs,
                })
            }
            ServiceTime::LogNormal { p50, p99 } => {
                if p99 < p50 {
                    return Err(WorkloadError::QuantilesInverted {
                        p50: *p50,
                        p99: *p99,
                    });
                }
                if *p50 == SimDuration::ZERO {
                    return Err(WorkloadError::InvalidShape {
                        field: "lognormal.p50",
                        why: "a lognormal needs a median above zero".to_string(),
                    });
                }
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z_99;
                let distribution =
                    LogNormal::new(mu, sigma).map_err(|error| WorkloadError::InvalidShape {
                        field: "lognormal",
                        why: error.to_string(),
                    })?;
                Ok(ServiceTimeSampler {
                    kind: SamplerKind::LogNormal(distribution),
                    mean_secs: (mu + sigma * sigma / 2.0).exp(),
                    second_moment_secs2: (2.0 * mu + 2.0 * sigma * sigma).exp(),
                })
            }
            ServiceTime::Empirical { buckets } => empirical(buckets),
        }
    }
}

fn empirical(buckets: &[HistogramBucket]) -> Result<ServiceTimeSampler, WorkloadError> {
    let mut lower_secs = Vec::with_capacity(buckets.len());
    let mut upper_secs = Vec::with_capacity(buckets.len());
    let mut cumulative = Vec::with_capacity(buckets.len());
    let mut previous: Option<HistogramBucket> = None;
    for (index, bucket) in buckets.iter().enumerate() {
        if let Some(before) = previous {
            if bucket.le <= before.le {
                return Err(WorkloadError::BadBucket {
                    index,
                    why: format!(
                        "le {} is not above the previous bucket's le {}",
                        bucket.le, before.le
                    ),
                });
            }
            if bucket.count < before.count {
                return Err(WorkloadError::BadBucket {
                    index,
                    why: format!(
                        "cumulative count {} is below the previous bucket's {}; counts must not decrease",
                        bucket.count, before.count
                    ),
                });
            }
        }
        lower_secs.push(previous.map_or(0.0, |before| before.le.as_secs_f64()));
        upper_secs.push(bucket.le.as_secs_f64());
        cumulative.push(bucket.count);
        previous = Some(*bucket);
    }
    let total = previous.map_or(0, |last| last.count);
    if total == 0 {
        return Err(WorkloadError::EmptyHistogram);
    }
    // Moments of the piecewise-uniform density, summed bucket by bucket in order.
    let (mut mean_secs, mut second_moment_secs2) = (0.0, 0.0);
    let mut count_before = 0;
    for index in 0..cumulative.len() {
        let weight = (cumulative[index] - count_before) as f64 / total as f64;
        let (a, b) = (lower_secs[index], upper_secs[index]);
        mean_secs += weight * (a + b) / 2.0;
        second_moment_secs2 += weight * (a * a + a * b + b * b) / 3.0;
        count_before = cumulative[index];
    }
    Ok(ServiceTimeSampler {
        kind: SamplerKind::Empirical {
            lower_secs,
            upper_secs,
            cumulative,
            total,
        },
        mean_secs,
        second_moment_secs2,
    })
}

impl ServiceTimeSampler {
    /// One service time.
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        match &self.kind {
            SamplerKind::Constant(duration) => *duration,
            SamplerKind::Exponential(exp) => SimDuration::from_secs_f64(exp.sample(rng)),
            SamplerKind::LogNormal(distribution) => {
                SimDuration::from_secs_f64(distribution.sample(rng))
            }
            SamplerKind::Empirical {
                lower_secs,
                upper_secs,
                cumulative,
                total,
            } => {
                let rank = rng.random_range(0..*total);
                // The first bucket whose cumulative count exceeds the rank holds it; empty
                // buckets share their count with the one before and are never chosen.
                let index = cumulative.partition_point(|&count| count <= rank);
                let (a, b) = (lower_secs[index], upper_secs[index]);
                SimDuration::from_secs_f64(a + (b - a) * rng.random::<f64>())
            }
        }
    }

    /// The distribution's mean [s].
    pub fn mean_secs(&self) -> f64 {
        self.mean_secs
    }

    /// `E[S^2]` [s^2], which the Pollaczek–Khinchine formula needs.
    pub fn second_moment_secs2(&self) -> f64 {
        self.second_moment_secs2
    }
}
