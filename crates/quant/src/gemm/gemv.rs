//! Integer matrix–vector product for one row of activations: `c (i32) = a (u8, k) · B (i8, k × n)`, over the
//! same packed B as the GEMM ([`PackedB`]: panels of 32 columns, four consecutive k values of a column side by
//! side).
//!
//! The GEMM's register tile is 12 rows deep, so one row of A pays for twelve; here a row streams B once. Per
//! panel and k group, the four activation bytes are broadcast to every 32-bit lane and one `vpdpbusd` per 16
//! columns multiplies them with the 64 weight bytes of those columns. Four k groups are in flight at a time
//! (eight independent accumulators), enough to cover the instruction's latency while B streams from cache.
//!
//! Kernels: AVX-512 VNNI, AVX2 (sign-extend to i16 and `vpmaddwd`, exact like the GEMM's AVX2 path) and scalar,
//! chosen by [`GemmKernel`] (the same detection and `QUANT_KERNEL` as the GEMM).
#![allow(unsafe_code)]

use super::{GemmKernel, PackedB, KU, NR};
use crate::error::QuantError;

/// `c = a · B` exactly in i32 for one row `a` of u8 codes, whose length is `B.k()` rounded up to a multiple of
/// 4 (the padding codes multiply B's zero padding, so any value is fine); returns the kernel that ran.
///
/// The previous contents of `c` are never read.
///
/// # Errors
/// [`QuantError::ShapeMismatch`] when `a` does not hold `⌈k/4⌉·4` codes or `c` does not hold `n` values;
/// [`QuantError::KernelUnavailable`] when `kernel` cannot run here.
pub fn gemv_u8i8_i32(
    a: &[u8],
    b: &PackedB,
    c: &mut [i32],
    kernel: GemmKernel,
) -> Result<GemmKernel, QuantError> {
    let groups = b.k.div_ceil(KU);
    if a.len() != groups * KU {
        return Err(QuantError::ShapeMismatch {
            what: "gemv activation codes (k padded to a multiple of 4)",
            expected: vec![groups * KU],
            actual: vec![a.len()],
        });
    }
    if c.len() != b.n {
        return Err(QuantError::ShapeMismatch {
            what: "gemv output",
            expected: vec![b.n],
            actual: vec![c.len()],
        });
    }
    if !kernel.is_available() {
        return Err(QuantError::KernelUnavailable {
            kernel: kernel.name(),
        });
    }
    for panel_start in (0..b.n).step_by(NR) {
        let width = NR.min(b.n - panel_start);
        let panel = &b.data[panel_start * groups * KU..(panel_start + width) * groups * KU];
        let out = &mut c[panel_start..panel_start + width];
        match kernel {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512Vnni => {
                // SAFETY: AVX-512 F/BW/VNNI are available (checked above); `a` holds `groups · 4` codes, `panel`
                // holds `groups · width · 4` bytes and `out` `width ≤ 32` values (sliced above).
                unsafe {
                    x86::panel_avx512_vnni(
                        a.as_ptr(),
                        panel.as_ptr(),
                        groups,
                        width,
                        out.as_mut_ptr(),
                    )
                }
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2 if width == NR => {
                // SAFETY: AVX2 is available (checked above); a full panel holds `groups · 128` bytes, `out` 32
                // values.
                unsafe { x86::panel_avx2(a.as_ptr(), panel.as_ptr(), groups, out.as_mut_ptr()) }
            }
            _ => panel_scalar(a, panel, groups, width, out),
        }
    }
    Ok(kernel)
}

/// One panel of `width` columns in plain loops (the reference path, and the AVX2 path's narrow last panel).
fn panel_scalar(a: &[u8], panel: &[i8], groups: usize, width: usize, out: &mut [i32]) {
    out.fill(0);
    for group in 0..groups {
        let codes = &a[group * KU..group * KU + KU];
        let weights = &panel[group * width * KU..(group + 1) * width * KU];
        for (column, target) in out.iter_mut().enumerate() {
            let column_weights = &weights[column * KU..column * KU + KU];
            *target += codes
                .iter()
                .zip(column_weights)
                .map(|(&code, &weight)| i32::from(code) * i32::from(weight))
                .sum::<i32>();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KU, NR};
    use std::arch::x86_64::*;

    /// Mask of the first `count` (≤ 16) 32-bit lanes.
    fn lanes(count: usize) -> __mmask16 {
        if count >= 16 {
            0xffff
        } else {
            ((1u32 << count) - 1) as __mmask16
        }
    }

    /// One panel of `width ≤ 32` columns: columns `0..16` in one accumulator, `16..width` in the other (masked
    /// loads for a narrow panel), four k groups per step in independent accumulators summed at the end.
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI available; `a` points to `groups · 4` readable bytes, `panel` to `groups · width · 4`,
    /// `out` to `width` writable i32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn panel_avx512_vnni(
        a: *const u8,
        panel: *const i8,
        groups: usize,
        width: usize,
        out: *mut i32,
    ) {
        const STEP: usize = 4;
        let low_mask = lanes(width);
        let high_mask = lanes(width.saturating_sub(16));
        let group_bytes = width * KU;
        let mut low = [_mm512_setzero_si512(); STEP];
        let mut high = [_mm512_setzero_si512(); STEP];
        let full_steps = groups / STEP;
        for step in 0..full_steps {
            for lane in 0..STEP {
                let group = step * STEP + lane;
                // SAFETY: group < groups, so the 4 codes at a + 4·group and the `width · 4` bytes at
                // panel + group · width · 4 are inside the caller's buffers; the masks keep the loads to
                // the panel's `width` columns.
                unsafe {
                    let codes = _mm512_set1_epi32(a.add(group * KU).cast::<i32>().read_unaligned());
                    let weights = panel.add(group * group_bytes);
                    let w_low = _mm512_maskz_loadu_epi32(low_mask, weights.cast());
                    let w_high = _mm512_maskz_loadu_epi32(high_mask, weights.add(64).cast());
                    low[lane] = _mm512_dpbusd_epi32(low[lane], codes, w_low);
                    high[lane] = _mm512_dpbusd_epi32(high[lane], codes, w_high);
                }
            }
        }
        for group in full_steps * STEP..groups {
            // SAFETY: as above.
            unsafe {
                let codes = _mm512_set1_epi32(a.add(group * KU).cast::<i32>().read_unaligned());
                let weights = panel.add(group * group_bytes);
                let w_low = _mm512_maskz_loadu_epi32(low_mask, weights.cast());
                let w_high = _mm512_maskz_loadu_epi32(high_mask, weights.add(64).cast());
                low[0] = _mm512_dpbusd_epi32(low[0], codes, w_low);
                high[0] = _mm512_dpbusd_epi32(high[0], codes, w_high);
            }
        }
        let low_sum = _mm512_add_epi32(
            _mm512_add_epi32(low[0], low[1]),
            _mm512_add_epi32(low[2], low[3]),
        );
        let high_sum = _mm512_add_epi32(
            _mm512_add_epi32(high[0], high[1]),
            _mm512_add_epi32(high[2], high[3]),
        );
        // SAFETY: the masks keep the stores to the `width` outputs the caller vouched for.
        unsafe {
            _mm512_mask_storeu_epi32(out, low_mask, low_sum);
            _mm512_mask_storeu_epi32(out.add(16), high_mask, high_sum);
        }
    }

    /// One full panel of 32 columns: per k group, the four codes widened to i16 and broadcast, the 128 weight
    /// bytes sign-extended to i16 in eight chunks of four columns, `vpmaddwd` into i32 pairs (k0+k1, k2+k3) per
    /// column, the pairs summed at the end. Exact (no saturating 16-bit step).
    ///
    /// # Safety
    /// AVX2 available; `a` points to `groups · 4` readable bytes, `panel` to `groups · 128`, `out` to 32
    /// writable i32.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn panel_avx2(a: *const u8, panel: *const i8, groups: usize, out: *mut i32) {
        let mut acc = [_mm256_setzero_si256(); NR / KU];
        for group in 0..groups {
            // SAFETY: group < groups: the 4 codes and the 128 weight bytes read are inside the caller's buffers.
            unsafe {
                let codes = a.add(group * KU);
                let pair = |lane: usize| i64::from(*codes.add(lane)) << (16 * lane);
                let code_lanes = _mm256_set1_epi64x(pair(0) | pair(1) | pair(2) | pair(3));
                let weights = panel.add(group * NR * KU);
                for (chunk, chunk_acc) in acc.iter_mut().enumerate() {
                    let bytes = _mm_loadu_si128(weights.add(chunk * 16).cast());
                    let widened = _mm256_cvtepi8_epi16(bytes);
                    *chunk_acc =
                        _mm256_add_epi32(*chunk_acc, _mm256_madd_epi16(code_lanes, widened));
                }
            }
        }
        let mut pairs = [0i32; 2 * NR];
        for (chunk, chunk_acc) in acc.iter().enumerate() {
            // SAFETY: `pairs` holds 64 i32; chunk c writes its 8 at 8·c.
            unsafe { _mm256_storeu_si256(pairs.as_mut_ptr().add(chunk * 8).cast(), *chunk_acc) };
        }
        for column in 0..NR {
            // SAFETY: column < 32 outputs the caller vouched for.
            unsafe { *out.add(column) = pairs[2 * column] + pairs[2 * column + 1] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::gemm_reference_i64;
    use ndarray::Array2;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// Every kernel this CPU runs against the i64 reference, exactly, on k and n around the group (4), the
    /// half-panel (16) and the panel (32) edges, primes and extreme codes (255 × −128 everywhere probes overflow
    /// and saturation); the output pre-filled with a sentinel so a missed write shows.
    #[test]
    fn every_kernel_matches_the_reference() {
        let sizes = [
            0usize, 1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 784,
        ];
        let mut state = 7u64;
        for &k in &sizes {
            for &n in &[0usize, 1, 3, 15, 16, 17, 31, 32, 33, 47, 64, 65, 100, 256] {
                for extreme in [false, true] {
                    let a: Vec<u8> = (0..k)
                        .map(|_| if extreme { 255 } else { lcg(&mut state) as u8 })
                        .collect();
                    let b = Array2::from_shape_fn((k, n), |_| {
                        if extreme {
                            -128
                        } else {
                            lcg(&mut state) as i8
                        }
                    });
                    let packed = PackedB::pack(b.view()).unwrap();
                    let a_matrix = Array2::from_shape_vec((1, k), a.clone()).unwrap();
                    let expected = gemm_reference_i64(a_matrix.view(), b.view());
                    let mut padded = a.clone();
                    padded.resize(k.div_ceil(KU) * KU, 0);
                    for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
                        let mut c = vec![i32::MIN; n];
                        let ran = gemv_u8i8_i32(&padded, &packed, &mut c, kernel).unwrap();
                        assert_eq!(ran, kernel);
                        for (column, &value) in c.iter().enumerate() {
                            assert_eq!(
                                i64::from(value),
                                expected[[0, column]],
                                "kernel {kernel} k {k} n {n} column {column}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let b = Array2::<i8>::zeros((5, 3));
        let packed = PackedB::pack(b.view()).unwrap();
        let mut c = vec![0i32; 3];
        assert!(gemv_u8i8_i32(&[0; 5], &packed, &mut c, GemmKernel::Scalar).is_err());
        assert!(gemv_u8i8_i32(&[0; 8], &packed, &mut c[..2], GemmKernel::Scalar).is_err());
        assert!(gemv_u8i8_i32(&[0; 8], &packed, &mut c, GemmKernel::Scalar).is_ok());
    }
}
