//! Block-sparse weights for batch-1 inference: a `rows × cols` matrix (a layer's `in × out` weight, row-major, as
//! `y = x · W` uses it) stored as per-input-row lists of blocks of one input row × [`SPARSE_BLOCK_WIDTH`] outputs,
//! and the product `y = x · W` that walks the input rows, skips the rows whose input is zero and adds `x_i · block`
//! into the outputs one vector register at a time.
//!
//! Why blocks and not CSR: a CSR entry costs a 4-byte index and a scalar multiply-add per weight, so even at 90%
//! sparsity it loses to a dense GEMV that streams whole vectors. A block of 16 contiguous outputs is exactly one
//! AVX-512 register (two AVX2 registers): one 2-byte index per 16 weights, and a vector load and FMA per block, so
//! the work falls with the number of blocks kept. [`prune_blocks`] removes whole blocks by L2 norm so that
//! sparsity is block sparsity. The kernels live in `simd/sparse_gemv.rs`.

use std::cell::RefCell;
use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::error::dims;
use crate::simd::sparse_gemv::{self, SparseArgs};
use crate::{AccelError, Backend, Isa};

/// Outputs per block: one AVX-512 register of f32. A constant (not the vector width of the running CPU) so that
/// one stored matrix runs on every instruction set; AVX2 handles a block as two registers, scalar code as 16 lanes.
pub const SPARSE_BLOCK_WIDTH: usize = 16;

/// A `rows × cols` f32 matrix of which only some `1 × SPARSE_BLOCK_WIDTH` blocks are stored.
///
/// Block `(row, block_col)` covers columns `block_col·16 .. min(block_col·16 + 16, cols)`; the last block column is
/// partial when `cols` is not a multiple of 16 and its stored values are zero-padded to 16.
///
/// Invariants (kept by the constructors): `row_offsets` has `rows + 1` non-decreasing entries from 0 to the number
/// of blocks; the block columns of a row are increasing and below `ceil(cols / 16)`; `values` holds
/// `16 · blocks` floats, zero beyond `cols` in a partial block.
///
/// ```
/// use accel::{prune_blocks, BlockSparseMatrix, SparseGemvConfig};
/// use ndarray::Array2;
///
/// // A 32 × 20 layer weight (in × out): two block columns per input row, the second partial (4 wide).
/// let weight = Array2::from_shape_fn((32, 20), |(i, j)| ((i * 20 + j) % 11) as f32 - 5.0);
/// let pruned = prune_blocks(weight.view(), 0.5)?;
/// let sparse = BlockSparseMatrix::from_dense(pruned.view())?;
/// assert_eq!(sparse.n_blocks(), 32);
///
/// let x = vec![0.5f32; 32];
/// let mut y = vec![f32::NAN; 20]; // never read without `accumulate`
/// let run = sparse.vector_product_into(&x, &mut y, false, &SparseGemvConfig::default())?;
/// let expected = ndarray::Array1::from(x).dot(&pruned);
/// assert!(y.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-3));
/// println!("{run}"); // block-sparse-avx512 on a CPU with AVX-512
/// # Ok::<(), accel::AccelError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSparseMatrix {
    rows: usize,
    cols: usize,
    row_offsets: Vec<u32>,
    block_columns: Vec<u16>,
    values: Vec<f32>,
}

/// Knobs of [`BlockSparseMatrix::vector_product_into`]. `Default`: the best instruction set, zero inputs skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseGemvConfig {
    /// Force an instruction set; `None` takes [`Isa::best`].
    pub isa: Option<Isa>,
    /// Skip the input rows whose `x_i` is exactly zero (ReLU activations, background pixels). The result is the
    /// same unless a skipped row holds an infinite or NaN weight, where the dense product would give NaN
    /// (`0 · ∞`) and the skipping one ignores the row.
    pub skip_zero_inputs: bool,
}

impl Default for SparseGemvConfig {
    fn default() -> Self {
        SparseGemvConfig {
            isa: None,
            skip_zero_inputs: true,
        }
    }
}

/// What computed a block-sparse product: the instruction set, and how many input rows were skipped because their
/// input was zero (summed over the rows of A in [`BlockSparseMatrix::matmul_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SparseGemvRun {
    /// The instruction set of the code that ran.
    pub isa: Isa,
    /// Input rows holding stored blocks (times rows of A) skipped because `x_i == 0`; rows with no block are
    /// never visited and not counted.
    pub skipped_rows: usize,
}

