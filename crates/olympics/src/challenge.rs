//! The Olympics challenge: next-character prediction on held-out text by zoo's character transformer
//! on kvcache's `Transformer`, with compressed projections (see [`crate::challenge_model`]), run either by
//! full recomputation of the prefix or with kvcache's KV cache kept across queries; and the event built
//! from zoo's held-out text.

use std::cell::RefCell;

use kvcache::{ForwardScratch, KvCache, KvStore};
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2};
use zoo::CharTransformerConfig;

use crate::challenge_model::CompressedTransformer;
use crate::compress::Recipe;
use crate::error::{invalid, shape_error, OlympicsError};
use crate::event::{
    DataSource, Event, EventSpec, QualityMetric, QueryOrder, RelativeTarget, TestSet,
};
use crate::submission::{Optimization, Submission};

/// Reads one next-character query row: `[length, token_0, …, token_{context−1}]` (padding after `length`).
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] for a length outside `1..=context` or a non-integral token.
pub fn parse_query(row: ArrayView1<'_, f32>, context: usize) -> Result<Vec<u32>, OlympicsError> {
    if row.len() != context + 1 {
        return Err(shape_error("next-character query", context + 1, row.len()));
    }
    let length = row[0];
    if !(length >= 1.0 && length <= context as f32 && length.fract() == 0.0) {
        return Err(invalid(format!(
            "query length {length} not in 1..={context}"
        )));
    }
    row.slice(s![1..=length as usize])
        .iter()
        .map(|&value| {
            if value >= 0.0 && value.fract() == 0.0 && value < u32::MAX as f32 {
                Ok(value as u32)
            } else {
                Err(invalid(format!("token {value} is not a token id")))
            }
        })
        .collect()
}

/// What a submission keeps between calls: the store and the scratch of kvcache's forward pass (allocated
/// once), and for the cached submission the prefix the store holds and the logits after its last token.
#[derive(Debug)]
struct State {
    store: KvCache,
    scratch: ForwardScratch,
    prefix: Vec<u32>,
    last_logits: Array1<f32>,
}

/// A next-character submission: for each query row, the logits of the character after its prefix.
///
/// Without the cache, each query recomputes its whole prefix (kvcache's forward pass through an emptied
/// store); rows of one batch that extend one another (a stream) share one pass that scores every position,
/// which is batching, not caching. With the cache, a query that extends the previous one by some characters
/// runs one forward pass over the new characters only, against the keys and values kvcache's cache holds.
#[derive(Debug)]
pub struct NextCharSubmission {
    name: String,
    optimizations: Vec<Optimization>,
    model: CompressedTransformer,
    cached: bool,
    state: RefCell<State>,
}

impl NextCharSubmission {
    /// A submission from a compressed model.
    ///
    /// # Errors
    /// kvcache's error when the cache for the model's context cannot be built.
    pub fn new(
        name: &str,
        model: CompressedTransformer,
        recipe: &Recipe,
        cached: bool,
    ) -> Result<Self, OlympicsError> {
        let mut optimizations = recipe.optimizations();
        if cached {
            optimizations.push(Optimization::KvCache);
        }
        let context = model.config().max_seq_len;
        let state = State {
            store: model.new_cache(1, context)?,
            scratch: model.decoding_scratch(1, context),
            prefix: Vec::with_capacity(context),
            last_logits: Array1::zeros(model.config().vocab_size),
        };
        Ok(NextCharSubmission {
            name: name.into(),
            optimizations,
            model,
            cached,
            state: RefCell::new(state),
        })
    }

    /// The model.
    pub fn model(&self) -> &CompressedTransformer {
        &self.model
    }

    fn forward_uncached(&self, queries: &[Vec<u32>]) -> Result<Array2<f32>, OlympicsError> {
        let vocab = self.model.config().vocab_size;
        let mut out = Array2::<f32>::zeros((queries.len(), vocab));
        let mut state = self.state.borrow_mut();
        let State { store, scratch, .. } = &mut *state;
        let mut group_start = 0;
        for index in 0..queries.len() {
            let extends_next = queries.get(index + 1).is_some_and(|next| {
                next.len() == queries[index].len() + 1 && next.starts_with(&queries[index])
            });
            if extends_next {
                continue;
            }
            let longest = &queries[index];
            let tokens = ArrayView2::from_shape((1, longest.len()), longest.as_slice())
                .map_err(|error| shape_error("query tokens", longest.len(), error))?;
            // The full recompute: the whole prefix through an emptied store.
            store.reset();
            if group_start == index {
                let logits = self.model.forward_with_scratch(tokens, store, scratch)?;
                out.row_mut(index).assign(&logits.row(0));
            } else {
                let logits = self.model.forward_every_position(tokens, store)?;
                for (row, query) in queries.iter().enumerate().take(index + 1).skip(group_start) {
                    out.row_mut(row).assign(&logits.row(query.len() - 1));
                }
            }
            group_start = index + 1;
        }
        Ok(out)
    }

