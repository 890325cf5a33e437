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

use crate::claim::{ClaimResult, Verdict};
use crate::error::PerfError;
use crate::measure::{measure, MeasureConfig, WarmUp};
use crate::workloads::known_work;
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Clock ticks per second of the CPU times in `/proc/stat` and `/proc/self/stat` (`USER_HZ`): 100 on
/// every Linux architecture Rust targets. The monitor itself never needs it (it divides ticks by
/// ticks); it is here for callers that turn process ticks into seconds.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

const PROC_STAT: &str = "/proc/stat";
const PROC_LOADAVG: &str = "/proc/loadavg";
const PROC_SELF_STAT: &str = "/proc/self/stat";
const PROC_SELF_TASKS: &str = "/proc/self/task";
const SYS_CPU: &str = "/sys/devices/system/cpu";

// ---------------------------------------------------------------------------------------------
// Parsers (text in, typed value or `InvalidInput` out).
// ---------------------------------------------------------------------------------------------

/// CPU time counters of one `cpu` line of `/proc/stat`, in clock ticks. Guest time is already
/// included in `user` and `nice` by the kernel, so it is not counted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuTicks {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while waiting for I/O.
    pub iowait: u64,
    /// Servicing interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Taken by the hypervisor for other virtual machines.
    pub steal: u64,
}

impl CpuTicks {
    /// All ticks: busy, idle, iowait and steal.
    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait + self.steal
    }

    /// Ticks some process (or the kernel on its behalf) ran: user, nice, system, irq, softirq.
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }

    /// The counters accumulated since `earlier`, field by field. A counter that went backwards
    /// (iowait does on some kernels) contributes zero rather than wrapping.
    pub fn since(&self, earlier: &CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// What the monitor uses of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcStat {
    /// The aggregate `cpu` line (all CPUs).
    pub all_cpus: CpuTicks,
    /// Number of `cpuN` lines: the logical CPUs the kernel accounts for.
    pub cpu_count: usize,
    /// `procs_running`: tasks running or runnable right now, on the whole machine.
    pub procs_running: Option<u64>,
    /// `procs_blocked`: tasks blocked on I/O right now.
    pub procs_blocked: Option<u64>,
}

fn malformed(file: &str, why: impl std::fmt::Display) -> PerfError {
    PerfError::InvalidInput(format!("malformed {file}: {why}"))
}

/// Parse `/proc/stat`.
///
/// # Errors
/// `InvalidInput` when there is no aggregate `cpu` line, when it has fewer than the eight counters
/// up to `steal` (Linux ≥ 2.6.11 has them), or when a counter is not a whole number.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, PerfError> {
    let mut all_cpus = None;
    let mut cpu_count = 0usize;
    let mut procs_running = None;
    let mut procs_blocked = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        match key {
            "cpu" => {
                let counters = fields
                    .take(8)
                    .map(|field| field.parse::<u64>())
                    .collect::<Result<Vec<u64>, _>>()
                    .map_err(|e| malformed(PROC_STAT, format!("cpu line `{line}`: {e}")))?;
                let [user, nice, system, idle, iowait, irq, softirq, steal] = counters[..] else {
                    return Err(malformed(
                        PROC_STAT,
                        format!("cpu line `{line}` has {} counters, need 8", counters.len()),
                    ));
                };
                all_cpus = Some(CpuTicks {
                    user,
                    nice,
                    system,
                    idle,
                    iowait,
                    irq,
                    softirq,
                    steal,
                });
            }
            "procs_running" => procs_running = fields.next().and_then(|v| v.parse().ok()),
            "procs_blocked" => procs_blocked = fields.next().and_then(|v| v.parse().ok()),
            other => {
                let is_cpu_line = other
                    .strip_prefix("cpu")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if is_cpu_line {
                    cpu_count += 1;
                }
            }
        }
    }
    let all_cpus = all_cpus.ok_or_else(|| malformed(PROC_STAT, "no aggregate `cpu` line"))?;
    Ok(ProcStat {
        all_cpus,
        cpu_count,
        procs_running,
        procs_blocked,
    })
}

