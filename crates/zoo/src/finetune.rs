//! Fine-tuning after pruning: gradual magnitude (or neuron, or block) pruning with retraining, after Zhu and
//! Gupta (2017), on zoo's own training loop (candle, AdamW, the seeded batch order of every reference model).
//!
//! Starting from a trained MLP (a classifier or the autoencoder), training continues while the sparsity rises
//! along the cubic [`SparsitySchedule`]; the masks are recomputed from the current weights at each update step
//! and applied after every optimizer step, so a pruned weight is zero from the step it is pruned to the end.
//! The last part of the run trains at the final sparsity. Structured pruning masks whole neurons the same way
//! and then removes them, so the result is a smaller dense network (masking a neuron's incoming column, bias and
//! outgoing row during training is the same as training the smaller network: its output is `ReLU(0) = 0`).
//!
//! The result is cached as zoo caches its models ([`WeightCache`]): the key names the base model's key, a
//! fingerprint of its weights, the recipe, the schedule, the training configuration and the training data, so a
//! second run loads it. The training log (wall and CPU seconds) is kept with the weights.

use perf_core::timer::Stopwatch;
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::cache::{data_fingerprint, fnv1a64, CacheKey, CacheMetadata, NamedTensors, FNV_OFFSET};
use crate::models::Mlp;
use crate::prune::{
    remove_masked_neurons, weight_sparsity, MlpMasks, PruningMethod, PruningRecipe,
    SparsitySchedule,
};
use crate::reference::{training_set, ReferenceModel, TrainedModel, TrainedWeights, ZooConfig};
use crate::train::{export_mlp, fit_with_hook, CandleMlp, Objective, ParamStore, TrainConfig};
use crate::{TrainingLog, WeightCache, ZooError};

/// How long and how fine-tuning runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Optimizer, epochs, batch size, seed (of the batch order).
    pub train: TrainConfig,
    /// Share of the optimizer steps over which the sparsity rises (the rest train at the final sparsity).
    pub pruning_share: f64,
    /// Mask updates while the sparsity rises (`n` of the schedule).
    pub n_updates: usize,
}

/// What fine-tuning minimizes.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum FineTuneObjective<'a> {
    /// Cross-entropy against these labels (one per feature row).
    Classification(&'a [usize]),
    /// Mean squared reconstruction error (the autoencoder).
    Reconstruction,
}

/// What one fine-tuning did (or loaded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneReport {
    /// The cache entry's model name.
    pub name: String,
    /// What was pruned, and how much.
    pub recipe: PruningRecipe,
    /// The sparsity schedule.
    pub schedule: SparsitySchedule,
    /// The configuration.
    pub config: FineTuneConfig,
    /// The base model's key as the caller gave it.
    pub base_key: String,
    /// The cache key hash of the fine-tuned weights.
    pub cache_key: String,
    /// Whether the weights came from the cache (then `training` is the log of the run that trained them).
    pub from_cache: bool,
    /// The fine-tuning log: steps, losses, wall and CPU seconds.
    pub training: TrainingLog,
    /// Share of zero weights (not biases) in the result.
    pub weight_sparsity: f64,
    /// Layer widths of the result (input first): structured pruning shrinks the hidden ones.
    pub widths: Vec<usize>,
    /// Seconds spent on this recipe in this call (fine-tuning or cache load; the shared data loading and
    /// fingerprinting not included).
    pub wall_seconds: f64,
}

/// A pruned, fine-tuned MLP and its report.
#[derive(Debug, Clone)]
pub struct FineTuned {
    /// The network (magnitude and block pruning: zeros where pruned; neurons: the smaller dense network).
    pub mlp: Mlp,
    /// What was done.
    pub report: FineTuneReport,
}

/// A fingerprint of an MLP's weights: layer shapes and every parameter's bits.
fn mlp_fingerprint(mlp: &Mlp) -> String {
    let mut state = FNV_OFFSET;
    for layer in &mlp.layers {
        for &dim in layer.weight.shape() {
            state = fnv1a64(&(dim as u64).to_le_bytes(), state);
        }
        for value in layer.weight.iter().chain(layer.bias.iter()) {
            state = fnv1a64(&value.to_bits().to_le_bytes(), state);
        }
    }
    format!("{state:016x}")
}

fn widths(mlp: &Mlp) -> Vec<usize> {
    let mut widths: Vec<usize> = mlp
        .layers
        .first()
        .map(|l| l.in_features())
        .into_iter()
        .collect();
    widths.extend(mlp.layers.iter().map(|layer| layer.out_features()));
    widths
}

