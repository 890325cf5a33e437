//! The referee on hand-made submissions: a panicking, an erroring and a wrong-shape submission are ERROR
//! for themselves only, and the others are still scored. No timing is asserted.

mod common;

use common::{small_config, toy_event_of};
use datasets::DataOrigin;
use ndarray::{Array2, ArrayView2};
use olympics::{
    referee, DataSource, Event, EventSpec, OlympicsError, Optimization, Outcome, RefereeConfig,
    Submission, TestSet,
};
use perf_core::claim::Verdict;

/// Four features; the label is the index of the largest of the first three.
fn toy_event() -> Event {
    let n_rows = 120;
    let mut features = Array2::<f32>::zeros((n_rows, 4));
    let mut labels = Vec::new();
    for row in 0..n_rows {
        let label = row % 3;
        for column in 0..4 {
            features[[row, column]] = ((row * 7 + column * 3) % 5) as f32 * 0.1;
        }
        features[[row, label]] = 2.0;
        labels.push(label);
    }
    toy_event_of(features, labels)
}

fn config() -> RefereeConfig {
    let mut config = small_config(7, 30);
    config.evaluation_batch = 32;
    config
}

/// Always wrong: its logits are the negated first three features, so the smallest of them wins — never the
/// label.
struct Wrong;

impl Submission for Wrong {
    fn name(&self) -> &str {
        "wrong"
    }
    fn optimizations(&self) -> Vec<Optimization> {
        Vec::new()
    }
    fn storage_bytes(&self) -> usize {
        0
    }
    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        Ok(batch.slice(ndarray::s![.., 0..3]).mapv(|value| -value))
    }
}

enum Behaviour {
    Correct,
    Panics,
    Errors,
    WrongWidth,
    WrongRows,
    PanicsOnSingleQueries,
}

struct Toy {
    name: &'static str,
    behaviour: Behaviour,
}

impl Submission for Toy {
    fn name(&self) -> &str {
        self.name
    }

    fn optimizations(&self) -> Vec<Optimization> {
        vec![Optimization::Other("none".into())]
    }

    fn storage_bytes(&self) -> usize {
        12
    }

    fn forward(&self, batch: ArrayView2<'_, f32>) -> Result<Array2<f32>, OlympicsError> {
        let logits = batch.slice(ndarray::s![.., 0..3]).to_owned();
        match self.behaviour {
            Behaviour::Correct => Ok(logits),
            Behaviour::Panics => panic!("deliberate panic in {}", self.name),
            Behaviour::Errors => Err(OlympicsError::InvalidArgument {
                reason: "deliberate error".into(),
            }),
            Behaviour::WrongWidth => Ok(Array2::zeros((batch.nrows(), 2))),
            Behaviour::WrongRows => Ok(Array2::zeros((batch.nrows() + 1, 3))),
            Behaviour::PanicsOnSingleQueries => {
                if batch.nrows() == 1 {
                    panic!("deliberate panic on a single query");
                }
                Ok(logits)
            }
        }
    }
}

#[test]
fn failing_submissions_are_errors_for_themselves_only() {
    let event = toy_event();
    let field = [
        Toy {
            name: "first",
            behaviour: Behaviour::Correct,
        },
        Toy {
            name: "panics",
            behaviour: Behaviour::Panics,
        },
        Toy {
            name: "errors",
            behaviour: Behaviour::Errors,
        },
        Toy {
            name: "wrong_width",
            behaviour: Behaviour::WrongWidth,
        },
        Toy {
            name: "wrong_rows",
            behaviour: Behaviour::WrongRows,
        },
        Toy {
            name: "panics_when_timed",
            behaviour: Behaviour::PanicsOnSingleQueries,
        },
        Toy {
            name: "last",
            behaviour: Behaviour::Correct,
        },
    ];
    let submissions: Vec<&dyn Submission> =
        field.iter().map(|toy| toy as &dyn Submission).collect();
    let outcomes = referee(&event, &submissions, &config());
    assert_eq!(outcomes.len(), field.len());
    for outcome in &outcomes {
        match (outcome.submission(), outcome) {
            ("first" | "last", Outcome::Scored(card)) => {
                assert_eq!(card.quality.successes, Some(120));
                assert_eq!(card.quality.point, 1.0);
                assert!(card.quality.ci_lower < 1.0 && card.quality.ci_upper == 1.0);
                assert_eq!(card.source.origin, DataOrigin::Synthetic);
                assert!(card.latency.n_samples == 30);
            }
            ("panics", Outcome::Error { reason, .. }) => {
                assert!(reason.contains("panicked"), "{reason}");
                assert!(reason.contains("deliberate panic"), "{reason}");
            }
            ("errors", Outcome::Error { reason, .. }) => {
                assert!(reason.contains("deliberate error"), "{reason}")
            }
            ("wrong_width" | "wrong_rows", Outcome::Error { reason, .. }) => {
                assert!(reason.contains("output shape"), "{reason}")
            }
            ("panics_when_timed", Outcome::Error { reason, .. }) => {
                assert!(reason.contains("panicked"), "{reason}")
            }
            (name, other) => panic!("{name}: unexpected outcome {other:?}"),
        }
    }
}

