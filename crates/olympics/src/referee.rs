//! The referee: runs a submission on an event and returns its scorecard, or an ERROR for that submission
//! alone.
//!
//! Protocol, for each submission in turn:
//! 1. quality on the full test split, rows in order, in batches; every output's shape is checked;
//!    accuracy with a Clopper–Pearson interval, ROC AUC with a Hanley–McNeil interval;
//! 2. peak heap of one query, by allocation (perf-core's counting allocator, when installed);
//! 3. latency of single queries (batch 1) over seeded inputs, through perf-core's protocol (time-bounded
//!    warm-up with a steady-state check, then samples): p50 / p90 / p99 with order-statistic intervals, the
//!    mean with its t-interval;
//! 4. compliance judged on the intervals.
//!
//! A panic, an error or a wrong output shape in any phase makes the submission ERROR with the reason; no
//! prediction is ever substituted, and the other submissions still run.
//!
//! A [`SelfTimedSubmission`] (a peer served by another process, see [`referee_self_timed`]) reports the
//! time its own clock measured around its inference calls: phase 3 runs perf-core's protocol unchanged over
//! those times (the pipe is never timed), and phase 2 takes the memory record the submission measures.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use ndarray::{s, Array2, ArrayView2};
use perf_core::measure::{measure, measure_source, MeasureConfig, TimedBatch, WarmUp};
use perf_core::stats::{binomial_interval, BenchmarkResult, PercentileEstimate};
use serde::{Deserialize, Serialize};

use crate::compliance::{
    judge_compliance, judge_compliance_paired, judge_compliance_unpaired_relative,
    paired_difference, Compliance, ComplianceSubject,
};
use crate::error::OlympicsError;
use crate::event::{DataSource, Event, QualityMetric};
use crate::submission::Submission;
use perf_core::claim::{ClaimResult, Estimate};
use perf_core::stats::{
    argmax, cross_entropy, hanley_mcneil_interval, paired_proportion_difference, roc_auc, AucGroups,
};

/// How the referee measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefereeConfig {
    /// perf-core's protocol for the latency phase. `min_sample_time` is set low so that one sample is one
    /// query whenever a query lasts more than 1000 clock ticks (then the sample is a true single-query
    /// latency, not a batch mean).
    pub measure: MeasureConfig,
    /// Distinct seeded queries cycled through while timing.
    pub n_latency_queries: usize,
    /// Rows per forward call in the quality phase.
    pub evaluation_batch: usize,
    /// Two-sided confidence of every interval.
    pub confidence: f64,
    /// Seed of the latency queries.
    pub seed: u64,
    /// Evaluate at most this many test rows (`None`: the full split, the default). Anything else is stated
    /// in the scorecard.
    pub max_test_rows: Option<usize>,
    /// LoadGen's scenarios (SingleStream, Offline, Server).
    #[serde(default)]
    pub scenarios: crate::scenario::ScenarioConfig,
}

impl RefereeConfig {
    /// The full protocol: 300 s warm-up budget of 300 ms, 400 latency samples (enough for a p99 interval at
    /// 95%: 299), 256 seeded queries.
    pub fn full(seed: u64) -> Self {
        RefereeConfig {
            measure: MeasureConfig {
                warm_up: WarmUp::Time(Duration::from_millis(200)),
                min_sample_time: Duration::ZERO,
                samples: 400,
                ..MeasureConfig::default()
            },
            n_latency_queries: 256,
            evaluation_batch: 256,
            confidence: 0.95,
            seed,
            max_test_rows: None,
            scenarios: crate::scenario::ScenarioConfig::full(),
        }
    }

