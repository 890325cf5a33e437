//! zoo: TorchPerf's reference models, trained with candle on real data and exported to plain ndarray structs
//! whose inference runs on the project's matrix-multiply kernel.
//!
//! - [`train_or_load`] trains (or loads from the [`WeightCache`]) one [`ReferenceModel`] and evaluates it on
//!   held-out data, returning a [`TrainedModel`] with a [`ModelReport`] (metric, n, Wilson interval, timings).
//! - [`models`] holds the exported networks ([`Mlp`], [`Cnn`], [`DsCnn`], [`Autoencoder`], [`CharTransformer`]);
//!   they do not depend on candle, so quantization and benchmarks can rewrite their weights.
//! - [`prune`] and [`prune_and_finetune`] / [`finetune_reference`]: gradual pruning with retraining (Zhu and
//!   Gupta 2017: cubic sparsity schedule, magnitude / neuron / block masks applied after every optimizer step)
//!   of a trained MLP or the autoencoder, cached in the [`WeightCache`] under the base model's key.
//! - candle appears only in private modules (training, fine-tuning, the cache); no candle type crosses this
//!   crate's public API except inside [`ZooError::Candle`].
// `deny` rather than `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` that `forbid` rejects.
#![deny(unsafe_code)]

mod cache;
mod error;
mod finetune;
pub mod kernel;
pub mod layers;
pub mod metrics;
pub mod models;
pub mod prune;
mod reference;
mod train;

pub use cache::{
    data_fingerprint, CacheKey, CacheMetadata, WeightCache, CACHE_DIR_ENV, ZOO_FORMAT_VERSION,
};
pub use error::ZooError;
pub use finetune::{
    default_finetune_config, finetune_reference, prune_and_finetune, schedule_for, FineTuneConfig,
    FineTuneObjective, FineTuneReport, FineTuned,
};
pub use layers::{Conv2d, DepthwiseConv2d, LayerNorm, Linear, Standardizer};
pub use metrics::{MetricEstimate, ProportionEstimate};
pub use models::{
    Autoencoder, CharTransformer, CharTransformerConfig, Classifier, Cnn, DepthwiseSeparableBlock,
    DsCnn, Mlp, TransformerBlock,
};
pub use reference::{
    default_char_transformer_config, default_train_config, evaluate_language_model, load_cached,
    train_or_load, train_or_load_with, unigram_cross_entropy, DataOptions, HeldOutMetric,
    ModelReport, ReferenceModel, TrainedModel, TrainedWeights, ZooConfig, CHAR_TRANSFORMER_STEPS,
};
pub use train::{train_mlp_classifier, CnnShape, DsCnnShape, TrainConfig, TrainingLog};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
