//! Shared test helpers.

use std::path::{Path, PathBuf};
use std::sync::Once;

use datafusion::arrow::record_batch::RecordBatch;
use moltres::Moltres;

/// The workspace root (where `testdata/` is).
pub fn root() -> &'static Path {
    static ONCE: Once = Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sql/ has a parent");
    // slt files and API tests name paths relative to the workspace root.
    ONCE.call_once(|| std::env::set_current_dir(root).expect("chdir to workspace root"));
    root
}

/// A path under testdata/.
pub fn testdata(name: &str) -> PathBuf {
    root().join("testdata").join(name)
}

/// A session with defaults, ignoring the environment.
pub async fn session() -> Moltres {
    root();
    Moltres::builder()
        .without_env()
        .target_partitions(2)
        .build()
        .await
        .expect("session builds")
}

/// Rows as strings (NULL for nulls), for assertions (the formatting the
/// TPC-H checks use).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    moltres_benches::tpch::rows(batches).expect("every column formats")
}

/// Runs `sql` and returns its rows as strings.
pub async fn query(db: &Moltres, sql: &str) -> Vec<Vec<String>> {
    let batches = db
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&batches)
}

/// The PostgreSQL server the tests use (`MOLTRES_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("MOLTRES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema named `schema` on the test server, filled by `setup`
/// (which runs with the schema as search path). Fails saying so when the
/// server cannot be reached.
pub async fn postgres_schema(schema: &str, setup: &str) -> tokio_postgres::Client {
    let url = postgres_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}); start it (.ci/run does) or set MOLTRES_TEST_POSTGRES_URL"
            )
        });
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}; {setup}"
        ))
        .await
        .unwrap_or_else(|e| panic!("setting up {schema}: {e:?}"));
    client
}

/// The MySQL/MariaDB server the tests use (`MOLTRES_TEST_MYSQL_URL`, a
/// server URL without a database).
pub fn mysql_url() -> String {
    std::env::var("MOLTRES_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A fresh database named `database` on the test server, filled by `setup`.
/// Fails saying so when the server cannot be reached.
pub async fn mysql_database(database: &str, setup: &str) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let url = mysql_url();
    let mut conn = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!("{url}/mysql")).expect("MOLTRES_TEST_MYSQL_URL"),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB is not reachable at {url} ({e}); start it (.ci/run does) or set MOLTRES_TEST_MYSQL_URL"
        )
    });
    conn.query_drop(format!(
        "DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`; USE `{database}`; {setup}"
    ))
    .await
    .unwrap_or_else(|e| panic!("setting up {database}: {e}"));
    conn
}

