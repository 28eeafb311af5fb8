//! What a database's own statistics say of a table, and how many of its rows
//! a filter keeps.
//!
//! Each connector reads its database's statistics once per table (and again
//! after `REFRESH SOURCE`): the rows, and per column the distinct values,
//! the fraction of NULLs and the smallest and largest values, where the
//! database keeps them (see [`RemoteDatabase::column_estimates`]). They
//! become DataFusion [`Statistics`] (every figure
//! [`Inexact`](Precision::Inexact): statistics lag behind writes) of the
//! table and of its scans, and they estimate the rows a scan returns under
//! its filters ([`selectivity`]), which decides the order of joins, the
//! side each hash table is built on, and how many parts a scan is read in.
//!
//! # How a filter's rows are estimated
//!
//! | conjunct | fraction of the rows kept | without statistics |
//! |---|---|---|
//! | `c = v` | `1 / distinct(c)`; none when `v` is outside `[min, max]` | 1/10 |
//! | `c <> v` | `1 - (c = v)` | 9/10 |
//! | `c IN (v1..vn)` | `n / distinct(c)` (at most 1) | n/10 |
//! | `c < v`, `<=`, `>`, `>=`, `BETWEEN` | the share of `[min, max]` kept, as if values were spread evenly | 1/3 |
//! | `c IS NULL` / `IS NOT NULL` | the NULL fraction / the rest | 1/20 / 19/20 |
//! | `a OR b` | `a + b - a·b` | |
//! | `NOT a` | `1 - a` | |
//! | anything else (`LIKE`, functions) | | 1/5 |
//!
//! Every comparison but `IS NULL` also removes the NULLs. Conjuncts are not
//! independent (a city implies its country), so `a AND b AND c` keeps
//! `s1 · s2^(1/2) · s3^(1/4)` of the rows with `s1 <= s2 <= s3` (the most
//! selective counts in full, the others less and less), as SQL Server's
//! estimator does. The ranges use numbers, decimals, dates and timestamps
//! only: text is ordered by the database's collation, which Arrow does not
//! know, so text columns get no `min`/`max`.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// Most columns of a table whose bounds a connector reads with `MIN()`
/// and `MAX()` where its database keeps none (one index lookup each).
pub const BOUNDED_COLUMNS: usize = 8;

/// What a database's statistics say of one column. Every figure is an
/// estimate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnEstimate {
    /// Distinct non-NULL values.
    pub distinct: Option<u64>,
    /// The fraction of rows whose value is NULL (0 to 1).
    pub null_fraction: Option<f64>,
    /// The smallest value, of the column's Arrow type.
    pub min: Option<ScalarValue>,
    /// The largest value, of the column's Arrow type.
    pub max: Option<ScalarValue>,
    /// The index the column starts, where the connector reads it (weighed
    /// by the `cost` module).
    pub index: Option<super::cost::Index>,
}

impl ColumnEstimate {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `min` and `max` from the database's `MIN()` and `MAX()` of a column
    /// of type `data_type`, as text: both, or neither when either is
    /// missing or does not parse (SQLite's `max()` of an `INTEGER` column
    /// holding a blob is the blob; the bound left would be no bound).
    pub fn with_bounds(self, min: Option<&str>, max: Option<&str>, data_type: &DataType) -> Self {
        let (Some(min), Some(max)) = (min, max) else {
            return self;
        };
        let bounds = Self::default().with_bounds_from_text([min, max], data_type);
        let parses = |text: &str| {
            ScalarValue::try_from_string(text.trim().to_string(), data_type)
                .is_ok_and(|v| !v.is_null() && as_number(&v).is_some())
        };
        if !(parses(min) && parses(max)) {
            return self;
        }
        Self {
            min: bounds.min,
            max: bounds.max,
            ..self
        }
    }

