//! Error statistics of an approximation against its reference: MAE, max error, relative error, SQNR.

use crate::error::{check_finite, QuantError};

/// How far `approx` is from `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Number of values compared.
    pub n: usize,
    /// Mean absolute error.
    pub mean_absolute_error: f64,
    /// Largest absolute error.
    pub max_absolute_error: f64,
    /// ‖approx − reference‖₂ / ‖reference‖₂ (0 when both are zero, +inf when only the reference is).
    pub relative_error: f64,
    /// Signal-to-quantization-noise ratio, 10·log10(Σx² / Σe²) in dB; +inf for an exact copy.
    pub sqnr_db: f64,
}

impl ErrorStats {
    /// Compares two equally long slices.
    ///
    /// # Errors
    /// [`QuantError::ShapeMismatch`] for different lengths or empty input; [`QuantError::NonFinite`] for
    /// NaN/inf in either.
    pub fn between(reference: &[f32], approx: &[f32]) -> Result<Self, QuantError> {
        if reference.len() != approx.len() || reference.is_empty() {
            return Err(QuantError::ShapeMismatch {
                what: "error statistics operands",
                expected: vec![reference.len()],
                actual: vec![approx.len()],
            });
        }
        check_finite("reference", reference)?;
        check_finite("approximation", approx)?;
        let (mut absolute_sum, mut max_error, mut error_energy, mut signal_energy) =
            (0.0, 0.0f64, 0.0, 0.0);
        for (&x, &y) in reference.iter().zip(approx) {
            let error = f64::from(y) - f64::from(x);
            absolute_sum += error.abs();
            max_error = max_error.max(error.abs());
            error_energy += error * error;
            signal_energy += f64::from(x) * f64::from(x);
        }
        let relative_error = if error_energy == 0.0 {
            0.0
        } else if signal_energy == 0.0 {
            f64::INFINITY
        } else {
            (error_energy / signal_energy).sqrt()
        };
        let sqnr_db = if error_energy == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal_energy / error_energy).log10()
        };
        Ok(ErrorStats {
            n: reference.len(),
            mean_absolute_error: absolute_sum / reference.len() as f64,
            max_absolute_error: max_error,
            relative_error,
            sqnr_db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let stats = ErrorStats::between(&[1.0, -1.0, 2.0, 0.0], &[1.1, -1.0, 2.0, -0.1]).unwrap();
        assert!((stats.mean_absolute_error - 0.05).abs() < 1e-6);
        assert!((stats.max_absolute_error - 0.1).abs() < 1e-6);
        // Σx² = 6, Σe² = 0.02 → 10·log10(300) ≈ 24.77 dB.
        assert!((stats.sqnr_db - 24.771).abs() < 1e-2, "{}", stats.sqnr_db);
        assert!(ErrorStats::between(&[1.0], &[1.0])
            .unwrap()
            .sqnr_db
            .is_infinite());
        assert!(ErrorStats::between(&[1.0], &[]).is_err());
        assert!(ErrorStats::between(&[f32::NAN], &[1.0]).is_err());
    }
}
