//! Query lifecycle: hooks, metrics, logs, the query timeout and the cap on
//! concurrent queries.
//!
//! Every statement is observed once, from start to end:
//!
//! * queries and writes that DataFusion executes (SELECT, INSERT, UPDATE,
//!   DELETE, COPY, and DataFrames however they were built) through
//!   [`ObservingQueryPlanner`], which puts an [`ObservedExec`] on top of
//!   each physical plan: the query starts when it is first executed and ends
//!   when its output is exhausted, fails, or is dropped;
//! * statements that run at once (ATTACH, DDL, SET, passthrough, library
//!   calls such as `create_table`) through [`Observer::run`].
//!
//! The same [`ObservedExec`] enforces `moltres.query_timeout` (dropping the
//! plan cancels the remote queries under it) and takes one of
//! `max_concurrent_queries` slots, waiting at most `queue_timeout`.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigExtension;
use datafusion::common::{DataFusionError, Result as DFResult, extensions_options};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    RecordBatchStream,
};
use futures::{Stream, StreamExt, TryStreamExt};
use moltres_connectors::remote::{PoolStatus, RemoteScanExec, RemoteStatementExec, sink_source};

use crate::config::format_duration;

/// What kind of statement an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatementKind {
    /// A query (SELECT, EXPLAIN, a DataFrame).
    Query,
    /// INSERT, UPDATE, DELETE, COPY and the library's writes.
    Write,
    /// CREATE, DROP and the library's table and index builders.
    Ddl,
    /// Native SQL sent to a database as it is.
    Passthrough,
    /// ATTACH, DETACH, SET, SHOW and other session statements.
    Session,
    /// A step of a transaction, its commit or its rollback.
    Transaction,
}

impl StatementKind {
    /// The lower-case name (`query`, `write`, ...), as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Query => "query",
            StatementKind::Write => "write",
            StatementKind::Ddl => "ddl",
            StatementKind::Passthrough => "passthrough",
            StatementKind::Session => "session",
            StatementKind::Transaction => "transaction",
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statement as it starts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueryInfo {
    /// Unique within the process, rising.
    pub id: u64,
    /// The SQL (passwords in URLs and DSNs replaced by `***`), or a
    /// description of a DataFrame or library call.
    pub sql: String,
    /// What kind of statement it is.
    pub kind: StatementKind,
    /// The sources it reads or writes (`files` for files), by name.
    pub sources: Vec<String>,
    /// The SQL sent to each database: (source, SQL), one per remote scan
    /// or statement.
    pub remote_sql: Vec<(String, String)>,
    /// When it started.
    pub started_at: SystemTime,
}

/// A statement as it ends.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct QueryOutcome {
    /// From start to end.
    pub elapsed: Duration,
    /// Rows returned (for writes: the one row with the count).
    pub rows: u64,
    /// Arrow bytes returned.
    pub bytes: u64,
    /// Rows and bytes read per source: (source, rows, bytes).
    pub read: Vec<(String, u64, u64)>,
    /// Bytes spilled to disk by sorts, joins and aggregates.
    pub spilled_bytes: u64,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The reader stopped before the end (dropped the stream, Ctrl-C).
    pub cancelled: bool,
}

/// What a hook returns; an error is logged, never passed to the query.
pub type HookResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Called around every statement (see [`crate::Moltres::register_hook`]).
/// A hook that returns an error or panics is logged (target
/// `moltres::hooks`) and the statement goes on as if it were not there.
pub trait QueryHook: Send + Sync {
    /// A statement starts.
    fn on_query_start(&self, _query: &QueryInfo) -> HookResult {
        Ok(())
    }

    /// A statement ended without an error.
    fn on_query_end(&self, _query: &QueryInfo, _outcome: &QueryOutcome) -> HookResult {
        Ok(())
    }

    /// A statement failed (`outcome.error` says why).
    fn on_query_error(&self, _query: &QueryInfo, _outcome: &QueryOutcome) -> HookResult {
        Ok(())
    }
}

type StartFn = dyn Fn(&QueryInfo) + Send + Sync;
type EndFn = dyn Fn(&QueryInfo, &QueryOutcome) + Send + Sync;

/// A hook made of closures (see [`crate::Moltres::on_query_start`]).
#[derive(Default)]
pub(crate) struct FnHook {
    pub start: Option<Box<StartFn>>,
    pub end: Option<Box<EndFn>>,
    pub error: Option<Box<EndFn>>,
}

impl QueryHook for FnHook {
    fn on_query_start(&self, query: &QueryInfo) -> HookResult {
        if let Some(f) = &self.start {
            f(query);
        }
        Ok(())
    }

