//! The Fashion CNN and the DS-CNN as submissions in f32, int8 and f16, one query at a time with no
//! allocation once warm: every convolution is an im2col into a reused buffer followed by one matrix product
//! (the pointwise convolutions are the product alone), bias and ReLU fused into the product's epilogue or the
//! pooling pass that follows, and the classifier a matrix–vector product (see [`crate::fused`]).
//!
//! - f32: accel's GEMM, one thread, accumulating into an output that starts as the bias;
//! - int8: quant's [`QuantizedLinear`] on the im2col rows (u8 activations with the query's own min–max, the
//!   VNNI GEMM, per-channel dequantization with the bias in one epilogue); the classifier on the int8 GEMV;
//! - f16: the weights stored as f16, widened per query into a reused buffer with F16C (they are small:
//!   4,608 values for the Fashion CNN's second convolution), then the f32 GEMM; the classifier on the f16 GEMV.
//!
//! The Fashion CNN's first convolution (one input channel, 144 weights) is convolved directly in f32 in every
//! variant, and the depthwise 3 × 3 convolutions of the DS-CNN stay f32 in every variant (288 weights per block; a direct
//! loop vectorised over channels): the int8 and f16 variants compress what is a matrix product.
//!
//! Patches are ordered tap-major (kernel row, kernel column, channel), so that im2col copies whole channel
//! runs; zoo's channel-major weight rows are permuted to match once, at construction.

use std::cell::RefCell;

use accel::MatmulConfig;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use quant::{ActivationQuant, GemmConfig, HalfPrecision, HalfTensor, QuantType, QuantizedLinear};
use zoo::{Cnn, Conv2d, DepthwiseConv2d, DsCnn, Linear};

