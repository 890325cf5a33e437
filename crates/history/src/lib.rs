//! TorchPerf's history of validation runs: a versioned store ([`Store`], SQLite by default, PostgreSQL for
//! many machines), change points per claim and machine ([`changepoint`]), a CI gate judged against the
//! run-to-run variance the history shows ([`gate()`], module [`mod@gate`]), and trend tables, plots and a machines × claims
//! matrix ([`trend`]).
#![forbid(unsafe_code)]

pub mod changepoint;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod gate;
pub mod record;
pub mod store;
pub mod trend;

pub use changepoint::{detect, ChangePoint, ChangePointConfig};
pub use error::{HistoryError, Result};
pub use gate::{gate, Baseline, ClaimGate, ClaimStatus, GateConfig, GateReport};
pub use record::{Better, ClaimRecord, MachineFingerprint, Mode, RunRecord, SampleSummary};
pub use store::{
    redact_location, ImportReport, RunFilter, Store, DEFAULT_FILE_NAME, SCHEMA_VERSION,
};
pub use trend::{
    claim_trends, matrix, trend_svg, trend_table, ClaimTrend, ReportedChange, SeriesPoint,
};

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
