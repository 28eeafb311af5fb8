//! Faults between Moltres and its databases, made by a TCP proxy written
//! for the tests: it forwards both ways until told to stall, then holds
//! every connection open and forwards nothing more (a hung server, a
//! stalled network, a full send buffer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;

/// A new session with `url` attached as `alias`.
async fn attached(url: &str, alias: &str) -> moltres::Moltres {
    let db = common::session().await;
    db.attach(url, alias, false).await.unwrap();
    db
}

/// A proxy on a free local port to `upstream`.
struct StallProxy {
    port: u16,
    /// Server-to-client bytes a connection forwards before it stalls
    /// (`usize::MAX`: never).
    budget: Arc<AtomicUsize>,
    /// Stall every connection now, whatever its budget.
    stalled: Arc<AtomicBool>,
}

impl StallProxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        let stalled = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (b, s) = (Arc::clone(&budget), Arc::clone(&stalled));
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let budget = b.load(Ordering::SeqCst);
                tokio::spawn(forward(client, server, budget, Arc::clone(&s)));
            }
        });
        StallProxy {
            port,
            budget,
            stalled,
        }
    }
}

/// Copies both ways; once `budget` bytes went to the client, or `stalled`
/// is set, reads nothing more and writes nothing more, but keeps both
/// sockets open.
async fn forward(client: TcpStream, server: TcpStream, budget: usize, stalled: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_stalled = Arc::clone(&stalled);
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if up_stalled.load(Ordering::SeqCst) {
                return (client_read, server_write);
            }
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return (client_read, server_write),
                Ok(n) => n,
            };
            if up_stalled.load(Ordering::SeqCst) || server_write.write_all(&buf[..n]).await.is_err()
            {
                return (client_read, server_write);
            }
        }
    });
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.load(Ordering::SeqCst) {
            break;
        }
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = budget.saturating_sub(sent).min(n);
        if allowed > 0 && client_write.write_all(&buf[..allowed]).await.is_err() {
            break;
        }
        sent += allowed;
        if allowed < n {
            // Out of budget: from now on this connection is stalled.
            break;
        }
    }
    // Hold every socket open (the peer sees a silent connection, not a
    // closed one) until the test ends.
    let held = up.await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop((held, server_read, client_write));
}

