//! The one error type of the peers crate.

/// Everything that can go wrong while exporting a model or serving it from a peer process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeersError {
    /// A model cannot be written as ONNX (no layers, inconsistent widths).
    #[error("onnx export of {model}: {reason}")]
    Export {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// The protobuf encoder failed.
    #[error("onnx encoding of {model}: {reason}")]
    Encode {
        /// The model.
        model: String,
        /// The encoder's message.
        reason: String,
    },
    /// The peers' environment is not installed; `enable_command` installs it.
    #[error("peers unavailable: {reason} (install with `{enable_command}`)")]
    Unavailable {
        /// What is missing.
        reason: String,
        /// The command that installs it.
        enable_command: String,
    },
    /// The peer process could not be started or written to.
    #[error("peer {peer}: {what}: {source}")]
    Io {
        /// The peer.
        peer: String,
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The peer answered something that is not a frame of the protocol.
    #[error("peer {peer}: protocol violation: {reason}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// The peer process ended (crashed or exited) before answering.
    #[error(
        "peer {peer}: process ended ({status}) before answering {request}; stderr: {stderr_tail}"
    )]
    Exited {
        /// The peer.
        peer: String,
        /// The request it did not answer.
        request: String,
        /// Its exit status.
        status: String,
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },
    /// The peer did not answer within the timeout (hung); it was killed.
    #[error("peer {peer}: no answer to {request} within {seconds} s (hung); killed")]
    Timeout {
        /// The peer.
        peer: String,
        /// The request.
        request: String,
        /// The timeout.
        seconds: f64,
    },
    /// The peer answered the request with an error of its own.
    #[error("peer {peer}: {request} failed: {reason}")]
    Peer {
        /// The peer.
        peer: String,
        /// The request.
        request: String,
        /// Its message.
        reason: String,
    },
    /// The peer is no longer usable after an earlier failure.
    #[error("peer {peer}: unusable after an earlier failure: {reason}")]
    Broken {
        /// The peer.
        peer: String,
        /// The earlier failure.
        reason: String,
    },
}
