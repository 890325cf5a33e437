//! Quantized layers: a Linear with per-channel symmetric integer weights (packed for the GEMM), u8 activations
//! quantized dynamically (per batch) or statically (calibrated), and an i32 bias; an MLP of them with ReLU.

use crate::error::{check_finite, QuantError};
use crate::gemm::kernels::{epilogue, quantize_u8, range_and_finite, CodeMap, EpilogueOut};
use crate::gemm::{gemm_u8i8_i32, GemmConfig, GemmKernel, PackedB};
use crate::observer::{Observer, ObserverKind};
use crate::scheme::{Granularity, QuantParams, QuantType, Scheme};
use crate::tensor::{Codes, QuantConfig, QuantizedTensor};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use std::cell::RefCell;

mod batch1;

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
    let mut folded = Vec::with_capacity(bias.len());
    extend_quantized_bias(&mut folded, bias, weight_scales, activation, column_sums)?;
    Ok(folded)
}

/// [`quantized_bias`] appended to `folded` (a reused buffer: the dynamic path folds the bias at every call and
/// should not allocate for it).
fn extend_quantized_bias(
    folded: &mut Vec<i32>,
    bias: &[f32],
    weight_scales: &[f32],
    activation: &QuantParams,
    column_sums: &[i32],
) -> Result<(), QuantError> {
    for ((&b, &weight_scale), &column_sum) in bias.iter().zip(weight_scales).zip(column_sums) {
        let step = f64::from(activation.scale()) * f64::from(weight_scale);
        let value = (f64::from(b) / step).round()
            - f64::from(activation.zero_point()) * f64::from(column_sum);
        folded.push(to_i32(value, "bias")?);
    }
    Ok(())
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
        let mut output = Array2::<f32>::zeros((x.nrows(), self.out_features()));
        let kernel = self.forward_into(x, output.view_mut(), config)?;
        Ok((output, kernel))
    }

    /// [`QuantizedLinear::forward`] into a caller-owned `batch × out` buffer (whose contents are never read);
    /// with per-thread scratch reused across calls, it allocates nothing once warm.
    ///
    /// # Errors
    /// As [`QuantizedLinear::forward`], plus [`QuantError::ShapeMismatch`] for a wrongly shaped output.
    pub fn forward_into(
        &self,
        x: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        config: &GemmConfig,
    ) -> Result<GemmKernel, QuantError> {
        self.check_input(x)?;
        check_output(&output, x.nrows(), self.out_features())?;
        let kernel = config.resolve()?;
        let contiguous = x.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let params = self.input_params(kernel, values)?;
        WORKSPACE.with_borrow_mut(|workspace| {
            let Workspace {
                codes,
                accumulators,
                offsets,
                multipliers,
                ..
            } = workspace;
            quantize_input(kernel, values, &params, codes);
            self.accumulate(kernel, codes, x.nrows(), accumulators)?;
            self.epilogue_factors(&params, offsets, multipliers)?;
            with_contiguous(&mut output, |reals| {
                epilogue(
                    kernel,
                    accumulators,
                    offsets,
                    multipliers,
                    EpilogueOut::Reals(reals, false),
                );
            });
            Ok(kernel)
        })
    }

    fn check_input(&self, x: ArrayView2<'_, f32>) -> Result<(), QuantError> {
        if x.ncols() != self.in_features() {
            return Err(QuantError::ShapeMismatch {
                what: "linear input",
                expected: vec![x.nrows(), self.in_features()],
                actual: vec![x.nrows(), x.ncols()],
            });
        }
        Ok(())
    }

    /// The u8 parameters of this input: the static ones, or the batch's own min–max; NaN/inf is an error
    /// either way (one pass over the values).
    pub(crate) fn input_params(
        &self,
        kernel: GemmKernel,
        values: &[f32],
    ) -> Result<QuantParams, QuantError> {
        let (min, max) = finite_range(kernel, "linear input", values)?;
        match self.activation {
            ActivationQuant::Static(params) => Ok(params),
            ActivationQuant::Dynamic => {
                QuantParams::from_range(min, max, Scheme::Affine, QuantType::Uint8)
            }
        }
    }

    /// `accumulators = codes · W` (i32) for `rows` rows of u8 codes.
    pub(crate) fn accumulate(
        &self,
        kernel: GemmKernel,
        codes: &[u8],
        rows: usize,
        accumulators: &mut Vec<i32>,
    ) -> Result<(), QuantError> {
        let n = self.out_features();
        accumulators.resize(rows * n, 0);
        let a = ArrayView2::from_shape((rows, self.in_features()), codes)
            .expect("one code per input value");
        let c = ArrayViewMut2::from_shape((rows, n), &mut accumulators[..])
            .expect("one accumulator per output");
        gemm_u8i8_i32(
            a,
            &self.weight,
            c,
            &GemmConfig {
                kernel: Some(kernel),
                ..GemmConfig::default()
            },
        )?;
        Ok(())
    }

    /// The epilogue's per-output offset (the folded bias and zero-point correction, in accumulator units) and
    /// multiplier (`s_x · s_w[j]`), for input parameters `params`.
    pub(crate) fn epilogue_factors(
        &self,
        params: &QuantParams,
        offsets: &mut Vec<i32>,
        multipliers: &mut Vec<f32>,
    ) -> Result<(), QuantError> {
        offsets.clear();
        match &self.bias {
            Bias::Folded(folded) => offsets.extend_from_slice(folded),
            Bias::Dynamic { bias, column_sums } => {
                extend_quantized_bias(offsets, bias, &self.weight_scales, params, column_sums)?
            }
        }
        multipliers.clear();
        multipliers.extend(self.weight_scales.iter().map(|s| s * params.scale()));
        Ok(())
    }
}

