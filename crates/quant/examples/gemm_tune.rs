//! Best-of-many GOP/s of the integer GEMM (B prepacked, and packing included) at a few shapes, for tuning the
//! blocking on a shared machine (the best of many short runs is the least disturbed one).
//! `cargo run --release -p quant --example gemm_tune [m k n]...`.

use ndarray::Array2;
use quant::{gemm_u8i8_i32, GemmConfig, PackedB};
use std::hint::black_box;
use std::time::Instant;

fn best_seconds(budget_seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    let mut best = f64::INFINITY;
    while started.elapsed().as_secs_f64() < budget_seconds {
        let lap = Instant::now();
        f();
        best = best.min(lap.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let shapes: Vec<(usize, usize, usize)> = if numbers.len() >= 3 {
        numbers
            .chunks_exact(3)
            .map(|s| (s[0], s[1], s[2]))
            .collect()
    } else {
        vec![(256, 256, 256), (512, 512, 512), (1024, 1024, 1024)]
    };
    for (m, k, n) in shapes {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 256) as u8);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 7) % 256) as u8 as i8);
        let mut c = Array2::<i32>::zeros((m, n));
        let operations = 2.0 * (m * k * n) as f64;
        let config = GemmConfig::default();
        let packed = PackedB::pack(b.view()).unwrap();
        let prepacked = best_seconds(1.0, || {
            gemm_u8i8_i32(black_box(a.view()), &packed, c.view_mut(), &config).unwrap();
        });
        let included = best_seconds(1.0, || {
            let packed = PackedB::pack(black_box(b.view())).unwrap();
            gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config).unwrap();
        });
        let pack_only = best_seconds(0.3, || {
            black_box(PackedB::pack(black_box(b.view())).unwrap());
        });
        println!(
            "{m}x{k}x{n}: prepacked {:6.1} GOP/s, packing included {:6.1} GOP/s, pack B {:.3} ms",
            operations / prepacked / 1e9,
            operations / included / 1e9,
            pack_only * 1e3
        );
    }
}
