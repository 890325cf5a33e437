//! The environment monitor: the one place in the workspace that reads how busy the machine is
//! (`/proc/stat`, `/proc/loadavg`, `/proc/self/stat`, `/sys/.../cpufreq`), so that a verdict can say
//! whether the measurement behind it had the machine to itself.
//!
//! An [`EnvironmentMonitor`] is started before a claim is measured and stopped after it. It yields an
//! [`EnvironmentRecord`]: steal and iowait fractions and the CPU time other processes took (deltas of
//! `/proc/stat` and `/proc/self/stat` over the interval), the load average and the run queue
//! (`procs_running`, sampled by a background thread), the CPU frequency where `/sys` shows it, and a
//! canary (a fixed workload timed with perf-core's own protocol before and after). Every field is an
//! `Option`: a file that is missing or unreadable (a container, another OS) leaves it `None` with a
//! note saying which file and why. Nothing here panics and nothing is ever estimated in place of a
//! value that could not be read.
//!
//! [`EnvironmentRecord::contention`] summarizes the record into a [`Contention`] with a verdict
//! (none / suspected / detected) and a human reason such as "another process held 48% of a core
//! during the measurement"; the thresholds are [`ContentionThresholds`] and are documented there.
//!
//! The parsers take text, so they are tested on fixtures, malformed ones included.

mod contention;
mod job_usage;
mod procfs;
#[cfg(test)]
mod tests;

pub use contention::*;
pub use job_usage::*;
pub use procfs::*;

use crate::error::PerfError;
use crate::measure::{measure, MeasureConfig, WarmUp};
use crate::workloads::known_work;
use procfs::PROC_STAT;
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The canary.
// ---------------------------------------------------------------------------------------------

/// Steps of [`known_work`] per canary iteration: a dependent chain of multiply–adds, tens of
/// microseconds, batched by the protocol into 1 ms samples.
pub const CANARY_STEPS: u64 = 20_000;

/// The canary's protocol: 3 short warm-up batches, 9 samples of at least 1 ms (about 10 ms in all).
pub fn canary_config() -> MeasureConfig {
    MeasureConfig {
        warm_up: WarmUp::Count(0),
        max_warm_up_factor: 1,
        min_sample_time: Duration::from_millis(1),
        samples: 9,
        rounds: 1,
        steady_state_window: 3,
        ..MeasureConfig::default()
    }
}

/// Time the canary once: the median ns per iteration of [`known_work`]`(`[`CANARY_STEPS`]`)` under
/// [`canary_config`]. Single-threaded: it shows a core taken away from this thread.
///
/// # Errors
/// As [`measure`].
pub fn time_canary() -> Result<f64, PerfError> {
    let measurement = measure(
        "environment canary",
        &canary_config(),
        &CANARY_STEPS,
        |steps| known_work(*steps),
    )?;
    Ok(measurement.result.median)
}

/// The canary timed before and after the monitored interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryRecord {
    /// Median ns per canary iteration before.
    pub before_ns: f64,
    /// Median ns per canary iteration after.
    pub after_ns: f64,
    /// `after_ns / before_ns`: above 1 the machine got slower for this thread.
    pub ratio: f64,
}

// ---------------------------------------------------------------------------------------------
// The monitor.
// ---------------------------------------------------------------------------------------------

/// Knobs of the monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// How often the background thread samples the run queue; `None` samples only at start and stop
    /// (no thread).
    pub sample_interval: Option<Duration>,
    /// Whether to time the canary at start and stop (about 10 ms each).
    pub canary: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            sample_interval: Some(Duration::from_millis(200)),
            canary: true,
        }
    }
}

/// One reading of the run queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunQueueSample {
    /// `procs_running` of `/proc/stat`: runnable tasks on the whole machine.
    pub procs_running: u64,
    /// This process's runnable threads at about the same moment (`None` where unreadable).
    pub own_running: Option<u64>,
}

impl RunQueueSample {
    fn now() -> Result<Self, String> {
        let stat = proc_stat()?;
        let procs_running = stat
            .procs_running
            .ok_or_else(|| format!("{PROC_STAT}: no procs_running line"))?;
        Ok(Self {
            procs_running,
            own_running: own_running_threads().ok(),
        })
    }

    /// Runnable tasks that are not this process's threads. The two counts are read one after the
    /// other, not atomically, so this is approximate by one or two tasks.
    pub fn others_running(&self) -> Option<u64> {
        self.own_running
            .map(|own| self.procs_running.saturating_sub(own))
    }
}

/// The run queue over the interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunQueueSummary {
    /// Readings taken.
    pub samples: usize,
    /// Mean `procs_running`.
    pub mean: f64,
    /// Largest `procs_running`.
    pub max: u64,
    /// Mean runnable tasks not belonging to this process, when the own count was readable.
    pub others_mean: Option<f64>,
    /// Largest runnable count not belonging to this process.
    pub others_max: Option<u64>,
}

