//! The contiguous KV cache: one preallocated K and one V buffer per layer, laid out
//! `[sequence][head][position][d_head]` so that each head's keys are one contiguous
//! `capacity × d_head` slab, and the [`KvStore`] trait the attention reads through.

use crate::bookkeeping::{check_capacity, LayerLengths};
use crate::error::KvCacheError;
use ndarray::ArrayView2;

/// The shape of the K/V state of a batch: plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheShape {
    /// Decoder layers.
    pub n_layers: usize,
    /// Sequences decoded side by side.
    pub batch_size: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// Width of one head.
    pub d_head: usize,
}

impl CacheShape {
    /// `n_heads · d_head`.
    pub fn d_model(&self) -> usize {
        self.n_heads * self.d_head
    }

    /// Bytes one token of one sequence occupies over all layers, K and V.
    pub fn bytes_per_token(&self) -> usize {
        2 * self.n_layers * self.d_model() * std::mem::size_of::<f32>()
    }

    pub(crate) fn validate(&self) -> Result<(), KvCacheError> {
        let sizes = [
            ("n_layers", self.n_layers),
            ("batch_size", self.batch_size),
            ("n_heads", self.n_heads),
            ("d_head", self.d_head),
        ];
        match sizes.iter().find(|(_, size)| *size == 0) {
            Some((name, _)) => Err(KvCacheError::InvalidConfig {
                what: format!("cache {name} must be at least 1"),
            }),
            None => Ok(()),
        }
    }

    /// [`KvCacheError::IndexOutOfRange`] unless `sequence` and `head` are within the shape.
    pub(crate) fn check_slab(&self, sequence: usize, head: usize) -> Result<(), KvCacheError> {
        for (what, index, len) in [
            ("sequence", sequence, self.batch_size),
            ("head", head, self.n_heads),
        ] {
            if index >= len {
                return Err(KvCacheError::IndexOutOfRange { what, index, len });
            }
        }
        Ok(())
    }
}

/// What [`KvStore::visit_chunks`] calls with each chunk's borrowed (keys, values) views.
pub type ChunkVisitor<'visit> =
    dyn FnMut(ArrayView2<'_, f32>, ArrayView2<'_, f32>) -> Result<(), KvCacheError> + 'visit;

/// What [`KvStore::visit_chunk_slices`] calls with each chunk's (keys, values) as row-major
/// `rows × d_head` slices.
pub type SliceVisitor<'visit> = dyn FnMut(&[f32], &[f32]) -> Result<(), KvCacheError> + 'visit;

/// Storage of keys and values the attention reads through: the contiguous [`KvCache`] and the
/// paged [`crate::PagedKvCache`].
///
/// Keys and values of new tokens arrive as `(batch_size · tokens) × d_model` matrices, rows in
/// sequence-major order (all tokens of sequence 0 first), head `h` in columns
/// `h·d_head .. (h+1)·d_head`. Every layer has its own length: a forward pass appends to layer 0,
/// then layer 1, and so on.
pub trait KvStore: std::fmt::Debug {
    /// The shape this store was built for.
    fn shape(&self) -> CacheShape;

    /// Tokens per sequence stored in `layer`.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when `layer` is not a layer of the store.
    fn layer_len(&self, layer: usize) -> Result<usize, KvCacheError>;

    /// Make room for `tokens` more tokens per sequence in every layer, so that the appends of a
    /// whole forward pass cannot fail half-way.
    ///
    /// # Errors
    /// [`KvCacheError::CacheOverflow`] or [`KvCacheError::OutOfBlocks`]; nothing changes then.
    fn reserve(&mut self, tokens: usize) -> Result<(), KvCacheError>;

    /// Append the keys and values of `tokens = rows / batch_size` new tokens per sequence to
    /// `layer`, without reallocating.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] for a `layer` the store does not have,
    /// [`KvCacheError::ShapeMismatch`] for a bad matrix, [`KvCacheError::CacheOverflow`] or
    /// [`KvCacheError::OutOfBlocks`] when it does not fit; nothing is written then.
    fn append(
        &mut self,
        layer: usize,
        keys: ArrayView2<'_, f32>,
        values: ArrayView2<'_, f32>,
    ) -> Result<(), KvCacheError>;

