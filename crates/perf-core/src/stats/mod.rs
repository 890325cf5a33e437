//! Statistics, organised by the kind of data they summarise. Every function here is the workspace's one
//! implementation of its statistic; the other crates call these rather than keep copies.
//!
//! | kind | file | what |
//! |---|---|---|
//! | one sample of measurements | `sample.rs` | [`BenchmarkResult`], order-statistic and median intervals, outliers, shape, effective sample size |
//! | distributions | `distributions.rs` | Student-t quantile and CDF, the standard normal quantile |
//! | latency percentiles under LoadGen's rule | `early_stopping.rs` | [`early_stopping_percentile`]: MLPerf LoadGen's binomial early-stopping bound, its minimum query count, its coverage by simulation |
//! | proportions | `proportions.rs` | Clopper–Pearson ([`binomial_interval`]) and Wilson ([`wilson_interval`]) intervals |
//! | ROC AUC | `auc.rs` | [`roc_auc`] (Mann–Whitney) and the Hanley–McNeil interval ([`hanley_mcneil_interval`]) |
//! | paired proportions | `paired.rs` | [`paired_proportion_difference`]: two classifiers scored on the same rows |
//! | ratios | `ratio.rs` | [`ratio_of_sums`]: the delta-method interval on `Σ x / Σ y` over paired units |
//! | classification | `classification.rs` | [`argmax`], [`cross_entropy`] of logits |
//!
//! Two-sample comparisons of timings (the paired log-ratio interval, Welch, Mann–Whitney with
//! Hodges–Lehmann) live in [`crate::compare`], beside the interleaving protocol that produces the pairs.

mod auc;
mod classification;
mod distributions;
mod early_stopping;
mod paired;
mod proportions;
mod ratio;
mod sample;

pub use auc::{delong_paired_difference, hanley_mcneil_interval, roc_auc, AucGroups};
pub use classification::{argmax, cross_entropy};
pub use distributions::{
    standard_normal_cdf, standard_normal_quantile, student_t_cdf, student_t_quantile,
    two_sided_normal_critical_value,
};
pub use early_stopping::{
    early_stopping_min_queries, early_stopping_overlatency_tolerated, early_stopping_percentile,
    simulate_early_stopping_coverage, EarlyStoppingEstimate, SimulatedCoverage,
};
pub use paired::{paired_proportion_difference, PairedProportionDifference};
pub use proportions::{binomial_interval, wilson_interval};
pub use ratio::{ratio_of_sums, RatioOfSums};
pub use sample::{
    effective_sample_size, mean_and_std, median, median_interval, min_samples_for_quantile,
    order_statistic_coverage, order_statistic_ranks, quantile_sorted, BenchmarkResult,
    DistributionShape, OutlierReport, PercentileEstimate, DEFAULT_CONFIDENCE,
};

use crate::error::PerfError;

/// `Ok` when `confidence` is a two-sided level strictly inside (0, 1).
pub(crate) fn check_confidence(confidence: f64) -> Result<(), PerfError> {
    if confidence.is_finite() && 0.0 < confidence && confidence < 1.0 {
        Ok(())
    } else {
        Err(PerfError::InvalidConfig(format!(
            "confidence level must lie in (0, 1), got {confidence}"
        )))
    }
}
