//! The modules whose claims `validate` runs. Each is a function from the run's context to its
//! judged claims; an `Err` or a panic makes the whole module ERROR and the run goes on.

mod accel_claims;
mod kvcache_claims;
mod olympics_claims;
mod perf_core_claims;
mod profiling_claims;
mod quant_claims;
mod zoo_claims;

use anyhow::Result;
use perf_core::claim::ClaimResult;
use std::path::PathBuf;

/// What every module gets.
#[derive(Debug, Clone)]
pub struct ModuleContext {
    /// Reduced configuration.
    pub quick: bool,
    /// Seed for random inputs.
    pub seed: u64,
    /// Threads for parallel kernels.
    #[allow(dead_code)] // read by the kernel modules as they register claims
    pub threads: Option<usize>,
    /// Installed data directory.
    #[allow(dead_code)]
    pub data_dir: Option<PathBuf>,
}

/// A module and its claim runner.
pub struct Module {
    /// Name used by `--module`.
    pub name: &'static str,
    /// Runs the claims.
    pub run: fn(&ModuleContext) -> Result<Vec<ClaimResult>>,
}

/// Every module, in run order.
pub fn registry() -> Vec<Module> {
    vec![
        Module {
            name: "zoo",
            run: zoo_claims::run,
        },
        Module {
            name: "perf-core",
            run: perf_core_claims::run,
        },
        Module {
            name: "accel",
            run: accel_claims::run,
        },
        Module {
            name: "profiling",
            run: profiling_claims::run,
        },
        Module {
            name: "kvcache",
            run: kvcache_claims::run,
        },
        Module {
            name: "quant",
            run: quant_claims::run,
        },
        Module {
            name: "olympics",
            run: olympics_claims::run,
        },
    ]
}
