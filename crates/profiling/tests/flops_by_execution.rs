//! The analytic counts of every layer kind equal what the counting reference kernels execute, on
//! several shapes and batch sizes; stored parameters equal described parameters; the fast forward
//! path agrees with the reference numerically; bad descriptions are typed errors.

use profiling::layer::{
    Activation, ActivationSpec, AttentionMode, AttentionSpec, Conv2dSpec, EmbeddingSpec, Layer,
    LayerNormSpec, LayerSpec, LinearSpec, Model, Pool2dSpec, PoolKind,
};
use profiling::{Network, ProfilingError};
use proptest::prelude::*;

fn linear(in_features: usize, out_features: usize, positions: usize, bias: bool) -> LayerSpec {
    LayerSpec::Linear(LinearSpec {
        in_features,
        out_features,
        positions,
        bias,
    })
}

fn attention(d_model: usize, heads: usize, mode: AttentionMode, bias: bool) -> LayerSpec {
    LayerSpec::Attention(AttentionSpec {
        d_model,
        heads,
        mode,
        bias,
    })
}

fn pool(
    kind: PoolKind,
    channels: usize,
    input: (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
) -> LayerSpec {
    LayerSpec::Pool2d(Pool2dSpec {
        kind,
        channels,
        input,
        kernel: (kernel, kernel),
        stride: (stride, stride),
        padding: (padding, padding),
    })
}

/// Every kind on several shapes, including the edge cases (1 × 1 kernels, stride > kernel,
/// dilation, depthwise, grouped, decode at context 1, windows covering the whole input).
fn table() -> Vec<LayerSpec> {
    let mut specs = vec![
        linear(1, 1, 1, false),
        linear(7, 5, 1, true),
        linear(16, 3, 4, true),
        LayerSpec::Conv2d(Conv2dSpec::new(1, 1, (1, 1), (1, 1))),
        LayerSpec::Conv2d(Conv2dSpec::new(3, 4, (7, 6), (3, 3))),
        LayerSpec::Conv2d(
            Conv2dSpec::new(3, 4, (7, 6), (3, 2))
                .with_padding((1, 2))
                .with_stride((2, 3))
                .without_bias(),
        ),
        LayerSpec::Conv2d(
            Conv2dSpec::new(2, 2, (9, 9), (3, 3))
                .with_dilation((2, 3))
                .with_padding((1, 0)),
        ),
        LayerSpec::Conv2d(
            Conv2dSpec::new(6, 6, (5, 4), (3, 3))
                .with_padding((1, 1))
                .with_groups(6),
        ),
        LayerSpec::Conv2d(
            Conv2dSpec::new(4, 8, (5, 5), (3, 3))
                .with_groups(2)
                .with_stride((2, 2)),
        ),
        LayerSpec::Conv2d(Conv2dSpec::new(2, 3, (4, 4), (1, 1)).with_stride((3, 3))),
        attention(8, 2, AttentionMode::Prefill { seq_len: 5 }, true),
        attention(12, 3, AttentionMode::Prefill { seq_len: 1 }, false),
        attention(8, 1, AttentionMode::Decode { context_len: 1 }, true),
        attention(12, 4, AttentionMode::Decode { context_len: 9 }, true),
        LayerSpec::LayerNorm(LayerNormSpec {
            features: 1,
            positions: 1,
        }),
        LayerSpec::LayerNorm(LayerNormSpec {
            features: 10,
            positions: 3,
        }),
        LayerSpec::Embedding(EmbeddingSpec {
            vocab_size: 11,
            dim: 4,
            positions: 3,
        }),
        pool(PoolKind::Max, 3, (6, 6), 2, 2, 0),
        pool(PoolKind::Max, 2, (7, 5), 3, 2, 1),
        pool(PoolKind::Average, 2, (7, 5), 3, 1, 1),
        LayerSpec::Pool2d(Pool2dSpec::global_average(4, (3, 5))),
    ];
    for function in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Silu,
        Activation::Gelu,
    ] {
        specs.push(LayerSpec::Activation(ActivationSpec {
            function,
            elements: 13,
        }));
    }
    specs
}

