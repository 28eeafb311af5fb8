//! Native SQL passthrough: a query the user wrote for the database itself,
//! run as is, whose rows come back as an Arrow table.
//!
//! * SQL: `SELECT * FROM postgres_query('pg', 'SELECT ...')` ([`RemoteQueryFunction`]);
//! * Rust: `db.source("pg")?.query("SELECT ...")` and `.execute("ALTER TABLE ...")`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

use super::{RemoteCatalog, RemoteDatabase, RemoteScanExec, RemoteSql};
use crate::files::block_on;

/// The rows of one native query, as a table.
#[derive(Debug)]
pub struct RemoteQueryTable {
    database: Arc<dyn RemoteDatabase>,
    sql: RemoteSql,
    schema: SchemaRef,
}

/// On a source attached READ_ONLY, passthrough runs queries only: the
/// statement must start with SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN or
/// DESCRIBE and hold no INTO (`INTO OUTFILE`, `SELECT INTO`). The database's
/// read-only transactions stop data changes inside those; this stops the
/// statements that run outside a transaction or are allowed in a read-only
/// one (`ALTER SYSTEM`, `COPY ... TO`, `VACUUM`, `SET GLOBAL`).
fn refuse_unless_query(database: &dyn RemoteDatabase, native: &str) -> Result<()> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let words: Vec<String> = Tokenizer::new(&GenericDialect {}, native)
        .tokenize()
        .map_err(|e| DataFusionError::Plan(e.to_string()))?
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let query = matches!(
        words.first().map(String::as_str),
        Some("SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC")
    );
    if !query || words.iter().any(|w| w == "INTO") {
        return plan_err!(
            "source '{}' is readonly (READ_ONLY or mode=ro): passthrough runs only queries (SELECT, WITH, \
             VALUES, TABLE, SHOW, EXPLAIN, DESCRIBE; no INTO), not: {native}",
            database.source_name()
        );
    }
    Ok(())
}

impl RemoteQueryTable {
    /// Asks the database for the result columns of `native` (without running
    /// it); on a `read_only` source only queries are accepted.
    pub async fn try_new(
        database: Arc<dyn RemoteDatabase>,
        native: &str,
        read_only: bool,
    ) -> Result<Self> {
        if read_only {
            refuse_unless_query(database.as_ref(), native)?;
        }
        let schema = database.query_schema(native).await?;
        Ok(Self {
            database,
            sql: RemoteSql::passthrough(native),
            schema,
        })
    }
}

#[async_trait]
impl TableProvider for RemoteQueryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan: Arc<dyn ExecutionPlan> = Arc::new(RemoteScanExec::new(
            Arc::clone(&self.database),
            self.sql.clone(),
            Arc::clone(&self.schema),
            state.config().batch_size(),
        ));
        let Some(indices) = projection else {
            return Ok(scan);
        };
        // The native query is opaque: select the wanted columns locally.
        let columns = indices.iter().map(|i| {
            let name = self.schema.field(*i).name();
            ProjectionExpr::new(Arc::new(Column::new(name, *i)), name.clone())
        });
        Ok(Arc::new(ProjectionExec::try_new(columns, scan)?))
    }
}

/// The databases attached to a session, by alias (a `SessionConfig`
/// extension the engine keeps up to date on ATTACH and DETACH).
#[derive(Debug, Default)]
pub struct RemoteSources {
    catalogs: RwLock<HashMap<String, Arc<RemoteCatalog>>>,
}

impl RemoteSources {
    /// Records `catalog` as `alias`.
    pub fn insert(&self, alias: &str, catalog: Arc<RemoteCatalog>) {
        self.catalogs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(alias.to_string(), catalog);
    }

    /// Forgets `alias`.
    pub fn remove(&self, alias: &str) {
        self.catalogs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(alias);
    }

    /// The catalog attached as `alias`.
    pub fn get(&self, alias: &str) -> Option<Arc<RemoteCatalog>> {
        self.catalogs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(alias)
            .cloned()
    }
}

/// The attached database named `alias`, if it is a remote one.
pub fn remote_database(state: &SessionState, alias: &str) -> Result<Arc<dyn RemoteDatabase>> {
    remote_catalog(state, alias).map(|catalog| catalog.database())
}

/// The catalog of the attached database named `alias`.
fn remote_catalog(state: &SessionState, alias: &str) -> Result<Arc<RemoteCatalog>> {
    if let Some(catalog) = state
        .config()
        .get_extension::<RemoteSources>()
        .and_then(|sources| sources.get(alias))
    {
        return Ok(catalog);
    }
    if state.catalog_list().catalog(alias).is_some() {
        return plan_err!("source '{alias}' is not a database");
    }
    plan_err!("no source named '{alias}' is attached (see SHOW SOURCES)")
}

/// `<kind>_query('alias', 'native SQL')`.
#[derive(Debug)]
pub struct RemoteQueryFunction {
    kind: &'static str,
}

impl RemoteQueryFunction {
    /// The function for databases of `kind` (`postgres`, ...), named `<kind>_query`.
    pub fn new(kind: &'static str) -> Self {
        Self { kind }
    }

    /// The SQL name of the function.
    pub fn name(&self) -> String {
        format!("{}_query", self.kind)
    }
}

impl TableFunctionImpl for RemoteQueryFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = self.name();
        let strings: Vec<String> = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(ScalarValue::Utf8(Some(s)), _)
                | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
                | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Ok(s.clone()),
                other => plan_err!("{name}: arguments must be string literals, got {other}"),
            })
            .collect::<Result<_>>()?;
        let [alias, native] = strings.as_slice() else {
            return plan_err!("usage: {name}('source', 'native SQL')");
        };
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("session is not a SessionState".into()))?;
        let catalog = remote_catalog(state, alias)?;
        let database = catalog.database();
        let read_only = catalog.read_only();
        if database.kind() != self.kind {
            return plan_err!(
                "{name}: source '{alias}' is a {} database; use {}_query",
                database.kind(),
                database.kind()
            );
        }
        let native = native.clone();
        let table =
            block_on(
                async move { RemoteQueryTable::try_new(database, &native, read_only).await },
            )??;
        Ok(Arc::new(table))
    }
}
