//! How plans become SQLite SQL, and which expressions SQLite computes
//! exactly as DataFusion does.
//!
//! Operands with a kind (anything else keeps its predicate local):
//!
//! * integers: INTEGER-affinity columns, integer literals, `x / n` and
//!   `x % n` for a literal `n` other than 0 and -1 (SQLite truncates toward
//!   zero and keeps the dividend's sign, as DataFusion). Not `+`, `-`, `*`:
//!   SQLite turns an overflowing integer into a float;
//! * text: TEXT-affinity columns with the `BINARY` collation (memcmp, as
//!   DataFusion) and literals, `||`, and `length` (characters) as an integer.
//!   Not `NOCASE`/`RTRIM` columns, untyped columns (numbers and text compare
//!   differently), views' columns (their collation is unknown), and not
//!   `LIKE`: SQLite's is case-insensitive for ASCII;
//! * booleans (stored as 0 and 1).
//!
//! Dates and timestamps are never pushed: SQLite keeps them as text in
//! whatever form they were written (`2024-1-5`, `2024-01-05 13:45:00`,
//! with spaces), which Moltres reads as one date but SQLite compares,
//! groups, joins and sorts as different strings.
//!
//! Exact predicates: comparisons between operands of one kind (text only
//! when bytewise, not two literals), `IN` lists of literals, `BETWEEN`
//! integer literals, `IS [NOT] NULL`, boolean columns and literals; AND, OR
//! and NOT of those. Timestamps (text in several formats) and floats stay
//! local.

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::dialect::SqliteDialect as DataFusionSqliteDialect;

use super::types::{SQLITE_COLLATION, SQLITE_DECLARED};
use crate::remote::pushdown::literals;
use crate::remote::{Capability, PushdownPolicy};

/// DataFusion's SQLite unparser dialect.
pub type SqliteDialect = DataFusionSqliteDialect;

/// SQLite's pushdown rules (see the module docs).
#[derive(Debug, Default)]
pub struct SqlitePushdown;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Text { literal: bool },
    Boolean,
}

fn declared(field: &Field) -> String {
    field
        .metadata()
        .get(SQLITE_DECLARED)
        .map(|d| d.to_ascii_uppercase())
        .unwrap_or_default()
}

/// A TEXT-affinity column compared with memcmp.
fn is_bytewise_text_field(field: &Field) -> bool {
    let declared = declared(field);
    field.data_type() == &DataType::Utf8
        && (declared.contains("CHAR") || declared.contains("CLOB") || declared.contains("TEXT"))
        && field.metadata().get(SQLITE_COLLATION).map(String::as_str) == Some("BINARY")
}

fn field_kind(field: &Field) -> Option<Kind> {
    match field.data_type() {
        // A column of a table declared INT..., or a value a federated
        // part computed as an integer (count(*)).
        DataType::Int64
            if field
                .metadata()
                .get(SQLITE_DECLARED)
                .is_none_or(|_| declared(field).contains("INT")) =>
        {
            Some(Kind::Integer)
        }
        DataType::Utf8 if is_bytewise_text_field(field) => Some(Kind::Text { literal: false }),
        DataType::Boolean => Some(Kind::Boolean),
        _ => None,
    }
}

fn kind(expr: &Expr, schema: &Schema) -> Option<Kind> {
    match expr {
        Expr::Column(c) => field_kind(schema.field_with_name(&c.name).ok()?),
        Expr::Literal(value, _) => match value {
            v if v.is_null() => None,
            v if v.data_type().is_integer() => Some(Kind::Integer),
            // Rendered as CAST('...' AS DATE), which SQLite reads as the
            // number 2024: date literals stay local.
            ScalarValue::Date32(Some(_)) => None,
            ScalarValue::Boolean(Some(_)) => Some(Kind::Boolean),
            _ => literals::text(expr).map(|_| Kind::Text { literal: true }),
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Divide | Operator::Modulo => (kind(left, schema)? == Kind::Integer
                && literals::is_safe_divisor(right))
            .then_some(Kind::Integer),
            Operator::StringConcat => match (kind(left, schema)?, kind(right, schema)?) {
                (Kind::Text { literal: a }, Kind::Text { literal: b }) => {
                    Some(Kind::Text { literal: a && b })
                }
                _ => None,
            },
            _ => None,
        },
        Expr::ScalarFunction(f) => match (f.name(), f.args.as_slice()) {
            ("character_length" | "length" | "char_length", [arg])
                if matches!(kind(arg, schema)?, Kind::Text { .. }) =>
            {
                Some(Kind::Integer)
            }
            _ => None,
        },
        _ => None,
    }
}

