//! The modules whose claims `validate` runs. Each is a function from the run's context to its
//! judged claims; an `Err` or a panic makes the whole module ERROR and the run goes on.

mod accel_claims;
mod batch1_claims;
mod capstone;
mod kvcache;
mod olympics;
mod peers;
mod perf_core_claims;
mod profiling_claims;
mod pruning_claims;
mod quant;
mod sparse_claims;
mod splitmix;
mod zoo_claims;

/// What every module gets: the suite library's context (quick, seed, threads, data directory,
/// claim filters).
pub use suite::Context as ModuleContext;

/// Where zoo finds its data sets for this run: `--data-dir`'s `fashion-mnist/` and `fsdd/recordings/`
/// when they exist, the environment variables and defaults otherwise (zoo's own lookup).
fn data_options(context: &ModuleContext) -> zoo::DataOptions {
    let mut options = zoo::DataOptions::default();
    if let Some(dir) = &context.data_dir {
        let fashion = dir.join("fashion-mnist");
        if fashion.is_dir() {
            options.fashion_mnist_dir = Some(fashion);
        }
        let fsdd = dir.join("fsdd").join("recordings");
        if fsdd.is_dir() {
            options.fsdd_dir = Some(fsdd);
        }
    }
    options
}

/// The workspace's own suite: every module, in run order, archived under `out`.
pub fn workspace_suite(out: &std::path::Path) -> suite::Suite {
    suite::Suite::new("torchperf")
        .out(out)
        .module("zoo", zoo_claims::run)
        .module("perf-core", perf_core_claims::run)
        .module("accel", accel_claims::run)
        .module("sparse", sparse_claims::run)
        .module("profiling", profiling_claims::run)
        .module("kvcache", kvcache::run)
        .module("quant", quant::run)
        .module("olympics", olympics::run)
        .module("batch1", batch1_claims::run)
        .module("peers", peers::run)
        .module("capstone", capstone::run)
}
