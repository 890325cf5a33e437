//! Fine-tuning after pruning for the Olympics' pruned MLP submissions, and the claims that judge what it
//! delivers (a helper of the olympics module; its claims carry the `olympics.` prefix).
//!
//! - [`finetune_reference_field`] / [`finetune_mlp_field`]: every pruning the field's recipes need
//!   (`reference::pruning_to_finetune`), pruned gradually while fine-tuning with zoo
//!   (`zoo::prune_and_finetune`: Zhu and Gupta's cubic schedule, masks applied after every optimizer step),
//!   cached in zoo's weight cache. Quick mode fine-tunes the MLP classifiers for fewer epochs (stated in
//!   every claim it affects); the autoencoder's fine-tuning takes seconds and is the same in both modes.
//! - [`quality_claims`]: `olympics.<event>.<submission>.quality_vs_f32` for every submission that prunes,
//!   the fine-tuned ones and the `…_no_finetune` rows alike: accuracy within 1 point of `f32_baseline`
//!   (paired difference of per-row correctness on the same test rows, perf-core's paired interval) or
//!   ROC AUC within 0.02 (DeLong's paired interval on the same test samples). PASS when the whole interval
//!   clears the margin, FAIL when the whole interval misses it, PARTIAL otherwise. Each names the
//!   fine-tuning's wall and CPU seconds (as trained, and this run's load time when cached), and what the
//!   unpruned model fine-tuned the same way reaches (the control: the pruned models train longer than
//!   `f32_baseline`, so part of any gain is training, not pruning).

use anyhow::{bail, Context, Result};
use ndarray::ArrayView2;
use olympics::compress::{CompressedMlp, Recipe};
use olympics::reference::{FineTunedNetwork, BASELINE, NO_FINETUNE_SUFFIX};
use olympics::submissions::{AnomalyScorer, InputTransform, MlpClassifier};
use olympics::{Event, Optimization, QualityMetric, Submission};
use perf_core::claim::{Claim, ClaimResult, Direction};
use perf_core::stats::delong_paired_difference;
use perf_core::stats::{argmax, paired_proportion_difference};
use perf_core::timer::Stopwatch;
use serde_json::json;
use zoo::prune::{PruningMethod, PruningRecipe};
use zoo::{
    FineTuneConfig, FineTuneObjective, FineTuneReport, ReferenceModel, TrainConfig, TrainedModel,
    WeightCache, ZooConfig,
};

const MODULE: &str = "olympics";

/// Accuracy margin: one percentage point below the f32 baseline.
const ACCURACY_MARGIN_POINTS: f64 = 1.0;
/// ROC AUC margin below the f32 baseline.
const AUC_MARGIN: f64 = 0.02;
const CONFIDENCE: f64 = 0.95;
const EVALUATION_BATCH: usize = 512;
/// Said wherever quick mode fine-tuned for fewer epochs than a full run.
const SHORTENED: &str = ", quick mode: fewer epochs than a full run";

/// The fine-tuned networks of one event's field and how each was obtained.
#[derive(Debug, Default)]
pub(crate) struct FineTunedField {
    /// What the submissions run on.
    pub(crate) networks: Vec<FineTunedNetwork>,
    /// One per network, in the same order.
    pub(crate) reports: Vec<FineTuneReport>,
    /// Whether quick mode shortened the fine-tuning (fewer epochs than a full run).
    pub(crate) shortened: bool,
    /// Seconds this run spent obtaining the whole field's networks (data loading, fingerprints, fine-tuning
    /// or cache loads).
    pub(crate) wall_seconds: f64,
    /// The unpruned model fine-tuned exactly as the pruned ones (sparsity 0): what the training alone buys.
    pub(crate) control: Option<zoo::FineTuned>,
}

impl FineTunedField {
    fn report_for(
        &self,
        structured: Option<f64>,
        unstructured: Option<f64>,
    ) -> Option<&FineTuneReport> {
        self.networks
            .iter()
            .zip(&self.reports)
            .find(|(network, _)| {
                network.structured == structured && network.unstructured == unstructured
            })
            .map(|(_, report)| report)
    }
}

fn pruning_recipe(structured: Option<f64>, unstructured: Option<f64>) -> Result<PruningRecipe> {
    match (structured, unstructured) {
        (Some(sparsity), None) => Ok(PruningRecipe {
            method: PruningMethod::Neurons,
            sparsity,
        }),
        (None, Some(sparsity)) => Ok(PruningRecipe {
            method: PruningMethod::Magnitude,
            sparsity,
        }),
        other => bail!(
            "no fine-tuning recipe for structured and unstructured pruning together: {other:?}"
        ),
    }
}

