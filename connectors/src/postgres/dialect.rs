//! How plans become PostgreSQL SQL, and which expressions PostgreSQL
//! computes exactly as DataFusion does.
//!
//! Each operand is first given a *kind* (see [`kind`]); an operand without
//! one is something PostgreSQL may compute differently, and the predicate
//! stays local. Operands with a kind:
//!
//! * integer columns and literals, widening integer casts, and `x / n`,
//!   `x % n` with an integer literal `n` other than 0 and -1 (both truncate
//!   toward zero, the remainder takes the dividend's sign, nothing can
//!   overflow). Not `+`, `-`, `*`: PostgreSQL raises an error on overflow
//!   where DataFusion wraps around;
//! * `double precision` / `real` columns and finite literals, and `abs`,
//!   `ceil`, `floor` of `double precision` (NaN sorts highest and equals
//!   itself, -0 equals 0, in both). Not float arithmetic: PostgreSQL raises
//!   errors on overflow and underflow where DataFusion gives infinities and
//!   zero;
//! * `numeric(p,s)` columns (read as decimals of that precision and
//!   scale, so every value is exact) and decimal literals, and casts of
//!   either, or of integers, to a decimal type that holds every value
//!   (both compare decimals exactly), and `+`, `-`, `*` of those when
//!   DataFusion's result type keeps every digit (the larger scale for
//!   `+`/`-`, the sum of the scales for `*`; see
//!   [`keeps_every_decimal_digit`]). Not `/`, whose result scales differ;
//! * booleans, `date` columns and literals;
//! * `timestamp` and `timestamptz` columns and literals of the same
//!   zone-ness (sessions are pinned to UTC and zoned literals are sent as
//!   UTC text, see [`RemoteSql`](crate::remote::RemoteSql)), and
//!   `date_trunc` to a year, month, day, hour, minute or second;
//! * `text` / `varchar` columns, string literals without NUL, `||`,
//!   `character_length`, `octet_length`, `strpos`, `btrim`/`ltrim`/`rtrim`
//!   (spaces), `replace` of a non-empty literal. Text is *bytewise* when every column in it has the
//!   `C` or `POSIX` collation, and *deterministic* when every column in it
//!   has a deterministic collation (every database default is; PostgreSQL
//!   then calls two strings equal only when their bytes are, and matches
//!   LIKE patterns character by character, whatever the locale). Not
//!   `lower`/`upper` (ASCII-only under `C`), not `char(n)` (trailing
//!   spaces), `citext`, `json`, or types read as text.
//!
//! Exact predicates: comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`) between
//! operands of the same kind (text: `=` and `<>` when deterministic, the
//! order comparisons only when bytewise), `IN` lists and `BETWEEN` with
//! literals, `IS [NOT] NULL` on any column, boolean columns and literals,
//! `starts_with` on text, `LIKE` / `NOT LIKE` on deterministic text with a
//! pattern free of backslashes; AND, OR and NOT of those.
//!
//! For sub-plan federation (joins, GROUP BY, DISTINCT), values are told
//! apart exactly for integers, booleans, dates, `numeric(p,s)` decimals and
//! deterministic text; ORDER BY and min/max order integers, booleans,
//! dates, `numeric(p,s)` decimals and bytewise text exactly.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;

use super::types::{CAST_TO_TEXT, PG_COLLATION, PG_DETERMINISTIC, PG_TYPE};
use crate::remote::pushdown::literals;
use crate::remote::{Capability, PushdownPolicy};

/// DataFusion's PostgreSQL unparser dialect.
pub type PostgresDialect = PostgreSqlDialect;

/// PostgreSQL's pushdown rules (see the module docs).
#[derive(Debug, Default)]
pub struct PostgresPushdown;

