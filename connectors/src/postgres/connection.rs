//! Connections to PostgreSQL: the pool (deadpool-postgres), URL settings, and
//! running SQL as a stream of Arrow batches that is cancelled on the server
//! when the stream is dropped.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::StreamExt;
use tokio_postgres::NoTls;
use tokio_postgres::types::{FromSql, ToSql, Type};

use super::PostgresWriter;
use super::types::{CAST_TO_TEXT, ColumnDecoder, PG_TYPE, can_encode, encode_copy_field};
use crate::remote::{RemoteError, RemoteErrorKind, ScanGroup, SqlWriter, pool_has_spare};

/// How the connection is encrypted (`sslmode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without verifying its certificate.
    Prefer,
    /// TLS or fail, without verifying the certificate (libpq's `require`).
    Require,
    /// TLS, certificate chain and host name verified against `sslrootcert`
    /// (a PEM file) or the system's roots.
    VerifyFull {
        /// The `sslrootcert` file.
        root_cert: Option<String>,
    },
}

/// Connection settings read from the URL (`?key=value`) and attach options.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `sslmode` (default `prefer`, as libpq).
    pub tls: TlsMode,
    /// `pool_max_size`: connections at most (default 8).
    pub max_size: usize,
    /// `pool_timeout`: seconds to wait for a free connection (default 30).
    pub acquire_timeout: Duration,
    /// `connect_timeout`: seconds to open a connection (default 10).
    pub connect_timeout: Duration,
    /// `pool_pre_ping`: check a pooled connection with a round trip before
    /// handing it out (default true), so a connection the server dropped is
    /// replaced instead of failing the next query.
    pub pre_ping: bool,
    /// `pool_idle_timeout`: seconds a connection may sit unused in the pool;
    /// an older one is closed when next taken and a new one opened.
    pub idle_timeout: Option<Duration>,
    /// `pool_max_lifetime`: seconds after which a connection is replaced.
    pub max_lifetime: Option<Duration>,
    /// Attached `READ_ONLY`: sessions start with
    /// `default_transaction_read_only`, and a pooled connection is handed
    /// out only after setting it again (a passthrough `set_config` cannot
    /// outlive its statement).
    pub read_only: bool,
}

/// URL parameters Moltres reads itself; the rest go to the driver.
const MOLTRES_PARAMS: &[&str] = &[
    "pool_max_size",
    "pool_timeout",
    "connect_timeout",
    "statement_timeout",
    "sslrootcert",
    "pool_pre_ping",
    "pool_idle_timeout",
    "pool_max_lifetime",
];

use crate::remote::seconds_option as seconds;

