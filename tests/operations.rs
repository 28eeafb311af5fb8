//! Operations: hooks for every kind of statement (and hooks that fail),
//! metrics and their Prometheus text, health checks, the query timeout
//! (which cancels the remote query), the cap on concurrent queries, pool
//! settings from the environment, and JSON logs without passwords.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moltres::{HookResult, Moltres, QueryHook, QueryInfo, QueryOutcome, StatementKind};

use crate::common::{self, query};

/// Everything hooks saw: (event, kind, sql, sources, remote sql, rows, error).
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, QueryInfo, Option<QueryOutcome>)>>,
}

impl QueryHook for Recorder {
    fn on_query_start(&self, query: &QueryInfo) -> HookResult {
        self.events
            .lock()
            .unwrap()
            .push(("start".into(), query.clone(), None));
        Ok(())
    }

    fn on_query_end(&self, query: &QueryInfo, outcome: &QueryOutcome) -> HookResult {
        self.events
            .lock()
            .unwrap()
            .push(("end".into(), query.clone(), Some(outcome.clone())));
        Ok(())
    }

    fn on_query_error(&self, query: &QueryInfo, outcome: &QueryOutcome) -> HookResult {
        self.events
            .lock()
            .unwrap()
            .push(("error".into(), query.clone(), Some(outcome.clone())));
        Ok(())
    }
}

/// Fails in every way a hook can.
struct Broken;

impl QueryHook for Broken {
    fn on_query_start(&self, _query: &QueryInfo) -> HookResult {
        panic!("a hook that panics")
    }

    fn on_query_end(&self, _query: &QueryInfo, _outcome: &QueryOutcome) -> HookResult {
        Err("a hook that fails".into())
    }

