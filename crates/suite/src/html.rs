//! `report.html`: the Markdown report's content plus SVG figures drawn with plotters — every claim
//! against its bar (a forest plot), GFLOP/s against the measured peak, raw latency samples of the
//! comparisons, and any figure a module describes in a claim's `details.plot`.
//!
//! A module adds a figure by putting, in one claim's details, `"plot": {"title", "x_label",
//! "y_label", "log_x", "log_y", "series": [{"name", "style", "points": [[x, y], ...]}]}`, where
//! `style` is `"line"` (the default: a line through the points, which are marked) or `"points"` (a
//! scatter, for sets without an order such as a Pareto frontier's members and the dominated rest), and
//! an optional `"marker"` is `"circle"` (the default), `"triangle"` or `"cross"` (to set one kind of
//! point apart, such as peers on a Pareto plot).
//!
//! Figures derived here from the shape of claims' details, never from their ids: a roofline for every
//! claim carrying `peak_gflops_per_core`, `bandwidth_gbytes_per_second` and `points` (each layer's
//! achieved GFLOP/s at its arithmetic intensity under the measured ceilings), quantization error for
//! the claims carrying `sqnr_db` (SQNR per scheme and distribution), and raw samples with their
//! latency distributions (empirical CDFs) for comparisons that keep `baseline_ns` / `candidate_ns` and
//! ask for the figure with `"show_samples": true`. Tables (`details.table`) are rendered as HTML
//! tables. All text a suite supplies is escaped (plotters escapes the text inside the SVG).

use perf_core::claim::{ClaimResult, Criterion, Direction, Verdict};
use perf_core::results::ValidationRun;
use plotters::prelude::*;
use serde_json::Value;
use std::fmt::Write;

const WIDTH: u32 = 860;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn verdict_color(verdict: Verdict) -> RGBColor {
    match verdict {
        Verdict::Pass => RGBColor(44, 160, 44),
        Verdict::Partial => RGBColor(230, 160, 0),
        Verdict::Fail => RGBColor(214, 39, 40),
        Verdict::Error => RGBColor(120, 120, 120),
        Verdict::Inconclusive => RGBColor(90, 120, 200),
        Verdict::Skipped => RGBColor(190, 190, 190),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Each claim's interval divided by its bar, oriented so that right of 1 is good.
fn forest_rows(run: &ValidationRun) -> Vec<(String, Verdict, f64, f64, f64)> {
    let mut rows = Vec::new();
    for claim in &run.claims {
        let Some(estimate) = &claim.estimate else {
            continue;
        };
        let normalized = match claim.criterion {
            Criterion::Threshold {
                threshold,
                direction,
            } if threshold > 0.0 && estimate.ci_lower() > 0.0 => match direction {
                Direction::AtLeast => (
                    estimate.point() / threshold,
                    estimate.ci_lower() / threshold,
                    estimate.ci_upper() / threshold,
                ),
                Direction::AtMost => (
                    threshold / estimate.point(),
                    threshold / estimate.ci_upper(),
                    threshold / estimate.ci_lower(),
                ),
            },
            _ => continue,
        };
        rows.push((
            claim.id.clone(),
            claim.verdict,
            normalized.0,
            normalized.1,
            normalized.2,
        ));
    }
    rows
}

fn forest_plot(run: &ValidationRun) -> Option<String> {
    let rows = forest_rows(run);
    if rows.is_empty() {
        return None;
    }
    let height = 60 + 22 * rows.len() as u32;
    let (mut low, mut high) = (0.5f64, 2.0f64);
    for row in &rows {
        low = low.min(row.3);
        high = high.max(row.4);
    }
    let (low, high) = ((low * 0.8).max(1e-3), (high * 1.25).min(1e4));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Every threshold claim against its bar (right of 1 = clears it)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(280)
            .build_cartesian_2d((low..high).log_scale(), 0..rows.len())
            .ok()?;
        let labels: Vec<String> = rows.iter().map(|row| row.0.clone()).collect();
        chart
            .configure_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|index| labels.get(*index).cloned().unwrap_or_default())
            .x_desc("estimate / bar (log scale), 95% interval")
            .draw()
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                [(1.0, 0), (1.0, rows.len())],
                BLACK.stroke_width(1),
            ))
            .ok()?;
        for (index, row) in rows.iter().enumerate() {
            let color = verdict_color(row.1);
            chart
                .draw_series(LineSeries::new(
                    [(row.3, index), (row.4, index)],
                    color.stroke_width(3),
                ))
                .ok()?;
            chart
                .draw_series([Circle::new((row.2, index), 4, color.filled())])
                .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

/// A plot description from a claim's details (see the module docs).
fn described_plot(description: &Value) -> Option<String> {
    let title = description.get("title")?.as_str()?.to_string();
    let x_label = description
        .get("x_label")
        .and_then(Value::as_str)
        .unwrap_or("x")
        .to_string();
    let y_label = description
        .get("y_label")
        .and_then(Value::as_str)
        .unwrap_or("y")
        .to_string();
    let log_x = description
        .get("log_x")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let log_y = description
        .get("log_y")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut series: Vec<Series> = Vec::new();
    for entry in description.get("series")?.as_array()? {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let style = match entry.get("style").and_then(Value::as_str) {
            Some("points") => Style::Points,
            _ => Style::Line,
        };
        let marker = match entry.get("marker").and_then(Value::as_str) {
            Some("triangle") => Marker::Triangle,
            Some("cross") => Marker::Cross,
            _ => Marker::Circle,
        };
        let points: Vec<(f64, f64)> = entry
            .get("points")?
            .as_array()?
            .iter()
            .filter_map(|point| Some((point.get(0)?.as_f64()?, point.get(1)?.as_f64()?)))
            .filter(|(x, y)| {
                x.is_finite() && y.is_finite() && (!log_x || *x > 0.0) && (!log_y || *y > 0.0)
            })
            .collect();
        if !points.is_empty() {
            series.push(Series {
                name,
                style,
                marker,
                points,
            });
        }
    }
    chart(&title, &x_label, &y_label, log_x, log_y, &series)
}

/// An axis tick label with at most four significant digits (log axes otherwise print binary
/// fractions such as 0.30000000000000004).
fn tick(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor();
    if !(-4.0..6.0).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = (3.0 - magnitude).clamp(0.0, 8.0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A line through the points, each point marked.
    Line,
    /// Marked points only.
    Points,
}

/// The shape that marks a series' points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Cross,
}

/// One named series of a figure.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    style: Style,
    marker: Marker,
    points: Vec<(f64, f64)>,
}