/// Splits a `postgres://` URL into the driver's config and pool settings.
pub fn parse_url(
    url: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<(tokio_postgres::Config, PoolSettings)> {
    if crate::secrets::misread_userinfo_text(url) {
        return Err(DataFusionError::Configuration(format!(
            "invalid PostgreSQL URL '{}': {}",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        DataFusionError::Configuration(format!(
            "invalid PostgreSQL URL '{}': {e} ({})",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        ))
    })?;
    if crate::secrets::misread_userinfo(&parsed) {
        return Err(DataFusionError::Configuration(format!(
            "invalid PostgreSQL URL '{}': {}",
            crate::redact_url(url),
            crate::secrets::USERINFO_HINT
        )));
    }
    let mut config = tokio_postgres::Config::new();
    config.host(
        parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost"),
    );
    config.port(parsed.port().unwrap_or(5432));
    let user = url_decode(parsed.username());
    config.user(if user.is_empty() { "postgres" } else { &user });
    if let Some(password) = parsed.password() {
        config.password(url_decode(password));
    }
    let database = url_decode(parsed.path().trim_start_matches('/'));
    if !database.is_empty() {
        config.dbname(&database);
    }
    config.application_name("moltres");
    let mut statement_timeout = None;
    let mut settings = PoolSettings {
        tls: TlsMode::Prefer,
        max_size: 8,
        acquire_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        pre_ping: true,
        idle_timeout: None,
        max_lifetime: None,
        read_only: false,
    };
    let mut root_cert = None;
    let pairs = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in pairs {
        match key.as_str() {
            "pool_max_size" => settings.max_size = crate::remote::pool_size_option(&value)?,
            "pool_timeout" => settings.acquire_timeout = seconds(&key, &value)?,
            "pool_idle_timeout" => settings.idle_timeout = Some(seconds(&key, &value)?),
            "pool_max_lifetime" => settings.max_lifetime = Some(seconds(&key, &value)?),
            "pool_pre_ping" => {
                settings.pre_ping = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "pool_pre_ping must be true or false, got '{value}'"
                        )));
                    }
                }
            }
            "connect_timeout" => settings.connect_timeout = seconds(&key, &value)?,
            "sslmode" => {
                settings.tls = match value.as_str() {
                    "disable" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-full" => TlsMode::VerifyFull { root_cert: None },
                    other => {
                        return Err(DataFusionError::Configuration(format!(
                            "sslmode={other} is not supported; use disable, prefer, require or verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root_cert = Some(value.clone()),
            "application_name" => {
                config.application_name(&value);
            }
            "statement_timeout" => {
                // The server cancels any statement running longer (57014).
                let timeout = seconds(&key, &value)?;
                statement_timeout = Some(timeout);
            }
            // READ_ONLY: every transaction is read-only, set again each
            // time a pooled connection is handed out (see `build_pool`).
            "read_only" if value != "false" => settings.read_only = true,
            "unsupported_types"
            | "read_only"
            | "pushdown"
            | "scan_partitions"
            | "scan_partition_rows" => {}
            other if MOLTRES_PARAMS.contains(&other) => {}
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown PostgreSQL URL parameter '{other}' (known: sslmode, sslrootcert, application_name, connect_timeout, statement_timeout, pool_max_size, pool_timeout, pool_pre_ping, pool_idle_timeout, pool_max_lifetime, unsupported_types, pushdown, scan_partitions, scan_partition_rows)"
                )));
            }
        }
    }
    // Every session reads and writes time in UTC: timestamp literals Moltres
    // pushes down are UTC wall-clock times.
    let mut session_options = String::from("-c TimeZone=UTC");
    if let Some(timeout) = statement_timeout {
        session_options.push_str(&format!(" -c statement_timeout={}", timeout.as_millis()));
    }
    if settings.read_only {
        session_options.push_str(" -c default_transaction_read_only=on");
    }
    config.options(session_options);
    if let TlsMode::VerifyFull { root_cert: rc } = &mut settings.tls {
        *rc = root_cert;
    }
    config.ssl_mode(match settings.tls {
        TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
        TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyFull { .. } => tokio_postgres::config::SslMode::Require,
    });
    config.connect_timeout(settings.connect_timeout);
    Ok((config, settings))
}

fn url_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Accepts any server certificate (libpq's `prefer` and `require` encrypt
/// without verifying); handshake signatures are still checked.
#[derive(Debug)]
struct UnverifiedCertificates(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedCertificates {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls connector for `mode`.
fn tls_connector(mode: &TlsMode) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| DataFusionError::Configuration(format!("TLS: {e}")))?;
    let config = match mode {
        TlsMode::VerifyFull { root_cert } => {
            let mut roots = rustls::RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    let certs =
                        rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                            DataFusionError::Configuration(format!("sslrootcert '{path}': {e}"))
                        })?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            DataFusionError::Configuration(format!("sslrootcert '{path}': {e}"))
                        })?;
                        roots.add(cert).map_err(|e| {
                            DataFusionError::Configuration(format!("sslrootcert '{path}': {e}"))
                        })?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedCertificates(provider)))
            .with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The pool for one attached database.
pub fn build_pool(config: tokio_postgres::Config, settings: &PoolSettings) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        tls_connector(&settings.tls)?,
        ManagerConfig {
            recycling_method: if settings.read_only {
                // A passthrough `BEGIN READ WRITE` must not outlive its
                // statement either.
                RecyclingMethod::Custom(
                    "ROLLBACK; SET SESSION default_transaction_read_only = on".to_string(),
                )
            } else if settings.pre_ping {
                RecyclingMethod::Verified
            } else {
                RecyclingMethod::Fast
            },
        },
    );
    let (idle, lifetime) = (settings.idle_timeout, settings.max_lifetime);
    Pool::builder(manager)
        .pre_recycle(Hook::sync_fn(move |_, metrics| {
            if idle.is_some_and(|idle| metrics.last_used() > idle) {
                return Err(HookError::message("idle longer than pool_idle_timeout"));
            }
            if lifetime.is_some_and(|max| metrics.age() > max) {
                return Err(HookError::message("older than pool_max_lifetime"));
            }
            Ok(())
        }))
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DataFusionError::Configuration(format!("PostgreSQL pool: {e}")))
}

