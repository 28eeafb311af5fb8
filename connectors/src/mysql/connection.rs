//! MySQL/MariaDB URLs, the pool (mysql_async's), sessions pinned to UTC and
//! standard string literals, and rows streamed into Arrow over the binary
//! protocol.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use super::types::Decoder;
use crate::remote::{BatchSender, RemoteError, RemoteErrorKind, batch_channel};

/// What every session runs first: times in UTC (TIMESTAMP values and
/// literals), standard string literals (a backslash is a character), UTF-8.
const SESSION_SETUP: [&str; 3] = [
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')",
];

/// Settings outside mysql_async's options.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database two-part names resolve to.
    pub database: String,
    /// How long to wait for a connection (connecting included).
    pub connect_timeout: Duration,
    /// How to read columns of types without a mapping (`error`, `text`, `skip`).
    pub unsupported_types: String,
    /// How long to wait for a pooled connection (`pool_timeout`).
    pub acquire_timeout: Duration,
    /// Check a pooled connection with a round trip before use.
    pub pre_ping: bool,
    /// Connections the pool may hold.
    pub pool_max_size: usize,
    /// The pool's connection options: a query is killed on a connection of
    /// its own, outside the pool (which may be full, or stalled).
    pub opts: Option<mysql_async::Opts>,
}

const KNOWN: &str = "sslmode, connect_timeout, prefer_socket, pool_max_size, pool_timeout, \
                     pool_pre_ping, pool_idle_timeout, pool_max_lifetime, unsupported_types, pushdown, scan_partitions, scan_partition_rows";

/// Parses `mysql://user:password@host:port/database?params` (or
/// `mariadb://`); parameters may also come as ATTACH options.
pub fn parse_url(
    url: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<(mysql_async::Opts, Settings)> {
    let bad = |message: String| DataFusionError::Configuration(message);
    if crate::secrets::misread_userinfo_text(url) {
        return Err(bad(format!(
            "invalid MySQL URL '{}': {}",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        bad(format!(
            "invalid MySQL URL '{}': {e} ({})",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        ))
    })?;
    if crate::secrets::misread_userinfo(&parsed) {
        return Err(bad(format!(
            "invalid MySQL URL '{}': {}",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        )));
    }
    let database = parsed.path().trim_start_matches('/').to_string();
    if database.is_empty() {
        return Err(bad(format!(
            "MySQL URL '{}' names no database: use mysql://user@host:3306/database",
            crate::redact_url(url)
        )));
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = decode(parsed.username());
    let mut builder = OptsBuilder::default()
        .ip_or_hostname(parsed.host_str().unwrap_or("127.0.0.1"))
        .tcp_port(parsed.port().unwrap_or(3306))
        .user(Some(if user.is_empty() {
            "root".to_string()
        } else {
            user
        }))
        .pass(parsed.password().map(decode))
        .db_name(Some(database.clone()))
        // mysql_async moves a connection to 127.0.0.1 onto the server's
        // Unix socket by default, past a proxy or tunnel the URL names:
        // only when asked (`prefer_socket=true`).
        .prefer_socket(false);
    let mut read_only = false;
    let mut settings = Settings {
        database,
        connect_timeout: Duration::from_secs(10),
        unsupported_types: "error".to_string(),
        acquire_timeout: Duration::from_secs(30),
        pre_ping: false,
        pool_max_size: 10,
        opts: None,
    };
    let seconds = crate::remote::seconds_option;
    let mut pool = PoolOpts::default().with_constraints(PoolConstraints::new(0, 10).unwrap());
    let params = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => {
                builder = builder.ssl_opts(match value.as_str() {
                    "disable" => None,
                    // Encrypted, certificate not checked (as libpq's `require`).
                    "require" => Some(
                        SslOpts::default()
                            .with_danger_accept_invalid_certs(true)
                            .with_danger_skip_domain_validation(true),
                    ),
                    "verify-full" => Some(SslOpts::default()),
                    other => {
                        return Err(bad(format!(
                            "sslmode={other} is not supported; use disable, require or verify-full"
                        )));
                    }
                })
            }
            "connect_timeout" => settings.connect_timeout = seconds(&key, &value)?,
            "prefer_socket" => {
                builder = builder.prefer_socket(match value.as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    other => {
                        return Err(bad(format!(
                            "prefer_socket must be true or false, got '{other}'"
                        )));
                    }
                })
            }
            "pool_max_size" => {
                let max = crate::remote::pool_size_option(&value)?;
                pool = pool.with_constraints(PoolConstraints::new(0, max).unwrap());
                settings.pool_max_size = max;
            }
            "pool_timeout" => settings.acquire_timeout = seconds(&key, &value)?,
            "pool_pre_ping" => {
                settings.pre_ping = match value.as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    other => {
                        return Err(bad(format!(
                            "pool_pre_ping must be true or false, got '{other}'"
                        )));
                    }
                }
            }
            "pool_idle_timeout" => pool = pool.with_inactive_connection_ttl(seconds(&key, &value)?),
            "pool_max_lifetime" => pool = pool.with_abs_conn_ttl(Some(seconds(&key, &value)?)),
            "unsupported_types" => match value.as_str() {
                "error" | "text" | "skip" => settings.unsupported_types = value,
                other => {
                    return Err(bad(format!(
                        "unsupported_types={other}: use error, text or skip"
                    )));
                }
            },
            // READ_ONLY: every session's transactions are read-only, set
            // again after each reset (so a passthrough `SET SESSION
            // TRANSACTION READ WRITE` lasts one statement at most).
            "read_only" if value != "false" => {
                read_only = true;
            }
            "read_only" | "pushdown" | "scan_partitions" | "scan_partition_rows" => {}
            other => {
                return Err(bad(format!(
                    "unknown MySQL URL parameter '{other}' (known: {KNOWN})"
                )));
            }
        }
    }
    // `setup`, not `init`: it runs again after every reset of a pooled
    // connection (COM_RESET_CONNECTION clears the session's variables, so
    // `sql_mode` and `time_zone` would be the server's again).
    let mut setup: Vec<&str> = SESSION_SETUP.to_vec();
    if read_only {
        setup.push("SET SESSION TRANSACTION READ ONLY");
    }
    builder = builder
        .pool_opts(pool.with_reset_connection(true))
        .setup(setup);
    Ok((builder.into(), settings))
}

