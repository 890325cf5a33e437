//! `cargo bench -p quant`: the u8 × i8 → i32 GEMM (packing of B included, as the validation claim measures it)
//! against accel's best single-thread f32 GEMM over sizes, and a quantized two-layer MLP against its f32 twin.

use accel::MatmulConfig;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array1, Array2};
use quant::{gemm_u8i8_i32, GemmConfig, GemmKernel, PackedB, QuantizedMlp, QuantizedMlpConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::hint::black_box;

fn gemm(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = criterion.benchmark_group("gemm");
    group.sample_size(10);
    for n in [64usize, 128, 256, 512, 1024] {
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        let a = Array2::from_shape_simple_fn((n, n), || rng.random::<u8>());
        let b = Array2::from_shape_simple_fn((n, n), || rng.random::<i8>());
        let (af, bf) = (a.mapv(f32::from), b.mapv(f32::from));
        let mut cf = Array2::<f32>::zeros((n, n));
        let f32_config = MatmulConfig {
            threads: Some(1),
            ..MatmulConfig::default()
        };
        group.bench_with_input(BenchmarkId::new("f32-accel-x1", n), &n, |bencher, _| {
            bencher.iter(|| {
                accel::matmul_into_with(
                    black_box(af.view()),
                    bf.view(),
                    cf.view_mut(),
                    false,
                    &f32_config,
                )
            })
        });
        let mut c = Array2::<i32>::zeros((n, n));
        for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
            if kernel == GemmKernel::Scalar && n > 256 {
                continue;
            }
            let config = GemmConfig {
                kernel: Some(kernel),
                ..GemmConfig::default()
            };
            group.bench_with_input(
                BenchmarkId::new(format!("u8i8-{kernel}-packing-included"), n),
                &n,
                |bencher, _| {
                    bencher.iter(|| {
                        let packed = PackedB::pack(black_box(b.view())).unwrap();
                        gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config).unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

fn model(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let widths = [784usize, 256, 10];
    let layers: Vec<(Array2<f32>, Array1<f32>)> = widths
        .windows(2)
        .map(|w| {
            let scale = (2.0 / w[0] as f32).sqrt();
            (
                Array2::from_shape_simple_fn((w[0], w[1]), || rng.random_range(-scale..scale)),
                Array1::from_shape_simple_fn(w[1], || rng.random_range(-0.1..0.1)),
            )
        })
        .collect();
    let x = Array2::from_shape_simple_fn((256, widths[0]), || rng.random_range(0.0f32..1.0));
    let views: Vec<_> = layers.iter().map(|(w, b)| (w.view(), b.view())).collect();
    let quantized =
        QuantizedMlp::quantize(&views, x.view(), &QuantizedMlpConfig::default()).unwrap();
    let f32_config = MatmulConfig {
        threads: Some(1),
        ..MatmulConfig::default()
    };
    let mut group = criterion.benchmark_group("mlp-784-256-10-batch-256");
    group.sample_size(10);
    group.bench_function("f32-accel-x1", |bencher| {
        bencher.iter(|| {
            let (mut hidden, _) =
                accel::matmul_with(black_box(x.view()), layers[0].0.view(), &f32_config).unwrap();
            hidden += &layers[0].1;
            hidden.mapv_inplace(|v| v.max(0.0));
            let (mut out, _) =
                accel::matmul_with(hidden.view(), layers[1].0.view(), &f32_config).unwrap();
            out += &layers[1].1;
            out
        })
    });
    group.bench_function("int8-static", |bencher| {
        bencher.iter(|| {
            quantized
                .forward(black_box(x.view()), &GemmConfig::default())
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, gemm, model);
criterion_main!(benches);
