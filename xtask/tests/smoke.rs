//! Smoke tests of the validation harness: `validate --quick --module perf-core` writes a parsable
//! run, `report` re-renders it, `compare` reads two runs, and a run killed mid-way leaves the
//! earlier runs and the `latest` pointer intact.

use perf_core::results::load_run;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torchperf-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runs_in(dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir() && !path.is_symlink())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    runs.sort();
    runs
}

#[test]
fn validate_writes_a_parsable_run_and_survives_being_killed() {
    let out = scratch_dir("smoke");
    let status = xtask()
        .args(["validate", "--quick", "--module", "perf-core", "--out"])
        .arg(&out)
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success());
    let runs = runs_in(&out);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = load_run(&runs[0].join("results.json")).unwrap();
    assert_eq!(run.schema_version, perf_core::results::SCHEMA_VERSION);
    assert!(run
        .claims
        .iter()
        .any(|c| c.id == "perf_core.known_ratio_2x"));
    assert!(run.claims.iter().all(|c| c.module == "perf-core"));
    let report = std::fs::read_to_string(runs[0].join("report.md")).unwrap();
    assert!(report.contains("perf_core.aa_self_test"));
    let html = std::fs::read_to_string(runs[0].join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("perf_core.known_ratio_2x"));
    let latest = std::fs::canonicalize(out.join("latest")).unwrap();
    assert_eq!(latest, std::fs::canonicalize(&runs[0]).unwrap());

    // `report` re-renders the archived run.
    let rendered = xtask()
        .args(["report", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(rendered.status.success());
    assert!(String::from_utf8_lossy(&rendered.stdout).contains(&run.run_id));

    // A second run killed mid-way: the first run and `latest` are untouched, no partial run appears.
    let mut child = xtask()
        .args(["validate", "--quick", "--module", "perf-core", "--out"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let runs_after = runs_in(&out);
    assert_eq!(
        runs_after, runs,
        "a killed run must not leave a run directory"
    );
    assert!(load_run(&runs[0].join("results.json")).is_ok());
    assert_eq!(std::fs::canonicalize(out.join("latest")).unwrap(), latest);

    // `compare` with a single run has nothing to compare against: a clear error, not a panic.
    let compared = xtask()
        .args(["compare", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(compared.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&compared.stderr).contains("need at least 2"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn unknown_module_and_corrupt_runs_are_clear_errors() {
    let out = scratch_dir("errors");
    let unknown = xtask()
        .args(["validate", "--module", "no-such-module", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown module"));

    let corrupt = out.join("20260101T000000Z-corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("results.json"),
        "{\"schema_version\": 1, \"claims\": [",
    )
    .unwrap();
    let report = xtask().args(["report"]).arg(&corrupt).output().unwrap();
    assert_eq!(report.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&report.stderr).contains("not valid JSON"));
    let _ = std::fs::remove_dir_all(&out);
}
