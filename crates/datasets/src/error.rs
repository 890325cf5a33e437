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

    /// For data that is not installed, the command that installs it (what a SKIPPED claim tells
    /// its reader to run); `None` for any other error.
    pub fn enable_command(&self) -> Option<&'static str> {
        let DatasetError::NotFound { dataset, .. } = self else {
            return None;
        };
        Some(match *dataset {
            "fashion-mnist" => "apt-get install dataset-fashion-mnist",
            "fsdd" => {
                "git clone https://github.com/Jakobovski/free-spoken-digit-dataset && \
                 export TORCHPERF_FSDD_DIR=$PWD/free-spoken-digit-dataset/recordings"
            }
            "bible-kjv" => "apt-get install bible-kjv",
            "devils-dictionary" => "apt-get install dict-devil",
            _ => "install the data set named in the reason",
        })
    }
}

pub(crate) fn io_error(path: impl Into<PathBuf>, source: std::io::Error) -> DatasetError {
    DatasetError::Io {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::DatasetError;
    use std::path::PathBuf;

    #[test]
    fn missing_data_names_the_command_that_installs_it() {
        let missing = DatasetError::NotFound {
            dataset: "fashion-mnist",
            path: PathBuf::from("/nowhere"),
            hint: String::new(),
        };
        assert_eq!(
            missing.enable_command(),
            Some("apt-get install dataset-fashion-mnist")
        );
        let broken = DatasetError::Io {
            path: PathBuf::from("/x"),
            source: std::io::Error::other("bad"),
        };
        assert_eq!(broken.enable_command(), None);
    }
}
