//! Renders a run as `report.md`: the honest assessment, per module and overall.
//!
//! Everything a suite supplies (ids, statements, reasons, table cells) is escaped for Markdown and
//! for the HTML a Markdown renderer would let through, so a suite's text cannot break the table or
//! inject markup. Tables come from the data claims carry (`details.table`), never from claim ids.

use perf_core::alloc::Probe;
use perf_core::claim::{format_value, ClaimResult, Estimate, Verdict};
use perf_core::results::ValidationRun;
use std::collections::BTreeMap;
use std::fmt::Write;

fn estimate_cell(claim: &ClaimResult) -> String {
    claim.estimate.as_ref().map_or("—".into(), format_estimate)
}

/// "1.894× [1.862×, 1.926×]": the point and its interval, as the report prints them.
pub fn format_estimate(estimate: &Estimate) -> String {
    format!(
        "{} [{}, {}]",
        format_value(estimate.point(), estimate.unit()),
        format_value(estimate.ci_lower(), estimate.unit()),
        format_value(estimate.ci_upper(), estimate.unit())
    )
}

/// Text for a Markdown table cell: no pipe, newline or HTML can escape the cell.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Text for a code span (claim ids): escaped, with backticks replaced so the span cannot close early.
pub(crate) fn code(text: &str) -> String {
    format!("`{}`", escape(&text.replace('`', "'")))
}

/// A table a claim carries in `details.table`: `{"title", "columns": [..], "rows": [[..], ..]}`.
pub(crate) struct ClaimTable {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn cell_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The table of a claim, when its details carry a well-formed one.
pub(crate) fn claim_table(claim: &ClaimResult) -> Option<ClaimTable> {
    let table = claim.details.get("table")?;
    let columns: Vec<String> = table
        .get("columns")?
        .as_array()?
        .iter()
        .map(cell_text)
        .collect();
    let rows = table
        .get("rows")?
        .as_array()?
        .iter()
        .filter_map(|row| Some(row.as_array()?.iter().map(cell_text).collect()))
        .collect();
    let title = table
        .get("title")
        .map(cell_text)
        .unwrap_or_else(|| claim.id.clone());
    Some(ClaimTable {
        title,
        columns,
        rows,
    })
}

fn probe<T: std::fmt::Debug>(value: &Probe<T>) -> String {
    match value {
        Probe::Available(value) => format!("{value:?}").trim_matches('"').to_string(),
        Probe::Unavailable(reason) => reason.clone(),
    }
}

/// The Markdown report of a run.
pub fn render_markdown(run: &ValidationRun) -> String {
    let mut out = String::new();
    let p = &run.provenance;
    let _ = writeln!(
        out,
        "# TorchPerf validation report — {}\n",
        escape(&run.run_id)
    );
    let _ = writeln!(
        out,
        "Mode: **{}** · seed {} · {:.1} s · commit {}{} · {} ({} build, opt-level {})\n",
        if run.config.quick { "quick" } else { "full" },
        run.config.seed,
        run.elapsed_seconds,
        probe(&p.git_commit),
        if matches!(p.git_dirty.value(), Some(true)) {
            " (dirty)"
        } else {
            ""
        },
        p.rustc_version,
        p.build_profile,
        p.opt_level
    );
    let _ = writeln!(
        out,
        "CPU: {} · {} cores · detected {} · compiled-in features: {} · load average at start {} · clock: {:.0} ns resolution, {:.1} ns per read\n",
        probe(&p.cpu_model),
        probe(&p.available_cores),
        p.detected_cpu_features.join(" "),
        if p.compiled_target_features.is_empty() { "baseline".into() } else { p.compiled_target_features.join(",") },
        probe(&p.load_average),
        p.clock.resolution_ns,
        p.clock.overhead_ns
    );

    let _ = writeln!(out, "## Overall\n");
    let counts = run.verdict_counts();
    let _ = writeln!(out, "| verdict | claims |\n|---|---|");
    for (verdict, count) in counts {
        let _ = writeln!(out, "| {verdict} | {count} |");
    }
    let _ = writeln!(
        out,
        "\nMultiple comparisons: {} across {} claims with a p-value, one-sided α = {}; a PASS that does not survive it is reported PARTIAL.\n",
        run.multiple_comparisons.method, run.multiple_comparisons.family_size, run.multiple_comparisons.alpha
    );
    let _ = writeln!(
        out,
        "Verdict rule: PASS when the whole interval clears the threshold, FAIL when the whole interval misses it, PARTIAL when it straddles, INCONCLUSIVE when the measurement cannot speak for the code (the machine was contended, or an adaptive budget ran out), SKIPPED when the claim cannot run here by design (with the command that enables it), ERROR when something broke. Equivalence claims use the 90% interval (TOST).\n"
    );

    let monitored: Vec<_> = run
        .modules
        .iter()
        .filter_map(|module| Some((module, module.environment.as_ref()?)))
        .collect();
    if !monitored.is_empty() {
        let _ = writeln!(out, "## The machine while each module ran\n");
        let _ = writeln!(
            out,
            "Other processes' CPU (in cores), steal, the run queue beside this process, and a fixed canary timed before and after each module. A claim that needs every core and did not pass under detected contention is INCONCLUSIVE; other claims name the contention in their reason.\n"
        );
        let _ = writeln!(
            out,
            "| module | contention | others (cores) | steal | canary after/before | run queue (others, max) | notes |\n|---|---|---|---|---|---|---|"
        );
        let number = |value: Option<f64>, digits: usize| {
            value.map_or("—".to_string(), |v| format!("{v:.digits$}"))
        };
        for (module, record) in monitored {
            let contention = record.contention();
            let _ = writeln!(
                out,
                "| {} | {:?}: {} | {} | {} | {} | {} | {} |",
                escape(&module.name),
                contention.verdict,
                escape(&contention.description),
                number(record.others_cores, 2),
                record
                    .steal_fraction
                    .map_or("—".to_string(), |v| format!("{:.1}%", 100.0 * v)),
                number(record.canary.map(|c| c.ratio), 3),
                record.run_queue.as_ref().map_or("—".to_string(), |q| {
                    match (q.others_mean, q.others_max) {
                        (Some(mean), Some(max)) => format!("{mean:.2}, {max}"),
                        _ => format!("all: {:.2}, {}", q.mean, q.max),
                    }
                }),
                escape(&record.notes.join("; "))
            );
        }
        let _ = writeln!(out);
    }

    let mut by_module: BTreeMap<&str, Vec<&ClaimResult>> = BTreeMap::new();
    for claim in &run.claims {
        by_module
            .entry(claim.module.as_str())
            .or_default()
            .push(claim);
    }
    for module in &run.modules {
        let claims = by_module.remove(module.name.as_str()).unwrap_or_default();
        let passed = claims.iter().filter(|c| c.verdict == Verdict::Pass).count();
        let _ = writeln!(
            out,
            "## {} — {} ({passed}/{} PASS, {:.1} s)\n",
            escape(&module.name),
            module.status,
            claims.len(),
            module.elapsed_seconds
        );
        if let Some(reason) = &module.reason {
            let _ = writeln!(
                out,
                "**Module {}:** {}\n",
                module.status.to_uppercase(),
                escape(reason)
            );
        }
        if claims.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "| claim | verdict | estimate [95% CI] | why |\n|---|---|---|---|"
        );
        for claim in claims {
            let _ = writeln!(
                out,
                "| {} — {} | **{}** | {} | {} |",
                code(&claim.id),
                escape(&claim.statement),
                claim.verdict,
                estimate_cell(claim),
                escape(&claim.reason)
            );
        }
        let _ = writeln!(out);
    }

