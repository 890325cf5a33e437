//! Matrix–vector shapes of a transformer decode step (d_model = 128, d_head = 32): `accel::gemv_into` (each
//! instruction set) beside accel's GEMM (`Auto`) and the i-k-j loop, one thread, the minimum over repetitions
//! (on a busy machine other processes only ever add time).
//!
//! `cargo run -p accel --release --example gemv`

use accel::{Backend, GemvConfig, Isa, MatmulConfig};
use ndarray::Array2;
use std::time::Instant;

fn minimum_ns(repetitions: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repetitions {
        let start = Instant::now();
        for _ in 0..20 {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / 20.0);
    }
    best
}

fn main() -> anyhow::Result<()> {
    // (name, k, n, B transposed): weights are row-major `k × n`; keys are `len × d_head`, read as `Kᵀ`.
    let shapes = [
        ("qkv 1x128·128x384", 128, 384, false),
        ("up 1x128·128x512", 128, 512, false),
        ("down 1x512·512x128", 512, 128, false),
        ("scores 1x32·(512x32)ᵀ", 32, 512, true),
        ("values 1x512·512x32", 512, 32, false),
    ];
    let single_thread = MatmulConfig {
        threads: Some(1),
        ..MatmulConfig::default()
    };
    for (name, k, n, transposed) in shapes {
        let a = Array2::from_shape_fn((1, k), |(_, p)| (p as f32 * 0.37).sin());
        let b_storage = if transposed {
            Array2::from_shape_fn((n, k), |(j, p)| ((j * k + p) as f32 * 0.11).cos())
        } else {
            Array2::from_shape_fn((k, n), |(p, j)| ((p * n + j) as f32 * 0.11).cos())
        };
        let b = if transposed {
            b_storage.t()
        } else {
            b_storage.view()
        };
        let mut c = Array2::<f32>::zeros((1, n));
        let mut line = format!("{name:24}");
        for isa in Isa::available() {
            let config = GemvConfig { isa: Some(isa) };
            let ns = minimum_ns(200, || {
                accel::gemv_into_with(a.view(), b, c.view_mut(), false, &config).unwrap();
            });
            line += &format!("  gemv-{isa} {ns:7.0} ns");
        }
        for (label, config) in [
            ("matmul-auto", single_thread),
            ("naive-ikj", MatmulConfig::with_backend(Backend::NaiveIkj)),
        ] {
            let ns = minimum_ns(200, || {
                accel::matmul_into_with(a.view(), b, c.view_mut(), false, &config).unwrap();
            });
            line += &format!("  {label} {ns:7.0} ns");
        }
        println!("{line}");
    }
    Ok(())
}
