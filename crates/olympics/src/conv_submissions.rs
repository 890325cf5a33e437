//! The Fashion CNN and the DS-CNN as submissions in f32, int8 and f16, one query at a time with no
//! allocation once warm: every convolution is an im2col into a reused buffer followed by one matrix product
//! (the pointwise convolutions are the product alone), bias and ReLU fused into the product's epilogue or the
//! pooling pass that follows, and the classifier a matrix–vector product (see [`crate::fused`]).
//!
//! - f32: accel's GEMM, one thread, accumulating into an output that starts as the bias;
//! - int8: quant's [`QuantizedLinear`](quant::QuantizedLinear) on the im2col rows (u8 activations with the
//!   query's own min–max, the VNNI GEMM, per-channel dequantization with the bias in one epilogue); the
//!   classifier on the int8 GEMV;
//! - f16: the weights stored as f16, widened per query into a reused buffer with F16C (they are small:
//!   4,608 values for the Fashion CNN's second convolution), then the f32 GEMM; the classifier on the f16 GEMV.
//!
//! The Fashion CNN's first convolution (one input channel, 144 weights) is convolved directly in f32 in every
//! variant, and the depthwise 3 × 3 convolutions of the DS-CNN stay f32 in every variant (288 weights per block; a direct
//! loop vectorised over channels): the int8 and f16 variants compress what is a matrix product.
//!
//! Patches are ordered tap-major (kernel row, kernel column, channel), so that im2col copies whole channel
//! runs; zoo's channel-major weight rows are permuted to match once, at construction.
//!
//! This file holds the submission ([`ConvClassifier`]: the network's layers in order, the per-thread buffers,
//! the [`Submission`] impl); `layer` holds one convolution and its product, `feature_maps` the plain loops
//! around it (im2col, pooling, the depthwise convolution), `tests` the checks against zoo.

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use quant::GemmConfig;
use zoo::{Cnn, DepthwiseConv2d, DsCnn, Linear};

use crate::compress::{CompressedLinear, WeightFormat};
use crate::error::{invalid, shape_error, OlympicsError};
use crate::submission::{Optimization, Submission};

mod feature_maps;
mod layer;
#[cfg(test)]
mod tests;

use feature_maps::{depthwise_relu, max_pool2_relu};
pub use layer::FusedConv2d;

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
