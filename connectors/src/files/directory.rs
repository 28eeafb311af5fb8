//! `ATTACH 'testdata/' AS files`: every readable file in a directory (local or
//! an object-store prefix) becomes a table named after the file's stem, and
//! every subdirectory a table over the files in it (a partitioned dataset).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;

use super::{FileOptions, SessionHandle, file_name_info, open_file_table};

/// The tables of one attached directory; opened on first use.
#[derive(Debug)]
pub struct DirectorySource {
    session: SessionHandle,
    /// Table name -> path (file, or subdirectory URL ending in `/`).
    tables: BTreeMap<String, String>,
    options: FileOptions,
}

impl DirectorySource {
    /// Lists `location` once; its files and subdirectories become tables.
    pub async fn try_new(
        session: SessionHandle,
        location: &str,
        options: FileOptions,
    ) -> Result<Self> {
        let state = &session.state()?;
        let dir = if location.ends_with('/') {
            location.to_string()
        } else {
            format!("{location}/")
        };
        let url = ListingTableUrl::parse(&dir)?;
        let store = state.runtime_env().object_store(&url)?;
        let listing = store
            .list_with_delimiter(Some(url.prefix()))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    DataFusionError::Plan(format!("no such directory: '{location}'"))
                }
                e => DataFusionError::Context(
                    format!("cannot list '{location}'"),
                    Box::new(DataFusionError::ObjectStore(Box::new(e))),
                ),
            })?;
        let base = dir.clone();
        let mut tables = BTreeMap::new();
        for object in listing.objects {
            let Some(file) = object.location.filename() else {
                continue;
            };
            if file.starts_with('.') || file_name_info(file).kind.is_none() {
                continue;
            }
            let stem = file.split('.').next().unwrap_or(file).to_string();
            tables
                .entry(stem)
                .or_insert_with(|| format!("{base}{file}"));
        }
        for prefix in listing.common_prefixes {
            if let Some(name) = prefix.filename()
                && !name.starts_with('.')
            {
                tables
                    .entry(name.to_string())
                    .or_insert_with(|| format!("{base}{name}/"));
            }
        }
        if tables.is_empty()
            && !std::path::Path::new(location).is_dir()
            && !location.contains("://")
        {
            return Err(DataFusionError::Plan(format!(
                "no such directory: '{location}'"
            )));
        }
        Ok(Self {
            session,
            tables,
            options,
        })
    }

    /// The path each table reads.
    pub fn table_paths(&self) -> &BTreeMap<String, String> {
        &self.tables
    }
}

#[async_trait]
impl SchemaProvider for DirectorySource {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(path) = self.tables.get(name) else {
            return Ok(None);
        };
        open_file_table(&self.session.state()?, path, None, &self.options)
            .await
            .map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}
