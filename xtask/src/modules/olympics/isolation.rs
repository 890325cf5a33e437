//! The referee's negative control: a submission that panics and one that returns the wrong shape are ERROR
//! for themselves only, the good submissions around them still scored.

use super::{mlp_of, MODULE};
use anyhow::Result;
use ndarray::{Array2, ArrayView2};
use olympics::compress::{CompressedMlp, Recipe};
use olympics::submissions::{InputTransform, MlpClassifier};
use olympics::{referee, OlympicsError, Optimization, Outcome, RefereeConfig, Submission};
use perf_core::claim::{Claim, ClaimResult, Direction, Estimate};
use zoo::{train_or_load, ReferenceModel, ZooConfig};

/// A submission that panics, one that returns the wrong shape, between two good ones.
pub(super) fn isolation_check(zoo_config: &ZooConfig, seed: u64) -> Result<ClaimResult> {
    struct Broken {
        name: &'static str,
        panics: bool,
    }
    impl Submission for Broken {
        fn name(&self) -> &str {
            self.name
        }
        fn optimizations(&self) -> Vec<Optimization> {
            vec![Optimization::Other(
                "deliberately broken (negative control)".into(),
            )]
        }
        fn storage_bytes(&self) -> usize {
            0
        }
        fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
            if self.panics {
                panic!("negative control: deliberate panic");
            }
            Ok(Array2::zeros((batch.nrows(), 3)))
        }
    }
    let trained = train_or_load(ReferenceModel::DigitsMlp, zoo_config)?;
    let Some(mlp) = mlp_of(&trained.weights) else {
        anyhow::bail!("zoo returned a non-MLP model");
    };
    let event = olympics::events::image_classification(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    let good = MlpClassifier {
        name: "good".into(),
        optimizations: Vec::new(),
        transform: InputTransform::Identity,
        network: CompressedMlp::compress(mlp, &Recipe::BASELINE)?,
    };
    let panics = Broken {
        name: "panics",
        panics: true,
    };
    let wrong_shape = Broken {
        name: "wrong_shape",
        panics: false,
    };
    let mut quick = RefereeConfig::quick(seed);
    quick.measure.samples = 20;
    quick.measure.warm_up = perf_core::measure::WarmUp::Count(20);
    let field: [&dyn Submission; 4] = [&good, &panics, &wrong_shape, &good];
    // The default panic hook would print the deliberate panic as if something were broken.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcomes = referee(&event, &field, &quick);
    std::panic::set_hook(previous_hook);
    let isolated = outcomes
        .iter()
        .zip([false, true, true, false])
        .filter(|(outcome, should_fail)| matches!(outcome, Outcome::Error { .. }) == *should_fail)
        .count() as f64;
    let reasons: Vec<String> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Scored(card) => {
                format!(
                    "{}: scored ({})",
                    card.submission,
                    card.compliance.verdict()
                )
            }
            Outcome::Error { submission, reason } => format!("{submission}: ERROR {reason}"),
        })
        .collect();
    let result = Claim::threshold(
        "olympics.referee.isolation",
        MODULE,
        "a submission that panics or returns a wrong shape is ERROR for itself only; the two good submissions around it are still scored (4 of 4 outcomes as expected)",
        4.0,
        Direction::AtLeast,
    )
    .judge(Estimate::new(isolated, isolated, isolated, "outcomes", 1.0)?)
    .with_detail("outcomes", &reasons);
    Ok(result.annotate(format!("[{} {}]", event.source.origin, event.source.name)))
}
