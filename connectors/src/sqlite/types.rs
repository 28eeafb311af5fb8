//! SQLite declared types as Arrow types, and stored values into Arrow.
//!
//! A column's Arrow type comes from its declared type by SQLite's own
//! affinity rules (<https://sqlite.org/datatype3.html>, section 3.1), never
//! from the values stored in it:
//!
//! | declared type | affinity | Arrow type | stored values read |
//! |---|---|---|---|
//! | contains `INT` | INTEGER | Int64 | integers (a real with a fraction, text or a blob is an error) |
//! | contains `CHAR`, `CLOB` or `TEXT` | TEXT | Utf8 | text; integers and reals as their text |
//! | contains `BLOB` | BLOB | Binary | blobs and text |
//! | contains `REAL`, `FLOA` or `DOUB` | REAL | Float64 | reals and integers |
//! | `BOOLEAN`, `BOOL` | NUMERIC | Boolean | integers 0 and 1 |
//! | `DATE` | NUMERIC | Date32 | text `YYYY-MM-DD` |
//! | `DATETIME`, `TIMESTAMP` | NUMERIC | Timestamp(µs) | text `YYYY-MM-DD HH:MM:SS[.ffffff]` (also with `T`, an offset or `Z`; years 1677 to 2262), as UTC |
//! | other (`NUMERIC`, `DECIMAL(p,s)`, ...) | NUMERIC | Float64 | integers and reals (SQLite keeps nothing more precise) |
//! | none (`CREATE TABLE t (a)`, expressions) | BLOB | Utf8 | text; integers and reals as their text |
//!
//! A stored value outside its column's row gives an error naming the
//! column, the value's storage class and, for a table, the row's `rowid`.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, TimeUnit, TimestampMicrosecondType,
};
use rusqlite::types::ValueRef;

/// Field metadata: the column's declared type as written (empty when none).
pub const SQLITE_DECLARED: &str = "moltres.sqlite_declared";
/// Field metadata: the column's collation (`BINARY`, `NOCASE`, `RTRIM`, ...).
pub const SQLITE_COLLATION: &str = "moltres.sqlite_collation";
/// Field metadata: `schema.table` the column belongs to (for error messages).
pub const SQLITE_TABLE: &str = "moltres.sqlite_table";

/// The Arrow type of a column declared as `declared` (empty: no type).
pub fn arrow_type(declared: &str) -> DataType {
    let upper = declared.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    if upper.contains("INT") {
        DataType::Int64
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        DataType::Utf8
    } else if upper.contains("BLOB") {
        DataType::Binary
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        DataType::Float64
    } else if upper.trim().is_empty() {
        DataType::Utf8
    } else {
        match base {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "DATE" => DataType::Date32,
            "DATETIME" | "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
            _ => DataType::Float64,
        }
    }
}

/// A field for a column declared as `declared` with `collation`.
pub fn field(name: &str, declared: &str, collation: Option<&str>, nullable: bool) -> Field {
    let mut metadata =
        std::collections::HashMap::from([(SQLITE_DECLARED.to_string(), declared.to_string())]);
    if let Some(collation) = collation {
        metadata.insert(SQLITE_COLLATION.to_string(), collation.to_ascii_uppercase());
    }
    Field::new(name, arrow_type(declared), nullable).with_metadata(metadata)
}

/// Reads one column's stored values into an Arrow array.
#[derive(Debug)]
pub enum Decoder {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// The storage class of a value, as SQLite's `typeof()` names it.
pub fn storage_class(value: &ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "integer",
        ValueRef::Real(_) => "real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "blob",
    }
}

fn shown(value: &ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let short: String = text.chars().take(40).collect();
            format!("'{short}'")
        }
        ValueRef::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

