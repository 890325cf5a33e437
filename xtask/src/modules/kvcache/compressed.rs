//! The correctness gate for compressed projections: kvcache's transformer with the Olympics' compressed
//! layers (olympics' `CompressedLinear` behind `kvcache::Projection`: f32, int8, f16, CSR, structured
//! pruning) decodes with the cache exactly as it recomputes, with the same projections on both sides.
//!
//! Tolerance 1e-4 normwise relative for every kind, the dense gate's: the projections treat rows
//! independently (int8 quantizes each token's activations with its own scale), so both sides compute the
//! same values, summed in different orders by different kernels. A row-coupled projection (one activation
//! scale per call) would differ at order 1e-2 (kvcache's `tests/projections.rs` shows the gate catching one).

use super::gate::{worst_case_error, RandomCase};
use super::{ModuleContext, Plan, SplitMix, BLOCK_SIZE, MODULE, PROMPT_LEN, TOLERANCE};
use anyhow::Result;
use kvcache::{ModelConfig, Projection, Transformer};
use ndarray::Array2;
use olympics::challenge_model::compress_transformer;
use olympics::compress::Recipe;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use serde_json::json;

pub(super) fn compressed_gate_claim() -> Claim {
    Claim::threshold(
        "kvcache.correctness_gate_compressed",
        MODULE,
        "with the Olympics' compressed projections (f32, int8 with per-token activations, f16, CSR at 50%, half the MLP neurons removed in f32 and int8), cached (contiguous and paged) logits equal full recomputation with the same projections at every step: max normwise relative error ≤ 1e-4 for every kind, over random prompts, lengths, batch sizes and model shapes",
        TOLERANCE,
        Direction::AtMost,
    )
}

/// The worst cached-against-recomputed error of each recipe's compression of `model`.
fn errors_by_recipe(
    config: ModelConfig,
    model: &Transformer,
    prompts: &Array2<u32>,
    continuation: &[Vec<u32>],
    block_size: usize,
) -> Result<Vec<(&'static str, &'static str, f64)>> {
    let weights = model.to_weights();
    Recipe::projection_kinds()
        .into_iter()
        .map(|(name, recipe)| {
            let compressed = compress_transformer(config, &weights, &recipe)?
                .with_matmul_config(*model.matmul_config());
            let error = worst_case_error(&compressed, prompts, continuation, block_size)?;
            Ok((name, compressed.lm_head().kind(), error))
        })
        .collect()
}

pub(super) fn compressed_gate(context: &ModuleContext, plan: &Plan) -> Result<ClaimResult> {
    // Another stream than the dense gate's, so that the two gates see different shapes.
    let mut rng = SplitMix(context.seed ^ 0x636F_6D70_7265_7373);
    let mut worst_by_recipe: Vec<(&'static str, &'static str, f64)> = Recipe::projection_kinds()
        .iter()
        .map(|(name, _)| (*name, "", 0.0))
        .collect();
    let mut record = |errors: Vec<(&'static str, &'static str, f64)>| {
        for ((_, kind, worst), (_, measured_kind, error)) in worst_by_recipe.iter_mut().zip(&errors)
        {
            *kind = measured_kind;
            *worst = worst.max(*error);
        }
        errors
            .iter()
            .map(|(name, _, error)| (name.to_string(), json!(error)))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut cases = Vec::new();
    for case_idx in 0..plan.gate_cases {
        let case = RandomCase::draw(&mut rng);
        let model = Transformer::random(case.config, context.seed.wrapping_add(case_idx as u64))?;
        let errors = errors_by_recipe(
            case.config,
            &model,
            &case.prompts,
            &case.continuation,
            case.block_size,
        )?;
        let mut described = case.describe();
        described["max_relative_error"] = json!(record(errors));
        cases.push(described);
    }
    // The reference shape (d_model 128, 4 heads, 2 layers, d_ff 512), batch 2, a quarter of the dense
    // gate's steps (six compressions of the model run them).
    let model = super::reference_model(context)?;
    let steps = (plan.gate_reference_steps / 4).max(1);
    let prompts = Array2::from_shape_fn((2, PROMPT_LEN), |(s, t)| (11 * s + 3 * t) as u32 % 256);
    let continuation: Vec<Vec<u32>> = (0..steps)
        .map(|_| vec![rng.range(0, 255) as u32, rng.range(0, 255) as u32])
        .collect();
    let reference_errors = record(errors_by_recipe(
        *model.config(),
        &model,
        &prompts,
        &continuation,
        BLOCK_SIZE,
    )?);
    let worst = worst_by_recipe
        .iter()
        .fold(0.0f64, |max, (_, _, error)| max.max(*error));
    let by_recipe: serde_json::Map<String, serde_json::Value> = worst_by_recipe
        .iter()
        .map(|(name, kind, error)| {
            (
                name.to_string(),
                json!({ "max_relative_error": error, "projection": kind }),
            )
        })
        .collect();
    let summary = worst_by_recipe
        .iter()
        .map(|(name, _, error)| format!("{name} {error:.1e}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(compressed_gate_claim()
        .judge(Estimate::new(worst, worst, worst, "", 1.0)?)
        .with_detail(
            "metric",
            "max over steps of max_i |cached_i − recomputed_i| / max_i |recomputed_i|, per projection kind",
        )
        .with_detail("by_recipe", by_recipe)
        .with_detail("random_cases", &cases)
        .with_detail("reference_shape_errors", reference_errors)
        .with_detail("reference_shape_steps", steps)
        .annotate(format!("worst per kind: {summary}")))
}
