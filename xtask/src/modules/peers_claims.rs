//! The peers module: ONNX Runtime and PyTorch serve the same trained models as the Olympics' own
//! submissions, exported to ONNX, in a separate process, under the same referee.
//!
//! Claims, with stable ids:
//! - `peers.environment`: the peers' versions and execution providers; SKIPPED with `bash peers/setup.sh`
//!   when the virtual environment is absent (then every other peers claim is SKIPPED too).
//! - `peers.<event>.onnx_equivalence`: the exported file run in ONNX Runtime gives the Rust f32 model's
//!   outputs on the event's first test rows within `1e-4 + 1e-4·|reference|` (worst excess ≤ 0).
//! - `peers.<event>.<peer>`: a peer's p90 with its interval (quality, p50, model bytes, memory, the pipe's
//!   round trip beside the latency, versions in the details); ERROR with the reason for a broken peer;
//!   SKIPPED with `apt-get install -y python3-torch` for the PyTorch rows when torch is absent.
//! - `peers.<event>.table`: the event's field, TorchPerf and peers, as a table (`details.table`).
//! - `peers.<event>.speedup_vs_best_peer`: TorchPerf's best submission (lowest p90) against the best
//!   one-thread peer (lowest p90), interleaved: the ratio of geometric means with its paired interval.
//! - `peers.<event>.goal_p90`: the goal "TorchPerf's best ≥ 1.0× the best peer's per-query p90 at batch 1,
//!   one thread": p90(peer) / p90(TorchPerf) from the interleaved samples, with an interval from the two
//!   97.5% order-statistic intervals (joint coverage ≥ 95% by Bonferroni). FAIL with the interval when the
//!   goal is missed.
//!
//! Timings are single queries (batch 1) on this machine under its current load; the peers' times are
//! what the peer's own monotonic clock measured around its inference calls, never the pipe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use datasets::{FsddSplit, MfccConfig};
use ndarray::{s, Array2};
use olympics::referee::referee_self_timed;
use olympics::reference;
use olympics::submissions::{
    cnn_storage_bytes, ds_cnn_storage_bytes, InputTransform, ZooClassifier,
};
use olympics::{referee, Event, Outcome, RefereeConfig, Scorecard, Submission};
use peers::{
    cnn_to_onnx_bytes, ds_cnn_to_onnx_bytes, to_onnx_bytes, write_onnx_bytes, ExternalSubmission,
    GreyPooling, OnnxExport, OnnxHead, PeerConfig, PeerEnvironment, PeerSpec, PeersError, Runtime,
    SelfTimedBatch,
};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use perf_core::compare::{compare_sources, CompareConfig};
use perf_core::measure::ClosureBatch;
use perf_core::stats::BenchmarkResult;
use serde_json::json;
use zoo::{
    train_or_load, Cnn, DsCnn, Mlp, ReferenceModel, Standardizer, TrainedWeights, ZooConfig,
};

use super::{data_options, olympics_claims, ModuleContext};

const MODULE: &str = "peers";
/// Per-element tolerance of the ONNX equivalence check: `1e-4 + 1e-4·|reference|` (f32 sums of up to 784
/// products in another order differ by a few ulps of the partial sums; a wrong layout, bias or ReLU is off
/// by orders of magnitude more).
const EQUIVALENCE_ABSOLUTE: f32 = 1e-4;
const EQUIVALENCE_RELATIVE: f32 = 1e-4;
const EQUIVALENCE_ROWS: usize = 256;

/// Builds one event, its model and the workspace's field.
type EventBuilder = fn(&ModuleContext, &ZooConfig) -> Result<Built>;

/// What a builder made: the event with its model, or why it cannot be built here (SKIPPED with the
/// command that makes it possible).
enum Built {
    Model(Box<EventModel>),
    Skipped { reason: String, command: String },
}

