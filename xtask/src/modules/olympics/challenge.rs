//! The Olympics challenge: zoo's character transformer with int8 / f16 / pruning / KV cache on next-character
//! prediction, non-inferior to the f32 baseline in the same field by a paired interval.

use super::judge::{event_error, judge_event};
use super::{as_dyn, ModuleContext};
use anyhow::Result;
use olympics::reference::{self, BASELINE};
use olympics::{Optimization, RefereeConfig, Submission};
use perf_core::claim::ClaimResult;
use serde_json::json;
use zoo::{HeldOutMetric, TrainedWeights};

/// Non-inferiority margin of the Olympics challenge: one percentage point of next-character accuracy
/// below the f32 baseline (the quant issue's bar for a quantized model).
const CHALLENGE_MARGIN: f64 = 0.01;

pub(super) fn char_lm_challenge(
    context: &ModuleContext,
    trained: zoo::TrainedModel,
    config: &RefereeConfig,
) -> Vec<ClaimResult> {
    let run = || -> Result<Vec<ClaimResult>> {
        let TrainedWeights::CharTransformer(model) = &trained.weights else {
            anyhow::bail!("zoo returned a non-transformer model");
        };
        let HeldOutMetric::LanguageModel {
            next_char_accuracy, ..
        } = &trained.report.metric
        else {
            anyhow::bail!("unexpected metric {}", trained.report.metric);
        };
        let tokens = olympics::challenge::tokens_from_zoo_test(trained.test.features().view())?;
        let source = olympics::DataSource {
            origin: trained.report.dataset.origin,
            name: trained.report.dataset.name.clone(),
            description: format!(
                "{} held-out characters, split: {}",
                tokens.len(),
                trained.report.split
            ),
            attribution: trained.report.dataset.attribution.clone(),
        };
        // Non-inferiority to the f32 baseline in the same field, paired on the same predictions, with a
        // margin of one percentage point (the quant issue's bar); zoo's f32 accuracy in this run only sets
        // the nominal absolute bar reported next to the unpaired accuracy.
        let event = olympics::challenge::next_char_event(
            &tokens,
            &model.config,
            next_char_accuracy.point,
            CHALLENGE_MARGIN,
            10.0,
            source,
        )?;
        let recipes = reference::transformer_recipes(context.quick);
        let field = reference::next_char_submissions(model, &recipes)?;
        let skipped: Vec<String> = if context.quick {
            let kept: Vec<String> = recipes.iter().map(|(name, _, _)| name.clone()).collect();
            reference::transformer_recipes(false)
                .into_iter()
                .filter(|(name, _, _)| !kept.contains(name))
                .map(|(name, _, _)| format!("{name} (quick mode)"))
                .collect()
        } else {
            Vec::new()
        };
        let mut results = judge_event(&event, &as_dyn(&field), config, &skipped)?;
        for result in &mut results {
            // The kernel that ran: every submission is kvcache's transformer with its projections.
            if let Some(submission) = field.iter().find(|submission| {
                result.id
                    == format!(
                        "olympics.char_lm_challenge.{}.compliance",
                        submission.name()
                    )
            }) {
                result.details.insert(
                    "model".into(),
                    json!(format!(
                        "kvcache::Transformer ({}), projections: {}",
                        if submission.optimizations().contains(&Optimization::KvCache) {
                            "KV cache across queries"
                        } else {
                            "full recompute of the prefix per query"
                        },
                        kvcache::Projection::kind(submission.model().lm_head())
                    )),
                );
            }
            if result.id.ends_with(".pareto") {
                result.details.insert(
                    "target_rule".into(),
                    json!(format!(
                        "paired non-inferiority to {BASELINE} on the same predictions: the per-position difference (submission correct − baseline correct), its mean with a paired Student-t interval (the Clopper–Pearson bound on the disagreement rate when every position agrees), compliant when the lower bound ≥ −{:.1} points, not compliant when the upper bound < −{:.1} points; nominal absolute bar zoo's f32 accuracy {next_char_accuracy} − {:.1} points, reported with the unpaired Clopper–Pearson accuracy",
                        100.0 * CHALLENGE_MARGIN,
                        100.0 * CHALLENGE_MARGIN,
                        100.0 * CHALLENGE_MARGIN
                    )),
                );
            }
        }
        Ok(results)
    };
    run().unwrap_or_else(|error| vec![event_error("char_lm_challenge", format!("{error:#}"))])
}
