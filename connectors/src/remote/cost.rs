//! What work costs a database, as the planner weighs two of its choices:
//! whether a join's keys are worth sending to a remote scan as an `IN`
//! list, and whether a join of two tables of one database is worth running
//! there.
//!
//! # The model
//!
//! Each database has [`Costs`], in microseconds per unit of work, measured
//! on the benchmark machine (2 cores; PostgreSQL 15, MariaDB 10.11 with its
//! default 128 MiB buffer pool, SQLite in process). Only their ratios
//! matter. A plan's cost is the sum of:
//!
//! - **queries**: every remote query costs [`Costs::query`] (a round trip,
//!   parsing and planning);
//! - **rows moved**: every row a remote query returns costs [`Costs::row`]
//!   (sent, received, decoded);
//! - **keys sent**: every key of an `IN` list costs [`Costs::key`]: written
//!   into the SQL and checked here (about 4 us a key: TPC-H Q14's 63 K part
//!   keys sent to SQLite cost 124 ms more than reading the 137 K rows they
//!   removed), parsed there, and looked up where an index starts with the
//!   column;
//! - **rows reached through an index**: every row a database reaches
//!   through a secondary index costs [`Costs::lookup`], where its storage
//!   makes that a second lookup in the table (InnoDB reaches a row through
//!   the primary key stored in the secondary index: 13 to 30 us a row once
//!   the table outgrows the buffer pool, against 0.4 us a row scanned);
//! - **joins by nested loops**: a database without hash joins (MariaDB,
//!   MySQL) joins by looking up each row of one side in the other through
//!   an index, so each joined row costs [`Costs::lookup`] too.
//!
//! Rows built into hash tables are not counted: every plan builds the same
//! local hash tables for the same rows, give or take the keys a remote
//! query removes, which the rows moved count already.
//!
//! # A join's keys as an `IN` list ([`key_list_pays`])
//!
//! A hash join hands its build side's keys to the remote scans on its probe
//! side (the `runtime_filter` module). For `k` keys of column `c`, a scan
//! expected to return `R` rows of a table of `N` rows, and `c`'s distinct
//! values `D` (when the database keeps them; otherwise the keys are taken
//! as unique in the scan, `D = R`), the list keeps `f = min(1, k / D)` of
//! the rows, and
//!
//! ```text
//! without the list:  R · row
//! with the list:     k · key  +  f · N · lookup (c leads a secondary index)  +  f · R · row
//! ```
//!
//! The list is sent when it costs less. In MariaDB, 40 K keys of `orders`'
//! primary key take 0.3 to 0.8 s and remove 97% of the two years of orders a TPC-H
//! Q8 scan returns (sent); 30 K keys of `o_custkey`, a secondary index,
//! reach 300 K rows one lookup at a time (5.6 s) to save sending 580 K rows
//! (left out: the bounds go alone). In PostgreSQL, which hashes long lists
//! and reads rows through bitmaps, a list pays when it removes about twice
//! as many rows as it has keys.
//!
//! # A join of one database's tables ([`remote_join_pays`])
//!
//! Two inputs of `L` and `R` rows in one database whose join returns `J`
//! rows: joined there, one query returns `J` rows; joined here, two
//! queries return `L + R`. Where the database joins by hashing
//! (PostgreSQL) that is the whole difference, and the join is sent
//! whenever both sides are in the database. Where it joins by nested
//! loops, each joined row also costs a lookup:
//!
//! ```text
//! joined there:  query + J · (lookup + row)        joined here:  2 · query + (L + R) · row
//! ```
//!
//! so MariaDB joins two years of `orders` (457 K rows) to `customer`
//! (150 K) here (it took 20 s there, looking up every order of each
//! customer, against about 1.5 s to send both), and joins a customer found
//! by its key to its orders there. Without an estimate of either side the
//! join is sent, as it always was.

/// What units of work cost a database, in microseconds (see the module
/// docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Each remote query: a round trip, parsing and planning.
    pub query: f64,
    /// Each row a remote query returns: sent, received and decoded.
    pub row: f64,
    /// Each key of an `IN` list: written and checked here, parsed there,
    /// and looked up where an index starts with the column.
    pub key: f64,
    /// Each row reached through a secondary index, or through a nested
    /// loop join's lookups.
    pub lookup: f64,
    /// Whether the database joins by nested loops with index lookups (no
    /// hash joins): then a join's every joined row costs a lookup.
    pub nested_loop_joins: bool,
}

impl Default for Costs {
    /// PostgreSQL's: 300 K rows/s of `lineitem` over the wire, a 150 K-key
    /// list parsed and planned in about 150 ms (1 us a key, 5 with
    /// writing it), rows reached through bitmaps of index entries in page
    /// order, hash joins.
    fn default() -> Self {
        Self {
            query: 500.0,
            row: 3.0,
            key: 5.0,
            lookup: 0.0,
            nested_loop_joins: false,
        }
    }
}

/// How a column starts an index of its table, as far as the database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The first column of the primary key (InnoDB's clustered index: a
    /// key's rows are found in one lookup).
    Primary,
    /// The first column of another index: each row is a second lookup.
    Secondary,
}

