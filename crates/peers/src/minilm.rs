//! all-MiniLM-L6-v2 as an ONNX Runtime peer: `peers/minilm_export.py` (beside the harness) builds a torch
//! module from the model directory's `model.safetensors` and exports it with torch's TorchScript exporter;
//! the file is then served by the harness like any other exported model (input: token ids as float rows,
//! 0 = padding; output: unit-norm sentence embeddings).

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::environment::{apply_minimal_environment, PeerEnvironment, TORCH_COMMAND};
use crate::error::PeersError;

/// What the export wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinilmOnnx {
    /// Bytes of the f32 ONNX file.
    pub bytes: u64,
    /// The torch version that exported it.
    pub torch: String,
    /// The opset it declares.
    pub opset: i64,
}

/// Exports the model in `model_dir` (config.json, model.safetensors) to `out` with the venv's torch.
///
/// # Errors
/// [`PeersError::Unavailable`] (with [`TORCH_COMMAND`]) when torch is not importable in the venv;
/// [`PeersError::Io`] when the script cannot be started; [`PeersError::Export`] when it fails (its last
/// line of stderr in the reason) or prints no JSON.
pub fn export_minilm(
    environment: &PeerEnvironment,
    model_dir: &Path,
    out: &Path,
    scratch: Option<&Path>,
) -> Result<MinilmOnnx, PeersError> {
    environment.torch()?;
    let script = environment
        .harness
        .parent()
        .map(|dir| dir.join("minilm_export.py"))
        .ok_or_else(|| PeersError::Unavailable {
            reason: format!("no directory around {}", environment.harness.display()),
            enable_command: TORCH_COMMAND.into(),
        })?;
    let mut command = Command::new(&environment.python);
    command.arg(&script).arg(model_dir).arg(out);
    apply_minimal_environment(&mut command, &environment.venv, 1, scratch);
    let output = command.output().map_err(|source| PeersError::Io {
        peer: "minilm_export".into(),
        what: format!("starting {}", script.display()),
        source,
    })?;
    let export_error = |reason: String| PeersError::Export {
        model: "all-MiniLM-L6-v2".into(),
        reason,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(export_error(format!(
            "{} exited with {}: {}",
            script.display(),
            output.status,
            stderr.lines().last().unwrap_or("")
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .map_err(|error| export_error(format!("the export printed {line:?}: {error}")))
}
