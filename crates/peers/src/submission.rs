//! An Olympics submission served by a peer process: ONNX Runtime or PyTorch, f32 or dynamic int8, at a
//! pinned thread count. It is a [`SelfTimedSubmission`]: the harness times its own inference calls and the
//! referee runs its protocol over those times; the round trip through the pipe is recorded beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use ndarray::{Array2, ArrayView2};
use olympics::referee::{MemoryRecord, SelfTimedSubmission};
use olympics::{OlympicsError, Optimization, Submission};
use perf_core::timer::Stopwatch;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::environment::{apply_minimal_environment, PeerEnvironment};
use crate::error::PeersError;
use crate::process::{frame_matrix, matrix_bytes, PeerProcess};

/// The runtime a peer serves the model with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Runtime {
    /// ONNX Runtime's CPU execution provider, on the exported file.
    OnnxRuntime,
    /// PyTorch (eager, `inference_mode`), on the exported file's weights.
    Torch,
}

impl Runtime {
    fn wire_name(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "onnxruntime",
            Runtime::Torch => "torch",
        }
    }
}

/// Precision of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Precision {
    /// f32 weights and activations.
    F32,
    /// Dynamic quantization: int8 weights, activations quantized per call
    /// (`onnxruntime.quantization.quantize_dynamic`, `torch.ao.quantization.quantize_dynamic`).
    Int8,
}

impl Precision {
    fn wire_name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

/// Which peer to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    /// The runtime.
    pub runtime: Runtime,
    /// The precision.
    pub precision: Precision,
    /// Intra-op threads (and every math library's thread variable).
    pub threads: usize,
}

impl PeerSpec {
    /// The submission's name, e.g. `onnxruntime_int8_1t`.
    pub fn name(&self) -> String {
        format!(
            "{}_{}_{}t",
            self.runtime.wire_name(),
            self.precision.wire_name(),
            self.threads
        )
    }

    /// Every runtime × precision at each of `thread_counts`.
    pub fn field(thread_counts: &[usize]) -> Vec<PeerSpec> {
        let mut specs = Vec::new();
        for &threads in thread_counts {
            for runtime in [Runtime::OnnxRuntime, Runtime::Torch] {
                for precision in [Precision::F32, Precision::Int8] {
                    specs.push(PeerSpec {
                        runtime,
                        precision,
                        threads,
                    });
                }
            }
        }
        specs
    }
}

/// How a peer process is started and how long it may take to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Longest wait for the model to load (imports, quantization).
    pub load_timeout: Duration,
    /// Longest wait for any other answer.
    pub request_timeout: Duration,
    /// A fault the harness injects on its first forward request (`crash`, `hang`, `wrong-shape`, `garbage`,
    /// `nan`), for tests of the referee's handling of broken peers; `None` in real runs.
    pub fault: Option<String>,
    /// Scratch directory of the peer (its `HOME` and `TMPDIR`); `None`: the system's temporary directory.
    pub scratch: Option<PathBuf>,
    /// ONNX Runtime int8 with per-output-channel weights on the `MatMul`s only (everything else f32: quant's
    /// recipe); `false`: `quantize_dynamic`'s defaults (per-tensor weights).
    pub int8_per_channel: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            load_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(60),
            fault: None,
            scratch: None,
            int8_per_channel: false,
        }
    }
}

/// What the peer reported when it loaded the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The submission's name.
    pub name: String,
    /// Which peer.
    pub spec: PeerSpec,
    /// Bytes of the model as the runtime holds it (the ONNX file, the quantized file, or torch's saved
    /// state dict).
    pub model_bytes: usize,
    /// The execution provider (ONNX Runtime) or the torch CPU backend with its thread count.
    pub provider: String,
    /// How the int8 model was made, when it is one.
    pub quantization: Option<String>,
    /// Versions of the peer's components.
    pub versions: Value,
    /// The operating system's process id of the peer.
    pub pid: u32,
}

/// Round trip through the pipe of one timed batch, beside the time the peer measured inside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundTrip {
    /// Queries in the batch.
    pub iterations: u64,
    /// What the peer's clock measured around its inference calls, ns.
    pub inference_ns: f64,
    /// Request sent to answer read, on this process's monotonic clock, ns.
    pub round_trip_ns: f64,
}

/// A model served by a peer process.
#[derive(Debug)]
pub struct ExternalSubmission {
    info: PeerInfo,
    optimizations: Vec<Optimization>,
    process: Mutex<PeerProcess>,
    request_timeout: Duration,
    round_trips: Mutex<Vec<RoundTrip>>,
}

fn submission_error(name: &str, error: impl std::fmt::Display) -> OlympicsError {
    OlympicsError::Submission {
        submission: name.into(),
        reason: error.to_string(),
    }
}

