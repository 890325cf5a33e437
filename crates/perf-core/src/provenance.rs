//! Provenance: the environment record every results file carries (`docs/METHODS.md`), each probe that
//! could not be read stated with its reason rather than left out or guessed.

use crate::alloc::Probe;
use crate::timer::{clock_info, ClockInfo};
use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// UTC timestamp, RFC 3339, from the wall clock (used as a label, never for durations).
    pub timestamp_utc: String,
    /// `git rev-parse HEAD` in the working directory.
    pub git_commit: Probe<String>,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: Probe<bool>,
    /// The compiler that built perf-core.
    pub rustc_version: String,
    /// Cargo profile of the build (`release`, `debug`).
    pub build_profile: String,
    /// Optimisation level of the build.
    pub opt_level: String,
    /// Target features enabled at compile time (what `-C target-cpu` gave the compiler).
    pub compiled_target_features: Vec<String>,
    /// CPU model name.
    pub cpu_model: Probe<String>,
    /// SIMD features detected at run time.
    pub detected_cpu_features: Vec<String>,
    /// Logical cores available to this process.
    pub available_cores: Probe<usize>,
    /// Operating system and architecture.
    pub os: String,
    /// Architecture.
    pub arch: String,
    /// Kernel version.
    pub kernel: Probe<String>,
    /// Measured clock resolution and cost.
    pub clock: ClockInfo,
    /// 1, 5 and 15 minute load averages at the start of the run.
    pub load_average: Probe<[f64; 3]>,
    /// CPU frequency governor.
    pub cpu_governor: Probe<String>,
    /// Total memory.
    pub memory_total_bytes: Probe<u64>,
    /// The seed of the run, when it has one.
    pub seed: Option<u64>,
    /// Every probe that could not be read, with its reason.
    pub unavailable: Vec<String>,
}

impl Provenance {
    /// Collect the record now.
    pub fn collect(seed: Option<u64>) -> Self {
        let git_commit = run_command("git", &["rev-parse", "HEAD"]);
        let git_dirty = match run_command("git", &["status", "--porcelain", "--untracked-files=no"])
        {
            Probe::Available(text) => Probe::Available(!text.trim().is_empty()),
            Probe::Unavailable(reason) => Probe::Unavailable(reason),
        };
        let mut provenance = Self {
            timestamp_utc: utc_timestamp(SystemTime::now()),
            git_commit,
            git_dirty,
            rustc_version: env!("PERF_CORE_RUSTC_VERSION").to_string(),
            build_profile: env!("PERF_CORE_BUILD_PROFILE").to_string(),
            opt_level: env!("PERF_CORE_OPT_LEVEL").to_string(),
            compiled_target_features: env!("PERF_CORE_TARGET_FEATURES")
                .split(',')
                .filter(|feature| !feature.is_empty())
                .map(str::to_string)
                .collect(),
            cpu_model: cpu_model(),
            detected_cpu_features: detected_cpu_features(),
            available_cores: std::thread::available_parallelism()
                .map(|n| Probe::Available(n.get()))
                .unwrap_or_else(|e| Probe::Unavailable(format!("unavailable: {e}"))),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            clock: clock_info(),
            load_average: load_average(),
            cpu_governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            memory_total_bytes: memory_total(),
            seed,
            unavailable: Vec::new(),
        };
        provenance.unavailable = provenance.list_unavailable();
        provenance
    }

    fn list_unavailable(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let mut note = |name: &str, reason: Option<&String>| {
            if let Some(reason) = reason {
                missing.push(format!("{name}: {reason}"));
            }
        };
        note("git_commit", unavailable_reason(&self.git_commit).as_ref());
        note("git_dirty", unavailable_reason(&self.git_dirty).as_ref());
        note("cpu_model", unavailable_reason(&self.cpu_model).as_ref());
        note(
            "available_cores",
            unavailable_reason(&self.available_cores).as_ref(),
        );
        note("kernel", unavailable_reason(&self.kernel).as_ref());
        note(
            "load_average",
            unavailable_reason(&self.load_average).as_ref(),
        );
        note(
            "cpu_governor",
            unavailable_reason(&self.cpu_governor).as_ref(),
        );
        note(
            "memory_total_bytes",
            unavailable_reason(&self.memory_total_bytes).as_ref(),
        );
        if self.rustc_version.starts_with("unavailable") {
            missing.push(format!("rustc_version: {}", self.rustc_version));
        }
        missing
    }
}

fn unavailable_reason<T>(probe: &Probe<T>) -> Option<String> {
    match probe {
        Probe::Available(_) => None,
        Probe::Unavailable(reason) => Some(reason.clone()),
    }
}

