//! Sub-plan federation: the largest parts of a plan that read only one
//! remote database (joins between its tables, aggregates, DISTINCT, top-N)
//! run there as one remote query, when every expression in them is one the
//! database computes exactly as DataFusion does.
//!
//! It runs after DataFusion's logical optimizer, so the projections and
//! filters it pushed into the scans are part of the remote query too: the
//! [`FederatingQueryPlanner`] replaces each such sub-plan with a
//! [`RemoteQueryNode`], whose input is the original sub-plan. When the node is
//! planned, the sub-plan is rendered with the database's dialect and
//! described by the database (a prepare, no rows read); the result columns
//! must decode as the types DataFusion expects (a cast is added where the
//! database's type differs, e.g. PostgreSQL's `numeric` for `sum(bigint)`).
//! If rendering or describing fails, the original sub-plan runs locally: a
//! query never fails because pushdown is impossible.
//!
//! What is federated (everything else stays local):
//!
//! * scans of tables whose pushed filters are all Exact (columns read as
//!   text are not federated);
//! * projections of columns, literals, Exact predicates and values the
//!   database [`computes_exactly`](super::PushdownPolicy::computes_exactly);
//!   filters with an Exact predicate; aliases;
//! * inner, left, right and full joins on keys the database
//!   [`equals_exactly`](super::PushdownPolicy::equals_exactly), with an Exact
//!   extra condition; semi and anti joins (`EXISTS`, `NOT EXISTS`, `IN
//!   (SELECT ...)`; not the NULL-aware `NOT IN`) of plain scans the same
//!   way, as `WHERE [NOT] EXISTS (...)`, never below an outer join;
//! * aggregates grouped by such keys with `count`, `count(DISTINCT key)`,
//!   `min`/`max` of columns the database
//!   [`sorts_exactly`](super::PushdownPolicy::sorts_exactly), `sum` of
//!   decimal values the database computes exactly and of 16/32-bit
//!   integers (64-bit sums wrap around in DataFusion and raise an error in
//!   databases, so they stay local), and `avg` of decimals as a `sum` and a
//!   `count` finished locally (see [`average`](super::average));
//! * `DISTINCT` over such keys;
//! * `ORDER BY ... LIMIT n` (top-N) and `LIMIT`, only at the top of a
//!   federated part; the sort is repeated locally over the `n` rows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Distinct, Expr, Extension, Join, JoinType, LogicalPlan, LogicalTableSource, Projection, Sort,
    TableScan, TableScanBuilder, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::average::{finish_averages, split_decimal_averages};
use super::grouping::local_groupings;
use super::plans::{is_column_projection, join_like, with_columns_of};
use super::pushdown::{Capability, PushdownPolicy, classify};
use super::{CAST_TO_TEXT, RemoteDatabase, RemoteScanExec, RemoteSql, RemoteTable};

/// Plans queries with single-source sub-plans federated (see the module docs).
#[derive(Debug, Default)]
pub struct FederatingQueryPlanner;

#[async_trait]
impl QueryPlanner for FederatingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let federated = federate(logical_plan.clone())?;
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(RemoteQueryPlanner)])
            .create_physical_plan(&federated, session)
            .await
    }
}

/// `plan` with its federable single-source sub-plans replaced by
/// [`RemoteQueryNode`]s.
pub fn federate(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = federate_subqueries(plan)?;
    let local = local_groupings(&plan);
    let (plan, verdict) = rewrite(plan, &local)?;
    unread_columns_left_out(wrap(plan, verdict)?, None)
}

/// `plan` with the columns of each remote query that nothing above it reads
/// left out of the query. A join returns every column of its inputs, keys
/// included, and DataFusion prunes them only at the next projection: a
/// federated join under a local one would send both of its key columns
/// (TPC-H Q9's `l_orderkey` and `o_orderkey`) for nothing. `required` is
/// what the plan's parent reads of it, `None` for all of it. Only joins,
/// filters, sorts and limits pass their columns up by name and are looked
/// through; projections and aggregates read their expressions' columns.
fn unread_columns_left_out(
    plan: LogicalPlan,
    required: Option<&HashSet<Column>>,
) -> Result<LogicalPlan> {
    use std::collections::HashSet;
    if let LogicalPlan::Extension(extension) = &plan {
        let Some(node) = extension.node.as_any().downcast_ref::<RemoteQueryNode>() else {
            return Ok(plan);
        };
        let Some(required) = required else {
            return Ok(plan);
        };
        let columns = node.input.schema().columns();
        let kept: Vec<Expr> = columns
            .iter()
            .filter(|c| required.contains(*c))
            .cloned()
            .map(Expr::Column)
            .collect();
        if kept.len() == columns.len() || kept.is_empty() {
            return Ok(plan);
        }
        let projected = Projection::try_new(kept, Arc::new(node.input.clone()))?;
        return Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(RemoteQueryNode::new(
                Arc::clone(&node.database),
                LogicalPlan::Projection(projected),
            )),
        }));
    }
    let expressions = plan.expressions();
    let reads: HashSet<Column> = expressions
        .iter()
        .flat_map(|e| e.column_refs())
        .cloned()
        .collect();
    let subqueries = expressions.iter().any(|e| {
        e.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(true)
    });
    let needed = match &plan {
        _ if subqueries => None,
        // What its parent reads of its outputs.
        LogicalPlan::Projection(projection) => Some(match required {
            // When its parent reads none of its outputs (`count(*)` above),
            // it keeps them all.
            Some(required) if kept_outputs(projection, required).next().is_some() => {
                kept_outputs(projection, required)
                    .flat_map(|e| e.column_refs())
                    .cloned()
                    .collect()
            }
            _ => reads,
        }),
        LogicalPlan::Aggregate(_) => Some(reads),
        LogicalPlan::Join(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_) => required.map(|r| r.union(&reads).cloned().collect()),
        _ => None,
    };
    let old_inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    let mut inputs = Vec::with_capacity(old_inputs.len());
    for input in &old_inputs {
        inputs.push(unread_columns_left_out(input.clone(), needed.as_ref())?);
    }
    if inputs == old_inputs {
        return Ok(plan);
    }
    // A projection keeps the outputs its parent reads: the others may read
    // columns left out below.
    if let (LogicalPlan::Projection(projection), Some(required)) = (&plan, required) {
        let kept: Vec<Expr> = kept_outputs(projection, required).cloned().collect();
        if !kept.is_empty() {
            let input = inputs.swap_remove(0);
            return Ok(LogicalPlan::Projection(Projection::try_new(
                kept,
                Arc::new(input),
            )?));
        }
    }
    plan.with_new_exprs(expressions, inputs)
}