impl fmt::Display for SparseGemvRun {
    /// `block-sparse-avx512`, `block-sparse-scalar`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block-sparse-{}", self.isa)
    }
}

/// One cache line of accumulators: the scratch of the product is a vector of these, so that every block's
/// accumulators are one aligned line (see `simd/sparse_gemv.rs`).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct AccumulatorLine([f32; SPARSE_BLOCK_WIDTH]);

thread_local! {
    /// The accumulators of this thread's block-sparse products, grown to the widest matrix seen and then reused,
    /// so a warm product allocates nothing.
    static SCRATCH: RefCell<Vec<AccumulatorLine>> = const { RefCell::new(Vec::new()) };
}

fn block_columns_of(cols: usize) -> usize {
    cols.div_ceil(SPARSE_BLOCK_WIDTH)
}

impl BlockSparseMatrix {
    /// Stores every block of `dense` that holds a non-zero (or NaN) value; all-zero blocks are dropped. Prune
    /// first with [`prune_blocks`] to choose the sparsity.
    ///
    /// # Errors
    /// [`AccelError::InvalidConfig`] when `dense` has more than `65536 · 16` columns (block columns are `u16`) or
    /// more than `u32::MAX` stored blocks (offsets are `u32`).
    pub fn from_dense(dense: ArrayView2<'_, f32>) -> Result<BlockSparseMatrix, AccelError> {
        let (rows, cols) = dense.dim();
        let n_block_columns = block_columns_of(cols);
        if n_block_columns > usize::from(u16::MAX) + 1 {
            return Err(AccelError::InvalidConfig {
                what: format!("{cols} columns do not fit u16 block-column indices"),
            });
        }
        let mut row_offsets = Vec::with_capacity(rows + 1);
        let mut block_columns = Vec::new();
        let mut values = Vec::new();
        row_offsets.push(0u32);
        for row in dense.rows() {
            for block_col in 0..n_block_columns {
                let start = block_col * SPARSE_BLOCK_WIDTH;
                let end = (start + SPARSE_BLOCK_WIDTH).min(cols);
                let block = row.slice(ndarray::s![start..end]);
                // `!= 0.0` is true for NaN, so a NaN weight is never dropped.
                if block.iter().all(|&value| value == 0.0) {
                    continue;
                }
                block_columns.push(block_col as u16);
                values.extend(block.iter().copied());
                values.resize(values.len() + SPARSE_BLOCK_WIDTH - (end - start), 0.0);
            }
            let offset =
                u32::try_from(block_columns.len()).map_err(|_| AccelError::InvalidConfig {
                    what: format!("more than {} stored blocks", u32::MAX),
                })?;
            row_offsets.push(offset);
        }
        block_columns.shrink_to_fit();
        values.shrink_to_fit();
        Ok(BlockSparseMatrix {
            rows,
            cols,
            row_offsets,
            block_columns,
            values,
        })
    }

    /// `[rows, cols]` (`[in, out]` for a layer's weight).
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Stored blocks.
    pub fn n_blocks(&self) -> usize {
        self.block_columns.len()
    }

    /// Stored blocks over all blocks (`rows · ceil(cols / 16)`), 0 for an empty matrix. `1 − block_density` is the
    /// block sparsity.
    pub fn block_density(&self) -> f64 {
        let total = self.rows * block_columns_of(self.cols);
        if total == 0 {
            return 0.0;
        }
        self.n_blocks() as f64 / total as f64
    }