impl Decoder {
    /// A decoder into `data_type`; `None` for types SQLite columns never map to.
    pub fn new(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Utf8 => Self::Utf8(StringBuilder::new()),
            DataType::Binary => Self::Binary(BinaryBuilder::new()),
            DataType::Boolean => Self::Boolean(BooleanBuilder::new()),
            DataType::Date32 => Self::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new())
            }
            _ => return None,
        })
    }

    /// The storage classes this decoder reads (for finding a bad row).
    pub fn accepted(&self) -> &'static [&'static str] {
        match self {
            Self::Int64(_) | Self::Boolean(_) => &["integer"],
            Self::Float64(_) => &["integer", "real"],
            Self::Utf8(_) => &["integer", "real", "text"],
            Self::Binary(_) => &["text", "blob"],
            Self::Date32(_) | Self::Timestamp(_) => &["text"],
        }
    }

    /// Appends one stored value; the error says what did not fit.
    pub fn push(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        let misfit = |what: &str| {
            format!(
                "{} value {} does not fit {what}",
                storage_class(&value),
                shown(&value)
            )
        };
        match (self, value) {
            (Self::Int64(b), ValueRef::Null) => b.append_null(),
            (Self::Float64(b), ValueRef::Null) => b.append_null(),
            (Self::Utf8(b), ValueRef::Null) => b.append_null(),
            (Self::Binary(b), ValueRef::Null) => b.append_null(),
            (Self::Boolean(b), ValueRef::Null) => b.append_null(),
            (Self::Date32(b), ValueRef::Null) => b.append_null(),
            (Self::Timestamp(b), ValueRef::Null) => b.append_null(),
            (Self::Int64(b), ValueRef::Integer(i)) => b.append_value(i),
            (Self::Float64(b), ValueRef::Real(f)) => b.append_value(f),
            (Self::Float64(b), ValueRef::Integer(i)) => b.append_value(i as f64),
            (Self::Utf8(b), ValueRef::Text(t)) => {
                b.append_value(std::str::from_utf8(t).map_err(|_| misfit("text (not UTF-8)"))?)
            }
            (Self::Utf8(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Self::Utf8(b), ValueRef::Real(f)) => b.append_value(f.to_string()),
            (Self::Binary(b), ValueRef::Blob(v) | ValueRef::Text(v)) => b.append_value(v),
            (Self::Boolean(b), ValueRef::Integer(i @ (0 | 1))) => b.append_value(i == 1),
            (Self::Date32(b), ValueRef::Text(t)) => {
                let days = std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| Date32Type::parse(s.trim()))
                    .ok_or_else(|| misfit("a DATE (YYYY-MM-DD text)"))?;
                b.append_value(days)
            }
            (Self::Timestamp(b), ValueRef::Text(t)) => {
                let micros = std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| TimestampMicrosecondType::parse(s.trim()))
                    .ok_or_else(|| misfit("a TIMESTAMP (YYYY-MM-DD HH:MM:SS text)"))?;
                b.append_value(micros)
            }
            (Self::Int64(_), _) => return Err(misfit("an INTEGER column")),
            (Self::Float64(_), _) => return Err(misfit("a REAL column")),
            (Self::Utf8(_), _) => return Err(misfit("a TEXT column")),
            (Self::Binary(_), _) => return Err(misfit("a BLOB column")),
            (Self::Boolean(_), _) => return Err(misfit("a BOOLEAN column (0 or 1)")),
            (Self::Date32(_), _) => return Err(misfit("a DATE column (YYYY-MM-DD text)")),
            (Self::Timestamp(_), _) => return Err(misfit("a TIMESTAMP column (text)")),
        }
        Ok(())
    }

    /// The values so far, as an array; the decoder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
        }
    }

    /// Values pending.
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Utf8(b) => b.len(),
            Self::Binary(b) => b.len(),
            Self::Boolean(b) => b.len(),
            Self::Date32(b) => b.len(),
            Self::Timestamp(b) => b.len(),
        }
    }

    /// No values pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value at `row` of an Arrow column as a SQLite value to bind.