/// Per-thread buffers of the forward passes (u8 codes in and out of a layer, i32 accumulators, the epilogue's
/// per-output factors, f32 activations between dynamically quantized layers), grown on demand and reused.
#[derive(Default)]
struct Workspace {
    codes: Vec<u8>,
    next_codes: Vec<u8>,
    accumulators: Vec<i32>,
    offsets: Vec<i32>,
    multipliers: Vec<f32>,
    reals: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

fn check_output(
    output: &ArrayViewMut2<'_, f32>,
    rows: usize,
    columns: usize,
) -> Result<(), QuantError> {
    if output.dim() != (rows, columns) {
        return Err(QuantError::ShapeMismatch {
            what: "output",
            expected: vec![rows, columns],
            actual: vec![output.nrows(), output.ncols()],
        });
    }
    Ok(())
}

/// Runs `f` on the output's values as one row-major slice (through a temporary when the view is strided).
fn with_contiguous(output: &mut ArrayViewMut2<'_, f32>, f: impl FnOnce(&mut [f32])) {
    if let Some(values) = output.as_slice_mut() {
        f(values);
        return;
    }
    let mut temporary = Array2::<f32>::zeros(output.dim());
    f(temporary
        .as_slice_mut()
        .expect("freshly allocated, contiguous"));
    output.assign(&temporary);
}

/// Min and max of `values` (0 for none), or the first NaN/inf as an error; one vector pass.
fn finite_range(
    kernel: GemmKernel,
    what: &'static str,
    values: &[f32],
) -> Result<(f32, f32), QuantError> {
    let (min, max, finite) = range_and_finite(kernel, values);
    if !finite {
        crate::error::check_finite(what, values)?;
    }
    Ok((min, max))
}

/// How a value already divided by the scale becomes a u8 code under `params` (ReLU folds into the lower bound).
fn code_map(params: &QuantParams, relu: bool) -> CodeMap {
    let zero_point = params.zero_point();
    let low = (params.qmin() - zero_point) as f32;
    CodeMap {
        low: if relu { low.max(0.0) } else { low },
        high: (params.qmax() - zero_point) as f32,
        zero_point,
    }
}

/// u8 codes of finite activations, as [`QuantParams::quantize_value`] but fast: multiply by the reciprocal
/// scale, clamp, and round to nearest (ties to even). Codes can differ from `quantize_value` only on exact ties
/// and in the last ulp of the scaled value; the round-trip bound (half a step) holds for both.
pub(crate) fn quantize_input(
    kernel: GemmKernel,
    values: &[f32],
    params: &QuantParams,
    codes: &mut Vec<u8>,
) {
    codes.resize(values.len(), 0);
    quantize_u8(
        kernel,
        values,
        1.0 / params.scale(),
        code_map(params, false),
        codes,
    );
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
        let last = self.layers.last().expect("at least one layer");
        let mut output = Array2::<f32>::zeros((x.nrows(), last.out_features()));
        let kernel = self.forward_into(x, output.view_mut(), config)?;
        Ok((output, kernel))
    }

