//! GFLOP/s of every accel kernel next to the `matrixmultiply` and `gemm` (x86-v4) crates, measured in one run.
//!
//! `cargo run -p accel --release --example gflops [-- --sizes 64,128,256,512,1024 --rounds 7 --sample-ms 10
//! --threads 2 --only naive-ikj,blocked --full --best]`
//!
//! Kernels are measured in interleaved rounds (every kernel once per round, the round order fixed), so slow drift
//! of the machine affects them alike; each cell is the median over rounds of GFLOP/s, where one sample is a batch
//! of calls lasting at least `--sample-ms`. The textbook i-j-k loop is skipped above n = 512 unless `--full` is
//! given (one call takes seconds there). "% peak" divides by the FMA peak measured by `accel::peak_probe` in the
//! same run: the one-core peak for one-thread kernels, the all-cores peak for threaded ones. `--best` reports the
//! best round instead of the median (on a loaded shared machine the least disturbed sample is the better
//! estimate of what the code can do; say which one a figure is).

use std::time::Instant;

use accel::{Backend, Isa, KernelRun, MatmulConfig, PeakProbeConfig};
use anyhow::{bail, Context};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::{rngs::StdRng, Rng, SeedableRng};

const SEED: u64 = 0x5eed_acce1;

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Accel(Backend, Option<usize>),
    MatrixMultiply,
    Gemm(usize),
}

impl Contender {
    fn label(&self) -> String {
        match self {
            Contender::Accel(backend, Some(threads)) => format!("accel {backend} ({threads}t)"),
            Contender::Accel(backend, None) => format!("accel {backend}"),
            Contender::MatrixMultiply => "matrixmultiply 0.3".to_owned(),
            Contender::Gemm(threads) => format!("gemm 0.19 x86-v4 ({threads}t)"),
        }
    }

    fn threads(&self) -> usize {
        match self {
            Contender::Accel(_, threads) => threads.unwrap_or(1),
            Contender::MatrixMultiply => 1,
            Contender::Gemm(threads) => *threads,
        }
    }

    /// Runs `c = a · b` once; returns what accel reports it ran (None for the other crates).
    fn run(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        c: ArrayViewMut2<'_, f32>,
    ) -> anyhow::Result<Option<KernelRun>> {
        match *self {
            Contender::Accel(backend, threads) => {
                let config = MatmulConfig {
                    backend,
                    threads,
                    ..MatmulConfig::default()
                };
                Ok(Some(accel::matmul_into_with(a, b, c, false, &config)?))
            }
            Contender::MatrixMultiply => {
                accel::baselines::matrixmultiply_sgemm(a, b, c)?;
                Ok(None)
            }
            Contender::Gemm(threads) => {
                accel::baselines::gemm_sgemm(a, b, c, threads)?;
                Ok(None)
            }
        }
    }
}