    let tables: Vec<ClaimTable> = run.claims.iter().filter_map(claim_table).collect();
    if !tables.is_empty() {
        let _ = writeln!(out, "## Tables\n");
        for table in tables {
            let _ = writeln!(out, "### {}\n", escape(&table.title));
            let header: Vec<String> = table.columns.iter().map(|c| escape(c)).collect();
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(header.len().max(1)));
            for row in &table.rows {
                let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            let _ = writeln!(out);
        }
    }

    let contended: Vec<&ClaimResult> = run
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Inconclusive)
        .collect();
    if !contended.is_empty() {
        let _ = writeln!(
            out,
            "## Inconclusive: the measurement could not speak for the code\n"
        );
        for claim in contended {
            let _ = writeln!(out, "- {}: {}", code(&claim.id), escape(&claim.reason));
        }
        let _ = writeln!(out);
    }

    let skipped: Vec<&ClaimResult> = run
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Skipped)
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "## Skipped by design (and how to enable them)\n");
        for claim in skipped {
            let _ = writeln!(out, "- {}: {}", code(&claim.id), escape(&claim.reason));
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## What broke\n");
    let mut any = false;
    for claim in run.claims.iter().filter(|c| c.verdict == Verdict::Error) {
        any = true;
        let _ = writeln!(out, "- {}: {}", code(&claim.id), escape(&claim.reason));
    }
    for module in run.modules.iter().filter(|m| m.status != "ran") {
        any = true;
        let _ = writeln!(
            out,
            "- module {}: {}",
            module.name,
            escape(module.reason.as_deref().unwrap_or("no reason recorded"))
        );
    }
    if !any {
        let _ = writeln!(
            out,
            "Nothing: every claim that could run here was measured."
        );
    }
    if !p.unavailable.is_empty() {
        let _ = writeln!(out, "\nEnvironment probes this machine does not offer:\n");
        for missing in &p.unavailable {
            let _ = writeln!(out, "- {}", escape(missing));
        }
    }
    out
}
