//! The one error type of the accel crate.

use crate::Backend;

/// Everything that can go wrong in accel, with the context needed to act on it.
///
/// Errors are `Send + Sync + 'static` so callers can box them or carry them across threads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AccelError {
    /// The inner dimensions of `a · b` differ: `a` is `m × k`, `b` must be `k × n`.
    #[error("shape mismatch: a is {}x{}, b is {}x{} (a's columns must equal b's rows)", a_shape[0], a_shape[1], b_shape[0], b_shape[1])]
    ShapeMismatch {
        /// Shape of the left operand, `[rows, cols]`.
        a_shape: [usize; 2],
        /// Shape of the right operand, `[rows, cols]`.
        b_shape: [usize; 2],
    },
    /// The output buffer does not have the shape `[a rows, b cols]`.
    #[error("output shape mismatch: expected {}x{}, got {}x{}", expected[0], expected[1], actual[0], actual[1])]
    OutputShapeMismatch {
        /// The shape the product has.
        expected: [usize; 2],
        /// The shape of the buffer that was passed.
        actual: [usize; 2],
    },
    /// A kernel was forced (by [`Backend`] or `ACCEL_KERNEL`) that this CPU cannot run.
    #[error("kernel {backend} is not available on this cpu")]
    KernelUnavailable {
        /// The backend that was asked for.
        backend: Backend,
    },
    /// `ACCEL_KERNEL` holds a value that names no kernel.
    #[error("ACCEL_KERNEL={value:?} names no kernel (expected one of {expected})")]
    UnknownKernelName {
        /// The value that was found.
        value: String,
        /// The accepted names, comma separated.
        expected: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong, in words.
        what: String,
    },
}

impl AccelError {
    /// The one shape check of a product `a · b` into `c`: a [`AccelError::ShapeMismatch`] when the inner
    /// dimensions differ, an [`AccelError::OutputShapeMismatch`] when `c` is not `a rows × b cols`.
    pub(crate) fn check_product(
        a_shape: [usize; 2],
        b_shape: [usize; 2],
        c_shape: [usize; 2],
    ) -> Result<(), AccelError> {
        if a_shape[1] != b_shape[0] {
            return Err(AccelError::ShapeMismatch { a_shape, b_shape });
        }
        let expected = [a_shape[0], b_shape[1]];
        if c_shape != expected {
            return Err(AccelError::OutputShapeMismatch {
                expected,
                actual: c_shape,
            });
        }
        Ok(())
    }
}

/// `[rows, cols]` of a 2-D view.
pub(crate) fn dims<S: ndarray::Data>(view: &ndarray::ArrayBase<S, ndarray::Ix2>) -> [usize; 2] {
    [view.nrows(), view.ncols()]
}
