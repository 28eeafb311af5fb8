//! PostgreSQL: `ATTACH 'postgres://user:pass@host:5432/db' AS pg`.
//!
//! * `connection.rs`: the pool, URL settings, rows streamed into Arrow;
//! * `schema.rs`: schemas, tables and column types from `pg_catalog`;
//! * `types.rs`: PostgreSQL types as Arrow types, binary decoders;
//! * `dialect.rs`: the unparser dialect and the pushdown rules.
//!
//! URL parameters: `sslmode` (`disable`, `prefer`, `require`, `verify-full`)
//! and `sslrootcert`, `application_name`, `connect_timeout`,
//! `statement_timeout` and `pool_timeout` (seconds), `pool_max_size`,
//! `pool_pre_ping`, `unsupported_types` (`error`, `text`, `skip`); each may
//! also be given as an ATTACH option.

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
use deadpool_postgres::Pool;

pub use dialect::{PostgresDialect, PostgresPushdown, PostgresWriter};
pub use schema::UnsupportedTypes;

use crate::remote::{
    ColumnEstimate, PoolStatus, PushdownPolicy, RangeValues, RemoteDatabase, RemoteQueryFunction,
    RemoteSql, RemoteTransaction, RowRanges, ScanGroup, WriteMode,
};
use crate::source::{AttachRequest, AttachedSource, SourceKind};

/// The `postgres://` / `postgresql://` kind of source.
#[derive(Debug, Default)]
pub struct PostgresKind;

#[async_trait]
impl SourceKind for PostgresKind {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource> {
        let source =
            PostgresSource::connect(&request.alias, &request.url, &request.connector_options())
                .await?;
        Ok(AttachedSource::database(Arc::new(source), request, false))
    }

    fn table_functions(&self) -> Vec<(String, Arc<dyn TableFunctionImpl>)> {
        let function = RemoteQueryFunction::new("postgres");
        vec![(function.name(), Arc::new(function))]
    }
}

/// One attached PostgreSQL database.
pub struct PostgresSource {
    name: Arc<str>,
    pool: Pool,
    dialect: PostgresDialect,
    pushdown: PostgresPushdown,
    /// `pushdown = off`: nothing is pushed (see [`NothingPushed`](crate::remote::pushdown::NothingPushed)).
    pushdown_enabled: bool,
    unsupported: UnsupportedTypes,
    server_version: String,
    /// [`RemoteDatabase::aggregate_memory`], read once.
    aggregate_memory: tokio::sync::OnceCell<Option<u64>>,
    /// The `scan_partitions` and `scan_partition_rows` options.
    scan_partitioning: crate::remote::ScanPartitioning,
    /// Whether parallel scans can share a snapshot: TID range scans
    /// (PostgreSQL 14) and `pg_export_snapshot()` work; checked once.
    parallel_scans: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("name", &self.name)
            .field("server_version", &self.server_version)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PostgresSource {
    /// Opens a pool and checks that the server answers (within `connect_timeout`).
    pub async fn connect(
        name: &str,
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let (config, settings) = connection::parse_url(url, options)?;
        let unsupported = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "unsupported_types")
                    .map(|(_, v)| v.into_owned())
            })
            .or_else(|| options.get("unsupported_types").cloned())
            .map(|v| UnsupportedTypes::parse(&v))
            .transpose()?
            .unwrap_or(UnsupportedTypes::Error);
        let pool = connection::build_pool(config, &settings)?;
        let client = pool
            .get()
            .await
            .map_err(|e| connection::pool_error(name, e))?;
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| connection::remote_error(name, e, Some("SHOW server_version")))?;
        let server_version: String = row.get(0);
        drop(client);
        Ok(Self {
            name: Arc::from(name),
            pool,
            dialect: PostgresDialect {},
            pushdown: PostgresPushdown,
            pushdown_enabled: crate::remote::pushdown::pushdown_enabled(name, url, options)?,
            unsupported,
            server_version,
            aggregate_memory: tokio::sync::OnceCell::new(),
            scan_partitioning: crate::remote::ScanPartitioning::from_options(name, url, options)?,
            parallel_scans: tokio::sync::OnceCell::new(),
        })
    }

    /// The server's version, as `SHOW server_version` reports it.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }
}

