//! Submissions that time their own queries (a peer served by another process): the
//! [`SelfTimedSubmission`] trait, perf-core's protocol run over the times they report, and
//! [`referee_self_timed`].

use ndarray::ArrayView2;
use perf_core::measure::{measure_source, TimedBatch};

use super::{score, LatencySummary, MemoryRecord, Outcome, RefereeConfig};
use crate::error::OlympicsError;
use crate::event::Event;
use crate::submission::Submission;

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

pub(super) fn measure_self_timed_latency(
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
