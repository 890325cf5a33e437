//! Sweeps the SIMD kernel's cache blocking at one size, interleaved with the `gemm` crate as a yardstick, so
//! blocking choices can be compared on a shared (noisy) machine by their ratio to gemm.
//!
//! `cargo run -p accel --release --example tune -- N [kc:nc ...]` (default sweep when no pairs are given)
//!
//! Wall time per batch of about 5 ms, 25 interleaved rounds; median and best are printed.

use std::time::Instant;

use accel::{Backend, Isa, MatmulConfig, SimdBlocking};
use anyhow::Context;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().context("usage: tune N [kc:nc ...]")?.parse()?;
    let mut pairs: Vec<(usize, usize)> = args
        .map(|pair| {
            let (kc, nc) = pair.split_once(':').context("pairs are kc:nc")?;
            Ok((kc.parse()?, nc.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    if pairs.is_empty() {
        pairs = vec![
            (128, 512),
            (256, 256),
            (256, 512),
            (256, 1024),
            (384, 512),
            (512, 256),
            (512, 512),
        ];
    }
    let isa = Isa::best();
    let detected = SimdBlocking::detect(isa);
    println!("n = {n}, isa {isa}, detected blocking {detected:?}");
    let mut rng = StdRng::seed_from_u64(7);
    let a = Array2::from_shape_simple_fn((n, n), || rng.random_range(-1.0f32..1.0));
    let b = Array2::from_shape_simple_fn((n, n), || rng.random_range(-1.0f32..1.0));
    let mut c = Array2::<f32>::zeros((n, n));
    let flops = 2.0 * (n as f64).powi(3);
    let calls = ((2e9 * 0.005 / flops).ceil() as usize).max(1);
    let configs: Vec<Option<SimdBlocking>> = std::iter::once(None)
        .chain(
            pairs
                .iter()
                .map(|&(kc, nc)| Some(SimdBlocking { kc, nc, ..detected })),
        )
        .collect();
    let mut samples = vec![Vec::new(); configs.len() + 1];
    for _round in 0..25 {
        for (idx, blocking) in configs.iter().enumerate() {
            let config = MatmulConfig {
                backend: Backend::Simd(isa),
                simd_blocking: *blocking,
                ..MatmulConfig::default()
            };
            let start = Instant::now();
            for _ in 0..calls {
                accel::matmul_into_with(a.view(), b.view(), c.view_mut(), false, &config)?;
            }
            samples[idx].push(flops * calls as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
        let start = Instant::now();
        for _ in 0..calls {
            accel::baselines::gemm_sgemm(a.view(), b.view(), c.view_mut(), 1)?;
        }
        samples[configs.len()].push(flops * calls as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    // Median and best sample: on a loaded machine the best is the least disturbed run.
    let summary = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[values.len() - 1])
    };
    let (gemm_median, gemm_best) = summary(&mut samples[configs.len()]);
    println!(
        "{:<28}{:>10}{:>10}{:>10}{:>10}",
        "blocking", "median", "vs gemm", "best", "vs gemm"
    );
    for (idx, blocking) in configs.iter().enumerate() {
        let (value, best) = summary(&mut samples[idx]);
        let label = blocking.map_or("detected".to_owned(), |b| {
            format!("kc={} nc={}", b.kc, b.nc)
        });
        println!(
            "{label:<28}{value:>10.1}{:>10.3}{best:>10.1}{:>10.3}",
            value / gemm_median,
            best / gemm_best
        );
    }
    println!(
        "{:<28}{gemm_median:>10.1}{:>10}{gemm_best:>10.1}",
        "gemm x86-v4 (1t)", ""
    );
    Ok(())
}
