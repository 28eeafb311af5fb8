//! What every SQL database connector shares.
//!
//! A connector implements [`RemoteDatabase`] (connect, list, describe, run SQL
//! as a stream of Arrow batches) and a [`PushdownPolicy`]; this module turns
//! that into DataFusion objects:
//!
//! * [`RemoteCatalog`] / [`RemoteSchema`]: schemas and tables, listed lazily
//!   and cached until [`RemoteCatalog::refresh`];
//! * [`RemoteTable`]: a `TableProvider` that asks the policy which filters the
//!   database computes exactly as DataFusion does, and plans a scan;
//! * [`RemoteScanExec`]: the scan, whose EXPLAIN line shows the source and the
//!   exact SQL it sends;
//! * [`RemoteSql`]: SQL text that can only be made from a logical plan by
//!   DataFusion's `Unparser` with the source's dialect, never by pasting
//!   strings together.

mod average;
mod catalog;
pub mod cost;
mod dml;
mod error;
mod estimates;
mod exec;
mod federation;
mod grouping;
mod implied;
mod join_order;
mod partitions;
mod passthrough;
mod plans;
pub mod pushdown;
mod runtime_filter;
mod scalar_window;
mod semi_join;
mod sql;
mod stream;
mod table;
mod topk;
mod transaction;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result, TableReference};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;

pub use catalog::{RemoteCatalog, RemoteSchema};
pub use dml::RemoteStatementExec;
pub use error::{RemoteError, RemoteErrorKind};
pub use estimates::{
    BOUNDED_COLUMNS, ColumnEstimate, filtered_rows, ranged, selectivity, table_statistics,
};
pub use exec::{RemoteScanExec, ScanParts};
pub use federation::{FederatingQueryPlanner, RemoteQueryNode, federate};
pub use partitions::{
    PARTITION_ROWS, PartTicket, RangeValues, RowRanges, ScanGroup, ScanPartitioning, part_count,
    pool_has_spare,
};
pub use passthrough::{RemoteQueryFunction, RemoteQueryTable, RemoteSources, remote_database};
pub use pushdown::{Capability, PushdownPolicy};

/// How rows are written into a table.
#[derive(Debug, Clone, Copy)]
pub enum WriteMode<'a> {
    /// Added to the rows there.
    Append,
    /// Replacing every row, in one transaction.
    Overwrite,
    /// Added, or replacing the other columns of rows with the same keys.
    Upsert(&'a [String]),
}

impl<'a> WriteMode<'a> {
    /// The key columns of an upsert.
    pub fn upsert_keys(self) -> Option<&'a [String]> {
        match self {
            WriteMode::Upsert(keys) => Some(keys),
            _ => None,
        }
    }

    /// Whether the table's rows go first.
    pub fn overwrites(self) -> bool {
        matches!(self, WriteMode::Overwrite)
    }
}
pub use implied::ImplyThroughCastKeys;
pub use join_order::{JoinSameSourceFirst, JoinSmallTablesFirst};
pub use scalar_window::ScalarSubqueryAsWindow;
pub use semi_join::PushSemiJoinDown;
pub use sql::{
    RemoteSql, SqlWriter, Written, doubled, hex, read_back_plain_or_hex, seal, unwritable, verify,
};
pub use stream::{
    BatchClock, BatchSender, ColumnBuilder, FLUSH_AFTER, batch_channel, conform, decoders,
    finish_batch, record_batch,
};
pub use table::{RemoteTable, sink_source};
pub use topk::RemoteTopK;
pub use transaction::{OPERATION_SAVEPOINT, RemoteTransaction, TransactionState};

/// Field metadata key marking a column the database sends as text: the scan
/// selects `CAST(column AS TEXT)` (types with no Arrow mapping of their own).
pub const CAST_TO_TEXT: &str = "moltres.cast_to_text";

/// The state of a source's connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may hold.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Connections lent out.
    pub in_use: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// Requests that gave up waiting (`pool_timeout`), since the process
    /// started, for sources of this name.
    pub acquire_timeouts: u64,
}

/// The most connections a pool takes (`pool_max_size`): pools allocate for
/// their size up front, and a size of a billion aborted the process.
pub const MAX_POOL_SIZE: usize = 10_000;

/// A `pool_max_size` option: a whole number from 1 to [`MAX_POOL_SIZE`].
pub fn pool_size_option(value: &str) -> Result<usize> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
        .ok_or_else(|| {
            datafusion::common::DataFusionError::Configuration(format!(
                "pool_max_size must be a whole number from 1 to {MAX_POOL_SIZE}, got '{value}'"
            ))
        })
}

/// The longest duration any setting takes (timeouts, lifetimes): a year.
/// Longer ones are refused, since adding them to a clock's `Instant` would
/// overflow.
pub const LONGEST_DURATION: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

static CLEANUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A cleanup running in the background (dropping the half-filled table of
/// a cancelled `CREATE TABLE ... AS`), counted while it lives.
#[derive(Debug)]
pub struct Cleanup(());

impl Cleanup {
    /// Counts a cleanup until the value is dropped.
    pub fn start() -> Self {
        CLEANUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Cleanup(())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        CLEANUPS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Waits until no background cleanup runs, at most `limit`; whether none
/// does. A process about to exit (the shell) calls it so that a cancelled
/// statement's cleanup is not cut off.
pub async fn cleanups_done(limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while CLEANUPS.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}

/// A duration as a person reads it: `3 s`, `0.5 s`, `1.25 s`.
pub fn format_seconds(d: std::time::Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A URL parameter or option given in seconds (`2`, `0.5`), positive and at
/// most [`LONGEST_DURATION`].
pub fn seconds_option(name: &str, value: &str) -> Result<std::time::Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && *s <= LONGEST_DURATION.as_secs_f64())
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            datafusion::common::DataFusionError::Configuration(format!(
                "{name} must be a positive number of seconds up to {} (a year), got '{value}'",
                LONGEST_DURATION.as_secs()
            ))
        })
}

impl PoolStatus {
    /// The status of a `deadpool` pool of source `source`.
    pub fn of_deadpool(status: deadpool_postgres::Status, source: &str) -> Self {
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
            acquire_timeouts: acquire_timeouts(source),
        }
    }
}

static ACQUIRE_TIMEOUTS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, u64>>> =
    std::sync::LazyLock::new(Default::default);

/// Counts a request of `source` that gave up waiting for a connection.
pub fn count_acquire_timeout(source: &str) {
    if let Ok(mut counts) = ACQUIRE_TIMEOUTS.lock() {
        *counts.entry(source.to_string()).or_default() += 1;
    }
}

