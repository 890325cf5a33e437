//! The suite library end to end on small suites: panic and error isolation, claim filters, SKIPPED
//! and ERROR under `--strict`, the archive, and escaping of everything a suite supplies.

use perf_core::claim::{Claim, ClaimResult, Direction, Estimate, Verdict};
use perf_core::environment::EnvironmentRecord;
use suite::{archive, Context, Suite, SuiteArgs};

fn threshold_claim(id: &str, statement: &str) -> Claim {
    Claim::threshold(id, "demo", statement, 1.0, Direction::AtLeast)
}

fn passing(_: &Context) -> Result<Vec<ClaimResult>, perf_core::PerfError> {
    let estimate = Estimate::new(2.0, 1.5, 2.5, "×", 0.95)?;
    Ok(vec![
        threshold_claim("demo.fast", "fast").judge(estimate.clone()),
        threshold_claim("demo.other", "other").judge(estimate),
    ])
}

fn args(out: &std::path::Path) -> SuiteArgs {
    SuiteArgs {
        quick: true,
        out: Some(out.to_path_buf()),
        seed: suite::DEFAULT_SEED,
        ..SuiteArgs::default()
    }
}

#[test]
fn a_panicking_or_failing_module_does_not_stop_the_run() {
    let directory = tempfile::tempdir().unwrap();
    let suite = Suite::new("isolation")
        .module("demo", passing)
        .module(
            "broken",
            |_: &Context| -> Result<Vec<ClaimResult>, std::io::Error> {
                Err(std::io::Error::other("disk on fire"))
            },
        )
        .module(
            "panics",
            |_: &Context| -> Result<Vec<ClaimResult>, std::io::Error> { panic!("kernel exploded") },
        );
    let outcome = suite.run(&args(directory.path())).unwrap();
    let statuses: Vec<(&str, &str)> = outcome
        .run
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [("demo", "ran"), ("broken", "error"), ("panics", "error")]
    );
    assert!(outcome.run.modules[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("disk on fire"));
    assert!(outcome.run.modules[2]
        .reason
        .as_deref()
        .unwrap()
        .contains("kernel exploded"));
    assert!(outcome.has_failures());
    // Every module's environment was recorded, and each claim carries its module's.
    assert!(outcome.run.modules.iter().all(|m| m.environment.is_some()));
    assert!(outcome.run.claims.iter().all(|c| c.environment.is_some()));
    // The archive holds the run, readable back.
    let loaded = archive::load(&outcome.directory).unwrap();
    assert_eq!(loaded.run_id, outcome.run.run_id);
    assert_eq!(archive::list_runs(directory.path()).unwrap().len(), 1);
}

#[test]
fn filters_keep_only_the_named_claims_and_unknown_modules_are_errors() {
    let directory = tempfile::tempdir().unwrap();
    let suite = Suite::new("filters").module("demo", passing);
    let mut arguments = args(directory.path());
    arguments.claims = vec!["demo.fast".into()];
    let outcome = suite.run(&arguments).unwrap();
    let ids: Vec<&str> = outcome.run.claims.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["demo.fast"]);
    let mut arguments = args(directory.path());
    arguments.modules = vec!["nope".into()];
    let error = suite.run(&arguments).unwrap_err().to_string();
    assert!(error.contains("unknown module `nope`"), "{error}");
}

#[test]
fn skipped_is_success_and_error_is_failure_under_strict() {
    let directory = tempfile::tempdir().unwrap();
    let skipped = Suite::new("skips").module("demo", |_: &Context| {
        Ok::<_, std::io::Error>(vec![threshold_claim("demo.data", "needs data").skipped(
            "data not installed",
            "apt-get install dataset-fashion-mnist",
        )])
    });
    let outcome = skipped.run(&args(directory.path())).unwrap();
    assert_eq!(outcome.run.claims[0].verdict, Verdict::Skipped);
    assert!(!outcome.has_failures());
    let report = std::fs::read_to_string(outcome.directory.join("report.md")).unwrap();
    assert!(report.contains("Skipped by design"));
    assert!(report.contains("apt-get install dataset-fashion-mnist"));

    let errored = Suite::new("errors").module("demo", |_: &Context| {
        Ok::<_, std::io::Error>(vec![
            threshold_claim("demo.broken", "broken").error("kernel failed")
        ])
    });
    assert!(errored.run(&args(directory.path())).unwrap().has_failures());
}

