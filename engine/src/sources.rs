//! The source registry: which kinds of source exist (keyed by URL scheme),
//! which sources are attached, and the catalog list they live in.
//!
//! An attached source `pg` is registered twice: as catalog `pg` (so
//! `pg.schema.table` works) and as schema `pg` of the session's default
//! catalog, pointing at the source's default schema (so `pg.table` works).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, CatalogProviderList};
use datafusion::prelude::{DataFrame, SessionContext};
use moltres_connectors::remote::{RemoteCatalog, RemoteQueryTable};
use moltres_connectors::source::{AttachRequest, AttachedSource, SourceKind};

use crate::error::{Error, Result};

/// A catalog list whose catalogs can be removed again (`DETACH`).
#[derive(Debug, Default)]
pub struct SourceCatalogList {
    catalogs: RwLock<HashMap<String, Arc<dyn CatalogProvider>>>,
}

impl SourceCatalogList {
    /// Removes the catalog `name`.
    pub fn deregister_catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }
}

impl CatalogProviderList for SourceCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .catalogs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// One attached source, as `SHOW SOURCES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// The alias.
    pub name: String,
    /// The kind (`files`, `postgres`, ...).
    pub kind: String,
    /// The URL with any password replaced by `***`.
    pub url: String,
    /// Writes are refused.
    pub read_only: bool,
    /// The schema `name.table` resolves to.
    pub default_schema: String,
}

/// An attached database, for native SQL ([`crate::Moltres::source`]).
#[derive(Clone)]
pub struct Source {
    pub(crate) info: SourceInfo,
    pub(crate) catalog: Arc<RemoteCatalog>,
    pub(crate) ctx: SessionContext,
    pub(crate) observer: Arc<crate::observe::Observer>,
}

impl Source {
    /// The database behind the source (for connector-level operations).
    pub fn database(&self) -> Arc<dyn moltres_connectors::remote::RemoteDatabase> {
        self.catalog.database()
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("info", &self.info).finish()
    }
}

impl Source {
    /// What `SHOW SOURCES` says about it.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Runs a native query on the database; its rows as a DataFrame.
    pub async fn query(&self, native: &str) -> Result<DataFrame> {
        let table =
            RemoteQueryTable::try_new(self.catalog.database(), native, self.info.read_only).await?;
        let df = self.ctx.read_table(Arc::new(table))?;
        Ok(crate::observe::tag(
            df,
            crate::observe::QueryTag::Statement {
                sql: native.to_string(),
                kind: Some(crate::observe::StatementKind::Passthrough),
            },
        ))
    }

    /// Runs a native statement (DDL such as ALTER TABLE, or DML); returns the
    /// rows affected. Refused on a source attached READ_ONLY.
    pub async fn execute(&self, native: &str) -> Result<u64> {
        if self.info.read_only {
            return Err(Error::Statement(format!(
                "source '{}' is attached READ_ONLY; statements that change it are refused",
                self.info.name
            )));
        }
        let database = self.catalog.database();
        let affected = self
            .observer
            .run(
                crate::observe::StatementKind::Passthrough,
                native,
                vec![self.info.name.clone()],
                database.execute_statement(native),
                |n| *n,
            )
            .await?;
        // The statement may have changed tables: forget cached definitions.
        self.catalog.refresh();
        Ok(affected)
    }
}

/// Kinds of source by scheme, and the attached sources.
#[derive(Debug)]
pub struct SourceRegistry {
    kinds: Vec<Arc<dyn SourceKind>>,
    attached: RwLock<BTreeMap<String, SourceInfo>>,
}

impl SourceRegistry {
    /// A registry knowing `kinds`.
    pub fn new(kinds: Vec<Arc<dyn SourceKind>>) -> Self {
        Self {
            kinds,
            attached: RwLock::default(),
        }
    }

