//! PostgreSQL through `ATTACH 'postgres://...'`, against the real server
//! (`MOLTRES_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test works in a schema of its own and drops it.

use std::sync::atomic::{AtomicUsize, Ordering};

use moltres::Moltres;

use crate::common::{self, query};

fn url() -> String {
    common::postgres_url()
}

/// A schema of the test's own, dropped by [`Fixture::finish`].
struct Fixture {
    client: tokio_postgres::Client,
    schema: String,
    db: Moltres,
}

impl Fixture {
    async fn new(setup: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let schema = format!(
            "moltres_t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = common::postgres_schema(&schema, setup).await;
        let db = common::session().await;
        db.attach(&url(), "pg", false)
            .await
            .expect("attach PostgreSQL");
        Fixture { client, schema, db }
    }

    async fn rows(&self, sql: &str) -> Vec<String> {
        let sql = sql.replace("$S", &self.schema);
        query(&self.db, &sql)
            .await
            .into_iter()
            .map(|r| r.join("|"))
            .collect()
    }

    async fn explain(&self, sql: &str) -> String {
        self.rows(&format!("EXPLAIN {sql}")).await.join("\n")
    }

    /// The line of `EXPLAIN ANALYZE sql` of the remote scan whose line
    /// holds `marker` (`sent=`: the SQL sent after run-time filters).
    async fn analyzed_scan(&self, sql: &str, marker: &str) -> String {
        let analyzed = self
            .rows(&format!("EXPLAIN ANALYZE {sql}"))
            .await
            .join("\n");
        analyzed
            .lines()
            .find(|l| l.contains("RemoteScanExec") && l.contains(marker))
            .unwrap_or_else(|| panic!("no remote scan with {marker}:\n{analyzed}"))
            .to_string()
    }

    /// Copies `table` into a DataFusion memory table `local`, so the same
    /// query can be evaluated remotely and locally.
    async fn copy_locally(&self, table: &str, local: &str) {
        self.db
            .sql(&format!(
                "CREATE TABLE {local} AS SELECT * FROM pg.{}.{table}",
                self.schema
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }

    async fn finish(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_with_nulls_and_extremes() {
    let f = Fixture::new(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE t (
            id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
            n numeric(10,2), nbig numeric(50,10), nfree numeric, txt text, vc varchar(10), ch char(4),
            nm name, b boolean, d date, tm time, ts timestamp, tstz timestamptz, iv interval,
            by bytea, u uuid, j json, jb jsonb, ai int[], at text[], e mood, ip inet, m money);
         SET TIME ZONE 'Europe/Lisbon';
         INSERT INTO t VALUES
           (1, -32768, -2147483648, -9223372036854775808, -3.5, 1e300, -99999999.99,
            1234567890123456789012345678901234567890.0123456789, 123456789012345678901234567890.000000000000000000001,
            'héllo ''quoted''', 'abc', 'ab', 'nm', true, '0001-01-01', '23:59:59.999999',
            '1999-12-31 23:59:59.123456', '2026-03-29 01:30:00+00', '1 year 2 mons 3 days 04:05:06.789',
            '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}',
            '{1,NULL,3}', '{\"x\",\"y z\"}', 'happy', '192.168.0.1/24', 12.34),
           (2, 32767, 2147483647, 9223372036854775807, 3.4e38, -1e-300, 0, 0, -0.5, '', '', '',
            '', false, '9999-12-31', '00:00', '2262-04-11 23:47:16', '1970-01-01 00:00:00+00', '-1 day',
            '\\x', '00000000-0000-0000-0000-000000000000', 'null', '[]', '{}', '{}', 'sad', '::1', -1),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let types = f
        .rows("SELECT arrow_typeof(i2), arrow_typeof(n), arrow_typeof(nbig), arrow_typeof(nfree), arrow_typeof(ts), arrow_typeof(tstz), arrow_typeof(iv), arrow_typeof(ai), arrow_typeof(ip) FROM pg.$S.t LIMIT 1")
        .await;
    assert_eq!(
        types,
        [
            "Int16|Decimal128(10, 2)|Decimal256(50, 10)|Utf8|Timestamp(µs)|Timestamp(µs, \"UTC\")|Interval(MonthDayNano)|List(Int32)|Utf8"
        ]
    );
    let rows = f.rows("SELECT * FROM pg.$S.t ORDER BY id").await;
    // money's text depends on the server's lc_monetary: checked apart.
    let (row0, money0) = rows[0].rsplit_once('|').unwrap();
    let (row1, money1) = rows[1].rsplit_once('|').unwrap();
    assert_eq!(
        row0,
        "1|-32768|-2147483648|-9223372036854775808|-3.5|1e300|-99999999.99|1234567890123456789012345678901234567890.0123456789|123456789012345678901234567890.000000000000000000001|héllo 'quoted'|abc|ab|nm|true|0001-01-01|23:59:59.999999|1999-12-31T23:59:59.123456|2026-03-29T01:30:00Z|14 mons 3 days 4 hours 5 mins 6.789000000 secs|00ff|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": [1, 2]}|{\"b\": null}|[1, NULL, 3]|[x, y z]|happy|192.168.0.1/24"
    );
    assert!(money0.contains("12") && money0.contains("34"), "{money0}");
    assert_eq!(
        row1,
        "2|32767|2147483647|9223372036854775807|3.4e38|-1e-300|0.00|0.0000000000|-0.5|||||false|9999-12-31|00:00:00|2262-04-11T23:47:16|1970-01-01T00:00:00Z|-1 days||00000000-0000-0000-0000-000000000000|null|[]|[]|[]|sad|::1/128"
    );
    assert!(money1.contains('1') && money1.contains('-'), "{money1}");
    assert!(rows[2].starts_with("3|NULL|NULL|NULL"), "{}", rows[2]);
    assert!(rows[2].ends_with("|NULL|NULL|NULL"), "{}", rows[2]);

    // Zero rows keep the schema.
    let empty =
        f.db.sql(&format!("SELECT * FROM pg.{}.t WHERE id > 100", f.schema))
            .await
            .unwrap();
    assert_eq!(empty.schema().fields().len(), 28);
    assert_eq!(
        empty
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_is_exact_or_local() {
    let f = Fixture::new(
        "CREATE TABLE items (id int, qty bigint, name text, price double precision, active boolean);
         INSERT INTO items SELECT g, g % 7, 'item ' || g, g * 1.5, g % 2 = 0 FROM generate_series(1, 100) g;",
    )
    .await;
    let plan = f
        .explain("SELECT id, name FROM pg.$S.items WHERE id > 90 AND qty IN (1, 2) AND name <> 'x' AND name >= 'item' AND active")
        .await;
    // Integer, boolean and text equality predicates go to PostgreSQL (the
    // default collation is deterministic); the text order comparison stays
    // local (the collation's order is not DataFusion's).
    assert!(plan.contains("RemoteScanExec: source=pg"), "{plan}");
    assert!(plan.contains("(\"items\".\"id\" > 90)"), "{plan}");
    assert!(
        plan.contains("(\"items\".\"qty\" = 1) OR (\"items\".\"qty\" = 2)"),
        "{plan}"
    );
    assert!(plan.contains("WHERE \"items\".\"active\""), "{plan}");
    assert!(plan.contains("FilterExec"), "{plan}");
    assert!(plan.contains("(\"items\".\"name\" <> 'x')"), "{plan}");
    assert!(plan.contains("FilterExec: name@1 >= item"), "{plan}");
    assert!(!plan.contains("'item'"), "{plan}");
    let rows = f
        .rows("SELECT id FROM pg.$S.items WHERE id > 90 AND qty IN (1, 2) AND name <> 'x' AND name >= 'item' AND active ORDER BY id")
        .await;
    assert_eq!(rows, ["92", "100"]);
    // LIMIT goes remote when every filter is exact.
    let plan = f
        .explain("SELECT id FROM pg.$S.items WHERE id <= 50 LIMIT 3")
        .await;
    assert!(plan.contains("LIMIT 3"), "{plan}");
    // Float comparisons with a literal of the column's type go too.
    let plan = f
        .explain("SELECT id FROM pg.$S.items WHERE price > 10")
        .await;
    assert!(plan.contains("(\"items\".\"price\" > 10.0)"), "{plan}");
    assert_eq!(
        f.rows("SELECT count(*) FROM pg.$S.items WHERE price > 10")
            .await,
        ["94"]
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_with_files_and_odd_names() {
    let f = Fixture::new(
        "CREATE TABLE \"City Names\" (\"ID\" int, \"select\" text);
         INSERT INTO \"City Names\" VALUES (1, 'Lisboa'), (2, 'Porto'), (3, 'Madrid');",
    )
    .await;
    let rows = f
        .rows(
            "SELECT n.\"select\", count(*) AS trips
             FROM pg.$S.\"City Names\" n JOIN 'testdata/trips.csv' t ON t.city_id = n.\"ID\"
             JOIN 'testdata/cities.parquet' c ON c.id = n.\"ID\"
             WHERE c.country = 'PT'
             GROUP BY n.\"select\" ORDER BY 1",
        )
        .await;
    assert_eq!(rows, ["Lisboa|225", "Porto|272"]);
    let tables = f.db.tables().await.unwrap();
    assert!(
        tables.contains(&("pg".into(), f.schema.clone(), "City Names".into())),
        "{tables:?}"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_schema_two_part_names_and_missing_tables() {
    let f = Fixture::new("").await;
    let table = format!("{}_public", f.schema);
    f.client
        .batch_execute(&format!(
            "CREATE TABLE public.{table} (x int); INSERT INTO public.{table} VALUES (7)"
        ))
        .await
        .unwrap();
    assert_eq!(f.rows(&format!("SELECT x FROM pg.{table}")).await, ["7"]);
    assert_eq!(
        f.rows(&format!("SELECT x FROM pg.public.{table}")).await,
        ["7"]
    );
    let err =
        f.db.sql("SELECT * FROM pg.public.no_such_table")
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("no_such_table"), "{err}");
    f.client
        .batch_execute(&format!("CREATE TABLE {}.\"Orders\" (id int)", f.schema))
        .await
        .unwrap();
    let err =
        f.db.sql(&format!("SELECT * FROM pg.{}.orders", f.schema))
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("did you mean \"Orders\""), "{err}");
    let err =
        f.db.sql(&format!("SELECT * FROM pg.{}.\"Ordrs\"", f.schema))
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("did you mean \"Orders\""), "{err}");
    f.client
        .batch_execute(&format!("DROP TABLE public.{table}"))
        .await
        .unwrap();
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_name_the_source_and_hide_the_password() {
    let db = common::session().await;
    let started = std::time::Instant::now();
    let err = db
        .attach(
            "postgres://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2",
            "nowhere",
            false,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("nowhere"), "{err}");
    assert!(
        err.contains("postgres://postgres:***@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let bad_db = url().rsplit_once('/').unwrap().0.to_string() + "/no_such_database_moltres";
    let err = db
        .attach(&bad_db, "nodb", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no_such_database_moltres") && err.contains("3D000"),
        "{err}"
    );

    let err = db
        .attach(&format!("{}?sslmode=verify-ca", url()), "tls", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sslmode=verify-ca is not supported"), "{err}");
    let err = db
        .attach(&format!("{}?nonsense=1", url()), "bad", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown PostgreSQL URL parameter 'nonsense'"),
        "{err}"
    );
    assert!(
        db.sources().is_empty(),
        "failed attaches leave nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_result_cancels_the_remote_query() {
    let f = Fixture::new(
        // A nested loop streams its rows (a single generate_series would be
        // materialised before the first row).
        "CREATE VIEW endless AS SELECT a * 100000 + b AS n, md5(b::text) AS h \
           FROM generate_series(1, 100000) a, generate_series(1, 100000) b;",
    )
    .await;
    // The text filter is not pushed, so neither is the LIMIT: PostgreSQL starts
    // the whole scan, and Moltres must stop it once five rows are found.
    let started = std::time::Instant::now();
    let rows = f
        .rows("SELECT n FROM pg.$S.endless WHERE h <> 'x' LIMIT 5")
        .await;
    assert_eq!(rows.len(), 5);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    let mut still_running = 1;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        still_running = f
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%endless%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if still_running == 0 {
            break;
        }
    }
    assert_eq!(still_running, 0, "the remote query was not cancelled");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sql_passthrough() {
    let f = Fixture::new(
        "CREATE TABLE notes (id int, body text, addr inet);
         INSERT INTO notes VALUES (1, 'one', '10.0.0.1'), (2, 'two', NULL);",
    )
    .await;
    let rows = f
        .rows(&format!(
            "SELECT * FROM postgres_query('pg', 'SELECT count(*)::int AS n, string_agg(body, ''+'' ORDER BY id) AS bodies FROM {}.notes')",
            f.schema
        ))
        .await;
    assert_eq!(rows, ["2|one+two"]);

    let err =
        f.db.sql(&format!(
            "SELECT * FROM postgres_query('pg', 'SELECT addr FROM {}.notes')",
            f.schema
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column 'addr'") && err.contains("addr::text"),
        "{err}"
    );
    let err =
        f.db.sql("SELECT * FROM postgres_query('nope', 'SELECT 1')")
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("no source named 'nope'"), "{err}");
    let err =
        f.db.sql("SELECT * FROM postgres_query('pg', 'SELEC 1')")
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("source 'pg'") && err.contains("42601") && err.contains("SELEC 1"),
        "{err}"
    );

    // DDL through the library; the cached definition is refreshed.
    assert_eq!(f.rows("SELECT count(*) FROM pg.$S.notes").await, ["2"]);
    let pg = f.db.source("pg").unwrap();
    pg.execute(&format!(
        "ALTER TABLE {}.notes ADD COLUMN stars int DEFAULT 5",
        f.schema
    ))
    .await
    .unwrap();
    assert_eq!(
        pg.execute(&format!(
            "UPDATE {}.notes SET stars = 3 WHERE id = 2",
            f.schema
        ))
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        f.rows("SELECT id, stars FROM pg.$S.notes ORDER BY id")
            .await,
        ["1|5", "2|3"]
    );
    let batches = pg
        .query("SELECT 40 + 2 AS answer")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(common::rows(&batches), [["42".to_string()]]);

    f.db.detach("pg").unwrap();
    f.db.attach(&url(), "pg", true).await.unwrap();
    let err =
        f.db.source("pg")
            .unwrap()
            .execute("DROP TABLE x")
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("READ_ONLY"), "{err}");
    f.finish().await;
}

/// Every predicate the PostgreSQL policy pushes, over tricky values: the rows
/// PostgreSQL returns must be the rows DataFusion keeps from a local copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_pushed_predicates_match_local_evaluation() {
    let f = Fixture::new(
        "CREATE TABLE t (id int PRIMARY KEY, a smallint, b integer, c bigint, flag boolean, s text,
                         sc text COLLATE \"C\", vc varchar(10) COLLATE \"C\", ch char(3) COLLATE \"C\",
                         f8 double precision, f4 real, d date);
         INSERT INTO t VALUES
           (1, -32768, -2147483648, -9223372036854775808, true, 'A', 'A', 'A', 'A', 'NaN', 'NaN', '0001-01-01'),
           (2, 32767, 2147483647, 9223372036854775807, false, 'a', 'a', 'a', 'a', '-0', '-0', '9999-12-31'),
           (3, 0, 0, 0, NULL, '', '', '', '', 0, 0, '2026-03-29'),
           (4, -1, -1, -1, true, 'a ', 'a ', 'a ', 'a ', 'Infinity', 'Infinity', '2000-01-01'),
           (5, 1, 1, 1, false, NULL, NULL, NULL, NULL, '-Infinity', '-Infinity', '1999-12-31'),
           (6, NULL, NULL, NULL, NULL, 'é', 'é', 'é', 'é', NULL, NULL, NULL),
           (7, 2, 3, 2, true, 'B', 'it''s', 'a\\b', 'B', 1.5, 1.5, '2026-03-30'),
           (8, 3, 2, 3, false, 'b', 'e\u{301}', 'Z', 'b', 1e-300, 0.1, '1970-01-01');",
    )
    .await;
    f.copy_locally("t", "local_t").await;
    let predicates = [
        "a = 1",
        "a <> 1",
        "a < -1",
        "a <= 0",
        "b > 0",
        "b >= 2147483647",
        "c > 9223372036854775806",
        "c < -9223372036854775807",
        "a = b",
        "a < c",
        "b <> c",
        "a IN (1, 2, 3)",
        "a IN (1, NULL)",
        "a NOT IN (1, NULL)",
        "a NOT IN (1, 2)",
        "b BETWEEN -1 AND 2",
        "b NOT BETWEEN -1 AND 2",
        "c BETWEEN 2 AND 1",
        "NOT (a = 1)",
        "NOT (a > 0 OR b < 0)",
        "a IS NULL",
        "b IS NOT NULL",
        "flag",
        "NOT flag",
        "flag AND a > 0",
        "flag OR a IS NULL",
        "(a > 0 AND b > 0) OR c < 0",
        "flag IS NULL",
        "a = NULL",
        "a > 40000",
        "a = 1.0",
        "s = 'a'",
        "sc = 'a'",
        "sc <> 'a'",
        "sc < 'b'",
        "sc >= 'B'",
        "sc > 'a '",
        "sc <= ''",
        "sc = ''",
        "sc IN ('a', 'é', 'it''s')",
        "sc NOT IN ('a', '')",
        "sc = 'é'",
        "sc > 'e'",
        "sc = 'A' OR sc = 'a'",
        "vc = 'a\\b'",
        "vc < 'a'",
        "vc BETWEEN 'a' AND 'b'",
        "ch = 'a'",
        "ch < 'b'",
        "sc = vc",
        "sc LIKE 'a%'",
        "sc LIKE '_'",
        "sc NOT LIKE '%s'",
        "sc LIKE 'a_'",
        "sc LIKE ''",
        "sc LIKE '%'",
        "sc LIKE 'é'",
        "sc LIKE '_%'",
        "vc LIKE 'a\\\\%'",
        "sc ILIKE 'A%'",
        "ch LIKE 'a%'",
        "f8 = 0",
        "f8 = -0.0",
        "f8 < 0",
        "f8 <= 0",
        "f8 > 1",
        "f8 >= 1e308",
        "f8 <> 1.5",
        "f8 > 1e-301",
        "f8 = CAST('NaN' AS DOUBLE)",
        "f8 > CAST('Infinity' AS DOUBLE)",
        "f8 IN (0, 1.5)",
        "f4 > 0.1",
        "f4 = 1.5",
        "f4 < f8",
        "d = DATE '2026-03-29'",
        "d < DATE '2000-01-01'",
        "d >= DATE '1970-01-01'",
        "d > '2026-03-29'",
        "d <> DATE '0001-01-01'",
        "d BETWEEN DATE '1999-12-31' AND DATE '2000-01-01'",
        "d IN (DATE '9999-12-31', DATE '1970-01-01')",
    ];
    let mut pushed = 0;
    for predicate in predicates {
        let remote_sql = format!(
            "SELECT id FROM pg.{}.t WHERE {predicate} ORDER BY id",
            f.schema
        );
        let local_sql = format!("SELECT id FROM local_t WHERE {predicate} ORDER BY id");
        let remote = query(&f.db, &remote_sql).await;
        let local = query(&f.db, &local_sql).await;
        assert_eq!(
            remote, local,
            "{predicate}: PostgreSQL and DataFusion disagree"
        );
        let plan = f
            .explain(&remote_sql.replace(&format!("pg.{}", f.schema), "pg.$S"))
            .await;
        if plan.contains(" WHERE ") {
            pushed += 1;
        }
    }
    // Most of these are pushed; the text, float and out-of-range ones stay local.
    assert!(pushed >= 60, "only {pushed} predicates were pushed");
    f.finish().await;
}

/// A filter handed to the scan that the policy does not push is applied
/// locally, never dropped (DataFusion can rewrite a filter after accepting it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_apply_filters_they_cannot_push() {
    use datafusion::logical_expr::{col, lit};
    use datafusion::physical_plan::collect;
    let f = Fixture::new(
        "CREATE TABLE t (id int, s text);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'a'), (4, NULL), (5, 'a');",
    )
    .await;
    let provider =
        f.db.context()
            .table_provider(format!("pg.{}.t", f.schema).as_str())
            .await
            .unwrap();
    let state = f.db.context().state();
    // Only `id` is projected; the filter needs `s`; the LIMIT must wait for it.
    let plan = provider
        .scan(&state, Some(&vec![0]), &[col("s").lt(lit("b"))], Some(2))
        .await
        .unwrap();
    let batches = collect(plan, f.db.context().task_ctx()).await.unwrap();
    assert_eq!(batches[0].schema().fields().len(), 1);
    let mut ids: Vec<String> = common::rows(&batches)
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "3", "5"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_and_a_connection_killed_mid_query() {
    let f = Fixture::new(
        "CREATE VIEW slow AS SELECT g AS n, pg_sleep(0.05)::text AS z FROM generate_series(1, 100000) g;
         CREATE TABLE small (x int); INSERT INTO small VALUES (1), (2);",
    )
    .await;
    f.db.attach(&format!("{}?statement_timeout=0.5", url()), "pgt", false)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err =
        f.db.sql(&format!("SELECT count(*) FROM pgt.{}.slow", f.schema))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("57014") && err.contains("pgt"), "{err}");
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );

    // The server ends the connection while rows are streaming: an error, not a hang.
    let db = f.db.clone();
    let sql = format!("SELECT n FROM pg.{}.slow", f.schema);
    let reading = tokio::spawn(async move { db.sql(&sql).await.unwrap().collect().await });
    let mut killed = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        killed = f
            .client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE query LIKE '%slow%' AND state = 'active' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if killed > 0 {
            break;
        }
    }
    assert!(killed > 0, "the query never showed up in pg_stat_activity");
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), reading)
        .await
        .expect("the query hung after its connection was killed")
        .unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("source 'pg'"), "{err}");
    // The pool replaces the dead connection.
    assert_eq!(f.rows("SELECT sum(x) FROM pg.$S.small").await, ["3"]);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes() {
    let db = common::session().await;
    let ssl = "SELECT * FROM postgres_query('{alias}', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')";
    db.attach(&format!("{}?sslmode=require", url()), "tls", false)
        .await
        .unwrap();
    assert_eq!(query(&db, &ssl.replace("{alias}", "tls")).await, [["true"]]);
    db.attach(&format!("{}?sslmode=disable", url()), "plain", false)
        .await
        .unwrap();
    assert_eq!(
        query(&db, &ssl.replace("{alias}", "plain")).await,
        [["false"]]
    );
    // The server's certificate (self-signed here) does not pass verification.
    let err = db
        .attach(
            &format!("{}?sslmode=verify-full&connect_timeout=5", url()),
            "strict",
            false,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("strict") && err.contains("TLS"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_lifetime_replaces_connections() {
    let db = common::session().await;
    db.attach(&format!("{}?pool_max_size=1", url()), "kept", false)
        .await
        .unwrap();
    db.attach(
        &format!("{}?pool_max_size=1&pool_max_lifetime=0.3", url()),
        "aged",
        false,
    )
    .await
    .unwrap();
    let pid = |alias: &str| {
        format!("SELECT * FROM postgres_query('{alias}', 'SELECT pg_backend_pid() AS pid')")
    };
    let first_kept = query(&db, &pid("kept")).await;
    let first_aged = query(&db, &pid("aged")).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        query(&db, &pid("kept")).await,
        first_kept,
        "a pooled connection is reused"
    );
    assert_ne!(
        query(&db, &pid("aged")).await,
        first_aged,
        "an expired connection is replaced"
    );
    let err = db
        .attach(&format!("{}?pool_idle_timeout=soon", url()), "bad", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pool_idle_timeout must be a positive number of seconds"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_cached_until_refresh() {
    let f = Fixture::new("CREATE TABLE t (a int); INSERT INTO t VALUES (1);").await;
    assert_eq!(f.rows("SELECT * FROM pg.$S.t").await, ["1"]);
    f.client
        .batch_execute(&format!(
            "ALTER TABLE {s}.t ADD COLUMN b int DEFAULT 2; CREATE TABLE {s}.u (c int)",
            s = f.schema
        ))
        .await
        .unwrap();
    assert_eq!(
        f.rows("SELECT * FROM pg.$S.t").await,
        ["1"],
        "cached definition"
    );
    f.rows("REFRESH SOURCE pg").await;
    assert_eq!(f.rows("SELECT * FROM pg.$S.t").await, ["1|2"]);
    assert_eq!(f.rows("SELECT count(*) FROM pg.$S.u").await, ["0"]);
    f.db.attach("testdata/", "files", true).await.unwrap();
    let err =
        f.db.sql("REFRESH SOURCE files")
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("DETACH and ATTACH"), "{err}");
    f.finish().await;
}

/// ORDER BY + LIMIT goes to PostgreSQL with explicit NULLS FIRST/LAST when
/// every key orders the same in both; answers match a local copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_pushdown_matches_local() {
    let f = Fixture::new(
        "CREATE TABLE t (id int, v int, s text COLLATE \"C\", b boolean, f float8);
         INSERT INTO t VALUES (1, 5, 'b', true, 1), (2, NULL, 'a', NULL, 2), (3, 7, NULL, false, 3),
           (4, 1, 'c', true, NULL), (5, 7, 'a', false, -0.0), (6, NULL, 'B', true, 0), (7, -3, '', NULL, 'NaN');",
    )
    .await;
    f.copy_locally("t", "local_t").await;
    let orders = [
        ("v, id", true),
        ("v DESC, id", true),
        ("v NULLS FIRST, id", true),
        ("v DESC NULLS LAST, id DESC", true),
        ("s, id", true),
        ("s DESC NULLS LAST, id", true),
        ("b, id", true),
        ("b DESC NULLS FIRST, id", true),
        ("f, id", false),
    ];
    for (order, pushed) in orders {
        for limit in [1, 3, 10] {
            let remote = format!(
                "SELECT id FROM pg.{}.t ORDER BY {order} LIMIT {limit}",
                f.schema
            );
            let local = format!("SELECT id FROM local_t ORDER BY {order} LIMIT {limit}");
            assert_eq!(
                query(&f.db, &remote).await,
                query(&f.db, &local).await,
                "ORDER BY {order} LIMIT {limit}"
            );
            let plan = f.explain(&remote).await;
            assert_eq!(
                plan.contains(&format!("LIMIT {limit}")),
                pushed,
                "{order}: {plan}"
            );
        }
    }
    let plan = f
        .explain(&format!(
            "SELECT id FROM pg.{}.t ORDER BY v DESC LIMIT 2",
            f.schema
        ))
        .await;
    assert!(
        plan.contains("ORDER BY \"t\".\"v\" DESC NULLS FIRST LIMIT 2"),
        "{plan}"
    );
    f.finish().await;
}

/// Pool and connection settings also come from the config file's
/// `[sources.NAME]` keys; a bad one stops the session from starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_settings_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moltres.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.pg]\nurl = '{}'\npool_max_size = 2\nstatement_timeout = 5\nsslmode = 'require'\n",
            url()
        ),
    )
    .unwrap();
    let db = Moltres::builder()
        .without_env()
        .config_file(&config)
        .build()
        .await
        .unwrap();
    let rows = query(
        &db,
        "SELECT * FROM postgres_query('pg', 'SELECT current_setting(''statement_timeout'') AS t, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')",
    )
    .await;
    assert_eq!(rows, [["5s", "true"]]);

    std::fs::write(
        &config,
        format!("[sources.pg]\nurl = '{}'\npool_max_size = 0\n", url()),
    )
    .unwrap();
    let err = Moltres::builder()
        .without_env()
        .config_file(&config)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pool_max_size") && err.contains("as pg"),
        "{err}"
    );
}

/// Joins, aggregates, DISTINCT and top-N within PostgreSQL run there as one
/// query when every expression is exact, and give the same rows as the same
/// query over local copies; the others run locally and give them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_sub_plans_match_local() {
    let f = Fixture::new(
        "CREATE TABLE c (id int PRIMARY KEY, name text COLLATE \"C\", region text COLLATE \"C\",
                         score float8, born date, label text);
         INSERT INTO c VALUES (1, 'Ann', 'north', 1.5, '2000-01-01', 'x'),
           (2, 'bob', 'south', NULL, NULL, 'X'), (3, 'Ann ', 'North', -0.0, '1999-12-31', 'x '),
           (4, '', 'north', 'NaN', '2000-01-01', ''), (5, NULL, NULL, 0, NULL, NULL),
           (6, 'Émile', 'south', 2, '2024-02-29', 'é');
         CREATE TABLE o (id int PRIMARY KEY, cid int, qty int, big bigint, amount numeric(12,2),
                         tag text COLLATE \"C\", ok boolean);
         INSERT INTO o VALUES (10, 1, 5, 9000000000000000000, 10.50, 'a', true),
           (11, 1, NULL, 1, 0.01, 'b', false), (12, 2, 3, NULL, NULL, 'a', NULL),
           (13, 3, 7, 2, 99.99, 'A', true), (14, NULL, 1, 3, 1.00, NULL, true),
           (15, 9, 2, 4, -5.25, '', false), (16, 4, 2147483647, 5, 1e9, 'a', true),
           (17, 4, 2147483647, 6, 0, 'Ann', true);",
    )
    .await;
    f.copy_locally("c", "local_c").await;
    f.copy_locally("o", "local_o").await;
    // (query, what the remote SQL shows when the sub-plan is federated; None
    // when it must not be). `{c}` and `{o}` are the tables.
    let cases: &[(&str, Option<&str>)] = &[
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.id = o.cid",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid",
            Some("LEFT OUTER JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c RIGHT JOIN {o} o ON c.id = o.cid",
            Some("RIGHT OUTER JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c FULL JOIN {o} o ON c.id = o.cid",
            Some("FULL JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.id = o.cid AND o.qty > 2",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.name = o.tag",
            Some("JOIN"),
        ),
        // Conditions on the inner side of outer joins filter before joining.
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid AND o.qty > 2",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c RIGHT JOIN {o} o ON c.id = o.cid AND c.id > 2",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid AND c.id > 2",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c FULL JOIN {o} o ON c.id = o.cid AND o.ok",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid WHERE o.id IS NULL",
            Some("JOIN"),
        ),
        // WHERE on outer joins filters after joining (spiceai#12403, #12407).
        (
            "SELECT c.id, o.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid WHERE o.qty > 2",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c FULL JOIN {o} o ON c.id = o.cid WHERE c.region = 'north'",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c FULL JOIN {o} o ON c.id = o.cid WHERE o.id > 12 OR c.id IS NULL",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id, p.id FROM {c} c LEFT JOIN {o} o ON c.id = o.cid \
             FULL JOIN {o} p ON o.tag = p.tag AND p.ok WHERE p.id IS NOT NULL OR c.id > 3",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, x.n FROM {c} c LEFT JOIN (SELECT cid, count(*) AS n FROM {o} WHERE qty > 1 GROUP BY cid) x ON c.id = x.cid",
            Some("JOIN"),
        ),
        (
            "SELECT a.id, b.id FROM {o} a JOIN {o} b ON a.tag = b.tag AND a.id < b.id",
            Some("JOIN"),
        ),
        (
            "SELECT c.name, count(*) FROM {c} c JOIN {o} o ON c.id = o.cid GROUP BY c.name",
            Some("GROUP BY"),
        ),
        (
            "SELECT region, count(*), count(name), min(name), max(o.id), sum(qty), min(born) \
             FROM {c} c LEFT JOIN {o} o ON c.id = o.cid GROUP BY region",
            Some("GROUP BY"),
        ),
        (
            "SELECT tag, sum(amount), count(amount) FROM {o} GROUP BY tag",
            Some("GROUP BY"),
        ),
        // Decimal averages: a sum and a count in PostgreSQL, divided as
        // DataFusion's avg divides (truncated to scale + 4), NULL for none.
        (
            "SELECT tag, avg(amount), count(*) FROM {o} GROUP BY tag",
            Some("GROUP BY"),
        ),
        ("SELECT avg(amount) FROM {o}", Some("count(")),
        ("SELECT avg(amount) FROM {o} WHERE id > 100", Some("count(")),
        // Decimal +, -, * keep every digit in both.
        (
            "SELECT tag, sum(amount * (1 - amount)), sum(amount * amount * amount), \
             avg(amount + CAST(0.005 AS DECIMAL(4,3))), sum(amount - 2) FROM {o} GROUP BY tag",
            Some("GROUP BY"),
        ),
        (
            "SELECT c.id, o.amount * 3, o.amount - o.amount * CAST(0.5 AS DECIMAL(2,1)) \
             FROM {c} c JOIN {o} o ON c.id = o.cid",
            Some("JOIN"),
        ),
        // Semi and anti joins: [NOT] EXISTS in the left side's WHERE, its
        // own filters beside it, the right side's inside.
        (
            "SELECT c.id FROM {c} c WHERE EXISTS (SELECT 1 FROM {o} o WHERE o.cid = c.id AND o.qty > 2)",
            Some("EXISTS"),
        ),
        (
            "SELECT c.id FROM {c} c WHERE NOT EXISTS (SELECT 1 FROM {o} o WHERE o.cid = c.id)",
            Some("NOT EXISTS"),
        ),
        (
            "SELECT id FROM {c} WHERE region = 'north' AND id IN (SELECT cid FROM {o} WHERE ok)",
            Some("EXISTS"),
        ),
        (
            "SELECT region, count(*) FROM {c} c WHERE born > DATE '1999-06-01' \
             AND EXISTS (SELECT 1 FROM {o} o WHERE o.cid = c.id AND o.qty > c.id) GROUP BY region",
            Some("EXISTS"),
        ),
        (
            "SELECT c.id FROM {c} c WHERE c.id < 6 AND NOT EXISTS \
             (SELECT 1 FROM {o} o WHERE o.cid = c.id AND o.tag = c.name AND o.qty < 100)",
            Some("NOT EXISTS"),
        ),
        // Both over one scan, with its own filter (TPC-H Q21's shape).
        (
            "SELECT c.id FROM {c} c WHERE c.id < 6 \
             AND EXISTS (SELECT 1 FROM {o} o WHERE o.cid = c.id AND o.qty > 2) \
             AND NOT EXISTS (SELECT 1 FROM {o} o2 WHERE o2.cid = c.id AND o2.tag <> 'a')",
            Some("NOT EXISTS"),
        ),
        (
            "SELECT c.region, count(*) FROM {c} c JOIN {o} o1 ON o1.cid = c.id \
             WHERE o1.ok AND EXISTS (SELECT 1 FROM {o} o2 WHERE o2.cid = o1.cid AND o2.id <> o1.id) \
             AND NOT EXISTS (SELECT 1 FROM {o} o3 WHERE o3.cid = o1.cid AND o3.id <> o1.id \
                             AND o3.qty > o1.qty) GROUP BY c.region",
            Some("NOT EXISTS"),
        ),
        // NOT IN is NULL-aware (a NULL in the list empties the result).
        (
            "SELECT id FROM {c} WHERE id NOT IN (SELECT cid FROM {o})",
            None,
        ),
        // A semi join below an outer join stays apart from it.
        (
            "SELECT c.id, s.id FROM {c} c LEFT JOIN (SELECT id, cid FROM {o} o2 WHERE EXISTS \
             (SELECT 1 FROM {o} o3 WHERE o3.cid = o2.cid AND o3.id <> o2.id)) s ON s.cid = c.id",
            None,
        ),
        ("SELECT ok, count(*) FROM {o} GROUP BY ok", Some("GROUP BY")),
        (
            "SELECT cid, count(*) FROM {o} GROUP BY cid HAVING count(*) > 1",
            Some("GROUP BY"),
        ),
        (
            "SELECT tag, count(*) FROM {o} WHERE ok GROUP BY tag",
            Some("GROUP BY"),
        ),
        ("SELECT DISTINCT tag FROM {o}", Some("GROUP BY")),
        ("SELECT DISTINCT region, born FROM {c}", Some("GROUP BY")),
        ("SELECT count(DISTINCT tag) FROM {o}", Some("GROUP BY")),
        ("SELECT count(*) FROM {c}", Some("count(")),
        // label has the database's default collation: deterministic, so its
        // values group exactly as in DataFusion.
        (
            "SELECT label, count(*) FROM {c} GROUP BY label",
            Some("GROUP BY"),
        ),
        ("SELECT DISTINCT label FROM {c}", Some("GROUP BY")),
        (
            "SELECT a.id, b.id FROM {c} a JOIN {c} b ON a.label = b.label AND a.id < b.id",
            Some("JOIN"),
        ),
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.id = o.cid ORDER BY o.id DESC LIMIT 3",
            Some("LIMIT 3"),
        ),
        (
            "SELECT region, count(*) AS n FROM {c} GROUP BY region ORDER BY n DESC, region LIMIT 2",
            Some("LIMIT 2"),
        ),
        // Not exact in PostgreSQL: computed locally over scanned rows.
        ("SELECT sum(big) FROM {o}", None),
        ("SELECT avg(qty) FROM {o}", None),
        ("SELECT score, count(*) FROM {c} GROUP BY score", None),
        // Text under another collation than the join partner's: PostgreSQL
        // would refuse to compare the two.
        (
            "SELECT c.id, o.id FROM {c} c JOIN {o} o ON c.label = o.tag",
            None,
        ),
        ("SELECT c.id FROM {c} c JOIN {o} o ON c.score = o.qty", None),
        (
            "SELECT c.id FROM {c} c WHERE c.id IN (SELECT cid FROM {o})",
            None,
        ),
        ("SELECT max(score) FROM {c}", None),
        // Division rounds to other scales in each.
        ("SELECT tag, sum(amount / 3) FROM {o} GROUP BY tag", None),
    ];
    let (c, o) = (format!("pg.{}.c", f.schema), format!("pg.{}.o", f.schema));
    common::check_federation(
        &f.db,
        cases,
        &[("{c}", &c), ("{o}", &o)],
        &[("{c}", "local_c"), ("{o}", "local_o")],
    )
    .await;
    f.finish().await;
}

/// Arithmetic, functions and timestamps: each predicate is evaluated by
/// PostgreSQL and by DataFusion over a local copy, with the same rows; the
/// ones PostgreSQL computes differently (overflow, case mapping, float
/// range errors, empty search strings) are pinned as local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_expressions_match_local_evaluation() {
    let f = Fixture::new(
        "CREATE TABLE e (id int PRIMARY KEY, i int, b bigint, s text COLLATE \"C\", t text,
                         f float8, ts timestamp, tz timestamptz);
         SET TIME ZONE 'Europe/Lisbon';
         INSERT INTO e VALUES
           (1, 7, 9223372036854775807, 'abc', 'Abc', 2.5, '2026-03-29 00:59:59.999999', '2026-03-29 00:59:59.999999+00'),
           (2, -7, -9223372036854775808, 'é', 'É', -2.5, '2026-03-29 01:00:00', '2026-03-29 01:00:00+00'),
           (3, 2147483647, 0, '', '', -0.0, '2026-03-29 01:30:00', '2026-03-29 02:30:00'),
           (4, -2147483648, -1, ' a ', 'a', 'NaN', '2026-10-25 01:30:00', '2026-10-25 01:30:00+01'),
           (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (6, 0, 5, 'it''s', 'x', 'Infinity', '1970-01-01 00:00:00', '1969-12-31 23:59:59.999999+00'),
           (7, 13, -13, 'a\\b', 'ab', 1e308, '1900-01-01 00:00:00', '2026-10-25 01:30:00+00'),
           (8, -13, 13, 'e\u{301}', 'ß', 1e-300, '2262-04-11 23:47:16', '2000-02-29 12:00:00+14');
         CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         ALTER TABLE e ADD COLUMN n text COLLATE ci;
         ALTER TABLE e ADD COLUMN d numeric(12,2);
         UPDATE e SET n = t, d = i / 100.0;",
    )
    .await;
    f.copy_locally("e", "local_e").await;
    let cases: &[(&str, bool)] = &[
        ("i / 2 = 3", true),
        ("i / 2 = -3", true),
        ("i % 3 = 1", true),
        ("i % 3 = -1", true),
        ("b / 10 < 0", true),
        ("b % 7 = 0", true),
        ("i / 4 >= b / 4", true),
        ("i + 1 > 0", false),
        ("i * 2 > 0", false),
        ("b - 1 < 0", false),
        ("length(s) = 1", true),
        ("char_length(s) = 2", true),
        ("octet_length(s) = 2", true),
        ("character_length(t) > 2", true),
        ("s || 'x' = 'éx'", true),
        ("s || s > 'b'", true),
        ("s || t = 'abcAbc'", false),
        ("strpos(s, 'b') = 2", true),
        ("strpos(s, 'é') = 1", true),
        ("strpos(s, '') = 1", true),
        ("starts_with(s, 'a')", true),
        // DataFusion rewrites it as LIKE, which needs deterministic text
        // (t has the database's default collation, which is).
        ("starts_with(t, 'a')", true),
        ("NOT starts_with(s, '')", false),
        ("trim(s) = 'a'", true),
        ("ltrim(s) = 'a '", true),
        ("rtrim(s) = ' a'", true),
        ("replace(s, 'b', 'X') = 'aXc'", true),
        ("replace(s, 'é', '') = ''", true),
        ("replace(s, '', 'X') = 'abc'", false),
        ("lower(t) = 'é'", false),
        ("upper(s) = 'É'", false),
        // Deterministic (non-C) collation: equality and LIKE are bytewise,
        // order is the locale's.
        ("t = 'a'", true),
        ("t <> 'ß'", true),
        ("t IN ('a', 'É')", true),
        ("t LIKE 'A%'", true),
        ("t NOT LIKE '%b%'", true),
        ("t < 'b'", false),
        // A nondeterministic (case-insensitive) collation: 'Abc' = 'abc'
        // there, so not even equality is pushed.
        ("n = 'abc'", false),
        ("n IN ('abc', 'x')", false),
        ("n LIKE 'a%'", false),
        // Issue 16, part 7: substring searches fail in PostgreSQL under a
        // nondeterministic collation; they are computed here.
        ("strpos(n, 'a') = 1", false),
        ("replace(n, 'a', 'b') IS NULL", false),
        ("starts_with(n, 'a')", false),
        ("strpos(s, 'b') = 2", true),
        ("abs(f) = 2.5", true),
        ("ceil(f) = 3", true),
        ("floor(f) < 0", true),
        ("floor(f) = 0", true),
        ("abs(f) > 1e307", true),
        ("f * 2 > 1e307", false),
        ("f / 0 > 0", false),
        ("ts = TIMESTAMP '2026-03-29 01:00:00'", true),
        ("ts < TIMESTAMP '2026-03-29 01:00:00'", true),
        ("ts >= TIMESTAMP '2026-03-29 00:59:59.999999'", true),
        ("ts > '2026-10-25 01:00:00'", true),
        ("ts <> TIMESTAMP '1970-01-01 00:00:00'", true),
        ("tz = TIMESTAMP '2026-03-29 01:30:00'", true),
        ("tz < TIMESTAMP '2026-03-29 01:00:00'", true),
        ("tz >= '2026-10-25T00:30:00Z'", true),
        ("tz = '2026-10-25T01:30:00+01:00'", true),
        (
            "tz > CAST('2026-03-29T02:30:00+01:00' AS TIMESTAMP WITH TIME ZONE)",
            true,
        ),
        ("tz < TIMESTAMP '1970-01-01 00:00:00'", true),
        ("tz = '2000-02-28T22:00:00Z'", true),
        (
            "date_trunc('day', ts) = TIMESTAMP '2026-03-29 00:00:00'",
            true,
        ),
        (
            "date_trunc('hour', ts) = TIMESTAMP '2026-03-29 01:00:00'",
            true,
        ),
        ("date_trunc('month', tz) = '2026-10-01T00:00:00Z'", true),
        ("date_trunc('year', tz) < '1970-01-01T00:00:00Z'", true),
        (
            "date_trunc('second', ts) = TIMESTAMP '2026-03-29 00:59:59'",
            true,
        ),
        ("date_trunc('minute', tz) = '2000-02-28T22:00:00Z'", true),
        (
            "date_trunc('week', ts) = TIMESTAMP '2026-03-23 00:00:00'",
            false,
        ),
        // numeric(p,s): exact decimals in both; comparisons, IN, BETWEEN,
        // widening casts, and +, -, * that keep every digit and cannot pass
        // 38 digits (where DataFusion's would wrap around) push; division
        // (whose scales differ) does not.
        ("d < 0.10", true),
        ("d = 0.07", true),
        ("d <> -0.07", true),
        ("d >= 21474836.47", true),
        ("d BETWEEN -0.5 AND 0.5", true),
        ("d IN (0.13, -0.13, 99.99)", true),
        ("d < 1", true),
        ("CAST(d AS DECIMAL(20,4)) = 0.0700", true),
        ("d * 100 = 7", true),
        ("d + 1 > 1", true),
        ("d - d * d < 0", true),
        ("d * d * d > 1000", true),
        ("d / 2 > 0", false),
    ];
    common::check_predicates(&f.db, cases, &format!("pg.{}.e", f.schema), "local_e").await;
    f.finish().await;
}

