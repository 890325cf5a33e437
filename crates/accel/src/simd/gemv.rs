//! Matrix–vector products for few rows: `C = A · B` (or `C += A · B`) with `A` of `m × k` for small `m` (one
//! decode step of a transformer: a token's activations times a weight matrix, a query times cached keys, attention
//! weights times cached values).
//!
//! The packed GEMM copies B into panels before it multiplies, which a single row of A cannot amortise. Here B is
//! read once, in place, row by row of A:
//!
//! - **rows layout** (B's rows contiguous, e.g. a row-major `k × n` weight): `c_i = Σ_p a_ip · B[p, :]`, the
//!   accumulators of a block of columns stay in registers while the loop streams B's contiguous row segments;
//!   narrow blocks split the depth over several independent accumulator sets so that enough FMA chains are in
//!   flight (FMA latency × throughput ≈ 8 on the reference machine).
//! - **columns layout** (B's columns contiguous, e.g. `Kᵀ` of row-major cached keys, or a pre-transposed weight):
//!   `c_ij = a_i · B[:, j]`, four dot products at a time, each reduced once at the end.
//! - **strided**: anything else falls back to the i-k-j loop (correct for every stride, not fast).
//!
//! The body is generic over the same `Vector` types as the GEMM microkernel and is compiled once per instruction
//! set behind a `#[target_feature]` wrapper; [`GemvConfig::isa`] forces one (the tests run each).

use std::fmt;

use ndarray::{ArrayView2, ArrayViewMut2};

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::avx2::F32x8;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::avx512::F32x16;
use super::scalar::F32x1;
use super::vector::Vector;
use super::Isa;
use crate::error::dims;
use crate::{AccelError, Backend};

/// How [`gemv_into_with`] walked B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GemvLayout {
    /// B's rows are contiguous: column blocks accumulate in registers while B streams row by row.
    Rows,
    /// B's columns are contiguous: one dot product per output.
    Columns,
    /// Neither: the i-k-j loop on the views' strides (scalar code).
    Strided,
}

impl GemvLayout {
    /// `rows`, `columns` or `strided`.
    pub fn name(self) -> &'static str {
        match self {
            GemvLayout::Rows => "rows",
            GemvLayout::Columns => "columns",
            GemvLayout::Strided => "strided",
        }
    }
}

/// What computed a [`gemv_into_with`] result: the instruction set and the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemvRun {
    /// The instruction set of the code that ran ([`Isa::Scalar`] for [`GemvLayout::Strided`]).
    pub isa: Isa,
    /// How B was read.
    pub layout: GemvLayout,
}

impl fmt::Display for GemvRun {
    /// `gemv-avx512-rows`, `gemv-scalar-strided`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gemv-{}-{}", self.isa, self.layout.name())
    }
}

/// Knobs of [`gemv_into_with`]. `Default` is what [`gemv_into`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GemvConfig {
    /// Force an instruction set; `None` takes [`Isa::best`]. (`ACCEL_KERNEL` names GEMM kernels and does not
    /// apply here.)
    pub isa: Option<Isa>,
}

/// `C = A · B`, or `C += A · B` when `accumulate`, for few rows of A (a matrix–vector product per row), into a
/// caller-owned buffer; returns what ran. Any `m` is correct, but each row of A reads all of B, so from a handful
/// of rows on [`crate::matmul_into`] is faster.
///
/// Without `accumulate` the previous contents of `c` are never read (a NaN-filled buffer is fine).
///
/// # Errors
/// [`AccelError::ShapeMismatch`] when `a.ncols() != b.nrows()`, [`AccelError::OutputShapeMismatch`] when `c` is not
/// `a.nrows() × b.ncols()`.
pub fn gemv_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) -> Result<GemvRun, AccelError> {
    gemv_into_with(a, b, c, accumulate, &GemvConfig::default())
}

