//! Quantized layers: a Linear with per-channel symmetric integer weights (packed for the GEMM), u8 activations
//! quantized dynamically (per batch) or statically (calibrated), and an i32 bias; an MLP of them with ReLU.

use crate::error::{check_finite, QuantError};
use crate::gemm::{gemm_u8i8_i32, GemmConfig, GemmKernel, PackedB};
use crate::observer::{Observer, ObserverKind};
use crate::scheme::{Granularity, QuantParams, QuantType, Scheme};
use crate::tensor::{Codes, QuantConfig, QuantizedTensor};
use ndarray::{Array2, ArrayView1, ArrayView2};

/// How a layer quantizes its input.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ActivationQuant {
    /// Affine u8 from each batch's own min–max (computed at every call).
    Dynamic,
    /// Fixed affine u8 parameters from calibration; values outside the range are clamped.
    Static(QuantParams),
}

/// The bias, in the form the epilogue needs.
#[derive(Debug, Clone, PartialEq)]
enum Bias {
    /// Dynamic activations: the f32 bias and the weight column sums (the zero-point correction), both needed
    /// at every call because the activation scale changes.
    Dynamic {
        bias: Vec<f32>,
        column_sums: Vec<i32>,
    },
    /// Static activations: `round(bias / (s_x · s_w)) − z_x · Σ_k W[k, j]`, one i32 per output.
    Folded(Vec<i32>),
}

/// `y = x · W + b` with `W` (`in × out`) stored as per-output-channel symmetric integers.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLinear {
    weight: PackedB,
    weight_scales: Vec<f32>,
    weight_qtype: QuantType,
    bias: Bias,
    activation: ActivationQuant,
}

fn to_i32(value: f64, what: &'static str) -> Result<i32, QuantError> {
    if value.is_finite() && f64::from(i32::MIN) <= value && value <= f64::from(i32::MAX) {
        Ok(value as i32)
    } else {
        Err(QuantError::InvalidParameter {
            what,
            reason: format!("{value} does not fit an i32"),
        })
    }
}

fn quantized_bias(
    bias: &[f32],
    weight_scales: &[f32],
    activation: &QuantParams,
    column_sums: &[i32],
) -> Result<Vec<i32>, QuantError> {
    bias.iter()
        .zip(weight_scales)
        .zip(column_sums)
        .map(|((&b, &weight_scale), &column_sum)| {
            let step = f64::from(activation.scale()) * f64::from(weight_scale);
            let folded = (f64::from(b) / step).round()
                - f64::from(activation.zero_point()) * f64::from(column_sum);
            to_i32(folded, "bias")
        })
        .collect()
}

impl QuantizedLinear {
    /// Quantizes `weight` (`in × out`) per output channel with the symmetric scheme in `weight_qtype` (`Int8`,
    /// or `IntN` for low-bit experiments) and prepares the bias for `activation`.
    ///
    /// # Errors
    /// [`QuantError::NonFinite`]; [`QuantError::ShapeMismatch`] when `bias.len() != out`;
    /// [`QuantError::InvalidParameter`] for an unsigned weight type, static parameters that are not u8, or a
    /// bias that does not fit i32 at the activation scale.
    pub fn new(
        weight: ArrayView2<'_, f32>,
        bias: ArrayView1<'_, f32>,
        weight_qtype: QuantType,
        activation: ActivationQuant,
    ) -> Result<Self, QuantError> {
        if bias.len() != weight.ncols() {
            return Err(QuantError::ShapeMismatch {
                what: "bias",
                expected: vec![weight.ncols()],
                actual: vec![bias.len()],
            });
        }
        if weight_qtype.is_unsigned() {
            return Err(QuantError::InvalidParameter {
                what: "weight_qtype",
                reason: "weights are signed (the GEMM is u8 × i8)".into(),
            });
        }
        let bias: Vec<f32> = bias.iter().copied().collect();
        check_finite("bias", &bias)?;
        let config = QuantConfig {
            scheme: Scheme::Symmetric,
            qtype: weight_qtype,
            granularity: Granularity::PerChannel { axis: 1 },
        };
        let quantized = QuantizedTensor::quantize(weight.into_dyn(), &config)?;
        let Codes::I8(codes) = quantized.codes() else {
            unreachable!("signed types are stored as i8")
        };
        let codes =
            Array2::from_shape_vec(weight.dim(), codes.clone()).expect("one code per weight");
        let packed = PackedB::pack(codes.view())?;
        let weight_scales: Vec<f32> = quantized.params().iter().map(QuantParams::scale).collect();
        let column_sums = packed.column_sums();
        let bias = match activation {
            ActivationQuant::Dynamic => Bias::Dynamic { bias, column_sums },
            ActivationQuant::Static(params) => {
                check_u8(&params)?;
                Bias::Folded(quantized_bias(
                    &bias,
                    &weight_scales,
                    &params,
                    &column_sums,
                )?)
            }
        };
        Ok(QuantizedLinear {
            weight: packed,
            weight_scales,
            weight_qtype,
            bias,
            activation,
        })
    }