/// What an operand is, when PostgreSQL computes it exactly as DataFusion.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Integer,
    /// An exact decimal.
    Decimal,
    /// A float of this Arrow type.
    Float(DataType),
    Boolean,
    Date,
    /// A timestamp; with a time zone or not.
    Timestamp {
        zoned: bool,
    },
    /// Text: `bytewise` when it orders as DataFusion does; `deterministic`
    /// when it equals as DataFusion does; `literal` when it is a constant
    /// (which takes the other operand's collation).
    Text {
        bytewise: bool,
        deterministic: bool,
        literal: bool,
        /// A `char(n)` column: read with its padding removed, compared by
        /// PostgreSQL with trailing spaces ignored. Only compared, never an
        /// argument (`octet_length`, `LIKE` see the padding).
        padded: bool,
        /// A literal ending in a space (which `char(n)` comparisons ignore).
        trailing_space: bool,
    },
}

impl Kind {
    /// Text that functions and LIKE see as DataFusion does (not `char(n)`).
    fn is_text(&self) -> bool {
        matches!(self, Kind::Text { padded: false, .. })
    }
}

/// A `text` or `varchar` field with a `C` or `POSIX` collation.
fn is_bytewise_text_field(field: &Field) -> bool {
    is_string_field(field)
        && matches!(
            field.metadata().get(PG_COLLATION).map(String::as_str),
            Some("C" | "POSIX")
        )
}

/// A `text` or `varchar` field with a deterministic collation (bytewise
/// ones are, whatever the catalog says).
fn is_deterministic_text_field(field: &Field) -> bool {
    is_bytewise_text_field(field)
        || (is_string_field(field)
            && field.metadata().get(PG_DETERMINISTIC).map(String::as_str) == Some("true"))
}

/// Text or `char(n)`, read as itself.
fn is_string_field(field: &Field) -> bool {
    is_text_field(field) || is_padded_text_field(field)
}

/// A `char(n)` (`bpchar`) field, read as itself (without its padding).
fn is_padded_text_field(field: &Field) -> bool {
    let metadata = field.metadata();
    metadata.get(PG_TYPE).map(String::as_str) == Some("bpchar")
        && !metadata.contains_key(CAST_TO_TEXT)
}

/// A `text` or `varchar` field read as itself (not `char(n)`, not cast).
fn is_text_field(field: &Field) -> bool {
    let metadata = field.metadata();
    matches!(
        metadata.get(PG_TYPE).map(String::as_str),
        Some("text" | "varchar")
    ) && !metadata.contains_key(CAST_TO_TEXT)
}

fn column_kind(field: &Field) -> Option<Kind> {
    Some(match field.data_type() {
        t if t.is_integer() => Kind::Integer,
        DataType::Decimal128(..) | DataType::Decimal256(..) => Kind::Decimal,
        t @ (DataType::Float64 | DataType::Float32) => Kind::Float(t.clone()),
        DataType::Boolean => Kind::Boolean,
        DataType::Date32 => Kind::Date,
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Kind::Timestamp {
            zoned: tz.is_some(),
        },
        DataType::Utf8 if is_string_field(field) => Kind::Text {
            bytewise: is_bytewise_text_field(field),
            deterministic: is_deterministic_text_field(field),
            literal: false,
            padded: is_padded_text_field(field),
            trailing_space: false,
        },
        _ => return None,
    })
}

/// A timestamp literal PostgreSQL holds to the microsecond.
fn timestamp_literal(value: &ScalarValue) -> Option<Kind> {
    // PostgreSQL's range: 4713 BC to 294276 AD.
    const MIN_MICROS: i64 = -210_866_803_200_000_000;
    const MAX_MICROS: i64 = i64::MAX;
    let (micros, tz) = match value {
        ScalarValue::TimestampSecond(Some(v), tz) => (v.checked_mul(1_000_000)?, tz),
        ScalarValue::TimestampMillisecond(Some(v), tz) => (v.checked_mul(1000)?, tz),
        ScalarValue::TimestampMicrosecond(Some(v), tz) => (*v, tz),
        ScalarValue::TimestampNanosecond(Some(v), tz) if v % 1000 == 0 => (v / 1000, tz),
        _ => return None,
    };
    // A zone must name UTC or an offset DataFusion resolved already; the
    // value is an instant either way.
    ((MIN_MICROS..=MAX_MICROS).contains(&micros)).then_some(Kind::Timestamp {
        zoned: tz.is_some(),
    })
}

