//! Quick GOP/s of the integer GEMM (packing of B included, into a reused buffer) vs accel's single-thread f32
//! kernel. The two are run alternately for a time budget per size and the best run of each is kept, so a busy
//! machine depresses both alike; the load average is printed beside the figures.
//! Usage: `cargo run --release -p quant --example gops [sizes...]`.

use accel::MatmulConfig;
use ndarray::Array2;
use quant::{gemm_u8i8_i32, GemmConfig, GemmKernel, PackedB};
use std::hint::black_box;
use std::time::Instant;

fn seconds(f: &mut impl FnMut()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
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
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for n in sizes {
        let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 256) as u8);
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 13 + j * 7) % 256) as u8 as i8);
        let af = a.mapv(f32::from);
        let bf = b.mapv(f32::from);
        let operations = 2.0 * (n as f64).powi(3);
        let mut c = Array2::<i32>::zeros((n, n));
        let mut cf = Array2::<f32>::zeros((n, n));
        let f32_config = MatmulConfig {
            threads: Some(1),
            ..MatmulConfig::default()
        };
        let mut f32_run = || {
            accel::matmul_into_with(
                black_box(af.view()),
                bf.view(),
                cf.view_mut(),
                false,
                &f32_config,
            )
            .unwrap();
        };
        print!("n={n:5}");
        let mut packed = PackedB::pack(b.view())?;
        for kernel in GemmKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let config = GemmConfig {
                kernel: Some(kernel),
                ..GemmConfig::default()
            };
            let mut int8_run = || {
                packed.repack(black_box(b.view())).unwrap();
                gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config).unwrap();
            };
            let budget = if kernel == GemmKernel::Scalar {
                0.5
            } else {
                2.0
            };
            let (mut best_f32, mut best_int8) = (f64::INFINITY, f64::INFINITY);
            let started = Instant::now();
            while started.elapsed().as_secs_f64() < budget {
                best_f32 = best_f32.min(seconds(&mut f32_run));
                best_int8 = best_int8.min(seconds(&mut int8_run));
            }
            print!(
                "  f32 {:6.1} GFLOP/s vs {kernel} {:6.1} GOP/s ({:.2}×)",
                operations / best_f32 / 1e9,
                operations / best_int8 / 1e9,
                best_f32 / best_int8
            );
        }
        println!();
    }
    Ok(())
}
