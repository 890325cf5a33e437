//! The history store: a versioned schema over SQLite (the default, one file beside the archive, nothing to
//! install) or PostgreSQL (one store for many machines, selected by a `postgres://` location).
//!
//! Safety of what is recorded comes first:
//! - the schema carries its version in `schema_version`; an older store is migrated forward inside one
//!   transaction, a newer one is refused with [`HistoryError::NewerSchema`];
//! - a file that is not a readable history (truncated, overwritten, another program's database) is refused
//!   with [`HistoryError::Corrupt`] and left untouched: nothing is ever recreated silently;
//! - SQLite runs in WAL mode with a busy timeout and every write is one `BEGIN IMMEDIATE` transaction, so
//!   two runs recording at once both land; PostgreSQL writes are transactions too, and schema creation
//!   holds an advisory lock;
//! - recording is idempotent by run id, so importing the same archive twice adds nothing;
//! - a location's password never reaches an error or a printed line ([`redact_location`]).

use crate::error::{HistoryError, Result};
use crate::record::{Better, ClaimRecord, MachineFingerprint, Mode, RunRecord};
use perf_core::results::{load_run, ValidationRun};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema version this build writes. Version 2 added the load average of a run and the raw-sample
/// summaries of a claim.
pub const SCHEMA_VERSION: u32 = 2;

/// The store file's name inside the results directory.
pub const DEFAULT_FILE_NAME: &str = "history.sqlite";

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Key of the PostgreSQL advisory lock held while the schema is created or migrated.
#[cfg(feature = "postgres")]
const SCHEMA_LOCK_KEY: i64 = 0x746f_7263_6870_6572;

/// Migration `i` takes the schema from version `i` to `i + 1`. SQL common to SQLite and PostgreSQL.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            git_commit TEXT,
            git_dirty BIGINT,
            timestamp_utc TEXT NOT NULL,
            mode TEXT NOT NULL,
            seed TEXT NOT NULL,
            fingerprint_id TEXT NOT NULL,
            cpu_vendor TEXT NOT NULL,
            cpu_family TEXT,
            cpu_model TEXT NOT NULL,
            cpu_features TEXT NOT NULL,
            cores BIGINT,
            memory_bytes BIGINT,
            kernel TEXT NOT NULL,
            rustc TEXT NOT NULL,
            arch TEXT NOT NULL
        )",
        "CREATE TABLE claims (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            claim_id TEXT NOT NULL,
            module TEXT NOT NULL,
            verdict TEXT NOT NULL,
            point DOUBLE PRECISION,
            ci_lower DOUBLE PRECISION,
            ci_upper DOUBLE PRECISION,
            unit TEXT NOT NULL,
            better TEXT NOT NULL,
            PRIMARY KEY (run_id, claim_id)
        )",
        "CREATE INDEX runs_by_machine ON runs (fingerprint_id, mode, timestamp_utc)",
        "CREATE INDEX claims_by_claim ON claims (claim_id)",
    ],
    &[
        "ALTER TABLE runs ADD COLUMN load_average_1m DOUBLE PRECISION",
        "ALTER TABLE claims ADD COLUMN samples_json TEXT",
    ],
];

mod backend;
#[cfg(test)]
mod tests;

pub use backend::redact_location;
#[cfg(feature = "postgres")]
use backend::{password_of, postgres_error, scrub, PostgresDatabase};
use backend::{sqlite_error, Backend, Database, Kind, SqliteDatabase, Value};

/// Which runs to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs on this machine ([`MachineFingerprint::id`]).
    pub fingerprint_id: Option<String>,
    /// Only runs in this mode.
    pub mode: Option<Mode>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Run ids recorded now.
    pub imported: Vec<String>,
    /// Run ids the store already held (left as they were).
    pub already_present: Vec<String>,
    /// Files that could not be read, with the reason; nothing of them was recorded.
    pub failed: Vec<(String, String)>,
}

/// A history of runs. Open with [`Store::open`] (a path or a `postgres://` URL) or
/// [`Store::open_default`].
pub struct Store {
    backend: Backend,
    location: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The default store of a results directory: `<results_dir>/history.sqlite`.
    pub fn default_path(results_dir: &Path) -> PathBuf {
        results_dir.join(DEFAULT_FILE_NAME)
    }

