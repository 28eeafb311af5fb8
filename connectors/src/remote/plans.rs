//! Small logical-plan helpers the remote rules share.

use std::sync::Arc;

use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{Expr, Join, LogicalPlan, Projection};

/// A projection of plain columns (it forwards its input's columns
/// unchanged).
pub(super) fn is_column_projection(projection: &Projection) -> bool {
    projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
}

/// A join like `template` (type, constraint, NULL handling) over other
/// inputs, keys and condition.
pub(super) fn join_like(
    template: &Join,
    left: Arc<LogicalPlan>,
    right: Arc<LogicalPlan>,
    on: Vec<(Expr, Expr)>,
    filter: Option<Expr>,
) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Join(Join::try_new(
        left,
        right,
        on,
        filter,
        template.join_type,
        template.join_constraint,
        template.null_equality,
        template.null_aware,
    )?))
}

/// `plan`'s columns reduced and ordered as `schema`'s (which it holds).
pub(super) fn with_columns_of(schema: &DFSchema, plan: LogicalPlan) -> Result<LogicalPlan> {
    let columns = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}