    /// A reduced protocol: 30 ms warm-up, 100 samples (enough for p50 and p90 intervals; p99 is reported as
    /// "insufficient samples").
    pub fn quick(seed: u64) -> Self {
        RefereeConfig {
            measure: MeasureConfig {
                warm_up: WarmUp::Time(Duration::from_millis(30)),
                min_sample_time: Duration::ZERO,
                samples: 100,
                ..MeasureConfig::default()
            },
            n_latency_queries: 64,
            scenarios: crate::scenario::ScenarioConfig::quick(),
            ..Self::full(seed)
        }
    }
}

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
    fn from_result(result: &BenchmarkResult, steady_state: bool) -> Self {
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
    /// Whether the full split was used (false only when [`RefereeConfig::max_test_rows`] cut it).
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

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Calls `forward` with panics caught and the output shape checked.
pub(crate) fn checked_forward(
    submission: &dyn Submission,
    batch: ArrayView2<'_, f32>,
    output_width: usize,
) -> Result<Array2<f32>, OlympicsError> {
    let name = submission.name().to_string();
    let output = catch_unwind(AssertUnwindSafe(|| submission.forward(batch)))
        .map_err(|payload| OlympicsError::Submission {
            submission: name.clone(),
            reason: format!("panicked: {}", panic_message(payload.as_ref())),
        })?
        .map_err(|error| OlympicsError::Submission {
            submission: name.clone(),
            reason: error.to_string(),
        })?;
    if output.dim() != (batch.nrows(), output_width) {
        return Err(OlympicsError::OutputShape {
            submission: name,
            expected: [batch.nrows(), output_width],
            actual: output.shape().to_vec(),
        });
    }
    if output.iter().any(|value| !value.is_finite()) {
        return Err(OlympicsError::Submission {
            submission: name,
            reason: "output holds NaN or infinity".into(),
        });
    }
    Ok(output)
}

fn evaluate_quality(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
) -> Result<QualityEstimate, OlympicsError> {
    let n_rows = config
        .max_test_rows
        .map_or(event.test.len(), |max| max.min(event.test.len()));
    let batch_size = config.evaluation_batch.max(1);
    let labels = event.test.labels();
    let mut n_correct = 0usize;
    let mut loss_sum = 0.0f64;
    let mut scores = Vec::with_capacity(n_rows);
    let mut per_row_correct = Vec::with_capacity(n_rows);
    submission.reset();
    for start in (0..n_rows).step_by(batch_size) {
        let end = (start + batch_size).min(n_rows);
        let batch = event.test.rows(start..end)?;
        let output = checked_forward(submission, batch.view(), event.spec.output_width)?;
        for (row, &label) in output.outer_iter().zip(&labels[start..end]) {
            match event.spec.metric {
                QualityMetric::Top1Accuracy => {
                    let correct = argmax(row.iter().copied()) == Some(label);
                    per_row_correct.push(correct);
                    n_correct += usize::from(correct);
                    loss_sum += cross_entropy(row.iter().copied(), label)?;
                }
                QualityMetric::RocAuc => scores.push(row[0]),
            }
        }
    }
    let full_split = n_rows == event.test.len();
    match event.spec.metric {
        QualityMetric::Top1Accuracy => {
            let (ci_lower, ci_upper) =
                binomial_interval(n_correct as u64, n_rows as u64, config.confidence)?;
            Ok(QualityEstimate {
                metric: QualityMetric::Top1Accuracy,
                point: n_correct as f64 / n_rows as f64,
                ci_lower,
                ci_upper,
                confidence: config.confidence,
                n: n_rows,
                successes: Some(n_correct),
                method: "Clopper–Pearson (exact binomial)".into(),
                mean_loss_nats: Some(loss_sum / n_rows as f64),
                full_split,
                per_row_correct,
            })
        }
        QualityMetric::RocAuc => {
            let (mut normal, mut anomalous) = (Vec::new(), Vec::new());
            for (&score, &label) in scores.iter().zip(labels) {
                if label == 1 {
                    anomalous.push(score);
                } else {
                    normal.push(score);
                }
            }
            let auc = roc_auc(&normal, &anomalous)?;
            let groups = AucGroups {
                n_positive: anomalous.len(),
                n_negative: normal.len(),
            };
            let (ci_lower, ci_upper) = hanley_mcneil_interval(auc, groups, config.confidence)?;
            Ok(QualityEstimate {
                metric: QualityMetric::RocAuc,
                point: auc,
                ci_lower,
                ci_upper,
                confidence: config.confidence,
                n: n_rows,
                successes: None,
                method: format!(
                    "Hanley–McNeil normal interval ({} anomalous, {} normal)",
                    anomalous.len(),
                    normal.len()
                ),
                mean_loss_nats: None,
                full_split,
                per_row_correct: Vec::new(),
            })
        }
    }
}

fn measure_memory(
    submission: &dyn Submission,
    query: ArrayView2<'_, f32>,
    output_width: usize,
) -> Result<MemoryRecord, OlympicsError> {
    let storage_bytes = submission.storage_bytes();
    submission.reset();
    if !perf_core::alloc::is_installed() {
        // Still run the query so a failing submission is caught in this phase too.
        checked_forward(submission, query, output_width)?;
        return Ok(MemoryRecord {
            storage_bytes,
            peak_query_bytes: None,
            note: Some(
                "peak heap not measured: perf-core's counting allocator is not this binary's global allocator"
                    .into(),
            ),
        });
    }
    // The phase's first query, cold: it may size buffers that a submission keeps for later queries.
    let (output, cold) =
        perf_core::alloc::measure_peak(|| checked_forward(submission, query, output_width))?;
    output?;
    // The recorded peak is a steady-state query as the latency phase runs it: into a preallocated output,
    // after the cold one. State kept between queries (a KV cache) is forgotten first, so the warm query is
    // not answered from the cold one's state; buffers a submission keeps across resets stay.
    let mut buffer = Array2::<f32>::zeros((query.nrows(), output_width));
    submission.reset();
    let (result, warm) = perf_core::alloc::measure_peak(|| {
        catch_unwind(AssertUnwindSafe(|| {
            submission.forward_into(query, buffer.view_mut())
        }))
    })?;
    result
        .map_err(|payload| OlympicsError::Submission {
            submission: submission.name().into(),
            reason: format!("panicked: {}", panic_message(payload.as_ref())),
        })?
        .map_err(|error| OlympicsError::Submission {
            submission: submission.name().into(),
            reason: error.to_string(),
        })?;
    Ok(MemoryRecord {
        storage_bytes,
        peak_query_bytes: Some(warm.peak_bytes),
        note: Some(format!(
            "peak of a warm query into a preallocated output ({} allocations); the phase's first query peaked at {} B with {} allocations",
            warm.allocations, cold.peak_bytes, cold.allocations
        )),
    })
}

fn measure_latency(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
) -> Result<LatencySummary, OlympicsError> {
    let queries = event.latency_queries(config.n_latency_queries, config.seed)?;
    let n_queries = queries.nrows();
    let mut next_query = 0usize;
    let mut failure: Option<String> = None;
    // One output buffer for every timed query: the time is the submission's, not the allocator's.
    let mut output = Array2::<f32>::zeros((1, event.spec.output_width));
    submission.reset();
    let measured = catch_unwind(AssertUnwindSafe(|| {
        measure(
            &format!("{}/{}", event.spec.name, submission.name()),
            &config.measure,
            &queries,
            |queries| {
                let query = queries.slice(s![next_query..next_query + 1, ..]);
                next_query = (next_query + 1) % n_queries;
                match submission.forward_into(query, output.view_mut()) {
                    Ok(()) => Some(output[[0, 0]]),
                    Err(error) => {
                        failure.get_or_insert_with(|| error.to_string());
                        None
                    }
                }
            },
        )
    }))
    .map_err(|payload| OlympicsError::Submission {
        submission: submission.name().into(),
        reason: format!("panicked while timed: {}", panic_message(payload.as_ref())),
    })??;
    if let Some(reason) = failure {
        return Err(OlympicsError::Submission {
            submission: submission.name().into(),
            reason: format!("failed while timed: {reason}"),
        });
    }
    Ok(LatencySummary::from_result(
        &measured.result,
        measured.steady_state,
    ))
}

fn score(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
    self_timed: Option<&dyn SelfTimedSubmission>,
) -> Result<Scorecard, OlympicsError> {
    let quality = evaluate_quality(event, submission, config)?;
    let first_query = event.latency_queries(1, config.seed)?;
    let (memory, latency) = match self_timed {
        None => (
            measure_memory(submission, first_query.view(), event.spec.output_width)?,
            measure_latency(event, submission, config)?,
        ),
        Some(timed) => {
            submission.reset();
            let memory = timed.query_memory(first_query.view())?;
            (memory, measure_self_timed_latency(event, timed, config)?)
        }
    };
    let scenarios = match self_timed {
        None => crate::scenario::measure_scenarios(event, submission, config)?,
        Some(_) => crate::scenario::ScenarioReport::not_run(
            "a self-timed submission (the referee's clock would time the pipe)",
        ),
    };
    // A relative target needs the baseline's rows: the baseline is its own (exact) comparison, any other
    // submission is judged by `referee` once the baseline has been scored.
    let own_rows = event
        .spec
        .relative_target
        .as_ref()
        .filter(|relative| relative.baseline == submission.name())
        .map(|_| quality.per_row_correct.clone());
    let compliance = judge_quality_and_latency(
        event,
        submission.name(),
        &quality,
        &latency,
        own_rows.as_deref(),
        config.confidence,
    )?;
    Ok(Scorecard {
        event: event.spec.name.clone(),
        submission: submission.name().into(),
        optimizations: submission
            .optimizations()
            .iter()
            .map(ToString::to_string)
            .collect(),
        source: event.source.clone(),
        quality,
        latency,
        memory,
        compliance,
        target: event.spec.target,
        latency_limit_ms: event.spec.latency_limit_ms,
        scenarios,
    })
}

/// Compliance of a measured quality and latency: against the absolute target, or, when the event's target
/// is relative, paired against `baseline_rows` (the baseline's per-row correctness on the same rows;
/// `None` leaves the quality requirement inconclusive, saying why). The claims' ids and statements name
/// the event, the submission and the data source.
///
/// # Errors
/// A quality or paired difference that cannot be an estimate (non-finite).
fn judge_quality_and_latency(
    event: &Event,
    submission: &str,
    quality: &QualityEstimate,
    latency: &LatencySummary,
    baseline_rows: Option<&[bool]>,
    confidence: f64,
) -> Result<Compliance, OlympicsError> {
    let spec = &event.spec;
    let subject = |requirement: String| ComplianceSubject {
        id: format!(
            "{}.{}.{submission}.compliance",
            crate::compliance::CLAIM_MODULE,
            spec.name
        ),
        statement: format!(
            "{submission} on {} ({} {}): {requirement} and SingleStream p90 ≤ {} ms",
            spec.name, event.source.origin, event.source.name, spec.latency_limit_ms
        ),
        latency_p90_ms: latency.p90.estimate(confidence),
        limit_ms: spec.latency_limit_ms,
    };
    let Some(relative) = &spec.relative_target else {
        let subject = subject(format!(
            "{} ≥ {:.3} (MLPerf-style target)",
            spec.metric, spec.target
        ));
        return Ok(judge_compliance(&subject, quality.estimate()?, spec.target));
    };
    let subject = subject(format!(
        "{} no more than {:.1} points below {} on the same predictions (paired non-inferiority)",
        spec.metric,
        100.0 * relative.margin,
        relative.baseline
    ));
    let Some(baseline_rows) = baseline_rows else {
        return Ok(judge_compliance_unpaired_relative(
            &subject,
            relative.margin,
            &format!(
                "baseline {} was not scored in the same field",
                relative.baseline
            ),
        ));
    };
    match paired_difference(
        &quality.per_row_correct,
        baseline_rows,
        &relative.baseline,
        confidence,
    ) {
        Ok(difference) => judge_compliance_paired(
            &subject,
            difference,
            relative.margin,
            &quality.estimate()?,
            spec.target,
        ),
        Err(error) => Ok(judge_compliance_unpaired_relative(
            &subject,
            relative.margin,
            &format!("cannot pair with {}: {error}", relative.baseline),
        )),
    }
}

/// Referees one submission. On an event whose target is relative to a baseline, only the baseline itself
/// can be judged alone; any other submission's quality requirement is inconclusive here (use [`referee`]
/// with the baseline in the field).
pub fn referee_one(event: &Event, submission: &dyn Submission, config: &RefereeConfig) -> Outcome {
    match score(event, submission, config, None) {
        Ok(card) => Outcome::Scored(Box::new(card)),
        Err(error) => Outcome::Error {
            submission: submission.name().into(),
            reason: error.to_string(),
        },
    }
}

/// A submission that times its own queries: one served by another process, whose time through the pipe
/// must not count as inference. The referee runs perf-core's protocol unchanged (time-bounded warm-up with
/// its steady-state check, batch calibration, samples) over the times the submission reports, and computes
/// the percentiles, intervals and compliance exactly as for an in-process submission.
pub trait SelfTimedSubmission: Submission {
    /// Hands over the latency queries in the order the referee cycles through them; called once per
    /// latency phase, before any timed batch.
    ///
    /// # Errors
    /// Whatever stops the submission from taking them; the referee turns it into an ERROR.
    fn load_latency_queries(&self, queries: ArrayView2<'_, f32>) -> Result<(), OlympicsError>;

    /// Runs the next `iterations` queries (cycling, one row per call, as the referee does in process) and
    /// returns the nanoseconds its own monotonic clock measured around those calls alone.
    ///
    /// # Errors
    /// A failed or timed-out batch; the referee turns it into an ERROR.
    fn run_timed_queries(&self, iterations: u64) -> Result<f64, OlympicsError>;

    /// Stored bytes and the peak memory of one query as the submission can measure it (the referee's
    /// counting allocator sees only this process).
    ///
    /// # Errors
    /// A failed query; the referee turns it into an ERROR.
    fn query_memory(&self, query: ArrayView2<'_, f32>) -> Result<MemoryRecord, OlympicsError>;
}

/// perf-core's batch source over a self-timed submission: the first failure is kept and every later
/// batch reads NaN, which stops perf-core's protocol.
struct SelfTimedSource<'a> {
    submission: &'a dyn SelfTimedSubmission,
    failure: Option<String>,
}

impl TimedBatch for SelfTimedSource<'_> {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        if self.failure.is_some() {
            return f64::NAN;
        }
        match self.submission.run_timed_queries(iterations) {
            Ok(elapsed_ns) => elapsed_ns,
            Err(error) => {
                self.failure = Some(error.to_string());
                f64::NAN
            }
        }
    }
}

