//! What the history keeps of a run: its identity (commit, dirty flag, time, mode, seed), the machine's
//! fingerprint, and per claim the estimate, interval, unit, verdict, which side is better and a summary
//! of the raw samples. Built from a [`ValidationRun`], never from a live measurement.

use perf_core::alloc::Probe;
use perf_core::claim::{ClaimResult, Criterion, Direction};
use perf_core::provenance::Provenance;
use perf_core::results::ValidationRun;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Quick (reduced) or full configuration: their claims measure different workloads, so a history
/// series never mixes the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `validate --quick`.
    Quick,
    /// The full configuration.
    Full,
}

impl Mode {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Parse the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "quick" => Some(Mode::Quick),
            "full" => Some(Mode::Full),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The machine a run was measured on. Two runs are compared in absolute terms only when their
/// fingerprints are equal; see [`MachineFingerprint::id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineFingerprint {
    /// `AuthenticAMD`, `GenuineIntel`, ... derived from the model name; `unknown` when it does not say.
    pub cpu_vendor: String,
    /// CPU family number, when cpuinfo gave it.
    pub cpu_family: Option<String>,
    /// CPU model name with its family / model / stepping numbers as provenance records it.
    pub cpu_model: String,
    /// SIMD features detected at run time, sorted.
    pub cpu_features: Vec<String>,
    /// Logical cores available to the process.
    pub cores: Option<u64>,
    /// Total memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Kernel release.
    pub kernel: String,
    /// The compiler that built the suite.
    pub rustc: String,
    /// Architecture (`x86_64`, ...).
    pub arch: String,
}

impl MachineFingerprint {
    /// The fingerprint of the machine a run's provenance describes.
    pub fn from_provenance(provenance: &Provenance) -> Self {
        let cpu_model = probe_text(&provenance.cpu_model);
        let mut cpu_features = provenance.detected_cpu_features.clone();
        cpu_features.sort();
        cpu_features.dedup();
        Self {
            cpu_vendor: vendor_of(&cpu_model).to_string(),
            cpu_family: number_after(&cpu_model, "family "),
            cpu_model,
            cpu_features,
            cores: match provenance.available_cores {
                Probe::Available(cores) => u64::try_from(cores).ok(),
                Probe::Unavailable(_) => None,
            },
            memory_bytes: match provenance.memory_total_bytes {
                Probe::Available(bytes) => Some(bytes),
                Probe::Unavailable(_) => None,
            },
            kernel: probe_text(&provenance.kernel),
            rustc: provenance.rustc_version.clone(),
            arch: provenance.arch.clone(),
        }
    }

    /// A short stable id (16 hex digits, FNV-1a over every field): equal ids mean the same CPU, features,
    /// cores, memory, kernel and compiler, so absolute figures are comparable.
    pub fn id(&self) -> String {
        let canonical = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.cpu_vendor,
            self.cpu_family.as_deref().unwrap_or("-"),
            self.cpu_model,
            self.cpu_features.join(","),
            self.cores.map_or("-".into(), |c| c.to_string()),
            self.memory_bytes.map_or("-".into(), |m| m.to_string()),
            self.kernel,
            self.rustc,
            self.arch
        );
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// One line for people: model, cores, memory, kernel, compiler.
    pub fn describe(&self) -> String {
        let memory = self.memory_bytes.map_or("? GiB".to_string(), |bytes| {
            format!("{:.0} GiB", bytes as f64 / f64::from(1u32 << 30))
        });
        format!(
            "{} ({} cores, {memory}, {} {}, kernel {}, {})",
            self.cpu_model,
            self.cores.map_or("?".to_string(), |c| c.to_string()),
            self.arch,
            ["avx512f", "avx2", "avx", "sse4.2", "neon"]
                .into_iter()
                .find(|widest| self.cpu_features.iter().any(|f| f == widest))
                .unwrap_or("no SIMD"),
            self.kernel,
            self.rustc
        )
    }

