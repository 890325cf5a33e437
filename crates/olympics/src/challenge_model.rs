//! The challenge's model: zoo's trained character transformer loaded into kvcache's `Transformer`,
//! with every projection a [`CompressedLinear`] (f32, int8, f16, CSR; MLPs narrowed by structured
//! pruning). kvcache owns the forward pass, the KV cache and the decoder; this file holds only the
//! weight conversion from zoo and the [`kvcache::Projection`] implementation for compressed layers.
//!
//! One property the cache relies on is kept here: every projection treats rows independently. For
//! int8 that means one activation scale per row (per token), not one per call: a cached step then
//! quantizes a token exactly as the full recompute does, and cached decoding equals recomputation.

use std::cell::RefCell;

use accel::MatmulConfig;
use kvcache::{
    Block, KvCacheError, LayerWeights, ModelConfig, PositionalEncoding, Projection, Transformer,
    TransformerParts, TransformerWeights,
};
use ndarray::{concatenate, s, Array2, ArrayView2, ArrayViewMut2, Axis};
use zoo::{CharTransformer, Linear};

use crate::compress::{prune_magnitude, prune_neurons, CompressedLinear, Recipe, WeightFormat};
use crate::error::{invalid, OlympicsError};

/// zoo's character transformer with compressed projections, on kvcache's forward pass.
pub type CompressedTransformer = Transformer<CompressedLinear>;

