//! A field refereed into claims: each scorecard's compliance (the referee's own judgement), ERROR for a
//! submission that could not be measured, the event's Pareto front with its Olympic events, and LoadGen's
//! scenarios; for a field of fine-tuned pruned submissions, pruning's quality claims against f32.

use super::super::pruning_claims;
use super::MODULE;
use anyhow::Result;
use olympics::games::run_games;
use olympics::pareto::analyze;
use olympics::reference::BASELINE;
use olympics::scenario_claims::scenario_claims;
use olympics::server::run_server_scenarios;
use olympics::submissions::InputTransform;
use olympics::{referee, Event, Outcome, RefereeConfig, Scorecard, Submission};
use perf_core::claim::{Claim, ClaimResult, Estimate};
use serde_json::json;

/// The referee's own judgement of the card (a perf-core claim result, id
/// `olympics.<event>.<submission>.compliance`), with what the report shows beside it.
fn compliance_claim(card: &Scorecard) -> ClaimResult {
    let single_stream = card.scenarios.single_stream.as_ref().map_or_else(
        || "LoadGen SingleStream not run".to_string(),
        olympics::scenario::SingleStreamResult::describe,
    );
    card.claim_result()
        .annotate(single_stream)
        .with_detail("data_source", &card.source)
        .with_detail("optimizations", &card.optimizations)
        .with_detail("quality", &card.quality)
        .with_detail(
            "latency_ms",
            json!({
                "p50": card.latency.p50,
                "p90": card.latency.p90,
                "p99": card.latency.p99,
                "mean": card.latency.mean_ms,
                "mean_ci": card.latency.mean_ci_ms,
                "n_samples": card.latency.n_samples,
                "queries_per_sample": card.latency.queries_per_sample,
                "steady_state": card.latency.steady_state,
                "warnings": card.latency.warnings,
            }),
        )
        .with_detail("memory", &card.memory)
        .with_detail("footprint_bytes", card.memory.footprint_bytes())
        .with_detail("compliance", &card.compliance)
        .with_detail("scenarios", &card.scenarios)
        .with_detail("scorecard", card.to_string())
}

fn error_claim(
    event: &str,
    submission: &str,
    reason: &str,
    source: &olympics::DataSource,
) -> ClaimResult {
    Claim::measured(
        &format!("olympics.{event}.{submission}.compliance"),
        MODULE,
        &format!("{submission} on {event}: could be measured by the referee"),
    )
    .error(format!("[{} {}] {reason}", source.origin, source.name))
}

fn pareto_claim(event: &Event, cards: &[&Scorecard], skipped: &[String]) -> Result<ClaimResult> {
    let analysis = analyze(cards, BASELINE);
    let games = run_games(cards, event.spec.memory_budget_bytes);
    let n_front = analysis.front.len() as f64;
    let series = |name: &str, points: &[(String, f64, f64)]| {
        json!({
            "name": name,
            "style": "points",
            "points": points.iter().map(|(_, x, y)| json!([x, y])).collect::<Vec<_>>(),
            "labels": points.iter().map(|(label, _, _)| label.clone()).collect::<Vec<_>>(),
        })
    };
    let plot = json!({
        "title": format!("{}: Pareto frontier (SingleStream p90 latency vs {}), {} data", event.spec.name, event.spec.metric, event.source.origin),
        "x_label": "SingleStream p90 latency (ms)",
        "y_label": event.spec.metric.to_string(),
        "log_x": true,
        "log_y": false,
        "series": [
            series("frontier", &analysis.frontier_points),
            series("dominated", &analysis.dominated_points),
        ],
    });
    let recommendations: Vec<String> = analysis
        .recommendations
        .iter()
        .map(|recommendation| recommendation.sentence.clone())
        .collect();
    let result = Claim::measured(
        &format!("olympics.{}.pareto", event.spec.name),
        MODULE,
        &format!(
            "{}: the Pareto front over (SingleStream p90 latency ↓, memory footprint ↓, {} ↑) of the reference submissions",
            event.spec.name, event.spec.metric
        ),
    )
    .judge(Estimate::new(n_front, n_front, n_front, "submissions", 1.0)?)
    .with_detail("data_source", &event.source)
    .with_detail("analysis", &analysis)
    .with_detail("games", &games)
    .with_detail("plot", plot)
    .with_detail("skipped_submissions", skipped);
    let separable_note = analysis
        .dominated
        .iter()
        .filter(|dominated| {
            !dominated.dominated_by.is_empty()
                && dominated
                    .dominated_by
                    .iter()
                    .all(|dominator| !dominator.separable)
        })
        .count();
    let result = result.annotate(format!(
        "[{} {}] front: {}; {} dominated ({} only on points, not separable by the intervals); {}; most efficient: {}; all-around winner: {}",
        event.source.origin,
        event.source.name,
        analysis.front.join(", "),
        analysis.dominated.len(),
        separable_note,
        recommendations.join("; "),
        analysis
            .efficiency
            .first()
            .map_or_else(|| "none".into(), |best| format!("{} ({:.1} points/ms)", best.submission, best.points_per_ms)),
        games.all_around.winner().unwrap_or("none"),
    ));
    Ok(result)
}

