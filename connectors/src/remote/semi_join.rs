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
//! Only for a subquery with an aggregate: that is the shape that keeps few
//! keys. A semi join against a large plain table (TPC-H Q21's `EXISTS` over
//! `lineitem`) is cheaper where it is, after the other joins have removed
//! rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{JoinType, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

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
        if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
            || !semi
                .right
                .as_ref()
                .exists(|p| Ok(matches!(p, LogicalPlan::Aggregate(_))))?
        {
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
        // The columns of the semi join's left side it reads.
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
        if read.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let holds = |side: &LogicalPlan| read.iter().all(|c| side.schema().has_column(c));
        let (left, right) = if holds(&inner.left) {
            (over(&inner.left)?, Arc::clone(&inner.right))
        } else if holds(&inner.right) {
            (Arc::clone(&inner.left), over(&inner.right)?)
        } else {
            return Ok(Transformed::no(plan));
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
