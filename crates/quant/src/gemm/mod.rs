//! Integer GEMM: `C (i32) = A (u8, m × k) · B (i8, k × n)`, with B packed once into the VNNI layout (four
//! consecutive k values of one column side by side), A packed per cache block, a register-blocked
//! `MR × NR` microkernel per instruction set, runtime dispatch decided once, and the kernel that ran returned.
//!
//! Overflow: products are at most 255 · 128 = 32 640 in magnitude and every path accumulates in i32 without a
//! saturating 16-bit step (the AVX2 path widens to i16 and uses `vpmaddwd`, never `vpmaddubsw`), so the result
//! is exact whenever `k · 32 640 < 2³¹`, i.e. `k ≤ MAX_K`; longer products are rejected.

mod gemv;
pub(crate) mod kernels;

pub use gemv::gemv_u8i8_i32;

use crate::error::QuantError;
use crate::kernel::{self, IsaKernel};
use accel::Isa;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::cell::RefCell;
use std::fmt;

/// Rows of the register tile.
pub(crate) const MR: usize = 12;
/// Columns of the register tile (and of a packed B panel).
pub(crate) const NR: usize = 32;
/// k values per 32-bit lane (the VNNI dot-product width).
pub(crate) const KU: usize = 4;
/// Cache blocking of the integer GEMM (see [`GemmBlocking::default`] for the defaults and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmBlocking {
    /// Largest k block, in k values (rounded up to a multiple of 4). k is cut into equal blocks no deeper than
    /// this; every block after the first adds into C, so C makes one more round trip per extra block.
    pub kc: usize,
    /// Rows of A packed per block (rounded up to a multiple of the register tile's 12 rows).
    pub mc: usize,
}

impl Default for GemmBlocking {
    /// `kc = 1024`, `mc = 48`: up to k = 1024 the product makes a single pass over C (C is i32, four times the
    /// bytes of either operand, and a second k block doubled its traffic: 442 → 545 GOP/s best-of-runs at
    /// n = 1024 on the reference VM); a B micro-panel is then up to 1024 × 32 bytes = 32 KiB, read from L2 for
    /// each of the `mc / 12` A micro-panels of a block, and a packed A block (48 × 1024 bytes) stays in L2 beside
    /// the B panels. Measured with `cargo run --release -p quant --example gemm_tune`.
    fn default() -> Self {
        GemmBlocking { kc: 1024, mc: 48 }
    }
}

/// Largest inner dimension whose i32 accumulation cannot overflow: `k · 255 · 128 < 2³¹`.
pub const MAX_K: usize = (i32::MAX as usize) / (255 * 128);

/// An integer GEMM kernel, one per level of accel's instruction-set ladder (see [`IsaKernel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GemmKernel {
    /// 512-bit `vpdpbusd` (AVX-512 VNNI): 64 u8 × i8 products into 16 i32 lanes per instruction.
    Avx512Vnni,
    /// AVX2: widen to i16, `vpmaddwd` into i32 (no saturating 16-bit intermediate).
    Avx2,
    /// Portable scalar loops.
    Scalar,
}

impl IsaKernel for GemmKernel {
    const ALL: [GemmKernel; 3] = GemmKernel::ALL;

    fn name(self) -> &'static str {
        GemmKernel::name(self)
    }

    fn isa(self) -> Isa {
        match self {
            GemmKernel::Avx512Vnni => Isa::Avx512,
            GemmKernel::Avx2 => Isa::Avx2Fma,
            GemmKernel::Scalar => Isa::Scalar,
        }
    }

    fn has_extra_features(self) -> bool {
        match self {
            GemmKernel::Avx512Vnni => kernel::x86_has!("avx512bw", "avx512vnni"),
            GemmKernel::Avx2 | GemmKernel::Scalar => true,
        }
    }
}

impl GemmKernel {
    /// Every kernel, fastest first (the detection ladder).
    pub const ALL: [GemmKernel; 3] = [GemmKernel::Avx512Vnni, GemmKernel::Avx2, GemmKernel::Scalar];

