//! sparse's claims: when pruned weights pay at batch 1. accel's dense GEMV, its block-sparse GEMV
//! (`BlockSparseMatrix`, 1 × 16 blocks pruned by L2 norm) and CSR's vector product are measured side by side
//! (perf-core's grid protocol: interleaved pairs at every sparsity, in sweeps) over a sparsity sweep on the
//! Olympics' layer shapes, one thread, one input vector per call. The break-even sparsity is where the
//! speedup and its interval cross 1×, interpolated between grid values.

use super::ModuleContext;
use accel::{
    prune_blocks, AccelError, BlockSparseMatrix, CsrMatrix, GemvConfig, SparseGemvConfig,
    SPARSE_BLOCK_WIDTH,
};
use anyhow::{Context, Result};
use ndarray::Array2;
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use perf_core::compare::Comparison;
use perf_core::grid::{compare_grid, GridComparison, GridConfig, GridPoint};
use perf_core::workloads::WorkloadGenerator;
use serde_json::json;

const MODULE: &str = "sparse";

/// Block sparsities of the sweep, percent.
const SPARSITIES: [u32; 9] = [0, 25, 50, 60, 70, 75, 80, 90, 95];

/// A layer's weight `in × out` (row-major, `y = x · W`).
struct LayerShape {
    id: &'static str,
    rows: usize,
    cols: usize,
    what: &'static str,
}

/// The Olympics' MLP layers: the Fashion MLP's two layers and a keyword-spotting-sized first layer.
const SHAPES: [LayerShape; 3] = [
    LayerShape {
        id: "fashion_784x256",
        rows: 784,
        cols: 256,
        what: "Fashion MLP layer 1",
    },
    LayerShape {
        id: "fashion_256x10",
        rows: 256,
        cols: 10,
        what: "Fashion MLP layer 2",
    },
    LayerShape {
        id: "kws_416x128",
        rows: 416,
        cols: 128,
        what: "keyword-spotting-sized layer (13 MFCCs × 32 frames → 128)",
    },
];

/// The headline shape of the threshold claims.
const HEADLINE: &str = "fashion_784x256";

/// One sparsity of one layer, in the three storages.
struct Variant {
    sparsity: u32,
    dense: Array2<f32>,
    blocks: BlockSparseMatrix,
    /// CSR of `Wᵀ` (`out × in`), the layout the Olympics' CSR submissions store.
    csr: CsrMatrix,
}

impl Variant {
    fn new(weight: &Array2<f32>, sparsity: u32) -> Result<Variant> {
        let dense = prune_blocks(weight.view(), f64::from(sparsity) / 100.0)?;
        let blocks = BlockSparseMatrix::from_dense(dense.view())?;
        let transposed = dense.t().as_standard_layout().to_owned();
        let csr = CsrMatrix::from_dense(transposed.view(), 0.0)?;
        Ok(Variant {
            sparsity,
            dense,
            blocks,
            csr,
        })
    }

    fn dense_slice(&self) -> Result<&[f32], AccelError> {
        self.dense
            .as_slice()
            .ok_or_else(|| AccelError::InvalidConfig {
                what: "pruned weight not contiguous".into(),
            })
    }
}

fn variant(variants: &[Variant], sparsity: u32) -> Result<&Variant, AccelError> {
    variants
        .iter()
        .find(|variant| variant.sparsity == sparsity)
        .ok_or_else(|| AccelError::InvalidConfig {
            what: format!("no variant at {sparsity}%"),
        })
}

/// The three sides' closures for an input `x`; each owns its output buffer and returns the kernel that ran.
fn dense_side<'a>(
    variants: &'a [Variant],
    x: &'a [f32],
    cols: usize,
) -> impl FnMut(&u32) -> Result<(String, f32), AccelError> + 'a {
    let mut y = vec![0.0f32; cols];
    move |&sparsity| {
        let weight = variant(variants, sparsity)?.dense_slice()?;
        let run = accel::vector_matrix_rows(x, weight, &mut y, false, &GemvConfig::default())?;
        Ok((run.to_string(), y.first().copied().unwrap_or(0.0)))
    }
}

