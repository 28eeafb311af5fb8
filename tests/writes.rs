//! `INSERT INTO` attached databases: streamed from any query, in one
//! transaction (a failure midway leaves the table as it was), refused on
//! READ_ONLY sources.

use moltres::Moltres;

use crate::common::{self, query};

const CREATE: &str = "CREATE TABLE trips (trip_id INTEGER PRIMARY KEY, city_id INTEGER, \
                      started_at TIMESTAMP, distance_km DOUBLE PRECISION, fare DECIMAL(10,2), \
                      payment VARCHAR(10), paid_on DATE)";

const SELECT: &str = "SELECT trip_id, city_id, CAST(started_at AS TIMESTAMP) AS started_at, \
                      distance_km, CAST(fare AS DECIMAL(10,2)) AS fare, payment, \
                      CAST(started_at AS DATE) AS paid_on FROM 'testdata/trips.csv'";

/// A session with a PostgreSQL schema (`pg.<schema>`), a MySQL database
/// (`my`) and a SQLite file (`lite`) of the test's own, filled by the
/// setup SQL; [`Databases::finish`] drops them.
pub(crate) struct Databases {
    pub db: Moltres,
    pub schema: String,
    pub database: String,
    pub pg: tokio_postgres::Client,
    pub my: mysql_async::Conn,
    dir: tempfile::TempDir,
}

impl Databases {
    pub async fn new(name: &str, pg_setup: &str, my_setup: &str, lite_setup: &str) -> Self {
        let db = common::session().await;
        let schema = format!("moltres_{name}{}", std::process::id());
        let pg = common::postgres_schema(&schema, pg_setup).await;
        db.attach(&common::postgres_url(), "pg", false)
            .await
            .unwrap();
        let database = schema.clone();
        let my = common::mysql_database(&database, my_setup).await;
        db.attach(&format!("{}/{database}", common::mysql_url()), "my", false)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lite.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(lite_setup)
            .unwrap();
        db.attach(&format!("sqlite:{}", path.display()), "lite", false)
            .await
            .unwrap();
        Databases {
            db,
            schema,
            database,
            pg,
            my,
            dir,
        }
    }

    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir.path().join("lite.db")
    }

    pub async fn finish(mut self) {
        use mysql_async::prelude::Queryable;
        self.pg
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
        self.my
            .query_drop(format!("DROP DATABASE `{}`", self.database))
            .await
            .unwrap();
    }
}