/// The load averages and the scheduler's entity counts of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    /// One-minute load average.
    pub one: f64,
    /// Five-minute load average.
    pub five: f64,
    /// Fifteen-minute load average.
    pub fifteen: f64,
    /// Currently runnable scheduling entities (the numerator of the fourth field).
    pub runnable: Option<u64>,
    /// Existing scheduling entities (the denominator of the fourth field).
    pub entities: Option<u64>,
}

impl LoadAverage {
    /// The three load averages as an array (one, five, fifteen minutes).
    pub fn as_array(&self) -> [f64; 3] {
        [self.one, self.five, self.fifteen]
    }
}

/// Parse `/proc/loadavg`: `0.52 0.58 0.59 2/345 12345`.
///
/// # Errors
/// `InvalidInput` unless the first three fields are finite, non-negative numbers. A malformed
/// fourth field leaves `runnable` and `entities` empty.
pub fn parse_loadavg(text: &str) -> Result<LoadAverage, PerfError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let average = |index: usize| -> Result<f64, PerfError> {
        let field = fields.get(index).ok_or_else(|| {
            malformed(
                PROC_LOADAVG,
                format!("`{}`: missing field {index}", text.trim()),
            )
        })?;
        match field.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
            _ => Err(malformed(
                PROC_LOADAVG,
                format!("`{}`: field {index} is `{field}`", text.trim()),
            )),
        }
    };
    let (one, five, fifteen) = (average(0)?, average(1)?, average(2)?);
    let counts = fields
        .get(3)
        .and_then(|field| field.split_once('/'))
        .and_then(|(runnable, entities)| Some((runnable.parse().ok()?, entities.parse().ok()?)));
    Ok(LoadAverage {
        one,
        five,
        fifteen,
        runnable: counts.map(|(runnable, _)| runnable),
        entities: counts.map(|(_, entities)| entities),
    })
}

/// What the monitor uses of `/proc/<pid>/stat` (or of one thread's `/proc/<pid>/task/<tid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStat {
    /// Scheduler state: `R` running or runnable, `S` sleeping, `D` disk sleep, ...
    pub state: char,
    /// User-mode CPU time of all its threads, in clock ticks (children not included).
    pub user_ticks: u64,
    /// Kernel-mode CPU time of all its threads, in clock ticks.
    pub system_ticks: u64,
}

impl ProcessStat {
    /// User plus system ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.user_ticks + self.system_ticks
    }
}

/// Parse `/proc/<pid>/stat`. The command name (field 2) is parenthesized and may itself hold spaces
/// and parentheses, so fields are counted from the last `)`.
///
/// # Errors
/// `InvalidInput` when there is no `)`, or the state, utime (field 14) or stime (field 15) is missing
/// or not a number.
pub fn parse_process_stat(text: &str) -> Result<ProcessStat, PerfError> {
    let file = "/proc/<pid>/stat";
    let close = text
        .rfind(')')
        .ok_or_else(|| malformed(file, "no `)` closing the command name"))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Field 3 (state) is the first after the name; utime and stime are fields 14 and 15.
    let state = fields
        .first()
        .and_then(|field| field.chars().next())
        .ok_or_else(|| malformed(file, "no state field"))?;
    let ticks = |index: usize, name: &str| -> Result<u64, PerfError> {
        fields
            .get(index)
            .ok_or_else(|| malformed(file, format!("no {name} field")))?
            .parse::<u64>()
            .map_err(|e| malformed(file, format!("{name}: {e}")))
    };
    Ok(ProcessStat {
        state,
        user_ticks: ticks(11, "utime")?,
        system_ticks: ticks(12, "stime")?,
    })
}