    /// Inputs.
    pub fn in_features(&self) -> usize {
        self.weight.k()
    }

    /// Outputs.
    pub fn out_features(&self) -> usize {
        self.weight.n()
    }

    /// The weight type.
    pub fn weight_qtype(&self) -> QuantType {
        self.weight_qtype
    }

    /// How the input is quantized.
    pub fn activation(&self) -> ActivationQuant {
        self.activation
    }

    /// Bytes of every buffer the layer holds: packed weights (one byte each), f32 weight scales, the bias
    /// (i32 folded, or f32 plus i32 column sums for dynamic activations), and static activation parameters.
    pub fn storage_bytes(&self) -> usize {
        let bias = match &self.bias {
            Bias::Dynamic { bias, column_sums } => {
                std::mem::size_of_val(bias.as_slice())
                    + std::mem::size_of_val(column_sums.as_slice())
            }
            Bias::Folded(folded) => std::mem::size_of_val(folded.as_slice()),
        };
        let activation = match self.activation {
            ActivationQuant::Dynamic => 0,
            ActivationQuant::Static(_) => std::mem::size_of::<f32>() + std::mem::size_of::<i32>(),
        };
        self.weight.storage_bytes()
            + std::mem::size_of_val(self.weight_scales.as_slice())
            + bias
            + activation
    }

    /// `x · W + b` for `x` (`batch × in`); returns the output and the GEMM kernel that ran.
    ///
    /// # Errors
    /// [`QuantError::ShapeMismatch`] for the wrong input width; [`QuantError::NonFinite`] for NaN/inf input;
    /// kernel selection errors.
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        config: &GemmConfig,
    ) -> Result<(Array2<f32>, GemmKernel), QuantError> {
        if x.ncols() != self.in_features() {
            return Err(QuantError::ShapeMismatch {
                what: "linear input",
                expected: vec![x.nrows(), self.in_features()],
                actual: vec![x.nrows(), x.ncols()],
            });
        }
        let params = match self.activation {
            ActivationQuant::Static(params) => params,
            ActivationQuant::Dynamic => {
                let (min, max) = x
                    .iter()
                    .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                QuantParams::from_range(min, max, Scheme::Affine, QuantType::Uint8)?
            }
        };
        if let Some(value) = x.iter().find(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite {
                what: "linear input",
                index: x.iter().position(|v| !v.is_finite()).unwrap_or(0),
                value: *value,
            });
        }
        let x_codes = quantize_activations(x, &params);
        let mut accumulators = Array2::<i32>::zeros((x.nrows(), self.out_features()));
        let kernel = gemm_u8i8_i32(
            x_codes.view(),
            &self.weight,
            accumulators.view_mut(),
            config,
        )?;
        let dynamic_offsets;
        let offsets: &[i32] = match &self.bias {
            Bias::Folded(folded) => folded,
            Bias::Dynamic { bias, column_sums } => {
                dynamic_offsets = quantized_bias(bias, &self.weight_scales, &params, column_sums)?;
                &dynamic_offsets
            }
        };
        let output_scales: Vec<f32> = self
            .weight_scales
            .iter()
            .map(|s| s * params.scale())
            .collect();
        // Row by row over contiguous slices, so the conversion vectorises. `acc + offset` in f32: both are
        // exact below 2²⁴ and the relative rounding beyond (6·10⁻⁸) is far below the quantization error.
        let n = self.out_features();
        let accumulator_values = accumulators
            .as_slice()
            .expect("freshly allocated, contiguous");
        let mut values = Vec::with_capacity(accumulator_values.len());
        for accumulator_row in accumulator_values.chunks_exact(n.max(1)) {
            values.extend(
                accumulator_row
                    .iter()
                    .zip(&output_scales)
                    .zip(offsets)
                    .map(|((&acc, &scale), &offset)| (acc as f32 + offset as f32) * scale),
            );
        }
        let output =
            Array2::from_shape_vec(accumulators.dim(), values).expect("one value per output");
        Ok((output, kernel))
    }
}

