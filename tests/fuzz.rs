//! Fuzz targets (issue 17, part 7), run by CI for a bounded number of cases
//! each (`MOLTRES_FUZZ_CASES`, 256 by default; `MOLTRES_FUZZ_SEED` picks
//! another sequence): the SQL entry point, the CSV and Parquet readers,
//! duration parsing and source URLs. Any input may fail with an error; none
//! may panic (a panic caught at the statement boundary says "internal
//! error", which fails the target too), hang, or end the process.
//!
//! The generators are proptest strategies built from the grammar's pieces
//! (keywords, operators, literals at the types' edges, quotes) rather than
//! raw bytes, so that most inputs get past the tokenizer; the readers get
//! valid files mutated byte by byte. On a failure proptest shrinks the
//! input and prints it.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::common;

/// A runner for `cases()` cases, seeded from `MOLTRES_FUZZ_SEED` (default
/// a fixed seed: CI runs the same inputs every time).
fn runner() -> TestRunner {
    let cases = std::env::var("MOLTRES_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let seed: u64 = std::env::var("MOLTRES_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_207);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Runs `sql` to its end within a minute; its error, if any, must not be a
/// caught panic.
async fn survives(db: &moltres::Moltres, sql: &str) -> Result<(), TestCaseError> {
    survives_with(db, sql, false).await
}

/// [`survives`], or, with `decoding_panics`, a panic while the rows are
/// read (not while planning) caught at the statement boundary, after which
/// the session still answers.
async fn survives_with(
    db: &moltres::Moltres,
    sql: &str,
    decoding_panics: bool,
) -> Result<(), TestCaseError> {
    let run = async {
        match db.sql(sql).await {
            Ok(frame) => frame.collect().await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => Err(TestCaseError::fail(format!("{sql}: no answer in 60 s"))),
        Ok(Err(e))
            if decoding_panics
                && (e.contains("internal error while running the query")
                    // A panic in a task DataFusion spawned reaches the
                    // statement as its JoinError.
                    || e.contains("panicked with message")) =>
        {
            match db.sql("SELECT 'alive'").await {
                Ok(_) => Ok(()),
                Err(after) => Err(TestCaseError::fail(format!(
                    "{sql}: {e}; the next statement failed: {after}"
                ))),
            }
        }
        Ok(Err(e)) if e.contains("internal error") || e.contains("panicked") => {
            Err(TestCaseError::fail(format!("{sql}: a panic: {e}")))
        }
        Ok(_) => Ok(()),
    }
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pieces of SQL: keywords, names of the demo files' columns, literals at
/// the edges of their types, operators and functions.
const PIECES: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT JOIN",
    "FULL JOIN",
    "CROSS JOIN",
    "ON",
    "USING (id)",
    "UNION",
    "UNION ALL",
    "INTERSECT",
    "EXCEPT",
    "WITH x AS",
    "AS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST(",
    "AS BIGINT)",
    "AS DECIMAL(38,10))",
    "AS DATE)",
    "AS TIMESTAMP)",
    "AS VARCHAR)",
    "IN (",
    "NOT IN (",
    "EXISTS (",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "IS NULL",
    "IS NOT DISTINCT FROM",
    "NOT",
    "AND",
    "OR",
    "DISTINCT",
    "OVER (",
    "PARTITION BY",
    "ROWS BETWEEN UNBOUNDED PRECEDING",
    "AND CURRENT ROW",
    "*",
    "id",
    "name",
    "country",
    "population",
    "cities.id",
    "'testdata/cities.csv'",
    "'testdata/cities.parquet'",
    "'testdata/trips.csv'",
    "read_csv('testdata/cities.csv')",
    "cities",
    "0",
    "-1",
    "1e308",
    "-1e-308",
    "0.1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "'x'",
    "''",
    "'it''s'",
    "'%_\\'",
    "NULL",
    "TRUE",
    "FALSE",
    "DATE '2024-02-29'",
    "DATE '0001-01-01'",
    "TIMESTAMP '9999-12-31 23:59:59'",
    "INTERVAL '1' DAY",
    "INTERVAL '-2147483648' MONTH",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "=",
    "<>",
    "<",
    ">=",
    "(",
    ")",
    ",",
    ";",
    ".",
    "[1]",
    "::INT",
    "sum(",
    "count(*)",
    "count(",
    "avg(",
    "min(",
    "max(",
    "abs(",
    "round(",
    "substr(",
    "coalesce(",
    "nullif(",
    "length(",
    "upper(",
    "concat(",
    "regexp_replace(",
    "to_timestamp(",
    "date_trunc('day',",
    "array_agg(",
    "make_array(",
    "unnest(",
    "row_number() OVER ()",
    "power(",
    "ln(",
    "sqrt(",
    "repeat('x',",
    "lpad('a',",
    "\"quoted name\"",
    "$1",
    "?",
    "--",
    "/*",
    "*/",
    "\"",
    "'",
];

/// Up to 40 pieces in a row, or an expression tree in a query.
fn sql() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(PIECES);
    let flat = proptest::collection::vec(piece, 1..40).prop_map(|p| p.join(" "));
    let leaf = proptest::sample::select(&PIECES[56..80]).prop_map(str::to_string);
    let expr = leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(&["+", "-", "*", "/", "%", "=", "<", "AND", "OR", "||"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                proptest::sample::select(&[
                    "abs", "round", "coalesce", "nullif", "length", "upper", "sum", "max", "sqrt",
                    "power", "substr", "concat"
                ]),
                proptest::collection::vec(inner.clone(), 1..3)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("CASE WHEN {a} THEN {b} ELSE {c} END")),
            (
                inner.clone(),
                proptest::sample::select(&[
                    "BIGINT",
                    "INT",
                    "DOUBLE",
                    "DECIMAL(5,2)",
                    "DATE",
                    "VARCHAR",
                    "BOOLEAN"
                ])
            )
                .prop_map(|(a, t)| format!("CAST({a} AS {t})")),
        ]
    });
    let query = (
        expr.clone(),
        proptest::sample::select(&[
            "'testdata/cities.csv'",
            "'testdata/cities.parquet'",
            "(SELECT 1 AS id) t",
        ]),
        expr.clone(),
        expr,
    )
        .prop_map(|(a, from, w, g)| {
            format!("SELECT {a}, count(*) FROM {from} WHERE {w} GROUP BY {g} ORDER BY 1 LIMIT 5")
        });
    prop_oneof![flat, query]
}

