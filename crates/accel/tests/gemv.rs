//! `gemv_into` against an f64 reference: the shared shape table plus matrix–vector shapes around every vector
//! width, each instruction set forced, every layout (row-major B, transposed B, strided and reversed views, strided
//! output), NaN-prefilled outputs, the accumulate variant, and shape errors.

use accel::{AccelError, GemvConfig, GemvLayout, Isa};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rand::{rngs::StdRng, SeedableRng};

const SEED: u64 = 0x6e_3a7;

mod common;
use common::{random_matrix, reference};

/// Tolerance `max(abs, rel · (Σ|a·b| + |initial|))` with `rel = 2(k+1)ε`: a k-term f32 dot product summed in any
/// order (the kernel splits the depth over several accumulators and adds them at the end) is within
/// γ_k · Σ|a·b| ≈ k·ε·Σ|a·b| of the exact value (Higham §3.1); twice that, plus one rounding for the accumulate add.
fn assert_close(
    actual: ArrayView2<'_, f32>,
    expected: &Array2<f64>,
    magnitude: &Array2<f64>,
    initial: Option<&Array2<f32>>,
    k: usize,
    what: &str,
) {
    let rel = 2.0 * (k as f64 + 1.0) * f64::from(f32::EPSILON);
    for ((idx, &value), (&want, &mag)) in actual
        .indexed_iter()
        .zip(expected.iter().zip(magnitude.iter()))
    {
        let base = initial.map_or(0.0, |init| f64::from(init[idx]));
        let want = want + base;
        let tolerance = f64::max(1e-6, rel * (mag + base.abs()));
        let error = (f64::from(value) - want).abs();
        assert!(
            error <= tolerance,
            "{what}: entry {idx:?} is {value}, expected {want} (error {error:e} > {tolerance:e})"
        );
    }
}

/// The shared table (STYLE.md) and matrix–vector shapes: m = 1…5 (one row per decode step and small batches), k and
/// n one below / at / above the AVX2 and AVX-512 widths and the 8-, 4-, 2-, 1-vector column blocks, and the
/// transformer's projection widths.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut shapes = perf_core::workloads::SHARED_MATMUL_SHAPES.to_vec();
    let depths = [0usize, 1, 2, 7, 8, 9, 15, 16, 17, 32, 33, 128];
    let widths = [
        0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 127, 128, 129, 136, 384,
    ];
    for m in [1usize, 2, 5] {
        for &k in &depths {
            for &n in &widths {
                shapes.push((m, k, n));
            }
        }
    }
    shapes.extend([(0, 16, 16), (3, 0, 0), (1, 512, 32), (4, 32, 512)]);
    shapes
}

fn configs() -> Vec<GemvConfig> {
    let mut configs = vec![GemvConfig::default()];
    for isa in Isa::ALL {
        if isa.is_available() {
            configs.push(GemvConfig { isa: Some(isa) });
        } else {
            println!("skipping forced {isa}: not available on this cpu");
        }
    }
    configs
}

/// Run `C = A·B` and `C += A·B` into `c` (a view of a NaN-filled buffer for the overwrite) and check both.
fn check(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    config: &GemvConfig,
    expected_layout: GemvLayout,
    rng: &mut StdRng,
    what: &str,
) {
    let (expected, magnitude) = reference(a, b);
    check_against(
        a,
        b,
        c.view_mut(),
        config,
        expected_layout,
        rng,
        what,
        &expected,
        &magnitude,
    );
}

/// As [`check`], with the reference computed once by the caller (it dominates a debug-build test).
#[allow(clippy::too_many_arguments)]
fn check_against(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    config: &GemvConfig,
    expected_layout: GemvLayout,
    rng: &mut StdRng,
    what: &str,
    expected: &Array2<f64>,
    magnitude: &Array2<f64>,
) {
    let k = a.ncols();
    c.fill(f32::NAN);
    let run = accel::gemv_into_with(a, b, c.view_mut(), false, config).unwrap();
    assert_eq!(run.layout, expected_layout, "{what}");
    if expected_layout != GemvLayout::Strided {
        assert_eq!(run.isa, config.isa.unwrap_or_else(Isa::best), "{what}");
    }
    assert_close(c.view(), expected, magnitude, None, k, what);
    let initial = random_matrix(rng, c.nrows(), c.ncols());
    c.assign(&initial);
    accel::gemv_into_with(a, b, c.view_mut(), true, config).unwrap();
    assert_close(
        c.view(),
        expected,
        magnitude,
        Some(&initial),
        k,
        &format!("{what} accumulate"),
    );
}