/// Sorts a driver error into a [`RemoteError`].
pub fn remote_error(source: &str, error: tokio_postgres::Error, sql: Option<&str>) -> RemoteError {
    let (kind, message, code) = match error.as_db_error() {
        Some(db) => {
            let code = db.code().code().to_string();
            let kind = match &code[..2] {
                "08" => RemoteErrorKind::Connection,
                "28" | "42" if code == "42501" => RemoteErrorKind::Authentication,
                "28" => RemoteErrorKind::Authentication,
                "3D" | "3F" => RemoteErrorKind::NotFound,
                "42" if matches!(code.as_str(), "42P01" | "42703" | "42883" | "42704") => {
                    RemoteErrorKind::NotFound
                }
                "42" => RemoteErrorKind::Syntax,
                "57" => RemoteErrorKind::Timeout,
                "22" => RemoteErrorKind::Data,
                _ => RemoteErrorKind::Other,
            };
            (kind, db.message().to_string(), Some(code))
        }
        None => {
            // "error performing TLS handshake" alone does not say why.
            let mut message = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(e) = cause {
                message.push_str(&format!(": {e}"));
                cause = e.source();
            }
            (RemoteErrorKind::Connection, message, None)
        }
    };
    let mut e = RemoteError::new(source, kind, message).with_cause(error);
    if let Some(code) = code {
        e = e.with_code(code);
    }
    if let Some(sql) = sql {
        e = e.with_sql(sql);
    }
    e
}

/// Sorts a pool error into a [`RemoteError`].
pub fn pool_error(source: &str, error: PoolError) -> RemoteError {
    match error {
        PoolError::Backend(e) => remote_error(source, e, None),
        PoolError::Timeout(t) => {
            crate::remote::count_acquire_timeout(source);
            RemoteError::new(
                source,
                RemoteErrorKind::Timeout,
                format!(
                    "timed out waiting for a connection ({t:?}); see pool_timeout and connect_timeout"
                ),
            )
        }
        other => RemoteError::new(source, RemoteErrorKind::Connection, other.to_string()),
    }
}

/// Any value's raw binary bytes.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Runs `sql` on a pooled connection and streams its rows as `schema`
/// batches of `batch_size` rows. Dropping the stream cancels the query.
pub fn query_stream(
    pool: Pool,
    source: Arc<str>,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
) -> SendableRecordBatchStream {
    query_stream_in(pool, source, sql, schema, batch_size, None)
}

