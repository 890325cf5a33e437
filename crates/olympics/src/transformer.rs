//! The Olympics challenge's heavy model: zoo's trained character transformer with compressed projections
//! (int8, f16, pruned), run either by full recomputation of the prefix or with a KV cache kept across
//! queries; and the next-character event built from zoo's held-out text.
//!
//! kvcache's `Transformer` cannot load zoo's weights (its fields are private and it has no constructor from
//! them), so the cached step lives here, small and checked against full recomputation by a test.

use std::cell::RefCell;

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use zoo::layers::gelu;
use zoo::{CharTransformer, CharTransformerConfig, LayerNorm};

use crate::compress::{prune_neurons, CompressedLinear, Recipe, WeightFormat};
use crate::error::{invalid, shape_error, OlympicsError};
use crate::event::{
    DataSource, Event, EventSpec, QualityMetric, QueryOrder, RelativeTarget, TestSet,
};
use crate::submission::{Optimization, Submission};

/// One decoder block with compressed projections.
#[derive(Debug, Clone)]
pub struct CompressedBlock {
    ln1: LayerNorm,
    query: CompressedLinear,
    key: CompressedLinear,
    value: CompressedLinear,
    output: CompressedLinear,
    ln2: LayerNorm,
    mlp_up: CompressedLinear,
    mlp_down: CompressedLinear,
}

/// zoo's character transformer with every projection (attention, MLP, output head) compressed by a
/// [`Recipe`]; embeddings and LayerNorms stay f32. Structured pruning removes MLP hidden neurons.
#[derive(Debug, Clone)]
pub struct CompressedTransformer {
    config: CharTransformerConfig,
    token_embedding: Array2<f32>,
    position_embedding: Array2<f32>,
    blocks: Vec<CompressedBlock>,
    ln_final: LayerNorm,
    lm_head: CompressedLinear,
}

/// Keys and values of the positions seen so far, per layer (`context × d_model` slabs allocated once).
#[derive(Debug, Clone)]
pub struct KvState {
    keys: Vec<Array2<f32>>,
    values: Vec<Array2<f32>>,
    len: usize,
}

impl KvState {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the two slabs.
    pub fn bytes(&self) -> usize {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|slab| slab.len() * std::mem::size_of::<f32>())
            .sum()
    }
}

fn layer_norm_bytes(layer: &LayerNorm) -> usize {
    (layer.gamma.len() + layer.beta.len()) * std::mem::size_of::<f32>()
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row
        .iter()
        .fold(f32::NEG_INFINITY, |best, &value| best.max(value));
    let mut total = 0.0;
    for value in row.iter_mut() {
        *value = (*value - max).exp();
        total += *value;
    }
    for value in row.iter_mut() {
        *value /= total;
    }
}

impl CompressedTransformer {
    /// Compresses `model` with `recipe`.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for unstructured pruning with a non-f32 format or a bad fraction;
    /// quant and accel errors.
    pub fn compress(model: &CharTransformer, recipe: &Recipe) -> Result<Self, OlympicsError> {
        let compress = |layer: &zoo::Linear| -> Result<CompressedLinear, OlympicsError> {
            match recipe.unstructured {
                Some(sparsity) => {
                    if recipe.format != WeightFormat::F32 {
                        return Err(invalid("unstructured pruning is stored as f32 CSR"));
                    }
                    CompressedLinear::sparse(layer, sparsity)
                }
                None => CompressedLinear::new(layer, recipe.format),
            }
        };
        let mut blocks = Vec::with_capacity(model.blocks.len());
        for block in &model.blocks {
            let (mlp_up, mlp_down) = match recipe.structured {
                Some(fraction) => prune_neurons(&block.mlp_up, &block.mlp_down, fraction)?,
                None => (block.mlp_up.clone(), block.mlp_down.clone()),
            };
            blocks.push(CompressedBlock {
                ln1: block.ln1.clone(),
                query: compress(&block.query)?,
                key: compress(&block.key)?,
                value: compress(&block.value)?,
                output: compress(&block.output)?,
                ln2: block.ln2.clone(),
                mlp_up: compress(&mlp_up)?,
                mlp_down: compress(&mlp_down)?,
            });
        }
        Ok(CompressedTransformer {
            config: model.config.clone(),
            token_embedding: model.token_embedding.clone(),
            position_embedding: model.position_embedding.clone(),
            blocks,
            ln_final: model.ln_final.clone(),
            lm_head: compress(&model.lm_head)?,
        })
    }

    /// Sizes.
    pub fn config(&self) -> &CharTransformerConfig {
        &self.config
    }