/// A driver error as a [`RemoteError`] naming the source (and the SQL).
pub fn remote_error(source: &str, error: mysql_async::Error, sql: Option<&str>) -> DataFusionError {
    let remote = match &error {
        mysql_async::Error::Server(server) => {
            let kind = match server.code {
                1045 | 1044 | 1142 | 1143 => RemoteErrorKind::Authentication,
                1049 | 1146 | 1054 => RemoteErrorKind::NotFound,
                1064 | 1149 => RemoteErrorKind::Syntax,
                1317 | 1969 | 3024 => RemoteErrorKind::Timeout,
                _ => RemoteErrorKind::Other,
            };
            RemoteError::new(source, kind, server.message.clone())
                .with_code(format!("{} ({})", server.code, server.state))
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            RemoteError::new(source, RemoteErrorKind::Connection, error.to_string())
        }
        _ => RemoteError::new(source, RemoteErrorKind::Other, error.to_string()),
    };
    match sql {
        Some(sql) => remote.with_sql(sql).into(),
        None => remote.into(),
    }
}

/// A pooled connection within `pool_timeout` (a new one within
/// `connect_timeout`), checked with a ping first when `pool_pre_ping` is on.
pub async fn connect(pool: &Pool, source: &str, settings: &Settings) -> Result<Conn> {
    for _ in 0..2 {
        // mysql_async's pool both lends and opens connections, with no
        // timeout of its own for opening one: when nothing is idle and there
        // is room, this request opens one, and `connect_timeout` bounds it.
        let metrics = pool.metrics();
        let opens = {
            use std::sync::atomic::Ordering::Relaxed;
            metrics.connections_in_pool.load(Relaxed) == 0
                && metrics.connection_count.load(Relaxed) < settings.pool_max_size
        };
        let (wait, setting, what) = if opens {
            (
                settings.connect_timeout,
                "connect_timeout",
                "a new connection",
            )
        } else {
            (
                settings.acquire_timeout,
                "pool_timeout",
                "a pooled connection",
            )
        };
        let mut conn = match tokio::time::timeout(wait, pool.get_conn()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(remote_error(source, e, None)),
            Err(_) => {
                if !opens {
                    crate::remote::count_acquire_timeout(source);
                }
                return Err(RemoteError::new(
                    source,
                    if opens {
                        RemoteErrorKind::Connection
                    } else {
                        RemoteErrorKind::Timeout
                    },
                    format!(
                        "no answer from the server: {what} was not ready within {} ({setting})",
                        crate::remote::format_seconds(wait)
                    ),
                )
                .into());
            }
        };
        if !settings.pre_ping || conn.ping().await.is_ok() {
            return Ok(conn);
        }
        // A dead pooled connection: drop it and take another.
        let _ = conn.disconnect().await;
    }
    Err(RemoteError::new(
        source,
        RemoteErrorKind::Connection,
        "pooled connections failed their ping (pool_pre_ping)",
    )
    .into())
}

