//! The roofline from measured ceilings: the FMA peak from accel's probe and the memory bandwidth
//! from a stream-style triad over arrays much larger than the last-level cache; each layer placed
//! by its arithmetic intensity and its measured throughput.

use crate::error::ProfilingError;
use crate::latency::LayerLatency;
use perf_core::timer::Stopwatch;
use serde::{Deserialize, Serialize};
use std::hint::black_box;

/// Knobs of [`measure_bandwidth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandwidthConfig {
    /// Bytes of each of the three arrays (64 MiB by default: twice a 32 MiB L3, six times over
    /// the three arrays, so the triad streams from DRAM).
    pub array_bytes: usize,
    /// Bytes of each array covered by one timed chunk (2 MiB by default: about 0.2 ms at DRAM
    /// speed, shorter than a scheduler time slice).
    pub chunk_bytes: usize,
    /// Passes over the arrays.
    pub repetitions: usize,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        Self {
            array_bytes: 64 << 20,
            chunk_bytes: 2 << 20,
            repetitions: 10,
        }
    }
}

/// Result of [`measure_bandwidth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthReport {
    /// The ceiling: the median over every timed chunk of every pass, in GB/s (10⁹ bytes per
    /// second). Chunks are short, so on a shared machine most of them run without being
    /// preempted and the median is the rate of an uninterrupted stream; a whole pass is not.
    pub gbytes_per_second: f64,
    /// Every chunk's rate, in GB/s, in the order measured.
    pub chunk_gbytes_per_second: Vec<f64>,
    /// The best whole pass (chunks' times summed), in GB/s: lower than the ceiling when passes
    /// were preempted.
    pub best_pass_gbytes_per_second: f64,
    /// Bytes of each array.
    pub array_bytes: usize,
    /// Bytes counted per chunk: two arrays read, one written (STREAM's convention, which leaves
    /// out the write-allocate read, so the figure is a conservative ceiling).
    pub bytes_per_chunk: u64,
}

/// One triad pass `a[i] = b[i] + s · c[i]`, not inlined so the timed code is one loop.
#[inline(never)]
fn triad(a: &mut [f32], b: &[f32], c: &[f32], scalar: f32) {
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = b + scalar * c;
    }
}

/// Measure single-thread memory bandwidth with a triad over three large arrays, timed chunk by
/// chunk.
///
/// # Errors
/// [`ProfilingError::InvalidConfig`] for chunks under 64 KiB, arrays smaller than a chunk, or no
/// repetitions.
pub fn measure_bandwidth(config: &BandwidthConfig) -> Result<BandwidthReport, ProfilingError> {
    if config.chunk_bytes < (64 << 10)
        || config.array_bytes < config.chunk_bytes
        || config.repetitions == 0
    {
        return Err(ProfilingError::InvalidConfig(format!(
            "bandwidth needs chunks of at least 64 KiB, arrays of at least one chunk and one \
             repetition, got {} byte arrays, {} byte chunks, {} repetitions",
            config.array_bytes, config.chunk_bytes, config.repetitions
        )));
    }
    let value_bytes = std::mem::size_of::<f32>();
    let chunk = config.chunk_bytes / value_bytes;
    let len = config.array_bytes / value_bytes / chunk * chunk;
    // Distinct non-zero contents so every page is touched (and faulted in) before timing.
    let mut a = vec![1.0f32; len];
    let b: Vec<f32> = (0..len).map(|i| (i % 1024) as f32).collect();
    let c: Vec<f32> = (0..len).map(|i| (i % 512) as f32 * 0.5).collect();
    triad(&mut a, &b, &c, 3.0);
    let bytes_per_chunk = 3 * (chunk * value_bytes) as u64;
    let chunks_per_pass = len / chunk;
    let mut rates = Vec::with_capacity(config.repetitions * chunks_per_pass);
    let mut best_pass = f64::INFINITY;
    for repetition in 0..config.repetitions {
        let mut pass_seconds = 0.0;
        for ((a, b), c) in a
            .chunks_exact_mut(chunk)
            .zip(b.chunks_exact(chunk))
            .zip(c.chunks_exact(chunk))
        {
            let start = Stopwatch::start();
            triad(black_box(a), black_box(b), black_box(c), repetition as f32);
            let seconds = start.elapsed().as_secs_f64();
            pass_seconds += seconds;
            rates.push(bytes_per_chunk as f64 / seconds / 1e9);
        }
        black_box(&a);
        best_pass = best_pass.min(pass_seconds);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(BandwidthReport {
        gbytes_per_second: perf_core::stats::median(&sorted).unwrap_or(sorted[0]),
        chunk_gbytes_per_second: rates,
        best_pass_gbytes_per_second: (bytes_per_chunk * chunks_per_pass as u64) as f64
            / best_pass
            / 1e9,
        array_bytes: len * value_bytes,
        bytes_per_chunk,
    })
}

/// The two measured ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Compute ceiling, GFLOP/s (accel's FMA peak for the threads the layers ran on).
    pub peak_gflops: f64,
    /// Memory ceiling, GB/s.
    pub bandwidth_gbytes_per_second: f64,
}

