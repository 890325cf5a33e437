//! `cargo bench --bench claims [-- --quick --strict ...]`: this crate's claims, judged by TorchPerf.

use external_suite::radix_sort;
use perf_core::alloc::{measure_peak, CountingAllocator};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::{compare, CompareConfig};
use perf_core::workloads::WorkloadGenerator;
use suite::{Context, Suite};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::new();

fn sorting(context: &Context) -> Result<Vec<ClaimResult>, perf_core::PerfError> {
    let keys: Vec<u32> = WorkloadGenerator::new(context.seed).vector_u32(100_000);
    let config = if context.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::default()
    };
    let sort_copy = |sorter: fn(&mut [u32])| {
        move |keys: &Vec<u32>| {
            let mut v = keys.clone();
            sorter(&mut v);
            v
        }
    };
    let comparison = compare(
        &config,
        &keys,
        sort_copy(<[u32]>::sort),
        sort_copy(radix_sort),
    )?;
    let speed = Claim::threshold(
        "sort.radix_vs_std",
        "sort",
        "radix_sort is at least 1.2× slice::sort on 100,000 random u32",
        1.2,
        Direction::AtLeast,
    );
    let peaks: Vec<f64> = (0..5)
        .map(|_| {
            measure_peak(|| {
                let mut v = keys.clone();
                radix_sort(&mut v);
                v
            })
            .map(|(_, m)| m.peak_bytes as f64)
        })
        .collect::<Result<_, _>>()?;
    let (low, high) = peaks
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &p| (l.min(p), h.max(p)));
    let memory = Claim::threshold(
        "sort.radix_memory",
        "sort",
        "radix_sort of 100,000 u32 (a copy of the input included) allocates at most 1 MiB",
        1_048_576.0,
        Direction::AtMost,
    );
    Ok(vec![
        speed.judge_comparison(&comparison)?,
        memory.judge(Estimate::new(peaks[0], low, high, "bytes", 1.0)?),
    ])
}

fn main() -> std::process::ExitCode {
    Suite::new("external-suite").module("sort", sorting).main()
}
