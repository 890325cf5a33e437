//! The ratio of two sums over paired units (`Σ numerator / Σ denominator`, e.g. a model's loss over a
//! baseline's loss summed over text windows) with its delta-method interval.

use super::check_confidence;
use super::distributions::student_t_quantile;
use crate::error::PerfError;
use serde::{Deserialize, Serialize};

/// `Σ numerators / Σ denominators` with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioOfSums {
    /// The ratio of the sums.
    pub ratio: f64,
    /// Lower bound.
    pub ci_lower: f64,
    /// Upper bound.
    pub ci_upper: f64,
    /// Linearized (delta-method) standard error of the ratio.
    pub standard_error: f64,
    /// Degrees of freedom of the t quantile (units − 1).
    pub degrees_of_freedom: f64,
    /// Two-sided confidence of the interval.
    pub confidence: f64,
}

/// The ratio `Σ numerators / Σ denominators` over paired units with a Student-t interval from the
/// linearized (delta-method) standard error of a ratio estimator (Cochran, *Sampling Techniques*, §6.4):
/// residuals `r_i = numerator_i − ratio · denominator_i`,
/// `se = sqrt(Σ r_i² / (n (n − 1))) / mean(denominator)`, `n − 1` degrees of freedom.
///
/// # Errors
/// `InsufficientSamples` for fewer than two units; `InvalidInput` for unequal lengths or a non-positive
/// denominator sum; `NonFinite` for a NaN or infinite value; `InvalidConfig` for a bad level.
pub fn ratio_of_sums(
    numerators: &[f64],
    denominators: &[f64],
    confidence: f64,
) -> Result<RatioOfSums, PerfError> {
    check_confidence(confidence)?;
    let n_units = numerators.len();
    if denominators.len() != n_units {
        return Err(PerfError::InvalidInput(format!(
            "ratio of sums: {n_units} numerators against {} denominators",
            denominators.len()
        )));
    }
    if n_units < 2 {
        return Err(PerfError::InsufficientSamples {
            what: "ratio of sums".into(),
            needed: 2,
            have: n_units,
        });
    }
    crate::error::check_finite("ratio numerators", numerators)?;
    crate::error::check_finite("ratio denominators", denominators)?;
    let denominator_sum: f64 = denominators.iter().sum();
    if denominator_sum <= 0.0 {
        return Err(PerfError::InvalidInput(format!(
            "ratio of sums: denominator sum {denominator_sum} is not positive"
        )));
    }
    let ratio = numerators.iter().sum::<f64>() / denominator_sum;
    let residual_square_sum: f64 = numerators
        .iter()
        .zip(denominators)
        .map(|(numerator, denominator)| (numerator - ratio * denominator).powi(2))
        .sum();
    let n = n_units as f64;
    let standard_error = (residual_square_sum / (n * (n - 1.0))).sqrt() / (denominator_sum / n);
    let degrees_of_freedom = n - 1.0;
    let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, degrees_of_freedom)?;
    Ok(RatioOfSums {
        ratio,
        ci_lower: ratio - t * standard_error,
        ci_upper: ratio + t * standard_error,
        standard_error,
        degrees_of_freedom,
        confidence,
    })
}
