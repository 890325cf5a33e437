//! Audio front end for keyword spotting: fixed window, framed power spectrum, log-mel energies and MFCCs.
//!
//! The default [`MfccConfig`] follows MLPerf Tiny's keyword-spotting front end (30 ms frames every 20 ms over a
//! 1 s window, 40 mel bands, 10 coefficients → 49 × 10 features), at 8 kHz, the rate of the Free Spoken Digit
//! Dataset: 240-sample frames every 160 samples over 8,000 samples, FFT size 256, mel bands from 20 Hz to
//! 4 kHz.

use std::f32::consts::PI;
use std::sync::Arc;

use ndarray::Array2;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::DatasetError;

/// Parameters of the MFCC front end. [`Default`] is the MLPerf-Tiny-style 49 × 10 setting at 8 kHz.
#[derive(Debug, Clone, PartialEq)]
pub struct MfccConfig {
    /// Sample rate of the audio in Hz.
    pub sample_rate: u32,
    /// Every clip is padded or cropped to this many samples before framing.
    pub window_samples: usize,
    /// Samples per analysis frame (Hann-windowed).
    pub frame_length: usize,
    /// Samples between the starts of consecutive frames.
    pub hop_length: usize,
    /// FFT size (≥ `frame_length`; the frame is zero-padded).
    pub fft_size: usize,
    /// Number of triangular mel filters.
    pub n_mels: usize,
    /// Number of cepstral coefficients kept (DCT-II of the log-mel energies).
    pub n_coefficients: usize,
    /// Lower edge of the lowest mel filter in Hz.
    pub low_hz: f32,
    /// Upper edge of the highest mel filter in Hz (at most the Nyquist frequency).
    pub high_hz: f32,
}

impl Default for MfccConfig {
    fn default() -> Self {
        MfccConfig {
            sample_rate: 8000,
            window_samples: 8000,
            frame_length: 240,
            hop_length: 160,
            fft_size: 256,
            n_mels: 40,
            n_coefficients: 10,
            low_hz: 20.0,
            high_hz: 4000.0,
        }
    }
}

impl MfccConfig {
    /// Number of frames in one window: `1 + (window_samples - frame_length) / hop_length` (49 by default).
    ///
    /// # Errors
    /// [`DatasetError::InvalidArgument`] for a zero hop length or a frame longer than the window (no frame
    /// count exists then; [`MfccExtractor::new`] refuses the same configurations).
    pub fn n_frames(&self) -> Result<usize, DatasetError> {
        if self.hop_length == 0 || self.frame_length > self.window_samples {
            return Err(DatasetError::InvalidArgument {
                reason: format!(
                    "no frame count for hop length {} and a frame of {} in a window of {}",
                    self.hop_length, self.frame_length, self.window_samples
                ),
            });
        }
        Ok(self.frame_count())
    }

    /// [`MfccConfig::n_frames`] of a configuration that passed `validate`.
    fn frame_count(&self) -> usize {
        1 + (self.window_samples - self.frame_length) / self.hop_length
    }

    fn validate(&self) -> Result<(), DatasetError> {
        let invalid = |reason: String| Err(DatasetError::InvalidArgument { reason });
        if self.sample_rate == 0
            || self.hop_length == 0
            || self.frame_length == 0
            || self.n_mels == 0
        {
            return invalid(format!(
                "sample rate, hop, frame length and n_mels must be positive: {self:?}"
            ));
        }
        if self.frame_length > self.window_samples {
            return invalid(format!(
                "frame length {} exceeds window {}",
                self.frame_length, self.window_samples
            ));
        }
        if self.fft_size < self.frame_length {
            return invalid(format!(
                "fft size {} below frame length {}",
                self.fft_size, self.frame_length
            ));
        }
        if !(1..=self.n_mels).contains(&self.n_coefficients) {
            return invalid(format!(
                "n_coefficients {} not in 1..={}",
                self.n_coefficients, self.n_mels
            ));
        }
        let nyquist = self.sample_rate as f32 / 2.0;
        if !(0.0 <= self.low_hz && self.low_hz < self.high_hz && self.high_hz <= nyquist) {
            return invalid(format!(
                "need 0 <= low_hz < high_hz <= Nyquist ({nyquist}), got {} and {}",
                self.low_hz, self.high_hz
            ));
        }
        Ok(())
    }
}

/// Hz to mel on the HTK scale: `2595 · log10(1 + hz / 700)`.
pub fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

/// Mel (HTK scale) to Hz, the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

/// Pads (with zeros on both sides) or crops (keeping the centre) `samples` to exactly `window_samples`.
///
/// Centring keeps the spoken word, which FSDD clips hold in their middle after silence trimming, inside the
/// window.
pub fn fit_to_window(samples: &[f32], window_samples: usize) -> Vec<f32> {
    if samples.len() >= window_samples {
        let start = (samples.len() - window_samples) / 2;
        return samples[start..start + window_samples].to_vec();
    }
    let mut fitted = vec![0.0; window_samples];
    let start = (window_samples - samples.len()) / 2;
    fitted[start..start + samples.len()].copy_from_slice(samples);
    fitted
}