fn describe(report: &FineTuneReport, shortened: bool) -> String {
    let method = match report.recipe.method {
        PruningMethod::Neurons => "neuron",
        PruningMethod::Blocks { .. } => "block",
        _ => "magnitude",
    };
    format!(
        "fine-tuned with gradual {method} pruning to {:.0}% (Zhu & Gupta cubic schedule, {} mask updates every {} steps, {} steps in {} epochs{})",
        100.0 * report.recipe.sparsity,
        report.schedule.n_updates + 1,
        report.schedule.update_interval,
        report.training.steps,
        report.config.train.epochs,
        if shortened {
            SHORTENED
        } else {
            ""
        }
    )
}

fn log_report(report: &FineTuneReport) {
    eprintln!(
        "olympics: {} {:?} {:.2}: {} in {:.1} s (fine-tuning {:.1} s wall, {} steps), widths {:?}, weight sparsity {:.3}",
        report.name,
        report.recipe.method,
        report.recipe.sparsity,
        if report.from_cache { "loaded from the weight cache" } else { "fine-tuned" },
        report.wall_seconds,
        report.training.seconds,
        report.training.steps,
        report.widths,
        report.weight_sparsity,
    );
}

fn collect(
    recipes: &[(String, Recipe)],
    shortened: bool,
    finetune: impl FnOnce(&[PruningRecipe]) -> Result<Vec<zoo::FineTuned>>,
) -> Result<FineTunedField> {
    let started = Stopwatch::start();
    let prunings = olympics::reference::pruning_to_finetune(recipes);
    let mut pruning_recipes = prunings
        .iter()
        .map(|&(structured, unstructured)| pruning_recipe(structured, unstructured))
        .collect::<Result<Vec<_>>>()?;
    // The control: the same fine-tuning at sparsity 0 (every mask keeps everything), so the claims can say
    // what the extra training alone buys the unpruned model.
    pruning_recipes.push(PruningRecipe {
        method: PruningMethod::Magnitude,
        sparsity: 0.0,
    });
    let mut all = finetune(&pruning_recipes)?;
    let control = all.pop().context("no control network")?;
    log_report(&control.report);
    let mut field = FineTunedField {
        shortened,
        wall_seconds: started.elapsed().as_secs_f64(),
        ..FineTunedField::default()
    };
    for ((structured, unstructured), finetuned) in prunings.into_iter().zip(all) {
        log_report(&finetuned.report);
        field.networks.push(FineTunedNetwork {
            structured,
            unstructured,
            network: finetuned.mlp,
            description: describe(&finetuned.report, shortened),
        });
        field.reports.push(finetuned.report);
    }
    field.control = Some(control);
    Ok(field)
}

/// Fine-tuning epochs of a reference model's pruned variants, and whether quick mode shortened them: a third
/// of the base model's epochs for the Fashion MLP (half that in quick mode) and a quarter for the digits MLP
/// (an eighth in quick mode); the autoencoder, whose epochs take milliseconds, gets more than its base
/// training (150) in either mode.
fn reference_epochs(model: ReferenceModel, quick: bool) -> (usize, bool) {
    match model {
        ReferenceModel::DigitsAutoencoder => (200, false),
        ReferenceModel::FashionMlp if quick => (1, true),
        ReferenceModel::FashionMlp => (2, false),
        _ if quick => (5, true),
        _ => (10, false),
    }
}

/// Fine-tuned networks for the prunings `recipes` need, from zoo's reference `model` (trained or loaded as
/// `trained`) on the rows it was trained on.
pub(crate) fn finetune_reference_field(
    model: ReferenceModel,
    trained: &TrainedModel,
    zoo_config: &ZooConfig,
    recipes: &[(String, Recipe)],
    quick: bool,
) -> Result<FineTunedField> {
    let (epochs, shortened) = reference_epochs(model, quick);
    let config = zoo::default_finetune_config(model, zoo_config.seed, epochs);
    collect(recipes, shortened, |pruning_recipes| {
        zoo::finetune_reference(model, trained, zoo_config, pruning_recipes, &config)
            .with_context(|| format!("fine-tuning {} after pruning", model.name()))
    })
}

