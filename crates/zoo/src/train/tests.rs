//! Export checked against candle for every architecture (the exported ndarray model must compute what the
//! trained candle graph computed), and a short training run: loss falls, and a seed reproduces it exactly.

use candle_core::{Device, Tensor};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

use super::*;
use crate::layers::Standardizer;
use crate::models::{CharTransformerConfig, Classifier};

fn random_rows(n_rows: usize, n_cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n_rows, n_cols), |_| rng.random_range(-1.0f32..1.0))
}

fn candle_rows(x: &Array2<f32>) -> Tensor {
    Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap()
}

fn assert_close(candle_output: &Tensor, ndarray_output: &Array2<f32>) {
    let expected = candle_output.to_vec2::<f32>().unwrap();
    assert_eq!((expected.len(), expected[0].len()), ndarray_output.dim());
    for (row, expected_row) in ndarray_output.rows().into_iter().zip(&expected) {
        for (&actual, &wanted) in row.iter().zip(expected_row) {
            // f32 sums of a few hundred terms in different orders: 1e-4 absolute plus 1e-4 relative.
            assert!(
                (actual - wanted).abs() <= 1e-4 + 1e-4 * wanted.abs(),
                "{actual} vs {wanted}"
            );
        }
    }
}

/// The candle model's output on `input` against the exported model's.
fn assert_export_matches(
    model: &dyn CandleModel,
    input: &Array2<f32>,
    exported_output: Array2<f32>,
) {
    assert_close(
        &model.forward(&candle_rows(input)).unwrap(),
        &exported_output,
    );
}

#[test]
fn exported_mlp_matches_candle() {
    let mut store = ParamStore::new(1);
    let model = CandleMlp::new(&mut store, &[7, 5, 3]).unwrap();
    let x = random_rows(4, 7, 2);
    let exported = export_mlp(&store.named_tensors(), "mlp").unwrap();
    assert_export_matches(&model, &x, exported.forward(x.view()).unwrap());
}

#[test]
fn exported_cnn_matches_candle() {
    let shape = CnnShape {
        image_height: 8,
        image_width: 12,
        conv1_channels: 3,
        conv2_channels: 4,
        n_classes: 5,
    };
    let mut store = ParamStore::new(3);
    let model = CandleCnn::new(&mut store, shape).unwrap();
    let x = random_rows(2, 96, 4);
    let exported = export_cnn(&store.named_tensors(), "cnn", shape).unwrap();
    assert_export_matches(&model, &x, exported.logits(x.view()).unwrap());
}

#[test]
fn exported_ds_cnn_matches_candle() {
    let shape = DsCnnShape {
        n_frames: 49,
        n_coefficients: 10,
        channels: 4,
        n_blocks: 2,
        n_classes: 3,
    };
    let x = random_rows(3, 490, 5);
    let scaling = Standardizer::fit(x.view());
    let mut store = ParamStore::new(6);
    let model = CandleDsCnn::new(&mut store, shape).unwrap();
    let mut tensors = store.named_tensors();
    tensors.extend(scaling_tensors(&scaling).unwrap());
    let exported = export_ds_cnn(&tensors, "ds-cnn", shape).unwrap();
    let patches = ds_cnn_patches(x.view(), &shape, &scaling).unwrap();
    assert_export_matches(&model, &patches, exported.logits(x.view()).unwrap());
}

#[test]
fn exported_char_transformer_matches_candle() {
    let config = CharTransformerConfig {
        vocab_size: 11,
        context_length: 8,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
    };
    let mut store = ParamStore::new(7);
    let model = CandleCharTransformer::new(&mut store, config.clone()).unwrap();
    // Perturb LayerNorm parameters away from 1/0 so that the test exercises them.
    for (name, var) in &store.vars {
        if name.contains("ln") {
            let shifted = (var.as_tensor() + 0.3).unwrap();
            var.set(&shifted).unwrap();
        }
    }
    let tokens: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6];
    let vocabulary: Vec<char> = "abcdefghijk".chars().collect();
    let exported = export_char_transformer(&store.named_tensors(), &config, vocabulary).unwrap();
    let candle_logits = model
        .logits(&Tensor::from_slice(&tokens, (1, 8), &Device::Cpu).unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    assert_close(&candle_logits, &exported.forward(&tokens).unwrap());
    // A prefix gives the prefix of the logits: attention is causal.
    let prefix_logits = exported.forward(&tokens[..5]).unwrap();
    let full_logits = exported.forward(&tokens).unwrap();
    for (prefix_value, full_value) in prefix_logits
        .iter()
        .zip(full_logits.slice(ndarray::s![..5, ..]).iter())
    {
        assert!((prefix_value - full_value).abs() < 1e-5);
    }
}

#[test]
fn short_training_lowers_loss_and_is_deterministic() {
    let (set, _) = datasets::load_digits().unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 64,
        learning_rate: 1e-2,
        max_steps: Some(40),
        ..TrainConfig::default()
    };
    let (mlp, log) =
        train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &config).unwrap();
    assert_eq!(log.steps, 40);
    let first: f32 = log.step_losses[..3].iter().sum::<f32>() / 3.0;
    let last: f32 = log.step_losses[37..].iter().sum::<f32>() / 3.0;
    assert!(
        last < 0.6 * first,
        "loss did not decrease: {first} -> {last}"
    );
    let (mlp_again, log_again) =
        train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &config).unwrap();
    assert_eq!(log.step_losses, log_again.step_losses);
    assert_eq!(mlp, mlp_again);
    let other_seed = TrainConfig { seed: 1, ..config };
    let (mlp_other, _) =
        train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &other_seed).unwrap();
    assert_ne!(mlp, mlp_other);
}
