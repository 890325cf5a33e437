//! AVX2 + FMA: 8-lane vectors, a 6 × 16 register tile (12 accumulators out of 16 ymm registers, as in BLIS).

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::driver::{gemm_body, MicroKernel};
use super::vector::{microkernel, TileArgs, Vector};
use super::workspace::Workspace;
use super::{MatMut, MatRef, SimdBlocking};

#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

impl Vector for F32x8 {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        F32x8(unsafe { _mm256_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat_from(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA and a readable `ptr`.
        F32x8(unsafe { _mm256_set1_ps(*ptr) })
    }

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA and 8 readable floats.
        F32x8(unsafe { _mm256_loadu_ps(ptr) })
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut f32, value: Self) {
        // SAFETY: the caller guarantees AVX2 and FMA and 8 writable floats.
        unsafe { _mm256_storeu_ps(ptr, value.0) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        F32x8(unsafe { _mm256_fmadd_ps(a.0, b.0, acc.0) })
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX2 and FMA.
        F32x8(unsafe { _mm256_add_ps(a.0, b.0) })
    }

    #[inline(always)]
    unsafe fn prefetch(ptr: *const f32) {
        // SAFETY: prefetching is a hint and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) }
    }
}

pub(crate) const MR: usize = 6;
pub(crate) const NV: usize = 2;

pub(crate) struct Avx2Kernel;

impl MicroKernel for Avx2Kernel {
    const MR: usize = MR;
    const NR: usize = NV * 8;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn run(rows: usize, vectors: usize, tile: TileArgs) {
        // SAFETY: forwarded contract; AVX2 and FMA is guaranteed by the caller.
        unsafe {
            match rows {
                1 => run_rows::<1>(vectors, tile),
                2 => run_rows::<2>(vectors, tile),
                3 => run_rows::<3>(vectors, tile),
                4 => run_rows::<4>(vectors, tile),
                5 => run_rows::<5>(vectors, tile),
                _ => run_rows::<MR>(vectors, tile),
            }
        }
    }
}

/// Picks the tile width for a tile of `ROWS` rows.
///
/// # Safety
/// As [`MicroKernel::run`].
#[inline(always)]
unsafe fn run_rows<const ROWS: usize>(vectors: usize, tile: TileArgs) {
    // SAFETY: forwarded contract.
    unsafe {
        match vectors {
            1 => tile_avx2::<ROWS, 1>(tile),
            _ => tile_avx2::<ROWS, NV>(tile),
        }
    }
}

/// The microkernel for a `ROWS × VECTORS·8` tile, compiled with AVX2 and FMA enabled and kept out of line so
/// each shape gets its own register allocation.
///
/// # Safety
/// AVX2 and FMA must be available; pointer contract of [`microkernel`].
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn tile_avx2<const ROWS: usize, const VECTORS: usize>(tile: TileArgs) {
    // SAFETY: forwarded contract.
    unsafe { microkernel::<F32x8, ROWS, VECTORS>(tile) }
}

/// The generic GEMM body compiled with AVX2 and FMA enabled.
///
/// # Safety
/// AVX2 and FMA must be available; the descriptors must be valid (see [`MatRef`], [`MatMut`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm(
    a: MatRef,
    b: MatRef,
    c: MatMut,
    accumulate: bool,
    blocking: SimdBlocking,
    workspace: &mut Workspace,
) {
    // SAFETY: forwarded contract.
    unsafe { gemm_body::<Avx2Kernel>(a, b, c, accumulate, blocking, workspace) }
}