/// The expressions of `projection` whose outputs are in `required`.
fn kept_outputs<'a>(
    projection: &'a Projection,
    required: &'a HashSet<Column>,
) -> impl Iterator<Item = &'a Expr> {
    projection
        .expr
        .iter()
        .enumerate()
        .filter(|(i, _)| required.contains(&Column::from(projection.schema.qualified_field(*i))))
        .map(|(_, e)| e)
}

/// `plan` with the uncorrelated subqueries in its expressions federated
/// (TPC-H Q15's `= (SELECT max(total_revenue) FROM revenue)`): DataFusion
/// plans them on their own, as the plans they hold.
fn federate_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_down(|node| {
            node.map_subqueries(|expression| match expression {
                LogicalPlan::Subquery(mut subquery) if subquery.outer_ref_columns.is_empty() => {
                    let inner = federate(Arc::unwrap_or_clone(subquery.subquery))?;
                    subquery.subquery = Arc::new(inner);
                    Ok(Transformed::yes(LogicalPlan::Subquery(subquery)))
                }
                other => Ok(Transformed::no(other)),
            })
        })?
        .data)
}

/// Whether a sub-plan can run in one database.
#[derive(Clone)]
enum Verdict {
    Local,
    Remote {
        database: Arc<dyn RemoteDatabase>,
        /// Sorted or limited: nothing above it may join the remote query
        /// (the database would not have to keep the order).
        top_only: bool,
        /// Holds a join, aggregate, DISTINCT, sort or limit: worth a query
        /// of its own (a plain scan is already a remote scan).
        worth_it: bool,
    },
}

