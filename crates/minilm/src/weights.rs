//! The f32 weights of the encoder read from `model.safetensors`, every tensor checked against the configuration;
//! linear weights are stored transposed (`in × out`) so that a layer is `x · W + b`.

use crate::config::BertConfig;
use crate::error::MinilmError;
use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// A dense layer: `weight` is `in × out`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseWeights {
    /// `in × out`.
    pub weight: Array2<f32>,
    /// `out`.
    pub bias: Array1<f32>,
}

/// A LayerNorm's gain and bias.
#[derive(Debug, Clone, PartialEq)]
pub struct NormWeights {
    /// Gain (γ).
    pub gain: Array1<f32>,
    /// Bias (β).
    pub bias: Array1<f32>,
}

/// One encoder layer. After head pruning `query`, `key` and `value` have `n_heads · head_dim` outputs and
/// `attention_output` as many inputs; after neuron pruning `intermediate` has fewer outputs and `output` as many
/// inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// Attention heads kept.
    pub n_heads: usize,
    /// Query projection.
    pub query: DenseWeights,
    /// Key projection.
    pub key: DenseWeights,
    /// Value projection.
    pub value: DenseWeights,
    /// Attention output projection.
    pub attention_output: DenseWeights,
    /// LayerNorm after the attention block's residual.
    pub attention_norm: NormWeights,
    /// First feed-forward layer (GELU follows).
    pub intermediate: DenseWeights,
    /// Second feed-forward layer.
    pub output: DenseWeights,
    /// LayerNorm after the feed-forward block's residual.
    pub output_norm: NormWeights,
}

/// The whole encoder in f32 (the pooler, which sentence embeddings do not use, is not loaded).
#[derive(Debug, Clone, PartialEq)]
pub struct BertWeights {
    /// Hyper-parameters.
    pub config: BertConfig,
    /// `vocab × hidden`.
    pub word_embeddings: Array2<f32>,
    /// `max_positions × hidden`.
    pub position_embeddings: Array2<f32>,
    /// `type_vocab × hidden`.
    pub token_type_embeddings: Array2<f32>,
    /// LayerNorm of the embeddings.
    pub embeddings_norm: NormWeights,
    /// Encoder layers.
    pub layers: Vec<LayerWeights>,
}

impl BertWeights {
    /// The sizes the encoder and the pruner index by, checked against each other (the fields are public, so
    /// weights built or edited by hand can disagree; [`BertWeights::from_bytes`] and [`crate::prune`] always
    /// agree): a positive `hidden_size` the heads divide; embedding tables `hidden` wide and at least one token
    /// type; LayerNorms `hidden` long; and in every layer at least one head and one feed-forward neuron,
    /// `query`, `key`, `value` of `hidden × n_heads · head_dim`, `attention_output` back to `hidden`,
    /// `intermediate` from `hidden` and `output` from its width back to `hidden`, biases as long as the outputs.
    /// Returns the head width.
    pub(crate) fn check_shapes(&self) -> Result<usize, MinilmError> {
        let head_dim = self.config.head_dim()?;
        let hidden = self.config.hidden_size;
        let invalid = |reason: String| MinilmError::InvalidInput { reason };
        if hidden == 0 {
            return Err(invalid("hidden_size is 0".into()));
        }
        let table = |name: &str, table: &Array2<f32>, min_rows: usize| {
            if table.ncols() != hidden || table.nrows() < min_rows {
                return Err(invalid(format!(
                    "{name} is {:?}, expected at least {min_rows} rows of {hidden}",
                    table.dim()
                )));
            }
            Ok(())
        };
        table("word_embeddings", &self.word_embeddings, 0)?;
        table("position_embeddings", &self.position_embeddings, 0)?;
        table("token_type_embeddings", &self.token_type_embeddings, 1)?;
        let norm = |name: &str, norm: &NormWeights| {
            if norm.gain.len() != hidden || norm.bias.len() != hidden {
                return Err(invalid(format!(
                    "{name}: gain {} and bias {} long, expected {hidden}",
                    norm.gain.len(),
                    norm.bias.len()
                )));
            }
            Ok(())
        };
        let dense = |name: String, dense: &DenseWeights, inputs: usize, outputs: usize| {
            if dense.weight.dim() != (inputs, outputs) || dense.bias.len() != outputs {
                return Err(invalid(format!(
                    "{name}: weight {:?} and bias {}, expected ({inputs}, {outputs}) and {outputs}",
                    dense.weight.dim(),
                    dense.bias.len()
                )));
            }
            Ok(())
        };
        norm("embeddings norm", &self.embeddings_norm)?;
        for (index, layer) in self.layers.iter().enumerate() {
            let attention = layer.n_heads * head_dim;
            let neurons = layer.intermediate.weight.ncols();
            if layer.n_heads == 0 || neurons == 0 {
                return Err(invalid(format!(
                    "layer {index} has {} heads and {neurons} feed-forward neurons (at least one of each)",
                    layer.n_heads
                )));
            }
            for (name, projection) in [
                ("query", &layer.query),
                ("key", &layer.key),
                ("value", &layer.value),
            ] {
                dense(
                    format!("layer {index} {name}"),
                    projection,
                    hidden,
                    attention,
                )?;
            }
            let name = |part: &str| format!("layer {index} {part}");
            dense(
                name("attention output"),
                &layer.attention_output,
                attention,
                hidden,
            )?;
            dense(name("intermediate"), &layer.intermediate, hidden, neurons)?;
            dense(name("output"), &layer.output, neurons, hidden)?;
            norm(&name("attention norm"), &layer.attention_norm)?;
            norm(&name("output norm"), &layer.output_norm)?;
        }
        Ok(head_dim)
    }
}