fn comparable(left: Kind, right: Kind) -> bool {
    match (left, right) {
        (Kind::Text { literal: a }, Kind::Text { literal: b }) => !(a && b),
        (a, b) => a == b,
    }
}

impl PushdownPolicy for SqlitePushdown {
    /// SQLite in process on the benchmark machine: 600 K rows/s of
    /// `lineitem` read and decoded, a row found through an index in about
    /// a microsecond (no server, no wire), a key of a list in about 5 (most
    /// of it writing and parsing the SQL). It joins by nested
    /// loops, but a lookup costs about what reading the row here would, so
    /// a join of two of its tables is left to it as to a hashing database.
    fn costs(&self) -> crate::remote::cost::Costs {
        crate::remote::cost::Costs {
            query: 50.0,
            row: 1.6,
            key: 5.0,
            lookup: 1.0,
            nested_loop_joins: false,
        }
    }

    fn sorts_exactly(&self, field: &Field) -> bool {
        field_kind(field).is_some()
    }

    fn equals_exactly(&self, field: &Field) -> bool {
        field_kind(field).is_some()
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
                    || kind(inner, schema).is_some()
            }
            Expr::Column(_) => kind(expr, schema) == Some(Kind::Boolean),
            Expr::Literal(value, _) => value.data_type() == DataType::Boolean,
            Expr::InList(list) => kind(&list.expr, schema).is_some_and(|k| {
                list.list.iter().all(|item| {
                    matches!(item, Expr::Literal(..))
                        && kind(item, schema).is_some_and(|i| comparable(k, i))
                })
            }),
            Expr::Between(Between {
                expr, low, high, ..
            }) => {
                kind(expr, schema) == Some(Kind::Integer)
                    && literals::integer(low).is_some()
                    && literals::integer(high).is_some()
            }
            _ => false,
        };
        Capability::exact_if(exact)
    }
}

/// SQLite's names and string literals.
#[derive(Debug, Default)]
pub struct SqliteWriter;

impl crate::remote::SqlWriter for SqliteWriter {
    fn database(&self) -> &'static str {
        "SQLite"
    }

    /// `` `name` ``, backquotes doubled (not `"name"`: SQLite reads a
    /// double-quoted name that matches no column as a string).
    fn identifier(&self, name: &str) -> datafusion::common::Result<String> {
        if name.contains('\0') {
            return Err(crate::remote::unwritable(self.database(), "name", name));
        }
        Ok(crate::remote::doubled(name, '`'))
    }

    /// `'value'` with quotes doubled (SQLite has no backslash escapes); a
    /// value holding NUL, which SQL text cannot, as `CAST(X'...' AS TEXT)`.
    fn string(&self, value: &str) -> datafusion::common::Result<String> {
        Ok(if value.contains('\0') {
            format!("CAST(X'{}' AS TEXT)", crate::remote::hex(value.as_bytes()))
        } else {
            crate::remote::doubled(value, '\'')
        })
    }

    fn parser_dialect(&self) -> &dyn datafusion::sql::sqlparser::dialect::Dialect {
        &datafusion::sql::sqlparser::dialect::SQLiteDialect {}
    }

    fn read_back(&self, token: &datafusion::sql::sqlparser::tokenizer::Token) -> Option<String> {
        crate::remote::read_back_plain_or_hex(token)
    }
}