/// A prepared MFCC front end: FFT plan, window, mel filter bank and DCT matrix built once.
pub struct MfccExtractor {
    config: MfccConfig,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// `n_mels × (fft_size / 2 + 1)` triangular filter weights.
    mel_filters: Array2<f32>,
    /// `n_coefficients × n_mels` orthonormal DCT-II rows.
    dct: Array2<f32>,
    mel_centers_hz: Vec<f32>,
}

impl std::fmt::Debug for MfccExtractor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MfccExtractor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// Floor added before the logarithm, so that digital silence maps to a finite value.
const LOG_FLOOR: f32 = 1e-6;

impl MfccExtractor {
    /// Builds the front end.
    ///
    /// # Errors
    /// [`DatasetError::InvalidArgument`] when the configuration is inconsistent (frame longer than the window,
    /// FFT shorter than a frame, band edges outside 0..Nyquist, more coefficients than mel bands, …).
    pub fn new(config: MfccConfig) -> Result<Self, DatasetError> {
        config.validate()?;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(config.fft_size);
        // Periodic Hann window.
        let window = (0..config.frame_length)
            .map(|sample_idx| {
                0.5 - 0.5 * (2.0 * PI * sample_idx as f32 / config.frame_length as f32).cos()
            })
            .collect();
        let n_bins = config.fft_size / 2 + 1;
        let low_mel = hz_to_mel(config.low_hz);
        let high_mel = hz_to_mel(config.high_hz);
        let edges_hz: Vec<f32> = (0..config.n_mels + 2)
            .map(|edge_idx| {
                mel_to_hz(
                    low_mel + (high_mel - low_mel) * edge_idx as f32 / (config.n_mels + 1) as f32,
                )
            })
            .collect();
        let bin_hz = config.sample_rate as f32 / config.fft_size as f32;
        let mel_filters = Array2::from_shape_fn((config.n_mels, n_bins), |(mel_idx, bin_idx)| {
            let frequency = bin_idx as f32 * bin_hz;
            let (left, center, right) = (
                edges_hz[mel_idx],
                edges_hz[mel_idx + 1],
                edges_hz[mel_idx + 2],
            );
            if left < frequency && frequency <= center {
                (frequency - left) / (center - left)
            } else if center < frequency && frequency < right {
                (right - frequency) / (right - center)
            } else {
                0.0
            }
        });
        let n_mels = config.n_mels as f32;
        let dct = Array2::from_shape_fn(
            (config.n_coefficients, config.n_mels),
            |(coefficient_idx, mel_idx)| {
                let scale = if coefficient_idx == 0 {
                    (1.0 / n_mels).sqrt()
                } else {
                    (2.0 / n_mels).sqrt()
                };
                scale * (PI * coefficient_idx as f32 * (mel_idx as f32 + 0.5) / n_mels).cos()
            },
        );
        let mel_centers_hz = edges_hz[1..=config.n_mels].to_vec();
        Ok(MfccExtractor {
            config,
            fft,
            window,
            mel_filters,
            dct,
            mel_centers_hz,
        })
    }

    /// The configuration this front end was built with.
    pub fn config(&self) -> &MfccConfig {
        &self.config
    }

    /// Centre frequency in Hz of each mel band, ascending.
    pub fn mel_band_centers_hz(&self) -> &[f32] {
        &self.mel_centers_hz
    }

    /// Log mel energies, `n_frames × n_mels`, of `samples` after [`fit_to_window`].
    pub fn log_mel(&self, samples: &[f32]) -> Array2<f32> {
        let config = &self.config;
        let fitted = fit_to_window(samples, config.window_samples);
        let n_frames = config.frame_count();
        let n_bins = config.fft_size / 2 + 1;
        let mut log_mel = Array2::zeros((n_frames, config.n_mels));
        let mut buffer = vec![Complex32::new(0.0, 0.0); config.fft_size];
        let mut power = vec![0.0f32; n_bins];
        for frame_idx in 0..n_frames {
            let start = frame_idx * config.hop_length;
            for (slot, value) in buffer.iter_mut().enumerate() {
                *value = if slot < config.frame_length {
                    Complex32::new(fitted[start + slot] * self.window[slot], 0.0)
                } else {
                    Complex32::new(0.0, 0.0)
                };
            }
            self.fft.process(&mut buffer);
            for (bin_idx, bin_power) in power.iter_mut().enumerate() {
                *bin_power = buffer[bin_idx].norm_sqr() / config.fft_size as f32;
            }
            for mel_idx in 0..config.n_mels {
                let energy: f32 = self
                    .mel_filters
                    .row(mel_idx)
                    .iter()
                    .zip(&power)
                    .map(|(weight, bin)| weight * bin)
                    .sum();
                log_mel[[frame_idx, mel_idx]] = (energy + LOG_FLOOR).ln();
            }
        }
        log_mel
    }