/// Loads the 2,000 demo trips into `table`, checks them against the CSV,
/// then shows a failing load (a duplicate key after 1,000 good rows) leaves
/// the table as it was.
async fn load_and_fail(db: &Moltres, table: &str) {
    let inserted = query(db, &format!("INSERT INTO {table} {SELECT}")).await;
    assert_eq!(inserted, [["2000"]], "{table}");
    let summary = "SELECT count(*), sum(city_id), round(sum(distance_km), 2), round(sum(fare), 2), \
                   count(DISTINCT payment), min(started_at), max(paid_on)";
    assert_eq!(
        query(db, &format!("{summary} FROM {table}")).await,
        query(db, &format!("{summary} FROM ({SELECT})")).await,
        "{table}"
    );
    // Trip ids 3001.. are new, but the last 1,000 collide with 1..1000.
    let err = common::error(
        db,
        &format!(
            "INSERT INTO {table} SELECT CASE WHEN trip_id <= 1000 THEN trip_id + 3000 ELSE trip_id - 1000 END, \
             city_id, CAST(started_at AS TIMESTAMP) AS started_at, distance_km, \
             CAST(fare AS DECIMAL(10,2)) AS fare, payment, CAST(started_at AS DATE) AS paid_on \
             FROM 'testdata/trips.csv' ORDER BY trip_id"
        ),
    )
    .await;
    assert!(
        err.to_lowercase().contains("duplicate") || err.contains("UNIQUE"),
        "{err}"
    );
    assert_eq!(
        query(db, &format!("SELECT count(*), max(trip_id) FROM {table}")).await,
        [["2000", "2000"]],
        "{table}: a failed INSERT left rows behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_into_postgres_mysql_and_sqlite() {
    let t = Databases::new(
        "w",
        &CREATE.replace("TIMESTAMP", "timestamp"),
        &CREATE.replace("TIMESTAMP", "DATETIME"),
        CREATE,
    )
    .await;
    let (db, schema, path) = (&t.db, t.schema.clone(), t.sqlite_path());
    load_and_fail(db, &format!("pg.{schema}.trips")).await;
    load_and_fail(db, "my.trips").await;
    load_and_fail(db, "lite.trips").await;

    // A cross-source INSERT: PostgreSQL rows joined with MySQL into SQLite.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE pairs (a INTEGER, b INTEGER)")
        .unwrap();
    db.refresh("lite").unwrap();
    assert_eq!(
        query(
            db,
            &format!("INSERT INTO lite.pairs SELECT p.trip_id, m.city_id FROM pg.{schema}.trips p JOIN my.trips m ON m.trip_id = p.trip_id WHERE p.trip_id <= 10")
        )
        .await,
        [["10"]]
    );

    // READ_ONLY sources refuse, naming the source.
    db.attach(&common::postgres_url(), "pg_ro", true)
        .await
        .unwrap();
    let err = common::error(db, &format!("INSERT INTO pg_ro.{schema}.trips {SELECT}")).await;
    assert!(err.contains("pg_ro") && err.contains("READ_ONLY"), "{err}");
    db.attach(
        &format!("sqlite:{}?mode=ro", path.display()),
        "lite_ro",
        false,
    )
    .await
    .unwrap();
    let err = common::error(db, &format!("INSERT INTO lite_ro.trips {SELECT}")).await;
    assert!(
        err.contains("lite_ro") && err.contains("READ_ONLY"),
        "{err}"
    );

    t.finish().await;
}

/// `CREATE TABLE ... AS SELECT`, `CREATE TABLE (...)` and `DROP TABLE` on
/// each database; a CREATE TABLE AS whose query fails midway leaves no table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_drop_tables_in_databases() {
    let t = Databases::new("ddl", "", "", "").await;
    let (db, schema) = (&t.db, t.schema.clone());
    let summary = "SELECT payment, count(*) AS trips, CAST(sum(fare) AS DECIMAL(12,2)) AS total, \
                   min(CAST(started_at AS DATE)) AS first_day, max(CAST(started_at AS TIMESTAMP)) AS last_at \
                   FROM 'testdata/trips.csv' GROUP BY payment";
    let expected = query(db, &format!("{summary} ORDER BY payment")).await;
    for target in [
        format!("pg.{schema}.summary"),
        "my.summary".into(),
        "lite.summary".into(),
    ] {
        assert_eq!(
            query(db, &format!("CREATE TABLE {target} AS {summary}")).await,
            [["3"]],
            "{target}"
        );
        let mut back = query(
            db,
            &format!(
                "SELECT payment, trips, total, first_day, last_at FROM {target} ORDER BY payment"
            ),
        )
        .await;
        if target.starts_with("lite") {
            // SQLite keeps decimals as REAL: 18.5 reads back as 18.5, not 18.50.
            for row in &mut back {
                row[2] = format!("{:.2}", row[2].parse::<f64>().unwrap());
            }
        }
        assert_eq!(back, expected, "{target}");
        // IF NOT EXISTS leaves it alone; without, the database refuses.
        assert_eq!(
            query(
                db,
                &format!("CREATE TABLE IF NOT EXISTS {target} AS {summary}")
            )
            .await,
            [["0"]]
        );
        // A query failing midway (text that is not a number) leaves no table.
        let bad = target.replace("summary", "bad");
        let err = common::error(
            db,
            &format!(
                "CREATE TABLE {bad} AS SELECT CAST(payment AS INT) AS p FROM 'testdata/trips.csv'"
            ),
        )
        .await;
        assert!(err.contains("Cannot cast") || err.contains("cast"), "{err}");
        let err = common::error(db, &format!("SELECT * FROM {bad}")).await;
        assert!(err.contains("not found"), "{target}: {err}");
        // DROP TABLE.
        query(db, &format!("DROP TABLE {target}")).await;
        let err = common::error(db, &format!("SELECT * FROM {target}")).await;
        assert!(err.contains("not found"), "{target}: {err}");
        query(db, &format!("DROP TABLE IF EXISTS {target}")).await;
    }
    // Column definitions are the database's own.
    query(
        db,
        "CREATE TABLE my.notes (id INT PRIMARY KEY, body VARCHAR(20))",
    )
    .await;
    assert_eq!(
        query(db, "INSERT INTO my.notes VALUES (1, 'it''s'), (2, 'a\\b')").await,
        [["2"]]
    );
    assert_eq!(
        query(db, "SELECT body FROM my.notes ORDER BY id").await,
        [["it's"], ["a\\b"]]
    );
    query(
        db,
        &format!("CREATE TABLE pg.{schema}.notes (id integer, body text)"),
    )
    .await;
    assert_eq!(
        query(db, &format!("SELECT count(*) FROM pg.{schema}.notes")).await,
        [["0"]]
    );
    // READ_ONLY sources refuse DDL.
    db.attach(&common::postgres_url(), "pg_ro", true)
        .await
        .unwrap();
    let err = common::error(
        db,
        &format!("CREATE TABLE pg_ro.{schema}.x AS SELECT 1 AS one"),
    )
    .await;
    assert!(err.contains("pg_ro") && err.contains("READ_ONLY"), "{err}");
    let err = common::error(db, &format!("DROP TABLE pg_ro.{schema}.notes")).await;
    assert!(err.contains("READ_ONLY"), "{err}");

    t.finish().await;
}

