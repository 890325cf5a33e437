//! The decoder-only transformer: token and positional embeddings, pre-LayerNorm blocks of
//! multi-head causal self-attention and a GELU MLP, a final LayerNorm and a language-model head.
//! The weight matrices are [`Projection`]s (dense f32 by default; any other storage through the
//! trait), the rest f32. The forward pass itself is in `forward.rs`.

use crate::cache::{CacheShape, KvCache};
use crate::config::{ModelConfig, PositionalEncoding};
use crate::error::KvCacheError;
use crate::forward::ForwardScratch;
use crate::ops::sinusoidal_table;
use crate::paged::PagedKvCache;
use crate::projection::{DenseProjection, Projection};
use accel::MatmulConfig;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// The weights of one decoder block (plain data; see [`Transformer::from_weights`]). A weight
/// matrix is `in × out` and multiplies a row of activations from the right (`y = x · W + b`).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// LayerNorm before attention: gain (`d_model`).
    pub attention_norm_gain: Array1<f32>,
    /// LayerNorm before attention: bias (`d_model`).
    pub attention_norm_bias: Array1<f32>,
    /// `d_model × 3·d_model`: columns `0..d` give the queries, `d..2d` the keys, `2d..3d` the
    /// values; head `h` uses columns `h·d_head .. (h+1)·d_head` of each.
    pub qkv_weight: Array2<f32>,
    /// `3·d_model`, in the same order.
    pub qkv_bias: Array1<f32>,
    /// `d_model × d_model`, after the heads are concatenated.
    pub output_weight: Array2<f32>,
    /// `d_model`.
    pub output_bias: Array1<f32>,
    /// LayerNorm before the MLP: gain (`d_model`).
    pub mlp_norm_gain: Array1<f32>,
    /// LayerNorm before the MLP: bias (`d_model`).
    pub mlp_norm_bias: Array1<f32>,
    /// `d_model × d_ff`, followed by GELU (tanh approximation).
    pub up_weight: Array2<f32>,
    /// `d_ff`.
    pub up_bias: Array1<f32>,
    /// `d_ff × d_model`.
    pub down_weight: Array2<f32>,
    /// `d_model`.
    pub down_bias: Array1<f32>,
}

/// Every weight of a [`Transformer`] (plain data), for [`Transformer::from_weights`] and
/// [`Transformer::to_weights`]: a model trained elsewhere comes in through this struct, so that
/// kvcache depends on no training framework.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerWeights {
    /// `vocab_size × d_model`.
    pub token_embedding: Array2<f32>,
    /// `max_seq_len × d_model`, added to the token embedding at each position (learned, or the
    /// sinusoidal table).
    pub position_table: Array2<f32>,
    /// The blocks in order (`n_layers`).
    pub layers: Vec<LayerWeights>,
    /// Final LayerNorm gain (`d_model`).
    pub final_norm_gain: Array1<f32>,
    /// Final LayerNorm bias (`d_model`).
    pub final_norm_bias: Array1<f32>,
    /// `d_model × vocab_size`.
    pub lm_head: Array2<f32>,
    /// `vocab_size` (zero in [`Transformer::random`]).
    pub lm_head_bias: Array1<f32>,
}

/// One decoder block with projections of kind `P` (plain data; see [`Transformer::from_parts`]).
/// Every projection is `y = x · W + b` with `W` of shape `in × out`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block<P> {
    /// LayerNorm before attention: gain (`d_model`).
    pub attention_norm_gain: Array1<f32>,
    /// LayerNorm before attention: bias (`d_model`).
    pub attention_norm_bias: Array1<f32>,
    /// `d_model → 3·d_model`: the queries, keys and values as column blocks, in the layout of
    /// [`LayerWeights::qkv_weight`].
    pub qkv: P,
    /// `d_model → d_model`, after the heads are concatenated.
    pub output: P,
    /// LayerNorm before the MLP: gain (`d_model`).
    pub mlp_norm_gain: Array1<f32>,
    /// LayerNorm before the MLP: bias (`d_model`).
    pub mlp_norm_bias: Array1<f32>,
    /// `d_model → hidden`, followed by GELU (tanh approximation). `hidden` is the config's
    /// `d_ff`, or fewer after structured pruning (whole neurons removed).
    pub up: P,
    /// `hidden → d_model`.
    pub down: P,
}