    fn on_query_end(&self, query: &QueryInfo, outcome: &QueryOutcome) -> HookResult {
        if let Some(f) = &self.end {
            f(query, outcome);
        }
        Ok(())
    }

    fn on_query_error(&self, query: &QueryInfo, outcome: &QueryOutcome) -> HookResult {
        if let Some(f) = &self.error {
            f(query, outcome);
        }
        Ok(())
    }
}

extensions_options! {
    /// Per-session settings under `moltres.` (`SET moltres.query_timeout = '30s'`).
    pub struct MoltresOptions {
        /// The longest a query may run (`500ms`, `30s`, `5m`, a number of
        /// seconds; `0` or empty: no limit). Empty: the session's default
        /// (`MOLTRES_QUERY_TIMEOUT`).
        pub query_timeout: String, default = String::new()
    }
}

impl ConfigExtension for MoltresOptions {
    const PREFIX: &'static str = "moltres";
}

/// How a DataFrame's execution is observed: set on the DataFrame's session
/// state by [`crate::Moltres::sql`] and the library's calls.
#[derive(Debug, Clone)]
pub(crate) enum QueryTag {
    /// A statement, with its SQL (and its kind, when the plan does not
    /// tell it).
    Statement {
        sql: String,
        kind: Option<StatementKind>,
    },
    /// Part of a statement observed as a whole (not counted again).
    Internal,
}

/// The ids of statements, rising from 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Durations up to which the Prometheus histogram counts (seconds).
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Debug, Default, Clone)]
struct SourceCounters {
    rows_read: u64,
    bytes_read: u64,
    remote_queries: u64,
}

/// Counters of one session.
struct Metrics {
    queries: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    queue_timeouts: AtomicU64,
    cancelled: AtomicU64,
    running: AtomicUsize,
    waiting: AtomicUsize,
    rows_returned: AtomicU64,
    spilled_bytes: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_micros: AtomicU64,
    durations: Mutex<hdrhistogram::Histogram<u64>>,
    sources: Mutex<BTreeMap<String, SourceCounters>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            queries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            queue_timeouts: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            rows_returned: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
            buckets: Default::default(),
            duration_sum_micros: AtomicU64::new(0),
            // Microseconds, three significant digits, growing as needed.
            durations: Mutex::new(
                hdrhistogram::Histogram::new(3).expect("3 significant digits are valid"),
            ),
            sources: Mutex::new(BTreeMap::new()),
        }
    }
}

/// One source's numbers in a [`MetricsSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceMetrics {
    /// The source's name (`files` for files).
    pub name: String,
    /// Rows read from it.
    pub rows_read: u64,
    /// Bytes read from it (Arrow bytes received from a database; bytes
    /// scanned where a file format reports them).
    pub bytes_read: u64,
    /// Queries and statements sent to it.
    pub remote_queries: u64,
    /// Its connection pool, for databases.
    pub pool: Option<PoolStatus>,
}

/// The session's counters at one moment ([`crate::Moltres::metrics`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Statements started.
    pub queries: u64,
    /// Statements that failed (timeouts and queue timeouts included).
    pub errors: u64,
    /// Queries stopped by the query timeout.
    pub timeouts: u64,
    /// Queries refused after waiting for a slot (`queue_timeout`).
    pub queue_timeouts: u64,
    /// Queries whose reader stopped before the end.
    pub cancelled: u64,
    /// Queries running now.
    pub running: usize,
    /// Queries waiting for a slot now.
    pub waiting: usize,
    /// Rows returned by all statements.
    pub rows_returned: u64,
    /// Bytes spilled to disk.
    pub spilled_bytes: u64,
    /// Median statement duration.
    pub duration_p50: Duration,
    /// 95th percentile.
    pub duration_p95: Duration,
    /// 99th percentile.
    pub duration_p99: Duration,
    /// The longest.
    pub duration_max: Duration,
    /// Sum of all durations.
    pub duration_sum: Duration,
    /// Statements per duration bucket: (upper bound in seconds, count at
    /// or below it), cumulative.
    pub duration_buckets: Vec<(f64, u64)>,
    /// Per source, by name.
    pub sources: Vec<SourceMetrics>,
}

/// Session-wide observation: hooks, metrics, limits.
pub(crate) struct Observer {
    hooks: RwLock<Vec<Arc<dyn QueryHook>>>,
    metrics: Metrics,
    slow_query: Option<Duration>,
    default_timeout: Option<Duration>,
    slots: Option<(Arc<tokio::sync::Semaphore>, usize)>,
    queue_timeout: Duration,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

/// The limits an [`Observer`] enforces.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub slow_query: Option<Duration>,
    pub query_timeout: Option<Duration>,
    pub max_concurrent_queries: Option<usize>,
    pub queue_timeout: Duration,
}

