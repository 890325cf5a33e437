//! ONNX export of the reference models' fully connected networks (opset 13, IR version 7), through the
//! messages generated from `onnx.proto` by the `onnx-protobuf` crate.
//!
//! Graph of an exported network: an optional standardization (`Sub` mean, `Div` std), then per layer a
//! `Gemm` (weights `in × out` as zoo stores them, bias broadcast) followed by `Relu` except after the last
//! layer; for an anomaly scorer the head `Sub(reconstruction, input)`, `Mul` by itself and
//! `ReduceMean(axes = [1], keepdims = 1)`: the per-row mean squared reconstruction error, the same score as
//! olympics' `AnomalyScorer`. The batch dimension is symbolic (`batch`).
//!
//! zoo's two-convolution CNN ([`cnn_to_onnx_bytes`]): the grey image row reshaped to NCHW (one channel, so
//! the same memory), `Conv` (padding and stride as zoo's, weights reordered from zoo's im2col layout to
//! `out × in × kh × kw`), `Relu`, `MaxPool` 2 × 2 (floor, as zoo's), twice, then `Transpose` to NHWC and
//! `Flatten` (zoo's classifier reads the feature map channels fastest) and the `Gemm` classifier.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use zoo::{Cnn, Conv2d, Mlp, Standardizer};

use crate::error::PeersError;

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
    /// The output.
    pub head: OnnxHead,
}

fn export_error(model: &str, reason: impl Into<String>) -> PeersError {
    PeersError::Export {
        model: model.into(),
        reason: reason.into(),
    }
}

fn float_tensor(name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> TensorProto {
    let mut tensor = TensorProto::new();
    tensor.name = name.into();
    tensor.data_type = DataType::FLOAT as i32;
    tensor.dims = dims.iter().map(|&dim| dim as i64).collect();
    // raw_data is little-endian by the ONNX specification, whatever the host.
    tensor.raw_data = values.flat_map(f32::to_le_bytes).collect();
    tensor
}

fn node(
    op_type: &str,
    inputs: &[&str],
    output: &str,
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    let mut node = NodeProto::new();
    node.op_type = op_type.into();
    node.name = output.into();
    node.input = inputs.iter().map(|&input| input.to_string()).collect();
    node.output = vec![output.to_string()];
    node.attribute = attributes;
    node
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.name = name.into();
    attribute.type_ = AttributeType::INT.into();
    attribute.i = value;
    attribute
}

fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.name = name.into();
    attribute.type_ = AttributeType::INTS.into();
    attribute.ints = values.to_vec();
    attribute
}

