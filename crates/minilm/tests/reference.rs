//! The Rust encoder against the independent PyTorch reference (`peers/minilm_reference.py`) on the real
//! all-MiniLM-L6-v2: same token ids, cosine ≥ 0.9999 per sentence, and the max absolute error printed.
//!
//! Runs when `TORCHPERF_MINILM_DIR` is set (`source .ci/capstone.sh`); the interpreter is `TORCHPERF_MINILM_PYTHON`
//! (default `python3`). With `TORCHPERF_REQUIRE_DATA=1` (CI) a missing model or reference fails the test.

use minilm::{embed_sequences, Encoder, EncoderConfig, MiniLm, ModelFiles};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const SENTENCES: [&str; 10] = [
    "A man is eating food.",
    "Hi",
    "The quick brown fox jumps over the lazy dog, twice!",
    "ABASEMENT, n. A decent and customary mental attitude in the presence of wealth or power.",
    "Peculiarly appropriate in an employee when addressing an employer.",
    "Rubbish in front of a fort, to prevent the rubbish outside from molesting the rubbish inside.",
    "Naïve café owners résumé-hunting in Zürich — 東京 too.",
    "An act whereby a sovereign attests his sense of the high temperature of the throne.",
    "x",
    "Those who have been reading the dictionary know that a definition is sometimes longer than the word it \
     defines, and that some entries run on for a paragraph of quotations, verses, anecdotes and asides, which is \
     more than enough text to exceed the one hundred and twenty-eight token limit of the encoder, so this \
     sentence tests truncation: the tokenizer must cut it to one hundred and twenty-eight tokens including the \
     classification and separator tokens, exactly as the reference implementation does with the same file.",
];

/// Token ids, embeddings and the torch version the reference printed.
type Reference = (Vec<Vec<u32>>, Vec<Vec<f64>>, String);

fn reference_embeddings(dir: &std::path::Path, sentences: &[&str]) -> Option<Reference> {
    let python = std::env::var("TORCHPERF_MINILM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../peers/minilm_reference.py");
    let child = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            eprintln!("cannot start {python}: {error}");
            return None;
        }
    };
    let request = serde_json::json!({ "sentences": sentences });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let output = child.wait_with_output().expect("reference runs");
    if !output.status.success() {
        eprintln!(
            "reference failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let response: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("reference prints JSON");
    let ids = serde_json::from_value(response["ids"].clone()).expect("ids");
    let embeddings = serde_json::from_value(response["embeddings"].clone()).expect("embeddings");
    let version = response["torch"].as_str().unwrap_or("?").to_owned();
    Some((ids, embeddings, version))
}

#[test]
fn rust_embeddings_equal_the_pytorch_reference() {
    let required = datasets::data_required();
    let files = match ModelFiles::locate(None) {
        Ok(files) => files,
        Err(error) => {
            assert!(
                !required,
                "TORCHPERF_REQUIRE_DATA=1 but the model is absent: {error}"
            );
            eprintln!("skipped: {error}");
            return;
        }
    };
    let dir = files.config.parent().expect("a directory").to_path_buf();
    // The last sentence twice over: well past the 128-token limit.
    let long = format!("{} {}", SENTENCES[9], SENTENCES[9]);
    let mut sentences: Vec<&str> = SENTENCES.to_vec();
    sentences[9] = &long;
    let Some((reference_ids, reference, torch_version)) = reference_embeddings(&dir, &sentences)
    else {
        assert!(
            !required,
            "TORCHPERF_REQUIRE_DATA=1 but the PyTorch reference could not run"
        );
        return;
    };
    let model = MiniLm::load(&files).expect("the installed model loads");
    let ids = model.tokenizer.encode(&sentences).expect("tokenizes");
    assert_eq!(
        ids, reference_ids,
        "token ids differ from the reference tokenizer"
    );
    assert_eq!(
        ids[9].len(),
        128,
        "the long sentence is truncated to 128 tokens"
    );
    let encoder = Encoder::new(&model.weights, &EncoderConfig::default()).expect("f32 encoder");
    // Batches of 4: sentences of different lengths share a batch, so padding is exercised.
    let embeddings = embed_sequences(&encoder, &ids, 4).expect("embeds");
    let mut max_abs_error = 0.0f64;
    let mut min_cosine = f64::INFINITY;
    for (row, expected) in embeddings.rows().into_iter().zip(&reference) {
        let dot: f64 = row
            .iter()
            .zip(expected)
            .map(|(&a, &b)| f64::from(a) * b)
            .sum();
        let norms = row
            .iter()
            .map(|&a| f64::from(a).powi(2))
            .sum::<f64>()
            .sqrt()
            * expected.iter().map(|b| b * b).sum::<f64>().sqrt();
        min_cosine = min_cosine.min(dot / norms);
        for (&a, &b) in row.iter().zip(expected) {
            max_abs_error = max_abs_error.max((f64::from(a) - b).abs());
        }
    }
    println!(
        "reference torch {torch_version}: {} sentences, min cosine {min_cosine:.9}, max |error| {max_abs_error:.3e}",
        SENTENCES.len()
    );
    assert!(min_cosine >= 0.9999, "min cosine {min_cosine}");
    // Both sides compute in f32 with different summation orders; 1e-4 on unit vectors is far above that noise
    // (measured max |error| is printed above) and far below any real discrepancy.
    assert!(max_abs_error <= 1e-4, "max |error| {max_abs_error}");
}