impl Observer {
    pub fn new(limits: Limits) -> Self {
        Self {
            hooks: RwLock::new(Vec::new()),
            metrics: Metrics::default(),
            slow_query: limits.slow_query,
            default_timeout: limits.query_timeout,
            slots: limits
                .max_concurrent_queries
                .map(|n| (Arc::new(tokio::sync::Semaphore::new(n)), n)),
            queue_timeout: limits.queue_timeout,
        }
    }

    pub fn register(&self, hook: Arc<dyn QueryHook>) {
        if let Ok(mut hooks) = self.hooks.write() {
            hooks.push(hook);
        }
    }

    fn hooks(&self) -> Vec<Arc<dyn QueryHook>> {
        self.hooks.read().map(|h| h.clone()).unwrap_or_default()
    }

    /// A new statement's info.
    pub fn info(&self, kind: StatementKind, sql: &str) -> QueryInfo {
        QueryInfo {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sql: redact_sql(sql),
            kind,
            sources: Vec::new(),
            remote_sql: Vec::new(),
            started_at: SystemTime::now(),
        }
    }

    /// Fires the start events.
    pub fn started(&self, info: &QueryInfo) {
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        self.metrics.running.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: "moltres::query",
            query_id = info.id,
            kind = info.kind.as_str(),
            sources = ?info.sources,
            sql = %info.sql,
            "query started"
        );
        for hook in self.hooks() {
            call_hook("on_query_start", info, || hook.on_query_start(info));
        }
    }

    /// Records the end and fires the end or error events.
    pub fn finished(&self, info: &QueryInfo, outcome: &QueryOutcome) {
        let m = &self.metrics;
        m.running.fetch_sub(1, Ordering::Relaxed);
        m.rows_returned.fetch_add(outcome.rows, Ordering::Relaxed);
        m.spilled_bytes
            .fetch_add(outcome.spilled_bytes, Ordering::Relaxed);
        if outcome.error.is_some() {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.cancelled {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        let micros = outcome.elapsed.as_micros().min(u64::MAX as u128) as u64;
        m.duration_sum_micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = outcome.elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                m.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Ok(mut durations) = m.durations.lock() {
            let _ = durations.record(micros.max(1));
        }
        if let Ok(mut sources) = m.sources.lock() {
            for (source, rows, bytes) in &outcome.read {
                let counters = sources.entry(source.clone()).or_default();
                counters.rows_read += rows;
                counters.bytes_read += bytes;
            }
            for (source, _) in &info.remote_sql {
                sources.entry(source.clone()).or_default().remote_queries += 1;
            }
        }
        let duration_ms = outcome.elapsed.as_secs_f64() * 1000.0;
        match &outcome.error {
            // Info, not warn: the caller gets the error and reports it.
            Some(error) => tracing::info!(
                target: "moltres::query",
                query_id = info.id,
                kind = info.kind.as_str(),
                duration_ms,
                error = %error,
                sql = %info.sql,
                "query failed"
            ),
            None if self.slow_query.is_some_and(|slow| outcome.elapsed >= slow) => {
                tracing::warn!(
                    target: "moltres::query",
                    query_id = info.id,
                    kind = info.kind.as_str(),
                    duration_ms,
                    rows = outcome.rows,
                    sql = %info.sql,
                    remote_sql = ?info.remote_sql,
                    "slow query"
                )
            }
            None => tracing::info!(
                target: "moltres::query",
                query_id = info.id,
                kind = info.kind.as_str(),
                duration_ms,
                rows = outcome.rows,
                cancelled = outcome.cancelled,
                sql = %info.sql,
                "query finished"
            ),
        }
        for hook in self.hooks() {
            if outcome.error.is_some() {
                call_hook("on_query_error", info, || {
                    hook.on_query_error(info, outcome)
                });
            } else {
                call_hook("on_query_end", info, || hook.on_query_end(info, outcome));
            }
        }
    }

    /// Records a statement that failed before it could run (planning).
    pub fn failed(&self, kind: StatementKind, sql: &str, error: &dyn fmt::Display) {
        let info = self.info(kind, sql);
        self.started(&info);
        let outcome = QueryOutcome {
            error: Some(error.to_string()),
            ..Default::default()
        };
        self.finished(&info, &outcome);
    }

    /// Observes a statement that runs at once: `work` between the start and
    /// end events. `rows` reads the number to report off the result.
    pub async fn run<T, E: fmt::Display>(
        &self,
        kind: StatementKind,
        sql: &str,
        sources: Vec<String>,
        work: impl Future<Output = Result<T, E>>,
        rows: impl Fn(&T) -> u64,
    ) -> Result<T, E> {
        let mut info = self.info(kind, sql);
        info.sources = sources;
        let started = Instant::now();
        self.started(&info);
        // Dropped before `work` ends (Ctrl-C, a timeout around the call):
        // the statement ends as cancelled.
        let mut pending = Cancelled {
            observer: self,
            info: Some(info),
            started,
        };
        let result = work.await;
        let info = pending.info.take().expect("taken once");
        let outcome = QueryOutcome {
            elapsed: started.elapsed(),
            rows: result.as_ref().map(&rows).unwrap_or(0),
            error: result.as_ref().err().map(|e| e.to_string()),
            ..Default::default()
        };
        self.finished(&info, &outcome);
        result
    }

    /// Records a statement dropped while it was planned, before any of
    /// its events (Ctrl-C, a caller's timeout).
    pub fn cancelled_while_planning(&self, kind: StatementKind, sql: &str, elapsed: Duration) {
        let info = self.info(kind, sql);
        self.started(&info);
        let outcome = QueryOutcome {
            elapsed,
            cancelled: true,
            ..Default::default()
        };
        self.finished(&info, &outcome);
    }

    /// The number of statements started so far.
    pub(crate) fn started_count(&self) -> u64 {
        self.metrics.queries.load(Ordering::Relaxed)
    }

    /// The session's numbers; `pools` gives each database's pool.
    pub fn snapshot(&self, pools: Vec<(String, Option<PoolStatus>)>) -> MetricsSnapshot {
        let m = &self.metrics;
        let (p50, p95, p99, max) = m
            .durations
            .lock()
            .map(|h| {
                let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
                (at(0.5), at(0.95), at(0.99), Duration::from_micros(h.max()))
            })
            .unwrap_or_default();
        let mut sources: BTreeMap<String, SourceMetrics> = BTreeMap::new();
        if let Ok(counters) = m.sources.lock() {
            for (name, c) in counters.iter() {
                sources.insert(
                    name.clone(),
                    SourceMetrics {
                        name: name.clone(),
                        rows_read: c.rows_read,
                        bytes_read: c.bytes_read,
                        remote_queries: c.remote_queries,
                        pool: None,
                    },
                );
            }
        }
        for (name, pool) in pools {
            let entry = sources
                .entry(name.clone())
                .or_insert_with(|| SourceMetrics {
                    name,
                    ..Default::default()
                });
            entry.pool = pool;
        }
        MetricsSnapshot {
            queries: m.queries.load(Ordering::Relaxed),
            errors: m.errors.load(Ordering::Relaxed),
            timeouts: m.timeouts.load(Ordering::Relaxed),
            queue_timeouts: m.queue_timeouts.load(Ordering::Relaxed),
            cancelled: m.cancelled.load(Ordering::Relaxed),
            running: m.running.load(Ordering::Relaxed),
            waiting: m.waiting.load(Ordering::Relaxed),
            rows_returned: m.rows_returned.load(Ordering::Relaxed),
            spilled_bytes: m.spilled_bytes.load(Ordering::Relaxed),
            duration_p50: p50,
            duration_p95: p95,
            duration_p99: p99,
            duration_max: max,
            duration_sum: Duration::from_micros(m.duration_sum_micros.load(Ordering::Relaxed)),
            duration_buckets: BUCKETS
                .iter()
                .zip(&m.buckets)
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect(),
            sources: sources.into_values().collect(),
        }
    }

    /// The query timeout in force for `state`: `SET moltres.query_timeout`,
    /// else the session default.
    pub(crate) fn timeout_for(&self, state: &dyn Session) -> DFResult<Option<Duration>> {
        let set = state
            .config_options()
            .extensions
            .get::<MoltresOptions>()
            .map(|o| o.query_timeout.trim().to_string())
            .unwrap_or_default();
        if set.is_empty() {
            return Ok(self.default_timeout);
        }
        let timeout = crate::config::parse_duration(&set)
            .map_err(|e| DataFusionError::Configuration(format!("moltres.query_timeout: {e}")))?;
        Ok((!timeout.is_zero()).then_some(timeout))
    }
}

/// Runs a hook, containing its error or panic.
fn call_hook(event: &str, info: &QueryInfo, f: impl FnOnce() -> HookResult) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            target: "moltres::hooks",
            query_id = info.id,
            event,
            error = %moltres_connectors::secrets::scrub(&e.to_string()),
            "a query hook failed; the query goes on"
        ),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            let message = moltres_connectors::secrets::scrub(&message).into_owned();
            tracing::warn!(
                target: "moltres::hooks",
                query_id = info.id,
                event,
                panic = %message,
                "a query hook panicked; the query goes on"
            )
        }
    }
}

