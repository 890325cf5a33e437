//! Measurements over a parameter grid: a sequence length, a matrix size, a batch size. [`compare_grid`]
//! compares a baseline and a candidate at every grid value (a speedup with its interval per value, plus the
//! raw per-call times a complexity fit needs); [`measure_grid`] times one side over the grid.
//!
//! The protocol is [`crate::compare`]'s, spread over the grid:
//! - **Sweeps.** The grid is visited in sweeps, each recording one sample (one pair, in a comparison) at every
//!   value that still needs one; sweeps alternate in direction (ascending, descending, …). A slow phase of the
//!   machine then falls on every value alike instead of on whichever value was being measured at the time,
//!   which would bend a fitted exponent.
//! - **Pairs.** At each value the two sides run next to each other, their order alternating from one pair to
//!   the next (BA, AB, …; [`Order::Alternating`]) or drawn from the seed ([`Order::RandomizedBlocks`]); the
//!   pairs are analysed by [`analyse_pairs`] (paired log-ratio t-interval, in blocks of two oppositely ordered
//!   pairs from [`crate::compare::MIN_PAIRS_FOR_BLOCKS`] pairs on; Hodges–Lehmann / signed-rank cross-check).
//! - **Warm-up and batching.** Each value gets a stated number of unrecorded calls per side before the first
//!   sweep (count-based, since one call at a large grid value can last seconds, where [`crate::measure`]'s
//!   time-bounded warm-up with its steady-state window would take ten of them). The fastest warm-up call
//!   calibrates the batch: a sample lasts at least max(1000 × clock resolution, `min_sample_time`) as in
//!   [`crate::measure`]. With no warm-up call a sample is one call, and every sample shorter than half the
//!   target is counted in the result.
//! - **Failures.** The closures return `Result`; the first error voids the whole measurement
//!   ([`PerfError::WorkloadFailed`]), so a failing kernel is never timed as if it were fast.
//!
//! ```
//! use perf_core::compare::Order;
//! use perf_core::grid::{compare_grid, GridConfig, GridPoint};
//!
//! let points: Vec<GridPoint<usize>> =
//!     [1_000usize, 4_000].iter().map(|&n| GridPoint::new(n, 6)).collect();
//! let data: Vec<u64> = (0..4_000).rev().collect();
//! let grid = compare_grid(
//!     &GridConfig { order: Order::Alternating, ..GridConfig::default() },
//!     &points,
//!     |&n| Ok::<_, std::convert::Infallible>(data[..n].iter().copied().max()),
//!     |&n| Ok::<_, std::convert::Infallible>(data[..n].first().copied()),
//! )
//! .unwrap();
//! for point in &grid.points {
//!     let speedup = &point.comparison.speedup;
//!     println!("n = {}: {:.1}× [{:.1}, {:.1}]", point.parameter, speedup.point, speedup.ci_lower, speedup.ci_upper);
//! }
//! assert_eq!(grid.points[1].comparison.baseline.values().len(), 6);
//! ```

use crate::compare::{analyse_pairs, CompareConfig, Comparison, Fairness, Order};
use crate::error::PerfError;
use crate::measure::{ClosureBatch, MeasureConfig, TimedBatch, WarmUp, WarmUpReport};
use crate::stats::BenchmarkResult;
use crate::timer::clock_info;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::time::Duration;

/// Fewest pairs a grid value can be compared on (as [`crate::compare::compare`]).
pub const MIN_GRID_PAIRS: usize = 3;

/// One value of the grid and how much to measure there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint<P> {
    /// The value both closures receive.
    pub parameter: P,
    /// Pairs (in [`compare_grid`]) or samples (in [`measure_grid`]) recorded at this value.
    pub samples: usize,
    /// Unrecorded calls before the first sweep, (baseline, candidate); [`measure_grid`] uses the first.
    pub warm_up_calls: (usize, usize),
}

impl<P> GridPoint<P> {
    /// `samples` pairs or samples at `parameter`, after one warm-up call per side.
    pub fn new(parameter: P, samples: usize) -> Self {
        Self {
            parameter,
            samples,
            warm_up_calls: (1, 1),
        }
    }

    /// Set the unrecorded calls per side (builder style). Zero is for calls that last long enough to need no
    /// batching and whose first-run effects are negligible against their duration.
    pub fn warm_up_calls(mut self, baseline: usize, candidate: usize) -> Self {
        self.warm_up_calls = (baseline, candidate);
        self
    }
}

