//! The LoadGen scenarios of one event as claims, one per scenario, each with a table over the field:
//! `olympics.<event>.single_stream`, `olympics.<event>.server`, `olympics.<event>.offline`; and the
//! validation of the early-stopping rule by simulation, `olympics.loadgen.early_stopping_coverage`.
//!
//! Each per-event claim's estimate is the baseline's figure (the table has everyone's); every number in it
//! was measured in this run, and a scenario not run for a submission says why in its row.

use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::stats::{binomial_interval, simulate_early_stopping_coverage};
use serde_json::json;

use crate::compliance::CLAIM_MODULE;
use crate::event::Event;
use crate::referee::{LatencyPercentile, Scorecard};
use crate::scenario::{format_latency_ms, EARLY_STOPPING_CONFIDENCE, LOADGEN_MIN_QUERIES};
use crate::server::SERVER_PERCENTILE;

fn with_interval(percentile: &LatencyPercentile) -> String {
    match percentile.ci_ms {
        Some((lower, upper)) => format!(
            "{} [{}, {}]",
            format_latency_ms(percentile.value_ms),
            format_latency_ms(lower),
            format_latency_ms(upper)
        ),
        None => format!(
            "{} ({})",
            format_latency_ms(percentile.value_ms),
            percentile.note.clone().unwrap_or_default()
        ),
    }
}

fn missing(card: &Scorecard, scenario: &str) -> String {
    card.scenarios
        .notes
        .iter()
        .find(|note| note.contains(scenario) || note.starts_with("LoadGen scenarios not run"))
        .cloned()
        .unwrap_or_else(|| format!("{scenario} not measured"))
}

fn baseline_card<'a>(cards: &[&'a Scorecard], baseline: &str) -> Option<&'a Scorecard> {
    cards
        .iter()
        .find(|card| card.submission == baseline)
        .or(cards.first())
        .copied()
}

fn single_stream_claim(event: &Event, cards: &[&Scorecard], baseline: &str) -> ClaimResult {
    let spec = &event.spec;
    let claim = Claim::measured(
        &format!("{CLAIM_MODULE}.{}.single_stream", spec.name),
        CLAIM_MODULE,
        &format!(
            "{}: LoadGen SingleStream (one query after another, batch 1): the p90 by LoadGen's early-stopping rule at 99% confidence for every submission, against the {} ms limit (estimate: {baseline}'s plain p90 in µs with its order-statistic interval)",
            spec.name, spec.latency_limit_ms
        ),
    );
    let rows: Vec<serde_json::Value> = cards
        .iter()
        .map(|card| match &card.scenarios.single_stream {
            Some(single) => {
                let early = single.early_stopping_p90.as_ref();
                json!([
                    card.submission,
                    single.n_queries,
                    with_interval(&single.p50),
                    with_interval(&single.p90),
                    early.map_or_else(
                        || single.note.clone().unwrap_or_default(),
                        |estimate| format_latency_ms(estimate.value)
                    ),
                    early.map_or_else(String::new, |estimate| format!(
                        "{} of {} ({} tolerated)",
                        estimate.rank, estimate.n_queries, estimate.overlatency_tolerated
                    )),
                    early.map_or_else(
                        || "—".to_string(),
                        |estimate| (if estimate.value <= spec.latency_limit_ms {
                            "yes"
                        } else {
                            "no"
                        })
                        .to_string()
                    ),
                ])
            }
            None => json!([
                card.submission,
                "—",
                "—",
                "—",
                missing(card, "SingleStream"),
                "",
                "—"
            ]),
        })
        .collect();
    let table = json!({
        "title": format!("{}: LoadGen SingleStream (latencies; intervals {:.0}% order-statistic)", spec.name, 100.0 * cards.first().map_or(0.95, |card| card.quality.confidence)),
        "columns": ["submission", "queries", "p50", "p90", "early-stopping p90 (99%)", "rank of the estimate", format!("≤ {} ms", spec.latency_limit_ms)],
        "rows": rows,
    });
    let Some(card) = baseline_card(cards, baseline) else {
        return claim.inconclusive("no scored submission", None);
    };
    let Some(single) = &card.scenarios.single_stream else {
        return claim
            .inconclusive(missing(card, "SingleStream"), None)
            .with_detail("table", table);
    };
    let confidence = card.quality.confidence;
    // In µs: the events' models answer in microseconds, where three decimals of a millisecond say little.
    let in_microseconds = single.p90.estimate(confidence).and_then(|estimate| {
        Estimate::new(
            1e3 * estimate.point(),
            1e3 * estimate.ci_lower(),
            1e3 * estimate.ci_upper(),
            "µs",
            estimate.confidence(),
        )
        .map_err(|error| error.to_string())
    });
    let result = match in_microseconds {
        Ok(estimate) => claim.judge(estimate),
        Err(why) => claim.inconclusive(
            format!("{} p90 has no interval: {why}", card.submission),
            None,
        ),
    };
    result
        .annotate(format!("{}: {}", card.submission, single.describe()))
        .with_detail("table", table)
}

