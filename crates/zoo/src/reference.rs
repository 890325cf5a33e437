//! The reference models: which data each uses, how it is trained, how it is evaluated on held-out data.
//!
//! [`train_or_load`] is the entry point: it loads the data, looks the weights up in the cache (training and
//! storing them when absent), exports them to the ndarray model, and evaluates that model — on the project's
//! kernel, not candle — on held-out data.

use perf_core::timer::Stopwatch;
use std::collections::HashMap;
use std::path::PathBuf;

use datasets::{
    fsdd_dir, fsdd_features, load_digits, load_fashion_mnist, load_fsdd_clips, load_text,
    split_train_test, CharVocabulary, DatasetInfo, FsddSplit, LabeledDataset, LabeledSet,
    MfccConfig, TextSource,
};
use ndarray::Axis;
use serde::{Deserialize, Serialize};

use crate::cache::{data_fingerprint, CacheKey, CacheMetadata, NamedTensors, WeightCache};

/// Weights, training log and extra strings of a trained (or cached) model, and whether it came from the cache.
type CachedOrTrained = (NamedTensors, TrainingLog, HashMap<String, String>, bool);
/// What a training closure returns.
type Trained = (NamedTensors, TrainingLog, HashMap<String, String>);
use crate::layers::Standardizer;
use crate::metrics::{classification_accuracy, MetricEstimate, ProportionEstimate};
use crate::models::{
    Autoencoder, CharTransformer, CharTransformerConfig, Classifier, Cnn, DsCnn, Mlp,
};
use crate::train::{
    ds_cnn_patches, export_char_transformer, export_cnn, export_ds_cnn, export_mlp, fit,
    fit_char_transformer, scaling_tensors, CandleCharTransformer, CandleCnn, CandleDsCnn,
    CandleMlp, CnnShape, DsCnnShape, Objective, ParamStore, TrainConfig, TrainingLog,
};
use crate::ZooError;
use perf_core::stats::{
    argmax, cross_entropy, hanley_mcneil_interval, ratio_of_sums, roc_auc, AucGroups,
};

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
    /// Speaker held out by [`ReferenceModel::KwsDsCnnUnseenSpeaker`].
    pub held_out_speaker: String,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            fashion_mnist_dir: None,
            fsdd_dir: None,
            text: TextSource::Embedded,
            held_out_speaker: "theo".into(),
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
    /// [`ReferenceModel::name`].
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

/// Digits MLP hidden width.
const DIGITS_HIDDEN: usize = 128;
const DIGITS_TEST_FRACTION: f64 = 0.25;
const AUTOENCODER_WIDTHS: [usize; 5] = [64, 32, 8, 32, 64];
const AUTOENCODER_NORMAL_CLASSES: std::ops::Range<usize> = 0..5;
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
/// Share of the text (at its end) held out for validation.
const TEXT_VALIDATION_FRACTION: f64 = 0.1;
const EVALUATION_BATCH: usize = 256;

/// The training configuration each reference model uses for `seed`.
pub fn default_train_config(model: ReferenceModel, seed: u64) -> TrainConfig {
    let base = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    match model {
        ReferenceModel::DigitsMlp => TrainConfig {
            epochs: 40,
            batch_size: 64,
            learning_rate: 2e-3,
            ..base
        },
        ReferenceModel::DigitsAutoencoder => TrainConfig {
            epochs: 150,
            batch_size: 64,
            learning_rate: 2e-3,
            ..base
        },
        ReferenceModel::CharTransformer => TrainConfig {
            epochs: 1,
            batch_size: 16,
            learning_rate: 3e-3,
            weight_decay: 1e-2,
            ..base
        },
        ReferenceModel::FashionMlp => TrainConfig {
            epochs: 6,
            batch_size: 128,
            learning_rate: 1e-3,
            ..base
        },
        ReferenceModel::FashionCnn => TrainConfig {
            epochs: 2,
            batch_size: 64,
            learning_rate: 2e-3,
            ..base
        },
        ReferenceModel::KwsDsCnn | ReferenceModel::KwsDsCnnUnseenSpeaker => TrainConfig {
            epochs: 8,
            batch_size: 32,
            learning_rate: 3e-3,
            ..base
        },
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
        ReferenceModel::DigitsMlp => {
            let (set, _) = load_digits()?;
            Ok(split_train_test(&set, DIGITS_TEST_FRACTION, config.seed)?.0)
        }
        ReferenceModel::FashionMlp => {
            Ok(load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?.train)
        }
        ReferenceModel::DigitsAutoencoder => {
            let (set, _) = load_digits()?;
            let (train_all, _) = split_train_test(&set, DIGITS_TEST_FRACTION, config.seed)?;
            let normal_rows: Vec<usize> = (0..train_all.len())
                .filter(|&row_idx| {
                    AUTOENCODER_NORMAL_CLASSES.contains(&train_all.labels()[row_idx])
                })
                .collect();
            Ok(train_all.select(&normal_rows))
        }
        other => Err(ZooError::InvalidArgument {
            reason: format!("{} is not an MLP or the autoencoder", other.name()),
        }),
    }
}

