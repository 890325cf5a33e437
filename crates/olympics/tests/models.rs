//! The compressed models against their references: the f32 transformer equals zoo's, the KV-cached step
//! equals full recomputation, the cached and uncached submissions agree, pruning removes what it says, a
//! CSR layer computes what its dense pruned twin computes, and removing neurons equals zeroing them.
#![cfg(feature = "reference")]

use ndarray::{Array1, Array2};
use olympics::compress::{
    prune_magnitude, prune_neurons, CompressedLinear, CompressedMlp, Recipe, WeightFormat,
};
use olympics::transformer::{CompressedTransformer, NextCharSubmission};
use olympics::Submission;
use rand::{Rng, SeedableRng};
use zoo::{CharTransformer, CharTransformerConfig, LayerNorm, Linear, Mlp, TransformerBlock};

fn random_matrix(
    rng: &mut rand::rngs::StdRng,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| scale * (rng.random::<f32>() * 2.0 - 1.0))
}

fn random_linear(rng: &mut rand::rngs::StdRng, inputs: usize, outputs: usize) -> Linear {
    Linear {
        weight: random_matrix(rng, inputs, outputs, 0.5),
        bias: Array1::from_shape_fn(outputs, |_| 0.1 * (rng.random::<f32>() - 0.5)),
    }
}

fn layer_norm(width: usize) -> LayerNorm {
    LayerNorm {
        gamma: Array1::ones(width),
        beta: Array1::zeros(width),
        eps: 1e-5,
    }
}

fn random_transformer(seed: u64) -> CharTransformer {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let config = CharTransformerConfig {
        vocab_size: 11,
        context_length: 9,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
    };
    let blocks = (0..config.n_layers)
        .map(|_| TransformerBlock {
            ln1: layer_norm(8),
            query: random_linear(&mut rng, 8, 8),
            key: random_linear(&mut rng, 8, 8),
            value: random_linear(&mut rng, 8, 8),
            output: random_linear(&mut rng, 8, 8),
            ln2: layer_norm(8),
            mlp_up: random_linear(&mut rng, 8, 16),
            mlp_down: random_linear(&mut rng, 16, 8),
        })
        .collect();
    CharTransformer {
        vocabulary: (0..11u8).map(|index| char::from(b'a' + index)).collect(),
        token_embedding: random_matrix(&mut rng, 11, 8, 1.0),
        position_embedding: random_matrix(&mut rng, 9, 8, 0.3),
        blocks,
        ln_final: layer_norm(8),
        lm_head: random_linear(&mut rng, 8, 11),
        config,
    }
}

fn max_abs_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .fold(0.0, |max, (x, y)| max.max((x - y).abs()))
}

const TOKENS: [u32; 9] = [3, 1, 4, 1, 5, 9, 2, 6, 5];

#[test]
fn f32_transformer_equals_zoo_and_the_cached_step_equals_recomputation() {
    let model = random_transformer(1);
    let reference = model.forward(&TOKENS).unwrap();
    let compressed = CompressedTransformer::compress(&model, &Recipe::BASELINE).unwrap();
    let full = compressed.forward(&TOKENS).unwrap();
    // Same operations in a slightly different order (softmax scaling): f32 rounding only.
    assert!(max_abs_difference(&full, &reference) < 1e-5);
    let mut state = compressed.new_state();
    for (position, &token) in TOKENS.iter().enumerate() {
        let logits = compressed.step(&mut state, token).unwrap();
        let row = full.row(position);
        let difference = logits
            .iter()
            .zip(row)
            .fold(0.0f32, |max, (a, b)| max.max((a - b).abs()));
        // Attention sums over the same terms in another order (dot products vs a matrix kernel).
        assert!(difference < 1e-4, "position {position}: {difference}");
    }
    assert!(compressed.step(&mut state, 0).is_err(), "context is full");
}

fn stream_rows(tokens: &[u32], context: usize) -> Array2<f32> {
    let mut rows = Array2::<f32>::zeros((tokens.len(), context + 1));
    for length in 1..=tokens.len() {
        rows[[length - 1, 0]] = length as f32;
        for (slot, &token) in tokens[..length].iter().enumerate() {
            rows[[length - 1, slot + 1]] = token as f32;
        }
    }
    rows
}

#[test]
fn cached_and_uncached_submissions_agree_in_any_batching() {
    let model = random_transformer(2);
    for recipe in [
        Recipe::BASELINE,
        Recipe {
            format: WeightFormat::Int8,
            structured: Some(0.5),
            unstructured: None,
        },
        Recipe {
            format: WeightFormat::F32,
            structured: None,
            unstructured: Some(0.5),
        },
    ] {
        let compressed = CompressedTransformer::compress(&model, &recipe).unwrap();
        let uncached = NextCharSubmission::new("uncached", compressed.clone(), &recipe, false);
        let cached = NextCharSubmission::new("cached", compressed, &recipe, true);
        let rows = stream_rows(&TOKENS, 9);
        let all_at_once = uncached.forward(rows.view()).unwrap();
        let mut one_by_one = Array2::<f32>::zeros(all_at_once.dim());
        for row in 0..rows.nrows() {
            let output = cached
                .forward(rows.slice(ndarray::s![row..row + 1, ..]))
                .unwrap();
            one_by_one.row_mut(row).assign(&output.row(0));
        }
        // Int8 activations are quantized per call from the batch's own range (dynamic), so a one-row step and
        // a whole-prefix pass quantize differently: a bounded difference, not rounding noise.
        let tolerance = if recipe.format == WeightFormat::Int8 {
            0.1
        } else {
            1e-4
        };
        let difference = max_abs_difference(&all_at_once, &one_by_one);
        assert!(difference < tolerance, "{recipe:?}: {difference}");
        // A query that does not extend the cached prefix recomputes from scratch.
        let restart = cached.forward(rows.slice(ndarray::s![2..3, ..])).unwrap();
        let restart_difference = max_abs_difference(
            &restart,
            &one_by_one.slice(ndarray::s![2..3, ..]).to_owned(),
        );
        assert!(restart_difference < 1e-5, "{restart_difference}");
        assert!(cached
            .optimizations()
            .contains(&olympics::Optimization::KvCache));
    }
}

