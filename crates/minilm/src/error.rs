//! The crate's one error type: every failure names the file (or the input) it came from.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong in minilm. Bad input is an `Err`, never a panic.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MinilmError {
    /// A model file is absent.
    #[error("{path}: not found ({hint})")]
    NotFound {
        /// The missing file or directory.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// A file exists but cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not the configuration of a BERT encoder this crate runs.
    #[error("{path}: invalid model configuration: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The weights file is not a readable safetensors file (truncated, bad header).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A tensor the model needs is absent from the weights file.
    #[error("{path}: tensor {name} is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has the wrong shape for the configuration.
    #[error("{path}: tensor {name} has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// A tensor is not stored as f32, or holds NaN/inf.
    #[error("{path}: tensor {name}: {reason}")]
    TensorValue {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `tokenizer.json` cannot be parsed.
    #[error("{path}: invalid tokenizer: {reason}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// `tokenizer.json` describes a tokenizer model other than WordPiece.
    #[error("{path}: unsupported tokenizer model type {found:?} (expected \"WordPiece\")")]
    TokenizerType {
        /// The file.
        path: PathBuf,
        /// The type named in the file.
        found: String,
    },
    /// A sentence could not be tokenized.
    #[error("tokenizing sentence {index}: {reason}")]
    Encode {
        /// Index of the sentence in the batch.
        index: usize,
        /// The tokenizer's message.
        reason: String,
    },
    /// An argument outside its domain (an empty batch, a pruning fraction outside [0, 1), a token id past the
    /// vocabulary).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The f32 GEMM failed.
    #[error("f32 kernel: {0}")]
    Accel(#[from] accel::AccelError),
    /// The integer GEMM or quantization failed.
    #[error("int8 kernel: {0}")]
    Quant(#[from] quant::QuantError),
}
