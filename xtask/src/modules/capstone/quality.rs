//! Quality on real text: fidelity (cosine to f32) on sentences of The Devil's Dictionary, the retrieval
//! task (top-1 matching of definition halves), and each submission's compliance within 1 point of f32.

use super::text::Entry;
use super::SplitMix;
use super::{as_strs, Budget, Submission, CLAIM_IDS, CONFIDENCE, MODULE, OFFLINE_BATCH};
use anyhow::Result;
use minilm::{embed_sequences, MiniLm};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, TInference};
use perf_core::stats::{paired_proportion_difference, wilson_interval};

/// Quality of every submission on real text.
pub(super) struct Quality {
    /// Per submission: cosine of each fidelity sentence's embedding to f32's.
    pub(super) cosines: Vec<Vec<f64>>,
    /// Per submission: whether each retrieval query's top-1 document is its own second half.
    pub(super) correct: Vec<Vec<bool>>,
    pub(super) fidelity_sentences: usize,
    pub(super) retrieval_entries: usize,
    pub(super) example_headwords: Vec<String>,
}

pub(super) fn quality_measurements(
    model: &MiniLm,
    submissions: &[Submission],
    entries: &[Entry],
    sentences: &[String],
    budget: &Budget,
    rng: &mut SplitMix,
) -> Result<Quality> {
    let mut sentence_order: Vec<usize> = (0..sentences.len()).collect();
    rng.shuffle(&mut sentence_order);
    let fidelity: Vec<&str> = sentence_order
        .iter()
        .take(budget.fidelity_sentences)
        .map(|&i| sentences[i].as_str())
        .collect();
    let mut entry_order: Vec<usize> = (0..entries.len()).collect();
    rng.shuffle(&mut entry_order);
    entry_order.truncate(budget.retrieval_entries);
    entry_order.sort_unstable();
    let (queries, documents): (Vec<String>, Vec<String>) = entry_order
        .iter()
        .map(|&i| {
            let words: Vec<&str> = entries[i].definition.split_whitespace().collect();
            let middle = words.len() / 2;
            (words[..middle].join(" "), words[middle..].join(" "))
        })
        .unzip();
    let fidelity_ids = model.tokenizer.encode(&fidelity)?;
    let query_ids = model.tokenizer.encode(&as_strs(&queries))?;
    let document_ids = model.tokenizer.encode(&as_strs(&documents))?;
    let mut f32_fidelity: Option<Array2<f32>> = None;
    let mut cosines = Vec::new();
    let mut correct = Vec::new();
    for submission in submissions {
        let encoder = &submission.encoder;
        let embeddings = embed_sequences(encoder, &fidelity_ids, OFFLINE_BATCH)?;
        let baseline = f32_fidelity.get_or_insert_with(|| embeddings.clone());
        cosines.push(
            embeddings
                .rows()
                .into_iter()
                .zip(baseline.rows())
                .map(|(a, b)| {
                    a.iter()
                        .zip(b)
                        .map(|(&x, &y)| f64::from(x) * f64::from(y))
                        .sum()
                })
                .collect(),
        );
        let query_embeddings = embed_sequences(encoder, &query_ids, OFFLINE_BATCH)?;
        let document_embeddings = embed_sequences(encoder, &document_ids, OFFLINE_BATCH)?;
        // Unit vectors: the similarity matrix is a product; top-1 is each row's argmax.
        let similarity = query_embeddings.dot(&document_embeddings.t());
        correct.push(
            similarity
                .rows()
                .into_iter()
                .enumerate()
                .map(|(row, scores)| {
                    let best = scores
                        .iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |best, (i, &s)| {
                            if s > best.1 {
                                (i, s)
                            } else {
                                best
                            }
                        })
                        .0;
                    best == row
                })
                .collect(),
        );
    }
    Ok(Quality {
        cosines,
        correct,
        fidelity_sentences: fidelity.len(),
        retrieval_entries: entry_order.len(),
        example_headwords: entry_order
            .iter()
            .take(5)
            .map(|&i| entries[i].headword.clone())
            .collect(),
    })
}

pub(super) fn accuracy(correct: &[bool]) -> Result<(f64, f64, f64)> {
    let successes = correct.iter().filter(|&&c| c).count() as u64;
    let (low, high) = wilson_interval(successes, correct.len() as u64, CONFIDENCE)?;
    Ok((successes as f64 / correct.len() as f64, low, high))
}

/// Mean of the cosines with a Student-t interval.
pub(super) fn mean_cosine(cosines: &[f64]) -> Result<Estimate> {
    let n = cosines.len() as f64;
    let mean = cosines.iter().sum::<f64>() / n;
    let variance = cosines.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let standard_error = (variance / n).sqrt().max(1e-12);
    Ok(Estimate::from_t(
        TInference {
            center: mean,
            standard_error,
            degrees_of_freedom: n - 1.0,
            log_scale: false,
        },
        "",
        CONFIDENCE,
    )?)
}

pub(super) fn retrieval_baseline_claim(quality: &Quality) -> Result<ClaimResult> {
    let (id, statement) = CLAIM_IDS[2];
    let (acc, low, high) = accuracy(&quality.correct[0])?;
    Ok(Claim::measured(id, MODULE, statement)
        .judge(Estimate::new(100.0 * acc, 100.0 * low, 100.0 * high, "%", CONFIDENCE)?)
        .annotate(format!(
            "{} Devil's Dictionary entries, first half of each definition against all second halves (Wilson \
             interval), e.g. {}",
            quality.retrieval_entries,
            quality.example_headwords.join(", ")
        ))
        .with_detail("entries", quality.retrieval_entries))
}

pub(super) fn fidelity_claim(quality: &Quality) -> Result<ClaimResult> {
    let (id, statement) = CLAIM_IDS[3];
    let cosines = &quality.cosines[1];
    let minimum = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(
        Claim::threshold(id, MODULE, statement, 0.99, Direction::AtLeast)
            .judge(mean_cosine(cosines)?)
            .annotate(format!(
                "{} sentences of The Devil's Dictionary, minimum cosine {minimum:.4}",
                quality.fidelity_sentences
            ))
            .with_detail("sentences", quality.fidelity_sentences)
            .with_detail("min_cosine", minimum),
    )
}

pub(super) fn compliance_claims(
    submissions: &[Submission],
    quality: &Quality,
    quick: bool,
) -> Result<Vec<ClaimResult>> {
    let mut results = Vec::new();
    for (index, submission) in submissions.iter().enumerate().skip(1) {
        let id = format!("capstone.compliance_{}", submission.name.replace('+', "_"));
        let statement = format!(
            "{}: retrieval accuracy within 1 point of f32 (paired difference ≥ −1 point)",
            submission.name
        );
        let difference =
            paired_proportion_difference(&quality.correct[index], &quality.correct[0], CONFIDENCE)?;
        let (acc, _, _) = accuracy(&quality.correct[index])?;
        results.push(
            Claim::threshold(&id, MODULE, &statement, -1.0, Direction::AtLeast)
                .judge(difference.estimate(100.0, "points")?)
                .annotate(format!(
                    "accuracy {:.1}%, {} discordant of {} entries ({} only {}, {} only f32)",
                    100.0 * acc,
                    difference.n_discordant(),
                    difference.n,
                    difference.n_first_only,
                    submission.name,
                    difference.n_second_only
                ))
                .annotate(if quick {
                    "quick run: a subset this small cannot resolve ±1 point (the full run uses every entry)"
                } else {
                    "every entry of the dictionary"
                })
                .with_detail("paired_difference", &difference),
        );
    }
    Ok(results)
}
