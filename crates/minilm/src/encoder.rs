//! The sentence encoder: embeddings, six post-LayerNorm BERT layers and mean pooling with L2 normalisation, its
//! dense layers on accel's f32 GEMM, on quant's u8 × i8 GEMM (dynamic int8), or on f16/bf16 storage widened to
//! f32 per product.
//!
//! Padding is removed before the first layer: the tokens of a batch are packed into one `tokens × hidden` matrix
//! and attention runs per sentence over that sentence's rows only. This is the padding mask applied exactly (a
//! padded key would get weight 0, a padded query is never pooled), and the dense layers do no work on padding.

use crate::error::MinilmError;
use crate::ops::{dequantize_row, gelu_in_place, layer_norm_row, masked_softmax, quantize_row_u8};
use crate::tokenize::TokenBatch;
use crate::weights::{BertWeights, DenseWeights, NormWeights};
use accel::MatmulConfig;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use ndarray::{concatenate, s, Array2, ArrayView2, ArrayViewMut2, Axis};
use quant::{gemm_u8i8_i32, GemmConfig, PackedB};
use std::cell::RefCell;
use std::fmt;

/// How the weights are stored and the dense layers computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// f32 weights, accel's f32 GEMM.
    F32,
    /// IEEE half weights (2 bytes), widened to f32 per product.
    F16,
    /// bfloat16 weights (2 bytes), widened to f32 per product.
    Bf16,
    /// Dynamic int8: per-output-channel symmetric i8 weights, per-token affine u8 activations, quant's
    /// u8 × i8 → i32 GEMM; embedding tables per-row symmetric i8.
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        })
    }
}

/// Knobs of [`Encoder::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Weight storage and arithmetic.
    pub precision: Precision,
    /// Threads of accel's f32 GEMM (quant's integer GEMM runs on the calling thread).
    pub threads: usize,
}

impl Default for EncoderConfig {
    /// f32 on one thread.
    fn default() -> Self {
        EncoderConfig {
            precision: Precision::F32,
            threads: 1,
        }
    }
}

/// Per-thread buffers reused across calls (grown on demand, never shrunk): the int8 path's codes, accumulators
/// and row parameters, the half path's widened weights, and the layer's activations. Fresh multi-megabyte
/// buffers per product cost a page fault per 4 KiB, which measured 15% of an int8 forward pass.
#[derive(Debug, Default)]
struct Scratch {
    codes: Vec<u8>,
    accumulators: Vec<i32>,
    row_params: Vec<(f32, i32)>,
    widened: Vec<f32>,
}

#[derive(Debug, Default)]
struct Activations {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    static ACTIVATIONS: RefCell<Activations> = RefCell::new(Activations::default());
}

/// `out = x · W` for a 2-byte float weight `W` (`shape` = in × out): widened into the thread's scratch
/// buffer, then accel's f32 GEMM (one home for the f16 and bf16 storages).
fn widened_matmul<H>(
    weight: &[H],
    shape: (usize, usize),
    x: ArrayView2<'_, f32>,
    out: ArrayViewMut2<'_, f32>,
    matmul: &MatmulConfig,
) -> Result<accel::KernelRun, accel::AccelError>
where
    [H]: HalfFloatSliceExt,
{
    SCRATCH.with_borrow_mut(|scratch| {
        let mut widened = view_of(&mut scratch.widened, shape.0, shape.1);
        weight.convert_to_f32_slice(widened.as_slice_mut().expect("contiguous"));
        accel::matmul_into_with(x, widened.view(), out, false, matmul)
    })
}

/// A `rows × cols` view of the front of `buffer`, grown as needed (contents unspecified).
fn view_of<T: Clone + Default>(
    buffer: &mut Vec<T>,
    rows: usize,
    cols: usize,
) -> ArrayViewMut2<'_, T> {
    if buffer.len() < rows * cols {
        buffer.resize(rows * cols, T::default());
    }
    ArrayViewMut2::from_shape((rows, cols), &mut buffer[..rows * cols])
        .expect("buffer holds rows × cols")
}

