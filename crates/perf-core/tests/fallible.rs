//! An error inside a timed closure voids the measurement, and a claim judged on it is ERROR: a
//! failing kernel is never timed as if it were fast.

use perf_core::claim::{Claim, Direction, Verdict};
use perf_core::compare::CompareConfig;
use perf_core::fallible::{try_compare, try_measure};
use perf_core::measure::MeasureConfig;
use perf_core::PerfError;

fn claim() -> Claim {
    Claim::threshold(
        "t.fast",
        "t",
        "candidate at least 1.1× baseline",
        1.1,
        Direction::AtLeast,
    )
}

fn judged(result: Result<perf_core::compare::Comparison, PerfError>) -> Verdict {
    match result.and_then(|comparison| claim().judge_comparison(&comparison)) {
        Ok(result) => result.verdict,
        Err(error) => claim().error(error.to_string()).verdict,
    }
}

#[test]
fn a_failing_candidate_makes_the_claim_error() {
    let input: Vec<u64> = (0..256).collect();
    let mut calls = 0usize;
    let result = try_compare(
        &CompareConfig::quick(),
        &input,
        |v: &Vec<u64>| Ok::<u64, String>(v.iter().sum()),
        |v: &Vec<u64>| {
            calls += 1;
            // Fails once, in the middle of the measurement, and is fast otherwise.
            if calls == 50 {
                Err("kernel unavailable".to_string())
            } else {
                Ok(v.len() as u64)
            }
        },
    );
    match &result {
        Err(PerfError::WorkloadFailed { side, message }) => {
            assert_eq!(side, "candidate");
            assert_eq!(message, "kernel unavailable");
        }
        other => panic!("expected WorkloadFailed, got {other:?}"),
    }
    assert_eq!(judged(result), Verdict::Error);
}

#[test]
fn closures_that_never_fail_measure_as_usual() {
    let input: Vec<u64> = (0..256).collect();
    let result = try_compare(
        &CompareConfig::quick(),
        &input,
        |v: &Vec<u64>| Ok::<u64, String>(v.iter().sum()),
        |v: &Vec<u64>| Ok::<u64, String>(v.iter().rev().sum()),
    );
    assert!(result.is_ok(), "{result:?}");
    let measured = try_measure("sum", &MeasureConfig::quick(), &input, |v: &Vec<u64>| {
        Ok::<u64, std::fmt::Error>(v.iter().sum())
    });
    assert!(measured.is_ok());
    let failed = try_measure("sum", &MeasureConfig::quick(), &input, |_: &Vec<u64>| {
        Err::<u64, _>("broken")
    });
    assert!(matches!(failed, Err(PerfError::WorkloadFailed { .. })));
}