/// The exported model of an event's peers.
enum PeerModel {
    /// A fully connected network with the input stage the Rust submissions apply.
    Mlp {
        network: Mlp,
        standardizer: Option<Standardizer>,
        grey_pooling: Option<GreyPooling>,
        head: OnnxHead,
    },
    /// zoo's two-convolution CNN.
    Cnn(Box<Cnn>),
    /// zoo's DS-CNN.
    DsCnn(Box<DsCnn>),
}

impl PeerModel {
    fn onnx_bytes(&self, name: &str) -> Result<Vec<u8>, PeersError> {
        match self {
            PeerModel::Mlp {
                network,
                standardizer,
                grey_pooling,
                head,
            } => to_onnx_bytes(&OnnxExport {
                name,
                network,
                standardizer: standardizer.as_ref(),
                grey_pooling: *grey_pooling,
                head: *head,
            }),
            PeerModel::Cnn(cnn) => cnn_to_onnx_bytes(name, cnn),
            PeerModel::DsCnn(network) => ds_cnn_to_onnx_bytes(name, network),
        }
    }
}

/// One event's model as the peers receive it.
struct EventModel {
    /// The claims' namespace (`peers.<label>.…`): the event's name, or the event and the model when one
    /// event has several models (the Fashion CNN, the DS-CNN).
    label: String,
    event: Event,
    model: PeerModel,
    rust_field: Vec<Box<dyn Submission>>,
    /// The Rust f32 submission the exported file must reproduce.
    baseline: String,
    model_name: &'static str,
}

fn mlp_field(
    mlp: &Mlp,
    transform: &InputTransform,
    quick: bool,
) -> Result<Vec<Box<dyn Submission>>> {
    Ok(
        reference::mlp_classifiers(mlp, transform, &reference::mlp_recipes(quick))?
            .into_iter()
            .map(|submission| Box::new(submission) as Box<dyn Submission>)
            .collect(),
    )
}

fn image_classification(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    // As the olympics module: Fashion-MNIST when its MLP is cached (quick) or trainable (full), else the
    // embedded digits.
    let fashion = if context.quick {
        zoo::load_cached(ReferenceModel::FashionMlp, zoo_config)
            .ok()
            .flatten()
    } else {
        train_or_load(ReferenceModel::FashionMlp, zoo_config).ok()
    };
    let (trained, model_name) = match fashion {
        Some(trained) => (trained, "fashion-mlp"),
        None => (
            train_or_load(ReferenceModel::DigitsMlp, zoo_config).context("digits MLP")?,
            "digits-mlp",
        ),
    };
    let TrainedWeights::Mlp(mlp) = &trained.weights else {
        anyhow::bail!("zoo returned a non-MLP model for {model_name}");
    };
    let event = olympics::events::image_classification(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    let rust_field = mlp_field(mlp, &InputTransform::Identity, context.quick)?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp.clone(),
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name,
    })))
}

/// The command that trains and caches zoo's reference models (the CNN and DS-CNN rows read the cache).
const ZOO_TRAIN_COMMAND: &str = "cargo xtask validate --module zoo";

/// zoo's `model` from the weight cache, or the SKIPPED build that says why not (`what` names the model
/// in the reason).
fn cached_zoo_model(
    model: ReferenceModel,
    what: &str,
    zoo_config: &ZooConfig,
) -> std::result::Result<zoo::TrainedModel, Built> {
    match zoo::load_cached(model, zoo_config) {
        Ok(Some(trained)) => Ok(trained),
        Ok(None) => Err(Built::Skipped {
            reason: format!("zoo's {what} is not in the weight cache"),
            command: ZOO_TRAIN_COMMAND.into(),
        }),
        Err(error) => Err(Built::Skipped {
            reason: format!("zoo's {what} could not be read from the cache ({error})"),
            command: ZOO_TRAIN_COMMAND.into(),
        }),
    }
}

