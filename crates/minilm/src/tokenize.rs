//! Sentences to token ids with the model's own `tokenizer.json` (the `tokenizers` crate), and the padded
//! batches the encoder runs on.

use crate::error::MinilmError;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// Longest sequence the encoder runs, in tokens including `[CLS]` and `[SEP]` (all-MiniLM-L6-v2 was trained at
/// 128).
pub const MAX_SEQUENCE_LENGTH: usize = 128;

/// A batch of tokenized sentences padded to the longest: ids and attention mask, row-major `batch × seq_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, padding positions hold 0 (`[PAD]`).
    pub ids: Vec<u32>,
    /// Real tokens of each sentence (the attention mask is `position < lengths[row]`).
    pub lengths: Vec<usize>,
    /// Columns: the longest sentence of the batch.
    pub seq_len: usize,
}

impl TokenBatch {
    /// Pads already tokenized sentences (each at most [`MAX_SEQUENCE_LENGTH`] ids, none empty).
    ///
    /// # Errors
    /// [`MinilmError::InvalidInput`] for an empty batch, an empty sentence or one longer than the limit.
    pub fn from_sequences(sequences: &[Vec<u32>]) -> Result<TokenBatch, MinilmError> {
        if sequences.is_empty() {
            return Err(MinilmError::InvalidInput {
                reason: "empty batch".into(),
            });
        }
        if let Some(index) = sequences
            .iter()
            .position(|s| s.is_empty() || s.len() > MAX_SEQUENCE_LENGTH)
        {
            return Err(MinilmError::InvalidInput {
                reason: format!(
                    "sentence {index} has {} tokens (allowed 1..={MAX_SEQUENCE_LENGTH})",
                    sequences[index].len()
                ),
            });
        }
        let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![0u32; sequences.len() * seq_len];
        for (row, sequence) in ids.chunks_exact_mut(seq_len).zip(sequences) {
            row[..sequence.len()].copy_from_slice(sequence);
        }
        Ok(TokenBatch {
            ids,
            lengths: sequences.iter().map(Vec::len).collect(),
            seq_len,
        })
    }

    /// Sentences in the batch.
    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// Real (unpadded) tokens in the batch.
    pub fn n_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// The WordPiece tokenizer of the model, truncating at [`MAX_SEQUENCE_LENGTH`] and never padding (batches are
/// padded to their own longest sentence by [`TokenBatch`]).
#[derive(Debug, Clone)]
pub struct SentenceTokenizer {
    tokenizer: Tokenizer,
}

impl SentenceTokenizer {
    /// Reads `tokenizer.json`.
    ///
    /// # Errors
    /// [`MinilmError::NotFound`] / [`MinilmError::Io`]; [`MinilmError::TokenizerType`] when its model is not
    /// WordPiece; [`MinilmError::Tokenizer`] when it is not a tokenizer file.
    pub fn from_file(path: &Path) -> Result<SentenceTokenizer, MinilmError> {
        let bytes = crate::files::read_bytes(path)?;
        let invalid = |reason: String| MinilmError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        // The model type is checked before the tokenizers crate parses the file, so that a BPE or Unigram
        // tokenizer (which it would accept) is refused with a message naming the type.
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let model_type = json
            .get("model")
            .and_then(|model| model.get("type"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid("no model.type field".into()))?;
        if model_type != "WordPiece" {
            return Err(MinilmError::TokenizerType {
                path: path.to_path_buf(),
                found: model_type.to_owned(),
            });
        }
        let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQUENCE_LENGTH,
                ..TruncationParams::default()
            }))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(SentenceTokenizer { tokenizer })
    }

    /// Token ids of each sentence, with `[CLS]` and `[SEP]`, truncated to [`MAX_SEQUENCE_LENGTH`].
    ///
    /// # Errors
    /// [`MinilmError::Encode`] naming the sentence the tokenizer refused.
    pub fn encode(&self, sentences: &[&str]) -> Result<Vec<Vec<u32>>, MinilmError> {
        sentences
            .iter()
            .enumerate()
            .map(|(index, sentence)| {
                self.tokenizer
                    .encode(*sentence, true)
                    .map(|encoding| encoding.get_ids().to_vec())
                    .map_err(|e| MinilmError::Encode {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    /// Tokenizes and pads `sentences` into one batch.
    ///
    /// # Errors
    /// As [`SentenceTokenizer::encode`] and [`TokenBatch::from_sequences`].
    pub fn batch(&self, sentences: &[&str]) -> Result<TokenBatch, MinilmError> {
        TokenBatch::from_sequences(&self.encode(sentences)?)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}
