//! kvcache's claims. The correctness gate runs first (cached and paged logits equal full
//! recomputation at every step); when it does not pass, every timing claim is ERROR. The same gate
//! with the Olympics' compressed projections (int8, f16, CSR, pruned MLPs) follows. Then: cache
//! memory linear in sequence length (by allocation), generation-time complexity against an
//! operation-count model, practical speedups at N = 128 / 256 / 512 and the break-even length, and
//! the paged cache's throughput and memory waste against the contiguous one; last, zoo's trained
//! character transformer run through kvcache's decoder.
//!
//! Every timing goes through perf-core's protocol: the grid of generation lengths is one
//! [`perf_core::grid::compare_grid`] (cached against recomputing generation, interleaved in sweeps),
//! whose per-length comparisons give the speedups and whose raw per-call times give the complexity
//! fits; the paged cache's throughput is one [`perf_core::fallible::try_compare`]. A generation that
//! fails while timed makes its claims ERROR.
//!
//! Code map: `gate.rs` (correctness gate), `compressed.rs` (the gate with compressed projections),
//! `memory.rs` (linear cache bytes), `complexity.rs` (the generation grid and the exponent claims),
//! `speedups.rs` (speedups and the break-even length), `paged.rs` (paged memory waste and
//! throughput), `trained.rs` (zoo's trained model in kvcache).

mod complexity;
mod compressed;
mod gate;
mod memory;
mod paged;
mod speedups;
mod trained;

use super::splitmix::SplitMix;
use super::ModuleContext;
use anyhow::{ensure, Result};
use kvcache::{argmax, CacheMode, Decoder, ModelConfig, Transformer};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Verdict};
use perf_core::complexity::geometric_grid;

const MODULE: &str = "kvcache";
/// Normwise relative error allowed between cached and recomputed logits (see the crate's test).
const TOLERANCE: f64 = 1e-4;
/// Prompt length of every timed generation.
const PROMPT_LEN: usize = 8;
/// Block size of the paged cache (vLLM's default).
const BLOCK_SIZE: usize = 16;
/// Margin around the operation-count model's exponent.
const EXPONENT_MARGIN: f64 = 0.15;

struct Plan {
    /// Generated tokens N of the complexity grid.
    grid: Vec<usize>,
    /// Interleaved pairs at each N below `long_from`.
    repetitions: usize,
    /// Pairs from N = `long_from` on, where one recomputing generation costs seconds.
    long_repetitions: usize,
    /// The first N measured `long_repetitions` times.
    long_from: usize,
    /// Largest N whose recomputing generation gets an unrecorded warm-up call (cached generation
    /// gets one at every N).
    recompute_warm_up_max: usize,
    /// Further cached-only generations per size, for the cached complexity fit.
    extra_cached_repetitions: usize,
    /// Pairs of single decode steps at each context of the step-latency grid.
    step_pairs: usize,
    /// Pairs at each length of the break-even grid.
    break_even_pairs: usize,
    /// Random shapes in the correctness gate.
    gate_cases: usize,
    /// Steps of the reference-shape gate case.
    gate_reference_steps: usize,
    /// Requests of the memory-waste workload.
    waste_requests: usize,
    /// Generated tokens of the paged throughput comparison.
    paged_tokens: usize,
    /// Held-out windows of the trained model compared with zoo's forward pass and recomputation.
    trained_agreement_windows: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                grid: geometric_grid(32, 512, 5),
                // Twelve repetitions below N = 256, where a recomputing generation costs 11–150 ms: the fit has a
                // constant term, which trades off against the exponent at the small end, and there one generation
                // lies within one of the VM's slow or fast stretches (±8% at N = 32). With three at every size
                // the uncached exponent's interval once read 2.062 [1.880, 2.245] against the margin
                // [1.962, 2.262]; with six it was still ±0.09–0.13 in noisy phases (PARTIAL in 4 quick runs
                // of 39).
                repetitions: 12,
                long_repetitions: 3,
                // Quick mode must stay near 15 s on a quiet machine: one recomputing generation
                // of 512 tokens takes about 3 s, so it runs three times and without a warm-up
                // (its first-run allocation effects are milliseconds against seconds). Two runs
                // gave a t-interval with one degree of freedom (t = 12.7): 110× [37×, 322×]
                // against the 50× bar, and the verdict moved between PASS and PARTIAL.
                long_from: 256,
                extra_cached_repetitions: 18,
                recompute_warm_up_max: 256,
                step_pairs: 6,
                break_even_pairs: 10,
                gate_cases: 12,
                gate_reference_steps: 64,
                waste_requests: 64,
                paged_tokens: 128,
                trained_agreement_windows: 4,
            }
        } else {
            Plan {
                grid: geometric_grid(32, 1024, 6),
                // As in quick mode (a full run is never thinner than a quick one): twelve pairs below the long
                // sizes, and three at N = 1024, the fewest compare_grid accepts (perf_core::grid::MIN_GRID_PAIRS;
                // two made every grid claim ERROR in the full run of 2026-12-05).
                repetitions: 12,
                long_repetitions: 3,
                long_from: 1024,
                extra_cached_repetitions: 12,
                recompute_warm_up_max: 512,
                step_pairs: 12,
                break_even_pairs: 20,
                gate_cases: 40,
                gate_reference_steps: 256,
                waste_requests: 256,
                paged_tokens: 256,
                trained_agreement_windows: 32,
            }
        }
    }
}

