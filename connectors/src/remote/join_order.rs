//! Small filtered tables joined first.
//!
//! DataFusion joins the tables of `FROM a, b, c WHERE ...` in the order they
//! are listed, so a selective dimension listed last (TPC-H Q21's `nation`
//! filtered to one name) is joined last: every `supplier` × `lineitem` row is
//! read and joined before it removes nineteen twentieths of them. A hash
//! join builds on its left input and hands the build side's keys to the
//! remote scans under its right input as run-time filters (see the `exec`
//! module), so the place of a small table decides how many rows cross the
//! wire.
//!
//! [`JoinSmallTablesFirst`] moves such a table down to the table its join
//! keys read, on the build side: for inner joins,
//! `(a JOIN b) JOIN d ON d.k = a.k` is `(d JOIN a ON d.k = a.k) JOIN b`
//! (and the same for `b`, and through projections of columns), with the
//! columns put back in their order. A
//! table counts as small when it is a remote table whose estimated rows
//! under its filters (see [`row_estimate`](super::federation)) are at most
//! [`SMALL`], and it has a filter: an unfiltered dimension removes nothing.
//! Tables without an estimate (files) are never moved.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::federation::row_estimate;
use super::plans::{is_column_projection, join_like, with_columns_of};

/// Most estimated rows of a table joined first.
pub const SMALL: usize = 10_000;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct JoinSmallTablesFirst;

impl OptimizerRule for JoinSmallTablesFirst {
    fn name(&self) -> &str {
        "join_small_tables_first"
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
        if !plain_inner(join) {
            return Ok(Transformed::no(plan));
        }
        // One side a small filtered table, the other an inner join (under
        // projections of its columns).
        let (small, other, small_is_left) = match (join_below(&join.left), join_below(&join.right))
        {
            (_, Some(inner)) if is_small(&join.left) && plain_inner(inner) => {
                (join.left.as_ref(), inner, true)
            }
            (Some(inner), _) if is_small(&join.right) && plain_inner(inner) => {
                (join.right.as_ref(), inner, false)
            }
            _ => return Ok(Transformed::no(plan)),
        };
        // This join's keys, small side first.
        let keys: Vec<(Expr, Expr)> = join
            .on
            .iter()
            .map(|(l, r)| {
                if small_is_left {
                    (l.clone(), r.clone())
                } else {
                    (r.clone(), l.clone())
                }
            })
            .collect();
        // The columns of the other side this join reads.
        let mut read: HashSet<Column> = HashSet::new();
        for (_, key) in &keys {
            read.extend(key.column_refs().into_iter().cloned());
        }
        if let Some(filter) = &join.filter {
            read.extend(
                filter
                    .column_refs()
                    .into_iter()
                    .filter(|c| !small.schema().has_column(c))
                    .cloned(),
            );
        }
        let holds = |side: &LogicalPlan| {
            !read.is_empty() && read.iter().all(|c| side.schema().has_column(c))
        };
        let small = Arc::new(small.clone());
        // `target` is the side of the inner join the small table meets.
        let (target, rest, inner_keys) = if holds(&other.left) {
            (&other.left, &other.right, other.on.clone())
        } else if holds(&other.right) {
            let swapped = other
                .on
                .iter()
                .map(|(l, r)| (r.clone(), l.clone()))
                .collect();
            (&other.right, &other.left, swapped)
        } else {
            return Ok(Transformed::no(plan));
        };
        // Both joins are plain inner joins (see `plain_inner`).
        let first = join_like(join, small, Arc::clone(target), keys, join.filter.clone())?;
        let moved = join_like(
            other,
            Arc::new(first),
            Arc::clone(rest),
            inner_keys,
            other.filter.clone(),
        )?;
        // The columns in their order.
        if moved.schema().columns() == join.schema.columns() {
            return Ok(Transformed::yes(moved));
        }
        Ok(Transformed::yes(with_columns_of(&join.schema, moved)?))
    }
}

/// The join `plan` is, under projections of columns (which forward its
/// columns unchanged).
fn join_below(plan: &LogicalPlan) -> Option<&Join> {
    match plan {
        LogicalPlan::Join(join) => Some(join),
        LogicalPlan::Projection(projection) if is_column_projection(projection) => {
            join_below(&projection.input)
        }
        _ => None,
    }
}

/// An inner equi-join DataFusion runs as a hash join.
fn plain_inner(join: &Join) -> bool {
    join.join_type == JoinType::Inner
        && !join.on.is_empty()
        && !join.null_aware
        && join.null_equality == datafusion::common::NullEquality::NullEqualsNothing
}

/// A remote table, filtered, of at most [`SMALL`] estimated rows.
fn is_small(plan: &LogicalPlan) -> bool {
    let mut filtered = false;
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::TableScan(scan) => {
                filtered |= !scan.filters.is_empty();
                break;
            }
            LogicalPlan::Filter(filter) => {
                filtered = true;
                node = filter.input.as_ref();
            }
            LogicalPlan::Projection(projection) => node = projection.input.as_ref(),
            LogicalPlan::SubqueryAlias(alias) => node = alias.input.as_ref(),
            _ => return false,
        }
    }
    filtered && row_estimate(plan).is_some_and(|rows| rows <= SMALL)
}
