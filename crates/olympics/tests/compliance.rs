//! Compliance on edge cases: a bound exactly at the limit, intervals straddling it, no interval.

use olympics::{judge_compliance, ComplianceStatus, Interval, Requirement};

fn interval(point: f64, lower: f64, upper: f64) -> Interval {
    Interval {
        point,
        bounds: Some((lower, upper)),
    }
}

#[test]
fn bounds_exactly_at_the_bar_meet_it() {
    let verdict = judge_compliance(
        interval(0.90, 0.85, 0.95),
        0.85,
        interval(120.0, 100.0, 150.0),
        150.0,
    );
    assert_eq!(verdict.quality, Requirement::Met);
    assert_eq!(verdict.latency, Requirement::Met);
    assert_eq!(verdict.status, ComplianceStatus::Compliant);
    assert_eq!(verdict.reasons.len(), 2);
}

#[test]
fn whole_interval_beyond_the_bar_misses_it() {
    // Accuracy interval entirely below the target.
    let verdict = judge_compliance(
        interval(0.80, 0.79, 0.8499),
        0.85,
        interval(1.0, 0.9, 1.1),
        150.0,
    );
    assert_eq!(verdict.quality, Requirement::Missed);
    assert_eq!(verdict.status, ComplianceStatus::NotCompliant);
    // Latency lower bound just above the limit.
    let verdict = judge_compliance(
        interval(0.99, 0.98, 1.0),
        0.85,
        interval(151.0, 150.0001, 152.0),
        150.0,
    );
    assert_eq!(verdict.latency, Requirement::Missed);
    assert_eq!(verdict.status, ComplianceStatus::NotCompliant);
    // A lower bound exactly at the limit is not beyond it.
    let verdict = judge_compliance(
        interval(0.99, 0.98, 1.0),
        0.85,
        interval(151.0, 150.0, 152.0),
        150.0,
    );
    assert_eq!(verdict.latency, Requirement::Inconclusive);
}

#[test]
fn straddling_intervals_are_inconclusive() {
    let verdict = judge_compliance(
        interval(0.86, 0.84, 0.88),
        0.85,
        interval(1.0, 0.9, 1.1),
        150.0,
    );
    assert_eq!(verdict.quality, Requirement::Inconclusive);
    assert_eq!(verdict.status, ComplianceStatus::Inconclusive);
    assert!(verdict.reasons[0].contains("straddles"));
    // The point alone meets the latency limit, the interval does not settle it.
    let verdict = judge_compliance(
        interval(0.99, 0.98, 1.0),
        0.85,
        interval(149.0, 140.0, 160.0),
        150.0,
    );
    assert_eq!(verdict.latency, Requirement::Inconclusive);
    assert_eq!(verdict.status, ComplianceStatus::Inconclusive);
}

#[test]
fn a_missed_requirement_outweighs_an_inconclusive_one() {
    let verdict = judge_compliance(
        interval(0.86, 0.84, 0.88),
        0.85,
        interval(200.0, 190.0, 210.0),
        150.0,
    );
    assert_eq!(verdict.status, ComplianceStatus::NotCompliant);
}

#[test]
fn no_interval_is_inconclusive_even_when_the_point_is_far_inside() {
    let verdict = judge_compliance(
        interval(0.99, 0.98, 1.0),
        0.85,
        Interval {
            point: 1.0,
            bounds: None,
        },
        150.0,
    );
    assert_eq!(verdict.latency, Requirement::Inconclusive);
    assert!(verdict.reasons[1].contains("no interval"));
}

#[test]
fn paired_accuracy_difference_uses_the_same_rows() {
    use olympics::referee::{paired_accuracy_difference, QualityEstimate};
    let estimate = |correct: Vec<bool>| QualityEstimate {
        metric: olympics::QualityMetric::Top1Accuracy,
        point: correct.iter().filter(|c| **c).count() as f64 / correct.len() as f64,
        ci_lower: 0.0,
        ci_upper: 1.0,
        confidence: 0.95,
        n: correct.len(),
        successes: None,
        method: String::new(),
        mean_loss_nats: None,
        full_split: true,
        per_row_correct: correct,
    };
    // Identical predictions: an exact zero.
    let a = estimate(vec![true, false, true, true]);
    assert_eq!(
        paired_accuracy_difference(&a, &a, 0.95),
        Some((0.0, 0.0, 0.0))
    );
    // One row of 100 flips to wrong: −1 point, interval containing it and below +1.
    let mut rows = vec![true; 100];
    let baseline = estimate(rows.clone());
    rows[3] = false;
    let worse = estimate(rows);
    let (point, lower, upper) = paired_accuracy_difference(&worse, &baseline, 0.95).unwrap();
    assert!((point + 1.0).abs() < 1e-12);
    assert!(lower < point && point < upper && upper < 1.0);
    // Different row counts cannot be paired.
    assert_eq!(paired_accuracy_difference(&a, &baseline, 0.95), None);
}

mod paired {
    use olympics::compliance::{judge_compliance_paired, judge_non_inferior, paired_difference};
    use olympics::{ComplianceStatus, Interval, Requirement};
    use rand::{Rng, SeedableRng};

    const MARGIN: f64 = 0.01;

