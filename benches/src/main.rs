//! Moltres benchmarks: binaries that print numbers (no timed tests).
//!
//! ```text
//! cargo run --release -p moltres-benches -- spill [--size 2GB] [--memory-limit 256MiB] [--data DIR]
//! ```
//!
//! `spill` writes a CSV of about `--size` bytes (once; it is reused), then runs
//! an ORDER BY over every row and a GROUP BY with millions of groups under the
//! memory limit, each in a fresh child process so its peak RSS is its own, and
//! prints time, peak RSS, peak RSS / limit and bytes spilled.
//!
//! ```text
//! cargo run --release -p moltres-benches -- tpch [--sf 1] [--runs 3] [--reload] [--only SYSTEMS]
//! ```
//!
//! `tpch` runs the 22 TPC-H queries over data split across PostgreSQL,
//! MariaDB, SQLite, CSV and Parquet, beside all-Parquet, PostgreSQL alone and
//! DuckDB (see benches/README.md).

mod load;
mod scan;
mod tpch_report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use moltres::config::{format_bytes, parse_bytes};
use moltres::{MemoryLimit, Moltres, PlanMetrics};

const QUERIES: &[(&str, &str)] = &[
    (
        "order_by",
        "SELECT key, id, amount, note FROM '{csv}' ORDER BY key, id",
    ),
    (
        "group_by",
        "SELECT key, count(*) AS n, sum(amount) AS total, max(note) AS note FROM '{csv}' GROUP BY key",
    ),
];

fn usage() -> ! {
    eprintln!(
        "usage: moltres-benches spill [--size 2GB] [--memory-limit 256MiB] [--data DIR]\n       \
         moltres-benches load [--sf 1] [--data DIR] [--only postgres,mysql,sqlite]\n       \
         moltres-benches scan [--sf 1] [--data DIR] [--parts 1,2,4] [--only SYSTEMS] [--connectorx VENV]\n       \
         moltres-benches tpch [--sf 1] [--data DIR] [--runs 3] [--reload] [--only SYSTEMS]\n       \
         moltres-benches tpch-explain [--sf 0.1] [--analyze] [--parquet | --apart] q01 ...\n       \
         moltres-benches spill-query NAME CSV LIMIT_BYTES SPILL_DIR   (internal)"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("spill") => spill(&args[1..]),
        Some("load") => load::load(&args[1..]),
        Some("tpch") => tpch_report::tpch(&args[1..]),
        Some("scan") => scan::scan(&args[1..]),
        Some("tpch-explain") => tpch_report::explain(&args[1..]),
        Some("load-one") if args.len() == 4 => {
            load::load_one(&args[1], Path::new(&args[2]), Path::new(&args[3]))
        }
        Some("spill-query") if args.len() == 5 => {
            let limit = args[3].parse().unwrap_or_else(|_| usage());
            spill_query(&args[1], Path::new(&args[2]), limit, Path::new(&args[4]));
        }
        _ => usage(),
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn spill(args: &[String]) {
    let size = parse_bytes(&flag(args, "--size").unwrap_or_else(|| "2GB".into()))
        .unwrap_or_else(|e| panic!("--size: {e}"));
    let limit = parse_bytes(&flag(args, "--memory-limit").unwrap_or_else(|| "256MiB".into()))
        .unwrap_or_else(|e| panic!("--memory-limit: {e}"));
    let data = PathBuf::from(flag(args, "--data").unwrap_or_else(|| "benches/data".into()));
    std::fs::create_dir_all(&data).expect("create the data directory");
    let csv = data.join(format!("spill-{size}.csv"));
    if !csv.exists() {
        let started = Instant::now();
        let rows = generate(&csv, size as u64);
        println!(
            "generated {} ({rows} rows, {}) in {:.1} s",
            csv.display(),
            format_bytes(std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0)),
            started.elapsed().as_secs_f64()
        );
    }
    let file_size = std::fs::metadata(&csv).expect("data file").len();
    let spill_dir = data.join("spill");
    std::fs::create_dir_all(&spill_dir).expect("create the spill directory");
    println!(
        "input {} ({}), memory limit {}, input/limit {:.1}x, {} cores",
        csv.display(),
        format_bytes(file_size),
        format_bytes(limit as u64),
        file_size as f64 / limit as f64,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| query | time (s) | rows out | peak RSS | peak RSS / limit | spilled | spills |");
    println!("|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for (name, _) in QUERIES {
        let output = Command::new(&exe)
            .args(["spill-query", name])
            .arg(&csv)
            .arg(limit.to_string())
            .arg(&spill_dir)
            .output()
            .expect("run the query process");
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            println!(
                "| {name} | failed: {} | | | | | |",
                stderr.lines().next().unwrap_or("").trim()
            );
            continue;
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [secs, rows, rss, spilled, spills] = fields[..] else {
            println!("| {name} | unexpected output: {line} | | | | | |");
            continue;
        };
        let rss: u64 = rss.parse().unwrap_or(0);
        println!(
            "| {name} | {secs} | {rows} | {} | {:.2} | {} | {spills} |",
            format_bytes(rss),
            rss as f64 / limit as f64,
            format_bytes(spilled.parse().unwrap_or(0)),
        );
    }
}

/// Writes `id,key,amount,note` rows until the file reaches `size` bytes; the
/// keys (about one per four rows) come from a fixed LCG, so runs are comparable.
fn generate(path: &Path, size: u64) -> u64 {
    let tmp = path.with_extension("csv.partial");
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&tmp).expect("create data file"),
    );
    writeln!(out, "id,key,amount,note").expect("write");
    let approx_rows = size / 60;
    let keys = (approx_rows / 4).max(1);
    let mut written = 0u64;
    let mut x: u64 = 42;
    let mut id = 0u64;
    while written < size {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let line = format!(
            "{id},k{:012},{}.{:02},note-{:016x}\n",
            (x >> 20) % keys,
            (x >> 40) % 100_000,
            x % 100,
            x
        );
        out.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
        id += 1;
    }
    out.flush().expect("flush");
    drop(out);
    std::fs::rename(&tmp, path).expect("rename data file");
    id
}

fn spill_query(name: &str, csv: &Path, limit: usize, spill_dir: &Path) {
    let sql = QUERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| sql.replace("{csv}", &csv.display().to_string()))
        .unwrap_or_else(|| usage());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = Moltres::builder()
            .without_env()
            .memory_limit(MemoryLimit::Bytes(limit))
            .spill_dir(spill_dir)
            .build()
            .await
            .expect("session");
        let started = Instant::now();
        let fail = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("{}", e.to_string().replace('\n', " "));
            std::process::exit(1)
        };
        let plan = match db.sql(&sql).await {
            Ok(df) => df.create_physical_plan().await.unwrap_or_else(|e| fail(&e)),
            Err(e) => fail(&e),
        };
        let mut stream =
            execute_stream(Arc::clone(&plan), db.context().task_ctx()).unwrap_or_else(|e| fail(&e));
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            rows += batch.unwrap_or_else(|e| fail(&e)).num_rows();
        }
        let secs = started.elapsed().as_secs_f64();
        let metrics = PlanMetrics::of(&plan);
        println!(
            "{secs:.1} {rows} {} {} {}",
            peak_rss(),
            metrics.spilled_bytes,
            metrics.spill_count
        );
    });
}

/// Peak resident set size of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
