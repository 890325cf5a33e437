//! profiling: parameters, FLOPs, memory, latency and roofline of a model — measured, not estimated.
//!
//! | module | what |
//! |---|---|
//! | [`layer`] | layer descriptions (linear, conv2d with stride / padding / dilation / groups, attention prefill and decode, layer norm, activations, embedding, pooling), validated by [`Layer::new`] into typed errors; parameters, multiply–adds, FLOPs (2 per multiply–add, convention in the module docs) and compulsory bytes for a batch; [`Model`] and its per-layer table |
//! | [`reference`](mod@reference) | naive kernels for every kind that count every operation they execute ([`OpCounter`]), so the analytic counts are checked by running them |
//! | [`network`] | a [`Network`]: a model with seeded parameters; fast forward (accel's matmul where it applies), counting reference forward, profiled forward |
//! | [`memory`] | scoped heap current / peak through perf-core's counting allocator, activation memory of a forward pass, model size as the bytes of storage that exists |
//! | [`latency`] | per-layer and whole-model latency as perf-core [`BenchmarkResult`](perf_core::stats::BenchmarkResult)s |
//! | [`roofline`] | stream-triad bandwidth, ceilings from accel's FMA peak probe, each layer's intensity, GFLOP/s, % of peak and bound |
//! | [`profiler`] / [`overhead`] | the instrumenting [`Profiler`] and its cost measured with perf-core's comparator |
//! | [`counters`] | hardware counters, or `unavailable: reason` |
//!
//! ```
//! use profiling::layer::{Conv2dSpec, Layer, LayerSpec};
//!
//! let conv = Layer::new(
//!     "conv1",
//!     LayerSpec::Conv2d(Conv2dSpec::new(3, 16, (32, 32), (3, 3)).with_padding((1, 1))),
//! )?;
//! let cost = conv.cost(1)?;
//! assert_eq!(cost.parameters, 16 * 3 * 3 * 3 + 16);
//! assert_eq!(cost.multiply_adds, 16 * 32 * 32 * 3 * 3 * 3);
//! assert_eq!(cost.flops, 2 * cost.multiply_adds + 16 * 32 * 32); // + bias adds
//! # Ok::<(), profiling::ProfilingError>(())
//! ```
#![forbid(unsafe_code)]

pub mod counters;
mod error;
pub mod latency;
pub mod layer;
pub mod memory;
pub mod models;
pub mod network;
pub mod overhead;
pub mod profiler;
pub mod reference;
pub mod roofline;

pub use error::ProfilingError;
pub use layer::{Layer, LayerCost, LayerSpec, Model};
pub use network::Network;
pub use profiler::Profiler;
pub use reference::OpCounter;

/// The crate README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
