//! End-to-end checks of the peers against the Python harness: exported ONNX models run in ONNX Runtime and
//! PyTorch give the Rust models' outputs, a broken peer (crash, hang, wrong shape, garbage, NaN) is an
//! ERROR for itself alone with no process left behind, and the child sees none of the parent's environment.
//!
//! They need the peers' venv (`bash peers/setup.sh`). Without it they print why and pass, unless
//! `TORCHPERF_REQUIRE_PEERS=1`, which makes a missing venv a failure (CI sets it after `.ci/peers.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use datasets::DataOrigin;
use ndarray::{Array1, Array2, ArrayView2};
use olympics::referee::referee_self_timed;
use olympics::{
    referee, DataSource, Event, EventSpec, OlympicsError, Optimization, Outcome, RefereeConfig,
    Submission, TestSet,
};
use peers::environment::apply_minimal_environment;
use peers::{
    char_transformer_to_onnx_bytes, cnn_to_onnx_bytes, ds_cnn_to_onnx_bytes, to_onnx_bytes,
    ExternalSubmission, OnnxExport, OnnxHead, PeerConfig, PeerEnvironment, PeerSpec, Precision,
    Runtime,
};
use rand::{Rng, SeedableRng};
use zoo::{
    Autoencoder, CharTransformer, CharTransformerConfig, Classifier, Cnn, Conv2d, DepthwiseConv2d,
    DepthwiseSeparableBlock, DsCnn, LayerNorm, Linear, Mlp, Standardizer, TransformerBlock,
};

fn environment() -> Option<PeerEnvironment> {
    match PeerEnvironment::discover() {
        Ok(environment) => Some(environment),
        Err(error) => {
            assert!(
                std::env::var("TORCHPERF_REQUIRE_PEERS").as_deref() != Ok("1"),
                "TORCHPERF_REQUIRE_PEERS=1 but {error}"
            );
            eprintln!("peers test skipped: {error}");
            None
        }
    }
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torchperf-peers-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random_mlp(widths: &[usize], seed: u64) -> Mlp {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let layers = widths
        .windows(2)
        .map(|pair| {
            let scale = (2.0 / pair[0] as f32).sqrt();
            Linear {
                weight: Array2::from_shape_fn((pair[0], pair[1]), |_| {
                    rng.random_range(-scale..scale)
                }),
                bias: Array1::from_shape_fn(pair[1], |_| rng.random_range(-0.1..0.1)),
            }
        })
        .collect();
    Mlp { layers }
}

fn random_rows(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(0.0..1.0))
}

fn write_model(dir: &Path, name: &str, export: &OnnxExport<'_>) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, to_onnx_bytes(export).unwrap()).unwrap();
    path
}

/// Largest violation of `|peer − reference| ≤ 1e-4 + 1e-4 · |reference|`: f32 sums of up to 784 products
/// accumulated in another order differ by a few units in the last place of the partial sums, far below
/// this bound, while a wrong layout or a missing bias or ReLU is off by orders of magnitude more.
fn worst_excess(peer: ArrayView2<'_, f32>, reference: ArrayView2<'_, f32>) -> f32 {
    assert_eq!(peer.dim(), reference.dim());
    peer.iter()
        .zip(reference.iter())
        .map(|(&got, &want)| (got - want).abs() - (1e-4 + 1e-4 * want.abs()))
        .fold(f32::NEG_INFINITY, f32::max)
}

fn spec(runtime: Runtime, precision: Precision) -> PeerSpec {
    PeerSpec {
        runtime,
        precision,
        threads: 1,
    }
}

/// Starts the f32 peer of the model at `path` in `runtime` and asserts that its output on `inputs` is
/// within the tolerance of `reference`, the Rust model's output (`label` names the model in the message).
fn assert_peer_matches(
    environment: &PeerEnvironment,
    config: &PeerConfig,
    runtime: Runtime,
    path: &Path,
    inputs: ArrayView2<'_, f32>,
    reference: ArrayView2<'_, f32>,
    label: &str,
) {
    let peer = ExternalSubmission::start(environment, path, &spec(runtime, Precision::F32), config)
        .unwrap();
    let output = peer.forward(inputs).unwrap();
    let excess = worst_excess(output.view(), reference);
    assert!(
        excess <= 0.0,
        "{label} in {runtime:?}: tolerance exceeded by {excess}"
    );
}

