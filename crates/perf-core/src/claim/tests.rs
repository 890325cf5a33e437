//! Unit tests of `claim`: kept beside it so the module file holds only the code.

use super::*;

fn estimate(point: f64, lo: f64, hi: f64) -> Estimate {
    Estimate::new(point, lo, hi, "×", 0.95).unwrap()
}

#[test]
fn threshold_verdicts_follow_the_interval() {
    let claim = Claim::threshold("t", "m", "at least 2", 2.0, Direction::AtLeast);
    assert_eq!(claim.judge(estimate(2.5, 2.1, 2.9)).verdict, Verdict::Pass);
    assert_eq!(
        claim.judge(estimate(2.5, 2.0, 2.9)).verdict,
        Verdict::Pass,
        "exactly at the bar clears it"
    );
    assert_eq!(
        claim.judge(estimate(2.1, 1.9, 2.3)).verdict,
        Verdict::Partial
    );
    assert_eq!(claim.judge(estimate(1.5, 1.4, 1.6)).verdict, Verdict::Fail);
    let at_most = Claim::threshold("t", "m", "at most 5", 5.0, Direction::AtMost);
    assert_eq!(
        at_most.judge(estimate(4.0, 3.0, 5.0)).verdict,
        Verdict::Pass
    );
    assert_eq!(
        at_most.judge(estimate(6.0, 5.5, 7.0)).verdict,
        Verdict::Fail
    );
    assert_eq!(
        at_most.judge(estimate(5.0, 4.0, 6.0)).verdict,
        Verdict::Partial
    );
    assert_eq!(claim.error("no data").verdict, Verdict::Error);
}

#[test]
fn equivalence_uses_tost_interval() {
    let inference = TInference {
        center: 0.0,
        standard_error: 0.01,
        degrees_of_freedom: 29.0,
        log_scale: true,
    };
    let estimate = Estimate::from_t(inference, "×", 0.95).unwrap();
    let claim = Claim::equivalence("e", "m", "within 5%", 0.95, 1.0 / 0.95);
    let result = claim.judge(estimate.clone());
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(result.reason.contains("90% CI"));
    assert!(result.p_value.unwrap() < 0.05);
    let tight = Claim::equivalence("e", "m", "within 1%", 0.99, 1.0 / 0.99);
    assert_eq!(tight.judge(estimate).verdict, Verdict::Partial);
    let far = Claim::equivalence("e", "m", "within 1%", 0.99, 1.01);
    assert_eq!(
        far.judge(Estimate::new(1.5, 1.4, 1.6, "×", 0.95).unwrap())
            .verdict,
        Verdict::Fail
    );
}

#[test]
fn one_sided_p_value_agrees_with_the_interval() {
    // center 1.0, se 0.4, df 10: the 95% two-sided interval's lower end is 1 - 2.228·0.4 = 0.109;
    // a threshold exactly there has a one-sided p of 0.025.
    let inference = TInference {
        center: 1.0,
        standard_error: 0.4,
        degrees_of_freedom: 10.0,
        log_scale: false,
    };
    let estimate = Estimate::from_t(inference, "", 0.95).unwrap();
    let p = estimate
        .one_sided_p_value(estimate.ci_lower, Direction::AtLeast)
        .unwrap();
    assert!((p - 0.025).abs() < 1e-9, "{p}");
}

#[test]
fn holm_matches_the_textbook_example() {
    // p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → max 0.06.
    let adjusted = holm_adjust(&[0.01, 0.04, 0.03, 0.005]);
    let expected = [0.03, 0.06, 0.06, 0.02];
    for (got, want) in adjusted.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{adjusted:?}");
    }
    assert!(holm_adjust(&[]).is_empty());
}

