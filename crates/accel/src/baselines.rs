//! The SGEMMs a user would otherwise pick, wrapped once so every comparison calls the same code:
//! `matrixmultiply::sgemm` and the `gemm` crate (with its `x86-v4` kernels). Behind the `baselines`
//! feature, so accel's users do not build them; the validation suite, the benches and the examples
//! turn it on. Shapes are checked here, so the `unsafe` calls only ever see live views of the
//! sizes they are told.

use crate::error::dims;
use crate::AccelError;
use ndarray::{ArrayView2, ArrayViewMut2};

fn check_shapes(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &ArrayViewMut2<'_, f32>,
) -> Result<(), AccelError> {
    AccelError::check_product(dims(a), dims(b), dims(c))
}

/// `C = A·B` by `matrixmultiply::sgemm`, one thread, any strides.
///
/// # Errors
/// `ShapeMismatch` / `OutputShapeMismatch` when the shapes do not chain.
pub fn matrixmultiply_sgemm(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) -> Result<(), AccelError> {
    check_shapes(&a, &b, &c)?;
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sa0, sa1, sb0, sb1, sc0, sc1) = (sa[0], sa[1], sb[0], sb[1], sc[0], sc[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked to be
    // m × k, k × n and m × n; c is uniquely borrowed, and beta = 0 means it is written, never read.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            sa0,
            sa1,
            b.as_ptr(),
            sb0,
            sb1,
            0.0,
            c.as_mut_ptr(),
            sc0,
            sc1,
        );
    }
    Ok(())
}

/// `C = A·B` by the `gemm` crate on `threads` threads (1: no parallelism), any strides.
///
/// # Errors
/// `ShapeMismatch` / `OutputShapeMismatch` when the shapes do not chain; `InvalidConfig` for zero
/// threads.
pub fn gemm_sgemm(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    threads: usize,
) -> Result<(), AccelError> {
    check_shapes(&a, &b, &c)?;
    if threads == 0 {
        return Err(AccelError::InvalidConfig {
            what: "gemm_sgemm needs at least one thread".into(),
        });
    }
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sa0, sa1, sb0, sb1, sc0, sc1) = (sa[0], sa[1], sb[0], sb[1], sc[0], sc[1]);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: as above; gemm takes (column stride, row stride) pairs, and read_dst = false never
    // reads c.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            sc1,
            sc0,
            false,
            a.as_ptr(),
            sa1,
            sa0,
            b.as_ptr(),
            sb1,
            sb0,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn both_baselines_match_the_naive_product_and_refuse_bad_shapes() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 16, 33), (64, 1, 9)] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| (i * 3 + j) as f32 * 0.25 - 1.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| (i + 2 * j) as f32 * 0.5 - 2.0);
            let expected = a.dot(&b);
            let mut c = Array2::from_elem((m, n), f32::NAN);
            matrixmultiply_sgemm(a.view(), b.view(), c.view_mut()).unwrap();
            assert!(c
                .iter()
                .zip(&expected)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0)));
            let mut c = Array2::from_elem((m, n), f32::NAN);
            gemm_sgemm(a.view(), b.view(), c.view_mut(), 1).unwrap();
            assert!(c
                .iter()
                .zip(&expected)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0)));
            // A transposed (column-major) view goes through the strides.
            let at = a.t().to_owned();
            let mut c = Array2::from_elem((m, n), f32::NAN);
            matrixmultiply_sgemm(at.t(), b.view(), c.view_mut()).unwrap();
            assert!(c
                .iter()
                .zip(&expected)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0)));
        }
        let a = Array2::<f32>::zeros((2, 3));
        let b = Array2::<f32>::zeros((4, 2));
        let mut c = Array2::<f32>::zeros((2, 2));
        assert!(matrixmultiply_sgemm(a.view(), b.view(), c.view_mut()).is_err());
        assert!(gemm_sgemm(a.view(), a.t(), c.view_mut(), 0).is_err());
        let mut wrong = Array2::<f32>::zeros((3, 3));
        assert!(gemm_sgemm(a.view(), a.t(), wrong.view_mut(), 1).is_err());
    }
}