    /// `min` and `max` parsed from the database's text of values of a
    /// column of type `data_type` (its histogram bounds, its most common
    /// values, or `MIN()`/`MAX()`): the smallest and the largest of those
    /// that parse. Nothing for types without an order Arrow shares with the
    /// database (see [`ranged`]).
    pub fn with_bounds_from_text<'a>(
        mut self,
        values: impl IntoIterator<Item = &'a str>,
        data_type: &DataType,
    ) -> Self {
        if !ranged(data_type) {
            return self;
        }
        for value in values {
            let Ok(value) = ScalarValue::try_from_string(value.trim().to_string(), data_type)
            else {
                continue;
            };
            // NaN and infinities order differently in every database.
            if value.is_null() || as_number(&value).is_none() {
                continue;
            }
            if self.min.as_ref().is_none_or(|min| value < *min) {
                self.min = Some(value.clone());
            }
            if self.max.as_ref().is_none_or(|max| value > *max) {
                self.max = Some(value);
            }
        }
        self
    }
}

/// Whether columns of `data_type` get a `min` and `max`: numbers,
/// decimals, dates and timestamps, whose order is the same in every
/// database and in Arrow.
pub fn ranged(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        )
}

/// The table's [`Statistics`]: `rows` and, per column of `schema`, its
/// estimate in `columns` (by name), all inexact.
pub fn table_statistics(
    schema: &Schema,
    rows: Option<u64>,
    columns: &HashMap<String, ColumnEstimate>,
) -> Statistics {
    let rows = rows.map(|r| usize::try_from(r).unwrap_or(usize::MAX));
    let mut statistics = Statistics::new_unknown(schema);
    if let Some(rows) = rows {
        statistics = statistics.with_num_rows(Precision::Inexact(rows));
    }
    for (field, column) in schema
        .fields()
        .iter()
        .zip(&mut statistics.column_statistics)
    {
        if let Some(estimate) = columns.get(field.name()) {
            *column = column_statistics(estimate, rows);
        }
    }
    statistics
}

/// One column's statistics in a result of `rows` rows (a scan's, under its
/// filters: its values are still within the table's bounds, and at most
/// one per row).
pub fn column_statistics(estimate: &ColumnEstimate, rows: Option<usize>) -> ColumnStatistics {
    let mut column = ColumnStatistics::new_unknown();
    if let Some(distinct) = estimate.distinct.and_then(|d| usize::try_from(d).ok()) {
        column.distinct_count = Precision::Inexact(rows.map_or(distinct, |r| distinct.min(r)));
    }
    if let (Some(fraction), Some(rows)) = (estimate.null_fraction, rows) {
        column.null_count = Precision::Inexact((fraction.clamp(0.0, 1.0) * rows as f64) as usize);
    }
    if let Some(min) = &estimate.min {
        column.min_value = Precision::Inexact(min.clone());
    }
    if let Some(max) = &estimate.max {
        column.max_value = Precision::Inexact(max.clone());
    }
    column
}

/// Rows of a table of `rows` rows kept by `filters` (conjuncts) and at most
/// `limit` (see the module docs); at least one when the table has any.
pub fn filtered_rows(
    rows: u64,
    filters: &[Expr],
    columns: &HashMap<String, ColumnEstimate>,
    limit: Option<usize>,
) -> usize {
    let table_rows = usize::try_from(rows).unwrap_or(usize::MAX);
    let kept = if filters.is_empty() {
        table_rows
    } else {
        let fraction = conjunction_selectivity(filters.iter(), columns, rows);
        ((table_rows as f64 * fraction).round() as usize).clamp(table_rows.min(1), table_rows)
    };
    limit.map_or(kept, |limit| kept.min(limit))
}

