//! Row-wise operations of the transformer that are not matrix products: LayerNorm, GELU, bias,
//! softmax, and the sinusoidal table. Plain loops over contiguous rows.

use ndarray::{Array2, ArrayView1, ArrayViewMut2};

/// `x ← (x − mean) / sqrt(var + ε) · gain + bias`, row by row, into `out`.
pub(crate) fn layer_norm_into(
    x: ndarray::ArrayView2<'_, f32>,
    gain: ArrayView1<'_, f32>,
    bias: ArrayView1<'_, f32>,
    epsilon: f32,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let width = x.ncols() as f32;
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        let mean = row.sum() / width;
        let variance = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / width;
        let inverse = 1.0 / (variance + epsilon).sqrt();
        for (((o, &v), &g), &b) in out_row.iter_mut().zip(row).zip(gain).zip(bias) {
            *o = (v - mean) * inverse * g + b;
        }
    }
}

/// Add `bias` to every row.
pub(crate) fn add_bias(mut x: ArrayViewMut2<'_, f32>, bias: ArrayView1<'_, f32>) {
    for mut row in x.rows_mut() {
        row += &bias;
    }
}

/// GELU, tanh approximation (GPT-2's), in place.
pub(crate) fn gelu_in_place(mut x: ArrayViewMut2<'_, f32>) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    x.mapv_inplace(|v| 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v)).tanh()));
}

/// Softmax of each row over its first `visible[row]` entries; the rest become 0 (the causal mask).
pub(crate) fn masked_softmax_rows(mut scores: ArrayViewMut2<'_, f32>, scale: f32, visible: impl Fn(usize) -> usize) {
    for (row_idx, mut row) in scores.rows_mut().into_iter().enumerate() {
        let visible_count = visible(row_idx).min(row.len());
        let mut maximum = f32::NEG_INFINITY;
        for &v in row.iter().take(visible_count) {
            maximum = maximum.max(v * scale);
        }
        let mut total = 0.0f32;
        for (col_idx, v) in row.iter_mut().enumerate() {
            if col_idx < visible_count {
                *v = (*v * scale - maximum).exp();
                total += *v;
            } else {
                *v = 0.0;
            }
        }
        let inverse = 1.0 / total;
        row.iter_mut().take(visible_count).for_each(|v| *v *= inverse);
    }
}

/// The sinusoidal table: `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(…)`.
pub(crate) fn sinusoidal_table(max_seq_len: usize, d_model: usize) -> Array2<f32> {
    Array2::from_shape_fn((max_seq_len, d_model), |(position, dim)| {
        let pair = (dim / 2) as f64;
        let angle = position as f64 / 10_000f64.powf(2.0 * pair / d_model as f64);
        if dim % 2 == 0 {
            angle.sin() as f32
        } else {
            angle.cos() as f32
        }
    })
}