    /// Bytes of the storage that really exists: `16 · blocks` f32 values (padding included), a u16 block column
    /// per block and `rows + 1` u32 row offsets (lengths, not capacities).
    pub fn storage_bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<f32>()
            + self.block_columns.len() * std::mem::size_of::<u16>()
            + self.row_offsets.len() * std::mem::size_of::<u32>()
    }

    /// Bytes the same matrix takes dense (`rows · cols` f32 values), for comparison.
    pub fn dense_bytes(&self) -> usize {
        self.rows * self.cols * std::mem::size_of::<f32>()
    }

    /// The matrix back in dense form (dropped blocks are zero).
    pub fn to_dense(&self) -> Array2<f32> {
        let mut dense = Array2::zeros((self.rows, self.cols));
        for row_idx in 0..self.rows {
            let (first, last) = (
                self.row_offsets[row_idx] as usize,
                self.row_offsets[row_idx + 1] as usize,
            );
            for block in first..last {
                let start = usize::from(self.block_columns[block]) * SPARSE_BLOCK_WIDTH;
                let width = SPARSE_BLOCK_WIDTH.min(self.cols - start);
                for lane in 0..width {
                    dense[[row_idx, start + lane]] = self.values[block * SPARSE_BLOCK_WIDTH + lane];
                }
            }
        }
        dense
    }

    /// `y = x · W`, or `y += x · W` when `accumulate`, for one input vector (`x.len() == rows`, `y.len() == cols`);
    /// returns what ran. Without `accumulate` the previous contents of `y` are never read.
    ///
    /// # Errors
    /// [`AccelError::ShapeMismatch`] for the wrong lengths; [`AccelError::KernelUnavailable`] when `config` forces
    /// an instruction set this CPU lacks.
    pub fn vector_product_into(
        &self,
        x: &[f32],
        y: &mut [f32],
        accumulate: bool,
        config: &SparseGemvConfig,
    ) -> Result<SparseGemvRun, AccelError> {
        if x.len() != self.rows || y.len() != self.cols {
            return Err(AccelError::ShapeMismatch {
                a_shape: [1, x.len()],
                b_shape: [self.rows, self.cols],
            });
        }
        let isa = checked_isa(config)?;
        let skipped_rows = self.run(isa, x.as_ptr(), 1, y.as_mut_ptr(), accumulate, config);
        Ok(SparseGemvRun { isa, skipped_rows })
    }

    /// A layer's batch-1 forward pass in one call, allocating nothing: `y = x · W + bias`, then
    /// ReLU when `relu` (a NaN output stays NaN, so a broken weight or input is not hidden as 0). The bias and
    /// the activation are applied to the outputs (a few hundred floats, in L1) right after the product.
    ///
    /// # Errors
    /// As [`Self::vector_product_into`]; [`AccelError::ShapeMismatch`] when `bias` is not `cols` long.
    pub fn linear_into(
        &self,
        x: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
        config: &SparseGemvConfig,
    ) -> Result<SparseGemvRun, AccelError> {
        if let Some(bias) = bias {
            if bias.len() != self.cols {
                return Err(AccelError::ShapeMismatch {
                    a_shape: [1, bias.len()],
                    b_shape: [self.rows, self.cols],
                });
            }
        }
        let run = self.vector_product_into(x, y, false, config)?;
        // `x < 0.0` is false for NaN, so NaN passes through (`f32::max` would turn it into 0).
        let relu_of = |value: f32| if value < 0.0 { 0.0 } else { value };
        match (bias, relu) {
            (Some(bias), true) => y
                .iter_mut()
                .zip(bias)
                .for_each(|(output, &offset)| *output = relu_of(*output + offset)),
            (Some(bias), false) => y
                .iter_mut()
                .zip(bias)
                .for_each(|(output, &offset)| *output += offset),
            (None, true) => y.iter_mut().for_each(|output| *output = relu_of(*output)),
            (None, false) => {}
        }
        Ok(run)
    }

    /// `C = A · W`, or `C += A · W` when `accumulate`, for an `m × rows` A with few rows (a small batch): the
    /// vector product once per row of A, each reading the stored blocks once. Any strides of A; C's rows must be
    /// contiguous (standard layout or a column slice of one). Without `accumulate`, C is never read.
    ///
    /// # Errors
    /// [`AccelError::ShapeMismatch`], [`AccelError::OutputShapeMismatch`]; [`AccelError::InvalidConfig`] when C's
    /// rows are not contiguous; [`AccelError::KernelUnavailable`] as for [`Self::vector_product_into`].
    pub fn matmul_into(
        &self,
        a: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        config: &SparseGemvConfig,
    ) -> Result<SparseGemvRun, AccelError> {
        AccelError::check_product(dims(&a), self.shape(), dims(&c))?;
        if self.cols > 1 && c.nrows() > 0 && c.strides()[1] != 1 {
            return Err(AccelError::InvalidConfig {
                what: "the output's rows must be contiguous".to_owned(),
            });
        }
        let isa = checked_isa(config)?;
        let mut skipped_rows = 0;
        for (a_row, mut c_row) in a.rows().into_iter().zip(c.rows_mut()) {
            let x_stride = if a_row.len() > 1 {
                a_row.strides()[0]
            } else {
                1
            };
            skipped_rows += self.run(
                isa,
                a_row.as_ptr(),
                x_stride,
                c_row.as_mut_ptr(),
                accumulate,
                config,
            );
        }
        Ok(SparseGemvRun { isa, skipped_rows })
    }

    /// The checked product on one input vector (`x[i · x_stride]` for `i < rows`) into `cols` contiguous outputs.
    fn run(
        &self,
        isa: Isa,
        x: *const f32,
        x_stride: isize,
        y: *mut f32,
        accumulate: bool,
        config: &SparseGemvConfig,
    ) -> usize {
        SCRATCH.with_borrow_mut(|scratch| {
            let lines = sparse_gemv::ACCUMULATOR_COPIES * block_columns_of(self.cols);
            if scratch.len() < lines {
                scratch.resize(lines, AccumulatorLine([0.0; SPARSE_BLOCK_WIDTH]));
            }
            sparse_gemv::dispatch(
                isa,
                SparseArgs {
                    rows: self.rows,
                    cols: self.cols,
                    row_offsets: self.row_offsets.as_ptr(),
                    block_columns: self.block_columns.as_ptr(),
                    values: self.values.as_ptr(),
                    x,
                    x_stride,
                    y,
                    scratch: scratch.as_mut_ptr().cast::<f32>(),
                    accumulate,
                    skip_zero_inputs: config.skip_zero_inputs,
                },
            )
        })
    }
}

