//! Join orders that let remote databases do more of the work.
//!
//! # Tables of one database joined together
//!
//! DataFusion joins the tables of `FROM a, b, c WHERE ...` in the order they
//! are listed (after putting tables that share a condition next to each
//! other). In TPC-H Q3 (`FROM customer, orders, lineitem`, customer in
//! MySQL, the other two in PostgreSQL) that joins `customer` to `orders`
//! first, so `orders` and `lineitem` are two remote scans: 3 M `lineitem`
//! rows cross the wire to meet the 150 k orders they join. Joined together,
//! they are one federated query (see [`federate`](super::federate)) whose
//! join PostgreSQL runs, and only the joined rows cross.
//!
//! [`JoinSameSourceFirst`] regroups a tree of inner joins so that the tables
//! of one database that are joined to each other (by a condition between
//! the two) are joined first, as one unit in the place of the first of
//! them; the other tables keep their order, and the columns are put back in
//! theirs. Two tables of one database also count as joined when their
//! columns equal one column elsewhere (`a.x = f.y AND f.y = b.z`, all three
//! of one type): `a.x = b.z` is added. Inner joins may be evaluated in any order with every condition
//! applied where its columns meet: the answer is the same. A unit is only
//! formed when federation would send it whole to its database (a regrouped
//! join that would run locally is left as it was), and the regrouped tree
//! must join every table on a key (never a cross join); otherwise the plan
//! is left as it is.
//!
//! # Small filtered tables joined first
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
//! table counts as small when its estimated rows under its filters (see
//! [`row_estimate`](super::federation): a remote table's statistics, or a
//! file's rows read when it was opened) are at most [`SMALL`], and it has a
//! filter: an unfiltered dimension removes nothing. Tables without an
//! estimate (views, JSON files) are never moved, and a small table is
//! never moved below a join whose other side is small too (the two would
//! trade places without end).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use datafusion::logical_expr::utils::split_conjunction_owned;

use super::RemoteDatabase;
use super::federation::{row_estimate, same_database, single_database};
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
        let Some(join) = plain_inner_join(&plan) else {
            return Ok(Transformed::no(plan));
        };
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
        // The columns of the other side this join's keys read.
        let mut read: HashSet<Column> = HashSet::new();
        for (_, key) in &keys {
            read.extend(key.column_refs().into_iter().cloned());
        }
        // Never split a join one database runs (see `JoinSameSourceFirst`).
        if single_database(&LogicalPlan::Join(other.clone())).is_some() {
            return Ok(Transformed::no(plan));
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
        // The join left on top would move `rest` down in its turn, and the
        // two would trade places for ever: a small table is moved only
        // below tables that are not small.
        if is_small(rest) {
            return Ok(Transformed::no(plan));
        }
        // The join's filter: the conditions on the small table and the side
        // it meets go down with it; the others (TPC-H Q7's `(n1.n_name = ..
        // AND n2.n_name = ..) OR (..)` reads a table of `rest`) are applied
        // where every table has met, on the join left on top. Both joins are
        // plain inner joins (see `plain_inner`), where a condition may be
        // applied anywhere above its columns' tables.
        let (mut local, mut upper) = (Vec::new(), Vec::new());
        for condition in join
            .filter
            .clone()
            .map(split_conjunction_owned)
            .unwrap_or_default()
        {
            let below = condition
                .column_refs()
                .iter()
                .all(|c| small.schema().has_column(c) || target.schema().has_column(c));
            if below {
                local.push(condition);
            } else {
                upper.push(condition);
            }
        }
        upper.extend(other.filter.clone());
        let conjunction = datafusion::logical_expr::utils::conjunction;
        let first = join_like(join, small, Arc::clone(target), keys, conjunction(local))?;
        let moved = join_like(
            other,
            Arc::new(first),
            Arc::clone(rest),
            inner_keys,
            conjunction(upper),
        )?;
        Ok(Transformed::yes(in_columns_of(join, moved)?))
    }
}

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct JoinSameSourceFirst;

