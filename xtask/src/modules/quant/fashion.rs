//! Fashion-MNIST: zoo's trained MLP and CNN quantized to int8 on the 10,000 test images (full run only).

use super::{
    accuracy_drop, evaluate, exact, f32_bytes, f32_forward, top1_agreement, Evaluation,
    ModuleContext, CONFIDENCE, MODULE,
};
use anyhow::{Context, Result};
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, Axis};
use perf_core::claim::{Claim, ClaimResult, Direction};
use perf_core::stats::binomial_interval;
use quant::{
    ActivationQuant, Conv2dGeometry, GemmConfig, Observer, ObserverKind, QuantParams, QuantType,
    QuantizedConv2d, QuantizedLinear, QuantizedMlp, QuantizedMlpConfig, Scheme,
};
use serde_json::json;

/// Images per chunk when a CNN runs over the 10,000 test images (bounds the im2col buffers).
pub(super) const CNN_CHUNK: usize = 500;

/// Static u8 parameters from min–max over `values`.
pub(super) fn min_max_params(values: &[f32]) -> Result<QuantParams> {
    let mut observer = Observer::new(ObserverKind::MinMax)?;
    observer.observe(values)?;
    Ok(observer.params(Scheme::Affine, QuantType::Uint8)?)
}

pub(super) fn conv_geometry(conv: &zoo::Conv2d) -> Conv2dGeometry {
    Conv2dGeometry {
        in_channels: conv.in_channels,
        kernel_height: conv.kernel_height,
        kernel_width: conv.kernel_width,
        stride: conv.stride,
        padding: conv.padding,
    }
}

pub(super) fn rows_to_images(
    x: ArrayView2<'_, f32>,
    height: usize,
    width: usize,
) -> Result<Array4<f32>> {
    Ok(x.as_standard_layout()
        .to_owned()
        .into_shape_with_order((x.nrows(), height, width, 1))?)
}

pub(super) fn flatten(x: Array4<f32>) -> Result<Array2<f32>> {
    let (batch, height, width, channels) = x.dim();
    Ok(x.into_shape_with_order((batch, height * width * channels))?)
}

/// zoo's Fashion CNN (`conv → ReLU → maxpool → conv → ReLU → maxpool → linear`) with int8 convolutions and
/// classifier (per-channel weights, static u8 activations calibrated by min–max on training images); ReLU and
/// max pooling stay in f32 between the quantized layers.
pub(super) struct QuantizedCnn {
    height: usize,
    width: usize,
    conv1: QuantizedConv2d,
    conv2: QuantizedConv2d,
    classifier: QuantizedLinear,
}

impl QuantizedCnn {
    fn quantize(cnn: &zoo::Cnn, calibration: ArrayView2<'_, f32>) -> Result<Self> {
        let (height, width) = (cnn.image_height, cnn.image_width);
        let images = rows_to_images(calibration, height, width)?;
        let conv1_params = min_max_params(images.as_slice().context("contiguous")?)?;
        let mut hidden = cnn.conv1.forward(images.view())?;
        zoo::layers::relu_in_place(&mut hidden);
        let hidden = zoo::layers::max_pool2d(hidden.view(), 2);
        let conv2_params = min_max_params(hidden.as_slice().context("contiguous")?)?;
        let mut hidden2 = cnn.conv2.forward(hidden.view())?;
        zoo::layers::relu_in_place(&mut hidden2);
        let flat = flatten(zoo::layers::max_pool2d(hidden2.view(), 2))?;
        let classifier_params = min_max_params(flat.as_slice().context("contiguous")?)?;
        let conv = |layer: &zoo::Conv2d, params: QuantParams| {
            QuantizedConv2d::new(
                layer.weight.view(),
                layer.bias.view(),
                conv_geometry(layer),
                QuantType::Int8,
                ActivationQuant::Static(params),
            )
        };
        Ok(QuantizedCnn {
            height,
            width,
            conv1: conv(&cnn.conv1, conv1_params)?,
            conv2: conv(&cnn.conv2, conv2_params)?,
            classifier: QuantizedLinear::new(
                cnn.classifier.weight.view(),
                cnn.classifier.bias.view(),
                QuantType::Int8,
                ActivationQuant::Static(classifier_params),
            )?,
        })
    }

    fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let config = GemmConfig::default();
        let images = rows_to_images(x, self.height, self.width)?;
        let (mut hidden, _) = self.conv1.forward(images.view(), &config)?;
        zoo::layers::relu_in_place(&mut hidden);
        let hidden = zoo::layers::max_pool2d(hidden.view(), 2);
        let (mut hidden2, _) = self.conv2.forward(hidden.view(), &config)?;
        zoo::layers::relu_in_place(&mut hidden2);
        let flat = flatten(zoo::layers::max_pool2d(hidden2.view(), 2))?;
        Ok(self.classifier.forward(flat.view(), &config)?.0)
    }

    fn storage_bytes(&self) -> usize {
        self.conv1.storage_bytes() + self.conv2.storage_bytes() + self.classifier.storage_bytes()
    }
}

/// `f` over chunks of rows, the outputs stacked.
pub(super) fn in_chunks(
    x: ArrayView2<'_, f32>,
    mut f: impl FnMut(ArrayView2<'_, f32>) -> Result<Array2<f32>>,
) -> Result<Array2<f32>> {
    let parts = x
        .axis_chunks_iter(Axis(0), CNN_CHUNK)
        .map(&mut f)
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(Array2::view).collect();
    Ok(ndarray::concatenate(Axis(0), &views)?)
}

/// What [`accuracy_and_agreement`] reports about one quantized model.
pub(super) struct QuantizedModelFigures<'a> {
    /// Claim id stem, e.g. `fashion_mlp`.
    stem: &'a str,
    /// Human name for the statements.
    name: &'a str,
    f32_logits: ArrayView2<'a, f32>,
    int8_logits: ArrayView2<'a, f32>,
    labels: &'a [usize],
    f32_bytes: usize,
    int8_bytes: usize,
    calibration_rows: usize,
}

/// Accuracy drop (≤ 1 point, paired), top-1 agreement (≥ 99%, Clopper–Pearson) and bytes (≥ 3.5×) of a
/// quantized model against its f32 twin on the same test samples.
pub(super) fn accuracy_and_agreement(
    figures: &QuantizedModelFigures<'_>,
    results: &mut Vec<ClaimResult>,
) -> Result<()> {
    let QuantizedModelFigures {
        stem, name, labels, ..
    } = *figures;
    let n = labels.len();
    let f32_eval = evaluate(figures.f32_logits, labels);
    let int8_eval = evaluate(figures.int8_logits, labels);
    let summary = |eval: &Evaluation| -> Result<serde_json::Value> {
        let successes = eval.correct.iter().filter(|&&c| c).count();
        let interval = binomial_interval(successes as u64, n as u64, CONFIDENCE)?;
        Ok(
            json!({"accuracy": eval.accuracy, "correct": successes, "n": n, "clopper_pearson_95": interval}),
        )
    };
    results.push(
        Claim::threshold(
            &format!("quant.{stem}_accuracy_drop"),
            MODULE,
            &format!("the int8 {name} (per-channel weights, static u8 activations, min–max calibration on {} training images) loses ≤ 1 percentage point of top-1 test accuracy vs f32 (paired, n = {n})", figures.calibration_rows),
            1.0,
            Direction::AtMost,
        )
        .judge(accuracy_drop(&f32_eval.correct, &int8_eval.correct)?)
        .with_detail("n", n)
        .with_detail("f32", summary(&f32_eval)?)
        .with_detail("int8_static", summary(&int8_eval)?)
        .with_detail("calibration_rows", figures.calibration_rows),
    );
    let (agreements, agreement) = top1_agreement(&f32_eval.predictions, &int8_eval.predictions)?;
    results.push(
        Claim::threshold(
            &format!("quant.{stem}_top1_agreement"),
            MODULE,
            &format!("the int8 {name} predicts the same class as f32 on ≥ 99% of the {n} test images (Clopper–Pearson)"),
            0.99,
            Direction::AtLeast,
        )
        .judge(agreement)
        .with_detail("n", n)
        .with_detail("agreements", agreements),
    );
    results.push(
        Claim::threshold(
            &format!("quant.{stem}_memory_int8"),
            MODULE,
            &format!("the int8 {name} holds ≥ 3.5× fewer bytes than its f32 buffers (weights, scales, zero points, biases counted)"),
            3.5,
            Direction::AtLeast,
        )
        .judge(exact(figures.f32_bytes as f64 / figures.int8_bytes as f64, "×")?)
        .with_detail("f32_bytes", figures.f32_bytes)
        .with_detail("int8_bytes", figures.int8_bytes),
    );
    Ok(())
}