fn or_error(result: Result<ClaimResult>, claim: &Claim) -> ClaimResult {
    result.unwrap_or_else(|error| claim.error(format!("{error:#}")))
}

fn reference_model(context: &ModuleContext) -> Result<Transformer> {
    let matmul = accel::MatmulConfig {
        threads: Some(context.threads.unwrap_or(1)),
        ..accel::MatmulConfig::default()
    };
    Ok(Transformer::random(ModelConfig::reference(), context.seed)?.with_matmul_config(matmul))
}

/// The prompt of every timed generation (1 × PROMPT_LEN).
fn prompt() -> Array2<u32> {
    Array2::from_shape_fn((1, PROMPT_LEN), |(_, t)| (31 * t + 7) as u32 % 256)
}

/// One greedy generation of `n` tokens after `prompt`: the unit of work every generation timing measures.
/// The decoder (and its cache) is created inside: allocation is part of generating.
fn greedy_generation(
    model: &Transformer,
    prompt: &Array2<u32>,
    n: usize,
    mode: CacheMode,
) -> Result<Vec<u32>> {
    ensure!(n >= 1, "generate at least one token");
    let mut decoder = Decoder::new(model, prompt.nrows(), prompt.ncols() + n - 1, mode)?;
    let mut next = vec![0u32; prompt.nrows()];
    let mut tokens = Vec::with_capacity(n);
    let mut logits = decoder.prefill_view(prompt.view())?;
    for step in 0..n {
        for (slot, row) in next.iter_mut().zip(logits.rows()) {
            *slot = argmax(row);
        }
        tokens.push(next[0]);
        if step + 1 == n {
            break;
        }
        logits = decoder.step_view(&next)?;
    }
    Ok(tokens)
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let plan = Plan::new(context.quick);
    let model = reference_model(context)?;
    let mut claims = Vec::new();

    let gate = or_error(gate::correctness_gate(context, &plan), &gate::gate_claim());
    let gate_failure = (gate.verdict != Verdict::Pass)
        .then(|| format!("correctness gate {}: {}", gate.verdict, gate.reason));
    claims.push(gate);
    claims.push(or_error(
        compressed::compressed_gate(context, &plan),
        &compressed::compressed_gate_claim(),
    ));
    claims.push(or_error(
        memory::memory_linear(&model),
        &memory::memory_claim(),
    ));
    claims.push(or_error(
        paged::paged_memory_waste(&model, &plan, context.seed),
        &paged::waste_claim(),
    ));

    let grid_claims = [
        complexity::complexity_claim(true, 0.0),
        complexity::complexity_claim(false, 0.0),
        speedups::speedup_claim(128),
        speedups::speedup_claim(256),
        speedups::speedup_claim(512),
    ];
    if let Some(reason) = gate_failure {
        claims.extend(
            grid_claims
                .iter()
                .chain(
                    [
                        speedups::break_even_claim(),
                        paged::paged_throughput_claim(),
                    ]
                    .iter(),
                )
                .map(|claim| claim.error(reason.clone())),
        );
        claims.extend(trained::trained_model_claims(context, &plan));
        return Ok(claims);
    }
    match complexity::generation_grid(&model, &plan, context.seed) {
        Ok(grid) => {
            claims.push(or_error(
                complexity::complexity(&model, &grid, true),
                &grid_claims[0],
            ));
            claims.push(or_error(
                complexity::complexity(&model, &grid, false),
                &grid_claims[1],
            ));
            for (claim, n) in grid_claims[2..].iter().zip([128, 256, 512]) {
                claims.push(or_error(speedups::speedup(&grid, n), claim));
            }
        }
        Err(error) => claims.extend(
            grid_claims
                .iter()
                .map(|claim| claim.error(format!("{error:#}"))),
        ),
    }
    claims.push(or_error(
        speedups::break_even(&model, &plan, context.seed),
        &speedups::break_even_claim(),
    ));
    claims.push(or_error(
        paged::paged_throughput(&model, &plan, context),
        &paged::paged_throughput_claim(),
    ));
    claims.extend(trained::trained_model_claims(context, &plan));
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::Plan;

    #[test]
    fn every_plan_gives_each_grid_size_the_pairs_compare_grid_needs() {
        for quick in [true, false] {
            let plan = Plan::new(quick);
            let fewest = plan.repetitions.min(plan.long_repetitions);
            assert!(
                fewest >= perf_core::grid::MIN_GRID_PAIRS,
                "quick = {quick}: {fewest} pairs at some grid size"
            );
        }
    }
}
