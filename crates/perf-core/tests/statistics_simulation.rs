//! The statistics, tested by seeded simulation rather than assumed: interval coverage on the
//! distributions latency really has, and the comparator's false-positive rate and power fed by a
//! simulated timing source (never the real clock).

use perf_core::compare::{compare_sources, CompareConfig, Order};
use perf_core::measure::{TimedBatch, WarmUp};
use perf_core::stats::BenchmarkResult;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

const TRIALS: usize = 2_000;

#[derive(Clone, Copy, Debug)]
enum Shape {
    Normal,
    LogNormal,
    /// 95% around 100, 5% around 300: a fast path with an occasional slow one.
    TwoModeMixture,
}

impl Shape {
    fn draw(self, rng: &mut StdRng) -> f64 {
        match self {
            Shape::Normal => Normal::new(100.0, 10.0).unwrap().sample(rng),
            Shape::LogNormal => LogNormal::new(0.0, 1.0).unwrap().sample(rng),
            Shape::TwoModeMixture => {
                if rng.random_bool(0.95) {
                    Normal::new(100.0, 5.0).unwrap().sample(rng)
                } else {
                    Normal::new(300.0, 5.0).unwrap().sample(rng)
                }
            }
        }
    }

    /// The true median, computed numerically once (closed form where there is one).
    fn true_median(self) -> f64 {
        match self {
            Shape::Normal => 100.0,
            Shape::LogNormal => 1.0,
            Shape::TwoModeMixture => {
                // Solve 0.95·Φ((m − 100)/5) + 0.05·Φ((m − 300)/5) = 0.5 by bisection.
                use statrs::distribution::{ContinuousCDF, Normal as StatNormal};
                let fast = StatNormal::new(100.0, 5.0).unwrap();
                let slow = StatNormal::new(300.0, 5.0).unwrap();
                let (mut lo, mut hi) = (50.0, 150.0);
                for _ in 0..200 {
                    let mid = (lo + hi) / 2.0;
                    if 0.95 * fast.cdf(mid) + 0.05 * slow.cdf(mid) < 0.5 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                (lo + hi) / 2.0
            }
        }
    }
}

fn median_coverage(shape: Shape, n: usize, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let truth = shape.true_median();
    let mut covered = 0;
    for _ in 0..TRIALS {
        let values: Vec<f64> = (0..n).map(|_| shape.draw(&mut rng)).collect();
        let result = BenchmarkResult::from_values("sim", "ns", values).unwrap();
        let (lower, upper) = result.median_ci().unwrap();
        if lower <= truth && truth <= upper {
            covered += 1;
        }
    }
    covered as f64 / TRIALS as f64
}

#[test]
fn median_interval_covers_about_95_percent() {
    let mut report = Vec::new();
    for (index, shape) in [Shape::Normal, Shape::LogNormal, Shape::TwoModeMixture]
        .into_iter()
        .enumerate()
    {
        for n in [10, 30] {
            let coverage = median_coverage(shape, n, 1_000 + index as u64 * 10 + n as u64);
            report.push(format!("{shape:?} n={n}: {:.1}%", 100.0 * coverage));
            assert!(
                (0.93..=0.97).contains(&coverage),
                "median CI coverage {coverage} for {shape:?} at n = {n}"
            );
        }
    }
    println!(
        "median interval coverage over {TRIALS} trials: {}",
        report.join(", ")
    );
}

#[test]
fn mean_t_interval_covers_about_95_percent_on_normal_data() {
    for n in [5, 10, 30] {
        let mut rng = StdRng::seed_from_u64(7 + n as u64);
        let mut covered = 0;
        for _ in 0..TRIALS {
            let values: Vec<f64> = (0..n).map(|_| Shape::Normal.draw(&mut rng)).collect();
            let result = BenchmarkResult::from_values("sim", "ns", values).unwrap();
            if result.ci_lower() <= 100.0 && 100.0 <= result.ci_upper() {
                covered += 1;
            }
        }
        let coverage = covered as f64 / TRIALS as f64;
        println!(
            "mean t-interval coverage, normal, n = {n}: {:.1}%",
            100.0 * coverage
        );
        assert!(
            (0.93..=0.97).contains(&coverage),
            "t coverage {coverage} at n = {n}"
        );
    }
}

/// A simulated machine: one virtual clock shared by both sides, a linear drift over the run and
/// log-normal noise on every batch.
struct Machine {
    virtual_ns: f64,
    drift_over_run: f64,
    run_length_ns: f64,
    noise_sigma: f64,
    rng: StdRng,
}

struct Side {
    machine: Rc<RefCell<Machine>>,
    per_iteration_ns: f64,
}

impl TimedBatch for Side {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        let mut machine = self.machine.borrow_mut();
        let drift = 1.0 + machine.drift_over_run * (machine.virtual_ns / machine.run_length_ns);
        let noise = LogNormal::new(0.0, machine.noise_sigma)
            .unwrap()
            .sample(&mut machine.rng);
        let elapsed = iterations as f64 * self.per_iteration_ns * drift * noise;
        machine.virtual_ns += elapsed;
        elapsed
    }
}

