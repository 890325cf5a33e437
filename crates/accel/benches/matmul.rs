//! Criterion benchmarks: one group per kernel, square n × n for n ∈ {64, 128, 256, 512, 1024}, throughput in FLOPs.
//!
//! Criterion's "elements" are floating-point operations here (2·n³ per product), so its "Melem/s" reads as
//! MFLOP/s. The textbook i-j-k loop is benchmarked up to n = 512 only (one call takes seconds at 1024), with the
//! minimum of 10 samples from n = 256; `matrixmultiply` and `gemm` (feature x86-v4) are benchmarked alongside.

use std::time::Duration;

use accel::{Backend, Isa, MatmulConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

const SIZES: [usize; 5] = [64, 128, 256, 512, 1024];
const SEED: u64 = 0xbe0c_acce1;

fn operands(n: usize) -> (Array2<f32>, Array2<f32>) {
    let mut rng = StdRng::seed_from_u64(SEED ^ n as u64);
    let a = Array2::from_shape_simple_fn((n, n), || rng.random_range(-1.0f32..1.0));
    let b = Array2::from_shape_simple_fn((n, n), || rng.random_range(-1.0f32..1.0));
    (a, b)
}

fn bench_backend(criterion: &mut Criterion, group_name: &str, backend: Backend, max_n: usize) {
    let mut group = criterion.benchmark_group(group_name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES.into_iter().filter(|&n| n <= max_n) {
        if n >= 256
            && matches!(
                backend,
                Backend::NaiveIjk
                    | Backend::NaiveIkj
                    | Backend::Blocked
                    | Backend::Simd(Isa::Scalar)
            )
        {
            group.sample_size(10);
        }
        let (a, b) = operands(n);
        let mut c = Array2::<f32>::zeros((n, n));
        let config = MatmulConfig::with_backend(backend);
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bencher, _| {
            bencher.iter(|| {
                accel::matmul_into_with(
                    std::hint::black_box(a.view()),
                    b.view(),
                    c.view_mut(),
                    false,
                    &config,
                )
                .expect("benchmarked backend runs on this cpu")
            });
        });
    }
    group.finish();
}

fn kernels(criterion: &mut Criterion) {
    bench_backend(criterion, "naive-ijk", Backend::NaiveIjk, 512);
    bench_backend(criterion, "naive-ikj", Backend::NaiveIkj, 1024);
    bench_backend(criterion, "blocked", Backend::Blocked, 1024);
    for isa in Isa::available() {
        bench_backend(criterion, &format!("simd-{isa}"), Backend::Simd(isa), 1024);
    }
    bench_backend(
        criterion,
        &format!("parallel-{}", Isa::best()),
        Backend::Parallel(Isa::best()),
        1024,
    );
    bench_backend(criterion, "auto", Backend::Auto, 1024);
}

fn reference_crates(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("matrixmultiply");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let (a, b) = operands(n);
        let mut c = Array2::<f32>::zeros((n, n));
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bencher, _| {
            bencher.iter(|| {
                accel::baselines::matrixmultiply_sgemm(a.view(), b.view(), c.view_mut())
                    .expect("square operands")
            });
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("gemm-x86-v4");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let (a, b) = operands(n);
        let mut c = Array2::<f32>::zeros((n, n));
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bencher, _| {
            bencher.iter(|| {
                accel::baselines::gemm_sgemm(a.view(), b.view(), c.view_mut(), 1)
                    .expect("square operands")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, kernels, reference_crates);
criterion_main!(benches);
