//! Training with candle (the only module that builds candle graphs), and export of the trained parameters into
//! the ndarray models of [`crate::models`].
//!
//! Parameters are created by a seeded [`ParamStore`] rather than candle's own initializers, so that a seed fully
//! determines the initial weights; mini-batches are drawn by a seeded shuffle. Weight matrices of fully connected
//! layers are stored `in × out` in candle too, so export is a copy, never a transpose.

use perf_core::timer::Stopwatch;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::{Array1, Array2, ArrayView2};
use perf_core::environment::{self, CLOCK_TICKS_PER_SECOND};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::layers::{Conv2d, DepthwiseConv2d, LayerNorm, Linear, Standardizer};
use crate::models::{
    CharTransformer, CharTransformerConfig, Cnn, DepthwiseSeparableBlock, DsCnn, Mlp,
    TransformerBlock,
};
use crate::ZooError;

/// Optimizer and schedule settings shared by every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seeds weight initialization and mini-batch order.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Stop after this many optimizer steps even if epochs remain (for quick tests); `None` runs all epochs.
    pub max_steps: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            epochs: 10,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            max_steps: None,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean training loss of each epoch (a partial last epoch included).
    pub epoch_losses: Vec<f32>,
    /// Loss of every step, in order.
    pub step_losses: Vec<f32>,
    /// Wall-clock seconds spent training.
    pub seconds: f64,
    /// CPU seconds (user + system, all threads of the process) spent training, from `/proc/self/stat`;
    /// `None` where that file is unavailable. On a shared machine this is the steadier figure.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The one-minute load average when training ended (`/proc/loadavg`): how busy the machine was.
    #[serde(default)]
    pub load_average: Option<f64>,
}

/// Process CPU time (user + system, all threads) in clock ticks, from `/proc/self/stat` through
/// `perf_core::environment`, the workspace's one reader of the OS environment.
///
/// Clock ticks are 100 per second ([`CLOCK_TICKS_PER_SECOND`]), the value of `USER_HZ` on every Linux architecture
/// Rust targets. Ticks are kept as integers until the end, so the seconds stored are one division of whole numbers
/// (exactly the double nearest to the decimal figure) and survive a JSON round trip unchanged.
fn process_cpu_ticks() -> Option<u64> {
    environment::process_stat()
        .ok()
        .map(|stat| stat.cpu_ticks())
}

/// The one-minute load average, from `/proc/loadavg` through `perf_core::environment`.
fn load_average() -> Option<f64> {
    environment::load_average().ok().map(|load| load.one)
}

impl TrainingLog {
    /// An empty log and the process CPU time now.
    fn started() -> (Self, Option<u64>) {
        (
            TrainingLog {
                steps: 0,
                epoch_losses: Vec::new(),
                step_losses: Vec::new(),
                seconds: 0.0,
                cpu_seconds: None,
                load_average: None,
            },
            process_cpu_ticks(),
        )
    }

    /// Records wall and CPU time since `started` / `cpu_at_start` and the load average.
    fn finish(&mut self, started: Stopwatch, cpu_at_start: Option<u64>) {
        self.seconds = started.elapsed().as_secs_f64();
        self.cpu_seconds = process_cpu_ticks()
            .zip(cpu_at_start)
            .map(|(now, then)| now.saturating_sub(then) as f64 / CLOCK_TICKS_PER_SECOND);
        self.load_average = load_average();
    }
}

/// Environment variable with which candle sizes its element-wise thread pool.
const CANDLE_THREADS_ENV: &str = "CANDLE_NUM_THREADS";

/// Runs candle's element-wise operations on one thread unless the user chose otherwise through
/// `CANDLE_NUM_THREADS`; called before the first candle operation of a training run.
///
/// candle's element-wise pool synchronizes every operation with spinning barriers. The reference models' tensors
/// are small, so the second thread gains little on a quiet machine, and on the shared 2-core machine, busy with
/// other work, the spinning took over half of the training process's CPU samples (perf, DS-CNN) while one thread
/// trained the CNN as fast per step. Matrix products (gemm, on rayon's sleeping pool) stay multi-threaded.
/// candle reads the variable once, when its pool is first used, and `std::env` serializes this write with every
/// other read through the standard library.
fn prefer_single_threaded_candle() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(CANDLE_THREADS_ENV).is_none() {
            std::env::set_var(CANDLE_THREADS_ENV, "1");
        }
    });
}

/// Creates candle variables from a seeded generator and remembers them by name.
pub(crate) struct ParamStore {
    rng: rand::rngs::StdRng,
    vars: Vec<(String, Var)>,
}

impl ParamStore {
    pub(crate) fn new(seed: u64) -> Self {
        // Every training run creates its parameters first, before any candle operation.
        prefer_single_threaded_candle();
        ParamStore {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            vars: Vec::new(),
        }
    }