/// Whether two handles are the same attached database.
pub(super) fn same_database(a: &Arc<dyn RemoteDatabase>, b: &Arc<dyn RemoteDatabase>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Rewrites the children of `plan` bottom-up and judges `plan` itself.
/// `local`: the groupings that run locally (see [`local_groupings`]).
fn rewrite(plan: LogicalPlan, local: &HashSet<LogicalPlan>) -> Result<(LogicalPlan, Verdict)> {
    if let LogicalPlan::Extension(_) = plan {
        return Ok((plan, Verdict::Local));
    }
    let children: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    let mut judged = Vec::with_capacity(children.len());
    for child in children {
        judged.push(rewrite(child, local)?);
    }
    let verdicts: Vec<&Verdict> = judged.iter().map(|(_, v)| v).collect();
    let own = judge(&plan, &verdicts, local)?;
    if matches!(own, Verdict::Remote { .. }) {
        // The whole sub-plan may still join its parent's remote query.
        return Ok((plan, own));
    }
    if let LogicalPlan::Aggregate(aggregate) = &plan
        && let [(input, _)] = judged.as_slice()
        && !local.contains(&plan)
        && let Some(split) = federate_averages(aggregate, input.clone(), &verdicts)?
    {
        return Ok((split, Verdict::Local));
    }
    // `plan` runs locally: each remote child becomes a query of its own.
    let any_remote = judged
        .iter()
        .any(|(_, v)| matches!(v, Verdict::Remote { worth_it: true, .. }));
    if !any_remote {
        let inputs_changed = judged
            .iter()
            .zip(plan.inputs())
            .any(|((new, _), old)| new != old);
        if !inputs_changed {
            return Ok((plan, Verdict::Local));
        }
    }
    let inputs = judged
        .into_iter()
        .map(|(child, verdict)| wrap(child, verdict))
        .collect::<Result<Vec<_>>>()?;
    let expressions = plan.expressions();
    Ok((plan.with_new_exprs(expressions, inputs)?, Verdict::Local))
}

/// The database `plan` runs in as a whole when federated, if one does.
pub(super) fn single_database(plan: &LogicalPlan) -> Option<Arc<dyn RemoteDatabase>> {
    match rewrite(plan.clone(), &local_groupings(plan)).ok()?.1 {
        Verdict::Remote {
            database,
            top_only: false,
            ..
        } => Some(database),
        _ => None,
    }
}

/// `aggregate` (over `input`, its rewritten input) as a remote query of
/// sums and counts with its decimal averages finished locally (see
/// [`average`](super::average)), when that makes it federable.
fn federate_averages(
    aggregate: &datafusion::logical_expr::Aggregate,
    input: LogicalPlan,
    verdicts: &[&Verdict],
) -> Result<Option<LogicalPlan>> {
    let Some((split, outputs)) = split_decimal_averages(aggregate, input)? else {
        return Ok(None);
    };
    let verdict = judge(&split, verdicts, &HashSet::new())?;
    if !matches!(verdict, Verdict::Remote { .. }) {
        return Ok(None);
    }
    finish_averages(wrap(split, verdict)?, outputs, &aggregate.schema)
}

/// `plan` as a remote query when the verdict says so.
fn wrap(plan: LogicalPlan, verdict: Verdict) -> Result<LogicalPlan> {
    let Verdict::Remote {
        database,
        worth_it: true,
        ..
    } = verdict
    else {
        return Ok(plan);
    };
    // The order of a sorted result is repeated locally over its (at most
    // `fetch`) rows: nothing downstream has to trust the remote order.
    let sort = match &plan {
        LogicalPlan::Sort(sort) => Some((sort.expr.clone(), sort.fetch)),
        _ => None,
    };
    let node = LogicalPlan::Extension(Extension {
        node: Arc::new(RemoteQueryNode::new(database, plan)),
    });
    Ok(match sort {
        Some((expr, fetch)) => LogicalPlan::Sort(Sort {
            expr,
            input: Arc::new(node),
            fetch,
        }),
        None => node,
    })
}

/// The remote table a scan reads, if it reads one.
pub(super) fn remote_table(scan: &TableScan) -> Option<Arc<dyn TableProvider>> {
    let provider = source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<RemoteTable>()?;
    Some(provider)
}

fn judge(plan: &LogicalPlan, inputs: &[&Verdict], local: &HashSet<LogicalPlan>) -> Result<Verdict> {
    if let LogicalPlan::TableScan(scan) = plan {
        return Ok(judge_scan(scan));
    }
    // Every input must be remote, in the same database, and open to parents.
    let mut database: Option<Arc<dyn RemoteDatabase>> = None;
    let mut worth_it = false;
    for input in inputs {
        let Verdict::Remote {
            database: db,
            top_only: false,
            worth_it: w,
        } = input
        else {
            return Ok(Verdict::Local);
        };
        match &database {
            Some(first) if !same_database(first, db) => return Ok(Verdict::Local),
            Some(_) => {}
            None => database = Some(Arc::clone(db)),
        }
        worth_it |= *w;
    }
    let Some(database) = database else {
        return Ok(Verdict::Local);
    };
    let policy = database.pushdown();
    let remote = |top_only: bool, worth: bool| Verdict::Remote {
        database: Arc::clone(&database),
        top_only,
        worth_it: worth_it || worth,
    };
    let verdict = match plan {
        LogicalPlan::Projection(p) => {
            let schema = Judge::of(policy, &p.input);
            p.expr
                .iter()
                .all(|e| schema.value(e))
                .then(|| remote(false, false))
        }
        LogicalPlan::Filter(f) => Judge::of(policy, &f.input)
            .predicate(&f.predicate)
            .then(|| remote(false, false)),
        LogicalPlan::SubqueryAlias(_) => Some(remote(false, false)),
        LogicalPlan::Join(join) => {
            // Semi and anti joins read the right side's keys too.
            let both = join.left.schema().join(join.right.schema());
            let mut types = remote_types(&join.left, policy);
            types.extend(remote_types(&join.right, policy));
            let schema = match &both {
                Ok(both) if is_semi(join.join_type) => Judge::new(policy, both, &types),
                _ => Judge::new(policy, &join.schema, &types),
            };
            let kind = match join.join_type {
                JoinType::Inner => true,
                // A WHERE over an outer join's result would drop the rows
                // whose `EXISTS` (from a semi join below) it turns false.
                // A Filter node inside an input would be printed as the
                // WHERE of the whole query, after the outer join.
                JoinType::Left | JoinType::Right | JoinType::Full => {
                    !has_semi_join(&join.left)?
                        && !has_semi_join(&join.right)?
                        && !has_filter(&join.left)?
                        && !has_filter(&join.right)?
                }
                // `SELECT ... FROM left WHERE [NOT] EXISTS (SELECT 1 FROM
                // right WHERE ...)`: only over plain scans.
                JoinType::LeftSemi | JoinType::LeftAnti => {
                    both.is_ok() && semi_left(&join.left)? && semi_input(&join.right)?
                }
                _ => false,
            };
            let keys = !join.on.is_empty()
                && join.on.iter().all(|(l, r)| schema.equal_keys(l, r))
                && join.null_equality == datafusion::common::NullEquality::NullEqualsNothing
                && !join.null_aware;
            let filter = join.filter.as_ref().is_none_or(|f| schema.predicate(f));
            (kind && keys && filter && joins_there(join, plan, policy)).then(|| remote(false, true))
        }
        LogicalPlan::Aggregate(agg) => {
            let schema = Judge::of(policy, &agg.input);
            let groups = agg.group_expr.iter().all(|e| schema.key(e));
            let aggregates = agg.aggr_expr.iter().all(|e| schema.aggregate(e));
            (groups && aggregates && !local.contains(plan)).then(|| remote(false, true))
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let schema = Judge::of(policy, input);
            (0..input.schema().fields().len())
                .all(|i| schema.key_field(i))
                .then(|| remote(false, true))
        }
        LogicalPlan::Sort(sort) => {
            let schema = Judge::of(policy, &sort.input);
            let keys = sort.expr.iter().all(|s| schema.sort_key(&s.expr));
            // Alone over a scan, the top-N rule pushes it already.
            (sort.fetch.is_some() && keys).then(|| remote(true, false))
        }
        LogicalPlan::Limit(limit) => {
            let literal = matches!(limit.get_skip_type()?, SkipType::Literal(_))
                && matches!(limit.get_fetch_type()?, FetchType::Literal(Some(_)));
            // Alone over a scan, the scan takes the limit already.
            literal.then(|| remote(true, false))
        }
        _ => None,
    };
    Ok(verdict.unwrap_or(Verdict::Local))
}

/// Whether `join` (the node `plan`) costs its database less than
/// sending both inputs here (see the `cost` module: a database that joins
/// by nested loops looks up every joined row).
fn joins_there(join: &Join, plan: &LogicalPlan, policy: &dyn PushdownPolicy) -> bool {
    let costs = policy.costs();
    if !costs.nested_loop_joins {
        // Always (see `remote_join_pays`), without estimating the inputs.
        return true;
    }
    super::cost::remote_join_pays(
        &costs,
        row_estimate(&join.left),
        row_estimate(&join.right),
        row_estimate(plan),
    )
}

/// The types the database gives the output columns of `plan` where they
/// differ from DataFusion's: `sum` of what [`PushdownPolicy::sum_type`]
/// names, passed on through columns, aliases, filters, sorts, limits,
/// DISTINCT and joins. Expressions over them in the same remote query are
/// judged with these types.
fn remote_types(plan: &LogicalPlan, policy: &dyn PushdownPolicy) -> Vec<Option<DataType>> {
    let width = plan.schema().fields().len();
    let passed = |input: &LogicalPlan| remote_types(input, policy);
    let mut types = match plan {
        LogicalPlan::Aggregate(agg) => {
            let inner = passed(&agg.input);
            let mut types: Vec<Option<DataType>> = match agg.group_expr.as_slice() {
                [Expr::GroupingSet(_)] => Vec::new(),
                groups => groups
                    .iter()
                    .map(|g| column_type(g, &agg.input, &inner))
                    .collect(),
            };
            types.resize(width - agg.aggr_expr.len(), None);
            for expr in &agg.aggr_expr {
                let summed = match expr.clone().unalias_nested().data {
                    Expr::AggregateFunction(f) if f.func.name() == "sum" => {
                        match f.params.args.as_slice() {
                            [arg] => datafusion::logical_expr::ExprSchemable::get_type(
                                arg,
                                agg.input.schema(),
                            )
                            .ok()
                            .and_then(|t| policy.sum_type(&t)),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                types.push(summed);
            }
            types
        }
        LogicalPlan::Projection(p) => {
            let inner = passed(&p.input);
            p.expr
                .iter()
                .map(|e| column_type(e, &p.input, &inner))
                .collect()
        }
        LogicalPlan::SubqueryAlias(a) => passed(&a.input),
        LogicalPlan::Filter(f) => passed(&f.input),
        LogicalPlan::Sort(s) => passed(&s.input),
        LogicalPlan::Limit(l) => passed(&l.input),
        LogicalPlan::Distinct(Distinct::All(input)) => passed(input),
        LogicalPlan::Join(join) => {
            let mut types = passed(&join.left);
            if !is_semi(join.join_type) {
                types.extend(passed(&join.right));
            }
            types
        }
        _ => Vec::new(),
    };
    types.resize(width, None);
    types
}

/// The database's type of `expr` when it is a column (or an alias of one)
/// of `input`, whose columns have the database's types `types`.
fn column_type(expr: &Expr, input: &LogicalPlan, types: &[Option<DataType>]) -> Option<DataType> {
    match expr {
        Expr::Alias(alias) => column_type(&alias.expr, input, types),
        Expr::Column(c) => types.get(input.schema().index_of_column(c).ok()?)?.clone(),
        _ => None,
    }
}

fn is_semi(join_type: JoinType) -> bool {
    matches!(join_type, JoinType::LeftSemi | JoinType::LeftAnti)
}

fn has_filter(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Filter(_))))
}

fn has_semi_join(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|p| Ok(matches!(p, LogicalPlan::Join(j) if is_semi(j.join_type))))
}

