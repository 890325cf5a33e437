//! A counting global allocator: current and peak heap bytes, allocation counts, scoped peaks, and
//! the process high-water mark from `/proc` beside it.
//!
//! Install it in a binary or test with
//! `#[global_allocator] static ALLOC: perf_core::alloc::CountingAllocator = perf_core::alloc::CountingAllocator::new();`.
//! The counters are process-wide atomics: allocations from every thread are counted. A scoped peak
//! therefore includes whatever other threads allocate meanwhile; measure on a quiet process.

use crate::error::PerfError;
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static CURRENT_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TOTAL_ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator wrapped with byte and call counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAllocator {
    inner: System,
}

impl CountingAllocator {
    /// A counting wrapper around [`System`].
    pub const fn new() -> Self {
        Self { inner: System }
    }
}

fn record_growth(bytes: usize) {
    let now = CURRENT_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
    TOTAL_ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only updates
// atomic counters afterwards, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's valid, non-zero-size layout.
        let pointer = unsafe { self.inner.alloc(layout) };
        if !pointer.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            record_growth(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { self.inner.alloc_zeroed(layout) };
        if !pointer.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            record_growth(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `pointer` came from this allocator with `layout`.
        unsafe { self.inner.dealloc(pointer, layout) };
        DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        CURRENT_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees the `realloc` contract; forwarded unchanged.
        let new_pointer = unsafe { self.inner.realloc(pointer, layout, new_size) };
        if !new_pointer.is_null() {
            let old_size = layout.size();
            if new_size >= old_size {
                record_growth(new_size - old_size);
            } else {
                CURRENT_BYTES.fetch_sub(old_size - new_size, Ordering::Relaxed);
            }
        }
        new_pointer
    }
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationSnapshot {
    /// Bytes currently allocated through the counting allocator.
    pub current_bytes: usize,
    /// Highest `current_bytes` since the last reset.
    pub peak_bytes: usize,
    /// Successful allocations (alloc and alloc_zeroed) so far.
    pub allocations: u64,
    /// Deallocations so far.
    pub deallocations: u64,
    /// Bytes ever allocated (growth of reallocations included).
    pub total_allocated_bytes: u64,
}

/// Read the counters.
pub fn snapshot() -> AllocationSnapshot {
    AllocationSnapshot {
        current_bytes: CURRENT_BYTES.load(Ordering::Relaxed),
        peak_bytes: PEAK_BYTES.load(Ordering::Relaxed),
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        deallocations: DEALLOCATIONS.load(Ordering::Relaxed),
        total_allocated_bytes: TOTAL_ALLOCATED_BYTES.load(Ordering::Relaxed),
    }
}

/// True when [`CountingAllocator`] is this process's global allocator (checked by allocating).
pub fn is_installed() -> bool {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    ALLOCATIONS.load(Ordering::Relaxed) > before
}

/// Memory used by one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedMemory {
    /// Bytes allocated when the scope began.
    pub baseline_bytes: usize,
    /// Highest bytes above the baseline while the scope ran.
    pub peak_bytes: usize,
    /// Bytes still allocated at the end minus the baseline (negative when the scope freed memory).
    pub net_bytes: i64,
    /// Allocations made during the scope.
    pub allocations: u64,
    /// Bytes allocated during the scope in total.
    pub total_allocated_bytes: u64,
}

/// Run `f` and report the heap it used. Scopes nest: an inner scope's peak is restored into the
/// outer one when it ends, so the outer peak is never lost.
///
/// # Errors
/// `AllocatorNotInstalled` when [`CountingAllocator`] is not the global allocator (the numbers
/// would all be zero and would look like a result).
pub fn measure_peak<R>(f: impl FnOnce() -> R) -> Result<(R, ScopedMemory), PerfError> {
    if !is_installed() {
        return Err(PerfError::AllocatorNotInstalled);
    }
    let before = snapshot();
    // Reset the peak to the current level, remembering the outer scope's peak.
    let outer_peak = PEAK_BYTES.swap(before.current_bytes, Ordering::Relaxed);
    let output = f();
    let after = snapshot();
    let inner_peak = PEAK_BYTES.fetch_max(outer_peak, Ordering::Relaxed);
    Ok((
        output,
        ScopedMemory {
            baseline_bytes: before.current_bytes,
            peak_bytes: inner_peak.saturating_sub(before.current_bytes),
            net_bytes: after.current_bytes as i64 - before.current_bytes as i64,
            allocations: after.allocations - before.allocations,
            total_allocated_bytes: after.total_allocated_bytes - before.total_allocated_bytes,
        },
    ))
}

/// A value read from the operating system, or why it could not be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe<T> {
    /// The value.
    Available(T),
    /// Why it is missing.
    Unavailable(String),
}

impl<T> Probe<T> {
    /// The value, if available.
    pub fn value(&self) -> Option<&T> {
        match self {
            Probe::Available(value) => Some(value),
            Probe::Unavailable(_) => None,
        }
    }
}

/// The process's resident set and its high-water mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessMemory {
    /// VmRSS in bytes.
    pub rss_bytes: Probe<u64>,
    /// VmHWM (peak resident set) in bytes.
    pub high_water_mark_bytes: Probe<u64>,
}

/// Read VmRSS and VmHWM from `/proc/self/status` where it exists.
pub fn process_memory() -> ProcessMemory {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(text) => text,
        Err(error) => {
            let reason = format!("unavailable: /proc/self/status: {error}");
            return ProcessMemory {
                rss_bytes: Probe::Unavailable(reason.clone()),
                high_water_mark_bytes: Probe::Unavailable(reason),
            };
        }
    };
    let field = |name: &str| -> Probe<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or_else(
                || Probe::Unavailable(format!("unavailable: no {name} line in /proc/self/status")),
                |kib| Probe::Available(kib * 1024),
            )
    };
    ProcessMemory {
        rss_bytes: field("VmRSS:"),
        high_water_mark_bytes: field("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_installation_scoped_measurement_is_an_error() {
        // The unit-test binary does not install the counting allocator.
        assert!(!is_installed());
        assert!(matches!(
            measure_peak(|| vec![0u8; 16]),
            Err(PerfError::AllocatorNotInstalled)
        ));
    }

    #[test]
    fn process_memory_is_read_or_explained() {
        let memory = process_memory();
        match (&memory.rss_bytes, &memory.high_water_mark_bytes) {
            (Probe::Available(rss), Probe::Available(hwm)) => assert!(*rss > 0 && hwm >= rss),
            (Probe::Unavailable(reason), _) | (_, Probe::Unavailable(reason)) => {
                assert!(reason.starts_with("unavailable"))
            }
        }
    }
}
