//! Every kernel against an f64 reference over the shared shape table, with NaN-prefilled outputs, strided and
//! reversed views, the accumulate variant, forced instruction sets and shape errors.

use accel::{AccelError, Backend, Isa, Kernel, MatmulConfig, SimdBlocking, TileSizes};
use ndarray::{s, Array2};
use rand::{rngs::StdRng, SeedableRng};

const SEED: u64 = 0x7e57_acce1;

/// The shared shape table (STYLE.md), kept in one place for every kernel crate.
const SHAPES: &[(usize, usize, usize)] = perf_core::workloads::SHARED_MATMUL_SHAPES;

mod common;
use common::{random_matrix, reference};

/// Checks `actual` against `expected` (+ `initial` when accumulating).
///
/// Tolerance `max(abs, rel · Σ|a·b|)`: a k-term f32 dot product, summed in any order (blocked kernels reorder the
/// sum, FMA rounds once instead of twice), is within γ_k · Σ_p |a_ip b_pj| of the exact value, with
/// γ_k = k·ε/(1 − k·ε) ≈ k · 2⁻²⁴ (Higham, Accuracy and Stability, §3.1). We allow twice that (`rel = 2k·ε`)
/// plus one more rounding for the accumulate add, and an absolute floor for entries whose terms are all tiny.
fn assert_close(
    actual: &Array2<f32>,
    expected: &Array2<f64>,
    magnitude: &Array2<f64>,
    initial: Option<&Array2<f32>>,
    k: usize,
    what: &str,
) {
    let eps = f64::from(f32::EPSILON);
    let rel = 2.0 * (k as f64 + 1.0) * eps;
    let abs = 1e-6;
    for ((idx, &value), (&want, &mag)) in actual
        .indexed_iter()
        .zip(expected.iter().zip(magnitude.iter()))
    {
        let base = initial.map_or(0.0, |init| f64::from(init[idx]));
        let want = want + base;
        let tolerance = f64::max(abs, rel * (mag + base.abs()));
        let error = (f64::from(value) - want).abs();
        assert!(error <= tolerance, "{what}: entry {idx:?} is {value}, expected {want} (error {error:e} > tolerance {tolerance:e})");
    }
}

/// Backends this CPU can run, one thread and two (the parallel one splits even small shapes when forced below).
fn backends() -> Vec<Backend> {
    Backend::all()
        .into_iter()
        .filter(|backend| backend.is_available())
        .collect()
}

/// Configurations per backend: the default blocking, tiny blocks so that small shapes cross every block edge, and
/// three threads with tiny blocks (more chunks than two threads make, and row chunks for narrow products).
fn configs(backend: Backend) -> Vec<MatmulConfig> {
    let default = MatmulConfig {
        backend,
        threads: Some(2),
        parallel_min_flops: 0,
        ..MatmulConfig::default()
    };
    let tiny = MatmulConfig {
        tiles: Some(TileSizes {
            mc: 3,
            kc: 5,
            nc: 7,
        }),
        simd_blocking: Some(SimdBlocking {
            mc: 25,
            kc: 7,
            nc: 40,
        }),
        ..default
    };
    let three_threads = MatmulConfig {
        threads: Some(3),
        ..tiny
    };
    vec![default, tiny, three_threads]
}

fn expected_kernel(backend: Backend) -> Kernel {
    match backend {
        Backend::NaiveIjk => Kernel::NaiveIjk,
        Backend::NaiveIkj => Kernel::NaiveIkj,
        Backend::Blocked => Kernel::Blocked,
        Backend::Simd(isa) | Backend::Parallel(isa) => Kernel::Simd(isa),
        other => panic!("no single kernel for {other}"),
    }
}