#[async_trait]
impl RemoteDatabase for PostgresSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn query_schema(&self, native: &str) -> Result<SchemaRef> {
        schema::query_schema(&self.pool, &self.name, native).await
    }

    /// `numeric` results (described without precision) decode into any
    /// decimal type; the decoder refuses values that do not fit.
    fn reads_as(&self, remote: &Field, expected: &DataType) -> bool {
        remote.data_type() == expected
            || remote.metadata().get(types::PG_TYPE).map(String::as_str) == Some("numeric")
                && matches!(
                    expected,
                    DataType::Decimal128(..) | DataType::Decimal256(..)
                )
    }

    fn column_type_sql(&self, data_type: &DataType) -> Option<String> {
        use datafusion::arrow::datatypes::TimeUnit;
        Some(match data_type {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
            DataType::Int32 | DataType::UInt16 => "integer".into(),
            DataType::Int64 | DataType::UInt32 => "bigint".into(),
            DataType::UInt64 => "numeric(20,0)".into(),
            DataType::Float32 => "real".into(),
            DataType::Float64 => "double precision".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
            DataType::Date32 => "date".into(),
            DataType::Time64(TimeUnit::Microsecond) => "time".into(),
            DataType::Timestamp(_, None) => "timestamp".into(),
            DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
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
        connection::copy_in(
            &self.pool,
            &self.name,
            table.schema().unwrap_or("public"),
            table.table(),
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
        _schema: SchemaRef,
        data: SendableRecordBatchStream,
    ) -> Result<u64> {
        connection::create_and_copy_in(
            &self.pool,
            &self.name,
            (table.schema().unwrap_or("public"), table.table()),
            columns,
            data,
        )
        .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(PoolStatus::of_deadpool(self.pool.status(), &self.name))
    }

    fn server_version(&self) -> Option<String> {
        Some(self.server_version.clone())
    }

    async fn begin(&self) -> Result<Box<dyn RemoteTransaction>> {
        Ok(Box::new(
            transaction::PostgresTransaction::begin(&self.pool, Arc::clone(&self.name)).await?,
        ))
    }

    async fn execute_statement(&self, native: &str) -> Result<u64> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| connection::pool_error(&self.name, e))?;
        client
            .execute(native, &[])
            .await
            .map_err(|e| connection::remote_error(&self.name, e, Some(native)).into())
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
        &PostgresWriter
    }

    fn default_schema(&self) -> &str {
        "public"
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        schema::schema_names(&self.pool, &self.name).await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        schema::table_names(&self.pool, &self.name, schema).await
    }

    /// `pg_class.reltuples` (kept by ANALYZE and autovacuum; -1 before the
    /// first, since PostgreSQL 14). For a table never analyzed, its rows
    /// counted up to [`COUNTED_ROWS`](crate::remote::COUNTED_ROWS); past
    /// that, the rows per page of those rows times the table's pages.
    async fn row_estimate(&self, schema: &str, table: &str) -> Option<u64> {
        let client = self.pool.get().await.ok()?;
        let row = client
            .query_opt(
                "SELECT c.reltuples::float8, c.relkind::text, \
                 (pg_catalog.pg_relation_size(c.oid) \
                  / pg_catalog.current_setting('block_size')::int8)::int8 \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await
            .ok()??;
        let rows: f64 = row.get(0);
        if rows >= 0.0 {
            return Some(rows as u64);
        }
        // Views and partitioned tables are not counted: a view may be
        // anything but cheap to read.
        let kind: String = row.get(1);
        if !matches!(kind.as_str(), "r" | "m") {
            return None;
        }
        let pages: i64 = row.get(2);
        let writer = self.sql_writer();
        let name = format!(
            "{}.{}",
            writer.identifier(schema).ok()?,
            writer.identifier(table).ok()?
        );
        let bound = crate::remote::COUNTED_ROWS;
        // The page of the last row counted: its ctid's block number.
        let count = format!(
            "SELECT count(*), coalesce(max((ctid::text::point)[0]), 0)::int8 \
             FROM (SELECT ctid FROM {name} LIMIT {}) t",
            bound + 1
        );
        let row = client.query_one(&count, &[]).await.ok()?;
        let (counted, last_page): (i64, i64) = (row.get(0), row.get(1));
        let counted = u64::try_from(counted).ok()?;
        if counted <= bound {
            return Some(counted);
        }
        let per_page = counted as f64 / (last_page + 1) as f64;
        Some(((per_page * pages as f64) as u64).max(counted))
    }

    /// The table's pages (`ctid` ranges, compared as the hidden system column
    /// `ctid`), for tables and materialized views, when TID range scans
    /// exist (PostgreSQL 14) and a snapshot can be exported and imported
    /// (not on servers that only speak PostgreSQL's protocol).
    async fn row_ranges(&self, schema: &str, table: &str) -> Option<RowRanges> {
        let usable = self
            .parallel_scans
            .get_or_try_init(|| async {
                // A pool error is not remembered: the next lookup asks again.
                let client = self.pool.get().await.map_err(|_| ())?;
                let version = client
                    .query_one(
                        "SELECT pg_catalog.current_setting('server_version_num')::int4",
                        &[],
                    )
                    .await
                    .map(|row| row.get::<_, i32>(0))
                    .unwrap_or(0);
                let exported = client
                    .batch_execute(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                         SELECT pg_catalog.pg_export_snapshot(); ROLLBACK",
                    )
                    .await;
                if exported.is_err() {
                    // Never back to the pool inside a transaction.
                    drop(deadpool_postgres::Object::take(client));
                }
                Ok::<_, ()>(version >= 140_000 && exported.is_ok())
            })
            .await
            .is_ok_and(|usable| *usable);
        if !usable {
            return None;
        }
        let client = self.pool.get().await.ok()?;
        let row = client
            .query_opt(
                "SELECT (pg_catalog.pg_relation_size(c.oid) \
                  / pg_catalog.current_setting('block_size')::int8)::int8 \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'm')",
                &[&schema, &table],
            )
            .await
            .ok()??;
        let pages: i64 = row.get(0);
        Some(RowRanges {
            column: "ctid".to_string(),
            hidden: Some(DataType::Utf8),
            low: 0,
            high: pages.max(1) - 1,
            values: RangeValues::PostgresPages,
            shared_snapshot: true,
        })
    }

    fn scan_partitioning(&self) -> crate::remote::ScanPartitioning {
        self.scan_partitioning
    }

    fn execute_part(
        &self,
        sql: &RemoteSql,
        schema: SchemaRef,
        batch_size: usize,
        group: Arc<ScanGroup>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(connection::query_stream_in(
            self.pool.clone(),
            Arc::clone(&self.name),
            sql.as_str().to_string(),
            schema,
            batch_size,
            Some(group),
        ))
    }

    /// `work_mem` x `hash_mem_multiplier`: what a hash aggregate holds
    /// before it writes batches to disk.
    /// Read on the first table lookup that asks, not once per table.
    async fn aggregate_memory(&self) -> Option<u64> {
        *self
            .aggregate_memory
            .get_or_init(|| async {
                let client = self.pool.get().await.ok()?;
                let row = client
                    .query_one(
                        "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem'))::float8 \
                         * pg_catalog.current_setting('hash_mem_multiplier')::float8",
                        &[],
                    )
                    .await
                    .ok()?;
                let bytes: f64 = row.get(0);
                (bytes > 0.0).then_some(bytes as u64)
            })
            .await
    }

    /// From `pg_stats` (kept by ANALYZE and autovacuum): `n_distinct`
    /// (negative: a fraction of the rows), `null_frac`, and the bounds of
    /// `histogram_bounds` and `most_common_vals` (the histogram leaves the
    /// common values out) for columns with an order Arrow shares.
    async fn column_estimates(
        &self,
        schema: &str,
        table: &str,
        columns: &Schema,
    ) -> HashMap<String, ColumnEstimate> {
        let Ok(client) = self.pool.get().await else {
            return HashMap::new();
        };
        let rows = client
            .query(
                "SELECT s.attname::text, s.n_distinct::float8, c.reltuples::float8, \
                        s.null_frac::float8, s.histogram_bounds::text, s.most_common_vals::text \
                 FROM pg_catalog.pg_stats s \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename \
                 WHERE s.schemaname = $1 AND s.tablename = $2 AND NOT s.inherited",
                &[&schema, &table],
            )
            .await
            .unwrap_or_default();
        rows.iter()
            .filter_map(|row| {
                let name: String = row.try_get(0).ok()?;
                let field = columns.field_with_name(&name).ok()?;
                let (distinct, rows): (Option<f64>, Option<f64>) =
                    (row.try_get(1).ok()?, row.try_get(2).ok()?);
                let count = match (distinct, rows) {
                    (Some(d), Some(rows)) if d < 0.0 => -d * rows,
                    (Some(d), _) => d,
                    _ => 0.0,
                };
                let mut values = Vec::new();
                for i in [4, 5] {
                    if let Ok(Some(text)) = row.try_get::<_, Option<String>>(i) {
                        values.extend(array_elements(&text));
                    }
                }
                let estimate = ColumnEstimate {
                    distinct: (count >= 1.0).then_some(count as u64),
                    null_fraction: row.try_get::<_, Option<f64>>(3).ok()?,
                    ..Default::default()
                }
                .with_bounds_from_text(values.iter().map(String::as_str), field.data_type());
                Some((name, estimate))
            })
            .collect()
    }

    async fn table_schema(&self, schema: &str, table: &str) -> Result<Option<SchemaRef>> {
        schema::table_schema(&self.pool, &self.name, schema, table, self.unsupported).await
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
            sql.as_str().to_string(),
            schema,
            batch_size,
        ))
    }
}

