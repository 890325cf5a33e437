//! Cost of perf-core's own machinery: one timer read, one stopwatch lap, and the per-iteration
//! overhead of the measurement loop on an empty routine.

use criterion::{criterion_group, criterion_main, Criterion};
use perf_core::measure::{ClosureBatch, TimedBatch};
use perf_core::timer::Stopwatch;
use std::hint::black_box;
use std::time::Instant;

fn timer_costs(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer");
    group.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    group.bench_function("stopwatch_lap", |b| {
        let mut watch = Stopwatch::start();
        b.iter(|| black_box(watch.lap()))
    });
    group.finish();
}

fn loop_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("measurement_loop");
    let input = 7u64;
    // One batch of 1,000 iterations of an empty routine through ClosureBatch: divide by 1,000 for
    // the per-iteration cost of the loop itself (black_box on input and output included).
    group.bench_function("closure_batch_1000_empty", |b| {
        let mut batch = ClosureBatch::new(&input, |x: &u64| *x);
        b.iter(|| black_box(batch.run_batch(1_000)))
    });
    group.finish();
}

criterion_group!(benches, timer_costs, loop_overhead);
criterion_main!(benches);
