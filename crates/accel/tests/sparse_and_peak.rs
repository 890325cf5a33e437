//! CSR storage and CSR × dense products against the dense kernels; the peak probe's report is well formed.

use std::time::Duration;

use accel::{AccelError, CsrMatrix, Isa, PeakProbeConfig};
use ndarray::{s, Array2};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A matrix with roughly `density` of its entries non-zero, the rest exactly zero.
fn sparse_matrix(rng: &mut StdRng, rows: usize, cols: usize, density: f64) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || {
        if rng.random_bool(density) {
            rng.random_range(-1.0f32..1.0)
        } else {
            0.0
        }
    })
}

#[test]
fn csr_times_dense_matches_the_dense_product() {
    let mut rng = StdRng::seed_from_u64(11);
    for &(m, k, n, density) in &[
        (0, 0, 0, 0.5),
        (1, 1, 1, 1.0),
        (7, 9, 5, 0.0),
        (17, 33, 15, 0.3),
        (40, 64, 65, 0.1),
        (3, 100, 2, 0.9),
    ] {
        let dense = sparse_matrix(&mut rng, m, k, density);
        let b = Array2::from_shape_simple_fn((k, n), || rng.random_range(-1.0f32..1.0));
        let csr = CsrMatrix::from_dense(dense.view(), 0.0).unwrap();
        assert_eq!(csr.shape(), [m, k]);
        assert_eq!(csr.nnz(), dense.iter().filter(|v| **v != 0.0).count());
        assert_eq!(csr.to_dense(), dense);
        let expected = accel::matmul_with(
            dense.view(),
            b.view(),
            &accel::MatmulConfig::with_backend(accel::Backend::NaiveIkj),
        )
        .unwrap()
        .0;
        let product = csr.matmul_dense(b.view()).unwrap();
        // Both sum the same non-zero terms in the same (row, increasing column) order, skipping exact zeros,
        // which add nothing; a loose 1e-5 absolute bound (terms ≤ 1, k ≤ 100) covers FMA contraction differences.
        for (x, y) in product.iter().zip(expected.iter()) {
            assert!((x - y).abs() <= 1e-5, "{m}x{k}x{n}: {x} vs {y}");
        }
        // Accumulate into a strided output.
        let mut big = Array2::from_elem((m, 2 * n), 1.0f32);
        csr.matmul_dense_into(b.view(), big.slice_mut(s![.., ..;2]), true)
            .unwrap();
        for ((i, j), &value) in big.slice(s![.., ..;2]).indexed_iter() {
            assert!((value - 1.0 - expected[[i, j]]).abs() <= 1e-5);
        }
        if n > 0 {
            assert!(big.slice(s![.., 1..;2]).iter().all(|&v| v == 1.0));
        }
    }
}

#[test]
fn threshold_prunes_small_entries_and_storage_is_counted() {
    let dense = ndarray::array![
        [0.5f32, -0.05, 0.0, 2.0],
        [0.0, 0.0, 0.0, 0.0],
        [-0.2, 0.09, 0.1, 0.0]
    ];
    let csr = CsrMatrix::from_dense(dense.view(), 0.1).unwrap();
    // Kept: 0.5, 2.0, -0.2 (|x| > 0.1); 0.1 itself is not above the threshold.
    assert_eq!(csr.nnz(), 3);
    let expected_bytes = 3 * 4 + 3 * 4 + 4 * std::mem::size_of::<usize>();
    assert_eq!(csr.storage_bytes(), expected_bytes);
    assert_eq!(csr.dense_bytes(), 12 * 4);
    assert!((csr.density() - 0.25).abs() < 1e-12);
    assert!(matches!(
        CsrMatrix::from_dense(dense.view(), -1.0),
        Err(AccelError::InvalidConfig { .. })
    ));
    assert!(matches!(
        CsrMatrix::from_dense(dense.view(), f32::NAN),
        Err(AccelError::InvalidConfig { .. })
    ));
}

#[test]
fn csr_shape_mismatch_is_an_error() {
    let csr = CsrMatrix::from_dense(Array2::<f32>::eye(3).view(), 0.0).unwrap();
    let b = Array2::<f32>::zeros((4, 2));
    assert_eq!(
        csr.matmul_dense(b.view()),
        Err(AccelError::ShapeMismatch {
            a_shape: [3, 3],
            b_shape: [4, 2]
        })
    );
    let b = Array2::<f32>::zeros((3, 2));
    let mut c = Array2::<f32>::zeros((3, 3));
    assert_eq!(
        csr.matmul_dense_into(b.view(), c.view_mut(), false),
        Err(AccelError::OutputShapeMismatch {
            expected: [3, 2],
            actual: [3, 3]
        })
    );
}

#[test]
fn peak_probe_reports_every_available_isa() {
    for isa in Isa::available() {
        let config = PeakProbeConfig {
            isa: Some(isa),
            threads: Some(2),
            min_duration: Duration::from_millis(2),
            repetitions: 1,
        };
        let report = accel::peak_probe(&config).unwrap();
        assert_eq!(report.isa, isa);
        assert_eq!(report.threads, 2);
        // Well-formedness only (finite, positive); how fast is a benchmark's business, not a unit test's.
        assert!(report.gflops_per_core.is_finite() && report.gflops_per_core > 0.0);
        assert!(report.gflops_all_cores.is_finite() && report.gflops_all_cores > 0.0);
    }
    let zero_threads = PeakProbeConfig {
        threads: Some(0),
        ..PeakProbeConfig::default()
    };
    assert!(matches!(
        accel::peak_probe(&zero_threads),
        Err(AccelError::InvalidConfig { .. })
    ));
}

#[test]
fn fma_chains_run_on_every_available_isa_and_refuse_missing_ones() {
    for isa in Isa::available() {
        // The chains converge to offset / (1 − scale) = 0.1 per lane from 1.0: finite, positive.
        let sum = accel::fma_chains(isa, 1_000).unwrap();
        assert!(sum.is_finite() && sum > 0.0, "{isa}: {sum}");
        assert!(accel::fma_chain_flops_per_iteration(isa) >= 2.0);
    }
    for isa in Isa::ALL {
        if !isa.is_available() {
            assert!(matches!(
                accel::fma_chains(isa, 10),
                Err(AccelError::KernelUnavailable { .. })
            ));
        }
    }
}
