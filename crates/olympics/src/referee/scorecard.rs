//! What the referee returns: a submission's [`Scorecard`] (quality with its interval, the latency
//! distribution, memory, compliance, LoadGen's scenarios) or an ERROR, as an [`Outcome`].

use perf_core::claim::{ClaimResult, Estimate};
use perf_core::stats::{paired_proportion_difference, BenchmarkResult, PercentileEstimate};
use serde::{Deserialize, Serialize};

use crate::compliance::Compliance;
use crate::event::{DataSource, QualityMetric};

/// A latency percentile in milliseconds with its interval, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPercentile {
    /// Percentile in percent.
    pub percentile: f64,
    /// Value, ms.
    pub value_ms: f64,
    /// Order-statistic interval, ms.
    pub ci_ms: Option<(f64, f64)>,
    /// Why there is no interval.
    pub note: Option<String>,
}

impl LatencyPercentile {
    pub(crate) fn from_estimate(estimate: Option<&PercentileEstimate>, percentile: f64) -> Self {
        match estimate {
            Some(estimate) => LatencyPercentile {
                percentile,
                value_ms: estimate.value / 1e6,
                ci_ms: estimate
                    .ci_lower
                    .zip(estimate.ci_upper)
                    .map(|(lower, upper)| (lower / 1e6, upper / 1e6)),
                note: estimate.note.clone(),
            },
            None => LatencyPercentile {
                percentile,
                value_ms: f64::NAN,
                ci_ms: None,
                note: Some("not computed by perf-core".into()),
            },
        }
    }

    /// As an estimate (ms) at the order-statistic interval's `confidence`, for compliance; `Err` with the
    /// reason when the percentile has no interval (too few samples).
    pub fn estimate(&self, confidence: f64) -> Result<Estimate, String> {
        let Some((lower, upper)) = self.ci_ms else {
            return Err(self
                .note
                .clone()
                .unwrap_or_else(|| format!("no interval on p{}", self.percentile)));
        };
        Estimate::new(
            self.value_ms,
            lower.min(self.value_ms),
            upper.max(self.value_ms),
            "ms",
            confidence,
        )
        .map_err(|error| error.to_string())
    }
}

/// The single-query latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: LatencyPercentile,
    /// 90th percentile (the compliance statistic).
    pub p90: LatencyPercentile,
    /// 99th percentile.
    pub p99: LatencyPercentile,
    /// Mean, ms (reported; skewed latency makes it a poor location statistic).
    pub mean_ms: f64,
    /// Student-t interval on the mean, ms.
    pub mean_ci_ms: (f64, f64),
    /// Samples.
    pub n_samples: usize,
    /// Queries per sample (1 unless a query is shorter than 1000 clock ticks).
    pub queries_per_sample: u64,
    /// Whether perf-core's warm-up reached steady state.
    pub steady_state: bool,
    /// perf-core's warnings (skew, bimodality, autocorrelation).
    pub warnings: Vec<String>,
    /// Every sample, ms.
    pub samples_ms: Vec<f64>,
}

impl LatencySummary {
    pub(super) fn from_result(result: &BenchmarkResult, steady_state: bool) -> Self {
        let queries_per_sample = result
            .metadata()
            .get("iterations_per_sample")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1);
        LatencySummary {
            p50: LatencyPercentile::from_estimate(result.percentile(50.0), 50.0),
            p90: LatencyPercentile::from_estimate(result.percentile(90.0), 90.0),
            p99: LatencyPercentile::from_estimate(result.percentile(99.0), 99.0),
            mean_ms: result.mean() / 1e6,
            mean_ci_ms: (result.ci_lower() / 1e6, result.ci_upper() / 1e6),
            n_samples: result.count(),
            queries_per_sample,
            steady_state,
            warnings: result.warnings().to_vec(),
            samples_ms: result.values().iter().map(|value| value / 1e6).collect(),
        }
    }
}

/// Quality on the test split with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityEstimate {
    /// The metric.
    pub metric: QualityMetric,
    /// Point estimate (a fraction, or an AUC).
    pub point: f64,
    /// Lower bound.
    pub ci_lower: f64,
    /// Upper bound.
    pub ci_upper: f64,
    /// Confidence of the interval.
    pub confidence: f64,
    /// Test rows evaluated.
    pub n: usize,
    /// Correct predictions (accuracy only).
    pub successes: Option<usize>,
    /// How the interval was computed.
    pub method: String,
    /// Mean cross-entropy of the softmax of the outputs, nats (accuracy events only).
    pub mean_loss_nats: Option<f64>,
    /// Whether the full split was used (false only when
    /// [`RefereeConfig::max_test_rows`](crate::referee::RefereeConfig::max_test_rows) cut it).
    pub full_split: bool,
    /// Whether each evaluated row was predicted correctly (accuracy events; empty for AUC), for paired
    /// comparisons between submissions on the same rows. Not serialized.
    #[serde(skip)]
    pub per_row_correct: Vec<bool>,
}

