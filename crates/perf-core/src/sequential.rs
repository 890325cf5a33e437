//! Adaptive sampling with a controlled error rate: a group-sequential design with Lan–DeMets alpha
//! spending for a claim judged on a t-type estimate (a paired log-ratio, a mean difference).
//!
//! A claim that is measured, looked at, and measured again until its interval clears the bar would
//! PASS far more often than 2.5% when it sits exactly at the bar: every look is another chance for
//! noise to clear it. A group-sequential design spends the one-sided error α = 0.025 over the looks
//! instead. With at most `K` looks and information fraction `t_k` at look `k` (the share of the
//! planned samples seen so far), the cumulative error allowed by look `k` is the spending function
//! `α(t_k)`:
//!
//! - O'Brien–Fleming type (the default): `α(t) = 2 − 2Φ(z_{1−α/2} / √t)`. It spends almost nothing
//!   early, so the early looks stop only on decisive evidence and the last look is nearly the fixed
//!   design's (K = 4: boundaries z = 4.333, 2.963, 2.359, 2.014; nominal two-sided confidence
//!   99.9985%, 99.70%, 98.17%, 95.60%).
//! - Pocock type: `α(t) = α · ln(1 + (e − 1) t)`, about equal nominal levels at every look.
//!
//! The boundary `c_k` (on the z scale) solves `P(Z_1 < c_1, …, Z_{k−1} < c_{k−1}, Z_k ≥ c_k) =
//! α(t_k) − α(t_{k−1})` under the null, where `Z_k` are the cumulative z-statistics of a Brownian
//! motion (`corr(Z_i, Z_j) = √(t_i / t_j)`); it is computed by the recursive numerical integration of
//! Armitage, McPherson and Rowe (Jennison & Turnbull, *Group Sequential Methods*, ch. 19). The same
//! boundary serves both sides: PASS when the interval at the look's nominal level clears the bar,
//! FAIL when it misses it. Each side is computed as if the other never stopped the run
//! ("non-binding"), which can only lower the real error rates. The estimate's own scale is Student-t:
//! at look `k` the interval is `centre ± t_{1−α_k, n−1} · se` with `α_k = 1 − Φ(c_k)`.
//!
//! If the last look still straddles the bar, the outcome is INCONCLUSIVE, with the final interval.
//! `tests/sequential_simulation.rs` measures the error rate, power and expected sample size.

use crate::claim::{Claim, ClaimResult, Direction, Estimate, TInference};
use crate::error::{check_finite, PerfError};
use crate::stats::mean_and_std;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// How the one-sided error is spent over the looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Spending {
    /// Lan–DeMets O'Brien–Fleming type: `α(t) = 2 − 2Φ(z_{1−α/2} / √t)`.
    OBrienFleming,
    /// Lan–DeMets Pocock type: `α(t) = α · ln(1 + (e − 1) t)`. It spends much of the error at the
    /// first look, where a small batch gives the t-statistic few degrees of freedom and the z
    /// boundary carried over to t is slightly liberal (2.62% instead of 2.5% with batches of 8).
    Pocock,
}

impl Spending {
    /// The error spent by information fraction `t` (clamped to [0, 1]) out of a one-sided `alpha`.
    pub fn spent(self, alpha: f64, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        if t == 0.0 {
            return 0.0;
        }
        match self {
            Spending::OBrienFleming => {
                let z = standard_normal().inverse_cdf(1.0 - alpha / 2.0);
                2.0 * standard_normal().sf(z / t.sqrt())
            }
            Spending::Pocock => alpha * (1.0 + (std::f64::consts::E - 1.0) * t).ln(),
        }
    }
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// A group-sequential plan: at most `max_looks` looks, the one-sided error `alpha` spent by `spending`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialPlan {
    /// The largest number of looks (the budget is `max_looks` batches of samples).
    pub max_looks: usize,
    /// How the error is spent.
    pub spending: Spending,
    /// One-sided error for each side (PASS when false, FAIL when false): 0.025 gives the same
    /// two-sided 95% as a fixed design.
    pub alpha: f64,
}

