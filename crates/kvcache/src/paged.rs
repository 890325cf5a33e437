//! The paged KV cache in the style of vLLM: storage in fixed-size blocks of `block_size` tokens
//! handed out on demand from a pool, and a block table per sequence mapping its logical blocks to
//! physical ones. A sequence wastes at most `block_size − 1` token slots, against
//! `capacity − len` for the contiguous cache, at the price of attention over several chunks.

use crate::bookkeeping::LayerLengths;
use crate::cache::{CacheShape, ChunkVisitor, KvStore, SliceVisitor};
use crate::error::KvCacheError;
use ndarray::ArrayView2;

/// The paged KV cache. One physical block holds `block_size` tokens of one sequence for every
/// layer, K and V, laid out `[layer][K, V][head][slot][d_head]`, so that each head's part of a
/// block is a contiguous `block_size × d_head` slab.
#[derive(Debug, Clone)]
pub struct PagedKvCache {
    shape: CacheShape,
    block_size: usize,
    block_budget: Option<usize>,
    blocks: Vec<Vec<f32>>,
    free_blocks: Vec<usize>,
    block_tables: Vec<Vec<usize>>,
    lengths: LayerLengths,
}

impl PagedKvCache {
    /// An empty paged cache; blocks are allocated as tokens arrive.
    ///
    /// # Errors
    /// [`KvCacheError::InvalidConfig`] for a zero dimension or a zero block size.
    pub fn new(shape: CacheShape, block_size: usize) -> Result<Self, KvCacheError> {
        shape.validate()?;
        if block_size == 0 {
            return Err(KvCacheError::InvalidConfig {
                what: "block_size must be at least 1".into(),
            });
        }
        Ok(PagedKvCache {
            shape,
            block_size,
            block_budget: None,
            blocks: Vec::new(),
            free_blocks: Vec::new(),
            block_tables: vec![Vec::new(); shape.batch_size],
            lengths: LayerLengths::new(shape),
        })
    }

    /// Limit the pool to `max_blocks` physical blocks (appends beyond fail with
    /// [`KvCacheError::OutOfBlocks`]).
    pub fn with_block_budget(mut self, max_blocks: usize) -> Self {
        self.block_budget = Some(max_blocks);
        self
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Tokens per sequence stored in every layer (the minimum over layers).
    pub fn len(&self) -> usize {
        self.lengths.complete()
    }

    /// True when no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The physical blocks of `sequence`, in logical order.
    ///
    /// # Errors
    /// [`KvCacheError::IndexOutOfRange`] when `sequence` is not a sequence of the batch.
    pub fn block_table(&self, sequence: usize) -> Result<&[usize], KvCacheError> {
        self.block_tables
            .get(sequence)
            .map(Vec::as_slice)
            .ok_or(KvCacheError::IndexOutOfRange {
                what: "sequence",
                index: sequence,
                len: self.block_tables.len(),
            })
    }

    /// Physical blocks that exist (in use or free).
    pub fn allocated_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Physical blocks held by a sequence.
    pub fn blocks_in_use(&self) -> usize {
        self.block_tables.iter().map(Vec::len).sum()
    }

    fn block_floats(&self) -> usize {
        self.shape.n_layers * 2 * self.shape.n_heads * self.block_size * self.shape.d_head
    }

    fn slab_offset(&self, layer: usize, value: bool, head: usize) -> usize {
        ((layer * 2 + usize::from(value)) * self.shape.n_heads + head)
            * self.block_size
            * self.shape.d_head
    }

    /// Give every sequence enough blocks for `tokens` tokens, within the budget.
    fn ensure_blocks(&mut self, tokens: usize) -> Result<(), KvCacheError> {
        let per_sequence = tokens.div_ceil(self.block_size);
        let missing: usize = self
            .block_tables
            .iter()
            .map(|table| per_sequence.saturating_sub(table.len()))
            .sum();
        if missing == 0 {
            return Ok(());
        }
        let needed = self.blocks_in_use() + missing;
        if let Some(budget) = self.block_budget {
            if needed > budget {
                return Err(KvCacheError::OutOfBlocks { needed, budget });
            }
        }
        let block_floats = self.block_floats();
        for sequence in 0..self.block_tables.len() {
            while self.block_tables[sequence].len() < per_sequence {
                let block = match self.free_blocks.pop() {
                    Some(block) => block,
                    None => {
                        self.blocks.push(vec![0.0; block_floats]);
                        self.blocks.len() - 1
                    }
                };
                self.block_tables[sequence].push(block);
            }
        }
        Ok(())
    }
}

impl KvStore for PagedKvCache {
    fn shape(&self) -> CacheShape {
        self.shape
    }