impl ExternalSubmission {
    /// Starts the harness for `spec` on the ONNX file `model` and loads it.
    ///
    /// # Errors
    /// Whatever stops the process from starting or loading (the process is then killed and reaped).
    pub fn start(
        environment: &PeerEnvironment,
        model: &Path,
        spec: &PeerSpec,
        config: &PeerConfig,
    ) -> Result<Self, PeersError> {
        let name = spec.name();
        let mut command = Command::new(&environment.python);
        command.arg(&environment.harness);
        if let Some(fault) = &config.fault {
            command.arg("--fault").arg(fault);
        }
        apply_minimal_environment(
            &mut command,
            &environment.venv,
            spec.threads,
            config.scratch.as_deref(),
        );
        let mut process = PeerProcess::spawn(&name, command)?;
        let pid = process.id();
        let loaded = process.request(
            &json!({
                "op": "load",
                "model": model.display().to_string(),
                "runtime": spec.runtime.wire_name(),
                "precision": spec.precision.wire_name(),
                "threads": spec.threads,
                "int8_per_channel": config.int8_per_channel,
            }),
            &[],
            config.load_timeout,
        )?;
        let field = |key: &str| loaded.header.get(key).cloned().unwrap_or(Value::Null);
        let info = PeerInfo {
            name: name.clone(),
            spec: spec.clone(),
            model_bytes: loaded.u64_field("model_bytes").unwrap_or(0) as usize,
            provider: field("provider").as_str().unwrap_or("unknown").to_string(),
            quantization: field("quantization").as_str().map(str::to_string),
            versions: field("versions"),
            pid,
        };
        let runtime_version = match spec.runtime {
            Runtime::OnnxRuntime => format!(
                "ONNX Runtime {}",
                info.versions["onnxruntime"].as_str().unwrap_or("?")
            ),
            Runtime::Torch => format!("PyTorch {}", info.versions["torch"].as_str().unwrap_or("?")),
        };
        let mut optimizations = vec![Optimization::Other(format!(
            "{runtime_version}, {}, {} thread(s), separate process",
            info.provider, spec.threads
        ))];
        if spec.precision == Precision::Int8 {
            optimizations.insert(0, Optimization::Int8);
        }
        Ok(ExternalSubmission {
            info,
            optimizations,
            process: Mutex::new(process),
            request_timeout: config.request_timeout,
            round_trips: Mutex::new(Vec::new()),
        })
    }

    /// What the peer reported when it loaded.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// Round trips of the timed batches since the last [`SelfTimedSubmission::load_latency_queries`].
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        self.round_trips
            .lock()
            .map(|trips| trips.clone())
            .unwrap_or_default()
    }

    /// Pipe overhead per query: the median over timed batches of (round trip − inference) / queries, ns.
    pub fn median_pipe_overhead_ns(&self) -> Option<f64> {
        let mut overheads: Vec<f64> = self
            .round_trips()
            .iter()
            .filter(|trip| trip.iterations > 0)
            .map(|trip| (trip.round_trip_ns - trip.inference_ns) / trip.iterations as f64)
            .collect();
        if overheads.is_empty() {
            return None;
        }
        overheads.sort_by(f64::total_cmp);
        Some(overheads[overheads.len() / 2])
    }

    fn request(
        &self,
        header: Value,
        payload: &[u8],
    ) -> Result<crate::process::Frame, OlympicsError> {
        let mut process = self
            .process
            .lock()
            .map_err(|_| submission_error(&self.info.name, "peer process lock poisoned"))?;
        process
            .request(&header, payload, self.request_timeout)
            .map_err(|error| submission_error(&self.info.name, error))
    }

    /// Loads the queries that [`SelfTimedSubmission::run_timed_queries`] cycles through as batches of
    /// `rows_per_query` consecutive rows of `queries`; with `trim_zero_columns`, each batch's trailing
    /// all-zero columns are dropped (token ids padded with `[PAD]` = 0 then run at their own length, as an
    /// encoder that removes padding runs them).
    ///
    /// # Errors
    /// [`OlympicsError::Submission`] when `rows_per_query` is 0 or does not divide the rows, or the peer
    /// fails.
    pub fn load_query_batches(
        &self,
        queries: ArrayView2<'_, f32>,
        rows_per_query: usize,
        trim_zero_columns: bool,
    ) -> Result<(), OlympicsError> {
        if rows_per_query == 0 || !queries.nrows().is_multiple_of(rows_per_query) {
            return Err(submission_error(
                &self.info.name,
                format!(
                    "{} rows do not split into queries of {rows_per_query}",
                    queries.nrows()
                ),
            ));
        }
        self.request(
            json!({"op": "queries", "rows": queries.nrows(), "cols": queries.ncols(),
                "rows_per_query": rows_per_query, "trim_zero_columns": trim_zero_columns}),
            &matrix_bytes(queries),
        )?;
        if let Ok(mut trips) = self.round_trips.lock() {
            trips.clear();
        }
        Ok(())
    }

    /// Stops the peer process (it is also stopped when the submission is dropped).
    pub fn shutdown(&self) {
        if let Ok(mut process) = self.process.lock() {
            process.shutdown();
        }
    }
}

