//! Layer descriptions and their analytic costs: parameters, multiply–adds, FLOPs and compulsory
//! memory traffic for a batch size; a model as a checked sequence of layers.
//!
//! # The FLOP convention
//!
//! `flops = 2 × multiply_adds + other_ops`. A multiply–add (`acc += a · b`) is two floating-point
//! operations, the convention of every GFLOP/s figure in TorchPerf. Every other arithmetic
//! operation (add, subtract, multiply, divide, max, exp, sqrt, tanh) is one; sign flips and copies
//! are free. The per-kind rules below are exactly what the reference kernels in
//! [`crate::reference`] execute, and the tests check that the two agree by running them:
//!
//! | kind | multiply–adds | other operations |
//! |---|---|---|
//! | linear | rows · in · out | rows · out bias adds |
//! | conv2d | N · C_out · H_out · W_out · (C_in / groups) · K_h · K_w, padding taps included (as a GEMM lowering performs them) | N · C_out · H_out · W_out bias adds |
//! | attention | 4 · rows · d² (Q, K, V, output projections) + 2 · N · q · keys · d (scores, weighted sum) | 4 · rows · d bias adds + 6 per score (scale, max, subtract, exp, sum, divide) |
//! | layer norm | 2 · d per row (variance, affine) | 4 · d + 5 per row |
//! | activation | 0 | per element: ReLU 1, tanh 1, sigmoid 3, SiLU 4, GELU (tanh form) 9 |
//! | embedding | 0 | 0 (a lookup) |
//! | pool2d | 0 | max: K_h · K_w per output; average: K_h · K_w + 1 per output |
//!
//! `rows` is batch × positions (tokens); for attention `q` is the query positions (the sequence in
//! prefill, 1 in decode) and `keys` the positions attended.

mod model;
mod spec;

pub use model::*;
pub use spec::*;

use crate::error::ProfilingError;
use serde::{Deserialize, Serialize};

/// Bytes of one stored value (f32 everywhere in this crate's executable models).
pub const BYTES_PER_VALUE: u64 = 4;

/// Costs of one layer for one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Batch size the costs are for.
    pub batch: usize,
    /// Learned parameters (independent of the batch).
    pub parameters: u64,
    /// Multiply–adds.
    pub multiply_adds: u64,
    /// Other floating-point operations, one each.
    pub other_ops: u64,
    /// `2 × multiply_adds + other_ops`.
    pub flops: u64,
    /// Bytes of the layer's input activations (token ids count as one value each).
    pub input_bytes: u64,
    /// Bytes of parameters and state read (weights; the KV cache in decode; only the rows an
    /// embedding looks up).
    pub weight_bytes: u64,
    /// Bytes of the layer's output activations.
    pub output_bytes: u64,
}

impl LayerCost {
    /// Compulsory memory traffic: inputs, weights and outputs each moved once.
    pub fn compulsory_bytes(&self) -> u64 {
        self.input_bytes + self.weight_bytes + self.output_bytes
    }

    /// Arithmetic intensity in FLOPs per byte of compulsory traffic.
    pub fn arithmetic_intensity(&self) -> f64 {
        self.flops as f64 / self.compulsory_bytes().max(1) as f64
    }
}

/// A validated, named layer. Built only through [`Layer::new`], so every `Layer` has sizes that
/// fit together and its costs can be computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    name: String,
    spec: LayerSpec,
}

fn positive(layer: &str, field: &'static str, value: usize) -> Result<(), ProfilingError> {
    if value == 0 {
        return Err(ProfilingError::ZeroDimension {
            layer: layer.to_string(),
            field,
        });
    }
    Ok(())
}

