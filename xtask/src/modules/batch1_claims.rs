//! Batch-1 inference at the memory limit: for each event's model, one query at a time on one thread, the
//! int8 and f16 submissions against the f32 one, measured side by side (perf-core's interleaved compare of
//! `Submission::forward_into`, the call the Olympics referee times), and a roofline row: the bytes one query
//! moves (stored weights + f32 activations) over the bandwidth measured at the same footprint, next to the
//! measured latency. Targets: int8 no slower than f32 everywhere and ≥ 1.5× on the largest models; f16 at most
//! 1.2× the f32 time. A miss is FAIL with its interval.
//!
//! Models: the event's trained zoo model when it is in the weight cache (Fashion MLP, digits autoencoder),
//! else seeded weights of the same shapes (a query's time depends on the shapes, not the values: every kernel
//! here is dense). The keyword-spotting and visual-wake-words MLPs are trained inside the Olympics run, so
//! their shapes (490-128-10 standardized; a 96×96×3 image pooled to 24×24 grey, 576-64-2) get seeded weights.

use super::splitmix::SplitMix;
use super::ModuleContext;
use anyhow::Result;
use ndarray::{Array1, Array2};
use olympics::compress::{CompressedMlp, Recipe, WeightFormat};
use olympics::conv_submissions::ConvClassifier;
use olympics::submissions::{AnomalyScorer, InputTransform, MlpClassifier};
use olympics::Submission;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::CompareConfig;
use perf_core::fallible::try_compare;
use profiling::roofline::{measure_bandwidth, BandwidthConfig};

const MODULE: &str = "batch1";
/// Seeded queries cycled through while timing.
const N_QUERIES: usize = 64;

/// One event's model as the three submissions the targets compare.
struct EventModel {
    event: &'static str,
    model: String,
    /// Whether the ≥ 1.5× int8 target applies (the largest models).
    large: bool,
    input_width: usize,
    /// f32, int8, f16.
    submissions: [Box<dyn Submission>; 3],
    /// What computes each (the kernel of every layer).
    kernels: [String; 3],
    /// f32 values of every activation one query reads and writes (input, hidden layers, output).
    activation_values: usize,
}