/// Fashion-MNIST: zoo's trained MLP and CNN quantized to int8, on the 10,000 test images. Data not installed
/// makes the claims SKIPPED with the command that installs it; a model that cannot be trained is ERROR for
/// that model's claims, with the reason.
pub(super) fn fashion_claims(context: &ModuleContext, results: &mut Vec<ClaimResult>) {
    let fashion_dir = context
        .data_dir
        .as_ref()
        .map(|dir| dir.join("fashion-mnist"))
        .filter(|dir| dir.is_dir());
    let zoo_config = zoo::ZooConfig {
        data: zoo::DataOptions {
            fashion_mnist_dir: fashion_dir.clone(),
            ..zoo::DataOptions::default()
        },
        ..zoo::ZooConfig::default()
    };
    // Calibration on the first 1,000 training images (never the test set).
    let calibration_rows = 1000;
    let calibration = datasets::load_fashion_mnist(fashion_dir.as_deref()).map(|data| {
        data.train
            .features()
            .slice(ndarray::s![..calibration_rows, ..])
            .to_owned()
    });
    let missing_data = calibration
        .as_ref()
        .err()
        .and_then(|error| Some((error.to_string(), error.enable_command()?)));
    for (model, stem, name) in [
        (
            zoo::ReferenceModel::FashionMlp,
            "fashion_mlp",
            "Fashion-MNIST MLP",
        ),
        (
            zoo::ReferenceModel::FashionCnn,
            "fashion_cnn",
            "Fashion-MNIST CNN",
        ),
    ] {
        if let Some((why, command)) = &missing_data {
            for suffix in ["accuracy_drop", "top1_agreement", "memory_int8"] {
                results.push(
                    Claim::measured(
                        &format!("quant.{stem}_{suffix}"),
                        MODULE,
                        &format!("int8 {name}"),
                    )
                    .skipped(
                        format!("Fashion-MNIST is not installed here: {why}"),
                        command,
                    ),
                );
            }
            continue;
        }
        let outcome = (|| -> Result<()> {
            let calibration = calibration
                .as_ref()
                .map_err(|error| anyhow::anyhow!("Fashion-MNIST: {error}"))?;
            let trained = zoo::train_or_load(model, &zoo_config)?;
            let test_x = trained.test.features();
            let labels = trained.test.labels();
            let (f32_logits, int8_logits, f32_bytes, int8_bytes) = match &trained.weights {
                zoo::TrainedWeights::Mlp(mlp) => {
                    let layers: Vec<(Array2<f32>, Array1<f32>)> = mlp
                        .layers
                        .iter()
                        .map(|layer| (layer.weight.clone(), layer.bias.clone()))
                        .collect();
                    let views: Vec<(ArrayView2<'_, f32>, ArrayView1<'_, f32>)> =
                        layers.iter().map(|(w, b)| (w.view(), b.view())).collect();
                    let quantized = QuantizedMlp::quantize(
                        &views,
                        calibration.view(),
                        &QuantizedMlpConfig::default(),
                    )?;
                    let f32_logits = f32_forward(&layers, test_x.view())?;
                    let (int8_logits, _) =
                        quantized.forward(test_x.view(), &GemmConfig::default())?;
                    (
                        f32_logits,
                        int8_logits,
                        f32_bytes(&layers),
                        quantized.storage_bytes(),
                    )
                }
                zoo::TrainedWeights::Cnn(cnn) => {
                    let quantized = QuantizedCnn::quantize(cnn, calibration.view())?;
                    let f32_logits =
                        in_chunks(test_x.view(), |x| Ok(zoo::Classifier::logits(cnn, x)?))?;
                    let int8_logits = in_chunks(test_x.view(), |x| quantized.logits(x))?;
                    let f32_bytes = [&cnn.conv1.weight, &cnn.conv2.weight, &cnn.classifier.weight]
                        .iter()
                        .map(|w| w.len())
                        .chain(
                            [&cnn.conv1.bias, &cnn.conv2.bias, &cnn.classifier.bias]
                                .iter()
                                .map(|b| b.len()),
                        )
                        .sum::<usize>()
                        * std::mem::size_of::<f32>();
                    (
                        f32_logits,
                        int8_logits,
                        f32_bytes,
                        quantized.storage_bytes(),
                    )
                }
                _ => anyhow::bail!("{name}: unexpected weights"),
            };
            accuracy_and_agreement(
                &QuantizedModelFigures {
                    stem,
                    name,
                    f32_logits: f32_logits.view(),
                    int8_logits: int8_logits.view(),
                    labels,
                    f32_bytes,
                    int8_bytes,
                    calibration_rows,
                },
                results,
            )
        })();
        if let Err(error) = outcome {
            for suffix in ["accuracy_drop", "top1_agreement", "memory_int8"] {
                results.push(
                    Claim::measured(
                        &format!("quant.{stem}_{suffix}"),
                        MODULE,
                        &format!("int8 {name}"),
                    )
                    .error(format!("{error:#}")),
                );
            }
        }
    }
}