    /// Baseline right on the first `n_right` of `n` rows; the submission flips `lost` of those to wrong and
    /// `gained` of the wrong ones to right.
    fn rows(n: usize, n_right: usize, lost: usize, gained: usize) -> (Vec<bool>, Vec<bool>) {
        let baseline: Vec<bool> = (0..n).map(|row| row < n_right).collect();
        let mut submission = baseline.clone();
        for slot in submission.iter_mut().take(lost) {
            *slot = false;
        }
        for slot in submission.iter_mut().skip(n_right).take(gained) {
            *slot = true;
        }
        (submission, baseline)
    }

    fn verdict(submission: &[bool], baseline: &[bool]) -> (Requirement, ComplianceStatus) {
        let difference = paired_difference(submission, baseline, "f32_baseline", 0.95).unwrap();
        let requirement = judge_non_inferior(&difference, MARGIN);
        let accuracy = submission.iter().filter(|c| **c).count() as f64 / submission.len() as f64;
        let unpaired = Interval {
            point: accuracy,
            bounds: Some((accuracy - 0.05, accuracy + 0.05)),
        };
        let fast = Interval {
            point: 1.0,
            bounds: Some((0.9, 1.1)),
        };
        let compliance = judge_compliance_paired(difference, MARGIN, unpaired, 0.3, fast, 10.0);
        assert_eq!(compliance.quality, requirement);
        assert_eq!(compliance.margin, Some(MARGIN));
        assert!(compliance.paired.is_some());
        // The unpaired accuracy is still reported.
        assert!(compliance.reasons[1].contains("unpaired accuracy"));
        (requirement, compliance.status)
    }

    #[test]
    fn identical_predictions_are_exactly_zero_and_compliant() {
        let (submission, baseline) = rows(3_000, 1_050, 0, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert_eq!(difference.mean, 0.0);
        assert_eq!((difference.ci_lower, difference.ci_upper), (0.0, 0.0));
        assert_eq!(difference.n_discordant(), 0);
        assert_eq!(
            verdict(&submission, &baseline),
            (Requirement::Met, ComplianceStatus::Compliant)
        );
    }

    #[test]
    fn balanced_disagreements_well_inside_the_margin_are_compliant() {
        // 20 rows lost and 20 gained of 5,000: mean 0, half-width ≈ 1.96 · √(40 / 5000) / √5000 ≈ 0.25 points.
        let (submission, baseline) = rows(5_000, 1_750, 20, 20);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert_eq!(difference.mean, 0.0);
        assert!(-0.004 < difference.ci_lower && difference.ci_lower < 0.0);
        assert_eq!(
            verdict(&submission, &baseline),
            (Requirement::Met, ComplianceStatus::Compliant)
        );
    }

    #[test]
    fn clearly_worse_than_the_margin_is_not_compliant() {
        // 150 rows lost of 3,000: −5 points, interval about ±0.8 points.
        let (submission, baseline) = rows(3_000, 1_050, 150, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert!((difference.mean + 0.05).abs() < 1e-12);
        assert!(difference.ci_upper < -MARGIN);
        assert_eq!(
            verdict(&submission, &baseline),
            (Requirement::Missed, ComplianceStatus::NotCompliant)
        );
    }

    #[test]
    fn a_difference_at_the_margin_straddles_and_is_inconclusive() {
        // 30 rows lost of 3,000: exactly −1 point, with an interval on both sides of it.
        let (submission, baseline) = rows(3_000, 1_050, 30, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert!(difference.ci_lower < -MARGIN && -MARGIN <= difference.ci_upper);
        assert_eq!(
            verdict(&submission, &baseline),
            (Requirement::Inconclusive, ComplianceStatus::Inconclusive)
        );
    }

    #[test]
    fn rows_that_do_not_pair_are_errors() {
        assert!(paired_difference(&[true, false], &[true], "b", 0.95).is_err());
        assert!(paired_difference(&[true], &[true], "b", 0.95).is_err());
        assert!(paired_difference(&[true, true], &[true, true], "b", 1.0).is_err());
        assert!(paired_difference(&[true, true], &[true, true], "b", f64::NAN).is_err());
    }

    /// The paired interval covers the true mean difference about 95% of the time when a few percent of the
    /// rows are discordant (the regime of the challenge). 600 replicates: the standard error of the
    /// coverage is about 0.9 points, so [0.92, 0.98] fails only for a real miscalibration.
    #[test]
    fn paired_interval_covers_at_the_nominal_rate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_123);
        let (n, p_submission_only, p_baseline_only) = (2_000, 0.02, 0.03);
        let truth = p_submission_only - p_baseline_only;
        let replicates = 600;
        let mut covered = 0;
        for _ in 0..replicates {
            let mut submission = Vec::with_capacity(n);
            let mut baseline = Vec::with_capacity(n);
            for _ in 0..n {
                let draw: f64 = rng.random();
                let (s, b) = if draw < p_submission_only {
                    (true, false)
                } else if draw < p_submission_only + p_baseline_only {
                    (false, true)
                } else {
                    let both = rng.random_bool(0.35);
                    (both, both)
                };
                submission.push(s);
                baseline.push(b);
            }
            let difference = paired_difference(&submission, &baseline, "b", 0.95).unwrap();
            covered += usize::from(difference.ci_lower <= truth && truth <= difference.ci_upper);
        }
        let coverage = covered as f64 / replicates as f64;
        assert!((0.92..=0.98).contains(&coverage), "coverage {coverage}");
    }
}
