//! LoadGen's Server scenario: queries arrive at seeded Poisson times at a given rate and are issued by one
//! scheduler thread (perf-core's open loop: [`perf_core::schedule::run_open_loop`]); a query's latency is its
//! completion minus its scheduled arrival, so queueing counts. The result is the highest rate whose p99 stays
//! under the event's latency limit, found by search: from a start rate (half the rate one query at a time
//! would sustain), double or halve until one rate passes and one fails, then bisect (geometric midpoints)
//! until the bracket is within [`ServerConfig::relative_tolerance`] or the step budget is spent.
//!
//! A step passes when (1) LoadGen's early-stopping p99 at 99% (the bound a run of that many queries
//! supports, [`perf_core::stats::early_stopping_percentile`]) is at most the limit, and (2) the queue is
//! stable: some query in the last [`ServerConfig::idle_tail_fraction`] of the run arrived to an idle system
//! (an overloaded queue, arrivals faster than service, never empties once it has filled). The second
//! condition is ours: LoadGen relies on runs of at least 60 s, long against any latency limit, so an
//! overloaded queue shows in the tail; a step of a few thousand queries of a few microseconds lasts less
//! than the limit itself (50–200 ms here), and an unstable queue would pass on latency alone. (A rule on
//! the completion rate would not do: a short run's final drain, a few milliseconds of ordinary queueing or
//! of preemption on a loaded machine, is a large share of its span.)
//!
//! A step is [`ServerConfig::queries_per_step`] queries, fewer at a rate where that many would arrive over
//! more than [`ServerConfig::max_step_seconds`], never fewer than the 662 that early stopping at p99 needs;
//! a rate too low even for those ends the search with the reason (a model of tens of milliseconds per query
//! would otherwise hold the run for minutes).
//!
//! Every step of a search uses the same seed: the same unit-rate arrival pattern, scaled (common random
//! numbers), so neighbouring rates differ by their rate, not by their luck.

use ndarray::{s, Array2};
use perf_core::schedule::{poisson_arrivals_ns, run_open_loop, MonotonicClock, ScheduledRun};
use perf_core::stats::{early_stopping_min_queries, early_stopping_percentile};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, OlympicsError};
use crate::event::Event;
use crate::referee::{LatencyPercentile, Outcome, RefereeConfig};
use crate::scenario::{
    checked_forward_into, format_latency_ms, latency_percentiles, EARLY_STOPPING_CONFIDENCE,
};
use crate::submission::Submission;

/// The percentile the Server scenario bounds (LoadGen's default for Server).
pub const SERVER_PERCENTILE: f64 = 99.0;
/// The search never goes below this rate (queries per second).
pub const MIN_SEARCH_QPS: f64 = 1.0;

/// How the Server search runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Queries per step (at least the early-stopping minimum for p99 at 99%, 662).
    pub queries_per_step: usize,
    /// Steps in one search, bracketing and bisection together.
    pub max_steps: usize,
    /// The search stops when the failing rate is within this fraction above the passing one.
    pub relative_tolerance: f64,
    /// A step passes only if some query in this last share of the run arrived to an idle system.
    pub idle_tail_fraction: f64,
    /// A step's scheduled length is at most this many seconds: at a low rate it runs fewer queries (never
    /// fewer than the early-stopping minimum for p99, 662), and a rate whose minimum would take longer ends
    /// the search, saying so.
    pub max_step_seconds: f64,
    /// Search every scored submission (`true`), or only the baseline and the submission with the lowest
    /// SingleStream early-stopping p90 (`false`, quick mode: a search is a dozen runs).
    pub search_every_submission: bool,
}

impl ServerConfig {
    /// 3,000 queries per step (at most 2 s of arrivals), up to 14 steps, 3% tolerance, every submission.
    pub fn full() -> Self {
        ServerConfig {
            queries_per_step: 3_000,
            max_steps: 14,
            relative_tolerance: 0.03,
            idle_tail_fraction: 0.5,
            max_step_seconds: 2.0,
            search_every_submission: true,
        }
    }

