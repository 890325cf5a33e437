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
//!
//! This file holds the settings, the scoring of one submission and [`referee`]; `phases` holds the
//! in-process measurement phases, `scorecard` what the referee returns, `self_timed` the self-timed path.

use std::time::Duration;

use perf_core::measure::{MeasureConfig, WarmUp};
use serde::{Deserialize, Serialize};

use crate::compliance::{
    judge_compliance, judge_compliance_paired, judge_compliance_unpaired_relative,
    paired_difference, Compliance, ComplianceSubject,
};
use crate::error::OlympicsError;
use crate::event::Event;
use crate::submission::Submission;

mod phases;
mod scorecard;
mod self_timed;

pub(crate) use phases::{checked_forward, panic_message};
use phases::{evaluate_quality, measure_latency, measure_memory};
pub use scorecard::{
    paired_accuracy_difference, LatencyPercentile, LatencySummary, MemoryRecord, Outcome,
    QualityEstimate, Scorecard,
};
use self_timed::measure_self_timed_latency;
pub use self_timed::{referee_self_timed, SelfTimedSubmission};

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
