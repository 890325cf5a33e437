//! Trains (or loads from the weight cache) every reference model whose data is available on this machine and
//! prints each model's held-out metric with n and a 95% Wilson interval, and the time taken.
//!
//! ```text
//! cargo run -p zoo --release --example train_all            # use the cache
//! cargo run -p zoo --release --example train_all -- --retrain   # ignore and overwrite the cache
//! cargo run -p zoo --release --example train_all -- --json out.json --only digits-mlp,fashion-cnn
//! ```
//! Environment: TORCHPERF_ZOO_CACHE (cache directory), TORCHPERF_FASHION_MNIST_DIR, TORCHPERF_FSDD_DIR.

use std::time::Instant;

use anyhow::Context;
use zoo::{train_or_load, ReferenceModel, WeightCache, ZooConfig, ZooError};

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let retrain = arguments.iter().any(|argument| argument == "--retrain");
    let json_path = arguments
        .iter()
        .position(|argument| argument == "--json")
        .and_then(|index| arguments.get(index + 1))
        .cloned();
    // `--only NAME[,NAME]` restricts the run to the named models.
    let only: Option<Vec<String>> = arguments
        .iter()
        .position(|argument| argument == "--only")
        .and_then(|index| arguments.get(index + 1))
        .map(|names| names.split(',').map(str::to_string).collect());
    let mut config = ZooConfig::default();
    if retrain {
        // A fresh, empty cache directory makes every model train; it is then the cache's new content.
        let cache = WeightCache::default_location();
        let _ = std::fs::remove_dir_all(cache.dir());
        config.cache = Some(cache);
    }
    let cache_dir = config
        .cache
        .as_ref()
        .map(|cache| cache.dir().display().to_string());
    println!("weight cache: {}", cache_dir.as_deref().unwrap_or("(none)"));
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut embedded_training_seconds = 0.0;
    for model in ReferenceModel::ALL {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|name| name == model.name()))
        {
            continue;
        }
        match train_or_load(model, &config) {
            Ok(trained) => {
                let report = &trained.report;
                println!(
                    "{:<27} [{} data: {}] {}",
                    report.model, report.dataset.origin, report.dataset.name, report.metric
                );
                println!(
                    "{:<27} split: {}; n_train {}; {} parameters; {}; {:.1} s total ({:.1} s training{}), eval {:.2} s on {}",
                    "",
                    report.split,
                    report.n_train,
                    report.n_parameters,
                    if report.from_cache { "weights from cache" } else { "trained now" },
                    report.wall_seconds,
                    report.training.seconds,
                    if report.from_cache { " when cached" } else { "" },
                    report.evaluate_seconds,
                    report.inference_kernel,
                );
                if model.uses_embedded_data() {
                    embedded_training_seconds += report.training.seconds;
                }
                reports.push(trained.report);
            }
            Err(ZooError::Data(error)) if error.is_not_found() => {
                println!("{:<27} SKIPPED: {error}", model.name());
            }
            Err(error) => return Err(error).with_context(|| format!("training {}", model.name())),
        }
    }
    println!(
        "total wall time {:.1} s; training time of the models on embedded data {:.1} s (budget 180 s)",
        started.elapsed().as_secs_f64(),
        embedded_training_seconds
    );
    if let Some(path) = json_path {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
        println!("reports written to {path}");
    }
    Ok(())
}