    /// The differences from another fingerprint, one phrase each (empty when equal).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut differences = Vec::new();
        let mut check = |name: &str, a: String, b: String| {
            if a != b {
                differences.push(format!("{name}: {a} vs {b}"));
            }
        };
        check("cpu", self.cpu_model.clone(), other.cpu_model.clone());
        check(
            "features",
            self.cpu_features.join(","),
            other.cpu_features.join(","),
        );
        check(
            "cores",
            format!("{:?}", self.cores),
            format!("{:?}", other.cores),
        );
        check(
            "memory",
            format!("{:?}", self.memory_bytes),
            format!("{:?}", other.memory_bytes),
        );
        check("kernel", self.kernel.clone(), other.kernel.clone());
        check("rustc", self.rustc.clone(), other.rustc.clone());
        check("arch", self.arch.clone(), other.arch.clone());
        differences
    }
}

fn probe_text(probe: &Probe<String>) -> String {
    match probe {
        Probe::Available(text) => text.clone(),
        Probe::Unavailable(_) => "unknown".to_string(),
    }
}

fn vendor_of(model: &str) -> &'static str {
    let lower = model.to_ascii_lowercase();
    if lower.contains("amd") {
        "AuthenticAMD"
    } else if lower.contains("intel") {
        "GenuineIntel"
    } else if lower.contains("apple") {
        "Apple"
    } else if lower.contains("neoverse") || lower.contains("arm") {
        "ARM"
    } else {
        "unknown"
    }
}

fn number_after(text: &str, label: &str) -> Option<String> {
    let start = text.find(label)? + label.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// Which way a claim's estimate should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// A threshold claim with `AtLeast`: a speedup, an accuracy.
    Higher,
    /// A threshold claim with `AtMost`: an overhead, a latency, an error.
    Lower,
    /// An equivalence claim ("no overhead"): a move either way is a regression.
    Unchanged,
    /// A measurement with no bar: recorded and plotted, never gated.
    Unspecified,
}

impl Better {
    /// From the claim's criterion.
    pub fn from_criterion(criterion: &Criterion) -> Self {
        match criterion {
            Criterion::Threshold {
                direction: Direction::AtLeast,
                ..
            } => Better::Higher,
            Criterion::Threshold {
                direction: Direction::AtMost,
                ..
            } => Better::Lower,
            Criterion::Equivalence { .. } => Better::Unchanged,
            _ => Better::Unspecified,
        }
    }

    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::Unchanged => "unchanged",
            Better::Unspecified => "unspecified",
        }
    }

    /// Parse the stored name (unknown names read as unspecified, so they are never gated).
    pub fn parse(text: &str) -> Self {
        match text {
            "higher" => Better::Higher,
            "lower" => Better::Lower,
            "unchanged" => Better::Unchanged,
            _ => Better::Unspecified,
        }
    }
}

/// Summary of one array of raw samples found in a claim's details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    /// Number of values.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Coefficient of variation (sample standard deviation / |mean|); absent when the mean is 0.
    pub cv: Option<f64>,
}

impl SampleSummary {
    /// Summarise finite values; `None` for fewer than two.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some(Self {
            n,
            min: sorted[0],
            median,
            max: sorted[n - 1],
            mean,
            cv: (mean != 0.0).then(|| variance.sqrt() / mean.abs()),
        })
    }
}

/// What the history keeps of one claim in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Stable claim id.
    pub claim_id: String,
    /// Owning module.
    pub module: String,
    /// `PASS`, `FAIL`, ...
    pub verdict: String,
    /// Point estimate, absent when the claim was not measured (ERROR, SKIPPED).
    pub point: Option<f64>,
    /// Lower end of the interval.
    pub ci_lower: Option<f64>,
    /// Upper end of the interval.
    pub ci_upper: Option<f64>,
    /// Unit of the estimate.
    pub unit: String,
    /// Which way is better, from the criterion.
    pub better: Better,
    /// Summaries of the raw sample arrays in the claim's details, by detail key (e.g. `candidate_ns`).
    pub samples: BTreeMap<String, SampleSummary>,
}

impl ClaimRecord {
    /// From a judged claim.
    pub fn from_claim(claim: &ClaimResult) -> Self {
        let samples = claim
            .details
            .iter()
            .filter_map(|(key, value)| {
                let values: Vec<f64> = value
                    .as_array()?
                    .iter()
                    .map(serde_json::Value::as_f64)
                    .collect::<Option<_>>()?;
                SampleSummary::of(&values).map(|summary| (key.clone(), summary))
            })
            .collect();
        Self {
            claim_id: claim.id.clone(),
            module: claim.module.clone(),
            verdict: claim.verdict.to_string(),
            point: claim.estimate.as_ref().map(|e| e.point()),
            ci_lower: claim.estimate.as_ref().map(|e| e.ci_lower()),
            ci_upper: claim.estimate.as_ref().map(|e| e.ci_upper()),
            unit: claim
                .estimate
                .as_ref()
                .map_or(String::new(), |e| e.unit().to_string()),
            better: Better::from_criterion(&claim.criterion),
            samples,
        }
    }
}