/// zoo's Fashion CNN (from the weight cache) against its ONNX Runtime and PyTorch peers on the Fashion
/// image-classification event.
fn image_classification_cnn(_context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let trained = match cached_zoo_model(ReferenceModel::FashionCnn, "Fashion CNN", zoo_config) {
        Ok(trained) => trained,
        Err(skipped) => return Ok(skipped),
    };
    let TrainedWeights::Cnn(cnn) = trained.weights else {
        anyhow::bail!("zoo returned a non-CNN model for the Fashion CNN");
    };
    let event = olympics::events::image_classification(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    let rust_field: Vec<Box<dyn Submission>> = vec![Box::new(ZooClassifier {
        name: "fashion_cnn_f32".into(),
        storage_bytes: cnn_storage_bytes(&cnn),
        model: Box::new(cnn.clone()),
    })];
    Ok(Built::Model(Box::new(EventModel {
        label: format!("{}_cnn", event.spec.name),
        event,
        model: PeerModel::Cnn(Box::new(cnn)),
        rust_field,
        baseline: "fashion_cnn_f32".into(),
        model_name: "fashion-cnn",
    })))
}

fn anomaly_detection(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
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
    let rust_field =
        reference::anomaly_scorers(autoencoder, &reference::mlp_recipes(context.quick))?
            .into_iter()
            .map(|submission| Box::new(submission) as Box<dyn Submission>)
            .collect();
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: autoencoder.network.clone(),
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::ReconstructionError,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "digits-autoencoder",
    })))
}

/// The keyword-spotting event as the olympics module builds it (FSDD MFCC windows, or its synthetic set
/// when FSDD is not installed) and whether the data is real.
fn keyword_data(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
) -> Result<(datasets::LabeledDataset, bool)> {
    let dir = datasets::fsdd_dir(zoo_config.data.fsdd_dir.as_deref());
    match datasets::load_fsdd_clips(&dir) {
        Ok(clips) => Ok((
            datasets::fsdd_features(
                &clips,
                &FsddSplit::Conventional,
                &MfccConfig::default(),
                &dir,
            )?,
            true,
        )),
        Err(error) if error.is_not_found() => {
            eprintln!("peers: FSDD not installed ({error}); SYNTHETIC keyword set instead");
            let (train, test, info) =
                olympics::events::synthetic_keywords(2_700, 300, context.seed)?;
            Ok((
                datasets::LabeledDataset {
                    train,
                    test,
                    info,
                    split: "SYNTHETIC: generated train 2,700 / test 300".to_string(),
                },
                false,
            ))
        }
        Err(error) => Err(error).context("FSDD"),
    }
}

fn keyword_spotting(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let (dataset, _) = keyword_data(context, zoo_config)?;
    let event = olympics::events::keyword_spotting(&dataset.test, &dataset.info, &dataset.split)?;
    let standardizer = Standardizer::fit(dataset.train.features().view());
    let standardized = standardizer.apply(dataset.train.features().view())?;
    // The olympics module's small MLP: the same recipe and seed, so the peers serve the model the
    // Olympics field is built from.
    let mlp = olympics_claims::train_small_mlp(
        standardized.view(),
        dataset.train.labels(),
        dataset.train.n_classes(),
        128,
        context.seed,
    )?;
    let rust_field = mlp_field(
        &mlp,
        &InputTransform::Standardize(standardizer.clone()),
        context.quick,
    )?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp,
            standardizer: Some(standardizer),
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "kws-mlp",
    })))
}

/// zoo's DS-CNN (from the weight cache; trained on FSDD) against its peers on the keyword-spotting event.
fn keyword_spotting_ds_cnn(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let trained = match cached_zoo_model(ReferenceModel::KwsDsCnn, "DS-CNN", zoo_config) {
        Ok(trained) => trained,
        Err(skipped) => return Ok(skipped),
    };
    let TrainedWeights::DsCnn(network) = trained.weights else {
        anyhow::bail!("zoo returned a non-DS-CNN model for the DS-CNN");
    };
    let (dataset, real) = keyword_data(context, zoo_config)?;
    if !real {
        return Ok(Built::Skipped {
            reason: "FSDD is not installed (the DS-CNN is trained and tested on it)".into(),
            command: "export TORCHPERF_FSDD_DIR=<free-spoken-digit-dataset>/recordings".into(),
        });
    }
    let event = olympics::events::keyword_spotting(&dataset.test, &dataset.info, &dataset.split)?;
    let rust_field: Vec<Box<dyn Submission>> = vec![Box::new(ZooClassifier {
        name: "ds_cnn_f32".into(),
        storage_bytes: ds_cnn_storage_bytes(&network),
        model: Box::new(network.clone()),
    })];
    Ok(Built::Model(Box::new(EventModel {
        label: format!("{}_ds_cnn", event.spec.name),
        event,
        model: PeerModel::DsCnn(Box::new(network)),
        rust_field,
        baseline: "ds_cnn_f32".into(),
        model_name: "kws-ds-cnn",
    })))
}

