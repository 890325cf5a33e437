//! TorchPerf's referee as a library: write your own claims, run them with perf-core's protocol, and
//! get verdicts with intervals, a versioned `results.json`, `report.md` and `report.html`, and an exit
//! code a CI job can act on.
//!
//! A suite is a list of modules; a module is a function from the run's [`Context`] to judged claims
//! ([`perf_core::claim::ClaimResult`]). [`Suite::main`] is the whole `main` of a `harness = false`
//! bench target: it parses the same flags as `cargo xtask validate` (`--quick`, `--seed`, `--out`,
//! `--module`, `--claim` or positional claim-id filters, `--strict`), runs the modules with panic
//! isolation, applies Holm across the run, prints each verdict with its interval, and archives the run
//! under `target/torchperf/<suite>/<run_id>/` (see [`default_out_for`]).
//!
//! ```no_run
//! use perf_core::claim::{Claim, Direction};
//! use perf_core::compare::{compare, CompareConfig};
//! use suite::{Context, Suite};
//!
//! fn sorting(context: &Context) -> Result<Vec<perf_core::claim::ClaimResult>, perf_core::PerfError> {
//!     let config = if context.quick { CompareConfig::quick() } else { CompareConfig::default() };
//!     let input: Vec<u32> = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
//!     let comparison = compare(
//!         &config,
//!         &input,
//!         |v| { let mut v = v.clone(); v.sort(); v },
//!         |v| { let mut v = v.clone(); v.sort_unstable(); v },
//!     )?;
//!     let claim = Claim::threshold("sort.unstable_vs_stable", "sort",
//!         "sort_unstable is at least 1.2× sort on 100,000 random u32", 1.2, Direction::AtLeast);
//!     Ok(vec![claim.judge_comparison(&comparison)?])
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Suite::new("sort").module("sort", sorting).main()
//! }
//! ```
//!
//! The library also reads archives back: [`archive`] (list, load), [`report`] and [`html`] (render),
//! [`compare`] (diff two runs) and [`stability`] (do consecutive runs agree).
//!
//! Invariants: the suite reads no clock of its own (perf-core's `Stopwatch` times modules); it writes
//! only into the archive directory, atomically; it renders no claim by its id (figures and tables come
//! from the data claims carry); every text a suite supplies is escaped where it is rendered.

pub mod archive;
pub mod compare;
mod error;
pub mod html;
pub mod report;
mod runner;
pub mod stability;

pub use error::SuiteError;
pub use runner::{
    default_out_for, exit_code, judge_environment, resolve_out, Context, Module, ModuleError,
    ModuleResult, RunOutcome, Suite, SuiteArgs, DEFAULT_SEED, HOLM_ALPHA,
};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
