//! A quantized 2-D convolution over NHWC images: the input is quantized to u8 once, unfolded (im2col) in the
//! u8 domain with the zero point as padding (so padding is exactly real zero), multiplied by per-output-channel
//! int8 weights on the integer GEMM, and dequantized (bias and zero-point correction folded) in one epilogue.

use crate::error::QuantError;
use crate::gemm::kernels::{epilogue, EpilogueOut};
use crate::gemm::{GemmConfig, GemmKernel};
use crate::linear::{quantize_input, ActivationQuant, QuantizedLinear};
use crate::scheme::QuantType;
use ndarray::{Array4, ArrayView1, ArrayView2, ArrayView4};

/// The shape of a convolution, as plain data: the weight matrix it goes with is
/// `(in_channels · kernel_height · kernel_width) × out_channels`, row `(channel · kernel_height + kernel_row) ·
/// kernel_width + kernel_col` (channel-major patches, the im2col order of an NHWC input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels.
    pub in_channels: usize,
    /// Kernel height.
    pub kernel_height: usize,
    /// Kernel width.
    pub kernel_width: usize,
    /// Stride in both directions (> 0).
    pub stride: usize,
    /// Zero padding on each side in both directions.
    pub padding: usize,
}

impl Conv2dGeometry {
    /// Rows of the weight matrix: values in one patch.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_height * self.kernel_width
    }

    /// Output height and width for a `height × width` input, or `None` when the kernel is larger than the
    /// padded input or the stride is 0.
    pub fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let out = |size: usize, kernel: usize| {
            (self.stride > 0 && size + 2 * self.padding >= kernel)
                .then(|| (size + 2 * self.padding - kernel) / self.stride + 1)
        };
        Some((
            out(height, self.kernel_height)?,
            out(width, self.kernel_width)?,
        ))
    }
}

/// A Conv2d with per-output-channel symmetric integer weights and u8 activations (dynamic or static).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedConv2d {
    geometry: Conv2dGeometry,
    linear: QuantizedLinear,
}

impl QuantizedConv2d {
    /// Quantizes `weight` (`patch_len × out_channels`, see [`Conv2dGeometry`]) and `bias` (`out_channels`).
    ///
    /// # Errors
    /// [`QuantError::ShapeMismatch`] when the weight rows are not `geometry.patch_len()` or the bias length is
    /// not the weight's columns; [`QuantError::InvalidParameter`] for a zero stride or kernel size; as
    /// [`QuantizedLinear::new`] otherwise.
    pub fn new(
        weight: ArrayView2<'_, f32>,
        bias: ArrayView1<'_, f32>,
        geometry: Conv2dGeometry,
        weight_qtype: QuantType,
        activation: ActivationQuant,
    ) -> Result<Self, QuantError> {
        if geometry.stride == 0 || geometry.kernel_height == 0 || geometry.kernel_width == 0 {
            return Err(QuantError::InvalidParameter {
                what: "conv geometry",
                reason: format!("stride and kernel sizes must be > 0: {geometry:?}"),
            });
        }
        if weight.nrows() != geometry.patch_len() {
            return Err(QuantError::ShapeMismatch {
                what: "conv weight rows",
                expected: vec![geometry.patch_len()],
                actual: vec![weight.nrows()],
            });
        }
        let linear = QuantizedLinear::new(weight, bias, weight_qtype, activation)?;
        Ok(QuantizedConv2d { geometry, linear })
    }

    /// The geometry.
    pub fn geometry(&self) -> Conv2dGeometry {
        self.geometry
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.linear.out_features()
    }

    /// The underlying quantized matrix (weights, scales, bias, activation parameters).
    pub fn linear(&self) -> &QuantizedLinear {
        &self.linear
    }

    /// Bytes of every buffer (as [`QuantizedLinear::storage_bytes`]; the geometry is five integers of shape,
    /// not data, and is not counted).
    pub fn storage_bytes(&self) -> usize {
        self.linear.storage_bytes()
    }

