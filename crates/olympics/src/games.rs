//! The Olympic events run over one event's scorecards, and the leaderboard.
//!
//! - **Latency sprint**: lowest p90 latency among submissions whose quality has not missed the target
//!   (an inconclusive quality makes the entry provisional).
//! - **Memory challenge**: smallest footprint (stored bytes + peak heap of one query), same eligibility.
//! - **Accuracy contest**: highest quality among submissions whose p90 latency has not missed the limit and
//!   whose footprint fits the event's memory budget.
//! - **All-around**: `0.5 · quality / best quality + 0.25 · best p90 / p90 + 0.25 · best footprint /
//!   footprint` over every scored submission (1.0 = best at everything); the weights favour quality because
//!   an optimization that breaks the model is worth nothing.
//!
//! Neighbouring ranks whose intervals overlap are marked `tied_with_next` (the order between them is not
//! established by the measurement).

use serde::{Deserialize, Serialize};

use crate::referee::Scorecard;
use perf_core::claim::Verdict;

/// Weight of quality in the all-around score.
pub const ALL_AROUND_QUALITY_WEIGHT: f64 = 0.5;
/// Weight of latency in the all-around score.
pub const ALL_AROUND_LATENCY_WEIGHT: f64 = 0.25;
/// Weight of memory in the all-around score.
pub const ALL_AROUND_MEMORY_WEIGHT: f64 = 0.25;

/// One ranked entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankEntry {
    /// 1-based rank.
    pub rank: usize,
    /// The submission.
    pub submission: String,
    /// The ranked value (ms, bytes, quality or score).
    pub value: f64,
    /// Its interval, when it has one.
    pub interval: Option<(f64, f64)>,
    /// Eligible only provisionally (the eligibility requirement was inconclusive).
    pub provisional: bool,
    /// The interval overlaps the next entry's: the order between them is not established.
    pub tied_with_next: bool,
}

/// The result of one Olympic event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Name, e.g. `latency sprint`.
    pub name: String,
    /// The rule, in words.
    pub rule: String,
    /// Ranked entries, best first.
    pub entries: Vec<RankEntry>,
    /// Excluded submissions with the reason.
    pub ineligible: Vec<(String, String)>,
}

impl Ranking {
    /// The winner, if anyone was eligible.
    pub fn winner(&self) -> Option<&str> {
        self.entries.first().map(|entry| entry.submission.as_str())
    }
}

struct Candidate<'a> {
    card: &'a Scorecard,
    value: f64,
    interval: Option<(f64, f64)>,
    provisional: bool,
}

fn rank(
    name: &str,
    rule: &str,
    mut candidates: Vec<Candidate<'_>>,
    ineligible: Vec<(String, String)>,
    smaller_is_better: bool,
) -> Ranking {
    candidates.sort_by(|a, b| {
        let ordering = a.value.total_cmp(&b.value);
        if smaller_is_better {
            ordering
        } else {
            ordering.reverse()
        }
    });
    let overlaps = |a: Option<(f64, f64)>, b: Option<(f64, f64)>, a_value: f64, b_value: f64| {
        let (a_low, a_high) = a.unwrap_or((a_value, a_value));
        let (b_low, b_high) = b.unwrap_or((b_value, b_value));
        a_low <= b_high && b_low <= a_high
    };
    let entries = candidates
        .iter()
        .enumerate()
        .map(|(index, candidate)| RankEntry {
            rank: index + 1,
            submission: candidate.card.submission.clone(),
            value: candidate.value,
            interval: candidate.interval,
            provisional: candidate.provisional,
            tied_with_next: candidates.get(index + 1).is_some_and(|next| {
                overlaps(
                    candidate.interval,
                    next.interval,
                    candidate.value,
                    next.value,
                )
            }),
        })
        .collect();
    Ranking {
        name: name.into(),
        rule: rule.into(),
        entries,
        ineligible,
    }
}

/// The candidates whose quality did not miss the target (an inconclusive quality makes the entry
/// provisional) and the rest as ineligible: the eligibility the latency sprint and the memory challenge
/// share. `value` gives each candidate's measured value and its interval, if any.
fn quality_gated<'a>(
    cards: &[&'a Scorecard],
    value: impl Fn(&Scorecard) -> (f64, Option<(f64, f64)>),
) -> (Vec<Candidate<'a>>, Vec<(String, String)>) {
    let (mut candidates, mut ineligible) = (Vec::new(), Vec::new());
    for card in cards {
        if card.compliance.quality.verdict == Verdict::Fail {
            ineligible.push((card.submission.clone(), "quality missed the target".into()));
            continue;
        }
        let (value, interval) = value(card);
        candidates.push(Candidate {
            card,
            value,
            interval,
            provisional: card.compliance.quality.verdict != Verdict::Pass,
        });
    }
    (candidates, ineligible)
}

/// Lowest p90 latency subject to quality.
pub fn latency_sprint(cards: &[&Scorecard]) -> Ranking {
    let (candidates, ineligible) = quality_gated(cards, |card| {
        (card.latency.p90.value_ms, card.latency.p90.ci_ms)
    });
    rank(
        "latency sprint",
        "lowest p90 single-query latency (ms) among submissions whose quality did not miss the target",
        candidates,
        ineligible,
        true,
    )
}

