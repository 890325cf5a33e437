//! The transformer with projections other than dense f32: a model built from parts with a
//! projection implemented here (weights rounded to 8-bit codes, computed by a plain loop) decodes
//! with the cache exactly as it recomputes, MLPs narrower than `d_ff` (structured pruning) compute
//! what zeroed neurons compute, a projection that couples rows is caught by the gate, the scoring
//! pass gives every position's logits, and wrong parts are typed errors.
//!
//! Tolerance 1e-4 normwise relative, as in `cached_equals_recompute.rs`: both sides compute the
//! same sums in f32 in different orders (attention on different kernels); a wrong position or a
//! row-coupled projection changes logits at order 1e-2 or more.

use accel::MatmulConfig;
use kvcache::{
    max_relative_error, Block, CacheMode, Decoder, DenseProjection, KvCacheError, ModelConfig,
    PositionalEncoding, Projection, Transformer, TransformerParts,
};
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOLERANCE: f64 = 1e-4;

/// Weights stored as i8 codes with one scale per output column, computed by a plain triple loop:
/// another storage and another kernel than the dense path, row-independent.
#[derive(Debug, Clone)]
struct Rounded {
    codes: Array2<i8>,
    scales: Vec<f32>,
    bias: Array1<f32>,
}

impl Rounded {
    fn from_dense(dense: &DenseProjection) -> Self {
        let weight = dense.weight();
        let scales: Vec<f32> = weight
            .columns()
            .into_iter()
            .map(|column| column.fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12) / 127.0)
            .collect();
        let codes = Array2::from_shape_fn(weight.dim(), |(row, col)| {
            (weight[[row, col]] / scales[col]).round() as i8
        });
        Rounded {
            codes,
            scales,
            bias: dense.bias().to_owned(),
        }
    }

    /// The dense f32 weight it represents.
    fn dense_twin(&self) -> DenseProjection {
        let weight = Array2::from_shape_fn(self.codes.dim(), |(row, col)| {
            f32::from(self.codes[[row, col]]) * self.scales[col]
        });
        DenseProjection::new(weight, self.bias.clone()).unwrap()
    }
}

impl Projection for Rounded {
    fn in_features(&self) -> usize {
        self.codes.nrows()
    }

    fn out_features(&self) -> usize {
        self.codes.ncols()
    }

    fn storage_bytes(&self) -> usize {
        self.codes.len() + 4 * (self.scales.len() + self.bias.len())
    }

    fn kind(&self) -> &'static str {
        "test int8 codes, naive loop"
    }

    fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        _matmul: &MatmulConfig,
    ) -> Result<(), KvCacheError> {
        for (x, mut y) in input.rows().into_iter().zip(output.rows_mut()) {
            for col in 0..self.out_features() {
                let mut sum = 0.0f32;
                for (row, &value) in x.iter().enumerate() {
                    sum += value * f32::from(self.codes[[row, col]]);
                }
                let value = sum * self.scales[col] + self.bias[col];
                y[col] = if accumulate { y[col] + value } else { value };
            }
        }
        Ok(())
    }
}

/// A projection whose rows interact: every output is shifted by the mean of the whole input
/// matrix (what one activation scale per call over all rows amounts to). Cached decoding projects
/// one row where recomputation projects the prefix, so the gate must catch it.
#[derive(Debug, Clone)]
struct RowCoupled(DenseProjection);

impl Projection for RowCoupled {
    fn in_features(&self) -> usize {
        self.0.in_features()
    }
    fn out_features(&self) -> usize {
        self.0.out_features()
    }
    fn storage_bytes(&self) -> usize {
        self.0.storage_bytes()
    }
    fn kind(&self) -> &'static str {
        "test row-coupled"
    }
    fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        matmul: &MatmulConfig,
    ) -> Result<(), KvCacheError> {
        self.0
            .forward_into(input, output.view_mut(), accumulate, matmul)?;
        let shift = input.mean().unwrap_or(0.0);
        output.mapv_inplace(|value| value + shift);
        Ok(())
    }
}

fn config(seed: u64) -> ModelConfig {
    let mut rng = StdRng::seed_from_u64(seed);
    let n_heads = rng.random_range(1..=3);
    let d_model = n_heads * 4 * rng.random_range(1..=3);
    ModelConfig {
        vocab_size: rng.random_range(5..=40),
        d_model,
        n_heads,
        n_layers: rng.random_range(1..=2),
        d_ff: 2 * d_model,
        max_seq_len: 24,
        positional: if seed.is_multiple_of(2) {
            PositionalEncoding::Learned
        } else {
            PositionalEncoding::Sinusoidal
        },
        layer_norm_epsilon: 1e-5,
    }
}

