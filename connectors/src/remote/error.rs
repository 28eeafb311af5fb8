//! [`RemoteError`]: a database error that names the source, keeps the
//! server's code and the SQL sent, and sorts the failure into a small
//! [`RemoteErrorKind`] that does not depend on the driver.

use std::fmt;

/// What kind of failure a remote error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The server cannot be reached, or the connection broke.
    Connection,
    /// Wrong user or password, or no permission.
    Authentication,
    /// The SQL was not understood.
    Syntax,
    /// A database, schema, table or column does not exist.
    NotFound,
    /// A timeout or cancellation.
    Timeout,
    /// A value could not be converted.
    Data,
    /// Anything else.
    Other,
}

/// An error from a remote database.
#[derive(Debug)]
pub struct RemoteError {
    /// The alias the source is attached as.
    pub source_name: String,
    /// The sort of failure.
    pub kind: RemoteErrorKind,
    /// The server's or driver's message.
    pub message: String,
    /// SQLSTATE (PostgreSQL) or error number (MySQL), when the server sent one.
    pub code: Option<String>,
    /// The SQL that was sent, when the error came from running it.
    pub sql: Option<String>,
    /// The driver's error.
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RemoteError {
    /// An error of `kind` in source `source_name`.
    pub fn new(source_name: &str, kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_string(),
            kind,
            message: message.into(),
            code: None,
            sql: None,
            cause: None,
        }
    }

    /// Records the SQL that was sent.
    pub fn with_sql(mut self, sql: impl Into<String>) -> Self {
        self.sql = Some(sql.into());
        self
    }

    /// Records the server's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Keeps the driver's error as the source.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source '{}': {}", self.source_name, self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        if let Some(sql) = &self.sql {
            write!(f, "; remote SQL: {}", abbreviated(sql))?;
        }
        Ok(())
    }
}

/// Most characters of remote SQL an error message shows.
pub const SHOWN_SQL: usize = 2_000;

/// `sql` as an error shows it: whole up to [`SHOWN_SQL`] characters, else
/// its start and end around a count of what is left out (a batched INSERT's
/// `(?, ?, ...)` lists ran to 14 KB). The `sql` field keeps it whole.
fn abbreviated(sql: &str) -> std::borrow::Cow<'_, str> {
    let count = sql.chars().count();
    if count <= SHOWN_SQL {
        return sql.into();
    }
    let head: String = sql.chars().take(SHOWN_SQL * 3 / 4).collect();
    let tail: String = sql.chars().skip(count - SHOWN_SQL / 4).collect();
    format!(
        "{head} ... ({} characters left out) ... {tail}",
        count - SHOWN_SQL
    )
    .into()
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<RemoteError> for datafusion::error::DataFusionError {
    fn from(e: RemoteError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_remote_sql_is_abbreviated_in_messages_only() {
        let sql = format!(
            "INSERT INTO t VALUES {}",
            vec!["(?, ?, ?, ?)"; 1200].join(", ")
        );
        let error = RemoteError::new("my", RemoteErrorKind::Other, "Data too long").with_sql(&sql);
        let text = error.to_string();
        assert!(text.len() < SHOWN_SQL + 200, "{} bytes", text.len());
        assert!(text.contains("INSERT INTO t VALUES (?, ?, ?, ?)"), "{text}");
        assert!(text.contains("characters left out"), "{text}");
        assert_eq!(error.sql.as_deref(), Some(sql.as_str()));
        let short = RemoteError::new("my", RemoteErrorKind::Other, "x").with_sql("SELECT 1");
        assert!(short.to_string().ends_with("remote SQL: SELECT 1"));
    }
}
