//! Dynamic filters (from hash joins and top-N sorts) as remote predicates.
//!
//! A dynamic filter is a physical expression whose value changes while the
//! query runs. [`remote_filter`] takes the current value of each and turns
//! what it can into a logical predicate that is *implied* by it (a superset
//! of its rows): column-versus-literal comparisons, `IN` lists of literals,
//! `IS NULL`, AND, OR, and the per-partition `CASE` a partitioned join
//! builds (the OR of its branches). Anything else is left out, which only
//! widens the predicate, and so is an `IN` list of integers that fills half
//! of its own range (the bounds beside it say nearly as much) and one that
//! costs the database more than the rows it removes (see the `cost`
//! module). Of the result, only the conjuncts the database computes exactly
//! (its [`PushdownPolicy`]) are kept.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr as PhysicalBinary, CaseExpr, CastExpr, Column as PhysicalColumn,
    DynamicFilterPhysicalExpr, InListExpr, IsNullExpr, Literal,
};

use super::ColumnEstimate;
use super::cost::{Costs, KeyTarget, key_list_pays};
use super::pushdown::{Capability, PushdownPolicy, classify};

/// Longest `IN` list sent (DataFusion bounds the lists it builds too).
const MAX_IN_LIST: usize = 250_000;

/// Whether `expr` holds a dynamic filter.
pub fn is_dynamic(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.exists(|e| Ok(e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()))
        .unwrap_or(false)
}

/// What a scan's key lists are weighed against (see the `cost` module).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizing<'a> {
    /// Rows the scan returns without run-time filters.
    pub rows: Option<usize>,
    /// Rows of its table, for a scan of one table.
    pub table_rows: Option<usize>,
    /// The statistics of the scan's columns, in its order (empty when
    /// unknown).
    pub columns: &'a [ColumnEstimate],
}

/// The predicate to add to a remote scan with output `scan` (named
/// `remote` in the remote query, column by column) for the current values
/// of `filters`, or `None` when nothing useful is exact. A list of keys is
/// sent only where the database's [`Costs`] say it costs less than the rows
/// it removes (see [`key_list_pays`]; the bounds beside it go anyway).
pub fn remote_filter(
    filters: &[Arc<dyn PhysicalExpr>],
    scan: &Schema,
    remote: &Schema,
    policy: &dyn PushdownPolicy,
    sizing: Sizing,
) -> Option<Expr> {
    if scan.fields().len() != remote.fields().len() {
        return None;
    }
    let target = Target {
        scan,
        remote,
        costs: policy.costs(),
        sizing,
    };
    let mut exact = Vec::new();
    for filter in filters {
        let Some(current) = snapshot(filter) else {
            continue;
        };
        let Some(implied) = implied(&current, &target) else {
            continue;
        };
        for conjunct in split_conjunction(&implied) {
            if classify(policy, conjunct, remote) == Capability::Exact {
                exact.push(conjunct.clone());
            }
        }
    }
    conjunction(exact)
}

/// `expr` with each dynamic filter replaced by its current value.
fn snapshot(expr: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    Arc::clone(expr)
        .transform_down(|e| match e.downcast_ref::<DynamicFilterPhysicalExpr>() {
            Some(dynamic) => Ok(Transformed::yes(dynamic.current()?)),
            None => Ok(Transformed::no(e)),
        })
        .ok()
        .map(|t| t.data)
}

