//! What the referee and scenario tests share: the toy event (four features, the label the index of the
//! largest of the first three) around a test split each test generates, and a small referee protocol.

use datasets::DataOrigin;
use ndarray::Array2;
use olympics::{DataSource, Event, EventSpec, QualityMetric, QueryOrder, RefereeConfig, TestSet};

/// The toy event on `features` (`rows × 4`) and their `labels` (three classes), synthetic.
pub fn toy_event_of(features: Array2<f32>, labels: Vec<usize>) -> Event {
    let spec = EventSpec {
        name: "toy".into(),
        task: "argmax of the first three features".into(),
        input_shape: vec![4],
        input_description: "4 values".into(),
        output_width: 3,
        metric: QualityMetric::Top1Accuracy,
        target: 0.5,
        target_note: "test".into(),
        latency_limit_ms: 1000.0,
        memory_budget_bytes: 1 << 20,
        query_order: QueryOrder::Random,
        relative_target: None,
    };
    let source = DataSource {
        origin: DataOrigin::Synthetic,
        name: "toy".into(),
        description: "generated in the test".into(),
        attribution: String::new(),
    };
    Event::new(spec, TestSet::new(features, labels, 3).unwrap(), source).unwrap()
}

/// The quick protocol cut down for tests: `samples` latency samples after a 10-call warm-up, 8 queries.
pub fn small_config(seed: u64, samples: usize) -> RefereeConfig {
    let mut config = RefereeConfig::quick(seed);
    config.measure.samples = samples;
    config.measure.warm_up = perf_core::measure::WarmUp::Count(10);
    config.n_latency_queries = 8;
    config
}
