//! The reference models as plain ndarray structs with forward passes on the project's kernel.
//!
//! These hold trained weights exported from candle; they know nothing of candle. Quantization, KV-cache and
//! benchmark crates read and transform their public fields.

use ndarray::{s, Array2, Array4, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::shape_error;
use crate::kernel::matmul;
use crate::layers::{
    gelu, global_average_pool, max_pool2d, relu_in_place, Conv2d, DepthwiseConv2d, LayerNorm,
    Linear, Standardizer,
};
use crate::ZooError;

/// A classifier: maps a batch of feature rows to one row of class scores (logits) each.
pub trait Classifier {
    /// Logits, `batch × n_classes`, for `x` of shape `batch × n_features`.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when `x` has the wrong width; kernel errors.
    fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError>;
}

/// A multi-layer perceptron: `Linear → ReLU → … → Linear` (no activation after the last layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// The layers in order; each layer's `in_features` equals the previous layer's `out_features`.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// Runs the network on `x` (`batch × in_features`).
    ///
    /// # Errors
    /// [`ZooError::Shape`] when a layer's width does not match its input; kernel errors.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        let Some((last, hidden)) = self.layers.split_last() else {
            return Err(ZooError::InvalidArgument {
                reason: "MLP without layers".into(),
            });
        };
        let mut activations = x.to_owned();
        for layer in hidden {
            activations = layer.forward(activations.view())?;
            relu_in_place(&mut activations);
        }
        last.forward(activations.view())
    }

    /// Number of trainable parameters.
    pub fn n_parameters(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| layer.weight.len() + layer.bias.len())
            .sum()
    }
}

impl Classifier for Mlp {
    fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        self.forward(x)
    }
}

/// Reshapes `batch × (height · width · channels)` rows into an NHWC batch.
fn rows_to_nhwc(
    x: ArrayView2<'_, f32>,
    height: usize,
    width: usize,
    channels: usize,
) -> Result<Array4<f32>, ZooError> {
    if x.ncols() != height * width * channels {
        return Err(shape_error(
            "image rows",
            height * width * channels,
            x.ncols(),
        ));
    }
    x.as_standard_layout()
        .to_owned()
        .into_shape_with_order((x.nrows(), height, width, channels))
        .map_err(|error| shape_error("image rows", "reshape to NHWC", error))
}

/// A small CNN for 1-channel images: `conv3×3 → ReLU → maxpool2 → conv3×3 → ReLU → maxpool2 → Linear`.
///
/// The classifier reads the last feature map flattened in NHWC order (`H × W × C`, channels fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct Cnn {
    /// Input image height.
    pub image_height: usize,
    /// Input image width.
    pub image_width: usize,
    /// First convolution (1 → c1 channels, padding 1).
    pub conv1: Conv2d,
    /// Second convolution (c1 → c2 channels, padding 1).
    pub conv2: Conv2d,
    /// `c2 · (H/4) · (W/4) → n_classes`.
    pub classifier: Linear,
}

impl Classifier for Cnn {
    fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        let images = rows_to_nhwc(x, self.image_height, self.image_width, 1)?;
        let mut hidden = self.conv1.forward(images.view())?;
        relu_in_place(&mut hidden);
        let hidden = max_pool2d(hidden.view(), 2);
        let mut hidden = self.conv2.forward(hidden.view())?;
        relu_in_place(&mut hidden);
        let hidden = max_pool2d(hidden.view(), 2);
        let (batch, height, width, channels) = hidden.dim();
        let flat = hidden
            .into_shape_with_order((batch, height * width * channels))
            .map_err(|error| shape_error("Cnn flatten", "contiguous", error))?;
        self.classifier.forward(flat.view())
    }
}

/// One depthwise-separable block: depthwise 3×3 → ReLU → pointwise 1×1 (a matrix multiply) → ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseSeparableBlock {
    /// Per-channel spatial filter.
    pub depthwise: DepthwiseConv2d,
    /// Channel mixing, `channels × channels`, applied at every position.
    pub pointwise: Linear,
}

/// A DS-CNN keyword-spotting model in the style of MLPerf Tiny: standardize the MFCC window, a strided
/// convolution, depthwise-separable blocks, global average pooling, a linear classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct DsCnn {
    /// Frames per window (49).
    pub n_frames: usize,
    /// MFCC coefficients per frame (10).
    pub n_coefficients: usize,
    /// Per-feature standardization fitted on the training set; applied first.
    pub input_scaling: Standardizer,
    /// First convolution, 1 → channels, strided.
    pub conv: Conv2d,
    /// The depthwise-separable blocks.
    pub blocks: Vec<DepthwiseSeparableBlock>,
    /// `channels → n_classes`.
    pub classifier: Linear,
}

