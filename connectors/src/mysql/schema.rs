//! Databases (schemas), tables and column types from `information_schema`,
//! and result columns of a prepared statement.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Result;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::connection::remote_error;
use super::types::{CAST_TO_TEXT, MYSQL_COLLATION, MYSQL_TYPE, arrow_type, decimal};
use crate::remote::{RemoteError, RemoteErrorKind};

/// Databases a user can read, except the server's own.
pub async fn schema_names(conn: &mut Conn, source: &str) -> Result<Vec<String>> {
    let sql = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
               ('information_schema', 'mysql', 'performance_schema', 'sys') ORDER BY 1";
    conn.exec(sql, ())
        .await
        .map_err(|e| remote_error(source, e, Some(sql)))
}

/// Tables and views of `schema`.
pub async fn table_names(conn: &mut Conn, source: &str, schema: &str) -> Result<Vec<String>> {
    let sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1";
    conn.exec(sql, (schema,))
        .await
        .map_err(|e| remote_error(source, e, Some(sql)))
}

/// The columns of `schema.table`, or `None` when it does not exist.
pub async fn table_schema(
    conn: &mut Conn,
    source: &str,
    schema: &str,
    table: &str,
    unsupported: &str,
) -> Result<Option<SchemaRef>> {
    let sql = "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, \
               COLLATION_NAME, IS_NULLABLE FROM information_schema.COLUMNS \
               WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
    let rows: Vec<Row> = conn
        .exec(sql, (schema, table))
        .await
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |i: usize| row.get::<Option<String>, _>(i).flatten();
        let number = |i: usize| row.get::<Option<u64>, _>(i).flatten();
        let name = text(0).unwrap_or_default();
        let data_type = text(1).unwrap_or_default().to_ascii_lowercase();
        let column_type = text(2).unwrap_or_default().to_ascii_lowercase();
        let collation = text(5);
        let nullable = text(6).as_deref() != Some("NO");
        let mut metadata =
            std::collections::HashMap::from([(MYSQL_TYPE.to_string(), column_type.clone())]);
        if let Some(collation) = collation {
            metadata.insert(MYSQL_COLLATION.to_string(), collation.to_ascii_lowercase());
        }
        let arrow = match arrow_type(&data_type, &column_type, number(3), number(4)) {
            Some(t) => t,
            None => match unsupported {
                "text" => {
                    metadata.insert(CAST_TO_TEXT.to_string(), "true".to_string());
                    DataType::Utf8
                }
                "skip" => continue,
                _ => {
                    return Err(RemoteError::new(
                        source,
                        RemoteErrorKind::Data,
                        format!(
                            "column '{name}' of {schema}.{table} has type {column_type}, which \
                             Moltres does not read; attach with unsupported_types=text to read \
                             it as text or unsupported_types=skip to leave it out"
                        ),
                    )
                    .into());
                }
            },
        };
        fields.push(Field::new(name, arrow, nullable).with_metadata(metadata));
    }
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// The result columns of a native query (prepared, not run).
pub async fn query_schema(conn: &mut Conn, source: &str, native: &str) -> Result<SchemaRef> {
    let statement = conn
        .prep(native)
        .await
        .map_err(|e| remote_error(source, e, Some(native)))?;
    let mut fields = Vec::new();
    for column in statement.columns().iter() {
        let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        let binary = column.character_set() == 63;
        let (data_type, kind) = match column.column_type() {
            ColumnType::MYSQL_TYPE_TINY if column.column_length() == 1 && !unsigned => {
                (DataType::Boolean, "tinyint(1)")
            }
            ColumnType::MYSQL_TYPE_TINY if unsigned => (DataType::UInt8, "tinyint"),
            ColumnType::MYSQL_TYPE_TINY => (DataType::Int8, "tinyint"),
            ColumnType::MYSQL_TYPE_SHORT if unsigned => (DataType::UInt16, "smallint"),
            ColumnType::MYSQL_TYPE_SHORT => (DataType::Int16, "smallint"),
            ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG if unsigned => {
                (DataType::UInt32, "int")
            }
            ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => (DataType::Int32, "int"),
            ColumnType::MYSQL_TYPE_LONGLONG if unsigned => (DataType::UInt64, "bigint"),
            ColumnType::MYSQL_TYPE_LONGLONG => (DataType::Int64, "bigint"),
            ColumnType::MYSQL_TYPE_FLOAT => (DataType::Float32, "float"),
            ColumnType::MYSQL_TYPE_DOUBLE => (DataType::Float64, "double"),
            ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => {
                let scale = column.decimals() as u64;
                let length = column.column_length() as u64;
                let precision = length - u64::from(scale > 0) - u64::from(!unsigned);
                (decimal(precision.max(1), scale), "decimal")
            }
            ColumnType::MYSQL_TYPE_DATE => (DataType::Date32, "date"),
            ColumnType::MYSQL_TYPE_DATETIME => {
                (DataType::Timestamp(TimeUnit::Microsecond, None), "datetime")
            }
            ColumnType::MYSQL_TYPE_TIMESTAMP => (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp",
            ),
            ColumnType::MYSQL_TYPE_TIME => (DataType::Time64(TimeUnit::Microsecond), "time"),
            ColumnType::MYSQL_TYPE_YEAR => (DataType::Int16, "year"),
            ColumnType::MYSQL_TYPE_BIT => (DataType::UInt64, "bit"),
            ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
            | ColumnType::MYSQL_TYPE_BLOB
                if binary =>
            {
                (DataType::Binary, "varbinary")
            }
            ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
            | ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_JSON
            | ColumnType::MYSQL_TYPE_ENUM
            | ColumnType::MYSQL_TYPE_SET => (DataType::Utf8, "varchar"),
            other => {
                return Err(RemoteError::new(
                    source,
                    RemoteErrorKind::Data,
                    format!(
                        "column '{}' of the query has type {other:?}, which Moltres does not \
                         read; CAST it to CHAR in the query",
                        column.name_str()
                    ),
                )
                .with_sql(native)
                .into());
            }
        };
        fields.push(
            Field::new(column.name_str(), data_type, true)
                .with_metadata([(MYSQL_TYPE.to_string(), kind.to_string())].into()),
        );
    }
    let _ = conn.close(statement).await;
    Ok(Arc::new(Schema::new(fields)))
}
