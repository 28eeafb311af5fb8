//! How plans become MySQL SQL, and which expressions MySQL/MariaDB compute
//! exactly as DataFusion does.
//!
//! Operands with a kind (anything else keeps its predicate local):
//!
//! * integers: integer columns (signed or unsigned, not `tinyint(1)`) and
//!   integer literals. No arithmetic: `/` is decimal division in MySQL and
//!   `%` by zero is NULL;
//! * `double` columns and double literals written in at most 24
//!   characters (longer ones lose digits in MySQL's DECIMAL literals);
//! * `varchar`/`text` columns whose collation compares bytes without
//!   padding (`utf8mb4_nopad_bin`, `utf8mb4_0900_bin`), and string
//!   literals. Not the default `_ci`/`_ai` collations (case and accents),
//!   not `utf8mb4_bin` (PAD SPACE: `'a' = 'a '`), not `char(n)` (trailing
//!   spaces stripped), `enum` (ordered by position) or `set`;
//! * `date`, `datetime` and `timestamp` columns and literals (sessions run
//!   with `time_zone = '+00:00'`).
//!
//! Exact predicates: comparisons between operands of one kind (text only
//! with a column), `IN` lists and `BETWEEN` of literals, `IS [NOT] NULL`,
//! a `tinyint(1)` column by itself (nonzero is true in both; not `= TRUE`,
//! which MySQL reads as `= 1`), `LIKE` on bytewise text with a pattern free
//! of backslashes; AND, OR and NOT of those. Strings are never joined with
//! `||` (OR in MySQL) because no concatenation is pushed.
//!
//! ORDER BY goes to MySQL only for NOT NULL columns: MySQL sorts NULLs
//! first ascending and its dialect cannot say NULLS FIRST/LAST.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr};
use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    DateFieldExtractStyle, Dialect, DistinctFromStyle, IntervalStyle,
    MySqlDialect as DataFusionMySqlDialect,
};

use super::types::{CAST_TO_TEXT, MYSQL_COLLATION, MYSQL_TYPE};
use crate::remote::pushdown::literals;
use crate::remote::{Capability, PushdownPolicy};

/// DataFusion's MySQL unparser dialect (backquoted identifiers), with
/// timestamps cast to `DATETIME(6)`: DataFusion's `DATETIME` drops the
/// fractional seconds of a literal (`'... 00:00:00.250'` becomes
/// `00:00:00`), so comparisons, key lists and updates would be off.
pub struct MysqlDialect {
    inner: DataFusionMySqlDialect,
}

impl Default for MysqlDialect {
    fn default() -> Self {
        Self {
            inner: DataFusionMySqlDialect {},
        }
    }
}

impl std::fmt::Debug for MysqlDialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MysqlDialect")
    }
}

impl Dialect for MysqlDialect {
    fn supports_qualify(&self) -> bool {
        self.inner.supports_qualify()
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }

    fn supports_nulls_first_in_sort(&self) -> bool {
        self.inner.supports_nulls_first_in_sort()
    }

    fn interval_style(&self) -> IntervalStyle {
        self.inner.interval_style()
    }

    fn utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.utf8_cast_dtype()
    }

    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.large_utf8_cast_dtype()
    }

    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        self.inner.date_field_extract_style()
    }

    fn distinct_from_style(&self) -> DistinctFromStyle {
        self.inner.distinct_from_style()
    }

    fn int64_cast_dtype(&self) -> ast::DataType {
        self.inner.int64_cast_dtype()
    }

    fn int32_cast_dtype(&self) -> ast::DataType {
        self.inner.int32_cast_dtype()
    }

    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, _tz: &Option<Arc<str>>) -> ast::DataType {
        ast::DataType::Datetime(Some(6))
    }

    fn requires_derived_table_alias(&self) -> bool {
        self.inner.requires_derived_table_alias()
    }

    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> datafusion::common::Result<Option<ast::Expr>> {
        self.inner
            .scalar_function_to_sql_overrides(unparser, func_name, args)
    }
}

