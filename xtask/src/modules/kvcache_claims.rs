//! kvcache's claims. The correctness gate runs first (cached and paged logits equal full
//! recomputation at every step); when it does not pass, every timing claim is ERROR. Then: cache
//! memory linear in sequence length (by allocation), generation-time complexity against an
//! operation-count model, practical speedups at N = 128 / 256 / 512 and the break-even length, and
//! the paged cache's throughput and memory waste against the contiguous one.

use super::ModuleContext;
use anyhow::{ensure, Context, Result};
use kvcache::{
    argmax, generate, max_relative_error, CacheMode, Decoder, GenerationConfig, KvCache, KvStore,
    LayerWeights, ModelConfig, PagedKvCache, PositionalEncoding, Sampling, Transformer,
    TransformerWeights,
};
use ndarray::Array2;
use perf_core::alloc::measure_peak;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, TInference, Verdict};
use perf_core::compare::{compare, signed_rank_interval, CompareConfig};
use perf_core::complexity::{fit_power_law, geometric_grid, ComplexityFit};
use serde_json::json;
use std::time::Instant;

const MODULE: &str = "kvcache";
/// Normwise relative error allowed between cached and recomputed logits (see the crate's test).
const TOLERANCE: f64 = 1e-4;
/// Prompt length of every timed generation.
const PROMPT_LEN: usize = 8;
/// Block size of the paged cache (vLLM's default).
const BLOCK_SIZE: usize = 16;
/// Margin around the operation-count model's exponent.
const EXPONENT_MARGIN: f64 = 0.15;

/// A small deterministic generator (SplitMix64), so the module needs no RNG crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low ..= high`.
    fn range(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }
}

