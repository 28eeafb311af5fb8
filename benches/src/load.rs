//! `load`: TPC-H `lineitem` from Parquet into PostgreSQL, MySQL/MariaDB and
//! SQLite through Moltres (`INSERT INTO db.table SELECT * FROM 'file'`),
//! beside each database's own bulk loader from the same data as CSV
//! (`psql \copy`, `LOAD DATA LOCAL INFILE`, `sqlite3 .import`), in one run.
//!
//! Each Moltres load runs in a child process, so its peak RSS is its own:
//! the figure that shows the load streams (it does not grow with the rows).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use moltres::Moltres;
use moltres::config::format_bytes;

use crate::{flag, peak_rss};

/// Where each database is and how its table is declared (the types a DBA
/// would pick; no indexes during the load, for loader and Moltres alike).
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub table: &'static str,
    ddl: &'static str,
}

const PG_DDL: &str = "CREATE TABLE {t} (l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, \
    l_suppkey bigint NOT NULL, l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL, \
    l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL, \
    l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, \
    l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL, \
    l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, \
    l_comment varchar(44) NOT NULL)";

const MY_DDL: &str = "CREATE TABLE {t} (l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, \
    l_suppkey BIGINT NOT NULL, l_linenumber INT NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, \
    l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL, \
    l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL, l_linestatus CHAR(1) NOT NULL, \
    l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, \
    l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL, \
    l_comment VARCHAR(44) NOT NULL) ENGINE=InnoDB";

const LITE_DDL: &str = "CREATE TABLE {t} (l_orderkey INTEGER NOT NULL, l_partkey INTEGER NOT NULL, \
    l_suppkey INTEGER NOT NULL, l_linenumber INTEGER NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, \
    l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL, \
    l_tax DECIMAL(15,2) NOT NULL, l_returnflag TEXT NOT NULL, l_linestatus TEXT NOT NULL, \
    l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, \
    l_shipinstruct TEXT NOT NULL, l_shipmode TEXT NOT NULL, l_comment TEXT NOT NULL)";

