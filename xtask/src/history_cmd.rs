//! `cargo xtask history | gate | import`: thin command-line wrappers over the `history` crate (the
//! store, change points, the gate, trends). Every decision lives in the crate; this file parses
//! arguments, opens the store, reads the current run and writes the files asked for.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use history::{Baseline, ChangePointConfig, GateConfig, Store};
use perf_core::results::{load_run, ValidationRun};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the history is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// History store: a SQLite file, or a `postgres://user:password@host/db` URL for a store shared by
    /// many machines (the password is never printed). Default: `<out>/history.sqlite`.
    #[arg(long)]
    pub store: Option<String>,
    /// Directory holding the archived runs.
    #[arg(long, default_value = "validation_results")]
    pub out: PathBuf,
}

impl StoreArgs {
    fn open(&self) -> Result<Store> {
        let store = match &self.store {
            Some(location) => Store::open(location),
            None => Store::open_default(&self.out),
        };
        store.context("opening the history store")
    }
}

// The history subcommands (flattened into xtask's command enum; a doc comment here would become its about text).
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// A claim's history on each machine with its change points, an SVG trend plot, or the machines ×
    /// claims matrix.
    History(HistoryArgs),
    /// Compare a run with a baseline on the same machine, re-measuring suspected regressions: exit 0 no
    /// confirmed regression, 1 a confirmed regression (named), 2 cannot decide.
    Gate(GateArgs),
    /// Record archived runs (`results.json` files, run directories, or results directories) in the
    /// history; runs already recorded are left as they are.
    Import(ImportArgs),
}

/// `xtask history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The claim id (e.g. `accel.simd_vs_naive_n512`); without it, a summary of the store.
    pub claim: Option<String>,
    /// Also draw the trend plot (of the machine with the most runs) to this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Show the latest value of every claim on every machine (ratios only across machines).
    #[arg(long)]
    pub matrix: bool,
    /// Largest p-value of a change point.
    #[arg(long, default_value_t = 0.001)]
    pub max_p_value: f64,
    /// Smallest relative change reported as a change point, in percent.
    #[arg(long, default_value_t = 2.0)]
    pub min_change_percent: f64,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `xtask gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// `previous` (the newest earlier run on this machine), a commit (≥ 7 hex digits) or a run id.
    #[arg(long)]
    pub baseline: String,
    /// The run to judge: a run directory or results.json (default: `<out>/latest`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Report regressions but exit 0.
    #[arg(long)]
    pub warn_only: bool,
    /// A claim's threshold in percent, `claim=pct` (a claim id or a prefix ending in `*`); repeatable.
    /// Default 5.
    #[arg(long = "threshold", value_name = "CLAIM=PCT")]
    pub thresholds: Vec<String>,
    /// Default threshold in percent.
    #[arg(long, default_value_t = 5.0)]
    pub default_threshold: f64,
    /// One-sided p-value at most which a change counts, against the run-to-run variance.
    #[arg(long, default_value_t = 0.01)]
    pub max_p_value: f64,
    /// Fewest earlier runs on this machine needed to judge.
    #[arg(long, default_value_t = 5)]
    pub min_history: usize,
    /// A run whose 1-minute load average per core exceeded this at its start is contended (exit 2);
    /// 0 trusts every run.
    #[arg(long, default_value_t = 1.0)]
    pub max_load_per_core: f64,
    /// Also write the report as Markdown (for a pull-request comment).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `xtask import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files or directories to import (default: `<out>`, which includes `reference/`).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Run a history subcommand. `remeasure` re-runs just the named claims (the gate calls it once, with
/// the suspected regressions, before exiting 1).
///
/// # Errors
/// A store that cannot be opened (corrupt, newer schema, unreachable), a run that cannot be read, a
/// baseline the history does not hold, a file that cannot be written.
pub fn run(
    command: HistoryCommand,
    remeasure: &mut dyn FnMut(&[String]) -> Result<ValidationRun>,
) -> Result<ExitCode> {
    match command {
        HistoryCommand::History(args) => history(&args),
        HistoryCommand::Gate(args) => gate(&args, remeasure),
        HistoryCommand::Import(args) => import(&args),
    }
}

fn history(args: &HistoryArgs) -> Result<ExitCode> {
    let mut store = args.store.open()?;
    if args.matrix {
        println!("{}", history::matrix(&mut store)?);
    }
    let Some(claim) = &args.claim else {
        if !args.matrix {
            let runs = store.runs(&history::RunFilter::default())?;
            let machines: std::collections::BTreeSet<(String, history::Mode)> = runs
                .iter()
                .map(|run| (run.fingerprint.describe(), run.mode))
                .collect();
            println!(
                "{}: {} runs on {} machine/mode combinations; `cargo xtask history <claim>` for a claim's history, `--matrix` for every claim",
                store.location(),
                runs.len(),
                machines.len()
            );
            for (machine, mode) in machines {
                println!("- {machine}, {mode}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let config = ChangePointConfig {
        max_p_value: args.max_p_value,
        min_relative_magnitude: args.min_change_percent / 100.0,
        ..ChangePointConfig::default()
    };
    let trends = history::claim_trends(&mut store, claim, &config)?;
    for trend in &trends {
        println!("{}", history::trend_table(trend));
    }
    if let Some(path) = &args.svg {
        let longest = trends
            .iter()
            .max_by_key(|t| t.points.len())
            .context("no trend to plot")?;
        std::fs::write(path, history::trend_svg(longest)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("trend plot: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn gate(
    args: &GateArgs,
    remeasure: &mut dyn FnMut(&[String]) -> Result<ValidationRun>,
) -> Result<ExitCode> {
    let run_path = args
        .run
        .clone()
        .unwrap_or_else(|| args.store.out.join("latest"));
    let current = load_run(&results_file(&run_path))
        .with_context(|| format!("reading the run to judge ({})", run_path.display()))?;
    let mut config = GateConfig {
        default_threshold: args.default_threshold / 100.0,
        warn_only: args.warn_only,
        max_p_value: args.max_p_value,
        min_history_runs: args.min_history,
        max_load_per_core: (args.max_load_per_core > 0.0).then_some(args.max_load_per_core),
        ..GateConfig::default()
    };
    for entry in &args.thresholds {
        config.add_threshold(entry)?;
    }
    let mut store = args.store.open()?;
    let report = history::gate(
        &mut store,
        &current,
        &Baseline::parse(&args.baseline),
        &config,
        |claims: &[String]| {
            eprintln!(
                "gate: re-measuring {} suspected regression(s): {}",
                claims.len(),
                claims.join(", ")
            );
            remeasure(claims).map_err(|error| format!("{error:#}"))
        },
    )?;
    let markdown = report.to_markdown();
    println!("{markdown}");
    if let Some(path) = &args.report {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn import(args: &ImportArgs) -> Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![args.store.out.clone()]
    } else {
        args.paths.clone()
    };
    let mut store = args.store.open()?;
    let report = store.import(&paths)?;
    println!(
        "{}: {} runs imported, {} already recorded, {} unreadable",
        store.location(),
        report.imported.len(),
        report.already_present.len(),
        report.failed.len()
    );
    for run in &report.imported {
        println!("  + {run}");
    }
    for (path, reason) in &report.failed {
        eprintln!("  ! {path}: {reason}");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A run directory's `results.json`, or the path itself when it is a file.
fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    }
}