/// What the history keeps of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (`<timestamp>-<commit>`), unique in a store.
    pub run_id: String,
    /// Full commit hash, when git could be read.
    pub commit: Option<String>,
    /// Uncommitted changes in the work tree, when git could be read.
    pub dirty: Option<bool>,
    /// RFC 3339 UTC start time.
    pub timestamp_utc: String,
    /// Quick or full.
    pub mode: Mode,
    /// The run's seed (as text: a u64 does not fit every database's integer).
    pub seed: String,
    /// The machine.
    pub fingerprint: MachineFingerprint,
    /// 1-minute load average at the start of the run.
    pub load_average_1m: Option<f64>,
    /// Every claim, ordered by id.
    pub claims: Vec<ClaimRecord>,
}

impl RunRecord {
    /// From an archived or fresh run.
    pub fn from_run(run: &ValidationRun) -> Self {
        let provenance = &run.provenance;
        let mut claims: Vec<ClaimRecord> = run.claims.iter().map(ClaimRecord::from_claim).collect();
        claims.sort_by(|a, b| a.claim_id.cmp(&b.claim_id));
        Self {
            run_id: run.run_id.clone(),
            commit: match &provenance.git_commit {
                Probe::Available(commit) => Some(commit.clone()),
                Probe::Unavailable(_) => None,
            },
            dirty: match provenance.git_dirty {
                Probe::Available(dirty) => Some(dirty),
                Probe::Unavailable(_) => None,
            },
            timestamp_utc: provenance.timestamp_utc.clone(),
            mode: if run.config.quick {
                Mode::Quick
            } else {
                Mode::Full
            },
            seed: run.config.seed.to_string(),
            fingerprint: MachineFingerprint::from_provenance(provenance),
            load_average_1m: match provenance.load_average {
                Probe::Available([one, _, _]) => Some(one),
                Probe::Unavailable(_) => None,
            },
            claims,
        }
    }

    /// The fingerprint's id.
    pub fn fingerprint_id(&self) -> String {
        self.fingerprint.id()
    }

    /// The claim with this id.
    pub fn claim(&self, claim_id: &str) -> Option<&ClaimRecord> {
        self.claims.iter().find(|c| c.claim_id == claim_id)
    }

    /// The commit's first ten digits with `-dirty` when the tree was dirty, `?` when unknown.
    pub fn short_commit(&self) -> String {
        let commit = self
            .commit
            .as_deref()
            .map_or("?".to_string(), |c| c.chars().take(10).collect());
        if self.dirty == Some(true) {
            format!("{commit}-dirty")
        } else {
            commit
        }
    }

    /// True when the machine was busier than `max_load_per_core` at the start (1-minute load average per
    /// available core): a run measured under contention cannot speak for the code.
    pub fn contended(&self, max_load_per_core: f64) -> bool {
        match (self.load_average_1m, self.fingerprint.cores) {
            (Some(load), Some(cores)) if cores > 0 => load / cores as f64 > max_load_per_core,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_reads_vendor_and_family() {
        let mut provenance = Provenance::collect(Some(1));
        provenance.cpu_model =
            Probe::Available("AMD EPYC (family 25, model 17, stepping 1)".into());
        let fingerprint = MachineFingerprint::from_provenance(&provenance);
        assert_eq!(fingerprint.cpu_vendor, "AuthenticAMD");
        assert_eq!(fingerprint.cpu_family.as_deref(), Some("25"));
        assert_eq!(fingerprint.id(), fingerprint.clone().id());
        let mut other = fingerprint.clone();
        other.cores = Some(64);
        assert_ne!(other.id(), fingerprint.id());
        assert_eq!(other.differences(&fingerprint).len(), 1);
    }

    #[test]
    fn samples_are_summarised() {
        let summary = SampleSummary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(summary.median, 2.5);
        assert_eq!(summary.n, 4);
        assert!(SampleSummary::of(&[1.0]).is_none());
        assert!(SampleSummary::of(&[1.0, f64::NAN]).is_none());
    }
}
