//! Rough generation timings for the reference shape: cached, paged and recomputed generation of N
//! tokens, one run each (the validation suite does the statistics).
//!
//! `cargo run -p kvcache --release --example speed -- 128 256 512`

use kvcache::{generate, CacheMode, GenerationConfig, ModelConfig, Transformer};
use ndarray::Array2;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    // `KV_ONLY=contiguous|paged|recompute` runs one mode (for profiling).
    let only = std::env::var("KV_ONLY").ok();
    let lengths: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let lengths = if lengths.is_empty() {
        vec![32, 128, 512]
    } else {
        lengths
    };
    let matmul = accel::MatmulConfig {
        threads: Some(1),
        ..accel::MatmulConfig::default()
    };
    let model = Transformer::random(ModelConfig::reference(), 1)?.with_matmul_config(matmul);
    let prompts = Array2::from_shape_fn((1, 8), |(_, t)| t as u32 + 1);
    for &n in &lengths {
        let mut times = Vec::new();
        for cache in [
            CacheMode::Contiguous,
            CacheMode::Paged { block_size: 16 },
            CacheMode::Disabled,
        ] {
            let name = match cache {
                CacheMode::Contiguous => "contiguous",
                CacheMode::Paged { .. } => "paged",
                _ => "recompute",
            };
            if only.as_deref().is_some_and(|only| only != name) {
                times.push(f64::NAN);
                continue;
            }
            let config = GenerationConfig {
                max_new_tokens: n,
                cache,
                ..GenerationConfig::default()
            };
            let start = Instant::now();
            let generation = generate(&model, prompts.view(), &config)?;
            times.push(start.elapsed().as_secs_f64());
            std::hint::black_box(generation);
        }
        println!(
            "N={n:5}: contiguous {:.4} s, paged {:.4} s, recompute {:.4} s, speedup {:.1}x, paged/contiguous {:.2}",
            times[0],
            times[1],
            times[2],
            times[2] / times[0],
            times[1] / times[0]
        );
    }
    Ok(())
}
