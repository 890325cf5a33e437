//! The batch-1 path of the MLP submissions: one query through a [`CompressedMlp`] with every layer a
//! matrix–vector product whose epilogue adds the bias and applies ReLU, activations in per-thread buffers
//! reused across queries (a warm query allocates nothing), and the kernel of each layer named:
//!
//! - f32: accel's GEMV over the row-major `in × out` weight, in place (the output starts as the bias and the
//!   product accumulates into it), then ReLU over the `out` values while they are in L1;
//! - int8: quant's row path (the row quantized once with its own min–max, the u8 × i8 VNNI GEMV over the
//!   packed weights, dequantization per channel with bias and ReLU in one pass);
//! - f16: quant's f16 GEMV, the weights widened in registers (F16C), bias and ReLU on the way out;
//! - anything else (CSR): the batch path on one row, copied (it allocates; the kernel says so).
//!
//! [`MlpClassifier`] and [`AnomalyScorer`] answer [`Submission::forward_into`](crate::Submission::forward_into) with it, and their batch
//! `forward` runs it row by row whenever every layer has a row kernel, so the quality the referee scores is
//! that of the computation it times (int8 quantizes each query with its own scale, as a batch-1 server does).

use std::cell::RefCell;
use std::fmt;

use accel::{GemvConfig, GemvRun};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use quant::{GemmConfig, GemmKernel, HalfGemvKernel};

use crate::compress::{CompressedLinear, CompressedMlp};
use crate::error::{invalid, shape_error, OlympicsError};
use crate::submissions::{AnomalyScorer, InputTransform, MlpClassifier};

/// What computed one layer of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKernel {
    /// accel's f32 GEMV.
    F32(GemvRun),
    /// quant's u8 × i8 GEMV.
    Int8(GemmKernel),
    /// quant's f16 GEMV.
    F16(HalfGemvKernel),
    /// f32 with fewer outputs than one AVX-512 vector: `narrow_rows_product` (a portable four-way row product).
    F32Narrow,
    /// No row kernel for this storage (CSR): the batch path on one row.
    BatchPath,
}

/// quant's integer kernel for this process: the level `QUANT_KERNEL` forces (quant reads it once per process),
/// else the detected best.
///
/// # Errors
/// As [`GemmConfig::resolve`] (a bad `QUANT_KERNEL` is an error at every call).
pub fn int8_kernel() -> Result<GemmKernel, OlympicsError> {
    Ok(GemmConfig::default().resolve()?)
}

/// Outputs below which the f32 layer does not use accel's GEMV: its rows layout computes columns that do not
/// fill a 16-lane vector as one scalar dot product each, a chain of `in` dependent additions (about 18 µs for
/// the 1568 → 10 classifier of the Fashion CNN, against about 1 µs here).
const NARROW_COLUMNS: usize = 16;

/// `out += x · W` for a row-major `W` (`x.len() × out.len()`) with few columns: rows streamed four at a time
/// into four independent 16-value accumulators (fixed-size arrays the compiler keeps in vector registers),
/// summed at the end.
fn narrow_rows_product(x: &[f32], weight: &[f32], out: &mut [f32]) {
    const LANES: usize = NARROW_COLUMNS;
    let n = out.len();
    let mut acc = [[0f32; LANES]; 4];
    let row_groups = weight.chunks_exact(4 * n);
    let tail_weights = row_groups.remainder();
    let input_groups = x.chunks_exact(4);
    let tail_inputs = input_groups.remainder();
    for (rows, inputs) in row_groups.zip(input_groups) {
        for (set, (row, &value)) in rows.chunks_exact(n).zip(inputs).enumerate() {
            for (target, &w) in acc[set][..n].iter_mut().zip(row) {
                *target += value * w;
            }
        }
    }
    for (row, &value) in tail_weights.chunks_exact(n).zip(tail_inputs) {
        for (target, &w) in acc[0][..n].iter_mut().zip(row) {
            *target += value * w;
        }
    }
    for (column, target) in out.iter_mut().enumerate() {
        *target += acc[0][column] + acc[1][column] + acc[2][column] + acc[3][column];
    }
}