/// The fraction of rows that `conjuncts` (ANDed) keep, with the most
/// selective counted in full and each next one less (see the module docs).
fn conjunction_selectivity<'a>(
    conjuncts: impl Iterator<Item = &'a Expr>,
    columns: &HashMap<String, ColumnEstimate>,
    rows: u64,
) -> f64 {
    let mut fractions = Vec::new();
    // Bounds on one column are one range (`x >= 10 AND x <= 20`), not two
    // conditions that each keep a share.
    let mut ranges: Vec<(&Expr, Bound, Bound)> = Vec::new();
    for conjunct in conjuncts.flat_map(split_and) {
        match range_bound(conjunct) {
            Some((column, low, high)) => match ranges.iter_mut().find(|(c, ..)| *c == column) {
                Some((_, l, h)) => {
                    tighten(l, low, true);
                    tighten(h, high, false);
                }
                None => ranges.push((column, low, high)),
            },
            None => fractions.push(selectivity(conjunct, columns, rows)),
        }
    }
    for (column, low, high) in ranges {
        let estimate = match column {
            Expr::Column(c) => columns.get(&c.name).unwrap_or(&NOTHING),
            _ => &NOTHING,
        };
        let not_null = 1.0 - estimate.null_fraction.unwrap_or(0.0);
        let bounded = usize::from(low.is_some()) + usize::from(high.is_some());
        let share = between(
            column,
            estimate,
            low.as_ref().map(|(v, _)| v),
            low.as_ref().is_some_and(|(_, included)| *included),
            high.as_ref().map(|(v, _)| v),
            high.as_ref().is_some_and(|(_, included)| *included),
        )
        .unwrap_or(RANGE.powi(bounded as i32));
        fractions.push((share * not_null).clamp(0.0, 1.0));
    }
    fractions.sort_by(f64::total_cmp);
    let mut kept = 1.0;
    let mut exponent = 1.0;
    for fraction in fractions {
        kept *= fraction.powf(exponent);
        exponent /= 2.0;
    }
    kept
}

/// One end of a range: the value and whether it is included.
type Bound = Option<(ScalarValue, bool)>;

/// `column op value` as a range of the column (low, high), for `<`, `<=`,
/// `>`, `>=` between a plain column and a literal of the column's type.
fn range_bound(expr: &Expr) -> Option<(&Expr, Bound, Bound)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (c @ Expr::Column(_), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), c @ Expr::Column(_)) => (c, op.swap()?, v),
        _ => return None,
    };
    if value.is_null() {
        return None;
    }
    let value = value.clone();
    match op {
        Operator::Gt => Some((column, Some((value, false)), None)),
        Operator::GtEq => Some((column, Some((value, true)), None)),
        Operator::Lt => Some((column, None, Some((value, false)))),
        Operator::LtEq => Some((column, None, Some((value, true)))),
        _ => None,
    }
}

/// Keeps the tighter of two bounds (the larger low, the smaller high);
/// values that do not compare keep the first.
fn tighten(kept: &mut Bound, other: Bound, low: bool) {
    let Some((value, included)) = other else {
        return;
    };
    let replace = match kept {
        None => true,
        Some((current, current_included)) => match value.partial_cmp(current) {
            Some(std::cmp::Ordering::Greater) => low,
            Some(std::cmp::Ordering::Less) => !low,
            Some(std::cmp::Ordering::Equal) => *current_included && !included,
            None => false,
        },
    };
    if replace {
        *kept = Some((value, included));
    }
}

fn split_and(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = split_and(left);
            all.extend(split_and(right));
            all
        }
        other => vec![other],
    }
}

/// Kept by an equality without statistics.
const EQUAL: f64 = 0.1;
/// Kept by a range without statistics.
const RANGE: f64 = 1.0 / 3.0;
/// Kept by `IS NULL` without statistics.
const NULLS: f64 = 0.05;
/// Kept by a predicate of another kind.
const OTHER: f64 = 0.2;

