//! Transactions on one attached database: [`Moltres::begin`] (a guard) and
//! [`Moltres::transaction`] (a closure).

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use datafusion::prelude::DataFrame;
use futures::future::BoxFuture;
use moltres_connectors::remote::{RemoteStatementExec, RemoteTable, RemoteTransaction, WriteMode};

use crate::ddl::{self, Target};
use crate::error::{Error, Result};
use crate::observe::{QueryTag, StatementKind, tag};
use crate::session::Moltres;
use crate::tables::{by_name, check_keys};

/// A transaction on one connection of an attached database.
///
/// Everything done through it commits together ([`commit`](Self::commit))
/// or not at all ([`rollback`](Self::rollback), an error in
/// [`Moltres::transaction`]'s closure, or dropping it). Each operation is
/// all or nothing by itself too: a failed one is undone (it runs in a
/// savepoint) and the transaction can go on or be rolled back.
///
/// Tables are named as the database names them: `orders` (its default
/// schema) or `schema.orders`. Rows can come from anywhere (batches, a
/// DataFrame over files or other databases); queries through
/// [`Moltres::sql`] run on other connections and do not see what the
/// transaction has not committed. MySQL ends a transaction at DDL
/// (`CREATE`, `DROP`, `ALTER`: implicit commit).
///
/// ```no_run
/// # async fn f(db: moltres::Moltres, rows: Vec<moltres::datafusion::arrow::record_batch::RecordBatch>) -> moltres::Result<()> {
/// use moltres::datafusion::prelude::{col, lit};
/// let mut tx = db.begin("pg").await?;
/// tx.insert("orders", rows).await?;
/// tx.update("accounts", col("id").eq(lit(7)), [("balance", lit(0))]).await?;
/// tx.execute("UPDATE stats SET orders = orders + 1").await?;
/// tx.commit().await?; // or tx.rollback(), or drop it
/// # Ok(()) }
/// ```
pub struct Transaction {
    db: Moltres,
    alias: String,
    default_schema: String,
    inner: Option<Box<dyn RemoteTransaction>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("source", &self.alias)
            .field("open", &self.inner.is_some())
            .finish()
    }
}

impl Moltres {
    /// Starts a transaction on the attached database `source`.
    pub async fn begin(&self, source: &str) -> Result<Transaction> {
        let info = self.source(source)?.info().clone();
        if info.read_only {
            return Err(Error::Statement(format!(
                "source '{source}' is attached READ_ONLY; it takes no transactions"
            )));
        }
        let inner = self.source(source)?.database().begin().await?;
        Ok(Transaction {
            db: self.clone(),
            alias: source.to_string(),
            default_schema: info.default_schema,
            inner: Some(inner),
        })
    }

    /// Runs `work` in a transaction on `source`: committed when it returns
    /// `Ok`, rolled back when it returns `Err` (which is returned).
    ///
    /// ```no_run
    /// # async fn f(db: moltres::Moltres) -> moltres::Result<()> {
    /// let moved = db
    ///     .transaction("pg", |tx| {
    ///         Box::pin(async move {
    ///             let n = tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1").await?;
    ///             tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2").await?;
    ///             Ok(n)
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, source: &str, work: F) -> Result<T>
    where
        F: for<'t> FnOnce(&'t mut Transaction) -> BoxFuture<'t, Result<T>>,
    {
        let mut tx = self.begin(source).await?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                // The work's error matters more than a failed rollback.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }
}

impl Transaction {
    /// The database's alias.
    pub fn source(&self) -> &str {
        &self.alias
    }