    fn forward_cached(&self, queries: &[Vec<u32>]) -> Result<Array2<f32>, OlympicsError> {
        let vocab = self.model.config().vocab_size;
        let mut out = Array2::<f32>::zeros((queries.len(), vocab));
        let mut state = self.state.borrow_mut();
        let State {
            store,
            scratch,
            prefix,
            last_logits,
        } = &mut *state;
        for (row, tokens) in queries.iter().enumerate() {
            if !tokens.starts_with(prefix) {
                store.reset();
                prefix.clear();
            }
            let new_tokens = &tokens[prefix.len()..];
            if !new_tokens.is_empty() {
                let new_tokens_view = ArrayView2::from_shape((1, new_tokens.len()), new_tokens)
                    .map_err(|error| shape_error("query tokens", new_tokens.len(), error))?;
                match self
                    .model
                    .forward_with_scratch(new_tokens_view, store, scratch)
                {
                    Ok(logits) => last_logits.assign(&logits.row(0)),
                    Err(error) => {
                        // Nothing was appended (kvcache reserves first), but start afresh next time.
                        store.reset();
                        prefix.clear();
                        return Err(error.into());
                    }
                }
                prefix.extend_from_slice(new_tokens);
            }
            out.row_mut(row).assign(last_logits);
        }
        Ok(out)
    }
}

impl Submission for NextCharSubmission {
    fn name(&self) -> &str {
        &self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        self.optimizations.clone()
    }

    fn storage_bytes(&self) -> usize {
        self.model.storage_bytes()
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        let context = self.model.config().max_seq_len;
        let queries = batch
            .outer_iter()
            .map(|row| parse_query(row, context))
            .collect::<Result<Vec<_>, _>>()?;
        if self.cached {
            self.forward_cached(&queries)
        } else {
            self.forward_uncached(&queries)
        }
    }

    fn reset(&self) {
        let mut state = self.state.borrow_mut();
        state.store.reset();
        state.prefix.clear();
    }
}

/// The next-character event on held-out text: every position of consecutive non-overlapping windows of
/// `context + 1` tokens (the same predictions zoo's evaluation scores), as query rows `[length, prefix…]`.
/// The quality target is relative: at most `margin` (a fraction; 0.01 = one percentage point) below the f32
/// baseline ([`crate::compress::BASELINE_SUBMISSION`]) in the same field, judged paired on the same predictions.
/// `baseline_accuracy` (the f32 model's accuracy as zoo measured it in the run) only sets the nominal
/// absolute bar `baseline_accuracy − margin` reported next to the unpaired accuracy. `latency_limit_ms` is
/// the p90 limit per character.
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] when the config's `context_length` is 0, the text is shorter than one
/// window, or the margin is not a finite fraction in [0, 1).
pub fn next_char_event(
    validation_tokens: &[u32],
    config: &CharTransformerConfig,
    baseline_accuracy: f64,
    margin: f64,
    latency_limit_ms: f64,
    source: DataSource,
) -> Result<Event, OlympicsError> {
    if !(0.0..1.0).contains(&margin) {
        return Err(invalid(format!("margin {margin} not a fraction in [0, 1)")));
    }
    let context = config.context_length;
    if context == 0 {
        return Err(invalid("a context length of 0 has no window to query"));
    }
    let windows: Vec<&[u32]> = validation_tokens
        .windows(context + 1)
        .step_by(context)
        .collect();
    if windows.is_empty() {
        return Err(invalid(format!(
            "{} validation tokens for a context of {context}",
            validation_tokens.len()
        )));
    }
    let n_rows = windows.len() * context;
    let mut rows = Array2::<f32>::zeros((n_rows, context + 1));
    let mut labels = Vec::with_capacity(n_rows);
    for (window_idx, window) in windows.iter().enumerate() {
        for position in 0..context {
            let mut row = rows.row_mut(window_idx * context + position);
            row[0] = (position + 1) as f32;
            for (slot, &token) in window[..=position].iter().enumerate() {
                row[slot + 1] = token as f32;
            }
            labels.push(window[position + 1] as usize);
        }
    }
    let spec = EventSpec {
        name: "char_lm_challenge".into(),
        task: "predict the next character of held-out text (streaming, one query per character)".into(),
        input_shape: vec![context + 1],
        input_description: format!(
            "[prefix length, up to {context} token ids] — the characters seen so far in the current {context}-character window"
        ),
        output_width: config.vocab_size,
        metric: QualityMetric::Top1Accuracy,
        target: baseline_accuracy - margin,
        target_note: format!(
            "no more than {:.1} percentage points below the f32 baseline's next-character accuracy, judged paired on the same predictions (non-inferiority); not an MLPerf result",
            100.0 * margin
        ),
        latency_limit_ms,
        memory_budget_bytes: crate::event::DEFAULT_MEMORY_BUDGET_BYTES,
        query_order: QueryOrder::Stream { run: context },
        relative_target: Some(RelativeTarget {
            baseline: crate::compress::BASELINE_SUBMISSION.to_string(),
            margin,
        }),
    };
    let test = TestSet::new(rows, labels, config.vocab_size)?;
    Event::new(spec, test, source)
}

/// The held-out token ids zoo stored for the character transformer (column 0 of its test features).
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] for features without a column, or a value that is not a token id.
pub fn tokens_from_zoo_test(features: ArrayView2<'_, f32>) -> Result<Vec<u32>, OlympicsError> {
    if features.ncols() == 0 {
        return Err(invalid("zoo's test features have no token column"));
    }
    features
        .column(0)
        .iter()
        .map(|&value| {
            if value >= 0.0 && value.fract() == 0.0 {
                Ok(value as u32)
            } else {
                Err(invalid(format!("{value} is not a token id")))
            }
        })
        .collect()
}
