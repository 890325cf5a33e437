//! peers: ONNX Runtime and PyTorch as peers of the workspace's own submissions, under the same referee.
//!
//! - [`onnx`] writes zoo's reference networks (the MLP classifiers, the autoencoder, the two-convolution CNN,
//!   the DS-CNN) as ONNX (opset 13) through the messages generated from `onnx.proto`; [`onnx_transformer`]
//!   the character transformer.
//! - [`PeerEnvironment`] finds the Python virtual environment (`bash peers/setup.sh` creates it) and the
//!   versions in it; a missing environment is [`PeersError::Unavailable`] with the command that installs it.
//! - [`ExternalSubmission`] serves an exported model from a `peers/harness.py` process (ONNX Runtime or
//!   PyTorch, f32 or dynamic int8, at a pinned thread count) as an olympics
//!   [`SelfTimedSubmission`](olympics::referee::SelfTimedSubmission): the harness times its own inference
//!   calls, the referee computes every statistic, and the pipe's round trip is kept beside them. A peer that
//!   crashes, hangs, answers the wrong shape or prints garbage is an error for that submission; its process
//!   is always killed and reaped.
//! - [`export_minilm`] exports the capstone's all-MiniLM-L6-v2 with the venv's torch, so ONNX Runtime's
//!   dynamic int8 of the same model can be timed beside the workspace's encoder.
//!
//! The child gets a minimal environment (`PATH`, the venv, a locale, a scratch `HOME`/`TMPDIR`, thread
//! counts): nothing else of the parent's environment reaches it. The crate reads no clock except through
//! perf-core's `Stopwatch` (the pipe's round trip) and writes no file.
#![forbid(unsafe_code)]

pub mod environment;
mod error;
pub mod minilm;
pub mod onnx;
pub mod onnx_transformer;
pub mod process;
pub mod submission;

pub use environment::{PeerEnvironment, SETUP_COMMAND, TORCH_COMMAND};
pub use error::PeersError;
pub use minilm::{export_minilm, MinilmOnnx};
pub use onnx::{
    cnn_to_onnx_bytes, ds_cnn_to_onnx_bytes, to_onnx_bytes, write_onnx, write_onnx_bytes,
    GreyPooling, OnnxExport, OnnxHead,
};
pub use onnx_transformer::char_transformer_to_onnx_bytes;
pub use submission::{
    ExternalSubmission, PeerConfig, PeerInfo, PeerSpec, Precision, RoundTrip, Runtime,
    SelfTimedBatch,
};

/// The crate README's examples, compiled (and, where they need no Python, run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