/// Paired difference of two accuracies measured on the same rows, in percentage points (`a − b`), with a
/// Student-t interval on the per-row differences ([`perf_core::stats::paired_proportion_difference`]; the
/// Clopper–Pearson bound on the disagreement rate when every row agrees). `None` when either estimate has
/// no per-row record or the rows differ in number.
pub fn paired_accuracy_difference(
    a: &QualityEstimate,
    b: &QualityEstimate,
    confidence: f64,
) -> Option<(f64, f64, f64)> {
    let difference =
        paired_proportion_difference(&a.per_row_correct, &b.per_row_correct, confidence).ok()?;
    Some((
        100.0 * difference.mean,
        100.0 * difference.ci_lower,
        100.0 * difference.ci_upper,
    ))
}

impl QualityEstimate {
    /// As an estimate for compliance (a fraction or an AUC, unitless).
    ///
    /// # Errors
    /// A non-finite point or bound.
    pub fn estimate(&self) -> Result<Estimate, perf_core::PerfError> {
        Estimate::new(
            self.point,
            self.ci_lower.min(self.point),
            self.ci_upper.max(self.point),
            "",
            self.confidence,
        )
    }
}

/// Memory of a submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Bytes of the stored parameters, as the submission reports them.
    pub storage_bytes: usize,
    /// Peak heap above the baseline during one query, by allocation; `None` when not measurable.
    pub peak_query_bytes: Option<usize>,
    /// Why the peak is missing.
    pub note: Option<String>,
}

impl MemoryRecord {
    /// The memory objective: stored parameters plus the peak heap of one query (storage alone when the peak
    /// could not be measured; `note` says so).
    pub fn footprint_bytes(&self) -> usize {
        self.storage_bytes + self.peak_query_bytes.unwrap_or(0)
    }
}

/// Everything measured about one submission in one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// Event name.
    pub event: String,
    /// Submission name.
    pub submission: String,
    /// Declared optimizations, in words.
    pub optimizations: Vec<String>,
    /// Where the data came from.
    pub source: DataSource,
    /// Quality.
    pub quality: QualityEstimate,
    /// Latency distribution.
    pub latency: LatencySummary,
    /// Memory.
    pub memory: MemoryRecord,
    /// Compliance verdict.
    pub compliance: Compliance,
    /// Quality target and latency limit it was judged against.
    pub target: f64,
    /// p90 limit, ms.
    pub latency_limit_ms: f64,
    /// LoadGen's scenarios: SingleStream, Offline, Server.
    #[serde(default)]
    pub scenarios: crate::scenario::ScenarioReport,
}

impl std::fmt::Display for Scorecard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p90 = &self.latency.p90;
        let p90_ci = p90.ci_ms.map_or_else(
            || p90.note.clone().unwrap_or_default(),
            |(lower, upper)| format!("[{lower:.4}, {upper:.4}]"),
        );
        write!(
            formatter,
            "[{}] {} / {}: {} {:.4} [{:.4}, {:.4}] (n = {}, target {:.2}); p50 {:.4} ms, p90 {:.4} ms {} (limit {} ms), mean {:.4} ms; {} B stored, peak query heap {}; {}",
            self.source.origin,
            self.event,
            self.submission,
            self.quality.metric,
            self.quality.point,
            self.quality.ci_lower,
            self.quality.ci_upper,
            self.quality.n,
            self.target,
            self.latency.p50.value_ms,
            p90.value_ms,
            p90_ci,
            self.latency_limit_ms,
            self.latency.mean_ms,
            self.memory.storage_bytes,
            self.memory
                .peak_query_bytes
                .map_or_else(|| "not measured".to_string(), |bytes| format!("{bytes} B")),
            self.compliance.verdict()
        )
    }
}

impl Scorecard {
    /// The submission's compliance as a perf-core claim result (id `olympics.<event>.<submission>.compliance`),
    /// judged by [`perf_core::claim::Claim::judge`]; see [`Compliance::claim_result`].
    pub fn claim_result(&self) -> ClaimResult {
        self.compliance.claim_result()
    }
}

/// The referee's answer for one submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Measured.
    Scored(Box<Scorecard>),
    /// Could not be measured: a panic, an error or a wrong output shape.
    Error {
        /// The submission.
        submission: String,
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The scorecard, if measured.
    pub fn scorecard(&self) -> Option<&Scorecard> {
        match self {
            Outcome::Scored(card) => Some(card),
            Outcome::Error { .. } => None,
        }
    }

    /// The submission's name.
    pub fn submission(&self) -> &str {
        match self {
            Outcome::Scored(card) => &card.submission,
            Outcome::Error { submission, .. } => submission,
        }
    }
}