    /// Uniform in `[-bound, bound]`, as PyTorch's default initialization with `bound = 1/sqrt(fan_in)`.
    fn uniform(&mut self, name: &str, shape: &[usize], bound: f32) -> Result<Tensor, ZooError> {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor, ZooError> {
        let count: usize = shape.iter().product();
        self.insert(
            name,
            Tensor::from_vec(vec![value; count], shape, &Device::Cpu)?,
        )
    }

    fn normal(&mut self, name: &str, shape: &[usize], std: f32) -> Result<Tensor, ZooError> {
        // Box–Muller on the seeded generator, so that no other random source is involved.
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| {
                let u1: f32 = self.rng.random_range(f32::EPSILON..1.0);
                let u2: f32 = self.rng.random();
                std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
            })
            .collect();
        self.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    pub(crate) fn insert(&mut self, name: &str, tensor: Tensor) -> Result<Tensor, ZooError> {
        let var = Var::from_tensor(&tensor)?;
        let handle = var.as_tensor().clone();
        self.vars.push((name.to_string(), var));
        Ok(handle)
    }

    fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, var)| var.clone()).collect()
    }

    /// The variable named `name` (fine-tuning writes masked weights back through it).
    pub(crate) fn var(&self, name: &str) -> Option<&Var> {
        self.vars
            .iter()
            .find(|(var_name, _)| var_name == name)
            .map(|(_, var)| var)
    }

    pub(crate) fn named_tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect()
    }
}

fn linear_params(
    store: &mut ParamStore,
    name: &str,
    in_features: usize,
    out_features: usize,
) -> Result<(Tensor, Tensor), ZooError> {
    let bound = 1.0 / (in_features as f32).sqrt();
    let weight = store.uniform(
        &format!("{name}.weight"),
        &[in_features, out_features],
        bound,
    )?;
    let bias = store.uniform(&format!("{name}.bias"), &[out_features], bound)?;
    Ok((weight, bias))
}

fn apply_linear(x: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Result<Tensor, ZooError> {
    // Fold leading axes into rows: one large 2-D product is much faster in candle than a batched product
    // against a broadcast weight.
    let dims = x.dims().to_vec();
    let in_features = dims[dims.len() - 1];
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x
        .reshape((rows, in_features))?
        .matmul(weight)?
        .broadcast_add(bias)?;
    let mut out_dims = dims;
    let last = out_dims.len() - 1;
    out_dims[last] = weight.dim(1)?;
    Ok(y.reshape(out_dims)?)
}

/// A candle model under training: a forward pass from a batch tensor to an output tensor.
pub(crate) trait CandleModel {
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError>;
}

pub(crate) struct CandleMlp {
    pub(crate) layers: Vec<(Tensor, Tensor)>,
}

impl CandleMlp {
    pub(crate) fn new(store: &mut ParamStore, widths: &[usize]) -> Result<Self, ZooError> {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(layer_idx, pair)| {
                linear_params(store, &format!("layers.{layer_idx}"), pair[0], pair[1])
            })
            .collect::<Result<_, _>>()?;
        Ok(CandleMlp { layers })
    }
}

impl CandleModel for CandleMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError> {
        let mut hidden = x.clone();
        for (layer_idx, layer) in self.layers.iter().enumerate() {
            hidden = apply_linear(&hidden, layer)?;
            if layer_idx + 1 < self.layers.len() {
                hidden = hidden.relu()?;
            }
        }
        Ok(hidden)
    }
}

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
    let padded = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let mut taps = Vec::with_capacity(9);
    for kernel_row in 0..3 {
        for kernel_col in 0..3 {
            taps.push(
                padded
                    .narrow(1, kernel_row, height)?
                    .narrow(2, kernel_col, width)?,
            );
        }
    }
    let columns = Tensor::cat(&taps, 3)?.reshape((batch * height * width, 9 * channels))?;
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

/// Shape of the DS-CNN keyword-spotting model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsCnnShape {
    /// Frames per window.
    pub n_frames: usize,
    /// Coefficients per frame.
    pub n_coefficients: usize,
    /// Channels of every layer.
    pub channels: usize,
    /// Depthwise-separable blocks.
    pub n_blocks: usize,
    /// Number of classes.
    pub n_classes: usize,
}

// First convolution of the DS-CNN: MLPerf Tiny's 10 × 4 kernel with stride 2 (padding 1 on every side, as
// candle's conv2d takes one padding for both axes).
const DS_CNN_KERNEL: (usize, usize) = (10, 4);
const DS_CNN_STRIDE: usize = 2;
const DS_CNN_PADDING: usize = 1;

pub(crate) struct CandleDsCnn {
    shape: DsCnnShape,
    conv: (Tensor, Tensor),
    blocks: Vec<((Tensor, Tensor), (Tensor, Tensor))>,
    classifier: (Tensor, Tensor),
}

/// Output height and width of the DS-CNN's first convolution.
pub(crate) fn ds_cnn_conv_output(shape: &DsCnnShape) -> (usize, usize) {
    let (kernel_height, kernel_width) = DS_CNN_KERNEL;
    (
        (shape.n_frames + 2 * DS_CNN_PADDING - kernel_height) / DS_CNN_STRIDE + 1,
        (shape.n_coefficients + 2 * DS_CNN_PADDING - kernel_width) / DS_CNN_STRIDE + 1,
    )
}

