//! Compliance: quality ≥ target and p90 latency ≤ limit, each judged on its interval, never on the point
//! alone: met when the whole interval is on the good side, missed when the whole interval is on the bad side,
//! inconclusive when it straddles (or when there is no interval).
//!
//! A target relative to a baseline scored on the same rows (the Olympics challenge: "no worse than the f32
//! model") is judged as what it is, a paired non-inferiority test: the per-row difference (submission
//! correct − baseline correct) over the same predictions, its mean with a paired interval, met when the lower
//! bound is ≥ −margin, missed when the upper bound is < −margin. Comparing the submission's unpaired
//! interval with a target computed from the baseline's point would ignore that both err on mostly the same
//! rows, and leaves every near-baseline submission inconclusive by construction.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, OlympicsError};

/// The verdict on one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requirement {
    /// The whole interval is on the good side (a bound exactly at the limit counts as met).
    Met,
    /// The whole interval is on the bad side.
    Missed,
    /// The interval straddles the limit, or there is no interval.
    Inconclusive,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComplianceStatus {
    /// Every requirement met.
    Compliant,
    /// At least one requirement missed.
    NotCompliant,
    /// None missed, at least one inconclusive.
    Inconclusive,
}

impl std::fmt::Display for ComplianceStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            ComplianceStatus::Compliant => "compliant",
            ComplianceStatus::NotCompliant => "not compliant",
            ComplianceStatus::Inconclusive => "inconclusive",
        })
    }
}

/// The compliance verdict with its parts and reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compliance {
    /// Overall.
    pub status: ComplianceStatus,
    /// Quality ≥ target.
    pub quality: Requirement,
    /// p90 latency ≤ limit.
    pub latency: Requirement,
    /// One sentence per requirement.
    pub reasons: Vec<String>,
    /// The paired difference against the baseline, when the quality target is relative to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedDifference>,
    /// The non-inferiority margin the paired difference was judged against (a fraction), with `paired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

/// The paired difference of two accuracies measured on the same rows: `submission − baseline`, as
/// fractions (0.01 = one percentage point).
///
/// The interval is Student's t on the per-row differences `d_i ∈ {−1, 0, +1}` (n − 1 degrees of freedom).
/// Why this one: it is the paired interval whose width follows from the discordant rows alone (`d_i = 0`
/// wherever the two agree), it needs no iteration, and with the thousands of rows and tens of discordant
/// pairs of the events here the mean of the `d_i` is close to normal. When every row agrees it has zero
/// width (the difference is exactly 0); with only a handful of discordant rows it is optimistic, as every
/// Wald-type interval is, which `n_discordant` in the record lets a reader see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Name of the baseline.
    pub baseline: String,
    /// Rows compared.
    pub n: usize,
    /// Rows the submission gets right and the baseline wrong.
    pub n_submission_only: usize,
    /// Rows the baseline gets right and the submission wrong.
    pub n_baseline_only: usize,
    /// Mean of the per-row differences (`(n_submission_only − n_baseline_only) / n`).
    pub mean: f64,
    /// Lower bound.
    pub ci_lower: f64,
    /// Upper bound.
    pub ci_upper: f64,
    /// Two-sided confidence of the interval.
    pub confidence: f64,
    /// How the interval was computed.
    pub method: String,
}

impl PairedDifference {
    /// Rows on which the two disagree.
    pub fn n_discordant(&self) -> usize {
        self.n_submission_only + self.n_baseline_only
    }

    /// As an interval for compliance.
    pub fn interval(&self) -> Interval {
        Interval {
            point: self.mean,
            bounds: Some((self.ci_lower, self.ci_upper)),
        }
    }
}

/// The paired difference `submission − baseline` of per-row correctness on the same rows.
///
/// # Errors
/// [`OlympicsError::InvalidArgument`] when the two records differ in length, hold fewer than two rows, or
/// `confidence` is not inside (0, 1).
pub fn paired_difference(
    submission_correct: &[bool],
    baseline_correct: &[bool],
    baseline: &str,
    confidence: f64,
) -> Result<PairedDifference, OlympicsError> {
    let n = submission_correct.len();
    if n != baseline_correct.len() {
        return Err(invalid(format!(
            "paired difference: {n} submission rows against {} baseline rows",
            baseline_correct.len()
        )));
    }
    if n < 2 {
        return Err(invalid(format!(
            "paired difference: {n} rows, need at least 2"
        )));
    }
    if !(0.0 < confidence && confidence < 1.0) {
        return Err(invalid(format!(
            "confidence {confidence} not inside (0, 1)"
        )));
    }
    let mut n_submission_only = 0usize;
    let mut n_baseline_only = 0usize;
    for (&submission, &baseline) in submission_correct.iter().zip(baseline_correct) {
        match (submission, baseline) {
            (true, false) => n_submission_only += 1,
            (false, true) => n_baseline_only += 1,
            _ => {}
        }
    }
    let n_float = n as f64;
    let mean = (n_submission_only as f64 - n_baseline_only as f64) / n_float;
    // Σ (d_i − mean)² = Σ d_i² − n · mean², and d_i² is 1 exactly on the discordant rows.
    let sum_of_squares = (n_submission_only + n_baseline_only) as f64 - n_float * mean * mean;
    let variance = (sum_of_squares / (n_float - 1.0)).max(0.0);
    let half_width = if variance == 0.0 {
        0.0
    } else {
        let t =
            perf_core::stats::student_t_quantile(1.0 - (1.0 - confidence) / 2.0, n_float - 1.0)?;
        t * (variance / n_float).sqrt()
    };
    Ok(PairedDifference {
        baseline: baseline.to_string(),
        n,
        n_submission_only,
        n_baseline_only,
        mean,
        ci_lower: mean - half_width,
        ci_upper: mean + half_width,
        confidence,
        method:
            "paired Student t on the per-row differences (submission correct − baseline correct)"
                .into(),
    })
}

