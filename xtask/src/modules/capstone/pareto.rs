//! The Pareto front over (p90, bytes, fidelity) and the best operating point.

use super::quality::Quality;
use super::submissions::Row;
use super::{exact, Submission, CLAIM_IDS, CONFIDENCE, MODULE};
use anyhow::Result;
use perf_core::claim::{Claim, ClaimResult, Estimate};
use perf_core::stats::paired_proportion_difference;
use serde_json::json;

/// Whether `a` is at least as good as `b` on every objective and better on one (lower p90, fewer bytes,
/// higher fidelity).
pub(super) fn dominates(a: (f64, f64, f64), b: (f64, f64, f64)) -> bool {
    let no_worse = a.0 <= b.0 && a.1 <= b.1 && a.2 >= b.2;
    let better = a.0 < b.0 || a.1 < b.1 || a.2 > b.2;
    no_worse && better
}

/// The best operating point (index into `rows`), which rows are on the front, and each row's paired
/// retrieval difference to f32 (see [`pareto_claim`]).
pub(super) type OperatingPoints = (
    usize,
    Vec<bool>,
    Vec<perf_core::stats::PairedProportionDifference>,
);

pub(super) fn pareto_points(rows: &[Row], quality: &Quality) -> Vec<(f64, f64, f64)> {
    rows.iter()
        .zip(&quality.cosines)
        .map(|(row, cosines)| {
            let fidelity = cosines.iter().sum::<f64>() / cosines.len() as f64;
            (row.p90_ms, row.bytes as f64, fidelity)
        })
        .collect()
}

pub(super) fn best_operating_point(rows: &[Row], quality: &Quality) -> Result<OperatingPoints> {
    let points = pareto_points(rows, quality);
    let on_front: Vec<bool> = points
        .iter()
        .map(|&p| !points.iter().any(|&q| dominates(q, p)))
        .collect();
    let differences: Vec<_> = quality
        .correct
        .iter()
        .map(|correct| paired_proportion_difference(correct, &quality.correct[0], CONFIDENCE))
        .collect::<Result<_, _>>()?;
    let eligible: Vec<bool> = differences.iter().map(|d| 100.0 * d.mean >= -1.0).collect();
    let best = (0..rows.len())
        .filter(|&i| on_front[i] && eligible[i])
        .min_by(|&a, &b| points[a].0.total_cmp(&points[b].0))
        .unwrap_or(0);
    Ok((best, on_front, differences))
}

/// The front is over (p90, bytes, fidelity): fidelity (mean cosine to f32 over the same sentences) is the
/// quality axis because it is nearly deterministic, whereas retrieval accuracies of a few hundred entries
/// differ by noise and would let a lucky submission dominate. The task metric decides eligibility instead:
/// the best operating point is the lowest-p90 point of the front whose paired retrieval difference to f32 is
/// at least −1 point (point estimate); whether its compliance claim passes (the whole interval) is stated.
pub(super) fn pareto_claim(
    submissions: &[Submission],
    rows: &[Row],
    quality: &Quality,
) -> Result<ClaimResult> {
    let (id, statement) = CLAIM_IDS[5];
    let points = pareto_points(rows, quality);
    let (best, on_front, differences) = best_operating_point(rows, quality)?;
    let table_rows: Vec<Vec<String>> = submissions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let d = &differences[i];
            vec![
                s.name.to_owned(),
                format!("{:.2}", points[i].0),
                format!("{:.1}", points[i].1 / 1e6),
                format!("{:.5}", points[i].2),
                format!(
                    "{:+.1} [{:+.1}, {:+.1}]",
                    100.0 * d.mean,
                    100.0 * d.ci_lower,
                    100.0 * d.ci_upper
                ),
                if on_front[i] { "yes" } else { "no" }.to_owned(),
                format!("{:.2}×", points[0].0 / points[i].0),
                format!("{:.2}×", rows[i].throughput / rows[0].throughput),
            ]
        })
        .collect();
    let best_row = &rows[best];
    let estimate = match best_row.p90_ci_ms {
        Some((low, high)) => Estimate::new(best_row.p90_ms, low, high, "ms", CONFIDENCE)?,
        None => exact(best_row.p90_ms, "ms")?,
    };
    let best_difference = &differences[best];
    Ok(Claim::measured(id, MODULE, statement)
        .judge(estimate)
        .annotate(format!(
            "best operating point: {} (p90 {:.2} ms vs f32 {:.2} ms: {:.2}× lower; {:.1} MB vs {:.1} MB; Offline \
             {:.2}× f32; fidelity {:.4}; retrieval {:+.1} points vs f32 [{:+.1}, {:+.1}]); front: {}; against ONNX \
             Runtime's dynamic int8 of the same model: capstone.vs_onnxruntime_int8_*",
            submissions[best].name,
            best_row.p90_ms,
            rows[0].p90_ms,
            rows[0].p90_ms / best_row.p90_ms,
            best_row.bytes as f64 / 1e6,
            rows[0].bytes as f64 / 1e6,
            best_row.throughput / rows[0].throughput,
            points[best].2,
            100.0 * best_difference.mean,
            100.0 * best_difference.ci_lower,
            100.0 * best_difference.ci_upper,
            submissions
                .iter()
                .zip(&on_front)
                .filter(|(_, &front)| front)
                .map(|(s, _)| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_detail("best", submissions[best].name)
        .with_detail("p90_speedup_vs_f32", rows[0].p90_ms / best_row.p90_ms)
        .with_detail("offline_speedup_vs_f32", best_row.throughput / rows[0].throughput)
        .with_detail(
            "table",
            json!({
                "title": "Pareto front over (p90, bytes, fidelity); retrieval difference decides eligibility",
                "columns": ["submission", "p90 ms", "model MB", "fidelity (mean cosine to f32)",
                    "retrieval Δ vs f32, points [95% CI]", "on front", "p90 speedup vs f32",
                    "Offline speedup vs f32"],
                "rows": table_rows,
            }),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_dominance_is_strict_on_one_objective() {
        assert!(dominates((1.0, 1.0, 0.9), (2.0, 1.0, 0.9)));
        assert!(!dominates((1.0, 1.0, 0.9), (1.0, 1.0, 0.9)));
        assert!(!dominates((1.0, 2.0, 0.9), (2.0, 1.0, 0.9)));
    }
}