/// Runs `sql` (a prepared statement: the binary protocol) and streams its
/// rows as `schema` batches of `batch_size` rows. When the reader goes away
/// the connection is killed (`KILL CONNECTION`) so the server stops, and it
/// leaves the pool.
pub fn query_stream(
    pool: Pool,
    source: Arc<str>,
    settings: Settings,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
) -> SendableRecordBatchStream {
    let (tx, stream) = batch_channel(Arc::clone(&schema));
    tokio::spawn(async move {
        if let Err(e) = run_query(&pool, &source, &settings, &sql, &schema, batch_size, &tx).await {
            tx.send(Err(e)).await;
        }
    });
    stream
}

/// Stops query `id` on the server, from a connection of its own (the pool
/// may be full, or its connections stalled), within `connect_timeout`.
async fn kill(pool: &Pool, source: &str, settings: &Settings, id: u32) {
    // The connection, not only its query: a server thread blocked writing
    // to a stalled socket finishes only when the socket is closed.
    let statement = format!("KILL CONNECTION {id}");
    let killed = async {
        match &settings.opts {
            Some(opts) => {
                if let Ok(mut other) = Conn::new(opts.clone()).await {
                    let _ = other.query_drop(&statement).await;
                    let _ = other.disconnect().await;
                }
            }
            None => {
                if let Ok(mut other) = connect(pool, source, settings).await {
                    let _ = other.query_drop(&statement).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(settings.connect_timeout, killed).await;
}

/// Ends `conn`, whose result was not read to its end, so that the pool
/// discards it: a connection handed back with rows still coming is
/// drained by the pool first, for ever if the network stalled. The
/// connection is marked closed before anything is sent, so even a
/// disconnect that cannot finish leaves it to be discarded.
async fn abandon(conn: Conn) {
    let _ = tokio::time::timeout(ABANDON_WAIT, conn.disconnect()).await;
}

/// The longest an abandoned connection's goodbye is waited for.
const ABANDON_WAIT: Duration = Duration::from_secs(2);

async fn run_query(
    pool: &Pool,
    source: &str,
    settings: &Settings,
    sql: &str,
    schema: &SchemaRef,
    batch_size: usize,
    tx: &BatchSender,
) -> Result<()> {
    let mut conn = connect(pool, source, settings).await?;
    let id = conn.id();
    let outcome = stream_rows(&mut conn, source, sql, schema, batch_size, tx).await;
    if !matches!(outcome, Ok(true)) {
        // Not read to its end: the server stops the query, and the
        // connection leaves the pool.
        kill(pool, source, settings, id).await;
        abandon(conn).await;
    }
    outcome.map(|_| ())
}

/// Streams the rows of `sql` on `conn` to `tx`; `Ok(true)` when every row
/// was read, `Ok(false)` when the reader went away first.
async fn stream_rows(
    conn: &mut Conn,
    source: &str,
    sql: &str,
    schema: &SchemaRef,
    batch_size: usize,
    tx: &BatchSender,
) -> Result<bool> {
    let mut decoders = crate::remote::decoders(schema, source, "MySQL", Decoder::new)?;
    let mut result = tokio::select! {
        result = conn.exec_iter(sql, ()) => result.map_err(|e| remote_error(source, e, Some(sql)))?,
        _ = tx.closed() => return Ok(false),
    };
    let mut clock = crate::remote::BatchClock::new(batch_size);
    loop {
        let row = tokio::select! {
            row = result.next() => row.map_err(|e| remote_error(source, e, Some(sql)))?,
            _ = tx.closed() => return Ok(false),
        };
        let Some(row) = row else { break };
        for (i, decoder) in decoders.iter_mut().enumerate() {
            let value = row.as_ref(i).unwrap_or(&mysql_async::Value::NULL);
            decoder.push(value).map_err(|reason| {
                DataFusionError::from(
                    RemoteError::new(
                        source,
                        RemoteErrorKind::Data,
                        format!("column '{}': {reason}", schema.field(i).name()),
                    )
                    .with_sql(sql),
                )
            })?;
        }
        if clock.row() {
            let batch = crate::remote::finish_batch(schema, &mut decoders, clock.take())?;
            if !tx.send(Ok(batch)).await {
                return Ok(false);
            }
        }
    }
    let pending = clock.take();
    if pending > 0 {
        let batch = crate::remote::finish_batch(schema, &mut decoders, pending)?;
        tx.send(Ok(batch)).await;
    }
    Ok(true)
}

/// Appends `data` to `` `database`.`table` `` with multi-row INSERTs of bound
/// values inside one transaction: all rows or none.
pub async fn insert(
    pool: &Pool,
    source: &str,
    settings: &Settings,
    (database, table): (&str, &str),
    columns: &SchemaRef,
    data: SendableRecordBatchStream,
    mode: crate::remote::WriteMode<'_>,
) -> Result<u64> {
    let mut conn = connect(pool, source, settings).await?;
    let mut transaction = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(|e| remote_error(source, e, Some("START TRANSACTION")))?;
    let written = insert_rows(
        &mut transaction,
        source,
        (database, table),
        columns,
        data,
        mode,
    )
    .await?;
    transaction
        .commit()
        .await
        .map_err(|e| remote_error(source, e, Some("COMMIT")))?;
    Ok(written)
}

/// The start of the names of the tables `CREATE TABLE ... AS` fills before
/// renaming them to `table`: a fixed prefix and a hash of `table`, so that
/// leftovers of attempts at the same table (a process killed while
/// filling) are found and dropped by the next one. At most 30 characters:
/// with the attempt's own suffix, well under MySQL's 64.
pub fn filling_prefix(table: &str) -> String {
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("moltres_ctas_{hash:016x}_")
}

/// The comment a filling table carries until it is renamed: leftovers are
/// dropped only when they carry it (and are named as fillings are), never
/// a user's table that merely looks like one.
const FILLING_COMMENT: &str = "moltres: CREATE TABLE AS in progress";

/// Whether `name` is a filling table's name for `prefix`: the prefix, then
/// eight lower-case hex digits (compared case-sensitively: MySQL's LIKE is
/// not).
fn is_filling_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|attempt| {
        attempt.len() == 8
            && attempt
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Drops the filling table of a `CREATE TABLE ... AS` whose future was
/// dropped (a query timeout, Ctrl-C) before it finished, on a connection
/// of its own, counted in [`crate::remote::cleanups`] while it runs (the
/// shell waits for them before it exits).
struct DropFilling {
    opts: Option<mysql_async::Opts>,
    drop: String,
}

impl Drop for DropFilling {
    fn drop(&mut self) {
        let Some(opts) = self.opts.take() else {
            return;
        };
        let drop = std::mem::take(&mut self.drop);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cleanup = crate::remote::Cleanup::start();
            runtime.spawn(async move {
                let _cleanup = cleanup;
                let work = async {
                    // A fresh connection: the abandoned one may still hold
                    // the filling table's lock until the server sees it go.
                    if let Ok(mut conn) = Conn::new(opts).await {
                        let _ = conn.query_drop("SET SESSION lock_wait_timeout = 10").await;
                        let _ = conn.query_drop(&drop).await;
                        // A CREATE still running on the abandoned
                        // connection may land after the first DROP.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = conn.query_drop(&drop).await;
                        let _ = conn.disconnect().await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(15), work).await;
            });
        }
    }
}

/// Runs one statement on `conn`, its SQL in the error.
async fn run_on(conn: &mut Conn, source: &str, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| remote_error(source, e, Some(sql)))
}

/// Creates `` `database`.`table` `` with `columns` and fills it with `data`:
/// MySQL commits DDL, so the rows go into a table under a temporary name
/// ([`filling_prefix`], marked by a comment) in one transaction, and only
/// a full table is renamed to `table` (`RENAME TABLE` is atomic).
/// Leftovers of earlier attempts at the same table (named and marked as
/// fillings) are dropped first.
pub async fn create_and_insert(
    pool: &Pool,
    source: &str,
    settings: &Settings,
    (database, table): (&str, &str),
    columns: &[String],
    schema: &SchemaRef,
    data: SendableRecordBatchStream,
) -> Result<u64> {
    let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
    let prefix = filling_prefix(table);
    let mut conn = connect(pool, source, settings).await?;
    const LEFTOVERS: &str = "SELECT CAST(table_name AS CHAR), CAST(table_comment AS CHAR) \
                             FROM information_schema.tables \
                             WHERE table_schema = ? AND table_name LIKE ?";
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let leftovers: Vec<(String, Option<String>)> = conn
        .exec(LEFTOVERS, (database, pattern))
        .await
        .map_err(|e| remote_error(source, e, Some(LEFTOVERS)))?;
    // Name and comment compared here, exactly: MySQL's collations ignore
    // case and trailing spaces.
    let leftovers = leftovers.into_iter().filter_map(|(name, comment)| {
        (is_filling_name(&name, &prefix) && comment.as_deref() == Some(FILLING_COMMENT))
            .then_some(name)
    });
    for leftover in leftovers {
        let drop = format!(
            "DROP TABLE IF EXISTS {}.{}",
            quote(database),
            quote(&leftover)
        );
        run_on(&mut conn, source, &drop).await?;
    }
    let attempt = {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.finish() as u32
    };
    let filling = format!("{prefix}{attempt:08x}");
    let create = format!(
        "CREATE TABLE {}.{} ({}) COMMENT = '{FILLING_COMMENT}'",
        quote(database),
        quote(&filling),
        columns.join(", ")
    );
    // Armed before the CREATE is sent: a timeout while it runs must drop
    // the table too (an outsider's 10 ms timeouts left it).
    let drop_sql = format!(
        "DROP TABLE IF EXISTS {}.{}",
        quote(database),
        quote(&filling)
    );
    let mut guard = DropFilling {
        opts: settings.opts.clone(),
        drop: drop_sql.clone(),
    };
    if let Err(e) = conn.query_drop(&create).await {
        guard.opts = None;
        return Err(remote_error(source, e, Some(&create)));
    }
    let filled = async {
        // The new table's columns as Moltres reads them: the rows are
        // converted to those types (nanoseconds to DATETIME(6)'s micros).
        let created = super::schema::table_schema(
            &mut conn,
            source,
            database,
            &filling,
            &settings.unsupported_types,
        )
        .await?
        .unwrap_or_else(|| Arc::clone(schema));
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| remote_error(source, e, Some("START TRANSACTION")))?;
        let written = insert_rows(
            &mut transaction,
            source,
            (database, &filling),
            &created,
            data,
            crate::remote::WriteMode::Append,
        )
        .await;
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                // Rolled back now, on this connection: its open transaction
                // holds the table's metadata lock, which a DROP from any
                // other connection would wait for (a day, by default).
                let _ = transaction.rollback().await;
                return Err(e);
            }
        };
        transaction
            .commit()
            .await
            .map_err(|e| remote_error(source, e, Some("COMMIT")))?;
        let unmark = format!(
            "ALTER TABLE {}.{} COMMENT = ''",
            quote(database),
            quote(&filling)
        );
        run_on(&mut conn, source, &unmark).await?;
        let rename = format!(
            "RENAME TABLE {0}.{1} TO {0}.{2}",
            quote(database),
            quote(&filling),
            quote(table)
        );
        run_on(&mut conn, source, &rename).await?;
        Ok::<_, DataFusionError>(written)
    }
    .await;
    if filled.is_err() {
        // Dropped now, so that the error is the end of it: on the same
        // connection when it still works, else on a new one, bounded.
        let here = tokio::time::timeout(Duration::from_secs(15), conn.query_drop(&drop_sql)).await;
        if !matches!(here, Ok(Ok(()))) {
            drop(conn);
            let elsewhere = async {
                let mut other = connect(pool, source, settings).await?;
                let _ = other.query_drop("SET SESSION lock_wait_timeout = 10").await;
                other
                    .query_drop(&drop_sql)
                    .await
                    .map_err(|e| remote_error(source, e, Some(&drop_sql)))
            };
            let _ = tokio::time::timeout(Duration::from_secs(15), elsewhere).await;
        }
    }
    guard.opts = None;
    filled
}

/// The work of [`insert`] on `conn`, which is inside a transaction: the
/// caller commits or rolls back.
pub async fn insert_rows<Q: Queryable>(
    transaction: &mut Q,
    source: &str,
    (database, table): (&str, &str),
    columns: &SchemaRef,
    data: SendableRecordBatchStream,
    mode: crate::remote::WriteMode<'_>,
) -> Result<u64> {
    use futures::StreamExt;
    // The converters read each column as the table's type.
    let mut data = crate::remote::conform(
        data,
        Arc::clone(columns),
        format!("writing {source}.{database}.{table}"),
    );
    let upsert_keys = mode.upsert_keys();
    let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
    // MySQL replaces on any unique key; the keys name what is not updated.
    let on_duplicate = match upsert_keys {
        Some(keys) => {
            let updates: Vec<String> = columns
                .fields()
                .iter()
                .filter(|f| !keys.contains(f.name()))
                .map(|f| format!("{0} = VALUES({0})", quote(f.name())))
                .collect();
            let updates = if updates.is_empty() {
                let key = quote(&keys[0]);
                vec![format!("{key} = {key}")]
            } else {
                updates
            };
            format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
        }
        None => String::new(),
    };
    let names = columns
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let placeholders = format!("({})", vec!["?"; columns.fields().len()].join(", "));
    // MySQL binds at most 65,535 values per statement.
    let rows_per_statement = (65_535 / columns.fields().len().max(1)).clamp(1, 1000);
    if mode.overwrites() {
        let delete = format!("DELETE FROM {}.{}", quote(database), quote(table));
        transaction
            .query_drop(&delete)
            .await
            .map_err(|e| remote_error(source, e, Some(&delete)))?;
    }
    let mut written = 0u64;
    while let Some(batch) = data.next().await {
        let batch = batch?;
        let mut start = 0;
        while start < batch.num_rows() {
            let end = (start + rows_per_statement).min(batch.num_rows());
            let mut values = Vec::with_capacity((end - start) * batch.num_columns());
            for row in start..end {
                for (i, column) in batch.columns().iter().enumerate() {
                    values.push(super::types::to_mysql(column, row).map_err(|reason| {
                        DataFusionError::from(RemoteError::new(
                            source,
                            RemoteErrorKind::Data,
                            format!("column '{}': {reason}", columns.field(i).name()),
                        ))
                    })?);
                }
            }
            let sql = format!(
                "INSERT INTO {}.{} ({names}) VALUES {}{on_duplicate}",
                quote(database),
                quote(table),
                vec![placeholders.as_str(); end - start].join(", ")
            );
            transaction
                .exec_drop(&sql, mysql_async::Params::Positional(values))
                .await
                .map_err(|e| remote_error(source, e, Some(&sql)))?;
            written += (end - start) as u64;
            start = end;
        }
    }
    Ok(written)
}