#[test]
fn exported_models_match_the_rust_models_in_both_runtimes() {
    let Some(environment) = environment() else {
        return;
    };
    let dir = scratch_dir("equivalence");
    let config = PeerConfig {
        scratch: Some(dir.clone()),
        ..PeerConfig::default()
    };
    let mut runtimes = vec![Runtime::OnnxRuntime];
    match environment.torch() {
        Ok(_) => runtimes.push(Runtime::Torch),
        Err(error) => eprintln!("torch rows skipped: {error}"),
    }
    // The events' shapes: the digits and Fashion MLPs, and the digits autoencoder.
    for (name, widths) in [
        ("digits_mlp", vec![64, 128, 10]),
        ("fashion_mlp", vec![784, 256, 10]),
    ] {
        let network = random_mlp(&widths, 7);
        let path = write_model(
            &dir,
            name,
            &OnnxExport {
                name,
                network: &network,
                standardizer: None,
                grey_pooling: None,
                head: OnnxHead::Logits,
            },
        );
        let inputs = random_rows(33, widths[0], 11);
        let reference = network.forward(inputs.view()).unwrap();
        for &runtime in &runtimes {
            assert_peer_matches(
                &environment,
                &config,
                runtime,
                &path,
                inputs.view(),
                reference.view(),
                name,
            );
        }
    }
    // zoo's two-convolution CNN at the Fashion shape (narrower channels keep the test fast).
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut conv = |in_channels: usize, out_channels: usize| Conv2d {
        weight: Array2::from_shape_fn((in_channels * 9, out_channels), |_| {
            rng.random_range(-0.3..0.3)
        }),
        bias: Array1::from_shape_fn(out_channels, |_| rng.random_range(-0.1..0.1)),
        in_channels,
        kernel_height: 3,
        kernel_width: 3,
        stride: 1,
        padding: 1,
    };
    let cnn = Cnn {
        image_height: 28,
        image_width: 28,
        conv1: conv(1, 4),
        conv2: conv(4, 8),
        classifier: random_mlp(&[8 * 7 * 7, 10], 17).layers.remove(0),
    };
    let cnn_path = dir.join("cnn.onnx");
    std::fs::write(&cnn_path, cnn_to_onnx_bytes("cnn", &cnn).unwrap()).unwrap();
    let images = random_rows(9, 784, 19);
    let reference = cnn.logits(images.view()).unwrap();
    for &runtime in &runtimes {
        assert_peer_matches(
            &environment,
            &config,
            runtime,
            &cnn_path,
            images.view(),
            reference.view(),
            "cnn",
        );
    }
    let autoencoder = Autoencoder {
        network: random_mlp(&[64, 32, 8, 32, 64], 3),
    };
    let path = write_model(
        &dir,
        "autoencoder",
        &OnnxExport {
            name: "autoencoder",
            network: &autoencoder.network,
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::ReconstructionError,
        },
    );
    let inputs = random_rows(40, 64, 5);
    let reference = autoencoder
        .anomaly_scores(inputs.view())
        .unwrap()
        .insert_axis(ndarray::Axis(1));
    for &runtime in &runtimes {
        assert_peer_matches(
            &environment,
            &config,
            runtime,
            &path,
            inputs.view(),
            reference.view(),
            "autoencoder",
        );
        // The int8 peers load and answer the right shape (their error is the quantization's, measured by
        // the referee as quality, not bounded here).
        let int8 = ExternalSubmission::start(
            &environment,
            &path,
            &spec(runtime, Precision::Int8),
            &config,
        )
        .unwrap();
        assert_eq!(int8.forward(inputs.view()).unwrap().dim(), (40, 1));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn random_matrix(
    rows: usize,
    cols: usize,
    scale: f32,
    rng: &mut rand::rngs::StdRng,
) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
}

fn random_vector(len: usize, scale: f32, rng: &mut rand::rngs::StdRng) -> Array1<f32> {
    Array1::from_shape_fn(len, |_| rng.random_range(-scale..scale))
}

/// A DS-CNN of the keyword-spotting shape (49 × 10 MFCC window, MLPerf Tiny's 10 × 4 stride-2 convolution,
/// depthwise-separable blocks), narrower than zoo's so that the test is quick.
fn random_ds_cnn(seed: u64) -> DsCnn {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let channels = 12;
    let conv = Conv2d {
        weight: random_matrix(40, channels, 0.3, &mut rng),
        bias: random_vector(channels, 0.1, &mut rng),
        in_channels: 1,
        kernel_height: 10,
        kernel_width: 4,
        stride: 2,
        padding: 1,
    };
    let blocks = (0..3)
        .map(|_| DepthwiseSeparableBlock {
            depthwise: DepthwiseConv2d {
                weight: random_matrix(channels, 9, 0.4, &mut rng),
                bias: random_vector(channels, 0.1, &mut rng),
                kernel_height: 3,
                kernel_width: 3,
                padding: 1,
            },
            pointwise: Linear {
                weight: random_matrix(channels, channels, 0.4, &mut rng),
                bias: random_vector(channels, 0.1, &mut rng),
            },
        })
        .collect();
    DsCnn {
        n_frames: 49,
        n_coefficients: 10,
        input_scaling: Standardizer {
            mean: random_vector(490, 1.0, &mut rng),
            std: Array1::from_shape_fn(490, |_| rng.random_range(0.5..2.0)),
        },
        conv,
        blocks,
        classifier: Linear {
            weight: random_matrix(channels, 10, 0.5, &mut rng),
            bias: random_vector(10, 0.1, &mut rng),
        },
    }
}

/// A character transformer of zoo's shape family (2 blocks, 4 heads), random weights.
fn random_char_transformer(seed: u64) -> CharTransformer {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let config = CharTransformerConfig {
        vocab_size: 29,
        context_length: 32,
        d_model: 32,
        n_heads: 4,
        n_layers: 2,
        d_ff: 64,
    };
    let d = config.d_model;
    let linear = |inputs: usize, outputs: usize, rng: &mut rand::rngs::StdRng| Linear {
        weight: random_matrix(inputs, outputs, (3.0 / inputs as f32).sqrt(), rng),
        bias: random_vector(outputs, 0.05, rng),
    };
    let norm = |rng: &mut rand::rngs::StdRng| LayerNorm {
        gamma: Array1::from_shape_fn(d, |_| rng.random_range(0.8..1.2)),
        beta: random_vector(d, 0.1, rng),
        eps: 1e-5,
    };
    let blocks = (0..config.n_layers)
        .map(|_| TransformerBlock {
            ln1: norm(&mut rng),
            query: linear(d, d, &mut rng),
            key: linear(d, d, &mut rng),
            value: linear(d, d, &mut rng),
            output: linear(d, d, &mut rng),
            ln2: norm(&mut rng),
            mlp_up: linear(d, config.d_ff, &mut rng),
            mlp_down: linear(config.d_ff, d, &mut rng),
        })
        .collect();
    CharTransformer {
        vocabulary: (0..config.vocab_size as u8)
            .map(|i| (b'a' + i) as char)
            .collect(),
        token_embedding: random_matrix(config.vocab_size, d, 1.0, &mut rng),
        position_embedding: random_matrix(config.context_length, d, 0.5, &mut rng),
        blocks,
        ln_final: norm(&mut rng),
        lm_head: linear(d, config.vocab_size, &mut rng),
        config,
    }
}

#[test]
fn the_ds_cnn_and_the_char_transformer_exports_match_the_rust_models_in_onnx_runtime() {
    let Some(environment) = environment() else {
        return;
    };
    let dir = scratch_dir("ds-cnn-transformer");
    let config = PeerConfig {
        scratch: Some(dir.clone()),
        ..PeerConfig::default()
    };
    let ds_cnn = random_ds_cnn(23);
    let ds_cnn_path = dir.join("ds_cnn.onnx");
    std::fs::write(
        &ds_cnn_path,
        ds_cnn_to_onnx_bytes("ds_cnn", &ds_cnn).unwrap(),
    )
    .unwrap();
    let windows = random_rows(17, 490, 29).mapv(|value| 4.0 * value - 2.0);
    let reference = ds_cnn.logits(windows.view()).unwrap();
    let mut runtimes = vec![Runtime::OnnxRuntime];
    if environment.torch().is_ok() {
        runtimes.push(Runtime::Torch);
    }
    for &runtime in &runtimes {
        assert_peer_matches(
            &environment,
            &config,
            runtime,
            &ds_cnn_path,
            windows.view(),
            reference.view(),
            "ds_cnn",
        );
    }

    // The transformer: ONNX Runtime only (the harness's torch mapping covers the MLPs and CNNs).
    let transformer = random_char_transformer(31);
    let sequence_length = 24;
    let path = dir.join("char_transformer.onnx");
    std::fs::write(
        &path,
        char_transformer_to_onnx_bytes("char_transformer", &transformer, sequence_length).unwrap(),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(37);
    let sequences: Vec<Vec<u32>> = (0..5)
        .map(|_| {
            (0..sequence_length)
                .map(|_| rng.random_range(0..transformer.config.vocab_size as u32))
                .collect()
        })
        .collect();
    let tokens = Array2::from_shape_fn((sequences.len(), sequence_length), |(row, col)| {
        sequences[row][col] as f32
    });
    let vocab = transformer.config.vocab_size;
    let mut reference = Array2::<f32>::zeros((sequences.len(), sequence_length * vocab));
    for (row, sequence) in sequences.iter().enumerate() {
        let logits = transformer.forward(sequence).unwrap();
        reference
            .row_mut(row)
            .assign(&Array1::from_iter(logits.iter().copied()));
    }
    let peer = ExternalSubmission::start(
        &environment,
        &path,
        &spec(Runtime::OnnxRuntime, Precision::F32),
        &config,
    )
    .unwrap();
    let output = peer.forward(tokens.view()).unwrap();
    let excess = worst_excess(output.view(), reference.view());
    assert!(
        excess <= 0.0,
        "char transformer: tolerance exceeded by {excess}"
    );
    // A different prefix changes only the positions after it: the mask is causal in the exported graph too.
    let mut changed = tokens.clone();
    changed[[0, sequence_length - 1]] =
        ((sequences[0][sequence_length - 1] + 1) % vocab as u32) as f32;
    let changed_output = peer.forward(changed.view()).unwrap();
    let earlier = (sequence_length - 1) * vocab;
    assert_eq!(
        changed_output.slice(ndarray::s![0, ..earlier]),
        output.slice(ndarray::s![0, ..earlier])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grey_pooled_and_standardized_mlps_match_the_olympics_transforms() {
    let Some(environment) = environment() else {
        return;
    };
    let dir = scratch_dir("transforms");
    let config = PeerConfig {
        scratch: Some(dir.clone()),
        ..PeerConfig::default()
    };
    let mut runtimes = vec![Runtime::OnnxRuntime];
    if environment.torch().is_ok() {
        runtimes.push(Runtime::Torch);
    }
    // The visual-wake-words input: 96 × 96 × 3 images pooled by 4 to 24 × 24 grey.
    let network = random_mlp(&[576, 32, 2], 41);
    let path = write_model(
        &dir,
        "pooled",
        &OnnxExport {
            name: "pooled",
            network: &network,
            standardizer: None,
            grey_pooling: Some(peers::GreyPooling {
                side: 96,
                channels: 3,
                factor: 4,
            }),
            head: OnnxHead::Logits,
        },
    );
    let images = random_rows(6, 96 * 96 * 3, 43);
    let transform = olympics::submissions::InputTransform::PoolGrey {
        side: 96,
        channels: 3,
        factor: 4,
    };
    let reference = network
        .forward(transform.apply(images.view()).unwrap().view())
        .unwrap();
    // The keyword-spotting input: standardized features.
    let standardized_network = random_mlp(&[490, 16, 10], 47);
    let mut rng = rand::rngs::StdRng::seed_from_u64(53);
    let standardizer = Standardizer {
        mean: random_vector(490, 1.0, &mut rng),
        std: Array1::from_shape_fn(490, |_| rng.random_range(0.5..2.0)),
    };
    let standardized_path = write_model(
        &dir,
        "standardized",
        &OnnxExport {
            name: "standardized",
            network: &standardized_network,
            standardizer: Some(&standardizer),
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
    );
    let windows = random_rows(7, 490, 59);
    let standardized_reference = standardized_network
        .forward(standardizer.apply(windows.view()).unwrap().view())
        .unwrap();
    for &runtime in &runtimes {
        for (path, inputs, reference) in [
            (&path, &images, &reference),
            (&standardized_path, &windows, &standardized_reference),
        ] {
            assert_peer_matches(
                &environment,
                &config,
                runtime,
                path,
                inputs.view(),
                reference.view(),
                &path.display().to_string(),
            );
        }
    }
    // A pooling that does not produce the first layer's width is refused.
    let refused = to_onnx_bytes(&OnnxExport {
        name: "bad",
        network: &network,
        standardizer: None,
        grey_pooling: Some(peers::GreyPooling {
            side: 96,
            channels: 3,
            factor: 5,
        }),
        head: OnnxHead::Logits,
    });
    assert!(matches!(refused, Err(peers::PeersError::Export { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small in-process submission, to show the field is still scored around a broken peer.
struct RustMlp(Mlp);

impl Submission for RustMlp {
    fn name(&self) -> &str {
        "rust_f32"
    }
    fn optimizations(&self) -> Vec<Optimization> {
        Vec::new()
    }
    fn storage_bytes(&self) -> usize {
        4 * self.0.n_parameters()
    }
    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        Ok(self.0.forward(batch)?)
    }
}

fn digits_event(network: &Mlp) -> Event {
    let features = random_rows(120, 64, 21);
    let logits = network.forward(features.view()).unwrap();
    let labels = logits
        .outer_iter()
        .map(|row| {
            (0..row.len()).fold(
                0,
                |best, index| if row[index] > row[best] { index } else { best },
            )
        })
        .collect();
    Event::new(
        EventSpec::image_classification_digits(),
        TestSet::new(features, labels, 10).unwrap(),
        DataSource {
            origin: DataOrigin::Synthetic,
            name: "random rows".into(),
            description: "labels from the model itself (a test of the plumbing, not of quality)"
                .into(),
            attribution: String::new(),
        },
    )
    .unwrap()
}

fn quick_referee() -> RefereeConfig {
    let mut config = RefereeConfig::quick(3);
    config.measure.samples = 20;
    config.measure.warm_up = perf_core::measure::WarmUp::Time(Duration::from_millis(5));
    config
}

#[test]
fn broken_peers_are_errors_for_themselves_alone_and_leave_no_process() {
    let Some(environment) = environment() else {
        return;
    };
    let dir = scratch_dir("faults");
    let network = random_mlp(&[64, 16, 10], 1);
    let path = write_model(
        &dir,
        "mlp",
        &OnnxExport {
            name: "mlp",
            network: &network,
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
    );
    let event = digits_event(&network);
    let config = quick_referee();
    let cases = [
        ("crash", "process ended"),
        ("hang", "hung"),
        ("wrong-shape", "output shape"),
        ("garbage", "garbage"),
        ("nan", "NaN"),
    ];
    for (fault, expected) in cases {
        let peer_config = PeerConfig {
            request_timeout: Duration::from_secs(3),
            fault: Some(fault.into()),
            scratch: Some(dir.clone()),
            ..PeerConfig::default()
        };
        let broken = ExternalSubmission::start(
            &environment,
            &path,
            &spec(Runtime::OnnxRuntime, Precision::F32),
            &peer_config,
        )
        .unwrap();
        let pid = broken.info().pid;
        let healthy = ExternalSubmission::start(
            &environment,
            &path,
            &spec(Runtime::OnnxRuntime, Precision::F32),
            &PeerConfig {
                scratch: Some(dir.clone()),
                ..PeerConfig::default()
            },
        )
        .unwrap();
        match referee_self_timed(&event, &broken, &config) {
            Outcome::Error { reason, .. } => {
                assert!(reason.contains(expected), "{fault}: {reason}")
            }
            Outcome::Scored(_) => panic!("{fault}: a broken peer was scored"),
        }
        // The rest of the field is still scored: a healthy peer and an in-process submission.
        assert!(
            referee_self_timed(&event, &healthy, &config)
                .scorecard()
                .is_some(),
            "{fault}: healthy peer"
        );
        let rust = RustMlp(network.clone());
        assert!(referee(&event, &[&rust], &config)[0].scorecard().is_some());
        drop(broken);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{fault}: peer process {pid} left behind"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_child_sees_none_of_the_parents_environment() {
    let Some(environment) = environment() else {
        return;
    };
    let mut command = Command::new(&environment.python);
    // As if inherited: a token in the parent's environment.
    command.env("TORCHPERF_TEST_SECRET_TOKEN", "hunter2");
    apply_minimal_environment(&mut command, &environment.venv, 1, None);
    command
        .arg("-c")
        .arg("import os; print('\\n'.join(f'{k}={v}' for k, v in os.environ.items()))");
    let output = command.output().unwrap();
    assert!(output.status.success());
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(
        !seen.contains("hunter2") && !seen.contains("TORCHPERF_TEST_SECRET_TOKEN"),
        "{seen}"
    );
    // Variables cargo sets for this test process do not reach the child either.
    assert!(!seen.contains("CARGO"), "{seen}");
    assert!(seen.contains("OMP_NUM_THREADS=1"), "{seen}");
}

/// all-MiniLM-L6-v2 exported by the venv's torch and served by ONNX Runtime: unit-norm embeddings, padding
/// masked (a sentence padded with `[PAD]` embeds as itself alone), int8 with per-channel weights close to
/// f32, batched and trimmed queries timed. Needs `TORCHPERF_MINILM_DIR` (`source .ci/capstone.sh`); without
/// it the test says so and passes.
#[test]
fn minilm_exports_and_serves_in_onnx_runtime() {
    let Some(environment) = environment() else {
        return;
    };
    let Some(model_dir) = std::env::var_os("TORCHPERF_MINILM_DIR").map(PathBuf::from) else {
        eprintln!(
            "minilm peer test skipped: TORCHPERF_MINILM_DIR is not set (source .ci/capstone.sh)"
        );
        return;
    };
    if environment.torch().is_err() {
        eprintln!("minilm peer test skipped: torch is not importable in the venv");
        return;
    }
    let dir = scratch_dir("minilm");
    let path = dir.join("minilm.onnx");
    let exported = peers::export_minilm(&environment, &model_dir, &path, Some(&dir)).unwrap();
    assert!(
        exported.bytes > 1_000_000 && exported.opset >= 13,
        "{exported:?}"
    );
    // [CLS] hello world [SEP], and [CLS] hello [SEP] padded with one [PAD].
    let ids = Array2::from_shape_vec(
        (2, 4),
        vec![101.0, 7592.0, 2088.0, 102.0, 101.0, 7592.0, 102.0, 0.0],
    )
    .unwrap();
    let alone = Array2::from_shape_vec((1, 3), vec![101.0, 7592.0, 102.0]).unwrap();
    let mut outputs = Vec::new();
    for (precision, per_channel) in [(Precision::F32, false), (Precision::Int8, true)] {
        let config = PeerConfig {
            scratch: Some(dir.clone()),
            int8_per_channel: per_channel,
            ..PeerConfig::default()
        };
        let peer = ExternalSubmission::start(
            &environment,
            &path,
            &spec(Runtime::OnnxRuntime, precision),
            &config,
        )
        .unwrap();
        let embeddings = peer.forward(ids.view()).unwrap();
        assert_eq!(embeddings.dim(), (2, 384));
        for row in embeddings.rows() {
            let norm = row.iter().map(|value| value * value).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{precision:?}: norm {norm}");
        }
        let single = peer.forward(alone.view()).unwrap();
        let cosine: f32 = single
            .row(0)
            .iter()
            .zip(embeddings.row(1))
            .map(|(a, b)| a * b)
            .sum();
        // In f32 the mask makes padding invisible; ONNX Runtime's dynamic int8 quantizes each activation
        // tensor with one scale over the whole batch, padding included, so there it only stays close.
        let bound = if precision == Precision::F32 {
            0.99999
        } else {
            0.95
        };
        assert!(
            cosine > bound,
            "{precision:?}: padding changed the embedding ({cosine})"
        );
        // Batched queries (both rows at once) and trimmed single queries are timed.
        use olympics::referee::SelfTimedSubmission as _;
        peer.load_query_batches(ids.view(), 2, false).unwrap();
        assert!(peer.run_timed_queries(2).unwrap() > 0.0);
        peer.load_query_batches(ids.view(), 1, true).unwrap();
        assert!(peer.run_timed_queries(3).unwrap() > 0.0);
        assert!(peer.load_query_batches(ids.view(), 3, false).is_err());
        outputs.push(embeddings);
    }
    // Per-channel int8 stays close to f32 (measured 0.99 on real sentences; 0.95 bounds a broken recipe).
    for row in 0..2 {
        let cosine: f32 = outputs[0]
            .row(row)
            .iter()
            .zip(outputs[1].row(row))
            .map(|(a, b)| a * b)
            .sum();
        assert!(cosine > 0.95, "int8 cosine {cosine}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
