//! What a long job (a model's training run, say) records about its own cost and the machine it ran on: the CPU
//! seconds the process took over an interval and the load average at its end, read through this module's
//! `/proc` readers so that no other crate parses `/proc` itself.

use super::procfs::{load_average, process_stat, CLOCK_TICKS_PER_SECOND};

/// The process's CPU time (user + system, all threads, children not included) at one moment, in clock ticks
/// of `/proc/self/stat`.
///
/// Ticks are kept as whole numbers until [`ProcessCpuTime::seconds_since`] divides their difference once by
/// [`CLOCK_TICKS_PER_SECOND`] (100, the value of `USER_HZ` on every Linux architecture Rust targets), so the
/// seconds are exactly the double nearest to the decimal figure and survive a JSON round trip unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCpuTime {
    /// User plus system clock ticks of the whole process.
    pub ticks: u64,
}

impl ProcessCpuTime {
    /// The process's CPU time now, from `/proc/self/stat`.
    ///
    /// # Errors
    /// A note naming the file and why it could not be read or understood (no `/proc`: a container, another OS).
    pub fn now() -> Result<Self, String> {
        process_stat().map(|stat| ProcessCpuTime {
            ticks: stat.cpu_ticks(),
        })
    }

    /// CPU seconds the process took between `earlier` and this reading; zero if `earlier` is the later one.
    pub fn seconds_since(&self, earlier: &ProcessCpuTime) -> f64 {
        self.ticks.saturating_sub(earlier.ticks) as f64 / CLOCK_TICKS_PER_SECOND
    }
}

/// The one-minute load average now (`/proc/loadavg`): how busy the machine was.
///
/// # Errors
/// As [`load_average`].
pub fn one_minute_load_average() -> Result<f64, String> {
    load_average().map(|load| load.one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_one_division_of_whole_ticks() {
        let earlier = ProcessCpuTime { ticks: 1_234 };
        let later = ProcessCpuTime { ticks: 1_567 };
        assert_eq!(later.seconds_since(&earlier), 3.33);
        // A reversed pair is zero, never negative.
        assert_eq!(earlier.seconds_since(&later), 0.0);
    }

    #[test]
    fn readings_where_proc_exists_are_ordered() {
        // Without /proc both readers return a note instead; there is nothing to compare then.
        let (Ok(first), Ok(second)) = (ProcessCpuTime::now(), ProcessCpuTime::now()) else {
            return;
        };
        assert!(first.ticks <= second.ticks);
        if let Ok(load) = one_minute_load_average() {
            assert!(load >= 0.0 && load.is_finite());
        }
    }
}