use crate::compress::{CompressedLinear, WeightFormat};
use crate::error::{invalid, shape_error, OlympicsError};
use crate::submission::{Optimization, Submission};

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
    bias: Vec<f32>,
    in_channels: usize,
    out_channels: usize,
    kernel_height: usize,
    kernel_width: usize,
    stride: usize,
    padding: usize,
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

    fn from_zoo(layer: &Conv2d, format: WeightFormat) -> Result<Self, OlympicsError> {
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
    fn pointwise(layer: &Linear, format: WeightFormat) -> Result<Self, OlympicsError> {
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

    fn storage_bytes(&self) -> usize {
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
    fn forward(
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

/// One row per output position, one column per (kernel row, kernel column, channel); zero where the
/// window hangs over the padding.
fn im2col_tap_major(
    layer: &FusedConv2d,
    input: &[f32],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    columns: &mut Vec<f32>,
) {
    let channels = layer.in_channels;
    let patch = channels * layer.kernel_height * layer.kernel_width;
    // Zero everything once (one memset), then copy only the taps inside the image: the valid output columns
    // of each (output row, kernel row, kernel column) form one range, so the inner loop has no bounds test.
    columns.clear();
    columns.resize(out_height * out_width * patch, 0.0);
    let (stride, padding) = (layer.stride, layer.padding);
    for out_row in 0..out_height {
        for kernel_row in 0..layer.kernel_height {
            let Some(in_row) = (out_row * stride + kernel_row).checked_sub(padding) else {
                continue;
            };
            if in_row >= height {
                continue;
            }
            for kernel_col in 0..layer.kernel_width {
                // out_col is valid when 0 ≤ out_col · stride + kernel_col − padding < width.
                let first = padding.saturating_sub(kernel_col).div_ceil(stride);
                let end = (width + padding)
                    .saturating_sub(kernel_col)
                    .div_ceil(stride)
                    .min(out_width);
                let tap_offset = (kernel_row * layer.kernel_width + kernel_col) * channels;
                for out_col in first..end {
                    let in_col = out_col * stride + kernel_col - padding;
                    let source = (in_row * width + in_col) * channels;
                    let target = (out_row * out_width + out_col) * patch + tap_offset;
                    copy_run(
                        &mut columns[target..target + channels],
                        &input[source..source + channels],
                    );
                }
            }
        }
    }
}

/// A stride-1 convolution of a single-channel image, directly: each output position starts as the bias and
/// adds, per tap inside the image, the pixel times that tap's `out_channels` weights (tap-major rows).
fn direct_single_channel(
    layer: &FusedConv2d,
    weight: &[f32],
    input: &[f32],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    out: &mut [f32],
) {
    let channels = layer.out_channels;
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            copy_run(target, &layer.bias);
            for kernel_row in 0..layer.kernel_height {
                let Some(in_row) = (out_row + kernel_row).checked_sub(layer.padding) else {
                    continue;
                };
                if in_row >= height {
                    continue;
                }
                for kernel_col in 0..layer.kernel_width {
                    let Some(in_col) = (out_col + kernel_col).checked_sub(layer.padding) else {
                        continue;
                    };
                    if in_col >= width {
                        continue;
                    }
                    let pixel = input[in_row * width + in_col];
                    let tap = kernel_row * layer.kernel_width + kernel_col;
                    for (acc, &w) in target
                        .iter_mut()
                        .zip(&weight[tap * channels..(tap + 1) * channels])
                    {
                        *acc += pixel * w;
                    }
                }
            }
        }
    }
}

/// Copies a short run of channels. `copy_from_slice` on a run whose length is known only at run time becomes a
/// `memmove` call, which for runs of 1 to 32 values costs more than the copy: one value is assigned, longer
/// runs move in fixed eight-value blocks (inlined vector moves), the rest value by value.
#[inline(always)]
fn copy_run(target: &mut [f32], source: &[f32]) {
    if let ([target_value], [source_value]) = (&mut *target, source) {
        *target_value = *source_value;
        return;
    }
    let mut target_blocks = target.chunks_exact_mut(8);
    let mut source_blocks = source.chunks_exact(8);
    for (target_block, source_block) in (&mut target_blocks).zip(&mut source_blocks) {
        let block: [f32; 8] = source_block.try_into().expect("an eight-value block");
        target_block.copy_from_slice(&block);
    }
    for (target_value, source_value) in target_blocks
        .into_remainder()
        .iter_mut()
        .zip(source_blocks.remainder())
    {
        *target_value = *source_value;
    }
}

/// 2 × 2 max pooling of an `height × width × channels` map then ReLU (`max(relu(x)) = relu(max(x))`),
/// trailing odd rows and columns dropped as zoo does.
fn max_pool2_relu(
    input: &[f32],
    (height, width, channels): (usize, usize, usize),
    out: &mut Vec<f32>,
) -> (usize, usize) {
    let (out_height, out_width) = (height / 2, width / 2);
    out.clear();
    out.resize(out_height * out_width * channels, 0.0);
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let start = ((2 * out_row + dy) * width + 2 * out_col + dx) * channels;
                for (best, &value) in target.iter_mut().zip(&input[start..start + channels]) {
                    *best = best.max(value);
                }
            }
        }
    }
    (out_height, out_width)
}