/// Uniform in [0, 1) with 24 random bits, from the claim modules' one SplitMix stream kept in `state`.
fn splitmix(state: &mut u64) -> f32 {
    let mut generator = SplitMix(*state);
    let value = (generator.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    *state = generator.0;
    value
}

fn seeded_mlp(widths: &[usize], seed: u64) -> zoo::Mlp {
    let mut state = seed;
    zoo::Mlp {
        layers: widths
            .windows(2)
            .map(|pair| {
                let scale = (2.0 / pair[0] as f32).sqrt();
                zoo::Linear {
                    weight: Array2::from_shape_fn((pair[0], pair[1]), |_| {
                        (splitmix(&mut state) * 2.0 - 1.0) * scale
                    }),
                    bias: Array1::from_shape_fn(pair[1], |_| splitmix(&mut state) * 0.1),
                }
            })
            .collect(),
    }
}

const FORMATS: [(WeightFormat, &str); 3] = [
    (WeightFormat::F32, "f32"),
    (WeightFormat::Int8, "int8"),
    (WeightFormat::F16, "f16"),
];

fn recipe(format: WeightFormat) -> Recipe {
    Recipe {
        format,
        ..Recipe::BASELINE
    }
}

fn describe(network: &CompressedMlp) -> Result<String> {
    Ok(network
        .row_kernels()?
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → "))
}

fn activation_values(mlp: &zoo::Mlp, transform_input: usize) -> usize {
    transform_input
        + mlp.layers.first().map_or(0, |l| l.in_features())
        + mlp.layers.iter().map(|l| l.out_features()).sum::<usize>()
}

fn classifier_model(
    event: &'static str,
    model: String,
    large: bool,
    mlp: &zoo::Mlp,
    transform: InputTransform,
    input_width: usize,
) -> Result<EventModel> {
    let mut submissions = Vec::new();
    let mut kernels = Vec::new();
    for (format, name) in FORMATS {
        let network = CompressedMlp::compress(mlp, &recipe(format))?;
        kernels.push(describe(&network)?);
        submissions.push(Box::new(MlpClassifier {
            name: name.into(),
            optimizations: recipe(format).optimizations(),
            transform: transform.clone(),
            network,
        }) as Box<dyn Submission>);
    }
    let transform_input = if matches!(transform, InputTransform::Identity) {
        0
    } else {
        input_width
    };
    Ok(EventModel {
        event,
        model,
        large,
        input_width,
        submissions: submissions
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        kernels: kernels
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        activation_values: activation_values(mlp, transform_input),
    })
}

fn autoencoder_model(model: String, mlp: &zoo::Mlp) -> Result<EventModel> {
    let mut submissions = Vec::new();
    let mut kernels = Vec::new();
    for (format, name) in FORMATS {
        let network = CompressedMlp::compress(mlp, &recipe(format))?;
        kernels.push(describe(&network)?);
        submissions.push(Box::new(AnomalyScorer {
            name: name.into(),
            optimizations: recipe(format).optimizations(),
            network,
        }) as Box<dyn Submission>);
    }
    let input_width = mlp.layers.first().map_or(0, |l| l.in_features());
    Ok(EventModel {
        event: "anomaly_detection",
        model,
        large: false,
        input_width,
        submissions: submissions
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        kernels: kernels
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        activation_values: activation_values(mlp, 0),
    })
}

fn conv_model(
    event: &'static str,
    model: String,
    input_width: usize,
    activation_values: usize,
    build: impl Fn(&str, WeightFormat) -> Result<ConvClassifier, olympics::OlympicsError>,
) -> Result<EventModel> {
    let mut submissions = Vec::new();
    let mut kernels = Vec::new();
    for (format, name) in FORMATS {
        let submission = build(name, format)?;
        kernels.push(submission.kernels()?);
        submissions.push(Box::new(submission) as Box<dyn Submission>);
    }
    Ok(EventModel {
        event,
        model,
        large: true,
        input_width,
        submissions: submissions
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        kernels: kernels
            .try_into()
            .map_err(|_| anyhow::anyhow!("three formats"))?,
        activation_values,
    })
}

fn seeded_conv(geometry: [usize; 5], out_channels: usize, state: &mut u64) -> zoo::Conv2d {
    let [in_channels, kernel_height, kernel_width, stride, padding] = geometry;
    let patch = in_channels * kernel_height * kernel_width;
    let scale = (2.0 / patch as f32).sqrt();
    zoo::Conv2d {
        weight: Array2::from_shape_fn((patch, out_channels), |_| {
            (splitmix(state) * 2.0 - 1.0) * scale
        }),
        bias: Array1::from_shape_fn(out_channels, |_| splitmix(state) * 0.1),
        in_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
    }
}

/// zoo's Fashion CNN from the weight cache, else seeded weights of its architecture (28×28, 3×3 convolutions
/// to 16 and 32 channels with 2×2 pooling, 1568 → 10).
fn fashion_cnn(seed: u64) -> (zoo::Cnn, String) {
    let config = zoo::ZooConfig::default();
    if let Ok(Some(trained)) = zoo::load_cached(zoo::ReferenceModel::FashionCnn, &config) {
        if let zoo::TrainedWeights::Cnn(cnn) = trained.weights {
            return (cnn, "fashion-cnn (trained, cache)".into());
        }
    }
    let mut state = seed ^ 5;
    let classifier = seeded_mlp(&[7 * 7 * 32, 10], seed ^ 6).layers.remove(0);
    (
        zoo::Cnn {
            image_height: 28,
            image_width: 28,
            conv1: seeded_conv([1, 3, 3, 1, 1], 16, &mut state),
            conv2: seeded_conv([16, 3, 3, 1, 1], 32, &mut state),
            classifier,
        },
        "Fashion CNN architecture (seeded weights: zoo's Fashion CNN is not in the weight cache)"
            .into(),
    )
}

/// zoo's DS-CNN from the weight cache, else seeded weights of its architecture (49×10 MFCCs, a 10×4 stride-2
/// convolution to 32 channels, three depthwise-separable blocks, 32 → 10).
fn ds_cnn(seed: u64) -> (zoo::DsCnn, String) {
    let config = zoo::ZooConfig::default();
    if let Ok(Some(trained)) = zoo::load_cached(zoo::ReferenceModel::KwsDsCnn, &config) {
        if let zoo::TrainedWeights::DsCnn(network) = trained.weights {
            return (network, "kws-ds-cnn (trained, cache)".into());
        }
    }
    let mut state = seed ^ 7;
    let training = Array2::from_shape_fn((64, 490), |_| splitmix(&mut state) * 4.0 - 2.0);
    let channels = 32;
    let blocks = (0..3)
        .map(|block| zoo::DepthwiseSeparableBlock {
            depthwise: zoo::DepthwiseConv2d {
                weight: Array2::from_shape_fn((channels, 9), |_| splitmix(&mut state) - 0.5),
                bias: Array1::from_shape_fn(channels, |_| splitmix(&mut state) * 0.1),
                kernel_height: 3,
                kernel_width: 3,
                padding: 1,
            },
            pointwise: seeded_mlp(&[channels, channels], seed ^ (8 + block))
                .layers
                .remove(0),
        })
        .collect();
    (
        zoo::DsCnn {
            n_frames: 49,
            n_coefficients: 10,
            input_scaling: zoo::Standardizer::fit(training.view()),
            conv: seeded_conv([1, 10, 4, 2, 1], channels, &mut state),
            blocks,
            classifier: seeded_mlp(&[channels, 10], seed ^ 12).layers.remove(0),
        },
        "DS-CNN architecture (seeded weights: zoo's DS-CNN is not in the weight cache)".into(),
    )
}

/// f32 values one Fashion-CNN query reads and writes: input, two im2col matrices, two convolution outputs,
/// two pooled maps, the logits.
fn cnn_activation_values(cnn: &zoo::Cnn) -> usize {
    let (h, w) = (cnn.image_height, cnn.image_width);
    let c1 = cnn.conv1.out_channels();
    let c2 = cnn.conv2.out_channels();
    let patch2 = cnn.conv2.weight.nrows();
    h * w
        + h * w * cnn.conv1.weight.nrows()
        + h * w * c1
        + (h / 2) * (w / 2) * (c1 + patch2 + c2)
        + (h / 4) * (w / 4) * c2
        + cnn.classifier.out_features()
}

/// f32 values one DS-CNN query reads and writes: input and its standardization, the im2col matrix, the first
/// convolution's output, two maps per block, the pooled vector, the logits.
fn ds_cnn_activation_values(network: &zoo::DsCnn) -> usize {
    let input = network.n_frames * network.n_coefficients;
    let (out_height, out_width) = network
        .conv
        .output_size(network.n_frames, network.n_coefficients);
    let positions = out_height * out_width;
    let channels = network.conv.out_channels();
    2 * input
        + positions * network.conv.weight.nrows()
        + positions * channels * (1 + 2 * network.blocks.len())
        + channels
        + network.classifier.out_features()
}

fn zoo_mlp(model: zoo::ReferenceModel) -> Option<(zoo::Mlp, String)> {
    let config = zoo::ZooConfig::default();
    let trained = zoo::load_cached(model, &config).ok().flatten()?;
    match trained.weights {
        zoo::TrainedWeights::Mlp(mlp) => Some((mlp, format!("{} (trained, cache)", model.name()))),
        zoo::TrainedWeights::Autoencoder(autoencoder) => Some((
            autoencoder.network,
            format!("{} (trained, cache)", model.name()),
        )),
        _ => None,
    }
}

fn event_models(seed: u64) -> Vec<Result<EventModel>> {
    let mut models = Vec::new();
    let (fashion, fashion_name) = zoo_mlp(zoo::ReferenceModel::FashionMlp).unwrap_or_else(|| {
        (
            seeded_mlp(&[784, 256, 10], seed),
            "784-256-10 MLP (seeded weights: the Fashion MLP is not in the weight cache)".into(),
        )
    });
    models.push(classifier_model(
        "image_classification",
        fashion_name,
        true,
        &fashion,
        InputTransform::Identity,
        784,
    ));
    let (autoencoder, autoencoder_name) = zoo_mlp(zoo::ReferenceModel::DigitsAutoencoder)
        .unwrap_or_else(|| {
            (
                seeded_mlp(&[64, 32, 8, 32, 64], seed ^ 1),
                "64-32-8-32-64 autoencoder (seeded weights: not in the weight cache)".into(),
            )
        });
    models.push(autoencoder_model(autoencoder_name, &autoencoder));
    let kws = seeded_mlp(&[490, 128, 10], seed ^ 2);
    let training = Array2::from_shape_fn((64, 490), {
        let mut state = seed ^ 3;
        move |_| splitmix(&mut state) * 4.0 - 2.0
    });
    models.push(classifier_model(
        "keyword_spotting",
        "490-128-10 MLP on standardized MFCCs (seeded weights, the event's shapes)".into(),
        false,
        &kws,
        InputTransform::Standardize(zoo::Standardizer::fit(training.view())),
        490,
    ));
    let (cnn, cnn_name) = fashion_cnn(seed);
    models.push(conv_model(
        "image_classification_cnn",
        cnn_name,
        cnn.image_height * cnn.image_width,
        cnn_activation_values(&cnn),
        |name, format| ConvClassifier::from_cnn(name, &cnn, format),
    ));
    let (network, ds_cnn_name) = ds_cnn(seed);
    models.push(conv_model(
        "keyword_spotting_ds_cnn",
        ds_cnn_name,
        network.n_frames * network.n_coefficients,
        ds_cnn_activation_values(&network),
        |name, format| ConvClassifier::from_ds_cnn(name, &network, format),
    ));
    let side = olympics::events::VWW_SIDE;
    let pooled = (side / 4) * (side / 4);
    let vww = seeded_mlp(&[pooled, 64, 2], seed ^ 4);
    models.push(classifier_model(
        "visual_wake_words",
        format!("{side}×{side}×3 pooled to grey, {pooled}-64-2 MLP (seeded weights, the event's shapes)"),
        false,
        &vww,
        InputTransform::PoolGrey {
            side,
            channels: 3,
            factor: 4,
        },
        side * side * 3,
    ));
    models
}

/// int8 and f16 against f32, interleaved; returns the f32 median per query (ns) of the first comparison.
fn speed_claims(
    config: &CompareConfig,
    model: &EventModel,
    queries: &Array2<f32>,
    results: &mut Vec<ClaimResult>,
) -> Option<f64> {
    let output_width = {
        let first = queries.slice(ndarray::s![0..1, ..]);
        match model.submissions[0].forward(first) {
            Ok(output) => output.ncols(),
            Err(error) => {
                results.push(
                    Claim::measured(
                        &format!("batch1.{}.f32", model.event),
                        MODULE,
                        "f32 forward",
                    )
                    .error(error.to_string()),
                );
                return None;
            }
        }
    };
    let mut f32_median_ns = None;
    for (target, direction_word) in [(1usize, "int8"), (2, "f16")] {
        let candidate = &model.submissions[target];
        let baseline = &model.submissions[0];
        let (threshold, statement) = if target == 1 {
            let bar = if model.large { 1.5 } else { 1.0 };
            (
                bar,
                format!(
                    "{}: int8 answers one query (batch 1, one thread) at least {bar}× as fast as f32 ({})",
                    model.event, model.model
                ),
            )
        } else {
            (
                1.0 / 1.2,
                format!(
                    "{}: f16 takes at most 1.2× the f32 time per query (batch 1, one thread; speedup ≥ 0.833) ({})",
                    model.event, model.model
                ),
            )
        };
        let claim = Claim::threshold(
            &format!("batch1.{}.{direction_word}_vs_f32", model.event),
            MODULE,
            &statement,
            threshold,
            Direction::AtLeast,
        );
        let mut baseline_out = Array2::<f32>::zeros((1, output_width));
        let mut candidate_out = Array2::<f32>::zeros((1, output_width));
        let (mut next_baseline, mut next_candidate) = (0usize, 0usize);
        let outcome = try_compare(
            config,
            queries,
            |queries| {
                let row = next_baseline % queries.nrows();
                next_baseline += 1;
                baseline
                    .forward_into(
                        queries.slice(ndarray::s![row..row + 1, ..]),
                        baseline_out.view_mut(),
                    )
                    .map(|()| baseline_out[[0, 0]])
            },
            |queries| {
                let row = next_candidate % queries.nrows();
                next_candidate += 1;
                candidate
                    .forward_into(
                        queries.slice(ndarray::s![row..row + 1, ..]),
                        candidate_out.view_mut(),
                    )
                    .map(|()| candidate_out[[0, 0]])
            },
        );
        let result = outcome
            .map_err(anyhow::Error::from)
            .and_then(|comparison| {
                f32_median_ns.get_or_insert(comparison.baseline.median());
                Ok(claim
                    .judge_comparison(&comparison)?
                    .needs_quiet_machine()
                    .with_detail("f32_median_us", comparison.baseline.median() / 1e3)
                    .with_detail(
                        format!("{direction_word}_median_us"),
                        comparison.candidate.median() / 1e3,
                    )
                    .with_detail("f32_kernels", &model.kernels[0])
                    .with_detail(format!("{direction_word}_kernels"), &model.kernels[target])
                    .with_detail("f32_storage_bytes", model.submissions[0].storage_bytes())
                    .with_detail(
                        format!("{direction_word}_storage_bytes"),
                        candidate.storage_bytes(),
                    )
                    .with_detail("fairness", &comparison.fairness))
            })
            .unwrap_or_else(|error| claim.error(format!("{error:#}")));
        results.push(result.annotate(format!(
            "kernels: f32 [{}], {direction_word} [{}]",
            model.kernels[0], model.kernels[target]
        )));
    }
    f32_median_ns
}

fn roofline_claim(
    model: &EventModel,
    queries: &Array2<f32>,
    config: &CompareConfig,
    quick: bool,
) -> Vec<ClaimResult> {
    let mut rows = Vec::new();
    for (index, (_, name)) in FORMATS.iter().enumerate() {
        let submission = &model.submissions[index];
        let claim = Claim::measured(
            &format!("batch1.{}.{name}_roofline", model.event),
            MODULE,
            &format!(
                "{}: {name} per-query latency over the bandwidth floor (bytes moved / triad bandwidth at the same footprint)",
                model.event
            ),
        );
        let bytes = submission.storage_bytes() + 4 * model.activation_values;
        // The triad's three arrays together span the query's footprint, so the bandwidth is that of the cache
        // level the weights live in (not DRAM's, which would understate what a warm query can reach).
        let array_bytes = (bytes / 3).max(64 << 10);
        let bandwidth = match measure_bandwidth(&BandwidthConfig {
            array_bytes,
            chunk_bytes: array_bytes,
            repetitions: 200,
        }) {
            Ok(report) => report,
            Err(error) => {
                rows.push(claim.error(format!("bandwidth: {error}")));
                continue;
            }
        };
        let mut output = Array2::<f32>::zeros((1, 1));
        let out_width = match submission.forward(queries.slice(ndarray::s![0..1, ..])) {
            Ok(out) => out.ncols(),
            Err(error) => {
                rows.push(claim.error(error.to_string()));
                continue;
            }
        };
        if output.ncols() != out_width {
            output = Array2::zeros((1, out_width));
        }
        let mut next = 0usize;
        let measured = perf_core::fallible::try_measure(
            &format!("{}/{name}", model.event),
            &config_measure(config, quick),
            queries,
            |queries| {
                let row = next % queries.nrows();
                next += 1;
                submission
                    .forward_into(
                        queries.slice(ndarray::s![row..row + 1, ..]),
                        output.view_mut(),
                    )
                    .map(|()| output[[0, 0]])
            },
        );
        let result = match measured {
            Ok(measured) => {
                let floor_ns = bytes as f64 / bandwidth.gbytes_per_second;
                let latency = &measured.result;
                let Some((lower, upper)) = latency.median_ci() else {
                    rows.push(claim.inconclusive(
                        format!(
                            "no interval on the median ({})",
                            latency.median_ci_note().unwrap_or("too few samples")
                        ),
                        None,
                    ));
                    continue;
                };
                match Estimate::new(
                    latency.median() / floor_ns,
                    lower / floor_ns,
                    upper / floor_ns,
                    "× floor",
                    latency.confidence_level(),
                ) {
                    Ok(estimate) => {
                        let judged = claim.judge(estimate);
                        let remark = format!(
                            "{bytes} B per query / {:.1} GB/s = {:.2} µs floor, measured median {:.2} µs; kernels [{}]",
                            bandwidth.gbytes_per_second,
                            floor_ns / 1e3,
                            latency.median() / 1e3,
                            model.kernels[index]
                        );
                        judged
                            .annotate(remark)
                            .needs_quiet_machine()
                            .with_detail("bytes_per_query", bytes)
                            .with_detail("bandwidth_gbytes_per_second", bandwidth.gbytes_per_second)
                            .with_detail("bandwidth_array_bytes", array_bytes)
                            .with_detail("floor_us", floor_ns / 1e3)
                            .with_detail("latency_median_us", latency.median() / 1e3)
                            .with_detail("kernels", &model.kernels[index])
                            .with_detail("model", &model.model)
                    }
                    Err(error) => claim.error(error.to_string()),
                }
            }
            Err(error) => claim.error(error.to_string()),
        };
        rows.push(result);
    }
    rows
}

fn config_measure(config: &CompareConfig, quick: bool) -> perf_core::measure::MeasureConfig {
    let base = if quick {
        perf_core::measure::MeasureConfig::quick()
    } else {
        perf_core::measure::MeasureConfig::default()
    };
    perf_core::measure::MeasureConfig {
        min_sample_time: config.min_sample_time,
        ..base
    }
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let base = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    let config = CompareConfig {
        seed: context.seed,
        ..base
    };
    let mut results = Vec::new();
    for (index, model) in event_models(context.seed).into_iter().enumerate() {
        let model = match model {
            Ok(model) => model,
            Err(error) => {
                results.push(
                    Claim::measured(&format!("batch1.model_{index}"), MODULE, "event model")
                        .error(format!("{error:#}")),
                );
                continue;
            }
        };
        let mut state = context.seed ^ (index as u64 + 17);
        let queries =
            Array2::from_shape_fn((N_QUERIES, model.input_width), |_| splitmix(&mut state));
        speed_claims(&config, &model, &queries, &mut results);
        results.extend(roofline_claim(&model, &queries, &config, context.quick));
    }
    Ok(results)
}
