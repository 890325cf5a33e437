//! The area under the ROC curve of a score that should rank positives above negatives, and its
//! Hanley–McNeil (1982) interval.

use super::check_confidence;
use super::distributions::two_sided_normal_critical_value;
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
