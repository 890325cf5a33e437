//! AVX2 + FMA: 8-lane vectors, a 6 × 16 register tile (12 accumulators out of 16 ymm registers, as in BLIS).

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::isa_kernel::isa_kernel;
use super::vector::Vector;

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

isa_kernel! {
    kernel: Avx2Kernel,
    vector: F32x8,
    mr: 6,
    nv: 2,
    features: "avx2,fma",
    rows: [1, 2, 3, 4, 5],
    vectors: [1],
}
