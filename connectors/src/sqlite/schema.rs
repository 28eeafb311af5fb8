//! Schemas (`main` and attached databases), tables, views and their
//! declared column types.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::Result;
use rusqlite::types::Value;

use super::connection::remote_error;
use super::types::{SQLITE_TABLE, field};
use crate::remote::ColumnEstimate;

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Whether `schema.table` is a table (not a view).
fn is_table(connection: &rusqlite::Connection, schema: &str, table: &str) -> bool {
    let kind = format!(
        "SELECT type FROM {}.sqlite_schema WHERE name = ?1",
        quote(schema)
    );
    connection
        .query_row(&kind, [table], |r| r.get::<_, String>(0))
        .is_ok_and(|kind| kind == "table")
}

/// See [`RemoteDatabase::row_estimate`](crate::remote::RemoteDatabase::row_estimate):
/// `sqlite_stat1`'s count, else, for a table, a bounded count (past the
/// bound, `max(rowid)` when larger: rowids grow by one per insert unless
/// rows were deleted).
pub fn row_estimate(connection: &rusqlite::Connection, schema: &str, table: &str) -> Option<u64> {
    let stat = format!(
        "SELECT max(CAST(stat AS INTEGER)) FROM {}.sqlite_stat1 WHERE tbl = ?1",
        quote(schema)
    );
    let analyzed = connection
        .query_row(&stat, [table], |r| r.get::<_, Option<i64>>(0))
        .ok()
        .flatten();
    if let Some(rows) = analyzed {
        return u64::try_from(rows).ok();
    }
    if !is_table(connection, schema, table) {
        return None;
    }
    let bound = crate::remote::COUNTED_ROWS;
    let name = format!("{}.{}", quote(schema), quote(table));
    let count = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {})",
        bound + 1
    );
    let counted = u64::try_from(
        connection
            .query_row(&count, [], |r| r.get::<_, i64>(0))
            .ok()?,
    )
    .ok()?;
    if counted <= bound {
        return Some(counted);
    }
    // A WITHOUT ROWID table has no rowid: the count is a lower bound.
    let rowid = connection
        .query_row(&format!("SELECT max(rowid) FROM {name}"), [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok());
    Some(rowid.map_or(counted, |n| n.max(counted)))
}

/// `main` and the databases attached to it (not `temp`).
pub fn schema_names(connection: &rusqlite::Connection, source: &str) -> Result<Vec<String>> {
    let sql = "SELECT name FROM pragma_database_list WHERE name <> 'temp' ORDER BY seq";
    let mut statement = connection
        .prepare(sql)
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    Ok(names)
}

/// Tables and views of `schema` (not SQLite's own `sqlite_*` tables).
pub fn table_names(
    connection: &rusqlite::Connection,
    source: &str,
    schema: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT name FROM {}.sqlite_schema WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        quote(schema)
    );
    let mut statement = connection
        .prepare(&sql)
        .map_err(|e| remote_error(source, e, Some(&sql)))?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| remote_error(source, e, Some(&sql)))?;
    Ok(names)
}

