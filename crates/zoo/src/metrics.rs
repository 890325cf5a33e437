//! Held-out quality measures with their sample sizes and intervals. The statistics themselves (Wilson,
//! argmax, ROC AUC, Hanley–McNeil, the ratio-of-sums interval) are perf-core's (`perf_core::stats`); this
//! file holds the records a model report carries.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

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
    /// [`ZooError::Statistics`] if `n` is zero, `successes > n`, or `confidence` is not inside (0, 1).
    pub fn wilson(successes: usize, n: usize, confidence: f64) -> Result<Self, ZooError> {
        let (ci_lower, ci_upper) =
            perf_core::stats::wilson_interval(successes as u64, n as u64, confidence)?;
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
        n_correct += logits
            .rows()
            .into_iter()
            .zip(&labels[start..end])
            .filter(|(row, &label)| perf_core::stats::argmax(row.iter().copied()) == Some(label))
            .count();
    }
    ProportionEstimate::wilson(n_correct, labels.len(), 0.95)
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