/// `sql` with the passwords of the URLs in its string literals and of
/// password options replaced by `***`: see
/// [`secrets::redact_sql`](moltres_connectors::secrets::redact_sql).
pub fn redact_sql(sql: &str) -> String {
    moltres_connectors::secrets::redact_sql(sql)
}

/// A [`QueryPlanner`] that plans with `inner`, then puts an
/// [`ObservedExec`] on top of each plan.
pub(crate) struct ObservingQueryPlanner {
    pub inner: Arc<dyn QueryPlanner + Send + Sync>,
    pub observer: Arc<Observer>,
}

impl fmt::Debug for ObservingQueryPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservingQueryPlanner")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl QueryPlanner for ObservingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let tag = session_state.config().get_extension::<QueryTag>();
        let plan = match self
            .inner
            .create_physical_plan(logical_plan, session_state)
            .await
        {
            Ok(plan) => plan,
            Err(e) => {
                if let Some(QueryTag::Statement { sql, kind }) = tag.as_deref() {
                    self.observer
                        .failed(kind.unwrap_or(StatementKind::Query), sql, &e);
                }
                return Err(e);
            }
        };
        let (sql, kind) = match tag.as_deref() {
            Some(QueryTag::Internal) => return Ok(plan),
            Some(QueryTag::Statement { sql, kind }) => (sql.clone(), *kind),
            None => (format!("DataFrame: {}", logical_plan.display()), None),
        };
        let kind = kind.unwrap_or(match logical_plan {
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => StatementKind::Write,
            _ => StatementKind::Query,
        });
        let timeout = self.observer.timeout_for(session_state)?;
        Ok(Arc::new(ObservedExec::new(
            plan,
            Arc::clone(&self.observer),
            kind,
            sql,
            timeout,
        )))
    }
}

