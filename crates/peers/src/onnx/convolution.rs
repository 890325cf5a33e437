//! Export of zoo's convolutional networks (the two-convolution CNN and the DS-CNN) as ONNX graphs.

use onnx_protobuf::{GraphProto, ModelProto};
use zoo::{Cnn, Conv2d, DsCnn};

use crate::error::PeersError;

use super::nodes::{
    batch_value, classifier_node, export_error, float_tensor, int64_tensor, int_attribute,
    ints_attribute, node, standardize_nodes,
};
use super::{encode, wrap_graph, INPUT_NAME, OUTPUT_NAME};

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
