//! Claims and verdicts: a statement with a threshold (or an equivalence margin), judged against an
//! estimate with its interval, PASS / PARTIAL / FAIL / INCONCLUSIVE / SKIPPED / ERROR with a reason;
//! Holm across a family.
//!
//! The rule (`docs/METHODS.md`): PASS when the whole interval clears the threshold, FAIL when the whole
//! interval misses it, PARTIAL when it straddles, ERROR when something broke. INCONCLUSIVE is for a
//! measurement that cannot speak for the code (the machine was contended, an adaptive budget ran out);
//! SKIPPED is for a claim that cannot run here by design (data not installed, an ISA absent), always
//! with the command that enables it. Equivalence ("no overhead") claims are TOST: PASS only when the
//! (1 − 2α) interval lies inside the margin.
//!
//! Only the judge produces a verdict: a [`ClaimResult`] can afterwards be annotated or weakened
//! ([`ClaimResult::weaken`]), never raised to PASS.

use crate::error::PerfError;
use crate::stats::{student_t_cdf, student_t_quantile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// The whole interval clears the threshold.
    Pass,
    /// Inconclusive, or only some sub-claims hold.
    Partial,
    /// The whole interval misses the threshold.
    Fail,
    /// Something broke: the measurement could not be made.
    Error,
    /// The measurement cannot speak for the code: the machine was contended, or an adaptive
    /// sampling budget ran out with the interval still straddling the bar.
    Inconclusive,
    /// Cannot run here by design (data not installed, an instruction set absent); the reason names
    /// the command that enables it.
    Skipped,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 6] = [
        Verdict::Pass,
        Verdict::Partial,
        Verdict::Fail,
        Verdict::Inconclusive,
        Verdict::Skipped,
        Verdict::Error,
    ];

    /// True for the verdicts a `--strict` run treats as failure (FAIL and ERROR).
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Error)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Partial => "PARTIAL",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Skipped => "SKIPPED",
        })
    }
}

/// Which side of the threshold is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The estimate should be at least the threshold (a speedup, an accuracy).
    AtLeast,
    /// The estimate should be at most the threshold (an overhead, a latency).
    AtMost,
}

/// How a claim is judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Criterion {
    /// One-sided: the interval must lie on the good side of `threshold`.
    Threshold {
        /// The bar.
        threshold: f64,
        /// Which side is good.
        direction: Direction,
    },
    /// Equivalence (TOST): the interval must lie inside `[lower, upper]`.
    Equivalence {
        /// Lower margin.
        lower: f64,
        /// Upper margin.
        upper: f64,
    },
    /// Recorded measurement with no bar: PASS when it could be measured (a finite interval).
    Measured,
}

/// How the estimate's interval was built, so a p-value can be computed for Holm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TInference {
    /// Centre on the inference scale (the log of a ratio when `log_scale`).
    pub center: f64,
    /// Standard error on the inference scale.
    pub standard_error: f64,
    /// Degrees of freedom.
    pub degrees_of_freedom: f64,
    /// True when the estimate is `exp(center)` (ratios).
    pub log_scale: bool,
}

/// A point estimate with its interval. The fields are private: an estimate comes only from
/// [`Estimate::new`] / [`Estimate::from_t`], and deserializing checks it as [`Estimate::new`] does, so
/// a results file with a NaN estimate or an interval that does not contain its point is refused.
///
/// ```
/// use perf_core::claim::Estimate;
/// let estimate = Estimate::new(2.0, 1.5, 2.5, "×", 0.95).unwrap();
/// assert_eq!((estimate.point(), estimate.ci_lower(), estimate.ci_upper()), (2.0, 1.5, 2.5));
/// assert!(Estimate::new(2.0, 2.5, 1.5, "×", 0.95).is_err()); // inverted interval
/// assert!(serde_json::from_str::<Estimate>(
///     r#"{"point": 2.0, "ci_lower": 2.5, "ci_upper": 1.5, "unit": "×", "confidence": 0.95}"#
/// ).is_err());
/// ```
///
/// Nothing outside perf-core can build or alter one around the checks:
///
/// ```compile_fail
/// let mut estimate = perf_core::claim::Estimate::new(2.0, 1.5, 2.5, "×", 0.95).unwrap();
/// estimate.ci_lower = f64::NAN;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredEstimate")]
pub struct Estimate {
    /// Point estimate.
    pub(crate) point: f64,
    /// Lower end of the interval.
    pub(crate) ci_lower: f64,
    /// Upper end of the interval.
    pub(crate) ci_upper: f64,
    /// Unit ("×", "ns", "GFLOP/s", "%", ...).
    pub(crate) unit: String,
    /// Two-sided confidence level of the interval.
    pub(crate) confidence: f64,
    /// The t-inference behind the interval, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inference: Option<TInference>,
}