impl OptimizerRule for JoinSameSourceFirst {
    fn name(&self) -> &str {
        "join_same_source_first"
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
        let Some(join) = plain_inner_join(&plan) else {
            return Ok(Transformed::no(plan));
        };
        let mut cluster = Cluster::default();
        cluster.flatten(&plan);
        // Two tables are next to each other already.
        if cluster.leaves.len() < 3 {
            return Ok(Transformed::no(plan));
        }
        let Some(regrouped) = cluster.regrouped(join)? else {
            return Ok(Transformed::no(plan));
        };
        Ok(Transformed::yes(in_columns_of(join, regrouped)?))
    }
}

/// A tree of inner joins taken apart: the plans it joins (its leaves, in
/// order) and its conditions.
#[derive(Default)]
struct Cluster {
    leaves: Vec<LogicalPlan>,
    /// Key pairs as `l = r`, and the conjuncts of extra conditions.
    conditions: Vec<Expr>,
    /// The leaves under each join of the tree.
    joins: Vec<Vec<usize>>,
}

impl Cluster {
    /// Adds the leaves and conditions of `plan`; returns its leaves.
    fn flatten(&mut self, plan: &LogicalPlan) -> Vec<usize> {
        match join_below(plan) {
            Some(join) if plain_inner(join) => {
                let mut leaves = self.flatten(&join.left);
                leaves.extend(self.flatten(&join.right));
                self.conditions
                    .extend(join.on.iter().map(|(l, r)| l.clone().eq(r.clone())));
                if let Some(filter) = &join.filter {
                    self.conditions
                        .extend(split_conjunction_owned(filter.clone()));
                }
                self.joins.push(leaves.clone());
                leaves
            }
            _ => {
                self.leaves.push(plan.clone());
                vec![self.leaves.len() - 1]
            }
        }
    }

    /// The leaves whose columns `expr` reads.
    fn leaves_of(&self, expr: &Expr) -> Vec<usize> {
        let columns = expr.column_refs();
        (0..self.leaves.len())
            .filter(|i| {
                columns
                    .iter()
                    .any(|c| self.leaves[*i].schema().has_column(c))
            })
            .collect()
    }

    /// The tree with each database's joined tables joined first, or `None`
    /// when that is the tree already or cannot be built (see the module
    /// docs).
    fn regrouped(&mut self, template: &Join) -> Result<Option<LogicalPlan>> {
        let count = self.leaves.len();
        let databases: Vec<Option<Arc<dyn RemoteDatabase>>> =
            self.leaves.iter().map(single_database).collect();
        self.infer_keys_within_databases(&databases);
        let shapes: Vec<Shape> = self.conditions.iter().map(|c| self.shape(c)).collect();
        // Tables of one database connected by conditions between two of
        // them: union-find over the leaves.
        let mut group: Vec<usize> = (0..count).collect();
        fn root(group: &mut [usize], mut i: usize) -> usize {
            while group[i] != i {
                group[i] = group[group[i]];
                i = group[i];
            }
            i
        }
        for shape in &shapes {
            if let [a, b] = shape.leaves.as_slice()
                && let (Some(x), Some(y)) = (&databases[*a], &databases[*b])
                && same_database(x, y)
            {
                let (ra, rb) = (root(&mut group, *a), root(&mut group, *b));
                group[ra.max(rb)] = ra.min(rb);
            }
        }
        // Units in the order of their first table.
        let mut units: Vec<Vec<usize>> = Vec::new();
        for leaf in 0..count {
            let r = root(&mut group, leaf);
            match units.iter_mut().find(|u| root(&mut group, u[0]) == r) {
                Some(unit) => unit.push(leaf),
                None => units.push(vec![leaf]),
            }
        }
        let new_groups: Vec<&Vec<usize>> = units
            .iter()
            .filter(|u| u.len() > 1 && !self.joins.iter().any(|j| same_set(j, u)))
            .collect();
        if new_groups.is_empty() {
            return Ok(None);
        }
        let mut used = vec![false; self.conditions.len()];
        let mut parts: Vec<(LogicalPlan, Vec<usize>)> = Vec::with_capacity(units.len());
        for unit in &units {
            if unit.len() == 1 {
                parts.push((self.leaves[unit[0]].clone(), unit.clone()));
                continue;
            }
            let members = unit
                .iter()
                .map(|i| (self.leaves[*i].clone(), vec![*i]))
                .collect();
            let mut unit_used = used.clone();
            let Some(joined) = self.chain(template, members, &shapes, &mut unit_used)? else {
                return Ok(None);
            };
            // Only worth it when the database runs the unit whole.
            if single_database(&joined.0).is_none() {
                return Ok(None);
            }
            used = unit_used;
            parts.push(joined);
        }
        let Some((plan, _)) = self.chain(template, parts, &shapes, &mut used)? else {
            return Ok(None);
        };
        Ok(used.iter().all(|u| *u).then_some(plan))
    }

