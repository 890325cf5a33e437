//! The measurement protocol: warm-up with a steady-state check, automatic batching, samples, rounds.
//!
//! One sample times a batch of iterations long enough that the clock's resolution and cost are
//! negligible: at least max(1000 × clock resolution, [`MeasureConfig::min_sample_time`]). Every
//! raw sample is kept; statistics are computed from them.

use crate::error::PerfError;
use crate::stats::{mean_and_std, BenchmarkResult};
use crate::timer::{clock_info, ClockInfo};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long to warm up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WarmUp {
    /// At least this many iterations.
    Count(u64),
    /// At least this much time (as reported by the timing source).
    Time(Duration),
}

/// Knobs of the protocol. `Default` is the full configuration; [`MeasureConfig::quick`] a reduced one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureConfig {
    /// Warm-up budget before the steady-state check.
    pub warm_up: WarmUp,
    /// If steady state is not reached within the budget, warm up further, up to this multiple of it.
    pub max_warm_up_factor: u32,
    /// Lower floor on the duration of one sample (the batch is grown until it lasts this long).
    pub min_sample_time: Duration,
    /// Samples per round.
    pub samples: usize,
    /// Independent rounds (each with its own warm-up and batch calibration).
    pub rounds: usize,
    /// Two-sided confidence level of the intervals.
    pub confidence: f64,
    /// Number of trailing warm-up batches examined by the steady-state check.
    pub steady_state_window: usize,
    /// Largest tolerated trend across the steady-state window, as a fraction of the median.
    pub steady_state_tolerance: f64,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            warm_up: WarmUp::Time(Duration::from_millis(300)),
            max_warm_up_factor: 4,
            min_sample_time: Duration::from_millis(1),
            samples: 50,
            rounds: 1,
            confidence: crate::stats::DEFAULT_CONFIDENCE,
            steady_state_window: 10,
            steady_state_tolerance: 0.05,
        }
    }
}

impl MeasureConfig {
    /// A reduced configuration that is still statistically valid (enough samples for a median interval).
    pub fn quick() -> Self {
        Self {
            warm_up: WarmUp::Time(Duration::from_millis(50)),
            samples: 20,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), PerfError> {
        if self.samples < 2 {
            return Err(PerfError::InvalidConfig(format!(
                "samples must be at least 2, got {}",
                self.samples
            )));
        }
        if self.rounds == 0 {
            return Err(PerfError::InvalidConfig("rounds must be at least 1".into()));
        }
        if self.steady_state_window < 3 {
            return Err(PerfError::InvalidConfig(
                "steady_state_window must be at least 3".into(),
            ));
        }
        if !(self.steady_state_tolerance.is_finite() && self.steady_state_tolerance > 0.0) {
            return Err(PerfError::InvalidConfig(
                "steady_state_tolerance must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Target duration of one sample in ns: max(1000 × clock resolution, `min_sample_time`).
    pub fn target_sample_ns(&self, clock: &ClockInfo) -> f64 {
        (1000.0 * clock.resolution_ns).max(self.min_sample_time.as_nanos() as f64)
    }
}

/// Something that can run a batch of iterations and report how long it took.
///
/// The real implementation times a closure with the monotonic clock; tests substitute simulated
/// sources to check the statistics without touching the clock.
pub trait TimedBatch {
    /// Run `iterations` iterations; return the elapsed time in nanoseconds.
    fn run_batch(&mut self, iterations: u64) -> f64;
}

/// A closure applied to a fixed input, timed with [`Instant`]; `black_box` on input and output.
#[derive(Debug)]
pub struct ClosureBatch<'a, I, F> {
    input: &'a I,
    routine: F,
}

impl<'a, I, O, F: FnMut(&I) -> O> ClosureBatch<'a, I, F> {
    /// Wrap `routine` applied to `input`.
    pub fn new(input: &'a I, routine: F) -> Self {
        Self { input, routine }
    }
}

impl<I, O, F: FnMut(&I) -> O> TimedBatch for ClosureBatch<'_, I, F> {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box((self.routine)(black_box(self.input)));
        }
        start.elapsed().as_nanos() as f64
    }
}

/// What the warm-up did and whether it ended in steady state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmUpReport {
    /// Iterations run during warm-up (including batch calibration).
    pub iterations: u64,
    /// Time spent, in ns, as reported by the source.
    pub elapsed_ns: f64,
    /// Whether the last window of batches showed no trend.
    pub steady_state: bool,
    /// Fitted trend across the window, as a fraction of its median (signed).
    pub trend_fraction: f64,
    /// Human-readable explanation.
    pub detail: String,
}