#[test]
fn malformed_queries_are_errors() {
    let model = random_transformer(3);
    let compressed = CompressedTransformer::compress(&model, &Recipe::BASELINE).unwrap();
    let submission = NextCharSubmission::new("x", compressed, &Recipe::BASELINE, true);
    let mut rows = stream_rows(&TOKENS[..2], 9);
    rows[[0, 0]] = 0.0;
    assert!(submission.forward(rows.view()).is_err());
    let mut rows = stream_rows(&TOKENS[..2], 9);
    rows[[1, 1]] = 99.0;
    assert!(submission.forward(rows.view()).is_err());
    assert!(submission
        .forward(Array2::<f32>::zeros((1, 3)).view())
        .is_err());
}

#[test]
fn magnitude_pruning_removes_the_smallest_share() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let weight = random_matrix(&mut rng, 13, 7, 1.0);
    for sparsity in [0.0, 0.5, 0.75, 0.9] {
        let pruned = prune_magnitude(weight.view(), sparsity).unwrap();
        let n_zero = pruned.iter().filter(|value| **value == 0.0).count();
        assert_eq!(n_zero, (sparsity * 91.0).floor() as usize);
        let largest_removed = weight
            .iter()
            .zip(&pruned)
            .filter(|(_, kept)| **kept == 0.0)
            .fold(0.0f32, |max, (original, _)| max.max(original.abs()));
        let smallest_kept = pruned
            .iter()
            .filter(|value| **value != 0.0)
            .fold(f32::INFINITY, |min, value| min.min(value.abs()));
        assert!(largest_removed <= smallest_kept);
    }
    assert!(prune_magnitude(weight.view(), 1.0).is_err());
    assert!(prune_magnitude(weight.view(), f64::NAN).is_err());
}

#[test]
fn csr_layer_computes_its_dense_pruned_twin() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let layer = random_linear(&mut rng, 17, 6);
    let x = random_matrix(&mut rng, 5, 17, 1.0);
    let sparse = CompressedLinear::sparse(&layer, 0.75).unwrap();
    let dense_twin = Linear {
        weight: prune_magnitude(layer.weight.view(), 0.75).unwrap(),
        bias: layer.bias.clone(),
    };
    let expected = dense_twin.forward(x.view()).unwrap();
    let actual = sparse.forward(x.view()).unwrap();
    // A sum of at most 17 products of values below 1 in another order: f32 rounding only.
    assert!(max_abs_difference(&actual, &expected) < 1e-5);
    assert!(
        sparse.storage_bytes()
            < CompressedLinear::new(&layer, WeightFormat::F32)
                .unwrap()
                .storage_bytes()
    );
}

#[test]
fn removing_neurons_equals_zeroing_them() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let first = random_linear(&mut rng, 10, 12);
    let second = random_linear(&mut rng, 12, 4);
    let (small_first, small_second) = prune_neurons(&first, &second, 0.5).unwrap();
    assert_eq!(small_first.out_features(), 6);
    assert_eq!(small_second.in_features(), 6);
    // Zero the removed neurons' incoming columns, biases and outgoing rows in the full network.
    let mut masked_first = first.clone();
    let mut masked_second = second.clone();
    for neuron in 0..12 {
        let kept =
            (0..6).any(|index| small_first.weight.column(index) == first.weight.column(neuron));
        if !kept {
            masked_first.weight.column_mut(neuron).fill(0.0);
            masked_first.bias[neuron] = 0.0;
            masked_second.weight.row_mut(neuron).fill(0.0);
        }
    }
    let x = random_matrix(&mut rng, 3, 10, 1.0);
    let small = Mlp {
        layers: vec![small_first, small_second],
    };
    let masked = Mlp {
        layers: vec![masked_first, masked_second],
    };
    let difference = max_abs_difference(
        &small.forward(x.view()).unwrap(),
        &masked.forward(x.view()).unwrap(),
    );
    assert!(difference < 1e-5);
    let compressed = CompressedMlp::compress(
        &Mlp {
            layers: vec![first, second],
        },
        &Recipe {
            format: WeightFormat::Int8,
            structured: Some(0.5),
            unstructured: None,
        },
    )
    .unwrap();
    assert_eq!(compressed.out_features(), 4);
    assert!(prune_neurons(&small.layers[0], &small.layers[0], 0.5).is_err());
}