#[test]
fn row_major_b_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for (m, k, n) in shapes() {
        let a = random_matrix(&mut rng, m, k);
        let b = random_matrix(&mut rng, k, n);
        let (expected, magnitude) = reference(a.view(), b.view());
        for config in configs() {
            let mut c = Array2::from_elem((m, n), f32::NAN);
            let what = format!("rows {m}x{k}x{n} {config:?}");
            check_against(
                a.view(),
                b.view(),
                c.view_mut(),
                &config,
                GemvLayout::Rows,
                &mut rng,
                &what,
                &expected,
                &magnitude,
            );
        }
    }
}

#[test]
fn transposed_b_uses_the_columns_layout_and_matches() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    for (m, k, n) in shapes() {
        let a = random_matrix(&mut rng, m, k);
        let b_transposed = random_matrix(&mut rng, n, k);
        let b = b_transposed.t();
        let (expected, magnitude) = reference(a.view(), b);
        // With n ≤ 1 a transposed B is also row-contiguous, and the rows layout is chosen first.
        let layout = if n <= 1 {
            GemvLayout::Rows
        } else {
            GemvLayout::Columns
        };
        for config in configs() {
            // Output columns strided by 2, so only the columns layout (or the strided fallback) can serve it.
            let mut wide = Array2::from_elem((m, 2 * n), f32::NAN);
            let c = wide.slice_mut(s![.., ..;2]);
            let layout = if n > 1 { layout } else { GemvLayout::Rows };
            let what = format!("columns {m}x{k}x{n} {config:?}");
            check_against(
                a.view(),
                b,
                c,
                &config,
                layout,
                &mut rng,
                &what,
                &expected,
                &magnitude,
            );
            // The untouched odd columns must still be NaN: no stray writes.
            assert!(
                n == 0 || wide.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()),
                "{what}: wrote outside the output view"
            );
        }
    }
}

#[test]
fn strided_and_reversed_views_match() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    for &(m, k, n) in &[(1usize, 33, 65), (2, 17, 40), (3, 64, 129), (1, 128, 384)] {
        let a_big = random_matrix(&mut rng, 2 * m, 3 * k);
        let a = a_big.slice(s![..;2, ..;3]);
        let b_big = random_matrix(&mut rng, 2 * k, 2 * n);
        for config in configs() {
            // Both B strides > 1: the i-k-j fallback.
            let mut c = Array2::from_elem((m, n), f32::NAN);
            let b = b_big.slice(s![..;2, ..;2]);
            check(
                a,
                b,
                c.view_mut(),
                &config,
                GemvLayout::Strided,
                &mut rng,
                &format!("strided {m}x{k}x{n}"),
            );
            // Rows reversed (negative row stride, contiguous rows).
            let b = b_big.slice(s![..k;-1, ..n]);
            check(
                a,
                b,
                c.view_mut(),
                &config,
                GemvLayout::Rows,
                &mut rng,
                &format!("reversed rows {m}x{k}x{n}"),
            );
            // Columns reversed: a transposed matrix read back to front, still column-contiguous.
            let b_transposed = random_matrix(&mut rng, n, k);
            let b = b_transposed.slice(s![..;-1, ..]).reversed_axes();
            let a_contiguous = a.to_owned();
            check(
                a_contiguous.view(),
                b,
                c.view_mut(),
                &config,
                GemvLayout::Columns,
                &mut rng,
                &format!("reversed columns {m}x{k}x{n}"),
            );
        }
    }
}

