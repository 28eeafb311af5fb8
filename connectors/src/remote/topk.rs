//! Top-N pushdown: `ORDER BY ... LIMIT n` over a remote scan becomes part of
//! the remote query, with explicit NULLS FIRST/LAST, when the database orders
//! every sort key exactly as DataFusion does.
//!
//! A physical optimizer rule: it finds a `SortExec` with a fetch whose input
//! reaches a [`RemoteScanExec`] through nodes that only move rows
//! (repartition, coalescing partitions, cooperative scheduling), and re-renders the scan's
//! logical plan with the sort and the limit. The `SortExec` stays: it re-sorts
//! the `n` rows that come back, so the answer never depends on the pushdown.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, SortExpr, col};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

use super::{RemoteScanExec, RemoteSql};

/// The rule; registered by the engine after DataFusion's own rules.
#[derive(Debug, Default)]
pub struct RemoteTopK;

impl PhysicalOptimizerRule for RemoteTopK {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(fetch) = sort.fetch() else {
                return Ok(Transformed::no(node));
            };
            let ordering: Vec<(String, bool, bool)> = match sort
                .expr()
                .iter()
                .map(|e| {
                    e.expr.downcast_ref::<Column>().map(|c| {
                        (
                            c.name().to_string(),
                            e.options.descending,
                            e.options.nulls_first,
                        )
                    })
                })
                .collect::<Option<Vec<_>>>()
            {
                Some(o) => o,
                None => return Ok(Transformed::no(node)),
            };
            match push_into(sort.input(), &ordering, fetch)? {
                Some(input) => Ok(Transformed::yes(replace_child(&node, input)?)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "RemoteTopK"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Nodes the rows pass through unchanged (same schema, same rows).
fn moves_rows_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<CooperativeExec>()
}

/// `plan` with its remote scan replaced by one that sorts and limits, or
/// `None` when the pattern or the database's ordering rules do not allow it.
fn push_into(
    plan: &Arc<dyn ExecutionPlan>,
    ordering: &[(String, bool, bool)],
    fetch: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<RemoteScanExec>() {
        return top_k_scan(scan, ordering, fetch);
    }
    if !moves_rows_only(plan) {
        return Ok(None);
    }
    let [child] = plan.children()[..] else {
        return Ok(None);
    };
    if child.schema() != plan.schema() {
        return Ok(None);
    }
    match push_into(child, ordering, fetch)? {
        Some(child) => Ok(Some(replace_child(plan, child)?)),
        None => Ok(None),
    }
}

fn replace_child(
    plan: &Arc<dyn ExecutionPlan>,
    child: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan).replace_children(
        vec![child],
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

fn has_limit(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Limit(_) | LogicalPlan::Sort(_))))
        .unwrap_or(true)
}

fn top_k_scan(
    scan: &RemoteScanExec,
    ordering: &[(String, bool, bool)],
    fetch: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(logical) = scan.scan_plan() else {
        return Ok(None);
    };
    if has_limit(logical) {
        return Ok(None);
    }
    let schema = scan.schema();
    let database = scan.database();
    let mut sort = Vec::with_capacity(ordering.len());
    for (name, descending, nulls_first) in ordering {
        let Ok(field) = schema.field_with_name(name) else {
            return Ok(None);
        };
        if !database.pushdown().sorts_exactly(field) {
            return Ok(None);
        }
        let key: Expr = col(datafusion::common::Column::from_name(name));
        sort.push(SortExpr::new(key, !descending, *nulls_first));
    }
    let plan = LogicalPlanBuilder::from(logical.clone())
        .sort(sort)?
        .limit(0, Some(fetch))?
        .build()?;
    let sql = RemoteSql::from_plan(&plan, database.as_ref())?;
    Ok(Some(Arc::new(
        RemoteScanExec::new(Arc::clone(database), sql, schema, scan.batch_size())
            .with_logical_plan(plan),
    )))
}