/// An input of a semi join that renders correctly: a scan under aliases (a
/// left one's filters are lifted above the join, a right one's kept in a
/// derived table, see [`lift_semi_join_filters`]), or aliases and
/// projections of columns over a scan without filters.
fn semi_input(plan: &LogicalPlan) -> Result<bool> {
    let plain = |plan: &LogicalPlan| -> Result<bool> {
        let shapes = !plan.exists(|p| {
            Ok(match p {
                LogicalPlan::TableScan(scan) => !scan.filters.is_empty() || scan.fetch.is_some(),
                LogicalPlan::SubqueryAlias(_) => false,
                LogicalPlan::Projection(projection) => !is_column_projection(projection),
                _ => true,
            })
        })?;
        Ok(shapes)
    };
    // A limited scan's filters could not move above the join.
    Ok(aliased_scan(plan).is_some_and(|(scan, _)| scan.fetch.is_none()) || plain(plan)?)
}

/// The left input of a semi join that renders correctly: a
/// [`semi_input`], or a semi join of such inputs (`WHERE EXISTS (..) AND
/// NOT EXISTS (..)` over one scan).
fn semi_left(plan: &LogicalPlan) -> Result<bool> {
    match plan {
        LogicalPlan::Join(join) if is_semi(join.join_type) => {
            Ok(semi_left(&join.left)? && semi_input(&join.right)?)
        }
        other => semi_input(other),
    }
}

fn judge_scan(scan: &TableScan) -> Verdict {
    let Some(provider) = remote_table(scan) else {
        return Verdict::Local;
    };
    let Some(table) = provider.downcast_ref::<RemoteTable>() else {
        return Verdict::Local;
    };
    let database = table.database();
    if database.pushdown().pushes_nothing() {
        // `pushdown = off`: no aggregate, join or DISTINCT either, not
        // even the `count(*)` every database computes alike.
        return Verdict::Local;
    }
    let schema = table.schema();
    let filters = scan
        .filters
        .iter()
        .all(|f| classify(database.pushdown(), f, &schema) == Capability::Exact);
    let columns = scan
        .projected_schema
        .fields()
        .iter()
        .all(|f| !f.metadata().contains_key(CAST_TO_TEXT));
    if filters && columns {
        Verdict::Remote {
            database: Arc::clone(database),
            top_only: false,
            worth_it: false,
        }
    } else {
        Verdict::Local
    }
}

/// Judges expressions over one input schema. Columns are renamed to their
/// position first (`#0`, `#1`, ...), so the two `id` columns of a join are
/// never confused with each other.
struct Judge<'a> {
    policy: &'a dyn PushdownPolicy,
    input: &'a DFSchema,
    positional: Schema,
}

impl<'a> Judge<'a> {
    /// Judges over the output of `input`, in the types the database gives
    /// it (see [`remote_types`]).
    fn of(policy: &'a dyn PushdownPolicy, input: &'a LogicalPlan) -> Self {
        Self::new(policy, input.schema(), &remote_types(input, policy))
    }

