//! The area under the ROC curve of a score that should rank positives above negatives, its
//! Hanley–McNeil (1982) interval, and DeLong's (1988) paired difference of two scores' AUCs on the same
//! samples.

use super::check_confidence;
use super::distributions::two_sided_normal_critical_value;
use crate::claim::{Estimate, TInference};
use crate::error::PerfError;

/// ROC AUC as the Mann–Whitney statistic: the fraction of (positive, negative) pairs in which the positive
/// scores higher, ties counting one half. "Positive" is the class the score should rank high (an anomaly,
/// a disease); an AUC of 1 separates the classes perfectly, 0.5 is chance.
///
/// `O((n_negative + n_positive) · log n_negative)`: the negatives are sorted once and each positive is
/// placed by binary search.
///
/// # Errors
/// `Empty` when either group is empty; `NonFinite` for a NaN or infinite score.
pub fn roc_auc<T: Copy + Into<f64>>(
    negative_scores: &[T],
    positive_scores: &[T],
) -> Result<f64, PerfError> {
    let negatives: Vec<f64> = negative_scores.iter().map(|&score| score.into()).collect();
    let positives: Vec<f64> = positive_scores.iter().map(|&score| score.into()).collect();
    crate::error::check_finite("ROC AUC negative scores", &negatives)?;
    crate::error::check_finite("ROC AUC positive scores", &positives)?;
    let mut sorted_negatives = negatives;
    sorted_negatives.sort_by(f64::total_cmp);
    let mut wins = 0.0f64;
    for &score in &positives {
        let below = sorted_negatives.partition_point(|&negative| negative < score);
        let not_above = sorted_negatives.partition_point(|&negative| negative <= score);
        wins += below as f64 + 0.5 * (not_above - below) as f64;
    }
    Ok(wins / (sorted_negatives.len() as f64 * positives.len() as f64))
}

/// The two group sizes behind an AUC, named so that they cannot be swapped at a call site: the
/// Hanley–McNeil variance is not symmetric in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AucGroups {
    /// Samples of the class the score should rank high (anomalous, abnormal, diseased).
    pub n_positive: usize,
    /// Samples of the other class (normal).
    pub n_negative: usize,
}

/// Normal-approximation interval on a ROC AUC from the standard error of Hanley & McNeil (1982, eq. 2),
/// clamped to [0, 1]:
///
/// `SE² = [A(1 − A) + (n_positive − 1)(Q1 − A²) + (n_negative − 1)(Q2 − A²)] / (n_positive · n_negative)`
///
/// with `Q1 = A / (2 − A)`, the probability that two random positives both outscore one random negative
/// (so it is weighted by the other positives, `n_positive − 1`), and `Q2 = 2A² / (1 + A)`, the probability
/// that one positive outscores two negatives (weighted by `n_negative − 1`). Both are exact when the scores
/// are exponential in each class and close for other shapes; a simulation in `tests/stats_by_kind.rs`
/// checks the coverage with unequal groups, where swapping the sizes would show.
///
/// # Errors
/// `InvalidInput` for an empty group or an AUC outside [0, 1]; `InvalidConfig` for a bad level.
pub fn hanley_mcneil_interval(
    auc: f64,
    groups: AucGroups,
    confidence: f64,
) -> Result<(f64, f64), PerfError> {
    check_confidence(confidence)?;
    let AucGroups {
        n_positive,
        n_negative,
    } = groups;
    if n_positive == 0 || n_negative == 0 || !(0.0..=1.0).contains(&auc) {
        return Err(PerfError::InvalidInput(format!(
            "Hanley–McNeil interval: AUC {auc} from {n_positive} positive and {n_negative} negative samples"
        )));
    }
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    let (positives, negatives) = (n_positive as f64, n_negative as f64);
    let variance = (auc * (1.0 - auc)
        + (positives - 1.0) * (q1 - auc * auc)
        + (negatives - 1.0) * (q2 - auc * auc))
        / (positives * negatives);
    let half_width = two_sided_normal_critical_value(confidence)? * variance.max(0.0).sqrt();
    Ok(((auc - half_width).max(0.0), (auc + half_width).min(1.0)))
}

