//! The anomaly-detection recipe ([`ReferenceModel::DigitsAutoencoder`]): a fully connected autoencoder trained to
//! reconstruct digits 0–4, scoring every held-out digit by its reconstruction error, judged on ROC AUC (digits
//! 5–9 are the anomalies) and on the accuracy of a threshold set on the training errors.

use datasets::LabeledDataset;

use super::classifiers::{classification_key, digits_dataset, DIGITS_TEST_FRACTION};
use super::recipe::{Evaluation, Finished, Recipe, StoredWeights};
use super::report::HeldOutMetric;
use super::{ReferenceModel, TrainedWeights, ZooConfig};
use crate::cache::{CacheKey, NamedTensors};
use crate::metrics::ProportionEstimate;
use crate::models::Autoencoder;
use crate::train::{export_mlp, fit, CandleMlp, Objective, ParamStore, TrainConfig, TrainingLog};
use crate::ZooError;
use perf_core::stats::roc_auc;

/// Layer widths, 64 pixels in and out.
const AUTOENCODER_WIDTHS: [usize; 5] = [64, 32, 8, 32, 64];
/// The digits the autoencoder learns; the others are the anomalies.
const AUTOENCODER_NORMAL_CLASSES: std::ops::Range<usize> = 0..5;

/// The digits autoencoder: trained on the normal digits of the digits MLP's training split, tested on all of
/// that split's test digits.
pub(super) struct AutoencoderRecipe {
    pub(super) dataset: LabeledDataset,
}

impl AutoencoderRecipe {
    /// Splits the embedded digits as the digits MLP does and keeps the normal training digits.
    ///
    /// # Errors
    /// [`ZooError::Data`] when the embedded data or the split fails.
    pub(super) fn load(config: &ZooConfig) -> Result<Self, ZooError> {
        let digits = digits_dataset(config.seed)?;
        let normal_rows: Vec<usize> = (0..digits.train.len())
            .filter(|&row_idx| AUTOENCODER_NORMAL_CLASSES.contains(&digits.train.labels()[row_idx]))
            .collect();
        let split = format!(
            "digits {}-{} normal, {}-9 anomalous; train = normal digits of a stratified {:.0}/{:.0} split (seed {}); test = all test digits",
            AUTOENCODER_NORMAL_CLASSES.start,
            AUTOENCODER_NORMAL_CLASSES.end - 1,
            AUTOENCODER_NORMAL_CLASSES.end,
            100.0 * (1.0 - DIGITS_TEST_FRACTION),
            100.0 * DIGITS_TEST_FRACTION,
            config.seed
        );
        let dataset = LabeledDataset {
            train: digits.train.select(&normal_rows),
            test: digits.test,
            info: digits.info,
            split,
        };
        Ok(AutoencoderRecipe { dataset })
    }
}

impl Recipe for AutoencoderRecipe {
    type Candle = CandleMlp;
    type Network = Autoencoder;

    fn model(&self) -> ReferenceModel {
        ReferenceModel::DigitsAutoencoder
    }

    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey {
        let architecture = format!("autoencoder={AUTOENCODER_WIDTHS:?}");
        classification_key(self.model(), &architecture, &self.dataset, train_config)
    }

    fn build(&self, store: &mut ParamStore) -> Result<CandleMlp, ZooError> {
        CandleMlp::new(store, &AUTOENCODER_WIDTHS)
    }

    fn fit(
        &self,
        candle: &CandleMlp,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError> {
        let features = self.dataset.train.features().view();
        let name = self.model().name();
        fit(
            name,
            candle,
            store,
            features,
            Objective::Reconstruction,
            train_config,
        )
    }

    fn export(&self, weights: &StoredWeights) -> Result<Autoencoder, ZooError> {
        let network = export_mlp(&weights.tensors, self.model().name())?;
        Ok(Autoencoder { network })
    }

    fn n_parameters(&self, _tensors: &NamedTensors, network: &Autoencoder) -> usize {
        network.network.n_parameters()
    }

    /// ROC AUC of the held-out scores (anomalous against normal digits), and the accuracy of "anomalous iff the
    /// score exceeds the 95th percentile of the training scores".
    fn evaluate(&self, autoencoder: &Autoencoder) -> Result<Evaluation, ZooError> {
        let train_scores = autoencoder.anomaly_scores(self.dataset.train.features().view())?;
        let mut sorted_train: Vec<f32> = train_scores.to_vec();
        sorted_train.sort_by(f32::total_cmp);
        let threshold = sorted_train
            [((sorted_train.len() as f64 * 0.95).ceil() as usize).min(sorted_train.len()) - 1];
        let test_scores = autoencoder.anomaly_scores(self.dataset.test.features().view())?;
        let is_anomalous: Vec<bool> = self
            .dataset
            .test
            .labels()
            .iter()
            .map(|label| !AUTOENCODER_NORMAL_CLASSES.contains(label))
            .collect();
        let scores_where = |anomalous: bool| -> Vec<f32> {
            test_scores
                .iter()
                .zip(&is_anomalous)
                .filter(|(_, &is_anomaly)| is_anomaly == anomalous)
                .map(|(&score, _)| score)
                .collect()
        };
        let normal_scores = scores_where(false);
        let anomalous_scores = scores_where(true);
        let n_correct = test_scores
            .iter()
            .zip(&is_anomalous)
            .filter(|(&score, &anomalous)| (score > threshold) == anomalous)
            .count();
        Ok(HeldOutMetric::AnomalyDetection {
            roc_auc: roc_auc(&normal_scores, &anomalous_scores)?,
            accuracy_at_threshold: ProportionEstimate::wilson(n_correct, test_scores.len(), 0.95)?,
            threshold,
            n_normal: normal_scores.len(),
            n_anomalous: anomalous_scores.len(),
        }
        .into())
    }

    fn finish(self, network: Autoencoder) -> Result<Finished, ZooError> {
        Ok(Finished::from_dataset(
            self.dataset,
            TrainedWeights::Autoencoder(network),
        ))
    }
}
