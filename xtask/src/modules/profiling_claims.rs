//! profiling's claims: the profiler's timer measures known work ratios (2× and 10×), its memory
//! profiler measures known allocations to the byte, its FLOP counts equal what reference kernels
//! execute, its overhead is within 5% on operations of at least 100 µs (and is reported where it
//! is larger), and a real model's layers placed on a roofline drawn from measured ceilings.

use super::ModuleContext;
use anyhow::{Context, Result};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::{compare, CompareConfig};
use perf_core::measure::MeasureConfig;
use perf_core::stats::BenchmarkResult;
use perf_core::workloads::known_work;
use profiling::layer::{
    Activation, ActivationSpec, AttentionMode, AttentionSpec, Conv2dSpec, EmbeddingSpec, Layer,
    LayerNormSpec, LayerSpec, LinearSpec, Model, Pool2dSpec, PoolKind,
};
use profiling::overhead::{measure_model_overhead, measure_overhead, OverheadReport};
use profiling::roofline::{
    measure_bandwidth, render_roofline, roofline, BandwidthConfig, Ceilings,
};
use profiling::{Network, Profiler};
use std::hint::black_box;

const MODULE: &str = "profiling";

fn or_error(result: Result<ClaimResult>, claim: &Claim) -> ClaimResult {
    result.unwrap_or_else(|error| claim.error(format!("{error:#}")))
}

/// Short samples (250 µs, still over 10,000 clock ticks) and more pairs than perf-core's default:
/// on a shared two-core machine a sample that spans a preemption is contaminated, and short
/// samples keep most of them clean, so the medians and the paired intervals stay honest.
///
/// The pairs are split over 16 independent rounds and the interval is over the rounds (df = 15): in one
/// round (one calibration, one process state), the 10× timer ratio read 9.79, 10.11 and 9.80 in three quick
/// runs, each with an interval of ±2% that excluded the others, and equivalence verdicts moved between PASS
/// and PARTIAL from run to run. With 10 rounds (df = 9) the model-forward overhead read 1.005× [0.972×, 1.040×]
/// twice in a noisy phase, inside the ±5% margin but PARTIAL after Holm (p = 0.035, 0.062).
fn compare_config(context: &ModuleContext) -> CompareConfig {
    let base = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    CompareConfig {
        seed: context.seed,
        rounds: 16,
        pairs: if context.quick { 160 } else { 320 },
        min_sample_time: std::time::Duration::from_micros(250),
        ..base
    }
}

/// Short samples for the same reason as [`compare_config`].
fn measure_config(context: &ModuleContext) -> MeasureConfig {
    let base = if context.quick {
        MeasureConfig::quick()
    } else {
        MeasureConfig::default()
    };
    MeasureConfig {
        min_sample_time: std::time::Duration::from_micros(250),
        ..base
    }
}

/// An exact quantity: the point is its own interval.
fn exact(value: f64, unit: &str) -> Result<Estimate> {
    Ok(Estimate::new(value, value, value, unit, 1.0)?)
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let mut claims = Vec::new();
    for ratio in [2u64, 10] {
        let claim = timer_claim(ratio);
        claims.push(or_error(timer_ratio(context, ratio, &claim), &claim));
    }
    claims.extend(memory_claims());
    claims.push(or_error(flops_by_execution(), &flops_claim()));
    claims.push(or_error(
        overhead_known_op(context),
        &overhead_known_op_claim(),
    ));
    claims.push(or_error(overhead_large(context), &overhead_large_claim()));
    claims.push(or_error(overhead_small(context), &overhead_small_claim()));
    claims.push(or_error(roofline_table(context), &roofline_claim()));
    Ok(claims)
}

fn timer_claim(ratio: u64) -> Claim {
    let margin = 0.05 * ratio as f64;
    Claim::equivalence(
        &format!("profiling.timer_ratio_{ratio}x"),
        MODULE,
        &format!(
            "the profiler times work of {ratio}k iterations of a fixed operation at {ratio}.0× the work of k \
             (ratio within [{:.2}, {:.2}], TOST)",
            ratio as f64 - margin,
            ratio as f64 + margin
        ),
        ratio as f64 - margin,
        ratio as f64 + margin,
    )
}

