//! The forward pass: embeddings, then per block LayerNorm, the fused query–key–value projection,
//! keys and values appended to a [`KvStore`], causal attention over everything the store holds,
//! the output projection into the residual stream, LayerNorm and the GELU MLP; last the final
//! LayerNorm and the language-model head. The projections go through [`Projection`], so the same
//! pass runs dense f32 weights and any other storage; attention always runs on accel in f32.

use crate::cache::KvStore;
use crate::config::ModelConfig;
use crate::error::KvCacheError;
use crate::model::Transformer;
use crate::ops::{gelu_in_place, layer_norm_into, masked_softmax_rows, softmax_row};
use crate::projection::{auto_product, runs_automatic_choice, Projection};
use accel::GemvConfig;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use std::ops::Range;

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logits {
    /// The last new position of each sequence (generation).
    Last,
    /// Every new position (scoring a text in one pass).
    EveryPosition,
}

impl<P: Projection> Transformer<P> {
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
    /// overflow errors (nothing is appended then); [`KvCacheError::Matmul`] and
    /// [`KvCacheError::Projection`].
    pub fn forward(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
    ) -> Result<Array2<f32>, KvCacheError> {
        let mut scratch = ForwardScratch::default();
        Ok(self
            .forward_with_scratch(tokens, store, &mut scratch)?
            .to_owned())
    }

    /// [`Transformer::forward`] with the logits of every new position: `(batch_size · new_tokens)
    /// × vocab_size`, sequence-major (row `s · new_tokens + t` is sequence `s` after its token
    /// `t`). One pass scores every prefix of a text.
    ///
    /// # Errors
    /// As [`Transformer::forward`].
    pub fn forward_every_position(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
    ) -> Result<Array2<f32>, KvCacheError> {
        let mut scratch = ForwardScratch::default();
        Ok(self
            .run(tokens, store, &mut scratch, Logits::EveryPosition)?
            .to_owned())
    }