/// Table names, column names and values that try to end the statement stay
/// names and values on every database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_values_cannot_inject_sql() {
    let keep = "CREATE TABLE keep (id INTEGER); INSERT INTO keep VALUES (1);";
    let t = Databases::new("inj", keep, keep, keep).await;
    let (db, schema, database) = (&t.db, t.schema.clone(), t.database.clone());
    // A table and a column named to close the quote, in every quoting style.
    let table = r#""t""`'; DROP TABLE keep; --""#;
    let column = r#""c""`'); DROP TABLE keep; --""#;
    let values = [
        "x'); DROP TABLE keep; --",
        "a\\ '; DROP TABLE keep; --",
        "`b`\"c\"",
        "-- \n/* */ ;",
    ];
    let select = values
        .iter()
        .map(|v| {
            let literal = v.replace('\'', "''");
            format!("SELECT '{literal}' AS {column}")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    for source in [
        format!("pg.{schema}"),
        format!("my.{database}"),
        "lite.main".into(),
    ] {
        let target = format!("{source}.{table}");
        assert_eq!(
            query(db, &format!("CREATE TABLE {target} AS {select}")).await,
            [["4"]],
            "{source}"
        );
        assert_eq!(
            query(db, &format!("INSERT INTO {target} {select}")).await,
            [["4"]],
            "{source}"
        );
        let mut stored: Vec<String> = query(db, &format!("SELECT {column} FROM {target}"))
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        stored.sort();
        let mut expected: Vec<String> = values
            .iter()
            .chain(values.iter())
            .map(|v| v.to_string())
            .collect();
        expected.sort();
        assert_eq!(stored, expected, "{source}");
        assert_eq!(
            query(db, &format!("SELECT count(*) FROM {source}.keep")).await,
            [["1"]],
            "{source}: keep was touched"
        );
        query(db, &format!("DROP TABLE {target}")).await;
        assert_eq!(
            query(db, &format!("SELECT count(*) FROM {source}.keep")).await,
            [["1"]],
            "{source}: keep was touched"
        );
    }
    t.finish().await;
}

/// `moltres::connect(url)`: unqualified names resolve in the database;
/// `insert` appends record batches in one transaction; files still join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_makes_the_database_the_default() {
    use moltres::datafusion::arrow::array::{Int64Array, StringArray};
    use moltres::datafusion::arrow::datatypes::{DataType, Field, Schema};
    use moltres::datafusion::arrow::record_batch::RecordBatch;
    common::root(); // relative paths from the repository root
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO cities VALUES (1, 'Lisbon');",
        )
        .unwrap();
    let db = moltres::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(Int64Array::from(vec![2, 3])),
            std::sync::Arc::new(StringArray::from(vec!["Porto", "it's"])),
        ],
    )
    .unwrap();
    assert_eq!(db.insert("cities", vec![batch.clone()]).await.unwrap(), 2);
    assert_eq!(
        query(&db, "SELECT name FROM cities ORDER BY id").await,
        [["Lisbon"], ["Porto"], ["it's"]]
    );
    // A duplicate key: nothing of the batch is written.
    assert!(db.insert("cities", vec![batch]).await.is_err());
    assert_eq!(query(&db, "SELECT count(*) FROM cities").await, [["3"]]);
    // Files join as before; the passthrough runs on the database.
    assert_eq!(
        query(
            &db,
            "SELECT c.name, count(*) FROM cities c JOIN 'testdata/trips.csv' t ON t.city_id = c.id \
             GROUP BY c.name ORDER BY c.name"
        )
        .await,
        [["Lisbon", "225"], ["Porto", "272"], ["it's", "273"]]
    );
    assert_eq!(
        db.source("db")
            .unwrap()
            .execute("DELETE FROM cities WHERE id = 3")
            .await
            .unwrap(),
        1
    );
    assert_eq!(query(&db, "SELECT count(*) FROM db.cities").await, [["2"]]);
    assert_eq!(
        query(&db, "SELECT count(*) FROM db.main.cities").await,
        [["2"]]
    );
    // CREATE TABLE of a plain name creates it in the database.
    assert_eq!(
        query(&db, "CREATE TABLE big AS SELECT * FROM cities WHERE id > 1").await,
        [["1"]]
    );
    let batches = db
        .source("db")
        .unwrap()
        .query("SELECT name FROM big")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(common::rows(&batches), [["Porto"]]);
}

