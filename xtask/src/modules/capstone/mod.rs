//! The capstone: the pretrained all-MiniLM-L6-v2 (crates/minilm) optimized with the workspace's toolbox and
//! refereed. Claims: agreement with the independent PyTorch reference; per submission (f32, dynamic int8, f16,
//! bf16, two structured-pruning levels, int8 + pruning) the model bytes, peak heap, SingleStream p90 per sentence
//! at batch 1 and Offline throughput; fidelity (cosine to f32) on real sentences of The Devil's Dictionary; a
//! retrieval task (each definition split in two halves, top-1 matching accuracy with a Wilson interval, f32 the
//! baseline, compliance within 1 point by a paired interval); int8 ≥ 2× f32 at batch 32 × 128 tokens on one
//! thread; and the Pareto front over (p90, bytes, retrieval accuracy) naming the best operating point.
//!
//! Every time is measured through perf-core (`try_measure`, `try_compare`); the model comes from
//! `TORCHPERF_MINILM_DIR` (`source .ci/capstone.sh`), the text from Debian's `dict-devil`; without either the
//! claims that need it are SKIPPED with the command that installs it.
//!
//! Code map: `text.rs` (the dictionary's entries and sentences, full-length windows), `reference.rs`
//! (agreement with PyTorch), `submissions.rs` (the submissions' bytes, peak heap, p90 and throughput),
//! `quality.rs` (fidelity, retrieval and compliance), `speedup.rs` (int8 against f32 at batch 32),
//! `onnxruntime.rs` (the best operating point against ONNX Runtime), `pareto.rs` (the Pareto front).

mod onnxruntime;
mod pareto;
mod quality;
mod reference;
mod speedup;
mod submissions;
mod text;

use super::splitmix::SplitMix;
use super::ModuleContext;
use anyhow::{Context, Result};
use minilm::{
    prune, BertWeights, Encoder, EncoderConfig, MiniLm, ModelFiles, Precision, PruneConfig,
    TokenBatch, MINILM_INSTALL_COMMAND,
};
use onnxruntime::{onnxruntime_claims, ORT_CLAIMS};
use pareto::{best_operating_point, pareto_claim};
use perf_core::claim::{Claim, ClaimResult, Estimate};
use quality::{compliance_claims, fidelity_claim, quality_measurements, retrieval_baseline_claim};
use reference::reference_claim;
use speedup::speedup_claim;
use submissions::{measure_submissions, submissions_claim};
use text::parse_dictionary;

const MODULE: &str = "capstone";
const CONFIDENCE: f64 = 0.95;
const DICT_DEVIL_INSTALL: &str = "apt-get install dict-devil";
/// Sentences per Offline batch and per peak-memory probe.
const OFFLINE_BATCH: usize = 32;
/// Distinct single-sentence queries cycled through by the SingleStream measurement.
const SINGLE_STREAM_QUERIES: usize = 64;

/// How much work each part does.
struct Budget {
    reference_sentences: usize,
    fidelity_sentences: usize,
    retrieval_entries: usize,
    single_stream_samples: usize,
    offline_samples: usize,
    /// Rounds over which the submissions' timings are interleaved.
    timing_rounds: usize,
    speedup_pairs: usize,
}

impl Budget {
    fn new(quick: bool) -> Budget {
        if quick {
            Budget {
                reference_sentences: 16,
                fidelity_sentences: 150,
                retrieval_entries: 120,
                single_stream_samples: 64,
                offline_samples: 6,
                timing_rounds: 2,
                speedup_pairs: 6,
            }
        } else {
            Budget {
                reference_sentences: 64,
                fidelity_sentences: 1200,
                retrieval_entries: usize::MAX,
                single_stream_samples: 300,
                offline_samples: 20,
                timing_rounds: 4,
                speedup_pairs: 12,
            }
        }
    }
}

fn as_strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// A submission: a name, what it applies, and its encoder.
struct Submission {
    name: &'static str,
    optimizations: &'static str,
    encoder: Encoder,
}

