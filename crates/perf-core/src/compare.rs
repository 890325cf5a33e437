//! Interleaved A/B comparison: speedup as a ratio of geometric means with a paired log-ratio
//! t-interval, Welch's t-test, and Mann–Whitney U with the Hodges–Lehmann shift and Cliff's delta
//! as robust cross-checks.
//!
//! Both sides get the same input, the same warm-up budget, and are measured in interleaved order
//! (ABBA… by default), so slow drifts of the machine fall on both sides alike.

use crate::claim::{Estimate, TInference};
use crate::error::PerfError;
use crate::measure::{
    warm_up_and_calibrate, ClosureBatch, MeasureConfig, TimedBatch, WarmUp, WarmUpReport,
};
use crate::stats::{mean_and_std, median, student_t_cdf, student_t_quantile, BenchmarkResult};
use crate::timer::clock_info;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// In which order the two sides are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Order {
    /// BA, AB, BA, AB…: a linear drift, or what the side run second inherits from the first, cancels over
    /// every two pairs.
    Alternating,
    /// Each pair's order drawn at random from the seed.
    RandomizedBlocks,
    /// All of A, then all of B. Only for demonstrating why not to do this.
    Sequential,
}

/// Knobs of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    /// Number of (A, B) sample pairs.
    pub pairs: usize,
    /// Sampling order.
    pub order: Order,
    /// Two-sided confidence level.
    pub confidence: f64,
    /// Warm-up budget, the same for both sides.
    pub warm_up: WarmUp,
    /// Floor on one sample's duration.
    pub min_sample_time: Duration,
    /// Seed for randomized orders.
    pub seed: u64,
    /// Power used for the minimum detectable effect.
    pub power: f64,
    /// Relative changes inside ±this fraction are "within noise" even when significant (criterion's
    /// `noise_threshold`, same default of 1%): in one process, precise samples resolve real but
    /// meaningless sub-percent differences (code placement, memory layout).
    pub noise_threshold: f64,
    /// Independent rounds (docs/METHODS.md: samples inside one process are not independent replications).
    /// With `rounds > 1` the pairs are split over rounds, each round re-calibrates both sides from
    /// a fresh warm-up (the first gets `warm_up`, later ones a short re-warm-up, the machine being
    /// warm already), and the primary interval is a t-interval over the rounds' centres (Hodges–Lehmann of each round's log ratios)
    /// (df = rounds − 1): a per-round offset between the sides — one calibration, one memory
    /// state — then widens the interval instead of being called a difference. `1` = one round,
    /// inference over the pairs.
    pub rounds: usize,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            pairs: 30,
            order: Order::Alternating,
            confidence: crate::stats::DEFAULT_CONFIDENCE,
            warm_up: WarmUp::Time(Duration::from_millis(200)),
            min_sample_time: Duration::from_millis(1),
            seed: 0x5EED,
            power: 0.8,
            noise_threshold: 0.01,
            rounds: 1,
        }
    }
}

impl CompareConfig {
    /// A reduced configuration for quick runs.
    pub fn quick() -> Self {
        Self {
            pairs: 20,
            warm_up: WarmUp::Time(Duration::from_millis(50)),
            ..Self::default()
        }
    }
}

/// A test statistic with its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The statistic (t or z).
    pub statistic: f64,
    /// Degrees of freedom where applicable.
    pub degrees_of_freedom: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Mann–Whitney U with robust effect sizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankComparison {
    /// U statistic of the baseline sample.
    pub u: f64,
    /// Normal approximation with tie and continuity correction.
    pub test: TestResult,
    /// Hodges–Lehmann estimate of the shift baseline − candidate (ns): median of pairwise differences.
    pub hodges_lehmann_shift: f64,
    /// Cliff's delta: P(baseline > candidate) − P(baseline < candidate), in [−1, 1].
    pub cliffs_delta: f64,
}