    /// Adds `a = c` where `a = b` and `b = c` hold, `a` and `c` are
    /// columns of two tables of one database with no condition of their
    /// own, and all three have one type (TPC-H Q5: `c_nationkey =
    /// s_nationkey` and `s_nationkey = n_nationkey` join `customer` and
    /// `nation`, both in MySQL, through `supplier`, a file). For inner joins
    /// the added condition is implied by the others: the same rows pass.
    fn infer_keys_within_databases(&mut self, databases: &[Option<Arc<dyn RemoteDatabase>>]) {
        let mut pairs: Vec<(Column, Column)> = Vec::new();
        for condition in &self.conditions {
            if let Expr::BinaryExpr(binary) = condition
                && binary.op == datafusion::logical_expr::Operator::Eq
                && let (Expr::Column(a), Expr::Column(b)) =
                    (binary.left.as_ref(), binary.right.as_ref())
            {
                pairs.push((a.clone(), b.clone()));
            }
        }
        // Classes of columns equal to each other.
        let mut classes: Vec<Vec<Column>> = Vec::new();
        for (a, b) in pairs {
            let ia = classes.iter().position(|c| c.contains(&a));
            let ib = classes.iter().position(|c| c.contains(&b));
            match (ia, ib) {
                (Some(x), Some(y)) if x != y => {
                    let merged = classes.remove(x.max(y));
                    classes[x.min(y)].extend(merged);
                }
                (Some(_), Some(_)) => {}
                (Some(x), None) => classes[x].push(b),
                (None, Some(y)) => classes[y].push(a),
                (None, None) => classes.push(vec![a, b]),
            }
        }
        let leaf_of =
            |c: &Column| (0..self.leaves.len()).find(|i| self.leaves[*i].schema().has_column(c));
        let type_of = |leaf: usize, c: &Column| {
            self.leaves[leaf]
                .schema()
                .qualified_field_from_column(c)
                .ok()
                .map(|(_, f)| f.data_type().clone())
        };
        let mut added = Vec::new();
        for class in classes.iter().filter(|c| c.len() > 2) {
            let typed: Vec<_> = class
                .iter()
                .filter_map(|c| leaf_of(c).map(|l| (c, l, type_of(l, c))))
                .collect();
            let one_type = typed.len() == class.len()
                && typed
                    .iter()
                    .all(|(_, _, t)| t.is_some() && *t == typed[0].2);
            if !one_type {
                continue;
            }
            for (i, (a, la, _)) in typed.iter().enumerate() {
                for (b, lb, _) in &typed[i + 1..] {
                    let same = match (&databases[*la], &databases[*lb]) {
                        (Some(x), Some(y)) => la != lb && same_database(x, y),
                        _ => false,
                    };
                    let joined = self.conditions.iter().chain(&added).any(|c| {
                        let leaves = self.leaves_of(c);
                        leaves.contains(la) && leaves.contains(lb)
                    });
                    if same && !joined {
                        added.push(Expr::Column((*a).clone()).eq(Expr::Column((*b).clone())));
                    }
                }
            }
        }
        self.conditions.extend(added);
    }