fn measure_self_timed_latency(
    event: &Event,
    submission: &dyn SelfTimedSubmission,
    config: &RefereeConfig,
) -> Result<LatencySummary, OlympicsError> {
    let queries = event.latency_queries(config.n_latency_queries, config.seed)?;
    submission.reset();
    submission.load_latency_queries(queries.view())?;
    let mut source = SelfTimedSource {
        submission,
        failure: None,
    };
    let measured = measure_source(
        &format!("{}/{}", event.spec.name, submission.name()),
        &config.measure,
        &mut source,
    );
    if let Some(reason) = source.failure {
        return Err(OlympicsError::Submission {
            submission: submission.name().into(),
            reason: format!("failed while timed: {reason}"),
        });
    }
    let measured = measured?;
    Ok(LatencySummary::from_result(
        &measured.result,
        measured.steady_state,
    ))
}

/// Referees one self-timed submission (see [`SelfTimedSubmission`]): quality and compliance as for any
/// submission, latency from the times it reports under the referee's protocol, memory as it reports it.
pub fn referee_self_timed(
    event: &Event,
    submission: &dyn SelfTimedSubmission,
    config: &RefereeConfig,
) -> Outcome {
    match score(event, submission, config, Some(submission)) {
        Ok(card) => Outcome::Scored(Box::new(card)),
        Err(error) => Outcome::Error {
            submission: submission.name().into(),
            reason: error.to_string(),
        },
    }
}