fn checked_isa(config: &SparseGemvConfig) -> Result<Isa, AccelError> {
    let isa = config.isa.unwrap_or_else(Isa::best);
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: Backend::Simd(isa),
        });
    }
    Ok(isa)
}

/// `weight` with the `sparsity` share of its `1 × 16` blocks (the blocks of [`BlockSparseMatrix`], the last
/// block column partial when `cols` is not a multiple of 16) set to zero, smallest L2 norm first (ties broken by
/// position, so exactly `floor(sparsity · blocks)` blocks are zeroed). A block holding a NaN counts as the
/// largest, so pruning never hides a NaN weight.
///
/// # Errors
/// [`AccelError::InvalidConfig`] for a sparsity outside `[0, 1]` or NaN.
pub fn prune_blocks(weight: ArrayView2<'_, f32>, sparsity: f64) -> Result<Array2<f32>, AccelError> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(AccelError::InvalidConfig {
            what: format!("block sparsity must be in [0, 1], got {sparsity}"),
        });
    }
    let (rows, cols) = weight.dim();
    let n_block_columns = block_columns_of(cols);
    let mut pruned = weight.to_owned();
    let mut norms: Vec<(f64, usize)> = Vec::with_capacity(rows * n_block_columns);
    for (row_idx, row) in weight.rows().into_iter().enumerate() {
        for block_col in 0..n_block_columns {
            let start = block_col * SPARSE_BLOCK_WIDTH;
            let end = (start + SPARSE_BLOCK_WIDTH).min(cols);
            let squares: f64 = row
                .slice(ndarray::s![start..end])
                .iter()
                .map(|&value| f64::from(value) * f64::from(value))
                .sum();
            let norm = if squares.is_nan() {
                f64::INFINITY
            } else {
                squares
            };
            norms.push((norm, row_idx * n_block_columns + block_col));
        }
    }
    let n_remove = (sparsity * norms.len() as f64).floor() as usize;
    // Stable: equal norms keep their positional order.
    norms.sort_by(|left, right| left.0.total_cmp(&right.0));
    for &(_, block) in &norms[..n_remove] {
        let (row_idx, block_col) = (block / n_block_columns, block % n_block_columns);
        let start = block_col * SPARSE_BLOCK_WIDTH;
        let end = (start + SPARSE_BLOCK_WIDTH).min(cols);
        pruned
            .row_mut(row_idx)
            .slice_mut(ndarray::s![start..end])
            .fill(0.0);
    }
    Ok(pruned)
}
