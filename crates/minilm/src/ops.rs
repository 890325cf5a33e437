//! Row-wise operations of the encoder that are not matrix products: LayerNorm, exact (erf) GELU, masked softmax,
//! per-token u8 quantization. The loops that call `exp` are compiled per vector width by `multiversion` (the
//! workspace builds for baseline x86-64, where a libm `expf` call per element would keep them scalar).

use multiversion::multiversion;

/// `e^x` without a libm call, so that loops over it vectorize: `x = k·ln 2 + r` with |r| ≤ ln 2 / 2, a degree-6
/// Taylor polynomial for `e^r` (relative error below 3e-7), and `2^k` built in the exponent bits. Inputs are
/// clamped to [−87, 88], so −∞ gives about 1.6e-38 (0 for every use here).
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LN_2_HIGH: f32 = 0.693_145_75;
    const LN_2_LOW: f32 = 1.428_606_8e-6;
    // Round to nearest by adding and subtracting 1.5 · 2²³ (`f32::round` is a libm call on the baseline target).
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + ROUNDER) - ROUNDER;
    let r = x - k * LN_2_HIGH - k * LN_2_LOW;
    let polynomial = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    polynomial * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), odd-extended.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let polynomial = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    sign * (1.0 - polynomial * fast_exp(-a * a))
}

/// BERT's GELU, `x · Φ(x) = ½ x (1 + erf(x / √2))`, in place.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn gelu_in_place(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Softmax of `scale · row` over its first `visible` entries (the sentence's real tokens); the rest become 0.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn masked_softmax(row: &mut [f32], visible: usize, scale: f32) {
    let (seen, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    let maximum = seen.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
    // Independent partial sums: one running sum is a dependent add per element and does not vectorize.
    let mut sums = [0.0f32; 16];
    let mut chunks = seen.chunks_exact_mut(16);
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

/// Sum of a slice in 16 independent f32 lanes (vectorizes; and the lanes are partial sums of at most
/// `len / 16` values each, so rounding grows like a pairwise sum's rather than a running sum's).
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (sum, &v) in sums.iter_mut().zip(chunk) {
            *sum += f(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    sums.iter().sum::<f32>() + tail
}

/// `row ← (row − mean) / sqrt(var + ε) · gain + bias`, two passes (mean, then the centred variance) in f32 lanes.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn layer_norm_row(row: &mut [f32], gain: &[f32], bias: &[f32], epsilon: f64) {
    let width = row.len() as f32;
    let mean = lane_sum(row, |v| v) / width;
    let variance = lane_sum(row, |v| (v - mean) * (v - mean)) / width;
    let inverse = (1.0 / (f64::from(variance) + epsilon).sqrt()) as f32;
    for ((v, &g), &b) in row.iter_mut().zip(gain).zip(bias) {
        *v = (*v - mean) * inverse * g + b;
    }
}

/// Affine u8 codes of one token's activations from its own min–max (the range always holds 0, so 0 is exact);
/// returns `(scale, zero_point)`.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn quantize_row_u8(row: &[f32], codes: &mut [u8]) -> (f32, i32) {
    // Independent partial minima and maxima (a single running one is a dependent chain that does not vectorize).
    let mut minima = [0.0f32; 16];
    let mut maxima = [0.0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        // `if` rather than `f32::min`: the NaN-propagation rules of `min` cost a compare and blend per lane (the
        // input is finite: NaN cannot reach a layer, the weights are checked on load).
        for ((minimum, maximum), &v) in minima.iter_mut().zip(maxima.iter_mut()).zip(chunk) {
            *minimum = if v < *minimum { v } else { *minimum };
            *maximum = if v > *maximum { v } else { *maximum };
        }
    }
    let mut minimum = minima.iter().fold(0.0f32, |m, &v| m.min(v));
    let mut maximum = maxima.iter().fold(0.0f32, |m, &v| m.max(v));
    for &v in chunks.remainder() {
        minimum = minimum.min(v);
        maximum = maximum.max(v);
    }
    let scale = if maximum > minimum {
        (maximum - minimum) / 255.0
    } else {
        1.0
    };
    const ROUNDER: f32 = 12_582_912.0;
    let zero_point = ((-minimum / scale + ROUNDER) - ROUNDER).clamp(0.0, 255.0);
    let inverse = 1.0 / scale;
    // Adding 1.5 · 2²³ rounds to nearest and leaves the integer in the low mantissa bits, so the code is read
    // from the bits: an `as` conversion saturates and maps NaN to 0, which the compiler does one lane at a time.
    for (code, &v) in codes.iter_mut().zip(row) {
        let clamped = (v * inverse + zero_point).clamp(0.0, 255.0);
        *code = ((clamped + ROUNDER).to_bits() & 0xff) as u8;
    }
    (scale, zero_point as i32)
}