    /// 2,000 queries per step (at most 1 s of arrivals), up to 10 steps, 5% tolerance, the baseline and the
    /// fastest submission only.
    pub fn quick() -> Self {
        ServerConfig {
            queries_per_step: 2_000,
            max_steps: 10,
            relative_tolerance: 0.05,
            search_every_submission: false,
            max_step_seconds: 1.0,
            ..Self::full()
        }
    }
}

/// One step of the search: one run at one rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStep {
    /// The arrival rate, queries/s.
    pub qps: f64,
    /// Queries in the run.
    pub n_queries: usize,
    /// The p99 latency (queueing included), ms, with its order-statistic interval.
    pub p99: LatencyPercentile,
    /// LoadGen's early-stopping p99 at 99%, ms.
    pub early_stopping_p99_ms: f64,
    /// Queries completed per second.
    pub completed_qps: f64,
    /// Queries offered per second (by the arrival schedule).
    pub offered_qps: f64,
    /// Queries that waited behind an earlier one.
    pub n_queued: usize,
    /// Index of the last query that arrived to an idle system.
    pub last_idle_index: Option<usize>,
    /// Whether the step met both conditions.
    pub passed: bool,
    /// Why it passed or failed.
    pub why: String,
}

/// The search's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerResult {
    /// The p99 limit, ms (the event's latency limit).
    pub latency_limit_ms: f64,
    /// The highest rate that passed, queries/s; `None` when none did.
    pub max_qps: Option<f64>,
    /// The lowest rate that failed above it, when one was tried.
    pub lowest_failing_qps: Option<f64>,
    /// The step at `max_qps`.
    pub at_max: Option<ServerStep>,
    /// Every step, in order.
    pub steps: Vec<ServerStep>,
    /// Why the search stopped.
    pub stop_reason: String,
}

impl ServerResult {
    /// One line: the rate, its bracket, the p99 there with its interval.
    pub fn describe(&self) -> String {
        let Some(step) = &self.at_max else {
            return format!(
                "Server: no arrival rate passed (p99 ≤ {} ms and the load sustained); {}",
                self.latency_limit_ms, self.stop_reason
            );
        };
        let interval = step.p99.ci_ms.map_or_else(
            || step.p99.note.clone().unwrap_or_default(),
            |(lower, upper)| {
                format!(
                    "[{}, {}]",
                    format_latency_ms(lower),
                    format_latency_ms(upper)
                )
            },
        );
        format!(
            "Server: {:.0} queries/s sustained with p99 {} {interval} (early-stopping p99 {} ≤ {} ms), next rate tried: {}; {} steps of {} queries; {}",
            step.qps,
            format_latency_ms(step.p99.value_ms),
            format_latency_ms(step.early_stopping_p99_ms),
            self.latency_limit_ms,
            self.lowest_failing_qps
                .map_or_else(|| "none failed".to_string(), |qps| format!("{qps:.0} queries/s failed")),
            self.steps.len(),
            step.n_queries,
            self.stop_reason
        )
    }
}

/// The stability condition: some query in the last `idle_tail_fraction` of the run arrived to an idle
/// system.
pub fn is_stable(run: &ScheduledRun, idle_tail_fraction: f64) -> bool {
    let n_queries = run.latencies_ns.len();
    let tail_start = ((1.0 - idle_tail_fraction) * n_queries as f64).floor() as usize;
    run.last_idle_index.is_some_and(|index| index >= tail_start)
}

/// How often [`is_stable`] calls a simulated queue stable at one load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StabilityRate {
    /// Arrival rate over service rate.
    pub load: f64,
    /// Simulated runs.
    pub trials: usize,
    /// Runs called stable, as a fraction.
    pub stable_fraction: f64,
}

