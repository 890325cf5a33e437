//! Model shape: the plain data that says how big a transformer is, checked before any weight exists.

use crate::error::KvCacheError;

/// How positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PositionalEncoding {
    /// A learned table of `max_seq_len × d_model` (random at initialisation here).
    Learned,
    /// The fixed sine/cosine table of "Attention is all you need".
    Sinusoidal,
}

/// The shape of a decoder-only transformer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads per layer (`d_model` must be a multiple).
    pub n_heads: usize,
    /// Decoder blocks.
    pub n_layers: usize,
    /// Hidden width of each MLP.
    pub d_ff: usize,
    /// Positions the positional encoding covers.
    pub max_seq_len: usize,
    /// Learned or sinusoidal positions.
    pub positional: PositionalEncoding,
    /// LayerNorm's epsilon.
    pub layer_norm_epsilon: f32,
}

impl ModelConfig {
    /// The shape the speed claims use: d_model = 128, 4 heads, 2 layers, d_ff = 512, a byte
    /// vocabulary (256), positions up to 2048.
    pub fn reference() -> Self {
        ModelConfig {
            vocab_size: 256,
            d_model: 128,
            n_heads: 4,
            n_layers: 2,
            d_ff: 512,
            max_seq_len: 2048,
            positional: PositionalEncoding::Learned,
            layer_norm_epsilon: 1e-5,
        }
    }

    /// Width of one head.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Check that the shape can be built.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] for a zero size, `d_model` not a multiple of `n_heads`, or a
    /// non-positive epsilon.
    pub fn validate(&self) -> Result<(), KvCacheError> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
            ("max_seq_len", self.max_seq_len),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(KvCacheError::InvalidConfig {
                what: format!("{name} must be at least 1"),
            });
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(KvCacheError::InvalidConfig {
                what: format!(
                    "d_model {} is not a multiple of n_heads {}",
                    self.d_model, self.n_heads
                ),
            });
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(KvCacheError::InvalidConfig {
                what: format!(
                    "vocab_size {} does not fit token ids (u32)",
                    self.vocab_size
                ),
            });
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return Err(KvCacheError::InvalidConfig {
                what: format!(
                    "layer_norm_epsilon must be finite and positive, got {}",
                    self.layer_norm_epsilon
                ),
            });
        }
        Ok(())
    }

    /// Number of weights and biases.
    pub fn parameter_count(&self) -> usize {
        let d = self.d_model;
        let per_layer = 2 * 2 * d // two LayerNorms
            + d * 3 * d + 3 * d // QKV projection
            + d * d + d // output projection
            + d * self.d_ff + self.d_ff // MLP up
            + self.d_ff * d + d; // MLP down
        let positions = match self.positional {
            PositionalEncoding::Learned => self.max_seq_len * d,
            PositionalEncoding::Sinusoidal => 0,
        };
        self.vocab_size * d + positions + self.n_layers * per_layer + 2 * d + d * self.vocab_size
    }

    /// Floating-point operations (2 per multiply–add, matrix products only) of one forward pass of
    /// one sequence over `new_tokens` tokens whose queries see `attention_pairs` (query, key) pairs
    /// in total, with logits for the last position only. The operation-count model of the
    /// complexity claims.
    pub fn forward_flops(&self, new_tokens: usize, attention_pairs: usize) -> f64 {
        let d = self.d_model as f64;
        let tokens = new_tokens as f64;
        let projections = tokens * 2.0 * (4.0 * d * d + 2.0 * d * self.d_ff as f64);
        // q·Kᵀ and P·V: 2 · 2 · d multiply–adds per (query, key) pair summed over heads.
        let attention = 4.0 * d * attention_pairs as f64;
        let head = 2.0 * d * self.vocab_size as f64;
        self.n_layers as f64 * (projections + attention) + head
    }
}
