//! Quantized tensors in real 1-byte buffers (`i8` / `u8`), per tensor or per channel, and f16 / bf16 tensors
//! (the `half` crate) for comparison. Sizes are the bytes of the buffers that exist.

use crate::error::{check_finite, QuantError};
use crate::scheme::{Granularity, QuantParams, QuantType, Scheme};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// The integer codes, one byte each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codes {
    /// Signed codes (`Int8`, `IntN`).
    I8(Vec<i8>),
    /// Unsigned codes (`Uint8`).
    U8(Vec<u8>),
}

impl Codes {
    /// Number of codes.
    pub fn len(&self) -> usize {
        match self {
            Codes::I8(codes) => codes.len(),
            Codes::U8(codes) => codes.len(),
        }
    }

    /// Whether there are no codes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the buffer (one per code).
    pub fn storage_bytes(&self) -> usize {
        match self {
            Codes::I8(codes) => std::mem::size_of_val(codes.as_slice()),
            Codes::U8(codes) => std::mem::size_of_val(codes.as_slice()),
        }
    }

    fn get(&self, index: usize) -> i32 {
        match self {
            Codes::I8(codes) => i32::from(codes[index]),
            Codes::U8(codes) => i32::from(codes[index]),
        }
    }
}

/// A quantized tensor: codes in row-major order, with one parameter set per tensor or per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    shape: Vec<usize>,
    codes: Codes,
    params: Vec<QuantParams>,
    granularity: Granularity,
    qtype: QuantType,
}

/// How [`QuantizedTensor::quantize`] chooses parameters from the tensor itself (min–max of the data; use an
/// [`crate::Observer`] and [`QuantizedTensor::quantize_with`] for calibrated ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantConfig {
    /// Symmetric or affine.
    pub scheme: Scheme,
    /// Target integer type.
    pub qtype: QuantType,
    /// Per tensor or per channel.
    pub granularity: Granularity,
}

impl Default for QuantConfig {
    /// Symmetric int8 per tensor.
    fn default() -> Self {
        QuantConfig {
            scheme: Scheme::Symmetric,
            qtype: QuantType::Int8,
            granularity: Granularity::PerTensor,
        }
    }
}

/// Number of channels and the stride between consecutive channel indices in row-major order.
fn channel_layout(shape: &[usize], granularity: Granularity) -> Result<(usize, usize), QuantError> {
    match granularity {
        Granularity::PerTensor => Ok((1, 1)),
        Granularity::PerChannel { axis } => {
            if axis >= shape.len() {
                return Err(QuantError::InvalidParameter {
                    what: "axis",
                    reason: format!("axis {axis} of a {}-dimensional tensor", shape.len()),
                });
            }
            Ok((shape[axis], shape[axis + 1..].iter().product()))
        }
    }
}

impl QuantizedTensor {
    /// Quantizes `values` with parameters from its own min–max (per tensor or per channel).
    ///
    /// # Example
    /// Symmetric int8 per tensor: one byte per value, and the round trip within half a step.
    /// ```
    /// use ndarray::Array2;
    /// use quant::{QuantConfig, QuantizedTensor};
    ///
    /// let weights = Array2::from_shape_fn((64, 32), |(i, j)| ((i * 32 + j) as f32 * 0.37).sin());
    /// let quantized = QuantizedTensor::quantize(weights.view().into_dyn(), &QuantConfig::default())?;
    /// assert!(quantized.storage_bytes() < weights.len() * 4 / 3); // 2048 codes + one scale and zero point
    /// let step = quantized.params()[0].scale();
    /// let restored = quantized.dequantize();
    /// let worst = weights.iter().zip(restored.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    /// assert!(worst <= step / 2.0 + 1e-6);
    /// # Ok::<(), quant::QuantError>(())
    /// ```
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] for NaN/inf values; [`QuantError::InvalidParameter`] for a bad axis or width.
    pub fn quantize(values: ArrayViewD<'_, f32>, config: &QuantConfig) -> Result<Self, QuantError> {
        let contiguous = values.as_standard_layout();
        let flat = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        check_finite("tensor", flat)?;
        let (n_channels, inner) = channel_layout(values.shape(), config.granularity)?;
        let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); n_channels.max(1)];
        for (index, &value) in flat.iter().enumerate() {
            let channel = (index / inner) % n_channels.max(1);
            let range = &mut ranges[channel];
            *range = (range.0.min(value), range.1.max(value));
        }
        let params = ranges
            .into_iter()
            .map(|(min, max)| {
                // An empty channel (a zero-sized dimension elsewhere) has no data: any valid parameters do.
                let (min, max) = if min > max { (0.0, 0.0) } else { (min, max) };
                QuantParams::from_range(min, max, config.scheme, config.qtype)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::quantize_with(values, &params, config.granularity, config.qtype)
    }

    /// Quantizes `values` with given parameters (one set, or one per channel along the granularity's axis).
    ///
    /// # Errors
    /// [`QuantError::NonFinite`]; [`QuantError::ShapeMismatch`] when the number of parameter sets does not match.
    pub fn quantize_with(
        values: ArrayViewD<'_, f32>,
        params: &[QuantParams],
        granularity: Granularity,
        qtype: QuantType,
    ) -> Result<Self, QuantError> {
        let contiguous = values.as_standard_layout();
        let flat = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        check_finite("tensor", flat)?;
        let (n_channels, inner) = channel_layout(values.shape(), granularity)?;
        if params.len() != n_channels {
            return Err(QuantError::ShapeMismatch {
                what: "quantization parameters",
                expected: vec![n_channels],
                actual: vec![params.len()],
            });
        }
        let channel_of = |index: usize| (index / inner) % n_channels.max(1);
        let codes = if qtype.is_unsigned() {
            Codes::U8(
                flat.iter()
                    .enumerate()
                    .map(|(index, &value)| params[channel_of(index)].quantize_value(value) as u8)
                    .collect(),
            )
        } else {
            Codes::I8(
                flat.iter()
                    .enumerate()
                    .map(|(index, &value)| params[channel_of(index)].quantize_value(value) as i8)
                    .collect(),
            )
        };
        Ok(QuantizedTensor {
            shape: values.shape().to_vec(),
            codes,
            params: params.to_vec(),
            granularity,
            qtype,
        })
    }

    /// Back to f32: `(q − z) · s` per element.
    pub fn dequantize(&self) -> ArrayD<f32> {
        let (n_channels, inner) =
            channel_layout(&self.shape, self.granularity).expect("checked at construction");
        let values: Vec<f32> = (0..self.codes.len())
            .map(|index| {
                let channel = (index / inner) % n_channels.max(1);
                self.params[channel].dequantize_value(self.codes.get(index))
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(&self.shape), values).expect("one value per element")
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The codes.
    pub fn codes(&self) -> &Codes {
        &self.codes
    }

    /// The parameter sets (one, or one per channel).
    pub fn params(&self) -> &[QuantParams] {
        &self.params
    }

    /// Per tensor or per channel.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The integer type.
    pub fn qtype(&self) -> QuantType {
        self.qtype
    }

    /// Bytes that exist: the codes (one byte each) plus one f32 scale and one i32 zero point per parameter set.
    pub fn storage_bytes(&self) -> usize {
        self.codes.storage_bytes()
            + self.params.len() * (std::mem::size_of::<f32>() + std::mem::size_of::<i32>())
    }
}

/// A 16-bit float precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HalfPrecision {
    /// IEEE binary16.
    F16,
    /// bfloat16 (f32's exponent, 8-bit significand).
    Bf16,
}

/// The 16-bit values.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HalfStorage {
    /// IEEE binary16 values.
    F16(Vec<f16>),
    /// bfloat16 values.
    Bf16(Vec<bf16>),
}