#[test]
fn fuzz_sql_entry_point() {
    let rt = tokio();
    let db = rt.block_on(common::session());
    runner()
        .run(&sql(), |sql| rt.block_on(survives(&db, &sql)))
        .unwrap();
}

/// CSV text from the characters that matter to a CSV reader.
fn csv_text() -> impl Strategy<Value = String> {
    let pieces = proptest::sample::select(&[
        "a",
        "1",
        "-2",
        "3.5",
        "1e999",
        ",",
        ",",
        "\"",
        "\"\"",
        "\n",
        "\n",
        "\r\n",
        "\r",
        " ",
        "é",
        "\\",
        "\u{0}",
        "NULL",
        "2024-01-01",
        "true",
        "\t",
        ";",
    ]);
    (
        proptest::sample::select(&["id,name,v\n", "", "a\n", "\"x\",\"y\n"]),
        proptest::collection::vec(pieces, 0..120),
    )
        .prop_map(|(header, body)| format!("{header}{}", body.concat()))
}

#[test]
fn fuzz_csv_reader() {
    let rt = tokio();
    let db = rt.block_on(common::session());
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner()
        .run(&csv_text(), |text| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("f{n}.csv"));
            std::fs::write(&path, &text).unwrap();
            let path = path.display();
            rt.block_on(async {
                survives(&db, &format!("SELECT * FROM '{path}'")).await?;
                survives(
                    &db,
                    &format!("SELECT count(*) FROM read_csv('{path}', 'skip_bad_rows=true')"),
                )
                .await?;
                survives(
                    &db,
                    &format!("SELECT * FROM read_csv('{path}', 'header=false', 'null=NULL')"),
                )
                .await
            })
        })
        .unwrap();
}

/// A valid Parquet file with bytes changed: some overwritten, the file cut
/// short, or the footer's length made wrong.
fn parquet_bytes(original: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = original.len();
    let edits = proptest::collection::vec((0..len, any::<u8>()), 1..8);
    let original2 = original.clone();
    let original3 = original.clone();
    prop_oneof![
        edits.prop_map(move |edits| {
            let mut bytes = original.clone();
            for (at, value) in edits {
                bytes[at] = value;
            }
            bytes
        }),
        (0..len).prop_map(move |cut| original2[..cut].to_vec()),
        any::<u32>().prop_map(move |footer| {
            let mut bytes = original3.clone();
            let at = bytes.len() - 8;
            bytes[at..at + 4].copy_from_slice(&footer.to_le_bytes());
            bytes
        }),
    ]
}

#[test]
fn fuzz_parquet_reader() {
    let rt = tokio();
    let db = rt.block_on(common::session());
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(common::testdata("cities.parquet")).unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner()
        .run(&parquet_bytes(original), |bytes| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("f{n}.parquet"));
            std::fs::write(&path, &bytes).unwrap();
            let path = path.display();
            // The footer and metadata are checked before the parquet crate
            // reads them: no panic while planning. Its page decoders assert
            // on some corrupt pages (`num_bits <= size_of::<T>() * 8` for a
            // bit width over 32): caught at the statement boundary, as the
            // last line, with the session going on (docs/reliability.md).
            rt.block_on(async {
                survives_with(&db, &format!("SELECT * FROM '{path}'"), true).await?;
                survives_with(
                    &db,
                    &format!("SELECT count(*), max(name) FROM '{path}' WHERE id > 2"),
                    true,
                )
                .await
            })
        })
        .unwrap();
}