/// The stability condition validated by simulation: `trials` runs of `n_queries` seeded Poisson arrivals
/// at each `load` (arrival rate / service rate) into one server with exponential service times (mean 1 µs),
/// on perf-core's open loop with a simulated clock; the share of runs [`is_stable`] calls stable.
///
/// # Errors
/// A load that is not finite and positive.
pub fn simulate_stability_detector(
    loads: &[f64],
    n_queries: usize,
    trials: usize,
    idle_tail_fraction: f64,
    seed: u64,
) -> Result<Vec<StabilityRate>, OlympicsError> {
    use rand::{Rng, SeedableRng};
    const MEAN_SERVICE_NS: f64 = 1_000.0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    loads
        .iter()
        .map(|&load| {
            let mut stable = 0usize;
            for _ in 0..trials {
                let arrivals =
                    poisson_arrivals_ns(load * 1e9 / MEAN_SERVICE_NS, n_queries, rng.random())?;
                let clock = perf_core::schedule::SimulatedClock::new();
                let run = run_open_loop(&clock, &arrivals, |_| {
                    let uniform: f64 = rng.random();
                    clock.advance_ns(-(1.0 - uniform).ln() * MEAN_SERVICE_NS);
                    Ok::<(), OlympicsError>(())
                })?;
                if is_stable(&run, idle_tail_fraction) {
                    stable += 1;
                }
            }
            Ok(StabilityRate {
                load,
                trials,
                stable_fraction: stable as f64 / trials.max(1) as f64,
            })
        })
        .collect()
}

/// Judges one run at `qps` against the p99 limit and the stability condition.
///
/// # Errors
/// Fewer queries than the early-stopping minimum for p99, or non-finite latencies.
pub fn judge_server_step(
    qps: f64,
    run: &ScheduledRun,
    latency_limit_ms: f64,
    config: &ServerConfig,
    confidence: f64,
) -> Result<ServerStep, OlympicsError> {
    let latencies_ms: Vec<f64> = run.latencies_ns.iter().map(|value| value / 1e6).collect();
    let early =
        early_stopping_percentile(&latencies_ms, SERVER_PERCENTILE, EARLY_STOPPING_CONFIDENCE)?;
    let p99 = latency_percentiles(
        "server",
        &run.latencies_ns,
        confidence,
        &[SERVER_PERCENTILE],
    )?
    .pop()
    .ok_or_else(|| invalid("p99 missing"))?;
    let completed_qps = run.completed_qps();
    let offered_qps = run.offered_qps();
    let latency_ok = early.value <= latency_limit_ms;
    let n_queries = run.latencies_ns.len();
    let stable = is_stable(run, config.idle_tail_fraction);
    let why = format!(
        "early-stopping p99 {} {} {latency_limit_ms} ms; {}",
        format_latency_ms(early.value),
        if latency_ok { "≤" } else { ">" },
        match run.last_idle_index {
            Some(index) if stable => format!(
                "stable: query {} of {n_queries} arrived to an idle system",
                index + 1
            ),
            Some(index) => format!(
                "unstable: no query after {} of {n_queries} arrived to an idle system",
                index + 1
            ),
            None => "unstable: every query waited".to_string(),
        }
    );
    Ok(ServerStep {
        qps,
        n_queries: run.latencies_ns.len(),
        p99,
        early_stopping_p99_ms: early.value,
        completed_qps,
        offered_qps,
        n_queued: run.n_queued,
        last_idle_index: run.last_idle_index,
        passed: latency_ok && stable,
        why,
    })
}