/// Line series from `(name, points)` pairs.
fn lines(series: Vec<(String, Vec<(f64, f64)>)>) -> Vec<Series> {
    series
        .into_iter()
        .map(|(name, points)| Series {
            name,
            style: Style::Line,
            marker: Marker::Circle,
            points,
        })
        .collect()
}

fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> Option<String> {
    chart(
        title,
        x_label,
        y_label,
        log_x,
        log_y,
        &lines(series.to_vec()),
    )
}

fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    log_y: bool,
    series: &[Series],
) -> Option<String> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|series| series.points.iter().copied())
        .collect();
    if all.is_empty() {
        return None;
    }
    let fold = |f: fn(f64, f64) -> f64, start: f64, pick: fn(&(f64, f64)) -> f64| {
        all.iter().map(pick).fold(start, f)
    };
    let (mut x0, mut x1) = (
        fold(f64::min, f64::INFINITY, |p| p.0),
        fold(f64::max, f64::NEG_INFINITY, |p| p.0),
    );
    let (mut y0, mut y1) = (
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
    );
    let pad = |lo: &mut f64, hi: &mut f64, log: bool| {
        if log {
            *lo *= 0.8;
            *hi *= 1.25;
        } else {
            let span = (*hi - *lo).abs().max(hi.abs() * 0.1).max(1e-12);
            *lo -= 0.05 * span;
            *hi += 0.05 * span;
        }
    };
    pad(&mut x0, &mut x1, log_x);
    pad(&mut y0, &mut y1, log_y);
    if !log_y && y0 > 0.0 && y0 < 0.3 * y1 {
        y0 = 0.0;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .x_label_formatter(&|value| tick(*value))
                    .y_label_formatter(&|value| tick(*value))
                    .max_light_lines(3)
                    .draw()
                    .ok()?;
                for (index, entry) in series.iter().enumerate() {
                    let color = PALETTE[index % PALETTE.len()];
                    let size = match entry.style {
                        Style::Line => {
                            chart
                                .draw_series(LineSeries::new(
                                    entry.points.iter().copied(),
                                    color.stroke_width(2),
                                ))
                                .ok()?
                                .label(entry.name.clone())
                                .legend(move |(x, y)| {
                                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                                });
                            3
                        }
                        Style::Points => 5,
                    };
                    // A scatter's legend shows its marker; a line's shows the line (drawn above).
                    let label = (entry.style == Style::Points).then(|| entry.name.clone());
                    let points = entry.points.iter().copied();
                    match entry.marker {
                        Marker::Circle => {
                            let drawn = chart
                                .draw_series(points.map(|p| Circle::new(p, size, color.filled())))
                                .ok()?;
                            if let Some(label) = label {
                                drawn.label(label).legend(move |(x, y)| {
                                    Circle::new((x + 9, y), 5, color.filled())
                                });
                            }
                        }
                        Marker::Triangle => {
                            let drawn = chart
                                .draw_series(
                                    points
                                        .map(|p| TriangleMarker::new(p, size + 2, color.filled())),
                                )
                                .ok()?;
                            if let Some(label) = label {
                                drawn.label(label).legend(move |(x, y)| {
                                    TriangleMarker::new((x + 9, y), 7, color.filled())
                                });
                            }
                        }
                        Marker::Cross => {
                            let drawn = chart
                                .draw_series(
                                    points.map(|p| Cross::new(p, size + 1, color.stroke_width(2))),
                                )
                                .ok()?;
                            if let Some(label) = label {
                                drawn.label(label).legend(move |(x, y)| {
                                    Cross::new((x + 9, y), 6, color.stroke_width(2))
                                });
                            }
                        }
                    }
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .ok()?;
            }};
        }
        match (log_x, log_y) {
            (true, true) => draw!(builder
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .ok()?),
            (true, false) => draw!(builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .ok()?),
            (false, true) => draw!(builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .ok()?),
            (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1).ok()?),
        }
        root.present().ok()?;
    }
    Some(svg)
}