/// An estimate as stored, before its checks.
#[derive(Deserialize)]
struct StoredEstimate {
    point: f64,
    ci_lower: f64,
    ci_upper: f64,
    unit: String,
    confidence: f64,
    #[serde(default)]
    inference: Option<TInference>,
}

impl TryFrom<StoredEstimate> for Estimate {
    type Error = PerfError;

    fn try_from(stored: StoredEstimate) -> Result<Self, PerfError> {
        if !(stored.confidence > 0.0 && stored.confidence <= 1.0) {
            return Err(PerfError::InvalidInput(format!(
                "estimate confidence {} is not in (0, 1]",
                stored.confidence
            )));
        }
        let mut estimate = Estimate::new(
            stored.point,
            stored.ci_lower,
            stored.ci_upper,
            &stored.unit,
            stored.confidence,
        )?;
        estimate.inference = stored.inference;
        Ok(estimate)
    }
}

impl Estimate {
    /// Point estimate.
    pub fn point(&self) -> f64 {
        self.point
    }

    /// Lower end of the interval.
    pub fn ci_lower(&self) -> f64 {
        self.ci_lower
    }

    /// Upper end of the interval.
    pub fn ci_upper(&self) -> f64 {
        self.ci_upper
    }

    /// Unit ("×", "ns", "GFLOP/s", "%", ...).
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Two-sided confidence level of the interval.
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// The t-inference behind the interval, when there is one.
    pub fn inference(&self) -> Option<&TInference> {
        self.inference.as_ref()
    }

    /// An estimate from an interval computed elsewhere (order statistics, binomial, bootstrap).
    ///
    /// # Errors
    /// `NonFinite` for NaN/inf values; `InvalidInput` when the interval is not ordered around the point.
    pub fn new(
        point: f64,
        ci_lower: f64,
        ci_upper: f64,
        unit: &str,
        confidence: f64,
    ) -> Result<Self, PerfError> {
        crate::error::check_finite("estimate", &[point, ci_lower, ci_upper])?;
        if !(ci_lower <= point && point <= ci_upper) {
            return Err(PerfError::InvalidInput(format!(
                "interval [{ci_lower}, {ci_upper}] does not contain its point {point}"
            )));
        }
        Ok(Self {
            point,
            ci_lower,
            ci_upper,
            unit: unit.to_string(),
            confidence,
            inference: None,
        })
    }

