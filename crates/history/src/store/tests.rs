//! The store's tests: redaction, round trips and idempotence, refusal of corrupt, foreign and newer
//! files, migration from the previous schema, concurrent writers (threads and processes), and the same
//! on PostgreSQL when `TORCHPERF_TEST_POSTGRES_URL` is set.

use super::backend::{password_of, scrub};
use super::*;

pub(crate) mod test_support {
    //! Building a store at an older schema version, for migration tests.
    use super::*;

    /// Open a location and bring it only to `version` (never past the current one).
    pub(crate) fn open_at_version(location: &str, version: u32) -> Result<Store> {
        let mut store = if location.starts_with("postgres") {
            Store::connect_postgres(location)?
        } else {
            Store::connect_sqlite(Path::new(location))?
        };
        store.initialize(version.min(SCHEMA_VERSION))?;
        Ok(store)
    }

    /// Insert a minimal version-1 run row and one claim directly (version 1 has no load average or samples).
    pub(crate) fn insert_version_one_run(store: &mut Store, run_id: &str) -> Result<()> {
        store.transaction(true, |database| {
            database.execute(
                "INSERT INTO runs (run_id, git_commit, git_dirty, timestamp_utc, mode, seed, fingerprint_id, \
                 cpu_vendor, cpu_family, cpu_model, cpu_features, cores, memory_bytes, kernel, rustc, arch) \
                 VALUES (?, 'abc', 0, '2026-01-01T00:00:00Z', 'quick', '1', 'f', 'v', NULL, 'm', 'avx2', 2, \
                 NULL, 'k', 'r', 'x86_64')",
                &[Value::Text(Some(run_id.to_string()))],
            )?;
            database.execute(
                "INSERT INTO claims (run_id, claim_id, module, verdict, point, ci_lower, ci_upper, unit, better) \
                 VALUES (?, 'm.c', 'm', 'PASS', 2.0, 1.5, 2.5, 'x', 'higher')",
                &[Value::Text(Some(run_id.to_string()))],
            )?;
            Ok(())
        })
    }

    /// Drop every table (PostgreSQL tests share one database).
    pub(crate) fn drop_all(store: &mut Store) -> Result<()> {
        store.transaction(true, |database| {
            for table in ["claims", "runs", "schema_version"] {
                database.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])?;
            }
            Ok(())
        })
    }
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact_location("postgres://ci:s3cret@localhost:5433/history"),
        "postgres://ci:***@localhost:5433/history"
    );
    assert_eq!(
        redact_location("postgres://ci@localhost/history"),
        "postgres://ci@localhost/history"
    );
    assert_eq!(
        redact_location("host=x password=hunter2 user=y"),
        "host=x password=*** user=y"
    );
    assert_eq!(
        redact_location("postgres://u@h/db?password=abc&x=1"),
        "postgres://u@h/db?password=***&x=1"
    );
    assert_eq!(password_of("postgres://a:b@c/d").as_deref(), Some("b"));
    assert_eq!(scrub("failed for b", Some("b")), "failed for ***");
    assert_eq!(
        redact_location("validation_results/history.sqlite"),
        "validation_results/history.sqlite"
    );
}

#[test]
fn unsupported_scheme_is_a_typed_error() {
    let error = Store::open("mysql://root:pw@host/db").unwrap_err();
    assert!(matches!(error, HistoryError::Location { .. }));
    assert!(!error.to_string().contains("pw"), "{error}");
}

use crate::fixtures::{run, ScratchDir};
use perf_core::claim::Direction::{AtLeast, AtMost};

fn sample(run_id: &str, minute: u32) -> ValidationRun {
    run(
        run_id,
        "c0ffee",
        minute,
        None,
        &[("m.speedup", 2.0, AtLeast), ("m.overhead", 0.01, AtMost)],
    )
}

#[test]
fn records_round_trip_and_are_idempotent() {
    let dir = ScratchDir::new("round-trip");
    let path = dir.0.join("nested").join(DEFAULT_FILE_NAME);
    let mut store = Store::open_sqlite(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let first = sample("run-1", 1);
    assert!(store.record(&first).unwrap());
    assert!(!store.record(&first).unwrap(), "a run id is recorded once");
    store.record(&sample("run-2", 2)).unwrap();
    let runs = store.runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], RunRecord::from_run(&first));
    assert_eq!(runs[0].claims[0].samples["candidate_ns"].median, 2.0);
    assert_eq!(runs[0].claim("m.overhead").unwrap().better, Better::Lower);
    let filtered = store
        .runs(&RunFilter {
            fingerprint_id: Some("other".into()),
            mode: None,
        })
        .unwrap();
    assert!(filtered.is_empty());
    drop(store);
    // Reopening keeps everything.
    let mut again = Store::open(&path.display().to_string()).unwrap();
    assert_eq!(again.runs(&RunFilter::default()).unwrap().len(), 2);
    assert!(again.run("run-2").unwrap().is_some());
}