/// The fraction of a table's `rows` rows that `expr` keeps, from the
/// column estimates by name (see the module docs).
pub fn selectivity(expr: &Expr, columns: &HashMap<String, ColumnEstimate>, rows: u64) -> f64 {
    let column = |e: &Expr| -> Option<&ColumnEstimate> {
        match strip_casts(e) {
            Expr::Column(c) => Some(columns.get(&c.name).unwrap_or(&NOTHING)),
            _ => None,
        }
    };
    let not_null = |c: &ColumnEstimate| 1.0 - c.null_fraction.unwrap_or(0.0);
    let fraction = match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => conjunction_selectivity([expr].into_iter(), columns, rows),
            Operator::Or => {
                let (a, b) = (
                    selectivity(left, columns, rows),
                    selectivity(right, columns, rows),
                );
                a + b - a * b
            }
            _ => match (column(left), literal(right), column(right), literal(left)) {
                (Some(c), Some(v), ..) => compare(left, c, *op, v, rows) * not_null(c),
                (_, _, Some(c), Some(v)) => match op.swap() {
                    Some(op) => compare(right, c, op, v, rows) * not_null(c),
                    None => OTHER,
                },
                _ => OTHER,
            },
        },
        // A boolean column as a condition: `c = true`.
        Expr::Column(_) => column(expr).map_or(OTHER, |c| {
            equal(expr, c, &ScalarValue::Boolean(Some(true)), rows) * not_null(c)
        }),
        Expr::Not(inner) => 1.0 - selectivity(inner, columns, rows),
        Expr::IsNull(inner) => column(inner).map_or(OTHER, |c| c.null_fraction.unwrap_or(NULLS)),
        Expr::IsNotNull(inner) => {
            column(inner).map_or(OTHER, |c| 1.0 - c.null_fraction.unwrap_or(NULLS))
        }
        Expr::InList(list) => match column(&list.expr) {
            Some(c) => {
                let values: Vec<&ScalarValue> = list.list.iter().filter_map(literal).collect();
                let each = |v: &ScalarValue| equal(&list.expr, c, v, rows);
                let inside = if values.len() == list.list.len() {
                    values.iter().map(|v| each(v)).sum::<f64>()
                } else {
                    list.list.len() as f64 * c.distinct.map_or(EQUAL, |d| 1.0 / d.max(1) as f64)
                };
                let inside = inside.min(1.0) * not_null(c);
                if list.negated {
                    not_null(c) - inside
                } else {
                    inside
                }
            }
            None => OTHER,
        },
        Expr::Between(Between {
            expr: inner,
            negated,
            low,
            high,
        }) => match (column(inner), literal(low), literal(high)) {
            (Some(c), Some(low), Some(high)) => {
                let inside = between(inner, c, Some(low), true, Some(high), true)
                    .unwrap_or(RANGE * RANGE)
                    * not_null(c);
                if *negated {
                    not_null(c) - inside
                } else {
                    inside
                }
            }
            _ => OTHER,
        },
        _ => OTHER,
    };
    fraction.clamp(0.0, 1.0)
}

static NOTHING: ColumnEstimate = ColumnEstimate {
    distinct: None,
    null_fraction: None,
    min: None,
    max: None,
    index: None,
};

/// The fraction of non-NULL values of column `c` (read by `expr`) that
/// `c op v` keeps.
fn compare(expr: &Expr, c: &ColumnEstimate, op: Operator, v: &ScalarValue, rows: u64) -> f64 {
    match op {
        Operator::Eq | Operator::IsNotDistinctFrom => equal(expr, c, v, rows),
        Operator::NotEq | Operator::IsDistinctFrom => 1.0 - equal(expr, c, v, rows),
        Operator::Lt => between(expr, c, None, false, Some(v), false).unwrap_or(RANGE),
        Operator::LtEq => between(expr, c, None, false, Some(v), true).unwrap_or(RANGE),
        Operator::Gt => between(expr, c, Some(v), false, None, false).unwrap_or(RANGE),
        Operator::GtEq => between(expr, c, Some(v), true, None, false).unwrap_or(RANGE),
        _ => OTHER,
    }
}

/// The fraction of non-NULL values equal to `v`.
fn equal(expr: &Expr, c: &ColumnEstimate, v: &ScalarValue, rows: u64) -> f64 {
    if v.is_null() {
        return 0.0;
    }
    if let (Some(min), Some(max), Expr::Column(_)) = (&c.min, &c.max, expr)
        && v.data_type() == min.data_type()
        && (v < min || v > max)
    {
        // Outside the bounds the statistics saw: rows written since may
        // still match, so not none at all.
        return 1.0 / rows.max(1) as f64;
    }
    c.distinct.map_or(EQUAL, |d| 1.0 / d.max(1) as f64)
}