/// The speedup of the candidate over the baseline: baseline time / candidate time (> 1 = faster).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeedupEstimate {
    /// Ratio of geometric means, exp(mean of ln(baseline / candidate)) over the pairs.
    pub point: f64,
    /// Lower end of the paired log-ratio t-interval (over ABBA blocks under alternating order, see
    /// [`inference_units`]).
    pub ci_lower: f64,
    /// Upper end.
    pub ci_upper: f64,
    /// Confidence level of the interval.
    pub confidence: f64,
    /// Mean paired log ratio.
    pub log_ratio_mean: f64,
    /// Its standard error, over the [`inference_units`] (ABBA blocks or pairs) or, with rounds, the rounds.
    pub log_ratio_standard_error: f64,
    /// Degrees of freedom: units − 1 (blocks − 1 or pairs − 1), or rounds − 1.
    pub degrees_of_freedom: f64,
}

impl SpeedupEstimate {
    /// The interval at another confidence level (e.g. 0.90 for a TOST at α = 0.05).
    pub fn interval(&self, confidence: f64) -> Result<(f64, f64), PerfError> {
        let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, self.degrees_of_freedom)?;
        let half = t * self.log_ratio_standard_error;
        Ok((
            (self.log_ratio_mean - half).exp(),
            (self.log_ratio_mean + half).exp(),
        ))
    }

    /// True when the interval excludes 1.
    pub fn is_significant(&self) -> bool {
        self.ci_lower > 1.0 || self.ci_upper < 1.0
    }
}

/// What was done to keep the comparison fair, recorded with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// Both sides received the same input value.
    pub same_input: bool,
    /// The sampling order used.
    pub order: Order,
    /// The warm-up budget each side received.
    pub warm_up: WarmUp,
    /// Iterations per sample chosen for the baseline and the candidate.
    pub iterations_per_sample: (u64, u64),
    /// Warm-up reports of both sides.
    pub warm_up_reports: (WarmUpReport, WarmUpReport),
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Baseline ns per iteration.
    pub baseline: BenchmarkResult,
    /// Candidate ns per iteration.
    pub candidate: BenchmarkResult,
    /// The primary estimate.
    pub speedup: SpeedupEstimate,
    /// Welch's t-test on the raw per-iteration times.
    pub welch: TestResult,
    /// The robust cross-check on the independent samples.
    pub rank: RankComparison,
    /// The robust cross-check on the pairs: exp of the Hodges–Lehmann estimate of the paired log
    /// ratios (of their ABBA-block means, see [`inference_units`]) with its Wilcoxon signed-rank interval
    /// (resistant to a few preempted samples).
    pub robust_speedup: Option<RobustSpeedup>,
    /// ln(baseline / candidate) of every pair, in measurement order.
    pub log_ratios: Vec<f64>,
    /// Centre of each round's log ratios (one value, their mean, when `rounds` = 1; the Hodges–Lehmann
    /// estimate when there are several, and the primary interval is then over these).
    pub round_log_ratio_means: Vec<f64>,
    /// Smallest speedup (as a ratio > 1) this run could detect with the configured power.
    pub minimum_detectable_speedup: f64,
    /// How the comparison was kept fair.
    pub fairness: Fairness,
}

/// The paired robust speedup estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RobustSpeedup {
    /// exp(Hodges–Lehmann estimate of the paired log ratios).
    pub point: f64,
    /// Lower end of the signed-rank interval.
    pub ci_lower: f64,
    /// Upper end.
    pub ci_upper: f64,
    /// Confidence level.
    pub confidence: f64,
}

/// Re-warm-up before each round after the first (the machine is warm; the re-calibration is what
/// makes the round independent).
const REWARM: Duration = Duration::from_millis(10);

impl CompareConfig {
    /// The warm-up of rounds after the first: at most `REWARM`, or a tenth of a count-based one.
    fn rewarm(&self) -> WarmUp {
        match self.warm_up {
            WarmUp::Time(duration) => WarmUp::Time(duration.min(REWARM)),
            WarmUp::Count(count) => WarmUp::Count((count / 10).max(1)),
        }
    }
}

impl Comparison {
    /// The independent units the primary interval is built on: the rounds' centres when the
    /// comparison ran in several rounds, otherwise the paired log ratios (in ABBA-block means under
    /// alternation, see [`inference_units`]). A sequential design pools these across looks.
    pub fn inference_values(&self) -> Vec<f64> {
        if self.round_log_ratio_means.len() > 1 {
            self.round_log_ratio_means.clone()
        } else {
            inference_units(&self.log_ratios, self.fairness.order).into_owned()
        }
    }

