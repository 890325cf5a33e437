//! A low-overhead instrumenting profiler: each recorded call reads the monotonic clock and the
//! counting allocator's counters before and after, and folds them into a fixed slot, so recording
//! never allocates and its cost does not grow with the number of calls.

use crate::layer::Model;
use perf_core::alloc;
use perf_core::timer::Stopwatch;
use serde::{Deserialize, Serialize};

/// What one slot accumulated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileEntry {
    /// Name of the slot (a layer's name).
    pub name: String,
    /// Calls recorded.
    pub calls: u64,
    /// Total wall time of the calls, in ns.
    pub total_ns: u64,
    /// Shortest call, in ns (`u64::MAX` before the first).
    pub min_ns: u64,
    /// Longest call, in ns.
    pub max_ns: u64,
    /// Allocations made during the calls (all threads: the allocator's counters are process-wide).
    pub allocations: u64,
    /// Bytes allocated during the calls.
    pub allocated_bytes: u64,
}

impl ProfileEntry {
    fn new(name: String) -> Self {
        Self {
            name,
            calls: 0,
            total_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            allocations: 0,
            allocated_bytes: 0,
        }
    }

    /// Mean time per call in ns, `None` before the first call.
    pub fn mean_ns(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.total_ns as f64 / self.calls as f64)
    }
}

/// Fixed slots of accumulated time and allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profiler {
    entries: Vec<ProfileEntry>,
}

impl Profiler {
    /// One slot per name.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            entries: names.into_iter().map(ProfileEntry::new).collect(),
        }
    }

    /// One slot per layer of `model`, in order.
    pub fn for_model(model: &Model) -> Self {
        Self::new(model.layers().iter().map(|layer| layer.name().to_string()))
    }

    /// Run `f`, adding its time and allocations to slot `slot`.
    ///
    /// # Panics
    /// When `slot` is not a slot of this profiler (a programmer error).
    #[inline]
    pub fn record<R>(&mut self, slot: usize, f: impl FnOnce() -> R) -> R {
        let before = alloc::snapshot();
        let start = Stopwatch::start();
        let output = f();
        let elapsed = start.elapsed().as_nanos() as u64;
        let after = alloc::snapshot();
        let entry = &mut self.entries[slot];
        entry.calls += 1;
        entry.total_ns += elapsed;
        entry.min_ns = entry.min_ns.min(elapsed);
        entry.max_ns = entry.max_ns.max(elapsed);
        entry.allocations += after.allocations - before.allocations;
        entry.allocated_bytes += after.total_allocated_bytes - before.total_allocated_bytes;
        output
    }

    /// The slots.
    pub fn entries(&self) -> &[ProfileEntry] {
        &self.entries
    }

    /// Clear every slot's accumulators, keeping the names.
    pub fn reset(&mut self) {
        for entry in &mut self.entries {
            *entry = ProfileEntry::new(std::mem::take(&mut entry.name));
        }
    }
}