/// The parts of a dense random model, every projection mapped through `map`.
fn mapped_parts<Q>(
    model: &Transformer,
    mut map: impl FnMut(&DenseProjection) -> Q,
) -> TransformerParts<Q> {
    let weights = model.to_weights();
    TransformerParts {
        token_embedding: weights.token_embedding,
        position_table: weights.position_table,
        blocks: model
            .blocks()
            .iter()
            .map(|block| Block {
                attention_norm_gain: block.attention_norm_gain.clone(),
                attention_norm_bias: block.attention_norm_bias.clone(),
                qkv: map(&block.qkv),
                output: map(&block.output),
                mlp_norm_gain: block.mlp_norm_gain.clone(),
                mlp_norm_bias: block.mlp_norm_bias.clone(),
                up: map(&block.up),
                down: map(&block.down),
            })
            .collect(),
        final_norm_gain: weights.final_norm_gain,
        final_norm_bias: weights.final_norm_bias,
        lm_head: map(model.lm_head()),
    }
}

/// Worst error of cached (contiguous, paged) against recomputed logits over a prefill of
/// `prompt_len` tokens and `steps` steps, batch 2.
fn worst_cached_error<P: Projection>(
    model: &Transformer<P>,
    seed: u64,
    prompt_len: usize,
    steps: usize,
) -> f64 {
    let vocab = model.config().vocab_size as u32;
    let mut rng = StdRng::seed_from_u64(seed);
    let prompts = Array2::from_shape_simple_fn((2, prompt_len), || rng.random_range(0..vocab));
    let modes = [
        CacheMode::Disabled,
        CacheMode::Contiguous,
        CacheMode::Paged { block_size: 3 },
    ];
    let mut decoders: Vec<Decoder<'_, P>> = modes
        .iter()
        .map(|&mode| Decoder::new(model, 2, prompt_len + steps, mode).unwrap())
        .collect();
    let mut logits: Vec<Array2<f32>> = decoders
        .iter_mut()
        .map(|decoder| decoder.prefill(prompts.view()).unwrap())
        .collect();
    let mut worst = 0.0f64;
    for step in 0..=steps {
        for candidate in &logits[1..] {
            worst = worst.max(max_relative_error(candidate, &logits[0]).unwrap());
        }
        if step == steps {
            break;
        }
        let tokens = [rng.random_range(0..vocab), rng.random_range(0..vocab)];
        logits = decoders
            .iter_mut()
            .map(|decoder| decoder.step(&tokens).unwrap())
            .collect();
    }
    worst
}

#[test]
fn another_projection_decodes_with_the_cache_as_it_recomputes() {
    for seed in 0..6u64 {
        let config = config(seed);
        let dense = Transformer::random(config, seed).unwrap();
        let rounded =
            Transformer::from_parts(config, mapped_parts(&dense, Rounded::from_dense)).unwrap();
        let worst = worst_cached_error(&rounded, seed, 1 + seed as usize % 5, 8);
        assert!(worst <= TOLERANCE, "seed {seed}: {worst}");
        // And it computes what its dense twin computes (the forward pass is the same).
        let twin = Transformer::from_parts(
            config,
            mapped_parts(&dense, |p| Rounded::from_dense(p).dense_twin()),
        )
        .unwrap();
        let tokens = Array2::from_shape_fn((1, 7), |(_, t)| (t * 3 % config.vocab_size) as u32);
        let a = rounded
            .forward(tokens.view(), &mut rounded.new_cache(1, 7).unwrap())
            .unwrap();
        let b = twin
            .forward(tokens.view(), &mut twin.new_cache(1, 7).unwrap())
            .unwrap();
        let error = max_relative_error(&a, &b).unwrap();
        assert!(error <= TOLERANCE, "seed {seed}: twin {error}");
        assert!(rounded.storage_bytes() < dense.storage_bytes());
    }
}

#[test]
fn a_row_coupled_projection_is_caught_by_the_gate() {
    let config = config(2);
    let dense = Transformer::random(config, 2).unwrap();
    let coupled =
        Transformer::from_parts(config, mapped_parts(&dense, |p| RowCoupled(p.clone()))).unwrap();
    let worst = worst_cached_error(&coupled, 2, 5, 6);
    assert!(worst > 100.0 * TOLERANCE, "{worst}");
}

