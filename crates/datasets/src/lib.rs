//! datasets: loaders for the real data TorchPerf trains and evaluates on, each reporting its source and licence.
//!
//! - [`load_digits`]: the UCI 8×8 handwritten digits, embedded in the crate (always available).
//! - [`load_fashion_mnist`]: Fashion-MNIST IDX files (Debian `dataset-fashion-mnist`, or a given directory).
//! - [`load_fsdd_clips`] + [`fsdd_features`]: the Free Spoken Digit Dataset read from a directory of WAV files,
//!   turned into 49 × 10 MFCC windows by [`MfccExtractor`].
//! - [`load_text`]: public-domain text for a character-level language model (embedded excerpt by default).
//!
//! Every loader returns a typed [`DatasetError`] for a missing or corrupt file; nothing falls back silently to
//! other data. Anything that is not real data must carry [`DataOrigin::Synthetic`].
#![forbid(unsafe_code)]

mod digits;
mod error;
mod fashion_mnist;
mod fsdd;
mod labeled;
mod mfcc;
mod text;

pub use digits::{load_digits, DIGITS_IMAGE_SIDE, DIGITS_N_SAMPLES};
pub use error::DatasetError;
pub use fashion_mnist::{
    fashion_mnist_dir, load_fashion_mnist, read_idx_images, read_idx_labels,
    FASHION_MNIST_CLASS_NAMES, FASHION_MNIST_DEFAULT_DIR, FASHION_MNIST_DIR_ENV,
};
pub use fsdd::{
    fsdd_dir, fsdd_features, load_fsdd_clips, FsddSplit, SpokenDigitClip, FSDD_DIR_ENV,
    FSDD_SPEAKERS,
};
pub use labeled::{split_train_test, DataOrigin, DatasetInfo, LabeledDataset, LabeledSet};
pub use mfcc::{fit_to_window, hz_to_mel, mel_to_hz, MfccConfig, MfccExtractor};
pub use text::{load_text, CharVocabulary, TextCorpus, TextSource, DEVILS_DICTIONARY_DEFAULT_PATH};

/// Name of the environment variable that turns "installed data set not found" into a test failure.
///
/// CI sets it to `1` after installing the data packages, so tests that depend on installed data always run there.
pub const REQUIRE_DATA_ENV: &str = "TORCHPERF_REQUIRE_DATA";

/// Whether [`REQUIRE_DATA_ENV`] is set to `1`: tests must then fail, not skip, when installed data is missing.
pub fn data_required() -> bool {
    std::env::var(REQUIRE_DATA_ENV).is_ok_and(|value| value.trim() == "1")
}

/// The crate README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