    /// Bytes of every stored parameter.
    pub fn storage_bytes(&self) -> usize {
        let f32_bytes = std::mem::size_of::<f32>();
        (self.token_embedding.len() + self.position_embedding.len()) * f32_bytes
            + layer_norm_bytes(&self.ln_final)
            + self.lm_head.storage_bytes()
            + self
                .blocks
                .iter()
                .map(|block| {
                    layer_norm_bytes(&block.ln1)
                        + layer_norm_bytes(&block.ln2)
                        + [
                            &block.query,
                            &block.key,
                            &block.value,
                            &block.output,
                            &block.mlp_up,
                            &block.mlp_down,
                        ]
                        .iter()
                        .map(|layer| layer.storage_bytes())
                        .sum::<usize>()
                })
                .sum::<usize>()
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), OlympicsError> {
        if tokens.is_empty() || tokens.len() > self.config.context_length {
            return Err(invalid(format!(
                "sequence length {} not in 1..={}",
                tokens.len(),
                self.config.context_length
            )));
        }
        if let Some(bad) = tokens
            .iter()
            .find(|&&token| token as usize >= self.config.vocab_size)
        {
            return Err(invalid(format!("token {bad} outside the vocabulary")));
        }
        Ok(())
    }

    fn mlp(
        &self,
        block: &CompressedBlock,
        residual: &mut Array2<f32>,
    ) -> Result<(), OlympicsError> {
        let normed = block.ln2.forward(residual.view())?;
        let mut hidden = block.mlp_up.forward(normed.view())?;
        hidden.mapv_inplace(gelu);
        *residual += &block.mlp_down.forward(hidden.view())?;
        Ok(())
    }

    /// Next-token logits at every position of `tokens` (`len × vocab`), recomputing attention over the
    /// whole prefix (no cache).
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for an empty or too long sequence or a token outside the
    /// vocabulary; kernel errors.
    pub fn forward(&self, tokens: &[u32]) -> Result<Array2<f32>, OlympicsError> {
        self.check_tokens(tokens)?;
        let config = &self.config;
        let n_tokens = tokens.len();
        let mut residual = Array2::<f32>::zeros((n_tokens, config.d_model));
        for (position, &token) in tokens.iter().enumerate() {
            let embedded =
                &self.token_embedding.row(token as usize) + &self.position_embedding.row(position);
            residual.row_mut(position).assign(&embedded);
        }
        let d_head = config.d_model / config.n_heads;
        let scale = 1.0 / (d_head as f32).sqrt();
        for block in &self.blocks {
            let normed = block.ln1.forward(residual.view())?;
            let queries = block.query.forward(normed.view())?;
            let keys = block.key.forward(normed.view())?;
            let values = block.value.forward(normed.view())?;
            let mut heads = Array2::<f32>::zeros((n_tokens, config.d_model));
            for head in 0..config.n_heads {
                let columns = s![.., head * d_head..(head + 1) * d_head];
                let mut scores = accel::matmul(queries.slice(columns), keys.slice(columns).t())?;
                for (query_idx, mut row) in scores.rows_mut().into_iter().enumerate() {
                    let visible = query_idx + 1;
                    let Some(slice) = row.as_slice_mut() else {
                        return Err(invalid("score row not contiguous"));
                    };
                    for value in &mut slice[..visible] {
                        *value *= scale;
                    }
                    softmax_in_place(&mut slice[..visible]);
                    slice[visible..].fill(0.0);
                }
                let mixed = accel::matmul(scores.view(), values.slice(columns))?;
                heads.slice_mut(columns).assign(&mixed);
            }
            residual += &block.output.forward(heads.view())?;
            self.mlp(block, &mut residual)?;
        }
        let normed = self.ln_final.forward(residual.view())?;
        self.lm_head.forward(normed.view())
    }

    /// An empty cache for this model (slabs for the whole context allocated now).
    pub fn new_state(&self) -> KvState {
        let shape = (self.config.context_length, self.config.d_model);
        KvState {
            keys: (0..self.blocks.len())
                .map(|_| Array2::zeros(shape))
                .collect(),
            values: (0..self.blocks.len())
                .map(|_| Array2::zeros(shape))
                .collect(),
            len: 0,
        }
    }