#[test]
fn holm_downgrades_a_marginal_pass() {
    let make = |center: f64| {
        let inference = TInference {
            center,
            standard_error: 0.1,
            degrees_of_freedom: 30.0,
            log_scale: false,
        };
        Claim::threshold("c", "m", "above 0", 0.0, Direction::AtLeast)
            .judge(Estimate::from_t(inference, "", 0.95).unwrap())
    };
    // Two claims with one-sided p ≈ 0.02 each pass alone at 0.025, but not as a family of three.
    let mut results = vec![make(0.21), make(0.215), make(0.8)];
    assert!(results.iter().all(|r| r.verdict == Verdict::Pass));
    let family = apply_holm(&mut results, 0.025);
    assert_eq!(family, 3);
    assert_eq!(results[0].verdict, Verdict::Partial);
    assert_eq!(results[1].verdict, Verdict::Partial);
    assert_eq!(results[2].verdict, Verdict::Pass);
    assert!(results[0].reason.contains("Holm"));
}

#[test]
fn a_disagreeing_cross_check_makes_the_claim_inconclusive() {
    let claim = Claim::threshold("t", "m", "at least 2", 2.0, Direction::AtLeast);
    let agree =
        claim.judge_with_cross_check(estimate(2.5, 2.1, 2.9), estimate(2.4, 2.2, 2.6), "robust");
    assert_eq!(agree.verdict, Verdict::Pass);
    assert!(agree.details.contains_key("cross_check"));
    let disagree =
        claim.judge_with_cross_check(estimate(2.5, 2.1, 2.9), estimate(2.1, 1.8, 2.4), "robust");
    assert_eq!(disagree.verdict, Verdict::Partial);
    assert!(disagree.reason.contains("robust cross-check says PARTIAL"));
}

#[test]
fn skipped_names_its_command_and_weaken_never_raises() {
    let claim = Claim::threshold("t", "m", "at least 2", 2.0, Direction::AtLeast);
    let skipped = claim.skipped("data not installed", "apt-get install x");
    assert_eq!(skipped.verdict, Verdict::Skipped);
    assert!(skipped.reason.contains("`apt-get install x`"));
    assert_eq!(skipped.details["enable_command"], "apt-get install x");
    assert_eq!(
        skipped.clone().weaken(Verdict::Fail, "no").verdict,
        Verdict::Skipped
    );
    let pass = claim.judge(estimate(2.5, 2.1, 2.9));
    assert_eq!(
        pass.clone().weaken(Verdict::Fail, "tokens differ").verdict,
        Verdict::Fail
    );
    let fail = claim.judge(estimate(1.5, 1.4, 1.6));
    assert_eq!(
        fail.clone().weaken(Verdict::Pass, "x").verdict,
        Verdict::Fail
    );
    let contended = fail.weaken(Verdict::Inconclusive, "another process held a core");
    assert_eq!(contended.verdict, Verdict::Inconclusive);
    assert!(contended.reason.ends_with("another process held a core"));
    assert_eq!(
        contended.weaken(Verdict::Fail, "x").verdict,
        Verdict::Inconclusive
    );
    assert_eq!(
        serde_json::to_string(&Verdict::Skipped).unwrap(),
        "\"SKIPPED\""
    );
    assert!(Verdict::Error.is_failure() && !Verdict::Skipped.is_failure());
}

#[test]
fn a_stored_estimate_is_checked_when_read() {
    let good = serde_json::to_string(&estimate(2.0, 1.5, 2.5)).unwrap();
    assert!(serde_json::from_str::<Estimate>(&good).is_ok());
    let inverted = good.replace("\"ci_lower\":1.5", "\"ci_lower\":2.7");
    let error = serde_json::from_str::<Estimate>(&inverted).unwrap_err();
    assert!(
        error.to_string().contains("does not contain its point"),
        "{error}"
    );
    let not_a_number = good.replace("\"point\":2.0", "\"point\":null");
    assert!(serde_json::from_str::<Estimate>(&not_a_number).is_err());
}

#[test]
fn verdicts_serialize_uppercase() {
    assert_eq!(
        serde_json::to_string(&Verdict::Partial).unwrap(),
        "\"PARTIAL\""
    );
    assert!(Estimate::new(1.0, 2.0, 3.0, "", 0.95).is_err());
    assert!(Estimate::new(f64::NAN, 2.0, 3.0, "", 0.95).is_err());
}
