//! MLPerf LoadGen's early-stopping estimate of a latency percentile: the latency bound that, by an exact
//! binomial test, a run of `n` queries shows to hold for the `p` quantile with the stated confidence.
//!
//! The rule, as LoadGen applies it to SingleStream (`loadgen/early_stopping.cc` and `results.cc`, tolerance
//! 0): call a query "overlatency" when its latency is at or above a candidate bound. With `n` queries, `t`
//! overlatency queries are tolerated when `P(B ≤ t) < 1 − confidence` for `B ~ Binomial(n, 1 − p)`; the
//! largest such `t` is taken and the reported estimate is the `(n − t + 1)`-th smallest latency (the `t − 1`
//! highest are discarded, and the query at the estimate itself counts as overlatency). No estimate exists
//! when not even `t = 1` passes: the minimum query count is the smallest `n` with `P(B ≤ 1) < 1 − confidence`
//! (64 for p90 and 662 for p99 at 99%).
//!
//! Why it bounds the quantile: the estimate lies below the true `p` quantile `q` only when at most `t − 1`
//! of the `n` latencies are at or above `q`, an event of probability `P(B ≤ t − 1) ≤ P(B ≤ t) < 1 −
//! confidence` for continuous latencies. Counting the estimate's own query among the overlatency ones
//! makes LoadGen's rank one order statistic more conservative than the bare binomial bound `X_(n − t)`
//! would be (which would need only 44 queries for p90 at 99%); this module reproduces LoadGen's rule.

use super::check_confidence;
use crate::error::{check_finite, PerfError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};

/// LoadGen's early-stopping estimate of one percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingEstimate {
    /// The percentile, in percent (90 for p90).
    pub percentile: f64,
    /// One-sided confidence of the bound.
    pub confidence: f64,
    /// Latencies it was computed from.
    pub n_queries: usize,
    /// Overlatency queries tolerated (`t`), the query at the estimate included.
    pub overlatency_tolerated: usize,
    /// 1-based rank of the estimate among the sorted latencies, `n − t + 1`.
    pub rank: usize,
    /// The estimate, in the latencies' unit.
    pub value: f64,
    /// The smallest query count for which the rule gives any estimate at this percentile and confidence.
    pub min_queries: usize,
    /// The plain order statistic at the percentile (`X_(⌈p·n⌉)`), for comparison.
    pub plain: f64,
}

fn check_level(percentile: f64, confidence: f64) -> Result<(), PerfError> {
    check_confidence(confidence)?;
    if !(percentile.is_finite() && 0.0 < percentile && percentile < 100.0) {
        return Err(PerfError::InvalidConfig(format!(
            "percentile must lie in (0, 100), got {percentile}"
        )));
    }
    Ok(())
}

/// `P(B ≤ k)` for `B ~ Binomial(n, exceed)`.
fn tail_cdf(n: usize, exceed: f64, k: usize) -> Result<f64, PerfError> {
    let binomial = Binomial::new(exceed, n as u64)
        .map_err(|error| PerfError::InvalidConfig(format!("binomial({n}, {exceed}): {error}")))?;
    Ok(binomial.cdf(k as u64))
}

/// The overlatency queries LoadGen tolerates among `n_queries` at the `percentile` (in percent) and
/// one-sided `confidence`: the largest `t ≥ 1` with `P(Binomial(n, 1 − p) ≤ t) < 1 − confidence`, or `None`
/// when even `t = 1` fails (too few queries).
///
/// # Errors
/// A percentile outside (0, 100) or a confidence outside (0, 1).
pub fn early_stopping_overlatency_tolerated(
    n_queries: usize,
    percentile: f64,
    confidence: f64,
) -> Result<Option<usize>, PerfError> {
    check_level(percentile, confidence)?;
    if n_queries < 2 {
        return Ok(None);
    }
    let exceed = 1.0 - percentile / 100.0;
    let alpha = 1.0 - confidence;
    if tail_cdf(n_queries, exceed, 1)? >= alpha {
        return Ok(None);
    }
    // The CDF grows with t: binary search for the last t that still passes, in [1, n].
    let (mut passing, mut failing) = (1usize, n_queries + 1);
    while failing - passing > 1 {
        let middle = passing + (failing - passing) / 2;
        if tail_cdf(n_queries, exceed, middle)? < alpha {
            passing = middle;
        } else {
            failing = middle;
        }
    }
    Ok(Some(passing))
}

