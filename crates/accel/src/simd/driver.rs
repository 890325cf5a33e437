//! The one generic GEMM body: block the operands for the caches, pack B into panels, run the microkernel.
//!
//! Loop order (outermost first), with `C[m × n] (+)= A[m × k] · B[k × n]` row-major and vectors along `n`:
//!
//! 1. `ic`: `mc` rows of A (all of them up to thousands of rows).
//! 2. `pc`: `kc`-deep slabs of the inner dimension (k split into equal slabs of at most `kc`).
//! 3. `jc`: `nc` columns of B, packed into `NR`-wide micro-panels (the `kc × nc` block is sized to stay in L2).
//! 4. `ir`: `MR` rows of A (`MR × kc`, stays in L1 while...)
//! 5. `jr`: ...every B micro-panel of the block streams past it through the microkernel.
//!
//! A is read in place when its rows are contiguous (the microkernel broadcasts from `MR` row pointers), and
//! otherwise copied into fixed-stride rows; B is packed once per `(pc, jc)` block unless it is a single panel.
//! Edge tiles run exact-size microkernels (fewer rows, fewer vectors); only a column remainder that is not a
//! whole vector, or a C whose columns are not contiguous, goes through a small local tile.

use super::vector::{TileArgs, A_ROW_STRIDE, KC_LIMIT};
use super::workspace::Workspace;
use super::{MatMut, MatRef, SimdBlocking};

/// A register-blocked tile kernel for one instruction set: `MR` rows by `NR` columns of C (`NR / LANES` vectors).
pub(crate) trait MicroKernel {
    const MR: usize;
    const NR: usize;
    const LANES: usize;

    /// Runs a `rows × vectors·LANES` tile (`1 <= rows <= MR`, `1 <= vectors <= NR / LANES`): the full tile, or
    /// an exact smaller one at the bottom or right edge of C, so edges neither compute padding nor need a copy.
    /// See [`super::vector::microkernel`] for the pointer contract (with `MR = rows`, `NV = vectors`).
    ///
    /// # Safety
    /// As `microkernel`, and `rows`, `vectors` within the bounds above.
    unsafe fn run(rows: usize, vectors: usize, tile: TileArgs);
}

/// Largest `MR · NR` of any kernel; the edge tile buffer has this many elements.
pub(crate) const MAX_TILE: usize = 512;

#[repr(C, align(64))]
struct EdgeTile([f32; MAX_TILE]);

fn round_up(value: usize, multiple: usize) -> usize {
    value.div_ceil(multiple) * multiple
}

