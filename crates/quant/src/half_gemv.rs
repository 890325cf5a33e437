//! f16 weights at the cost of f32: a matrix–vector product `out = x · W + b` (optional ReLU) for one row `x`,
//! with `W` (`in × out`, row-major) stored as IEEE f16 and widened in registers (F16C `vcvtph2ps`), never
//! copied to an f32 matrix. Each step broadcasts one input and streams one weight row segment: up to 64
//! columns in registers at a time, the depth split over four independent accumulator sets so that enough FMA
//! chains are in flight for narrow outputs; bias and ReLU are applied when the accumulators are stored.
//!
//! Kernels: AVX-512 (F + BW for the masked 16-bit tail loads) with F16C, AVX2 + FMA + F16C, and scalar,
//! one per level of accel's instruction-set ladder; `QUANT_KERNEL` forces a level for this family as for the
//! integer GEMM (see [`IsaKernel`]).
#![allow(unsafe_code)]

use std::fmt;

use accel::Isa;

use crate::error::QuantError;
use crate::kernel::{self, IsaKernel};
use crate::tensor::{HalfStorage, HalfTensor};

/// An f16 matrix–vector kernel, one per level of accel's instruction-set ladder (see [`IsaKernel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HalfGemvKernel {
    /// 512-bit FMA over 16 columns per register, f16 widened by `vcvtph2ps zmm`.
    Avx512F16c,
    /// 256-bit FMA over 8 columns per register, f16 widened by `vcvtph2ps ymm`.
    Avx2F16c,
    /// Portable loops (each weight widened by the `half` crate).
    Scalar,
}

impl IsaKernel for HalfGemvKernel {
    const ALL: [HalfGemvKernel; 3] = HalfGemvKernel::ALL;

    fn name(self) -> &'static str {
        HalfGemvKernel::name(self)
    }

    fn isa(self) -> Isa {
        match self {
            HalfGemvKernel::Avx512F16c => Isa::Avx512,
            HalfGemvKernel::Avx2F16c => Isa::Avx2Fma,
            HalfGemvKernel::Scalar => Isa::Scalar,
        }
    }

    fn has_extra_features(self) -> bool {
        match self {
            HalfGemvKernel::Avx512F16c => kernel::x86_has!("avx512bw", "avx512vl", "f16c"),
            HalfGemvKernel::Avx2F16c => kernel::x86_has!("f16c"),
            HalfGemvKernel::Scalar => true,
        }
    }
}

impl HalfGemvKernel {
    /// Every kernel, fastest first.
    pub const ALL: [HalfGemvKernel; 3] = [
        HalfGemvKernel::Avx512F16c,
        HalfGemvKernel::Avx2F16c,
        HalfGemvKernel::Scalar,
    ];

    /// Stable name: `avx512-f16c`, `avx2-f16c`, `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            HalfGemvKernel::Avx512F16c => "avx512-f16c",
            HalfGemvKernel::Avx2F16c => "avx2-f16c",
            HalfGemvKernel::Scalar => "scalar",
        }
    }

    /// Whether this CPU can run the kernel (accel detects its level, plus F16C, and BW/VL at AVX-512).
    pub fn is_available(self) -> bool {
        kernel::is_available(self)
    }

    /// The best kernel this CPU runs.
    pub fn detected() -> HalfGemvKernel {
        kernel::detected()
    }

    /// `forced`, else the level `QUANT_KERNEL` forces (read once per process), else the detected best;
    /// checked to run here.
    ///
    /// # Errors
    /// [`QuantError::UnknownKernelName`] for a bad `QUANT_KERNEL`; [`QuantError::KernelUnavailable`] when the
    /// chosen kernel cannot run.
    pub fn resolve(forced: Option<HalfGemvKernel>) -> Result<HalfGemvKernel, QuantError> {
        kernel::resolve(forced)
    }
}