/// Whether a cache miss trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheMode {
    TrainIfMissing,
    CachedOnly,
}

fn run_model(
    model: ReferenceModel,
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let started = Stopwatch::start();
    let mut trained = match model {
        ReferenceModel::DigitsMlp => {
            let (set, info) = load_digits()?;
            let (train, test) = split_train_test(&set, DIGITS_TEST_FRACTION, config.seed)?;
            let split = format!(
                "stratified shuffle, {:.0}% test, seed {}",
                100.0 * DIGITS_TEST_FRACTION,
                config.seed
            );
            let dataset = LabeledDataset {
                train,
                test,
                info,
                split,
            };
            classifier_mlp(model, dataset, &[DIGITS_HIDDEN], config, train_config, mode)?
        }
        ReferenceModel::FashionMlp => {
            let dataset = load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?;
            classifier_mlp(
                model,
                dataset,
                &[FASHION_MLP_HIDDEN],
                config,
                train_config,
                mode,
            )?
        }
        ReferenceModel::FashionCnn => {
            let dataset = load_fashion_mnist(config.data.fashion_mnist_dir.as_deref())?;
            fashion_cnn(dataset, config, train_config, mode)?
        }
        ReferenceModel::KwsDsCnn | ReferenceModel::KwsDsCnnUnseenSpeaker => {
            let dir = fsdd_dir(config.data.fsdd_dir.as_deref());
            let clips = load_fsdd_clips(&dir)?;
            let split = match model {
                ReferenceModel::KwsDsCnn => FsddSplit::Conventional,
                _ => FsddSplit::HoldOutSpeaker(config.data.held_out_speaker.clone()),
            };
            let dataset = fsdd_features(&clips, &split, &MfccConfig::default(), &dir)?;
            ds_cnn(model, dataset, config, train_config, mode)?
        }
        ReferenceModel::DigitsAutoencoder => digits_autoencoder(config, train_config, mode)?,
        ReferenceModel::CharTransformer => char_transformer(config, train_config, mode)?,
    };
    trained.report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(trained)
}

/// Looks `key` up in the cache, or trains with `train` and stores the result.
fn cached_or_trained(
    config: &ZooConfig,
    mode: CacheMode,
    key: &CacheKey,
    train: impl FnOnce() -> Result<Trained, ZooError>,
) -> Result<CachedOrTrained, ZooError> {
    if let Some(cache) = &config.cache {
        if let Some((tensors, metadata)) = cache.load(key)? {
            return Ok((tensors, metadata.training, metadata.extra, true));
        }
    }
    if mode == CacheMode::CachedOnly {
        return Err(ZooError::NotCached {
            model: key.model.clone(),
            key: key.hash(),
        });
    }
    let (tensors, log, extra) = train()?;
    if let Some(cache) = &config.cache {
        cache.store(
            &tensors,
            &CacheMetadata {
                key: key.clone(),
                training: log.clone(),
                extra: extra.clone(),
            },
        )?;
    }
    Ok((tensors, log, extra, false))
}

#[allow(clippy::too_many_arguments)]
fn report(
    model: ReferenceModel,
    dataset: &LabeledDataset,
    n_train: usize,
    seed: u64,
    n_parameters: usize,
    metric: HeldOutMetric,
    from_cache: bool,
    training: TrainingLog,
    evaluate_seconds: f64,
    key: &CacheKey,
) -> Result<ModelReport, ZooError> {
    let headline = headline_of(&metric)?;
    Ok(ModelReport {
        model: model.name().into(),
        dataset: dataset.info.clone(),
        split: dataset.split.clone(),
        n_train,
        seed,
        n_parameters,
        metric,
        from_cache,
        training,
        wall_seconds: 0.0,
        evaluate_seconds,
        cache_key: key.hash(),
        inference_kernel: crate::kernel::INFERENCE_KERNEL.into(),
        headline,
    })
}

