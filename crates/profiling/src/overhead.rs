//! The profiler's own cost: the same operation run bare and inside [`Profiler::record`], compared
//! with perf-core's interleaved comparator.

use crate::error::ProfilingError;
use crate::network::Network;
use crate::profiler::Profiler;
use perf_core::compare::{compare, CompareConfig, Comparison};
use serde::{Deserialize, Serialize};

/// Profiled versus unprofiled runs of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverheadReport {
    /// Baseline = unprofiled, candidate = profiled; its speedup is `time(unprofiled) /
    /// time(profiled)`, below 1 when profiling costs time.
    pub comparison: Comparison,
    /// Relative overhead `time(profiled) / time(unprofiled) − 1` at the point estimate.
    pub overhead: f64,
    /// Interval of the overhead from the speedup's interval.
    pub overhead_interval: (f64, f64),
    /// Calls the profiler recorded during the comparison (proof that the profiled side profiled).
    pub recorded_calls: u64,
}

/// Compare `op` run bare with `op` run inside a [`Profiler`].
///
/// # Errors
/// [`ProfilingError::Measurement`] from the comparator.
pub fn measure_overhead<I, O>(
    config: &CompareConfig,
    input: &I,
    op: impl Fn(&I) -> O,
) -> Result<OverheadReport, ProfilingError> {
    let mut profiler = Profiler::new(["op".to_string()]);
    let comparison = compare(config, input, &op, |x| profiler.record(0, || op(x)))?;
    Ok(report(comparison, profiler.entries()[0].calls))
}

/// Compare a bare forward pass of `network` with one that records every layer in a [`Profiler`].
///
/// # Errors
/// Errors of [`Network::forward`] (checked by one run first) and [`ProfilingError::Measurement`].
pub fn measure_model_overhead(
    config: &CompareConfig,
    network: &Network,
    input: &[f32],
    batch: usize,
) -> Result<OverheadReport, ProfilingError> {
    network.forward(input, batch)?;
    let mut profiler = Profiler::for_model(network.model());
    let comparison = compare(
        config,
        &input,
        |x| network.forward(x, batch),
        |x| network.forward_profiled(x, batch, &mut profiler),
    )?;
    let recorded_calls = profiler.entries().iter().map(|entry| entry.calls).sum();
    Ok(report(comparison, recorded_calls))
}

fn report(comparison: Comparison, recorded_calls: u64) -> OverheadReport {
    let speedup = &comparison.speedup;
    OverheadReport {
        overhead: 1.0 / speedup.point - 1.0,
        overhead_interval: (1.0 / speedup.ci_upper - 1.0, 1.0 / speedup.ci_lower - 1.0),
        recorded_calls,
        comparison,
    }
}
