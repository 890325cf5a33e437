//! On-disk cache of trained weights, keyed by everything that determines them.
//!
//! A cache entry is `<dir>/<model>-<key>.safetensors` (the named candle tensors) plus `<model>-<key>.json`
//! (the key's description and the training log). The key is a 64-bit FNV-1a hash of a description that names
//! the model, [`ZOO_FORMAT_VERSION`], the candle version, the architecture, the training configuration and a
//! fingerprint of the training data; change any of them and the old entry is simply not found. Both files are
//! written to a temporary name and renamed, so a reader never sees half an entry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::train::TrainingLog;

/// Parameters by name, as candle holds them (crate-internal: no candle type is public).
pub(crate) type NamedTensors = HashMap<String, Tensor>;
use crate::ZooError;

/// Bump when a change to training code or export makes old weights wrong; it is part of every cache key.
pub const ZOO_FORMAT_VERSION: u32 = 1;

/// Environment variable naming the weight-cache directory.
pub const CACHE_DIR_ENV: &str = "TORCHPERF_ZOO_CACHE";

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike `std`'s `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8], mut state: u64) -> u64 {
    for &byte in bytes {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

/// FNV-1a offset basis, the starting state for [`fnv1a64`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A fingerprint of training data: shape plus a hash of every feature's bits and every label.
pub fn data_fingerprint(features: ArrayView2<'_, f32>, labels: &[usize]) -> String {
    let mut state = FNV_OFFSET;
    for value in features.iter() {
        state = fnv1a64(&value.to_bits().to_le_bytes(), state);
    }
    for &label in labels {
        state = fnv1a64(&(label as u64).to_le_bytes(), state);
    }
    format!("{}x{}:{state:016x}", features.nrows(), features.ncols())
}

/// What identifies a cache entry: a model name and a description of everything its weights depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// Model name, used as the file-name prefix.
    pub model: String,
    /// Human-readable description; its hash is the key.
    pub description: String,
}

impl CacheKey {
    /// A key for `model` from the parts its weights depend on.
    pub fn new(model: &str, parts: &[&str]) -> Self {
        let description = format!(
            "{model}|zoo-format={ZOO_FORMAT_VERSION}|candle=0.11|{}",
            parts.join("|")
        );
        CacheKey {
            model: model.to_string(),
            description,
        }
    }

    /// The 16-hex-digit hash of the description.
    pub fn hash(&self) -> String {
        format!("{:016x}", fnv1a64(self.description.as_bytes(), FNV_OFFSET))
    }

    fn stem(&self) -> String {
        format!("{}-{}", self.model, self.hash())
    }
}

/// The side file stored next to the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMetadata {
    /// The key this entry was stored under (checked on load against hash collisions).
    pub key: CacheKey,
    /// How the weights were trained.
    pub training: TrainingLog,
    /// Extra strings the model needs to be rebuilt (e.g. the transformer's vocabulary).
    pub extra: HashMap<String, String>,
}

/// A directory of cached weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightCache {
    dir: PathBuf,
}