/// Knobs shared by every value of a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridConfig {
    /// Order of the two sides within a pair. [`Order::Sequential`] is refused: a grid always interleaves.
    pub order: Order,
    /// Two-sided confidence level.
    pub confidence: f64,
    /// Floor on one sample's duration (the batch is sized from the warm-up to last this long).
    pub min_sample_time: Duration,
    /// Seed for [`Order::RandomizedBlocks`].
    pub seed: u64,
    /// Power used for the minimum detectable effect.
    pub power: f64,
}

impl Default for GridConfig {
    fn default() -> Self {
        let compare = CompareConfig::default();
        Self {
            order: compare.order,
            confidence: compare.confidence,
            min_sample_time: compare.min_sample_time,
            seed: compare.seed,
            power: compare.power,
        }
    }
}

impl GridConfig {
    fn validate<P>(&self, points: &[GridPoint<P>], min_samples: usize) -> Result<(), PerfError> {
        if points.is_empty() {
            return Err(PerfError::InvalidConfig("the grid has no values".into()));
        }
        if self.order == Order::Sequential {
            return Err(PerfError::InvalidConfig(
                "a grid comparison interleaves its sides; Order::Sequential is refused".into(),
            ));
        }
        if let Some((index, point)) = points
            .iter()
            .enumerate()
            .find(|(_, point)| point.samples < min_samples)
        {
            return Err(PerfError::InvalidConfig(format!(
                "grid value {index} asks for {} samples, at least {min_samples} are needed",
                point.samples
            )));
        }
        Ok(())
    }

    fn compare_config(&self, pairs: usize, warm_up_calls: usize) -> CompareConfig {
        CompareConfig {
            pairs,
            order: self.order,
            confidence: self.confidence,
            warm_up: WarmUp::Count(warm_up_calls as u64),
            min_sample_time: self.min_sample_time,
            seed: self.seed,
            power: self.power,
            ..CompareConfig::default()
        }
    }
}

/// Something that runs a batch of calls at one grid value and reports how long it took. The closures of
/// [`compare_grid`] and [`measure_grid`] are timed with perf-core's clock; tests substitute simulated sources.
pub trait GridSource<P> {
    /// Run `iterations` calls at `parameter`; the elapsed nanoseconds, or
    /// [`PerfError::WorkloadFailed`] when the code under measurement returned an error.
    ///
    /// # Errors
    /// `WorkloadFailed` with the code's error.
    fn run_batch(&mut self, parameter: &P, iterations: u64) -> Result<f64, PerfError>;
}

/// A closure that can fail, timed by [`ClosureBatch`] (monotonic clock, `black_box` on input and output).
struct FallibleClosure<F> {
    routine: F,
    side: &'static str,
}

impl<P, O, E, F> GridSource<P> for FallibleClosure<F>
where
    F: FnMut(&P) -> Result<O, E>,
    E: Display,
{
    fn run_batch(&mut self, parameter: &P, iterations: u64) -> Result<f64, PerfError> {
        let mut first_error: Option<String> = None;
        let routine = &mut self.routine;
        let elapsed = ClosureBatch::new(parameter, |parameter: &P| {
            if first_error.is_some() {
                return None;
            }
            match routine(parameter) {
                Ok(output) => Some(output),
                Err(error) => {
                    first_error = Some(error.to_string());
                    None
                }
            }
        })
        .run_batch(iterations);
        match first_error {
            Some(message) => Err(PerfError::WorkloadFailed {
                side: self.side.to_string(),
                message,
            }),
            None => Ok(elapsed),
        }
    }
}

/// The comparison at one grid value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPointComparison<P> {
    /// The grid value.
    pub parameter: P,
    /// The paired analysis: speedup (baseline / candidate) with its interval and cross-check; `baseline.values`
    /// and `candidate.values` hold the time of one call (ns) per pair, in measurement order.
    pub comparison: Comparison,
    /// Samples (of either side) shorter than half the target sample time: calls too short to be timed one at a
    /// time, measured without a warm-up call to size their batch.
    pub samples_below_target: usize,
}

