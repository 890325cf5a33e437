//! The training loops: mini-batch AdamW over rows for the classifiers and the autoencoder ([`fit`], and
//! [`fit_with_hook`] for fine-tuning after pruning), and random text windows with a cosine schedule for the
//! character transformer ([`fit_char_transformer`]). Mini-batches come from a seeded shuffle on a stream of its
//! own, so the batch order does not depend on the model's size.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::ArrayView2;
use perf_core::timer::Stopwatch;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::config::{verbose, TrainConfig, TrainingLog};
use super::params::ParamStore;
use super::transformer::CandleCharTransformer;
use super::CandleModel;
use crate::ZooError;

/// Which loss a training loop minimizes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objective<'a> {
    /// Cross-entropy against class labels.
    Classification(&'a [usize]),
    /// Mean squared error against the input itself.
    Reconstruction,
}

/// Mini-batch AdamW over the rows of `features`.
pub(crate) fn fit(
    model_name: &str,
    model: &dyn CandleModel,
    store: &ParamStore,
    features: ArrayView2<'_, f32>,
    objective: Objective<'_>,
    config: &TrainConfig,
) -> Result<TrainingLog, ZooError> {
    fit_with_hook(
        model_name,
        model,
        store,
        features,
        objective,
        config,
        &mut |_| Ok(()),
    )
}

/// As [`fit`], calling `after_step` with the number of optimizer steps taken after each step (fine-tuning
/// after pruning re-applies its masks there).
pub(crate) fn fit_with_hook(
    model_name: &str,
    model: &dyn CandleModel,
    store: &ParamStore,
    features: ArrayView2<'_, f32>,
    objective: Objective<'_>,
    config: &TrainConfig,
    after_step: &mut dyn FnMut(usize) -> Result<(), ZooError>,
) -> Result<TrainingLog, ZooError> {
    let n_samples = features.nrows();
    if n_samples == 0 || config.batch_size == 0 || config.epochs == 0 {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "{n_samples} samples, batch size {}, {} epochs",
                config.batch_size, config.epochs
            ),
        });
    }
    let started = Stopwatch::start();
    let contiguous = features.as_standard_layout();
    let all_features = Tensor::from_vec(
        contiguous.iter().copied().collect::<Vec<f32>>(),
        (n_samples, features.ncols()),
        &Device::Cpu,
    )?;
    let all_labels = match objective {
        Objective::Classification(labels) => {
            let labels: Vec<u32> = labels.iter().map(|&label| label as u32).collect();
            Some(Tensor::from_vec(labels, n_samples, &Device::Cpu)?)
        }
        Objective::Reconstruction => None,
    };
    let mut optimizer = adamw(store, config)?;
    // A different stream from initialization, so that changing the model size does not change the batch order.
    let mut shuffle_rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x05ee_d0fb_a7c4);
    let mut order: Vec<u32> = (0..n_samples as u32).collect();
    let (mut log, cpu_at_start) = TrainingLog::started();
    'epochs: for _ in 0..config.epochs {
        order.shuffle(&mut shuffle_rng);
        let mut epoch_sum = 0.0f32;
        let mut epoch_steps = 0;
        for batch in order.chunks(config.batch_size) {
            if config
                .max_steps
                .is_some_and(|max_steps| log.steps >= max_steps)
            {
                if epoch_steps > 0 {
                    log.epoch_losses.push(epoch_sum / epoch_steps as f32);
                }
                break 'epochs;
            }
            let indices = Tensor::from_slice(batch, batch.len(), &Device::Cpu)?;
            let x = all_features.index_select(&indices, 0)?;
            let output = model.forward(&x)?;
            let loss = match &all_labels {
                Some(labels) => {
                    candle_nn::loss::cross_entropy(&output, &labels.index_select(&indices, 0)?)?
                }
                None => candle_nn::loss::mse(&output, &x)?,
            };
            optimizer.backward_step(&loss)?;
            let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(ZooError::Diverged {
                    model: model_name.into(),
                    step: log.steps,
                    loss: loss_value,
                });
            }
            log.step_losses.push(loss_value);
            log.steps += 1;
            after_step(log.steps)?;
            epoch_sum += loss_value;
            epoch_steps += 1;
            if verbose() && log.steps.is_multiple_of(100) {
                eprintln!(
                    "{model_name}: step {} loss {loss_value:.4}, {:.1} s",
                    log.steps,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        log.epoch_losses.push(epoch_sum / epoch_steps.max(1) as f32);
        if verbose() {
            eprintln!(
                "{model_name}: epoch {} mean loss {:.4}, {} steps, {:.1} s",
                log.epoch_losses.len(),
                log.epoch_losses[log.epoch_losses.len() - 1],
                log.steps,
                started.elapsed().as_secs_f64()
            );
        }
    }
    log.finish(started, cpu_at_start);
    Ok(log)
}