fn server_claim(event: &Event, cards: &[&Scorecard], baseline: &str) -> ClaimResult {
    let spec = &event.spec;
    let claim = Claim::measured(
        &format!("{CLAIM_MODULE}.{}.server", spec.name),
        CLAIM_MODULE,
        &format!(
            "{}: LoadGen Server (seeded Poisson arrivals, one scheduler thread, latency = completion − scheduled arrival): the highest arrival rate whose early-stopping p{SERVER_PERCENTILE:.0} (99%) stays ≤ the {} ms limit while the machine keeps up, found by search (estimate: {baseline}'s rate, queries/s)",
            spec.name, spec.latency_limit_ms
        ),
    );
    let rows: Vec<serde_json::Value> = cards
        .iter()
        .map(|card| match &card.scenarios.server {
            Some(server) => {
                let at_max = server.at_max.as_ref();
                json!([
                    card.submission,
                    server
                        .max_qps
                        .map_or_else(|| "none passed".to_string(), |qps| format!("{qps:.0}")),
                    server
                        .lowest_failing_qps
                        .map_or_else(|| "—".to_string(), |qps| format!("{qps:.0}")),
                    at_max.map_or_else(|| "—".to_string(), |step| with_interval(&step.p99)),
                    at_max.map_or_else(
                        || "—".to_string(),
                        |step| format_latency_ms(step.early_stopping_p99_ms)
                    ),
                    at_max.map_or_else(
                        || "—".to_string(),
                        |step| step.last_idle_index.map_or_else(
                            || "none".to_string(),
                            |index| format!("query {} of {}", index + 1, step.n_queries)
                        )
                    ),
                    format!(
                        "{} × {}",
                        server.steps.len(),
                        server.steps.first().map_or(0, |step| step.n_queries)
                    ),
                    server.stop_reason,
                ])
            }
            None => json!([
                card.submission,
                missing(card, "Server"),
                "—",
                "—",
                "—",
                "—",
                "—",
                ""
            ]),
        })
        .collect();
    let table = json!({
        "title": format!("{}: LoadGen Server (queries/s; p99 latency)", spec.name),
        "columns": ["submission", "max QPS", "lowest failing QPS", "p99 at max QPS [interval]", "early-stopping p99 (99%)", "last arrival to an idle system", "steps × queries", "search"],
        "rows": rows,
    });
    let Some(card) = baseline_card(cards, baseline) else {
        return claim.inconclusive("no scored submission", None);
    };
    let Some(server) = &card.scenarios.server else {
        return claim
            .inconclusive(missing(card, "Server"), None)
            .with_detail("table", table);
    };
    let best = cards
        .iter()
        .filter_map(|card| {
            Some((
                card.submission.as_str(),
                card.scenarios.server.as_ref()?.max_qps?,
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let searched = cards
        .iter()
        .filter(|card| card.scenarios.server.is_some())
        .count();
    let field_note = match best {
        Some((name, qps)) => {
            format!("highest of the {searched} searched: {name} at {qps:.0} queries/s")
        }
        None => format!("none of the {searched} searched sustained any rate"),
    };
    let result = match server
        .max_qps
        .map(|qps| Estimate::new(qps, qps, qps, "queries/s", 1.0))
    {
        Some(Ok(estimate)) => claim.judge(estimate),
        Some(Err(error)) => claim.inconclusive(error.to_string(), None),
        None => claim.inconclusive(format!("{}: no arrival rate passed", card.submission), None),
    };
    result
        .annotate(format!("{}: {}", card.submission, server.describe()))
        .annotate(field_note)
        .with_detail("table", table)
}

fn offline_claim(event: &Event, cards: &[&Scorecard], baseline: &str) -> ClaimResult {
    let spec = &event.spec;
    let claim = Claim::measured(
        &format!("{CLAIM_MODULE}.{}.offline", spec.name),
        CLAIM_MODULE,
        &format!(
            "{}: LoadGen Offline (all queries at once, the batch size free): the best throughput over the batch sizes tried, with the batch that gave it (estimate: {baseline}'s best, samples/s, from the median call time and its order-statistic interval)",
            spec.name
        ),
    );
    let batch_sizes: Vec<usize> = cards
        .iter()
        .find_map(|card| card.scenarios.offline.as_ref())
        .map(|offline| offline.points.iter().map(|point| point.batch).collect())
        .unwrap_or_default();
    let mut columns: Vec<String> = vec!["submission".into()];
    columns.extend(batch_sizes.iter().map(|batch| format!("batch {batch}")));
    columns.push("best [interval] (batch)".into());
    let rows: Vec<serde_json::Value> = cards
        .iter()
        .map(|card| {
            let mut row = vec![json!(card.submission)];
            match &card.scenarios.offline {
                Some(offline) => {
                    for batch in &batch_sizes {
                        row.push(json!(offline
                            .points
                            .iter()
                            .find(|point| point.batch == *batch)
                            .map_or_else(
                                || "—".to_string(),
                                |point| format!("{:.0}", point.samples_per_second)
                            )));
                    }
                    let best = &offline.best;
                    row.push(json!(match best.ci_samples_per_second {
                        Some((lower, upper)) => format!(
                            "{:.0} [{lower:.0}, {upper:.0}] (batch {})",
                            best.samples_per_second, best.batch
                        ),
                        None => format!(
                            "{:.0} (batch {}, no interval)",
                            best.samples_per_second, best.batch
                        ),
                    }));
                }
                None => {
                    row.extend(batch_sizes.iter().map(|_| json!("—")));
                    row.push(json!(missing(card, "Offline")));
                }
            }
            serde_json::Value::Array(row)
        })
        .collect();
    let table = json!({
        "title": format!("{}: LoadGen Offline (samples/s)", spec.name),
        "columns": columns,
        "rows": rows,
    });
    let Some(card) = baseline_card(cards, baseline) else {
        return claim.inconclusive("no scored submission", None);
    };
    let Some(offline) = &card.scenarios.offline else {
        return claim
            .inconclusive(missing(card, "Offline"), None)
            .with_detail("table", table);
    };
    let best = &offline.best;
    let field_best = cards
        .iter()
        .filter_map(|card| {
            Some((
                card.submission.as_str(),
                card.scenarios.offline.as_ref()?.best.clone(),
            ))
        })
        .max_by(|a, b| a.1.samples_per_second.total_cmp(&b.1.samples_per_second));
    let result = match best.ci_samples_per_second.map(|(lower, upper)| {
        Estimate::new(
            best.samples_per_second,
            lower.min(best.samples_per_second),
            upper.max(best.samples_per_second),
            "samples/s",
            offline.confidence,
        )
    }) {
        Some(Ok(estimate)) => claim.judge(estimate),
        Some(Err(error)) => claim.inconclusive(error.to_string(), None),
        None => claim.inconclusive(
            format!("{}: the median call time has no interval", card.submission),
            None,
        ),
    };
    let mut result = result.annotate(format!(
        "{}: best at batch {} ({} per call of {} rows, {} samples)",
        card.submission,
        best.batch,
        format_latency_ms(best.median_call_ms),
        best.batch,
        best.n_samples
    ));
    if let Some((name, point)) = field_best {
        result = result.annotate(format!(
            "highest of the field: {name} at {:.0} samples/s (batch {})",
            point.samples_per_second, point.batch
        ));
    }
    result.with_detail("table", table)
}

/// The three scenario claims of one event's scored field.
pub fn scenario_claims(event: &Event, cards: &[&Scorecard], baseline: &str) -> Vec<ClaimResult> {
    vec![
        single_stream_claim(event, cards, baseline),
        server_claim(event, cards, baseline),
        offline_claim(event, cards, baseline),
    ]
}

/// The early-stopping rule validated by simulation: over `trials` seeded runs of `n_queries` latencies from
/// a log-normal and a bimodal distribution, the share whose early-stopping p90 (99%) is at or above the
/// true p90; the worse of the two, with its Clopper–Pearson interval at `confidence`, must be ≥ 0.99.
pub fn early_stopping_coverage_claim(
    n_queries: usize,
    trials: usize,
    seed: u64,
    confidence: f64,
) -> ClaimResult {
    let claim = Claim::threshold(
        &format!("{CLAIM_MODULE}.loadgen.early_stopping_coverage"),
        CLAIM_MODULE,
        &format!(
            "LoadGen's early-stopping p90 at 99% confidence is at or above the true p90 in ≥ 99% of simulated SingleStream runs of {n_queries} queries (log-normal and bimodal latencies; the worse of the two)"
        ),
        EARLY_STOPPING_CONFIDENCE,
        Direction::AtLeast,
    );
    let rates = match simulate_early_stopping_coverage(n_queries, trials, seed) {
        Ok(rates) => rates,
        Err(error) => return claim.error(error.to_string()),
    };
    let Some(worst) = rates
        .iter()
        .min_by(|a, b| a.covered_fraction.total_cmp(&b.covered_fraction))
    else {
        return claim.error("no distribution simulated");
    };
    let covered = (worst.covered_fraction * trials as f64).round() as u64;
    let estimate =
        binomial_interval(covered, trials as u64, confidence).and_then(|(lower, upper)| {
            Estimate::new(worst.covered_fraction, lower, upper, "", confidence)
        });
    let result = match estimate {
        Ok(estimate) => claim.judge(estimate),
        Err(error) => return claim.error(error.to_string()),
    };
    let min_queries = perf_core::stats::early_stopping_min_queries(90.0, EARLY_STOPPING_CONFIDENCE)
        .map_or_else(|error| error.to_string(), |n| n.to_string());
    result
        .annotate(
            rates
                .iter()
                .map(|rate| format!("{}: {:.4} of {} runs", rate.distribution, rate.covered_fraction, rate.trials))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .annotate(format!(
            "the rule's minimum is {min_queries} queries for p90 at 99% (LoadGen's own run minimum: {LOADGEN_MIN_QUERIES} queries and 60 s); simulated with seed {seed}"
        ))
        .with_detail("coverage", &rates)
}

/// The Server search's stability condition validated by simulation: over `trials` simulated runs of
/// `n_queries` Poisson arrivals into one server (exponential service) at loads from 50% to 150%, the share
/// called stable. The worse error at the two loads the condition must tell apart, 90% (called unstable)
/// and 110% (called stable), with its Clopper–Pearson interval at `confidence`, must be ≤ 5%.
pub fn server_stability_claim(
    n_queries: usize,
    trials: usize,
    idle_tail_fraction: f64,
    seed: u64,
    confidence: f64,
) -> ClaimResult {
    let claim = Claim::threshold(
        &format!("{CLAIM_MODULE}.loadgen.server_stability"),
        CLAIM_MODULE,
        &format!(
            "the Server search's stability condition (a query in the last {:.0}% of a {n_queries}-query run arrives to an idle system) errs in ≤ 5% of simulated runs at 90% load (called unstable) and at 110% load (called stable)",
            100.0 * idle_tail_fraction
        ),
        0.05,
        Direction::AtMost,
    );
    let loads = [0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.5];
    let rates = match crate::server::simulate_stability_detector(
        &loads,
        n_queries,
        trials,
        idle_tail_fraction,
        seed,
    ) {
        Ok(rates) => rates,
        Err(error) => return claim.error(error.to_string()),
    };
    let share_at = |load: f64| {
        rates
            .iter()
            .find(|rate| (rate.load - load).abs() < 1e-9)
            .map_or(f64::NAN, |rate| rate.stable_fraction)
    };
    let false_unstable = 1.0 - share_at(0.9);
    let false_stable = share_at(1.1);
    let worst = false_unstable.max(false_stable);
    let errors = (worst * trials as f64).round() as u64;
    let estimate = binomial_interval(errors, trials as u64, confidence)
        .and_then(|(lower, upper)| Estimate::new(worst, lower, upper, "", confidence));
    let result = match estimate {
        Ok(estimate) => claim.judge(estimate),
        Err(error) => return claim.error(error.to_string()),
    };
    let table = json!({
        "title": format!("Server stability condition on simulated queues ({trials} runs of {n_queries} queries per load; exponential service)"),
        "columns": ["load (arrival rate / service rate)", "share of runs called stable"],
        "rows": rates.iter().map(|rate| json!([format!("{:.0}%", 100.0 * rate.load), format!("{:.3}", rate.stable_fraction)])).collect::<Vec<_>>(),
    });
    result
        .annotate(format!(
            "called unstable at 90% load in {:.1}% of runs, called stable at 110% load in {:.1}%; between 95% and 105% the condition cannot tell (a finite run cannot); simulated with seed {seed}",
            100.0 * false_unstable,
            100.0 * false_stable
        ))
        .with_detail("table", table)
        .with_detail("rates", &rates)
}
