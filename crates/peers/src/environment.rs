//! Where the peers' Python environment is, what is installed in it, and the minimal environment a peer
//! process is started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::PeersError;

/// The command that creates the virtual environment (ONNX Runtime, onnx, numpy from PyPI).
pub const SETUP_COMMAND: &str = "bash peers/setup.sh";
/// The command that installs PyTorch (Debian's CPU build, seen through the venv's system site packages).
pub const TORCH_COMMAND: &str = "apt-get install -y python3-torch";

/// The workspace root, where `peers/harness.py` and `target/` are.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The located Python environment and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEnvironment {
    /// The virtual environment's directory.
    pub venv: PathBuf,
    /// Its interpreter.
    pub python: PathBuf,
    /// The harness script.
    pub harness: PathBuf,
    /// Versions the harness reported (`python`, `numpy`, `onnx`, `onnxruntime`, `torch`, providers; a
    /// missing component is `null` with `<name>_error`).
    pub versions: BTreeMap<String, serde_json::Value>,
}

impl PeerEnvironment {
    /// The venv named by `TORCHPERF_VENV`, else `target/peers-venv` under the workspace; the harness named by
    /// `TORCHPERF_PEERS_HARNESS`, else `peers/harness.py` under the workspace. Asks the harness for the
    /// versions of what is installed.
    ///
    /// # Errors
    /// [`PeersError::Unavailable`] (with [`SETUP_COMMAND`]) when the venv, its interpreter, the harness,
    /// numpy or ONNX Runtime is missing.
    pub fn discover() -> Result<Self, PeersError> {
        let venv = std::env::var_os("TORCHPERF_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target").join("peers-venv"));
        let harness = std::env::var_os("TORCHPERF_PEERS_HARNESS")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("peers").join("harness.py"));
        Self::at(&venv, &harness)
    }

    /// The environment at `venv` with the harness at `harness`.
    ///
    /// # Errors
    /// As [`PeerEnvironment::discover`].
    pub fn at(venv: &Path, harness: &Path) -> Result<Self, PeersError> {
        let unavailable = |reason: String| PeersError::Unavailable {
            reason,
            enable_command: SETUP_COMMAND.into(),
        };
        let python = venv.join("bin").join("python");
        if !python.exists() {
            return Err(unavailable(format!(
                "no Python virtual environment at {}",
                venv.display()
            )));
        }
        if !harness.is_file() {
            return Err(unavailable(format!("no harness at {}", harness.display())));
        }
        let mut command = Command::new(&python);
        command
            .arg(harness)
            .arg("--versions")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        apply_minimal_environment(&mut command, venv, 1, None);
        let output = command
            .output()
            .map_err(|error| unavailable(format!("{} cannot run: {error}", python.display())))?;
        if !output.status.success() {
            return Err(unavailable(format!(
                "the harness's version probe failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let versions: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&output.stdout)
            .map_err(|error| {
                unavailable(format!(
                    "the harness's version probe printed no JSON: {error}"
                ))
            })?;
        let environment = PeerEnvironment {
            venv: venv.to_path_buf(),
            python,
            harness: harness.to_path_buf(),
            versions,
        };
        for required in ["numpy", "onnxruntime", "onnx"] {
            if environment.version(required).is_none() {
                return Err(unavailable(format!(
                    "{required} is not importable in {}: {}",
                    venv.display(),
                    environment
                        .versions
                        .get(&format!("{required}_error"))
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("unknown reason")
                )));
            }
        }
        Ok(environment)
    }

    /// The version of `component`, when it is importable.
    pub fn version(&self, component: &str) -> Option<&str> {
        self.versions
            .get(component)
            .and_then(serde_json::Value::as_str)
    }

    /// Whether PyTorch is importable; otherwise why not, with [`TORCH_COMMAND`].
    ///
    /// # Errors
    /// [`PeersError::Unavailable`] when it is not.
    pub fn torch(&self) -> Result<&str, PeersError> {
        self.version("torch")
            .ok_or_else(|| PeersError::Unavailable {
                reason: format!(
                    "PyTorch is not importable from {}: {}",
                    self.venv.display(),
                    self.versions
                        .get("torch_error")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("unknown reason")
                ),
                enable_command: TORCH_COMMAND.into(),
            })
    }
}

/// Clears the child's environment and sets only what a peer needs: `PATH` (the venv first), `VIRTUAL_ENV`,
/// a locale, `HOME` and `TMPDIR` (a scratch directory when given), no bytecode writes, and the thread
/// counts of every math library the runtimes may use. Nothing else of the parent's environment (tokens,
/// database URLs) reaches the peer.
pub fn apply_minimal_environment(
    command: &mut Command,
    venv: &Path,
    threads: usize,
    scratch: Option<&Path>,
) {
    let threads = threads.max(1).to_string();
    command.env_clear();
    command.env(
        "PATH",
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            venv.join("bin").display()
        ),
    );
    command.env("VIRTUAL_ENV", venv);
    command.env("LANG", "C.UTF-8");
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command.env("PYTHONUNBUFFERED", "1");
    for variable in [
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ] {
        command.env(variable, &threads);
    }
    let scratch = scratch.map_or_else(std::env::temp_dir, Path::to_path_buf);
    command.env("HOME", &scratch);
    command.env("TMPDIR", &scratch);
}