    /// Judges over `input`, whose columns the database computes in the
    /// types of `remote` where they differ from DataFusion's (see
    /// [`remote_types`]).
    fn new(
        policy: &'a dyn PushdownPolicy,
        input: &'a DFSchema,
        remote: &[Option<DataType>],
    ) -> Self {
        let positional = Schema::new(
            input
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let field = f.as_ref().clone().with_name(format!("#{i}"));
                    match remote.get(i) {
                        Some(Some(t)) => field.with_data_type(t.clone()),
                        _ => field,
                    }
                })
                .collect::<Vec<Field>>(),
        );
        Self {
            policy,
            input,
            positional,
        }
    }

    /// `expr` with its columns renamed to positions; `None` when a column is
    /// not one of the input's (an outer reference).
    fn positional(&self, expr: &Expr) -> Option<Expr> {
        let mut missing = false;
        let renamed = expr
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => match self.input.index_of_column(&c) {
                        Ok(i) => {
                            Transformed::yes(Expr::Column(Column::new_unqualified(format!("#{i}"))))
                        }
                        Err(_) => {
                            missing = true;
                            Transformed::no(Expr::Column(c))
                        }
                    },
                    other => Transformed::no(other),
                })
            })
            .ok()?
            .data;
        (!missing).then_some(renamed)
    }

    fn field(&self, expr: &Expr) -> Option<&Field> {
        match self.positional(expr)? {
            Expr::Column(c) => self.positional.field_with_name(&c.name).ok(),
            _ => None,
        }
    }

    /// A boolean expression the database evaluates exactly.
    fn predicate(&self, expr: &Expr) -> bool {
        self.positional(expr)
            .is_some_and(|e| classify(self.policy, &e, &self.positional) == Capability::Exact)
    }

    /// A value the database computes exactly: a column, a plain literal, a
    /// widening integer cast, an Exact predicate, or what the policy
    /// [computes exactly](PushdownPolicy::computes_exactly).
    fn value(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Alias(alias) => self.value(&alias.expr),
            Expr::Column(_) => self.field(expr).is_some(),
            Expr::Literal(value, _) => {
                let data_type = value.data_type();
                data_type.is_integer() || data_type == DataType::Boolean || value.is_null()
            }
            Expr::Cast(cast) => {
                self.widening_integer_cast(&cast.expr, cast.field.data_type())
                    || self.computed(expr)
            }
            other => self.predicate(other) || self.computed(other),
        }
    }

    fn computed(&self, expr: &Expr) -> bool {
        self.positional(expr)
            .is_some_and(|e| self.policy.computes_exactly(&e, &self.positional))
    }

    /// A decimal column, or a decimal value the policy computes exactly.
    fn decimal_value(&self, expr: &Expr) -> bool {
        let decimal = matches!(
            datafusion::logical_expr::ExprSchemable::get_type(expr, self.input),
            Ok(DataType::Decimal128(..) | DataType::Decimal256(..))
        );
        decimal && (self.field(expr).is_some() || self.computed(expr))
    }

    fn widening_integer_cast(&self, inner: &Expr, to: &DataType) -> bool {
        let Some(field) = self.field(inner) else {
            return false;
        };
        let bits = |t: &DataType| match t {
            DataType::Int16 => Some(16),
            DataType::Int32 => Some(32),
            DataType::Int64 => Some(64),
            _ => None,
        };
        matches!((bits(field.data_type()), bits(to)), (Some(a), Some(b)) if a <= b)
    }

    /// A column whose values the database tells apart exactly as DataFusion
    /// does (grouping, DISTINCT, join keys).
    fn key(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Alias(alias) => self.key(&alias.expr),
            _ => self
                .field(expr)
                .is_some_and(|f| self.policy.equals_exactly(f)),
        }
    }

    fn key_field(&self, i: usize) -> bool {
        self.policy.equals_exactly(self.positional.field(i))
    }

    fn equal_keys(&self, left: &Expr, right: &Expr) -> bool {
        match (self.field(left), self.field(right)) {
            (Some(l), Some(r)) => {
                l.data_type() == r.data_type() && self.policy.equals_exactly_between(l, r)
            }
            _ => false,
        }
    }

    fn sort_key(&self, expr: &Expr) -> bool {
        self.field(expr)
            .is_some_and(|f| self.policy.sorts_exactly(f))
    }

    /// `count`, `count(DISTINCT key)`, `min`/`max` of exactly sorted
    /// columns, `sum` of decimals and small integers.
    fn aggregate(&self, expr: &Expr) -> bool {
        let function = match expr {
            Expr::Alias(alias) => return self.aggregate(&alias.expr),
            Expr::AggregateFunction(f) => f,
            _ => return false,
        };
        let params = &function.params;
        if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some()
        {
            return false;
        }
        let [arg] = params.args.as_slice() else {
            return false;
        };
        match function.func.name() {
            "count" if params.distinct => self.key(arg),
            "count" => self.value(arg),
            "min" | "max" => self
                .field(arg)
                .is_some_and(|f| self.policy.orders_values_exactly(f)),
            "sum" if !params.distinct => match arg {
                _ if self.decimal_value(arg) => true,
                Expr::Cast(cast) => {
                    self.widening_integer_cast(&cast.expr, cast.field.data_type())
                        && self
                            .field(&cast.expr)
                            .is_some_and(|f| f.data_type() != &DataType::Int64)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// A sub-plan that runs in one remote database as one query.
#[derive(Debug, Clone)]
pub struct RemoteQueryNode {
    database: Arc<dyn RemoteDatabase>,
    /// The original sub-plan (what runs locally if the database cannot).
    input: LogicalPlan,
}

impl RemoteQueryNode {
    fn new(database: Arc<dyn RemoteDatabase>, input: LogicalPlan) -> Self {
        Self { database, input }
    }

    /// The sub-plan as the database sees it: its tables named as in the
    /// database, its columns selected in order as `c0`, `c1`, ..., with
    /// `casts` applied to the columns whose remote type differs.
    fn remote_plan(&self, casts: &HashMap<usize, DataType>) -> Result<LogicalPlan> {
        let mut renamed: HashMap<TableReference, TableReference> = HashMap::new();
        let plan = isolate_outer_join_inputs(self.input.clone())?
            .transform_up(|node| {
                if let LogicalPlan::TableScan(scan) = &node
                    && let Some(provider) = remote_table(scan)
                    && let Some(table) = provider.downcast_ref::<RemoteTable>()
                {
                    let remote = table.reference().clone();
                    renamed.insert(scan.table_name.clone(), remote.clone());
                    let filters = scan
                        .filters
                        .iter()
                        .map(|f| requalify(f.clone(), &renamed))
                        .collect::<Result<Vec<_>>>()?;
                    let source = Arc::new(LogicalTableSource::new(table.schema()));
                    let scan = TableScanBuilder::new(remote, source)
                        .with_projection(scan.projection.clone())
                        .with_filters(filters)
                        .with_fetch(scan.fetch)
                        .build()?;
                    return Ok(Transformed::yes(LogicalPlan::TableScan(scan)));
                }
                // Projections and aggregates name their outputs after their
                // expressions: the names parents refer to are kept.
                let names_outputs =
                    matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_));
                let node = node.map_expressions(|e| {
                    let before = e.schema_name().to_string();
                    let after = requalify(e, &renamed)?;
                    let renamed_output = names_outputs
                        && !matches!(after, Expr::Column(_) | Expr::Alias(_))
                        && after.schema_name().to_string() != before;
                    Ok(Transformed::yes(if renamed_output {
                        after.alias(before)
                    } else {
                        after
                    }))
                })?;
                Ok(Transformed::yes(node.data.recompute_schema()?))
            })?
            .data;
        select_outputs(
            alias_semi_joins_under_joins(tidy_projections(plan)?)?,
            casts,
        )
    }
}

/// Semi joins under another join, with the alias of the table they filter.
///
/// A semi join with a projection over it (its lifted filters, see
/// [`lift_semi_join_filters`], or its columns) is rendered as a derived
/// table; under a join, the unparser names it `derived_projection` while the
/// join's condition still names the table (`o1.cid`). Aliased as that table,
/// the derived table answers to the same names.
fn alias_semi_joins_under_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    fn semi_below(plan: &LogicalPlan) -> bool {
        match plan {
            LogicalPlan::Join(join) => is_semi(join.join_type),
            LogicalPlan::Filter(filter) => semi_below(&filter.input),
            _ => false,
        }
    }
    /// The one table a projection of columns over a semi join names.
    fn aliased(input: &Arc<LogicalPlan>) -> Result<Option<Arc<LogicalPlan>>> {
        let LogicalPlan::Projection(projection) = input.as_ref() else {
            return Ok(None);
        };
        if !is_column_projection(projection) || !semi_below(&projection.input) {
            return Ok(None);
        }
        let mut qualifiers = projection.expr.iter().map(|e| match e {
            Expr::Column(c) => c.relation.clone(),
            _ => None,
        });
        let Some(Some(first)) = qualifiers.next() else {
            return Ok(None);
        };
        if !qualifiers.all(|q| q.as_ref() == Some(&first)) {
            return Ok(None);
        }
        Ok(Some(Arc::new(LogicalPlan::SubqueryAlias(
            datafusion::logical_expr::SubqueryAlias::try_new(Arc::clone(input), first)?,
        ))))
    }
    Ok(plan
        .transform_up(|node| {
            let LogicalPlan::Join(join) = &node else {
                return Ok(Transformed::no(node));
            };
            if is_semi(join.join_type) {
                return Ok(Transformed::no(node));
            }
            let (left, right) = (aliased(&join.left)?, aliased(&join.right)?);
            if left.is_none() && right.is_none() {
                return Ok(Transformed::no(node));
            }
            let left = left.unwrap_or_else(|| Arc::clone(&join.left));
            let right = right.unwrap_or_else(|| Arc::clone(&join.right));
            Ok(Transformed::yes(join_like(
                join,
                left,
                right,
                join.on.clone(),
                join.filter.clone(),
            )?))
        })?
        .data)
}

/// The inputs of outer joins with their filters applied in a derived table.
///
/// The unparser folds the filters of scans under an outer join into its ON
/// clause; for the preserved side (the left of a LEFT JOIN) that keeps rows
/// the filter removed. A scan rendered as `(SELECT ... WHERE ...) AS alias`
/// is filtered before the join, on both sides, as DataFusion does.
fn isolate_outer_join_inputs(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up(|node| {
            let LogicalPlan::Join(join) = &node else {
                return Ok(Transformed::no(node));
            };
            if join.join_type == JoinType::Inner {
                return Ok(Transformed::no(node));
            }
            if is_semi(join.join_type) {
                return lift_semi_join_filters(join);
            }
            let inputs = [join.left.as_ref(), join.right.as_ref()];
            let mut changed = false;
            let mut isolated = Vec::with_capacity(2);
            for input in inputs {
                let new = isolated_within(input)?;
                changed |= new.is_some();
                isolated.push(new.unwrap_or_else(|| input.clone()));
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            let expressions = node.expressions();
            Ok(Transformed::yes(
                node.with_new_exprs(expressions, isolated)?,
            ))
        })?
        .data)
}

/// Every filtered scan in `plan`, at any depth, isolated (see
/// [`isolated_scan`]); `None` when there is none. The unparser hoists the
/// filters of a scan inside a join inside an outer join's input to the
/// WHERE of the whole query, where they would remove the rows the outer
/// join adds (`(a JOIN b ON .. AND b.x > 3) RIGHT JOIN c` lost every row of
/// `c` without a match).
fn isolated_within(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    if let Some(isolated) = isolated_scan(plan)? {
        return Ok(Some(isolated));
    }
    if matches!(plan, LogicalPlan::TableScan(_)) {
        return Ok(None);
    }
    let mut changed = false;
    let mut inputs = Vec::new();
    for input in plan.inputs() {
        let new = isolated_within(input)?;
        changed |= new.is_some();
        inputs.push(new.unwrap_or_else(|| input.clone()));
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(plan.with_new_exprs(plan.expressions(), inputs)?))
}

/// A filtered scan under aliases (`SubqueryAlias*(TableScan)`) as a
/// derived table with the same aliases; `None` for anything else.
fn isolated_scan(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    Ok(match plan {
        LogicalPlan::TableScan(scan) if !scan.filters.is_empty() => Some(filtered_scan(scan)?),
        LogicalPlan::SubqueryAlias(alias) => match isolated_scan(&alias.input)? {
            Some(inner) => Some(LogicalPlan::SubqueryAlias(
                datafusion::logical_expr::SubqueryAlias::try_new(
                    Arc::new(inner),
                    alias.alias.clone(),
                )?,
            )),
            None => None,
        },
        _ => None,
    })
}

/// `SubqueryAlias(a, SubqueryAlias(b, x))` as `SubqueryAlias(a, x)`.
fn outermost_alias_only(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::SubqueryAlias(outer) => {
            let mut input = Arc::clone(&outer.input);
            while let LogicalPlan::SubqueryAlias(inner) = input.as_ref() {
                input = Arc::clone(&inner.input);
            }
            Ok(LogicalPlan::SubqueryAlias(
                datafusion::logical_expr::SubqueryAlias::try_new(input, outer.alias.clone())?,
            ))
        }
        other => Ok(other),
    }
}

