//! int8 ≥ 2× f32 throughput at batch 32 × 128 tokens on one thread.

use super::text::{all_full_length, word_windows};
use super::{as_strs, Budget, ModuleContext, Submission, CLAIM_IDS, MODULE, OFFLINE_BATCH};
use anyhow::Result;
use minilm::{MiniLm, TokenBatch, MAX_SEQUENCE_LENGTH};
use perf_core::claim::{Claim, ClaimResult, Direction};
use perf_core::compare::CompareConfig;
use perf_core::fallible::try_compare;
use perf_core::measure::WarmUp;

pub(super) fn speedup_claim(
    model: &MiniLm,
    submissions: &[Submission],
    text: &str,
    context: &ModuleContext,
) -> Result<ClaimResult> {
    let (id, statement) = CLAIM_IDS[4];
    let claim = Claim::threshold(id, MODULE, statement, 2.0, Direction::AtLeast);
    // Windows of 150 words of the excerpt, each tokenized to exactly 128 tokens (truncated): 32 of them, or 8 in
    // a quick run (a f32 batch of 32 × 128 takes seconds on one thread, and six pairs are the minimum).
    let batch_size = if context.quick { 8 } else { OFFLINE_BATCH };
    let ids = model
        .tokenizer
        .encode(&as_strs(&word_windows(text, batch_size)))?;
    if !all_full_length(&ids) {
        return Ok(claim.error("a window tokenized to fewer than 128 tokens"));
    }
    let batch = TokenBatch::from_sequences(&ids)?;
    let base = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    let config = CompareConfig {
        pairs: Budget::new(context.quick).speedup_pairs,
        warm_up: WarmUp::Count(1),
        seed: context.seed,
        ..base
    };
    let (f32_encoder, int8_encoder) = (&submissions[0].encoder, &submissions[1].encoder);
    let comparison = try_compare(
        &config,
        &batch,
        |batch| f32_encoder.embed(batch),
        |batch| int8_encoder.embed(batch),
    )?;
    let throughput = |ns: f64| batch_size as f64 / (ns / 1e9);
    Ok(claim
        .judge_comparison(&comparison)?
        .annotate(format!(
            "batch {batch_size} × {MAX_SEQUENCE_LENGTH} tokens{}, {} interleaved pairs; f32 {:.1} sentences/s, int8 \
             {:.1} sentences/s (medians)",
            if context.quick { " (quick run; the full run uses 32)" } else { "" },
            comparison.baseline.count(),
            throughput(comparison.baseline.median()),
            throughput(comparison.candidate.median())
        ))
        .with_detail("baseline_ns", comparison.baseline.values())
        .with_detail("candidate_ns", comparison.candidate.values())
        .with_detail("fairness", &comparison.fairness))
}