    /// Replace the primary interval by the t-interval over the rounds' centres (Hodges–Lehmann).
    fn apply_rounds(
        &mut self,
        round_sizes: &[usize],
        config: &CompareConfig,
    ) -> Result<(), PerfError> {
        // Each round's centre is the Hodges–Lehmann estimate of its log ratios rather than their mean: one
        // preempted pair (on the reference VM, an 8.9× ratio among ratios within ±5%) would otherwise move its
        // round's value by a third and widen the interval over rounds for nothing. It estimates the same centre
        // for symmetric noise, at 95% of the mean's efficiency under normal noise.
        let mut means = Vec::with_capacity(round_sizes.len());
        let mut start = 0;
        for &size in round_sizes {
            let slice = &self.log_ratios[start..start + size];
            means.push(hodges_lehmann(slice));
            start += size;
        }
        let rounds = means.len() as f64;
        let (mean, std) = mean_and_std(&means);
        let standard_error = std / rounds.sqrt();
        let df = rounds - 1.0;
        let t = student_t_quantile(1.0 - (1.0 - config.confidence) / 2.0, df)?;
        self.speedup = SpeedupEstimate {
            point: mean.exp(),
            ci_lower: (mean - t * standard_error).exp(),
            ci_upper: (mean + t * standard_error).exp(),
            confidence: config.confidence,
            log_ratio_mean: mean,
            log_ratio_standard_error: standard_error,
            degrees_of_freedom: df,
        };
        let t_power = student_t_quantile(config.power, df)?;
        self.minimum_detectable_speedup = ((t + t_power) * standard_error).exp();
        self.round_log_ratio_means = means;
        Ok(())
    }

    /// True when the comparison calls a difference: the primary t-interval excludes 1 and the
    /// robust paired interval (when it exists) excludes 1 on the same side. A disagreement means a
    /// few extreme pairs drive the t-interval, which is not evidence of a difference.
    pub fn is_significant(&self) -> bool {
        if !self.speedup.is_significant() {
            return false;
        }
        match self.robust_speedup {
            Some(robust) => {
                let faster = self.speedup.ci_lower > 1.0;
                if faster {
                    robust.ci_lower > 1.0
                } else {
                    robust.ci_upper < 1.0
                }
            }
            None => true,
        }
    }

    /// True when the comparison calls a difference that matters: [`Comparison::is_significant`] and
    /// the whole interval lies outside ±`noise_threshold` around 1 (as criterion reports "change
    /// within noise threshold" otherwise).
    pub fn is_meaningful_difference(&self, noise_threshold: f64) -> bool {
        if !self.is_significant() {
            return false;
        }
        let (upper_noise, lower_noise) = (1.0 + noise_threshold, 1.0 / (1.0 + noise_threshold));
        self.speedup.ci_lower > upper_noise || self.speedup.ci_upper < lower_noise
    }

    /// The primary speedup as a claim [`Estimate`], keeping its t-inference (so a TOST can re-derive
    /// the 90% interval and Holm can compute a p-value).
    ///
    /// # Errors
    /// `NonFinite` / `InvalidInput` when the interval is degenerate in a way an estimate refuses.
    pub fn speedup_estimate(&self) -> Result<Estimate, PerfError> {
        Estimate::from_t(
            TInference {
                center: self.speedup.log_ratio_mean,
                standard_error: self.speedup.log_ratio_standard_error,
                degrees_of_freedom: self.speedup.degrees_of_freedom,
                log_scale: true,
            },
            "×",
            self.speedup.confidence,
        )
    }

