//! Held-out quality measures with their sample sizes and intervals.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::models::Classifier;
use crate::ZooError;

/// A proportion estimated from `n` independent trials, with a Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProportionEstimate {
    /// Number of successes (e.g. correct predictions).
    pub successes: usize,
    /// Number of trials (evaluation samples).
    pub n: usize,
    /// `successes / n`.
    pub point: f64,
    /// Lower end of the interval.
    pub ci_lower: f64,
    /// Upper end of the interval.
    pub ci_upper: f64,
    /// Nominal coverage of the interval, e.g. 0.95.
    pub confidence: f64,
}

impl ProportionEstimate {
    /// The estimate for `successes` out of `n` with a Wilson score interval at `confidence`.
    ///
    /// # Errors
    /// [`ZooError::InvalidArgument`] if `n` is zero, `successes > n`, or `confidence` is not inside (0, 1).
    pub fn wilson(successes: usize, n: usize, confidence: f64) -> Result<Self, ZooError> {
        let (ci_lower, ci_upper) = wilson_interval(successes, n, confidence)?;
        Ok(ProportionEstimate {
            successes,
            n,
            point: successes as f64 / n as f64,
            ci_lower,
            ci_upper,
            confidence,
        })
    }
}

impl std::fmt::Display for ProportionEstimate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:.2}% ({}/{}, {:.0}% Wilson CI {:.2}-{:.2}%)",
            100.0 * self.point,
            self.successes,
            self.n,
            100.0 * self.confidence,
            100.0 * self.ci_lower,
            100.0 * self.ci_upper
        )
    }
}

/// The Wilson score interval for a binomial proportion (Wilson 1927): good coverage even near 0 and 1 and
/// for small `n`, unlike the normal-approximation (Wald) interval.
///
/// # Errors
/// [`ZooError::InvalidArgument`] if `n` is zero, `successes > n`, or `confidence` is not inside (0, 1).
pub fn wilson_interval(
    successes: usize,
    n: usize,
    confidence: f64,
) -> Result<(f64, f64), ZooError> {
    if n == 0 || successes > n {
        return Err(ZooError::InvalidArgument {
            reason: format!("need 0 <= successes <= n, n > 0; got {successes}/{n}"),
        });
    }
    if !(0.0 < confidence && confidence < 1.0) {
        return Err(ZooError::InvalidArgument {
            reason: format!("confidence {confidence} not inside (0, 1)"),
        });
    }
    let standard_normal = Normal::new(0.0, 1.0).expect("standard normal parameters are valid");
    let z = standard_normal.inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let n_f = n as f64;
    let p_hat = successes as f64 / n_f;
    let z_squared = z * z;
    let denominator = 1.0 + z_squared / n_f;
    let centre = (p_hat + z_squared / (2.0 * n_f)) / denominator;
    let half_width =
        z * (p_hat * (1.0 - p_hat) / n_f + z_squared / (4.0 * n_f * n_f)).sqrt() / denominator;
    Ok((
        (centre - half_width).max(0.0),
        (centre + half_width).min(1.0),
    ))
}

/// Index of the largest value of each row (first on ties).
pub fn argmax_rows(scores: ArrayView2<'_, f32>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(best_idx, best), (idx, &value)| {
                    if value > best {
                        (idx, value)
                    } else {
                        (best_idx, best)
                    }
                })
                .0
        })
        .collect()
}

/// Top-1 accuracy of `model` on `features` / `labels`, evaluated in batches of `batch_size` rows, with a 95%
/// Wilson interval.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for an empty set, zero batch size or label count different from the row
/// count; the model's own errors.
pub fn classification_accuracy(
    model: &dyn Classifier,
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    batch_size: usize,
) -> Result<ProportionEstimate, ZooError> {
    if labels.is_empty() || labels.len() != features.nrows() || batch_size == 0 {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "{} rows, {} labels, batch size {batch_size}",
                features.nrows(),
                labels.len()
            ),
        });
    }
    let mut n_correct = 0;
    for start in (0..labels.len()).step_by(batch_size) {
        let end = (start + batch_size).min(labels.len());
        let logits = model.logits(features.slice(ndarray::s![start..end, ..]))?;
        let predictions = argmax_rows(logits.view());
        n_correct += predictions
            .iter()
            .zip(&labels[start..end])
            .filter(|(predicted, label)| predicted == label)
            .count();
    }
    ProportionEstimate::wilson(n_correct, labels.len(), 0.95)
}

