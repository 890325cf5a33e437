//! One sample of measurements: [`BenchmarkResult`] and the order-statistic interval machinery behind it.
//!
//! Location is reported two ways. The median with a distribution-free order-statistic interval is
//! primary, because latency is skewed and often bimodal; the mean with a Student-t interval is kept
//! beside it (and in the seed's `ci_lower` / `ci_upper` fields), flagged when the shape makes it
//! unreliable. Nothing is ever dropped: outliers are classified and reported.

use super::check_confidence;
use super::distributions::student_t_quantile;
use crate::error::{check_finite, PerfError};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};
use std::collections::BTreeMap;

/// Default two-sided confidence level.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// 1-based ranks `(lower, upper)` of the order statistics that bracket the `p` quantile with at
/// least `confidence` coverage, distribution-free, or `None` when `n` is too small.
///
/// With `B ~ Binomial(n, p)`, `P(X_(l) <= q_p < X_(u)) = P(l <= B <= u - 1)`. The lower rank is the
/// largest with `P(B <= l - 1) <= alpha / 2`, the upper the smallest with `P(B <= u - 1) >= 1 - alpha / 2`,
/// so the coverage is at least the nominal level (the interval is conservative by construction).
pub fn order_statistic_ranks(n: usize, p: f64, confidence: f64) -> Option<(usize, usize)> {
    if n == 0 || !(0.0 < p && p < 1.0 && 0.0 < confidence && confidence < 1.0) {
        return None;
    }
    let binomial = Binomial::new(p, n as u64).ok()?;
    let tail = (1.0 - confidence) / 2.0;
    // Lower rank: largest l >= 1 with cdf(l - 1) <= tail.
    if binomial.cdf(0) > tail {
        return None;
    }
    let mut lower = 1usize;
    while lower < n && binomial.cdf(lower as u64) <= tail {
        lower += 1;
    }
    // Upper rank: smallest u <= n with cdf(u - 1) >= 1 - tail.
    let mut upper = lower;
    while upper <= n && binomial.cdf((upper - 1) as u64) < 1.0 - tail {
        upper += 1;
    }
    if upper > n {
        return None;
    }
    Some((lower, upper))
}

/// Exact coverage of the order-statistic interval with ranks `(lower, upper)` for `n` values.
pub fn order_statistic_coverage(n: usize, p: f64, ranks: (usize, usize)) -> f64 {
    let Ok(binomial) = Binomial::new(p, n as u64) else {
        return f64::NAN;
    };
    let (lower, upper) = ranks;
    if lower == 0 || upper <= lower || upper > n {
        return f64::NAN;
    }
    // P(lower <= B <= upper - 1) = cdf(upper - 1) - cdf(lower - 1).
    binomial.cdf((upper - 1) as u64) - binomial.cdf((lower - 1) as u64)
}

/// The smallest sample size for which [`order_statistic_ranks`] exists.
///
/// The widest interval is `[X_(1), X_(n)]`, which exists when both tails are small enough:
/// `(1 − p)^n ≤ α/2` and `p^n ≤ α/2`.
pub fn min_samples_for_quantile(p: f64, confidence: f64) -> usize {
    if !(0.0 < p && p < 1.0 && 0.0 < confidence && confidence < 1.0) {
        return usize::MAX;
    }
    let tail = (1.0 - confidence) / 2.0;
    let needed = (tail.ln() / p.ln()).max(tail.ln() / (1.0 - p).ln());
    // A tiny relative slack keeps an exact boundary (needed integral) from rounding up.
    (needed * (1.0 - 1e-12)).ceil().max(1.0) as usize
}

/// Distribution-free interval on the median by Hettmansperger–Sheather interpolation between the
/// order statistics `[X_(d), X_(n−d+1)]` (coverage γ_d ≥ level) and `[X_(d+1), X_(n−d)]` (γ_{d+1} < level).
///
/// The plain order-statistic interval is conservative (97.85% at n = 10 for a nominal 95%);
/// interpolating brings the coverage close to nominal while staying nearly distribution-free
/// (Hettmansperger & Sheather, 1986). `None` when n is too small for any interval.
pub fn median_interval(sorted: &[f64], confidence: f64) -> Option<(f64, f64)> {
    let n = sorted.len();
    if n < 2 {
        return None;
    }
    let binomial = Binomial::new(0.5, n as u64).ok()?;
    // γ_d = P(d ≤ B ≤ n − d) = 1 − 2·P(B ≤ d − 1) by symmetry.
    let coverage = |d: usize| 1.0 - 2.0 * binomial.cdf((d - 1) as u64);
    if coverage(1) < confidence {
        return None;
    }
    let mut d = 1;
    while d < n - d && coverage(d + 1) >= confidence {
        d += 1;
    }
    let outer = (sorted[d - 1], sorted[n - d]);
    if d + 1 > n - d {
        return Some(outer);
    }
    let (gamma_outer, gamma_inner) = (coverage(d), coverage(d + 1));
    if gamma_outer <= gamma_inner {
        return Some(outer);
    }
    let fraction = (gamma_outer - confidence) / (gamma_outer - gamma_inner);
    let (n_f, d_f) = (n as f64, d as f64);
    let lambda = (n_f - d_f) * fraction / (d_f + (n_f - 2.0 * d_f) * fraction);
    let lower = lambda * sorted[d] + (1.0 - lambda) * sorted[d - 1];
    let upper = lambda * sorted[n - d - 1] + (1.0 - lambda) * sorted[n - d];
    Some((lower, upper))
}