fn build_submissions(weights: &BertWeights) -> Result<Vec<Submission>> {
    let light = PruneConfig {
        head_fraction: 0.125,
        neuron_fraction: 0.125,
    };
    let heavy = PruneConfig {
        head_fraction: 0.25,
        neuron_fraction: 0.25,
    };
    let light_weights = prune(weights, &light)?;
    let heavy_weights = prune(weights, &heavy)?;
    let build = |weights: &BertWeights, precision| {
        Encoder::new(
            weights,
            &EncoderConfig {
                precision,
                threads: 1,
            },
        )
    };
    Ok(vec![
        Submission {
            name: "f32",
            optimizations: "none (accel f32 GEMM)",
            encoder: build(weights, Precision::F32)?,
        },
        Submission {
            name: "int8",
            optimizations:
                "dynamic int8: per-channel i8 weights, per-token u8 activations (quant VNNI GEMM)",
            encoder: build(weights, Precision::Int8)?,
        },
        Submission {
            name: "f16",
            optimizations: "f16 weight storage, widened per product",
            encoder: build(weights, Precision::F16)?,
        },
        Submission {
            name: "bf16",
            optimizations: "bf16 weight storage, widened per product",
            encoder: build(weights, Precision::Bf16)?,
        },
        Submission {
            name: "prune12",
            optimizations: "12.5% of heads (2 of 12) and FFN neurons removed per layer, f32",
            encoder: build(&light_weights, Precision::F32)?,
        },
        Submission {
            name: "prune25",
            optimizations: "25% of heads (3 of 12) and FFN neurons removed per layer, f32",
            encoder: build(&heavy_weights, Precision::F32)?,
        },
        Submission {
            name: "int8+prune12",
            optimizations: "12.5% pruning, then dynamic int8",
            encoder: build(&light_weights, Precision::Int8)?,
        },
    ])
}

/// A value with no sampling uncertainty (a byte count, a deterministic error), as a degenerate estimate.
fn exact(value: f64, unit: &str) -> Result<Estimate> {
    Ok(Estimate::new(value, value, value, unit, 1.0)?)
}

/// Where the model is: `<data_dir>/all-MiniLM-L6-v2` when it holds the files, else `TORCHPERF_MINILM_DIR`.
fn locate_model(context: &ModuleContext) -> Result<ModelFiles, minilm::MinilmError> {
    if let Some(dir) = &context.data_dir {
        let candidate = dir.join("all-MiniLM-L6-v2");
        if let Ok(files) = ModelFiles::locate(Some(&candidate)) {
            return Ok(files);
        }
    }
    ModelFiles::locate(None)
}

const CLAIM_IDS: [(&str, &str); 6] = [
    (
        "capstone.reference_agreement",
        "The Rust encoder's embeddings equal the PyTorch reference's (min cosine ≥ 0.9999)",
    ),
    (
        "capstone.submissions",
        "Each submission's model bytes, peak heap, SingleStream p90 and Offline throughput are measured",
    ),
    (
        "capstone.retrieval_f32",
        "f32 retrieval baseline: top-1 accuracy of matching definition halves",
    ),
    (
        "capstone.int8_fidelity",
        "int8 embeddings stay within cosine 0.99 of f32 on real sentences (mean cosine ≥ 0.99)",
    ),
    (
        "capstone.int8_throughput_2x",
        "int8 ≥ 2× f32 throughput at batch 32 × 128 tokens on one thread",
    ),
    (
        "capstone.pareto",
        "The Pareto front over (p90, bytes, fidelity) names the best operating point within 1 retrieval point of f32",
    ),
];