/// `DELETE` and `UPDATE` run as one statement in the database when every
/// condition and value is exact there, and are refused otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_update_in_databases() {
    let t = Databases::new("dml", "", "", "").await;
    let (db, schema) = (&t.db, t.schema.clone());
    let csv = "'testdata/trips.csv'";
    let madrid =
        query(db, &format!("SELECT count(*) FROM {csv} WHERE city_id = 3")).await[0][0].clone();
    let sevilla_late = query(
        db,
        &format!("SELECT count(*) FROM {csv} WHERE city_id = 4 AND trip_id > 1000"),
    )
    .await[0][0]
        .clone();
    for table in [format!("pg.{schema}.t"), "my.t".into(), "lite.t".into()] {
        query(
            db,
            &format!("CREATE TABLE {table} AS SELECT trip_id, city_id, payment FROM {csv}"),
        )
        .await;
        let plan = common::explain(db, &format!("DELETE FROM {table} WHERE city_id = 3")).await;
        assert!(
            plan.contains("RemoteStatementExec") && plan.contains("DELETE FROM"),
            "{plan}"
        );
        assert_eq!(
            query(db, &format!("DELETE FROM {table} WHERE city_id = 3")).await,
            [[madrid.clone()]],
            "{table}"
        );
        assert_eq!(
            query(
                db,
                &format!("UPDATE {table} SET payment = 'tap' WHERE city_id = 4 AND trip_id > 1000")
            )
            .await,
            [[sevilla_late.clone()]],
            "{table}"
        );
        assert_eq!(
            query(
                db,
                &format!("SELECT count(*) FROM {table} WHERE payment = 'tap' OR city_id = 3")
            )
            .await,
            [[sevilla_late.clone()]],
            "{table}"
        );
        // Not exact in the database: refused, nothing changed.
        let err = common::error(db, &format!("DELETE FROM {table} WHERE trip_id + 1 > 5")).await;
        assert!(err.contains("not sent"), "{table}: {err}");
        let err = common::error(db, &format!("UPDATE {table} SET city_id = city_id + 1")).await;
        assert!(err.contains("not sent"), "{table}: {err}");
        let expected = 2000 - madrid.parse::<i64>().unwrap();
        assert_eq!(
            query(db, &format!("SELECT count(*), sum(city_id) FROM {table}")).await[0][0],
            expected.to_string(),
            "{table}"
        );
    }
    db.attach(&common::postgres_url(), "pg_ro", true)
        .await
        .unwrap();
    let err = common::error(
        db,
        &format!("DELETE FROM pg_ro.{schema}.t WHERE city_id = 1"),
    )
    .await;
    assert!(err.contains("READ_ONLY"), "{err}");
    t.finish().await;
}

