//! The challenge's model on kvcache's transformer: the f32 path equals zoo's own forward pass at every
//! position; for every recipe (f32, int8, f16, CSR, structured pruning) kvcache's cached decoding equals its
//! full recomputation with the same projections; the cached and uncached submissions agree in any batching;
//! CSR pruning of the fused query–key–value matrix prunes each of the three as its own layer; malformed
//! queries are errors.
//!
//! Tolerances (normwise relative, max over rows of `max_i |a_i − b_i| / max_i |b_i|`): 1e-4 where both sides
//! compute the same sums in f32 in different orders (GEMV against GEMM, attention chunked differently),
//! which stays near 1e-6; the same for int8, whose activations are quantized per token, so a cached step
//! and the recompute quantize a token alike (a code can still flip where f32 rounding moves a value across
//! a rounding boundary; at these sizes none does — the test would show it).
#![cfg(feature = "reference")]

use kvcache::{max_relative_error, CacheMode, Decoder, Projection};
use ndarray::{s, Array1, Array2};
use olympics::challenge::NextCharSubmission;
use olympics::challenge_model::{
    char_transformer_weights, compress_char_transformer, compress_transformer,
};
use olympics::compress::{prune_magnitude, CompressedLinear, Recipe, WeightFormat};
use olympics::Submission;
use rand::{Rng, SeedableRng};
use zoo::{CharTransformer, CharTransformerConfig, LayerNorm, Linear, TransformerBlock};

const TOLERANCE: f64 = 1e-4;

fn random_matrix(
    rng: &mut rand::rngs::StdRng,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| scale * (rng.random::<f32>() * 2.0 - 1.0))
}

fn random_linear(rng: &mut rand::rngs::StdRng, inputs: usize, outputs: usize) -> Linear {
    Linear {
        weight: random_matrix(rng, inputs, outputs, 1.0 / (inputs as f32).sqrt()),
        bias: Array1::from_shape_fn(outputs, |_| 0.1 * (rng.random::<f32>() - 0.5)),
    }
}

fn layer_norm(rng: &mut rand::rngs::StdRng, width: usize) -> LayerNorm {
    LayerNorm {
        gamma: Array1::from_shape_fn(width, |_| 1.0 + 0.1 * (rng.random::<f32>() - 0.5)),
        beta: Array1::from_shape_fn(width, |_| 0.1 * (rng.random::<f32>() - 0.5)),
        eps: 1e-5,
    }
}

fn random_transformer(seed: u64) -> CharTransformer {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let config = CharTransformerConfig {
        vocab_size: 11,
        context_length: 9,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
    };
    let blocks = (0..config.n_layers)
        .map(|_| TransformerBlock {
            ln1: layer_norm(&mut rng, 8),
            query: random_linear(&mut rng, 8, 8),
            key: random_linear(&mut rng, 8, 8),
            value: random_linear(&mut rng, 8, 8),
            output: random_linear(&mut rng, 8, 8),
            ln2: layer_norm(&mut rng, 8),
            mlp_up: random_linear(&mut rng, 8, 16),
            mlp_down: random_linear(&mut rng, 16, 8),
        })
        .collect();
    CharTransformer {
        vocabulary: (0..11u8).map(|index| char::from(b'a' + index)).collect(),
        token_embedding: random_matrix(&mut rng, 11, 8, 1.0),
        position_embedding: random_matrix(&mut rng, 9, 8, 0.3),
        blocks,
        ln_final: layer_norm(&mut rng, 8),
        lm_head: random_linear(&mut rng, 8, 11),
        config,
    }
}

const TOKENS: [u32; 9] = [3, 1, 4, 1, 5, 9, 2, 6, 5];