/// The columns of `schema.table` from their declared types, or `None` when
/// there is no such table or view.
pub fn table_schema(
    connection: &rusqlite::Connection,
    source: &str,
    schema: &str,
    table: &str,
) -> Result<Option<SchemaRef>> {
    let sql = "SELECT name, type, \"notnull\", hidden FROM pragma_table_xinfo(?1, ?2) ORDER BY cid";
    let mut statement = connection
        .prepare(sql)
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    let columns = statement
        .query_map([table, schema], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| remote_error(source, e, Some(sql)))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(columns.len());
    for (name, declared, not_null, hidden) in columns {
        // Hidden columns of virtual tables are not selected by `*`.
        if hidden == 1 {
            continue;
        }
        // The collation of a view's column is not known: none recorded.
        let collation = connection
            .column_metadata(Some(schema), table, &name)
            .ok()
            .and_then(|m| m.1.map(|c| c.to_string_lossy().into_owned()));
        let f = field(&name, &declared, collation.as_deref(), !not_null);
        let mut metadata = f.metadata().clone();
        metadata.insert(SQLITE_TABLE.to_string(), format!("{schema}.{table}"));
        fields.push(f.with_metadata(metadata));
    }
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// The result columns of a native query, from the declared types of the
/// columns it selects (an expression has none: read as text).
pub fn query_schema(
    connection: &rusqlite::Connection,
    source: &str,
    native: &str,
) -> Result<SchemaRef> {
    let statement = connection
        .prepare(native)
        .map_err(|e| remote_error(source, e, Some(native)))?;
    let fields = statement
        .columns()
        .iter()
        .map(|c| field(c.name(), c.decl_type().unwrap_or(""), None, true))
        .collect::<Vec<_>>();
    Ok(Arc::new(Schema::new(fields)))
}

/// Distinct values per column from `sqlite_stat1` (see
/// [`column_estimates`]); `schema` is quoted already.
fn distinct_estimates(
    c: &rusqlite::Connection,
    schema: &str,
    table: &str,
) -> rusqlite::Result<Vec<(String, u64)>> {
    let stats: Vec<(Option<String>, String)> = c
        .prepare(&format!(
            "SELECT idx, stat FROM \"{schema}\".sqlite_stat1 WHERE tbl = ?1"
        ))?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let numbers = |stat: &str| -> Vec<u64> {
        stat.split_whitespace()
            .map_while(|n| n.parse().ok())
            .collect()
    };
    let rows = stats
        .iter()
        .filter_map(|(_, stat)| numbers(stat).first().copied())
        .max();
    let mut distinct = Vec::new();
    for (index, stat) in &stats {
        let numbers = numbers(stat);
        let (Some(index), [rows, per_value, ..]) = (index, numbers.as_slice()) else {
            continue;
        };
        let first: Option<String> = c
            .query_row(
                &format!(
                    "SELECT name FROM pragma_index_info(?1, '{}') WHERE seqno = 0",
                    schema.replace('\'', "''")
                ),
                [index],
                |r| r.get(0),
            )
            .ok();
        if let Some(column) = first
            && *per_value > 0
        {
            distinct.push((column, rows / per_value));
        }
    }
    // The rowid alias: the one primary key column, declared INTEGER.
    let keys: Vec<(String, String)> = c
        .prepare(&format!(
            "SELECT name, type FROM pragma_table_info(?1, '{}') WHERE pk > 0",
            schema.replace('\'', "''")
        ))?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let (Some(rows), [(name, declared)]) = (rows, keys.as_slice())
        && declared.eq_ignore_ascii_case("INTEGER")
        && !distinct.iter().any(|(c, _)| c == name)
    {
        distinct.push((name.clone(), rows));
    }
    Ok(distinct)
}

/// See [`RemoteDatabase::column_estimates`](crate::remote::RemoteDatabase::column_estimates):
/// distinct values from `sqlite_stat1` (see [`distinct_estimates`]), and the
/// bounds of the columns an index starts with (or the `INTEGER PRIMARY
/// KEY`), read with `min()` and `max()`, one index lookup each. SQLite
/// keeps no count of NULLs.
pub fn column_estimates(
    c: &rusqlite::Connection,
    schema: &str,
    table: &str,
    columns: &Schema,
) -> HashMap<String, ColumnEstimate> {
    let mut estimates: HashMap<String, ColumnEstimate> = HashMap::new();
    for (name, distinct) in
        distinct_estimates(c, &schema.replace('"', "\"\""), table).unwrap_or_default()
    {
        estimates.entry(name).or_default().distinct = Some(distinct);
    }
    for (name, distinct) in sampled_distinct(c, schema, table, columns, &estimates) {
        estimates.entry(name).or_default().distinct = Some(distinct);
    }
    let leading = leading_columns(c, schema, table).unwrap_or_default();
    let ranged = leading
        .iter()
        .filter_map(|name| Some((name, columns.field_with_name(name).ok()?)))
        .filter(|(_, field)| crate::remote::ranged(field.data_type()))
        .take(crate::remote::BOUNDED_COLUMNS);
    for (name, field) in ranged {
        let mut values: Vec<Option<String>> = Vec::new();
        // One aggregate per query: SQLite answers `min(x)` from an index
        // only when it is the query's one aggregate.
        for bound in ["min", "max"] {
            let sql = format!(
                "SELECT {bound}({}) FROM {}.{}",
                quote(name),
                quote(schema),
                quote(table)
            );
            values.push(match c.query_row(&sql, [], |r| r.get::<_, Value>(0)) {
                Ok(Value::Integer(n)) => Some(n.to_string()),
                Ok(Value::Real(n)) => Some(n.to_string()),
                Ok(Value::Text(text)) => Some(text),
                _ => None,
            });
        }
        let estimate = estimates.entry(name.clone()).or_default();
        *estimate = std::mem::take(estimate).with_bounds(
            values[0].as_deref(),
            values[1].as_deref(),
            field.data_type(),
        );
    }
    estimates.retain(|_, e| !e.is_empty());
    estimates
}

/// Rows read by [`sampled_distinct`].
const SAMPLED_ROWS: usize = 10_000;

/// Most columns [`sampled_distinct`] counts.
const SAMPLED_COLUMNS: usize = 32;

/// Distinct values of the columns no index counts (`sqlite_stat1` has
/// only indexes), from the table's first [`SAMPLED_ROWS`] rows: one query,
/// `count(DISTINCT ..)` per column. All of a table that small; else only
/// a column whose sample repeats each value ten times on average, whose
/// other values are few (a type, a brand, a status: TPC-H's `p_type` has
/// 150 of 200,000 parts, where a filter without statistics is taken to keep
/// a tenth). A column of many values gets no estimate from a sample.
fn sampled_distinct(
    c: &rusqlite::Connection,
    schema: &str,
    table: &str,
    columns: &Schema,
    known: &HashMap<String, ColumnEstimate>,
) -> Vec<(String, u64)> {
    let names: Vec<&String> = columns
        .fields()
        .iter()
        .map(|f| f.name())
        .filter(|name| known.get(*name).is_none_or(|e| e.distinct.is_none()))
        .take(SAMPLED_COLUMNS)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let counts: Vec<String> = quoted
        .iter()
        .map(|q| format!("count(DISTINCT {q})"))
        .collect();
    let sql = format!(
        "SELECT count(*), {} FROM (SELECT {} FROM {}.{} LIMIT {SAMPLED_ROWS})",
        counts.join(", "),
        quoted.join(", "),
        quote(schema),
        quote(table)
    );
    let Ok(row) = c.query_row(&sql, [], |r| {
        (0..=names.len())
            .map(|i| r.get::<_, i64>(i))
            .collect::<rusqlite::Result<Vec<i64>>>()
    }) else {
        return Vec::new();
    };
    let Some((&sampled, distinct)) = row.split_first() else {
        return Vec::new();
    };
    let whole = usize::try_from(sampled).is_ok_and(|n| n < SAMPLED_ROWS);
    names
        .into_iter()
        .zip(distinct)
        .filter(|(_, d)| **d > 0 && (whole || **d * 10 <= sampled))
        .map(|(name, d)| (name.clone(), *d as u64))
        .collect()
}

/// The columns that whole (not partial) indexes of `schema.table` start
/// with, and its `INTEGER PRIMARY KEY`, if it has one.
fn leading_columns(
    c: &rusqlite::Connection,
    schema: &str,
    table: &str,
) -> rusqlite::Result<Vec<String>> {
    let literal = schema.replace('\'', "''");
    let mut names: Vec<String> = c
        .prepare(&format!(
            "SELECT ii.name FROM pragma_index_list(?1, '{literal}') AS il, \
                    pragma_index_info(il.name, '{literal}') AS ii \
             WHERE il.partial = 0 AND ii.seqno = 0 AND ii.name IS NOT NULL"
        ))?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let keys: Vec<(String, String)> = c
        .prepare(&format!(
            "SELECT name, type FROM pragma_table_info(?1, '{literal}') WHERE pk > 0"
        ))?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let [(name, declared)] = keys.as_slice()
        && declared.eq_ignore_ascii_case("INTEGER")
        && is_table(c, schema, table)
    {
        names.push(name.clone());
    }
    names.dedup();
    Ok(names)
}

/// See [`RemoteDatabase::row_ranges`](crate::remote::RemoteDatabase::row_ranges):
/// the rowid of a table that has one (not a view or a `WITHOUT ROWID`
/// table), under the first of its names (`rowid`, `_rowid_`, `oid`) that
/// no column of the table takes.
pub fn row_ranges(
    connection: &rusqlite::Connection,
    schema: &str,
    table: &str,
) -> Option<crate::remote::RowRanges> {
    if !is_table(connection, schema, table) {
        return None;
    }
    let mut columns = connection
        .prepare("SELECT name FROM pragma_table_info(?1, ?2)")
        .ok()?;
    let names: Vec<String> = columns
        .query_map([table, schema], |r| r.get::<_, String>(0))
        .ok()?
        .collect::<rusqlite::Result<_>>()
        .ok()?;
    let alias = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !names.iter().any(|n| n.eq_ignore_ascii_case(alias)))?;
    // Qualified, so a table without a rowid is an error, never the
    // string 'rowid' (an unknown quoted name is a string in SQLite).
    let bounds = format!(
        "SELECT min(t.{alias}), max(t.{alias}) FROM {}.{} AS t",
        quote(schema),
        quote(table)
    );
    let (low, high) = connection
        .query_row(&bounds, [], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .ok()?;
    Some(crate::remote::RowRanges {
        column: alias.to_string(),
        hidden: Some(datafusion::arrow::datatypes::DataType::Int64),
        low: low?,
        high: high?,
        values: crate::remote::RangeValues::Integers,
        shared_snapshot: false,
    })
}