/// The search (see the module docs), with the run at a rate injected: `run_at(qps, n)` returns one run of
/// `n` queries at that rate, `n` being [`ServerConfig::queries_per_step`] or fewer when that many would
/// take longer than [`ServerConfig::max_step_seconds`] (the real clock in [`measure_server`], a simulated
/// one in tests).
///
/// # Errors
/// A non-positive start rate, a configuration below the early-stopping minimum, or the first error of
/// `run_at`.
pub fn search_max_qps(
    start_qps: f64,
    latency_limit_ms: f64,
    config: &ServerConfig,
    confidence: f64,
    mut run_at: impl FnMut(f64, usize) -> Result<ScheduledRun, OlympicsError>,
) -> Result<ServerResult, OlympicsError> {
    if !(start_qps.is_finite() && start_qps > 0.0) {
        return Err(invalid(format!(
            "Server search start rate {start_qps} queries/s"
        )));
    }
    let min_queries = early_stopping_min_queries(SERVER_PERCENTILE, EARLY_STOPPING_CONFIDENCE)?;
    if config.queries_per_step < min_queries {
        return Err(invalid(format!(
            "Server steps of {} queries: early stopping at p99 needs ≥ {min_queries}",
            config.queries_per_step
        )));
    }
    if !(config.relative_tolerance.is_finite() && config.relative_tolerance > 0.0)
        || config.max_steps == 0
        || !(0.0 < config.idle_tail_fraction && config.idle_tail_fraction <= 1.0)
        || !(config.max_step_seconds.is_finite() && config.max_step_seconds > 0.0)
    {
        return Err(invalid(
            "Server search needs a positive tolerance and step length, an idle tail fraction in (0, 1] and at least one step",
        ));
    }
    let mut steps: Vec<ServerStep> = Vec::new();
    let mut passing: Option<usize> = None;
    let mut failing: Option<usize> = None;
    // `None` when even the minimum count at `qps` would take longer than a step may.
    let queries_at = |qps: f64| -> Option<usize> {
        let affordable = (qps * config.max_step_seconds).floor();
        let n = affordable.min(config.queries_per_step as f64) as usize;
        (n >= min_queries).then_some(n)
    };
    let mut step_at =
        |qps: f64, n: usize, steps: &mut Vec<ServerStep>| -> Result<bool, OlympicsError> {
            let run = run_at(qps, n)?;
            let step = judge_server_step(qps, &run, latency_limit_ms, config, confidence)?;
            let passed = step.passed;
            steps.push(step);
            Ok(passed)
        };
    // Bracket: double after a pass, halve after a failure, until one of each.
    let mut qps = start_qps;
    let mut stop_reason = String::new();
    while steps.len() < config.max_steps {
        let Some(n) = queries_at(qps) else {
            stop_reason = format!(
                "a step at {qps:.1} queries/s would need {:.1} s for the {min_queries} queries early stopping needs (more than the {} s a step may take)",
                min_queries as f64 / qps,
                config.max_step_seconds
            );
            break;
        };
        if step_at(qps, n, &mut steps)? {
            passing = Some(steps.len() - 1);
            if failing.is_some() {
                break;
            }
            qps *= 2.0;
        } else {
            failing = Some(steps.len() - 1);
            if passing.is_some() {
                break;
            }
            qps /= 2.0;
            if qps < MIN_SEARCH_QPS {
                stop_reason = format!("no rate passed down to {MIN_SEARCH_QPS} query/s");
                break;
            }
        }
    }
    // Bisect between the highest pass and the lowest failure above it.
    while let (Some(low), Some(high)) = (passing, failing) {
        let (low_qps, high_qps) = (steps[low].qps, steps[high].qps);
        if high_qps <= low_qps * (1.0 + config.relative_tolerance) {
            stop_reason = format!(
                "bracketed within {:.0}% ({:.0} passes, {:.0} fails)",
                100.0 * config.relative_tolerance,
                low_qps,
                high_qps
            );
            break;
        }
        if steps.len() >= config.max_steps {
            break;
        }
        let middle = (low_qps * high_qps).sqrt();
        // Between two rates that each had a step, a step is affordable.
        let n = queries_at(middle).unwrap_or(min_queries);
        if step_at(middle, n, &mut steps)? {
            passing = Some(steps.len() - 1);
        } else {
            failing = Some(steps.len() - 1);
        }
    }
    if stop_reason.is_empty() {
        stop_reason = match (passing, failing) {
            (Some(_), None) => format!(
                "step budget ({}) spent before any rate failed",
                config.max_steps
            ),
            (None, _) => format!("step budget ({}) spent before any rate passed", config.max_steps),
            (Some(low), Some(high)) => format!(
                "step budget ({}) spent with the bracket [{:.0}, {:.0}] queries/s wider than {:.0}%",
                config.max_steps,
                steps[low].qps,
                steps[high].qps,
                100.0 * config.relative_tolerance
            ),
        };
    }
    // A failing rate below the best pass (possible when runs are noisy) is not the bracket's upper end.
    let at_max = passing.map(|index| steps[index].clone());
    let lowest_failing_qps = match &at_max {
        Some(best) => steps
            .iter()
            .filter(|step| !step.passed && step.qps > best.qps)
            .map(|step| step.qps)
            .min_by(f64::total_cmp),
        None => steps
            .iter()
            .filter(|step| !step.passed)
            .map(|step| step.qps)
            .min_by(f64::total_cmp),
    };
    Ok(ServerResult {
        latency_limit_ms,
        max_qps: at_max.as_ref().map(|step| step.qps),
        lowest_failing_qps,
        at_max,
        steps,
        stop_reason,
    })
}

