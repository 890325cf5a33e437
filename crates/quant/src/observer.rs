//! Calibration observers: they watch real data and choose the range to quantize. Min–max, moving-average
//! min–max, percentile, MSE-optimal clipping and entropy (KL-divergence) histogram calibration.
//!
//! Every observer rejects NaN/inf (a typed error) and refuses to produce a range before it has seen data.

use crate::error::{check_finite, QuantError};
use crate::scheme::{QuantParams, QuantType, Scheme};

/// How an observer turns the data it has seen into a range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ObserverKind {
    /// The smallest and largest value seen.
    MinMax,
    /// Exponential moving average of each batch's min and max: `m ← m + momentum·(batch − m)`.
    MovingAverageMinMax {
        /// Weight of the newest batch, in (0, 1].
        momentum: f32,
    },
    /// The `percentile`-th and `(100 − percentile)`-th percentiles of the values seen (e.g. 99.99).
    Percentile {
        /// In (50, 100].
        percentile: f64,
    },
    /// The clipping range, shrunk from min–max, that minimises the mean squared quantization error of the data.
    Mse,
    /// TensorRT-style: the clipping threshold on |x| whose quantized histogram has the smallest KL divergence
    /// from the data's histogram.
    Entropy {
        /// Histogram bins (≥ 256; 2048 is the usual choice).
        bins: usize,
    },
}

impl ObserverKind {
    /// Stable short name.
    pub fn name(self) -> &'static str {
        match self {
            ObserverKind::MinMax => "min-max",
            ObserverKind::MovingAverageMinMax { .. } => "moving-average-min-max",
            ObserverKind::Percentile { .. } => "percentile",
            ObserverKind::Mse => "mse",
            ObserverKind::Entropy { .. } => "entropy",
        }
    }

    /// Whether the observer keeps the values it sees (percentile, MSE and entropy need the distribution).
    fn keeps_values(self) -> bool {
        matches!(
            self,
            ObserverKind::Percentile { .. } | ObserverKind::Mse | ObserverKind::Entropy { .. }
        )
    }
}

/// A calibration observer. Feed it batches with [`Observer::observe`], then ask for [`Observer::params`].
#[derive(Debug, Clone)]
pub struct Observer {
    kind: ObserverKind,
    min: f32,
    max: f32,
    average_min: f32,
    average_max: f32,
    n_batches: usize,
    values: Vec<f32>,
}

impl Observer {
    /// A fresh observer.
    ///
    /// # Errors
    /// [`QuantError::InvalidParameter`] for a momentum outside (0, 1], a percentile outside (50, 100], fewer
    /// than 256 entropy bins.
    pub fn new(kind: ObserverKind) -> Result<Self, QuantError> {
        match kind {
            ObserverKind::MovingAverageMinMax { momentum }
                if !(momentum > 0.0 && momentum <= 1.0) =>
            {
                return Err(QuantError::InvalidParameter {
                    what: "momentum",
                    reason: format!("{momentum} is outside (0, 1]"),
                })
            }
            ObserverKind::Percentile { percentile }
                if !(percentile > 50.0 && percentile <= 100.0) =>
            {
                return Err(QuantError::InvalidParameter {
                    what: "percentile",
                    reason: format!("{percentile} is outside (50, 100]"),
                })
            }
            ObserverKind::Entropy { bins } if bins < 256 => {
                return Err(QuantError::InvalidParameter {
                    what: "bins",
                    reason: format!("{bins} < 256"),
                })
            }
            _ => {}
        }
        Ok(Observer {
            kind,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            average_min: 0.0,
            average_max: 0.0,
            n_batches: 0,
            values: Vec::new(),
        })
    }

    /// The observer's kind.
    pub fn kind(&self) -> ObserverKind {
        self.kind
    }

