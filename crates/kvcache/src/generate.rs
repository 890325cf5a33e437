//! Generation: a [`Decoder`] that prefills a prompt in one pass and then decodes one token per
//! step, with the contiguous cache, the paged cache, or no cache at all (full recompute of the
//! prefix at every step) behind the same calls; and [`generate`] with greedy or seeded sampling.

use crate::cache::{KvCache, KvStore};
use crate::error::KvCacheError;
use crate::forward::ForwardScratch;
use crate::model::Transformer;
use crate::paged::PagedKvCache;
use crate::projection::{DenseProjection, Projection};
use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where a [`Decoder`] keeps keys and values between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheMode {
    /// [`KvCache`]: preallocated for the capacity.
    Contiguous,
    /// [`PagedKvCache`] with blocks of `block_size` tokens, budgeted to the capacity.
    Paged {
        /// Tokens per block.
        block_size: usize,
    },
    /// No cache: every step recomputes the whole prefix (the baseline).
    Disabled,
}

#[derive(Debug)]
enum Storage {
    Contiguous(KvCache),
    Paged(PagedKvCache),
    /// The tokens so far (`history`), and the buffers of the full recompute, reused at every
    /// step: the flattened prefix and a cache that is refilled from scratch by each pass.
    Disabled {
        history: Vec<Vec<u32>>,
        prefix: Vec<u32>,
        recompute_store: KvCache,
    },
}

/// Incremental decoding of a batch: [`Decoder::prefill`] once, then [`Decoder::step`] per token,
/// on a model with projections of kind `P`.
#[derive(Debug)]
pub struct Decoder<'model, P = DenseProjection> {
    model: &'model Transformer<P>,
    batch_size: usize,
    capacity: usize,
    len: usize,
    storage: Storage,
    scratch: ForwardScratch,
}

impl<'model, P: Projection> Decoder<'model, P> {
    /// A decoder for `batch_size` sequences of at most `capacity` tokens each (prompt included).
    /// The contiguous cache is allocated here; the paged cache gets a budget of
    /// `batch_size · ⌈capacity / block_size⌉` blocks.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] for a zero batch or block size, or a capacity beyond the
    /// model's `max_seq_len`.
    pub fn new(
        model: &'model Transformer<P>,
        batch_size: usize,
        capacity: usize,
        mode: CacheMode,
    ) -> Result<Self, KvCacheError> {
        if capacity > model.config().max_seq_len {
            return Err(KvCacheError::InvalidConfig {
                what: format!(
                    "capacity {capacity} exceeds the model's max_seq_len {}",
                    model.config().max_seq_len
                ),
            });
        }
        let storage = match mode {
            CacheMode::Contiguous => Storage::Contiguous(model.new_cache(batch_size, capacity)?),
            CacheMode::Paged { block_size } => {
                let cache = model.new_paged_cache(batch_size, block_size)?;
                let budget = batch_size * capacity.div_ceil(block_size);
                Storage::Paged(cache.with_block_budget(budget))
            }
            CacheMode::Disabled => Storage::Disabled {
                history: vec![Vec::with_capacity(capacity); batch_size],
                prefix: Vec::with_capacity(batch_size * capacity),
                recompute_store: model.new_cache(batch_size, capacity)?,
            },
        };
        Ok(Decoder {
            model,
            batch_size,
            capacity,
            len: 0,
            storage,
            scratch: model.decoding_scratch(batch_size, capacity),
        })
    }

    /// Tokens per sequence processed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the prefill.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most tokens per sequence.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sequences in the batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The cache, when there is one.
    pub fn cache(&self) -> Option<&dyn KvStore> {
        match &self.storage {
            Storage::Contiguous(cache) => Some(cache),
            Storage::Paged(cache) => Some(cache),
            Storage::Disabled { .. } => None,
        }
    }

    /// Forget every token (the cache keeps its buffers).
    pub fn reset(&mut self) {
        self.len = 0;
        match &mut self.storage {
            Storage::Contiguous(cache) => cache.reset(),
            Storage::Paged(cache) => cache.reset(),
            Storage::Disabled { history, .. } => history.iter_mut().for_each(Vec::clear),
        }
    }

