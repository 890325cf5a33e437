//! accel: f32 matrix multiply from naive loops to a packed, multi-threaded SIMD kernel.
//!
//! Every kernel computes `C = A · B` or `C += A · B` for any `m × k · k × n` (including zero sizes) on ndarray views
//! with any strides, and reports which kernel ran:
//!
//! | kernel | what it is |
//! |---|---|
//! | `naive-ijk` | the textbook triple loop |
//! | `naive-ikj` | the loop order that walks rows (the realistic naive loop) |
//! | `blocked` | cache-tiled i-k-j loops, scalar code, tile sizes from the CPU's cache sizes |
//! | `simd-avx512`, `simd-avx2`, `simd-scalar` | packed panels and a register-blocked microkernel |
//! | the SIMD kernel with `threads > 1` | the same, with C cut into strips over scoped threads |
//!
//! [`matmul`] / [`matmul_into`] pick the best kernel for the CPU and size; a [`Backend`] in a [`MatmulConfig`]
//! forces one; the `ACCEL_KERNEL` environment variable forces one for [`Backend::Auto`] callers (tests use it).
//!
//! ```
//! use ndarray::array;
//! let a = array![[1.0f32, 2.0], [3.0, 4.0]];
//! let b = array![[5.0f32, 6.0], [7.0, 8.0]];
//! let c = accel::matmul(a.view(), b.view())?;
//! assert_eq!(c, array![[19.0, 22.0], [43.0, 50.0]]);
//! # Ok::<(), accel::AccelError>(())
//! ```
//!
//! `unsafe` is confined to the `simd`, `peak` and `pool` modules (and `baselines`, the FFI-style calls
//! into the reference crates behind the `baselines` feature); everything else is checked safe code.
#![deny(unsafe_code)]

#[cfg(feature = "baselines")]
#[allow(unsafe_code)]
pub mod baselines;
mod block_sparse;
mod blocked;
mod cache;
mod error;
mod naive;
mod parallel;
#[allow(unsafe_code)]
mod peak;
#[allow(unsafe_code)]
mod pool;
#[allow(unsafe_code)]
mod simd;
mod sparse;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use error::dims;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

pub use block_sparse::{
    prune_blocks, BlockSparseMatrix, SparseGemvConfig, SparseGemvRun, SPARSE_BLOCK_WIDTH,
};
pub use blocked::TileSizes;
pub use cache::CacheInfo;
pub use error::AccelError;
pub use peak::{
    fma_chain_flops_per_iteration, fma_chains, peak_probe, PeakProbeConfig, PeakReport,
};
pub use simd::gemv::{
    gemv_into, gemv_into_with, matrix_vector_rows, vector_matrix_rows, GemvConfig, GemvLayout,
    GemvRun,
};
pub use simd::{Isa, SimdBlocking};
pub use sparse::CsrMatrix;

/// Name of the environment variable that forces a kernel for [`Backend::Auto`] callers.
pub const KERNEL_ENV_VAR: &str = "ACCEL_KERNEL";

/// Which kernel to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// Choose by CPU features and size (and honour `ACCEL_KERNEL` when it is set).
    #[default]
    Auto,
    /// Textbook i-j-k loop.
    NaiveIjk,
    /// i-k-j loop.
    NaiveIkj,
    /// Cache-tiled scalar loops.
    Blocked,
    /// Packed SIMD kernel for one instruction set, on the calling thread only.
    Simd(Isa),
    /// Packed SIMD kernel for one instruction set over [`MatmulConfig::threads`] threads (falls back to one thread
    /// below [`MatmulConfig::parallel_min_flops`]).
    Parallel(Isa),
}

/// The names [`Backend::from_str`] and `ACCEL_KERNEL` accept.
pub const BACKEND_NAMES: &str =
    "auto, naive-ijk, naive-ikj, blocked, simd-avx512, simd-avx2, simd-scalar, \
                                 parallel-avx512, parallel-avx2, parallel-scalar";

impl Backend {
    /// Every concrete backend (not `Auto`), whether or not this CPU can run it.
    pub fn all() -> Vec<Backend> {
        let mut all = vec![Backend::NaiveIjk, Backend::NaiveIkj, Backend::Blocked];
        all.extend(Isa::ALL.into_iter().map(Backend::Simd));
        all.extend(Isa::ALL.into_iter().map(Backend::Parallel));
        all
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Simd(isa) | Backend::Parallel(isa) => isa.is_available(),
            _ => true,
        }
    }

    /// The backend forced by `ACCEL_KERNEL`, read once per process: `Ok(None)` when unset, empty or `auto`.
    ///
    /// # Errors
    /// [`AccelError::UnknownKernelName`] when the variable names no backend.
    pub fn from_env() -> Result<Option<Backend>, AccelError> {
        static FORCED: OnceLock<Result<Option<Backend>, AccelError>> = OnceLock::new();
        FORCED
            .get_or_init(|| match std::env::var(KERNEL_ENV_VAR) {
                Ok(value) if value.trim().is_empty() => Ok(None),
                Ok(value) => value
                    .trim()
                    .parse::<Backend>()
                    .map(|backend| Some(backend).filter(|b| *b != Backend::Auto)),
                Err(_) => Ok(None),
            })
            .clone()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Auto => f.write_str("auto"),
            Backend::NaiveIjk => f.write_str("naive-ijk"),
            Backend::NaiveIkj => f.write_str("naive-ikj"),
            Backend::Blocked => f.write_str("blocked"),
            Backend::Simd(isa) => write!(f, "simd-{isa}"),
            Backend::Parallel(isa) => write!(f, "parallel-{isa}"),
        }
    }
}

