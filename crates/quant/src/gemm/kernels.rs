//! The `MR × NR` microkernels, one per instruction set, over packed micro-panels:
//! `a` is `[groups][MR][4]` u8, `b` is `[groups][NR][4]` i8, and `tile[r·NR + c] = Σ a·b` (overwritten).
//!
//! All `unsafe` of the crate lives here: `#[target_feature]` functions called only after detection, and
//! unaligned vector loads whose bounds are checked by the safe wrapper [`run`].
#![allow(unsafe_code)]

use super::{GemmKernel, KU, MR, NR};

/// Where a microkernel puts its `MR × NR` result: row `r` at `values[r · stride ..][.. NR]`, added to what is
/// there when `accumulate`, else overwriting it.
pub(crate) struct TileOut<'a> {
    pub(crate) values: &'a mut [i32],
    pub(crate) stride: usize,
    pub(crate) accumulate: bool,
}

/// One instruction set's `MR × NR` integer microkernel over a pair of packed micro-panels (the shape of
/// matrixmultiply's kernel trait): the driver packs and blocks, [`run`] checks the bounds once, and each
/// implementation holds only its own arithmetic.
trait MicroKernel {
    /// The kernel choice this implements (its availability is checked before [`MicroKernel::tile`] runs).
    const KERNEL: GemmKernel;

    /// `out[r · stride + c] (+)= Σ a·b` over `groups` k groups.
    ///
    /// # Safety
    /// The CPU runs [`MicroKernel::KERNEL`]; `a` holds `groups · MR · 4` bytes, `b` holds `groups · NR · 4`, and
    /// `out.values` holds `MR` rows of `NR` values at `out.stride` (what [`run`] asserts).
    unsafe fn tile(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>);
}

/// Runs `kernel` on one micro-panel pair.
///
/// # Panics
/// When the slices are shorter than `groups` k groups or the output cannot hold the tile (a bug in the
/// driver), or `kernel` is not available (the driver resolves availability first).
pub(crate) fn run(kernel: GemmKernel, a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512Vnni => run_checked::<x86::Avx512Vnni>(a, b, groups, out),
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2 => run_checked::<x86::Avx2>(a, b, groups, out),
        _ => run_checked::<Scalar>(a, b, groups, out),
    }
}

fn run_checked<K: MicroKernel>(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
    assert!(
        a.len() >= groups * MR * KU && b.len() >= groups * NR * KU,
        "micro-panels too short"
    );
    assert!(
        out.stride >= NR && out.values.len() >= (MR - 1) * out.stride + NR,
        "output tile too small"
    );
    assert!(
        K::KERNEL.is_available(),
        "kernel {} cannot run here",
        K::KERNEL
    );
    // SAFETY: the kernel's features were detected and the panel and output bounds hold (asserted above),
    // which is the whole of `tile`'s contract.
    unsafe { K::tile(a, b, groups, out) }
}