/// kvcache's shape and weights for zoo's character transformer: the same architecture
/// (pre-LayerNorm, learned positions, tanh GELU, untied head with a bias), the query, key and
/// value projections concatenated column-wise into one `d × 3d` matrix.
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] when zoo's LayerNorms use different epsilons (kvcache has
/// one).
pub fn char_transformer_weights(
    model: &CharTransformer,
) -> Result<(ModelConfig, TransformerWeights), OlympicsError> {
    let source = &model.config;
    let epsilon = model.ln_final.eps;
    if !model
        .blocks
        .iter()
        .all(|block| block.ln1.eps == epsilon && block.ln2.eps == epsilon)
    {
        return Err(invalid(
            "zoo's LayerNorms use different epsilons; kvcache has one",
        ));
    }
    let config = ModelConfig {
        vocab_size: source.vocab_size,
        d_model: source.d_model,
        n_heads: source.n_heads,
        n_layers: source.n_layers,
        d_ff: source.d_ff,
        max_seq_len: source.context_length,
        positional: PositionalEncoding::Learned,
        layer_norm_epsilon: epsilon,
    };
    let concatenation = |error: ndarray::ShapeError| invalid(format!("q, k, v: {error}"));
    let layers = model
        .blocks
        .iter()
        .map(|block| -> Result<LayerWeights, OlympicsError> {
            Ok(LayerWeights {
                attention_norm_gain: block.ln1.gamma.clone(),
                attention_norm_bias: block.ln1.beta.clone(),
                qkv_weight: concatenate(
                    Axis(1),
                    &[
                        block.query.weight.view(),
                        block.key.weight.view(),
                        block.value.weight.view(),
                    ],
                )
                .map_err(concatenation)?,
                qkv_bias: concatenate(
                    Axis(0),
                    &[
                        block.query.bias.view(),
                        block.key.bias.view(),
                        block.value.bias.view(),
                    ],
                )
                .map_err(concatenation)?,
                output_weight: block.output.weight.clone(),
                output_bias: block.output.bias.clone(),
                mlp_norm_gain: block.ln2.gamma.clone(),
                mlp_norm_bias: block.ln2.beta.clone(),
                up_weight: block.mlp_up.weight.clone(),
                up_bias: block.mlp_up.bias.clone(),
                down_weight: block.mlp_down.weight.clone(),
                down_bias: block.mlp_down.bias.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let weights = TransformerWeights {
        token_embedding: model.token_embedding.clone(),
        position_table: model.position_embedding.clone(),
        layers,
        final_norm_gain: model.ln_final.gamma.clone(),
        final_norm_bias: model.ln_final.beta.clone(),
        lm_head: model.lm_head.weight.clone(),
        lm_head_bias: model.lm_head.bias.clone(),
    };
    Ok((config, weights))
}

/// zoo's character transformer compressed with `recipe` (see [`compress_transformer`]).
///
/// # Errors
/// As [`char_transformer_weights`] and [`compress_transformer`].
pub fn compress_char_transformer(
    model: &CharTransformer,
    recipe: &Recipe,
) -> Result<CompressedTransformer, OlympicsError> {
    let (config, weights) = char_transformer_weights(model)?;
    compress_transformer(config, &weights, recipe)
}

/// A transformer's weights with every projection (query–key–value, attention output, MLP, head)
/// compressed by `recipe`; embeddings and LayerNorms stay f32. Structured pruning removes MLP
/// hidden neurons (each block's MLP becomes narrower than `d_ff`). Unstructured pruning removes the
/// smallest weights of the query, key and value matrices each on its own (as three separate layers
/// would be pruned), of every other matrix as a whole.
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] for unstructured pruning with a non-f32 format or a bad
/// fraction; quant, accel and kvcache errors (a weight whose shape does not fit `config`).
pub fn compress_transformer(
    config: ModelConfig,
    weights: &TransformerWeights,
    recipe: &Recipe,
) -> Result<CompressedTransformer, OlympicsError> {
    if recipe.unstructured.is_some() && recipe.format != WeightFormat::F32 {
        return Err(invalid("unstructured pruning is stored as f32 CSR"));
    }
    let compress = |layer: &Linear| -> Result<CompressedLinear, OlympicsError> {
        match recipe.unstructured {
            Some(sparsity) => CompressedLinear::sparse(layer, sparsity),
            None => CompressedLinear::new(layer, recipe.format),
        }
    };
    let linear = |weight: &Array2<f32>, bias: &ndarray::Array1<f32>| Linear {
        weight: weight.clone(),
        bias: bias.clone(),
    };
    let d = config.d_model;
    let mut blocks = Vec::with_capacity(weights.layers.len());
    for layer in &weights.layers {
        let qkv = match recipe.unstructured {
            Some(sparsity) => {
                if layer.qkv_weight.ncols() != 3 * d {
                    return Err(invalid(format!(
                        "qkv weight has {} columns, expected 3 · {d}",
                        layer.qkv_weight.ncols()
                    )));
                }
                let part = |index: usize| {
                    prune_magnitude(
                        layer.qkv_weight.slice(s![.., index * d..(index + 1) * d]),
                        sparsity,
                    )
                };
                let (query, key, value) = (part(0)?, part(1)?, part(2)?);
                let pruned = concatenate(Axis(1), &[query.view(), key.view(), value.view()])
                    .map_err(|error| invalid(format!("q, k, v: {error}")))?;
                // Already pruned: CSR keeps exactly the non-zeros.
                CompressedLinear::sparse(&linear(&pruned, &layer.qkv_bias), 0.0)?
            }
            None => compress(&linear(&layer.qkv_weight, &layer.qkv_bias))?,
        };
        let up = linear(&layer.up_weight, &layer.up_bias);
        let down = linear(&layer.down_weight, &layer.down_bias);
        let (up, down) = match recipe.structured {
            Some(fraction) => prune_neurons(&up, &down, fraction)?,
            None => (up, down),
        };
        blocks.push(Block {
            attention_norm_gain: layer.attention_norm_gain.clone(),
            attention_norm_bias: layer.attention_norm_bias.clone(),
            qkv,
            output: compress(&linear(&layer.output_weight, &layer.output_bias))?,
            mlp_norm_gain: layer.mlp_norm_gain.clone(),
            mlp_norm_bias: layer.mlp_norm_bias.clone(),
            up: compress(&up)?,
            down: compress(&down)?,
        });
    }
    let parts = TransformerParts {
        token_embedding: weights.token_embedding.clone(),
        position_table: weights.position_table.clone(),
        blocks,
        final_norm_gain: weights.final_norm_gain.clone(),
        final_norm_bias: weights.final_norm_bias.clone(),
        lm_head: compress(&linear(&weights.lm_head, &weights.lm_head_bias))?,
    };
    Ok(Transformer::from_parts(config, parts)?)
}

/// Rows up to which the f16 and CSR projections run a matrix–vector kernel row by row (a decode step); more
/// rows (a prefill, a recompute) run one matrix product over all of them, the split kvcache makes for dense
/// weights.
const FEW_ROWS: usize = 4;

thread_local! {
    /// One input row copied to contiguous memory, when a row of the input is strided.
    static INPUT_ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// One output row computed aside, when it is added to the output (or the output row is strided).
    static OUTPUT_ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// An f16 weight widened to f32 for the GEMM path.
    static WIDENED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn projection_error(kind: &'static str, error: impl std::fmt::Display) -> KvCacheError {
    KvCacheError::Projection {
        kind,
        reason: error.to_string(),
    }
}

/// `output (+)= row_kernel(input row)` row by row, on contiguous slices: a row kernel writes one output
/// row from one input row and never reads its output. Strided rows and accumulation go through per-thread
/// buffers, so a warm call allocates nothing.
fn row_by_row<E: std::fmt::Display>(
    kind: &'static str,
    input: ArrayView2<'_, f32>,
    mut output: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    mut row_kernel: impl FnMut(&[f32], &mut [f32]) -> Result<(), E>,
) -> Result<(), KvCacheError> {
    for (row, mut target) in input.rows().into_iter().zip(output.rows_mut()) {
        let mut run = |x: &[f32]| -> Result<(), KvCacheError> {
            if !accumulate {
                if let Some(out) = target.as_slice_mut() {
                    return row_kernel(x, out).map_err(|error| projection_error(kind, error));
                }
            }
            OUTPUT_ROW.with_borrow_mut(|staged| {
                staged.resize(target.len(), 0.0);
                row_kernel(x, staged).map_err(|error| projection_error(kind, error))?;
                for (sum, &value) in target.iter_mut().zip(staged.iter()) {
                    *sum = if accumulate { *sum + value } else { value };
                }
                Ok(())
            })
        };
        match row.as_slice() {
            Some(x) => run(x)?,
            None => INPUT_ROW.with_borrow_mut(|copy| {
                copy.clear();
                copy.extend(row.iter());
                run(copy)
            })?,
        }
    }
    Ok(())
}

impl Projection for CompressedLinear {
    fn in_features(&self) -> usize {
        CompressedLinear::in_features(self)
    }

    fn out_features(&self) -> usize {
        CompressedLinear::out_features(self)
    }

    fn storage_bytes(&self) -> usize {
        CompressedLinear::storage_bytes(self)
    }

    fn kind(&self) -> &'static str {
        #[allow(unreachable_patterns)]
        match self {
            CompressedLinear::Dense(_) => "f32 dense (accel GEMV ≤ 4 rows, packed GEMM above)",
            CompressedLinear::Int8(_) => {
                "int8 weights per channel, u8 activations per token (quant u8×i8 GEMV per row)"
            }
            CompressedLinear::Half { .. } => {
                "f16 weights (quant f16 GEMV ≤ 4 rows, widened once for accel's GEMM above)"
            }
            CompressedLinear::Sparse { .. } => {
                "f32 CSR of Wᵀ (accel's CSR vector product ≤ 4 rows, CSR × dense above)"
            }
            _ => "compressed",
        }
    }

    fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        matmul: &MatmulConfig,
    ) -> Result<(), KvCacheError> {
        let kind = Projection::kind(self);
        if input.ncols() != CompressedLinear::in_features(self)
            || output.dim() != (input.nrows(), CompressedLinear::out_features(self))
        {
            return Err(KvCacheError::ShapeMismatch {
                what: "compressed projection output [rows, out] for its input",
                expected: vec![input.nrows(), CompressedLinear::out_features(self)],
                actual: output.shape().to_vec(),
            });
        }
        match self {
            // The f32 baseline runs exactly kvcache's dense path.
            CompressedLinear::Dense(layer) => kvcache::dense_forward_into(
                layer.weight.view(),
                layer.bias.view(),
                input,
                output,
                accumulate,
                matmul,
            ),
            // One row at a time on the layer's batch-1 kernel (`fused`: quant's row quantization and
            // u8 × i8 GEMV): each token's activations get their own u8 scale (see the file's header).
            CompressedLinear::Int8(_) => row_by_row(kind, input, output, accumulate, |x, out| {
                self.forward_row_into(x, out, false).map(|_| ())
            }),
            // Few rows on the layer's batch-1 kernel (quant's f16 GEMV, widening in registers).
            CompressedLinear::Half { .. } if input.nrows() <= FEW_ROWS => {
                row_by_row(kind, input, output, accumulate, |x, out| {
                    self.forward_row_into(x, out, false).map(|_| ())
                })
            }
            CompressedLinear::Half {
                weight,
                shape,
                bias,
            } => {
                let Some(bias) = bias.as_slice() else {
                    return Err(projection_error(kind, "bias not contiguous"));
                };
                WIDENED.with_borrow_mut(|widened| {
                    widened.resize(shape[0] * shape[1], 0.0);
                    quant::widen_f16_into(weight, widened, None)
                        .map_err(|error| projection_error(kind, error))?;
                    let weight = ArrayView2::from_shape((shape[0], shape[1]), &widened[..])
                        .map_err(|error| projection_error(kind, error))?;
                    kvcache::dense_forward_into(
                        weight,
                        ndarray::ArrayView1::from(bias),
                        input,
                        output,
                        accumulate,
                        matmul,
                    )
                })
            }
            // Few rows (a decode step): one sparse dot product per output and row, on accel's batch-1
            // CSR product, with nothing to transpose. More rows take the layer's own CSR × dense product
            // below (one pass over the CSR for all rows; row by row it was twice as slow).
            CompressedLinear::Sparse {
                weight_transposed,
                bias,
            } if input.nrows() <= FEW_ROWS => {
                row_by_row(kind, input, output, accumulate, |x, out| {
                    weight_transposed.vector_product_into(x, out, false)?;
                    for (value, &shift) in out.iter_mut().zip(bias) {
                        *value += shift;
                    }
                    Ok::<(), accel::AccelError>(())
                })
            }
            // CSR with more rows (and any storage added to `CompressedLinear` later): the layer's own
            // forward pass, rows independent.
            other => {
                let product = other
                    .forward(input)
                    .map_err(|error| projection_error(kind, error))?;
                if accumulate {
                    output += &product;
                } else {
                    output.assign(&product);
                }
                Ok(())
            }
        }
    }
}