/// The share of `[min, max]` between `low` and `high` (either open), as if
/// the values were spread evenly; `None` without usable bounds.
fn between(
    expr: &Expr,
    c: &ColumnEstimate,
    low: Option<&ScalarValue>,
    low_included: bool,
    high: Option<&ScalarValue>,
    high_included: bool,
) -> Option<f64> {
    // A cast changes the values compared (`CAST(x AS INT) < 3`).
    let Expr::Column(_) = expr else {
        return None;
    };
    let (min, max) = (c.min.as_ref()?, c.max.as_ref()?);
    let number = |v: &ScalarValue| -> Option<f64> {
        if v.data_type() != min.data_type() {
            return None;
        }
        as_number(v)
    };
    let (min_n, max_n) = (as_number(min)?, as_number(max)?);
    let low_n = match low {
        Some(v) => number(v)?,
        None => min_n,
    };
    let high_n = match high {
        Some(v) => number(v)?,
        None => max_n,
    };
    let width = max_n - min_n;
    if high_n < low_n || high_n < min_n || low_n > max_n {
        return Some(1.0 / 1000.0);
    }
    if width <= 0.0 {
        return Some(1.0);
    }
    let mut share = (high_n.min(max_n) - low_n.max(min_n)) / width;
    // One value's share for an included bound (`x <= max` keeps all).
    let one = c.distinct.map_or(0.0, |d| 1.0 / d.max(1) as f64);
    if low.is_some() && low_included || high.is_some() && high_included {
        share += one;
    }
    Some(share.clamp(1.0 / 1000.0, 1.0))
}

/// A value as a number on one scale per type (days, time units, the
/// decimal's value), for the share of a range.
fn as_number(v: &ScalarValue) -> Option<f64> {
    Some(match v {
        ScalarValue::Int8(Some(n)) => f64::from(*n),
        ScalarValue::Int16(Some(n)) => f64::from(*n),
        ScalarValue::Int32(Some(n)) => f64::from(*n),
        ScalarValue::Int64(Some(n)) => *n as f64,
        ScalarValue::UInt8(Some(n)) => f64::from(*n),
        ScalarValue::UInt16(Some(n)) => f64::from(*n),
        ScalarValue::UInt32(Some(n)) => f64::from(*n),
        ScalarValue::UInt64(Some(n)) => *n as f64,
        ScalarValue::Float16(Some(n)) => f64::from(*n),
        ScalarValue::Float32(Some(n)) => f64::from(*n),
        ScalarValue::Float64(Some(n)) => *n,
        ScalarValue::Decimal128(Some(n), _, scale) => *n as f64 / 10f64.powi(i32::from(*scale)),
        ScalarValue::Decimal256(Some(n), _, scale) => {
            n.to_string().parse::<f64>().ok()? / 10f64.powi(i32::from(*scale))
        }
        ScalarValue::Date32(Some(n)) => f64::from(*n),
        ScalarValue::Date64(Some(n)) => *n as f64,
        ScalarValue::TimestampSecond(Some(n), _)
        | ScalarValue::TimestampMillisecond(Some(n), _)
        | ScalarValue::TimestampMicrosecond(Some(n), _)
        | ScalarValue::TimestampNanosecond(Some(n), _) => *n as f64,
        _ => return None,
    })
    .filter(|n| n.is_finite())
}

