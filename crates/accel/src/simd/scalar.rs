//! Portable fallback: plain f32 "vectors" of one lane, a 4 × 4 register tile. Always compiled, runs anywhere.

use super::driver::{gemm_body, MicroKernel};
use super::vector::{microkernel, TileArgs, Vector};
use super::workspace::Workspace;
use super::{MatMut, MatRef, SimdBlocking};

#[derive(Clone, Copy)]
pub(crate) struct F32x1(f32);

impl Vector for F32x1 {
    const LANES: usize = 1;

    #[inline(always)]
    unsafe fn zero() -> Self {
        F32x1(0.0)
    }

    #[inline(always)]
    unsafe fn splat_from(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees a readable `ptr`.
        F32x1(unsafe { *ptr })
    }

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees one readable float.
        F32x1(unsafe { *ptr })
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut f32, value: Self) {
        // SAFETY: the caller guarantees one writable float.
        unsafe { *ptr = value.0 }
    }

    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        // Not `f32::mul_add`: without a hardware FMA that is a slow libm call.
        F32x1(a.0 * b.0 + acc.0)
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        F32x1(a.0 + b.0)
    }
}

pub(crate) const MR: usize = 4;
pub(crate) const NV: usize = 4;

pub(crate) struct ScalarKernel;

impl MicroKernel for ScalarKernel {
    const MR: usize = MR;
    const NR: usize = NV;
    const LANES: usize = 1;

    #[inline(always)]
    unsafe fn run(rows: usize, vectors: usize, tile: TileArgs) {
        // SAFETY: forwarded contract; the scalar kernel needs no CPU feature.
        unsafe {
            match rows {
                1 => run_rows::<1>(vectors, tile),
                2 => run_rows::<2>(vectors, tile),
                3 => run_rows::<3>(vectors, tile),
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
            1 => tile_scalar::<ROWS, 1>(tile),
            2 => tile_scalar::<ROWS, 2>(tile),
            3 => tile_scalar::<ROWS, 3>(tile),
            _ => tile_scalar::<ROWS, NV>(tile),
        }
    }
}

/// The scalar microkernel for a `ROWS × VECTORS` tile.
///
/// # Safety
/// Pointer contract of [`microkernel`].
#[inline(always)]
unsafe fn tile_scalar<const ROWS: usize, const VECTORS: usize>(tile: TileArgs) {
    // SAFETY: forwarded contract.
    unsafe { microkernel::<F32x1, ROWS, VECTORS>(tile) }
}

/// The generic GEMM body for the scalar kernel.
///
/// # Safety
/// The descriptors must be valid (see [`MatRef`], [`MatMut`]).
pub(crate) unsafe fn gemm(
    a: MatRef,
    b: MatRef,
    c: MatMut,
    accumulate: bool,
    blocking: SimdBlocking,
    workspace: &mut Workspace,
) {
    // SAFETY: forwarded contract.
    unsafe { gemm_body::<ScalarKernel>(a, b, c, accumulate, blocking, workspace) }
}
