//! The gate's statistics for one claim: the run-to-run standard deviation from the claim's history
//! (pooled between change points), and the judgement of the current estimate against the baseline's —
//! relative change, its interval and the one-sided p-value — before any re-measurement.

use super::{ClaimGate, ClaimStatus, GateConfig};
use crate::changepoint::{detect, ChangePointConfig};
use crate::record::{Better, ClaimRecord};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeSet;

/// How one claim compares with the baseline, before any re-measurement.
#[derive(Debug, Clone)]
pub(super) struct Judgement {
    pub(super) gate: ClaimGate,
    pub(super) suspected: bool,
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

pub(super) fn judge_claim(
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

pub(super) fn missing_gate(claim_id: &str, why: &str, config: &GateConfig) -> ClaimGate {
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
