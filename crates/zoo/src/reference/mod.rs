//! The reference models: which data each uses, how it is trained, how it is evaluated on held-out data.
//!
//! [`train_or_load`] is the entry point. Every model is a [`recipe::Recipe`] (its cache key, how its candle
//! network is built and fitted, how the weights are exported and evaluated), and one generic function,
//! [`recipe::run_recipe`], runs any of them: key → cached or trained → export → count → evaluate → report.
//! The data are loaded here, so a missing data set is an error before the cache is consulted.
//!
//! - [`recipe`]: the trait, the cache lookup and the generic run;
//! - [`report`]: [`HeldOutMetric`] and [`ModelReport`];
//! - one file per recipe: [`classifiers`] (the MLPs, the CNN, the DS-CNN), [`autoencoder`],
//!   [`language`] (the character transformer and its held-out evaluation).

mod autoencoder;
mod classifiers;
mod language;
mod recipe;
mod report;

use std::path::PathBuf;

use datasets::{load_fashion_mnist, LabeledSet, TextSource};
use perf_core::timer::Stopwatch;
use serde::{Deserialize, Serialize};

use crate::cache::WeightCache;
use crate::models::{Autoencoder, CharTransformer, CharTransformerConfig, Cnn, DsCnn, Mlp};
use crate::train::TrainConfig;
use crate::ZooError;
use autoencoder::AutoencoderRecipe;
use classifiers::{digits_dataset, CnnRecipe, DsCnnRecipe, MlpRecipe};
use language::CharTransformerRecipe;
use recipe::{run_recipe, CacheMode};

pub use language::{evaluate_language_model, unigram_cross_entropy};
pub use report::{HeldOutMetric, ModelReport};

/// The reference models TorchPerf trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReferenceModel {
    /// MLP 64-128-10 on the embedded UCI digits (stratified 75/25 split).
    DigitsMlp,
    /// Fully connected autoencoder 64-32-8-32-64 trained on digits 0-4, scoring digits 5-9 as anomalies.
    DigitsAutoencoder,
    /// Decoder-only character transformer on text (embedded Devil's Dictionary excerpt by default).
    CharTransformer,
    /// MLP 784-256-10 on Fashion-MNIST (needs the data installed).
    FashionMlp,
    /// Two-convolution CNN on Fashion-MNIST (needs the data installed).
    FashionCnn,
    /// DS-CNN keyword spotter on FSDD MFCCs, conventional split (needs FSDD).
    KwsDsCnn,
    /// The same DS-CNN trained without one speaker and tested on that speaker's recordings (needs FSDD).
    KwsDsCnnUnseenSpeaker,
}

impl ReferenceModel {
    /// Every reference model, the ones on embedded data first.
    pub const ALL: [ReferenceModel; 7] = [
        ReferenceModel::DigitsMlp,
        ReferenceModel::DigitsAutoencoder,
        ReferenceModel::CharTransformer,
        ReferenceModel::FashionMlp,
        ReferenceModel::FashionCnn,
        ReferenceModel::KwsDsCnn,
        ReferenceModel::KwsDsCnnUnseenSpeaker,
    ];

    /// Stable short name (used in cache file names and reports).
    pub fn name(self) -> &'static str {
        match self {
            ReferenceModel::DigitsMlp => "digits-mlp",
            ReferenceModel::DigitsAutoencoder => "digits-autoencoder",
            ReferenceModel::CharTransformer => "char-transformer",
            ReferenceModel::FashionMlp => "fashion-mlp",
            ReferenceModel::FashionCnn => "fashion-cnn",
            ReferenceModel::KwsDsCnn => "kws-ds-cnn",
            ReferenceModel::KwsDsCnnUnseenSpeaker => "kws-ds-cnn-unseen-speaker",
        }
    }

    /// Whether the model trains only on data embedded in the crates (so it is available on every machine).
    pub fn uses_embedded_data(self) -> bool {
        matches!(
            self,
            ReferenceModel::DigitsMlp
                | ReferenceModel::DigitsAutoencoder
                | ReferenceModel::CharTransformer
        )
    }
}

