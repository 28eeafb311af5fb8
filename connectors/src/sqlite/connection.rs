//! Opening SQLite databases, the connection pool, and rows streamed into
//! Arrow from a blocking thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use deadpool_sqlite::{Config, Pool, Runtime};
use rusqlite::ffi::ErrorCode;

use super::types::{Decoder, SQLITE_TABLE};
use crate::remote::{BatchSender, RemoteError, RemoteErrorKind, batch_channel};

/// Where and how a database is opened.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite URI the pool opens (`file:...?mode=...`).
    pub uri: String,
    /// The path as the user wrote it (for messages), or `:memory:`.
    pub path: String,
    /// Opened with `mode=ro`.
    pub read_only: bool,
    /// Connections in the pool.
    pub pool_max_size: usize,
    /// Waiting and recycling.
    pub pool: PoolTimes,
}

/// How long to wait for a pooled connection and when to replace one.
#[derive(Debug, Clone, Copy)]
pub struct PoolTimes {
    /// `pool_timeout`: how long to wait for a free connection.
    pub acquire_timeout: std::time::Duration,
    /// `pool_idle_timeout`: unused longer than this, a connection is replaced.
    pub idle_timeout: Option<std::time::Duration>,
    /// `pool_max_lifetime`: older than this, a connection is replaced.
    pub max_lifetime: Option<std::time::Duration>,
}

impl Default for PoolTimes {
    fn default() -> Self {
        Self {
            acquire_timeout: std::time::Duration::from_secs(30),
            idle_timeout: None,
            max_lifetime: None,
        }
    }
}

use crate::remote::seconds_option as seconds;

/// Parses `sqlite:path`, `sqlite:///absolute/path`, `sqlite::memory:`, with
/// `?mode=ro|rw|rwc` (default `rw`: the file must exist; `rwc` creates it)
/// and `pool_max_size` (default 4); options may also come from ATTACH.
pub fn parse_url(
    url: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Settings> {
    // SQLite has no users: a URL with a password is a mistake whose
    // password would reach the file name, and every error that quotes it.
    if !crate::secrets::url_secrets(url).is_empty() || crate::secrets::misread_userinfo_text(url) {
        return Err(DataFusionError::Configuration(format!(
            "sqlite URL '{}' holds a user name or password; SQLite has none: write \
             sqlite:path/to/file.db",
            crate::redact_url(url)
        )));
    }
    let rest = url
        .split_once(':')
        .map(|(_, rest)| rest)
        .ok_or_else(|| DataFusionError::Configuration(format!("not a sqlite: URL: {url}")))?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() {
        return Err(DataFusionError::Configuration(format!(
            "sqlite URL '{url}' names no file; use sqlite:path/to/file.db or sqlite::memory:"
        )));
    }
    let mut mode = "rw".to_string();
    let mut pool_max_size = 4;
    let mut pool = PoolTimes::default();
    let params = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in params {
        match key.as_str() {
            "mode" => match value.as_str() {
                "ro" | "rw" | "rwc" => mode = value,
                other => {
                    return Err(DataFusionError::Configuration(format!(
                        "sqlite mode={other} is not supported; use ro, rw or rwc"
                    )));
                }
            },
            "pool_max_size" => pool_max_size = crate::remote::pool_size_option(&value)?,
            "pool_timeout" => pool.acquire_timeout = seconds(&key, &value)?,
            "pool_idle_timeout" => pool.idle_timeout = Some(seconds(&key, &value)?),
            "pool_max_lifetime" => pool.max_lifetime = Some(seconds(&key, &value)?),
            // A file needs no round trip to be checked.
            "pool_pre_ping" => {}
            // READ_ONLY: the file is opened read-only.
            "read_only" if value != "false" => mode = "ro".to_string(),
            "read_only" | "pushdown" | "scan_partitions" | "scan_partition_rows" => {}
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown SQLite URL parameter '{other}' (known: mode, pool_max_size, \
                     pool_timeout, pool_idle_timeout, pool_max_lifetime, pool_pre_ping, pushdown, scan_partitions, scan_partition_rows)"
                )));
            }
        }
    }
    if path == ":memory:" {
        // One database shared by the pool's connections, private to this
        // attachment.
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "moltres-memory-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        return Ok(Settings {
            uri: format!("file:{name}?mode=memory&cache=shared"),
            path: path.to_string(),
            read_only: false,
            pool_max_size,
            pool,
        });
    }
    let escaped: String = path
        .chars()
        .map(|c| match c {
            '?' => "%3f".to_string(),
            '#' => "%23".to_string(),
            '%' => "%25".to_string(),
            c => c.to_string(),
        })
        .collect();
    Ok(Settings {
        uri: format!("file:{escaped}?mode={mode}"),
        path: path.to_string(),
        read_only: mode == "ro",
        pool_max_size,
        pool,
    })
}

