//! The SIMD kernel over threads. C is cut into disjoint column (or row) chunks, a few per thread, and the threads
//! take chunks from a shared queue until it is empty, each computing its chunk with the single-thread kernel and
//! its own packing buffers. No `unsafe` here: the chunks are disjoint `ArrayViewMut2`s obtained with `split_at`.
//!
//! Two choices come from measurements on the reference VM (2 vCPUs), see `docs/ARCHITECTURE.md`:
//! - **Persistent workers that join late work instead of being waited for** ([`crate::pool`]): spawning scoped
//!   threads per call cost 87 µs at the median (227 µs at p90), and a worker's vCPU can take from 10 µs to
//!   milliseconds to wake, so a product the caller could finish alone must not wait for it.
//! - **Dynamic chunks** instead of one fixed strip per thread: a vCPU is regularly slowed for tens of
//!   milliseconds (its GEMM throughput drops by a quarter while the FMA probe's does not), and with fixed strips
//!   the whole product waits for the slow one. Chunks are at least `nc / 2` columns wide: narrower ones reuse
//!   each A micro-panel too few times (64-column chunks ran at 96 GFLOP/s per thread against 130 for one thread
//!   at n = 256).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::pool::Pool;

use ndarray::{s, ArrayView2, ArrayViewMut2, Axis};

use crate::simd::workspace::with_workspaces;
use crate::simd::{self, Isa, SimdBlocking};
use crate::AccelError;

/// Chunks handed out per thread: enough that a thread slowed by a quarter hands its last chunks to the other,
/// few enough that each chunk still spans several register tiles and A is not re-read much more often than
/// the one-thread kernel reads it (once per `nc` columns).
const CHUNKS_PER_THREAD: usize = 4;

/// How many threads to use for an `m × k · k × n` product: 1 when the work is too small for a second thread to
/// pay for its wake-up, never more than there are register-tile strips to hand out.
pub(crate) fn effective_threads(
    m: usize,
    k: usize,
    n: usize,
    isa: Isa,
    requested: usize,
    min_flops: u64,
) -> usize {
    let flops = 2 * (m as u64) * (k as u64) * (n as u64);
    if requested <= 1 || flops < min_flops {
        return 1;
    }
    let (mr, nr) = isa.register_tile();
    let strips = m.div_ceil(mr).max(n.div_ceil(nr));
    requested.min(strips).max(1)
}

/// The worker pool for `threads`-way products: `threads − 1` workers, the calling thread being the last one.
/// Built once per thread count and kept, so workers and their packing buffers stay warm across calls.
fn pool(threads: usize) -> Result<Arc<Pool>, AccelError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<Pool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.get(&threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = Pool::new(threads - 1).map_err(|error| AccelError::InvalidConfig {
        what: format!(
            "could not start {} GEMM worker threads: {error}",
            threads - 1
        ),
    })?;
    let pool = Arc::new(pool);
    pools.insert(threads, Arc::clone(&pool));
    Ok(pool)
}

/// Cuts `extent` into `chunks` nearly equal runs of whole `unit`s (only the last run may end in a partial unit).
fn chunk_bounds(extent: usize, unit: usize, chunks: usize) -> Vec<(usize, usize)> {
    let units = extent.div_ceil(unit);
    let chunks = chunks.clamp(1, units.max(1));
    let mut bounds = Vec::with_capacity(chunks);
    let mut start = 0;
    for chunk_idx in 0..chunks {
        let units_here = units / chunks + usize::from(chunk_idx < units % chunks);
        let end = (start + units_here * unit).min(extent);
        bounds.push((start, end));
        start = end;
    }
    bounds
}

/// `c (+)= a · b` on up to `threads` threads (the calling thread is one of them). Returns the number of threads
/// that computed at least one chunk.
pub(crate) fn gemm_parallel(
    isa: Isa,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    blocking: SimdBlocking,
    threads: usize,
) -> Result<usize, AccelError> {
    let (m, n) = (a.nrows(), b.ncols());
    let (mr, nr) = isa.register_tile();
    // Chunks are whole register tiles, so only the last one has an edge. Cutting C into column chunks means each
    // chunk packs only its own part of B and nothing is packed twice (row-major A is read in place); cutting into
    // row chunks makes every chunk pack all of B. So columns win unless there are too few column tiles to share.
    let split_rows = n.div_ceil(nr) < threads && m.div_ceil(mr) > n.div_ceil(nr);
    let (extent, unit) = if split_rows { (m, mr) } else { (n, nr) };
    let min_width = if split_rows {
        unit
    } else {
        (blocking.nc / 2).max(unit)
    };
    let wanted = (threads * CHUNKS_PER_THREAD).min(extent.div_ceil(min_width).max(threads));
    let bounds = chunk_bounds(extent, unit, wanted);
    let threads = threads.clamp(1, bounds.len());
    if threads == 1 {
        with_workspaces(1, |workspaces| {
            simd::gemm(isa, a, b, c, accumulate, blocking, &mut workspaces[0])
        })?;
        return Ok(1);
    }

    let mut jobs = Vec::with_capacity(bounds.len());
    let mut rest = c;
    for &(start, end) in &bounds {
        let axis = if split_rows { Axis(0) } else { Axis(1) };
        let (c_part, tail) = rest.split_at(axis, end - start);
        rest = tail;
        let (a_part, b_part) = if split_rows {
            (a.slice_move(s![start..end, ..]), b)
        } else {
            (a, b.slice_move(s![.., start..end]))
        };
        jobs.push((a_part, b_part, c_part));
    }
    let queue = Mutex::new(jobs.into_iter());
    let first_error: Mutex<Option<AccelError>> = Mutex::new(None);
    // Threads that computed at least one chunk: what is reported as having run (a worker that woke after the
    // queue emptied did nothing and is not counted).
    let working = AtomicUsize::new(0);
    // Takes chunks until none is left; every thread runs this, each with its own (thread-local, warm) buffers.
    let drain = || {
        let mut counted = false;
        with_workspaces(1, |workspaces| loop {
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((a_part, b_part, c_part)) = job else {
                break;
            };
            if !counted {
                counted = true;
                working.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(error) = simd::gemm(
                isa,
                a_part,
                b_part,
                c_part,
                accumulate,
                blocking,
                &mut workspaces[0],
            ) {
                first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
            }
        });
    };
    // Workers that wake while chunks remain join in; a panic in any of them is re-raised here.
    pool(threads)?.run(&drain);
    match first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        Some(error) => Err(error),
        None => Ok(working.into_inner().max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_bounds;

    #[test]
    fn chunks_cover_the_extent_in_whole_units() {
        for extent in [1, 63, 64, 65, 200, 1024, 1030] {
            for unit in [1, 6, 64] {
                for chunks in [1, 2, 3, 8, 100] {
                    let bounds = chunk_bounds(extent, unit, chunks);
                    assert_eq!(bounds[0].0, 0);
                    assert_eq!(bounds.last().unwrap().1, extent);
                    for pair in bounds.windows(2) {
                        assert_eq!(pair[0].1, pair[1].0);
                    }
                    for &(start, end) in &bounds[..bounds.len() - 1] {
                        assert!(end > start && (end - start) % unit == 0, "{bounds:?}");
                    }
                    assert!(bounds.len() <= chunks.max(1));
                }
            }
        }
    }
}
