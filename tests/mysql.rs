//! MySQL/MariaDB through `ATTACH 'mysql://...'`, against the real server
//! (`MOLTRES_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`). Each
//! test works in a database of its own and drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use moltres::Moltres;
use mysql_async::prelude::Queryable;

use crate::common::{self, query};

/// A database of the test's own, attached as `my`, dropped by [`Fixture::finish`].
struct Fixture {
    conn: mysql_async::Conn,
    database: String,
    db: Moltres,
}

impl Fixture {
    async fn new(setup: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let database = format!(
            "moltres_t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let conn = common::mysql_database(&database, setup).await;
        let db = common::session().await;
        db.attach(&format!("{}/{database}", common::mysql_url()), "my", false)
            .await
            .expect("attach MySQL");
        Fixture { conn, database, db }
    }

    async fn rows(&self, sql: &str) -> Vec<String> {
        query(&self.db, sql)
            .await
            .into_iter()
            .map(|r| r.join("|"))
            .collect()
    }

    async fn copy_locally(&self, table: &str, local: &str) {
        self.db
            .sql(&format!("CREATE TABLE {local} AS SELECT * FROM my.{table}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }

    async fn finish(mut self) {
        self.conn
            .query_drop(format!("DROP DATABASE `{}`", self.database))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_with_nulls_and_extremes() {
    let f = Fixture::new(
        "CREATE TABLE t (id INT PRIMARY KEY, b TINYINT(1), i8 TINYINT, u8 TINYINT UNSIGNED,
            i16 SMALLINT, u16 SMALLINT UNSIGNED, i24 MEDIUMINT, i32 INT, u32 INT UNSIGNED,
            i64 BIGINT, u64 BIGINT UNSIGNED, d DECIMAL(10,2), dbig DECIMAL(65,30), f FLOAT,
            dbl DOUBLE, c CHAR(4), vc VARCHAR(20) COLLATE utf8mb4_nopad_bin, tx TEXT, bin BINARY(2),
            vb VARBINARY(10), bl BLOB, dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME,
            y YEAR, j JSON, e ENUM('sad','ok','happy'), s SET('a','b'), bt BIT(10));
         INSERT INTO t VALUES
           (1, 1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
            -9223372036854775808, 18446744073709551615, -99999999.99,
            12345678901234567890123456789012345.123456789012345678901234567890, -3.5, 1e308,
            'ab', 'héllo \"q\" it''s', 'long text', 'xy', 0x00ff, 0x01, '1000-01-01',
            '2024-02-29 12:34:56.123456', '2038-01-19 03:14:07.999', '23:59:59', 2155,
            '{\"a\": [1, 2]}', 'happy', 'a,b', b'1111111111'),
           (2, 0, 127, 0, 32767, 0, 8388607, 2147483647, 0, 9223372036854775807, 0, 0, 0, 0, -0,
            '', '', '', '', '', '', '9999-12-31', '1000-01-01 00:00:00', '1970-01-01 00:00:01',
            '00:00:00', 1901, 'null', 'sad', '', b'0'),
           (3, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let types: Vec<String> = f
        .rows("DESCRIBE my.t")
        .await
        .iter()
        .map(|r| r.split('|').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "Int32",
            "Boolean",
            "Int8",
            "UInt8",
            "Int16",
            "UInt16",
            "Int32",
            "Int32",
            "UInt32",
            "Int64",
            "UInt64",
            "Decimal128(10, 2)",
            "Decimal256(65, 30)",
            "Float32",
            "Float64",
            "Utf8",
            "Utf8",
            "Utf8",
            "Binary",
            "Binary",
            "Binary",
            "Date32",
            "Timestamp(µs)",
            "Timestamp(µs, \"UTC\")",
            "Time64(µs)",
            "Int16",
            "Utf8",
            "Utf8",
            "Utf8",
            "UInt64"
        ]
    );
    let rows = f.rows("SELECT * FROM my.t ORDER BY id").await;
    assert_eq!(
        rows[0],
        "1|true|-128|255|-32768|65535|-8388608|-2147483648|4294967295|-9223372036854775808|\
         18446744073709551615|-99999999.99|12345678901234567890123456789012345.123456789012345678901234567890|\
         -3.5|1e308|ab|héllo \"q\" it's|long text|7879|00ff|01|1000-01-01|2024-02-29T12:34:56.123456|\
         2038-01-19T03:14:07.999Z|23:59:59|2155|{\"a\": [1, 2]}|happy|a,b|1023"
    );
    assert_eq!(
        rows[1],
        "2|false|127|0|32767|0|8388607|2147483647|0|9223372036854775807|0|0.00|\
         0.000000000000000000000000000000|0.0|0.0||||0000|||9999-12-31|1000-01-01T00:00:00|\
         1970-01-01T00:00:01Z|00:00:00|1901|null|sad||0"
    );
    assert!(rows[2].starts_with("3|true|NULL|NULL"), "{}", rows[2]);
    // Zero rows keep their schema.
    let empty = f.db.sql("SELECT * FROM my.t WHERE id > 99").await.unwrap();
    assert_eq!(empty.schema().fields().len(), 30);
    assert!(
        empty
            .collect()
            .await
            .unwrap()
            .iter()
            .all(|b| b.num_rows() == 0)
    );
    f.finish().await;
}

/// Each predicate evaluated by MySQL and by DataFusion over a local copy:
/// same rows; what MySQL compares differently (collations, padding,
/// tinyint(1) = TRUE) is pinned as local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_pushed_predicates_match_local_evaluation() {
    let f = Fixture::new(
        "CREATE TABLE t (id INT PRIMARY KEY, i INT, u INT UNSIGNED, ci VARCHAR(10),
            pad VARCHAR(10) COLLATE utf8mb4_bin, nopad VARCHAR(10) COLLATE utf8mb4_nopad_bin,
            ch CHAR(4) COLLATE utf8mb4_nopad_bin, flag TINYINT(1), dbl DOUBLE, dt DATE,
            dtm DATETIME(6), ts TIMESTAMP(6) NULL, e ENUM('b','a'));
         INSERT INTO t VALUES
           (1, 7, 0, 'abc', 'abc', 'abc', 'abc', 1, 1.5, '2024-01-01', '2024-03-31 01:30:00', '2024-03-31 01:30:00', 'a'),
           (2, -7, 4294967295, 'ABC', 'abc ', 'abc ', 'ab', 0, -0.0, '1999-12-31', '2024-03-31 00:59:59.999999', '2024-10-27 00:30:00', 'b'),
           (3, 2147483647, 5, 'é', 'é', 'é', 'é', 2, 1e308, '2024-02-29', '1970-01-01 00:00:00', '1970-01-01 00:00:01', NULL),
           (4, -2147483648, 1, 'e', 'E', 'e\u{301}', 'E', NULL, NULL, NULL, NULL, NULL, 'a'),
           (5, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, '1000-01-01', '9999-12-31 23:59:59', '2038-01-19 03:14:07', 'b'),
           (6, 0, 2, '', '', '', '', 0, -1e-300, '2024-01-10', '2024-03-31 01:00:00', '2024-03-31 01:00:00', 'a'),
           (7, 13, 3, 'a%b', 'a%b', 'a\\\\b', 'a_b', 1, 2.0, '2024-12-31', '2024-10-27 01:30:00', '2024-10-27 01:30:00', 'b'),
           (8, -13, 9, 'it''s', 'say \"hi\"', 'say \"hi\"', 'it''s', 0, 3.25, '2024-06-30', '2000-01-01 00:00:00', '2000-01-01 00:00:00', 'a');",
    )
    .await;
    f.copy_locally("t", "local_t").await;
    let cases: &[(&str, bool)] = &[
        ("i > 0", true),
        ("i = 7", true),
        ("i <> 7", true),
        ("i <= -7", true),
        ("i IN (0, 13)", true),
        ("i BETWEEN -7 AND 7", true),
        ("u > 4", true),
        ("u = 4294967295", true),
        ("i / 2 = 3", false),
        ("i % 3 = 1", false),
        ("i + 1 > 0", false),
        ("nopad = 'abc'", true),
        ("nopad = 'abc '", true),
        ("nopad < 'b'", true),
        ("nopad >= 'a'", true),
        ("nopad IN ('abc', 'é', '')", true),
        ("nopad = 'say \"hi\"'", true),
        ("nopad = 'a\\b'", true),
        ("nopad LIKE 'a%'", true),
        ("nopad LIKE '_b_'", true),
        ("nopad LIKE 'a\\\\%'", false),
        ("nopad ILIKE 'A%'", false),
        ("ci = 'abc'", false),
        ("ci < 'b'", false),
        ("pad = 'abc'", false),
        ("pad = 'e'", false),
        ("ch = 'ab'", false),
        ("e = 'a'", false),
        ("e < 'b'", false),
        ("flag", true),
        ("NOT flag", true),
        // DataFusion simplifies it to `flag`.
        ("flag = true", true),
        ("flag IS NULL", true),
        ("dbl > 0", true),
        ("dbl = 0", true),
        ("dbl <= -1e-301", false),
        ("dbl >= 1e308", false),
        ("dbl < 1e15", true),
        ("dt = DATE '2024-02-29'", true),
        ("dt < DATE '2000-01-01'", true),
        ("dt BETWEEN DATE '2024-01-01' AND DATE '2024-06-30'", true),
        ("dtm = TIMESTAMP '2024-03-31 01:30:00'", true),
        ("dtm < TIMESTAMP '2024-03-31 01:00:00'", true),
        ("dtm >= TIMESTAMP '2024-03-31 00:59:59.999999'", true),
        ("ts = '2024-03-31T01:30:00Z'", true),
        ("ts < TIMESTAMP '2000-01-01 00:00:00'", true),
        ("ts > '2024-10-27T00:30:00+01:00'", true),
        ("i > 0 AND nopad = 'abc' OR flag", true),
    ];
    common::check_predicates(&f.db, cases, "my.t", "local_t").await;
    f.finish().await;
}

/// Joins and aggregates within one MySQL database run there as one query,
/// with the same rows as over local copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_sub_plans_match_local() {
    let f = Fixture::new(
        "CREATE TABLE c (id INT PRIMARY KEY, name VARCHAR(10) COLLATE utf8mb4_nopad_bin,
                         region VARCHAR(10) COLLATE utf8mb4_nopad_bin NOT NULL, tag VARCHAR(10));
         INSERT INTO c VALUES (1, 'Ann', 'north', 'x'), (2, 'bob', 'south', 'X'), (3, 'Ann ', 'North', 'y'),
           (4, '', 'north', NULL), (5, NULL, 'east', 'x');
         CREATE TABLE o (id INT PRIMARY KEY, cid INT, qty INT, amount DECIMAL(10,2));
         INSERT INTO o VALUES (10, 1, 5, 10.50), (11, 1, NULL, 0.01), (12, 2, 3, NULL), (13, 3, 7, 99.99),
           (14, NULL, 1, 1.00), (15, 9, 2, -5.25);",
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
            "SELECT c.id, o.id FROM {c} c RIGHT JOIN {o} o ON c.id = o.cid AND o.qty > 2",
            Some("JOIN"),
        ),
        (
            "SELECT region, count(*), count(name), max(o.id) FROM {c} c LEFT JOIN {o} o ON c.id = o.cid GROUP BY region",
            Some("GROUP BY"),
        ),
        (
            "SELECT name, sum(amount) FROM {c} c JOIN {o} o ON c.id = o.cid GROUP BY name",
            Some("GROUP BY"),
        ),
        ("SELECT DISTINCT region FROM {c}", Some("GROUP BY")),
        (
            "SELECT region, count(*) AS n FROM {c} GROUP BY region ORDER BY n DESC, region LIMIT 2",
            Some("LIMIT 2"),
        ),
        ("SELECT tag, count(*) FROM {c} GROUP BY tag", None),
        ("SELECT sum(qty) FROM {o}", None),
        ("SELECT name FROM {c} ORDER BY name LIMIT 2", None),
    ];
    common::check_federation(
        &f.db,
        cases,
        &[("{c}", "my.c"), ("{o}", "my.o")],
        &[("{c}", "local_c"), ("{o}", "local_o")],
    )
    .await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_discovery_and_bad_input() {
    let f = Fixture::new(
        "CREATE TABLE `Order Items` (`Key` INT, `select` VARCHAR(10));
         INSERT INTO `Order Items` VALUES (1, 'one'), (2, 'two');
         CREATE TABLE orders (id INT, total DECIMAL(8,2));
         INSERT INTO orders VALUES (1, 9.50), (2, 20.00);
         CREATE VIEW big_orders AS SELECT id FROM orders WHERE total > 10;
         CREATE TABLE shapes (id INT, g GEOMETRY);
         INSERT INTO shapes VALUES (1, POINT(1, 2));",
    )
    .await;
    assert_eq!(
        f.rows("SELECT `Key`, \"select\" FROM my.\"Order Items\" WHERE \"Key\" = 2")
            .await,
        ["2|two"]
    );
    let database = f.database.clone();
    assert_eq!(
        f.rows(&format!("SELECT id FROM my.{database}.big_orders"))
            .await,
        ["2"]
    );
    assert_eq!(
        f.rows("SELECT * FROM mysql_query('my', 'SELECT id, total * 2 AS t2, COUNT(*) OVER () AS n FROM orders ORDER BY id')")
            .await,
        ["1|19.00|2", "2|40.00|2"]
    );
    let source = f.db.source("my").unwrap();
    assert_eq!(
        source
            .execute("ALTER TABLE orders ADD COLUMN note VARCHAR(5) DEFAULT 'n'")
            .await
            .unwrap(),
        0
    );
    f.db.refresh("my").unwrap();
    assert_eq!(
        f.rows("SELECT note FROM my.orders WHERE id = 1").await,
        ["n"]
    );
    // Unsupported types name the column; text reads them.
    let err = common::error(&f.db, "SELECT * FROM my.shapes").await;
    assert!(err.contains("'g'") && err.contains("geometry"), "{err}");
    let err = common::error(&f.db, "SELECT * FROM my.order").await;
    assert!(err.contains("orders"), "{err}");
    let err = source
        .query("SELECT nope FROM orders")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source 'my'") && err.contains("nope") && err.contains("1054"),
        "{err}"
    );
    // Bad connections name the source, never the password, within the timeout.
    let base = common::mysql_url();
    let started = std::time::Instant::now();
    let err =
        f.db.attach(
            "mysql://root:s3cret@127.0.0.1:1/test?connect_timeout=3",
            "nowhere",
            false,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere") && !err.contains("s3cret"), "{err}");
    assert!(started.elapsed().as_secs() < 15);
    let err =
        f.db.attach(&format!("{base}/no_such_database_here"), "nodb", false)
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("nodb") && err.contains("no_such_database_here"),
        "{err}"
    );
    let text = common::session().await;
    text.attach(
        &format!("{base}/{database}?unsupported_types=text"),
        "my",
        false,
    )
    .await
    .unwrap();
    assert_eq!(query(&text, "SELECT id FROM my.shapes").await, [["1"]]);
    f.finish().await;
}

/// A LIMIT over a long result kills the query on the server; the pool
/// serves the next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_kills_a_long_query() {
    let mut f = Fixture::new(
        "CREATE TABLE n (x INT);
         INSERT INTO n VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);",
    )
    .await;
    // 10^8 rows: reading them all would take minutes.
    let started = std::time::Instant::now();
    let rows = f
        .rows(
            "SELECT * FROM mysql_query('my', \
             'SELECT a.x FROM n a, n b, n c, n d, n e, n f, n g, n h') LIMIT 3",
        )
        .await;
    assert_eq!(rows.len(), 3);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    // The server is not left running it.
    let mut running = 1;
    for _ in 0..100 {
        let list: Vec<String> = f
            .conn
            .query("SELECT COALESCE(INFO, '') FROM information_schema.PROCESSLIST")
            .await
            .unwrap();
        running = list.iter().filter(|q| q.contains("n g, n h")).count();
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the query still runs on the server");
    assert_eq!(f.rows("SELECT count(*) FROM my.n").await, ["10"]);
    f.finish().await;
}