    /// Roll back to the first `len` tokens per sequence (no effect when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.len = len;
        match &mut self.storage {
            Storage::Contiguous(cache) => cache.truncate(len),
            Storage::Paged(cache) => cache.truncate(len),
            Storage::Disabled { history, .. } => {
                history.iter_mut().for_each(|h| h.truncate(len));
            }
        }
    }

    /// Run the whole prompt (`batch_size × prompt_len`) in one pass, filling the cache, and return
    /// the next-token logits (`batch_size × vocab_size`).
    ///
    /// # Errors
    /// [`KvCacheError::InvalidState`] when the decoder is not empty or the prompt is;
    /// [`KvCacheError::ShapeMismatch`] for a wrong batch; [`KvCacheError::CacheOverflow`] when
    /// the prompt exceeds the capacity; as [`Transformer::forward`].
    pub fn prefill(&mut self, prompts: ArrayView2<'_, u32>) -> Result<Array2<f32>, KvCacheError> {
        self.prefill_view(prompts).map(|logits| logits.to_owned())
    }

    /// [`Decoder::prefill`] returning the logits borrowed from the decoder's scratch buffers
    /// (valid until the next call).
    ///
    /// # Errors
    /// As [`Decoder::prefill`].
    pub fn prefill_view(
        &mut self,
        prompts: ArrayView2<'_, u32>,
    ) -> Result<ArrayView2<'_, f32>, KvCacheError> {
        if !self.is_empty() {
            return Err(KvCacheError::InvalidState {
                what: "prefill needs an empty decoder (call reset first)",
            });
        }
        if prompts.ncols() == 0 {
            return Err(KvCacheError::InvalidState {
                what: "the prompt is empty",
            });
        }
        self.run(prompts)
    }

    /// Feed one token per sequence (at position `len()`) and return the next-token logits.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidState`] before the prefill; [`KvCacheError::ShapeMismatch`] when
    /// `tokens.len() != batch_size`; [`KvCacheError::CacheOverflow`] at capacity; as
    /// [`Transformer::forward`].
    pub fn step(&mut self, tokens: &[u32]) -> Result<Array2<f32>, KvCacheError> {
        self.step_view(tokens).map(|logits| logits.to_owned())
    }

    /// [`Decoder::step`] returning the logits borrowed from the decoder's scratch buffers (valid
    /// until the next call): a decode step with the cache then allocates nothing.
    ///
    /// # Errors
    /// As [`Decoder::step`].
    pub fn step_view(&mut self, tokens: &[u32]) -> Result<ArrayView2<'_, f32>, KvCacheError> {
        if self.is_empty() {
            return Err(KvCacheError::InvalidState {
                what: "step needs a prefill first",
            });
        }
        let column = ArrayView2::from_shape((tokens.len(), 1), tokens).map_err(|_| {
            KvCacheError::ShapeMismatch {
                what: "step tokens",
                expected: vec![self.batch_size],
                actual: vec![tokens.len()],
            }
        })?;
        self.run(column)
    }

    fn run(&mut self, tokens: ArrayView2<'_, u32>) -> Result<ArrayView2<'_, f32>, KvCacheError> {
        let (batch_size, new_tokens) = tokens.dim();
        if batch_size != self.batch_size {
            return Err(KvCacheError::ShapeMismatch {
                what: "tokens (batch_size rows)",
                expected: vec![self.batch_size, new_tokens],
                actual: vec![batch_size, new_tokens],
            });
        }
        if self.len + new_tokens > self.capacity {
            return Err(KvCacheError::CacheOverflow {
                stored: self.len,
                appended: new_tokens,
                capacity: self.capacity,
            });
        }
        let model = self.model;
        let scratch = &mut self.scratch;
        let logits = match &mut self.storage {
            Storage::Contiguous(cache) => model.forward_with_scratch(tokens, cache, scratch)?,
            Storage::Paged(cache) => model.forward_with_scratch(tokens, cache, scratch)?,
            Storage::Disabled {
                history,
                prefix,
                recompute_store,
            } => {
                // Validate before recording, so a failed step leaves the history unchanged.
                let vocab_size = model.config().vocab_size;
                if let Some(&token) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
                    return Err(KvCacheError::TokenOutOfRange { token, vocab_size });
                }
                for (sequence, row) in history.iter_mut().zip(tokens.rows()) {
                    sequence.extend(row.iter().copied());
                }
                let total = self.len + new_tokens;
                prefix.clear();
                for sequence in history.iter() {
                    prefix.extend_from_slice(sequence);
                }
                let prefix = ArrayView2::from_shape((batch_size, total), &prefix[..])
                    .expect("every history holds `total` tokens");
                // The full recompute: the whole prefix through an emptied store.
                recompute_store.reset();
                model.forward_with_scratch(prefix, recompute_store, scratch)?
            }
        };
        self.len += new_tokens;
        Ok(logits)
    }
}

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Sampling {
    /// The most likely token (the lowest id among ties).
    Greedy,
    /// A draw from `softmax(logits / temperature)` with a seeded generator.
    Temperature {
        /// Finite and positive.
        temperature: f32,
        /// Seed of the generator.
        seed: u64,
    },
}

