//! Monotonic timing: a stopwatch, a scope guard, a closure timer, and the clock's own measured cost.
//!
//! Only [`std::time::Instant`] is used; wall-clock time can jump and is never used for durations.

use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A started monotonic stopwatch.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    start: Instant,
}

impl Stopwatch {
    /// Start timing now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Time since start, restarting the stopwatch.
    pub fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let lap = now - self.start;
        self.start = now;
        lap
    }
}

/// A guard that adds the time it was alive to a caller-owned accumulator when dropped.
///
/// ```
/// let mut spent = std::time::Duration::ZERO;
/// {
///     let _guard = perf_core::timer::ScopeTimer::new(&mut spent);
///     std::hint::black_box((0..1000u64).sum::<u64>());
/// }
/// assert!(spent > std::time::Duration::ZERO);
/// ```
#[derive(Debug)]
pub struct ScopeTimer<'a> {
    start: Instant,
    accumulator: &'a mut Duration,
}

impl<'a> ScopeTimer<'a> {
    /// Start a guard that adds its lifetime to `accumulator`.
    pub fn new(accumulator: &'a mut Duration) -> Self {
        Self {
            start: Instant::now(),
            accumulator,
        }
    }
}

impl Drop for ScopeTimer<'_> {
    fn drop(&mut self) {
        *self.accumulator += self.start.elapsed();
    }
}

/// Run `f` once and return its output with the elapsed monotonic time (the seed's `precise_timer`).
///
/// A single call shorter than about 1000 × [`ClockInfo::resolution_ns`] is dominated by the clock;
/// use [`crate::measure::measure`], which batches, for anything short.
pub fn precise_timer<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let output = black_box(f());
    (output, start.elapsed())
}

/// The clock's measured properties on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockInfo {
    /// Smallest non-zero difference observed between two consecutive `Instant::now()` reads, in ns.
    pub resolution_ns: f64,
    /// Median cost of one `Instant::now()` call, in ns (measured over batches of calls).
    pub overhead_ns: f64,
    /// Number of consecutive read pairs that returned the same instant (a coarse clock shows many).
    pub zero_steps: u64,
    /// How many read pairs the resolution probe made.
    pub probe_reads: u64,
}

impl ClockInfo {
    /// Measure the clock now (takes a few milliseconds).
    pub fn measure() -> Self {
        const PROBE_READS: u64 = 20_000;
        let mut resolution = Duration::MAX;
        let mut zero_steps = 0u64;
        for _ in 0..PROBE_READS {
            let first = Instant::now();
            let second = Instant::now();
            let step = second - first;
            if step.is_zero() {
                zero_steps += 1;
            } else if step < resolution {
                resolution = step;
            }
        }
        // The per-call cost: batches of reads, the median batch divided by its length.
        const BATCH: u32 = 1_000;
        let mut per_call: Vec<f64> = (0..31)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..BATCH {
                    black_box(Instant::now());
                }
                start.elapsed().as_nanos() as f64 / f64::from(BATCH)
            })
            .collect();
        per_call.sort_by(f64::total_cmp);
        let resolution_ns = if resolution == Duration::MAX {
            // Every pair returned the same instant: the clock is coarser than the probe; its
            // resolution is at least the time the probe took per pair.
            per_call[per_call.len() / 2].max(1.0)
        } else {
            resolution.as_nanos() as f64
        };
        Self {
            resolution_ns,
            overhead_ns: per_call[per_call.len() / 2],
            zero_steps,
            probe_reads: PROBE_READS,
        }
    }
}

/// The clock's properties, measured once per process and cached.
pub fn clock_info() -> ClockInfo {
    static INFO: OnceLock<ClockInfo> = OnceLock::new();
    *INFO.get_or_init(ClockInfo::measure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_info_is_positive_and_finite() {
        let info = clock_info();
        assert!(info.resolution_ns.is_finite() && info.resolution_ns > 0.0);
        assert!(info.overhead_ns.is_finite() && info.overhead_ns > 0.0);
    }

    #[test]
    fn stopwatch_laps_are_monotonic() {
        let mut watch = Stopwatch::start();
        let first = watch.lap();
        let second = watch.elapsed();
        assert!(first >= Duration::ZERO && second >= Duration::ZERO);
    }

    #[test]
    fn precise_timer_returns_the_output() {
        let (value, elapsed) = precise_timer(|| 6 * 7);
        assert_eq!(value, 42);
        assert!(elapsed < Duration::from_secs(60));
    }
}
