//! AVX-512F: 16-lane vectors, a 6 × 64 register tile (24 accumulators out of 32 zmm registers; 4 vector loads and
//! 6 broadcasts feed 24 FMAs per step). 6 × 64 beat 12 × 32, 14 × 32 and 8 × 48 on the reference machine, and 64
//! divides the usual power-of-two widths, so the column edge is rarely hit.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::isa_kernel::isa_kernel;
use super::vector::Vector;

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

isa_kernel! {
    kernel: Avx512Kernel,
    vector: F32x16,
    mr: 6,
    nv: 4,
    features: "avx512f,fma",
    rows: [1, 2, 3, 4, 5],
    vectors: [1, 2, 3],
}
