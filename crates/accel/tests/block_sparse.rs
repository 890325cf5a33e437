//! Block-sparse storage, block pruning and the block-sparse products (`vector_product_into`, `matmul_into`), and
//! CSR's batch-1 `vector_product_into`, against an f64 reference of the dense product: shapes around every block
//! and vector width, block sparsities 0–100%, each instruction set forced, zero skipping on and off, inputs with
//! zeros, NaN-prefilled outputs, the accumulate variant and the errors.

use accel::{
    prune_blocks, AccelError, BlockSparseMatrix, CsrMatrix, Isa, SparseGemvConfig,
    SPARSE_BLOCK_WIDTH,
};
use ndarray::{s, Array2, ArrayView2};
use rand::{rngs::StdRng, Rng, SeedableRng};

mod common;
use common::{random_matrix, reference};

const SEED: u64 = 0xb10c5;
const SPARSITIES: [f64; 5] = [0.0, 0.5, 0.75, 0.9, 1.0];

/// Input rows: 0, 1, primes, around the vector widths. Columns: 0, 1, one below / at / above the AVX2 width (8),
/// the block width (16) and its multiples, primes, and the Fashion layers' widths.
fn shapes() -> Vec<(usize, usize)> {
    let rows = [0usize, 1, 2, 7, 16, 17, 31, 100];
    let cols = [
        0usize, 1, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 129, 256,
    ];
    let mut shapes: Vec<(usize, usize)> = rows
        .iter()
        .flat_map(|&k| cols.iter().map(move |&n| (k, n)))
        .collect();
    shapes.extend([(784, 256), (256, 10), (400, 128)]);
    shapes
}

fn configs() -> Vec<SparseGemvConfig> {
    let mut configs = Vec::new();
    for skip_zero_inputs in [true, false] {
        configs.push(SparseGemvConfig {
            isa: None,
            skip_zero_inputs,
        });
        for isa in Isa::ALL {
            if isa.is_available() {
                configs.push(SparseGemvConfig {
                    isa: Some(isa),
                    skip_zero_inputs,
                });
            } else {
                println!("skipping forced {isa}: not available on this cpu");
            }
        }
    }
    configs
}

/// An input vector (as a `1 × k` matrix) with about a third of its entries exactly zero, as after a ReLU.
fn input_with_zeros(rng: &mut StdRng, k: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((1, k), || {
        if rng.random_bool(0.33) {
            0.0
        } else {
            rng.random_range(-1.0f32..1.0)
        }
    })
}

/// Tolerance `max(abs, rel · (Σ|x·w| + |initial|))` with `rel = 2(k+1)ε`: each output is a k-term f32 sum (in
/// row order here, in any order in the reference), within γ_k · Σ|x·w| of the exact value (Higham §3.1); twice
/// that, plus one rounding for the accumulate add.
fn assert_close(
    actual: &[f32],
    expected: &Array2<f64>,
    magnitude: &Array2<f64>,
    initial: Option<&[f32]>,
    k: usize,
    what: &str,
) {
    let rel = 2.0 * (k as f64 + 1.0) * f64::from(f32::EPSILON);
    for (col, &value) in actual.iter().enumerate() {
        let base = initial.map_or(0.0, |init| f64::from(init[col]));
        let want = expected[[0, col]] + base;
        let tolerance = f64::max(1e-6, rel * (magnitude[[0, col]] + base.abs()));
        let error = (f64::from(value) - want).abs();
        assert!(
            error <= tolerance,
            "{what}: output {col} is {value}, expected {want} (error {error:e} > {tolerance:e})"
        );
    }
}

fn blocks_total(k: usize, n: usize) -> usize {
    k * n.div_ceil(SPARSE_BLOCK_WIDTH)
}

