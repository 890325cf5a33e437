//! What a reference run reports: the held-out metric of each kind of model ([`HeldOutMetric`]) and everything
//! known about one trained model ([`ModelReport`]), with the headline estimate a claim is judged on.

use datasets::DatasetInfo;
use perf_core::stats::{hanley_mcneil_interval, AucGroups};
use serde::{Deserialize, Serialize};

use crate::metrics::{MetricEstimate, ProportionEstimate};
use crate::train::TrainingLog;
use crate::ZooError;

/// A model's held-out quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HeldOutMetric {
    /// Top-1 classification accuracy with a Wilson interval over the test samples.
    Accuracy(ProportionEstimate),
    /// Anomaly detection by reconstruction error.
    AnomalyDetection {
        /// Area under the ROC curve (anomalous vs normal test samples).
        roc_auc: f64,
        /// Accuracy of "anomalous iff score > threshold" on all test samples, with a Wilson interval.
        accuracy_at_threshold: ProportionEstimate,
        /// The threshold: the 95th percentile of training reconstruction errors.
        threshold: f32,
        /// Normal test samples.
        n_normal: usize,
        /// Anomalous test samples.
        n_anomalous: usize,
    },
    /// Next-character prediction on held-out text.
    LanguageModel {
        /// Mean cross-entropy, nats per character.
        loss_nats_per_char: f64,
        /// Cross-entropy of the training-set character frequencies (add-one smoothed) on the same text.
        unigram_loss_nats_per_char: f64,
        /// `exp(loss)`.
        perplexity: f64,
        /// Top-1 next-character accuracy with a Wilson interval (characters are not independent, so the interval
        /// is optimistic; it is reported for scale).
        next_char_accuracy: ProportionEstimate,
    },
}

impl std::fmt::Display for HeldOutMetric {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeldOutMetric::Accuracy(accuracy) => write!(formatter, "accuracy {accuracy}"),
            HeldOutMetric::AnomalyDetection { roc_auc, accuracy_at_threshold, n_normal, n_anomalous, .. } => write!(
                formatter,
                "ROC AUC {roc_auc:.4} ({n_normal} normal / {n_anomalous} anomalous); accuracy at train p95 threshold {accuracy_at_threshold}"
            ),
            HeldOutMetric::LanguageModel { loss_nats_per_char, unigram_loss_nats_per_char, perplexity, next_char_accuracy } => write!(
                formatter,
                "validation loss {loss_nats_per_char:.4} nats/char (unigram baseline {unigram_loss_nats_per_char:.4}), perplexity {perplexity:.3}, next-char accuracy {next_char_accuracy}"
            ),
        }
    }
}

/// Everything known about one trained reference model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// [`ReferenceModel::name`](super::ReferenceModel::name).
    pub model: String,
    /// Provenance of the data (REAL for every reference model).
    pub dataset: DatasetInfo,
    /// How train and test were separated.
    pub split: String,
    /// Training samples (characters for the transformer).
    pub n_train: usize,
    /// Seed used.
    pub seed: u64,
    /// Trainable parameters.
    pub n_parameters: usize,
    /// Held-out quality.
    pub metric: HeldOutMetric,
    /// Whether the weights came from the cache.
    pub from_cache: bool,
    /// The training log (from the cache's side file when cached).
    pub training: TrainingLog,
    /// Seconds spent in this call (data loading, training or cache load, evaluation).
    pub wall_seconds: f64,
    /// Seconds spent evaluating on held-out data.
    pub evaluate_seconds: f64,
    /// The cache key hash (`<model>-<hash>.safetensors`).
    pub cache_key: String,
    /// The matrix-multiply kernel inference ran on.
    pub inference_kernel: String,
    /// The headline metric as one number with its interval and n (accuracy with its Wilson interval, ROC AUC
    /// with the Hanley–McNeil interval, or the language model's loss relative to the unigram baseline with a
    /// t-interval over text windows): what a claim about the model is judged on.
    #[serde(default)]
    pub headline: Option<MetricEstimate>,
}

/// The headline estimate of a classification accuracy or an anomaly detector's AUC (the language model's is
/// computed from its text windows where it is evaluated).
pub(super) fn headline_of(metric: &HeldOutMetric) -> Result<Option<MetricEstimate>, ZooError> {
    Ok(match metric {
        HeldOutMetric::Accuracy(accuracy) => Some(MetricEstimate {
            name: "test accuracy".into(),
            point: accuracy.point,
            ci_lower: accuracy.ci_lower,
            ci_upper: accuracy.ci_upper,
            confidence: accuracy.confidence,
            n: accuracy.n,
            method: "Wilson score interval".into(),
        }),
        HeldOutMetric::AnomalyDetection {
            roc_auc,
            n_normal,
            n_anomalous,
            ..
        } => {
            let (ci_lower, ci_upper) = hanley_mcneil_interval(
                *roc_auc,
                AucGroups {
                    n_positive: *n_anomalous,
                    n_negative: *n_normal,
                },
                0.95,
            )?;
            Some(MetricEstimate {
                name: "ROC AUC".into(),
                point: *roc_auc,
                ci_lower,
                ci_upper,
                confidence: 0.95,
                n: n_normal + n_anomalous,
                method: format!(
                    "Hanley-McNeil normal interval ({n_normal} normal, {n_anomalous} anomalous)"
                ),
            })
        }
        HeldOutMetric::LanguageModel { .. } => None,
    })
}