/// A pool of connections to the database `settings` names.
pub fn build_pool(source: &str, settings: &Settings) -> Result<Pool> {
    Config::new(&settings.uri)
        .builder(Runtime::Tokio1)
        .map_err(|e| RemoteError::new(source, RemoteErrorKind::Connection, e.to_string()).into())
        .and_then(|b| {
            let (idle, lifetime) = (settings.pool.idle_timeout, settings.pool.max_lifetime);
            b.max_size(settings.pool_max_size)
                .wait_timeout(Some(settings.pool.acquire_timeout))
                .pre_recycle(deadpool_sqlite::Hook::sync_fn(move |_, metrics| {
                    if idle.is_some_and(|idle| metrics.last_used() > idle) {
                        return Err(deadpool_sqlite::HookError::message(
                            "idle longer than pool_idle_timeout",
                        ));
                    }
                    if lifetime.is_some_and(|max| metrics.age() > max) {
                        return Err(deadpool_sqlite::HookError::message(
                            "older than pool_max_lifetime",
                        ));
                    }
                    Ok(())
                }))
                .build()
                .map_err(|e| {
                    RemoteError::new(source, RemoteErrorKind::Connection, e.to_string()).into()
                })
        })
}

/// A SQLite error as a [`RemoteError`] naming the source (and the SQL).
pub fn remote_error(source: &str, error: rusqlite::Error, sql: Option<&str>) -> DataFusionError {
    let (kind, code) = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => (
            match failure.code {
                ErrorCode::CannotOpen | ErrorCode::NotADatabase => RemoteErrorKind::Connection,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => RemoteErrorKind::Timeout,
                ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                    RemoteErrorKind::Authentication
                }
                _ => RemoteErrorKind::Other,
            },
            Some(format!("{:?}", failure.code)),
        ),
        rusqlite::Error::SqlInputError { .. } => (RemoteErrorKind::Syntax, None),
        _ => (RemoteErrorKind::Other, None),
    };
    let message = match &error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    };
    let kind = if message.starts_with("no such table") {
        RemoteErrorKind::NotFound
    } else if message.contains("syntax error") {
        RemoteErrorKind::Syntax
    } else {
        kind
    };
    let mut remote = RemoteError::new(source, kind, message);
    if let Some(code) = code {
        remote = remote.with_code(code);
    }
    if let Some(sql) = sql {
        remote = remote.with_sql(sql);
    }
    remote.into()
}

/// A pool failure (cannot open the file, pool exhausted) naming the source.
pub fn pool_error(source: &str, path: &str, error: deadpool_sqlite::PoolError) -> DataFusionError {
    match error {
        deadpool_sqlite::PoolError::Backend(e) => RemoteError::new(
            source,
            RemoteErrorKind::Connection,
            format!("cannot open '{path}': {e}"),
        )
        .into(),
        deadpool_sqlite::PoolError::Timeout(t) => {
            crate::remote::count_acquire_timeout(source);
            RemoteError::new(
                source,
                RemoteErrorKind::Timeout,
                format!("timed out waiting for a connection ({t:?}); see pool_timeout"),
            )
            .into()
        }
        other => RemoteError::new(source, RemoteErrorKind::Connection, other.to_string()).into(),
    }
}

/// Runs `f` with a pooled connection on a blocking thread.
pub async fn with_connection<T: Send + 'static>(
    pool: &Pool,
    source: &str,
    path: &str,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let connection = pool.get().await.map_err(|e| pool_error(source, path, e))?;
    interact(&connection, source, f).await
}

/// Runs `f` with `connection` on a blocking thread.
pub async fn interact<T: Send + 'static>(
    connection: &deadpool_sqlite::Object,
    source: &str,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    connection.interact(f).await.map_err(|e| {
        DataFusionError::External(Box::new(RemoteError::new(
            source,
            RemoteErrorKind::Other,
            format!("the SQLite worker failed: {e}"),
        )))
    })?
}