    /// Every scheme some kind serves, sorted.
    pub fn schemes(&self) -> Vec<&'static str> {
        let mut schemes: Vec<&'static str> = self
            .kinds
            .iter()
            .flat_map(|k| k.schemes().iter().copied())
            .collect();
        schemes.sort();
        schemes.dedup();
        schemes
    }

    /// The kind serving `url` (a plain path is `file`).
    pub fn kind_for(&self, url: &str) -> Result<Arc<dyn SourceKind>> {
        let scheme = url_scheme(url).unwrap_or("file").to_ascii_lowercase();
        self.kinds
            .iter()
            .find(|k| k.schemes().contains(&scheme.as_str()))
            .cloned()
            .ok_or_else(|| {
                Error::Statement(format!(
                    "cannot attach '{}': unknown scheme '{scheme}'; supported schemes: {} (or a local path)",
                    redact_url(url),
                    self.schemes().join(", ")
                ))
            })
    }

    /// Attaches through the kind serving `request.url`; returns the catalog to register.
    pub async fn attach(&self, request: &AttachRequest) -> Result<AttachedSource> {
        if self.get(&request.alias).is_some() {
            return Err(Error::Statement(format!(
                "a source named '{}' is already attached; DETACH it first",
                request.alias
            )));
        }
        moltres_connectors::secrets::remember_url(&request.url);
        let kind = self.kind_for(&request.url)?;
        let attached = kind.attach(request).await.map_err(|e| {
            // A driver's message may quote the URL or the password.
            let cause = moltres_connectors::secrets::scrub(&e.to_string()).into_owned();
            Error::DataFusion(datafusion::error::DataFusionError::Context(
                format!(
                    "cannot attach {} source '{}' as {}",
                    kind.name(),
                    redact_url(&request.url),
                    request.alias
                ),
                Box::new(datafusion::error::DataFusionError::External(cause.into())),
            ))
        })?;
        self.attached
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                request.alias.clone(),
                SourceInfo {
                    name: request.alias.clone(),
                    kind: kind.name().to_string(),
                    url: redact_url(&request.url),
                    read_only: request.read_only || attached.read_only,
                    default_schema: attached.default_schema.clone(),
                },
            );
        Ok(attached)
    }

    /// Forgets `alias`; returns what was attached.
    pub fn detach(&self, alias: &str) -> Option<SourceInfo> {
        self.attached
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(alias)
    }

    /// The source attached as `alias`.
    pub fn get(&self, alias: &str) -> Option<SourceInfo> {
        self.attached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(alias)
            .cloned()
    }

    /// Every attached source, by name.
    pub fn list(&self) -> Vec<SourceInfo> {
        self.attached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// `SHOW SOURCES` as a record batch: name, kind, url, read_only, default_schema.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let sources = self.list();
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
            Field::new("read_only", DataType::Boolean, false),
            Field::new("default_schema", DataType::Utf8, false),
        ]));
        let column = |f: fn(&SourceInfo) -> &str| {
            Arc::new(StringArray::from_iter_values(sources.iter().map(f)))
        };
        Ok(RecordBatch::try_new(
            schema,
            vec![
                column(|s| &s.name),
                column(|s| &s.kind),
                column(|s| &s.url),
                Arc::new(BooleanArray::from_iter(
                    sources.iter().map(|s| Some(s.read_only)),
                )),
                column(|s| &s.default_schema),
            ],
        )
        .map_err(datafusion::error::DataFusionError::from)?)
    }
}

/// The scheme of `url` (`postgres` in `postgres://...`, `sqlite` in
/// `sqlite:x.db`), or `None` for a plain path (including `C:\...`).
pub fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

pub use moltres_connectors::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_schemes() {
        assert_eq!(url_scheme("postgres://x"), Some("postgres"));
        assert_eq!(url_scheme("sqlite:x.db"), Some("sqlite"));
        assert_eq!(url_scheme("C:\\data"), None);
        assert_eq!(url_scheme("testdata/x.csv"), None);
    }
}
