//! Moltres: one SQL query or DataFrame over PostgreSQL, MySQL/MariaDB, SQLite
//! and files (CSV, Parquet, JSON; local or object storage), on Apache
//! DataFusion.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> moltres::Result<()> {
//! use moltres::Moltres;
//!
//! let db = Moltres::builder().build().await?;
//! let df = db
//!     .sql(
//!         "SELECT c.name, count(*) AS trips
//!          FROM '../testdata/trips.csv' t JOIN '../testdata/cities.parquet' c ON t.city_id = c.id
//!          GROUP BY c.name ORDER BY trips DESC, c.name",
//!     )
//!     .await?;
//! let batches = df.collect().await?;
//! assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
//! # Ok(())
//! # }
//! ```
//!
//! Results are DataFusion [`DataFrame`](datafusion::prelude::DataFrame)s:
//! `collect()`, `execute_stream()`, `show()`, `write_parquet()` and the rest
//! of DataFusion's API apply as they are.

pub mod config;
mod ddl;
mod error;
mod filter_pushdown;
pub mod guard;
mod joins;
pub mod logging;
pub mod observe;
mod operations;
mod plan_metrics;
mod precedence;
mod session;
mod sources;
pub mod statements;
mod tables;
mod transaction;

pub use config::{MemoryLimit, Settings};
pub use error::{Error, Result};
pub use observe::{
    HookResult, MetricsSnapshot, QueryHook, QueryInfo, QueryOutcome, SourceMetrics, StatementKind,
};
pub use operations::SourceHealth;
pub use plan_metrics::PlanMetrics;
pub use session::{DEFAULT_CATALOG, DEFAULT_SCHEMA, Moltres, MoltresBuilder, connect};
pub use sources::{Source, SourceInfo, redact_url};
pub use tables::{
    Column, ColumnType, CreateIndex, CreateTable, DropIndex, DropTable, SaveMode, column,
};
pub use transaction::Transaction;

pub use datafusion;
pub use moltres_connectors as connectors;
/// Waits (at most a given time) for background cleanups of cancelled
/// statements (a half-filled MySQL `CREATE TABLE ... AS` table) to finish:
/// call it before a process exits.
pub use moltres_connectors::remote::cleanups_done;
pub use moltres_connectors::secrets;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// `docs/operations.md`: its Rust snippets are compiled and run.
#[cfg(doctest)]
#[doc = include_str!("../../docs/operations.md")]
struct OperationsDoctests;