#[test]
fn imports_the_reference_run_once() {
    let dir = ScratchDir::new("import");
    let mut store = Store::open_default(&dir.0).unwrap();
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../validation_results/reference");
    let report = store.import(std::slice::from_ref(&reference)).unwrap();
    assert_eq!(report.imported.len(), 1, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    let again = store.import(&[reference]).unwrap();
    assert_eq!(again.already_present, report.imported);
    let runs = store.runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].claims.len() > 100);
    assert_eq!(runs[0].mode, Mode::Full);
    // A results file from a future schema is reported, not recorded, and the rest still imports.
    let future_dir = dir.0.join("archive");
    for (name, version) in [("20990101T000000Z-future", 99), ("20260101T000000Z-ok", 2)] {
        let mut value = serde_json::to_value(sample(name, 3)).unwrap();
        value["schema_version"] = serde_json::json!(version);
        std::fs::create_dir_all(future_dir.join(name)).unwrap();
        std::fs::write(
            future_dir.join(name).join("results.json"),
            value.to_string(),
        )
        .unwrap();
    }
    let mixed = store.import(&[future_dir]).unwrap();
    assert_eq!(mixed.imported, ["20260101T000000Z-ok"]);
    assert_eq!(mixed.failed.len(), 1);
    assert!(
        mixed.failed[0].1.contains("newer than this build reads"),
        "{mixed:?}"
    );
    assert!(matches!(
        store.import(&[dir.0.join("missing")]),
        Err(HistoryError::Import { .. })
    ));
}