fn block_side<'a>(
    variants: &'a [Variant],
    x: &'a [f32],
    cols: usize,
) -> impl FnMut(&u32) -> Result<(String, f32), AccelError> + 'a {
    let mut y = vec![0.0f32; cols];
    move |&sparsity| {
        let run = variant(variants, sparsity)?.blocks.vector_product_into(
            x,
            &mut y,
            false,
            &SparseGemvConfig::default(),
        )?;
        Ok((run.to_string(), y.first().copied().unwrap_or(0.0)))
    }
}

fn csr_side<'a>(
    variants: &'a [Variant],
    x: &'a [f32],
    cols: usize,
) -> impl FnMut(&u32) -> Result<(String, f32), AccelError> + 'a {
    let mut y = vec![0.0f32; cols];
    move |&sparsity| {
        variant(variants, sparsity)?
            .csr
            .vector_product_into(x, &mut y, false)?;
        Ok((
            "csr-vector-scalar".to_string(),
            y.first().copied().unwrap_or(0.0),
        ))
    }
}

/// The sweep of one layer: dense against block-sparse and dense against CSR at every sparsity.
struct Sweep {
    shape: &'static LayerShape,
    variants: Vec<Variant>,
    block: GridComparison<u32>,
    csr: GridComparison<u32>,
    kernels: [String; 3],
}

fn points(sparsities: &[u32], pairs: usize) -> Vec<GridPoint<u32>> {
    // Calls of 0.3–30 µs: twenty warm-up calls per side, the fastest of which sizes each sample's batch to
    // at least 1 ms.
    sparsities
        .iter()
        .map(|&sparsity| GridPoint::new(sparsity, pairs).warm_up_calls(20, 20))
        .collect()
}

fn sweep(
    shape: &'static LayerShape,
    generator: &mut WorkloadGenerator,
    config: &GridConfig,
    pairs: usize,
) -> Result<Sweep> {
    let weight = Array2::from_shape_vec(
        (shape.rows, shape.cols),
        generator.matrix_f32(shape.rows, shape.cols),
    )?;
    // A dense input (no zeros), so that the block-sparse kernel's zero skipping plays no part here.
    let x = generator.vector_f32(shape.rows);
    let variants = SPARSITIES
        .iter()
        .map(|&sparsity| Variant::new(&weight, sparsity))
        .collect::<Result<Vec<_>>>()?;
    let grid = points(&SPARSITIES, pairs);
    let kernels = [
        dense_side(&variants, &x, shape.cols)(&SPARSITIES[0])?.0,
        block_side(&variants, &x, shape.cols)(&SPARSITIES[0])?.0,
        csr_side(&variants, &x, shape.cols)(&SPARSITIES[0])?.0,
    ];
    let block = compare_grid(
        config,
        &grid,
        dense_side(&variants, &x, shape.cols),
        block_side(&variants, &x, shape.cols),
    )?;
    let csr = compare_grid(
        config,
        &grid,
        dense_side(&variants, &x, shape.cols),
        csr_side(&variants, &x, shape.cols),
    )?;
    Ok(Sweep {
        shape,
        variants,
        block,
        csr,
        kernels,
    })
}

/// Where a speedup series first stays at or above 1×, interpolated in log-ratio between the last grid value
/// below 1× and the next; the first grid value when none is below (censored there), `None` when the last one is.
fn crossing(sparsities: &[f64], ratios: &[f64]) -> Option<f64> {
    match ratios.iter().rposition(|&ratio| ratio < 1.0) {
        None => sparsities.first().copied(),
        Some(last) if last + 1 >= ratios.len() => None,
        Some(last) => {
            let (below, above) = (ratios[last].ln(), ratios[last + 1].ln());
            let fraction = -below / (above - below);
            Some(sparsities[last] + fraction * (sparsities[last + 1] - sparsities[last]))
        }
    }
}

/// A break-even sparsity and its interval, percent.
struct BreakEven {
    point: f64,
    lower: f64,
    upper: f64,
    /// The sparse side is faster (its interval's upper end at or above 1×) at every grid value, so the lower
    /// end is the first grid value, not a crossing.
    lower_censored: bool,
    /// The interval's lower end never reaches 1× on the grid, so the upper end is 100%, not a crossing.
    upper_censored: bool,
}

