//! The decoder-only transformer: token and positional embeddings, pre-LayerNorm blocks of
//! multi-head causal self-attention and a GELU MLP, a final LayerNorm and a language-model head.
//! Every matrix product runs on accel; keys and values go through a [`KvStore`].

use crate::cache::{CacheShape, KvCache, KvStore};
use crate::config::{ModelConfig, PositionalEncoding};
use crate::error::KvCacheError;
use crate::ops::{
    add_bias, gelu_in_place, layer_norm_into, masked_softmax_rows, sinusoidal_table, softmax_row,
};
use crate::paged::PagedKvCache;
use accel::{Backend, GemvConfig, MatmulConfig};
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::ops::Range;

/// Products with at most this many rows (a decode step of a batch of up to four sequences) run on
/// accel's matrix–vector kernel (`accel::gemv_into`), which reads the weights, the cached keys
/// (as `Kᵀ`, column-contiguous) and the cached values in place; the packed GEMM would first copy
/// them into panels, which so few rows cannot amortise. Products with more rows (a prefill, every
/// step of the full recompute) run on accel's packed GEMM. Each side gets the best kernel for its
/// shapes; a kernel forced through the model's `MatmulConfig` or `ACCEL_KERNEL` is used for every
/// product instead.
const FEW_QUERIES: usize = 4;

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

/// A decoder-only transformer with f32 weights.
#[derive(Debug, Clone)]
pub struct Transformer {
    config: ModelConfig,
    token_embedding: Array2<f32>,
    position_table: Array2<f32>,
    layers: Vec<LayerWeights>,
    final_norm_gain: Array1<f32>,
    final_norm_bias: Array1<f32>,
    lm_head: Array2<f32>,
    lm_head_bias: Array1<f32>,
    matmul: MatmulConfig,
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

impl Transformer {
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
        Ok(Transformer {
            config,
            token_embedding,
            position_table,
            layers,
            final_norm_gain: init.vector(d, 1.0, 0.1),
            final_norm_bias: init.vector(d, 0.0, 0.1),
            lm_head: init.normal((d, config.vocab_size), fan_in(d)),
            lm_head_bias: Array1::zeros(config.vocab_size),
            matmul: MatmulConfig::default(),
        })
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
        matrix(
            "token_embedding",
            &weights.token_embedding,
            config.vocab_size,
            d,
        )?;
        matrix(
            "position_table",
            &weights.position_table,
            config.max_seq_len,
            d,
        )?;
        check_shape("layers", &[weights.layers.len()], &[config.n_layers])?;
        for layer in &weights.layers {
            vector("attention_norm_gain", &layer.attention_norm_gain, d)?;
            vector("attention_norm_bias", &layer.attention_norm_bias, d)?;
            matrix("qkv_weight", &layer.qkv_weight, d, 3 * d)?;
            vector("qkv_bias", &layer.qkv_bias, 3 * d)?;
            matrix("output_weight", &layer.output_weight, d, d)?;
            vector("output_bias", &layer.output_bias, d)?;
            vector("mlp_norm_gain", &layer.mlp_norm_gain, d)?;
            vector("mlp_norm_bias", &layer.mlp_norm_bias, d)?;
            matrix("up_weight", &layer.up_weight, d, config.d_ff)?;
            vector("up_bias", &layer.up_bias, config.d_ff)?;
            matrix("down_weight", &layer.down_weight, config.d_ff, d)?;
            vector("down_bias", &layer.down_bias, d)?;
        }
        vector("final_norm_gain", &weights.final_norm_gain, d)?;
        vector("final_norm_bias", &weights.final_norm_bias, d)?;
        matrix("lm_head", &weights.lm_head, d, config.vocab_size)?;
        vector("lm_head_bias", &weights.lm_head_bias, config.vocab_size)?;
        let model = Transformer {
            config,
            token_embedding: weights.token_embedding,
            position_table: weights.position_table,
            layers: weights.layers,
            final_norm_gain: weights.final_norm_gain,
            final_norm_bias: weights.final_norm_bias,
            lm_head: weights.lm_head,
            lm_head_bias: weights.lm_head_bias,
            matmul: MatmulConfig::default(),
        };
        if !model.all_weights_finite() {
            return Err(KvCacheError::InvalidConfig {
                what: "a weight is NaN or infinite".into(),
            });
        }
        Ok(model)
    }

