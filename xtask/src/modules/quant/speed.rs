//! Quantized MLPs timed against their f32 twins: the one interleaved timing, and the Fashion-MNIST-sized MLP
//! (784-256-10, seeded weights) at batch 64 and 256.

use super::{judge_speed, F32Mlp, ModuleContext, SplitMix, MODULE};
use anyhow::Result;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use perf_core::claim::{Claim, ClaimResult};
use perf_core::compare::CompareConfig;
use perf_core::fallible::try_compare;
use quant::{GemmConfig, QuantizedMlp, QuantizedMlpConfig};

/// One interleaved timing of a quantized MLP against its f32 twin on `batch`; GOP/s count 2 per multiply–add.
pub(super) fn mlp_speed_claim(
    id: &str,
    statement: &str,
    config: &CompareConfig,
    layers: &[(Array2<f32>, Array1<f32>)],
    quantized: &QuantizedMlp,
    batch: ArrayView2<'_, f32>,
) -> ClaimResult {
    let claim = Claim::measured(id, MODULE, statement);
    let batch = batch.to_owned();
    let mut twin = F32Mlp::new(layers, batch.nrows());
    let classes = layers.last().map_or(0, |(weight, _)| weight.ncols());
    let mut int8_logits = Array2::<f32>::zeros((batch.nrows(), classes));
    let kernel = match quantized.forward_into(
        batch.view(),
        int8_logits.view_mut(),
        &GemmConfig::default(),
    ) {
        Ok(kernel) => kernel,
        Err(error) => return claim.error(format!("int8 forward: {error}")),
    };
    // A forward pass that fails while timed makes the claim ERROR (try_compare keeps the first error).
    let outcome = try_compare(
        config,
        &batch,
        |x| twin.forward(x.view()).map(|()| twin.logits()[[0, 0]]),
        |x| {
            quantized
                .forward_into(x.view(), int8_logits.view_mut(), &GemmConfig::default())
                .map(|_| int8_logits[[0, 0]])
        },
    )
    .map_err(anyhow::Error::from)
    .and_then(|comparison| {
        let macs: usize = layers.iter().map(|(w, _)| w.len()).sum::<usize>() * batch.nrows();
        judge_speed(&claim, &comparison, 2.0 * macs as f64)
    });
    let widths: Vec<usize> = std::iter::once(layers.first().map_or(0, |(w, _)| w.nrows()))
        .chain(layers.iter().map(|(w, _)| w.ncols()))
        .collect();
    outcome
        .map(|r| {
            r.with_detail("batch", batch.nrows())
                .with_detail("widths", widths)
                .with_detail("gemm_kernel", kernel.name())
        })
        .unwrap_or_else(|error| claim.error(format!("{error:#}")))
}

/// A Fashion-MNIST-sized MLP (784-256-10) with seeded weights, timed at batch 64 and 256 — sizes where the GEMM
/// is most of the work. The weights' values do not change the arithmetic, so the claim does not wait for a
/// trained model; calibration is on seeded inputs in the pixel range [0, 1].
pub(super) fn fashion_sized_speed_claims(
    context: &ModuleContext,
    config: &CompareConfig,
    results: &mut Vec<ClaimResult>,
) -> Result<()> {
    let mut rng = SplitMix(context.seed ^ 0xfa5e);
    let mut layer = |inputs: usize, outputs: usize| {
        let bound = (6.0 / (inputs + outputs) as f64).sqrt();
        let weight = Array2::from_shape_simple_fn((inputs, outputs), || {
            (bound * (2.0 * rng.uniform() - 1.0)) as f32
        });
        let bias = Array1::from_shape_simple_fn(outputs, || (0.1 * rng.normal()) as f32);
        (weight, bias)
    };
    let layers = vec![layer(784, 256), layer(256, 10)];
    let views: Vec<(ArrayView2<'_, f32>, ArrayView1<'_, f32>)> =
        layers.iter().map(|(w, b)| (w.view(), b.view())).collect();
    let inputs = Array2::from_shape_simple_fn((256, 784), || rng.uniform() as f32);
    let quantized = QuantizedMlp::quantize(&views, inputs.view(), &QuantizedMlpConfig::default())?;
    // --quick keeps to the 10-second budget with the larger batch only.
    let batches: &[usize] = if context.quick { &[256] } else { &[64, 256] };
    for &batch in batches {
        results.push(mlp_speed_claim(
            &format!("quant.fashion_mlp_inference_speedup_batch{batch}"),
            &format!("a 784-256-10 MLP (the Fashion-MNIST MLP's shape) at batch {batch}: int8 (static activations) vs its f32 twin, one thread each, buffers reused on both sides (interleaved)"),
            config,
            &layers,
            &quantized,
            inputs.slice(ndarray::s![..batch, ..]),
        ));
    }
    Ok(())
}
