//! The encoder's hyper-parameters, read from the model's `config.json` and checked.

use crate::error::MinilmError;
use serde::Deserialize;
use std::path::Path;

/// The BERT hyper-parameters this crate needs (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, FFN 1536).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word-embedding table).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (before pruning).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (before pruning).
    pub intermediate_size: usize,
    /// Rows of the position-embedding table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Activation of the feed-forward layer (only `gelu`, the erf form, is supported).
    pub hidden_act: String,
}

impl BertConfig {
    /// Width of one attention head.
    ///
    /// # Errors
    /// [`MinilmError::InvalidInput`] when there is no head or the heads do not divide `hidden_size` (a configuration
    /// built by hand; [`BertConfig::from_json`] refuses both).
    pub fn head_dim(&self) -> Result<usize, MinilmError> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(MinilmError::InvalidInput {
                reason: format!(
                    "{} attention heads do not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            });
        }
        Ok(self.hidden_size / self.num_attention_heads)
    }

    /// Reads and checks `config.json`.
    ///
    /// # Errors
    /// [`MinilmError::NotFound`] / [`MinilmError::Io`] when the file cannot be read; [`MinilmError::Config`] when it
    /// is not JSON with the fields above, a size is zero, the heads do not divide the width, or the activation is
    /// not `gelu`.
    pub fn from_file(path: &Path) -> Result<BertConfig, MinilmError> {
        let text = crate::files::read_to_string(path)?;
        Self::from_json(&text, path)
    }

    /// Parses and checks a `config.json` text; `path` names it in errors.
    ///
    /// # Errors
    /// As [`BertConfig::from_file`].
    pub fn from_json(text: &str, path: &Path) -> Result<BertConfig, MinilmError> {
        let invalid = |reason: String| MinilmError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let config: BertConfig = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let sizes = [
            ("vocab_size", config.vocab_size),
            ("hidden_size", config.hidden_size),
            ("num_hidden_layers", config.num_hidden_layers),
            ("num_attention_heads", config.num_attention_heads),
            ("intermediate_size", config.intermediate_size),
            ("max_position_embeddings", config.max_position_embeddings),
            ("type_vocab_size", config.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(format!("{name} is 0")));
        }
        if !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
        {
            return Err(invalid(format!(
                "{} heads do not divide hidden_size {}",
                config.num_attention_heads, config.hidden_size
            )));
        }
        if config.hidden_act != "gelu" {
            return Err(invalid(format!(
                "hidden_act {:?} (only \"gelu\" is supported)",
                config.hidden_act
            )));
        }
        if !(config.layer_norm_eps.is_finite() && config.layer_norm_eps > 0.0) {
            return Err(invalid(format!(
                "layer_norm_eps {} is not positive",
                config.layer_norm_eps
            )));
        }
        Ok(config)
    }
}