/// Linear-interpolation quantile (Hyndman–Fan type 7, numpy's default) of sorted data; `p` is
/// clamped into [0, 1]. `None` for an empty slice or a NaN `p`.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || p.is_nan() {
        return None;
    }
    Some(quantile_nonempty(sorted, p))
}

/// [`quantile_sorted`] for callers inside perf-core that hold a non-empty, validated sample.
pub(crate) fn quantile_nonempty(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let position = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// Median of unsorted data (copies). Returns `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, 0.5)
}

/// Sample mean and sample (n - 1) standard deviation.
pub fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let sum_sq: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (sum_sq / (n - 1.0)).sqrt())
}

/// A percentile with its distribution-free interval, or the reason it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileEstimate {
    /// Percentile in percent (50, 90, 95, 99).
    pub percentile: f64,
    /// Point estimate (type-7 interpolation).
    pub value: f64,
    /// Lower bound of the order-statistic interval.
    pub ci_lower: Option<f64>,
    /// Upper bound of the order-statistic interval.
    pub ci_upper: Option<f64>,
    /// Why there is no interval, e.g. "insufficient samples (need ≥ 36)".
    pub note: Option<String>,
}

/// Outliers, classified and counted; never removed from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierReport {
    /// Values below Q1 − 3·IQR.
    pub low_severe: usize,
    /// Values in [Q1 − 3·IQR, Q1 − 1.5·IQR).
    pub low_mild: usize,
    /// Values in (Q3 + 1.5·IQR, Q3 + 3·IQR].
    pub high_mild: usize,
    /// Values above Q3 + 3·IQR.
    pub high_severe: usize,
    /// Tukey fences: [Q1 − 3·IQR, Q1 − 1.5·IQR, Q3 + 1.5·IQR, Q3 + 3·IQR].
    pub tukey_fences: [f64; 4],
    /// Median absolute deviation (unscaled).
    pub mad: f64,
    /// Values whose modified z-score 0.6745·|x − median| / MAD exceeds 3.5 (Iglewicz–Hoaglin).
    pub mad_outliers: usize,
    /// Indices (into `values`) of every value outside the inner Tukey fences.
    pub tukey_outlier_indices: Vec<usize>,
}

/// Shape diagnostics that tell whether the mean is a fair summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionShape {
    /// Sample skewness g1 (0 when the spread is zero).
    pub skewness: f64,
    /// Sample excess kurtosis g2 (0 when the spread is zero).
    pub excess_kurtosis: f64,
    /// Sarle's bimodality coefficient (needs n ≥ 4); above 5/9 suggests two modes.
    pub bimodality_coefficient: Option<f64>,
    /// |skewness| > 1.
    pub skewed: bool,
    /// Bimodality coefficient > 5/9 with n ≥ 10.
    pub bimodal: bool,
}

