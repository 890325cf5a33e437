//! quant: quantization that is really 8-bit. Symmetric and affine schemes with checked parameters, per tensor
//! or per channel, int8/uint8 codes in real 1-byte buffers and f16/bf16 for comparison; calibration observers
//! (min–max, moving average, percentile, MSE, entropy); error statistics; a u8 × i8 → i32 GEMM with AVX-512
//! VNNI, AVX2 and scalar kernels chosen at run time; a quantized Linear layer, Conv2d (im2col on the integer GEMM) and MLP whose sizes are the bytes
//! of the buffers they hold.
//!
//! quant never reads a clock and never writes a file; timing claims live in the benchmarks and in xtask.
// `deny` rather than `forbid`: the kernel module opts in with `allow` (and `// SAFETY:` on every block).
#![deny(unsafe_code)]

mod conv;
mod error;
pub mod gemm;
mod half_gemv;
mod kernel;
mod linear;
mod observer;
mod scheme;
mod stats;
mod tensor;

pub use conv::{Conv2dGeometry, QuantizedConv2d};
pub use error::QuantError;
pub use gemm::{
    gemm_reference_i64, gemm_u8i8_i32, gemv_u8i8_i32, GemmBlocking, GemmConfig, GemmKernel, PackedB,
};
pub use half_gemv::{gemv_f16_into, widen_f16_into, HalfGemvKernel};
pub use kernel::{forced_level, IsaKernel, KERNEL_ENV};
pub use linear::{ActivationQuant, QuantizedLinear, QuantizedMlp, QuantizedMlpConfig};
pub use observer::{Observer, ObserverKind};
pub use scheme::{Granularity, QuantParams, QuantType, Scheme};
pub use stats::ErrorStats;
pub use tensor::{Codes, HalfPrecision, HalfStorage, HalfTensor, QuantConfig, QuantizedTensor};

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
