//! MySQL/MariaDB column types as Arrow types, and binary-protocol values
//! into Arrow.
//!
//! | MySQL type | Arrow type |
//! |---|---|
//! | `tinyint(1)`, `boolean` | Boolean (nonzero is true) |
//! | `tinyint`, `smallint`, `mediumint`, `int`, `bigint` | Int8, Int16, Int32, Int32, Int64 |
//! | the same `unsigned` | UInt8, UInt16, UInt32, UInt32, UInt64 (no overflow) |
//! | `decimal(p,s)` | Decimal128(p,s); p > 38: Decimal256(p,s) |
//! | `float`, `double` | Float32, Float64 |
//! | `char`, `varchar`, `*text`, `enum`, `set`, `json` | Utf8 (collation recorded) |
//! | `binary`, `varbinary`, `*blob` | Binary |
//! | `date` | Date32 |
//! | `datetime(fsp)` | Timestamp(µs) |
//! | `timestamp(fsp)` | Timestamp(µs, UTC): sessions run with `time_zone = '+00:00'` |
//! | `time(fsp)` | Time64(µs); a value outside 00:00:00 to 23:59:59.999999 is an error |
//! | `year` | Int16 |
//! | `bit(n)` | UInt64 |
//!
//! Other types (spatial, ...) are an error naming the column, unless the
//! source is attached with `unsupported_types=text` (read through
//! `CAST(column AS CHAR)`) or `skip`. Zero dates (`0000-00-00`) are an error.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit, i256};
use mysql_async::Value;

pub use crate::remote::CAST_TO_TEXT;

/// Field metadata: the column's full MySQL type (`varchar(20)`, `int unsigned`).
pub const MYSQL_TYPE: &str = "moltres.mysql_type";
/// Field metadata: the column's collation (`utf8mb4_general_ci`, ...).
pub const MYSQL_COLLATION: &str = "moltres.mysql_collation";

/// The Arrow type of a column from `information_schema.COLUMNS`: its
/// `DATA_TYPE`, `COLUMN_TYPE`, numeric precision and scale. `None` for
/// types without a mapping.
pub fn arrow_type(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> Option<DataType> {
    let unsigned = column_type.contains("unsigned");
    Some(match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => DataType::Boolean,
        "boolean" | "bool" => DataType::Boolean,
        "tinyint" if unsigned => DataType::UInt8,
        "tinyint" => DataType::Int8,
        "smallint" if unsigned => DataType::UInt16,
        "smallint" => DataType::Int16,
        "mediumint" | "int" | "integer" if unsigned => DataType::UInt32,
        "mediumint" | "int" | "integer" => DataType::Int32,
        "bigint" if unsigned => DataType::UInt64,
        "bigint" => DataType::Int64,
        "decimal" | "numeric" => decimal(precision.unwrap_or(10), scale.unwrap_or(0)),
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => DataType::Utf8,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            DataType::Binary
        }
        "date" => DataType::Date32,
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "year" => DataType::Int16,
        "bit" => DataType::UInt64,
        _ => return None,
    })
}

/// `decimal(p,s)` as Arrow.
pub fn decimal(precision: u64, scale: u64) -> DataType {
    let (p, s) = (precision.clamp(1, 76) as u8, scale.min(76) as i8);
    if p <= 38 {
        DataType::Decimal128(p, s)
    } else {
        DataType::Decimal256(p, s)
    }
}