/// [`gemv_into`] with an explicit configuration.
///
/// # Errors
/// As [`gemv_into`], plus [`AccelError::KernelUnavailable`] when the forced instruction set is missing here.
pub fn gemv_into_with(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    config: &GemvConfig,
) -> Result<GemvRun, AccelError> {
    AccelError::check_product(dims(&a), dims(&b), dims(&c))?;
    let isa = config.isa.unwrap_or_else(Isa::best);
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: Backend::Simd(isa),
        });
    }
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    // A stride along an axis of length ≤ 1 is never used, so such an axis counts as contiguous; so does every axis
    // of an empty view (ndarray may give those any stride).
    let unit = |len: usize, stride: isize, empty: bool| empty || len <= 1 || stride == 1;
    let (a_empty, b_empty, c_empty) = (m == 0 || k == 0, k == 0 || n == 0, m == 0 || n == 0);
    let layout = if unit(n, b.strides()[1], b_empty) && unit(n, c.strides()[1], c_empty) {
        GemvLayout::Rows
    } else if unit(k, b.strides()[0], b_empty) && unit(k, a.strides()[1], a_empty) {
        GemvLayout::Columns
    } else {
        GemvLayout::Strided
    };
    if layout == GemvLayout::Strided {
        crate::naive::matmul_ikj(a, b, c, accumulate);
        return Ok(GemvRun {
            isa: Isa::Scalar,
            layout,
        });
    }
    if m == 0 || n == 0 {
        return Ok(GemvRun { isa, layout });
    }
    let args = GemvArgs {
        m,
        k,
        n,
        a: a.as_ptr(),
        a_row_stride: a.strides()[0],
        a_col_stride: a.strides()[1],
        b: b.as_ptr(),
        b_row_stride: b.strides()[0],
        b_col_stride: b.strides()[1],
        c: c.as_mut_ptr(),
        c_row_stride: c.strides()[0],
        c_col_stride: c.strides()[1],
        accumulate,
        layout,
    };
    dispatch(isa, args);
    Ok(GemvRun { isa, layout })
}

/// `y (+)= B · x` for a row-major `rows × k` matrix `B` in a slice (`k = x.len()`, `rows = y.len()`): one dot
/// product per row of `B` (the columns layout of [`gemv_into`] on `x` and `Bᵀ`). For callers that hold plain
/// slices, such as the blocks of a paged KV cache, where building two checked views per block of 16 rows cost as
/// much as the block's arithmetic. Returns what ran.
///
/// # Errors
/// [`AccelError::ShapeMismatch`] when `b.len() != y.len() · x.len()`; [`AccelError::KernelUnavailable`] when
/// `config` forces an instruction set this CPU lacks.
pub fn matrix_vector_rows(
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    accumulate: bool,
    config: &GemvConfig,
) -> Result<GemvRun, AccelError> {
    let (rows, k) = (y.len(), x.len());
    if rows.checked_mul(k) != Some(b.len()) {
        return Err(AccelError::ShapeMismatch {
            a_shape: [rows, k],
            b_shape: [b.len(), 1],
        });
    }
    let b_strides = (1, k as isize);
    run_slices(
        one_row(x, b, y, b_strides, accumulate, GemvLayout::Columns),
        config,
    )
}

/// `y (+)= xᵀ · B` for a row-major `k × n` matrix `B` in a slice (`k = x.len()`, `n = y.len()`): the rows of `B`
/// weighted by `x` and summed (the rows layout of [`gemv_into`]), e.g. attention weights times a block of cached
/// values. Returns what ran.
///
/// # Errors
/// [`AccelError::ShapeMismatch`] when `b.len() != x.len() · y.len()`; [`AccelError::KernelUnavailable`] when
/// `config` forces an instruction set this CPU lacks.
pub fn vector_matrix_rows(
    x: &[f32],
    b: &[f32],
    y: &mut [f32],
    accumulate: bool,
    config: &GemvConfig,
) -> Result<GemvRun, AccelError> {
    let (k, n) = (x.len(), y.len());
    if k.checked_mul(n) != Some(b.len()) {
        return Err(AccelError::ShapeMismatch {
            a_shape: [1, k],
            b_shape: [b.len(), n],
        });
    }
    let b_strides = (n as isize, 1);
    run_slices(
        one_row(x, b, y, b_strides, accumulate, GemvLayout::Rows),
        config,
    )
}

