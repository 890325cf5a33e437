//! The `MR × NR` microkernels, one per instruction set, over packed micro-panels:
//! `a` is `[groups][MR][4]` u8, `b` is `[groups][NR][4]` i8, and `tile[r·NR + c] = Σ a·b` (overwritten).
//!
//! All `unsafe` of the crate lives here: `#[target_feature]` functions called only after detection, and
//! unaligned vector loads whose bounds are checked by the safe wrapper [`run`].
#![allow(unsafe_code)]

use super::{GemmKernel, KU, MR, NR};

/// Runs `kernel` on one micro-panel pair.
///
/// # Panics
/// When the slices are shorter than `groups` k groups (a bug in the driver), or `kernel` is not available
/// (the driver resolves availability first).
pub(crate) fn run(kernel: GemmKernel, a: &[u8], b: &[i8], groups: usize, tile: &mut [i32; MR * NR]) {
    assert!(a.len() >= groups * MR * KU && b.len() >= groups * NR * KU, "micro-panels too short");
    match kernel {
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512Vnni => {
            assert!(kernel.is_available());
            // SAFETY: AVX-512 F/BW/VNNI were detected (asserted above); the slices hold `groups` full k groups
            // (asserted above), which is all the kernel reads; `tile` holds MR·NR values, all it writes.
            unsafe { x86::avx512_vnni(a.as_ptr(), b.as_ptr(), groups, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2 => {
            assert!(kernel.is_available());
            // SAFETY: as above, with AVX2 detected.
            unsafe { x86::avx2(a.as_ptr(), b.as_ptr(), groups, tile) }
        }
        _ => scalar(a, b, groups, tile),
    }
}

/// The portable kernel: plain i32 multiply–adds (exact for k ≤ `MAX_K`).
fn scalar(a: &[u8], b: &[i8], groups: usize, tile: &mut [i32; MR * NR]) {
    tile.fill(0);
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
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KU, MR, NR};
    use std::arch::x86_64::*;

    /// 8 × 32 tile in 16 zmm accumulators; per k group: two 64-byte B loads, eight 4-byte A broadcasts,
    /// sixteen `vpdpbusd`.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F/BW/VNNI; `a` points to `groups · MR · 4` readable bytes, `b` to
    /// `groups · NR · 4`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn avx512_vnni(a: *const u8, b: *const i8, groups: usize, tile: &mut [i32; MR * NR]) {
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
                    let a_lanes = _mm512_set1_epi32(a_group.add(r * KU).cast::<i32>().read_unaligned());
                    row_acc[0] = _mm512_dpbusd_epi32(row_acc[0], a_lanes, b0);
                    row_acc[1] = _mm512_dpbusd_epi32(row_acc[1], a_lanes, b1);
                }
            }
        }
        for (r, row_acc) in acc.iter().enumerate() {
            // SAFETY: tile has MR·NR i32; row r's 32 values start at r·NR.
            unsafe {
                _mm512_storeu_si512(tile.as_mut_ptr().add(r * NR).cast(), row_acc[0]);
                _mm512_storeu_si512(tile.as_mut_ptr().add(r * NR + 16).cast(), row_acc[1]);
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
    pub(super) unsafe fn avx2(a: *const u8, b: *const i8, groups: usize, tile: &mut [i32; MR * NR]) {
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
                        *chunk_acc = _mm256_add_epi32(*chunk_acc, _mm256_madd_epi16(a_lanes, widened));
                    }
                }
            }
            let mut pairs = [0i32; 2 * NR];
            for (chunk, chunk_acc) in acc.iter().enumerate() {
                // SAFETY: `pairs` holds 64 i32; chunk c writes its 8 at 8·c.
                unsafe { _mm256_storeu_si256(pairs.as_mut_ptr().add(chunk * 8).cast(), *chunk_acc) };
            }
            for c in 0..NR {
                tile[r * NR + c] = pairs[2 * c] + pairs[2 * c + 1];
            }
        }
    }
}
