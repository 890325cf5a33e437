//! The small vector abstraction the generic microkernel is written against, and that microkernel.
//!
//! Each instruction set supplies one `Vector` type whose methods are `#[inline(always)]` wrappers over its
//! intrinsics. They carry no `#[target_feature]` themselves: they are only ever inlined into a function that has
//! the features enabled (the thin wrappers in `avx512.rs`, `avx2.rs`, `scalar.rs`), the pattern memchr uses.

/// A register of `LANES` f32 values.
pub(crate) trait Vector: Copy {
    const LANES: usize;

    /// # Safety
    /// The CPU must support the instruction set of the implementing type.
    unsafe fn zero() -> Self;

    /// Broadcasts the f32 at `ptr` to every lane.
    ///
    /// # Safety
    /// As [`Vector::zero`]; `ptr` must be valid for one f32 read.
    unsafe fn splat_from(ptr: *const f32) -> Self;

    /// # Safety
    /// As [`Vector::zero`]; `ptr` must be valid for `LANES` f32 reads (no alignment needed).
    unsafe fn load(ptr: *const f32) -> Self;

    /// # Safety
    /// As [`Vector::zero`]; `ptr` must be valid for `LANES` f32 writes (no alignment needed).
    unsafe fn store(ptr: *mut f32, value: Self);

    /// `a · b + acc`, fused where the instruction set has it.
    ///
    /// # Safety
    /// As [`Vector::zero`].
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self;

    /// # Safety
    /// As [`Vector::zero`].
    unsafe fn add(a: Self, b: Self) -> Self;

    /// Hints that the cache line holding `ptr` will be needed soon. A no-op by default.
    ///
    /// # Safety
    /// As [`Vector::zero`]. `ptr` need not be valid: prefetches never fault.
    #[inline(always)]
    unsafe fn prefetch(_ptr: *const f32) {}
}

/// Row stride, in floats, of a packed A micro-panel: rows are stored one after another at this fixed stride so
/// the microkernel reaches row `r` with a constant displacement (`r · A_ROW_STRIDE · 4` bytes) from one moving
/// pointer, and packing A is a plain row copy rather than a transpose. The 8 floats of padding keep the rows from
/// mapping onto the same L1 sets. The depth `kc` of a packed slab is therefore at most [`KC_LIMIT`].
pub(crate) const A_ROW_STRIDE: usize = KC_LIMIT + 8;

/// Largest `kc` the packed A layout supports.
pub(crate) const KC_LIMIT: usize = 512;

/// How many `k` steps ahead the microkernel prefetches its B panel, which streams from L2.
const B_PREFETCH_STEPS: usize = 8;

/// The operands of one microkernel call (see [`microkernel`]).
#[derive(Clone, Copy)]
pub(crate) struct TileArgs {
    /// Steps along k.
    pub(crate) depth: usize,
    /// Row 0 of the A panel; row `r` starts `r · a_row_stride` floats later.
    pub(crate) a_panel: *const f32,
    pub(crate) a_row_stride: isize,
    /// Row 0 of the B panel; row `p` starts `p · b_row_stride` floats later.
    pub(crate) b_panel: *const f32,
    pub(crate) b_row_stride: isize,
    /// Top-left element of the C tile; row `r` starts `r · c_row_stride` floats later, columns contiguous.
    pub(crate) c: *mut f32,
    pub(crate) c_row_stride: isize,
    /// Add into C (true) or overwrite it without reading (false).
    pub(crate) load_c: bool,
}

