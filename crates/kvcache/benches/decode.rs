//! Per-token decode latency at several context lengths, with the KV cache (contiguous and paged)
//! and without it (the whole prefix recomputed), on the reference shape (d_model = 128, 4 heads,
//! 2 layers) with one matmul thread. Each iteration is one `Decoder::step` followed by a rollback
//! (`truncate`) to the same context, so every sample sees the same context length.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kvcache::{CacheMode, Decoder, ModelConfig, Transformer};
use ndarray::Array2;
use std::hint::black_box;
use std::time::Duration;

fn decode_latency(c: &mut Criterion) {
    let matmul = accel::MatmulConfig {
        threads: Some(1),
        ..accel::MatmulConfig::default()
    };
    let model = Transformer::random(ModelConfig::reference(), 0x5EED)
        .expect("the reference shape is valid")
        .with_matmul_config(matmul);
    let mut group = c.benchmark_group("decode_step");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    for context in [64usize, 256, 1024] {
        let prompt = Array2::from_shape_fn((1, context), |(_, t)| (t * 31 + 7) as u32 % 256);
        for (name, mode) in [
            ("cached", CacheMode::Contiguous),
            ("paged16", CacheMode::Paged { block_size: 16 }),
            ("recompute", CacheMode::Disabled),
        ] {
            let mut decoder =
                Decoder::new(&model, 1, context + 1, mode).expect("capacity within max_seq_len");
            decoder.prefill(prompt.view()).expect("prefill");
            group.bench_with_input(BenchmarkId::new(name, context), &context, |b, &context| {
                b.iter(|| {
                    let logits = decoder.step(black_box(&[42])).expect("step");
                    decoder.truncate(context);
                    logits
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode_latency);
criterion_main!(benches);