#[test]
fn text_a_suite_supplies_is_escaped_in_every_report() {
    let directory = tempfile::tempdir().unwrap();
    let hostile = "<script>alert(1)</script> | `x`";
    let suite = Suite::new("escaping").module("demo", move |_: &Context| {
        let estimate = Estimate::new(2.0, 1.5, 2.5, "×", 0.95)?;
        let claim = Claim::threshold(
            "demo.<img src=x onerror=alert(1)>",
            "demo",
            hostile,
            1.0,
            Direction::AtLeast,
        );
        Ok::<_, perf_core::PerfError>(vec![claim.judge(estimate).with_detail(
            "table",
            serde_json::json!({
                "title": hostile,
                "columns": ["<b>name</b>", "value"],
                "rows": [["<script>x</script>", 1.5]],
            }),
        )])
    });
    let outcome = suite.run(&args(directory.path())).unwrap();
    let markdown = std::fs::read_to_string(outcome.directory.join("report.md")).unwrap();
    let html = std::fs::read_to_string(outcome.directory.join("report.html")).unwrap();
    for text in [&markdown, &html] {
        assert!(!text.contains("<script>"), "unescaped script tag");
        assert!(!text.contains("<img src=x"), "unescaped img tag");
        assert!(!text.contains("<b>name</b>"), "unescaped table header");
    }
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("<table"), "the claim's table is rendered");
    assert!(markdown.contains("## Tables"));
}

#[test]
fn a_claim_needing_every_core_under_contention_is_inconclusive_not_fail() {
    let failing = threshold_claim("demo.scaling", "two threads ≥ 1.85×")
        .judge(Estimate::new(0.55, 0.45, 0.65, "×", 0.95).unwrap());
    assert_eq!(failing.verdict, Verdict::Fail);
    let busy = EnvironmentRecord {
        others_cores: Some(0.48),
        ..quiet_record()
    };
    let judged = suite::judge_environment(failing.clone().needs_quiet_machine(), &busy);
    assert_eq!(judged.verdict, Verdict::Inconclusive);
    assert!(judged.reason.contains("48% of a core"), "{}", judged.reason);
    // The same measurement on a quiet machine is the code's FAIL.
    let quiet = suite::judge_environment(failing.clone().needs_quiet_machine(), &quiet_record());
    assert_eq!(quiet.verdict, Verdict::Fail);
    // A claim that does not need every core keeps its verdict and names the contention.
    let annotated = suite::judge_environment(failing, &busy);
    assert_eq!(annotated.verdict, Verdict::Fail);
    assert!(annotated.reason.contains("contention"));
}

fn quiet_record() -> EnvironmentRecord {
    EnvironmentRecord {
        duration_seconds: 1.0,
        logical_cpus: Some(2),
        steal_fraction: Some(0.0),
        iowait_fraction: Some(0.0),
        others_cores: Some(0.01),
        self_cores: Some(1.0),
        load_average_start: None,
        load_average_end: None,
        run_queue: None,
        cpu_frequency_start: None,
        cpu_frequency_end: None,
        canary: None,
        notes: Vec::new(),
    }
}

#[test]
fn every_run_is_recorded_in_the_history_and_the_gate_cannot_decide_without_history() {
    let directory = tempfile::tempdir().unwrap();
    let suite = Suite::new("history").module("demo", passing);
    let first = suite.run(&args(directory.path())).unwrap();
    let second = suite.run(&args(directory.path())).unwrap();
    let mut store = history::Store::open_default(directory.path()).unwrap();
    let runs = store.runs(&history::RunFilter::default()).unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_ne!(first.run.run_id, second.run.run_id);
    assert!(ids.contains(&first.run.run_id.as_str()));
    assert!(ids.contains(&second.run.run_id.as_str()));
    assert!(second.directory.ends_with(&second.run.run_id));
    // Two runs are too little history to judge a change against: the gate says it cannot decide.
    let report = suite
        .gate(&args(directory.path()), &second.run, "previous")
        .unwrap();
    assert_eq!(report.exit_code(), 2, "{}", report.to_markdown());
    // A store from a newer schema is refused and left untouched; the run is still archived.
    let corrupt = tempfile::tempdir().unwrap();
    std::fs::write(corrupt.path().join("history.sqlite"), b"not a database").unwrap();
    let outcome = suite.run(&args(corrupt.path())).unwrap();
    assert!(outcome.directory.join("results.json").exists());
    assert_eq!(
        std::fs::read(corrupt.path().join("history.sqlite")).unwrap(),
        b"not a database"
    );
}
