//! Reference submissions built from zoo's trained models in the run: the f32 baseline, int8, f16,
//! unstructured magnitude pruning at several sparsities (stored CSR), structured pruning (whole neurons
//! removed, a smaller dense layer) and combinations; for the character transformer the same, each with and
//! without a KV cache.
//!
//! A pruned MLP submission runs on a network zoo pruned gradually while fine-tuning it
//! ([`FineTunedNetwork`], from `zoo::prune_and_finetune`), except the rows named `…_no_finetune`
//! ([`NO_FINETUNE_SUFFIX`]), which prune the trained weights in one shot without retraining, so the field
//! shows what fine-tuning bought. The transformer's pruned variants are one-shot.

use zoo::{Autoencoder, CharTransformer, Mlp};

use crate::challenge::NextCharSubmission;
use crate::challenge_model::compress_char_transformer;
use crate::compress::{CompressedMlp, Recipe, WeightFormat};
use crate::error::OlympicsError;
use crate::submissions::{AnomalyScorer, InputTransform, MlpClassifier};

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
        (
            "pruned_csr_50".into(),
            recipe(WeightFormat::F32, None, Some(0.5)),
        ),
        (
            "pruned_neurons_75".into(),
            recipe(WeightFormat::F32, Some(0.75), None),
        ),
        (
            format!("pruned_csr_75{NO_FINETUNE_SUFFIX}"),
            recipe(WeightFormat::F32, None, Some(0.75)),
        ),
        (
            format!("pruned_neurons_50{NO_FINETUNE_SUFFIX}"),
            recipe(WeightFormat::F32, Some(0.5), None),
        ),
    ];
    if !quick {
        recipes.extend([
            ("f16".into(), recipe(WeightFormat::F16, None, None)),
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

/// Suffix of the recipe names whose pruning is one-shot, without fine-tuning.
pub const NO_FINETUNE_SUFFIX: &str = "_no_finetune";

/// A network pruned and fine-tuned outside this crate (by zoo), standing for every recipe with the same
/// pruning (`structured`, `unstructured`); the recipe's weight format is applied to it.
#[derive(Debug, Clone)]
pub struct FineTunedNetwork {
    /// Share of hidden neurons removed (the network is already the smaller one).
    pub structured: Option<f64>,
    /// Share of weights per layer already zero (stored CSR by the recipe).
    pub unstructured: Option<f64>,
    /// The pruned, fine-tuned network.
    pub network: Mlp,
    /// How it was fine-tuned, declared as an optimization (e.g. the schedule and epochs).
    pub description: String,
}

/// The prunings (`structured`, `unstructured`) that `recipes` need fine-tuned: every recipe that prunes,
/// except the `…_no_finetune` rows, once each.
pub fn pruning_to_finetune(recipes: &[(String, Recipe)]) -> Vec<(Option<f64>, Option<f64>)> {
    let mut needed: Vec<(Option<f64>, Option<f64>)> = Vec::new();
    for (name, recipe) in recipes {
        let pruning = (recipe.structured, recipe.unstructured);
        if pruning != (None, None)
            && !name.ends_with(NO_FINETUNE_SUFFIX)
            && !needed.contains(&pruning)
        {
            needed.push(pruning);
        }
    }
    needed
}

/// The network and declared optimizations of recipe `name`: the base compressed as the recipe says when it
/// does not prune or is a `…_no_finetune` row, otherwise the fine-tuned network with the same pruning in the
/// recipe's format (its neurons are already removed; its zeros are exactly the ones magnitude pruning at the
/// same sparsity selects, so CSR stores the fine-tuned weights unchanged).
fn network_for(
    base: &Mlp,
    finetuned: &[FineTunedNetwork],
    name: &str,
    recipe: &Recipe,
) -> Result<(CompressedMlp, Vec<crate::Optimization>), OlympicsError> {
    let mut optimizations = recipe.optimizations();
    let prunes = recipe.structured.is_some() || recipe.unstructured.is_some();
    if !prunes || name.ends_with(NO_FINETUNE_SUFFIX) {
        if prunes {
            optimizations.push(crate::Optimization::Other(
                "one-shot pruning of the trained weights, no fine-tuning".into(),
            ));
        }
        return Ok((CompressedMlp::compress(base, recipe)?, optimizations));
    }
    let Some(found) = finetuned.iter().find(|network| {
        network.structured == recipe.structured && network.unstructured == recipe.unstructured
    }) else {
        return Err(crate::error::invalid(format!(
            "{name}: no fine-tuned network for structured {:?}, unstructured {:?}",
            recipe.structured, recipe.unstructured
        )));
    };
    optimizations.push(crate::Optimization::Other(found.description.clone()));
    let remaining = Recipe {
        structured: None,
        ..*recipe
    };
    Ok((
        CompressedMlp::compress(&found.network, &remaining)?,
        optimizations,
    ))
}

/// Classifier submissions from one trained MLP, the pruned ones on the fine-tuned networks.
///
/// # Errors
/// A pruning recipe with no network in `finetuned`; compression errors.
pub fn mlp_classifiers_finetuned(
    mlp: &Mlp,
    finetuned: &[FineTunedNetwork],
    transform: &InputTransform,
    recipes: &[(String, Recipe)],
) -> Result<Vec<MlpClassifier>, OlympicsError> {
    recipes
        .iter()
        .map(|(name, recipe)| {
            let (network, optimizations) = network_for(mlp, finetuned, name, recipe)?;
            Ok(MlpClassifier {
                name: name.clone(),
                optimizations,
                transform: transform.clone(),
                network,
            })
        })
        .collect()
}

/// Anomaly scorers from one trained autoencoder, the pruned ones on the fine-tuned networks (structured
/// pruning removed neurons of every hidden layer, the bottleneck included).
///
/// # Errors
/// A pruning recipe with no network in `finetuned`; compression errors.
pub fn anomaly_scorers_finetuned(
    autoencoder: &Autoencoder,
    finetuned: &[FineTunedNetwork],
    recipes: &[(String, Recipe)],
) -> Result<Vec<AnomalyScorer>, OlympicsError> {
    recipes
        .iter()
        .map(|(name, recipe)| {
            let (network, optimizations) =
                network_for(&autoencoder.network, finetuned, name, recipe)?;
            Ok(AnomalyScorer {
                name: name.clone(),
                optimizations,
                network,
            })
        })
        .collect()
}

/// Classifier submissions from one trained MLP, every recipe applied to its weights in one shot.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Submission;
    use ndarray::{Array1, Array2};
    use zoo::Linear;

    fn mlp(widths: &[usize], fill: f32) -> Mlp {
        Mlp {
            layers: widths
                .windows(2)
                .map(|pair| Linear {
                    weight: Array2::from_shape_fn((pair[0], pair[1]), |(row, col)| {
                        fill + (row * 7 + col) as f32 * 0.01
                    }),
                    bias: Array1::zeros(pair[1]),
                })
                .collect(),
        }
    }

    #[test]
    fn pruned_recipes_run_on_the_fine_tuned_networks() {
        let recipes = mlp_recipes(true);
        let needed = pruning_to_finetune(&recipes);
        assert!(needed.contains(&(None, Some(0.75))));
        assert!(needed.contains(&(Some(0.5), None)));
        assert!(needed.contains(&(Some(0.75), None)));
        assert!(needed.contains(&(None, Some(0.5))));
        assert_eq!(needed.len(), 4, "{needed:?}");
        let base = mlp(&[6, 8, 3], 0.1);
        let finetuned: Vec<FineTunedNetwork> = needed
            .iter()
            .map(|&(structured, unstructured)| FineTunedNetwork {
                structured,
                unstructured,
                // A smaller network for structured pruning: the recipe must not shrink it again.
                network: match structured {
                    Some(_) => mlp(&[6, 2, 3], 0.2),
                    None => mlp(&[6, 8, 3], 0.3),
                },
                description: "fine-tuned (test)".into(),
            })
            .collect();
        let field =
            mlp_classifiers_finetuned(&base, &finetuned, &InputTransform::Identity, &recipes)
                .unwrap();
        for submission in &field {
            let hidden = submission.network.layers[0].out_features();
            let declared = submission.optimizations();
            match submission.name.as_str() {
                "pruned_neurons_50" | "pruned_neurons_75" | "pruned_neurons_50_int8" => {
                    assert_eq!(hidden, 2);
                    assert!(
                        declared.contains(&crate::Optimization::Other("fine-tuned (test)".into()))
                    );
                }
                "pruned_neurons_50_no_finetune" => assert_eq!(hidden, 4),
                _ => assert_eq!(hidden, 8),
            }
        }
        // A pruned recipe without its fine-tuned network is an error, not a silent one-shot prune.
        assert!(
            mlp_classifiers_finetuned(&base, &[], &InputTransform::Identity, &recipes).is_err()
        );
        let autoencoder = Autoencoder {
            network: mlp(&[6, 8, 6], 0.1),
        };
        assert!(anomaly_scorers_finetuned(&autoencoder, &[], &recipes).is_err());
    }
}
