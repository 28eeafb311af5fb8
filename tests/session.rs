//! The library API: building sessions, settings, attaching and describing.

use moltres::{Error, MemoryLimit, Moltres};

use crate::common::{self, query};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_return_the_last_result() {
    let db = common::session().await;
    let rows = query(
        &db,
        "CREATE VIEW pt AS SELECT * FROM 'testdata/cities.parquet' WHERE country = 'PT'; \
         SELECT name FROM pt ORDER BY name",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec!["Lisbon".to_string()], vec!["Porto".to_string()]]
    );
    let err = db.sql("  -- nothing\n ; ").await.unwrap_err();
    assert!(matches!(err, Error::Statement(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_by_name_or_path() {
    let db = common::session().await;
    let df = db.table("'testdata/cities.parquet'").await.unwrap();
    assert_eq!(df.count().await.unwrap(), 8);
    db.attach("testdata/", "files", true).await.unwrap();
    assert_eq!(
        db.table("files.trips")
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        2000
    );
    assert_eq!(
        db.table("files.main.weather")
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        224
    );

    let tables = db.tables().await.unwrap();
    assert!(
        tables.contains(&("files".into(), "main".into(), "cities".into())),
        "{tables:?}"
    );
    let schema = db.describe("files.cities").await.unwrap();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "country"]);

    let sources = db.sources();
    assert_eq!(sources.len(), 1);
    assert!(sources[0].read_only);
    db.detach("files").unwrap();
    assert!(db.table("files.trips").await.is_err());
    assert!(db.detach("files").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_settings_and_their_errors() {
    common::root();
    let db = Moltres::builder()
        .without_env()
        .batch_size(1000)
        .target_partitions(3)
        .memory_limit(MemoryLimit::Bytes(64 << 20))
        .build()
        .await
        .unwrap();
    assert_eq!(db.settings().batch_size, 1000);
    let rows = query(&db, "SHOW datafusion.execution.target_partitions").await;
    assert_eq!(rows[0][1], "3");
    let pool = db.context().runtime_env().memory_pool.clone();
    assert!(format!("{pool:?}").contains("67108864"), "{pool:?}");

    let err = Moltres::builder()
        .without_env()
        .batch_size(0)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    let err = Moltres::builder()
        .without_env()
        .spill_dir("/no/such/dir")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
    let err = Moltres::builder()
        .without_env()
        .config_file("/no/such/moltres.toml")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/moltres.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_attaches_sources_and_bad_sources_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moltres.toml");
    let testdata = common::testdata("");
    std::fs::write(
        &config,
        format!(
            "partitions = 2\n[sources.lake]\nurl = '{}'\nread_only = true\n",
            testdata.display()
        ),
    )
    .unwrap();
    let db = Moltres::builder()
        .without_env()
        .config_file(&config)
        .build()
        .await
        .unwrap();
    assert_eq!(db.settings().target_partitions, 2);
    let rows = query(&db, "SELECT count(*) FROM lake.trips").await;
    assert_eq!(rows, vec![vec!["2000".to_string()]]);

    std::fs::write(&config, "[sources.broken]\nurl = 'ftp://example/x'\n").unwrap();
    let err = Moltres::builder()
        .without_env()
        .config_file(&config)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown scheme 'ftp'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_rows_are_counted_per_session() {
    let db = common::session().await;
    let rows = query(
        &db,
        "SELECT count(*) FROM read_csv('testdata/bad.csv', 'skip_bad_rows=true')",
    )
    .await;
    assert_eq!(rows, vec![vec!["4".to_string()]]);
    let (count, samples) = db.take_skipped_rows();
    assert_eq!(count, 1);
    assert!(samples[0].contains("bad.csv', line 3"), "{samples:?}");
    assert_eq!(db.take_skipped_rows().0, 0, "taking resets the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_current_thread_runtime_too() {
    // Table functions list files synchronously during planning; on a
    // current-thread runtime they must not panic or deadlock.
    let handle = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let db = common::session().await;
                query(&db, "SELECT count(*) FROM read_csv('testdata/trips.csv')").await
            })
    });
    assert_eq!(handle.join().unwrap(), vec![vec!["2000".to_string()]]);
}
