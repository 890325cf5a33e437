//! The events: what a submission is asked to do (input layout, quality metric, MLPerf-style target, latency
//! limit, memory budget), and the test split it is judged on with a record of where the data came from.
//!
//! The targets follow MLPerf Tiny's published quality targets in spirit; they are called "MLPerf-style"
//! and no result here is an MLPerf result.

use std::ops::Range;

use datasets::DataOrigin;
use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, shape_error, OlympicsError};

/// How an event scores quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QualityMetric {
    /// Top-1 accuracy: the argmax of each output row against the label.
    Top1Accuracy,
    /// Area under the ROC curve: output column 0 is an anomaly score (higher = more anomalous), label 1
    /// marks an anomaly.
    RocAuc,
}

impl std::fmt::Display for QualityMetric {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            QualityMetric::Top1Accuracy => "top-1 accuracy",
            QualityMetric::RocAuc => "ROC AUC",
        })
    }
}

/// How the referee orders the queries it times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QueryOrder {
    /// Independent queries: seeded random rows of the test split.
    Random,
    /// A stream: a seeded run of consecutive rows of `run` rows each (next-character prediction, where each
    /// query extends the previous one by one character until the context resets).
    Stream {
        /// Rows per run (the context length).
        run: usize,
    },
}

/// An event's fixed configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    /// Stable name, e.g. `image_classification`.
    pub name: String,
    /// One line on the task.
    pub task: String,
    /// Shape of one input sample (a row is this shape flattened row-major).
    pub input_shape: Vec<usize>,
    /// What the input is, in words (sample rate, layout).
    pub input_description: String,
    /// Width of one output row.
    pub output_width: usize,
    /// The quality metric.
    pub metric: QualityMetric,
    /// The quality target (a fraction, or an AUC).
    pub target: f64,
    /// Where the target comes from ("MLPerf-style", never an MLPerf result).
    pub target_note: String,
    /// Limit on the p90 single-query latency, milliseconds.
    pub latency_limit_ms: f64,
    /// Memory budget (stored parameters plus peak heap of one query) of the accuracy contest, bytes.
    pub memory_budget_bytes: usize,
    /// How latency queries are drawn.
    pub query_order: QueryOrder,
    /// When set, the quality target is relative to a baseline submission scored on the same rows, and is
    /// judged as paired non-inferiority ([`crate::compliance::judge_compliance_paired`]); `target` is then
    /// the nominal absolute bar, reported next to the unpaired accuracy. `None`: `target` is absolute
    /// (the MLPerf-style events).
    #[serde(default)]
    pub relative_target: Option<RelativeTarget>,
}

/// A quality target relative to a baseline submission in the same field, scored on the same rows: the
/// submission's accuracy may be at most `margin` below the baseline's (paired non-inferiority).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelativeTarget {
    /// Name of the baseline submission.
    pub baseline: String,
    /// Non-inferiority margin on the accuracy difference, as a fraction (0.01 = one percentage point).
    pub margin: f64,
}

/// The memory budget of every event's accuracy contest: 1 MiB, the flash of a large microcontroller class
/// board (MLPerf Tiny's reference boards have 256 KiB – 2 MiB).
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 1 << 20;

