//! The one error type of the olympics crate.

/// Everything that can go wrong while building an event, a submission or a verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OlympicsError {
    /// A submission returned an output of the wrong shape.
    #[error("submission {submission}: output shape {actual:?}, expected {expected:?}")]
    OutputShape {
        /// The submission's name.
        submission: String,
        /// `[batch, outputs]` the event expects.
        expected: [usize; 2],
        /// What came back.
        actual: Vec<usize>,
    },
    /// A submission's forward pass failed (an error it returned, or a panic it raised).
    #[error("submission {submission} failed: {reason}")]
    Submission {
        /// The submission's name.
        submission: String,
        /// Its error message, or the panic payload.
        reason: String,
    },
    /// An input of the wrong shape was given to a model or an event.
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        /// What was being checked.
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        actual: String,
    },
    /// An argument is out of its domain.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Why.
        reason: String,
    },
    /// An event's data could not be loaded.
    #[error("event {event}: data unavailable: {reason}")]
    Data {
        /// The event.
        event: String,
        /// Why.
        reason: String,
    },
    /// A measurement could not be made.
    #[error("measurement: {0}")]
    Measure(#[from] perf_core::PerfError),
    /// A model from the zoo failed.
    #[cfg(feature = "reference")]
    #[error("zoo: {0}")]
    Zoo(#[from] zoo::ZooError),
    /// kvcache's transformer (the challenge's model) failed.
    #[cfg(feature = "reference")]
    #[error("kvcache: {0}")]
    KvCache(#[from] kvcache::KvCacheError),
    /// A quantization step failed.
    #[error("quant: {0}")]
    Quant(#[from] quant::QuantError),
    /// A kernel failed.
    #[error("accel: {0}")]
    Accel(#[from] accel::AccelError),
    /// A data set failed to load.
    #[error("datasets: {0}")]
    Dataset(#[from] datasets::DatasetError),
}

/// Shorthand for a shape error.
pub(crate) fn shape_error(
    what: impl Into<String>,
    expected: impl std::fmt::Display,
    actual: impl std::fmt::Display,
) -> OlympicsError {
    OlympicsError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// Shorthand for an invalid argument.
pub(crate) fn invalid(reason: impl Into<String>) -> OlympicsError {
    OlympicsError::InvalidArgument {
        reason: reason.into(),
    }
}
