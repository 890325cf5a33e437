//! zoo's trained character transformer in kvcache's decoder: its logits, cached and recomputed, equal zoo's
//! own forward pass, and its held-out accuracy through the KV cache stands beside zoo's evaluation.
//!
//! The bridge is olympics' `challenge_model::char_transformer_weights` (the Olympics challenge runs the same
//! model on kvcache): kvcache takes plain weight arrays (`Transformer::from_weights`) and knows nothing of
//! zoo or candle; zoo knows nothing of kvcache.

use super::{or_error, ModuleContext, Plan, MODULE, TOLERANCE};
use anyhow::{ensure, Result};
use kvcache::{
    argmax, generate, max_relative_error, CacheMode, Decoder, GenerationConfig, Sampling,
    Transformer,
};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use serde_json::json;

/// zoo's model in kvcache, through olympics' conversion (the one bridge between zoo and kvcache).
fn kvcache_char_transformer(model: &zoo::CharTransformer) -> Result<Transformer> {
    let (config, weights) = olympics::challenge_model::char_transformer_weights(model)?;
    Ok(Transformer::from_weights(config, weights)?)
}

/// Worst normwise relative error, over every position of `window`, of kvcache's cached and
/// recomputing decoders against zoo's own forward pass (`window` starts a fresh sequence), and of
/// the cached decoder against the recomputing one.
struct WindowAgreement {
    cached_vs_zoo: f64,
    cached_vs_recompute: f64,
}

fn window_agreement(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    window: &[u32],
) -> Result<WindowAgreement> {
    let reference = zoo_model.forward(window)?;
    let mut cached = Decoder::new(model, 1, window.len(), CacheMode::Contiguous)?;
    let mut recomputing = Decoder::new(model, 1, window.len(), CacheMode::Disabled)?;
    let first = Array2::from_shape_vec((1, 1), vec![window[0]])?;
    let mut cached_logits = cached.prefill(first.view())?;
    let mut recomputed_logits = recomputing.prefill(first.view())?;
    let mut agreement = WindowAgreement {
        cached_vs_zoo: 0.0,
        cached_vs_recompute: 0.0,
    };
    for position in 0..window.len() {
        let zoo_row = reference
            .slice(ndarray::s![position..=position, ..])
            .to_owned();
        agreement.cached_vs_zoo = agreement
            .cached_vs_zoo
            .max(max_relative_error(&cached_logits, &zoo_row)?)
            .max(max_relative_error(&recomputed_logits, &zoo_row)?);
        agreement.cached_vs_recompute = agreement
            .cached_vs_recompute
            .max(max_relative_error(&cached_logits, &recomputed_logits)?);
        if position + 1 < window.len() {
            cached_logits = cached.step(&[window[position + 1]])?;
            recomputed_logits = recomputing.step(&[window[position + 1]])?;
        }
    }
    Ok(agreement)
}

/// Held-out next-character loss (nats) and top-1 hits through kvcache's cached decoder, over the
/// windows zoo evaluates (`context + 1` tokens, step `context`: each predicts its last `context`).
fn held_out_quality(model: &Transformer, tokens: &[u32]) -> Result<(f64, usize, usize)> {
    let context = model.config().max_seq_len;
    let (mut loss_sum, mut predicted, mut correct) = (0.0f64, 0usize, 0usize);
    let mut decoder = Decoder::new(model, 1, context, CacheMode::Contiguous)?;
    for window in tokens.windows(context + 1).step_by(context) {
        decoder.reset();
        let first = Array2::from_shape_vec((1, 1), vec![window[0]])?;
        let mut logits = decoder.prefill_view(first.view())?;
        for position in 0..context {
            let row = logits.row(0);
            let target = window[position + 1] as usize;
            let maximum = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum_exp = f64::from(maximum)
                + row
                    .iter()
                    .map(|&v| f64::from(v - maximum).exp())
                    .sum::<f64>()
                    .ln();
            loss_sum += log_sum_exp - f64::from(row[target]);
            predicted += 1;
            correct += usize::from(argmax(row) as usize == target);
            if position + 1 < context {
                logits = decoder.step_view(&[window[position + 1]])?;
            }
        }
    }
    ensure!(
        predicted > 0,
        "the held-out text is shorter than one window"
    );
    Ok((loss_sum, predicted, correct))
}