/// u8 codes of finite activations, as [`QuantParams::quantize_value`] but fast: multiply by the reciprocal
/// scale, clamp, and round to nearest (ties to even) by the 1.5·2²³ trick, which vectorises where `f32::round`
/// is a library call on baseline x86-64. Codes can differ from `quantize_value` only on exact ties and in the
/// last ulp of the scaled value; the round-trip bound (half a step) holds for both.
fn quantize_activations(x: ArrayView2<'_, f32>, params: &QuantParams) -> Array2<u8> {
    const ROUNDING: f32 = 12_582_912.0;
    let inverse_scale = 1.0 / params.scale();
    let zero_point = params.zero_point() as f32;
    let (low, high) = (
        params.qmin() as f32 - zero_point,
        params.qmax() as f32 - zero_point,
    );
    let contiguous = x.as_standard_layout();
    let codes: Vec<u8> = contiguous
        .as_slice()
        .expect("standard layout is contiguous")
        .iter()
        .map(|&v| {
            let scaled = (v * inverse_scale).max(low).min(high);
            ((scaled + ROUNDING) - ROUNDING + zero_point) as u8
        })
        .collect();
    Array2::from_shape_vec(x.dim(), codes).expect("one code per value")
}

fn check_u8(params: &QuantParams) -> Result<(), QuantError> {
    if params.qmin() < 0 || params.qmax() > 255 {
        return Err(QuantError::InvalidParameter {
            what: "activation params",
            reason: format!("range [{}, {}] is not u8", params.qmin(), params.qmax()),
        });
    }
    Ok(())
}

/// How [`QuantizedMlp::quantize`] quantizes a network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizedMlpConfig {
    /// Weight type (`Int8`; `IntN { bits: 2 }` for the low-bit negative control).
    pub weight_qtype: QuantType,
    /// `None`: dynamic activations. `Some(kind)`: static, calibrated per layer with this observer.
    pub calibration: Option<ObserverKind>,
}

impl Default for QuantizedMlpConfig {
    /// Int8 weights, static activations calibrated by min–max.
    fn default() -> Self {
        QuantizedMlpConfig {
            weight_qtype: QuantType::Int8,
            calibration: Some(ObserverKind::MinMax),
        }
    }
}

/// `Linear → ReLU → … → Linear` with quantized layers (the shape of `zoo::Mlp`, without depending on it).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMlp {
    layers: Vec<QuantizedLinear>,
}

impl QuantizedMlp {
    /// Quantizes an MLP given as `(weight in × out, bias)` pairs. With static activations, each layer's input
    /// range is calibrated by running the f32 network (on accel) over `calibration` — data held out from the
    /// evaluation set.
    ///
    /// # Errors
    /// [`QuantError::InvalidParameter`] for no layers; shape errors between layers; observer errors (NaN in the
    /// calibration data, no calibration rows); f32 kernel errors.
    pub fn quantize(
        layers: &[(ArrayView2<'_, f32>, ArrayView1<'_, f32>)],
        calibration: ArrayView2<'_, f32>,
        config: &QuantizedMlpConfig,
    ) -> Result<Self, QuantError> {
        if layers.is_empty() {
            return Err(QuantError::InvalidParameter {
                what: "layers",
                reason: "an MLP needs at least one layer".into(),
            });
        }
        let mut quantized = Vec::with_capacity(layers.len());
        let mut activations = calibration.to_owned();
        for (index, (weight, bias)) in layers.iter().enumerate() {
            let activation = match config.calibration {
                None => ActivationQuant::Dynamic,
                Some(kind) => {
                    let mut observer = Observer::new(kind)?;
                    let contiguous = activations.as_standard_layout();
                    observer.observe(contiguous.as_slice().expect("standard layout"))?;
                    ActivationQuant::Static(observer.params(Scheme::Affine, QuantType::Uint8)?)
                }
            };
            quantized.push(QuantizedLinear::new(
                *weight,
                *bias,
                config.weight_qtype,
                activation,
            )?);
            if config.calibration.is_some() && index + 1 < layers.len() {
                let mut next = accel::matmul(activations.view(), *weight)?;
                next += bias;
                next.mapv_inplace(|v| v.max(0.0));
                activations = next;
            }
        }
        Ok(QuantizedMlp { layers: quantized })
    }

    /// The layers.
    pub fn layers(&self) -> &[QuantizedLinear] {
        &self.layers
    }

    /// Logits for `x`; returns them and the GEMM kernel that ran.
    ///
    /// # Errors
    /// As [`QuantizedLinear::forward`].
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        config: &GemmConfig,
    ) -> Result<(Array2<f32>, GemmKernel), QuantError> {
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut activations = x.to_owned();
        for layer in hidden {
            let (mut next, _) = layer.forward(activations.view(), config)?;
            next.mapv_inplace(|v| v.max(0.0));
            activations = next;
        }
        last.forward(activations.view(), config)
    }

    /// Bytes of every buffer of every layer.
    pub fn storage_bytes(&self) -> usize {
        self.layers.iter().map(QuantizedLinear::storage_bytes).sum()
    }
}