impl WeightCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WeightCache { dir: dir.into() }
    }

    /// `$TORCHPERF_ZOO_CACHE` if set, else `target/zoo-cache` under the workspace this crate was built in.
    pub fn default_location() -> Self {
        match std::env::var_os(CACHE_DIR_ENV).filter(|dir| !dir.is_empty()) {
            Some(dir) => WeightCache::new(dir),
            None => WeightCache::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/zoo-cache"),
            ),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The weights file an entry would occupy.
    pub fn weights_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.safetensors", key.stem()))
    }

    fn metadata_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.stem()))
    }

    /// The entry for `key`, or `None` when absent (or stored under a colliding key).
    ///
    /// # Errors
    /// [`ZooError::Cache`] when the entry exists but cannot be read or parsed.
    pub(crate) fn load(
        &self,
        key: &CacheKey,
    ) -> Result<Option<(NamedTensors, CacheMetadata)>, ZooError> {
        let weights_path = self.weights_path(key);
        let metadata_path = self.metadata_path(key);
        if !weights_path.is_file() || !metadata_path.is_file() {
            return Ok(None);
        }
        let cache_error = |path: &Path, reason: String| ZooError::Cache {
            path: path.to_path_buf(),
            reason,
        };
        let metadata_text = std::fs::read_to_string(&metadata_path)
            .map_err(|error| cache_error(&metadata_path, error.to_string()))?;
        let metadata: CacheMetadata = serde_json::from_str(&metadata_text)
            .map_err(|error| cache_error(&metadata_path, error.to_string()))?;
        if &metadata.key != key {
            return Ok(None);
        }
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|error| cache_error(&weights_path, error.to_string()))?;
        Ok(Some((tensors, metadata)))
    }

    /// Stores an entry (atomically per file: temporary name, then rename).
    ///
    /// # Errors
    /// [`ZooError::Cache`] when the directory or files cannot be written.
    pub(crate) fn store(
        &self,
        tensors: &NamedTensors,
        metadata: &CacheMetadata,
    ) -> Result<(), ZooError> {
        let cache_error = |path: &Path, reason: String| ZooError::Cache {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(|error| cache_error(&self.dir, error.to_string()))?;
        let weights_path = self.weights_path(&metadata.key);
        let temporary_weights =
            weights_path.with_extension(format!("safetensors.tmp{}", std::process::id()));
        candle_core::safetensors::save(tensors, &temporary_weights)
            .map_err(|error| cache_error(&temporary_weights, error.to_string()))?;
        std::fs::rename(&temporary_weights, &weights_path)
            .map_err(|error| cache_error(&weights_path, error.to_string()))?;
        let metadata_path = self.metadata_path(&metadata.key);
        let temporary_metadata =
            metadata_path.with_extension(format!("json.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(metadata)
            .map_err(|error| cache_error(&metadata_path, error.to_string()))?;
        std::fs::write(&temporary_metadata, text)
            .map_err(|error| cache_error(&temporary_metadata, error.to_string()))?;
        std::fs::rename(&temporary_metadata, &metadata_path)
            .map_err(|error| cache_error(&metadata_path, error.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b"", FNV_OFFSET), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar", FNV_OFFSET), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn key_changes_with_any_part() {
        let base = CacheKey::new("mlp", &["arch=64-128-10", "seed=0"]);
        assert_eq!(base, CacheKey::new("mlp", &["arch=64-128-10", "seed=0"]));
        assert_ne!(
            base.hash(),
            CacheKey::new("mlp", &["arch=64-128-10", "seed=1"]).hash()
        );
        assert_ne!(
            base.hash(),
            CacheKey::new("mlp", &["arch=64-64-10", "seed=0"]).hash()
        );
    }

    #[test]
    fn store_then_load_round_trips_and_misses_other_keys() {
        let dir =
            std::env::temp_dir().join(format!("torchperf-zoo-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = WeightCache::new(&dir);
        let key = CacheKey::new("toy", &["x"]);
        let mut tensors = HashMap::new();
        tensors.insert(
            "w".to_string(),
            Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap(),
        );
        let metadata = CacheMetadata {
            key: key.clone(),
            training: TrainingLog {
                steps: 3,
                epoch_losses: vec![1.0],
                step_losses: vec![1.0, 0.5, 0.25],
                seconds: 0.1,
                cpu_seconds: Some(0.1),
                load_average: None,
            },
            extra: HashMap::new(),
        };
        assert!(cache.load(&key).unwrap().is_none());
        cache.store(&tensors, &metadata).unwrap();
        let (loaded, loaded_metadata) = cache.load(&key).unwrap().unwrap();
        assert_eq!(loaded["w"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(loaded_metadata, metadata);
        assert!(cache.load(&CacheKey::new("toy", &["y"])).unwrap().is_none());
        // A corrupt weights file is an error, not a silent retrain.
        std::fs::write(cache.weights_path(&key), b"garbage").unwrap();
        assert!(matches!(cache.load(&key), Err(ZooError::Cache { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
