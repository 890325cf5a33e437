//! Measuring code that can fail. A kernel that returns an error inside a timed closure must not be
//! timed as if it were fast: [`try_measure`] and [`try_compare`] take closures returning `Result`,
//! keep the first error, and turn the whole measurement into [`PerfError::WorkloadFailed`], so the
//! claim built on it is ERROR. The successful outputs go through `black_box` as with
//! [`crate::measure::measure`] and [`crate::compare::compare`], which these wrap.

use crate::compare::{compare, CompareConfig, Comparison};
use crate::measure::{measure, MeasureConfig, Measurement};
use crate::PerfError;
use std::cell::RefCell;
use std::fmt::Display;

/// The first failure seen by any wrapped closure.
struct FirstError(RefCell<Option<(String, String)>>);

impl FirstError {
    fn new() -> Self {
        Self(RefCell::new(None))
    }

    fn record(&self, side: &str, error: &dyn Display) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some((side.to_string(), error.to_string()));
        }
    }

    fn into_result<T>(self, measured: Result<T, PerfError>) -> Result<T, PerfError> {
        match self.0.into_inner() {
            Some((side, message)) => Err(PerfError::WorkloadFailed { side, message }),
            None => measured,
        }
    }
}

/// [`measure`] a closure that can fail.
///
/// # Errors
/// `WorkloadFailed` with the first error the closure returned (in warm-up or in a timed sample);
/// otherwise as [`measure`].
pub fn try_measure<I, O, E, F>(
    name: &str,
    config: &MeasureConfig,
    input: &I,
    mut routine: F,
) -> Result<Measurement, PerfError>
where
    F: FnMut(&I) -> Result<O, E>,
    E: Display,
{
    let first_error = FirstError::new();
    let measured = measure(name, config, input, |input| match routine(input) {
        Ok(output) => Some(output),
        Err(error) => {
            first_error.record(name, &error);
            None
        }
    });
    first_error.into_result(measured)
}

/// [`compare`] two closures that can fail.
///
/// # Errors
/// `WorkloadFailed` naming the side ("baseline" or "candidate") whose closure returned an error
/// first; otherwise as [`compare`].
pub fn try_compare<I, OA, OB, EA, EB, FA, FB>(
    config: &CompareConfig,
    input: &I,
    mut baseline: FA,
    mut candidate: FB,
) -> Result<Comparison, PerfError>
where
    FA: FnMut(&I) -> Result<OA, EA>,
    FB: FnMut(&I) -> Result<OB, EB>,
    EA: Display,
    EB: Display,
{
    let first_error = FirstError::new();
    let compared = compare(
        config,
        input,
        |input| match baseline(input) {
            Ok(output) => Some(output),
            Err(error) => {
                first_error.record("baseline", &error);
                None
            }
        },
        |input| match candidate(input) {
            Ok(output) => Some(output),
            Err(error) => {
                first_error.record("candidate", &error);
                None
            }
        },
    );
    first_error.into_result(compared)
}
