//! Reference submissions built from zoo's trained models in the run: the f32 baseline, int8, f16,
//! unstructured magnitude pruning at several sparsities (stored CSR), structured pruning (whole neurons
//! removed, a smaller dense layer) and combinations; for the character transformer the same, each with and
//! without a KV cache.
//!
//! Pruning is applied to the trained weights without fine-tuning: the accuracy it costs is what the referee
//! measures.

use zoo::{Autoencoder, CharTransformer, Mlp};

use crate::compress::{CompressedMlp, Recipe, WeightFormat};
use crate::error::OlympicsError;
use crate::submissions::{AnomalyScorer, InputTransform, MlpClassifier};
use crate::challenge::NextCharSubmission;
use crate::challenge_model::compress_char_transformer;

/// Name of the uncompressed reference in every family.
pub use crate::compress::BASELINE_SUBMISSION as BASELINE;

/// The recipes every MLP-based event runs, by name. `quick` keeps one of each kind.
pub fn mlp_recipes(quick: bool) -> Vec<(String, Recipe)> {
    let recipe = |format, structured, unstructured| Recipe {
        format,
        structured,
        unstructured,
    };
    let mut recipes = vec![
        (BASELINE.to_string(), Recipe::BASELINE),
        ("int8".into(), recipe(WeightFormat::Int8, None, None)),
        (
            "pruned_csr_75".into(),
            recipe(WeightFormat::F32, None, Some(0.75)),
        ),
        (
            "pruned_neurons_50".into(),
            recipe(WeightFormat::F32, Some(0.5), None),
        ),
        (
            "pruned_neurons_50_int8".into(),
            recipe(WeightFormat::Int8, Some(0.5), None),
        ),
    ];
    if !quick {
        recipes.extend([
            ("f16".into(), recipe(WeightFormat::F16, None, None)),
            (
                "pruned_csr_50".into(),
                recipe(WeightFormat::F32, None, Some(0.5)),
            ),
            (
                "pruned_csr_90".into(),
                recipe(WeightFormat::F32, None, Some(0.9)),
            ),
            (
                "pruned_neurons_25".into(),
                recipe(WeightFormat::F32, Some(0.25), None),
            ),
            (
                "pruned_neurons_75_int8".into(),
                recipe(WeightFormat::Int8, Some(0.75), None),
            ),
        ]);
    }
    recipes
}

/// Classifier submissions from one trained MLP.
///
/// # Errors
/// Compression errors.
pub fn mlp_classifiers(
    mlp: &Mlp,
    transform: &InputTransform,
    recipes: &[(String, Recipe)],
) -> Result<Vec<MlpClassifier>, OlympicsError> {
    recipes
        .iter()
        .map(|(name, recipe)| {
            Ok(MlpClassifier {
                name: name.clone(),
                optimizations: recipe.optimizations(),
                transform: transform.clone(),
                network: CompressedMlp::compress(mlp, recipe)?,
            })
        })
        .collect()
}

/// Anomaly scorers from one trained autoencoder. Structured pruning removes neurons of every hidden layer
/// including the bottleneck.
///
/// # Errors
/// Compression errors.
pub fn anomaly_scorers(
    autoencoder: &Autoencoder,
    recipes: &[(String, Recipe)],
) -> Result<Vec<AnomalyScorer>, OlympicsError> {
    recipes
        .iter()
        .map(|(name, recipe)| {
            Ok(AnomalyScorer {
                name: name.clone(),
                optimizations: recipe.optimizations(),
                network: CompressedMlp::compress(&autoencoder.network, recipe)?,
            })
        })
        .collect()
}

/// The transformer's recipes: (name, recipe, KV cache). `quick` keeps the baseline, the cache alone, int8
/// with the cache and one combination.
pub fn transformer_recipes(quick: bool) -> Vec<(String, Recipe, bool)> {
    let recipe = |format, structured, unstructured| Recipe {
        format,
        structured,
        unstructured,
    };
    let mut recipes = vec![
        (BASELINE.to_string(), Recipe::BASELINE, false),
        ("kv_cache".into(), Recipe::BASELINE, true),
        (
            "int8_kv_cache".into(),
            recipe(WeightFormat::Int8, None, None),
            true,
        ),
        (
            "pruned_neurons_50_int8_kv_cache".into(),
            recipe(WeightFormat::Int8, Some(0.5), None),
            true,
        ),
    ];
    if !quick {
        recipes.extend([
            ("int8".into(), recipe(WeightFormat::Int8, None, None), false),
            ("f16".into(), recipe(WeightFormat::F16, None, None), false),
            (
                "f16_kv_cache".into(),
                recipe(WeightFormat::F16, None, None),
                true,
            ),
            (
                "pruned_csr_50".into(),
                recipe(WeightFormat::F32, None, Some(0.5)),
                false,
            ),
            (
                "pruned_csr_50_kv_cache".into(),
                recipe(WeightFormat::F32, None, Some(0.5)),
                true,
            ),
            (
                "pruned_csr_80_kv_cache".into(),
                recipe(WeightFormat::F32, None, Some(0.8)),
                true,
            ),
            (
                "pruned_neurons_50".into(),
                recipe(WeightFormat::F32, Some(0.5), None),
                false,
            ),
            (
                "pruned_neurons_25_kv_cache".into(),
                recipe(WeightFormat::F32, Some(0.25), None),
                true,
            ),
        ]);
    }
    recipes
}

/// Next-character submissions from the trained transformer.
///
/// # Errors
/// Compression errors.
pub fn next_char_submissions(
    model: &CharTransformer,
    recipes: &[(String, Recipe, bool)],
) -> Result<Vec<NextCharSubmission>, OlympicsError> {
    recipes
        .iter()
        .map(|(name, recipe, cached)| {
            NextCharSubmission::new(
                name,
                compress_char_transformer(model, recipe)?,
                recipe,
                *cached,
            )
        })
        .collect()
}