    /// Convolves an NHWC batch (`batch × height × width × in_channels`); returns NHWC output and the GEMM kernel
    /// that ran.
    ///
    /// # Errors
    /// [`QuantError::ShapeMismatch`] for the wrong channel count or an input smaller than the kernel;
    /// [`QuantError::NonFinite`] for NaN/inf input; kernel selection errors.
    pub fn forward(
        &self,
        x: ArrayView4<'_, f32>,
        config: &GemmConfig,
    ) -> Result<(Array4<f32>, GemmKernel), QuantError> {
        let (batch, height, width, channels) = x.dim();
        let geometry = self.geometry;
        if channels != geometry.in_channels {
            return Err(QuantError::ShapeMismatch {
                what: "conv input channels",
                expected: vec![geometry.in_channels],
                actual: vec![channels],
            });
        }
        let Some((out_height, out_width)) = geometry.output_size(height, width) else {
            return Err(QuantError::ShapeMismatch {
                what: "conv input size (smaller than the kernel after padding)",
                expected: vec![geometry.kernel_height, geometry.kernel_width],
                actual: vec![height + 2 * geometry.padding, width + 2 * geometry.padding],
            });
        };
        let kernel = config.resolve()?;
        let contiguous = x.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let params = self.linear.input_params(kernel, values)?;
        let positions = batch * out_height * out_width;
        let out_channels = self.out_channels();
        let mut output = vec![0f32; positions * out_channels];
        let mut image_codes = Vec::new();
        quantize_input(kernel, values, &params, &mut image_codes);
        let zero_code = u8::try_from(params.zero_point()).expect("u8 activation parameters");
        let columns = im2col_u8(
            &image_codes,
            (batch, height, width, channels),
            &geometry,
            zero_code,
        );
        let mut accumulators = Vec::new();
        self.linear
            .accumulate(kernel, &columns, positions, &mut accumulators)?;
        let (mut offsets, mut multipliers) = (Vec::new(), Vec::new());
        self.linear
            .epilogue_factors(&params, &mut offsets, &mut multipliers)?;
        epilogue(
            kernel,
            &accumulators,
            &offsets,
            &multipliers,
            EpilogueOut::Reals(&mut output, false),
        );
        let output = Array4::from_shape_vec((batch, out_height, out_width, out_channels), output)
            .expect("one value per output");
        Ok((output, kernel))
    }
}

/// The u8 im2col matrix of an NHWC batch of codes: one row per output position (image, output row, output
/// column), one column per (channel, kernel row, kernel column), channel-major; `padding_code` where the window
/// hangs over the border.
fn im2col_u8(
    codes: &[u8],
    (batch, height, width, channels): (usize, usize, usize, usize),
    geometry: &Conv2dGeometry,
    padding_code: u8,
) -> Vec<u8> {
    let (out_height, out_width) = geometry
        .output_size(height, width)
        .expect("checked by the caller");
    let (kernel_height, kernel_width) = (geometry.kernel_height, geometry.kernel_width);
    let patch = geometry.patch_len();
    let mut columns = vec![padding_code; batch * out_height * out_width * patch];
    for (row_idx, column) in columns.chunks_exact_mut(patch.max(1)).enumerate() {
        let image_idx = row_idx / (out_height * out_width);
        let out_row = row_idx / out_width % out_height;
        let out_col = row_idx % out_width;
        for kernel_row in 0..kernel_height {
            let in_row =
                (out_row * geometry.stride + kernel_row) as isize - geometry.padding as isize;
            if !(0 <= in_row && in_row < height as isize) {
                continue;
            }
            for kernel_col in 0..kernel_width {
                let in_col =
                    (out_col * geometry.stride + kernel_col) as isize - geometry.padding as isize;
                if !(0 <= in_col && in_col < width as isize) {
                    continue;
                }
                let pixel =
                    ((image_idx * height + in_row as usize) * width + in_col as usize) * channels;
                for channel in 0..channels {
                    column[(channel * kernel_height + kernel_row) * kernel_width + kernel_col] =
                        codes[pixel + channel];
                }
            }
        }
    }
    columns
}
