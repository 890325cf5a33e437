//! Naive reference kernels for every layer kind, generic over an [`Arithmetic`] counter: with an
//! [`OpCounter`] they count every multiply–add and every other operation they really perform, so
//! the analytic counts of [`crate::layer`] can be checked by execution; with [`NoCount`] the same
//! code compiles to plain arithmetic and serves as the executable path for the layers that have no
//! faster one.
//!
//! Every arithmetic operation in this file goes through the counter; a bare `+` or `*` on
//! activation or weight values here would be an uncounted operation, so there are none (index
//! arithmetic aside).

use crate::layer::{
    Activation, ActivationSpec, AttentionMode, AttentionSpec, Conv2dSpec, LayerNormSpec,
    LinearSpec, Pool2dSpec, PoolKind,
};
use serde::{Deserialize, Serialize};

/// Arithmetic on f32 values that may count what it does.
pub trait Arithmetic {
    /// Record one multiply–add.
    fn count_multiply_add(&mut self);
    /// Record one other operation.
    fn count_op(&mut self);

    /// `acc + a · b`, one multiply–add.
    #[inline(always)]
    fn mul_add(&mut self, acc: f32, a: f32, b: f32) -> f32 {
        self.count_multiply_add();
        acc + a * b
    }
    /// `a + b`.
    #[inline(always)]
    fn add(&mut self, a: f32, b: f32) -> f32 {
        self.count_op();
        a + b
    }
    /// `a − b`.
    #[inline(always)]
    fn sub(&mut self, a: f32, b: f32) -> f32 {
        self.count_op();
        a - b
    }
    /// `a · b`.
    #[inline(always)]
    fn mul(&mut self, a: f32, b: f32) -> f32 {
        self.count_op();
        a * b
    }
    /// `a / b`.
    #[inline(always)]
    fn div(&mut self, a: f32, b: f32) -> f32 {
        self.count_op();
        a / b
    }
    /// `max(a, b)`.
    #[inline(always)]
    fn max(&mut self, a: f32, b: f32) -> f32 {
        self.count_op();
        a.max(b)
    }
    /// `e^a`.
    #[inline(always)]
    fn exp(&mut self, a: f32) -> f32 {
        self.count_op();
        a.exp()
    }
    /// `√a`.
    #[inline(always)]
    fn sqrt(&mut self, a: f32) -> f32 {
        self.count_op();
        a.sqrt()
    }
    /// `tanh a`.
    #[inline(always)]
    fn tanh(&mut self, a: f32) -> f32 {
        self.count_op();
        a.tanh()
    }
}

/// Counts operations as they are executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounter {
    /// Multiply–adds executed.
    pub multiply_adds: u64,
    /// Other operations executed.
    pub other_ops: u64,
}

impl OpCounter {
    /// `2 × multiply_adds + other_ops`, the crate's FLOP convention.
    pub fn flops(&self) -> u64 {
        2 * self.multiply_adds + self.other_ops
    }
}

impl Arithmetic for OpCounter {
    #[inline(always)]
    fn count_multiply_add(&mut self) {
        self.multiply_adds += 1;
    }
    #[inline(always)]
    fn count_op(&mut self) {
        self.other_ops += 1;
    }
}

/// Counts nothing: plain arithmetic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCount;

impl Arithmetic for NoCount {
    #[inline(always)]
    fn count_multiply_add(&mut self) {}
    #[inline(always)]
    fn count_op(&mut self) {}
}

/// `rows × in` times a row-major `in × out` weight, plus a bias.
pub(crate) fn linear<C: Arithmetic>(
    counter: &mut C,
    input: &[f32],
    rows: usize,
    in_features: usize,
    out_features: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut output = vec![0.0f32; rows * out_features];
    for row in 0..rows {
        let x = &input[row * in_features..(row + 1) * in_features];
        for out_idx in 0..out_features {
            let mut acc = 0.0f32;
            for (in_idx, &value) in x.iter().enumerate() {
                acc = counter.mul_add(acc, value, weight[in_idx * out_features + out_idx]);
            }
            if let Some(bias) = bias {
                acc = counter.add(acc, bias[out_idx]);
            }
            output[row * out_features + out_idx] = acc;
        }
    }
    output
}

/// A linear layer's spec applied to `batch` items.
pub(crate) fn linear_layer<C: Arithmetic>(
    counter: &mut C,
    spec: &LinearSpec,
    input: &[f32],
    batch: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    linear(
        counter,
        input,
        batch * spec.positions,
        spec.in_features,
        spec.out_features,
        weight,
        bias,
    )
}