/// Every part of a [`Transformer`] with projections of kind `P` (plain data), for
/// [`Transformer::from_parts`]: how a model with other weight storage (int8, f16, sparse, pruned)
/// is built.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerParts<P> {
    /// `vocab_size × d_model`.
    pub token_embedding: Array2<f32>,
    /// `max_seq_len × d_model`.
    pub position_table: Array2<f32>,
    /// The blocks in order (`n_layers`).
    pub blocks: Vec<Block<P>>,
    /// Final LayerNorm gain (`d_model`).
    pub final_norm_gain: Array1<f32>,
    /// Final LayerNorm bias (`d_model`).
    pub final_norm_bias: Array1<f32>,
    /// `d_model → vocab_size`.
    pub lm_head: P,
}

/// A decoder-only transformer whose weight matrices are projections of kind `P`: dense f32
/// ([`DenseProjection`]) unless built with [`Transformer::from_parts`].
#[derive(Debug, Clone)]
pub struct Transformer<P = DenseProjection> {
    pub(crate) config: ModelConfig,
    pub(crate) token_embedding: Array2<f32>,
    pub(crate) position_table: Array2<f32>,
    pub(crate) blocks: Vec<Block<P>>,
    pub(crate) final_norm_gain: Array1<f32>,
    pub(crate) final_norm_bias: Array1<f32>,
    pub(crate) lm_head: P,
    pub(crate) matmul: MatmulConfig,
}

struct Init {
    rng: StdRng,
}

impl Init {
    fn normal(&mut self, shape: (usize, usize), std_dev: f32) -> Array2<f32> {
        let normal = Normal::new(0.0f32, std_dev).expect("a finite positive standard deviation");
        Array2::from_shape_simple_fn(shape, || normal.sample(&mut self.rng))
    }

    fn vector(&mut self, len: usize, mean: f32, std_dev: f32) -> Array1<f32> {
        let normal = Normal::new(mean, std_dev).expect("a finite positive standard deviation");
        Array1::from_shape_simple_fn(len, || normal.sample(&mut self.rng))
    }
}

