//! Quick GOP/s of the integer GEMM (packing of A and B included) vs accel's single-thread f32 kernel, best of
//! a few repetitions per size. Usage: `cargo run --release -p quant --example gops [sizes...]`.

use accel::MatmulConfig;
use ndarray::Array2;
use quant::{gemm_u8i8_i32, GemmConfig, GemmKernel, PackedB};
use std::hint::black_box;
use std::time::Instant;

fn best_seconds(repetitions: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..repetitions)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![256, 512, 1024]
    } else {
        sizes
    };
    for n in sizes {
        let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 256) as u8);
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 13 + j * 7) % 256) as u8 as i8);
        let af = a.mapv(f32::from);
        let bf = b.mapv(f32::from);
        let operations = 2.0 * (n as f64).powi(3);
        let repetitions = (2e10 / operations).clamp(3.0, 50.0) as usize;
        let mut c = Array2::<i32>::zeros((n, n));
        let mut cf = Array2::<f32>::zeros((n, n));
        let f32_config = MatmulConfig {
            threads: Some(1),
            ..MatmulConfig::default()
        };
        let f32_seconds = best_seconds(repetitions, || {
            accel::matmul_into_with(
                black_box(af.view()),
                bf.view(),
                cf.view_mut(),
                false,
                &f32_config,
            )
            .unwrap();
        });
        print!(
            "n={n:5}  f32 accel x1 {:7.1} GFLOP/s",
            operations / f32_seconds / 1e9
        );
        for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let config = GemmConfig {
                kernel: Some(kernel),
            };
            let seconds = best_seconds(repetitions, || {
                let packed = PackedB::pack(black_box(b.view())).unwrap();
                gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config).unwrap();
            });
            let packed = PackedB::pack(b.view()).unwrap();
            let prepacked = best_seconds(repetitions, || {
                gemm_u8i8_i32(black_box(a.view()), &packed, c.view_mut(), &config).unwrap();
            });
            print!(
                "  {kernel} {:7.1} GOP/s ({:.2}×; B prepacked {:7.1})",
                operations / seconds / 1e9,
                f32_seconds / seconds,
                operations / prepacked / 1e9
            );
        }
        println!();
    }
    Ok(())
}