/// Direct convolution over every tap, padding taps included (they read zero).
pub(crate) fn conv2d<C: Arithmetic>(
    counter: &mut C,
    spec: &Conv2dSpec,
    input: &[f32],
    batch: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (out_h, out_w) = spec.output().unwrap_or((0, 0));
    let (in_h, in_w) = spec.input;
    let (kernel_h, kernel_w) = spec.kernel;
    let in_per_group = spec.in_channels / spec.groups;
    let out_per_group = spec.out_channels / spec.groups;
    let mut output = vec![0.0f32; batch * spec.out_channels * out_h * out_w];
    for item in 0..batch {
        for out_channel in 0..spec.out_channels {
            let group = out_channel / out_per_group;
            for out_y in 0..out_h {
                for out_x in 0..out_w {
                    let mut acc = 0.0f32;
                    for group_channel in 0..in_per_group {
                        let in_channel = group * in_per_group + group_channel;
                        for ky in 0..kernel_h {
                            for kx in 0..kernel_w {
                                let y = (out_y * spec.stride.0 + ky * spec.dilation.0) as isize
                                    - spec.padding.0 as isize;
                                let x = (out_x * spec.stride.1 + kx * spec.dilation.1) as isize
                                    - spec.padding.1 as isize;
                                let inside =
                                    0 <= y && y < in_h as isize && 0 <= x && x < in_w as isize;
                                let value = if inside {
                                    input[((item * spec.in_channels + in_channel) * in_h
                                        + y as usize)
                                        * in_w
                                        + x as usize]
                                } else {
                                    0.0
                                };
                                let w = weight[((out_channel * in_per_group + group_channel)
                                    * kernel_h
                                    + ky)
                                    * kernel_w
                                    + kx];
                                acc = counter.mul_add(acc, value, w);
                            }
                        }
                    }
                    if let Some(bias) = bias {
                        acc = counter.add(acc, bias[out_channel]);
                    }
                    output[((item * spec.out_channels + out_channel) * out_h + out_y) * out_w
                        + out_x] = acc;
                }
            }
        }
    }
    output
}

/// Keys (or values) each batch item attends to: the cached rows (decode) followed by the new ones.
pub(crate) fn attended_rows(
    spec: &AttentionSpec,
    batch: usize,
    new_rows: &[f32],
    cache: &[f32],
) -> Vec<f32> {
    let d = spec.d_model;
    match spec.mode {
        AttentionMode::Prefill { .. } => new_rows.to_vec(),
        AttentionMode::Decode { context_len } => {
            let cached = context_len - 1;
            let mut rows = Vec::with_capacity(batch * context_len * d);
            for item in 0..batch {
                rows.extend_from_slice(&cache[item * cached * d..(item + 1) * cached * d]);
                rows.extend_from_slice(&new_rows[item * d..(item + 1) * d]);
            }
            rows
        }
    }
}

/// Scaled dot-product attention over heads: `softmax(Q Kᵀ / √d_head) V` for every batch item.
/// `queries` is `batch × q × d`, `keys` and `values` are `batch × keys × d`.
pub(crate) fn attention_core<C: Arithmetic>(
    counter: &mut C,
    spec: &AttentionSpec,
    batch: usize,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
) -> Vec<f32> {
    let d = spec.d_model;
    let head_dim = spec.head_dim();
    let (query_len, key_len) = (spec.query_len(), spec.key_len());
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut output = vec![0.0f32; batch * query_len * d];
    let mut scores = vec![0.0f32; key_len];
    for item in 0..batch {
        for head in 0..spec.heads {
            let offset = head * head_dim;
            for query in 0..query_len {
                let q = &queries[(item * query_len + query) * d + offset..][..head_dim];
                let mut maximum = f32::NEG_INFINITY;
                for (key, score) in scores.iter_mut().enumerate() {
                    let k = &keys[(item * key_len + key) * d + offset..][..head_dim];
                    let mut acc = 0.0f32;
                    for (&a, &b) in q.iter().zip(k) {
                        acc = counter.mul_add(acc, a, b);
                    }
                    *score = counter.mul(acc, scale);
                    maximum = counter.max(maximum, *score);
                }
                let mut sum = 0.0f32;
                for score in scores.iter_mut() {
                    let shifted = counter.sub(*score, maximum);
                    *score = counter.exp(shifted);
                    sum = counter.add(sum, *score);
                }
                for score in scores.iter_mut() {
                    *score = counter.div(*score, sum);
                }
                let out = &mut output[(item * query_len + query) * d + offset..][..head_dim];
                for (key, &probability) in scores.iter().enumerate() {
                    let v = &values[(item * key_len + key) * d + offset..][..head_dim];
                    for (slot, &value) in out.iter_mut().zip(v) {
                        *slot = counter.mul_add(*slot, probability, value);
                    }
                }
            }
        }
    }
    output
}