/// Trains a character transformer on random windows of `tokens`; `config.epochs` counts optimizer steps in
/// thousands is awkward, so here `epochs × (len / (batch · context))` windows are drawn.
pub(crate) fn fit_char_transformer(
    model: &CandleCharTransformer,
    store: &ParamStore,
    tokens: &[u32],
    config: &TrainConfig,
    n_steps: usize,
) -> Result<TrainingLog, ZooError> {
    let context = model.config.context_length;
    if tokens.len() <= context + 1 || n_steps == 0 || config.batch_size == 0 {
        return Err(ZooError::InvalidArgument {
            reason: format!(
                "{} tokens for context {context}, {n_steps} steps",
                tokens.len()
            ),
        });
    }
    let started = Stopwatch::start();
    let mut optimizer = adamw(store, config)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x7e47);
    let (mut log, cpu_at_start) = TrainingLog::started();
    let steps_per_report = 50.max(n_steps / 20);
    let mut window_sum = 0.0;
    for step in 0..n_steps {
        if config.max_steps.is_some_and(|max_steps| step >= max_steps) {
            break;
        }
        // Cosine decay to 10% of the peak rate over the run.
        let progress = step as f64 / n_steps as f64;
        optimizer.set_learning_rate(
            config.learning_rate
                * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())),
        );
        let mut inputs = Vec::with_capacity(config.batch_size * context);
        let mut targets = Vec::with_capacity(config.batch_size * context);
        for _ in 0..config.batch_size {
            let start = rng.random_range(0..tokens.len() - context - 1);
            inputs.extend_from_slice(&tokens[start..start + context]);
            targets.extend_from_slice(&tokens[start + 1..start + context + 1]);
        }
        let inputs = Tensor::from_vec(inputs, (config.batch_size, context), &Device::Cpu)?;
        let targets = Tensor::from_vec(targets, config.batch_size * context, &Device::Cpu)?;
        let logits = model
            .logits(&inputs)?
            .reshape((config.batch_size * context, model.config.vocab_size))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        optimizer.backward_step(&loss)?;
        let loss_value = loss.to_scalar::<f32>()?;
        if !loss_value.is_finite() {
            return Err(ZooError::Diverged {
                model: "char-transformer".into(),
                step,
                loss: loss_value,
            });
        }
        log.step_losses.push(loss_value);
        log.steps += 1;
        window_sum += loss_value;
        if log.steps.is_multiple_of(steps_per_report) {
            log.epoch_losses.push(window_sum / steps_per_report as f32);
            window_sum = 0.0;
            if verbose() {
                eprintln!(
                    "char-transformer: step {} mean loss {:.4}, {:.1} s",
                    log.steps,
                    log.epoch_losses[log.epoch_losses.len() - 1],
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    log.finish(started, cpu_at_start);
    Ok(log)
}

/// AdamW over every parameter of `store`, at `config`'s learning rate and weight decay (candle's defaults
/// otherwise).
fn adamw(store: &ParamStore, config: &TrainConfig) -> Result<AdamW, ZooError> {
    Ok(AdamW::new(
        store.vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}
