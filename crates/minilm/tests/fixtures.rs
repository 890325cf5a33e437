//! A tiny BERT written to a temporary directory (config, safetensors, WordPiece tokenizer): the encoder against a
//! padded, masked f64 reference written here; the storages and pruning; and every kind of bad input giving a
//! typed error that names the file.

use minilm::{
    prune, BertConfig, BertWeights, Encoder, EncoderConfig, MiniLm, MinilmError, ModelFiles,
    Precision, PruneConfig, SentenceTokenizer, TokenBatch,
};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const VOCAB: [&str; 16] = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "the",
    "devil",
    "is",
    "a",
    "dictionary",
    "of",
    "wit",
    "##s",
    "cynic",
    "word",
    "book",
    ".",
];
const HIDDEN: usize = 8;
const HEADS: usize = 2;
const FFN: usize = 12;
const LAYERS: usize = 2;
const POSITIONS: usize = 16;

fn config_json() -> String {
    serde_json::json!({
        "vocab_size": VOCAB.len(), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "intermediate_size": FFN, "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "model_type": "bert"
    })
    .to_string()
}

fn tokenizer_json(model_type: &str) -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), id.into()))
        .collect();
    let special = |id: usize| {
        serde_json::json!({"id": id, "special": true, "content": VOCAB[id], "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false})
    };
    let token = |name: &str, type_id: u32| serde_json::json!({"SpecialToken": {"id": name, "type_id": type_id}});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0), special(1), special(2), special(3)],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [token("[CLS]", 0), {"Sequence": {"id": "A", "type_id": 0}}, token("[SEP]", 0)],
            "pair": [token("[CLS]", 0), {"Sequence": {"id": "A", "type_id": 0}}, token("[SEP]", 0),
                {"Sequence": {"id": "B", "type_id": 1}}, token("[SEP]", 1)],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": model_type, "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

/// Deterministic weights in about [−0.5, 0.5] (a different phase per tensor).
fn values(count: usize, phase: f32) -> Vec<f32> {
    (0..count)
        .map(|i| 0.5 * ((i as f32 * 0.618 + phase) * 2.399).sin())
        .collect()
}

/// Every tensor of the tiny model in PyTorch layout, by name.
fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut shapes = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![VOCAB.len(), HIDDEN],
        ),
        (
            "embeddings.position_embeddings.weight".to_string(),
            vec![POSITIONS, HIDDEN],
        ),
        (
            "embeddings.token_type_embeddings.weight".to_string(),
            vec![2, HIDDEN],
        ),
        ("embeddings.LayerNorm.weight".to_string(), vec![HIDDEN]),
        ("embeddings.LayerNorm.bias".to_string(), vec![HIDDEN]),
    ];
    for layer in 0..LAYERS {
        let p = format!("encoder.layer.{layer}.");
        for (name, out, inp) in [
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", FFN, HIDDEN),
            ("output.dense", HIDDEN, FFN),
        ] {
            shapes.push((format!("{p}{name}.weight"), vec![out, inp]));
            shapes.push((format!("{p}{name}.bias"), vec![out]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}{name}.weight"), vec![HIDDEN]));
            shapes.push((format!("{p}{name}.bias"), vec![HIDDEN]));
        }
    }
    shapes
}

fn tensor_values(name: &str, shape: &[usize], index: usize) -> Vec<f32> {
    let count = shape.iter().product();
    if name.contains("LayerNorm.weight") {
        return values(count, index as f32)
            .iter()
            .map(|v| 1.0 + 0.2 * v)
            .collect();
    }
    values(count, index as f32)
}

