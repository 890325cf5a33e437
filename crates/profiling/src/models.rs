//! Descriptions of real models' layers (shapes from the published architectures; the parameters a
//! [`crate::Network`] materializes are seeded random values, which is all that cost and speed
//! depend on).

use crate::error::ProfilingError;
use crate::layer::{
    Activation, ActivationSpec, AttentionMode, AttentionSpec, Conv2dSpec, EmbeddingSpec, Layer,
    LayerNormSpec, LayerSpec, LinearSpec, Model, Pool2dSpec,
};

/// GPT-2 small's width, heads and feed-forward width.
const GPT2_D_MODEL: usize = 768;
const GPT2_HEADS: usize = 12;
const GPT2_D_FF: usize = 3072;

fn gpt2_block_layers(mode: AttentionMode) -> Result<Vec<Layer>, ProfilingError> {
    let positions = match mode {
        AttentionMode::Prefill { seq_len } => seq_len,
        AttentionMode::Decode { .. } => 1,
    };
    Ok(vec![
        Layer::new(
            "ln_1",
            LayerSpec::LayerNorm(LayerNormSpec {
                features: GPT2_D_MODEL,
                positions,
            }),
        )?,
        Layer::new(
            "attn",
            LayerSpec::Attention(AttentionSpec {
                d_model: GPT2_D_MODEL,
                heads: GPT2_HEADS,
                mode,
                bias: true,
            }),
        )?,
        Layer::new(
            "ln_2",
            LayerSpec::LayerNorm(LayerNormSpec {
                features: GPT2_D_MODEL,
                positions,
            }),
        )?,
        Layer::new(
            "mlp.c_fc",
            LayerSpec::Linear(LinearSpec {
                in_features: GPT2_D_MODEL,
                out_features: GPT2_D_FF,
                positions,
                bias: true,
            }),
        )?,
        Layer::new(
            "mlp.gelu",
            LayerSpec::Activation(ActivationSpec {
                function: Activation::Gelu,
                elements: positions * GPT2_D_FF,
            }),
        )?,
        Layer::new(
            "mlp.c_proj",
            LayerSpec::Linear(LinearSpec {
                in_features: GPT2_D_FF,
                out_features: GPT2_D_MODEL,
                positions,
                bias: true,
            }),
        )?,
    ])
}

/// One GPT-2 small transformer block (d = 768, 12 heads, d_ff = 3072) in prefill over `seq_len`
/// tokens. Residual additions are not modelled (they are `seq_len · d` adds, under 0.01% of the
/// block's FLOPs at any length).
///
/// # Errors
/// [`ProfilingError::ZeroDimension`] for `seq_len == 0`.
pub fn gpt2_small_block_prefill(seq_len: usize) -> Result<Model, ProfilingError> {
    Model::new(
        format!("gpt2-small block, prefill {seq_len}"),
        gpt2_block_layers(AttentionMode::Prefill { seq_len })?,
    )
}

/// The same block decoding one token against `context_len` positions (the KV cache included).
///
/// # Errors
/// [`ProfilingError::ZeroDimension`] for `context_len == 0`.
pub fn gpt2_small_block_decode(context_len: usize) -> Result<Model, ProfilingError> {
    Model::new(
        format!("gpt2-small block, decode at context {context_len}"),
        gpt2_block_layers(AttentionMode::Decode { context_len })?,
    )
}

/// GPT-2 small's token embedding (50,257 × 768) for `positions` tokens.
///
/// # Errors
/// [`ProfilingError::ZeroDimension`] for `positions == 0`.
pub fn gpt2_small_embedding(positions: usize) -> Result<Layer, ProfilingError> {
    Layer::new(
        "wte",
        LayerSpec::Embedding(EmbeddingSpec {
            vocab_size: 50_257,
            dim: GPT2_D_MODEL,
            positions,
        }),
    )
}

/// MLPerf Tiny's keyword-spotting DS-CNN (small): a 10 × 4 stride-2 convolution over a 49 × 10
/// MFCC map, four depthwise-separable blocks of 64 channels, global average pooling and a 12-way
/// classifier. Batch normalization is folded into the convolutions, as deployed models do.
///
/// # Errors
/// Never for these fixed shapes; the `Result` carries [`Layer::new`]'s checks.
pub fn ds_cnn_kws() -> Result<Model, ProfilingError> {
    let channels = 64;
    let map = (25, 5);
    let mut layers = vec![
        Layer::new(
            "conv1",
            LayerSpec::Conv2d(
                Conv2dSpec::new(1, channels, (49, 10), (10, 4))
                    .with_stride((2, 2))
                    .with_padding((5, 1)),
            ),
        )?,
        Layer::new(
            "conv1.relu",
            LayerSpec::Activation(ActivationSpec {
                function: Activation::Relu,
                elements: channels * map.0 * map.1,
            }),
        )?,
    ];
    for block in 1..=4 {
        layers.push(Layer::new(
            format!("block{block}.depthwise"),
            LayerSpec::Conv2d(
                Conv2dSpec::new(channels, channels, map, (3, 3))
                    .with_padding((1, 1))
                    .with_groups(channels),
            ),
        )?);
        layers.push(Layer::new(
            format!("block{block}.depthwise.relu"),
            LayerSpec::Activation(ActivationSpec {
                function: Activation::Relu,
                elements: channels * map.0 * map.1,
            }),
        )?);
        layers.push(Layer::new(
            format!("block{block}.pointwise"),
            LayerSpec::Conv2d(Conv2dSpec::new(channels, channels, map, (1, 1))),
        )?);
        layers.push(Layer::new(
            format!("block{block}.pointwise.relu"),
            LayerSpec::Activation(ActivationSpec {
                function: Activation::Relu,
                elements: channels * map.0 * map.1,
            }),
        )?);
    }
    layers.push(Layer::new(
        "avgpool",
        LayerSpec::Pool2d(Pool2dSpec::global_average(channels, map)),
    )?);
    layers.push(Layer::new(
        "classifier",
        LayerSpec::Linear(LinearSpec {
            in_features: channels,
            out_features: 12,
            positions: 1,
            bias: true,
        }),
    )?);
    Model::new("ds-cnn kws (mlperf tiny)", layers)
}