/// A decimal's text (`-12.50`) as an integer scaled by `scale`; digits
/// beyond the scale are an error, never dropped.
pub fn scaled_decimal(text: &str, scale: i8) -> Result<i256, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale.max(0) as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.is_empty() && fraction.is_empty()
    {
        return Err(format!("decimal '{text}' does not fit scale {scale}"));
    }
    let mut value = i256::ZERO;
    let ten = i256::from_i128(10);
    let padded = format!("{fraction:0<width$}", width = scale.max(0) as usize);
    for b in whole.bytes().chain(padded.bytes()) {
        value = value
            .checked_mul(ten)
            .and_then(|v| v.checked_add(i256::from_i128((b - b'0') as i128)))
            .ok_or_else(|| format!("decimal '{text}' is too large"))?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads one column's values into an Arrow array.
#[derive(Debug)]
pub enum Decoder {
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, i8),
    Decimal256(Decimal256Builder, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time64(Time64MicrosecondBuilder),
}

fn shown(value: &Value) -> String {
    match value {
        Value::Bytes(b) => {
            let text = String::from_utf8_lossy(b);
            format!("'{}'", text.chars().take(40).collect::<String>())
        }
        other => format!("{other:?}"),
    }
}

impl Decoder {
    /// A decoder into `data_type`, or `None` when no MySQL value reads as it.
    pub fn new(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Boolean => Self::Boolean(BooleanBuilder::new()),
            DataType::Int8 => Self::Int8(Int8Builder::new()),
            DataType::Int16 => Self::Int16(Int16Builder::new()),
            DataType::Int32 => Self::Int32(Int32Builder::new()),
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::UInt8 => Self::UInt8(UInt8Builder::new()),
            DataType::UInt16 => Self::UInt16(UInt16Builder::new()),
            DataType::UInt32 => Self::UInt32(UInt32Builder::new()),
            DataType::UInt64 => Self::UInt64(UInt64Builder::new()),
            DataType::Float32 => Self::Float32(Float32Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Decimal128(p, s) => Self::Decimal128(
                Decimal128Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
                *s,
            ),
            DataType::Decimal256(p, s) => Self::Decimal256(
                Decimal256Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
                *s,
            ),
            DataType::Utf8 => Self::Utf8(StringBuilder::new()),
            DataType::Binary => Self::Binary(BinaryBuilder::new()),
            DataType::Date32 => Self::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone()))
            }
            DataType::Time64(TimeUnit::Microsecond) => {
                Self::Time64(Time64MicrosecondBuilder::new())
            }
            _ => return None,
        })
    }

    /// Appends one value; the error says what did not fit.
    pub fn push(&mut self, value: &Value) -> Result<(), String> {
        let misfit = |what: &str| format!("value {} does not fit {what}", shown(value));
        macro_rules! integer {
            ($b:expr, $t:ty) => {{
                let v: $t = match value {
                    Value::Int(i) => (*i).try_into().map_err(|_| misfit(stringify!($t)))?,
                    Value::UInt(u) => (*u).try_into().map_err(|_| misfit(stringify!($t)))?,
                    Value::Bytes(b) => std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| misfit(stringify!($t)))?,
                    _ => return Err(misfit(stringify!($t))),
                };
                $b.append_value(v)
            }};
        }
        if matches!(value, Value::NULL) {
            self.push_null();
            return Ok(());
        }
        match self {
            Self::Boolean(b) => match value {
                Value::Int(i) => b.append_value(*i != 0),
                Value::UInt(u) => b.append_value(*u != 0),
                _ => return Err(misfit("a boolean")),
            },
            Self::Int8(b) => integer!(b, i8),
            Self::Int16(b) => integer!(b, i16),
            Self::Int32(b) => integer!(b, i32),
            Self::Int64(b) => integer!(b, i64),
            Self::UInt8(b) => integer!(b, u8),
            Self::UInt16(b) => integer!(b, u16),
            Self::UInt32(b) => integer!(b, u32),
            Self::UInt64(b) => match value {
                // BIT(n) arrives as big-endian bytes.
                Value::Bytes(bytes) if bytes.len() <= 8 => {
                    b.append_value(bytes.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64))
                }
                _ => integer!(b, u64),
            },
            Self::Float32(b) => match value {
                Value::Float(f) => b.append_value(*f),
                Value::Double(f) => b.append_value(*f as f32),
                _ => return Err(misfit("a float")),
            },
            Self::Float64(b) => match value {
                Value::Double(f) => b.append_value(*f),
                Value::Float(f) => b.append_value(*f as f64),
                Value::Int(i) => b.append_value(*i as f64),
                Value::UInt(u) => b.append_value(*u as f64),
                _ => return Err(misfit("a double")),
            },
            Self::Decimal128(b, scale) => {
                let text = decimal_text(value).ok_or_else(|| misfit("a decimal"))?;
                let v = scaled_decimal(&text, *scale)?;
                b.append_value(v.to_i128().ok_or_else(|| misfit("a decimal"))?)
            }
            Self::Decimal256(b, scale) => {
                let text = decimal_text(value).ok_or_else(|| misfit("a decimal"))?;
                b.append_value(scaled_decimal(&text, *scale)?)
            }
            Self::Utf8(b) => match value {
                Value::Bytes(bytes) => b.append_value(
                    std::str::from_utf8(bytes).map_err(|_| misfit("text (not UTF-8)"))?,
                ),
                Value::Int(i) => b.append_value(i.to_string()),
                Value::UInt(u) => b.append_value(u.to_string()),
                Value::Double(f) => b.append_value(f.to_string()),
                Value::Float(f) => b.append_value(f.to_string()),
                _ => return Err(misfit("text")),
            },
            Self::Binary(b) => match value {
                Value::Bytes(bytes) => b.append_value(bytes),
                _ => return Err(misfit("bytes")),
            },
            Self::Date32(b) => match value {
                Value::Date(y, m, d, ..) if *m > 0 && *d > 0 => {
                    b.append_value(days_from_civil(*y as i64, *m, *d) as i32)
                }
                _ => return Err(misfit("a date (zero dates are not dates)")),
            },
            Self::Timestamp(b) => match value {
                Value::Date(y, mo, d, h, mi, s, us) if *mo > 0 && *d > 0 => {
                    let days = days_from_civil(*y as i64, *mo, *d);
                    let seconds = days * 86_400 + *h as i64 * 3600 + *mi as i64 * 60 + *s as i64;
                    b.append_value(seconds * 1_000_000 + *us as i64)
                }
                _ => return Err(misfit("a timestamp (zero dates are not dates)")),
            },
            Self::Time64(b) => match value {
                Value::Time(false, 0, h, m, s, us) => b.append_value(
                    (*h as i64 * 3600 + *m as i64 * 60 + *s as i64) * 1_000_000 + *us as i64,
                ),
                _ => return Err(misfit("a time of day (00:00:00 to 23:59:59.999999)")),
            },
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match self {
            Self::Boolean(b) => b.append_null(),
            Self::Int8(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::UInt8(b) => b.append_null(),
            Self::UInt16(b) => b.append_null(),
            Self::UInt32(b) => b.append_null(),
            Self::UInt64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal128(b, _) => b.append_null(),
            Self::Decimal256(b, _) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date32(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Time64(b) => b.append_null(),
        }
    }

    /// The values so far, as an array; the decoder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::UInt8(b) => Arc::new(b.finish()),
            Self::UInt16(b) => Arc::new(b.finish()),
            Self::UInt32(b) => Arc::new(b.finish()),
            Self::UInt64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal128(b, _) => Arc::new(b.finish()),
            Self::Decimal256(b, _) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Time64(b) => Arc::new(b.finish()),
        }
    }

    /// Values pending.
    pub fn len(&self) -> usize {
        match self {
            Self::Boolean(b) => b.len(),
            Self::Int8(b) => b.len(),
            Self::Int16(b) => b.len(),
            Self::Int32(b) => b.len(),
            Self::Int64(b) => b.len(),
            Self::UInt8(b) => b.len(),
            Self::UInt16(b) => b.len(),
            Self::UInt32(b) => b.len(),
            Self::UInt64(b) => b.len(),
            Self::Float32(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Decimal128(b, _) => b.len(),
            Self::Decimal256(b, _) => b.len(),
            Self::Utf8(b) => b.len(),
            Self::Binary(b) => b.len(),
            Self::Date32(b) => b.len(),
            Self::Timestamp(b) => b.len(),
            Self::Time64(b) => b.len(),
        }
    }

    /// No values pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decimal_text(value: &Value) -> Option<String> {
    match value {
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        _ => None,
    }
}