    /// [`QuantizedMlp::forward`] into a caller-owned `batch × out` buffer. Between two layers whose second has
    /// static activation parameters, the i32 accumulators are requantized straight to the next layer's u8 codes
    /// (bias, ReLU and the change of scale fused into one pass, no f32 activations); with dynamic parameters
    /// they go through f32 once to find the range. Per-thread scratch is reused, so nothing is allocated once
    /// warm.
    ///
    /// # Errors
    /// As [`QuantizedLinear::forward_into`].
    pub fn forward_into(
        &self,
        x: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        config: &GemmConfig,
    ) -> Result<GemmKernel, QuantError> {
        let first = &self.layers[0];
        first.check_input(x)?;
        let last = self.layers.last().expect("at least one layer");
        check_output(&output, x.nrows(), last.out_features())?;
        let kernel = config.resolve()?;
        let rows = x.nrows();
        let contiguous = x.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let mut params = first.input_params(kernel, values)?;
        WORKSPACE.with_borrow_mut(|workspace| {
            let Workspace {
                codes,
                next_codes,
                accumulators,
                offsets,
                multipliers,
                reals,
            } = workspace;
            quantize_input(kernel, values, &params, codes);
            for (index, layer) in self.layers.iter().enumerate() {
                layer.accumulate(kernel, codes, rows, accumulators)?;
                layer.epilogue_factors(&params, offsets, multipliers)?;
                let Some(next) = self.layers.get(index + 1) else {
                    with_contiguous(&mut output, |logits| {
                        epilogue(
                            kernel,
                            accumulators,
                            offsets,
                            multipliers,
                            EpilogueOut::Reals(logits, false),
                        );
                    });
                    break;
                };
                match next.activation {
                    ActivationQuant::Static(next_params) => {
                        let inverse = 1.0 / next_params.scale();
                        multipliers.iter_mut().for_each(|m| *m *= inverse);
                        next_codes.resize(accumulators.len(), 0);
                        epilogue(
                            kernel,
                            accumulators,
                            offsets,
                            multipliers,
                            EpilogueOut::Codes(next_codes, code_map(&next_params, true)),
                        );
                        std::mem::swap(codes, next_codes);
                        params = next_params;
                    }
                    ActivationQuant::Dynamic => {
                        reals.resize(accumulators.len(), 0.0);
                        epilogue(
                            kernel,
                            accumulators,
                            offsets,
                            multipliers,
                            EpilogueOut::Reals(reals, true),
                        );
                        params = next.input_params(kernel, reals)?;
                        quantize_input(kernel, reals, &params, codes);
                    }
                }
            }
            Ok(kernel)
        })
    }

    /// Bytes of every buffer of every layer.
    pub fn storage_bytes(&self) -> usize {
        self.layers.iter().map(QuantizedLinear::storage_bytes).sum()
    }
}
