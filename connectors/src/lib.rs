//! Moltres source connectors: each kind of source as Apache DataFusion table
//! providers.
//!
//! * [`files`]: CSV, Parquet and JSON files, local or in object storage;
//! * [`remote`]: what every SQL database connector shares;
//! * [`source`]: the [`SourceKind`](source::SourceKind) trait the engine's
//!   `ATTACH` registry is keyed by.

pub mod files;
pub mod remote;
pub mod source;
