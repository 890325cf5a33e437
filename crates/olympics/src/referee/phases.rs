//! The referee's measurement phases for an in-process submission: quality on the test split, peak heap of
//! one query, and single-query latency through perf-core's protocol — each with panics caught and the
//! outputs checked, so that a failure is an ERROR for that submission alone.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{s, Array2, ArrayView2};
use perf_core::measure::measure;
use perf_core::stats::{
    argmax, binomial_interval, cross_entropy, hanley_mcneil_interval, roc_auc, AucGroups,
};

use super::{LatencySummary, MemoryRecord, QualityEstimate, RefereeConfig};
use crate::error::OlympicsError;
use crate::event::{Event, QualityMetric};
use crate::submission::Submission;

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

pub(super) fn evaluate_quality(
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

pub(super) fn measure_memory(
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

pub(super) fn measure_latency(
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