/// The Server search for one submission on the monotonic clock, starting at half the rate its SingleStream
/// mean latency would sustain.
///
/// # Errors
/// A failing submission, or no SingleStream mean to start from.
pub fn measure_server(
    event: &Event,
    submission: &dyn Submission,
    config: &RefereeConfig,
    single_stream_mean_ms: f64,
) -> Result<ServerResult, OlympicsError> {
    if !(single_stream_mean_ms.is_finite() && single_stream_mean_ms > 0.0) {
        return Err(invalid(format!(
            "Server search needs a positive SingleStream mean, got {single_stream_mean_ms} ms"
        )));
    }
    let server = &config.scenarios.server;
    let n = server.queries_per_step;
    let queries = event.latency_queries(n, config.seed.wrapping_add(2))?;
    let width = event.spec.output_width;
    let seed = config.seed.wrapping_add(3);
    let mut output = Array2::<f32>::zeros((1, width));
    search_max_qps(
        0.5 * 1e3 / single_stream_mean_ms,
        event.spec.latency_limit_ms,
        server,
        config.confidence,
        |qps, n_queries| {
            let arrivals = poisson_arrivals_ns(qps, n_queries, seed)?;
            submission.reset();
            let clock = MonotonicClock::new();
            run_open_loop(&clock, &arrivals, |index| {
                checked_forward_into(
                    submission,
                    queries.slice(s![index..index + 1, ..]),
                    &mut output,
                )
            })
        },
    )
}

