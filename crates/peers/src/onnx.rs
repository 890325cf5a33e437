//! ONNX export of the reference models' fully connected networks (opset 13, IR version 7), through the
//! messages generated from `onnx.proto` by the `onnx-protobuf` crate.
//!
//! Graph of an exported network: an optional standardization (`Sub` mean, `Div` std), then per layer a
//! `Gemm` (weights `in × out` as zoo stores them, bias broadcast) followed by `Relu` except after the last
//! layer; for an anomaly scorer the head `Sub(reconstruction, input)`, `Mul` by itself and
//! `ReduceMean(axes = [1], keepdims = 1)`: the per-row mean squared reconstruction error, the same score as
//! olympics' `AnomalyScorer`. The batch dimension is symbolic (`batch`).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use zoo::{Mlp, Standardizer};

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
    let mut opset = OperatorSetIdProto::new();
    opset.domain = String::new();
    opset.version = OPSET_VERSION;
    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    model.opset_import.push(opset);
    model.producer_name = "torchperf-peers".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.graph = Some(graph).into();
    Ok(model)
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
