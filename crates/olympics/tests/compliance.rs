//! Compliance on edge cases: a bound exactly at the limit, intervals straddling it, no interval; the
//! paired relative target. Every requirement is a perf-core claim judged by `Claim::judge`.

use olympics::{judge_compliance, Compliance, ComplianceSubject};
use perf_core::claim::{Estimate, Verdict};

fn estimate(point: f64, lower: f64, upper: f64) -> Estimate {
    Estimate::new(point, lower, upper, "", 0.95).unwrap()
}

fn subject(latency_ms: (f64, f64, f64), limit_ms: f64) -> ComplianceSubject {
    let (point, lower, upper) = latency_ms;
    ComplianceSubject {
        id: "olympics.event.submission.compliance".into(),
        statement: "submission on event: quality ≥ target and p90 ≤ limit".into(),
        latency_p90_ms: Ok(Estimate::new(point, lower, upper, "ms", 0.95).unwrap()),
        limit_ms,
    }
}

/// Compliance of a p90 latency `(point, lower, upper)` in ms against a 150 ms limit and an accuracy
/// `(point, lower, upper)` against a 0.85 target.
fn judge(latency_ms: (f64, f64, f64), accuracy: (f64, f64, f64)) -> Compliance {
    let (point, lower, upper) = accuracy;
    judge_compliance(
        &subject(latency_ms, 150.0),
        estimate(point, lower, upper),
        0.85,
    )
}

#[test]
fn bounds_exactly_at_the_bar_meet_it() {
    let verdict = judge((120.0, 100.0, 150.0), (0.90, 0.85, 0.95));
    assert_eq!(verdict.quality.verdict, Verdict::Pass);
    assert_eq!(verdict.latency.verdict, Verdict::Pass);
    assert_eq!(verdict.verdict(), Verdict::Pass);
    let result = verdict.claim_result();
    assert_eq!(result.id, "olympics.event.submission.compliance");
    assert_eq!(result.module, "olympics");
    assert_eq!(result.estimate.unwrap().point(), 0.90);
    assert!(result.reason.contains("p90 latency"), "{}", result.reason);
}

#[test]
fn whole_interval_beyond_the_bar_misses_it() {
    // Accuracy interval entirely below the target.
    let verdict = judge((1.0, 0.9, 1.1), (0.80, 0.79, 0.8499));
    assert_eq!(verdict.quality.verdict, Verdict::Fail);
    assert_eq!(verdict.verdict(), Verdict::Fail);
    // Latency lower bound just above the limit.
    let verdict = judge((151.0, 150.0001, 152.0), (0.99, 0.98, 1.0));
    assert_eq!(verdict.latency.verdict, Verdict::Fail);
    assert_eq!(verdict.verdict(), Verdict::Fail);
    // A lower bound exactly at the limit is not beyond it.
    let verdict = judge((151.0, 150.0, 152.0), (0.99, 0.98, 1.0));
    assert_eq!(verdict.latency.verdict, Verdict::Partial);
}

#[test]
fn straddling_intervals_are_partial() {
    let verdict = judge((1.0, 0.9, 1.1), (0.86, 0.84, 0.88));
    assert_eq!(verdict.quality.verdict, Verdict::Partial);
    assert_eq!(verdict.verdict(), Verdict::Partial);
    assert!(verdict.quality.reason.contains("straddles"));
    // The point alone meets the latency limit, the interval does not settle it.
    let verdict = judge((149.0, 140.0, 160.0), (0.99, 0.98, 1.0));
    assert_eq!(verdict.latency.verdict, Verdict::Partial);
    assert_eq!(verdict.verdict(), Verdict::Partial);
}

#[test]
fn a_missed_requirement_outweighs_an_inconclusive_one() {
    let verdict = judge((200.0, 190.0, 210.0), (0.86, 0.84, 0.88));
    assert_eq!(verdict.quality.verdict, Verdict::Partial);
    assert_eq!(verdict.verdict(), Verdict::Fail);
    // And the other way round: a failed quality stays FAIL whatever the latency says.
    let verdict = judge((149.0, 140.0, 160.0), (0.80, 0.79, 0.81));
    assert_eq!(verdict.verdict(), Verdict::Fail);
}

