//! Parallel scans of large tables: one table read as several disjoint
//! ranges of rows at once, each on a connection of its own.
//!
//! A remote scan of a large table was one query on one connection: the
//! database read the table on one core and the rows crossed, and were
//! decoded, one stream at a time. A table whose database keeps a column that
//! orders its rows cheaply is read as `n` ranges of that column instead,
//! declared to DataFusion as `n` partitions:
//!
//! - PostgreSQL: the pages of the table (`ctid >= '(p,0)' AND ctid <
//!   '(q,0)'`, a TID range scan since PostgreSQL 14). Every part reads in
//!   one snapshot: the first part to start exports one
//!   (`pg_export_snapshot()`) from a transaction held open on a connection of
//!   its own until every part has imported it (`SET TRANSACTION SNAPSHOT`),
//!   so a row that an update moves to another page during the scan is read
//!   exactly once, as one single query would read it.
//! - SQLite: ranges of `rowid` (tables with a rowid only).
//! - MySQL and MariaDB: ranges of an integer primary key of one column.
//!
//! The first range has no lower bound and the last no upper bound, so rows
//! outside the bounds read when the table was first looked up (new rows,
//! new pages) are still read: the ranges cover every row, and no row is in
//! two. The bounds only balance the parts.
//!
//! SQLite and MySQL have no snapshot a second connection can join: each
//! part reads in its own, taken when it starts. A row whose key an
//! update changes between the start of one part and the next can be read
//! twice or not at all, and rows written while the parts start are seen by
//! some parts only. Sources whose tables are written while they are read
//! turn this off with the option `scan_partitions = 1`.
//!
//! How many parts: a part for every [`PARTITION_ROWS`] estimated rows (the
//! source's `scan_partition_rows`), at most DataFusion's
//! `target_partitions` and the source's `scan_partitions`, and at most half the connections of the source's pool
//! (the rest are left to other queries; PostgreSQL's snapshot holds one
//! more). A scan with a limit, or estimated under two parts' rows, is one
//! query as before.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Expr, lit};

/// Fewest estimated rows per part of a parallel scan.
pub const PARTITION_ROWS: u64 = 500_000;

/// A column whose ranges split a table's rows into disjoint parts (see
/// the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct RowRanges {
    /// The column: one of the table's, or a system column when `hidden`
    /// gives its type.
    pub column: String,
    /// The type a system column is compared as; it is not among the
    /// table's columns.
    pub hidden: Option<DataType>,
    /// The lowest and highest value seen (pages for PostgreSQL).
    pub low: i64,
    pub high: i64,
    /// What the values are.
    pub values: RangeValues,
    /// The parts read in one snapshot that the database shares between
    /// connections (see [`SharedSnapshot`]).
    pub shared_snapshot: bool,
}

/// What the values of a [`RowRanges`] column are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeValues {
    /// Integers compared as they are.
    Integers,
    /// PostgreSQL page numbers, compared as the `ctid` of the page's first
    /// row (`'(p,0)'`).
    PostgresPages,
}

impl RowRanges {
    /// The bounds of `parts` ranges splitting `low..=high` evenly: `parts -
    /// 1` increasing split points; range `i` is `[split[i-1], split[i])`,
    /// the first unbounded below and the last above.
    fn splits(&self, parts: usize) -> Vec<i64> {
        let (low, high) = (i128::from(self.low), i128::from(self.high));
        let span = (high - low + 1).max(1);
        let mut splits: Vec<i64> = (1..parts as i128)
            .map(|i| (low + span * i / parts as i128) as i64)
            .collect();
        splits.dedup();
        splits
    }

    fn value(&self, v: i64, data_type: &DataType) -> ScalarValue {
        match self.values {
            RangeValues::Integers => {
                let value = ScalarValue::Int64(Some(v));
                value.cast_to(data_type).unwrap_or(value)
            }
            RangeValues::PostgresPages => ScalarValue::Utf8(Some(format!("({v},0)"))),
        }
    }

