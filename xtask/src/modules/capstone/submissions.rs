//! Every submission's model bytes, peak heap, SingleStream p90 and Offline throughput, measured
//! round-robin, and the table claim over them.

use super::quality::{accuracy, Quality};
use super::{
    exact, Budget, Submission, CLAIM_IDS, CONFIDENCE, MODULE, OFFLINE_BATCH, SINGLE_STREAM_QUERIES,
};
use anyhow::{Context, Result};
use minilm::TokenBatch;
use perf_core::claim::{Claim, ClaimResult};
use perf_core::fallible::try_measure;
use perf_core::measure::{MeasureConfig, WarmUp};
use perf_core::stats::BenchmarkResult;
use serde_json::json;
use std::time::Duration;

/// What was measured for one submission.
pub(super) struct Row {
    pub(super) bytes: usize,
    pub(super) peak_bytes: usize,
    pub(super) p90_ms: f64,
    pub(super) p90_ci_ms: Option<(f64, f64)>,
    pub(super) p90_note: Option<String>,
    pub(super) iterations_per_sample: u64,
    pub(super) throughput: f64,
    pub(super) throughput_ci: (f64, f64),
}

/// Measures every submission round-robin: in each of `budget.timing_rounds` rounds every submission takes its share
/// of SingleStream queries and Offline batches, so a busy stretch of the shared machine falls on all of them
/// instead of on whichever was measured then (measured one after another, the p90s moved by 2× between runs).
/// The raw per-query values of all rounds are pooled into one sample per submission.
pub(super) fn measure_submissions(
    submissions: &[Submission],
    single_stream: &[TokenBatch],
    offline: &TokenBatch,
    budget: &Budget,
    seed: u64,
) -> Result<Vec<Row>> {
    let single_config = MeasureConfig {
        // Samples of at least 100 µs, so that every query (≥ 0.5 ms here) is its own sample.
        warm_up: WarmUp::Time(Duration::from_millis(100)),
        min_sample_time: Duration::from_micros(100),
        samples: (budget.single_stream_samples / budget.timing_rounds).max(2),
        ..MeasureConfig::default()
    };
    let offline_config = MeasureConfig {
        warm_up: WarmUp::Count(1),
        samples: (budget.offline_samples / budget.timing_rounds).max(2),
        min_sample_time: Duration::from_micros(100),
        ..MeasureConfig::default()
    };
    let mut single_values = vec![Vec::new(); submissions.len()];
    let mut offline_values = vec![Vec::new(); submissions.len()];
    let mut iterations_per_sample = vec![0u64; submissions.len()];
    for round in 0..budget.timing_rounds {
        for (index, submission) in submissions.iter().enumerate() {
            let encoder = &submission.encoder;
            // SingleStream: one sentence per query, cycling through the set from a seeded start.
            let mut next = (seed as usize + round * 17) % single_stream.len();
            let single = try_measure(
                &format!("{} single-stream", submission.name),
                &single_config,
                &single_stream,
                |queries| {
                    next = (next + 1) % queries.len();
                    encoder.embed(&queries[next])
                },
            )?;
            single_values[index].extend_from_slice(single.result.values());
            iterations_per_sample[index] = iterations_per_sample[index].max(
                single
                    .rounds
                    .first()
                    .map_or(0, |round| round.iterations_per_sample),
            );
            let batch = try_measure(
                &format!("{} offline", submission.name),
                &offline_config,
                offline,
                |batch| encoder.embed(batch),
            )?;
            offline_values[index].extend_from_slice(batch.result.values());
        }
    }
    let mut rows = Vec::new();
    for (index, submission) in submissions.iter().enumerate() {
        let encoder = &submission.encoder;
        // Peak heap of one Offline batch in a fresh thread: its per-thread scratch starts empty, so the peak
        // includes every buffer a cold batch allocates (activations, int8 codes and accumulators, widened halves).
        let (embedded, memory) = perf_core::alloc::measure_peak(|| {
            std::thread::scope(|scope| scope.spawn(|| encoder.embed(offline)).join())
        })?;
        embedded
            .map_err(|_| anyhow::anyhow!("the peak-memory thread panicked"))?
            .with_context(|| format!("{}: offline batch", submission.name))?;
        let single = BenchmarkResult::with_confidence(
            format!("{} single-stream", submission.name),
            "ns",
            std::mem::take(&mut single_values[index]),
            CONFIDENCE,
        )?;
        let p90 = single.percentile(90.0).cloned().context("p90 missing")?;
        let to_ms = |ns: f64| ns / 1e6;
        let batch = BenchmarkResult::with_confidence(
            format!("{} offline", submission.name),
            "ns",
            std::mem::take(&mut offline_values[index]),
            CONFIDENCE,
        )?;
        let sentences = offline.batch_size() as f64;
        let rate = |ns: f64| sentences / (ns / 1e9);
        let (low, high) = batch.median_ci().unwrap_or((batch.min(), batch.max()));
        rows.push(Row {
            bytes: encoder.storage_bytes(),
            peak_bytes: memory.peak_bytes,
            p90_ms: to_ms(p90.value),
            p90_ci_ms: p90
                .ci_lower
                .zip(p90.ci_upper)
                .map(|(l, u)| (to_ms(l), to_ms(u))),
            p90_note: p90.note.clone(),
            iterations_per_sample: iterations_per_sample[index],
            throughput: rate(batch.median()),
            throughput_ci: (rate(high), rate(low)),
        });
    }
    Ok(rows)
}

