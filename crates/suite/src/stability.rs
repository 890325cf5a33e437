//! Verdict stability (`cargo xtask stability`): do consecutive runs give the same verdict for every claim? A change
//! through INCONCLUSIVE (a run whose machine was contended, named in that run's reason) is listed apart: it is the
//! machine's doing, not the code's. Any other change, and above all PASS ↔ FAIL, is instability.

use crate::archive::{list_runs, load};
use crate::error::SuiteError;
use crate::report::format_estimate;

type Result<T> = std::result::Result<T, SuiteError>;
use perf_core::claim::{format_value, ClaimResult, Criterion, Direction, Estimate, Verdict};
use perf_core::results::ValidationRun;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One claim's verdicts across the runs (`None` where a run lacks the claim), with the estimate behind each verdict
/// and the bar it was judged against, so that a reader sees whether a change is an interval moving across its bar
/// or a real change of the measured quantity.
#[derive(Debug)]
pub struct ClaimVerdicts {
    /// The claim's id.
    pub id: String,
    /// Its verdict in each run, oldest first.
    pub verdicts: Vec<Option<Verdict>>,
    /// The estimate behind each verdict.
    pub estimates: Vec<Option<Estimate>>,
    /// The bar (threshold, or the equivalence margin) of the newest run's claim.
    pub bar: Option<String>,
    /// When one of the runs gave INCONCLUSIVE (the machine was contended): that run's reason.
    pub explained: Option<String>,
}

fn bar_of(claim: &ClaimResult) -> Option<String> {
    let unit = claim.estimate.as_ref().map_or("", |e| e.unit());
    match &claim.criterion {
        Criterion::Threshold {
            threshold,
            direction,
        } => Some(format!(
            "{} {}",
            match direction {
                Direction::AtLeast => "≥",
                Direction::AtMost => "≤",
            },
            format_value(*threshold, unit)
        )),
        Criterion::Equivalence { lower, upper } => Some(format!(
            "within [{}, {}]",
            format_value(*lower, unit),
            format_value(*upper, unit)
        )),
        _ => None,
    }
}

/// The claims (of the newest run) whose verdict is not the same in every run that has them; `runs` holds each
/// run's claims, oldest first.
pub fn unstable(runs: &[&[ClaimResult]]) -> Vec<ClaimVerdicts> {
    let Some(newest) = runs.last() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for claim in newest.iter() {
        let matching: Vec<Option<&ClaimResult>> = runs
            .iter()
            .map(|claims| claims.iter().find(|c| c.id == claim.id))
            .collect();
        let verdicts: Vec<Option<Verdict>> =
            matching.iter().map(|c| c.map(|c| c.verdict)).collect();
        let present: Vec<Verdict> = verdicts.iter().flatten().copied().collect();
        if present.windows(2).any(|pair| pair[0] != pair[1]) {
            let explained = matching
                .iter()
                .flatten()
                .find(|c| c.verdict == Verdict::Inconclusive)
                .map(|c| c.reason.clone());
            found.push(ClaimVerdicts {
                id: claim.id.clone(),
                verdicts,
                estimates: matching
                    .iter()
                    .map(|c| c.and_then(|c| c.estimate.clone()))
                    .collect(),
                bar: bar_of(claim),
                explained,
            });
        }
    }
    found
}

/// The `count` newest runs in `out` made in the same mode (quick or full) as the newest one, oldest first.
fn last_runs_of_same_mode(out: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let mut runs = list_runs(out)?;
    let Some(newest) = runs.pop() else {
        return Err(SuiteError::Usage(format!(
            "{} holds no run (run the suite first)",
            out.display()
        )));
    };
    let mode = load(&newest)?.config.quick;
    let mut chosen = vec![newest];
    while chosen.len() < count {
        let Some(path) = runs.pop() else { break };
        if load(&path).is_ok_and(|run| run.config.quick == mode) {
            chosen.push(path);
        }
    }
    chosen.reverse();
    Ok(chosen)
}

