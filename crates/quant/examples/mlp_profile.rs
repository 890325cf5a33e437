//! Times the stages of a quantized MLP forward pass on a digits-sized network (64-128-10, batch 451), for
//! finding where small-model inference spends its time. `cargo run --release -p quant --example mlp_profile`.

use ndarray::{Array1, Array2};
use quant::{GemmConfig, QuantizedMlp, QuantizedMlpConfig};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let w1 = Array2::from_shape_fn((64, 128), |(i, j)| {
        ((i * 7 + j * 3) % 17) as f32 / 17.0 - 0.5
    });
    let w2 = Array2::from_shape_fn((128, 10), |(i, j)| {
        ((i * 5 + j * 11) % 13) as f32 / 13.0 - 0.5
    });
    let (b1, b2) = (Array1::<f32>::zeros(128), Array1::<f32>::zeros(10));
    let x = Array2::from_shape_fn((451, 64), |(i, j)| ((i + j) % 17) as f32);
    let mlp = QuantizedMlp::quantize(
        &[(w1.view(), b1.view()), (w2.view(), b2.view())],
        x.view(),
        &QuantizedMlpConfig::default(),
    )?;
    let layer = &mlp.layers()[0];
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(mlp.forward(x.view(), &GemmConfig::default())?);
        }
        let whole = started.elapsed().as_secs_f64() / 100.0;
        let started = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(layer.forward(x.view(), &GemmConfig::default())?);
        }
        let first = started.elapsed().as_secs_f64() / 100.0;
        println!(
            "mlp forward {:.1} µs, first layer {:.1} µs",
            whole * 1e6,
            first * 1e6
        );
    }
    Ok(())
}