/// A depthwise convolution (stride 1) with bias and ReLU, direct, channels innermost.
fn depthwise_relu(
    layer: &DepthwiseConv2d,
    tap_major: &[f32],
    input: &[f32],
    (height, width, channels): (usize, usize, usize),
    out: &mut Vec<f32>,
) -> Result<(usize, usize), OlympicsError> {
    let taps = layer.kernel_height * layer.kernel_width;
    if tap_major.len() != taps * channels || layer.bias.len() != channels {
        return Err(shape_error(
            "depthwise weight",
            format!("{channels}×{taps}"),
            format!("{} weights, bias {}", tap_major.len(), layer.bias.len()),
        ));
    }
    if height + 2 * layer.padding < layer.kernel_height
        || width + 2 * layer.padding < layer.kernel_width
    {
        return Err(shape_error(
            "depthwise input",
            "kernel fits",
            format!("{height}×{width}"),
        ));
    }
    let out_height = height + 2 * layer.padding - layer.kernel_height + 1;
    let out_width = width + 2 * layer.padding - layer.kernel_width + 1;
    let Some(bias) = layer.bias.as_slice() else {
        return Err(invalid("depthwise bias not contiguous"));
    };
    out.resize(out_height * out_width * channels, 0.0);
    for out_row in 0..out_height {
        for out_col in 0..out_width {
            let target = &mut out[(out_row * out_width + out_col) * channels..][..channels];
            target.copy_from_slice(bias);
            for kernel_row in 0..layer.kernel_height {
                let in_row = (out_row + kernel_row) as isize - layer.padding as isize;
                if !(0 <= in_row && in_row < height as isize) {
                    continue;
                }
                for kernel_col in 0..layer.kernel_width {
                    let in_col = (out_col + kernel_col) as isize - layer.padding as isize;
                    if !(0 <= in_col && in_col < width as isize) {
                        continue;
                    }
                    let tap = kernel_row * layer.kernel_width + kernel_col;
                    let start = (in_row as usize * width + in_col as usize) * channels;
                    // Weights tap-major, so the channel loop reads three contiguous runs (vectorised).
                    let weights = &tap_major[tap * channels..(tap + 1) * channels];
                    for ((acc, &value), &weight) in target
                        .iter_mut()
                        .zip(&input[start..start + channels])
                        .zip(weights)
                    {
                        *acc += weight * value;
                    }
                }
            }
            target.iter_mut().for_each(|value| *value = value.max(0.0));
        }
    }
    Ok((out_height, out_width))
}

/// Per-thread buffers of a query: two feature maps, the im2col matrix, widened f16 weights.
#[derive(Default)]
struct ConvScratch {
    ping: Vec<f32>,
    pong: Vec<f32>,
    columns: Vec<f32>,
    widened: Vec<f32>,
}

thread_local! {
    static CONV_SCRATCH: RefCell<ConvScratch> = RefCell::new(ConvScratch::default());
}

/// One depthwise-separable block.
#[derive(Debug, Clone)]
struct FusedBlock {
    depthwise: DepthwiseConv2d,
    /// The depthwise weights transposed to `taps × channels`.
    depthwise_tap_major: Vec<f32>,
    pointwise: FusedConv2d,
}

/// Which network.
#[derive(Debug, Clone)]
enum Network {
    Cnn {
        image_height: usize,
        image_width: usize,
        conv1: FusedConv2d,
        conv2: FusedConv2d,
    },
    DsCnn {
        n_frames: usize,
        n_coefficients: usize,
        mean: Vec<f32>,
        std: Vec<f32>,
        conv: FusedConv2d,
        blocks: Vec<FusedBlock>,
    },
}

/// A CNN or DS-CNN submission in one weight format.
#[derive(Debug, Clone)]
pub struct ConvClassifier {
    /// Name.
    pub name: String,
    format: WeightFormat,
    network: Network,
    classifier: CompressedLinear,
}

fn classifier_of(layer: &Linear, format: WeightFormat) -> Result<CompressedLinear, OlympicsError> {
    CompressedLinear::new(layer, format)
}

impl ConvClassifier {
    /// zoo's Fashion CNN in `format` (f32, int8 or f16).
    ///
    /// # Errors
    /// Shape errors in the model; quant's errors (non-finite weights).
    pub fn from_cnn(name: &str, cnn: &Cnn, format: WeightFormat) -> Result<Self, OlympicsError> {
        Ok(ConvClassifier {
            name: name.into(),
            format,
            network: Network::Cnn {
                image_height: cnn.image_height,
                image_width: cnn.image_width,
                conv1: FusedConv2d::from_zoo(&cnn.conv1, format)?,
                conv2: FusedConv2d::from_zoo(&cnn.conv2, format)?,
            },
            classifier: classifier_of(&cnn.classifier, format)?,
        })
    }