    /// A copy of every weight (the inverse of [`Transformer::from_weights`]).
    pub fn to_weights(&self) -> TransformerWeights {
        TransformerWeights {
            token_embedding: self.token_embedding.clone(),
            position_table: self.position_table.clone(),
            layers: self.layers.clone(),
            final_norm_gain: self.final_norm_gain.clone(),
            final_norm_bias: self.final_norm_bias.clone(),
            lm_head: self.lm_head.clone(),
            lm_head_bias: self.lm_head_bias.clone(),
        }
    }

    fn all_weights_finite(&self) -> bool {
        fn finite<D: ndarray::Dimension>(array: &ndarray::Array<f32, D>) -> bool {
            array.iter().all(|v| v.is_finite())
        }
        finite(&self.token_embedding)
            && finite(&self.position_table)
            && finite(&self.final_norm_gain)
            && finite(&self.final_norm_bias)
            && finite(&self.lm_head)
            && finite(&self.lm_head_bias)
            && self.layers.iter().all(|layer| {
                finite(&layer.attention_norm_gain)
                    && finite(&layer.attention_norm_bias)
                    && finite(&layer.qkv_weight)
                    && finite(&layer.qkv_bias)
                    && finite(&layer.output_weight)
                    && finite(&layer.output_bias)
                    && finite(&layer.mlp_norm_gain)
                    && finite(&layer.mlp_norm_bias)
                    && finite(&layer.up_weight)
                    && finite(&layer.up_bias)
                    && finite(&layer.down_weight)
                    && finite(&layer.down_bias)
            })
    }

