//! The quantized Conv2d against a direct f64 convolution of the same f32 weights and inputs, on many shapes
//! (kernel sizes, strides, paddings, channel counts on both sides of the 32-column panel, 1×1 pointwise),
//! with every GEMM kernel forced in turn, static and dynamic activations, and an error bound derived from the
//! quantization steps.

use ndarray::{Array1, Array2, Array4};
use quant::{
    ActivationQuant, Conv2dGeometry, GemmConfig, GemmKernel, QuantError, QuantParams, QuantType,
    QuantizedConv2d, Scheme,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Direct convolution in f64 (NHWC input, weight rows channel-major as [`Conv2dGeometry`] documents).
fn reference_conv(
    x: &Array4<f32>,
    weight: &Array2<f32>,
    bias: &Array1<f32>,
    geometry: &Conv2dGeometry,
) -> Array4<f64> {
    let (batch, height, width, channels) = x.dim();
    let (out_height, out_width) = geometry.output_size(height, width).unwrap();
    let out_channels = weight.ncols();
    let mut y = Array4::<f64>::zeros((batch, out_height, out_width, out_channels));
    for image in 0..batch {
        for out_row in 0..out_height {
            for out_col in 0..out_width {
                for out_channel in 0..out_channels {
                    let mut sum = f64::from(bias[out_channel]);
                    for channel in 0..channels {
                        for kernel_row in 0..geometry.kernel_height {
                            for kernel_col in 0..geometry.kernel_width {
                                let in_row = (out_row * geometry.stride + kernel_row) as isize
                                    - geometry.padding as isize;
                                let in_col = (out_col * geometry.stride + kernel_col) as isize
                                    - geometry.padding as isize;
                                if in_row < 0
                                    || in_col < 0
                                    || in_row >= height as isize
                                    || in_col >= width as isize
                                {
                                    continue;
                                }
                                let row = (channel * geometry.kernel_height + kernel_row)
                                    * geometry.kernel_width
                                    + kernel_col;
                                sum += f64::from(
                                    x[[image, in_row as usize, in_col as usize, channel]],
                                ) * f64::from(weight[[row, out_channel]]);
                            }
                        }
                    }
                    y[[image, out_row, out_col, out_channel]] = sum;
                }
            }
        }
    }
    y
}

/// The worst-case error of one output: each product `x·w` is computed as `x̂·ŵ` with `|x − x̂| ≤ s_x/2` and
/// `|w − ŵ| ≤ s_w/2`, so `|x·w − x̂·ŵ| ≤ |w|·s_x/2 + |x|·s_w/2 + s_x·s_w/4`, summed over the patch (padding
/// contributes nothing: it is exactly zero on both sides); the bias is rounded to one accumulator step
/// `s_x·s_w` (half a step of error); plus the f32 epilogue, which converts the i32 accumulator and offset
/// (each at most `patch · 255 · 127` steps, plus the bias) to f32 with a relative error of 2⁻²⁴ each, and
/// multiplies once more (1e-6 of that magnitude covers all three roundings with room).
fn error_bound(
    patch_x_abs_sum: f64,
    patch_w_abs_sum: f64,
    patch_len: usize,
    (s_x, s_w): (f64, f64),
    bias: f64,
) -> f64 {
    let accumulator_magnitude = patch_len as f64 * 255.0 * 127.0 * s_x * s_w + bias.abs();
    patch_w_abs_sum * s_x / 2.0
        + patch_x_abs_sum * s_w / 2.0
        + patch_len as f64 * s_x * s_w / 4.0
        + s_x * s_w / 2.0
        + 1e-6 * accumulator_magnitude
}

fn available_kernels() -> Vec<GemmKernel> {
    GemmKernel::ALL
        .into_iter()
        .filter(|kernel| kernel.is_available())
        .collect()
}

/// (batch, height, width, in_channels, out_channels, kernel, stride, padding)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

#[test]
fn quantized_conv_matches_f64_within_the_quantization_bound() {
    let mut rng = StdRng::seed_from_u64(0xc0_2d);
    let shapes: &[ConvCase] = &[
        (1, 5, 5, 1, 1, 3, 1, 1),
        (2, 8, 8, 1, 16, 3, 1, 1),
        (1, 14, 14, 16, 32, 3, 1, 1),
        (1, 7, 9, 3, 33, 3, 2, 0),
        (3, 6, 5, 5, 31, 1, 1, 0),
        (2, 10, 4, 64, 64, 1, 1, 0),
        (1, 9, 9, 2, 7, 5, 2, 2),
        (1, 4, 4, 3, 65, 4, 1, 0),
        (2, 13, 11, 13, 12, 3, 3, 1),
        (1, 3, 3, 4, 8, 3, 1, 0),
    ];
    for &(batch, height, width, in_channels, out_channels, kernel_size, stride, padding) in shapes {
        let geometry = Conv2dGeometry {
            in_channels,
            kernel_height: kernel_size,
            kernel_width: kernel_size,
            stride,
            padding,
        };
        let patch = geometry.patch_len();
        let weight =
            Array2::from_shape_simple_fn((patch, out_channels), || rng.random_range(-0.5..0.5f32));
        let bias = Array1::from_shape_simple_fn(out_channels, || rng.random_range(-1.0..1.0f32));
        // Post-ReLU-like inputs (mostly non-negative) with some negatives, so the zero point is not 0.
        let x = Array4::from_shape_simple_fn((batch, height, width, in_channels), || {
            rng.random_range(-0.3..2.0f32)
        });
        let expected = reference_conv(&x, &weight, &bias, &geometry);
        let (min, max) = x
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let static_params =
            QuantParams::from_range(min, max, Scheme::Affine, QuantType::Uint8).unwrap();
        for activation in [
            ActivationQuant::Dynamic,
            ActivationQuant::Static(static_params),
        ] {
            let conv = QuantizedConv2d::new(
                weight.view(),
                bias.view(),
                geometry,
                QuantType::Int8,
                activation,
            )
            .unwrap();
            for kernel in available_kernels() {
                let (y, ran) = conv
                    .forward(
                        x.view(),
                        &GemmConfig {
                            kernel: Some(kernel),
                            ..GemmConfig::default()
                        },
                    )
                    .unwrap();
                assert_eq!(ran, kernel);
                assert_eq!(y.dim(), expected.dim());
                let s_x = f64::from(static_params.scale());
                for ((image, out_row, out_col, out_channel), &value) in y.indexed_iter() {
                    // Per-channel symmetric int8: s_w = max |w| / 127 over the channel.
                    let s_w = weight
                        .column(out_channel)
                        .iter()
                        .fold(0f64, |m, &w| m.max(f64::from(w.abs())))
                        / 127.0;
                    let (mut x_abs, mut w_abs) = (0f64, 0f64);
                    for channel in 0..in_channels {
                        for kernel_row in 0..kernel_size {
                            for kernel_col in 0..kernel_size {
                                let in_row =
                                    (out_row * stride + kernel_row) as isize - padding as isize;
                                let in_col =
                                    (out_col * stride + kernel_col) as isize - padding as isize;
                                if in_row < 0
                                    || in_col < 0
                                    || in_row >= height as isize
                                    || in_col >= width as isize
                                {
                                    continue;
                                }
                                let row =
                                    (channel * kernel_size + kernel_row) * kernel_size + kernel_col;
                                x_abs += f64::from(
                                    x[[image, in_row as usize, in_col as usize, channel]].abs(),
                                );
                                w_abs += f64::from(weight[[row, out_channel]].abs());
                            }
                        }
                    }
                    let reference = expected[[image, out_row, out_col, out_channel]];
                    let bound = error_bound(
                        x_abs,
                        w_abs,
                        patch,
                        (s_x, s_w),
                        f64::from(bias[out_channel]),
                    );
                    let error = (f64::from(value) - reference).abs();
                    assert!(
                        error <= bound,
                        "{kernel} {activation:?} shape {:?} at {:?}: |{value} − {reference}| = {error} > {bound}",
                        (batch, height, width, in_channels, out_channels, kernel_size, stride, padding),
                        (image, out_row, out_col, out_channel)
                    );
                }
            }
        }
    }
}

#[test]
fn conv_errors_are_typed() {
    let geometry = Conv2dGeometry {
        in_channels: 2,
        kernel_height: 3,
        kernel_width: 3,
        stride: 1,
        padding: 0,
    };
    let weight = Array2::<f32>::zeros((18, 4));
    let bias = Array1::<f32>::zeros(4);
    let conv = QuantizedConv2d::new(
        weight.view(),
        bias.view(),
        geometry,
        QuantType::Int8,
        ActivationQuant::Dynamic,
    )
    .unwrap();
    // Wrong channel count, an input smaller than the kernel, NaN input.
    let wrong_channels = Array4::<f32>::zeros((1, 4, 4, 3));
    assert!(matches!(
        conv.forward(wrong_channels.view(), &GemmConfig::default()),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let too_small = Array4::<f32>::zeros((1, 2, 4, 2));
    assert!(matches!(
        conv.forward(too_small.view(), &GemmConfig::default()),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let mut with_nan = Array4::<f32>::zeros((1, 4, 4, 2));
    with_nan[[0, 1, 2, 1]] = f32::NAN;
    assert!(matches!(
        conv.forward(with_nan.view(), &GemmConfig::default()),
        Err(QuantError::NonFinite { .. })
    ));
    // Weight rows that are not the patch length, and a zero stride.
    let bad_rows = Array2::<f32>::zeros((17, 4));
    assert!(matches!(
        QuantizedConv2d::new(
            bad_rows.view(),
            bias.view(),
            geometry,
            QuantType::Int8,
            ActivationQuant::Dynamic
        ),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let zero_stride = Conv2dGeometry {
        stride: 0,
        ..geometry
    };
    assert!(matches!(
        QuantizedConv2d::new(
            weight.view(),
            bias.view(),
            zero_stride,
            QuantType::Int8,
            ActivationQuant::Dynamic
        ),
        Err(QuantError::InvalidParameter { .. })
    ));
}