/// `Moltres::upsert`: new keys are inserted, existing keys updated, in one
/// transaction, on every database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_on_every_database() {
    use moltres::datafusion::arrow::array::{Int64Array, StringArray};
    use moltres::datafusion::arrow::datatypes::{DataType, Field, Schema};
    use moltres::datafusion::arrow::record_batch::RecordBatch;
    let create = "CREATE TABLE stock (sku INTEGER PRIMARY KEY, name VARCHAR(20), qty INTEGER);
                  INSERT INTO stock VALUES (1, 'pen', 10), (2, 'ink', 5);";
    let t = Databases::new("ups", create, create, create).await;
    let (db, schema) = (&t.db, t.schema.clone());
    let rows = |skus: Vec<i64>, names: Vec<&str>, qty: Vec<i64>| {
        RecordBatch::try_new(
            std::sync::Arc::new(Schema::new(vec![
                Field::new("sku", DataType::Int64, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("qty", DataType::Int64, false),
            ])),
            vec![
                std::sync::Arc::new(Int64Array::from(skus)),
                std::sync::Arc::new(StringArray::from(names)),
                std::sync::Arc::new(Int64Array::from(qty)),
            ],
        )
        .unwrap()
    };
    for table in [
        format!("pg.{schema}.stock"),
        "my.stock".into(),
        "lite.stock".into(),
    ] {
        let batch = rows(vec![2, 3], vec!["ink", "pad"], vec![7, 1]);
        db.upsert(&table, vec![batch], &["sku"]).await.unwrap();
        assert_eq!(
            query(
                db,
                &format!("SELECT sku, name, qty FROM {table} ORDER BY sku")
            )
            .await,
            [["1", "pen", "10"], ["2", "ink", "7"], ["3", "pad", "1"]],
            "{table}"
        );
        // A batch that fails (a key column missing from the rows) changes nothing.
        let err = db
            .upsert(&table, vec![rows(vec![1], vec!["x"], vec![0])], &["id"])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("'id'"), "{err}");
    }
    t.finish().await;
}

/// `INSERT OVERWRITE` replaces every row in one transaction; when the new
/// rows fail (a duplicate key), the old rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_overwrite_replaces_rows_atomically() {
    let create = "CREATE TABLE stock (sku INTEGER PRIMARY KEY, qty INTEGER);
                  INSERT INTO stock VALUES (1, 10), (2, 5);";
    let t = Databases::new("ovw", create, create, create).await;
    let (db, schema) = (&t.db, t.schema.clone());
    for table in [
        format!("pg.{schema}.stock"),
        "my.stock".into(),
        "lite.stock".into(),
    ] {
        assert_eq!(
            query(
                db,
                &format!("INSERT OVERWRITE {table} SELECT column1 AS sku, column2 AS qty FROM (VALUES (7, 70), (8, 80), (9, 90))")
            )
            .await,
            [["3"]],
            "{table}"
        );
        assert_eq!(
            query(db, &format!("SELECT sku, qty FROM {table} ORDER BY sku")).await,
            [["7", "70"], ["8", "80"], ["9", "90"]],
            "{table}"
        );
        let err = common::error(
            db,
            &format!("INSERT OVERWRITE {table} SELECT column1 AS sku, column2 AS qty FROM (VALUES (1, 1), (1, 2))"),
        )
        .await;
        assert!(
            err.to_lowercase().contains("duplicate") || err.contains("UNIQUE"),
            "{table}: {err}"
        );
        assert_eq!(
            query(db, &format!("SELECT count(*), sum(qty) FROM {table}")).await,
            [["3", "240"]],
            "{table}: a failed overwrite changed the table"
        );
    }
    t.finish().await;
}

