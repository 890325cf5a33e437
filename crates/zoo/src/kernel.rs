//! The single place where zoo's inference calls a matrix-multiply kernel.
//!
//! Every layer's forward pass goes through [`matmul`], so that optimizing the project's own kernel is what
//! changes the measured inference time, and so that the kernel that ran can be named in results.

use ndarray::{Array2, ArrayView2};

use crate::ZooError;

/// Name of the kernel used for inference, for recording next to results.
pub const INFERENCE_KERNEL: &str = "zoo private shim (ndarray dot)";

/// `a · b` on the project's kernel.
///
/// # Errors
/// [`ZooError::Shape`] when the inner dimensions differ.
pub fn matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
    if a.ncols() != b.nrows() {
        return Err(crate::error::shape_error(
            "matmul",
            format!("b with {} rows", a.ncols()),
            format!("{}x{} · {}x{}", a.nrows(), a.ncols(), b.nrows(), b.ncols()),
        ));
    }
    Ok(a.dot(&b))
}
