//! Inference layers on plain ndarray weights; every multiply-accumulate-heavy step goes through
//! [`crate::kernel::matmul`].
//!
//! Feature maps are NHWC (`batch × height × width × channels`): a convolution computed by im2col then comes out
//! of the matrix multiply already in that layout, and a 1 × 1 convolution is a plain matrix multiply.

use ndarray::{s, Array1, Array2, Array4, ArrayView2, ArrayView4, Axis};

use crate::error::shape_error;
use crate::kernel::matmul;
use crate::ZooError;

/// A fully connected layer `y = x · weight + bias`.
///
/// `weight` is `in_features × out_features` (the transpose of PyTorch's layout), so that the forward pass is one
/// call of the kernel with no transpose.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `in_features × out_features`.
    pub weight: Array2<f32>,
    /// `out_features`.
    pub bias: Array1<f32>,
}

impl Linear {
    /// Number of inputs.
    pub fn in_features(&self) -> usize {
        self.weight.nrows()
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.weight.ncols()
    }

    /// `x · weight + bias` for `x` of shape `batch × in_features`.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when `x` has the wrong number of columns or the bias length differs from the output
    /// width.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        if self.bias.len() != self.out_features() {
            return Err(shape_error(
                "Linear bias",
                self.out_features(),
                self.bias.len(),
            ));
        }
        if x.ncols() != self.in_features() {
            return Err(shape_error(
                "Linear input columns",
                self.in_features(),
                x.ncols(),
            ));
        }
        let mut y = matmul(x, self.weight.view())?;
        y += &self.bias;
        Ok(y)
    }
}

/// A 2-D convolution computed as im2col followed by one matrix multiply.
///
/// `weight` is `(in_channels · kernel_height · kernel_width) × out_channels`, rows ordered channel-major then
/// kernel row then kernel column: PyTorch's `out × in × kh × kw` kernel reshaped to `out × (in·kh·kw)` and
/// transposed. Zero padding of `padding` on every side.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// `(in_channels · kernel_height · kernel_width) × out_channels`.
    pub weight: Array2<f32>,
    /// `out_channels`.
    pub bias: Array1<f32>,
    /// Input channels.
    pub in_channels: usize,
    /// Kernel height.
    pub kernel_height: usize,
    /// Kernel width.
    pub kernel_width: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on each side in both directions.
    pub padding: usize,
}

impl Conv2d {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.ncols()
    }

    /// Output height and width for an input of `height × width`.
    ///
    /// # Panics
    /// When `stride` is 0 (a division by zero), and in debug builds when the kernel is larger than the padded
    /// input (an arithmetic underflow; release builds return a meaningless size). These are the inputs
    /// [`Conv2d::forward`] refuses with [`ZooError::Shape`]; the signature stays as it is because callers outside
    /// the library use it on layers that passed `forward`.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let out = |size: usize, kernel: usize| (size + 2 * self.padding - kernel) / self.stride + 1;
        (
            out(height, self.kernel_height),
            out(width, self.kernel_width),
        )
    }

    /// Convolves an NHWC batch; returns NHWC.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when the input channels, weight rows or bias length disagree, or the kernel is larger
    /// than the padded input.
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Result<Array4<f32>, ZooError> {
        let (batch, height, width, channels) = x.dim();
        let patch = self.in_channels * self.kernel_height * self.kernel_width;
        if channels != self.in_channels {
            return Err(shape_error(
                "Conv2d input channels",
                self.in_channels,
                channels,
            ));
        }
        if self.weight.nrows() != patch
            || self.bias.len() != self.out_channels()
            || self.stride == 0
        {
            return Err(shape_error(
                "Conv2d weight",
                format!("{patch} rows, bias {}, stride > 0", self.out_channels()),
                format!(
                    "{:?}, bias {}, stride {}",
                    self.weight.dim(),
                    self.bias.len(),
                    self.stride
                ),
            ));
        }
        if height + 2 * self.padding < self.kernel_height
            || width + 2 * self.padding < self.kernel_width
        {
            return Err(shape_error(
                "Conv2d input size",
                format!(
                    "at least {}x{} after padding",
                    self.kernel_height, self.kernel_width
                ),
                format!("{height}x{width} with padding {}", self.padding),
            ));
        }
        let (out_height, out_width) = self.output_size(height, width);
        let columns = im2col_nhwc(
            x,
            self.kernel_height,
            self.kernel_width,
            self.stride,
            self.padding,
        );
        let mut y = matmul(columns.view(), self.weight.view())?;
        y += &self.bias;
        let out_channels = self.out_channels();
        y.into_shape_with_order((batch, out_height, out_width, out_channels))
            .map_err(|error| shape_error("Conv2d output", "NHWC", error))
    }
}