#[test]
fn no_interval_is_inconclusive_even_when_the_point_is_far_inside() {
    let mut no_interval = subject((1.0, 1.0, 1.0), 150.0);
    no_interval.latency_p90_ms = Err("insufficient samples (need ≥ 36)".into());
    let verdict = judge_compliance(&no_interval, estimate(0.99, 0.98, 1.0), 0.85);
    assert_eq!(verdict.latency.verdict, Verdict::Inconclusive);
    assert_eq!(verdict.verdict(), Verdict::Inconclusive);
    assert!(verdict.latency.reason.contains("no interval"));
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
    // Identical predictions: zero, within the Clopper–Pearson bound on the disagreement rate (0 of 4:
    // 1 − 0.025^(1/4) = 0.6024, in points).
    let a = estimate(vec![true, false, true, true]);
    let (point, lower, upper) = paired_accuracy_difference(&a, &a, 0.95).unwrap();
    let bound = 100.0 * (1.0 - 0.025f64.powf(0.25));
    assert_eq!(point, 0.0);
    assert!((lower + bound).abs() < 1e-6 && (upper - bound).abs() < 1e-6);
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
    use olympics::compliance::{judge_compliance_paired, paired_difference, ComplianceSubject};
    use perf_core::claim::{Estimate, Verdict};

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

    /// The quality requirement's verdict and the whole compliance verdict (latency well inside).
    fn verdict(submission: &[bool], baseline: &[bool]) -> (Verdict, Verdict) {
        let difference = paired_difference(submission, baseline, "f32_baseline", 0.95).unwrap();
        let accuracy = submission.iter().filter(|c| **c).count() as f64 / submission.len() as f64;
        let unpaired = Estimate::new(accuracy, accuracy - 0.05, accuracy + 0.05, "", 0.95).unwrap();
        let subject = ComplianceSubject {
            id: "olympics.challenge.submission.compliance".into(),
            statement: "no more than 1 point below f32_baseline".into(),
            latency_p90_ms: Ok(Estimate::new(1.0, 0.9, 1.1, "ms", 0.95).unwrap()),
            limit_ms: 10.0,
        };
        let compliance =
            judge_compliance_paired(&subject, difference, MARGIN, &unpaired, 0.3).unwrap();
        assert_eq!(compliance.margin, Some(MARGIN));
        assert!(compliance.paired.is_some());
        // Judged in percentage points against −margin; the unpaired accuracy is still reported.
        assert_eq!(compliance.quality.threshold, Some(-1.0));
        assert!(compliance.quality.reason.contains("unpaired accuracy"));
        (compliance.quality.verdict, compliance.verdict())
    }

    #[test]
    fn identical_predictions_are_zero_and_compliant() {
        let (submission, baseline) = rows(3_000, 1_050, 0, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert_eq!(difference.difference.mean, 0.0);
        assert_eq!(difference.n_discordant(), 0);
        // Within ± the Clopper–Pearson bound on the disagreement rate, 0 of 3,000: 0.00123.
        assert!(difference.difference.ci_upper < 0.0013);
        assert_eq!(
            verdict(&submission, &baseline),
            (Verdict::Pass, Verdict::Pass)
        );
    }

    #[test]
    fn balanced_disagreements_well_inside_the_margin_are_compliant() {
        // 20 rows lost and 20 gained of 5,000: mean 0, half-width ≈ 1.96 · √(40 / 5000) / √5000 ≈ 0.25 points.
        let (submission, baseline) = rows(5_000, 1_750, 20, 20);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert_eq!(difference.difference.mean, 0.0);
        assert!(-0.004 < difference.difference.ci_lower && difference.difference.ci_lower < 0.0);
        assert_eq!(
            verdict(&submission, &baseline),
            (Verdict::Pass, Verdict::Pass)
        );
    }

    #[test]
    fn clearly_worse_than_the_margin_is_not_compliant() {
        // 150 rows lost of 3,000: −5 points, interval about ±0.8 points.
        let (submission, baseline) = rows(3_000, 1_050, 150, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert!((difference.difference.mean + 0.05).abs() < 1e-12);
        assert!(difference.difference.ci_upper < -MARGIN);
        assert_eq!(
            verdict(&submission, &baseline),
            (Verdict::Fail, Verdict::Fail)
        );
    }

    #[test]
    fn a_difference_at_the_margin_straddles_and_is_partial() {
        // 30 rows lost of 3,000: exactly −1 point, with an interval on both sides of it.
        let (submission, baseline) = rows(3_000, 1_050, 30, 0);
        let difference = paired_difference(&submission, &baseline, "f32_baseline", 0.95).unwrap();
        assert!(
            difference.difference.ci_lower < -MARGIN && -MARGIN <= difference.difference.ci_upper
        );
        assert_eq!(
            verdict(&submission, &baseline),
            (Verdict::Partial, Verdict::Partial)
        );
    }

    #[test]
    fn rows_that_do_not_pair_are_errors() {
        assert!(paired_difference(&[true, false], &[true], "b", 0.95).is_err());
        assert!(paired_difference(&[true], &[true], "b", 0.95).is_err());
        assert!(paired_difference(&[true, true], &[true, true], "b", 1.0).is_err());
    }
}
