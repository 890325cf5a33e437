//! The one error type of perf-core.

/// Everything that can go wrong while measuring or judging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfError {
    /// A sample had no values.
    #[error("empty sample for {what}")]
    Empty {
        /// What was being built.
        what: String,
    },
    /// A value was NaN or infinite.
    #[error("non-finite value {value} at index {index} in {what}")]
    NonFinite {
        /// What was being built.
        what: String,
        /// Position of the offending value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// Too few values for the requested statistic.
    #[error("insufficient samples for {what}: need at least {needed}, have {have}")]
    InsufficientSamples {
        /// The statistic.
        what: String,
        /// How many are needed.
        needed: usize,
        /// How many there are.
        have: usize,
    },
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An argument is out of its domain (negative duration, mismatched lengths, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The counting allocator is not the global allocator of this process.
    #[error("counting allocator is not installed as #[global_allocator] in this binary")]
    AllocatorNotInstalled,
    /// Reading or writing a file failed.
    #[error("i/o error at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The code under measurement returned an error inside a timed closure: the measurement is void.
    #[error("the measured code failed ({side}): {message}")]
    WorkloadFailed {
        /// Which closure failed ("baseline", "candidate", or the measurement's name).
        side: String,
        /// The error it returned, as text.
        message: String,
    },
    /// A results file could not be understood.
    #[error("results file {path}: {reason}")]
    ResultsFormat {
        /// The path involved.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
}

/// Check that every value is finite and that there is at least one.
pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<(), PerfError> {
    if values.is_empty() {
        return Err(PerfError::Empty {
            what: what.to_string(),
        });
    }
    if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(PerfError::NonFinite {
            what: what.to_string(),
            index,
            value: *value,
        });
    }
    Ok(())
}
