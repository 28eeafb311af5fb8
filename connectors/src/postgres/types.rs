//! PostgreSQL types as Arrow types, and decoders from PostgreSQL's binary
//! wire format into Arrow builders.
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | `smallint`, `integer`, `bigint` | `Int16`, `Int32`, `Int64` |
//! | `real`, `double precision` | `Float32`, `Float64` |
//! | `numeric(p,s)` | `Decimal128(p,s)`; `Decimal256(p,s)` when p > 38 |
//! | `numeric` (no precision) | `Utf8`: the exact decimal text, so no digit is ever dropped |
//! | `text`, `varchar`, `char(n)`, `name`, `citext` | `Utf8` (`char(n)` without its trailing spaces, as PostgreSQL compares it) |
//! | `boolean` | `Boolean` |
//! | `date` | `Date32` |
//! | `time` | `Time64(µs)` |
//! | `timestamp` | `Timestamp(µs)` |
//! | `timestamptz` | `Timestamp(µs, "UTC")` |
//! | `interval` | `Interval(MonthDayNano)` |
//! | `bytea` | `Binary` |
//! | `uuid` | `Utf8` (`8-4-4-4-12` hex) |
//! | `json`, `jsonb` | `Utf8` (the document text) |
//! | enums | `Utf8` (the label) |
//! | one-dimensional arrays of the above | `List` |
//! | other base types and domains (`inet`, `money`, `xml`, ...) | `Utf8`, read as `CAST(col AS TEXT)` |
//! | composite, range and other types | an error naming column and type; the source option `unsupported_types` = `text` or `skip` reads them as text or leaves the column out |
//!
//! `infinity` dates and timestamps, and `NaN`/`infinity` in a decimal column,
//! have no Arrow value: reading one is an error naming the column.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListArray, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, IntervalMonthDayNano, TimeUnit, i256,
};

pub use crate::remote::CAST_TO_TEXT;

/// Field metadata key: the column's PostgreSQL type name (`text`, `bpchar`, ...).
pub const PG_TYPE: &str = "moltres.pg_type";
/// Field metadata key: the column's collation (`C`, `en_US.utf8`, ...), with
/// the database default resolved.
pub const PG_COLLATION: &str = "moltres.pg_collation";
/// Field metadata: "true" when the column's collation is deterministic
/// (equal only when bytewise equal; every database default collation is).
pub const PG_DETERMINISTIC: &str = "moltres.pg_deterministic";

/// What the catalog says about one column's type.
#[derive(Debug, Clone)]
pub struct PgColumnType {
    /// `pg_type.typname` (`int4`, `_text`, `my_enum`).
    pub name: String,
    /// `pg_type.typtype`: `b` base, `e` enum, `d` domain, `c` composite, `r` range, ...
    pub kind: String,
    /// `pg_attribute.atttypmod` (precision and scale of numeric; -1 when none).
    pub typmod: i32,
    /// For arrays: the element type's name and kind.
    pub element: Option<(String, String)>,
}

/// How a column is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    /// Decoded from the binary format as this Arrow type.
    Native(DataType),
    /// Read as text through `CAST(col AS TEXT)`.
    CastToText,
}

/// The Arrow type of a scalar (non-array) PostgreSQL type, or `None` when
/// the type is not one of the table's native mappings.
fn scalar_type(name: &str, kind: &str, typmod: i32) -> Option<DataType> {
    Some(match name {
        "int2" => DataType::Int16,
        "int4" => DataType::Int32,
        "int8" => DataType::Int64,
        "float4" => DataType::Float32,
        "float8" => DataType::Float64,
        "numeric" => numeric_type(typmod),
        "bool" => DataType::Boolean,
        "text" | "varchar" | "bpchar" | "name" | "citext" | "json" | "jsonb" | "uuid" => {
            DataType::Utf8
        }
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "interval" => DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
        "bytea" => DataType::Binary,
        _ if kind == "e" => DataType::Utf8,
        _ => return None,
    })
}

/// `numeric(p,s)` from its typmod; unconstrained numeric is exact text.
fn numeric_type(typmod: i32) -> DataType {
    if typmod < 4 {
        return DataType::Utf8;
    }
    let precision = (((typmod - 4) >> 16) & 0xffff) as u8;
    let scale = ((typmod - 4) & 0xffff) as i8;
    if precision <= 38 {
        DataType::Decimal128(precision, scale)
    } else {
        DataType::Decimal256(precision.min(76), scale)
    }
}

