//! SQLite through `ATTACH 'sqlite:path'`: each test makes its own database
//! file in a temporary directory.

use moltres::Moltres;

use crate::common::{self, query};

/// A database file made by `setup`, attached as `lite`.
struct Fixture {
    dir: tempfile::TempDir,
    db: Moltres,
}

impl Fixture {
    async fn new(setup: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.db");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(setup).expect("setup SQL");
        drop(connection);
        let db = common::session().await;
        db.attach(&format!("sqlite:{}", path.display()), "lite", false)
            .await
            .expect("attach SQLite");
        Fixture { dir, db }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("test.db")
    }

    async fn rows(&self, sql: &str) -> Vec<String> {
        query(&self.db, sql)
            .await
            .into_iter()
            .map(|r| r.join("|"))
            .collect()
    }

    async fn error(&self, sql: &str) -> String {
        common::error(&self.db, sql).await
    }

    async fn explain(&self, sql: &str) -> String {
        self.rows(&format!("EXPLAIN {sql}")).await.join("\n")
    }

    /// Copies `table` into a DataFusion memory table `local`.
    async fn copy_locally(&self, table: &str, local: &str) {
        self.db
            .sql(&format!(
                "CREATE TABLE {local} AS SELECT * FROM lite.{table}"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_types_follow_affinity_rules() {
    let f = Fixture::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, i BIGINT, u UNSIGNED BIG INT, r REAL, d DOUBLE,
                         n NUMERIC, dec DECIMAL(10,2), v VARCHAR(10), c TEXT COLLATE NOCASE,
                         b BLOB, flag BOOLEAN, day DATE, at DATETIME, untyped);
         INSERT INTO t VALUES
           (1, -9223372036854775808, 0, -1.5, 1e308, 12, 3.25, 'héllo', 'Abc', x'00ff', 1,
            '2024-02-29', '2024-02-29 12:34:56.789', 42),
           (2, 9223372036854775807, 1, 0.0, -0.0, 1.5, 0, '', 'a''b', x'', 0,
            '0001-01-01', '1970-01-01T00:00:00Z', 'text'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let described = f.rows("DESCRIBE lite.t").await;
    let types: Vec<&str> = described
        .iter()
        .map(|r| r.split('|').nth(1).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Int64",
            "Int64",
            "Int64",
            "Float64",
            "Float64",
            "Float64",
            "Float64",
            "Utf8",
            "Utf8",
            "Binary",
            "Boolean",
            "Date32",
            "Timestamp(µs)",
            "Utf8"
        ],
        "{described:?}"
    );
    assert_eq!(
        f.rows("SELECT * FROM lite.t ORDER BY id").await,
        [
            "1|-9223372036854775808|0|-1.5|1e308|12.0|3.25|héllo|Abc|00ff|true|2024-02-29|2024-02-29T12:34:56.789|42",
            "2|9223372036854775807|1|0.0|0.0|1.5|0.0||a'b||false|0001-01-01|1970-01-01T00:00:00|text",
            "3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
        ]
    );
    // SQLite keeps -0.0 as 0 (it stores integral reals as integers).
    // Zero rows keep the schema.
    let empty =
        f.db.sql("SELECT * FROM lite.t WHERE id > 99")
            .await
            .unwrap();
    let batches = empty.collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let empty =
        f.db.sql("SELECT * FROM lite.t WHERE id > 99")
            .await
            .unwrap();
    assert_eq!(empty.schema().fields().len(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_does_not_fit_names_table_column_and_rowid() {
    let f = Fixture::new(
        "CREATE TABLE m (id INTEGER PRIMARY KEY, qty INTEGER, day DATE);
         INSERT INTO m VALUES (1, 5, '2024-01-01'), (2, 'many', '2024-01-02'), (3, 2.5, 'soon');",
    )
    .await;
    let err = f.error("SELECT qty FROM lite.m").await;
    assert!(
        err.contains("source 'lite'")
            && err.contains("column 'qty'")
            && err.contains("main.m")
            && err.contains("rowid 2")
            && err.contains("'many'"),
        "{err}"
    );
    let err = f.error("SELECT day FROM lite.m").await;
    assert!(
        err.contains("column 'day'") && err.contains("'soon'"),
        "{err}"
    );
    // Rows that fit read fine.
    assert_eq!(f.rows("SELECT qty FROM lite.m WHERE id = 1").await, ["5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_and_missing_tables() {
    let f = Fixture::new(
        "CREATE TABLE \"Order Items\" (\"Key\" INTEGER, \"select\" TEXT);
         INSERT INTO \"Order Items\" VALUES (1, 'one'), (2, 'two');
         CREATE TABLE orders (id INTEGER, total REAL);
         INSERT INTO orders VALUES (1, 9.5);
         CREATE VIEW big_orders AS SELECT id FROM orders WHERE total > 5;",
    )
    .await;
    assert_eq!(
        f.rows("SELECT \"Key\", \"select\" FROM lite.\"Order Items\" WHERE \"Key\" = 2")
            .await,
        ["2|two"]
    );
    assert_eq!(f.rows("SELECT id FROM lite.main.orders").await, ["1"]);
    assert_eq!(f.rows("SELECT id FROM lite.big_orders").await, ["1"]);
    let tables = f.rows("SHOW TABLES").await.join("\n");
    assert!(tables.contains("lite|main|orders"), "{tables}");
    let err = f.error("SELECT * FROM lite.order").await;
    assert!(err.contains("orders"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_read_only_and_bad_files() {
    let f = Fixture::new("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);").await;
    assert_eq!(
        f.rows("SELECT * FROM sqlite_query('lite', 'SELECT x, x * 2 AS y FROM t WHERE x > 1 ORDER BY x')")
            .await,
        ["2|4", "3|6"]
    );
    let source = f.db.source("lite").unwrap();
    assert_eq!(
        source
            .execute("UPDATE t SET x = x + 10 WHERE x > 1")
            .await
            .unwrap(),
        2
    );
    let batches = source
        .query("SELECT sum(x) AS s FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(common::rows(&batches), [["26"]]);
    // The remote error names the source and carries the SQL.
    let err = source
        .query("SELECT nope FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source 'lite'")
            && err.contains("no such column")
            && err.contains("SELECT nope"),
        "{err}"
    );

    // mode=ro: reads work; the source is read-only and SQLite refuses writes.
    let db = common::session().await;
    db.attach(
        &format!("sqlite:{}?mode=ro", f.path().display()),
        "ro",
        false,
    )
    .await
    .unwrap();
    assert_eq!(query(&db, "SELECT count(*) FROM ro.t").await, [["3"]]);
    let err = db
        .source("ro")
        .unwrap()
        .execute("DELETE FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source 'ro'") && err.contains("READ_ONLY"),
        "{err}"
    );
    let sources = query(&db, "SHOW SOURCES").await;
    assert!(
        sources.iter().any(|s| s[0] == "ro" && s[3] == "true"),
        "{sources:?}"
    );
    // SQLite itself refuses writes too (mode=ro), even when asked natively.
    let err = match db
        .sql("SELECT * FROM sqlite_query('ro', 'DELETE FROM t RETURNING x')")
        .await
    {
        Ok(df) => df.collect().await.map(|_| ()).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("source 'ro'") && err.contains("readonly"),
        "{err}"
    );

    // A missing file is not created (mode=rw); a file that is not a database is named.
    let missing = f.dir.path().join("missing.db");
    let err = db
        .attach(&format!("sqlite:{}", missing.display()), "gone", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone") && err.contains("missing.db"), "{err}");
    assert!(!missing.exists());
    let junk = f.dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    let err = db
        .attach(&format!("sqlite:{}", junk.display()), "junk", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk") && err.contains("not a database"),
        "{err}"
    );

    // :memory: is one database for the whole pool.
    db.attach("sqlite::memory:", "mem", false).await.unwrap();
    let mem = db.source("mem").unwrap();
    mem.execute("CREATE TABLE k (v TEXT); INSERT INTO k VALUES ('a'), ('b');")
        .await
        .unwrap();
    assert_eq!(query(&db, "SELECT count(*) FROM mem.k").await, [["2"]]);
}

/// An endless query stops when the reader is satisfied: the statement is
/// interrupted, never left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_stops_an_endless_query() {
    let f = Fixture::new("CREATE TABLE t (x INTEGER);").await;
    let started = std::time::Instant::now();
    let rows = f
        .rows(
            "SELECT x FROM sqlite_query('lite', \
             'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c') LIMIT 3",
        )
        .await;
    assert_eq!(rows.len(), 3);
    // An aggregate over it never returns a row: dropping the stream must interrupt it.
    let db = f.db.clone();
    let endless = tokio::spawn(async move {
        db.sql(
            "SELECT * FROM sqlite_query('lite', \
             'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c')",
        )
        .await
        .unwrap()
        .collect()
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    endless.abort();
    let _ = endless.await;
    // The pool has a connection for the next query (the interrupted one came back).
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        f.rows("SELECT count(*) FROM lite.t"),
    )
    .await
    .expect("the pool did not get its connection back");
    assert_eq!(again, ["0"]);
    assert!(started.elapsed().as_secs() < 30);
}

/// Each predicate evaluated by SQLite and by DataFusion over a local copy:
/// same rows; the ones SQLite computes differently are pinned as local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_pushed_predicates_match_local_evaluation() {
    let f = Fixture::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, s TEXT, nc TEXT COLLATE NOCASE,
                         rt TEXT COLLATE RTRIM, u, r REAL, flag BOOLEAN, d DATE);
         INSERT INTO t VALUES
           (1, 7, 'abc', 'abc', 'abc', 1, 1.5, 1, '2024-01-01'),
           (2, -7, 'ABC', 'ABC', 'abc  ', '1', -0.0, 0, '1999-12-31'),
           (3, 9223372036854775807, '', '', '', 'x', 0.0, NULL, '2024-02-29'),
           (4, -9223372036854775808, 'é', 'É', ' a', 2.5, 1e308, 1, NULL),
           (5, NULL, NULL, NULL, NULL, NULL, NULL, 0, '0001-01-01'),
           (6, 0, 'a%b', 'a_b', 'it''s', '', -1e-300, 1, '2024-01-10'),
           (7, 13, 'e' || char(769), 'E', 'b', 10, 2.0, 0, '2024-1-2');",
    )
    .await;
    f.copy_locally("t", "local_t").await;
    let cases: &[(&str, bool)] = &[
        ("i > 0", true),
        ("i = 7", true),
        ("i <> 7", true),
        ("i <= -7", true),
        ("i IN (0, 13, NULL)", true),
        ("i BETWEEN -7 AND 7", true),
        ("i / 2 = 3", true),
        ("i / 2 = -3", true),
        ("i % 3 = -1", true),
        ("i % 5 = 2", true),
        ("i + 1 > 0", false),
        ("i * 2 < 0", false),
        ("s = 'abc'", true),
        ("s < 'a'", true),
        ("s >= 'a'", true),
        ("s IN ('ABC', 'é')", true),
        ("s || 'x' = 'abcx'", true),
        ("length(s) = 1", true),
        ("length(s) = 2", true),
        ("s LIKE 'a%'", false),
        ("nc = 'abc'", false),
        ("nc < 'b'", false),
        ("rt = 'abc'", false),
        ("u = '1'", false),
        ("r > 0", false),
        ("flag", true),
        ("NOT flag", true),
        ("flag IS NULL", true),
        ("d = DATE '2024-02-29'", false),
        ("d < DATE '2024-01-05'", false),
        ("d IS NOT NULL", true),
        ("i > 0 AND s = 'abc' OR flag", true),
    ];
    let mut wrong = Vec::new();
    for (predicate, pushed) in cases {
        let remote_sql = format!("SELECT id FROM lite.t WHERE {predicate} ORDER BY id");
        let local_sql = format!("SELECT id FROM local_t WHERE {predicate} ORDER BY id");
        let remote = common::answer(&f.db, &remote_sql).await;
        let local = common::answer(&f.db, &local_sql).await;
        match (&remote, &local) {
            (Ok(r), Ok(l)) => assert_eq!(r, l, "{predicate}: SQLite and DataFusion disagree"),
            // '2024-1-2' is not a date: both sides must fail reading it.
            (Err(_), Err(_)) => {}
            _ => panic!("{predicate}: {remote:?} vs {local:?}"),
        }
        let plan = f.explain(&remote_sql).await;
        if plan.contains(" WHERE ") != *pushed {
            wrong.push(format!("{predicate} (pushed: {})\n{plan}", !pushed));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Joins and aggregates within SQLite run there as one query, with the
/// same rows as over local copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_sub_plans_match_local() {
    let f = Fixture::new(
        "CREATE TABLE c (id INTEGER PRIMARY KEY, name TEXT, region TEXT, tag TEXT COLLATE NOCASE);
         INSERT INTO c VALUES (1, 'Ann', 'north', 'x'), (2, 'bob', 'south', 'X'), (3, 'Ann ', 'North', 'y'),
           (4, '', 'north', NULL), (5, NULL, NULL, 'x');
         CREATE TABLE o (id INTEGER PRIMARY KEY, cid INTEGER, qty INTEGER, note TEXT);
         INSERT INTO o VALUES (10, 1, 5, 'a'), (11, 1, NULL, 'b'), (12, 2, 3, 'a'), (13, 3, 7, NULL),
           (14, NULL, 1, 'c'), (15, 9, 2, '');",
    )
    .await;
    f.copy_locally("c", "local_c").await;
    f.copy_locally("o", "local_o").await;
    let cases: &[(&str, Option<&str>)] = &[
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.id = o.cid",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid WHERE c.region = 'north'",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid AND o.qty > 2",
            Some("JOIN"),
        ),
        (
            "SELECT region, count(*), count(name), min(name), max(o.qty) FROM {c} c LEFT JOIN {o} o ON c.id = o.cid GROUP BY region",
            Some("GROUP BY"),
        ),
        ("SELECT DISTINCT note FROM {o}", Some("GROUP BY")),
        (
            "SELECT cid, count(*) FROM {o} GROUP BY cid HAVING count(*) > 1",
            Some("GROUP BY"),
        ),
        (
            "SELECT name, count(*) AS n FROM {c} GROUP BY name ORDER BY n DESC, name LIMIT 2",
            Some("LIMIT 2"),
        ),
        ("SELECT tag, count(*) FROM {c} GROUP BY tag", None),
        ("SELECT sum(qty) FROM {o}", None),
    ];
    common::check_federation(
        &f.db,
        cases,
        &[("{c}", "lite.c"), ("{o}", "lite.o")],
        &[("{c}", "local_c"), ("{o}", "local_o")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_come_from_sqlite_stat1() {
    let f = Fixture::new(
        "CREATE TABLE part (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE supply (part INTEGER, supplier INTEGER, qty INTEGER,
                              PRIMARY KEY (part, supplier));
         CREATE INDEX supply_supplier ON supply (supplier);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
         INSERT INTO part SELECT i, 'p' || i FROM n;
         INSERT INTO supply SELECT p.id, s.id, 1 FROM part p, (SELECT id FROM part WHERE id <= 4) s;
         ANALYZE;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    // The rowid alias: one value per row.
    let explained = f.explain("SELECT id FROM lite.part").await;
    assert!(
        explained.contains("Rows=Inexact(400)")
            && explained.contains(
                "(Col[0]: Min=Inexact(Int64(1)) Max=Inexact(Int64(400)) Distinct=Inexact(400))"
            ),
        "{explained}"
    );
    // The first column of each index: rows over rows per value, and its
    // bounds (one index lookup each); a column no index starts with has no
    // bounds, and its values are counted (the table is smaller than the
    // sample).
    let explained = f
        .explain("SELECT part, supplier, qty FROM lite.supply")
        .await;
    assert!(
        explained.contains("Rows=Inexact(1600)")
            && explained.contains(
                "(Col[0]: Min=Inexact(Int64(1)) Max=Inexact(Int64(400)) Distinct=Inexact(400))"
            )
            && explained.contains(
                "(Col[1]: Min=Inexact(Int64(1)) Max=Inexact(Int64(4)) Distinct=Inexact(4))"
            )
            && explained.contains("(Col[2]: Distinct=Inexact(1))"),
        "{explained}"
    );
    // Issue 18, part 1: the bounds estimate what a range keeps (a tenth of
    // the parts here, where a fifth of the table was assumed).
    let explained = f
        .explain("SELECT part, qty FROM lite.supply WHERE part <= 40")
        .await;
    let rows = common::estimated_rows(&explained);
    assert!((140..=180).contains(&rows), "{explained}");
}

/// Columns no index counts get their distinct values from the table's
/// first 10,000 rows when those show few values (a type, a status), so an
/// equality on one keeps its share of the rows, not a tenth (TPC-H Q8's
/// `p_type`: 150 values); a column of many values gets no estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_columns_are_counted_in_a_sample() {
    let f = Fixture::new(
        "CREATE TABLE part (id INTEGER PRIMARY KEY, kind TEXT, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
         INSERT INTO part SELECT i, 'kind ' || (i % 150), 'part ' || i FROM n;
         ANALYZE;",
    )
    .await;
    let rows = |sql: &'static str| {
        let f = &f;
        async move { common::estimated_rows(&f.explain(sql).await) }
    };
    assert_eq!(
        rows("SELECT id FROM lite.part WHERE kind = 'kind 7'").await,
        200
    );
    assert_eq!(
        rows("SELECT id FROM lite.part WHERE name = 'part 7'").await,
        3000
    );
}

/// Found by an outsider: SQLite's `max()` of an indexed `INTEGER` column
/// holding a blob is the blob; the bounds kept were `min` twice (1 to 1),
/// and `k = 3` was estimated at one row. Bounds are now both or neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_of_a_column_holding_other_types_are_left_out() {
    let f = Fixture::new(
        "CREATE TABLE mixed (k INTEGER); CREATE INDEX mk ON mixed (k);
         INSERT INTO mixed VALUES (1), (2), (3), (4.5), (X'00'), ('zzz'); ANALYZE;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    let explained = f.explain("SELECT k FROM lite.mixed").await;
    assert!(
        explained.contains("statistics=[Rows=") && !explained.contains("Min="),
        "{explained}"
    );
}

/// Issue 18, part 1: a file never `ANALYZE`d still gives its tables' sizes
/// (join order and hash-table sides depend on them): counted up to 100,000
/// rows, past that `max(rowid)`; a WITHOUT ROWID table past the bound gives
/// the bound, and a view (which may be anything but cheap) none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_never_analyzed_are_counted() {
    let f = Fixture::new(
        "CREATE TABLE small (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE big (id INTEGER PRIMARY KEY, v INT);
         CREATE TABLE keyed (k TEXT PRIMARY KEY, v INT) WITHOUT ROWID;
         CREATE VIEW everything AS SELECT * FROM big;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250000)
         INSERT INTO big SELECT i, i % 7 FROM n;
         INSERT INTO small SELECT id, 'n' || id FROM big WHERE id <= 37;
         INSERT INTO keyed SELECT 'k' || id, v FROM big WHERE id <= 120000;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    for (sql, rows) in [
        ("SELECT id FROM lite.small", Some(37)),
        ("SELECT id FROM lite.big", Some(250_000)),
        ("SELECT k FROM lite.keyed", Some(100_001)),
        ("SELECT id FROM lite.everything", None),
    ] {
        let explained = f.explain(sql).await;
        let scan = explained
            .lines()
            .find(|l| l.contains("RemoteScanExec"))
            .unwrap_or_default()
            .to_string();
        match rows {
            Some(rows) => assert!(
                scan.contains(&format!("Rows=Inexact({rows})")),
                "{sql}: {explained}"
            ),
            None => assert!(scan.contains("Rows=Absent"), "{sql}: {explained}"),
        }
    }
}

/// Issue 18, part 2 (TPC-H Q7's shape): a condition over two small tables
/// joined to different sides (`(n1 = 'FRANCE' AND n2 = 'GERMANY') OR (n1 =
/// 'GERMANY' AND n2 = 'FRANCE')`) no longer keeps the second from meeting
/// its table first: each nation table joins its own table in SQLite,
/// filtered by the condition each implies (`n_name = 'FRANCE' OR n_name =
/// 'GERMANY'`), and the condition itself is applied once both have met the
/// local table. The answer is the one computed locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_or_of_two_tables_conditions_does_not_hold_back_join_order() {
    let f = Fixture::new(
        "CREATE TABLE nation (n_nationkey INTEGER PRIMARY KEY, n_name CHAR(25));
         CREATE TABLE supplier (s_suppkey INTEGER PRIMARY KEY, s_nationkey INTEGER);
         CREATE TABLE customer (c_custkey INTEGER PRIMARY KEY, c_nationkey INTEGER);
         INSERT INTO nation VALUES (0, 'FRANCE'), (1, 'GERMANY'), (2, 'PERU'), (3, 'CHINA');
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99)
         INSERT INTO supplier SELECT i, i % 4 FROM n;
         INSERT INTO customer SELECT s_suppkey, s_suppkey % 4 FROM supplier;",
    )
    .await;
    let lines: Vec<String> = (0..1000)
        .map(|i| format!("({}, {}, {i})", i % 100, (i * 7 + 1) % 100))
        .collect();
    query(
        &f.db,
        &format!(
            "CREATE TABLE lineitem AS SELECT CAST(column1 AS INT) AS l_suppkey, \
             CAST(column2 AS INT) AS l_custkey, CAST(column3 AS INT) AS v FROM (VALUES {})",
            lines.join(", ")
        ),
    )
    .await;
    for table in ["nation", "supplier", "customer"] {
        f.copy_locally(table, &format!("local_{table}")).await;
    }
    let q7 = |prefix: &str| {
        format!(
            "SELECT n1.n_name, n2.n_name, sum(v) FROM lineitem l \
             JOIN {prefix}supplier s ON l.l_suppkey = s.s_suppkey \
             JOIN {prefix}customer c ON l.l_custkey = c.c_custkey \
             JOIN {prefix}nation n1 ON s.s_nationkey = n1.n_nationkey \
             JOIN {prefix}nation n2 ON c.c_nationkey = n2.n_nationkey \
             WHERE (n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') \
                OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE') \
             GROUP BY 1, 2 ORDER BY 1"
        )
    };
    let explained = f.explain(&q7("lite.")).await;
    let scans: Vec<&str> = explained
        .lines()
        .filter(|l| l.contains("RemoteScanExec"))
        .collect();
    assert_eq!(scans.len(), 2, "{explained}");
    for (table, column) in [("supplier", "s_nationkey"), ("customer", "c_nationkey")] {
        assert!(
            scans
                .iter()
                .any(|scan| scan.contains(&format!("JOIN `main`.`{table}`"))
                    && scan.contains(column)
                    && scan.contains("'FRANCE'")
                    && scan.contains("'GERMANY'")),
            "{table} is joined to its nation in SQLite: {explained}"
        );
    }
    let expected = f.rows(&q7("local_")).await;
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert_eq!(f.rows(&q7("lite.")).await, expected);
    // Equalities are transitive: a condition on the local side of a join
    // key reaches the remote side's query (DataFusion infers it).
    for (condition, sent) in [
        ("l.l_suppkey = 7", "`supplier`.`s_suppkey` = 7"),
        ("l.l_suppkey BETWEEN 3 AND 5", "`supplier`.`s_suppkey` >= 3"),
    ] {
        let explained = f
            .explain(&format!(
                "SELECT count(*) FROM lineitem l JOIN lite.supplier s \
                 ON s.s_suppkey = l.l_suppkey WHERE {condition}"
            ))
            .await;
        assert!(explained.contains(sent), "{condition}: {explained}");
    }
}

/// Issue 18, part 2: across a join key that casts one side (a 32-bit local
/// key, SQLite's 64-bit INTEGER), a condition on either key is also sent to
/// the other side's scan. Generated over every comparison, IN, NOT IN,
/// BETWEEN, NOT BETWEEN and OR, on either side, with values at and past
/// the 32-bit range: the counts are the ones computed here in Rust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_cross_cast_join_keys_exactly() {
    let remote: Vec<i64> = vec![
        -3,
        -1,
        0,
        1,
        2,
        2,
        3,
        5,
        2_147_483_647,
        5_000_000_000,
        -5_000_000_000,
    ];
    let local: Vec<i64> = vec![-3, 0, 1, 2, 3, 3, 4, 2_147_483_647, -2_147_483_648];
    let f = Fixture::new(&format!(
        "CREATE TABLE s (k INTEGER);
         INSERT INTO s VALUES {};",
        remote
            .iter()
            .map(|v| format!("({v})"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .await;
    query(
        &f.db,
        &format!(
            "CREATE TABLE l AS SELECT CAST(column1 AS INT) AS k FROM (VALUES {})",
            local
                .iter()
                .map(|v| format!("({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    let values: [i64; 6] = [-1, 0, 2, 3, 2_147_483_647, 5_000_000_000];
    type Test = Box<dyn Fn(i64) -> bool>;
    let mut conditions: Vec<(String, Test)> = Vec::new();
    for v in values {
        for (op, test) in [
            ("=", Box::new(move |x: i64| x == v) as Test),
            ("<>", Box::new(move |x: i64| x != v)),
            ("<", Box::new(move |x: i64| x < v)),
            ("<=", Box::new(move |x: i64| x <= v)),
            (">", Box::new(move |x: i64| x > v)),
            (">=", Box::new(move |x: i64| x >= v)),
        ] {
            conditions.push((format!("{{k}} {op} {v}"), test));
        }
    }
    for (a, b) in [(0, 2), (-1, 3), (2, 5_000_000_000)] {
        conditions.push((
            format!("{{k}} IN ({a}, {b}, 3)"),
            Box::new(move |x| x == a || x == b || x == 3),
        ));
        conditions.push((
            format!("{{k}} NOT IN ({a}, {b})"),
            Box::new(move |x| x != a && x != b),
        ));
        conditions.push((
            format!("{{k}} BETWEEN {a} AND {b}"),
            Box::new(move |x| a <= x && x <= b),
        ));
        conditions.push((
            format!("{{k}} NOT BETWEEN {a} AND {b}"),
            Box::new(move |x| !(a <= x && x <= b)),
        ));
        conditions.push((
            format!("({{k}} = {a} OR {{k}} > {b})"),
            Box::new(move |x| x == a || x > b),
        ));
    }
    let mut checked = 0;
    for (condition, test) in &conditions {
        for side in ["l.k", "s.k"] {
            let sql = format!(
                "SELECT count(*) FROM lite.s s JOIN l ON s.k = l.k WHERE {}",
                condition.replace("{k}", side)
            );
            let expected = local
                .iter()
                .map(|l| remote.iter().filter(|s| **s == *l && test(*l)).count())
                .sum::<usize>();
            assert_eq!(f.rows(&sql).await, [expected.to_string()], "{sql}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (36 + 15));
    // The condition on the local key reaches SQLite.
    let explained = f
        .explain("SELECT count(*) FROM lite.s s JOIN l ON s.k = l.k WHERE l.k BETWEEN 1 AND 3")
        .await;
    assert!(
        explained.contains("`s`.`k` <= 3") && explained.contains("`s`.`k` >= 1"),
        "{explained}"
    );
}

/// A large table with a rowid is read as rowid ranges at once, under a
/// name of the rowid no column takes; a `WITHOUT ROWID` table is one
/// query. Answers equal one query's (`scan_partitions=1`), with rows
/// deleted in the middle of the range. (`scan_partition_rows` makes
/// 11,000 rows a large table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tables_are_read_in_rowid_ranges() {
    let f = Fixture::new(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v INT);
         CREATE TABLE named (rowid TEXT, oid INT, v INT);
         CREATE TABLE keyed (k INTEGER PRIMARY KEY, v INT) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 11000)
         INSERT INTO big SELECT i, i % 7 FROM n;
         DELETE FROM big WHERE id BETWEEN 4000 AND 5000;
         INSERT INTO big VALUES (-5, 1), (9000000000, 2);
         INSERT INTO named SELECT 'r' || id, id, v FROM big;
         INSERT INTO keyed SELECT id, v FROM big;
         ANALYZE;",
    )
    .await;
    // Everything computed locally over the scan: in parts, and as one query.
    for (options, name) in [
        ("scan_partition_rows=1000", "pushed"),
        ("pushdown=off&scan_partition_rows=1000", "part"),
        (
            "pushdown=off&scan_partition_rows=1000&scan_partitions=1",
            "one",
        ),
    ] {
        f.db.attach(
            &format!("sqlite:{}?{options}", f.path().display()),
            name,
            false,
        )
        .await
        .unwrap();
    }
    for (table, parts) in [
        ("big", Some((2, "rowid".to_string()))),
        ("named", Some((2, "_rowid_".to_string()))),
        ("keyed", None),
    ] {
        let explained = f.explain(&format!("SELECT * FROM pushed.{table}")).await;
        assert_eq!(
            common::scan_parts(&explained),
            parts,
            "{table}: {explained}"
        );
        let explained = f.explain(&format!("SELECT * FROM lite.{table}")).await;
        assert_eq!(common::scan_parts(&explained), None, "{table}: {explained}");
        let explained = f
            .explain(&format!("SELECT count(*) FROM part.{table}"))
            .await;
        assert_eq!(
            common::scan_parts(&explained),
            parts,
            "{table}: {explained}"
        );
        let one = f.explain(&format!("SELECT * FROM one.{table}")).await;
        assert_eq!(common::scan_parts(&one), None, "{one}");
        for sql in [
            "SELECT count(*), sum(v), count(DISTINCT CAST(v AS VARCHAR) || '.' || CAST(v AS VARCHAR)) FROM SRC.T",
            "SELECT v, count(*) FROM SRC.T WHERE v > 2 GROUP BY v ORDER BY v",
        ] {
            let sql = sql.replace(".T", &format!(".{table}"));
            assert_eq!(
                f.rows(&sql.replace("SRC", "part")).await,
                f.rows(&sql.replace("SRC", "one")).await,
                "{sql}"
            );
        }
    }
    assert_eq!(
        f.rows("SELECT count(*), sum(id) FROM part.big").await,
        f.rows("SELECT count(*), sum(id) FROM one.big").await
    );
    assert_eq!(
        f.rows("SELECT count(*), sum(oid), count(DISTINCT rowid) FROM part.named")
            .await,
        vec!["10001|9056000995|10001".to_string()]
    );
}
