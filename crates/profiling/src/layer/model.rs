//! A model as a checked sequence of layers, and its per-layer table.

use super::{Layer, LayerCost};
use crate::error::ProfilingError;
use serde::{Deserialize, Serialize};

/// A model: layers applied in sequence. Consecutive layers must agree on the number of values per
/// batch item (reshapes such as flattening are free); residual branches are not modelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    name: String,
    layers: Vec<Layer>,
}

/// One row of a model's per-layer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    /// Layer name.
    pub name: String,
    /// Kind (`linear`, `conv2d`, ...).
    pub kind: String,
    /// The costs.
    pub cost: LayerCost,
    /// Share of the model's FLOPs, in percent.
    pub flops_percent: f64,
}

impl Model {
    /// A model from its layers.
    ///
    /// # Errors
    /// [`ProfilingError::EmptyModel`] for no layers; [`ProfilingError::ShapeMismatch`] when a layer
    /// does not read what the previous one writes.
    pub fn new(name: impl Into<String>, layers: Vec<Layer>) -> Result<Self, ProfilingError> {
        if layers.is_empty() {
            return Err(ProfilingError::EmptyModel);
        }
        for pair in layers.windows(2) {
            let (found, expected) = (pair[0].output_elements(), pair[1].input_elements());
            if found != expected {
                return Err(ProfilingError::ShapeMismatch {
                    layer: pair[1].name.clone(),
                    expected,
                    found,
                });
            }
        }
        Ok(Self {
            name: name.into(),
            layers,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Total learned parameters.
    pub fn parameters(&self) -> u64 {
        self.layers.iter().map(Layer::parameters).sum()
    }

    /// The per-layer table for `batch` items.
    ///
    /// # Errors
    /// As [`Layer::cost`].
    pub fn table(&self, batch: usize) -> Result<Vec<LayerRow>, ProfilingError> {
        let costs = self
            .layers
            .iter()
            .map(|layer| layer.cost(batch))
            .collect::<Result<Vec<_>, _>>()?;
        let total: u64 = costs.iter().map(|cost| cost.flops).sum();
        Ok(self
            .layers
            .iter()
            .zip(costs)
            .map(|(layer, cost)| LayerRow {
                name: layer.name.clone(),
                kind: layer.spec.kind_name().to_string(),
                flops_percent: 100.0 * cost.flops as f64 / total.max(1) as f64,
                cost,
            })
            .collect())
    }
}

/// Render a per-layer table as Markdown.
pub fn render_table(rows: &[LayerRow]) -> String {
    let mut text = String::from(
        "| layer | kind | params | multiply-adds | FLOPs | % FLOPs | bytes (compulsory) | FLOP/byte |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.2} |\n",
            row.name,
            row.kind,
            row.cost.parameters,
            row.cost.multiply_adds,
            row.cost.flops,
            row.flops_percent,
            row.cost.compulsory_bytes(),
            row.cost.arithmetic_intensity()
        ));
    }
    text
}