/// The databases `load` fills (and `scan` reads), for data under `data`.
pub fn lineitem_targets(data: &Path) -> Vec<Target> {
    let pg = std::env::var("MOLTRES_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // Any database of the server; the benchmark's own is moltres_bench.
    let my = std::env::var("MOLTRES_BENCH_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let my = my
        .rsplit_once('/')
        .map_or(my.as_str(), |(server, _)| server);
    vec![
        Target {
            name: "postgres",
            url: pg,
            table: "moltres_bench.lineitem",
            ddl: PG_DDL,
        },
        Target {
            name: "mysql",
            url: format!("{my}/moltres_bench"),
            table: "moltres_bench.lineitem",
            ddl: MY_DDL,
        },
        Target {
            name: "sqlite",
            url: format!("sqlite:{}?mode=rwc", data.join("load.db").display()),
            table: "main.lineitem",
            ddl: LITE_DDL,
        },
    ]
}

/// Writes `lineitem` at scale factor `sf` as Parquet and as CSV (with a
/// header) under `dir`, once; returns both paths.
fn lineitem_files(dir: &Path, sf: f64) -> (PathBuf, PathBuf) {
    use datafusion::arrow::csv::WriterBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use tpchgen::generators::LineItemGenerator;
    use tpchgen_arrow::LineItemArrow;
    let parquet = dir.join("lineitem.parquet");
    let csv = dir.join("lineitem.csv");
    if parquet.exists() && csv.exists() {
        return (parquet, csv);
    }
    std::fs::create_dir_all(dir).expect("create the data directory");
    let started = Instant::now();
    let batches = LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(8192);
    let schema = LineItemArrow::schema_ref();
    let mut parquet_writer = ArrowWriter::try_new(
        std::fs::File::create(parquet.with_extension("parquet.partial")).expect("create parquet"),
        schema,
        Some(WriterProperties::builder().build()),
    )
    .expect("parquet writer");
    let mut csv_writer = WriterBuilder::new()
        .with_header(true)
        .build(std::io::BufWriter::new(
            std::fs::File::create(csv.with_extension("csv.partial")).expect("create csv"),
        ));
    let mut rows = 0;
    for batch in batches {
        let batch = batch.expect("generate lineitem");
        rows += batch.num_rows();
        parquet_writer.write(&batch).expect("write parquet");
        csv_writer.write(&batch).expect("write csv");
    }
    parquet_writer.close().expect("close parquet");
    drop(csv_writer);
    std::fs::rename(parquet.with_extension("parquet.partial"), &parquet).expect("rename");
    std::fs::rename(csv.with_extension("csv.partial"), &csv).expect("rename");
    println!(
        "generated lineitem SF{sf}: {rows} rows, {} Parquet, {} CSV, in {:.1} s",
        format_bytes(std::fs::metadata(&parquet).map(|m| m.len()).unwrap_or(0)),
        format_bytes(std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0)),
        started.elapsed().as_secs_f64()
    );
    (parquet, csv)
}

pub fn load(args: &[String]) {
    let sf: f64 = flag(args, "--sf")
        .unwrap_or_else(|| "1".into())
        .parse()
        .expect("--sf: a number");
    let data = PathBuf::from(flag(args, "--data").unwrap_or_else(|| "benches/data".into()));
    let only = flag(args, "--only");
    let dir = data.join(format!("tpch-sf{sf}"));
    let (parquet, csv) = lineitem_files(&dir, sf);
    let parquet = std::fs::canonicalize(parquet).expect("parquet path");
    let csv = std::fs::canonicalize(csv).expect("csv path");
    println!(
        "lineitem SF{sf}, {} cores; each load into an empty table without indexes",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| database | loader | rows | time (s) | rows/s | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for target in lineitem_targets(&dir) {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == target.name))
        {
            continue;
        }
        // Moltres, in a child process of its own.
        let output = Command::new(&exe)
            .args(["load-one", target.name])
            .arg(&parquet)
            .arg(&dir)
            .output()
            .expect("run the load process");
        let line = String::from_utf8_lossy(&output.stdout);
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [rows, secs, rss] if output.status.success() => {
                let rows: f64 = rows.parse().unwrap_or(0.0);
                let secs: f64 = secs.parse().unwrap_or(0.0);
                println!(
                    "| {} | Moltres `INSERT INTO ... SELECT * FROM 'lineitem.parquet'` | {rows} | {secs:.1} | {:.0} | {} |",
                    target.name,
                    rows / secs,
                    format_bytes(rss.parse().unwrap_or(0))
                );
            }
            _ => println!(
                "| {} | Moltres | failed: {} | | | |",
                target.name,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
            ),
        }
        // The database's own loader from the CSV.
        match native_load(&target, &csv) {
            Ok((loader, rows, secs)) => println!(
                "| {} | {loader} | {rows} | {secs:.1} | {:.0} | |",
                target.name,
                rows as f64 / secs
            ),
            Err(e) => println!("| {} | native loader | failed: {e} | | | |", target.name),
        }
    }
}

