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

use crate::changepoint::{detect, ChangePointConfig};
use crate::error::{HistoryError, Result};
use crate::record::{Better, ClaimRecord, RunRecord};
use crate::store::{RunFilter, Store};
use perf_core::results::ValidationRun;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display, Write as _};

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

/// How one claim compares with the baseline, before any re-measurement.
#[derive(Debug, Clone)]
struct Judgement {
    gate: ClaimGate,
    suspected: bool,
}

/// The run-to-run standard deviation of a claim's values (time order) on the analysis scale: the mean
/// squared successive difference pooled within the segments between change points, with its degrees of
/// freedom.
fn run_to_run_sd(values: &[f64]) -> Option<(f64, usize)> {
    if values.len() < 2 {
        return None;
    }
    let changes = detect(values, &ChangePointConfig::default()).ok()?;
    let boundaries: BTreeSet<usize> = changes.iter().map(|c| c.index).collect();
    let (mut sum_squares, mut count) = (0.0, 0usize);
    for index in 1..values.len() {
        if boundaries.contains(&index) {
            continue;
        }
        sum_squares += (values[index] - values[index - 1]).powi(2);
        count += 1;
    }
    (count > 0).then(|| ((sum_squares / (2.0 * count as f64)).sqrt(), count))
}

fn judge_claim(
    claim_id: &str,
    current: &ClaimRecord,
    baseline: &[&ClaimRecord],
    history: &[f64],
    config: &GateConfig,
) -> Judgement {
    let threshold = config.threshold_for(claim_id);
    let mut gate = ClaimGate {
        claim_id: claim_id.to_string(),
        better: current.better,
        baseline: None,
        current: current.point,
        unit: current.unit.clone(),
        relative_change: None,
        ci_lower: None,
        ci_upper: None,
        p_value: None,
        run_to_run_sd: None,
        history_runs: history.len(),
        threshold,
        remeasured_change: None,
        status: ClaimStatus::Unchanged,
    };
    let undecided = |mut gate: ClaimGate, why: String| {
        gate.status = ClaimStatus::Undecided(why);
        Judgement {
            gate,
            suspected: false,
        }
    };
    let baseline_points: Vec<f64> = baseline.iter().filter_map(|c| c.point).collect();
    let Some(current_point) = current.point else {
        return undecided(
            gate,
            format!("not measured in the current run ({})", current.verdict),
        );
    };
    if baseline_points.is_empty() {
        return undecided(gate, "not measured in the baseline".into());
    }
    if current.verdict == "INCONCLUSIVE" {
        return undecided(gate, "inconclusive in the current run (contended)".into());
    }
    if history.len() < config.min_history_runs {
        return undecided(
            gate,
            format!(
                "{} earlier runs on this machine, need {} for the run-to-run variance",
                history.len(),
                config.min_history_runs
            ),
        );
    }
    let log_scale = current_point > 0.0
        && baseline_points.iter().all(|v| *v > 0.0)
        && history.iter().all(|v| *v > 0.0);
    let scale = |v: f64| if log_scale { v.ln() } else { v };
    let analysed_history: Vec<f64> = history.iter().map(|v| scale(*v)).collect();
    let Some((sd, degrees_of_freedom)) = run_to_run_sd(&analysed_history) else {
        return undecided(gate, "no run-to-run variance in the history".into());
    };
    let baseline_mean =
        baseline_points.iter().map(|v| scale(*v)).sum::<f64>() / baseline_points.len() as f64;
    let baseline_level = if log_scale {
        baseline_mean.exp()
    } else {
        baseline_mean
    };
    gate.baseline = Some(baseline_level);
    gate.run_to_run_sd = Some(sd);
    let difference = scale(current_point) - baseline_mean;
    // The within-run intervals count too when they are wider than the history's spread (a noisy run).
    // The store keeps an interval's ends, not its degrees of freedom, so its half-width is turned back
    // into a standard error with the normal quantile of the suite's two-sided 95% level (for a t-interval
    // with few degrees of freedom this overstates the error: the gate then errs towards "no change").
    // (0.95 is inside (0, 1), so the quantile always exists.)
    let z = perf_core::stats::two_sided_normal_critical_value(0.95).ok();
    let within = |c: &ClaimRecord| match (c.ci_lower, c.ci_upper, z) {
        (Some(low), Some(high), Some(z)) if !log_scale || low > 0.0 => {
            (scale(high) - scale(low)) / (2.0 * z)
        }
        _ => 0.0,
    };
    let within_current = within(current);
    let within_baseline =
        baseline.iter().map(|c| within(c)).sum::<f64>() / baseline.len().max(1) as f64;
    let from_history = sd * (1.0 + 1.0 / baseline_points.len() as f64).sqrt();
    let from_intervals = (within_current.powi(2) + within_baseline.powi(2)).sqrt();
    let standard_error = from_history.max(from_intervals);
    let relative = |d: f64| {
        if log_scale {
            d.exp_m1()
        } else if baseline_mean != 0.0 {
            d / baseline_mean.abs()
        } else {
            f64::INFINITY.copysign(d)
        }
    };
    let distribution = StudentsT::new(0.0, 1.0, degrees_of_freedom.max(1) as f64).ok();
    let t_quantile = distribution
        .as_ref()
        .map_or(f64::INFINITY, |d| d.inverse_cdf(0.975));
    let relative_change = relative(difference);
    gate.relative_change = Some(relative_change);
    gate.ci_lower = Some(relative(difference - t_quantile * standard_error));
    gate.ci_upper = Some(relative(difference + t_quantile * standard_error));
    let cdf = |t: f64| distribution.as_ref().map_or(0.5, |d| d.cdf(t));
    let t = if standard_error > 0.0 {
        difference / standard_error
    } else if difference == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(difference)
    };
    let (p_bad, p_good) = match current.better {
        Better::Higher => (cdf(t), 1.0 - cdf(t)),
        Better::Lower => (1.0 - cdf(t), cdf(t)),
        Better::Unchanged => {
            let two_sided = 2.0 * cdf(-t.abs());
            (two_sided, 1.0)
        }
        Better::Unspecified => {
            gate.status = ClaimStatus::NotGated("a measurement without a bar".into());
            return Judgement {
                gate,
                suspected: false,
            };
        }
    };
    gate.p_value = Some(p_bad);
    let large = relative_change.abs() >= threshold;
    if large && p_bad <= config.max_p_value {
        return Judgement {
            gate,
            suspected: true,
        };
    }
    if large && p_good <= config.max_p_value {
        gate.status = ClaimStatus::Improved;
    }
    Judgement {
        gate,
        suspected: false,
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

fn missing_gate(claim_id: &str, why: &str, config: &GateConfig) -> ClaimGate {
    ClaimGate {
        claim_id: claim_id.to_string(),
        better: Better::Unspecified,
        baseline: None,
        current: None,
        unit: String::new(),
        relative_change: None,
        ci_lower: None,
        ci_upper: None,
        p_value: None,
        run_to_run_sd: None,
        history_runs: 0,
        threshold: config.threshold_for(claim_id),
        remeasured_change: None,
        status: ClaimStatus::Undecided(why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{run, ScratchDir};
    use perf_core::alloc::Probe;
    use perf_core::claim::Direction::{AtLeast, AtMost};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    const CLAIMS: [(&str, f64, perf_core::claim::Direction); 2] =
        [("m.speedup", 2.0, AtLeast), ("m.latency", 100.0, AtMost)];

    /// A store holding `n` runs of commit `aaaaaaa…` with 1% noise, and the RNG for more.
    fn history(dir: &ScratchDir, n: u32) -> (Store, StdRng) {
        let mut store = Store::open_default(&dir.0).unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        for index in 0..n {
            let claims = noisy(&mut rng, 1.0, 1.0, 0.01);
            store
                .record(&run(
                    &format!("20261201T0000{index:02}Z-aaaaaaa"),
                    "aaaaaaa0000",
                    index,
                    None,
                    &claims,
                ))
                .unwrap();
        }
        (store, rng)
    }

    fn noisy(
        rng: &mut StdRng,
        speedup_factor: f64,
        latency_factor: f64,
        cv: f64,
    ) -> Vec<(&'static str, f64, perf_core::claim::Direction)> {
        let mut draw = || {
            let z: f64 = StandardNormal.sample(&mut *rng);
            1.0 + cv * z
        };
        vec![
            (
                CLAIMS[0].0,
                CLAIMS[0].1 * speedup_factor * draw(),
                CLAIMS[0].2,
            ),
            (
                CLAIMS[1].0,
                CLAIMS[1].1 * latency_factor * draw(),
                CLAIMS[1].2,
            ),
        ]
    }

    fn current(claims: &[(&str, f64, perf_core::claim::Direction)]) -> ValidationRun {
        run(
            "20261202T000000Z-bbbbbbb",
            "bbbbbbb0000",
            2000,
            None,
            claims,
        )
    }

    #[test]
    fn a_confirmed_regression_exits_1_and_names_the_claim_by_direction() {
        let dir = ScratchDir::new("gate-regression");
        let (mut store, mut rng) = history(&dir, 10);
        let config = GateConfig::default();
        // Speedup 10% lower (higher is better) and latency 10% higher (lower is better): both regress.
        let slower = current(&noisy(&mut rng, 0.9, 1.1, 0.0));
        let mut calls = Vec::new();
        let report = gate(
            &mut store,
            &slower,
            &Baseline::Previous,
            &config,
            |ids: &[String]| {
                calls.push(ids.to_vec());
                Ok::<_, String>(slower.clone())
            },
        )
        .unwrap();
        assert_eq!(report.exit_code(), 1, "{}", report.to_markdown());
        assert_eq!(report.confirmed_regressions(), ["m.latency", "m.speedup"]);
        assert_eq!(
            calls,
            [vec!["m.latency".to_string(), "m.speedup".to_string()]]
        );
        assert_eq!(
            report.baseline_runs.len(),
            10,
            "every run of the previous commit"
        );
        assert!(report.to_markdown().contains("CONFIRMED REGRESSION"));

        // The re-measurement does not confirm it: exit 0, reported as not confirmed.
        let fine = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
        let report = gate(
            &mut store,
            &slower,
            &Baseline::Commit("aaaaaaa".into()),
            &config,
            |_: &[String]| Ok::<_, String>(fine.clone()),
        )
        .unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
        assert!(report
            .claims
            .iter()
            .all(|c| c.status == ClaimStatus::NotConfirmed));

        // Warn-only reports it but passes; a failing re-measurement cannot decide.
        let warn = GateConfig {
            warn_only: true,
            ..GateConfig::default()
        };
        let report = gate(
            &mut store,
            &slower,
            &Baseline::Previous,
            &warn,
            |_: &[String]| Ok::<_, String>(slower.clone()),
        )
        .unwrap();
        assert_eq!(
            (report.exit_code(), report.confirmed_regressions().len()),
            (0, 2)
        );
        let report = gate(
            &mut store,
            &slower,
            &Baseline::Previous,
            &config,
            |_: &[String]| Err::<ValidationRun, _>("the kernel crashed"),
        )
        .unwrap();
        assert_eq!(report.exit_code(), 2);

        // The opposite moves are improvements, and a 20% threshold lets a 10% regression pass.
        let faster = current(&noisy(&mut rng, 1.1, 0.9, 0.0));
        let report = gate(
            &mut store,
            &faster,
            &Baseline::Previous,
            &config,
            |_: &[String]| Ok::<_, String>(faster.clone()),
        )
        .unwrap();
        assert_eq!(report.exit_code(), 0);
        assert!(report
            .claims
            .iter()
            .all(|c| c.status == ClaimStatus::Improved));
        let mut lenient = GateConfig::default();
        lenient.add_threshold("m.*=20").unwrap();
        assert!(lenient.add_threshold("m.speedup").is_err());
        assert!(lenient.add_threshold("m.speedup=-3").is_err());
        let report = gate(
            &mut store,
            &slower,
            &Baseline::Previous,
            &lenient,
            |_: &[String]| Ok::<_, String>(slower.clone()),
        )
        .unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
    }

    #[test]
    fn other_machines_missing_claims_contention_and_short_histories_cannot_decide() {
        let dir = ScratchDir::new("gate-undecided");
        let (mut store, mut rng) = history(&dir, 10);
        let config = GateConfig::default();
        let never = |_: &[String]| Err::<ValidationRun, _>("not expected");

        let mut elsewhere = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
        elsewhere.provenance.cpu_model =
            Probe::Available("Intel Xeon (family 6, model 143)".into());
        let report = gate(
            &mut store,
            &elsewhere,
            &Baseline::Commit("aaaaaaa".into()),
            &config,
            never,
        )
        .unwrap();
        assert_eq!(report.exit_code(), 2);
        assert!(
            report.run_level_reasons[0].contains("other machines"),
            "{report:?}"
        );
        let report = gate(&mut store, &elsewhere, &Baseline::Previous, &config, never).unwrap();
        assert_eq!(report.exit_code(), 2);

        let mut missing = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
        missing.claims.retain(|c| c.id == "m.speedup");
        let report = gate(&mut store, &missing, &Baseline::Previous, &config, never).unwrap();
        assert_eq!(report.exit_code(), 2);
        assert_eq!(report.undecided()[0].claim_id, "m.latency");

        // A run of other modules only does not miss these claims.
        let mut partial = missing.clone();
        partial.config.modules = vec!["other".into()];
        partial.claims.clear();
        let report = gate(&mut store, &partial, &Baseline::Previous, &config, never).unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
        assert!(report
            .claims
            .iter()
            .all(|c| matches!(c.status, ClaimStatus::NotGated(_))));

        let mut busy = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
        busy.provenance.load_average = Probe::Available([6.0, 6.0, 6.0]);
        let report = gate(&mut store, &busy, &Baseline::Previous, &config, never).unwrap();
        assert_eq!(report.exit_code(), 2);
        assert!(report.run_level_reasons[0].contains("contention"));

        assert!(matches!(
            gate(
                &mut store,
                &busy,
                &Baseline::Commit("fffffff".into()),
                &config,
                never
            ),
            Err(HistoryError::NotFound { .. })
        ));
        assert!(matches!(
            gate(
                &mut store,
                &busy,
                &Baseline::Run("20990101T000000Z-none".into()),
                &config,
                never
            ),
            Err(HistoryError::NotFound { .. })
        ));

        let short_dir = ScratchDir::new("gate-short");
        let (mut short, mut rng) = history(&short_dir, 3);
        let quiet = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
        let report = gate(&mut short, &quiet, &Baseline::Previous, &config, never).unwrap();
        assert_eq!(report.exit_code(), 2);
        assert!(report.run_level_reasons[0].contains("need 5"), "{report:?}");
        assert_eq!(Baseline::parse("previous"), Baseline::Previous);
        assert_eq!(
            Baseline::parse("4ca7e259c9"),
            Baseline::Commit("4ca7e259c9".into())
        );
        assert_eq!(
            Baseline::parse("20261123T172603Z-4ca7e259c9"),
            Baseline::Run("20261123T172603Z-4ca7e259c9".into())
        );
    }

    /// A/A: unchanged code with 2% run-to-run noise, a history of 12 runs, the gate with its
    /// re-measurement: false confirmed regressions per claim must stay at or below 1%.
    #[test]
    fn unchanged_code_rarely_alerts() {
        let n_trials: usize = std::env::var("TORCHPERF_HISTORY_SIMULATION_TRIALS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(40);
        let dir = ScratchDir::new("gate-aa");
        let config = GateConfig::default();
        let mut rng = StdRng::seed_from_u64(7);
        let (mut suspected, mut confirmed, mut judged) = (0, 0, 0);
        for trial in 0..n_trials {
            let path = dir.0.join(format!("trial-{trial}.sqlite"));
            let mut store = Store::open_sqlite(&path).unwrap();
            for index in 0..12 {
                let claims = noisy(&mut rng, 1.0, 1.0, 0.02);
                store
                    .record(&run(
                        &format!("20261201T0000{index:02}Z-aaaaaaa"),
                        &format!("a{index:09}"),
                        index,
                        None,
                        &claims,
                    ))
                    .unwrap();
            }
            let now = current(&noisy(&mut rng, 1.0, 1.0, 0.02));
            let again = current(&noisy(&mut rng, 1.0, 1.0, 0.02));
            let report = gate(
                &mut store,
                &now,
                &Baseline::Previous,
                &config,
                |ids: &[String]| {
                    suspected += ids.len();
                    Ok::<_, String>(again.clone())
                },
            )
            .unwrap();
            assert_ne!(report.exit_code(), 2, "{}", report.to_markdown());
            confirmed += report.confirmed_regressions().len();
            judged += report.claims.len();
            drop(store);
            let _ = std::fs::remove_file(&path);
        }
        let rate = confirmed as f64 / judged as f64;
        eprintln!(
            "A/A gate: {suspected} suspected and {confirmed} confirmed regressions in {judged} claim judgements ({n_trials} trials)"
        );
        assert!(rate <= 0.01, "false confirmed regression rate {rate}");
    }
}
