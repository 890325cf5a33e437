//! Criterion benchmarks of batch-1 products `y = x · W` on the Fashion MLP's first layer (784 × 256) and a
//! keyword-spotting-sized layer (416 × 128): accel's dense
//! GEMV, the block-sparse GEMV (dense input, and an input with half its entries zero, as after a ReLU) and the CSR
//! vector product of `Wᵀ`, at block sparsities 0%, 50%, 75%, 90% and 95%.
//!
//! These are for exploring; the judged figures (interleaved pairs, intervals, the break-even sparsity) come from
//! the `sparse` module of `cargo xtask validate`.

use std::time::Duration;

use accel::{BlockSparseMatrix, CsrMatrix, GemvConfig, SparseGemvConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

const SEED: u64 = 0x5ba45e;
const SHAPES: [(usize, usize); 2] = [(784, 256), (416, 128)];
const SPARSITIES: [f64; 5] = [0.0, 0.5, 0.75, 0.9, 0.95];

fn bench_sparse(criterion: &mut Criterion) {
    for (rows, cols) in SHAPES {
        bench_shape(criterion, rows, cols);
    }
}

fn bench_shape(criterion: &mut Criterion, rows: usize, cols: usize) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let weight = Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-1.0f32..1.0));
    let dense_input: Vec<f32> = (0..rows).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let relu_input: Vec<f32> = dense_input.iter().map(|&value| value.max(0.0)).collect();
    let mut output = vec![0.0f32; cols];
    let mut group = criterion.benchmark_group(format!("batch1_{rows}x{cols}"));
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for sparsity in SPARSITIES {
        let pruned = accel::prune_blocks(weight.view(), sparsity).expect("sparsity in [0, 1]");
        let blocks = BlockSparseMatrix::from_dense(pruned.view()).expect("the shape fits");
        let transposed = pruned.t().as_standard_layout().to_owned();
        let csr = CsrMatrix::from_dense(transposed.view(), 0.0).expect("threshold 0");
        let dense_slice = pruned.as_slice().expect("standard layout");
        let label = format!("{:.0}%", sparsity * 100.0);
        group.bench_with_input(BenchmarkId::new("dense-gemv", &label), &(), |bencher, _| {
            bencher.iter(|| {
                accel::vector_matrix_rows(
                    std::hint::black_box(&dense_input),
                    dense_slice,
                    &mut output,
                    false,
                    &GemvConfig::default(),
                )
                .expect("lengths match")
            });
        });
        for (name, input) in [
            ("block-sparse", &dense_input),
            ("block-sparse-relu", &relu_input),
        ] {
            group.bench_with_input(BenchmarkId::new(name, &label), &(), |bencher, _| {
                bencher.iter(|| {
                    blocks
                        .vector_product_into(
                            std::hint::black_box(input),
                            &mut output,
                            false,
                            &SparseGemvConfig::default(),
                        )
                        .expect("lengths match")
                });
            });
        }
        group.bench_with_input(BenchmarkId::new("csr", &label), &(), |bencher, _| {
            bencher.iter(|| {
                csr.vector_product_into(std::hint::black_box(&dense_input), &mut output, false)
                    .expect("lengths match")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sparse);
criterion_main!(benches);
