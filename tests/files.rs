//! File-source API tests.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_partitioned_once() {
    let db = common::session().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("by_payment/");
    let sql = format!(
        "COPY (SELECT payment, trip_id FROM 'testdata/trips.csv') TO '{}/' STORED AS PARQUET PARTITIONED BY (payment)",
        out.display()
    );
    let rows = common::query(&db, &sql).await;
    assert_eq!(rows, vec![vec!["2000".to_string()]]);
    let rows = common::query(&db, &format!("SELECT count(*) FROM '{}/'", out.display())).await;
    assert_eq!(rows, vec![vec!["2000".to_string()]]);
}