impl Classifier for DsCnn {
    fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        let scaled = self.input_scaling.apply(x)?;
        let windows = rows_to_nhwc(scaled.view(), self.n_frames, self.n_coefficients, 1)?;
        let mut hidden = self.conv.forward(windows.view())?;
        relu_in_place(&mut hidden);
        for block in &self.blocks {
            let mut spatial = block.depthwise.forward(hidden.view())?;
            relu_in_place(&mut spatial);
            let (batch, height, width, channels) = spatial.dim();
            let positions = spatial
                .into_shape_with_order((batch * height * width, channels))
                .map_err(|error| shape_error("DsCnn pointwise", "contiguous", error))?;
            let mut mixed = block.pointwise.forward(positions.view())?;
            relu_in_place(&mut mixed);
            let out_channels = mixed.ncols();
            hidden = mixed
                .into_shape_with_order((batch, height, width, out_channels))
                .map_err(|error| shape_error("DsCnn pointwise", "contiguous", error))?;
        }
        let pooled = global_average_pool(hidden.view())?;
        self.classifier.forward(pooled.view())
    }
}

/// A fully connected autoencoder (`Linear → ReLU → … → Linear`, bottleneck in the middle) for anomaly
/// detection: a sample it reconstructs badly is unlike its training data.
#[derive(Debug, Clone, PartialEq)]
pub struct Autoencoder {
    /// Encoder and decoder layers in order; the output width equals the input width.
    pub network: Mlp,
}

impl Autoencoder {
    /// Reconstructions of `x`.
    ///
    /// # Errors
    /// As [`Mlp::forward`].
    pub fn reconstruct(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        self.network.forward(x)
    }

    /// Mean squared reconstruction error of each row: the anomaly score.
    ///
    /// # Errors
    /// As [`Mlp::forward`], plus [`ZooError::Shape`] if the output width differs from the input width.
    pub fn anomaly_scores(&self, x: ArrayView2<'_, f32>) -> Result<ndarray::Array1<f32>, ZooError> {
        let reconstruction = self.reconstruct(x)?;
        if reconstruction.dim() != x.dim() {
            return Err(shape_error(
                "Autoencoder output",
                format!("{:?}", x.dim()),
                format!("{:?}", reconstruction.dim()),
            ));
        }
        let difference = &reconstruction - &x;
        Ok((&difference * &difference)
            .mean_axis(Axis(1))
            .unwrap_or_default())
    }
}

/// Hyper-parameters of [`CharTransformer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharTransformerConfig {
    /// Number of distinct characters.
    pub vocab_size: usize,
    /// Maximum sequence length (learnt position embeddings).
    pub context_length: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads; `d_model` is a multiple of it.
    pub n_heads: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Hidden width of each block's MLP.
    pub d_ff: usize,
}

/// One pre-LayerNorm decoder block:
/// `x += Wo · attention(LN1(x))`, then `x += down(GELU(up(LN2(x))))`.
///
/// The projections are [`Linear`] with `d_model × d_model` weights; head `h` uses columns
/// `h·d_head .. (h+1)·d_head` of `query`, `key`, `value` outputs, `d_head = d_model / n_heads`. Attention is
/// causal, scaled by `1/sqrt(d_head)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerBlock {
    /// LayerNorm before attention.
    pub ln1: LayerNorm,
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection after concatenating heads.
    pub output: Linear,
    /// LayerNorm before the MLP.
    pub ln2: LayerNorm,
    /// `d_model → d_ff`, followed by GELU (tanh approximation).
    pub mlp_up: Linear,
    /// `d_ff → d_model`.
    pub mlp_down: Linear,
}

/// A small decoder-only character-level transformer (GPT-style, learnt absolute positions, pre-LayerNorm,
/// untied output head).
///
/// The logits at position `t` predict the character at `t + 1`. [`CharTransformer::forward`] recomputes the whole
/// sequence (no KV cache); it is the reference the kvcache crate's decoder must reproduce.
#[derive(Debug, Clone, PartialEq)]
pub struct CharTransformer {
    /// Sizes.
    pub config: CharTransformerConfig,
    /// The character of each token id (sorted by code point).
    pub vocabulary: Vec<char>,
    /// `vocab_size × d_model`.
    pub token_embedding: Array2<f32>,
    /// `context_length × d_model`.
    pub position_embedding: Array2<f32>,
    /// The blocks in order.
    pub blocks: Vec<TransformerBlock>,
    /// LayerNorm after the last block.
    pub ln_final: LayerNorm,
    /// `d_model → vocab_size`.
    pub lm_head: Linear,
}