    /// The robust paired speedup (Hodges–Lehmann, signed-rank interval) as a claim [`Estimate`] at
    /// `confidence` — the cross-check of [`crate::claim::Claim::judge_with_cross_check`].
    ///
    /// # Errors
    /// `InsufficientSamples` with fewer than 6 pairs.
    pub fn robust_estimate(&self, confidence: f64) -> Result<Estimate, PerfError> {
        let insufficient = || PerfError::InsufficientSamples {
            what: "signed-rank interval on the paired log ratios".into(),
            needed: 6,
            have: self.log_ratios.len(),
        };
        let (lower, upper) = self.robust_interval(confidence).ok_or_else(insufficient)?;
        let point = self.robust_speedup.ok_or_else(insufficient)?.point;
        Estimate::new(point, lower.min(point), upper.max(point), "×", confidence)
    }

    /// The robust paired interval at another confidence level (0.90 for a TOST).
    pub fn robust_interval(&self, confidence: f64) -> Option<(f64, f64)> {
        signed_rank_interval(
            &inference_units(&self.log_ratios, self.fairness.order),
            confidence,
        )
        .map(|(_, lower, upper)| (lower.exp(), upper.exp()))
    }
}

/// Fewest pairs for which an alternating comparison is analysed in ABBA blocks (six blocks, the least a
/// signed-rank interval takes).
pub const MIN_PAIRS_FOR_BLOCKS: usize = 12;

/// The values the single-round intervals are computed over. Under [`Order::Alternating`] with an even number
/// of at least [`MIN_PAIRS_FOR_BLOCKS`] pairs, the mean of each block of pairs 2k and 2k + 1 (measured in
/// opposite orders); otherwise the pairs' log ratios themselves.
///
/// An AB/BA design is a crossover: whatever the side measured second in a pair inherits from the first (a
/// cache the other kernel evicted, a frequency step, a linear drift) enters pair 2k with one sign and pair
/// 2k + 1 with the other. The mean over whole blocks cancels it, so the point estimate is the same either way,
/// but pair by pair it is variance: on the reference VM the log ratios of even and odd pairs differed by up to
/// 0.28 (quant's int8 vs f32 GEMM at n = 512, one call per sample), which widened the pair-level interval up to
/// 2.7-fold. Block means carry none of it, at the price of half the degrees of freedom.
///
/// With rounds the primary interval is over the rounds' centres instead, and only the robust cross-check uses
/// these units; each round restarts the alternation, so its blocks line up with the rounds when every round
/// has an even number of pairs (as every configuration in this workspace does).
pub fn inference_units(log_ratios: &[f64], order: Order) -> std::borrow::Cow<'_, [f64]> {
    let n = log_ratios.len();
    if order == Order::Alternating && n >= MIN_PAIRS_FOR_BLOCKS && n.is_multiple_of(2) {
        std::borrow::Cow::Owned(
            log_ratios
                .chunks_exact(2)
                .map(|block| (block[0] + block[1]) / 2.0)
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(log_ratios)
    }
}

/// Hodges–Lehmann estimate of `values`: the median of the Walsh averages `(x_i + x_j) / 2`, `i ≤ j` (the
/// value itself for one value; NaN for none).
pub fn hodges_lehmann(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    crate::stats::quantile_sorted(&sorted_walsh_averages(values), 0.5).unwrap_or(f64::NAN)
}