/// Issue 17, part 1: a query whose connection stalls mid-result times out,
/// and that connection never goes back to the pool: the next query on the
/// source answers at once, with `pool_pre_ping` on or off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_never_returns_to_the_pool() {
    let schema = format!("moltres_stall_{}", std::process::id());
    let admin = common::postgres_schema(
        &schema,
        "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 100000) g;
         CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 10) g;",
    )
    .await;
    let proxy = StallProxy::start("127.0.0.1:5432").await;
    for pre_ping in [false, true] {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/test?pool_max_size=1&pool_pre_ping={pre_ping}&connect_timeout=5",
            proxy.port
        );
        let db = attached(&url, "pg").await;
        // Warm the pool's one connection, then let it stall after 1 MB.
        assert_eq!(
            common::query(&db, &format!("SELECT count(*) FROM pg.{schema}.small")).await,
            [["10"]]
        );
        proxy.budget.store(1 << 20, Ordering::SeqCst);
        // Connections made from now on stall after 1 MB; the pooled one was
        // made before, so make it stall too by closing it: the pool opens a
        // new one through the proxy.
        db.sql("DETACH pg").await.unwrap();
        db.attach(&url, "pg", false).await.unwrap();
        db.sql("SET moltres.query_timeout = '2s'").await.unwrap();
        let started = Instant::now();
        let error = common::error(&db, &format!("SELECT * FROM pg.{schema}.big")).await;
        assert!(error.contains("timed out"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
        // New connections go through again.
        proxy.budget.store(usize::MAX, Ordering::SeqCst);
        let started = Instant::now();
        let next = tokio::time::timeout(
            Duration::from_secs(20),
            common::query(&db, &format!("SELECT count(*) FROM pg.{schema}.small")),
        )
        .await
        .unwrap_or_else(|_| {
            panic!("pre_ping={pre_ping}: the query after a stalled one hung for 20 s")
        });
        assert_eq!(next, [["10"]]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pre_ping={pre_ping}: {:?}",
            started.elapsed()
        );
    }
    proxy.stalled.store(true, Ordering::SeqCst);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Issue 17, part 1: with the server stalled before a query starts, the
/// query timeout also bounds planning (a table's schema looked up for the
/// first time), and the error says the limit that held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_timeout_covers_planning_on_a_stalled_server() {
    let schema = format!("moltres_stall_plan_{}", std::process::id());
    let admin = common::postgres_schema(
        &schema,
        "CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 10) g;
         CREATE TABLE other AS SELECT g AS id FROM generate_series(1, 10) g;",
    )
    .await;
    let proxy = StallProxy::start("127.0.0.1:5432").await;
    let db = attached(
        &format!(
            "postgres://postgres@127.0.0.1:{}/test?pool_max_size=2&connect_timeout=30",
            proxy.port
        ),
        "pg",
    )
    .await;
    assert_eq!(
        common::query(&db, &format!("SELECT count(*) FROM pg.{schema}.small")).await,
        [["10"]]
    );
    proxy.stalled.store(true, Ordering::SeqCst);
    db.sql("SET moltres.query_timeout = '2s'").await.unwrap();
    // Not yet `CREATE TABLE ... AS`: its check that the table does not
    // exist is a synchronous catalog call, bounded only by
    // `connect_timeout` (docs/reliability.md).
    {
        let sql = format!("SELECT count(*) FROM pg.{schema}.other");
        let started = Instant::now();
        let error = tokio::time::timeout(Duration::from_secs(30), common::error(&db, &sql))
            .await
            .unwrap_or_else(|_| panic!("{sql}: no answer within 30 s with a 2 s timeout"));
        assert!(error.contains("timed out after 2s"), "{sql}: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{sql}: {:?}: {error}",
            started.elapsed()
        );
    }
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Issue 17, part 2: a MySQL URL naming a proxy on 127.0.0.1 goes through
/// the proxy (mysql_async moves such connections onto the server's Unix
/// socket unless told not to). Shown by stalling the proxy: the query
/// through it times out. (`prefer_socket=true` asks for the move; whether
/// mysql_async makes it depends on the server's `@@socket`, so only the
/// default is checked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connections_go_where_the_url_says() {
    let database = format!("moltres_socket_{}", std::process::id());
    let mut admin = common::mysql_database(
        &database,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    {
        let prefer_socket = false;
        let proxy = StallProxy::start("127.0.0.1:3306").await;
        let db = attached(&format!(
                "mysql://root@127.0.0.1:{}/{database}?pool_max_size=1&prefer_socket={prefer_socket}",
                proxy.port
            ), "my").await;
        assert_eq!(
            common::query(&db, "SELECT count(*) FROM my.t").await,
            [["2"]]
        );
        proxy.stalled.store(true, Ordering::SeqCst);
        db.sql("SET moltres.query_timeout = '2s'").await.unwrap();
        // Through the stalled proxy: an error, never an answer.
        let error = common::error(&db, "SELECT id FROM my.t WHERE id = 2").await;
        assert!(error.contains("timed out"), "{error}");
    }
    use mysql_async::prelude::Queryable;
    admin
        .query_drop(format!("DROP DATABASE {database}"))
        .await
        .unwrap();
}

/// Issue 17, part 1, on MySQL: a result that stalls mid-stream times out,
/// the server's query is killed from a connection outside the (full) pool,
/// and the stalled connection is discarded: the next query on the source
/// answers at once (it used to wait for ever behind the stalled result).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_mysql_connection_never_returns_to_the_pool() {
    let database = format!("moltres_stall_my_{}", std::process::id());
    let mut admin = common::mysql_database(
        &database,
        "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200));
         INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_100000;
         CREATE TABLE small (id INT PRIMARY KEY);
         INSERT INTO small VALUES (1), (2);",
    )
    .await;
    let proxy = StallProxy::start("127.0.0.1:3306").await;
    proxy.budget.store(1 << 20, Ordering::SeqCst);
    let db = attached(
        &format!(
            "mysql://root@127.0.0.1:{}/{database}?pool_max_size=1",
            proxy.port
        ),
        "my",
    )
    .await;
    db.sql("SET moltres.query_timeout = '2s'").await.unwrap();
    let started = Instant::now();
    let error = common::error(&db, "SELECT * FROM my.big").await;
    assert!(error.contains("timed out"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10), "{error}");
    proxy.budget.store(usize::MAX, Ordering::SeqCst);
    db.sql("SET moltres.query_timeout = '20s'").await.unwrap();
    let started = Instant::now();
    let next = common::answer(&db, "SELECT count(*) FROM my.small").await;
    assert_eq!(
        next,
        Ok(vec![vec!["2".to_string()]]),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    use mysql_async::prelude::Queryable;
    admin
        .query_drop(format!("DROP DATABASE {database}"))
        .await
        .unwrap();
}

/// Issue 17, part 6: a statement dropped while it is planned (a caller's
/// timeout, Ctrl-C) is counted as a cancelled statement, and nothing is
/// left counted as running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_cancelled_while_planning_are_counted() {
    let schema = format!("moltres_stall_cancel_{}", std::process::id());
    let admin = common::postgres_schema(
        &schema,
        "CREATE TABLE small AS SELECT 1 AS id; CREATE TABLE other AS SELECT 1 AS id;",
    )
    .await;
    let proxy = StallProxy::start("127.0.0.1:5432").await;
    let db = attached(
        &format!("postgres://postgres@127.0.0.1:{}/test", proxy.port),
        "pg",
    )
    .await;
    assert_eq!(
        common::query(&db, &format!("SELECT count(*) FROM pg.{schema}.small")).await,
        [["1"]]
    );
    proxy.stalled.store(true, Ordering::SeqCst);
    let before = db.metrics();
    // The schema of `other` is looked up while planning, on the stalled
    // server: the caller gives up first.
    let sql = format!("SELECT count(*) FROM pg.{schema}.other");
    let gave_up = tokio::time::timeout(Duration::from_millis(500), db.sql(&sql)).await;
    assert!(gave_up.is_err(), "planning should have waited on the stall");
    let after = db.metrics();
    assert_eq!(after.cancelled, before.cancelled + 1, "{after:?}");
    assert_eq!(after.queries, before.queries + 1, "{after:?}");
    assert_eq!(after.running, 0, "{after:?}");
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Issue 17, part 2: a server that accepts connections and never answers
/// (a listening socket nobody serves) fails an ATTACH within
/// `connect_timeout`, on both databases, saying which setting ran out. For
/// MySQL it used to take `pool_timeout` (30 s) whatever `connect_timeout`
/// said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_fails_within_connect_timeout() {
    // The kernel completes the handshakes; nobody reads or writes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [
        format!("mysql://root@127.0.0.1:{port}/test?connect_timeout=2"),
        format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=2"),
    ] {
        let db = common::session().await;
        let started = Instant::now();
        let error = db
            .attach(&url, "silent", false)
            .await
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
            "{url}: {took:?}: {error}"
        );
        assert!(
            error.contains("silent") && error.contains("connect_timeout")
                || error.contains("timed out"),
            "{url}: {error}"
        );
    }
    drop(listener);
}

