//! Unit tests of `sample`: kept beside it so the module file holds only the code.

use super::*;

#[test]
fn median_ranks_for_n_10_are_the_textbook_ones() {
    // For n = 10 at 95% the classic distribution-free interval is [x_(2), x_(9)], coverage 97.85%.
    assert_eq!(order_statistic_ranks(10, 0.5, 0.95), Some((2, 9)));
    let coverage = order_statistic_coverage(10, 0.5, (2, 9));
    assert!((coverage - 0.978_515_625).abs() < 1e-9, "{coverage}");
    assert_eq!(order_statistic_ranks(5, 0.5, 0.95), None);
    assert_eq!(min_samples_for_quantile(0.5, 0.95), 6);
}

#[test]
fn interpolated_median_interval_on_one_to_ten() {
    // d = 2 (γ = 0.9785), γ_3 = 0.8906: I = 0.3242, λ = 8I / (2 + 6I) = 0.6576.
    let sorted: Vec<f64> = (1..=10).map(f64::from).collect();
    let (lower, upper) = median_interval(&sorted, 0.95).unwrap();
    assert!((lower - 2.6576).abs() < 1e-3, "{lower}");
    assert!((upper - 8.3424).abs() < 1e-3, "{upper}");
    assert!(median_interval(&sorted[..5], 0.95).is_none());
    let six: Vec<f64> = (1..=6).map(f64::from).collect();
    // n = 6: γ_1 = 0.96875, γ_2 = 0.78125, I = 0.1, λ = 0.5 / 1.4.
    let (lower, upper) = median_interval(&six, 0.95).unwrap();
    assert!((lower - (1.0 + 0.5 / 1.4)).abs() < 1e-12 && (upper - (6.0 - 0.5 / 1.4)).abs() < 1e-12);
}

#[test]
fn tail_percentiles_need_enough_samples() {
    // p90 at 95% needs 0.9^n ≤ 0.025, i.e. n ≥ 36; at 99% (LoadGen's level) 0.9^n ≤ 0.005, n ≥ 51
    // for a two-sided interval (LoadGen's one-sided bound needs 64 for its early-stopping rule).
    assert_eq!(min_samples_for_quantile(0.9, 0.95), 36);
    assert_eq!(min_samples_for_quantile(0.9, 0.99), 51);
    assert_eq!(min_samples_for_quantile(0.99, 0.95), 368);
    // The closed form agrees with a brute-force search over n.
    for (p, confidence) in [(0.5, 0.95), (0.9, 0.9), (0.95, 0.95), (0.25, 0.99)] {
        let brute = (1..1_000)
            .find(|&n| order_statistic_ranks(n, p, confidence).is_some())
            .unwrap();
        assert_eq!(
            min_samples_for_quantile(p, confidence),
            brute,
            "p = {p}, level {confidence}"
        );
    }
    let result = BenchmarkResult::from_values("x", "ns", (0..20).map(f64::from).collect()).unwrap();
    let p90 = result.percentile(90.0).unwrap();
    assert!(p90.ci_lower.is_none());
    assert_eq!(
        p90.note.as_deref(),
        Some("insufficient samples (need ≥ 36)")
    );
}

#[test]
fn summary_statistics_on_a_known_sample() {
    let result =
        BenchmarkResult::from_values("known", "ns", vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
            .unwrap();
    assert_eq!(result.count, 8);
    assert!((result.mean - 5.0).abs() < 1e-12);
    assert!((result.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    assert!((result.median - 4.5).abs() < 1e-12);
    assert_eq!((result.min, result.max), (2.0, 9.0));
    let t = student_t_quantile(0.975, 7.0).unwrap();
    let half_width = t * result.std / 8f64.sqrt();
    assert!((result.ci_upper - result.ci_lower - 2.0 * half_width).abs() < 1e-12);
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(
        BenchmarkResult::from_values("e", "ns", vec![]),
        Err(PerfError::Empty { .. })
    ));
    assert!(matches!(
        BenchmarkResult::from_values("one", "ns", vec![1.0]),
        Err(PerfError::InsufficientSamples { have: 1, .. })
    ));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            BenchmarkResult::from_values("bad", "ns", vec![1.0, bad, 2.0]),
            Err(PerfError::NonFinite { index: 1, .. })
        ));
    }
    assert!(BenchmarkResult::with_confidence("c", "ns", vec![1.0, 2.0], 1.0).is_err());
}

#[test]
fn all_equal_and_zero_values_are_defined() {
    for constant in [0.0, 3.5] {
        let result = BenchmarkResult::from_values("flat", "ns", vec![constant; 12]).unwrap();
        assert_eq!(result.std, 0.0);
        assert_eq!((result.ci_lower, result.ci_upper), (constant, constant));
        assert_eq!(result.median_ci, Some((constant, constant)));
        assert_eq!(result.cv, 0.0);
        assert!(!result.shape.skewed && !result.shape.bimodal);
        assert_eq!(result.outliers.tukey_outlier_indices.len(), 0);
        assert_eq!(result.effective_sample_size, 12.0);
    }
}

#[test]
fn outliers_are_classified_not_dropped() {
    let mut values: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 5)).collect();
    values.push(1_000.0);
    let result = BenchmarkResult::from_values("o", "ns", values.clone()).unwrap();
    assert_eq!(result.count, values.len());
    assert_eq!(result.outliers.high_severe, 1);
    assert_eq!(result.outliers.tukey_outlier_indices, vec![30]);
    assert_eq!(result.outliers.mad_outliers, 1);
    assert!(result.shape.skewed);
}

#[test]
fn serializes_with_the_seed_field_names() {
    let result = BenchmarkResult::from_values("s", "ns", vec![1.0, 2.0, 3.0]).unwrap();
    let json = serde_json::to_value(&result).unwrap();
    for key in [
        "metric_name",
        "values",
        "mean",
        "std",
        "median",
        "min",
        "max",
        "count",
        "ci_lower",
        "ci_upper",
        "metadata",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    let back: BenchmarkResult = serde_json::from_value(json).unwrap();
    assert_eq!(back, result);
}
