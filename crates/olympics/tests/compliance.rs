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
