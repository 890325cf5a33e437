//! Agreement with the independent PyTorch reference (`peers/minilm_reference.py`).

use super::text::parse_dictionary;
use super::{exact, Budget, CLAIM_IDS, MODULE};
use anyhow::Result;
use minilm::{
    embed_sequences, Encoder, EncoderConfig, MiniLm, ModelFiles, MAX_SEQUENCE_LENGTH,
    MINILM_INSTALL_COMMAND,
};
use perf_core::claim::{Claim, ClaimResult, Direction};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The reference's torch version, token ids and embeddings.
pub(super) type ReferenceOutput = (String, Vec<Vec<u32>>, Vec<Vec<f64>>);

/// Runs `peers/minilm_reference.py` on `sentences`; returns the torch version, token ids and embeddings.
pub(super) fn run_reference(
    files: &ModelFiles,
    sentences: &[&str],
) -> Result<ReferenceOutput, String> {
    let python = std::env::var("TORCHPERF_MINILM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../peers/minilm_reference.py");
    let dir = files
        .config
        .parent()
        .ok_or("model directory has no parent")?;
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    let request = json!({ "sentences": sentences }).to_string();
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request.as_bytes())
        .map_err(|e| format!("writing to the reference: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the reference: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").to_owned();
        return Err(format!("reference exited with {}: {last}", output.status));
    }
    let response: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("reference printed no JSON: {e}"))?;
    let parse = |key: &str| response.get(key).cloned().ok_or(format!("no {key}"));
    let ids = serde_json::from_value(parse("ids")?).map_err(|e| e.to_string())?;
    let embeddings = serde_json::from_value(parse("embeddings")?).map_err(|e| e.to_string())?;
    let torch = parse("torch")?.as_str().unwrap_or("?").to_owned();
    Ok((torch, ids, embeddings))
}

pub(super) fn reference_claim(files: &ModelFiles, model: &MiniLm, budget: &Budget) -> ClaimResult {
    let (id, statement) = CLAIM_IDS[0];
    let claim = Claim::threshold(id, MODULE, statement, 0.9999, Direction::AtLeast);
    let text = match datasets::load_text(&datasets::TextSource::Embedded) {
        Ok(text) => text.text,
        Err(error) => return claim.error(format!("embedded text: {error}")),
    };
    let (_, sentences) = parse_dictionary(&text);
    // Evenly spaced sentences of the excerpt, plus one long enough to be truncated at 128 tokens.
    let step = (sentences.len() / budget.reference_sentences.max(1)).max(1);
    let mut chosen: Vec<String> = sentences
        .iter()
        .step_by(step)
        .take(budget.reference_sentences.saturating_sub(1))
        .cloned()
        .collect();
    chosen.push(
        sentences
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
    );
    let chosen: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let (torch, reference_ids, reference) = match run_reference(files, &chosen) {
        Ok(output) => output,
        Err(reason) => {
            return claim.skipped(
                format!("the PyTorch reference could not run ({reason})"),
                MINILM_INSTALL_COMMAND,
            )
        }
    };
    let outcome = (|| -> Result<ClaimResult> {
        let ids = model.tokenizer.encode(&chosen)?;
        let ids_equal = ids == reference_ids;
        let encoder = Encoder::new(&model.weights, &EncoderConfig::default())?;
        let embeddings = embed_sequences(&encoder, &ids, 8)?;
        let mut min_cosine = f64::INFINITY;
        let mut max_abs_error = 0.0f64;
        for (row, expected) in embeddings.rows().into_iter().zip(&reference) {
            let dot: f64 = row
                .iter()
                .zip(expected)
                .map(|(&a, b)| f64::from(a) * b)
                .sum();
            let norms = row
                .iter()
                .map(|&a| f64::from(a).powi(2))
                .sum::<f64>()
                .sqrt()
                * expected.iter().map(|b| b * b).sum::<f64>().sqrt();
            min_cosine = min_cosine.min(dot / norms);
            for (&a, b) in row.iter().zip(expected) {
                max_abs_error = max_abs_error.max((f64::from(a) - b).abs());
            }
        }
        let mut result = claim
            .judge(exact(min_cosine, "")?)
            .annotate(format!(
                "{} sentences (one truncated at {MAX_SEQUENCE_LENGTH} tokens), max |error| {max_abs_error:.2e}, \
                 token ids {}; reference: PyTorch {torch} (float32, padded batch with additive mask)",
                chosen.len(),
                if ids_equal { "identical" } else { "DIFFER" }
            ))
            .with_detail("max_abs_error", max_abs_error)
            .with_detail("min_cosine", min_cosine)
            .with_detail("sentences", chosen.len())
            .with_detail("token_ids_identical", ids_equal)
            .with_detail("torch_version", &torch);
        if !ids_equal {
            result = result.weaken(
                perf_core::claim::Verdict::Fail,
                "token ids differ from the reference tokenizer",
            );
        }
        Ok(result)
    })();
    outcome.unwrap_or_else(|error| claim.error(format!("{error:#}")))
}
