//! Row-wise operations of the transformer that are not matrix products: LayerNorm, GELU, bias,
//! softmax, and the sinusoidal table. Plain loops over contiguous rows; the softmax and GELU loops
//! are compiled per vector width and dispatched at run time (`multiversion`).

use multiversion::multiversion;
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
/// [`fast_exp`] (the libm `tanhf` call cost a third of a full recompute). A contiguous buffer runs
/// a loop compiled for the widest vector unit this CPU has (see [`gelu_slice`]).
pub(crate) fn gelu_in_place(mut x: ArrayViewMut2<'_, f32>) {
    match x.as_slice_mut() {
        Some(values) => gelu_slice(values),
        None => x.mapv_inplace(gelu),
    }
}

#[inline(always)]
fn gelu(v: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let y = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
    let tanh = 1.0 - 2.0 / (1.0 + fast_exp(2.0 * y));
    0.5 * v * (1.0 + tanh)
}

#[inline(always)]
fn gelu_slice_body(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = gelu(*v);
    }
}

/// The element-wise loops (GELU here, the softmax below) are plain Rust compiled three times by
/// `multiversion` — for AVX-512F, for AVX2 with FMA, and for the baseline target (SSE2 on x86-64) —
/// and the widest the CPU runs is picked at run time, so the default build vectorizes 16 lanes wide
/// where it can. Compiled for the baseline only, the softmax and GELU were 18% of a cached decode
/// step at 512 tokens of context.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
fn gelu_slice(values: &mut [f32]) {
    gelu_slice_body(values);
}

/// Independent partial maxima and sums of the softmax: a single running sum is one dependent add
/// per element and does not vectorize (float addition is not reassociated).
const LANES: usize = 16;

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
        softmax_row(row, visible_count, scale);
    }
}

/// [`softmax_row_body`] compiled per vector width (see [`gelu_slice`]).
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn softmax_row(row: &mut [f32], visible: usize, scale: f32) {
    softmax_row_body(row, visible, scale);
}

/// `row[..visible]` ← softmax(scale · row[..visible]), the rest ← 0. `scale` is positive.
#[inline(always)]
fn softmax_row_body(row: &mut [f32], visible: usize, scale: f32) {
    let (seen, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = seen.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (maximum, &value) in maxima.iter_mut().zip(chunk) {
            *maximum = maximum.max(value);
        }
    }
    let maximum = chunks
        .remainder()
        .iter()
        .chain(&maxima)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        * scale;
    let mut sums = [0.0f32; LANES];
    let mut chunks = seen.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (sum, value) in sums.iter_mut().zip(chunk.iter_mut()) {
            *value = fast_exp(*value * scale - maximum);
            *sum += *value;
        }
    }
    let mut total = 0.0f32;
    for value in chunks.into_remainder() {
        *value = fast_exp(*value * scale - maximum);
        total += *value;
    }
    let inverse = 1.0 / (total + sums.iter().sum::<f32>());
    for value in seen.iter_mut() {
        *value *= inverse;
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

    /// Softmax in f64 over the visible prefix, zeros after it.
    fn reference_softmax(row: &[f32], visible: usize, scale: f32) -> Vec<f64> {
        let seen: Vec<f64> = row[..visible]
            .iter()
            .map(|&v| f64::from(v) * f64::from(scale))
            .collect();
        let maximum = seen.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = seen.iter().map(|v| (v - maximum).exp()).sum();
        let mut out: Vec<f64> = seen.iter().map(|v| (v - maximum).exp() / total).collect();
        out.resize(row.len(), 0.0);
        out
    }

    /// The dispatched softmax (the widest this CPU runs) and the portable body (what a CPU without
    /// AVX2 runs) against f64 on many lengths, masks and spreads.
    #[test]
    fn softmax_matches_an_f64_reference_dispatched_and_portable() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for portable in [false, true] {
            for len in [1usize, 2, 15, 16, 17, 31, 33, 64, 100, 513] {
                for spread in [0.01f32, 1.0, 30.0] {
                    let rows = 3;
                    let data: Vec<f32> = (0..rows * len)
                        .map(|_| (next() - 0.5) * 2.0 * spread)
                        .collect();
                    let mut scores = Array2::from_shape_vec((rows, len), data.clone()).unwrap();
                    // Row r sees len − r entries (at least one): the causal mask of a prefill.
                    let visible = |row: usize| len.saturating_sub(row).max(1);
                    if portable {
                        for (row, mut values) in scores.rows_mut().into_iter().enumerate() {
                            softmax_row_body(values.as_slice_mut().unwrap(), visible(row), 0.5);
                        }
                    } else {
                        masked_softmax_rows(scores.view_mut(), 0.5, visible);
                    }
                    for row in 0..rows {
                        let expected =
                            reference_softmax(&data[row * len..(row + 1) * len], visible(row), 0.5);
                        for (col, (&got, &want)) in
                            scores.row(row).iter().zip(&expected).enumerate()
                        {
                            // fast_exp is within 1e-6 relative; the sum and the division add a few ulps.
                            assert!(
                                (f64::from(got) - want).abs() <= 4e-6 * want + 1e-12,
                                "portable {portable} len {len} spread {spread} row {row} col {col}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gelu_matches_the_tanh_formula_dispatched_portable_and_strided() {
        let values: Vec<f32> = (-400..=400).map(|i| i as f32 / 40.0).collect();
        let expected: Vec<f64> = values
            .iter()
            .map(|&v| {
                let v = f64::from(v);
                let y = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044_715 * v * v * v);
                0.5 * v * (1.0 + y.tanh())
            })
            .collect();
        let check = |got: &[f32], what: &str| {
            for (index, (&got, &want)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() <= 2e-6 * want.abs().max(1.0),
                    "{what} at {index}: {got} vs {want}"
                );
            }
        };
        let mut row = Array2::from_shape_vec((1, values.len()), values.clone()).unwrap();
        gelu_in_place(row.view_mut());
        check(row.as_slice().unwrap(), "dispatched");
        let mut portable = values.clone();
        gelu_slice_body(&mut portable);
        check(&portable, "portable");
        // A column view of a row-major matrix is not contiguous: the element-wise fallback.
        let mut wide = Array2::from_shape_vec(
            (values.len(), 2),
            values.iter().flat_map(|&v| [v, 0.0]).collect(),
        )
        .unwrap();
        gelu_in_place(wide.slice_mut(ndarray::s![.., 0..1]));
        check(&wide.column(0).to_vec(), "strided");
    }

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
