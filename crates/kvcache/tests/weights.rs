//! Models built from plain weights (`Transformer::from_weights`, the door for a model trained elsewhere, e.g.
//! zoo's character transformer): the round trip through `to_weights`, typed errors for wrong shapes and non-finite
//! values, and the documented weight layout checked against an independent f64 forward pass written from the
//! documentation (pre-LayerNorm blocks, q | k | v columns, causal softmax, tanh GELU, LM-head bias), with cached
//! decoding compared at every step.

use kvcache::{
    CacheMode, Decoder, KvCacheError, ModelConfig, PositionalEncoding, Transformer,
    TransformerWeights,
};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tiny_config() -> ModelConfig {
    ModelConfig {
        vocab_size: 11,
        d_model: 12,
        n_heads: 3,
        n_layers: 2,
        d_ff: 20,
        max_seq_len: 24,
        positional: PositionalEncoding::Learned,
        layer_norm_epsilon: 1e-5,
    }
}

/// Random weights with a non-zero LM-head bias (which `Transformer::random` leaves at zero).
fn tiny_weights(seed: u64) -> TransformerWeights {
    let model = Transformer::random(tiny_config(), seed).unwrap();
    let mut weights = model.to_weights();
    let mut rng = StdRng::seed_from_u64(seed);
    weights.lm_head_bias =
        Array1::from_shape_simple_fn(tiny_config().vocab_size, || rng.random_range(-0.5f32..0.5));
    weights
}

fn layer_norm(x: &[f64], gain: &Array1<f32>, bias: &Array1<f32>, epsilon: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            (v - mean) / (variance + epsilon).sqrt() * f64::from(gain[i]) + f64::from(bias[i])
        })
        .collect()
}

/// `x · W + b` in f64 for a row `x` and an `in × out` weight.
fn linear(x: &[f64], weight: &Array2<f32>, bias: &Array1<f32>) -> Vec<f64> {
    (0..weight.ncols())
        .map(|j| {
            f64::from(bias[j])
                + x.iter()
                    .enumerate()
                    .map(|(i, v)| v * f64::from(weight[[i, j]]))
                    .sum::<f64>()
        })
        .collect()
}

fn gelu(v: f64) -> f64 {
    0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044_715 * v.powi(3))).tanh())
}

/// Next-token logits after every prefix of `tokens`, by full recomputation in f64, from the documentation of
/// `LayerWeights` / `TransformerWeights` alone.
fn reference_logits(
    weights: &TransformerWeights,
    config: &ModelConfig,
    tokens: &[u32],
) -> Vec<Vec<f64>> {
    let d = config.d_model;
    let d_head = d / config.n_heads;
    let epsilon = f64::from(config.layer_norm_epsilon);
    let mut hidden: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(position, &token)| {
            (0..d)
                .map(|i| {
                    f64::from(weights.token_embedding[[token as usize, i]])
                        + f64::from(weights.position_table[[position, i]])
                })
                .collect()
        })
        .collect();
    for layer in &weights.layers {
        let qkv: Vec<Vec<f64>> = hidden
            .iter()
            .map(|x| {
                let normed = layer_norm(
                    x,
                    &layer.attention_norm_gain,
                    &layer.attention_norm_bias,
                    epsilon,
                );
                linear(&normed, &layer.qkv_weight, &layer.qkv_bias)
            })
            .collect();
        let mut heads = vec![vec![0.0f64; d]; tokens.len()];
        for head in 0..config.n_heads {
            let columns = head * d_head..(head + 1) * d_head;
            for query_idx in 0..tokens.len() {
                let scores: Vec<f64> = (0..=query_idx)
                    .map(|key_idx| {
                        columns
                            .clone()
                            .map(|c| qkv[query_idx][c] * qkv[key_idx][d + c])
                            .sum::<f64>()
                            / (d_head as f64).sqrt()
                    })
                    .collect();
                let maximum = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - maximum).exp()).collect();
                let total: f64 = exps.iter().sum();
                for c in columns.clone() {
                    heads[query_idx][c] = (0..=query_idx)
                        .map(|key_idx| exps[key_idx] / total * qkv[key_idx][2 * d + c])
                        .sum();
                }
            }
        }
        for (x, attended) in hidden.iter_mut().zip(&heads) {
            let projected = linear(attended, &layer.output_weight, &layer.output_bias);
            x.iter_mut().zip(&projected).for_each(|(v, p)| *v += p);
            let normed = layer_norm(x, &layer.mlp_norm_gain, &layer.mlp_norm_bias, epsilon);
            let up: Vec<f64> = linear(&normed, &layer.up_weight, &layer.up_bias)
                .into_iter()
                .map(gelu)
                .collect();
            let down = linear(&up, &layer.down_weight, &layer.down_bias);
            x.iter_mut().zip(&down).for_each(|(v, p)| *v += p);
        }
    }
    hidden
        .iter()
        .map(|x| {
            let normed = layer_norm(
                x,
                &weights.final_norm_gain,
                &weights.final_norm_bias,
                epsilon,
            );
            linear(&normed, &weights.lm_head, &weights.lm_head_bias)
        })
        .collect()
}

