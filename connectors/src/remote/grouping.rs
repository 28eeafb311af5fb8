//! Where a grouping runs: in the database, unless its hash table would far
//! outgrow the memory the database gives one aggregate while it shrinks its
//! input little.
//!
//! Pushing `GROUP BY` into the database usually sends far fewer rows. But a
//! grouping into many groups is where a row store is weakest: PostgreSQL's
//! hash aggregate holds every group's transition state (a `numeric` sum's is
//! a few hundred bytes), and past `work_mem` x `hash_mem_multiplier` (8 MB by
//! default) it writes batches to disk and reads them back. TPC-H Q18's
//! `GROUP BY l_orderkey HAVING sum(l_quantity) > 300` over 6 M `lineitem`
//! rows (1.5 M groups) takes PostgreSQL 5 to 6.5 s (with two workers, 85
//! batches on disk; 5.4 s even with 256 MB of `work_mem`); sending the two
//! columns and grouping in DataFusion takes 3.3 s on the same machine. When
//! the groups are few, the database wins (Q1's four groups: 4.1 s in
//! PostgreSQL, 6.7 s sent and grouped locally), so the choice is by the
//! estimated size of the hash table against the database's memory, and by
//! how much the grouping reduces the rows sent.

use std::collections::HashSet;

use datafusion::common::Column;
use datafusion::logical_expr::{Aggregate, Expr, JoinType, LogicalPlan, TableScan};

use super::RemoteTable;
use super::federation::remote_table;
use super::plans::is_column_projection;

/// Bytes a hash aggregate holds per group besides keys and states: the
/// entry, the tuple header, the allocator's share.
const PER_GROUP: u64 = 64;
/// Bytes per grouping key.
const PER_KEY: u64 = 16;
/// Bytes per aggregate's transition state (PostgreSQL's `numeric` sum and
/// average keep a few hundred; counts eight).
const PER_AGGREGATE: u64 = 128;
/// A grouping that shrinks its input by at most this factor sends at most
/// this many times the rows when it runs locally instead.
const LOW_REDUCTION: u64 = 32;

/// The groupings of `plan` that run locally: each that
/// [outgrows its database's memory](outgrows_remote_memory), unless a join
/// above it meets fewer distinct keys on its other side than the grouping
/// has groups. Such a join builds its hash table on that side, and its keys
/// reach the grouping's remote query at run time (TPC-H Q17: the 204 parts
/// of one brand and container narrow `lineitem`'s per-part averages), so
/// the database groups only a few of its rows.
pub(super) fn local_groupings(plan: &LogicalPlan) -> HashSet<LogicalPlan> {
    let mut local = HashSet::new();
    collect(plan, None, &mut local);
    local
}

/// `narrowed_to`: the fewest distinct keys a join above `plan` meets on its
/// other side, if one does.
fn collect(plan: &LogicalPlan, narrowed_to: Option<u64>, local: &mut HashSet<LogicalPlan>) {
    match plan {
        LogicalPlan::Aggregate(aggregate) => {
            if let Some(groups) = outgrows_remote_memory(aggregate)
                && narrowed_to.is_none_or(|keys| keys >= groups)
            {
                local.insert(plan.clone());
            }
            collect(&aggregate.input, None, local);
        }
        LogicalPlan::Join(join) => {
            let narrowing = |join_type: JoinType| {
                matches!(
                    join_type,
                    JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
                )
            };
            let keys_of = |side: &LogicalPlan, right: bool| {
                join.on
                    .iter()
                    .filter_map(|(l, r)| match if right { r } else { l } {
                        Expr::Column(column) => distinct_keys(side, column),
                        _ => None,
                    })
                    .min()
            };
            let (left_narrowed, right_narrowed) = if narrowing(join.join_type) {
                (keys_of(&join.right, true), keys_of(&join.left, false))
            } else {
                match join.join_type {
                    JoinType::Left => (None, keys_of(&join.left, false)),
                    JoinType::Right => (keys_of(&join.right, true), None),
                    _ => (None, None),
                }
            };
            collect(&join.left, left_narrowed, local);
            collect(&join.right, right_narrowed, local);
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_) => {
            for input in plan.inputs() {
                collect(input, narrowed_to, local);
            }
        }
        other => {
            for input in other.inputs() {
                collect(input, None, local);
            }
        }
    }
}