#[test]
fn every_kernel_matches_the_reference_on_the_shape_table() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for &(m, k, n) in SHAPES {
        let a = random_matrix(&mut rng, m, k);
        let b = random_matrix(&mut rng, k, n);
        let (expected, magnitude) = reference(a.view(), b.view());
        for backend in backends() {
            for config in configs(backend) {
                let what = format!("{backend} {m}x{k}x{n} {:?}", config.simd_blocking);
                // Overwrite: NaN in the output must never leak through (the kernel must not read it).
                let mut c = Array2::from_elem((m, n), f32::NAN);
                let run = accel::matmul_into_with(a.view(), b.view(), c.view_mut(), false, &config)
                    .unwrap();
                assert_eq!(run.kernel, expected_kernel(backend), "{what}");
                assert_close(&c, &expected, &magnitude, None, k, &what);
                // Accumulate onto random values.
                let initial = random_matrix(&mut rng, m, n);
                let mut c = initial.clone();
                accel::matmul_into_with(a.view(), b.view(), c.view_mut(), true, &config).unwrap();
                assert_close(
                    &c,
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
fn strided_transposed_and_reversed_views_work() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let (m, k, n) = (19, 23, 37);
    let a_big = random_matrix(&mut rng, 2 * m, 3 * k);
    let b_big = random_matrix(&mut rng, n, k); // used transposed
    let a = a_big.slice(s![..;2, ..;3]);
    let b = b_big.t();
    let (expected, magnitude) = reference(a, b);
    let a_rev = a_big.slice(s![..;-2, ..;-3]);
    let (expected_rev, magnitude_rev) = reference(a_rev, b);
    for backend in backends() {
        for config in configs(backend) {
            let mut c_big = Array2::from_elem((2 * m, 2 * n), f32::NAN);
            let mut c = c_big.slice_mut(s![1..;2, ..;2]);
            accel::matmul_into_with(a, b, c.view_mut(), false, &config).unwrap();
            assert_close(
                &c.to_owned(),
                &expected,
                &magnitude,
                None,
                k,
                &format!("{backend} strided"),
            );
            // Elements between the strided ones are untouched.
            assert!(
                c_big.slice(s![..;2, ..]).iter().all(|v| v.is_nan()),
                "{backend} wrote outside its view"
            );

            // Rows reversed, columns contiguous: the SIMD kernel reads A in place with a negative row stride.
            let a_flipped = a_big.slice(s![..m;-1, ..k]);
            let (expected_flipped, magnitude_flipped) = reference(a_flipped, b);
            let mut c_flipped = Array2::from_elem((m, n), f32::NAN);
            accel::matmul_into_with(a_flipped, b, c_flipped.view_mut(), false, &config).unwrap();
            assert_close(
                &c_flipped,
                &expected_flipped,
                &magnitude_flipped,
                None,
                k,
                &format!("{backend} flipped rows"),
            );

            let mut c_t = Array2::from_elem((n, m), f32::NAN);
            accel::matmul_into_with(a_rev, b, c_t.view_mut().reversed_axes(), false, &config)
                .unwrap();
            assert_close(
                &c_t.t().to_owned(),
                &expected_rev,
                &magnitude_rev,
                None,
                k,
                &format!("{backend} reversed"),
            );
        }
    }
}

#[test]
fn matmul_and_matmul_into_agree_with_the_reference() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let a = random_matrix(&mut rng, 33, 65);
    let b = random_matrix(&mut rng, 65, 47);
    let (expected, magnitude) = reference(a.view(), b.view());
    let c = accel::matmul(a.view(), b.view()).unwrap();
    assert_close(&c, &expected, &magnitude, None, 65, "matmul");
    let mut c2 = Array2::from_elem((33, 47), f32::NAN);
    let run = accel::matmul_into(a.view(), b.view(), c2.view_mut(), false).unwrap();
    assert_close(
        &c2,
        &expected,
        &magnitude,
        None,
        65,
        &format!("matmul_into ({run})"),
    );
}

#[test]
fn shape_mismatches_are_errors() {
    let a = Array2::<f32>::zeros((3, 4));
    let b = Array2::<f32>::zeros((5, 6));
    assert_eq!(
        accel::matmul(a.view(), b.view()),
        Err(AccelError::ShapeMismatch {
            a_shape: [3, 4],
            b_shape: [5, 6]
        })
    );
    let b = Array2::<f32>::zeros((4, 6));
    let mut c = Array2::<f32>::zeros((3, 5));
    assert_eq!(
        accel::matmul_into(a.view(), b.view(), c.view_mut(), false),
        Err(AccelError::OutputShapeMismatch {
            expected: [3, 6],
            actual: [3, 5]
        })
    );
    let message = accel::matmul(a.view(), Array2::<f32>::zeros((5, 6)).view())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("3x4") && message.contains("5x6"),
        "{message}"
    );
}

#[test]
fn bad_configurations_are_errors() {
    let a = Array2::<f32>::ones((4, 4));
    let mut c = Array2::<f32>::zeros((4, 4));
    let zero_threads = MatmulConfig {
        threads: Some(0),
        backend: Backend::Parallel(Isa::Scalar),
        ..MatmulConfig::default()
    };
    assert!(matches!(
        accel::matmul_into_with(a.view(), a.view(), c.view_mut(), false, &zero_threads),
        Err(AccelError::InvalidConfig { .. })
    ));
    let zero_tiles = MatmulConfig {
        tiles: Some(TileSizes {
            mc: 0,
            kc: 1,
            nc: 1,
        }),
        ..MatmulConfig::with_backend(Backend::Blocked)
    };
    assert!(matches!(
        accel::matmul_into_with(a.view(), a.view(), c.view_mut(), false, &zero_tiles),
        Err(AccelError::InvalidConfig { .. })
    ));
    assert!("simd-sse9".parse::<Backend>().is_err());
}

#[test]
fn backend_names_round_trip() {
    for backend in Backend::all().into_iter().chain([Backend::Auto]) {
        assert_eq!(backend.to_string().parse::<Backend>().unwrap(), backend);
    }
}

#[test]
fn unavailable_isa_is_an_error_not_a_fallback() {
    let a = Array2::<f32>::ones((2, 2));
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_available()) {
        let result = accel::matmul_with(
            a.view(),
            a.view(),
            &MatmulConfig::with_backend(Backend::Simd(isa)),
        );
        assert!(
            matches!(result, Err(AccelError::KernelUnavailable { .. })),
            "{isa}"
        );
    }
}