/// Where the data sets that are not embedded live, and which text to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOptions {
    /// Fashion-MNIST directory; `None` → `datasets::fashion_mnist_dir(None)`.
    pub fashion_mnist_dir: Option<PathBuf>,
    /// FSDD recordings directory; `None` → `datasets::fsdd_dir(None)`.
    pub fsdd_dir: Option<PathBuf>,
    /// Text for the character transformer.
    pub text: TextSource,
    /// Speaker held out by [`ReferenceModel::KwsDsCnnUnseenSpeaker`] (by default `theo`).
    pub held_out_speaker: String,
}

/// The speaker held out by default: part of the unseen-speaker model's split, hence of its cache key.
const DEFAULT_HELD_OUT_SPEAKER: &str = "theo";

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            fashion_mnist_dir: None,
            fsdd_dir: None,
            text: TextSource::Embedded,
            held_out_speaker: DEFAULT_HELD_OUT_SPEAKER.into(),
        }
    }
}

/// How [`train_or_load`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooConfig {
    /// Seeds initialization, batch order and data splits.
    pub seed: u64,
    /// Weight cache; `None` trains every time and stores nothing.
    pub cache: Option<WeightCache>,
    /// Data locations.
    pub data: DataOptions,
}

impl Default for ZooConfig {
    fn default() -> Self {
        ZooConfig {
            seed: 0,
            cache: Some(WeightCache::default_location()),
            data: DataOptions::default(),
        }
    }
}

/// A trained model's ndarray weights.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrainedWeights {
    /// [`ReferenceModel::DigitsMlp`], [`ReferenceModel::FashionMlp`].
    Mlp(Mlp),
    /// [`ReferenceModel::FashionCnn`].
    Cnn(Cnn),
    /// [`ReferenceModel::KwsDsCnn`], [`ReferenceModel::KwsDsCnnUnseenSpeaker`].
    DsCnn(DsCnn),
    /// [`ReferenceModel::DigitsAutoencoder`].
    Autoencoder(Autoencoder),
    /// [`ReferenceModel::CharTransformer`].
    CharTransformer(CharTransformer),
}

/// A trained model with its report and the held-out data it was evaluated on (for quantization and timing).
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// Metrics and provenance.
    pub report: ModelReport,
    /// The weights.
    pub weights: TrainedWeights,
    /// The held-out evaluation set (features as the model takes them; for the transformer, token ids of the
    /// validation text in `features` column 0 and no labels).
    pub test: LabeledSet,
}

/// The training configuration each reference model uses for `seed`.
pub fn default_train_config(model: ReferenceModel, seed: u64) -> TrainConfig {
    let defaults = TrainConfig::default();
    // (epochs, batch size, learning rate, weight decay) of each model.
    let (epochs, batch_size, learning_rate, weight_decay) = match model {
        ReferenceModel::DigitsMlp => (40, 64, 2e-3, defaults.weight_decay),
        ReferenceModel::DigitsAutoencoder => (150, 64, 2e-3, defaults.weight_decay),
        ReferenceModel::CharTransformer => (1, 16, 3e-3, 1e-2),
        ReferenceModel::FashionMlp => (6, 128, 1e-3, defaults.weight_decay),
        ReferenceModel::FashionCnn => (2, 64, 2e-3, defaults.weight_decay),
        ReferenceModel::KwsDsCnn | ReferenceModel::KwsDsCnnUnseenSpeaker => {
            (8, 32, 3e-3, defaults.weight_decay)
        }
    };
    TrainConfig {
        seed,
        epochs,
        batch_size,
        learning_rate,
        weight_decay,
        ..defaults
    }
}