/// Reads `sql` batch by batch; after the first batch runs `crash`, then
/// reads on. Returns the rows read and how the stream ended.
async fn crash_mid_scan(
    db: &moltres::Moltres,
    sql: &str,
    crash: impl FnOnce(),
) -> (usize, Result<(), String>) {
    use futures::StreamExt;
    let mut stream = db.sql(sql).await.unwrap().execute_stream().await.unwrap();
    let first = stream.next().await.expect("a first batch").unwrap();
    let mut rows = first.num_rows();
    crash();
    let rest = async {
        while let Some(batch) = stream.next().await {
            rows += batch.map_err(|e| e.to_string())?.num_rows();
        }
        Ok(())
    };
    let ended = tokio::time::timeout(Duration::from_secs(60), rest)
        .await
        .expect("the scan ended within 60 s of the crash");
    (rows, ended)
}

/// Starts a 20 M-row `INSERT INTO table` (2 M finished within 1.5 s in CI), runs `crash` 1.5 s into it, and
/// returns the load's error (a load cut short by a crash must fail).
async fn crash_mid_load(db: &moltres::Moltres, table: &str, crash: impl FnOnce()) -> String {
    let load = {
        let db = db.clone();
        let sql = format!(
            "INSERT INTO {table} SELECT value AS id, repeat('y', 100) AS pad \
             FROM generate_series(1, 20000000)"
        );
        tokio::spawn(async move { common::answer(&db, &sql).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if load.is_finished() {
        panic!("the load ended before the crash: {:?}", load.await.unwrap());
    }
    crash();
    let loaded = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("the load ended within 60 s of the crash")
        .unwrap();
    loaded.expect_err("a load cut short by a crash must fail")
}

/// Issue 17, part 7: a throwaway PostgreSQL server crashed (`pg_ctl stop -m
/// immediate`) in the middle of a scan and in the middle of a load. The
/// scan ends with an error naming the source, never a short answer; the
/// load leaves the table as it was; once the server is back, the same
/// session's next queries answer (no dead connection is lent out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_crashed_mid_scan_and_mid_load() {
    let server = crate::throwaway::Postgres::start();
    server
        .client()
        .await
        .batch_execute(
            "CREATE TABLE big AS SELECT g AS id, repeat('x', 100) AS pad \
             FROM generate_series(1, 1000000) g; CREATE TABLE target (id bigint, pad text);",
        )
        .await
        .unwrap();
    let db = attached(&server.url("?pool_max_size=4"), "pg").await;
    let (rows, ended) =
        crash_mid_scan(&db, "SELECT id, pad FROM pg.public.big", || server.crash()).await;
    let error = ended.expect_err("a scan cut short by a crash must fail");
    assert!(rows < 1_000_000, "{rows} rows");
    assert!(error.contains("'pg'"), "{error}");
    server.start_again();
    assert_eq!(
        common::query(&db, "SELECT count(*) FROM pg.public.big").await,
        [["1000000"]],
        "the first query after the restart"
    );

    // A load of 2 M rows, crashed after a second.
    let error = crash_mid_load(&db, "pg.public.target", || server.crash()).await;
    assert!(error.contains("'pg'"), "{error}");
    server.start_again();
    assert_eq!(
        common::query(&db, "SELECT count(*) FROM pg.public.target").await,
        [["0"]],
        "a crashed load left rows"
    );
    assert_eq!(
        common::query(
            &db,
            "INSERT INTO pg.public.target SELECT value AS id, 'z' AS pad FROM generate_series(1, 10)"
        )
        .await,
        [["10"]]
    );
}

/// Issue 17, part 7, on MariaDB: the server killed (SIGKILL) in the middle
/// of a scan and of a load; as for PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_server_killed_mid_scan_and_mid_load() {
    use mysql_async::prelude::Queryable;
    let server = crate::throwaway::Mariadb::start();
    let mut conn = server.conn("mysql").await;
    conn.query_drop(
        "CREATE DATABASE t; USE t; CREATE TABLE target (id BIGINT, pad TEXT); \
         CREATE TABLE big (id BIGINT PRIMARY KEY, pad TEXT); \
         INSERT INTO big SELECT seq, REPEAT('x', 100) FROM seq_1_to_300000;",
    )
    .await
    .unwrap();
    drop(conn);
    let db = attached(&server.url("t", "?pool_max_size=4"), "my").await;
    let (rows, ended) = crash_mid_scan(&db, "SELECT id, pad FROM my.big", || server.crash()).await;
    let error = ended.expect_err("a scan cut short by a crash must fail");
    assert!(rows < 300_000, "{rows} rows");
    assert!(error.contains("'my'"), "{error}");
    server.start_again();
    assert_eq!(
        common::query(&db, "SELECT count(*) FROM my.big").await,
        [["300000"]],
        "the first query after the restart"
    );

    // A load of 2 M rows, crashed after a second.
    let error = crash_mid_load(&db, "my.target", || server.crash()).await;
    assert!(error.contains("'my'"), "{error}");
    server.start_again();
    assert_eq!(
        common::query(&db, "SELECT count(*) FROM my.target").await,
        [["0"]],
        "a crashed load left rows"
    );
}

/// Issue 17, part 7: 32 concurrent queries on a pool of 4 (a throwaway
/// server) all answer, and afterwards no connection is lent out and the
/// server sees no more than the pool's connections, none of them busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_queries_give_every_connection_back() {
    let server = crate::throwaway::Postgres::start();
    let admin = server.client().await;
    admin
        .batch_execute(
            "CREATE TABLE big AS SELECT g AS id, g % 97 AS k FROM generate_series(1, 200000) g",
        )
        .await
        .unwrap();
    let db = attached(
        &server.url("?pool_max_size=4&application_name=moltres_32"),
        "pg",
    )
    .await;
    let queries = (1..=32).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let sql = format!(
                "SELECT count(*), sum(b.id) FROM pg.public.big b JOIN \
                 (SELECT column1 AS k FROM (VALUES ({}), ({}))) v ON b.k = v.k",
                i % 97,
                (i * 7) % 97
            );
            common::answer(&db, &sql).await
        })
    });
    let answers = futures::future::join_all(queries).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let rows = answer
            .unwrap()
            .unwrap_or_else(|e| panic!("query {}: {e}", i + 1));
        assert_eq!(rows.len(), 1, "query {}", i + 1);
    }
    let status = db.source("pg").unwrap().database().pool_status().unwrap();
    assert_eq!(status.in_use, 0, "{status:?}");
    assert!(status.size <= 4, "{status:?}");
    let busy = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity \
             WHERE application_name = 'moltres_32'",
            &[],
        )
        .await
        .unwrap();
    let (open, active): (i64, i64) = (busy.get(0), busy.get(1));
    assert!(
        open <= 4 && active == 0,
        "{open} connections, {active} busy"
    );
}