fn samples_plot(claim: &ClaimResult) -> Option<String> {
    let values = |key: &str| -> Option<Vec<(f64, f64)>> {
        Some(
            claim
                .details
                .get(key)?
                .as_array()?
                .iter()
                .enumerate()
                .filter_map(|(index, v)| Some((index as f64, v.as_f64()? / 1e3)))
                .collect(),
        )
    };
    let baseline = values("baseline_ns")?;
    let candidate = values("candidate_ns")?;
    let kernel = |key: &str| {
        claim
            .details
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = |side: &str, key: &str| {
        let kernel = kernel(key);
        if kernel.is_empty() {
            side.to_string()
        } else {
            format!("{side}: {kernel}")
        }
    };
    line_chart(
        &format!(
            "{} — raw samples in measurement order (interleaved)",
            claim.id
        ),
        "pair index",
        "µs per iteration",
        false,
        false,
        &[
            (name("baseline", "baseline_kernel"), baseline),
            (name("candidate", "candidate_kernel"), candidate),
        ],
    )
}

/// The roofline of a claim that carries one: the measured ceilings (bandwidth × intensity,
/// capped at the measured FMA peak) and each layer's achieved GFLOP/s at its intensity.
fn roofline_plot(claim: &ClaimResult) -> Option<String> {
    let details = &claim.details;
    let peak = details.get("peak_gflops_per_core")?.as_f64()?;
    let bandwidth = details.get("bandwidth_gbytes_per_second")?.as_f64()?;
    let mut series = Vec::new();
    let mut intensities = Vec::new();
    for group in details.get("points")?.as_array()? {
        let name = group.get(0)?.as_str()?.to_string();
        let points: Vec<(f64, f64)> = group
            .get(1)?
            .as_array()?
            .iter()
            .filter_map(|layer| {
                Some((
                    layer.get("intensity")?.as_f64()?,
                    layer.get("achieved_gflops")?.as_f64()?,
                ))
            })
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
            .collect();
        intensities.extend(points.iter().map(|p| p.0));
        if !points.is_empty() {
            series.push(Series {
                name: format!("{name}: layers, achieved (median)"),
                style: Style::Points,
                marker: Marker::Circle,
                points,
            });
        }
    }
    if series.is_empty() || !(peak > 0.0 && bandwidth > 0.0) {
        return None;
    }
    let ridge = peak / bandwidth;
    let low = intensities.iter().copied().fold(ridge, f64::min) / 2.0;
    let high = intensities.iter().copied().fold(ridge, f64::max) * 2.0;
    series.insert(
        0,
        Series {
            name: format!(
                "roof: {bandwidth:.1} GB/s × intensity, capped at the measured peak {peak:.0} GFLOP/s"
            ),
            style: Style::Line,
            marker: Marker::Circle,
            points: vec![(low, bandwidth * low), (ridge, peak), (high, peak)],
        },
    );
    chart(
        &format!("Roofline — {}", claim.id),
        "arithmetic intensity (FLOP / byte)",
        "GFLOP/s",
        true,
        true,
        &series,
    )
}

/// SQNR of each quantization scheme on each distribution whose claim carries `sqnr_db` (x =
/// distribution index, named in the axis label by the claim's id without its module prefix).
fn quantization_error_plot(run: &ValidationRun) -> Option<String> {
    let claims: Vec<&ClaimResult> = run
        .claims
        .iter()
        .filter(|claim| claim.details.contains_key("sqnr_db"))
        .collect();
    if claims.is_empty() {
        return None;
    }
    let mut series: Vec<Series> = Vec::new();
    let mut add = |name: String, x: f64, y: f64| {
        if !y.is_finite() {
            return;
        }
        match series.iter_mut().find(|s| s.name == name) {
            Some(entry) => entry.points.push((x, y)),
            None => series.push(Series {
                name,
                style: Style::Line,
                marker: Marker::Circle,
                points: vec![(x, y)],
            }),
        }
    };
    let mut names = Vec::new();
    for (index, claim) in claims.iter().enumerate() {
        let x = (index + 1) as f64;
        names.push(format!(
            "{} = {}",
            index + 1,
            claim
                .id
                .split_once('.')
                .map_or(claim.id.as_str(), |(_, rest)| rest)
        ));
        let details = &claim.details;
        if let Some(db) = details.get("sqnr_db").and_then(Value::as_f64) {
            add("int8 affine, min–max".into(), x, db);
        }
        for entry in details
            .get("int8_symmetric_observers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(observer), Some(db)) = (
                entry.get("observer").and_then(Value::as_str),
                entry.get("sqnr_db").and_then(Value::as_f64),
            ) {
                add(format!("int8 symmetric, {observer}"), x, db);
            }
        }
        for entry in details
            .get("half_precisions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(precision), Some(db)) = (
                entry.get("precision").and_then(Value::as_str),
                entry.get("sqnr_db").and_then(Value::as_f64),
            ) {
                add(precision.to_lowercase(), x, db);
            }
        }
    }
    chart(
        "Quantization round-trip error: SQNR (dB, higher is better)",
        &format!("distribution ({})", names.join(", ")),
        "SQNR (dB)",
        false,
        false,
        &series,
    )
}

