//! Tests of the gate on stores of simulated runs: a confirmed regression, the reasons it cannot decide, and
//! how rarely unchanged code alerts.

use super::*;
use crate::fixtures::{run, ScratchDir};
use perf_core::alloc::Probe;
use perf_core::claim::Direction::{AtLeast, AtMost};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

const CLAIMS: [(&str, f64, perf_core::claim::Direction); 2] =
    [("m.speedup", 2.0, AtLeast), ("m.latency", 100.0, AtMost)];

/// A store holding `n` runs of commit `aaaaaaa…` with 1% noise, and the RNG for more.
fn history(dir: &ScratchDir, n: u32) -> (Store, StdRng) {
    let mut store = Store::open_default(&dir.0).unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    for index in 0..n {
        let claims = noisy(&mut rng, 1.0, 1.0, 0.01);
        store
            .record(&run(
                &format!("20261201T0000{index:02}Z-aaaaaaa"),
                "aaaaaaa0000",
                index,
                None,
                &claims,
            ))
            .unwrap();
    }
    (store, rng)
}

fn noisy(
    rng: &mut StdRng,
    speedup_factor: f64,
    latency_factor: f64,
    cv: f64,
) -> Vec<(&'static str, f64, perf_core::claim::Direction)> {
    let mut draw = || {
        let z: f64 = StandardNormal.sample(&mut *rng);
        1.0 + cv * z
    };
    vec![
        (
            CLAIMS[0].0,
            CLAIMS[0].1 * speedup_factor * draw(),
            CLAIMS[0].2,
        ),
        (
            CLAIMS[1].0,
            CLAIMS[1].1 * latency_factor * draw(),
            CLAIMS[1].2,
        ),
    ]
}

fn current(claims: &[(&str, f64, perf_core::claim::Direction)]) -> ValidationRun {
    run(
        "20261202T000000Z-bbbbbbb",
        "bbbbbbb0000",
        2000,
        None,
        claims,
    )
}

#[test]
fn a_confirmed_regression_exits_1_and_names_the_claim_by_direction() {
    let dir = ScratchDir::new("gate-regression");
    let (mut store, mut rng) = history(&dir, 10);
    let config = GateConfig::default();
    // Speedup 10% lower (higher is better) and latency 10% higher (lower is better): both regress.
    let slower = current(&noisy(&mut rng, 0.9, 1.1, 0.0));
    let mut calls = Vec::new();
    let report = gate(
        &mut store,
        &slower,
        &Baseline::Previous,
        &config,
        |ids: &[String]| {
            calls.push(ids.to_vec());
            Ok::<_, String>(slower.clone())
        },
    )
    .unwrap();
    assert_eq!(report.exit_code(), 1, "{}", report.to_markdown());
    assert_eq!(report.confirmed_regressions(), ["m.latency", "m.speedup"]);
    assert_eq!(
        calls,
        [vec!["m.latency".to_string(), "m.speedup".to_string()]]
    );
    assert_eq!(
        report.baseline_runs.len(),
        10,
        "every run of the previous commit"
    );
    assert!(report.to_markdown().contains("CONFIRMED REGRESSION"));

    // The re-measurement does not confirm it: exit 0, reported as not confirmed.
    let fine = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
    let report = gate(
        &mut store,
        &slower,
        &Baseline::Commit("aaaaaaa".into()),
        &config,
        |_: &[String]| Ok::<_, String>(fine.clone()),
    )
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
    assert!(report
        .claims
        .iter()
        .all(|c| c.status == ClaimStatus::NotConfirmed));

    // Warn-only reports it but passes; a failing re-measurement cannot decide.
    let warn = GateConfig {
        warn_only: true,
        ..GateConfig::default()
    };
    let report = gate(
        &mut store,
        &slower,
        &Baseline::Previous,
        &warn,
        |_: &[String]| Ok::<_, String>(slower.clone()),
    )
    .unwrap();
    assert_eq!(
        (report.exit_code(), report.confirmed_regressions().len()),
        (0, 2)
    );
    let report = gate(
        &mut store,
        &slower,
        &Baseline::Previous,
        &config,
        |_: &[String]| Err::<ValidationRun, _>("the kernel crashed"),
    )
    .unwrap();
    assert_eq!(report.exit_code(), 2);

    // The opposite moves are improvements, and a 20% threshold lets a 10% regression pass.
    let faster = current(&noisy(&mut rng, 1.1, 0.9, 0.0));
    let report = gate(
        &mut store,
        &faster,
        &Baseline::Previous,
        &config,
        |_: &[String]| Ok::<_, String>(faster.clone()),
    )
    .unwrap();
    assert_eq!(report.exit_code(), 0);
    assert!(report
        .claims
        .iter()
        .all(|c| c.status == ClaimStatus::Improved));
    let mut lenient = GateConfig::default();
    lenient.add_threshold("m.*=20").unwrap();
    assert!(lenient.add_threshold("m.speedup").is_err());
    assert!(lenient.add_threshold("m.speedup=-3").is_err());
    let report = gate(
        &mut store,
        &slower,
        &Baseline::Previous,
        &lenient,
        |_: &[String]| Ok::<_, String>(slower.clone()),
    )
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
}

