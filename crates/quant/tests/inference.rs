//! The fused, allocation-free inference path: every kernel (with its epilogue — vector or portable) gives
//! bit-identical outputs, `forward_into` equals `forward` (also into a strided output), a three-layer MLP with
//! static and with dynamic activations stays within a quantization-sized distance of the f32 network, and
//! shape and NaN errors are typed.

use ndarray::{s, Array1, Array2};
use quant::{GemmConfig, GemmKernel, QuantError, QuantType, QuantizedMlp, QuantizedMlpConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn layers(rng: &mut StdRng, widths: &[usize]) -> Vec<(Array2<f32>, Array1<f32>)> {
    widths
        .windows(2)
        .map(|pair| {
            let bound = (6.0 / (pair[0] + pair[1]) as f32).sqrt();
            (
                Array2::from_shape_simple_fn((pair[0], pair[1]), || {
                    rng.random_range(-bound..bound)
                }),
                Array1::from_shape_simple_fn(pair[1], || rng.random_range(-0.1..0.1f32)),
            )
        })
        .collect()
}

fn f32_forward(layers: &[(Array2<f32>, Array1<f32>)], x: &Array2<f32>) -> Array2<f32> {
    let mut activations = x.clone();
    for (index, (weight, bias)) in layers.iter().enumerate() {
        activations = activations.dot(weight) + bias;
        if index + 1 < layers.len() {
            activations.mapv_inplace(|v| v.max(0.0));
        }
    }
    activations
}

#[test]
fn every_kernel_gives_the_same_logits_and_forward_into_matches_forward() {
    let mut rng = StdRng::seed_from_u64(0x1f3e);
    // Widths on both sides of the 32-column panel and the 12-row tile; batches 1, 13 and 70.
    let network = layers(&mut rng, &[37, 70, 33, 10]);
    let views: Vec<_> = network.iter().map(|(w, b)| (w.view(), b.view())).collect();
    let calibration = Array2::from_shape_simple_fn((64, 37), || rng.random_range(-1.0..3.0f32));
    for calibration_kind in [Some(quant::ObserverKind::MinMax), None] {
        let mlp = QuantizedMlp::quantize(
            &views,
            calibration.view(),
            &QuantizedMlpConfig {
                weight_qtype: QuantType::Int8,
                calibration: calibration_kind,
            },
        )
        .unwrap();
        for batch in [1usize, 13, 70] {
            let x = Array2::from_shape_simple_fn((batch, 37), || rng.random_range(-1.0..3.0f32));
            let mut reference: Option<Array2<f32>> = None;
            for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
                let config = GemmConfig {
                    kernel: Some(kernel),
                    ..GemmConfig::default()
                };
                let (logits, ran) = mlp.forward(x.view(), &config).unwrap();
                assert_eq!(ran, kernel);
                // Into a strided view (every other column of a wider buffer), prefilled with NaN.
                let mut wide = Array2::<f32>::from_elem((batch, 20), f32::NAN);
                mlp.forward_into(x.view(), wide.slice_mut(s![.., ..;2]), &config)
                    .unwrap();
                assert_eq!(wide.slice(s![.., ..;2]), logits, "{kernel}: forward_into");
                assert!(wide.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()));
                // The same arithmetic in every kernel and epilogue: exact equality.
                match &reference {
                    None => reference = Some(logits),
                    Some(expected) => assert_eq!(&logits, expected, "{kernel} vs the first kernel"),
                }
            }
            // Close to f32: the relative distance of the logits is a few quantization steps.
            let logits = reference.unwrap();
            let expected = f32_forward(&network, &x);
            let error = (&logits - &expected).mapv(f32::abs).sum();
            let magnitude = expected.mapv(f32::abs).sum();
            assert!(
                error <= 0.05 * magnitude,
                "{calibration_kind:?} batch {batch}: relative L1 error {}",
                error / magnitude
            );
        }
    }
}

#[test]
fn inference_errors_are_typed() {
    let mut rng = StdRng::seed_from_u64(7);
    let network = layers(&mut rng, &[8, 16, 4]);
    let views: Vec<_> = network.iter().map(|(w, b)| (w.view(), b.view())).collect();
    let calibration = Array2::from_shape_simple_fn((16, 8), || rng.random_range(0.0..1.0f32));
    let mlp =
        QuantizedMlp::quantize(&views, calibration.view(), &QuantizedMlpConfig::default()).unwrap();
    let config = GemmConfig::default();
    let wrong_width = Array2::<f32>::zeros((3, 9));
    assert!(matches!(
        mlp.forward(wrong_width.view(), &config),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let x = Array2::<f32>::zeros((3, 8));
    let mut wrong_output = Array2::<f32>::zeros((3, 5));
    assert!(matches!(
        mlp.forward_into(x.view(), wrong_output.view_mut(), &config),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let mut with_nan = x.clone();
    with_nan[[2, 5]] = f32::NAN;
    assert!(matches!(
        mlp.forward(with_nan.view(), &config),
        Err(QuantError::NonFinite { index: 21, .. })
    ));
    let layer = &mlp.layers()[0];
    assert!(matches!(
        layer.forward(with_nan.view(), &config),
        Err(QuantError::NonFinite { .. })
    ));
}