#[test]
fn shape_errors_are_typed() {
    let a = Array2::<f32>::zeros((1, 3));
    let b = Array2::<f32>::zeros((4, 2));
    let mut c = Array2::<f32>::zeros((1, 2));
    assert!(matches!(
        accel::gemv_into(a.view(), b.view(), c.view_mut(), false),
        Err(AccelError::ShapeMismatch { .. })
    ));
    let b = Array2::<f32>::zeros((3, 2));
    let mut wrong = Array2::<f32>::zeros((2, 2));
    assert!(matches!(
        accel::gemv_into(a.view(), b.view(), wrong.view_mut(), false),
        Err(AccelError::OutputShapeMismatch { .. })
    ));
    accel::gemv_into(a.view(), b.view(), c.view_mut(), false).unwrap();
}

#[test]
fn a_missing_instruction_set_is_an_error() {
    let a = Array2::<f32>::zeros((1, 3));
    let b = Array2::<f32>::zeros((3, 2));
    let mut c = Array2::<f32>::zeros((1, 2));
    for isa in Isa::ALL {
        let result = accel::gemv_into_with(
            a.view(),
            b.view(),
            c.view_mut(),
            false,
            &GemvConfig { isa: Some(isa) },
        );
        assert_eq!(result.is_ok(), isa.is_available(), "{isa}");
    }
}

/// The slice entry points against the f64 reference, on every instruction set this CPU has: `y = B·x` over the
/// rows of a row-major `B` (columns layout) and `y = xᵀ·B` (rows layout), overwrite into a NaN-filled output and
/// accumulate, on the matrix–vector shapes.
#[test]
fn slice_entry_points_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(0x511ce);
    for (_, k, n) in shapes().into_iter().filter(|&(m, _, _)| m == 1) {
        let x = random_matrix(&mut rng, 1, k);
        let b = random_matrix(&mut rng, k, n);
        // y = xᵀ·B with B row-major k × n, and y = Bᵀ·x with Bᵀ stored row-major n × k.
        let b_rows_first = b.t().as_standard_layout().into_owned();
        let (expected, magnitude) = reference(x.view(), b.view());
        let x_slice = x.as_slice().unwrap();
        for config in configs() {
            for (layout, b_slice) in [
                (GemvLayout::Rows, b.as_slice().unwrap()),
                (GemvLayout::Columns, b_rows_first.as_slice().unwrap()),
            ] {
                let what = format!("slices {layout:?} k={k} n={n} {config:?}");
                let run_with = |y: &mut [f32], accumulate: bool| match layout {
                    GemvLayout::Rows => {
                        accel::vector_matrix_rows(x_slice, b_slice, y, accumulate, &config)
                    }
                    _ => accel::matrix_vector_rows(b_slice, x_slice, y, accumulate, &config),
                };
                let mut y = Array2::<f32>::from_elem((1, n), f32::NAN);
                let run = run_with(y.as_slice_mut().unwrap(), false).unwrap();
                assert_eq!(run.layout, layout, "{what}");
                assert_eq!(run.isa, config.isa.unwrap_or_else(Isa::best), "{what}");
                assert_close(y.view(), &expected, &magnitude, None, k, &what);
                let initial = random_matrix(&mut rng, 1, n);
                let mut y = initial.clone();
                run_with(y.as_slice_mut().unwrap(), true).unwrap();
                assert_close(
                    y.view(),
                    &expected,
                    &magnitude,
                    Some(&initial),
                    k,
                    &format!("{what} accumulate"),
                );
            }
        }
    }
}

#[test]
fn slice_length_errors_are_typed() {
    let config = GemvConfig::default();
    let mut y = [0.0f32; 2];
    assert!(matches!(
        accel::matrix_vector_rows(&[0.0; 5], &[0.0; 3], &mut y, false, &config),
        Err(AccelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        accel::vector_matrix_rows(&[0.0; 3], &[0.0; 5], &mut y, false, &config),
        Err(AccelError::ShapeMismatch { .. })
    ));
    accel::matrix_vector_rows(&[0.0; 6], &[0.0; 3], &mut y, false, &config).unwrap();
    accel::vector_matrix_rows(&[0.0; 3], &[0.0; 6], &mut y, false, &config).unwrap();
}
