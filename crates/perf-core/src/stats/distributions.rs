//! Quantiles and distribution functions of the reference distributions: Student's t (small-sample
//! intervals) and the standard normal (large-sample intervals such as Wilson's and Hanley–McNeil's).

use super::check_confidence;
use crate::error::PerfError;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The `p` quantile of Student's t distribution with `df` degrees of freedom (statrs).
///
/// # Errors
/// `InvalidInput` when `p` is not in (0, 1) or `df` is not positive and finite.
pub fn student_t_quantile(p: f64, df: f64) -> Result<f64, PerfError> {
    if !(0.0 < p && p < 1.0 && df.is_finite() && df > 0.0) {
        return Err(PerfError::InvalidInput(format!(
            "student t quantile needs 0 < p < 1 and df > 0, got p = {p}, df = {df}"
        )));
    }
    let distribution = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| PerfError::InvalidInput(format!("student t with df = {df}: {e}")))?;
    Ok(distribution.inverse_cdf(p))
}

/// Cumulative distribution function of Student's t with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> Result<f64, PerfError> {
    if !(df.is_finite() && df > 0.0) || t.is_nan() {
        return Err(PerfError::InvalidInput(format!(
            "student t cdf needs df > 0 and t not NaN, got t = {t}, df = {df}"
        )));
    }
    let distribution = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| PerfError::InvalidInput(format!("student t with df = {df}: {e}")))?;
    Ok(distribution.cdf(t))
}

/// The `p` quantile of the standard normal distribution (the probit), e.g. 1.959964 for `p = 0.975`.
///
/// # Errors
/// `InvalidInput` when `p` is not inside (0, 1).
pub fn standard_normal_quantile(p: f64) -> Result<f64, PerfError> {
    if !(0.0 < p && p < 1.0) {
        return Err(PerfError::InvalidInput(format!(
            "standard normal quantile needs 0 < p < 1, got p = {p}"
        )));
    }
    let standard_normal = Normal::new(0.0, 1.0)
        .map_err(|error| PerfError::InvalidInput(format!("standard normal: {error}")))?;
    Ok(standard_normal.inverse_cdf(p))
}

/// The standard normal distribution function Φ(z), e.g. 0.975 at `z = 1.959964`.
///
/// # Errors
/// `InvalidInput` when `z` is NaN.
pub fn standard_normal_cdf(z: f64) -> Result<f64, PerfError> {
    if z.is_nan() {
        return Err(PerfError::InvalidInput("standard normal cdf of NaN".into()));
    }
    let standard_normal = Normal::new(0.0, 1.0)
        .map_err(|error| PerfError::InvalidInput(format!("standard normal: {error}")))?;
    Ok(standard_normal.cdf(z))
}

/// The two-sided critical value `z` of a normal interval at `confidence`: `Φ⁻¹(1 − (1 − confidence) / 2)`,
/// 1.959964 at 95%.
///
/// # Errors
/// `InvalidConfig` when `confidence` is not inside (0, 1).
pub fn two_sided_normal_critical_value(confidence: f64) -> Result<f64, PerfError> {
    check_confidence(confidence)?;
    standard_normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_published_tables() {
        // Two-sided 95% critical values (t_{0.975, df}) and one-sided 99% from standard tables.
        let table = [
            (1.0, 0.975, 12.706),
            (2.0, 0.975, 4.303),
            (4.0, 0.975, 2.776),
            (5.0, 0.975, 2.571),
            (9.0, 0.975, 2.262),
            (10.0, 0.975, 2.228),
            (29.0, 0.975, 2.045),
            (30.0, 0.975, 2.042),
            (120.0, 0.975, 1.980),
            (10.0, 0.99, 2.764),
            (20.0, 0.95, 1.725),
            (60.0, 0.995, 2.660),
        ];
        for (df, p, expected) in table {
            let got = student_t_quantile(p, df).unwrap();
            assert!(
                (got - expected).abs() < 1e-3,
                "t({p}, {df}) = {got}, table {expected}"
            );
        }
        assert!(student_t_quantile(1.5, 3.0).is_err());
        assert!(student_t_quantile(0.5, 0.0).is_err());
    }
}
