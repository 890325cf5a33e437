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
//!
//! Code map: `builders.rs` (each event's model, data and Rust field), `event.rs` (one event refereed with
//! its peers), `comparisons.rs` (equivalence of the export, the best against the best peer, the Pareto front
//! with the peers), `report.rs` (the table's rows and texts).

mod builders;
mod comparisons;
mod event;
mod report;

use builders::{
    anomaly_detection, image_classification, image_classification_cnn, keyword_spotting,
    keyword_spotting_ds_cnn, visual_wake_words,
};
use event::run_event;
use report::vnni_presence;

use std::path::PathBuf;

use anyhow::{Context, Result};
use olympics::{Event, RefereeConfig, Submission};
use peers::{
    cnn_to_onnx_bytes, ds_cnn_to_onnx_bytes, to_onnx_bytes, GreyPooling, OnnxExport, OnnxHead,
    PeerEnvironment, PeersError,
};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use zoo::{Cnn, DsCnn, Mlp, Standardizer, ZooConfig};

use super::{data_options, ModuleContext};

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