/// One register-blocked tile: `c[0..MR, 0..NV·LANES] (+)= a_panel · b_panel` over `depth` steps.
///
/// `a_panel` holds `MR` rows of `depth` contiguous values, `a_row_stride` floats apart (a packed panel, or A
/// itself when it is row-major); `b_panel` holds `depth` rows of `NV · LANES` values, `b_row_stride` floats apart
/// (a packed B panel is `NR` wide, a narrow edge tile reads only its first vectors; or B itself when it is
/// row-major and small enough to stay in L2 unpacked). The
/// `MR × NV` accumulators live in registers for the whole loop; `c` is read (when `load_c`) and written once.
///
/// # Safety
/// The CPU must support `V`'s instruction set. `a_panel` must be valid for reads of
/// `a_panel[r · a_row_stride + p]` for `r < MR`, `p < depth`, `b_panel` for reads of
/// `b_panel[p · b_row_stride + j]` for `p < depth`, `j < NV · LANES`, and row `r < MR` of `c`, starting at `c + r · c_row_stride`, for `NV · LANES`
/// contiguous reads and writes, none of which alias the panels.
#[inline(always)]
pub(crate) unsafe fn microkernel<V: Vector, const MR: usize, const NV: usize>(tile: TileArgs) {
    let TileArgs {
        depth,
        a_panel,
        a_row_stride,
        b_panel,
        b_row_stride,
        c,
        c_row_stride,
        load_c,
    } = tile;
    // SAFETY: the caller guarantees the instruction set (for every `V::` call below) and the pointer ranges.
    unsafe {
        // C is read (or written) only after the loop: start pulling its lines in now so the miss overlaps the work.
        for row_idx in 0..MR {
            let c_row = c.wrapping_offset(row_idx as isize * c_row_stride);
            for line in (0..NV * V::LANES).step_by(16) {
                V::prefetch(c_row.wrapping_add(line));
            }
            V::prefetch(c_row.wrapping_add(NV * V::LANES - 1));
        }
        let mut acc = [[V::zero(); NV]; MR];
        // One base pointer per A row, indexed by the step: each broadcast is a single `base + 4·p` load.
        let a_rows: [*const f32; MR] =
            std::array::from_fn(|row_idx| a_panel.wrapping_offset(row_idx as isize * a_row_stride));
        let mut b_ptr = b_panel;
        // Unrolled by two to halve the loop bookkeeping.
        let mut inner_idx = 0;
        while inner_idx + 2 <= depth {
            step::<V, MR, NV>(&mut acc, &a_rows, inner_idx, b_ptr, b_row_stride);
            step::<V, MR, NV>(
                &mut acc,
                &a_rows,
                inner_idx + 1,
                b_ptr.offset(b_row_stride),
                b_row_stride,
            );
            b_ptr = b_ptr.offset(2 * b_row_stride);
            inner_idx += 2;
        }
        if inner_idx < depth {
            step::<V, MR, NV>(&mut acc, &a_rows, inner_idx, b_ptr, b_row_stride);
        }
        for (row_idx, acc_row) in acc.iter().enumerate() {
            let c_row = c.offset(row_idx as isize * c_row_stride);
            for (vec_idx, &acc_value) in acc_row.iter().enumerate() {
                let c_ptr = c_row.add(vec_idx * V::LANES);
                let value = if load_c {
                    V::add(V::load(c_ptr), acc_value)
                } else {
                    acc_value
                };
                V::store(c_ptr, value);
            }
        }
    }
}

/// One step of the rank-1 update: `NV` vector loads of B, `MR` broadcasts of A, `MR · NV` FMAs. A function rather
/// than a closure so it can be forced inline: an out-of-line step would keep the accumulators in memory.
///
/// # Safety
/// As [`microkernel`], for step `inner_idx` with `b_ptr` at row `inner_idx` of the B panel.
#[inline(always)]
unsafe fn step<V: Vector, const MR: usize, const NV: usize>(
    acc: &mut [[V; NV]; MR],
    a_rows: &[*const f32; MR],
    inner_idx: usize,
    b_ptr: *const f32,
    b_row_stride: isize,
) {
    // SAFETY: the caller guarantees the instruction set and that these reads are inside the panels.
    unsafe {
        for line in (0..NV * V::LANES).step_by(16) {
            V::prefetch(
                b_ptr.wrapping_offset(B_PREFETCH_STEPS as isize * b_row_stride + line as isize),
            );
        }
        let mut b_vec = [V::zero(); NV];
        for (vec_idx, b_value) in b_vec.iter_mut().enumerate() {
            *b_value = V::load(b_ptr.add(vec_idx * V::LANES));
        }
        for (acc_row, a_row) in acc.iter_mut().zip(a_rows.iter()) {
            let a_value = V::splat_from(a_row.add(inner_idx));
            for (acc_value, &b_value) in acc_row.iter_mut().zip(b_vec.iter()) {
                *acc_value = V::mul_add(a_value, b_value, *acc_value);
            }
        }
    }
}