/// Half-width of the integration grid on the z scale: mass beyond ±8 standard deviations is below
/// 1e-15 and is left out.
const GRID_HALF_WIDTH: f64 = 8.0;
/// Grid intervals per unit on the z scale (Simpson's rule; 40 per unit gives boundaries to ~1e-6).
const GRID_PER_UNIT: f64 = 40.0;
/// A boundary beyond which no realistic z-statistic lies: "never stop at this look".
const NEVER_CROSSED: f64 = 40.0;

impl SequentialPlan {
    /// A plan with the O'Brien–Fleming-type spending and one-sided α = 0.025.
    ///
    /// # Errors
    /// `InvalidConfig` when `max_looks` is 0 or above 50.
    pub fn new(max_looks: usize) -> Result<Self, PerfError> {
        let plan = Self {
            max_looks,
            spending: Spending::OBrienFleming,
            alpha: 0.025,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// The same plan with another spending function.
    pub fn with_spending(mut self, spending: Spending) -> Self {
        self.spending = spending;
        self
    }

    fn validate(&self) -> Result<(), PerfError> {
        if !(1..=50).contains(&self.max_looks) {
            return Err(PerfError::InvalidConfig(format!(
                "a sequential plan needs 1 to 50 looks, got {}",
                self.max_looks
            )));
        }
        if !(self.alpha.is_finite() && 0.0 < self.alpha && self.alpha < 0.5) {
            return Err(PerfError::InvalidConfig(format!(
                "one-sided alpha must lie in (0, 0.5), got {}",
                self.alpha
            )));
        }
        Ok(())
    }

    /// The z boundaries `c_1 … c_K` for equally spaced looks (`t_k = k / K`).
    ///
    /// # Errors
    /// As [`SequentialPlan::new`].
    /// They are computed once per process for each plan and cached: a driver that runs many claims
    /// (or a simulation that runs thousands) pays for the numerical integration once.
    pub fn boundaries(&self) -> Result<Vec<f64>, PerfError> {
        type Cache = Mutex<HashMap<(usize, Spending, u64), Vec<f64>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        self.validate()?;
        let key = (self.max_looks, self.spending, self.alpha.to_bits());
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        // A poisoned lock only means another thread panicked while inserting; the map is still valid.
        if let Some(found) = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let fractions: Vec<f64> = (1..=self.max_looks)
            .map(|k| k as f64 / self.max_looks as f64)
            .collect();
        let computed = self.boundaries_at(&fractions)?;
        cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, computed.clone());
        Ok(computed)
    }

    /// The z boundaries for looks at the given information fractions (increasing, in (0, 1]).
    ///
    /// # Errors
    /// `InvalidInput` when the fractions are not strictly increasing within (0, 1].
    pub fn boundaries_at(&self, fractions: &[f64]) -> Result<Vec<f64>, PerfError> {
        self.validate()?;
        let increasing = fractions.windows(2).all(|pair| pair[0] < pair[1]);
        let in_range = fractions
            .iter()
            .all(|t| t.is_finite() && 0.0 < *t && *t <= 1.0);
        if fractions.is_empty() || !increasing || !in_range {
            return Err(PerfError::InvalidInput(format!(
                "information fractions must increase strictly within (0, 1], got {fractions:?}"
            )));
        }
        Ok(boundaries(self.alpha, self.spending, fractions))
    }

    /// The nominal two-sided confidence of the interval judged at `look` (1-based) of equally
    /// spaced looks: `1 − 2(1 − Φ(c_look))`.
    ///
    /// # Errors
    /// `InvalidInput` when `look` is 0 or beyond `max_looks`.
    pub fn confidence_at(&self, look: usize) -> Result<f64, PerfError> {
        if !(1..=self.max_looks).contains(&look) {
            return Err(PerfError::InvalidInput(format!(
                "look {look} outside 1..={}",
                self.max_looks
            )));
        }
        let boundaries = self.boundaries()?;
        Ok(confidence_of(boundaries[look - 1]))
    }
}

/// Two-sided confidence of an interval whose one-sided tail is beyond `z`.
fn confidence_of(z: f64) -> f64 {
    1.0 - 2.0 * standard_normal().sf(z)
}

/// Simpson weights for `intervals` (even) intervals of width `h`.
fn simpson_weights(intervals: usize, h: f64) -> Vec<f64> {
    (0..=intervals)
        .map(|i| {
            let factor = if i == 0 || i == intervals {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            factor * h / 3.0
        })
        .collect()
}

/// A grid on the score scale `S = Z √t` over the continuation region `[−8√t, b]`, with the density
/// of the (sub-probability) distribution of `S` among runs that have not stopped yet.
struct Continuation {
    points: Vec<f64>,
    weighted_density: Vec<f64>,
}

impl Continuation {
    fn grid(t: f64, upper_score: f64) -> (Vec<f64>, Vec<f64>) {
        let lower = -GRID_HALF_WIDTH * t.sqrt();
        let span = (upper_score - lower).max(1e-9);
        let mut intervals = ((span / t.sqrt()) * GRID_PER_UNIT).ceil() as usize;
        intervals = intervals.clamp(2, 4000);
        if intervals % 2 == 1 {
            intervals += 1;
        }
        let h = span / intervals as f64;
        let points = (0..=intervals).map(|i| lower + h * i as f64).collect();
        (points, simpson_weights(intervals, h))
    }

    /// Probability that a run still going reaches `S ≥ upper` at the next look, `delta` later.
    fn crossing(&self, upper: f64, delta: f64) -> f64 {
        let sd = delta.sqrt();
        self.points
            .iter()
            .zip(&self.weighted_density)
            .map(|(s, w)| w * standard_normal().sf((upper - s) / sd))
            .sum()
    }
}

/// Boundaries for looks at `fractions` (validated by the caller).
fn boundaries(alpha: f64, spending: Spending, fractions: &[f64]) -> Vec<f64> {
    let normal = standard_normal();
    let mut result = Vec::with_capacity(fractions.len());
    let mut continuation: Option<Continuation> = None;
    let mut previous_t = 0.0;
    let mut spent_before = 0.0;
    for &t in fractions {
        let spent = spending.spent(alpha, t);
        let increment = (spent - spent_before).max(0.0);
        let boundary = match &continuation {
            None => {
                if increment <= 1e-300 {
                    NEVER_CROSSED
                } else {
                    normal.inverse_cdf(1.0 - increment).min(NEVER_CROSSED)
                }
            }
            Some(region) => {
                let delta = t - previous_t;
                let crossing = |z: f64| region.crossing(z * t.sqrt(), delta);
                if crossing(NEVER_CROSSED) >= increment {
                    NEVER_CROSSED
                } else {
                    // The crossing probability falls as the boundary rises: bisect.
                    let (mut low, mut high) = (-GRID_HALF_WIDTH, NEVER_CROSSED);
                    for _ in 0..60 {
                        let middle = 0.5 * (low + high);
                        if crossing(middle) > increment {
                            low = middle;
                        } else {
                            high = middle;
                        }
                    }
                    0.5 * (low + high)
                }
            }
        };
        // The density of S among runs continuing past this look, on [−8√t, c√t].
        let upper_score = boundary.min(GRID_HALF_WIDTH) * t.sqrt();
        let (points, weights) = Continuation::grid(t, upper_score);
        let density: Vec<f64> = match &continuation {
            None => points
                .iter()
                .map(|s| normal_density(*s / t.sqrt()) / t.sqrt())
                .collect(),
            Some(region) => {
                let sd = (t - previous_t).sqrt();
                points
                    .iter()
                    .map(|s_next| {
                        region
                            .points
                            .iter()
                            .zip(&region.weighted_density)
                            .map(|(s, w)| w * normal_density((s_next - s) / sd) / sd)
                            .sum()
                    })
                    .collect()
            }
        };
        continuation = Some(Continuation {
            weighted_density: density.iter().zip(&weights).map(|(d, w)| d * w).collect(),
            points,
        });
        result.push(boundary);
        previous_t = t;
        spent_before = spent;
    }
    result
}

fn normal_density(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The bar a sequential claim is judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialBar {
    /// The threshold, on the reported scale (a ratio such as 1.5 when `log_scale`).
    pub threshold: f64,
    /// Which side is good.
    pub direction: Direction,
    /// True when the samples are logs of ratios and the estimate is `exp(mean)`.
    pub log_scale: bool,
    /// Unit of the reported estimate ("×", "ns", ...).
    pub unit: String,
}

/// The decision of a sequential run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SequentialDecision {
    /// The interval at a look cleared the bar.
    Pass,
    /// The interval at a look missed the bar.
    Fail,
    /// The budget ran out with the interval straddling the bar.
    Inconclusive,
}

/// What one look saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialLook {
    /// 1-based look number.
    pub look: usize,
    /// Samples pooled so far.
    pub samples: usize,
    /// Information fraction used for the boundary.
    pub information_fraction: f64,
    /// The z boundary of this look.
    pub boundary_z: f64,
    /// Nominal two-sided confidence of this look's interval.
    pub nominal_confidence: f64,
    /// The estimate at this look's nominal confidence (absent with fewer than two samples).
    pub estimate: Option<Estimate>,
}

/// The result of [`run_sequential`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialOutcome {
    /// PASS, FAIL or INCONCLUSIVE.
    pub decision: SequentialDecision,
    /// The estimate at the last look, at that look's nominal confidence.
    pub estimate: Estimate,
    /// Looks made.
    pub looks_used: usize,
    /// The budget in looks.
    pub max_looks: usize,
    /// Samples pooled at the end.
    pub samples_used: usize,
    /// Share of the budget used (`looks_used / max_looks`).
    pub budget_used: f64,
    /// The plan.
    pub plan: SequentialPlan,
    /// Every look, in order.
    pub looks: Vec<SequentialLook>,
}