/// The sources a plan touches and the SQL each remote node sends.
fn scans(
    plan: &Arc<dyn ExecutionPlan>,
    sources: &mut Vec<String>,
    sql: &mut Vec<(String, String)>,
) {
    let mut add = |name: &str| {
        if !sources.iter().any(|s| s == name) {
            sources.push(name.to_string());
        }
    };
    if let Some(scan) = plan.downcast_ref::<RemoteScanExec>() {
        let name = scan.database().source_name().to_string();
        add(&name);
        sql.push((name, scan.sql().as_str().to_string()));
    } else if let Some(statement) = plan.downcast_ref::<RemoteStatementExec>() {
        let name = statement.database().source_name().to_string();
        add(&name);
        sql.push((name, statement.sql().as_str().to_string()));
    } else if plan.children().is_empty() && plan.name() == "DataSourceExec" {
        add("files");
    } else if let Some(sink) = plan.downcast_ref::<datafusion::datasource::sink::DataSinkExec>()
        && let Some(name) = sink_source(sink.sink())
    {
        add(name);
    }
    for child in plan.children() {
        scans(child, sources, sql);
    }
}

/// Rows and bytes read per source, and bytes spilled, off a finished plan.
fn reads(
    plan: &Arc<dyn ExecutionPlan>,
    read: &mut BTreeMap<String, (u64, u64)>,
    spilled: &mut u64,
) {
    let metrics = plan.metrics();
    if let Some(metrics) = &metrics {
        *spilled += metrics.spilled_bytes().unwrap_or(0) as u64;
    }
    let source = if let Some(scan) = plan.downcast_ref::<RemoteScanExec>() {
        Some((scan.database().source_name().to_string(), "bytes_received"))
    } else if plan.children().is_empty() && plan.name() == "DataSourceExec" {
        Some(("files".to_string(), "bytes_scanned"))
    } else {
        None
    };
    if let (Some((name, bytes_metric)), Some(metrics)) = (source, &metrics) {
        let entry = read.entry(name).or_default();
        entry.0 += metrics.output_rows().unwrap_or(0) as u64;
        entry.1 += metrics
            .sum_by_name(bytes_metric)
            .map(|v| v.as_usize() as u64)
            .unwrap_or(0);
    }
    for child in plan.children() {
        reads(child, read, spilled);
    }
}