impl EventSpec {
    /// Width of one input row.
    pub fn input_width(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Keyword spotting: 1 s of audio at 8 kHz (8,000 samples) through the fixed MFCC front end (49 frames × 10
    /// coefficients, not timed), ten spoken digits; MLPerf-style target 0.90, limit 100 ms.
    pub fn keyword_spotting() -> Self {
        EventSpec {
            name: "keyword_spotting".into(),
            task: "classify a 1 s utterance into 10 spoken digits".into(),
            input_shape: vec![49, 10],
            input_description: "1 s of audio at 8 kHz (8,000 samples) through the fixed MFCC front end: 49 frames × 10 coefficients (front end not timed)".into(),
            output_width: 10,
            metric: QualityMetric::Top1Accuracy,
            target: 0.90,
            target_note: "MLPerf-style target (MLPerf Tiny KWS uses 90% top-1); not an MLPerf result".into(),
            latency_limit_ms: 100.0,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            query_order: QueryOrder::Random,
            relative_target: None,
        }
    }

    /// Visual wake words, as a proxy: no person-detection data can be had here, so the binary task is
    /// "upper-body garment (T-shirt, pullover, coat, shirt) or not" on real Fashion-MNIST images upscaled to
    /// 96 × 96 × 3; MLPerf-style target 0.80, limit 200 ms.
    pub fn visual_wake_words() -> Self {
        EventSpec {
            name: "visual_wake_words".into(),
            task: "PROXY binary task (not person detection): is the image an upper-body garment (T-shirt/top, pullover, coat, shirt)?".into(),
            input_shape: vec![96, 96, 3],
            input_description: "96 × 96 × 3 (NHWC, values in [0, 1]): a 28 × 28 Fashion-MNIST image upscaled bilinearly, grey replicated to 3 channels".into(),
            output_width: 2,
            metric: QualityMetric::Top1Accuracy,
            target: 0.80,
            target_note: "MLPerf-style target (MLPerf Tiny VWW uses 80% top-1) applied to a proxy task; not an MLPerf result".into(),
            latency_limit_ms: 200.0,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            query_order: QueryOrder::Random,
            relative_target: None,
        }
    }

    /// Image classification on Fashion-MNIST (28 × 28 grey, 10 classes): target 0.85, limit 150 ms.
    pub fn image_classification() -> Self {
        EventSpec {
            name: "image_classification".into(),
            task: "classify a 28 × 28 Fashion-MNIST image into 10 classes".into(),
            input_shape: vec![28, 28],
            input_description: "28 × 28 grey, values in [0, 1]".into(),
            output_width: 10,
            metric: QualityMetric::Top1Accuracy,
            target: 0.85,
            target_note: "MLPerf-style target (MLPerf Tiny IC uses 85% top-1 on CIFAR-10; here Fashion-MNIST); not an MLPerf result".into(),
            latency_limit_ms: 150.0,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            query_order: QueryOrder::Random,
            relative_target: None,
        }
    }

    /// The fallback when Fashion-MNIST is not installed: the embedded 8 × 8 UCI digits, with its own target
    /// 0.95 (an easier task than Fashion-MNIST, so the same 0.85 would be no bar), limit 150 ms.
    pub fn image_classification_digits() -> Self {
        EventSpec {
            name: "image_classification".into(),
            task: "FALLBACK (Fashion-MNIST not used): classify an 8 × 8 UCI digit into 10 classes".into(),
            input_shape: vec![8, 8],
            input_description: "8 × 8 grey, values 0-16 as in the UCI set".into(),
            output_width: 10,
            metric: QualityMetric::Top1Accuracy,
            target: 0.95,
            target_note: "fallback target for the easier digits task (0.95 instead of 0.85); not an MLPerf result".into(),
            latency_limit_ms: 150.0,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            query_order: QueryOrder::Random,
            relative_target: None,
        }
    }

    /// Anomaly detection, one-class: the model sees only normal samples in training and scores held-out
    /// normal and anomalous ones; ROC AUC target 0.85, limit 50 ms. `input_shape` depends on the data.
    pub fn anomaly_detection(input_shape: Vec<usize>, task: String) -> Self {
        EventSpec {
            name: "anomaly_detection".into(),
            task,
            input_description: format!("{input_shape:?} values as in the data set"),
            input_shape,
            output_width: 1,
            metric: QualityMetric::RocAuc,
            target: 0.85,
            target_note: "MLPerf-style target (MLPerf Tiny AD uses AUC 0.85); not an MLPerf result"
                .into(),
            latency_limit_ms: 50.0,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            query_order: QueryOrder::Random,
            relative_target: None,
        }
    }
}

/// Where an event's data came from, printed with every result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSource {
    /// REAL or SYNTHETIC.
    pub origin: DataOrigin,
    /// Short data-set name.
    pub name: String,
    /// Which split and how it was derived.
    pub description: String,
    /// The attribution line of the data.
    pub attribution: String,
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}: {} ({})",
            self.origin, self.name, self.description
        )
    }
}

