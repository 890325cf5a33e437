//! Measure the two roofline ceilings on this machine: stream-triad DRAM bandwidth (one thread)
//! and accel's FMA peak (one thread). `cargo run --release -p profiling --example ceilings`.

use profiling::roofline::{measure_bandwidth, BandwidthConfig};

fn main() -> anyhow::Result<()> {
    let bandwidth = measure_bandwidth(&BandwidthConfig {
        repetitions: 20,
        ..BandwidthConfig::default()
    })?;
    println!(
        "triad bandwidth, one thread, 3 × {} MiB in {} KiB chunks: median chunk {:.1} GB/s, best whole pass {:.1} GB/s",
        bandwidth.array_bytes >> 20,
        (bandwidth.bytes_per_chunk / 3) >> 10,
        bandwidth.gbytes_per_second,
        bandwidth.best_pass_gbytes_per_second
    );
    let peak = accel::peak_probe(&accel::PeakProbeConfig {
        threads: Some(1),
        min_duration: std::time::Duration::from_millis(2),
        repetitions: 40,
        ..accel::PeakProbeConfig::default()
    })?;
    println!(
        "FMA peak ({:?}), one thread: {:.1} GFLOP/s; ridge {:.2} FLOP/byte",
        peak.isa,
        peak.gflops_per_core,
        peak.gflops_per_core / bandwidth.gbytes_per_second
    );
    println!(
        "hardware counters: {}",
        profiling::counters::unavailability_reason()
    );
    Ok(())
}
