//! Renders a run as `report.md`: the honest assessment, per module and overall.

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
        format_value(estimate.point, &estimate.unit),
        format_value(estimate.ci_lower, &estimate.unit),
        format_value(estimate.ci_upper, &estimate.unit)
    )
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
    let _ = writeln!(out, "# TorchPerf validation report — {}\n", run.run_id);
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
        "Verdict rule: PASS when the whole interval clears the threshold, FAIL when the whole interval misses it, PARTIAL when it straddles (inconclusive), ERROR when the measurement could not be made. Equivalence claims use the 90% interval (TOST).\n"
    );

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
            module.name,
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
                "| `{}` — {} | **{}**{} | {} | {} |",
                claim.id,
                escape(&claim.statement),
                claim.verdict,
                if claim.borderline.is_some() {
                    " (borderline by design)"
                } else {
                    ""
                },
                estimate_cell(claim),
                escape(&claim.reason)
            );
        }
        let _ = writeln!(out);
    }

    let borderline: Vec<&ClaimResult> = run
        .claims
        .iter()
        .filter(|c| c.borderline.is_some())
        .collect();
    if !borderline.is_empty() {
        let _ = writeln!(out, "## Borderline by design\n");
        let _ = writeln!(
            out,
            "These claims' bars sit where the measured quantity is expected to be, so their verdict can move between adjacent verdicts from run to run; `cargo xtask stability` leaves them out.\n"
        );
        for claim in borderline {
            let _ = writeln!(
                out,
                "- `{}` ({}): {}",
                claim.id,
                claim.verdict,
                escape(claim.borderline.as_deref().unwrap_or_default())
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## What this run could not measure\n");
    let mut any = false;
    for claim in run.claims.iter().filter(|c| c.verdict == Verdict::Error) {
        any = true;
        let _ = writeln!(out, "- `{}`: {}", claim.id, escape(&claim.reason));
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
    for missing in &p.unavailable {
        any = true;
        let _ = writeln!(out, "- environment probe {}", escape(missing));
    }
    if !any {
        let _ = writeln!(out, "Nothing: every claim and probe was measured.");
    }
    out
}