impl FromStr for Backend {
    type Err = AccelError;

    /// Parses the names listed in [`BACKEND_NAMES`] (what `Display` prints).
    fn from_str(text: &str) -> Result<Backend, AccelError> {
        let parsed = match text {
            "auto" => Some(Backend::Auto),
            "naive-ijk" => Some(Backend::NaiveIjk),
            "naive-ikj" => Some(Backend::NaiveIkj),
            "blocked" => Some(Backend::Blocked),
            _ => None,
        };
        let parsed = parsed.or_else(|| {
            Backend::all()
                .into_iter()
                .chain(std::iter::once(Backend::Auto))
                .find(|backend| backend.to_string() == text)
        });
        parsed.ok_or_else(|| AccelError::UnknownKernelName {
            value: text.to_owned(),
            expected: BACKEND_NAMES,
        })
    }
}

/// The kernel that computed a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Textbook i-j-k loop.
    NaiveIjk,
    /// i-k-j loop.
    NaiveIkj,
    /// Cache-tiled scalar loops.
    Blocked,
    /// Packed SIMD kernel for this instruction set.
    Simd(Isa),
}

impl Kernel {
    /// Stable name: `naive-ijk`, `naive-ikj`, `blocked`, `simd-avx512`, `simd-avx2`, `simd-scalar`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::NaiveIjk => "naive-ijk",
            Kernel::NaiveIkj => "naive-ikj",
            Kernel::Blocked => "blocked",
            Kernel::Simd(Isa::Avx512) => "simd-avx512",
            Kernel::Simd(Isa::Avx2Fma) => "simd-avx2",
            Kernel::Simd(_) => "simd-scalar",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What ran: the kernel and the number of threads it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelRun {
    /// The kernel.
    pub kernel: Kernel,
    /// Threads that worked on the product (1 unless the parallel SIMD path split it).
    pub threads: usize,
}

impl KernelRun {
    /// The kernel's stable name (see [`Kernel::name`]).
    pub fn name(&self) -> &'static str {
        self.kernel.name()
    }
}

impl fmt::Display for KernelRun {
    /// `simd-avx512`, or `simd-avx512 x2` when two threads ran.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.threads {
            1 => write!(f, "{}", self.kernel),
            threads => write!(f, "{} x{threads}", self.kernel),
        }
    }
}

/// Knobs of [`matmul_with`] / [`matmul_into_with`]. `Default` is what [`matmul`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulConfig {
    /// Which kernel to run; [`Backend::Auto`] chooses (and honours `ACCEL_KERNEL`).
    pub backend: Backend,
    /// Threads for the parallel path; `None` means `std::thread::available_parallelism()`.
    pub threads: Option<usize>,
    /// Products with fewer floating-point operations (`2·m·k·n`) than this run on one thread, where waking a
    /// second costs more than it brings.
    pub parallel_min_flops: u64,
    /// Tile sizes of the blocked kernel; `None` means [`TileSizes::detect`].
    pub tiles: Option<TileSizes>,
    /// Cache blocking of the SIMD kernel; `None` means [`SimdBlocking::detect`].
    pub simd_blocking: Option<SimdBlocking>,
}

/// Default of [`MatmulConfig::parallel_min_flops`]: a 256 × 256 × 256 product. On the reference VM, with the
/// persistent worker pool, two threads against one measured 0.93× at 128³, 0.94× at 192³ and 0.85–1.21× at 256³
/// (medians of 21 interleaved pairs in two runs); a worker's vCPU can take tens of microseconds to wake, which
/// small products cannot amortize.
pub const DEFAULT_PARALLEL_MIN_FLOPS: u64 = 2 * 256 * 256 * 256;

impl Default for MatmulConfig {
    fn default() -> Self {
        MatmulConfig {
            backend: Backend::Auto,
            threads: None,
            parallel_min_flops: DEFAULT_PARALLEL_MIN_FLOPS,
            tiles: None,
            simd_blocking: None,
        }
    }
}

impl MatmulConfig {
    /// The default configuration with `backend` forced.
    pub fn with_backend(backend: Backend) -> MatmulConfig {
        MatmulConfig {
            backend,
            ..MatmulConfig::default()
        }
    }
}

/// Threads available to this process, read once.
pub fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |count| count.get()))
}

/// `A · B` with the best kernel for this CPU and size.
///
/// # Errors
/// [`AccelError::ShapeMismatch`] when `a.ncols() != b.nrows()`; [`AccelError::UnknownKernelName`] or
/// [`AccelError::KernelUnavailable`] when `ACCEL_KERNEL` forces a kernel that does not exist or cannot run here.
pub fn matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<Array2<f32>, AccelError> {
    matmul_with(a, b, &MatmulConfig::default()).map(|(product, _)| product)
}

