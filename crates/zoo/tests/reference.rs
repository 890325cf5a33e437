//! End-to-end checks of `train_or_load` on the embedded digits with short training (debug builds stay fast):
//! the report carries n and an interval, the cache returns the same model, and a different seed changes it.

use zoo::{
    default_train_config, load_cached, train_or_load, train_or_load_with, HeldOutMetric,
    ReferenceModel, TrainConfig, TrainedWeights, WeightCache, ZooConfig,
};

fn short(model: ReferenceModel) -> TrainConfig {
    TrainConfig {
        epochs: 2,
        ..default_train_config(model, 0)
    }
}

fn scratch_cache(name: &str) -> WeightCache {
    let dir = std::env::temp_dir().join(format!("torchperf-zoo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    WeightCache::new(dir)
}

#[test]
fn digits_mlp_reports_accuracy_with_interval_and_caches() {
    let cache = scratch_cache("digits-mlp");
    let config = ZooConfig {
        cache: Some(cache.clone()),
        ..ZooConfig::default()
    };
    let train_config = short(ReferenceModel::DigitsMlp);
    let first = train_or_load_with(ReferenceModel::DigitsMlp, &config, &train_config).unwrap();
    assert!(!first.report.from_cache);
    assert_eq!(first.report.dataset.origin, datasets::DataOrigin::Real);
    let HeldOutMetric::Accuracy(accuracy) = first.report.metric.clone() else {
        panic!("digits MLP reports accuracy, got {:?}", first.report.metric);
    };
    assert_eq!(accuracy.n, 451);
    assert_eq!(first.test.len(), 451);
    assert!(accuracy.ci_lower <= accuracy.point && accuracy.point <= accuracy.ci_upper);
    // Two epochs already beat chance (10%) by far.
    assert!(accuracy.point > 0.5, "{accuracy}");

    let second = train_or_load_with(ReferenceModel::DigitsMlp, &config, &train_config).unwrap();
    assert!(second.report.from_cache);
    assert_eq!(second.report.metric, first.report.metric);
    assert_eq!(second.report.cache_key, first.report.cache_key);
    let (TrainedWeights::Mlp(first_mlp), TrainedWeights::Mlp(second_mlp)) =
        (&first.weights, &second.weights)
    else {
        panic!("digits MLP weights are an Mlp");
    };
    assert_eq!(first_mlp, second_mlp);

    let other_seed = TrainConfig {
        seed: 1,
        ..train_config
    };
    let third = train_or_load_with(ReferenceModel::DigitsMlp, &config, &other_seed).unwrap();
    assert!(!third.report.from_cache);
    assert_ne!(third.report.cache_key, first.report.cache_key);
    let _ = std::fs::remove_dir_all(cache.dir());
}

#[test]
fn digits_autoencoder_reports_auc_and_thresholded_accuracy() {
    let config = ZooConfig {
        cache: None,
        ..ZooConfig::default()
    };
    let trained = train_or_load_with(
        ReferenceModel::DigitsAutoencoder,
        &config,
        &short(ReferenceModel::DigitsAutoencoder),
    )
    .unwrap();
    let HeldOutMetric::AnomalyDetection {
        roc_auc,
        accuracy_at_threshold,
        n_normal,
        n_anomalous,
        ..
    } = trained.report.metric
    else {
        panic!("autoencoder reports anomaly detection");
    };
    assert_eq!(n_normal + n_anomalous, 451);
    assert_eq!(accuracy_at_threshold.n, 451);
    assert!((0.0..=1.0).contains(&roc_auc));
    let headline = trained.report.headline.expect("AUC headline");
    assert_eq!(headline.point, roc_auc);
    assert_eq!(headline.n, 451);
    assert!(0.0 <= headline.ci_lower && headline.ci_lower <= roc_auc);
    assert!(roc_auc <= headline.ci_upper && headline.ci_upper <= 1.0);
}

#[test]
fn load_cached_never_trains_and_finds_what_train_or_load_stored() {
    let cache = scratch_cache("load-cached");
    let config = ZooConfig {
        cache: Some(cache.clone()),
        ..ZooConfig::default()
    };
    let model = ReferenceModel::DigitsMlp;
    assert!(load_cached(model, &config).unwrap().is_none());
    let no_cache = ZooConfig {
        cache: None,
        ..ZooConfig::default()
    };
    assert!(load_cached(model, &no_cache).unwrap().is_none());
    let trained = train_or_load(model, &config).unwrap();
    assert!(!trained.report.from_cache);
    let loaded = load_cached(model, &config)
        .unwrap()
        .expect("stored by train_or_load");
    assert!(loaded.report.from_cache);
    assert_eq!(loaded.report.metric, trained.report.metric);
    // The log of the training run travels with the weights, with its CPU time and load where /proc has them.
    assert_eq!(loaded.report.training, trained.report.training);
    let headline = loaded.report.headline.expect("accuracy headline");
    assert_eq!(headline.n, 451);
    assert!(headline.ci_lower <= headline.point && headline.point <= headline.ci_upper);
    let _ = std::fs::remove_dir_all(cache.dir());
}