/// One round's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Iterations per sample chosen for this round.
    pub iterations_per_sample: u64,
    /// Median ns per iteration in this round.
    pub median: f64,
    /// Mean ns per iteration in this round.
    pub mean: f64,
    /// The warm-up of this round.
    pub warm_up: WarmUpReport,
}

/// A finished measurement: the per-iteration statistics and everything needed to audit them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// Statistics of ns per iteration over all samples of all rounds.
    pub result: BenchmarkResult,
    /// Raw sample totals (ns per batch), in order.
    pub sample_totals_ns: Vec<f64>,
    /// Per-round summaries.
    pub rounds: Vec<RoundSummary>,
    /// Statistics over round medians, when there are at least two rounds: the replication level
    /// at which between-round noise is visible.
    pub round_medians: Option<BenchmarkResult>,
    /// True when every round reached steady state during warm-up.
    pub steady_state: bool,
    /// The target sample duration in ns.
    pub target_sample_ns: f64,
    /// The clock this was measured with.
    pub clock: ClockInfo,
}

/// Measure `routine(input)` with the protocol in `config`.
///
/// # Errors
/// `InvalidConfig` for a bad configuration; `NonFinite` if a timing was not finite.
pub fn measure<I, O, F: FnMut(&I) -> O>(
    name: &str,
    config: &MeasureConfig,
    input: &I,
    routine: F,
) -> Result<Measurement, PerfError> {
    let mut source = ClosureBatch::new(input, routine);
    measure_source(name, config, &mut source)
}

/// Measure any [`TimedBatch`] (a closure, or a simulated source in tests).
///
/// # Errors
/// As [`measure`].
pub fn measure_source(
    name: &str,
    config: &MeasureConfig,
    source: &mut dyn TimedBatch,
) -> Result<Measurement, PerfError> {
    config.validate()?;
    let clock = clock_info();
    let target_sample_ns = config.target_sample_ns(&clock);
    let mut per_iteration = Vec::with_capacity(config.samples * config.rounds);
    let mut sample_totals_ns = Vec::with_capacity(config.samples * config.rounds);
    let mut rounds = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let (iterations_per_sample, warm_up) =
            warm_up_and_calibrate(config, target_sample_ns, source)?;
        let mut round_values = Vec::with_capacity(config.samples);
        for _ in 0..config.samples {
            let total = source.run_batch(iterations_per_sample);
            sample_totals_ns.push(total);
            round_values.push(total / iterations_per_sample as f64);
        }
        crate::error::check_finite(name, &round_values)?;
        let (mean, _) = mean_and_std(&round_values);
        rounds.push(RoundSummary {
            iterations_per_sample,
            median: crate::stats::median(&round_values).unwrap_or(f64::NAN),
            mean,
            warm_up,
        });
        per_iteration.extend(round_values);
    }
    let steady_state = rounds.iter().all(|round| round.warm_up.steady_state);
    let last_iterations = rounds.last().map_or(1, |round| round.iterations_per_sample);
    let result = BenchmarkResult::with_confidence(name, "ns", per_iteration, config.confidence)?
        .with_metadata("iterations_per_sample", last_iterations)
        .with_metadata("rounds", config.rounds as u64)
        .with_metadata("steady_state", steady_state);
    let round_medians = if rounds.len() >= 2 {
        Some(BenchmarkResult::with_confidence(
            format!("{name} (round medians)"),
            "ns",
            rounds.iter().map(|round| round.median).collect(),
            config.confidence,
        )?)
    } else {
        None
    };
    Ok(Measurement {
        name: name.to_string(),
        result,
        sample_totals_ns,
        rounds,
        round_medians,
        steady_state,
        target_sample_ns,
        clock,
    })
}

