//! The compressed models against their references: pruning removes what it says, a CSR layer computes what
//! its dense pruned twin computes, and removing neurons equals zeroing them. (The challenge's transformer is
//! tested in `challenge.rs`.)
#![cfg(feature = "reference")]

use ndarray::{Array1, Array2};
use olympics::compress::{
    prune_magnitude, prune_neurons, CompressedLinear, CompressedMlp, Recipe, WeightFormat,
};
use rand::{Rng, SeedableRng};
use zoo::{Linear, Mlp};

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
        weight: random_matrix(rng, inputs, outputs, 0.5),
        bias: Array1::from_shape_fn(outputs, |_| 0.1 * (rng.random::<f32>() - 0.5)),
    }
}

fn max_abs_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .fold(0.0, |max, (x, y)| max.max((x - y).abs()))
}

#[test]
fn magnitude_pruning_removes_the_smallest_share() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let weight = random_matrix(&mut rng, 13, 7, 1.0);
    for sparsity in [0.0, 0.5, 0.75, 0.9] {
        let pruned = prune_magnitude(weight.view(), sparsity).unwrap();
        let n_zero = pruned.iter().filter(|value| **value == 0.0).count();
        assert_eq!(n_zero, (sparsity * 91.0).floor() as usize);
        let largest_removed = weight
            .iter()
            .zip(&pruned)
            .filter(|(_, kept)| **kept == 0.0)
            .fold(0.0f32, |max, (original, _)| max.max(original.abs()));
        let smallest_kept = pruned
            .iter()
            .filter(|value| **value != 0.0)
            .fold(f32::INFINITY, |min, value| min.min(value.abs()));
        assert!(largest_removed <= smallest_kept);
    }
    assert!(prune_magnitude(weight.view(), 1.0).is_err());
    assert!(prune_magnitude(weight.view(), f64::NAN).is_err());
}

#[test]
fn csr_layer_computes_its_dense_pruned_twin() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let layer = random_linear(&mut rng, 17, 6);
    let x = random_matrix(&mut rng, 5, 17, 1.0);
    let sparse = CompressedLinear::sparse(&layer, 0.75).unwrap();
    let dense_twin = Linear {
        weight: prune_magnitude(layer.weight.view(), 0.75).unwrap(),
        bias: layer.bias.clone(),
    };
    let expected = dense_twin.forward(x.view()).unwrap();
    let actual = sparse.forward(x.view()).unwrap();
    // A sum of at most 17 products of values below 1 in another order: f32 rounding only.
    assert!(max_abs_difference(&actual, &expected) < 1e-5);
    assert!(
        sparse.storage_bytes()
            < CompressedLinear::new(&layer, WeightFormat::F32)
                .unwrap()
                .storage_bytes()
    );
}

#[test]
fn removing_neurons_equals_zeroing_them() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let first = random_linear(&mut rng, 10, 12);
    let second = random_linear(&mut rng, 12, 4);
    let (small_first, small_second) = prune_neurons(&first, &second, 0.5).unwrap();
    assert_eq!(small_first.out_features(), 6);
    assert_eq!(small_second.in_features(), 6);
    // Zero the removed neurons' incoming columns, biases and outgoing rows in the full network.
    let mut masked_first = first.clone();
    let mut masked_second = second.clone();
    for neuron in 0..12 {
        let kept =
            (0..6).any(|index| small_first.weight.column(index) == first.weight.column(neuron));
        if !kept {
            masked_first.weight.column_mut(neuron).fill(0.0);
            masked_first.bias[neuron] = 0.0;
            masked_second.weight.row_mut(neuron).fill(0.0);
        }
    }
    let x = random_matrix(&mut rng, 3, 10, 1.0);
    let small = Mlp {
        layers: vec![small_first, small_second],
    };
    let masked = Mlp {
        layers: vec![masked_first, masked_second],
    };
    let difference = max_abs_difference(
        &small.forward(x.view()).unwrap(),
        &masked.forward(x.view()).unwrap(),
    );
    assert!(difference < 1e-5);
    let compressed = CompressedMlp::compress(
        &Mlp {
            layers: vec![first, second],
        },
        &Recipe {
            format: WeightFormat::Int8,
            structured: Some(0.5),
            unstructured: None,
        },
    )
    .unwrap();
    assert_eq!(compressed.out_features(), 4);
    assert!(prune_neurons(&small.layers[0], &small.layers[0], 0.5).is_err());
}
