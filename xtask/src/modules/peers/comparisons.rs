//! The exported file's equivalence to the Rust model, TorchPerf's best against the best one-thread peer
//! (speedup and the p90 goal), and the Pareto front with the peers.

use std::time::Duration;

use anyhow::{Context, Result};
use ndarray::{s, Array2};
use olympics::{Event, Outcome, RefereeConfig, Scorecard, Submission};
use peers::{ExternalSubmission, SelfTimedBatch};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::{compare_sources, CompareConfig};
use perf_core::measure::ClosureBatch;
use perf_core::stats::BenchmarkResult;
use serde_json::json;

use super::report::vnni_presence;
use super::{ModuleContext, EQUIVALENCE_ABSOLUTE, EQUIVALENCE_RELATIVE, MODULE};

pub(super) fn worst_equivalence_excess(
    peer: &Array2<f32>,
    reference: &Array2<f32>,
) -> Result<(f64, f64)> {
    anyhow::ensure!(
        peer.dim() == reference.dim(),
        "peer output {:?}, Rust output {:?}",
        peer.dim(),
        reference.dim()
    );
    let mut worst_excess = f64::NEG_INFINITY;
    let mut worst_difference = 0.0f64;
    for (&got, &want) in peer.iter().zip(reference.iter()) {
        let difference = (got - want).abs();
        worst_difference = worst_difference.max(f64::from(difference));
        worst_excess = worst_excess.max(f64::from(
            difference - (EQUIVALENCE_ABSOLUTE + EQUIVALENCE_RELATIVE * want.abs()),
        ));
    }
    Ok((worst_excess, worst_difference))
}

/// The interleaved comparison of TorchPerf's best with the best one-thread peer, and the goal claim.
pub(super) fn best_against_best(
    name: &str,
    event: &Event,
    rust: &dyn Submission,
    peer: &ExternalSubmission,
    config: &RefereeConfig,
    context: &ModuleContext,
) -> Result<Vec<ClaimResult>> {
    let queries = event.latency_queries(config.n_latency_queries, config.seed)?;
    use olympics::referee::SelfTimedSubmission as _;
    peer.load_latency_queries(queries.view())?;
    let n_queries = queries.nrows();
    let mut next_query = 0usize;
    let mut rust_source = ClosureBatch::new(&queries, |queries: &Array2<f32>| {
        let query = queries.slice(s![next_query..next_query + 1, ..]);
        next_query = (next_query + 1) % n_queries;
        rust.forward(query).ok()
    });
    let mut peer_source = SelfTimedBatch::new(peer);
    // Single queries as the referee times them (no batching floor beyond 1000 clock ticks), alternating
    // blocks, enough pairs for a p90 interval at 97.5%.
    let compare_config = CompareConfig {
        pairs: if context.quick { 120 } else { 400 },
        min_sample_time: Duration::ZERO,
        warm_up: config.measure.warm_up,
        seed: context.seed,
        ..CompareConfig::default()
    };
    let comparison = compare_sources(&compare_config, &mut peer_source, &mut rust_source);
    if let Some(failure) = peer_source.failure() {
        anyhow::bail!("peer {} failed while compared: {failure}", peer.name());
    }
    let comparison = comparison?;
    let statement = format!(
        "{name}: TorchPerf's best ({}) against the best one-thread peer ({}) (lowest p90 among those whose compliance is not FAIL), interleaved, batch 1 (ratio > 1: TorchPerf faster)",
        rust.name(),
        peer.name()
    );
    let speedup = Claim::measured(
        &format!("peers.{name}.speedup_vs_best_peer"),
        MODULE,
        &statement,
    )
    .judge_comparison(&comparison)?
    .with_detail("torchperf", rust.name())
    .with_detail("peer", peer.name())
    .with_detail("pairs", comparison.log_ratios.len())
    .with_detail(
        "median_pipe_overhead_ns_per_query",
        peer.median_pipe_overhead_ns(),
    )
    .needs_quiet_machine();

    let p90_at = |values: &[f64], side: &str| -> Result<(f64, f64, f64)> {
        let result = BenchmarkResult::with_confidence(side, "ns", values.to_vec(), 0.975)?;
        let estimate = result
            .percentile(90.0)
            .with_context(|| format!("{side}: no p90"))?;
        match (estimate.ci_lower, estimate.ci_upper) {
            (Some(lower), Some(upper)) => Ok((estimate.value, lower, upper)),
            _ => anyhow::bail!(
                "{side}: p90 without interval ({})",
                estimate.note.clone().unwrap_or_default()
            ),
        }
    };
    let (peer_p90, peer_lower, peer_upper) = p90_at(comparison.baseline.values(), peer.name())?;
    let (rust_p90, rust_lower, rust_upper) = p90_at(comparison.candidate.values(), rust.name())?;
    let ratio = Estimate::new(
        peer_p90 / rust_p90,
        peer_lower / rust_upper,
        peer_upper / rust_lower,
        "×",
        0.95,
    )?;
    let goal = Claim::threshold(
        &format!("peers.{name}.goal_p90"),
        MODULE,
        &format!(
            "{name}: TorchPerf's best submission is at least 1.0× the best peer's per-query p90 at batch 1, one thread (p90 of {} / p90 of {})",
            peer.name(),
            rust.name()
        ),
        1.0,
        Direction::AtLeast,
    )
    .judge(ratio)
    .annotate(format!(
        "p90 {:.1} µs ({}) vs {:.1} µs ({}), interleaved; interval from the two 97.5% order-statistic intervals (joint ≥ 95%)",
        peer_p90 / 1e3,
        peer.name(),
        rust_p90 / 1e3,
        rust.name()
    ))
    .with_detail("peer_p90_ns", [peer_lower, peer_p90, peer_upper])
    .with_detail("torchperf_p90_ns", [rust_lower, rust_p90, rust_upper])
    .with_detail("isa", vnni_presence())
    .needs_quiet_machine();
    Ok(vec![speedup, goal])
}