    fn on_query_error(&self, _query: &QueryInfo, _outcome: &QueryOutcome) -> HookResult {
        panic!("a hook that panics on errors too")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_every_kind_of_statement() {
    common::root();
    let db = common::session().await;
    let recorder = Arc::new(Recorder::default());
    db.register_hook(Arc::new(Broken));
    db.register_hook(Arc::clone(&recorder) as Arc<dyn QueryHook>);
    let ends = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&ends);
    db.on_query_end(move |_, _| *counted.lock().unwrap() += 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooks.db");
    query(
        &db,
        &format!("ATTACH 'sqlite:{}?mode=rwc' AS lite", path.display()),
    )
    .await;
    query(
        &db,
        "CREATE TABLE lite.trips (trip_id BIGINT, payment TEXT)",
    )
    .await;
    query(
        &db,
        "INSERT INTO lite.trips SELECT trip_id, payment FROM 'testdata/trips.csv'",
    )
    .await;
    assert_eq!(
        query(
            &db,
            "SELECT count(*) FROM lite.trips l JOIN 'testdata/trips.csv' t ON t.trip_id = l.trip_id \
             WHERE l.payment = 'cash'"
        )
        .await,
        query(&db, "SELECT count(*) FROM 'testdata/trips.csv' WHERE payment = 'cash'").await
    );
    db.source("lite")
        .unwrap()
        .execute("DELETE FROM trips WHERE trip_id > 1990")
        .await
        .unwrap();
    let err = common::error(&db, "SELECT nope FROM lite.trips").await;
    assert!(err.contains("nope"), "{err}");
    let mut tx = db.begin("lite").await.unwrap();
    tx.execute("DELETE FROM trips WHERE trip_id > 1980")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let events = recorder.events.lock().unwrap().clone();
    let find = |event: &str, kind: StatementKind, sql: &str| {
        events
            .iter()
            .find(|(e, q, _)| e == event && q.kind == kind && q.sql.contains(sql))
            .unwrap_or_else(|| panic!("no {event} of a {kind} with '{sql}' in {events:#?}"))
            .clone()
    };
    find("end", StatementKind::Session, "ATTACH");
    find("end", StatementKind::Ddl, "CREATE TABLE lite.trips");
    let (_, insert, outcome) = find("end", StatementKind::Write, "INSERT INTO lite.trips");
    assert_eq!(insert.sources, ["lite", "files"]);
    let read = outcome.unwrap().read;
    assert!(
        read.iter()
            .any(|(s, rows, _)| s == "files" && *rows == 2000),
        "{read:?}"
    );
    let (_, select, outcome) = find("end", StatementKind::Query, "JOIN 'testdata/trips.csv'");
    assert!(select.sources.contains(&"lite".to_string()), "{select:?}");
    let remote = &select.remote_sql[0];
    assert_eq!(remote.0, "lite");
    assert!(
        remote.1.contains("payment") && remote.1.contains("= 'cash'"),
        "{remote:?}"
    );
    let outcome = outcome.unwrap();
    assert_eq!(outcome.rows, 1);
    assert!(outcome.elapsed > Duration::ZERO);
    assert!(
        outcome
            .read
            .iter()
            .any(|(s, rows, _)| s == "lite" && *rows > 0),
        "{outcome:?}"
    );
    find(
        "end",
        StatementKind::Passthrough,
        "DELETE FROM trips WHERE trip_id > 1990",
    );
    let (_, _, failed) = find("error", StatementKind::Query, "SELECT nope");
    assert!(failed.unwrap().error.unwrap().contains("nope"));
    find("end", StatementKind::Transaction, "trip_id > 1980");
    find("end", StatementKind::Transaction, "COMMIT");
    // Every start has its end or error, with the same id.
    let starts: Vec<u64> = events
        .iter()
        .filter(|(e, _, _)| e == "start")
        .map(|(_, q, _)| q.id)
        .collect();
    let mut ends_ids: Vec<u64> = events
        .iter()
        .filter(|(e, _, _)| e != "start")
        .map(|(_, q, _)| q.id)
        .collect();
    ends_ids.sort();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(sorted, ends_ids);
    assert_eq!(
        *ends.lock().unwrap(),
        events.iter().filter(|(e, _, _)| e == "end").count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_prometheus_text() {
    common::root();
    let db = common::session().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    db.attach(&format!("sqlite:{}", path.display()), "m_lite", false)
        .await
        .unwrap();
    for _ in 0..5 {
        query(&db, "SELECT id FROM m_lite.t WHERE id > 1").await;
    }
    query(&db, "SELECT count(*) FROM 'testdata/trips.csv'").await;
    common::error(&db, "SELECT * FROM m_lite.missing").await;
    let m = db.metrics();
    assert!(m.queries >= 7, "{m:?}");
    assert!(m.errors >= 1, "{m:?}");
    assert!(m.duration_p50 > Duration::ZERO && m.duration_p50 <= m.duration_p99);
    let lite = m.sources.iter().find(|s| s.name == "m_lite").unwrap();
    assert_eq!(lite.rows_read, 10, "{lite:?}"); // 5 x 2 rows, filtered in SQLite
    assert_eq!(lite.remote_queries, 5);
    assert!(lite.bytes_read > 0);
    let pool = lite.pool.unwrap();
    assert_eq!(pool.max_size, 4);
    assert!(pool.size >= 1 && pool.in_use == 0, "{pool:?}");
    let files = m.sources.iter().find(|s| s.name == "files").unwrap();
    assert_eq!(files.rows_read, 2000);

    let text = m.to_prometheus();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(name.starts_with("moltres_"), "{line}");
    }
    assert!(
        text.contains(&format!("moltres_queries_total {}\n", m.queries)),
        "{text}"
    );
    assert!(
        text.contains("moltres_source_rows_read_total{source=\"m_lite\"} 10\n"),
        "{text}"
    );
    assert!(
        text.contains("moltres_pool_max_size{source=\"m_lite\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("moltres_query_duration_seconds_bucket{le=\"+Inf\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE moltres_query_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_source() {
    let db = common::session().await;
    db.attach(&common::postgres_url(), "pg", true)
        .await
        .unwrap();
    db.attach(&format!("{}/test", common::mysql_url()), "my", true)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a.csv"), "x\n1\n").unwrap();
    db.attach(files.to_str().unwrap(), "gone", true)
        .await
        .unwrap();
    db.attach("sqlite::memory:", "mem", false).await.unwrap();
    std::fs::remove_dir_all(&files).unwrap();
    let health = db.check_health().await;
    let by_name = |name: &str| health.iter().find(|h| h.name == name).unwrap().clone();
    let pg = by_name("pg");
    assert!(pg.healthy, "{pg:?}");
    assert!(pg.server_version.unwrap().contains('.'));
    assert!(pg.latency > Duration::ZERO);
    assert!(pg.pool.unwrap().max_size >= 1);
    let my = by_name("my");
    assert!(my.healthy, "{my:?}");
    assert!(my.server_version.unwrap().contains("MariaDB"));
    let mem = by_name("mem");
    assert!(mem.healthy && mem.server_version.unwrap().starts_with("SQLite 3."));
    let gone = by_name("gone");
    assert!(!gone.healthy);
    assert!(gone.error.unwrap().contains("files"), "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_cancels_the_remote_query() {
    let db = common::session().await;
    db.attach(&common::postgres_url(), "pg", true)
        .await
        .unwrap();
    query(&db, "SET moltres.query_timeout = '1s'").await;
    let marker = format!("moltres_timeout_{}", std::process::id());
    let started = Instant::now();
    let err = common::error(
        &db,
        &format!("SELECT * FROM postgres_query('pg', 'SELECT pg_sleep(30)::text, ''{marker}''')"),
    )
    .await;
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server stops the statement (cancelled, not left running).
    let (client, connection) =
        tokio_postgres::connect(&common::postgres_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut running = 1;
    for _ in 0..50 {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%' \
             AND query NOT LIKE '%pg_stat_activity%'"
        );
        running = client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the remote query is still running");
    // `0` turns it off for the session; the builder sets a default.
    query(&db, "SET moltres.query_timeout = '0'").await;
    query(
        &db,
        "SELECT * FROM postgres_query('pg', 'SELECT pg_sleep(1.2)::text')",
    )
    .await;
    let db = Moltres::builder()
        .without_env()
        .query_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    db.attach(&common::postgres_url(), "pg", true)
        .await
        .unwrap();
    let err = common::error(
        &db,
        "SELECT * FROM postgres_query('pg', 'SELECT pg_sleep(5)::text')",
    )
    .await;
    assert!(err.contains("timed out after 500ms"), "{err}");
    assert_eq!(db.metrics().timeouts, 1);
    let err = common::error(&db, "SET moltres.query_timeout = 'soon'; SELECT 1").await;
    assert!(err.contains("moltres.query_timeout"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_wait_for_a_slot_then_are_refused() {
    let db = Moltres::builder()
        .without_env()
        .max_concurrent_queries(1)
        .queue_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    db.attach(&common::postgres_url(), "pg", true)
        .await
        .unwrap();
    let slow = {
        let db = db.clone();
        tokio::spawn(async move {
            db.sql("SELECT * FROM postgres_query('pg', 'SELECT pg_sleep(2)::text')")
                .await
                .unwrap()
                .collect()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waited = Instant::now();
    let err = common::error(&db, "SELECT 1").await;
    assert!(
        err.contains("too many concurrent queries: waited 300ms for one of 1 slots"),
        "{err}"
    );
    assert!(waited.elapsed() >= Duration::from_millis(300));
    slow.await.unwrap().unwrap();
    // Once the slot is free, queries run again.
    assert_eq!(query(&db, "SELECT 1").await, [["1"]]);
    let m = db.metrics();
    assert_eq!(m.queue_timeouts, 1);
    assert_eq!((m.running, m.waiting), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_settings_from_the_environment_yield_to_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moltres.toml");
    std::fs::write(&config, "[pool]\nmax_size = 3\ntimeout = '2s'\n").unwrap();
    let db = Moltres::builder()
        .without_env()
        .config_file(&config)
        .build()
        .await
        .unwrap();
    db.attach("sqlite::memory:", "a", false).await.unwrap();
    db.attach("sqlite::memory:?pool_max_size=2", "b", false)
        .await
        .unwrap();
    db.attach(
        &format!("{}?pool_max_size=5", common::postgres_url()),
        "pg",
        true,
    )
    .await
    .unwrap();
    let m = db.metrics();
    let size = |name: &str| {
        m.sources
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.pool)
            .unwrap()
            .max_size
    };
    assert_eq!((size("a"), size("b"), size("pg")), (3, 2, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_counts_connections_and_acquire_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let db = common::session().await;
    let alias = format!("pool_{}", std::process::id());
    db.attach(
        &format!("sqlite:{}?pool_max_size=1&pool_timeout=0.3", path.display()),
        &alias,
        false,
    )
    .await
    .unwrap();
    let pool = |db: &Moltres| {
        db.metrics()
            .sources
            .into_iter()
            .find(|s| s.name == alias)
            .and_then(|s| s.pool)
            .unwrap()
    };
    // A transaction holds the only connection: a query waits 0.3 s, then fails.
    let tx = db.begin(&alias).await.unwrap();
    let status = pool(&db);
    assert_eq!(
        (status.max_size, status.in_use, status.idle),
        (1, 1, 0),
        "{status:?}"
    );
    let err = common::error(&db, &format!("SELECT * FROM {alias}.t")).await;
    assert!(err.contains("timed out waiting for a connection"), "{err}");
    assert_eq!(pool(&db).acquire_timeouts, 1);
    tx.rollback().await.unwrap();
    assert_eq!(
        query(&db, &format!("SELECT * FROM {alias}.t")).await,
        [["1"]]
    );
    let status = pool(&db);
    assert_eq!((status.in_use, status.idle), (0, 1), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_kills_the_mysql_query() {
    use mysql_async::prelude::Queryable;
    let db = Moltres::builder()
        .without_env()
        .query_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    db.attach(&format!("{}/test", common::mysql_url()), "my", true)
        .await
        .unwrap();
    let marker = format!("moltres_kill_{}", std::process::id());
    let started = Instant::now();
    let err = common::error(
        &db,
        &format!("SELECT * FROM mysql_query('my', 'SELECT SLEEP(30) AS s, ''{marker}'' AS m')"),
    )
    .await;
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pool = mysql_async::Pool::new(format!("{}/test", common::mysql_url()).as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let mut running = 1;
    for _ in 0..50 {
        let sql = format!(
            "SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%{marker}%' \
             AND info NOT LIKE '%processlist%'"
        );
        running = conn.query_first::<i64, _>(sql).await.unwrap().unwrap_or(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the MySQL query is still running");
    drop(conn);
    pool.disconnect().await.unwrap();
}