fn mlp_tensors(mlp: &Mlp) -> Result<NamedTensors, ZooError> {
    let mut tensors = HashMap::new();
    for (layer_idx, layer) in mlp.layers.iter().enumerate() {
        // Row-major order whatever the array's layout.
        let weight: Vec<f32> = layer.weight.iter().copied().collect();
        tensors.insert(
            format!("layers.{layer_idx}.weight"),
            Tensor::from_vec(weight, layer.weight.dim(), &Device::Cpu)?,
        );
        tensors.insert(
            format!("layers.{layer_idx}.bias"),
            Tensor::from_slice(&layer.bias.to_vec(), layer.bias.len(), &Device::Cpu)?,
        );
    }
    Ok(tensors)
}

/// Optimizer steps `fit` takes with `config` on `n_rows` rows.
fn total_steps(config: &TrainConfig, n_rows: usize) -> usize {
    let all = config.epochs * n_rows.div_ceil(config.batch_size.max(1));
    config.max_steps.map_or(all, |max_steps| all.min(max_steps))
}

/// The schedule `config` gives on `n_rows` training rows.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for too few steps or a bad sparsity.
pub fn schedule_for(
    recipe: &PruningRecipe,
    config: &FineTuneConfig,
    n_rows: usize,
) -> Result<SparsitySchedule, ZooError> {
    SparsitySchedule::over_steps(
        total_steps(&config.train, n_rows),
        recipe.sparsity,
        config.pruning_share,
        config.n_updates,
    )
}

/// For each recipe, prunes `base` gradually while training it on `features` (with `objective`), or loads the
/// result from `cache`. `name` prefixes the cache files; `base_key` identifies the base model (its own cache
/// key, or a description of how it was trained) and is part of the key with a fingerprint of the base weights.
/// The data and weights are fingerprinted once for all recipes.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for empty data, labels that do not match the rows, a schedule longer than
/// training, or a recipe the network cannot take; [`ZooError::Shape`] when the features do not fit `base`;
/// [`ZooError::Diverged`]; cache and candle errors.
#[allow(clippy::too_many_arguments)]
pub fn prune_and_finetune(
    name: &str,
    base: &Mlp,
    base_key: &str,
    features: ArrayView2<'_, f32>,
    objective: FineTuneObjective<'_>,
    recipes: &[PruningRecipe],
    config: &FineTuneConfig,
    cache: Option<&WeightCache>,
) -> Result<Vec<FineTuned>, ZooError> {
    let Some(first) = base.layers.first() else {
        return Err(ZooError::InvalidArgument {
            reason: "MLP without layers".into(),
        });
    };
    if first.in_features() != features.ncols() {
        return Err(crate::error::shape_error(
            "fine-tuning features",
            first.in_features(),
            features.ncols(),
        ));
    }
    let labels: &[usize] = match objective {
        FineTuneObjective::Classification(labels) => {
            if labels.len() != features.nrows() {
                return Err(ZooError::InvalidArgument {
                    reason: format!("{} labels for {} rows", labels.len(), features.nrows()),
                });
            }
            labels
        }
        FineTuneObjective::Reconstruction => &[],
    };
    let base_fingerprint = mlp_fingerprint(base);
    let data = data_fingerprint(features, labels);
    recipes
        .iter()
        .map(|recipe| {
            finetune_one(
                name,
                base,
                base_key,
                &base_fingerprint,
                features,
                &data,
                objective,
                recipe,
                config,
                cache,
            )
        })
        .collect()
}

