//! The decoder-only character transformer under training (GPT-2 style: pre-LayerNorm blocks of causal
//! multi-head attention and a GELU MLP, learned position embeddings).

use candle_core::{Device, Tensor, D};

use super::params::{apply_linear, linear_params, ParamStore};
use crate::models::CharTransformerConfig;
use crate::ZooError;

/// A candle character transformer of a [`CharTransformerConfig`].
pub(crate) struct CandleCharTransformer {
    pub(crate) config: CharTransformerConfig,
    token_embedding: Tensor,
    position_embedding: Tensor,
    blocks: Vec<CandleBlock>,
    ln_final: (Tensor, Tensor),
    lm_head: (Tensor, Tensor),
}

/// One pre-LayerNorm transformer block.
struct CandleBlock {
    ln1: (Tensor, Tensor),
    query: (Tensor, Tensor),
    key: (Tensor, Tensor),
    value: (Tensor, Tensor),
    output: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
    mlp_up: (Tensor, Tensor),
    mlp_down: (Tensor, Tensor),
}

/// LayerNorm epsilon, the same in training and in the exported model.
pub(crate) const LAYER_NORM_EPS: f32 = 1e-5;

fn layer_norm_params(
    store: &mut ParamStore,
    name: &str,
    width: usize,
) -> Result<(Tensor, Tensor), ZooError> {
    Ok((
        store.constant(&format!("{name}.gamma"), &[width], 1.0)?,
        store.constant(&format!("{name}.beta"), &[width], 0.0)?,
    ))
}

fn apply_layer_norm(x: &Tensor, (gamma, beta): &(Tensor, Tensor)) -> Result<Tensor, ZooError> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(variance + f64::from(LAYER_NORM_EPS))?.sqrt()?)?;
    Ok(normed.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

impl CandleCharTransformer {
    pub(crate) fn new(
        store: &mut ParamStore,
        config: CharTransformerConfig,
    ) -> Result<Self, ZooError> {
        // GPT-2 style initialization: N(0, 0.02) embeddings; linear layers PyTorch-default uniform.
        let token_embedding = store.normal(
            "token_embedding",
            &[config.vocab_size, config.d_model],
            0.02,
        )?;
        let position_embedding = store.normal(
            "position_embedding",
            &[config.context_length, config.d_model],
            0.02,
        )?;
        let mut blocks = Vec::new();
        for layer_idx in 0..config.n_layers {
            let name = |part: &str| format!("blocks.{layer_idx}.{part}");
            blocks.push(CandleBlock {
                ln1: layer_norm_params(store, &name("ln1"), config.d_model)?,
                query: linear_params(store, &name("query"), config.d_model, config.d_model)?,
                key: linear_params(store, &name("key"), config.d_model, config.d_model)?,
                value: linear_params(store, &name("value"), config.d_model, config.d_model)?,
                output: linear_params(store, &name("output"), config.d_model, config.d_model)?,
                ln2: layer_norm_params(store, &name("ln2"), config.d_model)?,
                mlp_up: linear_params(store, &name("mlp_up"), config.d_model, config.d_ff)?,
                mlp_down: linear_params(store, &name("mlp_down"), config.d_ff, config.d_model)?,
            });
        }
        let ln_final = layer_norm_params(store, "ln_final", config.d_model)?;
        let lm_head = linear_params(store, "lm_head", config.d_model, config.vocab_size)?;
        Ok(CandleCharTransformer {
            config,
            token_embedding,
            position_embedding,
            blocks,
            ln_final,
            lm_head,
        })
    }

    /// Logits `batch × length × vocab` for token ids `batch × length` (u32).
    pub(crate) fn logits(&self, tokens: &Tensor) -> Result<Tensor, ZooError> {
        let (batch, length) = tokens.dims2()?;
        let config = &self.config;
        let d_head = config.d_model / config.n_heads;
        let embedded = self
            .token_embedding
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((batch, length, config.d_model))?
            .broadcast_add(&self.position_embedding.narrow(0, 0, length)?)?;
        let mask: Vec<f32> = (0..length * length)
            .map(|idx| {
                if idx % length > idx / length {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (length, length), &Device::Cpu)?;
        let scale = 1.0 / (d_head as f64).sqrt();
        let mut residual = embedded;
        for block in &self.blocks {
            let normed = apply_layer_norm(&residual, &block.ln1)?;
            let split_heads = |projection: &(Tensor, Tensor)| -> Result<Tensor, ZooError> {
                Ok(apply_linear(&normed, projection)?
                    .reshape((batch, length, config.n_heads, d_head))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let queries = split_heads(&block.query)?;
            let keys = split_heads(&block.key)?;
            let values = split_heads(&block.value)?;
            let scores =
                (queries.matmul(&keys.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let mixed = weights
                .matmul(&values)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, length, config.d_model))?;
            residual = (residual + apply_linear(&mixed, &block.output)?)?;
            let normed = apply_layer_norm(&residual, &block.ln2)?;
            let hidden = apply_linear(&normed, &block.mlp_up)?.gelu()?;
            residual = (residual + apply_linear(&hidden, &block.mlp_down)?)?;
        }
        apply_linear(&apply_layer_norm(&residual, &self.ln_final)?, &self.lm_head)
    }
}