/// Interleaves four rows of `NR` bytes into `NR` groups of four (`destination[col · 4 + lane] = rows[lane][col]`),
/// the inner step of packing B.
pub(crate) fn interleave_group(rows: [&[i8; NR]; KU], destination: &mut [i8; NR * KU]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline; the references guarantee NR = 32 readable bytes per row
        // and NR · 4 = 128 writable bytes, exactly what `x86::interleave_group` reads and writes.
        unsafe { x86::interleave_group(rows, destination) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for col in 0..NR {
        for lane in 0..KU {
            destination[col * KU + lane] = rows[lane][col];
        }
    }
}

/// The portable kernel: plain i32 multiply–adds (exact for k ≤ `MAX_K`).
struct Scalar;

impl MicroKernel for Scalar {
    const KERNEL: GemmKernel = GemmKernel::Scalar;

    unsafe fn tile(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
        scalar(a, b, groups, out);
    }
}

fn scalar(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
    let mut tile = [0i32; MR * NR];
    for group in 0..groups {
        let a_group = &a[group * MR * KU..(group + 1) * MR * KU];
        let b_group = &b[group * NR * KU..(group + 1) * NR * KU];
        for r in 0..MR {
            let a_lanes = &a_group[r * KU..(r + 1) * KU];
            for c in 0..NR {
                let b_lanes = &b_group[c * KU..(c + 1) * KU];
                let dot: i32 = a_lanes
                    .iter()
                    .zip(b_lanes)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .sum();
                tile[r * NR + c] += dot;
            }
        }
    }
    for r in 0..MR {
        let row = &mut out.values[r * out.stride..r * out.stride + NR];
        let computed = &tile[r * NR..(r + 1) * NR];
        if out.accumulate {
            row.iter_mut()
                .zip(computed)
                .for_each(|(target, value)| *target += value);
        } else {
            row.copy_from_slice(computed);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{GemmKernel, MicroKernel, TileOut, KU, MR, NR};
    use std::arch::x86_64::*;

    /// The AVX-512 VNNI microkernel ([`avx512_vnni`]).
    pub(super) struct Avx512Vnni;

    impl MicroKernel for Avx512Vnni {
        const KERNEL: GemmKernel = GemmKernel::Avx512Vnni;

        unsafe fn tile(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
            let c = out.values.as_mut_ptr();
            // SAFETY: the trait's contract is `avx512_vnni`'s.
            unsafe {
                avx512_vnni(
                    a.as_ptr(),
                    b.as_ptr(),
                    groups,
                    c,
                    out.stride,
                    out.accumulate,
                )
            }
        }
    }

    /// The AVX2 microkernel ([`avx2`]).
    pub(super) struct Avx2;

    impl MicroKernel for Avx2 {
        const KERNEL: GemmKernel = GemmKernel::Avx2;

        unsafe fn tile(a: &[u8], b: &[i8], groups: usize, out: TileOut<'_>) {
            let c = out.values.as_mut_ptr();
            // SAFETY: the trait's contract is `avx2`'s.
            unsafe {
                avx2(
                    a.as_ptr(),
                    b.as_ptr(),
                    groups,
                    c,
                    out.stride,
                    out.accumulate,
                )
            }
        }
    }

    /// Byte interleave of four 32-byte rows by two rounds of unpacks (bytes into pairs, pairs into quads), 16
    /// columns at a time.
    ///
    /// # Safety
    /// Needs only SSE2 (x86-64 baseline); all memory is behind the typed references.
    pub(super) unsafe fn interleave_group(rows: [&[i8; NR]; KU], destination: &mut [i8; NR * KU]) {
        for half in 0..NR / 16 {
            // SAFETY: `half · 16 + 16 ≤ NR` bytes of each row are read and `half · 64 + 64 ≤ NR · 4` bytes of
            // the destination written; unaligned loads and stores need no alignment.
            unsafe {
                let load = |row: &[i8; NR]| _mm_loadu_si128(row.as_ptr().add(half * 16).cast());
                let (r0, r1, r2, r3) = (load(rows[0]), load(rows[1]), load(rows[2]), load(rows[3]));
                let pairs01_low = _mm_unpacklo_epi8(r0, r1);
                let pairs01_high = _mm_unpackhi_epi8(r0, r1);
                let pairs23_low = _mm_unpacklo_epi8(r2, r3);
                let pairs23_high = _mm_unpackhi_epi8(r2, r3);
                let out = destination.as_mut_ptr().add(half * 64);
                _mm_storeu_si128(out.cast(), _mm_unpacklo_epi16(pairs01_low, pairs23_low));
                _mm_storeu_si128(
                    out.add(16).cast(),
                    _mm_unpackhi_epi16(pairs01_low, pairs23_low),
                );
                _mm_storeu_si128(
                    out.add(32).cast(),
                    _mm_unpacklo_epi16(pairs01_high, pairs23_high),
                );
                _mm_storeu_si128(
                    out.add(48).cast(),
                    _mm_unpackhi_epi16(pairs01_high, pairs23_high),
                );
            }
        }
    }

    /// 12 × 32 tile in 24 zmm accumulators; per k group: two 64-byte B loads, twelve 4-byte A broadcasts,
    /// twenty-four `vpdpbusd` (two per A broadcast, so loads stay well under the load ports' rate). The C rows
    /// are prefetched first: with a power-of-two `stride` they share cache sets, and the store at the end
    /// should not wait for them.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F/BW/VNNI; `a` points to `groups · MR · 4` readable bytes, `b` to
    /// `groups · NR · 4`; `c` to MR rows of NR writable (and, when `accumulate`, readable) i32 at `stride`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn avx512_vnni(
        a: *const u8,
        b: *const i8,
        groups: usize,
        c: *mut i32,
        stride: usize,
        accumulate: bool,
    ) {
        for r in 0..MR {
            // SAFETY: prefetching is a hint; the addresses are inside the output the caller vouched for.
            unsafe {
                let row = c.add(r * stride).cast::<i8>();
                _mm_prefetch::<_MM_HINT_T0>(row);
                _mm_prefetch::<_MM_HINT_T0>(row.add(64));
            }
        }
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        for group in 0..groups {
            // SAFETY: group < groups, so the 128 bytes at b + group·128 and the 32 bytes at a + group·32 are
            // inside the buffers the caller vouched for; unaligned loads need no alignment.
            unsafe {
                let b_group = b.add(group * NR * KU);
                let b0 = _mm512_loadu_si512(b_group.cast());
                let b1 = _mm512_loadu_si512(b_group.add(64).cast());
                let a_group = a.add(group * MR * KU);
                for (r, row_acc) in acc.iter_mut().enumerate() {
                    let a_lanes =
                        _mm512_set1_epi32(a_group.add(r * KU).cast::<i32>().read_unaligned());
                    row_acc[0] = _mm512_dpbusd_epi32(row_acc[0], a_lanes, b0);
                    row_acc[1] = _mm512_dpbusd_epi32(row_acc[1], a_lanes, b1);
                }
            }
        }
        for (r, row_acc) in acc.iter().enumerate() {
            // SAFETY: row r's NR = 32 values at c + r·stride are inside the output the caller vouched for.
            unsafe {
                let row = c.add(r * stride);
                let (mut low, mut high) = (row_acc[0], row_acc[1]);
                if accumulate {
                    low = _mm512_add_epi32(low, _mm512_loadu_si512(row.cast()));
                    high = _mm512_add_epi32(high, _mm512_loadu_si512(row.add(16).cast()));
                }
                _mm512_storeu_si512(row.cast(), low);
                _mm512_storeu_si512(row.add(16).cast(), high);
            }
        }
    }

    /// One row at a time: per k group, A's four bytes widened to i16 and broadcast, B's 128 bytes sign-extended
    /// to i16 in eight 16-byte chunks (four columns × four k each), `vpmaddwd` into i32 pairs (k0+k1, k2+k3)
    /// per column; the pairs are summed at the end. No 16-bit saturation: each i16 product fits, each pair sum
    /// (≤ 2 · 255 · 128) fits i32.
    ///
    /// # Safety
    /// The CPU supports AVX2; pointers as for [`avx512_vnni`].
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(
        a: *const u8,
        b: *const i8,
        groups: usize,
        c: *mut i32,
        stride: usize,
        accumulate: bool,
    ) {
        for r in 0..MR {
            let mut acc = [_mm256_setzero_si256(); NR / KU];
            for group in 0..groups {
                // SAFETY: as in `avx512_vnni`: every address is inside the group's part of the buffers.
                unsafe {
                    let a_bytes = a.add(group * MR * KU + r * KU);
                    let a_pair = |lane: usize| i64::from(*a_bytes.add(lane)) << (16 * lane);
                    let a_lanes = _mm256_set1_epi64x(a_pair(0) | a_pair(1) | a_pair(2) | a_pair(3));
                    let b_group = b.add(group * NR * KU);
                    for (chunk, chunk_acc) in acc.iter_mut().enumerate() {
                        let bytes = _mm_loadu_si128(b_group.add(chunk * 16).cast());
                        let widened = _mm256_cvtepi8_epi16(bytes);
                        *chunk_acc =
                            _mm256_add_epi32(*chunk_acc, _mm256_madd_epi16(a_lanes, widened));
                    }
                }
            }
            let mut pairs = [0i32; 2 * NR];
            for (chunk, chunk_acc) in acc.iter().enumerate() {
                // SAFETY: `pairs` holds 64 i32; chunk c writes its 8 at 8·c.
                unsafe {
                    _mm256_storeu_si256(pairs.as_mut_ptr().add(chunk * 8).cast(), *chunk_acc)
                };
            }
            for col in 0..NR {
                let value = pairs[2 * col] + pairs[2 * col + 1];
                // SAFETY: column col < NR of row r < MR is inside the output the caller vouched for.
                unsafe {
                    let target = c.add(r * stride + col);
                    *target = if accumulate { *target + value } else { value };
                }
            }
        }
    }
    /// Vector [`super::range_and_finite`]: 16 lanes of min, max and `v · 0` (NaN for a non-finite value).
    ///
    /// # Safety
    /// AVX-512 F available.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn range_and_finite(values: &[f32]) -> (f32, f32, bool) {
        let zero = _mm512_setzero_ps();
        let (mut low, mut high, mut finite) = (zero, zero, zero);
        for start in (0..values.len()).step_by(16) {
            let mask = lanes(values.len() - start);
            // SAFETY: the mask limits the load to the `len - start` remaining values (masked-off lanes read 0).
            let v = unsafe { _mm512_maskz_loadu_ps(mask, values.as_ptr().add(start)) };
            low = _mm512_min_ps(low, v);
            high = _mm512_max_ps(high, v);
            finite = _mm512_add_ps(finite, _mm512_mul_ps(v, zero));
        }
        let all_finite = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(finite, zero) == 0xffff;
        (
            _mm512_reduce_min_ps(low),
            _mm512_reduce_max_ps(high),
            all_finite,
        )
    }

    /// Mask of the first `count` (≤ 16) lanes.
    fn lanes(count: usize) -> __mmask16 {
        if count >= 16 {
            0xffff
        } else {
            ((1u32 << count) - 1) as __mmask16
        }
    }

    /// Vector [`super::quantize_u8`]: 16 values per step, masked tail; `vcvtps2dq` rounds to nearest even.
    ///
    /// # Safety
    /// AVX-512 F/BW available; `source` and `destination` hold `len` elements.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_u8(
        source: *const f32,
        len: usize,
        multiplier: f32,
        map: super::CodeMap,
        destination: *mut u8,
    ) {
        let multiplier = _mm512_set1_ps(multiplier);
        let (low, high) = (_mm512_set1_ps(map.low), _mm512_set1_ps(map.high));
        let zero_point = _mm512_set1_epi32(map.zero_point);
        for start in (0..len).step_by(16) {
            let mask = lanes(len - start);
            // SAFETY: the mask limits the load and the store to the `len - start` remaining elements.
            unsafe {
                let values = _mm512_maskz_loadu_ps(mask, source.add(start));
                let scaled =
                    _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(values, multiplier), low), high);
                let codes = _mm512_add_epi32(_mm512_cvtps_epi32(scaled), zero_point);
                _mm512_mask_cvtusepi32_storeu_epi8(destination.add(start).cast(), mask, codes);
            }
        }
    }

    /// Vector requantization epilogue (see [`super::epilogue`]), row by row.
    ///
    /// # Safety
    /// AVX-512 F/BW available; `offsets` and `multipliers` hold `n` values; `codes` holds one byte per
    /// accumulator; `accumulators.len()` is a multiple of `n`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn requantize_rows(
        accumulators: &[i32],
        offsets: *const i32,
        multipliers: *const f32,
        n: usize,
        map: super::CodeMap,
        codes: *mut u8,
    ) {
        let (low, high) = (_mm512_set1_ps(map.low), _mm512_set1_ps(map.high));
        let zero_point = _mm512_set1_epi32(map.zero_point);
        for (row_idx, row) in accumulators.chunks_exact(n).enumerate() {
            for start in (0..n).step_by(16) {
                let mask = lanes(n - start);
                // SAFETY: masked to the `n - start` columns left in this row and in the per-column vectors.
                unsafe {
                    let acc =
                        _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, row.as_ptr().add(start)));
                    let offset =
                        _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, offsets.add(start)));
                    let multiplier = _mm512_maskz_loadu_ps(mask, multipliers.add(start));
                    let value = _mm512_mul_ps(_mm512_add_ps(acc, offset), multiplier);
                    let clamped = _mm512_min_ps(_mm512_max_ps(value, low), high);
                    let code = _mm512_add_epi32(_mm512_cvtps_epi32(clamped), zero_point);
                    _mm512_mask_cvtusepi32_storeu_epi8(
                        codes.add(row_idx * n + start).cast(),
                        mask,
                        code,
                    );
                }
            }
        }
    }

    /// Vector dequantization epilogue (see [`super::epilogue`]), row by row.
    ///
    /// # Safety
    /// As [`requantize_rows`], with `reals` holding one f32 per accumulator.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn dequantize_rows(
        accumulators: &[i32],
        offsets: *const i32,
        multipliers: *const f32,
        n: usize,
        relu: bool,
        reals: *mut f32,
    ) {
        let floor = _mm512_set1_ps(if relu { 0.0 } else { f32::NEG_INFINITY });
        for (row_idx, row) in accumulators.chunks_exact(n).enumerate() {
            for start in (0..n).step_by(16) {
                let mask = lanes(n - start);
                // SAFETY: masked to the `n - start` columns left in this row and in the per-column vectors.
                unsafe {
                    let acc =
                        _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, row.as_ptr().add(start)));
                    let offset =
                        _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, offsets.add(start)));
                    let multiplier = _mm512_maskz_loadu_ps(mask, multipliers.add(start));
                    let value =
                        _mm512_max_ps(_mm512_mul_ps(_mm512_add_ps(acc, offset), multiplier), floor);
                    _mm512_mask_storeu_ps(reals.add(row_idx * n + start), mask, value);
                }
            }
        }
    }
}