/// One statement over PostgreSQL, MySQL, SQLite, a Parquet file and a CSV
/// file returns the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sources_in_one_query() {
    let f = Fixture::new(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, product_id INT, qty INT);
         INSERT INTO orders VALUES (10, 1, 100, 2), (11, 2, 101, 1), (12, 3, 100, 5), (13, 1, 102, 1);",
    )
    .await;
    let schema = format!("moltres_five_{}", std::process::id());
    let pg = common::postgres_schema(
        &schema,
        "CREATE TABLE customers (id int, name text, city_id int);
         INSERT INTO customers VALUES (1, 'Ana', 1), (2, 'Bo', 2), (3, 'Cy', 1);",
    )
    .await;
    f.db.attach(&common::postgres_url(), "pg", false)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("shop.db");
    let connection = rusqlite::Connection::open(&lite).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);
             INSERT INTO products VALUES (100, 'pen', 1.5), (101, 'ink', 4.0), (102, 'pad', 2.25);",
        )
        .unwrap();
    drop(connection);
    f.db.attach(&format!("sqlite:{}", lite.display()), "lite", false)
        .await
        .unwrap();
    let csv = dir.path().join("discounts.csv");
    std::fs::write(&csv, "city_id,discount\n1,0.1\n2,0.0\n").unwrap();
    let rows = query(
        &f.db,
        &format!(
            "SELECT c.name AS customer, ci.name AS city,
                    round(sum(o.qty * p.price * (1 - d.discount)), 3) AS spent,
                    count(*) AS orders
             FROM pg.{schema}.customers c
             JOIN my.orders o ON o.customer_id = c.id
             JOIN lite.products p ON p.id = o.product_id
             JOIN 'testdata/cities.parquet' ci ON ci.id = c.city_id
             JOIN '{}' d ON d.city_id = c.city_id
             GROUP BY c.name, ci.name
             ORDER BY c.name",
            csv.display()
        ),
    )
    .await;
    assert_eq!(
        rows,
        [
            ["Ana", "Lisbon", "4.725", "2"],
            ["Bo", "Porto", "4.0", "1"],
            ["Cy", "Lisbon", "6.75", "1"]
        ]
    );
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    f.finish().await;
}

