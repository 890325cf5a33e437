//! The environment monitor sees load it did not cause (a spinning child process) and load it did (a
//! spinning thread). No timing thresholds: the tests wait until the spinner has been charged CPU
//! ticks, then check that the monitor counted them.

use perf_core::environment::{
    parse_process_stat, process_stat, EnvironmentMonitor, EnvironmentRecord, MonitorConfig,
};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills and reaps the child when dropped, so a failing assertion leaves no spinner behind.
struct Spinner(Child);

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn child_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&text).ok().map(|stat| stat.cpu_ticks())
}

/// Wait (up to a generous minute, so a loaded CI machine cannot fail the test) until `ticks()` has
/// grown by `wanted` over its first value.
fn wait_for_ticks(wanted: u64, ticks: impl Fn() -> Option<u64>) -> bool {
    let Some(first) = ticks() else { return false };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ticks().is_some_and(|now| now >= first + wanted) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Off Linux (or in a sandbox without /proc) the fields are empty and the notes say why.
fn proc_unreadable(record: &EnvironmentRecord) -> bool {
    if std::fs::read_to_string("/proc/stat").is_ok() {
        return false;
    }
    assert!(record.others_cores.is_none() && record.steal_fraction.is_none());
    assert!(
        record.notes.iter().any(|note| note.contains("/proc/stat")),
        "{:?}",
        record.notes
    );
    true
}

#[test]
fn a_spinning_child_process_is_counted_as_another_process() {
    let child = match Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
    {
        Ok(child) => Spinner(child),
        Err(error) => {
            eprintln!("no `sh` to spin ({error}); nothing to check");
            return;
        }
    };
    let pid = child.0.id();
    let monitor = EnvironmentMonitor::start_with(MonitorConfig {
        sample_interval: Some(Duration::from_millis(20)),
        canary: false,
    });
    let charged = wait_for_ticks(5, || child_ticks(pid));
    let record = monitor.stop();
    drop(child);
    if proc_unreadable(&record) {
        return;
    }
    assert!(charged, "the spinner was never charged 5 ticks");
    eprintln!("{record:#?}\n{}", record.contention().description);
    let others = record.others_cores.expect("others_cores from /proc/stat");
    assert!(others > 0.0, "{record:#?}");
    let run_queue = record.run_queue.expect("run queue sampled");
    assert!(
        run_queue.samples >= 2 && run_queue.max >= 1,
        "{run_queue:?}"
    );
    assert!(record.contention().description.contains("core"));
}

#[test]
fn a_spinning_thread_shows_in_the_run_queue_and_in_own_cpu_time() {
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut counter = 0u64;
            while !stop.load(Ordering::Relaxed) {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
            counter
        })
    };
    let monitor = EnvironmentMonitor::start_with(MonitorConfig {
        sample_interval: Some(Duration::from_millis(20)),
        canary: true,
    });
    let charged = wait_for_ticks(5, || process_stat().ok().map(|s| s.cpu_ticks()));
    let record = monitor.stop();
    stop.store(true, Ordering::Relaxed);
    spinner.join().expect("spinner thread");
    if proc_unreadable(&record) {
        return;
    }
    assert!(charged, "this process was never charged 5 ticks");
    assert!(record.self_cores.expect("self_cores") > 0.0, "{record:#?}");
    // The spinner is always runnable and the reading thread is running: at least two tasks.
    let run_queue = record.run_queue.expect("run queue sampled");
    assert!(run_queue.max >= 2, "{run_queue:?}");
    let canary = record.canary.expect("canary timed");
    assert!(canary.before_ns > 0.0 && canary.after_ns > 0.0 && canary.ratio > 0.0);
    let json = serde_json::to_string(&record).unwrap();
    let back: EnvironmentRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
}

#[test]
fn a_monitor_without_sampler_or_canary_still_records() {
    let monitor = EnvironmentMonitor::start_with(MonitorConfig {
        sample_interval: None,
        canary: false,
    });
    let record = monitor.stop();
    assert!(record.canary.is_none());
    assert!(record.duration_seconds >= 0.0);
    if proc_unreadable(&record) {
        return;
    }
    // Start and stop readings only.
    assert_eq!(record.run_queue.map(|q| q.samples), Some(2));
    assert!(record.load_average_start.is_some());
}