impl Transformer<DenseProjection> {
    /// A model with seeded random weights: matrices `N(0, 1/fan_in)` so that activations stay of
    /// order one and attention is far from uniform, embeddings `N(0, 1)`, LayerNorm gains near 1
    /// and small random biases (so that every parameter takes part in the correctness tests).
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] when `config` does not validate.
    pub fn random(config: ModelConfig, seed: u64) -> Result<Self, KvCacheError> {
        config.validate()?;
        let mut init = Init {
            rng: StdRng::seed_from_u64(seed),
        };
        let d = config.d_model;
        let fan_in = |n: usize| 1.0 / (n as f32).sqrt();
        let token_embedding = init.normal((config.vocab_size, d), 1.0);
        let position_table = match config.positional {
            PositionalEncoding::Learned => init.normal((config.max_seq_len, d), 0.5),
            PositionalEncoding::Sinusoidal => sinusoidal_table(config.max_seq_len, d),
        };
        let layers = (0..config.n_layers)
            .map(|_| LayerWeights {
                attention_norm_gain: init.vector(d, 1.0, 0.1),
                attention_norm_bias: init.vector(d, 0.0, 0.1),
                qkv_weight: init.normal((d, 3 * d), fan_in(d)),
                qkv_bias: init.vector(3 * d, 0.0, 0.02),
                output_weight: init.normal((d, d), fan_in(d)),
                output_bias: init.vector(d, 0.0, 0.02),
                mlp_norm_gain: init.vector(d, 1.0, 0.1),
                mlp_norm_bias: init.vector(d, 0.0, 0.1),
                up_weight: init.normal((d, config.d_ff), fan_in(d)),
                up_bias: init.vector(config.d_ff, 0.0, 0.02),
                down_weight: init.normal((config.d_ff, d), fan_in(config.d_ff)),
                down_bias: init.vector(d, 0.0, 0.02),
            })
            .collect();
        let final_norm_gain = init.vector(d, 1.0, 0.1);
        let final_norm_bias = init.vector(d, 0.0, 0.1);
        let lm_head = init.normal((d, config.vocab_size), fan_in(d));
        let weights = TransformerWeights {
            token_embedding,
            position_table,
            layers,
            final_norm_gain,
            final_norm_bias,
            lm_head,
            lm_head_bias: Array1::zeros(config.vocab_size),
        };
        Self::from_weights(config, weights)
    }

    /// A model from given weights (one trained elsewhere), checked against `config`.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] when `config` does not validate or a weight is not finite;
    /// [`KvCacheError::ShapeMismatch`] naming the first weight whose shape differs from what
    /// `config` implies (see [`TransformerWeights`]).
    pub fn from_weights(
        config: ModelConfig,
        weights: TransformerWeights,
    ) -> Result<Self, KvCacheError> {
        config.validate()?;
        let d = config.d_model;
        let matrix = |what: &'static str, array: &Array2<f32>, rows: usize, cols: usize| {
            check_shape(what, array.shape(), &[rows, cols])
        };
        let vector = |what: &'static str, array: &Array1<f32>, len: usize| {
            check_shape(what, array.shape(), &[len])
        };
        check_shape("layers", &[weights.layers.len()], &[config.n_layers])?;
        for layer in &weights.layers {
            matrix("qkv_weight", &layer.qkv_weight, d, 3 * d)?;
            vector("qkv_bias", &layer.qkv_bias, 3 * d)?;
            matrix("output_weight", &layer.output_weight, d, d)?;
            vector("output_bias", &layer.output_bias, d)?;
            matrix("up_weight", &layer.up_weight, d, config.d_ff)?;
            vector("up_bias", &layer.up_bias, config.d_ff)?;
            matrix("down_weight", &layer.down_weight, config.d_ff, d)?;
            vector("down_bias", &layer.down_bias, d)?;
        }
        matrix("lm_head", &weights.lm_head, d, config.vocab_size)?;
        vector("lm_head_bias", &weights.lm_head_bias, config.vocab_size)?;
        let blocks = weights
            .layers
            .into_iter()
            .map(|layer| {
                Ok(Block {
                    attention_norm_gain: layer.attention_norm_gain,
                    attention_norm_bias: layer.attention_norm_bias,
                    qkv: DenseProjection::new(layer.qkv_weight, layer.qkv_bias)?,
                    output: DenseProjection::new(layer.output_weight, layer.output_bias)?,
                    mlp_norm_gain: layer.mlp_norm_gain,
                    mlp_norm_bias: layer.mlp_norm_bias,
                    up: DenseProjection::new(layer.up_weight, layer.up_bias)?,
                    down: DenseProjection::new(layer.down_weight, layer.down_bias)?,
                })
            })
            .collect::<Result<Vec<_>, KvCacheError>>()?;
        let parts = TransformerParts {
            token_embedding: weights.token_embedding,
            position_table: weights.position_table,
            blocks,
            final_norm_gain: weights.final_norm_gain,
            final_norm_bias: weights.final_norm_bias,
            lm_head: DenseProjection::new(weights.lm_head, weights.lm_head_bias)?,
        };
        Self::from_parts(config, parts)
    }

    /// A copy of every weight (the inverse of [`Transformer::from_weights`]).
    pub fn to_weights(&self) -> TransformerWeights {
        let split = |projection: &DenseProjection| {
            (projection.weight().to_owned(), projection.bias().to_owned())
        };
        let layers = self
            .blocks
            .iter()
            .map(|block| {
                let (qkv_weight, qkv_bias) = split(&block.qkv);
                let (output_weight, output_bias) = split(&block.output);
                let (up_weight, up_bias) = split(&block.up);
                let (down_weight, down_bias) = split(&block.down);
                LayerWeights {
                    attention_norm_gain: block.attention_norm_gain.clone(),
                    attention_norm_bias: block.attention_norm_bias.clone(),
                    qkv_weight,
                    qkv_bias,
                    output_weight,
                    output_bias,
                    mlp_norm_gain: block.mlp_norm_gain.clone(),
                    mlp_norm_bias: block.mlp_norm_bias.clone(),
                    up_weight,
                    up_bias,
                    down_weight,
                    down_bias,
                }
            })
            .collect();
        let (lm_head, lm_head_bias) = split(&self.lm_head);
        TransformerWeights {
            token_embedding: self.token_embedding.clone(),
            position_table: self.position_table.clone(),
            layers,
            final_norm_gain: self.final_norm_gain.clone(),
            final_norm_bias: self.final_norm_bias.clone(),
            lm_head,
            lm_head_bias,
        }
    }
}