/// MySQL's pushdown rules (see the module docs).
#[derive(Debug, Default)]
pub struct MysqlPushdown;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Double,
    Text { literal: bool },
    Date,
    Timestamp { zoned: bool },
    Boolean,
}

fn mysql_type(field: &Field) -> &str {
    field
        .metadata()
        .get(MYSQL_TYPE)
        .map(String::as_str)
        .unwrap_or("")
}

/// A `varchar`/`text` column compared byte by byte without padding.
fn is_bytewise_text_field(field: &Field) -> bool {
    let t = mysql_type(field);
    field.data_type() == &DataType::Utf8
        && !field.metadata().contains_key(CAST_TO_TEXT)
        && (t.starts_with("varchar") || t.ends_with("text"))
        && matches!(
            field.metadata().get(MYSQL_COLLATION).map(String::as_str),
            Some("utf8mb4_nopad_bin" | "utf8mb4_0900_bin")
        )
}

fn field_kind(field: &Field) -> Option<Kind> {
    Some(match field.data_type() {
        DataType::Boolean => Kind::Boolean,
        t if t.is_integer() => Kind::Integer,
        DataType::Float64 => Kind::Double,
        DataType::Utf8 if is_bytewise_text_field(field) => Kind::Text { literal: false },
        DataType::Date32 => Kind::Date,
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Kind::Timestamp {
            zoned: tz.is_some(),
        },
        _ => return None,
    })
}

fn kind(expr: &Expr, schema: &Schema) -> Option<Kind> {
    match expr {
        Expr::Column(c) => field_kind(schema.field_with_name(&c.name).ok()?),
        Expr::Literal(value, _) => match value {
            v if v.is_null() => None,
            v if v.data_type().is_integer() => Some(Kind::Integer),
            ScalarValue::Float64(Some(f)) if is_plain_double(*f) => Some(Kind::Double),
            ScalarValue::Date32(Some(_)) => Some(Kind::Date),
            ScalarValue::TimestampMicrosecond(Some(_), tz) => Some(Kind::Timestamp {
                zoned: tz.is_some(),
            }),
            ScalarValue::TimestampNanosecond(Some(v), tz) if v % 1000 == 0 => {
                Some(Kind::Timestamp {
                    zoned: tz.is_some(),
                })
            }
            _ => literals::text(expr).map(|_| Kind::Text { literal: true }),
        },
        _ => None,
    }
}

/// A double the unparser writes as a short decimal MySQL reads back as the
/// same double (`1e-301` would be written with 300 zeros, which MySQL
/// truncates to a 65-digit DECIMAL: 0).
fn is_plain_double(value: f64) -> bool {
    let text = value.to_string();
    value.is_finite() && text.len() <= 24 && text.parse::<f64>() == Ok(value)
}

fn comparable(left: Kind, right: Kind) -> bool {
    match (left, right) {
        (Kind::Text { literal: a }, Kind::Text { literal: b }) => !(a && b),
        (Kind::Boolean, _) | (_, Kind::Boolean) => false,
        (a, b) => a == b,
    }
}

impl PushdownPolicy for MysqlPushdown {
    /// MariaDB 10.11 on the benchmark machine (default 128 MiB buffer
    /// pool): 230 K rows/s of `lineitem` over the wire; 40 K keys of a
    /// primary key found in 0.3 to 0.8 s (8 us a key, 12 with writing it); a row reached through a secondary index
    /// 13 to 30 us once the table outgrows the buffer pool (300 K orders
    /// of 30 K customers through `o_custkey`: 5.6 s, against 0.6 s to scan
    /// all 1.5 M); joins by nested loops (two years of `orders` joined to
    /// `customer`: 20 s).
    fn costs(&self) -> crate::remote::cost::Costs {
        crate::remote::cost::Costs {
            query: 500.0,
            row: 2.5,
            key: 12.0,
            lookup: 13.0,
            nested_loop_joins: true,
        }
    }