/// Requests of sources named `source` that gave up waiting for a connection.
pub fn acquire_timeouts(source: &str) -> u64 {
    ACQUIRE_TIMEOUTS
        .lock()
        .map(|counts| counts.get(source).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// Most rows counted to estimate the size of a table its database keeps no
/// statistics for (a PostgreSQL table never analyzed, a SQLite file never
/// `ANALYZE`d): the count stops there, reading at most this many rows, and
/// the estimate past it is extrapolated (PostgreSQL: from the pages those
/// rows took and the table's size; SQLite: `max(rowid)`).
pub const COUNTED_ROWS: u64 = 100_000;

/// A database reachable over SQL.
#[async_trait]
pub trait RemoteDatabase: Debug + Send + Sync + 'static {
    /// The alias it is attached as (for messages and EXPLAIN).
    fn source_name(&self) -> &str;

    /// The kind of database (`postgres`, ...), as in `<kind>_query(...)`.
    fn kind(&self) -> &'static str;

    /// How plans are rendered as this database's SQL.
    fn dialect(&self) -> &dyn Dialect;

    /// How names and string values are written into this database's SQL.
    fn sql_writer(&self) -> &dyn SqlWriter;

    /// Which expressions the database computes exactly as DataFusion does.
    fn pushdown(&self) -> &dyn PushdownPolicy;

    /// The schema two-part names resolve to (`public`, the MySQL database, `main`).
    fn default_schema(&self) -> &str;

    /// Schemas with tables a user can read.
    async fn schema_names(&self) -> Result<Vec<String>>;

    /// Tables and views of `schema`.
    async fn table_names(&self, schema: &str) -> Result<Vec<String>>;

    /// The Arrow schema of `schema.table`, or `None` when it does not exist.
    async fn table_schema(&self, schema: &str, table: &str) -> Result<Option<SchemaRef>>;

    /// The result columns of a native query, without running it.
    async fn query_schema(&self, native: &str) -> Result<SchemaRef>;

    /// Whether a result column the database describes as `remote` (from
    /// [`query_schema`](Self::query_schema)) can be read as `expected`.
    /// By default only when the Arrow types are the same.
    fn reads_as(&self, remote: &Field, expected: &DataType) -> bool {
        remote.data_type() == expected
    }

    /// The column type `CREATE TABLE ... AS SELECT` gives a column of Arrow
    /// type `data_type`, or `None` when the database has no faithful one.
    fn column_type_sql(&self, _data_type: &DataType) -> Option<String> {
        None
    }

    /// Runs a native statement (DDL, DML); returns the rows affected.
    async fn execute_statement(&self, native: &str) -> Result<u64>;

    /// Writes the rows of `data` (with the table's columns, `schema`) into
    /// `table` as `mode` says, in one transaction, streaming; returns the
    /// rows written. On any error nothing is written: appended rows are not
    /// there, an overwrite keeps the old rows, an upsert changes nothing.
    /// Upserts replace the other columns of rows whose keys exist
    /// (PostgreSQL and SQLite `ON CONFLICT (keys) DO UPDATE`, MySQL `ON
    /// DUPLICATE KEY UPDATE`).
    async fn write(
        &self,
        table: &TableReference,
        _schema: SchemaRef,
        _data: SendableRecordBatchStream,
        _mode: WriteMode<'_>,
    ) -> Result<u64> {
        datafusion::common::not_impl_err!(
            "writing to {} tables ({}.{table}) is not supported",
            self.kind(),
            self.source_name()
        )
    }

    /// Creates `table` with `columns` (column definitions in the database's
    /// SQL, `name type [NOT NULL]`, each name sealed by its writer) and
    /// writes the rows of `data` (with columns `schema`) into it, all or
    /// nothing: after an error, a dropped future (a query timeout, Ctrl-C)
    /// or a process killed halfway, the table does not exist, or exists
    /// with every row. PostgreSQL and SQLite create and fill in one
    /// transaction; MySQL, whose DDL commits, fills a table under a
    /// temporary name and renames it. Returns the rows written.
    async fn create_and_write(
        &self,
        table: &TableReference,
        _columns: &[String],
        _schema: SchemaRef,
        _data: SendableRecordBatchStream,
    ) -> Result<u64> {
        datafusion::common::not_impl_err!(
            "creating {} tables ({}.{table}) is not supported",
            self.kind(),
            self.source_name()
        )
    }

    /// The state of the connection pool, where there is one.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// The server's version (as it reports it).
    fn server_version(&self) -> Option<String> {
        None
    }

    /// About how many rows `schema.table` holds, from the database's own
    /// statistics, or, for a table (not a view) the database keeps none for
    /// yet (never analyzed), its rows counted up to [`COUNTED_ROWS`] and
    /// extrapolated past them (`None` when neither is possible, or on any
    /// error: this only guides join order and hash-table sides).
    async fn row_estimate(&self, _schema: &str, _table: &str) -> Option<u64> {
        None
    }

    /// What the database's own statistics say of the columns of
    /// `schema.table` (whose columns are `columns`), by name: distinct
    /// values, the fraction of NULLs, the smallest and largest values (see
    /// the `estimates` module). Only the columns it keeps statistics for;
    /// empty when it keeps none, or on any error. With the row estimate
    /// they estimate what a filter keeps (`o_orderdate < DATE
    /// '1995-03-15'`) and what a semi join keeps (TPC-H Q20: `partsupp`
    /// rows whose part is one of a few filtered parts).
    async fn column_estimates(
        &self,
        _schema: &str,
        _table: &str,
        _columns: &Schema,
    ) -> HashMap<String, ColumnEstimate> {
        HashMap::new()
    }

    /// About how many bytes one grouping query may hold in memory on the
    /// server before it spills to disk (PostgreSQL: `work_mem` x
    /// `hash_mem_multiplier`); `None` when unknown or unbounded. A grouping
    /// whose hash table would be far larger stays local when it reduces its
    /// input little (see the `grouping` module).
    async fn aggregate_memory(&self) -> Option<u64> {
        None
    }

    /// A column whose ranges split `schema.table` into parts read at once
    /// (see the `partitions` module), with its current bounds; `None` when
    /// the table has none or on any error (the table is then read as one
    /// query).
    async fn row_ranges(&self, _schema: &str, _table: &str) -> Option<RowRanges> {
        None
    }

    /// How this source's scans are split (its `scan_partitions` and
    /// `scan_partition_rows` options).
    fn scan_partitioning(&self) -> ScanPartitioning {
        ScanPartitioning::OFF
    }

    /// Runs one part of a parallel scan whose [`RowRanges`] share a
    /// snapshot, like [`execute`](Self::execute), in the snapshot of
    /// `group` (the other parts' group), taking connections as
    /// [`ScanGroup`] says. Only called when [`row_ranges`](Self::row_ranges)
    /// gave `shared_snapshot`.
    fn execute_part(
        &self,
        sql: &RemoteSql,
        schema: SchemaRef,
        batch_size: usize,
        _group: Arc<ScanGroup>,
    ) -> Result<SendableRecordBatchStream> {
        self.execute(sql, schema, batch_size)
    }

    /// One round trip on a pooled connection (`SELECT 1`).
    async fn ping(&self) -> Result<()> {
        self.execute_statement("SELECT 1").await.map(|_| ())
    }

    /// Starts a transaction on a connection of its own (see
    /// [`RemoteTransaction`]).
    async fn begin(&self) -> Result<Box<dyn RemoteTransaction>> {
        datafusion::common::not_impl_err!(
            "{} databases ({}) do not support transactions",
            self.kind(),
            self.source_name()
        )
    }

    /// Runs `sql` and streams its rows as batches of at most `batch_size` rows
    /// with `schema`. Dropping the stream cancels the query on the server.
    fn execute(
        &self,
        sql: &RemoteSql,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream>;
}