/// Empirical CDF of both sides of a comparison's raw samples: the latency distributions.
fn latency_distribution_plot(claim: &ClaimResult) -> Option<String> {
    let ecdf = |key: &str| -> Option<Vec<(f64, f64)>> {
        let mut values: Vec<f64> = claim
            .details
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|v| v / 1e3)
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        Some(
            values
                .iter()
                .enumerate()
                .map(|(index, &v)| (v, (index + 1) as f64 / n))
                .collect(),
        )
    };
    let label = |side: &str, key: &str| match claim.details.get(key).and_then(Value::as_str) {
        Some(kernel) if !kernel.is_empty() => format!("{side}: {kernel}"),
        _ => side.to_string(),
    };
    line_chart(
        &format!("{} — latency distribution (empirical CDF)", claim.id),
        "µs per iteration",
        "fraction of samples ≤ x",
        false,
        false,
        &[
            (label("baseline", "baseline_kernel"), ecdf("baseline_ns")?),
            (
                label("candidate", "candidate_kernel"),
                ecdf("candidate_ns")?,
            ),
        ],
    )
}

/// The HTML report: the Markdown text (as preformatted text) and the figures.
pub fn render_html(run: &ValidationRun, markdown: &str) -> String {
    render_html_with(run, markdown, &[])
}

