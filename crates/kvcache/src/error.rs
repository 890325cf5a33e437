//! The one error type of the kvcache crate.

/// Everything that can go wrong in kvcache, with the context needed to act on it.
///
/// Errors are `Send + Sync + 'static`, so callers can box them or carry them across threads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KvCacheError {
    /// Appending would store more tokens than the cache was built for. Nothing was written.
    #[error("cache overflow: appending {appended} tokens to {stored} stored exceeds the capacity of {capacity}")]
    CacheOverflow {
        /// Tokens already stored per sequence.
        stored: usize,
        /// Tokens the append asked for.
        appended: usize,
        /// Tokens per sequence the cache can hold.
        capacity: usize,
    },
    /// The paged cache would need more blocks than its budget allows. Nothing was written.
    #[error("paged cache out of blocks: {needed} blocks needed, budget is {budget}")]
    OutOfBlocks {
        /// Physical blocks the append would need in total.
        needed: usize,
        /// Most physical blocks the cache may allocate.
        budget: usize,
    },
    /// A model, cache or generation configuration is unusable.
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong, in words.
        what: String,
    },
    /// A token id is outside the vocabulary.
    #[error("token {token} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The offending token.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A position beyond the model's positional table.
    #[error("position {position} is beyond the model's maximum sequence length {max_seq_len}")]
    PositionOutOfRange {
        /// The first position that does not fit.
        position: usize,
        /// Positions the model has encodings for.
        max_seq_len: usize,
    },
    /// An argument has the wrong shape.
    #[error("shape mismatch in {what}: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        actual: Vec<usize>,
    },
    /// A layer, sequence or head index beyond the store's shape.
    #[error("{what} {index} is out of range: the store has {len}")]
    IndexOutOfRange {
        /// Which index (`layer`, `sequence` or `head`).
        what: &'static str,
        /// The index asked for.
        index: usize,
        /// How many there are.
        len: usize,
    },
    /// A call that needs an empty (or a non-empty) state got the other.
    #[error("invalid state: {what}")]
    InvalidState {
        /// What is wrong, in words.
        what: &'static str,
    },
    /// A matrix product failed in accel.
    #[error("matmul failed: {0}")]
    Matmul(#[from] accel::AccelError),
    /// A [`crate::Projection`] implemented outside kvcache failed (its own error, as text).
    #[error("{kind} projection failed: {reason}")]
    Projection {
        /// The projection's [`crate::Projection::kind`].
        kind: &'static str,
        /// Its error message.
        reason: String,
    },
}
