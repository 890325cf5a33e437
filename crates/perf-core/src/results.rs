//! The results file of a validation run (`results.json`): its versioned schema and a loader that
//! refuses corrupt or unknown-version files with a typed error. Documented in `docs/results-schema.md`.
//!
//! perf-core only reads results files; writing them (atomically) is xtask's job.

use crate::claim::{ClaimResult, Verdict};
use crate::error::PerfError;
use crate::provenance::Provenance;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The schema version this build writes. Version 2 added the INCONCLUSIVE and SKIPPED verdicts and
/// the per-claim environment record; every field it added is optional, so version 1 files read as
/// they are.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema version this build reads.
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

/// How the run was configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Reduced configuration for a first look and CI.
    pub quick: bool,
    /// Seed for every random input.
    pub seed: u64,
    /// Modules requested (empty = all).
    pub modules: Vec<String>,
    /// Thread count requested, if any.
    pub threads: Option<usize>,
    /// Data directory given, if any.
    pub data_dir: Option<String>,
}

/// Whether a module ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStatus {
    /// Module name.
    pub name: String,
    /// `ran`, `error` or `not_built`.
    pub status: String,
    /// Why, when it did not simply run.
    pub reason: Option<String>,
    /// Wall time the module took, in seconds (monotonic clock).
    pub elapsed_seconds: f64,
    /// The machine while the module ran (schema 2), as the suite's monitor recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<crate::environment::EnvironmentRecord>,
}

/// One validation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRun {
    /// Always [`SCHEMA_VERSION`] for files this build writes.
    pub schema_version: u32,
    /// `<timestamp>-<commit>`, also the run's directory name.
    pub run_id: String,
    /// Where and how the run was made.
    pub provenance: Provenance,
    /// The configuration.
    pub config: RunConfig,
    /// Every judged claim.
    pub claims: Vec<ClaimResult>,
    /// Every module's status.
    pub modules: Vec<ModuleStatus>,
    /// Size of the Holm family and its level.
    pub multiple_comparisons: MultipleComparisons,
    /// Wall time of the whole run, in seconds.
    pub elapsed_seconds: f64,
}

/// How multiple comparisons were controlled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultipleComparisons {
    /// Method name.
    pub method: String,
    /// Claims in the family (those with a p-value).
    pub family_size: usize,
    /// One-sided level each adjusted p-value is compared with.
    pub alpha: f64,
}

impl RunConfig {
    /// A quick run of every module with this seed, the default thread count and no data directory.
    pub fn quick(seed: u64) -> Self {
        Self {
            quick: true,
            seed,
            modules: Vec::new(),
            threads: None,
            data_dir: None,
        }
    }
}

impl MultipleComparisons {
    /// Holm's step-down over `family_size` claims, each adjusted p-value compared with `alpha`.
    pub fn holm(family_size: usize, alpha: f64) -> Self {
        Self {
            method: "holm".into(),
            family_size,
            alpha,
        }
    }
}

impl ValidationRun {
    /// A run at this build's schema with its judged claims and how they were corrected; module
    /// statuses start empty and the elapsed time at zero, for the caller to fill in.
    pub fn new(
        run_id: impl Into<String>,
        provenance: Provenance,
        config: RunConfig,
        claims: Vec<ClaimResult>,
        multiple_comparisons: MultipleComparisons,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.into(),
            provenance,
            config,
            claims,
            modules: Vec::new(),
            multiple_comparisons,
            elapsed_seconds: 0.0,
        }
    }

    /// Counts of each verdict.
    pub fn verdict_counts(&self) -> [(Verdict, usize); 6] {
        Verdict::ALL.map(|verdict| {
            let count = self
                .claims
                .iter()
                .filter(|claim| claim.verdict == verdict)
                .count();
            (verdict, count)
        })
    }
}

/// Parse a results file's text; `origin` names it in errors.
///
/// # Errors
/// `ResultsFormat` when the text is not JSON, has no or an unknown `schema_version`, or does not
/// match the schema.
pub fn parse_run(text: &str, origin: &str) -> Result<ValidationRun, PerfError> {
    let format_error = |reason: String| PerfError::ResultsFormat {
        path: origin.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format_error(format!("not valid JSON: {e}")))?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format_error("no numeric schema_version field".into()))?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(format_error(format!(
            "schema_version {version} is newer than this build reads ({OLDEST_READABLE_SCHEMA}..={SCHEMA_VERSION}); \
             update TorchPerf to read it"
        )));
    }
    if version < u64::from(OLDEST_READABLE_SCHEMA) {
        return Err(format_error(format!(
            "schema_version {version} is not supported (this build reads {OLDEST_READABLE_SCHEMA}..={SCHEMA_VERSION})"
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| format_error(format!("does not match schema {SCHEMA_VERSION}: {e}")))
}

/// Read and parse a results file.
///
/// # Errors
/// `Io` when it cannot be read, otherwise as [`parse_run`].
pub fn load_run(path: &Path) -> Result<ValidationRun, PerfError> {
    let text = std::fs::read_to_string(path).map_err(|source| PerfError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_run(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::{Claim, Direction, Estimate};

    fn sample_run() -> ValidationRun {
        let claim = Claim::threshold("m.c", "m", "fast", 2.0, Direction::AtLeast);
        ValidationRun::new(
            "20261123T000000Z-abc",
            Provenance::collect(Some(1)),
            RunConfig::quick(1),
            vec![claim.judge(Estimate::new(3.0, 2.5, 3.5, "×", 0.95).unwrap())],
            MultipleComparisons::holm(0, 0.025),
        )
    }

    #[test]
    fn round_trips() {
        let run = sample_run();
        let text = serde_json::to_string_pretty(&run).unwrap();
        assert_eq!(parse_run(&text, "mem").unwrap(), run);
    }

    #[test]
    fn corrupt_and_old_files_are_typed_errors() {
        let run = sample_run();
        let text = serde_json::to_string(&run).unwrap();
        let truncated = &text[..text.len() / 2];
        assert!(matches!(
            parse_run(truncated, "t"),
            Err(PerfError::ResultsFormat { .. })
        ));
        let current = format!("\"schema_version\":{SCHEMA_VERSION}");
        let old = text.replacen(&current, "\"schema_version\":0", 1);
        let error = parse_run(&old, "old").unwrap_err().to_string();
        assert!(
            error.contains("schema_version 0 is not supported"),
            "{error}"
        );
        let future = text.replacen(&current, "\"schema_version\":99", 1);
        let error = parse_run(&future, "future").unwrap_err().to_string();
        assert!(error.contains("newer than this build reads"), "{error}");
        // Version 1 (before INCONCLUSIVE / SKIPPED and the environment record) still reads.
        let version_one = text.replacen(&current, "\"schema_version\":1", 1);
        assert!(parse_run(&version_one, "v1").is_ok());
        assert!(parse_run("{}", "empty").is_err());
        assert!(parse_run("{\"schema_version\":1}", "bare").is_err());
        assert!(matches!(
            load_run(Path::new("/nonexistent/results.json")),
            Err(PerfError::Io { .. })
        ));
    }
}
