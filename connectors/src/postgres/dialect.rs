//! How plans become PostgreSQL SQL, and which filters PostgreSQL computes
//! exactly as DataFusion does.
//!
//! Exact today, and nothing else (everything else runs locally):
//! comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`), `IN` lists and `BETWEEN`
//! between integer columns and integer literals (or two integer columns);
//! `IS [NOT] NULL` on any column; a boolean column itself; boolean literals
//! (`TRUE`, `FALSE`, `NULL`); AND, OR and NOT of
//! those; and the same comparisons and IN lists between `text`/`varchar`
//! columns whose collation is `C` or `POSIX` (bytewise, as DataFusion) and
//! string literals, and `LIKE` / `NOT LIKE` on such columns with a pattern
//! that has no backslash; and comparisons between `double precision` /
//! `real` columns and finite literals of the same type (NaN sorts highest
//! and equals itself, -0 equals 0, in both); and comparisons between `date`
//! columns and date literals. Other collations (case, accents, ICU rules), `char(n)`
//! (trailing spaces), `citext`, floats (NaN ordering) and timestamps (time
//! zones) stay local until a differential test proves a rule.
//!
//! For sub-plan federation (joins, GROUP BY, DISTINCT), values are told
//! apart exactly for integers, booleans, dates and bytewise text; ORDER BY
//! and min/max order integers, booleans, dates and bytewise text exactly.

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;

use super::types::{CAST_TO_TEXT, PG_COLLATION, PG_TYPE};
use crate::remote::{Capability, PushdownPolicy};

/// DataFusion's PostgreSQL unparser dialect.
pub type PostgresDialect = PostgreSqlDialect;

/// PostgreSQL's pushdown rules (see the module docs).
#[derive(Debug, Default)]
pub struct PostgresPushdown;

fn column_type<'a>(expr: &Expr, schema: &'a Schema) -> Option<&'a DataType> {
    match expr {
        Expr::Column(c) => schema.field_with_name(&c.name).ok().map(|f| f.data_type()),
        _ => None,
    }
}

fn is_integer_column(expr: &Expr, schema: &Schema) -> bool {
    column_type(expr, schema).is_some_and(|t| t.is_integer())
}

fn is_integer_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value, _) => value.data_type().is_integer(),
        _ => false,
    }
}

fn is_integer_operand(expr: &Expr, schema: &Schema) -> bool {
    is_integer_column(expr, schema) || is_integer_literal(expr)
}

fn is_float_column(expr: &Expr, schema: &Schema) -> bool {
    column_type(expr, schema).is_some_and(|t| matches!(t, DataType::Float64 | DataType::Float32))
}

/// A finite float literal (NaN and infinities would not render as SQL numbers).
fn is_float_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(ScalarValue::Float64(Some(v)), _) => v.is_finite(),
        Expr::Literal(ScalarValue::Float32(Some(v)), _) => v.is_finite(),
        _ => false,
    }
}

/// Two float operands of the same Arrow type: a column and a finite literal,
/// or two columns. PostgreSQL orders NaN above everything and equal to
/// itself and -0 equal to 0, as DataFusion does (the differential test
/// checks it).
fn are_float_operands(left: &Expr, right: &Expr, schema: &Schema) -> bool {
    let operand_type = |e: &Expr| match e {
        Expr::Literal(v, _) if is_float_literal(e) => Some(v.data_type()),
        Expr::Column(_) if is_float_column(e, schema) => column_type(e, schema).cloned(),
        _ => None,
    };
    (is_float_column(left, schema) || is_float_column(right, schema))
        && operand_type(left).is_some()
        && operand_type(left) == operand_type(right)
}

/// A `date` column compared with a date literal: both are whole days.
fn are_date_operands(left: &Expr, right: &Expr, schema: &Schema) -> bool {
    let is_date = |e: &Expr| match e {
        Expr::Column(_) => column_type(e, schema) == Some(&DataType::Date32),
        Expr::Literal(ScalarValue::Date32(Some(_)), _) => true,
        _ => false,
    };
    (column_type(left, schema) == Some(&DataType::Date32)
        || column_type(right, schema) == Some(&DataType::Date32))
        && is_date(left)
        && is_date(right)
}

