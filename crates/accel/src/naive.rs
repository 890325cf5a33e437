//! The two reference loops: textbook i-j-k and the cache-friendlier i-k-j. Safe, portable, slow on purpose.
//!
//! Both trust their caller (the dispatcher) to have checked shapes: `a` is `m × k`, `b` is `k × n`, `c` is `m × n`.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

/// Textbook `c[i, j] = Σ_p a[i, p] · b[p, j]`: the innermost loop walks down a column of `b`, one cache line per
/// element once `b` is large, which is why it collapses at big sizes.
pub(crate) fn matmul_ijk(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    for row_idx in 0..m {
        for col_idx in 0..n {
            let mut sum = 0.0f32;
            for inner_idx in 0..k {
                sum += a[[row_idx, inner_idx]] * b[[inner_idx, col_idx]];
            }
            let out = &mut c[[row_idx, col_idx]];
            *out = if accumulate { *out + sum } else { sum };
        }
    }
}

/// The i-k-j order: for each row of `a`, add `a[i, p] ·` row `p` of `b` into row `i` of `c`. The inner loop runs
/// along contiguous rows, so the compiler vectorizes it; but all of `b` is streamed once per row of `c`.
pub(crate) fn matmul_ikj(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    if !accumulate {
        c.fill(0.0);
    }
    let k = a.ncols();
    for (a_row, mut c_row) in a.rows().into_iter().zip(c.rows_mut()) {
        for inner_idx in 0..k {
            axpy(c_row.view_mut(), a_row[inner_idx], b.row(inner_idx));
        }
    }
}

/// `y += alpha · x`, on slices when both are contiguous (so the loop vectorizes), element-wise otherwise.
#[inline]
pub(crate) fn axpy(mut y: ArrayViewMut1<'_, f32>, alpha: f32, x: ArrayView1<'_, f32>) {
    match (y.as_slice_mut(), x.as_slice()) {
        (Some(y), Some(x)) => {
            for (y_value, x_value) in y.iter_mut().zip(x) {
                *y_value += alpha * x_value;
            }
        }
        _ => Zip::from(&mut y)
            .and(&x)
            .for_each(|y_value, &x_value| *y_value += alpha * x_value),
    }
}
