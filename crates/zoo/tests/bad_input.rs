//! Caller input the library cannot use is an error, never a panic: a pool over images without
//! pixels, unigram statistics over tokens outside the vocabulary, a language model with no
//! context, and a hand-built transformer whose parts disagree with its configuration.

use ndarray::{Array1, Array2, Array4};
use zoo::layers::global_average_pool;
use zoo::{
    evaluate_language_model, unigram_cross_entropy, CharTransformer, CharTransformerConfig,
    LayerNorm, Linear, TransformerBlock, ZooError,
};

fn linear(inputs: usize, outputs: usize) -> Linear {
    Linear {
        weight: Array2::from_elem((inputs, outputs), 0.01),
        bias: Array1::zeros(outputs),
    }
}

fn norm(width: usize) -> LayerNorm {
    LayerNorm {
        gamma: Array1::ones(width),
        beta: Array1::zeros(width),
        eps: 1e-5,
    }
}

/// A consistent one-block transformer of `config`.
fn transformer(config: CharTransformerConfig) -> CharTransformer {
    let d_model = config.d_model;
    CharTransformer {
        vocabulary: ('a'..).take(config.vocab_size).collect(),
        token_embedding: Array2::from_elem((config.vocab_size, d_model), 0.1),
        position_embedding: Array2::from_elem((config.context_length, d_model), 0.1),
        blocks: vec![TransformerBlock {
            ln1: norm(d_model),
            query: linear(d_model, d_model),
            key: linear(d_model, d_model),
            value: linear(d_model, d_model),
            output: linear(d_model, d_model),
            ln2: norm(d_model),
            mlp_up: linear(d_model, config.d_ff),
            mlp_down: linear(config.d_ff, d_model),
        }],
        ln_final: norm(d_model),
        lm_head: linear(d_model, config.vocab_size),
        config,
    }
}

const CONFIG: CharTransformerConfig = CharTransformerConfig {
    vocab_size: 5,
    context_length: 4,
    d_model: 8,
    n_heads: 2,
    n_layers: 1,
    d_ff: 16,
};

#[test]
fn global_average_pool_of_images_without_pixels_is_an_error() {
    let pooled = global_average_pool(Array4::<f32>::ones((2, 3, 3, 4)).view()).unwrap();
    assert_eq!(pooled, Array2::<f32>::ones((2, 4)));
    for empty in [(2, 0, 3, 4), (2, 3, 0, 4)] {
        assert!(matches!(
            global_average_pool(Array4::<f32>::zeros(empty).view()),
            Err(ZooError::Shape { .. })
        ));
    }
}

#[test]
fn unigram_tokens_outside_the_vocabulary_are_an_error() {
    let loss = unigram_cross_entropy(&[0, 1, 1], &[1, 2], 3).unwrap();
    // Add-one smoothing: counts (2, 3, 1) over 6.
    let expected = -((3.0f64 / 6.0).ln() + (1.0f64 / 6.0).ln()) / 2.0;
    assert!((loss - expected).abs() < 1e-12, "{loss}");
    for (train, evaluated) in [(&[0u32, 3][..], &[1u32][..]), (&[0, 1], &[7])] {
        assert!(matches!(
            unigram_cross_entropy(train, evaluated, 3),
            Err(ZooError::InvalidArgument { .. })
        ));
    }
}

#[test]
fn a_language_model_without_context_is_an_error() {
    let tokens = [0, 1, 2, 3, 4, 0, 1, 2, 3];
    let (_, predicted, _) = evaluate_language_model(&transformer(CONFIG), &tokens).unwrap();
    assert_eq!(predicted, 8);
    let no_context = transformer(CharTransformerConfig {
        context_length: 0,
        ..CONFIG
    });
    assert!(matches!(
        evaluate_language_model(&no_context, &tokens),
        Err(ZooError::InvalidArgument { .. })
    ));
}

#[test]
fn a_transformer_whose_parts_disagree_with_its_config_is_an_error() {
    let good = transformer(CONFIG);
    assert_eq!(good.forward(&[0, 4, 2]).unwrap().dim(), (3, 5));
    let mut broken = Vec::new();
    let mut no_heads = good.clone();
    no_heads.config.n_heads = 0;
    broken.push(no_heads);
    let mut short_vocabulary = good.clone();
    short_vocabulary.token_embedding = Array2::zeros((3, 8));
    broken.push(short_vocabulary);
    let mut short_positions = good.clone();
    short_positions.position_embedding = Array2::zeros((2, 8));
    broken.push(short_positions);
    let mut narrow_embedding = good.clone();
    narrow_embedding.token_embedding = Array2::zeros((5, 6));
    broken.push(narrow_embedding);
    let mut narrow_keys = good.clone();
    narrow_keys.blocks[0].key = linear(8, 4);
    broken.push(narrow_keys);
    let mut wide_output = good.clone();
    wide_output.blocks[0].output = linear(8, 9);
    broken.push(wide_output);
    let mut narrow_mlp = good;
    narrow_mlp.blocks[0].mlp_down = linear(16, 3);
    broken.push(narrow_mlp);
    for model in &broken {
        assert!(model.forward(&[0, 4, 2]).is_err(), "{:?}", model.config);
    }
}