/// The break-even sparsity of a grid: the point series' crossing, and the interval between the crossings of
/// the upper and the lower interval ends (the upper end censored at 100% when the lower end never reaches 1×).
fn break_even(grid: &GridComparison<u32>) -> Option<BreakEven> {
    let sparsities: Vec<f64> = grid
        .points
        .iter()
        .map(|point| f64::from(point.parameter))
        .collect();
    let series = |pick: fn(&Comparison) -> f64| -> Vec<f64> {
        grid.points
            .iter()
            .map(|point| pick(&point.comparison))
            .collect()
    };
    let point = crossing(&sparsities, &series(|c| c.speedup.point))?;
    let upper_series = series(|c| c.speedup.ci_upper);
    let lower = crossing(&sparsities, &upper_series).unwrap_or(point);
    let (upper, upper_censored) = match crossing(&sparsities, &series(|c| c.speedup.ci_lower)) {
        Some(upper) => (upper, false),
        None => (100.0, true),
    };
    Some(BreakEven {
        point,
        lower: lower.min(point),
        upper: upper.max(point),
        lower_censored: upper_series.iter().all(|&ratio| ratio >= 1.0),
        upper_censored,
    })
}

fn kilobytes(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

fn speedup_cell(comparison: &Comparison) -> String {
    let speedup = &comparison.speedup;
    format!(
        "{:.2}× [{:.2}, {:.2}]",
        speedup.point, speedup.ci_lower, speedup.ci_upper
    )
}

fn sweep_table(sweep: &Sweep) -> Result<serde_json::Value> {
    let mut rows = Vec::new();
    for variant in &sweep.variants {
        let block = &sweep
            .block
            .point(&variant.sparsity)
            .context("sparsity missing from the block grid")?
            .comparison;
        let csr = &sweep
            .csr
            .point(&variant.sparsity)
            .context("sparsity missing from the CSR grid")?
            .comparison;
        rows.push(json!([
            variant.sparsity,
            format!("{:.3}", variant.blocks.block_density()),
            kilobytes(variant.blocks.dense_bytes()),
            kilobytes(variant.blocks.storage_bytes()),
            kilobytes(variant.csr.storage_bytes()),
            format!("{:.2}", block.baseline.median() / 1e3),
            format!("{:.2}", block.candidate.median() / 1e3),
            speedup_cell(block),
            format!("{:.2}", csr.candidate.median() / 1e3),
            speedup_cell(csr),
        ]));
    }
    Ok(json!({
        "title": format!(
            "{} ({}×{}), batch 1, one thread: dense GEMV against block-sparse and CSR",
            sweep.shape.what, sweep.shape.rows, sweep.shape.cols
        ),
        "columns": ["block sparsity %", "blocks kept", "dense KB", "block-sparse KB", "CSR KB",
            "dense median µs", "block-sparse median µs", "block-sparse speedup [95% CI]",
            "CSR median µs", "CSR speedup [95% CI]"],
        "rows": rows,
    }))
}

fn speedup_plot(sweep: &Sweep) -> serde_json::Value {
    let series = |grid: &GridComparison<u32>| -> Vec<[f64; 2]> {
        grid.points
            .iter()
            .map(|point| [f64::from(point.parameter), point.comparison.speedup.point])
            .collect()
    };
    json!({
        "title": format!("Batch-1 speedup over dense GEMV, {}×{}", sweep.shape.rows, sweep.shape.cols),
        "x_label": "block sparsity (%)",
        "y_label": "speedup over dense (×)",
        "log_x": false,
        "log_y": true,
        "series": [
            {"name": "block-sparse GEMV", "points": series(&sweep.block)},
            {"name": "CSR vector product", "points": series(&sweep.csr)},
            {"name": "break-even (1×)", "points": [[0.0, 1.0], [95.0, 1.0]]},
        ],
    })
}

fn break_even_claim(sweep: &Sweep, which: &str) -> Result<ClaimResult> {
    let shape = sweep.shape;
    let (grid, format) = match which {
        "block" => (&sweep.block, "block-sparse GEMV (1 × 16 blocks)"),
        _ => (&sweep.csr, "CSR vector product (of Wᵀ)"),
    };
    let id = match which {
        "block" => format!("sparse.break_even_{}", shape.id),
        _ => format!("sparse.csr_break_even_{}", shape.id),
    };
    let claim = Claim::measured(
        &id,
        MODULE,
        &format!(
            "break-even block sparsity of the {format} against accel's dense GEMV on the {} ({}×{}), batch 1, \
             one thread: the sparsity from which the sparse product is faster",
            shape.what, shape.rows, shape.cols
        ),
    );
    let last = grid.points.last().context("empty grid")?;
    let first = grid.points.first().context("empty grid")?;
    let result = match break_even(grid) {
        Some(found) => {
            let mut result = claim
                .judge(Estimate::new(
                    found.point,
                    found.lower,
                    found.upper,
                    "%",
                    0.95,
                )?)
                .with_detail("lower_end_censored", found.lower_censored)
                .with_detail("upper_end_censored_at_100", found.upper_censored);
            if found.point <= f64::from(first.parameter) {
                result = result.annotate(format!(
                    "faster than dense at every sparsity of the grid, from {}% on ({} there): the break-even is at \
                     or below the grid's first value",
                    first.parameter,
                    speedup_cell(&first.comparison)
                ));
            }
            if found.upper_censored {
                result = result.annotate(format!(
                    "the interval's lower end stays below 1× up to {}%: its upper end is censored at 100%",
                    last.parameter
                ));
            }
            result
        }
        None => claim.inconclusive(
            format!(
                "not faster than dense anywhere up to {}%: {} there",
                last.parameter,
                speedup_cell(&last.comparison)
            ),
            None,
        ),
    };
    Ok(result
        .needs_quiet_machine()
        .with_detail(
            "interval",
            "interpolated (in log speedup) where the speedup's point and the ends of its 95% paired log-ratio \
             intervals cross 1× between grid sparsities; pointwise intervals, not simultaneous",
        )
        .with_detail(
            "protocol",
            "perf_core::grid::compare_grid: interleaved pairs at every sparsity in alternating sweeps, \
             batches sized to ≥ 1 ms from 20 warm-up calls per side",
        )
        .with_detail(
            "input",
            "one dense input vector uniform in [-1, 1) (no zeros); random weights pruned by block L2 norm",
        )
        .with_detail("dense_kernel", &sweep.kernels[0])
        .with_detail("block_sparse_kernel", &sweep.kernels[1])
        .with_detail("csr_kernel", &sweep.kernels[2])
        .with_detail("sparsities", SPARSITIES)
        .with_detail("table", sweep_table(sweep)?)
        .with_detail("plot", speedup_plot(sweep)))
}

fn threshold_claim(sweep: &Sweep, sparsity: u32, threshold: f64) -> Result<ClaimResult> {
    let point = sweep
        .block
        .point(&sparsity)
        .with_context(|| format!("{sparsity}% is not on the grid"))?;
    let comparison = &point.comparison;
    let variant = variant(&sweep.variants, sparsity)?;
    let shape = sweep.shape;
    let claim = Claim::threshold(
        &format!("sparse.block_speedup_{sparsity}"),
        MODULE,
        &format!(
            "block-sparse GEMV at {sparsity}% block sparsity is at least {threshold}× faster than accel's dense \
             GEMV ({}×{}, batch 1, one thread)",
            shape.rows, shape.cols
        ),
        threshold,
        Direction::AtLeast,
    );
    Ok(claim
        .judge_comparison(comparison)?
        .needs_quiet_machine()
        .with_detail("shape", [shape.rows, shape.cols])
        .with_detail("baseline_kernel", &sweep.kernels[0])
        .with_detail("candidate_kernel", &sweep.kernels[1])
        .with_detail("block_density", variant.blocks.block_density())
        .with_detail("dense_bytes", variant.blocks.dense_bytes())
        .with_detail("block_sparse_bytes", variant.blocks.storage_bytes())
        .with_detail("csr_bytes", variant.csr.storage_bytes())
        .with_detail(
            "csr_speedup",
            sweep
                .csr
                .point(&sparsity)
                .map(|csr| &csr.comparison.speedup),
        )
        .with_detail("baseline_ns", comparison.baseline.values())
        .with_detail("candidate_ns", comparison.candidate.values())
        .with_detail("fairness", &comparison.fairness))
}

/// Block-sparse on a ReLU-like input (about half the entries zero, skipped) against dense GEMV on the same input.
fn relu_claims(
    generator: &mut WorkloadGenerator,
    config: &GridConfig,
    pairs: usize,
) -> Result<Vec<ClaimResult>> {
    let shape = SHAPES
        .iter()
        .find(|shape| shape.id == HEADLINE)
        .context("headline shape")?;
    let weight = Array2::from_shape_vec(
        (shape.rows, shape.cols),
        generator.matrix_f32(shape.rows, shape.cols),
    )?;
    let x: Vec<f32> = generator
        .vector_f32(shape.rows)
        .into_iter()
        .map(|value| value.max(0.0))
        .collect();
    let zeros = x.iter().filter(|&&value| value == 0.0).count();
    let sparsities = [75u32, 90];
    let variants = sparsities
        .iter()
        .map(|&sparsity| Variant::new(&weight, sparsity))
        .collect::<Result<Vec<_>>>()?;
    let kernel = block_side(&variants, &x, shape.cols)(&75)?.0;
    let skipped = variants
        .iter()
        .map(|variant| {
            let mut y = vec![0.0f32; shape.cols];
            Ok(variant
                .blocks
                .vector_product_into(&x, &mut y, false, &SparseGemvConfig::default())?
                .skipped_rows)
        })
        .collect::<Result<Vec<usize>>>()?;
    let grid = compare_grid(
        config,
        &points(&sparsities, pairs),
        dense_side(&variants, &x, shape.cols),
        block_side(&variants, &x, shape.cols),
    )?;
    let mut results = Vec::new();
    for (point, skipped) in grid.points.iter().zip(skipped) {
        let sparsity = point.parameter;
        let comparison = &point.comparison;
        let claim = Claim::measured(
            &format!("sparse.relu_input_speedup_{sparsity}"),
            MODULE,
            &format!(
                "speedup of block-sparse GEMV at {sparsity}% block sparsity over accel's dense GEMV on an input \
                 with about half its entries zero (as after a ReLU), whose rows the sparse kernel skips ({}×{}, \
                 batch 1, one thread)",
                shape.rows, shape.cols
            ),
        );
        results.push(
            claim
                .judge(comparison.speedup_estimate()?)
                .needs_quiet_machine()
                .with_detail("zero_inputs", zeros)
                .with_detail("input_rows", shape.rows)
                .with_detail("rows_skipped", skipped)
                .with_detail("block_sparse_kernel", &kernel)
                .with_detail(
                    "note",
                    "dense GEMV does not skip zero inputs; the speedup over the same sparsity with a dense input \
                     is in sparse.block_speedup_* and the break-even tables",
                )
                .with_detail("baseline_ns", comparison.baseline.values())
                .with_detail("candidate_ns", comparison.candidate.values())
                .with_detail("fairness", &comparison.fairness),
        );
    }
    Ok(results)
}

pub fn run(context: &ModuleContext) -> Result<Vec<ClaimResult>> {
    let mut generator = WorkloadGenerator::new(context.seed);
    let config = GridConfig {
        seed: context.seed,
        ..GridConfig::default()
    };
    // At least 12 pairs, so that the paired interval is over blocks of two oppositely ordered pairs.
    let pairs = if context.quick { 16 } else { 40 };
    let mut results = Vec::new();
    let mut sweeps = Vec::new();
    for shape in &SHAPES {
        sweeps.push(sweep(shape, &mut generator, &config, pairs)?);
    }
    let headline = sweeps
        .iter()
        .find(|sweep| sweep.shape.id == HEADLINE)
        .context("headline shape")?;
    results.push(threshold_claim(headline, 75, 1.0)?);
    results.push(threshold_claim(headline, 90, 1.5)?);
    for sweep in &sweeps {
        results.push(break_even_claim(sweep, "block")?);
    }
    results.push(break_even_claim(headline, "csr")?);
    results.extend(relu_claims(&mut generator, &config, pairs)?);
    // The block width is a constant of the format: say so with the results.
    Ok(results
        .into_iter()
        .map(|result| result.with_detail("block_width", SPARSE_BLOCK_WIDTH))
        .collect())
}
