//! How often does the comparator call a difference that is not there (A/A), and how often does it
//! catch one that is (an injected 5% slowdown)? One line per configuration: pairs inside one round
//! (inference over the pairs) against the same pairs split over independent rounds (inference over
//! the round means, docs/METHODS.md: "samples inside one process are not independent replications").
//!
//! ```text
//! cargo run -p perf-core --release --example aa_study            # 40 trials per cell
//! cargo run -p perf-core --release --example aa_study -- 100     # more trials
//! ```
//! "Called" = both the primary and the robust interval exclude 1 and the primary lies beyond the
//! ±1% noise threshold (`Comparison::is_meaningful_difference`), as the validation suite counts it.

use perf_core::compare::{compare, CompareConfig};
use perf_core::measure::WarmUp;
use perf_core::stats::binomial_interval;
use perf_core::workloads::known_work;
use std::time::Duration;

/// Both sides are values of this one closure type, so they run the same machine code.
fn scaled_work(percent: u64) -> impl FnMut(&u64) -> u64 + Clone {
    move |&steps| known_work(steps * percent / 100)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let trials: u64 = std::env::args()
        .nth(1)
        .map(|argument| argument.parse())
        .transpose()?
        .unwrap_or(40);
    let steps = 20_000u64;
    println!("trials per cell: {trials}; workload: {steps} dependent multiply-adds per iteration");
    println!(
        "{:<28} {:>22} {:>22} {:>10}",
        "configuration", "A/A called different", "5% slowdown caught", "median MDE"
    );
    for (label, pairs, rounds) in [
        ("30 pairs, 1 round", 30usize, 1usize),
        ("30 pairs, 5 rounds of 6", 30, 5),
        ("40 pairs, 8 rounds of 5", 40, 8),
    ] {
        let mut cells = Vec::new();
        let mut detectable = Vec::new();
        for slowdown in [0u64, 5] {
            let mut called = 0u64;
            for trial in 0..trials {
                let config = CompareConfig {
                    pairs,
                    rounds,
                    warm_up: WarmUp::Time(Duration::from_millis(20)),
                    seed: 0x5EED + trial,
                    ..CompareConfig::default()
                };
                let comparison = compare(
                    &config,
                    &steps,
                    scaled_work(100),
                    scaled_work(100 + slowdown),
                )?;
                let meaningful = comparison.is_meaningful_difference(config.noise_threshold);
                called +=
                    u64::from(meaningful && (slowdown == 0 || comparison.speedup.ci_upper < 1.0));
                detectable.push(comparison.minimum_detectable_speedup);
            }
            let (lower, upper) = binomial_interval(called, trials, 0.95)?;
            cells.push(format!(
                "{:>5.1}% [{:>4.1}, {:>5.1}]",
                100.0 * called as f64 / trials as f64,
                100.0 * lower,
                100.0 * upper
            ));
        }
        detectable.sort_by(f64::total_cmp);
        let mde = detectable[detectable.len() / 2];
        println!(
            "{label:<28} {:>22} {:>22} {:>9.2}%",
            cells[0],
            cells[1],
            100.0 * (mde - 1.0)
        );
    }
    Ok(())
}