fn simulated_config(order: Order) -> CompareConfig {
    CompareConfig {
        order,
        warm_up: WarmUp::Time(Duration::from_millis(20)),
        min_sample_time: Duration::from_millis(1),
        ..CompareConfig::default()
    }
}

/// Fraction of trials called significant, and of those, how many in the right direction.
fn rejection_rate(
    order: Order,
    true_speedup: f64,
    noise_sigma: f64,
    trials: usize,
    seed: u64,
) -> (f64, f64) {
    let config = simulated_config(order);
    let mut significant = 0;
    let mut right_direction = 0;
    for trial in 0..trials {
        let machine = Rc::new(RefCell::new(Machine {
            virtual_ns: 0.0,
            drift_over_run: 0.03,
            // Two warm-ups of 20 ms plus 2 × pairs samples of ~1 ms.
            run_length_ns: 40e6 + 2.0 * config.pairs as f64 * 1e6,
            noise_sigma,
            rng: StdRng::seed_from_u64(seed + trial as u64),
        }));
        let mut baseline = Side {
            machine: Rc::clone(&machine),
            per_iteration_ns: 1_000.0,
        };
        let mut candidate = Side {
            machine,
            per_iteration_ns: 1_000.0 / true_speedup,
        };
        let comparison = compare_sources(&config, &mut baseline, &mut candidate).unwrap();
        if comparison.is_significant() {
            significant += 1;
            if (comparison.speedup.point > 1.0) == (true_speedup > 1.0) {
                right_direction += 1;
            }
        }
    }
    (
        significant as f64 / trials as f64,
        if significant == 0 {
            1.0
        } else {
            right_direction as f64 / significant as f64
        },
    )
}

#[test]
fn aa_false_positive_rate_under_drift_is_controlled_by_interleaving() {
    let (alternating, _) = rejection_rate(Order::Alternating, 1.0, 0.03, 1_000, 10_000);
    let (randomized, _) = rejection_rate(Order::RandomizedBlocks, 1.0, 0.03, 1_000, 20_000);
    let (sequential, _) = rejection_rate(Order::Sequential, 1.0, 0.03, 1_000, 30_000);
    println!(
        "A/A false-positive rate under a 3% drift: alternating {:.1}%, randomized {:.1}%, sequential {:.1}%",
        100.0 * alternating,
        100.0 * randomized,
        100.0 * sequential
    );
    assert!(
        alternating <= 0.07,
        "alternating A/A false positives {alternating}"
    );
    assert!(
        randomized <= 0.07,
        "randomized A/A false positives {randomized}"
    );
    // Running all of A then all of B is the trap docs/METHODS.md warns about: it must look bad here.
    assert!(
        sequential > 0.15,
        "sequential order should be fooled by drift, got {sequential}"
    );
}