#[test]
fn vector_product_matches_the_dense_reference_on_every_shape_sparsity_and_isa() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let configs = configs();
    for (k, n) in shapes() {
        let weight = random_matrix(&mut rng, k, n);
        let x = input_with_zeros(&mut rng, k);
        for sparsity in SPARSITIES {
            let pruned = prune_blocks(weight.view(), sparsity).unwrap();
            let matrix = BlockSparseMatrix::from_dense(pruned.view()).unwrap();
            let what = format!("{k}×{n} at {sparsity}");
            assert_eq!(matrix.shape(), [k, n], "{what}");
            assert_eq!(matrix.to_dense(), pruned, "{what}: round trip");
            let total = blocks_total(k, n);
            let removed = (sparsity * total as f64).floor() as usize;
            assert_eq!(matrix.n_blocks(), total - removed, "{what}: blocks kept");
            assert_eq!(
                matrix.storage_bytes(),
                matrix.n_blocks() * (SPARSE_BLOCK_WIDTH * 4 + 2) + (k + 1) * 4,
                "{what}: storage bytes"
            );
            let (expected, magnitude) = reference(x.view(), pruned.view());
            let x_slice = x.as_slice().unwrap();
            for config in &configs {
                let mut y = vec![f32::NAN; n];
                let run = matrix
                    .vector_product_into(x_slice, &mut y, false, config)
                    .unwrap();
                assert_eq!(run.isa, config.isa.unwrap_or_else(Isa::best));
                assert_eq!(run.to_string(), format!("block-sparse-{}", run.isa));
                let what = format!("{what} {config:?}");
                assert_close(&y, &expected, &magnitude, None, k, &what);
                let initial: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let mut y = initial.clone();
                matrix
                    .vector_product_into(x_slice, &mut y, true, config)
                    .unwrap();
                assert_close(&y, &expected, &magnitude, Some(&initial), k, &what);
            }
        }
    }
}

#[test]
fn few_rows_product_matches_the_reference_on_strided_inputs() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    for (k, n) in [(0usize, 5usize), (7, 33), (33, 17), (100, 64), (64, 10)] {
        let weight = prune_blocks(random_matrix(&mut rng, k, n).view(), 0.6).unwrap();
        let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
        for m in [0usize, 1, 3, 5] {
            // A transposed (column-major) A: its rows are strided; and a row-major A read with its columns
            // reversed: its rows have stride −1.
            let a_transposed = random_matrix(&mut rng, k, m);
            let a_reversed = random_matrix(&mut rng, m, k);
            for (a, layout) in [
                (a_transposed.t(), "transposed"),
                (a_reversed.slice(s![.., ..;-1]), "reversed"),
            ] {
                let (expected, magnitude) = reference(a, weight.view());
                for config in configs() {
                    let mut c = Array2::from_elem((m, n + 3), f32::NAN);
                    let run = matrix
                        .matmul_into(a, c.slice_mut(s![.., ..n]), false, &config)
                        .unwrap();
                    assert_eq!(run.isa, config.isa.unwrap_or_else(Isa::best));
                    for row in 0..m {
                        let actual: Vec<f32> = c.slice(s![row, ..n]).to_vec();
                        assert_close(
                            &actual,
                            &expected.slice(s![row..row + 1, ..]).to_owned(),
                            &magnitude.slice(s![row..row + 1, ..]).to_owned(),
                            None,
                            k,
                            &format!("{m}×{k}·{k}×{n} {layout} row {row} {config:?}"),
                        );
                        assert!(c[[row, n]].is_nan(), "wrote past the output columns");
                    }
                }
            }
        }
    }
}

#[test]
fn zero_inputs_are_skipped_and_counted() {
    let weight = Array2::from_shape_fn((4, 20), |(row, col)| (row * 20 + col) as f32 + 1.0);
    let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
    let x = [0.0f32, 2.0, 0.0, -1.0];
    let mut y = vec![f32::NAN; 20];
    let run = matrix
        .vector_product_into(&x, &mut y, false, &SparseGemvConfig::default())
        .unwrap();
    assert_eq!(run.skipped_rows, 2);
    let no_skip = SparseGemvConfig {
        skip_zero_inputs: false,
        ..SparseGemvConfig::default()
    };
    let mut y_all = vec![f32::NAN; 20];
    let run = matrix
        .vector_product_into(&x, &mut y_all, false, &no_skip)
        .unwrap();
    assert_eq!(run.skipped_rows, 0);
    assert_eq!(y, y_all);
    // The documented difference: an infinite weight in a row whose input is zero.
    let mut infinite = weight.clone();
    infinite[[0, 3]] = f32::INFINITY;
    let matrix = BlockSparseMatrix::from_dense(infinite.view()).unwrap();
    matrix
        .vector_product_into(&x, &mut y, false, &SparseGemvConfig::default())
        .unwrap();
    assert!(y.iter().all(|value| value.is_finite()));
    matrix
        .vector_product_into(&x, &mut y, false, &no_skip)
        .unwrap();
    assert!(y[3].is_nan());
}