/// Area under the ROC curve for "anomalous scores higher than normal ones": the Mann–Whitney probability that
/// a random anomalous sample outscores a random normal one, ties counting one half.
///
/// # Errors
/// [`ZooError::InvalidArgument`] if either group is empty or holds a NaN.
pub fn roc_auc(normal_scores: &[f32], anomalous_scores: &[f32]) -> Result<f64, ZooError> {
    if normal_scores.is_empty() || anomalous_scores.is_empty() {
        return Err(ZooError::InvalidArgument {
            reason: "AUC needs both normal and anomalous samples".into(),
        });
    }
    if normal_scores
        .iter()
        .chain(anomalous_scores)
        .any(|score| score.is_nan())
    {
        return Err(ZooError::InvalidArgument {
            reason: "NaN anomaly score".into(),
        });
    }
    let mut sorted_normal = normal_scores.to_vec();
    sorted_normal.sort_by(f32::total_cmp);
    let mut wins = 0.0f64;
    for &score in anomalous_scores {
        let below = sorted_normal.partition_point(|&normal| normal < score);
        let not_above = sorted_normal.partition_point(|&normal| normal <= score);
        wins += below as f64 + 0.5 * (not_above - below) as f64;
    }
    Ok(wins / (normal_scores.len() as f64 * anomalous_scores.len() as f64))
}

/// A model's headline metric as one number with its interval and the number of evaluation samples behind it:
/// what a claim about the model is judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEstimate {
    /// What the number is, e.g. "test accuracy", "ROC AUC", "validation loss / unigram loss".
    pub name: String,
    /// Point estimate.
    pub point: f64,
    /// Lower end of the interval.
    pub ci_lower: f64,
    /// Upper end of the interval.
    pub ci_upper: f64,
    /// Nominal two-sided coverage of the interval, e.g. 0.95.
    pub confidence: f64,
    /// Evaluation units behind the interval (samples, or text windows for the language model).
    pub n: usize,
    /// How the interval was computed.
    pub method: String,
}

impl std::fmt::Display for MetricEstimate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} {:.4} ({:.0}% CI {:.4}-{:.4}, n = {}, {})",
            self.name,
            self.point,
            100.0 * self.confidence,
            self.ci_lower,
            self.ci_upper,
            self.n,
            self.method
        )
    }
}

fn check_confidence(confidence: f64) -> Result<(), ZooError> {
    if 0.0 < confidence && confidence < 1.0 {
        return Ok(());
    }
    Err(ZooError::InvalidArgument {
        reason: format!("confidence {confidence} not inside (0, 1)"),
    })
}

/// Normal-approximation interval for a ROC AUC from the standard error of Hanley and McNeil (1982), which
/// needs only the AUC and the two group sizes; clipped to `[0, 1]`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for an empty group, an AUC outside `[0, 1]` or a confidence outside (0, 1).
pub fn auc_interval(
    auc: f64,
    n_normal: usize,
    n_anomalous: usize,
    confidence: f64,
) -> Result<(f64, f64), ZooError> {
    check_confidence(confidence)?;
    if n_normal == 0 || n_anomalous == 0 || !(0.0..=1.0).contains(&auc) {
        return Err(ZooError::InvalidArgument {
            reason: format!("AUC {auc} with {n_normal} normal and {n_anomalous} anomalous samples"),
        });
    }
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    let variance = (auc * (1.0 - auc)
        + (n_anomalous as f64 - 1.0) * (q1 - auc * auc)
        + (n_normal as f64 - 1.0) * (q2 - auc * auc))
        / (n_normal as f64 * n_anomalous as f64);
    let z = standard_normal_quantile(1.0 - (1.0 - confidence) / 2.0)?;
    let half_width = z * variance.max(0.0).sqrt();
    Ok(((auc - half_width).max(0.0), (auc + half_width).min(1.0)))
}

