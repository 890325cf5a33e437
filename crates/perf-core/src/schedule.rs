//! Issuing queries on a schedule, as MLPerf LoadGen's scenarios do: one query after another (SingleStream,
//! [`run_closed_loop`]) or at seeded Poisson arrival times whatever the system's state (Server,
//! [`run_open_loop`], with [`poisson_arrivals_ns`]). Each query's latency is its completion minus its
//! scheduled arrival, so time spent queued behind earlier queries counts, as it does for a user.
//!
//! The clock is a trait, [`QueryClock`]: [`MonotonicClock`] reads the monotonic clock and waits for a
//! deadline by spinning (an arrival gap of a few microseconds is far below what a sleep can hit), and
//! [`SimulatedClock`] is advanced by the caller, so the scheduling logic is tested with known service times
//! and no timing assertion.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::PerfError;

/// A clock the scheduler reads and waits on.
pub trait QueryClock {
    /// Nanoseconds since the clock's origin.
    fn now_ns(&self) -> f64;

    /// Returns once [`QueryClock::now_ns`] is at or after `deadline_ns`.
    fn wait_until_ns(&self, deadline_ns: f64);
}

/// The monotonic clock ([`std::time::Instant`]), its origin at construction.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits longer than this sleep for all but the last [`SPIN_MARGIN`], then spin.
const SLEEP_ABOVE: Duration = Duration::from_millis(2);
/// The part of a long wait that is spun rather than slept (a sleep overshoots by up to about a millisecond).
const SPIN_MARGIN: Duration = Duration::from_millis(1);

impl QueryClock for MonotonicClock {
    fn now_ns(&self) -> f64 {
        self.origin.elapsed().as_nanos() as f64
    }

    fn wait_until_ns(&self, deadline_ns: f64) {
        if !deadline_ns.is_finite() {
            return;
        }
        let remaining_ns = deadline_ns - self.now_ns();
        if remaining_ns <= 0.0 {
            return;
        }
        let remaining = Duration::from_nanos(remaining_ns as u64);
        if remaining > SLEEP_ABOVE {
            std::thread::sleep(remaining - SPIN_MARGIN);
        }
        while self.now_ns() < deadline_ns {
            std::hint::spin_loop();
        }
    }
}

/// A clock that moves only when told: [`SimulatedClock::advance_ns`] (a query's simulated service time)
/// and [`QueryClock::wait_until_ns`] (jumps to the deadline).
#[derive(Debug, Default)]
pub struct SimulatedClock {
    now_ns: Cell<f64>,
}

impl SimulatedClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `duration_ns` (ignored when not finite and positive).
    pub fn advance_ns(&self, duration_ns: f64) {
        if duration_ns.is_finite() && duration_ns > 0.0 {
            self.now_ns.set(self.now_ns.get() + duration_ns);
        }
    }
}

impl QueryClock for SimulatedClock {
    fn now_ns(&self) -> f64 {
        self.now_ns.get()
    }

    fn wait_until_ns(&self, deadline_ns: f64) {
        if deadline_ns > self.now_ns.get() {
            self.now_ns.set(deadline_ns);
        }
    }
}

/// `n` seeded Poisson arrival times at `qps` queries per second, in nanoseconds from the start of the run:
/// cumulative sums of exponential inter-arrival gaps (mean `1e9 / qps` ns) by inversion, `−ln(1 − U) / λ`.
/// The same seed gives the same unit-rate pattern at every rate, only scaled (common random numbers across
/// the steps of a search).
///
/// # Errors
/// `qps` not finite and positive.
pub fn poisson_arrivals_ns(qps: f64, n: usize, seed: u64) -> Result<Vec<f64>, PerfError> {
    if !(qps.is_finite() && qps > 0.0) {
        return Err(PerfError::InvalidConfig(format!(
            "arrival rate must be finite and positive, got {qps} queries/s"
        )));
    }
    let mean_gap_ns = 1e9 / qps;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut time_ns = 0.0;
    Ok((0..n)
        .map(|_| {
            let uniform: f64 = rng.random();
            time_ns += -(1.0 - uniform).ln() * mean_gap_ns;
            time_ns
        })
        .collect())
}

/// What a scheduled run observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRun {
    /// Per query, completion minus scheduled arrival (queueing included), ns.
    pub latencies_ns: Vec<f64>,
    /// From the run's start to the last scheduled arrival, ns.
    pub arrival_span_ns: f64,
    /// From the run's start to the last completion, ns.
    pub completion_span_ns: f64,
    /// Queries issued after their scheduled arrival because the previous one was still running.
    pub n_queued: usize,
    /// Index of the last query that arrived to an idle system (issued at its scheduled time); `None` when
    /// every query waited. An unstable queue (arrivals faster than service) stops returning to idle.
    pub last_idle_index: Option<usize>,
}

impl ScheduledRun {
    /// Queries completed per second over the run (`n / completion span`).
    pub fn completed_qps(&self) -> f64 {
        self.latencies_ns.len() as f64 / (self.completion_span_ns / 1e9)
    }

    /// Queries offered per second (`n / arrival span`).
    pub fn offered_qps(&self) -> f64 {
        self.latencies_ns.len() as f64 / (self.arrival_span_ns / 1e9)
    }
}