    /// Call `visit(keys, values)` on borrowed `rows × d_head` views (no copies) covering the
    /// stored positions of (`layer`, `sequence`, `head`) in order.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when `layer`, `sequence` or `head` is outside the
    /// store's shape (nothing is visited then); whatever `visit` returns.
    fn visit_chunks(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
        visit: &mut ChunkVisitor<'_>,
    ) -> Result<(), KvCacheError>;

    /// As [`KvStore::visit_chunks`], with each chunk as row-major `rows × d_head` slices: the
    /// decode step's attention reads a paged cache block by block, and a view per block (built,
    /// checked and sliced) cost more than the block's arithmetic. The default goes through
    /// `visit_chunks` (copying a chunk only if its view is not in standard layout); both stores
    /// here hand out their storage directly.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when `layer`, `sequence` or `head` is outside the
    /// store's shape (nothing is visited then); whatever `visit` returns.
    fn visit_chunk_slices(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
        visit: &mut SliceVisitor<'_>,
    ) -> Result<(), KvCacheError> {
        self.visit_chunks(layer, sequence, head, &mut |keys, values| {
            let keys = keys.as_standard_layout();
            let values = values.as_standard_layout();
            visit(
                keys.as_slice().expect("standard layout is contiguous"),
                values.as_slice().expect("standard layout is contiguous"),
            )
        })
    }

    /// Forget every token; keeps the buffers, so refilling does not allocate.
    fn reset(&mut self);

    /// Keep the first `len` tokens of every layer and forget the rest (a rollback: rejected
    /// speculative tokens, or a benchmark repeating one step). Longer `len` changes nothing.
    fn truncate(&mut self, len: usize);

    /// Bytes of K/V storage that exist (allocated), used or not.
    fn allocated_bytes(&self) -> usize;

    /// Bytes of K/V storage that hold a token.
    fn used_bytes(&self) -> usize;
}

/// The contiguous KV cache: per layer, one K and one V buffer of
/// `batch_size · n_heads · capacity · d_head` floats, allocated once at construction.
#[derive(Debug, Clone)]
pub struct KvCache {
    capacity: usize,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    lengths: LayerLengths,
}

impl KvCache {
    /// A cache for `capacity` tokens per sequence, allocated (zeroed) now.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] for a zero dimension in `shape` or a size that overflows.
    pub fn new(shape: CacheShape, capacity: usize) -> Result<Self, KvCacheError> {
        shape.validate()?;
        let per_layer = shape
            .batch_size
            .checked_mul(shape.n_heads)
            .and_then(|v| v.checked_mul(capacity))
            .and_then(|v| v.checked_mul(shape.d_head))
            .ok_or_else(|| KvCacheError::InvalidConfig {
                what: format!("cache of capacity {capacity} overflows usize"),
            })?;
        Ok(KvCache {
            capacity,
            keys: (0..shape.n_layers).map(|_| vec![0.0; per_layer]).collect(),
            values: (0..shape.n_layers).map(|_| vec![0.0; per_layer]).collect(),
            lengths: LayerLengths::new(shape),
        })
    }

    /// Tokens per sequence the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens per sequence stored in every layer (the minimum over layers).
    pub fn len(&self) -> usize {
        self.lengths.complete()
    }

