//! Laws of quantization: the round-trip bound |deq(q(x)) − x| ≤ scale/2 in range (property test), exact
//! constants, and the quantized Linear against its f32 original.

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use proptest::prelude::*;
use quant::{
    ActivationQuant, ErrorStats, GemmConfig, GemmKernel, Granularity, QuantConfig, QuantParams,
    QuantType, QuantizedLinear, QuantizedMlp, QuantizedMlpConfig, QuantizedTensor, Scheme,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The bound scale/2 is exact in real arithmetic; in f32 the division x/scale and the product (q − z)·scale
/// each round once, adding at most a few ulps of |x| (and of scale/2). This slack is far below any real
/// violation, which would be a whole step.
fn bound(params: &QuantParams, value: f32) -> f32 {
    params.scale() / 2.0 * (1.0 + 4.0 * f32::EPSILON) + 4.0 * f32::EPSILON * value.abs()
}

fn schemes() -> impl Strategy<Value = (Scheme, QuantType)> {
    prop_oneof![
        Just((Scheme::Symmetric, QuantType::Int8)),
        Just((Scheme::Symmetric, QuantType::Uint8)),
        Just((Scheme::Affine, QuantType::Int8)),
        Just((Scheme::Affine, QuantType::Uint8)),
        Just((Scheme::Affine, QuantType::IntN { bits: 4 })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

    #[test]
    fn round_trip_error_is_at_most_half_a_step_in_range(
        (scheme, qtype) in schemes(),
        low in -1e4f32..1e4,
        width in 1e-3f32..1e4,
        fractions in proptest::collection::vec(0f32..=1.0, 1..64),
    ) {
        let high = low + width;
        let values: Vec<f32> = fractions.iter().map(|f| low + f * width).collect();
        let tensor = QuantizedTensor::quantize(
            ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.clone()).unwrap().view(),
            &QuantConfig { scheme, qtype, granularity: Granularity::PerTensor },
        ).unwrap();
        let params = tensor.params()[0];
        let (range_low, range_high) = params.representable_range();
        // Zero is always inside and exact; the data's own range is covered (to within half a step).
        prop_assert!(range_low <= 0.0 && 0.0 <= range_high);
        prop_assert_eq!(params.dequantize_value(params.quantize_value(0.0)), 0.0);
        let back = tensor.dequantize();
        for (&x, &y) in values.iter().zip(back.iter()) {
            prop_assert!(range_low - params.scale() / 2.0 <= x && x <= range_high + params.scale() / 2.0);
            prop_assert!((y - x).abs() <= bound(&params, x), "x {} y {} params {:?} range [{}, {}]", x, y, params, low, high);
        }
    }

    #[test]
    fn constant_tensors_round_trip_exactly((scheme, qtype) in schemes(), value in -1e6f32..1e6, len in 1usize..20) {
        let tensor = QuantizedTensor::quantize(
            ArrayD::from_elem(IxDyn(&[len]), value).view(),
            &QuantConfig { scheme, qtype, granularity: Granularity::PerTensor },
        ).unwrap();
        prop_assert!(tensor.dequantize().iter().all(|&y| y == value));
    }
}

#[test]
fn per_channel_bound_holds_per_channel_and_sizes_are_bytes() {
    let mut rng = StdRng::seed_from_u64(3);
    let values = Array2::from_shape_fn((40, 6), |(_, col)| {
        rng.random_range(-1.0f32..1.0) * 10f32.powi(col as i32 - 3)
    });
    let config = QuantConfig {
        granularity: Granularity::PerChannel { axis: 1 },
        ..QuantConfig::default()
    };
    let tensor = QuantizedTensor::quantize(values.view().into_dyn(), &config).unwrap();
    let back = tensor.dequantize();
    for ((row, col), &x) in values.indexed_iter() {
        let params = tensor.params()[col];
        assert!((back[[row, col]] - x).abs() <= bound(&params, x));
    }
    assert_eq!(tensor.storage_bytes(), 240 + 6 * 8);
    let stats = ErrorStats::between(values.as_slice().unwrap(), back.as_slice().unwrap()).unwrap();
    assert!(stats.sqnr_db > 35.0, "{stats:?}");
}

fn linear_fixture(seed: u64, k: usize, n: usize) -> (Array2<f32>, Array1<f32>, Array2<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let weight = Array2::from_shape_simple_fn((k, n), || rng.random_range(-0.5f32..0.5));
    let bias = Array1::from_shape_simple_fn(n, || rng.random_range(-0.2f32..0.2));
    let x = Array2::from_shape_simple_fn((13, k), || rng.random_range(-1.0f32..2.0));
    (weight, bias, x)
}

#[test]
fn quantized_linear_matches_f32_within_quantization_error_on_every_kernel() {
    let (weight, bias, x) = linear_fixture(5, 70, 37);
    let reference = x.dot(&weight) + &bias;
    for activation in [
        ActivationQuant::Dynamic,
        ActivationQuant::Static(
            QuantParams::from_range(-1.0, 2.0, Scheme::Affine, QuantType::Uint8).unwrap(),
        ),
    ] {
        let layer =
            QuantizedLinear::new(weight.view(), bias.view(), QuantType::Int8, activation).unwrap();
        for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let (y, ran) = layer
                .forward(
                    x.view(),
                    &GemmConfig {
                        kernel: Some(kernel),
                        ..GemmConfig::default()
                    },
                )
                .unwrap();
            assert_eq!(ran, kernel);
            let stats =
                ErrorStats::between(reference.as_slice().unwrap(), y.as_slice().unwrap()).unwrap();
            // Each output sums 70 products, each off by at most half an activation step times |w| plus half a
            // weight step times |x|; 30 dB SQNR is far below that bound's typical value (~40 dB) and far above
            // any wiring mistake (a wrong zero point or scale gives < 10 dB).
            assert!(stats.sqnr_db > 30.0, "{activation:?} {kernel}: {stats:?}");
        }
        // Sizes: 70 × 37 one-byte weights, 37 f32 scales, the bias and the zero-point sums.
        let expected_bias = match activation {
            ActivationQuant::Dynamic => 37 * 8,
            _ => 37 * 4 + 8,
        };
        assert_eq!(layer.storage_bytes(), 72 * 37 + 37 * 4 + expected_bias);
    }
}

#[test]
fn two_bit_weights_are_much_worse_and_an_mlp_calibrates() {
    let (weight, bias, x) = linear_fixture(6, 32, 16);
    let (weight2, bias2, _) = linear_fixture(7, 16, 4);
    let layers = [(weight.view(), bias.view()), (weight2.view(), bias2.view())];
    let reference = ((x.dot(&weight) + &bias).mapv(|v| v.max(0.0))).dot(&weight2) + &bias2;
    let sqnr = |config: QuantizedMlpConfig| {
        let mlp = QuantizedMlp::quantize(&layers, x.view(), &config).unwrap();
        let (y, _) = mlp.forward(x.view(), &GemmConfig::default()).unwrap();
        ErrorStats::between(reference.as_slice().unwrap(), y.as_slice().unwrap())
            .unwrap()
            .sqnr_db
    };
    let int8 = sqnr(QuantizedMlpConfig::default());
    let dynamic = sqnr(QuantizedMlpConfig {
        calibration: None,
        ..QuantizedMlpConfig::default()
    });
    let two_bit = sqnr(QuantizedMlpConfig {
        weight_qtype: QuantType::IntN { bits: 2 },
        ..QuantizedMlpConfig::default()
    });
    assert!(int8 > 25.0 && dynamic > 25.0, "{int8} {dynamic}");
    assert!(two_bit < int8 - 10.0, "{two_bit} vs {int8}");
}