/// The scan under `plan`'s aliases, and the outermost alias.
fn aliased_scan(plan: &LogicalPlan) -> Option<(&TableScan, Option<&TableReference>)> {
    match plan {
        LogicalPlan::TableScan(scan) => Some((scan, None)),
        LogicalPlan::SubqueryAlias(alias) => {
            aliased_scan(&alias.input).map(|(scan, _)| (scan, Some(&alias.alias)))
        }
        _ => None,
    }
}

/// A semi join rendered correctly: its left scan's filters above the join
/// (the same rows: they read the left side's columns only) and its right
/// scan isolated as a derived table. The unparser renders a semi join as
/// `[NOT] EXISTS` in the left side's SELECT and would drop the left scan's
/// filters; over the join they become that SELECT's WHERE.
fn lift_semi_join_filters(join: &Join) -> Result<Transformed<LogicalPlan>> {
    // Only the outermost of nested aliases names anything above them (the
    // unparser would keep the innermost).
    let flat = outermost_alias_only(join.right.as_ref().clone())?;
    let right = Arc::new(isolated_scan(&flat)?.unwrap_or(flat));
    let over = |left: Arc<LogicalPlan>| {
        join_like(
            join,
            left,
            Arc::clone(&right),
            join.on.clone(),
            join.filter.clone(),
        )
    };
    // An inner semi join whose filters were lifted already: lifted again,
    // above this one (it reads the same left columns below the filter).
    if let LogicalPlan::Projection(projection) = join.left.as_ref()
        && is_column_projection(projection)
        && let LogicalPlan::Filter(filter) = projection.input.as_ref()
        && let LogicalPlan::Join(inner) = filter.input.as_ref()
        && is_semi(inner.join_type)
    {
        let lifted = LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
            filter.predicate.clone(),
            Arc::new(over(Arc::clone(&filter.input))?),
        )?);
        return Ok(Transformed::yes(with_columns_of(&join.schema, lifted)?));
    }
    let left = aliased_scan(&join.left).filter(|(scan, _)| !scan.filters.is_empty());
    let Some((scan, alias)) = left else {
        return Ok(Transformed::yes(over(Arc::clone(&join.left))?));
    };
    let (mut bare, predicate) = unfiltered_scan(scan)?;
    // The filters, over the aliases, name the columns by the alias.
    let Some(mut predicate) = predicate else {
        return Ok(Transformed::no(LogicalPlan::Join(join.clone())));
    };
    if let Some(alias) = alias {
        bare = LogicalPlan::SubqueryAlias(datafusion::logical_expr::SubqueryAlias::try_new(
            Arc::new(bare),
            alias.clone(),
        )?);
        let renamed = HashMap::from([(scan.table_name.clone(), alias.clone())]);
        predicate = requalify(predicate, &renamed)?;
    }
    let filtered = LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
        predicate,
        Arc::new(over(Arc::new(bare))?),
    )?);
    Ok(Transformed::yes(with_columns_of(&join.schema, filtered)?))
}

