//! The DS-CNN keyword spotter under training (MLPerf Tiny's architecture: a strided first convolution, then
//! depthwise-separable blocks, global average pooling and a classifier), with the im2col of its input done once
//! outside the graph and the standardization stored beside its weights.

use candle_core::{DType, Device, Tensor};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::params::{apply_linear, im2col_3x3_nhwc, linear_params, ParamStore};
use super::CandleModel;
use crate::layers::Standardizer;
use crate::ZooError;

/// Shape of the DS-CNN keyword-spotting model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsCnnShape {
    /// Frames per window.
    pub n_frames: usize,
    /// Coefficients per frame.
    pub n_coefficients: usize,
    /// Channels of every layer.
    pub channels: usize,
    /// Depthwise-separable blocks.
    pub n_blocks: usize,
    /// Number of classes.
    pub n_classes: usize,
}

// First convolution of the DS-CNN: MLPerf Tiny's 10 × 4 kernel with stride 2 (padding 1 on every side, as
// candle's conv2d takes one padding for both axes).
pub(crate) const DS_CNN_KERNEL: (usize, usize) = (10, 4);
pub(crate) const DS_CNN_STRIDE: usize = 2;
pub(crate) const DS_CNN_PADDING: usize = 1;

/// A candle DS-CNN of [`DsCnnShape`].
pub(crate) struct CandleDsCnn {
    shape: DsCnnShape,
    conv: (Tensor, Tensor),
    blocks: Vec<((Tensor, Tensor), (Tensor, Tensor))>,
    classifier: (Tensor, Tensor),
}

/// Output height and width of the DS-CNN's first convolution.
pub(crate) fn ds_cnn_conv_output(shape: &DsCnnShape) -> (usize, usize) {
    let (kernel_height, kernel_width) = DS_CNN_KERNEL;
    (
        (shape.n_frames + 2 * DS_CNN_PADDING - kernel_height) / DS_CNN_STRIDE + 1,
        (shape.n_coefficients + 2 * DS_CNN_PADDING - kernel_width) / DS_CNN_STRIDE + 1,
    )
}

/// The training input of [`CandleDsCnn`]: each window standardized, then unfolded into the im2col patches of
/// the first convolution (one row per window, `positions × kernel taps` columns).
///
/// The first convolution's input is data, which needs no gradient, so its im2col is done once here; candle's
/// strided `conv2d` backward also fails on these shapes (its transposed convolution produces 11 columns for 10).
pub(crate) fn ds_cnn_patches(
    features: ArrayView2<'_, f32>,
    shape: &DsCnnShape,
    scaling: &Standardizer,
) -> Result<Array2<f32>, ZooError> {
    let scaled = scaling.apply(features)?;
    let batch = scaled.nrows();
    let windows = scaled
        .into_shape_with_order((batch, shape.n_frames, shape.n_coefficients, 1))
        .map_err(|error| {
            crate::error::shape_error("DS-CNN windows", "n_frames x n_coefficients", error)
        })?;
    let (kernel_height, kernel_width) = DS_CNN_KERNEL;
    let columns = crate::layers::im2col_nhwc(
        windows.view(),
        kernel_height,
        kernel_width,
        DS_CNN_STRIDE,
        DS_CNN_PADDING,
    );
    let per_window = columns.len() / batch.max(1);
    columns
        .into_shape_with_order((batch, per_window))
        .map_err(|error| crate::error::shape_error("DS-CNN patches", "contiguous", error))
}