/// A logical predicate true for every row `expr` is true for; `None` for
/// "no restriction".
fn implied(expr: &Arc<dyn PhysicalExpr>, target: &Target) -> Option<Expr> {
    if let Some(binary) = expr.downcast_ref::<PhysicalBinary>() {
        let op = *binary.op();
        return match op {
            Operator::And => match (
                implied(binary.left(), target),
                implied(binary.right(), target),
            ) {
                (Some(l), Some(r)) => Some(l.and(r)),
                (l, r) => l.or(r),
            },
            Operator::Or => any_of(vec![
                implied(binary.left(), target)?,
                implied(binary.right(), target)?,
            ]),
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => {
                let ((column, own_type), value, op) = match (
                    keyed(binary.left(), target),
                    literal(binary.right()),
                    keyed(binary.right(), target),
                    literal(binary.left()),
                ) {
                    (Some(c), Some(v), _, _) => (c, v, op),
                    (_, _, Some(c), Some(v)) => (c, v, op.swap()?),
                    _ => return None,
                };
                // A value the column's own type cannot hold: left out (a
                // wider condition).
                let value = narrowed(&value, own_type.as_ref())?;
                Some(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(column),
                    op,
                    Box::new(Expr::Literal(value, None)),
                )))
            }
            _ => None,
        };
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        if list.negated() {
            return None;
        }
        let mut items = Vec::with_capacity(list.list().len());
        for item in list.list() {
            items.push(item.downcast_ref::<Literal>()?.value());
        }
        if let Some((column, own_type)) = keyed(list.expr(), target) {
            // A NULL key matches nothing, nor does one the column's own
            // type cannot hold: they are left out.
            let values = items
                .into_iter()
                .filter(|v| !v.is_null())
                .filter_map(|v| narrowed(v, own_type.as_ref()));
            return key_list(column, values.collect(), target);
        }
        // A join on several keys: `struct(a, b) IN ((1, 2), ...)`, which
        // implies `a IN (1, ...) AND b IN (2, ...)` (TPC-H Q9's partsupp,
        // joined on part and supplier).
        let keys = struct_columns(list.expr(), target)?;
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::new(); keys.len()];
        for item in items {
            let ScalarValue::Struct(array) = item else {
                return None;
            };
            let row: Vec<ScalarValue> = (0..keys.len())
                .map(|i| ScalarValue::try_from_array(array.columns().get(i)?, 0).ok())
                .collect::<Option<_>>()?;
            // A key with a NULL in it matches nothing.
            if item.is_null() || row.iter().any(ScalarValue::is_null) {
                continue;
            }
            for (column, value) in values.iter_mut().zip(row) {
                column.push(value);
            }
        }
        let lists = keys
            .into_iter()
            .zip(values)
            .filter_map(|(column, values)| key_list(column, values, target));
        return conjunction(lists);
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        return Some(column(is_null.arg(), target)?.is_null());
    }
    if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        // CASE partition(key) WHEN i THEN filter_i ... ELSE e END: a row
        // passes only through one of the branches.
        let mut branches: Vec<&Arc<dyn PhysicalExpr>> =
            case.when_then_expr().iter().map(|(_, then)| then).collect();
        if let Some(otherwise) = case.else_expr() {
            branches.push(otherwise);
        }
        let mut implied_branches = Vec::with_capacity(branches.len());
        for branch in branches {
            if !is_false(branch) {
                implied_branches.push(implied(branch, target)?);
            }
        }
        if implied_branches.is_empty() {
            return Some(Expr::Literal(ScalarValue::Boolean(Some(false)), None));
        }
        return any_of(paid_lists_only(implied_branches, target)?);
    }
    if is_false(expr) {
        return Some(Expr::Literal(ScalarValue::Boolean(Some(false)), None));
    }
    None
}

/// The OR of `branches` (at least one). When a branch has no key list (its
/// bounds alone: its keys were too many), the key lists of the others are
/// left out too: a row outside them passes through that branch's bounds
/// nearly always (a partitioned join's partitions span overlapping
/// ranges), so they cost the database a long list to parse and test for
/// little (TPC-H Q18's `orders` went with 75 K customer keys of one
/// partition beside the other's bounds). `None`: no restriction left.
fn any_of(branches: Vec<Expr>) -> Option<Expr> {
    let listed = |e: &Expr| {
        e.exists(|e| Ok(matches!(e, Expr::InList(_))))
            .unwrap_or(true)
    };
    let unlisted = branches.iter().any(|b| !listed(b));
    let mut kept = Vec::with_capacity(branches.len());
    for branch in branches {
        kept.push(if unlisted {
            without_key_lists(branch)?
        } else {
            branch
        });
    }
    kept.into_iter().reduce(Expr::or)
}

