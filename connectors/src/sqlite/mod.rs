//! SQLite: `ATTACH 'sqlite:path/to/file.db' AS lite`, `sqlite::memory:`,
//! read-only with `?mode=ro`.
//!
//! * `connection.rs`: URLs, the pool (deadpool-sqlite: rusqlite connections
//!   used on blocking threads), rows streamed into Arrow;
//! * `schema.rs`: schemas, tables and views, declared column types;
//! * `types.rs`: declared types as Arrow types (SQLite's affinity rules),
//!   stored values into Arrow;
//! * `dialect.rs`: the unparser dialect and the pushdown rules.

mod connection;
mod dialect;
mod schema;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableFunctionImpl;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;
use deadpool_sqlite::Pool;

pub use dialect::{SqliteDialect, SqlitePushdown, SqliteWriter};

use crate::remote::{
    ColumnEstimate, PoolStatus, PushdownPolicy, RemoteDatabase, RemoteQueryFunction, RemoteSql,
    RemoteTransaction, RowRanges, TransactionState, WriteMode,
};
use crate::source::{AttachRequest, AttachedSource, SourceKind};

/// The `sqlite:` kind of source.
#[derive(Debug, Default)]
pub struct SqliteKind;

#[async_trait]
impl SourceKind for SqliteKind {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource> {
        let source =
            SqliteSource::open(&request.alias, &request.url, &request.connector_options()).await?;
        let read_only = source.read_only;
        Ok(AttachedSource::database(
            Arc::new(source),
            request,
            read_only,
        ))
    }

    fn table_functions(&self) -> Vec<(String, Arc<dyn TableFunctionImpl>)> {
        let function = RemoteQueryFunction::new("sqlite");
        vec![(function.name(), Arc::new(function))]
    }
}

/// One attached SQLite database.
pub struct SqliteSource {
    name: Arc<str>,
    path: Arc<str>,
    pool: Pool,
    dialect: SqliteDialect,
    pushdown: SqlitePushdown,
    /// `pushdown = off`: nothing is pushed (see [`NothingPushed`](crate::remote::pushdown::NothingPushed)).
    pushdown_enabled: bool,
    /// Opened with `mode=ro`.
    read_only: bool,
    /// The `scan_partitions` and `scan_partition_rows` options.
    scan_partitioning: crate::remote::ScanPartitioning,
    /// Keeps an in-memory database alive while it is attached.
    _keeper: Option<deadpool_sqlite::Object>,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteSource {
    /// Opens the database (it must exist unless `mode=rwc` or `:memory:`).
    pub async fn open(
        name: &str,
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let settings = connection::parse_url(url, options)?;
        let pool = connection::build_pool(name, &settings)?;
        let keeper = pool
            .get()
            .await
            .map_err(|e| connection::pool_error(name, &settings.path, e))?;
        // Opening is lazy in SQLite: read the schema to find a file that is
        // not a database now rather than at the first query.
        let source: Arc<str> = Arc::from(name);
        let check_name = Arc::clone(&source);
        keeper
            .interact(move |c| {
                c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                    .map_err(|e| connection::remote_error(&check_name, e, None))
            })
            .await
            .map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))??;
        Ok(Self {
            name: source,
            path: Arc::from(settings.path.as_str()),
            pool,
            dialect: SqliteDialect {},
            pushdown: SqlitePushdown,
            pushdown_enabled: crate::remote::pushdown::pushdown_enabled(name, url, options)?,
            read_only: settings.read_only,
            scan_partitioning: crate::remote::ScanPartitioning::from_options(name, url, options)?,
            _keeper: (settings.path == ":memory:").then_some(keeper),
        })
    }

    /// Appends (or upserts on `keys`) the rows of `data` in one transaction
    /// (a savepoint of `connection`'s transaction when it is in one).
    async fn write_rows(
        connection: &deadpool_sqlite::Object,
        source: &Arc<str>,
        table: &datafusion::common::TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
        create: Option<String>,
    ) -> Result<u64> {
        use futures::StreamExt;
        // The converters read each column as the table's type.
        let mut data = crate::remote::conform(
            data,
            Arc::clone(&schema),
            format!("writing {source}.{table}"),
        );
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let remote_schema = table.schema().unwrap_or("main").to_string();
        let name = table.table().to_string();
        let keys = mode.upsert_keys().map(<[String]>::to_vec);
        let overwrite = mode.overwrites();
        let writer_source = Arc::clone(source);
        let writer = connection::interact(connection, source, move |c| {
            connection::insert_rows(
                c,
                &writer_source,
                (&remote_schema, &name),
                &columns,
                rx,
                match (&keys, overwrite) {
                    (Some(keys), _) => WriteMode::Upsert(keys),
                    (None, true) => WriteMode::Overwrite,
                    (None, false) => WriteMode::Append,
                },
                create.as_deref(),
            )
        });
        let feeder = async move {
            while let Some(batch) = data.next().await {
                // A failed read drops the sender: the writer rolls back.
                let batch = batch?;
                if tx.send(connection::Feed::Batch(batch)).await.is_err() {
                    return Ok(());
                }
            }
            let _ = tx.send(connection::Feed::End).await;
            Ok::<(), datafusion::common::DataFusionError>(())
        };
        let (written, fed) = futures::join!(writer, feeder);
        fed?;
        written
    }

    async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let name = Arc::clone(&self.name);
        connection::with_connection(&self.pool, &self.name, &self.path, move |c| f(c, &name)).await
    }
}

