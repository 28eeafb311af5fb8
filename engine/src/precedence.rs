//! Repairs of what the SQL parser (sqlparser 0.62) gets wrong, applied to
//! every statement right after it is parsed.
//!
//! `a IS [NOT] DISTINCT FROM b AND c` is `(a IS DISTINCT FROM b) AND c` in
//! SQL (PostgreSQL, the standard: `IS` binds tighter than `NOT`, `AND` and
//! `OR`), but sqlparser parses the right side with the lowest precedence
//! and builds `a IS DISTINCT FROM (b AND c)`: a different answer, or a type
//! error; `NOT a IS DISTINCT FROM b AND c` and `c AND a IS DISTINCT FROM b OR
//! d` go wrong the same way. Each chain of `AND`, `OR`, `NOT` and `IS [NOT]
//! DISTINCT FROM` is flattened back into the order it was written (which
//! the parser keeps) and rebuilt by precedence climbing. Parentheses the
//! user wrote stay (they are `Expr::Nested`, an operand).

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, visit_expressions_mut};

/// Rebuilds chains of `AND`, `OR`, `NOT` and `IS [NOT] DISTINCT FROM` in
/// `statement` with standard precedence (see the module).
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

/// One piece of a chain of `AND`, `OR`, `NOT` and `IS [NOT] DISTINCT FROM`
/// in the order the user wrote it.
enum Piece {
    Operand(Box<Expr>),
    Not,
    And,
    Or,
    Distinct { not: bool },
}

impl Piece {
    /// Binding power as an infix operator (PostgreSQL's order: `IS` over
    /// `NOT` over `AND` over `OR`).
    fn infix(&self) -> Option<u8> {
        match self {
            Piece::Or => Some(1),
            Piece::And => Some(2),
            Piece::Distinct { .. } => Some(4),
            Piece::Operand(_) | Piece::Not => None,
        }
    }
}

/// The power `NOT` binds its operand with: over `AND`, under `IS`.
const NOT_POWER: u8 = 3;

/// Whether `expr` is a link of such a chain (parentheses the user wrote
/// are `Expr::Nested`, an operand).
fn link(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::BinaryOp {
            op: BinaryOperator::And | BinaryOperator::Or,
            ..
        } | Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
            ..
        } | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
    )
}

/// The pieces of the chain rooted at `expr`, in written order (the parser
/// keeps that order whatever it nests wrong).
fn flatten(expr: Expr, out: &mut Vec<Piece>) {
    use datafusion::sql::sqlparser::ast::UnaryOperator;
    match expr {
        Expr::BinaryOp { left, op, right }
            if matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
        {
            flatten(*left, out);
            out.push(if op == BinaryOperator::And {
                Piece::And
            } else {
                Piece::Or
            });
            flatten(*right, out);
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => {
            out.push(Piece::Not);
            flatten(*expr, out);
        }
        Expr::IsDistinctFrom(left, right) => {
            flatten(*left, out);
            out.push(Piece::Distinct { not: false });
            flatten(*right, out);
        }
        Expr::IsNotDistinctFrom(left, right) => {
            flatten(*left, out);
            out.push(Piece::Distinct { not: true });
            flatten(*right, out);
        }
        other => out.push(Piece::Operand(Box::new(other))),
    }
}

/// Precedence climbing over `pieces`: the expression whose operators all
/// bind tighter than `min`.
fn climb(pieces: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>, min: u8) -> Expr {
    use datafusion::sql::sqlparser::ast::UnaryOperator;
    let mut left = match pieces.next() {
        Some(Piece::Operand(e)) => *e,
        Some(Piece::Not) => Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(climb(pieces, NOT_POWER)),
        },
        // Not produced by flatten from a parsed tree.
        _ => Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
    };
    while let Some(power) = pieces.peek().and_then(Piece::infix) {
        if power <= min {
            break;
        }
        let op = pieces.next().expect("peeked");
        let right = climb(pieces, power);
        left = match op {
            Piece::And => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(right),
            },
            Piece::Or => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::Or,
                right: Box::new(right),
            },
            Piece::Distinct { not: false } => Expr::IsDistinctFrom(Box::new(left), Box::new(right)),
            Piece::Distinct { not: true } => {
                Expr::IsNotDistinctFrom(Box::new(left), Box::new(right))
            }
            Piece::Operand(_) | Piece::Not => unreachable!("not infix"),
        };
    }
    left
}

/// Rebuilds the chain rooted at `expr` with the right precedence (a chain
/// without `IS [NOT] DISTINCT FROM` comes back as the parser built it).
fn repair_expr(expr: &mut Expr) -> ControlFlow<()> {
    if !link(expr) {
        return ControlFlow::Continue(());
    }
    let taken = std::mem::replace(
        expr,
        Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
    );
    let mut pieces = Vec::new();
    flatten(taken, &mut pieces);
    *expr = climb(&mut pieces.into_iter().peekable(), 0);
    ControlFlow::Continue(())
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