/// `branches` (a partitioned join's, OR-ed) without the key lists of each
/// column whose lists, all branches' keys together, cost more than the rows
/// they remove: the database gets all of them, so each branch's list
/// paying for itself is not enough (TPC-H Q14's two partitions each sent
/// 31 K part keys to SQLite). `None`: a branch was left with no
/// restriction, so the OR has none.
fn paid_lists_only(branches: Vec<Expr>, target: &Target) -> Option<Vec<Expr>> {
    let mut keys: Vec<(Expr, usize)> = Vec::new();
    for branch in &branches {
        for conjunct in split_conjunction(branch) {
            if let Expr::InList(list) = conjunct {
                match keys.iter_mut().find(|(c, _)| c == list.expr.as_ref()) {
                    Some((_, n)) => *n += list.list.len(),
                    None => keys.push((list.expr.as_ref().clone(), list.list.len())),
                }
            }
        }
    }
    let unpaid: Vec<Expr> = keys
        .into_iter()
        .filter(|(column, n)| !key_list_pays(&target.costs, *n, &target.key_target(column)))
        .map(|(column, _)| column)
        .collect();
    if unpaid.is_empty() {
        return Some(branches);
    }
    branches
        .into_iter()
        .map(|branch| {
            let kept = split_conjunction(&branch)
                .into_iter()
                .filter(|c| !matches!(c, Expr::InList(l) if unpaid.contains(&l.expr)))
                .cloned();
            conjunction(kept)
        })
        .collect()
}

/// `expr`'s conjuncts but its key lists; `None` when nothing is left.
fn without_key_lists(expr: Expr) -> Option<Expr> {
    let rest = split_conjunction(&expr)
        .into_iter()
        .filter(|c| !matches!(c, Expr::InList(_)))
        .cloned();
    conjunction(rest)
}

/// `column IN (values)`, the build side's keys once each and in order (a
/// join's build side repeats them); `None` for a list longer than
/// [`MAX_IN_LIST`], one its bounds say nearly as much as (see [`dense`]),
/// or one that costs the database more than the rows it removes (see
/// [`key_list_pays`]).
fn key_list(column: Expr, mut values: Vec<ScalarValue>, target: &Target) -> Option<Expr> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.dedup();
    if values.len() > MAX_IN_LIST {
        return None;
    }
    if values.is_empty() {
        return Some(Expr::Literal(ScalarValue::Boolean(Some(false)), None));
    }
    if dense(&values) {
        // The bounds (a separate conjunct) say nearly as much, and a long
        // list costs the database to parse and to test each row.
        return None;
    }
    if !key_list_pays(&target.costs, values.len(), &target.key_target(&column)) {
        return None;
    }
    let values = values.into_iter().map(|v| Expr::Literal(v, None)).collect();
    Some(column.in_list(values, false))
}

/// The columns of `struct(a, b, ...)` (a multi-column join key), each a
/// column of the scan.
fn struct_columns(expr: &Arc<dyn PhysicalExpr>, target: &Target) -> Option<Vec<Expr>> {
    let function = expr.downcast_ref::<datafusion::physical_expr::ScalarFunctionExpr>()?;
    if function.name() != "struct" {
        return None;
    }
    function
        .args()
        .iter()
        .map(|arg| column(arg, target))
        .collect()
}

