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
        format!("SELECT count(name) FROM '{}'", bad.display()),
    ] {
        let error = common::error(&db, &sql).await;
        assert!(
            error.contains("bad.csv'")
                && error.contains("column 'name' holds a line break")
                && error.contains("unterminated quote"),
            "{sql}: {error}"
        );
    }
    // Queries that do not read the folded column find it in the bytes.
    for sql in [
        format!("SELECT count(*) FROM '{}'", bad.display()),
        format!("SELECT id FROM '{}'", bad.display()),
        format!(
            "SELECT count(*) FROM read_csv('{}', 'skip_bad_rows=true')",
            bad.display()
        ),
        // Found by an outsider: the bad-row filter dropped the folded
        // record as one bad row (three rows lost, one reported), and a
        // null pattern turned it into NULL before the values were checked.
        format!(
            "SELECT * FROM read_csv('{}', 'skip_bad_rows=true')",
            bad.display()
        ),
        format!(
            "SELECT * FROM read_csv('{}', 'null_regex=^Lis')",
            bad.display()
        ),
    ] {
        let error = common::error(&db, &sql).await;
        assert!(
            error.contains(&format!("CSV file '{}': a quoted value", bad.display()))
                && error.contains("a quoted value starting on line 2 spans lines")
                && error.contains("unterminated quote"),
            "{sql}: {error}"
        );
    }
    // Found by an outsider: lines ended by a carriage return alone, and a
    // quote left open in the header (which folded every line into one
    // column name and read no rows).
    let cr = dir.path().join("cr.csv");
    std::fs::write(&cr, "id,name\r1,a\r2,\"b\r3,c\r4,\"d\r5,e\r").unwrap();
    let header = dir.path().join("header.csv");
    std::fs::write(&header, "id,name,\"x\n1,a,z\n2,b,z\n3,c,z\n").unwrap();
    for (file, wanted) in [(&cr, "spans lines"), (&header, "the header's column name")] {
        for sql in ["SELECT count(*) FROM '{}'", "SELECT * FROM '{}'"] {
            let sql = sql.replace("{}", &file.display().to_string());
            let error = common::error(&db, &sql).await;
            assert!(
                error.contains(wanted) || error.contains("holds a line break"),
                "{sql}: {error}"
            );
        }
    }
    // The same in a file read in parallel byte ranges and in a gzip file:
    // 300,000 rows whose quoted values hold delimiters and doubled quotes,
    // and a fold two thirds of the way in.
    let mut good = String::from("id,name,city\n");
    for i in 0..300_000 {
        good.push_str(&format!("{i},\"name, \"\"{i}\"\"\",Lisbon\n"));
    }
    let big_good = dir.path().join("big_good.csv");
    std::fs::write(&big_good, &good).unwrap();
    let cut = good.len() * 2 / 3;
    let cut = cut + good[cut..].find('\n').unwrap() + 1;
    let folded = format!("{}0,\"unterminated,Lisbon\n{}", &good[..cut], &good[cut..]);
    let big_bad = dir.path().join("big_bad.csv");
    std::fs::write(&big_bad, &folded).unwrap();
    let gz_bad = dir.path().join("big_bad.csv.gz");
    let gzip = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&big_bad)
        .status()
        .expect("gzip runs");
    assert!(gzip.success() && gz_bad.exists());
    common::query(
        &db,
        "SET datafusion.optimizer.repartition_file_min_size = 1024",
    )
    .await;
    assert_eq!(
        common::query(
            &db,
            &format!("SELECT count(*) FROM '{}'", big_good.display())
        )
        .await,
        [["300000"]]
    );
    let plan = common::query(
        &db,
        &format!("EXPLAIN SELECT count(*) FROM '{}'", big_bad.display()),
    )
    .await;
    assert!(
        format!("{plan:?}").contains("big_bad.csv:0.."),
        "not read in byte ranges: {plan:?}"
    );
    for file in [&big_bad, &gz_bad] {
        let error =
            common::error(&db, &format!("SELECT count(id) FROM '{}'", file.display())).await;
        assert!(
            error.contains("spans lines: an unterminated quote"),
            "{}: {error}",
            file.display()
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

/// Issue 18, part 1: files give statistics too. A CSV file's rows are
/// estimated from its size and the lines at its start (a join over it
/// needs them to choose its build side); a Parquet file's come from its
/// footer, with each column's bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_give_row_estimates_and_footer_statistics() {
    let db = common::session().await;
    common::query(&db, "SET datafusion.explain.show_statistics = true").await;
    let rows_of = |plan: &str| -> (String, usize) {
        let at = plan.find("Rows=").expect(plan) + "Rows=".len();
        let precision: String = plan[at..].chars().take_while(|c| *c != '(').collect();
        let start = at + precision.len() + 1;
        let digits: String = plan[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (precision, digits.parse().expect(plan))
    };
    let explain = |sql: String| {
        let db = &db;
        async move {
            common::query(db, &format!("EXPLAIN {sql}"))
                .await
                .into_iter()
                .map(|r| r.join("|"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let dir = tempfile::tempdir().unwrap();
    // Lines of uneven length: 1 to 6 digits, and a name of 0 to 29 bytes.
    let big = dir.path().join("big.csv");
    let mut text = String::from("id,name\n");
    for i in 0..150_000u32 {
        text.push_str(&format!("{i},{}\n", "x".repeat((i % 30) as usize)));
    }
    std::fs::write(&big, &text).unwrap();
    let plan = explain(format!("SELECT id FROM '{}'", big.display())).await;
    let (precision, rows) = rows_of(&plan);
    assert_eq!(precision, "Inexact", "{plan}");
    assert!((135_000..=165_000).contains(&rows), "{rows}: {plan}");
    // A small file: its lines, less the header.
    let small = dir.path().join("small.csv");
    std::fs::write(&small, "a,b\n1,2\n3,4\n5,6").unwrap();
    let plan = explain(format!("SELECT a FROM '{}'", small.display())).await;
    assert_eq!(rows_of(&plan), ("Inexact".to_string(), 3), "{plan}");
    // Parquet: the footer's counts and bounds.
    let parquet = dir.path().join("trips.parquet");
    common::query(
        &db,
        &format!(
            "COPY (SELECT trip_id, fare FROM 'testdata/trips.csv') TO '{}' STORED AS PARQUET",
            parquet.display()
        ),
    )
    .await;
    let plan = explain(format!("SELECT trip_id FROM '{}'", parquet.display())).await;
    assert_eq!(rows_of(&plan), ("Exact".to_string(), 2000), "{plan}");
    assert!(
        plan.contains("Min=Exact(Int64(1)) Max=Exact(Int64(2000))"),
        "{plan}"
    );
}
