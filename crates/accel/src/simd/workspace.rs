//! Reusable, 64-byte aligned packing buffers, so a call does not allocate (or fault in fresh pages) every time.

use std::cell::RefCell;

/// Packing buffers for one thread of work.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    a_storage: Vec<f32>,
    b_storage: Vec<f32>,
}

/// Floats of slack so the start can be moved to a 64-byte boundary.
const ALIGN_SLACK: usize = 16;

fn aligned_start(storage: &mut Vec<f32>, len: usize) -> *mut f32 {
    if storage.len() < len + ALIGN_SLACK {
        *storage = vec![0.0; len + ALIGN_SLACK];
    }
    let base = storage.as_mut_ptr();
    let offset = base.align_offset(64).min(ALIGN_SLACK);
    base.wrapping_add(offset)
}

impl Workspace {
    /// Two aligned buffers of at least `a_len` and `b_len` floats. The pointers stay valid until the next call.
    pub(crate) fn buffers(&mut self, a_len: usize, b_len: usize) -> (*mut f32, *mut f32) {
        (
            aligned_start(&mut self.a_storage, a_len),
            aligned_start(&mut self.b_storage, b_len),
        )
    }
}

thread_local! {
    static WORKSPACES: RefCell<Vec<Workspace>> = const { RefCell::new(Vec::new()) };
}

/// Runs `body` with `count` workspaces owned by the calling thread (kept for its next call). Worker threads get
/// theirs from the caller this way, so short-lived scoped threads reuse warm buffers too.
pub(crate) fn with_workspaces<R>(count: usize, body: impl FnOnce(&mut [Workspace]) -> R) -> R {
    WORKSPACES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pool) => {
            if pool.len() < count {
                pool.resize_with(count, Workspace::default);
            }
            body(&mut pool[..count])
        }
        // Re-entered from inside `body` (not something accel does): use fresh buffers rather than fail.
        Err(_) => {
            let mut fresh: Vec<Workspace> = (0..count).map(|_| Workspace::default()).collect();
            body(&mut fresh)
        }
    })
}
