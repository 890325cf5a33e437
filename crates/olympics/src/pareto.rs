//! Pareto analysis over (latency, memory, quality), the latency being LoadGen's SingleStream scenario's
//! (one query at a time, batch 1: the referee's p90 with its order-statistic interval): the non-dominated set with each metric's direction, who
//! dominates each dominated submission and whether the intervals can separate them, recommendations and
//! the quality-per-millisecond efficiency.

use serde::{Deserialize, Serialize};

use crate::referee::Scorecard;
use perf_core::claim::Verdict;

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Goal {
    /// Smaller is better (latency, bytes).
    Minimize,
    /// Larger is better (accuracy, AUC).
    Maximize,
}

/// One metric of one candidate: a point and its interval (`lower == upper == point` for an exact value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// Point estimate.
    pub point: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl MetricValue {
    /// An exact value (no sampling uncertainty).
    pub fn exact(value: f64) -> Self {
        MetricValue {
            point: value,
            lower: value,
            upper: value,
        }
    }
}

/// `a` at least as good as `b` on every metric and strictly better on one, by point estimates.
pub fn dominates(a: &[MetricValue], b: &[MetricValue], goals: &[Goal]) -> bool {
    no_worse_everywhere_better_once(a.iter().zip(b).zip(goals).map(|((a, b), goal)| match goal {
        Goal::Minimize => (a.point, b.point),
        Goal::Maximize => (-a.point, -b.point),
    }))
}

/// Whether the intervals confirm that `a` dominates `b`: on every metric `a`'s worst case is no worse than
/// `b`'s best case, and on one it is strictly better.
pub fn dominance_separable(a: &[MetricValue], b: &[MetricValue], goals: &[Goal]) -> bool {
    no_worse_everywhere_better_once(a.iter().zip(b).zip(goals).map(|((a, b), goal)| match goal {
        Goal::Minimize => (a.upper, b.lower),
        Goal::Maximize => (-a.lower, -b.upper),
    }))
}

/// The dominance rule both tests share, over `(a, b)` pairs already oriented so that lower is better:
/// `a` is never above `b` and is below it at least once. A NaN compares neither way, as before.
fn no_worse_everywhere_better_once(pairs: impl Iterator<Item = (f64, f64)>) -> bool {
    let mut strictly_better = false;
    for (a, b) in pairs {
        if a > b {
            return false;
        }
        if a < b {
            strictly_better = true;
        }
    }
    strictly_better
}

/// Indices of the non-dominated candidates, in input order.
///
/// Candidates are visited in lexicographic order of their (direction-adjusted) points: a candidate can
/// only be dominated by one visited before it, and a dominated candidate's dominator is itself dominated by
/// (or is) a front member, so comparing each with the front found so far suffices.
pub fn pareto_front(candidates: &[Vec<MetricValue>], goals: &[Goal]) -> Vec<usize> {
    let key = |index: usize| -> Vec<f64> {
        candidates[index]
            .iter()
            .zip(goals)
            .map(|(value, goal)| match goal {
                Goal::Minimize => value.point,
                Goal::Maximize => -value.point,
            })
            .collect()
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&left, &right| {
        key(left)
            .iter()
            .zip(key(right).iter())
            .map(|(l, r)| l.total_cmp(r))
            .find(|ordering| ordering.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut front: Vec<usize> = Vec::new();
    for index in order {
        if !front
            .iter()
            .any(|&member| dominates(&candidates[member], &candidates[index], goals))
        {
            front.push(index);
        }
    }
    front.sort_unstable();
    front
}

/// A dominator of a dominated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dominator {
    /// Its name.
    pub name: String,
    /// Whether the intervals confirm the dominance; false means "dominates on points, but the intervals
    /// cannot separate them".
    pub separable: bool,
}

/// A candidate off the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dominated {
    /// Its name.
    pub name: String,
    /// Everyone who dominates it.
    pub dominated_by: Vec<Dominator>,
}

/// A recommendation for one use case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The use case, e.g. `latency-critical`.
    pub use_case: String,
    /// The recommended submission.
    pub submission: String,
    /// One sentence, e.g. "int8, 2.9× faster at −0.4 points".
    pub sentence: String,
}

/// Quality per millisecond of p90 latency (the seed's efficiency metric: accuracy in percent / ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    /// The submission.
    pub submission: String,
    /// Quality points (percent, or AUC × 100) per ms of p90 latency.
    pub points_per_ms: f64,
}

/// The full analysis of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoAnalysis {
    /// Metric names, in order: `SingleStream p90 latency (ms)`, `memory (bytes)`, `quality`.
    pub metrics: Vec<String>,
    /// Their directions.
    pub goals: Vec<Goal>,
    /// Names on the front.
    pub front: Vec<String>,
    /// Everyone else, with dominators.
    pub dominated: Vec<Dominated>,
    /// Use-case recommendations, relative to the baseline.
    pub recommendations: Vec<Recommendation>,
    /// Efficiency of every candidate, best first.
    pub efficiency: Vec<Efficiency>,
    /// Points for a scatter plot (p90 ms, quality) of the front and of the rest.
    pub frontier_points: Vec<(String, f64, f64)>,
    /// As `frontier_points`, for dominated candidates.
    pub dominated_points: Vec<(String, f64, f64)>,
}

/// The three objectives of a scorecard: SingleStream p90 latency (ms, interval), memory footprint (bytes, exact),
/// quality (interval). A p90 without an interval is used as an exact point.
pub fn objectives(card: &Scorecard) -> Vec<MetricValue> {
    let p90 = &card.latency.p90;
    let (lower, upper) = p90.ci_ms.unwrap_or((p90.value_ms, p90.value_ms));
    vec![
        MetricValue {
            point: p90.value_ms,
            lower: lower.min(p90.value_ms),
            upper: upper.max(p90.value_ms),
        },
        MetricValue::exact(card.memory.footprint_bytes() as f64),
        MetricValue {
            point: card.quality.point,
            lower: card.quality.ci_lower,
            upper: card.quality.ci_upper,
        },
    ]
}

