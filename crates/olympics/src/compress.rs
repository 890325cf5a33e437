//! Compressed layers for the reference submissions: one [`CompressedLinear`] that stores its weight dense
//! f32, int8 (quant), f16 (quant's `HalfTensor`) or pruned sparse (accel's CSR), magnitude pruning
//! (unstructured, and structured by whole neurons), and an MLP of such layers.
//!
//! Every size is the bytes of the buffers that really exist.

use accel::CsrMatrix;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use quant::{ActivationQuant, GemmConfig, HalfPrecision, HalfTensor, QuantType, QuantizedLinear};
use zoo::{Linear, Mlp};

use crate::error::{invalid, shape_error, OlympicsError};

/// How a layer's weight is stored (and computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightFormat {
    /// f32, dense, on accel's matmul.
    F32,
    /// Int8 per-channel symmetric weights, u8 activations quantized per batch (quant's integer GEMM).
    Int8,
    /// IEEE f16 weights, widened to f32 for each product (half the bytes, extra conversion work).
    F16,
}

/// A compression recipe for a network of linear layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// Weight storage.
    pub format: WeightFormat,
    /// Share of hidden neurons removed (structured pruning), e.g. 0.5.
    pub structured: Option<f64>,
    /// Share of weights removed by magnitude in each layer (unstructured pruning, stored CSR), e.g. 0.75.
    /// Only with [`WeightFormat::F32`] (CSR holds f32 values).
    pub unstructured: Option<f64>,
}

/// Name of the uncompressed reference submission in every family (the baseline that relative targets
/// and the challenge are judged against). It lives beside [`Recipe::BASELINE`], so the reference fields
/// and the challenge both name it without importing each other.
pub const BASELINE_SUBMISSION: &str = "f32_baseline";

impl Recipe {
    /// The dense f32 baseline.
    pub const BASELINE: Recipe = Recipe {
        format: WeightFormat::F32,
        structured: None,
        unstructured: None,
    };

    /// Each kind of compressed projection once, by name: `f32` (the baseline), `int8`, `f16`, `csr_50`
    /// (half the weights pruned, CSR), `neurons_50` and `neurons_50_int8` (half the MLP's hidden neurons
    /// removed, f32 and int8) — the kinds a correctness check of compressed layers goes through.
    pub fn projection_kinds() -> Vec<(&'static str, Recipe)> {
        let recipe = |format, structured, unstructured| Recipe {
            format,
            structured,
            unstructured,
        };
        vec![
            ("f32", Recipe::BASELINE),
            ("int8", recipe(WeightFormat::Int8, None, None)),
            ("f16", recipe(WeightFormat::F16, None, None)),
            ("csr_50", recipe(WeightFormat::F32, None, Some(0.5))),
            ("neurons_50", recipe(WeightFormat::F32, Some(0.5), None)),
            (
                "neurons_50_int8",
                recipe(WeightFormat::Int8, Some(0.5), None),
            ),
        ]
    }

    /// The optimizations this recipe declares.
    pub fn optimizations(&self) -> Vec<crate::Optimization> {
        let mut list = Vec::new();
        match self.format {
            WeightFormat::F32 => {}
            WeightFormat::Int8 => list.push(crate::Optimization::Int8),
            WeightFormat::F16 => list.push(crate::Optimization::HalfPrecision),
        }
        if let Some(fraction) = self.structured {
            list.push(crate::Optimization::StructuredPruning {
                sparsity_percent: (100.0 * fraction).round() as u32,
            });
        }
        if let Some(fraction) = self.unstructured {
            list.push(crate::Optimization::UnstructuredPruning {
                sparsity_percent: (100.0 * fraction).round() as u32,
            });
        }
        list
    }
}

/// `y = x · W + b` with `W` (`in × out`) in one of several storages.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CompressedLinear {
    /// Dense f32.
    Dense(Linear),
    /// Int8 weights (quant).
    Int8(QuantizedLinear),
    /// f16 weights, `in × out` row-major, and the f32 bias.
    Half {
        /// The weights.
        weight: HalfTensor,
        /// `[in, out]`.
        shape: [usize; 2],
        /// The bias.
        bias: Array1<f32>,
    },
    /// Pruned weights as CSR of `Wᵀ` (`out × in`), so that row `j` holds output `j`'s surviving inputs.
    Sparse {
        /// `Wᵀ` in CSR.
        weight_transposed: CsrMatrix,
        /// The bias.
        bias: Array1<f32>,
    },
}

fn f32_bytes(values: usize) -> usize {
    values * std::mem::size_of::<f32>()
}

