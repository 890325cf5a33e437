//! Memory profiling through perf-core's counting allocator: scoped current and peak heap bytes,
//! the activation memory of a forward pass measured by allocation, and a model's size as the
//! bytes of the storage that exists.
//!
//! Every figure here needs [`perf_core::alloc::CountingAllocator`] installed as the binary's
//! `#[global_allocator]`; without it the functions return
//! [`ProfilingError::Measurement`] (`AllocatorNotInstalled`) rather than zeros. The counters are
//! process-wide, so other threads' allocations during a scope are included: measure on a quiet
//! process.

use crate::error::ProfilingError;
use crate::layer::Model;
use crate::network::Network;
use perf_core::alloc::{self, ScopedMemory};
use serde::{Deserialize, Serialize};

/// Run `f` and report the heap it used (scopes nest; see [`perf_core::alloc::measure_peak`]).
///
/// # Errors
/// [`ProfilingError::Measurement`] when the counting allocator is not installed.
pub fn profile_memory<R>(f: impl FnOnce() -> R) -> Result<(R, ScopedMemory), ProfilingError> {
    Ok(alloc::measure_peak(f)?)
}

/// Heap use of one layer during a forward pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMemory {
    /// Layer name.
    pub name: String,
    /// Highest bytes above the layer's starting level while it ran (output and scratch).
    pub peak_bytes: usize,
    /// Bytes still held when it returned (its output), relative to its start.
    pub net_bytes: i64,
    /// Allocations it made.
    pub allocations: u64,
}

/// Activation memory of one forward pass, measured by allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationMemory {
    /// Batch size.
    pub batch: usize,
    /// Highest heap bytes above the starting level during the whole pass (the input, owned by the
    /// caller, is not included; the final output is).
    pub peak_bytes: usize,
    /// Per layer.
    pub layers: Vec<LayerMemory>,
    /// Bytes a first, unmeasured pass left allocated beyond its output: state the kernels create
    /// lazily and keep (accel's packing buffers, cached CPU information). Excluded from the
    /// figures above, which describe a steady-state pass.
    pub first_pass_retained_bytes: i64,
}

/// Measure the heap a forward pass of `network` uses on `input`.
///
/// Each layer's output is freed once the next layer has consumed it, as an inference runtime
/// would; the peak is therefore the largest (input + output + scratch) of any one step. A first
/// pass runs before the measured one so that state kernels allocate once and keep is not counted
/// as activations; what it kept is reported in
/// [`ActivationMemory::first_pass_retained_bytes`].
///
/// # Errors
/// [`ProfilingError::Measurement`] without the counting allocator; errors of
/// [`Network::forward_layer`].
pub fn activation_memory(
    network: &Network,
    input: &[f32],
    batch: usize,
) -> Result<ActivationMemory, ProfilingError> {
    let layer_count = network.model().layers().len();
    let (first_output, first_pass) = profile_memory(|| network.forward(input, batch))?;
    let first_output = first_output?;
    let first_pass_retained_bytes =
        first_pass.net_bytes - std::mem::size_of_val(first_output.as_slice()) as i64;
    drop(first_output);
    let (layers, whole) = profile_memory(|| -> Result<Vec<LayerMemory>, ProfilingError> {
        let mut layers = Vec::with_capacity(layer_count);
        let mut activation: Option<Vec<f32>> = None;
        for (index, layer) in network.model().layers().iter().enumerate() {
            let current = activation.as_deref().unwrap_or(input);
            let (output, scoped) = profile_memory(|| network.forward_layer(index, current, batch))?;
            activation = Some(output?);
            layers.push(LayerMemory {
                name: layer.name().to_string(),
                peak_bytes: scoped.peak_bytes,
                net_bytes: scoped.net_bytes,
                allocations: scoped.allocations,
            });
        }
        Ok(layers)
    })?;
    // The per-layer records are allocated inside the scope too; their few hundred bytes are part
    // of the whole-pass peak (bookkeeping, not activations).
    Ok(ActivationMemory {
        batch,
        peak_bytes: whole.peak_bytes,
        layers: layers?,
        first_pass_retained_bytes,
    })
}

/// A model's size: what its description says and what its storage holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSize {
    /// Parameters according to the description.
    pub described_parameters: u64,
    /// Parameter values in the materialized buffers.
    pub stored_parameters: u64,
    /// Bytes of those buffers.
    pub parameter_storage_bytes: u64,
    /// Bytes of non-parameter state (decode KV caches).
    pub state_bytes: u64,
    /// Heap bytes the materialization left allocated, measured by the counting allocator.
    pub allocated_bytes: i64,
    /// `allocated_bytes − parameter_storage_bytes − state_bytes`: containers and bookkeeping.
    pub bookkeeping_bytes: i64,
}

/// Materialize `model` and measure its size.
///
/// # Errors
/// [`ProfilingError::Measurement`] without the counting allocator; errors of [`Network::new`].
pub fn measure_model_size(
    model: Model,
    seed: u64,
    cache_batch: usize,
) -> Result<(Network, ModelSize), ProfilingError> {
    let described_parameters = model.parameters();
    let (network, scoped) = profile_memory(|| Network::new(model, seed, cache_batch))?;
    let network = network?;
    let parameter_storage_bytes = network.parameter_storage_bytes();
    let state_bytes = network.state_bytes();
    let size = ModelSize {
        described_parameters,
        stored_parameters: network.stored_parameters(),
        parameter_storage_bytes,
        state_bytes,
        allocated_bytes: scoped.net_bytes,
        bookkeeping_bytes: scoped.net_bytes - parameter_storage_bytes as i64 - state_bytes as i64,
    };
    Ok((network, size))
}