/// Produces one input row from one base row (e.g. upscales an image), writing into the output slice.
pub type RowTransform = Box<dyn Fn(ArrayView1<'_, f32>, &mut [f32]) + Send + Sync>;

/// The rows of a test split: stored, or produced on demand from smaller base rows (so that 10,000 images at
/// 96 × 96 × 3 need not sit in memory at once).
pub struct TestSet {
    base: Array2<f32>,
    transform: Option<(usize, RowTransform)>,
    labels: Vec<usize>,
    n_classes: usize,
}

impl std::fmt::Debug for TestSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestSet")
            .field("rows", &self.len())
            .field("width", &self.width())
            .field("generated", &self.transform.is_some())
            .field("n_classes", &self.n_classes)
            .finish()
    }
}

impl TestSet {
    /// A stored split.
    ///
    /// # Errors
    /// [`OlympicsError::Shape`] when labels and rows differ in number; [`OlympicsError::InvalidArgument`] for
    /// an empty split or a label `>= n_classes`.
    pub fn new(
        features: Array2<f32>,
        labels: Vec<usize>,
        n_classes: usize,
    ) -> Result<Self, OlympicsError> {
        Self::check(features.nrows(), &labels, n_classes)?;
        Ok(TestSet {
            base: features,
            transform: None,
            labels,
            n_classes,
        })
    }

    /// A split whose rows are `transform(base row)`, each `width` wide.
    ///
    /// # Errors
    /// As [`TestSet::new`].
    pub fn generated(
        base: Array2<f32>,
        width: usize,
        transform: RowTransform,
        labels: Vec<usize>,
        n_classes: usize,
    ) -> Result<Self, OlympicsError> {
        Self::check(base.nrows(), &labels, n_classes)?;
        Ok(TestSet {
            base,
            transform: Some((width, transform)),
            labels,
            n_classes,
        })
    }

    fn check(n_rows: usize, labels: &[usize], n_classes: usize) -> Result<(), OlympicsError> {
        if n_rows != labels.len() {
            return Err(shape_error("test labels", n_rows, labels.len()));
        }
        if n_rows == 0 {
            return Err(invalid("empty test split"));
        }
        if let Some(bad) = labels.iter().find(|&&label| label >= n_classes) {
            return Err(invalid(format!(
                "label {bad} not below {n_classes} classes"
            )));
        }
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false (an empty split is refused).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Width of one row.
    pub fn width(&self) -> usize {
        match &self.transform {
            Some((width, _)) => *width,
            None => self.base.ncols(),
        }
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Rows `range` as a matrix.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] when the range is outside the split.
    pub fn rows(&self, range: Range<usize>) -> Result<Array2<f32>, OlympicsError> {
        if !(range.start <= range.end && range.end <= self.len()) {
            return Err(invalid(format!(
                "rows {range:?} outside a split of {}",
                self.len()
            )));
        }
        self.select(&range.collect::<Vec<_>>())
    }

    /// The rows at `indices`, in that order.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for an index outside the split.
    pub fn select(&self, indices: &[usize]) -> Result<Array2<f32>, OlympicsError> {
        if let Some(bad) = indices.iter().find(|&&index| index >= self.len()) {
            return Err(invalid(format!(
                "row {bad} outside a split of {}",
                self.len()
            )));
        }
        let mut out = Array2::<f32>::zeros((indices.len(), self.width()));
        for (out_row, &index) in indices.iter().enumerate() {
            match &self.transform {
                None => out.row_mut(out_row).assign(&self.base.row(index)),
                Some((_, transform)) => {
                    let mut row = out.row_mut(out_row);
                    let Some(slice) = row.as_slice_mut() else {
                        return Err(invalid("output row not contiguous"));
                    };
                    transform(self.base.row(index), slice);
                }
            }
        }
        Ok(out)
    }
}

/// An event ready to referee: its configuration, its test split, where the data came from.
#[derive(Debug)]
pub struct Event {
    /// The configuration.
    pub spec: EventSpec,
    /// The test split (labels; for [`QualityMetric::RocAuc`], 1 = anomalous).
    pub test: TestSet,
    /// Where the data came from.
    pub source: DataSource,
}

impl Event {
    /// Builds an event after checking that the split fits the configuration.
    ///
    /// # Errors
    /// [`OlympicsError::Shape`] when the row width differs from the input shape, or an AUC event's labels are
    /// not binary.
    pub fn new(spec: EventSpec, test: TestSet, source: DataSource) -> Result<Self, OlympicsError> {
        if test.width() != spec.input_width() {
            return Err(shape_error(
                format!("event {} input width", spec.name),
                spec.input_width(),
                test.width(),
            ));
        }
        if spec.metric == QualityMetric::RocAuc && test.n_classes() != 2 {
            return Err(shape_error(
                format!("event {} label classes", spec.name),
                2,
                test.n_classes(),
            ));
        }
        Ok(Event { spec, test, source })
    }