/// Writes a safetensors file; `overrides` replaces a tensor's shape (the data follows the shape).
fn safetensors_bytes(overrides: &HashMap<&str, Vec<usize>>, skip: Option<&str>) -> Vec<u8> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors()
        .into_iter()
        .enumerate()
        .filter(|(_, (name, _))| Some(name.as_str()) != skip)
        .map(|(index, (name, shape))| {
            let shape = overrides.get(name.as_str()).cloned().unwrap_or(shape);
            let bytes = tensor_values(&name, &shape, index)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("view"),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("serializes")
}

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("minilm-fixture-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("config.json"), config_json()).expect("write");
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json("WordPiece")).expect("write");
        std::fs::write(
            dir.join("model.safetensors"),
            safetensors_bytes(&HashMap::new(), None),
        )
        .expect("write");
        Fixture { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn load(&self) -> Result<MiniLm, MinilmError> {
        MiniLm::load(&ModelFiles::locate(Some(&self.dir))?)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn names_file(error: &MinilmError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} does not name {}",
        path.display()
    );
}

/// The encoder in f64 on a padded batch with an additive mask, the way the PyTorch reference computes it.
fn reference_embeddings(weights: &BertWeights, batch: &TokenBatch) -> Vec<Vec<f64>> {
    let eps = weights.config.layer_norm_eps;
    let head_dim = weights
        .config
        .head_dim()
        .expect("the fixture's heads divide its width");
    let norm = |x: &mut Vec<f64>, gain: &[f32], bias: &[f32]| {
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        for (i, v) in x.iter_mut().enumerate() {
            *v = (*v - mean) / (var + eps).sqrt() * f64::from(gain[i]) + f64::from(bias[i]);
        }
    };
    let dense = |x: &[f64], d: &minilm::DenseWeights| -> Vec<f64> {
        (0..d.weight.ncols())
            .map(|j| {
                f64::from(d.bias[j])
                    + x.iter()
                        .enumerate()
                        .map(|(k, v)| v * f64::from(d.weight[[k, j]]))
                        .sum::<f64>()
            })
            .collect()
    };
    let erf = |x: f64| {
        // Maclaurin series; |x| stays small in this model.
        let (mut term, mut sum) = (x, x);
        for n in 1..60 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    };
    let mut out = Vec::new();
    for (row, &length) in batch.lengths.iter().enumerate() {
        let len = batch.seq_len;
        let mut x: Vec<Vec<f64>> = (0..len)
            .map(|position| {
                let id = batch.ids[row * len + position] as usize;
                let mut v: Vec<f64> = (0..HIDDEN)
                    .map(|i| {
                        f64::from(weights.word_embeddings[[id, i]])
                            + f64::from(weights.position_embeddings[[position, i]])
                            + f64::from(weights.token_type_embeddings[[0, i]])
                    })
                    .collect();
                let n = &weights.embeddings_norm;
                norm(
                    &mut v,
                    n.gain.as_slice().unwrap(),
                    n.bias.as_slice().unwrap(),
                );
                v
            })
            .collect();
        for layer in &weights.layers {
            let q: Vec<Vec<f64>> = x.iter().map(|t| dense(t, &layer.query)).collect();
            let k: Vec<Vec<f64>> = x.iter().map(|t| dense(t, &layer.key)).collect();
            let v: Vec<Vec<f64>> = x.iter().map(|t| dense(t, &layer.value)).collect();
            let mut context = vec![vec![0.0; layer.n_heads * head_dim]; len];
            for h in 0..layer.n_heads {
                let cols = h * head_dim..(h + 1) * head_dim;
                for i in 0..len {
                    let scores: Vec<f64> = (0..len)
                        .map(|j| {
                            let dot: f64 = cols.clone().map(|c| q[i][c] * k[j][c]).sum();
                            dot / (head_dim as f64).sqrt() + if j < length { 0.0 } else { -1e30 }
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for j in 0..len {
                        let p = (scores[j] - max).exp() / total;
                        for c in cols.clone() {
                            context[i][c] += p * v[j][c];
                        }
                    }
                }
            }
            for i in 0..len {
                let mut attended = dense(&context[i], &layer.attention_output);
                for (a, b) in attended.iter_mut().zip(&x[i]) {
                    *a += b;
                }
                let n = &layer.attention_norm;
                norm(
                    &mut attended,
                    n.gain.as_slice().unwrap(),
                    n.bias.as_slice().unwrap(),
                );
                let hidden: Vec<f64> = dense(&attended, &layer.intermediate)
                    .iter()
                    .map(|&z| 0.5 * z * (1.0 + erf(z / std::f64::consts::SQRT_2)))
                    .collect();
                let mut y = dense(&hidden, &layer.output);
                for (a, b) in y.iter_mut().zip(&attended) {
                    *a += b;
                }
                let n = &layer.output_norm;
                norm(
                    &mut y,
                    n.gain.as_slice().unwrap(),
                    n.bias.as_slice().unwrap(),
                );
                x[i] = y;
            }
        }
        let mut pooled = [0.0; HIDDEN];
        for token in &x[..length] {
            for (p, v) in pooled.iter_mut().zip(token) {
                *p += v / length as f64;
            }
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f64>().sqrt();
        out.push(pooled.iter().map(|v| v / norm).collect());
    }
    out
}

fn cosine(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let na = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

const SENTENCES: [&str; 3] = [
    "The devil is a dictionary of wits.",
    "Cynic",
    "a word book of the wit",
];

#[test]
fn tiny_model_matches_the_padded_masked_f64_reference() {
    let fixture = Fixture::new("reference");
    let model = fixture.load().expect("fixture loads");
    let batch = model.tokenizer.batch(&SENTENCES).expect("tokenizes");
    assert_eq!(batch.lengths, vec![11, 3, 8], "ids {:?}", batch.ids);
    // "wits" is split into "wit" + "##s"; "Cynic" is lower-cased.
    assert_eq!(&batch.ids[..11], &[2, 4, 5, 6, 7, 8, 9, 10, 11, 15, 3]);
    let encoder = Encoder::new(&model.weights, &EncoderConfig::default()).expect("encoder");
    let embeddings = encoder.embed(&batch).expect("embeds");
    let reference = reference_embeddings(&model.weights, &batch);
    for (row, expected) in embeddings.rows().into_iter().zip(&reference) {
        for (&got, &want) in row.iter().zip(expected) {
            // f32 arithmetic through 2 layers of width 8–12 against f64: a few ulps of unit-scale values.
            assert!((f64::from(got) - want).abs() <= 2e-6, "{got} vs {want}");
        }
    }
}

#[test]
fn storages_stay_close_to_f32_and_shrink_the_bytes() {
    let fixture = Fixture::new("storages");
    let model = fixture.load().expect("fixture loads");
    let batch = model.tokenizer.batch(&SENTENCES).expect("tokenizes");
    let embed = |precision| {
        let encoder = Encoder::new(
            &model.weights,
            &EncoderConfig {
                precision,
                threads: 1,
            },
        )
        .expect("encoder");
        (
            encoder.embed(&batch).expect("embeds"),
            encoder.storage_bytes(),
        )
    };
    let (f32_embeddings, f32_bytes) = embed(Precision::F32);
    let mut previous_bytes = f32_bytes;
    for (precision, min_cosine) in [
        (Precision::F16, 0.9999),
        (Precision::Bf16, 0.999),
        (Precision::Int8, 0.99),
    ] {
        let (embeddings, bytes) = embed(precision);
        for (a, b) in embeddings.rows().into_iter().zip(f32_embeddings.rows()) {
            let c = cosine(a, b);
            assert!(c >= min_cosine, "{precision}: cosine {c}");
        }
        assert!(
            bytes <= previous_bytes,
            "{precision}: {bytes} > {previous_bytes}"
        );
        previous_bytes = bytes;
    }
    // At this size the f32 scales and biases are a large share; on the real model int8 is about a quarter.
    assert!(
        previous_bytes < f32_bytes,
        "int8 {previous_bytes} vs f32 {f32_bytes}"
    );
}

#[test]
fn pruning_shrinks_shapes_and_zero_pruning_changes_nothing() {
    let fixture = Fixture::new("prune");
    let model = fixture.load().expect("fixture loads");
    let batch = model.tokenizer.batch(&SENTENCES).expect("tokenizes");
    let f32_encoder = Encoder::new(&model.weights, &EncoderConfig::default()).expect("encoder");
    let none = prune(
        &model.weights,
        &PruneConfig {
            head_fraction: 0.0,
            neuron_fraction: 0.0,
        },
    )
    .expect("prunes");
    assert_eq!(none, model.weights);
    let half = prune(
        &model.weights,
        &PruneConfig {
            head_fraction: 0.5,
            neuron_fraction: 0.5,
        },
    )
    .expect("prunes");
    let pruned = Encoder::new(&half, &EncoderConfig::default()).expect("encoder");
    assert_eq!(pruned.heads_per_layer(), vec![1; LAYERS]);
    assert_eq!(pruned.neurons_per_layer(), vec![FFN / 2; LAYERS]);
    assert!(pruned.storage_bytes() < f32_encoder.storage_bytes());
    assert!(half.n_parameters() < model.weights.n_parameters());
    // The pruned model is still the padded reference's model with fewer heads and neurons.
    let embeddings = pruned.embed(&batch).expect("embeds");
    for (row, expected) in embeddings
        .rows()
        .into_iter()
        .zip(reference_embeddings(&half, &batch))
    {
        for (&got, want) in row.iter().zip(expected) {
            assert!((f64::from(got) - want).abs() <= 2e-6);
        }
    }
    for fraction in [-0.1, 1.0, f64::NAN] {
        let error = prune(
            &model.weights,
            &PruneConfig {
                head_fraction: fraction,
                neuron_fraction: 0.0,
            },
        )
        .expect_err("fraction outside [0, 1)");
        assert!(matches!(error, MinilmError::InvalidInput { .. }), "{error}");
    }
}

#[test]
fn a_missing_file_is_not_found_naming_it() {
    let fixture = Fixture::new("missing");
    std::fs::remove_file(fixture.path("tokenizer.json")).expect("remove");
    let error = ModelFiles::locate(Some(&fixture.dir)).expect_err("tokenizer missing");
    assert!(matches!(error, MinilmError::NotFound { .. }), "{error}");
    names_file(&error, &fixture.path("tokenizer.json"));
    let error = BertWeights::from_file(
        &fixture.path("absent.safetensors"),
        &BertConfig::from_file(&fixture.path("config.json")).expect("config"),
    )
    .expect_err("absent");
    assert!(matches!(error, MinilmError::NotFound { .. }), "{error}");
    names_file(&error, &fixture.path("absent.safetensors"));
}

#[test]
fn a_truncated_safetensors_file_is_a_typed_error_naming_it() {
    let fixture = Fixture::new("truncated");
    let bytes = std::fs::read(fixture.path("model.safetensors")).expect("read");
    for keep in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(fixture.path("model.safetensors"), &bytes[..keep]).expect("write");
        let error = fixture.load().expect_err("truncated");
        assert!(
            matches!(error, MinilmError::Safetensors { .. }),
            "{keep}: {error}"
        );
        names_file(&error, &fixture.path("model.safetensors"));
    }
}

#[test]
fn a_wrong_or_missing_tensor_is_a_typed_error_naming_file_and_tensor() {
    let fixture = Fixture::new("shape");
    let name = "encoder.layer.1.intermediate.dense.weight";
    let overrides = HashMap::from([(name, vec![FFN + 1, HIDDEN])]);
    std::fs::write(
        fixture.path("model.safetensors"),
        safetensors_bytes(&overrides, None),
    )
    .expect("write");
    let error = fixture.load().expect_err("wrong shape");
    match &error {
        MinilmError::TensorShape {
            name: tensor,
            expected,
            actual,
            ..
        } => {
            assert_eq!(tensor, name);
            assert_eq!(expected, &vec![FFN, HIDDEN]);
            assert_eq!(actual, &vec![FFN + 1, HIDDEN]);
        }
        other => panic!("expected TensorShape, got {other}"),
    }
    names_file(&error, &fixture.path("model.safetensors"));
    std::fs::write(
        fixture.path("model.safetensors"),
        safetensors_bytes(&HashMap::new(), Some(name)),
    )
    .expect("write");
    let error = fixture.load().expect_err("missing tensor");
    assert!(
        matches!(&error, MinilmError::MissingTensor { name: n, .. } if n == name),
        "{error}"
    );
    names_file(&error, &fixture.path("model.safetensors"));
}

#[test]
fn an_unknown_tokenizer_type_or_a_broken_tokenizer_is_a_typed_error_naming_it() {
    let fixture = Fixture::new("tokenizer");
    let path = fixture.path("tokenizer.json");
    std::fs::write(&path, tokenizer_json("BPE")).expect("write");
    let error = SentenceTokenizer::from_file(&path).expect_err("BPE refused");
    assert!(
        matches!(&error, MinilmError::TokenizerType { found, .. } if found == "BPE"),
        "{error}"
    );
    names_file(&error, &path);
    for broken in ["", "{", "{\"model\": {}}", "[1, 2]"] {
        std::fs::write(&path, broken).expect("write");
        let error = SentenceTokenizer::from_file(&path).expect_err("broken");
        assert!(
            matches!(error, MinilmError::Tokenizer { .. }),
            "{broken:?}: {error}"
        );
        names_file(&error, &path);
    }
    // A WordPiece type whose body the tokenizers crate rejects (no vocabulary).
    std::fs::write(
        &path,
        tokenizer_json("WordPiece").replace("\"vocab\"", "\"vocabulary\""),
    )
    .expect("write");
    let error = SentenceTokenizer::from_file(&path).expect_err("no vocab");
    assert!(matches!(error, MinilmError::Tokenizer { .. }), "{error}");
}

#[test]
fn a_bad_config_or_a_bad_batch_is_a_typed_error() {
    let fixture = Fixture::new("config");
    let path = fixture.path("config.json");
    for broken in [
        "not json".to_string(),
        config_json().replace("\"gelu\"", "\"relu\""),
        config_json().replace("\"num_attention_heads\":2", "\"num_attention_heads\":3"),
        config_json().replace("\"hidden_size\":8", "\"hidden_size\":0"),
    ] {
        std::fs::write(&path, &broken).expect("write");
        let error = BertConfig::from_file(&path).expect_err("bad config");
        assert!(
            matches!(error, MinilmError::Config { .. }),
            "{broken}: {error}"
        );
        names_file(&error, &path);
    }
    std::fs::write(&path, config_json()).expect("write");
    let model = fixture.load().expect("loads");
    let encoder = Encoder::new(&model.weights, &EncoderConfig::default()).expect("encoder");
    let past_vocab = TokenBatch::from_sequences(&[vec![2, 99, 3]]).expect("batch");
    assert!(matches!(
        encoder.embed(&past_vocab),
        Err(MinilmError::InvalidInput { .. })
    ));
    let too_long = TokenBatch::from_sequences(&[vec![4; POSITIONS + 1]]).expect("batch");
    assert!(matches!(
        encoder.embed(&too_long),
        Err(MinilmError::InvalidInput { .. })
    ));
    assert!(matches!(
        TokenBatch::from_sequences(&[]),
        Err(MinilmError::InvalidInput { .. })
    ));
    assert!(matches!(
        TokenBatch::from_sequences(&[vec![]]),
        Err(MinilmError::InvalidInput { .. })
    ));
    assert!(matches!(
        Encoder::new(
            &model.weights,
            &EncoderConfig {
                precision: Precision::F32,
                threads: 0
            }
        ),
        Err(MinilmError::InvalidInput { .. })
    ));
}

#[test]
fn weights_that_disagree_with_their_config_are_a_typed_error() {
    let fixture = Fixture::new("shapes");
    let weights = fixture.load().expect("fixture loads").weights;
    let half = PruneConfig {
        head_fraction: 0.5,
        neuron_fraction: 0.5,
    };
    assert!(Encoder::new(&weights, &EncoderConfig::default()).is_ok());
    assert!(prune(&weights, &half).is_ok());
    let mut broken = Vec::new();
    let mut no_heads = weights.clone();
    no_heads.config.num_attention_heads = 0;
    broken.push(no_heads);
    let mut uneven_heads = weights.clone();
    uneven_heads.config.num_attention_heads = 3;
    broken.push(uneven_heads);
    let mut no_token_type = weights.clone();
    no_token_type.token_type_embeddings = ndarray::Array2::zeros((0, HIDDEN));
    broken.push(no_token_type);
    let mut narrow_words = weights.clone();
    narrow_words.word_embeddings = ndarray::Array2::zeros((VOCAB.len(), HIDDEN - 1));
    broken.push(narrow_words);
    let mut narrow_key = weights.clone();
    narrow_key.layers[1].key.weight = ndarray::Array2::zeros((HIDDEN - 1, HIDDEN));
    broken.push(narrow_key);
    let mut more_heads = weights.clone();
    more_heads.layers[0].n_heads = HEADS + 1;
    broken.push(more_heads);
    let mut short_bias = weights.clone();
    short_bias.layers[0].output.bias = ndarray::Array1::zeros(HIDDEN - 1);
    broken.push(short_bias);
    let mut short_norm = weights;
    short_norm.layers[1].attention_norm.gain = ndarray::Array1::zeros(HIDDEN - 1);
    broken.push(short_norm);
    for weights in &broken {
        for result in [
            Encoder::new(weights, &EncoderConfig::default()).map(|_| ()),
            prune(weights, &half).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(MinilmError::InvalidInput { .. })),
                "{result:?}"
            );
        }
    }
    assert!(broken[0].config.head_dim().is_err());
}
