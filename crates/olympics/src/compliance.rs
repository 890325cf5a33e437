//! Compliance: quality ≥ target and SingleStream p90 latency (LoadGen's SingleStream scenario: one query at
//! a time, batch 1) ≤ limit, each a perf-core [`Claim`] judged on its
//! interval by [`Claim::judge`] (PASS when the whole interval is on the good side, FAIL when the whole
//! interval is on the bad side, PARTIAL when it straddles), INCONCLUSIVE when there is no interval to judge.
//! The submission's compliance is the quality result weakened by the latency result
//! ([`ClaimResult::weaken`]): a missed requirement makes it FAIL, a straddling one PARTIAL.
//!
//! A target relative to a baseline scored on the same rows (the Olympics challenge: "no worse than the f32
//! model") is judged as what it is, a paired non-inferiority test: the per-row difference (submission
//! correct − baseline correct) over the same predictions, its mean with perf-core's paired interval
//! ([`perf_core::stats::paired_proportion_difference`]), PASS when the lower bound is ≥ −margin, FAIL when
//! the upper bound is < −margin. Comparing the submission's unpaired interval with a target computed from
//! the baseline's point would ignore that both err on mostly the same rows, and leaves every near-baseline
//! submission inconclusive by construction.

use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use perf_core::stats::{paired_proportion_difference, PairedProportionDifference};
use serde::{Deserialize, Serialize};

use crate::error::OlympicsError;

/// The module name of every claim the referee judges.
pub const CLAIM_MODULE: &str = "olympics";

/// The compliance verdict with its two requirements, each a judged perf-core claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compliance {
    /// Quality ≥ target (or the paired difference ≥ −margin), judged on the quality's interval. Its id,
    /// statement and estimate are those of the submission's compliance claim.
    pub quality: ClaimResult,
    /// SingleStream p90 latency ≤ limit, judged on the p90's order-statistic interval.
    pub latency: ClaimResult,
    /// The paired difference against the baseline, when the quality target is relative to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedDifference>,
    /// The non-inferiority margin the paired difference was judged against (a fraction), with `paired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

impl Compliance {
    /// The submission's compliance as one claim result: the quality result with the latency result's
    /// reason appended, weakened to the latency's verdict where that is worse. Compliance is a conjunction,
    /// so a FAIL on quality stays FAIL whatever the latency says (weakening it to INCONCLUSIVE because the
    /// latency had no interval would hide a missed target). A verdict is never raised: a quality that
    /// could not be judged (INCONCLUSIVE) stays so even when the latency fails, the latency's FAIL named in
    /// the reason.
    pub fn claim_result(&self) -> ClaimResult {
        let latency_reason = format!("SingleStream p90 latency {}", self.latency.reason);
        if self.quality.verdict == Verdict::Fail {
            return self.quality.clone().annotate(latency_reason);
        }
        self.quality
            .clone()
            .weaken(self.latency.verdict, latency_reason)
    }

    /// The overall verdict: PASS when both requirements pass, FAIL when either fails, otherwise PARTIAL
    /// or INCONCLUSIVE.
    pub fn verdict(&self) -> Verdict {
        self.claim_result().verdict
    }
}

/// The paired difference of two accuracies measured on the same rows, `submission − baseline`, as
/// fractions (0.01 = one percentage point), with the baseline's name. The statistic is perf-core's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Name of the baseline.
    pub baseline: String,
    /// The difference: `first` is the submission, `second` the baseline.
    pub difference: PairedProportionDifference,
}

impl PairedDifference {
    /// Rows the submission gets right and the baseline wrong.
    pub fn n_submission_only(&self) -> usize {
        self.difference.n_first_only
    }

    /// Rows the baseline gets right and the submission wrong.
    pub fn n_baseline_only(&self) -> usize {
        self.difference.n_second_only
    }

    /// Rows on which the two disagree.
    pub fn n_discordant(&self) -> usize {
        self.difference.n_discordant()
    }
}

