//! The CI gate: is the current run a confirmed regression from a baseline on the same machine?
//!
//! An interval from within one run does not contain the run-to-run variance (three quick runs of one
//! commit "regressed" each other with Holm p < 0.001), so each claim's change is judged against the
//! variance the history shows for that claim on this machine and mode: the mean squared successive
//! difference of its estimates, pooled within the segments between change points (a past optimisation is
//! not noise). A claim is *suspected* when it moved the bad way (by its criterion's direction) by at least
//! its threshold (default 5%) with a one-sided p ≤ [`GateConfig::max_p_value`]; a suspected claim is
//! re-measured through the caller's callback and *confirmed* only when the re-measurement is suspected too.
//!
//! Exit codes ([`GateReport::exit_code`]): 0 no confirmed regression; 1 a confirmed regression (named);
//! 2 cannot decide (another machine, a claim missing on one side, a contended run, too little history).
//! Absolute figures are never compared across machine fingerprints: the baseline must be on this machine.
//!
//! This file holds the baseline, the settings and [`gate`] itself (resolving the baseline, the run-level
//! reasons, re-measuring); `judge` holds the statistics of one claim, `report` the report types and their
//! Markdown, `tests` the simulations.

use crate::error::{HistoryError, Result};
use crate::record::{Better, ClaimRecord, RunRecord};
use crate::store::{RunFilter, Store};
use perf_core::results::ValidationRun;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display};

mod judge;
mod report;
#[cfg(test)]
mod tests;

use judge::{judge_claim, missing_gate, Judgement};
pub use report::{ClaimGate, ClaimStatus, GateReport};

/// What the current run is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Baseline {
    /// The newest earlier run on this machine and mode (with every run of its commit, when clean).
    Previous,
    /// Every run of a commit (a prefix of at least 7 hex digits) on this machine and mode.
    Commit(String),
    /// One run, by id.
    Run(String),
}

impl Baseline {
    /// `previous`, a run id (anything with a `-` after a timestamp), otherwise a commit.
    pub fn parse(text: &str) -> Self {
        if text == "previous" {
            Baseline::Previous
        } else if text.len() > 16 && text.contains('-') {
            Baseline::Run(text.to_string())
        } else {
            Baseline::Commit(text.to_string())
        }
    }
}

impl Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Baseline::Previous => f.write_str("previous run"),
            Baseline::Commit(commit) => write!(f, "commit {commit}"),
            Baseline::Run(run) => write!(f, "run {run}"),
        }
    }
}

/// Settings of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    /// Smallest relative change that can fail the gate (0.05 = 5%).
    pub default_threshold: f64,
    /// Per-claim thresholds, by claim id or by a prefix ending in `*` (`accel.*`).
    pub thresholds: BTreeMap<String, f64>,
    /// Report regressions but exit 0.
    pub warn_only: bool,
    /// One-sided p-value at most which a change is significant, against the run-to-run variance.
    pub max_p_value: f64,
    /// Fewest earlier runs of a claim on this machine and mode for its run-to-run variance.
    pub min_history_runs: usize,
    /// A run whose 1-minute load average per core exceeded this at its start counts as contended;
    /// `None` trusts every run.
    pub max_load_per_core: Option<f64>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            default_threshold: 0.05,
            thresholds: BTreeMap::new(),
            warn_only: false,
            max_p_value: 0.01,
            min_history_runs: 5,
            max_load_per_core: Some(1.0),
        }
    }
}

impl GateConfig {
    /// The threshold of a claim: an exact entry, else the longest matching prefix entry, else the default.
    pub fn threshold_for(&self, claim_id: &str) -> f64 {
        if let Some(threshold) = self.thresholds.get(claim_id) {
            return *threshold;
        }
        self.thresholds
            .iter()
            .filter_map(|(pattern, threshold)| {
                let prefix = pattern.strip_suffix('*')?;
                claim_id
                    .starts_with(prefix)
                    .then_some((prefix.len(), *threshold))
            })
            .max_by_key(|(length, _)| *length)
            .map_or(self.default_threshold, |(_, threshold)| threshold)
    }

    /// Parse `claim=percent` (e.g. `accel.simd_vs_naive=10`) into the thresholds.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed entry or a percentage that is not positive and finite.
    pub fn add_threshold(&mut self, entry: &str) -> Result<()> {
        let (claim, percent) = entry.split_once('=').ok_or_else(|| {
            HistoryError::InvalidInput(format!("threshold {entry:?} is not claim=percent"))
        })?;
        let percent: f64 = percent.trim().trim_end_matches('%').parse().map_err(|_| {
            HistoryError::InvalidInput(format!("threshold {entry:?}: {percent:?} is not a number"))
        })?;
        if !(percent.is_finite() && percent > 0.0) {
            return Err(HistoryError::InvalidInput(format!(
                "threshold {entry:?} must be a positive percentage"
            )));
        }
        self.thresholds
            .insert(claim.trim().to_string(), percent / 100.0);
        Ok(())
    }
}