/// The connection is killed while rows stream: an error naming the source,
/// not a hang; the pool then serves the next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_mid_query() {
    let mut f = Fixture::new(
        "CREATE TABLE n (x INT);
         INSERT INTO n VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);",
    )
    .await;
    let db = f.db.clone();
    let reading = tokio::spawn(async move {
        db.sql(
            "SELECT count(*) FROM mysql_query('my', \
             'SELECT a.x FROM n a, n b, n c, n d, n e, n f, n g, n h, n i')",
        )
        .await
        .unwrap()
        .collect()
        .await
    });
    let mut killed = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let ids: Vec<u64> = f
            .conn
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%n h, n i%' AND INFO NOT LIKE '%PROCESSLIST%'")
            .await
            .unwrap();
        if let Some(id) = ids.first() {
            f.conn
                .query_drop(format!("KILL CONNECTION {id}"))
                .await
                .unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the query never showed up in the processlist");
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), reading)
        .await
        .expect("the query hung after its connection was killed")
        .unwrap();
    let err = result
        .expect_err("a killed query cannot succeed")
        .to_string();
    assert!(err.contains("source 'my'"), "{err}");
    assert_eq!(f.rows("SELECT count(*) FROM my.n").await, ["10"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_come_from_index_statistics() {
    let f = Fixture::new(
        "CREATE TABLE supply (part INT, supplier INT, qty INT, PRIMARY KEY (part, supplier),
                              KEY supply_supplier (supplier));
         INSERT INTO supply
           SELECT p.seq, s.seq, 1 FROM seq_1_to_400 p, seq_1_to_4 s;
         ANALYZE TABLE supply;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    let explained = f
        .rows("EXPLAIN SELECT part, supplier, qty FROM my.supply")
        .await
        .join("\n");
    // InnoDB's estimates come from samples (MariaDB 10.11 says 800 and 8
    // for 400 parts and 4 suppliers): the right order of magnitude.
    let column = |column: usize| -> &str {
        let at = explained
            .find(&format!("(Col[{column}]:"))
            .unwrap_or_else(|| panic!("no column {column}:\n{explained}"));
        let rest = &explained[at..];
        &rest[..rest.find("),(").map_or(rest.len(), |end| end + 1)]
    };
    let distinct = |i: usize| -> u64 {
        let stats = column(i);
        let start = stats
            .find("Distinct=Inexact(")
            .unwrap_or_else(|| panic!("no estimate for column {i}:\n{explained}"))
            + "Distinct=Inexact(".len();
        stats[start..start + stats[start..].find(')').unwrap()]
            .parse()
            .unwrap()
    };
    assert!((100..=1600).contains(&distinct(0)), "{explained}");
    assert!((1..=16).contains(&distinct(1)), "{explained}");
    // Issue 18, part 1: the bounds of the columns an index starts with,
    // read with MIN() and MAX(); none for the others.
    assert!(
        column(0).contains("Min=Inexact(Int32(1)) Max=Inexact(Int32(400))"),
        "{explained}"
    );
    assert!(
        column(1).contains("Min=Inexact(Int32(1)) Max=Inexact(Int32(4))"),
        "{explained}"
    );
    assert!(explained.contains("(Col[2]:)"), "{explained}");
    f.finish().await;
}

/// Issue 18, part 1: MariaDB's own column statistics (`ANALYZE TABLE ..
/// PERSISTENT FOR ALL`) give every column's NULL fraction, distinct values
/// and bounds, indexed or not, and they estimate what a filter keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_column_statistics_estimate_filters() {
    let f = Fixture::new(
        "CREATE TABLE t (id INT PRIMARY KEY, grade INT, day DATE, note VARCHAR(20));
         INSERT INTO t SELECT seq, IF(seq % 2 = 0, NULL, seq % 10), DATE '2020-01-01' + INTERVAL (seq % 1000) DAY,
                              CONCAT('n', seq)
           FROM seq_1_to_10000;
         ANALYZE TABLE t PERSISTENT FOR ALL;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    let explained = f
        .rows("EXPLAIN SELECT id, grade, day, note FROM my.t")
        .await
        .join("\n");
    for expected in [
        "(Col[0]: Min=Inexact(Int32(1)) Max=Inexact(Int32(10000)) Null=Inexact(0)",
        // InnoDB's row estimate is a sample's (10,330 rows here): the NULLs
        // are its half.
        "(Col[1]: Min=Inexact(Int32(1)) Max=Inexact(Int32(9)) Null=Inexact(",
        " Distinct=Inexact(5))",
        "(Col[2]: Min=Inexact(Date32(\"2020-01-01\")) Max=Inexact(Date32(\"2022-09-26\")) Null=Inexact(0)",
        "(Col[3]: Null=Inexact(0) Distinct=Inexact(10000))",
    ] {
        assert!(
            explained.contains(expected),
            "no {expected} in\n{explained}"
        );
    }
    for (sql, low, high) in [
        (
            "EXPLAIN SELECT id FROM my.t WHERE grade IS NULL",
            4500,
            5700,
        ),
        ("EXPLAIN SELECT id FROM my.t WHERE grade = 3", 900, 1150),
        (
            "EXPLAIN SELECT id FROM my.t WHERE day < DATE '2020-04-10'",
            900,
            1150,
        ),
    ] {
        let plan = f.rows(sql).await.join("\n");
        let rows = common::estimated_rows(&plan);
        assert!((low..=high).contains(&rows), "{sql}: {rows}\n{plan}");
    }
    f.finish().await;
}

/// Issue 16, part 3: the session settings hold on every connection the pool
/// hands out, also after a reset (each return to the pool resets the
/// session, which would give back the server's `sql_mode` and time zone),
/// and a passthrough `SET SESSION` does not leak into the next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_survive_pool_resets() {
    let f = Fixture::new(
        r"CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(10));
          INSERT INTO s VALUES (1, 'a\\b'), (2, 'ab');",
    )
    .await;
    f.db.attach(
        &format!(
            "{}/{}?pool_max_size=1&pool_idle_timeout=60",
            common::mysql_url(),
            f.database
        ),
        "one",
        false,
    )
    .await
    .unwrap();
    for round in 0..4 {
        let mode = f
            .rows("SELECT * FROM mysql_query('one', 'SELECT @@SESSION.sql_mode AS m, @@SESSION.time_zone AS z')")
            .await;
        assert!(
            mode[0].contains("NO_BACKSLASH_ESCAPES") && mode[0].ends_with("|+00:00"),
            "round {round}: {mode:?}"
        );
        assert_eq!(
            f.rows(r"SELECT id FROM one.s WHERE v = 'a\b'").await,
            ["1"],
            "round {round}"
        );
        // A session change by native SQL is gone by the next checkout.
        f.db.use_source("one").unwrap();
        f.db.execute("SET SESSION sql_mode = '', time_zone = '+05:00'")
            .await
            .unwrap();
    }
    f.finish().await;
}

/// Issue 16, part 3: DATETIME(6) keeps its fractional seconds in pushed
/// comparisons, run-time key lists and updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datetime6_keeps_fractional_seconds_when_pushed() {
    let f = Fixture::new(
        "CREATE TABLE e (id INT PRIMARY KEY, dt DATETIME(6));
         INSERT INTO e VALUES (1, '2024-01-01 00:00:00.250'), (2, '2024-01-01 00:00:00.750'),
                              (3, '2024-01-01 00:00:00');",
    )
    .await;
    assert_eq!(
        f.rows("SELECT id FROM my.e WHERE dt = TIMESTAMP '2024-01-01 00:00:00.25'")
            .await,
        ["1"]
    );
    assert_eq!(
        f.rows("SELECT id FROM my.e WHERE dt > TIMESTAMP '2024-01-01 00:00:00.5' ORDER BY id")
            .await,
        ["2"]
    );
    // A run-time key list from another source.
    assert_eq!(
        f.rows(
            "SELECT e.id FROM (VALUES (TIMESTAMP '2024-01-01 00:00:00.75'), (TIMESTAMP '2024-01-01 00:00:00.5')) AS k(t) \
             JOIN my.e AS e ON e.dt = k.t ORDER BY e.id"
        )
        .await,
        ["2"]
    );
    f.db.sql("UPDATE my.e SET dt = TIMESTAMP '2024-01-01 00:00:00.75' WHERE id = 3")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        f.rows("SELECT id, CAST(dt AS VARCHAR) FROM my.e WHERE id = 3")
            .await,
        ["3|2024-01-01T00:00:00.750"]
    );
    f.finish().await;
}