/// A validated sample with its summary statistics and intervals.
///
/// Accessor names `metric_name, values, mean, std, median, min, max, count, ci_lower, ci_upper, metadata`
/// are the seed's field names; `ci_lower` / `ci_upper` are the Student-t interval on the mean.
///
/// Deserializing re-derives every statistic from the raw `values` through the checked constructor,
/// so a file cannot smuggle in a NaN, an empty sample or statistics that disagree with its values.
/// The fields are private (read them through the methods of the same names), so code outside
/// perf-core cannot alter a statistic either:
///
/// ```compile_fail
/// let mut result =
///     perf_core::stats::BenchmarkResult::from_values("t", "ns", vec![1.0, 2.0, 3.0]).unwrap();
/// result.median = f64::NAN;
/// ```
///
/// ```
/// let result =
///     perf_core::stats::BenchmarkResult::from_values("t", "ns", vec![1.0, 2.0, 3.0]).unwrap();
/// assert_eq!((result.median(), result.count()), (2.0, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredBenchmarkResult")]
pub struct BenchmarkResult {
    /// What was measured.
    pub(crate) metric_name: String,
    /// Every raw value, in measurement order.
    pub(crate) values: Vec<f64>,
    /// Arithmetic mean.
    pub(crate) mean: f64,
    /// Sample standard deviation (n − 1).
    pub(crate) std: f64,
    /// Median (type-7).
    pub(crate) median: f64,
    /// Smallest value.
    pub(crate) min: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// Number of values.
    pub(crate) count: usize,
    /// Lower end of the Student-t interval on the mean.
    pub(crate) ci_lower: f64,
    /// Upper end of the Student-t interval on the mean.
    pub(crate) ci_upper: f64,
    /// Free-form context (kernel, sizes, iterations per sample, ...).
    pub(crate) metadata: BTreeMap<String, serde_json::Value>,
    /// Unit of `values` (e.g. "ns").
    pub(crate) unit: String,
    /// Two-sided confidence level of every interval here.
    pub(crate) confidence_level: f64,
    /// Standard error of the mean.
    pub(crate) standard_error: f64,
    /// Coefficient of variation, std / |mean| (0 when the mean is 0).
    pub(crate) cv: f64,
    /// Order-statistic interval on the median (Hettmansperger–Sheather interpolated), when n allows one.
    pub(crate) median_ci: Option<(f64, f64)>,
    /// Why `median_ci` is missing, when it is.
    pub(crate) median_ci_note: Option<String>,
    /// p50, p90, p95, p99 with their intervals or the reason they have none.
    pub(crate) percentiles: Vec<PercentileEstimate>,
    /// Outlier classification.
    pub(crate) outliers: OutlierReport,
    /// Skew and bimodality diagnostics.
    pub(crate) shape: DistributionShape,
    /// Lag-1 autocorrelation of the values in measurement order.
    pub(crate) lag1_autocorrelation: f64,
    /// Effective sample size n / (1 + 2 Σ ρ_k), summing positive autocorrelations (initial sequence).
    pub(crate) effective_sample_size: f64,
    /// Human-readable cautions (skew, bimodality, autocorrelation).
    pub(crate) warnings: Vec<String>,
}

/// What a stored result must hold for its statistics to be re-derived: the raw values and what the
/// constructor does not compute.
#[derive(Deserialize)]
struct StoredBenchmarkResult {
    metric_name: String,
    unit: String,
    values: Vec<f64>,
    confidence_level: f64,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

impl TryFrom<StoredBenchmarkResult> for BenchmarkResult {
    type Error = PerfError;

    fn try_from(stored: StoredBenchmarkResult) -> Result<Self, PerfError> {
        let mut result = Self::with_confidence(
            stored.metric_name,
            stored.unit,
            stored.values,
            stored.confidence_level,
        )?;
        result.metadata = stored.metadata;
        Ok(result)
    }
}

impl BenchmarkResult {
    /// Build from raw values at the default 95% confidence.
    ///
    /// # Errors
    /// `Empty` for no values, `InsufficientSamples` for one value, `NonFinite` for NaN or ±inf.
    pub fn from_values(
        metric_name: impl Into<String>,
        unit: impl Into<String>,
        values: Vec<f64>,
    ) -> Result<Self, PerfError> {
        Self::with_confidence(metric_name, unit, values, DEFAULT_CONFIDENCE)
    }

    /// Build from raw values at a chosen two-sided confidence level.
    ///
    /// # Errors
    /// As [`BenchmarkResult::from_values`], plus `InvalidConfig` for a confidence outside (0, 1).
    pub fn with_confidence(
        metric_name: impl Into<String>,
        unit: impl Into<String>,
        values: Vec<f64>,
        confidence: f64,
    ) -> Result<Self, PerfError> {
        let metric_name = metric_name.into();
        check_confidence(confidence)?;
        check_finite(&metric_name, &values)?;
        if values.len() < 2 {
            return Err(PerfError::InsufficientSamples {
                what: format!("{metric_name} (spread needs two values)"),
                needed: 2,
                have: values.len(),
            });
        }
        let count = values.len();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let (mean, std) = mean_and_std(&values);
        if !(mean.is_finite() && std.is_finite()) {
            return Err(PerfError::InvalidInput(format!(
                "{metric_name}: values too large for a finite mean and variance"
            )));
        }
        let standard_error = std / (count as f64).sqrt();
        let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, (count - 1) as f64)?;
        let median = quantile_nonempty(&sorted, 0.5);

