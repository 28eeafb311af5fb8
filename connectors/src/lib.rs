//! Moltres source connectors: each kind of source as Apache DataFusion table
//! providers.
//!
//! * [`files`]: CSV, Parquet and JSON files, local or in object storage;
//! * [`remote`]: what every SQL database connector shares;
//! * [`mysql`], MySQL and MariaDB;
//! * [`postgres`], PostgreSQL;
//! * [`sqlite`], SQLite;
//! * [`source`]: the [`SourceKind`](source::SourceKind) trait the engine's
//!   `ATTACH` registry is keyed by.

pub mod files;
pub mod mysql;
pub mod postgres;
pub mod remote;
pub mod secrets;
pub mod source;
pub mod sqlite;

pub use secrets::redact_url;

/// The text of a panic's payload (what `panic!` was given).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}
