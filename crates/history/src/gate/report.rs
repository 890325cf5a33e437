//! What the gate reports: each claim's judgement ([`ClaimGate`], [`ClaimStatus`]), the run's
//! [`GateReport`] with its exit code, and the report as Markdown.

use super::Baseline;
use crate::record::Better;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What the gate concluded for one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "why", rename_all = "snake_case")]
pub enum ClaimStatus {
    /// No significant change beyond the threshold.
    Unchanged,
    /// A significant change the good way, beyond the threshold.
    Improved,
    /// Suspected and confirmed by the re-measurement.
    ConfirmedRegression,
    /// Suspected, but the re-measurement did not confirm it.
    NotConfirmed,
    /// Cannot be judged (missing on one side, too little history, contended, re-measurement failed).
    Undecided(String),
    /// Not gated by design (a measurement without a bar, not measured on either side).
    NotGated(String),
}

/// The gate's judgement of one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimGate {
    /// Claim id.
    pub claim_id: String,
    /// Which way is better.
    pub better: Better,
    /// Baseline level (mean of the baseline runs; geometric when positive).
    pub baseline: Option<f64>,
    /// Current estimate.
    pub current: Option<f64>,
    /// Unit.
    pub unit: String,
    /// current / baseline − 1 (or the difference over |baseline| for values that are not all positive).
    pub relative_change: Option<f64>,
    /// 95% interval of the relative change, against the run-to-run variance.
    pub ci_lower: Option<f64>,
    /// Upper end.
    pub ci_upper: Option<f64>,
    /// One-sided p-value of a change the bad way (two-sided for "unchanged is better").
    pub p_value: Option<f64>,
    /// Run-to-run standard deviation (on the log scale ≈ CV) from the history.
    pub run_to_run_sd: Option<f64>,
    /// Earlier runs of this claim the variance came from.
    pub history_runs: usize,
    /// The threshold applied.
    pub threshold: f64,
    /// The re-measured relative change, when re-measured.
    pub remeasured_change: Option<f64>,
    /// The verdict.
    pub status: ClaimStatus,
}

/// The gate's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The current run.
    pub current_run: String,
    /// The baseline asked for.
    pub baseline: Baseline,
    /// The runs the baseline resolved to.
    pub baseline_runs: Vec<String>,
    /// Why the gate cannot decide for the run as a whole (another machine, contention, no history).
    pub run_level_reasons: Vec<String>,
    /// Per claim, ordered by id.
    pub claims: Vec<ClaimGate>,
    /// Regressions are reported but do not fail.
    pub warn_only: bool,
}

impl GateReport {
    /// Confirmed regressions, by claim id.
    pub fn confirmed_regressions(&self) -> Vec<&str> {
        self.claims
            .iter()
            .filter(|c| c.status == ClaimStatus::ConfirmedRegression)
            .map(|c| c.claim_id.as_str())
            .collect()
    }

    /// Claims that could not be judged.
    pub fn undecided(&self) -> Vec<&ClaimGate> {
        self.claims
            .iter()
            .filter(|c| matches!(c.status, ClaimStatus::Undecided(_)))
            .collect()
    }

    /// 0 no confirmed regression (or `warn_only`), 1 a confirmed regression, 2 cannot decide.
    pub fn exit_code(&self) -> u8 {
        if !self.run_level_reasons.is_empty() {
            return 2;
        }
        if !self.confirmed_regressions().is_empty() {
            return if self.warn_only { 0 } else { 1 };
        }
        if self.undecided().is_empty() {
            0
        } else {
            2
        }
    }

    /// The report as Markdown (for a terminal or a pull-request comment).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let verdict = match self.exit_code() {
            0 if !self.confirmed_regressions().is_empty() => {
                "regressions found (warn-only: not failing)"
            }
            0 => "no confirmed regression",
            1 => "CONFIRMED REGRESSION",
            _ => "cannot decide",
        };
        let _ = writeln!(
            out,
            "## Gate: {verdict} (exit {})\n\nCurrent run `{}` against the {} ({}).\n",
            self.exit_code(),
            self.current_run,
            self.baseline,
            if self.baseline_runs.is_empty() {
                "no run".to_string()
            } else {
                self.baseline_runs
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for reason in &self.run_level_reasons {
            let _ = writeln!(out, "- cannot decide: {reason}");
        }
        if !self.run_level_reasons.is_empty() {
            return out;
        }
        let regressions = self.confirmed_regressions();
        if !regressions.is_empty() {
            let _ = writeln!(out, "- confirmed regressions: {}", regressions.join(", "));
        }
        let shown: Vec<&ClaimGate> = self
            .claims
            .iter()
            .filter(|c| !matches!(c.status, ClaimStatus::Unchanged | ClaimStatus::NotGated(_)))
            .collect();
        let unchanged = self
            .claims
            .iter()
            .filter(|c| c.status == ClaimStatus::Unchanged)
            .count();
        let not_gated = self
            .claims
            .iter()
            .filter(|c| matches!(c.status, ClaimStatus::NotGated(_)))
            .count();
        let _ = writeln!(
            out,
            "\n{unchanged} claims unchanged, {not_gated} not gated (no bar, or measured on neither side).\n"
        );
        if shown.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "| claim | status | baseline | current | change [95% CI] | p | run-to-run sd (runs) | threshold |\n|---|---|---|---|---|---|---|---|"
        );
        let percent =
            |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:+.1}%", 100.0 * v));
        let number = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.4}"));
        for claim in shown {
            let status = match &claim.status {
                ClaimStatus::ConfirmedRegression => format!(
                    "**regressed** (re-measured {})",
                    percent(claim.remeasured_change)
                ),
                ClaimStatus::NotConfirmed => format!(
                    "not confirmed (re-measured {})",
                    percent(claim.remeasured_change)
                ),
                ClaimStatus::Improved => "improved".to_string(),
                ClaimStatus::Undecided(why) => format!("undecided: {why}"),
                ClaimStatus::Unchanged => "unchanged".to_string(),
                ClaimStatus::NotGated(why) => format!("not gated: {why}"),
            };
            let _ = writeln!(
                out,
                "| `{}` | {status} | {} {} | {} | {} [{}, {}] | {} | {} ({}) | {:.0}% |",
                claim.claim_id,
                number(claim.baseline),
                claim.unit,
                number(claim.current),
                percent(claim.relative_change),
                percent(claim.ci_lower),
                percent(claim.ci_upper),
                claim
                    .p_value
                    .map_or("—".to_string(), |p| format!("{p:.2e}")),
                number(claim.run_to_run_sd),
                claim.history_runs,
                100.0 * claim.threshold
            );
        }
        out
    }
}
