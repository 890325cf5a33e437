//! One convolution of a conv submission: its weights in one storage (f32, int8 or f16, rows tap-major) and its
//! forward pass on one image — im2col into a reused buffer and one matrix product with the bias as the
//! product's starting value, or the direct loop for a single-channel input at stride 1.

use accel::MatmulConfig;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use quant::{ActivationQuant, GemmConfig, HalfPrecision, HalfTensor, QuantType, QuantizedLinear};
use zoo::{Conv2d, Linear};

use super::feature_maps::{direct_single_channel, im2col_tap_major};
use super::ConvScratch;
use crate::compress::WeightFormat;
use crate::error::{invalid, shape_error, OlympicsError};

/// A convolution's weights in one storage (rows tap-major, `patch × out_channels`).
#[derive(Debug, Clone)]
enum ConvWeights {
    F32(Array2<f32>),
    Int8(QuantizedLinear),
    F16(HalfTensor),
}

/// A 2-D convolution on NHWC rows of one image, as im2col + one product.
#[derive(Debug, Clone)]
pub struct FusedConv2d {
    weights: ConvWeights,
    pub(super) bias: Vec<f32>,
    pub(super) in_channels: usize,
    pub(super) out_channels: usize,
    pub(super) kernel_height: usize,
    pub(super) kernel_width: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
}

fn one_thread() -> MatmulConfig {
    MatmulConfig {
        threads: Some(1),
        ..MatmulConfig::default()
    }
}

impl FusedConv2d {
    fn new(
        weight_channel_major: &Array2<f32>,
        bias: &[f32],
        geometry: [usize; 5],
        format: WeightFormat,
    ) -> Result<Self, OlympicsError> {
        let [in_channels, kernel_height, kernel_width, stride, padding] = geometry;
        let patch = in_channels * kernel_height * kernel_width;
        if weight_channel_major.nrows() != patch
            || bias.len() != weight_channel_major.ncols()
            || stride == 0
        {
            return Err(shape_error(
                "convolution weight",
                format!("{patch} rows, bias of its columns, stride > 0"),
                format!(
                    "{:?}, bias {}, stride {stride}",
                    weight_channel_major.dim(),
                    bias.len()
                ),
            ));
        }
        let out_channels = weight_channel_major.ncols();
        // Row (channel · kh + kernel_row) · kw + kernel_col becomes (kernel_row · kw + kernel_col) · C + channel.
        let mut tap_major = Array2::<f32>::zeros((patch, out_channels));
        for channel in 0..in_channels {
            for kernel_row in 0..kernel_height {
                for kernel_col in 0..kernel_width {
                    let from = (channel * kernel_height + kernel_row) * kernel_width + kernel_col;
                    let to = (kernel_row * kernel_width + kernel_col) * in_channels + channel;
                    tap_major
                        .row_mut(to)
                        .assign(&weight_channel_major.row(from));
                }
            }
        }
        // A single-channel input at stride 1 (the Fashion CNN's first layer: 144 weights) is convolved
        // directly in f32 in every variant: its im2col would write each pixel nine times, one value per
        // store, which costs more than the convolution itself.
        let direct = in_channels == 1 && stride == 1;
        let format = if direct { WeightFormat::F32 } else { format };
        let weights = match format {
            WeightFormat::Int8 => ConvWeights::Int8(QuantizedLinear::new(
                tap_major.view(),
                ndarray::ArrayView1::from(bias),
                QuantType::Int8,
                ActivationQuant::Dynamic,
            )?),
            WeightFormat::F16 => ConvWeights::F16(HalfTensor::from_f32(
                tap_major.view().into_dyn(),
                HalfPrecision::F16,
            )?),
            _ => ConvWeights::F32(tap_major),
        };
        Ok(FusedConv2d {
            weights,
            bias: bias.to_vec(),
            in_channels,
            out_channels,
            kernel_height,
            kernel_width,
            stride,
            padding,
        })
    }

    pub(super) fn from_zoo(layer: &Conv2d, format: WeightFormat) -> Result<Self, OlympicsError> {
        let bias = layer
            .bias
            .as_slice()
            .ok_or_else(|| invalid("conv bias not contiguous"))?;
        Self::new(
            &layer.weight,
            bias,
            [
                layer.in_channels,
                layer.kernel_height,
                layer.kernel_width,
                layer.stride,
                layer.padding,
            ],
            format,
        )
    }

    /// A pointwise (1 × 1) convolution from a Linear applied at every position.
    pub(super) fn pointwise(layer: &Linear, format: WeightFormat) -> Result<Self, OlympicsError> {
        let bias = layer
            .bias
            .as_slice()
            .ok_or_else(|| invalid("pointwise bias not contiguous"))?;
        Self::new(
            &layer.weight,
            bias,
            [layer.in_features(), 1, 1, 1, 0],
            format,
        )
    }

