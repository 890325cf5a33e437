//! Loader tests: typed errors on missing and corrupt files (fixtures written to a temporary directory at test
//! time), and full loads of the installed data sets, which run when the data is present and otherwise print why
//! they were skipped — unless TORCHPERF_REQUIRE_DATA=1, when missing data fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::{
    data_required, fsdd_dir, fsdd_features, load_fashion_mnist, load_fsdd_clips, load_text,
    read_idx_images, read_idx_labels, DataOrigin, DatasetError, FsddSplit, MfccConfig, TextSource,
};

/// A fresh directory under the system temporary directory, unique per test.
fn scratch_dir(test_name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "torchperf-datasets-{}-{test_name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Returns the loaded value, or `None` after printing a skip reason when the data is absent and not required.
fn present_or_skip<T>(what: &str, result: Result<T, DatasetError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) if error.is_not_found() && !data_required() => {
            eprintln!(
                "skipped {what}: {error} (set TORCHPERF_REQUIRE_DATA=1 to make this a failure)"
            );
            None
        }
        Err(error) => panic!("{what}: {error}"),
    }
}

#[test]
fn missing_fashion_mnist_is_not_found() {
    let dir = scratch_dir("fashion-missing");
    let error = load_fashion_mnist(Some(&dir)).unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(
        error.to_string().contains("dataset-fashion-mnist"),
        "hint missing: {error}"
    );
}

#[test]
fn corrupt_idx_files_are_corrupt_errors() {
    let dir = scratch_dir("idx-corrupt");
    // Wrong magic number.
    let bad_magic = dir.join("bad-magic-idx3-ubyte");
    write_file(
        &bad_magic,
        &[0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4],
    );
    assert!(matches!(
        read_idx_images(&bad_magic),
        Err(DatasetError::Corrupt { .. })
    ));
    // Header promises 2 images of 2x2 = 8 bytes, payload has 4.
    let truncated = dir.join("truncated-idx3-ubyte");
    write_file(
        &truncated,
        &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4],
    );
    assert!(matches!(
        read_idx_images(&truncated),
        Err(DatasetError::Corrupt { .. })
    ));
    // Shorter than a header.
    let tiny = dir.join("tiny-idx1-ubyte");
    write_file(&tiny, &[0, 0, 8]);
    assert!(matches!(
        read_idx_labels(&tiny),
        Err(DatasetError::Corrupt { .. })
    ));
    // Gzip magic followed by garbage.
    let broken_gzip = dir.join("broken-idx1-ubyte.gz");
    write_file(
        &broken_gzip,
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef],
    );
    assert!(matches!(
        read_idx_labels(&broken_gzip),
        Err(DatasetError::Corrupt { .. })
    ));
    // A well-formed pair round-trips.
    let good_images = dir.join("good-idx3-ubyte");
    write_file(
        &good_images,
        &[
            0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 64, 128, 255,
        ],
    );
    let (pixels, n_images, n_rows, n_cols) = read_idx_images(&good_images).unwrap();
    assert_eq!(
        (pixels, n_images, n_rows, n_cols),
        (vec![0, 64, 128, 255], 1, 2, 2)
    );
    // A label set whose count differs from the image count is rejected by the full loader.
    let fake_dir = scratch_dir("fashion-mismatch");
    for prefix in ["train", "t10k"] {
        std::fs::copy(
            &good_images,
            fake_dir.join(format!("{prefix}-images-idx3-ubyte")),
        )
        .unwrap();
        write_file(
            &fake_dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &[0, 0, 8, 1, 0, 0, 0, 2, 3, 4],
        );
    }
    let mismatch = load_fashion_mnist(Some(&fake_dir));
    assert!(
        matches!(mismatch, Err(DatasetError::Corrupt { .. })),
        "{mismatch:?}"
    );
}