#[test]
fn the_f32_path_equals_zoo_at_every_position() {
    for seed in [1u64, 2, 3] {
        let zoo_model = random_transformer(seed);
        let reference = zoo_model.forward(&TOKENS).unwrap();
        let model = compress_char_transformer(&zoo_model, &Recipe::BASELINE).unwrap();
        let tokens = Array2::from_shape_vec((1, 9), TOKENS.to_vec()).unwrap();
        let every = model
            .forward_every_position(tokens.view(), &mut model.new_cache(1, 9).unwrap())
            .unwrap();
        let error = max_relative_error(&every, &reference).unwrap();
        assert!(error <= TOLERANCE, "seed {seed}: recompute vs zoo {error}");
        // Decoding with the cache, token by token.
        let mut decoder = Decoder::new(&model, 1, 9, CacheMode::Contiguous).unwrap();
        let mut logits = decoder.prefill(tokens.slice(s![.., ..1])).unwrap();
        for position in 0..9 {
            let zoo_row = reference.slice(s![position..=position, ..]).to_owned();
            let error = max_relative_error(&logits, &zoo_row).unwrap();
            assert!(
                error <= TOLERANCE,
                "seed {seed} position {position}: {error}"
            );
            if position + 1 < 9 {
                logits = decoder.step(&[TOKENS[position + 1]]).unwrap();
            }
        }
    }
}

#[test]
fn a_swapped_projection_is_caught() {
    // The comparison can fail: exchanging the key and query weights must break agreement with zoo.
    let zoo_model = random_transformer(4);
    let mut swapped = zoo_model.clone();
    for block in &mut swapped.blocks {
        std::mem::swap(&mut block.query, &mut block.key);
    }
    let model = compress_char_transformer(&swapped, &Recipe::BASELINE).unwrap();
    let tokens = Array2::from_shape_vec((1, 9), TOKENS.to_vec()).unwrap();
    let every = model
        .forward_every_position(tokens.view(), &mut model.new_cache(1, 9).unwrap())
        .unwrap();
    let error = max_relative_error(&every, &zoo_model.forward(&TOKENS).unwrap()).unwrap();
    assert!(error > 100.0 * TOLERANCE, "{error}");
}

#[test]
fn cached_decoding_equals_recomputation_for_every_recipe() {
    for seed in [5u64, 6] {
        let zoo_model = random_transformer(seed);
        for (name, recipe) in Recipe::projection_kinds() {
            let model = compress_char_transformer(&zoo_model, &recipe).unwrap();
            let mut worst = 0.0f64;
            let modes = [
                CacheMode::Disabled,
                CacheMode::Contiguous,
                CacheMode::Paged { block_size: 2 },
            ];
            let prompt = Array2::from_shape_vec((1, 3), TOKENS[..3].to_vec()).unwrap();
            let mut decoders: Vec<_> = modes
                .iter()
                .map(|&mode| Decoder::new(&model, 1, 9, mode).unwrap())
                .collect();
            let mut logits: Vec<Array2<f32>> = decoders
                .iter_mut()
                .map(|decoder| decoder.prefill(prompt.view()).unwrap())
                .collect();
            for &token in &TOKENS[3..] {
                for candidate in &logits[1..] {
                    worst = worst.max(max_relative_error(candidate, &logits[0]).unwrap());
                }
                logits = decoders
                    .iter_mut()
                    .map(|decoder| decoder.step(&[token]).unwrap())
                    .collect();
            }
            assert!(worst <= TOLERANCE, "{name} seed {seed}: {worst}");
        }
    }
}

#[test]
fn compression_stores_what_the_recipe_says() {
    let zoo_model = random_transformer(7);
    let (config, weights) = char_transformer_weights(&zoo_model).unwrap();
    let baseline = compress_transformer(config, &weights, &Recipe::BASELINE).unwrap();
    for (name, recipe) in Recipe::projection_kinds().into_iter().skip(1) {
        let model = compress_transformer(config, &weights, &recipe).unwrap();
        // CSR at 50% stores a u32 index beside each kept f32 value: no smaller than dense.
        assert!(
            recipe.unstructured.is_some() || model.storage_bytes() < baseline.storage_bytes(),
            "{name}: {} ≥ {}",
            model.storage_bytes(),
            baseline.storage_bytes()
        );
        if recipe.structured.is_some() {
            assert!(model
                .blocks()
                .iter()
                .all(|block| block.up.out_features() == 8));
        }
    }
    // CSR of the fused query–key–value matrix prunes each of the three as its own layer.
    let sparse = compress_transformer(
        config,
        &weights,
        &Recipe {
            format: WeightFormat::F32,
            structured: None,
            unstructured: Some(0.5),
        },
    )
    .unwrap();
    let block = &sparse.blocks()[0];
    let identity = Array2::<f32>::eye(8);
    let mut recovered = Array2::<f32>::zeros((8, 24));
    block
        .qkv
        .forward_into(
            identity.view(),
            recovered.view_mut(),
            false,
            &accel::MatmulConfig::default(),
        )
        .unwrap();
    // Rows of the identity give W + b; subtract the bias to read W back.
    let bias = &weights.layers[0].qkv_bias;
    recovered -= bias;
    for (index, source) in [
        &zoo_model.blocks[0].query,
        &zoo_model.blocks[0].key,
        &zoo_model.blocks[0].value,
    ]
    .iter()
    .enumerate()
    {
        let expected = prune_magnitude(source.weight.view(), 0.5).unwrap();
        let part = recovered.slice(s![.., index * 8..(index + 1) * 8]);
        let difference = part
            .iter()
            .zip(&expected)
            .fold(0.0f32, |max, (a, b)| max.max((a - b).abs()));
        assert!(difference < 1e-6, "part {index}: {difference}");
    }
    assert!(compress_transformer(
        config,
        &weights,
        &Recipe {
            format: WeightFormat::Int8,
            structured: None,
            unstructured: Some(0.5),
        }
    )
    .is_err());
}