/// The elements of an array's text form (`{1,2}`, `{"a b",c}`) without
/// its NULLs; nested arrays are not split (their elements are not bounds).
fn array_elements(text: &str) -> Vec<String> {
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return Vec::new();
    };
    let mut elements = Vec::new();
    let mut chars = inner.chars();
    loop {
        let mut element = String::new();
        let mut quoted = false;
        let mut ended = true;
        match chars.next() {
            None => break,
            Some('"') => {
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => element.extend(chars.next()),
                        '"' => break,
                        c => element.push(c),
                    }
                }
                // Up to the separator.
                for c in chars.by_ref() {
                    if c == ',' {
                        ended = false;
                        break;
                    }
                }
            }
            Some('{') => return Vec::new(),
            Some(c) => {
                element.push(c);
                for c in chars.by_ref() {
                    if c == ',' {
                        ended = false;
                        break;
                    }
                    element.push(c);
                }
            }
        }
        if quoted || !element.eq_ignore_ascii_case("NULL") {
            elements.push(element);
        }
        if ended {
            break;
        }
    }
    elements
}

#[cfg(test)]
mod tests {
    use super::array_elements;

    #[test]
    fn array_text_is_split_into_elements() {
        assert_eq!(array_elements("{1,2,30}"), ["1", "2", "30"]);
        assert_eq!(
            array_elements(r#"{"a, b","c\"d",NULL,"NULL",e}"#),
            ["a, b", "c\"d", "NULL", "e"]
        );
        assert_eq!(
            array_elements(r#"{"1995-01-01 00:00:00+00"}"#),
            ["1995-01-01 00:00:00+00"]
        );
        assert!(array_elements("{}").is_empty());
        assert!(array_elements("{{1,2},{3,4}}").is_empty());
        assert!(array_elements("not an array").is_empty());
    }
}
