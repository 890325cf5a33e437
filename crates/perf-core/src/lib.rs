//! perf-core: TorchPerf's measurement engine.
//!
//! Everything a verdict rests on lives here: a monotonic [`timer`], a measurement protocol
//! ([`measure`]) with warm-up, batching and rounds, a statistical container ([`stats::BenchmarkResult`])
//! whose constructor refuses non-finite data, an interleaved A/B [`compare`]-ator with speedup intervals,
//! [`claim`]s judged into PASS / PARTIAL / FAIL / ERROR, [`complexity`] fits that allow a constant term,
//! a counting global [`alloc`]-ator, environment [`provenance`], and seeded [`workloads`].
//!
//! ```
//! use perf_core::measure::{measure, MeasureConfig};
//!
//! let input: Vec<u64> = (0..1_000).collect();
//! let config = MeasureConfig::quick();
//! let measurement = measure("sum", &config, &input, |v| v.iter().sum::<u64>()).unwrap();
//! let median = measurement.result.median();
//! let (lower, upper) = measurement.result.median_ci().unwrap();
//! assert!(lower <= median && median <= upper);
//! println!("sum of 1000: median {median:.1} ns/iter, 95% CI [{lower:.1}, {upper:.1}]");
//! ```
#![deny(unsafe_code)]

#[allow(unsafe_code)]
// GlobalAlloc is an unsafe trait; the module is the only place unsafe is allowed.
pub mod alloc;
pub mod claim;
pub mod compare;
pub mod complexity;
pub mod environment;
mod error;
pub mod fallible;
pub mod grid;
pub mod measure;
pub mod provenance;
pub mod results;
pub mod schedule;
pub mod sequential;
pub mod stats;
pub mod timer;
pub mod workloads;

pub use error::PerfError;

/// The workspace README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
