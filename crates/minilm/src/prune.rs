//! Structured pruning: whole attention heads and whole feed-forward neurons removed by weight magnitude, so the
//! matrices shrink and the bytes and the work follow (no masks, no sparse formats).

use crate::error::MinilmError;
use crate::weights::{BertWeights, DenseWeights, LayerWeights};
use ndarray::{s, Axis};

/// How much to remove from every layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneConfig {
    /// Fraction of each layer's attention heads removed (rounded to whole heads; at least one head stays).
    pub head_fraction: f64,
    /// Fraction of each layer's feed-forward neurons removed (rounded; at least one neuron stays).
    pub neuron_fraction: f64,
}

/// Frobenius norms of consecutive column groups of `weight` (`in × out`), `width` columns each.
fn column_group_norms(weight: &ndarray::Array2<f32>, width: usize) -> Vec<f64> {
    (0..weight.ncols() / width)
        .map(|group| {
            weight
                .slice(s![.., group * width..(group + 1) * width])
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Frobenius norms of consecutive row groups of `weight`.
fn row_group_norms(weight: &ndarray::Array2<f32>, height: usize) -> Vec<f64> {
    (0..weight.nrows() / height)
        .map(|group| {
            weight
                .slice(s![group * height..(group + 1) * height, ..])
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Indices of the `keep` largest scores, in ascending index order (ties broken by the lower index).
fn keep_largest(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..keep].to_vec();
    kept.sort_unstable();
    kept
}

fn kept_count(total: usize, fraction: f64) -> usize {
    let removed = (total as f64 * fraction).round() as usize;
    total.saturating_sub(removed).max(1)
}

fn select_outputs(dense: &DenseWeights, columns: &[usize]) -> DenseWeights {
    DenseWeights {
        weight: dense.weight.select(Axis(1), columns),
        bias: dense.bias.select(Axis(0), columns),
    }
}

fn select_inputs(dense: &DenseWeights, rows: &[usize]) -> DenseWeights {
    DenseWeights {
        weight: dense.weight.select(Axis(0), rows),
        bias: dense.bias.clone(),
    }
}

/// Removes the least important heads and neurons of every layer.
///
/// A head's importance is the product of the Frobenius norms of its value columns and its rows of the output
/// projection (the path through which it writes to the residual stream); a neuron's is the product of the norms of
/// its column of the first feed-forward weight and its row of the second. Neither needs data; neither is
/// fine-tuned afterwards, so the quality cost is the whole cost.
///
/// # Errors
/// [`MinilmError::InvalidInput`] for a fraction outside [0, 1), or weights whose shapes disagree with each other
/// or with their configuration.
pub fn prune(weights: &BertWeights, config: &PruneConfig) -> Result<BertWeights, MinilmError> {
    for (name, fraction) in [
        ("head_fraction", config.head_fraction),
        ("neuron_fraction", config.neuron_fraction),
    ] {
        if !(0.0..1.0).contains(&fraction) {
            return Err(MinilmError::InvalidInput {
                reason: format!("{name} {fraction} is outside [0, 1)"),
            });
        }
    }
    let head_dim = weights.check_shapes()?;
    let layers = weights
        .layers
        .iter()
        .map(|layer| {
            let value_norms = column_group_norms(&layer.value.weight, head_dim);
            let output_norms = row_group_norms(&layer.attention_output.weight, head_dim);
            let head_scores: Vec<f64> = value_norms
                .iter()
                .zip(&output_norms)
                .map(|(v, o)| v * o)
                .collect();
            let heads = keep_largest(
                &head_scores,
                kept_count(layer.n_heads, config.head_fraction),
            );
            let head_columns: Vec<usize> = heads
                .iter()
                .flat_map(|&head| head * head_dim..(head + 1) * head_dim)
                .collect();
            let first_norms = column_group_norms(&layer.intermediate.weight, 1);
            let second_norms = row_group_norms(&layer.output.weight, 1);
            let neuron_scores: Vec<f64> = first_norms
                .iter()
                .zip(&second_norms)
                .map(|(a, b)| a * b)
                .collect();
            let neurons = keep_largest(
                &neuron_scores,
                kept_count(neuron_scores.len(), config.neuron_fraction),
            );
            LayerWeights {
                n_heads: heads.len(),
                query: select_outputs(&layer.query, &head_columns),
                key: select_outputs(&layer.key, &head_columns),
                value: select_outputs(&layer.value, &head_columns),
                attention_output: select_inputs(&layer.attention_output, &head_columns),
                attention_norm: layer.attention_norm.clone(),
                intermediate: select_outputs(&layer.intermediate, &neurons),
                output: select_inputs(&layer.output, &neurons),
                output_norm: layer.output_norm.clone(),
            }
        })
        .collect();
    Ok(BertWeights {
        layers,
        ..weights.clone()
    })
}
