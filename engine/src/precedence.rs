//! Repairs of what the SQL parser (sqlparser 0.62) gets wrong, applied to
//! every statement right after it is parsed.
//!
//! `a IS [NOT] DISTINCT FROM b AND c` is `(a IS DISTINCT FROM b) AND c` in
//! SQL (PostgreSQL, the standard: `IS` binds tighter than `NOT`, `AND` and
//! `OR`), but sqlparser parses the right side with the lowest precedence
//! and builds `a IS DISTINCT FROM (b AND c)`: a different answer, or a type
//! error. Parentheses the user wrote stay (they are `Expr::Nested`), so the
//! right side is re-associated only where the parser took too much.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, visit_expressions_mut};

/// Re-associates `IS [NOT] DISTINCT FROM` over `AND`, `OR` and `XOR` in
/// `statement` (see the module).
pub fn repair(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(inner) => {
            let _ = visit_expressions_mut(inner.as_mut(), repair_expr);
        }
        DFStatement::CopyTo(copy) => {
            if let CopyToSource::Query(query) = &mut copy.source {
                let _ = visit_expressions_mut(query.as_mut(), repair_expr);
            }
        }
        DFStatement::Explain(explain) => repair(explain.statement.as_mut()),
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => {}
    }
}

fn logical(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor
    )
}

fn repair_expr(expr: &mut Expr) -> ControlFlow<()> {
    let (Expr::IsDistinctFrom(_, right) | Expr::IsNotDistinctFrom(_, right)) = expr else {
        return ControlFlow::Continue(());
    };
    if !matches!(right.as_ref(), Expr::BinaryOp { op, .. } if logical(op)) {
        return ControlFlow::Continue(());
    }
    let not = matches!(expr, Expr::IsNotDistinctFrom(..));
    let taken = std::mem::replace(
        expr,
        Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
    );
    let (Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right)) = taken else {
        unreachable!("matched above");
    };
    *expr = attach(*left, *right, not);
    ControlFlow::Continue(())
}

/// `left IS [NOT] DISTINCT FROM` the leftmost operand of `right`'s chain of
/// logical operators, the rest of the chain around it.
fn attach(left: Expr, right: Expr, not: bool) -> Expr {
    match right {
        Expr::BinaryOp {
            left: first,
            op,
            right: rest,
        } if logical(&op) => Expr::BinaryOp {
            left: Box::new(attach(left, *first, not)),
            op,
            right: rest,
        },
        operand if not => Expr::IsNotDistinctFrom(Box::new(left), Box::new(operand)),
        operand => Expr::IsDistinctFrom(Box::new(left), Box::new(operand)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn repaired(sql: &str) -> String {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        let mut statement = statements.pop_front().unwrap();
        repair(&mut statement);
        statement.to_string()
    }

    #[test]
    fn is_distinct_from_binds_tighter_than_and_or() {
        assert_eq!(
            repaired("SELECT a IS NOT DISTINCT FROM b AND c"),
            "SELECT a IS NOT DISTINCT FROM b AND c"
        );
        // The shape (the printer shows no parentheses): OR at the top, IS
        // DISTINCT FROM its leftmost operand.
        let mut statement = DFParser::parse_sql("SELECT a IS DISTINCT FROM b OR c AND d")
            .unwrap()
            .pop_front()
            .unwrap();
        repair(&mut statement);
        let text = format!("{statement:?}");
        let top = text.find("BinaryOp {").unwrap();
        assert!(
            text[top..].starts_with("BinaryOp { left: IsDistinctFrom("),
            "{text}"
        );
        assert!(text.contains("op: Or"), "{text}");
        // Written parentheses stay.
        assert_eq!(
            repaired("SELECT a IS DISTINCT FROM (b AND c)"),
            "SELECT a IS DISTINCT FROM (b AND c)"
        );
    }
}