/// The ratio `Σ numerators / Σ denominators` over paired units (e.g. text windows) with a Student-t interval
/// from the linearized (delta-method) standard error of a ratio estimator: residuals
/// `numerator_i − ratio · denominator_i`, `se = sqrt(Σ residual² / (n (n − 1))) / mean(denominator)`.
///
/// Returns `(ratio, ci_lower, ci_upper)`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for fewer than two units, unequal lengths, non-finite values, a non-positive
/// denominator sum or a confidence outside (0, 1).
pub fn ratio_of_sums_interval(
    numerators: &[f64],
    denominators: &[f64],
    confidence: f64,
) -> Result<(f64, f64, f64), ZooError> {
    check_confidence(confidence)?;
    let n_units = numerators.len();
    if n_units < 2
        || denominators.len() != n_units
        || numerators
            .iter()
            .chain(denominators)
            .any(|value| !value.is_finite())
    {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "ratio interval needs two or more finite pairs ({} numerators, {} denominators)",
                n_units,
                denominators.len()
            ),
        });
    }
    let denominator_sum: f64 = denominators.iter().sum();
    if denominator_sum <= 0.0 {
        return Err(ZooError::InvalidArgument {
            reason: format!("denominator sum {denominator_sum} is not positive"),
        });
    }
    let ratio = numerators.iter().sum::<f64>() / denominator_sum;
    let residual_square_sum: f64 = numerators
        .iter()
        .zip(denominators)
        .map(|(numerator, denominator)| (numerator - ratio * denominator).powi(2))
        .sum();
    let n = n_units as f64;
    let standard_error = (residual_square_sum / (n * (n - 1.0))).sqrt() / (denominator_sum / n);
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, n - 1.0)
        .map_err(|error| ZooError::InvalidArgument {
            reason: error.to_string(),
        })?
        .inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    Ok((
        ratio,
        ratio - t * standard_error,
        ratio + t * standard_error,
    ))
}