/// The arguments for one contiguous row `x` (`k` long) times a `k × n` matrix held in the slice `b` with
/// `b_strides` (row, column), into the contiguous `y` (`n` long); the callers have checked `b.len() = k · n`.
fn one_row(
    x: &[f32],
    b: &[f32],
    y: &mut [f32],
    b_strides: (isize, isize),
    accumulate: bool,
    layout: GemvLayout,
) -> GemvArgs {
    GemvArgs {
        m: 1,
        k: x.len(),
        n: y.len(),
        a: x.as_ptr(),
        a_row_stride: 0,
        a_col_stride: 1,
        b: b.as_ptr(),
        b_row_stride: b_strides.0,
        b_col_stride: b_strides.1,
        c: y.as_mut_ptr(),
        c_row_stride: 0,
        c_col_stride: 1,
        accumulate,
        layout,
    }
}

/// Runs checked slice arguments on the configured (or best) instruction set.
fn run_slices(args: GemvArgs, config: &GemvConfig) -> Result<GemvRun, AccelError> {
    let isa = config.isa.unwrap_or_else(Isa::best);
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: Backend::Simd(isa),
        });
    }
    let layout = args.layout;
    if args.n > 0 {
        dispatch(isa, args);
    }
    Ok(GemvRun { isa, layout })
}

/// Runs the body compiled for `isa`.
fn dispatch(isa: Isa, args: GemvArgs) {
    match isa {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: the callers checked that `isa` is available; the arguments satisfy the `GemvArgs` invariant (views
        // of checked shapes in `gemv_into_with`, slices of checked lengths in `run_slices`), and `c` is a unique
        // mutable borrow, so it aliases neither `a` nor `b`.
        Isa::Avx512 => unsafe { gemv_avx512(args) },
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: as above, with AVX2 and FMA checked.
        Isa::Avx2Fma => unsafe { gemv_avx2(args) },
        // SAFETY: as above; the scalar body needs no CPU feature.
        _ => unsafe { gemv_body::<F32x1>(args) },
    }
}

/// The operands of one call, as raw pointers and element strides.
///
/// Invariant (upheld by [`gemv_into_with`]): `a[i·a_row_stride + p·a_col_stride]` is readable for `i < m`, `p < k`,
/// `b[p·b_row_stride + j·b_col_stride]` for `p < k`, `j < n`, `c[i·c_row_stride + j·c_col_stride]` readable and
/// writable for `i < m`, `j < n`, with `c` aliasing neither; `layout` is `Rows` only when `b_col_stride` and
/// `c_col_stride` are 1 (or `n ≤ 1`), `Columns` only when `b_row_stride` and `a_col_stride` are 1 (or `k ≤ 1`).
#[derive(Clone, Copy)]
struct GemvArgs {
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_row_stride: isize,
    a_col_stride: isize,
    b: *const f32,
    b_row_stride: isize,
    b_col_stride: isize,
    c: *mut f32,
    c_row_stride: isize,
    c_col_stride: isize,
    accumulate: bool,
    layout: GemvLayout,
}

/// The generic body compiled with AVX-512F enabled.
///
/// # Safety
/// AVX-512F and FMA must be available; the [`GemvArgs`] invariant must hold.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemv_avx512(args: GemvArgs) {
    // SAFETY: forwarded contract.
    unsafe { gemv_body::<F32x16>(args) }
}

/// The generic body compiled with AVX2 and FMA enabled.
///
/// # Safety
/// AVX2 and FMA must be available; the [`GemvArgs`] invariant must hold.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_avx2(args: GemvArgs) {
    // SAFETY: forwarded contract.
    unsafe { gemv_body::<F32x8>(args) }
}

