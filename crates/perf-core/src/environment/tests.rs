//! The environment module's tests: the parsers on fixtures (malformed ones included), the summaries,
//! the monitor on the live machine (values only where the files exist), and the contention verdicts.

use super::*;
use crate::claim::Verdict;

const STAT: &str = "cpu  100 5 50 1000 20 3 2 10 0 0\n\
    cpu0 50 2 25 500 10 1 1 5 0 0\n\
    cpu1 50 3 25 500 10 2 1 5 0 0\n\
    intr 12345 0 0\n\
    ctxt 999\n\
    procs_running 3\n\
    procs_blocked 1\n";

#[test]
fn proc_stat_fixture_parses() {
    let stat = parse_proc_stat(STAT).unwrap();
    assert_eq!(stat.cpu_count, 2);
    assert_eq!(stat.procs_running, Some(3));
    assert_eq!(stat.procs_blocked, Some(1));
    assert_eq!(stat.all_cpus.steal, 10);
    assert_eq!(stat.all_cpus.busy(), 100 + 5 + 50 + 3 + 2);
    assert_eq!(stat.all_cpus.total(), 160 + 1000 + 20 + 10);
}

#[test]
fn malformed_proc_stat_is_an_error() {
    assert!(parse_proc_stat("").is_err());
    assert!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n").is_err());
    assert!(parse_proc_stat("cpu 1 2 3 4\n").is_err());
    assert!(parse_proc_stat("cpu 1 2 x 4 5 6 7 8\n").is_err());
    assert!(parse_proc_stat("cpu 1 2 -3 4 5 6 7 8\n").is_err());
    // A malformed procs_running line leaves the field empty, the rest stands.
    let stat = parse_proc_stat("cpu 1 2 3 4 5 6 7 8\nprocs_running many\n").unwrap();
    assert_eq!(stat.procs_running, None);
    assert_eq!(stat.cpu_count, 0);
}

#[test]
fn loadavg_parses_and_rejects_garbage() {
    let load = parse_loadavg("0.52 0.58 1.59 2/345 12345\n").unwrap();
    assert_eq!(load.as_array(), [0.52, 0.58, 1.59]);
    assert_eq!((load.runnable, load.entities), (Some(2), Some(345)));
    let short = parse_loadavg("0.1 0.2 0.3").unwrap();
    assert_eq!(short.runnable, None);
    assert!(parse_loadavg("").is_err());
    assert!(parse_loadavg("0.1 0.2").is_err());
    assert!(parse_loadavg("0.1 nan 0.3 1/2 3").is_err());
    assert!(parse_loadavg("0.1 -0.2 0.3 1/2 3").is_err());
    assert_eq!(parse_loadavg("1 2 3 x/y 4").unwrap().runnable, None);
}

#[test]
fn process_stat_counts_fields_after_the_name() {
    let line = "4242 (my (odd) name) R 1 4242 4242 0 -1 4194304 100 0 0 0 731 42 0 0 20 0 3 0 1000";
    let stat = parse_process_stat(line).unwrap();
    assert_eq!(stat.state, 'R');
    assert_eq!((stat.user_ticks, stat.system_ticks), (731, 42));
    assert_eq!(stat.cpu_ticks(), 773);
    assert!(parse_process_stat("4242 no parenthesis R 1 2").is_err());
    assert!(parse_process_stat("4242 (x)").is_err());
    assert!(parse_process_stat("4242 (x) S 1 2 3").is_err());
    assert!(parse_process_stat("4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 a 42").is_err());
}

#[test]
fn frequencies_parse_and_summarize() {
    assert_eq!(parse_frequency_khz("2400000\n").unwrap(), 2_400_000);
    assert!(parse_frequency_khz("").is_err());
    assert!(parse_frequency_khz("0").is_err());
    assert!(parse_frequency_khz("fast").is_err());
    let summary = summarize_frequencies(&[2_000_000, 3_000_000]).unwrap();
    assert_eq!(summary.cpus, 2);
    assert_eq!(
        (summary.min_mhz, summary.mean_mhz, summary.max_mhz),
        (2000.0, 2500.0, 3000.0)
    );
    assert_eq!(summarize_frequencies(&[]), None);
}

fn stat_with(busy_user: u64, idle: u64, steal: u64, cpus: usize) -> ProcStat {
    ProcStat {
        all_cpus: CpuTicks {
            user: busy_user,
            idle,
            steal,
            ..CpuTicks::default()
        },
        cpu_count: cpus,
        procs_running: Some(1),
        procs_blocked: None,
    }
}

fn process_with(ticks: u64) -> ProcessStat {
    ProcessStat {
        state: 'R',
        user_ticks: ticks,
        system_ticks: 0,
    }
}