struct Options {
    sizes: Vec<usize>,
    rounds: usize,
    sample_ms: f64,
    full: bool,
    threads: usize,
    /// Keep only contenders whose label contains one of these (comma-separated `--only`).
    only: Vec<String>,
    /// Report the best sample (the least disturbed) instead of the median: for a loaded, shared machine.
    best: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        sizes: vec![64, 128, 256, 512, 1024],
        rounds: 7,
        sample_ms: 10.0,
        full: false,
        threads: accel::default_threads(),
        only: Vec::new(),
        best: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = args.next().context("--sizes needs a value")?;
                options.sizes = list
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("bad --sizes")?;
            }
            "--rounds" => {
                options.rounds = args.next().context("--rounds needs a value")?.parse()?
            }
            "--sample-ms" => {
                options.sample_ms = args.next().context("--sample-ms needs a value")?.parse()?
            }
            "--threads" => {
                options.threads = args.next().context("--threads needs a value")?.parse()?
            }
            "--full" => options.full = true,
            "--best" => options.best = true,
            "--only" => {
                let list = args.next().context("--only needs a value")?;
                options.only = list.split(',').map(|s| s.trim().to_owned()).collect();
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-1.0f32..1.0))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let load =
        std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unavailable".to_owned());
    println!("load average before: {}", load.trim());
    println!(
        "isa: best {} (available: {:?}); seed {SEED:#x}",
        Isa::best(),
        Isa::available()
    );
    println!(
        "cache: {:?}; simd blocking: {:?}",
        accel::CacheInfo::detect(),
        accel::SimdBlocking::detect(Isa::best())
    );
    // Many short repetitions when reporting the best: one of them is likely undisturbed on a loaded machine.
    let (min_duration, repetitions) = if options.best {
        (std::time::Duration::from_millis(20), 15)
    } else {
        (std::time::Duration::from_millis(100), 3)
    };
    let peak = accel::peak_probe(&PeakProbeConfig {
        threads: Some(options.threads),
        min_duration,
        repetitions,
        ..PeakProbeConfig::default()
    })?;
    println!(
        "measured FMA peak ({}): {:.1} GFLOP/s one core, {:.1} GFLOP/s on {} threads",
        peak.isa, peak.gflops_per_core, peak.gflops_all_cores, peak.threads
    );

    let best = Isa::best();
    let mut contenders = vec![
        Contender::Accel(Backend::NaiveIjk, None),
        Contender::Accel(Backend::NaiveIkj, None),
        Contender::Accel(Backend::Blocked, None),
    ];
    contenders.extend(
        Isa::available()
            .into_iter()
            .rev()
            .map(|isa| Contender::Accel(Backend::Simd(isa), None)),
    );
    contenders.push(Contender::MatrixMultiply);
    contenders.push(Contender::Gemm(1));
    if options.threads > 1 {
        contenders.push(Contender::Accel(
            Backend::Parallel(best),
            Some(options.threads),
        ));
        contenders.push(Contender::Gemm(options.threads));
    }
    contenders.push(Contender::Accel(Backend::Auto, None));
    if !options.only.is_empty() {
        contenders.retain(|contender| {
            options
                .only
                .iter()
                .any(|wanted| contender.label().contains(wanted.as_str()))
        });
    }

    let mut rng = StdRng::seed_from_u64(SEED);
    // results[contender][size] = (median GFLOP/s, what ran)
    let mut results: Vec<Vec<Option<(f64, String)>>> =
        vec![vec![None; options.sizes.len()]; contenders.len()];
    for (size_idx, &n) in options.sizes.iter().enumerate() {
        let a = random_matrix(&mut rng, n, n);
        let b = random_matrix(&mut rng, n, n);
        let mut c = Array2::<f32>::zeros((n, n));
        let flops = 2.0 * (n as f64).powi(3);
        let active: Vec<usize> = (0..contenders.len())
            .filter(|&idx| {
                options.full
                    || n <= 512
                    || contenders[idx] != Contender::Accel(Backend::NaiveIjk, None)
            })
            .collect();
        // Calibrate: calls per sample so that one sample lasts at least sample_ms.
        let mut calls = vec![1usize; contenders.len()];
        let mut ran = vec![String::new(); contenders.len()];
        for &idx in &active {
            let start = Instant::now();
            let run = contenders[idx].run(a.view(), b.view(), c.view_mut())?;
            let seconds = start.elapsed().as_secs_f64();
            calls[idx] = ((options.sample_ms / 1e3 / seconds).ceil() as usize).max(1);
            ran[idx] = run.map_or_else(|| "-".to_owned(), |run| run.to_string());
        }
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
        for round in 0..options.rounds {
            for &idx in &active {
                // One call of a slow kernel takes seconds: three rounds are enough there.
                if calls[idx] == 1 && round >= 3 {
                    continue;
                }
                let start = Instant::now();
                for _ in 0..calls[idx] {
                    contenders[idx].run(std::hint::black_box(a.view()), b.view(), c.view_mut())?;
                }
                let seconds = start.elapsed().as_secs_f64() / calls[idx] as f64;
                std::hint::black_box(&c);
                samples[idx].push(flops / seconds / 1e9);
            }
        }
        for &idx in &active {
            let statistic = if options.best {
                samples[idx].iter().copied().fold(f64::NAN, f64::max)
            } else {
                median(&mut samples[idx])
            };
            results[idx][size_idx] = Some((statistic, ran[idx].clone()));
        }
        eprintln!("n = {n} done");
    }

    println!();
    let statistic = if options.best {
        "best of rounds"
    } else {
        "median of rounds"
    };
    println!("GFLOP/s, {statistic}, {} rounds", options.rounds);
    print!("{:<34}", "kernel (what ran)  GFLOP/s (% peak)");
    for n in &options.sizes {
        print!("{:>16}", format!("n={n}"));
    }
    println!();
    for (idx, contender) in contenders.iter().enumerate() {
        let ran = results[idx]
            .iter()
            .flatten()
            .map(|(_, ran)| ran.as_str())
            .next_back()
            .unwrap_or("-")
            .to_owned();
        print!("{:<34}", format!("{} [{ran}]", contender.label()));
        let peak_here = if contender.threads() > 1 {
            peak.gflops_all_cores
        } else {
            peak.gflops_per_core
        };
        for cell in &results[idx] {
            match cell {
                Some((gflops, _)) => print!(
                    "{:>16}",
                    format!("{gflops:.1} ({:.0}%)", 100.0 * gflops / peak_here)
                ),
                None => print!("{:>16}", "skipped"),
            }
        }
        println!();
    }

    let find = |wanted: Contender| contenders.iter().position(|c| *c == wanted);
    let ratio_row = |label: &str, top: Option<usize>, bottom: Option<usize>| {
        let (Some(top), Some(bottom)) = (top, bottom) else {
            return;
        };
        print!("{label:<34}");
        for (top_cell, bottom_cell) in results[top].iter().zip(&results[bottom]) {
            match (top_cell, bottom_cell) {
                (Some((x, _)), Some((y, _))) => print!("{:>16}", format!("{:.3}x", x / y)),
                _ => print!("{:>16}", "-"),
            }
        }
        println!();
    };
    println!();
    let simd = find(Contender::Accel(Backend::Simd(best), None));
    ratio_row("simd / gemm (1t)", simd, find(Contender::Gemm(1)));
    ratio_row(
        "simd / matrixmultiply",
        simd,
        find(Contender::MatrixMultiply),
    );
    ratio_row(
        "parallel / simd (thread scaling)",
        find(Contender::Accel(
            Backend::Parallel(best),
            Some(options.threads),
        )),
        simd,
    );
    ratio_row(
        "parallel / gemm (same threads)",
        find(Contender::Accel(
            Backend::Parallel(best),
            Some(options.threads),
        )),
        find(Contender::Gemm(options.threads)),
    );
    ratio_row(
        "blocked / naive-ikj",
        find(Contender::Accel(Backend::Blocked, None)),
        find(Contender::Accel(Backend::NaiveIkj, None)),
    );
    ratio_row(
        "simd / blocked",
        simd,
        find(Contender::Accel(Backend::Blocked, None)),
    );
    ratio_row(
        "simd / naive-ijk",
        simd,
        find(Contender::Accel(Backend::NaiveIjk, None)),
    );
    ratio_row(
        "auto / naive-ijk (full spectrum)",
        find(Contender::Accel(Backend::Auto, None)),
        find(Contender::Accel(Backend::NaiveIjk, None)),
    );
    let load =
        std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unavailable".to_owned());
    println!("\nload average after: {}", load.trim());
    Ok(())
}