    /// `parts` joined left-deep, each next the first one with a key into
    /// the ones before, with every unused condition whose columns meet
    /// there; `None` when a part has no key into the others.
    fn chain(
        &self,
        template: &Join,
        mut parts: Vec<(LogicalPlan, Vec<usize>)>,
        shapes: &[Shape],
        used: &mut [bool],
    ) -> Result<Option<(LogicalPlan, Vec<usize>)>> {
        let (mut plan, mut leaves) = parts.remove(0);
        while !parts.is_empty() {
            let next = parts.iter().enumerate().find_map(|(index, (_, right))| {
                let on = self.keys(&leaves, right, shapes, used);
                (!on.is_empty()).then_some((index, on))
            });
            let Some((index, on)) = next else {
                return Ok(None);
            };
            let (right_plan, right) = parts.remove(index);
            let mut filters = Vec::new();
            let joined: Vec<usize> = leaves.iter().chain(&right).copied().collect();
            for (i, condition) in self.conditions.iter().enumerate() {
                let inside = shapes[i].leaves.iter().all(|l| joined.contains(l));
                if used[i] || !inside {
                    continue;
                }
                used[i] = true;
                if !on.iter().any(|(k, _)| *k == i) {
                    filters.push(condition.clone());
                }
            }
            let on = on.into_iter().map(|(_, pair)| pair).collect();
            let filter = datafusion::logical_expr::utils::conjunction(filters);
            plan = match join_like(template, Arc::new(plan), Arc::new(right_plan), on, filter) {
                Ok(plan) => plan,
                // Names the new order would make ambiguous, say.
                Err(_) => return Ok(None),
            };
            leaves = joined;
        }
        Ok(Some((plan, leaves)))
    }

    /// The unused `l = r` conditions with `l` over `left`'s leaves and `r`
    /// over `right`'s (or the other way round), as join keys.
    fn keys(
        &self,
        left: &[usize],
        right: &[usize],
        shapes: &[Shape],
        used: &[bool],
    ) -> Vec<(usize, (Expr, Expr))> {
        let within = |leaves: &[usize], side: &[usize]| {
            !leaves.is_empty() && leaves.iter().all(|l| side.contains(l))
        };
        let mut keys = Vec::new();
        for (i, shape) in shapes.iter().enumerate() {
            let Some((l, r, l_leaves, r_leaves)) = &shape.sides else {
                continue;
            };
            if used[i] || shape.leaves.len() < 2 {
                continue;
            }
            if within(l_leaves, left) && within(r_leaves, right) {
                keys.push((i, (l.clone(), r.clone())));
            } else if within(r_leaves, left) && within(l_leaves, right) {
                keys.push((i, (r.clone(), l.clone())));
            }
        }
        keys
    }

    /// The leaves `condition` reads, and for `l = r` each side's.
    fn shape(&self, condition: &Expr) -> Shape {
        let sides = match condition {
            Expr::BinaryExpr(binary) if binary.op == datafusion::logical_expr::Operator::Eq => {
                let (l, r) = (binary.left.as_ref(), binary.right.as_ref());
                Some((l.clone(), r.clone(), self.leaves_of(l), self.leaves_of(r)))
            }
            _ => None,
        };
        Shape {
            leaves: self.leaves_of(condition),
            sides,
        }
    }
}

/// Where a condition's columns come from (see [`Cluster::shape`]).
struct Shape {
    leaves: Vec<usize>,
    /// For `l = r`: both sides and the leaves each reads.
    sides: Option<(Expr, Expr, Vec<usize>, Vec<usize>)>,
}

/// `plan` (a reordered `join`) with `join`'s columns in their order.
fn in_columns_of(join: &Join, plan: LogicalPlan) -> Result<LogicalPlan> {
    if plan.schema().columns() == join.schema.columns() {
        return Ok(plan);
    }
    with_columns_of(&join.schema, plan)
}

fn same_set(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
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

/// `plan` as a [`plain_inner`] join.
fn plain_inner_join(plan: &LogicalPlan) -> Option<&Join> {
    match plan {
        LogicalPlan::Join(join) if plain_inner(join) => Some(join),
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

/// A table, filtered, of at most [`SMALL`] estimated rows.
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