fn skip_all(reason: &str, command: &str) -> Vec<ClaimResult> {
    CLAIM_IDS
        .iter()
        .chain(&ORT_CLAIMS)
        .map(|(id, statement)| Claim::measured(id, MODULE, statement).skipped(reason, command))
        .collect()
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let files = match locate_model(context) {
        Ok(files) => files,
        Err(error) => {
            return Ok(skip_all(
                &format!("all-MiniLM-L6-v2 not installed ({error})"),
                MINILM_INSTALL_COMMAND,
            ))
        }
    };
    let model = MiniLm::load(&files).context("loading all-MiniLM-L6-v2")?;
    let budget = Budget::new(context.quick);
    let mut results = vec![reference_claim(&files, &model, &budget)];
    let submissions = build_submissions(&model.weights)?;
    let text = datasets::load_text(&datasets::TextSource::DevilsDictionary(None));
    let (entries, sentences) = match &text {
        Ok(corpus) => parse_dictionary(&corpus.text),
        Err(_) => (Vec::new(), Vec::new()),
    };
    // Timing inputs: sentences of the embedded A–F excerpt (always present), so the speed claims run even
    // without dict-devil.
    let embedded = datasets::load_text(&datasets::TextSource::Embedded)?;
    let (_, timing_sentences) = parse_dictionary(&embedded.text);
    let timing_ids = model.tokenizer.encode(
        &timing_sentences
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )?;
    let mut rng = SplitMix(context.seed ^ 0xCA95_70AE);
    let mut order: Vec<usize> = (0..timing_ids.len()).collect();
    rng.shuffle(&mut order);
    let single_stream: Vec<TokenBatch> = order
        .iter()
        .take(SINGLE_STREAM_QUERIES)
        .map(|&i| TokenBatch::from_sequences(std::slice::from_ref(&timing_ids[i])))
        .collect::<Result<_, _>>()?;
    let offline_sequences: Vec<Vec<u32>> = order
        .iter()
        .skip(SINGLE_STREAM_QUERIES)
        .take(OFFLINE_BATCH)
        .map(|&i| timing_ids[i].clone())
        .collect();
    let offline = TokenBatch::from_sequences(&offline_sequences)?;

    let rows = measure_submissions(
        &submissions,
        &single_stream,
        &offline,
        &budget,
        context.seed,
    )?;

    let quality = match &text {
        Ok(_) if entries.len() >= 20 && sentences.len() >= 100 => Some(quality_measurements(
            &model,
            &submissions,
            &entries,
            &sentences,
            &budget,
            &mut rng,
        )?),
        _ => None,
    };
    let text_missing = |id: &str, statement: &str| {
        let reason = match &text {
            Err(error) => format!("The Devil's Dictionary is not installed ({error})"),
            Ok(_) => "The Devil's Dictionary parsed to too few entries".to_owned(),
        };
        Claim::measured(id, MODULE, statement).skipped(reason, DICT_DEVIL_INSTALL)
    };
    results.push(submissions_claim(
        &submissions,
        &rows,
        quality.as_ref(),
        budget.timing_rounds,
    )?);
    match &quality {
        Some(quality) => {
            results.push(retrieval_baseline_claim(quality)?);
            results.push(fidelity_claim(quality)?);
            results.extend(compliance_claims(&submissions, quality, context.quick)?);
        }
        None => {
            for (id, statement) in &CLAIM_IDS[2..4] {
                results.push(text_missing(id, statement));
            }
        }
    }
    results.push(speedup_claim(
        &model,
        &submissions,
        &embedded.text,
        context,
    )?);
    results.push(match &quality {
        Some(quality) => pareto_claim(&submissions, &rows, quality)?,
        None => text_missing(CLAIM_IDS[5].0, CLAIM_IDS[5].1),
    });
    // The best operating point against ONNX Runtime's dynamic int8 of the same model (when the peers'
    // venv and torch are installed): the Pareto's choice, or the lowest p90 when there is no text to judge
    // quality by.
    let (best, chosen_by) = match &quality {
        Some(quality) => (
            best_operating_point(&rows, quality)?.0,
            "the Pareto front's best operating point",
        ),
        None => (
            (0..rows.len())
                .min_by(|&a, &b| rows[a].p90_ms.total_cmp(&rows[b].p90_ms))
                .unwrap_or(0),
            "the lowest p90 (no text to judge quality by)",
        ),
    };
    let single_stream_ids: Vec<Vec<u32>> = order
        .iter()
        .take(SINGLE_STREAM_QUERIES)
        .map(|&i| timing_ids[i].clone())
        .collect();
    results.extend(onnxruntime_claims(
        &files,
        &submissions,
        best,
        chosen_by,
        &single_stream_ids,
        &model,
        &embedded.text,
        context,
    ));
    Ok(results)
}
