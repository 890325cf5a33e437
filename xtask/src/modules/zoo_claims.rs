//! The reference models' held-out quality, trained (or loaded from the weight cache) in this run:
//! what a user of the data and models would expect, measured on real data with its interval.
//! A model whose data is not installed is ERROR with the reason, never a substituted figure.

use super::ModuleContext;
use anyhow::Result;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use zoo::{train_or_load, DataOptions, HeldOutMetric, ReferenceModel, ZooConfig};

const MODULE: &str = "zoo";

fn claim_for(model: ReferenceModel) -> Claim {
    let threshold = |bar: f64, what: &str| {
        Claim::threshold(
            &format!("zoo.{}", model.name().replace('-', "_")),
            MODULE,
            &format!("{} reaches {what} on held-out real data", model.name()),
            bar,
            Direction::AtLeast,
        )
    };
    match model {
        ReferenceModel::DigitsMlp => threshold(0.95, "≥ 95% test accuracy"),
        ReferenceModel::FashionMlp => threshold(0.85, "≥ 85% test accuracy"),
        ReferenceModel::FashionCnn => threshold(0.88, "≥ 88% test accuracy"),
        ReferenceModel::KwsDsCnn => threshold(0.90, "≥ 90% accuracy on the conventional FSDD split"),
        ReferenceModel::DigitsAutoencoder => threshold(0.85, "ROC AUC ≥ 0.85 (digits 5–9 as anomalies)"),
        ReferenceModel::CharTransformer => Claim::threshold(
            "zoo.char_transformer",
            MODULE,
            "the character transformer's validation loss is well below the unigram baseline (loss / unigram ≤ 0.8)",
            0.8,
            Direction::AtMost,
        ),
        _ => Claim::measured(
            &format!("zoo.{}", model.name().replace('-', "_")),
            MODULE,
            &format!("{}: held-out accuracy (reported, no bar)", model.name()),
        ),
    }
}

fn data_options(context: &ModuleContext) -> DataOptions {
    let mut options = DataOptions::default();
    if let Some(dir) = &context.data_dir {
        let fashion = dir.join("fashion-mnist");
        if fashion.is_dir() {
            options.fashion_mnist_dir = Some(fashion);
        }
        let fsdd = dir.join("fsdd").join("recordings");
        if fsdd.is_dir() {
            options.fsdd_dir = Some(fsdd);
        }
    }
    options
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let config = ZooConfig {
        seed: context.seed,
        data: data_options(context),
        ..ZooConfig::default()
    };
    // --quick trains (or loads) only the two small models on embedded data (seconds); the full run
    // trains every model whose data is installed (minutes the first time, then from the cache).
    let models: Vec<ReferenceModel> = ReferenceModel::ALL
        .into_iter()
        .filter(|model| {
            !context.quick
                || matches!(
                    model,
                    ReferenceModel::DigitsMlp | ReferenceModel::DigitsAutoencoder
                )
        })
        .collect();
    let mut results = Vec::new();
    let mut training_seconds = 0.0;
    for model in models {
        let claim = claim_for(model);
        let trained = match train_or_load(model, &config) {
            Ok(trained) => trained,
            Err(error) => {
                results.push(claim.error(format!(
                    "{} could not be trained or loaded: {error}",
                    model.name()
                )));
                continue;
            }
        };
        let report = &trained.report;
        if !report.from_cache {
            training_seconds += report.wall_seconds;
        }
        let estimate = match &report.metric {
            HeldOutMetric::Accuracy(accuracy) => Estimate::new(
                accuracy.point,
                accuracy.ci_lower,
                accuracy.ci_upper,
                "",
                accuracy.confidence,
            ),
            // No interval is computed for the AUC here: the point is judged as an exact value.
            HeldOutMetric::AnomalyDetection { roc_auc, .. } => {
                Estimate::new(*roc_auc, *roc_auc, *roc_auc, "", 1.0)
            }
            HeldOutMetric::LanguageModel {
                loss_nats_per_char,
                unigram_loss_nats_per_char,
                ..
            } => {
                let ratio = loss_nats_per_char / unigram_loss_nats_per_char;
                Estimate::new(ratio, ratio, ratio, "", 1.0)
            }
            other => {
                results.push(claim.error(format!("unexpected metric kind: {other}")));
                continue;
            }
        };
        results.push(match estimate {
            Ok(estimate) => claim
                .judge(estimate)
                .with_detail("metric", report.metric.to_string())
                .with_detail("dataset", &report.dataset)
                .with_detail("split", &report.split)
                .with_detail("n_train", report.n_train)
                .with_detail("n_parameters", report.n_parameters)
                .with_detail("from_cache", report.from_cache)
                .with_detail("wall_seconds", report.wall_seconds)
                .with_detail("inference_kernel", &report.inference_kernel)
                .with_detail("cache_key", &report.cache_key),
            Err(error) => claim.error(format!("{error}")),
        });
    }
    results.push(
        Claim::measured(
            "zoo.training_seconds",
            MODULE,
            "wall time spent training (not loading from the weight cache) in this run",
        )
        .judge(Estimate::new(
            training_seconds,
            training_seconds,
            training_seconds,
            "s",
            1.0,
        )?),
    );
    Ok(results)
}