/// One execution of an observed plan, shared by its partitions' streams.
struct QueryRun {
    observer: Arc<Observer>,
    input: Arc<dyn ExecutionPlan>,
    kind: StatementKind,
    sql: String,
    timeout: Option<Duration>,
    info: OnceLock<QueryInfo>,
    started: OnceLock<Instant>,
    remaining: AtomicUsize,
    rows: AtomicU64,
    bytes: AtomicU64,
    error: Mutex<Option<String>>,
    cancelled: AtomicBool,
    finished: AtomicBool,
    slot: tokio::sync::OnceCell<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl QueryRun {
    /// The start, once for all partitions.
    fn begin(&self) {
        self.info.get_or_init(|| {
            let mut info = self.observer.info(self.kind, &self.sql);
            scans(&self.input, &mut info.sources, &mut info.remote_sql);
            let _ = self.started.set(Instant::now());
            self.observer.started(&info);
            info
        });
    }

    /// Waits for a slot (`max_concurrent_queries`), at most `queue_timeout`.
    async fn slot(&self) -> DFResult<()> {
        let Some((semaphore, max)) = &self.observer.slots else {
            return Ok(());
        };
        let wait = self.observer.queue_timeout;
        let metrics = &self.observer.metrics;
        self.slot
            .get_or_try_init(|| async {
                metrics.waiting.fetch_add(1, Ordering::Relaxed);
                let permit =
                    tokio::time::timeout(wait, Arc::clone(semaphore).acquire_owned()).await;
                metrics.waiting.fetch_sub(1, Ordering::Relaxed);
                match permit {
                    Ok(Ok(permit)) => Ok(Some(permit)),
                    Ok(Err(_)) => Ok(None),
                    Err(_) => {
                        metrics.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(DataFusionError::ResourcesExhausted(format!(
                            "too many concurrent queries: waited {} for one of {max} slots \
                             (MOLTRES_MAX_CONCURRENT_QUERIES; wait: MOLTRES_QUEUE_TIMEOUT)",
                            format_duration(wait)
                        )))
                    }
                }
            })
            .await
            .map(|_| ())
    }

    fn record_error(&self, error: &DataFusionError) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(error.to_string());
        }
    }

    /// A partition's stream ended (exhausted, failed or dropped).
    fn partition_done(&self, complete: bool) {
        if !complete {
            self.cancelled.store(true, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(info) = self.info.get() else {
            return;
        };
        let mut read = BTreeMap::new();
        let mut spilled_bytes = 0;
        reads(&self.input, &mut read, &mut spilled_bytes);
        let error = self.error.lock().ok().and_then(|e| e.clone());
        let outcome = QueryOutcome {
            elapsed: self.started.get().map(Instant::elapsed).unwrap_or_default(),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            read: read
                .into_iter()
                .map(|(name, (rows, bytes))| (name, rows, bytes))
                .collect(),
            spilled_bytes,
            cancelled: error.is_none() && self.cancelled.load(Ordering::Relaxed),
            error,
        };
        self.observer.finished(info, &outcome);
    }
}

impl Drop for QueryRun {
    fn drop(&mut self) {
        // Partitions that were never executed: the query ends now.
        self.finish();
    }
}

/// The top of every observed plan: starts and ends the query, counts its
/// output, enforces the timeout and the concurrency cap.
pub(crate) struct ObservedExec {
    input: Arc<dyn ExecutionPlan>,
    run: Arc<QueryRun>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for ObservedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedExec").finish_non_exhaustive()
    }
}

impl ObservedExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        observer: Arc<Observer>,
        kind: StatementKind,
        sql: String,
        timeout: Option<Duration>,
    ) -> Self {
        let properties = Arc::clone(input.properties());
        let partitions = input.output_partitioning().partition_count().max(1);
        Self {
            run: Arc::new(QueryRun {
                observer,
                input: Arc::clone(&input),
                kind,
                sql,
                timeout,
                info: OnceLock::new(),
                started: OnceLock::new(),
                remaining: AtomicUsize::new(partitions),
                rows: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                error: Mutex::new(None),
                cancelled: AtomicBool::new(false),
                finished: AtomicBool::new(false),
                slot: tokio::sync::OnceCell::new(),
            }),
            input,
            properties,
        }
    }
}

impl DisplayAs for ObservedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.run.timeout {
            Some(timeout) => write!(f, "ObservedExec: timeout={}", format_duration(timeout)),
            None => write!(f, "ObservedExec"),
        }
    }
}