/// `C = A · B`, or `C += A · B` when `accumulate`, into a caller-owned buffer; returns the kernel that ran.
///
/// Without `accumulate` the previous contents of `c` are never read (a NaN-filled buffer is fine).
///
/// # Errors
/// As [`matmul`], plus [`AccelError::OutputShapeMismatch`] when `c` is not `a.nrows() × b.ncols()`.
pub fn matmul_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) -> Result<KernelRun, AccelError> {
    matmul_into_with(a, b, c, accumulate, &MatmulConfig::default())
}

/// `A · B` with an explicit configuration; returns the product and the kernel that ran.
///
/// # Errors
/// As [`matmul_into_with`].
pub fn matmul_with(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    config: &MatmulConfig,
) -> Result<(Array2<f32>, KernelRun), AccelError> {
    AccelError::check_product(dims(&a), dims(&b), [a.nrows(), b.ncols()])?;
    let mut product = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    let run = matmul_into_with(a, b, product.view_mut(), false, config)?;
    Ok((product, run))
}

/// `C = A · B` (or `C += A · B`) with an explicit configuration; returns the kernel that ran.
///
/// # Errors
/// [`AccelError::ShapeMismatch`], [`AccelError::OutputShapeMismatch`]; [`AccelError::KernelUnavailable`] when the
/// forced backend (by `config.backend` or `ACCEL_KERNEL`) cannot run on this CPU; [`AccelError::UnknownKernelName`]
/// for a bad `ACCEL_KERNEL`; [`AccelError::InvalidConfig`] for zero tile sizes or zero threads.
pub fn matmul_into_with(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    config: &MatmulConfig,
) -> Result<KernelRun, AccelError> {
    AccelError::check_product(dims(&a), dims(&b), dims(&c))?;
    let backend = match config.backend {
        Backend::Auto => Backend::from_env()?.unwrap_or(Backend::Auto),
        forced => forced,
    };
    if !backend.is_available() {
        return Err(AccelError::KernelUnavailable { backend });
    }
    let threads = match config.threads {
        Some(0) => {
            return Err(AccelError::InvalidConfig {
                what: "threads must be at least 1".to_owned(),
            })
        }
        Some(threads) => threads,
        None => default_threads(),
    };
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    match backend {
        Backend::NaiveIjk => {
            naive::matmul_ijk(a, b, c, accumulate);
            Ok(KernelRun {
                kernel: Kernel::NaiveIjk,
                threads: 1,
            })
        }
        Backend::NaiveIkj => {
            naive::matmul_ikj(a, b, c, accumulate);
            Ok(KernelRun {
                kernel: Kernel::NaiveIkj,
                threads: 1,
            })
        }
        Backend::Blocked => {
            let tiles = config.tiles.unwrap_or_else(TileSizes::detect);
            tiles.validate()?;
            blocked::matmul_blocked(a, b, c, accumulate, tiles);
            Ok(KernelRun {
                kernel: Kernel::Blocked,
                threads: 1,
            })
        }
        Backend::Simd(isa) => run_simd(isa, 1, a, b, c, accumulate, config),
        Backend::Parallel(isa) => {
            let threads =
                parallel::effective_threads(m, k, n, isa, threads, config.parallel_min_flops);
            run_simd(isa, threads, a, b, c, accumulate, config)
        }
        // `Auto` on a tiny product: the fixed cost of the packed path (workspace, packing, edge tiles; about a
        // quarter of a microsecond) exceeds the whole product, and the plain loop wins (measured up to ~10³).
        _ if m * k * n <= TINY_PRODUCT => {
            naive::matmul_ikj(a, b, c, accumulate);
            Ok(KernelRun {
                kernel: Kernel::NaiveIkj,
                threads: 1,
            })
        }
        // `Auto`: the best instruction set, and threads where the product is big enough to pay for them.
        _ => {
            let isa = Isa::best();
            let threads =
                parallel::effective_threads(m, k, n, isa, threads, config.parallel_min_flops);
            run_simd(isa, threads, a, b, c, accumulate, config)
        }
    }
}

/// `Auto` runs products with at most this many multiply-adds (`m·k·n`) with the i-k-j loop.
const TINY_PRODUCT: usize = 512;

fn run_simd(
    isa: Isa,
    threads: usize,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    config: &MatmulConfig,
) -> Result<KernelRun, AccelError> {
    let blocking = config
        .simd_blocking
        .unwrap_or_else(|| SimdBlocking::detect(isa));
    blocking.validate()?;
    let threads = if threads <= 1 {
        simd::workspace::with_workspaces(1, |workspaces| {
            simd::gemm(isa, a, b, c, accumulate, blocking, &mut workspaces[0])
        })?;
        1
    } else {
        parallel::gemm_parallel(isa, a, b, c, accumulate, blocking, threads)?
    };
    Ok(KernelRun {
        kernel: Kernel::Simd(isa),
        threads,
    })
}

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