/// Referees every submission, one after the other; a failure is an ERROR for that submission only. When
/// the event's target is relative to a baseline, every scored submission's quality is then judged paired
/// against the baseline's predictions on the same rows.
pub fn referee(
    event: &Event,
    submissions: &[&dyn Submission],
    config: &RefereeConfig,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = submissions
        .iter()
        .map(|submission| referee_one(event, *submission, config))
        .collect();
    let Some(relative) = &event.spec.relative_target else {
        return outcomes;
    };
    // Judge every other submission paired against the baseline's per-row record, once it is known.
    let baseline_rows = outcomes
        .iter()
        .filter_map(Outcome::scorecard)
        .find(|card| card.submission == relative.baseline)
        .map(|card| card.quality.per_row_correct.clone());
    let Some(baseline_rows) = baseline_rows else {
        return outcomes;
    };
    for outcome in &mut outcomes {
        let Outcome::Scored(card) = outcome else {
            continue;
        };
        match judge_quality_and_latency(
            event,
            &card.submission,
            &card.quality,
            &card.latency,
            Some(&baseline_rows),
            config.confidence,
        ) {
            Ok(compliance) => card.compliance = compliance,
            Err(error) => {
                *outcome = Outcome::Error {
                    submission: card.submission.clone(),
                    reason: error.to_string(),
                }
            }
        }
    }
    outcomes
}
