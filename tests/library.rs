//! The library API on every database: `create_table` / `create_index` /
//! `drop_*` builders, `update` / `delete` with expressions, transactions
//! (guard and closure, savepoints, failures undone alone), `write_table`
//! with its four modes, and DataFrame exports partitioned by columns.

use std::sync::Arc;

use moltres::datafusion::arrow::array::{Int64Array, StringArray};
use moltres::datafusion::arrow::datatypes::{DataType, Field, Schema};
use moltres::datafusion::arrow::record_batch::RecordBatch;
use moltres::datafusion::dataframe::DataFrameWriteOptions;
use moltres::datafusion::prelude::{col, lit};
use moltres::{Moltres, SaveMode, column};

use crate::common::{self, query};
use crate::writes::Databases;

fn stock(skus: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("sku", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(skus.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

async fn count(db: &Moltres, table: &str) -> String {
    query(db, &format!("SELECT count(*) FROM {table}")).await[0][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_and_indexes_from_rust() {
    let keep = "CREATE TABLE keep (id INTEGER); INSERT INTO keep VALUES (1);";
    let t = Databases::new("lib_ddl", keep, keep, keep).await;
    let db = &t.db;
    let odd = r#"odd"`'; name"#;
    let people = |ids: &[i64], emails: &[&str], odds: &[i64]| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("email", DataType::Utf8, false),
                Field::new(odd, DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(emails.to_vec())),
                Arc::new(Int64Array::from(odds.to_vec())),
            ],
        )
        .unwrap()
    };
    for prefix in [format!("pg.{}", t.schema), "my".into(), "lite".into()] {
        let table = format!("{prefix}.people");
        db.create_table(
            &table,
            [
                column("id", "BIGINT").primary_key(),
                column("email", "VARCHAR(80)").not_null().unique(),
                column("score", DataType::Float64).default(1.5),
                column(odd, "INTEGER"),
            ],
        )
        .await
        .unwrap();
        let err = db
            .create_table(&table, [column("id", "BIGINT")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exist"), "{prefix}: {err}");
        db.create_table(&table, [column("id", "BIGINT")])
            .if_not_exists()
            .await
            .unwrap();
        db.create_index("people_by_score", &table, ["score"])
            .await
            .unwrap();
        db.create_index("people_by_score", &table, ["score"])
            .if_not_exists()
            .await
            .unwrap();
        let index = r#"ix"`'; DROP TABLE keep; --"#;
        db.create_index(index, &table, [odd])
            .unique()
            .await
            .unwrap();
        // Columns by name; the default fills the one not given.
        let written = db
            .insert(&table, vec![people(&[2, 1], &["b@x", "a@x"], &[20, 10])])
            .await
            .unwrap();
        assert_eq!(written, 2, "{prefix}");
        assert_eq!(
            query(
                db,
                &format!(
                    "SELECT id, email, score, \"{}\" FROM {table} ORDER BY id",
                    odd.replace('"', "\"\"")
                )
            )
            .await,
            [["1", "a@x", "1.5", "10"], ["2", "b@x", "1.5", "20"]],
            "{prefix}"
        );
        // The unique column and the unique index hold, and a failed
        // insert leaves nothing.
        for (batch, what) in [
            (people(&[3], &["a@x"], &[30]), "email"),
            (people(&[4], &["d@x"], &[10]), "index"),
        ] {
            let err = db
                .insert(&table, vec![batch])
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.to_lowercase().contains("duplicate") || err.contains("UNIQUE"),
                "{prefix} {what}: {err}"
            );
        }
        assert_eq!(count(db, &table).await, "2", "{prefix}");
        // A type that is not a type name is refused before anything is sent.
        let err = db
            .create_table(
                &format!("{prefix}.bad"),
                [column("x", "INT); DROP TABLE keep; --")],
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a type name"), "{prefix}: {err}");
        db.drop_index("people_by_score", &table).await.unwrap();
        db.drop_index("people_by_score", &table)
            .if_exists()
            .await
            .unwrap();
        db.drop_index(index, &table).await.unwrap();
        db.drop_table(&table).await.unwrap();
        db.drop_table(&table).if_exists().await.unwrap();
        let err = common::error(db, &format!("SELECT * FROM {table}")).await;
        assert!(err.contains("people"), "{prefix}: {err}");
        assert_eq!(count(db, &format!("{prefix}.keep")).await, "1", "{prefix}");
    }
    db.attach(&format!("sqlite:{}", t.sqlite_path().display()), "ro", true)
        .await
        .unwrap();
    let err = db
        .create_table("ro.x", [column("id", "INTEGER")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("READ_ONLY"), "{err}");
    let err = db
        .create_table("nowhere.x", [column("id", "INTEGER")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'nowhere.x' is not a table of an attached database"),
        "{err}"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_with_expressions() {
    let create = "CREATE TABLE stock (sku INTEGER PRIMARY KEY, name VARCHAR(40), qty INTEGER);
                  INSERT INTO stock VALUES (1, 'pen', 10), (2, 'ink', 5), (3, 'pad', 0);";
    let t = Databases::new("lib_dml", create, create, create).await;
    let db = &t.db;
    for table in [
        format!("pg.{}.stock", t.schema),
        "my.stock".into(),
        "lite.stock".into(),
    ] {
        // lit(2) is an Int32, the columns INTEGER or BIGINT: coerced.
        let changed = db
            .update(
                &table,
                col("sku").eq(lit(2)),
                [("qty", lit(7)), ("name", lit("ink'; DROP TABLE stock; --"))],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1, "{table}");
        let deleted = db.delete(&table, col("qty").eq(lit(0))).await.unwrap();
        assert_eq!(deleted, 1, "{table}");
        assert_eq!(
            query(
                db,
                &format!("SELECT sku, name, qty FROM {table} ORDER BY sku")
            )
            .await,
            [["1", "pen", "10"], ["2", "ink'; DROP TABLE stock; --", "7"]],
            "{table}"
        );
        let err = db
            .update(&table, col("sku").eq(lit(1)), [("nope", lit(1))])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column 'nope'"), "{table}: {err}");
    }
    // PostgreSQL raises on integer overflow where Moltres wraps: refused,
    // and nothing changes.
    let table = format!("pg.{}.stock", t.schema);
    let err = db
        .update(
            &table,
            col("sku").gt(lit(0)),
            [("qty", col("qty") + lit(1))],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly"), "{err}");
    assert_eq!(
        query(db, &format!("SELECT sum(qty) FROM {table}")).await,
        [["17"]]
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_roll_back_and_undo_failed_steps() {
    let create = "CREATE TABLE stock (sku INTEGER PRIMARY KEY, name VARCHAR(20), qty INTEGER);
                  INSERT INTO stock VALUES (1, 'pen', 10), (2, 'ink', 5), (3, 'pad', 0);";
    let t = Databases::new("lib_tx", create, create, create).await;
    let db = &t.db;
    for (alias, inner) in [
        ("pg", format!("{}.stock", t.schema)),
        ("my", "stock".to_string()),
        ("lite", "stock".to_string()),
    ] {
        let outer = format!("{alias}.{inner}");
        let mut tx = db.begin(alias).await.unwrap();
        assert_eq!(
            tx.insert(&inner, vec![stock(&[4, 5], &["cap", "nib"])])
                .await
                .unwrap(),
            2,
            "{alias}"
        );
        assert_eq!(
            tx.update(&inner, col("sku").eq(lit(1)), [("qty", lit(11))])
                .await
                .unwrap(),
            1,
            "{alias}"
        );
        // Other connections do not see uncommitted rows.
        assert_eq!(count(db, &outer).await, "3", "{alias}");
        // A failing step (a duplicate key after a good row) is undone by
        // itself; the transaction goes on.
        let err = tx
            .insert(&inner, vec![stock(&[6, 1], &["new", "dup"])])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.to_lowercase().contains("duplicate") || err.contains("UNIQUE"),
            "{alias}: {err}"
        );
        let err = tx
            .execute("INSERT INTO no_such_table VALUES (1)")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_such_table"), "{alias}: {err}");
        tx.savepoint("before delete").await.unwrap();
        assert_eq!(
            tx.delete(&inner, col("sku").eq(lit(2))).await.unwrap(),
            1,
            "{alias}"
        );
        tx.rollback_to("before delete").await.unwrap();
        tx.release("before delete").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            query(db, &format!("SELECT sku, qty FROM {outer} ORDER BY sku")).await,
            [
                ["1", "11"],
                ["2", "5"],
                ["3", "0"],
                ["4", "NULL"],
                ["5", "NULL"]
            ],
            "{alias}"
        );

        // Rolled back, and dropped without a commit: nothing stays.
        let mut tx = db.begin(alias).await.unwrap();
        tx.delete(&inner, col("sku").gt(lit(0))).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(db, &outer).await, "5", "{alias}");
        {
            let mut tx = db.begin(alias).await.unwrap();
            tx.delete(&inner, col("sku").gt(lit(0))).await.unwrap();
        }
        assert_eq!(count(db, &outer).await, "5", "{alias}: dropped");
        // Its locks are gone: a write of a row it deleted goes through
        // (it would wait on a transaction left open).
        let write = db.update(&outer, col("sku").eq(lit(5)), [("name", lit("nib2"))]);
        let changed = tokio::time::timeout(std::time::Duration::from_secs(20), write)
            .await
            .unwrap_or_else(|_| panic!("{alias}: the dropped transaction still holds its locks"))
            .unwrap();
        assert_eq!(changed, 1, "{alias}");

        // The closure: an error rolls back, Ok commits.
        let target = inner.clone();
        let failed: moltres::Result<u64> = db
            .transaction(alias, |tx| {
                Box::pin(async move {
                    tx.delete(&target, col("sku").gt(lit(0))).await?;
                    Err(moltres::Error::Statement("changed my mind".into()))
                })
            })
            .await;
        assert!(failed.unwrap_err().to_string().contains("changed my mind"));
        assert_eq!(count(db, &outer).await, "5", "{alias}");
        let target = inner.clone();
        let deleted = db
            .transaction(alias, |tx| {
                Box::pin(async move { tx.delete(&target, col("sku").gt(lit(3))).await })
            })
            .await
            .unwrap();
        assert_eq!(deleted, 2, "{alias}");
        assert_eq!(count(db, &outer).await, "3", "{alias}");
    }
    // Rows from any query, streamed inside the transaction.
    let mut tx = db.begin("pg").await.unwrap();
    let trips = db
        .sql("SELECT trip_id + 100 AS sku, payment AS name FROM 'testdata/trips.csv'")
        .await
        .unwrap();
    let inner = format!("{}.stock", t.schema);
    assert_eq!(tx.insert_frame(&inner, trips).await.unwrap(), 2000);
    tx.commit().await.unwrap();
    assert_eq!(count(db, &format!("pg.{inner}")).await, "2003");
    db.attach(&format!("sqlite:{}", t.sqlite_path().display()), "ro", true)
        .await
        .unwrap();
    let err = db.begin("ro").await.unwrap_err().to_string();
    assert!(err.contains("READ_ONLY"), "{err}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_table_modes() {
    common::root();
    let t = Databases::new("lib_save", "", "", "").await;
    let db = &t.db;
    let by_payment = "SELECT payment, count(*) AS trips, CAST(sum(fare) AS DECIMAL(12,2)) AS fare \
                      FROM 'testdata/trips.csv' GROUP BY payment";
    let groups: u64 = query(db, &format!("SELECT count(*) FROM ({by_payment})")).await[0][0]
        .parse()
        .unwrap();
    for prefix in [format!("pg.{}", t.schema), "my".into(), "lite".into()] {
        let table = format!("{prefix}.daily");
        let frame = || async { db.sql(by_payment).await.unwrap() };
        let write = |mode| {
            let table = table.clone();
            async move { db.write_table(frame().await, &table, mode).await }
        };
        assert_eq!(
            write(SaveMode::ErrorIfExists).await.unwrap(),
            groups,
            "{prefix}"
        );
        let err = write(SaveMode::ErrorIfExists)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{prefix}: {err}");
        assert_eq!(write(SaveMode::Ignore).await.unwrap(), 0, "{prefix}");
        assert_eq!(count(db, &table).await, groups.to_string(), "{prefix}");
        assert_eq!(write(SaveMode::Append).await.unwrap(), groups, "{prefix}");
        assert_eq!(
            count(db, &table).await,
            (2 * groups).to_string(),
            "{prefix}"
        );
        assert_eq!(
            write(SaveMode::Overwrite).await.unwrap(),
            groups,
            "{prefix}"
        );
        assert_eq!(
            query(db, &format!("SELECT * FROM {table} ORDER BY payment")).await,
            query(db, &format!("{by_payment} ORDER BY payment")).await,
            "{prefix}"
        );
        // An overwrite whose rows fail keeps the old rows.
        let bad = db
            .sql(
                "SELECT payment, CAST(CASE WHEN trip_id > 1500 THEN 'x' ELSE '1' END AS BIGINT) AS trips, \
                 CAST(fare AS DECIMAL(12,2)) AS fare FROM 'testdata/trips.csv'",
            )
            .await
            .unwrap();
        let err = db
            .write_table(bad, &table, SaveMode::Overwrite)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("'x'"), "{prefix}: {err}");
        assert_eq!(count(db, &table).await, groups.to_string(), "{prefix}");
        // Columns by name, in any order; missing ones are NULL, unless the
        // column is NOT NULL.
        let reordered = db
            .sql("SELECT 'gift' AS payment, CAST(7 AS DECIMAL(12,2)) AS fare, 3 AS trips")
            .await
            .unwrap();
        assert_eq!(
            db.write_table(reordered, &table, SaveMode::Append)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            query(
                db,
                &format!(
                    "SELECT payment, trips, CAST(fare AS INT) FROM {table} WHERE payment = 'gift'"
                )
            )
            .await,
            [["gift", "3", "7"]],
            "{prefix}"
        );
        let partial = db.sql("SELECT 'gift' AS payment").await.unwrap();
        let err = db
            .write_table(partial, &table, SaveMode::Append)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column 'trips' is NOT NULL"),
            "{prefix}: {err}"
        );
        db.drop_table(&table).await.unwrap();
        // Overwrite creates a table that is not there.
        assert_eq!(
            write(SaveMode::Overwrite).await.unwrap(),
            groups,
            "{prefix}"
        );
        db.drop_table(&table).await.unwrap();
    }
    // A table of the session itself.
    db.sql("CREATE TABLE mem (payment VARCHAR, trips BIGINT, fare DECIMAL(12,2))")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let frame = db.sql(by_payment).await.unwrap();
    assert_eq!(
        db.write_table(frame, "mem", SaveMode::Append)
            .await
            .unwrap(),
        groups
    );
    let frame = db.sql(by_payment).await.unwrap();
    let err = db
        .write_table(frame, "mem", SaveMode::ErrorIfExists)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataframe_exports_partitioned_by_columns() {
    common::root();
    let db = common::session().await;
    let dir = tempfile::tempdir().unwrap();
    let frame = db
        .sql("SELECT payment, trip_id, fare FROM 'testdata/trips.csv'")
        .await
        .unwrap();
    let out = format!("{}/by_payment/", dir.path().display());
    frame
        .clone()
        .write_parquet(
            &out,
            DataFrameWriteOptions::new().with_partition_by(vec!["payment".to_string()]),
            None,
        )
        .await
        .unwrap();
    let mut parts: Vec<String> = std::fs::read_dir(dir.path().join("by_payment"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    let payments: Vec<String> = query(
        &db,
        "SELECT DISTINCT 'payment=' || payment FROM 'testdata/trips.csv' ORDER BY 1",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert_eq!(parts, payments);
    assert_eq!(
        query(&db, &format!("SELECT count(*), sum(trip_id) FROM '{out}'")).await,
        query(
            &db,
            "SELECT count(*), sum(trip_id) FROM 'testdata/trips.csv'"
        )
        .await
    );
    for (format, file) in [("csv", "trips.csv"), ("json", "trips.json")] {
        let path = dir.path().join(file);
        let path = path.to_str().unwrap();
        let options = DataFrameWriteOptions::new().with_single_file_output(true);
        match format {
            "csv" => frame.clone().write_csv(path, options, None).await.unwrap(),
            _ => frame.clone().write_json(path, options, None).await.unwrap(),
        };
        assert_eq!(
            query(&db, &format!("SELECT count(*) FROM '{path}'")).await,
            [["2000"]],
            "{format}"
        );
    }
}
