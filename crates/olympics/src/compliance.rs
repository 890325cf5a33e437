//! Compliance: quality ≥ target and p90 latency ≤ limit, each judged on its interval, never on the point
//! alone: met when the whole interval is on the good side, missed when the whole interval is on the bad side,
//! inconclusive when it straddles (or when there is no interval).

use serde::{Deserialize, Serialize};

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
    let latency_verdict = judge_at_most(latency_p90_ms, limit_ms);
    let status = if quality_verdict == Requirement::Missed || latency_verdict == Requirement::Missed
    {
        ComplianceStatus::NotCompliant
    } else if quality_verdict == Requirement::Met && latency_verdict == Requirement::Met {
        ComplianceStatus::Compliant
    } else {
        ComplianceStatus::Inconclusive
    };
    Compliance {
        status,
        quality: quality_verdict,
        latency: latency_verdict,
        reasons: vec![
            describe("quality", quality, "≥ target", target, quality_verdict),
            describe(
                "p90 latency (ms)",
                latency_p90_ms,
                "≤ limit",
                limit_ms,
                latency_verdict,
            ),
        ],
    }
}
