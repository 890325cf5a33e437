//! The olympics module: MLPerf-style events on real data refereed in the run, the Olympic events and the
//! Pareto analysis of each field, and the Olympics challenge (zoo's character transformer with int8 / f16 /
//! pruning / KV cache).
//!
//! Claims, with stable ids:
//! - `olympics.<event>.<submission>.compliance`: quality ≥ target and p90 ≤ limit, each judged on its
//!   interval by perf-core's `Claim::judge` inside the referee (`Scorecard::claim_result`): both met → PASS,
//!   either missed → FAIL, otherwise PARTIAL (INCONCLUSIVE when a requirement has no interval), a
//!   submission that could not be measured → ERROR. The estimate is the quality with its interval (the
//!   paired difference in points for the challenge); latency and memory are in the details.
//! - `olympics.<event>.pareto`: the front (size as the estimate), who dominates whom, recommendations,
//!   efficiency, the Olympic events and the leaderboard, and a scatter plot (p90 ms vs quality).
//! - `olympics.referee.isolation`: a deliberately panicking and a wrong-shape submission are ERROR for
//!   themselves only, the others in the same field still scored.
//! - `olympics.<event>.single_stream`, `.server`, `.offline`: MLPerf LoadGen's three scenarios over the field
//!   (a table each; the baseline's figure is the estimate). The Server search runs on every submission in a
//!   full run, on the baseline and the fastest SingleStream submission in quick mode.
//! - `olympics.loadgen.early_stopping_coverage`: the early-stopping rule's coverage, by simulation.
//! - `olympics.loadgen.server_stability`: the Server search's stability condition on simulated queues.
//! - `olympics.coverage`: what ran and what was skipped, and why.
//!
//! Every compliance statement names the data source (REAL / SYNTHETIC). Timings are single queries (batch 1) on
//! this machine, under whatever load it carries.
//!
//! Code map: `judge.rs` (a field refereed into claims: compliance, ERROR, the Pareto front, the scenarios, and
//! pruning's quality claims for fine-tuned fields), `vision.rs` (image classification, anomaly detection,
//! visual wake words), `keyword_spotting.rs` (FSDD or its synthetic set, the small MLP and the DS-CNN),
//! `challenge.rs` (the character transformer's challenge), `isolation.rs` (the referee's negative control),
//! `models.rs` (the small MLPs this module trains and the peers module serves); here, `run` and the helpers
//! the events share.

mod challenge;
mod isolation;
mod judge;
mod keyword_spotting;
mod models;
mod vision;

pub(crate) use models::{train_small_mlp, train_vww_model, VwwModel};

use challenge::char_lm_challenge;
use isolation::isolation_check;
use judge::event_error;
use keyword_spotting::keyword_spotting;
use vision::{anomaly_detection, image_classification, visual_wake_words};

use super::{data_options, ModuleContext};
use anyhow::Result;
use olympics::reference::{self, BASELINE};
use olympics::scenario_claims::{early_stopping_coverage_claim, server_stability_claim};
use olympics::{RefereeConfig, Submission};
use perf_core::claim::{Claim, ClaimResult, Estimate, Verdict};
use zoo::{train_or_load, ReferenceModel, TrainedWeights, ZooConfig};

const MODULE: &str = "olympics";

/// `model` from zoo's weight cache, or `None` when it is not cached for its current configuration (never
/// trains; a load or evaluation failure is reported in `skipped`).
fn cached_model(
    config: &ZooConfig,
    model: ReferenceModel,
    skipped: &mut Vec<String>,
) -> Option<zoo::TrainedModel> {
    match zoo::load_cached(model, config) {
        Ok(found) => found,
        Err(error) => {
            skipped.push(format!("{}: {error}", model.name()));
            None
        }
    }
}

fn mlp_of(weights: &TrainedWeights) -> Option<&zoo::Mlp> {
    match weights {
        TrainedWeights::Mlp(mlp) => Some(mlp),
        _ => None,
    }
}