/// How [`quantize_u8`] and [`requantize_rows`] map a real (or accumulator) value to a u8 code:
/// `code = round(clamp(value · multiplier, low, high)) + zero_point`, rounding to nearest, ties to even.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeMap {
    pub(crate) low: f32,
    pub(crate) high: f32,
    pub(crate) zero_point: i32,
}

/// Whether the vector epilogues may run for `kernel` (they follow the GEMM kernel, so forcing `scalar` or
/// `avx2` also exercises the portable epilogues).
pub(crate) fn vector_epilogue(kernel: GemmKernel) -> bool {
    cfg!(target_arch = "x86_64") && kernel == GemmKernel::Avx512Vnni && kernel.is_available()
}

/// Round to nearest, ties to even, by the 1.5·2²³ trick (exact for |x| < 2²²), which vectorises where
/// `f32::round_ties_even` is a library call on baseline x86-64; the same result as `vcvtps2dq`.
#[inline(always)]
fn round_even(value: f32) -> f32 {
    const ROUNDING: f32 = 12_582_912.0;
    (value + ROUNDING) - ROUNDING
}

/// `destination[i] = code(source[i] · multiplier)` (see [`CodeMap`]).
///
/// # Panics
/// When the slices differ in length.
pub(crate) fn quantize_u8(
    kernel: GemmKernel,
    source: &[f32],
    multiplier: f32,
    map: CodeMap,
    destination: &mut [u8],
) {
    assert_eq!(source.len(), destination.len(), "one code per value");
    #[cfg(target_arch = "x86_64")]
    if vector_epilogue(kernel) {
        // SAFETY: AVX-512 F/BW were detected (`vector_epilogue`); both slices hold `source.len()` elements.
        unsafe {
            x86::quantize_u8(
                source.as_ptr(),
                source.len(),
                multiplier,
                map,
                destination.as_mut_ptr(),
            )
        };
        return;
    }
    let _ = kernel;
    let zero_point = map.zero_point as f32;
    for (code, &value) in destination.iter_mut().zip(source) {
        *code = (round_even((value * multiplier).max(map.low).min(map.high)) + zero_point) as u8;
    }
}

