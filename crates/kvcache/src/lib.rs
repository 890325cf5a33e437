//! kvcache: decoder-only transformer generation with a KV cache that is checked against full
//! recomputation, in a contiguous and a paged (vLLM-style) layout.
//!
//! ```
//! use kvcache::{generate, CacheMode, GenerationConfig, ModelConfig, Sampling, Transformer};
//! use ndarray::Array2;
//!
//! let config = ModelConfig { max_seq_len: 64, ..ModelConfig::reference() };
//! let model = Transformer::random(config, 7)?;
//! let prompts = Array2::from_shape_vec((2, 3), vec![1u32, 2, 3, 4, 5, 6]).unwrap();
//! let cached = generate(&model, prompts.view(), &GenerationConfig {
//!     max_new_tokens: 8,
//!     ..GenerationConfig::default()
//! })?;
//! let recomputed = generate(&model, prompts.view(), &GenerationConfig {
//!     max_new_tokens: 8,
//!     cache: CacheMode::Disabled,
//!     ..GenerationConfig::default()
//! })?;
//! assert_eq!(cached.tokens, recomputed.tokens);
//! # let _ = Sampling::Greedy;
//! # Ok::<(), kvcache::KvCacheError>(())
//! ```
//!
//! The crate reads no clock and writes no file: timing and memory claims live in the validation
//! suite (`cargo xtask validate --module kvcache`) and the benchmarks.

// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block.
#![deny(unsafe_code)]

mod bookkeeping;
mod cache;
mod config;
mod error;
mod forward;
mod generate;
mod model;
mod ops;
mod paged;
mod projection;

pub use cache::{CacheShape, ChunkVisitor, KvCache, KvStore, SliceVisitor};
pub use config::{ModelConfig, PositionalEncoding};
pub use error::KvCacheError;
pub use forward::ForwardScratch;
pub use generate::{argmax, generate, CacheMode, Decoder, Generation, GenerationConfig, Sampling};
pub use model::{Block, LayerWeights, Transformer, TransformerParts, TransformerWeights};
pub use paged::PagedKvCache;
pub use projection::{dense_forward_into, DenseProjection, Projection};

/// Largest normwise relative difference between two logit matrices, row by row:
/// `max over rows of max_i |a_i − b_i| / max_i |b_i|` (with `b` the reference).
///
/// Normwise rather than elementwise, because a logit near zero makes an elementwise ratio
/// meaningless while the decision (the ranking of tokens) depends on the scale of the row.
///
/// # Errors
/// `ShapeMismatch` when the two matrices differ in shape.
pub fn max_relative_error(
    candidate: &ndarray::Array2<f32>,
    reference: &ndarray::Array2<f32>,
) -> Result<f64, KvCacheError> {
    if candidate.shape() != reference.shape() {
        return Err(KvCacheError::ShapeMismatch {
            what: "candidate logits (against the reference's shape)",
            expected: reference.shape().to_vec(),
            actual: candidate.shape().to_vec(),
        });
    }
    Ok(candidate
        .rows()
        .into_iter()
        .zip(reference.rows())
        .map(|(a, b)| {
            let scale = b.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
            let difference = a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
                m.max((f64::from(x) - f64::from(y)).abs())
            });
            if scale == 0.0 {
                difference
            } else {
                difference / scale
            }
        })
        .fold(0.0, f64::max))
}

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
