//! Fashion-MNIST from IDX files (gzipped or plain), as installed by Debian's `dataset-fashion-mnist`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::io_error;
use crate::{DataOrigin, DatasetError, DatasetInfo, LabeledDataset, LabeledSet};

/// Where Debian's `dataset-fashion-mnist` package installs the IDX files.
pub const FASHION_MNIST_DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming a directory that holds the four Fashion-MNIST IDX files.
pub const FASHION_MNIST_DIR_ENV: &str = "TORCHPERF_FASHION_MNIST_DIR";
/// Class names in label order.
pub const FASHION_MNIST_CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const DATASET: &str = "fashion-mnist";
const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
const HINT: &str =
    "install the Debian package `dataset-fashion-mnist`, or set TORCHPERF_FASHION_MNIST_DIR to a \
                    directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]";

/// The directory to read Fashion-MNIST from: `explicit` if given, else `$TORCHPERF_FASHION_MNIST_DIR`, else
/// [`FASHION_MNIST_DEFAULT_DIR`].
pub fn fashion_mnist_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    match std::env::var_os(FASHION_MNIST_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(FASHION_MNIST_DEFAULT_DIR),
    }
}

/// Loads the 60,000 training and 10,000 test images from `dir` (see [`fashion_mnist_dir`] for the default):
/// 784 features per row (28×28, row-major) scaled to `[0, 1]`, labels 0–9 (see
/// [`FASHION_MNIST_CLASS_NAMES`]). Each file may be gzipped (`.gz`) or plain.
///
/// # Errors
/// [`DatasetError::NotFound`] if a file is missing, [`DatasetError::Io`] if it cannot be read,
/// [`DatasetError::Corrupt`] if a header, size or label is wrong or image and label counts differ.
pub fn load_fashion_mnist(dir: Option<&Path>) -> Result<LabeledDataset, DatasetError> {
    let dir = fashion_mnist_dir(dir);
    let train = load_pair(&dir, "train")?;
    let test = load_pair(&dir, "t10k")?;
    Ok(LabeledDataset {
        train,
        test,
        info: DatasetInfo {
            name: "fashion-mnist".into(),
            origin: DataOrigin::Real,
            source: "Zalando Research, Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017), Debian dataset-fashion-mnist"
                .into(),
            license: "MIT".into(),
            attribution: "H. Xiao, K. Rasul, R. Vollgraf: Fashion-MNIST, a Novel Image Dataset for Benchmarking \
                          Machine Learning Algorithms, arXiv:1708.07747 (2017)"
                .into(),
            location: dir.display().to_string(),
        },
        split: "published split: 60,000 train / 10,000 test".into(),
    })
}

fn load_pair(dir: &Path, prefix: &str) -> Result<LabeledSet, DatasetError> {
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (pixels, n_images, n_rows, n_cols) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != n_images {
        return Err(DatasetError::Corrupt {
            dataset: DATASET,
            path: labels_path,
            reason: format!("{} labels for {n_images} images", labels.len()),
        });
    }
    if let Some(bad) = labels.iter().find(|&&label| label >= 10) {
        return Err(DatasetError::Corrupt {
            dataset: DATASET,
            path: labels_path,
            reason: format!("label {bad} is not 0-9"),
        });
    }
    let features = Array2::from_shape_vec(
        (n_images, n_rows * n_cols),
        pixels
            .iter()
            .map(|&pixel| f32::from(pixel) / 255.0)
            .collect(),
    )
    .map_err(|error| DatasetError::Corrupt {
        dataset: DATASET,
        path: images_path.clone(),
        reason: error.to_string(),
    })?;
    LabeledSet::new(features, labels.into_iter().map(usize::from).collect(), 10)
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, DatasetError> {
    let gzipped = dir.join(format!("{stem}.gz"));
    if gzipped.is_file() {
        return Ok(gzipped);
    }
    let plain = dir.join(stem);
    if plain.is_file() {
        return Ok(plain);
    }
    Err(DatasetError::NotFound {
        dataset: DATASET,
        path: gzipped,
        hint: HINT.into(),
    })
}

/// Reads a whole file, un-gzipping it when it starts with the gzip magic bytes.
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let file = File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => DatasetError::NotFound {
            dataset: DATASET,
            path: path.to_path_buf(),
            hint: HINT.into(),
        },
        _ => io_error(path, error),
    })?;
    let mut raw = Vec::new();
    BufReader::new(file)
        .read_to_end(&mut raw)
        .map_err(|error| io_error(path, error))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut decoded)
            .map_err(|error| DatasetError::Corrupt {
                dataset: DATASET,
                path: path.to_path_buf(),
                reason: format!("gzip: {error}"),
            })?;
        return Ok(decoded);
    }
    Ok(raw)
}