#[test]
fn power_for_a_true_ten_percent_difference() {
    // 5% per-sample noise (a noisy shared machine) plus the same 3% drift.
    let (power, direction) = rejection_rate(Order::Alternating, 1.10, 0.05, 1_000, 40_000);
    println!(
        "power for a true 10% speedup at 5% noise, default config: {:.1}%",
        100.0 * power
    );
    assert!(power >= 0.90, "power {power}");
    assert!(
        direction == 1.0,
        "a significant result pointed the wrong way"
    );
    let (power_slower, _) = rejection_rate(Order::Alternating, 1.0 / 1.10, 0.05, 500, 50_000);
    assert!(power_slower >= 0.90, "power for a slowdown {power_slower}");
}

/// A side whose speed carries a state offset (memory placement, code alignment, a preempting
/// neighbour) that is re-drawn whenever it is re-calibrated — modelled as whenever the batch size
/// changes, which happens at every calibration and never during sampling. Within a round the
/// offset is constant, so the pairs share it: they are not independent replications.
struct StatefulSide {
    rng: StdRng,
    per_iteration_ns: f64,
    offset_sigma: f64,
    noise_sigma: f64,
    offset: f64,
    last_iterations: u64,
}

impl TimedBatch for StatefulSide {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        if iterations != self.last_iterations {
            self.offset = LogNormal::new(0.0, self.offset_sigma)
                .unwrap()
                .sample(&mut self.rng);
            self.last_iterations = iterations;
        }
        let noise = LogNormal::new(0.0, self.noise_sigma)
            .unwrap()
            .sample(&mut self.rng);
        iterations as f64 * self.per_iteration_ns * self.offset * noise
    }
}

/// A/A false-positive rate with a per-calibration offset of 2% and 0.5% sample noise.
fn stateful_aa_rate(rounds: usize, pairs: usize, trials: u64) -> f64 {
    let config = CompareConfig {
        pairs,
        rounds,
        ..simulated_config(Order::Alternating)
    };
    let mut called = 0;
    for trial in 0..trials {
        let side = |seed: u64| StatefulSide {
            rng: StdRng::seed_from_u64(seed),
            per_iteration_ns: 1_000.0,
            offset_sigma: 0.02,
            noise_sigma: 0.005,
            offset: 1.0,
            last_iterations: 0,
        };
        let (mut baseline, mut candidate) = (side(2 * trial + 1), side(2 * trial + 2));
        let comparison = compare_sources(&config, &mut baseline, &mut candidate).unwrap();
        assert_eq!(comparison.round_log_ratio_means.len(), rounds);
        // One round of alternating pairs is analysed in ABBA blocks of two pairs.
        assert_eq!(
            comparison.speedup.degrees_of_freedom,
            if rounds > 1 {
                rounds - 1
            } else {
                pairs / 2 - 1
            } as f64
        );
        called += u64::from(comparison.is_significant());
    }
    called as f64 / trials as f64
}

#[test]
fn rounds_restore_the_false_positive_rate_when_pairs_share_a_state() {
    let trials = 400;
    let one_round = stateful_aa_rate(1, 30, trials);
    let rounds = stateful_aa_rate(8, 40, trials);
    println!(
        "A/A with a 2% per-calibration offset: 1 round {:.1}%, 8 rounds {:.1}% called different",
        100.0 * one_round,
        100.0 * rounds
    );
    // One round: the shared offset is read as a difference most of the time.
    assert!(one_round > 0.5, "one round: {one_round}");
    // Eight rounds: inference over round means is back near the nominal 5% (binomial sd ≈ 1.1%).
    assert!(rounds <= 0.09, "eight rounds: {rounds}");
}

