//! Property tests: any input gives a typed error or a well-formed result, never a panic, and the
//! intervals are ordered.

use perf_core::compare::{analyse_pairs, mann_whitney, welch_t_test, CompareConfig};
use perf_core::complexity::fit_power_law;
use perf_core::stats::BenchmarkResult;
use perf_core::PerfError;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1.0e9..1.0e9f64,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(42.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn benchmark_result_never_panics(values in proptest::collection::vec(value(), 0..60)) {
        let finite = values.iter().all(|v| v.is_finite());
        match BenchmarkResult::from_values("p", "ns", values.clone()) {
            Ok(result) => {
                prop_assert!(finite && values.len() >= 2);
                prop_assert!(result.min() <= result.median() && result.median() <= result.max());
                prop_assert!(result.ci_lower() <= result.mean() + 1e-6 * result.mean().abs().max(1.0));
                prop_assert!(result.mean() <= result.ci_upper() + 1e-6 * result.mean().abs().max(1.0));
                if let Some((lower, upper)) = result.median_ci() {
                    prop_assert!(lower <= result.median() && result.median() <= upper);
                }
                for percentile in result.percentiles() {
                    if let (Some(lower), Some(upper)) = (percentile.ci_lower, percentile.ci_upper) {
                        prop_assert!(lower <= upper);
                    } else {
                        prop_assert!(percentile.note.is_some());
                    }
                }
                prop_assert_eq!(result.values().len(), values.len());
            }
            Err(PerfError::Empty { .. }) => prop_assert!(values.is_empty()),
            Err(PerfError::InsufficientSamples { .. }) => prop_assert!(values.len() < 2),
            Err(PerfError::NonFinite { .. }) => prop_assert!(!finite),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn comparisons_never_panic(
        a in proptest::collection::vec(0.0..1.0e6f64, 2..40),
        b in proptest::collection::vec(0.0..1.0e6f64, 2..40),
    ) {
        prop_assert!(welch_t_test(&a, &b).is_ok());
        let rank = mann_whitney(&a, &b).unwrap();
        prop_assert!((-1.0..=1.0).contains(&rank.cliffs_delta));
        prop_assert!((0.0..=1.0).contains(&rank.test.p_value));
        let n = a.len().min(b.len());
        let left = BenchmarkResult::from_values("a", "ns", a[..n].to_vec()).unwrap();
        let right = BenchmarkResult::from_values("b", "ns", b[..n].to_vec()).unwrap();
        match analyse_pairs(&left, &right, &CompareConfig::default()) {
            Ok(comparison) => {
                prop_assert!(comparison.speedup.ci_lower <= comparison.speedup.point);
                prop_assert!(comparison.speedup.point <= comparison.speedup.ci_upper);
            }
            Err(PerfError::InvalidInput(_)) => prop_assert!(a[..n].contains(&0.0) || b[..n].contains(&0.0)),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn complexity_fit_never_panics(points in proptest::collection::vec((value(), value()), 0..20)) {
        let (sizes, times): (Vec<f64>, Vec<f64>) = points.into_iter().unzip();
        if let Ok(fit) = fit_power_law(&sizes, &times, 0.95) {
            prop_assert!(fit.exponent_ci.0 <= fit.exponent && fit.exponent <= fit.exponent_ci.1);
        }
    }
}
