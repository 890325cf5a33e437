//! The language-model recipe ([`ReferenceModel::CharTransformer`]): a decoder-only character transformer
//! trained on the first 90% of a text and judged on the rest, by its loss relative to the unigram baseline over
//! text windows, with the held-out evaluation functions it uses.

use datasets::{load_text, CharVocabulary, DatasetInfo, LabeledSet};
use ndarray::Axis;
use perf_core::stats::{argmax, cross_entropy, ratio_of_sums};

use super::recipe::{Evaluation, Finished, Recipe, StoredWeights};
use super::report::HeldOutMetric;
use super::{
    default_char_transformer_config, ReferenceModel, TrainedWeights, ZooConfig,
    CHAR_TRANSFORMER_STEPS,
};
use crate::cache::{fnv1a64, CacheKey, NamedTensors, FNV_OFFSET};
use crate::metrics::{MetricEstimate, ProportionEstimate};
use crate::models::{CharTransformer, CharTransformerConfig};
use crate::train::{
    export_char_transformer, fit_char_transformer, CandleCharTransformer, ParamStore, TrainConfig,
    TrainingLog,
};
use crate::ZooError;

/// Share of the text (at its end) held out for validation.
const TEXT_VALIDATION_FRACTION: f64 = 0.1;

/// The side-file entry that holds the vocabulary, in token order.
const VOCABULARY_KEY: &str = "vocabulary";

/// The character transformer on [`super::DataOptions::text`].
pub(super) struct CharTransformerRecipe {
    info: DatasetInfo,
    vocabulary: CharVocabulary,
    /// The whole text as token ids.
    tokens: Vec<u32>,
    /// Where validation begins in `tokens`.
    split_at: usize,
    architecture: CharTransformerConfig,
}

impl CharTransformerRecipe {
    /// Loads and encodes the text.
    ///
    /// # Errors
    /// [`ZooError::Data`] when the text cannot be read or encoded.
    pub(super) fn load(config: &ZooConfig) -> Result<Self, ZooError> {
        let corpus = load_text(&config.data.text)?;
        let vocabulary = CharVocabulary::from_text(&corpus.text);
        let tokens = vocabulary.encode(&corpus.text)?;
        let split_at = ((tokens.len() as f64) * (1.0 - TEXT_VALIDATION_FRACTION)) as usize;
        let architecture = default_char_transformer_config(vocabulary.len());
        Ok(CharTransformerRecipe {
            info: corpus.info,
            vocabulary,
            tokens,
            split_at,
            architecture,
        })
    }

    fn train_tokens(&self) -> &[u32] {
        &self.tokens[..self.split_at]
    }

    fn validation_tokens(&self) -> &[u32] {
        &self.tokens[self.split_at..]
    }

    /// The vocabulary as one string, as the cache's side file holds it.
    fn vocabulary_string(&self) -> String {
        self.vocabulary.chars().iter().collect()
    }
}

impl Recipe for CharTransformerRecipe {
    type Candle = CandleCharTransformer;
    type Network = CharTransformer;

    fn model(&self) -> ReferenceModel {
        ReferenceModel::CharTransformer
    }

    fn cache_key(&self, train_config: &TrainConfig) -> CacheKey {
        let train_tokens = self.train_tokens();
        let text_state = train_tokens.iter().fold(FNV_OFFSET, |state, token| {
            fnv1a64(&token.to_le_bytes(), state)
        });
        CacheKey::new(
            self.model().name(),
            &[
                &format!("arch={:?}", self.architecture),
                &format!("train={train_config:?}|steps={CHAR_TRANSFORMER_STEPS}"),
                &format!(
                    "data={}:{}:{text_state:016x}",
                    self.info.name,
                    train_tokens.len()
                ),
            ],
        )
    }

    fn build(&self, store: &mut ParamStore) -> Result<CandleCharTransformer, ZooError> {
        CandleCharTransformer::new(store, self.architecture.clone())
    }

