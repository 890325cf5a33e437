//! The skeleton every reference model shares: a [`Recipe`] says what is particular to one model (its cache key,
//! how its candle network is built and fitted, how the weights are exported, counted and evaluated), and
//! [`run_recipe`] runs any recipe the same way: key → cached or trained → export → count → evaluate → report.
//!
//! A cache entry that exists but cannot be read is an error ([`ZooError::Cache`]), never a silent retrain: the
//! entry is left as it was for someone to look at. An entry stored under a colliding key is a miss.

use std::collections::HashMap;

use candle_core::Tensor;
use datasets::{DatasetInfo, LabeledDataset, LabeledSet};
use perf_core::timer::Stopwatch;

use super::report::{headline_of, HeldOutMetric, ModelReport};
use super::{ReferenceModel, TrainedModel, TrainedWeights, ZooConfig};
use crate::cache::{CacheKey, CacheMetadata, NamedTensors};
use crate::metrics::MetricEstimate;
use crate::train::{ParamStore, TrainConfig, TrainingLog};
use crate::ZooError;

/// Whether a cache miss trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CacheMode {
    /// Train on a miss and store the result ([`super::train_or_load`]).
    TrainIfMissing,
    /// A miss is [`ZooError::NotCached`] ([`super::load_cached`]).
    CachedOnly,
}

/// One reference model: what [`run_recipe`] needs to know about it. The data are loaded when the recipe is made.
pub(super) trait Recipe {
    /// The candle network under training.
    type Candle;
    /// The exported (candle-free) network.
    type Network;

    /// Which reference model this is.
    fn model(&self) -> ReferenceModel;

    /// The cache key: the model, the architecture, `train_config` and a fingerprint of the training data.
    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey;

    /// Creates the network's parameters in `store`. The order in which they are created is the order in which
    /// they are drawn from the seeded generator, so it fixes the initial weights (and the cached ones).
    ///
    /// # Errors
    /// Candle errors.
    fn build(&self, store: &mut ParamStore) -> Result<Self::Candle, ZooError>;