/// The paired difference `AUC(a) − AUC(b)` of two scores of the same samples, with the standard error of
/// DeLong, DeLong & Clarke-Pearson (1988): each score's structural components (per positive sample, the
/// share of negatives it outscores; per negative sample, the share of positives that outscore it, ties
/// counting one half), and `Var(AUC_a − AUC_b) = Var(V10_a − V10_b) / n_positive + Var(V01_a − V01_b) /
/// n_negative` from the components' sample variances, so the correlation between the two scores is used.
///
/// The interval uses Student's t with `min(n_positive, n_negative) − 1` degrees of freedom rather than
/// DeLong's normal quantile (slightly wider at small sizes, and it carries a [`TInference`] so Holm gets a
/// p-value); the unit is "AUC". Identical scores give exactly zero with a zero-width interval. Coverage
/// is checked by simulation in this module's tests.
///
/// `O(n_positive · n_negative)`.
///
/// # Errors
/// `InvalidInput` for fewer than 2 samples in a group or groups of different sizes between `a` and `b`;
/// `NonFinite` for a NaN or infinite score; `InvalidConfig` for a bad level.
pub fn delong_paired_difference(
    negative_a: &[f64],
    positive_a: &[f64],
    negative_b: &[f64],
    positive_b: &[f64],
    confidence: f64,
) -> Result<Estimate, PerfError> {
    check_confidence(confidence)?;
    let (n_negative, n_positive) = (negative_a.len(), positive_a.len());
    if n_negative < 2
        || n_positive < 2
        || negative_b.len() != n_negative
        || positive_b.len() != n_positive
    {
        return Err(PerfError::InvalidInput(format!(
            "DeLong needs at least 2 samples per group, paired: {n_negative}/{} negative, {n_positive}/{} positive",
            negative_b.len(),
            positive_b.len()
        )));
    }
    for (what, scores) in [
        ("DeLong negative scores (a)", negative_a),
        ("DeLong positive scores (a)", positive_a),
        ("DeLong negative scores (b)", negative_b),
        ("DeLong positive scores (b)", positive_b),
    ] {
        crate::error::check_finite(what, scores)?;
    }
    let kernel = |positive: f64, negative: f64| {
        if positive > negative {
            1.0
        } else if positive == negative {
            0.5
        } else {
            0.0
        }
    };
    // Structural components: V10 per positive sample, V01 per negative sample.
    let components = |negative: &[f64], positive: &[f64]| {
        let mut v10 = vec![0.0; n_positive];
        let mut v01 = vec![0.0; n_negative];
        for (i, &x) in positive.iter().enumerate() {
            for (j, &y) in negative.iter().enumerate() {
                let psi = kernel(x, y);
                v10[i] += psi;
                v01[j] += psi;
            }
        }
        v10.iter_mut().for_each(|value| *value /= n_negative as f64);
        v01.iter_mut().for_each(|value| *value /= n_positive as f64);
        (v10, v01)
    };
    let (v10_a, v01_a) = components(negative_a, positive_a);
    let (v10_b, v01_b) = components(negative_b, positive_b);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let difference = mean(&v10_a) - mean(&v10_b);
    let variance_of_difference = |a: &[f64], b: &[f64]| {
        let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let centre = mean(&differences);
        differences
            .iter()
            .map(|d| (d - centre).powi(2))
            .sum::<f64>()
            / (differences.len() - 1) as f64
    };
    let variance = variance_of_difference(&v10_a, &v10_b) / n_positive as f64
        + variance_of_difference(&v01_a, &v01_b) / n_negative as f64;
    Estimate::from_t(
        TInference {
            center: difference,
            standard_error: variance.max(0.0).sqrt(),
            degrees_of_freedom: (n_negative.min(n_positive) - 1) as f64,
            log_scale: false,
        },
        "AUC",
        confidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn delong_of_identical_scores_is_exactly_zero_and_bad_input_is_an_error() {
        let negative = [0.1, 0.4, 0.35, 0.2];
        let positive = [0.8, 0.3, 0.9];
        let difference =
            delong_paired_difference(&negative, &positive, &negative, &positive, 0.95).unwrap();
        assert_eq!(
            (difference.point, difference.ci_lower, difference.ci_upper),
            (0.0, 0.0, 0.0)
        );
        assert!(delong_paired_difference(&[0.1], &[0.2, 0.3], &[0.1], &[0.2, 0.3], 0.95).is_err());
        assert!(
            delong_paired_difference(&[0.1, 0.2], &[0.2, 0.3], &[0.1], &[0.2, 0.3], 0.95).is_err()
        );
        assert!(delong_paired_difference(
            &[0.1, 0.2],
            &[0.2, f64::NAN],
            &[0.1, 0.2],
            &[0.2, 0.3],
            0.95
        )
        .is_err());
    }

    /// The point is the difference of the two plain AUCs.
    #[test]
    fn delong_point_is_the_difference_of_the_aucs() {
        let (negative_a, positive_a) = ([0.1, 0.5, 0.3, 0.2, 0.6], [0.4, 0.9, 0.7]);
        let (negative_b, positive_b) = ([0.3, 0.2, 0.8, 0.1, 0.4], [0.5, 0.3, 0.9]);
        let difference =
            delong_paired_difference(&negative_a, &positive_a, &negative_b, &positive_b, 0.95)
                .unwrap();
        let expected =
            roc_auc(&negative_a, &positive_a).unwrap() - roc_auc(&negative_b, &positive_b).unwrap();
        assert!((difference.point - expected).abs() < 1e-12);
        assert!(difference.ci_lower < difference.point && difference.point < difference.ci_upper);
    }

    /// Simulation: two noisy copies of one latent score, equally good, so the true difference is 0; the
    /// nominal 95% interval covered 0 in 96.25% of 400 replications on this seed (the band is the test's
    /// tolerance: about three binomial standard errors).
    #[test]
    fn delong_interval_covers_a_zero_difference_at_its_nominal_rate() {
        let mut rng = StdRng::seed_from_u64(7);
        let (n_negative, n_positive, replications) = (60, 50, 400);
        let mut covered = 0;
        for _ in 0..replications {
            let mut draw = |shift: f64, count: usize| -> (Vec<f64>, Vec<f64>) {
                (0..count)
                    .map(|_| {
                        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
                        let latent = shift + normal();
                        (latent + 0.7 * normal(), latent + 0.7 * normal())
                    })
                    .unzip()
            };
            let (negative_a, negative_b) = draw(0.0, n_negative);
            let (positive_a, positive_b) = draw(1.0, n_positive);
            let difference =
                delong_paired_difference(&negative_a, &positive_a, &negative_b, &positive_b, 0.95)
                    .unwrap();
            covered += usize::from(difference.ci_lower <= 0.0 && 0.0 <= difference.ci_upper);
        }
        let coverage = covered as f64 / replications as f64;
        eprintln!("DeLong paired difference: coverage {coverage} over {replications} replications");
        assert!((0.915..=0.985).contains(&coverage), "coverage {coverage}");
    }
}