/// One recipe of [`prune_and_finetune`], the fingerprints given.
#[allow(clippy::too_many_arguments)]
fn finetune_one(
    name: &str,
    base: &Mlp,
    base_key: &str,
    base_fingerprint: &str,
    features: ArrayView2<'_, f32>,
    data_fingerprint: &str,
    objective: FineTuneObjective<'_>,
    recipe: &PruningRecipe,
    config: &FineTuneConfig,
    cache: Option<&WeightCache>,
) -> Result<FineTuned, ZooError> {
    let started = Stopwatch::start();
    let schedule = schedule_for(recipe, config, features.nrows())?;
    let key = CacheKey::new(
        name,
        &[
            &format!("base={base_key}"),
            &format!("base-weights={base_fingerprint}"),
            &format!("recipe={recipe:?}"),
            &format!("schedule={schedule:?}"),
            &format!("finetune={config:?}"),
            &format!(
                "objective={}",
                match objective {
                    FineTuneObjective::Classification(_) => "cross-entropy",
                    FineTuneObjective::Reconstruction => "reconstruction-mse",
                }
            ),
            &format!("data={data_fingerprint}"),
        ],
    );
    let report = |mlp: &Mlp, training: TrainingLog, from_cache: bool| FineTuneReport {
        name: name.to_string(),
        recipe: *recipe,
        schedule,
        config: config.clone(),
        base_key: base_key.to_string(),
        cache_key: key.hash(),
        from_cache,
        training,
        weight_sparsity: weight_sparsity(mlp),
        widths: widths(mlp),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(cache) = cache {
        if let Some((tensors, metadata)) = cache.load(&key)? {
            let mlp = export_mlp(&tensors, name)?;
            let report = report(&mlp, metadata.training, true);
            return Ok(FineTuned { mlp, report });
        }
    }
    let (mlp, log) = run_finetune(
        name,
        base,
        features,
        objective,
        recipe.method,
        &schedule,
        &config.train,
        None,
    )?;
    if let Some(cache) = cache {
        let mut extra = HashMap::new();
        extra.insert("recipe".to_string(), format!("{recipe:?}"));
        extra.insert("schedule".to_string(), format!("{schedule:?}"));
        cache.store(
            &mlp_tensors(&mlp)?,
            &CacheMetadata {
                key: key.clone(),
                training: log.clone(),
                extra,
            },
        )?;
    }
    let report = report(&mlp, log, false);
    Ok(FineTuned { mlp, report })
}

/// Called after every optimizer step with the step count, the current (masked) weights and the masks.
type Inspector<'a> = dyn FnMut(usize, &Mlp, &MlpMasks) -> Result<(), ZooError> + 'a;

/// The training itself: masks recomputed on the schedule's update steps and applied after every step.
/// `inspect` (tests) sees the weights after each step; exporting them costs a copy per step, so only tests
/// pass one, on tiny networks.
#[allow(clippy::too_many_arguments)]
fn run_finetune(
    name: &str,
    base: &Mlp,
    features: ArrayView2<'_, f32>,
    objective: FineTuneObjective<'_>,
    method: PruningMethod,
    schedule: &SparsitySchedule,
    train: &TrainConfig,
    mut inspect: Option<&mut Inspector<'_>>,
) -> Result<(Mlp, TrainingLog), ZooError> {
    let steps = total_steps(train, features.nrows());
    if schedule.end_step() > steps {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "the sparsity schedule ends at step {} but training takes {steps} steps",
                schedule.end_step()
            ),
        });
    }
    let mut store = ParamStore::new(train.seed);
    let mut layers = Vec::with_capacity(base.layers.len());
    for (name, tensor) in {
        let mut named: Vec<(String, Tensor)> = mlp_tensors(base)?.into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    } {
        store.insert(&name, tensor)?;
    }
    for layer_idx in 0..base.layers.len() {
        let handle = |part: &str| -> Result<Tensor, ZooError> {
            let var_name = format!("layers.{layer_idx}.{part}");
            store
                .var(&var_name)
                .map(|var| var.as_tensor().clone())
                .ok_or_else(|| ZooError::Weights {
                    model: name.into(),
                    reason: format!("missing {var_name}"),
                })
        };
        layers.push((handle("weight")?, handle("bias")?));
    }
    let candle_model = CandleMlp { layers };
    let current = |store: &ParamStore| export_mlp(&store.named_tensors(), name);
    let mask_tensors = |masks: &MlpMasks| -> Result<Vec<(Tensor, Tensor)>, ZooError> {
        masks
            .weights
            .iter()
            .zip(&masks.biases)
            .map(|(weight, bias)| {
                Ok((
                    Tensor::from_vec(
                        weight.iter().copied().collect::<Vec<f32>>(),
                        weight.dim(),
                        &Device::Cpu,
                    )?,
                    Tensor::from_slice(&bias.to_vec(), bias.len(), &Device::Cpu)?,
                ))
            })
            .collect()
    };
    let apply = |store: &ParamStore, tensors: &[(Tensor, Tensor)]| -> Result<(), ZooError> {
        for (layer_idx, (weight_mask, bias_mask)) in tensors.iter().enumerate() {
            for (part, mask) in [("weight", weight_mask), ("bias", bias_mask)] {
                if let Some(var) = store.var(&format!("layers.{layer_idx}.{part}")) {
                    var.set(&var.as_tensor().mul(mask)?)?;
                }
            }
        }
        Ok(())
    };
    let mut masks = MlpMasks::compute(base, method, schedule.sparsity_at(0), None)?;
    let mut masks_as_tensors = mask_tensors(&masks)?;
    apply(&store, &masks_as_tensors)?;
    let candle_objective = match objective {
        FineTuneObjective::Classification(labels) => Objective::Classification(labels),
        FineTuneObjective::Reconstruction => Objective::Reconstruction,
    };
    let log = fit_with_hook(
        name,
        &candle_model,
        &store,
        features,
        candle_objective,
        train,
        &mut |step| {
            if schedule.is_update_step(step) {
                masks = MlpMasks::compute(
                    &current(&store)?,
                    method,
                    schedule.sparsity_at(step),
                    Some(&masks),
                )?;
                masks_as_tensors = mask_tensors(&masks)?;
            }
            apply(&store, &masks_as_tensors)?;
            match inspect.as_mut() {
                Some(inspect) => inspect(step, &current(&store)?, &masks),
                None => Ok(()),
            }
        },
    )?;
    let masked = current(&store)?;
    let mlp = match method {
        PruningMethod::Neurons => remove_masked_neurons(&masked, &masks)?,
        _ => masked,
    };
    Ok((mlp, log))
}

