//! A claim's history for people: per machine and mode, a table of its runs with change points marked, an
//! SVG trend plot, and a matrix of the latest value of every claim on every machine. Everything is
//! returned as a string; writing files is the caller's business.
//!
//! Across machines only ratios measured within one run (units `×`, `%`, `pt`, plain numbers, counts) are
//! shown side by side; absolute times and rates (`ns`, `s`, `GFLOP/s`, ...) are left out of the matrix,
//! because they measure the machine as much as the code.

use crate::changepoint::{detect, ChangePoint, ChangePointConfig};
use crate::error::{HistoryError, Result};
use crate::record::{Mode, RunRecord};
use crate::store::{RunFilter, Store};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// One run's value of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// The run.
    pub run_id: String,
    /// Short commit (`-dirty` when the tree was).
    pub commit: String,
    /// Start time.
    pub timestamp_utc: String,
    /// Point estimate.
    pub value: f64,
    /// Interval within the run.
    pub ci_lower: Option<f64>,
    /// Upper end.
    pub ci_upper: Option<f64>,
    /// Verdict in that run.
    pub verdict: String,
}

/// A change point placed in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedChange {
    /// The detector's finding (index into the series).
    pub change: ChangePoint,
    /// The last run before the change.
    pub last_run_before: String,
    /// The first run after it.
    pub first_run_after: String,
    /// `<last commit before>..<first commit after>`: the commits to bisect.
    pub commit_range: String,
}

/// A claim's history on one machine in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimTrend {
    /// Claim id.
    pub claim_id: String,
    /// Unit of the values.
    pub unit: String,
    /// The machine's fingerprint id.
    pub fingerprint_id: String,
    /// The machine, for people.
    pub machine: String,
    /// Quick or full.
    pub mode: Mode,
    /// Runs in time order.
    pub points: Vec<SeriesPoint>,
    /// Change points in the series.
    pub changes: Vec<ReportedChange>,
}

/// The history of a claim on every machine and mode that measured it, each with its change points.
///
/// # Errors
/// `NotFound` when no run holds the claim; `Store` when the store cannot be read.
pub fn claim_trends(
    store: &mut Store,
    claim_id: &str,
    config: &ChangePointConfig,
) -> Result<Vec<ClaimTrend>> {
    let runs = store.runs(&RunFilter::default())?;
    let mut groups: BTreeMap<(String, Mode), Vec<&RunRecord>> = BTreeMap::new();
    for run in &runs {
        if run.claim(claim_id).and_then(|c| c.point).is_some() {
            groups
                .entry((run.fingerprint_id(), run.mode))
                .or_default()
                .push(run);
        }
    }
    if groups.is_empty() {
        let known: BTreeSet<&str> = runs
            .iter()
            .flat_map(|r| r.claims.iter().map(|c| c.claim_id.as_str()))
            .filter(|id| id.split('.').next() == claim_id.split('.').next())
            .collect();
        return Err(HistoryError::NotFound {
            what: "claim".into(),
            detail: format!(
                "{claim_id} has no measured value in {} ({} runs){}",
                store.location(),
                runs.len(),
                if known.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; claims of that module: {}",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    )
                }
            ),
        });
    }
    let mut trends = Vec::new();
    for ((fingerprint_id, mode), group) in groups {
        let points: Vec<SeriesPoint> = group
            .iter()
            .filter_map(|run| {
                let claim = run.claim(claim_id)?;
                Some(SeriesPoint {
                    run_id: run.run_id.clone(),
                    commit: run.short_commit(),
                    timestamp_utc: run.timestamp_utc.clone(),
                    value: claim.point?,
                    ci_lower: claim.ci_lower,
                    ci_upper: claim.ci_upper,
                    verdict: claim.verdict.clone(),
                })
            })
            .collect();
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        let changes = detect(&values, config)?
            .into_iter()
            .map(|change| {
                let before = &points[change.index - 1];
                let after = &points[change.index];
                ReportedChange {
                    last_run_before: before.run_id.clone(),
                    first_run_after: after.run_id.clone(),
                    commit_range: format!("{}..{}", before.commit, after.commit),
                    change,
                }
            })
            .collect();
        let unit = group
            .last()
            .and_then(|run| run.claim(claim_id))
            .map_or(String::new(), |c| c.unit.clone());
        trends.push(ClaimTrend {
            claim_id: claim_id.to_string(),
            unit,
            machine: group[0].fingerprint.describe(),
            fingerprint_id,
            mode,
            points,
            changes,
        });
    }
    Ok(trends)
}