impl fmt::Display for LayerKernel {
    /// `f32 gemv-avx512-rows`, `int8 gemv-avx512-vnni`, `f16 gemv-avx512-f16c`, `batch path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerKernel::F32(run) => write!(f, "f32 {run}"),
            LayerKernel::Int8(kernel) => write!(f, "int8 gemv-{kernel}"),
            LayerKernel::F16(kernel) => write!(f, "f16 gemv-{kernel}"),
            LayerKernel::F32Narrow => f.write_str("f32 narrow-rows (portable, < 16 outputs)"),
            LayerKernel::BatchPath => f.write_str("batch path (one-row forward, allocates)"),
        }
    }
}

impl CompressedLinear {
    /// Whether the layer has a batch-1 kernel (every storage but CSR).
    pub fn has_row_kernel(&self) -> bool {
        matches!(
            self,
            CompressedLinear::Dense(_) | CompressedLinear::Int8(_) | CompressedLinear::Half { .. }
        )
    }

    /// `out = x · W + b` for one row, then ReLU when `relu`; returns the kernel that ran. The previous
    /// contents of `out` are never read.
    ///
    /// # Errors
    /// [`OlympicsError::Shape`] for the wrong lengths; kernel errors.
    pub fn forward_row_into(
        &self,
        x: &[f32],
        out: &mut [f32],
        relu: bool,
    ) -> Result<LayerKernel, OlympicsError> {
        if x.len() != self.in_features() {
            return Err(shape_error("row input", self.in_features(), x.len()));
        }
        if out.len() != self.out_features() {
            return Err(shape_error("row output", self.out_features(), out.len()));
        }
        let kernel = match self {
            CompressedLinear::Dense(layer) => {
                let bias = layer
                    .bias
                    .as_slice()
                    .ok_or_else(|| invalid("bias not contiguous"))?;
                out.copy_from_slice(bias);
                let n = out.len();
                if n < NARROW_COLUMNS {
                    let weight = layer
                        .weight
                        .as_slice()
                        .ok_or_else(|| invalid("weight not contiguous"))?;
                    narrow_rows_product(x, weight, out);
                    if relu {
                        out.iter_mut().for_each(|value| *value = value.max(0.0));
                    }
                    return Ok(LayerKernel::F32Narrow);
                }
                let a = ArrayView2::from_shape((1, x.len()), x)
                    .map_err(|error| shape_error("row input", x.len(), error))?;
                let c = ArrayViewMut2::from_shape((1, n), &mut *out)
                    .map_err(|error| shape_error("row output", n, error))?;
                let run =
                    accel::gemv_into_with(a, layer.weight.view(), c, true, &GemvConfig::default())?;
                if relu {
                    out.iter_mut().for_each(|value| *value = value.max(0.0));
                }
                LayerKernel::F32(run)
            }
            CompressedLinear::Int8(layer) => {
                LayerKernel::Int8(layer.forward_row_into(x, out, relu, int8_kernel()?)?)
            }
            CompressedLinear::Half { weight, bias, .. } => {
                let bias = bias
                    .as_slice()
                    .ok_or_else(|| invalid("bias not contiguous"))?;
                LayerKernel::F16(quant::gemv_f16_into(x, weight, bias, relu, out, None)?)
            }
            _ => {
                let a = ArrayView2::from_shape((1, x.len()), x)
                    .map_err(|error| shape_error("row input", x.len(), error))?;
                let mut y = self.forward(a)?;
                if relu {
                    y.mapv_inplace(|value| value.max(0.0));
                }
                out.iter_mut()
                    .zip(y.iter())
                    .for_each(|(target, &value)| *target = value);
                LayerKernel::BatchPath
            }
        };
        Ok(kernel)
    }
}

