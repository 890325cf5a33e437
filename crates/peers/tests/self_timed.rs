//! The referee's self-timed path without Python: a submission that reports simulated times is scored from
//! exactly those times (perf-core's protocol and percentiles over them), its memory record is the one it
//! reports, and a failure while timed is an ERROR for it alone.

use std::cell::{Cell, RefCell};

use datasets::DataOrigin;
use ndarray::{Array2, ArrayView2};
use olympics::referee::{referee_self_timed, MemoryRecord, SelfTimedSubmission};
use olympics::{
    DataSource, Event, EventSpec, OlympicsError, Optimization, Outcome, RefereeConfig, Submission,
    TestSet,
};

/// Predicts the label from the first input column; reports `ns_per_query` for every timed query.
struct Simulated {
    ns_per_query: f64,
    fail_after_batches: Option<usize>,
    batches: Cell<usize>,
    loaded_queries: RefCell<Option<(usize, usize)>>,
}

impl Simulated {
    fn new(ns_per_query: f64, fail_after_batches: Option<usize>) -> Self {
        Simulated {
            ns_per_query,
            fail_after_batches,
            batches: Cell::new(0),
            loaded_queries: RefCell::new(None),
        }
    }
}

impl Submission for Simulated {
    fn name(&self) -> &str {
        "simulated"
    }
    fn optimizations(&self) -> Vec<Optimization> {
        Vec::new()
    }
    fn storage_bytes(&self) -> usize {
        1234
    }
    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        Ok(Array2::from_shape_fn((batch.nrows(), 10), |(row, col)| {
            if col == batch[[row, 0]] as usize {
                1.0
            } else {
                0.0
            }
        }))
    }
}

impl SelfTimedSubmission for Simulated {
    fn load_latency_queries(&self, queries: ArrayView2<'_, f32>) -> Result<(), OlympicsError> {
        *self.loaded_queries.borrow_mut() = Some(queries.dim());
        Ok(())
    }

    fn run_timed_queries(&self, iterations: u64) -> Result<f64, OlympicsError> {
        let batches = self.batches.get() + 1;
        self.batches.set(batches);
        if self.fail_after_batches.is_some_and(|limit| batches > limit) {
            return Err(OlympicsError::Submission {
                submission: "simulated".into(),
                reason: "peer went away".into(),
            });
        }
        Ok(self.ns_per_query * iterations as f64)
    }

    fn query_memory(&self, _query: ArrayView2<'_, f32>) -> Result<MemoryRecord, OlympicsError> {
        Ok(MemoryRecord {
            storage_bytes: 1234,
            peak_query_bytes: Some(4096),
            note: Some("simulated".into()),
        })
    }
}

fn event() -> Event {
    let labels: Vec<usize> = (0..50).map(|row| row % 10).collect();
    let features = Array2::from_shape_fn(
        (50, 64),
        |(row, col)| {
            if col == 0 {
                labels[row] as f32
            } else {
                0.5
            }
        },
    );
    Event::new(
        EventSpec::image_classification_digits(),
        TestSet::new(features, labels, 10).unwrap(),
        DataSource {
            origin: DataOrigin::Synthetic,
            name: "simulated".into(),
            description: "label in column 0".into(),
            attribution: String::new(),
        },
    )
    .unwrap()
}

fn config() -> RefereeConfig {
    let mut config = RefereeConfig::quick(9);
    config.measure.warm_up = perf_core::measure::WarmUp::Count(200);
    config.measure.samples = 80;
    config
}

#[test]
fn latency_is_computed_from_the_reported_times_alone() {
    // 50 µs per query: far above 1000 clock ticks, so every sample is one query.
    let submission = Simulated::new(50_000.0, None);
    let config = config();
    let outcome = referee_self_timed(&event(), &submission, &config);
    let card = outcome.scorecard().expect("scored");
    assert_eq!(card.latency.queries_per_sample, 1);
    assert_eq!(card.latency.n_samples, 80);
    assert!((card.latency.p50.value_ms - 0.05).abs() < 1e-12);
    assert!((card.latency.p90.value_ms - 0.05).abs() < 1e-12);
    assert_eq!(card.quality.successes, Some(50));
    assert_eq!(card.memory.peak_query_bytes, Some(4096));
    assert_eq!(
        *submission.loaded_queries.borrow(),
        Some((config.n_latency_queries, 64))
    );
}

#[test]
fn a_failure_while_timed_is_an_error_for_the_submission() {
    let submission = Simulated::new(50_000.0, Some(3));
    match referee_self_timed(&event(), &submission, &config()) {
        Outcome::Error { reason, .. } => {
            assert!(
                reason.contains("failed while timed") && reason.contains("peer went away"),
                "{reason}"
            )
        }
        Outcome::Scored(_) => panic!("a failing submission was scored"),
    }
}
