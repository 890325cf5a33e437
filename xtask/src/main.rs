//! `cargo xtask`: TorchPerf's orchestration — `validate` runs every module's claims and archives
//! the run, `compare` diffs two archived runs, `stability` checks that consecutive runs agree on every
//! verdict, `report` re-renders an archived run's report.

mod archive;
mod compare_runs;
mod html;
mod modules;
mod report;
mod stability;
mod validate;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Memory claims measure by allocation, so the harness counts every allocation.
#[global_allocator]
static ALLOCATOR: perf_core::alloc::CountingAllocator = perf_core::alloc::CountingAllocator::new();

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "TorchPerf validation suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every module's claims and archive the results.
    Validate(validate::ValidateArgs),
    /// Compare two archived runs (default: the last two).
    Compare {
        /// The earlier run (directory or results.json); default: the second newest.
        run_a: Option<PathBuf>,
        /// The later run; default: the newest.
        run_b: Option<PathBuf>,
        /// Directory holding the runs.
        #[arg(long, default_value = "validation_results")]
        out: PathBuf,
        /// Exit non-zero when any claim regressed significantly.
        #[arg(long)]
        fail_on_regression: bool,
    },
    /// Check that consecutive runs give every claim the same verdict (claims marked inconclusive by design
    /// are listed apart); exits 1 when another claim changed.
    Stability {
        /// Runs to check (directories or results.json), oldest first; default: the newest runs made in
        /// the newest run's mode.
        runs: Vec<PathBuf>,
        /// How many of the newest runs to check when none are given.
        #[arg(long, default_value_t = 3)]
        last: usize,
        /// Directory holding the runs.
        #[arg(long, default_value = "validation_results")]
        out: PathBuf,
    },
    /// Re-render the report of an archived run.
    Report {
        /// Run directory or results.json (default: latest).
        run: Option<PathBuf>,
        /// Directory holding the runs.
        #[arg(long, default_value = "validation_results")]
        out: PathBuf,
        /// Also render the HTML report (with its figures) to this file; the archived run is never
        /// rewritten.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    // Relative paths (validation_results/, --out, --data-dir) resolve against the workspace root,
    // wherever the command is run from, so that runs land in one archive.
    let workspace_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&workspace_root)?;
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Compare {
            run_a,
            run_b,
            out,
            fail_on_regression,
        } => compare_runs::run(run_a, run_b, &out, fail_on_regression),
        Command::Stability { runs, last, out } => stability::run(runs, last, &out),
        Command::Report { run, out, html } => {
            let path = archive::resolve_run(run, &out, 0)?;
            let loaded = archive::load(&path)?;
            let markdown = report::render_markdown(&loaded);
            if let Some(html_path) = html {
                std::fs::write(&html_path, html::render_html(&loaded, &markdown))
                    .with_context(|| format!("writing {}", html_path.display()))?;
                eprintln!("wrote {}", html_path.display());
            }
            print!("{markdown}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