impl CompressedLinear {
    /// `layer` stored as `format`.
    ///
    /// # Errors
    /// quant's errors (non-finite weights).
    pub fn new(layer: &Linear, format: WeightFormat) -> Result<Self, OlympicsError> {
        Ok(match format {
            WeightFormat::F32 => CompressedLinear::Dense(layer.clone()),
            WeightFormat::Int8 => CompressedLinear::Int8(QuantizedLinear::new(
                layer.weight.view(),
                layer.bias.view(),
                QuantType::Int8,
                ActivationQuant::Dynamic,
            )?),
            WeightFormat::F16 => CompressedLinear::Half {
                weight: HalfTensor::from_f32(layer.weight.view().into_dyn(), HalfPrecision::F16)?,
                shape: [layer.in_features(), layer.out_features()],
                bias: layer.bias.clone(),
            },
        })
    }

    /// `layer` with the `sparsity` share of its smallest-magnitude weights removed, stored CSR.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for a sparsity outside [0, 1); accel's errors.
    pub fn sparse(layer: &Linear, sparsity: f64) -> Result<Self, OlympicsError> {
        let pruned = prune_magnitude(layer.weight.view(), sparsity)?;
        let transposed = pruned.t().as_standard_layout().to_owned();
        Ok(CompressedLinear::Sparse {
            weight_transposed: CsrMatrix::from_dense(transposed.view(), 0.0)?,
            bias: layer.bias.clone(),
        })
    }

    /// Inputs.
    pub fn in_features(&self) -> usize {
        match self {
            CompressedLinear::Dense(layer) => layer.in_features(),
            CompressedLinear::Int8(layer) => layer.in_features(),
            CompressedLinear::Half { shape, .. } => shape[0],
            CompressedLinear::Sparse {
                weight_transposed, ..
            } => weight_transposed.shape()[1],
        }
    }

    /// Outputs.
    pub fn out_features(&self) -> usize {
        match self {
            CompressedLinear::Dense(layer) => layer.out_features(),
            CompressedLinear::Int8(layer) => layer.out_features(),
            CompressedLinear::Half { shape, .. } => shape[1],
            CompressedLinear::Sparse {
                weight_transposed, ..
            } => weight_transposed.shape()[0],
        }
    }

    /// Bytes of every buffer.
    pub fn storage_bytes(&self) -> usize {
        match self {
            CompressedLinear::Dense(layer) => f32_bytes(layer.weight.len() + layer.bias.len()),
            CompressedLinear::Int8(layer) => layer.storage_bytes(),
            CompressedLinear::Half { weight, bias, .. } => {
                weight.storage_bytes() + f32_bytes(bias.len())
            }
            CompressedLinear::Sparse {
                weight_transposed,
                bias,
            } => weight_transposed.storage_bytes() + f32_bytes(bias.len()),
        }
    }

    /// `x · W + b`.
    ///
    /// # Errors
    /// [`OlympicsError::Shape`] for the wrong input width; kernel errors.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        if x.ncols() != self.in_features() {
            return Err(shape_error(
                "compressed linear input",
                self.in_features(),
                x.ncols(),
            ));
        }
        match self {
            CompressedLinear::Dense(layer) => Ok(layer.forward(x)?),
            CompressedLinear::Int8(layer) => Ok(layer.forward(x, &GemmConfig::default())?.0),
            CompressedLinear::Half {
                weight,
                shape,
                bias,
            } => {
                let widened = weight
                    .to_f32()
                    .into_shape_with_order((shape[0], shape[1]))
                    .map_err(|error| shape_error("f16 weight", "in × out", error))?;
                let mut y = accel::matmul(x, widened.view())?;
                y += bias;
                Ok(y)
            }
            CompressedLinear::Sparse {
                weight_transposed,
                bias,
            } => {
                let x_transposed = x.t().as_standard_layout().to_owned();
                let y_transposed = weight_transposed.matmul_dense(x_transposed.view())?;
                let mut y = y_transposed.t().as_standard_layout().to_owned();
                y += bias;
                Ok(y)
            }
        }
    }
}

/// `weight` with its `sparsity` share of smallest-magnitude entries set to zero (ties broken by position,
/// so exactly `floor(sparsity · len)` entries are zeroed).
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] for a sparsity outside [0, 1).
pub fn prune_magnitude(
    weight: ArrayView2<'_, f32>,
    sparsity: f64,
) -> Result<Array2<f32>, OlympicsError> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(invalid(format!("sparsity {sparsity} outside [0, 1)")));
    }
    let mut pruned = weight.as_standard_layout().to_owned();
    let n_remove = (sparsity * pruned.len() as f64).floor() as usize;
    let mut order: Vec<usize> = (0..pruned.len()).collect();
    let Some(values) = pruned.as_slice_mut() else {
        return Err(invalid("weight not contiguous"));
    };
    order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()));
    for &index in &order[..n_remove] {
        values[index] = 0.0;
    }
    Ok(pruned)
}