fn strip_casts(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(cast) => strip_casts(&cast.expr),
        Expr::TryCast(cast) => strip_casts(&cast.expr),
        other => other,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match strip_casts(expr) {
        Expr::Literal(value, _) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ids() -> HashMap<String, ColumnEstimate> {
        // 10,000 rows, `id` 1..=10,000, `flag` half NULL with 2 values.
        HashMap::from([
            (
                "id".to_string(),
                ColumnEstimate {
                    distinct: Some(10_000),
                    null_fraction: Some(0.0),
                    min: Some(ScalarValue::Int32(Some(1))),
                    max: Some(ScalarValue::Int32(Some(10_000))),
                    index: None,
                },
            ),
            (
                "flag".to_string(),
                ColumnEstimate {
                    distinct: Some(2),
                    null_fraction: Some(0.5),
                    ..Default::default()
                },
            ),
        ])
    }

    fn rows(filters: &[Expr]) -> usize {
        filtered_rows(10_000, filters, &ids(), None)
    }

    #[test]
    fn ranges_keep_their_share_of_the_bounds() {
        let near = |got: usize, want: usize| got.abs_diff(want) <= want / 20 + 1;
        assert!(near(rows(&[col("id").lt_eq(lit(1000))]), 1000));
        assert!(near(rows(&[col("id").gt(lit(9000))]), 1000));
        assert!(near(rows(&[col("id").between(lit(2001), lit(3000))]), 1000));
        assert!(near(rows(&[col("id").lt(lit(-5))]), 10));
        // Two ends of one range.
        assert!(near(
            rows(&[col("id").gt_eq(lit(2001)), col("id").lt_eq(lit(3000))]),
            1000
        ));
        assert!(near(
            rows(&[
                col("id").gt(lit(0)),
                col("id").gt(lit(5000)),
                col("id").lt(lit(5500))
            ]),
            500
        ));
    }

    #[test]
    fn equality_uses_distinct_values_and_nulls() {
        assert_eq!(rows(&[col("id").eq(lit(7))]), 1);
        // Outside the bounds: at least one row, not a tenth.
        assert_eq!(rows(&[col("id").eq(lit(20_000))]), 1);
        assert_eq!(rows(&[col("flag").eq(lit(true))]), 2500);
        assert_eq!(rows(&[col("flag").is_null()]), 5000);
        assert_eq!(rows(&[col("flag").is_not_null()]), 5000);
        assert_eq!(rows(&[col("id").in_list(vec![lit(1), lit(2)], false)]), 2);
    }

    #[test]
    fn unknown_columns_and_predicates_get_defaults() {
        assert_eq!(rows(&[col("other").eq(lit(1))]), 1000);
        assert_eq!(rows(&[col("other").like(lit("a%"))]), 2000);
        // The second conjunct counts less than the first.
        let both = rows(&[col("other").eq(lit(1)), col("more").eq(lit(2))]);
        assert_eq!(both, (10_000.0 * 0.1 * 0.1f64.sqrt()).round() as usize);
        assert_eq!(filtered_rows(10_000, &[], &ids(), Some(3)), 3);
    }

    #[test]
    fn text_values_bound_only_ordered_types() {
        let e = ColumnEstimate::default()
            .with_bounds_from_text(["3", "12", "x", "-4"], &DataType::Int64);
        assert_eq!(e.min, Some(ScalarValue::Int64(Some(-4))));
        assert_eq!(e.max, Some(ScalarValue::Int64(Some(12))));
        let e = ColumnEstimate::default().with_bounds_from_text(["b", "a"], &DataType::Utf8);
        assert_eq!(e.min, None);
        // Found by an outsider: `max()` a blob left `max` = `min`.
        let e = ColumnEstimate::default().with_bounds(Some("1"), Some("zzz"), &DataType::Int64);
        assert_eq!((e.min, e.max), (None, None));
        let e = ColumnEstimate::default().with_bounds(Some("1"), None, &DataType::Int64);
        assert_eq!((e.min, e.max), (None, None));
        let e = ColumnEstimate::default().with_bounds(Some("1"), Some("9"), &DataType::Int64);
        assert_eq!(
            (e.min, e.max),
            (
                Some(ScalarValue::Int64(Some(1))),
                Some(ScalarValue::Int64(Some(9)))
            )
        );
        let e = ColumnEstimate::default()
            .with_bounds_from_text(["NaN", "1.5", "Infinity", "-Infinity"], &DataType::Float64);
        assert_eq!(e.min, Some(ScalarValue::Float64(Some(1.5))));
        assert_eq!(e.max, Some(ScalarValue::Float64(Some(1.5))));
    }
}
