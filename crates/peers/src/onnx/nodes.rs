//! The ONNX graph pieces every export builds from: tensors, nodes, attributes, value descriptions, and
//! the standardization and `Gemm` classifier node groups.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use zoo::Standardizer;

use crate::error::PeersError;

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

/// Appends `Sub(mean) → Div(std)` for a standardizer of `width` features reading `input`; returns the
/// standardized output's name.
pub(super) fn standardize_nodes(
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
pub(super) fn classifier_node(
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