/// The Server scenario's issue loop, on the calling thread: query `i` is issued at `arrivals_ns[i]` after
/// the start (or as soon as query `i − 1` completes, if that is later) by calling `issue(i)`; its latency is
/// its completion minus its scheduled arrival.
///
/// # Errors
/// The first error `issue` returns (the run stops there).
pub fn run_open_loop<C: QueryClock + ?Sized, E>(
    clock: &C,
    arrivals_ns: &[f64],
    mut issue: impl FnMut(usize) -> Result<(), E>,
) -> Result<ScheduledRun, E> {
    let start_ns = clock.now_ns();
    let mut latencies_ns = Vec::with_capacity(arrivals_ns.len());
    let mut n_queued = 0usize;
    let mut last_idle_index = None;
    let mut last_completion_ns = start_ns;
    for (index, &arrival_ns) in arrivals_ns.iter().enumerate() {
        let due_ns = start_ns + arrival_ns;
        let now_ns = clock.now_ns();
        if now_ns > due_ns {
            n_queued += 1;
        } else {
            clock.wait_until_ns(due_ns);
            last_idle_index = Some(index);
        }
        issue(index)?;
        last_completion_ns = clock.now_ns();
        latencies_ns.push(last_completion_ns - due_ns);
    }
    Ok(ScheduledRun {
        latencies_ns,
        arrival_span_ns: arrivals_ns.last().copied().unwrap_or(0.0),
        completion_span_ns: last_completion_ns - start_ns,
        n_queued,
        last_idle_index,
    })
}

/// The SingleStream scenario's issue loop: `n` queries, each issued when the previous one completes;
/// each latency runs from one completion to the next (so it includes one clock read, as LoadGen's does).
///
/// # Errors
/// The first error `issue` returns (the run stops there).
pub fn run_closed_loop<C: QueryClock + ?Sized, E>(
    clock: &C,
    n: usize,
    mut issue: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<f64>, E> {
    let mut latencies_ns = Vec::with_capacity(n);
    let mut previous_ns = clock.now_ns();
    for index in 0..n {
        issue(index)?;
        let now_ns = clock.now_ns();
        latencies_ns.push(now_ns - previous_ns);
        previous_ns = now_ns;
    }
    Ok(latencies_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_have_the_stated_mean_and_are_seeded() {
        let arrivals = poisson_arrivals_ns(1_000.0, 100_000, 3).unwrap();
        // Mean gap 1 ms; its standard error over 10⁵ exponential gaps is 0.32%, so 2% is > 6 standard errors.
        let mean_gap_ns = arrivals.last().unwrap() / arrivals.len() as f64;
        assert!((mean_gap_ns / 1e6 - 1.0).abs() < 0.02, "{mean_gap_ns}");
        // Exponential: the share of gaps above the mean is e⁻¹ = 0.368.
        let mut previous = 0.0;
        let above = arrivals
            .iter()
            .filter(|&&time| {
                let gap = time - previous;
                previous = time;
                gap > 1e6
            })
            .count() as f64
            / arrivals.len() as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "{above}");
        assert!(arrivals.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(arrivals, poisson_arrivals_ns(1_000.0, 100_000, 3).unwrap());
        assert_ne!(arrivals, poisson_arrivals_ns(1_000.0, 100_000, 4).unwrap());
        // The same seed at twice the rate: the same pattern at half the times.
        let doubled = poisson_arrivals_ns(2_000.0, 100_000, 3).unwrap();
        assert!((doubled[500] * 2.0 - arrivals[500]).abs() < 1e-6 * arrivals[500]);
        assert!(poisson_arrivals_ns(0.0, 3, 1).is_err());
        assert!(poisson_arrivals_ns(f64::NAN, 3, 1).is_err());
    }

    #[test]
    fn open_loop_latency_includes_queueing() {
        let clock = SimulatedClock::new();
        // Three queries due at 0, 10, 20 ns; each takes 15 ns: the second waits 5, the third 10.
        let run = run_open_loop(&clock, &[0.0, 10.0, 20.0], |_| {
            clock.advance_ns(15.0);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(run.latencies_ns, vec![15.0, 20.0, 25.0]);
        assert_eq!(run.n_queued, 2);
        assert_eq!(run.last_idle_index, Some(0));
        assert_eq!(run.completion_span_ns, 45.0);
        assert_eq!(run.arrival_span_ns, 20.0);
        // Idle between arrivals: no queueing, latency = service.
        let clock = SimulatedClock::new();
        let run = run_open_loop(&clock, &[0.0, 100.0, 200.0], |_| {
            clock.advance_ns(15.0);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(run.latencies_ns, vec![15.0; 3]);
        assert_eq!(run.n_queued, 0);
        assert_eq!(run.last_idle_index, Some(2));
    }

    #[test]
    fn loops_stop_at_the_first_error() {
        let clock = SimulatedClock::new();
        let mut calls = 0;
        let result = run_open_loop(&clock, &[0.0, 1.0, 2.0], |index| {
            calls += 1;
            if index == 1 {
                Err("broken")
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err("broken"));
        assert_eq!(calls, 2);
        let result = run_closed_loop(&clock, 5, |index| if index == 3 { Err(3) } else { Ok(()) });
        assert_eq!(result, Err(3));
    }

    #[test]
    fn closed_loop_latency_is_completion_to_completion() {
        let clock = SimulatedClock::new();
        let latencies = run_closed_loop(&clock, 4, |index| {
            clock.advance_ns(10.0 * (index + 1) as f64);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(latencies, vec![10.0, 20.0, 30.0, 40.0]);
    }

    #[test]
    fn monotonic_clock_waits_until_the_deadline() {
        // Ordering, not duration: after the wait the clock reads at or past the deadline.
        let clock = MonotonicClock::new();
        let deadline = clock.now_ns() + 50_000.0;
        clock.wait_until_ns(deadline);
        assert!(clock.now_ns() >= deadline);
        clock.wait_until_ns(f64::NAN);
    }
}
