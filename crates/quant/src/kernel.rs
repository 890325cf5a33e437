//! Which kernel runs: accel's instruction-set ladder and one environment variable for the whole crate.
//!
//! Each family of quant kernels (the u8 × i8 integer GEMM and GEMV in [`GemmKernel`], the f16 matrix–vector
//! product in [`HalfGemvKernel`]) has one kernel per level of accel's [`Isa`] ladder: AVX-512, AVX2, scalar.
//! A kernel runs here when accel detects its level and the CPU has the few features its family needs on top
//! (VNNI and BW for the integer AVX-512 kernel; F16C, and BW/VL at AVX-512, for the half kernels). The family
//! describes itself through [`IsaKernel`]; detection, the environment and the availability check are written
//! once, here.
//!
//! `QUANT_KERNEL` ([`KERNEL_ENV`]) forces one level for every family: `avx512`, `avx2` or `scalar`, or a
//! kernel's own name (`avx512-vnni`, `avx512-f16c`, `avx2-f16c`), which names its level. Unset, empty or `auto`
//! leaves the choice to detection. It is read once per process.

use std::sync::OnceLock;

use accel::Isa;

use crate::error::QuantError;
use crate::gemm::GemmKernel;
use crate::half_gemv::HalfGemvKernel;

/// The environment variable that forces one instruction-set level for every quant kernel.
pub const KERNEL_ENV: &str = "QUANT_KERNEL";

/// A family of kernels with one member per level of accel's [`Isa`] ladder (the shape of matrixmultiply's
/// kernel selection): the family names its kernels and the features they need beyond their level; detection,
/// `QUANT_KERNEL` and the availability check come from this module.
pub trait IsaKernel: Copy + Eq + 'static {
    /// Every kernel of the family, best first; the last is the portable one.
    const ALL: [Self; 3];

    /// Stable name (what `QUANT_KERNEL` and reports use).
    fn name(self) -> &'static str;

    /// The level of accel's ladder this kernel is compiled for.
    fn isa(self) -> Isa;

    /// Whether the CPU has the features this kernel needs beyond [`IsaKernel::isa`] (always true for the
    /// portable kernel).
    fn has_extra_features(self) -> bool;
}

/// Whether this CPU runs `kernel`: accel detects its level and the extra features are present.
pub(crate) fn is_available<K: IsaKernel>(kernel: K) -> bool {
    kernel.isa().is_available() && kernel.has_extra_features()
}

/// The best kernel of the family this CPU runs (feature detection is cached by the standard library).
pub(crate) fn detected<K: IsaKernel>() -> K {
    K::ALL
        .into_iter()
        .find(|&kernel| is_available(kernel))
        .unwrap_or(K::ALL[K::ALL.len() - 1])
}

/// The family's kernel for one level of the ladder.
fn for_isa<K: IsaKernel>(isa: Isa) -> K {
    K::ALL
        .into_iter()
        .find(|kernel| kernel.isa() == isa)
        .unwrap_or(K::ALL[K::ALL.len() - 1])
}

/// Parses a `QUANT_KERNEL` value: `Ok(None)` for empty or `auto`, else the level it names.
fn parse_level(value: &str) -> Result<Option<Isa>, QuantError> {
    let name = value.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    Isa::ALL
        .into_iter()
        .find(|&isa| {
            isa.name() == name
                || for_isa::<GemmKernel>(isa).name() == name
                || for_isa::<HalfGemvKernel>(isa).name() == name
        })
        .map(Some)
        .ok_or_else(|| QuantError::UnknownKernelName {
            name: value.to_string(),
        })
}

/// The level `QUANT_KERNEL` forces, read once per process: `Ok(None)` when unset, empty or `auto`.
///
/// # Errors
/// [`QuantError::UnknownKernelName`] when the variable names no level and no kernel.
pub fn forced_level() -> Result<Option<Isa>, QuantError> {
    // Read once: a lookup takes a lock and a search, which a sub-microsecond product would feel at every call.
    static FORCED: OnceLock<Result<Option<Isa>, QuantError>> = OnceLock::new();
    FORCED
        .get_or_init(|| match std::env::var(KERNEL_ENV) {
            Ok(value) => parse_level(&value),
            Err(_) => Ok(None),
        })
        .clone()
}

/// `forced`, else the level `QUANT_KERNEL` forces, else the detected best; checked to run here.
///
/// # Errors
/// As [`forced_level`]; [`QuantError::KernelUnavailable`] when the chosen kernel cannot run on this CPU.
pub(crate) fn resolve<K: IsaKernel>(forced: Option<K>) -> Result<K, QuantError> {
    let kernel = match forced {
        Some(kernel) => kernel,
        None => match forced_level()? {
            Some(isa) => for_isa(isa),
            None => detected(),
        },
    };
    if !is_available(kernel) {
        return Err(QuantError::KernelUnavailable {
            kernel: kernel.name(),
        });
    }
    Ok(kernel)
}

/// Whether the CPU has every feature in `features` (names as `is_x86_feature_detected!` takes them); false
/// off x86-64, where only the portable kernels are compiled.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_has {
    ($($feature:tt),+) => { true $(&& std::arch::is_x86_feature_detected!($feature))+ };
}
#[cfg(not(target_arch = "x86_64"))]
macro_rules! x86_has {
    ($($feature:tt),+) => {
        false
    };
}
pub(crate) use x86_has;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_and_kernel_name_parses_to_its_level() {
        for isa in Isa::ALL {
            assert_eq!(parse_level(isa.name()), Ok(Some(isa)));
            assert_eq!(
                parse_level(for_isa::<GemmKernel>(isa).name()),
                Ok(Some(isa))
            );
            assert_eq!(
                parse_level(for_isa::<HalfGemvKernel>(isa).name()),
                Ok(Some(isa))
            );
        }
        assert_eq!(parse_level(" avx2 "), Ok(Some(Isa::Avx2Fma)));
        assert_eq!(parse_level(""), Ok(None));
        assert_eq!(parse_level("auto"), Ok(None));
        assert!(matches!(
            parse_level("sse9"),
            Err(QuantError::UnknownKernelName { name }) if name == "sse9"
        ));
    }

    #[test]
    fn each_family_has_one_kernel_per_level_and_detection_picks_a_runnable_one() {
        fn check<K: IsaKernel + std::fmt::Debug>() {
            let levels: Vec<Isa> = K::ALL.iter().map(|kernel| kernel.isa()).collect();
            assert_eq!(levels, Isa::ALL.to_vec());
            assert!(is_available(K::ALL[2]), "the portable kernel always runs");
            let best = detected::<K>();
            assert!(is_available(best));
            // Nothing better than the detected kernel runs here.
            for kernel in K::ALL.into_iter().take_while(|&kernel| kernel != best) {
                assert!(
                    !is_available(kernel),
                    "{kernel:?} runs but was not detected"
                );
            }
            assert_eq!(resolve(Some(K::ALL[2])), Ok(K::ALL[2]));
        }
        check::<GemmKernel>();
        check::<HalfGemvKernel>();
    }
}