    fn fit(
        &self,
        candle: &CandleCharTransformer,
        store: &ParamStore,
        train_config: &TrainConfig,
    ) -> Result<TrainingLog, ZooError> {
        let train_tokens = self.train_tokens();
        fit_char_transformer(
            candle,
            store,
            train_tokens,
            train_config,
            CHAR_TRANSFORMER_STEPS,
        )
    }

    fn extra_strings(&self) -> std::collections::HashMap<String, String> {
        [(VOCABULARY_KEY.to_string(), self.vocabulary_string())].into()
    }

    /// Refuses weights whose stored vocabulary is not the text's: the token ids would mean other characters.
    fn export(&self, weights: &StoredWeights) -> Result<CharTransformer, ZooError> {
        if weights.extra.get(VOCABULARY_KEY) != Some(&self.vocabulary_string()) {
            return Err(ZooError::Weights {
                model: self.model().name().into(),
                reason: "cached vocabulary differs from the text's".into(),
            });
        }
        let vocabulary = self.vocabulary.chars().to_vec();
        export_char_transformer(&weights.tensors, &self.architecture, vocabulary)
    }

    fn n_parameters(&self, _tensors: &NamedTensors, network: &CharTransformer) -> usize {
        network.n_parameters()
    }

    /// Loss, perplexity and next-character accuracy on the validation text, and the headline: model loss over
    /// unigram loss on the same predicted characters, window by window, so that the interval reflects how much
    /// the ratio varies across the text (characters within a window are not independent, windows nearly are).
    fn evaluate(&self, transformer: &CharTransformer) -> Result<Evaluation, ZooError> {
        let (train_tokens, validation_tokens) = (self.train_tokens(), self.validation_tokens());
        let windows = language_model_windows(transformer, validation_tokens)?;
        let loss_sum: f64 = windows.iter().map(|window| window.loss_sum).sum();
        let n_predicted: usize = windows.iter().map(|window| window.n_predicted).sum();
        let n_correct: usize = windows.iter().map(|window| window.n_correct).sum();
        let loss = loss_sum / n_predicted as f64;
        let unigram =
            unigram_cross_entropy(train_tokens, validation_tokens, self.vocabulary.len())?;
        let log_probabilities = unigram_log_probabilities(train_tokens, self.vocabulary.len());
        let unigram_window_sums: Vec<f64> = windows
            .iter()
            .map(|window| {
                validation_tokens[window.start + 1..=window.start + window.n_predicted]
                    .iter()
                    .map(|&token| -log_probabilities[token as usize])
                    .sum()
            })
            .collect();
        let model_window_sums: Vec<f64> = windows.iter().map(|window| window.loss_sum).collect();
        let ratio = ratio_of_sums(&model_window_sums, &unigram_window_sums, 0.95)?;
        let headline = MetricEstimate {
            name: "validation loss / unigram loss".into(),
            point: ratio.ratio,
            ci_lower: ratio.ci_lower,
            ci_upper: ratio.ci_upper,
            confidence: 0.95,
            n: windows.len(),
            method: format!(
                "ratio of sums over {} windows of {} characters, delta-method t interval",
                windows.len(),
                transformer.config.context_length
            ),
        };
        let metric = HeldOutMetric::LanguageModel {
            loss_nats_per_char: loss,
            unigram_loss_nats_per_char: unigram,
            perplexity: loss.exp(),
            next_char_accuracy: ProportionEstimate::wilson(n_correct, n_predicted, 0.95)?,
        };
        Ok(Evaluation {
            metric,
            headline: Some(headline),
        })
    }

    /// The held-out set is the validation text's token ids in column 0, with no labels.
    fn finish(self, transformer: CharTransformer) -> Result<Finished, ZooError> {
        let validation_tokens = self.validation_tokens();
        let validation = ndarray::Array2::from_shape_vec(
            (validation_tokens.len(), 1),
            validation_tokens
                .iter()
                .map(|&token| token as f32)
                .collect(),
        )
        .map_err(|error| ZooError::InvalidArgument {
            reason: error.to_string(),
        })?;
        let test = LabeledSet::new(validation, vec![0; validation_tokens.len()], 1)?;
        Ok(Finished {
            weights: TrainedWeights::CharTransformer(transformer),
            test,
            n_train: self.split_at,
            info: self.info,
            split: format!(
                "first {:.0}% of the text train, last {:.0}% validation",
                100.0 * (1.0 - TEXT_VALIDATION_FRACTION),
                100.0 * TEXT_VALIDATION_FRACTION
            ),
        })
    }
}

