//! The keyword-spotting model on the installed Free Spoken Digit Dataset, with a few optimizer steps only (the
//! trained accuracy is measured by `cargo xtask validate` and the `train_all` example, not here). What is checked
//! is the split `train_or_load` evaluates on: the conventional one holds out recordings 0–4 of every speaker and
//! digit. The MFCC front end runs over all 3,000 clips, about a minute in a debug build, so the unseen-speaker
//! split is checked on a subset of clips in the datasets crate's tests instead.
//!
//! Skipped with a printed reason when FSDD is not installed (see `TORCHPERF_FSDD_DIR`), a failure when
//! `TORCHPERF_REQUIRE_DATA=1`.

use zoo::{
    default_train_config, train_or_load_with, HeldOutMetric, ReferenceModel, TrainConfig,
    TrainedModel, ZooConfig, ZooError,
};

fn data_required() -> bool {
    std::env::var("TORCHPERF_REQUIRE_DATA").is_ok_and(|value| value == "1")
}

/// Trains `model` for a few steps without the cache, or returns `None` after printing why it was skipped.
fn few_steps(model: ReferenceModel) -> Option<TrainedModel> {
    let config = ZooConfig {
        cache: None,
        ..ZooConfig::default()
    };
    let train_config = TrainConfig {
        max_steps: Some(5),
        ..default_train_config(model, 0)
    };
    match train_or_load_with(model, &config, &train_config) {
        Ok(trained) => Some(trained),
        Err(ZooError::Data(error)) if error.is_not_found() && !data_required() => {
            eprintln!(
                "skipped {}: {error} (set TORCHPERF_REQUIRE_DATA=1 to make this a failure)",
                model.name()
            );
            None
        }
        Err(error) => panic!("{}: {error}", model.name()),
    }
}

fn accuracy_n(trained: &TrainedModel) -> usize {
    let HeldOutMetric::Accuracy(accuracy) = &trained.report.metric else {
        panic!(
            "a keyword spotter reports accuracy, got {}",
            trained.report.metric
        );
    };
    assert!(accuracy.ci_lower <= accuracy.point && accuracy.point <= accuracy.ci_upper);
    let headline = trained
        .report
        .headline
        .as_ref()
        .expect("accuracy has a headline estimate");
    assert_eq!(headline.n, accuracy.n);
    assert_eq!(headline.point, accuracy.point);
    accuracy.n
}

#[test]
fn keyword_spotter_uses_the_conventional_fsdd_split() {
    let Some(trained) = few_steps(ReferenceModel::KwsDsCnn) else {
        return;
    };
    // 6 speakers × 10 digits × recordings 0–4 are the test set; the other 45 recordings of each train.
    assert_eq!(accuracy_n(&trained), 300);
    assert_eq!(trained.report.n_train, 2700);
    assert_eq!(trained.report.training.steps, 5);
    assert_eq!(trained.test.n_features(), 49 * 10);
}