/// The smallest query count for which LoadGen's rule gives an estimate at the `percentile` (in percent)
/// and one-sided `confidence`: the smallest `n` with `P(Binomial(n, 1 − p) ≤ 1) < 1 − confidence`.
///
/// # Errors
/// A percentile outside (0, 100) or a confidence outside (0, 1).
pub fn early_stopping_min_queries(percentile: f64, confidence: f64) -> Result<usize, PerfError> {
    check_level(percentile, confidence)?;
    let exceed = 1.0 - percentile / 100.0;
    let alpha = 1.0 - confidence;
    // P(B ≤ 1) falls with n; double to bracket, then bisect.
    let mut high = 2usize;
    while tail_cdf(high, exceed, 1)? >= alpha {
        high = high.checked_mul(2).ok_or_else(|| {
            PerfError::InvalidConfig(format!(
                "no query count reaches p{percentile} at {confidence}"
            ))
        })?;
    }
    let mut low = high / 2; // fails (or is 1)
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if tail_cdf(middle, exceed, 1)? < alpha {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(high)
}

/// LoadGen's early-stopping estimate of the `percentile` (in percent) of `latencies` at one-sided
/// `confidence` (see the module docs).
///
/// # Errors
/// An empty or non-finite sample, a percentile or confidence out of range, and
/// [`PerfError::InsufficientSamples`] (with the minimum) when the rule gives no estimate.
pub fn early_stopping_percentile(
    latencies: &[f64],
    percentile: f64,
    confidence: f64,
) -> Result<EarlyStoppingEstimate, PerfError> {
    check_finite("early-stopping latencies", latencies)?;
    check_level(percentile, confidence)?;
    let min_queries = early_stopping_min_queries(percentile, confidence)?;
    let n_queries = latencies.len();
    let Some(tolerated) = early_stopping_overlatency_tolerated(n_queries, percentile, confidence)?
    else {
        return Err(PerfError::InsufficientSamples {
            what: format!("early-stopping p{percentile} at {confidence} confidence"),
            needed: min_queries,
            have: n_queries,
        });
    };
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = n_queries - tolerated + 1;
    let plain_rank = ((percentile / 100.0) * n_queries as f64).ceil().max(1.0) as usize;
    Ok(EarlyStoppingEstimate {
        percentile,
        confidence,
        n_queries,
        overlatency_tolerated: tolerated,
        rank,
        value: sorted[rank - 1],
        min_queries,
        plain: sorted[plain_rank.min(n_queries) - 1],
    })
}

/// The share of simulated runs whose early-stopping p90 (at 99%) is at or above the true p90, for one
/// latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatedCoverage {
    /// The distribution, in words.
    pub distribution: String,
    /// Queries per simulated run.
    pub n_queries: usize,
    /// Simulated runs.
    pub trials: usize,
    /// Runs whose estimate was at or above the true p90, as a fraction.
    pub covered_fraction: f64,
}

/// A latency distribution with a known p90, for the coverage simulation.
trait SimulatedLatency {
    fn name(&self) -> String;
    fn draw(&self, rng: &mut StdRng) -> f64;
    fn true_p90(&self) -> f64;
}

/// Log-normal, μ = 0, σ = 0.5 (a skewed single mode).
struct LogNormalLatency;

impl SimulatedLatency for LogNormalLatency {
    fn name(&self) -> String {
        "log-normal (σ = 0.5)".into()
    }
    fn draw(&self, rng: &mut StdRng) -> f64 {
        // Box–Muller standard normal, then exp(σ z).
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (0.5 * z).exp()
    }
    fn true_p90(&self) -> f64 {
        // z₀.₉ = 1.2815515655446004.
        (0.5 * 1.281_551_565_544_600_4_f64).exp()
    }
}