/// A float tensor `batch × width` value description.
fn batch_value(name: &str, width: usize) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        ..Dimension::default()
    };
    let columns = Dimension {
        value: Some(dimension::Value::DimValue(width as i64)),
        ..Dimension::default()
    };
    let shape = TensorShapeProto {
        dim: vec![batch, columns],
        ..TensorShapeProto::default()
    };
    let tensor = Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: Some(shape).into(),
        ..Tensor::default()
    };
    let value_type = TypeProto {
        value: Some(Value::TensorType(tensor)),
        ..TypeProto::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(value_type).into(),
        ..ValueInfoProto::default()
    }
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
    graph.input.push(batch_value(INPUT_NAME, input_width));
    let mut current = INPUT_NAME.to_string();
    if let Some(standardizer) = export.standardizer {
        if standardizer.mean.len() != input_width || standardizer.std.len() != input_width {
            return Err(export_error(
                name,
                format!(
                    "standardizer of width {} / {} before a layer of {input_width} inputs",
                    standardizer.mean.len(),
                    standardizer.std.len()
                ),
            ));
        }
        graph.initializer.push(float_tensor(
            "standardize_mean",
            &[input_width],
            standardizer.mean.iter().copied(),
        ));
        graph.initializer.push(float_tensor(
            "standardize_std",
            &[input_width],
            standardizer.std.iter().copied(),
        ));
        graph.node.push(node(
            "Sub",
            &[&current, "standardize_mean"],
            "centred",
            vec![],
        ));
        graph.node.push(node(
            "Div",
            &["centred", "standardize_std"],
            "standardized",
            vec![],
        ));
        current = "standardized".into();
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
            graph
                .node
                .push(node("Sub", &[&current, INPUT_NAME], "difference", vec![]));
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
fn wrap_graph(graph: GraphProto) -> ModelProto {
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

fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
    let mut tensor = TensorProto::new();
    tensor.name = name.into();
    tensor.data_type = DataType::INT64 as i32;
    tensor.dims = vec![values.len() as i64];
    tensor.raw_data = values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    tensor
}

/// Appends `Conv → Relu → MaxPool(2)` for `conv` reading `input`; returns the pooled output's name and its
/// (channels, height, width).
fn conv_block(
    graph: &mut GraphProto,
    model: &str,
    prefix: &str,
    conv: &Conv2d,
    input: &str,
    (channels, height, width): (usize, usize, usize),
) -> Result<(String, (usize, usize, usize)), PeersError> {
    let patch = conv.in_channels * conv.kernel_height * conv.kernel_width;
    if conv.in_channels != channels
        || conv.weight.nrows() != patch
        || conv.bias.len() != conv.out_channels()
        || conv.stride == 0
        || height + 2 * conv.padding < conv.kernel_height
        || width + 2 * conv.padding < conv.kernel_width
    {
        return Err(export_error(
            model,
            format!(
                "{prefix}: weight {:?}, bias {}, {} input channels, stride {}, for a {channels} × {height} × {width} input",
                conv.weight.dim(),
                conv.bias.len(),
                conv.in_channels,
                conv.stride
            ),
        ));
    }
    let weight_name = format!("{prefix}_weight");
    let bias_name = format!("{prefix}_bias");
    // zoo's rows are (in channel, kernel row, kernel column), columns the output channels: the transpose
    // read in logical order is ONNX's `out × in × kh × kw`.
    graph.initializer.push(float_tensor(
        &weight_name,
        &[
            conv.out_channels(),
            conv.in_channels,
            conv.kernel_height,
            conv.kernel_width,
        ],
        conv.weight.t().iter().copied(),
    ));
    graph.initializer.push(float_tensor(
        &bias_name,
        &[conv.out_channels()],
        conv.bias.iter().copied(),
    ));
    let padding = conv.padding as i64;
    let stride = conv.stride as i64;
    let conv_output = format!("{prefix}_conv");
    graph.node.push(node(
        "Conv",
        &[input, &weight_name, &bias_name],
        &conv_output,
        vec![
            ints_attribute(
                "kernel_shape",
                &[conv.kernel_height as i64, conv.kernel_width as i64],
            ),
            ints_attribute("pads", &[padding, padding, padding, padding]),
            ints_attribute("strides", &[stride, stride]),
        ],
    ));
    let relu_output = format!("{prefix}_relu");
    graph
        .node
        .push(node("Relu", &[&conv_output], &relu_output, vec![]));
    let pool_output = format!("{prefix}_pool");
    graph.node.push(node(
        "MaxPool",
        &[&relu_output],
        &pool_output,
        vec![
            ints_attribute("kernel_shape", &[2, 2]),
            ints_attribute("strides", &[2, 2]),
        ],
    ));
    let (out_height, out_width) = conv.output_size(height, width);
    Ok((
        pool_output,
        (conv.out_channels(), out_height / 2, out_width / 2),
    ))
}

/// zoo's CNN as an ONNX `ModelProto` (input `batch × (height · width)`, output `batch × classes`).
///
/// # Errors
/// [`PeersError::Export`] when the layers' shapes do not chain.
pub fn cnn_to_model_proto(name: &str, cnn: &Cnn) -> Result<ModelProto, PeersError> {
    let (height, width) = (cnn.image_height, cnn.image_width);
    let mut graph = GraphProto::new();
    graph.name = name.into();
    graph.input.push(batch_value(INPUT_NAME, height * width));
    graph.initializer.push(int64_tensor(
        "image_shape",
        &[-1, 1, height as i64, width as i64],
    ));
    graph.node.push(node(
        "Reshape",
        &[INPUT_NAME, "image_shape"],
        "image",
        vec![],
    ));
    let (pooled, shape) = conv_block(
        &mut graph,
        name,
        "conv1",
        &cnn.conv1,
        "image",
        (1, height, width),
    )?;
    let (pooled, (channels, out_height, out_width)) =
        conv_block(&mut graph, name, "conv2", &cnn.conv2, &pooled, shape)?;
    let features = channels * out_height * out_width;
    let classifier = &cnn.classifier;
    if classifier.in_features() != features || classifier.bias.len() != classifier.out_features() {
        return Err(export_error(
            name,
            format!(
                "classifier of {} inputs (bias {}) after {features} features",
                classifier.in_features(),
                classifier.bias.len()
            ),
        ));
    }
    graph.node.push(node(
        "Transpose",
        &[&pooled],
        "features_nhwc",
        vec![ints_attribute("perm", &[0, 2, 3, 1])],
    ));
    graph.node.push(node(
        "Flatten",
        &["features_nhwc"],
        "features",
        vec![int_attribute("axis", 1)],
    ));
    graph.initializer.push(float_tensor(
        "classifier_weight",
        &[classifier.in_features(), classifier.out_features()],
        classifier.weight.iter().copied(),
    ));
    graph.initializer.push(float_tensor(
        "classifier_bias",
        &[classifier.out_features()],
        classifier.bias.iter().copied(),
    ));
    graph.node.push(node(
        "Gemm",
        &["features", "classifier_weight", "classifier_bias"],
        OUTPUT_NAME,
        vec![],
    ));
    graph
        .output
        .push(batch_value(OUTPUT_NAME, classifier.out_features()));
    Ok(wrap_graph(graph))
}

/// zoo's CNN as ONNX protobuf bytes.
///
/// # Errors
/// As [`cnn_to_model_proto`], plus [`PeersError::Encode`] when the encoder fails.
pub fn cnn_to_onnx_bytes(name: &str, cnn: &Cnn) -> Result<Vec<u8>, PeersError> {
    cnn_to_model_proto(name, cnn)?
        .write_to_bytes()
        .map_err(|error| PeersError::Encode {
            model: name.into(),
            reason: error.to_string(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};
    use zoo::Linear;

    fn layer(inputs: usize, outputs: usize, offset: f32) -> Linear {
        Linear {
            weight: Array2::from_shape_fn((inputs, outputs), |(row, col)| {
                offset + (row * outputs + col) as f32 * 0.01
            }),
            bias: Array1::from_shape_fn(outputs, |col| col as f32 * -0.1),
        }
    }

    #[test]
    fn an_mlp_round_trips_through_the_encoder() {
        let network = Mlp {
            layers: vec![layer(4, 3, 0.5), layer(3, 2, -0.25)],
        };
        let export = OnnxExport {
            name: "tiny",
            network: &network,
            standardizer: None,
            head: OnnxHead::Logits,
        };
        let bytes = to_onnx_bytes(&export).unwrap();
        let decoded = ModelProto::parse_from_bytes(&bytes).unwrap();
        assert_eq!(decoded.opset_import[0].version, OPSET_VERSION);
        let graph = decoded.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.op_type.as_str())
            .collect();
        assert_eq!(ops, ["Gemm", "Relu", "Gemm", "Identity"]);
        let weight = &graph.initializer[0];
        assert_eq!(weight.dims, [4, 3]);
        let first_value = f32::from_le_bytes(weight.raw_data[..4].try_into().unwrap());
        let second_row = f32::from_le_bytes(weight.raw_data[12..16].try_into().unwrap());
        assert_eq!(first_value, 0.5);
        assert_eq!(second_row, network.layers[0].weight[[1, 0]]);
    }

    #[test]
    fn an_autoencoder_gets_the_reconstruction_error_head() {
        let network = Mlp {
            layers: vec![layer(4, 2, 0.1), layer(2, 4, 0.2)],
        };
        let standardizer = Standardizer {
            mean: Array1::zeros(4),
            std: Array1::ones(4),
        };
        let export = OnnxExport {
            name: "ae",
            network: &network,
            standardizer: Some(&standardizer),
            head: OnnxHead::ReconstructionError,
        };
        let model = to_model_proto(&export).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.op_type.as_str())
            .collect();
        assert_eq!(
            ops,
            [
                "Sub",
                "Div",
                "Gemm",
                "Relu",
                "Gemm",
                "Sub",
                "Mul",
                "ReduceMean"
            ]
        );
    }

    #[test]
    fn a_cnn_exports_its_layers_in_order_and_refuses_a_broken_chain() {
        let conv = |in_channels: usize, out_channels: usize| zoo::Conv2d {
            weight: Array2::from_shape_fn((in_channels * 9, out_channels), |(row, col)| {
                (row + col) as f32
            }),
            bias: Array1::zeros(out_channels),
            in_channels,
            kernel_height: 3,
            kernel_width: 3,
            stride: 1,
            padding: 1,
        };
        let mut cnn = zoo::Cnn {
            image_height: 8,
            image_width: 8,
            conv1: conv(1, 2),
            conv2: conv(2, 3),
            classifier: layer(3 * 2 * 2, 5, 0.0),
        };
        let model = cnn_to_model_proto("cnn", &cnn).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.op_type.as_str())
            .collect();
        assert_eq!(
            ops,
            [
                "Reshape",
                "Conv",
                "Relu",
                "MaxPool",
                "Conv",
                "Relu",
                "MaxPool",
                "Transpose",
                "Flatten",
                "Gemm"
            ]
        );
        // The first kernel of output channel 1 is zoo's column 1: rows 0..9 in order.
        let conv1 = graph
            .initializer
            .iter()
            .find(|tensor| tensor.name == "conv1_weight")
            .unwrap();
        assert_eq!(conv1.dims, [2, 1, 3, 3]);
        let value = |index: usize| {
            f32::from_le_bytes(conv1.raw_data[4 * index..4 * index + 4].try_into().unwrap())
        };
        assert_eq!(value(9), cnn.conv1.weight[[0, 1]]);
        assert_eq!(value(10), cnn.conv1.weight[[1, 1]]);
        cnn.classifier = layer(7, 5, 0.0);
        assert!(matches!(
            cnn_to_onnx_bytes("cnn", &cnn),
            Err(PeersError::Export { .. })
        ));
    }

    #[test]
    fn inconsistent_networks_are_refused() {
        let empty = Mlp { layers: vec![] };
        let export = |network| OnnxExport {
            name: "bad",
            network,
            standardizer: None,
            head: OnnxHead::Logits,
        };
        assert!(matches!(
            to_onnx_bytes(&export(&empty)),
            Err(PeersError::Export { .. })
        ));
        let broken_chain = Mlp {
            layers: vec![layer(4, 3, 0.0), layer(2, 2, 0.0)],
        };
        assert!(matches!(
            to_onnx_bytes(&export(&broken_chain)),
            Err(PeersError::Export { .. })
        ));
        let not_an_autoencoder = Mlp {
            layers: vec![layer(4, 3, 0.0)],
        };
        let reconstruction = OnnxExport {
            head: OnnxHead::ReconstructionError,
            ..export(&not_an_autoencoder)
        };
        assert!(matches!(
            to_onnx_bytes(&reconstruction),
            Err(PeersError::Export { .. })
        ));
    }
}
