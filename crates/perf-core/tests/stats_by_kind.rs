//! The statistics of `perf_core::stats` by kind (proportions, AUC, paired, ratio, distributions,
//! classification), each checked once against reference values and, where it is an interval, by a seeded
//! simulation of its coverage.
//!
//! The reference values were computed with scipy 1.17.1 and statsmodels 0.15.0 (Python 3, in a scratch
//! virtual environment); each test quotes the call. The simulations state their error rates.

use perf_core::stats::{
    argmax, binomial_interval, cross_entropy, hanley_mcneil_interval, paired_proportion_difference,
    ratio_of_sums, roc_auc, standard_normal_quantile, two_sided_normal_critical_value,
    wilson_interval, AucGroups,
};
use perf_core::PerfError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};

fn assert_close(got: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: got {got}, reference {expected}"
    );
}

// ---- distributions ------------------------------------------------------------------------------------

#[test]
fn standard_normal_quantile_matches_scipy() {
    // scipy.stats.norm.ppf(0.975) = 1.959963984540054, norm.ppf(0.995) = 2.5758293035489004,
    // norm.ppf(0.1) = -1.2815515655446004.
    assert_close(
        standard_normal_quantile(0.975).unwrap(),
        1.959963984540054,
        1e-9,
        "z 0.975",
    );
    assert_close(
        standard_normal_quantile(0.995).unwrap(),
        2.5758293035489004,
        1e-9,
        "z 0.995",
    );
    assert_close(
        standard_normal_quantile(0.1).unwrap(),
        -1.2815515655446004,
        1e-9,
        "z 0.1",
    );
    assert_close(
        two_sided_normal_critical_value(0.99).unwrap(),
        2.5758293035489004,
        1e-9,
        "z 99%",
    );
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(standard_normal_quantile(bad).is_err(), "p = {bad}");
        assert!(
            two_sided_normal_critical_value(bad).is_err(),
            "confidence = {bad}"
        );
    }
}

// ---- proportions --------------------------------------------------------------------------------------

#[test]
fn wilson_matches_statsmodels() {
    // statsmodels.stats.proportion.proportion_confint(k, n, alpha=0.05, method="wilson"):
    //   81/263 → (0.2552885198782742, 0.36620957698280004)  (also Newcombe 1998, Table I: 0.2553-0.3662)
    //   0/10   → (0.0, 0.27753279986288926);  10/10 → (0.7224672001371106, 1.0)
    //   7/20   → (0.18119182410108203, 0.5671457233147638); at alpha=0.10 (0.202260040056761, 0.5334873111515284)
    let cases = [
        (81, 263, 0.95, 0.2552885198782742, 0.36620957698280004),
        (0, 10, 0.95, 0.0, 0.27753279986288926),
        (10, 10, 0.95, 0.7224672001371106, 1.0),
        (7, 20, 0.95, 0.18119182410108203, 0.5671457233147638),
        (7, 20, 0.90, 0.202260040056761, 0.5334873111515284),
    ];
    for (successes, trials, confidence, lower, upper) in cases {
        let (got_lower, got_upper) = wilson_interval(successes, trials, confidence).unwrap();
        assert_close(
            got_lower,
            lower,
            1e-9,
            &format!("Wilson {successes}/{trials} lower"),
        );
        assert_close(
            got_upper,
            upper,
            1e-9,
            &format!("Wilson {successes}/{trials} upper"),
        );
    }
    // Clopper–Pearson beside it: proportion_confint(7, 20, method="beta") → (0.15390920478454118,
    // 0.5921885345328282), wider than Wilson as an exact interval must be.
    let (lower, upper) = binomial_interval(7, 20, 0.95).unwrap();
    assert_close(
        lower,
        0.15390920478454118,
        1e-7,
        "Clopper–Pearson 7/20 lower",
    );
    assert_close(
        upper,
        0.5921885345328282,
        1e-7,
        "Clopper–Pearson 7/20 upper",
    );
    assert!(wilson_interval(0, 0, 0.95).is_err());
    assert!(wilson_interval(3, 2, 0.95).is_err());
    assert!(wilson_interval(1, 2, 1.0).is_err());
    assert!(wilson_interval(1, 2, f64::NAN).is_err());
}