impl fmt::Display for HalfGemvKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `out = x · W + bias` (then ReLU when `relu`) for one row `x`, with `weight` a 2-D `in × out` f16 tensor;
/// returns the kernel that ran. bfloat16 weights take the scalar path (and say so). The previous contents of
/// `out` are never read.
///
/// # Errors
/// [`QuantError::ShapeMismatch`] when `weight` is not 2-D, `x` is not `in` long, or `out` / `bias` are not
/// `out` long; kernel errors as [`HalfGemvKernel::resolve`].
pub fn gemv_f16_into(
    x: &[f32],
    weight: &HalfTensor,
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
    forced: Option<HalfGemvKernel>,
) -> Result<HalfGemvKernel, QuantError> {
    let &[k, n] = weight.shape() else {
        return Err(QuantError::ShapeMismatch {
            what: "f16 gemv weight (in × out)",
            expected: vec![x.len(), out.len()],
            actual: weight.shape().to_vec(),
        });
    };
    for (what, expected, actual) in [
        ("f16 gemv input", k, x.len()),
        ("f16 gemv output", n, out.len()),
        ("f16 gemv bias", n, bias.len()),
    ] {
        if expected != actual {
            return Err(QuantError::ShapeMismatch {
                what,
                expected: vec![expected],
                actual: vec![actual],
            });
        }
    }
    let kernel = HalfGemvKernel::resolve(forced)?;
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    let values = match weight.storage() {
        HalfStorage::F16(values) => values,
        HalfStorage::Bf16(values) => {
            scalar_rows(x, n, |index| values[index].to_f32(), bias, floor, out);
            return Ok(HalfGemvKernel::Scalar);
        }
    };
    if k == 0 || n == 0 {
        for (target, &b) in out.iter_mut().zip(bias) {
            *target = b.max(floor);
        }
        return Ok(kernel);
    }
    // `half::f16` is `repr(transparent)` over its u16 bits.
    let bits = values.as_ptr().cast::<u16>();
    match kernel {
        #[cfg(target_arch = "x86_64")]
        HalfGemvKernel::Avx512F16c => {
            // SAFETY: the features were detected (`resolve`); `values` holds k · n half values (the tensor's
            // shape), `x` k, `bias` and `out` n (checked above).
            unsafe {
                x86::gemv_avx512(
                    x.as_ptr(),
                    bits,
                    k,
                    n,
                    bias.as_ptr(),
                    floor,
                    out.as_mut_ptr(),
                )
            };
        }
        #[cfg(target_arch = "x86_64")]
        HalfGemvKernel::Avx2F16c => {
            // SAFETY: as above, for AVX2 + FMA + F16C.
            unsafe {
                x86::gemv_avx2(
                    x.as_ptr(),
                    bits,
                    k,
                    n,
                    bias.as_ptr(),
                    floor,
                    out.as_mut_ptr(),
                )
            };
        }
        _ => scalar_rows(x, n, |index| values[index].to_f32(), bias, floor, out),
    }
    Ok(kernel)
}

/// Every value of `weight` widened to f32 into `out` (a caller-owned buffer of the same length), 16 at a time
/// with F16C where the kernel allows; returns the kernel that ran. For products too wide for the GEMV (a
/// convolution's weights times many positions), widening once per call into a reused buffer and running the
/// f32 GEMM costs one pass over the (small) weights.
///
/// # Errors
/// [`QuantError::ShapeMismatch`] when `out` is not as long as the tensor; kernel errors as
/// [`HalfGemvKernel::resolve`].
pub fn widen_f16_into(
    weight: &HalfTensor,
    out: &mut [f32],
    forced: Option<HalfGemvKernel>,
) -> Result<HalfGemvKernel, QuantError> {
    let len: usize = weight.shape().iter().product();
    if out.len() != len {
        return Err(QuantError::ShapeMismatch {
            what: "widened f16 buffer",
            expected: vec![len],
            actual: vec![out.len()],
        });
    }
    let kernel = HalfGemvKernel::resolve(forced)?;
    let values = match weight.storage() {
        HalfStorage::F16(values) => values,
        HalfStorage::Bf16(values) => {
            out.iter_mut()
                .zip(values)
                .for_each(|(target, value)| *target = value.to_f32());
            return Ok(HalfGemvKernel::Scalar);
        }
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        HalfGemvKernel::Avx512F16c | HalfGemvKernel::Avx2F16c => {
            // SAFETY: F16C and AVX were detected (`resolve`, both kernels require them); `values` and `out`
            // hold `len` elements (checked above).
            unsafe { x86::widen_f16c(values.as_ptr().cast::<u16>(), len, out.as_mut_ptr()) };
        }
        _ => out
            .iter_mut()
            .zip(values)
            .for_each(|(target, value)| *target = value.to_f32()),
    }
    Ok(kernel)
}