/// The paired difference `submission − baseline` of per-row correctness on the same rows.
///
/// # Errors
/// [`OlympicsError::Measure`] when the two records differ in length, hold fewer than two rows, or
/// `confidence` is not inside (0, 1).
pub fn paired_difference(
    submission_correct: &[bool],
    baseline_correct: &[bool],
    baseline: &str,
    confidence: f64,
) -> Result<PairedDifference, OlympicsError> {
    Ok(PairedDifference {
        baseline: baseline.to_string(),
        difference: paired_proportion_difference(submission_correct, baseline_correct, confidence)?,
    })
}

/// What a submission is judged on, named for its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceSubject {
    /// Id of the compliance claim, e.g. `olympics.image_classification.int8.compliance`.
    pub id: String,
    /// Plain statement of the whole claim (quality and latency).
    pub statement: String,
    /// The p90 latency (ms) with its interval, `Err` with the reason when it has none.
    pub latency_p90_ms: Result<Estimate, String>,
    /// The p90 limit, ms.
    pub limit_ms: f64,
}

impl ComplianceSubject {
    fn judge_latency(&self) -> ClaimResult {
        let claim = Claim::threshold(
            &format!("{}.p90_latency", self.id),
            CLAIM_MODULE,
            &format!(
                "SingleStream p90 latency (one query at a time) ≤ {} ms",
                self.limit_ms
            ),
            self.limit_ms,
            Direction::AtMost,
        );
        match &self.latency_p90_ms {
            Ok(estimate) => claim.judge(estimate.clone()),
            Err(why) => claim.inconclusive(format!("no interval: {why}"), None),
        }
    }

    fn quality_claim(&self, bar: f64) -> Claim {
        Claim::threshold(
            &self.id,
            CLAIM_MODULE,
            &self.statement,
            bar,
            Direction::AtLeast,
        )
    }
}

/// Compliance of a quality estimate against an absolute `target` and of the p90 latency against its limit.
pub fn judge_compliance(subject: &ComplianceSubject, quality: Estimate, target: f64) -> Compliance {
    Compliance {
        quality: subject.quality_claim(target).judge(quality),
        latency: subject.judge_latency(),
        paired: None,
        margin: None,
    }
}

/// Compliance against a target relative to a baseline scored on the same rows: the paired difference
/// (submission − baseline, in percentage points) ≥ −100·`margin` judged on its interval, and p90 latency ≤
/// the limit. The unpaired accuracy `quality` is reported next to the nominal absolute target
/// `nominal_target` but does not decide.
///
/// # Errors
/// When the paired difference cannot be expressed as an estimate (a non-finite interval).
pub fn judge_compliance_paired(
    subject: &ComplianceSubject,
    difference: PairedDifference,
    margin: f64,
    quality: &Estimate,
    nominal_target: f64,
) -> Result<Compliance, OlympicsError> {
    let estimate = difference.difference.estimate(100.0, "points")?;
    let quality_result = subject
        .quality_claim(-100.0 * margin)
        .judge(estimate)
        .annotate(format!(
            "paired with {} on {} rows, {} discordant: {} only the submission gets right, {} only {} gets right",
            difference.baseline,
            difference.difference.n,
            difference.n_discordant(),
            difference.n_submission_only(),
            difference.n_baseline_only(),
            difference.baseline,
        ))
        .annotate(format!(
            "unpaired accuracy {:.4} [{:.4}, {:.4}] against the nominal {nominal_target:.4} (reported; the paired test decides)",
            quality.point(), quality.ci_lower(), quality.ci_upper()
        ));
    Ok(Compliance {
        quality: quality_result,
        latency: subject.judge_latency(),
        paired: Some(difference),
        margin: Some(margin),
    })
}

/// Compliance when a relative target cannot be judged (no baseline in the field, or its rows do not
/// pair): the quality requirement is INCONCLUSIVE with `why`.
pub fn judge_compliance_unpaired_relative(
    subject: &ComplianceSubject,
    margin: f64,
    why: &str,
) -> Compliance {
    Compliance {
        quality: subject.quality_claim(-100.0 * margin).inconclusive(
            format!("quality relative to the baseline cannot be judged: {why}"),
            None,
        ),
        latency: subject.judge_latency(),
        paired: None,
        margin: None,
    }
}