/// Grow the batch until it lasts the target, keep running batches until the warm-up budget is spent,
/// then check the trailing window for a trend. Returns the iterations per sample and the report.
pub(crate) fn warm_up_and_calibrate(
    config: &MeasureConfig,
    target_sample_ns: f64,
    source: &mut dyn TimedBatch,
) -> Result<(u64, WarmUpReport), PerfError> {
    const MAX_ITERATIONS: u64 = 1 << 40;
    let mut total_iterations = 0u64;
    let mut total_ns = 0.0f64;
    // Calibration: double until one batch lasts at least a tenth of the target, then scale.
    let mut iterations = 1u64;
    let iterations_per_sample = loop {
        let elapsed = source.run_batch(iterations);
        if !elapsed.is_finite() || elapsed < 0.0 {
            return Err(PerfError::NonFinite {
                what: "warm-up batch time".into(),
                index: 0,
                value: elapsed,
            });
        }
        total_iterations += iterations;
        total_ns += elapsed;
        if elapsed >= target_sample_ns / 10.0 || iterations >= MAX_ITERATIONS {
            let per_iteration = (elapsed / iterations as f64).max(f64::MIN_POSITIVE);
            break ((target_sample_ns / per_iteration).ceil() as u64).clamp(1, MAX_ITERATIONS);
        }
        iterations *= 2;
    };

    let budget_reached = |iterations: u64, ns: f64, factor: u32| match config.warm_up {
        WarmUp::Count(count) => iterations >= count.saturating_mul(u64::from(factor)),
        WarmUp::Time(time) => ns >= time.as_nanos() as f64 * f64::from(factor),
    };
    let mut batch_per_iteration: Vec<f64> = Vec::new();
    let window = config.steady_state_window;
    // Past the budget with a full window, stop when the window shows no trend or when the
    // extension is spent; otherwise keep warming up.
    let (steady, trend) = loop {
        let within_budget = !budget_reached(total_iterations, total_ns, 1);
        let within_extension =
            !budget_reached(total_iterations, total_ns, config.max_warm_up_factor);
        if !within_budget && batch_per_iteration.len() >= window {
            let (steady, trend) = window_trend(
                &batch_per_iteration[batch_per_iteration.len() - window..],
                config,
            );
            if steady || !within_extension {
                break (steady, trend);
            }
        }
        // Warm-up batches are shorter than samples so that short budgets still give a window.
        let batch = (iterations_per_sample / 4).max(1);
        let elapsed = source.run_batch(batch);
        total_iterations += batch;
        total_ns += elapsed;
        batch_per_iteration.push(elapsed / batch as f64);
    };
    let detail = if steady {
        format!(
            "steady: trend {:+.2}% across the last {window} warm-up batches (tolerance {:.1}%)",
            100.0 * trend,
            100.0 * config.steady_state_tolerance
        )
    } else {
        format!(
            "not steady after {:.1} ms of warm-up: trend {:+.2}% across the last {window} batches exceeds {:.1}%",
            total_ns / 1e6,
            100.0 * trend,
            100.0 * config.steady_state_tolerance
        )
    };
    Ok((
        iterations_per_sample,
        WarmUpReport {
            iterations: total_iterations,
            elapsed_ns: total_ns,
            steady_state: steady,
            trend_fraction: trend,
            detail,
        },
    ))
}