/// One row of A at a time, in the layout chosen by the caller.
///
/// # Safety
/// `V`'s instruction set must be available; the [`GemvArgs`] invariant must hold.
#[inline(always)]
unsafe fn gemv_body<V: Vector>(args: GemvArgs) {
    for row_idx in 0..args.m {
        let a_row = args.a.wrapping_offset(row_idx as isize * args.a_row_stride);
        let c_row = args.c.wrapping_offset(row_idx as isize * args.c_row_stride);
        // SAFETY: row `row_idx < m` of A and C is inside the views (invariant), and the layout matches the strides.
        unsafe {
            match args.layout {
                GemvLayout::Columns => columns_row::<V>(&args, a_row, c_row),
                _ => rows_row::<V>(&args, a_row, c_row),
            }
        }
    }
}

/// `c_row (+)= a_row · B` with B's rows contiguous: column blocks of 8, 4, 2, 1 vectors, then single columns.
///
/// # Safety
/// As [`gemv_body`], for one row of A and C with `layout == Rows`.
#[inline(always)]
unsafe fn rows_row<V: Vector>(args: &GemvArgs, a_row: *const f32, c_row: *mut f32) {
    let lanes = V::LANES;
    let mut col = 0;
    // SAFETY: every block below stays inside columns `col .. col + width ≤ n` of B and C.
    unsafe {
        while col + 8 * lanes <= args.n {
            rows_block::<V, 8, 1>(args, a_row, c_row, col);
            col += 8 * lanes;
        }
        if col + 4 * lanes <= args.n {
            rows_block::<V, 4, 2>(args, a_row, c_row, col);
            col += 4 * lanes;
        }
        if col + 2 * lanes <= args.n {
            rows_block::<V, 2, 4>(args, a_row, c_row, col);
            col += 2 * lanes;
        }
        if col + lanes <= args.n {
            rows_block::<V, 1, 8>(args, a_row, c_row, col);
            col += lanes;
        }
        // Fewer than one vector of columns left: one dot product down each (strided) column.
        for col in col..args.n {
            let mut sum = 0.0f32;
            for depth_idx in 0..args.k {
                let a_value = *a_row.offset(depth_idx as isize * args.a_col_stride);
                let b_value = *args
                    .b
                    .offset(depth_idx as isize * args.b_row_stride + col as isize);
                sum += a_value * b_value;
            }
            let c_ptr = c_row.add(col);
            *c_ptr = if args.accumulate { *c_ptr + sum } else { sum };
        }
    }
}

/// Columns `col .. col + NV·LANES` of one output row. The depth is dealt round-robin to `SPLIT` accumulator sets
/// (independent FMA chains for narrow blocks), summed once at the end.
///
/// # Safety
/// As [`rows_row`], with `col + NV·LANES ≤ n`.
#[inline(always)]
unsafe fn rows_block<V: Vector, const NV: usize, const SPLIT: usize>(
    args: &GemvArgs,
    a_row: *const f32,
    c_row: *mut f32,
    col: usize,
) {
    // SAFETY: the caller guarantees the instruction set; every read is at depth < k and column < col + NV·LANES ≤ n.
    unsafe {
        let mut acc = [[V::zero(); NV]; SPLIT];
        let b_block = args.b.add(col);
        let mut depth_idx = 0;
        while depth_idx + SPLIT <= args.k {
            for (set, acc_set) in acc.iter_mut().enumerate() {
                let depth = (depth_idx + set) as isize;
                let a_value = V::splat_from(a_row.offset(depth * args.a_col_stride));
                let b_row = b_block.offset(depth * args.b_row_stride);
                for (vec_idx, acc_value) in acc_set.iter_mut().enumerate() {
                    let b_value = V::load(b_row.add(vec_idx * V::LANES));
                    *acc_value = V::mul_add(a_value, b_value, *acc_value);
                }
            }
            depth_idx += SPLIT;
        }
        while depth_idx < args.k {
            let depth = depth_idx as isize;
            let a_value = V::splat_from(a_row.offset(depth * args.a_col_stride));
            let b_row = b_block.offset(depth * args.b_row_stride);
            for (vec_idx, acc_value) in acc[0].iter_mut().enumerate() {
                let b_value = V::load(b_row.add(vec_idx * V::LANES));
                *acc_value = V::mul_add(a_value, b_value, *acc_value);
            }
            depth_idx += 1;
        }
        for vec_idx in 0..NV {
            let mut total = acc[0][vec_idx];
            for acc_set in &acc[1..] {
                total = V::add(total, acc_set[vec_idx]);
            }
            let c_ptr = c_row.add(col + vec_idx * V::LANES);
            if args.accumulate {
                total = V::add(V::load(c_ptr), total);
            }
            V::store(c_ptr, total);
        }
    }
}