pub fn to_sqlite(column: &ArrayRef, row: usize) -> Result<rusqlite::types::Value, String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
        UInt32Type, UInt64Type,
    };
    use rusqlite::types::Value;
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Int8 => Value::Integer(column.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Integer(column.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Integer(column.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Integer(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Integer(column.as_primitive::<UInt8Type>().value(row) as i64),
        DataType::UInt16 => Value::Integer(column.as_primitive::<UInt16Type>().value(row) as i64),
        DataType::UInt32 => Value::Integer(column.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::UInt64 => {
            let v = column.as_primitive::<UInt64Type>().value(row);
            Value::Integer(
                i64::try_from(v).map_err(|_| format!("{v} is beyond SQLite's integers"))?,
            )
        }
        DataType::Float32 => Value::Real(column.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::Real(column.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Integer(column.as_boolean().value(row) as i64),
        DataType::Utf8 => Value::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::Utf8View => Value::Text(column.as_string_view().value(row).to_string()),
        DataType::LargeUtf8 => Value::Text(column.as_string::<i64>().value(row).to_string()),
        DataType::Binary => Value::Blob(column.as_binary::<i32>().value(row).to_vec()),
        DataType::BinaryView => Value::Blob(column.as_binary_view().value(row).to_vec()),
        // Dates and times as the ISO text SQLite's date functions read.
        DataType::Date32 | DataType::Timestamp(_, _) | DataType::Decimal128(..) => {
            let text = datafusion::arrow::util::display::array_value_to_string(column, row)
                .map_err(|e| e.to_string())?;
            match column.data_type() {
                DataType::Decimal128(..) => Value::Real(
                    text.parse()
                        .map_err(|_| format!("decimal {text} is not a number"))?,
                ),
                _ => Value::Text(text.replace('T', " ")),
            }
        }
        other => {
            return Err(format!(
                "values of type {other} cannot be written to SQLite"
            ));
        }
    })
}

impl crate::remote::ColumnBuilder for Decoder {
    fn finish(&mut self) -> ArrayRef {
        Decoder::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        for (declared, expected) in [
            ("INTEGER", DataType::Int64),
            ("tinyint(1)", DataType::Int64),
            ("BIGINT UNSIGNED", DataType::Int64),
            ("VARCHAR(20)", DataType::Utf8),
            ("NATIVE CHARACTER(70)", DataType::Utf8),
            ("CLOB", DataType::Utf8),
            ("BLOB", DataType::Binary),
            ("", DataType::Utf8),
            ("DOUBLE PRECISION", DataType::Float64),
            ("FLOAT", DataType::Float64),
            ("REAL", DataType::Float64),
            ("NUMERIC", DataType::Float64),
            ("DECIMAL(10,5)", DataType::Float64),
            ("BOOLEAN", DataType::Boolean),
            ("DATE", DataType::Date32),
            ("DATETIME", DataType::Timestamp(TimeUnit::Microsecond, None)),
            // SQLite's rule 1 wins: "POINT" contains INT.
            ("POINT", DataType::Int64),
        ] {
            assert_eq!(arrow_type(declared), expected, "{declared}");
        }
    }

    #[test]
    fn misfits_are_errors() {
        let mut d = Decoder::new(&DataType::Int64).unwrap();
        assert!(d.push(ValueRef::Integer(3)).is_ok());
        let err = d.push(ValueRef::Real(1.5)).unwrap_err();
        assert_eq!(err, "real value 1.5 does not fit an INTEGER column");
        let mut d = Decoder::new(&DataType::Date32).unwrap();
        assert!(d.push(ValueRef::Text(b"2024-02-29")).is_ok());
        assert!(d.push(ValueRef::Text(b"yesterday")).is_err());
        let mut d = Decoder::new(&DataType::Boolean).unwrap();
        assert!(d.push(ValueRef::Integer(2)).is_err());
    }
}