/// A Markdown table of the trend, a change point marked on the first run after it.
pub fn trend_table(trend: &ClaimTrend) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### `{}` on {} [{}], {} runs\n",
        trend.claim_id, trend.machine, trend.fingerprint_id, trend.mode
    );
    let _ = writeln!(
        out,
        "| run | commit | value ({}) | 95% CI in the run | verdict | change point |\n|---|---|---|---|---|---|",
        trend.unit
    );
    for (index, point) in trend.points.iter().enumerate() {
        let marker = trend
            .changes
            .iter()
            .find(|c| c.change.index == index)
            .map_or(String::new(), |c| {
                format!(
                    "◆ {:+.1}% [{:+.1}%, {:+.1}%], p = {:.1e}, commits {}",
                    100.0 * c.change.relative_change,
                    100.0 * c.change.ci_lower,
                    100.0 * c.change.ci_upper,
                    c.change.p_value,
                    c.commit_range
                )
            });
        let interval = match (point.ci_lower, point.ci_upper) {
            (Some(low), Some(high)) => format!("[{low:.4}, {high:.4}]"),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.4} | {interval} | {} | {marker} |",
            point.run_id, point.commit, point.value, point.verdict
        );
    }
    if trend.changes.is_empty() {
        let _ = writeln!(
            out,
            "\nNo change point (E-divisive, p ≤ 0.001 and ≥ the minimum magnitude)."
        );
    }
    out
}

/// An SVG plot of the trend: each run's value with its interval, the level of each segment between change
/// points, change points as vertical lines.
///
/// # Errors
/// `Plot` when the figure cannot be drawn (an empty series).
pub fn trend_svg(trend: &ClaimTrend) -> Result<String> {
    let plot_error = |reason: String| HistoryError::Plot {
        claim: trend.claim_id.clone(),
        reason,
    };
    if trend.points.is_empty() {
        return Err(plot_error("no points".into()));
    }
    let n = trend.points.len();
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for point in &trend.points {
        low = low.min(point.ci_lower.unwrap_or(point.value).min(point.value));
        high = high.max(point.ci_upper.unwrap_or(point.value).max(point.value));
    }
    let pad = ((high - low) * 0.1).max(high.abs() * 0.01).max(1e-12);
    let (low, high) = (low - pad, high + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(e.to_string()))?;
        let title = format!(
            "{} — {} [{}]",
            trend.claim_id, trend.mode, trend.fingerprint_id
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), low..high)
            .map_err(|e| plot_error(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("run (oldest first)")
            .y_desc(format!("estimate ({})", trend.unit))
            .draw()
            .map_err(|e| plot_error(e.to_string()))?;
        let blue = RGBColor(31, 119, 180);
        for (index, point) in trend.points.iter().enumerate() {
            if let (Some(a), Some(b)) = (point.ci_lower, point.ci_upper) {
                chart
                    .draw_series(LineSeries::new(
                        [(index as f64, a), (index as f64, b)],
                        blue.mix(0.5).stroke_width(2),
                    ))
                    .map_err(|e| plot_error(e.to_string()))?;
            }
        }
        chart
            .draw_series(
                trend
                    .points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new((i as f64, p.value), 3, blue.filled())),
            )
            .map_err(|e| plot_error(e.to_string()))?;
        // Segment levels and change points.
        let mut boundaries = vec![0];
        boundaries.extend(trend.changes.iter().map(|c| c.change.index));
        boundaries.push(n);
        let orange = RGBColor(255, 127, 14);
        for window in boundaries.windows(2) {
            let values: Vec<f64> = trend.points[window[0]..window[1]]
                .iter()
                .map(|p| p.value)
                .collect();
            let level = values.iter().sum::<f64>() / values.len().max(1) as f64;
            chart
                .draw_series(LineSeries::new(
                    [
                        (window[0] as f64 - 0.4, level),
                        (window[1] as f64 - 0.6, level),
                    ],
                    orange.stroke_width(2),
                ))
                .map_err(|e| plot_error(e.to_string()))?;
        }
        for change in &trend.changes {
            let x = change.change.index as f64 - 0.5;
            chart
                .draw_series(LineSeries::new([(x, low), (x, high)], RED.stroke_width(1)))
                .map_err(|e| plot_error(e.to_string()))?;
        }
        root.present().map_err(|e| plot_error(e.to_string()))?;
    }
    Ok(svg)
}

