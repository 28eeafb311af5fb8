//! How plans become PostgreSQL SQL, and which filters PostgreSQL computes
//! exactly as DataFusion does.
//!
//! Exact today, and nothing else (everything else runs locally):
//! comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`), `IN` lists and `BETWEEN`
//! between integer columns and integer literals (or two integer columns);
//! `IS [NOT] NULL` on any column; a boolean column itself; boolean literals
//! (`TRUE`, `FALSE`, `NULL`); AND, OR and NOT of
//! those. Integers compare the same everywhere; text depends on collations,
//! floats on NaN ordering and timestamps on time zones, so those stay local
//! until the differential tests prove a rule.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;

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

impl PushdownPolicy for PostgresPushdown {
    fn leaf(&self, expr: &Expr, schema: &Schema) -> Capability {
        let exact = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                ) && (is_integer_column(left, schema) || is_integer_column(right, schema))
                    && is_integer_operand(left, schema)
                    && is_integer_operand(right, schema)
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => column_type(inner, schema).is_some(),
            Expr::Column(_) => column_type(expr, schema) == Some(&DataType::Boolean),
            // TRUE, FALSE and NULL mean the same in both.
            Expr::Literal(value, _) => value.data_type() == DataType::Boolean,
            Expr::InList(list) => {
                is_integer_column(&list.expr, schema) && list.list.iter().all(is_integer_literal)
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