/// Knobs of [`generate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationConfig {
    /// Tokens to generate per sequence.
    pub max_new_tokens: usize,
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// Cache or recompute.
    pub cache: CacheMode,
    /// Keep the logits of every step in [`Generation::step_logits`].
    pub record_logits: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 32,
            sampling: Sampling::Greedy,
            cache: CacheMode::Contiguous,
            record_logits: false,
        }
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// New tokens, `batch_size × max_new_tokens`.
    pub tokens: Array2<u32>,
    /// Logits each token was chosen from (`batch_size × vocab_size` per step) when recorded.
    pub step_logits: Vec<Array2<f32>>,
}

/// Generate `config.max_new_tokens` tokens after each prompt (`batch_size × prompt_len`): one
/// prefill, then one decode step per token after the first.
///
/// # Errors
/// [`KvCacheError::InvalidConfig`] for a non-positive temperature; as [`Decoder::new`],
/// [`Decoder::prefill`] and [`Decoder::step`].
pub fn generate<P: Projection>(
    model: &Transformer<P>,
    prompts: ArrayView2<'_, u32>,
    config: &GenerationConfig,
) -> Result<Generation, KvCacheError> {
    if let Sampling::Temperature { temperature, .. } = config.sampling {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(KvCacheError::InvalidConfig {
                what: format!("temperature must be finite and positive, got {temperature}"),
            });
        }
    }
    let (batch_size, prompt_len) = prompts.dim();
    let mut step_logits = Vec::new();
    if config.max_new_tokens == 0 {
        return Ok(Generation {
            tokens: Array2::zeros((batch_size, 0)),
            step_logits,
        });
    }
    // The decoder refuses a capacity beyond the model's positions before anything of that size is
    // allocated; a sum beyond usize is beyond them too.
    let capacity = prompt_len.saturating_add(config.max_new_tokens - 1);
    let mut decoder = Decoder::new(model, batch_size, capacity, config.cache)?;
    let mut tokens = Array2::<u32>::zeros((batch_size, config.max_new_tokens));
    let mut rng = match config.sampling {
        Sampling::Temperature { seed, .. } => Some(StdRng::seed_from_u64(seed)),
        Sampling::Greedy => None,
    };
    let mut next = vec![0u32; batch_size];
    let mut logits = decoder.prefill_view(prompts)?;
    for step in 0..config.max_new_tokens {
        for (slot, row) in next.iter_mut().zip(logits.rows()) {
            *slot = match (config.sampling, rng.as_mut()) {
                (Sampling::Temperature { temperature, .. }, Some(rng)) => {
                    sample(row, temperature, rng)
                }
                _ => argmax(row),
            };
        }
        tokens
            .column_mut(step)
            .iter_mut()
            .zip(&next)
            .for_each(|(slot, &token)| *slot = token);
        if config.record_logits {
            step_logits.push(logits.to_owned());
        }
        if step + 1 == config.max_new_tokens {
            break;
        }
        logits = decoder.step_view(&next)?;
    }
    Ok(Generation {
        tokens,
        step_logits,
    })
}

/// Index of the largest logit (the lowest among ties; NaN never wins).
pub fn argmax(logits: ArrayView1<'_, f32>) -> u32 {
    let mut best = 0usize;
    for (idx, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = idx;
        }
    }
    best as u32
}

fn sample(logits: ArrayView1<'_, f32>, temperature: f32, rng: &mut StdRng) -> u32 {
    // Two passes over the logits instead of a buffer of weights: a sampled step allocates nothing.
    let maximum = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weight = |v: f32| f64::from((v - maximum) / temperature).exp();
    let total: f64 = logits.iter().map(|&v| weight(v)).sum();
    let mut target = rng.random::<f64>() * total;
    for (idx, &value) in logits.iter().enumerate() {
        target -= weight(value);
        if target < 0.0 {
            return idx as u32;
        }
    }
    (logits.len() - 1) as u32
}
