//! Quantization schemes and their parameters: symmetric or affine, signed or unsigned integers of a given
//! width, and the checked `QuantParams` (finite positive scale, zero point inside the integer range).

use crate::error::QuantError;

/// The integer type values are mapped to. Every variant is stored one byte per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuantType {
    /// Signed 8-bit (`i8`).
    Int8,
    /// Unsigned 8-bit (`u8`).
    Uint8,
    /// Signed `bits`-bit values (2 ≤ bits ≤ 8) held in `i8`; used for low-bit experiments and negative controls.
    IntN {
        /// Width in bits.
        bits: u8,
    },
}

impl QuantType {
    /// The full integer range `[qmin, qmax]` of the type.
    pub fn full_range(self) -> (i32, i32) {
        match self {
            QuantType::Int8 => (-128, 127),
            QuantType::Uint8 => (0, 255),
            QuantType::IntN { bits } => {
                let half = 1i32 << (bits.clamp(2, 8) - 1);
                (-half, half - 1)
            }
        }
    }

    /// Whether values are stored as `u8` (otherwise `i8`).
    pub fn is_unsigned(self) -> bool {
        matches!(self, QuantType::Uint8)
    }

    fn check(self) -> Result<(), QuantError> {
        match self {
            QuantType::IntN { bits } if !(2..=8).contains(&bits) => {
                Err(QuantError::InvalidParameter {
                    what: "bits",
                    reason: format!("{bits} is outside 2..=8"),
                })
            }
            _ => Ok(()),
        }
    }
}

/// How a real range maps to the integer range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Zero maps to the integer midpoint (0 for signed types, 128 for `u8`); the range is `[-amax, amax]` and a
    /// signed type uses the restricted range `[-qmax, qmax]` so that negation is exact.
    Symmetric,
    /// Any range, extended to contain 0, maps onto the whole integer range; the zero point is computed (never
    /// clamped), so 0 is represented exactly.
    Affine,
}

/// Per-tensor or per-channel parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Granularity {
    /// One scale and zero point for the whole tensor.
    PerTensor,
    /// One scale and zero point per index along `axis`.
    PerChannel {
        /// The channel axis.
        axis: usize,
    },
}

/// Scale and zero point of one quantized range: `real = (q − zero_point) · scale`.
///
/// The constructor enforces the invariants: the scale is finite and positive, `qmin ≤ zero_point ≤ qmax`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
}

impl QuantParams {
    /// Checked constructor.
    ///
    /// # Errors
    /// [`QuantError::InvalidParameter`] when the scale is not finite and positive, or the zero point lies outside
    /// `[qmin, qmax]`.
    pub fn new(scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Result<Self, QuantError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(QuantError::InvalidParameter {
                what: "scale",
                reason: format!("{scale} is not finite and positive"),
            });
        }
        if !(qmin < qmax && qmin <= zero_point && zero_point <= qmax) {
            return Err(QuantError::InvalidParameter {
                what: "zero_point",
                reason: format!("{zero_point} is outside [{qmin}, {qmax}]"),
            });
        }
        Ok(QuantParams {
            scale,
            zero_point,
            qmin,
            qmax,
        })
    }

    /// Parameters that cover `[min, max]` (extended to contain 0) under `scheme` for `qtype`.
    ///
    /// A degenerate range (a constant tensor) gets a scale equal to its magnitude, so the constant is stored as
    /// ±1 step from the zero point and comes back exactly; an all-zero range gets scale 1.
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] for NaN/inf bounds; [`QuantError::InvalidParameter`] when `min > max` or the
    /// bit width is unsupported.
    pub fn from_range(
        min: f32,
        max: f32,
        scheme: Scheme,
        qtype: QuantType,
    ) -> Result<Self, QuantError> {
        crate::error::check_finite("range", &[min, max])?;
        qtype.check()?;
        if min > max {
            return Err(QuantError::InvalidParameter {
                what: "range",
                reason: format!("min {min} > max {max}"),
            });
        }
        let (full_min, full_max) = qtype.full_range();
        // Extend the range to contain 0: zero must be exactly representable (padding, ReLU outputs).
        let (low, high) = (min.min(0.0), max.max(0.0));
        match scheme {
            Scheme::Symmetric => {
                let amax = low.abs().max(high);
                let (qmin, qmax, zero_point) = if qtype.is_unsigned() {
                    (full_min, full_max, (full_min + full_max + 1) / 2)
                } else {
                    (-full_max, full_max, 0)
                };
                let steps = (qmax - zero_point).min(zero_point - qmin);
                let scale = symmetric_scale(amax, min == max, steps);
                QuantParams::new(scale, zero_point, qmin, qmax)
            }
            Scheme::Affine => {
                let (qmin, qmax) = (full_min, full_max);
                if min == max {
                    // Constant tensor: scale = |c|, zero point next to the constant's code, so (q − z)·s = c
                    // exactly. The representable range is [(qmin − z)·s, (qmax − z)·s], which contains 0 and c.
                    let magnitude = min.abs();
                    if magnitude == 0.0 {
                        return QuantParams::new(1.0, qmin.max(0).min(qmax), qmin, qmax);
                    }
                    let zero_point = if min > 0.0 {
                        qmin.max(0).min(qmax - 1)
                    } else {
                        qmax
                    };
                    let zero_point = if min > 0.0 {
                        zero_point
                    } else {
                        zero_point.max(qmin + 1)
                    };
                    return QuantParams::new(magnitude, zero_point, qmin, qmax);
                }
                let scale = (f64::from(high) - f64::from(low)) / f64::from(qmax - qmin);
                let scale = scale as f32;
                let scale = if scale > 0.0 && scale.is_finite() {
                    scale
                } else {
                    f32::MIN_POSITIVE
                };
                // low ≤ 0 ≤ high, so −low/scale lies in [0, qmax − qmin] and the zero point needs no clamp; the
                // clamp below only absorbs a last-ulp rounding excess and never moves it by more than one step.
                let zero_point =
                    (f64::from(qmin) - f64::from(low) / f64::from(scale)).round() as i32;
                QuantParams::new(scale, zero_point.clamp(qmin, qmax), qmin, qmax)
            }
        }
    }

    /// The scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The zero point (the integer that represents real 0).
    pub fn zero_point(&self) -> i32 {
        self.zero_point
    }

    /// Smallest integer code used.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }

    /// Largest integer code used.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// The real range the codes cover, `[(qmin − z)·s, (qmax − z)·s]`.
    pub fn representable_range(&self) -> (f32, f32) {
        (
            (self.qmin - self.zero_point) as f32 * self.scale,
            (self.qmax - self.zero_point) as f32 * self.scale,
        )
    }

    /// `clamp(round(x / s) + z, qmin, qmax)`, round half away from zero.
    #[inline]
    pub fn quantize_value(&self, value: f32) -> i32 {
        let code = (value / self.scale).round() as i32 + self.zero_point;
        code.clamp(self.qmin, self.qmax)
    }

    /// `(q − z) · s`.
    #[inline]
    pub fn dequantize_value(&self, code: i32) -> f32 {
        (code - self.zero_point) as f32 * self.scale
    }
}