fn run_command(program: &str, args: &[&str]) -> Probe<String> {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            Probe::Available(String::from_utf8_lossy(&output.stdout).trim().to_string())
        }
        Ok(output) => Probe::Unavailable(format!(
            "unavailable: `{program} {}` exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Probe::Unavailable(format!("unavailable: could not run {program}: {error}")),
    }
}

fn read_trimmed(path: &str) -> Probe<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Probe::Available(text.trim().to_string()),
        Err(error) => Probe::Unavailable(format!("unavailable: {path}: {error}")),
    }
}

fn cpu_model() -> Probe<String> {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(text) => cpu_model_from(&text).map_or_else(
            || Probe::Unavailable("unavailable: no model name in /proc/cpuinfo".into()),
            Probe::Available,
        ),
        Err(error) => Probe::Unavailable(format!("unavailable: /proc/cpuinfo: {error}")),
    }
}

/// The first processor's model name, with its family, model and stepping numbers when cpuinfo has them: a
/// virtual machine may report only a generic name ("AMD EPYC"), and the numbers tell the CPU generations apart
/// (family 25 is Zen 3/4, family 26 Zen 5; family 6 model 207 an Intel Emerald Rapids).
fn cpu_model_from(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == key).then(|| value.trim().to_string())
            })
    };
    let name = field("model name")?;
    let numbers: Vec<String> = [
        ("cpu family", "family"),
        ("model", "model"),
        ("stepping", "stepping"),
    ]
    .into_iter()
    .filter_map(|(key, label)| field(key).map(|value| format!("{label} {value}")))
    .collect();
    Some(if numbers.is_empty() {
        name
    } else {
        format!("{name} ({})", numbers.join(", "))
    })
}

/// The load averages, through [`crate::environment`] (the one reader of `/proc/loadavg`).
fn load_average() -> Probe<[f64; 3]> {
    match crate::environment::load_average() {
        Ok(load) => Probe::Available(load.as_array()),
        Err(note) => Probe::Unavailable(format!("unavailable: {note}")),
    }
}

fn memory_total() -> Probe<u64> {
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => text
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| Probe::Available(kib * 1024))
            .unwrap_or_else(|| {
                Probe::Unavailable("unavailable: no MemTotal in /proc/meminfo".into())
            }),
        Err(error) => Probe::Unavailable(format!("unavailable: /proc/meminfo: {error}")),
    }
}

/// SIMD features detected at run time on this CPU.
pub fn detected_cpu_features() -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut features = Vec::new();
        macro_rules! probe {
            ($($name:tt),*) => {
                $(if std::is_x86_feature_detected!($name) {
                    features.push($name.to_string());
                })*
            };
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512dq",
            "avx512vnni",
            "avx512bf16",
            "avxvnni"
        );
        features
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut features = Vec::new();
        if std::arch::is_aarch64_feature_detected!("neon") {
            features.push("neon".to_string());
        }
        features
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

/// Format a wall-clock time as an RFC 3339 UTC timestamp (seconds precision).
pub fn utc_timestamp(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let rest = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        (rest % 3_600) / 60,
        rest % 60
    )
}

/// A compact timestamp for file names: `20261123T041500Z`.
pub fn compact_timestamp(time: SystemTime) -> String {
    utc_timestamp(time).replace(['-', ':'], "")
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_model_carries_family_model_and_stepping() {
        let cpuinfo =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
                       model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 99\n";
        assert_eq!(
            cpu_model_from(cpuinfo).as_deref(),
            Some("AMD EPYC (family 25, model 17, stepping 1)")
        );
        assert_eq!(
            cpu_model_from("model name : Some CPU\n").as_deref(),
            Some("Some CPU")
        );
        assert_eq!(cpu_model_from("cpu family : 6\n"), None);
    }

    #[test]
    fn timestamps_are_correct_utc() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29T12:34:56Z is 951827696 seconds after the epoch.
        assert_eq!(
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_827_696)),
            "2000-02-29T12:34:56Z"
        );
        assert_eq!(
            compact_timestamp(UNIX_EPOCH + Duration::from_secs(951_827_696)),
            "20000229T123456Z"
        );
    }

    #[test]
    fn collected_provenance_is_complete_or_explained() {
        let provenance = Provenance::collect(Some(42));
        assert_eq!(provenance.seed, Some(42));
        assert!(!provenance.rustc_version.is_empty());
        assert!(provenance.clock.resolution_ns > 0.0);
        for probe_reason in &provenance.unavailable {
            assert!(probe_reason.contains("unavailable"), "{probe_reason}");
        }
        let json = serde_json::to_string(&provenance).unwrap();
        let back: Provenance = serde_json::from_str(&json).unwrap();
        assert_eq!(back, provenance);
    }
}