    /// zoo's DS-CNN in `format` (f32, int8 or f16; the depthwise convolutions stay f32).
    ///
    /// # Errors
    /// As [`ConvClassifier::from_cnn`].
    pub fn from_ds_cnn(
        name: &str,
        network: &DsCnn,
        format: WeightFormat,
    ) -> Result<Self, OlympicsError> {
        let (Some(mean), Some(std)) = (
            network.input_scaling.mean.as_slice(),
            network.input_scaling.std.as_slice(),
        ) else {
            return Err(invalid("standardizer not contiguous"));
        };
        Ok(ConvClassifier {
            name: name.into(),
            format,
            network: Network::DsCnn {
                n_frames: network.n_frames,
                n_coefficients: network.n_coefficients,
                mean: mean.to_vec(),
                std: std.to_vec(),
                conv: FusedConv2d::from_zoo(&network.conv, format)?,
                blocks: network
                    .blocks
                    .iter()
                    .map(|block| {
                        Ok(FusedBlock {
                            // The geometry and bias; the weights live only in the tap-major copy.
                            depthwise: DepthwiseConv2d {
                                weight: Array2::zeros((0, 0)),
                                ..block.depthwise.clone()
                            },
                            depthwise_tap_major: block
                                .depthwise
                                .weight
                                .t()
                                .iter()
                                .copied()
                                .collect(),
                            pointwise: FusedConv2d::pointwise(&block.pointwise, format)?,
                        })
                    })
                    .collect::<Result<Vec<_>, OlympicsError>>()?,
            },
            classifier: classifier_of(&network.classifier, format)?,
        })
    }

    /// What computes each stage (convolutions by storage, the classifier's row kernel).
    ///
    /// # Errors
    /// As the forward pass.
    pub fn kernels(&self) -> Result<String, OlympicsError> {
        let products = match self.format {
            WeightFormat::Int8 => {
                format!("int8 GEMM {} (im2col)", GemmConfig::default().resolve()?)
            }
            WeightFormat::F16 => format!(
                "f16 widened ({}) + f32 GEMM (im2col)",
                quant::HalfGemvKernel::resolve(None)?
            ),
            _ => "f32 GEMM (im2col, accel, one thread)".to_string(),
        };
        let depthwise = if matches!(self.network, Network::DsCnn { .. }) {
            "; depthwise f32 direct"
        } else {
            "; first (single-channel) convolution f32 direct"
        };
        let zeros = vec![0.0; self.classifier.in_features()];
        let mut logits = vec![0.0; self.classifier.out_features()];
        let classifier = self
            .classifier
            .forward_row_into(&zeros, &mut logits, false)?;
        Ok(format!(
            "convolutions: {products}{depthwise}; classifier: {classifier}"
        ))
    }

    fn input_width(&self) -> usize {
        match &self.network {
            Network::Cnn {
                image_height,
                image_width,
                ..
            } => image_height * image_width,
            Network::DsCnn {
                n_frames,
                n_coefficients,
                ..
            } => n_frames * n_coefficients,
        }
    }

    /// Logits of one query into `out`.
    fn classify_row(&self, row: &[f32], out: &mut [f32]) -> Result<(), OlympicsError> {
        if row.len() != self.input_width() {
            return Err(shape_error("query row", self.input_width(), row.len()));
        }
        // NaN or infinity is bad input for every format (max pooling would otherwise drop a NaN silently):
        // `v · 0` is 0 for every finite value, so one vectorisable sum finds them.
        if row.iter().map(|value| value * 0.0).sum::<f32>() != 0.0 {
            return Err(invalid("query holds NaN or infinity"));
        }
        CONV_SCRATCH.with_borrow_mut(|scratch| {
            let mut ping = std::mem::take(&mut scratch.ping);
            let mut pong = std::mem::take(&mut scratch.pong);
            let result = self.classify_row_with(row, out, scratch, &mut ping, &mut pong);
            scratch.ping = ping;
            scratch.pong = pong;
            result
        })
    }