/// Both sides run inside the profiler's `record`, so the timing path under test is the
/// profiler's; the comparator interleaves them and gives the ratio its interval.
fn timer_ratio(context: &ModuleContext, ratio: u64, claim: &Claim) -> Result<ClaimResult> {
    let steps = 20_000u64;
    let mut long = Profiler::new([format!("{ratio}k steps")]);
    let mut short = Profiler::new(["k steps".to_string()]);
    let comparison = compare(
        &compare_config(context),
        &steps,
        |&s| long.record(0, || known_work(ratio * s)),
        |&s| short.record(0, || known_work(s)),
    )?;
    let long_mean = long.entries()[0].mean_ns().context("no long calls")?;
    let short_mean = short.entries()[0].mean_ns().context("no short calls")?;
    Ok(claim
        .judge_comparison(&comparison)?
        .with_detail("k_steps", steps)
        .with_detail("median_ns_k", comparison.candidate.median())
        .with_detail(format!("median_ns_{ratio}k"), comparison.baseline.median())
        .with_detail("profiler_mean_per_call_ratio", long_mean / short_mean)
        .with_detail(
            "profiler_min_per_call_ratio",
            long.entries()[0].min_ns as f64 / short.entries()[0].min_ns.max(1) as f64,
        )
        .with_detail(
            "profiler_calls",
            (long.entries()[0].calls, short.entries()[0].calls),
        )
        .with_detail("fairness", &comparison.fairness))
}

fn memory_claims() -> Vec<ClaimResult> {
    let to_the_byte = Claim::equivalence(
        "profiling.memory_to_the_byte",
        MODULE,
        "the memory profiler measures known allocations (1 MB and 10 MB) to the byte: largest |measured − requested| within [−0.5, 0.5] bytes",
        -0.5,
        0.5,
    );
    let ratio = Claim::equivalence(
        "profiling.memory_ratio_10x",
        MODULE,
        "10 MB versus 1 MB allocated measures a peak ratio of 10.00 ± 0.01",
        9.99,
        10.01,
    );
    let measured = (|| -> Result<(usize, usize)> {
        let (small, small_memory) =
            profiling::memory::profile_memory(|| black_box(vec![0u8; 1_000_000]))?;
        drop(small);
        let (large, large_memory) =
            profiling::memory::profile_memory(|| black_box(vec![0u8; 10_000_000]))?;
        drop(large);
        Ok((small_memory.peak_bytes, large_memory.peak_bytes))
    })();
    let (small, large) = match measured {
        Ok(values) => values,
        Err(error) => {
            let reason = format!("{error:#}");
            return vec![to_the_byte.error(reason.clone()), ratio.error(reason)];
        }
    };
    let extra = memory_details();
    let error = (small as f64 - 1e6).abs().max((large as f64 - 1e7).abs());
    let byte_result = exact(error, "B").map(|estimate| {
        to_the_byte
            .judge(estimate)
            .with_detail("measured_peak_bytes_1mb", small)
            .with_detail("measured_peak_bytes_10mb", large)
    });
    let ratio_result = exact(large as f64 / small as f64, "×").map(|estimate| {
        let mut result = ratio.judge(estimate);
        match &extra {
            Ok(details) => {
                for (key, value) in details {
                    result = result.with_detail(key.clone(), value);
                }
            }
            Err(error) => result = result.with_detail("model_memory_error", format!("{error:#}")),
        }
        result
    });
    vec![
        byte_result.unwrap_or_else(|error| to_the_byte.error(format!("{error:#}"))),
        ratio_result.unwrap_or_else(|error| ratio.error(format!("{error:#}"))),
    ]
}

/// Model size and activation memory of DS-CNN and a GPT-2 small block, for the record.
fn memory_details() -> Result<Vec<(String, serde_json::Value)>> {
    let mut details = Vec::new();
    for model in [
        profiling::models::ds_cnn_kws()?,
        profiling::models::gpt2_small_block_prefill(32)?,
    ] {
        let name = model.name().to_string();
        let (network, size) = profiling::memory::measure_model_size(model, 1, 1)?;
        let input = network.example_input(1, 2);
        let activations = profiling::memory::activation_memory(&network, &input, 1)?;
        details.push((format!("{name}: model size"), serde_json::to_value(&size)?));
        details.push((
            format!("{name}: activation memory (batch 1)"),
            serde_json::to_value(&activations)?,
        ));
    }
    Ok(details)
}

fn flops_claim() -> Claim {
    Claim::threshold(
        "profiling.flops_by_execution",
        MODULE,
        "for every layer kind on several shapes (and whole models), the multiply-adds and other operations the counting reference kernels execute equal the analytic counts exactly (fraction of cases = 1)",
        1.0,
        Direction::AtLeast,
    )
}

fn single(name: &str, spec: LayerSpec) -> Result<Model> {
    Ok(Model::new(name, vec![Layer::new(name, spec)?])?)
}

