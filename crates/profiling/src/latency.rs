//! Latency profiling: each layer and the whole model measured with perf-core's protocol, so every
//! figure is a distribution with an interval ([`BenchmarkResult`]), never a single float.

use crate::error::ProfilingError;
use crate::layer::LayerCost;
use crate::network::Network;
use perf_core::measure::{measure, MeasureConfig};
use perf_core::stats::BenchmarkResult;
use serde::{Deserialize, Serialize};

/// One layer's measured latency with its costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerLatency {
    /// Layer name.
    pub name: String,
    /// Kind (`linear`, `conv2d`, ...).
    pub kind: String,
    /// Analytic costs for the measured batch.
    pub cost: LayerCost,
    /// Nanoseconds per call.
    pub result: BenchmarkResult,
    /// Whether warm-up reached a steady state.
    pub steady_state: bool,
}

impl LayerLatency {
    /// FLOPs per second at the median latency, in GFLOP/s.
    pub fn achieved_gflops(&self) -> f64 {
        self.cost.flops as f64 / self.result.median()
    }

    /// The interval of [`LayerLatency::achieved_gflops`] from the median's interval (a faster
    /// latency bound is a higher throughput bound), when the median has one.
    pub fn achieved_gflops_interval(&self) -> Option<(f64, f64)> {
        let (lower, upper) = self.result.median_ci()?;
        Some((
            self.cost.flops as f64 / upper,
            self.cost.flops as f64 / lower,
        ))
    }
}

/// Measure every layer of `network` on the activations a forward pass on `input` produces.
///
/// # Errors
/// Errors of [`Network::forward_layer`] (checked by one run before measuring) and
/// [`ProfilingError::Measurement`] from the protocol.
pub fn layer_latencies(
    network: &Network,
    input: &[f32],
    batch: usize,
    config: &MeasureConfig,
) -> Result<Vec<LayerLatency>, ProfilingError> {
    let inputs = network.layer_inputs(input, batch)?;
    let mut latencies = Vec::with_capacity(inputs.len());
    for (index, (layer, layer_input)) in network.model().layers().iter().zip(&inputs).enumerate() {
        network.forward_layer(index, layer_input, batch)?;
        let measurement = measure(layer.name(), config, layer_input, |x| {
            network.forward_layer(index, x, batch)
        })?;
        latencies.push(LayerLatency {
            name: layer.name().to_string(),
            kind: layer.spec().kind_name().to_string(),
            cost: layer.cost(batch)?,
            result: measurement.result,
            steady_state: measurement.steady_state,
        });
    }
    Ok(latencies)
}

/// Measure a whole forward pass of `network` on `input`; nanoseconds per pass.
///
/// # Errors
/// As [`layer_latencies`].
pub fn model_latency(
    network: &Network,
    input: &[f32],
    batch: usize,
    config: &MeasureConfig,
) -> Result<BenchmarkResult, ProfilingError> {
    network.forward(input, batch)?;
    let measurement = measure(network.model().name(), config, &input, |x| {
        network.forward(x, batch)
    })?;
    Ok(measurement.result)
}
