//! Ready-made [`Submission`]s: an MLP classifier of compressed layers (with an optional fixed input
//! transform), an autoencoder anomaly scorer, and any zoo classifier as is.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use zoo::{Classifier, Cnn, Conv2d, DepthwiseConv2d, DsCnn, Linear, Standardizer};

use crate::compress::CompressedMlp;
use crate::error::{shape_error, OlympicsError};
use crate::event::pool_to_grey;
use crate::submission::{assign_output, Optimization, Submission};

/// A fixed transform applied to the event's input before the network (part of the submission, timed).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum InputTransform {
    /// Rows as they come.
    Identity,
    /// Per-feature standardization fitted on training data.
    Standardize(Standardizer),
    /// Average-pool an NHWC `side × side × channels` image by `factor` into grey.
    PoolGrey {
        /// Input side.
        side: usize,
        /// Input channels.
        channels: usize,
        /// Pooling factor.
        factor: usize,
    },
}

impl InputTransform {
    /// Applies the transform.
    ///
    /// # Errors
    /// Shape errors.
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        match self {
            InputTransform::Identity => Ok(x.to_owned()),
            InputTransform::Standardize(standardizer) => Ok(standardizer.apply(x)?),
            InputTransform::PoolGrey {
                side,
                channels,
                factor,
            } => pool_to_grey(x, *side, *channels, *factor),
        }
    }

    fn storage_bytes(&self) -> usize {
        match self {
            InputTransform::Standardize(standardizer) => {
                (standardizer.mean.len() + standardizer.std.len()) * std::mem::size_of::<f32>()
            }
            _ => 0,
        }
    }
}

/// An MLP classifier of compressed layers.
#[derive(Debug, Clone)]
pub struct MlpClassifier {
    /// Name.
    pub name: String,
    /// Declared optimizations.
    pub optimizations: Vec<Optimization>,
    /// Input transform.
    pub transform: InputTransform,
    /// The network.
    pub network: CompressedMlp,
}

impl Submission for MlpClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        self.optimizations.clone()
    }

    fn storage_bytes(&self) -> usize {
        self.network.storage_bytes() + self.transform.storage_bytes()
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        if self.network.has_row_path() {
            // The computation the latency phase times, row by row (see `crate::fused`).
            return self.forward_rows(batch);
        }
        let features = self.transform.apply(batch)?;
        self.network.forward(features.view())
    }

    fn forward_into(
        &self,
        batch: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        if self.network.has_row_path() {
            return self.forward_rows_into(batch, output);
        }
        assign_output(&self.name, &self.forward(batch)?, output)
    }
}

/// An autoencoder whose output is the per-row mean squared reconstruction error (the anomaly score).
#[derive(Debug, Clone)]
pub struct AnomalyScorer {
    /// Name.
    pub name: String,
    /// Declared optimizations.
    pub optimizations: Vec<Optimization>,
    /// The autoencoder (output width = input width).
    pub network: CompressedMlp,
}

impl Submission for AnomalyScorer {
    fn name(&self) -> &str {
        &self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        self.optimizations.clone()
    }

    fn storage_bytes(&self) -> usize {
        self.network.storage_bytes()
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        if self.network.has_row_path() {
            // The computation the latency phase times, row by row (see `crate::fused`).
            return self.forward_rows(batch);
        }
        let reconstruction = self.network.forward(batch)?;
        if reconstruction.dim() != batch.dim() {
            return Err(shape_error(
                "autoencoder output",
                format!("{:?}", batch.dim()),
                format!("{:?}", reconstruction.dim()),
            ));
        }
        let difference = &reconstruction - &batch;
        let scores = (&difference * &difference)
            .mean_axis(Axis(1))
            .ok_or_else(|| shape_error("autoencoder output", "at least one column", 0))?;
        Ok(scores.insert_axis(Axis(1)))
    }

    fn forward_into(
        &self,
        batch: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        if self.network.has_row_path() {
            return self.forward_rows_into(batch, output);
        }
        assign_output(&self.name, &self.forward(batch)?, output)
    }
}

/// A zoo classifier entered as it is (the f32 baseline of the CNN and DS-CNN events).
pub struct ZooClassifier {
    /// Name.
    pub name: String,
    /// The model.
    pub model: Box<dyn Classifier + Send + Sync>,
    /// Bytes of its f32 weights ([`cnn_storage_bytes`], [`ds_cnn_storage_bytes`]).
    pub storage_bytes: usize,
}

impl std::fmt::Debug for ZooClassifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ZooClassifier")
            .field("name", &self.name)
            .field("storage_bytes", &self.storage_bytes)
            .finish_non_exhaustive()
    }
}

impl Submission for ZooClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        Vec::new()
    }

    fn storage_bytes(&self) -> usize {
        self.storage_bytes
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        Ok(self.model.logits(batch)?)
    }
}

fn linear_bytes(layer: &Linear) -> usize {
    (layer.weight.len() + layer.bias.len()) * std::mem::size_of::<f32>()
}

fn conv_bytes(layer: &Conv2d) -> usize {
    (layer.weight.len() + layer.bias.len()) * std::mem::size_of::<f32>()
}

fn depthwise_bytes(layer: &DepthwiseConv2d) -> usize {
    (layer.weight.len() + layer.bias.len()) * std::mem::size_of::<f32>()
}

/// Bytes of a zoo CNN's f32 buffers.
pub fn cnn_storage_bytes(cnn: &Cnn) -> usize {
    conv_bytes(&cnn.conv1) + conv_bytes(&cnn.conv2) + linear_bytes(&cnn.classifier)
}

/// Bytes of a zoo DS-CNN's f32 buffers (input standardization included).
pub fn ds_cnn_storage_bytes(network: &DsCnn) -> usize {
    (network.input_scaling.mean.len() + network.input_scaling.std.len())
        * std::mem::size_of::<f32>()
        + conv_bytes(&network.conv)
        + network
            .blocks
            .iter()
            .map(|block| depthwise_bytes(&block.depthwise) + linear_bytes(&block.pointwise))
            .sum::<usize>()
        + linear_bytes(&network.classifier)
}
