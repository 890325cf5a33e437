//! Unit tests of `compare`: kept beside it so the module file holds only the code.

use super::*;

#[test]
fn welch_matches_a_hand_computed_case() {
    // Means 3 and 6, variances 2.5 and 2.5, n = 5 each: t = -3 / sqrt(1) = -3, df = 8.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let b = [4.0, 5.0, 6.0, 7.0, 8.0];
    let result = welch_t_test(&a, &b).unwrap();
    assert!((result.statistic + 3.0).abs() < 1e-12);
    assert!((result.degrees_of_freedom.unwrap() - 8.0).abs() < 1e-12);
    // Two-sided p for t = 3 with 8 df is 0.01707 (tables).
    assert!(
        (result.p_value - 0.01707).abs() < 1e-4,
        "{}",
        result.p_value
    );
}

#[test]
fn mann_whitney_effect_sizes() {
    let a = [10.0, 11.0, 12.0, 13.0];
    let b = [1.0, 2.0, 3.0, 4.0];
    let result = mann_whitney(&a, &b).unwrap();
    assert_eq!(result.u, 16.0);
    assert_eq!(result.cliffs_delta, 1.0);
    assert_eq!(result.hodges_lehmann_shift, 9.0);
    let same = mann_whitney(&a, &a).unwrap();
    assert_eq!(same.cliffs_delta, 0.0);
    assert!(same.test.p_value > 0.9);
    let flat = mann_whitney(&[1.0, 1.0], &[1.0, 1.0]).unwrap();
    assert_eq!(flat.test.p_value, 1.0);
}

#[test]
fn hodges_lehmann_matches_a_hand_computation_and_resists_one_outlier() {
    // Walsh averages of [1, 2, 4]: 1, 1.5, 2.5, 2, 3, 4 → median 2.25.
    assert!((super::hodges_lehmann(&[1.0, 2.0, 4.0]) - 2.25).abs() < 1e-12);
    assert_eq!(super::hodges_lehmann(&[3.0]), 3.0);
    assert!(super::hodges_lehmann(&[]).is_nan());
    let clean = [0.01, -0.02, 0.0, 0.015, -0.01, 0.005];
    let mut spoiled = clean;
    spoiled[2] = 2.2; // one preempted pair
    let shift = (super::hodges_lehmann(&spoiled) - super::hodges_lehmann(&clean)).abs();
    let mean_shift = 2.2 / 6.0;
    assert!(shift < 0.02 && shift < mean_shift / 10.0, "shift {shift}");
}

#[test]
fn signed_rank_interval_is_robust_to_one_wild_pair() {
    // Twenty pairs around 0 with one enormous outlier: the t-interval is dragged, the
    // Hodges–Lehmann interval still covers 0.
    let mut differences: Vec<f64> = (0..20).map(|i| f64::from(i % 5 - 2) * 0.01).collect();
    differences[7] = 3.0;
    let (estimate, lower, upper) = signed_rank_interval(&differences, 0.95).unwrap();
    assert!(lower <= 0.0 && 0.0 <= upper, "[{lower}, {upper}]");
    assert!(estimate.abs() < 0.02);
    let (mean, _) = mean_and_std(&differences);
    assert!(mean > 0.1, "the mean is dragged by the outlier: {mean}");
    assert!(signed_rank_interval(&differences[..5], 0.95).is_none());
    // n = 10: the exact critical value for 95% is 8 (tables); the normal approximation gives
    // floor(27.5 − 19.23) = 8 as well, so the interval is [W_(9), W_(47)] of 55. Powers of two
    // make every Walsh average distinct, so the ranks are checked exactly.
    let ten: Vec<f64> = (1..=10).map(|i| f64::from(1u32 << i)).collect();
    let (_, lower, upper) = signed_rank_interval(&ten, 0.95).unwrap();
    let mut walsh: Vec<f64> = Vec::new();
    for i in 0..10 {
        for j in i..10 {
            walsh.push((ten[i] + ten[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    assert_eq!((lower, upper), (walsh[8], walsh[46]));
}

#[test]
fn tiny_significant_differences_are_within_noise() {
    // A steady 0.5% difference with almost no noise: significant, but inside ±1%.
    let baseline: Vec<f64> = (0..20).map(|i| 1000.0 + f64::from(i % 3) * 0.1).collect();
    let candidate: Vec<f64> = baseline.iter().map(|v| v / 1.005).collect();
    let a = BenchmarkResult::from_values("a", "ns", baseline.clone()).unwrap();
    let b = BenchmarkResult::from_values("b", "ns", candidate).unwrap();
    let comparison = analyse_pairs(&a, &b, &CompareConfig::default()).unwrap();
    assert!(comparison.is_significant());
    assert!(!comparison.is_meaningful_difference(0.01));
    let faster: Vec<f64> = baseline.iter().map(|v| v / 1.05).collect();
    let c = BenchmarkResult::from_values("c", "ns", faster).unwrap();
    assert!(analyse_pairs(&a, &c, &CompareConfig::default())
        .unwrap()
        .is_meaningful_difference(0.01));
}

#[test]
fn zero_times_are_a_typed_error_for_ratios() {
    let zeros = BenchmarkResult::from_values("z", "ns", vec![0.0; 5]).unwrap();
    let ones = BenchmarkResult::from_values("o", "ns", vec![1.0; 5]).unwrap();
    assert!(matches!(
        analyse_pairs(&zeros, &ones, &CompareConfig::default()),
        Err(PerfError::InvalidInput(_))
    ));
}

#[test]
fn identical_constant_sides_give_a_unit_speedup() {
    let ones = BenchmarkResult::from_values("o", "ns", vec![2.0; 6]).unwrap();
    let comparison = analyse_pairs(&ones, &ones, &CompareConfig::default()).unwrap();
    assert_eq!(comparison.speedup.point, 1.0);
    assert!(!comparison.is_significant());
}
