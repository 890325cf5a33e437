//! ONNX export of the reference models' fully connected networks (opset 13, IR version 7), through the
//! messages generated from `onnx.proto` by the `onnx-protobuf` crate.
//!
//! Graph of an exported network: an optional grey pooling ([`GreyPooling`]: `Reshape`, `ReduceMean`,
//! `Reshape`), an optional standardization (`Sub` mean, `Div` std), then per layer a
//! `Gemm` (weights `in × out` as zoo stores them, bias broadcast) followed by `Relu` except after the last
//! layer; for an anomaly scorer the head `Sub(reconstruction, input)`, `Mul` by itself and
//! `ReduceMean(axes = [1], keepdims = 1)`: the per-row mean squared reconstruction error, the same score as
//! olympics' `AnomalyScorer`. The batch dimension is symbolic (`batch`).
//!
//! zoo's two-convolution CNN ([`cnn_to_onnx_bytes`]): the grey image row reshaped to NCHW (one channel, so
//! the same memory), `Conv` (padding and stride as zoo's, weights reordered from zoo's im2col layout to
//! `out × in × kh × kw`), `Relu`, `MaxPool` 2 × 2 (floor, as zoo's), twice, then `Transpose` to NHWC and
//! `Flatten` (zoo's classifier reads the feature map channels fastest) and the `Gemm` classifier.
//!
//! zoo's DS-CNN ([`ds_cnn_to_onnx_bytes`]): standardization, the strided `Conv`, depthwise (`group` =
//! channels) and pointwise (1 × 1) `Conv`s with `Relu`, `GlobalAveragePool`, `Flatten`, `Gemm`.

use onnx_protobuf::{GraphProto, Message, ModelProto, OperatorSetIdProto};
use zoo::{Mlp, Standardizer};

use crate::error::PeersError;

mod convolution;
mod nodes;
#[cfg(test)]
mod tests;

pub use convolution::{
    cnn_to_model_proto, cnn_to_onnx_bytes, ds_cnn_to_model_proto, ds_cnn_to_onnx_bytes,
};
use nodes::standardize_nodes;
pub(crate) use nodes::{
    batch_value, export_error, float_tensor, int64_tensor, int_attribute, ints_attribute, node,
};

/// The operator set every export declares.
pub const OPSET_VERSION: i64 = 13;
/// The IR version that goes with opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;
/// Name of the graph's input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph's output.
pub const OUTPUT_NAME: &str = "output";

/// What the network's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnnxHead {
    /// The last layer's outputs as they are (a classifier's logits).
    Logits,
    /// The per-row mean squared difference between the last layer's output and the input (an autoencoder's
    /// anomaly score, `batch × 1`).
    ReconstructionError,
}

/// A fully connected network to export.
#[derive(Debug, Clone, Copy)]
pub struct OnnxExport<'a> {
    /// Name written into the model (and used in errors).
    pub name: &'a str,
    /// The layers.
    pub network: &'a Mlp,
    /// Standardization applied to the input first, when the submission does it.
    pub standardizer: Option<&'a Standardizer>,
    /// Block-average pooling to grey applied to the input first (before any standardization), when the
    /// submission does it (olympics' `InputTransform::PoolGrey`).
    pub grey_pooling: Option<GreyPooling>,
    /// The output.
    pub head: OnnxHead,
}

/// Square interleaved images (`side × side × channels`, channels fastest) averaged over `factor × factor`
/// blocks and over the channels: `batch × (side / factor)²` grey rows. In the graph: `Reshape` to
/// `batch × out × factor × out × factor × channels` and `ReduceMean` over the block and channel axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreyPooling {
    /// Image side in pixels.
    pub side: usize,
    /// Interleaved channels per pixel.
    pub channels: usize,
    /// Block side; divides `side`.
    pub factor: usize,
}