/// Integer keys that fill at least half of the range between the smallest
/// and the largest (sorted, distinct), when there are many of them.
fn dense(values: &[ScalarValue]) -> bool {
    let as_i128 = |v: &ScalarValue| -> Option<i128> {
        match v {
            ScalarValue::Int8(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int16(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int32(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int64(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt8(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt16(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt32(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt64(Some(v)) => Some(i128::from(*v)),
            _ => None,
        }
    };
    if values.len() < 1000 {
        return false;
    }
    match (
        values.first().and_then(as_i128),
        values.last().and_then(as_i128),
    ) {
        (Some(min), Some(max)) => (values.len() as i128) * 2 > max - min,
        _ => false,
    }
}

fn is_false(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(false)))
}

/// The scan a filter is for: its output as DataFusion sees it (the
/// filters' columns) and as the remote query names it.
struct Target<'a> {
    scan: &'a Schema,
    remote: &'a Schema,
    costs: Costs,
    sizing: Sizing<'a>,
}

impl Target<'_> {
    /// The scan a list of keys of `column` (a column of the remote query)
    /// would filter, with that column's statistics where known.
    fn key_target(&self, column: &Expr) -> KeyTarget {
        let estimate = match column {
            Expr::Column(c) => {
                let mut at = self
                    .remote
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.name() == &c.name);
                match (at.next(), at.next()) {
                    (Some((i, _)), None) => self.sizing.columns.get(i),
                    _ => None,
                }
            }
            _ => None,
        };
        KeyTarget {
            rows: self.sizing.rows,
            table_rows: self.sizing.table_rows,
            distinct: estimate.and_then(|e| e.distinct),
            index: estimate.and_then(|e| e.index),
        }
    }
}

/// A column of the scan's output, named as in the remote query.
fn column(expr: &Arc<dyn PhysicalExpr>, target: &Target) -> Option<Expr> {
    let column = expr.downcast_ref::<PhysicalColumn>()?;
    // Two columns of one name (`x1.a` and `x2.a` of a federated join): the
    // index is not to be trusted, since DataFusion finds a filter's
    // columns by name when it pushes the filter through other nodes.
    let named =
        |schema: &Schema, name: &str| schema.fields().iter().filter(|f| f.name() == name).count();
    if named(target.scan, column.name()) != 1 {
        return None;
    }
    let field = target.scan.fields().get(column.index())?;
    let remote = target.remote.fields().get(column.index())?;
    (field.name() == column.name())
        .then(|| Expr::Column(datafusion::common::Column::from_name(remote.name())))
}

/// A column of the scan, or an integer column under a cast to a wider
/// integer type, with the column's own type in that case. DataFusion joins
/// keys of two integer types (a PostgreSQL `integer`, as TPC-H's DDL
/// declares keys, to SQLite's 64-bit `INTEGER` or a CSV file's) on the
/// narrower one cast to the wider, and pushes the join's filter through
/// that cast: `CAST(l_partkey AS BIGINT) IN (...)` (TPC-H Q17). A widening
/// cast is exact and keeps the order, so the values it is compared to are
/// restated in the column's type (see [`narrowed`]).
fn keyed(expr: &Arc<dyn PhysicalExpr>, target: &Target) -> Option<(Expr, Option<DataType>)> {
    if let Some(column) = column(expr, target) {
        return Some((column, None));
    }
    let cast = expr.downcast_ref::<CastExpr>()?;
    let column = column(cast.expr(), target)?;
    let own = cast.expr().data_type(target.scan).ok()?;
    widens(&own, cast.cast_type()).then_some((column, Some(own)))
}

/// Whether every value of integer type `from` is one of `to`, unchanged.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let bits = |t: &DataType| -> Option<(bool, u32)> {
        Some(match t {
            Int8 => (true, 8),
            Int16 => (true, 16),
            Int32 => (true, 32),
            Int64 => (true, 64),
            UInt8 => (false, 8),
            UInt16 => (false, 16),
            UInt32 => (false, 32),
            UInt64 => (false, 64),
            _ => return None,
        })
    };
    match (bits(from), bits(to)) {
        (Some((from_signed, from_bits)), Some((to_signed, to_bits))) => {
            if from_signed == to_signed {
                to_bits >= from_bits
            } else {
                // Unsigned into a wider signed type; never signed into
                // unsigned (negative values).
                !from_signed && to_signed && to_bits > from_bits
            }
        }
        _ => false,
    }
}

/// `value` (of a widening cast's type) in the column's own type `own`, when
/// it holds it exactly; itself when there is no cast.
fn narrowed(value: &ScalarValue, own: Option<&DataType>) -> Option<ScalarValue> {
    let Some(own) = own else {
        return Some(value.clone());
    };
    let narrow = value.cast_to(own).ok()?;
    let back = narrow.cast_to(&value.data_type()).ok()?;
    (!narrow.is_null() && back == *value).then_some(narrow)
}

