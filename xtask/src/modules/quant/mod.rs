//! quant's claims: real bytes (int8 ≥ 3.5× smaller than f32, f16/bf16 2×), the integer GEMM against accel's
//! best single-thread f32 kernel (packing included, interleaved), quantized models against their f32 twins
//! (digits MLP at batch 451 and 1, a Fashion-sized MLP at batch 64 and 256), the accuracy of the quantized
//! digits MLP (zoo) with top-1 agreement, and — in the full run, with Fashion-MNIST installed — of the
//! quantized Fashion MLP and Fashion CNN on the 10,000 test images; round-trip precision on several
//! distributions, and two negative controls (2-bit weights; min–max calibration poisoned by one outlier) that
//! the accuracy check must catch.
//!
//! The model comes from zoo here rather than in quant, so that the quant library needs no candle: quant takes
//! plain `(weight, bias)` arrays.
//!
//! Code map: `digits.rs` (the digits MLP: bytes, accuracy, agreement, speed, negative controls), `speed.rs`
//! (a quantized MLP timed against its f32 twin; the Fashion-sized MLP), `fashion.rs` (the Fashion-MNIST MLP
//! and CNN, full run), `gemm.rs` (the integer GEMM against accel's f32), `round_trip.rs` (round-trip
//! precision).

mod digits;
mod fashion;
mod gemm;
mod round_trip;
mod speed;

use digits::model_claims;
use fashion::fashion_claims;
use gemm::gemm_claims;
use round_trip::round_trip_claims;
use speed::fashion_sized_speed_claims;

use super::splitmix::SplitMix;
use super::ModuleContext;
use accel::MatmulConfig;
use anyhow::{Context, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use perf_core::claim::{Claim, ClaimResult, Estimate};
use perf_core::compare::{CompareConfig, Comparison};
use perf_core::stats::{argmax, binomial_interval, paired_proportion_difference};

const MODULE: &str = "quant";
const CONFIDENCE: f64 = 0.95;

fn judge_speed(claim: &Claim, comparison: &Comparison, operations: f64) -> Result<ClaimResult> {
    let rate = |median_ns: f64| operations / median_ns;
    Ok(claim
        .judge_comparison(comparison)?
        .needs_quiet_machine()
        .with_detail("baseline_gops_median", rate(comparison.baseline.median()))
        .with_detail("candidate_gops_median", rate(comparison.candidate.median()))
        .with_detail("baseline_ns", comparison.baseline.values())
        .with_detail("candidate_ns", comparison.candidate.values())
        .with_detail("fairness", &comparison.fairness))
}

/// A value with no sampling uncertainty (a byte count, a deterministic error), as a degenerate estimate.
fn exact(value: f64, unit: &str) -> Result<Estimate> {
    Ok(Estimate::new(value, value, value, unit, 1.0)?)
}

fn f32_bytes(layers: &[(Array2<f32>, Array1<f32>)]) -> usize {
    layers
        .iter()
        .map(|(weight, bias)| {
            std::mem::size_of_val(weight.as_slice().unwrap_or(&[]))
                + std::mem::size_of_val(bias.as_slice().unwrap_or(&[]))
        })
        .sum()
}

/// The f32 twin: the same network on accel's best kernel, one thread.
fn f32_forward(
    layers: &[(Array2<f32>, Array1<f32>)],
    x: ArrayView2<'_, f32>,
) -> Result<Array2<f32>> {
    let mut twin = F32Mlp::new(layers, x.nrows());
    twin.forward(x)?;
    Ok(twin.logits().to_owned())
}

/// The f32 twin for timing: accel's best kernel, one thread, into buffers allocated once, with bias and ReLU
/// fused into one pass — the same care the int8 path gets (reused workspace, fused epilogue), so the
/// comparison is of arithmetic, not of allocation habits.
struct F32Mlp<'a> {
    layers: &'a [(Array2<f32>, Array1<f32>)],
    buffers: Vec<Array2<f32>>,
}

impl<'a> F32Mlp<'a> {
    fn new(layers: &'a [(Array2<f32>, Array1<f32>)], batch: usize) -> Self {
        let buffers = layers
            .iter()
            .map(|(weight, _)| Array2::zeros((batch, weight.ncols())))
            .collect();
        F32Mlp { layers, buffers }
    }