fn decode_text(vocabulary: &[char], tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(|&token| {
            vocabulary
                .get(token as usize)
                .copied()
                .unwrap_or('\u{fffd}')
        })
        .collect()
}

fn trained_agreement_claim() -> Claim {
    Claim::threshold(
        "kvcache.trained_model_agreement",
        MODULE,
        "zoo's trained character transformer loaded into kvcache: cached and recomputed logits equal zoo's own forward pass and each other at every position of held-out windows (max normwise relative error ≤ 1e-4)",
        TOLERANCE,
        Direction::AtMost,
    )
}

fn trained_generation_claim() -> Claim {
    Claim::measured(
        "kvcache.trained_generation",
        MODULE,
        "held-out next-character accuracy of zoo's trained character transformer decoded with kvcache's KV cache (Wilson 95% interval), beside zoo's own evaluation; greedy and seeded samples, cached tokens identical to recomputed ones",
    )
}

/// What a user runs to train zoo's character transformer into its weight cache.
const TRAIN_COMMAND: &str =
    "cargo run -p zoo --release --example train_all -- --only char-transformer";

pub(super) fn trained_model_claims(context: &ModuleContext, plan: &Plan) -> Vec<ClaimResult> {
    let zoo_config = zoo::ZooConfig {
        seed: 0,
        ..zoo::ZooConfig::default()
    };
    let both_error = |reason: String| {
        vec![
            trained_agreement_claim().error(reason.clone()),
            trained_generation_claim().error(reason),
        ]
    };
    // Quick mode trains nothing: it uses the model only when zoo's weight cache holds it.
    let loaded = if context.quick {
        zoo::load_cached(zoo::ReferenceModel::CharTransformer, &zoo_config)
    } else {
        zoo::train_or_load(zoo::ReferenceModel::CharTransformer, &zoo_config).map(Some)
    };
    let trained = match loaded {
        Ok(Some(trained)) => trained,
        Ok(None) => {
            let reason = "quick mode trains nothing and zoo's weight cache holds no character transformer (a full run trains it too)";
            return vec![
                trained_agreement_claim().skipped(reason, TRAIN_COMMAND),
                trained_generation_claim().skipped(reason, TRAIN_COMMAND),
            ];
        }
        Err(error) => return both_error(format!("zoo's character transformer: {error}")),
    };
    let zoo::TrainedWeights::CharTransformer(zoo_model) = &trained.weights else {
        return both_error(
            "zoo returned weights of another kind for the character transformer".into(),
        );
    };
    let validation: Vec<u32> = trained
        .test
        .features()
        .column(0)
        .iter()
        .map(|&token| token as u32)
        .collect();
    let model = match kvcache_char_transformer(zoo_model) {
        Ok(model) => model,
        Err(error) => return both_error(format!("converting zoo's weights: {error:#}")),
    };
    let agreement = or_error(
        trained_agreement(&model, zoo_model, &validation, plan, &trained.report),
        &trained_agreement_claim(),
    );
    let generation = if agreement.verdict == Verdict::Pass {
        or_error(
            trained_generation(&model, zoo_model, &validation, &trained.report),
            &trained_generation_claim(),
        )
    } else {
        trained_generation_claim().error(format!(
            "the agreement check did not pass ({}): {}",
            agreement.verdict, agreement.reason
        ))
    };
    vec![agreement, generation]
}

fn trained_agreement(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    validation: &[u32],
    plan: &Plan,
    report: &zoo::ModelReport,
) -> Result<ClaimResult> {
    let context = model.config().max_seq_len;
    let windows: Vec<&[u32]> = validation
        .chunks_exact(context)
        .take(plan.trained_agreement_windows)
        .collect();
    ensure!(
        !windows.is_empty(),
        "no held-out window of {context} tokens"
    );
    let (mut versus_zoo, mut versus_recompute) = (0.0f64, 0.0f64);
    for window in &windows {
        let agreement = window_agreement(model, zoo_model, window)?;
        versus_zoo = versus_zoo.max(agreement.cached_vs_zoo);
        versus_recompute = versus_recompute.max(agreement.cached_vs_recompute);
    }
    let worst = versus_zoo.max(versus_recompute);
    Ok(trained_agreement_claim()
        .judge(Estimate::new(worst, worst, worst, "", 1.0)?)
        .with_detail("windows", windows.len())
        .with_detail("positions_per_window", context)
        .with_detail("kvcache_vs_zoo_forward", versus_zoo)
        .with_detail("cached_vs_recompute", versus_recompute)
        .with_detail(
            "metric",
            "max over positions of max_i |a_i − b_i| / max_i |b_i|",
        )
        .with_detail("zoo_weights_from_cache", report.from_cache)
        .with_detail("zoo_cache_key", &report.cache_key)
        .with_detail("n_parameters", report.n_parameters))
}

