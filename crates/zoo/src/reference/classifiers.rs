//! The classifier recipes, judged on held-out top-1 accuracy: the MLPs (UCI digits, Fashion-MNIST), the
//! Fashion-MNIST CNN and the DS-CNN keyword spotter (FSDD, conventional or unseen-speaker split).

use datasets::{
    fsdd_dir, fsdd_features, load_digits, load_fashion_mnist, load_fsdd_clips, split_train_test,
    FsddSplit, LabeledDataset, LabeledSet, MfccConfig,
};
use ndarray::ArrayView2;

use super::recipe::{Evaluation, Finished, Recipe, StoredWeights};
use super::report::HeldOutMetric;
use super::{ReferenceModel, TrainedWeights, ZooConfig};
use crate::cache::{data_fingerprint, CacheKey, NamedTensors};
use crate::layers::Standardizer;
use crate::metrics::classification_accuracy;
use crate::models::{Classifier, Cnn, DsCnn, Mlp};
use crate::train::{
    ds_cnn_patches, export_cnn, export_ds_cnn, export_mlp, fit, scaling_tensors, CandleCnn,
    CandleDsCnn, CandleMlp, CandleModel, CnnShape, DsCnnShape, Objective, ParamStore, TrainConfig,
    TrainingLog,
};
use crate::ZooError;

/// Digits MLP hidden width.
const DIGITS_HIDDEN: usize = 128;
/// Share of the digits held out for testing (stratified).
pub(super) const DIGITS_TEST_FRACTION: f64 = 0.25;
/// Fashion-MNIST MLP hidden width.
const FASHION_MLP_HIDDEN: usize = 256;
const FASHION_CNN_SHAPE: CnnShape = CnnShape {
    image_height: 28,
    image_width: 28,
    conv1_channels: 16,
    conv2_channels: 32,
    n_classes: 10,
};
const DS_CNN_CHANNELS: usize = 32;
const DS_CNN_BLOCKS: usize = 3;
/// Rows per inference call when evaluating.
const EVALUATION_BATCH: usize = 256;

/// The embedded UCI digits in a stratified split seeded by `seed`.
///
/// # Errors
/// [`ZooError::Data`] when the embedded data or the split fails.
pub(super) fn digits_dataset(seed: u64) -> Result<LabeledDataset, ZooError> {
    let (set, info) = load_digits()?;
    let (train, test) = split_train_test(&set, DIGITS_TEST_FRACTION, seed)?;
    let split = format!(
        "stratified shuffle, {:.0}% test, seed {seed}",
        100.0 * DIGITS_TEST_FRACTION
    );
    Ok(LabeledDataset {
        train,
        test,
        info,
        split,
    })
}

/// The key of a classifier (or the autoencoder): `architecture`, the training settings and the training data.
pub(super) fn classification_key(
    model: ReferenceModel,
    architecture: &str,
    dataset: &LabeledDataset,
    train_config: &TrainConfig,
) -> CacheKey {
    CacheKey::new(
        model.name(),
        &[
            architecture,
            &format!("train={train_config:?}"),
            &format!(
                "data={}:{}",
                dataset.info.name,
                data_fingerprint(dataset.train.features().view(), dataset.train.labels())
            ),
        ],
    )
}