impl CharTransformer {
    /// Next-token logits at every position of `tokens` (`len × vocab_size`), recomputing attention over the
    /// whole prefix.
    ///
    /// # Errors
    /// [`ZooError::InvalidArgument`] for an empty sequence, one longer than `context_length`, or a token id
    /// outside the vocabulary; shape and kernel errors.
    pub fn forward(&self, tokens: &[u32]) -> Result<Array2<f32>, ZooError> {
        self.check_shapes()?;
        let config = &self.config;
        if tokens.is_empty() || tokens.len() > config.context_length {
            return Err(ZooError::InvalidArgument {
                reason: format!(
                    "sequence length {} not in 1..={}",
                    tokens.len(),
                    config.context_length
                ),
            });
        }
        if let Some(bad) = tokens
            .iter()
            .find(|&&token| token as usize >= config.vocab_size)
        {
            return Err(ZooError::InvalidArgument {
                reason: format!("token {bad} outside the vocabulary"),
            });
        }
        let n_tokens = tokens.len();
        let mut residual = Array2::<f32>::zeros((n_tokens, config.d_model));
        for (position, &token) in tokens.iter().enumerate() {
            let embedded =
                &self.token_embedding.row(token as usize) + &self.position_embedding.row(position);
            residual.row_mut(position).assign(&embedded);
        }
        let d_head = config.d_model / config.n_heads;
        let scale = 1.0 / (d_head as f32).sqrt();
        for block in &self.blocks {
            let normed = block.ln1.forward(residual.view())?;
            let queries = block.query.forward(normed.view())?;
            let keys = block.key.forward(normed.view())?;
            let values = block.value.forward(normed.view())?;
            let mut heads = Array2::<f32>::zeros((n_tokens, config.d_model));
            for head in 0..config.n_heads {
                let columns = s![.., head * d_head..(head + 1) * d_head];
                let mut scores = matmul(queries.slice(columns), keys.slice(columns).t())?;
                for (query_idx, mut row) in scores.rows_mut().into_iter().enumerate() {
                    // Causal mask: position t attends to 0..=t only.
                    let visible = query_idx + 1;
                    row.slice_mut(s![visible..]).fill(f32::NEG_INFINITY);
                    let max = row
                        .slice(s![..visible])
                        .fold(f32::NEG_INFINITY, |best, &value| best.max(value));
                    row.mapv_inplace(|value| ((value * scale) - max * scale).exp());
                    let total = row.sum();
                    row.mapv_inplace(|value| value / total);
                }
                let mixed = matmul(scores.view(), values.slice(columns))?;
                heads.slice_mut(columns).assign(&mixed);
            }
            residual += &block.output.forward(heads.view())?;
            let normed = block.ln2.forward(residual.view())?;
            let mut hidden = block.mlp_up.forward(normed.view())?;
            hidden.mapv_inplace(gelu);
            residual += &block.mlp_down.forward(hidden.view())?;
        }
        let normed = self.ln_final.forward(residual.view())?;
        self.lm_head.forward(normed.view())
    }

    /// The sizes [`CharTransformer::forward`] indexes and adds by (its fields are public, so nothing else
    /// guarantees them): at least one head, the embeddings `vocab_size × d_model` and
    /// `context_length × d_model`, and `d_model` outputs from every projection that feeds the heads or the
    /// residual stream. The input widths of the projections and LayerNorms are checked by their own forward.
    fn check_shapes(&self) -> Result<(), ZooError> {
        let config = &self.config;
        let d_model = config.d_model;
        if config.n_heads == 0 {
            return Err(ZooError::InvalidArgument {
                reason: "a transformer needs at least one attention head".into(),
            });
        }
        for (context, expected, actual) in [
            (
                "CharTransformer token embedding",
                (config.vocab_size, d_model),
                self.token_embedding.dim(),
            ),
            (
                "CharTransformer position embedding",
                (config.context_length, d_model),
                self.position_embedding.dim(),
            ),
        ] {
            if actual != expected {
                return Err(shape_error(
                    context,
                    format!("{expected:?}"),
                    format!("{actual:?}"),
                ));
            }
        }
        for block in &self.blocks {
            for (name, layer) in [
                ("query", &block.query),
                ("key", &block.key),
                ("value", &block.value),
                ("output", &block.output),
                ("mlp_down", &block.mlp_down),
            ] {
                if layer.out_features() != d_model {
                    return Err(shape_error(
                        &format!("CharTransformer {name} output width"),
                        d_model,
                        layer.out_features(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of trainable parameters.
    pub fn n_parameters(&self) -> usize {
        let linear = |layer: &Linear| layer.weight.len() + layer.bias.len();
        let norm = |layer: &LayerNorm| layer.gamma.len() + layer.beta.len();
        self.token_embedding.len()
            + self.position_embedding.len()
            + self
                .blocks
                .iter()
                .map(|block| {
                    norm(&block.ln1)
                        + linear(&block.query)
                        + linear(&block.key)
                        + linear(&block.value)
                        + linear(&block.output)
                        + norm(&block.ln2)
                        + linear(&block.mlp_up)
                        + linear(&block.mlp_down)
                })
                .sum::<usize>()
            + norm(&self.ln_final)
            + linear(&self.lm_head)
    }
}
