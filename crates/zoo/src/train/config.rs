//! What a training run is told and what it records: [`TrainConfig`] (optimizer and schedule, shared by every
//! model), [`TrainingLog`] (losses, wall and CPU time, the machine's load, read through
//! `perf_core::environment`), and the process settings a run makes (candle's thread count, verbosity).

use perf_core::environment::{self, ProcessCpuTime};
use perf_core::timer::Stopwatch;
use serde::{Deserialize, Serialize};

/// Optimizer and schedule settings shared by every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seeds weight initialization and mini-batch order.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Stop after this many optimizer steps even if epochs remain (for quick tests); `None` runs all epochs.
    pub max_steps: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            epochs: 10,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            max_steps: None,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean training loss of each epoch (a partial last epoch included).
    pub epoch_losses: Vec<f32>,
    /// Loss of every step, in order.
    pub step_losses: Vec<f32>,
    /// Wall-clock seconds spent training.
    pub seconds: f64,
    /// CPU seconds (user + system, all threads of the process) spent training, from `/proc/self/stat`;
    /// `None` where that file is unavailable. On a shared machine this is the steadier figure.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The one-minute load average when training ended (`/proc/loadavg`): how busy the machine was.
    #[serde(default)]
    pub load_average: Option<f64>,
}

impl TrainingLog {
    /// An empty log and the process CPU time now (`None` where `/proc/self/stat` cannot be read).
    pub(crate) fn started() -> (Self, Option<ProcessCpuTime>) {
        (
            TrainingLog {
                steps: 0,
                epoch_losses: Vec::new(),
                step_losses: Vec::new(),
                seconds: 0.0,
                cpu_seconds: None,
                load_average: None,
            },
            ProcessCpuTime::now().ok(),
        )
    }

    /// Records wall and CPU time since `started` / `cpu_at_start` and the load average, both read through
    /// `perf_core::environment`, the workspace's one reader of the OS environment.
    pub(crate) fn finish(&mut self, started: Stopwatch, cpu_at_start: Option<ProcessCpuTime>) {
        self.seconds = started.elapsed().as_secs_f64();
        self.cpu_seconds = ProcessCpuTime::now()
            .ok()
            .zip(cpu_at_start)
            .map(|(now, then)| now.seconds_since(&then));
        self.load_average = environment::one_minute_load_average().ok();
    }
}

/// Environment variable with which candle sizes its element-wise thread pool.
const CANDLE_THREADS_ENV: &str = "CANDLE_NUM_THREADS";

/// Runs candle's element-wise operations on one thread unless the user chose otherwise through
/// `CANDLE_NUM_THREADS`; called before the first candle operation of a training run.
///
/// candle's element-wise pool synchronizes every operation with spinning barriers. The reference models' tensors
/// are small, so the second thread gains little on a quiet machine, and on the shared 2-core machine, busy with
/// other work, the spinning took over half of the training process's CPU samples (perf, DS-CNN) while one thread
/// trained the CNN as fast per step. Matrix products (gemm, on rayon's sleeping pool) stay multi-threaded.
/// candle reads the variable once, when its pool is first used, and `std::env` serializes this write with every
/// other read through the standard library.
pub(crate) fn prefer_single_threaded_candle() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(CANDLE_THREADS_ENV).is_none() {
            std::env::set_var(CANDLE_THREADS_ENV, "1");
        }
    });
}

/// Whether `TORCHPERF_ZOO_VERBOSE=1`: training then prints its progress to standard error.
pub(crate) fn verbose() -> bool {
    std::env::var("TORCHPERF_ZOO_VERBOSE").is_ok_and(|value| value == "1")
}
