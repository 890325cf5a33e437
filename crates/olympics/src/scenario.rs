//! MLPerf LoadGen's three scenarios on every scorecard: SingleStream (one query after another; the p90 by
//! LoadGen's early-stopping rule at 99% confidence), Offline (throughput over a free batch size) and Server
//! (Poisson arrivals; the highest rate whose p99 stays under the event's limit, in [`crate::server`]).
//!
//! The queries are the event's seeded latency queries, answered into a preallocated output as in the
//! referee's latency phase ([`Submission::forward_into`]). Every time is read through perf-core: the
//! SingleStream loop is perf-core's closed-loop scheduler ([`perf_core::schedule::run_closed_loop`] on the
//! monotonic clock), the Offline batches go through perf-core's protocol ([`perf_core::fallible::try_measure`]:
//! warm-up, samples, the median with its order-statistic interval). A failure in a scenario is the
//! submission's failure, as in every other phase of the referee.
//!
//! What differs from LoadGen, and is stated with every result: LoadGen's SingleStream run lasts at least
//! 60 s and 1,024 queries; here it is [`ScenarioConfig::single_stream_queries`] queries (256 in quick mode,
//! 1,024 in a full run). Below the rule's minimum (64 queries for p90 at 99%) there is no estimate, and the
//! result says so. Each SingleStream latency includes one read of the clock (tens of nanoseconds), as
//! LoadGen's do.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{s, Array2, ArrayView2};
use perf_core::fallible::try_measure;
use perf_core::measure::{MeasureConfig, WarmUp};
use perf_core::schedule::{run_closed_loop, MonotonicClock};
use perf_core::stats::{
    early_stopping_min_queries, early_stopping_percentile, BenchmarkResult, EarlyStoppingEstimate,
};
use perf_core::PerfError;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, OlympicsError};
use crate::event::Event;
use crate::referee::{checked_forward, panic_message, LatencyPercentile, RefereeConfig};
use crate::server::{ServerConfig, ServerResult};
use crate::submission::Submission;

/// The percentile SingleStream reports (LoadGen's for SingleStream).
pub const SINGLE_STREAM_PERCENTILE: f64 = 90.0;
/// The one-sided confidence of LoadGen's early-stopping estimates.
pub const EARLY_STOPPING_CONFIDENCE: f64 = 0.99;
/// LoadGen's own minimum for a SingleStream run: 1,024 queries and 60 s (stated beside what ran here).
pub const LOADGEN_MIN_QUERIES: usize = 1024;

/// How the scenarios are run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    /// Timed SingleStream queries (at least the early-stopping minimum, 64).
    pub single_stream_queries: usize,
    /// Untimed queries before them.
    pub single_stream_warm_up: usize,
    /// The batch sizes the Offline scenario tries.
    pub offline_batch_sizes: Vec<usize>,
    /// perf-core's protocol for each Offline batch size.
    pub offline_measure: MeasureConfig,
    /// The Server search.
    pub server: ServerConfig,
}

impl ScenarioConfig {
    /// The full protocol: 1,024 SingleStream queries (LoadGen's minimum count, not its 60 s), Offline batches
    /// 1, 8, 32, 128, 256 with 20 samples each, and the full Server search.
    pub fn full() -> Self {
        ScenarioConfig {
            single_stream_queries: LOADGEN_MIN_QUERIES,
            single_stream_warm_up: 32,
            offline_batch_sizes: vec![1, 8, 32, 128, 256],
            offline_measure: MeasureConfig {
                warm_up: WarmUp::Time(std::time::Duration::from_millis(20)),
                samples: 20,
                ..MeasureConfig::default()
            },
            server: ServerConfig::full(),
        }
    }

    /// A reduced protocol: 256 SingleStream queries, 15 samples per Offline batch size, the quick Server
    /// search.
    pub fn quick() -> Self {
        ScenarioConfig {
            single_stream_queries: 256,
            single_stream_warm_up: 16,
            offline_measure: MeasureConfig {
                warm_up: WarmUp::Time(std::time::Duration::from_millis(5)),
                samples: 15,
                ..MeasureConfig::default()
            },
            server: ServerConfig::quick(),
            ..Self::full()
        }
    }
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self::full()
    }
}

/// SingleStream: queries issued one after another, each timed from the previous completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleStreamResult {
    /// Timed queries.
    pub n_queries: usize,
    /// The median, ms, with its order-statistic interval.
    pub p50: LatencyPercentile,
    /// The plain p90, ms, with its order-statistic interval.
    pub p90: LatencyPercentile,
    /// LoadGen's early-stopping p90 at 99% (values in ms), when the run is long enough.
    pub early_stopping_p90: Option<EarlyStoppingEstimate>,
    /// Why there is no early-stopping estimate.
    pub note: Option<String>,
    /// The rule's minimum query count for p90 at 99%.
    pub min_queries: usize,
    /// The mean latency, ms (the Server search starts from it).
    pub mean_ms: f64,
}