    /// Stable name: `avx512-vnni`, `avx2`, `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Avx512Vnni => "avx512-vnni",
            GemmKernel::Avx2 => "avx2",
            GemmKernel::Scalar => "scalar",
        }
    }

    /// Whether this CPU can run the kernel (accel detects its level, plus VNNI/BW for the AVX-512 kernel).
    pub fn is_available(self) -> bool {
        kernel::is_available(self)
    }

    /// The best kernel this CPU runs.
    pub fn detected() -> GemmKernel {
        kernel::detected()
    }
}

impl fmt::Display for GemmKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Knobs of [`gemm_u8i8_i32`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GemmConfig {
    /// Force a kernel; `None` uses the level `QUANT_KERNEL` forces when set, else the detected best.
    pub kernel: Option<GemmKernel>,
    /// Cache blocking.
    pub blocking: GemmBlocking,
}

impl GemmConfig {
    /// The kernel this configuration runs.
    ///
    /// # Errors
    /// [`QuantError::UnknownKernelName`] for a bad `QUANT_KERNEL`; [`QuantError::KernelUnavailable`] when the
    /// forced kernel cannot run here.
    pub fn resolve(&self) -> Result<GemmKernel, QuantError> {
        kernel::resolve(self.kernel)
    }
}

/// B (`k × n`, i8) packed for the microkernels: full panels of `NR` columns, each `[k/4][NR][4]`, then the last
/// partial panel `[k/4][n mod NR][4]` at its true width (so no padding columns are stored); k is zero-padded to a
/// multiple of 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<i8>,
}

impl PackedB {
    /// Packs `b` (`k × n`, any strides).
    ///
    /// # Errors
    /// [`QuantError::InvalidParameter`] when `k > MAX_K`.
    pub fn pack(b: ArrayView2<'_, i8>) -> Result<Self, QuantError> {
        let mut packed = PackedB {
            k: 0,
            n: 0,
            data: Vec::new(),
        };
        packed.repack(b)?;
        Ok(packed)
    }

