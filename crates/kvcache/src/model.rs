//! The decoder-only transformer: token and positional embeddings, pre-LayerNorm blocks of
//! multi-head causal self-attention and a GELU MLP, a final LayerNorm and a language-model head.
//! Every matrix product runs on accel; keys and values go through a [`KvStore`].

use crate::cache::{CacheShape, KvCache, KvStore};
use crate::config::{ModelConfig, PositionalEncoding};
use crate::error::KvCacheError;
use crate::ops::{
    add_bias, dot_rows, gelu_in_place, layer_norm_into, masked_softmax_rows, sinusoidal_table,
};
use crate::paged::PagedKvCache;
use accel::{Backend, MatmulConfig};
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Attention with at most this many queries per sequence (decode steps) computes its scores by
/// reading each cached key row in place with a dot product. Measured on the reference machine,
/// accel's packed kernel took 12 µs for a 1 × d_head · (len × d_head)ᵀ product at len = 512,
/// d_head = 32 (it packs the transposed keys into panels to multiply them by one row), several
/// times the row-wise dot product. The weighted sum of the values stays on accel, whose kernel
/// handles 1 × len · len × d_head in about a microsecond. Prefill and full recompute (many
/// queries) use accel for both products.
const FEW_QUERIES: usize = 4;

#[derive(Debug, Clone)]
struct DecoderLayer {
    attention_norm_gain: Array1<f32>,
    attention_norm_bias: Array1<f32>,
    qkv_weight: Array2<f32>,
    qkv_bias: Array1<f32>,
    output_weight: Array2<f32>,
    output_bias: Array1<f32>,
    mlp_norm_gain: Array1<f32>,
    mlp_norm_bias: Array1<f32>,
    up_weight: Array2<f32>,
    up_bias: Array1<f32>,
    down_weight: Array2<f32>,
    down_bias: Array1<f32>,
}

/// A decoder-only transformer with f32 weights.
#[derive(Debug, Clone)]
pub struct Transformer {
    config: ModelConfig,
    token_embedding: Array2<f32>,
    position_table: Array2<f32>,
    layers: Vec<DecoderLayer>,
    final_norm_gain: Array1<f32>,
    final_norm_bias: Array1<f32>,
    lm_head: Array2<f32>,
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
            .map(|_| DecoderLayer {
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
            matmul: MatmulConfig::default(),
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
        let mut hidden = Array2::<f32>::zeros((rows, d));
        for sequence in 0..batch_size {
            for token_idx in 0..new_tokens {
                let mut row = hidden.row_mut(sequence * new_tokens + token_idx);
                let token = tokens[[sequence, token_idx]] as usize;
                row.assign(&self.token_embedding.row(token));
                row += &self.position_table.row(past + token_idx);
            }
        }
        let mut normed = Array2::<f32>::zeros((rows, d));
        let mut qkv = Array2::<f32>::zeros((rows, 3 * d));
        let mut attention = Array2::<f32>::zeros((rows, d));
        let mut mlp_hidden = Array2::<f32>::zeros((rows, self.config.d_ff));
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
        let mut last = Array2::<f32>::zeros((batch_size, d));
        for sequence in 0..batch_size {
            last.row_mut(sequence)
                .assign(&hidden.row(sequence * new_tokens + new_tokens - 1));
        }
        let mut last_normed = Array2::<f32>::zeros((batch_size, d));
        layer_norm_into(
            last.view(),
            self.final_norm_gain.view(),
            self.final_norm_bias.view(),
            epsilon,
            last_normed.view_mut(),
        );
        let mut logits = Array2::<f32>::zeros((batch_size, self.config.vocab_size));
        self.projection(
            last_normed.view(),
            self.lm_head.view(),
            logits.view_mut(),
            false,
        )?;
        Ok(logits)
    }

    /// A product with a weight matrix. With few rows (a decode step) and accel's automatic
    /// choice, this runs accel's i-k-j loop: it streams the weights once, where the packed kernel
    /// first copies them into panels, which a single row cannot amortise. Measured on the reference
    /// machine (best of 20 × 200 calls, one thread): 1 × 128 · 128 × 384 in 5.8 µs against 7.4 µs,
    /// 1 × 128 · 128 × 512 in 7.7 µs against 10.3 µs. A backend forced by the caller or by
    /// `ACCEL_KERNEL` is kept.
    fn projection(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) -> Result<(), KvCacheError> {
        if a.nrows() <= FEW_QUERIES
            && self.matmul.backend == Backend::Auto
            && matches!(Backend::from_env(), Ok(None))
        {
            let streaming = MatmulConfig {
                backend: Backend::NaiveIkj,
                ..self.matmul
            };
            accel::matmul_into_with(a, b, c, accumulate, &streaming)?;
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
    /// them out.
    fn attend(
        &self,
        store: &dyn KvStore,
        layer: usize,
        queries: ArrayView2<'_, f32>,
        past: usize,
        new_tokens: usize,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), KvCacheError> {
        let d_head = self.config.d_head();
        let total = past + new_tokens;
        let scale = 1.0 / (d_head as f32).sqrt();
        let mut scores = Array2::<f32>::zeros((new_tokens, total));
        let batch_size = queries.nrows() / new_tokens;
        for sequence in 0..batch_size {
            let rows = sequence * new_tokens..(sequence + 1) * new_tokens;
            for head in 0..self.config.n_heads {
                let columns = head * d_head..(head + 1) * d_head;
                let head_queries = queries.slice(s![rows.clone(), columns.clone()]);
                let mut offset = 0;
                store.visit_chunks(layer, sequence, head, &mut |keys, _| {
                    let chunk = keys.nrows();
                    let mut target = scores.slice_mut(s![.., offset..offset + chunk]);
                    if new_tokens <= FEW_QUERIES {
                        // A query against cached keys is a matrix–vector product: read each
                        // key row in place (see FEW_QUERIES for why not accel here).
                        for (query, row) in head_queries.rows().into_iter().zip(target.rows_mut()) {
                            dot_rows(query, keys, row);
                        }
                    } else {
                        self.product(head_queries, keys.t(), target, false)?;
                    }
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
                    self.product(weights, values, head_output.view_mut(), accumulate)?;
                    offset += chunk;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}