    /// Records one batch. An empty batch is ignored.
    ///
    /// # Errors
    /// [`QuantError::NonFinite`] when the batch holds NaN or ±inf; the observer is left unchanged.
    pub fn observe(&mut self, batch: &[f32]) -> Result<(), QuantError> {
        check_finite("calibration batch", batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let (batch_min, batch_max) = batch
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        self.min = self.min.min(batch_min);
        self.max = self.max.max(batch_max);
        if let ObserverKind::MovingAverageMinMax { momentum } = self.kind {
            if self.n_batches == 0 {
                (self.average_min, self.average_max) = (batch_min, batch_max);
            } else {
                self.average_min += momentum * (batch_min - self.average_min);
                self.average_max += momentum * (batch_max - self.average_max);
            }
        }
        if self.kind.keeps_values() {
            self.values.extend_from_slice(batch);
        }
        self.n_batches += 1;
        Ok(())
    }

    /// Batches seen.
    pub fn n_batches(&self) -> usize {
        self.n_batches
    }

    /// The calibrated range `[low, high]` (the clipping observers, MSE and entropy, return it extended to
    /// contain 0; the others return the data's own bounds, extended by [`QuantParams::from_range`]).
    ///
    /// # Errors
    /// [`QuantError::NoCalibrationData`] when nothing was observed.
    pub fn range(&self, scheme: Scheme, qtype: QuantType) -> Result<(f32, f32), QuantError> {
        if self.n_batches == 0 {
            return Err(QuantError::NoCalibrationData {
                observer: self.kind.name(),
            });
        }
        Ok(match self.kind {
            ObserverKind::MinMax => (self.min, self.max),
            ObserverKind::MovingAverageMinMax { .. } => (self.average_min, self.average_max),
            ObserverKind::Percentile { percentile } => {
                let mut sorted = self.values.clone();
                sorted.sort_unstable_by(f32::total_cmp);
                (
                    quantile_sorted(&sorted, 1.0 - percentile / 100.0),
                    quantile_sorted(&sorted, percentile / 100.0),
                )
            }
            ObserverKind::Mse => mse_range(&self.values, self.min, self.max, scheme, qtype)?,
            ObserverKind::Entropy { bins } => {
                let (_, qmax) = qtype.full_range();
                let levels = match scheme {
                    Scheme::Symmetric => (qmax + 1).clamp(2, 128) as usize,
                    Scheme::Affine => 128,
                };
                let threshold = entropy_threshold(&self.values, bins, levels.min(bins));
                clip_to_threshold(self.min, self.max, threshold)
            }
        })
    }

    /// Quantization parameters for the calibrated range.
    ///
    /// # Errors
    /// As [`Observer::range`] and [`QuantParams::from_range`].
    pub fn params(&self, scheme: Scheme, qtype: QuantType) -> Result<QuantParams, QuantError> {
        let (low, high) = self.range(scheme, qtype)?;
        QuantParams::from_range(low, high, scheme, qtype)
    }
}

/// `[min, max]` clipped to `[−t, t]`, extended to contain 0 (as every range is before quantization). Data
/// that lies entirely beyond `t` on one side clips to `[0, t]` or `[−t, 0]`, never to an inverted range.
fn clip_to_threshold(min: f32, max: f32, threshold: f32) -> (f32, f32) {
    let threshold = threshold.abs();
    (
        min.clamp(-threshold, threshold).min(0.0),
        max.clamp(-threshold, threshold).max(0.0),
    )
}

/// Linear-interpolated quantile of sorted values, `q` in [0, 1].
fn quantile_sorted(sorted: &[f32], q: f64) -> f32 {
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (below, fraction) = (position.floor() as usize, position.fract());
    let above = (below + 1).min(sorted.len() - 1);
    (f64::from(sorted[below]) + fraction * (f64::from(sorted[above]) - f64::from(sorted[below])))
        as f32
}

/// At most this many values enter the MSE search (a deterministic stride over the data), to bound its cost.
const MSE_MAX_VALUES: usize = 1 << 15;

fn mse_range(
    values: &[f32],
    min: f32,
    max: f32,
    scheme: Scheme,
    qtype: QuantType,
) -> Result<(f32, f32), QuantError> {
    let stride = values.len().div_ceil(MSE_MAX_VALUES).max(1);
    let subset: Vec<f32> = values.iter().step_by(stride).copied().collect();
    let amax = min.abs().max(max.abs());
    let mut best = (f64::INFINITY, min, max);
    // Candidate clipping thresholds on a geometric grid from amax down to amax / 2^14 (eight per octave), so
    // that a single far outlier can be clipped down to the bulk of the data. The range is min–max clipped to
    // [−t, t]: only the side that extends beyond t moves.
    for step in 0..=112 {
        let threshold = amax * 0.5f32.powf(step as f32 / 8.0);
        let (low, high) = clip_to_threshold(min, max, threshold);
        let params = QuantParams::from_range(low, high, scheme, qtype)?;
        let error: f64 = subset
            .iter()
            .map(|&v| {
                let e = f64::from(params.dequantize_value(params.quantize_value(v)) - v);
                e * e
            })
            .sum();
        if error < best.0 {
            best = (error, low, high);
        }
    }
    Ok((best.1, best.2))
}

/// The |x| threshold minimising KL(P ‖ Q) between the clipped histogram P and its `levels`-level quantized
/// version Q (the TensorRT calibration algorithm).
fn entropy_threshold(values: &[f32], bins: usize, levels: usize) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        return 0.0;
    }
    let width = amax / bins as f32;
    let mut histogram = vec![0f64; bins];
    for &v in values {
        let bin = ((v.abs() / width) as usize).min(bins - 1);
        histogram[bin] += 1.0;
    }
    let mut best = (f64::INFINITY, bins);
    let mut reference = vec![0f64; bins];
    let mut candidate = vec![0f64; bins];
    for end in levels..=bins {
        // P: the first `end` bins with the clipped tail folded into the last one.
        reference[..end].copy_from_slice(&histogram[..end]);
        reference[end - 1] += histogram[end..].iter().sum::<f64>();
        // Q: merge the `end` bins into `levels` groups, spreading each group's mass over its non-empty bins.
        for level in 0..levels {
            let start = level * end / levels;
            let stop = ((level + 1) * end / levels).max(start + 1).min(end);
            let mass: f64 = histogram[start..stop].iter().sum();
            let nonzero = histogram[start..stop].iter().filter(|&&c| c > 0.0).count();
            for (slot, &count) in candidate[start..stop]
                .iter_mut()
                .zip(&histogram[start..stop])
            {
                *slot = if count > 0.0 {
                    mass / nonzero as f64
                } else {
                    0.0
                };
            }
        }
        let (p_total, q_total): (f64, f64) =
            (reference[..end].iter().sum(), candidate[..end].iter().sum());
        if p_total == 0.0 || q_total == 0.0 {
            continue;
        }
        let mut divergence = 0.0;
        for (&p_count, &q_count) in reference[..end].iter().zip(&candidate[..end]) {
            let p = p_count / p_total;
            if p == 0.0 {
                continue;
            }
            // A bin of P with mass where Q has none (only the folded last bin can be so) gets a small floor.
            let q = (q_count / q_total).max(1e-12);
            divergence += p * (p / q).ln();
        }
        if divergence < best.0 {
            best = (divergence, end);
        }
    }
    (best.1 as f32 + 0.5).min(bins as f32) * width
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<ObserverKind> {
        vec![
            ObserverKind::MinMax,
            ObserverKind::MovingAverageMinMax { momentum: 0.1 },
            ObserverKind::Percentile { percentile: 99.0 },
            ObserverKind::Mse,
            ObserverKind::Entropy { bins: 512 },
        ]
    }

    #[test]
    fn no_data_and_non_finite_data_are_errors() {
        for kind in all_kinds() {
            let mut observer = Observer::new(kind).unwrap();
            assert!(matches!(
                observer.params(Scheme::Affine, QuantType::Uint8),
                Err(QuantError::NoCalibrationData { .. })
            ));
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                assert!(matches!(
                    observer.observe(&[1.0, bad]),
                    Err(QuantError::NonFinite { index: 1, .. })
                ));
            }
            assert_eq!(observer.n_batches(), 0);
        }
        assert!(Observer::new(ObserverKind::Percentile { percentile: 40.0 }).is_err());
        assert!(Observer::new(ObserverKind::MovingAverageMinMax { momentum: 0.0 }).is_err());
        assert!(Observer::new(ObserverKind::Entropy { bins: 8 }).is_err());
    }

    #[test]
    fn calibration_data_is_used() {
        // Two different data sets must give two different ranges for every observer.
        let narrow: Vec<f32> = (0..4000)
            .map(|i| ((i % 200) as f32 - 100.0) / 100.0)
            .collect();
        let wide: Vec<f32> = narrow.iter().map(|v| v * 7.0).collect();
        for kind in all_kinds() {
            let range_of = |data: &[f32]| {
                let mut observer = Observer::new(kind).unwrap();
                observer.observe(data).unwrap();
                observer.range(Scheme::Symmetric, QuantType::Int8).unwrap()
            };
            let (narrow_range, wide_range) = (range_of(&narrow), range_of(&wide));
            assert!(
                wide_range.1 > 3.0 * narrow_range.1,
                "{kind:?}: {narrow_range:?} {wide_range:?}"
            );
        }
    }

    #[test]
    fn clipping_observers_ignore_one_outlier_that_min_max_keeps() {
        let mut data: Vec<f32> = (0..20_000)
            .map(|i| ((i * 7919 % 2001) as f32 - 1000.0) / 1000.0)
            .collect();
        data.push(100.0);
        let kinds = [
            ObserverKind::MinMax,
            ObserverKind::MovingAverageMinMax { momentum: 0.1 },
            ObserverKind::Percentile { percentile: 99.9 },
            ObserverKind::Entropy { bins: 2048 },
        ];
        for kind in kinds {
            let mut observer = Observer::new(kind).unwrap();
            observer.observe(&data).unwrap();
            let (_, high) = observer.range(Scheme::Symmetric, QuantType::Int8).unwrap();
            match kind {
                ObserverKind::MinMax | ObserverKind::MovingAverageMinMax { .. } => {
                    assert_eq!(high, 100.0)
                }
                _ => assert!(high < 50.0, "{kind:?} kept the outlier: {high}"),
            }
        }
    }

    #[test]
    fn mse_clipping_never_loses_to_min_max() {
        // MSE weighs the clipped outlier's own error too, so it may keep it; but its range never has a larger
        // error than min–max, which is one of its candidates. Heavy-tailed data: it clips.
        let data: Vec<f32> = (1..5000)
            .map(|i| {
                let u = i as f32 / 5000.0;
                (u / (1.0 - u)).ln() * if i % 2 == 0 { 1.0 } else { -1.0 }
            })
            .collect();
        let error_of = |kind| {
            let mut observer = Observer::new(kind).unwrap();
            observer.observe(&data).unwrap();
            let params = observer.params(Scheme::Symmetric, QuantType::Int8).unwrap();
            data.iter()
                .map(|&v| (params.dequantize_value(params.quantize_value(v)) - v).powi(2))
                .sum::<f32>()
        };
        let (mse, min_max) = (error_of(ObserverKind::Mse), error_of(ObserverKind::MinMax));
        assert!(mse <= min_max, "{mse} > {min_max}");
    }

    #[test]
    fn clipping_observers_handle_data_far_from_zero() {
        // Uniform on [3, 7]: a clipping threshold below 3 must not produce an inverted range.
        let data: Vec<f32> = (0..5000).map(|i| 3.0 + 4.0 * (i as f32 / 5000.0)).collect();
        for kind in all_kinds() {
            let mut observer = Observer::new(kind).unwrap();
            observer.observe(&data).unwrap();
            for scheme in [Scheme::Symmetric, Scheme::Affine] {
                let (low, high) = observer.range(scheme, QuantType::Int8).unwrap();
                assert!(
                    low <= high && high > 2.0,
                    "{kind:?} {scheme:?}: [{low}, {high}]"
                );
                assert!(observer.params(scheme, QuantType::Int8).is_ok());
            }
        }
    }

    #[test]
    fn moving_average_follows_batches() {
        let mut observer =
            Observer::new(ObserverKind::MovingAverageMinMax { momentum: 0.5 }).unwrap();
        observer.observe(&[-1.0, 1.0]).unwrap();
        observer.observe(&[-3.0, 3.0]).unwrap();
        assert_eq!(
            observer.range(Scheme::Affine, QuantType::Uint8).unwrap(),
            (-2.0, 2.0)
        );
    }
}
