//! Command-line flags of `moltres`.

use std::path::PathBuf;

use clap::Parser;

use crate::print::Format;

/// Moltres: SQL over PostgreSQL, MySQL/MariaDB, SQLite and CSV/Parquet/JSON files.
///
/// With no -c or -f, reads statements from standard input: interactively (a
/// REPL with history) on a terminal, as a script otherwise.
#[derive(Debug, Parser)]
#[command(name = "moltres", version, about, long_about = None)]
pub struct Args {
    /// Run these statements (separated by `;`) and exit. May be repeated.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Run the statements in FILE (`-` for standard input) and exit. May be repeated.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<String>,

    /// Output format: table, csv, tsv, json or ndjson [default: table on a terminal, csv otherwise]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Print at most N rows of each result (the rest is not read).
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,

    /// Quiet: no banner, no row counts or timings, no progress line; only
    /// Moltres's own warnings and errors are logged (unless MOLTRES_LOG or
    /// RUST_LOG is set).
    #[arg(short, long)]
    pub quiet: bool,

    /// Memory limit for queries, e.g. 2GiB, 512MB, 50% [env: MOLTRES_MEMORY_LIMIT]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Directory for spill files [env: MOLTRES_SPILL_DIR]
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Rows per record batch [env: MOLTRES_BATCH_SIZE]
    #[arg(long, value_name = "ROWS")]
    pub batch_size: Option<usize>,

    /// Parallelism of scans, joins and aggregates [env: MOLTRES_PARTITIONS]
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,

    /// TOML settings file with [sources.NAME] to attach [env: MOLTRES_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