    /// Run every product with `matmul` (a kernel, a thread count) instead of accel's default.
    pub fn with_matmul_config(mut self, matmul: MatmulConfig) -> Self {
        self.matmul = matmul;
        self
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The accel configuration every product uses.
    pub fn matmul_config(&self) -> &MatmulConfig {
        &self.matmul
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

    /// Process `tokens` (`batch_size × new_tokens`) at positions `store.len() ..`, appending their
    /// keys and values to `store`, and return the logits of the last new position of every
    /// sequence (`batch_size × vocab_size`).
    ///
    /// With an empty store this is a prefill (the whole prompt in one pass, causal mask inside it);
    /// with one token per sequence it is one decode step.
    ///
    /// # Errors
    /// [`KvCacheError::ShapeMismatch`] when the store does not match the model or the batch;
    /// [`KvCacheError::InvalidState`] for zero new tokens or layers of unequal length;
    /// [`KvCacheError::TokenOutOfRange`], [`KvCacheError::PositionOutOfRange`]; the store's
    /// overflow errors (nothing is appended then); [`KvCacheError::Matmul`].
    pub fn forward(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
    ) -> Result<Array2<f32>, KvCacheError> {
        let mut scratch = Scratch::default();
        Ok(self
            .forward_with_scratch(tokens, store, &mut scratch)?
            .to_owned())
    }

    /// [`Transformer::forward`] with every intermediate in `scratch`, which grows to the largest
    /// pass it has seen and is reused (a decode step allocates nothing); returns the logits,
    /// borrowed from `scratch`.
    pub(crate) fn forward_with_scratch<'scratch>(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
        scratch: &'scratch mut Scratch,
    ) -> Result<ArrayView2<'scratch, f32>, KvCacheError> {
        let (batch_size, new_tokens) = tokens.dim();
        let expected_shape = self.cache_shape(batch_size);
        let shape = store.shape();
        if shape != expected_shape {
            return Err(KvCacheError::ShapeMismatch {
                what: "kv store [n_layers, batch_size, n_heads, d_head]",
                expected: vec![
                    expected_shape.n_layers,
                    expected_shape.batch_size,
                    expected_shape.n_heads,
                    expected_shape.d_head,
                ],
                actual: vec![
                    shape.n_layers,
                    shape.batch_size,
                    shape.n_heads,
                    shape.d_head,
                ],
            });
        }
        if new_tokens == 0 {
            return Err(KvCacheError::InvalidState {
                what: "a forward pass needs at least one token per sequence",
            });
        }
        let past = store.layer_len(0);
        if (1..self.config.n_layers).any(|layer| store.layer_len(layer) != past) {
            return Err(KvCacheError::InvalidState {
                what: "the store's layers hold different numbers of tokens",
            });
        }
        if past + new_tokens > self.config.max_seq_len {
            return Err(KvCacheError::PositionOutOfRange {
                position: past + new_tokens - 1,
                max_seq_len: self.config.max_seq_len,
            });
        }
        if let Some(&token) = tokens
            .iter()
            .find(|&&token| token as usize >= self.config.vocab_size)
        {
            return Err(KvCacheError::TokenOutOfRange {
                token,
                vocab_size: self.config.vocab_size,
            });
        }
        store.reserve(new_tokens)?;

        let d = self.config.d_model;
        let rows = batch_size * new_tokens;
        let Scratch {
            hidden,
            normed,
            qkv,
            attention,
            mlp_hidden,
            scores,
            last,
            last_normed,
            logits,
        } = scratch;
        let mut hidden = scratch_matrix(hidden, rows, d);
        for sequence in 0..batch_size {
            for token_idx in 0..new_tokens {
                let mut row = hidden.row_mut(sequence * new_tokens + token_idx);
                let token = tokens[[sequence, token_idx]] as usize;
                row.assign(&self.token_embedding.row(token));
                row += &self.position_table.row(past + token_idx);
            }
        }
        let mut normed = scratch_matrix(normed, rows, d);
        let mut qkv = scratch_matrix(qkv, rows, 3 * d);
        let mut attention = scratch_matrix(attention, rows, d);
        let mut mlp_hidden = scratch_matrix(mlp_hidden, rows, self.config.d_ff);
        let epsilon = self.config.layer_norm_epsilon;
        for (layer_idx, layer) in self.layers.iter().enumerate() {
            layer_norm_into(
                hidden.view(),
                layer.attention_norm_gain.view(),
                layer.attention_norm_bias.view(),
                epsilon,
                normed.view_mut(),
            );
            self.projection(
                normed.view(),
                layer.qkv_weight.view(),
                qkv.view_mut(),
                false,
            )?;
            add_bias(qkv.view_mut(), layer.qkv_bias.view());
            store.append(
                layer_idx,
                qkv.slice(s![.., d..2 * d]),
                qkv.slice(s![.., 2 * d..3 * d]),
            )?;
            self.attend(
                &*store,
                layer_idx,
                qkv.slice(s![.., 0..d]),
                past,
                new_tokens,
                attention.view_mut(),
                scores,
            )?;
            // The residual add is the product's accumulation: hidden += attention · W_out.
            self.projection(
                attention.view(),
                layer.output_weight.view(),
                hidden.view_mut(),
                true,
            )?;
            add_bias(hidden.view_mut(), layer.output_bias.view());

            layer_norm_into(
                hidden.view(),
                layer.mlp_norm_gain.view(),
                layer.mlp_norm_bias.view(),
                epsilon,
                normed.view_mut(),
            );
            self.projection(
                normed.view(),
                layer.up_weight.view(),
                mlp_hidden.view_mut(),
                false,
            )?;
            add_bias(mlp_hidden.view_mut(), layer.up_bias.view());
            gelu_in_place(mlp_hidden.view_mut());
            self.projection(
                mlp_hidden.view(),
                layer.down_weight.view(),
                hidden.view_mut(),
                true,
            )?;
            add_bias(hidden.view_mut(), layer.down_bias.view());
        }

        // Only the last position of each sequence needs logits.
        let mut last = scratch_matrix(last, batch_size, d);
        for sequence in 0..batch_size {
            last.row_mut(sequence)
                .assign(&hidden.row(sequence * new_tokens + new_tokens - 1));
        }
        let mut last_normed = scratch_matrix(last_normed, batch_size, d);
        layer_norm_into(
            last.view(),
            self.final_norm_gain.view(),
            self.final_norm_bias.view(),
            epsilon,
            last_normed.view_mut(),
        );
        let vocab_size = self.config.vocab_size;
        let mut logits_view = scratch_matrix(logits, batch_size, vocab_size);
        self.projection(
            last_normed.view(),
            self.lm_head.view(),
            logits_view.view_mut(),
            false,
        )?;
        add_bias(logits_view, self.lm_head_bias.view());
        let logits: &'scratch Vec<f32> = logits;
        Ok(
            ArrayView2::from_shape((batch_size, vocab_size), &logits[..batch_size * vocab_size])
                .expect("the scratch holds batch_size · vocab_size logits"),
        )
    }

