//! The single place where zoo's inference calls a matrix-multiply kernel.
//!
//! Every layer's forward pass goes through [`matmul`], which is `accel::matmul`: optimizing the project's own
//! kernel is what changes the measured inference time. `ACCEL_KERNEL` forces one of accel's kernels.

use ndarray::{Array2, ArrayView2};

use crate::ZooError;

/// Name of the kernel used for inference, for recording next to results.
pub const INFERENCE_KERNEL: &str = "accel::matmul (auto-selected; ACCEL_KERNEL overrides)";

/// `a · b` on the project's kernel.
///
/// # Errors
/// [`ZooError::Kernel`] when the inner dimensions differ or a forced kernel cannot run here.
pub fn matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
    Ok(accel::matmul(a, b)?)
}
