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

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use zoo::{Cnn, Conv2d, DsCnn, Mlp, Standardizer};

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

pub(crate) fn export_error(model: &str, reason: impl Into<String>) -> PeersError {
    PeersError::Export {
        model: model.into(),
        reason: reason.into(),
    }
}

pub(crate) fn float_tensor(
    name: &str,
    dims: &[usize],
    values: impl Iterator<Item = f32>,
) -> TensorProto {
    let mut tensor = TensorProto::new();
    tensor.name = name.into();
    tensor.data_type = DataType::FLOAT as i32;
    tensor.dims = dims.iter().map(|&dim| dim as i64).collect();
    // raw_data is little-endian by the ONNX specification, whatever the host.
    tensor.raw_data = values.flat_map(f32::to_le_bytes).collect();
    tensor
}

pub(crate) fn node(
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

pub(crate) fn int_attribute(name: &str, value: i64) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.name = name.into();
    attribute.type_ = AttributeType::INT.into();
    attribute.i = value;
    attribute
}

pub(crate) fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.name = name.into();
    attribute.type_ = AttributeType::INTS.into();
    attribute.ints = values.to_vec();
    attribute
}

/// A float tensor `batch × width` value description.
pub(crate) fn batch_value(name: &str, width: usize) -> ValueInfoProto {
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

pub(crate) fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
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

/// Appends a `Conv` node for zoo's `conv` reading `input` (NCHW); returns its output's name and its
/// (channels, height, width).
fn conv_node(
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
    let (out_height, out_width) = conv.output_size(height, width);
    Ok((conv_output, (conv.out_channels(), out_height, out_width)))
}

/// Appends `Conv → Relu → MaxPool(2)` for `conv` reading `input`; returns the pooled output's name and its
/// (channels, height, width).
fn conv_block(
    graph: &mut GraphProto,
    model: &str,
    prefix: &str,
    conv: &Conv2d,
    input: &str,
    shape: (usize, usize, usize),
) -> Result<(String, (usize, usize, usize)), PeersError> {
    let (conv_output, (channels, out_height, out_width)) =
        conv_node(graph, model, prefix, conv, input, shape)?;
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
    Ok((pool_output, (channels, out_height / 2, out_width / 2)))
}

/// Appends `Sub(mean) → Div(std)` for a standardizer of `width` features reading `input`; returns the
/// standardized output's name.
fn standardize_nodes(
    graph: &mut GraphProto,
    model: &str,
    standardizer: &Standardizer,
    input: &str,
    width: usize,
) -> Result<String, PeersError> {
    if standardizer.mean.len() != width || standardizer.std.len() != width {
        return Err(export_error(
            model,
            format!(
                "standardizer of width {} / {} before an input of {width} features",
                standardizer.mean.len(),
                standardizer.std.len()
            ),
        ));
    }
    graph.initializer.push(float_tensor(
        "standardize_mean",
        &[width],
        standardizer.mean.iter().copied(),
    ));
    graph.initializer.push(float_tensor(
        "standardize_std",
        &[width],
        standardizer.std.iter().copied(),
    ));
    graph
        .node
        .push(node("Sub", &[input, "standardize_mean"], "centred", vec![]));
    graph.node.push(node(
        "Div",
        &["centred", "standardize_std"],
        "standardized",
        vec![],
    ));
    Ok("standardized".into())
}

/// Appends a `Gemm` classifier (zoo's `in × out` weights) reading `input` of `features` columns and
/// writing `output`.
fn classifier_node(
    graph: &mut GraphProto,
    model: &str,
    classifier: &zoo::Linear,
    input: &str,
    features: usize,
    output: &str,
) -> Result<(), PeersError> {
    if classifier.in_features() != features || classifier.bias.len() != classifier.out_features() {
        return Err(export_error(
            model,
            format!(
                "classifier of {} inputs (bias {}) after {features} features",
                classifier.in_features(),
                classifier.bias.len()
            ),
        ));
    }
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
        &[input, "classifier_weight", "classifier_bias"],
        output,
        vec![],
    ));
    Ok(())
}

