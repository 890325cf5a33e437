//! Export: the named candle tensors of a trained (or cached) model → the ndarray models of [`crate::models`],
//! with every missing tensor or wrong shape a [`ZooError::Weights`] naming the model and the tensor.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use ndarray::{Array1, Array2};

use super::cnn::CnnShape;
use super::ds_cnn::{DsCnnShape, DS_CNN_KERNEL, DS_CNN_PADDING, DS_CNN_STRIDE};
use super::transformer::LAYER_NORM_EPS;
use crate::layers::{Conv2d, DepthwiseConv2d, LayerNorm, Linear, Standardizer};
use crate::models::{
    CharTransformer, CharTransformerConfig, Cnn, DepthwiseSeparableBlock, DsCnn, Mlp,
    TransformerBlock,
};
use crate::ZooError;

fn weights_error(model: &str, reason: String) -> ZooError {
    ZooError::Weights {
        model: model.into(),
        reason,
    }
}

fn tensor<'a>(
    tensors: &'a HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<&'a Tensor, ZooError> {
    tensors
        .get(name)
        .ok_or_else(|| weights_error(model, format!("missing tensor {name}")))
}

fn array2(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Array2<f32>, ZooError> {
    let value = tensor(tensors, model, name)?;
    let (rows, cols) = value
        .dims2()
        .map_err(|error| weights_error(model, format!("{name}: {error}")))?;
    let data = value
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Array2::from_shape_vec((rows, cols), data)
        .map_err(|error| weights_error(model, format!("{name}: {error}")))
}

fn array1(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Array1<f32>, ZooError> {
    let value = tensor(tensors, model, name)?;
    if value.rank() != 1 {
        return Err(weights_error(
            model,
            format!("{name} has rank {}, expected 1", value.rank()),
        ));
    }
    Ok(Array1::from_vec(
        value.to_dtype(DType::F32)?.to_vec1::<f32>()?,
    ))
}

fn linear(tensors: &HashMap<String, Tensor>, model: &str, name: &str) -> Result<Linear, ZooError> {
    let weight = array2(tensors, model, &format!("{name}.weight"))?;
    let bias = array1(tensors, model, &format!("{name}.bias"))?;
    if bias.len() != weight.ncols() {
        return Err(weights_error(
            model,
            format!("{name}: bias {} for {} outputs", bias.len(), weight.ncols()),
        ));
    }
    Ok(Linear { weight, bias })
}

fn layer_norm(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<LayerNorm, ZooError> {
    Ok(LayerNorm {
        gamma: array1(tensors, model, &format!("{name}.gamma"))?,
        beta: array1(tensors, model, &format!("{name}.beta"))?,
        eps: LAYER_NORM_EPS,
    })
}

/// A `c_out × c_in × kh × kw` kernel as the `(c_in·kh·kw) × c_out` matrix [`Conv2d`] multiplies by.
fn conv2d(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
    stride: usize,
    padding: usize,
) -> Result<Conv2d, ZooError> {
    let kernel = tensor(tensors, model, &format!("{name}.weight"))?;
    let (out_channels, in_channels, kernel_height, kernel_width) = kernel
        .dims4()
        .map_err(|error| weights_error(model, format!("{name}: {error}")))?;
    let flat = kernel
        .reshape((out_channels, in_channels * kernel_height * kernel_width))?
        .t()?
        .contiguous()?;
    let mut flat_map = HashMap::new();
    flat_map.insert("w".to_string(), flat);
    let weight = array2(&flat_map, model, "w")?;
    let bias = array1(tensors, model, &format!("{name}.bias"))?;
    Ok(Conv2d {
        weight,
        bias,
        in_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
    })
}

pub(crate) fn export_mlp(tensors: &HashMap<String, Tensor>, model: &str) -> Result<Mlp, ZooError> {
    let mut layers = Vec::new();
    while tensors.contains_key(&format!("layers.{}.weight", layers.len())) {
        layers.push(linear(tensors, model, &format!("layers.{}", layers.len()))?);
    }
    if layers.is_empty() {
        return Err(weights_error(model, "no layers.0.weight".into()));
    }
    Ok(Mlp { layers })
}

/// A tap-major `3 × 3 × in × out` kernel (as `conv3x3_pool_relu_nhwc` trains it) as a [`Conv2d`] with padding 1.
fn conv3x3_from_tap_major(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Conv2d, ZooError> {
    let kernel = tensor(tensors, model, &format!("{name}.weight"))?;
    let dims = kernel.dims().to_vec();
    if dims.len() != 4 || dims[0] != 3 || dims[1] != 3 {
        return Err(weights_error(
            model,
            format!("{name}.weight has shape {dims:?}, expected 3x3xinxout"),
        ));
    }
    // (kh, kw, in, out) → (out, in, kh, kw), the layout `conv2d` below converts.
    let mut converted = HashMap::new();
    converted.insert(
        format!("{name}.weight"),
        kernel.permute((3, 2, 0, 1))?.contiguous()?,
    );
    converted.insert(
        format!("{name}.bias"),
        tensor(tensors, model, &format!("{name}.bias"))?.clone(),
    );
    conv2d(&converted, model, name, 1, 1)
}

pub(crate) fn export_cnn(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    shape: CnnShape,
) -> Result<Cnn, ZooError> {
    Ok(Cnn {
        image_height: shape.image_height,
        image_width: shape.image_width,
        conv1: conv3x3_from_tap_major(tensors, model, "conv1")?,
        conv2: conv3x3_from_tap_major(tensors, model, "conv2")?,
        classifier: linear(tensors, model, "classifier")?,
    })
}

pub(crate) fn export_ds_cnn(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    shape: DsCnnShape,
) -> Result<DsCnn, ZooError> {
    let blocks = (0..shape.n_blocks)
        .map(|block_idx| {
            Ok(DepthwiseSeparableBlock {
                depthwise: DepthwiseConv2d {
                    weight: array2(
                        tensors,
                        model,
                        &format!("blocks.{block_idx}.depthwise.weight"),
                    )?,
                    bias: array1(
                        tensors,
                        model,
                        &format!("blocks.{block_idx}.depthwise.bias"),
                    )?,
                    kernel_height: 3,
                    kernel_width: 3,
                    padding: 1,
                },
                pointwise: linear(tensors, model, &format!("blocks.{block_idx}.pointwise"))?,
            })
        })
        .collect::<Result<_, ZooError>>()?;
    Ok(DsCnn {
        n_frames: shape.n_frames,
        n_coefficients: shape.n_coefficients,
        input_scaling: Standardizer {
            mean: array1(tensors, model, "input_scaling.mean")?,
            std: array1(tensors, model, "input_scaling.std")?,
        },
        conv: Conv2d {
            weight: array2(tensors, model, "conv.weight")?,
            bias: array1(tensors, model, "conv.bias")?,
            in_channels: 1,
            kernel_height: DS_CNN_KERNEL.0,
            kernel_width: DS_CNN_KERNEL.1,
            stride: DS_CNN_STRIDE,
            padding: DS_CNN_PADDING,
        },
        blocks,
        classifier: linear(tensors, model, "classifier")?,
    })
}

pub(crate) fn export_char_transformer(
    tensors: &HashMap<String, Tensor>,
    config: &CharTransformerConfig,
    vocabulary: Vec<char>,
) -> Result<CharTransformer, ZooError> {
    let model = "char-transformer";
    if vocabulary.len() != config.vocab_size {
        return Err(weights_error(
            model,
            format!(
                "{} characters for vocab_size {}",
                vocabulary.len(),
                config.vocab_size
            ),
        ));
    }
    let blocks = (0..config.n_layers)
        .map(|layer_idx| {
            let name = |part: &str| format!("blocks.{layer_idx}.{part}");
            Ok(TransformerBlock {
                ln1: layer_norm(tensors, model, &name("ln1"))?,
                query: linear(tensors, model, &name("query"))?,
                key: linear(tensors, model, &name("key"))?,
                value: linear(tensors, model, &name("value"))?,
                output: linear(tensors, model, &name("output"))?,
                ln2: layer_norm(tensors, model, &name("ln2"))?,
                mlp_up: linear(tensors, model, &name("mlp_up"))?,
                mlp_down: linear(tensors, model, &name("mlp_down"))?,
            })
        })
        .collect::<Result<_, ZooError>>()?;
    Ok(CharTransformer {
        config: config.clone(),
        vocabulary,
        token_embedding: array2(tensors, model, "token_embedding")?,
        position_embedding: array2(tensors, model, "position_embedding")?,
        blocks,
        ln_final: layer_norm(tensors, model, "ln_final")?,
        lm_head: linear(tensors, model, "lm_head")?,
    })
}
