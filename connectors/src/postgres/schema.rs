//! Introspection: schemas, tables and column types from `pg_catalog`.
//!
//! The catalog queries are constant text with bound parameters.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use deadpool_postgres::Pool;

use super::connection::{pool_error, remote_error};
use super::types::{
    CAST_TO_TEXT, Mapping, PG_COLLATION, PG_DETERMINISTIC, PG_TYPE, PgColumnType, mapping,
};
use crate::remote::{RemoteError, RemoteErrorKind};

/// What to do with a column whose type has no Arrow mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedTypes {
    /// Fail, naming the column and type (the default).
    Error,
    /// Read it as `CAST(col AS TEXT)`.
    Text,
    /// Leave the column out.
    Skip,
}

impl UnsupportedTypes {
    /// Parses the `unsupported_types` source option.
    pub fn parse(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "text" => Ok(Self::Text),
            "skip" => Ok(Self::Skip),
            other => Err(DataFusionError::Configuration(format!(
                "unsupported_types must be error, text or skip, got '{other}'"
            ))),
        }
    }
}

const SCHEMAS_SQL: &str = "SELECT nspname::text FROM pg_catalog.pg_namespace \
     WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
       AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
     ORDER BY 1";

const TABLES_SQL: &str = "SELECT c.relname::text FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1";

const COLUMNS_SQL: &str = "SELECT a.attname::text, t.typname::text, t.typtype::text, a.atttypmod, \
            a.attnotnull, et.typname::text, et.typtype::text, \
            CASE WHEN co.collname = 'default' \
                 THEN (SELECT datcollate::text FROM pg_catalog.pg_database WHERE datname = current_database()) \
                 ELSE co.collname::text END, \
            COALESCE((to_jsonb(co) ->> 'collisdeterministic')::boolean, co.oid IS NOT NULL) \
     FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_catalog.pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
     LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
     ORDER BY a.attnum";

/// Schemas a user can see, without the system ones.
pub async fn schema_names(pool: &Pool, source: &str) -> Result<Vec<String>> {
    let client = pool.get().await.map_err(|e| pool_error(source, e))?;
    let rows = client
        .query(SCHEMAS_SQL, &[])
        .await
        .map_err(|e| remote_error(source, e, Some(SCHEMAS_SQL)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tables, views, materialized views and foreign tables of `schema`.
pub async fn table_names(pool: &Pool, source: &str, schema: &str) -> Result<Vec<String>> {
    let client = pool.get().await.map_err(|e| pool_error(source, e))?;
    let rows = client
        .query(TABLES_SQL, &[&schema])
        .await
        .map_err(|e| remote_error(source, e, Some(TABLES_SQL)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The Arrow schema of `schema.table`; `None` when there is no such relation.
pub async fn table_schema(
    pool: &Pool,
    source: &str,
    schema: &str,
    table: &str,
    unsupported: UnsupportedTypes,
) -> Result<Option<SchemaRef>> {
    let client = pool.get().await.map_err(|e| pool_error(source, e))?;
    table_schema_on(&client, source, schema, table, unsupported).await
}

/// [`table_schema`] read on `client` (inside its transaction, if any).
pub async fn table_schema_on(
    client: &tokio_postgres::Client,
    source: &str,
    schema: &str,
    table: &str,
    unsupported: UnsupportedTypes,
) -> Result<Option<SchemaRef>> {
    let rows = client
        .query(COLUMNS_SQL, &[&schema, &table])
        .await
        .map_err(|e| remote_error(source, e, Some(COLUMNS_SQL)))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::new();
    for row in &rows {
        let Some(name) = row.get::<_, Option<String>>(0) else {
            continue; // a relation without columns
        };
        let element: Option<String> = row.get(5);
        let column_type = PgColumnType {
            name: row.get(1),
            kind: row.get(2),
            typmod: row.get(3),
            element: element.map(|e| (e, row.get::<_, Option<String>>(6).unwrap_or_default())),
        };
        let not_null: bool = row.get(4);
        let (data_type, cast) = match mapping(&column_type) {
            Some(Mapping::Native(dt)) => (dt, false),
            Some(Mapping::CastToText) => (datafusion::arrow::datatypes::DataType::Utf8, true),
            None => match unsupported {
                UnsupportedTypes::Text => (datafusion::arrow::datatypes::DataType::Utf8, true),
                UnsupportedTypes::Skip => continue,
                UnsupportedTypes::Error => {
                    return Err(RemoteError::new(
                        source,
                        RemoteErrorKind::Data,
                        format!(
                            "column {schema}.{table}.{name} has type {} which Moltres cannot read; \
                             attach with (unsupported_types 'text') or (unsupported_types 'skip')",
                            column_type.name
                        ),
                    )
                    .into());
                }
            },
        };
        let mut metadata = std::collections::HashMap::new();
        if cast {
            metadata.insert(CAST_TO_TEXT.to_string(), "true".to_string());
        }
        // What the pushdown rules need to know about text columns.
        metadata.insert(PG_TYPE.to_string(), column_type.name.clone());
        if let Some(collation) = row.get::<_, Option<String>>(7) {
            metadata.insert(PG_COLLATION.to_string(), collation);
        }
        // Before PostgreSQL 12 every collation was deterministic (the
        // column did not exist).
        if row.get::<_, Option<bool>>(8) == Some(true) {
            metadata.insert(PG_DETERMINISTIC.to_string(), "true".to_string());
        }
        let field = Field::new(name, data_type, !not_null).with_metadata(metadata);
        fields.push(field);
    }
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// The result columns of a native query, from the server's description of
/// the prepared statement (nothing runs). Types read through a text cast in
/// tables cannot be cast inside someone else's query: they are an error
/// naming the column, suggesting `::text` in the query.
pub async fn query_schema(pool: &Pool, source: &str, native: &str) -> Result<SchemaRef> {
    use tokio_postgres::types::Kind;
    let client = pool.get().await.map_err(|e| pool_error(source, e))?;
    let statement = client
        .prepare(native)
        .await
        .map_err(|e| remote_error(source, e, Some(native)))?;
    let kind_code = |kind: &Kind| match kind {
        Kind::Enum(_) => "e",
        Kind::Domain(_) => "d",
        Kind::Composite(_) => "c",
        Kind::Range(_) | Kind::Multirange(_) => "r",
        Kind::Pseudo => "p",
        _ => "b",
    };
    let mut fields = Vec::new();
    for column in statement.columns() {
        let pg_type = column.type_();
        let column_type = PgColumnType {
            name: pg_type.name().to_string(),
            kind: kind_code(pg_type.kind()).to_string(),
            // The wire description has no precision: numeric reads as exact text.
            typmod: -1,
            element: match pg_type.kind() {
                Kind::Array(element) => Some((
                    element.name().to_string(),
                    kind_code(element.kind()).to_string(),
                )),
                _ => None,
            },
        };
        match mapping(&column_type) {
            Some(Mapping::Native(data_type)) => fields.push(
                Field::new(column.name(), data_type, true)
                    .with_metadata([(PG_TYPE.to_string(), pg_type.name().to_string())].into()),
            ),
            _ => {
                return Err(RemoteError::new(
                    source,
                    RemoteErrorKind::Data,
                    format!(
                        "column '{}' of the query has type {}, which Moltres cannot read directly; \
                         cast it in the query (e.g. {}::text)",
                        column.name(),
                        pg_type.name(),
                        column.name()
                    ),
                )
                .with_sql(native)
                .into());
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}