/// Summarize run-queue readings; `None` for none.
pub fn summarize_run_queue(samples: &[RunQueueSample]) -> Option<RunQueueSummary> {
    if samples.is_empty() {
        return None;
    }
    let count = samples.len() as f64;
    let others: Option<Vec<u64>> = samples.iter().map(RunQueueSample::others_running).collect();
    Some(RunQueueSummary {
        samples: samples.len(),
        mean: samples.iter().map(|s| s.procs_running as f64).sum::<f64>() / count,
        max: samples.iter().map(|s| s.procs_running).max().unwrap_or(0),
        others_mean: others
            .as_ref()
            .map(|values| values.iter().map(|&v| v as f64).sum::<f64>() / count),
        others_max: others
            .as_ref()
            .and_then(|values| values.iter().copied().max()),
    })
}

/// The environment over one monitored interval. Every measured field is `None` when its source
/// could not be read; `notes` then says which file and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentRecord {
    /// Length of the interval, seconds (monotonic clock).
    pub duration_seconds: f64,
    /// Logical CPUs the kernel accounts for in `/proc/stat`.
    pub logical_cpus: Option<usize>,
    /// Fraction of all CPU time the hypervisor stole over the interval.
    pub steal_fraction: Option<f64>,
    /// Fraction of all CPU time idle waiting for I/O over the interval.
    pub iowait_fraction: Option<f64>,
    /// CPU time taken by other processes over the interval, in cores: all busy CPU time minus this
    /// process's (its children count as others), divided by the interval. 0.48 is 48% of one core.
    pub others_cores: Option<f64>,
    /// CPU time this process took over the interval, in cores.
    pub self_cores: Option<f64>,
    /// `/proc/loadavg` at start.
    pub load_average_start: Option<LoadAverage>,
    /// `/proc/loadavg` at stop.
    pub load_average_end: Option<LoadAverage>,
    /// The run queue, read at start, every sample interval, and at stop.
    pub run_queue: Option<RunQueueSummary>,
    /// CPU frequency at start.
    pub cpu_frequency_start: Option<FrequencySummary>,
    /// CPU frequency at stop.
    pub cpu_frequency_end: Option<FrequencySummary>,
    /// The canary timed before and after.
    pub canary: Option<CanaryRecord>,
    /// Every probe that could not be read, with its reason.
    pub notes: Vec<String>,
}

/// CPU counters at one moment.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    stat: Option<ProcStat>,
    process: Option<ProcessStat>,
}

impl CpuSnapshot {
    fn now(notes: &mut Vec<String>) -> Self {
        Self {
            stat: proc_stat().map_err(|note| notes.push(note)).ok(),
            process: process_stat().map_err(|note| notes.push(note)).ok(),
        }
    }
}

/// The CPU-time fields derived from two snapshots of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuUsage {
    /// Steal fraction of all CPU time.
    pub steal_fraction: Option<f64>,
    /// Iowait fraction of all CPU time.
    pub iowait_fraction: Option<f64>,
    /// Cores held by other processes.
    pub others_cores: Option<f64>,
    /// Cores held by this process.
    pub self_cores: Option<f64>,
}

/// CPU usage between two readings of `/proc/stat` and of this process's stat.
///
/// The interval's length is measured in the counters themselves: all ticks of all CPUs divided by
/// the number of CPUs, so no clock rate is assumed. `None` fields mean the interval held no ticks
/// (shorter than one tick) or a reading is missing; `others_cores` is never negative (tick
/// accounting of a process and of the machine can disagree by a tick).
pub fn cpu_usage(
    stat_start: Option<&ProcStat>,
    stat_end: Option<&ProcStat>,
    process_start: Option<&ProcessStat>,
    process_end: Option<&ProcessStat>,
) -> CpuUsage {
    let (Some(start), Some(end)) = (stat_start, stat_end) else {
        return CpuUsage::default();
    };
    let delta = end.all_cpus.since(&start.all_cpus);
    let total = delta.total();
    if total == 0 || end.cpu_count == 0 {
        return CpuUsage::default();
    }
    let fraction = |ticks: u64| Some(ticks as f64 / total as f64);
    let ticks_per_cpu = total as f64 / end.cpu_count as f64;
    let self_ticks = match (process_start, process_end) {
        (Some(a), Some(b)) => Some(b.cpu_ticks().saturating_sub(a.cpu_ticks())),
        _ => None,
    };
    CpuUsage {
        steal_fraction: fraction(delta.steal),
        iowait_fraction: fraction(delta.iowait),
        others_cores: self_ticks.map(|own| delta.busy().saturating_sub(own) as f64 / ticks_per_cpu),
        self_cores: self_ticks.map(|own| own as f64 / ticks_per_cpu),
    }
}

/// A started monitor; [`EnvironmentMonitor::stop`] ends it and yields the record.
#[derive(Debug)]
pub struct EnvironmentMonitor {
    started: Instant,
    cpu_start: CpuSnapshot,
    load_average_start: Option<LoadAverage>,
    cpu_frequency_start: Option<FrequencySummary>,
    canary_before: Option<f64>,
    first_run_queue: Option<RunQueueSample>,
    sampler: Option<(mpsc::Sender<()>, JoinHandle<Vec<RunQueueSample>>)>,
    config: MonitorConfig,
    notes: Vec<String>,
}