    /// The queries the referee times: `n` seeded rows in the event's [`QueryOrder`].
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for `n == 0`.
    pub fn latency_queries(&self, n: usize, seed: u64) -> Result<Array2<f32>, OlympicsError> {
        if n == 0 {
            return Err(invalid("at least one latency query"));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let indices: Vec<usize> = match self.spec.query_order {
            QueryOrder::Random => (0..n)
                .map(|_| rng.random_range(0..self.test.len()))
                .collect(),
            QueryOrder::Stream { run } => {
                let run = run.max(1);
                let n_runs = (self.test.len() / run).max(1);
                let mut indices = Vec::with_capacity(n);
                while indices.len() < n {
                    let start = rng.random_range(0..n_runs) * run;
                    let end = (start + run).min(self.test.len());
                    indices.extend(start..end);
                }
                indices.truncate(n);
                indices
            }
        };
        self.test.select(&indices)
    }
}

/// Bilinear upscaling of one `side × side` grey image to `out_side × out_side × channels` (NHWC, the grey
/// value replicated into every channel), align-corners sampling.
pub fn upscale_grey_image(
    image: ArrayView1<'_, f32>,
    side: usize,
    out_side: usize,
    channels: usize,
    out: &mut [f32],
) {
    let scale = if out_side > 1 {
        (side as f32 - 1.0) / (out_side as f32 - 1.0)
    } else {
        0.0
    };
    for out_y in 0..out_side {
        let source_y = out_y as f32 * scale;
        let y0 = (source_y.floor() as usize).min(side - 1);
        let y1 = (y0 + 1).min(side - 1);
        let weight_y = source_y - y0 as f32;
        for out_x in 0..out_side {
            let source_x = out_x as f32 * scale;
            let x0 = (source_x.floor() as usize).min(side - 1);
            let x1 = (x0 + 1).min(side - 1);
            let weight_x = source_x - x0 as f32;
            let top = image[y0 * side + x0] * (1.0 - weight_x) + image[y0 * side + x1] * weight_x;
            let bottom =
                image[y1 * side + x0] * (1.0 - weight_x) + image[y1 * side + x1] * weight_x;
            let value = top * (1.0 - weight_y) + bottom * weight_y;
            let base = (out_y * out_side + out_x) * channels;
            out[base..base + channels].fill(value);
        }
    }
}

/// Average pooling of an NHWC row (`side × side × channels`) over `factor × factor` blocks and all channels
/// into a `side/factor × side/factor` grey row.
///
/// # Errors
/// [`OlympicsError::Shape`] when the row width is not `side² · channels` or `side` is not a multiple of
/// `factor`.
pub fn pool_to_grey(
    rows: ArrayView2<'_, f32>,
    side: usize,
    channels: usize,
    factor: usize,
) -> Result<Array2<f32>, OlympicsError> {
    if rows.ncols() != side * side * channels || factor == 0 || !side.is_multiple_of(factor) {
        return Err(shape_error(
            "pooled image row",
            format!("{side}×{side}×{channels} with {side} divisible by {factor}"),
            rows.ncols(),
        ));
    }
    let out_side = side / factor;
    let norm = 1.0 / (factor * factor * channels) as f32;
    let mut out = Array2::<f32>::zeros((rows.nrows(), out_side * out_side));
    let contiguous = rows.as_standard_layout();
    for (row, mut out_row) in contiguous.outer_iter().zip(out.outer_iter_mut()) {
        let (Some(pixels), Some(pooled)) = (row.to_slice(), out_row.as_slice_mut()) else {
            return Err(invalid("image rows not contiguous"));
        };
        for (y, line) in pixels.chunks_exact(side * channels).enumerate() {
            let pooled_line = &mut pooled[(y / factor) * out_side..(y / factor + 1) * out_side];
            for (x, pixel) in line.chunks_exact(channels).enumerate() {
                pooled_line[x / factor] += pixel.iter().sum::<f32>() * norm;
            }
        }
    }
    Ok(out)
}
