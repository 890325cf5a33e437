//! Compressed sparse row (CSR) storage built from a dense matrix, CSR × dense products and the CSR × vector
//! product of batch 1 — for pruned weights.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::error::dims;
use crate::naive::axpy;
use crate::AccelError;

/// A sparse `rows × cols` f32 matrix in CSR form.
///
/// Invariants (kept by the only constructor, [`CsrMatrix::from_dense`]): `row_offsets` has `rows + 1`
/// non-decreasing entries starting at 0 and ending at `nnz`; the column indices of each row are increasing and
/// below `cols`; `values` and `col_indices` both hold `nnz` entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    rows: usize,
    cols: usize,
    row_offsets: Vec<usize>,
    col_indices: Vec<u32>,
    values: Vec<f32>,
}

impl CsrMatrix {
    /// Keeps the entries of `dense` with `|value| > threshold` (so `threshold = 0.0` keeps every non-zero).
    ///
    /// # Errors
    /// [`AccelError::InvalidConfig`] when `threshold` is negative or NaN, or `dense` has more than `u32::MAX`
    /// columns (column indices are stored as `u32` to halve their bytes).
    pub fn from_dense(dense: ArrayView2<'_, f32>, threshold: f32) -> Result<CsrMatrix, AccelError> {
        if threshold.is_nan() || threshold < 0.0 {
            return Err(AccelError::InvalidConfig {
                what: format!("sparsity threshold must be >= 0, got {threshold}"),
            });
        }
        let (rows, cols) = dense.dim();
        if u32::try_from(cols).is_err() {
            return Err(AccelError::InvalidConfig {
                what: format!("{cols} columns do not fit u32 column indices"),
            });
        }
        let mut row_offsets = Vec::with_capacity(rows + 1);
        let mut col_indices = Vec::new();
        let mut values = Vec::new();
        row_offsets.push(0);
        for row in dense.rows() {
            for (col_idx, &value) in row.iter().enumerate() {
                // NaN is kept (its magnitude is not comparable), so pruning never hides a NaN weight.
                if value.abs() > threshold || value.is_nan() {
                    col_indices.push(col_idx as u32);
                    values.push(value);
                }
            }
            row_offsets.push(values.len());
        }
        col_indices.shrink_to_fit();
        values.shrink_to_fit();
        Ok(CsrMatrix {
            rows,
            cols,
            row_offsets,
            col_indices,
            values,
        })
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// `nnz / (rows · cols)`, 0 for an empty matrix.
    pub fn density(&self) -> f64 {
        let total = self.rows * self.cols;
        if total == 0 {
            return 0.0;
        }
        self.nnz() as f64 / total as f64
    }

    /// Bytes of the storage that really exists: `nnz` f32 values, `nnz` u32 column indices and `rows + 1` usize
    /// row offsets (lengths, not capacities, after `shrink_to_fit`).
    pub fn storage_bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<f32>()
            + self.col_indices.len() * std::mem::size_of::<u32>()
            + self.row_offsets.len() * std::mem::size_of::<usize>()
    }

    /// Bytes the same matrix takes dense (`rows · cols` f32 values), for comparison.
    pub fn dense_bytes(&self) -> usize {
        self.rows * self.cols * std::mem::size_of::<f32>()
    }

    /// The matrix back in dense form (pruned entries are zero).
    pub fn to_dense(&self) -> Array2<f32> {
        let mut dense = Array2::zeros((self.rows, self.cols));
        for row_idx in 0..self.rows {
            for entry in self.row_offsets[row_idx]..self.row_offsets[row_idx + 1] {
                dense[[row_idx, self.col_indices[entry] as usize]] = self.values[entry];
            }
        }
        dense
    }

    /// `self · b` for a dense `b`.
    ///
    /// # Errors
    /// [`AccelError::ShapeMismatch`] when `b.nrows() != self.shape()[1]`.
    pub fn matmul_dense(&self, b: ArrayView2<'_, f32>) -> Result<Array2<f32>, AccelError> {
        AccelError::check_product(self.shape(), dims(&b), [self.rows, b.ncols()])?;
        let mut product = Array2::zeros((self.rows, b.ncols()));
        self.matmul_dense_into(b, product.view_mut(), false)?;
        Ok(product)
    }

    /// `c = self · b`, or `c += self · b` when `accumulate`. Row `i` of `c` gathers `value · b[col, ..]` over
    /// row `i`'s stored entries, so the inner loop runs along contiguous rows of `b` and `c`.
    ///
    /// # Errors
    /// [`AccelError::ShapeMismatch`], [`AccelError::OutputShapeMismatch`].
    pub fn matmul_dense_into(
        &self,
        b: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) -> Result<(), AccelError> {
        AccelError::check_product(self.shape(), dims(&b), dims(&c))?;
        if !accumulate {
            c.fill(0.0);
        }
        for (row_idx, mut c_row) in c.rows_mut().into_iter().enumerate() {
            for entry in self.row_offsets[row_idx]..self.row_offsets[row_idx + 1] {
                axpy(
                    c_row.view_mut(),
                    self.values[entry],
                    b.row(self.col_indices[entry] as usize),
                );
            }
        }
        Ok(())
    }

    /// `y = self · x`, or `y += self · x` when `accumulate`, for one vector (`x.len() == cols`,
    /// `y.len() == rows`): one sparse dot product per row, with no view to build and nothing to transpose. This is
    /// the batch-1 product of a layer stored as CSR of `Wᵀ` (`out × in`): `y_j = Σ W[i, j] · x_i` over output
    /// `j`'s surviving inputs. Without `accumulate` the previous contents of `y` are never read.
    ///
    /// # Errors
    /// [`AccelError::ShapeMismatch`] for the wrong lengths.
    pub fn vector_product_into(
        &self,
        x: &[f32],
        y: &mut [f32],
        accumulate: bool,
    ) -> Result<(), AccelError> {
        if x.len() != self.cols || y.len() != self.rows {
            return Err(AccelError::ShapeMismatch {
                a_shape: self.shape(),
                b_shape: [x.len(), 1],
            });
        }
        for (row_idx, output) in y.iter_mut().enumerate() {
            let entries = self.row_offsets[row_idx]..self.row_offsets[row_idx + 1];
            let (col_indices, values) = (&self.col_indices[entries.clone()], &self.values[entries]);
            // Four partial sums: one running sum is a chain of dependent adds, four times slower.
            let mut partial = [0.0f32; 4];
            let mut index_chunks = col_indices.chunks_exact(4);
            let mut value_chunks = values.chunks_exact(4);
            for (indices, weights) in index_chunks.by_ref().zip(value_chunks.by_ref()) {
                for lane in 0..4 {
                    partial[lane] += weights[lane] * x[indices[lane] as usize];
                }
            }
            let mut sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
            for (&col_idx, &value) in index_chunks
                .remainder()
                .iter()
                .zip(value_chunks.remainder())
            {
                sum += value * x[col_idx as usize];
            }
            *output = if accumulate { *output + sum } else { sum };
        }
        Ok(())
    }
}