/// `scan` without its filters and limit, reading the columns its filters
/// read too, and the filters as one predicate.
fn unfiltered_scan(scan: &TableScan) -> Result<(LogicalPlan, Option<Expr>)> {
    let table_schema = scan.source.schema();
    let mut indices: Vec<usize> = match &scan.projection {
        Some(p) => p.clone(),
        None => (0..table_schema.fields().len()).collect(),
    };
    for filter in &scan.filters {
        for column in filter.column_refs() {
            let i = table_schema.index_of(&column.name)?;
            if !indices.contains(&i) {
                indices.push(i);
            }
        }
    }
    let bare = TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source))
        .with_projection(Some(indices))
        .build()?;
    Ok((
        LogicalPlan::TableScan(bare),
        datafusion::logical_expr::utils::conjunction(scan.filters.clone()),
    ))
}

/// `scan` as a projection of a filter of a scan without filters: the
/// unparser renders it as a derived table.
fn filtered_scan(scan: &TableScan) -> Result<LogicalPlan> {
    let (bare, predicate) = unfiltered_scan(scan)?;
    let Some(predicate) = predicate else {
        return Ok(LogicalPlan::TableScan(scan.clone()));
    };
    let mut plan = LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
        predicate,
        Arc::new(bare),
    )?);
    if let Some(fetch) = scan.fetch {
        plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
            .limit(0, Some(fetch))?
            .build()?;
    }
    with_columns_of(&scan.projected_schema, plan)
}

/// The plan with two shapes the unparser renders as derived tables whose
/// columns cannot be named through taken apart: `Filter(Projection(x))`
/// becomes `Projection(Filter(x))`, and `Projection(Projection(x))`
/// becomes `Projection(x)`, when the inner projection is of plain columns
/// (the outer node reads the same columns of `x`).
fn tidy_projections(plan: LogicalPlan) -> Result<LogicalPlan> {
    /// A projection of plain columns.
    fn columns_only(plan: &LogicalPlan) -> Option<&Projection> {
        match plan {
            LogicalPlan::Projection(p) if is_column_projection(p) => Some(p),
            _ => None,
        }
    }
    Ok(plan
        .transform_up(|node| {
            let tidied = match &node {
                LogicalPlan::Filter(filter) => match columns_only(&filter.input) {
                    Some(inner) => {
                        let below = datafusion::logical_expr::Filter::try_new(
                            filter.predicate.clone(),
                            Arc::clone(&inner.input),
                        )?;
                        Some(Projection::try_new(
                            inner.expr.clone(),
                            Arc::new(LogicalPlan::Filter(below)),
                        )?)
                    }
                    None => None,
                },
                LogicalPlan::Projection(outer) => match columns_only(&outer.input) {
                    Some(inner) => Some(Projection::try_new(
                        outer.expr.clone(),
                        Arc::clone(&inner.input),
                    )?),
                    None => None,
                },
                _ => None,
            };
            Ok(match tidied {
                Some(projection) => Transformed::yes(LogicalPlan::Projection(projection)),
                None => Transformed::no(node),
            })
        })?
        .data)
}

/// `plan` with its result columns named `c0`, `c1`, ... in order, `casts`
/// applied. A projection on top (under a sort or limit) is renamed in place:
/// another projection over it would become a derived table.
fn select_outputs(plan: LogicalPlan, casts: &HashMap<usize, DataType>) -> Result<LogicalPlan> {
    let output = |i: usize, value: Expr| {
        match casts.get(&i) {
            Some(to) => datafusion::logical_expr::cast(value, to.clone()),
            None => value,
        }
        .alias(format!("c{i}"))
    };
    match plan {
        LogicalPlan::Projection(projection) => {
            let columns = projection
                .expr
                .into_iter()
                .enumerate()
                .map(|(i, e)| output(i, e.unalias()))
                .collect();
            Ok(LogicalPlan::Projection(Projection::try_new(
                columns,
                projection.input,
            )?))
        }
        LogicalPlan::Sort(sort) if matches!(sort.input.as_ref(), LogicalPlan::Projection(_)) => {
            let input_schema = Arc::clone(sort.input.schema());
            let input = select_outputs(Arc::unwrap_or_clone(sort.input), casts)?;
            let expr = sort
                .expr
                .into_iter()
                .map(|s| {
                    let key = s.expr.clone().transform(|e| {
                        Ok(match e {
                            Expr::Column(c) => {
                                let i = input_schema.index_of_column(&c)?;
                                Transformed::yes(Expr::Column(Column::new_unqualified(format!(
                                    "c{i}"
                                ))))
                            }
                            other => Transformed::no(other),
                        })
                    })?;
                    Ok(s.with_expr(key.data))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LogicalPlan::Sort(Sort {
                expr,
                input: Arc::new(input),
                fetch: sort.fetch,
            }))
        }
        LogicalPlan::Limit(limit)
            if matches!(
                limit.input.as_ref(),
                LogicalPlan::Projection(_) | LogicalPlan::Sort(_)
            ) =>
        {
            let input = select_outputs(Arc::unwrap_or_clone(limit.input), casts)?;
            Ok(LogicalPlan::Limit(datafusion::logical_expr::Limit {
                skip: limit.skip,
                fetch: limit.fetch,
                input: Arc::new(input),
            }))
        }
        other => {
            let columns: Vec<Expr> = other
                .schema()
                .iter()
                .enumerate()
                .map(|(i, (qualifier, field))| {
                    output(
                        i,
                        Expr::Column(Column::new(qualifier.cloned(), field.name())),
                    )
                })
                .collect();
            Ok(LogicalPlan::Projection(Projection::try_new(
                columns,
                Arc::new(other),
            )?))
        }
    }
}

/// `expr` with columns of renamed tables qualified by their remote names.
fn requalify(expr: Expr, renamed: &HashMap<TableReference, TableReference>) -> Result<Expr> {
    Ok(expr
        .transform(|e| {
            Ok(match e {
                Expr::Column(Column {
                    relation: Some(relation),
                    name,
                    spans,
                }) if renamed.contains_key(&relation) => Transformed::yes(Expr::Column(Column {
                    relation: Some(renamed[&relation].clone()),
                    name,
                    spans,
                })),
                other => Transformed::no(other),
            })
        })?
        .data)
}

impl PartialEq for RemoteQueryNode {
    fn eq(&self, other: &Self) -> bool {
        same_database(&self.database, &other.database) && self.input == other.input
    }
}

impl Eq for RemoteQueryNode {}

impl Hash for RemoteQueryNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.database.source_name().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for RemoteQueryNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.input.partial_cmp(&other.input)
    }
}

