//! The run loop: a [`Suite`] of claim modules, run with panic isolation, Holm across the run, a
//! progress display, and the archive and reports written at the end. [`SuiteArgs`] are the flags
//! every suite accepts, whether it runs as `cargo xtask validate` or as a user's `cargo bench`.

use crate::archive::{write_run, RunFiles};
use crate::error::SuiteError;
use crate::html::render_html_with;
use crate::report::render_markdown;
use perf_core::claim::{apply_holm, ClaimResult};
use perf_core::environment::{EnvironmentMonitor, EnvironmentRecord};
use perf_core::provenance::{compact_timestamp, Provenance};
use perf_core::results::{ModuleStatus, MultipleComparisons, RunConfig, ValidationRun};
use perf_core::timer::Stopwatch;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

/// Family-wise level for Holm: one-sided, matching the 95% two-sided intervals of the claims.
pub const HOLM_ALPHA: f64 = 0.025;

/// The default seed of every random input.
pub const DEFAULT_SEED: u64 = 0x70C4_9E2F;

/// The error a claim module may return; any error type converts into it, `anyhow::Error` included.
pub type ModuleError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a module returns: its judged claims, or an error that makes the whole module ERROR.
pub type ModuleResult = Result<Vec<ClaimResult>, ModuleError>;

/// What every module gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Reduced (still statistically valid) configuration: a first look, CI.
    pub quick: bool,
    /// Seed of every random input.
    pub seed: u64,
    /// Threads for parallel kernels (None: the available cores).
    pub threads: Option<usize>,
    /// Directory of installed data.
    pub data_dir: Option<PathBuf>,
    /// Claim-id filters (substrings); empty runs every claim. Modules may use
    /// [`Context::wants`] to skip work for claims that would be filtered out anyway.
    pub claim_filters: Vec<String>,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            quick: false,
            seed: DEFAULT_SEED,
            threads: None,
            data_dir: None,
            claim_filters: Vec::new(),
        }
    }
}

impl Context {
    /// Whether a claim with this id is selected by the filters.
    pub fn wants(&self, claim_id: &str) -> bool {
        self.claim_filters.is_empty()
            || self
                .claim_filters
                .iter()
                .any(|filter| claim_id.contains(filter.as_str()))
    }
}

/// The flags every suite accepts (`cargo xtask validate`, or `cargo bench --bench claims -- ...`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SuiteArgs {
    /// Reduced but still statistically valid configuration (first look, CI).
    #[arg(long)]
    pub quick: bool,
    /// Only these modules (repeatable).
    #[arg(long = "module")]
    pub modules: Vec<String>,
    /// Only claims whose id contains this text (repeatable; also accepted as positional arguments).
    #[arg(long = "claim")]
    pub claims: Vec<String>,
    /// Claim-id filters given positionally (`cargo bench --bench claims -- sort`).
    #[arg(value_name = "CLAIM_FILTER")]
    pub positional_filters: Vec<String>,
    /// Directory of installed data (Fashion-MNIST, FSDD, ...).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seed of every random input.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Threads for parallel kernels (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where runs are archived (default: the suite's own directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 1 when any claim is FAIL or ERROR (SKIPPED and INCONCLUSIVE count as success).
    #[arg(long)]
    pub strict: bool,
    /// After the run, gate it against this baseline in the history (`previous`, a commit or a run id):
    /// exit 1 on a confirmed regression (re-measured first), 2 when the gate cannot decide.
    #[arg(long, value_name = "BASELINE")]
    pub gate: Option<String>,
    /// With `--gate`: report regressions but exit 0.
    #[arg(long)]
    pub gate_warn_only: bool,
    /// Do not record the run in the history store beside the archive.
    #[arg(long)]
    pub no_history: bool,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl SuiteArgs {
    fn context(&self) -> Context {
        let mut claim_filters = self.claims.clone();
        claim_filters.extend(self.positional_filters.iter().cloned());
        Context {
            quick: self.quick,
            seed: self.seed,
            threads: self.threads,
            data_dir: self.data_dir.clone(),
            claim_filters,
        }
    }
}

type ModuleFn = Box<dyn Fn(&Context) -> ModuleResult + Send + Sync>;

/// A claim module: a name (`--module`) and a function from the run's context to judged claims.
pub struct Module {
    name: String,
    run: ModuleFn,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Module")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A suite: named modules of claims, run in order.
#[derive(Debug)]
pub struct Suite {
    name: String,
    modules: Vec<Module>,
    default_out: PathBuf,
}

/// A finished run: what was archived, and where.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run, as written to `results.json`.
    pub run: ValidationRun,
    /// The run's directory in the archive.
    pub directory: PathBuf,
}