impl<P: Projection> Transformer<P> {
    /// A model from its parts, checked against `config`: embeddings and LayerNorms of the
    /// config's shape and finite, projections of the widths the architecture needs
    /// (`qkv` d → 3d, `output` d → d, `up` d → h and `down` h → d for any h ≥ 1 per block,
    /// `lm_head` d → vocab). A projection's values are its own business (its constructor's).
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] when `config` does not validate or an embedding or
    /// LayerNorm value is not finite; [`KvCacheError::ShapeMismatch`] naming the first part whose
    /// shape is wrong.
    pub fn from_parts(
        config: ModelConfig,
        parts: TransformerParts<P>,
    ) -> Result<Self, KvCacheError> {
        config.validate()?;
        let d = config.d_model;
        let matrix = |what: &'static str, array: &Array2<f32>, rows: usize, cols: usize| {
            check_shape(what, array.shape(), &[rows, cols])
        };
        let vector = |what: &'static str, array: &Array1<f32>, len: usize| {
            check_shape(what, array.shape(), &[len])
        };
        let projection = |what: &'static str, projection: &P, inputs: usize, outputs: usize| {
            check_shape(
                what,
                &[projection.in_features(), projection.out_features()],
                &[inputs, outputs],
            )
        };
        matrix(
            "token_embedding",
            &parts.token_embedding,
            config.vocab_size,
            d,
        )?;
        matrix(
            "position_table",
            &parts.position_table,
            config.max_seq_len,
            d,
        )?;
        check_shape("layers", &[parts.blocks.len()], &[config.n_layers])?;
        for block in &parts.blocks {
            vector("attention_norm_gain", &block.attention_norm_gain, d)?;
            vector("attention_norm_bias", &block.attention_norm_bias, d)?;
            projection("qkv projection [in, out]", &block.qkv, d, 3 * d)?;
            projection("output projection [in, out]", &block.output, d, d)?;
            vector("mlp_norm_gain", &block.mlp_norm_gain, d)?;
            vector("mlp_norm_bias", &block.mlp_norm_bias, d)?;
            let hidden = block.up.out_features();
            if hidden == 0 {
                return Err(KvCacheError::InvalidConfig {
                    what: "an MLP needs at least one hidden neuron".into(),
                });
            }
            projection("MLP up projection [in, out]", &block.up, d, hidden)?;
            projection("MLP down projection [in, out]", &block.down, hidden, d)?;
        }
        vector("final_norm_gain", &parts.final_norm_gain, d)?;
        vector("final_norm_bias", &parts.final_norm_bias, d)?;
        projection("lm_head [in, out]", &parts.lm_head, d, config.vocab_size)?;
        let model = Transformer {
            config,
            token_embedding: parts.token_embedding,
            position_table: parts.position_table,
            blocks: parts.blocks,
            final_norm_gain: parts.final_norm_gain,
            final_norm_bias: parts.final_norm_bias,
            lm_head: parts.lm_head,
            matmul: MatmulConfig::default(),
        };
        if !model.all_arrays_finite() {
            return Err(KvCacheError::InvalidConfig {
                what: "a weight is NaN or infinite".into(),
            });
        }
        Ok(model)
    }

    fn all_arrays_finite(&self) -> bool {
        fn finite<D: ndarray::Dimension>(array: &ndarray::Array<f32, D>) -> bool {
            array.iter().all(|v| v.is_finite())
        }
        finite(&self.token_embedding)
            && finite(&self.position_table)
            && finite(&self.final_norm_gain)
            && finite(&self.final_norm_bias)
            && self.blocks.iter().all(|block| {
                finite(&block.attention_norm_gain)
                    && finite(&block.attention_norm_bias)
                    && finite(&block.mlp_norm_gain)
                    && finite(&block.mlp_norm_bias)
            })
    }

    /// Run every product with `matmul` (a kernel, a thread count) instead of accel's default.
    pub fn with_matmul_config(mut self, matmul: MatmulConfig) -> Self {
        self.matmul = matmul;
        self
    }

    /// The model's shape. `d_ff` is the width the model was built for; a block's MLP may be
    /// narrower (see [`Block::up`]).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The accel configuration every product uses.
    pub fn matmul_config(&self) -> &MatmulConfig {
        &self.matmul
    }

    /// The decoder blocks.
    pub fn blocks(&self) -> &[Block<P>] {
        &self.blocks
    }

    /// The language-model head.
    pub fn lm_head(&self) -> &P {
        &self.lm_head
    }

    /// Bytes of every stored parameter: the f32 embeddings and LayerNorms and each projection's
    /// [`Projection::storage_bytes`].
    pub fn storage_bytes(&self) -> usize {
        let floats = |len: usize| len * std::mem::size_of::<f32>();
        floats(
            self.token_embedding.len()
                + self.position_table.len()
                + self.final_norm_gain.len()
                + self.final_norm_bias.len(),
        ) + self.lm_head.storage_bytes()
            + self
                .blocks
                .iter()
                .map(|block| {
                    floats(
                        block.attention_norm_gain.len()
                            + block.attention_norm_bias.len()
                            + block.mlp_norm_gain.len()
                            + block.mlp_norm_bias.len(),
                    ) + [&block.qkv, &block.output, &block.up, &block.down]
                        .iter()
                        .map(|projection| projection.storage_bytes())
                        .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The widest MLP hidden layer over the blocks.
    fn widest_mlp(&self) -> usize {
        self.blocks
            .iter()
            .map(|block| block.up.out_features())
            .max()
            .unwrap_or(0)
    }

    /// Scratch sized for decode steps of `batch_size` sequences at contexts up to `capacity`
    /// (see [`Transformer::forward_with_scratch`]).
    pub fn decoding_scratch(&self, batch_size: usize, capacity: usize) -> ForwardScratch {
        ForwardScratch::for_decoding(&self.config, self.widest_mlp(), batch_size, capacity)
    }

    /// The K/V shape of a batch of `batch_size` sequences.
    pub fn cache_shape(&self, batch_size: usize) -> CacheShape {
        CacheShape {
            n_layers: self.config.n_layers,
            batch_size,
            n_heads: self.config.n_heads,
            d_head: self.config.d_head(),
        }
    }

    /// A contiguous cache for `batch_size` sequences of up to `capacity` tokens.
    ///
    /// # Errors
    /// As [`KvCache::new`].
    pub fn new_cache(&self, batch_size: usize, capacity: usize) -> Result<KvCache, KvCacheError> {
        KvCache::new(self.cache_shape(batch_size), capacity)
    }

    /// A paged cache for `batch_size` sequences with blocks of `block_size` tokens.
    ///
    /// # Errors
    /// As [`PagedKvCache::new`].
    pub fn new_paged_cache(
        &self,
        batch_size: usize,
        block_size: usize,
    ) -> Result<PagedKvCache, KvCacheError> {
        PagedKvCache::new(self.cache_shape(batch_size), block_size)
    }
}

fn check_shape(
    what: &'static str,
    actual: &[usize],
    expected: &[usize],
) -> Result<(), KvCacheError> {
    if actual == expected {
        return Ok(());
    }
    Err(KvCacheError::ShapeMismatch {
        what,
        expected: expected.to_vec(),
        actual: actual.to_vec(),
    })
}