struct Reader<'a> {
    tensors: SafeTensors<'a>,
    path: &'a Path,
}

impl Reader<'_> {
    fn tensor(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, MinilmError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| MinilmError::MissingTensor {
                path: self.path.to_path_buf(),
                name: name.to_owned(),
            })?;
        if view.shape() != expected {
            return Err(MinilmError::TensorShape {
                path: self.path.to_path_buf(),
                name: name.to_owned(),
                expected: expected.to_vec(),
                actual: view.shape().to_vec(),
            });
        }
        let value_error = |reason: String| MinilmError::TensorValue {
            path: self.path.to_path_buf(),
            name: name.to_owned(),
            reason,
        };
        if view.dtype() != Dtype::F32 {
            return Err(value_error(format!(
                "dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .collect();
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(value_error(format!(
                "non-finite value {} at index {index}",
                values[index]
            )));
        }
        Ok(values)
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, MinilmError> {
        Ok(Array1::from(self.tensor(name, &[len])?))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, MinilmError> {
        let values = self.tensor(name, &[rows, cols])?;
        Ok(Array2::from_shape_vec((rows, cols), values).expect("shape checked"))
    }

    /// A PyTorch `Linear` (`weight` is `out × in`) as `in × out`.
    fn dense(
        &self,
        prefix: &str,
        inputs: usize,
        outputs: usize,
    ) -> Result<DenseWeights, MinilmError> {
        let weight = self.matrix(&format!("{prefix}.weight"), outputs, inputs)?;
        Ok(DenseWeights {
            weight: weight.t().as_standard_layout().into_owned(),
            bias: self.vector(&format!("{prefix}.bias"), outputs)?,
        })
    }

    fn norm(&self, prefix: &str, width: usize) -> Result<NormWeights, MinilmError> {
        Ok(NormWeights {
            gain: self.vector(&format!("{prefix}.weight"), width)?,
            bias: self.vector(&format!("{prefix}.bias"), width)?,
        })
    }
}

impl BertWeights {
    /// Reads every tensor the encoder needs from a safetensors file.
    ///
    /// # Errors
    /// [`MinilmError::NotFound`] / [`MinilmError::Io`]; [`MinilmError::Safetensors`] for a truncated or corrupt
    /// file; [`MinilmError::MissingTensor`], [`MinilmError::TensorShape`], [`MinilmError::TensorValue`] naming the
    /// tensor.
    pub fn from_file(path: &Path, config: &BertConfig) -> Result<BertWeights, MinilmError> {
        let bytes = crate::files::read_bytes(path)?;
        Self::from_bytes(&bytes, path, config)
    }

    /// As [`BertWeights::from_file`] on the file's bytes; `path` names it in errors.
    ///
    /// # Errors
    /// As [`BertWeights::from_file`].
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        config: &BertConfig,
    ) -> Result<BertWeights, MinilmError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| MinilmError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let reader = Reader { tensors, path };
        let hidden = config.hidden_size;
        let ffn = config.intermediate_size;
        let layers = (0..config.num_hidden_layers)
            .map(|layer| {
                let prefix = format!("encoder.layer.{layer}");
                Ok(LayerWeights {
                    n_heads: config.num_attention_heads,
                    query: reader.dense(
                        &format!("{prefix}.attention.self.query"),
                        hidden,
                        hidden,
                    )?,
                    key: reader.dense(&format!("{prefix}.attention.self.key"), hidden, hidden)?,
                    value: reader.dense(
                        &format!("{prefix}.attention.self.value"),
                        hidden,
                        hidden,
                    )?,
                    attention_output: reader.dense(
                        &format!("{prefix}.attention.output.dense"),
                        hidden,
                        hidden,
                    )?,
                    attention_norm: reader
                        .norm(&format!("{prefix}.attention.output.LayerNorm"), hidden)?,
                    intermediate: reader.dense(
                        &format!("{prefix}.intermediate.dense"),
                        hidden,
                        ffn,
                    )?,
                    output: reader.dense(&format!("{prefix}.output.dense"), ffn, hidden)?,
                    output_norm: reader.norm(&format!("{prefix}.output.LayerNorm"), hidden)?,
                })
            })
            .collect::<Result<Vec<_>, MinilmError>>()?;
        Ok(BertWeights {
            word_embeddings: reader.matrix(
                "embeddings.word_embeddings.weight",
                config.vocab_size,
                hidden,
            )?,
            position_embeddings: reader.matrix(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                hidden,
            )?,
            token_type_embeddings: reader.matrix(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size,
                hidden,
            )?,
            embeddings_norm: reader.norm("embeddings.LayerNorm", hidden)?,
            layers,
            config: config.clone(),
        })
    }

    /// Parameters held (after any pruning).
    pub fn n_parameters(&self) -> usize {
        let dense = |d: &DenseWeights| d.weight.len() + d.bias.len();
        let norm = |n: &NormWeights| n.gain.len() + n.bias.len();
        self.word_embeddings.len()
            + self.position_embeddings.len()
            + self.token_type_embeddings.len()
            + norm(&self.embeddings_norm)
            + self
                .layers
                .iter()
                .map(|l| {
                    dense(&l.query)
                        + dense(&l.key)
                        + dense(&l.value)
                        + dense(&l.attention_output)
                        + dense(&l.intermediate)
                        + dense(&l.output)
                        + norm(&l.attention_norm)
                        + norm(&l.output_norm)
                })
                .sum::<usize>()
    }
}