/// A tensor stored as f16 or bf16 (two bytes per value), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfTensor {
    shape: Vec<usize>,
    storage: HalfStorage,
}

impl HalfTensor {
    /// Converts (round to nearest even). Values beyond f16's range become ±inf, as the format dictates.
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] for NaN/inf input.
    pub fn from_f32(
        values: ArrayViewD<'_, f32>,
        precision: HalfPrecision,
    ) -> Result<Self, QuantError> {
        let contiguous = values.as_standard_layout();
        let flat = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        check_finite("tensor", flat)?;
        let storage = match precision {
            HalfPrecision::F16 => {
                HalfStorage::F16(flat.iter().map(|&v| f16::from_f32(v)).collect())
            }
            HalfPrecision::Bf16 => {
                HalfStorage::Bf16(flat.iter().map(|&v| bf16::from_f32(v)).collect())
            }
        };
        Ok(HalfTensor {
            shape: values.shape().to_vec(),
            storage,
        })
    }

    /// Back to f32 (exact widening).
    pub fn to_f32(&self) -> ArrayD<f32> {
        let values: Vec<f32> = match &self.storage {
            HalfStorage::F16(values) => values.iter().map(|v| v.to_f32()).collect(),
            HalfStorage::Bf16(values) => values.iter().map(|v| v.to_f32()).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), values).expect("one value per element")
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The stored values.
    pub fn storage(&self) -> &HalfStorage {
        &self.storage
    }

    /// Bytes of the buffer (two per value).
    pub fn storage_bytes(&self) -> usize {
        match &self.storage {
            HalfStorage::F16(values) => std::mem::size_of_val(values.as_slice()),
            HalfStorage::Bf16(values) => std::mem::size_of_val(values.as_slice()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn per_channel_uses_each_channels_range() {
        // Column 0 spans ±1, column 1 spans ±100: per-channel keeps column 0 precise.
        let values =
            Array2::from_shape_vec((3, 2), vec![-1.0, -100.0, 0.5, 50.0, 1.0, 100.0]).unwrap();
        let config = QuantConfig {
            granularity: Granularity::PerChannel { axis: 1 },
            ..QuantConfig::default()
        };
        let tensor = QuantizedTensor::quantize(values.view().into_dyn(), &config).unwrap();
        assert_eq!(tensor.params().len(), 2);
        let back = tensor.dequantize();
        assert!((back[[1, 0]] - 0.5).abs() <= tensor.params()[0].scale() / 2.0);
        assert_eq!(tensor.storage_bytes(), 6 + 2 * 8);
        assert!(matches!(tensor.codes(), Codes::I8(codes) if codes.len() == 6));
    }

    #[test]
    fn nan_is_an_error_and_half_sizes_are_two_bytes() {
        let values = Array2::from_shape_vec((1, 2), vec![1.0, f32::NAN]).unwrap();
        let error = QuantizedTensor::quantize(values.view().into_dyn(), &QuantConfig::default());
        assert!(matches!(error, Err(QuantError::NonFinite { index: 1, .. })));
        let values = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, -1.5, 0.25, 1e-3]).unwrap();
        for precision in [HalfPrecision::F16, HalfPrecision::Bf16] {
            let half = HalfTensor::from_f32(values.view().into_dyn(), precision).unwrap();
            assert_eq!(half.storage_bytes(), 12);
            assert_eq!(half.to_f32()[[1, 1]], 0.25);
        }
    }
}
