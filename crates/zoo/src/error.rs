//! The one error type of the zoo crate.

use std::path::PathBuf;

/// Why a model could not be trained, loaded, evaluated or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZooError {
    /// The data set could not be loaded (missing, corrupt, bad split).
    #[error(transparent)]
    Data(#[from] datasets::DatasetError),
    /// The training framework (candle) reported an error.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A statistic could not be computed (perf-core's statistics: an empty group, a bad level).
    #[error("statistics: {0}")]
    Statistics(#[from] perf_core::PerfError),
    /// The inference kernel (accel) reported an error.
    #[error("inference kernel: {0}")]
    Kernel(#[from] accel::AccelError),
    /// An input or weight has the wrong shape for the operation.
    #[error("shape mismatch in {context}: expected {expected}, got {actual}")]
    Shape {
        /// Which layer or operation.
        context: String,
        /// What was expected.
        expected: String,
        /// What was given.
        actual: String,
    },
    /// A weight file lacks a tensor or holds one of the wrong shape.
    #[error("weights for {model}: {reason}")]
    Weights {
        /// Which model.
        model: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The weight cache could not be read or written.
    #[error("weight cache at {path}: {reason}")]
    Cache {
        /// The cache file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Training diverged (a NaN or infinite loss).
    #[error("training {model} diverged at step {step}: loss {loss}")]
    Diverged {
        /// Which model.
        model: String,
        /// The optimizer step at which the loss stopped being finite.
        step: usize,
        /// The loss value seen.
        loss: f32,
    },
    /// [`crate::load_cached`] found no cached weights for the model's current configuration.
    #[error("no cached weights for {model} (key {key})")]
    NotCached {
        /// Model name.
        model: String,
        /// The cache key hash looked up.
        key: String,
    },
    /// An argument is outside its domain (zero epochs, an empty evaluation set, a confidence outside (0, 1)).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong, with the offending values.
        reason: String,
    },
}

pub(crate) fn shape_error(
    context: &str,
    expected: impl ToString,
    actual: impl ToString,
) -> ZooError {
    ZooError::Shape {
        context: context.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}
