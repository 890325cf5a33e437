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

/// `e^x` for f32 without a libm call, so that loops over it vectorize: `x = k·ln 2 + r` with
/// |r| ≤ ln 2 / 2, a degree-6 Taylor polynomial for `e^r` (relative error below 3e-7 there), and
/// `2^k` built in the exponent bits. Inputs are clamped to [−87, 88] (the normal f32 range), so
/// −∞ gives about 1.6e-38, which is 0 for every use here (softmax weights, GELU).
#[inline]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LN_2_HIGH: f32 = 0.693_145_75;
    const LN_2_LOW: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5 · 2²³ (exact for |y| < 2²²): `f32::round`
    // is a libm call on the baseline x86-64 target and keeps the loop from vectorizing.
    const ROUNDER: f32 = 12_582_912.0;
    let k = (x * std::f32::consts::LOG2_E + ROUNDER) - ROUNDER;
    let r = x - k * LN_2_HIGH - k * LN_2_LOW;
    let polynomial = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    polynomial * scale
}

/// GELU, tanh approximation (GPT-2's), in place; `tanh(y) = 1 − 2 / (1 + e^{2y})` through
/// [`fast_exp`] (the libm `tanhf` call cost a third of a full recompute).
pub(crate) fn gelu_in_place(mut x: ArrayViewMut2<'_, f32>) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    x.mapv_inplace(|v| {
        let y = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
        let tanh = 1.0 - 2.0 / (1.0 + fast_exp(2.0 * y));
        0.5 * v * (1.0 + tanh)
    });
}

/// Softmax of each row over its first `visible(row)` entries; the rest become 0 (the causal mask).
/// `scores` must have contiguous rows.
pub(crate) fn masked_softmax_rows(
    mut scores: ArrayViewMut2<'_, f32>,
    scale: f32,
    visible: impl Fn(usize) -> usize,
) {
    for (row_idx, mut row) in scores.rows_mut().into_iter().enumerate() {
        let row = row
            .as_slice_mut()
            .expect("score rows are contiguous (owned row-major scratch)");
        let visible_count = visible(row_idx).min(row.len());
        let (seen, masked) = row.split_at_mut(visible_count);
        masked.fill(0.0);
        let maximum = seen.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
        for v in seen.iter_mut() {
            *v = fast_exp(*v * scale - maximum);
        }
        let inverse = 1.0 / seen.iter().sum::<f32>();
        for v in seen.iter_mut() {
            *v *= inverse;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm_over_the_softmax_and_gelu_range() {
        let mut worst = 0.0f64;
        for step in -8700..=8800 {
            let x = step as f32 / 100.0;
            let exact = f64::from(x).exp();
            let relative = (f64::from(fast_exp(x)) - exact).abs() / exact;
            worst = worst.max(relative);
        }
        // Polynomial truncation error is below 3e-7; f32 rounding of r adds a few ulps.
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert!(fast_exp(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(fast_exp(0.0), 1.0);
    }
}
