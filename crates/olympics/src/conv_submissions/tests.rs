//! Tests of the conv submissions: every weight format against zoo's own forward pass, and bad queries.

use super::*;
use ndarray::Array1;
use zoo::{Classifier, Conv2d, DepthwiseSeparableBlock, Standardizer};

fn lcg_unit(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn conv(state: &mut u64, geometry: [usize; 5], out_channels: usize) -> Conv2d {
    let [in_channels, kernel_height, kernel_width, stride, padding] = geometry;
    let patch = in_channels * kernel_height * kernel_width;
    Conv2d {
        weight: Array2::from_shape_fn((patch, out_channels), |_| lcg_unit(state) * 0.4),
        bias: Array1::from_shape_fn(out_channels, |_| lcg_unit(state) * 0.1),
        in_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
    }
}

fn linear(state: &mut u64, inputs: usize, outputs: usize) -> Linear {
    Linear {
        weight: Array2::from_shape_fn((inputs, outputs), |_| lcg_unit(state) * 0.2),
        bias: Array1::from_shape_fn(outputs, |_| lcg_unit(state) * 0.1),
    }
}

fn cnn(state: &mut u64, side: usize, c1: usize, c2: usize) -> Cnn {
    Cnn {
        image_height: side,
        image_width: side,
        conv1: conv(state, [1, 3, 3, 1, 1], c1),
        conv2: conv(state, [c1, 3, 3, 1, 1], c2),
        classifier: linear(state, (side / 4) * (side / 4) * c2, 10),
    }
}

fn ds_cnn(state: &mut u64, channels: usize, n_blocks: usize) -> DsCnn {
    let (n_frames, n_coefficients) = (49, 10);
    let training =
        Array2::from_shape_fn((20, n_frames * n_coefficients), |_| lcg_unit(state) * 3.0);
    DsCnn {
        n_frames,
        n_coefficients,
        input_scaling: Standardizer::fit(training.view()),
        conv: conv(state, [1, 10, 4, 2, 1], channels),
        blocks: (0..n_blocks)
            .map(|_| DepthwiseSeparableBlock {
                depthwise: DepthwiseConv2d {
                    weight: Array2::from_shape_fn((channels, 9), |_| lcg_unit(state) * 0.5),
                    bias: Array1::from_shape_fn(channels, |_| lcg_unit(state) * 0.1),
                    kernel_height: 3,
                    kernel_width: 3,
                    padding: 1,
                },
                pointwise: linear(state, channels, channels),
            })
            .collect(),
        classifier: linear(state, channels, 10),
    }
}

/// A model builder per format, zoo's model, and its input width.
type Case = (
    Box<dyn Fn(WeightFormat) -> ConvClassifier>,
    Box<dyn Classifier>,
    usize,
);

/// Each format against zoo's own forward pass of the same model, on Fashion-CNN and DS-CNN shapes and a
/// few smaller ones (odd sides, so pooling drops a row), outputs NaN-filled. Bounds: f32 differs from zoo in
/// summation order only (`1e-4 · (1 + |y|)`); f16 rounds each weight to 11 significant bits and int8 to 8 bits
/// with activations quantized per layer, so they are held to a share of the logits' range (1% and 8%).
#[test]
fn every_format_matches_zoo() {
    let mut state = 21u64;
    let models: Vec<Case> = {
        let mut list: Vec<Case> = Vec::new();
        for (side, c1, c2) in [(28usize, 16usize, 32usize), (9, 3, 5), (12, 1, 17)] {
            let model = cnn(&mut state, side, c1, c2);
            let copy = model.clone();
            list.push((
                Box::new(move |format| ConvClassifier::from_cnn("cnn", &copy, format).unwrap()),
                Box::new(model),
                side * side,
            ));
        }
        for (channels, blocks) in [(32usize, 3usize), (7, 1)] {
            let model = ds_cnn(&mut state, channels, blocks);
            let copy = model.clone();
            list.push((
                Box::new(move |format| {
                    ConvClassifier::from_ds_cnn("ds_cnn", &copy, format).unwrap()
                }),
                Box::new(model),
                490,
            ));
        }
        list
    };
    for (build, reference, width) in &models {
        let batch = Array2::from_shape_fn((3, *width), |_| lcg_unit(&mut state).abs());
        let expected = reference.logits(batch.view()).unwrap();
        let range = expected.iter().fold(0f32, |acc, v| acc.max(v.abs()));
        for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Int8] {
            let submission = build(format);
            let mut got = Array2::from_elem(expected.dim(), f32::NAN);
            submission
                .forward_into(batch.view(), got.view_mut())
                .unwrap();
            for (&value, &reference) in got.iter().zip(expected.iter()) {
                let bound = match format {
                    WeightFormat::Int8 => 0.08 * range + 1e-4,
                    WeightFormat::F16 => 0.01 * range + 1e-4,
                    _ => 1e-4 * (1.0 + reference.abs()),
                };
                assert!(
                    (value - reference).abs() <= bound,
                    "{format:?}: {value} vs {reference} (range {range})"
                );
            }
            assert!(submission.kernels().is_ok());
            assert!(submission.storage_bytes() > 0);
        }
    }
}

#[test]
fn bad_queries_are_errors() {
    let mut state = 1u64;
    let model = cnn(&mut state, 8, 2, 3);
    let submission = ConvClassifier::from_cnn("cnn", &model, WeightFormat::F32).unwrap();
    assert!(submission
        .forward(Array2::<f32>::zeros((1, 63)).view())
        .is_err());
    let mut wrong = Array2::<f32>::zeros((1, 9));
    assert!(submission
        .forward_into(Array2::<f32>::zeros((1, 64)).view(), wrong.view_mut())
        .is_err());
    let nan = Array2::from_elem((1, 64), f32::NAN);
    let int8 = ConvClassifier::from_cnn("cnn", &model, WeightFormat::Int8).unwrap();
    assert!(int8.forward(nan.view()).is_err());
}