/// A comparison over a whole grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridComparison<P> {
    /// One entry per grid value, in grid order.
    pub points: Vec<GridPointComparison<P>>,
    /// Sweeps made over the grid (the largest number of pairs of any value).
    pub sweeps: usize,
    /// The target duration of one sample, ns.
    pub target_sample_ns: f64,
}

impl<P: PartialEq> GridComparison<P> {
    /// The comparison at `parameter`, if it is on the grid.
    pub fn point(&self, parameter: &P) -> Option<&GridPointComparison<P>> {
        self.points
            .iter()
            .find(|point| &point.parameter == parameter)
    }
}

impl<P> GridComparison<P> {
    /// The baseline's per-call times (ns) at every grid value, in grid order: the input of a complexity fit.
    pub fn baseline_times(&self) -> Vec<&[f64]> {
        self.points
            .iter()
            .map(|point| point.comparison.baseline.values.as_slice())
            .collect()
    }

    /// The candidate's per-call times (ns) at every grid value, in grid order.
    pub fn candidate_times(&self) -> Vec<&[f64]> {
        self.points
            .iter()
            .map(|point| point.comparison.candidate.values.as_slice())
            .collect()
    }
}

/// One side timed at one grid value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPointMeasurement<P> {
    /// The grid value.
    pub parameter: P,
    /// The time of one call (ns) per sample, in measurement order, with its statistics.
    pub result: BenchmarkResult,
    /// Calls per sample.
    pub iterations_per_sample: u64,
    /// Unrecorded calls before the first sweep.
    pub warm_up_calls: usize,
    /// Samples shorter than half the target sample time: calls too short to be timed one at a time, measured
    /// without a warm-up call to size their batch.
    pub samples_below_target: usize,
}

/// One side timed over a whole grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridMeasurement<P> {
    /// One entry per grid value, in grid order.
    pub points: Vec<GridPointMeasurement<P>>,
    /// Sweeps made over the grid.
    pub sweeps: usize,
    /// The target duration of one sample, ns.
    pub target_sample_ns: f64,
}

impl<P> GridMeasurement<P> {
    /// Per-call times (ns) at every grid value, in grid order: the input of a complexity fit.
    pub fn times(&self) -> Vec<&[f64]> {
        self.points
            .iter()
            .map(|point| point.result.values.as_slice())
            .collect()
    }
}

/// Compare `baseline` and `candidate` at every value of the grid (speedup = baseline time / candidate time).
///
/// # Errors
/// `InvalidConfig` for an empty grid, a value with fewer than [`MIN_GRID_PAIRS`] pairs, or
/// [`Order::Sequential`]; `WorkloadFailed` when a closure returns an error (naming "baseline" or
/// "candidate"); `NonFinite` for a broken timing; otherwise as [`analyse_pairs`].
pub fn compare_grid<P, OA, OB, EA, EB, FA, FB>(
    config: &GridConfig,
    points: &[GridPoint<P>],
    baseline: FA,
    candidate: FB,
) -> Result<GridComparison<P>, PerfError>
where
    P: Clone,
    FA: FnMut(&P) -> Result<OA, EA>,
    FB: FnMut(&P) -> Result<OB, EB>,
    EA: Display,
    EB: Display,
{
    let mut baseline = FallibleClosure {
        routine: baseline,
        side: "baseline",
    };
    let mut candidate = FallibleClosure {
        routine: candidate,
        side: "candidate",
    };
    compare_grid_sources(config, points, &mut baseline, &mut candidate)
}

/// Time `routine` at every value of the grid.
///
/// # Errors
/// `InvalidConfig` for an empty grid, a value with fewer than 2 samples, or [`Order::Sequential`];
/// `WorkloadFailed` when the closure returns an error; `NonFinite` for a broken timing.
pub fn measure_grid<P, O, E, F>(
    config: &GridConfig,
    points: &[GridPoint<P>],
    routine: F,
) -> Result<GridMeasurement<P>, PerfError>
where
    P: Clone,
    F: FnMut(&P) -> Result<O, E>,
    E: Display,
{
    let mut source = FallibleClosure {
        routine,
        side: "measured",
    };
    measure_grid_source(config, points, &mut source)
}

/// The warm-up at one grid value: `calls` unrecorded calls, the fastest of which sizes the batch.
struct Calibration {
    iterations_per_sample: u64,
    report: WarmUpReport,
}