    /// A t-based estimate: `center ± t·se` on the given scale (exponentiated when `log_scale`).
    ///
    /// # Errors
    /// As [`Estimate::new`], plus invalid degrees of freedom.
    pub fn from_t(inference: TInference, unit: &str, confidence: f64) -> Result<Self, PerfError> {
        let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, inference.degrees_of_freedom)?;
        let (lower, upper) = (
            inference.center - t * inference.standard_error,
            inference.center + t * inference.standard_error,
        );
        let transform = |v: f64| if inference.log_scale { v.exp() } else { v };
        let mut estimate = Self::new(
            transform(inference.center),
            transform(lower),
            transform(upper),
            unit,
            confidence,
        )?;
        estimate.inference = Some(inference);
        Ok(estimate)
    }

    /// The same estimate at another confidence level, when its t-inference is known.
    pub fn at_confidence(&self, confidence: f64) -> Option<Self> {
        self.inference
            .and_then(|inference| Self::from_t(inference, &self.unit, confidence).ok())
    }

    /// One-sided p-value against "the claim is false" (the estimate is on the bad side of `threshold`).
    pub fn one_sided_p_value(&self, threshold: f64, direction: Direction) -> Option<f64> {
        let inference = self.inference?;
        if inference.standard_error <= 0.0 {
            return None;
        }
        let threshold = if inference.log_scale {
            if threshold <= 0.0 {
                return None;
            }
            threshold.ln()
        } else {
            threshold
        };
        let t = (inference.center - threshold) / inference.standard_error;
        let cdf = student_t_cdf(t, inference.degrees_of_freedom).ok()?;
        Some(match direction {
            Direction::AtLeast => 1.0 - cdf,
            Direction::AtMost => cdf,
        })
    }
}

/// A statement to be judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Stable id, e.g. `accel.simd_vs_matrixmultiply`.
    pub id: String,
    /// The module that owns it.
    pub module: String,
    /// Plain statement.
    pub statement: String,
    /// How it is judged.
    pub criterion: Criterion,
}

/// A judged claim: the unit of every module's validation and of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// Stable id.
    pub id: String,
    /// Owning module.
    pub module: String,
    /// Plain statement.
    pub statement: String,
    /// The verdict.
    pub verdict: Verdict,
    /// One line on why.
    pub reason: String,
    /// The estimate judged, absent on ERROR.
    pub estimate: Option<Estimate>,
    /// The threshold, where the claim has one.
    pub threshold: Option<f64>,
    /// The criterion.
    pub criterion: Criterion,
    /// One-sided p-value for the claim (when its inference is known), before and after Holm.
    pub p_value: Option<f64>,
    /// Holm-adjusted p-value across the family, when adjusted.
    pub p_value_holm: Option<f64>,
    /// Whatever else the claim needs: the kernel that ran, sizes, raw samples, sub-results.
    pub details: BTreeMap<String, serde_json::Value>,
    /// The machine while the claim was measured (schema 2): steal, other processes' CPU, run queue,
    /// frequency and the canary, as the suite's monitor recorded them around the claim's module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<crate::environment::EnvironmentRecord>,
}

impl ClaimResult {
    /// Attach a detail (builder style).
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value)
            .unwrap_or_else(|e| serde_json::Value::String(format!("unserializable: {e}")));
        self.details.insert(key.into(), value);
        self
    }

    /// Append a remark to the reason without changing the verdict (builder style).
    pub fn annotate(mut self, remark: impl AsRef<str>) -> Self {
        self.reason = format!("{}; {}", self.reason, remark.as_ref());
        self
    }

    /// Move the verdict to a weaker one, saying why (builder style): a sub-claim that failed
    /// (`Fail`), evidence that depends on the method (`Partial`), a contended machine
    /// (`Inconclusive`). A verdict is never raised: weakening to PASS, or away from ERROR or
    /// SKIPPED, leaves the verdict as it was and only records the remark.
    pub fn weaken(mut self, verdict: Verdict, why: impl AsRef<str>) -> Self {
        let allowed = match (self.verdict, verdict) {
            (_, Verdict::Pass) | (Verdict::Error | Verdict::Skipped, _) => false,
            (Verdict::Pass, _) => true,
            (Verdict::Partial, other) => other != Verdict::Partial,
            (Verdict::Fail, other) => matches!(other, Verdict::Inconclusive | Verdict::Error),
            (Verdict::Inconclusive, other) => other == Verdict::Error,
        };
        if allowed {
            self.verdict = verdict;
        }
        self.annotate(why)
    }

    /// Record the environment it was measured in (builder style).
    pub fn with_environment(mut self, record: crate::environment::EnvironmentRecord) -> Self {
        self.environment = Some(record);
        self
    }

    /// Declare that the claim needs a quiet machine: every core (thread scaling), the caches of the
    /// other core (% of peak), or timings that another process's CPU use disturbs unequally (a
    /// comparison of kernels, the comparator's power). The suite then turns a FAIL or PARTIAL measured
    /// while the monitor saw contention into INCONCLUSIVE, with the contention named. A claim that is
    /// not about time (an accuracy, a size) never declares it.
    pub fn needs_quiet_machine(self) -> Self {
        self.with_detail(NEEDS_QUIET_MACHINE, true)
    }

    /// Whether [`ClaimResult::needs_quiet_machine`] was declared.
    pub fn requires_quiet_machine(&self) -> bool {
        self.details.get(NEEDS_QUIET_MACHINE) == Some(&serde_json::Value::Bool(true))
    }
}