fn check_counts(spec: LayerSpec, batch: usize) -> Result<(), String> {
    let layer = Layer::new("layer", spec).map_err(|e| e.to_string())?;
    let cost = layer.cost(batch).map_err(|e| e.to_string())?;
    let network = Network::new(
        Model::new("one layer", vec![layer.clone()]).map_err(|e| e.to_string())?,
        7,
        batch,
    )
    .map_err(|e| e.to_string())?;
    let input = network.example_input(batch, 11);
    let (output, executed) = network
        .reference_layer(0, &input, batch)
        .map_err(|e| e.to_string())?;
    let context = format!("{spec:?} batch {batch}");
    if executed.multiply_adds != cost.multiply_adds {
        return Err(format!(
            "{context}: executed {} multiply-adds, analytic {}",
            executed.multiply_adds, cost.multiply_adds
        ));
    }
    if executed.other_ops != cost.other_ops {
        return Err(format!(
            "{context}: executed {} other ops, analytic {}",
            executed.other_ops, cost.other_ops
        ));
    }
    if executed.flops() != cost.flops {
        return Err(format!("{context}: flops differ"));
    }
    if network.stored_parameters() != cost.parameters {
        return Err(format!(
            "{context}: stored {} parameters, described {}",
            network.stored_parameters(),
            cost.parameters
        ));
    }
    if output.len() != batch * layer.output_elements() {
        return Err(format!(
            "{context}: output has {} values, described {}",
            output.len(),
            batch * layer.output_elements()
        ));
    }
    Ok(())
}

#[test]
fn executed_counts_equal_analytic_counts_for_every_kind() {
    for spec in table() {
        for batch in [1, 2, 3] {
            if let Err(message) = check_counts(spec, batch) {
                panic!("{message}");
            }
        }
    }
}

#[test]
fn fast_forward_agrees_with_the_reference() {
    for spec in table() {
        let batch = 2;
        let layer = Layer::new("layer", spec).unwrap();
        let network = Network::new(Model::new("one", vec![layer]).unwrap(), 3, batch).unwrap();
        let input = network.example_input(batch, 5);
        let fast = network.forward_layer(0, &input, batch).unwrap();
        let (reference, _) = network.reference_layer(0, &input, batch).unwrap();
        assert_eq!(fast.len(), reference.len(), "{spec:?}");
        for (index, (&f, &r)) in fast.iter().zip(&reference).enumerate() {
            // Sums of at most a few hundred terms of magnitude ≤ 1 in another order: rounding
            // differences stay far below 1e-3 absolute or relative.
            let tolerance = 1e-3f32.max(1e-3 * r.abs());
            assert!(
                (f - r).abs() <= tolerance,
                "{spec:?} index {index}: fast {f}, reference {r}"
            );
        }
    }
}

#[test]
fn a_whole_model_counts_what_its_table_says() {
    let model = profiling::models::ds_cnn_kws().unwrap();
    let rows = model.table(1).unwrap();
    let network = Network::new(model, 1, 1).unwrap();
    let input = network.example_input(1, 2);
    let (_, counts) = network.reference_forward(&input, 1).unwrap();
    for (row, executed) in rows.iter().zip(&counts) {
        assert_eq!(
            row.cost.multiply_adds, executed.multiply_adds,
            "{}",
            row.name
        );
        assert_eq!(row.cost.other_ops, executed.other_ops, "{}", row.name);
    }
    let percent: f64 = rows.iter().map(|row| row.flops_percent).sum();
    assert!((percent - 100.0).abs() < 1e-9);
    assert_eq!(network.stored_parameters(), network.model().parameters());
}

