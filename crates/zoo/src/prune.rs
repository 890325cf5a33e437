//! Pruning masks for MLPs and the gradual sparsity schedule of Zhu and Gupta (2017), "To prune, or not to
//! prune: exploring the efficacy of pruning for model compression" (arXiv:1710.01878).
//!
//! This module is plain ndarray (no candle): [`crate::prune_and_finetune`] applies the masks during training.
//! A mask is 1.0 where a parameter is kept and 0.0 where it is pruned, so applying it is one element-wise
//! product. Masks computed at a rising sparsity are nested: a parameter pruned once is never revived, because
//! the ranking puts every already-pruned parameter first (then the smallest magnitudes, then position).
//!
//! Three methods, all per layer:
//! - [`PruningMethod::Magnitude`]: the `floor(s · len)` smallest-magnitude weights of each layer (the same count
//!   and tie-break as the olympics crate's one-shot `prune_magnitude`), biases kept, stored CSR afterwards;
//! - [`PruningMethod::Neurons`]: whole hidden neurons (incoming column, bias and outgoing row) with the smallest
//!   L2 norm of incoming column and outgoing row, `max(1, round((1 − s) · width))` kept per hidden layer (the
//!   olympics crate's `prune_neurons` rule); [`remove_masked_neurons`] then shrinks the dense layers;
//! - [`PruningMethod::Blocks`]: blocks of one input row × `width` consecutive outputs of the `in × out`
//!   weight (accel's `BlockSparseMatrix` with `width` 16), ranked by L2 norm as accel's `prune_blocks` ranks
//!   them.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::layers::Linear;
use crate::models::Mlp;
use crate::ZooError;

fn invalid(reason: String) -> ZooError {
    ZooError::InvalidArgument { reason }
}

/// The cubic sparsity schedule of Zhu and Gupta (2017):
/// `s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (n · Δt))³` for `t0 ≤ t ≤ t0 + n·Δt`, `s_i` before and `s_f`
/// after; masks are recomputed at `t = t0 + k·Δt`, `k = 0, …, n`.
///
/// Steps count optimizer steps taken (the mask after step `t` is the one at sparsity `s_t`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SparsitySchedule {
    /// `s_i`, the sparsity at `t0` (usually 0).
    pub initial_sparsity: f64,
    /// `s_f`, the sparsity reached at `t0 + n·Δt` and kept afterwards.
    pub final_sparsity: f64,
    /// `t0`, the step of the first mask update.
    pub start_step: usize,
    /// `n`, the number of mask updates after `t0`.
    pub n_updates: usize,
    /// `Δt`, optimizer steps between mask updates.
    pub update_interval: usize,
}

impl SparsitySchedule {
    /// A checked schedule.
    ///
    /// # Errors
    /// [`ZooError::InvalidArgument`] unless `0 ≤ s_i ≤ s_f < 1`, `n ≥ 1` and `Δt ≥ 1`.
    pub fn new(
        initial_sparsity: f64,
        final_sparsity: f64,
        start_step: usize,
        n_updates: usize,
        update_interval: usize,
    ) -> Result<Self, ZooError> {
        if !(0.0 <= initial_sparsity && initial_sparsity <= final_sparsity && final_sparsity < 1.0)
        {
            return Err(invalid(format!(
                "sparsity schedule from {initial_sparsity} to {final_sparsity}: need 0 <= initial <= final < 1"
            )));
        }
        if n_updates == 0 || update_interval == 0 {
            return Err(invalid(format!(
                "sparsity schedule with {n_updates} updates every {update_interval} steps: both must be >= 1"
            )));
        }
        Ok(SparsitySchedule {
            initial_sparsity,
            final_sparsity,
            start_step,
            n_updates,
            update_interval,
        })
    }

    /// From 0 at step 0 to `final_sparsity` after `pruning_share` of `total_steps`, in `n_updates` updates;
    /// the remaining steps fine-tune at the final sparsity.
    ///
    /// # Errors
    /// [`ZooError::InvalidArgument`] for a share outside (0, 1], too few steps for the updates, or a bad
    /// sparsity.
    pub fn over_steps(
        total_steps: usize,
        final_sparsity: f64,
        pruning_share: f64,
        n_updates: usize,
    ) -> Result<Self, ZooError> {
        if !(pruning_share > 0.0 && pruning_share <= 1.0) {
            return Err(invalid(format!(
                "pruning share {pruning_share} outside (0, 1]"
            )));
        }
        let pruning_steps = (pruning_share * total_steps as f64).floor() as usize;
        if n_updates == 0 || pruning_steps < n_updates {
            return Err(invalid(format!(
                "{n_updates} mask updates in {pruning_steps} pruning steps ({total_steps} steps in all)"
            )));
        }
        SparsitySchedule::new(0.0, final_sparsity, 0, n_updates, pruning_steps / n_updates)
    }