/// Transformer sizes used for the reference character model (vocabulary size filled from the text).
pub fn default_char_transformer_config(vocab_size: usize) -> CharTransformerConfig {
    CharTransformerConfig {
        vocab_size,
        context_length: 64,
        d_model: 64,
        n_heads: 4,
        n_layers: 2,
        d_ff: 256,
    }
}

/// Optimizer steps for the reference character model.
pub const CHAR_TRANSFORMER_STEPS: usize = 400;

/// Trains (or loads from the cache) and evaluates `model`.
///
/// # Errors
/// [`ZooError::Data`] when its data is missing or corrupt (use [`datasets::DatasetError::is_not_found`] to tell
/// "not installed here" apart), [`ZooError::Cache`] for an unreadable cache entry, training and kernel errors.
pub fn train_or_load(model: ReferenceModel, config: &ZooConfig) -> Result<TrainedModel, ZooError> {
    train_or_load_with(model, config, &default_train_config(model, config.seed))
}

/// As [`train_or_load`], with an explicit training configuration (tests use short ones).
///
/// # Errors
/// As [`train_or_load`].
pub fn train_or_load_with(
    model: ReferenceModel,
    config: &ZooConfig,
    train_config: &TrainConfig,
) -> Result<TrainedModel, ZooError> {
    run_model(model, config, train_config, CacheMode::TrainIfMissing)
}

/// Loads `model` from the weight cache and evaluates it, or returns `Ok(None)` without training when the cache
/// holds no weights for its current configuration (or `config.cache` is `None`). Fast checks (`--quick`) use it
/// to report already-trained models without paying for training.
///
/// # Errors
/// As [`train_or_load`] (missing data is still an error: the key depends on the data).
pub fn load_cached(
    model: ReferenceModel,
    config: &ZooConfig,
) -> Result<Option<TrainedModel>, ZooError> {
    let train_config = default_train_config(model, config.seed);
    match run_model(model, config, &train_config, CacheMode::CachedOnly) {
        Ok(trained) => Ok(Some(trained)),
        Err(ZooError::NotCached { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The training rows `model` is fitted on by [`train_or_load`] with `config` (same data, same split): what
/// fine-tuning after pruning ([`crate::finetune`]) retrains on. MLP classifiers and the autoencoder only.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for another model; [`ZooError::Data`] when its data is missing.
pub(crate) fn training_set(
    model: ReferenceModel,
    config: &ZooConfig,
) -> Result<LabeledSet, ZooError> {
    match model {
        ReferenceModel::DigitsMlp => Ok(digits_dataset(config.seed)?.train),
        ReferenceModel::FashionMlp => {
            Ok(load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?.train)
        }
        ReferenceModel::DigitsAutoencoder => Ok(AutoencoderRecipe::load(config)?.dataset.train),
        other => Err(ZooError::InvalidArgument {
            reason: format!("{} is not an MLP or the autoencoder", other.name()),
        }),
    }
}

/// Loads `model`'s data, then runs its recipe; the wall time covers both.
fn run_model(
    model: ReferenceModel,
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let started = Stopwatch::start();
    let mut trained = match model {
        ReferenceModel::DigitsMlp | ReferenceModel::FashionMlp => {
            run_recipe(MlpRecipe::load(model, config)?, config, train_config, mode)?
        }
        ReferenceModel::FashionCnn => {
            run_recipe(CnnRecipe::load(config)?, config, train_config, mode)?
        }
        ReferenceModel::KwsDsCnn | ReferenceModel::KwsDsCnnUnseenSpeaker => run_recipe(
            DsCnnRecipe::load(model, config)?,
            config,
            train_config,
            mode,
        )?,
        ReferenceModel::DigitsAutoencoder => {
            run_recipe(AutoencoderRecipe::load(config)?, config, train_config, mode)?
        }
        ReferenceModel::CharTransformer => run_recipe(
            CharTransformerRecipe::load(config)?,
            config,
            train_config,
            mode,
        )?,
    };
    trained.report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(trained)
}