pub(super) fn submissions_claim(
    submissions: &[Submission],
    rows: &[Row],
    quality: Option<&Quality>,
    timing_rounds: usize,
) -> Result<ClaimResult> {
    let (id, statement) = CLAIM_IDS[1];
    let mb = |bytes: usize| format!("{:.1}", bytes as f64 / 1e6);
    let mut table_rows = Vec::new();
    for (index, (submission, row)) in submissions.iter().zip(rows).enumerate() {
        let p90 = match (row.p90_ci_ms, &row.p90_note) {
            (Some((low, high)), _) => format!("{:.2} [{low:.2}, {high:.2}]", row.p90_ms),
            (None, Some(note)) => format!("{:.2} ({note})", row.p90_ms),
            (None, None) => format!("{:.2}", row.p90_ms),
        };
        let (fidelity, retrieval) = match quality {
            Some(quality) => {
                let cosines = &quality.cosines[index];
                let minimum = cosines.iter().copied().fold(f64::INFINITY, f64::min);
                let (acc, low, high) = accuracy(&quality.correct[index])?;
                (
                    format!(
                        "{:.5} (min {minimum:.4})",
                        cosines.iter().sum::<f64>() / cosines.len() as f64
                    ),
                    format!(
                        "{:.1}% [{:.1}, {:.1}]",
                        100.0 * acc,
                        100.0 * low,
                        100.0 * high
                    ),
                )
            }
            None => ("skipped".into(), "skipped".into()),
        };
        table_rows.push(vec![
            submission.name.to_owned(),
            mb(row.bytes),
            mb(row.peak_bytes),
            p90,
            format!(
                "{:.1} [{:.1}, {:.1}]",
                row.throughput, row.throughput_ci.0, row.throughput_ci.1
            ),
            fidelity,
            retrieval,
            submission.optimizations.to_owned(),
        ]);
    }
    let f32_row = &rows[0];
    let estimate = exact(f32_row.bytes as f64, "B")?;
    Ok(Claim::measured(id, MODULE, statement)
        .judge(estimate)
        .annotate(format!(
            "{} submissions measured round-robin over {timing_rounds} rounds; p90 at batch 1 ({} single-sentence \
             queries, {} iteration(s) per sample), Offline batches of {OFFLINE_BATCH} sentences, one thread, \
             tokenization excluded; peak = heap of one cold Offline batch",
            submissions.len(),
            SINGLE_STREAM_QUERIES,
            f32_row.iterations_per_sample
        ))
        .with_detail(
            "table",
            json!({
                "title": "all-MiniLM-L6-v2 submissions (one thread)",
                "columns": ["submission", "model MB", "peak heap MB", "p90 ms/sentence (batch 1) [95% CI]",
                    "Offline sentences/s [95% CI]", "fidelity: mean cosine to f32", "retrieval top-1 [Wilson 95%]",
                    "optimizations"],
                "rows": table_rows,
            }),
        )
        .with_detail(
            "submissions",
            submissions
                .iter()
                .zip(rows)
                .map(|(s, r)| {
                    json!({"name": s.name, "bytes": r.bytes, "peak_bytes": r.peak_bytes, "p90_ms": r.p90_ms,
                        "p90_ci_ms": r.p90_ci_ms, "throughput": r.throughput, "throughput_ci": r.throughput_ci,
                        "heads_per_layer": s.encoder.heads_per_layer(),
                        "neurons_per_layer": s.encoder.neurons_per_layer()})
                })
                .collect::<Vec<_>>(),
        ))
}