/// The model as an ONNX `ModelProto`.
///
/// # Errors
/// [`PeersError::Export`] for a network without layers, consecutive layers whose widths do not chain, a bias
/// of the wrong length, a standardizer of another width, or a reconstruction head whose output width is
/// not the input width.
pub fn to_model_proto(export: &OnnxExport<'_>) -> Result<ModelProto, PeersError> {
    let name = export.name;
    let layers = &export.network.layers;
    let Some(first) = layers.first() else {
        return Err(export_error(name, "a network without layers"));
    };
    let input_width = first.in_features();
    let mut graph = GraphProto::new();
    graph.name = name.into();
    let mut current = INPUT_NAME.to_string();
    match export.grey_pooling {
        None => graph.input.push(batch_value(INPUT_NAME, input_width)),
        Some(pooling) => {
            let GreyPooling {
                side,
                channels,
                factor,
            } = pooling;
            if factor == 0
                || channels == 0
                || side % factor != 0
                || (side / factor).pow(2) != input_width
            {
                return Err(export_error(
                    name,
                    format!("grey pooling of {side}×{side}×{channels} by {factor} before a layer of {input_width} inputs"),
                ));
            }
            let out = (side / factor) as i64;
            graph
                .input
                .push(batch_value(INPUT_NAME, side * side * channels));
            graph.initializer.push(int64_tensor(
                "pooling_blocks_shape",
                &[-1, out, factor as i64, out, factor as i64, channels as i64],
            ));
            graph
                .initializer
                .push(int64_tensor("pooled_shape", &[-1, input_width as i64]));
            graph.node.push(node(
                "Reshape",
                &[INPUT_NAME, "pooling_blocks_shape"],
                "pooling_blocks",
                vec![],
            ));
            graph.node.push(node(
                "ReduceMean",
                &["pooling_blocks"],
                "pooled_blocks",
                vec![
                    ints_attribute("axes", &[2, 4, 5]),
                    int_attribute("keepdims", 0),
                ],
            ));
            graph.node.push(node(
                "Reshape",
                &["pooled_blocks", "pooled_shape"],
                "pooled",
                vec![],
            ));
            current = "pooled".into();
        }
    }
    let network_input = current.clone();
    if let Some(standardizer) = export.standardizer {
        current = standardize_nodes(&mut graph, name, standardizer, &current, input_width)?;
    }
    let mut width = input_width;
    for (index, layer) in layers.iter().enumerate() {
        if layer.in_features() != width {
            return Err(export_error(
                name,
                format!(
                    "layer {index} takes {} inputs after a width of {width}",
                    layer.in_features()
                ),
            ));
        }
        if layer.bias.len() != layer.out_features() {
            return Err(export_error(
                name,
                format!(
                    "layer {index} has {} outputs and a bias of {}",
                    layer.out_features(),
                    layer.bias.len()
                ),
            ));
        }
        let weight_name = format!("layer{index}_weight");
        let bias_name = format!("layer{index}_bias");
        graph.initializer.push(float_tensor(
            &weight_name,
            &[layer.in_features(), layer.out_features()],
            // Row-major `in × out`, whatever the array's memory order.
            layer.weight.iter().copied(),
        ));
        graph.initializer.push(float_tensor(
            &bias_name,
            &[layer.out_features()],
            layer.bias.iter().copied(),
        ));
        let gemm_output = format!("layer{index}_linear");
        graph.node.push(node(
            "Gemm",
            &[&current, &weight_name, &bias_name],
            &gemm_output,
            vec![],
        ));
        current = gemm_output;
        if index + 1 < layers.len() {
            let relu_output = format!("layer{index}_relu");
            graph
                .node
                .push(node("Relu", &[&current], &relu_output, vec![]));
            current = relu_output;
        }
        width = layer.out_features();
    }
    let output_width = match export.head {
        OnnxHead::Logits => {
            graph
                .node
                .push(node("Identity", &[&current], OUTPUT_NAME, vec![]));
            width
        }
        OnnxHead::ReconstructionError => {
            if width != input_width {
                return Err(export_error(
                    name,
                    format!("reconstruction of width {width} for an input of {input_width}"),
                ));
            }
            graph.node.push(node(
                "Sub",
                &[&current, &network_input],
                "difference",
                vec![],
            ));
            graph.node.push(node(
                "Mul",
                &["difference", "difference"],
                "squared",
                vec![],
            ));
            graph.node.push(node(
                "ReduceMean",
                &["squared"],
                OUTPUT_NAME,
                vec![ints_attribute("axes", &[1]), int_attribute("keepdims", 1)],
            ));
            1
        }
    };
    graph.output.push(batch_value(OUTPUT_NAME, output_width));
    Ok(wrap_graph(graph))
}

/// A model around `graph` with the opset, IR version and producer every export declares.
pub(crate) fn wrap_graph(graph: GraphProto) -> ModelProto {
    let mut opset = OperatorSetIdProto::new();
    opset.domain = String::new();
    opset.version = OPSET_VERSION;
    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    model.opset_import.push(opset);
    model.producer_name = "torchperf-peers".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.graph = Some(graph).into();
    model
}

/// The encoded bytes of `model`.
pub(crate) fn encode(name: &str, model: &ModelProto) -> Result<Vec<u8>, PeersError> {
    model.write_to_bytes().map_err(|error| PeersError::Encode {
        model: name.into(),
        reason: error.to_string(),
    })
}

/// Write already encoded ONNX `bytes` of the model `name` to `path` (a scratch file a peer process loads)
/// and return their size.
///
/// # Errors
/// `Io` when the file cannot be written.
pub fn write_onnx_bytes(
    path: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> Result<usize, PeersError> {
    std::fs::write(path, bytes).map_err(|source| PeersError::Io {
        peer: name.to_string(),
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(bytes.len())
}

/// Write the model's ONNX file to `path` (the scratch file a peer process loads), the only file peers
/// writes, and return its size in bytes.
///
/// # Errors
/// As [`to_onnx_bytes`], or `Io` when the file cannot be written.
pub fn write_onnx(path: &std::path::Path, export: &OnnxExport<'_>) -> Result<usize, PeersError> {
    let bytes = to_onnx_bytes(export)?;
    std::fs::write(path, &bytes).map_err(|source| PeersError::Io {
        peer: export.name.to_string(),
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(bytes.len())
}

/// The model as ONNX protobuf bytes.
///
/// # Errors
/// As [`to_model_proto`], plus [`PeersError::Encode`] when the encoder fails.
pub fn to_onnx_bytes(export: &OnnxExport<'_>) -> Result<Vec<u8>, PeersError> {
    to_model_proto(export)?
        .write_to_bytes()
        .map_err(|error| PeersError::Encode {
            model: export.name.into(),
            reason: error.to_string(),
        })
}