struct Plan {
    /// Generated tokens N of the complexity grid.
    grid: Vec<usize>,
    /// Interleaved repetitions of the grid below `long_from`.
    repetitions: usize,
    /// Repetitions from N = `long_from` on, where one recomputing generation costs seconds.
    long_repetitions: usize,
    /// The first N measured `long_repetitions` times.
    long_from: usize,
    /// Largest N whose recomputing generation gets an unrecorded warm-up run (cached generation
    /// gets one at every N).
    recompute_warm_up_max: usize,
    /// Further cached-only generations per size, for the cached complexity fit.
    extra_cached_repetitions: usize,
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
                gate_cases: 12,
                gate_reference_steps: 64,
                waste_requests: 64,
                paged_tokens: 128,
                trained_agreement_windows: 4,
            }
        } else {
            Plan {
                grid: geometric_grid(32, 1024, 6),
                repetitions: 6,
                long_repetitions: 2,
                long_from: 1024,
                extra_cached_repetitions: 12,
                recompute_warm_up_max: 512,
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

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let plan = Plan::new(context.quick);
    let model = reference_model(context)?;
    let mut claims = Vec::new();

    let gate = or_error(correctness_gate(context, &plan), &gate_claim());
    let gate_failure = (gate.verdict != Verdict::Pass)
        .then(|| format!("correctness gate {}: {}", gate.verdict, gate.reason));
    claims.push(gate);
    claims.push(or_error(memory_linear(&model), &memory_claim()));
    claims.push(or_error(
        paged_memory_waste(&model, &plan, context.seed),
        &waste_claim(),
    ));

    let timing_claims = [
        complexity_claim(true, 0.0),
        complexity_claim(false, 0.0),
        speedup_claim(128),
        speedup_claim(256),
        speedup_claim(512),
        break_even_claim(),
        paged_throughput_claim(),
    ];
    if let Some(reason) = gate_failure {
        claims.extend(
            timing_claims
                .iter()
                .map(|claim| claim.error(reason.clone())),
        );
        claims.extend(trained_model_claims(context, &plan));
        return Ok(claims);
    }
    match grid_measurements(&model, &plan) {
        Ok(grid) => {
            claims.push(or_error(complexity(&model, &grid, true), &timing_claims[0]));
            claims.push(or_error(
                complexity(&model, &grid, false),
                &timing_claims[1],
            ));
            for (claim, n) in timing_claims[2..5].iter().zip([128, 256, 512]) {
                claims.push(or_error(speedup(&grid, n), claim));
            }
        }
        Err(error) => claims.extend(
            timing_claims[..5]
                .iter()
                .map(|claim| claim.error(format!("{error:#}"))),
        ),
    }
    claims.push(or_error(break_even(&model, context), &timing_claims[5]));
    claims.push(or_error(
        paged_throughput(&model, &plan, context),
        &timing_claims[6],
    ));
    claims.extend(trained_model_claims(context, &plan));
    Ok(claims)
}

// ---------------------------------------------------------------------------------------------
// Correctness gate

fn gate_claim() -> Claim {
    Claim::threshold(
        "kvcache.correctness_gate",
        MODULE,
        "cached (contiguous and paged) logits equal full recomputation at every step: max normwise relative error ≤ 1e-4 over random prompts, lengths, batch sizes and model shapes",
        TOLERANCE,
        Direction::AtMost,
    )
}

/// Feed identical tokens to a recomputing, a contiguous and a paged decoder; return the worst
/// error of the cached logits against the recomputed ones over all steps.
fn worst_case_error(
    model: &Transformer,
    prompts: &Array2<u32>,
    continuation: &[Vec<u32>],
    block_size: usize,
) -> Result<f64> {
    let batch_size = prompts.nrows();
    let capacity = prompts.ncols() + continuation.len();
    let modes = [
        CacheMode::Disabled,
        CacheMode::Contiguous,
        CacheMode::Paged { block_size },
    ];
    let mut decoders = modes
        .iter()
        .map(|&mode| Decoder::new(model, batch_size, capacity, mode))
        .collect::<Result<Vec<_>, _>>()?;
    let mut logits = decoders
        .iter_mut()
        .map(|decoder| decoder.prefill(prompts.view()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut worst = 0.0f64;
    for step in 0..=continuation.len() {
        for candidate in &logits[1..] {
            worst = worst.max(max_relative_error(candidate, &logits[0]));
        }
        if step == continuation.len() {
            break;
        }
        logits = decoders
            .iter_mut()
            .map(|decoder| decoder.step(&continuation[step]))
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(worst)
}

fn correctness_gate(context: &ModuleContext, plan: &Plan) -> Result<ClaimResult> {
    let mut rng = SplitMix(context.seed ^ 0x006B_7663_6163_6865);
    let mut cases = Vec::new();
    let mut worst = 0.0f64;
    for case_idx in 0..plan.gate_cases {
        let n_heads = rng.range(1, 4);
        let d_head = [4, 8, 16, 32][rng.range(0, 3)];
        let d_model = n_heads * d_head;
        let config = ModelConfig {
            vocab_size: rng.range(8, 300),
            d_model,
            n_heads,
            n_layers: rng.range(1, 3),
            d_ff: d_model * rng.range(1, 4),
            max_seq_len: 64,
            positional: if rng.range(0, 1) == 0 {
                PositionalEncoding::Learned
            } else {
                PositionalEncoding::Sinusoidal
            },
            layer_norm_epsilon: 1e-5,
        };
        let batch_size = rng.range(1, 4);
        let prompt_len = rng.range(1, 16);
        let steps = rng.range(1, 24);
        let block_size = rng.range(1, 8);
        let vocab = config.vocab_size;
        let prompts = Array2::from_shape_simple_fn((batch_size, prompt_len), || {
            rng.range(0, vocab - 1) as u32
        });
        let continuation: Vec<Vec<u32>> = (0..steps)
            .map(|_| {
                (0..batch_size)
                    .map(|_| rng.range(0, vocab - 1) as u32)
                    .collect()
            })
            .collect();
        let model = Transformer::random(config, context.seed.wrapping_add(case_idx as u64))?;
        let error = worst_case_error(&model, &prompts, &continuation, block_size)?;
        worst = worst.max(error);
        cases.push(json!({
            "d_model": d_model, "n_heads": n_heads, "n_layers": config.n_layers,
            "d_ff": config.d_ff, "vocab_size": vocab, "batch_size": batch_size,
            "prompt_len": prompt_len, "steps": steps, "block_size": block_size,
            "positional": format!("{:?}", config.positional), "max_relative_error": error,
        }));
    }
    // The reference shape over a long continuation, and greedy generation token for token.
    let model = reference_model(context)?;
    let steps = plan.gate_reference_steps;
    let prompts = Array2::from_shape_fn((2, PROMPT_LEN), |(s, t)| (17 * s + 5 * t) as u32 % 256);
    let continuation: Vec<Vec<u32>> = (0..steps)
        .map(|_| vec![rng.range(0, 255) as u32, rng.range(0, 255) as u32])
        .collect();
    let reference_error = worst_case_error(&model, &prompts, &continuation, BLOCK_SIZE)?;
    worst = worst.max(reference_error);
    let single = prompts.slice(ndarray::s![0..1, ..]).to_owned();
    let cached = timed_generation(&model, &single, steps, CacheMode::Contiguous)?;
    let recomputed = timed_generation(&model, &single, steps, CacheMode::Disabled)?;
    let identical_tokens = cached.tokens == recomputed.tokens;
    let claim = gate_claim();
    let mut result = claim
        .judge(Estimate::new(worst, worst, worst, "", 1.0)?)
        .with_detail(
            "metric",
            "max over steps of max_i |cached_i − recomputed_i| / max_i |recomputed_i|",
        )
        .with_detail("random_cases", &cases)
        .with_detail("reference_shape_error", reference_error)
        .with_detail("reference_shape_steps", steps)
        .with_detail("greedy_tokens_identical", identical_tokens);
    if !identical_tokens && result.verdict == Verdict::Pass {
        result.verdict = Verdict::Fail;
        result.reason = format!("{}; but greedy tokens differ", result.reason);
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Memory

fn memory_claim() -> Claim {
    Claim::equivalence(
        "kvcache.memory_linear",
        MODULE,
        "cache bytes measured by allocation grow linearly with sequence length: fitted exponent within [0.95, 1.05] (and 1 inside its interval)",
        0.95,
        1.05,
    )
}

fn memory_linear(model: &Transformer) -> Result<ClaimResult> {
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
    let one_inside = estimate.ci_lower <= 1.0 && 1.0 <= estimate.ci_upper;
    let mut result = memory_claim()
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
    if !one_inside && result.verdict == Verdict::Pass {
        result.verdict = Verdict::Partial;
        result.reason = format!("{}; but 1 is outside the interval", result.reason);
    }
    Ok(result)
}

fn waste_claim() -> Claim {
    Claim::threshold(
        "kvcache.paged_memory_waste",
        MODULE,
        "on requests of random length (16…1024 tokens), the paged cache (16-token blocks) wastes at most 5% of the K/V bytes it allocates (measured by allocation); the contiguous cache must reserve the maximum length",
        0.05,
        Direction::AtMost,
    )
}

fn paged_memory_waste(model: &Transformer, plan: &Plan, seed: u64) -> Result<ClaimResult> {
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
    // Percentile bootstrap over requests (the workload is a sample of request lengths).
    let mut boot: Vec<f64> = (0..2000)
        .map(|_| waste(&paged, &mut (0..n).map(|_| rng.range(0, n - 1))))
        .collect();
    boot.sort_by(f64::total_cmp);
    let lower = boot[(0.025 * boot.len() as f64) as usize].min(paged_waste);
    let upper = boot[(0.975 * boot.len() as f64) as usize].max(paged_waste);
    Ok(waste_claim()
        .judge(Estimate::new(paged_waste, lower, upper, "", 0.95)?)
        .with_detail(
            "interval",
            "percentile bootstrap over requests, 2000 resamples",
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

// ---------------------------------------------------------------------------------------------
// Timing

/// One greedy generation of `n` tokens after `prompt` (1 × PROMPT_LEN), timed as a whole and step
/// by step. The decoder (and its cache) is created inside the timed region: allocation is part of
/// generating.
struct TimedRun {
    total_ns: f64,
    /// (context length the step attends to, ns) per decode step.
    steps: Vec<(usize, f64)>,
    tokens: Vec<u32>,
}

fn timed_generation(
    model: &Transformer,
    prompt: &Array2<u32>,
    n: usize,
    mode: CacheMode,
) -> Result<TimedRun> {
    ensure!(n >= 1, "generate at least one token");
    let start = Instant::now();
    let mut decoder = Decoder::new(model, prompt.nrows(), prompt.ncols() + n - 1, mode)?;
    let mut next = vec![0u32; prompt.nrows()];
    let mut tokens = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    let mut logits = decoder.prefill_view(prompt.view())?;
    for step in 0..n {
        for (slot, row) in next.iter_mut().zip(logits.rows()) {
            *slot = argmax(row);
        }
        tokens.push(next[0]);
        if step + 1 == n {
            break;
        }
        let step_start = Instant::now();
        logits = decoder.step_view(&next)?;
        steps.push((
            prompt.ncols() + step + 1,
            step_start.elapsed().as_nanos() as f64,
        ));
    }
    let total_ns = start.elapsed().as_nanos() as f64;
    std::hint::black_box(&tokens);
    Ok(TimedRun {
        total_ns,
        steps,
        tokens,
    })
}

struct GridMeasurements {
    grid: Vec<usize>,
    /// [size index][repetition] total ns, cached and uncached interleaved pair by pair.
    cached_ns: Vec<Vec<f64>>,
    uncached_ns: Vec<Vec<f64>>,
    /// [size index][repetition] total ns of further cached-only generations, for the cached
    /// complexity fit (a cached generation costs milliseconds, a recomputing one seconds).
    extra_cached_ns: Vec<Vec<f64>>,
    /// Per-step latencies of the last repetition at the largest N.
    cached_steps: Vec<(usize, f64)>,
    uncached_steps: Vec<(usize, f64)>,
    identical_tokens: bool,
    repetitions: usize,
}

fn prompt() -> Array2<u32> {
    Array2::from_shape_fn((1, PROMPT_LEN), |(_, t)| (31 * t + 7) as u32 % 256)
}

fn grid_measurements(model: &Transformer, plan: &Plan) -> Result<GridMeasurements> {
    let prompt = prompt();
    // Warm-up: one unrecorded generation per size up to N = 512 (recomputing: up to
    // `recompute_warm_up_max`). Without it the first repetition of every size ran 2–3× slower:
    // the allocator serves each new, larger buffer with fresh pages (glibc's mmap threshold only
    // rises after such a buffer is freed), which is a first-run effect, not the steady state the
    // claims are about.
    for &n in plan.grid.iter().filter(|&&n| n <= 512) {
        timed_generation(model, &prompt, n, CacheMode::Contiguous)?;
        if n <= plan.recompute_warm_up_max {
            timed_generation(model, &prompt, n, CacheMode::Disabled)?;
        }
    }
    // And the largest recomputing step's buffers, once: a prefill over the grid's longest context is the
    // forward pass that step makes (milliseconds, where the whole generation costs seconds). Without it the
    // first recorded recomputing generation at N = 128 and 256 ran 10–18% slower than the later ones in quick
    // mode (146.7 against 124–125 ms at 128): the allocator still served their buffers with fresh pages until
    // a larger buffer had been freed.
    if let Some(&largest) = plan.grid.last() {
        let context = prompt.ncols() + largest - 1;
        let long_prompt = Array2::from_shape_fn((1, context), |(_, t)| (31 * t + 7) as u32 % 256);
        let mut decoder = Decoder::new(model, 1, context, CacheMode::Disabled)?;
        std::hint::black_box(decoder.prefill_view(long_prompt.view())?);
    }
    let mut cached_ns = vec![Vec::new(); plan.grid.len()];
    let mut uncached_ns = vec![Vec::new(); plan.grid.len()];
    let mut cached_steps = Vec::new();
    let mut uncached_steps = Vec::new();
    let mut identical_tokens = true;
    for repetition in 0..plan.repetitions {
        for (size_idx, &n) in plan.grid.iter().enumerate() {
            let last_repetition = if n >= plan.long_from {
                plan.long_repetitions.min(plan.repetitions)
            } else {
                plan.repetitions
            };
            if repetition >= last_repetition {
                continue;
            }
            // Alternate which side goes first, so a drift falls on both alike.
            let cached_first = (repetition + size_idx) % 2 == 0;
            let (cached, uncached) = if cached_first {
                let cached = timed_generation(model, &prompt, n, CacheMode::Contiguous)?;
                (
                    cached,
                    timed_generation(model, &prompt, n, CacheMode::Disabled)?,
                )
            } else {
                let uncached = timed_generation(model, &prompt, n, CacheMode::Disabled)?;
                (
                    timed_generation(model, &prompt, n, CacheMode::Contiguous)?,
                    uncached,
                )
            };
            identical_tokens &= cached.tokens == uncached.tokens;
            cached_ns[size_idx].push(cached.total_ns);
            uncached_ns[size_idx].push(uncached.total_ns);
            if repetition + 1 == last_repetition && size_idx + 1 == plan.grid.len() {
                cached_steps = cached.steps;
                uncached_steps = uncached.steps;
            }
        }
    }
    // Cached-only repetitions after the interleaved ones, sizes alternating in direction, for the
    // cached exponent's fit: with three samples per size its interval was about ±0.15 wide in quick
    // mode, as wide as the margin, and the verdict moved between PASS and PARTIAL. With nine more it was
    // ±0.07 and the point 0.06–0.11 above the model's, so the upper end still crossed the margin in noisy
    // phases (1.271 [1.195, 1.345] against 1.307); a repetition of the whole grid costs about 40 ms.
    let mut extra_cached_ns = vec![Vec::new(); plan.grid.len()];
    for repetition in 0..plan.extra_cached_repetitions {
        let order: Vec<usize> = if repetition % 2 == 0 {
            (0..plan.grid.len()).collect()
        } else {
            (0..plan.grid.len()).rev().collect()
        };
        for size_idx in order {
            let run = timed_generation(model, &prompt, plan.grid[size_idx], CacheMode::Contiguous)?;
            extra_cached_ns[size_idx].push(run.total_ns);
        }
    }
    Ok(GridMeasurements {
        grid: plan.grid.clone(),
        cached_ns,
        uncached_ns,
        extra_cached_ns,
        cached_steps,
        uncached_steps,
        identical_tokens,
        repetitions: plan.repetitions,
    })
}

/// Operation count (matrix-product FLOPs, as computed: the full score matrix of a prefill) of
/// generating `n` tokens after a PROMPT_LEN prompt.
fn generation_flops(config: &ModelConfig, n: usize, cached: bool) -> f64 {
    let prefill = config.forward_flops(PROMPT_LEN, PROMPT_LEN * PROMPT_LEN);
    let steps: f64 = (1..n)
        .map(|step| {
            let context = PROMPT_LEN + step;
            if cached {
                config.forward_flops(1, context)
            } else {
                config.forward_flops(context, context * context)
            }
        })
        .sum();
    prefill + steps
}

/// Share of the attention products in the operation count of one step at `context`.
fn attention_share(config: &ModelConfig, context: usize, cached: bool) -> f64 {
    let (tokens, pairs) = if cached {
        (1, context)
    } else {
        (context, context * context)
    };
    let total = config.forward_flops(tokens, pairs);
    let without = config.forward_flops(tokens, 0);
    (total - without) / total
}

fn complexity_claim(cached: bool, predicted: f64) -> Claim {
    let (id, what) = if cached {
        ("kvcache.complexity_cached", "cached generation")
    } else {
        ("kvcache.complexity_uncached", "generation without a cache")
    };
    Claim::equivalence(
        id,
        MODULE,
        &format!(
            "total time of {what} for N tokens (geometric grid, ≥ 5 points) grows with the exponent the operation-count model predicts for the same shape and grid (±{EXPONENT_MARGIN})"
        ),
        predicted - EXPONENT_MARGIN,
        predicted + EXPONENT_MARGIN,
    )
}

fn complexity(model: &Transformer, grid: &GridMeasurements, cached: bool) -> Result<ClaimResult> {
    let config = model.config();
    let times: Vec<Vec<f64>> = if cached {
        grid.cached_ns
            .iter()
            .zip(&grid.extra_cached_ns)
            .map(|(paired, extra)| paired.iter().chain(extra).copied().collect())
            .collect()
    } else {
        grid.uncached_ns.clone()
    };
    let mut sizes = Vec::new();
    let mut values = Vec::new();
    for (&n, samples) in grid.grid.iter().zip(&times) {
        for &time in samples {
            sizes.push(n as f64);
            values.push(time);
        }
    }
    let fit: ComplexityFit = fit_power_law(&sizes, &values, 0.95)?;
    let grid_sizes: Vec<f64> = grid.grid.iter().map(|&n| n as f64).collect();
    let model_flops: Vec<f64> = grid
        .grid
        .iter()
        .map(|&n| generation_flops(config, n, cached))
        .collect();
    let model_fit = fit_power_law(&grid_sizes, &model_flops, 0.95)?;
    let predicted = model_fit.exponent;
    let largest_context = PROMPT_LEN + grid.grid.last().copied().unwrap_or(0);
    let crossover = 2 * config.d_model + config.d_ff;
    let smallest_context = PROMPT_LEN + grid.grid.first().copied().unwrap_or(0);
    let (share_low, share_high) = (
        attention_share(config, smallest_context, cached),
        attention_share(config, largest_context, cached),
    );
    let dominated = |share: f64| {
        if share < 0.5 {
            "projection-dominated"
        } else {
            "attention-dominated"
        }
    };
    let regime = if dominated(share_low) == dominated(share_high) {
        format!(
            "{} over the whole grid: attention is {:.0}%–{:.0}% of a step's FLOPs at contexts {smallest_context}–{largest_context}",
            dominated(share_high),
            100.0 * share_low,
            100.0 * share_high
        )
    } else {
        format!(
            "mixed regime: projection-dominated below context 2·d_model + d_ff = {crossover}, attention-dominated above; attention is {:.0}% of a step's FLOPs at context {smallest_context} and {:.0}% at {largest_context}",
            100.0 * share_low,
            100.0 * share_high
        )
    };
    let estimate = Estimate::new(
        fit.exponent,
        fit.exponent_ci.0,
        fit.exponent_ci.1,
        "",
        fit.confidence,
    )?;
    let steps = if cached {
        &grid.cached_steps
    } else {
        &grid.uncached_steps
    };
    let plot = json!({
        "title": "Per-step decode latency vs context (reference shape, 1 thread)",
        "x_label": "context length (tokens)",
        "y_label": "step latency (ns)",
        "log_x": true,
        "log_y": true,
        "series": [
            {"name": "KV cache", "points": grid.cached_steps.iter().map(|&(c, t)| [c as f64, t]).collect::<Vec<_>>()},
            {"name": "recompute (no cache)", "points": grid.uncached_steps.iter().map(|&(c, t)| [c as f64, t]).collect::<Vec<_>>()},
        ],
    });
    let medians: Vec<f64> = fit.median_times.clone();
    let mut result = complexity_claim(cached, predicted)
        .judge(estimate)
        .with_detail("grid_n", &grid.grid)
        .with_detail("repetitions", grid.repetitions)
        .with_detail(
            "samples_per_size",
            times.iter().map(Vec::len).collect::<Vec<_>>(),
        )
        .with_detail("prompt_len", PROMPT_LEN)
        .with_detail("total_ns_by_size", &times)
        .with_detail("median_total_ns", &medians)
        .with_detail("model_flops", &model_flops)
        .with_detail("predicted_exponent", predicted)
        .with_detail("predicted_local_exponents", &model_fit.local_exponents)
        .with_detail("measured_local_exponents", &fit.local_exponents)
        .with_detail("loglog_slope", fit.loglog_slope)
        .with_detail("loglog_slope_ci", fit.loglog_slope_ci)
        .with_detail("regime", &regime)
        .with_detail("fit", &fit)
        .with_detail("step_latency_ns", steps);
    if cached {
        result = result.with_detail("plot", plot);
    }
    result.reason = format!("{}; model predicts {predicted:.3}; {regime}", result.reason);
    Ok(result)
}

fn speedup_claim(n: usize) -> Claim {
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

fn speedup(grid: &GridMeasurements, n: usize) -> Result<ClaimResult> {
    let size_idx = grid
        .grid
        .iter()
        .position(|&size| size == n)
        .with_context(|| format!("N = {n} is not on this run's grid {:?}", grid.grid))?;
    let log_ratios: Vec<f64> = grid.uncached_ns[size_idx]
        .iter()
        .zip(&grid.cached_ns[size_idx])
        .map(|(u, c)| (u / c).ln())
        .collect();
    let pairs = log_ratios.len();
    ensure!(
        pairs >= 2,
        "need at least 2 interleaved pairs, have {pairs}"
    );
    let mean = log_ratios.iter().sum::<f64>() / pairs as f64;
    let variance = log_ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (pairs - 1) as f64;
    let estimate = Estimate::from_t(
        TInference {
            center: mean,
            standard_error: (variance / pairs as f64).sqrt(),
            degrees_of_freedom: (pairs - 1) as f64,
            log_scale: true,
        },
        "×",
        0.95,
    )?;
    let claim = speedup_claim(n);
    let mut result = match signed_rank_interval(&log_ratios, 0.95) {
        Some((point, lower, upper)) => claim.judge_with_cross_check(
            estimate,
            Estimate::new(
                point.exp(),
                lower.exp().min(point.exp()),
                upper.exp().max(point.exp()),
                "×",
                0.95,
            )?,
            "Hodges–Lehmann / signed-rank",
        ),
        None => claim
            .judge(estimate)
            .with_detail("cross_check", format!("skipped: {pairs} pairs (< 6)")),
    };
    result = result
        .with_detail(
            "interval",
            "paired log-ratio t-interval over interleaved repetitions",
        )
        .with_detail("cached_total_ns", &grid.cached_ns[size_idx])
        .with_detail("uncached_total_ns", &grid.uncached_ns[size_idx])
        .with_detail("identical_tokens", grid.identical_tokens)
        .with_detail("prompt_len", PROMPT_LEN);
    Ok(result)
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

fn break_even_claim() -> Claim {
    Claim::measured(
        "kvcache.break_even_length",
        MODULE,
        "the shortest generation (tokens after an 8-token prompt) from which the KV cache is faster than recomputing, with every longer grid length faster too",
    )
}

fn break_even(model: &Transformer, context: &ModuleContext) -> Result<ClaimResult> {
    let prompt = prompt();
    let lengths = [1usize, 2, 3, 4, 8, 16];
    let config = CompareConfig {
        pairs: if context.quick { 10 } else { 20 },
        ..compare_config(context)
    };
    let mut rows = Vec::new();
    let mut faster = Vec::new();
    for &n in &lengths {
        let comparison = compare(
            &config,
            &n,
            |&n| {
                timed_generation(model, &prompt, n, CacheMode::Disabled)
                    .map(|r| r.total_ns)
                    .expect("generation ran in the gate")
            },
            |&n| {
                timed_generation(model, &prompt, n, CacheMode::Contiguous)
                    .map(|r| r.total_ns)
                    .expect("generation ran in the gate")
            },
        )?;
        faster.push(comparison.speedup.ci_lower > 1.0);
        rows.push(json!({
            "n": n,
            "speedup": comparison.speedup.point,
            "ci": [comparison.speedup.ci_lower, comparison.speedup.ci_upper],
            "cached_median_ns": comparison.candidate.median,
            "uncached_median_ns": comparison.baseline.median,
        }));
    }
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
        .with_detail("lengths", lengths)
        .with_detail("comparisons", rows))
}

fn paged_throughput_claim() -> Claim {
    Claim::threshold(
        "kvcache.paged_throughput",
        MODULE,
        "the paged cache (16-token blocks) keeps at least 80% of the contiguous cache's generation throughput",
        0.8,
        Direction::AtLeast,
    )
}

fn paged_throughput(
    model: &Transformer,
    plan: &Plan,
    context: &ModuleContext,
) -> Result<ClaimResult> {
    let prompt = prompt();
    let n = plan.paged_tokens;
    let comparison = compare(
        &compare_config(context),
        &n,
        |&n| {
            timed_generation(model, &prompt, n, CacheMode::Contiguous)
                .map(|r| r.total_ns)
                .expect("generation ran in the gate")
        },
        |&n| {
            timed_generation(
                model,
                &prompt,
                n,
                CacheMode::Paged {
                    block_size: BLOCK_SIZE,
                },
            )
            .map(|r| r.total_ns)
            .expect("generation ran in the gate")
        },
    )?;
    let (lower, upper) = comparison
        .robust_interval(0.95)
        .context("too few pairs for the signed-rank interval")?;
    let robust_point = comparison
        .robust_speedup
        .context("no robust estimate")?
        .point;
    Ok(paged_throughput_claim()
        .judge_with_cross_check(
            comparison.speedup_estimate()?,
            Estimate::new(
                robust_point,
                lower.min(robust_point),
                upper.max(robust_point),
                "×",
                0.95,
            )?,
            "Hodges–Lehmann / signed-rank",
        )
        .with_detail("tokens", n)
        .with_detail("block_size", BLOCK_SIZE)
        .with_detail("contiguous_median_ns", comparison.baseline.median)
        .with_detail("paged_median_ns", comparison.candidate.median)
        .with_detail("fairness", &comparison.fairness))
}

// ---------------------------------------------------------------------------------------------
// The trained character transformer (zoo) in kvcache's decoder
//
// The bridge lives here, not in kvcache: kvcache takes plain weight arrays
// (`Transformer::from_weights`) and knows nothing of zoo or candle; zoo knows nothing of kvcache.

/// kvcache's shape and weights for zoo's character transformer: the same architecture
/// (pre-LayerNorm, learned positions, tanh GELU, untied head with a bias), the query, key and
/// value projections concatenated column-wise into one `d × 3d` matrix.
fn char_transformer_weights(
    model: &zoo::CharTransformer,
) -> Result<(ModelConfig, TransformerWeights)> {
    let source = &model.config;
    let epsilon = model.ln_final.eps;
    ensure!(
        model
            .blocks
            .iter()
            .all(|block| block.ln1.eps == epsilon && block.ln2.eps == epsilon),
        "zoo's LayerNorms use different epsilons; kvcache has one"
    );
    let config = ModelConfig {
        vocab_size: source.vocab_size,
        d_model: source.d_model,
        n_heads: source.n_heads,
        n_layers: source.n_layers,
        d_ff: source.d_ff,
        max_seq_len: source.context_length,
        positional: PositionalEncoding::Learned,
        layer_norm_epsilon: epsilon,
    };
    let layers = model
        .blocks
        .iter()
        .map(|block| -> Result<LayerWeights> {
            Ok(LayerWeights {
                attention_norm_gain: block.ln1.gamma.clone(),
                attention_norm_bias: block.ln1.beta.clone(),
                qkv_weight: ndarray::concatenate(
                    ndarray::Axis(1),
                    &[
                        block.query.weight.view(),
                        block.key.weight.view(),
                        block.value.weight.view(),
                    ],
                )?,
                qkv_bias: ndarray::concatenate(
                    ndarray::Axis(0),
                    &[
                        block.query.bias.view(),
                        block.key.bias.view(),
                        block.value.bias.view(),
                    ],
                )?,
                output_weight: block.output.weight.clone(),
                output_bias: block.output.bias.clone(),
                mlp_norm_gain: block.ln2.gamma.clone(),
                mlp_norm_bias: block.ln2.beta.clone(),
                up_weight: block.mlp_up.weight.clone(),
                up_bias: block.mlp_up.bias.clone(),
                down_weight: block.mlp_down.weight.clone(),
                down_bias: block.mlp_down.bias.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let weights = TransformerWeights {
        token_embedding: model.token_embedding.clone(),
        position_table: model.position_embedding.clone(),
        layers,
        final_norm_gain: model.ln_final.gamma.clone(),
        final_norm_bias: model.ln_final.beta.clone(),
        lm_head: model.lm_head.weight.clone(),
        lm_head_bias: model.lm_head.bias.clone(),
    };
    Ok((config, weights))
}

/// zoo's model in kvcache.
fn kvcache_char_transformer(model: &zoo::CharTransformer) -> Result<Transformer> {
    let (config, weights) = char_transformer_weights(model)?;
    Ok(Transformer::from_weights(config, weights)?)
}

/// Worst normwise relative error, over every position of `window`, of kvcache's cached and
/// recomputing decoders against zoo's own forward pass (`window` starts a fresh sequence), and of
/// the cached decoder against the recomputing one.
struct WindowAgreement {
    cached_vs_zoo: f64,
    cached_vs_recompute: f64,
}

fn window_agreement(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    window: &[u32],
) -> Result<WindowAgreement> {
    let reference = zoo_model.forward(window)?;
    let mut cached = Decoder::new(model, 1, window.len(), CacheMode::Contiguous)?;
    let mut recomputing = Decoder::new(model, 1, window.len(), CacheMode::Disabled)?;
    let first = Array2::from_shape_vec((1, 1), vec![window[0]])?;
    let mut cached_logits = cached.prefill(first.view())?;
    let mut recomputed_logits = recomputing.prefill(first.view())?;
    let mut agreement = WindowAgreement {
        cached_vs_zoo: 0.0,
        cached_vs_recompute: 0.0,
    };
    for position in 0..window.len() {
        let zoo_row = reference
            .slice(ndarray::s![position..=position, ..])
            .to_owned();
        agreement.cached_vs_zoo = agreement
            .cached_vs_zoo
            .max(max_relative_error(&cached_logits, &zoo_row))
            .max(max_relative_error(&recomputed_logits, &zoo_row));
        agreement.cached_vs_recompute = agreement
            .cached_vs_recompute
            .max(max_relative_error(&cached_logits, &recomputed_logits));
        if position + 1 < window.len() {
            cached_logits = cached.step(&[window[position + 1]])?;
            recomputed_logits = recomputing.step(&[window[position + 1]])?;
        }
    }
    Ok(agreement)
}

/// Held-out next-character loss (nats) and top-1 hits through kvcache's cached decoder, over the
/// windows zoo evaluates (`context + 1` tokens, step `context`: each predicts its last `context`).
fn held_out_quality(model: &Transformer, tokens: &[u32]) -> Result<(f64, usize, usize)> {
    let context = model.config().max_seq_len;
    let (mut loss_sum, mut predicted, mut correct) = (0.0f64, 0usize, 0usize);
    let mut decoder = Decoder::new(model, 1, context, CacheMode::Contiguous)?;
    for window in tokens.windows(context + 1).step_by(context) {
        decoder.reset();
        let first = Array2::from_shape_vec((1, 1), vec![window[0]])?;
        let mut logits = decoder.prefill_view(first.view())?;
        for position in 0..context {
            let row = logits.row(0);
            let target = window[position + 1] as usize;
            let maximum = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum_exp = f64::from(maximum)
                + row
                    .iter()
                    .map(|&v| f64::from(v - maximum).exp())
                    .sum::<f64>()
                    .ln();
            loss_sum += log_sum_exp - f64::from(row[target]);
            predicted += 1;
            correct += usize::from(argmax(row) as usize == target);
            if position + 1 < context {
                logits = decoder.step_view(&[window[position + 1]])?;
            }
        }
    }
    ensure!(
        predicted > 0,
        "the held-out text is shorter than one window"
    );
    Ok((loss_sum, predicted, correct))
}

fn decode_text(vocabulary: &[char], tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(|&token| {
            vocabulary
                .get(token as usize)
                .copied()
                .unwrap_or('\u{fffd}')
        })
        .collect()
}

fn trained_agreement_claim() -> Claim {
    Claim::threshold(
        "kvcache.trained_model_agreement",
        MODULE,
        "zoo's trained character transformer loaded into kvcache: cached and recomputed logits equal zoo's own forward pass and each other at every position of held-out windows (max normwise relative error ≤ 1e-4)",
        TOLERANCE,
        Direction::AtMost,
    )
}

fn trained_generation_claim() -> Claim {
    Claim::measured(
        "kvcache.trained_generation",
        MODULE,
        "held-out next-character accuracy of zoo's trained character transformer decoded with kvcache's KV cache (Wilson 95% interval), beside zoo's own evaluation; greedy and seeded samples, cached tokens identical to recomputed ones",
    )
}

/// Whether zoo's weight cache holds a character transformer (any version): quick mode trains
/// nothing, it uses the model only when it can be loaded.
fn char_transformer_cached(config: &zoo::ZooConfig) -> bool {
    let Some(cache) = &config.cache else {
        return false;
    };
    let prefix = format!("{}-", zoo::ReferenceModel::CharTransformer.name());
    std::fs::read_dir(cache.dir()).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            name.starts_with(&prefix) && name.ends_with(".safetensors")
        })
    })
}

fn trained_model_claims(context: &ModuleContext, plan: &Plan) -> Vec<ClaimResult> {
    let zoo_config = zoo::ZooConfig {
        seed: 0,
        ..zoo::ZooConfig::default()
    };
    if context.quick && !char_transformer_cached(&zoo_config) {
        let reason = "quick mode trains nothing and zoo's weight cache holds no character transformer (a full run, or `cargo xtask validate --module zoo`, trains it once)";
        return vec![
            trained_agreement_claim().error(reason),
            trained_generation_claim().error(reason),
        ];
    }
    let trained = match zoo::train_or_load(zoo::ReferenceModel::CharTransformer, &zoo_config) {
        Ok(trained) => trained,
        Err(error) => {
            let reason = format!("zoo's character transformer: {error}");
            return vec![
                trained_agreement_claim().error(reason.clone()),
                trained_generation_claim().error(reason),
            ];
        }
    };
    let zoo::TrainedWeights::CharTransformer(zoo_model) = &trained.weights else {
        let reason = "zoo returned weights of another kind for the character transformer";
        return vec![
            trained_agreement_claim().error(reason),
            trained_generation_claim().error(reason),
        ];
    };
    let validation: Vec<u32> = trained
        .test
        .features()
        .column(0)
        .iter()
        .map(|&token| token as u32)
        .collect();
    let model = match kvcache_char_transformer(zoo_model) {
        Ok(model) => model,
        Err(error) => {
            let reason = format!("converting zoo's weights: {error:#}");
            return vec![
                trained_agreement_claim().error(reason.clone()),
                trained_generation_claim().error(reason),
            ];
        }
    };
    let agreement = or_error(
        trained_agreement(&model, zoo_model, &validation, plan, &trained.report),
        &trained_agreement_claim(),
    );
    let generation = if agreement.verdict == Verdict::Pass {
        or_error(
            trained_generation(&model, zoo_model, &validation, &trained.report),
            &trained_generation_claim(),
        )
    } else {
        trained_generation_claim().error(format!(
            "the agreement check did not pass ({}): {}",
            agreement.verdict, agreement.reason
        ))
    };
    vec![agreement, generation]
}

fn trained_agreement(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    validation: &[u32],
    plan: &Plan,
    report: &zoo::ModelReport,
) -> Result<ClaimResult> {
    let context = model.config().max_seq_len;
    let windows: Vec<&[u32]> = validation
        .chunks_exact(context)
        .take(plan.trained_agreement_windows)
        .collect();
    ensure!(
        !windows.is_empty(),
        "no held-out window of {context} tokens"
    );
    let (mut versus_zoo, mut versus_recompute) = (0.0f64, 0.0f64);
    for window in &windows {
        let agreement = window_agreement(model, zoo_model, window)?;
        versus_zoo = versus_zoo.max(agreement.cached_vs_zoo);
        versus_recompute = versus_recompute.max(agreement.cached_vs_recompute);
    }
    let worst = versus_zoo.max(versus_recompute);
    Ok(trained_agreement_claim()
        .judge(Estimate::new(worst, worst, worst, "", 1.0)?)
        .with_detail("windows", windows.len())
        .with_detail("positions_per_window", context)
        .with_detail("kvcache_vs_zoo_forward", versus_zoo)
        .with_detail("cached_vs_recompute", versus_recompute)
        .with_detail(
            "metric",
            "max over positions of max_i |a_i − b_i| / max_i |b_i|",
        )
        .with_detail("zoo_weights_from_cache", report.from_cache)
        .with_detail("zoo_cache_key", &report.cache_key)
        .with_detail("n_parameters", report.n_parameters))
}

fn trained_generation(
    model: &Transformer,
    zoo_model: &zoo::CharTransformer,
    validation: &[u32],
    report: &zoo::ModelReport,
) -> Result<ClaimResult> {
    let (loss_sum, predicted, correct) = held_out_quality(model, validation)?;
    let accuracy = zoo::ProportionEstimate::wilson(correct, predicted, 0.95)?;
    let loss = loss_sum / predicted as f64;
    // Generation from the first 16 held-out characters, to the end of the context.
    let prompt_len = 16.min(validation.len());
    let prompts = Array2::from_shape_vec((1, prompt_len), validation[..prompt_len].to_vec())?;
    let new_tokens = model.config().max_seq_len - prompt_len + 1;
    let run = |sampling: Sampling, cache: CacheMode| {
        generate(
            model,
            prompts.view(),
            &GenerationConfig {
                max_new_tokens: new_tokens,
                sampling,
                cache,
                record_logits: false,
            },
        )
    };
    let seeded = Sampling::Temperature {
        temperature: 0.8,
        seed: 0x5EED,
    };
    let greedy_cached = run(Sampling::Greedy, CacheMode::Contiguous)?;
    let greedy_recomputed = run(Sampling::Greedy, CacheMode::Disabled)?;
    let sampled_cached = run(seeded, CacheMode::Contiguous)?;
    let sampled_recomputed = run(seeded, CacheMode::Disabled)?;
    let identical = greedy_cached.tokens == greedy_recomputed.tokens
        && sampled_cached.tokens == sampled_recomputed.tokens;
    let vocabulary = &zoo_model.vocabulary;
    let prompt_text = decode_text(vocabulary, &validation[..prompt_len]);
    let greedy_text = decode_text(vocabulary, greedy_cached.tokens.as_slice().unwrap_or(&[]));
    let sampled_text = decode_text(vocabulary, sampled_cached.tokens.as_slice().unwrap_or(&[]));
    println!("  kvcache trained char transformer, prompt {prompt_text:?}");
    println!("    greedy:              {greedy_text:?}");
    println!("    sampled (T = 0.8):   {sampled_text:?}");
    let zoo_metric = match &report.metric {
        zoo::HeldOutMetric::LanguageModel {
            loss_nats_per_char,
            unigram_loss_nats_per_char,
            next_char_accuracy,
            ..
        } => json!({
            "loss_nats_per_char": loss_nats_per_char,
            "unigram_loss_nats_per_char": unigram_loss_nats_per_char,
            "next_char_accuracy": next_char_accuracy.point,
            "n": next_char_accuracy.n,
        }),
        other => json!(format!("{other:?}")),
    };
    let mut result = trained_generation_claim()
        .judge(Estimate::new(
            accuracy.point,
            accuracy.ci_lower,
            accuracy.ci_upper,
            "",
            accuracy.confidence,
        )?)
        .with_detail(
            "interval",
            "Wilson score interval over held-out predictions",
        )
        .with_detail("held_out_predictions", predicted)
        .with_detail("correct", correct)
        .with_detail("loss_nats_per_char", loss)
        .with_detail("perplexity", loss.exp())
        .with_detail("zoo_evaluation", zoo_metric)
        .with_detail("prompt", &prompt_text)
        .with_detail("greedy_sample", &greedy_text)
        .with_detail("sampled_sample", &sampled_text)
        .with_detail("sampling", "temperature 0.8, seed 0x5EED")
        .with_detail("cached_tokens_identical_to_recomputed", identical)
        .with_detail("zoo_weights_from_cache", report.from_cache);
    result.reason = format!(
        "{}; loss {loss:.3} nats/char over {predicted} held-out characters",
        result.reason
    );
    if !identical {
        result.verdict = Verdict::Fail;
        result.reason = format!("{}; but cached and recomputed tokens differ", result.reason);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// A small zoo model with random weights (nothing is trained in a test).
    fn tiny_zoo_model(seed: u64) -> zoo::CharTransformer {
        let mut rng = SplitMix(seed);
        let mut uniform =
            move |scale: f32| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 * scale - scale;
        let config = zoo::CharTransformerConfig {
            vocab_size: 13,
            context_length: 20,
            d_model: 16,
            n_heads: 4,
            n_layers: 2,
            d_ff: 24,
        };
        let mut matrix = |rows: usize, cols: usize, scale: f32| {
            Array2::from_shape_simple_fn((rows, cols), || uniform(scale))
        };
        let d = config.d_model;
        let mut linear = |inputs: usize, outputs: usize| zoo::Linear {
            weight: matrix(inputs, outputs, 1.0 / (inputs as f32).sqrt()),
            bias: matrix(1, outputs, 0.1).row(0).to_owned(),
        };
        let norm = |shift: f32| zoo::LayerNorm {
            gamma: Array1::from_elem(d, 1.0 + shift),
            beta: Array1::from_elem(d, shift),
            eps: 1e-5,
        };
        let blocks = (0..config.n_layers)
            .map(|layer| zoo::TransformerBlock {
                ln1: norm(0.05 * layer as f32),
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                output: linear(d, d),
                ln2: norm(-0.05),
                mlp_up: linear(d, config.d_ff),
                mlp_down: linear(config.d_ff, d),
            })
            .collect();
        let lm_head = linear(d, config.vocab_size);
        let token_embedding = matrix(config.vocab_size, d, 1.0);
        let position_embedding = matrix(config.context_length, d, 0.5);
        zoo::CharTransformer {
            vocabulary: "abcdefghijklm".chars().collect(),
            token_embedding,
            position_embedding,
            blocks,
            ln_final: norm(0.1),
            lm_head,
            config,
        }
    }

    #[test]
    fn zoo_weights_in_kvcache_reproduce_zoo_logits_cached_and_recomputed() {
        for seed in [1u64, 2] {
            let zoo_model = tiny_zoo_model(seed);
            let model = kvcache_char_transformer(&zoo_model).unwrap();
            let mut rng = SplitMix(seed ^ 77);
            let window: Vec<u32> = (0..zoo_model.config.context_length)
                .map(|_| rng.range(0, 12) as u32)
                .collect();
            let agreement = window_agreement(&model, &zoo_model, &window).unwrap();
            assert!(
                agreement.cached_vs_zoo <= TOLERANCE,
                "kvcache vs zoo: {}",
                agreement.cached_vs_zoo
            );
            assert!(
                agreement.cached_vs_recompute <= TOLERANCE,
                "cached vs recompute: {}",
                agreement.cached_vs_recompute
            );
        }
    }

    #[test]
    fn a_swapped_projection_is_caught() {
        // The check can fail: exchanging the key and query weights must break agreement with zoo.
        let zoo_model = tiny_zoo_model(3);
        let mut swapped = zoo_model.clone();
        for block in &mut swapped.blocks {
            std::mem::swap(&mut block.query, &mut block.key);
        }
        let model = kvcache_char_transformer(&swapped).unwrap();
        let window: Vec<u32> = (0..20).map(|t| (t * 5 % 13) as u32).collect();
        let agreement = window_agreement(&model, &zoo_model, &window).unwrap();
        assert!(
            agreement.cached_vs_zoo > TOLERANCE,
            "{}",
            agreement.cached_vs_zoo
        );
    }

    #[test]
    fn held_out_quality_counts_every_prediction_of_every_window() {
        let zoo_model = tiny_zoo_model(4);
        let model = kvcache_char_transformer(&zoo_model).unwrap();
        let tokens: Vec<u32> = (0..61).map(|t| (t * 7 % 13) as u32).collect();
        let (loss, predicted, correct) = held_out_quality(&model, &tokens).unwrap();
        let (zoo_loss, zoo_predicted, zoo_correct) =
            zoo::evaluate_language_model(&zoo_model, &tokens).unwrap();
        assert_eq!(predicted, zoo_predicted);
        assert_eq!(correct, zoo_correct);
        assert!((loss - zoo_loss).abs() <= 1e-3 * zoo_loss.abs().max(1.0));
    }
}
