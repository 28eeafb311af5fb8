//! A transaction on one pooled PostgreSQL connection.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, TableReference};
use datafusion::execution::SendableRecordBatchStream;
use deadpool_postgres::{Object, Pool};

use super::connection::{copy_rows, pool_error, remote_error};
use crate::remote::{OPERATION_SAVEPOINT, RemoteTransaction, TransactionState, WriteMode};

/// `BEGIN` on a connection of its own; each operation in a savepoint.
pub struct PostgresTransaction {
    client: Option<Object>,
    name: Arc<str>,
    state: TransactionState,
}

impl PostgresTransaction {
    /// Takes a connection from `pool` and starts a transaction on it.
    pub async fn begin(pool: &Pool, name: Arc<str>) -> Result<Self> {
        let client = pool.get().await.map_err(|e| pool_error(&name, e))?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| remote_error(&name, e, Some("BEGIN")))?;
        Ok(Self {
            client: Some(client),
            name,
            state: TransactionState::default(),
        })
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.client
            .as_ref()
            .expect("the connection is kept until the transaction ends")
    }

    async fn batch(&self, sql: &str) -> Result<()> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| remote_error(&self.name, e, Some(sql)).into())
    }

    /// Runs `work` inside the operation savepoint: released when it
    /// succeeds, rolled back to when it fails (the transaction goes on).
    async fn in_savepoint<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.batch(&format!("SAVEPOINT {OPERATION_SAVEPOINT}"))
            .await?;
        match work.await {
            Ok(value) => {
                self.batch(&format!("RELEASE SAVEPOINT {OPERATION_SAVEPOINT}"))
                    .await?;
                Ok(value)
            }
            Err(e) => {
                self.batch(&format!("ROLLBACK TO SAVEPOINT {OPERATION_SAVEPOINT}"))
                    .await?;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl RemoteTransaction for PostgresTransaction {
    fn source_name(&self) -> &str {
        &self.name
    }

    async fn execute(&mut self, native: &str) -> Result<u64> {
        let client = self.client();
        let work = self.in_savepoint(async {
            client
                .execute(native, &[])
                .await
                .map_err(|e| remote_error(&self.name, e, Some(native)).into())
        });
        self.state.step(&self.name, work).await
    }

    async fn control(&mut self, native: &str) -> Result<()> {
        self.state.step(&self.name, self.batch(native)).await
    }

    async fn write(
        &mut self,
        table: &TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        let target = (table.schema().unwrap_or("public"), table.table());
        let work = self.in_savepoint(copy_rows(
            self.client(),
            &self.name,
            target,
            &schema,
            data,
            mode,
        ));
        self.state.step(&self.name, work).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.state
            .end(&self.name, false, self.batch("COMMIT"))
            .await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.state
            .end(&self.name, true, self.batch("ROLLBACK"))
            .await
    }
}

impl Drop for PostgresTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Closing the connection makes the server roll back.
            self.state.on_drop(
                client,
                |client| async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                },
                |client| drop(Object::take(client)),
            );
        }
    }
}