/// Every `(x_i + x_j) / 2` with `i ≤ j`, sorted.
fn sorted_walsh_averages(values: &[f64]) -> Vec<f64> {
    let mut walsh = Vec::with_capacity(values.len() * (values.len() + 1) / 2);
    for (i, &x) in values.iter().enumerate() {
        for &y in &values[i..] {
            walsh.push((x + y) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    walsh
}

/// Hodges–Lehmann estimate (median of the Walsh averages) of paired differences with the
/// Wilcoxon signed-rank interval (normal approximation of the rank statistic). Returns
/// (estimate, lower, upper) on the scale of `differences`, or `None` for fewer than 6 pairs.
pub fn signed_rank_interval(differences: &[f64], confidence: f64) -> Option<(f64, f64, f64)> {
    let n = differences.len();
    if n < 6
        || !(0.0 < confidence && confidence < 1.0)
        || differences.iter().any(|d| !d.is_finite())
    {
        return None;
    }
    let walsh = sorted_walsh_averages(differences);
    let m = walsh.len();
    let n_f = n as f64;
    let z = crate::stats::two_sided_normal_critical_value(confidence).ok()?;
    let mean = n_f * (n_f + 1.0) / 4.0;
    let sd = (n_f * (n_f + 1.0) * (2.0 * n_f + 1.0) / 24.0).sqrt();
    // With C the critical value of the signed-rank statistic (largest c with P(T ≤ c) ≤ α/2,
    // here from the normal approximation), the interval is [W_(C+1), W_(M−C)].
    let critical = ((mean - z * sd).floor().max(0.0) as usize).min(m / 2 - 1);
    let estimate = crate::stats::quantile_sorted(&walsh, 0.5)?;
    Some((estimate, walsh[critical], walsh[m - 1 - critical]))
}

/// Compare two closures on the same input (baseline first).
///
/// # Errors
/// `InvalidConfig` for a bad configuration, `NonFinite` for broken timings.
pub fn compare<I, OA, OB, FA, FB>(
    config: &CompareConfig,
    input: &I,
    baseline: FA,
    candidate: FB,
) -> Result<Comparison, PerfError>
where
    FA: FnMut(&I) -> OA,
    FB: FnMut(&I) -> OB,
{
    let mut baseline_source = ClosureBatch::new(input, baseline);
    let mut candidate_source = ClosureBatch::new(input, candidate);
    compare_sources(config, &mut baseline_source, &mut candidate_source)
}

/// Compare any two [`TimedBatch`] sources (simulated ones in tests).
///
/// # Errors
/// As [`compare`].
pub fn compare_sources(
    config: &CompareConfig,
    baseline: &mut dyn TimedBatch,
    candidate: &mut dyn TimedBatch,
) -> Result<Comparison, PerfError> {
    if config.pairs < 3 {
        return Err(PerfError::InvalidConfig(format!(
            "a comparison needs at least 3 pairs, got {}",
            config.pairs
        )));
    }
    if !(0.0 < config.power && config.power < 1.0) {
        return Err(PerfError::InvalidConfig(format!(
            "power must be in (0, 1), got {}",
            config.power
        )));
    }
    let measure_config = MeasureConfig {
        warm_up: config.warm_up,
        min_sample_time: config.min_sample_time,
        confidence: config.confidence,
        ..MeasureConfig::default()
    };
    let rounds = config.rounds.max(1);
    if rounds > 1 && config.pairs < 2 * rounds {
        return Err(PerfError::InvalidConfig(format!(
            "{rounds} rounds need at least {} pairs (two per round), got {}",
            2 * rounds,
            config.pairs
        )));
    }
    let target = measure_config.target_sample_ns(&clock_info());
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut baseline_values = Vec::with_capacity(config.pairs);
    let mut candidate_values = Vec::with_capacity(config.pairs);
    let mut round_sizes = Vec::with_capacity(rounds);
    let mut first_round = None;
    for round in 0..rounds {
        let round_config = if round == 0 {
            measure_config.clone()
        } else {
            MeasureConfig {
                warm_up: config.rewarm(),
                ..measure_config.clone()
            }
        };
        // Warm up both, interleaved at the granularity of whole warm-ups, baseline first.
        let (baseline_iterations, baseline_warm_up) =
            warm_up_and_calibrate(&round_config, target, baseline)?;
        let (candidate_iterations, candidate_warm_up) =
            warm_up_and_calibrate(&round_config, target, candidate)?;
        if first_round.is_none() {
            first_round = Some((
                baseline_iterations,
                candidate_iterations,
                baseline_warm_up,
                candidate_warm_up,
            ));
        }
        // Pairs spread as evenly as possible over the rounds.
        let pairs = config.pairs / rounds + usize::from(round < config.pairs % rounds);
        round_sizes.push(pairs);
        let sample_baseline = |source: &mut dyn TimedBatch| {
            source.run_batch(baseline_iterations) / baseline_iterations as f64
        };
        let sample_candidate = |source: &mut dyn TimedBatch| {
            source.run_batch(candidate_iterations) / candidate_iterations as f64
        };
        match config.order {
            Order::Sequential => {
                for _ in 0..pairs {
                    baseline_values.push(sample_baseline(baseline));
                }
                for _ in 0..pairs {
                    candidate_values.push(sample_candidate(candidate));
                }
            }
            Order::Alternating | Order::RandomizedBlocks => {
                for pair in 0..pairs {
                    let baseline_first = match config.order {
                        // The warm-up ran the baseline, then the candidate: the first pair continues with the
                        // candidate (BA, AB, BA, …), so every side that runs first in a pair ran last in the one
                        // before, and none starts cold twice at the beginning (AB first gave an A/A bias of
                        // penalty / pairs with a simulated cold-start penalty).
                        Order::Alternating => pair % 2 == 1,
                        _ => rng.random_bool(0.5),
                    };
                    if baseline_first {
                        let a = sample_baseline(baseline);
                        let b = sample_candidate(candidate);
                        baseline_values.push(a);
                        candidate_values.push(b);
                    } else {
                        let b = sample_candidate(candidate);
                        let a = sample_baseline(baseline);
                        baseline_values.push(a);
                        candidate_values.push(b);
                    }
                }
            }
        }
    }
    let (baseline_iterations, candidate_iterations, baseline_warm_up, candidate_warm_up) =
        first_round.ok_or_else(|| PerfError::InvalidConfig("no round was run".into()))?;
    let baseline_result =
        BenchmarkResult::with_confidence("baseline", "ns", baseline_values, config.confidence)?;
    let candidate_result =
        BenchmarkResult::with_confidence("candidate", "ns", candidate_values, config.confidence)?;
    let mut comparison = analyse_pairs(&baseline_result, &candidate_result, config)?;
    if rounds > 1 {
        comparison.apply_rounds(&round_sizes, config)?;
    }
    comparison.fairness = Fairness {
        same_input: true,
        order: config.order,
        warm_up: config.warm_up,
        iterations_per_sample: (baseline_iterations, candidate_iterations),
        warm_up_reports: (baseline_warm_up, candidate_warm_up),
    };
    Ok(comparison)
}

/// Analyse paired samples already collected (index i of each side measured next to each other).
///
/// # Errors
/// `InvalidInput` for different lengths or non-positive times (a log ratio needs positive values).
pub fn analyse_pairs(
    baseline: &BenchmarkResult,
    candidate: &BenchmarkResult,
    config: &CompareConfig,
) -> Result<Comparison, PerfError> {
    let (a, b) = (&baseline.values, &candidate.values);
    if a.len() != b.len() {
        return Err(PerfError::InvalidInput(format!(
            "paired analysis needs equal lengths, got {} and {}",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b.iter()).any(|&v| v <= 0.0) {
        return Err(PerfError::InvalidInput(
            "speedup needs strictly positive times (a zero or negative duration was measured)"
                .into(),
        ));
    }
    let log_ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x / y).ln()).collect();
    let units = inference_units(&log_ratios, config.order);
    let n = units.len() as f64;
    let df = n - 1.0;
    let (log_ratio_mean, log_ratio_std) = mean_and_std(&units);
    let log_ratio_standard_error = log_ratio_std / n.sqrt();
    let t = student_t_quantile(1.0 - (1.0 - config.confidence) / 2.0, df)?;
    let speedup = SpeedupEstimate {
        point: log_ratio_mean.exp(),
        ci_lower: (log_ratio_mean - t * log_ratio_standard_error).exp(),
        ci_upper: (log_ratio_mean + t * log_ratio_standard_error).exp(),
        confidence: config.confidence,
        log_ratio_mean,
        log_ratio_standard_error,
        degrees_of_freedom: df,
    };
    let t_power = student_t_quantile(config.power, df)?;
    let minimum_detectable_speedup = ((t + t_power) * log_ratio_standard_error).exp();
    let robust_speedup =
        signed_rank_interval(&units, config.confidence).map(|(point, lower, upper)| {
            RobustSpeedup {
                point: point.exp(),
                ci_lower: lower.exp(),
                ci_upper: upper.exp(),
                confidence: config.confidence,
            }
        });
    let round_log_ratio_means = vec![log_ratio_mean];
    Ok(Comparison {
        robust_speedup,
        round_log_ratio_means,
        log_ratios,
        welch: welch_t_test(a, b)?,
        rank: mann_whitney(a, b)?,
        baseline: baseline.clone(),
        candidate: candidate.clone(),
        speedup,
        minimum_detectable_speedup,
        fairness: Fairness {
            same_input: false,
            order: config.order,
            warm_up: config.warm_up,
            iterations_per_sample: (0, 0),
            warm_up_reports: (empty_warm_up(), empty_warm_up()),
        },
    })
}

fn empty_warm_up() -> WarmUpReport {
    WarmUpReport {
        iterations: 0,
        elapsed_ns: 0.0,
        steady_state: false,
        trend_fraction: f64::NAN,
        detail: "not recorded (analysis of pre-collected samples)".into(),
    }
}

/// Welch's unequal-variance t-test, two-sided.
///
/// # Errors
/// `InsufficientSamples` when a side has fewer than two values.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<TestResult, PerfError> {
    if a.len() < 2 || b.len() < 2 {
        return Err(PerfError::InsufficientSamples {
            what: "welch t-test".into(),
            needed: 2,
            have: a.len().min(b.len()),
        });
    }
    let (mean_a, std_a) = mean_and_std(a);
    let (mean_b, std_b) = mean_and_std(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (std_a * std_a / na, std_b * std_b / nb);
    if va + vb == 0.0 {
        let p_value = if mean_a == mean_b { 1.0 } else { 0.0 };
        return Ok(TestResult {
            statistic: if mean_a == mean_b {
                0.0
            } else {
                f64::INFINITY.copysign(mean_a - mean_b)
            },
            degrees_of_freedom: Some(na + nb - 2.0),
            p_value,
        });
    }
    let statistic = (mean_a - mean_b) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let p_value = 2.0 * (1.0 - student_t_cdf(statistic.abs(), df)?);
    Ok(TestResult {
        statistic,
        degrees_of_freedom: Some(df),
        p_value: p_value.clamp(0.0, 1.0),
    })
}

/// Mann–Whitney U (normal approximation with tie and continuity correction), Hodges–Lehmann shift
/// and Cliff's delta.
///
/// # Errors
/// `Empty` when either side is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Result<RankComparison, PerfError> {
    if a.is_empty() || b.is_empty() {
        return Err(PerfError::Empty {
            what: "mann-whitney sample".into(),
        });
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start;
        while end + 1 < pooled.len() && pooled[end + 1].0 == pooled[start].0 {
            end += 1;
        }
        let tied = (end - start + 1) as f64;
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum_a +=
            pooled[start..=end].iter().filter(|entry| entry.1).count() as f64 * average_rank;
        tie_term += tied.powi(3) - tied;
        start = end + 1;
    }
    let u = rank_sum_a - na * (na + 1.0) / 2.0;
    let mean_u = na * nb / 2.0;
    let n = na + nb;
    let variance = na * nb / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)).max(1.0));
    let test = if variance <= 0.0 {
        TestResult {
            statistic: 0.0,
            degrees_of_freedom: None,
            p_value: 1.0,
        }
    } else {
        let corrected = (u - mean_u).abs() - 0.5;
        let z = corrected.max(0.0) / variance.sqrt() * (u - mean_u).signum();
        // z is finite here (the variance is positive), so the cdf cannot fail; NaN would propagate.
        let upper_tail = crate::stats::standard_normal_cdf(z.abs()).unwrap_or(f64::NAN);
        TestResult {
            statistic: z,
            degrees_of_freedom: None,
            p_value: (2.0 * (1.0 - upper_tail)).clamp(0.0, 1.0),
        }
    };
    let mut differences = Vec::with_capacity(a.len() * b.len());
    let mut greater = 0usize;
    let mut less = 0usize;
    for &x in a {
        for &y in b {
            differences.push(x - y);
            if x > y {
                greater += 1;
            } else if x < y {
                less += 1;
            }
        }
    }
    Ok(RankComparison {
        u,
        test,
        hodges_lehmann_shift: median(&differences).unwrap_or(0.0),
        cliffs_delta: (greater as f64 - less as f64) / (na * nb),
    })
}

#[cfg(test)]
mod tests;
