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
