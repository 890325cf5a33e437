//! The run archive: `<out>/<timestamp>-<commit>/` written atomically (a temporary directory renamed
//! into place), never overwritten, with a `latest` pointer. `out` is `validation_results/` for the
//! workspace's own suite and `target/torchperf/<suite>/` for a user's suite by default.

use crate::error::SuiteError;
use perf_core::results::{load_run, ValidationRun};
use std::fs;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, SuiteError>;

/// Files of one run, written together.
#[derive(Debug)]
pub struct RunFiles<'a> {
    /// The run itself.
    pub run: &'a ValidationRun,
    /// Rendered Markdown report.
    pub report_markdown: String,
    /// Rendered HTML report with SVG figures.
    pub report_html: String,
}

/// `run_id`, or `run_id-2`, `-3`, ... when a run of that id is already archived in `out`.
pub fn unused_run_id(out: &Path, run_id: &str) -> String {
    let mut candidate = run_id.to_string();
    let mut suffix = 2;
    while out.join(&candidate).exists() {
        candidate = format!("{run_id}-{suffix}");
        suffix += 1;
    }
    candidate
}

/// Write a run into `out/<run_id>/` atomically and point `out/latest` at it. Returns the directory.
pub fn write_run(out: &Path, files: &RunFiles<'_>) -> Result<PathBuf> {
    fs::create_dir_all(out).map_err(|e| SuiteError::io("creating", out, e))?;
    let run_id = unused_run_id(out, &files.run.run_id);
    let staging = out.join(format!(".tmp-{run_id}-{}", std::process::id()));
    fs::create_dir_all(&staging).map_err(|e| SuiteError::io("creating", &staging, e))?;
    let json = serde_json::to_string_pretty(files.run)?;
    write_file(&staging.join("results.json"), json.as_bytes())?;
    write_file(&staging.join("report.md"), files.report_markdown.as_bytes())?;
    write_file(&staging.join("report.html"), files.report_html.as_bytes())?;
    let final_dir = out.join(&run_id);
    fs::rename(&staging, &final_dir)
        .map_err(|e| SuiteError::io("moving into place", &final_dir, e))?;
    point_latest(out, &run_id)?;
    Ok(final_dir)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(|e| SuiteError::io("creating", path, e))?;
    file.write_all(bytes)
        .map_err(|e| SuiteError::io("writing", path, e))?;
    file.sync_all()
        .map_err(|e| SuiteError::io("syncing", path, e))?;
    Ok(())
}

/// Replace `out/latest` (a symlink on Unix, a one-line file elsewhere) atomically.
fn point_latest(out: &Path, run_id: &str) -> Result<()> {
    let temporary = out.join(format!(".latest-{}", std::process::id()));
    let _ = fs::remove_file(&temporary);
    #[cfg(unix)]
    std::os::unix::fs::symlink(run_id, &temporary)
        .map_err(|e| SuiteError::io("creating the latest symlink", &temporary, e))?;
    #[cfg(not(unix))]
    fs::write(&temporary, run_id)
        .map_err(|e| SuiteError::io("writing the latest pointer", &temporary, e))?;
    fs::rename(&temporary, out.join("latest"))
        .map_err(|e| SuiteError::io("replacing the latest pointer", out.join("latest"), e))?;
    Ok(())
}

/// Run directories in `out`, oldest first (names start with a sortable timestamp).
pub fn list_runs(out: &Path) -> Result<Vec<PathBuf>> {
    if !out.exists() {
        return Ok(Vec::new());
    }
    let mut runs: Vec<PathBuf> = fs::read_dir(out)
        .map_err(|e| SuiteError::io("listing", out, e))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            path.is_dir()
                && !path.is_symlink()
                && name.chars().next().is_some_and(|c| c.is_ascii_digit())
                && path.join("results.json").exists()
        })
        .collect();
    runs.sort();
    Ok(runs)
}

/// The run at `explicit`, or the `back`-th newest in `out` (0 = newest).
pub fn resolve_run(explicit: Option<PathBuf>, out: &Path, back: usize) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let runs = list_runs(out)?;
    if runs.len() <= back {
        return Err(SuiteError::NotEnoughRuns {
            directory: out.to_path_buf(),
            have: runs.len(),
            need: back + 1,
        });
    }
    Ok(runs[runs.len() - 1 - back].clone())
}

/// Load a run from its directory or its results.json.
pub fn load(path: &Path) -> Result<ValidationRun> {
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    Ok(load_run(&file)?)
}
