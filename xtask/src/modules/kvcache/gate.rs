//! The correctness gate: cached (contiguous and paged) logits equal full recomputation at every step,
//! over random shapes and the reference shape, and greedy generation gives the same tokens either way.

use super::{
    greedy_generation, reference_model, ModuleContext, Plan, SplitMix, BLOCK_SIZE, MODULE,
};
use super::{PROMPT_LEN, TOLERANCE};
use anyhow::Result;
use kvcache::{
    max_relative_error, CacheMode, Decoder, ModelConfig, PositionalEncoding, Projection,
    Transformer,
};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use serde_json::json;

pub(super) fn gate_claim() -> Claim {
    Claim::threshold(
        "kvcache.correctness_gate",
        MODULE,
        "cached (contiguous and paged) logits equal full recomputation at every step: max normwise relative error ≤ 1e-4 over random prompts, lengths, batch sizes and model shapes",
        TOLERANCE,
        Direction::AtMost,
    )
}

/// Feed identical tokens to a recomputing, a contiguous and a paged decoder; return the worst
/// error of the cached logits against the recomputed ones over all steps.
pub(super) fn worst_case_error<P: Projection>(
    model: &Transformer<P>,
    prompts: &Array2<u32>,
    continuation: &[Vec<u32>],
    block_size: usize,
) -> Result<f64> {
    let batch_size = prompts.nrows();
    let capacity = prompts.ncols() + continuation.len();
    let modes = [
        CacheMode::Disabled,
        CacheMode::Contiguous,
        CacheMode::Paged { block_size },
    ];
    let mut decoders = modes
        .iter()
        .map(|&mode| Decoder::new(model, batch_size, capacity, mode))
        .collect::<Result<Vec<_>, _>>()?;
    let mut logits = decoders
        .iter_mut()
        .map(|decoder| decoder.prefill(prompts.view()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut worst = 0.0f64;
    for step in 0..=continuation.len() {
        for candidate in &logits[1..] {
            worst = worst.max(max_relative_error(candidate, &logits[0])?);
        }
        if step == continuation.len() {
            break;
        }
        logits = decoders
            .iter_mut()
            .map(|decoder| decoder.step(&continuation[step]))
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(worst)
}

/// One random gate case: a model shape, a batch of prompts, the tokens fed after them and the
/// paged cache's block size.
pub(super) struct RandomCase {
    pub(super) config: ModelConfig,
    pub(super) prompts: Array2<u32>,
    pub(super) continuation: Vec<Vec<u32>>,
    pub(super) block_size: usize,
}

impl RandomCase {
    pub(super) fn draw(rng: &mut SplitMix) -> Self {
        let n_heads = rng.range(1, 4);
        let d_head = [4, 8, 16, 32][rng.range(0, 3)];
        let d_model = n_heads * d_head;
        let config = ModelConfig {
            vocab_size: rng.range(8, 300),
            d_model,
            n_heads,
            n_layers: rng.range(1, 3),
            d_ff: d_model * rng.range(1, 4),
            max_seq_len: 64,
            positional: if rng.range(0, 1) == 0 {
                PositionalEncoding::Learned
            } else {
                PositionalEncoding::Sinusoidal
            },
            layer_norm_epsilon: 1e-5,
        };
        let batch_size = rng.range(1, 4);
        let prompt_len = rng.range(1, 16);
        let steps = rng.range(1, 24);
        let block_size = rng.range(1, 8);
        let vocab = config.vocab_size;
        let prompts = Array2::from_shape_simple_fn((batch_size, prompt_len), || {
            rng.range(0, vocab - 1) as u32
        });
        let continuation: Vec<Vec<u32>> = (0..steps)
            .map(|_| {
                (0..batch_size)
                    .map(|_| rng.range(0, vocab - 1) as u32)
                    .collect()
            })
            .collect();
        RandomCase {
            config,
            prompts,
            continuation,
            block_size,
        }
    }

    /// The case's shape, for the claim's details.
    pub(super) fn describe(&self) -> serde_json::Value {
        let config = &self.config;
        json!({
            "d_model": config.d_model, "n_heads": config.n_heads, "n_layers": config.n_layers,
            "d_ff": config.d_ff, "vocab_size": config.vocab_size,
            "batch_size": self.prompts.nrows(), "prompt_len": self.prompts.ncols(),
            "steps": self.continuation.len(), "block_size": self.block_size,
            "positional": format!("{:?}", config.positional),
        })
    }
}

pub(super) fn correctness_gate(context: &ModuleContext, plan: &Plan) -> Result<ClaimResult> {
    let mut rng = SplitMix(context.seed ^ 0x006B_7663_6163_6865);
    let mut cases = Vec::new();
    let mut worst = 0.0f64;
    for case_idx in 0..plan.gate_cases {
        let case = RandomCase::draw(&mut rng);
        let model = Transformer::random(case.config, context.seed.wrapping_add(case_idx as u64))?;
        let error = worst_case_error(&model, &case.prompts, &case.continuation, case.block_size)?;
        worst = worst.max(error);
        let mut described = case.describe();
        described["max_relative_error"] = json!(error);
        cases.push(described);
    }
    // The reference shape over a long continuation, and greedy generation token for token.
    let model = reference_model(context)?;
    let steps = plan.gate_reference_steps;
    let prompts = Array2::from_shape_fn((2, PROMPT_LEN), |(s, t)| (17 * s + 5 * t) as u32 % 256);
    let continuation: Vec<Vec<u32>> = (0..steps)
        .map(|_| vec![rng.range(0, 255) as u32, rng.range(0, 255) as u32])
        .collect();
    let reference_error = worst_case_error(&model, &prompts, &continuation, BLOCK_SIZE)?;
    worst = worst.max(reference_error);
    let single = prompts.slice(ndarray::s![0..1, ..]).to_owned();
    let cached = greedy_generation(&model, &single, steps, CacheMode::Contiguous)?;
    let recomputed = greedy_generation(&model, &single, steps, CacheMode::Disabled)?;
    let identical_tokens = cached == recomputed;
    let result = gate_claim()
        .judge(Estimate::new(worst, worst, worst, "", 1.0)?)
        .with_detail(
            "metric",
            "max over steps of max_i |cached_i − recomputed_i| / max_i |recomputed_i|",
        )
        .with_detail("random_cases", &cases)
        .with_detail("reference_shape_error", reference_error)
        .with_detail("reference_shape_steps", steps)
        .with_detail("greedy_tokens_identical", identical_tokens);
    Ok(if identical_tokens {
        result
    } else {
        result.weaken(Verdict::Fail, "but greedy tokens differ")
    })
}
