//! Reading the machine's state from Linux's `/proc` and `/sys`: parsers that take text (tested on
//! fixtures, malformed ones included) and the readers that feed them the live files. A file that is
//! missing or unreadable is an `Err` with a note naming it, never a guessed value.

use crate::error::PerfError;
use serde::{Deserialize, Serialize};

/// Clock ticks per second of the CPU times in `/proc/stat` and `/proc/self/stat` (`USER_HZ`): 100 on
/// every Linux architecture Rust targets. The monitor itself never needs it (it divides ticks by
/// ticks); it is here for callers that turn process ticks into seconds.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

pub(super) const PROC_STAT: &str = "/proc/stat";
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