/// Parse a `cpufreq/scaling_cur_freq` file: a frequency in kHz.
///
/// # Errors
/// `InvalidInput` unless the text is one positive whole number.
pub fn parse_frequency_khz(text: &str) -> Result<u64, PerfError> {
    match text.trim().parse::<u64>() {
        Ok(khz) if khz > 0 => Ok(khz),
        _ => Err(malformed(
            "cpufreq/scaling_cur_freq",
            format!("`{}` is not a positive frequency in kHz", text.trim()),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Point-in-time readers. Each returns the value or a note naming the file and the reason.
// ---------------------------------------------------------------------------------------------

fn read_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn read_parsed<T>(path: &str, parse: fn(&str) -> Result<T, PerfError>) -> Result<T, String> {
    parse(&read_file(path)?).map_err(|e| format!("{path}: {e}"))
}

/// `/proc/loadavg` now.
///
/// # Errors
/// A note naming the file and why it could not be read or understood.
pub fn load_average() -> Result<LoadAverage, String> {
    read_parsed(PROC_LOADAVG, parse_loadavg)
}

/// `/proc/stat` now.
///
/// # Errors
/// As [`load_average`].
pub fn proc_stat() -> Result<ProcStat, String> {
    read_parsed(PROC_STAT, parse_proc_stat)
}

/// This process's CPU time and state now, from `/proc/self/stat`.
///
/// # Errors
/// As [`load_average`].
pub fn process_stat() -> Result<ProcessStat, String> {
    read_parsed(PROC_SELF_STAT, parse_process_stat)
}

/// How many of this process's threads are running or runnable now (`/proc/self/task/*/stat`).
/// Includes the calling thread.
///
/// # Errors
/// A note when the task directory cannot be listed. Threads that exit while they are being read
/// are skipped.
pub fn own_running_threads() -> Result<u64, String> {
    let entries =
        std::fs::read_dir(PROC_SELF_TASKS).map_err(|e| format!("{PROC_SELF_TASKS}: {e}"))?;
    let mut running = 0u64;
    for entry in entries.flatten() {
        let path = entry.path().join("stat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if parse_process_stat(&text).is_ok_and(|stat| stat.state == 'R') {
            running += 1;
        }
    }
    Ok(running)
}

/// Current frequencies of the CPUs that expose `cpufreq`, summarized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrequencySummary {
    /// CPUs whose frequency could be read.
    pub cpus: usize,
    /// Lowest current frequency, MHz.
    pub min_mhz: f64,
    /// Mean current frequency, MHz.
    pub mean_mhz: f64,
    /// Highest current frequency, MHz.
    pub max_mhz: f64,
}

/// Summarize frequencies given in kHz; `None` for an empty list.
pub fn summarize_frequencies(khz: &[u64]) -> Option<FrequencySummary> {
    if khz.is_empty() {
        return None;
    }
    let mhz: Vec<f64> = khz.iter().map(|&k| k as f64 / 1000.0).collect();
    Some(FrequencySummary {
        cpus: mhz.len(),
        min_mhz: mhz.iter().copied().fold(f64::INFINITY, f64::min),
        mean_mhz: mhz.iter().sum::<f64>() / mhz.len() as f64,
        max_mhz: mhz.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// `scaling_cur_freq` of every `cpuN` under `/sys/devices/system/cpu`, summarized.
///
/// # Errors
/// A note when no CPU exposes a readable frequency (common in virtual machines and containers).
pub fn cpu_frequencies() -> Result<FrequencySummary, String> {
    let entries = std::fs::read_dir(SYS_CPU).map_err(|e| format!("{SYS_CPU}: {e}"))?;
    let mut khz = Vec::new();
    let mut first_problem = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let path = entry.path().join("cpufreq/scaling_cur_freq");
        let path = path.to_string_lossy();
        match read_parsed(&path, parse_frequency_khz) {
            Ok(value) => khz.push(value),
            Err(note) => {
                first_problem.get_or_insert(note);
            }
        }
    }
    summarize_frequencies(&khz)
        .ok_or_else(|| first_problem.unwrap_or_else(|| format!("{SYS_CPU}: no cpuN directories")))
}

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

// ---------------------------------------------------------------------------------------------
// Contention.
// ---------------------------------------------------------------------------------------------

/// How strongly the record points at contention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentionVerdict {
    /// Nothing above the "suspected" thresholds (or nothing could be read: see the description).
    None,
    /// Something above a "suspected" threshold.
    Suspected,
    /// Something above a "detected" threshold.
    Detected,
}

/// Thresholds of [`EnvironmentRecord::contention`]. Each signal has a "suspected" and a "detected"
/// level; the verdict is the strongest level any signal reaches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContentionThresholds {
    /// Cores held by other processes. Default 0.10 (suspected) and 0.25 (detected): a quarter of
    /// a core taken from a claim that uses every core moves its result by more than the usual
    /// round-to-round noise on a 2-core machine, while a quiet machine's daemons take a few percent.
    pub others_cores: (f64, f64),
    /// Steal fraction of all CPU time. Default 0.02 and 0.05.
    pub steal_fraction: (f64, f64),
    /// Canary slowdown, as the larger of after/before and before/after. Default 1.10 and 1.25: the
    /// canary's own spread between two quiet timings is a few percent.
    pub canary_ratio: (f64, f64),
}

impl Default for ContentionThresholds {
    fn default() -> Self {
        Self {
            others_cores: (0.10, 0.25),
            steal_fraction: (0.02, 0.05),
            canary_ratio: (1.10, 1.25),
        }
    }
}

/// A summary of the record for a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    /// Cores held by other processes, when measured.
    pub others_cores: Option<f64>,
    /// Steal fraction, when measured.
    pub steal_fraction: Option<f64>,
    /// Canary after/before, when measured.
    pub canary_slowdown: Option<f64>,
    /// How strongly the signals point at contention.
    pub verdict: ContentionVerdict,
    /// A sentence for the report: what was seen, or that nothing was, or that nothing could be read.
    pub description: String,
}

impl Contention {
    /// Qualify a claim's result with this summary (builder style), so that a busy machine is named
    /// instead of the code being blamed:
    ///
    /// - `needs_quiet_machine` (thread scaling, or a claim that needs the other core's share of the cache)
    ///   and `Suspected` or `Detected`: a FAIL or PARTIAL becomes INCONCLUSIVE with the description
    ///   ("another process held 48% of a core during the measurement"): the measurement was of a core
    ///   the process did not have. A PASS stays PASS with the description appended (contention slows
    ///   things down, so it does not manufacture a pass of an at-least bar).
    /// - Any other claim keeps its verdict, with the description appended: its interleaved sides
    ///   shared the contention, and a claim that is not about time (an accuracy) is not moved by it.
    /// - `None`: unchanged.
    ///
    /// The summary is attached as the detail `contention` whenever the verdict is not `None`. A
    /// verdict is never raised ([`ClaimResult::weaken`]).
    pub fn qualify(&self, result: ClaimResult, needs_quiet_machine: bool) -> ClaimResult {
        if self.verdict == ContentionVerdict::None {
            return result;
        }
        let why = format!("contention: {}", self.description);
        let weaken =
            needs_quiet_machine && matches!(result.verdict, Verdict::Fail | Verdict::Partial);
        let result = if weaken {
            result.weaken(Verdict::Inconclusive, why)
        } else {
            result.annotate(why)
        };
        result.with_detail("contention", self)
    }
}

impl EnvironmentRecord {
    /// The contention summary under the default [`ContentionThresholds`].
    pub fn contention(&self) -> Contention {
        self.contention_with(&ContentionThresholds::default())
    }

    /// The contention summary under `thresholds`.
    pub fn contention_with(&self, thresholds: &ContentionThresholds) -> Contention {
        let level = |value: f64, (suspected, detected): (f64, f64)| {
            if value >= detected {
                ContentionVerdict::Detected
            } else if value >= suspected {
                ContentionVerdict::Suspected
            } else {
                ContentionVerdict::None
            }
        };
        let mut verdict = ContentionVerdict::None;
        let mut seen = Vec::new();
        let mut quiet = Vec::new();
        if let Some(cores) = self.others_cores {
            let signal = level(cores, thresholds.others_cores);
            verdict = verdict.max(signal);
            let amount = if cores < 1.0 {
                format!("{:.0}% of a core", 100.0 * cores)
            } else {
                format!("{cores:.2} cores")
            };
            if signal == ContentionVerdict::None {
                quiet.push(format!("other processes held {amount}"));
            } else if cores < 1.0 {
                seen.push(format!(
                    "another process held {amount} during the measurement"
                ));
            } else {
                seen.push(format!(
                    "other processes held {amount} during the measurement"
                ));
            }
        }
        if let Some(steal) = self.steal_fraction {
            let signal = level(steal, thresholds.steal_fraction);
            verdict = verdict.max(signal);
            let text = format!("{:.1}% of CPU time", 100.0 * steal);
            if signal == ContentionVerdict::None {
                quiet.push(format!("steal {text}"));
            } else {
                seen.push(format!("the hypervisor stole {text}"));
            }
        }
        let canary_slowdown = self.canary.map(|canary| canary.ratio);
        if let Some(ratio) = canary_slowdown.filter(|r| r.is_finite() && *r > 0.0) {
            let signal = level(ratio.max(1.0 / ratio), thresholds.canary_ratio);
            verdict = verdict.max(signal);
            if signal == ContentionVerdict::None {
                quiet.push(format!("canary {ratio:.2}×"));
            } else if ratio > 1.0 {
                seen.push(format!(
                    "the canary ran {ratio:.2}× slower after the measurement than before"
                ));
            } else {
                seen.push(format!(
                    "the canary ran {:.2}× slower before the measurement than after",
                    1.0 / ratio
                ));
            }
        }
        let description = if !seen.is_empty() {
            seen.join("; ")
        } else if !quiet.is_empty() {
            format!("no contention seen: {}", quiet.join(", "))
        } else {
            "contention unknown: no signal could be read".to_string()
        };
        Contention {
            others_cores: self.others_cores,
            steal_fraction: self.steal_fraction,
            canary_slowdown,
            verdict,
            description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 2 10 0 0\n\
        cpu0 50 2 25 500 10 1 1 5 0 0\n\
        cpu1 50 3 25 500 10 2 1 5 0 0\n\
        intr 12345 0 0\n\
        ctxt 999\n\
        procs_running 3\n\
        procs_blocked 1\n";

    #[test]
    fn proc_stat_fixture_parses() {
        let stat = parse_proc_stat(STAT).unwrap();
        assert_eq!(stat.cpu_count, 2);
        assert_eq!(stat.procs_running, Some(3));
        assert_eq!(stat.procs_blocked, Some(1));
        assert_eq!(stat.all_cpus.steal, 10);
        assert_eq!(stat.all_cpus.busy(), 100 + 5 + 50 + 3 + 2);
        assert_eq!(stat.all_cpus.total(), 160 + 1000 + 20 + 10);
    }

    #[test]
    fn malformed_proc_stat_is_an_error() {
        assert!(parse_proc_stat("").is_err());
        assert!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 3 4\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 x 4 5 6 7 8\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 -3 4 5 6 7 8\n").is_err());
        // A malformed procs_running line leaves the field empty, the rest stands.
        let stat = parse_proc_stat("cpu 1 2 3 4 5 6 7 8\nprocs_running many\n").unwrap();
        assert_eq!(stat.procs_running, None);
        assert_eq!(stat.cpu_count, 0);
    }

    #[test]
    fn loadavg_parses_and_rejects_garbage() {
        let load = parse_loadavg("0.52 0.58 1.59 2/345 12345\n").unwrap();
        assert_eq!(load.as_array(), [0.52, 0.58, 1.59]);
        assert_eq!((load.runnable, load.entities), (Some(2), Some(345)));
        let short = parse_loadavg("0.1 0.2 0.3").unwrap();
        assert_eq!(short.runnable, None);
        assert!(parse_loadavg("").is_err());
        assert!(parse_loadavg("0.1 0.2").is_err());
        assert!(parse_loadavg("0.1 nan 0.3 1/2 3").is_err());
        assert!(parse_loadavg("0.1 -0.2 0.3 1/2 3").is_err());
        assert_eq!(parse_loadavg("1 2 3 x/y 4").unwrap().runnable, None);
    }

    #[test]
    fn process_stat_counts_fields_after_the_name() {
        let line =
            "4242 (my (odd) name) R 1 4242 4242 0 -1 4194304 100 0 0 0 731 42 0 0 20 0 3 0 1000";
        let stat = parse_process_stat(line).unwrap();
        assert_eq!(stat.state, 'R');
        assert_eq!((stat.user_ticks, stat.system_ticks), (731, 42));
        assert_eq!(stat.cpu_ticks(), 773);
        assert!(parse_process_stat("4242 no parenthesis R 1 2").is_err());
        assert!(parse_process_stat("4242 (x)").is_err());
        assert!(parse_process_stat("4242 (x) S 1 2 3").is_err());
        assert!(parse_process_stat("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 a 42").is_err());
    }

    #[test]
    fn frequencies_parse_and_summarize() {
        assert_eq!(parse_frequency_khz("2400000\n").unwrap(), 2_400_000);
        assert!(parse_frequency_khz("").is_err());
        assert!(parse_frequency_khz("0").is_err());
        assert!(parse_frequency_khz("fast").is_err());
        let summary = summarize_frequencies(&[2_000_000, 3_000_000]).unwrap();
        assert_eq!(summary.cpus, 2);
        assert_eq!(
            (summary.min_mhz, summary.mean_mhz, summary.max_mhz),
            (2000.0, 2500.0, 3000.0)
        );
        assert_eq!(summarize_frequencies(&[]), None);
    }

    fn stat_with(busy_user: u64, idle: u64, steal: u64, cpus: usize) -> ProcStat {
        ProcStat {
            all_cpus: CpuTicks {
                user: busy_user,
                idle,
                steal,
                ..CpuTicks::default()
            },
            cpu_count: cpus,
            procs_running: Some(1),
            procs_blocked: None,
        }
    }

    fn process_with(ticks: u64) -> ProcessStat {
        ProcessStat {
            state: 'R',
            user_ticks: ticks,
            system_ticks: 0,
        }
    }

    #[test]
    fn cpu_usage_separates_others_from_self() {
        // 2 CPUs, 200 ticks in all = 100 ticks of wall time per CPU. Busy 150, of which ours 102.
        let start = stat_with(0, 0, 0, 2);
        let end = stat_with(150, 40, 10, 2);
        let usage = cpu_usage(
            Some(&start),
            Some(&end),
            Some(&process_with(0)),
            Some(&process_with(102)),
        );
        assert!((usage.others_cores.unwrap() - 0.48).abs() < 1e-12);
        assert!((usage.self_cores.unwrap() - 1.02).abs() < 1e-12);
        assert!((usage.steal_fraction.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(usage.iowait_fraction, Some(0.0));
        // Our ticks above the machine's busy ticks (accounting skew) give zero, never negative.
        let skewed = cpu_usage(
            Some(&start),
            Some(&end),
            Some(&process_with(0)),
            Some(&process_with(170)),
        );
        assert_eq!(skewed.others_cores, Some(0.0));
        // Missing or empty readings give no value rather than a guess.
        assert_eq!(cpu_usage(None, Some(&end), None, None), CpuUsage::default());
        assert_eq!(
            cpu_usage(Some(&start), Some(&start), None, None),
            CpuUsage::default()
        );
        let no_process = cpu_usage(Some(&start), Some(&end), None, Some(&process_with(1)));
        assert_eq!(no_process.others_cores, None);
        assert!(no_process.steal_fraction.is_some());
    }

    fn record(others: Option<f64>, steal: Option<f64>, canary: Option<f64>) -> EnvironmentRecord {
        EnvironmentRecord {
            duration_seconds: 1.0,
            logical_cpus: Some(2),
            steal_fraction: steal,
            iowait_fraction: None,
            others_cores: others,
            self_cores: None,
            load_average_start: None,
            load_average_end: None,
            run_queue: None,
            cpu_frequency_start: None,
            cpu_frequency_end: None,
            canary: canary.map(|ratio| CanaryRecord {
                before_ns: 100.0,
                after_ns: 100.0 * ratio,
                ratio,
            }),
            notes: Vec::new(),
        }
    }

    #[test]
    fn contention_names_the_cause() {
        let busy = record(Some(0.48), Some(0.0), Some(1.01)).contention();
        assert_eq!(busy.verdict, ContentionVerdict::Detected);
        assert_eq!(
            busy.description,
            "another process held 48% of a core during the measurement"
        );
        let quiet = record(Some(0.02), Some(0.0), Some(1.02)).contention();
        assert_eq!(quiet.verdict, ContentionVerdict::None);
        assert!(
            quiet.description.starts_with("no contention seen"),
            "{}",
            quiet.description
        );
        let steal = record(None, Some(0.03), None).contention();
        assert_eq!(steal.verdict, ContentionVerdict::Suspected);
        assert!(
            steal.description.contains("stole 3.0%"),
            "{}",
            steal.description
        );
        let canary = record(Some(0.0), None, Some(0.7)).contention();
        assert_eq!(canary.verdict, ContentionVerdict::Detected);
        assert!(
            canary.description.contains("before the measurement"),
            "{}",
            canary.description
        );
        let two = record(Some(1.5), None, None).contention();
        assert!(
            two.description.contains("1.50 cores"),
            "{}",
            two.description
        );
        let unknown = record(None, None, None).contention();
        assert_eq!(unknown.verdict, ContentionVerdict::None);
        assert!(unknown.description.contains("unknown"));
    }

    #[test]
    fn contention_qualifies_verdicts_without_raising_them() {
        use crate::claim::{Claim, Direction, Estimate};
        let claim = Claim::threshold("m.c", "m", "at least 1.5x", 1.5, Direction::AtLeast);
        let judged = |point: f64| {
            claim.judge(Estimate::new(point, point - 0.05, point + 0.05, "×", 0.95).unwrap())
        };
        let detected = record(Some(0.48), None, None).contention();
        let suspected = record(Some(0.15), None, None).contention();
        let quiet = record(Some(0.01), None, None).contention();
        let fail = detected.qualify(judged(1.2), true);
        assert_eq!(fail.verdict, Verdict::Inconclusive);
        assert!(fail.reason.contains("48% of a core"), "{}", fail.reason);
        assert!(fail.details.contains_key("contention"));
        let pass = detected.qualify(judged(2.0), true);
        assert_eq!(pass.verdict, Verdict::Pass);
        assert!(pass.reason.contains("contention"));
        // A claim that does not need every core keeps its verdict and names the contention.
        let kept = detected.qualify(judged(1.2), false);
        assert_eq!(kept.verdict, Verdict::Fail);
        assert!(kept.reason.contains("contention"));
        assert_eq!(
            suspected.qualify(judged(1.2), true).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(quiet.qualify(judged(1.2), true), judged(1.2));
        let error = detected.qualify(claim.error("broke"), true);
        assert_eq!(error.verdict, Verdict::Error);
    }

    #[test]
    fn run_queue_summary_subtracts_own_threads() {
        let samples = [
            RunQueueSample {
                procs_running: 4,
                own_running: Some(1),
            },
            RunQueueSample {
                procs_running: 2,
                own_running: Some(1),
            },
        ];
        let summary = summarize_run_queue(&samples).unwrap();
        assert_eq!((summary.mean, summary.max), (3.0, 4));
        assert_eq!(
            (summary.others_mean, summary.others_max),
            (Some(2.0), Some(3))
        );
        let partial = [RunQueueSample {
            procs_running: 4,
            own_running: None,
        }];
        assert_eq!(summarize_run_queue(&partial).unwrap().others_mean, None);
        assert_eq!(summarize_run_queue(&[]), None);
    }
}