/// Found by `query_shapes`: two small filtered tables joined to a local
/// one traded places without end in the join-order rule (the plan grew
/// until memory ran out). Planning must finish, with the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_small_tables_joined_to_a_local_one_plan_once() {
    let f = Fixture::new(
        "CREATE TABLE d1 (pk INT PRIMARY KEY, a INT);
         CREATE TABLE d2 (pk INT PRIMARY KEY, a INT);
         INSERT INTO d1 VALUES (1, 1), (2, 3), (3, -1), (9, 2);
         INSERT INTO d2 VALUES (1, 2), (2, 4), (3, 0), (9, 1);",
    )
    .await;
    let sql = "SELECT x1.a, x1.b FROM (SELECT CAST(a AS INT) AS a, CAST(b AS INT) AS b \
               FROM (VALUES (1, 2), (3, 4), (-1, 0), (2, 2)) AS v(a, b)) x1 \
               JOIN my.d1 x2 ON x1.a = x2.a AND x2.pk < 5 \
               JOIN my.d2 x3 ON x1.b = x3.a AND x3.pk < 5 ORDER BY 1";
    // The planner's loop cannot be interrupted from async code: a
    // watchdog thread ends the binary rather than let CI hang.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = Arc::clone(&done);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        if !watched.load(Ordering::SeqCst) {
            // Not `eprintln!`: the harness captures it, and exit loses it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "planning did not finish within 60 s: {sql}"
            );
            std::process::exit(1);
        }
    });
    let rows = query(&f.db, sql).await;
    done.store(true, Ordering::SeqCst);
    assert_eq!(rows, [["-1", "0"], ["1", "2"], ["3", "4"]], "{sql}");
    f.finish().await;
}

