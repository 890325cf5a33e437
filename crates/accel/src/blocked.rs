//! Cache-tiled i-k-j loops in portable scalar code: the cache effect on its own, without explicit SIMD.

use ndarray::{s, ArrayView2, ArrayViewMut2};

use crate::cache::CacheInfo;
use crate::naive::axpy;
use crate::AccelError;

/// Tile sizes of the blocked kernel, in elements.
///
/// The kernel walks `c` in `nc`-wide column strips and `k` in `kc`-deep slabs, so that the `kc × nc` tile of `b`
/// it reuses for every row stays in L2, and a row segment of `c` plus one of `b` stay in L1. `mc` is the number of
/// rows of `a` handled per tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSizes {
    /// Rows of `a` and `c` per tile.
    pub mc: usize,
    /// Depth (columns of `a`, rows of `b`) per tile.
    pub kc: usize,
    /// Columns of `b` and `c` per tile.
    pub nc: usize,
}

impl TileSizes {
    /// Tile sizes derived from cache sizes: a `c` row segment and a `b` row segment (`2 · nc` floats) take at most
    /// an eighth of L1d, and the `kc × nc` tile of `b` at most a quarter of L2 (it shares L2 with the rows of `c`
    /// and `a` streaming through, and a guest can over-report L2).
    pub fn from_cache(cache: &CacheInfo) -> TileSizes {
        let floats = |bytes: usize| bytes / std::mem::size_of::<f32>();
        let nc = round_down_to(floats(cache.l1d_bytes) / 16, 16).clamp(64, 1024);
        let kc = round_down_to(floats(cache.l2_bytes) / 4 / nc, 8).clamp(32, 1024);
        TileSizes { mc: 64, kc, nc }
    }

    /// Tile sizes for the running CPU (see [`CacheInfo::detect`]).
    pub fn detect() -> TileSizes {
        TileSizes::from_cache(&CacheInfo::detect())
    }

    pub(crate) fn validate(&self) -> Result<(), AccelError> {
        if self.mc == 0 || self.kc == 0 || self.nc == 0 {
            return Err(AccelError::InvalidConfig {
                what: format!("tile sizes must be positive, got {self:?}"),
            });
        }
        Ok(())
    }
}

fn round_down_to(value: usize, multiple: usize) -> usize {
    value / multiple * multiple
}

/// Blocked `c = a · b` (or `c += a · b`). Shapes are checked by the caller.
pub(crate) fn matmul_blocked(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    tiles: TileSizes,
) {
    if !accumulate {
        c.fill(0.0);
    }
    let (m, k) = a.dim();
    let n = b.ncols();
    // Row-major operands: the same loops on plain slices, without per-row view bookkeeping.
    if let (Some(a_flat), Some(b_flat), Some(c_flat)) =
        (a.as_slice(), b.as_slice(), c.as_slice_mut())
    {
        for col_start in (0..n).step_by(tiles.nc) {
            let col_end = (col_start + tiles.nc).min(n);
            for inner_start in (0..k).step_by(tiles.kc) {
                let inner_end = (inner_start + tiles.kc).min(k);
                for row_start in (0..m).step_by(tiles.mc) {
                    let row_end = (row_start + tiles.mc).min(m);
                    for row_idx in row_start..row_end {
                        let c_row = &mut c_flat[row_idx * n + col_start..row_idx * n + col_end];
                        for inner_idx in inner_start..inner_end {
                            let a_value = a_flat[row_idx * k + inner_idx];
                            let b_row = &b_flat[inner_idx * n + col_start..inner_idx * n + col_end];
                            for (c_value, b_value) in c_row.iter_mut().zip(b_row) {
                                *c_value += a_value * b_value;
                            }
                        }
                    }
                }
            }
        }
        return;
    }
    for col_start in (0..n).step_by(tiles.nc) {
        let col_end = (col_start + tiles.nc).min(n);
        for inner_start in (0..k).step_by(tiles.kc) {
            let inner_end = (inner_start + tiles.kc).min(k);
            let b_tile = b.slice(s![inner_start..inner_end, col_start..col_end]);
            for row_start in (0..m).step_by(tiles.mc) {
                let row_end = (row_start + tiles.mc).min(m);
                let a_tile = a.slice(s![row_start..row_end, inner_start..inner_end]);
                let mut c_tile = c.slice_mut(s![row_start..row_end, col_start..col_end]);
                for (a_row, mut c_row) in a_tile.rows().into_iter().zip(c_tile.rows_mut()) {
                    for (inner_idx, &a_value) in a_row.iter().enumerate() {
                        axpy(c_row.view_mut(), a_value, b_tile.row(inner_idx));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_follow_the_cache_sizes() {
        let small = TileSizes::from_cache(&CacheInfo {
            l1d_bytes: 32 * 1024,
            l2_bytes: 256 * 1024,
            ..CacheInfo::DEFAULT
        });
        let large = TileSizes::from_cache(&CacheInfo {
            l1d_bytes: 48 * 1024,
            l2_bytes: 2048 * 1024,
            ..CacheInfo::DEFAULT
        });
        assert!(small.kc * small.nc * 4 <= 128 * 1024);
        assert!(large.kc * large.nc >= small.kc * small.nc);
        assert!(small.validate().is_ok());
        assert!(TileSizes {
            mc: 0,
            kc: 1,
            nc: 1
        }
        .validate()
        .is_err());
    }
}