/// Fine-tuned networks for the prunings `recipes` need, from an MLP classifier trained in this module with
/// `base_config` on `features` / `labels` (its weights fingerprinted into the cache key with `name`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn finetune_mlp_field(
    name: &str,
    base: &zoo::Mlp,
    base_config: &TrainConfig,
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    recipes: &[(String, Recipe)],
    quick: bool,
    cache: Option<&WeightCache>,
) -> Result<FineTunedField> {
    let config = FineTuneConfig {
        train: TrainConfig {
            epochs: if quick { 2 } else { 4 },
            learning_rate: base_config.learning_rate * 0.5,
            ..base_config.clone()
        },
        pruning_share: 0.75,
        n_updates: 16,
    };
    let base_key = format!("{name}|{base_config:?}");
    collect(recipes, quick, |pruning_recipes| {
        zoo::prune_and_finetune(
            &format!("{name}-pruned"),
            base,
            &base_key,
            features,
            FineTuneObjective::Classification(labels),
            pruning_recipes,
            &config,
            cache,
        )
        .with_context(|| format!("fine-tuning {name} after pruning"))
    })
}

/// The pruning a submission declares.
fn declared_pruning(submission: &dyn Submission) -> (Option<f64>, Option<f64>) {
    let mut pruning = (None, None);
    for optimization in submission.optimizations() {
        match optimization {
            Optimization::StructuredPruning { sparsity_percent } => {
                pruning.0 = Some(f64::from(sparsity_percent) / 100.0);
            }
            Optimization::UnstructuredPruning { sparsity_percent } => {
                pruning.1 = Some(f64::from(sparsity_percent) / 100.0);
            }
            _ => {}
        }
    }
    pruning
}

/// The submission's outputs on every test row of the event, in order.
fn outputs(event: &Event, submission: &dyn Submission) -> Result<Vec<Vec<f32>>> {
    let mut rows = Vec::with_capacity(event.test.len());
    submission.reset();
    for start in (0..event.test.len()).step_by(EVALUATION_BATCH) {
        let end = (start + EVALUATION_BATCH).min(event.test.len());
        let batch = event.test.rows(start..end)?;
        let output = submission.forward(batch.view())?;
        if output.dim() != (end - start, event.spec.output_width) {
            bail!("{}: output shape {:?}", submission.name(), output.dim());
        }
        rows.extend(output.outer_iter().map(|row| row.to_vec()));
    }
    Ok(rows)
}

fn per_row_correct(event: &Event, submission: &dyn Submission) -> Result<Vec<bool>> {
    Ok(outputs(event, submission)?
        .iter()
        .zip(event.test.labels())
        .map(|(row, &label)| argmax(row.iter().copied()) == Some(label))
        .collect())
}

/// Anomaly scores split by label (the anomaly events label anomalous rows 1): (normal, anomalous).
fn split_scores(event: &Event, submission: &dyn Submission) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut normal, mut anomalous) = (Vec::new(), Vec::new());
    for (row, &label) in outputs(event, submission)?.iter().zip(event.test.labels()) {
        let score = f64::from(row[0]);
        if label == 1 {
            anomalous.push(score);
        } else {
            normal.push(score);
        }
    }
    Ok((normal, anomalous))
}

fn finetune_details(
    result: ClaimResult,
    report: Option<&FineTuneReport>,
    shortened: bool,
    field_wall_seconds: f64,
) -> ClaimResult {
    match report {
        None => result.with_detail(
            "finetune",
            "none: one-shot magnitude / neuron pruning of the trained weights (the comparison row)",
        ),
        Some(report) => result
            .with_detail(
                "finetune",
                json!({
                    "method": format!("{:?}", report.recipe.method),
                    "final_sparsity": report.recipe.sparsity,
                    "schedule": report.schedule,
                    "epochs": report.config.train.epochs,
                    "learning_rate": report.config.train.learning_rate,
                    "steps": report.training.steps,
                    "training_wall_seconds": report.training.seconds,
                    "training_cpu_seconds": report.training.cpu_seconds,
                    "load_average_when_trained": report.training.load_average,
                    "from_cache": report.from_cache,
                    "this_run_wall_seconds": report.wall_seconds,
                    "cache_key": report.cache_key,
                    "widths": report.widths,
                    "weight_sparsity": report.weight_sparsity,
                    "quick_mode_fewer_epochs": shortened,
                    "field_wall_seconds_this_run": field_wall_seconds,
                }),
            )
            .annotate(format!(
                "fine-tuning: {:.1} s wall ({} steps, {} epochs{}), {}",
                report.training.seconds,
                report.training.steps,
                report.config.train.epochs,
                if shortened { SHORTENED } else { "" },
                if report.from_cache {
                    format!(
                        "loaded from the weight cache in {:.2} s this run ({field_wall_seconds:.1} s for the event's pruned networks with data loading)",
                        report.wall_seconds
                    )
                } else {
                    format!("trained in this run ({field_wall_seconds:.1} s for the event's pruned networks with data loading)")
                }
            )),
    }
}