    /// The conditions of at most `parts` disjoint ranges covering every
    /// value (a `NULL` key is impossible: keys, rowids and ctids are never
    /// null), over `column` (this column in the plan the condition goes
    /// into). Fewer when the values are too few to split.
    /// `data_type` is the column's type.
    pub fn conditions(&self, column: Expr, data_type: &DataType, parts: usize) -> Vec<Expr> {
        let splits = self.splits(parts);
        let mut conditions = Vec::with_capacity(splits.len() + 1);
        let mut lower: Option<i64> = None;
        for upper in splits.iter().copied().map(Some).chain([None]) {
            let low = lower.map(|v| column.clone().gt_eq(lit(self.value(v, data_type))));
            let high = upper.map(|v| column.clone().lt(lit(self.value(v, data_type))));
            conditions.push(match (low, high) {
                (Some(l), Some(h)) => l.and(h),
                (Some(c), None) | (None, Some(c)) => c,
                (None, None) => lit(true),
            });
            lower = upper;
        }
        conditions
    }
}

/// How a source's scans are split: the `scan_partitions` option (the
/// most parts; 1 turns parallel scans off; unbounded by default, so
/// `target_partitions` and the pool decide) and `scan_partition_rows`
/// (the fewest estimated rows per part, [`PARTITION_ROWS`] by default), as
/// URL parameters or ATTACH options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanPartitioning {
    /// The most parts of one scan.
    pub max_parts: usize,
    /// The fewest estimated rows per part.
    pub part_rows: u64,
}

impl ScanPartitioning {
    /// One query per scan.
    pub const OFF: Self = Self {
        max_parts: 1,
        part_rows: PARTITION_ROWS,
    };

    /// The options of `source` (see the type's docs).
    pub fn from_options(
        source: &str,
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let option = |name: &str| {
            options.get(name).cloned().or_else(|| {
                url.split_once('?').and_then(|(_, query)| {
                    url::form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                })
            })
        };
        let positive = |name: &str| -> Result<Option<u64>> {
            match option(name) {
                None => Ok(None),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(Some(n)),
                    _ => Err(datafusion::common::DataFusionError::Configuration(format!(
                        "source '{source}': {name} must be a positive integer, got '{value}'"
                    ))),
                },
            }
        };
        Ok(Self {
            max_parts: positive("scan_partitions")?
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            part_rows: positive("scan_partition_rows")?.unwrap_or(PARTITION_ROWS),
        })
    }

    /// Whether a table of `rows` estimated rows may be split at all.
    pub fn splits(&self, rows: u64) -> bool {
        self.max_parts > 1 && rows >= self.part_rows.saturating_mul(2)
    }
}

/// How many parts a scan of `estimated_rows` rows is read in: see the
/// module docs.
pub fn part_count(
    estimated_rows: usize,
    target_partitions: usize,
    source: ScanPartitioning,
    pool_size: Option<usize>,
) -> usize {
    let by_rows =
        usize::try_from(estimated_rows as u64 / source.part_rows.max(1)).unwrap_or(usize::MAX);
    let source_limit = source.max_parts;
    let by_pool = pool_size.map_or(1, |size| size / 2);
    by_rows
        .min(target_partitions)
        .min(source_limit)
        .min(by_pool)
        .max(1)
}