/// The im2col matrix of an NHWC batch: one row per output position (image-major, then output row, then output
/// column), one column per (input channel, kernel row, kernel column), channel-major; zero where the window hangs
/// over the padding.
///
/// The caller guarantees `stride > 0` and that the kernel fits the padded input.
pub(crate) fn im2col_nhwc(
    x: ArrayView4<'_, f32>,
    kernel_height: usize,
    kernel_width: usize,
    stride: usize,
    padding: usize,
) -> Array2<f32> {
    let (batch, height, width, channels) = x.dim();
    let out_height = (height + 2 * padding - kernel_height) / stride + 1;
    let out_width = (width + 2 * padding - kernel_width) / stride + 1;
    let patch = channels * kernel_height * kernel_width;
    let mut columns = Array2::<f32>::zeros((batch * out_height * out_width, patch));
    for image_idx in 0..batch {
        for out_row in 0..out_height {
            for out_col in 0..out_width {
                let row_idx = (image_idx * out_height + out_row) * out_width + out_col;
                let mut column = columns.row_mut(row_idx);
                for channel in 0..channels {
                    for kernel_row in 0..kernel_height {
                        let in_row = (out_row * stride + kernel_row) as isize - padding as isize;
                        if !(0 <= in_row && in_row < height as isize) {
                            continue;
                        }
                        for kernel_col in 0..kernel_width {
                            let in_col =
                                (out_col * stride + kernel_col) as isize - padding as isize;
                            if !(0 <= in_col && in_col < width as isize) {
                                continue;
                            }
                            let col_idx =
                                (channel * kernel_height + kernel_row) * kernel_width + kernel_col;
                            column[col_idx] =
                                x[[image_idx, in_row as usize, in_col as usize, channel]];
                        }
                    }
                }
            }
        }
    }
    columns
}

/// A depthwise 2-D convolution (one `kernel_height × kernel_width` filter per channel), stride 1, zero padding
/// `padding` on each side. It has no matrix multiply to hand to the kernel; it is a direct loop.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv2d {
    /// `channels × kernel_height × kernel_width`, stored as `channels × (kernel_height · kernel_width)`.
    pub weight: Array2<f32>,
    /// `channels`.
    pub bias: Array1<f32>,
    /// Kernel height.
    pub kernel_height: usize,
    /// Kernel width.
    pub kernel_width: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl DepthwiseConv2d {
    /// Convolves an NHWC batch channel by channel; returns NHWC.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when the weight, bias and input channels disagree or the kernel does not fit.
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Result<Array4<f32>, ZooError> {
        let (batch, height, width, channels) = x.dim();
        if self.weight.dim() != (channels, self.kernel_height * self.kernel_width)
            || self.bias.len() != channels
        {
            return Err(shape_error(
                "DepthwiseConv2d weight",
                format!("{channels}x{}", self.kernel_height * self.kernel_width),
                format!("{:?} with bias {}", self.weight.dim(), self.bias.len()),
            ));
        }
        if height + 2 * self.padding < self.kernel_height
            || width + 2 * self.padding < self.kernel_width
        {
            return Err(shape_error(
                "DepthwiseConv2d input size",
                "kernel fits",
                format!("{height}x{width}"),
            ));
        }
        let out_height = height + 2 * self.padding - self.kernel_height + 1;
        let out_width = width + 2 * self.padding - self.kernel_width + 1;
        let mut y = Array4::<f32>::zeros((batch, out_height, out_width, channels));
        for image_idx in 0..batch {
            for out_row in 0..out_height {
                for out_col in 0..out_width {
                    let mut out_pixel = y.slice_mut(s![image_idx, out_row, out_col, ..]);
                    out_pixel.assign(&self.bias);
                    for kernel_row in 0..self.kernel_height {
                        let in_row = (out_row + kernel_row) as isize - self.padding as isize;
                        if !(0 <= in_row && in_row < height as isize) {
                            continue;
                        }
                        for kernel_col in 0..self.kernel_width {
                            let in_col = (out_col + kernel_col) as isize - self.padding as isize;
                            if !(0 <= in_col && in_col < width as isize) {
                                continue;
                            }
                            let tap = kernel_row * self.kernel_width + kernel_col;
                            let in_pixel =
                                x.slice(s![image_idx, in_row as usize, in_col as usize, ..]);
                            for channel in 0..channels {
                                out_pixel[channel] +=
                                    self.weight[[channel, tap]] * in_pixel[channel];
                            }
                        }
                    }
                }
            }
        }
        Ok(y)
    }
}