impl CandleDsCnn {
    pub(crate) fn new(store: &mut ParamStore, shape: DsCnnShape) -> Result<Self, ZooError> {
        let (kernel_height, kernel_width) = DS_CNN_KERNEL;
        let taps = kernel_height * kernel_width;
        // He (Kaiming) uniform initialization, bound sqrt(6 / fan_in), zero biases: without batch normalization
        // PyTorch's default bound 1/sqrt(fan_in) shrinks the signal about threefold per layer, and the network
        // starts at chance with vanishing gradients.
        let he_bound = |fan_in: usize| (6.0 / fan_in as f32).sqrt();
        // Stored as the (taps × channels) matrix the ndarray `Conv2d` multiplies by (one input channel).
        let conv = (
            store.uniform("conv.weight", &[taps, shape.channels], he_bound(taps))?,
            store.constant("conv.bias", &[shape.channels], 0.0)?,
        );
        let mut blocks = Vec::new();
        for block_idx in 0..shape.n_blocks {
            let depthwise = (
                store.uniform(
                    &format!("blocks.{block_idx}.depthwise.weight"),
                    &[shape.channels, 9],
                    he_bound(9),
                )?,
                store.constant(
                    &format!("blocks.{block_idx}.depthwise.bias"),
                    &[shape.channels],
                    0.0,
                )?,
            );
            let pointwise = (
                store.uniform(
                    &format!("blocks.{block_idx}.pointwise.weight"),
                    &[shape.channels, shape.channels],
                    he_bound(shape.channels),
                )?,
                store.constant(
                    &format!("blocks.{block_idx}.pointwise.bias"),
                    &[shape.channels],
                    0.0,
                )?,
            );
            blocks.push((depthwise, pointwise));
        }
        let classifier = linear_params(store, "classifier", shape.channels, shape.n_classes)?;
        Ok(CandleDsCnn {
            shape,
            conv,
            blocks,
            classifier,
        })
    }
}

/// The standardization as named tensors, stored with the DS-CNN's weights (it is part of the model, untrained).
pub(crate) fn scaling_tensors(scaling: &Standardizer) -> Result<[(String, Tensor); 2], ZooError> {
    Ok([
        (
            "input_scaling.mean".into(),
            Tensor::from_slice(&scaling.mean.to_vec(), scaling.mean.len(), &Device::Cpu)?,
        ),
        (
            "input_scaling.std".into(),
            Tensor::from_slice(&scaling.std.to_vec(), scaling.std.len(), &Device::Cpu)?,
        ),
    ])
}

/// Depthwise 3 × 3 convolution, padding 1, on an NHWC tensor, as one matrix multiply.
///
/// The nine shifted copies are concatenated along channels (im2col, `positions × 9·channels`, tap-major) and
/// multiplied by a `9·channels × channels` matrix that is zero except for `weight[c, tap]` at row
/// `tap·channels + c`, column `c`. The block-diagonal matrix does nine times the arithmetic of a true
/// depthwise product, but a matrix multiply (forward and both gradients) costs far less in candle on the CPU
/// than the broadcast multiply and the sum over the tap axis it replaces, whose backward passes are strided
/// reductions over the whole activation.
fn depthwise_nhwc(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, ZooError> {
    let (batch, height, width, channels) = x.dims4()?;
    let columns = im2col_3x3_nhwc(x)?;
    // weight is channels × 9; as 9 × channels × 1 times the identity it becomes the block-diagonal matrix.
    let identity =
        Tensor::eye(channels, DType::F32, &Device::Cpu)?.reshape((1, channels, channels))?;
    let kernel = weight
        .t()?
        .reshape((9, channels, 1))?
        .broadcast_mul(&identity)?
        .reshape((9 * channels, channels))?;
    Ok(columns
        .matmul(&kernel)?
        .broadcast_add(bias)?
        .reshape((batch, height, width, channels))?)
}

impl CandleModel for CandleDsCnn {
    /// `x`: patches from [`ds_cnn_patches`], `batch × (positions · taps)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError> {
        let batch = x.dim(0)?;
        let (out_height, out_width) = ds_cnn_conv_output(&self.shape);
        let taps = DS_CNN_KERNEL.0 * DS_CNN_KERNEL.1;
        let positions = x.reshape((batch * out_height * out_width, taps))?;
        let mut hidden = apply_linear(&positions, &self.conv)?.relu()?.reshape((
            batch,
            out_height,
            out_width,
            self.shape.channels,
        ))?;
        for ((depthwise_weight, depthwise_bias), pointwise) in &self.blocks {
            let (_, height, width, channels) = hidden.dims4()?;
            let spatial = depthwise_nhwc(&hidden, depthwise_weight, depthwise_bias)?.relu()?;
            let positions = spatial.reshape((batch * height * width, channels))?;
            hidden = apply_linear(&positions, pointwise)?
                .relu()?
                .reshape((batch, height, width, channels))?;
        }
        let pooled = hidden.mean(2)?.mean(1)?;
        apply_linear(&pooled, &self.classifier)
    }
}