    /// True when no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slab_start(&self, sequence: usize, head: usize) -> usize {
        let shape = self.lengths.shape();
        (sequence * shape.n_heads + head) * self.capacity * shape.d_head
    }

    /// The stored keys of (`layer`, `sequence`, `head`): a borrowed `len × d_head` view.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when an index is outside the cache's shape.
    pub fn keys(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
    ) -> Result<ArrayView2<'_, f32>, KvCacheError> {
        let range = self.slab_range(layer, sequence, head)?;
        Ok(self.view(&self.keys[layer][range]))
    }

    /// The stored values of (`layer`, `sequence`, `head`): a borrowed `len × d_head` view.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when an index is outside the cache's shape.
    pub fn values(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
    ) -> Result<ArrayView2<'_, f32>, KvCacheError> {
        let range = self.slab_range(layer, sequence, head)?;
        Ok(self.view(&self.values[layer][range]))
    }

    /// Where the stored floats of (`layer`, `sequence`, `head`) sit in the layer's buffers, after
    /// checking the three indices against the shape.
    fn slab_range(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
    ) -> Result<std::ops::Range<usize>, KvCacheError> {
        let shape = self.lengths.shape();
        let len = self.lengths.layer(layer)?;
        shape.check_slab(sequence, head)?;
        let start = self.slab_start(sequence, head);
        Ok(start..start + len * shape.d_head)
    }

    /// A slab returned by [`KvCache::slab_range`] as a `len × d_head` view.
    fn view<'a>(&self, slab: &'a [f32]) -> ArrayView2<'a, f32> {
        let d_head = self.lengths.shape().d_head;
        ArrayView2::from_shape((slab.len() / d_head, d_head), slab)
            .expect("slab length is len · d_head by construction")
    }
}

impl KvStore for KvCache {
    fn shape(&self) -> CacheShape {
        self.lengths.shape()
    }

    fn layer_len(&self, layer: usize) -> Result<usize, KvCacheError> {
        self.lengths.layer(layer)
    }

    fn reserve(&mut self, tokens: usize) -> Result<(), KvCacheError> {
        check_capacity(self.lengths.fullest(), tokens, self.capacity)
    }

    fn append(
        &mut self,
        layer: usize,
        keys: ArrayView2<'_, f32>,
        values: ArrayView2<'_, f32>,
    ) -> Result<(), KvCacheError> {
        let append = self.lengths.check_append(layer, &keys, &values)?;
        let (stored, tokens) = (append.stored, append.tokens);
        check_capacity(stored, tokens, self.capacity)?;
        let shape = self.lengths.shape();
        let d_head = shape.d_head;
        for sequence in 0..shape.batch_size {
            for head in 0..shape.n_heads {
                let start = self.slab_start(sequence, head) + stored * d_head;
                let columns = ndarray::s![head * d_head..(head + 1) * d_head];
                for (source, buffer) in [
                    (keys.view(), &mut self.keys[layer]),
                    (values.view(), &mut self.values[layer]),
                ] {
                    for token in 0..tokens {
                        let row = source.row(sequence * tokens + token);
                        let target =
                            &mut buffer[start + token * d_head..start + (token + 1) * d_head];
                        for (t, &s) in target.iter_mut().zip(row.slice(columns)) {
                            *t = s;
                        }
                    }
                }
            }
        }
        self.lengths.commit(append);
        Ok(())
    }

    fn visit_chunks(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
        visit: &mut ChunkVisitor<'_>,
    ) -> Result<(), KvCacheError> {
        let range = self.slab_range(layer, sequence, head)?;
        visit(
            self.view(&self.keys[layer][range.clone()]),
            self.view(&self.values[layer][range]),
        )
    }

    fn visit_chunk_slices(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
        visit: &mut SliceVisitor<'_>,
    ) -> Result<(), KvCacheError> {
        let range = self.slab_range(layer, sequence, head)?;
        visit(&self.keys[layer][range.clone()], &self.values[layer][range])
    }

    fn reset(&mut self) {
        self.lengths.reset();
    }

    fn truncate(&mut self, len: usize) {
        self.lengths.truncate(len);
    }

    fn allocated_bytes(&self) -> usize {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|buffer| buffer.capacity() * std::mem::size_of::<f32>())
            .sum()
    }

    fn used_bytes(&self) -> usize {
        self.lengths.used_bytes()
    }
}