/// What the parts of one scan share while it runs: a gate that keeps
/// them from taking more than their share of the source's pool, and, for a
/// database whose connections can join one snapshot (PostgreSQL), the
/// connector's own state (its snapshot and the connections in it).
///
/// A scan always gets one connection as a single query would; a part
/// beyond the first takes another only while fewer than half the pool's
/// connections are in use, and otherwise waits for a part of its own scan
/// to finish. So scans in parts never hold a pool that other scans of the
/// same query wait for (a UNION of eight tables in four parts each on a
/// pool of eight waited for its connections until `pool_timeout`).
#[derive(Debug)]
pub struct ScanGroup {
    parts: usize,
    /// Parts running now (admitted by [`admit`](Self::admit)).
    active: parking_lot::Mutex<usize>,
    finished: tokio::sync::Notify,
    /// The connector's state (see [`state`](Self::state)).
    state: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl ScanGroup {
    /// The group of a scan in `parts` parts.
    pub fn new(parts: usize) -> Arc<Self> {
        Arc::new(Self {
            parts,
            active: parking_lot::Mutex::new(0),
            finished: tokio::sync::Notify::new(),
            state: std::sync::OnceLock::new(),
        })
    }

    /// The scan's number of parts.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The connector's state for this scan, made by `init` on first use.
    pub fn state<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<Arc<T>> {
        Arc::clone(self.state.get_or_init(|| Arc::new(init())))
            .downcast::<T>()
            .ok()
    }

    /// Waits until a part may run: at once when no part of the scan runs,
    /// or when `spare()` (fewer than half the pool's connections in use);
    /// else when a part of the scan finishes. The part runs while the
    /// returned ticket lives.
    pub async fn admit(self: &Arc<Self>, spare: impl Fn() -> bool) -> PartTicket {
        loop {
            let finished = self.finished.notified();
            {
                let mut active = self.active.lock();
                if *active == 0 || spare() {
                    *active += 1;
                    return PartTicket(Arc::clone(self));
                }
            }
            finished.await;
        }
    }

    /// Wakes one part waiting for a part of this scan to finish.
    pub fn part_finished(&self) {
        self.finished.notify_one();
    }

    /// Waits for [`part_finished`](Self::part_finished).
    pub async fn wait_for_a_part(&self) {
        self.finished.notified().await
    }
}

/// A running part (see [`ScanGroup::admit`]); dropping it lets a waiting
/// part of the same scan run.
#[derive(Debug)]
pub struct PartTicket(Arc<ScanGroup>);

impl Drop for PartTicket {
    fn drop(&mut self) {
        *self.0.active.lock() -= 1;
        self.0.part_finished();
    }
}

/// Whether a pool has connections to spare for another part: fewer than
/// half its connections are lent out or waited for.
pub fn pool_has_spare(status: Option<super::PoolStatus>) -> bool {
    status.is_some_and(|s| s.in_use + s.waiting < s.max_size / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(low: i64, high: i64) -> RowRanges {
        RowRanges {
            column: "k".into(),
            hidden: None,
            low,
            high,
            values: RangeValues::Integers,
            shared_snapshot: false,
        }
    }

    #[test]
    fn splits_cover_every_value_once() {
        for (low, high, parts) in [
            (1, 100, 4),
            (0, 0, 4),
            (5, 7, 8),
            (i64::MIN, i64::MAX, 3),
            (-10, 10, 2),
        ] {
            let r = ranges(low, high);
            let splits = r.splits(parts);
            assert!(splits.len() < parts);
            assert!(splits.windows(2).all(|w| w[0] < w[1]), "{splits:?}");
            assert_eq!(
                r.conditions(datafusion::logical_expr::col("k"), &DataType::Int64, parts)
                    .len(),
                splits.len() + 1
            );
        }
        assert_eq!(ranges(1, 100).splits(4), vec![26, 51, 76]);
    }

    #[test]
    fn part_counts() {
        let limit = |max_parts| ScanPartitioning {
            max_parts,
            part_rows: PARTITION_ROWS,
        };
        assert_eq!(part_count(10_000, 8, limit(64), Some(10)), 1);
        assert_eq!(part_count(3_000_000, 8, limit(64), Some(10)), 5);
        assert_eq!(part_count(3_000_000, 8, limit(64), Some(8)), 4);
        assert_eq!(part_count(3_000_000, 2, limit(64), Some(10)), 2);
        assert_eq!(part_count(3_000_000, 8, limit(1), Some(10)), 1);
        assert_eq!(part_count(3_000_000, 8, limit(64), Some(3)), 1);
        assert_eq!(part_count(3_000_000, 8, limit(64), None), 1);
        let small = ScanPartitioning {
            max_parts: usize::MAX,
            part_rows: 1000,
        };
        assert_eq!(part_count(3_000, 8, small, Some(8)), 3);
        assert!(small.splits(2_000) && !small.splits(1_999));
        assert!(!ScanPartitioning::OFF.splits(u64::MAX));
    }
}
