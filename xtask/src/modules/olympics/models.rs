//! The small MLPs this module trains and the peers module serves: the keyword-spotting MLP's training recipe
//! and the visual-wake-words proxy model.

use anyhow::Result;
use ndarray::{Array2, ArrayView2};
use olympics::submissions::InputTransform;
use olympics::OlympicsError;
use zoo::TrainConfig;

/// How the keyword-spotting and visual-wake-words MLPs are trained (their pruned variants fine-tune from it).
pub(super) fn small_mlp_config(seed: u64) -> TrainConfig {
    TrainConfig {
        seed,
        epochs: 8,
        batch_size: 64,
        learning_rate: 2e-3,
        ..TrainConfig::default()
    }
}

pub(crate) fn train_small_mlp(
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    n_classes: usize,
    hidden: usize,
    seed: u64,
) -> Result<zoo::Mlp, OlympicsError> {
    let (mlp, _) = zoo::train_mlp_classifier(
        features,
        labels,
        n_classes,
        &[hidden],
        &small_mlp_config(seed),
    )?;
    Ok(mlp)
}

/// Training images for the visual-wake-words proxy model (a fixed seeded subset keeps training in seconds).
const VWW_TRAIN_IMAGES: usize = 20_000;

/// The visual-wake-words proxy model as this module trains it and the peers module serves it: the small
/// MLP on the person/no-person features of the first [`VWW_TRAIN_IMAGES`] training images, and the input
/// transform (grey pooling) its submissions apply.
pub(crate) struct VwwModel {
    pub(crate) features: Array2<f32>,
    pub(crate) labels: Vec<usize>,
    pub(crate) mlp: zoo::Mlp,
    pub(crate) transform: InputTransform,
}

/// Trains [`VwwModel`] on `train` (Fashion-MNIST's training set) with the run's seed.
pub(crate) fn train_vww_model(train: &datasets::LabeledSet, seed: u64) -> Result<VwwModel> {
    let n_train = VWW_TRAIN_IMAGES.min(train.len());
    let subset: Vec<usize> = (0..n_train).collect();
    let train = train.select(&subset);
    let features = olympics::events::vww_training_features(train.features())?;
    let labels = olympics::events::vww_labels(train.labels());
    let mlp = train_small_mlp(features.view(), &labels, 2, 64, seed)?;
    let transform = InputTransform::PoolGrey {
        side: olympics::events::VWW_SIDE,
        channels: 3,
        factor: 4,
    };
    Ok(VwwModel {
        features,
        labels,
        mlp,
        transform,
    })
}