/// The training input of [`CandleDsCnn`]: each window standardized, then unfolded into the im2col patches of
/// the first convolution (one row per window, `positions × kernel taps` columns).
///
/// The first convolution's input is data, which needs no gradient, so its im2col is done once here; candle's
/// strided `conv2d` backward also fails on these shapes (its transposed convolution produces 11 columns for 10).
pub(crate) fn ds_cnn_patches(
    features: ArrayView2<'_, f32>,
    shape: &DsCnnShape,
    scaling: &Standardizer,
) -> Result<Array2<f32>, ZooError> {
    let scaled = scaling.apply(features)?;
    let batch = scaled.nrows();
    let windows = scaled
        .into_shape_with_order((batch, shape.n_frames, shape.n_coefficients, 1))
        .map_err(|error| {
            crate::error::shape_error("DS-CNN windows", "n_frames x n_coefficients", error)
        })?;
    let (kernel_height, kernel_width) = DS_CNN_KERNEL;
    let columns = crate::layers::im2col_nhwc(
        windows.view(),
        kernel_height,
        kernel_width,
        DS_CNN_STRIDE,
        DS_CNN_PADDING,
    );
    let per_window = columns.len() / batch.max(1);
    columns
        .into_shape_with_order((batch, per_window))
        .map_err(|error| crate::error::shape_error("DS-CNN patches", "contiguous", error))
}

impl CandleDsCnn {
    pub(crate) fn new(store: &mut ParamStore, shape: DsCnnShape) -> Result<Self, ZooError> {
        let (kernel_height, kernel_width) = DS_CNN_KERNEL;
        let taps = kernel_height * kernel_width;
        // He (Kaiming) uniform initialization, bound sqrt(6 / fan_in), zero biases: without batch normalization
        // PyTorch's default bound 1/sqrt(fan_in) shrinks the signal about threefold per layer, and the network
        // starts at chance with vanishing gradients.
        let he_bound = |fan_in: usize| (6.0 / fan_in as f32).sqrt();
        // Stored as the (taps × channels) matrix the ndarray `Conv2d` multiplies by (one input channel).
        let conv = (
            store.uniform("conv.weight", &[taps, shape.channels], he_bound(taps))?,
            store.constant("conv.bias", &[shape.channels], 0.0)?,
        );
        let mut blocks = Vec::new();
        for block_idx in 0..shape.n_blocks {
            let depthwise = (
                store.uniform(
                    &format!("blocks.{block_idx}.depthwise.weight"),
                    &[shape.channels, 9],
                    he_bound(9),
                )?,
                store.constant(
                    &format!("blocks.{block_idx}.depthwise.bias"),
                    &[shape.channels],
                    0.0,
                )?,
            );
            let pointwise = (
                store.uniform(
                    &format!("blocks.{block_idx}.pointwise.weight"),
                    &[shape.channels, shape.channels],
                    he_bound(shape.channels),
                )?,
                store.constant(
                    &format!("blocks.{block_idx}.pointwise.bias"),
                    &[shape.channels],
                    0.0,
                )?,
            );
            blocks.push((depthwise, pointwise));
        }
        let classifier = linear_params(store, "classifier", shape.channels, shape.n_classes)?;
        Ok(CandleDsCnn {
            shape,
            conv,
            blocks,
            classifier,
        })
    }
}

/// The standardization as named tensors, stored with the DS-CNN's weights (it is part of the model, untrained).
pub(crate) fn scaling_tensors(scaling: &Standardizer) -> Result<[(String, Tensor); 2], ZooError> {
    Ok([
        (
            "input_scaling.mean".into(),
            Tensor::from_slice(&scaling.mean.to_vec(), scaling.mean.len(), &Device::Cpu)?,
        ),
        (
            "input_scaling.std".into(),
            Tensor::from_slice(&scaling.std.to_vec(), scaling.std.len(), &Device::Cpu)?,
        ),
    ])
}

/// Depthwise 3 × 3 convolution, padding 1, on an NHWC tensor, as one matrix multiply.
///
/// The nine shifted copies are concatenated along channels (im2col, `positions × 9·channels`, tap-major) and
/// multiplied by a `9·channels × channels` matrix that is zero except for `weight[c, tap]` at row
/// `tap·channels + c`, column `c`. The block-diagonal matrix does nine times the arithmetic of a true
/// depthwise product, but a matrix multiply (forward and both gradients) costs far less in candle on the CPU
/// than the broadcast multiply and the sum over the tap axis it replaces, whose backward passes are strided
/// reductions over the whole activation.
fn depthwise_nhwc(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, ZooError> {
    let (batch, height, width, channels) = x.dims4()?;
    let padded = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let mut taps = Vec::with_capacity(9);
    for kernel_row in 0..3 {
        for kernel_col in 0..3 {
            taps.push(
                padded
                    .narrow(1, kernel_row, height)?
                    .narrow(2, kernel_col, width)?,
            );
        }
    }
    let columns = Tensor::cat(&taps, 3)?.reshape((batch * height * width, 9 * channels))?;
    // weight is channels × 9; as 9 × channels × 1 times the identity it becomes the block-diagonal matrix.
    let identity =
        Tensor::eye(channels, DType::F32, &Device::Cpu)?.reshape((1, channels, channels))?;
    let kernel = weight
        .t()?
        .reshape((9, channels, 1))?
        .broadcast_mul(&identity)?
        .reshape((9 * channels, channels))?;
    Ok(columns
        .matmul(&kernel)?
        .broadcast_add(bias)?
        .reshape((batch, height, width, channels))?)
}

impl CandleModel for CandleDsCnn {
    /// `x`: patches from [`ds_cnn_patches`], `batch × (positions · taps)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError> {
        let batch = x.dim(0)?;
        let (out_height, out_width) = ds_cnn_conv_output(&self.shape);
        let taps = DS_CNN_KERNEL.0 * DS_CNN_KERNEL.1;
        let positions = x.reshape((batch * out_height * out_width, taps))?;
        let mut hidden = apply_linear(&positions, &self.conv)?.relu()?.reshape((
            batch,
            out_height,
            out_width,
            self.shape.channels,
        ))?;
        for ((depthwise_weight, depthwise_bias), pointwise) in &self.blocks {
            let (_, height, width, channels) = hidden.dims4()?;
            let spatial = depthwise_nhwc(&hidden, depthwise_weight, depthwise_bias)?.relu()?;
            let positions = spatial.reshape((batch * height * width, channels))?;
            hidden = apply_linear(&positions, pointwise)?
                .relu()?
                .reshape((batch, height, width, channels))?;
        }
        let pooled = hidden.mean(2)?.mean(1)?;
        apply_linear(&pooled, &self.classifier)
    }
}

