//! Practical speedups of cached over recomputing generation at N = 128 / 256 / 512 (from the generation
//! grid), and the break-even length: the shortest generation from which the cache is faster.

use super::complexity::GenerationGrid;
use super::{greedy_generation, prompt, Plan, MODULE, PROMPT_LEN};
use anyhow::{Context, Result};
use kvcache::{CacheMode, Transformer};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::grid::{compare_grid, GridConfig, GridPoint};
use serde_json::json;

pub(super) fn speedup_claim(n: usize) -> Claim {
    if n == 512 {
        Claim::threshold(
            "kvcache.speedup_512",
            MODULE,
            "generating 512 tokens (d_model = 128, 2 layers) with the KV cache is at least 50× faster than recomputing (numpy on this machine: 60.3×)",
            50.0,
            Direction::AtLeast,
        )
    } else {
        Claim::measured(
            &format!("kvcache.speedup_{n}"),
            MODULE,
            &format!(
                "speedup of KV-cached over recomputing generation of {n} tokens (numpy on this machine: {}×)",
                if n == 128 { "10.7" } else { "29.6" }
            ),
        )
    }
}

pub(super) fn speedup(grid: &GenerationGrid, n: usize) -> Result<ClaimResult> {
    let point = grid
        .generation
        .point(&n)
        .with_context(|| format!("N = {n} is not on this run's grid {:?}", grid.grid))?;
    let comparison = &point.comparison;
    let claim = speedup_claim(n);
    // The long sizes get three pairs in quick mode (one recomputing generation of 512 tokens lasts
    // seconds), too few for the signed-rank cross-check: they are judged on the t-interval alone.
    let result = match comparison.robust_speedup {
        Some(_) => claim.judge_comparison(comparison)?,
        None => claim.judge(comparison.speedup_estimate()?).with_detail(
            "cross_check",
            format!("skipped: {} pairs (< 6)", comparison.log_ratios.len()),
        ),
    };
    Ok(result
        .with_detail(
            "interval",
            "paired log-ratio t-interval over interleaved pairs (perf_core::compare::analyse_pairs; over blocks of two oppositely ordered pairs from 12 pairs on)",
        )
        .with_detail("cached_total_ns", comparison.candidate.values())
        .with_detail("uncached_total_ns", comparison.baseline.values())
        .with_detail(
            "minimum_detectable_speedup",
            comparison.minimum_detectable_speedup,
        )
        .with_detail("fairness", &comparison.fairness)
        .with_detail("identical_tokens", grid.identical_tokens)
        .with_detail("prompt_len", PROMPT_LEN))
}

pub(super) fn break_even_claim() -> Claim {
    Claim::measured(
        "kvcache.break_even_length",
        MODULE,
        "the shortest generation (tokens after an 8-token prompt) from which the KV cache is faster than recomputing, with every longer grid length faster too",
    )
}

pub(super) fn break_even(model: &Transformer, plan: &Plan, seed: u64) -> Result<ClaimResult> {
    let prompt = prompt();
    let lengths = [1usize, 2, 3, 4, 8, 16];
    // Short generations (tens of microseconds to a millisecond): ten warm-up calls per side, the fastest of
    // which sizes each sample's batch to at least 1 ms.
    let points: Vec<GridPoint<usize>> = lengths
        .iter()
        .map(|&n| GridPoint::new(n, plan.break_even_pairs).warm_up_calls(10, 10))
        .collect();
    let grid = compare_grid(
        &GridConfig {
            seed,
            ..GridConfig::default()
        },
        &points,
        |&n| greedy_generation(model, &prompt, n, CacheMode::Disabled),
        |&n| greedy_generation(model, &prompt, n, CacheMode::Contiguous),
    )?;
    let faster: Vec<bool> = grid
        .points
        .iter()
        .map(|point| point.comparison.speedup.ci_lower > 1.0)
        .collect();
    let rows: Vec<serde_json::Value> = grid
        .points
        .iter()
        .map(|point| {
            let comparison = &point.comparison;
            json!({
                "n": point.parameter,
                "speedup": comparison.speedup.point,
                "ci": [comparison.speedup.ci_lower, comparison.speedup.ci_upper],
                "cached_median_ns": comparison.candidate.median(),
                "uncached_median_ns": comparison.baseline.median(),
                "iterations_per_sample": comparison.fairness.iterations_per_sample,
            })
        })
        .collect();
    // First index from which every length is significantly faster.
    let first = (0..lengths.len())
        .find(|&idx| faster[idx..].iter().all(|&f| f))
        .context("the cache is not significantly faster even at the longest length tried")?;
    let point = lengths[first] as f64;
    let lower = if first == 0 {
        point
    } else {
        lengths[first - 1] as f64 + 1.0
    };
    Ok(break_even_claim()
        .judge(Estimate::new(point, lower.min(point), point, "tokens", 0.95)?)
        .with_detail("interval", "between the last grid length not significantly faster (exclusive) and the first that is")
        .with_detail("protocol", "perf_core::grid: interleaved pairs at every length in sweeps")
        .with_detail("lengths", lengths)
        .with_detail("comparisons", rows))
}