fn literal_kind(value: &ScalarValue) -> Option<Kind> {
    Some(match value {
        v if v.is_null() => return None,
        v if v.data_type().is_integer() => Kind::Integer,
        ScalarValue::Decimal128(Some(_), ..) | ScalarValue::Decimal256(Some(_), ..) => {
            Kind::Decimal
        }
        ScalarValue::Float64(Some(v)) if v.is_finite() => Kind::Float(DataType::Float64),
        ScalarValue::Float32(Some(v)) if v.is_finite() => Kind::Float(DataType::Float32),
        ScalarValue::Boolean(Some(_)) => Kind::Boolean,
        ScalarValue::Date32(Some(_)) => Kind::Date,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
            if !s.contains('\0') =>
        {
            Kind::Text {
                bytewise: true,
                deterministic: true,
                literal: true,
                padded: false,
                trailing_space: s.ends_with(' '),
            }
        }
        v => return timestamp_literal(v),
    })
}

fn integer_literal(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Literal(value, _) if value.data_type().is_integer() => value.to_string().parse().ok(),
        _ => None,
    }
}

/// Precision and scale of a decimal type.
fn decimal_shape(t: &DataType) -> Option<(i16, i16)> {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Some((*p as i16, *s as i16)),
        _ => None,
    }
}

/// Decimal digits of the widest value of an integer type.
fn integer_digits(t: &DataType) -> Option<i16> {
    match t {
        DataType::Int8 | DataType::UInt8 => Some(3),
        DataType::Int16 | DataType::UInt16 => Some(5),
        DataType::Int32 | DataType::UInt32 => Some(10),
        DataType::Int64 => Some(19),
        DataType::UInt64 => Some(20),
        _ => None,
    }
}

fn integer_bits(t: &DataType) -> Option<u8> {
    match t {
        DataType::Int16 => Some(16),
        DataType::Int32 => Some(32),
        DataType::Int64 => Some(64),
        _ => None,
    }
}

/// Text made of `parts`: bytewise (deterministic) when every non-literal
/// part is.
fn text_of(parts: &[Kind]) -> Option<Kind> {
    if !parts.iter().all(Kind::is_text) {
        return None;
    }
    let trailing_space = matches!(
        parts.last(),
        Some(Kind::Text {
            trailing_space: true,
            ..
        })
    );
    let columns: Vec<&Kind> = parts
        .iter()
        .filter(|k| matches!(k, Kind::Text { literal: false, .. }))
        .collect();
    Some(Kind::Text {
        bytewise: columns
            .iter()
            .all(|k| matches!(k, Kind::Text { bytewise: true, .. })),
        // Two columns may have different collations: only bytewise ones
        // are known to agree.
        deterministic: match columns.as_slice() {
            [one] => matches!(
                one,
                Kind::Text {
                    deterministic: true,
                    ..
                }
            ),
            many => many
                .iter()
                .all(|k| matches!(k, Kind::Text { bytewise: true, .. })),
        },
        literal: columns.is_empty(),
        padded: false,
        trailing_space,
    })
}

/// Text whose collation allows substring searches: every part
/// deterministic (literals take the column's collation).
fn searchable(parts: &[Kind]) -> bool {
    matches!(
        text_of(parts),
        Some(Kind::Text {
            deterministic: true,
            ..
        })
    )
}

/// Where an operand is used: decimal arithmetic that could pass 38 digits
/// is a value PostgreSQL computes where DataFusion fails, so it is only
/// compared when it cannot (see [`keeps_every_decimal_digit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Context {
    /// In a predicate: DataFusion and PostgreSQL must agree on every row.
    Compared,
    /// A result column or an aggregate's argument: read back into its Arrow
    /// type, where a value past `i128` is refused.
    Value,
}

/// The kind of an operand in a predicate.
fn kind(expr: &Expr, schema: &Schema) -> Option<Kind> {
    kind_in(expr, schema, Context::Compared)
}