fn header_u32(bytes: &[u8], index: usize) -> u32 {
    let start = 4 * index;
    u32::from_be_bytes([
        bytes[start],
        bytes[start + 1],
        bytes[start + 2],
        bytes[start + 3],
    ])
}

/// A [`DatasetError::Corrupt`] for the IDX file at `path`.
fn corrupt(path: &Path, reason: String) -> DatasetError {
    DatasetError::Corrupt {
        dataset: DATASET,
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads an IDX file and checks the part of its header both kinds share: long enough for the magic
/// number and `n_dims` sizes, and the magic number `expected_magic`. Returns the whole file and the
/// sizes; `kind` ("IDX3", "IDX1") names the format in the error.
fn read_idx(
    path: &Path,
    expected_magic: u32,
    n_dims: usize,
    kind: &str,
) -> Result<(Vec<u8>, Vec<usize>), DatasetError> {
    let bytes = read_maybe_gzipped(path)?;
    let header_len = 4 * (1 + n_dims);
    if bytes.len() < header_len {
        return Err(corrupt(
            path,
            format!(
                "{} bytes is shorter than the {header_len}-byte {kind} header",
                bytes.len()
            ),
        ));
    }
    let magic = header_u32(&bytes, 0);
    if magic != expected_magic {
        return Err(corrupt(
            path,
            format!("magic number {magic:#010x}, expected {expected_magic:#010x}"),
        ));
    }
    let sizes = (1..=n_dims)
        .map(|index| header_u32(&bytes, index) as usize)
        .collect();
    Ok((bytes, sizes))
}

/// Reads an IDX3 image file: returns (pixels row-major, n_images, n_rows, n_cols).
///
/// # Errors
/// [`DatasetError::NotFound`], [`DatasetError::Io`], or [`DatasetError::Corrupt`] when the magic number is not
/// 0x00000803 or the payload length is not `n_images × n_rows × n_cols`.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize), DatasetError> {
    let (bytes, sizes) = read_idx(path, IDX_IMAGES_MAGIC, 3, "IDX3")?;
    let (n_images, n_rows, n_cols) = (sizes[0], sizes[1], sizes[2]);
    let expected = n_images
        .checked_mul(n_rows)
        .and_then(|value| value.checked_mul(n_cols));
    if expected != Some(bytes.len() - 16) {
        return Err(corrupt(
            path,
            format!(
                "payload is {} bytes, header says {n_images} images of {n_rows}x{n_cols}",
                bytes.len() - 16
            ),
        ));
    }
    Ok((bytes[16..].to_vec(), n_images, n_rows, n_cols))
}

/// Reads an IDX1 label file.
///
/// # Errors
/// [`DatasetError::NotFound`], [`DatasetError::Io`], or [`DatasetError::Corrupt`] when the magic number is not
/// 0x00000801 or the payload length differs from the count in the header.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let (bytes, sizes) = read_idx(path, IDX_LABELS_MAGIC, 1, "IDX1")?;
    let n_labels = sizes[0];
    if n_labels != bytes.len() - 8 {
        return Err(corrupt(
            path,
            format!(
                "payload is {} bytes, header says {n_labels} labels",
                bytes.len() - 8
            ),
        ));
    }
    Ok(bytes[8..].to_vec())
}
