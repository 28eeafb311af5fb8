//! Conditions implied across a join key that casts one side.
//!
//! DataFusion infers, for an inner join on `a.k = b.k`, that a condition on
//! `a.k` (`a.k = 7`, `a.k IN (1, 2)`, `a.k > 2`) holds for `b.k` too, and
//! pushes it to `b`'s scan: the database then sends only the rows that can
//! join. It does not when the types of the two keys differ and the join
//! compares `CAST(a.k AS BIGINT) = b.k`, which is the rule across sources:
//! PostgreSQL's `integer` is a 32-bit key, SQLite's `INTEGER` and the
//! integers of a CSV file are 64-bit.
//!
//! [`ImplyThroughCastKeys`] adds those conditions when the cast widens one
//! integer type to another (every value keeps its value, and the order
//! between values is kept): `a.k op v` implies `b.k op CAST(v AS BIGINT)`
//! for `=`, `<>`, `<`, `<=`, `>`, `>=`, and the same for `IN` lists and
//! `BETWEEN`; and back, `b.k op v` implies `a.k op v` when `v` is a value of
//! `a.k`'s type. The implied condition is put over `b`'s side of the join,
//! where DataFusion pushes it into the scan; a row it removes could not
//! have joined, so the answer is the same.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Filter, JoinType, LogicalPlan, Operator,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct ImplyThroughCastKeys;

impl OptimizerRule for ImplyThroughCastKeys {
    fn name(&self) -> &str {
        "imply_through_cast_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if join.join_type != JoinType::Inner {
            return Ok(Transformed::no(plan));
        }
        let (mut to_left, mut to_right) = (Vec::new(), Vec::new());
        for (l, r) in &join.on {
            // From the left side's conditions to the right side, and back.
            to_right.extend(implied(l, &join.left, r, &join.right)?);
            to_left.extend(implied(r, &join.right, l, &join.left)?);
        }
        if to_left.is_empty() && to_right.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let mut join = join.clone();
        if let Some(condition) = conjunction(to_left) {
            join.left = Arc::new(LogicalPlan::Filter(Filter::try_new(
                condition,
                Arc::clone(&join.left),
            )?));
        }
        if let Some(condition) = conjunction(to_right) {
            join.right = Arc::new(LogicalPlan::Filter(Filter::try_new(
                condition,
                Arc::clone(&join.right),
            )?));
        }
        Ok(Transformed::yes(LogicalPlan::Join(join)))
    }
}

/// The conditions on the column of `to` (in `to_side`) implied by those
/// on the column of `from` (in `from_side`), when one of the two keys is a
/// widening integer cast of a column and the other a column of the cast's
/// type; without the ones `to_side` has already. Literals are restated in
/// the other column's type, and a condition whose literal does not keep
/// its value there (narrowing, `b.k > 5000000000` about a 32-bit `a.k`) is
/// left out.
fn implied(
    from: &Expr,
    from_side: &LogicalPlan,
    to: &Expr,
    to_side: &LogicalPlan,
) -> Result<Vec<Expr>> {
    let column_type = |plan: &LogicalPlan, c: &Column| {
        plan.schema()
            .qualified_field_from_column(c)
            .map(|(_, f)| f.data_type().clone())
            .ok()
    };
    // (the column read, the column restated to, its type), when one key is
    // a column and the other a widening cast of a column.
    let (source, target, cast) = match (from, to) {
        (Expr::Cast(cast), Expr::Column(target)) => match cast.expr.as_ref() {
            Expr::Column(source) => (source, target, cast),
            _ => return Ok(Vec::new()),
        },
        (Expr::Column(source), Expr::Cast(cast)) => match cast.expr.as_ref() {
            Expr::Column(target) => (source, target, cast),
            _ => return Ok(Vec::new()),
        },
        _ => return Ok(Vec::new()),
    };
    let (Some(from_type), Some(target_type)) =
        (column_type(from_side, source), column_type(to_side, target))
    else {
        return Ok(Vec::new());
    };
    // The cast's own column has the narrower type, the other the cast's.
    let (narrow, wide) = if matches!(from, Expr::Cast(_)) {
        (&from_type, &target_type)
    } else {
        (&target_type, &from_type)
    };
    if wide != cast.field.data_type() || !widens(narrow, wide) {
        return Ok(Vec::new());
    }
    // Only over a table's scan, whose conditions are all seen (so a
    // condition is added once, not again on the optimizer's next pass).
    let Some(existing) = scan_conditions_on(to_side, &target.name) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for condition in conditions_on(from_side, &source.name) {
        let Some(moved) = restate(&condition, target, &target_type) else {
            continue;
        };
        let same = |e: &Expr| strip_qualifiers(e) == strip_qualifiers(&moved);
        if !existing.iter().any(same) && !found.iter().any(same) {
            found.push(moved);
        }
    }
    Ok(found)
}

/// Whether every value of `from` is a value of `to`, in the same order.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 => Some((true, 8)),
        Int16 => Some((true, 16)),
        Int32 => Some((true, 32)),
        Int64 => Some((true, 64)),
        UInt8 => Some((false, 8)),
        UInt16 => Some((false, 16)),
        UInt32 => Some((false, 32)),
        UInt64 => Some((false, 64)),
        _ => None,
    };
    match (rank(from), rank(to)) {
        (Some((from_signed, from_bits)), Some((to_signed, to_bits))) => {
            from_bits < to_bits && (from_signed == to_signed || !from_signed && to_signed)
        }
        _ => false,
    }
}