/// Compare `current` with `baseline` on the same machine, re-measuring suspected regressions through
/// `remeasure` (called once, with the suspected claims' ids) before confirming them.
///
/// `current` need not be in the store; if it is, it is left out of its own history.
///
/// # Errors
/// `NotFound` for a baseline run or commit the history does not hold on any machine; `Store` when the
/// store cannot be read. A re-measurement that fails is not an error: those claims are undecided (exit 2).
pub fn gate<F, E>(
    store: &mut Store,
    current: &ValidationRun,
    baseline: &Baseline,
    config: &GateConfig,
    mut remeasure: F,
) -> Result<GateReport>
where
    F: FnMut(&[String]) -> std::result::Result<ValidationRun, E>,
    E: Display,
{
    let current_record = RunRecord::from_run(current);
    let fingerprint_id = current_record.fingerprint_id();
    let all_runs: Vec<RunRecord> = store
        .runs(&RunFilter::default())?
        .into_iter()
        .filter(|run| run.run_id != current_record.run_id)
        .collect();
    let same_machine: Vec<&RunRecord> = all_runs
        .iter()
        .filter(|run| run.fingerprint_id() == fingerprint_id && run.mode == current_record.mode)
        .collect();
    let mut report = GateReport {
        current_run: current_record.run_id.clone(),
        baseline: baseline.clone(),
        baseline_runs: Vec::new(),
        run_level_reasons: Vec::new(),
        claims: Vec::new(),
        warn_only: config.warn_only,
    };
    let baseline_runs: Vec<&RunRecord> = match baseline {
        Baseline::Run(run_id) => {
            let Some(run) = all_runs.iter().find(|run| &run.run_id == run_id) else {
                return Err(HistoryError::NotFound {
                    what: "baseline run".into(),
                    detail: format!("{run_id} ({} runs in {})", all_runs.len(), store.location()),
                });
            };
            if run.fingerprint_id() != fingerprint_id {
                report.run_level_reasons.push(format!(
                    "baseline run {run_id} was measured on another machine ({}); absolute figures are not compared across machines",
                    run.fingerprint
                        .differences(&current_record.fingerprint)
                        .join("; ")
                ));
            } else if run.mode != current_record.mode {
                report.run_level_reasons.push(format!(
                    "baseline run {run_id} is a {} run, the current run {}",
                    run.mode, current_record.mode
                ));
            }
            vec![run]
        }
        Baseline::Commit(commit) => {
            let matches = |run: &RunRecord| {
                commit.len() >= 7
                    && run
                        .commit
                        .as_deref()
                        .is_some_and(|c| c.starts_with(commit.as_str()))
            };
            let here: Vec<&RunRecord> = same_machine
                .iter()
                .copied()
                .filter(|r| matches(r))
                .collect();
            if here.is_empty() {
                let elsewhere = all_runs.iter().filter(|r| matches(r)).count();
                if elsewhere == 0 {
                    return Err(HistoryError::NotFound {
                        what: "baseline commit".into(),
                        detail: format!(
                            "{commit} (a prefix of at least 7 digits; {} has {} runs of {} commits)",
                            store.location(),
                            all_runs.len(),
                            all_runs
                                .iter()
                                .filter_map(|r| r.commit.as_deref())
                                .collect::<BTreeSet<_>>()
                                .len()
                        ),
                    });
                }
                report.run_level_reasons.push(format!(
                    "commit {commit} was measured only on other machines or in the other mode ({elsewhere} runs); absolute figures are not compared across machines"
                ));
            }
            here
        }
        Baseline::Previous => {
            let earlier: Vec<&RunRecord> = same_machine
                .iter()
                .copied()
                .filter(|run| run.timestamp_utc <= current_record.timestamp_utc)
                .collect();
            match earlier.last() {
                None => {
                    report.run_level_reasons.push(format!(
                        "no earlier {} run on this machine ({}) in {}",
                        current_record.mode,
                        current_record.fingerprint.describe(),
                        store.location()
                    ));
                    Vec::new()
                }
                Some(previous) if previous.dirty == Some(false) && previous.commit.is_some() => {
                    earlier
                        .iter()
                        .copied()
                        .filter(|run| run.commit == previous.commit && run.dirty == Some(false))
                        .collect()
                }
                Some(previous) => vec![*previous],
            }
        }
    };
    report.baseline_runs = baseline_runs.iter().map(|r| r.run_id.clone()).collect();
    if same_machine.len() < config.min_history_runs && report.run_level_reasons.is_empty() {
        report.run_level_reasons.push(format!(
            "{} earlier {} runs on this machine, need {} to know the run-to-run variance (record more runs: `cargo xtask validate` records each)",
            same_machine.len(),
            current_record.mode,
            config.min_history_runs
        ));
    }
    if let Some(max_load) = config.max_load_per_core {
        for run in std::iter::once(&current_record).chain(baseline_runs.iter().copied()) {
            if run.contended(max_load) {
                report.run_level_reasons.push(format!(
                    "run {} started under contention (load {:.2} on {} cores, above {max_load} per core)",
                    run.run_id,
                    run.load_average_1m.unwrap_or(f64::NAN),
                    run.fingerprint.cores.unwrap_or(0)
                ));
            }
        }
    }
    if !report.run_level_reasons.is_empty() {
        return Ok(report);
    }

    let mut claim_ids: BTreeSet<&str> = current_record
        .claims
        .iter()
        .map(|c| c.claim_id.as_str())
        .collect();
    for run in &baseline_runs {
        claim_ids.extend(run.claims.iter().map(|c| c.claim_id.as_str()));
    }
    // A run of some modules only (`validate --modules ...`) does not miss the others' claims.
    let requested_modules = &current.config.modules;
    let module_not_run = |_claim_id: &str, baseline_claims: &[&ClaimRecord]| {
        !requested_modules.is_empty()
            && baseline_claims
                .iter()
                .all(|c| !requested_modules.contains(&c.module))
    };
    let mut judgements = Vec::new();
    for claim_id in claim_ids {
        let current_claim = current_record.claim(claim_id);
        let baseline_claims: Vec<&ClaimRecord> = baseline_runs
            .iter()
            .filter_map(|r| r.claim(claim_id))
            .collect();
        let history: Vec<f64> = same_machine
            .iter()
            .filter_map(|run| run.claim(claim_id).and_then(|c| c.point))
            .filter(|v| v.is_finite())
            .collect();
        let judgement = match (current_claim, baseline_claims.is_empty()) {
            (None, _) if module_not_run(claim_id, &baseline_claims) => {
                let mut gate = missing_gate(claim_id, "", config);
                gate.status = ClaimStatus::NotGated(
                    "its module was not among the current run's modules".into(),
                );
                Judgement {
                    gate,
                    suspected: false,
                }
            }
            (None, _) => Judgement {
                gate: missing_gate(claim_id, "missing in the current run", config),
                suspected: false,
            },
            (Some(_), true) => Judgement {
                gate: missing_gate(claim_id, "missing in the baseline", config),
                suspected: false,
            },
            (Some(current_claim), false) => {
                let measured_nowhere = current_claim.point.is_none()
                    && baseline_claims.iter().all(|c| c.point.is_none());
                if measured_nowhere {
                    let mut gate = missing_gate(claim_id, "", config);
                    gate.status = ClaimStatus::NotGated(format!(
                        "measured on neither side ({})",
                        current_claim.verdict
                    ));
                    Judgement {
                        gate,
                        suspected: false,
                    }
                } else if current_claim.better == Better::Unspecified {
                    let mut gate = missing_gate(claim_id, "", config);
                    gate.status = ClaimStatus::NotGated("a measurement without a bar".into());
                    Judgement {
                        gate,
                        suspected: false,
                    }
                } else {
                    judge_claim(claim_id, current_claim, &baseline_claims, &history, config)
                }
            }
        };
        judgements.push((judgement, baseline_claims, history));
    }

    let suspected: Vec<String> = judgements
        .iter()
        .filter(|(j, _, _)| j.suspected)
        .map(|(j, _, _)| j.gate.claim_id.clone())
        .collect();
    let remeasured = if suspected.is_empty() {
        None
    } else {
        Some(
            remeasure(&suspected)
                .map(|run| RunRecord::from_run(&run))
                .map_err(|e| e.to_string()),
        )
    };
    for (judgement, baseline_claims, history) in judgements {
        let mut gate = judgement.gate;
        if judgement.suspected {
            gate.status = match &remeasured {
                Some(Ok(run)) if run.fingerprint_id() != fingerprint_id => {
                    ClaimStatus::Undecided("the re-measurement ran on another machine".into())
                }
                Some(Ok(run)) => match run.claim(&gate.claim_id) {
                    Some(again) => {
                        let second =
                            judge_claim(&gate.claim_id, again, &baseline_claims, &history, config);
                        gate.remeasured_change = second.gate.relative_change;
                        match second.gate.status {
                            _ if second.suspected => ClaimStatus::ConfirmedRegression,
                            ClaimStatus::Undecided(why) => {
                                ClaimStatus::Undecided(format!("re-measurement: {why}"))
                            }
                            _ => ClaimStatus::NotConfirmed,
                        }
                    }
                    None => ClaimStatus::Undecided("missing in the re-measurement".into()),
                },
                Some(Err(error)) => {
                    ClaimStatus::Undecided(format!("re-measurement failed: {error}"))
                }
                None => ClaimStatus::Undecided("not re-measured".into()),
            };
        }
        report.claims.push(gate);
    }
    Ok(report)
}
