//! ONNX export (opset 13) of zoo's character transformer, for a fixed sequence length.
//!
//! The graph reads a `batch × sequence_length` float matrix of token ids (the peers' wire format is float
//! rows; ids below 2^24 are exact in f32) and writes `batch × (sequence_length · vocab_size)`: the
//! next-character logits of every position, position-major, the rows of [`zoo::CharTransformer::forward`]
//! laid end to end. Inside: `Cast` to int64, `Gather` of the token embeddings plus the first
//! `sequence_length` position embeddings; per block a LayerNorm written out in opset-13 operators
//! (`ReduceMean`, `Sub`, `Mul`, `Add`, `Sqrt`, `Div`; `LayerNormalization` is opset 17), the `MatMul` + `Add`
//! projections, heads split by `Reshape`/`Transpose`, scores scaled by `1/sqrt(d_head)` plus a constant causal
//! mask (`-inf` above the diagonal, as zoo's) and `Softmax` over the last axis, the heads merged back, the
//! output projection and residual, then the MLP with GELU's tanh approximation written out (`Gelu` is
//! opset 20); the final LayerNorm and the untied head.

use onnx_protobuf::{GraphProto, ModelProto};
use zoo::{CharTransformer, LayerNorm, Linear};

use crate::error::PeersError;
use crate::onnx::{
    batch_value, encode, export_error, float_tensor, int64_tensor, int_attribute, ints_attribute,
    node, wrap_graph, INPUT_NAME, OUTPUT_NAME,
};

/// The graph under construction and the model's name (for errors).
struct Builder<'a> {
    graph: GraphProto,
    model: &'a str,
}

impl Builder<'_> {
    fn push(&mut self, op_type: &str, inputs: &[&str], output: &str) -> String {
        self.graph
            .node
            .push(node(op_type, inputs, output, Vec::new()));
        output.to_string()
    }

    fn scalar(&mut self, name: &str, value: f32) -> String {
        self.graph
            .initializer
            .push(float_tensor(name, &[], std::iter::once(value)));
        name.to_string()
    }

    /// `input · weight + bias` for a zoo `in × out` layer over the last axis of `input`.
    fn linear(
        &mut self,
        prefix: &str,
        layer: &Linear,
        input: &str,
        in_width: usize,
    ) -> Result<String, PeersError> {
        if layer.in_features() != in_width || layer.bias.len() != layer.out_features() {
            return Err(export_error(
                self.model,
                format!(
                    "{prefix}: weight {:?} (bias {}) after a width of {in_width}",
                    layer.weight.dim(),
                    layer.bias.len()
                ),
            ));
        }
        let weight = format!("{prefix}_weight");
        let bias = format!("{prefix}_bias");
        self.graph.initializer.push(float_tensor(
            &weight,
            &[layer.in_features(), layer.out_features()],
            layer.weight.iter().copied(),
        ));
        self.graph.initializer.push(float_tensor(
            &bias,
            &[layer.out_features()],
            layer.bias.iter().copied(),
        ));
        let product = self.push("MatMul", &[input, &weight], &format!("{prefix}_matmul"));
        Ok(self.push("Add", &[&product, &bias], &format!("{prefix}_out")))
    }

    /// zoo's LayerNorm over the last axis: `(x − mean) / sqrt(var + eps) · gamma + beta`.
    fn layer_norm(
        &mut self,
        prefix: &str,
        norm: &LayerNorm,
        input: &str,
        width: usize,
    ) -> Result<String, PeersError> {
        if norm.gamma.len() != width || norm.beta.len() != width {
            return Err(export_error(
                self.model,
                format!(
                    "{prefix}: gamma {} / beta {} for a width of {width}",
                    norm.gamma.len(),
                    norm.beta.len()
                ),
            ));
        }
        let gamma = format!("{prefix}_gamma");
        let beta = format!("{prefix}_beta");
        self.graph
            .initializer
            .push(float_tensor(&gamma, &[width], norm.gamma.iter().copied()));
        self.graph
            .initializer
            .push(float_tensor(&beta, &[width], norm.beta.iter().copied()));
        let eps = self.scalar(&format!("{prefix}_eps"), norm.eps);
        let mean_axes = vec![ints_attribute("axes", &[-1]), int_attribute("keepdims", 1)];
        let mean = format!("{prefix}_mean");
        self.graph
            .node
            .push(node("ReduceMean", &[input], &mean, mean_axes.clone()));
        let centred = self.push("Sub", &[input, &mean], &format!("{prefix}_centred"));
        let squared = self.push("Mul", &[&centred, &centred], &format!("{prefix}_squared"));
        let variance = format!("{prefix}_variance");
        self.graph
            .node
            .push(node("ReduceMean", &[&squared], &variance, mean_axes));
        let shifted = self.push("Add", &[&variance, &eps], &format!("{prefix}_shifted"));
        let deviation = self.push("Sqrt", &[&shifted], &format!("{prefix}_deviation"));
        let normalized = self.push(
            "Div",
            &[&centred, &deviation],
            &format!("{prefix}_normalized"),
        );
        let scaled = self.push("Mul", &[&normalized, &gamma], &format!("{prefix}_scaled"));
        Ok(self.push("Add", &[&scaled, &beta], &format!("{prefix}_out")))
    }

    /// GELU, tanh approximation: `0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³)))` (zoo's `gelu`).
    fn gelu(&mut self, prefix: &str, input: &str) -> String {
        let cubic = self.scalar(&format!("{prefix}_cubic"), 0.044_715);
        let sqrt_two_over_pi = self.scalar(&format!("{prefix}_sqrt_two_over_pi"), 0.797_884_6);
        let half = self.scalar(&format!("{prefix}_half"), 0.5);
        let one = self.scalar(&format!("{prefix}_one"), 1.0);
        let square = self.push("Mul", &[input, input], &format!("{prefix}_square"));
        let cube = self.push("Mul", &[&square, input], &format!("{prefix}_cube"));
        let scaled_cube = self.push("Mul", &[&cube, &cubic], &format!("{prefix}_scaled_cube"));
        let inner = self.push("Add", &[input, &scaled_cube], &format!("{prefix}_inner"));
        let argument = self.push(
            "Mul",
            &[&inner, &sqrt_two_over_pi],
            &format!("{prefix}_argument"),
        );
        let tanh = self.push("Tanh", &[&argument], &format!("{prefix}_tanh"));
        let one_plus = self.push("Add", &[&tanh, &one], &format!("{prefix}_one_plus"));
        let half_input = self.push("Mul", &[input, &half], &format!("{prefix}_half_input"));
        self.push("Mul", &[&half_input, &one_plus], &format!("{prefix}_out"))
    }

    fn transpose(&mut self, input: &str, perm: &[i64], output: &str) -> String {
        self.graph.node.push(node(
            "Transpose",
            &[input],
            output,
            vec![ints_attribute("perm", perm)],
        ));
        output.to_string()
    }
}

