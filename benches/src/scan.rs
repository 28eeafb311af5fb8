//! `scan`: rows/s of a full `lineitem` scan from each database, read as one
//! query and in parts at once, beside PostgreSQL's binary `COPY` and
//! ConnectorX on the same tables (see benches/README.md).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use futures::StreamExt;
use moltres::Moltres;

use super::flag;
use super::load::{Target, lineitem_targets};

/// Reads every row of `sql` and returns (rows, seconds).
async fn read_all(db: &Moltres, sql: &str) -> moltres::Result<(usize, f64)> {
    let started = Instant::now();
    let mut stream = db.sql(sql).await?.execute_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}

/// The `parts=N` of the scan EXPLAIN shows (1 when it is one query).
async fn planned_parts(db: &Moltres, sql: &str) -> moltres::Result<usize> {
    let batches = db.sql(&format!("EXPLAIN {sql}")).await?.collect().await?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map_err(datafusion::error::DataFusionError::from)?
        .to_string();
    Ok(text
        .split(", parts=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1))
}

/// Makes the table ready to be read in parts: statistics, and for MariaDB
/// the official TPC-H primary key (`l_orderkey, l_linenumber`), which the
/// load leaves out.
async fn prepare(db: &Moltres, target: &Target) -> moltres::Result<()> {
    let source = db.source("t")?;
    match target.name {
        "postgres" => {
            source.execute(&format!("ANALYZE {}", target.table)).await?;
        }
        "mysql" => {
            let keyed = db
                .sql(&format!(
                    "SELECT count(*) FROM mysql_query('t', 'SHOW KEYS FROM {} WHERE Key_name = ''PRIMARY''')",
                    target.table
                ))
                .await?
                .collect()
                .await?;
            let keys = keyed
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0);
            if keys == 0 {
                println!("adding the primary key (l_orderkey, l_linenumber) to MariaDB's lineitem");
                source
                    .execute(&format!(
                        "ALTER TABLE {} ADD PRIMARY KEY (l_orderkey, l_linenumber)",
                        target.table
                    ))
                    .await?;
            }
            source
                .execute(&format!("ANALYZE TABLE {}", target.table))
                .await?;
        }
        _ => {
            source.execute("ANALYZE").await?;
        }
    }
    Ok(())
}

/// ConnectorX on the same table, through the Python in `venv` (one read as
/// one query, one in `parts` parts on `l_orderkey`): (rows, seconds).
fn connectorx(venv: &Path, url: &str, table: &str, parts: usize) -> Result<(usize, f64), String> {
    let script = format!(
        "import time, connectorx as cx\n\
         started = time.time()\n\
         kw = dict(partition_on='l_orderkey', partition_num={parts}) if {parts} > 1 else {{}}\n\
         t = cx.read_sql({url:?}, 'SELECT * FROM {table}', return_type='arrow', **kw)\n\
         print(t.num_rows, time.time() - started)\n"
    );
    let output = Command::new(venv.join("bin/python"))
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("{}: {e}", venv.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        [rows, secs] if output.status.success() => {
            Ok((rows.parse().unwrap_or(0), secs.parse().unwrap_or(f64::NAN)))
        }
        _ => Err(String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string()),
    }
}

/// PostgreSQL's `COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)`, the
/// bytes received and not decoded: (bytes, seconds).
async fn pg_copy(url: &str, table: &str) -> Result<(u64, f64), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let started = Instant::now();
    let stream = client
        .copy_out(&format!(
            "COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)"
        ))
        .await
        .map_err(|e| e.to_string())?;
    futures::pin_mut!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.map_err(|e| e.to_string())?.len() as u64;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

pub fn scan(args: &[String]) {
    let sf: f64 = flag(args, "--sf")
        .unwrap_or_else(|| "1".into())
        .parse()
        .expect("--sf: a number");
    let data = PathBuf::from(flag(args, "--data").unwrap_or_else(|| "benches/data".into()));
    let parts: Vec<usize> = flag(args, "--parts")
        .unwrap_or_else(|| "1,2,4".into())
        .split(',')
        .map(|p| p.parse().expect("--parts: numbers"))
        .collect();
    let only = flag(args, "--only");
    let venv = flag(args, "--connectorx").map(PathBuf::from);
    let dir = data.join(format!("tpch-sf{sf}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "full scan of lineitem SF{sf} (loaded by `load`), {} cores, every row read and counted",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| database | reader | parts | rows | time (s) | rows/s |");
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        for target in lineitem_targets(&dir) {
            if only
                .as_deref()
                .is_some_and(|o| !o.split(',').any(|n| n == target.name))
            {
                continue;
            }
            let sql = format!("SELECT * FROM t.{}", target.table);
            let mut prepared = false;
            for &wanted in &parts {
                let separator = if target.url.contains('?') { '&' } else { '?' };
                let url = format!("{}{separator}scan_partitions={wanted}", target.url);
                let run = async {
                    let db = Moltres::builder()
                        .without_env()
                        .target_partitions(wanted.max(2))
                        .build()
                        .await?;
                    db.attach(&url, "t", false).await?;
                    if !prepared {
                        prepare(&db, &target).await?;
                        db.refresh("t")?;
                    }
                    let planned = planned_parts(&db, &sql).await?;
                    let (rows, secs) = read_all(&db, &sql).await?;
                    moltres::Result::Ok((planned, rows, secs))
                };
                let outcome: moltres::Result<(usize, usize, f64)> = run.await;
                match outcome {
                    Ok((planned, rows, secs)) => {
                        prepared = true;
                        println!(
                            "| {} | Moltres | {planned} | {rows} | {secs:.2} | {:.0} |",
                            target.name,
                            rows as f64 / secs
                        )
                    }
                    Err(e) => println!(
                        "| {} | Moltres | {wanted} | failed: {} | | |",
                        target.name,
                        e.to_string().replace('\n', " ")
                    ),
                }
            }
            if target.name == "postgres" {
                match pg_copy(&target.url, target.table).await {
                    Ok((bytes, secs)) => println!(
                        "| postgres | `COPY ... TO STDOUT (FORMAT binary)`, {} not decoded | 1 | | {secs:.2} | {:.0} |",
                        moltres::config::format_bytes(bytes),
                        6_001_215.0 * sf / secs
                    ),
                    Err(e) => println!("| postgres | COPY binary | 1 | failed: {e} | | |"),
                }
            }
            if let Some(venv) = &venv {
                let url = match target.name {
                    "sqlite" => format!(
                        "sqlite://{}",
                        target
                            .url
                            .trim_start_matches("sqlite:")
                            .split('?')
                            .next()
                            .unwrap_or_default()
                    ),
                    _ => target.url.clone(),
                };
                let table = match target.name {
                    "sqlite" => "lineitem",
                    _ => target.table,
                };
                for &n in &parts {
                    match connectorx(venv, &url, table, n) {
                        Ok((rows, secs)) => println!(
                            "| {} | ConnectorX (`return_type='arrow'`) | {n} | {rows} | {secs:.2} | {:.0} |",
                            target.name,
                            rows as f64 / secs
                        ),
                        Err(e) => println!("| {} | ConnectorX | {n} | failed: {e} | | |", target.name),
                    }
                }
            }
        }
    });
}
