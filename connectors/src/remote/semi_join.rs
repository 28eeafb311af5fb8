//! Semi joins against aggregated subqueries, applied where their key is read.
//!
//! DataFusion turns `WHERE key IN (SELECT k FROM ... GROUP BY k HAVING ...)`
//! into a semi join above the whole `FROM` clause: every row of every
//! joined table is read and joined before the few keys the subquery keeps
//! remove them (TPC-H Q18: 6 M joined rows for 57 orders). For an inner
//! join, `(a JOIN b) SEMI JOIN s ON a.key = s.k` is `(a SEMI JOIN s ON
//! a.key = s.k) JOIN b`, and the same for anti joins: whether a row passes
//! depends on `a`'s columns only. [`PushSemiJoinDown`] moves such a semi or
//! anti join down to the side of the inner join that holds every column it
//! reads (and through projections of columns), as far as it goes. There the keys it keeps cut the rows early,
//! and the joins above hand them on as run-time filters to the remote scans
//! (see the `exec` module).
//!
//! Only for a subquery with an aggregate, the shape that keeps few keys, or
//! when the subquery reads one database and the semi join lands on a plan
//! of the same database: there it is federated with that plan as `[NOT]
//! EXISTS` (TPC-H Q21's two subqueries over `lineitem`, with `lineitem` and
//! `orders` in PostgreSQL). A semi join against a large table elsewhere is
//! cheaper where it is, after the other joins have removed rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Join, JoinType, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::federation::{same_database, single_database};
use super::plans::{is_column_projection, join_like};

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct PushSemiJoinDown;

impl OptimizerRule for PushSemiJoinDown {
    fn name(&self) -> &str {
        "push_semi_join_down"
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
        let LogicalPlan::Join(semi) = &plan else {
            return Ok(Transformed::no(plan));
        };
        // The same semi join over another input.
        let over = |input: &Arc<LogicalPlan>| -> Result<Arc<LogicalPlan>> {
            Ok(Arc::new(join_like(
                semi,
                Arc::clone(input),
                Arc::clone(&semi.right),
                semi.on.clone(),
                semi.filter.clone(),
            )?))
        };
        if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti) {
            return Ok(Transformed::no(plan));
        }
        let aggregated = semi
            .right
            .as_ref()
            .exists(|p| Ok(matches!(p, LogicalPlan::Aggregate(_))))?;
        let read = left_columns_read(semi);
        if !aggregated && !to_its_database(semi, &read) {
            return Ok(Transformed::no(plan));
        }
        // Through a projection of columns: it renames nothing, so the
        // semi join reads the same columns below it.
        if let LogicalPlan::Projection(projection) = semi.left.as_ref()
            && is_column_projection(projection)
        {
            return Ok(Transformed::yes(LogicalPlan::Projection(
                datafusion::logical_expr::Projection::try_new(
                    projection.expr.clone(),
                    over(&projection.input)?,
                )?,
            )));
        }
        let LogicalPlan::Join(inner) = semi.left.as_ref() else {
            return Ok(Transformed::no(plan));
        };
        if inner.join_type != JoinType::Inner {
            return Ok(Transformed::no(plan));
        }
        let (left, right) = match holding_side(inner, &read) {
            Some(true) => (over(&inner.left)?, Arc::clone(&inner.right)),
            Some(false) => (Arc::clone(&inner.left), over(&inner.right)?),
            None => return Ok(Transformed::no(plan)),
        };
        Ok(Transformed::yes(join_like(
            inner,
            left,
            right,
            inner.on.clone(),
            inner.filter.clone(),
        )?))
    }
}

/// The columns of the semi join's left side it reads.
fn left_columns_read(semi: &Join) -> HashSet<Column> {
    let mut read: HashSet<Column> = HashSet::new();
    for (left, _) in &semi.on {
        read.extend(left.column_refs().into_iter().cloned());
    }
    if let Some(filter) = &semi.filter {
        read.extend(
            filter
                .column_refs()
                .into_iter()
                .filter(|c| semi.left.schema().has_column(c))
                .cloned(),
        );
    }
    read
}

/// Whether the semi join's right side is one database's and, moved down
/// as far as it goes, it lands on a plan of that database: there the
/// database runs it (`[NOT] EXISTS`) with the scan it filters, and only
/// the rows it keeps cross the wire (TPC-H Q21).
fn to_its_database(semi: &Join, read: &HashSet<Column>) -> bool {
    if read.is_empty() {
        return false;
    }
    let Some(database) = single_database(&semi.right) else {
        return false;
    };
    let mut node = semi.left.as_ref();
    loop {
        match node {
            LogicalPlan::Projection(projection) if is_column_projection(projection) => {
                node = projection.input.as_ref();
            }
            LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner => {
                match holding_side(inner, read) {
                    Some(true) => node = inner.left.as_ref(),
                    Some(false) => node = inner.right.as_ref(),
                    None => return false,
                }
            }
            _ => break,
        }
    }
    single_database(node).is_some_and(|d| same_database(&d, &database))
}

/// The side of `inner` holding every column in `read` (`true`: the left),
/// when one does and `read` is not empty.
fn holding_side(inner: &Join, read: &HashSet<Column>) -> Option<bool> {
    let holds = |side: &LogicalPlan| read.iter().all(|c| side.schema().has_column(c));
    if read.is_empty() {
        None
    } else if holds(&inner.left) {
        Some(true)
    } else if holds(&inner.right) {
        Some(false)
    } else {
        None
    }
}
