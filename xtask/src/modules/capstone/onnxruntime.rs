//! The best operating point against ONNX Runtime's dynamic int8 of the same model (the peers' venv):
//! per sentence at batch 1 and Offline at batch 32 × 128 tokens, interleaved.

use super::text::{all_full_length, word_windows};
use super::{as_strs, Budget, ModuleContext, Submission, CONFIDENCE, MODULE, OFFLINE_BATCH};
use anyhow::{Context, Result};
use minilm::{embed_sequences, Encoder, MiniLm, ModelFiles, TokenBatch, MAX_SEQUENCE_LENGTH};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Direction};
use perf_core::compare::CompareConfig;
use perf_core::measure::WarmUp;
use perf_core::stats::BenchmarkResult;
use std::time::Duration;

/// The ids and statements of the claims against ONNX Runtime.
pub(super) const ORT_CLAIMS: [(&str, &str); 2] = [
    (
        "capstone.vs_onnxruntime_int8_p90",
        "The best operating point is at least as fast as ONNX Runtime's dynamic int8 of the same model per sentence at batch 1, one thread (ratio of geometric means ≥ 1.0)",
    ),
    (
        "capstone.vs_onnxruntime_int8_offline",
        "The best operating point's Offline throughput at batch 32 × 128 tokens, one thread, is at least ONNX Runtime's dynamic int8 of the same model (ratio ≥ 1.0)",
    ),
];

/// Windows of 150 words of `text`, each tokenized and truncated to exactly 128 tokens: `batch_size` of them.
pub(super) fn full_length_windows(
    model: &MiniLm,
    text: &str,
    batch_size: usize,
) -> Result<Vec<Vec<u32>>> {
    let ids = model
        .tokenizer
        .encode(&as_strs(&word_windows(text, batch_size)))?;
    anyhow::ensure!(
        all_full_length(&ids),
        "a window tokenized to fewer than {MAX_SEQUENCE_LENGTH} tokens"
    );
    Ok(ids)
}

/// Token ids as the peers' wire format: one float row per sequence, padded with `[PAD]` = 0.
pub(super) fn id_matrix(sequences: &[Vec<u32>]) -> Array2<f32> {
    let width = sequences.iter().map(Vec::len).max().unwrap_or(1);
    let mut matrix = Array2::<f32>::zeros((sequences.len(), width));
    for (row, sequence) in sequences.iter().enumerate() {
        for (column, &id) in sequence.iter().enumerate() {
            matrix[[row, column]] = id as f32;
        }
    }
    matrix
}

/// Times `peer` (its queries loaded) against `encoder` on `batches` cycled in the same order, interleaved;
/// the peer is the baseline, so a ratio above 1 means the workspace's encoder is faster.
pub(super) fn compare_with_peer(
    peer: &peers::ExternalSubmission,
    encoder: &Encoder,
    batches: &[TokenBatch],
    config: &CompareConfig,
) -> Result<perf_core::compare::Comparison> {
    let failure = std::cell::RefCell::new(None::<String>);
    let mut next = 0usize;
    let mut rust_source =
        perf_core::measure::ClosureBatch::new(&batches, |batches: &&[TokenBatch]| {
            let batch = &batches[next];
            next = (next + 1) % batches.len();
            let embedded = encoder.embed(batch);
            if let Err(error) = &embedded {
                failure
                    .borrow_mut()
                    .get_or_insert_with(|| error.to_string());
            }
            embedded.ok()
        });
    let mut peer_source = peers::SelfTimedBatch::new(peer);
    let comparison =
        perf_core::compare::compare_sources(config, &mut peer_source, &mut rust_source);
    if let Some(error) = peer_source.failure() {
        anyhow::bail!("ONNX Runtime peer failed while compared: {error}");
    }
    if let Some(error) = failure.borrow().as_ref() {
        anyhow::bail!("the Rust encoder failed while compared: {error}");
    }
    Ok(comparison?)
}

/// p90 with its order-statistic interval of a comparison side, as text in ms.
pub(super) fn p90_text(values: &[f64]) -> String {
    let Ok(result) = BenchmarkResult::with_confidence("side", "ns", values.to_vec(), CONFIDENCE)
    else {
        return "no p90".into();
    };
    match result.percentile(90.0) {
        Some(estimate) => match (estimate.ci_lower, estimate.ci_upper) {
            (Some(low), Some(high)) => format!(
                "{:.2} [{:.2}, {:.2}] ms",
                estimate.value / 1e6,
                low / 1e6,
                high / 1e6
            ),
            _ => format!(
                "{:.2} ms ({})",
                estimate.value / 1e6,
                estimate.note.clone().unwrap_or_default()
            ),
        },
        None => "no p90".into(),
    }
}

