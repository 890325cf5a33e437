//! Contention: an [`EnvironmentRecord`] summarized into a verdict (none / suspected / detected) with a
//! human reason, under documented thresholds, and how a claim's verdict is qualified by it.

use super::EnvironmentRecord;
use crate::claim::{ClaimResult, Verdict};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Contention.
// ---------------------------------------------------------------------------------------------

/// How strongly the record points at contention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentionVerdict {
    /// Nothing above the "suspected" thresholds (or nothing could be read: see the description).
    None,
    /// Something above a "suspected" threshold.
    Suspected,
    /// Something above a "detected" threshold.
    Detected,
}

/// Thresholds of [`EnvironmentRecord::contention`]. Each signal has a "suspected" and a "detected"
/// level; the verdict is the strongest level any signal reaches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContentionThresholds {
    /// Cores held by other processes. Default 0.10 (suspected) and 0.25 (detected): a quarter of
    /// a core taken from a claim that uses every core moves its result by more than the usual
    /// round-to-round noise on a 2-core machine, while a quiet machine's daemons take a few percent.
    pub others_cores: (f64, f64),
    /// Steal fraction of all CPU time. Default 0.02 and 0.05.
    pub steal_fraction: (f64, f64),
    /// Canary slowdown, as the larger of after/before and before/after. Default 1.10 and 1.25: the
    /// canary's own spread between two quiet timings is a few percent.
    pub canary_ratio: (f64, f64),
}

impl Default for ContentionThresholds {
    fn default() -> Self {
        Self {
            others_cores: (0.10, 0.25),
            steal_fraction: (0.02, 0.05),
            canary_ratio: (1.10, 1.25),
        }
    }
}

/// A summary of the record for a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    /// Cores held by other processes, when measured.
    pub others_cores: Option<f64>,
    /// Steal fraction, when measured.
    pub steal_fraction: Option<f64>,
    /// Canary after/before, when measured.
    pub canary_slowdown: Option<f64>,
    /// How strongly the signals point at contention.
    pub verdict: ContentionVerdict,
    /// A sentence for the report: what was seen, or that nothing was, or that nothing could be read.
    pub description: String,
}

impl Contention {
    /// Qualify a claim's result with this summary (builder style), so that a busy machine is named
    /// instead of the code being blamed:
    ///
    /// - `needs_quiet_machine` (thread scaling, or a claim that needs the other core's share of the cache)
    ///   and `Suspected` or `Detected`: a FAIL or PARTIAL becomes INCONCLUSIVE with the description
    ///   ("another process held 48% of a core during the measurement"): the measurement was of a core
    ///   the process did not have. A PASS stays PASS with the description appended (contention slows
    ///   things down, so it does not manufacture a pass of an at-least bar).
    /// - Any other claim keeps its verdict, with the description appended: its interleaved sides
    ///   shared the contention, and a claim that is not about time (an accuracy) is not moved by it.
    /// - `None`: unchanged.
    ///
    /// The summary is attached as the detail `contention` whenever the verdict is not `None`. A
    /// verdict is never raised ([`ClaimResult::weaken`]).
    pub fn qualify(&self, result: ClaimResult, needs_quiet_machine: bool) -> ClaimResult {
        if self.verdict == ContentionVerdict::None {
            return result;
        }
        let why = format!("contention: {}", self.description);
        let weaken =
            needs_quiet_machine && matches!(result.verdict, Verdict::Fail | Verdict::Partial);
        let result = if weaken {
            result.weaken(Verdict::Inconclusive, why)
        } else {
            result.annotate(why)
        };
        result.with_detail("contention", self)
    }
}

impl EnvironmentRecord {
    /// The contention summary under the default [`ContentionThresholds`].
    pub fn contention(&self) -> Contention {
        self.contention_with(&ContentionThresholds::default())
    }

    /// The contention summary under `thresholds`.
    pub fn contention_with(&self, thresholds: &ContentionThresholds) -> Contention {
        let level = |value: f64, (suspected, detected): (f64, f64)| {
            if value >= detected {
                ContentionVerdict::Detected
            } else if value >= suspected {
                ContentionVerdict::Suspected
            } else {
                ContentionVerdict::None
            }
        };
        let mut verdict = ContentionVerdict::None;
        let mut seen = Vec::new();
        let mut quiet = Vec::new();
        if let Some(cores) = self.others_cores {
            let signal = level(cores, thresholds.others_cores);
            verdict = verdict.max(signal);
            let amount = if cores < 1.0 {
                format!("{:.0}% of a core", 100.0 * cores)
            } else {
                format!("{cores:.2} cores")
            };
            if signal == ContentionVerdict::None {
                quiet.push(format!("other processes held {amount}"));
            } else if cores < 1.0 {
                seen.push(format!(
                    "another process held {amount} during the measurement"
                ));
            } else {
                seen.push(format!(
                    "other processes held {amount} during the measurement"
                ));
            }
        }
        if let Some(steal) = self.steal_fraction {
            let signal = level(steal, thresholds.steal_fraction);
            verdict = verdict.max(signal);
            let text = format!("{:.1}% of CPU time", 100.0 * steal);
            if signal == ContentionVerdict::None {
                quiet.push(format!("steal {text}"));
            } else {
                seen.push(format!("the hypervisor stole {text}"));
            }
        }
        let canary_slowdown = self.canary.map(|canary| canary.ratio);
        if let Some(ratio) = canary_slowdown.filter(|r| r.is_finite() && *r > 0.0) {
            let signal = level(ratio.max(1.0 / ratio), thresholds.canary_ratio);
            verdict = verdict.max(signal);
            if signal == ContentionVerdict::None {
                quiet.push(format!("canary {ratio:.2}×"));
            } else if ratio > 1.0 {
                seen.push(format!(
                    "the canary ran {ratio:.2}× slower after the measurement than before"
                ));
            } else {
                seen.push(format!(
                    "the canary ran {:.2}× slower before the measurement than after",
                    1.0 / ratio
                ));
            }
        }
        let description = if !seen.is_empty() {
            seen.join("; ")
        } else if !quiet.is_empty() {
            format!("no contention seen: {}", quiet.join(", "))
        } else {
            "contention unknown: no signal could be read".to_string()
        };
        Contention {
            others_cores: self.others_cores,
            steal_fraction: self.steal_fraction,
            canary_slowdown,
            verdict,
            description,
        }
    }
}
