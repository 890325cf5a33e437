//! The multilayer perceptron under training (ReLU between layers, none after the last): the reference
//! classifiers and, with widths that narrow and widen again, the autoencoder.

use candle_core::Tensor;

use super::params::{apply_linear, linear_params, ParamStore};
use super::CandleModel;
use crate::ZooError;

/// A candle MLP: one `(weight, bias)` per layer.
pub(crate) struct CandleMlp {
    pub(crate) layers: Vec<(Tensor, Tensor)>,
}

impl CandleMlp {
    pub(crate) fn new(store: &mut ParamStore, widths: &[usize]) -> Result<Self, ZooError> {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(layer_idx, pair)| {
                linear_params(store, &format!("layers.{layer_idx}"), pair[0], pair[1])
            })
            .collect::<Result<_, _>>()?;
        Ok(CandleMlp { layers })
    }
}

impl CandleModel for CandleMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor, ZooError> {
        let mut hidden = x.clone();
        for (layer_idx, layer) in self.layers.iter().enumerate() {
            hidden = apply_linear(&hidden, layer)?;
            if layer_idx + 1 < self.layers.len() {
                hidden = hidden.relu()?;
            }
        }
        Ok(hidden)
    }
}
