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

async fn error(db: &Moltres, sql: &str) -> String {
    match db.sql(sql).await {
        Ok(df) => df
            .collect()
            .await
            .map(|_| ())
            .expect_err("the statement should fail")
            .to_string(),
        Err(e) => e.to_string(),
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
    let err = error(
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
    let db = common::session().await;
    // PostgreSQL.
    let schema = format!("moltres_w{}", std::process::id());
    let pg = common::postgres_schema(&schema, &CREATE.replace("TIMESTAMP", "timestamp")).await;
    db.attach(&common::postgres_url(), "pg", false)
        .await
        .unwrap();
    load_and_fail(&db, &format!("pg.{schema}.trips")).await;
    // MySQL/MariaDB.
    let database = format!("moltres_w{}", std::process::id());
    let mut my = common::mysql_database(&database, &CREATE.replace("TIMESTAMP", "DATETIME")).await;
    db.attach(&format!("{}/{database}", common::mysql_url()), "my", false)
        .await
        .unwrap();
    load_and_fail(&db, "my.trips").await;
    // SQLite.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(CREATE)
        .unwrap();
    db.attach(&format!("sqlite:{}", path.display()), "lite", false)
        .await
        .unwrap();
    load_and_fail(&db, "lite.trips").await;

    // A cross-source INSERT: PostgreSQL rows joined with MySQL into SQLite.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE pairs (a INTEGER, b INTEGER)")
        .unwrap();
    db.refresh("lite").unwrap();
    assert_eq!(
        query(
            &db,
            &format!("INSERT INTO lite.pairs SELECT p.trip_id, m.city_id FROM pg.{schema}.trips p JOIN my.trips m ON m.trip_id = p.trip_id WHERE p.trip_id <= 10")
        )
        .await,
        [["10"]]
    );

    // READ_ONLY sources refuse, naming the source.
    db.attach(&common::postgres_url(), "pg_ro", true)
        .await
        .unwrap();
    let err = error(&db, &format!("INSERT INTO pg_ro.{schema}.trips {SELECT}")).await;
    assert!(err.contains("pg_ro") && err.contains("READ_ONLY"), "{err}");
    db.attach(
        &format!("sqlite:{}?mode=ro", path.display()),
        "lite_ro",
        false,
    )
    .await
    .unwrap();
    let err = error(&db, &format!("INSERT INTO lite_ro.trips {SELECT}")).await;
    assert!(
        err.contains("lite_ro") && err.contains("READ_ONLY"),
        "{err}"
    );

    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    use mysql_async::prelude::Queryable;
    my.query_drop(format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}