impl Ceilings {
    /// Arithmetic intensity (FLOP/byte) where the two roofs meet.
    pub fn ridge_intensity(&self) -> f64 {
        self.peak_gflops / self.bandwidth_gbytes_per_second
    }

    /// The roof at `intensity`: min(peak, intensity × bandwidth).
    pub fn attainable_gflops(&self, intensity: f64) -> f64 {
        self.peak_gflops
            .min(intensity * self.bandwidth_gbytes_per_second)
    }

    /// Which roof binds at `intensity`.
    pub fn bound(&self, intensity: f64) -> Bound {
        if intensity < self.ridge_intensity() {
            Bound::Memory
        } else {
            Bound::Compute
        }
    }
}

/// Which roof limits a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Left of the ridge: bandwidth limits.
    Memory,
    /// Right of the ridge: the FMA units limit.
    Compute,
}

/// One layer on the roofline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RooflinePoint {
    /// Layer name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// FLOPs per call.
    pub flops: u64,
    /// Compulsory bytes per call.
    pub bytes: u64,
    /// FLOP per byte.
    pub intensity: f64,
    /// Measured GFLOP/s at the median latency.
    pub achieved_gflops: f64,
    /// Interval of the achieved GFLOP/s, from the median latency's interval.
    pub achieved_gflops_interval: Option<(f64, f64)>,
    /// The roof at this intensity.
    pub attainable_gflops: f64,
    /// Achieved as a percentage of the compute peak.
    pub percent_of_peak: f64,
    /// Achieved as a percentage of the roof at this intensity (over 100 when the working set is
    /// served from cache faster than the DRAM ceiling).
    pub percent_of_roof: f64,
    /// Which roof binds.
    pub bound: Bound,
    /// Median latency, ns.
    pub median_ns: f64,
}

/// Place measured layers on the roofline.
pub fn roofline(latencies: &[LayerLatency], ceilings: &Ceilings) -> Vec<RooflinePoint> {
    latencies
        .iter()
        .map(|latency| {
            let intensity = latency.cost.arithmetic_intensity();
            let achieved = latency.achieved_gflops();
            let attainable = ceilings.attainable_gflops(intensity);
            RooflinePoint {
                name: latency.name.clone(),
                kind: latency.kind.clone(),
                flops: latency.cost.flops,
                bytes: latency.cost.compulsory_bytes(),
                intensity,
                achieved_gflops: achieved,
                achieved_gflops_interval: latency.achieved_gflops_interval(),
                attainable_gflops: attainable,
                percent_of_peak: 100.0 * achieved / ceilings.peak_gflops,
                percent_of_roof: 100.0 * achieved / attainable,
                bound: ceilings.bound(intensity),
                median_ns: latency.result.median(),
            }
        })
        .collect()
}

/// Render roofline points as Markdown.
pub fn render_roofline(points: &[RooflinePoint], ceilings: &Ceilings) -> String {
    let mut text = format!(
        "ceilings: peak {:.1} GFLOP/s, bandwidth {:.1} GB/s, ridge {:.2} FLOP/byte\n\n\
         | layer | kind | FLOP/byte | median µs | GFLOP/s (95% CI) | roof GFLOP/s | % peak | % roof | bound |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---|\n",
        ceilings.peak_gflops,
        ceilings.bandwidth_gbytes_per_second,
        ceilings.ridge_intensity()
    );
    for point in points {
        let interval = point
            .achieved_gflops_interval
            .map_or_else(String::new, |(lo, hi)| format!(" [{lo:.1}, {hi:.1}]"));
        text.push_str(&format!(
            "| {} | {} | {:.2} | {:.1} | {:.1}{} | {:.1} | {:.1} | {:.0} | {:?} |\n",
            point.name,
            point.kind,
            point.intensity,
            point.median_ns / 1e3,
            point.achieved_gflops,
            interval,
            point.attainable_gflops,
            point.percent_of_peak,
            point.percent_of_roof,
            point.bound
        ));
    }
    text
}