    /// Whether products run on accel's automatic choice: no backend configured on the model and
    /// none forced through `ACCEL_KERNEL`. Only then do the few-row paths (matrix–vector kernels)
    /// replace the configured kernel; a forced kernel runs every product.
    fn runs_automatic_choice(&self) -> bool {
        self.matmul.backend == Backend::Auto && matches!(Backend::from_env(), Ok(None))
    }

    /// A product with few rows (see [`FEW_QUERIES`]) on accel's matrix–vector kernel when the
    /// model uses accel's automatic choice; every other product on the configured kernel.
    fn projection(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) -> Result<(), KvCacheError> {
        if a.nrows() <= FEW_QUERIES && self.runs_automatic_choice() {
            accel::gemv_into(a, b, c, accumulate)?;
            return Ok(());
        }
        self.product(a, b, c, accumulate)
    }

    fn product(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) -> Result<(), KvCacheError> {
        accel::matmul_into_with(a, b, c, accumulate, &self.matmul)?;
        Ok(())
    }

    /// Causal multi-head attention of the new queries over every stored key of `layer` (which
    /// already include the new tokens' keys), head by head, chunk by chunk as the store lays
    /// them out. `scores` is scratch for one head's `new_tokens × total` score matrix.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        store: &dyn KvStore,
        layer: usize,
        queries: ArrayView2<'_, f32>,
        past: usize,
        new_tokens: usize,
        mut output: ArrayViewMut2<'_, f32>,
        scores: &mut Vec<f32>,
    ) -> Result<(), KvCacheError> {
        let d_head = self.config.d_head();
        let total = past + new_tokens;
        let scale = 1.0 / (d_head as f32).sqrt();
        // Rows with unit column stride (the decoder's scratch always has them).
        let unit_columns = |strides: &[isize], cols: usize| cols <= 1 || strides[1] == 1;
        if new_tokens == 1
            && self.runs_automatic_choice()
            && unit_columns(queries.strides(), queries.ncols())
            && unit_columns(output.strides(), output.ncols())
        {
            return Self::attend_one(store, layer, queries, d_head, total, scale, output, scores);
        }
        let mut scores = scratch_matrix(scores, new_tokens, total);
        let batch_size = queries.nrows() / new_tokens;
        for sequence in 0..batch_size {
            let rows: Range<usize> = sequence * new_tokens..(sequence + 1) * new_tokens;
            for head in 0..self.config.n_heads {
                let columns = head * d_head..(head + 1) * d_head;
                let head_queries = queries.slice(s![rows.clone(), columns.clone()]);
                let mut offset = 0;
                store.visit_chunks(layer, sequence, head, &mut |keys, _| {
                    let chunk = keys.nrows();
                    let target = scores.slice_mut(s![.., offset..offset + chunk]);
                    // Kᵀ of row-major keys is column-contiguous: with few queries, accel's
                    // matrix–vector kernel reads each key row in place.
                    self.projection(head_queries, keys.t(), target, false)?;
                    offset += chunk;
                    Ok(())
                })?;
                debug_assert_eq!(offset, total, "the store must hold every position");
                // Query i sits at position past + i and sees keys 0 ..= past + i.
                masked_softmax_rows(scores.view_mut(), scale, |query| past + query + 1);
                let mut head_output = output.slice_mut(s![rows.clone(), columns]);
                let mut offset = 0;
                store.visit_chunks(layer, sequence, head, &mut |_, values| {
                    let chunk = values.nrows();
                    let weights = scores.slice(s![.., offset..offset + chunk]);
                    let accumulate = offset > 0;
                    self.projection(weights, values, head_output.view_mut(), accumulate)?;
                    offset += chunk;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

impl Transformer {
    /// [`Transformer::attend`] for one new token per sequence (a decode step) on queries and
    /// output with contiguous rows: per head, the scores and the weighted sum run chunk by chunk on
    /// the store's slices with accel's matrix–vector kernels (`matrix_vector_rows`,
    /// `vector_matrix_rows`). A paged cache's chunks are 16 rows, and two checked views, a slice
    /// and a view-checking kernel call per chunk cost as much as its arithmetic: the paged cache
    /// ran at 0.76× the contiguous one's throughput that way. Used when the model runs accel's
    /// automatic choice; a forced kernel (`ACCEL_KERNEL`, a configured backend) takes the general
    /// path, so that it really is the kernel that runs.
    #[allow(clippy::too_many_arguments)]
    fn attend_one(
        store: &dyn KvStore,
        layer: usize,
        queries: ArrayView2<'_, f32>,
        d_head: usize,
        total: usize,
        scale: f32,
        mut output: ArrayViewMut2<'_, f32>,
        scores: &mut Vec<f32>,
    ) -> Result<(), KvCacheError> {
        if scores.len() < total {
            scores.resize(total, 0.0);
        }
        let scores = &mut scores[..total];
        for (sequence, query_row) in queries.rows().into_iter().enumerate() {
            let query_row = query_row
                .to_slice()
                .expect("the caller checked unit column strides");
            let mut output_row = output.row_mut(sequence);
            let output_row = output_row
                .as_slice_mut()
                .expect("the caller checked unit column strides");
            for (head, (query, head_output)) in query_row
                .chunks_exact(d_head)
                .zip(output_row.chunks_exact_mut(d_head))
                .enumerate()
            {
                let mut offset = 0;
                store.visit_chunk_slices(layer, sequence, head, &mut |keys, _| {
                    let rows = keys.len() / d_head;
                    accel::matrix_vector_rows(
                        keys,
                        query,
                        &mut scores[offset..offset + rows],
                        false,
                        &GemvConfig::default(),
                    )?;
                    offset += rows;
                    Ok(())
                })?;
                debug_assert_eq!(offset, total, "the store must hold every position");
                // The new token sits at position total − 1 and sees every stored key.
                softmax_row(scores, total, scale);
                head_output.fill(0.0);
                let mut offset = 0;
                store.visit_chunk_slices(layer, sequence, head, &mut |_, values| {
                    let rows = values.len() / d_head;
                    accel::vector_matrix_rows(
                        &scores[offset..offset + rows],
                        values,
                        head_output,
                        true,
                        &GemvConfig::default(),
                    )?;
                    offset += rows;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

/// Reusable buffers of one forward pass (see [`Transformer::forward_with_scratch`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Scratch {
    hidden: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attention: Vec<f32>,
    mlp_hidden: Vec<f32>,
    scores: Vec<f32>,
    last: Vec<f32>,
    last_normed: Vec<f32>,
    logits: Vec<f32>,
}

impl Scratch {
    /// Buffers sized for a decode step of `batch_size` sequences at contexts up to `capacity`, so
    /// that no step grows them (a prefill with more rows still does, once).
    pub(crate) fn for_decoding(config: &ModelConfig, batch_size: usize, capacity: usize) -> Self {
        let rows = batch_size;
        let d = config.d_model;
        let buffer = |len: usize| vec![0.0f32; len];
        Scratch {
            hidden: buffer(rows * d),
            normed: buffer(rows * d),
            qkv: buffer(rows * 3 * d),
            attention: buffer(rows * d),
            mlp_hidden: buffer(rows * config.d_ff),
            scores: buffer(capacity),
            last: buffer(rows * d),
            last_normed: buffer(rows * d),
            logits: buffer(rows * config.vocab_size),
        }
    }
}

/// A row-major `rows × cols` view of the front of `buffer`, which grows (never shrinks) to fit.
/// The contents are stale: every user writes before it reads.
fn scratch_matrix(buffer: &mut Vec<f32>, rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    let len = rows * cols;
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    ArrayViewMut2::from_shape((rows, cols), &mut buffer[..len])
        .expect("the slice holds rows · cols floats")
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