/// What a key list is weighed against: the scan it would filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyTarget {
    /// Rows the scan returns without the list (after its own filters).
    pub rows: Option<usize>,
    /// Rows of the whole table.
    pub table_rows: Option<usize>,
    /// Distinct values of the key's column.
    pub distinct: Option<u64>,
    /// The index the key's column starts, if known.
    pub index: Option<Index>,
}

/// Whether sending `keys` distinct keys as an `IN` list to the scan
/// `target` costs the database and the wire less than the rows they remove
/// (see the module docs). Without a row estimate the list is sent: nothing
/// says it does not pay.
pub fn key_list_pays(costs: &Costs, keys: usize, target: &KeyTarget) -> bool {
    let Some(rows) = target.rows.or(target.table_rows) else {
        return true;
    };
    let keys = keys as f64;
    let rows = rows as f64;
    let distinct = target.distinct.map_or(rows, |d| d as f64).max(1.0);
    let kept = (keys / distinct).min(1.0);
    let table_rows = target.table_rows.map_or(rows, |n| n as f64).max(rows);
    let lookups = match target.index {
        Some(Index::Secondary) => kept * table_rows * costs.lookup,
        _ => 0.0,
    };
    let with = keys * costs.key + lookups + kept * rows * costs.row;
    let without = rows * costs.row;
    with < without
}

/// Whether joining inputs of `left` and `right` rows, whose join returns
/// `joined` rows, costs less in their database than here (see the module
/// docs). Unknown sizes: yes.
pub fn remote_join_pays(
    costs: &Costs,
    left: Option<usize>,
    right: Option<usize>,
    joined: Option<usize>,
) -> bool {
    if !costs.nested_loop_joins {
        return true;
    }
    let (Some(left), Some(right), Some(joined)) = (left, right, joined) else {
        return true;
    };
    let there = costs.query + joined as f64 * (costs.lookup + costs.row);
    let here = 2.0 * costs.query + (left as f64 + right as f64) * costs.row;
    there <= here
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB's, as the MySQL connector declares them.
    fn nested() -> Costs {
        use crate::remote::PushdownPolicy;
        crate::mysql::MysqlPushdown.costs()
    }

    #[test]
    fn primary_key_lists_pay_where_secondary_index_lists_do_not() {
        // TPC-H Q8 over the split apart: 40 K order keys for two years of
        // orders.
        let orders = |index| KeyTarget {
            rows: Some(457_000),
            table_rows: Some(1_500_000),
            distinct: Some(1_500_000),
            index,
        };
        assert!(key_list_pays(
            &nested(),
            40_000,
            &orders(Some(Index::Primary))
        ));
        // Q3: 30 K customer keys for `o_custkey` (100 K distinct values).
        let by_customer = KeyTarget {
            rows: Some(727_000),
            table_rows: Some(1_500_000),
            distinct: Some(100_000),
            index: Some(Index::Secondary),
        };
        assert!(!key_list_pays(&nested(), 30_000, &by_customer));
        // The same keys on a column no index starts: a scan filters them.
        let unindexed = KeyTarget {
            index: None,
            ..by_customer
        };
        assert!(key_list_pays(&nested(), 30_000, &unindexed));
        // A few keys through the secondary index: cheap.
        assert!(key_list_pays(&nested(), 100, &by_customer));
    }

    #[test]
    fn lists_that_remove_little_are_left_out() {
        let postgres = Costs::default();
        // Every distinct value of the column: nothing removed.
        let target = KeyTarget {
            rows: Some(1_000_000),
            table_rows: Some(1_000_000),
            distinct: Some(100_000),
            index: None,
        };
        assert!(!key_list_pays(&postgres, 100_000, &target));
        assert!(key_list_pays(&postgres, 10_000, &target));
        // Keys taken as unique without a distinct count: more keys than
        // rows remove nothing.
        let small = KeyTarget {
            rows: Some(10_000),
            ..KeyTarget::default()
        };
        assert!(!key_list_pays(&postgres, 20_000, &small));
        assert!(key_list_pays(&postgres, 1_000, &small));
        // No estimate: sent.
        assert!(key_list_pays(&postgres, 200_000, &KeyTarget::default()));
    }

    #[test]
    fn nested_loop_databases_join_there_only_what_the_join_removes() {
        // TPC-H Q8: two years of orders joined to every customer.
        assert!(!remote_join_pays(
            &nested(),
            Some(457_000),
            Some(150_000),
            Some(457_000)
        ));
        // One customer's orders.
        assert!(remote_join_pays(
            &nested(),
            Some(1_500_000),
            Some(1),
            Some(15)
        ));
        // Small tables: one query rather than two.
        assert!(remote_join_pays(&nested(), Some(5), Some(6), Some(6)));
        assert!(!remote_join_pays(
            &nested(),
            Some(5_000),
            Some(6_000),
            Some(6_000)
        ));
        // Unknown sizes, and hash-joining databases: there.
        assert!(remote_join_pays(&nested(), None, Some(1), Some(1)));
        assert!(remote_join_pays(
            &Costs::default(),
            Some(457_000),
            Some(150_000),
            Some(457_000)
        ));
    }
}
