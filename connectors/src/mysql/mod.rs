//! MySQL and MariaDB: `ATTACH 'mysql://user:pass@host:3306/db' AS my` (or
//! `mariadb://`).
//!
//! * `connection.rs`: URLs, the pool (mysql_async's), session setup (UTC,
//!   standard string literals), rows streamed over the binary protocol;
//! * `schema.rs`: databases, tables and column types from
//!   `information_schema`;
//! * `types.rs`: MySQL types as Arrow types, values into Arrow;
//! * `dialect.rs`: the unparser dialect and the pushdown rules.
//!
//! URL parameters (or ATTACH options): `sslmode` (`disable`, `require`,
//! `verify-full`), `connect_timeout` (seconds), `pool_max_size`,
//! `pool_idle_timeout`, `pool_max_lifetime` (seconds), `unsupported_types`
//! (`error`, `text`, `skip`).

mod connection;
mod dialect;
mod schema;
mod transaction;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableFunctionImpl;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;
use mysql_async::Pool;
use mysql_async::prelude::Queryable;

pub use connection::filling_prefix;
pub use dialect::{MysqlDialect, MysqlPushdown, MysqlWriter};

use crate::remote::cost::Index;
use crate::remote::{
    ColumnEstimate, PoolStatus, PushdownPolicy, RangeValues, RemoteDatabase, RemoteQueryFunction,
    RemoteSql, RemoteTransaction, RowRanges, WriteMode,
};
use crate::source::{AttachRequest, AttachedSource, SourceKind};

/// A row of MariaDB's `mysql.column_stats`: the column, its bounds as text,
/// its NULL fraction, rows per distinct value, and the table's rows.
type MariaColumnStats = (
    String,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<u64>,
);

/// The `mysql://` / `mariadb://` kind of source.
#[derive(Debug, Default)]
pub struct MysqlKind;

#[async_trait]
impl SourceKind for MysqlKind {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["mysql", "mariadb"]
    }

    async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource> {
        let source =
            MysqlSource::connect(&request.alias, &request.url, &request.connector_options())
                .await?;
        Ok(AttachedSource::database(Arc::new(source), request, false))
    }

    fn table_functions(&self) -> Vec<(String, Arc<dyn TableFunctionImpl>)> {
        let function = RemoteQueryFunction::new("mysql");
        vec![(function.name(), Arc::new(function))]
    }
}

/// One attached MySQL or MariaDB database.
pub struct MysqlSource {
    name: Arc<str>,
    pool: Pool,
    settings: connection::Settings,
    dialect: MysqlDialect,
    pushdown: MysqlPushdown,
    /// `pushdown = off`: nothing is pushed (see [`NothingPushed`](crate::remote::pushdown::NothingPushed)).
    pushdown_enabled: bool,
    server_version: String,
    /// The `scan_partitions` and `scan_partition_rows` options.
    scan_partitioning: crate::remote::ScanPartitioning,
}

impl std::fmt::Debug for MysqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlSource")
            .field("name", &self.name)
            .field("database", &self.settings.database)
            .field("server_version", &self.server_version)
            .finish()
    }
}

impl MysqlSource {
    /// Opens a pool and checks that the server answers (within `connect_timeout`).
    pub async fn connect(
        name: &str,
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let (opts, mut settings) = connection::parse_url(url, options)?;
        settings.opts = Some(opts.clone());
        let pool = Pool::new(opts);
        let mut conn = connection::connect(&pool, name, &settings).await?;
        let server_version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| connection::remote_error(name, e, Some("SELECT VERSION()")))?
            .unwrap_or_default();
        drop(conn);
        Ok(Self {
            name: Arc::from(name),
            pool,
            settings,
            dialect: MysqlDialect::default(),
            pushdown: MysqlPushdown,
            pushdown_enabled: crate::remote::pushdown::pushdown_enabled(name, url, options)?,
            server_version,
            scan_partitioning: crate::remote::ScanPartitioning::from_options(name, url, options)?,
        })
    }

    /// The server's version (`SELECT VERSION()`).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    async fn conn(&self) -> Result<mysql_async::Conn> {
        connection::connect(&self.pool, &self.name, &self.settings).await
    }
}