/// Runs the Server search on the scored submissions of a field (`outcomes[i]` is `submissions[i]`'s) and
/// records it in their scorecards: on all of them, or, unless [`ServerConfig::search_every_submission`], on
/// `baseline` and the submission with the lowest SingleStream early-stopping p90 only; the others get a note
/// saying why not. A submission that fails in the search becomes ERROR, as in any phase.
pub fn run_server_scenarios(
    event: &Event,
    submissions: &[&dyn Submission],
    outcomes: &mut [Outcome],
    config: &RefereeConfig,
    baseline: &str,
) {
    let search_every_submission = config.scenarios.server.search_every_submission;
    let mean_of = |outcome: &Outcome| {
        outcome
            .scorecard()
            .and_then(|card| card.scenarios.single_stream.as_ref())
            .map(|single| {
                (
                    single
                        .early_stopping_p90_ms()
                        .unwrap_or(single.p90.value_ms),
                    single.mean_ms,
                )
            })
    };
    let selected: Vec<bool> = if search_every_submission {
        outcomes
            .iter()
            .map(|outcome| mean_of(outcome).is_some())
            .collect()
    } else {
        let fastest = outcomes
            .iter()
            .enumerate()
            .filter(|(_, outcome)| outcome.submission() != baseline)
            .filter_map(|(index, outcome)| mean_of(outcome).map(|(p90, _)| (index, p90)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(index, _)| index);
        outcomes
            .iter()
            .enumerate()
            .map(|(index, outcome)| {
                mean_of(outcome).is_some()
                    && (outcome.submission() == baseline || Some(index) == fastest)
            })
            .collect()
    };
    let note = if search_every_submission {
        String::new()
    } else {
        format!(
            "Server not searched: quick mode searches only {baseline} and the submission with the lowest SingleStream early-stopping p90"
        )
    };
    for ((outcome, submission), selected) in outcomes.iter_mut().zip(submissions).zip(selected) {
        let Some((_, mean_ms)) = mean_of(outcome) else {
            continue;
        };
        let Outcome::Scored(card) = outcome else {
            continue;
        };
        if !selected {
            card.scenarios
                .notes
                .retain(|text| !text.starts_with("Server"));
            card.scenarios.notes.push(note.clone());
            continue;
        }
        match measure_server(event, *submission, config, mean_ms) {
            Ok(result) => {
                card.scenarios
                    .notes
                    .retain(|text| !text.starts_with("Server"));
                card.scenarios.server = Some(result);
            }
            Err(error) => {
                *outcome = Outcome::Error {
                    submission: submission.name().into(),
                    reason: format!("Server scenario: {error}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_core::schedule::SimulatedClock;

    fn quick() -> ServerConfig {
        ServerConfig {
            queries_per_step: 2_000,
            max_steps: 16,
            relative_tolerance: 0.03,
            idle_tail_fraction: 0.5,
            max_step_seconds: 1e9,
            search_every_submission: true,
        }
    }

    /// A run at `qps` where every query takes `service_ns` on a simulated clock.
    fn simulated_run(qps: f64, n: usize, service_ns: f64) -> Result<ScheduledRun, OlympicsError> {
        let clock = SimulatedClock::new();
        let arrivals = poisson_arrivals_ns(qps, n, 9)?;
        run_open_loop(&clock, &arrivals, |_| {
            clock.advance_ns(service_ns);
            Ok::<(), OlympicsError>(())
        })
    }

    #[test]
    fn finds_the_rate_of_a_synthetic_queue_below_its_saturation() {
        // 100 µs per query: saturation at 10,000 queries/s; a 5 ms p99 limit is 50 service times, reached
        // by an M/D/1 queue somewhere around 95% load.
        let config = quick();
        let result = search_max_qps(1_000.0, 5.0, &config, 0.95, |qps, n| {
            simulated_run(qps, n, 100_000.0)
        })
        .unwrap();
        let max = result.max_qps.expect("a rate passed");
        assert!(5_000.0 < max && max < 10_000.0, "{max}");
        let at_max = result.at_max.as_ref().unwrap();
        assert!(at_max.passed && at_max.early_stopping_p99_ms <= 5.0);
        let failing = result.lowest_failing_qps.unwrap();
        assert!(
            failing > max && failing <= max * 1.03 + 1e-9,
            "{max} {failing}"
        );
        assert!(result.steps.len() <= config.max_steps);
        assert!(
            result.stop_reason.starts_with("bracketed"),
            "{}",
            result.stop_reason
        );
    }

    #[test]
    fn an_unsustainable_rate_fails_even_under_a_loose_limit() {
        // A limit no finite run reaches: only the stability condition stops the search, near saturation.
        let config = quick();
        let result = search_max_qps(1_000.0, 1e12, &config, 0.95, |qps, n| {
            simulated_run(qps, n, 100_000.0)
        })
        .unwrap();
        let max = result.max_qps.unwrap();
        assert!(8_000.0 < max && max < 10_300.0, "{max}");
        let failed = result.steps.iter().find(|step| !step.passed).unwrap();
        assert!(failed.qps > 10_000.0, "{}", failed.qps);
        assert!(failed.last_idle_index.unwrap_or(0) < config.queries_per_step / 2);
    }

    #[test]
    fn a_step_function_is_bracketed_then_bisected() {
        // Pass exactly below 1,234 queries/s; latencies 1 ms, or 100 ms above.
        let config = quick();
        let result = search_max_qps(100.0, 50.0, &config, 0.95, |qps, n| {
            let latency_ns = if qps <= 1_234.0 { 1e6 } else { 1e8 };
            Ok(ScheduledRun {
                latencies_ns: vec![latency_ns; n],
                arrival_span_ns: n as f64 / qps * 1e9,
                completion_span_ns: n as f64 / qps * 1e9,
                n_queued: 0,
                last_idle_index: Some(n - 1),
            })
        })
        .unwrap();
        let max = result.max_qps.unwrap();
        assert!((1_234.0 / 1.03..=1_234.0).contains(&max), "{max}");
        // Bracketing: 100, 200, 400, 800, 1600; then bisection.
        let rates: Vec<f64> = result.steps.iter().take(5).map(|step| step.qps).collect();
        assert_eq!(rates, vec![100.0, 200.0, 400.0, 800.0, 1_600.0]);
    }

    #[test]
    fn nothing_passes_and_bad_configurations_are_errors() {
        let config = ServerConfig {
            max_steps: 6,
            ..quick()
        };
        let result = search_max_qps(100.0, 1.0, &config, 0.95, |qps, n| {
            simulated_run(qps, n, 5e6)
        })
        .unwrap();
        assert!(result.max_qps.is_none() && result.at_max.is_none());
        assert_eq!(result.steps.len(), 6);
        assert!(result.describe().contains("no arrival rate passed"));
        let too_few = ServerConfig {
            queries_per_step: 661,
            ..quick()
        };
        assert!(
            search_max_qps(100.0, 1.0, &too_few, 0.95, |qps, n| simulated_run(
                qps, n, 1.0
            ))
            .is_err()
        );
        assert!(
            search_max_qps(0.0, 1.0, &quick(), 0.95, |qps, n| simulated_run(
                qps, n, 1.0
            ))
            .is_err()
        );
        let failing = search_max_qps(100.0, 1.0, &quick(), 0.95, |_, _| {
            Err(invalid("the submission broke"))
        });
        assert!(failing.is_err());
    }

    #[test]
    fn a_step_never_lasts_longer_than_its_budget() {
        // One second per step: at 1,000 queries/s a step runs 1,000 queries, not 2,000; below 662 queries/s
        // not even the early-stopping minimum fits, and the search stops, saying so.
        let config = ServerConfig {
            max_step_seconds: 1.0,
            ..quick()
        };
        let mut counts = Vec::new();
        let result = search_max_qps(1_000.0, 1.0, &config, 0.95, |qps, n| {
            counts.push(n);
            simulated_run(qps, n, 5e6)
        })
        .unwrap();
        assert_eq!(counts, vec![1_000]);
        assert!(result.max_qps.is_none());
        assert!(
            result.stop_reason.contains("would need"),
            "{}",
            result.stop_reason
        );
        assert_eq!(result.steps[0].n_queries, 1_000);
    }

    #[test]
    fn the_stability_condition_separates_stable_from_overloaded_queues() {
        // Exponential service, 2,000 queries: below 90% load the queue is called stable, above 110% not.
        let rates = simulate_stability_detector(&[0.8, 0.9, 1.1, 1.2], 2_000, 200, 0.5, 3).unwrap();
        let stable: Vec<f64> = rates.iter().map(|rate| rate.stable_fraction).collect();
        assert!(stable[0] >= 0.99 && stable[1] >= 0.95, "{stable:?}");
        assert!(stable[2] <= 0.05 && stable[3] <= 0.01, "{stable:?}");
    }
}