/// The kind of an operand PostgreSQL computes exactly as DataFusion does.
fn kind_in(expr: &Expr, schema: &Schema, context: Context) -> Option<Kind> {
    match expr {
        Expr::Column(c) => column_kind(schema.field_with_name(&c.name).ok()?),
        Expr::Literal(value, _) => literal_kind(value),
        Expr::Cast(cast) => {
            let inner = kind_in(&cast.expr, schema, context)?;
            let from = cast_source_type(&cast.expr, schema)?;
            let to = cast.field.data_type();
            match (&inner, from, to) {
                // A decimal that holds every value of the source type.
                (Kind::Integer | Kind::Decimal, from, to) if to.is_decimal() => {
                    let (precision, scale) = decimal_shape(to)?;
                    let (from_precision, from_scale) = match inner {
                        Kind::Integer => (integer_digits(&from)?, 0),
                        _ => decimal_shape(&from)?,
                    };
                    (scale >= from_scale && precision - scale >= from_precision - from_scale)
                        .then_some(Kind::Decimal)
                }
                (Kind::Integer, from, to) => {
                    (integer_bits(&from)? <= integer_bits(to)?).then_some(Kind::Integer)
                }
                // Microseconds to nanoseconds, same zone: lossless.
                (
                    Kind::Timestamp { zoned },
                    DataType::Timestamp(TimeUnit::Microsecond, a),
                    DataType::Timestamp(TimeUnit::Nanosecond, b),
                ) if a == *b => Some(Kind::Timestamp { zoned: *zoned }),
                _ => None,
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Divide | Operator::Modulo => {
                let divisor = integer_literal(right)?;
                (kind_in(left, schema, context)? == Kind::Integer && divisor != 0 && divisor != -1)
                    .then_some(Kind::Integer)
            }
            Operator::StringConcat => text_of(&[
                kind_in(left, schema, context)?,
                kind_in(right, schema, context)?,
            ]),
            Operator::Plus | Operator::Minus | Operator::Multiply => {
                (kind_in(left, schema, context)? == Kind::Decimal
                    && kind_in(right, schema, context)? == Kind::Decimal
                    && keeps_every_decimal_digit(left, op, right, schema)
                    && (context == Context::Value
                        || decimal_digits(expr, schema).is_some_and(|(digits, _)| digits <= 38)))
                .then_some(Kind::Decimal)
            }
            _ => None,
        },
        Expr::ScalarFunction(f) => {
            let args = f
                .args
                .iter()
                .map(|a| kind_in(a, schema, context))
                .collect::<Option<Vec<_>>>()?;
            let float64 = Kind::Float(DataType::Float64);
            match (f.name(), args.as_slice()) {
                ("character_length" | "length" | "char_length" | "octet_length", [t])
                    if t.is_text() =>
                {
                    Some(Kind::Integer)
                }
                // Substring searches fail on nondeterministic collations
                // ("not supported for substring searches"), where
                // DataFusion answers: only deterministic text.
                ("strpos", [a, b]) if searchable(&args[..]) && a.is_text() && b.is_text() => {
                    Some(Kind::Integer)
                }
                ("starts_with", [a, b]) if searchable(&args[..]) && a.is_text() && b.is_text() => {
                    Some(Kind::Boolean)
                }
                ("btrim" | "ltrim" | "rtrim", [t]) => text_of(std::slice::from_ref(t)),
                // DataFusion inserts the replacement between characters
                // when the searched string is empty; PostgreSQL changes nothing.
                ("replace", [_, _, _])
                    if searchable(&args[..])
                        && matches!(&f.args[1], Expr::Literal(v, _) if !v.is_null() && v.to_string() != "") =>
                {
                    text_of(&args)
                }
                ("abs" | "ceil" | "floor", [k]) if *k == float64 => Some(float64),
                // Truncation to a calendar unit, in UTC for zoned values (the
                // session's zone). Not `week` (DataFusion's and PostgreSQL's
                // agree, but untested) or `quarter`.
                ("date_trunc", [Kind::Text { literal: true, .. }, t @ Kind::Timestamp { .. }])
                    if matches!(&f.args[0], Expr::Literal(v, _)
                        if matches!(v.to_string().as_str(), "year" | "month" | "day" | "hour" | "minute" | "second")) =>
                {
                    Some(t.clone())
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `Decimal128` type DataFusion gives a decimal operand.
fn decimal128_type(expr: &Expr, schema: &Schema) -> Option<(u8, i8)> {
    let data_type = match expr {
        Expr::Column(c) => schema.field_with_name(&c.name).ok()?.data_type().clone(),
        Expr::Literal(value, _) => value.data_type(),
        Expr::Cast(cast) => cast.field.data_type().clone(),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let l = decimal128_type(left, schema)?;
            let r = decimal128_type(right, schema)?;
            BinaryTypeCoercer::new(
                &DataType::Decimal128(l.0, l.1),
                op,
                &DataType::Decimal128(r.0, r.1),
            )
            .get_result_type()
            .ok()?
        }
        _ => return None,
    };
    match data_type {
        DataType::Decimal128(p, s) => Some((p, s)),
        _ => None,
    }
}

/// Whether DataFusion's `left op right` (`+`, `-`, `*` of decimals) keeps
/// every digit: its result scale is the exact one (the larger scale for
/// `+`/`-`, the sum of the scales for `*`), so nothing is rounded away and
/// both compute the same number.
///
/// Past `i128` DataFusion's decimal arithmetic fails ("Arithmetic
/// overflow") where PostgreSQL's `numeric` stays exact. So in predicates the
/// operands' digits must keep any result within 38 ([`decimal_digits`]):
/// the rows are the same and a query that fails locally fails the same
/// way. As a result column or an aggregate's argument PostgreSQL's exact
/// value is read back into its Arrow type (a value past `i128` is refused as
/// "numeric out of range"): the same number where DataFusion has one.
fn keeps_every_decimal_digit(left: &Expr, op: &Operator, right: &Expr, schema: &Schema) -> bool {
    let (Some((_, ls)), Some((_, rs))) = (
        decimal128_type(left, schema),
        decimal128_type(right, schema),
    ) else {
        return false;
    };
    let exact_scale = match op {
        Operator::Multiply => ls + rs,
        _ => ls.max(rs),
    };
    let result = BinaryExpr::new(Box::new(left.clone()), *op, Box::new(right.clone()));
    decimal128_type(&Expr::BinaryExpr(result), schema).is_some_and(|(_, s)| s == exact_scale)
}

/// How many digits a decimal operand's unscaled value can have, and its
/// scale: a column's precision, a literal's own digits, and what `+`, `-`,
/// `*` and widening casts make of them.
fn decimal_digits(expr: &Expr, schema: &Schema) -> Option<(u32, i8)> {
    let digits_of = |v: i128| v.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1);
    match expr {
        Expr::Column(c) => match schema.field_with_name(&c.name).ok()?.data_type() {
            DataType::Decimal128(p, s) => Some((u32::from(*p), *s)),
            t => Some((u32::try_from(integer_digits(t)?).ok()?, 0)),
        },
        Expr::Literal(ScalarValue::Decimal128(Some(v), _, s), _) => Some((digits_of(*v), *s)),
        Expr::Literal(..) => Some((digits_of(literals::integer(expr)?), 0)),
        Expr::Cast(cast) => {
            let (digits, scale) = decimal_digits(&cast.expr, schema)?;
            let (_, to_scale) = decimal_shape(cast.field.data_type())?;
            let to_scale = i8::try_from(to_scale).ok()?;
            Some((
                digits + u32::try_from(to_scale.checked_sub(scale)?).ok()?,
                to_scale,
            ))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (ld, ls) = decimal_digits(left, schema)?;
            let (rd, rs) = decimal_digits(right, schema)?;
            match op {
                Operator::Multiply => Some((ld + rd, ls + rs)),
                Operator::Plus | Operator::Minus => {
                    let scale = ls.max(rs);
                    let widened = |d: u32, s: i8| d + u32::try_from(scale - s).unwrap_or(0);
                    Some((widened(ld, ls).max(widened(rd, rs)) + 1, scale))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The Arrow type of a cast's operand (a column or a literal).
fn cast_source_type(expr: &Expr, schema: &Schema) -> Option<DataType> {
    match expr {
        Expr::Column(c) => Some(schema.field_with_name(&c.name).ok()?.data_type().clone()),
        Expr::Literal(value, _) => Some(value.data_type()),
        _ => None,
    }
}

/// Two operands PostgreSQL compares exactly as DataFusion does: for
/// equality only (`equality`), or for order too.
fn comparable(left: &Kind, right: &Kind, equality: bool) -> bool {
    match (left, right) {
        (
            Kind::Text {
                bytewise: a,
                deterministic: da,
                literal: la,
                padded: pa,
                trailing_space: ta,
            },
            Kind::Text {
                bytewise: b,
                deterministic: db,
                literal: lb,
                padded: pb,
                trailing_space: tb,
            },
        ) => {
            // `char(n)` ignores a literal's trailing spaces; its values,
            // read without padding, would not. Against `text`, PostgreSQL
            // compares as `char(n)` too ('SHIP' = 'SHIP  '), DataFusion not.
            if (*pa && *tb) || (*pb && *ta) || (!*la && !*lb && pa != pb) {
                return false;
            }
            // Two columns: bytewise both (they may have different
            // collations, which PostgreSQL refuses to compare); a column
            // and a literal: equality needs a deterministic collation,
            // order a bytewise one.
            let equal_enough = if *la || *lb { *da && *db } else { *a && *b };
            !(*la && *lb) && if equality { equal_enough } else { *a && *b }
        }
        // numeric and integers compare exactly in both (a `sum` of
        // integers, numeric in PostgreSQL, against an integer).
        (Kind::Decimal, Kind::Integer) | (Kind::Integer, Kind::Decimal) => true,
        (a, b) => a == b,
    }
}

fn is_text_pattern_without_backslash(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(p))
            | ScalarValue::Utf8View(Some(p))
            | ScalarValue::LargeUtf8(Some(p)),
            _,
        ) => !p.contains('\\') && !p.contains('\0'),
        _ => false,
    }
}

impl PushdownPolicy for PostgresPushdown {
    /// Integers, booleans (false before true), dates, decimals of
    /// `numeric(p,s)` columns and bytewise text order the same in both; floats do not quite (-0 and 0 tie in
    /// PostgreSQL, not in DataFusion's total order).
    fn sorts_exactly(&self, field: &Field) -> bool {
        field.data_type().is_integer()
            || matches!(
                field.data_type(),
                DataType::Boolean | DataType::Date32 | DataType::Decimal128(..)
            )
            || is_bytewise_text_field(field)
    }

    /// Integers, booleans, dates, `numeric(p,s)` decimals (every value has
    /// scale s) and deterministic text: one value, one
    /// representation (not floats: -0 and 0, NaN; not char(n): trailing
    /// spaces; not nondeterministic collations).
    fn equals_exactly(&self, field: &Field) -> bool {
        field.data_type().is_integer()
            || matches!(
                field.data_type(),
                DataType::Boolean | DataType::Date32 | DataType::Decimal128(..)
            )
            || is_deterministic_text_field(field)
    }

    /// `sum` of integers is `numeric` in PostgreSQL (`bigint` in DataFusion).
    fn sum_type(&self, argument: &DataType) -> Option<DataType> {
        argument.is_integer().then_some(DataType::Decimal128(38, 0))
    }

    /// Text keys only under the same collation: PostgreSQL refuses to
    /// compare two columns of different implicit collations.
    fn equals_exactly_between(&self, left: &Field, right: &Field) -> bool {
        self.equals_exactly(left)
            && self.equals_exactly(right)
            // `char(n)` against `text` compares as `char(n)` in PostgreSQL
            // (trailing spaces ignored), not in DataFusion.
            && is_padded_text_field(left) == is_padded_text_field(right)
            && (!is_string_field(left)
                || left.metadata().get(PG_COLLATION) == right.metadata().get(PG_COLLATION))
    }

    /// Every operand with a kind (see the module docs), decimal arithmetic
    /// past 38 digits included (see [`keeps_every_decimal_digit`]).
    fn computes_exactly(&self, expr: &Expr, schema: &Schema) -> bool {
        kind_in(expr, schema, Context::Value).is_some()
    }

    fn leaf(&self, expr: &Expr, schema: &Schema) -> Capability {
        let exact = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                literals::is_comparison(op)
                    && match (kind(left, schema), kind(right, schema)) {
                        (Some(l), Some(r)) => {
                            comparable(&l, &r, matches!(op, Operator::Eq | Operator::NotEq))
                        }
                        _ => false,
                    }
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                matches!(inner.as_ref(), Expr::Column(c) if schema.field_with_name(&c.name).is_ok())
                    || kind(inner, schema).is_some()
            }
            Expr::Column(_) | Expr::ScalarFunction(_) => kind(expr, schema) == Some(Kind::Boolean),
            // TRUE, FALSE and NULL mean the same in both.
            Expr::Literal(value, _) => value.data_type() == DataType::Boolean,
            // LIKE on deterministic text with a pattern free of backslashes
            // (the one escape rule the two could read differently); not
            // ILIKE, whose case folding differs outside ASCII.
            Expr::Like(like) => {
                !like.case_insensitive
                    && like.escape_char.is_none()
                    && matches!(
                        kind(&like.expr, schema),
                        Some(Kind::Text {
                            deterministic: true,
                            literal: false,
                            padded: false,
                            ..
                        })
                    )
                    && is_text_pattern_without_backslash(&like.pattern)
            }
            Expr::InList(list) => match kind(&list.expr, schema) {
                Some(k @ (Kind::Integer | Kind::Decimal | Kind::Date | Kind::Text { .. })) => {
                    list.list.iter().all(|item| {
                        matches!(item, Expr::Literal(..))
                            && kind(item, schema).is_some_and(|i| comparable(&k, &i, true))
                    })
                }
                _ => false,
            },
            Expr::Between(Between {
                expr, low, high, ..
            }) => match kind(expr, schema) {
                Some(k @ (Kind::Integer | Kind::Decimal | Kind::Date)) => {
                    [low, high].iter().all(|bound| {
                        matches!(bound.as_ref(), Expr::Literal(..))
                            && kind(bound, schema).is_some_and(|b| comparable(&k, &b, false))
                    })
                }
                _ => false,
            },
            _ => false,
        };
        Capability::exact_if(exact)
    }
}

/// PostgreSQL's names and string literals.
#[derive(Debug, Default)]
pub struct PostgresWriter;

impl crate::remote::SqlWriter for PostgresWriter {
    fn database(&self) -> &'static str {
        "PostgreSQL"
    }

    /// `"name"`, quotes doubled; PostgreSQL names hold no NUL and are not
    /// empty.
    fn identifier(&self, name: &str) -> datafusion::common::Result<String> {
        if name.is_empty() || name.contains('\0') {
            return Err(crate::remote::unwritable(self.database(), "name", name));
        }
        Ok(crate::remote::doubled(name, '"'))
    }

    /// `'value'` with quotes doubled; with a backslash, `E'...'` with
    /// backslashes doubled too, which reads the same whether
    /// `standard_conforming_strings` is on or off. PostgreSQL text holds no
    /// NUL.
    fn string(&self, value: &str) -> datafusion::common::Result<String> {
        if value.contains('\0') {
            return Err(crate::remote::unwritable(self.database(), "text", value));
        }
        Ok(if value.contains('\\') {
            format!(
                "E{}",
                crate::remote::doubled(&value.replace('\\', "\\\\"), '\'')
            )
        } else {
            crate::remote::doubled(value, '\'')
        })
    }

    fn parser_dialect(&self) -> &dyn datafusion::sql::sqlparser::dialect::Dialect {
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {}
    }
}
