//! Synthetic runs for the crate's tests: a real provenance record with the commit, time and machine set
//! by the test, and threshold claims with the given estimates.

use perf_core::alloc::Probe;
use perf_core::claim::{Claim, Direction, Estimate};
use perf_core::provenance::Provenance;
use perf_core::results::{MultipleComparisons, RunConfig, ValidationRun};
use std::sync::OnceLock;

fn base_provenance() -> Provenance {
    static PROVENANCE: OnceLock<Provenance> = OnceLock::new();
    PROVENANCE
        .get_or_init(|| {
            let mut provenance = Provenance::collect(Some(1));
            provenance.cpu_model =
                Probe::Available("AMD EPYC (family 25, model 17, stepping 1)".into());
            provenance.available_cores = Probe::Available(2);
            provenance.load_average = Probe::Available([0.5, 0.5, 0.5]);
            provenance
        })
        .clone()
}

/// A run on the fixture machine (`cpu` renames the CPU, making another machine).
pub(crate) fn run(
    run_id: &str,
    commit: &str,
    minute: u32,
    cpu: Option<&str>,
    claims: &[(&str, f64, Direction)],
) -> ValidationRun {
    let mut provenance = base_provenance();
    provenance.git_commit = Probe::Available(commit.to_string());
    provenance.git_dirty = Probe::Available(false);
    provenance.timestamp_utc = format!(
        "2026-12-{:02}T{:02}:{:02}:00Z",
        1 + minute / 1440,
        (minute / 60) % 24,
        minute % 60
    );
    if let Some(cpu) = cpu {
        provenance.cpu_model = Probe::Available(cpu.to_string());
    }
    let claims = claims
        .iter()
        .map(|(id, point, direction)| {
            let claim = Claim::threshold(id, "m", "a claim", 1.0, *direction);
            let half_width = point.abs() * 0.01;
            claim
                .judge(
                    Estimate::new(*point, point - half_width, point + half_width, "×", 0.95)
                        .unwrap(),
                )
                .with_detail("candidate_ns", [1.0, 2.0, 3.0])
        })
        .collect();
    let mut run = ValidationRun::new(
        run_id,
        provenance,
        RunConfig::quick(7),
        claims,
        MultipleComparisons::holm(0, 0.025),
    );
    run.elapsed_seconds = 1.0;
    run
}

/// A scratch directory under the system temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(pub(crate) std::path::PathBuf);

impl ScratchDir {
    pub(crate) fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "torchperf-history-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