/// `ACCEL_KERNEL=<name> cargo test -p accel` forces that kernel for `Auto` callers: this test fails when the forced
/// kernel did not run although the CPU has it, and when an unavailable one did not produce the typed error.
#[test]
fn accel_kernel_environment_variable_is_honoured() {
    let a = Array2::<f32>::ones((20, 30));
    let b = Array2::<f32>::ones((30, 10));
    let forced = Backend::from_env().expect("ACCEL_KERNEL must name a kernel");
    let result = accel::matmul_with(
        a.view(),
        b.view(),
        &MatmulConfig {
            parallel_min_flops: 0,
            ..MatmulConfig::default()
        },
    );
    match forced {
        None => {
            let (_, run) = result.unwrap();
            assert_eq!(run.kernel, Kernel::Simd(Isa::best()));
        }
        Some(backend) if backend.is_available() => {
            let (c, run) = result.unwrap();
            assert_eq!(
                run.kernel,
                expected_kernel(backend),
                "ACCEL_KERNEL={backend} but {run} ran"
            );
            assert!(c.iter().all(|&v| v == 30.0));
        }
        Some(backend) => assert!(
            matches!(result, Err(AccelError::KernelUnavailable { .. })),
            "{backend}"
        ),
    }
}

/// Default blocking on shapes that cross every block edge (kc, nc) with odd remainders, for the SIMD and parallel
/// paths. Too slow for a debug build, so gated: `ACCEL_LARGE_TESTS=1 cargo test -p accel --release`.
#[test]
fn large_shapes_cross_the_default_blocks() {
    if std::env::var_os("ACCEL_LARGE_TESTS").is_none() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(SEED + 3);
    for &(m, k, n) in &[(301, 1031, 517), (1000, 3, 1000), (7, 2000, 9)] {
        let a = random_matrix(&mut rng, m, k);
        let b = random_matrix(&mut rng, k, n);
        let (expected, magnitude) = reference(a.view(), b.view());
        for backend in Isa::available()
            .into_iter()
            .flat_map(|isa| [Backend::Simd(isa), Backend::Parallel(isa)])
        {
            let config = MatmulConfig {
                backend,
                threads: Some(2),
                ..MatmulConfig::default()
            };
            let mut c = Array2::from_elem((m, n), f32::NAN);
            accel::matmul_into_with(a.view(), b.view(), c.view_mut(), false, &config).unwrap();
            assert_close(
                &c,
                &expected,
                &magnitude,
                None,
                k,
                &format!("{backend} {m}x{k}x{n}"),
            );
        }
    }
}