        let interval_at = |p: f64| -> (Option<(f64, f64)>, Option<String>) {
            match order_statistic_ranks(count, p, confidence) {
                Some((lower, upper)) => (Some((sorted[lower - 1], sorted[upper - 1])), None),
                None => (
                    None,
                    Some(format!(
                        "insufficient samples (need ≥ {})",
                        min_samples_for_quantile(p, confidence)
                    )),
                ),
            }
        };
        let median_ci = median_interval(&sorted, confidence);
        let median_ci_note = median_ci.is_none().then(|| {
            format!(
                "insufficient samples (need ≥ {})",
                min_samples_for_quantile(0.5, confidence)
            )
        });
        let percentiles = [50.0, 90.0, 95.0, 99.0]
            .into_iter()
            .map(|percentile| {
                let p = percentile / 100.0;
                let (interval, note) = if percentile == 50.0 {
                    (median_ci, median_ci_note.clone())
                } else {
                    interval_at(p)
                };
                PercentileEstimate {
                    percentile,
                    value: quantile_nonempty(&sorted, p),
                    ci_lower: interval.map(|i| i.0),
                    ci_upper: interval.map(|i| i.1),
                    note,
                }
            })
            .collect();

        let outliers = classify_outliers(&values, &sorted, median);
        let shape = distribution_shape(&values, mean, std);
        let lag1_autocorrelation = autocorrelation(&values, mean, 1);
        let effective_sample_size = effective_sample_size(&values, mean);

        let mut warnings = Vec::new();
        if shape.skewed {
            warnings.push(format!(
                "skewed (g1 = {:.2}): the mean and its t-interval are unreliable; use the median",
                shape.skewness
            ));
        }
        if shape.bimodal {
            warnings.push(format!(
                "possibly bimodal (bimodality coefficient {:.2} > 0.555): use the median",
                shape.bimodality_coefficient.unwrap_or(f64::NAN)
            ));
        }
        if effective_sample_size < 0.5 * count as f64 {
            warnings.push(format!(
                "autocorrelated samples: effective sample size {effective_sample_size:.1} of {count}"
            ));
        }

        Ok(Self {
            metric_name,
            mean,
            std,
            median,
            min: sorted[0],
            max: sorted[count - 1],
            count,
            ci_lower: mean - t * standard_error,
            ci_upper: mean + t * standard_error,
            metadata: BTreeMap::new(),
            unit: unit.into(),
            confidence_level: confidence,
            standard_error,
            cv: if mean == 0.0 { 0.0 } else { std / mean.abs() },
            median_ci,
            median_ci_note,
            percentiles,
            outliers,
            shape,
            lag1_autocorrelation,
            effective_sample_size,
            warnings,
            values,
        })
    }

    /// Attach a metadata entry (builder style).
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The percentile entry for `percentile` (50, 90, 95 or 99), if present.
    pub fn percentile(&self, percentile: f64) -> Option<&PercentileEstimate> {
        self.percentiles
            .iter()
            .find(|entry| (entry.percentile - percentile).abs() < 1e-9)
    }
}

/// Read access: the fields are private so that a result can only come from the checked constructor
/// (or a deserialization that re-derives every statistic through it).
impl BenchmarkResult {
    /// What was measured.
    pub fn metric_name(&self) -> &str {
        &self.metric_name
    }

    /// Every raw value, in measurement order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample standard deviation (n − 1).
    pub fn std(&self) -> f64 {
        self.std
    }

    /// Median (type-7).
    pub fn median(&self) -> f64 {
        self.median
    }

    /// Smallest value.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest value.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Number of values.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Lower end of the Student-t interval on the mean.
    pub fn ci_lower(&self) -> f64 {
        self.ci_lower
    }

    /// Upper end of the Student-t interval on the mean.
    pub fn ci_upper(&self) -> f64 {
        self.ci_upper
    }

    /// Free-form context (kernel, sizes, iterations per sample, ...).
    pub fn metadata(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.metadata
    }

    /// Unit of `values` (e.g. "ns").
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Two-sided confidence level of every interval here.
    pub fn confidence_level(&self) -> f64 {
        self.confidence_level
    }

    /// Standard error of the mean.
    pub fn standard_error(&self) -> f64 {
        self.standard_error
    }

    /// Coefficient of variation, std / |mean| (0 when the mean is 0).
    pub fn cv(&self) -> f64 {
        self.cv
    }