/// `(min, max, all finite)` of `values`, min and max starting from 0 (an empty slice gives `(0, 0, true)`).
/// With NaN/inf present the min and max are meaningless and the flag is false.
pub(crate) fn range_and_finite(kernel: GemmKernel, values: &[f32]) -> (f32, f32, bool) {
    #[cfg(target_arch = "x86_64")]
    if vector_epilogue(kernel) {
        // SAFETY: AVX-512 F was detected (`vector_epilogue`); the slice bounds every load.
        return unsafe { x86::range_and_finite(values) };
    }
    let _ = kernel;
    // Lane-wise in chunks of 16, which the compiler vectorises: `v · 0` is 0 for every finite value and NaN
    // otherwise.
    const LANES: usize = 16;
    let (mut low, mut high, mut finite) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let chunks = values.chunks_exact(LANES);
    let remainder = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let v = chunk[lane];
            low[lane] = if v < low[lane] { v } else { low[lane] };
            high[lane] = if v > high[lane] { v } else { high[lane] };
            finite[lane] += v * 0.0;
        }
    }
    for (lane, &v) in remainder.iter().enumerate() {
        low[lane] = if v < low[lane] { v } else { low[lane] };
        high[lane] = if v > high[lane] { v } else { high[lane] };
        finite[lane] += v * 0.0;
    }
    let min = low.iter().copied().fold(0f32, f32::min);
    let max = high.iter().copied().fold(0f32, f32::max);
    (min, max, finite.iter().all(|f| *f == 0.0))
}

