//! Round-trip precision of int8 and f16/bf16 on several distributions.

use super::{exact, ModuleContext, SplitMix, MODULE};
use anyhow::{Context, Result};
use perf_core::claim::{Claim, ClaimResult, Direction};
use quant::{
    ErrorStats, Granularity, HalfPrecision, HalfTensor, ObserverKind, QuantConfig, QuantType,
    QuantizedTensor, Scheme,
};
use serde_json::json;

pub(super) fn round_trip_claims(
    context: &ModuleContext,
    results: &mut Vec<ClaimResult>,
) -> Result<()> {
    let n = if context.quick { 20_000 } else { 200_000 };
    let mut rng = SplitMix(context.seed ^ 0x0dd5);
    let distributions: Vec<(&str, Vec<f32>)> = vec![
        (
            "normal_sigma_0.01",
            (0..n).map(|_| (0.01 * rng.normal()) as f32).collect(),
        ),
        (
            "normal_sigma_100",
            (0..n).map(|_| (100.0 * rng.normal()) as f32).collect(),
        ),
        (
            "uniform_3_to_7",
            (0..n).map(|_| (3.0 + 4.0 * rng.uniform()) as f32).collect(),
        ),
        (
            "student_t_2",
            (0..n).map(|_| rng.student_t2() as f32).collect(),
        ),
    ];
    for (name, values) in distributions {
        let tensor = ndarray::ArrayView1::from(&values).into_dyn();
        let config = QuantConfig {
            scheme: Scheme::Affine,
            qtype: QuantType::Uint8,
            granularity: Granularity::PerTensor,
        };
        let quantized = QuantizedTensor::quantize(tensor.clone(), &config)?;
        let params = quantized.params()[0];
        let back = quantized.dequantize();
        let back = back.as_slice().context("contiguous")?;
        let worst = values
            .iter()
            .zip(back)
            .map(|(&x, &y)| f64::from((y - x).abs()) / f64::from(params.scale() / 2.0))
            .fold(0.0, f64::max);
        let stats = ErrorStats::between(&values, back)?;
        let mut observers = Vec::new();
        for kind in [
            ObserverKind::Percentile { percentile: 99.99 },
            ObserverKind::Mse,
            ObserverKind::Entropy { bins: 2048 },
        ] {
            let summary = (|| -> Result<serde_json::Value> {
                let mut observer = quant::Observer::new(kind)?;
                observer.observe(&values)?;
                let params = observer.params(Scheme::Symmetric, QuantType::Int8)?;
                let observed = QuantizedTensor::quantize_with(
                    tensor.clone(),
                    &[params],
                    Granularity::PerTensor,
                    QuantType::Int8,
                )?;
                let back = observed.dequantize();
                let stats = ErrorStats::between(&values, back.as_slice().context("contiguous")?)?;
                Ok(
                    json!({"observer": kind.name(), "sqnr_db": stats.sqnr_db, "mae": stats.mean_absolute_error, "max": stats.max_absolute_error}),
                )
            })();
            // An observer failure is reported in place; it does not hide the other figures.
            observers.push(summary.unwrap_or_else(
                |error| json!({"observer": kind.name(), "error": format!("{error:#}")}),
            ));
        }
        let mut halves = Vec::new();
        for precision in [HalfPrecision::F16, HalfPrecision::Bf16] {
            let half = HalfTensor::from_f32(tensor.clone(), precision)?.to_f32();
            // f16 overflows to ±inf beyond 65 504 (a heavy tail can get there): reported, not hidden.
            match ErrorStats::between(&values, half.as_slice().context("contiguous")?) {
                Ok(stats) => halves.push(json!({"precision": format!("{precision:?}"), "sqnr_db": stats.sqnr_db, "relative": stats.relative_error})),
                Err(error) => halves.push(json!({"precision": format!("{precision:?}"), "error": error.to_string()})),
            }
        }
        // Slack of 1e-4 over the real-arithmetic bound for the two f32 roundings (see quant's property test).
        results.push(
            Claim::threshold(
                &format!("quant.round_trip_{name}"),
                MODULE,
                &format!("uint8 affine min–max round trip of {n} {name} values: max |deq(q(x)) − x| / (scale/2) ≤ 1 (+1e-4 for f32 rounding)"),
                1.0 + 1e-4,
                Direction::AtMost,
            )
            .judge(exact(worst, "")?)
            .with_detail("n", n)
            .with_detail("scale", params.scale())
            .with_detail("zero_point", params.zero_point())
            .with_detail("mae", stats.mean_absolute_error)
            .with_detail("max_error", stats.max_absolute_error)
            .with_detail("relative_error", stats.relative_error)
            .with_detail("sqnr_db", stats.sqnr_db)
            .with_detail("int8_symmetric_observers", observers)
            .with_detail("half_precisions", halves),
        );
    }
    Ok(())
}