/// Bimodal: 80% uniform on [0.9, 1.1], 20% uniform on [2.9, 3.1] (a slow mode above the p90's mass);
/// `P(X ≤ 3.0) = 0.8 + 0.2 · 0.5 = 0.9`.
struct BimodalLatency;

impl SimulatedLatency for BimodalLatency {
    fn name(&self) -> String {
        "bimodal (80% at 1 ± 0.1, 20% at 3 ± 0.1)".into()
    }
    fn draw(&self, rng: &mut StdRng) -> f64 {
        let base = if rng.random::<f64>() < 0.8 { 0.9 } else { 2.9 };
        base + 0.2 * rng.random::<f64>()
    }
    fn true_p90(&self) -> f64 {
        3.0
    }
}

/// Validation by simulation: over `trials` seeded runs of `n_queries` latencies from a log-normal and a
/// bimodal distribution, the share whose early-stopping p90 at 99% is at or above the true p90 (nominally
/// at least 0.99).
///
/// # Errors
/// `n_queries` below the rule's minimum (64), or `trials == 0`.
pub fn simulate_early_stopping_coverage(
    n_queries: usize,
    trials: usize,
    seed: u64,
) -> Result<Vec<SimulatedCoverage>, PerfError> {
    if trials == 0 {
        return Err(PerfError::InvalidConfig(
            "at least one simulated run".into(),
        ));
    }
    let distributions: [&dyn SimulatedLatency; 2] = [&LogNormalLatency, &BimodalLatency];
    let Some(tolerated) = early_stopping_overlatency_tolerated(n_queries, 90.0, 0.99)? else {
        return Err(PerfError::InsufficientSamples {
            what: "early-stopping p90 at 0.99 confidence".into(),
            needed: early_stopping_min_queries(90.0, 0.99)?,
            have: n_queries,
        });
    };
    // The rank depends on n alone: the estimate of each run is its (n − t + 1)-th smallest latency.
    let rank = n_queries - tolerated + 1;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut latencies = vec![0.0; n_queries];
    let mut rates = Vec::new();
    for distribution in distributions {
        let true_p90 = distribution.true_p90();
        let mut covered = 0usize;
        for _ in 0..trials {
            for latency in &mut latencies {
                *latency = distribution.draw(&mut rng);
            }
            let (_, estimate, _) = latencies.select_nth_unstable_by(rank - 1, f64::total_cmp);
            if *estimate >= true_p90 {
                covered += 1;
            }
        }
        rates.push(SimulatedCoverage {
            distribution: distribution.name(),
            n_queries,
            trials,
            covered_fraction: covered as f64 / trials as f64,
        });
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LoadGen's loop, written plainly: `P(B ≤ t)` for `B ~ Binomial(n, 1 − p)` as a running sum of the
    /// mass function (computed in logs), `t` from 1 up while the next one still passes.
    fn plain_tolerated(n: usize, p: f64, confidence: f64) -> Option<usize> {
        let q = 1.0 - p;
        let mut ln_factorial = vec![0.0f64; n + 1];
        for i in 1..=n {
            ln_factorial[i] = ln_factorial[i - 1] + (i as f64).ln();
        }
        let mass = |x: usize| {
            (ln_factorial[n] - ln_factorial[x] - ln_factorial[n - x]
                + x as f64 * q.ln()
                + (n - x) as f64 * (1.0 - q).ln())
            .exp()
        };
        let mut cdf = mass(0) + mass(1);
        if cdf >= 1.0 - confidence {
            return None;
        }
        let mut t = 1;
        while t < n && cdf + mass(t + 1) < 1.0 - confidence {
            cdf += mass(t + 1);
            t += 1;
        }
        Some(t)
    }

    #[test]
    fn matches_a_table_computed_with_a_plain_binomial() {
        // (percentile, n, t) computed by summing the binomial mass function (the plain reference below
        // reproduces it): LoadGen's tolerated overlatency count.
        let table: [(f64, usize, Option<usize>); 16] = [
            (90.0, 63, None),
            (90.0, 64, Some(1)),
            (90.0, 65, Some(1)),
            (90.0, 100, Some(3)),
            (90.0, 256, Some(14)),
            (90.0, 400, Some(26)),
            (90.0, 1000, Some(78)),
            (90.0, 1024, Some(80)),
            (90.0, 4096, Some(365)),
            (99.0, 661, None),
            (99.0, 662, Some(1)),
            (99.0, 663, Some(1)),
            (99.0, 1000, Some(2)),
            (99.0, 2000, Some(9)),
            (99.0, 4000, Some(25)),
            (99.0, 10000, Some(77)),
        ];
        for (percentile, n, expected) in table {
            let found = early_stopping_overlatency_tolerated(n, percentile, 0.99).unwrap();
            assert_eq!(found, expected, "p{percentile}, n = {n}");
            assert_eq!(
                plain_tolerated(n, percentile / 100.0, 0.99),
                expected,
                "plain reference, p{percentile}, n = {n}"
            );
        }
    }

    #[test]
    fn agrees_with_the_plain_reference_over_many_sizes() {
        for confidence in [0.9, 0.95, 0.99] {
            for percentile in [50.0, 90.0, 95.0] {
                for n in (1..400).step_by(7) {
                    assert_eq!(
                        early_stopping_overlatency_tolerated(n, percentile, confidence).unwrap(),
                        plain_tolerated(n, percentile / 100.0, confidence),
                        "p{percentile} at {confidence}, n = {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn minimum_query_counts_are_loadgens() {
        assert_eq!(early_stopping_min_queries(90.0, 0.99).unwrap(), 64);
        assert_eq!(early_stopping_min_queries(99.0, 0.99).unwrap(), 662);
        // The minimum is the first n that passes and n − 1 fails.
        for (percentile, confidence) in [(90.0, 0.95), (95.0, 0.99), (50.0, 0.9)] {
            let n = early_stopping_min_queries(percentile, confidence).unwrap();
            assert!(plain_tolerated(n, percentile / 100.0, confidence).is_some());
            assert!(plain_tolerated(n - 1, percentile / 100.0, confidence).is_none());
        }
    }

    #[test]
    fn estimate_is_the_ranked_order_statistic() {
        let latencies: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let estimate = early_stopping_percentile(&latencies, 90.0, 0.99).unwrap();
        assert_eq!(estimate.overlatency_tolerated, 3);
        assert_eq!(estimate.rank, 98);
        assert_eq!(estimate.value, 98.0);
        assert_eq!(estimate.plain, 90.0);
        assert_eq!(estimate.min_queries, 64);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            early_stopping_percentile(&[1.0; 63], 90.0, 0.99),
            Err(PerfError::InsufficientSamples {
                needed: 64,
                have: 63,
                ..
            })
        ));
        assert!(early_stopping_percentile(&[], 90.0, 0.99).is_err());
        assert!(early_stopping_percentile(&[f64::NAN; 100], 90.0, 0.99).is_err());
        assert!(early_stopping_percentile(&[1.0; 100], 100.0, 0.99).is_err());
        assert!(early_stopping_percentile(&[1.0; 100], 90.0, 1.0).is_err());
    }

    #[test]
    fn the_bound_covers_the_true_p90_at_least_99_percent_of_the_time() {
        for n in [64, 100, 256, 1024] {
            let rates = simulate_early_stopping_coverage(n, 2_000, 11 + n as u64).unwrap();
            assert_eq!(rates.len(), 2);
            for rate in rates {
                assert!(
                    rate.covered_fraction >= 0.99,
                    "{}, n = {n}: coverage {}",
                    rate.distribution,
                    rate.covered_fraction
                );
            }
        }
    }

    #[test]
    fn the_plain_p90_does_not_cover_so_the_simulation_can_fail() {
        // The negative control: the plain order statistic covers about half the time.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let true_p90 = LogNormalLatency.true_p90();
        let covered = (0..2_000)
            .filter(|_| {
                let latencies: Vec<f64> =
                    (0..100).map(|_| LogNormalLatency.draw(&mut rng)).collect();
                early_stopping_percentile(&latencies, 90.0, 0.99)
                    .unwrap()
                    .plain
                    >= true_p90
            })
            .count();
        assert!(covered < 1_500, "plain p90 covered {covered} of 2000");
    }
}