#[test]
fn published_parameter_counts() {
    // GPT-2 small: 7,087,872 parameters per block, 38,597,376 in the token embedding.
    let block = profiling::models::gpt2_small_block_prefill(4).unwrap();
    assert_eq!(block.parameters(), 7_087_872);
    assert_eq!(
        profiling::models::gpt2_small_embedding(1)
            .unwrap()
            .parameters(),
        38_597_376
    );
    // A decode block has the same parameters; its cost differs.
    let decode = profiling::models::gpt2_small_block_decode(64).unwrap();
    assert_eq!(decode.parameters(), 7_087_872);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED), failure_persistence: None, ..ProptestConfig::default() })]

    /// Any valid convolution executes exactly its analytic count; any invalid one is refused.
    #[test]
    fn any_valid_convolution_counts_exactly(
        group_in in 1usize..3, group_out in 1usize..3, groups in 1usize..3,
        height in 1usize..7, width in 1usize..7, kernel_h in 1usize..4, kernel_w in 1usize..4,
        stride in 1usize..3, padding in 0usize..2, dilation in 1usize..3, batch in 1usize..3,
    ) {
        let spec = LayerSpec::Conv2d(
            Conv2dSpec::new(group_in * groups, group_out * groups, (height, width), (kernel_h, kernel_w))
                .with_stride((stride, stride))
                .with_padding((padding, padding))
                .with_dilation((dilation, dilation))
                .with_groups(groups),
        );
        let fits = |input: usize, kernel: usize| dilation * (kernel - 1) < input + 2 * padding;
        match Layer::new("conv", spec) {
            Ok(_) => {
                prop_assert!(fits(height, kernel_h) && fits(width, kernel_w));
                prop_assert_eq!(check_counts(spec, batch), Ok(()));
            }
            Err(ProfilingError::KernelLargerThanInput { .. }) => {
                prop_assert!(!(fits(height, kernel_h) && fits(width, kernel_w)));
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn bad_descriptions_are_typed_errors() {
    let zero_channels = Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(0, 4, (8, 8), (3, 3))),
    );
    assert!(matches!(
        zero_channels,
        Err(ProfilingError::ZeroDimension {
            field: "in_channels",
            ..
        })
    ));
    let too_big = Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(3, 4, (4, 4), (5, 5))),
    );
    assert!(matches!(
        too_big,
        Err(ProfilingError::KernelLargerThanInput {
            kernel_extent: 5,
            padded_input: 4,
            ..
        })
    ));
    // The same kernel fits once padded.
    assert!(Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(3, 4, (4, 4), (5, 5)).with_padding((1, 1)))
    )
    .is_ok());
    // Dilation makes a small kernel too large.
    let dilated = Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(1, 1, (4, 4), (3, 3)).with_dilation((2, 2))),
    );
    assert!(matches!(
        dilated,
        Err(ProfilingError::KernelLargerThanInput {
            kernel_extent: 5,
            ..
        })
    ));
    let groups = Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(6, 4, (4, 4), (1, 1)).with_groups(4)),
    );
    assert!(matches!(
        groups,
        Err(ProfilingError::GroupsMismatch { groups: 4, .. })
    ));
    let zero_stride = Layer::new(
        "c",
        LayerSpec::Conv2d(Conv2dSpec::new(1, 1, (4, 4), (1, 1)).with_stride((0, 1))),
    );
    assert!(matches!(
        zero_stride,
        Err(ProfilingError::ZeroDimension { .. })
    ));
    let heads = Layer::new(
        "a",
        attention(10, 3, AttentionMode::Prefill { seq_len: 4 }, true),
    );
    assert!(matches!(
        heads,
        Err(ProfilingError::HeadsMismatch {
            d_model: 10,
            heads: 3,
            ..
        })
    ));
    let no_context = Layer::new(
        "a",
        attention(8, 2, AttentionMode::Decode { context_len: 0 }, true),
    );
    assert!(matches!(
        no_context,
        Err(ProfilingError::ZeroDimension {
            field: "context_len",
            ..
        })
    ));
    let padding = Layer::new("p", pool(PoolKind::Max, 1, (8, 8), 2, 2, 2));
    assert!(matches!(
        padding,
        Err(ProfilingError::PaddingTooLarge { .. })
    ));
    let window = Layer::new("p", pool(PoolKind::Average, 1, (2, 2), 3, 1, 0));
    assert!(matches!(
        window,
        Err(ProfilingError::KernelLargerThanInput { .. })
    ));
    assert!(matches!(
        Layer::new("l", linear(0, 3, 1, true)),
        Err(ProfilingError::ZeroDimension { .. })
    ));
    let huge = Layer::new("l", linear(usize::MAX / 2, 3, 1, true));
    assert!(matches!(
        huge,
        Err(ProfilingError::Overflow {
            what: "parameters",
            ..
        })
    ));
    let layer = Layer::new("l", linear(3, 3, 1, true)).unwrap();
    assert!(matches!(
        layer.cost(0),
        Err(ProfilingError::ZeroDimension { field: "batch", .. })
    ));

    // Models: empty, and layers that do not chain.
    assert!(matches!(
        Model::new("m", vec![]),
        Err(ProfilingError::EmptyModel)
    ));
    let mismatch = Model::new(
        "m",
        vec![
            Layer::new("a", linear(4, 5, 1, true)).unwrap(),
            Layer::new("b", linear(6, 2, 1, true)).unwrap(),
        ],
    );
    assert!(matches!(
        mismatch,
        Err(ProfilingError::ShapeMismatch {
            expected: 6,
            found: 5,
            ..
        })
    ));

    // Execution: a layer the model does not have, wrong input length, bad token ids, a batch
    // larger than the KV cache.
    let network = Network::new(Model::new("m", vec![layer]).unwrap(), 1, 1).unwrap();
    assert!(matches!(
        network.forward_layer(1, &[1.0, 2.0, 3.0], 1),
        Err(ProfilingError::LayerIndex {
            index: 1,
            layers: 1
        })
    ));
    assert!(matches!(
        network.forward_layer(0, &[1.0, 2.0, 3.0], usize::MAX),
        Err(ProfilingError::Overflow { .. })
    ));
    assert!(matches!(
        network.reference_layer(7, &[1.0, 2.0, 3.0], 1),
        Err(ProfilingError::LayerIndex {
            index: 7,
            layers: 1
        })
    ));
    assert!(matches!(
        network.forward(&[1.0, 2.0], 1),
        Err(ProfilingError::InputLength {
            expected: 3,
            found: 2,
            ..
        })
    ));
    let embedding = Layer::new(
        "e",
        LayerSpec::Embedding(EmbeddingSpec {
            vocab_size: 4,
            dim: 2,
            positions: 2,
        }),
    )
    .unwrap();
    let network = Network::new(Model::new("m", vec![embedding]).unwrap(), 1, 1).unwrap();
    assert!(matches!(
        network.forward(&[1.0, 4.0], 1),
        Err(ProfilingError::InvalidTokenId { .. })
    ));
    assert!(matches!(
        network.forward(&[1.5, 0.0], 1),
        Err(ProfilingError::InvalidTokenId { .. })
    ));
    let decode = Layer::new(
        "a",
        attention(8, 2, AttentionMode::Decode { context_len: 3 }, true),
    )
    .unwrap();
    let network = Network::new(Model::new("m", vec![decode]).unwrap(), 1, 1).unwrap();
    assert!(matches!(
        network.forward(&[0.0; 16], 2),
        Err(ProfilingError::InvalidConfig(_))
    ));
}

#[test]
fn hardware_counters_say_why_they_are_missing() {
    let (value, probe) = profiling::counters::count_hardware(|| 41 + 1);
    assert_eq!(value, 42);
    match probe {
        perf_core::alloc::Probe::Unavailable(reason) => {
            assert!(reason.starts_with("unavailable: "))
        }
        perf_core::alloc::Probe::Available(_) => panic!("this crate never reads counters"),
    }
}

#[test]
fn memory_without_the_counting_allocator_is_an_error() {
    // This test binary does not install the counting allocator: zeros would look like a result.
    let result = profiling::memory::profile_memory(|| vec![0u8; 16]);
    assert!(matches!(
        result,
        Err(ProfilingError::Measurement(
            perf_core::PerfError::AllocatorNotInstalled
        ))
    ));
}