/// [`query_stream`] of one part of a parallel scan: in the snapshot its
/// scan's parts share (see [`SnapshotGroup`]) when `group` is given.
pub fn query_stream_in(
    pool: Pool,
    source: Arc<str>,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
    group: Option<Arc<ScanGroup>>,
) -> SendableRecordBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let task_schema = Arc::clone(&schema);
    tokio::spawn(async move {
        let run = match &group {
            None => run_query(&pool, &source, &sql, task_schema, batch_size, &tx).await,
            Some(group) => {
                run_in_snapshot(&pool, &source, &sql, task_schema, batch_size, &tx, group).await
            }
        };
        if let Err(e) = run {
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

async fn run_query(
    pool: &Pool,
    source: &str,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let client = pool
        .get()
        .await
        .map_err(|e| pool_error(source, e).with_sql(sql))?;
    let cancel = client.cancel_token();
    let outcome = stream_rows(&client, source, sql, schema, batch_size, tx).await;
    if !matches!(outcome, Ok(Finished::Read)) {
        abandon(client, cancel).await;
    }
    outcome.map(|_| ())
}

/// The result was not read to its end (the reader went away, a timeout
/// dropped it, a row failed to decode, the connection broke): the server
/// may still be sending it, or the network may have stalled. The query is
/// cancelled (with a bound, since a stalled network may not answer that
/// either) and the connection never goes back to the pool, where the next
/// query would wait behind the rest of this one's rows (or, in a parallel
/// scan, inside its snapshot's transaction).
async fn abandon(client: deadpool_postgres::Object, cancel: tokio_postgres::CancelToken) {
    let _ = tokio::time::timeout(CANCEL_WAIT, cancel.cancel_query(NoTls)).await;
    drop(deadpool_postgres::Object::take(client));
}

/// The connections of one parallel scan's parts, all in one snapshot: the
/// first part to start takes a connection as a single query would, opens
/// a read-only REPEATABLE READ transaction and exports its snapshot
/// (`pg_export_snapshot()`); a part that finds no free connection of the
/// group takes a new one from the pool only while the pool has connections
/// to spare ([`pool_has_spare`]) and imports the snapshot into it (`SET
/// TRANSACTION SNAPSHOT`), and otherwise waits for a part of its scan to
/// give its connection back. So a scan holds at least one connection and
/// never waits for the pool on behalf of a part that could share its own,
/// and the exporting transaction stays open, on a connection parts
/// read with, until every part has finished. Then every connection ends its
/// transaction and goes back to the pool; connections left in the group
/// when it is dropped (a part never ran) are closed, never pooled inside a
/// transaction.
#[derive(Default)]
struct SnapshotGroup {
    state: tokio::sync::Mutex<SnapshotState>,
}

#[derive(Default)]
struct SnapshotState {
    /// The exported snapshot, while its transaction is open.
    snapshot: Option<String>,
    /// The exporting connection was closed (its part was abandoned):
    /// parts not yet running can no longer join the snapshot.
    exporter_lost: bool,
    /// The group's connections no part is reading with.
    idle: Vec<Member>,
    /// Connections in the group (idle or reading).
    open: usize,
    /// Parts done (read to the end, failed or abandoned).
    finished: usize,
}

/// A connection in a snapshot group.
struct Member {
    client: deadpool_postgres::Object,
    exporter: bool,
}

impl Drop for SnapshotState {
    fn drop(&mut self) {
        for member in self.idle.drain(..) {
            drop(deadpool_postgres::Object::take(member.client));
        }
    }
}

impl SnapshotGroup {
    /// A connection in the snapshot for a part (see the type's docs).
    async fn take(&self, pool: &Pool, source: &str, scan: &ScanGroup) -> Result<Member> {
        loop {
            let finished = scan.wait_for_a_part();
            {
                let mut state = self.state.lock().await;
                if let Some(member) = state.idle.pop() {
                    return Ok(member);
                }
                match state.snapshot.clone() {
                    None => {
                        let client = pool.get().await.map_err(|e| pool_error(source, e))?;
                        let name = match export(&client, source).await {
                            Ok(name) => name,
                            Err(e) => {
                                drop(deadpool_postgres::Object::take(client));
                                return Err(e);
                            }
                        };
                        state.snapshot = Some(name);
                        state.open = 1;
                        return Ok(Member {
                            client,
                            exporter: true,
                        });
                    }
                    Some(_) if state.exporter_lost => {
                        return Err(RemoteError::new(
                            source,
                            RemoteErrorKind::Connection,
                            "a parallel scan's snapshot ended (its exporting part was \
                             cancelled) before this part started",
                        )
                        .into());
                    }
                    Some(name)
                        if state.open < scan.parts()
                            && pool_has_spare(Some(crate::remote::PoolStatus::of_deadpool(
                                pool.status(),
                                source,
                            ))) =>
                    {
                        let mut quick = pool.timeouts();
                        quick.wait = Some(Duration::ZERO);
                        if let Ok(client) = pool.timeout_get(&quick).await {
                            let import = format!(
                                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                                 SET TRANSACTION SNAPSHOT {}",
                                PostgresWriter.string(&name)?
                            );
                            if let Err(e) = client.batch_execute(&import).await {
                                drop(deadpool_postgres::Object::take(client));
                                return Err(remote_error(source, e, Some(&import)).into());
                            }
                            state.open += 1;
                            return Ok(Member {
                                client,
                                exporter: false,
                            });
                        }
                    }
                    Some(_) => {}
                }
            }
            // Every connection of the group is reading: wait for one.
            finished.await;
        }
    }

    /// A part is done: its connection back to the group (`None`: closed,
    /// its result not read to the end). The last part ends every
    /// connection's transaction and gives them back to the pool.
    async fn done(&self, member: Option<Member>, lost_exporter: bool, scan: &ScanGroup) {
        let mut state = self.state.lock().await;
        state.finished += 1;
        match member {
            Some(member) => state.idle.push(member),
            None => {
                state.open = state.open.saturating_sub(1);
                state.exporter_lost |= lost_exporter;
            }
        }
        if state.finished >= scan.parts() {
            let idle: Vec<Member> = state.idle.drain(..).collect();
            *state = SnapshotState::default();
            drop(state);
            for member in idle {
                if member.client.batch_execute("COMMIT").await.is_err() {
                    drop(deadpool_postgres::Object::take(member.client));
                }
            }
        }
        scan.part_finished();
    }
}

/// Opens a read-only REPEATABLE READ transaction on `client` and exports
/// its snapshot.
async fn export(client: &tokio_postgres::Client, source: &str) -> Result<String> {
    const EXPORT: &str = "SELECT pg_catalog.pg_export_snapshot()";
    let exported = async {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let row = client.query_one(EXPORT, &[]).await?;
        row.try_get::<_, String>(0)
    }
    .await;
    exported.map_err(|e| remote_error(source, e, Some(EXPORT)).into())
}

/// [`run_query`] in the snapshot of `scan`'s parts.
async fn run_in_snapshot(
    pool: &Pool,
    source: &str,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    scan: &Arc<ScanGroup>,
) -> Result<()> {
    let Some(group) = scan.state(SnapshotGroup::default) else {
        return datafusion::common::internal_err!("a parallel scan's group of another kind");
    };
    let member = match group.take(pool, source, scan).await {
        Ok(member) => member,
        Err(e) => {
            group.done(None, false, scan).await;
            return Err(e.context(format!("remote SQL: {sql}")));
        }
    };
    let exporter = member.exporter;
    let cancel = member.client.cancel_token();
    let outcome = stream_rows(&member.client, source, sql, schema, batch_size, tx).await;
    if matches!(outcome, Ok(Finished::Read)) {
        group.done(Some(member), false, scan).await;
    } else {
        abandon(member.client, cancel).await;
        group.done(None, exporter, scan).await;
    }
    outcome.map(|_| ())
}

/// The longest a cancel request is waited for.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// How a result stream ended without an error.
enum Finished {
    /// Every row was read: the connection is ready for the next query.
    Read,
    /// The reader went away first.
    Abandoned,
}

async fn stream_rows(
    client: &tokio_postgres::Client,
    source: &str,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<Finished> {
    let params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let rows = tokio::select! {
        rows = client.query_raw(sql, params) => rows.map_err(|e| remote_error(source, e, Some(sql)))?,
        _ = tx.closed() => return Ok(Finished::Abandoned),
    };
    futures::pin_mut!(rows);
    let mut decoders: Option<Vec<ColumnDecoder>> = None;
    let mut clock = crate::remote::BatchClock::new(batch_size);
    loop {
        // A row already received is taken at once: waiting on the reader's
        // going away as well cost 5% of a long transfer (a full batch's
        // send notices it too).
        let row = match futures::FutureExt::now_or_never(rows.next()) {
            Some(row) => row,
            None => tokio::select! {
                row = rows.next() => row,
                // The reader went away (LIMIT satisfied, Ctrl-C, a
                // timeout, an error elsewhere).
                _ = tx.closed() => return Ok(Finished::Abandoned),
            },
        };
        let Some(row) = row else { break };
        let row = row.map_err(|e| remote_error(source, e, Some(sql)))?;
        let decoders = match &mut decoders {
            Some(d) => d,
            None => decoders.insert(make_decoders(
                &schema,
                |i| row.columns().get(i).map(|c| c.type_().name().to_string()),
                source,
            )?),
        };
        for (i, decoder) in decoders.iter_mut().enumerate() {
            let raw: Option<Raw> = row
                .try_get(i)
                .map_err(|e| remote_error(source, e, Some(sql)))?;
            decoder.push(raw.map(|r| r.0)).map_err(|reason| {
                RemoteError::new(
                    source,
                    RemoteErrorKind::Data,
                    format!("column '{}': {reason}", schema.field(i).name()),
                )
                .with_sql(sql)
            })?;
        }
        if clock.row() {
            let rows = clock.take();
            let batch = crate::remote::finish_batch(&schema, decoders, rows)?;
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(Finished::Abandoned);
            }
        }
    }
    // No rows at all is an empty stream; its schema is the table's.
    if let Some(decoders) = decoders.as_mut()
        && let pending = clock.take()
        && pending > 0
    {
        let batch = crate::remote::finish_batch(&schema, decoders, pending)?;
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(Finished::Read)
}

fn make_decoders(
    schema: &SchemaRef,
    pg_type: impl Fn(usize) -> Option<String>,
    source: &str,
) -> Result<Vec<ColumnDecoder>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            ColumnDecoder::try_new(field.data_type(), &pg_type(i).unwrap_or_default()).map_err(
                |reason| {
                    RemoteError::new(
                        source,
                        RemoteErrorKind::Data,
                        format!("column '{}': {reason}", field.name()),
                    )
                    .into()
                },
            )
        })
        .collect()
}

/// Appends `data` to `schema.table` with `COPY ... FROM STDIN (FORMAT
/// binary)` inside a transaction: all rows or none. `columns` are the
/// table's fields (with their PostgreSQL types in the metadata).
pub async fn copy_in(
    pool: &Pool,
    source: &str,
    schema: &str,
    table: &str,
    columns: &SchemaRef,
    data: SendableRecordBatchStream,
    mode: crate::remote::WriteMode<'_>,
) -> Result<u64> {
    let mut client = pool.get().await.map_err(|e| pool_error(source, e))?;
    let transaction = client
        .transaction()
        .await
        .map_err(|e| remote_error(source, e, Some("BEGIN")))?;
    let rows = copy_rows(
        transaction.client(),
        source,
        (schema, table),
        columns,
        data,
        mode,
    )
    .await?;
    transaction
        .commit()
        .await
        .map_err(|e| remote_error(source, e, Some("COMMIT")))?;
    Ok(rows)
}

/// Creates `schema.table` with `columns` and fills it with `data` by COPY,
/// in one transaction: the table exists, with every row, only once it
/// commits.
pub async fn create_and_copy_in(
    pool: &Pool,
    source: &str,
    (schema, table): (&str, &str),
    columns: &[String],
    data: SendableRecordBatchStream,
) -> Result<u64> {
    let mut client = pool.get().await.map_err(|e| pool_error(source, e))?;
    let transaction = client
        .transaction()
        .await
        .map_err(|e| remote_error(source, e, Some("BEGIN")))?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let create = format!(
        "CREATE TABLE {}.{} ({})",
        quote(schema),
        quote(table),
        columns.join(", ")
    );
    transaction
        .batch_execute(&create)
        .await
        .map_err(|e| remote_error(source, e, Some(&create)))?;
    // The new table's columns, with their PostgreSQL types for COPY.
    let created = super::schema::table_schema_on(
        transaction.client(),
        source,
        schema,
        table,
        super::schema::UnsupportedTypes::Error,
    )
    .await?
    .ok_or_else(|| {
        DataFusionError::from(RemoteError::new(
            source,
            RemoteErrorKind::NotFound,
            format!("{schema}.{table} was created but cannot be found"),
        ))
    })?;
    let rows = copy_rows(
        transaction.client(),
        source,
        (schema, table),
        &created,
        data,
        crate::remote::WriteMode::Append,
    )
    .await?;
    transaction
        .commit()
        .await
        .map_err(|e| remote_error(source, e, Some("COMMIT")))?;
    Ok(rows)
}

/// The work of [`copy_in`] on `client`, which is inside a transaction: the
/// caller commits or rolls back.
pub async fn copy_rows(
    client: &tokio_postgres::Client,
    source: &str,
    (schema, table): (&str, &str),
    columns: &SchemaRef,
    data: SendableRecordBatchStream,
    mode: crate::remote::WriteMode<'_>,
) -> Result<u64> {
    use futures::SinkExt;
    let upsert_keys = mode.upsert_keys();
    let pg_types: Vec<String> = columns
        .fields()
        .iter()
        .map(|f| f.metadata().get(PG_TYPE).cloned().unwrap_or_default())
        .collect();
    for (field, pg_type) in columns.fields().iter().zip(&pg_types) {
        let enum_label = field.data_type() == &DataType::Utf8;
        if !can_encode(field.data_type(), pg_type) && !enum_label
            || field.metadata().contains_key(CAST_TO_TEXT)
        {
            return Err(RemoteError::new(
                source,
                RemoteErrorKind::Data,
                format!(
                    "column '{}' of {schema}.{table} has type {pg_type}, which Moltres cannot write",
                    field.name()
                ),
            )
            .into());
        }
    }
    // The encoders read each column as the table's type.
    let mut data = crate::remote::conform(
        data,
        Arc::clone(columns),
        format!("writing {source}.{schema}.{table}"),
    );
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let target = format!("{}.{}", quote(schema), quote(table));
    let names = columns
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    if mode.overwrites() {
        let delete = format!("DELETE FROM {target}");
        client
            .batch_execute(&delete)
            .await
            .map_err(|e| remote_error(source, e, Some(&delete)))?;
    }
    // An upsert copies into a temporary table first, then merges.
    let copied_into = match upsert_keys {
        Some(_) => {
            let staging = "moltres_upsert_rows";
            let create = format!(
                "CREATE TEMPORARY TABLE {staging} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
            );
            client
                .batch_execute(&create)
                .await
                .map_err(|e| remote_error(source, e, Some(&create)))?;
            staging.to_string()
        }
        None => target.clone(),
    };
    let sql = format!("COPY {copied_into} ({names}) FROM STDIN (FORMAT binary)");
    let sink = client
        .copy_in::<_, bytes::Bytes>(&sql)
        .await
        .map_err(|e| remote_error(source, e, Some(&sql)))?;
    futures::pin_mut!(sink);
    let mut buffer: Vec<u8> = b"PGCOPY\n\xff\r\n\0".to_vec();
    buffer.extend_from_slice(&0i32.to_be_bytes());
    buffer.extend_from_slice(&0i32.to_be_bytes());
    while let Some(batch) = data.next().await {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            buffer.extend_from_slice(&(batch.num_columns() as i16).to_be_bytes());
            for (i, column) in batch.columns().iter().enumerate() {
                encode_copy_field(column, row, &pg_types[i], &mut buffer).map_err(|reason| {
                    DataFusionError::from(RemoteError::new(
                        source,
                        RemoteErrorKind::Data,
                        format!("column '{}': {reason}", columns.field(i).name()),
                    ))
                })?;
            }
        }
        sink.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
            .await
            .map_err(|e| remote_error(source, e, Some(&sql)))?;
    }
    buffer.extend_from_slice(&(-1i16).to_be_bytes());
    sink.send(bytes::Bytes::from(buffer))
        .await
        .map_err(|e| remote_error(source, e, Some(&sql)))?;
    let mut rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| remote_error(source, e, Some(&sql)))?;
    if let Some(keys) = upsert_keys {
        let updates: Vec<String> = columns
            .fields()
            .iter()
            .filter(|f| !keys.contains(f.name()))
            .map(|f| format!("{0} = EXCLUDED.{0}", quote(f.name())))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let merge = format!(
            "INSERT INTO {target} ({names}) SELECT {names} FROM {copied_into} ON CONFLICT ({}) {action}",
            keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
        );
        rows = client
            .execute(merge.as_str(), &[])
            .await
            .map_err(|e| remote_error(source, e, Some(&merge)))?;
    }
    if upsert_keys.is_some() {
        // Inside a longer transaction ON COMMIT DROP is not soon enough.
        let drop = format!("DROP TABLE {copied_into}");
        client
            .batch_execute(&drop)
            .await
            .map_err(|e| remote_error(source, e, Some(&drop)))?;
    }
    Ok(rows)
}
