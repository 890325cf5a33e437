//! Two proportions measured on the same rows: the difference of two classifiers' accuracies (or of any
//! per-row success) when both are scored on one test set, with an interval that uses the pairing.

use super::check_confidence;
use super::distributions::student_t_quantile;
use super::proportions::binomial_interval;
use crate::claim::{Estimate, TInference};
use crate::error::PerfError;
use serde::{Deserialize, Serialize};

/// The paired difference `first − second` of per-row success on the same rows, as fractions
/// (0.01 = one percentage point).
///
/// The interval is Student's t on the per-row differences `d_i ∈ {−1, 0, +1}` (n − 1 degrees of freedom):
/// its width follows from the discordant rows alone (`d_i = 0` wherever the two agree), it needs no
/// iteration, and with thousands of rows and tens of discordant ones the mean of the `d_i` is close to
/// normal; with a handful of discordant rows it is optimistic, as every Wald-type interval is, which
/// [`PairedProportionDifference::n_discordant`] lets a reader see.
///
/// When every `d_i` is equal (typically: the two agree on every row) the sample has no spread, yet the
/// population may still hold rows that differ. The interval is then the mean widened by the
/// Clopper–Pearson upper bound `u` on the rate of such rows (0 of n observed): `[−u, u]` when all rows
/// agree, `[1 − 2u, 1]` when the first wins every row. It never has zero width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedProportionDifference {
    /// Rows compared.
    pub n: usize,
    /// Rows where the first succeeds and the second does not.
    pub n_first_only: usize,
    /// Rows where the second succeeds and the first does not.
    pub n_second_only: usize,
    /// Mean of the per-row differences, `(n_first_only − n_second_only) / n`.
    pub mean: f64,
    /// Lower bound.
    pub ci_lower: f64,
    /// Upper bound.
    pub ci_upper: f64,
    /// Two-sided confidence of the interval.
    pub confidence: f64,
    /// The t-inference behind the interval (fraction scale), absent when the per-row differences have no
    /// spread and the interval is the Clopper–Pearson bound.
    pub inference: Option<TInference>,
    /// How the interval was computed.
    pub method: String,
}

impl PairedProportionDifference {
    /// Rows on which the two disagree.
    pub fn n_discordant(&self) -> usize {
        self.n_first_only + self.n_second_only
    }

    /// The difference as a claim estimate, multiplied by `scale` (100 for percentage points) and labelled
    /// `unit`; it keeps the t-inference, so a threshold claim judged on it gets a p-value for Holm.
    ///
    /// # Errors
    /// As [`Estimate::new`]: a non-finite or unordered interval (`scale` not finite).
    pub fn estimate(&self, scale: f64, unit: &str) -> Result<Estimate, PerfError> {
        match self.inference {
            Some(inference) => Estimate::from_t(
                TInference {
                    center: scale * inference.center,
                    standard_error: scale.abs() * inference.standard_error,
                    ..inference
                },
                unit,
                self.confidence,
            ),
            None => {
                let (lower, upper) = (scale * self.ci_lower, scale * self.ci_upper);
                Estimate::new(
                    scale * self.mean,
                    lower.min(upper),
                    lower.max(upper),
                    unit,
                    self.confidence,
                )
            }
        }
    }
}

/// The paired difference `first − second` of per-row success (`true` = the row is right) on the same rows;
/// see [`PairedProportionDifference`] for the interval.
///
/// # Errors
/// `InvalidInput` when the two records differ in length; `InsufficientSamples` for fewer than two rows;
/// `InvalidConfig` for a confidence outside (0, 1).
pub fn paired_proportion_difference(
    first: &[bool],
    second: &[bool],
    confidence: f64,
) -> Result<PairedProportionDifference, PerfError> {
    check_confidence(confidence)?;
    let n = first.len();
    if n != second.len() {
        return Err(PerfError::InvalidInput(format!(
            "paired difference: {n} rows against {} rows",
            second.len()
        )));
    }
    if n < 2 {
        return Err(PerfError::InsufficientSamples {
            what: "paired difference".into(),
            needed: 2,
            have: n,
        });
    }
    let mut n_first_only = 0usize;
    let mut n_second_only = 0usize;
    for (&first_right, &second_right) in first.iter().zip(second) {
        match (first_right, second_right) {
            (true, false) => n_first_only += 1,
            (false, true) => n_second_only += 1,
            _ => {}
        }
    }
    let n_float = n as f64;
    let mean = (n_first_only as f64 - n_second_only as f64) / n_float;
    // Σ (d_i − mean)² = Σ d_i² − n · mean², and d_i² is 1 exactly on the discordant rows.
    let sum_of_squares = (n_first_only + n_second_only) as f64 - n_float * mean * mean;
    // Every d_i is equal (no spread) when no row is discordant or every row is discordant the same way;
    // counting decides it exactly where the sum of squares could be a rounding residue.
    let no_spread = n_first_only + n_second_only == 0 || n_first_only == n || n_second_only == n;
    if no_spread {
        // The rows that would differ from the common d_i have an observed rate of 0 of n.
        let (_, rate_bound) = binomial_interval(0, n as u64, confidence)?;
        let (ci_lower, ci_upper) = (
            (mean - rate_bound * (mean + 1.0)).max(-1.0),
            (mean + rate_bound * (1.0 - mean)).min(1.0),
        );
        return Ok(PairedProportionDifference {
            n,
            n_first_only,
            n_second_only,
            mean,
            ci_lower,
            ci_upper,
            confidence,
            inference: None,
            method: format!(
                "no spread in the {n} per-row differences: the mean widened by the Clopper–Pearson bound on the rate of rows that differ (0 of {n})"
            ),
        });
    }
    let standard_error = (sum_of_squares.max(0.0) / (n_float - 1.0) / n_float).sqrt();
    let degrees_of_freedom = n_float - 1.0;
    let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, degrees_of_freedom)?;
    Ok(PairedProportionDifference {
        n,
        n_first_only,
        n_second_only,
        mean,
        ci_lower: mean - t * standard_error,
        ci_upper: mean + t * standard_error,
        confidence,
        inference: Some(TInference {
            center: mean,
            standard_error,
            degrees_of_freedom,
            log_scale: false,
        }),
        method: "paired Student t on the per-row differences (first right − second right)".into(),
    })
}