/// The goals matching [`objectives`].
pub const OBJECTIVE_GOALS: [Goal; 3] = [Goal::Minimize, Goal::Minimize, Goal::Maximize];

fn relative_sentence(card: &Scorecard, baseline: &Scorecard) -> String {
    let speed = baseline.latency.p90.value_ms / card.latency.p90.value_ms;
    let size =
        baseline.memory.footprint_bytes() as f64 / card.memory.footprint_bytes().max(1) as f64;
    let points = 100.0 * (card.quality.point - baseline.quality.point);
    let paired = crate::referee::paired_accuracy_difference(
        &card.quality,
        &baseline.quality,
        card.quality.confidence,
    )
    .map_or_else(String::new, |(_, lower, upper)| {
        format!(" [{lower:+.1}, {upper:+.1}] (paired)")
    });
    format!(
        "{}, {:.1}× {} and {:.1}× {} than {} at {:+.1} points{paired}",
        card.submission,
        if speed >= 1.0 { speed } else { 1.0 / speed },
        if speed >= 1.0 { "faster" } else { "slower" },
        if size >= 1.0 { size } else { 1.0 / size },
        if size >= 1.0 { "smaller" } else { "larger" },
        baseline.submission,
        points
    )
}

/// Pareto analysis of scored submissions; `baseline` names the reference the recommendations are relative
/// to (the first card when absent). Recommendations pick, among front members whose quality did not miss
/// the event's target, the fastest, the smallest and the most accurate.
pub fn analyze(cards: &[&Scorecard], baseline: &str) -> ParetoAnalysis {
    let candidates: Vec<Vec<MetricValue>> = cards.iter().map(|card| objectives(card)).collect();
    let goals = OBJECTIVE_GOALS.to_vec();
    let front_indices = pareto_front(&candidates, &goals);
    let mut dominated = Vec::new();
    for (index, card) in cards.iter().enumerate() {
        if front_indices.contains(&index) {
            continue;
        }
        let dominated_by = cards
            .iter()
            .enumerate()
            .filter(|(other, _)| dominates(&candidates[*other], &candidates[index], &goals))
            .map(|(other, other_card)| Dominator {
                name: other_card.submission.clone(),
                separable: dominance_separable(&candidates[other], &candidates[index], &goals),
            })
            .collect();
        dominated.push(Dominated {
            name: card.submission.clone(),
            dominated_by,
        });
    }
    let front_cards: Vec<&Scorecard> = front_indices.iter().map(|&index| cards[index]).collect();
    let baseline_card = cards
        .iter()
        .find(|card| card.submission == baseline)
        .or(cards.first())
        .copied();
    // Recommend among front members whose quality did not miss the target; when none qualifies, among the
    // whole front, and the sentence says so.
    let qualified: Vec<&Scorecard> = front_cards
        .iter()
        .copied()
        .filter(|card| card.compliance.quality.verdict != Verdict::Fail)
        .collect();
    let (pool, caveat) = if qualified.is_empty() {
        (
            front_cards.clone(),
            " (no front member meets the quality target)",
        )
    } else {
        (qualified, "")
    };
    let mut recommendations = Vec::new();
    if let Some(baseline_card) = baseline_card {
        let pick = |use_case: &str, best: Option<&&Scorecard>| {
            best.map(|card| Recommendation {
                use_case: use_case.into(),
                submission: card.submission.clone(),
                sentence: if card.submission == baseline_card.submission {
                    format!(
                        "for {use_case}: {} (the baseline itself){caveat}",
                        card.submission
                    )
                } else {
                    format!(
                        "for {use_case}: {}{caveat}",
                        relative_sentence(card, baseline_card)
                    )
                },
            })
        };
        recommendations.extend(pick(
            "latency-critical",
            pool.iter()
                .min_by(|a, b| a.latency.p90.value_ms.total_cmp(&b.latency.p90.value_ms)),
        ));
        recommendations.extend(pick(
            "memory-critical",
            pool.iter().min_by_key(|card| card.memory.footprint_bytes()),
        ));
        recommendations.extend(pick(
            "accuracy-critical",
            pool.iter()
                .max_by(|a, b| a.quality.point.total_cmp(&b.quality.point)),
        ));
    }
    let mut efficiency: Vec<Efficiency> = cards
        .iter()
        .map(|card| Efficiency {
            submission: card.submission.clone(),
            points_per_ms: 100.0 * card.quality.point / card.latency.p90.value_ms,
        })
        .collect();
    efficiency.sort_by(|a, b| b.points_per_ms.total_cmp(&a.points_per_ms));
    let point = |card: &Scorecard| {
        (
            card.submission.clone(),
            card.latency.p90.value_ms,
            card.quality.point,
        )
    };
    ParetoAnalysis {
        metrics: vec![
            "SingleStream p90 latency (ms)".into(),
            "memory footprint (bytes)".into(),
            "quality".into(),
        ],
        goals,
        front: front_cards
            .iter()
            .map(|card| card.submission.clone())
            .collect(),
        frontier_points: front_cards.iter().map(|card| point(card)).collect(),
        dominated_points: cards
            .iter()
            .enumerate()
            .filter(|(index, _)| !front_indices.contains(index))
            .map(|(_, card)| point(card))
            .collect(),
        dominated,
        recommendations,
        efficiency,
    }
}
