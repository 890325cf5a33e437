//! A layer, sequence or head the store does not have is an error from every store method that
//! takes one (`KvCacheError::IndexOutOfRange`), never a panic, and leaves the store unchanged.

use kvcache::{CacheShape, KvCache, KvCacheError, KvStore, PagedKvCache};
use ndarray::Array2;

const SHAPE: CacheShape = CacheShape {
    n_layers: 2,
    batch_size: 3,
    n_heads: 4,
    d_head: 8,
};

fn out_of_range(what: &'static str, index: usize, len: usize) -> KvCacheError {
    KvCacheError::IndexOutOfRange { what, index, len }
}

/// One token per sequence in both layers, then every index check of `store`.
fn check_store(store: &mut dyn KvStore) {
    let rows = Array2::<f32>::ones((SHAPE.batch_size, SHAPE.d_model()));
    for layer in 0..SHAPE.n_layers {
        store.append(layer, rows.view(), rows.view()).unwrap();
    }
    assert_eq!(
        store.append(2, rows.view(), rows.view()),
        Err(out_of_range("layer", 2, 2))
    );
    assert_eq!(store.layer_len(1), Ok(1));
    assert_eq!(store.layer_len(2), Err(out_of_range("layer", 2, 2)));
    let mut visited = 0;
    for (layer, sequence, head, error) in [
        (2, 0, 0, out_of_range("layer", 2, 2)),
        (0, 3, 0, out_of_range("sequence", 3, 3)),
        (0, 0, 4, out_of_range("head", 4, 4)),
    ] {
        let result = store.visit_chunks(layer, sequence, head, &mut |_, _| {
            visited += 1;
            Ok(())
        });
        assert_eq!(result, Err(error.clone()));
        let result = store.visit_chunk_slices(layer, sequence, head, &mut |_, _| {
            visited += 1;
            Ok(())
        });
        assert_eq!(result, Err(error));
    }
    assert_eq!(visited, 0, "nothing is visited for a bad index");
    assert_eq!(store.layer_len(0), Ok(1), "a refused append wrote nothing");
    store
        .visit_chunk_slices(1, 2, 3, &mut |keys, values| {
            assert_eq!((keys.len(), values.len()), (SHAPE.d_head, SHAPE.d_head));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_contiguous_cache_refuses_bad_indices() {
    let mut cache = KvCache::new(SHAPE, 4).unwrap();
    check_store(&mut cache);
    assert_eq!(cache.keys(1, 2, 3).unwrap().dim(), (1, SHAPE.d_head));
    assert_eq!(cache.values(1, 2, 3).unwrap().dim(), (1, SHAPE.d_head));
    assert_eq!(cache.keys(2, 0, 0), Err(out_of_range("layer", 2, 2)));
    assert_eq!(cache.values(0, 3, 0), Err(out_of_range("sequence", 3, 3)));
    assert_eq!(cache.keys(0, 0, 4), Err(out_of_range("head", 4, 4)));
}

#[test]
fn the_paged_cache_refuses_bad_indices() {
    let mut cache = PagedKvCache::new(SHAPE, 2).unwrap();
    check_store(&mut cache);
    assert_eq!(cache.block_table(2).unwrap().len(), 1);
    assert_eq!(cache.block_table(3), Err(out_of_range("sequence", 3, 3)));
}