    fn classify_row_with(
        &self,
        row: &[f32],
        out: &mut [f32],
        scratch: &mut ConvScratch,
        ping: &mut Vec<f32>,
        pong: &mut Vec<f32>,
    ) -> Result<(), OlympicsError> {
        match &self.network {
            Network::Cnn {
                image_height,
                image_width,
                conv1,
                conv2,
            } => {
                let size =
                    conv1.forward(row, (*image_height, *image_width), false, scratch, ping)?;
                let size = max_pool2_relu(ping, (size.0, size.1, conv1.out_channels), pong);
                let size = conv2.forward(pong, size, false, scratch, ping)?;
                max_pool2_relu(ping, (size.0, size.1, conv2.out_channels), pong);
                self.classifier.forward_row_into(pong, out, false)?;
            }
            Network::DsCnn {
                n_frames,
                n_coefficients,
                mean,
                std,
                conv,
                blocks,
            } => {
                if mean.len() != row.len() || std.len() != row.len() {
                    return Err(shape_error("standardized row", mean.len(), row.len()));
                }
                pong.clear();
                pong.extend(
                    row.iter()
                        .zip(mean)
                        .zip(std)
                        .map(|((&value, &m), &s)| (value - m) / s),
                );
                let mut size =
                    conv.forward(pong, (*n_frames, *n_coefficients), true, scratch, ping)?;
                let mut channels = conv.out_channels;
                for block in blocks {
                    size = depthwise_relu(
                        &block.depthwise,
                        &block.depthwise_tap_major,
                        ping,
                        (size.0, size.1, channels),
                        pong,
                    )?;
                    size = block.pointwise.forward(pong, size, true, scratch, ping)?;
                    channels = block.pointwise.out_channels;
                }
                // Global average pooling over the positions.
                let positions = (size.0 * size.1).max(1);
                pong.clear();
                pong.resize(channels, 0.0);
                for position in ping.chunks_exact(channels) {
                    for (sum, &value) in pong.iter_mut().zip(position) {
                        *sum += value;
                    }
                }
                let scale = 1.0 / positions as f32;
                pong.iter_mut().for_each(|value| *value *= scale);
                self.classifier.forward_row_into(pong, out, false)?;
            }
        }
        Ok(())
    }

    fn rows_into(
        &self,
        batch: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        let classes = self.classifier.out_features();
        if output.dim() != (batch.nrows(), classes) {
            return Err(OlympicsError::OutputShape {
                submission: self.name.clone(),
                expected: [batch.nrows(), classes],
                actual: vec![output.nrows(), output.ncols()],
            });
        }
        let batch = batch.as_standard_layout();
        for index in 0..batch.nrows() {
            let row = batch
                .row(index)
                .to_slice()
                .ok_or_else(|| invalid("query rows not contiguous"))?;
            let mut target = output.row_mut(index);
            let out = target
                .as_slice_mut()
                .ok_or_else(|| invalid("output rows not contiguous"))?;
            self.classify_row(row, out)?;
        }
        Ok(())
    }
}

/// The batch-1 variants entered beside zoo's own f32 model: `{prefix}_f32_fused`, `{prefix}_int8` and
/// `{prefix}_f16` of the Fashion CNN.
///
/// # Errors
/// As [`ConvClassifier::from_cnn`].
pub fn cnn_variants(cnn: &Cnn, prefix: &str) -> Result<Vec<ConvClassifier>, OlympicsError> {
    VARIANTS
        .iter()
        .map(|(suffix, format)| {
            ConvClassifier::from_cnn(&format!("{prefix}_{suffix}"), cnn, *format)
        })
        .collect()
}

