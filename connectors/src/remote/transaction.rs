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
    in_flight: bool,
    finished: bool,
}

impl TransactionState {
    /// Starts an operation; an error when an earlier one was cut off or the
    /// transaction has ended.
    pub fn start(&mut self, source: &str) -> Result<()> {
        if self.in_flight {
            return Err(RemoteError::new(
                source,
                RemoteErrorKind::Other,
                "an earlier operation of this transaction was cancelled midway; \
                 the transaction cannot continue (it is rolled back when dropped)",
            )
            .into());
        }
        if self.finished {
            return Err(RemoteError::new(
                source,
                RemoteErrorKind::Other,
                "the transaction has already ended",
            )
            .into());
        }
        self.in_flight = true;
        Ok(())
    }

    /// Ends the operation started last.
    pub fn done(&mut self) {
        self.in_flight = false;
    }

    /// Marks the transaction committed or rolled back.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether the connection can go back to the pool after a rollback
    /// (no operation was cut off midway).
    pub fn clean(&self) -> bool {
        !self.in_flight
    }

    /// Whether the transaction still needs a rollback.
    pub fn open(&self) -> bool {
        !self.finished
    }
}

/// The savepoint each operation of a transaction runs in.
pub const OPERATION_SAVEPOINT: &str = "moltres_operation";