impl RunOutcome {
    /// Whether any claim is FAIL or ERROR, or a module broke.
    pub fn has_failures(&self) -> bool {
        self.run
            .claims
            .iter()
            .any(|claim| claim.verdict.is_failure())
            || self
                .run
                .modules
                .iter()
                .any(|module| module.status == "error")
    }
}

/// The conventional home of a user suite's runs: `<target>/torchperf/<suite>/`, where `<target>` is
/// `CARGO_TARGET_DIR` when set, `target/` in the current directory otherwise (cargo runs benches
/// from the package root).
pub fn default_out_for(suite_name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("torchperf").join(sanitize(suite_name))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Suite {
    /// An empty suite; its runs go to [`default_out_for`] unless `--out` or [`Suite::out`] says
    /// otherwise.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            modules: Vec::new(),
            default_out: default_out_for(name),
        }
    }

    /// Where runs are archived when `--out` is not given.
    pub fn out(mut self, directory: impl Into<PathBuf>) -> Self {
        self.default_out = directory.into();
        self
    }

    /// Add a module (builder style). Its function may return any error type.
    pub fn module<F, E>(mut self, name: &str, run: F) -> Self
    where
        F: Fn(&Context) -> Result<Vec<ClaimResult>, E> + Send + Sync + 'static,
        E: Into<ModuleError>,
    {
        self.modules.push(Module {
            name: name.to_string(),
            run: Box::new(move |context| run(context).map_err(Into::into)),
        });
        self
    }

    /// The suite's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The modules, in run order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// Parse the process's arguments as [`SuiteArgs`], run, print each verdict, archive, and return
    /// the exit code: 0, or 1 under `--strict` when a claim is FAIL or ERROR, or 2 when the suite
    /// could not run. This is the whole `main` of a `harness = false` bench target.
    pub fn main(self) -> ExitCode {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SuiteArgs,
        }
        let cli = match Cli::try_parse() {
            Ok(cli) => cli,
            Err(error) => {
                let _ = error.print();
                return ExitCode::from(2);
            }
        };
        let outcome = match self.run(&cli.args) {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("{}: error: {error}", self.name);
                return ExitCode::from(2);
            }
        };
        let strict = exit_code(&outcome, cli.args.strict);
        let Some(baseline) = &cli.args.gate else {
            return strict;
        };
        match self.gate(&cli.args, &outcome.run, baseline) {
            Ok(report) => {
                println!("{}", report.to_markdown());
                match report.exit_code() {
                    0 => strict,
                    code => ExitCode::from(code),
                }
            }
            Err(error) => {
                eprintln!("{}: gate: error: {error}", self.name);
                ExitCode::from(2)
            }
        }
    }

    /// Gate `run` against `baseline` in the history beside the archive, re-measuring suspected
    /// regressions (only those claims) before confirming them.
    ///
    /// # Errors
    /// A store that cannot be opened, or a baseline the history does not hold.
    pub fn gate(
        &self,
        args: &SuiteArgs,
        run: &ValidationRun,
        baseline: &str,
    ) -> Result<history::GateReport, SuiteError> {
        let out = args.out.clone().unwrap_or_else(|| self.default_out.clone());
        let mut store = history::Store::open_default(&out)?;
        let config = history::GateConfig {
            warn_only: args.gate_warn_only,
            ..history::GateConfig::default()
        };
        let report = history::gate(
            &mut store,
            run,
            &history::Baseline::parse(baseline),
            &config,
            |claims: &[String]| {
                let again = SuiteArgs {
                    claims: claims.to_vec(),
                    positional_filters: Vec::new(),
                    ..args.clone()
                };
                self.measure(&again)
            },
        )?;
        Ok(report)
    }

    /// Run the selected modules and archive the run.
    ///
    /// # Errors
    /// An unknown `--module`, or an archive that cannot be written. A module that fails or panics
    /// does not stop the run: it becomes an ERROR module status.
    pub fn run(&self, args: &SuiteArgs) -> Result<RunOutcome, SuiteError> {
        let out = args.out.clone().unwrap_or_else(|| self.default_out.clone());
        let mut run = self.measure(args)?;
        // Two runs in one second would share an id: the archive directory and the history record
        // take the same suffixed one.
        run.run_id = crate::archive::unused_run_id(&out, &run.run_id);
        // The history beside the archive: every run recorded, and its trends drawn into the report.
        // A store that cannot be used (corrupt, a newer schema) is reported and left untouched; the
        // archive below is still written, so nothing measured is lost.
        let trends = if args.no_history {
            Vec::new()
        } else {
            record_history(&out, &run)
        };
        let report_markdown = render_markdown(&run);
        let report_html = render_html_with(&run, &report_markdown, &trends);
        let directory = write_run(
            &out,
            &RunFiles {
                run: &run,
                report_markdown,
                report_html,
            },
        )?;
        let counts = run.verdict_counts();
        eprintln!(
            "{}: {} claims — {} in {:.1} s; written to {} (report.md, report.html, results.json)",
            self.name,
            run.claims.len(),
            counts
                .iter()
                .filter(|(_, count)| *count > 0)
                .map(|(verdict, count)| format!("{count} {verdict}"))
                .collect::<Vec<_>>()
                .join(", "),
            run.elapsed_seconds,
            directory.display()
        );
        Ok(RunOutcome { run, directory })
    }

    /// Run the selected modules without archiving: the judged run, Holm applied.
    ///
    /// # Errors
    /// An unknown `--module`.
    pub fn measure(&self, args: &SuiteArgs) -> Result<ValidationRun, SuiteError> {
        for requested in &args.modules {
            if !self.modules.iter().any(|module| &module.name == requested) {
                let known: Vec<&str> = self.modules.iter().map(|m| m.name.as_str()).collect();
                return Err(SuiteError::UnknownModule {
                    requested: requested.clone(),
                    known: known.join(", "),
                });
            }
        }
        if cfg!(debug_assertions) {
            eprintln!(
                "{}: WARNING: debug build — timings are not representative (build with --release)",
                self.name
            );
        }
        let started = Stopwatch::start();
        let provenance = Provenance::collect(Some(args.seed));
        let context = args.context();
        let all_names: Vec<&str> = self.modules.iter().map(|m| m.name.as_str()).collect();
        let selected: Vec<&Module> = self
            .modules
            .iter()
            .filter(|module| {
                args.modules.is_empty() || args.modules.iter().any(|name| name == &module.name)
            })
            .filter(|module| module_may_hold(&module.name, &all_names, &context.claim_filters))
            .collect();
        let mut claims = Vec::new();
        let mut statuses = Vec::new();
        let progress = indicatif::ProgressBar::new(selected.len() as u64);
        progress.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} modules · {msg} · {elapsed} elapsed, ~{eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for (index, module) in selected.iter().enumerate() {
            progress.set_message(module.name.clone());
            let line = format!(
                "[{}/{}] {} ({:.0} s elapsed)",
                index + 1,
                selected.len(),
                module.name,
                started.elapsed().as_secs_f64()
            );
            if progress.is_hidden() {
                eprintln!("{line}");
            } else {
                progress.println(line);
            }
            let module_started = Stopwatch::start();
            let monitor = EnvironmentMonitor::start();
            let outcome = catch_unwind(AssertUnwindSafe(|| (module.run)(&context)));
            let environment = monitor.stop();
            let elapsed_seconds = module_started.elapsed().as_secs_f64();
            progress.inc(1);
            let status = match outcome {
                Ok(Ok(module_claims)) => {
                    let kept: Vec<ClaimResult> = module_claims
                        .into_iter()
                        .filter(|claim| context.wants(&claim.id))
                        .map(|claim| judge_environment(claim, &environment))
                        .collect();
                    for claim in &kept {
                        eprintln!(
                            "    {:<12} {}: {}",
                            claim.verdict.to_string(),
                            claim.id,
                            claim.reason
                        );
                    }
                    claims.extend(kept);
                    ModuleStatus {
                        name: module.name.clone(),
                        status: "ran".into(),
                        reason: None,
                        elapsed_seconds,
                        environment: Some(environment.clone()),
                    }
                }
                Ok(Err(error)) => {
                    let reason = error_chain(error.as_ref());
                    eprintln!("    ERROR        module {}: {reason}", module.name);
                    ModuleStatus {
                        name: module.name.clone(),
                        status: "error".into(),
                        reason: Some(reason),
                        elapsed_seconds,
                        environment: Some(environment.clone()),
                    }
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    eprintln!(
                        "    ERROR        module {} panicked: {message}",
                        module.name
                    );
                    ModuleStatus {
                        name: module.name.clone(),
                        status: "error".into(),
                        reason: Some(format!("panicked: {message}")),
                        elapsed_seconds,
                        environment: Some(environment.clone()),
                    }
                }
            };
            statuses.push(status);
        }
        progress.finish_and_clear();
        let family_size = apply_holm(&mut claims, HOLM_ALPHA);
        let commit = provenance
            .git_commit
            .value()
            .map(|commit| commit.chars().take(10).collect::<String>())
            .unwrap_or_else(|| "nogit".into());
        let dirty = matches!(provenance.git_dirty.value(), Some(true));
        let run_id = format!(
            "{}-{commit}{}",
            compact_timestamp(SystemTime::now()),
            if dirty { "-dirty" } else { "" }
        );
        let config = RunConfig {
            quick: args.quick,
            seed: args.seed,
            modules: args.modules.clone(),
            threads: args.threads,
            data_dir: args.data_dir.as_ref().map(|p| p.display().to_string()),
        };
        let mut run = ValidationRun::new(
            run_id,
            provenance,
            config,
            claims,
            MultipleComparisons::holm(family_size, HOLM_ALPHA),
        );
        run.modules = statuses;
        run.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(run)
    }
}