/// zoo's DS-CNN as an ONNX `ModelProto` (input `batch × (frames · coefficients)`, output
/// `batch × classes`): `Sub`/`Div` standardization, the MFCC window reshaped to NCHW with one channel (the
/// same memory as zoo's NHWC), the strided `Conv` and `Relu`, per block a depthwise `Conv` (`group` =
/// channels, weights `channels × 1 × kh × kw` as zoo stores them) with `Relu` and a 1 × 1 pointwise `Conv`
/// (zoo's `in × out` matrix transposed) with `Relu`, then `GlobalAveragePool`, `Flatten` and the `Gemm`
/// classifier.
///
/// # Errors
/// [`PeersError::Export`] when the layers' shapes do not chain.
pub fn ds_cnn_to_model_proto(name: &str, network: &DsCnn) -> Result<ModelProto, PeersError> {
    let (frames, coefficients) = (network.n_frames, network.n_coefficients);
    let mut graph = GraphProto::new();
    graph.name = name.into();
    graph
        .input
        .push(batch_value(INPUT_NAME, frames * coefficients));
    let standardized = standardize_nodes(
        &mut graph,
        name,
        &network.input_scaling,
        INPUT_NAME,
        frames * coefficients,
    )?;
    graph.initializer.push(int64_tensor(
        "window_shape",
        &[-1, 1, frames as i64, coefficients as i64],
    ));
    graph.node.push(node(
        "Reshape",
        &[&standardized, "window_shape"],
        "window",
        vec![],
    ));
    let (conv_output, mut shape) = conv_node(
        &mut graph,
        name,
        "conv",
        &network.conv,
        "window",
        (1, frames, coefficients),
    )?;
    let mut current = "conv_relu".to_string();
    graph
        .node
        .push(node("Relu", &[&conv_output], &current, vec![]));
    for (index, block) in network.blocks.iter().enumerate() {
        let (channels, height, width) = shape;
        let depthwise = &block.depthwise;
        let taps = depthwise.kernel_height * depthwise.kernel_width;
        if depthwise.weight.dim() != (channels, taps)
            || depthwise.bias.len() != channels
            || height + 2 * depthwise.padding < depthwise.kernel_height
            || width + 2 * depthwise.padding < depthwise.kernel_width
        {
            return Err(export_error(
                name,
                format!(
                    "block {index}: depthwise weight {:?} (bias {}) for {channels} channels of {height} × {width}",
                    depthwise.weight.dim(),
                    depthwise.bias.len()
                ),
            ));
        }
        let prefix = format!("block{index}");
        let weight_name = format!("{prefix}_depthwise_weight");
        let bias_name = format!("{prefix}_depthwise_bias");
        // zoo's `channels × (kh · kw)` in row-major order is ONNX's `channels × 1 × kh × kw`.
        graph.initializer.push(float_tensor(
            &weight_name,
            &[channels, 1, depthwise.kernel_height, depthwise.kernel_width],
            depthwise.weight.iter().copied(),
        ));
        graph.initializer.push(float_tensor(
            &bias_name,
            &[channels],
            depthwise.bias.iter().copied(),
        ));
        let padding = depthwise.padding as i64;
        let depthwise_output = format!("{prefix}_depthwise");
        graph.node.push(node(
            "Conv",
            &[&current, &weight_name, &bias_name],
            &depthwise_output,
            vec![
                ints_attribute(
                    "kernel_shape",
                    &[
                        depthwise.kernel_height as i64,
                        depthwise.kernel_width as i64,
                    ],
                ),
                ints_attribute("pads", &[padding, padding, padding, padding]),
                ints_attribute("strides", &[1, 1]),
                int_attribute("group", channels as i64),
            ],
        ));
        let depthwise_relu = format!("{prefix}_depthwise_relu");
        graph
            .node
            .push(node("Relu", &[&depthwise_output], &depthwise_relu, vec![]));
        let (out_height, out_width) = (
            height + 2 * depthwise.padding - depthwise.kernel_height + 1,
            width + 2 * depthwise.padding - depthwise.kernel_width + 1,
        );
        let pointwise = &block.pointwise;
        if pointwise.in_features() != channels || pointwise.bias.len() != pointwise.out_features() {
            return Err(export_error(
                name,
                format!(
                    "block {index}: pointwise {:?} (bias {}) after {channels} channels",
                    pointwise.weight.dim(),
                    pointwise.bias.len()
                ),
            ));
        }
        let out_channels = pointwise.out_features();
        let pointwise_weight = format!("{prefix}_pointwise_weight");
        let pointwise_bias = format!("{prefix}_pointwise_bias");
        graph.initializer.push(float_tensor(
            &pointwise_weight,
            &[out_channels, channels, 1, 1],
            pointwise.weight.t().iter().copied(),
        ));
        graph.initializer.push(float_tensor(
            &pointwise_bias,
            &[out_channels],
            pointwise.bias.iter().copied(),
        ));
        let pointwise_output = format!("{prefix}_pointwise");
        graph.node.push(node(
            "Conv",
            &[&depthwise_relu, &pointwise_weight, &pointwise_bias],
            &pointwise_output,
            vec![ints_attribute("kernel_shape", &[1, 1])],
        ));
        current = format!("{prefix}_pointwise_relu");
        graph
            .node
            .push(node("Relu", &[&pointwise_output], &current, vec![]));
        shape = (out_channels, out_height, out_width);
    }
    graph
        .node
        .push(node("GlobalAveragePool", &[&current], "pooled", vec![]));
    graph.node.push(node(
        "Flatten",
        &["pooled"],
        "features",
        vec![int_attribute("axis", 1)],
    ));
    classifier_node(
        &mut graph,
        name,
        &network.classifier,
        "features",
        shape.0,
        OUTPUT_NAME,
    )?;
    graph
        .output
        .push(batch_value(OUTPUT_NAME, network.classifier.out_features()));
    Ok(wrap_graph(graph))
}

