//! The UCI 8×8 handwritten digits, embedded in the crate so that real data exists on every machine.

use std::io::Read;
use std::path::PathBuf;

use ndarray::Array2;

use crate::{DataOrigin, DatasetError, DatasetInfo, LabeledSet};

/// Number of samples in the embedded digits file.
pub const DIGITS_N_SAMPLES: usize = 1797;
/// Side of each digits image in pixels (8 × 8 = 64 features).
pub const DIGITS_IMAGE_SIDE: usize = 8;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");
const DIGITS_PIXEL_MAX: f32 = 16.0;

/// Loads the 1,797 embedded UCI digits: 64 features per row (the 8×8 image, row-major) scaled from the
/// original 0..=16 counts to `[0, 1]`, labels 0–9.
///
/// # Errors
/// [`DatasetError::Corrupt`] if the embedded file does not parse (only possible if it was replaced).
pub fn load_digits() -> Result<(LabeledSet, DatasetInfo), DatasetError> {
    parse_digits_csv_gz(DIGITS_CSV_GZ, PathBuf::from("<embedded>/digits.csv.gz"))
}

pub(crate) fn parse_digits_csv_gz(
    gzipped: &[u8],
    path: PathBuf,
) -> Result<(LabeledSet, DatasetInfo), DatasetError> {
    let corrupt = |reason: String| DatasetError::Corrupt {
        dataset: "uci-digits",
        path: path.clone(),
        reason,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_string(&mut text)
        .map_err(|error| corrupt(format!("gzip/utf-8 decoding failed: {error}")))?;
    let n_features = DIGITS_IMAGE_SIDE * DIGITS_IMAGE_SIDE;
    let mut features = Vec::with_capacity(DIGITS_N_SAMPLES * n_features);
    let mut labels = Vec::with_capacity(DIGITS_N_SAMPLES);
    for (line_idx, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let values: Vec<&str> = line.split(',').collect();
        if values.len() != n_features + 1 {
            return Err(corrupt(format!(
                "line {} has {} fields, expected {}",
                line_idx + 1,
                values.len(),
                n_features + 1
            )));
        }
        for field in &values[..n_features] {
            let pixel: f32 = field.trim().parse().map_err(|_| {
                corrupt(format!(
                    "line {}: pixel {field:?} is not a number",
                    line_idx + 1
                ))
            })?;
            if !(0.0..=DIGITS_PIXEL_MAX).contains(&pixel) {
                return Err(corrupt(format!(
                    "line {}: pixel {pixel} outside 0..=16",
                    line_idx + 1
                )));
            }
            features.push(pixel / DIGITS_PIXEL_MAX);
        }
        let label_field = values[n_features].trim();
        let label: usize = label_field
            .parse()
            .ok()
            .filter(|&label: &usize| label < 10)
            .ok_or_else(|| {
                corrupt(format!(
                    "line {}: label {label_field:?} is not 0-9",
                    line_idx + 1
                ))
            })?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(corrupt("no samples".into()));
    }
    let n_samples = labels.len();
    let features = Array2::from_shape_vec((n_samples, n_features), features)
        .map_err(|error| corrupt(format!("shape error: {error}")))?;
    let set = LabeledSet::new(features, labels, 10)?;
    let info = DatasetInfo {
        name: "uci-digits-8x8".into(),
        origin: DataOrigin::Real,
        source: "UCI ML Repository, Optical Recognition of Handwritten Digits (Alpaydin & Kaynak, 1998), \
                 copy shipped in the scikit-learn wheel"
            .into(),
        license: "CC BY 4.0".into(),
        attribution: "E. Alpaydin, C. Kaynak: Optical Recognition of Handwritten Digits, UCI Machine Learning \
                      Repository (1998), DOI 10.24432/C50P49"
            .into(),
        location: path.display().to_string(),
    };
    Ok((set, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn embedded_digits_have_expected_counts() {
        let (set, info) = load_digits().unwrap();
        assert_eq!(set.len(), DIGITS_N_SAMPLES);
        assert_eq!(set.n_features(), 64);
        assert_eq!(set.n_classes(), 10);
        let mut per_class = [0usize; 10];
        for &label in set.labels() {
            per_class[label] += 1;
        }
        // Every class is present with 174-183 samples in this file.
        assert!(
            per_class.iter().all(|&count| (174..=183).contains(&count)),
            "{per_class:?}"
        );
        assert!(set
            .features()
            .iter()
            .all(|&value| (0.0..=1.0).contains(&value)));
        assert_eq!(info.origin, DataOrigin::Real);
        assert_eq!(info.license, "CC BY 4.0");
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn corrupt_digits_are_typed_errors() {
        let path = PathBuf::from("test.csv.gz");
        let not_gzip = parse_digits_csv_gz(b"plain text", path.clone());
        assert!(
            matches!(not_gzip, Err(DatasetError::Corrupt { .. })),
            "{not_gzip:?}"
        );
        let short_line = parse_digits_csv_gz(&gzip("0,1,2\n"), path.clone());
        assert!(
            matches!(short_line, Err(DatasetError::Corrupt { .. })),
            "{short_line:?}"
        );
        let mut row = vec!["0"; 64].join(",");
        row.push_str(",11\n");
        let bad_label = parse_digits_csv_gz(&gzip(&row), path.clone());
        assert!(
            matches!(bad_label, Err(DatasetError::Corrupt { .. })),
            "{bad_label:?}"
        );
        let empty = parse_digits_csv_gz(&gzip(""), path);
        assert!(
            matches!(empty, Err(DatasetError::Corrupt { .. })),
            "{empty:?}"
        );
    }
}