/// The best operating point against ONNX Runtime's dynamic int8 of all-MiniLM-L6-v2 (exported from the same
/// safetensors by the venv's torch, quantized with per-channel MatMul weights, one thread), interleaved:
/// per sentence at batch 1 on the SingleStream sentences, and Offline at batch 32 × 128 (8 in a quick run).
/// SKIPPED with the install command when the peers' venv or torch is absent.
#[allow(clippy::too_many_arguments)]
pub(super) fn onnxruntime_claims(
    files: &ModelFiles,
    submissions: &[Submission],
    best: usize,
    chosen_by: &str,
    single_stream_ids: &[Vec<u32>],
    model: &MiniLm,
    text: &str,
    context: &ModuleContext,
) -> Vec<ClaimResult> {
    let claims: Vec<Claim> = ORT_CLAIMS
        .iter()
        .map(|(id, statement)| Claim::threshold(id, MODULE, statement, 1.0, Direction::AtLeast))
        .collect();
    let environment = match peers::PeerEnvironment::discover() {
        Ok(environment) => environment,
        Err(peers::PeersError::Unavailable {
            reason,
            enable_command,
        }) => {
            return claims
                .iter()
                .map(|claim| claim.skipped(&reason, &enable_command))
                .collect()
        }
        Err(error) => {
            return claims
                .iter()
                .map(|claim| claim.error(error.to_string()))
                .collect()
        }
    };
    if let Err(peers::PeersError::Unavailable {
        reason,
        enable_command,
    }) = environment.torch()
    {
        return claims
            .iter()
            .map(|claim| {
                claim.skipped(
                    format!("the ONNX export needs torch: {reason}"),
                    &enable_command,
                )
            })
            .collect();
    }
    let outcome = (|| -> Result<Vec<ClaimResult>> {
        let scratch =
            std::env::temp_dir().join(format!("torchperf-capstone-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let result = onnxruntime_comparisons(
            &environment,
            &scratch,
            &claims,
            files,
            submissions,
            best,
            chosen_by,
            single_stream_ids,
            model,
            text,
            context,
        );
        let _ = std::fs::remove_dir_all(&scratch);
        result
    })();
    outcome.unwrap_or_else(|error| {
        claims
            .iter()
            .map(|claim| claim.error(format!("{error:#}")))
            .collect()
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn onnxruntime_comparisons(
    environment: &peers::PeerEnvironment,
    scratch: &std::path::Path,
    claims: &[Claim],
    files: &ModelFiles,
    submissions: &[Submission],
    best: usize,
    chosen_by: &str,
    single_stream_ids: &[Vec<u32>],
    model: &MiniLm,
    text: &str,
    context: &ModuleContext,
) -> Result<Vec<ClaimResult>> {
    let model_dir = files
        .config
        .parent()
        .context("the model's config.json has no directory")?;
    let onnx_path = scratch.join("all-MiniLM-L6-v2.onnx");
    let exported = peers::export_minilm(environment, model_dir, &onnx_path, Some(scratch))?;
    let spec = peers::PeerSpec {
        runtime: peers::Runtime::OnnxRuntime,
        precision: peers::Precision::Int8,
        threads: 1,
    };
    let peer_config = peers::PeerConfig {
        scratch: Some(scratch.to_path_buf()),
        int8_per_channel: true,
        ..peers::PeerConfig::default()
    };
    let peer = peers::ExternalSubmission::start(environment, &onnx_path, &spec, &peer_config)?;
    let info = peer.info().clone();
    let best_submission = &submissions[best];
    let encoder = &best_submission.encoder;

    // Fidelity of ONNX Runtime's int8 to the Rust f32 encoder on the SingleStream sentences, each alone (as
    // timed: ONNX Runtime's dynamic int8 takes one activation scale per tensor over the whole batch, so a
    // padded batch would change its answers), on the same scale as the submissions' fidelity column.
    let single_matrix = id_matrix(single_stream_ids);
    let mut peer_rows = Vec::with_capacity(single_stream_ids.len());
    for ids in single_stream_ids {
        let row =
            olympics::Submission::forward(&peer, id_matrix(std::slice::from_ref(ids)).view())?;
        anyhow::ensure!(
            row.nrows() == 1,
            "ONNX Runtime answered {:?} for one sentence",
            row.dim()
        );
        peer_rows.push(row);
    }
    let peer_views: Vec<_> = peer_rows.iter().map(Array2::view).collect();
    let peer_embeddings = ndarray::concatenate(ndarray::Axis(0), &peer_views)?;
    let f32_embeddings =
        embed_sequences(&submissions[0].encoder, single_stream_ids, OFFLINE_BATCH)?;
    anyhow::ensure!(
        peer_embeddings.dim() == f32_embeddings.dim(),
        "ONNX Runtime answered {:?}, the encoder {:?}",
        peer_embeddings.dim(),
        f32_embeddings.dim()
    );
    let peer_cosines: Vec<f64> = peer_embeddings
        .rows()
        .into_iter()
        .zip(f32_embeddings.rows())
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum()
        })
        .collect();
    let peer_fidelity = peer_cosines.iter().sum::<f64>() / peer_cosines.len() as f64;
    let peer_note = format!(
        "ONNX Runtime {} {} ({}), exported by torch {} (opset {}, {:.1} MB f32; {:.1} MB int8), one thread; its \
         mean cosine to the Rust f32 encoder {peer_fidelity:.4} over {} sentences; TorchPerf: {} ({chosen_by})",
        info.versions["onnxruntime"].as_str().unwrap_or("?"),
        info.provider,
        info.quantization.as_deref().unwrap_or("int8"),
        exported.torch,
        exported.opset,
        exported.bytes as f64 / 1e6,
        info.model_bytes as f64 / 1e6,
        peer_cosines.len(),
        best_submission.name,
    );

    let mut results = Vec::new();
    // Batch 1: one sentence per query at its own length on both sides, the same sentences in the same order.
    let single_batches: Vec<TokenBatch> = single_stream_ids
        .iter()
        .map(|ids| TokenBatch::from_sequences(std::slice::from_ref(ids)))
        .collect::<Result<_, _>>()?;
    peer.load_query_batches(single_matrix.view(), 1, true)?;
    let single_config = CompareConfig {
        pairs: if context.quick { 40 } else { 200 },
        warm_up: WarmUp::Count(8),
        min_sample_time: Duration::ZERO,
        seed: context.seed,
        ..CompareConfig::default()
    };
    let single = compare_with_peer(&peer, encoder, &single_batches, &single_config)?;
    results.push(
        claims[0]
            .judge_comparison(&single)?
            .annotate(format!(
                "{} interleaved single-sentence pairs over {} sentences; p90 per sentence: ONNX Runtime int8 {}, {} {} \
                 (order-statistic 95% intervals); {peer_note}",
                single.log_ratios.len(),
                single_batches.len(),
                p90_text(single.baseline.values()),
                best_submission.name,
                p90_text(single.candidate.values()),
            ))
            .with_detail("torchperf", best_submission.name)
            .with_detail("peer", &info)
            .with_detail("peer_mean_cosine_to_f32", peer_fidelity)
            .with_detail("onnx_export", &exported)
            .with_detail("baseline_ns", single.baseline.values())
            .with_detail("candidate_ns", single.candidate.values())
            .with_detail("fairness", &single.fairness)
            .needs_quiet_machine(),
    );

    // Offline: batches of full-length windows.
    let batch_size = if context.quick { 8 } else { OFFLINE_BATCH };
    let windows = full_length_windows(model, text, batch_size)?;
    let offline_batch = [TokenBatch::from_sequences(&windows)?];
    peer.load_query_batches(id_matrix(&windows).view(), batch_size, false)?;
    let budget = Budget::new(context.quick);
    let offline_config = CompareConfig {
        pairs: budget.speedup_pairs,
        warm_up: WarmUp::Count(1),
        seed: context.seed,
        ..if context.quick {
            CompareConfig::quick()
        } else {
            CompareConfig::default()
        }
    };
    let offline = compare_with_peer(&peer, encoder, &offline_batch, &offline_config)?;
    let throughput = |ns: f64| batch_size as f64 / (ns / 1e9);
    results.push(
        claims[1]
            .judge_comparison(&offline)?
            .annotate(format!(
                "batch {batch_size} × {MAX_SEQUENCE_LENGTH} tokens{}, {} interleaved pairs; ONNX Runtime int8 {:.1} \
                 sentences/s, {} {:.1} sentences/s (medians); {peer_note}",
                if context.quick { " (quick run; the full run uses 32)" } else { "" },
                offline.log_ratios.len(),
                throughput(offline.baseline.median()),
                best_submission.name,
                throughput(offline.candidate.median()),
            ))
            .with_detail("torchperf", best_submission.name)
            .with_detail("peer", &info)
            .with_detail("baseline_ns", offline.baseline.values())
            .with_detail("candidate_ns", offline.candidate.values())
            .with_detail("fairness", &offline.fairness)
            .needs_quiet_machine(),
    );
    peer.shutdown();
    Ok(results)
}