/// Per-thread activation buffers of the row path: the transformed input and two hidden layers, grown on
/// demand and kept.
#[derive(Default)]
struct RowBuffers {
    input: Vec<f32>,
    ping: Vec<f32>,
    pong: Vec<f32>,
}

thread_local! {
    static ROW_BUFFERS: RefCell<RowBuffers> = RefCell::new(RowBuffers::default());
}

impl CompressedMlp {
    /// Whether every layer has a batch-1 kernel.
    pub fn has_row_path(&self) -> bool {
        self.layers.iter().all(CompressedLinear::has_row_kernel)
    }

    /// The network's output for one row, into `out`, using per-thread buffers (nothing is allocated once
    /// warm when [`CompressedMlp::has_row_path`]).
    ///
    /// # Errors
    /// Shape and kernel errors.
    pub fn forward_row_into(&self, x: &[f32], out: &mut [f32]) -> Result<(), OlympicsError> {
        ROW_BUFFERS.with_borrow_mut(|buffers| {
            forward_row_with(
                self,
                x,
                out,
                &mut buffers.ping,
                &mut buffers.pong,
                &mut |_| {},
            )
        })
    }

    /// The kernel each layer runs at batch 1 (one query through the row path on a zero row).
    ///
    /// # Errors
    /// As [`CompressedMlp::forward_row_into`].
    pub fn row_kernels(&self) -> Result<Vec<LayerKernel>, OlympicsError> {
        let x = vec![0.0; self.in_features()];
        let mut out = vec![0.0; self.out_features()];
        let mut kernels = Vec::new();
        let (mut ping, mut pong) = (Vec::new(), Vec::new());
        forward_row_with(self, &x, &mut out, &mut ping, &mut pong, &mut |kernel| {
            kernels.push(kernel)
        })?;
        Ok(kernels)
    }
}

fn forward_row_with(
    network: &CompressedMlp,
    x: &[f32],
    out: &mut [f32],
    ping: &mut Vec<f32>,
    pong: &mut Vec<f32>,
    on_layer: &mut dyn FnMut(LayerKernel),
) -> Result<(), OlympicsError> {
    let Some((last, hidden)) = network.layers.split_last() else {
        return Err(invalid("MLP without layers"));
    };
    for (index, layer) in hidden.iter().enumerate() {
        pong.resize(layer.out_features(), 0.0);
        let input: &[f32] = if index == 0 { x } else { &ping[..] };
        on_layer(layer.forward_row_into(input, pong, true)?);
        // The layer just written becomes the next input.
        std::mem::swap(ping, pong);
    }
    let input: &[f32] = if hidden.is_empty() { x } else { &ping[..] };
    on_layer(last.forward_row_into(input, out, false)?);
    Ok(())
}

