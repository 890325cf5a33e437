//! The suite's one error type: what can go wrong running a suite or reading its archive.

use std::path::PathBuf;

/// An error of the suite library. Claims that fail to measure are not errors here: they are ERROR
/// verdicts in the run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("writing", "listing", ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A results file could not be parsed (corrupt, or a schema this build does not read).
    #[error(transparent)]
    Results(#[from] perf_core::PerfError),
    /// The history store could not be used (corrupt, a newer schema, unreachable, a baseline it does
    /// not hold).
    #[error(transparent)]
    History(#[from] history::HistoryError),
    /// Serializing a run failed.
    #[error("serializing the run: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A `--module` named no module of the suite.
    #[error("unknown module `{requested}`; known: {known}")]
    UnknownModule {
        /// The name given.
        requested: String,
        /// The suite's modules, comma-separated.
        known: String,
    },
    /// Fewer archived runs than the command needs.
    #[error("{directory} holds {have} run(s); need at least {need} (run the suite first)")]
    NotEnoughRuns {
        /// The archive directory.
        directory: PathBuf,
        /// Runs found.
        have: usize,
        /// Runs needed.
        need: usize,
    },
    /// The arguments made no sense together.
    #[error("{0}")]
    Usage(String),
}

impl SuiteError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SuiteError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