/// Trend figures for a run's report (`report.html`): for each claim of `run` with at least `min_points`
/// runs of history on its machine and mode (the run itself included when recorded), a caption and an SVG.
/// Claims with a change point come first, then by id; at most `limit` figures. Empty when the store holds
/// no history of that machine.
///
/// # Errors
/// `Store` when the store cannot be read.
pub fn report_figures(
    store: &mut Store,
    run: &perf_core::results::ValidationRun,
    min_points: usize,
    limit: usize,
) -> Result<Vec<(String, String)>> {
    let current = RunRecord::from_run(run);
    let fingerprint_id = current.fingerprint_id();
    let mut runs = store.runs(&RunFilter {
        fingerprint_id: Some(fingerprint_id.clone()),
        mode: Some(current.mode),
    })?;
    if !runs.iter().any(|r| r.run_id == current.run_id) {
        runs.push(current.clone());
    }
    let config = ChangePointConfig::default();
    let mut figures: Vec<(bool, String, String, String)> = Vec::new();
    for claim in &current.claims {
        if claim.point.is_none() {
            continue;
        }
        let points: Vec<SeriesPoint> = runs
            .iter()
            .filter_map(|r| {
                let c = r.claim(&claim.claim_id)?;
                Some(SeriesPoint {
                    run_id: r.run_id.clone(),
                    commit: r.short_commit(),
                    timestamp_utc: r.timestamp_utc.clone(),
                    value: c.point.filter(|v| v.is_finite())?,
                    ci_lower: c.ci_lower,
                    ci_upper: c.ci_upper,
                    verdict: c.verdict.clone(),
                })
            })
            .collect();
        if points.len() < min_points.max(2) {
            continue;
        }
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        let changes: Vec<ReportedChange> = detect(&values, &config)?
            .into_iter()
            .map(|change| ReportedChange {
                last_run_before: points[change.index - 1].run_id.clone(),
                first_run_after: points[change.index].run_id.clone(),
                commit_range: format!(
                    "{}..{}",
                    points[change.index - 1].commit,
                    points[change.index].commit
                ),
                change,
            })
            .collect();
        let trend = ClaimTrend {
            claim_id: claim.claim_id.clone(),
            unit: claim.unit.clone(),
            fingerprint_id: fingerprint_id.clone(),
            machine: current.fingerprint.describe(),
            mode: current.mode,
            points,
            changes,
        };
        let caption = if trend.changes.is_empty() {
            format!(
                "{}: {} runs on this machine, no change point",
                trend.claim_id,
                trend.points.len()
            )
        } else {
            let list: Vec<String> = trend
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{:+.1}% at {}",
                        100.0 * c.change.relative_change,
                        c.commit_range
                    )
                })
                .collect();
            format!(
                "{}: {} runs on this machine, change points {}",
                trend.claim_id,
                trend.points.len(),
                list.join(", ")
            )
        };
        let svg = trend_svg(&trend)?;
        figures.push((trend.changes.is_empty(), trend.claim_id, caption, svg));
    }
    figures.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(figures
        .into_iter()
        .take(limit)
        .map(|(_, _, caption, svg)| (caption, svg))
        .collect())
}

/// True for units whose values mean the same on any machine (ratios and counts measured within one run);
/// false for absolute times and rates.
pub fn comparable_across_machines(unit: &str) -> bool {
    let unit = unit.trim();
    let absolute = ["ns", "µs", "us", "ms", "s", "B/s", "GB/s", "GiB/s"];
    !(absolute.contains(&unit) || unit.contains("/s") || unit.ends_with("FLOP/s"))
}

/// A claim's latest (value, verdict) per (machine fingerprint, mode).
type LatestByMachine = BTreeMap<(String, Mode), (f64, String)>;