fn stream_rows(tokens: &[u32], context: usize) -> Array2<f32> {
    let mut rows = Array2::<f32>::zeros((tokens.len(), context + 1));
    for length in 1..=tokens.len() {
        rows[[length - 1, 0]] = length as f32;
        for (slot, &token) in tokens[..length].iter().enumerate() {
            rows[[length - 1, slot + 1]] = token as f32;
        }
    }
    rows
}

fn max_abs_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .fold(0.0, |max, (x, y)| max.max((x - y).abs()))
}

#[test]
fn cached_and_uncached_submissions_agree_in_any_batching() {
    let zoo_model = random_transformer(2);
    for (name, recipe) in Recipe::projection_kinds() {
        let model = compress_char_transformer(&zoo_model, &recipe).unwrap();
        let uncached = NextCharSubmission::new("uncached", model.clone(), &recipe, false).unwrap();
        let cached = NextCharSubmission::new("cached", model, &recipe, true).unwrap();
        let rows = stream_rows(&TOKENS, 9);
        let all_at_once = uncached.forward(rows.view()).unwrap();
        let mut one_by_one = Array2::<f32>::zeros(all_at_once.dim());
        let mut uncached_one_by_one = Array2::<f32>::zeros(all_at_once.dim());
        for row in 0..rows.nrows() {
            let query = rows.slice(s![row..row + 1, ..]);
            one_by_one
                .row_mut(row)
                .assign(&cached.forward(query).unwrap().row(0));
            uncached_one_by_one
                .row_mut(row)
                .assign(&uncached.forward(query).unwrap().row(0));
        }
        // f32 rounding only (see the header), for int8 too: its activations are quantized per token.
        let difference = max_relative_error(&all_at_once, &one_by_one).unwrap();
        assert!(difference <= TOLERANCE, "{name}: {difference}");
        let difference = max_relative_error(&all_at_once, &uncached_one_by_one).unwrap();
        assert!(difference <= TOLERANCE, "{name}: uncached {difference}");
        // A query that does not extend the cached prefix recomputes from scratch.
        let restart = cached.forward(rows.slice(s![2..3, ..])).unwrap();
        let restart_difference =
            max_abs_difference(&restart, &one_by_one.slice(s![2..3, ..]).to_owned());
        assert!(restart_difference < 1e-5, "{name}: {restart_difference}");
        // Two rows of one stream in one call, after a reset.
        cached.reset();
        let pair = cached.forward(rows.slice(s![4..6, ..])).unwrap();
        let pair_difference =
            max_relative_error(&pair, &one_by_one.slice(s![4..6, ..]).to_owned()).unwrap();
        assert!(pair_difference <= TOLERANCE, "{name}: {pair_difference}");
        assert!(cached
            .optimizations()
            .contains(&olympics::Optimization::KvCache));
        assert!(!uncached
            .optimizations()
            .contains(&olympics::Optimization::KvCache));
    }
}