/// How to read a column of type `t`; `None` when it cannot be read at all.
pub fn mapping(t: &PgColumnType) -> Option<Mapping> {
    if let Some((element, element_kind)) = &t.element {
        return match scalar_type(element, element_kind, -1) {
            Some(inner) => Some(Mapping::Native(DataType::List(Arc::new(Field::new(
                "item", inner, true,
            ))))),
            None => Some(Mapping::CastToText),
        };
    }
    if let Some(dt) = scalar_type(&t.name, &t.kind, t.typmod) {
        return Some(Mapping::Native(dt));
    }
    match t.kind.as_str() {
        // Base types (inet, money, xml, ...) and domains have a text form.
        "b" | "d" => Some(Mapping::CastToText),
        _ => None,
    }
}

/// A failed decode: what went wrong (the caller adds column and source).
pub type DecodeError = String;

/// Appends PostgreSQL binary values to one Arrow builder.
#[derive(Debug)]
pub enum ColumnDecoder {
    /// int2
    Int16(Int16Builder),
    /// int4
    Int32(Int32Builder),
    /// int8
    Int64(Int64Builder),
    /// float4
    Float32(Float32Builder),
    /// float8
    Float64(Float64Builder),
    /// bool
    Boolean(BooleanBuilder),
    /// Text-like values, by PostgreSQL type name (uuid and jsonb need work).
    Utf8(StringBuilder, TextKind),
    /// bytea
    Binary(BinaryBuilder),
    /// date
    Date32(Date32Builder),
    /// time
    Time64(Time64MicrosecondBuilder),
    /// timestamp / timestamptz
    Timestamp(TimestampMicrosecondBuilder),
    /// interval
    Interval(IntervalMonthDayNanoBuilder),
    /// numeric(p<=38, s)
    Decimal128(Decimal128Builder, i8),
    /// numeric(p>38, s)
    Decimal256(Decimal256Builder, i8),
    /// One-dimensional arrays.
    List(Box<ListDecoder>),
}

/// How the bytes of a text-like value become a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// UTF-8 as sent (text, varchar, json, enums, casts to text).
    Plain,
    /// jsonb: a version byte, then the text.
    Jsonb,
    /// 16 bytes, shown as `8-4-4-4-12` hex.
    Uuid,
    /// numeric without precision: the exact decimal text.
    Numeric,
    /// `char(n)`: the text without its trailing spaces, which PostgreSQL
    /// ignores in every comparison (`'MAIL      '` is read as `MAIL`).
    Padded,
}

/// Decodes one-dimensional arrays into a `List`.
#[derive(Debug)]
pub struct ListDecoder {
    field: FieldRef,
    offsets: Vec<i32>,
    valid: Vec<bool>,
    child: ColumnDecoder,
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], DecodeError> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