#[async_trait]
impl RemoteDatabase for SqliteSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    fn pushdown(&self) -> &dyn PushdownPolicy {
        if self.pushdown_enabled {
            &self.pushdown
        } else {
            &crate::remote::pushdown::NothingPushed
        }
    }

    fn sql_writer(&self) -> &dyn crate::remote::SqlWriter {
        &SqliteWriter
    }

    fn default_schema(&self) -> &str {
        "main"
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        self.with_connection(|c, source| schema::schema_names(c, source))
            .await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        let schema = schema.to_string();
        self.with_connection(move |c, source| schema::table_names(c, source, &schema))
            .await
    }

    /// The row count ANALYZE left in `sqlite_stat1` (the first number of
    /// each of the table's entries); before the first ANALYZE, a table's
    /// rows counted up to [`COUNTED_ROWS`](crate::remote::COUNTED_ROWS).
    async fn row_estimate(&self, schema: &str, table: &str) -> Option<u64> {
        let (schema, table) = (schema.to_string(), table.to_string());
        self.with_connection(move |c, _| Ok(schema::row_estimate(c, &schema, &table)))
            .await
            .ok()
            .flatten()
    }

    /// The rowid (see [`schema::row_ranges`]).
    async fn row_ranges(&self, schema: &str, table: &str) -> Option<RowRanges> {
        let (schema, table) = (schema.to_string(), table.to_string());
        self.with_connection(move |c, _| Ok(schema::row_ranges(c, &schema, &table)))
            .await
            .ok()
            .flatten()
    }

    fn scan_partitioning(&self) -> crate::remote::ScanPartitioning {
        self.scan_partitioning
    }

    /// From `sqlite_stat1` (kept by ANALYZE): the first column of an index
    /// holds its rows divided by the rows per value; an `INTEGER PRIMARY
    /// KEY` (the rowid) holds one value per row. Bounds from `min()` and
    /// `max()` of the columns indexes start with (see
    /// [`schema::column_estimates`]).
    async fn column_estimates(
        &self,
        schema: &str,
        table: &str,
        columns: &Schema,
    ) -> HashMap<String, ColumnEstimate> {
        let (schema, table, columns) = (schema.to_string(), table.to_string(), columns.clone());
        self.with_connection(move |c, _| Ok(schema::column_estimates(c, &schema, &table, &columns)))
            .await
            .unwrap_or_default()
    }

    async fn table_schema(&self, schema: &str, table: &str) -> Result<Option<SchemaRef>> {
        let (schema, table) = (schema.to_string(), table.to_string());
        self.with_connection(move |c, source| schema::table_schema(c, source, &schema, &table))
            .await
    }

    async fn query_schema(&self, native: &str) -> Result<SchemaRef> {
        let native = native.to_string();
        self.with_connection(move |c, source| schema::query_schema(c, source, &native))
            .await
    }

    /// A computed column has no declared type: its values are read by the
    /// expected type's rules (an integer count as Int64, ...).
    fn reads_as(&self, remote: &Field, expected: &DataType) -> bool {
        let untyped = remote
            .metadata()
            .get(types::SQLITE_DECLARED)
            .is_none_or(|d| d.is_empty());
        remote.data_type() == expected
            || untyped
                && matches!(
                    expected,
                    DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Boolean
                )
    }

    /// Declared types that read back as the same Arrow type (decimals
    /// become REAL: SQLite keeps nothing more precise).
    fn column_type_sql(&self, data_type: &DataType) -> Option<String> {
        Some(
            match data_type {
                t if t.is_integer() && *t != DataType::UInt64 => "INTEGER",
                DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => "REAL",
                DataType::Boolean => "BOOLEAN",
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT",
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB",
                DataType::Date32 => "DATE",
                DataType::Timestamp(_, None) => "DATETIME",
                _ => return None,
            }
            .to_string(),
        )
    }

    async fn write(
        &self,
        table: &datafusion::common::TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        let connection = self
            .pool
            .get()
            .await
            .map_err(|e| connection::pool_error(&self.name, &self.path, e))?;
        Self::write_rows(&connection, &self.name, table, schema, data, mode, None).await
    }

    async fn create_and_write(
        &self,
        table: &datafusion::common::TableReference,
        columns: &[String],
        schema: SchemaRef,
        data: SendableRecordBatchStream,
    ) -> Result<u64> {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let create = format!(
            "CREATE TABLE {}.{} ({})",
            quote(table.schema().unwrap_or("main")),
            quote(table.table()),
            columns.join(", ")
        );
        // The columns as Moltres reads them back: the rows are converted
        // to those types (decimals to REAL, nanoseconds to microseconds).
        let declared = schema
            .fields()
            .iter()
            .map(|f| {
                types::field(
                    f.name(),
                    &self.column_type_sql(f.data_type()).unwrap_or_default(),
                    None,
                    f.is_nullable(),
                )
            })
            .collect::<Vec<_>>();
        let connection = self
            .pool
            .get()
            .await
            .map_err(|e| connection::pool_error(&self.name, &self.path, e))?;
        Self::write_rows(
            &connection,
            &self.name,
            table,
            Arc::new(Schema::new(declared)),
            data,
            WriteMode::Append,
            Some(create),
        )
        .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(PoolStatus::of_deadpool(self.pool.status(), &self.name))
    }

    fn server_version(&self) -> Option<String> {
        Some(format!("SQLite {}", rusqlite::version()))
    }

    async fn begin(&self) -> Result<Box<dyn RemoteTransaction>> {
        let connection = self
            .pool
            .get()
            .await
            .map_err(|e| connection::pool_error(&self.name, &self.path, e))?;
        let source = Arc::clone(&self.name);
        connection::interact(&connection, &self.name, move |c| {
            c.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| connection::remote_error(&source, e, Some("BEGIN IMMEDIATE")))
        })
        .await?;
        Ok(Box::new(SqliteTransaction {
            connection: Some(connection),
            name: Arc::clone(&self.name),
            state: TransactionState::default(),
        }))
    }

    async fn execute_statement(&self, native: &str) -> Result<u64> {
        let native = native.to_string();
        self.with_connection(move |c, source| {
            c.execute_batch(&native)
                .map_err(|e| connection::remote_error(source, e, Some(&native)))?;
            Ok(c.changes())
        })
        .await
    }

    fn execute(
        &self,
        sql: &RemoteSql,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream> {
        Ok(connection::query_stream(
            self.pool.clone(),
            Arc::clone(&self.name),
            Arc::clone(&self.path),
            sql.as_str().to_string(),
            schema,
            batch_size,
            self.read_only,
        ))
    }
}