fn visual_wake_words(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let dataset = match datasets::load_fashion_mnist(zoo_config.data.fashion_mnist_dir.as_deref()) {
        Ok(dataset) => dataset,
        Err(error) if error.is_not_found() => {
            return Ok(Built::Skipped {
                reason: format!("Fashion-MNIST is not installed ({error})"),
                command: error
                    .enable_command()
                    .unwrap_or("apt-get install dataset-fashion-mnist")
                    .into(),
            })
        }
        Err(error) => return Err(error).context("Fashion-MNIST"),
    };
    let event = olympics::events::visual_wake_words(&dataset.test, &dataset.info)?;
    let olympics_claims::VwwModel { mlp, transform, .. } =
        olympics_claims::train_vww_model(&dataset.train, context.seed)?;
    let rust_field = mlp_field(&mlp, &transform, context.quick)?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp,
            standardizer: None,
            grey_pooling: Some(GreyPooling {
                side: olympics::events::VWW_SIDE,
                channels: 3,
                factor: 4,
            }),
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "vww-mlp",
    })))
}

fn interval_text(point: f64, bounds: Option<(f64, f64)>, digits: usize) -> String {
    match bounds {
        Some((lower, upper)) => {
            format!("{point:.digits$} [{lower:.digits$}, {upper:.digits$}]")
        }
        None => format!("{point:.digits$} (no interval)"),
    }
}

fn vnni_presence() -> String {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flag_line = flags
        .lines()
        .find(|line| line.starts_with("flags"))
        .unwrap_or("");
    let has = |flag: &str| flag_line.split_whitespace().any(|word| word == flag);
    match (has("avx512_vnni"), has("avx_vnni")) {
        (true, _) => "VNNI present (avx512_vnni)".into(),
        (false, true) => "VNNI present (avx_vnni)".into(),
        (false, false) if flag_line.is_empty() => "VNNI unknown (/proc/cpuinfo unreadable)".into(),
        (false, false) => "VNNI absent".into(),
    }
}

/// A row of the peers table.
fn table_row(card: &Scorecard, kind: &str, threads: &str, pipe: Option<f64>) -> Vec<String> {
    let quality = &card.quality;
    let latency = &card.latency;
    vec![
        card.submission.clone(),
        kind.to_string(),
        threads.to_string(),
        interval_text(quality.point, Some((quality.ci_lower, quality.ci_upper)), 4),
        interval_text(
            latency.p50.value_ms * 1e3,
            latency.p50.ci_ms.map(|(l, u)| (l * 1e3, u * 1e3)),
            1,
        ),
        interval_text(
            latency.p90.value_ms * 1e3,
            latency.p90.ci_ms.map(|(l, u)| (l * 1e3, u * 1e3)),
            1,
        ),
        card.memory.storage_bytes.to_string(),
        card.memory
            .peak_query_bytes
            .map_or_else(|| "not measured".into(), |bytes| bytes.to_string()),
        pipe.map_or_else(|| "-".into(), |ns| format!("{:.1}", ns / 1e3)),
        card.compliance.verdict().to_string(),
    ]
}

fn error_row(name: &str, kind: &str, threads: &str, status: &str) -> Vec<String> {
    let mut row = vec![name.to_string(), kind.to_string(), threads.to_string()];
    row.extend(std::iter::repeat_n("-".to_string(), 6));
    row.push(status.to_string());
    row
}