fn calibrate<P>(
    source: &mut dyn GridSource<P>,
    parameter: &P,
    calls: usize,
    target_sample_ns: f64,
) -> Result<Calibration, PerfError> {
    const MAX_ITERATIONS: u64 = 1 << 40;
    let mut fastest = f64::INFINITY;
    let mut elapsed_ns = 0.0;
    for call in 0..calls {
        let elapsed = checked(source.run_batch(parameter, 1)?, "warm-up call", call)?;
        fastest = fastest.min(elapsed);
        elapsed_ns += elapsed;
    }
    let iterations_per_sample = if calls == 0 {
        1
    } else {
        ((target_sample_ns / fastest.max(f64::MIN_POSITIVE)).ceil() as u64).clamp(1, MAX_ITERATIONS)
    };
    Ok(Calibration {
        iterations_per_sample,
        report: WarmUpReport {
            iterations: calls as u64,
            elapsed_ns,
            // A count of calls, not a time budget with a trend check: one call may last seconds.
            steady_state: false,
            trend_fraction: f64::NAN,
            detail: format!(
                "{calls} unrecorded call(s) at this grid value; no steady-state check (grid warm-up is by count)"
            ),
        },
    })
}

fn checked(elapsed: f64, what: &str, index: usize) -> Result<f64, PerfError> {
    if elapsed.is_finite() && elapsed >= 0.0 {
        Ok(elapsed)
    } else {
        Err(PerfError::NonFinite {
            what: what.into(),
            index,
            value: elapsed,
        })
    }
}

/// The grid indices visited by sweep `sweep`: ascending on even sweeps, descending on odd ones, each value
/// only while it still needs samples.
fn sweep_order<P>(points: &[GridPoint<P>], sweep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&index| sweep < points[index].samples)
        .collect();
    if sweep % 2 == 1 {
        order.reverse();
    }
    order
}

/// One sample: `iterations` calls, as time per call.
fn sample<P>(
    source: &mut dyn GridSource<P>,
    parameter: &P,
    iterations: u64,
    target_sample_ns: f64,
    below_target: &mut usize,
    index: usize,
) -> Result<f64, PerfError> {
    let elapsed = checked(
        source.run_batch(parameter, iterations)?,
        "grid sample",
        index,
    )?;
    // Half the target: a calibrated batch lands near the target from either side, an unbatched short call far
    // below it.
    if elapsed < target_sample_ns / 2.0 {
        *below_target += 1;
    }
    Ok(elapsed / iterations as f64)
}