fn standard_normal_quantile(probability: f64) -> Result<f64, ZooError> {
    Ok(Normal::new(0.0, 1.0)
        .map_err(|error| ZooError::InvalidArgument {
            reason: error.to_string(),
        })?
        .inverse_cdf(probability))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), Table I: 81/263 → 0.2553-0.3662 at 95%.
        let (lower, upper) = wilson_interval(81, 263, 0.95).unwrap();
        approx::assert_abs_diff_eq!(lower, 0.2553, epsilon = 5e-4);
        approx::assert_abs_diff_eq!(upper, 0.3662, epsilon = 5e-4);
        // 0 successes out of 10 → 0-0.2775 (Newcombe, Table I).
        let (lower, upper) = wilson_interval(0, 10, 0.95).unwrap();
        approx::assert_abs_diff_eq!(lower, 0.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(upper, 0.2775, epsilon = 5e-4);
        let (lower, upper) = wilson_interval(10, 10, 0.95).unwrap();
        approx::assert_abs_diff_eq!(lower, 0.7225, epsilon = 5e-4);
        approx::assert_abs_diff_eq!(upper, 1.0, epsilon = 1e-12);
    }

    #[test]
    fn wilson_rejects_bad_input() {
        assert!(wilson_interval(0, 0, 0.95).is_err());
        assert!(wilson_interval(3, 2, 0.95).is_err());
        assert!(wilson_interval(1, 2, 1.0).is_err());
        assert!(wilson_interval(1, 2, f64::NAN).is_err());
    }

    #[test]
    fn wilson_covers_about_95_percent_by_simulation() {
        // 2,000 simulated binomial experiments per (n, p); the nominal 95% interval must contain p in 92-98.5%
        // of them: Wilson's coverage oscillates around nominal (dipping to about 93% at some n·p), and 2,000
        // trials add a standard error of about 0.5 percentage points.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        for (n, p) in [(30usize, 0.9f64), (300, 0.95), (1000, 0.5), (100, 0.97)] {
            let n_trials = 2000;
            let mut covered = 0;
            for _ in 0..n_trials {
                let successes = (0..n).filter(|_| rng.random::<f64>() < p).count();
                let (lower, upper) = wilson_interval(successes, n, 0.95).unwrap();
                if lower <= p && p <= upper {
                    covered += 1;
                }
            }
            let coverage = covered as f64 / n_trials as f64;
            assert!(
                (0.92..=0.985).contains(&coverage),
                "n={n} p={p}: coverage {coverage}"
            );
        }
    }

    #[test]
    fn auc_handles_separation_and_ties() {
        approx::assert_abs_diff_eq!(roc_auc(&[0.1, 0.2], &[0.3, 0.4]).unwrap(), 1.0);
        approx::assert_abs_diff_eq!(roc_auc(&[0.3, 0.4], &[0.1, 0.2]).unwrap(), 0.0);
        approx::assert_abs_diff_eq!(roc_auc(&[0.5, 0.5], &[0.5]).unwrap(), 0.5);
        approx::assert_abs_diff_eq!(roc_auc(&[0.1, 0.3], &[0.2]).unwrap(), 0.5);
        assert!(roc_auc(&[], &[0.1]).is_err());
        assert!(roc_auc(&[f32::NAN], &[0.1]).is_err());
    }

    #[test]
    fn auc_interval_matches_hanley_mcneil_table() {
        // Hanley & McNeil (1982), equation 2 by hand: AUC 0.9 with 50 + 50 samples, Q1 = 0.9 / 1.1,
        // Q2 = 1.62 / 1.9, variance = (0.09 + 49 (Q1 − 0.81) + 49 (Q2 − 0.81)) / 2500 = 0.0010319, SE 0.03212.
        let (lower, upper) = auc_interval(0.9, 50, 50, 0.95).unwrap();
        let standard_error = (upper - lower) / (2.0 * 1.959_964);
        assert!((standard_error - 0.03212).abs() < 5e-5, "{standard_error}");
        assert_eq!(auc_interval(1.0, 10, 10, 0.95).unwrap().1, 1.0);
        assert!(auc_interval(0.5, 0, 10, 0.95).is_err());
        assert!(auc_interval(1.5, 10, 10, 0.95).is_err());
    }

    #[test]
    fn ratio_interval_is_exact_for_proportional_pairs_and_covers_by_simulation() {
        let (ratio, lower, upper) =
            ratio_of_sums_interval(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], 0.95).unwrap();
        assert!((ratio - 2.0).abs() < 1e-12 && (upper - lower).abs() < 1e-12);
        assert!(ratio_of_sums_interval(&[1.0], &[1.0], 0.95).is_err());
        assert!(ratio_of_sums_interval(&[1.0, f64::NAN], &[1.0, 1.0], 0.95).is_err());
        // Pairs with true ratio 0.6: the 95% interval should cover it about 95% of the time.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let trials = 1000;
        let mut covered = 0;
        for _ in 0..trials {
            let denominators: Vec<f64> = (0..60).map(|_| rng.random_range(2.0..4.0)).collect();
            let numerators: Vec<f64> = denominators
                .iter()
                .map(|denominator| 0.6 * denominator + rng.random_range(-0.5..0.5))
                .collect();
            let (_, lower, upper) =
                ratio_of_sums_interval(&numerators, &denominators, 0.95).unwrap();
            covered += usize::from(lower <= 0.6 && 0.6 <= upper);
        }
        assert!((920..=975).contains(&covered), "{covered} of {trials}");
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        let scores = ndarray::array![[0.0f32, 2.0, 2.0], [5.0, 1.0, 0.0]];
        assert_eq!(argmax_rows(scores.view()), vec![1, 0]);
    }
}