/// Durations: numbers at the edges of f64 and u64 with any unit, and any
/// text.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            proptest::sample::select(&[
                "0",
                "-1",
                "1e99",
                "1e-99",
                "NaN",
                "inf",
                "-inf",
                "18446744073709551616",
                "10000000000000000000",
                "0.0000001",
                "1.5",
                "",
                " 2 ",
                "1_000",
                "0x10",
            ]),
            proptest::sample::select(&[
                "", "s", "ms", "us", "ns", "m", "min", "h", "d", "w", "y", " s", "S"
            ]),
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        any::<String>(),
    ]
}

#[test]
fn fuzz_duration_parsing() {
    runner()
        .run(&duration_text(), |text| {
            if let Ok(d) = moltres::config::parse_duration(&text) {
                // Every accepted duration can be added to a clock.
                prop_assert!(std::time::Instant::now().checked_add(d).is_some(), "{text}");
            }
            Ok(())
        })
        .unwrap();
    // The same texts as settings of a session.
    let rt = tokio();
    let db = rt.block_on(common::session());
    runner()
        .run(&duration_text(), |text| {
            let quoted = text.replace('\'', "''");
            rt.block_on(survives(
                &db,
                &format!("SET moltres.query_timeout = '{quoted}'"),
            ))?;
            rt.block_on(survives(&db, "SELECT 1"))
        })
        .unwrap();
}

/// Source URLs: each scheme, with hostile user names, passwords, paths and
/// parameters, all on a local port nothing listens on (a refused connection
/// is immediate) or a file in a temporary directory.
fn url_text(dir: String) -> impl Strategy<Value = String> {
    let text = proptest::collection::vec(
        proptest::sample::select(&[
            "a", "é", "@", ":", "/", "%", "%4", "%zz", "%00", "?", "#", "&", "=", "'", "\"", " ",
            "[", "]", ";", "\\", "..",
        ]),
        0..8,
    )
    .prop_map(|p| p.concat());
    let parameter = (
        proptest::sample::select(&[
            "connect_timeout",
            "pool_timeout",
            "statement_timeout",
            "pool_max_size",
            "pool_pre_ping",
            "sslmode",
            "sslrootcert",
            "unsupported_types",
            "pushdown",
            "prefer_socket",
            "mode",
            "journal_mode",
            "busy_timeout",
            "unknown",
        ]),
        proptest::sample::select(&[
            "0",
            "-1",
            "1e99",
            "NaN",
            "1",
            "2",
            "true",
            "x",
            "",
            "99999999999999999999",
            "require",
            "disable",
            "verify-full",
            "ro",
        ]),
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    let parameters = proptest::collection::vec(parameter, 0..4).prop_map(|p| p.join("&"));
    (
        proptest::sample::select(&["postgres", "postgresql", "mysql", "mariadb", "sqlite", "pg"]),
        text.clone(),
        text.clone(),
        proptest::sample::select(&["127.0.0.1:1", "127.0.0.1", "[::1]:1", "127.0.0.1:99999", ""]),
        text,
        parameters,
    )
        .prop_map(move |(scheme, user, password, host, path, parameters)| {
            if scheme == "sqlite" {
                format!("sqlite:{dir}/{path}.db?{parameters}")
            } else {
                format!("{scheme}://{user}:{password}@{host}/{path}?{parameters}")
            }
        })
}

/// Runs [`fuzz_source_urls_here`] in a process of its own: the passwords of
/// the fuzzed URLs are remembered, to be hidden, for the life of the
/// process (as the shell's are), and random ones would hide parts of other
/// tests' messages.
#[test]
fn fuzz_source_urls() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fuzz::fuzz_source_urls_here",
            "--nocapture",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the target did not run"
    );
}

#[test]
#[ignore = "run by fuzz_source_urls in a process of its own"]
fn fuzz_source_urls_here() {
    let rt = tokio();
    let db = rt.block_on(common::session());
    let dir = tempfile::tempdir().unwrap();
    runner()
        .run(&url_text(dir.path().display().to_string()), |url| {
            rt.block_on(async {
                let attached =
                    tokio::time::timeout(Duration::from_secs(30), db.attach(&url, "fuzzed", false))
                        .await
                        .map_err(|_| TestCaseError::fail(format!("{url}: no answer in 30 s")))?;
                match attached {
                    Ok(_) => {
                        db.detach("fuzzed").ok();
                    }
                    Err(e) => {
                        let e = e.to_string();
                        prop_assert!(!e.contains("internal error"), "{url}: {e}");
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}