    fn forward(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
        let config = MatmulConfig {
            threads: Some(1),
            ..MatmulConfig::default()
        };
        for (index, (weight, bias)) in self.layers.iter().enumerate() {
            let (done, rest) = self.buffers.split_at_mut(index);
            let output = &mut rest[0];
            match done.last() {
                None => {
                    accel::matmul_into_with(x, weight.view(), output.view_mut(), false, &config)?
                }
                Some(previous) => accel::matmul_into_with(
                    previous.view(),
                    weight.view(),
                    output.view_mut(),
                    false,
                    &config,
                )?,
            };
            let relu = index + 1 < self.layers.len();
            let bias = bias.as_slice().context("contiguous bias")?;
            for row in output
                .as_slice_mut()
                .context("contiguous buffer")?
                .chunks_exact_mut(bias.len().max(1))
            {
                for (value, &b) in row.iter_mut().zip(bias) {
                    let biased = *value + b;
                    *value = if relu { biased.max(0.0) } else { biased };
                }
            }
        }
        Ok(())
    }

    fn logits(&self) -> &Array2<f32> {
        self.buffers.last().expect("at least one layer")
    }
}

/// The predicted class of each row (perf-core's argmax: the first of tied maxima; a row with no class
/// predicts none and counts as wrong).
fn argmax_rows(scores: ArrayView2<'_, f32>) -> Vec<Option<usize>> {
    scores
        .axis_iter(Axis(0))
        .map(|row| argmax(row.iter().copied()))
        .collect()
}

/// Accuracy drop (f32 − quantized, percentage points) on the same test samples, paired: perf-core's paired
/// difference (the t-interval on the per-sample differences when some samples disagree, else the
/// Clopper–Pearson bound on the disagreement rate).
fn accuracy_drop(f32_correct: &[bool], quant_correct: &[bool]) -> Result<Estimate> {
    Ok(
        paired_proportion_difference(f32_correct, quant_correct, CONFIDENCE)?
            .estimate(100.0, "pt")?,
    )
}

/// How often two models predict the same class on the same rows: the count, and the rate with its
/// Clopper–Pearson interval (a row where either predicts no class counts as a disagreement).
fn top1_agreement(first: &[Option<usize>], second: &[Option<usize>]) -> Result<(usize, Estimate)> {
    let n = first.len().min(second.len());
    let agreements = first
        .iter()
        .zip(second)
        .filter(|(a, b)| a.is_some() && a == b)
        .count();
    let (lower, upper) = binomial_interval(agreements as u64, n as u64, CONFIDENCE)?;
    let rate = agreements as f64 / n as f64;
    let estimate = Estimate::new(rate, lower.min(rate), upper.max(rate), "", CONFIDENCE)?;
    Ok((agreements, estimate))
}

struct Evaluation {
    accuracy: f64,
    correct: Vec<bool>,
    predictions: Vec<Option<usize>>,
}

fn evaluate(logits: ArrayView2<'_, f32>, labels: &[usize]) -> Evaluation {
    let predictions = argmax_rows(logits);
    let correct: Vec<bool> = predictions
        .iter()
        .zip(labels)
        .map(|(predicted, &label)| *predicted == Some(label))
        .collect();
    let accuracy = correct.iter().filter(|&&c| c).count() as f64 / labels.len() as f64;
    Evaluation {
        accuracy,
        correct,
        predictions,
    }
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let mut results = Vec::new();
    let base = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    let config = CompareConfig {
        seed: context.seed,
        ..base
    };

    // The reference model: zoo's digits MLP (64-128-10, trained with candle on the embedded UCI digits), with
    // zoo's default seed so that the weight cache zoo fills is reused rather than retrained per run seed.
    let zoo_config = zoo::ZooConfig::default();
    let model = zoo::train_or_load(zoo::ReferenceModel::DigitsMlp, &zoo_config);
    match model {
        Ok(trained) => model_claims(zoo_config.seed, &config, &trained, &mut results)?,
        Err(error) => {
            for id in [
                "memory_int8",
                "accuracy_drop",
                "top1_agreement",
                "model_inference_speedup",
            ] {
                results.push(
                    Claim::measured(
                        &format!("quant.{id}"),
                        MODULE,
                        "needs the digits reference model",
                    )
                    .error(format!("zoo digits MLP unavailable: {error}")),
                );
            }
        }
    }
    gemm_claims(context, &config, &mut results);
    if let Err(error) = fashion_sized_speed_claims(context, &config, &mut results) {
        results.push(
            Claim::measured(
                "quant.fashion_mlp_inference_speedup_batch64",
                MODULE,
                "784-256-10 MLP int8 vs f32",
            )
            .error(format!("{error:#}")),
        );
    }
    // The Fashion-MNIST models are trained (or loaded) only in the full run, as the zoo module does.
    if !context.quick {
        fashion_claims(context, &mut results);
    }
    round_trip_claims(context, &mut results)?;
    Ok(results)
}
