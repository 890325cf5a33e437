//! olympics: MLPerf-Tiny-style events on real data, a referee that measures latency and memory as
//! distributions and quality with intervals, compliance verdicts judged on those intervals, Olympic events
//! (latency sprint, memory challenge, accuracy contest, all-around), and Pareto analysis.
//!
//! - [`Submission`] is what a model implements; [`referee()`] measures a field of them on an [`Event`] and
//!   returns an [`Outcome`] each (a scorecard, or an ERROR for that submission alone).
//! - [`events`] builds the four events from installed or embedded data, each with a [`DataSource`] marked
//!   REAL or SYNTHETIC; [`mod@reference`] builds the reference submissions (f32, int8, pruned, combined) from
//!   zoo's trained models.
//! - [`games::run_games`] and [`pareto::analyze`] turn scorecards into rankings, a frontier and
//!   recommendations.
//! - [`challenge`] is the Olympics challenge: zoo's character transformer on kvcache's transformer
//!   ([`challenge_model`]: int8 / f16 / pruned projections) with and without kvcache's KV cache, judged on
//!   next-character accuracy.
//!
//! [`compress`], [`mod@reference`], [`submissions`], [`challenge`] and [`challenge_model`] need zoo's models
//! (and with them candle) and sit behind the `reference` feature, off by default (xtask turns it on); without it the crate
//! has the referee, the events, compliance, the Olympic events and the Pareto analysis, and builds no candle.
//!
//! Targets are "MLPerf-style"; nothing here is an MLPerf result. The crate writes no files.
// `deny` rather than `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` that `forbid` rejects.
#![deny(unsafe_code)]
// Without `reference` the module docs above link to modules that are not built.
#![cfg_attr(not(feature = "reference"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "reference")]
pub mod challenge;
#[cfg(feature = "reference")]
pub mod challenge_model;
pub mod compliance;
#[cfg(feature = "reference")]
pub mod compress;
#[cfg(feature = "reference")]
pub mod conv_submissions;
mod error;
pub mod event;
pub mod events;
#[cfg(feature = "reference")]
pub mod fused;
pub mod games;
pub mod pareto;
pub mod referee;
#[cfg(feature = "reference")]
pub mod reference;
pub mod scenario;
pub mod scenario_claims;
pub mod server;
mod submission;
#[cfg(feature = "reference")]
pub mod submissions;

pub use compliance::{
    judge_compliance, judge_compliance_paired, paired_difference, Compliance, ComplianceSubject,
    PairedDifference,
};
pub use error::OlympicsError;
pub use event::{DataSource, Event, EventSpec, QualityMetric, QueryOrder, RelativeTarget, TestSet};
pub use referee::{referee, referee_one, Outcome, RefereeConfig, Scorecard};
pub use submission::{Optimization, Submission};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