/// The Moltres load of one target (a child process): prints `rows seconds
/// peak_rss`.
pub fn load_one(name: &str, parquet: &Path, dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{}", e.to_string().replace('\n', " "));
        std::process::exit(1)
    };
    let target = lineitem_targets(dir)
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| fail(&format!("no target {name}")));
    runtime.block_on(async {
        let db = Moltres::builder()
            .without_env()
            .build()
            .await
            .unwrap_or_else(|e| fail(&e));
        prepare(&db, &target, "lineitem")
            .await
            .unwrap_or_else(|e| fail(&e));
        let sql = format!(
            "INSERT INTO t.{} SELECT * FROM '{}'",
            target.table,
            parquet.display()
        );
        let started = Instant::now();
        let batches = db
            .sql(&sql)
            .await
            .unwrap_or_else(|e| fail(&e))
            .collect()
            .await
            .unwrap_or_else(|e| fail(&e));
        let secs = started.elapsed().as_secs_f64();
        // The load's peak, before the check below reads everything again.
        let load_rss = peak_rss();
        let rows = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        // The rows as loaded, against the file.
        let summary = "SELECT count(*), sum(l_orderkey), sum(l_linenumber), \
                       round(sum(CAST(l_extendedprice AS DOUBLE))), min(l_shipdate), \
                       max(l_receiptdate), max(l_comment), min(l_shipmode), max(l_returnflag)";
        let mut answers = Vec::new();
        for from in [
            format!("t.{}", target.table),
            format!("'{}'", parquet.display()),
        ] {
            let batches = db
                .sql(&format!("{summary} FROM {from}"))
                .await
                .unwrap_or_else(|e| fail(&e))
                .collect()
                .await
                .unwrap_or_else(|e| fail(&e));
            answers.push(
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap_or_else(|e| fail(&e))
                    .to_string()
                    .lines()
                    .nth(3)
                    .unwrap_or_default()
                    .split('|')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
        if answers[0] != answers[1] || rows == 0 {
            fail(&format!(
                "{rows} rows reported; the table does not match the file: {} vs {}",
                answers[0], answers[1]
            ));
        }
        println!("{rows} {secs:.3} {load_rss}");
    });
}

/// Attaches the target as `t` (creating its schema or database) and makes
/// an empty `table` there.
async fn prepare(db: &Moltres, target: &Target, table: &str) -> moltres::Result<()> {
    let name = |t: &Target| t.table.replace("lineitem", table);
    match target.name {
        "mysql" => {
            // The database must exist before a URL can name it.
            let server = format!(
                "{}/information_schema",
                target.url.trim_end_matches("/moltres_bench")
            );
            db.attach(&server, "setup", false).await?;
            db.source("setup")?
                .execute("CREATE DATABASE IF NOT EXISTS moltres_bench")
                .await?;
            db.detach("setup")?;
        }
        "postgres" => {
            db.attach(&target.url, "setup", false).await?;
            db.source("setup")?
                .execute("CREATE SCHEMA IF NOT EXISTS moltres_bench")
                .await?;
            db.detach("setup")?;
        }
        _ => {}
    }
    db.attach(&target.url, "t", false).await?;
    let source = db.source("t")?;
    source
        .execute(&format!("DROP TABLE IF EXISTS {}", name(target)))
        .await?;
    source
        .execute(&target.ddl.replace("{t}", &name(target)))
        .await?;
    db.refresh("t")?;
    Ok(())
}

/// Loads `csv` with the database's own tool into a fresh table; returns
/// the loader's description, the rows and the seconds.
fn native_load(target: &Target, csv: &Path) -> Result<(String, u64, f64), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let table = target.table.replace("lineitem", "lineitem_native");
    runtime.block_on(async {
        let db = Moltres::builder()
            .without_env()
            .build()
            .await
            .map_err(|e| e.to_string())?;
        prepare(&db, target, "lineitem_native")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })?;
    let csv = csv.display().to_string();
    let (loader, mut command) = match target.name {
        "postgres" => {
            let mut c = Command::new("psql");
            c.args([&target.url, "-v", "ON_ERROR_STOP=1", "-q", "-c"])
                .arg(format!(
                    "\\copy {table} FROM '{csv}' WITH (FORMAT csv, HEADER true)"
                ));
            ("`psql \\copy` (CSV)", c)
        }
        "mysql" => {
            let mut c = Command::new("mariadb");
            c.args([
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "--local-infile=1",
                "moltres_bench",
                "-e",
            ])
            .arg(format!(
                "LOAD DATA LOCAL INFILE '{csv}' INTO TABLE {table} \
                 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES"
            ));
            ("`LOAD DATA LOCAL INFILE` (CSV)", c)
        }
        _ => {
            let path = target
                .url
                .trim_start_matches("sqlite:")
                .trim_end_matches("?mode=rwc")
                .to_string();
            let mut c = Command::new("sqlite3");
            c.arg(path).arg(format!(
                ".import --csv --skip 1 {csv} {}",
                table.trim_start_matches("main.")
            ));
            ("`sqlite3 .import` (CSV)", c)
        }
    };
    let started = Instant::now();
    let output = command.output().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    let rows = runtime.block_on(async {
        let db = Moltres::builder()
            .without_env()
            .build()
            .await
            .map_err(|e| e.to_string())?;
        db.attach(&target.url, "t", true)
            .await
            .map_err(|e| e.to_string())?;
        moltres_benches::tpch::count(&db, &format!("t.{table}"))
            .await
            .map_err(|e| e.to_string())
    })?;
    Ok((loader.to_string(), rows, secs))
}