#[test]
fn round_trip_through_plain_weights_gives_identical_logits() {
    let original = Transformer::random(tiny_config(), 5).unwrap();
    let rebuilt = Transformer::from_weights(tiny_config(), original.to_weights()).unwrap();
    assert_eq!(rebuilt.to_weights(), original.to_weights());
    let prompt = Array2::from_shape_vec((1, 4), vec![1u32, 7, 3, 9]).unwrap();
    let mut store_a = original.new_cache(1, 4).unwrap();
    let mut store_b = rebuilt.new_cache(1, 4).unwrap();
    assert_eq!(
        original.forward(prompt.view(), &mut store_a).unwrap(),
        rebuilt.forward(prompt.view(), &mut store_b).unwrap()
    );
}

#[test]
fn wrong_shapes_and_non_finite_weights_are_typed_errors() {
    let mut weights = tiny_weights(1);
    weights.layers[1].qkv_weight = Array2::zeros((12, 24));
    match Transformer::from_weights(tiny_config(), weights) {
        Err(KvCacheError::ShapeMismatch {
            what,
            expected,
            actual,
        }) => {
            assert_eq!(what, "qkv_weight");
            assert_eq!(expected, vec![12, 36]);
            assert_eq!(actual, vec![12, 24]);
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    let mut weights = tiny_weights(1);
    weights.layers.pop();
    assert!(matches!(
        Transformer::from_weights(tiny_config(), weights),
        Err(KvCacheError::ShapeMismatch { what: "layers", .. })
    ));
    let mut weights = tiny_weights(1);
    weights.lm_head_bias[3] = f32::NAN;
    assert!(matches!(
        Transformer::from_weights(tiny_config(), weights),
        Err(KvCacheError::InvalidConfig { .. })
    ));
}

#[test]
fn the_documented_layout_matches_an_independent_forward_pass_at_every_step() {
    let config = tiny_config();
    let mut rng = StdRng::seed_from_u64(99);
    for seed in 0..4u64 {
        let weights = tiny_weights(seed);
        let model = Transformer::from_weights(config, weights.clone()).unwrap();
        let tokens: Vec<u32> = (0..config.max_seq_len)
            .map(|_| rng.random_range(0..config.vocab_size as u32))
            .collect();
        let expected = reference_logits(&weights, &config, &tokens);
        let prompt_len = 1 + seed as usize;
        let prompt =
            Array2::from_shape_vec((1, prompt_len), tokens[..prompt_len].to_vec()).unwrap();
        let mut decoder = Decoder::new(&model, 1, tokens.len(), CacheMode::Contiguous).unwrap();
        let mut logits = decoder.prefill(prompt.view()).unwrap();
        for position in prompt_len - 1..tokens.len() {
            let want = &expected[position];
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let error = logits
                .row(0)
                .iter()
                .zip(want)
                .fold(0.0f64, |m, (&got, &want)| {
                    m.max((f64::from(got) - want).abs())
                });
            // f32 arithmetic against f64: a normwise relative error of 1e-4 is the gate's bound.
            assert!(
                error <= 1e-4 * scale,
                "seed {seed} position {position}: error {error:e}, scale {scale}"
            );
            if position + 1 < tokens.len() {
                logits = decoder.step(&[tokens[position + 1]]).unwrap();
            }
        }
    }
}
