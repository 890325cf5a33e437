//! Complexity fits: `time = c0 + c1 · n^b` with a constant term, the exponent with a profile
//! interval, a plain log–log slope beside it, and local (doubling) exponents.
//!
//! A fit without a constant (Google Benchmark's) calls `20000 + 2n` O(1) over its linear range;
//! this one does not. Residuals are relative, because timing noise is multiplicative.

use crate::error::{check_finite, PerfError};
use crate::stats::{mean_and_std, student_t_quantile};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Result of [`fit_power_law`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplexityFit {
    /// Distinct sizes of the grid, ascending.
    pub sizes: Vec<f64>,
    /// Median time at each size.
    pub median_times: Vec<f64>,
    /// Fitted exponent b.
    pub exponent: f64,
    /// Profile-likelihood interval on b.
    pub exponent_ci: (f64, f64),
    /// Fitted constant c0 (≥ 0).
    pub constant: f64,
    /// Fitted coefficient c1 (> 0).
    pub coefficient: f64,
    /// Slope of log(time) on log(n) with an intercept, the simpler fit.
    pub loglog_slope: f64,
    /// Student-t interval on the log–log slope.
    pub loglog_slope_ci: (f64, f64),
    /// log2(t(n_{i+1}) / t(n_i)) / log2(n_{i+1} / n_i) between neighbouring sizes.
    pub local_exponents: Vec<f64>,
    /// Ratio t(n_{i+1}) / t(n_i) between neighbouring sizes (doubling ratios on a doubling grid).
    pub step_ratios: Vec<f64>,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Root mean square of the relative residuals at the best fit.
    pub relative_rms_residual: f64,
}

impl ComplexityFit {
    /// Whether `expected` lies inside the exponent's interval.
    pub fn is_consistent_with(&self, expected: f64) -> bool {
        self.exponent_ci.0 <= expected && expected <= self.exponent_ci.1
    }
}

/// Weighted least squares of `y = c0 + c1·x` with weights `1 / y²` (relative residuals), with
/// `c0 ≥ 0` enforced by refitting through the origin. Returns (c0, c1, relative RSS).
fn relative_linear_fit(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let mut sw = 0.0;
    let mut swx = 0.0;
    let mut swy = 0.0;
    let mut swxx = 0.0;
    let mut swxy = 0.0;
    for (&xi, &yi) in x.iter().zip(y) {
        let w = 1.0 / (yi * yi);
        sw += w;
        swx += w * xi;
        swy += w * yi;
        swxx += w * xi * xi;
        swxy += w * xi * yi;
    }
    let determinant = sw * swxx - swx * swx;
    let (mut c0, mut c1) = if determinant.abs() > f64::MIN_POSITIVE {
        (
            (swy * swxx - swx * swxy) / determinant,
            (sw * swxy - swx * swy) / determinant,
        )
    } else {
        (0.0, swxy / swxx)
    };
    if c0 < 0.0 || c1 <= 0.0 {
        // Through the origin: minimise Σ w (y − c1 x)².
        c0 = 0.0;
        c1 = (swxy / swxx).max(f64::MIN_POSITIVE);
    }
    let rss = x
        .iter()
        .zip(y)
        .map(|(&xi, &yi)| ((yi - c0 - c1 * xi) / yi).powi(2))
        .sum();
    (c0, c1, rss)
}

/// Fit `time = c0 + c1 · n^b` to `(size, time)` points; several points per size are welcome
/// (they add residual degrees of freedom).
///
/// The exponent is found by profiling b over [0, 4] (linear least squares for c0, c1 at each b);
/// its interval is `{b : RSS(b) ≤ RSS_min · (1 + F(1, ν) / ν)}` with ν = points − 3.
///
/// # Errors
/// `NonFinite` / `Empty` for bad data, `InvalidInput` for non-positive sizes or times or unequal
/// lengths, `InsufficientSamples` for fewer than 3 distinct sizes or fewer than 4 points.
pub fn fit_power_law(
    sizes: &[f64],
    times: &[f64],
    confidence: f64,
) -> Result<ComplexityFit, PerfError> {
    check_finite("complexity sizes", sizes)?;
    check_finite("complexity times", times)?;
    if sizes.len() != times.len() {
        return Err(PerfError::InvalidInput(format!(
            "sizes and times differ in length: {} vs {}",
            sizes.len(),
            times.len()
        )));
    }
    if sizes.iter().chain(times).any(|&v| v <= 0.0) {
        return Err(PerfError::InvalidInput(
            "sizes and times must be positive".into(),
        ));
    }
    let mut distinct: Vec<f64> = sizes.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 || sizes.len() < 4 {
        return Err(PerfError::InsufficientSamples {
            what: "complexity fit (distinct sizes ≥ 3, points ≥ 4)".into(),
            needed: 4,
            have: sizes.len().min(distinct.len()),
        });
    }
    let rss_at = |b: f64| -> (f64, f64, f64) {
        let x: Vec<f64> = sizes.iter().map(|n| n.powf(b)).collect();
        relative_linear_fit(&x, times)
    };
    // Coarse grid, then golden-section refinement around the best grid point.
    const LOW: f64 = 0.0;
    const HIGH: f64 = 4.0;
    const STEP: f64 = 0.005;
    let grid: Vec<f64> = (0..=((HIGH - LOW) / STEP) as usize)
        .map(|i| LOW + i as f64 * STEP)
        .collect();
    let profile: Vec<f64> = grid.iter().map(|&b| rss_at(b).2).collect();
    let best_index = (0..grid.len())
        .min_by(|&i, &j| profile[i].total_cmp(&profile[j]))
        .unwrap_or(0);
    let (mut lo, mut hi) = (
        grid[best_index.saturating_sub(1)],
        grid[(best_index + 1).min(grid.len() - 1)],
    );
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let m1 = hi - golden * (hi - lo);
        let m2 = lo + golden * (hi - lo);
        if rss_at(m1).2 <= rss_at(m2).2 {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    let exponent = (lo + hi) / 2.0;
    let (constant, coefficient, rss_min) = rss_at(exponent);
    let residual_df = (sizes.len() - 3).max(1) as f64;
    let f_quantile = FisherSnedecor::new(1.0, residual_df)
        .map_err(|e| PerfError::InvalidInput(format!("F distribution: {e}")))?
        .inverse_cdf(confidence);
    // Guard against an exact fit (RSS 0) giving a zero-width interval: floor at machine precision.
    let cutoff = rss_min.max(1e-24) * (1.0 + f_quantile / residual_df);
    let inside: Vec<f64> = grid
        .iter()
        .zip(&profile)
        .filter(|(_, &rss)| rss <= cutoff)
        .map(|(&b, _)| b)
        .collect();
    let exponent_ci = (
        inside.first().copied().unwrap_or(exponent).min(exponent),
        inside.last().copied().unwrap_or(exponent).max(exponent),
    );

    // Log–log slope with intercept and its t-interval.
    let log_n: Vec<f64> = sizes.iter().map(|n| n.ln()).collect();
    let log_t: Vec<f64> = times.iter().map(|t| t.ln()).collect();
    let (mean_x, _) = mean_and_std(&log_n);
    let (mean_y, _) = mean_and_std(&log_t);
    let sxx: f64 = log_n.iter().map(|x| (x - mean_x).powi(2)).sum();
    let sxy: f64 = log_n
        .iter()
        .zip(&log_t)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let loglog_rss: f64 = log_n
        .iter()
        .zip(&log_t)
        .map(|(x, y)| (y - intercept - slope * x).powi(2))
        .sum();
    let slope_df = (sizes.len() - 2) as f64;
    let slope_se = (loglog_rss / slope_df / sxx).sqrt();
    let t = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, slope_df)?;

    let median_times: Vec<f64> = distinct
        .iter()
        .map(|&size| {
            let at: Vec<f64> = sizes
                .iter()
                .zip(times)
                .filter(|(&s, _)| s == size)
                .map(|(_, &t)| t)
                .collect();
            crate::stats::median(&at).unwrap_or(f64::NAN)
        })
        .collect();
    let step_ratios: Vec<f64> = median_times.windows(2).map(|w| w[1] / w[0]).collect();
    let local_exponents: Vec<f64> = distinct
        .windows(2)
        .zip(&step_ratios)
        .map(|(n, ratio)| ratio.ln() / (n[1] / n[0]).ln())
        .collect();

    Ok(ComplexityFit {
        sizes: distinct,
        median_times,
        exponent,
        exponent_ci,
        constant,
        coefficient,
        loglog_slope: slope,
        loglog_slope_ci: (slope - t * slope_se, slope + t * slope_se),
        local_exponents,
        step_ratios,
        confidence,
        relative_rms_residual: (rss_min / sizes.len() as f64).sqrt(),
    })
}

/// A geometric grid of `points` sizes from `first` to `last` inclusive, rounded to integers, deduplicated.
pub fn geometric_grid(first: usize, last: usize, points: usize) -> Vec<usize> {
    if points < 2 || first == 0 || last <= first {
        return vec![first.max(1)];
    }
    let ratio = (last as f64 / first as f64).powf(1.0 / (points - 1) as f64);
    let mut grid: Vec<usize> = (0..points)
        .map(|i| (first as f64 * ratio.powi(i as i32)).round() as usize)
        .collect();
    grid.dedup();
    grid
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn synthetic(c0: f64, c1: f64, b: f64, noise: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sizes = Vec::new();
        let mut times = Vec::new();
        for exponent in 4..=14 {
            let n = f64::from(1u32 << exponent);
            for _ in 0..5 {
                let jitter = 1.0 + noise * (2.0 * rng.random::<f64>() - 1.0);
                sizes.push(n);
                times.push((c0 + c1 * n.powf(b)) * jitter);
            }
        }
        (sizes, times)
    }

    #[test]
    fn recovers_linear_under_a_large_constant() {
        for seed in 0..5 {
            let (sizes, times) = synthetic(20_000.0, 2.0, 1.0, 0.03, seed);
            let fit = fit_power_law(&sizes, &times, 0.95).unwrap();
            assert!(
                (fit.exponent - 1.0).abs() <= 0.1,
                "seed {seed}: b = {}",
                fit.exponent
            );
            assert!(
                fit.is_consistent_with(1.0),
                "seed {seed}: {:?}",
                fit.exponent_ci
            );
            // The naive log–log slope is dragged far below 1 by the constant.
            assert!(fit.loglog_slope < 0.8, "log-log slope {}", fit.loglog_slope);
        }
    }

    #[test]
    fn recovers_quadratic_under_a_large_constant() {
        for seed in 0..5 {
            let (sizes, times) = synthetic(1.0e6, 0.5, 2.0, 0.03, seed + 100);
            let fit = fit_power_law(&sizes, &times, 0.95).unwrap();
            assert!(
                (fit.exponent - 2.0).abs() <= 0.1,
                "seed {seed}: b = {}",
                fit.exponent
            );
            assert!(fit.is_consistent_with(2.0));
            assert!(!fit.is_consistent_with(1.0));
        }
    }

    #[test]
    fn exact_data_gives_a_tight_interval_and_doubling_ratios() {
        let sizes: Vec<f64> = (0..6).map(|i| f64::from(32u32 << i)).collect();
        let times: Vec<f64> = sizes.iter().map(|n| 3.0 * n * n).collect();
        let fit = fit_power_law(&sizes, &times, 0.95).unwrap();
        assert!((fit.exponent - 2.0).abs() < 1e-3);
        assert!(fit.exponent_ci.1 - fit.exponent_ci.0 < 0.02);
        for ratio in &fit.step_ratios {
            assert!((ratio - 4.0).abs() < 1e-9);
        }
        for local in &fit.local_exponents {
            assert!((local - 2.0).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(fit_power_law(&[], &[], 0.95).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 4.0, 8.0], &[1.0, 2.0, f64::NAN, 8.0], 0.95).is_err());
        assert!(fit_power_law(&[1.0, 2.0, 4.0, 8.0], &[1.0, 2.0, 0.0, 8.0], 0.95).is_err());
        assert!(fit_power_law(&[1.0, 1.0, 2.0, 2.0], &[1.0, 1.0, 2.0, 2.0], 0.95).is_err());
        assert!(fit_power_law(&[1.0, 2.0], &[1.0], 0.95).is_err());
    }

    #[test]
    fn geometric_grid_spans_its_ends() {
        assert_eq!(
            geometric_grid(32, 1024, 6),
            vec![32, 64, 128, 256, 512, 1024]
        );
        assert_eq!(geometric_grid(5, 5, 3), vec![5]);
    }
}