/// The detail key of [`ClaimResult::needs_quiet_machine`].
const NEEDS_QUIET_MACHINE: &str = "needs_quiet_machine";

/// A confidence level as a percentage with no spurious digits: `95`, `97.5`, `98.33`.
fn percent(confidence: f64) -> String {
    let text = format!("{:.2}", 100.0 * confidence);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Claim {
    /// A claim with a one-sided threshold.
    pub fn threshold(
        id: &str,
        module: &str,
        statement: &str,
        threshold: f64,
        direction: Direction,
    ) -> Self {
        Self {
            id: id.into(),
            module: module.into(),
            statement: statement.into(),
            criterion: Criterion::Threshold {
                threshold,
                direction,
            },
        }
    }

    /// An equivalence claim with margins `[lower, upper]`.
    pub fn equivalence(id: &str, module: &str, statement: &str, lower: f64, upper: f64) -> Self {
        Self {
            id: id.into(),
            module: module.into(),
            statement: statement.into(),
            criterion: Criterion::Equivalence { lower, upper },
        }
    }

    /// A measurement to record, with no bar.
    pub fn measured(id: &str, module: &str, statement: &str) -> Self {
        Self {
            id: id.into(),
            module: module.into(),
            statement: statement.into(),
            criterion: Criterion::Measured,
        }
    }

    fn result(&self, verdict: Verdict, reason: String, estimate: Option<Estimate>) -> ClaimResult {
        let threshold = match self.criterion {
            Criterion::Threshold { threshold, .. } => Some(threshold),
            _ => None,
        };
        let p_value = match (self.criterion, &estimate) {
            (
                Criterion::Threshold {
                    threshold,
                    direction,
                },
                Some(estimate),
            ) => estimate.one_sided_p_value(threshold, direction),
            _ => None,
        };
        ClaimResult {
            id: self.id.clone(),
            module: self.module.clone(),
            statement: self.statement.clone(),
            verdict,
            reason,
            estimate,
            threshold,
            criterion: self.criterion,
            p_value,
            p_value_holm: None,
            details: BTreeMap::new(),
            environment: None,
        }
    }

    /// The claim could not be measured: something broke.
    pub fn error(&self, reason: impl Into<String>) -> ClaimResult {
        self.result(Verdict::Error, reason.into(), None)
    }

    /// The claim cannot run here by design; `enable_command` is what a user runs to enable it (it is
    /// kept in the details under `enable_command` and named in the reason).
    pub fn skipped(&self, reason: impl Into<String>, enable_command: &str) -> ClaimResult {
        let reason = format!("{}; enable with `{enable_command}`", reason.into());
        self.result(Verdict::Skipped, reason, None)
            .with_detail("enable_command", enable_command)
    }

    /// The measurement cannot speak for the code (contention, an exhausted budget); the estimate, when
    /// there is one, is kept so the interval is still reported.
    pub fn inconclusive(
        &self,
        reason: impl Into<String>,
        estimate: Option<Estimate>,
    ) -> ClaimResult {
        self.result(Verdict::Inconclusive, reason.into(), estimate)
    }

    /// Judge the claim against `estimate`.
    ///
    /// For an equivalence claim, pass an estimate at level 1 − 2α (0.90 for α = 0.05); when the
    /// estimate carries its t-inference, it is re-derived at that level here automatically.
    pub fn judge(&self, estimate: Estimate) -> ClaimResult {
        let unit = estimate.unit.clone();
        let show = |v: f64| format_value(v, &unit);
        match self.criterion {
            Criterion::Measured => {
                let reason = format!(
                    "measured {} ({}% CI [{}, {}])",
                    show(estimate.point),
                    percent(estimate.confidence),
                    show(estimate.ci_lower),
                    show(estimate.ci_upper)
                );
                self.result(Verdict::Pass, reason, Some(estimate))
            }
            Criterion::Threshold {
                threshold,
                direction,
            } => {
                let (lo, hi) = (estimate.ci_lower, estimate.ci_upper);
                let interval = format!(
                    "{}% CI [{}, {}]",
                    percent(estimate.confidence),
                    show(lo),
                    show(hi)
                );
                let (verdict, relation) = match direction {
                    Direction::AtLeast if lo >= threshold => (Verdict::Pass, "whole interval ≥"),
                    Direction::AtLeast if hi < threshold => (Verdict::Fail, "whole interval <"),
                    Direction::AtMost if hi <= threshold => (Verdict::Pass, "whole interval ≤"),
                    Direction::AtMost if lo > threshold => (Verdict::Fail, "whole interval >"),
                    _ => (Verdict::Partial, "inconclusive: interval straddles"),
                };
                let reason = format!(
                    "{} ({interval}); {relation} threshold {}",
                    show(estimate.point),
                    show(threshold)
                );
                self.result(verdict, reason, Some(estimate))
            }
            Criterion::Equivalence { lower, upper } => {
                let tost_level = 1.0 - 2.0 * (1.0 - estimate.confidence) / 2.0;
                // A (1 − 2α) interval: for a 95% estimate (α = 0.025 per side) use 90%.
                let tost_estimate = estimate
                    .at_confidence(tost_level.min(0.90))
                    .unwrap_or_else(|| estimate.clone());
                let (lo, hi) = (tost_estimate.ci_lower, tost_estimate.ci_upper);
                let interval = format!(
                    "{}% CI [{}, {}]",
                    percent(tost_estimate.confidence),
                    show(lo),
                    show(hi)
                );
                let verdict = if lower <= lo && hi <= upper {
                    Verdict::Pass
                } else if hi < lower || lo > upper {
                    Verdict::Fail
                } else {
                    Verdict::Partial
                };
                let relation = match verdict {
                    Verdict::Pass => "inside",
                    Verdict::Fail => "entirely outside",
                    _ => "inconclusive: not inside",
                };
                let reason = format!(
                    "{} ({interval}, TOST); {relation} the equivalence margin [{}, {}]",
                    show(estimate.point),
                    show(lower),
                    show(upper)
                );
                let mut result = self.result(verdict, reason, Some(estimate));
                if let Some(inference) = tost_estimate.inference {
                    result.p_value = tost_p_value(inference, lower, upper);
                }
                result
            }
        }
    }
}

impl Claim {
    /// Judge against a primary estimate and require a robust cross-check to agree: when the two
    /// verdicts differ, the claim is PARTIAL (the evidence depends on the method, so it is not
    /// conclusive). For an equivalence claim pass the cross-check at the TOST level (0.90).
    pub fn judge_with_cross_check(
        &self,
        primary: Estimate,
        cross_check: Estimate,
        cross_check_name: &str,
    ) -> ClaimResult {
        let primary_result = self.judge(primary);
        let cross_result = self.judge(cross_check.clone());
        let agreed = primary_result.verdict == cross_result.verdict;
        let mut result = primary_result.with_detail(
            "cross_check",
            serde_json::json!({
                "method": cross_check_name,
                "estimate": cross_check,
                "verdict": cross_result.verdict,
            }),
        );
        if !agreed && result.verdict != Verdict::Error {
            result.reason = format!(
                "{}; but the {cross_check_name} cross-check says {} ({}): inconclusive",
                result.reason, cross_result.verdict, cross_result.reason
            );
            result.verdict = Verdict::Partial;
        }
        result
    }
}

impl Claim {
    /// Judge an interleaved comparison: its paired log-ratio speedup is the primary estimate and the
    /// Hodges–Lehmann / signed-rank interval the cross-check (at the TOST level 0.90 for an
    /// equivalence claim, at the primary's level otherwise); see [`Claim::judge_with_cross_check`].
    ///
    /// # Errors
    /// When either estimate cannot be formed (too few pairs, a degenerate interval).
    pub fn judge_comparison(
        &self,
        comparison: &crate::compare::Comparison,
    ) -> Result<ClaimResult, PerfError> {
        let robust_confidence = match self.criterion {
            Criterion::Equivalence { .. } => 0.90,
            _ => comparison.speedup.confidence,
        };
        Ok(self.judge_with_cross_check(
            comparison.speedup_estimate()?,
            comparison.robust_estimate(robust_confidence)?,
            ROBUST_CROSS_CHECK,
        ))
    }
}

/// The name of the comparator's robust cross-check, as reports show it.
pub const ROBUST_CROSS_CHECK: &str = "Hodges–Lehmann / signed-rank";

/// TOST p-value: the larger of the two one-sided p-values against the margins.
pub fn tost_p_value(inference: TInference, lower: f64, upper: f64) -> Option<f64> {
    if inference.standard_error <= 0.0 {
        return None;
    }
    let (lower, upper) = if inference.log_scale {
        if lower <= 0.0 || upper <= 0.0 {
            return None;
        }
        (lower.ln(), upper.ln())
    } else {
        (lower, upper)
    };
    let df = inference.degrees_of_freedom;
    let t_lower = (inference.center - lower) / inference.standard_error;
    let t_upper = (inference.center - upper) / inference.standard_error;
    let p_lower = 1.0 - student_t_cdf(t_lower, df).ok()?;
    let p_upper = student_t_cdf(t_upper, df).ok()?;
    Some(p_lower.max(p_upper))
}

/// Holm–Bonferroni step-down adjustment of a family of p-values (order preserved).
pub fn holm_adjust(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running_max = 0.0f64;
    for (rank, &index) in order.iter().enumerate() {
        let value = ((m - rank) as f64 * p_values[index]).min(1.0);
        running_max = running_max.max(value);
        adjusted[index] = running_max;
    }
    adjusted
}

/// Apply Holm across the claims that carry a p-value; a PASS whose adjusted p-value exceeds
/// `alpha` becomes PARTIAL, with the reason amended. Returns the family size.
pub fn apply_holm(results: &mut [ClaimResult], alpha: f64) -> usize {
    let members: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, result)| {
            result.p_value.is_some()
                && !matches!(
                    result.verdict,
                    Verdict::Error | Verdict::Skipped | Verdict::Inconclusive
                )
        })
        .map(|(index, _)| index)
        .collect();
    let p_values: Vec<f64> = members
        .iter()
        .map(|&i| results[i].p_value.unwrap_or(1.0))
        .collect();
    let adjusted = holm_adjust(&p_values);
    for (&index, &p_adjusted) in members.iter().zip(&adjusted) {
        let result = &mut results[index];
        result.p_value_holm = Some(p_adjusted);
        if result.verdict == Verdict::Pass && p_adjusted > alpha {
            result.verdict = Verdict::Partial;
            result.reason = format!(
                "{}; not significant after Holm adjustment across {} claims (p = {:.3} > {alpha})",
                result.reason,
                members.len(),
                p_adjusted
            );
        }
    }
    members.len()
}

/// Format a value with its unit compactly.
pub fn format_value(value: f64, unit: &str) -> String {
    let magnitude = value.abs();
    let digits = if magnitude == 0.0 || magnitude >= 100.0 {
        1
    } else if magnitude >= 1.0 {
        3
    } else {
        4
    };
    let number = format!("{value:.digits$}");
    match unit {
        "" => number,
        "×" | "%" => format!("{number}{unit}"),
        _ => format!("{number} {unit}"),
    }
}

#[cfg(test)]
mod tests;