    /// `t0 + n·Δt`: the step at which the final sparsity is reached.
    pub fn end_step(&self) -> usize {
        self.start_step + self.n_updates * self.update_interval
    }

    /// `s_t`.
    pub fn sparsity_at(&self, step: usize) -> f64 {
        if step <= self.start_step {
            return self.initial_sparsity;
        }
        if step >= self.end_step() {
            return self.final_sparsity;
        }
        let progress =
            (step - self.start_step) as f64 / (self.n_updates * self.update_interval) as f64;
        self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress).powi(3)
    }

    /// Whether the masks are recomputed after step `step` (`t0 + k·Δt`, `k = 0, …, n`).
    pub fn is_update_step(&self, step: usize) -> bool {
        self.start_step <= step
            && step <= self.end_step()
            && (step - self.start_step).is_multiple_of(self.update_interval)
    }
}

/// What is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PruningMethod {
    /// Individual weights by magnitude, in every layer (unstructured).
    Magnitude,
    /// Whole hidden neurons of every hidden layer (structured: the dense layers shrink).
    Neurons,
    /// Blocks of one input row × `width` consecutive outputs of the `in × out` weight.
    Blocks {
        /// Inputs per block (e.g. 16).
        width: usize,
    },
}

/// A method and the final share removed (of each layer's weights, blocks, or hidden neurons).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PruningRecipe {
    /// What is removed.
    pub method: PruningMethod,
    /// Final share removed, in [0, 1).
    pub sparsity: f64,
}

/// Keep-masks (1.0 kept, 0.0 pruned) for every layer of an MLP, weights (`in × out`) and biases.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpMasks {
    /// One per layer, the shape of its weight.
    pub weights: Vec<Array2<f32>>,
    /// One per layer, the length of its bias.
    pub biases: Vec<Array1<f32>>,
}

/// Ranks entries for removal: already-pruned first, then by ascending importance, then by position; the first
/// `n_remove` are pruned. Returns the keep flags.
fn keep_flags(importance: &[f32], previously_kept: Option<&[bool]>, n_remove: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..importance.len()).collect();
    // A stable sort keeps ties in position order.
    order.sort_by(|&a, &b| {
        let kept_a = previously_kept.is_none_or(|kept| kept[a]);
        let kept_b = previously_kept.is_none_or(|kept| kept[b]);
        kept_a
            .cmp(&kept_b)
            .then(importance[a].total_cmp(&importance[b]))
    });
    let mut keep = vec![true; importance.len()];
    for &index in order.iter().take(n_remove) {
        keep[index] = false;
    }
    keep
}

fn check_sparsity(sparsity: f64) -> Result<(), ZooError> {
    if (0.0..1.0).contains(&sparsity) {
        Ok(())
    } else {
        Err(invalid(format!("sparsity {sparsity} outside [0, 1)")))
    }
}

/// Keep-mask of `weight` with its `floor(sparsity · len)` smallest-magnitude entries pruned; entries pruned in
/// `previous` are pruned first, so masks at rising sparsity are nested.
///
/// # Errors
/// [`ZooError::InvalidArgument`] for a sparsity outside [0, 1); [`ZooError::Shape`] when `previous` differs in
/// shape.
pub fn magnitude_mask(
    weight: ArrayView2<'_, f32>,
    sparsity: f64,
    previous: Option<ArrayView2<'_, f32>>,
) -> Result<Array2<f32>, ZooError> {
    check_sparsity(sparsity)?;
    let importance: Vec<f32> = weight.iter().map(|value| value.abs()).collect();
    let previously_kept = previous_flags(previous, weight.dim())?;
    let n_remove = (sparsity * importance.len() as f64).floor() as usize;
    let keep = keep_flags(&importance, previously_kept.as_deref(), n_remove);
    Ok(flags_to_mask(&keep, weight.dim()))
}