impl ExecutionPlan for ObservedExec {
    fn name(&self) -> &str {
        "ObservedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let [child] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("ObservedExec takes one child".to_string()))?;
        Ok(Arc::new(ObservedExec::new(
            child,
            Arc::clone(&self.run.observer),
            self.run.kind,
            self.run.sql.clone(),
            self.run.timeout,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.run.begin();
        let run = Arc::clone(&self.run);
        let input = Arc::clone(&self.input);
        let schema = self.input.schema();
        let opened = async move {
            run.slot().await?;
            let deadline = run.timeout.map(|t| {
                tokio::time::Instant::from_std(
                    run.started.get().copied().unwrap_or_else(Instant::now) + t,
                )
            });
            let stream = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                input.execute(partition, context)
            }))
            .map_err(|payload| {
                DataFusionError::Execution(format!(
                    "internal error while starting the query: {}",
                    crate::guard::panic_message(payload.as_ref())
                ))
            })??;
            Ok::<_, DataFusionError>(Timed {
                inner: Some(stream),
                deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                timeout: run.timeout,
                run,
            })
        };
        let stream = futures::stream::once(opened).try_flatten();
        Ok(Box::pin(Counted {
            inner: Box::pin(stream),
            schema,
            run: Arc::clone(&self.run),
            done: false,
        }))
    }
}

/// A partition's batches until the deadline; then one timeout error, and
/// the input dropped (which cancels its remote queries).
struct Timed {
    inner: Option<SendableRecordBatchStream>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Option<Duration>,
    run: Arc<QueryRun>,
}

impl Stream for Timed {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.inner = None;
            self.run
                .observer
                .metrics
                .timeouts
                .fetch_add(1, Ordering::Relaxed);
            let after = self.timeout.map(format_duration).unwrap_or_default();
            return Poll::Ready(Some(Err(DataFusionError::ResourcesExhausted(format!(
                "query timed out after {after} (moltres.query_timeout / MOLTRES_QUERY_TIMEOUT); \
                 its remote queries were cancelled"
            )))));
        }
        Poll::Pending
    }
}

/// Counts a partition's output and ends it (once).
struct Counted {
    inner: Pin<Box<dyn Stream<Item = DFResult<RecordBatch>> + Send>>,
    schema: SchemaRef,
    run: Arc<QueryRun>,
    done: bool,
}

impl Stream for Counted {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A panic while reading (a reader of a corrupt file, say, or one
        // re-raised from a task the plan spawned) ends this query with an
        // error; the process goes on.
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.poll_next_unpin(cx)
        }));
        let item = match polled {
            Ok(poll) => futures::ready!(poll),
            Err(payload) => Some(Err(DataFusionError::Execution(format!(
                "internal error while running the query: {} (a bug in Moltres or a library it \
                 uses; the session goes on)",
                crate::guard::panic_message(payload.as_ref())
            )))),
        };
        match &item {
            Some(Ok(batch)) => {
                self.run
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                self.run
                    .bytes
                    .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
            }
            Some(Err(e)) => {
                self.run.record_error(e);
                self.done = true;
                self.run.partition_done(true);
            }
            None => {
                self.done = true;
                self.run.partition_done(true);
            }
        }
        Poll::Ready(item)
    }
}

impl RecordBatchStream for Counted {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.run.partition_done(false);
        }
    }
}

