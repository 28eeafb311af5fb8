//! [`RemoteTransaction`]: one pinned connection of a database inside a
//! transaction, for the library's `Moltres::begin`.
//!
//! Each operation on it is itself all or nothing: it runs inside a savepoint
//! that is rolled back when it fails, so a failed write leaves the rows the
//! transaction already wrote and the transaction usable. Dropping a
//! transaction that was neither committed nor rolled back rolls it back.
//! An operation whose future is dropped midway (a timeout, a cancelled task)
//! leaves the connection in an unknown state: the transaction then refuses
//! further work, and its connection is closed instead of going back to the
//! pool.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, TableReference};
use datafusion::execution::SendableRecordBatchStream;

use super::WriteMode;
use super::error::{RemoteError, RemoteErrorKind};

/// A transaction on one connection of a remote database.
#[async_trait]
pub trait RemoteTransaction: Send + Sync {
    /// The alias of the database (for messages).
    fn source_name(&self) -> &str;

    /// Runs a native statement; returns the rows affected.
    async fn execute(&mut self, native: &str) -> Result<u64>;

    /// Runs a transaction-control statement (`SAVEPOINT`, `ROLLBACK TO
    /// SAVEPOINT`, `RELEASE SAVEPOINT`) as it is, outside any savepoint of
    /// the operation's own.
    async fn control(&mut self, native: &str) -> Result<()>;

    /// Writes `data` into `table` (see [`super::RemoteDatabase::write`]),
    /// inside this transaction.
    async fn write(
        &mut self,
        table: &TableReference,
        schema: SchemaRef,
        data: SendableRecordBatchStream,
        mode: WriteMode<'_>,
    ) -> Result<u64>;

    /// Makes every change of the transaction permanent.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Undoes every change of the transaction.
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Whether a transaction can take another operation: tracks operations in
/// flight so that one whose future was dropped poisons the transaction.
#[derive(Debug, Default)]
pub struct TransactionState {
    in_flight: AtomicBool,
    finished: AtomicBool,
}

impl TransactionState {
    /// Runs one operation; an error, without running it, when an earlier one
    /// was cut off or the transaction has ended.
    pub async fn step<T>(&self, source: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        if self.in_flight.load(Ordering::Acquire) {
            return Err(RemoteError::new(
                source,
                RemoteErrorKind::Other,
                "an earlier operation of this transaction was cancelled midway; \
                 the transaction cannot continue (it is rolled back when dropped)",
            )
            .into());
        }
        if self.finished.load(Ordering::Acquire) {
            return Err(RemoteError::new(
                source,
                RemoteErrorKind::Other,
                "the transaction has already ended",
            )
            .into());
        }
        self.in_flight.store(true, Ordering::Release);
        let result = work.await;
        self.in_flight.store(false, Ordering::Release);
        result
    }

    /// Runs the `COMMIT` or `ROLLBACK` (`rollback`) in `work`. A rollback
    /// after an operation was cut off sends nothing: dropping the
    /// transaction closes its connection, which rolls back.
    pub async fn end(
        &self,
        source: &str,
        rollback: bool,
        work: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        if rollback && self.in_flight.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = self.step(source, work).await;
        if result.is_ok() {
            self.finished.store(true, Ordering::Release);
        }
        result
    }

    /// What dropping the transaction does with its `connection`: nothing
    /// more once it has ended; else a `rollback` task before the connection
    /// goes back to the pool, or, when an operation was cut off or there is
    /// no runtime, `discard` (closing the connection rolls back).
    pub fn on_drop<C, F>(
        &self,
        connection: C,
        rollback: impl FnOnce(C) -> F,
        discard: impl FnOnce(C),
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.in_flight.load(Ordering::Acquire) => {
                runtime.spawn(rollback(connection));
            }
            _ => discard(connection),
        }
    }
}

/// The savepoint each operation of a transaction runs in.
pub const OPERATION_SAVEPOINT: &str = "moltres_operation";