/// Record `run` in the history store beside the archive (`<out>/history.sqlite`) and return the
/// trend figures of its claims that have enough history; a store that cannot be used is reported on
/// stderr, never recreated, and the run goes on.
fn record_history(out: &Path, run: &ValidationRun) -> Vec<(String, String)> {
    if let Err(error) = std::fs::create_dir_all(out) {
        eprintln!("history: not recorded: creating {}: {error}", out.display());
        return Vec::new();
    }
    let mut store = match history::Store::open_default(out) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("history: not recorded: {error}");
            return Vec::new();
        }
    };
    if let Err(error) = store.record(run) {
        eprintln!("history: not recorded: {error}");
        return Vec::new();
    }
    history::trend::report_figures(&mut store, run, 5, 12).unwrap_or_else(|error| {
        eprintln!("history: trend figures not drawn: {error}");
        Vec::new()
    })
}

/// Attach the environment a claim was measured in, and keep a busy machine from being blamed on the
/// code: perf-core's [`perf_core::environment::Contention::qualify`] makes a claim that needs every
/// core (thread scaling) and did not pass under contention INCONCLUSIVE, naming the contention; any
/// other claim names it beside its verdict.
pub fn judge_environment(claim: ClaimResult, environment: &EnvironmentRecord) -> ClaimResult {
    let needs_quiet_machine = claim.requires_quiet_machine();
    environment
        .contention()
        .qualify(claim, needs_quiet_machine)
        .with_environment(environment.clone())
}

