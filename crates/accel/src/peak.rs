//! Measures this CPU's fused multiply-add throughput, so "% of peak" is measured rather than assumed.
//!
//! The probe runs `CHAINS` independent FMA dependency chains (more than latency × issue width on any current core,
//! so the FMA units, not the latency, are the limit) for at least `min_duration`, once on one thread and once on
//! every thread at the same time.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::simd::fma_chains::{self, CHAINS};
use crate::simd::Isa;
use crate::AccelError;

/// Knobs of [`peak_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakProbeConfig {
    /// Instruction set to probe; `None` means [`Isa::best`].
    pub isa: Option<Isa>,
    /// Threads for the all-cores figure; `None` means `available_parallelism`.
    pub threads: Option<usize>,
    /// Minimum duration of one timed repetition.
    pub min_duration: Duration,
    /// Timed repetitions; the fastest is reported, since interference only ever slows a pure-compute loop down.
    pub repetitions: usize,
}

impl Default for PeakProbeConfig {
    fn default() -> Self {
        PeakProbeConfig {
            isa: None,
            threads: None,
            min_duration: Duration::from_millis(100),
            repetitions: 3,
        }
    }
}

/// Result of [`peak_probe`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakReport {
    /// Instruction set probed.
    pub isa: Isa,
    /// Floating-point operations (2 per lane per FMA) per second on one thread, in GFLOP/s.
    pub gflops_per_core: f64,
    /// The same with `threads` threads running at once, summed over them.
    pub gflops_all_cores: f64,
    /// Threads used for `gflops_all_cores`.
    pub threads: usize,
    /// Fastest single-thread repetition, wall time.
    pub single_thread_seconds: f64,
}

/// Measures peak f32 FMA throughput for one instruction set, per core and over all cores.
///
/// # Errors
/// [`AccelError::KernelUnavailable`] when the CPU lacks the requested instruction set;
/// [`AccelError::InvalidConfig`] for zero threads or repetitions.
pub fn peak_probe(config: &PeakProbeConfig) -> Result<PeakReport, AccelError> {
    let isa = config.isa.unwrap_or_else(Isa::best);
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: crate::Backend::Simd(isa),
        });
    }
    let threads = config.threads.unwrap_or_else(crate::default_threads);
    if threads == 0 || config.repetitions == 0 {
        return Err(AccelError::InvalidConfig {
            what: "peak probe needs at least one thread and one repetition".into(),
        });
    }
    let flops_per_iteration = fma_chain_flops_per_iteration(isa);

    // Calibrate: double the iteration count until one run lasts min_duration.
    let mut iterations: u64 = 1 << 14;
    loop {
        let start = Instant::now();
        run_chains(isa, iterations);
        if start.elapsed() >= config.min_duration || iterations >= 1 << 40 {
            break;
        }
        iterations *= 2;
    }

    let mut best_single = f64::INFINITY;
    for _ in 0..config.repetitions {
        let start = Instant::now();
        run_chains(isa, iterations);
        best_single = best_single.min(start.elapsed().as_secs_f64());
    }

    let mut best_all = f64::INFINITY;
    for _ in 0..config.repetitions {
        let barrier = Barrier::new(threads);
        let start = std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(|| {
                    barrier.wait();
                    run_chains(isa, iterations);
                });
            }
            barrier.wait();
            let start = Instant::now();
            run_chains(isa, iterations);
            start
        });
        // The scope joined every thread, so this is the time until the slowest finished.
        best_all = best_all.min(start.elapsed().as_secs_f64());
    }

    let total = flops_per_iteration * iterations as f64;
    Ok(PeakReport {
        isa,
        gflops_per_core: total / best_single / 1e9,
        gflops_all_cores: total * threads as f64 / best_all / 1e9,
        threads,
        single_thread_seconds: best_single,
    })
}

/// FLOPs done by one [`fma_chains`] iteration on `isa` (2 per lane per FMA, `CHAINS` FMAs).
pub fn fma_chain_flops_per_iteration(isa: Isa) -> f64 {
    (CHAINS * lanes(isa) * 2) as f64
}

/// One run of the probe's loop: `iterations` iterations of independent FMA chains on `isa` on the
/// calling thread. For timing the peak side by side with a kernel (interleaved with it, so that
/// both see the same machine state); the FLOPs done are `iterations ×`
/// [`fma_chain_flops_per_iteration`].
///
/// # Errors
/// [`AccelError::KernelUnavailable`] when the CPU lacks `isa`.
pub fn fma_chains(isa: Isa, iterations: u64) -> Result<f32, AccelError> {
    if !isa.is_available() {
        return Err(AccelError::KernelUnavailable {
            backend: crate::Backend::Simd(isa),
        });
    }
    Ok(run_chains(isa, iterations))
}

fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2Fma => 8,
        _ => 1,
    }
}

/// Runs the chains and returns their sum through `black_box`, so no work can be elided.
fn run_chains(isa: Isa, iterations: u64) -> f32 {
    let iterations = std::hint::black_box(iterations);
    std::hint::black_box(fma_chains::dispatch(isa, iterations))
}