impl MetricsSnapshot {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        metric(
            "moltres_queries_total",
            "counter",
            "Statements started.",
            one(self.queries),
        );
        metric(
            "moltres_query_errors_total",
            "counter",
            "Statements that failed.",
            one(self.errors),
        );
        metric(
            "moltres_query_timeouts_total",
            "counter",
            "Queries stopped by the query timeout.",
            one(self.timeouts),
        );
        metric(
            "moltres_queue_timeouts_total",
            "counter",
            "Queries refused after waiting for a slot.",
            one(self.queue_timeouts),
        );
        metric(
            "moltres_queries_cancelled_total",
            "counter",
            "Queries whose reader stopped before the end.",
            one(self.cancelled),
        );
        metric(
            "moltres_queries_running",
            "gauge",
            "Queries running now.",
            one(self.running as u64),
        );
        metric(
            "moltres_queries_waiting",
            "gauge",
            "Queries waiting for a slot now.",
            one(self.waiting as u64),
        );
        metric(
            "moltres_rows_returned_total",
            "counter",
            "Rows returned by statements.",
            one(self.rows_returned),
        );
        metric(
            "moltres_spilled_bytes_total",
            "counter",
            "Bytes spilled to disk.",
            one(self.spilled_bytes),
        );
        let mut buckets: Vec<(String, String)> = self
            .duration_buckets
            .iter()
            .map(|(le, count)| (format!("_bucket{{le=\"{le}\"}}"), count.to_string()))
            .collect();
        buckets.push(("_bucket{le=\"+Inf\"}".into(), self.queries.to_string()));
        let _ = writeln!(
            out,
            "# HELP moltres_query_duration_seconds Statement durations."
        );
        let _ = writeln!(out, "# TYPE moltres_query_duration_seconds histogram");
        for (suffix, value) in buckets {
            let _ = writeln!(out, "moltres_query_duration_seconds{suffix} {value}");
        }
        let finished = self.queries.saturating_sub(self.running as u64);
        let _ = writeln!(
            out,
            "moltres_query_duration_seconds_sum {}\nmoltres_query_duration_seconds_count {finished}",
            self.duration_sum.as_secs_f64()
        );
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "moltres_query_duration_quantile_seconds",
            "gauge",
            "Statement duration quantiles since the session started.",
            [
                ("0.5", self.duration_p50),
                ("0.95", self.duration_p95),
                ("0.99", self.duration_p99),
            ]
            .into_iter()
            .map(|(q, d)| (format!("{{quantile=\"{q}\"}}"), d.as_secs_f64().to_string()))
            .collect(),
        );
        let per_source = |value: &dyn Fn(&SourceMetrics) -> Option<u64>| {
            self.sources
                .iter()
                .filter_map(|s| {
                    value(s).map(|v| (format!("{{source=\"{}\"}}", label(&s.name)), v.to_string()))
                })
                .collect::<Vec<_>>()
        };
        metric(
            "moltres_source_rows_read_total",
            "counter",
            "Rows read from each source.",
            per_source(&|s| Some(s.rows_read)),
        );
        metric(
            "moltres_source_bytes_read_total",
            "counter",
            "Bytes read from each source.",
            per_source(&|s| Some(s.bytes_read)),
        );
        metric(
            "moltres_source_remote_queries_total",
            "counter",
            "Queries and statements sent to each database.",
            per_source(&|s| Some(s.remote_queries)),
        );
        metric(
            "moltres_pool_max_size",
            "gauge",
            "Connections each pool may hold.",
            per_source(&|s| s.pool.map(|p| p.max_size as u64)),
        );
        metric(
            "moltres_pool_connections",
            "gauge",
            "Open connections of each pool.",
            per_source(&|s| s.pool.map(|p| p.size as u64)),
        );
        metric(
            "moltres_pool_idle",
            "gauge",
            "Idle connections of each pool.",
            per_source(&|s| s.pool.map(|p| p.idle as u64)),
        );
        metric(
            "moltres_pool_in_use",
            "gauge",
            "Connections of each pool lent out.",
            per_source(&|s| s.pool.map(|p| p.in_use as u64)),
        );
        metric(
            "moltres_pool_waiting",
            "gauge",
            "Requests waiting for a connection.",
            per_source(&|s| s.pool.map(|p| p.waiting as u64)),
        );
        metric(
            "moltres_pool_acquire_timeouts_total",
            "counter",
            "Requests that gave up waiting for a connection.",
            per_source(&|s| s.pool.map(|p| p.acquire_timeouts)),
        );
        out
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A DataFrame whose execution is observed as the statement `sql`.
pub(crate) fn tag(
    df: datafusion::prelude::DataFrame,
    tag: QueryTag,
) -> datafusion::prelude::DataFrame {
    let (mut state, plan) = df.into_parts();
    state.config_mut().set_extension(Arc::new(tag));
    datafusion::prelude::DataFrame::new(state, plan)
}

/// Ends a statement of [`Observer::run`] as cancelled when its future is
/// dropped before the work ends.
struct Cancelled<'a> {
    observer: &'a Observer,
    info: Option<QueryInfo>,
    started: Instant,
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        if let Some(info) = self.info.take() {
            let outcome = QueryOutcome {
                elapsed: self.started.elapsed(),
                cancelled: true,
                ..Default::default()
            };
            self.observer.finished(&info, &outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_sql("ATTACH 'postgres://app:s3cr%40t@db:5432/x' AS pg"),
            "ATTACH 'postgres://app:***@db:5432/x' AS pg"
        );
        assert_eq!(
            redact_sql("ATTACH 'mysql://root:pw@h/db?sslmode=require' AS my"),
            "ATTACH 'mysql://root:***@h/db?sslmode=require' AS my"
        );
        assert_eq!(
            redact_sql("host=db user=app password=hunter2 dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact_sql("SELECT 'a:b@c' FROM t WHERE url = 'https://example.com/x'"),
            "SELECT 'a:b@c' FROM t WHERE url = 'https://example.com/x'"
        );
    }
}