/// As [`cnn_variants`], for the DS-CNN.
///
/// # Errors
/// As [`ConvClassifier::from_ds_cnn`].
pub fn ds_cnn_variants(
    network: &DsCnn,
    prefix: &str,
) -> Result<Vec<ConvClassifier>, OlympicsError> {
    VARIANTS
        .iter()
        .map(|(suffix, format)| {
            ConvClassifier::from_ds_cnn(&format!("{prefix}_{suffix}"), network, *format)
        })
        .collect()
}

const VARIANTS: [(&str, WeightFormat); 3] = [
    ("f32_fused", WeightFormat::F32),
    ("int8", WeightFormat::Int8),
    ("f16", WeightFormat::F16),
];

impl Submission for ConvClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        match self.format {
            WeightFormat::Int8 => vec![Optimization::Int8],
            WeightFormat::F16 => vec![Optimization::HalfPrecision],
            _ => Vec::new(),
        }
    }

    fn storage_bytes(&self) -> usize {
        let network = match &self.network {
            Network::Cnn { conv1, conv2, .. } => conv1.storage_bytes() + conv2.storage_bytes(),
            Network::DsCnn {
                mean,
                std,
                conv,
                blocks,
                ..
            } => {
                std::mem::size_of_val(mean.as_slice())
                    + std::mem::size_of_val(std.as_slice())
                    + conv.storage_bytes()
                    + blocks
                        .iter()
                        .map(|block| {
                            (block.depthwise_tap_major.len() + block.depthwise.bias.len())
                                * std::mem::size_of::<f32>()
                                + block.pointwise.storage_bytes()
                        })
                        .sum::<usize>()
            }
        };
        network + self.classifier.storage_bytes()
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        let mut output = Array2::<f32>::zeros((batch.nrows(), self.classifier.out_features()));
        self.rows_into(batch, output.view_mut())?;
        Ok(output)
    }

    fn forward_into(
        &self,
        batch: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        self.rows_into(batch, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;
    use zoo::{Classifier, DepthwiseSeparableBlock, Standardizer};

    fn lcg_unit(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn conv(state: &mut u64, geometry: [usize; 5], out_channels: usize) -> Conv2d {
        let [in_channels, kernel_height, kernel_width, stride, padding] = geometry;
        let patch = in_channels * kernel_height * kernel_width;
        Conv2d {
            weight: Array2::from_shape_fn((patch, out_channels), |_| lcg_unit(state) * 0.4),
            bias: Array1::from_shape_fn(out_channels, |_| lcg_unit(state) * 0.1),
            in_channels,
            kernel_height,
            kernel_width,
            stride,
            padding,
        }
    }

    fn linear(state: &mut u64, inputs: usize, outputs: usize) -> Linear {
        Linear {
            weight: Array2::from_shape_fn((inputs, outputs), |_| lcg_unit(state) * 0.2),
            bias: Array1::from_shape_fn(outputs, |_| lcg_unit(state) * 0.1),
        }
    }

    fn cnn(state: &mut u64, side: usize, c1: usize, c2: usize) -> Cnn {
        Cnn {
            image_height: side,
            image_width: side,
            conv1: conv(state, [1, 3, 3, 1, 1], c1),
            conv2: conv(state, [c1, 3, 3, 1, 1], c2),
            classifier: linear(state, (side / 4) * (side / 4) * c2, 10),
        }
    }

    fn ds_cnn(state: &mut u64, channels: usize, n_blocks: usize) -> DsCnn {
        let (n_frames, n_coefficients) = (49, 10);
        let training =
            Array2::from_shape_fn((20, n_frames * n_coefficients), |_| lcg_unit(state) * 3.0);
        DsCnn {
            n_frames,
            n_coefficients,
            input_scaling: Standardizer::fit(training.view()),
            conv: conv(state, [1, 10, 4, 2, 1], channels),
            blocks: (0..n_blocks)
                .map(|_| DepthwiseSeparableBlock {
                    depthwise: DepthwiseConv2d {
                        weight: Array2::from_shape_fn((channels, 9), |_| lcg_unit(state) * 0.5),
                        bias: Array1::from_shape_fn(channels, |_| lcg_unit(state) * 0.1),
                        kernel_height: 3,
                        kernel_width: 3,
                        padding: 1,
                    },
                    pointwise: linear(state, channels, channels),
                })
                .collect(),
            classifier: linear(state, channels, 10),
        }
    }

    /// A model builder per format, zoo's model, and its input width.
    type Case = (
        Box<dyn Fn(WeightFormat) -> ConvClassifier>,
        Box<dyn Classifier>,
        usize,
    );

    /// Each format against zoo's own forward pass of the same model, on Fashion-CNN and DS-CNN shapes and a
    /// few smaller ones (odd sides, so pooling drops a row), outputs NaN-filled. Bounds: f32 differs from zoo in
    /// summation order only (`1e-4 · (1 + |y|)`); f16 rounds each weight to 11 significant bits and int8 to 8 bits
    /// with activations quantized per layer, so they are held to a share of the logits' range (1% and 8%).
    #[test]
    fn every_format_matches_zoo() {
        let mut state = 21u64;
        let models: Vec<Case> = {
            let mut list: Vec<Case> = Vec::new();
            for (side, c1, c2) in [(28usize, 16usize, 32usize), (9, 3, 5), (12, 1, 17)] {
                let model = cnn(&mut state, side, c1, c2);
                let copy = model.clone();
                list.push((
                    Box::new(move |format| ConvClassifier::from_cnn("cnn", &copy, format).unwrap()),
                    Box::new(model),
                    side * side,
                ));
            }
            for (channels, blocks) in [(32usize, 3usize), (7, 1)] {
                let model = ds_cnn(&mut state, channels, blocks);
                let copy = model.clone();
                list.push((
                    Box::new(move |format| {
                        ConvClassifier::from_ds_cnn("ds_cnn", &copy, format).unwrap()
                    }),
                    Box::new(model),
                    490,
                ));
            }
            list
        };
        for (build, reference, width) in &models {
            let batch = Array2::from_shape_fn((3, *width), |_| lcg_unit(&mut state).abs());
            let expected = reference.logits(batch.view()).unwrap();
            let range = expected.iter().fold(0f32, |acc, v| acc.max(v.abs()));
            for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Int8] {
                let submission = build(format);
                let mut got = Array2::from_elem(expected.dim(), f32::NAN);
                submission
                    .forward_into(batch.view(), got.view_mut())
                    .unwrap();
                for (&value, &reference) in got.iter().zip(expected.iter()) {
                    let bound = match format {
                        WeightFormat::Int8 => 0.08 * range + 1e-4,
                        WeightFormat::F16 => 0.01 * range + 1e-4,
                        _ => 1e-4 * (1.0 + reference.abs()),
                    };
                    assert!(
                        (value - reference).abs() <= bound,
                        "{format:?}: {value} vs {reference} (range {range})"
                    );
                }
                assert!(submission.kernels().is_ok());
                assert!(submission.storage_bytes() > 0);
            }
        }
    }

    #[test]
    fn bad_queries_are_errors() {
        let mut state = 1u64;
        let model = cnn(&mut state, 8, 2, 3);
        let submission = ConvClassifier::from_cnn("cnn", &model, WeightFormat::F32).unwrap();
        assert!(submission
            .forward(Array2::<f32>::zeros((1, 63)).view())
            .is_err());
        let mut wrong = Array2::<f32>::zeros((1, 9));
        assert!(submission
            .forward_into(Array2::<f32>::zeros((1, 64)).view(), wrong.view_mut())
            .is_err());
        let nan = Array2::from_elem((1, 64), f32::NAN);
        let int8 = ConvClassifier::from_cnn("cnn", &model, WeightFormat::Int8).unwrap();
        assert!(int8.forward(nan.view()).is_err());
    }
}