impl EnvironmentMonitor {
    /// Start monitoring with the default configuration (run queue every 200 ms, canary on).
    pub fn start() -> Self {
        Self::start_with(MonitorConfig::default())
    }

    /// Start monitoring: time the canary, then read the counters, then start the sampler.
    pub fn start_with(config: MonitorConfig) -> Self {
        let mut notes = Vec::new();
        // The canary runs first so that its own CPU time stays outside the interval.
        let canary_before = if config.canary {
            time_canary()
                .map_err(|e| notes.push(format!("canary before: {e}")))
                .ok()
        } else {
            None
        };
        let load_average_start = load_average().map_err(|note| notes.push(note)).ok();
        let cpu_frequency_start = cpu_frequencies().map_err(|note| notes.push(note)).ok();
        let first_run_queue = RunQueueSample::now()
            .map_err(|note| notes.push(format!("run queue: {note}")))
            .ok();
        let sampler = match (config.sample_interval, first_run_queue) {
            (Some(interval), Some(_)) => spawn_sampler(interval)
                .map_err(|e| notes.push(format!("run-queue sampler thread: {e}")))
                .ok(),
            _ => None,
        };
        let cpu_start = CpuSnapshot::now(&mut notes);
        Self {
            started: Instant::now(),
            cpu_start,
            load_average_start,
            cpu_frequency_start,
            canary_before,
            first_run_queue,
            sampler,
            config,
            notes,
        }
    }

    /// Stop monitoring: read the counters, stop the sampler, time the canary, and build the record.
    pub fn stop(self) -> EnvironmentRecord {
        let mut notes = self.notes;
        let cpu_end = CpuSnapshot::now(&mut notes);
        let duration_seconds = self.started.elapsed().as_secs_f64();
        let mut run_queue: Vec<RunQueueSample> = self.first_run_queue.into_iter().collect();
        if let Some((stop, handle)) = self.sampler {
            // The sampler may already have exited (it stops when a read fails); either way it ends.
            let _ = stop.send(());
            match handle.join() {
                Ok(samples) => run_queue.extend(samples),
                Err(_) => notes.push("run-queue sampler thread panicked".into()),
            }
        }
        if self.first_run_queue.is_some() {
            match RunQueueSample::now() {
                Ok(sample) => run_queue.push(sample),
                Err(note) => notes.push(format!("run queue: {note}")),
            }
        }
        let load_average_end = load_average().ok();
        let cpu_frequency_end = cpu_frequencies().ok();
        let canary = match (self.config.canary, self.canary_before) {
            (true, Some(before_ns)) => match time_canary() {
                Ok(after_ns) if before_ns > 0.0 => Some(CanaryRecord {
                    before_ns,
                    after_ns,
                    ratio: after_ns / before_ns,
                }),
                Ok(_) => {
                    notes.push("canary: the before timing was zero".into());
                    None
                }
                Err(e) => {
                    notes.push(format!("canary after: {e}"));
                    None
                }
            },
            _ => None,
        };
        let usage = cpu_usage(
            self.cpu_start.stat.as_ref(),
            cpu_end.stat.as_ref(),
            self.cpu_start.process.as_ref(),
            cpu_end.process.as_ref(),
        );
        if usage.steal_fraction.is_none() && self.cpu_start.stat.is_some() && cpu_end.stat.is_some()
        {
            notes.push(format!(
                "{PROC_STAT}: no CPU ticks elapsed over the interval ({duration_seconds:.3} s): too short to measure"
            ));
        }
        notes.sort();
        notes.dedup();
        EnvironmentRecord {
            duration_seconds,
            logical_cpus: cpu_end.stat.map(|stat| stat.cpu_count).filter(|&n| n > 0),
            steal_fraction: usage.steal_fraction,
            iowait_fraction: usage.iowait_fraction,
            others_cores: usage.others_cores,
            self_cores: usage.self_cores,
            load_average_start: self.load_average_start,
            load_average_end,
            run_queue: summarize_run_queue(&run_queue),
            cpu_frequency_start: self.cpu_frequency_start,
            cpu_frequency_end,
            canary,
            notes,
        }
    }
}

/// Start the background thread that reads the run queue every `interval` until told to stop (or
/// until a read fails).
fn spawn_sampler(
    interval: Duration,
) -> std::io::Result<(mpsc::Sender<()>, JoinHandle<Vec<RunQueueSample>>)> {
    let (stop, stopped) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("environment-monitor".into())
        .spawn(move || {
            let mut samples = Vec::new();
            // Wait first: the start reading was taken by the caller.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                match RunQueueSample::now() {
                    Ok(sample) => samples.push(sample),
                    Err(_) => break,
                }
            }
            samples
        })?;
    Ok((stop, handle))
}

/// Run `f` under a monitor with `config` and return its output with the record.
pub fn monitored<R>(config: MonitorConfig, f: impl FnOnce() -> R) -> (R, EnvironmentRecord) {
    let monitor = EnvironmentMonitor::start_with(config);
    let output = f();
    (output, monitor.stop())
}