    /// Trains `candle`, whose parameters are `store`'s, on the recipe's training data.
    ///
    /// # Errors
    /// Invalid data or settings, divergence, candle errors.
    fn fit(
        &self,
        candle: &Self::Candle,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError>;

    /// Untrained tensors stored with the parameters (the DS-CNN's input standardization); none by default.
    ///
    /// # Errors
    /// Candle errors.
    fn extra_tensors(&self, _candle: &Self::Candle) -> Result<Vec<(String, Tensor)>, ZooError> {
        Ok(Vec::new())
    }

    /// Strings stored in the cache's side file that the model needs to be rebuilt (the transformer's
    /// vocabulary); none by default.
    fn extra_strings(&self) -> HashMap<String, String> {
        HashMap::new()
    }

    /// The ndarray network from trained or cached weights.
    ///
    /// # Errors
    /// [`ZooError::Weights`] when a tensor is missing, has the wrong shape, or the side file does not match.
    fn export(&self, weights: &StoredWeights) -> Result<Self::Network, ZooError>;

    /// Trainable parameters (untrained tensors such as a standardization are not counted).
    fn n_parameters(&self, tensors: &NamedTensors, network: &Self::Network) -> usize;

    /// The held-out metric, computed on the exported network (the project's kernel, not candle).
    ///
    /// # Errors
    /// Model and statistics errors.
    fn evaluate(&self, network: &Self::Network) -> Result<Evaluation, ZooError>;

    /// The recipe's data and the network as the parts of a [`TrainedModel`].
    ///
    /// # Errors
    /// When the held-out set cannot be assembled.
    fn finish(self, network: Self::Network) -> Result<Finished, ZooError>;
}

/// Weights as trained, or as loaded from the cache, with what was stored beside them.
pub(super) struct StoredWeights {
    /// The parameters (and any untrained tensors stored with them), by name.
    pub(super) tensors: NamedTensors,
    /// How they were trained (from the side file when cached).
    pub(super) training: TrainingLog,
    /// The side file's extra strings.
    pub(super) extra: HashMap<String, String>,
    /// Whether they came from the cache.
    pub(super) from_cache: bool,
}

/// What [`Recipe::evaluate`] measured.
pub(super) struct Evaluation {
    /// The held-out metric.
    pub(super) metric: HeldOutMetric,
    /// A headline computed where the model is evaluated (the language model's); `None` derives it from
    /// the metric (accuracy with its Wilson interval, ROC AUC with Hanley–McNeil).
    pub(super) headline: Option<MetricEstimate>,
}

impl From<HeldOutMetric> for Evaluation {
    fn from(metric: HeldOutMetric) -> Self {
        Evaluation {
            metric,
            headline: None,
        }
    }
}

/// A finished recipe's parts of a [`TrainedModel`] and its report.
pub(super) struct Finished {
    /// The exported weights.
    pub(super) weights: TrainedWeights,
    /// The held-out set the model was evaluated on.
    pub(super) test: LabeledSet,
    /// Provenance of the data.
    pub(super) info: DatasetInfo,
    /// How train and test were separated.
    pub(super) split: String,
    /// Training samples (characters for the transformer).
    pub(super) n_train: usize,
}

impl Finished {
    /// The parts of a model trained on `dataset.train` and evaluated on `dataset.test`.
    pub(super) fn from_dataset(dataset: LabeledDataset, weights: TrainedWeights) -> Self {
        Finished {
            weights,
            n_train: dataset.train.len(),
            test: dataset.test,
            info: dataset.info,
            split: dataset.split,
        }
    }
}

/// Looks `key` up in the cache, or trains with `train` and stores the result.
///
/// # Errors
/// [`ZooError::Cache`] for an entry that exists but cannot be read (it is not overwritten) or cannot be
/// written; [`ZooError::NotCached`] on a miss in [`CacheMode::CachedOnly`]; whatever `train` returns.
pub(super) fn cached_or_trained(
    config: &ZooConfig,
    mode: CacheMode,
    key: &CacheKey,
    train: impl FnOnce() -> Result<StoredWeights, ZooError>,
) -> Result<StoredWeights, ZooError> {
    if let Some(cache) = &config.cache {
        if let Some((tensors, metadata)) = cache.load(key)? {
            return Ok(StoredWeights {
                tensors,
                training: metadata.training,
                extra: metadata.extra,
                from_cache: true,
            });
        }
    }
    if mode == CacheMode::CachedOnly {
        return Err(ZooError::NotCached {
            model: key.model.clone(),
            key: key.hash(),
        });
    }
    let trained = train()?;
    if let Some(cache) = &config.cache {
        cache.store(
            &trained.tensors,
            &CacheMetadata {
                key: key.clone(),
                training: trained.training.clone(),
                extra: trained.extra.clone(),
            },
        )?;
    }
    Ok(trained)
}

/// Runs `recipe`: its key, the weights from the cache or from training (stored on a miss), export, the
/// parameter count, the held-out evaluation (timed) and the report. `wall_seconds` is left at zero for the
/// caller, who also timed the data loading.
///
/// # Errors
/// As [`cached_or_trained`], [`Recipe::export`], [`Recipe::evaluate`] and [`Recipe::finish`]; a statistics
/// error when the headline interval cannot be computed.
pub(super) fn run_recipe<R: Recipe>(
    recipe: R,
    config: &ZooConfig,
    train_config: &TrainConfig,
    mode: CacheMode,
) -> Result<TrainedModel, ZooError> {
    let model = recipe.model();
    let key = recipe.cache_key(train_config);
    let stored = cached_or_trained(config, mode, &key, || {
        let mut store = ParamStore::new(train_config.seed);
        let candle = recipe.build(&mut store)?;
        let training = recipe.fit(&candle, &store, train_config)?;
        let mut tensors = store.named_tensors();
        tensors.extend(recipe.extra_tensors(&candle)?);
        Ok(StoredWeights {
            tensors,
            training,
            extra: recipe.extra_strings(),
            from_cache: false,
        })
    })?;
    let network = recipe.export(&stored)?;
    let n_parameters = recipe.n_parameters(&stored.tensors, &network);
    let evaluate_started = Stopwatch::start();
    let evaluation = recipe.evaluate(&network)?;
    let evaluate_seconds = evaluate_started.elapsed().as_secs_f64();
    let headline = match evaluation.headline {
        Some(headline) => Some(headline),
        None => headline_of(&evaluation.metric)?,
    };
    let finished = recipe.finish(network)?;
    let report = ModelReport {
        model: model.name().into(),
        dataset: finished.info,
        split: finished.split,
        n_train: finished.n_train,
        seed: train_config.seed,
        n_parameters,
        metric: evaluation.metric,
        from_cache: stored.from_cache,
        training: stored.training,
        wall_seconds: 0.0,
        evaluate_seconds,
        cache_key: key.hash(),
        inference_kernel: crate::kernel::INFERENCE_KERNEL.into(),
        headline,
    };
    Ok(TrainedModel {
        report,
        weights: finished.weights,
        test: finished.test,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};

    use super::*;
    use crate::cache::WeightCache;
    use crate::reference::classifiers::MlpRecipe;
    use crate::reference::default_train_config;

    /// A few optimizer steps: enough to store an entry, fast in a debug build.
    fn short_config() -> TrainConfig {
        TrainConfig {
            max_steps: Some(5),
            ..default_train_config(ReferenceModel::DigitsMlp, 0)
        }
    }

    fn run(config: &ZooConfig, mode: CacheMode) -> Result<TrainedModel, ZooError> {
        let recipe = MlpRecipe::load(ReferenceModel::DigitsMlp, config)?;
        run_recipe(recipe, config, &short_config(), mode)
    }

    #[test]
    fn a_corrupt_entry_is_an_error_and_is_left_as_it_was() {
        let dir = std::env::temp_dir().join(format!(
            "torchperf-zoo-recipe-corrupt-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = WeightCache::new(&dir);
        let config = ZooConfig {
            cache: Some(cache.clone()),
            ..ZooConfig::default()
        };
        let trained = run(&config, CacheMode::TrainIfMissing).unwrap();
        assert!(!trained.report.from_cache);
        let key = MlpRecipe::load(ReferenceModel::DigitsMlp, &config)
            .unwrap()
            .cache_key(&short_config());
        assert_eq!(trained.report.cache_key, key.hash());
        let weights_path = cache.weights_path(&key);
        let metadata_path = weights_path.with_extension("json");
        let good_metadata = std::fs::read(&metadata_path).unwrap();

        // Unreadable weights: an error naming the file, in both modes, never a silent retrain over them.
        std::fs::write(&weights_path, b"garbage").unwrap();
        for mode in [CacheMode::TrainIfMissing, CacheMode::CachedOnly] {
            match run(&config, mode) {
                Err(ZooError::Cache { path, .. }) => assert_eq!(path, weights_path),
                other => panic!("{mode:?}: expected a cache error, got {other:?}"),
            }
        }
        assert_eq!(std::fs::read(&weights_path).unwrap(), b"garbage");

        // An unparsable side file: the same.
        std::fs::write(&metadata_path, b"{ not json").unwrap();
        match run(&config, CacheMode::TrainIfMissing) {
            Err(ZooError::Cache { path, .. }) => assert_eq!(path, metadata_path),
            other => panic!("expected a cache error, got {other:?}"),
        }
        assert_eq!(std::fs::read(&metadata_path).unwrap(), b"{ not json");

        // Readable but not this model's tensors: export refuses them.
        std::fs::write(&metadata_path, &good_metadata).unwrap();
        let stranger: HashMap<String, Tensor> = [(
            "unrelated".to_string(),
            Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap(),
        )]
        .into();
        candle_core::safetensors::save(&stranger, &weights_path).unwrap();
        assert!(matches!(
            run(&config, CacheMode::CachedOnly),
            Err(ZooError::Weights { .. })
        ));

        // A side file stored under another key (a hash collision) is a miss: CachedOnly says so, and
        // TrainIfMissing trains and replaces the entry, which then loads.
        let mut colliding: CacheMetadata = serde_json::from_slice(&good_metadata).unwrap();
        colliding.key.description.push_str("|other");
        std::fs::write(&metadata_path, serde_json::to_vec(&colliding).unwrap()).unwrap();
        assert!(matches!(
            run(&config, CacheMode::CachedOnly),
            Err(ZooError::NotCached { .. })
        ));
        let retrained = run(&config, CacheMode::TrainIfMissing).unwrap();
        assert!(!retrained.report.from_cache);
        assert_eq!(retrained.report.metric, trained.report.metric);
        let reloaded = run(&config, CacheMode::CachedOnly).unwrap();
        assert!(reloaded.report.from_cache);
        assert_eq!(reloaded.report.metric, trained.report.metric);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