#[async_trait]
impl RemoteDatabase for MysqlSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mysql"
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
        &MysqlWriter
    }

    fn default_schema(&self) -> &str {
        &self.settings.database
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        schema::schema_names(&mut self.conn().await?, &self.name).await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        schema::table_names(&mut self.conn().await?, &self.name, schema).await
    }

    /// `information_schema.TABLES.TABLE_ROWS` (InnoDB keeps it current as
    /// rows change). When a base table has none or 0 (engines that keep no
    /// count), its rows counted up to
    /// [`COUNTED_ROWS`](crate::remote::COUNTED_ROWS).
    async fn row_estimate(&self, schema: &str, table: &str) -> Option<u64> {
        let mut conn = self.conn().await.ok()?;
        let (rows, kind) = conn
            .exec_first::<(Option<u64>, Option<String>), _, _>(
                "SELECT TABLE_ROWS, TABLE_TYPE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await
            .ok()
            .flatten()?;
        match rows {
            Some(rows) if rows > 0 => return Some(rows),
            _ if kind.as_deref() != Some("BASE TABLE") => return rows,
            _ => {}
        }
        let writer = self.sql_writer();
        let name = format!(
            "{}.{}",
            writer.identifier(schema).ok()?,
            writer.identifier(table).ok()?
        );
        let count = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {}) t",
            crate::remote::COUNTED_ROWS + 1
        );
        conn.query_first::<u64, _>(count).await.ok().flatten()
    }

    /// The first column of the primary key, when it is an integer (InnoDB
    /// keeps rows in primary key order, so a range of it is a range of the
    /// table), with its lowest and highest value (both read from the
    /// key's index).
    async fn row_ranges(&self, schema: &str, table: &str) -> Option<RowRanges> {
        let mut conn = self.conn().await.ok()?;
        let keys: Vec<(String, String)> = conn
            .exec(
                "SELECT k.COLUMN_NAME, c.DATA_TYPE \
                 FROM information_schema.KEY_COLUMN_USAGE k \
                 JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA \
                  AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
                 WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.CONSTRAINT_NAME = 'PRIMARY' \
                  AND k.ORDINAL_POSITION = 1",
                (schema, table),
            )
            .await
            .ok()?;
        let [(column, data_type)] = keys.as_slice() else {
            return None;
        };
        if !matches!(
            data_type.to_ascii_lowercase().as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        ) {
            return None;
        }
        let writer = self.sql_writer();
        let name = writer.identifier(column).ok()?;
        let bounds = format!(
            "SELECT CAST(MIN({name}) AS SIGNED), CAST(MAX({name}) AS SIGNED) FROM {}.{}",
            writer.identifier(schema).ok()?,
            writer.identifier(table).ok()?
        );
        // Values past the signed range (BIGINT UNSIGNED) are not split.
        let (low, high) = conn
            .query_first::<(Option<i64>, Option<i64>), _>(bounds)
            .await
            .ok()??;
        Some(RowRanges {
            column: column.clone(),
            hidden: None,
            low: low?,
            high: high?,
            values: RangeValues::Integers,
            shared_snapshot: false,
        })
    }

    fn scan_partitioning(&self) -> crate::remote::ScanPartitioning {
        self.scan_partitioning
    }

    /// Distinct values: the cardinality of the first column of each index
    /// (`information_schema.STATISTICS`, kept by ANALYZE TABLE). MariaDB's
    /// own statistics (`mysql.column_stats`, kept by ANALYZE TABLE), where
    /// present, add every column's NULL fraction, bounds and distinct
    /// values. The bounds of the other columns that lead an index are read
    /// with `MIN()` and `MAX()` (one index lookup each), for at most
    /// [`BOUNDED_COLUMNS`](crate::remote::BOUNDED_COLUMNS) columns.
    async fn column_estimates(
        &self,
        schema: &str,
        table: &str,
        columns: &Schema,
    ) -> HashMap<String, ColumnEstimate> {
        let Ok(mut conn) = self.conn().await else {
            return HashMap::new();
        };
        let mut estimates: HashMap<String, ColumnEstimate> = HashMap::new();
        // With whether a B-tree index (where MIN() and MAX() are one
        // lookup) starts with the column, and whether the primary key
        // (InnoDB's clustered index) does.
        let indexed: Vec<(String, Option<u64>, Option<i64>, Option<i64>)> = conn
            .exec(
                "SELECT COLUMN_NAME, MAX(CARDINALITY), MAX(INDEX_TYPE = 'BTREE'), \
                        MAX(INDEX_NAME = 'PRIMARY') \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 \
                 GROUP BY COLUMN_NAME",
                (schema, table),
            )
            .await
            .unwrap_or_default();
        for (name, count, _, primary) in &indexed {
            let estimate = estimates.entry(name.clone()).or_default();
            if let Some(count) = count.filter(|c| *c > 0) {
                estimate.distinct = Some(count);
            }
            estimate.index = Some(if *primary == Some(1) {
                Index::Primary
            } else {
                Index::Secondary
            });
        }
        // MariaDB only; elsewhere (MySQL) the table is missing.
        let kept: Vec<MariaColumnStats> = conn
            .exec(
                "SELECT c.column_name, c.min_value, c.max_value, \
                        CAST(c.nulls_ratio AS DOUBLE), CAST(c.avg_frequency AS DOUBLE), \
                        CAST(t.cardinality AS UNSIGNED) \
                 FROM mysql.column_stats c \
                 LEFT JOIN mysql.table_stats t \
                   ON t.db_name = c.db_name AND t.table_name = c.table_name \
                 WHERE c.db_name = ? AND c.table_name = ?",
                (schema, table),
            )
            .await
            .unwrap_or_default();
        for (name, min, max, nulls, frequency, rows) in kept {
            let Ok(field) = columns.field_with_name(&name) else {
                continue;
            };
            let estimate = estimates.entry(name).or_default();
            estimate.null_fraction = nulls.filter(|n| (0.0..=1.0).contains(n));
            if let (Some(frequency), Some(rows)) = (frequency, rows)
                && frequency >= 1.0
            {
                let non_null = rows as f64 * (1.0 - estimate.null_fraction.unwrap_or(0.0));
                estimate.distinct = Some((non_null / frequency).max(1.0) as u64);
            }
            *estimate = std::mem::take(estimate).with_bounds(
                min.as_deref(),
                max.as_deref(),
                field.data_type(),
            );
        }
        let writer = self.sql_writer();
        let (Ok(schema), Ok(table)) = (writer.identifier(schema), writer.identifier(table)) else {
            return estimates;
        };
        let unbounded = indexed
            .iter()
            .filter(|(_, _, btree, _)| *btree == Some(1))
            .filter_map(|(name, ..)| Some((name, columns.field_with_name(name).ok()?)))
            .filter(|(name, field)| {
                crate::remote::ranged(field.data_type())
                    && estimates.get(*name).is_none_or(|e| e.min.is_none())
            })
            .take(crate::remote::BOUNDED_COLUMNS)
            .collect::<Vec<_>>();
        for (name, field) in unbounded {
            let Ok(column) = writer.identifier(name) else {
                continue;
            };
            let bounds = format!(
                "SELECT CAST(MIN({column}) AS CHAR), CAST(MAX({column}) AS CHAR) FROM {schema}.{table}"
            );
            if let Ok(Some((min, max))) = conn
                .query_first::<(Option<String>, Option<String>), _>(bounds)
                .await
            {
                let estimate = estimates.entry(name.clone()).or_default();
                *estimate = std::mem::take(estimate).with_bounds(
                    min.as_deref(),
                    max.as_deref(),
                    field.data_type(),
                );
            }
        }
        estimates.retain(|_, e| !e.is_empty());
        estimates
    }

    async fn table_schema(&self, schema: &str, table: &str) -> Result<Option<SchemaRef>> {
        schema::table_schema(
            &mut self.conn().await?,
            &self.name,
            schema,
            table,
            &self.settings.unsupported_types,
        )
        .await
    }

    async fn query_schema(&self, native: &str) -> Result<SchemaRef> {
        schema::query_schema(&mut self.conn().await?, &self.name, native).await
    }

    /// Decimals are described with the precision of the expression; any
    /// decimal type reads them (the decoder refuses values that do not fit).
    fn reads_as(&self, remote: &Field, expected: &DataType) -> bool {
        remote.data_type() == expected
            || remote.metadata().get(types::MYSQL_TYPE).map(String::as_str) == Some("decimal")
                && matches!(
                    expected,
                    DataType::Decimal128(..) | DataType::Decimal256(..)
                )
    }

    fn column_type_sql(&self, data_type: &DataType) -> Option<String> {
        use datafusion::arrow::datatypes::TimeUnit;
        Some(match data_type {
            DataType::Int8 => "TINYINT".into(),
            DataType::Int16 => "SMALLINT".into(),
            DataType::Int32 => "INT".into(),
            DataType::Int64 => "BIGINT".into(),
            DataType::UInt8 => "TINYINT UNSIGNED".into(),
            DataType::UInt16 => "SMALLINT UNSIGNED".into(),
            DataType::UInt32 => "INT UNSIGNED".into(),
            DataType::UInt64 => "BIGINT UNSIGNED".into(),
            DataType::Float32 => "FLOAT".into(),
            DataType::Float64 => "DOUBLE".into(),
            DataType::Boolean => "BOOLEAN".into(),
            // Binary collation without padding: compares as DataFusion does.
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin".into()
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "LONGBLOB".into(),
            DataType::Date32 => "DATE".into(),
            DataType::Time64(TimeUnit::Microsecond) => "TIME(6)".into(),
            // Microseconds, as PostgreSQL's: finer digits are cut.
            DataType::Timestamp(_, None) => "DATETIME(6)".into(),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) if *p <= 65 => {
                format!("DECIMAL({p},{s})")
            }
            _ => return None,
        })
    }

    async fn write(
        &self,
        table: &datafusion::common::TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        if let WriteMode::Upsert([]) = mode {
            return datafusion::common::plan_err!("upsert needs at least one key column");
        }
        connection::insert(
            &self.pool,
            &self.name,
            &self.settings,
            (
                table.schema().unwrap_or(&self.settings.database),
                table.table(),
            ),
            &schema,
            data,
            mode,
        )
        .await
    }

    async fn create_and_write(
        &self,
        table: &datafusion::common::TableReference,
        columns: &[String],
        schema: SchemaRef,
        data: SendableRecordBatchStream,
    ) -> Result<u64> {
        connection::create_and_insert(
            &self.pool,
            &self.name,
            &self.settings,
            (
                table.schema().unwrap_or(&self.settings.database),
                table.table(),
            ),
            columns,
            &schema,
            data,
        )
        .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        use std::sync::atomic::Ordering::Relaxed;
        let metrics = self.pool.metrics();
        Some(PoolStatus {
            max_size: self.settings.pool_max_size,
            size: metrics.connection_count.load(Relaxed),
            idle: metrics.connections_in_pool.load(Relaxed),
            in_use: metrics.connections_in_use.load(Relaxed),
            waiting: metrics.active_wait_requests.load(Relaxed),
            acquire_timeouts: crate::remote::acquire_timeouts(&self.name),
        })
    }

    fn server_version(&self) -> Option<String> {
        Some(self.server_version.clone())
    }

    async fn begin(&self) -> Result<Box<dyn RemoteTransaction>> {
        Ok(Box::new(
            transaction::MysqlTransaction::begin(
                self.conn().await?,
                Arc::clone(&self.name),
                self.settings.database.clone(),
            )
            .await?,
        ))
    }

    async fn execute_statement(&self, native: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        conn.query_drop(native)
            .await
            .map_err(|e| connection::remote_error(&self.name, e, Some(native)))?;
        Ok(conn.affected_rows())
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
            self.settings.clone(),
            sql.as_str().to_string(),
            schema,
            batch_size,
        ))
    }
}
