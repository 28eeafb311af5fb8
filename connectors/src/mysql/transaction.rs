//! A transaction on one pooled MySQL/MariaDB connection.
//!
//! MySQL commits implicitly before and after DDL (`CREATE`, `DROP`,
//! `ALTER`, ...): such a statement inside a transaction ends it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, TableReference};
use datafusion::execution::SendableRecordBatchStream;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::connection::{insert_rows, remote_error};
use crate::remote::{OPERATION_SAVEPOINT, RemoteTransaction, TransactionState, WriteMode};

/// `START TRANSACTION` on a connection of its own; each operation in a
/// savepoint.
pub struct MysqlTransaction {
    conn: Option<Conn>,
    name: Arc<str>,
    database: String,
    state: TransactionState,
}

impl MysqlTransaction {
    /// Starts a transaction on `conn`.
    pub async fn begin(mut conn: Conn, name: Arc<str>, database: String) -> Result<Self> {
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(|e| remote_error(&name, e, Some("START TRANSACTION")))?;
        Ok(Self {
            conn: Some(conn),
            name,
            database,
            state: TransactionState::default(),
        })
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("the connection is kept until the transaction ends")
    }

    async fn run(&mut self, sql: &str) -> Result<()> {
        let name = Arc::clone(&self.name);
        self.conn()
            .query_drop(sql)
            .await
            .map_err(|e| remote_error(&name, e, Some(sql)))
    }

    /// Releases the operation savepoint after `result`, or rolls back to it.
    async fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                self.run(&format!("RELEASE SAVEPOINT {OPERATION_SAVEPOINT}"))
                    .await?;
                Ok(value)
            }
            Err(e) => {
                self.run(&format!("ROLLBACK TO SAVEPOINT {OPERATION_SAVEPOINT}"))
                    .await?;
                Err(e)
            }
        }
    }

    async fn end(mut self: Box<Self>, sql: &'static str) -> Result<()> {
        if sql == "ROLLBACK" && !self.state.clean() {
            // Dropping resets the connection, which rolls back.
            return Ok(());
        }
        self.state.start(&self.name)?;
        let result = self.run(sql).await;
        self.state.done();
        if result.is_ok() {
            self.state.finish();
        }
        result
    }
}

#[async_trait]
impl RemoteTransaction for MysqlTransaction {
    fn source_name(&self) -> &str {
        &self.name
    }

    async fn execute(&mut self, native: &str) -> Result<u64> {
        self.state.start(&self.name)?;
        let mut result = self
            .run(&format!("SAVEPOINT {OPERATION_SAVEPOINT}"))
            .await
            .map(|_| 0);
        if result.is_ok() {
            let name = Arc::clone(&self.name);
            let conn = self.conn();
            let done = conn
                .query_drop(native)
                .await
                .map(|_| conn.affected_rows())
                .map_err(|e| remote_error(&name, e, Some(native)));
            result = self.settle(done).await;
        }
        self.state.done();
        result
    }

    async fn control(&mut self, native: &str) -> Result<()> {
        self.state.start(&self.name)?;
        let result = self.run(native).await;
        self.state.done();
        result
    }

    async fn write(
        &mut self,
        table: &TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        if let WriteMode::Upsert([]) = mode {
            return datafusion::common::plan_err!("upsert needs at least one key column");
        }
        self.state.start(&self.name)?;
        let mut result = self
            .run(&format!("SAVEPOINT {OPERATION_SAVEPOINT}"))
            .await
            .map(|_| 0);
        if result.is_ok() {
            let name = Arc::clone(&self.name);
            let database = table.schema().unwrap_or(&self.database).to_string();
            let written = insert_rows(
                self.conn(),
                &name,
                (&database, table.table()),
                &schema,
                data,
                mode,
            )
            .await;
            result = self.settle(written).await;
        }
        self.state.done();
        result
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.end("COMMIT").await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.end("ROLLBACK").await
    }
}

impl Drop for MysqlTransaction {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.state.open() {
            return;
        }
        // Roll back before the connection goes back to the pool (which also
        // resets it: COM_RESET_CONNECTION rolls back).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.query_drop("ROLLBACK").await;
            });
        }
    }
}
