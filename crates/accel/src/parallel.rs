//! The SIMD kernel over `std::thread::scope` threads: C is cut into disjoint row (or column) strips, one per
//! thread, each computed by the single-thread kernel with its own packing buffers. No `unsafe` here: the strips
//! are disjoint `ArrayViewMut2`s obtained with `split_at`.

use ndarray::{s, ArrayView2, ArrayViewMut2, Axis};

use crate::simd::workspace::with_workspaces;
use crate::simd::{self, Isa, SimdBlocking};
use crate::AccelError;

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

/// `c (+)= a · b` on `threads` threads (the calling thread is one of them). Returns the number of threads used.
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
    // Strips are whole register tiles, so only the last one has an edge. Cutting C into column strips means each
    // thread packs only its own part of B and nothing is packed twice (row-major A is read in place); cutting into
    // row strips makes every thread pack all of B. So columns win unless they balance clearly worse.
    let imbalance = |extent: usize, unit: usize| {
        let units = extent.div_ceil(unit).max(1);
        (units.div_ceil(threads) * threads) as f64 / units as f64
    };
    let split_rows = imbalance(n, nr) > 1.05 * imbalance(m, mr);
    let (extent, unit) = if split_rows { (m, mr) } else { (n, nr) };
    let units = extent.div_ceil(unit);
    let threads = threads.clamp(1, units.max(1));
    let mut bounds = Vec::with_capacity(threads);
    let mut start = 0;
    for thread_idx in 0..threads {
        let units_here = units / threads + usize::from(thread_idx < units % threads);
        let end = (start + units_here * unit).min(extent);
        bounds.push((start, end));
        start = end;
    }

    with_workspaces(threads, |workspaces| {
        std::thread::scope(|scope| {
            let mut rest = c;
            let mut handles = Vec::with_capacity(threads);
            let mut local = None;
            for (&(start, end), workspace) in bounds.iter().zip(workspaces.iter_mut()) {
                let axis = if split_rows { Axis(0) } else { Axis(1) };
                let (c_part, tail) = rest.split_at(axis, end - start);
                rest = tail;
                let (a_part, b_part) = if split_rows {
                    (a.slice_move(s![start..end, ..]), b)
                } else {
                    (a, b.slice_move(s![.., start..end]))
                };
                let job = move || {
                    simd::gemm(isa, a_part, b_part, c_part, accumulate, blocking, workspace)
                };
                if local.is_none() {
                    // The calling thread does the first strip itself instead of idling.
                    local = Some(job);
                } else {
                    handles.push(scope.spawn(job));
                }
            }
            let mut result = local.map_or(Ok(()), |job| job());
            for handle in handles {
                let joined = handle
                    .join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
                result = result.and(joined);
            }
            result
        })
    })?;
    Ok(threads)
}