fn as_dyn<T: Submission>(items: &[T]) -> Vec<&dyn Submission> {
    items.iter().map(|item| item as &dyn Submission).collect()
}

fn skipped_recipes(quick: bool) -> Vec<String> {
    if !quick {
        return Vec::new();
    }
    let kept: Vec<String> = reference::mlp_recipes(true)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    reference::mlp_recipes(false)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !kept.contains(name))
        .map(|name| format!("{name} (quick mode)"))
        .collect()
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let zoo_config = ZooConfig {
        seed: context.seed,
        data: data_options(context),
        ..ZooConfig::default()
    };
    let config = if context.quick {
        RefereeConfig::quick(context.seed)
    } else {
        RefereeConfig::full(context.seed)
    };
    let mut results = Vec::new();
    let mut coverage: Vec<String> = Vec::new();
    if !perf_core::alloc::is_installed() {
        coverage
            .push("peak query heap not measured: the counting allocator is not installed".into());
    }
    results.push(isolation_check(&zoo_config, context.seed)?);
    results.push(early_stopping_coverage_claim(
        config.scenarios.single_stream_queries,
        if context.quick { 10_000 } else { 40_000 },
        context.seed,
        config.confidence,
    ));
    results.push(server_stability_claim(
        config.scenarios.server.queries_per_step,
        if context.quick { 400 } else { 1_000 },
        config.scenarios.server.idle_tail_fraction,
        context.seed,
        config.confidence,
    ));
    results.extend(image_classification(
        context,
        &zoo_config,
        &config,
        &mut coverage,
    ));
    results.extend(anomaly_detection(context, &zoo_config, &config));
    if context.quick {
        coverage.push(format!("LoadGen Server searched only for {BASELINE} and the fastest SingleStream submission of each event (quick mode; a full run searches every submission)"));
        coverage.push("keyword_spotting skipped in quick mode (MFCC extraction of 3,000 clips and MLP training take tens of seconds)".into());
        coverage.push("visual_wake_words skipped in quick mode (training the proxy model and upscaling 10,000 images take tens of seconds)".into());
    } else {
        results.extend(keyword_spotting(context, &zoo_config, &config));
        results.extend(visual_wake_words(context, &zoo_config, &config));
    }
    let transformer = if context.quick {
        cached_model(&zoo_config, ReferenceModel::CharTransformer, &mut coverage)
            .ok_or_else(|| anyhow::anyhow!("not cached"))
    } else {
        train_or_load(ReferenceModel::CharTransformer, &zoo_config).map_err(anyhow::Error::from)
    };
    match transformer {
        Ok(trained) => results.extend(char_lm_challenge(context, trained, &config)),
        Err(_) if context.quick => coverage.push("char_lm_challenge skipped in quick mode: the character transformer is not in the weight cache (a full run trains it)".into()),
        Err(error) => results.push(event_error("char_lm_challenge", format!("character transformer: {error}"))),
    }
    for result in &results {
        if let Some(skipped) = result
            .details
            .get("skipped_submissions")
            .and_then(serde_json::Value::as_array)
        {
            let event = result
                .id
                .trim_start_matches("olympics.")
                .trim_end_matches(".pareto");
            coverage.extend(
                skipped
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(|entry| format!("{event}: {entry}")),
            );
        }
    }
    let n_events = results
        .iter()
        .filter(|result| result.id.ends_with(".pareto") && result.verdict != Verdict::Error)
        .count() as f64;
    let summary = Claim::measured(
        "olympics.coverage",
        MODULE,
        "events refereed in this run (and what was skipped, with the reason)",
    )
    .judge(Estimate::new(n_events, n_events, n_events, "events", 1.0)?)
    .with_detail("skipped", &coverage)
    .with_detail("quick", context.quick)
    .with_detail("referee", &config);
    let summary = summary.annotate(if coverage.is_empty() {
        "nothing skipped".to_string()
    } else {
        coverage.join("; ")
    });
    results.push(summary);
    Ok(results)
}