/// Whether a module can hold a claim selected by the filters. Claim ids start with their module's
/// name (with `-` written `_`), so a module is skipped only when every filter starts with another of
/// the suite's module prefixes (`quant.` skips accel); any other filter may match anywhere.
fn module_may_hold(module_name: &str, all_modules: &[&str], filters: &[String]) -> bool {
    let prefix = |name: &str| format!("{}.", name.replace('-', "_"));
    let own = prefix(module_name);
    filters.is_empty()
        || filters.iter().any(|filter| {
            filter.starts_with(&own)
                || !all_modules
                    .iter()
                    .any(|other| filter.starts_with(&prefix(other)))
        })
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The exit code of a finished run: 1 under `strict` when a claim is FAIL or ERROR (or a module
/// broke); SKIPPED and INCONCLUSIVE count as success.
pub fn exit_code(outcome: &RunOutcome, strict: bool) -> ExitCode {
    if strict && outcome.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where a suite archives by default, relative paths resolved against `base`.
pub fn resolve_out(base: &Path, out: &Path) -> PathBuf {
    if out.is_absolute() {
        out.to_path_buf()
    } else {
        base.join(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_claims_and_modules() {
        let context = Context {
            claim_filters: vec!["accel.peak".into()],
            ..Context::default()
        };
        assert!(context.wants("accel.peak_probe"));
        assert!(!context.wants("quant.gemm"));
        let all = ["accel", "quant", "perf-core", "olympics"];
        assert!(module_may_hold("accel", &all, &["accel.peak".into()]));
        assert!(!module_may_hold("quant", &all, &["accel.peak".into()]));
        assert!(module_may_hold("perf-core", &all, &["perf_core.aa".into()]));
        assert!(!module_may_hold("accel", &all, &["perf_core.aa".into()]));
        assert!(module_may_hold("quant", &all, &["speedup".into()]));
        assert!(module_may_hold(
            "olympics",
            &all,
            &["image_classification.int8".into()]
        ));
    }

    #[test]
    fn sanitized_suite_names_stay_inside_the_target_directory() {
        assert_eq!(sanitize("../evil/name"), "___evil_name");
    }
}
