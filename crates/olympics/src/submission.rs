//! What a model must implement to be refereed: a forward pass on a batch, a name, its declared
//! optimizations and the bytes of its stored parameters. The referee does everything else.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::error::OlympicsError;

/// An optimization a submission declares (printed beside its results; the referee does not trust it, it
/// measures).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Optimization {
    /// Int8 weights (per-channel symmetric) with u8 activations.
    Int8,
    /// 16-bit float weights (IEEE f16 or bfloat16).
    HalfPrecision,
    /// Magnitude pruning of individual weights, stored sparse (CSR); the sparsity as a fraction.
    UnstructuredPruning {
        /// Share of weights removed, e.g. 0.75.
        sparsity_percent: u32,
    },
    /// Whole neurons removed, leaving a smaller dense layer.
    StructuredPruning {
        /// Share of hidden neurons removed, in percent.
        sparsity_percent: u32,
    },
    /// Keys and values of earlier positions kept across queries instead of recomputed.
    KvCache,
    /// Anything else, in words.
    Other(String),
}

impl std::fmt::Display for Optimization {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Optimization::Int8 => formatter.write_str("int8"),
            Optimization::HalfPrecision => formatter.write_str("f16"),
            Optimization::UnstructuredPruning { sparsity_percent } => {
                write!(formatter, "unstructured pruning {sparsity_percent}% (CSR)")
            }
            Optimization::StructuredPruning { sparsity_percent } => {
                write!(
                    formatter,
                    "structured pruning {sparsity_percent}% of neurons"
                )
            }
            Optimization::KvCache => formatter.write_str("KV cache"),
            Optimization::Other(text) => formatter.write_str(text),
        }
    }
}

/// A model entered in an event.
///
/// `forward` receives a batch of rows in the event's input layout (`batch × input_width`, see
/// [`crate::EventSpec`]) and returns one row per input (`batch × output_width`). The referee calls it from
/// one thread at a time, rows of the test split in order; a submission may keep state between calls
/// (a KV cache) behind interior mutability. A panic, an error or an output of the wrong shape makes the
/// submission ERROR for the event; it is never replaced by a prediction.
pub trait Submission {
    /// A short unique name, e.g. `int8`.
    fn name(&self) -> &str;

    /// The optimizations the submission declares.
    fn optimizations(&self) -> Vec<Optimization>;

    /// Bytes of the stored parameters as they really exist (an int8 weight is one byte).
    fn storage_bytes(&self) -> usize;

    /// Outputs for a batch of inputs.
    ///
    /// # Errors
    /// Whatever the model cannot do; the referee turns it into an ERROR for this submission.
    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError>;

    /// Outputs for a batch of inputs, written into a caller-owned `batch × output_width` buffer (the
    /// referee's latency phase preallocates it, so a submission that overrides this can answer a query
    /// without allocating). The default calls [`Submission::forward`] and copies.
    ///
    /// # Errors
    /// As [`Submission::forward`]; [`OlympicsError::OutputShape`] when the output is not the buffer's shape.
    fn forward_into(
        &self,
        batch: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        assign_output(self.name(), &self.forward(batch)?, output)
    }

    /// Forget any state kept between calls (called by the referee before each phase).
    fn reset(&self) {}
}

/// Copies a computed output into a caller's buffer: [`OlympicsError::OutputShape`], naming `submission`,
/// when the shapes differ (the default [`Submission::forward_into`], and the batch fallback of the
/// submissions that override it).
pub(crate) fn assign_output(
    submission: &str,
    computed: &Array2<f32>,
    mut output: ArrayViewMut2<'_, f32>,
) -> Result<(), OlympicsError> {
    if computed.dim() != output.dim() {
        return Err(OlympicsError::OutputShape {
            submission: submission.into(),
            expected: [output.nrows(), output.ncols()],
            actual: computed.shape().to_vec(),
        });
    }
    output.assign(computed);
    Ok(())
}
