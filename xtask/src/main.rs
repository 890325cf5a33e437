//! `cargo xtask`: the command line over the `suite` library and the workspace's own claim modules
//! (`src/modules/`). `validate` runs every module's claims and archives the run, `compare` diffs two
//! archived runs, `stability` checks that consecutive runs agree on every verdict, `report` re-renders
//! an archived run's report, `history` / `gate` / `import` read and judge the history of runs (every
//! validate run is recorded in `validation_results/history.sqlite`). Everything but argument parsing
//! lives in the libraries.

// `deny`, not `forbid`: ndarray's `s!` macro expands to an `allow(unsafe_code)` that `forbid` rejects. The tidy
// test (`xtask/tests/tidy.rs`) checks that no `unsafe` is written here.
#![deny(unsafe_code)]

mod history_cmd;
mod modules;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use perf_core::results::ValidationRun;
use std::path::PathBuf;
use std::process::ExitCode;
use suite::SuiteArgs;

/// Memory claims measure by allocation, so the harness counts every allocation.
#[global_allocator]
static ALLOCATOR: perf_core::alloc::CountingAllocator = perf_core::alloc::CountingAllocator::new();

/// Where the workspace's runs are archived.
const ARCHIVE: &str = "validation_results";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "TorchPerf validation suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every module's claims and archive the results (default: validation_results/).
    Validate(SuiteArgs),
    /// Compare two archived runs (default: the last two).
    Compare {
        /// The earlier run (directory or results.json); default: the second newest.
        run_a: Option<PathBuf>,
        /// The later run; default: the newest.
        run_b: Option<PathBuf>,
        /// Directory holding the runs.
        #[arg(long, default_value = ARCHIVE)]
        out: PathBuf,
        /// Exit non-zero when any claim regressed significantly.
        #[arg(long)]
        fail_on_regression: bool,
    },
    /// Check that consecutive runs give every claim the same verdict (claims marked inconclusive
    /// by design are listed apart); exits 1 when another claim changed.
    Stability {
        /// Runs to check (directories or results.json), oldest first; default: the newest runs made
        /// in the newest run's mode.
        runs: Vec<PathBuf>,
        /// How many of the newest runs to check when none are given.
        #[arg(long, default_value_t = 3)]
        last: usize,
        /// Directory holding the runs.
        #[arg(long, default_value = ARCHIVE)]
        out: PathBuf,
    },
    #[command(flatten)]
    History(history_cmd::HistoryCommand),
    /// The peers' environment: `cargo xtask peers setup` creates `target/peers-venv` with ONNX
    /// Runtime and onnx from PyPI (PyTorch comes from Debian's `python3-torch`, seen through
    /// `--system-site-packages`), by running `peers/setup.sh`.
    Peers {
        #[command(subcommand)]
        action: PeersAction,
    },
    /// Re-render the report of an archived run.
    Report {
        /// Run directory or results.json (default: latest).
        run: Option<PathBuf>,
        /// Directory holding the runs.
        #[arg(long, default_value = ARCHIVE)]
        out: PathBuf,
        /// Also render the HTML report (with its figures) to this file; the archived run is never
        /// rewritten.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PeersAction {
    /// Create (or update) the peers' virtual environment.
    Setup,
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
        Command::Validate(args) => {
            let suite = modules::workspace_suite(std::path::Path::new(ARCHIVE));
            let outcome = suite.run(&args)?;
            Ok(suite::exit_code(&outcome, args.strict))
        }
        Command::Compare {
            run_a,
            run_b,
            out,
            fail_on_regression,
        } => Ok(suite::compare::run(run_a, run_b, &out, fail_on_regression)?),
        Command::Stability { runs, last, out } => Ok(suite::stability::run(runs, last, &out)?),
        Command::Peers {
            action: PeersAction::Setup,
        } => {
            let status = std::process::Command::new("bash")
                .arg("peers/setup.sh")
                .status()
                .context("running peers/setup.sh (is bash installed?)")?;
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("xtask: peers/setup.sh failed ({status})");
                ExitCode::from(2)
            })
        }
        Command::History(command) => {
            // The gate re-measures suspected regressions, those claims only, in the mode and with the
            // seed and threads of the newest archived run.
            let mut remeasure = |claims: &[String]| -> Result<ValidationRun> {
                let archive = std::path::Path::new(ARCHIVE);
                let latest = suite::archive::load(&suite::archive::resolve_run(None, archive, 0)?)?;
                let args = SuiteArgs {
                    quick: latest.config.quick,
                    seed: latest.config.seed,
                    threads: latest.config.threads,
                    claims: claims.to_vec(),
                    ..SuiteArgs::default()
                };
                Ok(modules::workspace_suite(archive).measure(&args)?)
            };
            history_cmd::run(command, &mut remeasure)
        }
        Command::Report { run, out, html } => {
            let path = suite::archive::resolve_run(run, &out, 0)?;
            let loaded = suite::archive::load(&path)?;
            let markdown = suite::report::render_markdown(&loaded);
            if let Some(html_path) = html {
                std::fs::write(&html_path, suite::html::render_html(&loaded, &markdown))
                    .with_context(|| format!("writing {}", html_path.display()))?;
                eprintln!("wrote {}", html_path.display());
            }
            print!("{markdown}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