/// zoo's character transformer as an ONNX `ModelProto` over sequences of exactly `sequence_length` tokens
/// (input `batch × sequence_length` token ids as floats, output `batch × (sequence_length · vocab_size)`).
///
/// # Errors
/// [`PeersError::Export`] for a sequence length outside `1..=context_length`, `d_model` not a multiple of
/// the heads, or weights whose shapes disagree with the configuration.
pub fn char_transformer_to_model_proto(
    name: &str,
    model: &CharTransformer,
    sequence_length: usize,
) -> Result<ModelProto, PeersError> {
    let config = &model.config;
    let (vocab, d_model, heads) = (config.vocab_size, config.d_model, config.n_heads);
    if !(1 <= sequence_length && sequence_length <= config.context_length) {
        return Err(export_error(
            name,
            format!(
                "sequence length {sequence_length} not in 1..={}",
                config.context_length
            ),
        ));
    }
    if heads == 0 || d_model % heads != 0 {
        return Err(export_error(
            name,
            format!("d_model {d_model} is not a multiple of {heads} heads"),
        ));
    }
    if model.token_embedding.dim() != (vocab, d_model)
        || model.position_embedding.nrows() < sequence_length
        || model.position_embedding.ncols() != d_model
    {
        return Err(export_error(
            name,
            format!(
                "token embedding {:?}, position embedding {:?} for vocabulary {vocab}, d_model {d_model}, {sequence_length} positions",
                model.token_embedding.dim(),
                model.position_embedding.dim()
            ),
        ));
    }
    let d_head = d_model / heads;
    let length = sequence_length as i64;
    let mut builder = Builder {
        graph: GraphProto::new(),
        model: name,
    };
    builder.graph.name = name.into();
    builder
        .graph
        .input
        .push(batch_value(INPUT_NAME, sequence_length));
    builder.graph.node.push(node(
        "Cast",
        &[INPUT_NAME],
        "token_ids",
        // TensorProto.DataType INT64.
        vec![int_attribute("to", 7)],
    ));
    builder.graph.initializer.push(float_tensor(
        "token_embedding",
        &[vocab, d_model],
        model.token_embedding.iter().copied(),
    ));
    builder.graph.initializer.push(float_tensor(
        "position_embedding",
        &[sequence_length, d_model],
        model
            .position_embedding
            .rows()
            .into_iter()
            .take(sequence_length)
            .flat_map(|row| row.to_vec()),
    ));
    let tokens = builder.push("Gather", &["token_embedding", "token_ids"], "token_vectors");
    let mut residual = builder.push("Add", &[&tokens, "position_embedding"], "embedded");
    // The causal mask: position t sees 0..=t.
    builder.graph.initializer.push(float_tensor(
        "causal_mask",
        &[sequence_length, sequence_length],
        (0..sequence_length * sequence_length).map(|index| {
            let (row, column) = (index / sequence_length, index % sequence_length);
            if column <= row {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        }),
    ));
    let scale = builder.scalar("attention_scale", 1.0 / (d_head as f32).sqrt());
    // `0` copies the batch dimension (Reshape's default allowzero = 0).
    builder.graph.initializer.push(int64_tensor(
        "split_heads_shape",
        &[0, length, heads as i64, d_head as i64],
    ));
    builder.graph.initializer.push(int64_tensor(
        "merge_heads_shape",
        &[0, length, d_model as i64],
    ));
    for (index, block) in model.blocks.iter().enumerate() {
        let prefix = format!("block{index}");
        let normed =
            builder.layer_norm(&format!("{prefix}_ln1"), &block.ln1, &residual, d_model)?;
        let mut projected = Vec::new();
        for (part, layer) in [
            ("query", &block.query),
            ("key", &block.key),
            ("value", &block.value),
        ] {
            let output = builder.linear(&format!("{prefix}_{part}"), layer, &normed, d_model)?;
            if layer.out_features() != d_model {
                return Err(export_error(
                    name,
                    format!(
                        "{prefix}_{part}: {} outputs, d_model {d_model}",
                        layer.out_features()
                    ),
                ));
            }
            let split = builder.push(
                "Reshape",
                &[&output, "split_heads_shape"],
                &format!("{prefix}_{part}_heads"),
            );
            projected.push(split);
        }
        let queries = builder.transpose(&projected[0], &[0, 2, 1, 3], &format!("{prefix}_q"));
        let keys_t = builder.transpose(&projected[1], &[0, 2, 3, 1], &format!("{prefix}_kt"));
        let values = builder.transpose(&projected[2], &[0, 2, 1, 3], &format!("{prefix}_v"));
        let scores = builder.push("MatMul", &[&queries, &keys_t], &format!("{prefix}_scores"));
        let scaled = builder.push("Mul", &[&scores, &scale], &format!("{prefix}_scaled"));
        let masked = builder.push(
            "Add",
            &[&scaled, "causal_mask"],
            &format!("{prefix}_masked"),
        );
        let weights = format!("{prefix}_attention");
        builder.graph.node.push(node(
            "Softmax",
            &[&masked],
            &weights,
            vec![int_attribute("axis", -1)],
        ));
        let mixed = builder.push("MatMul", &[&weights, &values], &format!("{prefix}_mixed"));
        let positions_first =
            builder.transpose(&mixed, &[0, 2, 1, 3], &format!("{prefix}_mixed_t"));
        let merged = builder.push(
            "Reshape",
            &[&positions_first, "merge_heads_shape"],
            &format!("{prefix}_merged"),
        );
        let attended =
            builder.linear(&format!("{prefix}_output"), &block.output, &merged, d_model)?;
        residual = builder.push(
            "Add",
            &[&residual, &attended],
            &format!("{prefix}_residual1"),
        );
        let normed =
            builder.layer_norm(&format!("{prefix}_ln2"), &block.ln2, &residual, d_model)?;
        let hidden = builder.linear(&format!("{prefix}_up"), &block.mlp_up, &normed, d_model)?;
        let activated = builder.gelu(&format!("{prefix}_gelu"), &hidden);
        let down = builder.linear(
            &format!("{prefix}_down"),
            &block.mlp_down,
            &activated,
            block.mlp_up.out_features(),
        )?;
        if block.mlp_down.out_features() != d_model {
            return Err(export_error(
                name,
                format!(
                    "{prefix}_down: {} outputs, d_model {d_model}",
                    block.mlp_down.out_features()
                ),
            ));
        }
        residual = builder.push("Add", &[&residual, &down], &format!("{prefix}_residual2"));
    }
    let normed = builder.layer_norm("ln_final", &model.ln_final, &residual, d_model)?;
    let logits = builder.linear("lm_head", &model.lm_head, &normed, d_model)?;
    if model.lm_head.out_features() != vocab {
        return Err(export_error(
            name,
            format!(
                "lm_head: {} outputs for a vocabulary of {vocab}",
                model.lm_head.out_features()
            ),
        ));
    }
    builder.graph.initializer.push(int64_tensor(
        "flatten_positions_shape",
        &[0, length * vocab as i64],
    ));
    builder.push(
        "Reshape",
        &[&logits, "flatten_positions_shape"],
        OUTPUT_NAME,
    );
    builder
        .graph
        .output
        .push(batch_value(OUTPUT_NAME, sequence_length * vocab));
    Ok(wrap_graph(builder.graph))
}

/// zoo's character transformer as ONNX protobuf bytes (see [`char_transformer_to_model_proto`]).
///
/// # Errors
/// As [`char_transformer_to_model_proto`], plus [`PeersError::Encode`] when the encoder fails.
pub fn char_transformer_to_onnx_bytes(
    name: &str,
    model: &CharTransformer,
    sequence_length: usize,
) -> Result<Vec<u8>, PeersError> {
    encode(
        name,
        &char_transformer_to_model_proto(name, model, sequence_length)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};
    use zoo::{CharTransformerConfig, TransformerBlock};

    fn tiny() -> CharTransformer {
        let d = 8;
        let linear = |inputs: usize, outputs: usize| Linear {
            weight: Array2::from_elem((inputs, outputs), 0.1),
            bias: Array1::zeros(outputs),
        };
        let norm = || LayerNorm {
            gamma: Array1::ones(d),
            beta: Array1::zeros(d),
            eps: 1e-5,
        };
        let config = CharTransformerConfig {
            vocab_size: 5,
            context_length: 6,
            d_model: d,
            n_heads: 2,
            n_layers: 1,
            d_ff: 16,
        };
        CharTransformer {
            vocabulary: "abcde".chars().collect(),
            token_embedding: Array2::from_elem((5, d), 0.5),
            position_embedding: Array2::from_elem((6, d), 0.25),
            blocks: vec![TransformerBlock {
                ln1: norm(),
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                output: linear(d, d),
                ln2: norm(),
                mlp_up: linear(d, 16),
                mlp_down: linear(16, d),
            }],
            ln_final: norm(),
            lm_head: linear(d, 5),
            config,
        }
    }

    #[test]
    fn the_graph_has_the_fixed_length_and_a_causal_mask() {
        let model = tiny();
        let proto = char_transformer_to_model_proto("lm", &model, 4).unwrap();
        let graph = proto.graph.as_ref().unwrap();
        let mask = graph
            .initializer
            .iter()
            .find(|tensor| tensor.name == "causal_mask")
            .unwrap();
        assert_eq!(mask.dims, [4, 4]);
        let value = |index: usize| {
            f32::from_le_bytes(mask.raw_data[4 * index..4 * index + 4].try_into().unwrap())
        };
        // Row 1: sees columns 0 and 1, not 2.
        assert_eq!(value(4 + 1), 0.0);
        assert_eq!(value(4 + 2), f32::NEG_INFINITY);
        let positions = graph
            .initializer
            .iter()
            .find(|tensor| tensor.name == "position_embedding")
            .unwrap();
        assert_eq!(positions.dims, [4, 8]);
        assert!(graph.node.iter().any(|node| node.op_type == "Softmax"));
        assert_eq!(graph.node.last().unwrap().output[0], OUTPUT_NAME);
    }

    #[test]
    fn bad_lengths_and_shapes_are_refused() {
        let model = tiny();
        for length in [0, 7] {
            assert!(matches!(
                char_transformer_to_onnx_bytes("lm", &model, length),
                Err(PeersError::Export { .. })
            ));
        }
        let mut broken = tiny();
        broken.blocks[0].mlp_down = Linear {
            weight: Array2::zeros((15, 8)),
            bias: Array1::zeros(8),
        };
        assert!(matches!(
            char_transformer_to_onnx_bytes("lm", &broken, 4),
            Err(PeersError::Export { .. })
        ));
    }
}