/// Whether `sql` starts with ATTACH, DETACH or PRAGMA, which SQLite calls
/// read-only although they change what the connection reads and writes
/// (`ATTACH 'new.db'` creates a file, `PRAGMA query_only = 0`).
fn changes_connection(sql: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::SQLiteDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&SQLiteDialect {}, sql).tokenize() else {
        return true;
    };
    match tokens
        .iter()
        .find(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
    {
        Some(Token::Word(word)) => {
            let first = word.value.to_ascii_uppercase();
            matches!(first.as_str(), "ATTACH" | "DETACH" | "PRAGMA" | "VACUUM")
        }
        _ => false,
    }
}

/// Runs `sql` and streams its rows as `schema` batches of `batch_size`
/// rows. Dropping the stream interrupts the statement. A `read_only`
/// source runs only statements SQLite calls read-only (so not a
/// `DELETE ... RETURNING` or `VACUUM INTO`), and no ATTACH, DETACH or PRAGMA.
pub fn query_stream(
    pool: Pool,
    source: Arc<str>,
    path: Arc<str>,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
    read_only: bool,
) -> SendableRecordBatchStream {
    let (tx, stream) = batch_channel(Arc::clone(&schema));
    tokio::spawn(async move {
        let connection = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tx.send(Err(pool_error(&source, &path, e))).await;
                return;
            }
        };
        // Interrupt a statement still computing when the reader goes away.
        let interrupt = match connection.interact(|c| c.get_interrupt_handle()).await {
            Ok(handle) => handle,
            Err(e) => {
                tx.send(Err(DataFusionError::Execution(e.to_string())))
                    .await;
                return;
            }
        };
        let watcher_tx = tx.clone();
        let watcher = tokio::spawn(async move {
            watcher_tx.closed().await;
            interrupt.interrupt();
        });
        let task_tx = tx.clone();
        let result = connection
            .interact(move |c| {
                run_query(c, &source, &sql, &schema, batch_size, read_only, &task_tx)
            })
            .await;
        watcher.abort();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tx.send(Err(e)).await;
            }
            Err(e) => {
                tx.send(Err(DataFusionError::Execution(e.to_string())))
                    .await;
            }
        }
    });
    stream
}

fn run_query(
    connection: &rusqlite::Connection,
    source: &str,
    sql: &str,
    schema: &SchemaRef,
    batch_size: usize,
    read_only: bool,
    tx: &BatchSender,
) -> Result<()> {
    let mut statement = connection
        .prepare(sql)
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    if read_only && (!statement.readonly() || changes_connection(sql)) {
        return Err(RemoteError::new(
            source,
            RemoteErrorKind::Authentication,
            "the source is readonly (mode=ro or READ_ONLY) and this statement would change a \
             database or the connection (SQLite does not call it read-only, or it is ATTACH, \
             DETACH, PRAGMA or VACUUM)",
        )
        .with_sql(sql)
        .into());
    }
    let mut decoders = crate::remote::decoders(schema, source, "SQLite", Decoder::new)?;
    let mut rows = statement
        .query([])
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    let mut clock = crate::remote::BatchClock::new(batch_size);
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if tx.is_closed() => {
                // Interrupted because the reader went away.
                drop(e);
                return Ok(());
            }
            Err(e) => return Err(remote_error(source, e, Some(sql))),
        };
        for (i, decoder) in decoders.iter_mut().enumerate() {
            let value = row
                .get_ref(i)
                .map_err(|e| remote_error(source, e, Some(sql)))?;
            if let Err(reason) = decoder.push(value) {
                let field = schema.field(i);
                let place = bad_row(connection, field, decoder.accepted())
                    .map(|(table, rowid)| format!(" (table {table}, rowid {rowid})"))
                    .unwrap_or_default();
                return Err(RemoteError::new(
                    source,
                    RemoteErrorKind::Data,
                    format!("column '{}'{place}: {reason}", field.name()),
                )
                .with_sql(sql)
                .into());
            }
        }
        if clock.row() {
            let batch = crate::remote::finish_batch(schema, &mut decoders, clock.take())?;
            if !tx.blocking_send(Ok(batch)) {
                return Ok(());
            }
        }
    }
    let pending = clock.take();
    if pending > 0 {
        let batch = crate::remote::finish_batch(schema, &mut decoders, pending)?;
        tx.blocking_send(Ok(batch));
    }
    Ok(())
}