/// The reference: `out[j] = max(bias[j] + Σ_p x[p] · W[p, j], floor)` with `W[p, j] = weight_at(p · n + j)`.
fn scalar_rows(
    x: &[f32],
    n: usize,
    weight_at: impl Fn(usize) -> f32,
    bias: &[f32],
    floor: f32,
    out: &mut [f32],
) {
    out.copy_from_slice(bias);
    for (row, &input) in x.iter().enumerate() {
        for (column, target) in out.iter_mut().enumerate() {
            *target += input * weight_at(row * n + column);
        }
    }
    out.iter_mut().for_each(|value| *value = value.max(floor));
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Widens `len` f16 values, eight per `vcvtph2ps ymm`, the tail one at a time.
    ///
    /// # Safety
    /// AVX and F16C available; `source` and `destination` hold `len` elements.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen_f16c(source: *const u16, len: usize, destination: *mut f32) {
        let full = len / 8 * 8;
        for start in (0..full).step_by(8) {
            // SAFETY: start + 8 ≤ len.
            unsafe {
                let half = _mm_loadu_si128(source.add(start).cast());
                _mm256_storeu_ps(destination.add(start), _mm256_cvtph_ps(half));
            }
        }
        for index in full..len {
            // SAFETY: index < len.
            unsafe {
                let half = _mm_cvtsi32_si128(i32::from(*source.add(index)));
                *destination.add(index) = _mm_cvtss_f32(_mm_cvtph_ps(half));
            }
        }
    }

    /// Column vectors per block.
    const VECTORS: usize = 4;
    /// Independent accumulator sets over the depth (row `p` goes to set `p mod SETS`).
    const SETS: usize = 4;

    /// # Safety
    /// AVX-512 F/BW/VL and F16C available; `x` holds `k` values, `w` `k · n` half bits, `bias` and `out` `n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma")]
    pub(super) unsafe fn gemv_avx512(
        x: *const f32,
        w: *const u16,
        k: usize,
        n: usize,
        bias: *const f32,
        floor: f32,
        out: *mut f32,
    ) {
        const LANES: usize = 16;
        let mask_of = |count: usize| -> __mmask16 {
            if count >= LANES {
                0xffff
            } else {
                ((1u32 << count) - 1) as __mmask16
            }
        };
        let floor_vector = _mm512_set1_ps(floor);
        for block_start in (0..n).step_by(LANES * VECTORS) {
            let block_width = (n - block_start).min(LANES * VECTORS);
            let masks: [__mmask16; VECTORS] =
                std::array::from_fn(|v| mask_of(block_width.saturating_sub(v * LANES)));
            let mut acc = [[_mm512_setzero_ps(); VECTORS]; SETS];
            let full_rows = k / SETS * SETS;
            for row_start in (0..full_rows).step_by(SETS) {
                for (set, set_acc) in acc.iter_mut().enumerate() {
                    let row = row_start + set;
                    // SAFETY: row < k and the masks keep each load to the block's columns of that row, all
                    // inside the k · n weights; x[row] is inside x.
                    unsafe {
                        let input = _mm512_set1_ps(*x.add(row));
                        let row_ptr = w.add(row * n + block_start);
                        for (v, vector_acc) in set_acc.iter_mut().enumerate() {
                            if masks[v] == 0 {
                                break;
                            }
                            let half =
                                _mm256_maskz_loadu_epi16(masks[v], row_ptr.add(v * LANES).cast());
                            *vector_acc =
                                _mm512_fmadd_ps(input, _mm512_cvtph_ps(half), *vector_acc);
                        }
                    }
                }
            }
            for row in full_rows..k {
                // SAFETY: as above.
                unsafe {
                    let input = _mm512_set1_ps(*x.add(row));
                    let row_ptr = w.add(row * n + block_start);
                    for (v, vector_acc) in acc[0].iter_mut().enumerate() {
                        if masks[v] == 0 {
                            break;
                        }
                        let half =
                            _mm256_maskz_loadu_epi16(masks[v], row_ptr.add(v * LANES).cast());
                        *vector_acc = _mm512_fmadd_ps(input, _mm512_cvtph_ps(half), *vector_acc);
                    }
                }
            }
            for v in 0..VECTORS {
                if masks[v] == 0 {
                    break;
                }
                let column = block_start + v * LANES;
                let sum = _mm512_add_ps(
                    _mm512_add_ps(acc[0][v], acc[1][v]),
                    _mm512_add_ps(acc[2][v], acc[3][v]),
                );
                // SAFETY: the mask keeps the bias load and the store to the block's columns, inside n.
                unsafe {
                    let with_bias =
                        _mm512_add_ps(sum, _mm512_maskz_loadu_ps(masks[v], bias.add(column)));
                    _mm512_mask_storeu_ps(
                        out.add(column),
                        masks[v],
                        _mm512_max_ps(with_bias, floor_vector),
                    );
                }
            }
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C available; pointers as for [`gemv_avx512`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gemv_avx2(
        x: *const f32,
        w: *const u16,
        k: usize,
        n: usize,
        bias: *const f32,
        floor: f32,
        out: *mut f32,
    ) {
        const LANES: usize = 8;
        let vector_columns = n / LANES * LANES;
        for block_start in (0..vector_columns).step_by(LANES * VECTORS) {
            let vectors = ((vector_columns - block_start) / LANES).min(VECTORS);
            let mut acc = [[_mm256_setzero_ps(); VECTORS]; SETS];
            for row in 0..k {
                let set_acc = &mut acc[row % SETS];
                // SAFETY: row < k; the `vectors · 8` columns loaded lie below `vector_columns ≤ n`.
                unsafe {
                    let input = _mm256_set1_ps(*x.add(row));
                    let row_ptr = w.add(row * n + block_start);
                    for (v, vector_acc) in set_acc.iter_mut().enumerate().take(vectors) {
                        let half = _mm_loadu_si128(row_ptr.add(v * LANES).cast());
                        *vector_acc = _mm256_fmadd_ps(input, _mm256_cvtph_ps(half), *vector_acc);
                    }
                }
            }
            // `v` picks the same vector in all four accumulator sets and its column offset.
            #[allow(clippy::needless_range_loop)]
            for v in 0..vectors {
                let column = block_start + v * LANES;
                let sum = _mm256_add_ps(
                    _mm256_add_ps(acc[0][v], acc[1][v]),
                    _mm256_add_ps(acc[2][v], acc[3][v]),
                );
                // SAFETY: columns `column..column + 8` lie below `vector_columns ≤ n`.
                unsafe {
                    let with_bias = _mm256_add_ps(sum, _mm256_loadu_ps(bias.add(column)));
                    _mm256_storeu_ps(
                        out.add(column),
                        _mm256_max_ps(with_bias, _mm256_set1_ps(floor)),
                    );
                }
            }
        }
        // The last n mod 8 columns, widened one value at a time.
        for column in vector_columns..n {
            // SAFETY: column < n and row < k index inside the buffers.
            unsafe {
                let mut sum = *bias.add(column);
                for row in 0..k {
                    let half = _mm_cvtsi32_si128(i32::from(*w.add(row * n + column)));
                    sum += *x.add(row) * _mm_cvtss_f32(_mm_cvtph_ps(half));
                }
                *out.add(column) = sum.max(floor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::HalfPrecision;
    use ndarray::Array2;

    fn lcg_unit(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Every kernel against an f64 sum over the widened weights, on k and n around the lane widths (8, 16) and
    /// the 64-column block, primes, with the output NaN-filled. Bound: f32 accumulation of k products in a
    /// different order, `1e-5 · (1 + Σ|x·w|)` (k · 2⁻²⁴ ≈ 5e-5 relative at k = 784 in the worst case, far
    /// less in practice; the sum of magnitudes bounds cancellation).
    #[test]
    fn every_kernel_matches_the_reference() {
        let mut state = 3u64;
        for &k in &[0usize, 1, 3, 4, 5, 7, 8, 9, 16, 17, 31, 97, 784] {
            for &n in &[
                0usize, 1, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 256,
            ] {
                let weight = Array2::from_shape_fn((k, n), |_| lcg_unit(&mut state));
                let half =
                    HalfTensor::from_f32(weight.view().into_dyn(), HalfPrecision::F16).unwrap();
                let widened = half.to_f32();
                let x: Vec<f32> = (0..k).map(|_| lcg_unit(&mut state) * 3.0).collect();
                let bias: Vec<f32> = (0..n).map(|_| lcg_unit(&mut state)).collect();
                for relu in [false, true] {
                    let expected: Vec<(f64, f64)> = (0..n)
                        .map(|j| {
                            let mut sum = f64::from(bias[j]);
                            let mut magnitude = f64::from(bias[j].abs());
                            for p in 0..k {
                                let product = f64::from(x[p]) * f64::from(widened[[p, j]]);
                                sum += product;
                                magnitude += product.abs();
                            }
                            (if relu { sum.max(0.0) } else { sum }, magnitude)
                        })
                        .collect();
                    for kernel in HalfGemvKernel::ALL.into_iter().filter(|k| k.is_available()) {
                        let mut out = vec![f32::NAN; n];
                        let ran =
                            gemv_f16_into(&x, &half, &bias, relu, &mut out, Some(kernel)).unwrap();
                        assert_eq!(ran, kernel);
                        for (column, &(value, magnitude)) in expected.iter().enumerate() {
                            let bound = 1e-5 * (1.0 + magnitude);
                            assert!(
                                (f64::from(out[column]) - value).abs() <= bound,
                                "{kernel} k {k} n {n} relu {relu} column {column}: {} vs {value}",
                                out[column]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn widening_matches_the_half_crate() {
        let mut state = 13u64;
        for len in [0usize, 1, 7, 8, 9, 16, 17, 4608] {
            let values = ndarray::Array1::from_shape_fn(len, |_| lcg_unit(&mut state) * 100.0);
            let half = HalfTensor::from_f32(values.view().into_dyn(), HalfPrecision::F16).unwrap();
            let expected = half.to_f32();
            for kernel in HalfGemvKernel::ALL.into_iter().filter(|k| k.is_available()) {
                let mut out = vec![f32::NAN; len];
                assert_eq!(
                    widen_f16_into(&half, &mut out, Some(kernel)).unwrap(),
                    kernel
                );
                assert!(out.iter().zip(expected.iter()).all(|(a, b)| a == b));
            }
            let mut short = vec![0.0; len + 1];
            assert!(widen_f16_into(&half, &mut short, None).is_err());
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let weight = Array2::<f32>::ones((4, 3));
        let half = HalfTensor::from_f32(weight.view().into_dyn(), HalfPrecision::F16).unwrap();
        let mut out = vec![0.0; 3];
        let scalar = Some(HalfGemvKernel::Scalar);
        assert!(gemv_f16_into(&[0.0; 3], &half, &[0.0; 3], false, &mut out, scalar).is_err());
        assert!(gemv_f16_into(&[0.0; 4], &half, &[0.0; 2], false, &mut out, scalar).is_err());
        assert!(gemv_f16_into(&[0.0; 4], &half, &[0.0; 3], false, &mut out[..2], scalar).is_err());
        let flat = HalfTensor::from_f32(
            ndarray::Array1::<f32>::ones(4).view().into_dyn(),
            HalfPrecision::F16,
        )
        .unwrap();
        assert!(gemv_f16_into(&[0.0; 4], &flat, &[0.0; 1], false, &mut out[..1], scalar).is_err());
        assert!(gemv_f16_into(&[1.0; 4], &half, &[0.0; 3], false, &mut out, scalar).is_ok());
        assert_eq!(out, vec![4.0; 3]);
    }
}