    /// Packs `b` into this buffer, reusing its allocation (a model that packs per call, or a benchmark that
    /// counts packing, pays for the data movement but not for a fresh allocation and its page faults).
    ///
    /// # Errors
    /// [`QuantError::InvalidParameter`] when `k > MAX_K` (the buffer is then left unchanged).
    pub fn repack(&mut self, b: ArrayView2<'_, i8>) -> Result<(), QuantError> {
        let (k, n) = b.dim();
        check_k(k)?;
        let groups = k.div_ceil(KU);
        self.k = k;
        self.n = n;
        // Every byte is written below (padding lanes explicitly), so a reused buffer is not cleared first.
        self.data.resize(groups * KU * n, 0);
        // Four rows at a time: each destination 4-byte lane group takes one byte from each row, read from
        // contiguous row slices (a B that is not row-major is copied into that layout first).
        let contiguous = b.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let full_groups = k / KU;
        for panel_start in (0..n).step_by(NR) {
            let width = NR.min(n - panel_start);
            let panel =
                &mut self.data[panel_start * groups * KU..(panel_start + width) * groups * KU];
            for (group, destination) in panel.chunks_exact_mut(width * KU).enumerate() {
                let row = |lane: usize| {
                    let row_idx = group * KU + lane;
                    &values[row_idx * n + panel_start..row_idx * n + panel_start + width]
                };
                if group < full_groups && width == NR {
                    // The common case: a vector byte interleave.
                    let rows: [&[i8; NR]; KU] =
                        std::array::from_fn(|lane| row(lane).try_into().expect("a full panel row"));
                    kernels::interleave_group(rows, destination.try_into().expect("a full group"));
                    continue;
                }
                for lane in 0..KU {
                    if group * KU + lane >= k {
                        // k padding: zeros, so the padded products add nothing.
                        for col in 0..width {
                            destination[col * KU + lane] = 0;
                        }
                        continue;
                    }
                    for (col, &value) in row(lane).iter().enumerate() {
                        destination[col * KU + lane] = value;
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes of the packed buffer: `⌈k/4⌉·4 · n`, one per value (plus zero padding of k to a multiple of 4).
    pub fn storage_bytes(&self) -> usize {
        self.data.len()
    }

    /// Σ_k B[k, j] for each column, computed from the packed data (used to correct for A's zero point).
    pub fn column_sums(&self) -> Vec<i32> {
        let groups = self.k.div_ceil(KU);
        let mut sums = vec![0i32; self.n];
        for panel_start in (0..self.n).step_by(NR) {
            let width = NR.min(self.n - panel_start);
            let panel = &self.data[panel_start * groups * KU..(panel_start + width) * groups * KU];
            for (index, &value) in panel.iter().enumerate() {
                sums[panel_start + (index / KU) % width] += i32::from(value);
            }
        }
        sums
    }

    /// The value at `(row, col)` (for tests and references).
    pub fn get(&self, row: usize, col: usize) -> i8 {
        let groups = self.k.div_ceil(KU);
        let panel_start = col / NR * NR;
        let width = NR.min(self.n - panel_start);
        let (group, lane) = (row / KU, row % KU);
        self.data[panel_start * groups * KU + (group * width + (col - panel_start)) * KU + lane]
    }
}

fn check_k(k: usize) -> Result<(), QuantError> {
    if k > MAX_K {
        return Err(QuantError::InvalidParameter {
            what: "k",
            reason: format!("inner dimension {k} > {MAX_K} could overflow the i32 accumulator"),
        });
    }
    Ok(())
}

/// `C = A · B` in i32 (exact), into a caller-owned `m × n` buffer; returns the kernel that ran.
///
/// The previous contents of `c` are never read.
///
/// # Errors
/// [`QuantError::ShapeMismatch`] when `a.ncols() != b.k()` or `c` is not `m × n`; kernel selection errors as
/// [`GemmConfig::resolve`].
///
/// # Example
/// Pack B once, multiply, and compare with the i64 reference; the kernel that ran is returned.
/// ```
/// use ndarray::Array2;
/// use quant::{gemm_reference_i64, gemm_u8i8_i32, GemmConfig, PackedB};
///
/// let a = Array2::from_shape_fn((5, 70), |(i, j)| (i * 31 + j * 7) as u8);
/// let b = Array2::from_shape_fn((70, 40), |(i, j)| (i as i32 * 3 - j as i32) as i8);
/// let packed = PackedB::pack(b.view())?;
/// let mut c = Array2::<i32>::zeros((5, 40));
/// let kernel = gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &GemmConfig::default())?;
/// let exact = gemm_reference_i64(a.view(), b.view());
/// assert!(c.iter().zip(exact.iter()).all(|(&got, &want)| i64::from(got) == want));
/// println!("ran {kernel}");
/// # Ok::<(), quant::QuantError>(())
/// ```
pub fn gemm_u8i8_i32(
    a: ArrayView2<'_, u8>,
    b: &PackedB,
    mut c: ArrayViewMut2<'_, i32>,
    config: &GemmConfig,
) -> Result<GemmKernel, QuantError> {
    let (m, k) = a.dim();
    if k != b.k {
        return Err(QuantError::ShapeMismatch {
            what: "A columns vs B rows",
            expected: vec![b.k],
            actual: vec![k],
        });
    }
    if c.dim() != (m, b.n) {
        return Err(QuantError::ShapeMismatch {
            what: "C",
            expected: vec![m, b.n],
            actual: vec![c.nrows(), c.ncols()],
        });
    }
    let kernel = config.resolve()?;
    let n = b.n;
    if m == 0 || n == 0 {
        return Ok(kernel);
    }
    if k == 0 {
        c.fill(0);
        return Ok(kernel);
    }
    // The kernels write rows of C directly; a C that is not one contiguous row-major block is computed into a
    // temporary and copied.
    let mut temporary = Vec::new();
    let contiguous = c.as_slice_mut().is_some();
    if !contiguous {
        temporary = vec![0i32; m * n];
    }
    {
        let c_values: &mut [i32] = match c.as_slice_mut() {
            Some(values) => values,
            None => &mut temporary,
        };
        drive(kernel, config.blocking, &a, b, c_values);
    }
    if !contiguous {
        c.assign(&ndarray::ArrayView2::from_shape((m, n), &temporary).expect("m × n values"));
    }
    Ok(kernel)
}

/// Per-thread scratch reused across calls, so a GEMM allocates nothing once warm (a small model's layers call
/// it at every inference).
#[derive(Default)]
struct Scratch {
    a_block: Vec<u8>,
    tail_panel: Vec<i8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The blocked loops: k blocks of `blocking.kc`, row blocks of `blocking.mc` (A packed per block), NR-column panels,
/// MR-row tiles. `c` is row-major `m × n`.
fn drive(
    kernel: GemmKernel,
    blocking: GemmBlocking,
    a: &ArrayView2<'_, u8>,
    b: &PackedB,
    c: &mut [i32],
) {
    SCRATCH.with_borrow_mut(|scratch| drive_with(kernel, blocking, a, b, c, scratch));
}

fn drive_with(
    kernel: GemmKernel,
    blocking: GemmBlocking,
    a: &ArrayView2<'_, u8>,
    b: &PackedB,
    c: &mut [i32],
    scratch: &mut Scratch,
) {
    let (m, k) = a.dim();
    let n = b.n;
    let groups = k.div_ceil(KU);
    // k in equal blocks no deeper than asked (no thin last block), rows in whole register tiles.
    let kc_groups = blocking.kc.div_ceil(KU).max(1);
    let kc_groups = groups.div_ceil(groups.div_ceil(kc_groups));
    let mc = blocking.mc.max(1).div_ceil(MR) * MR;
    let block_groups_max = kc_groups.min(groups);
    // Scratch sized to this product (small products, as in a small model's layers, should not touch
    // full-size blocks), grown only when a larger product comes.
    let a_len = mc.min(m).div_ceil(MR) * MR * block_groups_max * KU;
    if scratch.a_block.len() < a_len {
        scratch.a_block.resize(a_len, 0);
    }
    let tail_len = if n.is_multiple_of(NR) {
        0
    } else {
        block_groups_max * KU * NR
    };
    if scratch.tail_panel.len() < tail_len {
        scratch.tail_panel.resize(tail_len, 0);
    }
    let Scratch {
        a_block,
        tail_panel,
    } = scratch;
    let mut edge_tile = [0i32; MR * NR];
    for group_start in (0..groups).step_by(kc_groups) {
        let block_groups = kc_groups.min(groups - group_start);
        let accumulate = group_start > 0;
        // The last, narrower panel of this k block is widened to NR (zero columns) once per k block, so one
        // kernel serves every panel and the stored weights carry no padding.
        let tail_start = n / NR * NR;
        let tail_width = n - tail_start;
        if tail_width > 0 {
            let panel = &b.data[tail_start * groups * KU..];
            let panel_block = &panel
                [group_start * tail_width * KU..(group_start + block_groups) * tail_width * KU];
            for group in 0..block_groups {
                let destination = &mut tail_panel[group * NR * KU..(group + 1) * NR * KU];
                destination[..tail_width * KU].copy_from_slice(
                    &panel_block[group * tail_width * KU..(group + 1) * tail_width * KU],
                );
                destination[tail_width * KU..].fill(0);
            }
        }
        for row_start in (0..m).step_by(mc) {
            let block_rows = mc.min(m - row_start);
            pack_a_block(a, row_start, block_rows, group_start, block_groups, a_block);
            for panel_start in (0..n).step_by(NR) {
                let width = NR.min(n - panel_start);
                let b_micro: &[i8] = if width == NR {
                    let panel =
                        &b.data[panel_start * groups * KU..(panel_start + NR) * groups * KU];
                    &panel[group_start * NR * KU..(group_start + block_groups) * NR * KU]
                } else {
                    &tail_panel[..block_groups * NR * KU]
                };
                for tile_row in (0..block_rows).step_by(MR) {
                    let a_micro =
                        &a_block[tile_row * block_groups * KU..][..MR * block_groups * KU];
                    let rows = MR.min(block_rows - tile_row);
                    let origin = (row_start + tile_row) * n + panel_start;
                    if rows == MR && width == NR {
                        // A full tile: the kernel writes (or adds into) C in place.
                        let out = kernels::TileOut {
                            values: &mut c[origin..],
                            stride: n,
                            accumulate,
                        };
                        kernels::run(kernel, a_micro, b_micro, block_groups, out);
                        continue;
                    }
                    let out = kernels::TileOut {
                        values: &mut edge_tile,
                        stride: NR,
                        accumulate: false,
                    };
                    kernels::run(kernel, a_micro, b_micro, block_groups, out);
                    for r in 0..rows {
                        let target = &mut c[origin + r * n..origin + r * n + width];
                        let computed = &edge_tile[r * NR..r * NR + width];
                        if accumulate {
                            target.iter_mut().zip(computed).for_each(|(t, v)| *t += v);
                        } else {
                            target.copy_from_slice(computed);
                        }
                    }
                }
            }
        }
    }
}

/// Packs rows `[row_start, row_start + rows)` and k groups `[group_start, group_start + groups)` of A into
/// micro-panels `[rows / MR][groups][MR][4]` (each micro-panel `MR · groups · 4` bytes, back to back),
/// zero-filling rows beyond `rows` and k beyond A's width.
fn pack_a_block(
    a: &ArrayView2<'_, u8>,
    row_start: usize,
    rows: usize,
    group_start: usize,
    groups: usize,
    block: &mut [u8],
) {
    let k = a.ncols();
    let k_start = group_start * KU;
    let k_end = ((group_start + groups) * KU).min(k);
    let full_groups = (k_end - k_start) / KU;
    for micro in 0..rows.div_ceil(MR) {
        let micro_panel = &mut block[micro * MR * groups * KU..][..MR * groups * KU];
        // The common case — MR whole rows, each contiguous, whole k groups — group by group: 4 bytes from each
        // row into one contiguous 48-byte destination (sequential writes, bounds checked once per group).
        let mut row_slices: [&[u8]; MR] = [&[]; MR];
        let fast = micro * MR + MR <= rows
            && full_groups == groups
            && row_slices.iter_mut().enumerate().all(|(r, slot)| {
                match a.row(row_start + micro * MR + r).to_slice() {
                    Some(slice) => {
                        *slot = &slice[k_start..k_end];
                        true
                    }
                    None => false,
                }
            });
        if fast {
            for (group, destination) in micro_panel.chunks_exact_mut(MR * KU).enumerate() {
                let destination: &mut [u8; MR * KU] =
                    destination.try_into().expect("MR · KU bytes");
                for (r, row) in row_slices.iter().enumerate() {
                    let source: &[u8; KU] = row[group * KU..][..KU].try_into().expect("KU bytes");
                    destination[r * KU..][..KU].copy_from_slice(source);
                }
            }
            continue;
        }
        for r in 0..MR {
            let row_idx = micro * MR + r;
            if row_idx >= rows {
                for group in 0..groups {
                    micro_panel[(group * MR + r) * KU..][..KU].fill(0);
                }
                continue;
            }
            let row = a.row(row_start + row_idx);
            match row.as_slice() {
                Some(slice) => {
                    let slice = &slice[k_start..k_end];
                    // Whole groups as fixed 4-byte moves (a variable-length copy would call memmove).
                    for (group, chunk) in slice.chunks_exact(KU).enumerate() {
                        let destination: &mut [u8; KU] = (&mut micro_panel
                            [(group * MR + r) * KU..][..KU])
                            .try_into()
                            .expect("KU bytes");
                        *destination = chunk.try_into().expect("KU bytes");
                    }
                    for group in full_groups..groups {
                        let destination = &mut micro_panel[(group * MR + r) * KU..][..KU];
                        for (lane, value) in destination.iter_mut().enumerate() {
                            *value = slice.get(group * KU + lane).copied().unwrap_or(0);
                        }
                    }
                }
                None => {
                    for group in 0..groups {
                        for lane in 0..KU {
                            let col = k_start + group * KU + lane;
                            micro_panel[(group * MR + r) * KU + lane] =
                                if col < k { row[col] } else { 0 };
                        }
                    }
                }
            }
        }
    }
}

/// The i64 reference: `C[i, j] = Σ_k A[i, k] · B[k, j]`, no packing, no overflow possible for any k in range.
pub fn gemm_reference_i64(a: ArrayView2<'_, u8>, b: ArrayView2<'_, i8>) -> ndarray::Array2<i64> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut c = ndarray::Array2::<i64>::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            c[[i, j]] = (0..a.ncols())
                .map(|p| i64::from(a[[i, p]]) * i64::from(b[[p, j]]))
                .sum();
        }
    }
    c
}