    /// `sum` of integers is `DECIMAL` in MySQL (`bigint` in DataFusion).
    fn sum_type(&self, argument: &DataType) -> Option<DataType> {
        argument.is_integer().then_some(DataType::Decimal128(38, 0))
    }

    fn sorts_exactly(&self, field: &Field) -> bool {
        !field.is_nullable()
            && matches!(
                field_kind(field),
                Some(Kind::Integer | Kind::Date | Kind::Text { .. })
            )
    }

    /// NULLs do not matter to `min` and `max`.
    fn orders_values_exactly(&self, field: &Field) -> bool {
        matches!(
            field_kind(field),
            Some(Kind::Integer | Kind::Date | Kind::Text { .. })
        )
    }

    fn equals_exactly(&self, field: &Field) -> bool {
        matches!(
            field_kind(field),
            Some(Kind::Integer | Kind::Date | Kind::Text { .. })
        )
    }

    fn leaf(&self, expr: &Expr, schema: &Schema) -> Capability {
        let exact = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                literals::is_comparison(op)
                    && match (kind(left, schema), kind(right, schema)) {
                        (Some(l), Some(r)) => comparable(l, r),
                        _ => false,
                    }
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                matches!(inner.as_ref(), Expr::Column(c) if schema.field_with_name(&c.name).is_ok())
            }
            Expr::Column(_) => kind(expr, schema) == Some(Kind::Boolean),
            Expr::Literal(value, _) => value.data_type() == DataType::Boolean,
            Expr::Like(like) => {
                !like.case_insensitive
                    && like.escape_char.is_none()
                    && kind(&like.expr, schema) == Some(Kind::Text { literal: false })
                    && literals::text(&like.pattern).is_some_and(|p| !p.contains('\\'))
            }
            Expr::InList(list) => kind(&list.expr, schema).is_some_and(|k| {
                list.list.iter().all(|item| {
                    matches!(item, Expr::Literal(..))
                        && kind(item, schema).is_some_and(|i| comparable(k, i))
                })
            }),
            Expr::Between(Between {
                expr, low, high, ..
            }) => match kind(expr, schema) {
                Some(k @ (Kind::Integer | Kind::Date)) => [low, high].iter().all(|bound| {
                    matches!(bound.as_ref(), Expr::Literal(..))
                        && kind(bound, schema).is_some_and(|b| comparable(k, b))
                }),
                _ => false,
            },
            _ => false,
        };
        Capability::exact_if(exact)
    }
}

/// MySQL's and MariaDB's names and string literals.
#[derive(Debug, Default)]
pub struct MysqlWriter;

impl crate::remote::SqlWriter for MysqlWriter {
    fn database(&self) -> &'static str {
        "MySQL"
    }

    /// `` `name` ``, backquotes doubled (the same in every `sql_mode`).
    fn identifier(&self, name: &str) -> datafusion::common::Result<String> {
        if name.is_empty() || name.contains('\0') {
            return Err(crate::remote::unwritable(self.database(), "name", name));
        }
        Ok(crate::remote::doubled(name, '`'))
    }

    /// `'value'` with quotes doubled when the value holds no backslash and
    /// no control character: such a literal reads the same with and without
    /// `NO_BACKSLASH_ESCAPES`. Any other value is written as UTF-8 bytes,
    /// `_utf8mb4 X'...'`, which no `sql_mode` reads differently either.
    fn string(&self, value: &str) -> datafusion::common::Result<String> {
        Ok(if value.chars().any(|c| c == '\\' || c.is_control()) {
            format!("_utf8mb4 X'{}'", crate::remote::hex(value.as_bytes()))
        } else {
            crate::remote::doubled(value, '\'')
        })
    }

    fn parser_dialect(&self) -> &dyn datafusion::sql::sqlparser::dialect::Dialect {
        &datafusion::sql::sqlparser::dialect::MySqlDialect {}
    }

    fn read_back(&self, token: &datafusion::sql::sqlparser::tokenizer::Token) -> Option<String> {
        crate::remote::read_back_plain_or_hex(token)
    }
}