impl SequentialOutcome {
    /// The claim's result: PASS or FAIL from [`Claim::judge`] on the final estimate (the same
    /// interval and the same comparison as the decision), INCONCLUSIVE with the interval when the
    /// budget ran out; the summary is appended to the reason and the whole outcome kept under the
    /// detail `sequential`. The p-value `judge` derives for Holm is the final look's fixed-sample
    /// p-value, which the sequential design makes slightly optimistic; the verdict itself is not.
    pub fn judge(&self, claim: &Claim) -> ClaimResult {
        let result = match self.decision {
            SequentialDecision::Inconclusive => claim.inconclusive(
                format!(
                    "interval still straddles the bar when the budget ran out: {}",
                    self.summary()
                ),
                Some(self.estimate.clone()),
            ),
            SequentialDecision::Pass | SequentialDecision::Fail => {
                claim.judge(self.estimate.clone()).annotate(self.summary())
            }
        };
        result.with_detail("sequential", self)
    }

    /// One line for a claim's reason: the decision, the interval and the budget used.
    pub fn summary(&self) -> String {
        format!(
            "{:?} after look {} of {} ({} samples, {:.0}% of the budget); {:.4}% interval [{:.4}, {:.4}] {}, {} alpha spending",
            self.decision,
            self.looks_used,
            self.max_looks,
            self.samples_used,
            100.0 * self.budget_used,
            100.0 * self.estimate.confidence,
            self.estimate.ci_lower,
            self.estimate.ci_upper,
            self.estimate.unit,
            match self.plan.spending {
                Spending::OBrienFleming => "O'Brien–Fleming-type",
                Spending::Pocock => "Pocock-type",
            }
        )
    }
}

