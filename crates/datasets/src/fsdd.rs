//! The Free Spoken Digit Dataset (real speech, 8 kHz WAV) read from a directory, and its MFCC feature sets.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::io_error;
use crate::{
    DataOrigin, DatasetError, DatasetInfo, LabeledDataset, LabeledSet, MfccConfig, MfccExtractor,
};

/// Environment variable naming the FSDD `recordings` directory.
pub const FSDD_DIR_ENV: &str = "TORCHPERF_FSDD_DIR";
/// The six speakers of FSDD, in the order used for reporting.
pub const FSDD_SPEAKERS: [&str; 6] = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"];

const DATASET: &str = "fsdd";
const HINT: &str =
    "get the Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset, \
                    CC BY-SA 4.0) and point TORCHPERF_FSDD_DIR at its `recordings` directory";
// FSDD's conventional split: recordings with index 0-4 of each speaker and digit are the test set.
const CONVENTIONAL_TEST_MAX_INDEX: u32 = 4;

/// One recording: a speaker saying a digit.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenDigitClip {
    /// The spoken digit, 0–9 (the class label).
    pub digit: usize,
    /// Speaker name, e.g. `theo`.
    pub speaker: String,
    /// Recording index for this speaker and digit (0–49).
    pub index: u32,
    /// Mono samples scaled to `[-1, 1)`.
    pub samples: Vec<f32>,
    /// Sample rate in Hz (8,000 for FSDD).
    pub sample_rate: u32,
}

/// How to divide FSDD into train and test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsddSplit {
    /// The dataset's own convention: indices 0–4 of every speaker and digit are test, 5–49 train.
    Conventional,
    /// All recordings of one speaker are test, the other speakers train: does the model generalise to a voice
    /// it has never heard?
    HoldOutSpeaker(String),
}

/// The FSDD directory to read: `explicit` if given, else `$TORCHPERF_FSDD_DIR`, else `data/fsdd/recordings`
/// under the current directory (the dataset is not shipped: clone `Jakobovski/free-spoken-digit-dataset` and
/// point the variable at its `recordings/`). A directory that does not exist is reported by the loader as
/// [`DatasetError::NotFound`] naming it.
pub fn fsdd_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os(FSDD_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    Path::new("data").join("fsdd").join("recordings")
}

/// Parses `{digit}_{speaker}_{index}.wav`.
fn parse_clip_name(file_name: &str) -> Option<(usize, String, u32)> {
    let stem = file_name.strip_suffix(".wav")?;
    let mut parts = stem.splitn(3, '_');
    let digit: usize = parts
        .next()?
        .parse()
        .ok()
        .filter(|&digit: &usize| digit < 10)?;
    let speaker = parts.next()?.to_string();
    let index: u32 = parts.next()?.parse().ok()?;
    Some((digit, speaker, index))
}

/// Reads every `{digit}_{speaker}_{index}.wav` in `dir` (sorted by file name, so the order is deterministic).
///
/// # Errors
/// [`DatasetError::NotFound`] if `dir` does not exist or holds no such file, [`DatasetError::Io`] if it cannot
/// be listed, [`DatasetError::Corrupt`] if a WAV file does not parse or is not mono 16-bit PCM.
pub fn load_fsdd_clips(dir: &Path) -> Result<Vec<SpokenDigitClip>, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::NotFound {
            dataset: DATASET,
            path: dir.to_path_buf(),
            hint: HINT.into(),
        });
    }
    let mut named_files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| io_error(dir, error))? {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(parsed) = parse_clip_name(&file_name) {
            named_files.push((file_name, parsed));
        }
    }
    if named_files.is_empty() {
        return Err(DatasetError::NotFound {
            dataset: DATASET,
            path: dir.to_path_buf(),
            hint: format!("no {{digit}}_{{speaker}}_{{index}}.wav files there; {HINT}"),
        });
    }
    named_files.sort();
    named_files
        .into_iter()
        .map(|(file_name, (digit, speaker, index))| {
            let path = dir.join(&file_name);
            let (samples, sample_rate) = read_mono_pcm16(&path)?;
            Ok(SpokenDigitClip {
                digit,
                speaker,
                index,
                samples,
                sample_rate,
            })
        })
        .collect()
}

