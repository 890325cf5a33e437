//! Comparing two archived runs (`cargo xtask compare`): per claim, the change between two runs with its interval and a verdict
//! (improved / regressed / unchanged / inconclusive), noise floor and multiple comparisons included.

use crate::archive::{load, resolve_run};
use crate::error::SuiteError;
use perf_core::claim::{holm_adjust, Criterion, Direction};
use perf_core::results::ValidationRun;
use perf_core::stats::{standard_normal_cdf, two_sided_normal_critical_value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Changes smaller than this fraction of the earlier value are "unchanged" when the interval of
/// the change lies inside it: a shared machine moves by about this much from run to run.
const NOISE_FLOOR: f64 = 0.05;

/// Family-wise level of the regression calls.
const ALPHA: f64 = 0.05;

#[derive(Debug)]
struct ClaimChange {
    id: String,
    before: f64,
    after: f64,
    ratio: f64,
    ratio_ci: (f64, f64),
    p_value: f64,
    p_holm: f64,
    call: &'static str,
}

fn log_standard_error(point: f64, lower: f64, upper: f64, z: f64) -> Option<f64> {
    if point <= 0.0 || lower <= 0.0 || upper <= 0.0 || z <= 0.0 {
        return None;
    }
    Some((upper.ln() - lower.ln()) / (2.0 * z))
}

fn changes(a: &ValidationRun, b: &ValidationRun) -> Vec<ClaimChange> {
    let mut found = Vec::new();
    for claim_b in &b.claims {
        let Some(claim_a) = a.claims.iter().find(|c| c.id == claim_b.id) else {
            continue;
        };
        let (Some(ea), Some(eb)) = (&claim_a.estimate, &claim_b.estimate) else {
            continue;
        };
        // An interval at a confidence no normal quantile exists for (1.0: a deterministic count)
        // carries no standard error to compare with.
        let (Ok(z_a), Ok(z_b), Ok(z)) = (
            two_sided_normal_critical_value(ea.confidence()),
            two_sided_normal_critical_value(eb.confidence()),
            two_sided_normal_critical_value(0.95),
        ) else {
            continue;
        };
        // Log-scale comparison: positive quantities with (approximately) log-symmetric intervals.
        let (Some(se_a), Some(se_b)) = (
            log_standard_error(ea.point(), ea.ci_lower(), ea.ci_upper(), z_a),
            log_standard_error(eb.point(), eb.ci_lower(), eb.ci_upper(), z_b),
        ) else {
            continue;
        };
        let log_ratio = (eb.point() / ea.point()).ln();
        let se = se_a.hypot(se_b);
        // A zero-width interval (a single count, a deterministic size) has no within-run error:
        // there is nothing to test, so it is not reported as a change.
        if se <= 0.0 {
            continue;
        }
        let Ok(upper_tail) = standard_normal_cdf((log_ratio / se).abs()) else {
            continue;
        };
        let p_value = 2.0 * (1.0 - upper_tail);
        found.push(ClaimChange {
            id: claim_b.id.clone(),
            before: ea.point(),
            after: eb.point(),
            ratio: log_ratio.exp(),
            ratio_ci: ((log_ratio - z * se).exp(), (log_ratio + z * se).exp()),
            p_value,
            p_holm: 1.0,
            call: "",
        });
    }
    let adjusted = holm_adjust(&found.iter().map(|c| c.p_value).collect::<Vec<_>>());
    for (change, p_holm) in found.iter_mut().zip(adjusted) {
        change.p_holm = p_holm;
        let direction = b
            .claims
            .iter()
            .find(|c| c.id == change.id)
            .map(|c| match c.criterion {
                Criterion::Threshold { direction, .. } => Some(direction),
                _ => None,
            })
            .unwrap_or(None);
        let within_floor = 1.0 - NOISE_FLOOR <= change.ratio_ci.0
            && change.ratio_ci.1 <= 1.0 / (1.0 - NOISE_FLOOR);
        let beyond_floor =
            change.ratio < 1.0 - NOISE_FLOOR || change.ratio > 1.0 / (1.0 - NOISE_FLOOR);
        change.call = if p_holm <= ALPHA && beyond_floor {
            match (direction, change.ratio > 1.0) {
                (Some(Direction::AtLeast), true) | (Some(Direction::AtMost), false) => "improved",
                (Some(Direction::AtLeast), false) | (Some(Direction::AtMost), true) => "regressed",
                _ => "changed",
            }
        } else if within_floor {
            "unchanged"
        } else {
            "inconclusive"
        };
    }
    found
}

/// Compare two runs (default: the last two in `out`) and print the table; with
/// `fail_on_regression`, exit 1 when a claim regressed significantly. Within-run intervals do not
/// contain the run-to-run variance, so this is a diff, not a gate: the gate judges against history.
///
/// # Errors
/// When a run cannot be found or read.
pub fn run(
    run_a: Option<PathBuf>,
    run_b: Option<PathBuf>,
    out: &Path,
    fail_on_regression: bool,
) -> Result<ExitCode, SuiteError> {
    let (path_a, path_b) = match (run_a, run_b) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, resolve_run(None, out, 0)?),
        _ => (resolve_run(None, out, 1)?, resolve_run(None, out, 0)?),
    };
    let a = load(&path_a)?;
    let b = load(&path_b)?;
    println!("# Compare {} → {}\n", a.run_id, b.run_id);
    println!(
        "Noise floor ±{:.0}%; Holm across {} claims at α = {ALPHA}.\n",
        100.0 * NOISE_FLOOR,
        b.claims.len()
    );
    println!("| claim | before | after | ratio [95% CI] | p (Holm) | verdict |\n|---|---|---|---|---|---|");
    let found = changes(&a, &b);
    for change in &found {
        println!(
            "| `{}` | {:.4} | {:.4} | {:.3} [{:.3}, {:.3}] | {:.3} | {} |",
            change.id,
            change.before,
            change.after,
            change.ratio,
            change.ratio_ci.0,
            change.ratio_ci.1,
            change.p_holm,
            change.call
        );
    }
    for claim in &b.claims {
        if let Some(before) = a.claims.iter().find(|c| c.id == claim.id) {
            if before.verdict != claim.verdict {
                println!(
                    "\nverdict of `{}` changed: {} → {}",
                    claim.id, before.verdict, claim.verdict
                );
            }
        }
    }
    let regressed = found.iter().any(|change| change.call == "regressed");
    Ok(if fail_on_regression && regressed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