/// The civil date of a day count from 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The value at `row` of an Arrow column as a MySQL value to bind.
pub fn to_mysql(column: &ArrayRef, row: usize) -> Result<Value, String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
        Time64MicrosecondType, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type,
        UInt64Type,
    };
    if column.is_null(row) {
        return Ok(Value::NULL);
    }
    Ok(match column.data_type() {
        DataType::Boolean => Value::Int(column.as_boolean().value(row) as i64),
        DataType::Int8 => Value::Int(column.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(column.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(column.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(column.as_primitive::<UInt8Type>().value(row) as u64),
        DataType::UInt16 => Value::UInt(column.as_primitive::<UInt16Type>().value(row) as u64),
        DataType::UInt32 => Value::UInt(column.as_primitive::<UInt32Type>().value(row) as u64),
        DataType::UInt64 => Value::UInt(column.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(column.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::Bytes(column.as_string::<i32>().value(row).as_bytes().to_vec()),
        DataType::Binary => Value::Bytes(column.as_binary::<i32>().value(row).to_vec()),
        DataType::Decimal128(..) | DataType::Decimal256(..) => Value::Bytes(
            datafusion::arrow::util::display::array_value_to_string(column, row)
                .map_err(|e| e.to_string())?
                .into_bytes(),
        ),
        DataType::Date32 => {
            let (y, m, d) = civil_from_days(column.as_primitive::<Date32Type>().value(row) as i64);
            Value::Date(y as u16, m, d, 0, 0, 0, 0)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            let (days, rest) = (
                micros.div_euclid(86_400_000_000),
                micros.rem_euclid(86_400_000_000),
            );
            let (y, m, d) = civil_from_days(days);
            let seconds = rest / 1_000_000;
            Value::Date(
                y as u16,
                m,
                d,
                (seconds / 3600) as u8,
                (seconds / 60 % 60) as u8,
                (seconds % 60) as u8,
                (rest % 1_000_000) as u32,
            )
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let micros = column.as_primitive::<Time64MicrosecondType>().value(row);
            let seconds = micros / 1_000_000;
            Value::Time(
                false,
                0,
                (seconds / 3600) as u8,
                (seconds / 60 % 60) as u8,
                (seconds % 60) as u8,
                (micros % 1_000_000) as u32,
            )
        }
        other => return Err(format!("values of type {other} cannot be written to MySQL")),
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
    fn decimals_keep_every_digit() {
        assert_eq!(scaled_decimal("-12.50", 2).unwrap(), i256::from_i128(-1250));
        assert_eq!(scaled_decimal("0.001", 3).unwrap(), i256::from_i128(1));
        assert_eq!(scaled_decimal("7", 2).unwrap(), i256::from_i128(700));
        assert!(scaled_decimal("1.234", 2).is_err());
        assert!(scaled_decimal("1e5", 2).is_err());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
    }

    #[test]
    fn type_mapping() {
        assert_eq!(
            arrow_type("tinyint", "tinyint(1)", None, None),
            Some(DataType::Boolean)
        );
        assert_eq!(
            arrow_type("bigint", "bigint(20) unsigned", None, None),
            Some(DataType::UInt64)
        );
        assert_eq!(
            arrow_type("decimal", "decimal(65,30)", Some(65), Some(30)),
            Some(DataType::Decimal256(65, 30))
        );
        assert_eq!(arrow_type("geometry", "geometry", None, None), None);
    }
}
