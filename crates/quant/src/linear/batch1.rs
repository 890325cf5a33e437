//! One query at a time through a [`QuantizedLinear`]: the activation row quantized to u8 in one pass (its own
//! min–max for dynamic activations), the integer matrix–vector product over the packed weights
//! ([`gemv_u8i8_i32`]), and one fused epilogue: zero-point correction, per-channel dequantization, f32 bias and
//! an optional ReLU. Scratch is per thread and reused, so a warm call allocates nothing.

use std::cell::RefCell;

use super::{code_map, finite_range, ActivationQuant, Bias, QuantizedLinear};
use crate::error::QuantError;
use crate::gemm::kernels::quantize_u8;
use crate::gemm::{gemv_u8i8_i32, GemmKernel, KU};
use crate::scheme::{QuantParams, QuantType, Scheme};

/// Per-thread buffers of [`QuantizedLinear::forward_row_into`]: the u8 codes of the row (k padded to a
/// multiple of 4) and the i32 accumulators.
#[derive(Default)]
struct RowScratch {
    codes: Vec<u8>,
    accumulators: Vec<i32>,
}

thread_local! {
    static ROW_SCRATCH: RefCell<RowScratch> = RefCell::new(RowScratch::default());
}

impl QuantizedLinear {
    /// `out = x · W + b` for one row `x` (`in` values), with ReLU when `relu`; returns the kernel that ran
    /// (the matrix–vector kernels take the GEMM's names: `avx512-vnni`, `avx2`, `scalar`).
    ///
    /// Dynamic activations take the row's own min–max (extended to include 0), as
    /// [`QuantizedLinear::forward`] does for a batch of one; the bias is added in f32 after dequantization
    /// rather than rounded into accumulator units, so the two differ by at most half an output step
    /// (`s_x · s_w[j] / 2`) per output. The previous contents of `out` are never read.
    ///
    /// # Errors
    /// [`QuantError::ShapeMismatch`] when `x` is not `in` long or `out` not `out` long;
    /// [`QuantError::NonFinite`] for NaN/inf input; [`QuantError::KernelUnavailable`] for a kernel this CPU
    /// cannot run.
    pub fn forward_row_into(
        &self,
        x: &[f32],
        out: &mut [f32],
        relu: bool,
        kernel: GemmKernel,
    ) -> Result<GemmKernel, QuantError> {
        let (k, n) = (self.in_features(), self.out_features());
        if x.len() != k {
            return Err(QuantError::ShapeMismatch {
                what: "linear input row",
                expected: vec![k],
                actual: vec![x.len()],
            });
        }
        if out.len() != n {
            return Err(QuantError::ShapeMismatch {
                what: "linear output row",
                expected: vec![n],
                actual: vec![out.len()],
            });
        }
        if !kernel.is_available() {
            return Err(QuantError::KernelUnavailable {
                kernel: kernel.name(),
            });
        }
        let (min, max) = finite_range(kernel, "linear input", x)?;
        let params = match self.activation {
            ActivationQuant::Static(params) => params,
            ActivationQuant::Dynamic => {
                QuantParams::from_range(min, max, Scheme::Affine, QuantType::Uint8)?
            }
        };
        ROW_SCRATCH.with_borrow_mut(|scratch| {
            let RowScratch {
                codes,
                accumulators,
            } = scratch;
            codes.resize(k.div_ceil(KU) * KU, 0);
            // The padding codes multiply the packed weights' zero padding; they are set to 0 anyway.
            codes[k..].fill(0);
            quantize_u8(
                kernel,
                x,
                1.0 / params.scale(),
                code_map(&params, false),
                &mut codes[..k],
            );
            accumulators.resize(n, 0);
            gemv_u8i8_i32(codes, &self.weight, accumulators, kernel)?;
            let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
            let input_scale = params.scale();
            match &self.bias {
                Bias::Dynamic { bias, column_sums } => {
                    let zero_point = params.zero_point();
                    for ((((target, &acc), &column_sum), &weight_scale), &b) in out
                        .iter_mut()
                        .zip(accumulators.iter())
                        .zip(column_sums)
                        .zip(&self.weight_scales)
                        .zip(bias)
                    {
                        let centred = acc - zero_point * column_sum;
                        *target = (centred as f32 * (input_scale * weight_scale) + b).max(floor);
                    }
                }
                Bias::Folded(folded) => {
                    for (((target, &acc), &offset), &weight_scale) in out
                        .iter_mut()
                        .zip(accumulators.iter())
                        .zip(folded)
                        .zip(&self.weight_scales)
                    {
                        *target = ((acc + offset) as f32 * (input_scale * weight_scale)).max(floor);
                    }
                }
            }
            Ok(kernel)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmConfig;
    use ndarray::{Array1, Array2};

    fn lcg_unit(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Against the batch path ([`QuantizedLinear::forward`] on one row, then ReLU) on shapes around the group,
    /// half-panel and panel edges, for every kernel, dynamic and static activations, with and without ReLU. The
    /// output is NaN-filled first. Bound: the batch path rounds the bias into accumulator units (half an output
    /// step, `s_x · s_w[j] / 2`), plus f32 rounding of sums of up to k products (relative 1e-5 of the largest
    /// product magnitude times k is far above it; 1e-4 · (1 + |reference|) covers both).
    #[test]
    fn row_path_matches_the_batch_path() {
        let mut state = 11u64;
        for &k in &[1usize, 3, 4, 5, 16, 17, 31, 32, 33, 64, 97, 784] {
            for &n in &[1usize, 3, 15, 16, 17, 31, 32, 33, 64, 65, 256] {
                let weight = Array2::from_shape_fn((k, n), |_| lcg_unit(&mut state) * 0.3);
                let bias = Array1::from_shape_fn(n, |_| lcg_unit(&mut state));
                let x: Vec<f32> = (0..k).map(|_| lcg_unit(&mut state) * 2.0 + 0.5).collect();
                let static_params =
                    QuantParams::from_range(-1.6, 2.6, Scheme::Affine, QuantType::Uint8).unwrap();
                for activation in [
                    ActivationQuant::Dynamic,
                    ActivationQuant::Static(static_params),
                ] {
                    let layer = QuantizedLinear::new(
                        weight.view(),
                        bias.view(),
                        QuantType::Int8,
                        activation,
                    )
                    .unwrap();
                    let x_row = Array2::from_shape_vec((1, k), x.clone()).unwrap();
                    let (reference, _) =
                        layer.forward(x_row.view(), &GemmConfig::default()).unwrap();
                    let weight_scales = layer.weight_scales.clone();
                    for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
                        for relu in [false, true] {
                            let mut out = vec![f32::NAN; n];
                            layer.forward_row_into(&x, &mut out, relu, kernel).unwrap();
                            let (min, max) = x
                                .iter()
                                .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                            let input_scale = match activation {
                                ActivationQuant::Static(p) => p.scale(),
                                ActivationQuant::Dynamic => QuantParams::from_range(
                                    min,
                                    max,
                                    Scheme::Affine,
                                    QuantType::Uint8,
                                )
                                .unwrap()
                                .scale(),
                            };
                            for column in 0..n {
                                let mut expected = reference[[0, column]];
                                if relu {
                                    expected = expected.max(0.0);
                                }
                                let step = input_scale * weight_scales[column];
                                let bound = 0.51 * step + 1e-4 * (1.0 + expected.abs());
                                assert!(
                                    (out[column] - expected).abs() <= bound,
                                    "{kernel} k {k} n {n} relu {relu} {activation:?} column {column}: {} vs {expected}",
                                    out[column]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let weight = Array2::<f32>::ones((4, 3));
        let bias = Array1::<f32>::zeros(3);
        let layer = QuantizedLinear::new(
            weight.view(),
            bias.view(),
            QuantType::Int8,
            ActivationQuant::Dynamic,
        )
        .unwrap();
        let mut out = vec![0.0; 3];
        let scalar = GemmKernel::Scalar;
        assert!(layer
            .forward_row_into(&[0.0; 3], &mut out, false, scalar)
            .is_err());
        assert!(layer
            .forward_row_into(&[0.0; 4], &mut out[..2], false, scalar)
            .is_err());
        assert!(matches!(
            layer.forward_row_into(&[0.0, f32::NAN, 0.0, 0.0], &mut out, false, scalar),
            Err(QuantError::NonFinite { .. })
        ));
        assert!(layer
            .forward_row_into(&[1.0; 4], &mut out, false, scalar)
            .is_ok());
    }
}