/// A TCP relay to the PostgreSQL server that can go down and come back on
/// the same port, as a server restart or a network outage looks to a client.
struct Relay {
    port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16) -> Self {
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accepted = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            let _keep = DropAll(accepted.clone());
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accepted.lock().unwrap().push(pipe);
            }
        });
        Relay {
            port,
            tasks: vec![accept],
        }
    }

    /// Closes the port and every connection through it.
    async fn stop(self) {
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Aborts the relayed connections when the accept loop ends.
struct DropAll(std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl Drop for DropAll {
    fn drop(&mut self) {
        for task in self.0.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// The server goes away mid-query: the query fails naming the source (no
/// hang); while it is away, queries fail within the connect timeout; once it
/// is back, the same pool serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outage_mid_query_and_recovery() {
    let f = Fixture::new(
        "CREATE VIEW slow AS SELECT g AS n, pg_sleep(0.01)::text AS z FROM generate_series(1, 100000) g;
         CREATE TABLE small (x int); INSERT INTO small VALUES (1), (2);",
    )
    .await;
    let relay = Relay::start(0).await;
    let port = relay.port;
    f.db.attach(
        &format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=2&pool_timeout=5"),
        "down",
        false,
    )
    .await
    .expect("attach through the relay");
    let small = format!("SELECT sum(x) FROM down.{}.small", f.schema);
    assert_eq!(query(&f.db, &small).await, [["3"]]);

    // Rows are streaming when the server goes away.
    let db = f.db.clone();
    let slow = format!("SELECT n FROM down.{}.slow", f.schema);
    let reading = tokio::spawn(async move { db.sql(&slow).await.unwrap().collect().await });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    relay.stop().await;
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), reading)
        .await
        .expect("the query hung after the server went away")
        .unwrap();
    let err = result.expect_err("the query cannot succeed").to_string();
    assert!(err.contains("source 'down'"), "{err}");

    // While it is away: a clear error, within the connect and pool timeouts.
    let started = std::time::Instant::now();
    let err = match f.db.sql(&small).await {
        Ok(df) => df.collect().await.map(|_| ()).unwrap_err(),
        Err(e) => e.into(),
    }
    .to_string();
    assert!(err.contains("source 'down'"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    // Back on the same port: the pool connects again.
    let relay = Relay::start(port).await;
    assert_eq!(query(&f.db, &small).await, [["3"]]);
    relay.stop().await;
    f.finish().await;
}

/// Run-time filters: a hash join hands the keys of its (small) build side
/// to the remote scan on its probe side, which adds them to its query; the
/// rows are those of the same join over local copies. A semi join against
/// an aggregated subquery is applied below the inner joins, where its key
/// is read, and the remote tables report the row estimates ANALYZE keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_keys_reach_the_remote_query_at_run_time() {
    let f = Fixture::new(
        "CREATE TABLE big (id int PRIMARY KEY, k int, v text);
         INSERT INTO big SELECT g, g % 500, 'v' || g FROM generate_series(1, 20000) g;
         INSERT INTO big VALUES (20001, NULL, 'null key');
         CREATE TABLE orders (o int PRIMARY KEY, cust int);
         INSERT INTO orders SELECT g, g % 50 FROM generate_series(1, 5000) g;
         ANALYZE big; ANALYZE orders;",
    )
    .await;
    f.copy_locally("big", "local_big").await;
    f.copy_locally("orders", "local_orders").await;
    f.rows("CREATE TABLE keys (k int) AS VALUES (3), (7), (NULL), (7), (499)")
        .await;
    let join = "SELECT b.id, b.k, b.v FROM keys JOIN {big} b ON b.k = keys.k ORDER BY b.id";
    let remote = f.rows(&join.replace("{big}", "pg.$S.big")).await;
    let local = f.rows(&join.replace("{big}", "local_big")).await;
    assert_eq!(remote.len(), 4 * 40, "40 rows per key, key 7 twice");
    assert_eq!(remote, local);
    // The statement sent, as EXPLAIN ANALYZE shows it after the run.
    let sent = f
        .analyzed_scan(&join.replace("{big}", "pg.$S.big"), "sent=")
        .await;
    assert!(
        sent.contains(" IN (3, 7, 499)"),
        "the build side's keys, once each, in the remote query:\n{sent}"
    );
    assert!(
        sent.contains("output_rows=120"),
        "only the matching rows crossed:\n{sent}"
    );

    // Keys of a wider type (`bigint` here, SQLite's and CSV's integers
    // elsewhere) meet the `int` column through a cast; they still reach
    // the query, in the column's type (TPC-H Q17 over the split: 6 M rows
    // crossed instead of 6 K before).
    f.rows("CREATE TABLE wide_keys (k bigint) AS VALUES (3), (7), (NULL), (499), (5000000000)")
        .await;
    let wide = "SELECT b.id, b.k FROM wide_keys w JOIN {big} b ON b.k = w.k ORDER BY b.id";
    let remote_sql = wide.replace("{big}", "pg.$S.big");
    assert_eq!(
        f.rows(&remote_sql).await,
        f.rows(&wide.replace("{big}", "local_big")).await
    );
    let sent = f.analyzed_scan(&remote_sql, "sent=").await;
    assert!(
        sent.contains(" IN (3, 7, 499)") && sent.contains("output_rows=120"),
        "the wider keys in the remote query:\n{sent}"
    );

    // A join on two keys sends a list per key (TPC-H Q9's partsupp).
    f.rows("CREATE TABLE pairs (k int, id int) AS VALUES (3, 503), (7, 7), (7, 1007), (NULL, 1)")
        .await;
    let two =
        "SELECT b.id, b.v FROM pairs p JOIN {big} b ON b.k = p.k AND b.id = p.id ORDER BY b.id";
    let remote_sql = two.replace("{big}", "pg.$S.big");
    let remote = f.rows(&remote_sql).await;
    assert_eq!(remote, f.rows(&two.replace("{big}", "local_big")).await);
    assert_eq!(remote, ["7|v7", "503|v503", "1007|v1007"]);
    let sent = f.analyzed_scan(&remote_sql, "sent=").await;
    assert!(
        sent.contains(" IN (3, 7)") && sent.contains(" IN (7, 503, 1007)"),
        "a list of each key's values:\n{sent}"
    );
    assert!(
        sent.contains("output_rows=3"),
        "three rows crossed:\n{sent}"
    );

    // A federated aggregate takes the keys too, as an outer WHERE over its
    // result (TPC-H Q17: the average per part of 204 parts, not of all).
    let grouped = "SELECT keys.k, x.n, x.a FROM keys JOIN \
                   (SELECT k, count(*) AS n, avg(CAST(id AS DECIMAL(12,2))) AS a FROM {big} GROUP BY k) x \
                   ON x.k = keys.k ORDER BY keys.k";
    let remote_sql = grouped.replace("{big}", "pg.$S.big");
    let remote = f.rows(&remote_sql).await;
    assert_eq!(remote, f.rows(&grouped.replace("{big}", "local_big")).await);
    assert_eq!(remote.len(), 4, "keys 3, 7 (twice), 499");
    // The aggregate runs in PostgreSQL.
    let sent = f.analyzed_scan(&remote_sql, "GROUP BY").await;
    assert!(
        sent.contains("\"moltres_filtered\"") && sent.contains(" IN (3, 7, 499)"),
        "the keys filter the aggregate's result:\n{sent}"
    );
    assert!(
        sent.contains("output_rows=3"),
        "three groups crossed:\n{sent}"
    );

    // Row estimates from pg_class.reltuples reach DataFusion.
    let plan = f
        .rows("SET datafusion.explain.show_statistics = true")
        .await;
    drop(plan);
    let explained = f.explain("SELECT id, k FROM pg.$S.big").await;
    assert!(
        explained.contains("Rows=Inexact(20001)"),
        "the table's estimate in the plan:\n{explained}"
    );
    // Distinct values from pg_stats (ANALYZE): one per row for the key,
    // 500 for `k`; DataFusion estimates what a semi join keeps from them.
    assert!(
        explained.contains("Null=Inexact(0) Distinct=Inexact(20001))")
            && explained.contains("Null=Inexact(0) Distinct=Inexact(500))"),
        "the columns' distinct values in the plan:\n{explained}"
    );
    // A federated query's estimate follows from its tables': half the rows
    // for a grouping, a fifth for a filter.
    let explained = f
        .explain("SELECT k FROM pg.$S.big GROUP BY k HAVING count(*) > 1")
        .await;
    assert!(
        explained.contains("GROUP BY") && explained.contains("Rows=Inexact(2000)"),
        "the federated query's estimate in the plan:\n{explained}"
    );
    f.rows("SET datafusion.explain.show_statistics = false")
        .await;

    // IN (aggregated subquery): the semi join runs below the inner join,
    // with the same rows as over local copies.
    let semi = "SELECT o.o, b.v FROM {orders} o JOIN {big} b ON b.id = o.o \
                WHERE o.cust IN (SELECT k FROM {big} GROUP BY k HAVING count(*) >= 40 AND k < 10) ORDER BY o.o";
    let remote_sql = semi
        .replace("{orders}", "pg.$S.orders")
        .replace("{big}", "pg.$S.big");
    let remote = f.rows(&remote_sql).await;
    let local = f
        .rows(
            &semi
                .replace("{orders}", "local_orders")
                .replace("{big}", "local_big"),
        )
        .await;
    assert_eq!(remote, local);
    assert_eq!(remote.len(), 1000, "customers 0 to 9 of 50");
    let plan = f.explain(&remote_sql).await;
    let logical: Vec<&str> = plan
        .lines()
        .take_while(|l| !l.starts_with("physical_plan"))
        .collect();
    let semi_at = logical.iter().position(|l| l.contains("LeftSemi Join"));
    let inner_at = logical.iter().position(|l| l.contains("Inner Join"));
    assert!(
        matches!((semi_at, inner_at), (Some(s), Some(i)) if s > i),
        "the semi join should sit below the inner join:\n{plan}"
    );
    f.finish().await;
}

/// A small filtered table listed last is joined first, beside the table
/// its keys read (TPC-H Q21's `nation`): here that puts the two PostgreSQL
/// tables next to each other, so they run as one remote join, and the
/// answer is the one over local copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_filtered_tables_join_first() {
    let f = Fixture::new(
        "CREATE TABLE big (id int PRIMARY KEY, dim int, v int);
         INSERT INTO big SELECT g, g % 20, g FROM generate_series(1, 20000) g;
         CREATE TABLE dim (id int PRIMARY KEY, name text);
         INSERT INTO dim SELECT g, 'd' || g FROM generate_series(0, 19) g;
         ANALYZE big; ANALYZE dim;",
    )
    .await;
    f.copy_locally("big", "local_big").await;
    f.copy_locally("dim", "local_dim").await;
    f.rows("CREATE TABLE facts (big_id int, n int) AS VALUES (1, 10), (3, 30), (20, 200), (40, 400), (21, 210), (NULL, 0)")
        .await;
    let join = "SELECT facts.n, b.v, d.name FROM facts, {big} b, {dim} d \
                WHERE facts.big_id = b.id AND b.dim = d.id AND d.name = 'd1' ORDER BY facts.n";
    let remote_sql = join
        .replace("{big}", "pg.$S.big")
        .replace("{dim}", "pg.$S.dim");
    let remote = f.rows(&remote_sql).await;
    let local = f
        .rows(
            &join
                .replace("{big}", "local_big")
                .replace("{dim}", "local_dim"),
        )
        .await;
    assert_eq!(remote, local);
    assert_eq!(remote, ["10|1|d1", "210|21|d1"]);
    let plan = f.explain(&remote_sql).await;
    let scans = common::remote_scans(&plan);
    assert!(
        matches!(scans.as_slice(), [one] if one.contains("JOIN") && one.contains("'d1'")),
        "dim should join big first, in PostgreSQL:\n{plan}"
    );
    f.finish().await;
}

/// Issue 18, part 2: a file table knows its rows once opened, so a small
/// filtered file joins first too (it was never moved for want of an
/// estimate): its one key reaches the PostgreSQL scan, and 1,000 rows
/// cross instead of 20,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_filtered_files_join_first() {
    let f = Fixture::new(
        "CREATE TABLE big (id int PRIMARY KEY, dim int, v int);
         INSERT INTO big SELECT g, g % 20, g FROM generate_series(1, 20000) g;
         ANALYZE big;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dim = dir.path().join("dim.csv");
    let mut text = String::from("id,name\n");
    for i in 0..20 {
        text.push_str(&format!("{i},d{i}\n"));
    }
    std::fs::write(&dim, text).unwrap();
    f.rows("CREATE TABLE other AS SELECT id FROM pg.$S.big")
        .await;
    let sql = format!(
        "SELECT count(*), sum(b.v) FROM other a, pg.$S.big b, '{}' d \
         WHERE a.id = b.id AND b.dim = d.id AND d.name = 'd1'",
        dim.display()
    );
    assert_eq!(f.rows(&sql).await, ["1000|9991000"]);
    let scan = f.analyzed_scan(&sql, "sent=").await;
    assert!(
        scan.contains("\"big\".\"dim\" IN (1)") && scan.contains("output_rows=1.00 K,"),
        "the file's key should filter the PostgreSQL scan:\n{scan}"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_one_database_join_first() {
    let f = Fixture::new(
        "CREATE TABLE orders (id int PRIMARY KEY, cust int, day int);
         INSERT INTO orders SELECT g, g % 50, g % 7 FROM generate_series(1, 2000) g;
         CREATE TABLE items (order_id int, qty int, price numeric(8,2));
         INSERT INTO items SELECT g % 2000 + 1, g % 9, (g % 13) * 1.25
           FROM generate_series(1, 6000) g;
         INSERT INTO items VALUES (NULL, 5, 1.00);
         CREATE TABLE shipments (order_id int, weight int);
         INSERT INTO shipments SELECT g, g % 4 FROM generate_series(1, 2000, 3) g;
         ANALYZE orders; ANALYZE items; ANALYZE shipments;",
    )
    .await;
    for table in ["orders", "items", "shipments"] {
        f.copy_locally(table, &format!("local_{table}")).await;
    }
    f.rows(
        "CREATE TABLE custs (id int, segment text) AS VALUES \
         (1, 'B'), (2, 'A'), (3, 'B'), (7, 'B'), (49, 'A'), (NULL, 'B')",
    )
    .await;
    let local = |sql: &str| {
        sql.replace("pg.$S.orders", "local_orders")
            .replace("pg.$S.items", "local_items")
            .replace("pg.$S.shipments", "local_shipments")
    };
    let cases = [
        // The local table listed first: orders and items are apart.
        "SELECT o.id, sum(i.qty * i.price), count(*) FROM custs c, pg.$S.orders o, pg.$S.items i \
         WHERE c.segment = 'B' AND c.id = o.cust AND i.order_id = o.id AND o.day < 5 \
         GROUP BY o.id ORDER BY o.id",
        // A condition over all three, and one between the two remote tables
        // besides their key.
        "SELECT o.id, i.qty, c.id FROM custs c, pg.$S.orders o, pg.$S.items i \
         WHERE c.id = o.cust AND i.order_id = o.id AND i.qty > c.id AND i.qty <> o.day \
         ORDER BY 1, 2, 3",
        // Three remote tables around the local one.
        "SELECT o.id, s.weight, sum(i.qty) FROM pg.$S.shipments s, custs c, pg.$S.orders o, pg.$S.items i \
         WHERE c.id = o.cust AND i.order_id = o.id AND s.order_id = o.id \
         GROUP BY o.id, s.weight ORDER BY 1, 2",
        // Subqueries over a remote table, joined in the same query (TPC-H
        // Q21's shape): EXISTS and NOT EXISTS over `items`.
        "SELECT c.segment, count(*) FROM custs c, pg.$S.orders o, pg.$S.items i \
         WHERE c.id = o.cust AND i.order_id = o.id \
         AND EXISTS (SELECT 1 FROM pg.$S.items i2 WHERE i2.order_id = i.order_id AND i2.qty <> i.qty) \
         AND NOT EXISTS (SELECT 1 FROM pg.$S.items i3 WHERE i3.order_id = i.order_id AND i3.qty > i.qty) \
         GROUP BY c.segment ORDER BY 1",
        // Equal to the same local column, so equal to each other (TPC-H Q5's
        // customer and nation through supplier).
        "SELECT o.id, s.weight FROM pg.$S.orders o, custs c, pg.$S.shipments s \
         WHERE o.id = c.id AND c.id = s.order_id ORDER BY 1, 2",
        // The remote tables only meet through the local one: nothing to group.
        "SELECT c.id, count(*) FROM pg.$S.orders o, custs c, pg.$S.orders o2 \
         WHERE o.cust = c.id AND o2.cust = c.id AND o.day = 1 GROUP BY c.id ORDER BY 1",
        // Nothing above reads the joined columns but a count.
        "SELECT count(*) FROM (SELECT c.id, o.id AS oid, i.qty FROM custs c, pg.$S.orders o, \
         pg.$S.items i WHERE c.id = o.cust AND i.order_id = o.id)",
        "SELECT count(*) FROM (SELECT c.id, o.id AS oid, i.qty FROM custs c, pg.$S.orders o, \
         pg.$S.items i WHERE c.id = o.cust AND i.order_id = o.id) t WHERE t.qty > 3",
    ];
    for sql in cases {
        let remote = f.rows(sql).await;
        assert!(!remote.is_empty(), "{sql}");
        assert_eq!(remote, f.rows(&local(sql)).await, "{sql}");
    }
    // orders and items joined in PostgreSQL, as one query.
    for sql in &cases[..5] {
        let plan = f.explain(sql).await;
        let scans = common::remote_scans(&plan);
        assert!(
            matches!(scans.as_slice(), [one] if one.contains("JOIN")),
            "orders and items should be joined in PostgreSQL:\n{plan}"
        );
    }
    let plan = f.explain(cases[3]).await;
    assert!(
        plan.contains("AND NOT EXISTS"),
        "the subqueries should run in PostgreSQL:\n{plan}"
    );
    // Nothing above the federated join reads `items.order_id` (the key it
    // was joined on): it is not sent.
    let plan = f.explain(cases[0]).await;
    let scans = common::remote_scans(&plan);
    assert!(
        scans.len() == 1 && !scans[0].contains("\"order_id\" AS"),
        "the unread key should be left out:\n{plan}"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_subquery_over_its_own_rows_reads_a_window() {
    let f = Fixture::new(
        "CREATE TABLE orders (id int PRIMARY KEY, cust int);
         INSERT INTO orders SELECT g, g % 30 FROM generate_series(1, 600) g;
         CREATE TABLE items (order_id int, qty int);
         INSERT INTO items SELECT g % 600 + 1, (g * 7) % 11 FROM generate_series(1, 3000) g;",
    )
    .await;
    // TPC-H Q15's shape: the rows whose total is the largest (three tie).
    let revenue = "WITH revenue AS (SELECT o.cust AS cust, sum(i.qty) AS total \
                   FROM pg.$S.orders o JOIN pg.$S.items i ON i.order_id = o.id GROUP BY o.cust) ";
    let cases = [
        (
            "SELECT cust, total FROM revenue WHERE total = (SELECT max(total) FROM revenue) \
             ORDER BY cust",
            "SELECT cust, total FROM revenue r JOIN (SELECT max(total) AS m FROM revenue) x \
             ON r.total = x.m ORDER BY cust",
        ),
        // An expression of two aggregates, in a larger predicate.
        (
            "SELECT cust FROM revenue WHERE cust < 20 AND total * 2 > \
             (SELECT min(total) + max(total) FROM revenue) ORDER BY cust",
            "SELECT cust FROM revenue r, (SELECT min(total) + max(total) AS m FROM revenue) x \
             WHERE cust < 20 AND total * 2 > x.m ORDER BY cust",
        ),
        // No rows: the subquery is NULL, the filter keeps nothing.
        (
            "SELECT cust FROM revenue WHERE cust > 100 AND total = \
             (SELECT max(total) FROM revenue WHERE cust > 100)",
            "SELECT cust FROM revenue WHERE cust > 100",
        ),
    ];
    for (query, joined) in cases {
        let sql = format!("{revenue}{query}");
        let rows = f.rows(&sql).await;
        assert_eq!(rows, f.rows(&format!("{revenue}{joined}")).await, "{query}");
        if query.contains("= (SELECT max(total) FROM revenue)") {
            assert_eq!(rows.len(), 3, "ties all pass: {rows:?}");
            let plan = f.explain(&sql).await;
            let scans = common::remote_scans(&plan);
            assert!(
                scans.len() == 1
                    && scans[0].contains("GROUP BY")
                    && plan.contains("WindowAggr")
                    && !plan.contains("ScalarSubqueryExec"),
                "the revenue should be grouped once, in PostgreSQL:\n{plan}"
            );
        }
    }
    // Volatile rows are not the same rows twice: the subquery stays.
    let plan = f
        .explain(
            "SELECT id FROM pg.$S.orders WHERE random() < 2 AND id = \
             (SELECT max(id) FROM pg.$S.orders WHERE random() < 2)",
        )
        .await;
    assert!(plan.contains("ScalarSubqueryExec"), "{plan}");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupings_too_large_for_the_database_run_locally() {
    // 60 K groups of one row: PostgreSQL's default hash memory (8 MB) holds
    // fewer than the estimated 60 K x 208 bytes.
    let f = Fixture::new(
        "CREATE TABLE facts (k int, g4 int, v numeric(12, 2));
         INSERT INTO facts SELECT g, g % 4, g / 100.0 FROM generate_series(1, 60000) g;
         CREATE TABLE picked (k int PRIMARY KEY);
         INSERT INTO picked VALUES (7), (700), (7000);
         ANALYZE facts;
         ANALYZE picked;",
    )
    .await;
    f.copy_locally("facts", "local_facts").await;
    let many = "SELECT k, sum(v) FROM pg.$S.facts GROUP BY k HAVING sum(v) > 599.5 ORDER BY k";
    let rows = f.rows(many).await;
    let expected: Vec<String> = (59951..=60000)
        .map(|k| format!("{k}|{}.{:02}", k / 100, k % 100))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        rows,
        f.rows(&many.replace("pg.$S.facts", "local_facts")).await
    );
    let plan = f.explain(many).await;
    let scans = common::remote_scans(&plan);
    assert!(
        scans.len() == 1 && !scans[0].contains("GROUP BY") && plan.contains("AggregateExec"),
        "60 K groups should be grouped locally:\n{plan}"
    );
    // Four groups: in PostgreSQL.
    let few = "SELECT g4, sum(v), count(*) FROM pg.$S.facts GROUP BY g4 ORDER BY g4";
    assert_eq!(
        f.rows(few).await,
        f.rows(&few.replace("pg.$S.facts", "local_facts")).await
    );
    let plan = f.explain(few).await;
    assert!(
        common::remote_scans(&plan)
            .iter()
            .any(|s| s.contains("GROUP BY")),
        "{plan}"
    );
    // Joined on its key with three picked keys (TPC-H Q17): the keys narrow
    // it, so it stays in PostgreSQL with the join.
    let narrowed = "SELECT p.k, t.total FROM pg.$S.picked p JOIN \
                    (SELECT k, sum(v) AS total FROM pg.$S.facts GROUP BY k) t ON t.k = p.k \
                    ORDER BY p.k";
    assert_eq!(
        f.rows(narrowed).await,
        ["7|0.07", "700|7.00", "7000|70.00"].map(String::from)
    );
    let plan = f.explain(narrowed).await;
    let scans = common::remote_scans(&plan);
    assert!(
        scans.len() == 1 && scans[0].contains("GROUP BY") && scans[0].contains("JOIN"),
        "{plan}"
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncorrelated_subqueries_are_federated() {
    let f = Fixture::new(
        "CREATE TABLE orders (id int PRIMARY KEY, cust int);
         INSERT INTO orders SELECT g, g % 30 FROM generate_series(1, 600) g;
         CREATE TABLE items (order_id int, qty int);
         INSERT INTO items SELECT g % 600 + 1, g % 7 FROM generate_series(1, 3000) g;",
    )
    .await;
    f.copy_locally("orders", "local_orders").await;
    f.copy_locally("items", "local_items").await;
    // A scalar subquery over other rows than the query's (over the same
    // rows it is a window, see scalar_subquery_over_its_own_rows_...).
    let sql = "WITH revenue AS (SELECT o.cust AS cust, sum(i.qty) AS total \
               FROM pg.$S.orders o JOIN pg.$S.items i ON i.order_id = o.id GROUP BY o.cust) \
               SELECT cust, total FROM revenue WHERE total = (SELECT max(total) FROM revenue \
               WHERE cust > 3) ORDER BY cust";
    let remote = f.rows(sql).await;
    let local = f
        .rows(
            &sql.replace("pg.$S.orders", "local_orders")
                .replace("pg.$S.items", "local_items"),
        )
        .await;
    assert!(!remote.is_empty());
    assert_eq!(remote, local);
    let plan = f.explain(sql).await;
    let scans = common::remote_scans(&plan);
    assert!(
        scans.len() == 2 && scans.iter().all(|s| s.contains("GROUP BY")),
        "the subquery's aggregate should run in PostgreSQL too:\n{plan}"
    );
    f.finish().await;
}

/// Issue 18, part 1: a table never analyzed (`reltuples` is -1) still gives
/// its size: counted up to 100,000 rows, past that the rows per page of the
/// rows counted times the table's pages; a view gives none (reading it may
/// cost anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_never_analyzed_are_counted() {
    let f = Fixture::new(
        "CREATE TABLE small WITH (autovacuum_enabled = false) AS
           SELECT g AS id FROM generate_series(1, 37) g;
         CREATE TABLE big WITH (autovacuum_enabled = false) AS
           SELECT g AS id, repeat('x', g % 50) AS pad FROM generate_series(1, 300000) g;
         CREATE VIEW everything AS SELECT * FROM big;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    let rows = |explained: &str| -> Option<u64> {
        let scan = explained.lines().find(|l| l.contains("RemoteScanExec"))?;
        let at = scan.find("Rows=Inexact(")? + "Rows=Inexact(".len();
        scan[at..at + scan[at..].find(')')?].parse().ok()
    };
    let small = f.explain("SELECT id FROM pg.$S.small").await;
    assert_eq!(rows(&small), Some(37), "{small}");
    let big = f.explain("SELECT id FROM pg.$S.big").await;
    let estimate = rows(&big).unwrap_or_else(|| panic!("no estimate: {big}"));
    assert!(
        (255_000..=345_000).contains(&estimate),
        "300,000 rows estimated as {estimate}"
    );
    let view = f.explain("SELECT id FROM pg.$S.everything").await;
    assert_eq!(rows(&view), None, "{view}");
    f.finish().await;
}

/// Issue 18, part 1: `pg_stats` gives every column's distinct values, NULL
/// fraction and bounds (text gets none: its order is the collation's), as
/// DataFusion statistics, and they estimate what a filter keeps (a range's
/// share of the bounds, `IS NULL` the NULL fraction) where a fifth of the
/// table was assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_give_bounds_nulls_and_filtered_rows() {
    let f = Fixture::new(
        "CREATE TABLE t (id int PRIMARY KEY, flag boolean, day date, amount numeric(10, 2),
                         stamp timestamptz, note text);
         INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN NULL ELSE g % 4 = 1 END,
                              DATE '2020-01-01' + (g % 1000), g / 100.0,
                              TIMESTAMPTZ '2021-06-01 00:00:00+00' + g * INTERVAL '1 minute',
                              'n' || g
           FROM generate_series(1, 10000) g;
         CREATE TABLE u (k int);
         INSERT INTO u SELECT g FROM generate_series(1, 100) g;
         ANALYZE t; ANALYZE u;",
    )
    .await;
    f.rows("SET datafusion.explain.show_statistics = true")
        .await;
    let explained = f
        .explain("SELECT id, flag, day, amount, stamp, note FROM pg.$S.t")
        .await;
    for expected in [
        "Rows=Inexact(10000)",
        "(Col[0]: Min=Inexact(Int32(1)) Max=Inexact(Int32(10000)) Null=Inexact(0) Distinct=Inexact(10000))",
        "(Col[1]: Null=Inexact(5000) Distinct=Inexact(2))",
        "(Col[2]: Min=Inexact(Date32(\"2020-01-01\")) Max=Inexact(Date32(\"2022-09-26\")) Null=Inexact(0) Distinct=Inexact(1000))",
        "(Col[3]: Min=Inexact(Decimal128(0.01,10,2)) Max=Inexact(Decimal128(100.00,10,2))",
        "(Col[4]: Min=Inexact(TimestampMicrosecond(1622505660000000, Some(\"UTC\"))) Max=Inexact(TimestampMicrosecond(1623105600000000, Some(\"UTC\")))",
        "(Col[5]: Null=Inexact(0) Distinct=Inexact(10000))",
    ] {
        assert!(
            explained.contains(expected),
            "no {expected} in\n{explained}"
        );
    }
    let estimated = |sql: &'static str| {
        let f = &f;
        async move { common::estimated_rows(&f.explain(sql).await) }
    };
    let within = |got: usize, want: usize| got.abs_diff(want) <= want / 10 + 1;
    let cases = [
        ("SELECT id FROM pg.$S.t WHERE id <= 1000", 1000),
        ("SELECT id FROM pg.$S.t WHERE id > 9500", 500),
        (
            "SELECT id FROM pg.$S.t WHERE day >= DATE '2022-01-01'",
            2680,
        ),
        (
            "SELECT id FROM pg.$S.t WHERE amount BETWEEN 10 AND 20",
            1000,
        ),
        ("SELECT id FROM pg.$S.t WHERE flag IS NULL", 5000),
        ("SELECT id FROM pg.$S.t WHERE flag", 2500),
        ("SELECT id FROM pg.$S.t WHERE id = 77", 1),
        ("SELECT id FROM pg.$S.t WHERE id IN (1, 2, 3)", 3),
        ("SELECT id FROM pg.$S.t WHERE id < 0", 10),
        // A join one database runs: 10,000 x 100 rows over the larger
        // side's 10,000 distinct keys, not the larger side.
        ("SELECT t.id FROM pg.$S.t JOIN pg.$S.u ON t.id = u.k", 100),
    ];
    for (sql, want) in cases {
        let got = estimated(sql).await;
        assert!(
            within(got, want),
            "{sql}: estimated {got}, about {want} expected"
        );
    }
    f.finish().await;
}

/// Found by an outsider: DataFusion's physical filter pushdown finds a
/// filter's columns by name, so where two columns share one (`a.k` and
/// `b.k`) a filter on one was applied to the other. A RIGHT JOIN whose keys
/// had different types lost its unmatched rows (`a.k IS NULL` applied to
/// `b.k` below the join), and a join's run-time key filter built on `s.nk`
/// reached PostgreSQL as a condition on `c.nk`, dropping a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_never_reach_a_column_of_the_same_name() {
    let f = Fixture::new(
        "CREATE TABLE c (id int, nk smallint, val int);
         INSERT INTO c VALUES (20, 2, 100), (21, 1, 101), (22, 3, 102);
         CREATE TABLE n (id int, region int);
         INSERT INTO n VALUES (1, 1), (2, 0), (3, 0);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE s (id INTEGER, nk INTEGER, val INTEGER);
             INSERT INTO s VALUES (10, 1, 100), (11, 1, 101), (12, 2, 102);",
        )
        .unwrap();
    f.db.attach(&format!("sqlite:{}", path.display()), "lite", true)
        .await
        .unwrap();
    assert_eq!(
        f.rows(
            "SELECT s.id, c.id, n2.id, n1.id FROM lite.s s JOIN pg.$S.c c ON c.val = s.val \
             LEFT JOIN pg.$S.n n2 ON c.nk = n2.id JOIN pg.$S.n n1 ON s.nk = n1.id \
             WHERE n1.region = 1 ORDER BY 1"
        )
        .await,
        ["10|20|2|1", "11|21|1|1"]
    );
    f.rows("CREATE TABLE a AS SELECT arrow_cast(column1, 'Int64') AS k FROM (VALUES (1), (2))")
        .await;
    f.rows(
        "CREATE TABLE b AS SELECT arrow_cast(column1, 'Int32') AS k FROM (VALUES (1), (2), (3))",
    )
    .await;
    for join in ["RIGHT", "FULL"] {
        assert_eq!(
            f.rows(&format!(
                "SELECT a.k, b.k FROM a {join} JOIN b ON a.k = b.k \
                 WHERE b.k > 0 AND (a.k = 1 OR a.k IS NULL) ORDER BY 2"
            ))
            .await,
            ["1|1", "NULL|3"],
            "{join} JOIN"
        );
    }
    f.finish().await;
}

/// A large table is read as `ctid` page ranges at once, every part in the
/// snapshot the first part exported: rows deleted (and committed) after
/// the first part started are still read by the others, as one query would
/// read them. The answers equal one query's (`scan_partitions=1`), and a
/// plan run again exports a snapshot of its own. (`scan_partition_rows`
/// makes 10,000 rows a large table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tables_are_read_in_parts_in_one_snapshot() {
    let f = Fixture::new(
        "CREATE TABLE big AS SELECT g AS id, g % 7 AS k FROM generate_series(1, 11000) g;
         ANALYZE big;
         CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 1000) g;
         ANALYZE small;
         CREATE VIEW everything AS SELECT * FROM big;",
    )
    .await;
    // Pushed down and in parts; everything computed locally over the scan,
    // in parts and as one query.
    for (options, name) in [
        ("scan_partition_rows=1000", "parts"),
        ("pushdown=off&scan_partition_rows=1000", "local"),
        (
            "pushdown=off&scan_partition_rows=1000&scan_partitions=1",
            "one",
        ),
    ] {
        f.db.attach(&format!("{}?{options}", url()), name, false)
            .await
            .unwrap();
    }
    let explained = f.explain("SELECT id, k FROM parts.$S.big").await;
    assert_eq!(
        common::scan_parts(&explained),
        Some((2, "ctid".to_string())),
        "{explained}"
    );
    assert!(explained.contains("in one snapshot"), "{explained}");
    for (sql, parts) in [
        ("SELECT id FROM pg.$S.big", false),
        ("SELECT id FROM parts.$S.small", false),
        ("SELECT id FROM parts.$S.everything", false),
        ("SELECT id FROM parts.$S.big LIMIT 5", false),
        ("SELECT id, k FROM one.$S.big", false),
        ("SELECT count(*) FROM local.$S.big", true),
    ] {
        let explained = f.explain(sql).await;
        assert_eq!(
            common::scan_parts(&explained).is_some(),
            parts,
            "{sql}: {explained}"
        );
    }
    for sql in [
        "SELECT count(*), sum(id), count(DISTINCT id), min(id), max(id) FROM SRC.$S.big",
        "SELECT k, count(*), sum(id) FROM SRC.$S.big WHERE id % 3 = 1 GROUP BY k ORDER BY k",
        "SELECT count(*) FROM SRC.$S.big b JOIN SRC.$S.small s ON b.id = s.id * 10",
    ] {
        let local = f.rows(&sql.replace("SRC", "local")).await;
        assert_eq!(local, f.rows(&sql.replace("SRC", "one")).await, "{sql}");
        assert_eq!(local, f.rows(&sql.replace("SRC", "pg")).await, "{sql}");
    }
    // Many scans in parts at once on a small pool: a scan always has one
    // connection, and takes more only while the pool has them to spare,
    // so none waits for the pool on another's behalf (this waited out
    // pool_timeout when each part took its own connection).
    f.db.attach(
        &format!(
            "{}?pushdown=off&scan_partition_rows=100&pool_max_size=4&pool_timeout=5",
            url()
        ),
        "tiny",
        false,
    )
    .await
    .unwrap();
    f.rows("SET datafusion.execution.target_partitions = 8")
        .await;
    let union = (0..6)
        .map(|i| {
            let table = if i % 2 == 0 { "big" } else { "small" };
            format!("SELECT id FROM tiny.$S.{table}")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let union = format!("SELECT count(*), sum(id) FROM ({union}) u");
    let explained = f.explain(&union).await;
    assert_eq!(
        explained.matches("parts=2 by ctid").count(),
        6,
        "{explained}"
    );
    // (A wait for the pool fails after pool_timeout, 5 s.)
    assert_eq!(
        f.rows(&union).await,
        vec![format!(
            "{}|{}",
            3 * 11_000 + 3 * 1000,
            3 * (11_000 * 11_001 / 2 + 500_500)
        )]
    );
    assert_eq!(
        f.rows("SELECT count(*) FROM tiny.$S.big b JOIN tiny.$S.small s ON b.id = s.id")
            .await,
        vec!["1000".to_string()]
    );
    f.rows("SET datafusion.execution.target_partitions = 2")
        .await;
    // Every part's transaction ended with the query.
    let open: i64 = f
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE state LIKE 'idle in transaction%' AND query LIKE '%' || $1 || '%'",
            &[&f.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "transactions left open");
    // One part started (its snapshot exported), then every row deleted
    // and committed: the other part still reads its rows.
    let sql = format!("SELECT id FROM parts.{}.big", f.schema);
    let scan = common::remote_scan(&f.db, &sql).await;
    assert_eq!(scan.properties().partitioning.partition_count(), 2);
    let mut first = scan
        .execute(0, f.db.context().task_ctx())
        .expect("part 0 starts");
    let first_batch = futures::StreamExt::next(&mut first)
        .await
        .expect("a batch")
        .expect("part 0 reads");
    f.client
        .batch_execute(&format!("DELETE FROM {}.big", f.schema))
        .await
        .unwrap();
    let rest = common::partition_rows(&f.db, &scan, 1).await;
    let mut first_rows = first_batch.num_rows();
    while let Some(batch) = futures::StreamExt::next(&mut first).await {
        first_rows += batch.unwrap().num_rows();
    }
    assert_eq!(first_rows + rest, 11_000, "the parts read one snapshot");
    assert!(rest > 0 && first_rows > 0, "{first_rows} + {rest}");
    // The same plan run again: a new snapshot, after the delete.
    let again = common::partition_rows(&f.db, &scan, 0).await
        + common::partition_rows(&f.db, &scan, 1).await;
    assert_eq!(again, 0);
    f.finish().await;
}

/// Found by an outsider: joins computed locally (`pushdown=off`) over one
/// small pool waited out `pool_timeout`. A join polls its probe side only
/// once its build side is read, but each probe scan sent its query, taking
/// a connection, when the plan started: a chain of nine joins on a pool of
/// eight, or three on a pool of two, held every connection while the
/// innermost build side waited for one. A scan now takes its connection
/// at its first poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_local_joins_fits_a_small_pool() {
    let f = Fixture::new(
        "CREATE TABLE t (id int PRIMARY KEY, val int);
         INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 2000) g;",
    )
    .await;
    f.db.attach(
        &format!("{}?pushdown=off&pool_max_size=2&pool_timeout=3", url()),
        "small",
        false,
    )
    .await
    .unwrap();
    let joins = (2..=6)
        .map(|i| format!(" JOIN small.$S.t a{i} ON a{i}.id = a{}.id", i - 1))
        .collect::<String>();
    assert_eq!(
        f.rows(&format!(
            "SELECT count(*), sum(a1.val + a6.val) FROM small.$S.t a1{joins}"
        ))
        .await,
        vec!["2000|18000".to_string()]
    );
    f.finish().await;
}
