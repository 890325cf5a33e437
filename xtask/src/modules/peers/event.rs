//! One event refereed with its peers: the ONNX export and its equivalence, each peer's scorecard, the table,
//! the comparison with the best peer and the Pareto front.

use std::path::Path;

use anyhow::Result;
use olympics::referee::referee_self_timed;
use olympics::{referee, Outcome, RefereeConfig, Scorecard, Submission};
use peers::{
    write_onnx_bytes, ExternalSubmission, PeerConfig, PeerEnvironment, PeerSpec, PeersError,
    Runtime,
};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use serde_json::json;

use super::comparisons::{best_against_best, pareto_with_peers, worst_equivalence_excess};
use super::report::{error_row, interval_text, peer_kind, table_row, vnni_presence};
use super::{
    EventModel, ModuleContext, EQUIVALENCE_ABSOLUTE, EQUIVALENCE_RELATIVE, EQUIVALENCE_ROWS, MODULE,
};

pub(super) fn run_event(
    context: &ModuleContext,
    environment: &PeerEnvironment,
    model: EventModel,
    config: &RefereeConfig,
    scratch: &Path,
) -> Result<Vec<ClaimResult>> {
    let name = model.label.clone();
    let event = &model.event;
    let mut results = Vec::new();
    let onnx_path = scratch.join(format!("{}.onnx", model.model_name));
    let onnx_bytes = write_onnx_bytes(
        &onnx_path,
        model.model_name,
        &model.model.onnx_bytes(model.model_name)?,
    )?;

    // The workspace's own field, refereed in this run.
    let rust_refs: Vec<&dyn Submission> = model.rust_field.iter().map(AsRef::as_ref).collect();
    let rust_outcomes = referee(event, &rust_refs, config);

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    let torch = environment.torch();
    let peer_config = PeerConfig {
        scratch: Some(scratch.to_path_buf()),
        ..PeerConfig::default()
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for outcome in &rust_outcomes {
        match outcome {
            Outcome::Scored(card) => rows.push(table_row(card, "TorchPerf", "1 (batch 1)", None)),
            Outcome::Error { submission, reason } => rows.push(error_row(
                submission,
                "TorchPerf",
                "1",
                &format!("ERROR: {reason}"),
            )),
        }
    }
    let mut scored_peers: Vec<(ExternalSubmission, Box<Scorecard>)> = Vec::new();
    for spec in PeerSpec::field(&thread_counts) {
        let peer_name = spec.name();
        let claim = Claim::measured(
            &format!("peers.{name}.{peer_name}"),
            MODULE,
            &format!(
                "{name}: {peer_name}, p90 single-query latency (ms) under the Olympics referee"
            ),
        );
        if spec.runtime == Runtime::Torch {
            if let Err(PeersError::Unavailable {
                reason,
                enable_command,
            }) = &torch
            {
                results.push(claim.skipped(reason.clone(), enable_command));
                rows.push(error_row(
                    &peer_name,
                    "PyTorch",
                    &spec.threads.to_string(),
                    "SKIPPED",
                ));
                continue;
            }
        }
        let peer = match ExternalSubmission::start(environment, &onnx_path, &spec, &peer_config) {
            Ok(peer) => peer,
            Err(error) => {
                results.push(claim.error(format!("could not start: {error}")));
                rows.push(error_row(
                    &peer_name,
                    "peer",
                    &spec.threads.to_string(),
                    "ERROR",
                ));
                continue;
            }
        };
        let kind = peer_kind(peer.info());
        match referee_self_timed(event, &peer, config) {
            Outcome::Scored(card) => {
                let p90 = &card.latency.p90;
                let estimate = match p90.ci_ms {
                    Some((lower, upper)) => {
                        Estimate::new(p90.value_ms, lower, upper, "ms", config.confidence)
                    }
                    None => Estimate::new(p90.value_ms, p90.value_ms, p90.value_ms, "ms", 0.0),
                }?;
                let pipe = peer.median_pipe_overhead_ns();
                results.push(
                    claim
                        .judge(estimate)
                        .annotate(format!(
                            "{kind}; {} {}; p50 {} µs; {} model bytes; pipe round trip beside (not in the latency): {} µs per query",
                            card.quality.metric,
                            interval_text(card.quality.point, Some((card.quality.ci_lower, card.quality.ci_upper)), 4),
                            interval_text(card.latency.p50.value_ms * 1e3, card.latency.p50.ci_ms.map(|(l, u)| (l * 1e3, u * 1e3)), 1),
                            card.memory.storage_bytes,
                            pipe.map_or_else(|| "-".into(), |ns| format!("{:.1}", ns / 1e3)),
                        ))
                        .with_detail("peer", peer.info())
                        .with_detail("quality", &card.quality)
                        .with_detail("latency_p50_ms", &card.latency.p50)
                        .with_detail("memory", &card.memory)
                        .with_detail("compliance", &card.compliance)
                        .with_detail("pipe_overhead_ns_per_query_median", pipe)
                        .with_detail("steady_state", card.latency.steady_state),
                );
                rows.push(table_row(&card, &kind, &spec.threads.to_string(), pipe));
                scored_peers.push((peer, card));
            }
            Outcome::Error { reason, .. } => {
                results.push(claim.error(reason.clone()).with_detail("peer", peer.info()));
                rows.push(error_row(
                    &peer_name,
                    &kind,
                    &spec.threads.to_string(),
                    &format!("ERROR: {reason}"),
                ));
            }
        }
    }

    // The exported file against the Rust f32 model, on the first test rows.
    let equivalence_claim = Claim::threshold(
        &format!("peers.{name}.onnx_equivalence"),
        MODULE,
        &format!(
            "{name}: the exported ONNX file (opset {}) in ONNX Runtime gives the Rust f32 model's outputs on the first {EQUIVALENCE_ROWS} test rows within {EQUIVALENCE_ABSOLUTE:e} + {EQUIVALENCE_RELATIVE:e}·|reference| (worst excess ≤ 0)",
            peers::onnx::OPSET_VERSION
        ),
        0.0,
        Direction::AtMost,
    );
    let ort_f32 = scored_peers.iter().find(|(peer, _)| {
        peer.info().spec.runtime == Runtime::OnnxRuntime
            && peer.info().spec.precision == peers::Precision::F32
    });
    let baseline = model
        .rust_field
        .iter()
        .find(|submission| submission.name() == model.baseline);
    results.push(match (ort_f32, baseline) {
        (Some((peer, _)), Some(baseline)) => {
            let rows = event.test.rows(0..EQUIVALENCE_ROWS.min(event.test.len()))?;
            let peer_output = peer.forward(rows.view())?;
            let rust_output = baseline.forward(rows.view())?;
            let (excess, difference) = worst_equivalence_excess(&peer_output, &rust_output)?;
            equivalence_claim
                .judge(Estimate::new(excess, excess, excess, "", 1.0)?)
                .annotate(format!(
                    "largest |difference| {difference:.3e}; {} bytes of ONNX",
                    onnx_bytes
                ))
                .with_detail("onnx_bytes", onnx_bytes)
                .with_detail("max_abs_difference", difference)
        }
        _ => equivalence_claim.error(format!(
            "no scored ONNX Runtime f32 peer or no {} submission to compare",
            model.baseline
        )),
    });

    // Speedup and goal: TorchPerf's best (lowest p90) against the best one-thread peer.
    // "Best" among the submissions that do not miss the event's quality target (compliance not FAIL): a
    // fast model that misses it is no answer to "which should I use".
    let not_failed = |card: &&Scorecard| card.compliance.verdict() != Verdict::Fail;
    let best_rust = rust_outcomes
        .iter()
        .filter_map(Outcome::scorecard)
        .filter(not_failed)
        .min_by(|a, b| a.latency.p90.value_ms.total_cmp(&b.latency.p90.value_ms))
        .and_then(|card| {
            model
                .rust_field
                .iter()
                .find(|submission| submission.name() == card.submission)
        });
    let best_peer = scored_peers
        .iter()
        .filter(|(peer, card)| peer.info().spec.threads == 1 && not_failed(&card.as_ref()))
        .min_by(|(_, a), (_, b)| a.latency.p90.value_ms.total_cmp(&b.latency.p90.value_ms));
    match (best_rust, best_peer) {
        (Some(rust), Some((peer, _))) => {
            match best_against_best(&name, event, rust.as_ref(), peer, config, context) {
                Ok(claims) => results.extend(claims),
                Err(error) => results.push(
                    Claim::threshold(
                        &format!("peers.{name}.goal_p90"),
                        MODULE,
                        "goal",
                        1.0,
                        Direction::AtLeast,
                    )
                    .error(format!("{error:#}")),
                ),
            }
        }
        _ => results.push(
            Claim::threshold(
                &format!("peers.{name}.goal_p90"),
                MODULE,
                "goal",
                1.0,
                Direction::AtLeast,
            )
            .error("no scored TorchPerf submission or no scored one-thread peer"),
        ),
    }
    for (peer, _) in &scored_peers {
        peer.shutdown();
    }
    results.push(pareto_with_peers(
        &name,
        event,
        &rust_outcomes,
        &scored_peers,
        &model.baseline,
    )?);

    let n_rows = rows.len() as f64;
    let table = json!({
        "title": format!("{name}: TorchPerf and its peers under the same referee ({}: {})", event.source.origin, event.source.name),
        "columns": ["submission", "runtime", "threads", "quality [95% CI]", "p50 µs [CI]", "p90 µs [CI]", "model bytes", "peak query memory (B)", "pipe round trip / query (µs)", "compliance"],
        "rows": rows,
    });
    results.push(
        Claim::measured(&format!("peers.{name}.table"), MODULE, &format!("{name}: rows in the peers table"))
            .judge(Estimate::new(n_rows, n_rows, n_rows, "rows", 1.0)?)
            .with_detail("table", table)
            .with_detail("isa", vnni_presence())
            .with_detail("versions", &environment.versions)
            .with_detail(
                "memory_note",
                "TorchPerf rows: peak heap of one query by allocation (perf-core's counting allocator); peer rows: peak RSS growth of the peer process during one query (page-granular); model bytes: the stored weights (TorchPerf), the ONNX file or torch's saved state dict (peers)",
            ),
    );
    Ok(results)
}
