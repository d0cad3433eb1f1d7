//! Closed-form queueing results the pod model is checked against, and the batch-means
//! confidence interval used to compare a simulated mean with them.
//!
//! - M/M/c (Erlang C): `P(wait) = C(c, a)` with offered load `a = lambda / mu`, computed
//!   through the Erlang B recursion `B(k) = a B(k-1) / (k + a B(k-1))`, which stays stable for
//!   large `c`; then `Wq = C / (c mu - lambda)`.
//! - M/G/1 (Pollaczek–Khinchine): `Wq = lambda E[S^2] / (2 (1 - rho))`, which covers M/M/1
//!   (`E[S^2] = 2/mu^2`) and M/D/1 (`E[S^2] = 1/mu^2`).
//! - Batch means: successive observations of a queue are strongly correlated, so the sample
//!   variance understates the error of their mean. Cutting the run into `k` consecutive batches
//!   and treating the batch means as roughly independent gives an honest Student-t interval.
//!
//! Invariant: an unstable queue (`rho >= 1`) has no stationary wait, and the functions say so
//! with `None` rather than returning a negative or infinite number.

/// Erlang C: the probability that an arrival to an M/M/c queue must wait.
pub fn erlang_c(servers: u32, offered_load: f64) -> Option<f64> {
    let c = f64::from(servers);
    if servers == 0 || offered_load.is_nan() || offered_load < 0.0 || offered_load >= c {
        return None;
    }
    let mut erlang_b = 1.0;
    for k in 1..=servers {
        erlang_b = offered_load * erlang_b / (f64::from(k) + offered_load * erlang_b);
    }
    Some(c * erlang_b / (c - offered_load * (1.0 - erlang_b)))
}

/// Mean time in queue (before service) of M/M/c [s].
pub fn mmc_mean_wait_secs(
    arrival_rate_per_sec: f64,
    service_rate_per_sec: f64,
    servers: u32,
) -> Option<f64> {
    let probability_wait = erlang_c(servers, arrival_rate_per_sec / service_rate_per_sec)?;
    Some(probability_wait / (f64::from(servers) * service_rate_per_sec - arrival_rate_per_sec))
}

/// Mean time in queue of M/G/1 from the service time's first two moments [s].
pub fn mg1_mean_wait_secs(
    arrival_rate_per_sec: f64,
    service_mean_secs: f64,
    service_second_moment_secs2: f64,
) -> Option<f64> {
    let utilization = arrival_rate_per_sec * service_mean_secs;
    if !(0.0..1.0).contains(&utilization) {
        return None;
    }
    Some(arrival_rate_per_sec * service_second_moment_secs2 / (2.0 * (1.0 - utilization)))
}

/// The two-sided 97.5 % quantile of Student's t with `df` degrees of freedom, by the
/// Cornish–Fisher expansion around the normal quantile. For `df >= 10` it is within 0.002 of
/// the table value (df 19: 2.0927 against 2.0930), which is plenty for a 95 % interval.
pub fn student_t_975(df: u32) -> f64 {
    let z: f64 = 1.959_963_984_540_054;
    let n = f64::from(df.max(1));
    z + (z.powi(3) + z) / (4.0 * n)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
}

/// A batch-means accumulator over a known number of observations.
#[derive(Clone, Debug)]
pub struct BatchMeans {
    batch_size: u64,
    n_batches: u32,
    in_batch: u64,
    batch_sum: f64,
    batch_means: Vec<f64>,
}

/// A mean with its 95 % confidence half-width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceInterval {
    pub mean: f64,
    pub half_width: f64,
}

impl ConfidenceInterval {
    pub fn contains(&self, value: f64) -> bool {
        (value - self.mean).abs() <= self.half_width
    }
}

impl BatchMeans {
    /// Batches of `total / n_batches` observations; at least 10 batches, so the t quantile
    /// above is accurate. Observations past the last full batch are ignored.
    pub fn new(total_observations: u64, n_batches: u32) -> Self {
        assert!(n_batches >= 10, "batch means needs at least 10 batches");
        let batch_size = (total_observations / u64::from(n_batches)).max(1);
        BatchMeans {
            batch_size,
            n_batches,
            in_batch: 0,
            batch_sum: 0.0,
            batch_means: Vec::with_capacity(n_batches as usize),
        }
    }

    #[inline]
    pub fn record(&mut self, value: f64) {
        if self.batch_means.len() == self.n_batches as usize {
            return;
        }
        self.batch_sum += value;
        self.in_batch += 1;
        if self.in_batch == self.batch_size {
            self.batch_means
                .push(self.batch_sum / self.batch_size as f64);
            self.in_batch = 0;
            self.batch_sum = 0.0;
        }
    }

    /// Batches completed so far.
    pub fn batches(&self) -> usize {
        self.batch_means.len()
    }

    /// The grand mean and its 95 % half-width; `None` until two batches are complete.
    pub fn interval(&self) -> Option<ConfidenceInterval> {
        let k = self.batch_means.len();
        if k < 2 {
            return None;
        }
        let mean = self.batch_means.iter().sum::<f64>() / k as f64;
        let variance = self
            .batch_means
            .iter()
            .map(|m| (m - mean) * (m - mean))
            .sum::<f64>()
            / (k - 1) as f64;
        let half_width = student_t_975(k as u32 - 1) * (variance / k as f64).sqrt();
        Some(ConfidenceInterval { mean, half_width })
    }
}