/// Issue 17, part 6: the shell's `-q` keeps the libraries' own warnings
/// (deadpool's "Connection error" for each pooled connection of a server
/// that went away) off stderr; without it they show. The statement after
/// the server came back answers either way.
#[test]
fn quiet_keeps_the_pools_warnings_off_stderr() {
    let server = crate::throwaway::Postgres::start();
    let status = std::process::Command::new("psql")
        .args([&server.url(""), "-qc", "CREATE TABLE t AS SELECT 1 AS id"])
        .status()
        .unwrap();
    assert!(status.success());
    let shared = common::postgres_url();
    for quiet in [false, true] {
        let script = format!(
            "ATTACH '{}' AS pg; ATTACH '{shared}' AS s; SELECT count(*) FROM pg.public.t; \
             SELECT * FROM postgres_query('s', 'SELECT pg_sleep(4)::text AS z'); \
             SELECT count(*) AS after FROM pg.public.t;",
            server.url("")
        );
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_moltres"));
        command.current_dir(common::root());
        for (key, _) in std::env::vars() {
            if key.starts_with("MOLTRES_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        if quiet {
            command.arg("-q");
        }
        let child = command
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        server.crash();
        server.start_again();
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stdout.contains("after\n1"), "{stdout}");
        if quiet {
            assert!(!stderr.contains("deadpool"), "-q: {stderr}");
        } else {
            assert!(stderr.contains("deadpool"), "without -q: {stderr}");
        }
    }
}