impl ColumnDecoder {
    /// A decoder for values of PostgreSQL type `pg_name` read as `data_type`.
    pub fn try_new(data_type: &DataType, pg_name: &str) -> Result<Self, DecodeError> {
        Ok(match data_type {
            DataType::Int16 => Self::Int16(Int16Builder::new()),
            DataType::Int32 => Self::Int32(Int32Builder::new()),
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::Float32 => Self::Float32(Float32Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Boolean => Self::Boolean(BooleanBuilder::new()),
            DataType::Utf8 => Self::Utf8(
                StringBuilder::new(),
                match pg_name {
                    "jsonb" => TextKind::Jsonb,
                    "uuid" => TextKind::Uuid,
                    "numeric" => TextKind::Numeric,
                    "bpchar" => TextKind::Padded,
                    _ => TextKind::Plain,
                },
            ),
            DataType::Binary => Self::Binary(BinaryBuilder::new()),
            DataType::Date32 => Self::Date32(Date32Builder::new()),
            DataType::Time64(TimeUnit::Microsecond) => {
                Self::Time64(Time64MicrosecondBuilder::new())
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone()))
            }
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano) => {
                Self::Interval(IntervalMonthDayNanoBuilder::new())
            }
            DataType::Decimal128(p, s) => Self::Decimal128(
                Decimal128Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
                *s,
            ),
            DataType::Decimal256(p, s) => Self::Decimal256(
                Decimal256Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
                *s,
            ),
            DataType::List(field) => {
                let element = pg_name.strip_prefix('_').unwrap_or(pg_name);
                Self::List(Box::new(ListDecoder {
                    field: Arc::clone(field),
                    offsets: vec![0],
                    valid: Vec::new(),
                    child: ColumnDecoder::try_new(field.data_type(), element)?,
                }))
            }
            other => return Err(format!("no decoder for {other}")),
        })
    }

    /// Appends one value (`None` is NULL).
    pub fn push(&mut self, raw: Option<&[u8]>) -> Result<(), DecodeError> {
        let Some(raw) = raw else {
            self.push_null();
            return Ok(());
        };
        match self {
            Self::Int16(b) => b.append_value(i16::from_be_bytes(be(raw)?)),
            Self::Int32(b) => b.append_value(i32::from_be_bytes(be(raw)?)),
            Self::Int64(b) => b.append_value(i64::from_be_bytes(be(raw)?)),
            Self::Float32(b) => b.append_value(f32::from_be_bytes(be(raw)?)),
            Self::Float64(b) => b.append_value(f64::from_be_bytes(be(raw)?)),
            Self::Boolean(b) => b.append_value(be::<1>(raw)?[0] != 0),
            Self::Utf8(b, kind) => match kind {
                TextKind::Plain => b.append_value(utf8(raw)?),
                TextKind::Jsonb => match raw.split_first() {
                    Some((1, text)) => b.append_value(utf8(text)?),
                    _ => return Err("unknown jsonb version".into()),
                },
                TextKind::Uuid => b.append_value(uuid(raw)?),
                TextKind::Numeric => b.append_value(numeric_text(raw)?),
                TextKind::Padded => b.append_value(utf8(raw)?.trim_end_matches(' ')),
            },
            Self::Binary(b) => b.append_value(raw),
            Self::Date32(b) => {
                let days = i32::from_be_bytes(be(raw)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("date 'infinity' has no Arrow value".into());
                }
                b.append_value(days.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?)
            }
            Self::Time64(b) => b.append_value(i64::from_be_bytes(be(raw)?)),
            Self::Timestamp(b) => {
                let micros = i64::from_be_bytes(be(raw)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("timestamp 'infinity' has no Arrow value".into());
                }
                b.append_value(
                    micros
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or("timestamp out of range")?,
                )
            }
            Self::Interval(b) => {
                let raw: [u8; 16] = be(raw)?;
                let micros = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
                let days = i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
                let months = i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
                let nanos = micros.checked_mul(1000).ok_or("interval out of range")?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos))
            }
            Self::Decimal128(b, scale) => {
                let value = numeric_scaled(raw, *scale)?;
                let value = value.to_i128().ok_or("numeric out of range")?;
                b.append_value(value)
            }
            Self::Decimal256(b, scale) => b.append_value(numeric_scaled(raw, *scale)?),
            Self::List(list) => list.push(raw)?,
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match self {
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Utf8(b, _) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date32(b) => b.append_null(),
            Self::Time64(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Interval(b) => b.append_null(),
            Self::Decimal128(b, _) => b.append_null(),
            Self::Decimal256(b, _) => b.append_null(),
            Self::List(list) => {
                let last = *list.offsets.last().unwrap_or(&0);
                list.offsets.push(last);
                list.valid.push(false);
            }
        }
    }

    /// The values appended since the last call.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Utf8(b, _) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Time64(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Interval(b) => Arc::new(b.finish()),
            Self::Decimal128(b, _) => Arc::new(b.finish()),
            Self::Decimal256(b, _) => Arc::new(b.finish()),
            Self::List(list) => list.finish(),
        }
    }

    /// Rows appended and not yet finished.
    pub fn len(&self) -> usize {
        match self {
            Self::Int16(b) => b.len(),
            Self::Int32(b) => b.len(),
            Self::Int64(b) => b.len(),
            Self::Float32(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Boolean(b) => b.len(),
            Self::Utf8(b, _) => b.len(),
            Self::Binary(b) => b.len(),
            Self::Date32(b) => b.len(),
            Self::Time64(b) => b.len(),
            Self::Timestamp(b) => b.len(),
            Self::Interval(b) => b.len(),
            Self::Decimal128(b, _) => b.len(),
            Self::Decimal256(b, _) => b.len(),
            Self::List(list) => list.valid.len(),
        }
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ListDecoder {
    /// Binary array: ndim, has-null flag, element oid, (size, lower bound) per
    /// dimension, then each element as length (-1 = NULL) and bytes.
    fn push(&mut self, raw: &[u8]) -> Result<(), DecodeError> {
        let mut at = 0;
        let read_i32 = |at: &mut usize| -> Result<i32, DecodeError> {
            let bytes = raw.get(*at..*at + 4).ok_or("truncated array")?;
            *at += 4;
            Ok(i32::from_be_bytes(bytes.try_into().expect("4 bytes")))
        };
        let dimensions = read_i32(&mut at)?;
        let _has_null = read_i32(&mut at)?;
        let _element_oid = read_i32(&mut at)?;
        let count = match dimensions {
            0 => 0,
            1 => {
                let size = read_i32(&mut at)?;
                let _lower_bound = read_i32(&mut at)?;
                size
            }
            n => {
                return Err(format!(
                    "{n}-dimensional arrays are not supported (only one dimension)"
                ));
            }
        };
        for _ in 0..count {
            let len = read_i32(&mut at)?;
            if len < 0 {
                self.child.push(None)?;
            } else {
                let end = at + len as usize;
                let element = raw.get(at..end).ok_or("truncated array element")?;
                self.child.push(Some(element))?;
                at = end;
            }
        }
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last + count);
        self.valid.push(true);
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let valid = std::mem::take(&mut self.valid);
        let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
        Arc::new(ListArray::new(
            Arc::clone(&self.field),
            OffsetBuffer::new(offsets.into()),
            self.child.finish(),
            nulls,
        ))
    }
}

fn utf8(raw: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}"))
}