fn check_window(
    layer: &str,
    input: (usize, usize),
    kernel: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Result<(), ProfilingError> {
    for (axis, input, kernel, padding, dilation) in [
        ("height", input.0, kernel.0, padding.0, dilation.0),
        ("width", input.1, kernel.1, padding.1, dilation.1),
    ] {
        let kernel_extent = dilation.saturating_mul(kernel - 1).saturating_add(1);
        let padded_input = input.saturating_add(padding.saturating_mul(2));
        if kernel_extent > padded_input {
            return Err(ProfilingError::KernelLargerThanInput {
                layer: layer.to_string(),
                axis,
                kernel_extent,
                padded_input,
            });
        }
    }
    Ok(())
}

impl Layer {
    /// A named layer, validated.
    ///
    /// # Errors
    /// [`ProfilingError::ZeroDimension`] for any zero size; [`ProfilingError::KernelLargerThanInput`]
    /// when a (dilated) kernel or pooling window exceeds the padded input;
    /// [`ProfilingError::GroupsMismatch`], [`ProfilingError::HeadsMismatch`],
    /// [`ProfilingError::PaddingTooLarge`] for sizes that do not divide or fit.
    pub fn new(name: impl Into<String>, spec: LayerSpec) -> Result<Self, ProfilingError> {
        let name = name.into();
        let layer = name.as_str();
        match spec {
            LayerSpec::Linear(s) => {
                positive(layer, "in_features", s.in_features)?;
                positive(layer, "out_features", s.out_features)?;
                positive(layer, "positions", s.positions)?;
            }
            LayerSpec::Conv2d(s) => {
                positive(layer, "in_channels", s.in_channels)?;
                positive(layer, "out_channels", s.out_channels)?;
                positive(layer, "input height", s.input.0)?;
                positive(layer, "input width", s.input.1)?;
                positive(layer, "kernel height", s.kernel.0)?;
                positive(layer, "kernel width", s.kernel.1)?;
                positive(layer, "stride height", s.stride.0)?;
                positive(layer, "stride width", s.stride.1)?;
                positive(layer, "dilation height", s.dilation.0)?;
                positive(layer, "dilation width", s.dilation.1)?;
                positive(layer, "groups", s.groups)?;
                if s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0 {
                    return Err(ProfilingError::GroupsMismatch {
                        layer: name,
                        in_channels: s.in_channels,
                        out_channels: s.out_channels,
                        groups: s.groups,
                    });
                }
                check_window(layer, s.input, s.kernel, s.padding, s.dilation)?;
            }
            LayerSpec::Attention(s) => {
                positive(layer, "d_model", s.d_model)?;
                positive(layer, "heads", s.heads)?;
                match s.mode {
                    AttentionMode::Prefill { seq_len } => positive(layer, "seq_len", seq_len)?,
                    AttentionMode::Decode { context_len } => {
                        positive(layer, "context_len", context_len)?
                    }
                }
                if s.d_model % s.heads != 0 {
                    return Err(ProfilingError::HeadsMismatch {
                        layer: name,
                        d_model: s.d_model,
                        heads: s.heads,
                    });
                }
            }
            LayerSpec::LayerNorm(s) => {
                positive(layer, "features", s.features)?;
                positive(layer, "positions", s.positions)?;
            }
            LayerSpec::Activation(s) => positive(layer, "elements", s.elements)?,
            LayerSpec::Embedding(s) => {
                positive(layer, "vocab_size", s.vocab_size)?;
                positive(layer, "dim", s.dim)?;
                positive(layer, "positions", s.positions)?;
            }
            LayerSpec::Pool2d(s) => {
                positive(layer, "channels", s.channels)?;
                positive(layer, "input height", s.input.0)?;
                positive(layer, "input width", s.input.1)?;
                positive(layer, "kernel height", s.kernel.0)?;
                positive(layer, "kernel width", s.kernel.1)?;
                positive(layer, "stride height", s.stride.0)?;
                positive(layer, "stride width", s.stride.1)?;
                for (padding, kernel) in [(s.padding.0, s.kernel.0), (s.padding.1, s.kernel.1)] {
                    if 2 * padding > kernel {
                        return Err(ProfilingError::PaddingTooLarge {
                            layer: name,
                            padding,
                            kernel,
                        });
                    }
                }
                check_window(layer, s.input, s.kernel, s.padding, (1, 1))?;
            }
        }
        let layer = Self { name, spec };
        layer.check_sizes_fit()?;
        Ok(layer)
    }

    /// Every product the accessors compute in `usize` must fit, so that they never overflow.
    fn check_sizes_fit(&self) -> Result<(), ProfilingError> {
        let products: Vec<(&'static str, Vec<usize>)> = match self.spec {
            LayerSpec::Linear(s) => vec![
                ("parameters", vec![s.in_features, s.out_features]),
                ("input elements", vec![s.positions, s.in_features]),
                ("output elements", vec![s.positions, s.out_features]),
            ],
            LayerSpec::Conv2d(s) => vec![
                (
                    "parameters",
                    vec![s.out_channels, s.in_channels, s.kernel.0, s.kernel.1],
                ),
                ("input elements", vec![s.in_channels, s.input.0, s.input.1]),
                (
                    "output elements",
                    vec![
                        s.out_channels,
                        s.input.0.saturating_add(s.padding.0.saturating_mul(2)),
                        s.input.1.saturating_add(s.padding.1.saturating_mul(2)),
                    ],
                ),
            ],
            LayerSpec::Attention(s) => vec![
                ("parameters", vec![4, s.d_model, s.d_model]),
                ("input elements", vec![s.key_len(), s.d_model]),
                ("scores", vec![s.heads, s.query_len(), s.key_len()]),
            ],
            LayerSpec::LayerNorm(s) => vec![("elements", vec![s.positions, s.features])],
            LayerSpec::Activation(s) => vec![("elements", vec![s.elements])],
            LayerSpec::Embedding(s) => vec![
                ("parameters", vec![s.vocab_size, s.dim]),
                ("output elements", vec![s.positions, s.dim]),
            ],
            LayerSpec::Pool2d(s) => vec![(
                "input elements",
                vec![
                    s.channels,
                    s.input.0.saturating_add(s.padding.0.saturating_mul(2)),
                    s.input.1.saturating_add(s.padding.1.saturating_mul(2)),
                ],
            )],
        };
        // Headroom of 2^8 for the batch-free factors the costs multiply in (bytes, 4 projections).
        for (what, factors) in products {
            let fits = factors
                .iter()
                .try_fold(256usize, |acc, &factor| acc.checked_mul(factor))
                .is_some();
            if !fits {
                return Err(ProfilingError::Overflow {
                    layer: self.name.clone(),
                    what,
                });
            }
        }
        Ok(())
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the layer is.
    pub fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    /// Values per batch item the layer reads (token ids for an embedding).
    pub fn input_elements(&self) -> usize {
        match self.spec {
            LayerSpec::Linear(s) => s.positions * s.in_features,
            LayerSpec::Conv2d(s) => s.in_channels * s.input.0 * s.input.1,
            LayerSpec::Attention(s) => s.query_len() * s.d_model,
            LayerSpec::LayerNorm(s) => s.positions * s.features,
            LayerSpec::Activation(s) => s.elements,
            LayerSpec::Embedding(s) => s.positions,
            LayerSpec::Pool2d(s) => s.channels * s.input.0 * s.input.1,
        }
    }

    /// Values per batch item the layer writes.
    pub fn output_elements(&self) -> usize {
        match self.spec {
            LayerSpec::Linear(s) => s.positions * s.out_features,
            LayerSpec::Conv2d(s) => {
                let (height, width) = s.output().unwrap_or((0, 0));
                s.out_channels * height * width
            }
            LayerSpec::Attention(s) => s.query_len() * s.d_model,
            LayerSpec::LayerNorm(s) => s.positions * s.features,
            LayerSpec::Activation(s) => s.elements,
            LayerSpec::Embedding(s) => s.positions * s.dim,
            LayerSpec::Pool2d(s) => {
                let (height, width) = s.output().unwrap_or((0, 0));
                s.channels * height * width
            }
        }
    }

    /// Learned parameters.
    pub fn parameters(&self) -> u64 {
        let bias = |present: bool, count: usize| if present { count as u64 } else { 0 };
        match self.spec {
            LayerSpec::Linear(s) => {
                (s.in_features * s.out_features) as u64 + bias(s.bias, s.out_features)
            }
            LayerSpec::Conv2d(s) => {
                (s.out_channels * (s.in_channels / s.groups) * s.kernel.0 * s.kernel.1) as u64
                    + bias(s.bias, s.out_channels)
            }
            LayerSpec::Attention(s) => {
                4 * (s.d_model * s.d_model) as u64 + bias(s.bias, 4 * s.d_model)
            }
            LayerSpec::LayerNorm(s) => 2 * s.features as u64,
            LayerSpec::Activation(_) | LayerSpec::Pool2d(_) => 0,
            LayerSpec::Embedding(s) => (s.vocab_size * s.dim) as u64,
        }
    }

    /// Parameters, operations and traffic for `batch` items.
    ///
    /// # Errors
    /// [`ProfilingError::ZeroDimension`] for a zero batch; [`ProfilingError::Overflow`] when a count
    /// does not fit in 64 bits.
    pub fn cost(&self, batch: usize) -> Result<LayerCost, ProfilingError> {
        positive(&self.name, "batch", batch)?;
        let overflow = |what: &'static str| ProfilingError::Overflow {
            layer: self.name.clone(),
            what,
        };
        let product = |what: &'static str, factors: &[usize]| -> Result<u64, ProfilingError> {
            factors.iter().try_fold(1u64, |acc, &factor| {
                acc.checked_mul(factor as u64).ok_or_else(|| overflow(what))
            })
        };
        let batch_u64 = batch as u64;
        let (multiply_adds, other_ops, weight_bytes) = match self.spec {
            LayerSpec::Linear(s) => {
                let rows = batch * s.positions;
                let bias_adds = if s.bias {
                    product("bias adds", &[rows, s.out_features])?
                } else {
                    0
                };
                (
                    product("multiply-adds", &[rows, s.in_features, s.out_features])?,
                    bias_adds,
                    self.parameters() * BYTES_PER_VALUE,
                )
            }
            LayerSpec::Conv2d(s) => {
                let (out_h, out_w) = s.output().ok_or_else(|| overflow("output size"))?;
                let outputs = product("outputs", &[batch, s.out_channels, out_h, out_w])?;
                let taps = product("taps", &[s.in_channels / s.groups, s.kernel.0, s.kernel.1])?;
                (
                    outputs
                        .checked_mul(taps)
                        .ok_or_else(|| overflow("multiply-adds"))?,
                    if s.bias { outputs } else { 0 },
                    self.parameters() * BYTES_PER_VALUE,
                )
            }
            LayerSpec::Attention(s) => {
                let rows = batch * s.query_len();
                let projections = product("projections", &[4, rows, s.d_model, s.d_model])?;
                let scores = product("scores", &[batch, s.heads, s.query_len(), s.key_len()])?;
                let core = scores
                    .checked_mul(2 * s.head_dim() as u64)
                    .ok_or_else(|| overflow("multiply-adds"))?;
                let bias_adds = if s.bias {
                    product("bias adds", &[4, rows, s.d_model])?
                } else {
                    0
                };
                // Decode reads the cached keys and values of the earlier positions.
                let cache = match s.mode {
                    AttentionMode::Prefill { .. } => 0,
                    AttentionMode::Decode { context_len } => {
                        product("cache", &[2, batch, context_len - 1, s.d_model])?
                    }
                };
                (
                    projections + core,
                    bias_adds + 6 * scores,
                    (self.parameters() + cache) * BYTES_PER_VALUE,
                )
            }
            LayerSpec::LayerNorm(s) => {
                let rows = product("rows", &[batch, s.positions])?;
                (
                    rows * 2 * s.features as u64,
                    rows * (4 * s.features as u64 + 5),
                    self.parameters() * BYTES_PER_VALUE,
                )
            }
            LayerSpec::Activation(s) => (
                0,
                product("elements", &[batch, s.elements])? * s.function.ops_per_element(),
                0,
            ),
            LayerSpec::Embedding(s) => (
                0,
                0,
                product("rows read", &[batch, s.positions, s.dim])? * BYTES_PER_VALUE,
            ),
            LayerSpec::Pool2d(s) => {
                let (out_h, out_w) = s.output().ok_or_else(|| overflow("output size"))?;
                let outputs = product("outputs", &[batch, s.channels, out_h, out_w])?;
                let window = (s.kernel.0 * s.kernel.1) as u64;
                let per_output = match s.kind {
                    PoolKind::Max => window,
                    PoolKind::Average => window + 1,
                };
                (0, outputs * per_output, 0)
            }
        };
        let flops = multiply_adds
            .checked_mul(2)
            .and_then(|two_macs| two_macs.checked_add(other_ops))
            .ok_or_else(|| overflow("flops"))?;
        Ok(LayerCost {
            batch,
            parameters: self.parameters(),
            multiply_adds,
            other_ops,
            flops,
            input_bytes: batch_u64 * self.input_elements() as u64 * BYTES_PER_VALUE,
            weight_bytes,
            output_bytes: batch_u64 * self.output_elements() as u64 * BYTES_PER_VALUE,
        })
    }
}