/// Sum of next-token cross-entropies, number of predictions and number of correct top-1 predictions over
/// consecutive non-overlapping windows of `tokens` (each window of `context_length + 1` tokens predicts its last
/// `context_length`).
///
/// # Errors
/// [`ZooError::InvalidArgument`] when the model's `context_length` is 0 or `tokens` is shorter than one window;
/// model errors.
pub fn evaluate_language_model(
    model: &CharTransformer,
    tokens: &[u32],
) -> Result<(f64, usize, usize), ZooError> {
    let windows = language_model_windows(model, tokens)?;
    Ok(windows
        .iter()
        .fold((0.0, 0, 0), |(loss, predicted, correct), window| {
            (
                loss + window.loss_sum,
                predicted + window.n_predicted,
                correct + window.n_correct,
            )
        }))
}

/// One evaluation window of the language model.
struct WindowScore {
    /// Sum of the cross-entropies of the window's predictions, nats.
    loss_sum: f64,
    n_predicted: usize,
    n_correct: usize,
    /// Index of the window's first token in the evaluated text.
    start: usize,
}

/// The per-window scores behind [`evaluate_language_model`].
fn language_model_windows(
    model: &CharTransformer,
    tokens: &[u32],
) -> Result<Vec<WindowScore>, ZooError> {
    let context = model.config.context_length;
    if context == 0 {
        return Err(ZooError::InvalidArgument {
            reason: "a context length of 0 has no window to evaluate".into(),
        });
    }
    let mut windows = Vec::new();
    for (window_idx, window) in tokens.windows(context + 1).step_by(context).enumerate() {
        let logits = model.forward(&window[..context])?;
        let mut score = WindowScore {
            loss_sum: 0.0,
            n_predicted: 0,
            n_correct: 0,
            start: window_idx * context,
        };
        for (position, row) in logits.axis_iter(Axis(0)).enumerate() {
            let target = window[position + 1] as usize;
            score.loss_sum += cross_entropy(row.iter().copied(), target)?;
            score.n_predicted += 1;
            score.n_correct += usize::from(argmax(row.iter().copied()) == Some(target));
        }
        windows.push(score);
    }
    if windows.is_empty() {
        return Err(ZooError::InvalidArgument {
            reason: format!("{} validation tokens for context {context}", tokens.len()),
        });
    }
    Ok(windows)
}

/// Add-one-smoothed unigram log-probabilities of the tokens of `train`; every token must be below
/// `vocab_size` (the callers check, or encoded the text with a vocabulary of that size).
fn unigram_log_probabilities(train: &[u32], vocab_size: usize) -> Vec<f64> {
    let mut counts = vec![1.0f64; vocab_size];
    for &token in train {
        counts[token as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|count| (count / total).ln()).collect()
}

/// Cross-entropy (nats per token) of `evaluated` under the add-one-smoothed token frequencies of `train`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] when a token of `train` or `evaluated` is not below `vocab_size`.
pub fn unigram_cross_entropy(
    train: &[u32],
    evaluated: &[u32],
    vocab_size: usize,
) -> Result<f64, ZooError> {
    if let Some(token) = train
        .iter()
        .chain(evaluated)
        .find(|&&token| token as usize >= vocab_size)
    {
        return Err(ZooError::InvalidArgument {
            reason: format!("token {token} is outside the vocabulary of {vocab_size}"),
        });
    }
    let log_probabilities = unigram_log_probabilities(train, vocab_size);
    let loss: f64 = evaluated
        .iter()
        .map(|&token| -log_probabilities[token as usize])
        .sum();
    Ok(loss / evaluated.len().max(1) as f64)
}