/// Applies `transform` to one row into `out` (resized), the same arithmetic as [`InputTransform::apply`].
fn transform_row(
    transform: &InputTransform,
    row: &[f32],
    out: &mut Vec<f32>,
) -> Result<(), OlympicsError> {
    match transform {
        InputTransform::Identity => {
            out.clear();
            out.extend_from_slice(row);
        }
        InputTransform::Standardize(standardizer) => {
            let (Some(mean), Some(std)) =
                (standardizer.mean.as_slice(), standardizer.std.as_slice())
            else {
                return Err(invalid("standardizer not contiguous"));
            };
            if row.len() != mean.len() || std.len() != mean.len() {
                return Err(shape_error("standardized row", mean.len(), row.len()));
            }
            out.clear();
            out.extend(
                row.iter()
                    .zip(mean)
                    .zip(std)
                    .map(|((&value, &m), &s)| (value - m) / s),
            );
        }
        InputTransform::PoolGrey {
            side,
            channels,
            factor,
        } => {
            let (side, channels, factor) = (*side, *channels, *factor);
            if row.len() != side * side * channels || factor == 0 || !side.is_multiple_of(factor) {
                return Err(shape_error(
                    "pooled image row",
                    format!("{side}×{side}×{channels} with {side} divisible by {factor}"),
                    row.len(),
                ));
            }
            let out_side = side / factor;
            let norm = 1.0 / (factor * factor * channels) as f32;
            out.clear();
            out.resize(out_side * out_side, 0.0);
            // Each pooled value adds, per image line, one contiguous run of `factor · channels` values:
            // summed four lanes at a time (no division per pixel, a reduction the compiler vectorises).
            let run = factor * channels;
            for (y, line) in row.chunks_exact(side * channels).enumerate() {
                let pooled_line = &mut out[(y / factor) * out_side..(y / factor + 1) * out_side];
                for (pooled, block) in pooled_line.iter_mut().zip(line.chunks_exact(run)) {
                    let mut lanes = [0f32; 4];
                    let quads = block.chunks_exact(4);
                    let tail: f32 = quads.remainder().iter().sum();
                    for quad in quads {
                        for (lane, &value) in lanes.iter_mut().zip(quad) {
                            *lane += value;
                        }
                    }
                    *pooled += ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail) * norm;
                }
            }
        }
    }
    Ok(())
}

fn row_of<'a>(batch: &'a ArrayView2<'_, f32>, index: usize) -> Result<&'a [f32], OlympicsError> {
    batch
        .row(index)
        .to_slice()
        .ok_or_else(|| invalid("query rows not contiguous"))
}

impl MlpClassifier {
    /// One query: transform, then the row path, into `out`.
    fn classify_row(&self, row: &[f32], out: &mut [f32]) -> Result<(), OlympicsError> {
        ROW_BUFFERS.with_borrow_mut(|buffers| {
            let RowBuffers { input, ping, pong } = buffers;
            transform_row(&self.transform, row, input)?;
            forward_row_with(&self.network, input, out, ping, pong, &mut |_| {})
        })
    }

    /// Logits for a batch through the row path, row by row (see the module doc for why).
    pub(crate) fn forward_rows(
        &self,
        batch: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>, OlympicsError> {
        let batch = batch.as_standard_layout();
        let mut output = Array2::<f32>::zeros((batch.nrows(), self.network.out_features()));
        self.forward_rows_into(batch.view(), output.view_mut())?;
        Ok(output)
    }

    pub(crate) fn forward_rows_into(
        &self,
        batch: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        let expected = (batch.nrows(), self.network.out_features());
        if output.dim() != expected {
            return Err(OlympicsError::OutputShape {
                submission: self.name.clone(),
                expected: [expected.0, expected.1],
                actual: vec![output.nrows(), output.ncols()],
            });
        }
        for index in 0..batch.nrows() {
            let mut target = output.row_mut(index);
            let out = target
                .as_slice_mut()
                .ok_or_else(|| invalid("output rows not contiguous"))?;
            self.classify_row(row_of(&batch, index)?, out)?;
        }
        Ok(())
    }
}

impl AnomalyScorer {
    /// One query's score: the reconstruction through the row path, then the mean squared error.
    fn score_row(&self, row: &[f32]) -> Result<f32, OlympicsError> {
        if self.network.out_features() != row.len() {
            return Err(shape_error(
                "autoencoder output",
                row.len(),
                self.network.out_features(),
            ));
        }
        if row.is_empty() {
            return Err(shape_error("autoencoder output", "at least one column", 0));
        }
        ROW_BUFFERS.with_borrow_mut(|buffers| {
            let RowBuffers { input, ping, pong } = buffers;
            input.resize(row.len(), 0.0);
            forward_row_with(&self.network, row, input, ping, pong, &mut |_| {})?;
            let sum: f32 = input
                .iter()
                .zip(row)
                .map(|(&reconstructed, &original)| {
                    let difference = reconstructed - original;
                    difference * difference
                })
                .sum();
            Ok(sum / row.len() as f32)
        })
    }

