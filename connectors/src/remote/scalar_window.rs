//! A scalar subquery that aggregates the very rows it filters is computed
//! over those rows once, as a window aggregate.
//!
//! `WHERE total = (SELECT max(total) FROM revenue)` over `revenue` itself
//! (TPC-H Q15) computes `revenue` twice: DataFusion runs the subquery first,
//! then the query; over a database that is two grouped scans of `lineitem`
//! one after the other. `max(total) OVER ()` over the filter's input is the
//! same value on every row (the input is the subquery's, row for row), so
//! the filter reads it from there: one scan, and the window's work is over
//! the grouped rows only.
//!
//! Only when exact: the subquery is uncorrelated and is an aggregate with
//! no grouping (one row, also over no rows: then the filter has no rows
//! either) of plain aggregate calls, over aliases and projections of a plan
//! equal to the filter's input, and nothing in that input is volatile (it
//! would not be the same rows twice).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Projection, Subquery,
    WindowFunctionDefinition,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::plans::with_columns_of;

/// The optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub struct ScalarSubqueryAsWindow;

impl OptimizerRule for ScalarSubqueryAsWindow {
    fn name(&self) -> &str {
        "scalar_subquery_as_window"
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
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        match as_window(&filter)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(LogicalPlan::Filter(filter))),
        }
    }
}

/// `filter` with its first scalar subquery over its own input read from a
/// window aggregate, or `None`.
fn as_window(filter: &Filter) -> Result<Option<LogicalPlan>> {
    let input = filter.input.as_ref();
    let mut found: Option<Subquery> = None;
    filter.predicate.apply(|e| {
        if let Expr::ScalarSubquery(subquery) = e
            && found.is_none()
            && subquery.outer_ref_columns.is_empty()
        {
            found = Some(subquery.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let Some(subquery) = found else {
        return Ok(None);
    };
    if volatile(input)? {
        return Ok(None);
    }
    // The subquery's one value: an expression of its aggregate's outputs.
    let (value, aggregate) = match subquery.subquery.as_ref() {
        LogicalPlan::Aggregate(aggregate) => {
            let Ok([column]) = <[Column; 1]>::try_from(aggregate.schema.columns()) else {
                return Ok(None);
            };
            (Expr::Column(column), aggregate)
        }
        LogicalPlan::Projection(Projection {
            expr, input: top, ..
        }) => {
            let (LogicalPlan::Aggregate(aggregate), [value]) = (top.as_ref(), expr.as_slice())
            else {
                return Ok(None);
            };
            (value.clone().unalias(), aggregate)
        }
        _ => return Ok(None),
    };
    if !aggregate.group_expr.is_empty() {
        return Ok(None);
    }
    // Each aggregate call, over the filter's input, as a window column.
    let mut windows = Vec::with_capacity(aggregate.aggr_expr.len());
    let mut names = Vec::with_capacity(aggregate.aggr_expr.len());
    for (i, call) in aggregate.aggr_expr.iter().enumerate() {
        let Some(window) = window_of(call, aggregate, input)? else {
            return Ok(None);
        };
        let name = format!("__moltres_window_{i}");
        windows.push(window.alias(&name));
        names.push((aggregate.schema.qualified_field(i), name));
    }
    let value = value.transform(|e| {
        if let Expr::Column(column) = &e
            && let Some((_, name)) = names
                .iter()
                .find(|((q, f), _)| column.relation.as_ref() == *q && column.name == *f.name())
        {
            return Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                name,
            ))));
        }
        Ok(Transformed::no(e))
    })?;
    if value
        .data
        .column_refs()
        .iter()
        .any(|c| !names.iter().any(|(_, n)| *n == c.name))
    {
        return Ok(None);
    }
    let value = value.data;
    let predicate = filter.predicate.clone().transform(|e| match &e {
        Expr::ScalarSubquery(s) if *s == subquery => Ok(Transformed::yes(value.clone())),
        _ => Ok(Transformed::no(e)),
    })?;
    let windowed = LogicalPlanBuilder::from(input.clone())
        .window(windows)?
        .filter(predicate.data)?
        .build()?;
    Ok(Some(with_columns_of(input.schema(), windowed)?))
}

/// `call` (an output of `aggregate`) as a window aggregate over `input`,
/// when `aggregate` reads `input`'s rows through aliases and projections.
fn window_of(call: &Expr, aggregate: &Aggregate, input: &LogicalPlan) -> Result<Option<Expr>> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = call.clone().unalias() else {
        return Ok(None);
    };
    if params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return Ok(None);
    }
    // The arguments, rewritten down to `input`'s columns.
    let mut args = params.args;
    let mut plan = aggregate.input.as_ref();
    loop {
        if plan == input {
            break;
        }
        let next = match plan {
            LogicalPlan::SubqueryAlias(alias) => alias.input.as_ref(),
            LogicalPlan::Projection(projection) => projection.input.as_ref(),
            _ => return Ok(None),
        };
        let mut missing = false;
        args = args
            .into_iter()
            .map(|arg| {
                arg.transform(|e| {
                    let Expr::Column(column) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let Ok(i) = plan.schema().index_of_column(column) else {
                        missing = true;
                        return Ok(Transformed::no(e));
                    };
                    let below = match plan {
                        LogicalPlan::Projection(projection) => projection.expr[i].clone().unalias(),
                        _ => Expr::Column(Column::from(next.schema().qualified_field(i))),
                    };
                    Ok(Transformed::yes(below))
                })
                .map(|t| t.data)
            })
            .collect::<Result<_>>()?;
        if missing {
            return Ok(None);
        }
        plan = next;
    }
    Ok(Some(Expr::WindowFunction(Box::new(WindowFunction::new(
        WindowFunctionDefinition::AggregateUDF(Arc::clone(&func)),
        args,
    )))))
}

/// Whether an expression anywhere in `plan` is volatile.
fn volatile(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| {
        let mut any = false;
        node.apply_expressions(|e| {
            any |= e.is_volatile();
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        Ok(any)
    })
}