fn trained_generation(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    validation: &[u32],
    report: &zoo::ModelReport,
) -> Result<ClaimResult> {
    let (loss_sum, predicted, correct) = held_out_quality(model, validation)?;
    let accuracy = zoo::ProportionEstimate::wilson(correct, predicted, 0.95)?;
    let loss = loss_sum / predicted as f64;
    // Generation from the first 16 held-out characters, to the end of the context.
    let prompt_len = 16.min(validation.len());
    let prompts = Array2::from_shape_vec((1, prompt_len), validation[..prompt_len].to_vec())?;
    let new_tokens = model.config().max_seq_len - prompt_len + 1;
    let run = |sampling: Sampling, cache: CacheMode| {
        generate(
            model,
            prompts.view(),
            &GenerationConfig {
                max_new_tokens: new_tokens,
                sampling,
                cache,
                record_logits: false,
            },
        )
    };
    let seeded = Sampling::Temperature {
        temperature: 0.8,
        seed: 0x5EED,
    };
    let greedy_cached = run(Sampling::Greedy, CacheMode::Contiguous)?;
    let greedy_recomputed = run(Sampling::Greedy, CacheMode::Disabled)?;
    let sampled_cached = run(seeded, CacheMode::Contiguous)?;
    let sampled_recomputed = run(seeded, CacheMode::Disabled)?;
    let identical = greedy_cached.tokens == greedy_recomputed.tokens
        && sampled_cached.tokens == sampled_recomputed.tokens;
    let vocabulary = &zoo_model.vocabulary;
    let prompt_text = decode_text(vocabulary, &validation[..prompt_len]);
    let greedy_text = decode_text(vocabulary, greedy_cached.tokens.as_slice().unwrap_or(&[]));
    let sampled_text = decode_text(vocabulary, sampled_cached.tokens.as_slice().unwrap_or(&[]));
    println!("  kvcache trained char transformer, prompt {prompt_text:?}");
    println!("    greedy:              {greedy_text:?}");
    println!("    sampled (T = 0.8):   {sampled_text:?}");
    let zoo_metric = match &report.metric {
        zoo::HeldOutMetric::LanguageModel {
            loss_nats_per_char,
            unigram_loss_nats_per_char,
            next_char_accuracy,
            ..
        } => json!({
            "loss_nats_per_char": loss_nats_per_char,
            "unigram_loss_nats_per_char": unigram_loss_nats_per_char,
            "next_char_accuracy": next_char_accuracy.point,
            "n": next_char_accuracy.n,
        }),
        other => json!(format!("{other:?}")),
    };
    let result = trained_generation_claim()
        .judge(Estimate::new(
            accuracy.point,
            accuracy.ci_lower,
            accuracy.ci_upper,
            "",
            accuracy.confidence,
        )?)
        .with_detail(
            "interval",
            "Wilson score interval over held-out predictions",
        )
        .with_detail("held_out_predictions", predicted)
        .with_detail("correct", correct)
        .with_detail("loss_nats_per_char", loss)
        .with_detail("perplexity", loss.exp())
        .with_detail("zoo_evaluation", zoo_metric)
        .with_detail("prompt", &prompt_text)
        .with_detail("greedy_sample", &greedy_text)
        .with_detail("sampled_sample", &sampled_text)
        .with_detail("sampling", "temperature 0.8, seed 0x5EED")
        .with_detail("cached_tokens_identical_to_recomputed", identical)
        .with_detail("zoo_weights_from_cache", report.from_cache)
        .annotate(format!(
            "loss {loss:.3} nats/char over {predicted} held-out characters"
        ));
    Ok(if identical {
        result
    } else {
        result.weaken(Verdict::Fail, "but cached and recomputed tokens differ")
    })
}

#[cfg(test)]
mod tests {
    use super::super::SplitMix;
    use super::*;
    use ndarray::{Array1, Array2};