/// 2,000 simulated binomial experiments per (n, p); the nominal 95% interval must contain p in 92-98.5% of
/// them: Wilson's coverage oscillates around nominal (dipping to about 93% at some n·p), and 2,000 trials
/// add a standard error of about 0.5 percentage points, so a correct interval fails this with a
/// probability well under 1%.
#[test]
fn wilson_covers_about_95_percent_by_simulation() {
    let mut rng = StdRng::seed_from_u64(2024);
    for (n, p) in [(30u64, 0.9f64), (300, 0.95), (1000, 0.5), (100, 0.97)] {
        let n_trials = 2_000;
        let mut covered = 0;
        for _ in 0..n_trials {
            let successes = (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
            let (lower, upper) = wilson_interval(successes, n, 0.95).unwrap();
            covered += usize::from(lower <= p && p <= upper);
        }
        let coverage = covered as f64 / n_trials as f64;
        assert!(
            (0.92..=0.985).contains(&coverage),
            "n={n} p={p}: coverage {coverage}"
        );
    }
}

// ---- ROC AUC ------------------------------------------------------------------------------------------

#[test]
fn roc_auc_is_the_mann_whitney_statistic() {
    // scipy.stats.mannwhitneyu(positive, negative).statistic = 13.5 for these scores (two ties at 0.4,
    // one at 0.35), so AUC = 13.5 / (4 · 5) = 0.675.
    let negative = [0.1f32, 0.4, 0.35, 0.8, 0.4];
    let positive = [0.4f32, 0.9, 0.6, 0.35];
    assert_close(roc_auc(&negative, &positive).unwrap(), 0.675, 1e-12, "AUC");
    assert_eq!(roc_auc(&[0.1f32, 0.2], &[0.3, 0.4]).unwrap(), 1.0);
    assert_eq!(roc_auc(&[0.3f64, 0.4], &[0.1, 0.2]).unwrap(), 0.0);
    assert_eq!(roc_auc(&[0.5f32, 0.5], &[0.5]).unwrap(), 0.5);
    assert!(matches!(
        roc_auc::<f32>(&[], &[0.1]),
        Err(PerfError::Empty { .. })
    ));
    assert!(matches!(
        roc_auc(&[f32::NAN], &[0.1]),
        Err(PerfError::NonFinite { .. })
    ));
}

#[test]
fn hanley_mcneil_matches_equation_2() {
    // Hanley & McNeil (1982), eq. 2, evaluated in Python: A = 0.9, 50 + 50 → SE 0.03212386315081136;
    // A = 0.75 with 40 positives and 400 negatives → SE 0.045902410067446366, 95% interval
    // (0.6600329294642163, 0.8399670705357837); the sizes swapped (400 positives, 40 negatives) → SE
    // 0.03380451945693483.
    let groups = |n_positive, n_negative| AucGroups {
        n_positive,
        n_negative,
    };
    let (lower, upper) = hanley_mcneil_interval(0.9, groups(50, 50), 0.95).unwrap();
    assert_close(
        (upper - lower) / (2.0 * 1.959963984540054),
        0.03212386315081136,
        1e-12,
        "SE at 0.9",
    );
    let (lower, upper) = hanley_mcneil_interval(0.75, groups(40, 400), 0.95).unwrap();
    assert_close(lower, 0.6600329294642163, 1e-12, "lower");
    assert_close(upper, 0.8399670705357837, 1e-12, "upper");
    let (lower, upper) = hanley_mcneil_interval(0.75, groups(400, 40), 0.95).unwrap();
    assert_close(
        (upper - lower) / (2.0 * 1.959963984540054),
        0.03380451945693483,
        1e-12,
        "SE with the sizes swapped",
    );
    assert_eq!(
        hanley_mcneil_interval(1.0, groups(10, 10), 0.95).unwrap().1,
        1.0
    );
    assert!(hanley_mcneil_interval(0.5, groups(0, 10), 0.95).is_err());
    assert!(hanley_mcneil_interval(1.5, groups(10, 10), 0.95).is_err());
    assert!(hanley_mcneil_interval(0.5, groups(10, 10), 1.0).is_err());
}

/// Coverage of the Hanley–McNeil 95% interval with unequal groups, where the formula's asymmetry matters.
/// Negatives ~ Exp(1), positives ~ Exp(rate μ) with μ = 1/A − 1, so P(positive > negative) = 1/(1 + μ) = A
/// exactly and Q1 = A/(2 − A), Q2 = 2A²/(1 + A) hold exactly (the model Hanley & McNeil derived them in).
/// 2,000 replicates per design: a standard error of 0.5 points on the coverage. With the sizes in their
/// places the coverage is 93-97%; with them swapped the interval is 26% too narrow (SE 0.0338 instead of
/// 0.0459 at 40 positives / 400 negatives) and covers about 85%, which the test requires to show.
#[test]
fn hanley_mcneil_covers_at_the_nominal_rate_and_swapped_sizes_do_not() {
    let mut rng = StdRng::seed_from_u64(19_820_401);
    let auc = 0.75;
    let negative_distribution = Exp::new(1.0).unwrap();
    let positive_distribution = Exp::new(1.0 / auc - 1.0).unwrap();
    for (n_positive, n_negative) in [(40usize, 400usize), (400, 40)] {
        let replicates = 2_000;
        let (mut covered, mut covered_swapped) = (0usize, 0usize);
        for _ in 0..replicates {
            let negatives: Vec<f64> = (0..n_negative)
                .map(|_| negative_distribution.sample(&mut rng))
                .collect();
            let positives: Vec<f64> = (0..n_positive)
                .map(|_| positive_distribution.sample(&mut rng))
                .collect();
            let estimate = roc_auc(&negatives, &positives).unwrap();
            let right = AucGroups {
                n_positive,
                n_negative,
            };
            let swapped = AucGroups {
                n_positive: n_negative,
                n_negative: n_positive,
            };
            let (lower, upper) = hanley_mcneil_interval(estimate, right, 0.95).unwrap();
            covered += usize::from(lower <= auc && auc <= upper);
            let (lower, upper) = hanley_mcneil_interval(estimate, swapped, 0.95).unwrap();
            covered_swapped += usize::from(lower <= auc && auc <= upper);
        }
        let coverage = covered as f64 / replicates as f64;
        let coverage_swapped = covered_swapped as f64 / replicates as f64;
        eprintln!(
            "Hanley–McNeil, {n_positive} positives / {n_negative} negatives: coverage {coverage:.4}, sizes swapped {coverage_swapped:.4}"
        );
        assert!(
            (0.93..=0.97).contains(&coverage),
            "{n_positive} positives, {n_negative} negatives: coverage {coverage}"
        );
        assert!(
            !(0.90..=0.985).contains(&coverage_swapped),
            "{n_positive} positives, {n_negative} negatives: swapped sizes cover {coverage_swapped}"
        );
    }
}

// ---- paired proportions -------------------------------------------------------------------------------

#[test]
fn paired_difference_matches_a_one_sample_t_test() {
    // 40 rows: 30 both right, 5 only the second right, 3 only the first right, 2 both wrong. The per-row
    // differences d = first − second; scipy.stats.ttest_1samp(d, 0).confidence_interval(0.95) →
    // (-0.19393975905225552, 0.0939397590522555), mean -0.05, standard error 0.07116250813527136.
    let mut first = vec![true; 30];
    let mut second = vec![true; 30];
    first.extend([false; 5]);
    second.extend([true; 5]);
    first.extend([true; 3]);
    second.extend([false; 3]);
    first.extend([false; 2]);
    second.extend([false; 2]);
    let difference = paired_proportion_difference(&first, &second, 0.95).unwrap();
    assert_eq!(
        (
            difference.n,
            difference.n_first_only,
            difference.n_second_only
        ),
        (40, 3, 5)
    );
    assert_eq!(difference.n_discordant(), 8);
    assert_close(difference.mean, -0.05, 1e-15, "mean");
    assert_close(difference.ci_lower, -0.19393975905225552, 1e-9, "lower");
    assert_close(difference.ci_upper, 0.0939397590522555, 1e-9, "upper");
    let inference = difference.inference.unwrap();
    assert_close(inference.standard_error, 0.07116250813527136, 1e-12, "SE");
    // As a claim estimate in percentage points, with the t-inference kept for Holm.
    let estimate = difference.estimate(100.0, "points").unwrap();
    assert_close(estimate.point(), -5.0, 1e-12, "points");
    assert_close(
        estimate.ci_lower(),
        -19.393975905225552,
        1e-7,
        "points lower",
    );
    assert!(estimate.inference().is_some());
}

#[test]
fn paired_difference_without_spread_uses_the_clopper_pearson_bound() {
    // Identical predictions on 3,000 rows: mean 0, and the rate of rows that could differ is bounded by
    // proportion_confint(0, 3000, method="beta")[1] = 0.001228870803825512 (statsmodels).
    let rows: Vec<bool> = (0..3_000).map(|row| row % 3 == 0).collect();
    let difference = paired_proportion_difference(&rows, &rows, 0.95).unwrap();
    assert_eq!(difference.mean, 0.0);
    assert_close(difference.ci_upper, 0.001228870803825512, 1e-9, "upper");
    assert_close(difference.ci_lower, -0.001228870803825512, 1e-9, "lower");
    assert!(difference.inference.is_none());
    // The first right on every row the second gets wrong, 40 of 40: mean 1, interval [1 − 2u, 1] with
    // u = proportion_confint(0, 40, method="beta")[1] = 0.0880973028788024.
    let difference = paired_proportion_difference(&[true; 40], &[false; 40], 0.95).unwrap();
    assert_eq!((difference.mean, difference.ci_upper), (1.0, 1.0));
    assert_close(
        difference.ci_lower,
        1.0 - 2.0 * 0.0880973028788024,
        1e-9,
        "lower",
    );
    assert!(paired_proportion_difference(&[true, false], &[true], 0.95).is_err());
    assert!(paired_proportion_difference(&[true], &[true], 0.95).is_err());
    assert!(paired_proportion_difference(&[true, true], &[true, true], 1.0).is_err());
    assert!(paired_proportion_difference(&[true, true], &[true, true], f64::NAN).is_err());
}

/// The paired interval covers the true mean difference about 95% of the time when a few percent of the
/// rows are discordant (the regime of the Olympics challenge and of quantized models). 600 replicates: the
/// standard error of the coverage is about 0.9 points, so [0.92, 0.98] fails only for a real
/// miscalibration (a correct interval fails it with probability about 0.1%).
#[test]
fn paired_interval_covers_at_the_nominal_rate() {
    let mut rng = StdRng::seed_from_u64(20_261_123);
    let (n, p_first_only, p_second_only) = (2_000, 0.02, 0.03);
    let truth = p_first_only - p_second_only;
    let replicates = 600;
    let mut covered = 0;
    for _ in 0..replicates {
        let mut first = Vec::with_capacity(n);
        let mut second = Vec::with_capacity(n);
        for _ in 0..n {
            let draw: f64 = rng.random();
            let (a, b) = if draw < p_first_only {
                (true, false)
            } else if draw < p_first_only + p_second_only {
                (false, true)
            } else {
                let both = rng.random_bool(0.35);
                (both, both)
            };
            first.push(a);
            second.push(b);
        }
        let difference = paired_proportion_difference(&first, &second, 0.95).unwrap();
        covered += usize::from(difference.ci_lower <= truth && truth <= difference.ci_upper);
    }
    let coverage = covered as f64 / replicates as f64;
    assert!((0.92..=0.98).contains(&coverage), "coverage {coverage}");
}

// ---- ratio --------------------------------------------------------------------------------------------

#[test]
fn ratio_of_sums_matches_the_delta_method_by_hand() {
    // numpy: R = Σx/Σy, r = x − R·y, se = sqrt(Σr² / (n(n−1))) / mean(y), t = scipy.stats.t.ppf(0.975, 5):
    // R = 0.6295081967213114, se = 0.02714620188683024, 95% (0.5597266632445094, 0.6992897301981135).
    let numerators = [3.1, 2.0, 4.4, 3.9, 2.5, 3.3];
    let denominators = [5.0, 3.9, 6.1, 6.3, 4.2, 5.0];
    let ratio = ratio_of_sums(&numerators, &denominators, 0.95).unwrap();
    assert_close(ratio.ratio, 0.6295081967213114, 1e-12, "ratio");
    assert_close(ratio.standard_error, 0.02714620188683024, 1e-12, "SE");
    assert_close(ratio.ci_lower, 0.5597266632445094, 1e-9, "lower");
    assert_close(ratio.ci_upper, 0.6992897301981135, 1e-9, "upper");
    let exact = ratio_of_sums(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], 0.95).unwrap();
    assert!((exact.ratio - 2.0).abs() < 1e-12 && (exact.ci_upper - exact.ci_lower).abs() < 1e-12);
    assert!(ratio_of_sums(&[1.0], &[1.0], 0.95).is_err());
    assert!(ratio_of_sums(&[1.0, f64::NAN], &[1.0, 1.0], 0.95).is_err());
    assert!(ratio_of_sums(&[1.0, 2.0], &[1.0], 0.95).is_err());
    assert!(ratio_of_sums(&[1.0, 2.0], &[-1.0, 0.5], 0.95).is_err());
}

