//! The packed-panel SIMD GEMM: one generic body (`driver.rs`, `vector.rs`) behind thin per-ISA wrappers
//! (`avx512.rs`, `avx2.rs`, `scalar.rs`), chosen at run time. All of accel's GEMM `unsafe` lives in this module.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod avx2;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod avx512;
mod driver;
pub(crate) mod fma_chains;
pub(crate) mod gemv;
mod isa_kernel;
mod scalar;
pub(crate) mod sparse_gemv;
mod vector;
pub(crate) mod workspace;

use std::fmt;
use std::sync::OnceLock;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::cache::CacheInfo;
use crate::AccelError;
use workspace::Workspace;

/// An instruction set the SIMD kernel can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// AVX-512F, 16 f32 lanes, 6 × 64 register tile.
    Avx512,
    /// AVX2 with FMA, 8 f32 lanes, 6 × 16 register tile.
    Avx2Fma,
    /// Portable scalar code, 4 × 4 register tile. Always available.
    Scalar,
}

impl Isa {
    /// Every instruction set, best first (the detection ladder).
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2Fma, Isa::Scalar];

    /// Whether this CPU can run the kernel for `self`.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx512 => {
                std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2Fma => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            Isa::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best instruction set this CPU has, detected on first use and cached.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .find(|isa| isa.is_available())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// The instruction sets this CPU has, best first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_available())
            .collect()
    }

    /// Short lowercase name: `avx512`, `avx2`, `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2",
            Isa::Scalar => "scalar",
        }
    }

    /// Rows × columns of the register tile of this instruction set's microkernel.
    pub fn register_tile(self) -> (usize, usize) {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx512 => (avx512::MR, avx512::NV * 16),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2Fma => (avx2::MR, avx2::NV * 8),
            #[allow(unreachable_patterns)]
            _ => (scalar::MR, scalar::NV),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Cache blocking of the SIMD kernel, in elements (see `driver.rs` for the loop order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimdBlocking {
    /// Rows of A packed per block (kept in L3, ideally all of A's rows).
    pub mc: usize,
    /// Depth of each packed slab; an A micro-panel (`MR × kc`) must sit in L1.
    pub kc: usize,
    /// Columns of B packed per block; the packed `kc × nc` block must sit in L2.
    pub nc: usize,
}

impl SimdBlocking {
    /// Blocking derived from cache sizes for `isa`'s register tile: `kc` so that an A micro-panel takes at most a
    /// quarter of L1d, `nc` so that the packed B block takes a quarter of L2 (the B block shares L2 with the A rows
    /// and C tiles streaming through, and guests can over-report L2), `mc` so that the packed A block takes at
    /// most a quarter of L3.
    pub fn from_cache(cache: &CacheInfo, isa: Isa) -> SimdBlocking {
        let (mr, nr) = isa.register_tile();
        let floats = |bytes: usize| bytes / std::mem::size_of::<f32>();
        let kc = (floats(cache.l1d_bytes) / 4 / mr).clamp(64, 512) / 8 * 8;
        let nc = (floats(cache.l2_bytes) / 4 / kc / nr * nr).clamp(nr, 4096 / nr * nr);
        let mc = (floats(cache.l3_bytes) / 4 / kc / mr * mr).clamp(mr, 8192 / mr * mr);
        SimdBlocking { mc, kc, nc }
    }

    /// Blocking for the running CPU.
    pub fn detect(isa: Isa) -> SimdBlocking {
        SimdBlocking::from_cache(&CacheInfo::detect(), isa)
    }

    pub(crate) fn validate(&self) -> Result<(), AccelError> {
        if self.mc == 0 || self.kc == 0 || self.nc == 0 {
            return Err(AccelError::InvalidConfig {
                what: format!("simd blocking must be positive, got {self:?}"),
            });
        }
        Ok(())
    }
}

/// A read-only matrix descriptor: element `(i, j)` is at `ptr + i·row_stride + j·col_stride`.
///
/// Invariant (upheld by the constructor from an `ArrayView2`): every `(i, j)` with `i < rows`, `j < cols` is a
/// valid, initialized f32 for the lifetime of the borrowed view.
#[derive(Clone, Copy)]
pub(crate) struct MatRef {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl MatRef {
    fn from_view(view: &ArrayView2<'_, f32>) -> MatRef {
        let strides = view.strides();
        MatRef {
            ptr: view.as_ptr(),
            rows: view.nrows(),
            cols: view.ncols(),
            row_stride: strides[0],
            col_stride: strides[1],
        }
    }

    /// # Safety
    /// `row < rows` and `col < cols` (or the pointer is only used as a base for in-bounds offsets).
    #[inline(always)]
    unsafe fn at(&self, row: usize, col: usize) -> *const f32 {
        self.ptr
            .wrapping_offset(row as isize * self.row_stride + col as isize * self.col_stride)
    }

    /// The `rows × cols` sub-matrix starting at `(row, col)`; the caller keeps it inside `self`.
    #[inline(always)]
    fn sub(&self, row: usize, col: usize, rows: usize, cols: usize) -> MatRef {
        MatRef {
            ptr: self
                .ptr
                .wrapping_offset(row as isize * self.row_stride + col as isize * self.col_stride),
            rows,
            cols,
            ..*self
        }
    }
}

/// A writable matrix descriptor, as [`MatRef`]; distinct `(i, j)` are distinct elements (no aliasing), as
/// ndarray guarantees for mutable views.
#[derive(Clone, Copy)]
pub(crate) struct MatMut {
    ptr: *mut f32,
    row_stride: isize,
    col_stride: isize,
}

impl MatMut {
    fn from_view(view: &mut ArrayViewMut2<'_, f32>) -> MatMut {
        let strides = view.strides();
        let (row_stride, col_stride) = (strides[0], strides[1]);
        MatMut {
            ptr: view.as_mut_ptr(),
            row_stride,
            col_stride,
        }
    }

    /// # Safety
    /// `(row, col)` must be inside the matrix.
    #[inline(always)]
    unsafe fn at(&self, row: usize, col: usize) -> *mut f32 {
        self.ptr
            .wrapping_offset(row as isize * self.row_stride + col as isize * self.col_stride)
    }
}

/// `c = a · b` (or `c += a · b`) with the packed SIMD kernel for `isa` on the calling thread.
///
/// Shapes must already be checked by the caller (`a` is `m × k`, `b` is `k × n`, `c` is `m × n`).
///
/// # Errors
/// [`AccelError::KernelUnavailable`] when this CPU lacks `isa`.
pub(crate) fn gemm(
    isa: Isa,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    blocking: SimdBlocking,
    workspace: &mut Workspace,
) -> Result<(), AccelError> {
    debug_assert_eq!(a.ncols(), b.nrows());
    debug_assert_eq!(c.dim(), (a.nrows(), b.ncols()));
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: crate::Backend::Simd(isa),
        });
    }
    let a_ref = MatRef::from_view(&a);
    let b_ref = MatRef::from_view(&b);
    let c_mut = MatMut::from_view(&mut c);
    match isa {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: AVX-512F and FMA were detected above; the descriptors come from live ndarray views of the checked
        // shapes, and `c` is a unique mutable borrow, so it aliases neither `a` nor `b`.
        Isa::Avx512 => unsafe {
            avx512::gemm(a_ref, b_ref, c_mut, accumulate, blocking, workspace)
        },
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: as above, with AVX2 and FMA detected.
        Isa::Avx2Fma => unsafe { avx2::gemm(a_ref, b_ref, c_mut, accumulate, blocking, workspace) },
        // SAFETY: as above; the scalar kernel needs no CPU feature.
        _ => unsafe { scalar::gemm(a_ref, b_ref, c_mut, accumulate, blocking, workspace) },
    }
    Ok(())
}
