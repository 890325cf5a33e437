//! Training with candle: the only module that builds candle graphs. One file per job:
//!
//! - [`config`]: [`TrainConfig`] and [`TrainingLog`] (the run's CPU time and the machine's load come from
//!   `perf_core::environment`);
//! - [`params`]: the seeded [`ParamStore`] (a seed fully determines the initial weights) and the linear layer;
//! - one module per architecture under training: [`mlp`], [`cnn`], [`ds_cnn`], [`transformer`];
//! - [`mod@fit`]: the training loops (mini-batches from a seeded shuffle);
//! - [`export`]: named candle tensors → the ndarray models of [`crate::models`].

mod cnn;
mod config;
mod ds_cnn;
mod export;
mod fit;
mod mlp;
mod params;
#[cfg(test)]
mod tests;
mod transformer;

use candle_core::Tensor;
use ndarray::ArrayView2;

pub use cnn::CnnShape;
pub use config::{TrainConfig, TrainingLog};
pub use ds_cnn::DsCnnShape;

pub(crate) use cnn::CandleCnn;
pub(crate) use ds_cnn::{ds_cnn_patches, scaling_tensors, CandleDsCnn};
pub(crate) use export::{export_char_transformer, export_cnn, export_ds_cnn, export_mlp};
pub(crate) use fit::{fit, fit_char_transformer, fit_with_hook, Objective};
pub(crate) use mlp::CandleMlp;
pub(crate) use params::ParamStore;
pub(crate) use transformer::CandleCharTransformer;

use crate::models::Mlp;
use crate::ZooError;

/// A candle model under training: a forward pass from a batch tensor to an output tensor.
pub(crate) trait CandleModel {
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError>;
}

/// Trains an MLP classifier with hidden widths `hidden` on `features`/`labels`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for empty data or a zero batch size; [`ZooError::Diverged`]; candle errors.
pub fn train_mlp_classifier(
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    n_classes: usize,
    hidden: &[usize],
    config: &TrainConfig,
) -> Result<(Mlp, TrainingLog), ZooError> {
    let mut widths = vec![features.ncols()];
    widths.extend_from_slice(hidden);
    widths.push(n_classes);
    let mut store = ParamStore::new(config.seed);
    let model = CandleMlp::new(&mut store, &widths)?;
    let log = fit(
        "mlp",
        &model,
        &store,
        features,
        Objective::Classification(labels),
        config,
    )?;
    Ok((export_mlp(&store.named_tensors(), "mlp")?, log))
}