pub(crate) struct CandleCharTransformer {
    config: CharTransformerConfig,
    token_embedding: Tensor,
    position_embedding: Tensor,
    blocks: Vec<CandleBlock>,
    ln_final: (Tensor, Tensor),
    lm_head: (Tensor, Tensor),
}

struct CandleBlock {
    ln1: (Tensor, Tensor),
    query: (Tensor, Tensor),
    key: (Tensor, Tensor),
    value: (Tensor, Tensor),
    output: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
    mlp_up: (Tensor, Tensor),
    mlp_down: (Tensor, Tensor),
}

pub(crate) const LAYER_NORM_EPS: f32 = 1e-5;

fn layer_norm_params(
    store: &mut ParamStore,
    name: &str,
    width: usize,
) -> Result<(Tensor, Tensor), ZooError> {
    Ok((
        store.constant(&format!("{name}.gamma"), &[width], 1.0)?,
        store.constant(&format!("{name}.beta"), &[width], 0.0)?,
    ))
}

fn apply_layer_norm(x: &Tensor, (gamma, beta): &(Tensor, Tensor)) -> Result<Tensor, ZooError> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(variance + f64::from(LAYER_NORM_EPS))?.sqrt()?)?;
    Ok(normed.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

impl CandleCharTransformer {
    pub(crate) fn new(
        store: &mut ParamStore,
        config: CharTransformerConfig,
    ) -> Result<Self, ZooError> {
        // GPT-2 style initialization: N(0, 0.02) embeddings; linear layers PyTorch-default uniform.
        let token_embedding = store.normal(
            "token_embedding",
            &[config.vocab_size, config.d_model],
            0.02,
        )?;
        let position_embedding = store.normal(
            "position_embedding",
            &[config.context_length, config.d_model],
            0.02,
        )?;
        let mut blocks = Vec::new();
        for layer_idx in 0..config.n_layers {
            let name = |part: &str| format!("blocks.{layer_idx}.{part}");
            blocks.push(CandleBlock {
                ln1: layer_norm_params(store, &name("ln1"), config.d_model)?,
                query: linear_params(store, &name("query"), config.d_model, config.d_model)?,
                key: linear_params(store, &name("key"), config.d_model, config.d_model)?,
                value: linear_params(store, &name("value"), config.d_model, config.d_model)?,
                output: linear_params(store, &name("output"), config.d_model, config.d_model)?,
                ln2: layer_norm_params(store, &name("ln2"), config.d_model)?,
                mlp_up: linear_params(store, &name("mlp_up"), config.d_model, config.d_ff)?,
                mlp_down: linear_params(store, &name("mlp_down"), config.d_ff, config.d_model)?,
            });
        }
        let ln_final = layer_norm_params(store, "ln_final", config.d_model)?;
        let lm_head = linear_params(store, "lm_head", config.d_model, config.vocab_size)?;
        Ok(CandleCharTransformer {
            config,
            token_embedding,
            position_embedding,
            blocks,
            ln_final,
            lm_head,
        })
    }

    /// Logits `batch × length × vocab` for token ids `batch × length` (u32).
    pub(crate) fn logits(&self, tokens: &Tensor) -> Result<Tensor, ZooError> {
        let (batch, length) = tokens.dims2()?;
        let config = &self.config;
        let d_head = config.d_model / config.n_heads;
        let embedded = self
            .token_embedding
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((batch, length, config.d_model))?
            .broadcast_add(&self.position_embedding.narrow(0, 0, length)?)?;
        let mask: Vec<f32> = (0..length * length)
            .map(|idx| {
                if idx % length > idx / length {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (length, length), &Device::Cpu)?;
        let scale = 1.0 / (d_head as f64).sqrt();
        let mut residual = embedded;
        for block in &self.blocks {
            let normed = apply_layer_norm(&residual, &block.ln1)?;
            let split_heads = |projection: &(Tensor, Tensor)| -> Result<Tensor, ZooError> {
                Ok(apply_linear(&normed, projection)?
                    .reshape((batch, length, config.n_heads, d_head))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let queries = split_heads(&block.query)?;
            let keys = split_heads(&block.key)?;
            let values = split_heads(&block.value)?;
            let scores =
                (queries.matmul(&keys.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let mixed = weights
                .matmul(&values)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, length, config.d_model))?;
            residual = (residual + apply_linear(&mixed, &block.output)?)?;
            let normed = apply_layer_norm(&residual, &block.ln2)?;
            let hidden = apply_linear(&normed, &block.mlp_up)?.gelu()?;
            residual = (residual + apply_linear(&hidden, &block.mlp_down)?)?;
        }
        apply_linear(&apply_layer_norm(&residual, &self.ln_final)?, &self.lm_head)
    }
}

/// Which loss a training loop minimizes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objective<'a> {
    /// Cross-entropy against class labels.
    Classification(&'a [usize]),
    /// Mean squared error against the input itself.
    Reconstruction,
}

/// Mini-batch AdamW over the rows of `features`.
pub(crate) fn fit(
    model_name: &str,
    model: &dyn CandleModel,
    store: &ParamStore,
    features: ArrayView2<'_, f32>,
    objective: Objective<'_>,
    config: &TrainConfig,
) -> Result<TrainingLog, ZooError> {
    fit_with_hook(
        model_name,
        model,
        store,
        features,
        objective,
        config,
        &mut |_| Ok(()),
    )
}

/// As [`fit`], calling `after_step` with the number of optimizer steps taken after each step (fine-tuning
/// after pruning re-applies its masks there).
pub(crate) fn fit_with_hook(
    model_name: &str,
    model: &dyn CandleModel,
    store: &ParamStore,
    features: ArrayView2<'_, f32>,
    objective: Objective<'_>,
    config: &TrainConfig,
    after_step: &mut dyn FnMut(usize) -> Result<(), ZooError>,
) -> Result<TrainingLog, ZooError> {
    let n_samples = features.nrows();
    if n_samples == 0 || config.batch_size == 0 || config.epochs == 0 {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "{n_samples} samples, batch size {}, {} epochs",
                config.batch_size, config.epochs
            ),
        });
    }
    let started = Stopwatch::start();
    let contiguous = features.as_standard_layout();
    let all_features = Tensor::from_vec(
        contiguous.iter().copied().collect::<Vec<f32>>(),
        (n_samples, features.ncols()),
        &Device::Cpu,
    )?;
    let all_labels = match objective {
        Objective::Classification(labels) => {
            let labels: Vec<u32> = labels.iter().map(|&label| label as u32).collect();
            Some(Tensor::from_vec(labels, n_samples, &Device::Cpu)?)
        }
        Objective::Reconstruction => None,
    };
    let mut optimizer = AdamW::new(
        store.vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    // A different stream from initialization, so that changing the model size does not change the batch order.
    let mut shuffle_rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x05ee_d0fb_a7c4);
    let mut order: Vec<u32> = (0..n_samples as u32).collect();
    let (mut log, cpu_at_start) = TrainingLog::started();
    'epochs: for _ in 0..config.epochs {
        order.shuffle(&mut shuffle_rng);
        let mut epoch_sum = 0.0f32;
        let mut epoch_steps = 0;
        for batch in order.chunks(config.batch_size) {
            if config
                .max_steps
                .is_some_and(|max_steps| log.steps >= max_steps)
            {
                if epoch_steps > 0 {
                    log.epoch_losses.push(epoch_sum / epoch_steps as f32);
                }
                break 'epochs;
            }
            let indices = Tensor::from_slice(batch, batch.len(), &Device::Cpu)?;
            let x = all_features.index_select(&indices, 0)?;
            let output = model.forward(&x)?;
            let loss = match &all_labels {
                Some(labels) => {
                    candle_nn::loss::cross_entropy(&output, &labels.index_select(&indices, 0)?)?
                }
                None => candle_nn::loss::mse(&output, &x)?,
            };
            optimizer.backward_step(&loss)?;
            let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(ZooError::Diverged {
                    model: model_name.into(),
                    step: log.steps,
                    loss: loss_value,
                });
            }
            log.step_losses.push(loss_value);
            log.steps += 1;
            after_step(log.steps)?;
            epoch_sum += loss_value;
            epoch_steps += 1;
            if verbose() && log.steps.is_multiple_of(100) {
                eprintln!(
                    "{model_name}: step {} loss {loss_value:.4}, {:.1} s",
                    log.steps,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        log.epoch_losses.push(epoch_sum / epoch_steps.max(1) as f32);
        if verbose() {
            eprintln!(
                "{model_name}: epoch {} mean loss {:.4}, {} steps, {:.1} s",
                log.epoch_losses.len(),
                log.epoch_losses[log.epoch_losses.len() - 1],
                log.steps,
                started.elapsed().as_secs_f64()
            );
        }
    }
    log.finish(started, cpu_at_start);
    Ok(log)
}

/// Whether `TORCHPERF_ZOO_VERBOSE=1`: training then prints its progress to standard error.
fn verbose() -> bool {
    std::env::var("TORCHPERF_ZOO_VERBOSE").is_ok_and(|value| value == "1")
}

/// Trains a character transformer on random windows of `tokens`; `config.epochs` counts optimizer steps in
/// thousands is awkward, so here `epochs × (len / (batch · context))` windows are drawn.
pub(crate) fn fit_char_transformer(
    model: &CandleCharTransformer,
    store: &ParamStore,
    tokens: &[u32],
    config: &TrainConfig,
    n_steps: usize,
) -> Result<TrainingLog, ZooError> {
    let context = model.config.context_length;
    if tokens.len() <= context + 1 || n_steps == 0 || config.batch_size == 0 {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "{} tokens for context {context}, {n_steps} steps",
                tokens.len()
            ),
        });
    }
    let started = Stopwatch::start();
    let mut optimizer = AdamW::new(
        store.vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x7e47);
    let (mut log, cpu_at_start) = TrainingLog::started();
    let steps_per_report = 50.max(n_steps / 20);
    let mut window_sum = 0.0;
    for step in 0..n_steps {
        if config.max_steps.is_some_and(|max_steps| step >= max_steps) {
            break;
        }
        // Cosine decay to 10% of the peak rate over the run.
        let progress = step as f64 / n_steps as f64;
        optimizer.set_learning_rate(
            config.learning_rate
                * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())),
        );
        let mut inputs = Vec::with_capacity(config.batch_size * context);
        let mut targets = Vec::with_capacity(config.batch_size * context);
        for _ in 0..config.batch_size {
            let start = rng.random_range(0..tokens.len() - context - 1);
            inputs.extend_from_slice(&tokens[start..start + context]);
            targets.extend_from_slice(&tokens[start + 1..start + context + 1]);
        }
        let inputs = Tensor::from_vec(inputs, (config.batch_size, context), &Device::Cpu)?;
        let targets = Tensor::from_vec(targets, config.batch_size * context, &Device::Cpu)?;
        let logits = model
            .logits(&inputs)?
            .reshape((config.batch_size * context, model.config.vocab_size))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        optimizer.backward_step(&loss)?;
        let loss_value = loss.to_scalar::<f32>()?;
        if !loss_value.is_finite() {
            return Err(ZooError::Diverged {
                model: "char-transformer".into(),
                step,
                loss: loss_value,
            });
        }
        log.step_losses.push(loss_value);
        log.steps += 1;
        window_sum += loss_value;
        if log.steps.is_multiple_of(steps_per_report) {
            log.epoch_losses.push(window_sum / steps_per_report as f32);
            window_sum = 0.0;
            if verbose() {
                eprintln!(
                    "char-transformer: step {} mean loss {:.4}, {:.1} s",
                    log.steps,
                    log.epoch_losses[log.epoch_losses.len() - 1],
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    log.finish(started, cpu_at_start);
    Ok(log)
}

// ---- Export: named candle tensors → ndarray models ----

fn weights_error(model: &str, reason: String) -> ZooError {
    ZooError::Weights {
        model: model.into(),
        reason,
    }
}

fn tensor<'a>(
    tensors: &'a HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<&'a Tensor, ZooError> {
    tensors
        .get(name)
        .ok_or_else(|| weights_error(model, format!("missing tensor {name}")))
}

fn array2(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Array2<f32>, ZooError> {
    let value = tensor(tensors, model, name)?;
    let (rows, cols) = value
        .dims2()
        .map_err(|error| weights_error(model, format!("{name}: {error}")))?;
    let data = value
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Array2::from_shape_vec((rows, cols), data)
        .map_err(|error| weights_error(model, format!("{name}: {error}")))
}

fn array1(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Array1<f32>, ZooError> {
    let value = tensor(tensors, model, name)?;
    if value.rank() != 1 {
        return Err(weights_error(
            model,
            format!("{name} has rank {}, expected 1", value.rank()),
        ));
    }
    Ok(Array1::from_vec(
        value.to_dtype(DType::F32)?.to_vec1::<f32>()?,
    ))
}

fn linear(tensors: &HashMap<String, Tensor>, model: &str, name: &str) -> Result<Linear, ZooError> {
    let weight = array2(tensors, model, &format!("{name}.weight"))?;
    let bias = array1(tensors, model, &format!("{name}.bias"))?;
    if bias.len() != weight.ncols() {
        return Err(weights_error(
            model,
            format!("{name}: bias {} for {} outputs", bias.len(), weight.ncols()),
        ));
    }
    Ok(Linear { weight, bias })
}

fn layer_norm(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<LayerNorm, ZooError> {
    Ok(LayerNorm {
        gamma: array1(tensors, model, &format!("{name}.gamma"))?,
        beta: array1(tensors, model, &format!("{name}.beta"))?,
        eps: LAYER_NORM_EPS,
    })
}

/// A `c_out × c_in × kh × kw` kernel as the `(c_in·kh·kw) × c_out` matrix [`Conv2d`] multiplies by.
fn conv2d(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
    stride: usize,
    padding: usize,
) -> Result<Conv2d, ZooError> {
    let kernel = tensor(tensors, model, &format!("{name}.weight"))?;
    let (out_channels, in_channels, kernel_height, kernel_width) = kernel
        .dims4()
        .map_err(|error| weights_error(model, format!("{name}: {error}")))?;
    let flat = kernel
        .reshape((out_channels, in_channels * kernel_height * kernel_width))?
        .t()?
        .contiguous()?;
    let mut flat_map = HashMap::new();
    flat_map.insert("w".to_string(), flat);
    let weight = array2(&flat_map, model, "w")?;
    let bias = array1(tensors, model, &format!("{name}.bias"))?;
    Ok(Conv2d {
        weight,
        bias,
        in_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
    })
}

pub(crate) fn export_mlp(tensors: &HashMap<String, Tensor>, model: &str) -> Result<Mlp, ZooError> {
    let mut layers = Vec::new();
    while tensors.contains_key(&format!("layers.{}.weight", layers.len())) {
        layers.push(linear(tensors, model, &format!("layers.{}", layers.len()))?);
    }
    if layers.is_empty() {
        return Err(weights_error(model, "no layers.0.weight".into()));
    }
    Ok(Mlp { layers })
}

/// A tap-major `3 × 3 × in × out` kernel (as `conv3x3_pool_relu_nhwc` trains it) as a [`Conv2d`] with padding 1.
fn conv3x3_from_tap_major(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    name: &str,
) -> Result<Conv2d, ZooError> {
    let kernel = tensor(tensors, model, &format!("{name}.weight"))?;
    let dims = kernel.dims().to_vec();
    if dims.len() != 4 || dims[0] != 3 || dims[1] != 3 {
        return Err(weights_error(
            model,
            format!("{name}.weight has shape {dims:?}, expected 3x3xinxout"),
        ));
    }
    // (kh, kw, in, out) → (out, in, kh, kw), the layout `conv2d` below converts.
    let mut converted = HashMap::new();
    converted.insert(
        format!("{name}.weight"),
        kernel.permute((3, 2, 0, 1))?.contiguous()?,
    );
    converted.insert(
        format!("{name}.bias"),
        tensor(tensors, model, &format!("{name}.bias"))?.clone(),
    );
    conv2d(&converted, model, name, 1, 1)
}

pub(crate) fn export_cnn(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    shape: CnnShape,
) -> Result<Cnn, ZooError> {
    Ok(Cnn {
        image_height: shape.image_height,
        image_width: shape.image_width,
        conv1: conv3x3_from_tap_major(tensors, model, "conv1")?,
        conv2: conv3x3_from_tap_major(tensors, model, "conv2")?,
        classifier: linear(tensors, model, "classifier")?,
    })
}

pub(crate) fn export_ds_cnn(
    tensors: &HashMap<String, Tensor>,
    model: &str,
    shape: DsCnnShape,
) -> Result<DsCnn, ZooError> {
    let blocks = (0..shape.n_blocks)
        .map(|block_idx| {
            Ok(DepthwiseSeparableBlock {
                depthwise: DepthwiseConv2d {
                    weight: array2(
                        tensors,
                        model,
                        &format!("blocks.{block_idx}.depthwise.weight"),
                    )?,
                    bias: array1(
                        tensors,
                        model,
                        &format!("blocks.{block_idx}.depthwise.bias"),
                    )?,
                    kernel_height: 3,
                    kernel_width: 3,
                    padding: 1,
                },
                pointwise: linear(tensors, model, &format!("blocks.{block_idx}.pointwise"))?,
            })
        })
        .collect::<Result<_, ZooError>>()?;
    Ok(DsCnn {
        n_frames: shape.n_frames,
        n_coefficients: shape.n_coefficients,
        input_scaling: Standardizer {
            mean: array1(tensors, model, "input_scaling.mean")?,
            std: array1(tensors, model, "input_scaling.std")?,
        },
        conv: Conv2d {
            weight: array2(tensors, model, "conv.weight")?,
            bias: array1(tensors, model, "conv.bias")?,
            in_channels: 1,
            kernel_height: DS_CNN_KERNEL.0,
            kernel_width: DS_CNN_KERNEL.1,
            stride: DS_CNN_STRIDE,
            padding: DS_CNN_PADDING,
        },
        blocks,
        classifier: linear(tensors, model, "classifier")?,
    })
}

pub(crate) fn export_char_transformer(
    tensors: &HashMap<String, Tensor>,
    config: &CharTransformerConfig,
    vocabulary: Vec<char>,
) -> Result<CharTransformer, ZooError> {
    let model = "char-transformer";
    if vocabulary.len() != config.vocab_size {
        return Err(weights_error(
            model,
            format!(
                "{} characters for vocab_size {}",
                vocabulary.len(),
                config.vocab_size
            ),
        ));
    }
    let blocks = (0..config.n_layers)
        .map(|layer_idx| {
            let name = |part: &str| format!("blocks.{layer_idx}.{part}");
            Ok(TransformerBlock {
                ln1: layer_norm(tensors, model, &name("ln1"))?,
                query: linear(tensors, model, &name("query"))?,
                key: linear(tensors, model, &name("key"))?,
                value: linear(tensors, model, &name("value"))?,
                output: linear(tensors, model, &name("output"))?,
                ln2: layer_norm(tensors, model, &name("ln2"))?,
                mlp_up: linear(tensors, model, &name("mlp_up"))?,
                mlp_down: linear(tensors, model, &name("mlp_down"))?,
            })
        })
        .collect::<Result<_, ZooError>>()?;
    Ok(CharTransformer {
        config: config.clone(),
        vocabulary,
        token_embedding: array2(tensors, model, "token_embedding")?,
        position_embedding: array2(tensors, model, "position_embedding")?,
        blocks,
        ln_final: layer_norm(tensors, model, "ln_final")?,
        lm_head: linear(tensors, model, "lm_head")?,
    })
}

/// Trains an MLP classifier with hidden widths `hidden` on `features`/`labels`.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for empty data or a zero batch size; [`ZooError::Diverged`]; candle errors.
pub fn train_mlp_classifier(
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    n_classes: usize,
    hidden: &[usize],
    config: &TrainConfig,
) -> Result<(Mlp, TrainingLog), ZooError> {
    let mut widths = vec![features.ncols()];
    widths.extend_from_slice(hidden);
    widths.push(n_classes);
    let mut store = ParamStore::new(config.seed);
    let model = CandleMlp::new(&mut store, &widths)?;
    let log = fit(
        "mlp",
        &model,
        &store,
        features,
        Objective::Classification(labels),
        config,
    )?;
    Ok((export_mlp(&store.named_tensors(), "mlp")?, log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Classifier;
    use ndarray::Array2;

    fn random_rows(n_rows: usize, n_cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n_rows, n_cols), |_| rng.random_range(-1.0f32..1.0))
    }

    fn candle_rows(x: &Array2<f32>) -> Tensor {
        Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap()
    }

    fn assert_close(candle_output: &Tensor, ndarray_output: &Array2<f32>) {
        let expected = candle_output.to_vec2::<f32>().unwrap();
        assert_eq!((expected.len(), expected[0].len()), ndarray_output.dim());
        for (row, expected_row) in ndarray_output.rows().into_iter().zip(&expected) {
            for (&actual, &wanted) in row.iter().zip(expected_row) {
                // f32 sums of a few hundred terms in different orders: 1e-4 absolute plus 1e-4 relative.
                assert!(
                    (actual - wanted).abs() <= 1e-4 + 1e-4 * wanted.abs(),
                    "{actual} vs {wanted}"
                );
            }
        }
    }

    #[test]
    fn exported_mlp_matches_candle() {
        let mut store = ParamStore::new(1);
        let model = CandleMlp::new(&mut store, &[7, 5, 3]).unwrap();
        let x = random_rows(4, 7, 2);
        let exported = export_mlp(&store.named_tensors(), "mlp").unwrap();
        assert_close(
            &model.forward(&candle_rows(&x)).unwrap(),
            &exported.forward(x.view()).unwrap(),
        );
    }

    #[test]
    fn exported_cnn_matches_candle() {
        let shape = CnnShape {
            image_height: 8,
            image_width: 12,
            conv1_channels: 3,
            conv2_channels: 4,
            n_classes: 5,
        };
        let mut store = ParamStore::new(3);
        let model = CandleCnn::new(&mut store, shape).unwrap();
        let x = random_rows(2, 96, 4);
        let exported = export_cnn(&store.named_tensors(), "cnn", shape).unwrap();
        assert_close(
            &model.forward(&candle_rows(&x)).unwrap(),
            &exported.logits(x.view()).unwrap(),
        );
    }

    #[test]
    fn exported_ds_cnn_matches_candle() {
        let shape = DsCnnShape {
            n_frames: 49,
            n_coefficients: 10,
            channels: 4,
            n_blocks: 2,
            n_classes: 3,
        };
        let x = random_rows(3, 490, 5);
        let scaling = Standardizer::fit(x.view());
        let mut store = ParamStore::new(6);
        let model = CandleDsCnn::new(&mut store, shape).unwrap();
        let mut tensors = store.named_tensors();
        tensors.extend(scaling_tensors(&scaling).unwrap());
        let exported = export_ds_cnn(&tensors, "ds-cnn", shape).unwrap();
        let patches = ds_cnn_patches(x.view(), &shape, &scaling).unwrap();
        assert_close(
            &model.forward(&candle_rows(&patches)).unwrap(),
            &exported.logits(x.view()).unwrap(),
        );
    }

    #[test]
    fn exported_char_transformer_matches_candle() {
        let config = CharTransformerConfig {
            vocab_size: 11,
            context_length: 8,
            d_model: 8,
            n_heads: 2,
            n_layers: 2,
            d_ff: 16,
        };
        let mut store = ParamStore::new(7);
        let model = CandleCharTransformer::new(&mut store, config.clone()).unwrap();
        // Perturb LayerNorm parameters away from 1/0 so that the test exercises them.
        for (name, var) in &store.vars {
            if name.contains("ln") {
                let shifted = (var.as_tensor() + 0.3).unwrap();
                var.set(&shifted).unwrap();
            }
        }
        let tokens: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6];
        let vocabulary: Vec<char> = "abcdefghijk".chars().collect();
        let exported =
            export_char_transformer(&store.named_tensors(), &config, vocabulary).unwrap();
        let candle_logits = model
            .logits(&Tensor::from_slice(&tokens, (1, 8), &Device::Cpu).unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap();
        assert_close(&candle_logits, &exported.forward(&tokens).unwrap());
        // A prefix gives the prefix of the logits: attention is causal.
        let prefix_logits = exported.forward(&tokens[..5]).unwrap();
        let full_logits = exported.forward(&tokens).unwrap();
        for (prefix_value, full_value) in prefix_logits
            .iter()
            .zip(full_logits.slice(ndarray::s![..5, ..]).iter())
        {
            assert!((prefix_value - full_value).abs() < 1e-5);
        }
    }

    #[test]
    fn short_training_lowers_loss_and_is_deterministic() {
        let (set, _) = datasets::load_digits().unwrap();
        let config = TrainConfig {
            epochs: 2,
            batch_size: 64,
            learning_rate: 1e-2,
            max_steps: Some(40),
            ..TrainConfig::default()
        };
        let (mlp, log) =
            train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &config).unwrap();
        assert_eq!(log.steps, 40);
        let first: f32 = log.step_losses[..3].iter().sum::<f32>() / 3.0;
        let last: f32 = log.step_losses[37..].iter().sum::<f32>() / 3.0;
        assert!(
            last < 0.6 * first,
            "loss did not decrease: {first} -> {last}"
        );
        let (mlp_again, log_again) =
            train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &config).unwrap();
        assert_eq!(log.step_losses, log_again.step_losses);
        assert_eq!(mlp, mlp_again);
        let other_seed = TrainConfig { seed: 1, ..config };
        let (mlp_other, _) =
            train_mlp_classifier(set.features().view(), set.labels(), 10, &[32], &other_seed)
                .unwrap();
        assert_ne!(mlp, mlp_other);
    }
}
