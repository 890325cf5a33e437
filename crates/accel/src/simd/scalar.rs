//! Portable fallback: plain f32 "vectors" of one lane, a 4 × 4 register tile. Always compiled, runs anywhere.

use super::isa_kernel::isa_kernel;
use super::vector::Vector;

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

isa_kernel! {
    kernel: ScalarKernel,
    vector: F32x1,
    mr: 4,
    nv: 4,
    rows: [1, 2, 3],
    vectors: [1, 2, 3],
}