#[test]
fn an_always_wrong_model_is_not_compliant_and_never_rescued() {
    let event = toy_event();
    let outcomes = referee(&event, &[&Wrong], &config());
    let card = outcomes[0].scorecard().expect("scored");
    assert_eq!(card.quality.successes, Some(0));
    assert_eq!(card.compliance.verdict(), Verdict::Fail);
    assert_eq!(card.compliance.quality.verdict, Verdict::Fail);
    let result = card.claim_result();
    assert_eq!(result.id, "olympics.toy.wrong.compliance");
    assert_eq!(result.verdict, Verdict::Fail);
}

#[test]
fn latency_queries_are_seeded() {
    let event = toy_event();
    let first = event.latency_queries(16, 3).unwrap();
    let again = event.latency_queries(16, 3).unwrap();
    let other = event.latency_queries(16, 4).unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn events_refuse_mismatched_inputs() {
    let spec = EventSpec::image_classification();
    let test = TestSet::new(Array2::zeros((3, 5)), vec![0, 1, 2], 10).unwrap();
    let source = DataSource {
        origin: DataOrigin::Synthetic,
        name: "x".into(),
        description: String::new(),
        attribution: String::new(),
    };
    assert!(matches!(
        Event::new(spec, test, source),
        Err(OlympicsError::Shape { .. })
    ));
    assert!(TestSet::new(Array2::zeros((2, 5)), vec![0, 1, 2], 10).is_err());
    assert!(TestSet::new(Array2::zeros((1, 5)), vec![10], 10).is_err());
}

#[test]
fn pooling_averages_blocks_and_channels() {
    // 4 × 4 × 2 image: channel 0 holds y·4 + x, channel 1 holds 0.
    let mut row = Array2::<f32>::zeros((1, 32));
    for y in 0..4 {
        for x in 0..4 {
            row[[0, (y * 4 + x) * 2]] = (y * 4 + x) as f32;
        }
    }
    let pooled = olympics::event::pool_to_grey(row.view(), 4, 2, 2).unwrap();
    // Block (0,0) holds 0, 1, 4, 5 in channel 0 and zeros in channel 1: mean over 8 values = 10 / 8.
    let expected = [10.0 / 8.0, 18.0 / 8.0, 42.0 / 8.0, 50.0 / 8.0];
    for (value, expected) in pooled.iter().zip(expected) {
        assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
    }
    assert!(olympics::event::pool_to_grey(row.view(), 4, 2, 3).is_err());
    // An upscaled constant image pools back to the constant.
    let image = ndarray::Array1::<f32>::from_elem(28 * 28, 0.25);
    let mut big = vec![0.0f32; 96 * 96 * 3];
    olympics::event::upscale_grey_image(image.view(), 28, 96, 3, &mut big);
    let big = Array2::from_shape_vec((1, big.len()), big).unwrap();
    let pooled = olympics::event::pool_to_grey(big.view(), 96, 3, 4).unwrap();
    assert!(pooled.iter().all(|value| (value - 0.25).abs() < 1e-6));
}

#[test]
fn synthetic_keywords_are_deterministic_and_labelled_synthetic() {
    let (train, test, info) = olympics::events::synthetic_keywords(40, 20, 9).unwrap();
    let (train_again, _, _) = olympics::events::synthetic_keywords(40, 20, 9).unwrap();
    assert_eq!(train.features(), train_again.features());
    assert_eq!(info.origin, DataOrigin::Synthetic);
    let event = olympics::events::keyword_spotting(&test, &info, "generated").unwrap();
    assert_eq!(event.source.origin, DataOrigin::Synthetic);
    assert_eq!(event.test.len(), 20);
}

#[test]
fn a_relative_target_is_judged_paired_against_the_baseline_in_the_field() {
    let mut event = toy_event();
    // 120 rows: predictions that agree everywhere bound the difference by ±3.0 points (Clopper–Pearson on
    // 0 disagreements of 120), so a margin of 5 points lets a copy of the baseline pass.
    event.spec.relative_target = Some(olympics::RelativeTarget {
        baseline: "baseline".into(),
        margin: 0.05,
    });
    let baseline = Toy {
        name: "baseline",
        behaviour: Behaviour::Correct,
    };
    let copy = Toy {
        name: "copy",
        behaviour: Behaviour::Correct,
    };
    // The baseline is judged after the others in the field: order does not matter.
    let outcomes = referee(&event, &[&copy, &Wrong, &baseline], &config());
    for outcome in &outcomes {
        let card = outcome.scorecard().expect("scored");
        let paired = card.compliance.paired.as_ref().expect("paired");
        assert_eq!(paired.baseline, "baseline");
        assert_eq!(paired.difference.n, 120);
        // The unpaired accuracy with its Clopper–Pearson interval is kept.
        assert!(card.quality.ci_lower <= card.quality.point);
        match card.submission.as_str() {
            "copy" | "baseline" => {
                assert_eq!(paired.difference.mean, 0.0);
                let bound = 1.0 - 0.025f64.powf(1.0 / 120.0);
                assert!((paired.difference.ci_upper - bound).abs() < 1e-9);
                assert_eq!(card.compliance.quality.verdict, Verdict::Pass);
            }
            _ => {
                assert_eq!(paired.n_baseline_only(), 120);
                assert_eq!(card.compliance.quality.verdict, Verdict::Fail);
            }
        }
    }
    // Alone, a submission other than the baseline cannot be judged against it.
    let alone = olympics::referee_one(&event, &copy, &config());
    let card = alone.scorecard().expect("scored");
    assert!(card.compliance.paired.is_none());
    assert_eq!(card.compliance.quality.verdict, Verdict::Inconclusive);
    assert!(card.compliance.quality.reason.contains("not scored"));
}
