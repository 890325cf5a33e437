//! `cargo xtask validate`: run each module's claims, control the family, archive, report.

use crate::archive::{write_run, RunFiles};
use crate::modules::{registry, ModuleContext};
use crate::report::render_markdown;
use anyhow::{bail, Result};
use clap::Args;
use perf_core::claim::{apply_holm, Verdict};
use perf_core::provenance::{compact_timestamp, Provenance};
use perf_core::results::{
    ModuleStatus, MultipleComparisons, RunConfig, ValidationRun, SCHEMA_VERSION,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

/// Family-wise level for Holm: one-sided, matching the 95% two-sided intervals of the claims.
const HOLM_ALPHA: f64 = 0.025;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Reduced but still statistically valid configuration (first look, CI).
    #[arg(long)]
    quick: bool,
    /// Only these modules (repeatable).
    #[arg(long = "module")]
    modules: Vec<String>,
    /// Directory of installed data (Fashion-MNIST, FSDD, ...).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed of every random input.
    #[arg(long, default_value_t = 0x70C4_9E2F)]
    seed: u64,
    /// Threads for parallel kernels (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where runs are archived.
    #[arg(long, default_value = "validation_results")]
    out: PathBuf,
    /// Exit non-zero when any claim is FAIL or ERROR.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let registry = registry();
    for requested in &args.modules {
        if !registry.iter().any(|module| module.name == requested) {
            let known: Vec<&str> = registry.iter().map(|module| module.name).collect();
            bail!("unknown module `{requested}`; known: {}", known.join(", "));
        }
    }
    if !cfg!(debug_assertions) {
        eprintln!("validate: release build");
    } else {
        eprintln!("validate: WARNING: debug build — timings are not representative (use `cargo xtask`, which builds --release)");
    }
    let started = Instant::now();
    let provenance = Provenance::collect(Some(args.seed));
    let context = ModuleContext {
        quick: args.quick,
        seed: args.seed,
        threads: args.threads,
        data_dir: args.data_dir.clone(),
    };
    let selected: Vec<_> = registry
        .iter()
        .filter(|module| {
            args.modules.is_empty() || args.modules.iter().any(|name| name == module.name)
        })
        .collect();
    let mut claims = Vec::new();
    let mut statuses = Vec::new();
    // A progress bar on a terminal (hidden otherwise, where the plain lines below suffice).
    let progress = indicatif::ProgressBar::new(selected.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} modules · {msg} · {elapsed} elapsed, ~{eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for (index, module) in selected.iter().enumerate() {
        progress.set_message(module.name);
        progress.println(format!(
            "[{}/{}] {} ({:.0} s elapsed)",
            index + 1,
            selected.len(),
            module.name,
            started.elapsed().as_secs_f64()
        ));
        if progress.is_hidden() {
            eprintln!(
                "[{}/{}] {} ({:.0} s elapsed)",
                index + 1,
                selected.len(),
                module.name,
                started.elapsed().as_secs_f64()
            );
        }
        let module_started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (module.run)(&context)));
        let elapsed_seconds = module_started.elapsed().as_secs_f64();
        progress.inc(1);
        match outcome {
            Ok(Ok(module_claims)) => {
                for claim in &module_claims {
                    eprintln!(
                        "    {:<8} {}: {}",
                        claim.verdict.to_string(),
                        claim.id,
                        claim.reason
                    );
                }
                claims.extend(module_claims);
                statuses.push(ModuleStatus {
                    name: module.name.to_string(),
                    status: "ran".into(),
                    reason: None,
                    elapsed_seconds,
                });
            }
            Ok(Err(error)) => {
                eprintln!("    ERROR    module {}: {error:#}", module.name);
                statuses.push(ModuleStatus {
                    name: module.name.to_string(),
                    status: "error".into(),
                    reason: Some(format!("{error:#}")),
                    elapsed_seconds,
                });
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                eprintln!("    ERROR    module {} panicked: {message}", module.name);
                statuses.push(ModuleStatus {
                    name: module.name.to_string(),
                    status: "error".into(),
                    reason: Some(format!("panicked: {message}")),
                    elapsed_seconds,
                });
            }
        }
    }
    progress.finish_and_clear();
    let family_size = apply_holm(&mut claims, HOLM_ALPHA);
    let commit = provenance
        .git_commit
        .value()
        .map(|commit| commit.chars().take(10).collect::<String>())
        .unwrap_or_else(|| "nogit".into());
    let dirty = matches!(provenance.git_dirty.value(), Some(true));
    let run = ValidationRun {
        schema_version: SCHEMA_VERSION,
        run_id: format!(
            "{}-{commit}{}",
            compact_timestamp(SystemTime::now()),
            if dirty { "-dirty" } else { "" }
        ),
        provenance,
        config: RunConfig {
            quick: args.quick,
            seed: args.seed,
            modules: args.modules.clone(),
            threads: args.threads,
            data_dir: args.data_dir.as_ref().map(|p| p.display().to_string()),
        },
        claims,
        modules: statuses,
        multiple_comparisons: MultipleComparisons {
            method: "holm".into(),
            family_size,
            alpha: HOLM_ALPHA,
        },
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    let report_markdown = render_markdown(&run);
    let report_html = crate::html::render_html(&run, &report_markdown);
    let directory = write_run(
        &args.out,
        &RunFiles {
            run: &run,
            report_markdown,
            report_html,
        },
    )?;
    let counts = run.verdict_counts();
    eprintln!(
        "validate: {} claims — {} in {:.1} s; written to {}",
        run.claims.len(),
        counts
            .iter()
            .map(|(verdict, count)| format!("{count} {verdict}"))
            .collect::<Vec<_>>()
            .join(", "),
        run.elapsed_seconds,
        directory.display()
    );
    let failed = run
        .claims
        .iter()
        .any(|claim| matches!(claim.verdict, Verdict::Fail | Verdict::Error))
        || run.modules.iter().any(|module| module.status == "error");
    Ok(if args.strict && failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