/// The headline estimate of a classification accuracy or an anomaly detector's AUC (the language model's is
/// computed from its text windows where it is evaluated).
fn headline_of(metric: &HeldOutMetric) -> Result<Option<MetricEstimate>, ZooError> {
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

fn classification_key(
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

fn evaluate_classifier(
    classifier: &dyn Classifier,
    test: &LabeledSet,
) -> Result<(HeldOutMetric, f64), ZooError> {
    let started = Stopwatch::start();
    let accuracy = classification_accuracy(
        classifier,
        test.features().view(),
        test.labels(),
        EVALUATION_BATCH,
    )?;
    Ok((
        HeldOutMetric::Accuracy(accuracy),
        started.elapsed().as_secs_f64(),
    ))
}

fn classifier_mlp(
    model: ReferenceModel,
    dataset: LabeledDataset,
    hidden: &[usize],
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let mut widths = vec![dataset.train.n_features()];
    widths.extend_from_slice(hidden);
    widths.push(dataset.train.n_classes());
    let key = classification_key(model, &format!("mlp={widths:?}"), &dataset, train_config);
    let (tensors, log, _, from_cache) = cached_or_trained(config, mode, &key, || {
        let mut store = ParamStore::new(train_config.seed);
        let candle_model = CandleMlp::new(&mut store, &widths)?;
        let train = &dataset.train;
        let log = fit(
            model.name(),
            &candle_model,
            &store,
            train.features().view(),
            Objective::Classification(train.labels()),
            train_config,
        )?;
        Ok((store.named_tensors(), log, HashMap::new()))
    })?;
    let mlp = export_mlp(&tensors, model.name())?;
    let (metric, evaluate_seconds) = evaluate_classifier(&mlp, &dataset.test)?;
    let report = report(
        model,
        &dataset,
        dataset.train.len(),
        train_config.seed,
        mlp.n_parameters(),
        metric,
        from_cache,
        log,
        evaluate_seconds,
        &key,
    )?;
    Ok(TrainedModel {
        report,
        weights: TrainedWeights::Mlp(mlp),
        test: dataset.test,
    })
}

fn fashion_cnn(
    dataset: LabeledDataset,
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let model = ReferenceModel::FashionCnn;
    let key = classification_key(
        model,
        &format!("cnn={FASHION_CNN_SHAPE:?}"),
        &dataset,
        train_config,
    );
    let (tensors, log, _, from_cache) = cached_or_trained(config, mode, &key, || {
        let mut store = ParamStore::new(train_config.seed);
        let candle_model = CandleCnn::new(&mut store, FASHION_CNN_SHAPE)?;
        let train = &dataset.train;
        let log = fit(
            model.name(),
            &candle_model,
            &store,
            train.features().view(),
            Objective::Classification(train.labels()),
            train_config,
        )?;
        Ok((store.named_tensors(), log, HashMap::new()))
    })?;
    let cnn = export_cnn(&tensors, model.name(), FASHION_CNN_SHAPE)?;
    let n_parameters = tensors.values().map(|tensor| tensor.elem_count()).sum();
    let (metric, evaluate_seconds) = evaluate_classifier(&cnn, &dataset.test)?;
    let report = report(
        model,
        &dataset,
        dataset.train.len(),
        train_config.seed,
        n_parameters,
        metric,
        from_cache,
        log,
        evaluate_seconds,
        &key,
    )?;
    Ok(TrainedModel {
        report,
        weights: TrainedWeights::Cnn(cnn),
        test: dataset.test,
    })
}

fn ds_cnn(
    model: ReferenceModel,
    dataset: LabeledDataset,
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let mfcc = MfccConfig::default();
    let shape = DsCnnShape {
        n_frames: mfcc.n_frames(),
        n_coefficients: mfcc.n_coefficients,
        channels: DS_CNN_CHANNELS,
        n_blocks: DS_CNN_BLOCKS,
        n_classes: dataset.train.n_classes(),
    };
    let key = classification_key(
        model,
        &format!("ds-cnn={shape:?}|mfcc={mfcc:?}|split={}", dataset.split),
        &dataset,
        train_config,
    );
    let (tensors, log, _, from_cache) = cached_or_trained(config, mode, &key, || {
        let scaling = Standardizer::fit(dataset.train.features().view());
        let mut store = ParamStore::new(train_config.seed);
        let candle_model = CandleDsCnn::new(&mut store, shape)?;
        let train = &dataset.train;
        let patches = ds_cnn_patches(train.features().view(), &shape, &scaling)?;
        let log = fit(
            model.name(),
            &candle_model,
            &store,
            patches.view(),
            Objective::Classification(train.labels()),
            train_config,
        )?;
        let mut tensors = store.named_tensors();
        tensors.extend(scaling_tensors(&scaling)?);
        Ok((tensors, log, HashMap::new()))
    })?;
    let network = export_ds_cnn(&tensors, model.name(), shape)?;
    let n_parameters = tensors
        .iter()
        .filter(|(name, _)| !name.starts_with("input_scaling"))
        .map(|(_, tensor)| tensor.elem_count())
        .sum();
    let (metric, evaluate_seconds) = evaluate_classifier(&network, &dataset.test)?;
    let report = report(
        model,
        &dataset,
        dataset.train.len(),
        train_config.seed,
        n_parameters,
        metric,
        from_cache,
        log,
        evaluate_seconds,
        &key,
    )?;
    Ok(TrainedModel {
        report,
        weights: TrainedWeights::DsCnn(network),
        test: dataset.test,
    })
}

fn digits_autoencoder(
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let model = ReferenceModel::DigitsAutoencoder;
    let (set, info) = load_digits()?;
    let (train_all, test) = split_train_test(&set, DIGITS_TEST_FRACTION, config.seed)?;
    let normal_rows: Vec<usize> = (0..train_all.len())
        .filter(|&row_idx| AUTOENCODER_NORMAL_CLASSES.contains(&train_all.labels()[row_idx]))
        .collect();
    let train = train_all.select(&normal_rows);
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
        train,
        test,
        info,
        split,
    };
    let key = classification_key(
        model,
        &format!("autoencoder={AUTOENCODER_WIDTHS:?}"),
        &dataset,
        train_config,
    );
    let (tensors, log, _, from_cache) = cached_or_trained(config, mode, &key, || {
        let mut store = ParamStore::new(train_config.seed);
        let candle_model = CandleMlp::new(&mut store, &AUTOENCODER_WIDTHS)?;
        let log = fit(
            model.name(),
            &candle_model,
            &store,
            dataset.train.features().view(),
            Objective::Reconstruction,
            train_config,
        )?;
        Ok((store.named_tensors(), log, HashMap::new()))
    })?;
    let autoencoder = Autoencoder {
        network: export_mlp(&tensors, model.name())?,
    };
    let evaluate_started = Stopwatch::start();
    let train_scores = autoencoder.anomaly_scores(dataset.train.features().view())?;
    let mut sorted_train: Vec<f32> = train_scores.to_vec();
    sorted_train.sort_by(f32::total_cmp);
    let threshold = sorted_train
        [((sorted_train.len() as f64 * 0.95).ceil() as usize).min(sorted_train.len()) - 1];
    let test_scores = autoencoder.anomaly_scores(dataset.test.features().view())?;
    let is_anomalous: Vec<bool> = dataset
        .test
        .labels()
        .iter()
        .map(|label| !AUTOENCODER_NORMAL_CLASSES.contains(label))
        .collect();
    let normal_scores: Vec<f32> = test_scores
        .iter()
        .zip(&is_anomalous)
        .filter(|(_, &anomalous)| !anomalous)
        .map(|(&score, _)| score)
        .collect();
    let anomalous_scores: Vec<f32> = test_scores
        .iter()
        .zip(&is_anomalous)
        .filter(|(_, &anomalous)| anomalous)
        .map(|(&score, _)| score)
        .collect();
    let n_correct = test_scores
        .iter()
        .zip(&is_anomalous)
        .filter(|(&score, &anomalous)| (score > threshold) == anomalous)
        .count();
    let metric = HeldOutMetric::AnomalyDetection {
        roc_auc: roc_auc(&normal_scores, &anomalous_scores)?,
        accuracy_at_threshold: ProportionEstimate::wilson(n_correct, test_scores.len(), 0.95)?,
        threshold,
        n_normal: normal_scores.len(),
        n_anomalous: anomalous_scores.len(),
    };
    let evaluate_seconds = evaluate_started.elapsed().as_secs_f64();
    let n_parameters = autoencoder.network.n_parameters();
    let report = report(
        model,
        &dataset,
        dataset.train.len(),
        train_config.seed,
        n_parameters,
        metric,
        from_cache,
        log,
        evaluate_seconds,
        &key,
    )?;
    Ok(TrainedModel {
        report,
        weights: TrainedWeights::Autoencoder(autoencoder),
        test: dataset.test,
    })
}

fn char_transformer(
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let model = ReferenceModel::CharTransformer;
    let corpus = load_text(&config.data.text)?;
    let vocabulary = CharVocabulary::from_text(&corpus.text);
    let tokens = vocabulary.encode(&corpus.text)?;
    let split_at = ((tokens.len() as f64) * (1.0 - TEXT_VALIDATION_FRACTION)) as usize;
    let (train_tokens, validation_tokens) = tokens.split_at(split_at);
    let architecture = default_char_transformer_config(vocabulary.len());
    let n_steps = CHAR_TRANSFORMER_STEPS;
    let mut text_state = crate::cache::FNV_OFFSET;
    for token in train_tokens {
        text_state = crate::cache::fnv1a64(&token.to_le_bytes(), text_state);
    }
    let key = CacheKey::new(
        model.name(),
        &[
            &format!("arch={architecture:?}"),
            &format!("train={train_config:?}|steps={n_steps}"),
            &format!(
                "data={}:{}:{text_state:016x}",
                corpus.info.name,
                train_tokens.len()
            ),
        ],
    );
    let vocabulary_string: String = vocabulary.chars().iter().collect();
    let (tensors, log, extra, from_cache) = cached_or_trained(config, mode, &key, || {
        let mut store = ParamStore::new(train_config.seed);
        let candle_model = CandleCharTransformer::new(&mut store, architecture.clone())?;
        let log = fit_char_transformer(&candle_model, &store, train_tokens, train_config, n_steps)?;
        let mut extra = HashMap::new();
        extra.insert("vocabulary".to_string(), vocabulary_string.clone());
        Ok((store.named_tensors(), log, extra))
    })?;
    if extra.get("vocabulary") != Some(&vocabulary_string) {
        return Err(ZooError::Weights {
            model: model.name().into(),
            reason: "cached vocabulary differs from the text's".into(),
        });
    }
    let transformer =
        export_char_transformer(&tensors, &architecture, vocabulary.chars().to_vec())?;
    let evaluate_started = Stopwatch::start();
    let windows = language_model_windows(&transformer, validation_tokens)?;
    let loss_sum: f64 = windows.iter().map(|window| window.loss_sum).sum();
    let n_predicted: usize = windows.iter().map(|window| window.n_predicted).sum();
    let n_correct: usize = windows.iter().map(|window| window.n_correct).sum();
    let loss = loss_sum / n_predicted as f64;
    let unigram = unigram_cross_entropy(train_tokens, validation_tokens, vocabulary.len());
    // The headline: model loss over unigram loss on the same predicted characters, window by window, so that
    // the interval reflects how much the ratio varies across the text (characters within a window are not
    // independent, windows nearly are).
    let log_probabilities = unigram_log_probabilities(train_tokens, vocabulary.len());
    let unigram_window_sums: Vec<f64> = windows
        .iter()
        .map(|window| {
            validation_tokens[window.start + 1..=window.start + window.n_predicted]
                .iter()
                .map(|&token| -log_probabilities[token as usize])
                .sum()
        })
        .collect();
    let model_window_sums: Vec<f64> = windows.iter().map(|window| window.loss_sum).collect();
    let ratio = ratio_of_sums(&model_window_sums, &unigram_window_sums, 0.95)?;
    let headline = MetricEstimate {
        name: "validation loss / unigram loss".into(),
        point: ratio.ratio,
        ci_lower: ratio.ci_lower,
        ci_upper: ratio.ci_upper,
        confidence: 0.95,
        n: windows.len(),
        method: format!(
            "ratio of sums over {} windows of {} characters, delta-method t interval",
            windows.len(),
            transformer.config.context_length
        ),
    };
    let metric = HeldOutMetric::LanguageModel {
        loss_nats_per_char: loss,
        unigram_loss_nats_per_char: unigram,
        perplexity: loss.exp(),
        next_char_accuracy: ProportionEstimate::wilson(n_correct, n_predicted, 0.95)?,
    };
    let evaluate_seconds = evaluate_started.elapsed().as_secs_f64();
    let validation = ndarray::Array2::from_shape_vec(
        (validation_tokens.len(), 1),
        validation_tokens
            .iter()
            .map(|&token| token as f32)
            .collect(),
    )
    .map_err(|error| ZooError::InvalidArgument {
        reason: error.to_string(),
    })?;
    let test = LabeledSet::new(validation, vec![0; validation_tokens.len()], 1)?;
    let dataset = LabeledDataset {
        train: test.clone(),
        test: test.clone(),
        info: corpus.info,
        split: format!(
            "first {:.0}% of the text train, last {:.0}% validation",
            100.0 * (1.0 - TEXT_VALIDATION_FRACTION),
            100.0 * TEXT_VALIDATION_FRACTION
        ),
    };
    let n_parameters = transformer.n_parameters();
    let mut report = report(
        model,
        &dataset,
        train_tokens.len(),
        train_config.seed,
        n_parameters,
        metric,
        from_cache,
        log,
        evaluate_seconds,
        &key,
    )?;
    report.headline = Some(headline);
    Ok(TrainedModel {
        report,
        weights: TrainedWeights::CharTransformer(transformer),
        test,
    })
}

/// Sum of next-token cross-entropies, number of predictions and number of correct top-1 predictions over
/// consecutive non-overlapping windows of `tokens` (each window of `context_length + 1` tokens predicts its last
/// `context_length`).
///
/// # Errors
/// [`ZooError::InvalidArgument`] when `tokens` is shorter than one window; model errors.
pub fn evaluate_language_model(
    model: &CharTransformer,
    tokens: &[u32],
) -> Result<(f64, usize, usize), ZooError> {
    let windows = language_model_windows(model, tokens)?;
    Ok(windows
        .iter()
        .fold((0.0, 0, 0), |(loss, predicted, correct), window| {
            (
                loss + window.loss_sum,
                predicted + window.n_predicted,
                correct + window.n_correct,
            )
        }))
}

/// One evaluation window of the language model.
struct WindowScore {
    /// Sum of the cross-entropies of the window's predictions, nats.
    loss_sum: f64,
    n_predicted: usize,
    n_correct: usize,
    /// Index of the window's first token in the evaluated text.
    start: usize,
}

/// The per-window scores behind [`evaluate_language_model`].
fn language_model_windows(
    model: &CharTransformer,
    tokens: &[u32],
) -> Result<Vec<WindowScore>, ZooError> {
    let context = model.config.context_length;
    let mut windows = Vec::new();
    for (window_idx, window) in tokens.windows(context + 1).step_by(context).enumerate() {
        let logits = model.forward(&window[..context])?;
        let mut score = WindowScore {
            loss_sum: 0.0,
            n_predicted: 0,
            n_correct: 0,
            start: window_idx * context,
        };
        for (position, row) in logits.axis_iter(Axis(0)).enumerate() {
            let target = window[position + 1] as usize;
            score.loss_sum += cross_entropy(row.iter().copied(), target)?;
            score.n_predicted += 1;
            score.n_correct += usize::from(argmax(row.iter().copied()) == Some(target));
        }
        windows.push(score);
    }
    if windows.is_empty() {
        return Err(ZooError::InvalidArgument {
            reason: format!("{} validation tokens for context {context}", tokens.len()),
        });
    }
    Ok(windows)
}

/// Add-one-smoothed unigram log-probabilities of the tokens of `train`.
fn unigram_log_probabilities(train: &[u32], vocab_size: usize) -> Vec<f64> {
    let mut counts = vec![1.0f64; vocab_size];
    for &token in train {
        counts[token as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|count| (count / total).ln()).collect()
}

/// Cross-entropy (nats per token) of `evaluated` under the add-one-smoothed token frequencies of `train`.
pub fn unigram_cross_entropy(train: &[u32], evaluated: &[u32], vocab_size: usize) -> f64 {
    let log_probabilities = unigram_log_probabilities(train, vocab_size);
    let loss: f64 = evaluated
        .iter()
        .map(|&token| -log_probabilities[token as usize])
        .sum();
    loss / evaluated.len().max(1) as f64
}