fn literal(expr: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    let value = expr.downcast_ref::<Literal>()?.value();
    (!value.is_null()).then(|| value.clone())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::config::ConfigOptions;
    use datafusion::physical_expr::expressions::lit;

    use super::*;
    use crate::postgres::PostgresPushdown;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            // Text without PostgreSQL's column metadata: its collation is
            // unknown, so no comparison on it is exact.
            Field::new("s", DataType::Utf8, true),
        ])
    }

    fn k() -> Arc<dyn PhysicalExpr> {
        Arc::new(PhysicalColumn::new("k", 0))
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(PhysicalBinary::new(l, op, r))
    }

    fn in_list(values: &[Option<i64>]) -> Arc<dyn PhysicalExpr> {
        let list = values.iter().map(|v| lit(ScalarValue::Int64(*v))).collect();
        Arc::new(InListExpr::try_new(k(), list, false, &schema()).unwrap())
    }

    /// A dynamic filter on `k` whose current value is `expr`.
    fn dynamic(expr: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        let dynamic: Arc<dyn PhysicalExpr> =
            Arc::new(DynamicFilterPhysicalExpr::new(vec![k()], lit(true)));
        let filter = dynamic.downcast_ref::<DynamicFilterPhysicalExpr>().unwrap();
        filter.update(expr).unwrap();
        dynamic
    }

    fn render(expr: Arc<dyn PhysicalExpr>) -> Option<String> {
        let dynamic = dynamic(expr);
        assert!(is_dynamic(&dynamic));
        remote_filter(
            &[dynamic],
            &schema(),
            &schema(),
            &PostgresPushdown,
            Sizing::default(),
        )
        .map(|e| e.to_string())
    }

    #[test]
    fn keys_and_bounds_become_remote_predicates() {
        let bounds = binary(
            binary(k(), Operator::GtEq, lit(3i64)),
            Operator::And,
            binary(k(), Operator::LtEq, lit(499i64)),
        );
        let keys = in_list(&[Some(7), Some(3), None, Some(7), Some(499)]);
        assert_eq!(
            render(binary(bounds, Operator::And, keys)).as_deref(),
            Some("k >= Int64(3) AND k <= Int64(499) AND k IN ([Int64(3), Int64(7), Int64(499)])")
        );
        // Nothing known yet: no predicate.
        assert_eq!(render(lit(true)), None);
        // Only NULL keys: nothing matches.
        assert_eq!(render(in_list(&[None])).as_deref(), Some("Boolean(false)"));
    }

    /// Found in TPC-H Q17 over the split: PostgreSQL's `integer` part key
    /// joined to SQLite's 64-bit one arrives cast, and its 204 keys never
    /// reached the query (6 M rows crossed instead of 6 K).
    #[test]
    fn keys_compared_through_a_widening_cast_are_restated() {
        let narrow = Schema::new(vec![Field::new("k", DataType::Int32, true)]);
        let cast = |to: DataType| -> Arc<dyn PhysicalExpr> {
            Arc::new(CastExpr::new(
                Arc::new(PhysicalColumn::new("k", 0)),
                to,
                None,
            ))
        };
        let render = |expr: Arc<dyn PhysicalExpr>| {
            let dynamic = dynamic(expr);
            remote_filter(
                &[dynamic],
                &narrow,
                &narrow,
                &PostgresPushdown,
                Sizing::default(),
            )
            .map(|e| e.to_string())
        };
        let wide = || cast(DataType::Int64);
        let keys: Vec<Arc<dyn PhysicalExpr>> = [7i64, 3, 5_000_000_000]
            .into_iter()
            .map(|v| lit(ScalarValue::Int64(Some(v))))
            .collect();
        let list: Arc<dyn PhysicalExpr> =
            Arc::new(InListExpr::try_new(wide(), keys, false, &narrow).unwrap());
        let bounds = binary(
            binary(wide(), Operator::GtEq, lit(3i64)),
            Operator::And,
            binary(wide(), Operator::LtEq, lit(5_000_000_000i64)),
        );
        // The key past `integer`'s range matches nothing and is left out,
        // as is the bound it sets.
        assert_eq!(
            render(binary(bounds, Operator::And, list)).as_deref(),
            Some("k >= Int32(3) AND k IN ([Int32(3), Int32(7)])")
        );
        // A cast that changes values (to a narrower type, or to text) is
        // no key.
        let narrowing = binary(cast(DataType::Int8), Operator::Eq, lit(3i8));
        assert_eq!(render(narrowing), None);
        let text = binary(cast(DataType::Utf8), Operator::Eq, lit("3"));
        assert_eq!(render(text), None);
    }

    #[test]
    fn partitioned_lists_are_weighed_together() {
        // Two partitions of 600 keys each, for a scan of 2,000 rows: each
        // list would pay alone (it removes 70%), both together do not.
        let branch = |from: i64| {
            let keys: Vec<Option<i64>> = (0..600).map(|i| Some((from + i) * 10)).collect();
            binary(
                binary(
                    binary(k(), Operator::GtEq, lit(from * 10)),
                    Operator::And,
                    binary(k(), Operator::LtEq, lit((from + 599) * 10)),
                ),
                Operator::And,
                in_list(&keys),
            )
        };
        let route = binary(k(), Operator::Modulo, lit(2i64));
        let case = |branches: Vec<Arc<dyn PhysicalExpr>>| -> Arc<dyn PhysicalExpr> {
            let arms = branches
                .into_iter()
                .enumerate()
                .map(|(i, b)| (lit(i as i64), b))
                .collect();
            Arc::new(CaseExpr::try_new(Some(Arc::clone(&route)), arms, Some(lit(false))).unwrap())
        };
        let sent = |expr: Arc<dyn PhysicalExpr>| {
            let dynamic = dynamic(expr);
            let sizing = Sizing {
                rows: Some(2_000),
                table_rows: Some(2_000),
                columns: &[],
            };
            remote_filter(&[dynamic], &schema(), &schema(), &PostgresPushdown, sizing)
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let one = sent(case(vec![branch(0)]));
        assert!(one.contains(" IN ("), "{one}");
        let both = sent(case(vec![branch(0), branch(1000)]));
        assert!(
            !both.contains(" IN (") && both.contains(" OR "),
            "the bounds alone: {both}"
        );
    }

    #[test]
    fn partitioned_filters_become_their_union_and_unknown_parts_widen() {
        // CASE hash(k) % 2 WHEN 0 THEN k IN (1, 2) WHEN 1 THEN <opaque> ...:
        // a branch that cannot be expressed makes the whole CASE unknown.
        let route = binary(k(), Operator::Modulo, lit(2i64));
        let case = |second: Arc<dyn PhysicalExpr>| -> Arc<dyn PhysicalExpr> {
            Arc::new(
                CaseExpr::try_new(
                    Some(Arc::clone(&route)),
                    vec![
                        (lit(0i64), in_list(&[Some(1), Some(2)])),
                        (lit(1i64), second),
                    ],
                    Some(lit(false)),
                )
                .unwrap(),
            )
        };
        assert_eq!(
            render(case(in_list(&[Some(9)]))).as_deref(),
            Some("k IN ([Int64(1), Int64(2)]) OR k IN ([Int64(9)])")
        );
        let opaque = binary(k(), Operator::Plus, lit(1i64));
        assert_eq!(render(case(Arc::clone(&opaque))), None);
        // AND keeps the part it can express; OR needs both.
        let known = binary(k(), Operator::Lt, lit(10i64));
        assert_eq!(
            render(binary(
                Arc::clone(&known),
                Operator::And,
                Arc::clone(&opaque)
            ))
            .as_deref(),
            Some("k < Int64(10)")
        );
        assert_eq!(render(binary(known, Operator::Or, opaque)), None);
    }

    #[test]
    fn a_partition_with_bounds_alone_leaves_the_others_lists_out() {
        // One partition's keys were too many (bounds only), the other's were
        // listed: the list would keep out only rows outside the first
        // partition's bounds.
        let bounds = |lo: i64, hi: i64| {
            binary(
                binary(k(), Operator::GtEq, lit(lo)),
                Operator::And,
                binary(k(), Operator::LtEq, lit(hi)),
            )
        };
        let listed = binary(
            bounds(1, 90),
            Operator::And,
            in_list(&[Some(1), Some(50), Some(90)]),
        );
        assert_eq!(
            render(binary(bounds(2, 99), Operator::Or, Arc::clone(&listed))).as_deref(),
            Some("k >= Int64(2) AND k <= Int64(99) OR k >= Int64(1) AND k <= Int64(90)")
        );
        // Every partition listed: the lists stay.
        assert_eq!(
            render(binary(
                Arc::clone(&listed),
                Operator::Or,
                in_list(&[Some(7)])
            ))
            .as_deref(),
            Some(
                "k >= Int64(1) AND k <= Int64(90) AND k IN ([Int64(1), Int64(50), Int64(90)]) \
                 OR k IN ([Int64(7)])"
            )
        );
        // A partition with only a list left once lists go: no restriction.
        assert_eq!(
            render(binary(bounds(2, 99), Operator::Or, in_list(&[Some(7)]))),
            None
        );
    }

    #[test]
    fn keys_of_several_columns_become_a_list_per_column() {
        use datafusion::arrow::datatypes::Fields;
        use datafusion::common::scalar::ScalarStructBuilder;
        let s: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new("s", 1));
        let fields = Fields::from(vec![
            Field::new("c0", DataType::Int64, true),
            Field::new("c1", DataType::Utf8, true),
        ]);
        let key = Arc::new(datafusion::physical_expr::ScalarFunctionExpr::new(
            "struct",
            datafusion::functions::core::r#struct(),
            vec![k(), s],
            Arc::new(Field::new("struct", DataType::Struct(fields.clone()), true)),
            Arc::new(ConfigOptions::default()),
        ));
        let row = |k: Option<i64>, s: &str| {
            lit(ScalarStructBuilder::new()
                .with_scalar(fields[0].as_ref().clone(), ScalarValue::Int64(k))
                .with_scalar(fields[1].as_ref().clone(), ScalarValue::from(s))
                .build()
                .unwrap())
        };
        let list = vec![
            row(Some(9), "a"),
            row(None, "b"),
            row(Some(2), "c"),
            row(Some(9), "d"),
        ];
        let keys = Arc::new(InListExpr::try_new(key, list, false, &schema()).unwrap());
        // `s` has no exact comparison in PostgreSQL (see `schema`): only
        // `k`'s list, without the key holding a NULL.
        assert_eq!(render(keys).as_deref(), Some("k IN ([Int64(2), Int64(9)])"));
    }

    #[test]
    fn only_what_the_database_computes_exactly_is_sent() {
        let s: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new("s", 1));
        let on_text = binary(s, Operator::Eq, lit("a"));
        let on_key = binary(k(), Operator::Gt, lit(5i64));
        assert_eq!(
            render(binary(on_text, Operator::And, on_key)).as_deref(),
            Some("k > Int64(5)")
        );
    }

    #[test]
    fn key_lists_go_where_they_cost_less_than_the_rows_they_remove() {
        let keys: Vec<Option<i64>> = (1..=2000).map(|i| Some(i * 10)).collect();
        let filters = [dynamic(in_list(&keys))];
        let sent = |policy: &dyn PushdownPolicy, rows, columns: &[ColumnEstimate]| {
            let sizing = Sizing {
                rows: Some(rows),
                table_rows: Some(rows),
                columns,
            };
            remote_filter(&filters, &schema(), &schema(), policy, sizing)
                .map(|e| e.to_string())
                .is_some_and(|s| s.contains(" IN ("))
        };
        // 2,000 keys of a million rows remove most of them; of 2,000 rows
        // (taken as one row a key), none.
        assert!(sent(&PostgresPushdown, 1_000_000, &[]));
        assert!(!sent(&PostgresPushdown, 2_000, &[]));
        // 2,000 keys of a column of 2,000 distinct values keep every row.
        let common = ColumnEstimate {
            distinct: Some(2_000),
            ..Default::default()
        };
        assert!(!sent(
            &PostgresPushdown,
            1_000_000,
            std::slice::from_ref(&common)
        ));
        // In MySQL, the same keys on a primary key are looked up; on a
        // secondary index, the 40% of rows they reach cost a lookup each.
        let mysql = crate::mysql::MysqlPushdown;
        let primary = ColumnEstimate {
            distinct: Some(1_000_000),
            index: Some(crate::remote::cost::Index::Primary),
            ..Default::default()
        };
        assert!(sent(&mysql, 1_000_000, std::slice::from_ref(&primary)));
        let secondary = ColumnEstimate {
            distinct: Some(5_000),
            index: Some(crate::remote::cost::Index::Secondary),
            ..Default::default()
        };
        assert!(!sent(&mysql, 1_000_000, std::slice::from_ref(&secondary)));
        // Without the index, the database filters as it scans.
        let unindexed = ColumnEstimate {
            index: None,
            ..secondary
        };
        assert!(sent(&mysql, 1_000_000, std::slice::from_ref(&unindexed)));
    }

    #[test]
    fn dense_key_lists_are_left_to_the_bounds() {
        let dense: Vec<Option<i64>> = (1..=2000).map(Some).collect();
        assert_eq!(render(in_list(&dense)), None);
        let sparse: Vec<Option<i64>> = (1..=2000).map(|i| Some(i * 10)).collect();
        assert!(render(in_list(&sparse)).is_some_and(|s| s.starts_with("k IN (")));
    }
}