impl Submission for ExternalSubmission {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        self.optimizations.clone()
    }

    fn storage_bytes(&self) -> usize {
        self.info.model_bytes
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        let frame = self.request(
            json!({"op": "forward", "rows": batch.nrows(), "cols": batch.ncols()}),
            &matrix_bytes(batch),
        )?;
        frame_matrix(&self.info.name, &frame)
            .map_err(|error| submission_error(&self.info.name, error))
    }
}

impl SelfTimedSubmission for ExternalSubmission {
    fn load_latency_queries(&self, queries: ArrayView2<'_, f32>) -> Result<(), OlympicsError> {
        self.request(
            json!({"op": "queries", "rows": queries.nrows(), "cols": queries.ncols()}),
            &matrix_bytes(queries),
        )?;
        if let Ok(mut trips) = self.round_trips.lock() {
            trips.clear();
        }
        Ok(())
    }

    fn run_timed_queries(&self, iterations: u64) -> Result<f64, OlympicsError> {
        let stopwatch = Stopwatch::start();
        let frame = self.request(json!({"op": "timed", "iterations": iterations}), &[])?;
        let round_trip_ns = stopwatch.elapsed().as_nanos() as f64;
        let Some(inference_ns) = frame.header.get("elapsed_ns").and_then(Value::as_f64) else {
            return Err(submission_error(
                &self.info.name,
                "a timed batch without elapsed_ns",
            ));
        };
        if let Ok(mut trips) = self.round_trips.lock() {
            trips.push(RoundTrip {
                iterations,
                inference_ns,
                round_trip_ns,
            });
        }
        Ok(inference_ns)
    }

    fn query_memory(&self, query: ArrayView2<'_, f32>) -> Result<MemoryRecord, OlympicsError> {
        let frame = self.request(
            json!({"op": "memory", "rows": query.nrows(), "cols": query.ncols()}),
            &matrix_bytes(query),
        )?;
        let process_peak = frame.u64_field("process_peak_rss_bytes");
        let peak = frame
            .u64_field("query_peak_bytes")
            .map(|bytes| bytes as usize);
        let process_note = process_peak.map_or_else(
            || "the process's peak RSS is unknown".to_string(),
            |bytes| format!("the peer process's own peak RSS (interpreter and runtime included) is {bytes} B"),
        );
        let note = match peak {
            Some(_) => format!(
                "peak RSS growth of the peer process during one query (page-granular, VmHWM reset first), not a heap count; {process_note}"
            ),
            None => format!(
                "{}; {process_note}",
                frame
                    .header
                    .get("query_peak_note")
                    .and_then(Value::as_str)
                    .unwrap_or("not measured")
            ),
        };
        Ok(MemoryRecord {
            storage_bytes: self.info.model_bytes,
            peak_query_bytes: peak,
            note: Some(note),
        })
    }
}

/// perf-core's batch source over a self-timed submission, for interleaved comparisons
/// (`perf_core::compare::compare_sources`): each batch is the time the submission measured itself. The
/// first failure is kept (see [`SelfTimedBatch::failure`]) and every later batch reads NaN, which stops
/// perf-core's protocol with a typed error.
pub struct SelfTimedBatch<'a> {
    submission: &'a dyn SelfTimedSubmission,
    failure: Option<String>,
}

impl std::fmt::Debug for SelfTimedBatch<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SelfTimedBatch")
            .field("submission", &self.submission.name())
            .field("failure", &self.failure)
            .finish()
    }
}

impl<'a> SelfTimedBatch<'a> {
    /// A source over `submission` (its latency queries must already be loaded).
    pub fn new(submission: &'a dyn SelfTimedSubmission) -> Self {
        SelfTimedBatch {
            submission,
            failure: None,
        }
    }

    /// The first failure, if any batch failed.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl perf_core::measure::TimedBatch for SelfTimedBatch<'_> {
    fn run_batch(&mut self, iterations: u64) -> f64 {
        if self.failure.is_some() {
            return f64::NAN;
        }
        match self.submission.run_timed_queries(iterations) {
            Ok(elapsed_ns) => elapsed_ns,
            Err(error) => {
                self.failure = Some(error.to_string());
                f64::NAN
            }
        }
    }
}