fn symmetric_scale(amax: f32, constant: bool, steps: i32) -> f32 {
    if amax == 0.0 {
        return 1.0;
    }
    if constant {
        // A constant tensor: one step equals its magnitude, so it is stored as ±1 and comes back exactly.
        return amax;
    }
    let scale = amax / steps as f32;
    if scale > 0.0 {
        scale
    } else {
        f32::MIN_POSITIVE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_range_excluding_zero_is_extended_not_clamped() {
        // The seed clamped the zero point, so [10, 20] lost everything; here 0 joins the range.
        let params = QuantParams::from_range(10.0, 20.0, Scheme::Affine, QuantType::Uint8).unwrap();
        assert_eq!(params.zero_point(), 0);
        let (low, high) = params.representable_range();
        assert!(low <= 10.0 && high >= 20.0 - params.scale() / 2.0);
        let params =
            QuantParams::from_range(-20.0, -10.0, Scheme::Affine, QuantType::Uint8).unwrap();
        assert_eq!(params.zero_point(), 255);
        assert_eq!(params.dequantize_value(params.quantize_value(0.0)), 0.0);
    }

    #[test]
    fn symmetric_int8_uses_restricted_range() {
        let params =
            QuantParams::from_range(-3.0, 1.0, Scheme::Symmetric, QuantType::Int8).unwrap();
        assert_eq!(
            (params.qmin(), params.qmax(), params.zero_point()),
            (-127, 127, 0)
        );
        assert!((params.scale() - 3.0 / 127.0).abs() < 1e-7);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(QuantParams::from_range(f32::NAN, 1.0, Scheme::Affine, QuantType::Uint8).is_err());
        assert!(QuantParams::from_range(2.0, 1.0, Scheme::Affine, QuantType::Uint8).is_err());
        assert!(
            QuantParams::from_range(0.0, 1.0, Scheme::Affine, QuantType::IntN { bits: 1 }).is_err()
        );
        assert!(QuantParams::new(0.0, 0, -1, 1).is_err());
        assert!(QuantParams::new(1.0, 5, -1, 1).is_err());
    }

    #[test]
    fn constants_round_trip_exactly() {
        for value in [0.1f32, -0.1, 3.7e-3, -1234.5, 0.0, 1e-30] {
            for scheme in [Scheme::Symmetric, Scheme::Affine] {
                for qtype in [
                    QuantType::Int8,
                    QuantType::Uint8,
                    QuantType::IntN { bits: 2 },
                ] {
                    let params = QuantParams::from_range(value, value, scheme, qtype).unwrap();
                    let back = params.dequantize_value(params.quantize_value(value));
                    assert_eq!(back, value, "{value} {scheme:?} {qtype:?} {params:?}");
                }
            }
        }
    }
}
