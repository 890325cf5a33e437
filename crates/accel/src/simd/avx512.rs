//! AVX-512F: 16-lane vectors, a 6 × 64 register tile (24 accumulators out of 32 zmm registers; 4 vector loads and
//! 6 broadcasts feed 24 FMAs per step). 6 × 64 beat 12 × 32, 14 × 32 and 8 × 48 on the reference machine, and 64
//! divides the usual power-of-two widths, so the column edge is rarely hit.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::driver::{gemm_body, MicroKernel};
use super::vector::{microkernel, TileArgs, Vector};
use super::workspace::Workspace;
use super::{MatMut, MatRef, SimdBlocking};

#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

impl Vector for F32x16 {
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        F32x16(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat_from(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F and a readable `ptr`.
        F32x16(unsafe { _mm512_set1_ps(*ptr) })
    }

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees AVX-512F and 16 readable floats.
        F32x16(unsafe { _mm512_loadu_ps(ptr) })
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut f32, value: Self) {
        // SAFETY: the caller guarantees AVX-512F and 16 writable floats.
        unsafe { _mm512_storeu_ps(ptr, value.0) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        F32x16(unsafe { _mm512_fmadd_ps(a.0, b.0, acc.0) })
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        F32x16(unsafe { _mm512_add_ps(a.0, b.0) })
    }

    #[inline(always)]
    unsafe fn prefetch(ptr: *const f32) {
        // SAFETY: prefetching is a hint and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) }
    }
}

pub(crate) const MR: usize = 6;
pub(crate) const NV: usize = 4;

pub(crate) struct Avx512Kernel;

impl MicroKernel for Avx512Kernel {
    const MR: usize = MR;
    const NR: usize = NV * 16;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn run(rows: usize, vectors: usize, tile: TileArgs) {
        // SAFETY: forwarded contract; AVX-512F is guaranteed by the caller.
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
            1 => tile_avx512::<ROWS, 1>(tile),
            2 => tile_avx512::<ROWS, 2>(tile),
            3 => tile_avx512::<ROWS, 3>(tile),
            _ => tile_avx512::<ROWS, NV>(tile),
        }
    }
}

/// The microkernel for a `ROWS × VECTORS·16` tile, compiled with AVX-512F enabled and kept out of line so
/// each shape gets its own register allocation.
///
/// # Safety
/// AVX-512F must be available; pointer contract of [`microkernel`].
#[target_feature(enable = "avx512f,fma")]
#[inline(never)]
unsafe fn tile_avx512<const ROWS: usize, const VECTORS: usize>(tile: TileArgs) {
    // SAFETY: forwarded contract.
    unsafe { microkernel::<F32x16, ROWS, VECTORS>(tile) }
}

/// The generic GEMM body compiled with AVX-512F enabled.
///
/// # Safety
/// AVX-512F must be available; the descriptors must be valid (see [`MatRef`], [`MatMut`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn gemm(
    a: MatRef,
    b: MatRef,
    c: MatMut,
    accumulate: bool,
    blocking: SimdBlocking,
    workspace: &mut Workspace,
) {
    // SAFETY: forwarded contract.
    unsafe { gemm_body::<Avx512Kernel>(a, b, c, accumulate, blocking, workspace) }
}