    /// Appends `token` at position `state.len()` and returns the next-token logits there, attending to the
    /// cached keys and values instead of recomputing them.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] when the context is full or the token is outside the vocabulary;
    /// kernel errors.
    pub fn step(&self, state: &mut KvState, token: u32) -> Result<Array1<f32>, OlympicsError> {
        let config = &self.config;
        let position = state.len;
        if position >= config.context_length {
            return Err(invalid(format!(
                "context of {} positions is full",
                config.context_length
            )));
        }
        if token as usize >= config.vocab_size {
            return Err(invalid(format!("token {token} outside the vocabulary")));
        }
        let mut residual = (&self.token_embedding.row(token as usize)
            + &self.position_embedding.row(position))
            .insert_axis(Axis(0));
        let d_head = config.d_model / config.n_heads;
        let scale = 1.0 / (d_head as f32).sqrt();
        let mut weights = vec![0.0f32; position + 1];
        for (layer, block) in self.blocks.iter().enumerate() {
            let normed = block.ln1.forward(residual.view())?;
            let query = block.query.forward(normed.view())?;
            let key = block.key.forward(normed.view())?;
            let value = block.value.forward(normed.view())?;
            state.keys[layer].row_mut(position).assign(&key.row(0));
            state.values[layer].row_mut(position).assign(&value.row(0));
            let keys = state.keys[layer].slice(s![..=position, ..]);
            let values = state.values[layer].slice(s![..=position, ..]);
            let mut heads = Array2::<f32>::zeros((1, config.d_model));
            for head in 0..config.n_heads {
                let columns = head * d_head..(head + 1) * d_head;
                let query_head: ArrayView1<'_, f32> = query.slice(s![0, columns.clone()]);
                for (weight, key_row) in weights.iter_mut().zip(keys.outer_iter()) {
                    let key_head: ArrayView1<'_, f32> = key_row.slice(s![columns.clone()]);
                    *weight = query_head.dot(&key_head) * scale;
                }
                softmax_in_place(&mut weights);
                let mut out = heads.slice_mut(s![0, columns.clone()]);
                for (&weight, value_row) in weights.iter().zip(values.outer_iter()) {
                    let value_head: ArrayView1<'_, f32> = value_row.slice(s![columns.clone()]);
                    out.scaled_add(weight, &value_head);
                }
            }
            residual += &block.output.forward(heads.view())?;
            self.mlp(block, &mut residual)?;
        }
        state.len += 1;
        let normed = self.ln_final.forward(residual.view())?;
        Ok(self.lm_head.forward(normed.view())?.row(0).to_owned())
    }
}

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

/// The prefix a cached submission has seen, its keys and values, and the logits after its last token.
type CachedStream = (Vec<u32>, KvState, Array1<f32>);

/// A next-character submission: for each query row, the logits of the character after its prefix.
///
/// Without the cache, each query recomputes its whole prefix; rows of one batch that extend one another (a
/// stream) share one forward pass, which is batching, not caching. With the cache, a query that extends the
/// previous one by some characters runs one step per new character.
#[derive(Debug)]
pub struct NextCharSubmission {
    name: String,
    optimizations: Vec<Optimization>,
    model: CompressedTransformer,
    cached: bool,
    state: RefCell<Option<CachedStream>>,
}

impl NextCharSubmission {
    /// A submission from a compressed model.
    pub fn new(name: &str, model: CompressedTransformer, recipe: &Recipe, cached: bool) -> Self {
        let mut optimizations = recipe.optimizations();
        if cached {
            optimizations.push(Optimization::KvCache);
        }
        NextCharSubmission {
            name: name.into(),
            optimizations,
            model,
            cached,
            state: RefCell::new(None),
        }
    }

    fn forward_uncached(&self, queries: &[Vec<u32>]) -> Result<Array2<f32>, OlympicsError> {
        let vocab = self.model.config.vocab_size;
        let mut out = Array2::<f32>::zeros((queries.len(), vocab));
        let mut group_start = 0;
        for index in 0..queries.len() {
            let extends_next = queries.get(index + 1).is_some_and(|next| {
                next.len() == queries[index].len() + 1 && next.starts_with(&queries[index])
            });
            if extends_next {
                continue;
            }
            let logits = self.model.forward(&queries[index])?;
            for (row, query) in queries.iter().enumerate().take(index + 1).skip(group_start) {
                out.row_mut(row).assign(&logits.row(query.len() - 1));
            }
            group_start = index + 1;
        }
        Ok(out)
    }

    fn forward_cached(&self, queries: &[Vec<u32>]) -> Result<Array2<f32>, OlympicsError> {
        let vocab = self.model.config.vocab_size;
        let mut out = Array2::<f32>::zeros((queries.len(), vocab));
        let mut state = self.state.borrow_mut();
        for (row, tokens) in queries.iter().enumerate() {
            let reusable = state
                .as_ref()
                .is_some_and(|(prefix, _, _)| tokens.starts_with(prefix));
            if !reusable {
                *state = Some((Vec::new(), self.model.new_state(), Array1::zeros(vocab)));
            }
            let Some((prefix, kv, last)) = state.as_mut() else {
                return Err(invalid("cache state missing"));
            };
            for &token in &tokens[prefix.len()..] {
                *last = self.model.step(kv, token)?;
                prefix.push(token);
            }
            out.row_mut(row).assign(last);
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
        let context = self.model.config.context_length;
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
        *self.state.borrow_mut() = None;
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
/// [`OlympicsError::InvalidArgument`] when the text is shorter than one window, or the margin is not a
/// finite fraction in [0, 1).
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
/// [`OlympicsError::InvalidArgument`] for a value that is not a token id.
pub fn tokens_from_zoo_test(features: ArrayView2<'_, f32>) -> Result<Vec<u32>, OlympicsError> {
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
