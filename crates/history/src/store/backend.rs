//! The two databases behind the store: one small `Database` trait (execute, query, table names) over
//! SQLite (rusqlite) and PostgreSQL (postgres), the values bound and read, and the redaction of a
//! location's password from everything either driver may echo.

use crate::error::{HistoryError, Result};

/// Remove the password from a store location (`postgres://user:secret@host/db` →
/// `postgres://user:***@host/db`, and a `password=...` key in a key-value string); paths pass unchanged.
pub fn redact_location(location: &str) -> String {
    let mut text = location.to_string();
    if let Some(scheme_end) = text.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = text[authority_start..]
            .find(['/', '?'])
            .map_or(text.len(), |i| authority_start + i);
        if let Some(at) = text[authority_start..authority_end].rfind('@') {
            let userinfo = &text[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                let end = authority_start + at;
                text.replace_range(start..end, "***");
            }
        }
    }
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(position) = rest.to_ascii_lowercase().find("password=") {
        let value_start = position + "password=".len();
        redacted.push_str(&rest[..value_start]);
        redacted.push_str("***");
        let value_end = rest[value_start..]
            .find(['&', ' '])
            .map_or(rest.len(), |i| value_start + i);
        rest = &rest[value_end..];
    }
    redacted.push_str(rest);
    redacted
}

/// Remove every occurrence of a secret from a message (a driver may echo the connection string).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => message.replace(secret, "***"),
        _ => message.to_string(),
    }
}

/// The password in a `scheme://user:password@host` location, if any.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn password_of(location: &str) -> Option<String> {
    let authority_start = location.find("://")? + 3;
    let authority_end = location[authority_start..]
        .find(['/', '?'])
        .map_or(location.len(), |i| authority_start + i);
    let authority = &location[authority_start..authority_end];
    let userinfo = &authority[..authority.rfind('@')?];
    let colon = userinfo.find(':')?;
    Some(userinfo[colon + 1..].to_string())
}

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Text(Option<String>),
    Integer(Option<i64>),
    Real(Option<f64>),
}

impl Value {
    pub(super) fn text(self) -> Option<String> {
        match self {
            Value::Text(text) => text,
            _ => None,
        }
    }
    pub(super) fn integer(self) -> Option<i64> {
        match self {
            Value::Integer(value) => value,
            _ => None,
        }
    }
    pub(super) fn real(self) -> Option<f64> {
        match self {
            Value::Real(value) => value,
            _ => None,
        }
    }
}

/// The type of a column read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Text,
    Integer,
    Real,
}

/// The statements the store needs, over either backend (inside a transaction).
pub(super) trait Database {
    /// The query listing this backend's user tables, one text column.
    fn table_names_sql(&self) -> &'static str;

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Value], kinds: &[Kind]) -> Result<Vec<Vec<Value>>>;

    fn table_names(&mut self) -> Result<Vec<String>> {
        let rows = self.query(self.table_names_sql(), &[], &[Kind::Text])?;
        Ok(rows
            .into_iter()
            .filter_map(|mut row| row.remove(0).text())
            .collect())
    }
}

/// One row read as `kinds`, through the backend's typed column getter.
fn decode_row<E>(
    kinds: &[Kind],
    mut text: impl FnMut(usize) -> std::result::Result<Option<String>, E>,
    mut integer: impl FnMut(usize) -> std::result::Result<Option<i64>, E>,
    mut real: impl FnMut(usize) -> std::result::Result<Option<f64>, E>,
) -> std::result::Result<Vec<Value>, E> {
    kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            Ok(match kind {
                Kind::Text => Value::Text(text(index)?),
                Kind::Integer => Value::Integer(integer(index)?),
                Kind::Real => Value::Real(real(index)?),
            })
        })
        .collect()
}

pub(super) struct SqliteDatabase<'a> {
    pub(super) connection: &'a rusqlite::Connection,
    pub(super) location: &'a str,
}