#[test]
fn missing_and_corrupt_fsdd_are_typed_errors() {
    let missing = scratch_dir("fsdd-missing").join("recordings");
    assert!(load_fsdd_clips(&missing).unwrap_err().is_not_found());
    let empty = scratch_dir("fsdd-empty");
    assert!(load_fsdd_clips(&empty).unwrap_err().is_not_found());
    let corrupt = scratch_dir("fsdd-corrupt");
    write_file(
        &corrupt.join("3_theo_0.wav"),
        b"RIFF\x10\x00\x00\x00WAVEnot really a wav file",
    );
    let error = load_fsdd_clips(&corrupt).unwrap_err();
    assert!(matches!(error, DatasetError::Corrupt { .. }), "{error}");
}

#[test]
fn missing_and_corrupt_text_are_typed_errors() {
    let dir = scratch_dir("text");
    let missing = load_text(&TextSource::File(dir.join("absent.txt"))).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let not_utf8 = dir.join("latin1.txt");
    write_file(&not_utf8, &[0x63, 0x61, 0x66, 0xe9]);
    assert!(matches!(
        load_text(&TextSource::File(not_utf8)),
        Err(DatasetError::Corrupt { .. })
    ));
    let empty = dir.join("empty.txt");
    write_file(&empty, b"  \n");
    assert!(matches!(
        load_text(&TextSource::File(empty)),
        Err(DatasetError::Corrupt { .. })
    ));
}

#[test]
fn installed_fashion_mnist_has_published_counts() {
    let Some(dataset) = present_or_skip("Fashion-MNIST", load_fashion_mnist(None)) else {
        return;
    };
    assert_eq!(dataset.train.len(), 60_000);
    assert_eq!(dataset.test.len(), 10_000);
    assert_eq!(dataset.train.n_features(), 784);
    assert_eq!(dataset.info.origin, DataOrigin::Real);
    let mut per_class = [0usize; 10];
    for &label in dataset.test.labels() {
        per_class[label] += 1;
    }
    assert_eq!(per_class, [1000; 10]);
    assert!(dataset
        .train
        .features()
        .iter()
        .all(|&value| (0.0..=1.0).contains(&value)));
}

#[test]
fn installed_fsdd_has_3000_clips_and_mfcc_windows() {
    let dir = fsdd_dir(None);
    let Some(clips) = present_or_skip("FSDD", load_fsdd_clips(&dir)) else {
        return;
    };
    assert_eq!(clips.len(), 3000);
    assert!(clips.iter().all(|clip| clip.sample_rate == 8000));
    assert_eq!(clips.iter().filter(|clip| clip.index <= 4).count(), 300);
    assert_eq!(
        clips.iter().filter(|clip| clip.speaker == "theo").count(),
        500
    );
    // Features of recordings 0 and 5 of every speaker and digit only (120 clips), to keep the debug-build test
    // short: 60 conventional-test and 60 train windows.
    let clips: Vec<_> = clips
        .into_iter()
        .filter(|clip| clip.index == 0 || clip.index == 5)
        .collect();
    let config = MfccConfig::default();
    let conventional = fsdd_features(&clips, &FsddSplit::Conventional, &config, &dir).unwrap();
    assert_eq!(
        (conventional.train.len(), conventional.test.len()),
        (60, 60)
    );
    assert_eq!(conventional.train.n_features(), 49 * 10);
    let held_out = fsdd_features(
        &clips,
        &FsddSplit::HoldOutSpeaker("theo".into()),
        &config,
        &dir,
    )
    .unwrap();
    assert_eq!((held_out.train.len(), held_out.test.len()), (100, 20));
    let unknown = fsdd_features(
        &clips,
        &FsddSplit::HoldOutSpeaker("nobody".into()),
        &config,
        &dir,
    );
    assert!(matches!(unknown, Err(DatasetError::InvalidArgument { .. })));
}

#[test]
fn installed_texts_load() {
    if let Some(devil) =
        present_or_skip("dict-devil", load_text(&TextSource::DevilsDictionary(None)))
    {
        assert!(devil.text.len() > 300_000);
        assert!(devil.text.contains("ZANY"));
    }
    if let Some(bible) = present_or_skip("bible-kjv", load_text(&TextSource::BibleKjv)) {
        assert!(bible
            .text
            .starts_with("In the beginning God created the heaven and the earth."));
        assert!(bible.text.len() > 4_000_000, "{} bytes", bible.text.len());
    }
}