fn flop_cases() -> Result<Vec<Model>> {
    let linear = |in_features, out_features, positions| {
        LayerSpec::Linear(LinearSpec {
            in_features,
            out_features,
            positions,
            bias: true,
        })
    };
    let attention = |d_model, heads, mode| {
        LayerSpec::Attention(AttentionSpec {
            d_model,
            heads,
            mode,
            bias: true,
        })
    };
    let mut cases = vec![
        single("linear 7→5", linear(7, 5, 1))?,
        single("linear 16→3 × 4 positions", linear(16, 3, 4))?,
        single(
            "conv2d 3→4 3×3",
            LayerSpec::Conv2d(Conv2dSpec::new(3, 4, (7, 6), (3, 3))),
        )?,
        single(
            "conv2d strided padded dilated",
            LayerSpec::Conv2d(
                Conv2dSpec::new(2, 3, (9, 8), (3, 2))
                    .with_stride((2, 3))
                    .with_padding((1, 2))
                    .with_dilation((2, 1)),
            ),
        )?,
        single(
            "depthwise conv2d 3×3",
            LayerSpec::Conv2d(
                Conv2dSpec::new(6, 6, (5, 4), (3, 3))
                    .with_padding((1, 1))
                    .with_groups(6),
            ),
        )?,
        single(
            "grouped conv2d",
            LayerSpec::Conv2d(Conv2dSpec::new(4, 8, (5, 5), (3, 3)).with_groups(2)),
        )?,
        single(
            "attention prefill",
            attention(12, 3, AttentionMode::Prefill { seq_len: 5 }),
        )?,
        single(
            "attention decode",
            attention(12, 4, AttentionMode::Decode { context_len: 9 }),
        )?,
        single(
            "layer norm",
            LayerSpec::LayerNorm(LayerNormSpec {
                features: 10,
                positions: 3,
            }),
        )?,
        single(
            "embedding",
            LayerSpec::Embedding(EmbeddingSpec {
                vocab_size: 11,
                dim: 4,
                positions: 3,
            }),
        )?,
        single(
            "max pool 3×3 s2 p1",
            LayerSpec::Pool2d(Pool2dSpec {
                kind: PoolKind::Max,
                channels: 2,
                input: (7, 5),
                kernel: (3, 3),
                stride: (2, 2),
                padding: (1, 1),
            }),
        )?,
        single(
            "global average pool",
            LayerSpec::Pool2d(Pool2dSpec::global_average(4, (3, 5))),
        )?,
    ];
    for function in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Silu,
        Activation::Gelu,
    ] {
        cases.push(single(
            &format!("activation {function:?}"),
            LayerSpec::Activation(ActivationSpec {
                function,
                elements: 13,
            }),
        )?);
    }
    cases.push(profiling::models::ds_cnn_kws()?);
    cases.push(profiling::models::gpt2_small_block_prefill(4)?);
    cases.push(profiling::models::gpt2_small_block_decode(16)?);
    Ok(cases)
}

fn flops_by_execution() -> Result<ClaimResult> {
    let mut rows = Vec::new();
    let mut exact_cases = 0usize;
    let mut total_cases = 0usize;
    for model in flop_cases()? {
        for batch in [1usize, 2] {
            let table = model.table(batch)?;
            let network = Network::new(model.clone(), 3, batch)?;
            let input = network.example_input(batch, 4);
            let (_, executed) = network.reference_forward(&input, batch)?;
            let analytic_macs: u64 = table.iter().map(|row| row.cost.multiply_adds).sum();
            let analytic_other: u64 = table.iter().map(|row| row.cost.other_ops).sum();
            let executed_macs: u64 = executed.iter().map(|count| count.multiply_adds).sum();
            let executed_other: u64 = executed.iter().map(|count| count.other_ops).sum();
            let per_layer_exact = table.iter().zip(&executed).all(|(row, count)| {
                row.cost.multiply_adds == count.multiply_adds
                    && row.cost.other_ops == count.other_ops
            });
            let parameters_exact = network.stored_parameters() == model.parameters();
            let is_exact = per_layer_exact && parameters_exact;
            total_cases += 1;
            exact_cases += usize::from(is_exact);
            rows.push(serde_json::json!({
                "case": model.name(),
                "batch": batch,
                "analytic_multiply_adds": analytic_macs,
                "executed_multiply_adds": executed_macs,
                "analytic_other_ops": analytic_other,
                "executed_other_ops": executed_other,
                "parameters_described": model.parameters(),
                "parameters_stored": network.stored_parameters(),
                "exact": is_exact,
            }));
        }
    }
    let fraction = exact_cases as f64 / total_cases as f64;
    Ok(flops_claim()
        .judge(exact(fraction, "")?)
        .with_detail("cases", total_cases)
        .with_detail("exact_cases", exact_cases)
        .with_detail(
            "convention",
            "flops = 2 × multiply-adds + other operations (add, multiply, divide, max, exp, sqrt, tanh one each)",
        )
        .with_detail("table", rows))
}

