//! The contract between the engine's `ATTACH` registry and a kind of source.
//!
//! The engine keys its registry by URL scheme; each [`SourceKind`] names the
//! schemes it serves and turns an [`AttachRequest`] into an [`AttachedSource`]:
//! a DataFusion catalog plus the schema that two-part names (`alias.table`)
//! resolve to. A new kind of database is a new `SourceKind`; the engine does
//! not change.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, TableFunctionImpl};
use datafusion::common::Result;

use crate::files::{DirectorySource, FileOptions, SessionHandle};
use crate::remote::RemoteCatalog;

/// What `ATTACH 'url' AS alias (OPTIONS)` asks for.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The name the source is reachable as.
    pub alias: String,
    /// The URL or path as written (may carry a password: never log it).
    pub url: String,
    /// `READ_ONLY`: writes through this source are refused.
    pub read_only: bool,
    /// Other options, lower-cased keys.
    pub options: BTreeMap<String, String>,
    /// The session the source belongs to.
    pub session: SessionHandle,
}

impl AttachRequest {
    /// The options a connector reads: those given, with `read_only = true`
    /// when the source is attached `READ_ONLY` (each database then refuses
    /// writes itself, passthrough SQL included).
    pub fn connector_options(&self) -> BTreeMap<String, String> {
        let mut options = self.options.clone();
        if self.read_only {
            options.insert("read_only".to_string(), "true".to_string());
        }
        options
    }
}

/// An attached source, as the engine registers it.
#[derive(Debug, Clone)]
pub struct AttachedSource {
    /// The catalog: `alias.schema.table`.
    pub catalog: Arc<dyn CatalogProvider>,
    /// The schema `alias.table` resolves to (public, the MySQL database, main).
    pub default_schema: String,
    /// For databases: the catalog with its connection, for passthrough and refresh.
    pub remote: Option<Arc<RemoteCatalog>>,
    /// The source itself refuses writes (SQLite `mode=ro`), whatever ATTACH said.
    pub read_only: bool,
}

impl AttachedSource {
    /// A database attached as a catalog of its schemas, `alias.table`
    /// resolving in its default schema; read-only when ATTACH said so or
    /// the database itself refuses writes (`source_read_only`).
    pub fn database(
        database: Arc<dyn crate::remote::RemoteDatabase>,
        request: &AttachRequest,
        source_read_only: bool,
    ) -> Self {
        let default_schema = database.default_schema().to_string();
        let catalog = Arc::new(
            RemoteCatalog::new(database).with_read_only(request.read_only || source_read_only),
        );
        AttachedSource {
            catalog: Arc::clone(&catalog) as _,
            default_schema,
            remote: Some(catalog),
            read_only: source_read_only,
        }
    }
}

/// A kind of source (files, PostgreSQL, ...).
#[async_trait]
pub trait SourceKind: Debug + Send + Sync {
    /// Shown by `SHOW SOURCES` (`files`, `postgres`, ...).
    fn name(&self) -> &'static str;

    /// URL schemes this kind serves (`postgres`, `postgresql`, ...). The
    /// engine sends URLs without a scheme (plain paths) to the kind that
    /// lists `file`.
    fn schemes(&self) -> &'static [&'static str];

    /// Connects (or lists) and returns the source's catalog.
    async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource>;

    /// Table functions this kind adds to every session (`postgres_query`, ...).
    fn table_functions(&self) -> Vec<(String, Arc<dyn TableFunctionImpl>)> {
        Vec::new()
    }
}

/// Directories of files: `ATTACH 'testdata/' AS files`, `ATTACH 's3://bucket/prefix/' AS lake`.
#[derive(Debug, Default)]
pub struct FilesKind;

#[async_trait]
impl SourceKind for FilesKind {
    fn name(&self) -> &'static str {
        "files"
    }

    fn schemes(&self) -> &'static [&'static str] {
        crate::files::SUPPORTED_STORE_SCHEMES
    }

    async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource> {
        let mut options = FileOptions::new();
        for (key, value) in &request.options {
            options = options.with(key, value);
        }
        let directory =
            DirectorySource::try_new(request.session.clone(), &request.url, options).await?;
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("main", Arc::new(directory))?;
        Ok(AttachedSource {
            catalog: Arc::new(catalog),
            default_schema: "main".to_string(),
            remote: None,
            read_only: false,
        })
    }
}
