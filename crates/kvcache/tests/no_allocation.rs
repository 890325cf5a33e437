//! A cached decode step allocates nothing: the model's intermediates live in the decoder's reused scratch, the
//! contiguous cache is preallocated, and `Decoder::step_view` lends the logits instead of returning a new array.
//! Counted by a global allocator in this test binary (its only test, so no other test thread allocates), on the
//! test's own thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvcache::{argmax, CacheMode, Decoder, ModelConfig, Transformer};
use ndarray::Array2;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn a_cached_decode_step_allocates_nothing() {
    let config = ModelConfig {
        max_seq_len: 96,
        ..ModelConfig::reference()
    };
    let model = Transformer::random(config, 3).unwrap();
    for batch_size in [1usize, 3] {
        let prompt = Array2::from_shape_fn((batch_size, 5), |(s, t)| (s * 7 + t) as u32);
        let mut decoder = Decoder::new(&model, batch_size, 96, CacheMode::Contiguous).unwrap();
        decoder.prefill(prompt.view()).unwrap();
        let mut next = vec![1u32; batch_size];
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.with(|counting| counting.set(true));
        for _ in 0..80 {
            let logits = decoder.step_view(&next).unwrap();
            for (slot, row) in next.iter_mut().zip(logits.rows()) {
                *slot = argmax(row);
            }
        }
        COUNTING.with(|counting| counting.set(false));
        assert_eq!(
            ALLOCATIONS.load(Ordering::Relaxed),
            0,
            "batch {batch_size}: decode steps allocated"
        );
    }
}