/// Hidden neurons of an `in → hidden → out` pair to keep when removing `fraction` of them: the ones with
/// the largest L2 norm of incoming column and outgoing row, in their original order.
fn neurons_to_keep(incoming: &Linear, outgoing: &Linear, fraction: f64) -> Vec<usize> {
    let hidden = incoming.out_features();
    let n_keep = ((1.0 - fraction) * hidden as f64).round().max(1.0) as usize;
    let mut importance: Vec<(usize, f32)> = (0..hidden)
        .map(|neuron| {
            let in_norm: f32 = incoming.weight.column(neuron).iter().map(|v| v * v).sum();
            let out_norm: f32 = outgoing.weight.row(neuron).iter().map(|v| v * v).sum();
            (neuron, (in_norm + out_norm).sqrt())
        })
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut keep: Vec<usize> = importance[..n_keep.min(hidden)]
        .iter()
        .map(|(neuron, _)| *neuron)
        .collect();
    keep.sort_unstable();
    keep
}

/// Removes `fraction` of the neurons between `incoming` and `outgoing` (structured pruning): `incoming`
/// loses output columns, `outgoing` the matching input rows; both stay dense and smaller.
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] for a fraction outside [0, 1) or layers that do not chain.
pub fn prune_neurons(
    incoming: &Linear,
    outgoing: &Linear,
    fraction: f64,
) -> Result<(Linear, Linear), OlympicsError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(invalid(format!(
            "pruning fraction {fraction} outside [0, 1)"
        )));
    }
    if incoming.out_features() != outgoing.in_features() {
        return Err(shape_error(
            "pruned layer pair",
            incoming.out_features(),
            outgoing.in_features(),
        ));
    }
    let keep = neurons_to_keep(incoming, outgoing, fraction);
    Ok((
        // `select` along columns may come back column-major; the kernels want row-major weights.
        Linear {
            weight: incoming
                .weight
                .select(Axis(1), &keep)
                .as_standard_layout()
                .to_owned(),
            bias: incoming.bias.select(Axis(0), &keep),
        },
        Linear {
            weight: outgoing
                .weight
                .select(Axis(0), &keep)
                .as_standard_layout()
                .to_owned(),
            bias: outgoing.bias.clone(),
        },
    ))
}

/// `Linear → ReLU → … → Linear` of compressed layers.
#[derive(Debug, Clone)]
pub struct CompressedMlp {
    /// The layers.
    pub layers: Vec<CompressedLinear>,
}

impl CompressedMlp {
    /// Compresses `mlp` with `recipe`: structured pruning of every hidden layer first, then unstructured
    /// pruning (CSR) or the weight format.
    ///
    /// # Errors
    /// [`OlympicsError::InvalidArgument`] for an MLP without layers, unstructured pruning with a format
    /// other than f32, or a bad fraction; quant and accel errors.
    pub fn compress(mlp: &Mlp, recipe: &Recipe) -> Result<Self, OlympicsError> {
        if mlp.layers.is_empty() {
            return Err(invalid("MLP without layers"));
        }
        let mut layers = mlp.layers.clone();
        if let Some(fraction) = recipe.structured {
            for index in 0..layers.len() - 1 {
                let (incoming, outgoing) =
                    prune_neurons(&layers[index], &layers[index + 1], fraction)?;
                layers[index] = incoming;
                layers[index + 1] = outgoing;
            }
        }
        let layers = match recipe.unstructured {
            Some(sparsity) => {
                if recipe.format != WeightFormat::F32 {
                    return Err(invalid("unstructured pruning is stored as f32 CSR"));
                }
                layers
                    .iter()
                    .map(|layer| CompressedLinear::sparse(layer, sparsity))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => layers
                .iter()
                .map(|layer| CompressedLinear::new(layer, recipe.format))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(CompressedMlp { layers })
    }

    /// Inputs.
    pub fn in_features(&self) -> usize {
        self.layers.first().map_or(0, CompressedLinear::in_features)
    }

    /// Outputs.
    pub fn out_features(&self) -> usize {
        self.layers.last().map_or(0, CompressedLinear::out_features)
    }

    /// Bytes of every layer.
    pub fn storage_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(CompressedLinear::storage_bytes)
            .sum()
    }

    /// The network's output for `x`.
    ///
    /// # Errors
    /// Shape and kernel errors.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        let Some((last, hidden)) = self.layers.split_last() else {
            return Err(invalid("MLP without layers"));
        };
        let mut activations = x.to_owned();
        for layer in hidden {
            activations = layer.forward(activations.view())?;
            activations.mapv_inplace(|value| value.max(0.0));
        }
        last.forward(activations.view())
    }
}
