//! The block-sparse vector–matrix product `y (+)= x · W` of [`crate::BlockSparseMatrix`]: one generic body over the
//! `Vector` types of the GEMM, compiled per instruction set behind a `#[target_feature]` wrapper.
//!
//! The body walks the input rows in order. For each `x_i` (skipped when it is zero and the caller allows it) it
//! broadcasts `x_i` once, then for each stored block of row `i` adds `x_i · block` into the 16 accumulators the
//! block covers: a load of the block, a load of the accumulators, an FMA and a store, per vector. The accumulators
//! (a layer's width, a few KB) stay in L1, and the weights are read once, in storage order, so the traffic is the
//! stored bytes. The dependency through memory between two blocks of the same column (store, forwarded load, FMA)
//! is overlapped by the blocks of the other columns in between.
//!
//! The accumulators are a 64-byte-aligned scratch, one cache line per block column, not the caller's output: an
//! unaligned output put every 64-byte load and store across two cache lines, where store-to-load forwarding
//! fails, and made the product over twice as slow. The padded last block column needs no scalar tail there; the
//! scratch is copied (or added) to the output once at the end.
//!
//! The scratch holds [`ACCUMULATOR_COPIES`] copies of the accumulators, and input row `i` adds into copy
//! `i mod 4`: four independent chains per output block instead of one, so that a narrow layer (few block columns,
//! so the same line is updated every few blocks) is not bound by the latency of the store–load–FMA chain. The
//! copies are summed once at the end.

use super::isa_kernel::isa_dispatch;
use super::vector::Vector;
use crate::block_sparse::SPARSE_BLOCK_WIDTH;

/// Independent copies of the accumulators (see the module documentation); the scratch holds this many times
/// `16 · ceil(cols / 16)` floats.
pub(crate) const ACCUMULATOR_COPIES: usize = 4;

/// The operands of one product, as raw pointers.
///
/// Invariant (upheld by `BlockSparseMatrix`, whose constructor checks its storage, and by its product methods,
/// which check the lengths): `row_offsets` holds `rows + 1` non-decreasing entries, `block_columns` and
/// `values` (16 per block) hold as many blocks as the last offset, every block column is below
/// `ceil(cols / 16)`; `x[i · x_stride]` is readable for `i < rows`; `y[0..cols]` is readable and writable,
/// `scratch[0..ACCUMULATOR_COPIES · 16 · ceil(cols / 16)]` is writable and 64-byte aligned, and neither aliases anything else.
#[derive(Clone, Copy)]
pub(crate) struct SparseArgs {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_offsets: *const u32,
    pub(crate) block_columns: *const u16,
    pub(crate) values: *const f32,
    pub(crate) x: *const f32,
    pub(crate) x_stride: isize,
    pub(crate) y: *mut f32,
    pub(crate) scratch: *mut f32,
    pub(crate) accumulate: bool,
    pub(crate) skip_zero_inputs: bool,
}

isa_dispatch! {
    /// Runs the body compiled for `isa` (which the caller checked is available; `args` is checked by
    /// `BlockSparseMatrix`); returns the rows skipped.
    pub(crate) fn dispatch(isa, args: SparseArgs) -> usize = sparse_body;
}

/// `y (+)= x · W` over the stored blocks; returns the input rows skipped because `x_i == 0`.
///
/// # Safety
/// `V`'s instruction set must be available; the [`SparseArgs`] invariant must hold.
#[inline(always)]
unsafe fn sparse_body<V: Vector>(args: SparseArgs) -> usize {
    let SparseArgs {
        rows,
        cols,
        row_offsets,
        block_columns,
        values,
        x,
        x_stride,
        y,
        scratch,
        accumulate,
        skip_zero_inputs,
    } = args;
    let padded_cols = cols.div_ceil(SPARSE_BLOCK_WIDTH) * SPARSE_BLOCK_WIDTH;
    let mut skipped = 0;
    // SAFETY: every pointer below stays inside the ranges of the `SparseArgs` invariant: rows `< rows`, blocks
    // between a row's offsets, accumulators `< padded_cols` (block columns are below `ceil(cols / 16)`), outputs
    // `< cols`.
    unsafe {
        std::ptr::write_bytes(scratch, 0, ACCUMULATOR_COPIES * padded_cols);
        let mut first = *row_offsets as usize;
        for row_idx in 0..rows {
            let last = *row_offsets.add(row_idx + 1) as usize;
            let blocks = first..last;
            first = last;
            if blocks.is_empty() {
                continue;
            }
            let x_ptr = x.offset(row_idx as isize * x_stride);
            if skip_zero_inputs && *x_ptr == 0.0 {
                skipped += 1;
                continue;
            }
            let x_vector = V::splat_from(x_ptr);
            let copy = scratch.add(row_idx % ACCUMULATOR_COPIES * padded_cols);
            for block in blocks {
                let block_col = usize::from(*block_columns.add(block));
                let block_values = values.add(block * SPARSE_BLOCK_WIDTH);
                let accumulators = copy.add(block_col * SPARSE_BLOCK_WIDTH);
                let mut lane = 0;
                while lane < SPARSE_BLOCK_WIDTH {
                    let updated = V::mul_add(
                        x_vector,
                        V::load(block_values.add(lane)),
                        V::load(accumulators.add(lane)),
                    );
                    V::store(accumulators.add(lane), updated);
                    lane += V::LANES;
                }
            }
        }
        let full = cols / V::LANES * V::LANES;
        let mut col = 0;
        while col < full {
            let mut sum = V::load(scratch.add(col));
            for copy in 1..ACCUMULATOR_COPIES {
                sum = V::add(sum, V::load(scratch.add(copy * padded_cols + col)));
            }
            if accumulate {
                sum = V::add(V::load(y.add(col)), sum);
            }
            V::store(y.add(col), sum);
            col += V::LANES;
        }
        for col in full..cols {
            let mut sum = *scratch.add(col);
            for copy in 1..ACCUMULATOR_COPIES {
                sum += *scratch.add(copy * padded_cols + col);
            }
            *y.add(col) = if accumulate { *y.add(col) + sum } else { sum };
        }
    }
    skipped
}
