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

/// Issue 17, part 6: an unterminated quote used to fold the rest of the
/// file into one value (three rows read as two, no warning, even with
/// skip_bad_rows). A value spanning lines is refused unless the file is
/// read with newlines_in_values=true, which reads multi-line values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unterminated_quote_is_an_error_not_fewer_rows() {
    let db = common::session().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,name\n1,\"Lisbon\n2,Porto\n3,Faro\n").unwrap();
    for sql in [
        format!("SELECT * FROM '{}'", bad.display()),
        // Only read values are checked: `count(*)`, which reads none, is not.
        format!("SELECT count(name) FROM '{}'", bad.display()),
        format!(
            "SELECT * FROM read_csv('{}', 'skip_bad_rows=true')",
            bad.display()
        ),
    ] {
        let error = common::error(&db, &sql).await;
        assert!(
            error.contains("bad.csv'")
                && error.contains("column 'name' holds a line break")
                && error.contains("unterminated quote"),
            "{sql}: {error}"
        );
    }
    let multi = dir.path().join("multi.csv");
    std::fs::write(&multi, "id,note\n1,\"two\nlines\"\n2,one\n").unwrap();
    assert_eq!(
        common::query(
            &db,
            &format!(
                "SELECT id, length(note) FROM read_csv('{}', 'newlines_in_values=true') ORDER BY id",
                multi.display()
            )
        )
        .await,
        [["1", "9"], ["2", "3"]]
    );
}