#[test]
fn prune_blocks_removes_the_smallest_blocks_and_keeps_nan() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let (k, n) = (30usize, 40usize);
    let mut weight = random_matrix(&mut rng, k, n);
    weight[[3, 35]] = f32::NAN;
    weight
        .slice_mut(s![3, 32..40])
        .mapv_inplace(|value| value * 1e-6);
    weight[[3, 35]] = f32::NAN;
    let norm = |w: ArrayView2<'_, f32>, row: usize, block: usize| -> f64 {
        let end = ((block + 1) * 16).min(n);
        w.slice(s![row, block * 16..end])
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
    };
    for sparsity in [0.0, 0.3, 0.5, 0.99, 1.0] {
        let pruned = prune_blocks(weight.view(), sparsity).unwrap();
        let total = blocks_total(k, n);
        let mut kept_min = f64::INFINITY;
        let mut removed_max = 0.0f64;
        let mut removed = 0;
        for row in 0..k {
            for block in 0..n.div_ceil(16) {
                let end = ((block + 1) * 16).min(n);
                let zero = pruned
                    .slice(s![row, block * 16..end])
                    .iter()
                    .all(|&v| v == 0.0);
                let original = norm(weight.view(), row, block);
                if zero {
                    removed += 1;
                    removed_max = removed_max.max(original);
                } else {
                    assert_eq!(
                        pruned.slice(s![row, block * 16..end]).to_vec().len(),
                        end - block * 16
                    );
                    kept_min = kept_min.min(if original.is_nan() {
                        f64::INFINITY
                    } else {
                        original
                    });
                }
            }
        }
        let expected_removed = (sparsity * total as f64).floor() as usize;
        assert_eq!(removed, expected_removed, "sparsity {sparsity}");
        if removed > 0 && removed < total {
            assert!(removed_max <= kept_min, "sparsity {sparsity}");
        }
        if sparsity < 1.0 {
            assert!(
                pruned[[3, 35]].is_nan(),
                "a NaN block was pruned at {sparsity}"
            );
        }
    }
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(matches!(
            prune_blocks(weight.view(), bad),
            Err(AccelError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn shape_and_configuration_errors_are_typed() {
    let weight = Array2::<f32>::ones((5, 20));
    let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
    let config = SparseGemvConfig::default();
    let mut y = vec![0.0f32; 20];
    assert!(matches!(
        matrix.vector_product_into(&[1.0; 4], &mut y, false, &config),
        Err(AccelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        matrix.vector_product_into(&[1.0; 5], &mut y[..19], false, &config),
        Err(AccelError::ShapeMismatch { .. })
    ));
    let a = Array2::<f32>::ones((2, 5));
    let mut c = Array2::<f32>::zeros((2, 21));
    assert!(matches!(
        matrix.matmul_into(a.view(), c.view_mut(), false, &config),
        Err(AccelError::OutputShapeMismatch { .. })
    ));
    let mut c_transposed = Array2::<f32>::zeros((20, 2));
    assert!(matches!(
        matrix.matmul_into(
            a.view(),
            c_transposed.view_mut().reversed_axes(),
            false,
            &config
        ),
        Err(AccelError::InvalidConfig { .. })
    ));
    assert!(matches!(
        matrix.matmul_into(
            Array2::<f32>::ones((2, 4)).view(),
            c.view_mut(),
            false,
            &config
        ),
        Err(AccelError::ShapeMismatch { .. })
    ));
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_available()) {
        let forced = SparseGemvConfig {
            isa: Some(isa),
            ..config
        };
        assert!(matches!(
            matrix.vector_product_into(&[1.0; 5], &mut y, false, &forced),
            Err(AccelError::KernelUnavailable { .. })
        ));
    }
    let too_wide = Array2::<f32>::zeros((1, 65_536 * 16 + 1));
    assert!(matches!(
        BlockSparseMatrix::from_dense(too_wide.view()),
        Err(AccelError::InvalidConfig { .. })
    ));
}

#[test]
fn empty_and_fully_pruned_matrices_write_zeros() {
    let weight = Array2::<f32>::zeros((9, 33));
    let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
    assert_eq!(matrix.n_blocks(), 0);
    assert_eq!(matrix.block_density(), 0.0);
    let mut y = vec![f32::NAN; 33];
    matrix
        .vector_product_into(&[1.0; 9], &mut y, false, &SparseGemvConfig::default())
        .unwrap();
    assert!(y.iter().all(|&value| value == 0.0));
    let empty = BlockSparseMatrix::from_dense(Array2::<f32>::zeros((0, 0)).view()).unwrap();
    assert_eq!(empty.block_density(), 0.0);
    empty
        .vector_product_into(&[], &mut [], false, &SparseGemvConfig::default())
        .unwrap();
}

#[test]
fn csr_vector_product_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(SEED + 3);
    for (out, inp) in [
        (0usize, 0usize),
        (1, 1),
        (5, 3),
        (17, 33),
        (256, 784),
        (10, 256),
        (64, 7),
    ] {
        for sparsity in SPARSITIES {
            let weight = prune_blocks(random_matrix(&mut rng, out, inp).view(), sparsity).unwrap();
            let csr = CsrMatrix::from_dense(weight.view(), 0.0).unwrap();
            let x = input_with_zeros(&mut rng, inp);
            // y = W · x is the reference product x · Wᵀ.
            let (expected, magnitude) = reference(x.view(), weight.t());
            let mut y = vec![f32::NAN; out];
            csr.vector_product_into(x.as_slice().unwrap(), &mut y, false)
                .unwrap();
            let what = format!("csr {out}×{inp} at {sparsity}");
            assert_close(&y, &expected, &magnitude, None, inp, &what);
            let initial: Vec<f32> = (0..out).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut y = initial.clone();
            csr.vector_product_into(x.as_slice().unwrap(), &mut y, true)
                .unwrap();
            assert_close(&y, &expected, &magnitude, Some(&initial), inp, &what);
        }
    }
    let csr = CsrMatrix::from_dense(Array2::<f32>::ones((3, 4)).view(), 0.0).unwrap();
    assert!(matches!(
        csr.vector_product_into(&[1.0; 3], &mut [0.0; 3], false),
        Err(AccelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        csr.vector_product_into(&[1.0; 4], &mut [0.0; 4], false),
        Err(AccelError::ShapeMismatch { .. })
    ));
}

#[test]
fn linear_into_adds_the_bias_and_applies_relu() {
    let mut rng = StdRng::seed_from_u64(SEED + 4);
    for (k, n) in [(0usize, 3usize), (17, 33), (64, 10), (100, 128)] {
        let weight = prune_blocks(random_matrix(&mut rng, k, n).view(), 0.5).unwrap();
        let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
        let x = input_with_zeros(&mut rng, k);
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let (expected, magnitude) = reference(x.view(), weight.view());
        for config in configs() {
            for relu in [false, true] {
                for with_bias in [false, true] {
                    let mut y = vec![f32::NAN; n];
                    matrix
                        .linear_into(
                            x.as_slice().unwrap(),
                            with_bias.then_some(bias.as_slice()),
                            relu,
                            &mut y,
                            &config,
                        )
                        .unwrap();
                    let rel = 2.0 * (k as f64 + 2.0) * f64::from(f32::EPSILON);
                    for col in 0..n {
                        let offset = if with_bias { f64::from(bias[col]) } else { 0.0 };
                        let mut want = expected[[0, col]] + offset;
                        if relu {
                            want = want.max(0.0);
                        }
                        let tolerance = f64::max(1e-6, rel * (magnitude[[0, col]] + offset.abs()));
                        assert!(
                            (f64::from(y[col]) - want).abs() <= tolerance,
                            "{k}×{n} relu {relu} bias {with_bias} {config:?}: output {col} is {}, expected {want}",
                            y[col]
                        );
                    }
                }
            }
        }
        let mut y = vec![0.0f32; n];
        assert!(
            matches!(
                matrix.linear_into(
                    x.as_slice().unwrap(),
                    Some(&bias[..n.saturating_sub(1)]),
                    false,
                    &mut y,
                    &SparseGemvConfig::default()
                ),
                Err(AccelError::ShapeMismatch { .. })
            ) || n == 0
        );
    }
}

#[test]
fn linear_into_relu_keeps_nan() {
    let mut weight = Array2::<f32>::ones((3, 5));
    weight[[1, 2]] = f32::NAN;
    let matrix = BlockSparseMatrix::from_dense(weight.view()).unwrap();
    let mut y = vec![0.0f32; 5];
    matrix
        .linear_into(
            &[-1.0, 1.0, -1.0],
            None,
            true,
            &mut y,
            &SparseGemvConfig::default(),
        )
        .unwrap();
    assert!(y[2].is_nan(), "ReLU turned a NaN output into {}", y[2]);
    assert_eq!(y[0], 0.0);
}