/// A transaction on one pooled SQLite connection (`BEGIN IMMEDIATE`: the
/// write lock is taken at the start, so it cannot fail to upgrade later).
struct SqliteTransaction {
    connection: Option<deadpool_sqlite::Object>,
    name: Arc<str>,
    state: TransactionState,
}

impl SqliteTransaction {
    fn connection(&self) -> &deadpool_sqlite::Object {
        self.connection
            .as_ref()
            .expect("the connection is kept until the transaction ends")
    }

    /// Runs `sql` as it is on the transaction's connection.
    async fn batch(&self, sql: String) -> Result<()> {
        let source = Arc::clone(&self.name);
        connection::interact(self.connection(), &self.name, move |c| {
            c.execute_batch(&sql)
                .map_err(|e| connection::remote_error(&source, e, Some(&sql)))
        })
        .await
    }
}

#[async_trait]
impl RemoteTransaction for SqliteTransaction {
    fn source_name(&self) -> &str {
        &self.name
    }

    async fn execute(&mut self, native: &str) -> Result<u64> {
        let native = native.to_string();
        let source = Arc::clone(&self.name);
        let work = connection::interact(self.connection(), &self.name, move |c| {
            let savepoint = c
                .savepoint()
                .map_err(|e| connection::remote_error(&source, e, Some("SAVEPOINT")))?;
            savepoint
                .execute_batch(&native)
                .map_err(|e| connection::remote_error(&source, e, Some(&native)))?;
            let changed = savepoint.changes();
            savepoint
                .commit()
                .map_err(|e| connection::remote_error(&source, e, Some("RELEASE")))?;
            Ok(changed)
        });
        self.state.step(&self.name, work).await
    }

    async fn control(&mut self, native: &str) -> Result<()> {
        self.state
            .step(&self.name, self.batch(native.to_string()))
            .await
    }

    async fn write(
        &mut self,
        table: &datafusion::common::TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        let work = SqliteSource::write_rows(
            self.connection(),
            &self.name,
            table,
            schema,
            data,
            mode,
            None,
        );
        self.state.step(&self.name, work).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.state
            .end(&self.name, false, self.batch("COMMIT".into()))
            .await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.state
            .end(&self.name, true, self.batch("ROLLBACK".into()))
            .await
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            // Closing the connection makes SQLite roll back.
            self.state.on_drop(
                connection,
                |connection| async move {
                    let rolled_back = connection
                        .interact(|c| c.execute_batch("ROLLBACK"))
                        .await
                        .is_ok_and(|r| r.is_ok());
                    if !rolled_back {
                        drop(deadpool_sqlite::Object::take(connection));
                    }
                },
                |connection| drop(deadpool_sqlite::Object::take(connection)),
            );
        }
    }
}
