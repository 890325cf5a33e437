//! Helpers shared by accel's integration tests: seeded inputs and the f64 reference product.

use ndarray::{Array2, ArrayView2};
use rand::{rngs::StdRng, Rng};

/// A `rows × cols` matrix of values uniform in [−1, 1).
pub fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-1.0f32..1.0))
}

/// Reference product in f64, and the magnitude Σ_p |a_ip · b_pj| of each entry's terms (the scale of
/// the rounding error bound every kernel test uses).
pub fn reference(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> (Array2<f64>, Array2<f64>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let mut product = Array2::zeros((m, n));
    let mut magnitude = Array2::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let term = f64::from(a[[i, p]]) * f64::from(b[[p, j]]);
                product[[i, j]] += term;
                magnitude[[i, j]] += term.abs();
            }
        }
    }
    (product, magnitude)
}