#[test]
fn corrupt_truncated_foreign_and_newer_files_are_refused_and_left_untouched() {
    let dir = ScratchDir::new("corrupt");
    let garbage = dir.0.join("garbage.sqlite");
    std::fs::write(
        &garbage,
        b"this is not a database, it is a note".repeat(200),
    )
    .unwrap();
    let error = Store::open_sqlite(&garbage).unwrap_err();
    assert!(matches!(error, HistoryError::Corrupt { .. }), "{error}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        b"this is not a database, it is a note".repeat(200)
    );

    // A real store cut in half.
    let whole = dir.0.join("whole.sqlite");
    {
        let mut store = Store::open_sqlite(&whole).unwrap();
        for index in 0..40 {
            store
                .record(&sample(&format!("run-{index}"), index))
                .unwrap();
        }
        // Irrefutable without the `postgres` feature, where SQLite is the only backend.
        #[cfg_attr(not(feature = "postgres"), allow(irrefutable_let_patterns))]
        let Backend::Sqlite(connection) = &store.backend
        else {
            unreachable!()
        };
        connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let bytes = std::fs::read(&whole).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    let truncated = dir.0.join("truncated.sqlite");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = Store::open_sqlite(&truncated).unwrap_err();
    assert!(matches!(error, HistoryError::Corrupt { .. }), "{error}");
    assert_eq!(std::fs::read(&truncated).unwrap().len(), bytes.len() / 2);

    // Another program's database.
    let foreign = dir.0.join("foreign.sqlite");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    let error = Store::open_sqlite(&foreign).unwrap_err();
    assert!(
        error.to_string().contains("no schema_version table"),
        "{error}"
    );

    // A newer schema.
    rusqlite::Connection::open(&whole)
        .unwrap()
        .execute_batch("UPDATE schema_version SET version = 99;")
        .unwrap();
    let error = Store::open_sqlite(&whole).unwrap_err();
    assert!(
        matches!(
            error,
            HistoryError::NewerSchema {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn sqlite_migrates_from_the_previous_schema_version() {
    let dir = ScratchDir::new("migrate");
    let path = dir.0.join("old.sqlite");
    let location = path.display().to_string();
    migrates_from_previous_version(&location);
}

fn migrates_from_previous_version(location: &str) {
    let mut old = test_support::open_at_version(location, SCHEMA_VERSION - 1).unwrap();
    assert_eq!(old.schema_version().unwrap(), SCHEMA_VERSION - 1);
    test_support::insert_version_one_run(&mut old, "old-run").unwrap();
    drop(old);
    let mut store = Store::open(location).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let runs = store.runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, "old-run");
    assert_eq!(runs[0].load_average_1m, None);
    assert_eq!(runs[0].claims[0].point, Some(2.0));
    assert!(store.record(&sample("new-run", 5)).unwrap());
    assert_eq!(store.runs(&RunFilter::default()).unwrap().len(), 2);
}

/// Two writers, each with its own connection, record at the same time; every run lands.
fn concurrent_writers_all_land(location: &str) {
    const RUNS_PER_WRITER: u32 = 25;
    // Both writers also race to create the schema when the store is new.
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let location = location.to_string();
            std::thread::spawn(move || {
                let mut store = Store::open(&location).unwrap();
                for index in 0..RUNS_PER_WRITER {
                    let run_id = format!("writer-{writer}-run-{index}");
                    assert!(store.record(&sample(&run_id, index)).unwrap());
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut store = Store::open(location).unwrap();
    assert_eq!(
        store.runs(&RunFilter::default()).unwrap().len(),
        2 * RUNS_PER_WRITER as usize
    );
}

#[test]
fn sqlite_concurrent_writers_both_land() {
    let dir = ScratchDir::new("concurrent");
    concurrent_writers_all_land(&dir.0.join("shared.sqlite").display().to_string());
}

/// Two processes (this test binary started twice as writers) record into one file at once; all land.
#[test]
fn sqlite_concurrent_processes_both_land() {
    const RUNS_PER_PROCESS: u32 = 20;
    if let Ok(location) = std::env::var("TORCHPERF_HISTORY_WRITER_STORE") {
        // Child: write and leave.
        let writer = std::env::var("TORCHPERF_HISTORY_WRITER_ID").unwrap();
        let mut store = Store::open(&location).unwrap();
        for index in 0..RUNS_PER_PROCESS {
            assert!(store
                .record(&sample(&format!("process-{writer}-run-{index}"), index))
                .unwrap());
        }
        return;
    }
    let dir = ScratchDir::new("processes");
    let location = dir.0.join("shared.sqlite").display().to_string();
    let executable = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|writer| {
            std::process::Command::new(&executable)
                .args([
                    "--exact",
                    "store::tests::sqlite_concurrent_processes_both_land",
                    "--test-threads",
                    "1",
                ])
                .env("TORCHPERF_HISTORY_WRITER_STORE", &location)
                .env("TORCHPERF_HISTORY_WRITER_ID", writer.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut store = Store::open(&location).unwrap();
    assert_eq!(
        store.runs(&RunFilter::default()).unwrap().len(),
        2 * RUNS_PER_PROCESS as usize
    );
}

/// The PostgreSQL store's URL, when a server is provided (`.ci/history.sh` starts one).
fn postgres_url() -> Option<String> {
    match std::env::var("TORCHPERF_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("TORCHPERF_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "TORCHPERF_REQUIRE_POSTGRES=1 but TORCHPERF_TEST_POSTGRES_URL is unset: source .ci/history.sh"
            );
            eprintln!(
                "note: PostgreSQL store tests skipped (TORCHPERF_TEST_POSTGRES_URL unset; `source .ci/history.sh` starts a server)"
            );
            None
        }
    }
}

/// The PostgreSQL tests share one database, so they run one after another in one test.
#[test]
fn postgres_store_migrates_takes_concurrent_writers_and_refuses_newer_schemas() {
    let Some(url) = postgres_url() else { return };
    let mut store = test_support::open_at_version(&url, 0).unwrap();
    test_support::drop_all(&mut store).unwrap();
    drop(store);
    migrates_from_previous_version(&url);

    let mut store = Store::open(&url).unwrap();
    test_support::drop_all(&mut store).unwrap();
    drop(store);
    concurrent_writers_all_land(&url);
    let mut store = Store::open(&url).unwrap();
    assert!(!store.record(&sample("writer-0-run-0", 0)).unwrap());
    if let Some(password) = password_of(&url) {
        assert!(!store.location().contains(&password));
    }

    store
        .transaction(true, |database| {
            database.execute("UPDATE schema_version SET version = 99", &[])
        })
        .unwrap();
    drop(store);
    let error = Store::open(&url).unwrap_err();
    assert!(
        matches!(error, HistoryError::NewerSchema { found: 99, .. }),
        "{error}"
    );
    assert!(matches!(
        test_support::open_at_version(&url, 1),
        Err(HistoryError::NewerSchema { .. })
    ));
    // Leave the database empty for the next run.
    let mut cleanup = Store::connect_postgres(&url).unwrap();
    test_support::drop_all(&mut cleanup).unwrap();

    // A wrong password is an error that does not echo it.
    if let Some(password) = password_of(&url) {
        let wrong = url.replacen(&format!(":{password}@"), ":wrong-secret-value@", 1);
        let error = Store::open(&wrong).unwrap_err().to_string();
        assert!(!error.contains("wrong-secret-value"), "{error}");
    }
}