/// Referees one field and turns it into claims.
pub(super) fn judge_event(
    event: &Event,
    submissions: &[&dyn Submission],
    config: &RefereeConfig,
    skipped: &[String],
) -> Result<Vec<ClaimResult>> {
    eprintln!(
        "olympics: {} — {} ({} submissions)",
        event.spec.name,
        event.source,
        submissions.len()
    );
    let started = perf_core::timer::Stopwatch::start();
    let mut outcomes = referee(event, submissions, config);
    // LoadGen's Server scenario runs over the scored field (quick mode: the baseline and the fastest).
    run_server_scenarios(event, submissions, &mut outcomes, config, BASELINE);
    eprintln!(
        "  refereed in {:.1} s (wall, under the machine's current load)",
        started.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    let mut cards = Vec::new();
    for outcome in &outcomes {
        match outcome {
            Outcome::Scored(card) => {
                eprintln!("  {card}");
                results.push(compliance_claim(card));
                cards.push(card.as_ref());
            }
            Outcome::Error { submission, reason } => {
                eprintln!("  [{}] {}: ERROR {reason}", event.source.origin, submission);
                results.push(error_claim(
                    &event.spec.name,
                    submission,
                    reason,
                    &event.source,
                ));
            }
        }
    }
    if cards.is_empty() {
        results.push(
            Claim::measured(
                &format!("olympics.{}.pareto", event.spec.name),
                MODULE,
                "Pareto front of the reference submissions",
            )
            .error("no submission could be measured"),
        );
    } else {
        results.push(pareto_claim(event, &cards, skipped)?);
        results.extend(scenario_claims(event, &cards, BASELINE));
    }
    Ok(results)
}

/// Referees a field that holds fine-tuned pruned submissions, then judges their quality against f32
/// (pruning's quality claims); `transform` is what the field's classifiers apply to inputs (`None` for
/// scorers).
pub(super) fn judge_finetuned_event(
    event: &Event,
    submissions: &[&dyn Submission],
    config: &RefereeConfig,
    skipped: &[String],
    finetuned: &pruning_claims::FineTunedField,
    transform: Option<&InputTransform>,
) -> Result<Vec<ClaimResult>> {
    let mut results = judge_event(event, submissions, config, skipped)?;
    results.extend(pruning_claims::quality_claims(
        event,
        submissions,
        finetuned,
        transform,
    ));
    Ok(results)
}

pub(super) fn event_error(event: &str, reason: String) -> ClaimResult {
    Claim::measured(
        &format!("olympics.{event}.pareto"),
        MODULE,
        &format!("{event}: the event could be run"),
    )
    .error(reason)
}