impl SingleStreamResult {
    /// The early-stopping p90, ms.
    pub fn early_stopping_p90_ms(&self) -> Option<f64> {
        self.early_stopping_p90
            .as_ref()
            .map(|estimate| estimate.value)
    }

    /// One line: the estimate, how many queries, and how that compares with LoadGen's own minimum.
    pub fn describe(&self) -> String {
        let estimate = match &self.early_stopping_p90 {
            Some(estimate) => format!(
                "LoadGen early-stopping p90 (99%) {} = rank {} of {} sorted latencies ({} overlatency tolerated); plain p90 {}",
                format_latency_ms(estimate.value),
                estimate.rank,
                estimate.n_queries,
                estimate.overlatency_tolerated,
                format_latency_ms(estimate.plain)
            ),
            None => format!(
                "no early-stopping estimate ({})",
                self.note.clone().unwrap_or_default()
            ),
        };
        format!(
            "SingleStream: {estimate}; the rule's minimum is {} queries for p90 at 99%; ran {} queries (LoadGen's own run minimum is {LOADGEN_MIN_QUERIES} queries and 60 s)",
            self.min_queries, self.n_queries
        )
    }
}

/// Offline throughput at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflinePoint {
    /// Rows per forward call.
    pub batch: usize,
    /// Samples (rows) per second at the median call time.
    pub samples_per_second: f64,
    /// Interval from the median's order-statistic interval, samples/s.
    pub ci_samples_per_second: Option<(f64, f64)>,
    /// Median time of one call, ms.
    pub median_call_ms: f64,
    /// perf-core samples.
    pub n_samples: usize,
}

/// Offline: the best throughput over the batch sizes tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineResult {
    /// Every batch size tried.
    pub points: Vec<OfflinePoint>,
    /// The one with the highest samples/s (by its point estimate).
    pub best: OfflinePoint,
    /// Confidence of the intervals.
    pub confidence: f64,
}

/// The three scenarios of one scorecard; a missing one has its reason in `notes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// SingleStream.
    pub single_stream: Option<SingleStreamResult>,
    /// Offline.
    pub offline: Option<OfflineResult>,
    /// Server (searched after the field is scored, see [`crate::server::run_server_scenarios`]).
    pub server: Option<ServerResult>,
    /// Why a scenario is missing.
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// The report of a submission whose scenarios cannot be run by the referee (a self-timed peer: the
    /// referee's clock would time the pipe).
    pub fn not_run(reason: &str) -> Self {
        ScenarioReport {
            notes: vec![format!("LoadGen scenarios not run: {reason}")],
            ..ScenarioReport::default()
        }
    }
}

fn submission_failure(submission: &str, scenario: &str, error: PerfError) -> OlympicsError {
    match error {
        PerfError::WorkloadFailed { message, .. } => OlympicsError::Submission {
            submission: submission.into(),
            reason: format!("failed in the {scenario} scenario: {message}"),
        },
        other => OlympicsError::Measure(other),
    }
}

/// A latency given in ms, written in µs below 1 ms (three significant figures at least), in ms above.
pub fn format_latency_ms(value_ms: f64) -> String {
    if value_ms < 1.0 {
        format!("{:.3} µs", 1e3 * value_ms)
    } else {
        format!("{value_ms:.3} ms")
    }
}

/// One timed query (or batch) into a caller-owned output, as the referee's latency phase runs it: no
/// allocation by the referee, a panic caught and reported as the submission's failure.
pub(crate) fn checked_forward_into(
    submission: &dyn Submission,
    batch: ArrayView2<'_, f32>,
    output: &mut Array2<f32>,
) -> Result<(), OlympicsError> {
    catch_unwind(AssertUnwindSafe(|| {
        submission.forward_into(batch, output.view_mut())
    }))
    .map_err(|payload| OlympicsError::Submission {
        submission: submission.name().into(),
        reason: format!("panicked: {}", panic_message(payload.as_ref())),
    })?
    .map_err(|error| OlympicsError::Submission {
        submission: submission.name().into(),
        reason: error.to_string(),
    })?;
    black_box(&output);
    Ok(())
}

/// Percentiles of latencies in ns, as the referee reports them (ms, perf-core's order-statistic intervals).
pub(crate) fn latency_percentiles(
    name: &str,
    latencies_ns: &[f64],
    confidence: f64,
    percentiles: &[f64],
) -> Result<Vec<LatencyPercentile>, OlympicsError> {
    let result = BenchmarkResult::with_confidence(name, "ns", latencies_ns.to_vec(), confidence)?;
    Ok(percentiles
        .iter()
        .map(|&percentile| {
            LatencyPercentile::from_estimate(result.percentile(percentile), percentile)
        })
        .collect())
}