#[test]
fn malformed_queries_are_errors() {
    let model = compress_char_transformer(&random_transformer(3), &Recipe::BASELINE).unwrap();
    let submission = NextCharSubmission::new("x", model, &Recipe::BASELINE, true).unwrap();
    let mut rows = stream_rows(&TOKENS[..2], 9);
    rows[[0, 0]] = 0.0;
    assert!(submission.forward(rows.view()).is_err());
    let mut rows = stream_rows(&TOKENS[..2], 9);
    rows[[1, 1]] = 99.0;
    assert!(submission.forward(rows.view()).is_err());
    assert!(submission
        .forward(Array2::<f32>::zeros((1, 3)).view())
        .is_err());
    // After an error the submission still answers.
    let rows = stream_rows(&TOKENS[..3], 9);
    assert!(submission.forward(rows.view()).is_ok());
}

#[test]
fn a_context_of_zero_and_a_split_without_columns_are_errors() {
    use olympics::challenge::{next_char_event, tokens_from_zoo_test};
    use olympics::DataSource;
    let source = DataSource {
        origin: datasets::DataOrigin::Synthetic,
        name: "toy".into(),
        description: "generated in the test".into(),
        attribution: String::new(),
    };
    let config = random_transformer(4).config;
    // One window of 9 + 1 tokens: 9 queries.
    let tokens: Vec<u32> = TOKENS.iter().chain(&TOKENS).copied().collect();
    let event = next_char_event(&tokens, &config, 0.5, 0.01, 10.0, source.clone()).unwrap();
    assert_eq!(event.test.len(), 9);
    let no_context = CharTransformerConfig {
        context_length: 0,
        ..config
    };
    assert!(matches!(
        next_char_event(&tokens, &no_context, 0.5, 0.01, 10.0, source),
        Err(olympics::OlympicsError::InvalidArgument { .. })
    ));
    let features = Array2::from_shape_fn((3, 1), |(row, _)| row as f32);
    assert_eq!(
        tokens_from_zoo_test(features.view()).unwrap(),
        vec![0, 1, 2]
    );
    assert!(matches!(
        tokens_from_zoo_test(Array2::<f32>::zeros((3, 0)).view()),
        Err(olympics::OlympicsError::InvalidArgument { .. })
    ));
}

#[test]
fn compressed_projections_compute_each_row_as_the_layer_does() {
    // Every storage, few rows (matrix–vector paths) and many (GEMM paths), contiguous and strided views,
    // written and accumulated, against the layer's own forward pass on one row at a time.
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let layer = random_linear(&mut rng, 13, 7);
    let layers = [
        CompressedLinear::new(&layer, WeightFormat::F32).unwrap(),
        CompressedLinear::new(&layer, WeightFormat::Int8).unwrap(),
        CompressedLinear::new(&layer, WeightFormat::F16).unwrap(),
        CompressedLinear::sparse(&layer, 0.5).unwrap(),
    ];
    let matmul = accel::MatmulConfig::default();
    for compressed in &layers {
        for rows in [1usize, 2, 6] {
            let x = random_matrix(&mut rng, rows, 13, 1.0);
            let mut reference = Array2::<f32>::zeros((rows, 7));
            for row in 0..rows {
                let one = compressed.forward(x.slice(s![row..=row, ..])).unwrap();
                reference.row_mut(row).assign(&one.row(0));
            }
            // int8: the row path adds the bias after dequantization, the batch path folds it into
            // accumulator units; they differ by at most half an output step (s_x · s_w / 2).
            let tolerance = match compressed {
                CompressedLinear::Int8(_) => 1e-2,
                _ => 1e-5,
            };
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let close = |actual: &Array2<f32>, expected: &Array2<f32>, what: &str| {
                let difference = max_abs_difference(actual, expected);
                assert!(
                    difference <= tolerance * scale.max(1.0),
                    "{} rows {rows} {what}: {difference}",
                    Projection::kind(compressed)
                );
            };
            let mut out = Array2::<f32>::from_elem((rows, 7), f32::NAN);
            Projection::forward_into(compressed, x.view(), out.view_mut(), false, &matmul).unwrap();
            close(&out, &reference, "contiguous");
            // Strided input and output (transposed storage), accumulated onto ones.
            let x_columns = x.t().as_standard_layout().to_owned();
            let mut out_columns = Array2::<f32>::ones((7, rows));
            Projection::forward_into(
                compressed,
                x_columns.t(),
                out_columns.view_mut().reversed_axes(),
                true,
                &matmul,
            )
            .unwrap();
            close(
                &out_columns.t().to_owned(),
                &(&reference + 1.0),
                "strided, accumulated",
            );
        }
    }
}
