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
    let config = ZooConfig::default();
    let selected = |model: ReferenceModel| {
        only.as_ref()
            .is_none_or(|names| names.iter().any(|name| name == model.name()))
    };
    if retrain {
        // Removing the selected models' entries (and only theirs: the cache is shared) makes them train;
        // the new weights are then stored in their place.
        let cache = WeightCache::default_location();
        if let Ok(entries) = std::fs::read_dir(cache.dir()) {
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let belongs_to_selected = ReferenceModel::ALL.into_iter().any(|model| {
                    selected(model)
                        && file_name
                            .strip_prefix(model.name())
                            .and_then(|rest| rest.strip_prefix('-'))
                            .is_some_and(|rest| rest.len() > 16 && rest.as_bytes()[16] == b'.')
                });
                if belongs_to_selected {
                    std::fs::remove_file(entry.path())
                        .with_context(|| format!("removing {}", entry.path().display()))?;
                }
            }
        }
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
        if !selected(model) {
            continue;
        }
        match train_or_load(model, &config) {
            Ok(trained) => {
                let report = &trained.report;
                println!(
                    "{:<27} [{} data: {}] {}",
                    report.model, report.dataset.origin, report.dataset.name, report.metric
                );
                if let Some(headline) = &report.headline {
                    println!("{:<27} headline: {headline}", "");
                }
                let cpu = report
                    .training
                    .cpu_seconds
                    .map_or_else(|| "?".to_string(), |seconds| format!("{seconds:.1}"));
                let load = report
                    .training
                    .load_average
                    .map_or_else(|| "?".to_string(), |load| format!("{load:.2}"));
                println!(
                    "{:<27} split: {}; n_train {}; {} parameters; {}; {:.1} s total ({:.1} s training wall, {cpu} s CPU, load {load}{}; {} steps), eval {:.2} s on {}",
                    "",
                    report.split,
                    report.n_train,
                    report.n_parameters,
                    if report.from_cache { "weights from cache" } else { "trained now" },
                    report.wall_seconds,
                    report.training.seconds,
                    if report.from_cache { ", when cached" } else { "" },
                    report.training.steps,
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