fn overhead_known_op_claim() -> Claim {
    Claim::equivalence(
        "profiling.overhead_150us_op",
        MODULE,
        "recording a fixed 150 µs operation in the profiler costs at most 5%: speedup of profiled over unprofiled within [0.95, 1/0.95] (TOST)",
        0.95,
        1.0 / 0.95,
    )
}

/// A fixed CPU-bound operation of about 150 µs (900,000 steps of the known chain): its only
/// noise is the machine's, so this isolates the profiler's cost from the model's own variance.
fn overhead_known_op(context: &ModuleContext) -> Result<ClaimResult> {
    let steps = 900_000u64;
    let report = measure_overhead(&compare_config(context), &steps, |&s| known_work(s))?;
    anyhow::ensure!(
        report.recorded_calls > 0,
        "the profiled side recorded no calls"
    );
    let median_us = report.comparison.baseline.median() / 1e3;
    anyhow::ensure!(
        median_us >= 100.0,
        "the operation took {median_us:.1} µs, under the 100 µs this claim is about"
    );
    let result = overhead_known_op_claim().judge_comparison(&report.comparison)?;
    Ok(overhead_details(result, &report).with_detail("steps", steps))
}

fn overhead_large_claim() -> Claim {
    Claim::equivalence(
        "profiling.overhead_model_forward",
        MODULE,
        "profiling every layer of a forward pass of ≥ 100 µs (DS-CNN) costs at most 5%: speedup of profiled over unprofiled within [0.95, 1/0.95] (TOST)",
        0.95,
        1.0 / 0.95,
    )
}

fn overhead_details(result: ClaimResult, report: &OverheadReport) -> ClaimResult {
    result
        .with_detail("overhead_fraction", report.overhead)
        .with_detail("overhead_interval", report.overhead_interval)
        .with_detail("unprofiled_median_ns", report.comparison.baseline.median())
        .with_detail("profiled_median_ns", report.comparison.candidate.median())
        .with_detail("recorded_calls", report.recorded_calls)
        .with_detail("fairness", &report.comparison.fairness)
}

fn overhead_large(context: &ModuleContext) -> Result<ClaimResult> {
    let model = profiling::models::ds_cnn_kws()?;
    let batch = 1;
    let network = Network::new(model, context.seed, batch)?;
    let input = network.example_input(batch, context.seed);
    let report = measure_model_overhead(&compare_config(context), &network, &input, batch)?;
    anyhow::ensure!(
        report.recorded_calls > 0,
        "the profiled side recorded no calls"
    );
    let median_us = report.comparison.baseline.median() / 1e3;
    anyhow::ensure!(
        median_us >= 100.0,
        "the operation took {median_us:.1} µs, under the 100 µs this claim is about"
    );
    let result = overhead_large_claim().judge_comparison(&report.comparison)?;
    Ok(overhead_details(result, &report)
        .with_detail(
            "operation",
            format!("{} forward, batch {batch}", network.model().name()),
        )
        .with_detail("layers_recorded_per_pass", network.model().layers().len()))
}

fn overhead_small_claim() -> Claim {
    Claim::measured(
        "profiling.overhead_small_op",
        MODULE,
        "the profiler's overhead on a sub-microsecond operation (a 16→16 linear layer), reported: two clock reads and two allocator snapshots per call are a larger share there",
    )
}

fn overhead_small(context: &ModuleContext) -> Result<ClaimResult> {
    let layer = Layer::new(
        "linear 16→16",
        LayerSpec::Linear(LinearSpec {
            in_features: 16,
            out_features: 16,
            positions: 1,
            bias: true,
        }),
    )?;
    let network = Network::new(Model::new("small", vec![layer])?, context.seed, 1)?;
    let input = network.example_input(1, context.seed);
    network.forward_layer(0, &input, 1)?;
    let report = measure_overhead(&compare_config(context), &input, |x| {
        network.forward_layer(0, x, 1)
    })?;
    anyhow::ensure!(
        report.recorded_calls > 0,
        "the profiled side recorded no calls"
    );
    let (lower, upper) = report.overhead_interval;
    let estimate = Estimate::new(
        100.0 * report.overhead,
        100.0 * lower.min(report.overhead),
        100.0 * upper.max(report.overhead),
        "%",
        report.comparison.speedup.confidence,
    )?;
    let per_call_ns = report.comparison.candidate.median() - report.comparison.baseline.median();
    Ok(
        overhead_details(overhead_small_claim().judge(estimate), &report)
            .with_detail("overhead_ns_per_call", per_call_ns),
    )
}