/// A dense layer `y = x · W + b` in one of the storages.
#[derive(Debug, Clone)]
enum Linear {
    F32 {
        weight: Array2<f32>,
        bias: Vec<f32>,
    },
    F16 {
        weight: Vec<f16>,
        shape: (usize, usize),
        bias: Vec<f32>,
    },
    Bf16 {
        weight: Vec<bf16>,
        shape: (usize, usize),
        bias: Vec<f32>,
    },
    Int8 {
        weight: PackedB,
        scales: Vec<f32>,
        column_sums: Vec<i32>,
        bias: Vec<f32>,
    },
}

impl Linear {
    fn new(dense: &DenseWeights, precision: Precision) -> Result<Linear, MinilmError> {
        let bias = dense.bias.to_vec();
        let shape = dense.weight.dim();
        let values = || {
            dense
                .weight
                .as_standard_layout()
                .iter()
                .copied()
                .collect::<Vec<f32>>()
        };
        Ok(match precision {
            Precision::F32 => Linear::F32 {
                weight: dense.weight.as_standard_layout().into_owned(),
                bias,
            },
            Precision::F16 => Linear::F16 {
                weight: values().iter().map(|&v| f16::from_f32(v)).collect(),
                shape,
                bias,
            },
            Precision::Bf16 => Linear::Bf16 {
                weight: values().iter().map(|&v| bf16::from_f32(v)).collect(),
                shape,
                bias,
            },
            Precision::Int8 => {
                // Symmetric per output channel: scale = max |w| / 127 over the column.
                let scales: Vec<f32> = dense
                    .weight
                    .columns()
                    .into_iter()
                    .map(|column| {
                        let maximum = column.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                        if maximum > 0.0 {
                            maximum / 127.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let codes = Array2::from_shape_fn(shape, |(row, col)| {
                    (dense.weight[[row, col]] / scales[col])
                        .round()
                        .clamp(-127.0, 127.0) as i8
                });
                let weight = PackedB::pack(codes.view())?;
                let column_sums = weight.column_sums();
                Linear::Int8 {
                    weight,
                    scales,
                    column_sums,
                    bias,
                }
            }
        })
    }

    fn outputs(&self) -> usize {
        match self {
            Linear::F32 { weight, .. } => weight.ncols(),
            Linear::F16 { shape, .. } | Linear::Bf16 { shape, .. } => shape.1,
            Linear::Int8 { weight, .. } => weight.n(),
        }
    }

    fn storage_bytes(&self) -> usize {
        let bias = |bias: &Vec<f32>| std::mem::size_of_val(bias.as_slice());
        match self {
            Linear::F32 { weight, bias: b } => weight.len() * 4 + bias(b),
            Linear::F16 {
                weight, bias: b, ..
            } => std::mem::size_of_val(weight.as_slice()) + bias(b),
            Linear::Bf16 {
                weight, bias: b, ..
            } => std::mem::size_of_val(weight.as_slice()) + bias(b),
            Linear::Int8 {
                weight,
                scales,
                column_sums,
                bias: b,
            } => {
                weight.storage_bytes()
                    + std::mem::size_of_val(scales.as_slice())
                    + std::mem::size_of_val(column_sums.as_slice())
                    + bias(b)
            }
        }
    }

    /// `x · W + b` into `out` (contiguous, `rows × outputs`).
    fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
        matmul: &MatmulConfig,
    ) -> Result<(), MinilmError> {
        let bias = match self {
            Linear::F32 { weight, bias } => {
                accel::matmul_into_with(x, weight.view(), out.view_mut(), false, matmul)?;
                bias
            }
            Linear::F16 {
                weight,
                shape,
                bias,
            } => {
                widened_matmul(weight, *shape, x, out.view_mut(), matmul)?;
                bias
            }
            Linear::Bf16 {
                weight,
                shape,
                bias,
            } => {
                widened_matmul(weight, *shape, x, out.view_mut(), matmul)?;
                bias
            }
            Linear::Int8 {
                weight,
                scales,
                column_sums,
                bias,
            } => {
                let (rows, inputs) = x.dim();
                let n = weight.n();
                let contiguous = x.as_standard_layout();
                let values = contiguous.as_slice().expect("standard layout");
                let out = out.as_slice_mut().expect("outputs are contiguous");
                SCRATCH.with_borrow_mut(|scratch| {
                    let Scratch {
                        codes,
                        accumulators,
                        row_params,
                        ..
                    } = scratch;
                    let mut codes = view_of(codes, rows, inputs);
                    row_params.clear();
                    for (row, mut row_codes) in
                        values.chunks_exact(inputs.max(1)).zip(codes.rows_mut())
                    {
                        let row_codes = row_codes.as_slice_mut().expect("contiguous");
                        row_params.push(quantize_row_u8(row, row_codes));
                    }
                    let mut accumulators = view_of(accumulators, rows, n);
                    gemm_u8i8_i32(
                        codes.view(),
                        weight,
                        accumulators.view_mut(),
                        &GemmConfig::default(),
                    )?;
                    let accumulators = accumulators.as_slice().expect("contiguous");
                    for ((out_row, acc_row), &params) in out
                        .chunks_exact_mut(n)
                        .zip(accumulators.chunks_exact(n))
                        .zip(row_params.iter())
                    {
                        dequantize_row(acc_row, params, scales, column_sums, bias, out_row);
                    }
                    Ok::<(), MinilmError>(())
                })?;
                return Ok(());
            }
        };
        for mut row in out.rows_mut() {
            for (o, &b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
        Ok(())
    }
}

/// An embedding table in one of the storages (rows are looked up, never multiplied).
#[derive(Debug, Clone)]
enum Table {
    F32(Array2<f32>),
    F16 {
        values: Vec<f16>,
        width: usize,
    },
    Bf16 {
        values: Vec<bf16>,
        width: usize,
    },
    Int8 {
        codes: Vec<i8>,
        scales: Vec<f32>,
        width: usize,
    },
}

impl Table {
    fn new(table: &Array2<f32>, precision: Precision) -> Table {
        let width = table.ncols();
        let flat = || {
            table
                .as_standard_layout()
                .iter()
                .copied()
                .collect::<Vec<f32>>()
        };
        match precision {
            Precision::F32 => Table::F32(table.as_standard_layout().into_owned()),
            Precision::F16 => Table::F16 {
                values: flat().iter().map(|&v| f16::from_f32(v)).collect(),
                width,
            },
            Precision::Bf16 => Table::Bf16 {
                values: flat().iter().map(|&v| bf16::from_f32(v)).collect(),
                width,
            },
            Precision::Int8 => {
                let mut codes = Vec::with_capacity(table.len());
                let mut scales = Vec::with_capacity(table.nrows());
                for row in table.rows() {
                    let maximum = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                    let scale = if maximum > 0.0 { maximum / 127.0 } else { 1.0 };
                    scales.push(scale);
                    codes.extend(
                        row.iter()
                            .map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i8),
                    );
                }
                Table::Int8 {
                    codes,
                    scales,
                    width,
                }
            }
        }
    }

    fn rows(&self) -> usize {
        match self {
            Table::F32(table) => table.nrows(),
            Table::F16 { values, width } => values.len() / width,
            Table::Bf16 { values, width } => values.len() / width,
            Table::Int8 { scales, .. } => scales.len(),
        }
    }

    /// `out += row`.
    fn add_row(&self, row: usize, out: &mut [f32]) {
        match self {
            Table::F32(table) => {
                for (o, &v) in out.iter_mut().zip(table.row(row)) {
                    *o += v;
                }
            }
            Table::F16 { values, width } => {
                for (o, v) in out.iter_mut().zip(&values[row * width..(row + 1) * width]) {
                    *o += v.to_f32();
                }
            }
            Table::Bf16 { values, width } => {
                for (o, v) in out.iter_mut().zip(&values[row * width..(row + 1) * width]) {
                    *o += v.to_f32();
                }
            }
            Table::Int8 {
                codes,
                scales,
                width,
            } => {
                for (o, &c) in out.iter_mut().zip(&codes[row * width..(row + 1) * width]) {
                    *o += f32::from(c) * scales[row];
                }
            }
        }
    }

    fn storage_bytes(&self) -> usize {
        match self {
            Table::F32(table) => table.len() * 4,
            Table::F16 { values, .. } => values.len() * 2,
            Table::Bf16 { values, .. } => values.len() * 2,
            Table::Int8 { codes, scales, .. } => codes.len() + scales.len() * 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Norm {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

impl Norm {
    fn new(norm: &NormWeights) -> Norm {
        Norm {
            gain: norm.gain.to_vec(),
            bias: norm.bias.to_vec(),
        }
    }

    fn apply(&self, mut x: ArrayViewMut2<'_, f32>, epsilon: f64) {
        for mut row in x.rows_mut() {
            layer_norm_row(
                row.as_slice_mut().expect("rows are contiguous"),
                &self.gain,
                &self.bias,
                epsilon,
            );
        }
    }

    fn storage_bytes(&self) -> usize {
        (self.gain.len() + self.bias.len()) * 4
    }
}

#[derive(Debug, Clone)]
struct Layer {
    n_heads: usize,
    /// Query, key and value fused into one product: `hidden × 3 · n_heads · head_dim`.
    qkv: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// all-MiniLM-L6-v2 (or any BERT encoder of this shape) ready to embed sentences.
#[derive(Debug, Clone)]
pub struct Encoder {
    precision: Precision,
    word_embeddings: Table,
    position_embeddings: Table,
    token_type_row: Vec<f32>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    head_dim: usize,
    epsilon: f64,
    matmul: MatmulConfig,
}

impl Encoder {
    /// Converts `weights` (possibly pruned) to the storage in `config`.
    ///
    /// # Errors
    /// [`MinilmError::InvalidInput`] for zero threads or weights whose shapes disagree with each other or with
    /// their configuration; [`MinilmError::Quant`] when int8 packing fails.
    pub fn new(weights: &BertWeights, config: &EncoderConfig) -> Result<Encoder, MinilmError> {
        if config.threads == 0 {
            return Err(MinilmError::InvalidInput {
                reason: "threads must be at least 1".into(),
            });
        }
        let head_dim = weights.check_shapes()?;
        let precision = config.precision;
        let layers = weights
            .layers
            .iter()
            .map(|layer| {
                let qkv = DenseWeights {
                    weight: concatenate(
                        Axis(1),
                        &[
                            layer.query.weight.view(),
                            layer.key.weight.view(),
                            layer.value.weight.view(),
                        ],
                    )
                    .expect("check_shapes gave the three projections one input width"),
                    bias: concatenate(
                        Axis(0),
                        &[
                            layer.query.bias.view(),
                            layer.key.bias.view(),
                            layer.value.bias.view(),
                        ],
                    )
                    .expect("one-dimensional arrays always concatenate"),
                };
                Ok(Layer {
                    n_heads: layer.n_heads,
                    qkv: Linear::new(&qkv, precision)?,
                    attention_output: Linear::new(&layer.attention_output, precision)?,
                    attention_norm: Norm::new(&layer.attention_norm),
                    intermediate: Linear::new(&layer.intermediate, precision)?,
                    output: Linear::new(&layer.output, precision)?,
                    output_norm: Norm::new(&layer.output_norm),
                })
            })
            .collect::<Result<Vec<_>, MinilmError>>()?;
        Ok(Encoder {
            precision,
            word_embeddings: Table::new(&weights.word_embeddings, precision),
            position_embeddings: Table::new(&weights.position_embeddings, precision),
            token_type_row: weights.token_type_embeddings.row(0).to_vec(),
            embeddings_norm: Norm::new(&weights.embeddings_norm),
            layers,
            hidden: weights.config.hidden_size,
            head_dim,
            epsilon: weights.config.layer_norm_eps,
            matmul: MatmulConfig {
                threads: Some(config.threads),
                ..MatmulConfig::default()
            },
        })
    }

    /// The storage this encoder was built with.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Width of an embedding.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Attention heads of each layer (fewer than the model's after head pruning).
    pub fn heads_per_layer(&self) -> Vec<usize> {
        self.layers.iter().map(|layer| layer.n_heads).collect()
    }

    /// Feed-forward neurons of each layer.
    pub fn neurons_per_layer(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(|layer| layer.intermediate.outputs())
            .collect()
    }

    /// Bytes of every buffer the encoder holds: weights in their storage (one byte per int8 code, two per
    /// half), scales, column sums, biases and LayerNorm parameters in f32.
    pub fn storage_bytes(&self) -> usize {
        self.word_embeddings.storage_bytes()
            + self.position_embeddings.storage_bytes()
            + self.token_type_row.len() * 4
            + self.embeddings_norm.storage_bytes()
            + self
                .layers
                .iter()
                .map(|layer| {
                    layer.qkv.storage_bytes()
                        + layer.attention_output.storage_bytes()
                        + layer.attention_norm.storage_bytes()
                        + layer.intermediate.storage_bytes()
                        + layer.output.storage_bytes()
                        + layer.output_norm.storage_bytes()
                })
                .sum::<usize>()
    }

    /// Sentence embeddings (`batch × hidden`, each of unit L2 norm): the mean of the last layer's token states
    /// over each sentence's real tokens, normalised.
    ///
    /// # Errors
    /// [`MinilmError::InvalidInput`] for a token id past the vocabulary or a sentence longer than the position
    /// table; kernel errors.
    pub fn embed(&self, batch: &TokenBatch) -> Result<Array2<f32>, MinilmError> {
        let states = self.token_states(batch)?;
        let mut embeddings = Array2::<f32>::zeros((batch.batch_size(), self.hidden));
        let mut start = 0;
        for (mut embedding, &length) in embeddings.rows_mut().into_iter().zip(&batch.lengths) {
            let tokens = states.slice(s![start..start + length, ..]);
            let mean = tokens.sum_axis(Axis(0)) / length as f32;
            let norm = mean.iter().map(|&v| v * v).sum::<f32>().sqrt().max(1e-12);
            embedding.assign(&(mean / norm));
            start += length;
        }
        Ok(embeddings)
    }

    fn check(&self, batch: &TokenBatch) -> Result<(), MinilmError> {
        let vocab = self.word_embeddings.rows();
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(MinilmError::InvalidInput {
                reason: format!("token id {id} is past the vocabulary of {vocab}"),
            });
        }
        if batch.seq_len > self.position_embeddings.rows() {
            return Err(MinilmError::InvalidInput {
                reason: format!(
                    "sequence of {} tokens is longer than the {} positions",
                    batch.seq_len,
                    self.position_embeddings.rows()
                ),
            });
        }
        if batch.ids.len() != batch.batch_size() * batch.seq_len
            || batch.lengths.iter().any(|&l| l == 0 || l > batch.seq_len)
        {
            return Err(MinilmError::InvalidInput {
                reason: "token batch: ids, lengths and seq_len disagree".into(),
            });
        }
        Ok(())
    }

    /// The last layer's states of the real tokens, packed (`Σ lengths × hidden`, sentence after sentence).
    fn token_states(&self, batch: &TokenBatch) -> Result<Array2<f32>, MinilmError> {
        self.check(batch)?;
        let n_tokens = batch.n_tokens();
        let mut x = Array2::<f32>::zeros((n_tokens, self.hidden));
        let mut starts = Vec::with_capacity(batch.batch_size());
        let mut row_idx = 0;
        for (sentence, &length) in batch.lengths.iter().enumerate() {
            starts.push(row_idx);
            for position in 0..length {
                let id = batch.ids[sentence * batch.seq_len + position] as usize;
                let mut row = x.row_mut(row_idx);
                let row = row.as_slice_mut().expect("owned rows are contiguous");
                self.word_embeddings.add_row(id, row);
                self.position_embeddings.add_row(position, row);
                for (o, &v) in row.iter_mut().zip(&self.token_type_row) {
                    *o += v;
                }
                row_idx += 1;
            }
        }
        self.embeddings_norm.apply(x.view_mut(), self.epsilon);
        for layer in &self.layers {
            self.layer_forward(layer, &mut x, &starts, &batch.lengths)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &mut Array2<f32>,
        starts: &[usize],
        lengths: &[usize],
    ) -> Result<(), MinilmError> {
        ACTIVATIONS.with_borrow_mut(|activations| {
            let Activations {
                qkv,
                context,
                attended,
                intermediate,
                scores,
            } = activations;
            let n_tokens = x.nrows();
            let attention_width = layer.n_heads * self.head_dim;
            let mut qkv = view_of(qkv, n_tokens, 3 * attention_width);
            layer.qkv.forward(x.view(), qkv.view_mut(), &self.matmul)?;
            let mut context = view_of(context, n_tokens, attention_width);
            let scale = 1.0 / (self.head_dim as f32).sqrt();
            for (&start, &length) in starts.iter().zip(lengths) {
                let rows = start..start + length;
                let mut scores = view_of(scores, length, length);
                for head in 0..layer.n_heads {
                    let columns = head * self.head_dim..(head + 1) * self.head_dim;
                    let query = qkv.slice(s![rows.clone(), columns.clone()]);
                    let key = qkv.slice(s![
                        rows.clone(),
                        attention_width + columns.start..attention_width + columns.end
                    ]);
                    let value = qkv.slice(s![
                        rows.clone(),
                        2 * attention_width + columns.start..2 * attention_width + columns.end
                    ]);
                    accel::matmul_into_with(
                        query,
                        key.t(),
                        scores.view_mut(),
                        false,
                        &self.matmul,
                    )?;
                    for mut row in scores.rows_mut() {
                        masked_softmax(row.as_slice_mut().expect("contiguous"), length, scale);
                    }
                    accel::matmul_into_with(
                        scores.view(),
                        value,
                        context.slice_mut(s![rows.clone(), columns]),
                        false,
                        &self.matmul,
                    )?;
                }
            }
            let mut attended = view_of(attended, n_tokens, self.hidden);
            layer
                .attention_output
                .forward(context.view(), attended.view_mut(), &self.matmul)?;
            attended += &*x;
            layer
                .attention_norm
                .apply(attended.view_mut(), self.epsilon);
            let mut intermediate = view_of(intermediate, n_tokens, layer.intermediate.outputs());
            layer
                .intermediate
                .forward(attended.view(), intermediate.view_mut(), &self.matmul)?;
            gelu_in_place(intermediate.as_slice_mut().expect("contiguous"));
            layer
                .output
                .forward(intermediate.view(), x.view_mut(), &self.matmul)?;
            *x += &attended;
            layer.output_norm.apply(x.view_mut(), self.epsilon);
            Ok(())
        })
    }
}

/// Embeds tokenized sentences in batches of `batch_size` (in order; each batch padded to its own longest).
///
/// # Errors
/// As [`Encoder::embed`] and [`TokenBatch::from_sequences`]; [`MinilmError::InvalidInput`] for a zero batch size.
pub fn embed_sequences(
    encoder: &Encoder,
    sequences: &[Vec<u32>],
    batch_size: usize,
) -> Result<Array2<f32>, MinilmError> {
    if batch_size == 0 {
        return Err(MinilmError::InvalidInput {
            reason: "batch size 0".into(),
        });
    }
    let mut embeddings = Array2::<f32>::zeros((sequences.len(), encoder.hidden_size()));
    for (chunk_idx, chunk) in sequences.chunks(batch_size).enumerate() {
        let batch = TokenBatch::from_sequences(chunk)?;
        let start = chunk_idx * batch_size;
        embeddings
            .slice_mut(s![start..start + chunk.len(), ..])
            .assign(&encoder.embed(&batch)?);
    }
    Ok(embeddings)
}