/// Layer normalization over the last axis: `(x - mean) / sqrt(var + eps) · gamma + beta`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// Scale, one per feature.
    pub gamma: Array1<f32>,
    /// Shift, one per feature.
    pub beta: Array1<f32>,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// Normalizes each row of `x`.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when the row width differs from `gamma` or `beta`.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        if x.ncols() != self.gamma.len() || self.beta.len() != self.gamma.len() {
            return Err(shape_error("LayerNorm width", self.gamma.len(), x.ncols()));
        }
        let mut y = x.to_owned();
        let width = x.ncols() as f32;
        for mut row in y.rows_mut() {
            let mean = row.sum() / width;
            let variance = row
                .iter()
                .map(|value| (value - mean) * (value - mean))
                .sum::<f32>()
                / width;
            let inverse_std = 1.0 / (variance + self.eps).sqrt();
            for ((value, gamma), beta) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *value = (*value - mean) * inverse_std * gamma + beta;
            }
        }
        Ok(y)
    }
}

/// Per-feature standardization learnt on the training set: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Training mean of each feature.
    pub mean: Array1<f32>,
    /// Training standard deviation of each feature (floored so that it is positive).
    pub std: Array1<f32>,
}

impl Standardizer {
    /// Mean and standard deviation of each column of `features`, the deviation floored at `1e-5`.
    pub fn fit(features: ArrayView2<'_, f32>) -> Standardizer {
        let n_rows = features.nrows().max(1) as f32;
        let mean = features.sum_axis(Axis(0)) / n_rows;
        let centred = &features - &mean;
        let std = ((&centred * &centred).sum_axis(Axis(0)) / n_rows)
            .mapv(|variance| variance.sqrt().max(1e-5));
        Standardizer { mean, std }
    }

    /// Standardizes each row.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when the width differs from the fitted one.
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ZooError> {
        if x.ncols() != self.mean.len() || self.std.len() != self.mean.len() {
            return Err(shape_error(
                "Standardizer width",
                self.mean.len(),
                x.ncols(),
            ));
        }
        Ok((&x - &self.mean) / &self.std)
    }
}

/// `max(x, 0)` in place.
pub fn relu_in_place<D: ndarray::Dimension>(x: &mut ndarray::Array<f32, D>) {
    x.mapv_inplace(|value| value.max(0.0));
}

/// GELU with the tanh approximation (as candle's `gelu` and GPT-2 use).
pub fn gelu(value: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * value * (1.0 + (SQRT_TWO_OVER_PI * (value + 0.044_715 * value * value * value)).tanh())
}

/// Non-overlapping `size × size` max pooling of an NHWC batch (trailing rows/columns that do not fill a window
/// are dropped, as in PyTorch and candle).
///
/// # Panics
/// When `size` is 0 (a window of no pixels; a division by zero). Every caller pools with a constant window
/// (2), so the signature stays as it is.
pub fn max_pool2d(x: ArrayView4<'_, f32>, size: usize) -> Array4<f32> {
    let (batch, height, width, channels) = x.dim();
    let (out_height, out_width) = (height / size, width / size);
    let mut y =
        Array4::<f32>::from_elem((batch, out_height, out_width, channels), f32::NEG_INFINITY);
    for image_idx in 0..batch {
        for out_row in 0..out_height {
            for out_col in 0..out_width {
                let window = x.slice(s![
                    image_idx,
                    out_row * size..(out_row + 1) * size,
                    out_col * size..(out_col + 1) * size,
                    ..
                ]);
                let mut out_pixel = y.slice_mut(s![image_idx, out_row, out_col, ..]);
                for window_row in window.outer_iter() {
                    for in_pixel in window_row.outer_iter() {
                        out_pixel.zip_mut_with(&in_pixel, |best, &value| *best = best.max(value));
                    }
                }
            }
        }
    }
    y
}

/// Mean over height and width of an NHWC batch: `batch × channels`.
///
/// # Errors
/// [`ZooError::Shape`] for a batch of images without pixels (height or width 0): they have no mean.
pub fn global_average_pool(x: ArrayView4<'_, f32>) -> Result<Array2<f32>, ZooError> {
    let (batch, height, width, channels) = x.dim();
    let flat = x.to_shape((batch, height * width, channels)).expect(
        "the same number of elements reshapes in any layout (to_shape copies when it must)",
    );
    flat.mean_axis(Axis(1)).ok_or_else(|| {
        shape_error(
            "global average pool input",
            "at least one pixel",
            format!("{height}x{width}"),
        )
    })
}
