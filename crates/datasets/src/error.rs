//! The one error type of the datasets crate.

use std::path::PathBuf;

/// Why a data set could not be loaded or prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file or directory does not exist; `hint` says how to get the data.
    #[error("{dataset} not found at {path}: {hint}")]
    NotFound {
        /// Which data set was looked for.
        dataset: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How a user gets the data (package, environment variable, download page).
        hint: String,
    },
    /// The file exists but could not be read.
    #[error("i/o error reading {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is not what the format promises.
    #[error("corrupt {dataset} file {path}: {reason}")]
    Corrupt {
        /// Which data set the file belongs to.
        dataset: &'static str,
        /// The offending file (or `<embedded>` for data compiled into the crate).
        path: PathBuf,
        /// What is wrong, with the offending values.
        reason: String,
    },
    /// An argument is out of its domain (an empty split, a fraction outside (0, 1), an unknown speaker, …).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong, with the offending values.
        reason: String,
    },
    /// An external command that produces the data (the `bible` program) failed.
    #[error("command `{command}` failed: {reason}")]
    Command {
        /// The command line that was run.
        command: String,
        /// Exit status or spawn error.
        reason: String,
    },
}

impl DatasetError {
    /// Whether this error means "the data is not installed here" (as opposed to broken data or a bad argument).
    ///
    /// Tests use it to decide between skipping and failing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DatasetError::NotFound { .. })
    }
}

pub(crate) fn io_error(path: impl Into<PathBuf>, source: std::io::Error) -> DatasetError {
    DatasetError::Io {
        path: path.into(),
        source,
    }
}