    /// MFCCs, `n_frames × n_coefficients` (49 × 10 by default): DCT-II of [`MfccExtractor::log_mel`].
    pub fn mfcc(&self, samples: &[f32]) -> Array2<f32> {
        self.log_mel(samples).dot(&self.dct.t())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency_hz: f32, config: &MfccConfig) -> Vec<f32> {
        (0..config.window_samples)
            .map(|sample_idx| {
                (2.0 * PI * frequency_hz * sample_idx as f32 / config.sample_rate as f32).sin()
            })
            .collect()
    }

    #[test]
    fn default_gives_49_by_10() {
        let config = MfccConfig::default();
        assert_eq!(config.n_frames().unwrap(), 49);
        let extractor = MfccExtractor::new(config.clone()).unwrap();
        let features = extractor.mfcc(&tone(440.0, &config));
        assert_eq!(features.dim(), (49, 10));
        assert!(features.iter().all(|value| value.is_finite()));
        // Frame count for a non-default window: 16,000 samples, 480 / 320 as at 16 kHz → 49 as well.
        let sixteen_khz = MfccConfig {
            sample_rate: 16000,
            window_samples: 16000,
            frame_length: 480,
            hop_length: 320,
            fft_size: 512,
            high_hz: 8000.0,
            ..MfccConfig::default()
        };
        assert_eq!(sixteen_khz.n_frames().unwrap(), 49);
        for broken in [
            MfccConfig {
                hop_length: 0,
                ..MfccConfig::default()
            },
            MfccConfig {
                frame_length: config.window_samples + 1,
                ..MfccConfig::default()
            },
        ] {
            assert!(matches!(
                broken.n_frames(),
                Err(DatasetError::InvalidArgument { .. })
            ));
        }
        assert_eq!(
            MfccExtractor::new(sixteen_khz)
                .unwrap()
                .log_mel(&[0.5; 100])
                .dim(),
            (49, 40)
        );
    }

    #[test]
    fn pure_tone_lands_in_the_nearest_mel_band() {
        let config = MfccConfig::default();
        let extractor = MfccExtractor::new(config.clone()).unwrap();
        for frequency_hz in [300.0f32, 1000.0, 2500.0] {
            let log_mel = extractor.log_mel(&tone(frequency_hz, &config));
            let middle_frame = log_mel.row(24);
            let loudest_band = (0..config.n_mels)
                .max_by(|&a, &b| middle_frame[a].total_cmp(&middle_frame[b]))
                .unwrap();
            let nearest_band = (0..config.n_mels)
                .min_by(|&a, &b| {
                    let centers = extractor.mel_band_centers_hz();
                    (centers[a] - frequency_hz)
                        .abs()
                        .total_cmp(&(centers[b] - frequency_hz).abs())
                })
                .unwrap();
            // The FFT bins are 31.25 Hz wide, while the lowest bands are narrower than a bin, so a tone can
            // peak in the neighbour of its nearest band; more than one band off would be a filter-bank bug.
            assert!(
                loudest_band.abs_diff(nearest_band) <= 1,
                "{frequency_hz} Hz: loudest band {loudest_band}, nearest centre band {nearest_band}"
            );
        }
    }

    #[test]
    fn silence_is_finite_and_constant() {
        let config = MfccConfig::default();
        let extractor = MfccExtractor::new(config).unwrap();
        let log_mel = extractor.log_mel(&[]);
        assert!(log_mel
            .iter()
            .all(|&value| (value - LOG_FLOOR.ln()).abs() < 1e-3));
    }

    #[test]
    fn window_fitting_pads_and_crops_centred() {
        assert_eq!(fit_to_window(&[1.0, 2.0], 4), vec![0.0, 1.0, 2.0, 0.0]);
        assert_eq!(
            fit_to_window(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2),
            vec![3.0, 4.0]
        );
        assert_eq!(fit_to_window(&[], 3), vec![0.0; 3]);
    }

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0f32, 100.0, 1000.0, 4000.0] {
            approx::assert_abs_diff_eq!(mel_to_hz(hz_to_mel(hz)), hz, epsilon = 1e-2);
        }
        approx::assert_abs_diff_eq!(hz_to_mel(1000.0), 1000.0, epsilon = 1.0);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let frame_too_long = MfccConfig {
            frame_length: 9000,
            ..MfccConfig::default()
        };
        assert!(MfccExtractor::new(frame_too_long).is_err());
        let above_nyquist = MfccConfig {
            high_hz: 5000.0,
            ..MfccConfig::default()
        };
        assert!(MfccExtractor::new(above_nyquist).is_err());
        let too_many = MfccConfig {
            n_coefficients: 41,
            ..MfccConfig::default()
        };
        assert!(MfccExtractor::new(too_many).is_err());
    }
}