/// `c (+)= a · b` with packing. Shapes must agree (`a.cols == b.rows`, `c` is `a.rows × b.cols`).
///
/// # Safety
/// The CPU must support `K`'s instruction set, and the matrix descriptors must describe valid, non-aliasing
/// memory (see [`MatRef`], [`MatMut`]).
#[inline(always)]
pub(crate) unsafe fn gemm_body<K: MicroKernel>(
    a: MatRef,
    b: MatRef,
    c: MatMut,
    accumulate: bool,
    blocking: SimdBlocking,
    workspace: &mut Workspace,
) {
    const { assert!(K::MR * K::NR <= MAX_TILE) };
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row_idx in 0..m {
                for col_idx in 0..n {
                    // SAFETY: (row_idx, col_idx) is inside c.
                    unsafe { *c.at(row_idx, col_idx) = 0.0 };
                }
            }
        }
        return;
    }
    // Split k and n into equal blocks no larger than asked (so no sliver of a last block runs at poor
    // efficiency), the depth capped by the packed A layout and the width a whole number of register tiles.
    let kc = blocking.kc.clamp(1, KC_LIMIT);
    let kc = k.div_ceil(k.div_ceil(kc));
    let nc = round_up(blocking.nc.max(1), K::NR);
    let nc = round_up(n.div_ceil(n.div_ceil(nc)), K::NR);
    let blocking = SimdBlocking {
        kc,
        nc,
        mc: blocking.mc.max(1),
    };
    let kc_max = blocking.kc.min(k);
    let mc_max = round_up(blocking.mc.min(m), K::MR);
    let nc_max = round_up(blocking.nc.min(n), K::NR);
    let (a_pack, b_pack) = workspace.buffers(mc_max * A_ROW_STRIDE, kc_max * nc_max);
    let mut edge_tile = EdgeTile([0.0; MAX_TILE]);
    // Row-major A needs no packing: the microkernel broadcasts straight from its rows, and the last panel runs an
    // exact-height tile, so nothing past A is read. Other layouts are packed into fixed-stride rows.
    let a_direct = a.col_stride == 1;
    // Row-major B no wider than one panel is not packed either: the panel would be a plain copy of B, and the
    // copy dominates such small products. (Unpacked wider B measured slower from n = 256: its panels' rows are a
    // full B row apart.) A panel whose width is not a whole number of vectors is still packed, zero-padded, so
    // the kernel never reads past B.
    let b_direct = b.col_stride == 1 && n <= K::NR;
    let b_panel_direct = |cols: usize| b_direct && cols.is_multiple_of(K::LANES);

    for row_block in (0..m).step_by(blocking.mc) {
        let mc = blocking.mc.min(m - row_block);
        for inner_block in (0..k).step_by(blocking.kc) {
            let kc = blocking.kc.min(k - inner_block);
            let load_c = accumulate || inner_block > 0;
            if !a_direct {
                // SAFETY: the sub-block lies inside a; a_pack holds mc_max · A_ROW_STRIDE ≥ round_up(mc, MR) ·
                // A_ROW_STRIDE floats.
                unsafe { pack_a(a.sub(row_block, inner_block, mc, kc), a_pack) };
            }
            for col_block in (0..n).step_by(blocking.nc) {
                let nc = blocking.nc.min(n - col_block);
                // SAFETY: the sub-block lies inside b; b_pack holds kc_max · nc_max ≥ kc · round_up(nc, NR) floats.
                unsafe {
                    pack_b::<K>(
                        b.sub(inner_block, col_block, kc, nc),
                        b_pack,
                        b_panel_direct,
                    )
                };
                for panel_row in (0..mc).step_by(K::MR) {
                    let rows = K::MR.min(mc - panel_row);
                    let (a_panel, a_row_stride) = if a_direct {
                        // SAFETY: rows panel_row .. + rows and columns inner_block .. + kc are inside a.
                        (
                            unsafe { a.at(row_block + panel_row, inner_block) },
                            a.row_stride,
                        )
                    } else {
                        // SAFETY: panel offsets stay inside the packed buffer (see pack_a).
                        (
                            unsafe { a_pack.add(panel_row * A_ROW_STRIDE) }.cast_const(),
                            A_ROW_STRIDE as isize,
                        )
                    };
                    for panel_col in (0..nc).step_by(K::NR) {
                        let cols = K::NR.min(nc - panel_col);
                        let vectors = cols.div_ceil(K::LANES);
                        let (b_panel, b_row_stride) = if b_panel_direct(cols) {
                            // SAFETY: rows inner_block .. + kc and columns col_block + panel_col .. + cols are
                            // inside b, and the kernel reads whole vectors only (cols is a multiple of LANES).
                            (
                                unsafe { b.at(inner_block, col_block + panel_col) },
                                b.row_stride,
                            )
                        } else {
                            // SAFETY: panel offsets stay inside the packed buffer (see pack_b).
                            (
                                unsafe { b_pack.add(panel_col * kc) }.cast_const(),
                                K::NR as isize,
                            )
                        };
                        let c_row = row_block + panel_row;
                        let c_col = col_block + panel_col;
                        // SAFETY: (c_row, c_col) is inside c.
                        let c_ptr = unsafe { c.at(c_row, c_col) };
                        let tile = TileArgs {
                            depth: kc,
                            a_panel,
                            a_row_stride,
                            b_panel,
                            b_row_stride,
                            c: c_ptr,
                            c_row_stride: c.row_stride,
                            load_c,
                        };
                        if cols.is_multiple_of(K::LANES) && c.col_stride == 1 {
                            // SAFETY: rows × whole vectors of contiguous C rows, all inside c; the panels hold kc
                            // steps of at least `rows` rows and `vectors` vectors.
                            unsafe { K::run(rows, vectors, tile) };
                            continue;
                        }
                        // A column edge that is not a whole vector, or strided C: compute the tile into a local
                        // buffer, then copy the valid part. Padding columns of the packed B panel are zeros.
                        let edge = edge_tile.0.as_mut_ptr();
                        let edge_args = TileArgs {
                            c: edge,
                            c_row_stride: K::NR as isize,
                            load_c: false,
                            ..tile
                        };
                        // SAFETY: the edge tile holds MR · NR ≤ MAX_TILE floats with row stride NR; this panel of B
                        // is packed (b_panel_direct is false for widths that are not whole vectors) or, for strided
                        // C only, read in whole vectors.
                        unsafe { K::run(rows, vectors, edge_args) };
                        for row_idx in 0..rows {
                            for col_idx in 0..cols {
                                // SAFETY: (c_row + row_idx, c_col + col_idx) is inside c; the tile index is < MR · NR.
                                unsafe {
                                    let out = c.at(c_row + row_idx, c_col + col_idx);
                                    let value = *edge.add(row_idx * K::NR + col_idx);
                                    *out = if load_c { *out + value } else { value };
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs `src` (`mc × kc`, `kc <= KC_LIMIT`) row by row: row `r` lands at offset `r · A_ROW_STRIDE`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for `mc · A_ROW_STRIDE` writes.
#[inline(always)]
unsafe fn pack_a(src: MatRef, dst: *mut f32) {
    let (mc, kc) = (src.rows, src.cols);
    debug_assert!(kc <= KC_LIMIT);
    for row_idx in 0..mc {
        // SAFETY: row_idx · A_ROW_STRIDE + kc ≤ mc · A_ROW_STRIDE.
        let dst_row = unsafe { dst.add(row_idx * A_ROW_STRIDE) };
        for inner_idx in 0..kc {
            // SAFETY: inside src and inside the packed row.
            unsafe { *dst_row.add(inner_idx) = *src.at(row_idx, inner_idx) };
        }
    }
}

/// Packs `src` (`kc × nc`) into `NR`-wide micro-panels: panel `t` holds, for each `p < kc`, the `NR` values
/// `src[p, t·NR .. t·NR+NR]`, zero-padded past `nc`. Panels for which `skip(width)` is true are read in place
/// by the kernel and left unpacked.
///
/// # Safety
/// `src` must be valid for reads and `dst` for `kc · round_up(nc, NR)` writes.
#[inline(always)]
unsafe fn pack_b<K: MicroKernel>(src: MatRef, dst: *mut f32, skip: impl Fn(usize) -> bool) {
    let (kc, nc) = (src.rows, src.cols);
    for panel_col in (0..nc).step_by(K::NR) {
        let cols = K::NR.min(nc - panel_col);
        if skip(cols) {
            continue;
        }
        // SAFETY: panel_col · kc + kc · NR ≤ kc · round_up(nc, NR).
        let panel = unsafe { dst.add(panel_col * kc) };
        if cols == K::NR && src.col_stride == 1 {
            for inner_idx in 0..kc {
                // SAFETY: NR contiguous floats of row inner_idx of src, into the panel; no overlap (dst is ours).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.at(inner_idx, panel_col),
                        panel.add(inner_idx * K::NR),
                        K::NR,
                    )
                };
            }
            continue;
        }
        for inner_idx in 0..kc {
            for col_idx in 0..K::NR {
                let value = if col_idx < cols {
                    // SAFETY: inside src.
                    unsafe { *src.at(inner_idx, panel_col + col_idx) }
                } else {
                    0.0
                };
                // SAFETY: inside the panel.
                unsafe { *panel.add(inner_idx * K::NR + col_idx) = value };
            }
        }
    }
}
