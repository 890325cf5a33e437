//! Sweeps the integer GEMM's cache blocking at one square size, packing of B included, interleaved with accel's
//! one-thread f32 GEMM as a yardstick, so blockings can be compared on a shared (noisy) machine by their ratio to
//! it: every round runs each contender once (a batch of about 5 ms), 25 rounds; median and best are printed.
//!
//! `cargo run --release -p quant --example gemm_tune -- N [kc:mc ...]` (a default sweep when no pairs are given)

use std::hint::black_box;
use std::time::Instant;

use accel::MatmulConfig;
use anyhow::Context;
use ndarray::Array2;
use quant::{gemm_u8i8_i32, GemmBlocking, GemmConfig, PackedB};

const ROUNDS: usize = 25;
const BATCH_SECONDS: f64 = 0.005;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .context("usage: gemm_tune N [kc:mc ...]")?
        .parse()?;
    let mut pairs: Vec<(usize, usize)> = args
        .map(|pair| {
            let (kc, mc) = pair.split_once(':').context("pairs are kc:mc")?;
            Ok((kc.parse()?, mc.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    if pairs.is_empty() {
        pairs = vec![
            (512, 192),
            (512, 48),
            (1024, 24),
            (1024, 48),
            (1024, 96),
            (1024, 192),
        ];
    }
    let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 256) as u8);
    let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 13 + j * 7) % 256) as u8 as i8);
    let (af, bf) = (a.mapv(f32::from), b.mapv(f32::from));
    let mut c = Array2::<i32>::zeros((n, n));
    let mut cf = Array2::<f32>::zeros((n, n));
    let mut packed = PackedB::pack(b.view())?;
    let operations = 2.0 * (n as f64).powi(3);
    let f32_config = MatmulConfig {
        threads: Some(1),
        ..MatmulConfig::default()
    };

    // Contender 0 is the f32 yardstick; the others are the blockings.
    let contenders = pairs.len() + 1;
    let mut run = |index: usize| -> anyhow::Result<()> {
        if index == 0 {
            accel::matmul_into_with(af.view(), bf.view(), cf.view_mut(), false, &f32_config)?;
            black_box(&cf);
            return Ok(());
        }
        let (kc, mc) = pairs[index - 1];
        packed.repack(black_box(b.view()))?;
        let config = GemmConfig {
            blocking: GemmBlocking { kc, mc },
            ..GemmConfig::default()
        };
        gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config)?;
        black_box(&c);
        Ok(())
    };
    // Calls per batch, from one timed call each.
    let mut calls = vec![1usize; contenders];
    for (index, count) in calls.iter_mut().enumerate() {
        run(index)?;
        let started = Instant::now();
        run(index)?;
        let once = started.elapsed().as_secs_f64();
        *count = ((BATCH_SECONDS / once).ceil() as usize).max(1);
    }
    let mut rates = vec![Vec::with_capacity(ROUNDS); contenders];
    for _ in 0..ROUNDS {
        for (index, &count) in calls.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..count {
                run(index)?;
            }
            let seconds = started.elapsed().as_secs_f64() / count as f64;
            rates[index].push(operations / seconds / 1e9);
        }
    }
    let summary = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[values.len() - 1])
    };
    let (f32_median, f32_best) = summary(&mut rates[0]);
    println!("n = {n}, {ROUNDS} interleaved rounds, packing of B included; GOP/s");
    println!(
        "{:<24} {:>8} {:>9} {:>8} {:>9}",
        "contender", "median", "vs f32", "best", "vs f32"
    );
    println!(
        "{:<24} {:>8.1} {:>9} {:>8.1} {:>9}",
        "accel f32 (1 thread)", f32_median, "", f32_best, ""
    );
    for (index, &(kc, mc)) in pairs.iter().enumerate() {
        let (median, best) = summary(&mut rates[index + 1]);
        println!(
            "{:<24} {:>8.1} {:>8.2}× {:>8.1} {:>8.2}×",
            format!("int8 kc={kc} mc={mc}"),
            median,
            median / f32_median,
            best,
            best / f32_best
        );
    }
    Ok(())
}