/// A `text` or `varchar` column whose collation compares bytes (`C`,
/// `POSIX`), exactly as DataFusion compares UTF-8 strings. Not `char(n)`
/// (it ignores trailing spaces), `citext`, or types merely read as text.
fn is_bytewise_text_column(expr: &Expr, schema: &Schema) -> bool {
    let Expr::Column(c) = expr else { return false };
    schema
        .field_with_name(&c.name)
        .is_ok_and(is_bytewise_text_field)
}

/// A `text` or `varchar` field with a `C` or `POSIX` collation.
fn is_bytewise_text_field(field: &Field) -> bool {
    let metadata = field.metadata();
    matches!(
        metadata.get(PG_TYPE).map(String::as_str),
        Some("text" | "varchar")
    ) && matches!(
        metadata.get(PG_COLLATION).map(String::as_str),
        Some("C" | "POSIX")
    ) && !metadata.contains_key(CAST_TO_TEXT)
}

/// A string literal PostgreSQL can hold (no NUL character).
fn is_text_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => !s.contains('\0'),
        _ => false,
    }
}

fn is_text_operand(expr: &Expr, schema: &Schema) -> bool {
    is_bytewise_text_column(expr, schema) || is_text_literal(expr)
}

impl PushdownPolicy for PostgresPushdown {
    /// Integers, booleans (false before true), dates and bytewise text
    /// order the same in both; floats do not quite (-0 and 0 tie in PostgreSQL, not
    /// in DataFusion's total order).
    fn sorts_exactly(&self, field: &Field) -> bool {
        field.data_type().is_integer()
            || matches!(field.data_type(), DataType::Boolean | DataType::Date32)
            || is_bytewise_text_field(field)
    }

    /// Integers, booleans, dates and bytewise text: one value, one
    /// representation (not floats: -0 and 0, NaN; not char(n): trailing
    /// spaces; not other collations).
    fn equals_exactly(&self, field: &Field) -> bool {
        field.data_type().is_integer()
            || matches!(field.data_type(), DataType::Boolean | DataType::Date32)
            || is_bytewise_text_field(field)
    }

    fn leaf(&self, expr: &Expr, schema: &Schema) -> Capability {
        let exact = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let comparison = matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                );
                let integers = (is_integer_column(left, schema)
                    || is_integer_column(right, schema))
                    && is_integer_operand(left, schema)
                    && is_integer_operand(right, schema);
                let texts = (is_bytewise_text_column(left, schema)
                    || is_bytewise_text_column(right, schema))
                    && is_text_operand(left, schema)
                    && is_text_operand(right, schema);
                let floats = are_float_operands(left, right, schema);
                let dates = are_date_operands(left, right, schema);
                comparison && (integers || texts || floats || dates)
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => column_type(inner, schema).is_some(),
            Expr::Column(_) => column_type(expr, schema) == Some(&DataType::Boolean),
            // TRUE, FALSE and NULL mean the same in both.
            Expr::Literal(value, _) => value.data_type() == DataType::Boolean,
            // LIKE on bytewise text with a pattern free of backslashes (the
            // one escape rule the two could read differently); not ILIKE,
            // whose case folding differs outside ASCII.
            Expr::Like(like) => {
                !like.case_insensitive
                    && like.escape_char.is_none()
                    && is_bytewise_text_column(&like.expr, schema)
                    && is_text_literal(&like.pattern)
                    && !matches!(
                        like.pattern.as_ref(),
                        Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)) | ScalarValue::LargeUtf8(Some(p)), _)
                            if p.contains('\\')
                    )
            }
            Expr::InList(list) => {
                is_integer_column(&list.expr, schema) && list.list.iter().all(is_integer_literal)
                    || is_bytewise_text_column(&list.expr, schema)
                        && list.list.iter().all(is_text_literal)
            }
            Expr::Between(Between {
                expr, low, high, ..
            }) => {
                is_integer_column(expr, schema)
                    && is_integer_literal(low)
                    && is_integer_literal(high)
            }
            _ => false,
        };
        if exact {
            Capability::Exact
        } else {
            Capability::Unsupported
        }
    }
}