    /// [`Transformer::forward`] with every intermediate in `scratch`, which grows to the largest
    /// pass it has seen and is reused (with dense projections a decode step allocates nothing);
    /// returns the logits, borrowed from `scratch`.
    ///
    /// # Errors
    /// As [`Transformer::forward`].
    pub fn forward_with_scratch<'scratch>(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
        scratch: &'scratch mut ForwardScratch,
    ) -> Result<ArrayView2<'scratch, f32>, KvCacheError> {
        self.run(tokens, store, scratch, Logits::Last)
    }

    /// Everything a forward pass checks before it appends anything; returns the tokens stored.
    fn check_pass(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &dyn KvStore,
    ) -> Result<usize, KvCacheError> {
        let (batch_size, new_tokens) = tokens.dim();
        let expected_shape = self.cache_shape(batch_size);
        let shape = store.shape();
        if shape != expected_shape {
            let dims = |s: crate::CacheShape| vec![s.n_layers, s.batch_size, s.n_heads, s.d_head];
            return Err(KvCacheError::ShapeMismatch {
                what: "kv store [n_layers, batch_size, n_heads, d_head]",
                expected: dims(expected_shape),
                actual: dims(shape),
            });
        }
        if new_tokens == 0 {
            return Err(KvCacheError::InvalidState {
                what: "a forward pass needs at least one token per sequence",
            });
        }
        let past = store.layer_len(0)?;
        for layer in 1..self.config.n_layers {
            if store.layer_len(layer)? != past {
                return Err(KvCacheError::InvalidState {
                    what: "the store's layers hold different numbers of tokens",
                });
            }
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
        Ok(past)
    }

    fn run<'scratch>(
        &self,
        tokens: ArrayView2<'_, u32>,
        store: &mut dyn KvStore,
        scratch: &'scratch mut ForwardScratch,
        which_logits: Logits,
    ) -> Result<ArrayView2<'scratch, f32>, KvCacheError> {
        let past = self.check_pass(tokens, store)?;
        let (batch_size, new_tokens) = tokens.dim();
        store.reserve(new_tokens)?;

        let d = self.config.d_model;
        let rows = batch_size * new_tokens;
        let matmul = &self.matmul;
        let ForwardScratch {
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
        let epsilon = self.config.layer_norm_epsilon;
        for (layer_idx, block) in self.blocks.iter().enumerate() {
            layer_norm_into(
                hidden.view(),
                block.attention_norm_gain.view(),
                block.attention_norm_bias.view(),
                epsilon,
                normed.view_mut(),
            );
            block
                .qkv
                .forward_into(normed.view(), qkv.view_mut(), false, matmul)?;
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
            // The residual add is the product's accumulation: hidden += attention · W_out + b.
            block
                .output
                .forward_into(attention.view(), hidden.view_mut(), true, matmul)?;

            layer_norm_into(
                hidden.view(),
                block.mlp_norm_gain.view(),
                block.mlp_norm_bias.view(),
                epsilon,
                normed.view_mut(),
            );
            // A block's MLP may be narrower than the config's d_ff (structured pruning).
            let mut mlp_hidden = scratch_matrix(mlp_hidden, rows, block.up.out_features());
            block
                .up
                .forward_into(normed.view(), mlp_hidden.view_mut(), false, matmul)?;
            gelu_in_place(mlp_hidden.view_mut());
            block
                .down
                .forward_into(mlp_hidden.view(), hidden.view_mut(), true, matmul)?;
        }

        let vocab_size = self.config.vocab_size;
        let logit_rows = match which_logits {
            Logits::Last => batch_size,
            Logits::EveryPosition => rows,
        };
        let mut last = scratch_matrix(last, logit_rows, d);
        match which_logits {
            // Only the last position of each sequence needs logits.
            Logits::Last => {
                for sequence in 0..batch_size {
                    last.row_mut(sequence)
                        .assign(&hidden.row(sequence * new_tokens + new_tokens - 1));
                }
            }
            Logits::EveryPosition => last.assign(&hidden),
        }
        let mut last_normed = scratch_matrix(last_normed, logit_rows, d);
        layer_norm_into(
            last.view(),
            self.final_norm_gain.view(),
            self.final_norm_bias.view(),
            epsilon,
            last_normed.view_mut(),
        );
        let mut logits_view = scratch_matrix(logits, logit_rows, vocab_size);
        self.lm_head
            .forward_into(last_normed.view(), logits_view.view_mut(), false, matmul)?;
        let logits: &'scratch Vec<f32> = logits;
        Ok(
            ArrayView2::from_shape((logit_rows, vocab_size), &logits[..logit_rows * vocab_size])
                .expect("the scratch holds logit_rows · vocab_size logits"),
        )
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
        let matmul = &self.matmul;
        // Rows with unit column stride (the decoder's scratch always has them).
        let unit_columns = |strides: &[isize], cols: usize| cols <= 1 || strides[1] == 1;
        if new_tokens == 1
            && runs_automatic_choice(matmul)
            && unit_columns(queries.strides(), queries.ncols())
            && unit_columns(output.strides(), output.ncols())
        {
            return attend_one(store, layer, queries, d_head, total, scale, output, scores);
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
                    auto_product(head_queries, keys.t(), target, false, matmul)?;
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
                    auto_product(weights, values, head_output.view_mut(), accumulate, matmul)?;
                    offset += chunk;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

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

/// Reusable buffers of one forward pass (see [`Transformer::forward_with_scratch`]): they grow
/// to the largest pass seen and are never shrunk. Opaque; `Default` starts empty, and
/// [`Transformer::decoding_scratch`] sizes them for decode steps up front.
#[derive(Debug, Default, Clone)]
pub struct ForwardScratch {
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

impl ForwardScratch {
    /// Buffers sized for a decode step of `batch_size` sequences at contexts up to `capacity`
    /// with MLPs up to `mlp_width` wide, so that no step grows them (a prefill with more rows
    /// still does, once).
    pub(crate) fn for_decoding(
        config: &ModelConfig,
        mlp_width: usize,
        batch_size: usize,
        capacity: usize,
    ) -> Self {
        let rows = batch_size;
        let d = config.d_model;
        let buffer = |len: usize| vec![0.0f32; len];
        ForwardScratch {
            hidden: buffer(rows * d),
            normed: buffer(rows * d),
            qkv: buffer(rows * 3 * d),
            attention: buffer(rows * d),
            mlp_hidden: buffer(rows * mlp_width),
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