#[test]
fn rounds_need_two_pairs_each() {
    let config = CompareConfig {
        pairs: 9,
        rounds: 5,
        ..simulated_config(Order::Alternating)
    };
    let side = || StatefulSide {
        rng: StdRng::seed_from_u64(1),
        per_iteration_ns: 1_000.0,
        offset_sigma: 0.0,
        noise_sigma: 0.01,
        offset: 1.0,
        last_iterations: 0,
    };
    let error = compare_sources(&config, &mut side(), &mut side()).unwrap_err();
    assert!(error.to_string().contains("two per round"), "{error}");
}

/// A machine on which the side that did not run last starts cold: its batch costs `penalty` more (a cache the
/// other kernel evicted), as when one sample is one call of a large kernel.
struct CarryOverMachine {
    last_side: Option<usize>,
    penalty: f64,
    noise_sigma: f64,
    rng: StdRng,
}

struct CarryOverSide {
    machine: Rc<RefCell<CarryOverMachine>>,
    id: usize,
    per_iteration_ns: f64,
}

impl TimedBatch for CarryOverSide {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        let mut machine = self.machine.borrow_mut();
        let cold = machine.last_side.is_some_and(|last| last != self.id);
        machine.last_side = Some(self.id);
        let noise = LogNormal::new(0.0, machine.noise_sigma)
            .unwrap()
            .sample(&mut machine.rng);
        let penalty = if cold { 1.0 + machine.penalty } else { 1.0 };
        iterations as f64 * self.per_iteration_ns * penalty * noise
    }
}

/// (fraction called significant, mean point estimate, mean interval width in log units) over `trials`.
fn carry_over_trials(true_speedup: f64, trials: u64) -> (f64, f64, f64) {
    let config = simulated_config(Order::Alternating);
    let (mut called, mut points, mut widths) = (0u64, 0.0, 0.0);
    for trial in 0..trials {
        let machine = Rc::new(RefCell::new(CarryOverMachine {
            last_side: None,
            penalty: 0.10,
            noise_sigma: 0.01,
            rng: StdRng::seed_from_u64(90_000 + trial),
        }));
        let mut baseline = CarryOverSide {
            machine: Rc::clone(&machine),
            id: 0,
            per_iteration_ns: 1_000_000.0,
        };
        let mut candidate = CarryOverSide {
            machine,
            id: 1,
            per_iteration_ns: 1_000_000.0 / true_speedup,
        };
        let comparison = compare_sources(&config, &mut baseline, &mut candidate).unwrap();
        called += u64::from(comparison.is_significant());
        points += comparison.speedup.point;
        widths += (comparison.speedup.ci_upper / comparison.speedup.ci_lower).ln();
    }
    let n = trials as f64;
    (called as f64 / n, points / n, widths / n)
}

#[test]
fn abba_blocks_remove_carry_over_from_the_interval() {
    // One call per sample (1 ms), a 10% cold-start penalty for the side that did not run last, 1% noise. Pair
    // by pair the penalty alternates in sign (AB, BA, …) and would be read as ±10% noise; over ABBA blocks
    // it cancels.
    let (false_positives, aa_point, aa_width) = carry_over_trials(1.0, 400);
    let (power, point, width) = carry_over_trials(1.03, 400);
    println!(
        "carry-over 10%: A/A called different {:.1}% (point {aa_point:.4}, width {aa_width:.4}); \
         true 3%: power {:.1}%, point {point:.4}, width {width:.4}",
        100.0 * false_positives,
        100.0 * power
    );
    assert!(
        false_positives <= 0.08,
        "A/A false positives {false_positives}"
    );
    assert!((aa_point - 1.0).abs() < 0.002, "A/A point {aa_point}");
    // The block means carry only the 1% noise: a 3% difference is found nearly always, and the point is
    // unbiased by the penalty, which falls on both sides alike.
    assert!(power >= 0.95, "power for a true 3% speedup {power}");
    assert!((point - 1.03).abs() < 0.002, "point {point}");
    // The interval reflects the noise, not the penalty: ±10% read as noise would make it about 0.09 wide.
    assert!(width < 0.03, "interval width {width}");
}