/// The dynamic int8 epilogue of one output row: `out[j] = s_x · s_w[j] · (acc[j] − z_x · Σ_k W[k, j]) + b[j]`.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn dequantize_row(
    accumulators: &[i32],
    (row_scale, zero_point): (f32, i32),
    weight_scales: &[f32],
    column_sums: &[i32],
    bias: &[f32],
    out: &mut [f32],
) {
    for ((((o, &acc), &w_scale), &sum), &b) in out
        .iter_mut()
        .zip(accumulators)
        .zip(weight_scales)
        .zip(column_sums)
        .zip(bias)
    {
        *o = row_scale * w_scale * (acc - zero_point * sum) as f32 + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_the_erf_formula_in_f64() {
        // Reference erf from its Maclaurin series (converges fast for |x| ≤ 3; beyond, Φ is 0 or 1 to f32).
        fn erf64(x: f64) -> f64 {
            if x.abs() > 5.0 {
                return x.signum();
            }
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        }
        let inputs: Vec<f32> = (-80..=80).map(|i| i as f32 * 0.1).collect();
        let mut values = inputs.clone();
        gelu_in_place(&mut values);
        for (&x, &y) in inputs.iter().zip(&values) {
            let x64 = f64::from(x);
            let expected = 0.5 * x64 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            // A&S 7.1.26 is within 1.5e-7 absolute in erf, times |x|/2 ≤ 4, plus f32 rounding.
            assert!(
                (f64::from(y) - expected).abs() <= 1e-6,
                "gelu({x}) = {y}, expected {expected}"
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_over_the_visible_prefix_and_zeroes_the_rest() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let original = row.clone();
        masked_softmax(&mut row, 20, 0.5);
        let maximum = original[..20]
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v) * 0.5));
        let total: f64 = original[..20]
            .iter()
            .map(|&v| (f64::from(v) * 0.5 - maximum).exp())
            .sum();
        for (i, &p) in row.iter().enumerate() {
            let expected = if i < 20 {
                (f64::from(original[i]) * 0.5 - maximum).exp() / total
            } else {
                0.0
            };
            assert!(
                (f64::from(p) - expected).abs() <= 1e-6,
                "{i}: {p} vs {expected}"
            );
        }
    }

    #[test]
    fn per_token_codes_reconstruct_within_half_a_step() {
        let row: Vec<f32> = (0..100)
            .map(|i| (i as f32 * 0.71).cos() * 3.0 + 0.5)
            .collect();
        let mut codes = vec![0u8; row.len()];
        let (scale, zero_point) = quantize_row_u8(&row, &mut codes);
        for (&v, &code) in row.iter().zip(&codes) {
            let back = (i32::from(code) - zero_point) as f32 * scale;
            assert!(
                (back - v).abs() <= 0.5 * scale + 1e-6,
                "{v} -> {code} -> {back}"
            );
        }
        let mut zeros = vec![7u8; 4];
        assert_eq!(quantize_row_u8(&[0.0; 4], &mut zeros), (1.0, 0));
        assert_eq!(zeros, vec![0; 4]);
    }
}