/// Pairs with true ratio 0.6 and 60 units: the 95% interval must cover 0.6 in 920-975 of 1,000 replicates
/// (binomial standard error 0.7 points; a correct interval fails this with probability under 1%).
#[test]
fn ratio_of_sums_covers_by_simulation() {
    let mut rng = StdRng::seed_from_u64(7);
    let trials = 1_000;
    let mut covered = 0;
    for _ in 0..trials {
        let denominators: Vec<f64> = (0..60).map(|_| rng.random_range(2.0..4.0)).collect();
        let numerators: Vec<f64> = denominators
            .iter()
            .map(|denominator| 0.6 * denominator + rng.random_range(-0.5..0.5))
            .collect();
        let ratio = ratio_of_sums(&numerators, &denominators, 0.95).unwrap();
        covered += usize::from(ratio.ci_lower <= 0.6 && 0.6 <= ratio.ci_upper);
    }
    assert!((920..=975).contains(&covered), "{covered} of {trials}");
}

// ---- classification -----------------------------------------------------------------------------------

#[test]
fn argmax_and_cross_entropy_match_numpy_and_scipy() {
    // numpy.argmax([0, 2, 2, 1]) = 1: the first of tied maxima.
    assert_eq!(argmax([0.0f32, 2.0, 2.0, 1.0]), Some(1));
    assert_eq!(argmax([f32::NAN, -1.0, f32::NAN]), Some(1));
    assert_eq!(argmax(std::iter::empty::<f32>()), None);
    assert_eq!(argmax([f32::NAN]), None);
    // scipy.special.logsumexp([2, -1, 0.5, 3]) - 0.5 = 2.8840917012886904; and for [1000, 0, -1000]
    // against class 1, 1000.0 (no overflow).
    assert_close(
        cross_entropy([2.0f32, -1.0, 0.5, 3.0], 2).unwrap(),
        2.8840917012886904,
        1e-12,
        "cross-entropy",
    );
    assert_close(
        cross_entropy([1000.0f32, 0.0, -1000.0], 1).unwrap(),
        1000.0,
        1e-9,
        "large logits",
    );
    assert!(matches!(
        cross_entropy([1.0f32, 2.0], 2),
        Err(PerfError::InvalidInput(_))
    ));
    assert!(matches!(
        cross_entropy([1.0f32, f32::INFINITY], 0),
        Err(PerfError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        cross_entropy(std::iter::empty::<f32>(), 0),
        Err(PerfError::Empty { .. })
    ));
}