    fn inner(&mut self) -> Result<&mut Box<dyn RemoteTransaction>> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::Statement("the transaction has ended".to_string()))
    }

    fn target(&self, table: &str) -> Target {
        let reference = datafusion::common::TableReference::parse_str(table);
        Target {
            alias: self.alias.clone(),
            schema: reference
                .schema()
                .unwrap_or(&self.default_schema)
                .to_string(),
            table: reference.table().to_string(),
        }
    }

    async fn remote_table(
        &self,
        table: &str,
    ) -> Result<(Target, Arc<dyn datafusion::catalog::TableProvider>)> {
        let target = self.target(table);
        let provider = self
            .db
            .context()
            .table_provider(target.datafusion_name().as_str())
            .await
            .map_err(|e| {
                Error::Statement(format!(
                    "transaction on '{}': no table {} ({e})",
                    self.alias,
                    target.display()
                ))
            })?;
        if provider.downcast_ref::<RemoteTable>().is_none() {
            return Err(Error::Statement(format!(
                "transaction on '{}': {} is not a database table",
                self.alias,
                target.display()
            )));
        }
        Ok((target, provider))
    }

    /// Runs a statement in the database's own SQL; returns the rows
    /// affected.
    pub async fn execute(&mut self, native: &str) -> Result<u64> {
        let observer = Arc::clone(&self.db.observer);
        let sources = vec![self.alias.clone()];
        let inner = self.inner()?;
        Ok(observer
            .run(
                StatementKind::Transaction,
                native,
                sources,
                inner.execute(native),
                |n| *n,
            )
            .await?)
    }

    /// Appends `batches` to `table` (columns matched by name, cast to the
    /// table's types; the table's other columns get their defaults).
    pub async fn insert(&mut self, table: &str, batches: Vec<RecordBatch>) -> Result<u64> {
        let frame = self.db.context().read_batches(batches)?;
        self.write(table, frame, WriteMode::Append).await
    }

    /// Appends the rows of `frame` (any query: files, other databases) to
    /// `table`, streamed (columns matched by name).
    pub async fn insert_frame(&mut self, table: &str, frame: DataFrame) -> Result<u64> {
        self.write(table, frame, WriteMode::Append).await
    }

    /// Inserts `batches`, replacing the other columns of rows whose `keys`
    /// exist (see [`Moltres::upsert`]).
    pub async fn upsert(
        &mut self,
        table: &str,
        batches: Vec<RecordBatch>,
        keys: &[&str],
    ) -> Result<u64> {
        let frame = self.db.context().read_batches(batches)?;
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.write(table, frame, WriteMode::Upsert(&keys)).await
    }

    async fn write(&mut self, table: &str, frame: DataFrame, mode: WriteMode<'_>) -> Result<u64> {
        let (target, provider) = self.remote_table(table).await?;
        let what = match mode {
            WriteMode::Upsert(_) => format!("upsert into {}", target.display()),
            _ => format!("writing {}", target.display()),
        };
        let frame = tag(frame, QueryTag::Internal);
        let (frame, fields) = by_name(frame, &provider.schema(), &what, false)?;
        if let Some(keys) = mode.upsert_keys() {
            check_keys(&what, keys, &fields)?;
        }
        let stream = frame.execute_stream().await?;
        let reference = datafusion::common::TableReference::partial(
            target.schema.as_str(),
            target.table.as_str(),
        );
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let observer = Arc::clone(&self.db.observer);
        let sources = vec![self.alias.clone()];
        let described = match mode {
            WriteMode::Append => format!("insert into {}", target.display()),
            WriteMode::Overwrite => format!("overwrite {}", target.display()),
            WriteMode::Upsert(keys) => {
                format!("upsert into {} on {}", target.display(), keys.join(", "))
            }
        };
        let inner = self.inner()?;
        Ok(observer
            .run(
                StatementKind::Transaction,
                &described,
                sources,
                inner.write(&reference, schema, stream, mode),
                |n| *n,
            )
            .await?)
    }

    /// `DELETE FROM table WHERE filter` (see [`Moltres::delete`]).
    pub async fn delete(&mut self, table: &str, filter: Expr) -> Result<u64> {
        let sql = self.statement(table, filter, None).await?;
        self.execute(&sql).await
    }

    /// `UPDATE table SET ... WHERE filter` (see [`Moltres::update`]).
    pub async fn update<S: Into<String>>(
        &mut self,
        table: &str,
        filter: Expr,
        set: impl IntoIterator<Item = (S, Expr)>,
    ) -> Result<u64> {
        let set = set.into_iter().map(|(c, v)| (c.into(), v)).collect();
        let sql = self.statement(table, filter, Some(set)).await?;
        self.execute(&sql).await
    }

    /// The database's SQL for a DELETE or UPDATE, planned as
    /// [`Moltres::delete`] and [`Moltres::update`] plan it.
    async fn statement(
        &self,
        table: &str,
        filter: Expr,
        set: Option<Vec<(String, Expr)>>,
    ) -> Result<String> {
        let (target, _) = self.remote_table(table).await?;
        let plan = self
            .db
            .dml_plan(&target.datafusion_name(), filter, set)
            .await?;
        let state = self.db.context().state();
        let physical = state.create_physical_plan(&plan).await?;
        // The statement node, under whatever the planner put on top.
        let mut node = Some(physical);
        let mut sql = None;
        while let Some(plan) = node.take() {
            if let Some(exec) = plan.downcast_ref::<RemoteStatementExec>() {
                sql = Some(exec.sql().as_str().to_string());
                break;
            }
            node = match plan.children().as_slice() {
                [only] => Some(Arc::clone(only)),
                _ => None,
            };
        }
        sql.ok_or_else(|| {
            Error::Statement(format!(
                "transaction on '{}': the statement on {} is not one database statement",
                self.alias,
                target.display()
            ))
        })
    }

    /// Sets a savepoint named `name` (quoted by the database's dialect).
    pub async fn savepoint(&mut self, name: &str) -> Result<()> {
        let sql = format!("SAVEPOINT {}", self.quote(name)?);
        Ok(self.inner()?.control(&sql).await?)
    }

    /// Undoes what was done since savepoint `name`.
    pub async fn rollback_to(&mut self, name: &str) -> Result<()> {
        let sql = format!("ROLLBACK TO SAVEPOINT {}", self.quote(name)?);
        Ok(self.inner()?.control(&sql).await?)
    }

    /// Forgets savepoint `name` (keeping what was done since).
    pub async fn release(&mut self, name: &str) -> Result<()> {
        let sql = format!("RELEASE SAVEPOINT {}", self.quote(name)?);
        Ok(self.inner()?.control(&sql).await?)
    }

    fn quote(&self, name: &str) -> Result<String> {
        let database = ddl::database(&self.db, &self.alias)?;
        ddl::quote(database.as_ref(), name)
    }

    /// Makes the transaction's changes permanent.
    pub async fn commit(mut self) -> Result<()> {
        let inner = self.inner.take().ok_or_else(ended)?;
        let observer = Arc::clone(&self.db.observer);
        Ok(observer
            .run(
                StatementKind::Transaction,
                "COMMIT",
                vec![self.alias.clone()],
                inner.commit(),
                |_| 0,
            )
            .await?)
    }

    /// Undoes the transaction's changes.
    pub async fn rollback(mut self) -> Result<()> {
        let inner = self.inner.take().ok_or_else(ended)?;
        let observer = Arc::clone(&self.db.observer);
        Ok(observer
            .run(
                StatementKind::Transaction,
                "ROLLBACK",
                vec![self.alias.clone()],
                inner.rollback(),
                |_| 0,
            )
            .await?)
    }
}

fn ended() -> Error {
    Error::Statement("the transaction has ended".to_string())
}