/// Smallest footprint subject to quality.
pub fn memory_challenge(cards: &[&Scorecard]) -> Ranking {
    let (candidates, ineligible) =
        quality_gated(cards, |card| (card.memory.footprint_bytes() as f64, None));
    rank(
        "memory challenge",
        "smallest footprint (stored bytes + peak heap of one query) among submissions whose quality did not miss the target",
        candidates,
        ineligible,
        true,
    )
}

/// Highest quality subject to the latency limit and the memory budget.
pub fn accuracy_contest(cards: &[&Scorecard], memory_budget_bytes: usize) -> Ranking {
    let (mut candidates, mut ineligible) = (Vec::new(), Vec::new());
    for card in cards {
        if card.compliance.latency.verdict == Verdict::Fail {
            ineligible.push((
                card.submission.clone(),
                "p90 latency missed the limit".into(),
            ));
            continue;
        }
        if card.memory.footprint_bytes() > memory_budget_bytes {
            ineligible.push((
                card.submission.clone(),
                format!(
                    "footprint {} B over the {memory_budget_bytes} B budget",
                    card.memory.footprint_bytes()
                ),
            ));
            continue;
        }
        candidates.push(Candidate {
            card,
            value: card.quality.point,
            interval: Some((card.quality.ci_lower, card.quality.ci_upper)),
            provisional: card.compliance.latency.verdict != Verdict::Pass,
        });
    }
    rank(
        "accuracy contest",
        &format!("highest quality among submissions within the p90 latency limit and a {memory_budget_bytes} B memory budget"),
        candidates,
        ineligible,
        false,
    )
}

/// The documented weighted score (see the module documentation).
pub fn all_around(cards: &[&Scorecard]) -> Ranking {
    let best_quality = cards
        .iter()
        .map(|card| card.quality.point)
        .fold(f64::NEG_INFINITY, f64::max);
    let best_latency = cards
        .iter()
        .map(|card| card.latency.p90.value_ms)
        .fold(f64::INFINITY, f64::min);
    let best_memory = cards
        .iter()
        .map(|card| card.memory.footprint_bytes())
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let candidates = cards
        .iter()
        .map(|card| {
            let quality_score = if best_quality > 0.0 {
                card.quality.point / best_quality
            } else {
                0.0
            };
            let score = ALL_AROUND_QUALITY_WEIGHT * quality_score
                + ALL_AROUND_LATENCY_WEIGHT * best_latency / card.latency.p90.value_ms
                + ALL_AROUND_MEMORY_WEIGHT * best_memory
                    / card.memory.footprint_bytes().max(1) as f64;
            Candidate {
                card,
                value: score,
                interval: None,
                provisional: card.compliance.verdict() != Verdict::Pass,
            }
        })
        .collect();
    rank(
        "all-around",
        "0.5·quality/best + 0.25·best p90/p90 + 0.25·best footprint/footprint (provisional = not compliant or inconclusive)",
        candidates,
        Vec::new(),
        false,
    )
}

/// One leaderboard row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// The submission.
    pub submission: String,
    /// Compliance.
    pub compliance: Verdict,
    /// p90 ms.
    pub p90_ms: f64,
    /// Footprint bytes.
    pub footprint_bytes: usize,
    /// Quality.
    pub quality: f64,
    /// Rank in the latency sprint, memory challenge, accuracy contest (None when ineligible).
    pub ranks: [Option<usize>; 3],
    /// All-around score.
    pub all_around: f64,
}

/// Every Olympic event of one field of scorecards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Games {
    /// Latency sprint.
    pub latency_sprint: Ranking,
    /// Memory challenge.
    pub memory_challenge: Ranking,
    /// Accuracy contest.
    pub accuracy_contest: Ranking,
    /// All-around.
    pub all_around: Ranking,
    /// Rows ordered by all-around score.
    pub leaderboard: Vec<LeaderboardRow>,
}

/// Runs all four Olympic events and builds the leaderboard.
pub fn run_games(cards: &[&Scorecard], memory_budget_bytes: usize) -> Games {
    let latency = latency_sprint(cards);
    let memory = memory_challenge(cards);
    let accuracy = accuracy_contest(cards, memory_budget_bytes);
    let overall = all_around(cards);
    let rank_of = |ranking: &Ranking, name: &str| {
        ranking
            .entries
            .iter()
            .find(|entry| entry.submission == name)
            .map(|entry| entry.rank)
    };
    let leaderboard = overall
        .entries
        .iter()
        .filter_map(|entry| {
            let card = cards
                .iter()
                .find(|card| card.submission == entry.submission)?;
            Some(LeaderboardRow {
                submission: card.submission.clone(),
                compliance: card.compliance.verdict(),
                p90_ms: card.latency.p90.value_ms,
                footprint_bytes: card.memory.footprint_bytes(),
                quality: card.quality.point,
                ranks: [
                    rank_of(&latency, &card.submission),
                    rank_of(&memory, &card.submission),
                    rank_of(&accuracy, &card.submission),
                ],
                all_around: entry.value,
            })
        })
        .collect();
    Games {
        latency_sprint: latency,
        memory_challenge: memory,
        accuracy_contest: accuracy,
        all_around: overall,
        leaderboard,
    }
}