#[test]
fn other_machines_missing_claims_contention_and_short_histories_cannot_decide() {
    let dir = ScratchDir::new("gate-undecided");
    let (mut store, mut rng) = history(&dir, 10);
    let config = GateConfig::default();
    let never = |_: &[String]| Err::<ValidationRun, _>("not expected");

    let mut elsewhere = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
    elsewhere.provenance.cpu_model = Probe::Available("Intel Xeon (family 6, model 143)".into());
    let report = gate(
        &mut store,
        &elsewhere,
        &Baseline::Commit("aaaaaaa".into()),
        &config,
        never,
    )
    .unwrap();
    assert_eq!(report.exit_code(), 2);
    assert!(
        report.run_level_reasons[0].contains("other machines"),
        "{report:?}"
    );
    let report = gate(&mut store, &elsewhere, &Baseline::Previous, &config, never).unwrap();
    assert_eq!(report.exit_code(), 2);

    let mut missing = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
    missing.claims.retain(|c| c.id == "m.speedup");
    let report = gate(&mut store, &missing, &Baseline::Previous, &config, never).unwrap();
    assert_eq!(report.exit_code(), 2);
    assert_eq!(report.undecided()[0].claim_id, "m.latency");

    // A run of other modules only does not miss these claims.
    let mut partial = missing.clone();
    partial.config.modules = vec!["other".into()];
    partial.claims.clear();
    let report = gate(&mut store, &partial, &Baseline::Previous, &config, never).unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.to_markdown());
    assert!(report
        .claims
        .iter()
        .all(|c| matches!(c.status, ClaimStatus::NotGated(_))));

    let mut busy = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
    busy.provenance.load_average = Probe::Available([6.0, 6.0, 6.0]);
    let report = gate(&mut store, &busy, &Baseline::Previous, &config, never).unwrap();
    assert_eq!(report.exit_code(), 2);
    assert!(report.run_level_reasons[0].contains("contention"));

    assert!(matches!(
        gate(
            &mut store,
            &busy,
            &Baseline::Commit("fffffff".into()),
            &config,
            never
        ),
        Err(HistoryError::NotFound { .. })
    ));
    assert!(matches!(
        gate(
            &mut store,
            &busy,
            &Baseline::Run("20990101T000000Z-none".into()),
            &config,
            never
        ),
        Err(HistoryError::NotFound { .. })
    ));

    let short_dir = ScratchDir::new("gate-short");
    let (mut short, mut rng) = history(&short_dir, 3);
    let quiet = current(&noisy(&mut rng, 1.0, 1.0, 0.0));
    let report = gate(&mut short, &quiet, &Baseline::Previous, &config, never).unwrap();
    assert_eq!(report.exit_code(), 2);
    assert!(report.run_level_reasons[0].contains("need 5"), "{report:?}");
    assert_eq!(Baseline::parse("previous"), Baseline::Previous);
    assert_eq!(
        Baseline::parse("4ca7e259c9"),
        Baseline::Commit("4ca7e259c9".into())
    );
    assert_eq!(
        Baseline::parse("20261123T172603Z-4ca7e259c9"),
        Baseline::Run("20261123T172603Z-4ca7e259c9".into())
    );
}

/// A/A: unchanged code with 2% run-to-run noise, a history of 12 runs, the gate with its
/// re-measurement: false confirmed regressions per claim must stay at or below 1%.
#[test]
fn unchanged_code_rarely_alerts() {
    let n_trials: usize = std::env::var("TORCHPERF_HISTORY_SIMULATION_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(40);
    let dir = ScratchDir::new("gate-aa");
    let config = GateConfig::default();
    let mut rng = StdRng::seed_from_u64(7);
    let (mut suspected, mut confirmed, mut judged) = (0, 0, 0);
    for trial in 0..n_trials {
        let path = dir.0.join(format!("trial-{trial}.sqlite"));
        let mut store = Store::open_sqlite(&path).unwrap();
        for index in 0..12 {
            let claims = noisy(&mut rng, 1.0, 1.0, 0.02);
            store
                .record(&run(
                    &format!("20261201T0000{index:02}Z-aaaaaaa"),
                    &format!("a{index:09}"),
                    index,
                    None,
                    &claims,
                ))
                .unwrap();
        }
        let now = current(&noisy(&mut rng, 1.0, 1.0, 0.02));
        let again = current(&noisy(&mut rng, 1.0, 1.0, 0.02));
        let report = gate(
            &mut store,
            &now,
            &Baseline::Previous,
            &config,
            |ids: &[String]| {
                suspected += ids.len();
                Ok::<_, String>(again.clone())
            },
        )
        .unwrap();
        assert_ne!(report.exit_code(), 2, "{}", report.to_markdown());
        confirmed += report.confirmed_regressions().len();
        judged += report.claims.len();
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
    let rate = confirmed as f64 / judged as f64;
    eprintln!(
        "A/A gate: {suspected} suspected and {confirmed} confirmed regressions in {judged} claim judgements ({n_trials} trials)"
    );
    assert!(rate <= 0.01, "false confirmed regression rate {rate}");
}