/// Least-squares trend across the window, as a fraction of the window's median; steady when the
/// fitted change from the first to the last batch is within tolerance.
fn window_trend(window: &[f64], config: &MeasureConfig) -> (bool, f64) {
    let n = window.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let (mean_y, _) = mean_and_std(window);
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    for (index, &value) in window.iter().enumerate() {
        let dx = index as f64 - mean_x;
        sxy += dx * (value - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let median = crate::stats::median(window).unwrap_or(0.0);
    if median <= 0.0 {
        return (true, 0.0);
    }
    let trend = slope * (n - 1.0) / median;
    (trend.abs() <= config.steady_state_tolerance, trend)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic source: `per_iteration` ns, optionally slower at first (a cold cache).
    struct Simulated {
        per_iteration: f64,
        cold_batches: u32,
        calls: u32,
    }

    impl TimedBatch for Simulated {
        fn run_batch(&mut self, iterations: u64) -> f64 {
            self.calls += 1;
            let factor = if self.calls <= self.cold_batches {
                3.0
            } else {
                1.0
            };
            self.per_iteration * iterations as f64 * factor
        }
    }

    #[test]
    fn batches_reach_the_target_sample_time() {
        let config = MeasureConfig::quick();
        let mut source = Simulated {
            per_iteration: 50.0,
            cold_batches: 0,
            calls: 0,
        };
        let measurement = measure_source("sim", &config, &mut source).unwrap();
        let iterations = measurement.rounds[0].iterations_per_sample;
        assert!(iterations as f64 * 50.0 >= measurement.target_sample_ns);
        assert!(measurement.steady_state);
        assert_eq!(measurement.result.count, config.samples);
        assert!((measurement.result.median - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_source_that_never_settles_is_reported() {
        struct Drifting(f64);
        impl TimedBatch for Drifting {
            fn run_batch(&mut self, iterations: u64) -> f64 {
                self.0 *= 1.05;
                self.0 * iterations as f64
            }
        }
        let config = MeasureConfig {
            warm_up: WarmUp::Count(1_000),
            ..MeasureConfig::quick()
        };
        let measurement = measure_source("drift", &config, &mut Drifting(100.0)).unwrap();
        assert!(!measurement.steady_state);
        assert!(measurement.rounds[0].warm_up.detail.contains("not steady"));
    }

    #[test]
    fn cold_start_is_absorbed_by_warm_up() {
        let config = MeasureConfig {
            warm_up: WarmUp::Count(10_000),
            ..MeasureConfig::quick()
        };
        let mut source = Simulated {
            per_iteration: 1_000.0,
            cold_batches: 3,
            calls: 0,
        };
        let measurement = measure_source("cold", &config, &mut source).unwrap();
        assert!(measurement.steady_state);
        assert!((measurement.result.max - 1_000.0).abs() < 1e-9);
    }

    #[test]
    fn rounds_are_independent_and_summarized() {
        let config = MeasureConfig {
            rounds: 3,
            warm_up: WarmUp::Count(100),
            ..MeasureConfig::quick()
        };
        let mut source = Simulated {
            per_iteration: 10.0,
            cold_batches: 0,
            calls: 0,
        };
        let measurement = measure_source("rounds", &config, &mut source).unwrap();
        assert_eq!(measurement.rounds.len(), 3);
        assert_eq!(measurement.result.count, 3 * config.samples);
        assert_eq!(measurement.round_medians.as_ref().unwrap().count, 3);
    }

    #[test]
    fn bad_configuration_and_non_finite_timings_are_errors() {
        let config = MeasureConfig {
            samples: 1,
            ..MeasureConfig::quick()
        };
        let mut source = Simulated {
            per_iteration: 1.0,
            cold_batches: 0,
            calls: 0,
        };
        assert!(matches!(
            measure_source("x", &config, &mut source),
            Err(PerfError::InvalidConfig(_))
        ));
        struct Broken;
        impl TimedBatch for Broken {
            fn run_batch(&mut self, _iterations: u64) -> f64 {
                f64::NAN
            }
        }
        assert!(matches!(
            measure_source("nan", &MeasureConfig::quick(), &mut Broken),
            Err(PerfError::NonFinite { .. })
        ));
    }

    #[test]
    fn zero_duration_source_gives_a_defined_result() {
        struct Free;
        impl TimedBatch for Free {
            fn run_batch(&mut self, _iterations: u64) -> f64 {
                0.0
            }
        }
        let config = MeasureConfig {
            warm_up: WarmUp::Count(10),
            ..MeasureConfig::quick()
        };
        let measurement = measure_source("free", &config, &mut Free).unwrap();
        assert_eq!(measurement.result.median, 0.0);
    }

    #[test]
    fn real_closure_is_measured() {
        let input = vec![1u64; 256];
        let config = MeasureConfig {
            warm_up: WarmUp::Time(Duration::from_millis(5)),
            min_sample_time: Duration::from_micros(200),
            samples: 10,
            ..MeasureConfig::quick()
        };
        let measurement = measure("sum", &config, &input, |v| v.iter().sum::<u64>()).unwrap();
        assert!(measurement.result.median > 0.0);
        assert_eq!(measurement.sample_totals_ns.len(), 10);
    }
}
