//! `tpch`: the 22 TPC-H queries over the split (see `moltres_benches::tpch`)
//! beside what users would run instead, in one run on the same data:
//!
//! - Moltres over the split (PostgreSQL, MariaDB, SQLite, CSV, Parquet);
//! - Moltres over all-Parquet: the reference answers and the ceiling;
//! - PostgreSQL alone, all eight tables loaded and indexed;
//! - DuckDB over the Parquet files;
//! - DuckDB federating the very same split (postgres, mysql and sqlite
//!   extensions), through `benches/tpch/duckdb_run.py`.
//!
//! Each query runs `--runs` times per system (median reported); every
//! answer is checked against Moltres over all-Parquet. Prints markdown and
//! writes `report.md` and `report.json` next to the data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use moltres_benches::tpch::{self, Data, Outcome, Rows, Split};

use crate::flag;

const SYSTEMS: [(&str, &str); 7] = [
    ("moltres", "Moltres, split"),
    ("moltres-apart", "Moltres, split apart"),
    ("moltres-parquet", "Moltres, all Parquet"),
    ("postgres", "PostgreSQL alone"),
    ("duckdb-parquet", "DuckDB, Parquet"),
    ("duckdb-federated", "DuckDB, split"),
    ("duckdb-apart", "DuckDB, split apart"),
];