pub fn run(explicit: Vec<PathBuf>, last: usize, out: &Path) -> Result<ExitCode> {
    let paths = if explicit.is_empty() {
        last_runs_of_same_mode(out, last)?
    } else {
        explicit
    };
    if paths.len() < 2 {
        return Err(SuiteError::Usage(format!(
            "stability needs at least two runs, found {} (run the suite again in the same mode)",
            paths.len()
        )));
    }
    let runs: Vec<ValidationRun> = paths.iter().map(|path| load(path)).collect::<Result<_>>()?;
    println!("# Verdict stability over {} runs\n", runs.len());
    for run in &runs {
        println!(
            "- {} ({}, {} claims)",
            run.run_id,
            if run.config.quick { "quick" } else { "full" },
            run.claims.len()
        );
    }
    let claims: Vec<&[ClaimResult]> = runs.iter().map(|run| run.claims.as_slice()).collect();
    let found = unstable(&claims);
    let (explained, unexpected): (Vec<&ClaimVerdicts>, Vec<&ClaimVerdicts>) =
        found.iter().partition(|claim| claim.explained.is_some());
    let flips = unexpected
        .iter()
        .filter(|claim| {
            claim.verdicts.contains(&Some(Verdict::Pass))
                && claim.verdicts.contains(&Some(Verdict::Fail))
        })
        .count();
    let total = runs.last().map_or(0, |run| run.claims.len());
    println!(
        "\n{} of {total} claims changed verdict: {} unexpectedly ({flips} between PASS and FAIL), {} through INCONCLUSIVE (a contended machine, named in the reason).\n",
        found.len(),
        unexpected.len(),
        explained.len()
    );
    if !found.is_empty() {
        println!(
            "| claim | verdicts | estimates | bar | INCONCLUSIVE because |\n|---|---|---|---|---|"
        );
        for claim in unexpected.iter().chain(explained.iter()) {
            let verdicts: Vec<String> = claim
                .verdicts
                .iter()
                .map(|verdict| verdict.map_or("—".to_owned(), |v| v.to_string()))
                .collect();
            let estimates: Vec<String> = claim
                .estimates
                .iter()
                .map(|estimate| estimate.as_ref().map_or("—".to_owned(), format_estimate))
                .collect();
            println!(
                "| `{}` | {} | {} | {} | {} |",
                claim.id,
                verdicts.join(" → "),
                estimates.join(" → "),
                claim.bar.as_deref().unwrap_or("—"),
                claim.explained.as_deref().unwrap_or("—")
            );
        }
    }
    Ok(if unexpected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::{format_estimate, unstable};
    use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};

    fn run_with(points: &[(f64, bool)]) -> Vec<ClaimResult> {
        points
            .iter()
            .enumerate()
            .map(|(index, &(point, contended))| {
                let claim = Claim::threshold(
                    &format!("m.claim_{index}"),
                    "m",
                    "x ≥ 1",
                    1.0,
                    Direction::AtLeast,
                )
                .judge(Estimate::new(point, point - 0.1, point + 0.1, "", 0.95).unwrap());
                if contended {
                    claim.weaken(Verdict::Inconclusive, "another process held 48% of a core")
                } else {
                    claim
                }
            })
            .collect()
    }

    #[test]
    fn flips_are_found_and_contended_ones_are_labelled() {
        // claim_0 stays PASS, claim_1 flips PASS → PARTIAL, claim_2 goes PASS → INCONCLUSIVE (contended).
        let runs = [
            run_with(&[(2.0, false), (1.2, false), (1.2, false)]),
            run_with(&[(2.0, false), (1.05, false), (1.05, true)]),
        ];
        let claims: Vec<&[ClaimResult]> = runs.iter().map(Vec::as_slice).collect();
        let found = unstable(&claims);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].id, "m.claim_1");
        assert!(found[0].explained.is_none());
        assert_eq!(found[0].bar.as_deref(), Some("≥ 1.000"));
        let shown: Vec<String> = found[0]
            .estimates
            .iter()
            .map(|e| format_estimate(e.as_ref().unwrap()))
            .collect();
        assert_eq!(shown, ["1.200 [1.100, 1.300]", "1.050 [0.9500, 1.150]"]);
        assert_eq!(found[1].id, "m.claim_2");
        assert!(found[1]
            .explained
            .as_deref()
            .unwrap()
            .contains("48% of a core"));
    }
}
