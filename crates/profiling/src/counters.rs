//! Hardware counters (cycles, instructions) — or why they cannot be read here.
//!
//! Reading them needs `perf_event_open`, a raw system call this crate does not make: it forbids
//! `unsafe` code and has no libc binding. The probe therefore reports availability with the most
//! specific reason it can find (no core PMU exposed, a paranoid setting that forbids it, or the
//! missing binding), so a result file says why the counters are absent instead of holding zeros.

use perf_core::alloc::Probe;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Cycles and instructions of a measured region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareCounters {
    /// CPU cycles.
    pub cycles: u64,
    /// Instructions retired.
    pub instructions: u64,
}

/// Why hardware counters cannot be read on this machine, as an `unavailable: reason` string.
pub fn unavailability_reason() -> String {
    let core_pmu = Path::new("/sys/bus/event_source/devices/cpu");
    if !Path::new("/sys/bus/event_source/devices").exists() {
        return "unavailable: no /sys/bus/event_source (no perf events in this kernel or container)"
            .into();
    }
    if !core_pmu.exists() {
        return "unavailable: no core PMU exposed (/sys/bus/event_source/devices/cpu is absent; \
                a VM without a virtual PMU)"
            .into();
    }
    match std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    {
        Some(level) if level > 2 => format!(
            "unavailable: kernel.perf_event_paranoid = {level} forbids unprivileged counters"
        ),
        _ => "unavailable: a core PMU exists, but this crate does not call perf_event_open \
              (it forbids unsafe code and has no libc binding)"
            .into(),
    }
}

/// Run `f` and return its result with its hardware counts, or why they could not be read.
pub fn count_hardware<R>(f: impl FnOnce() -> R) -> (R, Probe<HardwareCounters>) {
    (f(), Probe::Unavailable(unavailability_reason()))
}