/// The table and `rowid` of the first row whose value in `field` has a
/// storage class the decoder does not read, when `field` is a table column.
fn bad_row(
    connection: &rusqlite::Connection,
    field: &datafusion::arrow::datatypes::Field,
    accepted: &[&str],
) -> Option<(String, i64)> {
    let table = field.metadata().get(SQLITE_TABLE)?;
    let (schema, name) = table.split_once('.')?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let classes: Vec<String> = accepted
        .iter()
        .chain(["null"].iter())
        .map(|c| format!("'{c}'"))
        .collect();
    // Identifiers are quoted and the classes are constants: no user text is
    // interpreted as SQL.
    let sql = format!(
        "SELECT rowid FROM {}.{} WHERE typeof({}) NOT IN ({}) LIMIT 1",
        quote(schema),
        quote(name),
        quote(field.name()),
        classes.join(", ")
    );
    let rowid = connection
        .query_row(&sql, [], |row| row.get::<_, i64>(0))
        .ok()?;
    Some((table.clone(), rowid))
}

/// A batch for the writer thread, or the end of the data.
pub enum Feed {
    Batch(RecordBatch),
    End,
}

/// Inserts what `feed` brings into `schema.table` (columns `columns`) in one
/// savepoint on this (blocking) thread (a transaction of its own outside
/// one): released at [`Feed::End`], rolled back if the feed stops before it
/// or a row fails. `create`, when given, is run first in the same savepoint
/// (the CREATE TABLE of a `CREATE TABLE ... AS`).
pub fn insert_rows(
    connection: &mut rusqlite::Connection,
    source: &str,
    (schema, table): (&str, &str),
    columns: &[String],
    mut feed: tokio::sync::mpsc::Receiver<Feed>,
    mode: crate::remote::WriteMode<'_>,
    create: Option<&str>,
) -> Result<u64> {
    let upsert_keys = mode.upsert_keys();
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let on_conflict = match upsert_keys {
        Some(keys) => {
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !keys.contains(c))
                .map(|c| format!("{0} = excluded.{0}", quote(c)))
                .collect();
            format!(
                " ON CONFLICT ({}) {}",
                keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", "),
                if updates.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                }
            )
        }
        None => String::new(),
    };
    let sql = format!(
        "INSERT INTO {}.{} ({}) VALUES ({}){on_conflict}",
        quote(schema),
        quote(table),
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // A savepoint: a transaction of its own, or a part of the caller's.
    let transaction = connection
        .savepoint()
        .map_err(|e| remote_error(source, e, Some("SAVEPOINT")))?;
    // CREATE TABLE ... AS: the table is created inside the same savepoint,
    // so it exists only with every row.
    if let Some(create) = create {
        transaction
            .execute(create, [])
            .map_err(|e| remote_error(source, e, Some(create)))?;
    }
    if mode.overwrites() {
        let delete = format!("DELETE FROM {}.{}", quote(schema), quote(table));
        transaction
            .execute(&delete, [])
            .map_err(|e| remote_error(source, e, Some(&delete)))?;
    }
    let mut written = 0u64;
    {
        let mut statement = transaction
            .prepare(&sql)
            .map_err(|e| remote_error(source, e, Some(&sql)))?;
        loop {
            match feed.blocking_recv() {
                Some(Feed::Batch(batch)) => {
                    for row in 0..batch.num_rows() {
                        let values = batch
                            .columns()
                            .iter()
                            .enumerate()
                            .map(|(i, column)| {
                                super::types::to_sqlite(column, row).map_err(|reason| {
                                    DataFusionError::from(RemoteError::new(
                                        source,
                                        RemoteErrorKind::Data,
                                        format!("column '{}': {reason}", columns[i]),
                                    ))
                                })
                            })
                            .collect::<Result<Vec<_>>>()?;
                        statement
                            .execute(rusqlite::params_from_iter(values))
                            .map_err(|e| remote_error(source, e, Some(&sql)))?;
                        written += 1;
                    }
                }
                Some(Feed::End) => break,
                // The reading side failed: roll back.
                None => return Ok(written),
            }
        }
    }
    transaction
        .commit()
        .map_err(|e| remote_error(source, e, Some("RELEASE")))?;
    Ok(written)
}