/// `c_row (+)= a_row · B` with B's columns contiguous: four dot products at a time over the contiguous row of A.
///
/// # Safety
/// As [`gemv_body`], for one row of A and C with `layout == Columns`.
#[inline(always)]
unsafe fn columns_row<V: Vector>(args: &GemvArgs, a_row: *const f32, c_row: *mut f32) {
    const GROUP: usize = 4;
    let full_depth = args.k / V::LANES * V::LANES;
    let column = |col: usize| args.b.wrapping_offset(col as isize * args.b_col_stride);
    let mut col = 0;
    // SAFETY: columns `< n`, depths `< k`; A's row and B's columns are contiguous along the depth (invariant).
    unsafe {
        while col < args.n {
            let group = GROUP.min(args.n - col);
            let mut acc = [V::zero(); GROUP];
            let mut depth_idx = 0;
            while depth_idx < full_depth {
                let a_value = V::load(a_row.add(depth_idx));
                for (offset, acc_value) in acc.iter_mut().enumerate().take(group) {
                    let b_value = V::load(column(col + offset).add(depth_idx));
                    *acc_value = V::mul_add(a_value, b_value, *acc_value);
                }
                depth_idx += V::LANES;
            }
            for (offset, &acc_value) in acc.iter().enumerate().take(group) {
                let b_column = column(col + offset);
                let mut sum = horizontal_sum(acc_value);
                for depth_idx in full_depth..args.k {
                    sum += *a_row.add(depth_idx) * *b_column.add(depth_idx);
                }
                let c_ptr = c_row.offset((col + offset) as isize * args.c_col_stride);
                *c_ptr = if args.accumulate { *c_ptr + sum } else { sum };
            }
            col += group;
        }
    }
}

/// The sum of a vector's lanes, through a stack copy (once per output, not in the inner loop). The halving steps
/// have constant widths, so each is a single vector add of the lower and upper half (a loop with a run-time width
/// compiled to scalar adds and made the columns layout several times slower).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
unsafe fn horizontal_sum<V: Vector>(value: V) -> f32 {
    let mut lanes = [0.0f32; 16];
    debug_assert!(V::LANES <= lanes.len() && V::LANES.is_power_of_two());
    // SAFETY: `lanes` holds 16 ≥ LANES floats; the caller guarantees the instruction set.
    unsafe { V::store(lanes.as_mut_ptr(), value) };
    fold_half::<8>(&mut lanes, V::LANES);
    fold_half::<4>(&mut lanes, V::LANES);
    fold_half::<2>(&mut lanes, V::LANES);
    fold_half::<1>(&mut lanes, V::LANES);
    lanes[0]
}

/// `lanes[i] += lanes[i + HALF]` for `i < HALF`, when `lanes` holds at least `2·HALF` live values.
#[inline(always)]
fn fold_half<const HALF: usize>(lanes: &mut [f32; 16], live: usize) {
    if live < 2 * HALF {
        return;
    }
    let (low, high) = lanes.split_at_mut(HALF);
    for (low_value, high_value) in low.iter_mut().zip(&high[..HALF]) {
        *low_value += *high_value;
    }
}
