//! The parameter store: candle variables created from one seeded generator, in a fixed order, so that a seed
//! fully determines a model's initial weights; and the fully connected layer every model is built from (its
//! weight stored `in × out`, as the exported [`crate::layers::Linear`] holds it, so export is a copy).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::config::prefer_single_threaded_candle;
use crate::ZooError;

/// Creates candle variables from a seeded generator and remembers them by name.
pub(crate) struct ParamStore {
    rng: rand::rngs::StdRng,
    /// The variables in creation order, with their names.
    pub(super) vars: Vec<(String, Var)>,
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
    pub(crate) fn uniform(
        &mut self,
        name: &str,
        shape: &[usize],
        bound: f32,
    ) -> Result<Tensor, ZooError> {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    pub(crate) fn constant(
        &mut self,
        name: &str,
        shape: &[usize],
        value: f32,
    ) -> Result<Tensor, ZooError> {
        let count: usize = shape.iter().product();
        self.insert(
            name,
            Tensor::from_vec(vec![value; count], shape, &Device::Cpu)?,
        )
    }

    pub(crate) fn normal(
        &mut self,
        name: &str,
        shape: &[usize],
        std: f32,
    ) -> Result<Tensor, ZooError> {
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

    pub(crate) fn vars(&self) -> Vec<Var> {
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

pub(crate) fn linear_params(
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

/// `x · weight + bias` over the last axis of `x`.
pub(crate) fn apply_linear(
    x: &Tensor,
    (weight, bias): &(Tensor, Tensor),
) -> Result<Tensor, ZooError> {
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

/// The im2col of a 3 × 3 convolution with stride 1 and zero padding 1 on an NHWC tensor: the nine shifted
/// copies concatenated along channels, `(batch · height · width) × (9 · channels)`, tap-major (row by row of
/// the kernel). A matrix multiply then convolves (candle's own `conv2d` computes the input gradient with a
/// transposed convolution that is far slower on the CPU).
pub(crate) fn im2col_3x3_nhwc(x: &Tensor) -> Result<Tensor, ZooError> {
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
    Ok(Tensor::cat(&taps, 3)?.reshape((batch * height * width, 9 * channels))?)
}