/// About how many distinct values `column` takes in `plan`'s rows, from the
/// remote tables' statistics: at most a filtered scan's estimated rows, and
/// through an inner join on it, at most the other key's.
pub(super) fn distinct_keys(plan: &LogicalPlan, column: &Column) -> Option<u64> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = remote_table(scan)?;
            let table = provider.downcast_ref::<RemoteTable>()?;
            let rows = table.filtered_rows(&scan.filters, scan.fetch)?;
            Some(table.distinct_estimate(&column.name)?.min(rows as u64))
        }
        LogicalPlan::Filter(filter) => {
            distinct_keys(&filter.input, column).map(|keys| (keys / 5).max(1))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            distinct_keys(&alias.input, &input_column(&alias.input, column)?)
        }
        LogicalPlan::Projection(projection) if is_column_projection(projection) => {
            distinct_keys(&projection.input, &input_column(&projection.input, column)?)
        }
        LogicalPlan::Join(join) => {
            let on_left = join.left.schema().has_column(column);
            let side = if on_left { &join.left } else { &join.right };
            let mut keys = distinct_keys(side, column);
            if join.join_type == JoinType::Inner {
                for (l, r) in &join.on {
                    let (mine, theirs, other) = if on_left {
                        (l, r, &join.right)
                    } else {
                        (r, l, &join.left)
                    };
                    if let (Expr::Column(mine), Expr::Column(theirs)) = (mine, theirs)
                        && mine == column
                        && let Some(bound) = distinct_keys(other, theirs)
                    {
                        keys = Some(keys.map_or(bound, |k| k.min(bound)));
                    }
                }
            }
            keys
        }
        _ => None,
    }
}

/// The column of `input` that an alias or a projection of columns above it
/// names `column`.
fn input_column(input: &LogicalPlan, column: &Column) -> Option<Column> {
    let (qualifier, field) = input
        .schema()
        .qualified_field_with_unqualified_name(&column.name)
        .ok()?;
    Some(Column::new(qualifier.cloned(), field.name()))
}

/// The estimated groups of `aggregate` when it should run locally by its
/// own size: it groups one table of a database by columns with distinct
/// estimates, and its estimated hash table is larger than the database's
/// aggregate memory while it reduces the table's rows at most
/// [`LOW_REDUCTION`] times. Anything not known (no statistics, no memory
/// setting, keys that are not plain columns of a scan) keeps it in the
/// database.
fn outgrows_remote_memory(aggregate: &Aggregate) -> Option<u64> {
    if aggregate.group_expr.is_empty() {
        return None;
    }
    let scan = scan_under(&aggregate.input)?;
    let provider = remote_table(scan)?;
    let table = provider.downcast_ref::<RemoteTable>()?;
    let (memory, rows) = (table.aggregate_memory()?, table.row_estimate()?);
    let mut groups: u64 = 1;
    for expr in &aggregate.group_expr {
        let Expr::Column(column) = expr else {
            return None;
        };
        groups = groups.saturating_mul(table.distinct_estimate(&column.name)?);
    }
    let groups = groups.min(rows);
    let keys = aggregate.group_expr.len() as u64;
    let states = aggregate.aggr_expr.len() as u64;
    let bytes = groups.saturating_mul(PER_GROUP + PER_KEY * keys + PER_AGGREGATE * states);
    (bytes > memory && rows <= groups.saturating_mul(LOW_REDUCTION)).then_some(groups)
}

/// The table scan under filters, aliases and projections of plain columns
/// (which keep the table's column names).
fn scan_under(plan: &LogicalPlan) -> Option<&TableScan> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(scan),
        LogicalPlan::Filter(filter) => scan_under(&filter.input),
        LogicalPlan::SubqueryAlias(alias) => scan_under(&alias.input),
        LogicalPlan::Projection(projection) if is_column_projection(projection) => {
            scan_under(&projection.input)
        }
        _ => None,
    }
}