/// Whether each database holds a table named `name` (or, with a `%`, like
/// it), asked of the databases themselves, not of Moltres's catalog.
async fn tables_like(t: &mut Databases, name: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    let mut found = Vec::new();
    let pg =
        t.pg.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE $2",
            &[&t.schema, &name],
        )
        .await
        .unwrap();
    found.extend(pg.iter().map(|r| format!("pg:{}", r.get::<_, String>(0))));
    let my: Vec<String> =
        t.my.exec(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = ? AND table_name LIKE ?",
            (&t.database, name),
        )
        .await
        .unwrap();
    found.extend(my.into_iter().map(|n| format!("my:{n}")));
    let lite = rusqlite::Connection::open(t.sqlite_path()).unwrap();
    let mut statement = lite
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE ?1")
        .unwrap();
    let names: Vec<String> = statement
        .query_map([name], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    found.extend(names.into_iter().map(|n| format!("lite:{n}")));
    found
}

/// `CREATE TABLE ... AS` is all or nothing in every database: timed out
/// halfway (the statement's future dropped) or with the process killed
/// halfway, no table remains, and running it again succeeds. MySQL, whose
/// DDL commits, fills a table under a temporary name; a leftover of a
/// killed process is dropped by the next attempt at the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_as_is_all_or_nothing() {
    // A PostgreSQL view that streams a row every 2 ms for minutes.
    let slow = "CREATE VIEW slow AS SELECT g AS n, pg_sleep(0.002)::text AS z \
                FROM generate_series(1, 100000) g;";
    let mut t = Databases::new("ctas_atomic", slow, "", "").await;
    let schema = t.schema.clone();
    let targets = [
        format!("pg.{schema}.copied"),
        "my.copied".to_string(),
        "lite.copied".to_string(),
    ];
    // 1. The query timeout stops it while rows are being written.
    query(&t.db, "SET moltres.query_timeout = '2s'").await;
    for target in &targets {
        let started = std::time::Instant::now();
        let err = common::error(
            &t.db,
            &format!("CREATE TABLE {target} AS SELECT n FROM pg.{schema}.slow"),
        )
        .await;
        assert!(err.contains("timed out"), "{target}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{target}: the timeout took {:?}",
            started.elapsed()
        );
    }
    // The MySQL filling table is dropped in the background.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = tables_like(&mut t, "%copied%").await;
        left.extend(tables_like(&mut t, "moltres_ctas_%").await);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "a timed-out CREATE TABLE AS left {left:?}");
    query(&t.db, "SET moltres.query_timeout = ''").await;
    for target in &targets {
        assert_eq!(
            query(
                &t.db,
                &format!("CREATE TABLE {target} AS SELECT n FROM pg.{schema}.slow WHERE n <= 3")
            )
            .await,
            [["3"]],
            "{target}: run again after a timeout"
        );
        query(&t.db, &format!("DROP TABLE {target}")).await;
    }

    // 2. The process is killed while rows are being written.
    let urls = [
        common::postgres_url(),
        format!("{}/{}", common::mysql_url(), t.database),
        format!("sqlite:{}", t.sqlite_path().display()),
    ];
    for (target, alias) in targets.iter().zip(["pg", "my", "lite"]) {
        let attach = format!(
            "ATTACH '{}' AS pg; {}",
            urls[0],
            if alias == "pg" {
                String::new()
            } else {
                format!(
                    "ATTACH '{}' AS {alias};",
                    urls[if alias == "my" { 1 } else { 2 }]
                )
            }
        );
        let script = format!("{attach} CREATE TABLE {target} AS SELECT n FROM pg.{schema}.slow");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moltres"))
            .current_dir(common::root())
            .args(["-q", "-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("moltres runs");
        // Rows reach the new table for a while, then the process dies.
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "{target}: the load ended before it was killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let left = tables_like(&mut t, "copied").await;
        assert!(left.is_empty(), "a killed CREATE TABLE AS left {left:?}");
        // Running it again works; it drops what an earlier attempt left.
        t.db.refresh(alias).unwrap();
        assert_eq!(
            query(
                &t.db,
                &format!("CREATE TABLE {target} AS SELECT n FROM pg.{schema}.slow WHERE n <= 3")
            )
            .await,
            [["3"]],
            "{target}: run again after a kill"
        );
        assert_eq!(
            tables_like(&mut t, "moltres_ctas_%").await,
            Vec::<String>::new(),
            "{target}: leftovers of the killed attempt"
        );
        query(&t.db, &format!("DROP TABLE {target}")).await;
    }

    // 3. The shell times out a MySQL CREATE TABLE AS and exits at once: it
    // waits for the filling table's drop (an outsider found it left behind).
    let script = format!(
        "ATTACH '{}' AS pg; ATTACH '{}' AS my; SET moltres.query_timeout = '2s'; \
         CREATE TABLE my.copied AS SELECT n FROM pg.{schema}.slow",
        urls[0], urls[1]
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moltres"))
        .current_dir(common::root())
        .args(["-q", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    let left = tables_like(&mut t, "moltres_ctas_%").await;
    assert!(left.is_empty(), "the shell exited leaving {left:?}");

    // 4. Ctrl-C (SIGINT) stops a `-c` script mid-fill: the statement is
    // rolled back, the filling table dropped before the shell exits, 130.
    let script = format!(
        "ATTACH '{}' AS pg; ATTACH '{}' AS my; \
         CREATE TABLE my.copied AS SELECT n FROM pg.{schema}.slow",
        urls[0], urls[1]
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_moltres"))
        .current_dir(common::root())
        .args(["-q", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("moltres runs");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(
        !tables_like(&mut t, "moltres_ctas_%").await.is_empty(),
        "the filling table is there before Ctrl-C"
    );
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left = tables_like(&mut t, "%copied%").await;
    assert!(left.is_empty(), "Ctrl-C left {left:?}");
    assert!(tables_like(&mut t, "moltres_ctas_%").await.is_empty());
    t.finish().await;
}

/// MySQL's CREATE TABLE AS, found by an outsider: a row failing late in a
/// long fill used to hang for ever (the DROP of the filling table, sent on
/// another connection, waited for the fill's own open transaction), and
/// the cleanup of leftovers dropped any table named like a filling table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_create_table_as_fails_late_without_hanging_or_dropping_lookalikes() {
    use mysql_async::prelude::Queryable;
    let lookalike = format!(
        "{}00000000",
        moltres_connectors::mysql::filling_prefix("k1")
    );
    let mut t = Databases::new(
        "ctas_late",
        "",
        &format!("CREATE TABLE {lookalike} (precious INT); INSERT INTO {lookalike} VALUES (42);"),
        "",
    )
    .await;
    assert_eq!(
        query(&t.db, "CREATE TABLE my.k1 AS SELECT 1 AS a").await,
        [["1"]]
    );
    let kept: Option<i32> =
        t.my.query_first(format!("SELECT precious FROM {lookalike}"))
            .await
            .unwrap();
    assert_eq!(
        kept,
        Some(42),
        "a user's table named like a filling table was dropped"
    );
    let started = std::time::Instant::now();
    let sql = "CREATE TABLE my.late AS SELECT value AS id, CAST(CASE WHEN value = 150000 \
               THEN 'x' ELSE CAST(value AS VARCHAR) END AS INT) AS v \
               FROM generate_series(1, 200000)";
    let error = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        common::answer(&t.db, sql),
    )
    .await
    .expect("a CREATE TABLE AS failing late answers")
    .unwrap_err();
    assert!(error.contains("'x'") || error.contains("cast"), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let mut left = tables_like(&mut t, "moltres_ctas_%").await;
    left.retain(|name| !name.ends_with(&lookalike));
    assert!(left.is_empty(), "{left:?}");
    assert!(tables_like(&mut t, "late").await.is_empty());
    t.finish().await;
}