    pub(crate) fn forward_rows_into(
        &self,
        batch: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), OlympicsError> {
        if output.dim() != (batch.nrows(), 1) {
            return Err(OlympicsError::OutputShape {
                submission: self.name.clone(),
                expected: [batch.nrows(), 1],
                actual: vec![output.nrows(), output.ncols()],
            });
        }
        for index in 0..batch.nrows() {
            output[[index, 0]] = self.score_row(row_of(&batch, index)?)?;
        }
        Ok(())
    }

    pub(crate) fn forward_rows(
        &self,
        batch: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>, OlympicsError> {
        let batch = batch.as_standard_layout();
        let mut output = Array2::<f32>::zeros((batch.nrows(), 1));
        self.forward_rows_into(batch.view(), output.view_mut())?;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Recipe, WeightFormat};
    use crate::submission::Submission;
    use ndarray::{Array1, Array2};
    use zoo::{Linear, Mlp, Standardizer};

    fn lcg_unit(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn mlp(widths: &[usize], state: &mut u64) -> Mlp {
        Mlp {
            layers: widths
                .windows(2)
                .map(|pair| Linear {
                    weight: Array2::from_shape_fn((pair[0], pair[1]), |_| lcg_unit(state) * 0.2),
                    bias: Array1::from_shape_fn(pair[1], |_| lcg_unit(state) * 0.1),
                })
                .collect(),
        }
    }

    fn recipe(format: WeightFormat) -> Recipe {
        Recipe {
            format,
            ..Recipe::BASELINE
        }
    }

    /// The row path against the batch path of the same compressed network (`CompressedMlp::forward`), for
    /// each storage, on widths around the lane (16), panel (32) and block edges and primes, the output
    /// NaN-filled. Bounds: f32 and f16 differ only in summation order (`1e-4 · (1 + |y|)`); int8 quantizes
    /// each row with its own scale where the batch path shares one over the batch, so the bound is a few
    /// output steps of the network: 5% of the output's range.
    #[test]
    fn row_path_matches_the_batch_path() {
        let mut state = 5u64;
        for widths in [
            vec![1, 1],
            vec![3, 17, 2],
            vec![16, 15, 16, 17],
            vec![33, 64, 65, 10],
            vec![97, 31, 1],
            vec![784, 256, 10],
        ] {
            let network = mlp(&widths, &mut state);
            let batch = Array2::from_shape_fn((5, widths[0]), |_| lcg_unit(&mut state));
            for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Int8] {
                let compressed = CompressedMlp::compress(&network, &recipe(format)).unwrap();
                let reference_format = match format {
                    WeightFormat::Int8 => WeightFormat::F32,
                    other => other,
                };
                let reference_network =
                    CompressedMlp::compress(&network, &recipe(reference_format)).unwrap();
                let expected = reference_network.forward(batch.view()).unwrap();
                let range = expected.iter().fold(0f32, |acc, v| acc.max(v.abs()));
                for (row_idx, row) in batch.outer_iter().enumerate() {
                    let mut out = vec![f32::NAN; *widths.last().unwrap()];
                    compressed
                        .forward_row_into(row.as_slice().unwrap(), &mut out)
                        .unwrap();
                    for (column, &value) in out.iter().enumerate() {
                        let reference = expected[[row_idx, column]];
                        let bound = match format {
                            WeightFormat::Int8 => 0.05 * (range + 1e-3) + 1e-4,
                            _ => 1e-4 * (1.0 + reference.abs()),
                        };
                        assert!(
                            (value - reference).abs() <= bound,
                            "{format:?} {widths:?} row {row_idx} column {column}: {value} vs {reference}"
                        );
                    }
                }
                let kernels = compressed.row_kernels().unwrap();
                assert_eq!(kernels.len(), widths.len() - 1);
                assert!(kernels.iter().all(|k| *k != LayerKernel::BatchPath));
            }
        }
    }

    /// The row transforms against [`InputTransform::apply`] (pooling sums in another order: 1e-5 relative).
    #[test]
    fn row_transforms_match_the_batch_transforms() {
        let mut state = 17u64;
        for (side, channels, factor) in
            [(8usize, 3usize, 4usize), (12, 1, 3), (6, 2, 2), (96, 3, 4)]
        {
            let transform = InputTransform::PoolGrey {
                side,
                channels,
                factor,
            };
            let batch =
                Array2::from_shape_fn((2, side * side * channels), |_| lcg_unit(&mut state));
            let expected = transform.apply(batch.view()).unwrap();
            for (row_idx, row) in batch.outer_iter().enumerate() {
                let mut out = vec![f32::NAN; 3];
                transform_row(&transform, row.as_slice().unwrap(), &mut out).unwrap();
                assert_eq!(out.len(), expected.ncols());
                for (column, &value) in out.iter().enumerate() {
                    let reference = expected[[row_idx, column]];
                    assert!(
                        (value - reference).abs() <= 1e-5 * (1.0 + reference.abs()),
                        "{side} {channels} {factor}: {value} vs {reference}"
                    );
                }
            }
            let mut out = Vec::new();
            assert!(transform_row(&transform, &[0.0; 5], &mut out).is_err());
        }
    }

    #[test]
    fn submissions_answer_batch_one_like_their_batch_path() {
        let mut state = 9u64;
        let network = mlp(&[12, 20, 3], &mut state);
        let training = Array2::from_shape_fn((30, 12), |_| lcg_unit(&mut state) * 3.0 + 1.0);
        let standardizer = Standardizer::fit(training.view());
        for transform in [
            InputTransform::Identity,
            InputTransform::Standardize(standardizer),
        ] {
            let classifier = MlpClassifier {
                name: "f32".into(),
                optimizations: Vec::new(),
                transform: transform.clone(),
                network: CompressedMlp::compress(&network, &Recipe::BASELINE).unwrap(),
            };
            let batch = training.slice(ndarray::s![0..4, ..]);
            let features = transform.apply(batch).unwrap();
            let expected = classifier.network.forward(features.view()).unwrap();
            let got = classifier.forward(batch).unwrap();
            let mut into = Array2::from_elem((1, 3), f32::NAN);
            classifier
                .forward_into(batch.slice(ndarray::s![1..2, ..]), into.view_mut())
                .unwrap();
            for column in 0..3 {
                assert!((into[[0, column]] - expected[[1, column]]).abs() <= 1e-4);
                for row in 0..4 {
                    assert!((got[[row, column]] - expected[[row, column]]).abs() <= 1e-4);
                }
            }
            let mut wrong = Array2::<f32>::zeros((1, 2));
            assert!(classifier
                .forward_into(batch.slice(ndarray::s![0..1, ..]), wrong.view_mut())
                .is_err());
        }
        let autoencoder = mlp(&[6, 3, 6], &mut state);
        let scorer = AnomalyScorer {
            name: "f32".into(),
            optimizations: Vec::new(),
            network: CompressedMlp::compress(&autoencoder, &Recipe::BASELINE).unwrap(),
        };
        let batch = Array2::from_shape_fn((3, 6), |_| lcg_unit(&mut state));
        let reconstruction = scorer.network.forward(batch.view()).unwrap();
        let scores = scorer.forward(batch.view()).unwrap();
        for row in 0..3 {
            let expected: f32 = (0..6)
                .map(|c| (reconstruction[[row, c]] - batch[[row, c]]).powi(2))
                .sum::<f32>()
                / 6.0;
            assert!((scores[[row, 0]] - expected).abs() <= 1e-5 * (1.0 + expected));
        }
        let pruned = CompressedMlp::compress(
            &autoencoder,
            &Recipe {
                unstructured: Some(0.5),
                ..Recipe::BASELINE
            },
        )
        .unwrap();
        assert!(!pruned.has_row_path());
    }
}