/// Found by `query_shapes`: a run-time key list on `x2.a` over a join
/// MySQL runs was applied to `x1.a` (both columns are named `a`), and the
/// join lost its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lists_over_pushed_joins_find_the_right_column() {
    let f = Fixture::new(
        "CREATE TABLE d1 (pk INT PRIMARY KEY, a INT);
         CREATE TABLE d2 (pk INT PRIMARY KEY, a INT);
         INSERT INTO d1 VALUES (1, 10), (2, 20), (3, 30);
         INSERT INTO d2 VALUES (1, 2), (2, 10), (3, 3);",
    )
    .await;
    for keys in ["(2), (3)", "(10)", "(20)"] {
        let sql = format!(
            "SELECT x1.a, x2.a FROM my.d1 x1 JOIN my.d2 x2 ON x1.pk = x2.pk \
             WHERE x2.a IN (SELECT CAST(k AS INT) FROM (VALUES {keys}) v(k)) ORDER BY 1"
        );
        let expected: Vec<&str> = match keys {
            "(2), (3)" => vec!["10|2", "30|3"],
            "(10)" => vec!["20|10"],
            _ => vec![],
        };
        assert_eq!(f.rows(&sql).await, expected, "{sql}");
    }
    f.finish().await;
}

/// A large table whose primary key starts with an integer column is read
/// as ranges of that column at once; a text key is one query. Answers equal one
/// query's (`scan_partitions=1`), also for keys past the signed range.
/// (`scan_partition_rows` makes 13,000 rows a large table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tables_are_read_in_key_ranges() {
    let f = Fixture::new(
        "CREATE TABLE big (id INT PRIMARY KEY, v INT);
         INSERT INTO big SELECT seq, seq % 7 FROM seq_1_to_13000;
         CREATE TABLE pair (a INT, b INT, v INT, PRIMARY KEY (a, b));
         INSERT INTO pair SELECT seq, 1, seq % 7 FROM seq_1_to_13000;
         CREATE TABLE named (id VARCHAR(20) PRIMARY KEY, v INT);
         INSERT INTO named SELECT CONCAT('k', seq), seq % 7 FROM seq_1_to_13000;
         CREATE TABLE huge (id BIGINT UNSIGNED PRIMARY KEY, v INT);
         INSERT INTO huge SELECT seq, seq % 7 FROM seq_1_to_13000;
         INSERT INTO huge VALUES (18446744073709551615, 5), (9223372036854775808, 6);
         ANALYZE TABLE big, pair, named, huge;",
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
            &format!("{}/{}?{options}", common::mysql_url(), f.database),
            name,
            false,
        )
        .await
        .unwrap();
    }
    for (table, parts) in [
        ("big", Some((2, "id".to_string()))),
        ("pair", Some((2, "a".to_string()))),
        ("named", None),
        ("huge", Some((2, "id".to_string()))),
    ] {
        let explained = f
            .rows(&format!("EXPLAIN SELECT * FROM pushed.{table}"))
            .await
            .join("\n");
        assert_eq!(
            common::scan_parts(&explained),
            parts,
            "{table}: {explained}"
        );
        let explained = f
            .rows(&format!("EXPLAIN SELECT count(*) FROM part.{table}"))
            .await
            .join("\n");
        assert_eq!(
            common::scan_parts(&explained),
            parts,
            "{table}: {explained}"
        );
        for sql in [
            "SELECT count(*), sum(v), count(DISTINCT id) FROM SRC.T",
            "SELECT v, count(*) FROM SRC.T WHERE v > 2 GROUP BY v ORDER BY v",
        ] {
            let sql = sql
                .replace(".T", &format!(".{table}"))
                .replace("id", if table == "pair" { "a" } else { "id" });
            assert_eq!(
                f.rows(&sql.replace("SRC", "part")).await,
                f.rows(&sql.replace("SRC", "one")).await,
                "{sql}"
            );
        }
    }
    assert_eq!(
        f.rows("SELECT count(*), count(DISTINCT id) FROM part.huge")
            .await,
        vec!["13002|13002".to_string()]
    );
    f.finish().await;
}

