//! `cargo xtask compare` on two hand-made runs: a claim whose estimate fell well beyond the noise
//! floor is "regressed" (and fails the command with --fail-on-regression), one that did not move is
//! "unchanged", and a noisy one is "inconclusive".

use perf_core::claim::{Claim, Direction, Estimate};
use perf_core::provenance::Provenance;
use perf_core::results::{MultipleComparisons, RunConfig, ValidationRun};
use std::path::Path;
use std::process::Command;

fn run_with(run_id: &str, estimates: &[(&str, f64, f64, f64)]) -> ValidationRun {
    let claims = estimates
        .iter()
        .map(|&(id, point, lower, upper)| {
            Claim::threshold(id, "m", "speedup at least 1.5", 1.5, Direction::AtLeast)
                .judge(Estimate::new(point, lower, upper, "×", 0.95).unwrap())
        })
        .collect();
    let mut run = ValidationRun::new(
        run_id,
        Provenance::collect(Some(1)),
        RunConfig::quick(1),
        claims,
        MultipleComparisons::holm(0, 0.025),
    );
    run.elapsed_seconds = 1.0;
    run
}

fn write(dir: &Path, run: &ValidationRun) {
    let run_dir = dir.join(&run.run_id);
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(
        run_dir.join("results.json"),
        serde_json::to_string(run).unwrap(),
    )
    .unwrap();
}

#[test]
fn compare_calls_regressions_and_controls_the_family() {
    let dir = std::env::temp_dir().join(format!("torchperf-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let before = run_with(
        "20260101T000000Z-a",
        &[
            ("m.fell", 3.0, 2.9, 3.1),
            ("m.steady", 2.0, 1.98, 2.02),
            ("m.noisy", 2.0, 1.0, 4.0),
        ],
    );
    let after = run_with(
        "20260102T000000Z-b",
        &[
            ("m.fell", 2.0, 1.95, 2.05),
            ("m.steady", 2.01, 1.99, 2.03),
            ("m.noisy", 1.8, 0.9, 3.6),
        ],
    );
    write(&dir, &before);
    write(&dir, &after);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["compare", "--fail-on-regression", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.contains(&format!("`{id}`")))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("m.fell").ends_with("regressed |"), "{text}");
    assert!(line("m.steady").ends_with("unchanged |"), "{text}");
    assert!(line("m.noisy").ends_with("inconclusive |"), "{text}");
    assert!(text.contains("Holm"));
    assert_eq!(
        output.status.code(),
        Some(1),
        "a regression with --fail-on-regression exits 1"
    );

    let without_flag = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["compare", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(without_flag.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