    /// Open (creating when absent) the default SQLite store of a results directory.
    ///
    /// # Errors
    /// As [`Store::open_sqlite`].
    pub fn open_default(results_dir: &Path) -> Result<Self> {
        Self::open_sqlite(&Self::default_path(results_dir))
    }

    /// Open a store by location: a `postgres://` or `postgresql://` URL, otherwise a SQLite file path.
    ///
    /// # Errors
    /// As [`Store::open_sqlite`] / [`Store::open_postgres`].
    pub fn open(location: &str) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Self::open_postgres(location);
        }
        if location.contains("://") {
            return Err(HistoryError::Location {
                location: redact_location(location),
                reason: "only a SQLite file path or a postgres:// URL is supported".into(),
            });
        }
        Self::open_sqlite(Path::new(location))
    }

    /// Open or create a SQLite store and bring its schema up to date.
    ///
    /// # Errors
    /// `Corrupt` for a file that is not a readable TorchPerf history, `NewerSchema` for a store written by a
    /// newer build, `Store` when the file cannot be opened.
    pub fn open_sqlite(path: &Path) -> Result<Self> {
        let mut store = Self::connect_sqlite(path)?;
        store.initialize(SCHEMA_VERSION)?;
        Ok(store)
    }

    fn connect_sqlite(path: &Path) -> Result<Self> {
        let location = path.display().to_string();
        let store_error = |reason: String| HistoryError::Store {
            location: location.clone(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| store_error(format!("cannot create {}: {e}", parent.display())))?;
        }
        let connection =
            rusqlite::Connection::open(path).map_err(|e| sqlite_error(&location, &e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sqlite_error(&location, &e))?;
        // An unreadable header shows here first (NotADatabase); a truncated body in the check below.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| sqlite_error(&location, &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(store_error(format!(
                "could not switch to WAL journaling (got {mode})"
            )));
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| sqlite_error(&location, &e))?;
        let check: Vec<String> = {
            let mut statement = connection
                .prepare("PRAGMA quick_check")
                .map_err(|e| sqlite_error(&location, &e))?;
            let rows = statement
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(|e| sqlite_error(&location, &e))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(|e| sqlite_error(&location, &e))?
        };
        if check != ["ok"] {
            return Err(HistoryError::Corrupt {
                location,
                reason: format!("integrity check: {}", check.join("; ")),
            });
        }
        Ok(Self {
            backend: Backend::Sqlite(connection),
            location,
        })
    }

    /// Connect to a PostgreSQL store and bring its schema up to date.
    ///
    /// # Errors
    /// `Location` when this build has no PostgreSQL support, `Store` when the server cannot be reached,
    /// `NewerSchema` / `Corrupt` as for SQLite. The password never appears in an error.
    pub fn open_postgres(url: &str) -> Result<Self> {
        let mut store = Self::connect_postgres(url)?;
        store.initialize(SCHEMA_VERSION)?;
        Ok(store)
    }

    #[cfg(feature = "postgres")]
    fn connect_postgres(url: &str) -> Result<Self> {
        let location = redact_location(url);
        let password = password_of(url);
        let client =
            postgres::Client::connect(url, postgres::NoTls).map_err(|e| HistoryError::Store {
                location: location.clone(),
                reason: scrub(&e.to_string(), password.as_deref()),
            })?;
        Ok(Self {
            backend: Backend::Postgres {
                client: Box::new(client),
                password,
            },
            location,
        })
    }

    #[cfg(not(feature = "postgres"))]
    fn connect_postgres(url: &str) -> Result<Self> {
        Err(HistoryError::Location {
            location: redact_location(url),
            reason: "this build has no PostgreSQL support (build the history crate with feature `postgres`)"
                .into(),
        })
    }

    /// Where the store is, with any password removed: safe to print.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Run `body` in one transaction (`BEGIN IMMEDIATE` on SQLite when `write`), committing on success.
    fn transaction<T>(
        &mut self,
        write: bool,
        body: impl FnOnce(&mut dyn Database) -> Result<T>,
    ) -> Result<T> {
        let location = self.location.clone();
        match &mut self.backend {
            Backend::Sqlite(connection) => {
                let behavior = if write {
                    rusqlite::TransactionBehavior::Immediate
                } else {
                    rusqlite::TransactionBehavior::Deferred
                };
                let transaction = connection
                    .transaction_with_behavior(behavior)
                    .map_err(|e| sqlite_error(&location, &e))?;
                let out = body(&mut SqliteDatabase {
                    connection: &transaction,
                    location: &location,
                })?;
                transaction
                    .commit()
                    .map_err(|e| sqlite_error(&location, &e))?;
                Ok(out)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres { client, password } => {
                let password = password.as_deref();
                let mut transaction = client
                    .transaction()
                    .map_err(|e| postgres_error(&location, password, &e))?;
                let out = body(&mut PostgresDatabase {
                    transaction: &mut transaction,
                    location: &location,
                    password,
                })?;
                transaction
                    .commit()
                    .map_err(|e| postgres_error(&location, password, &e))?;
                Ok(out)
            }
        }
    }

    /// Create the schema in an empty store, or migrate an older one forward to `target`; refuse a newer
    /// one or one that is not a history.
    fn initialize(&mut self, target: u32) -> Result<()> {
        let location = self.location.clone();
        #[cfg(feature = "postgres")]
        let is_postgres = matches!(self.backend, Backend::Postgres { .. });
        self.transaction(true, |database| {
            #[cfg(feature = "postgres")]
            if is_postgres {
                database.query(
                    "SELECT pg_advisory_xact_lock(?)::TEXT",
                    &[Value::Integer(Some(SCHEMA_LOCK_KEY))],
                    &[Kind::Text],
                )?;
            }
            let tables = database.table_names()?;
            let current = if tables.iter().any(|t| t == "schema_version") {
                read_version(database, &location)?
            } else if tables.is_empty() {
                database.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)", &[])?;
                database.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
                0
            } else {
                return Err(HistoryError::Corrupt {
                    location: location.clone(),
                    reason: format!(
                        "it has tables ({}) but no schema_version table",
                        tables.join(", ")
                    ),
                });
            };
            if current > SCHEMA_VERSION {
                return Err(HistoryError::NewerSchema {
                    location: location.clone(),
                    found: current,
                    supported: SCHEMA_VERSION,
                });
            }
            for version in current..target {
                for statement in MIGRATIONS[version as usize] {
                    database.execute(statement, &[])?;
                }
            }
            if current < target {
                database.execute(
                    "UPDATE schema_version SET version = ?",
                    &[Value::Integer(Some(i64::from(target)))],
                )?;
            }
            Ok(())
        })
    }

    /// The schema version of the store.
    ///
    /// # Errors
    /// `Store` when it cannot be read.
    pub fn schema_version(&mut self) -> Result<u32> {
        let location = self.location.clone();
        self.transaction(false, |database| read_version(database, &location))
    }

    /// Record a run. Returns `false` (and changes nothing) when the store already holds its run id.
    ///
    /// # Errors
    /// `Store` when the write fails; nothing of the run is recorded then.
    pub fn record(&mut self, run: &ValidationRun) -> Result<bool> {
        self.record_run(&RunRecord::from_run(run))
    }

    /// Record a run already summarised (see [`Store::record`]).
    ///
    /// # Errors
    /// As [`Store::record`].
    pub fn record_run(&mut self, run: &RunRecord) -> Result<bool> {
        let fingerprint = &run.fingerprint;
        let run_params = vec![
            Value::Text(Some(run.run_id.clone())),
            Value::Text(run.commit.clone()),
            Value::Integer(run.dirty.map(i64::from)),
            Value::Text(Some(run.timestamp_utc.clone())),
            Value::Text(Some(run.mode.as_str().to_string())),
            Value::Text(Some(run.seed.clone())),
            Value::Text(Some(fingerprint.id())),
            Value::Text(Some(fingerprint.cpu_vendor.clone())),
            Value::Text(fingerprint.cpu_family.clone()),
            Value::Text(Some(fingerprint.cpu_model.clone())),
            Value::Text(Some(fingerprint.cpu_features.join(","))),
            Value::Integer(fingerprint.cores.and_then(|c| i64::try_from(c).ok())),
            Value::Integer(fingerprint.memory_bytes.and_then(|m| i64::try_from(m).ok())),
            Value::Text(Some(fingerprint.kernel.clone())),
            Value::Text(Some(fingerprint.rustc.clone())),
            Value::Text(Some(fingerprint.arch.clone())),
            Value::Real(run.load_average_1m.filter(|l| l.is_finite())),
        ];
        let finite = |value: Option<f64>| value.filter(|v| v.is_finite());
        self.transaction(true, |database| {
            let inserted = database.execute(
                "INSERT INTO runs (run_id, git_commit, git_dirty, timestamp_utc, mode, seed, fingerprint_id, \
                 cpu_vendor, cpu_family, cpu_model, cpu_features, cores, memory_bytes, kernel, rustc, arch, \
                 load_average_1m) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (run_id) DO NOTHING",
                &run_params,
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            for claim in &run.claims {
                let samples = if claim.samples.is_empty() {
                    None
                } else {
                    serde_json::to_string(&claim.samples).ok()
                };
                database.execute(
                    "INSERT INTO claims (run_id, claim_id, module, verdict, point, ci_lower, ci_upper, unit, \
                     better, samples_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (run_id, claim_id) DO NOTHING",
                    &[
                        Value::Text(Some(run.run_id.clone())),
                        Value::Text(Some(claim.claim_id.clone())),
                        Value::Text(Some(claim.module.clone())),
                        Value::Text(Some(claim.verdict.clone())),
                        Value::Real(finite(claim.point)),
                        Value::Real(finite(claim.ci_lower)),
                        Value::Real(finite(claim.ci_upper)),
                        Value::Text(Some(claim.unit.clone())),
                        Value::Text(Some(claim.better.as_str().to_string())),
                        Value::Text(samples),
                    ],
                )?;
            }
            Ok(true)
        })
    }

    /// Import archived runs: each path is a `results.json`, a run directory holding one, or a results
    /// directory whose run directories are imported (hidden and `latest` entries skipped). Idempotent by
    /// run id. A file that cannot be read (a future schema, a truncated file) is listed in
    /// [`ImportReport::failed`] and the others are still imported.
    ///
    /// # Errors
    /// `Import` when a path does not exist; `Store` when a write fails.
    pub fn import(&mut self, paths: &[PathBuf]) -> Result<ImportReport> {
        let mut files = Vec::new();
        for path in paths {
            files.extend(results_files(path)?);
        }
        let mut report = ImportReport::default();
        for file in files {
            match load_run(&file) {
                Ok(run) => {
                    if self.record(&run)? {
                        report.imported.push(run.run_id);
                    } else {
                        report.already_present.push(run.run_id);
                    }
                }
                Err(error) => report
                    .failed
                    .push((file.display().to_string(), error.to_string())),
            }
        }
        Ok(report)
    }

    /// Every run matching the filter with its claims, oldest first (by start time, then run id).
    ///
    /// # Errors
    /// `Store` when the query fails, `Corrupt` when a stored row does not parse.
    pub fn runs(&mut self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let location = self.location.clone();
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(fingerprint_id) = &filter.fingerprint_id {
            conditions.push("r.fingerprint_id = ?");
            params.push(Value::Text(Some(fingerprint_id.clone())));
        }
        if let Some(mode) = filter.mode {
            conditions.push("r.mode = ?");
            params.push(Value::Text(Some(mode.as_str().to_string())));
        }
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        self.transaction(false, |database| {
            let run_rows = database.query(
                &format!(
                    "SELECT r.run_id, r.git_commit, r.git_dirty, r.timestamp_utc, r.mode, r.seed, r.cpu_vendor, \
                     r.cpu_family, r.cpu_model, r.cpu_features, r.cores, r.memory_bytes, r.kernel, r.rustc, \
                     r.arch, r.load_average_1m FROM runs r{condition} ORDER BY r.timestamp_utc, r.run_id"
                ),
                &params,
                &[
                    Kind::Text, Kind::Text, Kind::Integer, Kind::Text, Kind::Text, Kind::Text, Kind::Text,
                    Kind::Text, Kind::Text, Kind::Text, Kind::Integer, Kind::Integer, Kind::Text, Kind::Text,
                    Kind::Text, Kind::Real,
                ],
            )?;
            let claim_rows = database.query(
                &format!(
                    "SELECT c.run_id, c.claim_id, c.module, c.verdict, c.point, c.ci_lower, c.ci_upper, c.unit, \
                     c.better, c.samples_json FROM claims c JOIN runs r ON r.run_id = c.run_id{condition} \
                     ORDER BY c.run_id, c.claim_id"
                ),
                &params,
                &[
                    Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Real, Kind::Real, Kind::Real,
                    Kind::Text, Kind::Text, Kind::Text,
                ],
            )?;
            let mut claims_by_run: BTreeMap<String, Vec<ClaimRecord>> = BTreeMap::new();
            for row in claim_rows {
                let mut row = row.into_iter();
                let mut next = || row.next().unwrap_or(Value::Text(None));
                let run_id = next().text().unwrap_or_default();
                let claim_id = next().text().unwrap_or_default();
                let module = next().text().unwrap_or_default();
                let verdict = next().text().unwrap_or_default();
                let point = next().real();
                let ci_lower = next().real();
                let ci_upper = next().real();
                let unit = next().text().unwrap_or_default();
                let better = Better::parse(&next().text().unwrap_or_default());
                let samples = match next().text() {
                    Some(json) => {
                        serde_json::from_str(&json).map_err(|e| HistoryError::Corrupt {
                            location: location.clone(),
                            reason: format!("samples of {claim_id} in run {run_id}: {e}"),
                        })?
                    }
                    None => BTreeMap::new(),
                };
                claims_by_run.entry(run_id).or_default().push(ClaimRecord {
                    claim_id,
                    module,
                    verdict,
                    point,
                    ci_lower,
                    ci_upper,
                    unit,
                    better,
                    samples,
                });
            }
            let mut runs = Vec::with_capacity(run_rows.len());
            for row in run_rows {
                let mut row = row.into_iter();
                let mut next = || row.next().unwrap_or(Value::Text(None));
                let run_id = next().text().unwrap_or_default();
                let commit = next().text();
                let dirty = next().integer().map(|d| d != 0);
                let timestamp_utc = next().text().unwrap_or_default();
                let mode_text = next().text().unwrap_or_default();
                let mode = Mode::parse(&mode_text).ok_or_else(|| HistoryError::Corrupt {
                    location: location.clone(),
                    reason: format!("run {run_id} has mode {mode_text:?}"),
                })?;
                let seed = next().text().unwrap_or_default();
                let fingerprint = MachineFingerprint {
                    cpu_vendor: next().text().unwrap_or_default(),
                    cpu_family: next().text(),
                    cpu_model: next().text().unwrap_or_default(),
                    cpu_features: next()
                        .text()
                        .unwrap_or_default()
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_string)
                        .collect(),
                    cores: next().integer().and_then(|c| u64::try_from(c).ok()),
                    memory_bytes: next().integer().and_then(|m| u64::try_from(m).ok()),
                    kernel: next().text().unwrap_or_default(),
                    rustc: next().text().unwrap_or_default(),
                    arch: next().text().unwrap_or_default(),
                };
                let load_average_1m = next().real();
                let claims = claims_by_run.remove(&run_id).unwrap_or_default();
                runs.push(RunRecord {
                    run_id,
                    commit,
                    dirty,
                    timestamp_utc,
                    mode,
                    seed,
                    fingerprint,
                    load_average_1m,
                    claims,
                });
            }
            Ok(runs)
        })
    }

    /// One run by id, with its claims.
    ///
    /// # Errors
    /// As [`Store::runs`].
    pub fn run(&mut self, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .runs(&RunFilter::default())?
            .into_iter()
            .find(|run| run.run_id == run_id))
    }
}

fn read_version(database: &mut dyn Database, location: &str) -> Result<u32> {
    let rows = database.query("SELECT version FROM schema_version", &[], &[Kind::Integer])?;
    match rows.as_slice() {
        [row] => match row[0].clone().integer() {
            Some(version) if version >= 0 => Ok(u32::try_from(version).unwrap_or(u32::MAX)),
            other => Err(HistoryError::Corrupt {
                location: location.to_string(),
                reason: format!("schema_version holds {other:?}"),
            }),
        },
        rows => Err(HistoryError::Corrupt {
            location: location.to_string(),
            reason: format!("schema_version has {} rows, expected 1", rows.len()),
        }),
    }
}

/// The results files a path names (see [`Store::import`]).
fn results_files(path: &Path) -> Result<Vec<PathBuf>> {
    let import_error = |reason: String| HistoryError::Import {
        path: path.display().to_string(),
        reason,
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(import_error("no such file or directory".into()));
    }
    let own = path.join("results.json");
    if own.is_file() {
        return Ok(vec![own]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| import_error(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| import_error(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "latest" {
            continue;
        }
        let candidate = entry.path().join("results.json");
        if candidate.is_file() {
            files.push(candidate);
        }
    }
    files.sort();
    Ok(files)
}
