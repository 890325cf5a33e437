//! The committed reference run (schema version 1) still reads with this build's checks: every
//! estimate and every raw sample passes the constructors' validation on the way in.

use perf_core::results::load_run;
use std::path::Path;

#[test]
fn the_committed_reference_run_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../validation_results/reference/results.json");
    let run = load_run(&path).unwrap_or_else(|error| panic!("{error}"));
    assert!(run.claims.len() > 100, "{} claims", run.claims.len());
    assert!(run.claims.iter().all(|claim| claim.environment.is_none()));
}