/// `olympics.<event>.<submission>.quality_vs_f32` for every submission in `submissions` that declares pruning,
/// judged against `f32_baseline` in the same field on the event's whole test split.
///
/// `transform` is the field's input transform for a classification event (`None` for the anomaly event):
/// with it, the control network ([`FineTunedField::control`]) is scored on the same rows and every claim
/// states what the same fine-tuning without pruning reaches.
pub(crate) fn quality_claims(
    event: &Event,
    submissions: &[&dyn Submission],
    field: &FineTunedField,
    transform: Option<&InputTransform>,
) -> Vec<ClaimResult> {
    let Some(baseline) = submissions
        .iter()
        .find(|submission| submission.name() == BASELINE)
    else {
        return Vec::new();
    };
    let pruned: Vec<&&dyn Submission> = submissions
        .iter()
        .filter(|submission| declared_pruning(**submission) != (None, None))
        .collect();
    let source = format!("[{} {}]", event.source.origin, event.source.name);
    let accuracy = event.spec.metric == QualityMetric::Top1Accuracy;
    let baseline_quality = if accuracy {
        per_row_correct(event, *baseline).map(Quality::Rows)
    } else {
        split_scores(event, *baseline).map(Quality::Scores)
    };
    let control = control_comparison(event, *baseline, field, transform);
    pruned
        .into_iter()
        .map(|submission| {
            let name = submission.name();
            let finetuned = !name.ends_with(NO_FINETUNE_SUFFIX);
            let (structured, unstructured) = declared_pruning(*submission);
            let report = finetuned.then(|| field.report_for(structured, unstructured)).flatten();
            let kind = if finetuned { "pruned and fine-tuned" } else { "pruned in one shot, not fine-tuned" };
            let id = format!("olympics.{}.{name}.quality_vs_f32", event.spec.name);
            let claim = if accuracy {
                Claim::threshold(
                    &id,
                    MODULE,
                    &format!(
                        "{name} ({kind}) on {} {source}: top-1 accuracy no more than {ACCURACY_MARGIN_POINTS:.0} point below {BASELINE} (paired difference on the same {} test rows, {:.0}% interval)",
                        event.spec.name,
                        event.test.len(),
                        100.0 * CONFIDENCE
                    ),
                    -ACCURACY_MARGIN_POINTS,
                    Direction::AtLeast,
                )
            } else {
                Claim::threshold(
                    &id,
                    MODULE,
                    &format!(
                        "{name} ({kind}) on {} {source}: ROC AUC no more than {AUC_MARGIN} below {BASELINE} (DeLong paired difference on the same {} test samples, {:.0}% interval)",
                        event.spec.name,
                        event.test.len(),
                        100.0 * CONFIDENCE
                    ),
                    -AUC_MARGIN,
                    Direction::AtLeast,
                )
            };
            let judged = (|| -> Result<ClaimResult> {
                let baseline_quality = match &baseline_quality {
                    Ok(quality) => quality,
                    Err(error) => bail!("{BASELINE}: {error:#}"),
                };
                Ok(match baseline_quality {
                    Quality::Rows(baseline_rows) => {
                        let rows = per_row_correct(event, *submission)?;
                        let difference = paired_proportion_difference(&rows, baseline_rows, CONFIDENCE)?;
                        let share = |rows: &[bool]| rows.iter().filter(|&&right| right).count() as f64 / rows.len() as f64;
                        claim
                            .judge(difference.estimate(100.0, "points")?)
                            .with_detail("accuracy", share(&rows))
                            .with_detail("baseline_accuracy", share(baseline_rows))
                            .with_detail("n_rows", rows.len())
                            .with_detail("n_only_submission_right", difference.n_first_only)
                            .with_detail("n_only_baseline_right", difference.n_second_only)
                            .with_detail("interval_method", &difference.method)
                            .annotate(format!(
                                "{source} accuracy {:.4} vs {BASELINE} {:.4} on {} rows ({} discordant)",
                                share(&rows),
                                share(baseline_rows),
                                rows.len(),
                                difference.n_discordant()
                            ))
                    }
                    Quality::Scores((baseline_normal, baseline_anomalous)) => {
                        let (normal, anomalous) = split_scores(event, *submission)?;
                        let difference = delong_paired_difference(
                            &normal,
                            &anomalous,
                            baseline_normal,
                            baseline_anomalous,
                            CONFIDENCE,
                        )?;
                        let auc = perf_core::stats::roc_auc(&normal, &anomalous)?;
                        let baseline_auc = perf_core::stats::roc_auc(baseline_normal, baseline_anomalous)?;
                        claim
                            .judge(difference.clone())
                            .with_detail("roc_auc", auc)
                            .with_detail("baseline_roc_auc", baseline_auc)
                            .with_detail("n_normal", normal.len())
                            .with_detail("n_anomalous", anomalous.len())
                            .with_detail(
                                "standard_error",
                                difference.inference().map(|inference| inference.standard_error),
                            )
                            .with_detail(
                                "interval_method",
                                "DeLong et al. (1988) paired difference of correlated ROC AUCs, normal interval",
                            )
                            .annotate(format!(
                                "{source} ROC AUC {auc:.4} vs {BASELINE} {baseline_auc:.4} ({} normal, {} anomalous)",
                                normal.len(),
                                anomalous.len()
                            ))
                    }
                })
            })();
            let judged = judged.map(|result| match (&control, finetuned) {
                (Ok(Some((sentence, details))), true) => {
                    result.with_detail("control_same_finetuning_unpruned", details).annotate(sentence)
                }
                (Err(error), true) => result.annotate(format!("control not measured: {error:#}")),
                _ => result,
            });
            match judged {
                Ok(result) => finetune_details(result, report, field.shortened, field.wall_seconds),
                Err(error) => claim.error(format!("{source} {error:#}")),
            }
        })
        .collect()
}