/// The conditions of the form `<column named name> op <literal>` (and IN
/// lists, BETWEEN) that hold for every row of `plan`: its own filters and
/// its scan's, through aliases and column projections.
fn conditions_on(plan: &LogicalPlan, name: &str) -> Vec<Expr> {
    walk_conditions(plan, name).0
}

/// [`conditions_on`] when `plan` is a scan under filters, aliases and
/// column projections, so that every condition on it is seen; `None` for
/// anything else.
fn scan_conditions_on(plan: &LogicalPlan, name: &str) -> Option<Vec<Expr>> {
    let (found, scan) = walk_conditions(plan, name);
    scan.then_some(found)
}

/// The conditions found, and whether the walk reached a table's scan.
fn walk_conditions(plan: &LogicalPlan, name: &str) -> (Vec<Expr>, bool) {
    let mut found = Vec::new();
    let mut node = plan;
    loop {
        // The name must be one column of this node (no ambiguity after a
        // join or under an alias).
        if node
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() == name)
            .count()
            != 1
        {
            return (found, false);
        }
        match node {
            LogicalPlan::Filter(filter) => {
                found.extend(
                    split_conjunction(&filter.predicate)
                        .into_iter()
                        .filter(|c| simple_condition(c, name))
                        .cloned(),
                );
                node = filter.input.as_ref();
            }
            LogicalPlan::TableScan(scan) => {
                for filter in &scan.filters {
                    found.extend(
                        split_conjunction(filter)
                            .into_iter()
                            .filter(|c| simple_condition(c, name))
                            .cloned(),
                    );
                }
                return (found, true);
            }
            LogicalPlan::SubqueryAlias(alias) => node = alias.input.as_ref(),
            LogicalPlan::Projection(projection) => {
                // Only through a column passed on under its own name.
                let passed = projection.expr.iter().any(|e| match e {
                    Expr::Column(c) => c.name == name,
                    _ => false,
                });
                if !passed {
                    return (found, false);
                }
                node = projection.input.as_ref();
            }
            _ => return (found, false),
        }
    }
}

/// `column op literal`, `literal op column`, `column [NOT] IN (literals)`,
/// `column [NOT] BETWEEN literal AND literal`, with the column named `name`,
/// and ORs of those (DataFusion writes a short IN list as one).
fn simple_condition(condition: &Expr, name: &str) -> bool {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == name);
    let is_literal = |e: &Expr| matches!(e, Expr::Literal(value, _) if !value.is_null());
    match condition {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => simple_condition(left, name) && simple_condition(right, name),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            super::pushdown::literals::is_comparison(op)
                && (is_column(left) && is_literal(right) || is_literal(left) && is_column(right))
        }
        Expr::InList(InList { expr, list, .. }) => is_column(expr) && list.iter().all(is_literal),
        Expr::Between(Between {
            expr, low, high, ..
        }) => is_column(expr) && is_literal(low) && is_literal(high),
        _ => false,
    }
}

/// `condition` (a [`simple_condition`]) about `target`, its literals cast
/// to `target_type` (exactly: a widening cast); `None` if one does not cast.
fn restate(condition: &Expr, target: &Column, target_type: &DataType) -> Option<Expr> {
    let column = Expr::Column(target.clone());
    let value = |e: &Expr| -> Option<Expr> {
        match e {
            Expr::Literal(v, _) => {
                let cast = v.cast_to(target_type).ok()?;
                // The cast must give back the same value.
                (cast.cast_to(&v.data_type()).ok()? == *v).then(|| Expr::Literal(cast, None))
            }
            _ => None,
        }
    };
    match condition {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => Some(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(restate(left, target, target_type)?),
            Operator::Or,
            Box::new(restate(right, target, target_type)?),
        ))),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (left, right) = if matches!(left.as_ref(), Expr::Column(_)) {
                (column, value(right)?)
            } else {
                (value(left)?, column)
            };
            Some(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(left),
                *op,
                Box::new(right),
            )))
        }
        Expr::InList(InList { list, negated, .. }) => Some(Expr::InList(InList::new(
            Box::new(column),
            list.iter().map(value).collect::<Option<Vec<_>>>()?,
            *negated,
        ))),
        Expr::Between(Between {
            negated, low, high, ..
        }) => Some(Expr::Between(Between::new(
            Box::new(column),
            *negated,
            Box::new(value(low)?),
            Box::new(value(high)?),
        ))),
        _ => None,
    }
}

/// `expr` with its columns unqualified, to compare conditions seen under
/// different names of one table.
fn strip_qualifiers(expr: &Expr) -> Expr {
    use datafusion::common::tree_node::TreeNode;
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| expr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_integer_widening_counts() {
        use DataType::*;
        assert!(widens(&Int32, &Int64));
        assert!(widens(&UInt32, &Int64));
        assert!(widens(&UInt8, &UInt16));
        assert!(!widens(&Int64, &Int32));
        assert!(!widens(&Int32, &UInt64), "negative values do not fit");
        assert!(!widens(&Int64, &Int64));
        assert!(!widens(&Int32, &Float64));
        assert!(!widens(&Float32, &Float64));
    }
}