    /// A small zoo model with random weights (nothing is trained in a test).
    fn tiny_zoo_model(seed: u64) -> zoo::CharTransformer {
        let mut rng = SplitMix(seed);
        let mut uniform = move |scale: f32| {
            (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 * scale - scale
        };
        let config = zoo::CharTransformerConfig {
            vocab_size: 13,
            context_length: 20,
            d_model: 16,
            n_heads: 4,
            n_layers: 2,
            d_ff: 24,
        };
        let mut matrix = |rows: usize, cols: usize, scale: f32| {
            Array2::from_shape_simple_fn((rows, cols), || uniform(scale))
        };
        let d = config.d_model;
        let mut linear = |inputs: usize, outputs: usize| zoo::Linear {
            weight: matrix(inputs, outputs, 1.0 / (inputs as f32).sqrt()),
            bias: matrix(1, outputs, 0.1).row(0).to_owned(),
        };
        let norm = |shift: f32| zoo::LayerNorm {
            gamma: Array1::from_elem(d, 1.0 + shift),
            beta: Array1::from_elem(d, shift),
            eps: 1e-5,
        };
        let blocks = (0..config.n_layers)
            .map(|layer| zoo::TransformerBlock {
                ln1: norm(0.05 * layer as f32),
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                output: linear(d, d),
                ln2: norm(-0.05),
                mlp_up: linear(d, config.d_ff),
                mlp_down: linear(config.d_ff, d),
            })
            .collect();
        let lm_head = linear(d, config.vocab_size);
        let token_embedding = matrix(config.vocab_size, d, 1.0);
        let position_embedding = matrix(config.context_length, d, 0.5);
        zoo::CharTransformer {
            vocabulary: "abcdefghijklm".chars().collect(),
            token_embedding,
            position_embedding,
            blocks,
            ln_final: norm(0.1),
            lm_head,
            config,
        }
    }

    #[test]
    fn zoo_weights_in_kvcache_reproduce_zoo_logits_cached_and_recomputed() {
        for seed in [1u64, 2] {
            let zoo_model = tiny_zoo_model(seed);
            let model = kvcache_char_transformer(&zoo_model).unwrap();
            let mut rng = SplitMix(seed ^ 77);
            let window: Vec<u32> = (0..zoo_model.config.context_length)
                .map(|_| rng.range(0, 12) as u32)
                .collect();
            let agreement = window_agreement(&model, &zoo_model, &window).unwrap();
            assert!(
                agreement.cached_vs_zoo <= TOLERANCE,
                "kvcache vs zoo: {}",
                agreement.cached_vs_zoo
            );
            assert!(
                agreement.cached_vs_recompute <= TOLERANCE,
                "cached vs recompute: {}",
                agreement.cached_vs_recompute
            );
        }
    }

    #[test]
    fn a_swapped_projection_is_caught() {
        // The check can fail: exchanging the key and query weights must break agreement with zoo.
        let zoo_model = tiny_zoo_model(3);
        let mut swapped = zoo_model.clone();
        for block in &mut swapped.blocks {
            std::mem::swap(&mut block.query, &mut block.key);
        }
        let model = kvcache_char_transformer(&swapped).unwrap();
        let window: Vec<u32> = (0..20).map(|t| (t * 5 % 13) as u32).collect();
        let agreement = window_agreement(&model, &zoo_model, &window).unwrap();
        assert!(
            agreement.cached_vs_zoo > TOLERANCE,
            "{}",
            agreement.cached_vs_zoo
        );
    }

    #[test]
    fn held_out_quality_counts_every_prediction_of_every_window() {
        let zoo_model = tiny_zoo_model(4);
        let model = kvcache_char_transformer(&zoo_model).unwrap();
        let tokens: Vec<u32> = (0..61).map(|t| (t * 7 % 13) as u32).collect();
        let (loss, predicted, correct) = held_out_quality(&model, &tokens).unwrap();
        let (zoo_loss, zoo_predicted, zoo_correct) =
            zoo::evaluate_language_model(&zoo_model, &tokens).unwrap();
        assert_eq!(predicted, zoo_predicted);
        assert_eq!(correct, zoo_correct);
        assert!((loss - zoo_loss).abs() <= 1e-3 * zoo_loss.abs().max(1.0));
    }
}