/// Keep-mask of `weight` (`in × out`) in blocks of one input row × `width` consecutive outputs (the last block
/// of a row narrower when `out` is not a multiple of `width`), the blocks of accel's `BlockSparseMatrix`:
/// `floor(sparsity · n_blocks)` blocks with the smallest L2 norm pruned, already-pruned blocks first, ties in
/// row-major block order (accel's `prune_blocks` rule, so re-pruning the result at the same sparsity zeroes
/// exactly these blocks).
///
/// # Errors
/// [`ZooError::InvalidArgument`] for a zero width or a sparsity outside [0, 1); [`ZooError::Shape`] when
/// `previous` differs in shape.
pub fn block_mask(
    weight: ArrayView2<'_, f32>,
    width: usize,
    sparsity: f64,
    previous: Option<ArrayView2<'_, f32>>,
) -> Result<Array2<f32>, ZooError> {
    check_sparsity(sparsity)?;
    if width == 0 {
        return Err(invalid("block width 0".into()));
    }
    let (n_in, n_out) = weight.dim();
    let blocks_per_row = n_out.div_ceil(width);
    let columns = |block: usize| block * width..((block + 1) * width).min(n_out);
    let previously_kept = previous_flags(previous, weight.dim())?;
    let mut importance = Vec::with_capacity(blocks_per_row * n_in);
    let mut block_previously_kept = Vec::with_capacity(blocks_per_row * n_in);
    for input in 0..n_in {
        for block in 0..blocks_per_row {
            let squares: f32 = columns(block)
                .map(|output| weight[[input, output]].powi(2))
                .sum();
            importance.push(squares.sqrt());
            // A block counts as pruned when any of its entries was (a block mask prunes all together).
            block_previously_kept.push(
                previously_kept
                    .as_ref()
                    .is_none_or(|kept| columns(block).all(|output| kept[input * n_out + output])),
            );
        }
    }
    let n_remove = (sparsity * importance.len() as f64).floor() as usize;
    let keep = keep_flags(&importance, Some(&block_previously_kept), n_remove);
    let mut mask = Array2::ones((n_in, n_out));
    for input in 0..n_in {
        for block in 0..blocks_per_row {
            if !keep[input * blocks_per_row + block] {
                for output in columns(block) {
                    mask[[input, output]] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}

fn previous_flags(
    previous: Option<ArrayView2<'_, f32>>,
    dim: (usize, usize),
) -> Result<Option<Vec<bool>>, ZooError> {
    match previous {
        None => Ok(None),
        Some(mask) if mask.dim() == dim => Ok(Some(mask.iter().map(|&v| v != 0.0).collect())),
        Some(mask) => Err(crate::error::shape_error(
            "previous pruning mask",
            format!("{dim:?}"),
            format!("{:?}", mask.dim()),
        )),
    }
}

fn flags_to_mask(keep: &[bool], dim: (usize, usize)) -> Array2<f32> {
    Array2::from_shape_fn(
        dim,
        |(row, col)| {
            if keep[row * dim.1 + col] {
                1.0
            } else {
                0.0
            }
        },
    )
}

/// Hidden neurons kept when `sparsity` of `width` are removed: `max(1, round((1 − s) · width))`.
pub fn neurons_kept(width: usize, sparsity: f64) -> usize {
    ((1.0 - sparsity) * width as f64).round().max(1.0) as usize
}

impl MlpMasks {
    /// Masks that keep everything.
    pub fn all_kept(mlp: &Mlp) -> Self {
        MlpMasks {
            weights: mlp
                .layers
                .iter()
                .map(|layer| Array2::ones(layer.weight.dim()))
                .collect(),
            biases: mlp
                .layers
                .iter()
                .map(|layer| Array1::ones(layer.bias.len()))
                .collect(),
        }
    }

    /// The masks of `method` at `sparsity` for the current weights of `mlp`, nested inside `previous`.
    ///
    /// # Errors
    /// [`ZooError::InvalidArgument`] for an MLP without layers, a bad sparsity, or structured pruning of an
    /// MLP without hidden layers; [`ZooError::Shape`] when `previous` does not fit `mlp`, or (structured
    /// pruning) when a hidden layer's width disagrees with its bias or with the next layer's inputs.
    pub fn compute(
        mlp: &Mlp,
        method: PruningMethod,
        sparsity: f64,
        previous: Option<&MlpMasks>,
    ) -> Result<Self, ZooError> {
        check_sparsity(sparsity)?;
        if mlp.layers.is_empty() {
            return Err(invalid("MLP without layers".into()));
        }
        if let Some(previous) = previous {
            if previous.weights.len() != mlp.layers.len() {
                return Err(crate::error::shape_error(
                    "previous pruning masks",
                    mlp.layers.len(),
                    previous.weights.len(),
                ));
            }
        }
        let previous_weight =
            |layer_idx: usize| previous.map(|masks| masks.weights[layer_idx].view());
        match method {
            PruningMethod::Magnitude | PruningMethod::Blocks { .. } => {
                let weights = mlp
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(layer_idx, layer)| match method {
                        PruningMethod::Blocks { width } => block_mask(
                            layer.weight.view(),
                            width,
                            sparsity,
                            previous_weight(layer_idx),
                        ),
                        _ => magnitude_mask(
                            layer.weight.view(),
                            sparsity,
                            previous_weight(layer_idx),
                        ),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let biases = mlp
                    .layers
                    .iter()
                    .map(|layer| Array1::ones(layer.bias.len()))
                    .collect();
                Ok(MlpMasks { weights, biases })
            }
            PruningMethod::Neurons => Self::neurons(mlp, sparsity, previous),
        }
    }

    fn neurons(mlp: &Mlp, sparsity: f64, previous: Option<&MlpMasks>) -> Result<Self, ZooError> {
        if mlp.layers.len() < 2 {
            return Err(invalid(
                "structured pruning needs at least one hidden layer".into(),
            ));
        }
        // Every hidden neuron `n` below reads column `n` and bias `n` of its layer, row `n` of the next,
        // and entry `n` of the previous bias mask: all must exist.
        for (hidden_idx, pair) in mlp.layers.windows(2).enumerate() {
            let width = pair[0].out_features();
            let previous_width = previous.map_or(Some(width), |masks| {
                masks.biases.get(hidden_idx).map(Array1::len)
            });
            if pair[0].bias.len() != width
                || pair[1].in_features() != width
                || previous_width != Some(width)
            {
                return Err(crate::error::shape_error(
                    &format!("hidden layer {hidden_idx} (structured pruning)"),
                    format!("{width} neurons: bias, next layer's inputs and previous bias mask"),
                    format!(
                        "bias {}, next layer's inputs {}, previous bias mask {previous_width:?}",
                        pair[0].bias.len(),
                        pair[1].in_features()
                    ),
                ));
            }
        }
        let mut masks = MlpMasks::all_kept(mlp);
        // Layers are pruned in order, each pair's importance read from the weights with the neurons removed so
        // far masked out, as the one-shot rule prunes layer by layer.
        let mut masked = mlp.clone();
        for hidden_idx in 0..mlp.layers.len() - 1 {
            let (incoming, outgoing) = (&masked.layers[hidden_idx], &masked.layers[hidden_idx + 1]);
            let width = incoming.out_features();
            let importance: Vec<f32> = (0..width)
                .map(|neuron| {
                    let in_norm: f32 = incoming.weight.column(neuron).iter().map(|v| v * v).sum();
                    let out_norm: f32 = outgoing.weight.row(neuron).iter().map(|v| v * v).sum();
                    (in_norm + out_norm).sqrt()
                })
                .collect();
            let previously_kept: Option<Vec<bool>> =
                previous.map(|masks| masks.biases[hidden_idx].iter().map(|&v| v != 0.0).collect());
            let n_remove = width - neurons_kept(width, sparsity).min(width);
            let keep = keep_flags(&importance, previously_kept.as_deref(), n_remove);
            for (neuron, &kept) in keep.iter().enumerate() {
                if !kept {
                    masks.weights[hidden_idx].column_mut(neuron).fill(0.0);
                    masks.biases[hidden_idx][neuron] = 0.0;
                    masks.weights[hidden_idx + 1].row_mut(neuron).fill(0.0);
                }
            }
            masks.apply(&mut masked)?;
        }
        Ok(masks)
    }

    /// Multiplies `mlp`'s weights and biases by the masks.
    ///
    /// # Errors
    /// [`ZooError::Shape`] when a mask does not fit its layer.
    pub fn apply(&self, mlp: &mut Mlp) -> Result<(), ZooError> {
        if self.weights.len() != mlp.layers.len() || self.biases.len() != mlp.layers.len() {
            return Err(crate::error::shape_error(
                "pruning masks",
                mlp.layers.len(),
                self.weights.len(),
            ));
        }
        for ((layer, weight_mask), bias_mask) in
            mlp.layers.iter_mut().zip(&self.weights).zip(&self.biases)
        {
            if layer.weight.dim() != weight_mask.dim() || layer.bias.len() != bias_mask.len() {
                return Err(crate::error::shape_error(
                    "pruning mask",
                    format!("{:?}", layer.weight.dim()),
                    format!("{:?}", weight_mask.dim()),
                ));
            }
            layer.weight *= weight_mask;
            layer.bias *= bias_mask;
        }
        Ok(())
    }

    /// Share of weight entries (not biases) the masks prune.
    pub fn weight_sparsity(&self) -> f64 {
        let total: usize = self.weights.iter().map(Array2::len).sum();
        let pruned: usize = self
            .weights
            .iter()
            .map(|mask| mask.iter().filter(|&&v| v == 0.0).count())
            .sum();
        pruned as f64 / total.max(1) as f64
    }
}

/// The MLP with every hidden neuron whose bias mask is 0 removed (incoming column, bias, outgoing row): the
/// smaller dense network of structured pruning.
///
/// # Errors
/// [`ZooError::Shape`] when the masks do not fit `mlp`: a kept neuron of a hidden layer beyond the layer's
/// outputs, its bias or the next layer's inputs.
pub fn remove_masked_neurons(mlp: &Mlp, masks: &MlpMasks) -> Result<Mlp, ZooError> {
    if masks.biases.len() != mlp.layers.len() {
        return Err(crate::error::shape_error(
            "pruning masks",
            mlp.layers.len(),
            masks.biases.len(),
        ));
    }
    let mut layers: Vec<Linear> = mlp.layers.clone();
    for hidden_idx in 0..layers.len().saturating_sub(1) {
        let keep: Vec<usize> = masks.biases[hidden_idx]
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(neuron, _)| neuron)
            .collect();
        // `keep` ascends: its last entry is the highest neuron selected from the three.
        let limit = layers[hidden_idx]
            .out_features()
            .min(layers[hidden_idx].bias.len())
            .min(layers[hidden_idx + 1].in_features());
        if keep.len() > layers[hidden_idx].out_features()
            || keep.last().is_some_and(|&n| n >= limit)
        {
            return Err(crate::error::shape_error(
                "neuron mask",
                format!("kept neurons below {limit}"),
                format!("{} kept, the highest {:?}", keep.len(), keep.last()),
            ));
        }
        let incoming = &layers[hidden_idx];
        layers[hidden_idx] = Linear {
            // `select` along columns may come back column-major; the kernels want row-major weights.
            weight: incoming
                .weight
                .select(Axis(1), &keep)
                .as_standard_layout()
                .to_owned(),
            bias: incoming.bias.select(Axis(0), &keep),
        };
        let outgoing = &layers[hidden_idx + 1];
        layers[hidden_idx + 1] = Linear {
            weight: outgoing
                .weight
                .select(Axis(0), &keep)
                .as_standard_layout()
                .to_owned(),
            bias: outgoing.bias.clone(),
        };
    }
    Ok(Mlp { layers })
}

/// Share of zero entries among all weights (not biases) of `mlp`.
pub fn weight_sparsity(mlp: &Mlp) -> f64 {
    let total: usize = mlp.layers.iter().map(|layer| layer.weight.len()).sum();
    let zeros: usize = mlp
        .layers
        .iter()
        .map(|layer| layer.weight.iter().filter(|&&v| v == 0.0).count())
        .sum();
    zeros as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_mlp(widths: &[usize], seed: u64) -> Mlp {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Mlp {
            layers: widths
                .windows(2)
                .map(|pair| Linear {
                    weight: Array2::from_shape_fn((pair[0], pair[1]), |_| {
                        rng.random_range(-1.0f32..1.0)
                    }),
                    bias: Array1::from_shape_fn(pair[1], |_| rng.random_range(-1.0f32..1.0)),
                })
                .collect(),
        }
    }

    #[test]
    fn structured_pruning_of_layers_that_do_not_chain_is_an_error() {
        let mlp = random_mlp(&[3, 4, 2], 1);
        let masks = MlpMasks::compute(&mlp, PruningMethod::Neurons, 0.5, None).unwrap();
        assert_eq!(
            remove_masked_neurons(&mlp, &masks).unwrap().layers[0].out_features(),
            2
        );
        fn shape_error<T>(result: Result<T, ZooError>) -> bool {
            matches!(result, Err(ZooError::Shape { .. }))
        }
        // The second layer reads 5 inputs, the first writes 4.
        let mut unchained = mlp.clone();
        unchained.layers[1] = random_mlp(&[5, 2], 2).layers.remove(0);
        assert!(shape_error(MlpMasks::compute(
            &unchained,
            PruningMethod::Neurons,
            0.5,
            None
        )));
        let mut short_bias = mlp.clone();
        short_bias.layers[0].bias = Array1::zeros(3);
        assert!(shape_error(MlpMasks::compute(
            &short_bias,
            PruningMethod::Neurons,
            0.5,
            None
        )));
        let mut short_previous = masks.clone();
        short_previous.biases[0] = Array1::ones(3);
        assert!(shape_error(MlpMasks::compute(
            &mlp,
            PruningMethod::Neurons,
            0.75,
            Some(&short_previous)
        )));
        // A bias mask keeping neuron 5 of a 4-neuron layer.
        let mut beyond = masks.clone();
        beyond.biases[0] = Array1::from_vec(vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert!(shape_error(remove_masked_neurons(&mlp, &beyond)));
        let mut narrow_next = mlp;
        narrow_next.layers[1] = random_mlp(&[2, 2], 3).layers.remove(0);
        assert!(shape_error(remove_masked_neurons(&narrow_next, &masks)));
    }

    #[test]
    fn schedule_is_monotone_and_hits_the_final_sparsity_exactly() {
        for (initial, fin, start, n, interval) in [
            (0.0, 0.75, 0, 10, 7),
            (0.0, 0.5, 3, 1, 1),
            (0.2, 0.9, 5, 13, 3),
            (0.0, 0.0, 0, 4, 2),
        ] {
            let schedule = SparsitySchedule::new(initial, fin, start, n, interval).unwrap();
            let mut last = schedule.sparsity_at(0);
            assert_eq!(last, initial);
            for step in 1..schedule.end_step() + 20 {
                let now = schedule.sparsity_at(step);
                assert!(now >= last, "step {step}: {now} < {last}");
                assert!(now <= fin);
                last = now;
            }
            // Exactly s_f (not merely close) at the last update and after.
            assert_eq!(schedule.sparsity_at(schedule.end_step()), fin);
            assert!(schedule.is_update_step(schedule.end_step()));
            assert!(!schedule.is_update_step(schedule.end_step() + interval));
            let updates = (0..schedule.end_step() + 50)
                .filter(|&step| schedule.is_update_step(step))
                .count();
            assert_eq!(updates, n + 1);
        }
        // Cubic: most of the pruning happens early (half of s_f is passed before a fifth of the ramp).
        let schedule = SparsitySchedule::new(0.0, 0.8, 0, 100, 1).unwrap();
        assert!(schedule.sparsity_at(21) > 0.4);
        assert!((schedule.sparsity_at(50) - 0.8 * (1.0 - 0.125)).abs() < 1e-12);
    }

    #[test]
    fn schedule_rejects_bad_arguments() {
        assert!(SparsitySchedule::new(0.5, 0.4, 0, 1, 1).is_err());
        assert!(SparsitySchedule::new(0.0, 1.0, 0, 1, 1).is_err());
        assert!(SparsitySchedule::new(0.0, 0.5, 0, 0, 1).is_err());
        assert!(SparsitySchedule::new(0.0, 0.5, 0, 1, 0).is_err());
        assert!(SparsitySchedule::new(f64::NAN, 0.5, 0, 1, 1).is_err());
        assert!(SparsitySchedule::over_steps(5, 0.5, 0.5, 3).is_err());
        let schedule = SparsitySchedule::over_steps(100, 0.75, 0.6, 12).unwrap();
        assert_eq!(schedule.end_step(), 60);
        assert_eq!(schedule.sparsity_at(100), 0.75);
    }

    #[test]
    fn magnitude_masks_prune_the_exact_count_and_are_nested() {
        let mlp = random_mlp(&[13, 7, 3], 1);
        let weight = mlp.layers[0].weight.view();
        let mut previous: Option<Array2<f32>> = None;
        for sparsity in [0.0, 0.1, 0.33, 0.5, 0.75, 0.9] {
            let mask =
                magnitude_mask(weight, sparsity, previous.as_ref().map(|m| m.view())).unwrap();
            let pruned = mask.iter().filter(|&&v| v == 0.0).count();
            assert_eq!(pruned, (sparsity * weight.len() as f64).floor() as usize);
            if let Some(previous) = &previous {
                assert!(previous
                    .iter()
                    .zip(&mask)
                    .all(|(&p, &m)| p != 0.0 || m == 0.0));
            }
            // Every pruned entry is no larger than every kept one (no previous mask disturbs it here).
            let largest_pruned = weight
                .iter()
                .zip(&mask)
                .filter(|(_, &m)| m == 0.0)
                .map(|(w, _)| w.abs())
                .fold(0.0f32, f32::max);
            let smallest_kept = weight
                .iter()
                .zip(&mask)
                .filter(|(_, &m)| m != 0.0)
                .map(|(w, _)| w.abs())
                .fold(f32::INFINITY, f32::min);
            assert!(largest_pruned <= smallest_kept);
            previous = Some(mask);
        }
        assert!(magnitude_mask(weight, 1.0, None).is_err());
        assert!(magnitude_mask(weight, 0.5, Some(Array2::ones((2, 2)).view())).is_err());
    }

    #[test]
    fn block_masks_prune_whole_blocks() {
        let mlp = random_mlp(&[5, 37], 2);
        let weight = mlp.layers[0].weight.view();
        let mask = block_mask(weight, 16, 0.5, None).unwrap();
        // 37 outputs → blocks of 16, 16, 5 per input row; 15 blocks, 7 pruned.
        let mut pruned_blocks = 0;
        for input in 0..5 {
            for (start, end) in [(0, 16), (16, 32), (32, 37)] {
                let values: Vec<f32> = (start..end).map(|col| mask[[input, col]]).collect();
                assert!(values.iter().all(|&v| v == values[0]), "a block is split");
                pruned_blocks += usize::from(values[0] == 0.0);
            }
        }
        assert_eq!(pruned_blocks, 7);
        assert!(block_mask(weight, 0, 0.5, None).is_err());
        // The same blocks as accel's one-shot rule, so its block-sparse storage keeps what fine-tuning kept.
        for (shape, sparsity) in [
            ((5, 37), 0.5),
            ((64, 128), 0.75),
            ((31, 16), 0.9),
            ((3, 1), 0.34),
        ] {
            let mlp = random_mlp(&[shape.0, shape.1], 9);
            let weight = mlp.layers[0].weight.view();
            let mask = block_mask(weight, accel::SPARSE_BLOCK_WIDTH, sparsity, None).unwrap();
            let ours = &weight.to_owned() * &mask;
            assert_eq!(
                ours,
                accel::prune_blocks(weight, sparsity).unwrap(),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn neuron_masks_remove_whole_neurons_and_shrink_the_network() {
        let mlp = random_mlp(&[9, 8, 6, 4], 3);
        let masks = MlpMasks::compute(&mlp, PruningMethod::Neurons, 0.5, None).unwrap();
        let mut masked = mlp.clone();
        masks.apply(&mut masked).unwrap();
        let smaller = remove_masked_neurons(&masked, &masks).unwrap();
        let widths: Vec<usize> = smaller.layers.iter().map(Linear::out_features).collect();
        assert_eq!(widths, vec![4, 3, 4]);
        assert_eq!(smaller.layers[0].in_features(), 9);
        // The shrunk network computes what the masked one does.
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let x = Array2::from_shape_fn((5, 9), |_| rng.random_range(-1.0f32..1.0));
        let full = masked.forward(x.view()).unwrap();
        let shrunk = smaller.forward(x.view()).unwrap();
        for (a, b) in full.iter().zip(&shrunk) {
            // Same sums with zero terms dropped: f32 rounding only.
            assert!((a - b).abs() <= 1e-5 + 1e-5 * a.abs(), "{a} vs {b}");
        }
        // Nested at a higher sparsity.
        let more = MlpMasks::compute(&masked, PruningMethod::Neurons, 0.75, Some(&masks)).unwrap();
        for (before, after) in masks.biases.iter().zip(&more.biases) {
            assert!(before
                .iter()
                .zip(after)
                .all(|(&b, &a)| b != 0.0 || a == 0.0));
        }
        assert!(
            MlpMasks::compute(&random_mlp(&[3, 2], 0), PruningMethod::Neurons, 0.5, None).is_err()
        );
    }
}