fn read_mono_pcm16(path: &Path) -> Result<(Vec<f32>, u32), DatasetError> {
    let corrupt = |reason: String| DatasetError::Corrupt {
        dataset: DATASET,
        path: path.to_path_buf(),
        reason,
    };
    // Opening is I/O; anything hound reports after that (short header, bad chunk, "failed to read enough
    // bytes") means the file is not a valid WAV.
    let file = std::fs::File::open(path).map_err(|error| io_error(path, error))?;
    let reader = hound::WavReader::new(std::io::BufReader::new(file))
        .map_err(|error| corrupt(format!("not a valid WAV file: {error}")))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(corrupt(format!(
            "expected mono 16-bit integer PCM, found {spec:?}"
        )));
    }
    let samples = reader
        .into_samples::<i16>()
        .map(|sample| sample.map(|value| f32::from(value) / 32768.0))
        .collect::<Result<Vec<f32>, _>>()
        .map_err(|error| corrupt(error.to_string()))?;
    if samples.is_empty() {
        return Err(corrupt("no samples".into()));
    }
    Ok((samples, spec.sample_rate))
}

/// MFCC features for every clip (each flattened row-major `n_frames × n_coefficients`, 490 by default),
/// divided according to `split`.
///
/// # Errors
/// [`DatasetError::InvalidArgument`] if a clip's sample rate differs from `config.sample_rate`, the config is
/// invalid, the held-out speaker is absent, or a side of the split is empty.
pub fn fsdd_features(
    clips: &[SpokenDigitClip],
    split: &FsddSplit,
    config: &MfccConfig,
    location: &Path,
) -> Result<LabeledDataset, DatasetError> {
    let extractor = MfccExtractor::new(config.clone())?;
    if let FsddSplit::HoldOutSpeaker(speaker) = split {
        if !clips.iter().any(|clip| &clip.speaker == speaker) {
            return Err(DatasetError::InvalidArgument {
                reason: format!("held-out speaker {speaker:?} has no recording"),
            });
        }
    }
    let n_features = config.n_frames()? * config.n_coefficients;
    let mut train = (Vec::new(), Vec::new());
    let mut test = (Vec::new(), Vec::new());
    for clip in clips {
        if clip.sample_rate != config.sample_rate {
            return Err(DatasetError::InvalidArgument {
                reason: format!(
                    "clip {}_{}_{} is {} Hz, front end expects {} Hz",
                    clip.digit, clip.speaker, clip.index, clip.sample_rate, config.sample_rate
                ),
            });
        }
        let is_test = match split {
            FsddSplit::Conventional => clip.index <= CONVENTIONAL_TEST_MAX_INDEX,
            FsddSplit::HoldOutSpeaker(speaker) => &clip.speaker == speaker,
        };
        let target = if is_test { &mut test } else { &mut train };
        target
            .0
            .extend(extractor.mfcc(&clip.samples).iter().copied());
        target.1.push(clip.digit);
    }
    let build = |(features, labels): (Vec<f32>, Vec<usize>), side: &str| {
        if labels.is_empty() {
            return Err(DatasetError::InvalidArgument {
                reason: format!("the {side} side of {split:?} is empty"),
            });
        }
        let features =
            Array2::from_shape_vec((labels.len(), n_features), features).map_err(|error| {
                DatasetError::InvalidArgument {
                    reason: error.to_string(),
                }
            })?;
        LabeledSet::new(features, labels, 10)
    };
    let split_description = match split {
        FsddSplit::Conventional => {
            "conventional: recording indices 0-4 test, 5-49 train".to_string()
        }
        FsddSplit::HoldOutSpeaker(speaker) => {
            format!("held-out speaker {speaker}: all other speakers train")
        }
    };
    Ok(LabeledDataset {
        train: build(train, "train")?,
        test: build(test, "test")?,
        info: DatasetInfo {
            name: "fsdd".into(),
            origin: DataOrigin::Real,
            source: "Free Spoken Digit Dataset, github.com/Jakobovski/free-spoken-digit-dataset"
                .into(),
            license: "CC BY-SA 4.0".into(),
            attribution: "Free Spoken Digit Dataset (FSDD), Z. Jackson et al.".into(),
            location: location.display().to_string(),
        },
        split: split_description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_names_parse() {
        assert_eq!(
            parse_clip_name("7_theo_12.wav"),
            Some((7, "theo".to_string(), 12))
        );
        assert_eq!(parse_clip_name("10_theo_1.wav"), None);
        assert_eq!(parse_clip_name("7_theo_x.wav"), None);
        assert_eq!(parse_clip_name("7_theo_1.mp3"), None);
        assert_eq!(parse_clip_name("README.md"), None);
    }
}