/// The GEMM epilogue, row by row over `n` columns: `value = (acc + offset[j]) · multiplier[j]` in f32, then
/// either a u8 code (`Some(map)`, requantization for the next layer) into `codes`, or f32 (optionally
/// through ReLU) into `reals`.
pub(crate) enum EpilogueOut<'a> {
    Codes(&'a mut [u8], CodeMap),
    Reals(&'a mut [f32], bool),
}

/// Applies the epilogue to `accumulators` (`rows × n`, row-major).
///
/// # Panics
/// When the lengths disagree with `n`.
pub(crate) fn epilogue(
    kernel: GemmKernel,
    accumulators: &[i32],
    offsets: &[i32],
    multipliers: &[f32],
    out: EpilogueOut<'_>,
) {
    let n = offsets.len();
    assert_eq!(multipliers.len(), n, "one multiplier per column");
    if n == 0 {
        return;
    }
    assert!(accumulators.len().is_multiple_of(n), "whole rows");
    match out {
        EpilogueOut::Codes(codes, map) => {
            assert_eq!(codes.len(), accumulators.len(), "one code per accumulator");
            #[cfg(target_arch = "x86_64")]
            if vector_epilogue(kernel) {
                // SAFETY: AVX-512 F/BW were detected; every row of `n` accumulators has its `n` codes, and
                // `offsets`/`multipliers` hold `n` values (asserted above).
                unsafe {
                    x86::requantize_rows(
                        accumulators,
                        offsets.as_ptr(),
                        multipliers.as_ptr(),
                        n,
                        map,
                        codes.as_mut_ptr(),
                    )
                };
                return;
            }
            let zero_point = map.zero_point as f32;
            scalar_epilogue(accumulators, offsets, multipliers, codes, |value| {
                (round_even(value.max(map.low).min(map.high)) + zero_point) as u8
            });
        }
        EpilogueOut::Reals(reals, relu) => {
            assert_eq!(reals.len(), accumulators.len(), "one value per accumulator");
            #[cfg(target_arch = "x86_64")]
            if vector_epilogue(kernel) {
                // SAFETY: as above, with `reals` holding one f32 per accumulator.
                unsafe {
                    x86::dequantize_rows(
                        accumulators,
                        offsets.as_ptr(),
                        multipliers.as_ptr(),
                        n,
                        relu,
                        reals.as_mut_ptr(),
                    )
                };
                return;
            }
            let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
            scalar_epilogue(accumulators, offsets, multipliers, reals, |value| {
                value.max(floor)
            });
        }
    }
}

/// The portable epilogue: `out[r · n + c] = finish((accumulator + offsets[c]) · multipliers[c])`, row by row
/// (`n` = `offsets.len()`, lengths checked by [`epilogue`]).
fn scalar_epilogue<T>(
    accumulators: &[i32],
    offsets: &[i32],
    multipliers: &[f32],
    out: &mut [T],
    finish: impl Fn(f32) -> T,
) {
    let n = offsets.len();
    for (acc_row, out_row) in accumulators.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for (((target, &acc), &offset), &multiplier) in out_row
            .iter_mut()
            .zip(acc_row)
            .zip(offsets)
            .zip(multipliers)
        {
            *target = finish((acc as f32 + offset as f32) * multiplier);
        }
    }
}
