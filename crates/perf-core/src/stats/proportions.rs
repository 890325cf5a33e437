//! Intervals on a binomial proportion (`successes` of `trials` independent trials): Clopper–Pearson, exact
//! and conservative, for verdicts; Wilson, close to nominal coverage, for reported accuracies.

use super::check_confidence;
use super::distributions::two_sided_normal_critical_value;
use crate::error::PerfError;
use statrs::distribution::ContinuousCDF;

fn check_counts(successes: u64, trials: u64, what: &str) -> Result<(), PerfError> {
    if trials == 0 || successes > trials {
        return Err(PerfError::InvalidInput(format!(
            "{what} needs 0 ≤ successes ≤ trials and trials > 0, got {successes} of {trials}"
        )));
    }
    Ok(())
}

/// Clopper–Pearson (exact) interval on a binomial proportion: `successes` of `trials`. Its coverage is at
/// least the nominal level for every true proportion, so a verdict resting on it is never optimistic.
///
/// # Errors
/// `InvalidInput` when `trials` is 0 or `successes > trials`; `InvalidConfig` for a bad level.
pub fn binomial_interval(
    successes: u64,
    trials: u64,
    confidence: f64,
) -> Result<(f64, f64), PerfError> {
    check_confidence(confidence)?;
    check_counts(successes, trials, "binomial interval")?;
    let tail = (1.0 - confidence) / 2.0;
    let (k, n) = (successes as f64, trials as f64);
    let beta_quantile = |a: f64, b: f64, p: f64| -> Result<f64, PerfError> {
        statrs::distribution::Beta::new(a, b)
            .map(|beta| beta.inverse_cdf(p))
            .map_err(|e| PerfError::InvalidInput(format!("beta({a}, {b}): {e}")))
    };
    let lower = if successes == 0 {
        0.0
    } else {
        beta_quantile(k, n - k + 1.0, tail)?
    };
    let upper = if successes == trials {
        1.0
    } else {
        beta_quantile(k + 1.0, n - k, 1.0 - tail)?
    };
    Ok((lower, upper))
}

/// Wilson score interval (Wilson 1927) on a binomial proportion: `successes` of `trials`, clamped to
/// [0, 1]. Its coverage stays close to nominal near 0 and 1 and at small `trials`, unlike the Wald
/// interval; unlike [`binomial_interval`] it is not guaranteed conservative (it dips to about 93% at some
/// `trials · p` for a nominal 95%).
///
/// # Errors
/// `InvalidInput` when `trials` is 0 or `successes > trials`; `InvalidConfig` for a bad level.
pub fn wilson_interval(
    successes: u64,
    trials: u64,
    confidence: f64,
) -> Result<(f64, f64), PerfError> {
    check_confidence(confidence)?;
    check_counts(successes, trials, "Wilson interval")?;
    let z = two_sided_normal_critical_value(confidence)?;
    let n = trials as f64;
    let p_hat = successes as f64 / n;
    let z_squared = z * z;
    let denominator = 1.0 + z_squared / n;
    let centre = (p_hat + z_squared / (2.0 * n)) / denominator;
    let half_width =
        z * (p_hat * (1.0 - p_hat) / n + z_squared / (4.0 * n * n)).sqrt() / denominator;
    Ok((
        (centre - half_width).max(0.0),
        (centre + half_width).min(1.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_published_values() {
        // 20 of 20: lower bound (0.025)^(1/20) = 0.8316; 0 of 10: upper 1 − 0.025^(1/10) = 0.3085.
        let (lower, upper) = binomial_interval(20, 20, 0.95).unwrap();
        assert!((lower - 0.025f64.powf(1.0 / 20.0)).abs() < 1e-6 && upper == 1.0);
        let (lower, upper) = binomial_interval(0, 10, 0.95).unwrap();
        assert!(lower == 0.0 && (upper - (1.0 - 0.025f64.powf(0.1))).abs() < 1e-6);
        // 5 of 10: [0.1871, 0.8129] (standard tables).
        let (lower, upper) = binomial_interval(5, 10, 0.95).unwrap();
        assert!(
            (lower - 0.1871).abs() < 1e-3 && (upper - 0.8129).abs() < 1e-3,
            "{lower} {upper}"
        );
        assert!(binomial_interval(3, 2, 0.95).is_err());
        assert!(binomial_interval(0, 0, 0.95).is_err());
    }
}