#[test]
fn narrower_mlps_compute_what_zeroed_neurons_compute() {
    for seed in 10..14u64 {
        let config = config(seed);
        let dense = Transformer::random(config, seed).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut zeroed = dense.to_weights();
        let mut pruned = mapped_parts(&dense, Clone::clone);
        for (layer, block) in zeroed.layers.iter_mut().zip(&mut pruned.blocks) {
            // Keep a different random subset in each block (at least one neuron).
            let keep: Vec<usize> = (0..config.d_ff)
                .filter(|&neuron| neuron == 0 || rng.random_bool(0.5))
                .collect();
            for neuron in (0..config.d_ff).filter(|neuron| !keep.contains(neuron)) {
                layer.down_weight.row_mut(neuron).fill(0.0);
            }
            let (up_weight, up_bias) = block.up.clone().into_parts();
            let (down_weight, down_bias) = block.down.clone().into_parts();
            block.up = DenseProjection::new(
                up_weight.select(Axis(1), &keep),
                up_bias.select(Axis(0), &keep),
            )
            .unwrap();
            block.down =
                DenseProjection::new(down_weight.select(Axis(0), &keep), down_bias).unwrap();
        }
        let zeroed = Transformer::from_weights(config, zeroed).unwrap();
        let pruned = Transformer::from_parts(config, pruned).unwrap();
        assert!(pruned.storage_bytes() < zeroed.storage_bytes());
        let tokens =
            Array2::from_shape_fn((2, 6), |(b, t)| ((b + 5 * t) % config.vocab_size) as u32);
        let a = pruned
            .forward(tokens.view(), &mut pruned.new_cache(2, 6).unwrap())
            .unwrap();
        let b = zeroed
            .forward(tokens.view(), &mut zeroed.new_cache(2, 6).unwrap())
            .unwrap();
        let error = max_relative_error(&a, &b).unwrap();
        assert!(error <= TOLERANCE, "seed {seed}: {error}");
        let worst = worst_cached_error(&pruned, seed, 3, 6);
        assert!(worst <= TOLERANCE, "seed {seed}: cached {worst}");
    }
}

#[test]
fn the_scoring_pass_gives_the_logits_of_every_position() {
    let config = config(4);
    let model = Transformer::random(config, 4).unwrap();
    let tokens = Array2::from_shape_fn((2, 9), |(b, t)| {
        ((3 * b + 7 * t) % config.vocab_size) as u32
    });
    let every = model
        .forward_every_position(tokens.view(), &mut model.new_cache(2, 9).unwrap())
        .unwrap();
    assert_eq!(every.dim(), (18, config.vocab_size));
    for length in 1..=9 {
        let prefix = tokens.slice(s![.., ..length]);
        let last = model
            .forward(prefix, &mut model.new_cache(2, length).unwrap())
            .unwrap();
        for sequence in 0..2 {
            let row = every.slice(s![sequence * 9 + length - 1..sequence * 9 + length, ..]);
            let error = max_relative_error(
                &row.to_owned(),
                &last.slice(s![sequence..=sequence, ..]).to_owned(),
            )
            .unwrap();
            assert!(error <= TOLERANCE, "length {length}: {error}");
        }
    }
}

#[test]
fn wrong_parts_are_typed_errors() {
    let config = ModelConfig {
        positional: PositionalEncoding::Learned,
        ..config(6)
    };
    let dense = Transformer::random(config, 6).unwrap();
    // An up projection whose width the down projection does not take.
    let mut parts = mapped_parts(&dense, Clone::clone);
    let (up_weight, up_bias) = parts.blocks[0].up.clone().into_parts();
    parts.blocks[0].up = DenseProjection::new(
        up_weight.slice(s![.., 1..]).to_owned(),
        up_bias.slice(s![1..]).to_owned(),
    )
    .unwrap();
    match Transformer::from_parts(config, parts) {
        Err(KvCacheError::ShapeMismatch { what, .. }) => assert!(what.contains("down"), "{what}"),
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    // A head of the wrong width.
    let mut parts = mapped_parts(&dense, Clone::clone);
    parts.lm_head = parts.blocks[0].output.clone();
    assert!(matches!(
        Transformer::from_parts(config, parts),
        Err(KvCacheError::ShapeMismatch { .. })
    ));
    // A NaN in a LayerNorm.
    let mut parts = mapped_parts(&dense, Clone::clone);
    parts.final_norm_gain[0] = f32::NAN;
    assert!(matches!(
        Transformer::from_parts(config, parts),
        Err(KvCacheError::InvalidConfig { .. })
    ));
    // A bias of the wrong length.
    assert!(matches!(
        DenseProjection::new(Array2::zeros((3, 4)), Array1::zeros(3)),
        Err(KvCacheError::ShapeMismatch { .. })
    ));
}