fn uuid(raw: &[u8]) -> Result<String, DecodeError> {
    let b: [u8; 16] = be(raw)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A binary numeric: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits.
struct Numeric<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

fn parse_numeric(raw: &[u8]) -> Result<Numeric<'_>, DecodeError> {
    if raw.len() < 8 {
        return Err("truncated numeric".into());
    }
    let ndigits = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let numeric = Numeric {
        weight: i16::from_be_bytes([raw[2], raw[3]]),
        sign: u16::from_be_bytes([raw[4], raw[5]]),
        dscale: u16::from_be_bytes([raw[6], raw[7]]),
        digits: raw.get(8..8 + 2 * ndigits).ok_or("truncated numeric")?,
    };
    match numeric.sign {
        NUMERIC_NAN => Err("NaN".into()),
        NUMERIC_PINF => Err("Infinity".into()),
        NUMERIC_NINF => Err("-Infinity".into()),
        _ => Ok(numeric),
    }
}

impl Numeric<'_> {
    fn digit(&self, i: usize) -> i64 {
        i64::from(u16::from_be_bytes([
            self.digits[2 * i],
            self.digits[2 * i + 1],
        ]))
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }
}

/// The numeric as an integer scaled by 10^`scale` (exact; more fractional
/// digits than `scale` is an error, as PostgreSQL never sends them for a
/// numeric(p,s) column).
fn numeric_scaled(raw: &[u8], scale: i8) -> Result<i256, DecodeError> {
    let n = parse_numeric(raw).map_err(|v| format!("numeric {v} has no decimal value"))?;
    let ten = i256::from_i128(10);
    let ten_thousand = i256::from_i128(10_000);
    let mut value = i256::ZERO;
    // Digit i is worth 10000^(weight - i); accumulate the integer of all
    // digits, then shift by the remaining power of ten.
    for i in 0..n.ndigits() {
        value = value
            .checked_mul(ten_thousand)
            .and_then(|v| v.checked_add(i256::from_i128(i128::from(n.digit(i)))))
            .ok_or("numeric out of range")?;
    }
    // value now = number * 10000^(ndigits - 1 - weight)
    let exponent = 4 * (i32::from(n.weight) + 1 - n.ndigits() as i32) + i32::from(scale);
    if exponent >= 0 {
        for _ in 0..exponent {
            value = value.checked_mul(ten).ok_or("numeric out of range")?;
        }
    } else {
        for _ in 0..(-exponent) {
            let (q, r) = (value.wrapping_div(ten), value.wrapping_rem(ten));
            if r != i256::ZERO {
                return Err(format!("numeric has more than {scale} fractional digits"));
            }
            value = q;
        }
    }
    Ok(if n.sign == NUMERIC_NEG {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The numeric as PostgreSQL prints it (every digit, `dscale` decimals).
fn numeric_text(raw: &[u8]) -> Result<String, DecodeError> {
    let n = match parse_numeric(raw) {
        Ok(n) => n,
        Err(special) => return Ok(special),
    };
    let mut integer = String::new();
    let mut fraction = String::new();
    for i in 0..n.ndigits() {
        let power = i32::from(n.weight) - i as i32;
        let digit = n.digit(i);
        if power >= 0 {
            if integer.is_empty() {
                integer.push_str(&digit.to_string());
            } else {
                integer.push_str(&format!("{digit:04}"));
            }
            // Missing digits between this one and the units are zeros.
            if i + 1 == n.ndigits() {
                for _ in 0..power {
                    integer.push_str("0000");
                }
            }
        } else {
            if fraction.is_empty() {
                for _ in 0..(-power - 1) {
                    fraction.push_str("0000");
                }
            }
            fraction.push_str(&format!("{digit:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }
    let dscale = usize::from(n.dscale);
    if fraction.len() < dscale {
        fraction.push_str(&"0".repeat(dscale - fraction.len()));
    }
    fraction.truncate(dscale);
    let sign = if n.sign == NUMERIC_NEG { "-" } else { "" };
    Ok(if dscale == 0 {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    })
}

/// Whether values of `data_type` can be sent in COPY's binary format to a
/// column of PostgreSQL type `pg_type`.
pub fn can_encode(data_type: &DataType, pg_type: &str) -> bool {
    matches!(
        (data_type, pg_type),
        (DataType::Int16, "int2")
            | (DataType::Int32, "int4")
            | (DataType::Int64, "int8")
            | (DataType::Float32, "float4")
            | (DataType::Float64, "float8")
            | (DataType::Boolean, "bool")
            | (DataType::Binary, "bytea")
            | (DataType::Date32, "date")
            | (DataType::Time64(TimeUnit::Microsecond), "time")
            | (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp"
            )
            | (
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)),
                "timestamptz"
            )
            | (DataType::Decimal128(..), "numeric")
            | (
                DataType::Utf8,
                "text"
                    | "varchar"
                    | "bpchar"
                    | "name"
                    | "citext"
                    | "json"
                    | "jsonb"
                    | "numeric"
                    | "uuid"
            )
    )
}

/// Appends the value at `row` of `column` to `out` as one field of a COPY
/// binary row (length, then bytes; -1 for NULL), for a column of type
/// `pg_type` (checked by [`can_encode`]; enums take their label as text).
pub fn encode_copy_field(
    column: &ArrayRef,
    row: usize,
    pg_type: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
        Time64MicrosecondType, TimestampMicrosecondType,
    };
    if column.is_null(row) {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    match column.data_type() {
        DataType::Int16 => field(&column.as_primitive::<Int16Type>().value(row).to_be_bytes()),
        DataType::Int32 => field(&column.as_primitive::<Int32Type>().value(row).to_be_bytes()),
        DataType::Int64 => field(&column.as_primitive::<Int64Type>().value(row).to_be_bytes()),
        DataType::Float32 => field(
            &column
                .as_primitive::<Float32Type>()
                .value(row)
                .to_be_bytes(),
        ),
        DataType::Float64 => field(
            &column
                .as_primitive::<Float64Type>()
                .value(row)
                .to_be_bytes(),
        ),
        DataType::Boolean => field(&[column.as_boolean().value(row) as u8]),
        DataType::Binary => field(column.as_binary::<i32>().value(row)),
        DataType::Date32 => {
            field(&(column.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS).to_be_bytes())
        }
        DataType::Time64(_) => field(
            &column
                .as_primitive::<Time64MicrosecondType>()
                .value(row)
                .to_be_bytes(),
        ),
        DataType::Timestamp(_, _) => field(
            &(column.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS)
                .to_be_bytes(),
        ),
        DataType::Decimal128(_, scale) => {
            let value = column.as_primitive::<Decimal128Type>().value(row);
            field(&numeric_binary(&decimal_text(value, *scale))?)
        }
        DataType::Utf8 => {
            let text = column.as_string::<i32>().value(row);
            match pg_type {
                "jsonb" => field(&[&[1u8][..], text.as_bytes()].concat()),
                "numeric" => field(&numeric_binary(text)?),
                "uuid" => field(&uuid_binary(text)?),
                _ => field(text.as_bytes()),
            }
        }
        other => {
            return Err(format!(
                "values of type {other} cannot be written to {pg_type}"
            ));
        }
    }
    Ok(())
}

fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if value < 0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// A decimal number's text (`-12.340`) in PostgreSQL's binary numeric
/// format: base-10000 digits, weight, sign, display scale.
pub fn numeric_binary(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("'{text}' is not a decimal number");
    let (negative, digits) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim().strip_prefix('+').unwrap_or(text.trim())),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = fraction.len() as u16;
    let whole = whole.trim_start_matches('0');
    // Whole part grouped from the right, fraction from the left.
    let whole_padded = format!("{whole:0>width$}", width = whole.len().div_ceil(4) * 4);
    let fraction_padded = format!(
        "{fraction:0<width$}",
        width = fraction.len().div_ceil(4) * 4
    );
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0))
            .collect()
    };
    let whole_groups = group(&whole_padded);
    let mut groups = whole_groups.clone();
    groups.extend(group(&fraction_padded));
    let mut weight = whole_groups.len() as i16 - 1;
    // Leading zero groups (a number below 1) lower the weight.
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

fn uuid_binary(text: &str) -> Result<Vec<u8>, String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("'{text}' is not a UUID"));
    }
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("'{text}' is not a UUID"))
}