/// The `estimated_rows=` of the first remote scan in an EXPLAIN output.
pub fn estimated_rows(plan: &str) -> usize {
    let at = plan
        .find("estimated_rows=")
        .unwrap_or_else(|| panic!("no estimated_rows in\n{plan}"))
        + "estimated_rows=".len();
    plan[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after estimated_rows in\n{plan}"))
}

/// The lines of an EXPLAIN output that are remote scans.
pub fn remote_scans(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter(|l| l.contains("RemoteScanExec"))
        .collect()
}

/// Runs each federation case remotely and over local copies: the same rows
/// (sorted unless the query orders them), and the plan pinned: `Some(k)`
/// means one remote query whose SQL contains `k`, `None` means no remote
/// query joins, groups or limits. `remote` and `local` are the
/// `(placeholder, table)` substitutions for the two runs.
pub async fn check_federation(
    db: &Moltres,
    cases: &[(&str, Option<&str>)],
    remote: &[(&str, &str)],
    local: &[(&str, &str)],
) {
    let substitute = |template: &str, pairs: &[(&str, &str)]| {
        pairs.iter().fold(template.to_string(), |sql, (from, to)| {
            sql.replace(from, to)
        })
    };
    let federated = ["JOIN", "GROUP BY", "LIMIT", "count("];
    for (template, pushed) in cases {
        let remote_sql = substitute(template, remote);
        let mut remote_rows = query(db, &remote_sql).await;
        let mut local_rows = query(db, &substitute(template, local)).await;
        if !template.contains("ORDER BY") {
            remote_rows.sort();
            local_rows.sort();
        }
        assert_eq!(remote_rows, local_rows, "{template}");
        let plan = explain(db, &remote_sql).await;
        let scans = remote_scans(&plan);
        match pushed {
            Some(keyword) => assert!(
                scans.len() == 1 && scans[0].contains(keyword),
                "{template} should run as one remote query with {keyword}:\n{plan}"
            ),
            None => assert!(
                scans
                    .iter()
                    .all(|sql| !federated.iter().any(|k| sql.contains(k))),
                "{template} should not be federated:\n{plan}"
            ),
        }
    }
}

/// Runs `SELECT id FROM <table> WHERE <predicate>` against the remote table
/// and its local copy for each case: the same rows, and the predicate in the
/// remote SQL exactly when the case says it is pushed.
pub async fn check_predicates(db: &Moltres, cases: &[(&str, bool)], remote: &str, local: &str) {
    let mut wrong = Vec::new();
    for (predicate, pushed) in cases {
        let remote_sql = format!("SELECT id FROM {remote} WHERE {predicate} ORDER BY id");
        let local_sql = format!("SELECT id FROM {local} WHERE {predicate} ORDER BY id");
        assert_eq!(
            query(db, &remote_sql).await,
            query(db, &local_sql).await,
            "{predicate}: the database and DataFusion disagree"
        );
        let plan = explain(db, &remote_sql).await;
        if plan.contains(" WHERE ") != *pushed {
            wrong.push(format!("{predicate} (pushed: {})\n{plan}", !pushed));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// EXPLAIN output, one line per row joined.
pub async fn explain(db: &Moltres, sql: &str) -> String {
    query(db, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .map(|r| r.join("|"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows of `sql`, or the error it fails with (at planning or while
/// running), as text.
pub async fn answer(db: &Moltres, sql: &str) -> Result<Vec<Vec<String>>, String> {
    match db.sql(sql).await {
        Ok(df) => df
            .collect()
            .await
            .map(|b| rows(&b))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The error `sql` fails with (at planning or while running); panics when
/// it succeeds.
pub async fn error(db: &Moltres, sql: &str) -> String {
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

/// The remote scan in the physical plan of `sql` (the first one found).
pub async fn remote_scan(
    db: &Moltres,
    sql: &str,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    use datafusion::physical_plan::ExecutionPlan;
    fn find(plan: &std::sync::Arc<dyn ExecutionPlan>) -> Option<std::sync::Arc<dyn ExecutionPlan>> {
        if plan.name() == "RemoteScanExec" {
            return Some(std::sync::Arc::clone(plan));
        }
        plan.children().into_iter().find_map(find)
    }
    let plan = db
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    find(&plan).unwrap_or_else(|| panic!("no remote scan in the plan of {sql}"))
}

/// Rows of partition `partition` of `plan`, read to the end.
pub async fn partition_rows(
    db: &Moltres,
    plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    partition: usize,
) -> usize {
    use futures::TryStreamExt;
    let stream = plan
        .execute(partition, db.context().task_ctx())
        .expect("partition starts");
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("partition reads");
    batches.iter().map(|b| b.num_rows()).sum()
}

/// A column's values split into parts: EXPLAIN's `parts=N by column`.
pub fn scan_parts(explained: &str) -> Option<(usize, String)> {
    let line = explained.lines().find(|l| l.contains("RemoteScanExec"))?;
    let at = line.find(", parts=")? + ", parts=".len();
    let rest = &line[at..];
    let (count, rest) = rest.split_once(" by ")?;
    let column = rest.split([',', ' ']).next()?;
    Some((count.parse().ok()?, column.to_string()))
}
