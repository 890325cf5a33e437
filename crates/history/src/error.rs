//! The history crate's one error type: every failure of the store, the detector and the gate, with the
//! location (password removed), the run or the claim it concerns.

use thiserror::Error;

/// Everything that can go wrong in the history crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The store file or server could not be opened or queried.
    #[error("history store {location}: {reason}")]
    Store {
        /// Where the store is (a path, or a URL with its password removed).
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The file exists but is not a readable history database (truncated, overwritten, another
    /// program's database). It is never recreated: move it away to start a new history.
    #[error("history store {location} is corrupt or not a TorchPerf history: {reason}; it was left untouched (move it away to start a new history)")]
    Corrupt {
        /// Path of the file.
        location: String,
        /// What was found.
        reason: String,
    },
    /// The store was written by a newer TorchPerf.
    #[error("history store {location} has schema version {found}, newer than this build reads (up to {supported}); update TorchPerf to use it")]
    NewerSchema {
        /// Where the store is.
        location: String,
        /// Version found in the store.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// A location that names no supported backend.
    #[error("unsupported history store location {location}: {reason}")]
    Location {
        /// The location given (password removed).
        location: String,
        /// Why it is not supported.
        reason: String,
    },
    /// A results file could not be read or parsed.
    #[error("cannot import {path}: {reason}")]
    Import {
        /// The file or directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// A run id or commit that the history does not hold.
    #[error("{what} not found in the history: {detail}")]
    NotFound {
        /// What was looked for (`run`, `baseline commit`, ...).
        what: String,
        /// Which one, and what the history does hold.
        detail: String,
    },
    /// Bad input to a computation (an empty series, a non-finite value, a bad setting).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The re-measurement callback of the gate failed.
    #[error("re-measuring {claims:?} failed: {reason}")]
    Remeasure {
        /// The claims that were to be re-measured.
        claims: Vec<String>,
        /// The callback's error.
        reason: String,
    },
    /// A figure could not be drawn.
    #[error("plot of {claim}: {reason}")]
    Plot {
        /// The claim.
        claim: String,
        /// Why.
        reason: String,
    },
}

/// Result alias of the crate.
pub type Result<T, E = HistoryError> = std::result::Result<T, E>;