/// The t-inference of pooled samples: mean, standard error, n − 1 degrees of freedom.
fn t_inference(values: &[f64], log_scale: bool) -> TInference {
    let (mean, sd) = mean_and_std(values);
    TInference {
        center: mean,
        standard_error: sd / (values.len() as f64).sqrt(),
        degrees_of_freedom: (values.len() - 1) as f64,
        log_scale,
    }
}

fn decide(estimate: &Estimate, bar: &SequentialBar) -> Option<SequentialDecision> {
    let (lo, hi) = (estimate.ci_lower, estimate.ci_upper);
    match bar.direction {
        Direction::AtLeast if lo >= bar.threshold => Some(SequentialDecision::Pass),
        Direction::AtLeast if hi < bar.threshold => Some(SequentialDecision::Fail),
        Direction::AtMost if hi <= bar.threshold => Some(SequentialDecision::Pass),
        Direction::AtMost if lo > bar.threshold => Some(SequentialDecision::Fail),
        _ => None,
    }
}

/// Measure in batches until the interval clears or misses the bar, or the budget runs out.
///
/// `measure_more(look)` (1-based) returns the next batch of independent units: paired log-ratios
/// (with `bar.log_scale`), or round centres, or any values whose mean is the claim's quantity. The
/// batches are pooled. Each batch should hold the same number of units; the information fraction
/// of look `k` is `n_k / (K · n_1)` (capped at 1, and 1 at the last look), so unequal batches are
/// handled by recomputing the boundaries for the fractions actually reached.
///
/// # Errors
/// Whatever `measure_more` returns; `InvalidInput` for a threshold that is not positive on a log
/// scale, `Empty` for an empty batch, `NonFinite` for a NaN or infinite value,
/// `InsufficientSamples` when the last look has fewer than two samples.
pub fn run_sequential<E: From<PerfError>>(
    plan: &SequentialPlan,
    bar: &SequentialBar,
    mut measure_more: impl FnMut(usize) -> Result<Vec<f64>, E>,
) -> Result<SequentialOutcome, E> {
    plan.validate()?;
    if !bar.threshold.is_finite() || (bar.log_scale && bar.threshold <= 0.0) {
        return Err(PerfError::InvalidInput(format!(
            "sequential bar {} is not a finite{} threshold",
            bar.threshold,
            if bar.log_scale { " positive" } else { "" }
        ))
        .into());
    }
    let equal_boundaries = plan.boundaries()?;
    let mut values: Vec<f64> = Vec::new();
    let mut looks: Vec<SequentialLook> = Vec::new();
    let mut fractions: Vec<f64> = Vec::new();
    let mut first_batch = 0usize;
    for look in 1..=plan.max_looks {
        let batch = measure_more(look)?;
        check_finite(&format!("sequential look {look}"), &batch)?;
        if look == 1 {
            first_batch = batch.len();
        }
        values.extend(batch);
        let planned_total = (plan.max_looks * first_batch) as f64;
        let fraction = if look == plan.max_looks {
            1.0
        } else {
            // At least a hair above the previous look, so the fractions stay increasing.
            let previous = fractions.last().copied().unwrap_or(0.0);
            (values.len() as f64 / planned_total)
                .min(1.0)
                .max(previous + 1e-6)
                .min(1.0 - 1e-6 * (plan.max_looks - look) as f64)
        };
        fractions.push(fraction);
        let equal_spacing = fractions
            .iter()
            .enumerate()
            .all(|(i, t)| (t - (i + 1) as f64 / plan.max_looks as f64).abs() < 1e-12);
        let boundary_z = if equal_spacing {
            equal_boundaries[look - 1]
        } else {
            *plan
                .boundaries_at(&fractions)?
                .last()
                .expect("one boundary per fraction")
        };
        let nominal_confidence = confidence_of(boundary_z);
        let estimate = if values.len() >= 2 {
            let inference = t_inference(&values, bar.log_scale);
            Some(Estimate::from_t(inference, &bar.unit, nominal_confidence)?)
        } else {
            None
        };
        let decision = estimate.as_ref().and_then(|e| decide(e, bar));
        looks.push(SequentialLook {
            look,
            samples: values.len(),
            information_fraction: fraction,
            boundary_z,
            nominal_confidence,
            estimate: estimate.clone(),
        });
        let last = look == plan.max_looks;
        if decision.is_some() || last {
            let Some(estimate) = estimate else {
                return Err(PerfError::InsufficientSamples {
                    what: "sequential claim".into(),
                    needed: 2,
                    have: values.len(),
                }
                .into());
            };
            return Ok(SequentialOutcome {
                decision: decision.unwrap_or(SequentialDecision::Inconclusive),
                estimate,
                looks_used: look,
                max_looks: plan.max_looks,
                samples_used: values.len(),
                budget_used: look as f64 / plan.max_looks as f64,
                plan: *plan,
                looks,
            });
        }
    }
    unreachable!("the last look returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obrien_fleming_boundaries_match_the_published_table() {
        // Lan–DeMets O'Brien–Fleming, one-sided 0.025, five equally spaced looks (gsDesign's sfLDOF):
        // 4.877, 3.357, 2.680, 2.290, 2.031.
        let plan = SequentialPlan::new(5).unwrap();
        let published = [4.877, 3.357, 2.680, 2.290, 2.031];
        for (computed, expected) in plan.boundaries().unwrap().iter().zip(published) {
            assert!(
                (computed - expected).abs() < 2e-3,
                "{computed} vs {expected}"
            );
        }
    }

    #[test]
    fn one_look_is_the_fixed_design() {
        let plan = SequentialPlan::new(1).unwrap();
        assert!((plan.confidence_at(1).unwrap() - 0.95).abs() < 1e-9);
        let pocock = plan.with_spending(Spending::Pocock);
        assert!((pocock.confidence_at(1).unwrap() - 0.95).abs() < 1e-9);
    }

    #[test]
    fn nominal_confidence_falls_towards_the_last_look() {
        let plan = SequentialPlan::new(4).unwrap();
        let levels: Vec<f64> = (1..=4).map(|k| plan.confidence_at(k).unwrap()).collect();
        assert!(
            levels.windows(2).all(|pair| pair[0] > pair[1]),
            "{levels:?}"
        );
        assert!(levels[3] > 0.95 && levels[3] < 0.96, "{levels:?}");
        assert!(plan.confidence_at(0).is_err() && plan.confidence_at(5).is_err());
    }

    #[test]
    fn bad_plans_and_fractions_are_errors() {
        assert!(SequentialPlan::new(0).is_err());
        assert!(SequentialPlan::new(51).is_err());
        let plan = SequentialPlan::new(3).unwrap();
        assert!(plan.boundaries_at(&[0.5, 0.4]).is_err());
        assert!(plan.boundaries_at(&[0.0, 1.0]).is_err());
        assert!(plan.boundaries_at(&[]).is_err());
        assert!(plan.boundaries_at(&[0.3, 1.2]).is_err());
    }

    fn bar(threshold: f64) -> SequentialBar {
        SequentialBar {
            threshold,
            direction: Direction::AtLeast,
            log_scale: true,
            unit: "×".into(),
        }
    }

    #[test]
    fn a_decisive_first_batch_stops_at_the_first_look() {
        let plan = SequentialPlan::new(4).unwrap();
        let batch: Vec<f64> = (0..10)
            .map(|i| 2f64.ln() + 0.001 * (i % 3) as f64)
            .collect();
        let outcome = run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(batch.clone())).unwrap();
        assert_eq!(outcome.decision, SequentialDecision::Pass);
        assert_eq!((outcome.looks_used, outcome.samples_used), (1, 10));
        let fail = run_sequential::<PerfError>(&plan, &bar(3.0), |_| Ok(batch.clone())).unwrap();
        assert_eq!(fail.decision, SequentialDecision::Fail);
    }

    #[test]
    fn a_straddling_claim_uses_the_whole_budget() {
        let plan = SequentialPlan::new(3).unwrap();
        // Values symmetric around log(1.5): the interval always contains the bar.
        let batch: Vec<f64> = [-0.1, 0.1, -0.05, 0.05]
            .iter()
            .map(|d| 1.5f64.ln() + d)
            .collect();
        let outcome = run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(batch.clone())).unwrap();
        assert_eq!(outcome.decision, SequentialDecision::Inconclusive);
        assert_eq!((outcome.looks_used, outcome.samples_used), (3, 12));
        assert_eq!(outcome.budget_used, 1.0);
        assert!(outcome.estimate.ci_lower < 1.5 && 1.5 < outcome.estimate.ci_upper);
        assert!(outcome.summary().contains("Inconclusive after look 3 of 3"));
    }

    #[test]
    fn outcomes_become_claim_results() {
        use crate::claim::Verdict;
        let claim = Claim::threshold("m.c", "m", "at least 1.5x", 1.5, Direction::AtLeast);
        let plan = SequentialPlan::new(2).unwrap();
        let straddle: Vec<f64> = [-0.1, 0.1].iter().map(|d| 1.5f64.ln() + d).collect();
        let outcome =
            run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(straddle.clone())).unwrap();
        let result = outcome.judge(&claim);
        assert_eq!(result.verdict, Verdict::Inconclusive);
        assert!(result.details.contains_key("sequential"));
        let clear: Vec<f64> = (0..6).map(|i| 2f64.ln() + 0.01 * (i % 2) as f64).collect();
        let outcome = run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(clear.clone())).unwrap();
        assert_eq!(outcome.judge(&claim).verdict, Verdict::Pass);
    }

    #[test]
    fn unequal_batches_recompute_the_boundaries() {
        let plan = SequentialPlan::new(3).unwrap();
        let mut sizes = [4usize, 2, 9].into_iter();
        let outcome = run_sequential::<PerfError>(&plan, &bar(1.5), |_| {
            let n = sizes.next().unwrap();
            Ok((0..n)
                .map(|i| 1.5f64.ln() + if i % 2 == 0 { 0.1 } else { -0.1 })
                .collect())
        })
        .unwrap();
        let fractions: Vec<f64> = outcome
            .looks
            .iter()
            .map(|l| l.information_fraction)
            .collect();
        assert!((fractions[0] - 1.0 / 3.0).abs() < 1e-12 && (fractions[1] - 0.5).abs() < 1e-12);
        assert_eq!(fractions[2], 1.0);
        let equal = plan.boundaries().unwrap();
        assert!((outcome.looks[1].boundary_z - equal[1]).abs() > 1e-3);
    }

    #[test]
    fn bad_batches_are_errors() {
        let plan = SequentialPlan::new(2).unwrap();
        assert!(run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(vec![])).is_err());
        assert!(
            run_sequential::<PerfError>(&plan, &bar(1.5), |_| Ok(vec![f64::NAN, 1.0])).is_err()
        );
        assert!(run_sequential::<PerfError>(&plan, &bar(0.0), |_| Ok(vec![1.0, 2.0])).is_err());
        let one_look = SequentialPlan::new(1).unwrap();
        assert!(matches!(
            run_sequential::<PerfError>(&one_look, &bar(1.5), |_| Ok(vec![1.0])),
            Err(PerfError::InsufficientSamples { .. })
        ));
    }
}