/// SingleStream: warm-up queries, then `single_stream_queries` timed one after another.
///
/// # Errors
/// A failing submission, or too few queries configured.
pub fn measure_single_stream(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
) -> Result<SingleStreamResult, OlympicsError> {
    let scenarios = &config.scenarios;
    let min_queries =
        early_stopping_min_queries(SINGLE_STREAM_PERCENTILE, EARLY_STOPPING_CONFIDENCE)?;
    if scenarios.single_stream_queries < 2 {
        return Err(invalid("SingleStream needs at least two queries"));
    }
    let n_warm_up = scenarios.single_stream_warm_up;
    let queries =
        event.latency_queries(n_warm_up + scenarios.single_stream_queries, config.seed)?;
    let width = event.spec.output_width;
    submission.reset();
    for index in 0..n_warm_up {
        black_box(checked_forward(
            submission,
            queries.slice(s![index..index + 1, ..]),
            width,
        )?);
    }
    let mut output = Array2::<f32>::zeros((1, width));
    let clock = MonotonicClock::new();
    let latencies_ns = run_closed_loop(&clock, scenarios.single_stream_queries, |index| {
        let row = n_warm_up + index;
        checked_forward_into(submission, queries.slice(s![row..row + 1, ..]), &mut output)
    })?;
    let percentiles = latency_percentiles(
        &format!("{}/{}/single_stream", event.spec.name, submission.name()),
        &latencies_ns,
        config.confidence,
        &[50.0, SINGLE_STREAM_PERCENTILE],
    )?;
    let latencies_ms: Vec<f64> = latencies_ns.iter().map(|value| value / 1e6).collect();
    let (early_stopping_p90, note) = match early_stopping_percentile(
        &latencies_ms,
        SINGLE_STREAM_PERCENTILE,
        EARLY_STOPPING_CONFIDENCE,
    ) {
        Ok(estimate) => (Some(estimate), None),
        Err(PerfError::InsufficientSamples { needed, have, .. }) => (
            None,
            Some(format!("{have} queries, the rule needs ≥ {needed}")),
        ),
        Err(other) => return Err(other.into()),
    };
    let mean_ms = latencies_ms.iter().sum::<f64>() / latencies_ms.len() as f64;
    let mut percentiles = percentiles.into_iter();
    let (Some(p50), Some(p90)) = (percentiles.next(), percentiles.next()) else {
        return Err(invalid("percentiles missing"));
    };
    Ok(SingleStreamResult {
        n_queries: latencies_ns.len(),
        p50,
        p90,
        early_stopping_p90,
        note,
        min_queries,
        mean_ms,
    })
}

/// Offline: each configured batch size through perf-core's protocol; the best samples/s.
///
/// # Errors
/// A failing submission, or no batch size configured.
pub fn measure_offline(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
) -> Result<OfflineResult, OlympicsError> {
    let batch_sizes = &config.scenarios.offline_batch_sizes;
    let Some(&largest) = batch_sizes.iter().max() else {
        return Err(invalid("Offline needs at least one batch size"));
    };
    if batch_sizes.contains(&0) {
        return Err(invalid("an Offline batch size of zero"));
    }
    let rows = event.latency_queries(largest, config.seed.wrapping_add(1))?;
    let width = event.spec.output_width;
    let mut points = Vec::with_capacity(batch_sizes.len());
    for &batch in batch_sizes {
        let view = rows.slice(s![..batch, ..]);
        let mut output = Array2::<f32>::zeros((batch, width));
        // One checked call first: a wrong shape or a failure is the submission's, before anything is timed.
        submission.reset();
        checked_forward(submission, view, width).map_err(|error| OlympicsError::Submission {
            submission: submission.name().into(),
            reason: format!("failed in the Offline scenario (batch {batch}): {error}"),
        })?;
        let measured = try_measure(
            &format!(
                "{}/{}/offline_batch_{batch}",
                event.spec.name,
                submission.name()
            ),
            &config.scenarios.offline_measure,
            &view,
            |view| checked_forward_into(submission, view.view(), &mut output),
        )
        .map_err(|error| submission_failure(submission.name(), "Offline", error))?;
        let result = &measured.result;
        let per_second = |call_ns: f64| batch as f64 * 1e9 / call_ns;
        points.push(OfflinePoint {
            batch,
            samples_per_second: per_second(result.median()),
            ci_samples_per_second: result
                .median_ci()
                .map(|(lower, upper)| (per_second(upper), per_second(lower))),
            median_call_ms: result.median() / 1e6,
            n_samples: result.count(),
        });
    }
    let best = points
        .iter()
        .max_by(|a, b| a.samples_per_second.total_cmp(&b.samples_per_second))
        .cloned()
        .ok_or_else(|| invalid("no Offline point"))?;
    Ok(OfflineResult {
        points,
        best,
        confidence: config.scenarios.offline_measure.confidence,
    })
}

/// SingleStream and Offline for one submission (Server comes later, over the scored field).
///
/// # Errors
/// A failing submission: the referee makes it ERROR.
pub(crate) fn measure_scenarios(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
) -> Result<ScenarioReport, OlympicsError> {
    Ok(ScenarioReport {
        single_stream: Some(measure_single_stream(event, submission, config)?),
        offline: Some(measure_offline(event, submission, config)?),
        server: None,
        notes: vec!["Server not searched (yet): it runs over the scored field".into()],
    })
}