pub(super) fn sqlite_error(location: &str, error: &rusqlite::Error) -> HistoryError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => HistoryError::Corrupt {
            location: location.to_string(),
            reason: error.to_string(),
        },
        _ => HistoryError::Store {
            location: location.to_string(),
            reason: error.to_string(),
        },
    }
}

pub(super) fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Text(Some(text)) => Sql::Text(text.clone()),
        Value::Integer(Some(integer)) => Sql::Integer(*integer),
        Value::Real(Some(real)) => Sql::Real(*real),
        Value::Text(None) | Value::Integer(None) | Value::Real(None) => Sql::Null,
    }
}

impl Database for SqliteDatabase<'_> {
    fn table_names_sql(&self) -> &'static str {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let error = |e: rusqlite::Error| sqlite_error(self.location, &e);
        let changed = self
            .connection
            .execute(
                sql,
                rusqlite::params_from_iter(params.iter().map(to_sqlite)),
            )
            .map_err(error)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value], kinds: &[Kind]) -> Result<Vec<Vec<Value>>> {
        let error = |e: rusqlite::Error| sqlite_error(self.location, &e);
        let mut statement = self.connection.prepare(sql).map_err(error)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
            .map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            out.push(
                decode_row(kinds, |i| row.get(i), |i| row.get(i), |i| row.get(i)).map_err(error)?,
            );
        }
        Ok(out)
    }
}

#[cfg(feature = "postgres")]
pub(super) struct PostgresDatabase<'a, 'b> {
    pub(super) transaction: &'a mut postgres::Transaction<'b>,
    pub(super) location: &'a str,
    pub(super) password: Option<&'a str>,
}

#[cfg(feature = "postgres")]
pub(super) fn postgres_error(
    location: &str,
    password: Option<&str>,
    error: &postgres::Error,
) -> HistoryError {
    HistoryError::Store {
        location: location.to_string(),
        reason: scrub(&error.to_string(), password),
    }
}

/// `?` placeholders to PostgreSQL's `$1, $2, ...` (the store's SQL has no `?` inside literals).
#[cfg(feature = "postgres")]
pub(super) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut index = 0;
    for character in sql.chars() {
        if character == '?' {
            index += 1;
            out.push_str(&format!("${index}"));
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(feature = "postgres")]
impl Database for PostgresDatabase<'_, '_> {
    fn table_names_sql(&self) -> &'static str {
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()"
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let boxed = postgres_params(params);
        let references: Vec<&(dyn postgres::types::ToSql + Sync)> =
            boxed.iter().map(|b| b.as_ref()).collect();
        self.transaction
            .execute(numbered_placeholders(sql).as_str(), &references)
            .map_err(|e| postgres_error(self.location, self.password, &e))
    }

    fn query(&mut self, sql: &str, params: &[Value], kinds: &[Kind]) -> Result<Vec<Vec<Value>>> {
        let boxed = postgres_params(params);
        let references: Vec<&(dyn postgres::types::ToSql + Sync)> =
            boxed.iter().map(|b| b.as_ref()).collect();
        let error = |e: postgres::Error| postgres_error(self.location, self.password, &e);
        let rows = self
            .transaction
            .query(numbered_placeholders(sql).as_str(), &references)
            .map_err(error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(
                decode_row(
                    kinds,
                    |i| row.try_get(i),
                    |i| row.try_get(i),
                    |i| row.try_get(i),
                )
                .map_err(error)?,
            );
        }
        Ok(out)
    }
}

#[cfg(feature = "postgres")]
pub(super) fn postgres_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|value| -> Box<dyn postgres::types::ToSql + Sync> {
            match value {
                Value::Text(text) => Box::new(text.clone()),
                Value::Integer(integer) => Box::new(*integer),
                Value::Real(real) => Box::new(*real),
            }
        })
        .collect()
}

pub(super) enum Backend {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres {
        client: Box<postgres::Client>,
        password: Option<String>,
    },
}