impl crate::remote::ColumnBuilder for ColumnDecoder {
    fn finish(&mut self) -> ArrayRef {
        ColumnDecoder::finish(self)
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    #[test]
    fn numerics_encode_as_postgres_does() {
        // 12345.678 -> digits [1, 2345, 6780], weight 1, dscale 3.
        assert_eq!(
            numeric_binary("12345.678").unwrap(),
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // 0.0001 -> digits [1], weight -1, dscale 4.
        assert_eq!(
            numeric_binary("-0.0001").unwrap(),
            [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]
        );
        assert_eq!(numeric_binary("0.00").unwrap(), [0, 0, 0, 0, 0, 0, 0, 2]);
        assert!(numeric_binary("1e5").is_err());
        assert_eq!(decimal_text(-1234, 2), "-12.34");
        assert_eq!(decimal_text(5, 3), "0.005");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes like PostgreSQL: weight, sign, dscale, base-10000 digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics() {
        // 12345.678 = [1, 2345, 6780], weight 1
        let raw = numeric(1, 0, 3, &[1, 2345, 6780]);
        assert_eq!(numeric_text(&raw).unwrap(), "12345.678");
        assert_eq!(
            numeric_scaled(&raw, 3).unwrap(),
            i256::from_i128(12_345_678)
        );
        assert_eq!(
            numeric_scaled(&raw, 5).unwrap(),
            i256::from_i128(1_234_567_800)
        );
        assert!(numeric_scaled(&raw, 2).is_err());
        // -0.0001 = [1], weight -1
        let raw = numeric(-1, NUMERIC_NEG, 4, &[1]);
        assert_eq!(numeric_text(&raw).unwrap(), "-0.0001");
        assert_eq!(numeric_scaled(&raw, 4).unwrap(), i256::from_i128(-1));
        // 10^8 = [1], weight 2
        let raw = numeric(2, 0, 0, &[1]);
        assert_eq!(numeric_text(&raw).unwrap(), "100000000");
        assert_eq!(
            numeric_scaled(&raw, 0).unwrap(),
            i256::from_i128(100_000_000)
        );
        // 0
        let raw = numeric(0, 0, 2, &[]);
        assert_eq!(numeric_text(&raw).unwrap(), "0.00");
        assert_eq!(
            numeric_text(&numeric(0, NUMERIC_NAN, 0, &[])).unwrap(),
            "NaN"
        );
        assert!(numeric_scaled(&numeric(0, NUMERIC_NAN, 0, &[]), 0).is_err());
    }

    #[test]
    fn type_mapping() {
        let t = |name: &str, kind: &str, typmod: i32| PgColumnType {
            name: name.into(),
            kind: kind.into(),
            typmod,
            element: None,
        };
        assert_eq!(
            mapping(&t("int4", "b", -1)),
            Some(Mapping::Native(DataType::Int32))
        );
        // numeric(10,2): typmod = (10 << 16 | 2) + 4
        assert_eq!(
            mapping(&t("numeric", "b", (10 << 16 | 2) + 4)),
            Some(Mapping::Native(DataType::Decimal128(10, 2)))
        );
        assert_eq!(
            mapping(&t("numeric", "b", (50 << 16 | 5) + 4)),
            Some(Mapping::Native(DataType::Decimal256(50, 5)))
        );
        assert_eq!(
            mapping(&t("numeric", "b", -1)),
            Some(Mapping::Native(DataType::Utf8))
        );
        assert_eq!(mapping(&t("inet", "b", -1)), Some(Mapping::CastToText));
        assert_eq!(
            mapping(&t("mood", "e", -1)),
            Some(Mapping::Native(DataType::Utf8))
        );
        assert_eq!(mapping(&t("complex", "c", -1)), None);
    }
}