type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn tpch(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("tpch: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> Result<(), Error> {
    let sf: f64 = flag(args, "--sf")
        .unwrap_or_else(|| "1".into())
        .parse()
        .map_err(|_| "--sf: a number")?;
    let runs: usize = flag(args, "--runs")
        .unwrap_or_else(|| "3".into())
        .parse()
        .map_err(|_| "--runs: a number")?;
    let reload = args.iter().any(|a| a == "--reload");
    let systems: Vec<&str> = match flag(args, "--only") {
        Some(only) => {
            let wanted: Vec<String> = only.split(',').map(str::to_string).collect();
            if let Some(bad) = wanted.iter().find(|w| !SYSTEMS.iter().any(|(s, _)| s == w)) {
                return Err(format!(
                    "--only: unknown system {bad}; systems are {}",
                    SYSTEMS.map(|(s, _)| s).join(", ")
                )
                .into());
            }
            SYSTEMS
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| wanted.iter().any(|w| w == s))
                .collect()
        }
        None => SYSTEMS.iter().map(|(s, _)| *s).collect(),
    };
    if runs == 0 {
        return Err("--runs: at least 1".into());
    }
    let dir = data_dir(args, sf)?;
    let split = bench_split(&dir);
    let postgres = split.postgres.clone();
    let alone_schema = "moltres_tpch_all";

    let started = Instant::now();
    let data = tpch::generate(&dir, sf)?;
    println!(
        "TPC-H SF{sf}: data in {} ({:.1} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let uses = |s: &str| systems.contains(&s);
    if uses("moltres") || uses("duckdb-federated") {
        let report = tpch::load_split(&data, &split, reload).await?;
        print_load("split", &report);
    }
    let apart = Split {
        orders_apart: true,
        ..split.clone()
    };
    if uses("moltres-apart") || uses("duckdb-apart") {
        // The same databases; orders loaded into MariaDB too.
        let report = tpch::load_split(&data, &apart, reload).await?;
        print_load("split apart", &report);
    }
    if uses("postgres") {
        let report = tpch::load_postgres_alone(&data, &postgres, alone_schema, reload).await?;
        print_load("PostgreSQL alone", &report);
    }

    // The reference answers always come from Moltres over all-Parquet.
    let parquet = tpch::parquet_session(&data).await?;
    let parquet_runs = if uses("moltres-parquet") { runs } else { 1 };
    let (parquet_outcomes, reference) = tpch::run_all(&parquet, parquet_runs, None, |name, o| {
        progress("moltres-parquet", name, o)
    })
    .await;
    drop(parquet);
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    if uses("moltres-parquet") {
        results.insert("moltres-parquet", parquet_outcomes);
    }
    for (system, layout) in [("moltres", &split), ("moltres-apart", &apart)] {
        if uses(system) {
            let db = tpch::split_session(&data, layout).await?;
            let (outcomes, _) = tpch::run_all(&db, runs, Some(&reference), |name, o| {
                progress(system, name, o)
            })
            .await;
            results.insert(system, outcomes);
        }
    }
    if uses("postgres") {
        results.insert(
            "postgres",
            postgres_alone(&postgres, alone_schema, runs, &reference).await?,
        );
    }
    let mut duckdb_version = None;
    for (system, mode, layout) in [
        ("duckdb-parquet", "parquet", &split),
        ("duckdb-federated", "federated", &split),
        ("duckdb-apart", "federated", &apart),
    ] {
        if uses(system) {
            // Without DuckDB the rest of the report still stands.
            match duckdb(mode, &data, layout, runs, &reference) {
                Ok((version, outcomes)) => {
                    duckdb_version = Some(version);
                    results.insert(system, outcomes);
                }
                Err(e) => eprintln!("tpch: {system} left out of the report: {e}"),
            }
        }
    }

    let machine = machine(&postgres, duckdb_version.as_deref()).await;
    let (markdown, json) = report(sf, runs, &machine, &results);
    println!("\n{markdown}");
    std::fs::write(dir.join("report.md"), &markdown)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!(
        "wrote {} and {}",
        dir.join("report.md").display(),
        dir.join("report.json").display()
    );
    let wrong: Vec<String> = results
        .iter()
        .filter(|(s, _)| s.starts_with("moltres"))
        .flat_map(|(s, outcomes)| {
            outcomes
                .iter()
                .zip(tpch::QUERIES)
                .filter(|(o, _)| !o.correct())
                .map(move |(_, (q, _))| format!("{s} {q}"))
        })
        .collect();
    if !wrong.is_empty() {
        return Err(format!("wrong or failed answers from Moltres: {}", wrong.join(", ")).into());
    }
    Ok(())
}

/// `tpch-explain [--sf 0.1] [--analyze] [--parquet] QUERY...`: the plan of
/// each query over the split (or all-Parquet), with the remote SQL each
/// database receives; with `--analyze`, run with metrics. Needs the data
/// and the split from an earlier `tpch` run at the same scale factor.
pub fn explain(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result: Result<(), Error> = runtime.block_on(async {
        let sf: f64 = flag(args, "--sf")
            .unwrap_or_else(|| "0.1".into())
            .parse()
            .map_err(|_| "--sf: a number")?;
        let dir = data_dir(args, sf)?;
        // Explaining reads what `tpch` made; it makes nothing.
        let data = Data::existing(&dir, sf).map_err(|e| {
            format!("{e}; run `moltres-benches tpch --sf {sf}` first to generate and load it")
        })?;
        let split = Split {
            orders_apart: args.iter().any(|a| a == "--apart"),
            ..bench_split(&dir)
        };
        let db = if args.iter().any(|a| a == "--parquet") {
            tpch::parquet_session(&data).await?
        } else {
            tpch::split_session(&data, &split).await?
        };
        let verb = if args.iter().any(|a| a == "--analyze") {
            "EXPLAIN ANALYZE"
        } else {
            "EXPLAIN"
        };
        for (name, sql) in tpch::QUERIES {
            if !args.iter().any(|a| a == name) {
                continue;
            }
            let batches = db
                .sql(&format!("{verb} {}", sql.trim().trim_end_matches(';')))
                .await?
                .collect()
                .await?;
            println!("== {name}");
            for row in tpch::rows(&batches)? {
                println!("{}", row.join("\n"));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("tpch-explain: {e}");
        std::process::exit(1);
    }
}

/// `<--data>/tpch-sf<SF>`, absolute.
fn data_dir(args: &[String], sf: f64) -> Result<PathBuf, Error> {
    let root = PathBuf::from(flag(args, "--data").unwrap_or_else(|| "benches/data".into()));
    Ok(std::path::absolute(root.join(format!("tpch-sf{sf}")))?)
}

/// The benchmark's split: `MOLTRES_BENCH_POSTGRES` (default the test
/// server), schema `moltres_tpch`; `MOLTRES_BENCH_MYSQL`, database
/// `moltres_tpch`; `split.db` beside the data.
fn bench_split(dir: &Path) -> Split {
    Split {
        postgres: std::env::var("MOLTRES_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        pg_schema: "moltres_tpch".into(),
        mysql: std::env::var("MOLTRES_BENCH_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        my_database: "moltres_tpch".into(),
        sqlite: dir.join("split.db"),
        orders_apart: false,
    }
}

fn print_load(what: &str, report: &tpch::LoadReport) {
    for (table, place, rows, secs) in &report.tables {
        if *secs > 0.0 {
            println!("loaded {what} {table} into {place}: {rows} rows in {secs:.1} s");
        } else {
            println!("kept {what} {table} in {place}: {rows} rows already loaded");
        }
    }
}

fn progress(system: &str, name: &str, outcome: &Outcome) {
    let times: Vec<String> = outcome
        .times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    let verdict = match &outcome.problem {
        None => "ok".to_string(),
        Some(p) => format!("WRONG: {p}"),
    };
    eprintln!("{system} {name}: [{}] {verdict}", times.join(", "));
}

/// The 22 queries in PostgreSQL over the schema with all eight tables.
async fn postgres_alone(
    url: &str,
    schema: &str,
    runs: usize,
    reference: &[Rows],
) -> Result<Vec<Outcome>, Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL at {url}: {e}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SET search_path = {schema}; SET statement_timeout = '600s'"
        ))
        .await?;
    let mut outcomes = Vec::new();
    for ((name, sql), expected) in tpch::QUERIES.iter().zip(reference) {
        let mut outcome = Outcome {
            times: Vec::new(),
            planning: Vec::new(),
            problem: None,
        };
        let mut answer = Rows::new();
        for run in 0..runs {
            let started = Instant::now();
            match client.simple_query(sql).await {
                Ok(messages) => {
                    outcome.times.push(started.elapsed());
                    if run == 0 {
                        answer = messages
                            .iter()
                            .filter_map(|m| match m {
                                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                                    (0..row.len())
                                        .map(|i| row.get(i).unwrap_or("NULL").to_string())
                                        .collect(),
                                ),
                                _ => None,
                            })
                            .collect();
                    }
                }
                Err(e) => {
                    outcome.problem = Some(format!("error: {e}"));
                    break;
                }
            }
        }
        if outcome.problem.is_none() {
            outcome.problem = tpch::compare(expected, &answer).err();
        }
        progress("postgres", name, &outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `benches/tpch/duckdb_run.py` in `mode`; returns DuckDB's version and
/// the outcomes, checked against the reference.
fn duckdb(
    mode: &str,
    data: &Data,
    split: &Split,
    runs: usize,
    reference: &[Rows],
) -> Result<(String, Vec<Outcome>), Error> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch");
    let pg = url::Url::parse(&split.postgres)?;
    let my = url::Url::parse(&split.mysql)?;
    let libpq = format!(
        "host={} port={} user={} dbname={}{}",
        pg.host_str().unwrap_or("127.0.0.1"),
        pg.port().unwrap_or(5432),
        pg.username(),
        pg.path().trim_start_matches('/'),
        pg.password()
            .map(|p| format!(" password={p}"))
            .unwrap_or_default()
    );
    let mysql = format!(
        "host={} port={} user={} database={}{}",
        my.host_str().unwrap_or("127.0.0.1"),
        my.port().unwrap_or(3306),
        my.username(),
        split.my_database,
        my.password()
            .map(|p| format!(" password={p}"))
            .unwrap_or_default()
    );
    let output = Command::new("python3")
        .arg(here.join("duckdb_run.py"))
        .args(["--mode", mode, "--runs", &runs.to_string()])
        .arg("--data")
        .arg(&data.dir)
        .arg("--queries")
        .arg(here.join("queries"))
        .args(["--postgres", &libpq, "--pg-schema", &split.pg_schema])
        .args(["--mysql", &mysql])
        .arg("--sqlite")
        .arg(&split.sqlite)
        .args(split.orders_apart.then_some("--orders-apart"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running python3 for DuckDB: {e}"))?;
    if !output.status.success() {
        return Err(format!("DuckDB ({mode}) failed: {}", output.status).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("DuckDB ({mode}) printed no JSON: {e}"))?;
    let version = json["version"].as_str().unwrap_or("?").to_string();
    let mut outcomes = Vec::new();
    for ((name, _), expected) in tpch::QUERIES.iter().zip(reference) {
        let entry = &json["queries"][*name];
        let times = entry["times"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_f64())
                    .map(Duration::from_secs_f64)
                    .collect()
            })
            .unwrap_or_default();
        let problem = match entry["error"].as_str() {
            Some(e) => Some(format!("error: {e}")),
            None => {
                let rows: Rows = entry["rows"]
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .map(|r| {
                                r.as_array()
                                    .map(|v| {
                                        v.iter()
                                            .map(|x| x.as_str().unwrap_or("").to_string())
                                            .collect()
                                    })
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                tpch::compare(expected, &rows).err()
            }
        };
        let outcome = Outcome {
            times,
            planning: Vec::new(),
            problem,
        };
        progress(&format!("duckdb-{mode}"), name, &outcome);
        outcomes.push(outcome);
    }
    Ok((version, outcomes))
}

/// The machine and the versions, for the report.
async fn machine(postgres: &str, duckdb: Option<&str>) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    m.insert("cpu", model);
    m.insert(
        "cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
    );
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    m.insert("memory", memory);
    if let Ok((client, connection)) = tokio_postgres::connect(postgres, tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        if let Ok(row) = client.query_one("SHOW server_version", &[]).await {
            m.insert("postgresql", row.get::<_, String>(0));
        }
    }
    if let Ok(out) = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-e",
            "SELECT version()",
        ])
        .output()
    {
        m.insert(
            "mariadb",
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        );
    }
    if let Some(v) = duckdb {
        m.insert("duckdb", v.to_string());
    }
    m.insert("moltres", env!("CARGO_PKG_VERSION").to_string());
    m
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The markdown table and the JSON document.
fn report(
    sf: f64,
    runs: usize,
    machine: &BTreeMap<&'static str, String>,
    results: &BTreeMap<&str, Vec<Outcome>>,
) -> (String, serde_json::Value) {
    let systems: Vec<(&str, &str)> = SYSTEMS
        .iter()
        .filter(|(s, _)| results.contains_key(s))
        .copied()
        .collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "TPC-H SF{sf}, median of {runs} runs, seconds (✗: wrong answer or error)\n"
    );
    let _ = writeln!(
        md,
        "| query | {} |",
        systems
            .iter()
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---:|".repeat(systems.len()));
    for (i, (name, _)) in tpch::QUERIES.iter().enumerate() {
        let cells: Vec<String> = systems
            .iter()
            .map(|(s, _)| {
                let o = &results[s][i];
                match (o.median(), o.correct()) {
                    (Some(t), true) => seconds(t),
                    (Some(t), false) => format!("{} ✗", seconds(t)),
                    (None, _) => "✗".to_string(),
                }
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    }
    let total = |s: &str| -> Duration { results[s].iter().filter_map(Outcome::median).sum() };
    let correct = |s: &str| results[s].iter().filter(|o| o.correct()).count();
    let _ = writeln!(
        md,
        "| **total** | {} |",
        systems
            .iter()
            .map(|(s, _)| format!("**{}**", seconds(total(s))))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        md,
        "| correct | {} |",
        systems
            .iter()
            .map(|(s, _)| format!("{}/22", correct(s)))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let mut ratios = serde_json::Map::new();
    for (moltres, what, others) in [
        (
            "moltres",
            "the split",
            &[
                "moltres-parquet",
                "postgres",
                "duckdb-parquet",
                "duckdb-federated",
            ][..],
        ),
        (
            "moltres-apart",
            "the split apart",
            &["moltres-parquet", "postgres", "duckdb-apart", "moltres"][..],
        ),
    ] {
        if !results.contains_key(moltres) {
            continue;
        }
        let federated = total(moltres).as_secs_f64();
        let _ = writeln!(md);
        for (other, label) in systems.iter().filter(|(s, _)| others.contains(s)) {
            let ratio = federated / total(other).as_secs_f64().max(1e-9);
            ratios.insert(format!("{moltres}/{other}"), ratio.into());
            let _ = writeln!(md, "- Moltres over {what} / {label}: {ratio:.2}x");
        }
    }
    // Planning: parsing, optimizing and physical planning, per query.
    let planned: Vec<&(&str, &str)> = systems
        .iter()
        .filter(|(s, _)| results[s].iter().any(|o| o.median_planning().is_some()))
        .collect();
    if !planned.is_empty() {
        let _ = writeln!(md, "\nPlanning time, median, milliseconds:\n");
        let _ = writeln!(
            md,
            "| query | {} |\n|---|{}",
            planned
                .iter()
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join(" | "),
            "---:|".repeat(planned.len())
        );
        let milliseconds = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
        };
        for (i, (name, _)) in tpch::QUERIES.iter().enumerate() {
            let cells: Vec<String> = planned
                .iter()
                .map(|(s, _)| milliseconds(results[s][i].median_planning()))
                .collect();
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        }
        let _ = writeln!(
            md,
            "| **most** | {} |",
            planned
                .iter()
                .map(|(s, _)| {
                    let most = results[s].iter().filter_map(Outcome::median_planning).max();
                    format!("**{}**", milliseconds(most))
                })
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let _ = writeln!(
        md,
        "\nMachine: {}",
        machine
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (s, outcomes) in results {
        for (o, (q, _)) in outcomes.iter().zip(tpch::QUERIES) {
            if let Some(problem) = &o.problem {
                let _ = writeln!(md, "\n- {s} {q}: {problem}");
            }
        }
    }
    let json = serde_json::json!({
        "scale_factor": sf,
        "runs": runs,
        "machine": machine,
        "ratios": ratios,
        "systems": systems.iter().map(|(s, label)| {
            let queries: serde_json::Map<String, serde_json::Value> = results[s]
                .iter()
                .zip(tpch::QUERIES)
                .map(|(o, (q, _))| {
                    (q.to_string(), serde_json::json!({
                        "times": o.times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
                        "median": o.median().map(|t| t.as_secs_f64()),
                        "planning_median": o.median_planning().map(|t| t.as_secs_f64()),
                        "correct": o.correct(),
                        "problem": o.problem,
                    }))
                })
                .collect();
            (s.to_string(), serde_json::json!({
                "label": label,
                "total": total(s).as_secs_f64(),
                "correct": correct(s),
                "queries": queries,
            }))
        }).collect::<serde_json::Map<_, _>>(),
    });
    (md, json)
}