/// The control network scored against the baseline on the event's rows: a sentence and the details.
fn control_comparison(
    event: &Event,
    baseline: &dyn Submission,
    field: &FineTunedField,
    transform: Option<&InputTransform>,
) -> Result<Option<(String, serde_json::Value)>> {
    let Some(control) = &field.control else {
        return Ok(None);
    };
    let network = CompressedMlp::compress(&control.mlp, &Recipe::BASELINE)?;
    let name = "f32_same_finetuning_unpruned";
    let submission: Box<dyn Submission> = match transform {
        Some(transform) => Box::new(MlpClassifier {
            name: name.into(),
            optimizations: Vec::new(),
            transform: transform.clone(),
            network,
        }),
        None => Box::new(AnomalyScorer {
            name: name.into(),
            optimizations: Vec::new(),
            network,
        }),
    };
    let training = json!({
        "training_wall_seconds": control.report.training.seconds,
        "steps": control.report.training.steps,
        "from_cache": control.report.from_cache,
        "cache_key": control.report.cache_key,
    });
    if event.spec.metric == QualityMetric::Top1Accuracy {
        let rows = per_row_correct(event, submission.as_ref())?;
        let baseline_rows = per_row_correct(event, baseline)?;
        let difference = paired_proportion_difference(&rows, &baseline_rows, CONFIDENCE)?;
        let accuracy = rows.iter().filter(|&&right| right).count() as f64 / rows.len() as f64;
        let estimate = difference.estimate(100.0, "points")?;
        return Ok(Some((
            format!(
                "the unpruned model fine-tuned the same way: accuracy {accuracy:.4}, {:+.2} points [{:+.2}, {:+.2}] over {BASELINE} (what the extra training alone buys)",
                estimate.point(), estimate.ci_lower(), estimate.ci_upper()
            ),
            json!({
                "accuracy": accuracy,
                "difference_vs_baseline_points": estimate.point(),
                "ci_lower": estimate.ci_lower(),
                "ci_upper": estimate.ci_upper(),
                "training": training,
            }),
        )));
    }
    let (normal, anomalous) = split_scores(event, submission.as_ref())?;
    let (baseline_normal, baseline_anomalous) = split_scores(event, baseline)?;
    let auc = perf_core::stats::roc_auc(&normal, &anomalous)?;
    let difference = delong_paired_difference(
        &normal,
        &anomalous,
        &baseline_normal,
        &baseline_anomalous,
        CONFIDENCE,
    )?;
    Ok(Some((
        format!(
            "the unpruned autoencoder fine-tuned the same way: ROC AUC {auc:.4}, {:+.4} [{:+.4}, {:+.4}] over {BASELINE}",
            difference.point(), difference.ci_lower(), difference.ci_upper()
        ),
        json!({
            "roc_auc": auc,
            "difference_vs_baseline": difference.point(),
            "ci_lower": difference.ci_lower(),
            "ci_upper": difference.ci_upper(),
            "training": training,
        }),
    )))
}

enum Quality {
    Rows(Vec<bool>),
    Scores((Vec<f64>, Vec<f64>)),
}