/// Cross-entropy training of `candle` on `features` (one row per training sample) against `train`'s labels.
fn fit_classifier(
    model: ReferenceModel,
    candle: &dyn CandleModel,
    store: &ParamStore,
    (features, train): (ArrayView2<'_, f32>, &LabeledSet),
    train_config: &TrainConfig,
) -> Result<TrainingLog, ZooError> {
    let objective = Objective::Classification(train.labels());
    fit(
        model.name(),
        candle,
        store,
        features,
        objective,
        train_config,
    )
}

/// Held-out top-1 accuracy with its Wilson interval.
fn evaluate_classifier(
    classifier: &dyn Classifier,
    test: &LabeledSet,
) -> Result<Evaluation, ZooError> {
    let accuracy = classification_accuracy(
        classifier,
        test.features().view(),
        test.labels(),
        EVALUATION_BATCH,
    )?;
    Ok(HeldOutMetric::Accuracy(accuracy).into())
}

/// An MLP classifier: [`ReferenceModel::DigitsMlp`] or [`ReferenceModel::FashionMlp`].
pub(super) struct MlpRecipe {
    model: ReferenceModel,
    dataset: LabeledDataset,
    /// Input, hidden and output widths.
    widths: Vec<usize>,
}

impl MlpRecipe {
    /// Loads the data of `model` (one of the two MLPs).
    ///
    /// # Errors
    /// [`ZooError::Data`] when the data are missing; [`ZooError::InvalidArgument`] for another model.
    pub(super) fn load(model: ReferenceModel, config: &ZooConfig) -> Result<Self, ZooError> {
        let (dataset, hidden) = match model {
            ReferenceModel::DigitsMlp => (digits_dataset(config.seed)?, DIGITS_HIDDEN),
            ReferenceModel::FashionMlp => (
                load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?,
                FASHION_MLP_HIDDEN,
            ),
            other => {
                return Err(ZooError::InvalidArgument {
                    reason: format!("{} is not an MLP classifier", other.name()),
                })
            }
        };
        let widths = vec![
            dataset.train.n_features(),
            hidden,
            dataset.train.n_classes(),
        ];
        Ok(MlpRecipe {
            model,
            dataset,
            widths,
        })
    }
}

impl Recipe for MlpRecipe {
    type Candle = CandleMlp;
    type Network = Mlp;

    fn model(&self) -> ReferenceModel {
        self.model
    }

    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey {
        let architecture = format!("mlp={:?}", self.widths);
        classification_key(self.model, &architecture, &self.dataset, train_config)
    }

    fn build(&self, store: &mut ParamStore) -> Result<CandleMlp, ZooError> {
        CandleMlp::new(store, &self.widths)
    }

    fn fit(
        &self,
        candle: &CandleMlp,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError> {
        let train = &self.dataset.train;
        let data = (train.features().view(), train);
        fit_classifier(self.model, candle, store, data, train_config)
    }

    fn export(&self, weights: &StoredWeights) -> Result<Mlp, ZooError> {
        export_mlp(&weights.tensors, self.model.name())
    }

    fn n_parameters(&self, _tensors: &NamedTensors, network: &Mlp) -> usize {
        network.n_parameters()
    }

    fn evaluate(&self, network: &Mlp) -> Result<Evaluation, ZooError> {
        evaluate_classifier(network, &self.dataset.test)
    }

    fn finish(self, network: Mlp) -> Result<Finished, ZooError> {
        Ok(Finished::from_dataset(
            self.dataset,
            TrainedWeights::Mlp(network),
        ))
    }
}

/// The two-convolution CNN on Fashion-MNIST ([`ReferenceModel::FashionCnn`]).
pub(super) struct CnnRecipe {
    dataset: LabeledDataset,
}

impl CnnRecipe {
    /// Loads Fashion-MNIST.
    ///
    /// # Errors
    /// [`ZooError::Data`] when it is not installed.
    pub(super) fn load(config: &ZooConfig) -> Result<Self, ZooError> {
        let dataset = load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?;
        Ok(CnnRecipe { dataset })
    }
}

impl Recipe for CnnRecipe {
    type Candle = CandleCnn;
    type Network = Cnn;

    fn model(&self) -> ReferenceModel {
        ReferenceModel::FashionCnn
    }

    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey {
        let architecture = format!("cnn={FASHION_CNN_SHAPE:?}");
        classification_key(self.model(), &architecture, &self.dataset, train_config)
    }

    fn build(&self, store: &mut ParamStore) -> Result<CandleCnn, ZooError> {
        CandleCnn::new(store, FASHION_CNN_SHAPE)
    }

    fn fit(
        &self,
        candle: &CandleCnn,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError> {
        let train = &self.dataset.train;
        let data = (train.features().view(), train);
        fit_classifier(self.model(), candle, store, data, train_config)
    }

    fn export(&self, weights: &StoredWeights) -> Result<Cnn, ZooError> {
        export_cnn(&weights.tensors, self.model().name(), FASHION_CNN_SHAPE)
    }

    fn n_parameters(&self, tensors: &NamedTensors, _network: &Cnn) -> usize {
        tensors.values().map(|tensor| tensor.elem_count()).sum()
    }

    fn evaluate(&self, network: &Cnn) -> Result<Evaluation, ZooError> {
        evaluate_classifier(network, &self.dataset.test)
    }

    fn finish(self, network: Cnn) -> Result<Finished, ZooError> {
        Ok(Finished::from_dataset(
            self.dataset,
            TrainedWeights::Cnn(network),
        ))
    }
}

/// The DS-CNN keyword spotter on FSDD MFCCs: [`ReferenceModel::KwsDsCnn`] (conventional split) or
/// [`ReferenceModel::KwsDsCnnUnseenSpeaker`] (one speaker held out).
pub(super) struct DsCnnRecipe {
    model: ReferenceModel,
    dataset: LabeledDataset,
    mfcc: MfccConfig,
    shape: DsCnnShape,
}

impl DsCnnRecipe {
    /// Loads FSDD and computes the MFCC windows of `model`'s split.
    ///
    /// # Errors
    /// [`ZooError::Data`] when FSDD is not installed or a recording is unreadable.
    pub(super) fn load(model: ReferenceModel, config: &ZooConfig) -> Result<Self, ZooError> {
        let dir = fsdd_dir(config.data.fsdd_dir.as_deref());
        let clips = load_fsdd_clips(&dir)?;
        let split = match model {
            ReferenceModel::KwsDsCnn => FsddSplit::Conventional,
            _ => FsddSplit::HoldOutSpeaker(config.data.held_out_speaker.clone()),
        };
        let mfcc = MfccConfig::default();
        let dataset = fsdd_features(&clips, &split, &mfcc, &dir)?;
        let shape = DsCnnShape {
            n_frames: mfcc.n_frames()?,
            n_coefficients: mfcc.n_coefficients,
            channels: DS_CNN_CHANNELS,
            n_blocks: DS_CNN_BLOCKS,
            n_classes: dataset.train.n_classes(),
        };
        Ok(DsCnnRecipe {
            model,
            dataset,
            mfcc,
            shape,
        })
    }
}

impl Recipe for DsCnnRecipe {
    /// The network and the standardization its input goes through (fitted on the training rows).
    type Candle = (CandleDsCnn, Standardizer);
    type Network = DsCnn;

    fn model(&self) -> ReferenceModel {
        self.model
    }

    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey {
        let architecture = format!(
            "ds-cnn={:?}|mfcc={:?}|split={}",
            self.shape, self.mfcc, self.dataset.split
        );
        classification_key(self.model, &architecture, &self.dataset, train_config)
    }

    fn build(&self, store: &mut ParamStore) -> Result<Self::Candle, ZooError> {
        let scaling = Standardizer::fit(self.dataset.train.features().view());
        Ok((CandleDsCnn::new(store, self.shape)?, scaling))
    }

    fn fit(
        &self,
        (candle, scaling): &Self::Candle,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError> {
        let train = &self.dataset.train;
        let patches = ds_cnn_patches(train.features().view(), &self.shape, scaling)?;
        let data = (patches.view(), train);
        fit_classifier(self.model, candle, store, data, train_config)
    }

    fn extra_tensors(
        &self,
        (_, scaling): &Self::Candle,
    ) -> Result<Vec<(String, candle_core::Tensor)>, ZooError> {
        Ok(scaling_tensors(scaling)?.into())
    }

    fn export(&self, weights: &StoredWeights) -> Result<DsCnn, ZooError> {
        export_ds_cnn(&weights.tensors, self.model.name(), self.shape)
    }

    fn n_parameters(&self, tensors: &NamedTensors, _network: &DsCnn) -> usize {
        tensors
            .iter()
            .filter(|(name, _)| !name.starts_with("input_scaling"))
            .map(|(_, tensor)| tensor.elem_count())
            .sum()
    }

    fn evaluate(&self, network: &DsCnn) -> Result<Evaluation, ZooError> {
        evaluate_classifier(network, &self.dataset.test)
    }

    fn finish(self, network: DsCnn) -> Result<Finished, ZooError> {
        Ok(Finished::from_dataset(
            self.dataset,
            TrainedWeights::DsCnn(network),
        ))
    }
}