fn peer_kind(info: &peers::PeerInfo) -> String {
    match info.spec.runtime {
        Runtime::OnnxRuntime => format!(
            "ONNX Runtime {} ({})",
            info.versions["onnxruntime"].as_str().unwrap_or("?"),
            info.provider
        ),
        _ => format!(
            "PyTorch {} ({})",
            info.versions["torch"].as_str().unwrap_or("?"),
            info.quantization.as_deref().unwrap_or("f32")
        ),
    }
}

fn worst_equivalence_excess(peer: &Array2<f32>, reference: &Array2<f32>) -> Result<(f64, f64)> {
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
fn best_against_best(
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
fn pareto_with_peers(
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

fn skipped_event_claims(name: &str, reason: &str, command: &str) -> Vec<ClaimResult> {
    vec![Claim::threshold(
        &format!("peers.{name}.goal_p90"),
        MODULE,
        &format!("{name}: TorchPerf's best submission is at least 1.0× the best peer's per-query p90 at batch 1, one thread"),
        1.0,
        Direction::AtLeast,
    )
    .skipped(reason, command)]
}

fn run_event(
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

/// Every event (and model) the peers are refereed on, by claim namespace.
const BUILDERS: [(&str, EventBuilder); 6] = [
    ("image_classification", image_classification),
    ("image_classification_cnn", image_classification_cnn),
    ("anomaly_detection", anomaly_detection),
    ("keyword_spotting", keyword_spotting),
    ("keyword_spotting_ds_cnn", keyword_spotting_ds_cnn),
    ("visual_wake_words", visual_wake_words),
];

fn scratch_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("torchperf-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let environment_claim = Claim::measured(
        "peers.environment",
        MODULE,
        "peer runtimes available to the referee (ONNX Runtime, PyTorch)",
    );
    let environment = match PeerEnvironment::discover() {
        Ok(environment) => environment,
        Err(PeersError::Unavailable {
            reason,
            enable_command,
        }) => {
            let mut results = vec![environment_claim.skipped(reason.clone(), &enable_command)];
            for (event, _) in BUILDERS {
                results.extend(skipped_event_claims(event, &reason, &enable_command));
            }
            return Ok(results);
        }
        Err(error) => return Err(error.into()),
    };
    let n_runtimes = 1.0 + f64::from(u8::from(environment.torch().is_ok()));
    let mut environment_result = environment_claim
        .judge(Estimate::new(
            n_runtimes, n_runtimes, n_runtimes, "runtimes", 1.0,
        )?)
        .with_detail("versions", &environment.versions)
        .with_detail("venv", environment.venv.display().to_string())
        .with_detail("isa", vnni_presence());
    match environment.torch() {
        Err(error) => {
            environment_result =
                environment_result.annotate(format!("PyTorch rows SKIPPED: {error}"));
        }
        Ok(version) => {
            let path = environment.version("torch_path").unwrap_or("?");
            let build = match environment.version("torch_cuda") {
                Some(cuda) => format!("a CUDA {cuda} build (run on CPU here)"),
                None => "a CPU build".to_string(),
            };
            environment_result =
                environment_result.annotate(format!("PyTorch {version} from {path}, {build}"));
        }
    }
    let mut results = vec![environment_result];
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
    let scratch = scratch_dir()?;
    for (event_name, build) in BUILDERS {
        let outcome = build(context, &zoo_config).and_then(|built| match built {
            Built::Model(model) => run_event(context, &environment, *model, &config, &scratch),
            Built::Skipped { reason, command } => {
                Ok(skipped_event_claims(event_name, &reason, &command))
            }
        });
        match outcome {
            Ok(claims) => results.extend(claims),
            Err(error) => results.push(
                Claim::threshold(
                    &format!("peers.{event_name}.goal_p90"),
                    MODULE,
                    "goal",
                    1.0,
                    Direction::AtLeast,
                )
                .error(format!("{error:#}")),
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(results)
}
