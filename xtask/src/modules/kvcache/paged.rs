//! The paged cache against the contiguous one: memory waste on requests of random length (by allocation),
//! and generation throughput.

use super::{greedy_generation, prompt, ModuleContext, Plan, SplitMix, BLOCK_SIZE, MODULE};
use anyhow::Result;
use kvcache::{CacheMode, KvCache, KvStore, Transformer};
use ndarray::Array2;
use perf_core::alloc::measure_peak;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::CompareConfig;
use perf_core::fallible::try_compare;
use perf_core::stats::ratio_of_sums;

pub(super) fn waste_claim() -> Claim {
    Claim::threshold(
        "kvcache.paged_memory_waste",
        MODULE,
        "on requests of random length (16…1024 tokens), the paged cache (16-token blocks) wastes at most 5% of the K/V bytes it allocates (measured by allocation); the contiguous cache must reserve the maximum length",
        0.05,
        Direction::AtMost,
    )
}

pub(super) fn paged_memory_waste(
    model: &Transformer,
    plan: &Plan,
    seed: u64,
) -> Result<ClaimResult> {
    const MAX_LEN: usize = 1024;
    let mut rng = SplitMix(seed ^ 0x0057_4153_5445);
    let lengths: Vec<usize> = (0..plan.waste_requests)
        .map(|_| rng.range(16, MAX_LEN))
        .collect();
    let d_model = model.config().d_model;
    let bytes_per_token = model.cache_shape(1).bytes_per_token() as f64;
    let mut paged = Vec::new();
    let mut contiguous = Vec::new();
    let mut used = Vec::new();
    for &len in &lengths {
        let keys = Array2::<f32>::zeros((len, d_model));
        let fill = |cache: &mut dyn KvStore| -> Result<()> {
            for layer in 0..model.config().n_layers {
                cache.append(layer, keys.view(), keys.view())?;
            }
            Ok(())
        };
        let (outcome, memory) = measure_peak(|| -> Result<()> {
            let mut cache = model.new_paged_cache(1, BLOCK_SIZE)?;
            fill(&mut cache)
        })?;
        outcome?;
        paged.push(memory.peak_bytes as f64);
        let (outcome, memory) = measure_peak(|| -> Result<()> {
            let mut cache: KvCache = model.new_cache(1, MAX_LEN)?;
            fill(&mut cache)
        })?;
        outcome?;
        contiguous.push(memory.peak_bytes as f64);
        used.push(len as f64 * bytes_per_token);
    }
    let waste = |allocated: &[f64], indices: &mut dyn Iterator<Item = usize>| -> f64 {
        let (mut total_allocated, mut total_used) = (0.0, 0.0);
        for idx in indices {
            total_allocated += allocated[idx];
            total_used += used[idx];
        }
        1.0 - total_used / total_allocated
    };
    let n = lengths.len();
    let paged_waste = waste(&paged, &mut (0..n));
    let contiguous_waste = waste(&contiguous, &mut (0..n));
    // Waste is 1 − Σ used / Σ allocated over the requests (a sample of request lengths): perf-core's
    // ratio of sums, with its delta-method t-interval, flipped.
    let used_over_paged = ratio_of_sums(&used, &paged, 0.95)?;
    let lower = (1.0 - used_over_paged.ci_upper).min(paged_waste);
    let upper = (1.0 - used_over_paged.ci_lower).max(paged_waste);
    Ok(waste_claim()
        .judge(Estimate::new(paged_waste, lower, upper, "", 0.95)?)
        .with_detail(
            "interval",
            "1 − the ratio of sums (used / allocated) over requests, delta-method t-interval",
        )
        .with_detail("requests", n)
        .with_detail("block_size", BLOCK_SIZE)
        .with_detail("contiguous_capacity", MAX_LEN)
        .with_detail("contiguous_waste", contiguous_waste)
        .with_detail(
            "contiguous_over_paged_bytes",
            contiguous.iter().sum::<f64>() / paged.iter().sum::<f64>(),
        )
        .with_detail("paged_bytes_total", paged.iter().sum::<f64>())
        .with_detail("contiguous_bytes_total", contiguous.iter().sum::<f64>())
        .with_detail("used_bytes_total", used.iter().sum::<f64>()))
}

pub(super) fn paged_throughput_claim() -> Claim {
    Claim::threshold(
        "kvcache.paged_throughput",
        MODULE,
        "the paged cache (16-token blocks) keeps at least 80% of the contiguous cache's generation throughput",
        0.8,
        Direction::AtLeast,
    )
}

fn compare_config(context: &ModuleContext) -> CompareConfig {
    let base = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    CompareConfig {
        seed: context.seed,
        ..base
    }
}

pub(super) fn paged_throughput(
    model: &Transformer,
    plan: &Plan,
    context: &ModuleContext,
) -> Result<ClaimResult> {
    let prompt = prompt();
    let paged = CacheMode::Paged {
        block_size: BLOCK_SIZE,
    };
    // A generation that fails while timed makes the claim ERROR (try_compare keeps the first error).
    let comparison = try_compare(
        &compare_config(context),
        &plan.paged_tokens,
        |&n| greedy_generation(model, &prompt, n, CacheMode::Contiguous),
        |&n| greedy_generation(model, &prompt, n, paged),
    )?;
    Ok(paged_throughput_claim()
        .judge_comparison(&comparison)?
        .with_detail("tokens", plan.paged_tokens)
        .with_detail("block_size", BLOCK_SIZE)
        .with_detail("contiguous_median_ns", comparison.baseline.median())
        .with_detail("paged_median_ns", comparison.candidate.median())
        .with_detail("fairness", &comparison.fairness))
}