/// The Pareto front over (p90 ↓, memory footprint ↓, quality ↑) of TorchPerf's submissions and the peers
/// together, scored in this run by the same referee; the figure draws the peers as triangles.
pub(super) fn pareto_with_peers(
    name: &str,
    event: &Event,
    rust_outcomes: &[Outcome],
    scored_peers: &[(ExternalSubmission, Box<Scorecard>)],
    baseline: &str,
) -> Result<ClaimResult> {
    let mut cards: Vec<&Scorecard> = rust_outcomes
        .iter()
        .filter_map(Outcome::scorecard)
        .collect();
    let n_rust = cards.len();
    cards.extend(scored_peers.iter().map(|(_, card)| card.as_ref()));
    let peer_names: Vec<&str> = cards[n_rust..]
        .iter()
        .map(|card| card.submission.as_str())
        .collect();
    let analysis = olympics::pareto::analyze(&cards, baseline);
    let is_peer = |label: &str| peer_names.contains(&label);
    let series = |title: &str, points: &[(String, f64, f64)], peers: bool| {
        let chosen: Vec<&(String, f64, f64)> = points
            .iter()
            .filter(|(label, _, _)| is_peer(label) == peers)
            .collect();
        json!({
            "name": title,
            "style": "points",
            "marker": if peers { "triangle" } else { "circle" },
            "points": chosen.iter().map(|(_, x, y)| json!([x, y])).collect::<Vec<_>>(),
            "labels": chosen.iter().map(|(label, _, _)| label.clone()).collect::<Vec<_>>(),
        })
    };
    let plot = json!({
        "title": format!("{name}: Pareto frontier with the peers (p90 latency vs {}), {} data", event.spec.metric, event.source.origin),
        "x_label": "p90 single-query latency (ms)",
        "y_label": event.spec.metric.to_string(),
        "log_x": true,
        "log_y": false,
        "series": [
            series("TorchPerf, on the front", &analysis.frontier_points, false),
            series("TorchPerf, dominated", &analysis.dominated_points, false),
            series("peers, on the front", &analysis.frontier_points, true),
            series("peers, dominated", &analysis.dominated_points, true),
        ],
    });
    let peers_on_front = analysis
        .front
        .iter()
        .filter(|member| is_peer(member))
        .count() as f64;
    Ok(Claim::measured(
        &format!("peers.{name}.pareto"),
        MODULE,
        &format!("{name}: peers on the Pareto front over (p90 latency ↓, memory footprint ↓, {} ↑) of TorchPerf's submissions and the peers", event.spec.metric),
    )
    .judge(Estimate::new(peers_on_front, peers_on_front, peers_on_front, "peers", 1.0)?)
    .annotate(format!(
        "front: {}; {} TorchPerf and {} peer scorecards (peers drawn as triangles); peer memory is the process's RSS growth, TorchPerf's the heap, so the footprint axis compares unlike measures",
        analysis.front.join(", "),
        n_rust,
        peer_names.len()
    ))
    .with_detail("front", &analysis.front)
    .with_detail("plot", plot))
}