/// Non-inferiority: `difference ≥ −margin`, judged on the paired interval.
pub fn judge_non_inferior(difference: &PairedDifference, margin: f64) -> Requirement {
    judge_at_least(difference.interval(), -margin)
}

/// An interval to judge: a point with an optional `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Point estimate.
    pub point: f64,
    /// Bounds, when they could be computed.
    pub bounds: Option<(f64, f64)>,
}

/// `value ≥ target` judged on the interval.
pub fn judge_at_least(value: Interval, target: f64) -> Requirement {
    match value.bounds {
        Some((lower, _)) if lower >= target => Requirement::Met,
        Some((_, upper)) if upper < target => Requirement::Missed,
        _ => Requirement::Inconclusive,
    }
}

/// `value ≤ limit` judged on the interval.
pub fn judge_at_most(value: Interval, limit: f64) -> Requirement {
    match value.bounds {
        Some((_, upper)) if upper <= limit => Requirement::Met,
        Some((lower, _)) if lower > limit => Requirement::Missed,
        _ => Requirement::Inconclusive,
    }
}

fn describe(what: &str, value: Interval, relation: &str, bar: f64, verdict: Requirement) -> String {
    let interval = match value.bounds {
        Some((lower, upper)) => format!("interval [{lower:.4}, {upper:.4}]"),
        None => "no interval".to_string(),
    };
    let outcome = match verdict {
        Requirement::Met => "met: whole interval on the good side",
        Requirement::Missed => "missed: whole interval on the bad side",
        Requirement::Inconclusive if value.bounds.is_none() => "inconclusive: no interval",
        Requirement::Inconclusive => "inconclusive: interval straddles the bar",
    };
    format!(
        "{what} {:.4} ({interval}) {relation} {bar:.4}: {outcome}",
        value.point
    )
}

/// Compliance of a quality estimate against `target` and a p90 latency (ms) against `limit_ms`.
pub fn judge_compliance(
    quality: Interval,
    target: f64,
    latency_p90_ms: Interval,
    limit_ms: f64,
) -> Compliance {
    let quality_verdict = judge_at_least(quality, target);
    let quality_reason = describe("quality", quality, "≥ target", target, quality_verdict);
    combine(
        quality_verdict,
        vec![quality_reason],
        latency_p90_ms,
        limit_ms,
        None,
    )
}

/// Compliance against a target relative to a baseline scored on the same rows: the paired difference
/// (submission − baseline) ≥ −`margin` judged on its interval, and p90 latency ≤ `limit_ms`. The unpaired
/// accuracy `quality` is reported next to the nominal absolute target `nominal_target` but does not decide.
pub fn judge_compliance_paired(
    difference: PairedDifference,
    margin: f64,
    quality: Interval,
    nominal_target: f64,
    latency_p90_ms: Interval,
    limit_ms: f64,
) -> Compliance {
    let quality_verdict = judge_non_inferior(&difference, margin);
    let paired_reason = format!(
        "{} (paired on {} rows, {} discordant: {} only the submission gets right, {} only {} gets right)",
        describe(
            &format!("accuracy difference to {}", difference.baseline),
            difference.interval(),
            "≥ −margin =",
            -margin,
            quality_verdict,
        ),
        difference.n,
        difference.n_discordant(),
        difference.n_submission_only,
        difference.n_baseline_only,
        difference.baseline,
    );
    let unpaired = match quality.bounds {
        Some((lower, upper)) => format!("[{lower:.4}, {upper:.4}]"),
        None => "no interval".to_string(),
    };
    let unpaired_reason = format!(
        "unpaired accuracy {:.4} {unpaired} against the nominal {nominal_target:.4} (reported; the paired test decides)",
        quality.point
    );
    combine(
        quality_verdict,
        vec![paired_reason, unpaired_reason],
        latency_p90_ms,
        limit_ms,
        Some((difference, margin)),
    )
}

/// Compliance when a relative target cannot be judged (no baseline in the field, or its rows do not pair):
/// the quality requirement is inconclusive with `why`.
pub fn judge_compliance_unpaired_relative(
    why: &str,
    latency_p90_ms: Interval,
    limit_ms: f64,
) -> Compliance {
    combine(
        Requirement::Inconclusive,
        vec![format!(
            "quality relative to the baseline: inconclusive: {why}"
        )],
        latency_p90_ms,
        limit_ms,
        None,
    )
}

fn combine(
    quality_verdict: Requirement,
    mut reasons: Vec<String>,
    latency_p90_ms: Interval,
    limit_ms: f64,
    paired: Option<(PairedDifference, f64)>,
) -> Compliance {
    let latency_verdict = judge_at_most(latency_p90_ms, limit_ms);
    let status = if quality_verdict == Requirement::Missed || latency_verdict == Requirement::Missed
    {
        ComplianceStatus::NotCompliant
    } else if quality_verdict == Requirement::Met && latency_verdict == Requirement::Met {
        ComplianceStatus::Compliant
    } else {
        ComplianceStatus::Inconclusive
    };
    reasons.push(describe(
        "p90 latency (ms)",
        latency_p90_ms,
        "≤ limit",
        limit_ms,
        latency_verdict,
    ));
    Compliance {
        status,
        quality: quality_verdict,
        latency: latency_verdict,
        reasons,
        margin: paired.as_ref().map(|(_, margin)| *margin),
        paired: paired.map(|(difference, _)| difference),
    }
}