/// The HTML report with extra figures made elsewhere (the history's trend plots): `(caption, svg)`.
pub fn render_html_with(
    run: &ValidationRun,
    markdown: &str,
    extra_figures: &[(String, String)],
) -> String {
    let mut figures: Vec<(String, String)> = Vec::new();
    if let Some(svg) = forest_plot(run) {
        figures.push((
            "Claims against their bars: green PASS, amber PARTIAL, red FAIL, blue INCONCLUSIVE; equivalence claims are in the report table"
                .into(),
            svg,
        ));
    }
    for claim in run.claims.iter().filter(|claim| {
        [
            "peak_gflops_per_core",
            "bandwidth_gbytes_per_second",
            "points",
        ]
        .iter()
        .all(|key| claim.details.contains_key(*key))
    }) {
        if let Some(svg) = roofline_plot(claim) {
            figures.push((format!("Roofline: {}", claim.id), svg));
        }
    }
    if let Some(svg) = quantization_error_plot(run) {
        figures.push(("Quantization error".into(), svg));
    }
    for claim in &run.claims {
        if let Some(description) = claim.details.get("plot") {
            if let Some(svg) = described_plot(description) {
                figures.push((claim.id.clone(), svg));
            }
        }
    }
    for claim in run
        .claims
        .iter()
        .filter(|claim| claim.details.get("show_samples") == Some(&Value::Bool(true)))
    {
        let id = &claim.id;
        if let Some(svg) = samples_plot(claim) {
            figures.push((format!("Latency samples: {id}"), svg));
        }
        if let Some(svg) = latency_distribution_plot(claim) {
            figures.push((format!("Latency distribution: {id}"), svg));
        }
    }
    figures.extend(extra_figures.iter().cloned());
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>TorchPerf validation — {}</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}} pre{{white-space:pre-wrap;font-size:13px;}} \
         figure{{margin:1.5em 0;}}</style></head><body>\n<h1>TorchPerf validation — {}</h1>\n",
        escape_html(&run.run_id),
        escape_html(&run.run_id)
    );
    for (caption, svg) in &figures {
        let _ = writeln!(
            html,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape_html(caption)
        );
    }
    for table in run.claims.iter().filter_map(crate::report::claim_table) {
        let _ = writeln!(
            html,
            "<h2>{}</h2>\n<table border=\"1\" cellspacing=\"0\" cellpadding=\"4\"><tr>{}</tr>",
            escape_html(&table.title),
            table
                .columns
                .iter()
                .map(|column| format!("<th>{}</th>", escape_html(column)))
                .collect::<String>()
        );
        for row in &table.rows {
            let _ = writeln!(
                html,
                "<tr>{}</tr>",
                row.iter()
                    .map(|cell| format!("<td>{}</td>", escape_html(cell)))
                    .collect::<String>()
            );
        }
        let _ = writeln!(html, "</table>");
    }
    let _ = write!(
        html,
        "<h2>Report</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape_html(markdown)
    );
    html
}

#[cfg(test)]
mod tests {
    use super::{described_plot, tick};

    #[test]
    fn a_series_marker_changes_the_drawn_shape() {
        let plot = |marker: &str| {
            described_plot(&serde_json::json!({
                "title": "t", "x_label": "x", "y_label": "y",
                "series": [{"name": "peers", "style": "points", "marker": marker,
                    "points": [[1.0, 2.0], [2.0, 3.0]]}],
            }))
            .unwrap()
        };
        let circles = plot("circle");
        let triangles = plot("triangle");
        let crosses = plot("cross");
        // Two points plus the legend's sample: circles are <circle>, triangles <polygon>, crosses lines.
        assert_eq!(circles.matches("<circle").count(), 3);
        assert_eq!(triangles.matches("<circle").count(), 0);
        assert_eq!(triangles.matches("<polygon").count(), 3);
        assert_eq!(crosses.matches("<circle").count(), 0);
        assert_ne!(crosses, triangles);
        // An unknown marker falls back to circles.
        assert_eq!(plot("hexagon"), circles);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(1234.5678), "1235");
        assert_eq!(tick(0.012345), "0.01235");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(1e-7), "1.00e-7");
    }
}