impl UserDefinedLogicalNodeCore for RemoteQueryNode {
    fn name(&self) -> &str {
        "RemoteQuery"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoteQuery: source={}", self.database.source_name())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        Ok(Self::new(Arc::clone(&self.database), inputs.swap_remove(0)))
    }
}

/// Plans [`RemoteQueryNode`]s as [`RemoteScanExec`]s, or as their local
/// sub-plan when the database cannot run them.
#[derive(Debug)]
struct RemoteQueryPlanner;

#[async_trait]
impl ExtensionPlanner for RemoteQueryPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<RemoteQueryNode>() else {
            return Ok(None);
        };
        let local = Arc::clone(&physical_inputs[0]);
        let expected: SchemaRef = Arc::new(node.input.schema().as_arrow().clone());
        Ok(Some(
            match remote_scan(node, &expected, session.config().batch_size()).await {
                Some(scan) => Arc::new(scan),
                None => local,
            },
        ))
    }
}

/// About how many rows a federated sub-plan returns, from its tables'
/// estimates, for DataFusion's choice of join build sides (TPC-H Q18: the
/// 57 orders of `IN (SELECT .. GROUP BY .. HAVING ..)` are built on, not
/// the 1.5 M orders probed with them), and for the join order. A table's
/// filters keep what its statistics say (see the `estimates` module; a
/// file table knows only its rows), a filter above a fifth (as DataFusion
/// assumes), a grouping half, an inner join see [`inner_join_rows`].
pub(super) fn row_estimate(plan: &LogicalPlan) -> Option<usize> {
    let input = |i: usize| plan.inputs().get(i).and_then(|p| row_estimate(p));
    let limited = |rows: Option<usize>, fetch: Option<usize>| match (rows, fetch) {
        (Some(rows), Some(fetch)) => Some(rows.min(fetch)),
        (rows, None) => rows,
        (None, fetch) => fetch,
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            if let Some(table) = provider.downcast_ref::<RemoteTable>() {
                return table.filtered_rows(&scan.filters, scan.fetch);
            }
            // A file table that knows its rows (see the files module's
            // `estimated`), without column statistics.
            let rows = *provider.statistics()?.num_rows.get_value()?;
            Some(super::filtered_rows(
                rows as u64,
                &scan.filters,
                &HashMap::new(),
                scan.fetch,
            ))
        }
        LogicalPlan::Filter(_) => input(0).map(|rows| rows / 5),
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => input(0),
        LogicalPlan::Sort(sort) => limited(input(0), sort.fetch),
        LogicalPlan::Limit(limit) => match limit.get_fetch_type().ok()? {
            FetchType::Literal(fetch) => limited(input(0), fetch),
            FetchType::UnsupportedExpr => input(0),
        },
        LogicalPlan::Aggregate(aggregate) if aggregate.group_expr.is_empty() => Some(1),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => input(0).map(|rows| rows / 2),
        LogicalPlan::Join(join) => {
            let (left, right) = (input(0)?, input(1)?);
            match join.join_type {
                JoinType::Inner => Some(inner_join_rows(join, left, right)),
                JoinType::Left => Some(left),
                JoinType::Right => Some(right),
                JoinType::Full => Some(left.saturating_add(right)),
                JoinType::LeftSemi | JoinType::LeftAnti => Some(left),
                _ => None,
            }
        }
        _ => None,
    }
}

/// About how many rows an inner join of `left` and `right` rows returns:
/// for a key of plain columns whose distinct values both sides estimate,
/// `left x right / max(distinct)` (each value of the side with fewer meets
/// its share of the other), the smallest over its keys; else the larger
/// side (a key joined to a unique key, the usual case).
pub(super) fn inner_join_rows(join: &Join, left: usize, right: usize) -> usize {
    let by_keys = join
        .on
        .iter()
        .filter_map(|(l, r)| {
            let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
                return None;
            };
            let distinct = super::grouping::distinct_keys(&join.left, l)?
                .max(super::grouping::distinct_keys(&join.right, r)?)
                .max(1);
            let rows = (left as u128 * right as u128) / u128::from(distinct);
            Some(usize::try_from(rows).unwrap_or(usize::MAX))
        })
        .min();
    by_keys.unwrap_or(left.max(right))
}

/// The remote scan for `node`, or `None` (logged at debug level with the
/// reason) when the database cannot run it with the expected result types.
async fn remote_scan(
    node: &RemoteQueryNode,
    expected: &SchemaRef,
    batch_size: usize,
) -> Option<RemoteScanExec> {
    let database = &node.database;
    let source = database.source_name();
    let mut casts = HashMap::new();
    for _ in 0..2 {
        let rendered = node.remote_plan(&casts).and_then(|plan| {
            let sql = RemoteSql::from_plan(&plan, database.as_ref())?;
            Ok((plan, sql))
        });
        let (plan, sql) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                tracing::debug!(source, %error, "sub-plan not expressible remotely; runs locally");
                return None;
            }
        };
        let described = match database.query_schema(sql.as_str()).await {
            Ok(schema) => schema,
            Err(error) => {
                tracing::debug!(source, %sql, %error, "remote sub-plan refused; runs locally");
                return None;
            }
        };
        // A query reading no column selects `1` (see `RemoteSql`).
        let width = expected.fields().len().max(1);
        if described.fields().len() != width {
            tracing::debug!(source, %sql, "remote sub-plan has other columns; runs locally");
            return None;
        }
        let mismatched: Vec<usize> = (0..expected.fields().len().min(described.fields().len()))
            .filter(|&i| !database.reads_as(described.field(i), expected.field(i).data_type()))
            .collect();
        if mismatched.is_empty() {
            let scan =
                RemoteScanExec::new(Arc::clone(database), sql, Arc::clone(expected), batch_size);
            // Run-time filters apply to the query's result (see
            // `exec::filtered`).
            return Some(
                scan.with_federated_plan(plan)
                    .with_row_estimate(row_estimate(&node.input)),
            );
        }
        for i in mismatched {
            casts.insert(i, expected.field(i).data_type().clone());
        }
    }
    tracing::debug!(source, "remote sub-plan result types differ; runs locally");
    None
}