/// The latest value of every claim on every machine and mode, claims as rows (there are many) and
/// machines as columns. Claims in absolute units are left out and counted.
///
/// # Errors
/// `Store` when the store cannot be read.
pub fn matrix(store: &mut Store) -> Result<String> {
    let runs = store.runs(&RunFilter::default())?;
    let mut machines: BTreeMap<(String, Mode), String> = BTreeMap::new();
    let mut latest: BTreeMap<String, LatestByMachine> = BTreeMap::new();
    let mut units: BTreeMap<String, String> = BTreeMap::new();
    for run in &runs {
        let key = (run.fingerprint_id(), run.mode);
        machines
            .entry(key.clone())
            .or_insert_with(|| run.fingerprint.describe());
        for claim in &run.claims {
            let Some(point) = claim.point else { continue };
            units.insert(claim.claim_id.clone(), claim.unit.clone());
            // Runs come oldest first, so the last write is the latest value.
            latest
                .entry(claim.claim_id.clone())
                .or_default()
                .insert(key.clone(), (point, claim.verdict.clone()));
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "## Machines × claims (latest value of each)\n");
    for (index, ((fingerprint_id, mode), description)) in machines.iter().enumerate() {
        let _ = writeln!(
            out,
            "- M{}: {description} [{fingerprint_id}], {mode}",
            index + 1
        );
    }
    let columns: Vec<&(String, Mode)> = machines.keys().collect();
    let _ = write!(out, "\n| claim | unit |");
    for index in 0..columns.len() {
        let _ = write!(out, " M{} |", index + 1);
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &columns {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out);
    let mut left_out = Vec::new();
    for (claim_id, by_machine) in &latest {
        let unit = units.get(claim_id).map_or("", String::as_str);
        if !comparable_across_machines(unit) {
            left_out.push(claim_id.as_str());
            continue;
        }
        let _ = write!(out, "| `{claim_id}` | {unit} |");
        for column in &columns {
            match by_machine.get(*column) {
                Some((value, verdict)) => {
                    let _ = write!(out, " {value:.4} {verdict} |");
                }
                None => {
                    let _ = write!(out, " — |");
                }
            }
        }
        let _ = writeln!(out);
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            out,
            "\n{} claims in absolute units (times, rates) are left out: they are compared only on one machine (`xtask history <claim>`).",
            left_out.len()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{run, ScratchDir};
    use perf_core::claim::Direction::AtLeast;

    #[test]
    fn trends_tables_plots_and_the_matrix() {
        let dir = ScratchDir::new("trend");
        let mut store = Store::open_default(&dir.0).unwrap();
        for index in 0..24u32 {
            let value = if index < 12 { 2.0 } else { 2.3 } + 0.005 * f64::from(index % 3);
            let claims = [("m.speedup", value, AtLeast)];
            store
                .record(&run(
                    &format!("run-{index:02}"),
                    &format!("c{index:09}"),
                    index,
                    None,
                    &claims,
                ))
                .unwrap();
        }
        store
            .record(&run(
                "other-machine",
                "c999",
                99,
                Some("Intel Xeon"),
                &[("m.speedup", 1.5, AtLeast)],
            ))
            .unwrap();
        let trends = claim_trends(&mut store, "m.speedup", &ChangePointConfig::default()).unwrap();
        assert_eq!(trends.len(), 2, "one per machine");
        let main = trends.iter().find(|t| t.points.len() == 24).unwrap();
        assert_eq!(main.changes.len(), 1, "{:?}", main.changes);
        assert_eq!(main.changes[0].commit_range, "c000000011..c000000012");
        let table = trend_table(main);
        assert!(table.contains("◆ +15"), "{table}");
        let svg = trend_svg(main).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("m.speedup"),
            "{}",
            &svg[..100]
        );
        let matrix = matrix(&mut store).unwrap();
        assert!(matrix.contains("| `m.speedup` | × |"), "{matrix}");
        assert!(matrix.contains("M2"), "{matrix}");
        assert!(matches!(
            claim_trends(&mut store, "m.nothing", &ChangePointConfig::default()),
            Err(HistoryError::NotFound { .. })
        ));
        let latest = run(
            "run-23",
            "c000000023",
            23,
            None,
            &[("m.speedup", 2.3, AtLeast)],
        );
        let figures = report_figures(&mut store, &latest, 3, 10).unwrap();
        assert_eq!(figures.len(), 1);
        assert!(
            figures[0].0.contains("change points +15"),
            "{}",
            figures[0].0
        );
        assert!(figures[0].1.starts_with("<svg"));
        assert!(!comparable_across_machines("ns"));
        assert!(!comparable_across_machines("GFLOP/s"));
        assert!(comparable_across_machines("×"));
    }
}
