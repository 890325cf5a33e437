//! Unit tests of the ONNX export: node order, weight layout and refused inconsistent networks.

use super::*;
use ndarray::{Array1, Array2};
use zoo::{DsCnn, Linear, Standardizer};

fn layer(inputs: usize, outputs: usize, offset: f32) -> Linear {
    Linear {
        weight: Array2::from_shape_fn((inputs, outputs), |(row, col)| {
            offset + (row * outputs + col) as f32 * 0.01
        }),
        bias: Array1::from_shape_fn(outputs, |col| col as f32 * -0.1),
    }
}

/// The operator of each node of `graph`, in order.
fn op_types(graph: &onnx_protobuf::GraphProto) -> Vec<&str> {
    graph
        .node
        .iter()
        .map(|node| node.op_type.as_str())
        .collect()
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
    let ops = op_types(graph);
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
    assert_eq!(
        op_types(graph).join(" "),
        "Sub Div Gemm Relu Gemm Sub Mul ReduceMean"
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
    assert_eq!(
        op_types(graph).join(" "),
        "Reshape Conv Relu MaxPool Conv Relu MaxPool Transpose Flatten Gemm"
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
    assert_eq!(op_types(graph).join(" "), "Sub Div Reshape Conv Relu Conv Relu Conv Relu Conv Relu Conv Relu GlobalAveragePool Flatten Gemm");
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