/// MariaDB joins by nested loops and reaches a secondary index's rows one
/// lookup at a time, so (the `cost` module): a join of two of its tables
/// runs there only when it returns few rows beside its inputs, and a
/// join's keys from elsewhere reach a primary key as a list however many
/// they are (up to what pays), but a secondary index only when they reach
/// few of its rows. Answers equal the same joins over local copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_key_lists_follow_the_cost_model() {
    let f = Fixture::new(
        "CREATE TABLE c (ck INT PRIMARY KEY, nk INT);
         INSERT INTO c SELECT seq, seq % 25 FROM seq_1_to_5000;
         CREATE TABLE o (ok INT PRIMARY KEY, ck INT, v INT, KEY (ck));
         INSERT INTO o SELECT seq, seq % 5000 + 1, seq % 7 FROM seq_1_to_50000;
         ANALYZE TABLE c, o PERSISTENT FOR ALL;",
    )
    .await;
    f.copy_locally("c", "local_c").await;
    f.copy_locally("o", "local_o").await;
    // Every order with its customer: 50 K joined rows, read apart.
    let every = "SELECT count(*), sum(o.v), sum(c.nk) FROM {o} o JOIN {c} c ON o.ck = c.ck";
    // One customer's orders: joined there.
    let one = "SELECT count(*), sum(o.v) FROM {o} o JOIN {c} c ON o.ck = c.ck WHERE c.ck = 7";
    for (sql, federated) in [(every, false), (one, true)] {
        let remote = sql.replace("{o}", "my.o").replace("{c}", "my.c");
        let local = sql.replace("{o}", "local_o").replace("{c}", "local_c");
        assert_eq!(f.rows(&remote).await, f.rows(&local).await, "{remote}");
        let explained = common::explain(&f.db, &remote).await;
        let scans = common::remote_scans(&explained);
        let joined = scans.iter().any(|s| s.contains(" JOIN "));
        assert_eq!(
            (scans.len(), joined),
            if federated { (1, true) } else { (2, false) },
            "{remote}:\n{explained}"
        );
    }

    // Keys from elsewhere, as EXPLAIN ANALYZE shows them sent.
    let db = &f.db;
    let sent = |sql: String| async move {
        let analyzed = common::explain(db, &format!("ANALYZE {sql}")).await;
        let line = common::remote_scans(&analyzed)
            .into_iter()
            .find(|l| l.contains("sent="))
            .unwrap_or_else(|| panic!("no scan ran:\n{analyzed}"));
        line.contains(" IN (")
    };
    for (i, (end, step, column, listed)) in [
        // 5,000 of 50,000 primary keys: 5,000 lookups for a tenth of the
        // rows (past the 1,000 keys MySQL sources were once limited to).
        (50_001, 10, "ok", true),
        // A third of the customers through `KEY (ck)`: a third of the
        // orders, one lookup each.
        (5_001, 3, "ck", false),
        // 20 customers: 200 orders through the index.
        (5_001, 250, "ck", true),
    ]
    .into_iter()
    .enumerate()
    {
        // A memory table: its rows are known, so its side is built on.
        f.rows(&format!(
            "CREATE TABLE keys_{i} AS SELECT CAST(value AS INT) AS k FROM range(1, {end}, {step})"
        ))
        .await;
        let sql =
            format!("SELECT count(*), sum(o.v) FROM keys_{i} x JOIN {{o}} o ON o.{column} = x.k");
        let remote = sql.replace("{o}", "my.o");
        assert_eq!(
            f.rows(&remote).await,
            f.rows(&sql.replace("{o}", "local_o")).await,
            "{remote}"
        );
        assert_eq!(sent(remote.clone()).await, listed, "{remote}");
    }
    f.finish().await;
}
