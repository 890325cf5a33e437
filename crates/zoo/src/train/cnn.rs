//! The small image CNN under training (two 3 × 3 convolutions with ReLU and 2 × 2 max pooling, then a
//! classifier), written for candle's speed on the CPU: im2col by concatenation, pooling before bias and ReLU.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::params::{apply_linear, im2col_3x3_nhwc, linear_params, ParamStore};
use super::CandleModel;
use crate::ZooError;

/// Shape of the small image CNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnShape {
    /// Image height (a multiple of 4).
    pub image_height: usize,
    /// Image width (a multiple of 4).
    pub image_width: usize,
    /// Channels after the first convolution.
    pub conv1_channels: usize,
    /// Channels after the second convolution.
    pub conv2_channels: usize,
    /// Number of classes.
    pub n_classes: usize,
}

/// A candle CNN of [`CnnShape`].
pub(crate) struct CandleCnn {
    shape: CnnShape,
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    classifier: (Tensor, Tensor),
}

impl CandleCnn {
    pub(crate) fn new(store: &mut ParamStore, shape: CnnShape) -> Result<Self, ZooError> {
        // Kernels are stored `3 × 3 × in × out` (tap-major), the column order of `conv3x3_pool_relu_nhwc`.
        let conv = |store: &mut ParamStore,
                    name: &str,
                    c_in: usize,
                    c_out: usize|
         -> Result<(Tensor, Tensor), ZooError> {
            let bound = 1.0 / ((c_in * 9) as f32).sqrt();
            Ok((
                store.uniform(&format!("{name}.weight"), &[3, 3, c_in, c_out], bound)?,
                store.uniform(&format!("{name}.bias"), &[c_out], bound)?,
            ))
        };
        let conv1 = conv(store, "conv1", 1, shape.conv1_channels)?;
        let conv2 = conv(store, "conv2", shape.conv1_channels, shape.conv2_channels)?;
        let flat = shape.conv2_channels * (shape.image_height / 4) * (shape.image_width / 4);
        let classifier = linear_params(store, "classifier", flat, shape.n_classes)?;
        Ok(CandleCnn {
            shape,
            conv1,
            conv2,
            classifier,
        })
    }
}

/// 3 × 3 convolution (stride 1, zero padding 1, on NHWC), then 2 × 2 max pooling, bias and ReLU: the
/// exported model's `conv → ReLU → maxpool`, reordered for training speed.
///
/// The convolution is im2col by concatenating the nine shifted copies along channels and one matrix multiply
/// (candle's own `conv2d` computes the input gradient with a transposed convolution that is far slower on the CPU).
/// Max pooling commutes with adding a per-channel bias and with ReLU (both are monotone, per channel), so the
/// bias and ReLU run on the pooled map, a quarter of the size; the pooling itself is one reduction over the four
/// window positions, gathered next to each other by one permutation. Together this roughly halves the
/// element-wise work per step, which dominates a CNN this small on the CPU.
fn conv3x3_pool_relu_nhwc(
    x: &Tensor,
    (weight, bias): &(Tensor, Tensor),
) -> Result<Tensor, ZooError> {
    let (batch, height, width, channels) = x.dims4()?;
    let columns = im2col_3x3_nhwc(x)?;
    let out_channels = bias.dim(0)?;
    let kernel = weight.reshape((9 * channels, out_channels))?;
    let (pooled_height, pooled_width) = (height / 2, width / 2);
    let pooled = columns
        .matmul(&kernel)?
        .reshape((batch, pooled_height, 2, pooled_width, 2, out_channels))?
        .permute([0, 1, 3, 2, 4, 5])?
        .contiguous()?
        .reshape((batch * pooled_height * pooled_width, 4, out_channels))?
        .max(1)?;
    Ok(pooled.broadcast_add(bias)?.relu()?.reshape((
        batch,
        pooled_height,
        pooled_width,
        out_channels,
    ))?)
}

impl CandleModel for CandleCnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError> {
        let batch = x.dim(0)?;
        let images = x.reshape((batch, self.shape.image_height, self.shape.image_width, 1))?;
        let hidden = conv3x3_pool_relu_nhwc(&images, &self.conv1)?;
        let hidden = conv3x3_pool_relu_nhwc(&hidden, &self.conv2)?;
        apply_linear(&hidden.flatten_from(1)?, &self.classifier)
    }
}
