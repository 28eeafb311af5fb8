//! A remote database's schemas and tables as a DataFusion catalog, listed
//! lazily and cached until [`RemoteCatalog::refresh`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};

use super::{RemoteDatabase, RemoteTable};
use crate::files::block_on;

/// The catalog of one attached database.
#[derive(Debug)]
pub struct RemoteCatalog {
    database: Arc<dyn RemoteDatabase>,
    schemas: RwLock<Option<Vec<String>>>,
    providers: RwLock<HashMap<String, Arc<RemoteSchema>>>,
    read_only: bool,
}

impl RemoteCatalog {
    /// A catalog over `database`; nothing is listed until asked for.
    pub fn new(database: Arc<dyn RemoteDatabase>) -> Self {
        Self {
            database,
            schemas: RwLock::new(None),
            providers: RwLock::default(),
            read_only: false,
        }
    }

    /// Whether it was attached READ_ONLY.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Refuses writes (`INSERT`) into its tables when `read_only`.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The database behind the catalog.
    pub fn database(&self) -> Arc<dyn RemoteDatabase> {
        Arc::clone(&self.database)
    }

    /// Forgets every cached schema, table list and table definition.
    pub fn refresh(&self) {
        *self.schemas.write().unwrap_or_else(|e| e.into_inner()) = None;
        // The providers stay (the session's `alias.table` shortcut holds
        // one); they forget their tables.
        let providers = self.providers.read().unwrap_or_else(|e| e.into_inner());
        for provider in providers.values() {
            provider.forget();
        }
    }

    /// The schema provider for `name` (whether or not it exists remotely).
    pub fn schema_provider(&self, name: &str) -> Arc<RemoteSchema> {
        let mut providers = self.providers.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(providers.entry(name.to_string()).or_insert_with(|| {
            Arc::new(RemoteSchema {
                database: Arc::clone(&self.database),
                schema: name.to_string(),
                tables: RwLock::new(None),
                definitions: RwLock::default(),
                read_only: self.read_only,
            })
        }))
    }

    fn list_schemas(&self) -> Result<Vec<String>> {
        let database = Arc::clone(&self.database);
        cached_names(&self.schemas, move || async move {
            database.schema_names().await
        })
    }
}

impl CatalogProvider for RemoteCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.list_schemas().unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let known = self.list_schemas().unwrap_or_default();
        // Unknown schemas still resolve (to empty) so that a missing table
        // produces DataFusion's "table not found" naming it.
        if known.iter().any(|s| s == name) || name == self.database.default_schema() {
            Some(self.schema_provider(name) as Arc<dyn SchemaProvider>)
        } else {
            None
        }
    }
}

/// One schema of a remote database.
#[derive(Debug)]
pub struct RemoteSchema {
    database: Arc<dyn RemoteDatabase>,
    schema: String,
    tables: RwLock<Option<Vec<String>>>,
    definitions: RwLock<HashMap<String, Arc<RemoteTable>>>,
    read_only: bool,
}

impl RemoteSchema {
    /// Forgets the cached table list and definitions.
    fn forget(&self) {
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.definitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn list_tables(&self) -> Result<Vec<String>> {
        let database = Arc::clone(&self.database);
        let schema = self.schema.clone();
        cached_names(&self.tables, move || async move {
            database.table_names(&schema).await
        })
    }
}

impl RemoteSchema {
    /// Up to three table names close to `name`: equal ignoring case, or at
    /// most two edits away (quoted identifiers keep their case in SQL).
    fn close_names(&self, name: &str) -> Vec<String> {
        let mut close: Vec<(usize, String)> = self
            .list_tables()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|candidate| {
                let distance = if candidate.eq_ignore_ascii_case(name) {
                    0
                } else {
                    edit_distance(&candidate.to_lowercase(), &name.to_lowercase())
                };
                (distance <= 2).then_some((distance, candidate))
            })
            .collect();
        close.sort();
        close.into_iter().take(3).map(|(_, n)| n).collect()
    }
}

/// The names in `cache`, loaded (synchronously, for DataFusion's sync
/// catalog calls) the first time or after a refresh.
fn cached_names<F, Fut>(cache: &RwLock<Option<Vec<String>>>, load: F) -> Result<Vec<String>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<String>>> + Send,
{
    if let Some(names) = cache.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(names);
    }
    let names = block_on(load())??;
    *cache.write().unwrap_or_else(|e| e.into_inner()) = Some(names.clone());
    Ok(names)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[async_trait]
impl SchemaProvider for RemoteSchema {
    fn table_names(&self) -> Vec<String> {
        self.list_tables().unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self
            .definitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(Arc::clone(table) as Arc<dyn TableProvider>));
        }
        let Some(schema) = self
            .database
            .table_schema(&self.schema, name)
            .await
            .map_err(|e| {
                DataFusionError::Context(
                    format!(
                        "reading the definition of {}.{}.{name}",
                        self.database.source_name(),
                        self.schema
                    ),
                    Box::new(e),
                )
            })?
        else {
            return match self.close_names(name).as_slice() {
                [] => Ok(None),
                close => Err(DataFusionError::Plan(format!(
                    "table '{}.{}.{name}' not found; did you mean {}?",
                    self.database.source_name(),
                    self.schema,
                    close
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ))),
            };
        };
        let rows = self.database.row_estimate(&self.schema, name).await;
        let columns = match rows {
            Some(_) => {
                self.database
                    .column_estimates(&self.schema, name, &schema)
                    .await
            }
            None => Default::default(),
        };
        let memory = match rows {
            Some(_) => self.database.aggregate_memory().await,
            None => None,
        };
        // Only a table large enough to be read in parts needs its ranges.
        let ranges = match rows {
            Some(rows) if self.database.scan_partitioning().splits(rows) => {
                self.database.row_ranges(&self.schema, name).await
            }
            _ => None,
        };
        let table = Arc::new(
            RemoteTable::new(Arc::clone(&self.database), &self.schema, name, schema)
                .with_read_only(self.read_only)
                .with_row_ranges(ranges)
                .with_row_estimate(rows)
                .with_column_estimates(columns)
                .with_aggregate_memory(memory),
        );
        self.definitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::clone(&table));
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.list_tables()
            .map(|names| names.iter().any(|n| n == name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("orders", "orders"), 0);
        assert_eq!(edit_distance("ordrs", "orders"), 1);
        assert_eq!(edit_distance("order_items", "orders"), 5);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
