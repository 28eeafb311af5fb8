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

    /// The connection, the source name and the state, borrowed apart.
    fn parts(&mut self) -> (&mut Conn, &str, &TransactionState) {
        let conn = self
            .conn
            .as_mut()
            .expect("the connection is kept until the transaction ends");
        (conn, &self.name, &self.state)
    }
}

async fn run(conn: &mut Conn, name: &str, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| remote_error(name, e, Some(sql)))
}

/// `SAVEPOINT`, then `work` (which ran `done`), then `RELEASE` when it
/// succeeded or `ROLLBACK TO` when it failed (the transaction goes on).
async fn settle<T>(conn: &mut Conn, name: &str, done: Result<T>) -> Result<T> {
    match done {
        Ok(value) => {
            run(
                conn,
                name,
                &format!("RELEASE SAVEPOINT {OPERATION_SAVEPOINT}"),
            )
            .await?;
            Ok(value)
        }
        Err(e) => {
            run(
                conn,
                name,
                &format!("ROLLBACK TO SAVEPOINT {OPERATION_SAVEPOINT}"),
            )
            .await?;
            Err(e)
        }
    }
}

#[async_trait]
impl RemoteTransaction for MysqlTransaction {
    fn source_name(&self) -> &str {
        &self.name
    }

    async fn execute(&mut self, native: &str) -> Result<u64> {
        let (conn, name, state) = self.parts();
        let work = async {
            run(conn, name, &format!("SAVEPOINT {OPERATION_SAVEPOINT}")).await?;
            let done = conn
                .query_drop(native)
                .await
                .map(|_| conn.affected_rows())
                .map_err(|e| remote_error(name, e, Some(native)));
            settle(conn, name, done).await
        };
        state.step(name, work).await
    }

    async fn control(&mut self, native: &str) -> Result<()> {
        let (conn, name, state) = self.parts();
        state.step(name, run(conn, name, native)).await
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
        let database = table.schema().unwrap_or(&self.database).to_string();
        let (conn, name, state) = self.parts();
        let work = async {
            run(conn, name, &format!("SAVEPOINT {OPERATION_SAVEPOINT}")).await?;
            let written =
                insert_rows(conn, name, (&database, table.table()), &schema, data, mode).await;
            settle(conn, name, written).await
        };
        state.step(name, work).await
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let (conn, name, state) = self.parts();
        state.end(name, false, run(conn, name, "COMMIT")).await
    }

    async fn rollback(mut self: Box<Self>) -> Result<()> {
        let (conn, name, state) = self.parts();
        state.end(name, true, run(conn, name, "ROLLBACK")).await
    }
}

impl Drop for MysqlTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Roll back before the connection goes back to the pool; the
            // pool resets a connection it gets back (COM_RESET_CONNECTION
            // rolls back too).
            self.state.on_drop(
                conn,
                |mut conn| async move {
                    let _ = conn.query_drop("ROLLBACK").await;
                },
                drop,
            );
        }
    }
}
