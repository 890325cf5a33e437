//! The keyword-spotting event: MFCC windows of FSDD (or a synthetic keyword set when FSDD is not installed),
//! the small MLP with its fine-tuned pruned variants, and zoo's DS-CNN from the weight cache on real data.

use super::super::pruning_claims;
use super::judge::{event_error, judge_finetuned_event};
use super::models::{small_mlp_config, train_small_mlp};
use super::{cached_model, skipped_recipes, ModuleContext};
use anyhow::{Context, Result};
use datasets::{FsddSplit, MfccConfig};
use olympics::reference;
use olympics::submissions::{ds_cnn_storage_bytes, InputTransform, ZooClassifier};
use olympics::{RefereeConfig, Submission};
use perf_core::claim::ClaimResult;
use zoo::{ReferenceModel, TrainedWeights, ZooConfig};

pub(super) fn keyword_spotting(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
    config: &RefereeConfig,
) -> Vec<ClaimResult> {
    let run = || -> Result<Vec<ClaimResult>> {
        let dir = datasets::fsdd_dir(zoo_config.data.fsdd_dir.as_deref());
        let (train, test, info, split, real) = match datasets::load_fsdd_clips(&dir) {
            Ok(clips) => {
                let dataset = datasets::fsdd_features(
                    &clips,
                    &FsddSplit::Conventional,
                    &MfccConfig::default(),
                    &dir,
                )?;
                (
                    dataset.train,
                    dataset.test,
                    dataset.info,
                    dataset.split,
                    true,
                )
            }
            Err(error) if error.is_not_found() => {
                eprintln!("olympics: FSDD not installed ({error}); SYNTHETIC keyword set instead");
                let (train, test, info) =
                    olympics::events::synthetic_keywords(2_700, 300, context.seed)?;
                (
                    train,
                    test,
                    info,
                    "SYNTHETIC: generated train 2,700 / test 300".to_string(),
                    false,
                )
            }
            Err(error) => return Err(error).context("FSDD"),
        };
        let dataset = datasets::LabeledDataset {
            train,
            test,
            info,
            split,
        };
        let event =
            olympics::events::keyword_spotting(&dataset.test, &dataset.info, &dataset.split)?;
        let standardizer = zoo::Standardizer::fit(dataset.train.features().view());
        let standardized = standardizer.apply(dataset.train.features().view())?;
        let mlp = train_small_mlp(
            standardized.view(),
            dataset.train.labels(),
            dataset.train.n_classes(),
            128,
            context.seed,
        )?;
        let transform = InputTransform::Standardize(standardizer);
        let recipes = reference::mlp_recipes(context.quick);
        let finetuned = pruning_claims::finetune_mlp_field(
            "kws-mlp",
            &mlp,
            &small_mlp_config(context.seed),
            standardized.view(),
            dataset.train.labels(),
            &recipes,
            context.quick,
            zoo_config.cache.as_ref(),
        )?;
        let mut field: Vec<Box<dyn Submission>> =
            reference::mlp_classifiers_finetuned(&mlp, &finetuned.networks, &transform, &recipes)?
                .into_iter()
                .map(|submission| Box::new(submission) as Box<dyn Submission>)
                .collect();
        let mut skipped = skipped_recipes(context.quick);
        match real
            .then(|| cached_model(zoo_config, ReferenceModel::KwsDsCnn, &mut skipped))
            .flatten()
        {
            Some(trained) => {
                if let TrainedWeights::DsCnn(network) = trained.weights {
                    let storage_bytes = ds_cnn_storage_bytes(&network);
                    // The batch-1 variants (f32 fused, int8, f16) on the same weights.
                    for variant in olympics::conv_submissions::ds_cnn_variants(&network, "ds_cnn")?
                    {
                        field.push(Box::new(variant));
                    }
                    field.push(Box::new(ZooClassifier {
                        name: "ds_cnn_f32".into(),
                        model: Box::new(network),
                        storage_bytes,
                    }));
                }
            }
            None if real => skipped.push(
                "ds_cnn_f32 (zoo's DS-CNN is not in the weight cache; the zoo module trains it)"
                    .into(),
            ),
            None => {
                skipped.push("ds_cnn_f32 (FSDD not installed: the DS-CNN is trained on it)".into())
            }
        }
        let submissions: Vec<&dyn Submission> = field.iter().map(AsRef::as_ref).collect();
        judge_finetuned_event(
            &event,
            &submissions,
            config,
            &skipped,
            &finetuned,
            Some(&transform),
        )
    };
    run().unwrap_or_else(|error| vec![event_error("keyword_spotting", format!("{error:#}"))])
}
