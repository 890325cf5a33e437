//! The bookkeeping both stores share: how many tokens each layer holds, the checks an append
//! makes before it writes, and the byte count of the stored tokens. The contiguous and the paged
//! cache differ only in where the floats go (and in how room is made), so this is their one owner.

use crate::cache::CacheShape;
use crate::error::KvCacheError;
use ndarray::ArrayView2;

/// Tokens per sequence stored in each layer of a store of shape `shape`.
#[derive(Debug, Clone)]
pub(crate) struct LayerLengths {
    shape: CacheShape,
    lens: Vec<usize>,
}

/// An append that passed the checks: `tokens` new tokens per sequence go to `layer` after the
/// `stored` ones. Written by the store, then recorded with [`LayerLengths::commit`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingAppend {
    pub(crate) layer: usize,
    pub(crate) stored: usize,
    pub(crate) tokens: usize,
}

impl PendingAppend {
    /// Tokens per sequence in the layer once the append is written.
    pub(crate) fn end(&self) -> usize {
        self.stored + self.tokens
    }
}

impl LayerLengths {
    /// Every layer empty. `shape` must have been validated.
    pub(crate) fn new(shape: CacheShape) -> Self {
        LayerLengths {
            shape,
            lens: vec![0; shape.n_layers],
        }
    }

    pub(crate) fn shape(&self) -> CacheShape {
        self.shape
    }

    /// Tokens per sequence in `layer`.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when `layer` is not a layer of the store.
    pub(crate) fn layer(&self, layer: usize) -> Result<usize, KvCacheError> {
        self.lens
            .get(layer)
            .copied()
            .ok_or(KvCacheError::IndexOutOfRange {
                what: "layer",
                index: layer,
                len: self.lens.len(),
            })
    }

    /// Tokens per sequence stored in every layer (the minimum over layers).
    pub(crate) fn complete(&self) -> usize {
        self.lens.iter().copied().min().unwrap_or(0)
    }

    /// Tokens per sequence in the fullest layer: what room must be counted from.
    pub(crate) fn fullest(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    /// Check an append of `keys` and `values` (`(batch_size · tokens) × d_model`, sequence-major)
    /// to `layer`; nothing changes until [`LayerLengths::commit`].
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] for a `layer` the store does not have,
    /// [`KvCacheError::ShapeMismatch`] for a bad matrix.
    pub(crate) fn check_append(
        &self,
        layer: usize,
        keys: &ArrayView2<'_, f32>,
        values: &ArrayView2<'_, f32>,
    ) -> Result<PendingAppend, KvCacheError> {
        let stored = self.layer(layer)?;
        let shape = &self.shape;
        let rows = keys.nrows();
        if keys.ncols() != shape.d_model() || !rows.is_multiple_of(shape.batch_size) {
            return Err(KvCacheError::ShapeMismatch {
                what: "keys (rows = batch_size · tokens, cols = d_model)",
                expected: vec![
                    shape.batch_size * (rows / shape.batch_size).max(1),
                    shape.d_model(),
                ],
                actual: keys.shape().to_vec(),
            });
        }
        if values.shape() != keys.shape() {
            return Err(KvCacheError::ShapeMismatch {
                what: "values (same shape as keys)",
                expected: keys.shape().to_vec(),
                actual: values.shape().to_vec(),
            });
        }
        Ok(PendingAppend {
            layer,
            stored,
            tokens: rows / shape.batch_size,
        })
    }

    /// Record a written append.
    pub(crate) fn commit(&mut self, append: PendingAppend) {
        self.lens[append.layer] = append.end();
    }

    /// Every layer empty.
    pub(crate) fn reset(&mut self) {
        self.lens.iter_mut().for_each(|len| *len = 0);
    }

    /// Keep at most `len` tokens in every layer.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.lens
            .iter_mut()
            .for_each(|layer_len| *layer_len = (*layer_len).min(len));
    }

    /// Bytes of K and V that hold a token, over every layer and sequence.
    pub(crate) fn used_bytes(&self) -> usize {
        self.lens
            .iter()
            .map(|&len| 2 * len * self.shape.batch_size * self.shape.d_model())
            .sum::<usize>()
            * std::mem::size_of::<f32>()
    }
}

/// [`KvCacheError::CacheOverflow`] when `appended` more tokens after `stored` exceed `capacity`.
pub(crate) fn check_capacity(
    stored: usize,
    appended: usize,
    capacity: usize,
) -> Result<(), KvCacheError> {
    if stored + appended > capacity {
        return Err(KvCacheError::CacheOverflow {
            stored,
            appended,
            capacity,
        });
    }
    Ok(())
}
