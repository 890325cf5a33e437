//! Decode-step latency at given context lengths, cached (contiguous cache) and recomputed, on the reference
//! shape with one matmul thread: each step is followed by a rollback to the same context, repeated, and the
//! minimum and median are printed. The minimum is the figure to compare between builds on a busy machine
//! (other processes only ever add time); the validation suite does the statistics.
//!
//! `cargo run -p kvcache --release --example step_latency -- 128 512`

use kvcache::{CacheMode, Decoder, ModelConfig, Transformer};
use ndarray::Array2;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let contexts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let contexts = if contexts.is_empty() {
        vec![64, 512]
    } else {
        contexts
    };
    let matmul = accel::MatmulConfig {
        threads: Some(1),
        ..accel::MatmulConfig::default()
    };
    let model = Transformer::random(ModelConfig::reference(), 1)?.with_matmul_config(matmul);
    for &context in &contexts {
        let prompt = Array2::from_shape_fn((1, context), |(_, t)| (t * 31 + 7) as u32 % 256);
        let mut line = format!("context {context:5}:");
        for (name, mode, repetitions) in [
            ("cached", CacheMode::Contiguous, 400),
            ("recompute", CacheMode::Disabled, 10),
        ] {
            let mut decoder = Decoder::new(&model, 1, context + 1, mode)?;
            decoder.prefill(prompt.view())?;
            let mut times = Vec::with_capacity(repetitions);
            for _ in 0..repetitions {
                let start = Instant::now();
                let logits = decoder.step(std::hint::black_box(&[42]))?;
                times.push(start.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(logits);
                decoder.truncate(context);
            }
            times.sort_by(f64::total_cmp);
            line += &format!(
                "  {name} min {:.1} µs median {:.1} µs",
                times[0],
                times[times.len() / 2]
            );
        }
        println!("{line}");
    }
    Ok(())
}