    /// Whether the layer is convolved directly (see [`FusedConv2d::new`]).
    fn is_direct(&self) -> bool {
        self.in_channels == 1 && self.stride == 1
    }

    fn is_pointwise(&self) -> bool {
        self.kernel_height == 1 && self.kernel_width == 1 && self.stride == 1 && self.padding == 0
    }

    fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize), OlympicsError> {
        let out = |size: usize, kernel: usize| {
            (size + 2 * self.padding >= kernel)
                .then(|| (size + 2 * self.padding - kernel) / self.stride + 1)
        };
        match (
            out(height, self.kernel_height),
            out(width, self.kernel_width),
        ) {
            (Some(out_height), Some(out_width)) => Ok((out_height, out_width)),
            _ => Err(shape_error(
                "convolution input",
                format!("at least {}×{}", self.kernel_height, self.kernel_width),
                format!("{height}×{width} with padding {}", self.padding),
            )),
        }
    }

    pub(super) fn storage_bytes(&self) -> usize {
        let weights = match &self.weights {
            ConvWeights::F32(weight) => weight.len() * std::mem::size_of::<f32>(),
            // quant's layer holds its own f32 bias (and column sums); `self.bias` is a second copy for the
            // other formats only, so it is not counted here.
            ConvWeights::Int8(layer) => return layer.storage_bytes(),
            ConvWeights::F16(weight) => weight.storage_bytes(),
        };
        weights + std::mem::size_of_val(self.bias.as_slice())
    }

    /// The layer on one `height × width × in_channels` image into `out` (`positions × out_channels`,
    /// resized), ReLU applied when `relu`; returns the output size.
    pub(super) fn forward(
        &self,
        input: &[f32],
        (height, width): (usize, usize),
        relu: bool,
        scratch: &mut ConvScratch,
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize), OlympicsError> {
        if input.len() != height * width * self.in_channels {
            return Err(shape_error(
                "convolution input",
                height * width * self.in_channels,
                input.len(),
            ));
        }
        let (out_height, out_width) = self.output_size(height, width)?;
        let positions = out_height * out_width;
        let patch = self.in_channels * self.kernel_height * self.kernel_width;
        if self.is_direct() {
            if let ConvWeights::F32(weight) = &self.weights {
                let weight = weight
                    .as_slice()
                    .ok_or_else(|| invalid("convolution weight not contiguous"))?;
                out.resize(positions * self.out_channels, 0.0);
                direct_single_channel(
                    self,
                    weight,
                    input,
                    (height, width),
                    (out_height, out_width),
                    out,
                );
                if relu {
                    out.iter_mut().for_each(|value| *value = value.max(0.0));
                }
                return Ok((out_height, out_width));
            }
        }
        let columns: &[f32] = if self.is_pointwise() {
            input
        } else {
            im2col_tap_major(
                self,
                input,
                (height, width),
                (out_height, out_width),
                &mut scratch.columns,
            );
            &scratch.columns
        };
        let a = ArrayView2::from_shape((positions, patch), columns)
            .map_err(|error| shape_error("im2col", patch, error))?;
        out.resize(positions * self.out_channels, 0.0);
        match &self.weights {
            ConvWeights::F32(weight) => {
                self.biased_product(a, weight.view(), out)?;
            }
            ConvWeights::F16(weight) => {
                scratch.widened.resize(patch * self.out_channels, 0.0);
                quant::widen_f16_into(weight, &mut scratch.widened, None)?;
                let widened =
                    ArrayView2::from_shape((patch, self.out_channels), &scratch.widened[..])
                        .map_err(|error| shape_error("widened weight", patch, error))?;
                self.biased_product(a, widened, out)?;
            }
            ConvWeights::Int8(layer) => {
                let c = ArrayViewMut2::from_shape((positions, self.out_channels), &mut out[..])
                    .map_err(|error| shape_error("convolution output", self.out_channels, error))?;
                layer.forward_into(
                    a,
                    c,
                    &GemmConfig {
                        kernel: Some(crate::fused::int8_kernel()?),
                        ..GemmConfig::default()
                    },
                )?;
            }
        }
        if relu {
            out.iter_mut().for_each(|value| *value = value.max(0.0));
        }
        Ok((out_height, out_width))
    }

    /// `out = a · weight + bias`: the output starts as the bias and the GEMM accumulates into it.
    fn biased_product(
        &self,
        a: ArrayView2<'_, f32>,
        weight: ArrayView2<'_, f32>,
        out: &mut [f32],
    ) -> Result<(), OlympicsError> {
        for row in out.chunks_exact_mut(self.out_channels) {
            row.copy_from_slice(&self.bias);
        }
        let c = ArrayViewMut2::from_shape((a.nrows(), self.out_channels), out)
            .map_err(|error| shape_error("convolution output", self.out_channels, error))?;
        accel::matmul_into_with(a, weight, c, true, &one_thread())?;
        Ok(())
    }
}
