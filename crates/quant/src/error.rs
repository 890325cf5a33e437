//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in quant. Bad input is an `Err`, never a panic or a silent fallback.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum QuantError {
    /// A value that must be finite was NaN or infinite (calibration data, a tensor to quantize, a scale).
    #[error("non-finite value {value} at index {index} in {what}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat index of the first offending value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// An observer was asked for a range before it saw any value.
    #[error("observer {observer} has seen no data")]
    NoCalibrationData {
        /// The observer's name.
        observer: &'static str,
    },
    /// Shapes that must agree do not.
    #[error("shape mismatch in {what}: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// Which operand.
        what: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Actual shape.
        actual: Vec<usize>,
    },
    /// A parameter outside its domain (a bit width, a percentile, a momentum, a scale).
    #[error("invalid parameter {what}: {reason}")]
    InvalidParameter {
        /// The parameter.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A forced kernel cannot run on this CPU.
    #[error("kernel {kernel} is not available on this CPU")]
    KernelUnavailable {
        /// Its name.
        kernel: &'static str,
    },
    /// `QUANT_KERNEL` names no kernel.
    #[error(
        "unknown kernel name {name:?} in QUANT_KERNEL (expected avx512, avx2, scalar or auto, or a kernel name: avx512-vnni, avx512-f16c, avx2-f16c)"
    )]
    UnknownKernelName {
        /// What was given.
        name: String,
    },
    /// The f32 baseline kernel failed.
    #[error("f32 kernel: {0}")]
    Accel(#[from] accel::AccelError),
}

/// The first non-finite value of `values`, as an error.
pub(crate) fn check_finite(what: &'static str, values: &[f32]) -> Result<(), QuantError> {
    match values.iter().position(|value| !value.is_finite()) {
        Some(index) => Err(QuantError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}
