//! The image events: image classification (the Fashion MLP and CNN, or the embedded digits MLP), anomaly
//! detection (the digits autoencoder) and visual wake words (the proxy MLP on Fashion-MNIST), each field with
//! its fine-tuned pruned submissions.

use super::super::pruning_claims;
use super::judge::{event_error, judge_finetuned_event};
use super::models::{small_mlp_config, train_vww_model, VwwModel};
use super::{as_dyn, cached_model, mlp_of, skipped_recipes, ModuleContext};
use anyhow::{Context, Result};
use olympics::reference;
use olympics::submissions::{cnn_storage_bytes, InputTransform, ZooClassifier};
use olympics::{RefereeConfig, Submission};
use perf_core::claim::ClaimResult;
use zoo::{train_or_load, ReferenceModel, TrainedWeights, ZooConfig};

pub(super) fn image_classification(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
    config: &RefereeConfig,
    coverage: &mut Vec<String>,
) -> Vec<ClaimResult> {
    let loading = perf_core::timer::Stopwatch::start();
    let quick_fashion = if context.quick {
        cached_model(zoo_config, ReferenceModel::FashionMlp, coverage)
    } else {
        None
    };
    let use_fashion = !context.quick || quick_fashion.is_some();
    let model = if use_fashion {
        ReferenceModel::FashionMlp
    } else {
        coverage.push("image_classification on Fashion-MNIST skipped in quick mode (the Fashion MLP is not in the weight cache): the embedded digits fallback ran instead".into());
        ReferenceModel::DigitsMlp
    };
    let loaded = match quick_fashion {
        Some(trained) => Ok(trained),
        None => train_or_load(model, zoo_config),
    };
    eprintln!(
        "olympics: {} trained or loaded in {:.1} s (wall)",
        model.name(),
        loading.elapsed().as_secs_f64()
    );
    let trained = match loaded {
        Ok(trained) => trained,
        Err(error) if model == ReferenceModel::FashionMlp => {
            coverage.push(format!(
                "Fashion-MNIST unavailable ({error}); digits fallback"
            ));
            match train_or_load(ReferenceModel::DigitsMlp, zoo_config) {
                Ok(trained) => trained,
                Err(error) => {
                    return vec![event_error(
                        "image_classification",
                        format!("digits MLP: {error}"),
                    )]
                }
            }
        }
        Err(error) => {
            return vec![event_error(
                "image_classification",
                format!("{}: {error}", model.name()),
            )]
        }
    };
    let Some(mlp) = mlp_of(&trained.weights) else {
        return vec![event_error(
            "image_classification",
            "zoo returned a non-MLP model".into(),
        )];
    };
    let run = || -> Result<Vec<ClaimResult>> {
        let event = olympics::events::image_classification(
            &trained.test,
            &trained.report.dataset,
            &trained.report.split,
        )?;
        let recipes = reference::mlp_recipes(context.quick);
        let trained_model = ReferenceModel::ALL
            .into_iter()
            .find(|model| model.name() == trained.report.model)
            .context("zoo returned an unknown model")?;
        let finetuned = pruning_claims::finetune_reference_field(
            trained_model,
            &trained,
            zoo_config,
            &recipes,
            context.quick,
        )?;
        let mut field: Vec<Box<dyn Submission>> = reference::mlp_classifiers_finetuned(
            mlp,
            &finetuned.networks,
            &InputTransform::Identity,
            &recipes,
        )?
        .into_iter()
        .map(|submission| Box::new(submission) as Box<dyn Submission>)
        .collect();
        let mut skipped = skipped_recipes(context.quick);
        if use_fashion && context.quick {
            skipped.push("fashion_cnn_f32 (quick mode)".into());
        } else if use_fashion {
            match cached_model(zoo_config, ReferenceModel::FashionCnn, &mut skipped) {
                Some(trained_cnn) => {
                    if let TrainedWeights::Cnn(cnn) = trained_cnn.weights {
                        let storage_bytes = cnn_storage_bytes(&cnn);
                        // The batch-1 variants (f32 fused, int8, f16) on the same weights.
                        for variant in olympics::conv_submissions::cnn_variants(&cnn, "fashion_cnn")? {
                            field.push(Box::new(variant));
                        }
                        field.push(Box::new(ZooClassifier {
                            name: "fashion_cnn_f32".into(),
                            model: Box::new(cnn),
                            storage_bytes,
                        }));
                    }
                }
                None => skipped.push("fashion_cnn_f32 (zoo's Fashion CNN is not in the weight cache; the zoo module trains it)".into()),
            }
        }
        let submissions: Vec<&dyn Submission> = field.iter().map(AsRef::as_ref).collect();
        judge_finetuned_event(
            &event,
            &submissions,
            config,
            &skipped,
            &finetuned,
            Some(&InputTransform::Identity),
        )
    };
    run().unwrap_or_else(|error| vec![event_error("image_classification", format!("{error:#}"))])
}

pub(super) fn anomaly_detection(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
    config: &RefereeConfig,
) -> Vec<ClaimResult> {
    let run = || -> Result<Vec<ClaimResult>> {
        let trained = train_or_load(ReferenceModel::DigitsAutoencoder, zoo_config)
            .context("digits autoencoder")?;
        let TrainedWeights::Autoencoder(autoencoder) = &trained.weights else {
            anyhow::bail!("zoo returned a non-autoencoder model");
        };
        let event = olympics::events::anomaly_detection(
            &trained.test,
            &trained.report.dataset,
            &trained.report.split,
        )?;
        let recipes = reference::mlp_recipes(context.quick);
        let finetuned = pruning_claims::finetune_reference_field(
            ReferenceModel::DigitsAutoencoder,
            &trained,
            zoo_config,
            &recipes,
            context.quick,
        )?;
        let field =
            reference::anomaly_scorers_finetuned(autoencoder, &finetuned.networks, &recipes)?;
        judge_finetuned_event(
            &event,
            &as_dyn(&field),
            config,
            &skipped_recipes(context.quick),
            &finetuned,
            None,
        )
    };
    run().unwrap_or_else(|error| vec![event_error("anomaly_detection", format!("{error:#}"))])
}

pub(super) fn visual_wake_words(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
    config: &RefereeConfig,
) -> Vec<ClaimResult> {
    let run = || -> Result<Vec<ClaimResult>> {
        let dataset = datasets::load_fashion_mnist(zoo_config.data.fashion_mnist_dir.as_deref())
            .context("Fashion-MNIST")?;
        let event = olympics::events::visual_wake_words(&dataset.test, &dataset.info)?;
        let VwwModel {
            features,
            labels,
            mlp,
            transform,
        } = train_vww_model(&dataset.train, context.seed)?;
        let recipes = reference::mlp_recipes(context.quick);
        let finetuned = pruning_claims::finetune_mlp_field(
            "vww-mlp",
            &mlp,
            &small_mlp_config(context.seed),
            features.view(),
            &labels,
            &recipes,
            context.quick,
            zoo_config.cache.as_ref(),
        )?;
        let field =
            reference::mlp_classifiers_finetuned(&mlp, &finetuned.networks, &transform, &recipes)?;
        judge_finetuned_event(
            &event,
            &as_dyn(&field),
            config,
            &skipped_recipes(context.quick),
            &finetuned,
            Some(&transform),
        )
    };
    run().unwrap_or_else(|error| vec![event_error("visual_wake_words", format!("{error:#}"))])
}
