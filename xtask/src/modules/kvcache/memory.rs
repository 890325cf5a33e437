//! Cache memory, by allocation: the contiguous cache's bytes grow linearly with its capacity, and the
//! paged cache's with the tokens it holds.

use super::{BLOCK_SIZE, MODULE};
use anyhow::Result;
use kvcache::{KvStore, PagedKvCache, Transformer};
use ndarray::Array2;
use perf_core::alloc::measure_peak;
use perf_core::claim::{Claim, ClaimResult, Estimate, Verdict};
use perf_core::complexity::{fit_power_law, geometric_grid};

pub(super) fn memory_claim() -> Claim {
    Claim::equivalence(
        "kvcache.memory_linear",
        MODULE,
        "cache bytes measured by allocation grow linearly with sequence length: fitted exponent within [0.95, 1.05] (and 1 inside its interval)",
        0.95,
        1.05,
    )
}

pub(super) fn memory_linear(model: &Transformer) -> Result<ClaimResult> {
    let capacities = geometric_grid(64, 4096, 7);
    let mut contiguous_bytes = Vec::new();
    let mut reported_bytes = Vec::new();
    let mut paged_bytes = Vec::new();
    let d_model = model.config().d_model;
    for &capacity in &capacities {
        let (cache, memory) = measure_peak(|| model.new_cache(1, capacity))?;
        let cache = cache?;
        contiguous_bytes.push(memory.peak_bytes as f64);
        reported_bytes.push(cache.allocated_bytes() as f64);
        drop(cache);
        // The paged cache grows as tokens arrive: append `capacity` tokens, one block at a time.
        let keys = Array2::<f32>::zeros((BLOCK_SIZE, d_model));
        let (paged, memory) = measure_peak(|| -> Result<PagedKvCache> {
            let mut cache = model.new_paged_cache(1, BLOCK_SIZE)?;
            for _ in 0..capacity.div_ceil(BLOCK_SIZE) {
                for layer in 0..model.config().n_layers {
                    cache.append(layer, keys.view(), keys.view())?;
                }
            }
            Ok(cache)
        })?;
        drop(paged?);
        paged_bytes.push(memory.peak_bytes as f64);
    }
    let sizes: Vec<f64> = capacities.iter().map(|&c| c as f64).collect();
    let fit = fit_power_law(&sizes, &contiguous_bytes, 0.95)?;
    let paged_fit = fit_power_law(&sizes, &paged_bytes, 0.95)?;
    // Exactly linear data leaves no residual: the profile interval collapses onto the point, so
    // widen it by the fit's numerical resolution (its golden-section search stops near 1e-9).
    let resolution = 1e-6;
    let estimate = Estimate::new(
        fit.exponent,
        fit.exponent_ci.0.min(fit.exponent - resolution),
        fit.exponent_ci.1.max(fit.exponent + resolution),
        "",
        fit.confidence,
    )?;
    let one_inside = estimate.ci_lower() <= 1.0 && 1.0 <= estimate.ci_upper();
    let result = memory_claim()
        .judge(estimate)
        .with_detail("capacities", &capacities)
        .with_detail("contiguous_peak_bytes", &contiguous_bytes)
        .with_detail("contiguous_reported_bytes", &reported_bytes)
        .with_detail("paged_peak_bytes", &paged_bytes)
        .with_detail("paged_exponent", paged_fit.exponent)
        .with_detail("paged_exponent_ci", paged_fit.exponent_ci)
        .with_detail("bytes_per_token", model.cache_shape(1).bytes_per_token())
        .with_detail("exponent_1_inside_interval", one_inside)
        .with_detail("fit", &fit);
    Ok(if one_inside {
        result
    } else {
        result.weaken(Verdict::Partial, "but 1 is outside the interval")
    })
}