/// zoo's DS-CNN as ONNX protobuf bytes.
///
/// # Errors
/// As [`ds_cnn_to_model_proto`], plus [`PeersError::Encode`] when the encoder fails.
pub fn ds_cnn_to_onnx_bytes(name: &str, network: &DsCnn) -> Result<Vec<u8>, PeersError> {
    encode(name, &ds_cnn_to_model_proto(name, network)?)
}

/// The encoded bytes of `model`.
pub(crate) fn encode(name: &str, model: &ModelProto) -> Result<Vec<u8>, PeersError> {
    model.write_to_bytes().map_err(|error| PeersError::Encode {
        model: name.into(),
        reason: error.to_string(),
    })
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
    classifier_node(
        &mut graph,
        name,
        classifier,
        "features",
        features,
        OUTPUT_NAME,
    )?;
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
    encode(name, &cnn_to_model_proto(name, cnn)?)
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
            grey_pooling: None,
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
            grey_pooling: None,
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
    fn a_ds_cnn_exports_depthwise_and_pointwise_convolutions_and_refuses_a_broken_chain() {
        let channels = 3;
        let block = || zoo::DepthwiseSeparableBlock {
            depthwise: zoo::DepthwiseConv2d {
                weight: Array2::from_shape_fn((channels, 9), |(row, col)| (row * 9 + col) as f32),
                bias: Array1::zeros(channels),
                kernel_height: 3,
                kernel_width: 3,
                padding: 1,
            },
            pointwise: layer(channels, channels, 0.0),
        };
        let mut network = DsCnn {
            n_frames: 49,
            n_coefficients: 10,
            input_scaling: Standardizer {
                mean: Array1::zeros(490),
                std: Array1::ones(490),
            },
            conv: zoo::Conv2d {
                weight: Array2::zeros((40, channels)),
                bias: Array1::zeros(channels),
                in_channels: 1,
                kernel_height: 10,
                kernel_width: 4,
                stride: 2,
                padding: 1,
            },
            blocks: vec![block(), block()],
            classifier: layer(channels, 4, 0.0),
        };
        let model = ds_cnn_to_model_proto("ds_cnn", &network).unwrap();
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
                "Reshape",
                "Conv",
                "Relu",
                "Conv",
                "Relu",
                "Conv",
                "Relu",
                "Conv",
                "Relu",
                "Conv",
                "Relu",
                "GlobalAveragePool",
                "Flatten",
                "Gemm"
            ]
        );
        let depthwise = &graph.node[5];
        let group = depthwise
            .attribute
            .iter()
            .find(|attribute| attribute.name == "group")
            .unwrap();
        assert_eq!(group.i, channels as i64);
        let weight = graph
            .initializer
            .iter()
            .find(|tensor| tensor.name == "block0_depthwise_weight")
            .unwrap();
        assert_eq!(weight.dims, [3, 1, 3, 3]);
        // Channel 1's first tap is zoo's weight[[1, 0]].
        let value = f32::from_le_bytes(weight.raw_data[36..40].try_into().unwrap());
        assert_eq!(value, network.blocks[0].depthwise.weight[[1, 0]]);
        network.blocks[1].pointwise = layer(channels + 1, channels, 0.0);
        assert!(matches!(
            ds_cnn_to_onnx_bytes("ds_cnn", &network),
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
            grey_pooling: None,
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
