//! Portable fallback: plain f32 "vectors" of one lane, a 4 × 4 register tile. Always compiled, runs anywhere.

use super::driver::{gemm_body, MicroKernel};
use super::vector::{microkernel, Vector};
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
    unsafe fn run(
        vectors: usize,
        depth: usize,
        a_panel: *const f32,
        a_row_stride: isize,
        b_panel: *const f32,
        b_row_stride: isize,
        c: *mut f32,
        c_row_stride: isize,
        load_c: bool,
    ) {
        // SAFETY: forwarded contract; the scalar kernel needs no CPU feature.
        unsafe {
            match vectors {
                1 => microkernel::<F32x1, MR, 1>(
                    depth,
                    a_panel,
                    a_row_stride,
                    b_panel,
                    b_row_stride,
                    c,
                    c_row_stride,
                    load_c,
                ),
                2 => microkernel::<F32x1, MR, 2>(
                    depth,
                    a_panel,
                    a_row_stride,
                    b_panel,
                    b_row_stride,
                    c,
                    c_row_stride,
                    load_c,
                ),
                3 => microkernel::<F32x1, MR, 3>(
                    depth,
                    a_panel,
                    a_row_stride,
                    b_panel,
                    b_row_stride,
                    c,
                    c_row_stride,
                    load_c,
                ),
                _ => microkernel::<F32x1, MR, NV>(
                    depth,
                    a_panel,
                    a_row_stride,
                    b_panel,
                    b_row_stride,
                    c,
                    c_row_stride,
                    load_c,
                ),
            }
        }
    }
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