    fn layer_len(&self, layer: usize) -> Result<usize, KvCacheError> {
        self.lengths.layer(layer)
    }

    fn reserve(&mut self, tokens: usize) -> Result<(), KvCacheError> {
        self.ensure_blocks(self.lengths.fullest() + tokens)
    }

    fn append(
        &mut self,
        layer: usize,
        keys: ArrayView2<'_, f32>,
        values: ArrayView2<'_, f32>,
    ) -> Result<(), KvCacheError> {
        let append = self.lengths.check_append(layer, &keys, &values)?;
        let (stored, tokens) = (append.stored, append.tokens);
        self.ensure_blocks(append.end())?;
        let d_head = self.shape.d_head;
        for sequence in 0..self.shape.batch_size {
            for token in 0..tokens {
                let position = stored + token;
                let block = self.block_tables[sequence][position / self.block_size];
                let slot = position % self.block_size;
                let row = sequence * tokens + token;
                for head in 0..self.shape.n_heads {
                    let columns = ndarray::s![head * d_head..(head + 1) * d_head];
                    for (value, source) in [(false, keys.view()), (true, values.view())] {
                        let start = self.slab_offset(layer, value, head) + slot * d_head;
                        let target = &mut self.blocks[block][start..start + d_head];
                        for (t, &s) in target.iter_mut().zip(source.row(row).slice(columns)) {
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
        let d_head = self.shape.d_head;
        self.visit_chunk_slices(layer, sequence, head, &mut |keys, values| {
            visit(slab_view(keys, d_head), slab_view(values, d_head))
        })
    }

    fn visit_chunk_slices(
        &self,
        layer: usize,
        sequence: usize,
        head: usize,
        visit: &mut SliceVisitor<'_>,
    ) -> Result<(), KvCacheError> {
        let len = self.lengths.layer(layer)?;
        self.shape.check_slab(sequence, head)?;
        let d_head = self.shape.d_head;
        let key_offset = self.slab_offset(layer, false, head);
        let value_offset = self.slab_offset(layer, true, head);
        for (logical, &block) in self.block_tables[sequence].iter().enumerate() {
            let first = logical * self.block_size;
            if first >= len {
                break;
            }
            let floats = (len - first).min(self.block_size) * d_head;
            let data = &self.blocks[block];
            visit(
                &data[key_offset..key_offset + floats],
                &data[value_offset..value_offset + floats],
            )?;
        }
        Ok(())
    }

    fn reset(&mut self) {
        for table in &mut self.block_tables {
            self.free_blocks.extend(table.drain(..).rev());
        }
        self.lengths.reset();
    }

    fn truncate(&mut self, len: usize) {
        self.lengths.truncate(len);
        let keep = self.lengths.fullest().div_ceil(self.block_size);
        for table in &mut self.block_tables {
            if table.len() > keep {
                self.free_blocks.extend(table.drain(keep..).rev());
            }
        }
    }

    fn allocated_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|block| block.capacity() * std::mem::size_of::<f32>())
            .sum()
    }

    fn used_bytes(&self) -> usize {
        self.lengths.used_bytes()
    }
}

/// A block slab of `rows · d_head` floats as a `rows × d_head` view.
fn slab_view(slab: &[f32], d_head: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((slab.len() / d_head, d_head), slab)
        .expect("a block slab holds rows · d_head floats")
}