#[test]
fn cpu_usage_separates_others_from_self() {
    // 2 CPUs, 200 ticks in all = 100 ticks of wall time per CPU. Busy 150, of which ours 102.
    let start = stat_with(0, 0, 0, 2);
    let end = stat_with(150, 40, 10, 2);
    let usage = cpu_usage(
        Some(&start),
        Some(&end),
        Some(&process_with(0)),
        Some(&process_with(102)),
    );
    assert!((usage.others_cores.unwrap() - 0.48).abs() < 1e-12);
    assert!((usage.self_cores.unwrap() - 1.02).abs() < 1e-12);
    assert!((usage.steal_fraction.unwrap() - 0.05).abs() < 1e-12);
    assert_eq!(usage.iowait_fraction, Some(0.0));
    // Our ticks above the machine's busy ticks (accounting skew) give zero, never negative.
    let skewed = cpu_usage(
        Some(&start),
        Some(&end),
        Some(&process_with(0)),
        Some(&process_with(170)),
    );
    assert_eq!(skewed.others_cores, Some(0.0));
    // Missing or empty readings give no value rather than a guess.
    assert_eq!(cpu_usage(None, Some(&end), None, None), CpuUsage::default());
    assert_eq!(
        cpu_usage(Some(&start), Some(&start), None, None),
        CpuUsage::default()
    );
    let no_process = cpu_usage(Some(&start), Some(&end), None, Some(&process_with(1)));
    assert_eq!(no_process.others_cores, None);
    assert!(no_process.steal_fraction.is_some());
}

fn record(others: Option<f64>, steal: Option<f64>, canary: Option<f64>) -> EnvironmentRecord {
    EnvironmentRecord {
        duration_seconds: 1.0,
        logical_cpus: Some(2),
        steal_fraction: steal,
        iowait_fraction: None,
        others_cores: others,
        self_cores: None,
        load_average_start: None,
        load_average_end: None,
        run_queue: None,
        cpu_frequency_start: None,
        cpu_frequency_end: None,
        canary: canary.map(|ratio| CanaryRecord {
            before_ns: 100.0,
            after_ns: 100.0 * ratio,
            ratio,
        }),
        notes: Vec::new(),
    }
}

#[test]
fn contention_names_the_cause() {
    let busy = record(Some(0.48), Some(0.0), Some(1.01)).contention();
    assert_eq!(busy.verdict, ContentionVerdict::Detected);
    assert_eq!(
        busy.description,
        "another process held 48% of a core during the measurement"
    );
    let quiet = record(Some(0.02), Some(0.0), Some(1.02)).contention();
    assert_eq!(quiet.verdict, ContentionVerdict::None);
    assert!(
        quiet.description.starts_with("no contention seen"),
        "{}",
        quiet.description
    );
    let steal = record(None, Some(0.03), None).contention();
    assert_eq!(steal.verdict, ContentionVerdict::Suspected);
    assert!(
        steal.description.contains("stole 3.0%"),
        "{}",
        steal.description
    );
    let canary = record(Some(0.0), None, Some(0.7)).contention();
    assert_eq!(canary.verdict, ContentionVerdict::Detected);
    assert!(
        canary.description.contains("before the measurement"),
        "{}",
        canary.description
    );
    let two = record(Some(1.5), None, None).contention();
    assert!(
        two.description.contains("1.50 cores"),
        "{}",
        two.description
    );
    let unknown = record(None, None, None).contention();
    assert_eq!(unknown.verdict, ContentionVerdict::None);
    assert!(unknown.description.contains("unknown"));
}

#[test]
fn contention_qualifies_verdicts_without_raising_them() {
    use crate::claim::{Claim, Direction, Estimate};
    let claim = Claim::threshold("m.c", "m", "at least 1.5x", 1.5, Direction::AtLeast);
    let judged = |point: f64| {
        claim.judge(Estimate::new(point, point - 0.05, point + 0.05, "×", 0.95).unwrap())
    };
    let detected = record(Some(0.48), None, None).contention();
    let suspected = record(Some(0.15), None, None).contention();
    let quiet = record(Some(0.01), None, None).contention();
    let fail = detected.qualify(judged(1.2), true);
    assert_eq!(fail.verdict, Verdict::Inconclusive);
    assert!(fail.reason.contains("48% of a core"), "{}", fail.reason);
    assert!(fail.details.contains_key("contention"));
    let pass = detected.qualify(judged(2.0), true);
    assert_eq!(pass.verdict, Verdict::Pass);
    assert!(pass.reason.contains("contention"));
    // A claim that does not need every core keeps its verdict and names the contention.
    let kept = detected.qualify(judged(1.2), false);
    assert_eq!(kept.verdict, Verdict::Fail);
    assert!(kept.reason.contains("contention"));
    assert_eq!(
        suspected.qualify(judged(1.2), true).verdict,
        Verdict::Inconclusive
    );
    assert_eq!(quiet.qualify(judged(1.2), true), judged(1.2));
    let error = detected.qualify(claim.error("broke"), true);
    assert_eq!(error.verdict, Verdict::Error);
}

#[test]
fn run_queue_summary_subtracts_own_threads() {
    let samples = [
        RunQueueSample {
            procs_running: 4,
            own_running: Some(1),
        },
        RunQueueSample {
            procs_running: 2,
            own_running: Some(1),
        },
    ];
    let summary = summarize_run_queue(&samples).unwrap();
    assert_eq!((summary.mean, summary.max), (3.0, 4));
    assert_eq!(
        (summary.others_mean, summary.others_max),
        (Some(2.0), Some(3))
    );
    let partial = [RunQueueSample {
        procs_running: 4,
        own_running: None,
    }];
    assert_eq!(summarize_run_queue(&partial).unwrap().others_mean, None);
    assert_eq!(summarize_run_queue(&[]), None);
}