/// [`compare_grid`] over any two [`GridSource`]s (simulated ones in tests).
///
/// # Errors
/// As [`compare_grid`].
pub fn compare_grid_sources<P: Clone>(
    config: &GridConfig,
    points: &[GridPoint<P>],
    baseline: &mut dyn GridSource<P>,
    candidate: &mut dyn GridSource<P>,
) -> Result<GridComparison<P>, PerfError> {
    config.validate(points, MIN_GRID_PAIRS)?;
    let target_sample_ns = MeasureConfig {
        min_sample_time: config.min_sample_time,
        ..MeasureConfig::default()
    }
    .target_sample_ns(&clock_info());
    let mut calibrations = Vec::with_capacity(points.len());
    for point in points {
        let (baseline_calls, candidate_calls) = point.warm_up_calls;
        let baseline_calibration =
            calibrate(baseline, &point.parameter, baseline_calls, target_sample_ns)?;
        let candidate_calibration = calibrate(
            candidate,
            &point.parameter,
            candidate_calls,
            target_sample_ns,
        )?;
        calibrations.push((baseline_calibration, candidate_calibration));
    }
    let sweeps = points.iter().map(|point| point.samples).max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut baseline_values: Vec<Vec<f64>> = vec![Vec::new(); points.len()];
    let mut candidate_values: Vec<Vec<f64>> = vec![Vec::new(); points.len()];
    let mut below_target = vec![0usize; points.len()];
    for sweep in 0..sweeps {
        for index in sweep_order(points, sweep) {
            let parameter = &points[index].parameter;
            let (baseline_calibration, candidate_calibration) = &calibrations[index];
            let pair = baseline_values[index].len();
            // The warm-up ran the baseline, then the candidate: the first pair at value 0 continues with the
            // candidate (BA, AB, …, as `compare` does); neighbouring values start on opposite sides, so a sweep
            // does not run the same side twice in a row at every boundary.
            let baseline_first = match config.order {
                Order::RandomizedBlocks => rng.random_bool(0.5),
                _ => (pair + index) % 2 == 1,
            };
            let mut run_baseline = |below: &mut usize| {
                sample(
                    baseline,
                    parameter,
                    baseline_calibration.iterations_per_sample,
                    target_sample_ns,
                    below,
                    pair,
                )
            };
            let (a, b) = if baseline_first {
                let a = run_baseline(&mut below_target[index])?;
                let b = sample(
                    candidate,
                    parameter,
                    candidate_calibration.iterations_per_sample,
                    target_sample_ns,
                    &mut below_target[index],
                    pair,
                )?;
                (a, b)
            } else {
                let b = sample(
                    candidate,
                    parameter,
                    candidate_calibration.iterations_per_sample,
                    target_sample_ns,
                    &mut below_target[index],
                    pair,
                )?;
                (run_baseline(&mut below_target[index])?, b)
            };
            baseline_values[index].push(a);
            candidate_values[index].push(b);
        }
    }
    let mut compared = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        let (baseline_calibration, candidate_calibration) = &calibrations[index];
        let compare_config = config.compare_config(point.samples, point.warm_up_calls.0);
        let baseline_result = BenchmarkResult::with_confidence(
            "baseline",
            "ns",
            std::mem::take(&mut baseline_values[index]),
            config.confidence,
        )?;
        let candidate_result = BenchmarkResult::with_confidence(
            "candidate",
            "ns",
            std::mem::take(&mut candidate_values[index]),
            config.confidence,
        )?;
        let mut comparison = analyse_pairs(&baseline_result, &candidate_result, &compare_config)?;
        comparison.fairness = Fairness {
            same_input: true,
            order: config.order,
            warm_up: WarmUp::Count(point.warm_up_calls.0.max(point.warm_up_calls.1) as u64),
            iterations_per_sample: (
                baseline_calibration.iterations_per_sample,
                candidate_calibration.iterations_per_sample,
            ),
            warm_up_reports: (
                baseline_calibration.report.clone(),
                candidate_calibration.report.clone(),
            ),
        };
        compared.push(GridPointComparison {
            parameter: point.parameter.clone(),
            comparison,
            samples_below_target: below_target[index],
        });
    }
    Ok(GridComparison {
        points: compared,
        sweeps,
        target_sample_ns,
    })
}

/// [`measure_grid`] over any [`GridSource`] (a simulated one in tests).
///
/// # Errors
/// As [`measure_grid`].
pub fn measure_grid_source<P: Clone>(
    config: &GridConfig,
    points: &[GridPoint<P>],
    source: &mut dyn GridSource<P>,
) -> Result<GridMeasurement<P>, PerfError> {
    config.validate(points, 2)?;
    let target_sample_ns = MeasureConfig {
        min_sample_time: config.min_sample_time,
        ..MeasureConfig::default()
    }
    .target_sample_ns(&clock_info());
    let mut calibrations = Vec::with_capacity(points.len());
    for point in points {
        calibrations.push(calibrate(
            source,
            &point.parameter,
            point.warm_up_calls.0,
            target_sample_ns,
        )?);
    }
    let sweeps = points.iter().map(|point| point.samples).max().unwrap_or(0);
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); points.len()];
    let mut below_target = vec![0usize; points.len()];
    for sweep in 0..sweeps {
        for index in sweep_order(points, sweep) {
            let value = sample(
                source,
                &points[index].parameter,
                calibrations[index].iterations_per_sample,
                target_sample_ns,
                &mut below_target[index],
                values[index].len(),
            )?;
            values[index].push(value);
        }
    }
    let mut measured = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        let result = BenchmarkResult::with_confidence(
            "grid value",
            "ns",
            std::mem::take(&mut values[index]),
            config.confidence,
        )?;
        measured.push(GridPointMeasurement {
            parameter: point.parameter.clone(),
            result,
            iterations_per_sample: calibrations[index].iterations_per_sample,
            warm_up_calls: point.warm_up_calls.0,
            samples_below_target: below_target[index],
        });
    }
    Ok(GridMeasurement {
        points: measured,
        sweeps,
        target_sample_ns,
    })
}