fn roofline_claim() -> Claim {
    Claim::measured(
        "profiling.roofline_gpt2_block",
        MODULE,
        "GPT-2 small block layers (prefill 32 tokens; decode at context 1024) on a roofline from measured ceilings (one core: accel's FMA peak, stream-triad DRAM bandwidth); estimate: the prefill block's achieved GFLOP/s",
    )
}

fn roofline_table(context: &ModuleContext) -> Result<ClaimResult> {
    let peak = accel::peak_probe(&accel::PeakProbeConfig {
        threads: Some(1),
        // Short repetitions, many of them: on a shared machine the fastest short run is the one
        // that was not preempted.
        min_duration: std::time::Duration::from_millis(2),
        repetitions: if context.quick { 40 } else { 100 },
        ..accel::PeakProbeConfig::default()
    })?;
    let bandwidth = measure_bandwidth(&BandwidthConfig {
        repetitions: if context.quick { 4 } else { 16 },
        ..BandwidthConfig::default()
    })?;
    let ceilings = Ceilings {
        peak_gflops: peak.gflops_per_core,
        bandwidth_gbytes_per_second: bandwidth.gbytes_per_second,
    };
    let config = measure_config(context);
    let mut tables = Vec::new();
    let mut all_points = Vec::new();
    let mut prefill_totals = (0u64, 0.0f64, 0.0f64, 0.0f64);
    for (model, is_prefill) in [
        (profiling::models::gpt2_small_block_prefill(32)?, true),
        (profiling::models::gpt2_small_block_decode(1024)?, false),
    ] {
        let name = model.name().to_string();
        let network = Network::new(model, context.seed, 1)?;
        let input = network.example_input(1, context.seed);
        let latencies = profiling::latency::layer_latencies(&network, &input, 1, &config)?;
        let points = roofline(&latencies, &ceilings);
        if is_prefill {
            for latency in &latencies {
                let (lower, upper) = latency
                    .result
                    .median_ci()
                    .with_context(|| format!("{}: no median interval", latency.name))?;
                prefill_totals.0 += latency.cost.flops;
                prefill_totals.1 += latency.result.median();
                prefill_totals.2 += lower;
                prefill_totals.3 += upper;
            }
        }
        tables.push(format!(
            "### {name}\n\n{}",
            render_roofline(&points, &ceilings)
        ));
        all_points.push((name, points));
    }
    let (flops, median_ns, lower_ns, upper_ns) = prefill_totals;
    // Summing the layers' median bounds gives a conservative interval for the block's total.
    let estimate = Estimate::new(
        flops as f64 / median_ns,
        flops as f64 / upper_ns,
        flops as f64 / lower_ns,
        "GFLOP/s",
        config.confidence,
    )?;
    let bandwidth_result = BenchmarkResult::from_values(
        "triad bandwidth per chunk",
        "GB/s",
        bandwidth.chunk_gbytes_per_second.clone(),
    )?;
    Ok(roofline_claim()
        .judge(estimate)
        .with_detail("table", tables.join("\n"))
        .with_detail("points", &all_points)
        .with_detail("peak_gflops_per_core", peak.gflops_per_core)
        .with_detail("peak_isa", format!("{:?}", peak.isa))
        .with_detail("bandwidth_gbytes_per_second", bandwidth.gbytes_per_second)
        .with_detail("bandwidth_median_ci", bandwidth_result.median_ci())
        .with_detail(
            "bandwidth_chunk_range",
            (bandwidth_result.min(), bandwidth_result.max()),
        )
        .with_detail("bandwidth_chunks", bandwidth_result.count())
        .with_detail("bandwidth_bytes_per_chunk", bandwidth.bytes_per_chunk)
        .with_detail(
            "bandwidth_best_whole_pass_gbytes_per_second",
            bandwidth.best_pass_gbytes_per_second,
        )
        .with_detail("bandwidth_array_bytes", bandwidth.array_bytes)
        .with_detail("ridge_flop_per_byte", ceilings.ridge_intensity())
        .with_detail(
            "hardware_counters",
            profiling::counters::unavailability_reason(),
        )
        .with_detail("threads", 1))
}