    /// Order-statistic interval on the median (Hettmansperger–Sheather interpolated), when n allows one.
    pub fn median_ci(&self) -> Option<(f64, f64)> {
        self.median_ci
    }

    /// Why `median_ci` is missing, when it is.
    pub fn median_ci_note(&self) -> Option<&str> {
        self.median_ci_note.as_deref()
    }

    /// p50, p90, p95, p99 with their intervals or the reason they have none.
    pub fn percentiles(&self) -> &[PercentileEstimate] {
        &self.percentiles
    }

    /// Outlier classification.
    pub fn outliers(&self) -> &OutlierReport {
        &self.outliers
    }

    /// Skew and bimodality diagnostics.
    pub fn shape(&self) -> &DistributionShape {
        &self.shape
    }

    /// Lag-1 autocorrelation of the values in measurement order.
    pub fn lag1_autocorrelation(&self) -> f64 {
        self.lag1_autocorrelation
    }

    /// Effective sample size n / (1 + 2 Σ ρ_k), summing positive autocorrelations (initial sequence).
    pub fn effective_sample_size(&self) -> f64 {
        self.effective_sample_size
    }

    /// Human-readable cautions (skew, bimodality, autocorrelation).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn classify_outliers(values: &[f64], sorted: &[f64], median: f64) -> OutlierReport {
    let q1 = quantile_nonempty(sorted, 0.25);
    let q3 = quantile_nonempty(sorted, 0.75);
    let iqr = q3 - q1;
    let fences = [
        q1 - 3.0 * iqr,
        q1 - 1.5 * iqr,
        q3 + 1.5 * iqr,
        q3 + 3.0 * iqr,
    ];
    let mut report = OutlierReport {
        low_severe: 0,
        low_mild: 0,
        high_mild: 0,
        high_severe: 0,
        tukey_fences: fences,
        mad: 0.0,
        mad_outliers: 0,
        tukey_outlier_indices: Vec::new(),
    };
    for (index, &value) in values.iter().enumerate() {
        if value < fences[0] {
            report.low_severe += 1;
        } else if value < fences[1] {
            report.low_mild += 1;
        } else if value > fences[3] {
            report.high_severe += 1;
        } else if value > fences[2] {
            report.high_mild += 1;
        } else {
            continue;
        }
        report.tukey_outlier_indices.push(index);
    }
    let deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    let mad = self::median(&deviations).unwrap_or(0.0);
    report.mad = mad;
    if mad > 0.0 {
        report.mad_outliers = deviations
            .iter()
            .filter(|&&d| 0.6745 * d / mad > 3.5)
            .count();
    }
    report
}

fn distribution_shape(values: &[f64], mean: f64, std: f64) -> DistributionShape {
    let n = values.len() as f64;
    let m2 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if m2 <= 0.0 || std <= 0.0 {
        return DistributionShape {
            skewness: 0.0,
            excess_kurtosis: 0.0,
            bimodality_coefficient: None,
            skewed: false,
            bimodal: false,
        };
    }
    let m3 = values.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
    let m4 = values.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n;
    let skewness = m3 / m2.powf(1.5);
    let excess_kurtosis = m4 / (m2 * m2) - 3.0;
    let bimodality_coefficient = if values.len() >= 4 {
        Some(
            (skewness * skewness + 1.0)
                / (excess_kurtosis + 3.0 * (n - 1.0).powi(2) / ((n - 2.0) * (n - 3.0))),
        )
    } else {
        None
    };
    DistributionShape {
        skewness,
        excess_kurtosis,
        bimodality_coefficient,
        skewed: skewness.abs() > 1.0,
        bimodal: values.len() >= 10 && bimodality_coefficient.is_some_and(|b| b > 5.0 / 9.0),
    }
}

fn autocorrelation(values: &[f64], mean: f64, lag: usize) -> f64 {
    if lag >= values.len() {
        return 0.0;
    }
    let variance: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    if variance <= 0.0 {
        return 0.0;
    }
    let covariance: f64 = values
        .windows(lag + 1)
        .map(|w| (w[0] - mean) * (w[lag] - mean))
        .sum();
    covariance / variance
}

/// Effective sample size with Geyer's initial positive sequence: sum autocorrelations until one is ≤ 0.
pub fn effective_sample_size(values: &[f64], mean: f64) -> f64 {
    let n = values.len();
    let mut sum = 0.0;
    for lag in 1..n / 2 {
        let rho = autocorrelation(values, mean, lag);
        if rho <= 0.0 {
            break;
        }
        sum += rho;
    }
    (n as f64 / (1.0 + 2.0 * sum)).clamp(1.0, n as f64)
}

#[cfg(test)]
mod tests;
