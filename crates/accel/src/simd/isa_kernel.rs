//! The part of every instruction set's GEMM kernel that is not intrinsics, written once: the tile-size ladder
//! (`MicroKernel::run` picks an exact-size microkernel for edge tiles), the microkernel instantiated per tile
//! shape, and the GEMM entry point, each behind the instruction set's `#[target_feature]`. An ISA file
//! (`avx512.rs`, `avx2.rs`, `scalar.rs`) holds its `Vector` type (the intrinsics) and one [`isa_kernel!`] call
//! naming its register tile, its target features and the edge shapes it compiles.

/// Defines, in the calling module, `MR`, `NV`, the kernel type `$kernel` implementing
/// [`super::driver::MicroKernel`] over `$vector`, and `gemm`, the generic GEMM body compiled for the instruction
/// set.
///
/// - `rows: [..]` are the tile heights below `MR` that get their own microkernel (the rest run as `MR`);
///   `vectors: [..]` likewise the widths below `NV`.
/// - `features: "..."` compiles each tile shape out of line with those target features (so each gets its own
///   register allocation) and `gemm` with them too; without it (the scalar kernel) tiles are inlined and nothing
///   needs a CPU feature.
macro_rules! isa_kernel {
    (
        kernel: $kernel:ident,
        vector: $vector:ty,
        mr: $mr:literal,
        nv: $nv:literal,
        $(features: $features:literal,)?
        rows: [$($rows:literal),*],
        vectors: [$($vectors:literal),*] $(,)?
    ) => {
        pub(crate) const MR: usize = $mr;
        pub(crate) const NV: usize = $nv;

        pub(crate) struct $kernel;

        impl $crate::simd::driver::MicroKernel for $kernel {
            const MR: usize = MR;
            const NR: usize = NV * <$vector as $crate::simd::vector::Vector>::LANES;
            const LANES: usize = <$vector as $crate::simd::vector::Vector>::LANES;

            #[inline(always)]
            unsafe fn run(rows: usize, vectors: usize, tile: $crate::simd::vector::TileArgs) {
                // SAFETY: forwarded contract; the instruction set is guaranteed by the caller.
                unsafe {
                    match rows {
                        $($rows => run_rows::<$rows>(vectors, tile),)*
                        _ => run_rows::<MR>(vectors, tile),
                    }
                }
            }
        }

        /// Picks the tile width for a tile of `ROWS` rows.
        ///
        /// # Safety
        /// As `MicroKernel::run`.
        #[inline(always)]
        unsafe fn run_rows<const ROWS: usize>(vectors: usize, tile: $crate::simd::vector::TileArgs) {
            // SAFETY: forwarded contract.
            unsafe {
                match vectors {
                    $($vectors => tile_kernel::<ROWS, $vectors>(tile),)*
                    _ => tile_kernel::<ROWS, NV>(tile),
                }
            }
        }

        $crate::simd::isa_kernel::isa_kernel!(@tile $vector $(, $features)?);

        /// The generic GEMM body compiled for the instruction set.
        ///
        /// # Safety
        /// The instruction set must be available; the descriptors must be valid (see `MatRef`, `MatMut`).
        $(#[target_feature(enable = $features)])?
        pub(crate) unsafe fn gemm(
            a: $crate::simd::MatRef,
            b: $crate::simd::MatRef,
            c: $crate::simd::MatMut,
            accumulate: bool,
            blocking: $crate::simd::SimdBlocking,
            workspace: &mut $crate::simd::workspace::Workspace,
        ) {
            // SAFETY: forwarded contract.
            unsafe {
                $crate::simd::driver::gemm_body::<$kernel>(a, b, c, accumulate, blocking, workspace)
            }
        }
    };

    (@tile $vector:ty, $features:literal) => {
        /// The microkernel for a `ROWS × VECTORS` tile, compiled with the instruction set's features and kept
        /// out of line so each shape gets its own register allocation.
        ///
        /// # Safety
        /// The instruction set must be available; pointer contract of `microkernel`.
        #[target_feature(enable = $features)]
        #[inline(never)]
        unsafe fn tile_kernel<const ROWS: usize, const VECTORS: usize>(
            tile: $crate::simd::vector::TileArgs,
        ) {
            // SAFETY: forwarded contract.
            unsafe { $crate::simd::vector::microkernel::<$vector, ROWS, VECTORS>(tile) }
        }
    };

    (@tile $vector:ty) => {
        /// The microkernel for a `ROWS × VECTORS` tile (portable code, inlined).
        ///
        /// # Safety
        /// Pointer contract of `microkernel`.
        #[inline(always)]
        unsafe fn tile_kernel<const ROWS: usize, const VECTORS: usize>(
            tile: $crate::simd::vector::TileArgs,
        ) {
            // SAFETY: forwarded contract.
            unsafe { $crate::simd::vector::microkernel::<$vector, ROWS, VECTORS>(tile) }
        }
    };
}

pub(crate) use isa_kernel;

/// Defines `fn $name(isa: Isa, args: $args) -> $ret`, which runs the generic body `$body::<V>(args)` compiled
/// for `isa`: behind `#[target_feature(enable = "avx512f,fma")]` with `F32x16`, `"avx2,fma"` with `F32x8`, and
/// as portable code with `F32x1` for every other instruction set. The run-time half of "one generic body, thin
/// `#[target_feature]` wrappers", for the matrix–vector kernels (the GEMM's is [`isa_kernel!`]).
///
/// The defined function is safe to call only as its callers in this module do: they check that `isa` is
/// available and that `args` satisfies the invariant its type documents, before the call.
macro_rules! isa_dispatch {
    ($(#[$attr:meta])* $vis:vis fn $name:ident(isa, args: $args:ty) -> $ret:ty = $body:ident;) => {
        $(#[$attr])*
        $vis fn $name(isa: $crate::Isa, args: $args) -> $ret {
            /// # Safety
            /// AVX-512F and FMA must be available; the arguments' invariant must hold.
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            #[target_feature(enable = "avx512f,fma")]
            unsafe fn avx512(args: $args) -> $ret {
                // SAFETY: forwarded contract.
                unsafe { $body::<$crate::simd::avx512::F32x16>(args) }
            }

            /// # Safety
            /// AVX2 and FMA must be available; the arguments' invariant must hold.
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(args: $args) -> $ret {
                // SAFETY: forwarded contract.
                unsafe { $body::<$crate::simd::avx2::F32x8>(args) }
            }

            match isa {
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                // SAFETY: the callers checked that AVX-512F and FMA are available and that `args` satisfies its
                // type's invariant.
                $crate::Isa::Avx512 => unsafe { avx512(args) },
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                // SAFETY: as above, with AVX2 and FMA checked.
                $crate::Isa::Avx2Fma => unsafe { avx2(args) },
                // SAFETY: as above; the portable body needs no CPU feature.
                _ => unsafe { $body::<$crate::simd::scalar::F32x1>(args) },
            }
        }
    };
}

pub(crate) use isa_dispatch;