/// Layer normalization of each row, then `γ · x̂ + β`.
pub(crate) fn layer_norm<C: Arithmetic>(
    counter: &mut C,
    spec: &LayerNormSpec,
    input: &[f32],
    batch: usize,
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f32> {
    const EPSILON: f32 = 1e-5;
    let features = spec.features;
    let width = features as f32;
    let mut output = vec![0.0f32; input.len()];
    for row in 0..batch * spec.positions {
        let x = &input[row * features..(row + 1) * features];
        let mut sum = 0.0f32;
        for &value in x {
            sum = counter.add(sum, value);
        }
        let mean = counter.div(sum, width);
        let mut squares = 0.0f32;
        for &value in x {
            let difference = counter.sub(value, mean);
            squares = counter.mul_add(squares, difference, difference);
        }
        let variance = counter.div(squares, width);
        let shifted = counter.add(variance, EPSILON);
        let deviation = counter.sqrt(shifted);
        let reciprocal = counter.div(1.0, deviation);
        let y = &mut output[row * features..(row + 1) * features];
        for (index, (&value, slot)) in x.iter().zip(y.iter_mut()).enumerate() {
            let centered = counter.sub(value, mean);
            let normalized = counter.mul(centered, reciprocal);
            *slot = counter.mul_add(beta[index], normalized, gamma[index]);
        }
    }
    output
}

/// One activation value.
#[inline(always)]
pub(crate) fn activate<C: Arithmetic>(counter: &mut C, function: Activation, x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    match function {
        Activation::Relu => counter.max(x, 0.0),
        Activation::Tanh => counter.tanh(x),
        Activation::Sigmoid => {
            let exponential = counter.exp(-x);
            let denominator = counter.add(1.0, exponential);
            counter.div(1.0, denominator)
        }
        Activation::Silu => {
            let sigmoid = activate(counter, Activation::Sigmoid, x);
            counter.mul(x, sigmoid)
        }
        Activation::Gelu => {
            let square = counter.mul(x, x);
            let cube = counter.mul(square, x);
            let scaled_cube = counter.mul(0.044_715, cube);
            let inner = counter.add(x, scaled_cube);
            let argument = counter.mul(SQRT_2_OVER_PI, inner);
            let t = counter.tanh(argument);
            let half_x = counter.mul(0.5, x);
            let one_plus = counter.add(1.0, t);
            counter.mul(half_x, one_plus)
        }
    }
}

/// An activation over a whole buffer.
pub(crate) fn activation<C: Arithmetic>(
    counter: &mut C,
    spec: &ActivationSpec,
    input: &[f32],
) -> Vec<f32> {
    input
        .iter()
        .map(|&x| activate(counter, spec.function, x))
        .collect()
}

/// Max or average pooling over every tap of every window.
pub(crate) fn pool2d<C: Arithmetic>(
    counter: &mut C,
    spec: &Pool2dSpec,
    input: &[f32],
    batch: usize,
) -> Vec<f32> {
    let (out_h, out_w) = spec.output().unwrap_or((0, 0));
    let (in_h, in_w) = spec.input;
    let window = (spec.kernel.0 * spec.kernel.1) as f32;
    let mut output = vec![0.0f32; batch * spec.channels * out_h * out_w];
    for plane in 0..batch * spec.channels {
        let x = &input[plane * in_h * in_w..(plane + 1) * in_h * in_w];
        for out_y in 0..out_h {
            for out_x in 0..out_w {
                let mut acc = match spec.kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Average => 0.0,
                };
                for ky in 0..spec.kernel.0 {
                    for kx in 0..spec.kernel.1 {
                        let y = (out_y * spec.stride.0 + ky) as isize - spec.padding.0 as isize;
                        let x_pos = (out_x * spec.stride.1 + kx) as isize - spec.padding.1 as isize;
                        let inside =
                            0 <= y && y < in_h as isize && 0 <= x_pos && x_pos < in_w as isize;
                        let value = if inside {
                            Some(x[y as usize * in_w + x_pos as usize])
                        } else {
                            None
                        };
                        acc = match spec.kind {
                            PoolKind::Max => counter.max(acc, value.unwrap_or(f32::NEG_INFINITY)),
                            PoolKind::Average => counter.add(acc, value.unwrap_or(0.0)),
                        };
                    }
                }
                if spec.kind == PoolKind::Average {
                    acc = counter.div(acc, window);
                }
                output[(plane * out_h + out_y) * out_w + out_x] = acc;
            }
        }
    }
    output
}