/// The fine-tuning configuration for a reference model's pruned variants: the base model's optimizer and batch
/// size at half its learning rate, `epochs` passes (three quarters of them ramping the sparsity up, in 16
/// updates), seeded by `seed`.
pub fn default_finetune_config(model: ReferenceModel, seed: u64, epochs: usize) -> FineTuneConfig {
    let base = crate::reference::default_train_config(model, seed);
    FineTuneConfig {
        train: TrainConfig {
            epochs,
            learning_rate: base.learning_rate * 0.5,
            ..base
        },
        pruning_share: 0.75,
        n_updates: 16,
    }
}

/// Fine-tunes pruned variants (one per recipe) of a reference MLP or the autoencoder (`trained`, as
/// [`crate::train_or_load`] returned it for `model` and `zoo_config`) on the training rows it was trained on
/// (loaded once), cached in `zoo_config.cache`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] when `trained` is not an MLP or autoencoder of `model`; as
/// [`prune_and_finetune`].
pub fn finetune_reference(
    model: ReferenceModel,
    trained: &TrainedModel,
    zoo_config: &ZooConfig,
    recipes: &[PruningRecipe],
    config: &FineTuneConfig,
) -> Result<Vec<FineTuned>, ZooError> {
    if trained.report.model != model.name() {
        return Err(ZooError::InvalidArgument {
            reason: format!("a trained {} is not {}", trained.report.model, model.name()),
        });
    }
    let (mlp, objective_is_reconstruction) = match (&trained.weights, model) {
        (TrainedWeights::Mlp(mlp), ReferenceModel::DigitsMlp | ReferenceModel::FashionMlp) => {
            (mlp, false)
        }
        (TrainedWeights::Autoencoder(autoencoder), ReferenceModel::DigitsAutoencoder) => {
            (&autoencoder.network, true)
        }
        _ => {
            return Err(ZooError::InvalidArgument {
                reason: format!("{} is not an MLP or the autoencoder", model.name()),
            })
        }
    };
    let train = training_set(model, zoo_config)?;
    let objective = if objective_is_reconstruction {
        FineTuneObjective::Reconstruction
    } else {
        FineTuneObjective::Classification(train.labels())
    };
    prune_and_finetune(
        &format!("{}-pruned", model.name()),
        mlp,
        &format!("{}-{}", model.name(), trained.report.cache_key),
        train.features().view(),
        objective,
        recipes,
        config,
        zoo_config.cache.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::train_mlp_classifier;

    fn tiny_data() -> (ndarray::Array2<f32>, Vec<usize>) {
        let (set, _) = datasets::load_digits().unwrap();
        let rows: Vec<usize> = (0..240).collect();
        let subset = set.select(&rows);
        (subset.features().clone(), subset.labels().to_vec())
    }

    fn tiny_base(features: &ndarray::Array2<f32>, labels: &[usize]) -> Mlp {
        let config = TrainConfig {
            epochs: 3,
            batch_size: 32,
            learning_rate: 1e-2,
            ..TrainConfig::default()
        };
        train_mlp_classifier(features.view(), labels, 10, &[16], &config)
            .unwrap()
            .0
    }

    fn tiny_config() -> FineTuneConfig {
        FineTuneConfig {
            train: TrainConfig {
                epochs: 4,
                batch_size: 32,
                learning_rate: 5e-3,
                ..TrainConfig::default()
            },
            pruning_share: 0.5,
            n_updates: 4,
        }
    }

    #[test]
    fn masks_keep_pruned_weights_at_zero_through_training() {
        let (features, labels) = tiny_data();
        let base = tiny_base(&features, &labels);
        let config = tiny_config();
        for method in [
            PruningMethod::Magnitude,
            PruningMethod::Neurons,
            PruningMethod::Blocks { width: 16 },
        ] {
            let recipe = PruningRecipe {
                method,
                sparsity: 0.75,
            };
            let schedule = schedule_for(&recipe, &config, features.nrows()).unwrap();
            let mut previous: Option<MlpMasks> = None;
            let mut n_inspected = 0;
            let (result, log) = run_finetune(
                "tiny",
                &base,
                features.view(),
                FineTuneObjective::Classification(&labels),
                method,
                &schedule,
                &config.train,
                Some(&mut |step, weights, masks| {
                    n_inspected += 1;
                    assert_eq!(step, n_inspected);
                    // Every masked parameter is exactly zero after every optimizer step.
                    for ((layer, weight_mask), bias_mask) in
                        weights.layers.iter().zip(&masks.weights).zip(&masks.biases)
                    {
                        for (value, mask) in layer.weight.iter().zip(weight_mask) {
                            assert!(*mask != 0.0 || *value == 0.0, "step {step}: {value}");
                        }
                        for (value, mask) in layer.bias.iter().zip(bias_mask) {
                            assert!(*mask != 0.0 || *value == 0.0, "step {step}: {value}");
                        }
                    }
                    // Masks only grow.
                    if let Some(previous) = &previous {
                        for (before, after) in previous.weights.iter().zip(&masks.weights) {
                            assert!(before
                                .iter()
                                .zip(after)
                                .all(|(&b, &a)| b != 0.0 || a == 0.0));
                        }
                    }
                    previous = Some(masks.clone());
                    Ok(())
                }),
            )
            .unwrap();
            assert_eq!(log.steps, n_inspected);
            match method {
                PruningMethod::Neurons => {
                    assert_eq!(widths(&result), vec![64, 4, 10]);
                }
                PruningMethod::Magnitude => {
                    // Exactly floor(0.75 · len) zeros per layer at the end.
                    for layer in &result.layers {
                        let zeros = layer.weight.iter().filter(|&&v| v == 0.0).count();
                        assert_eq!(zeros, (0.75 * layer.weight.len() as f64).floor() as usize);
                    }
                }
                _ => assert!(weight_sparsity(&result) >= 0.7),
            }
        }
    }

    #[test]
    fn finetuned_weights_round_trip_through_the_cache() {
        let (features, labels) = tiny_data();
        let base = tiny_base(&features, &labels);
        let dir = std::env::temp_dir().join(format!(
            "torchperf-zoo-finetune-test-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = WeightCache::new(&dir);
        let recipe = PruningRecipe {
            method: PruningMethod::Magnitude,
            sparsity: 0.5,
        };
        let config = tiny_config();
        let run = |recipe: &PruningRecipe, config: &FineTuneConfig| {
            prune_and_finetune(
                "tiny-pruned",
                &base,
                "tiny-base",
                features.view(),
                FineTuneObjective::Classification(&labels),
                std::slice::from_ref(recipe),
                config,
                Some(&cache),
            )
            .unwrap()
            .remove(0)
        };
        let first = run(&recipe, &config);
        assert!(!first.report.from_cache);
        let second = run(&recipe, &config);
        assert!(second.report.from_cache);
        assert_eq!(first.mlp, second.mlp);
        assert_eq!(first.report.training, second.report.training);
        assert_eq!(first.report.cache_key, second.report.cache_key);
        // Another sparsity or schedule is another entry.
        let other = run(
            &PruningRecipe {
                sparsity: 0.6,
                ..recipe
            },
            &config,
        );
        assert!(!other.report.from_cache);
        let longer = FineTuneConfig {
            n_updates: 2,
            ..config.clone()
        };
        assert_ne!(
            run(&recipe, &longer).report.cache_key,
            first.report.cache_key
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (features, labels) = tiny_data();
        let base = tiny_base(&features, &labels);
        let recipe = PruningRecipe {
            method: PruningMethod::Magnitude,
            sparsity: 0.5,
        };
        let config = tiny_config();
        let call = |features: ArrayView2<'_, f32>, labels: &[usize], config: &FineTuneConfig| {
            prune_and_finetune(
                "tiny",
                &base,
                "tiny",
                features,
                FineTuneObjective::Classification(labels),
                &[recipe],
                config,
                None,
            )
        };
        assert!(call(features.view(), &labels[1..], &config).is_err());
        assert!(call(features.slice(ndarray::s![.., 1..]), &labels, &config).is_err());
        let too_short = FineTuneConfig {
            n_updates: 1000,
            ..config.clone()
        };
        assert!(call(features.view(), &labels, &too_short).is_err());
    }
}
