//! Rows from a database into a bounded channel of Arrow batches.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

/// Batches in flight between a connector and the query: two, so a slow
/// reader holds the database back instead of buffering the whole result.
const IN_FLIGHT: usize = 2;

/// A partial batch is sent once its first row is this old, so rows that
/// trickle in slowly (a slow query, a LIMIT waiting for three rows) are not
/// held back until `batch_size` rows have come.
pub const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// When a connector sends the rows it has decoded: at `batch_size` rows, or
/// once the first of them is [`FLUSH_AFTER`] old. The clock is read for
/// each of a batch's first 64 rows and then every 64th (reading it for
/// every row cost 5% of a 6 M-row transfer).
#[derive(Debug)]
pub struct BatchClock {
    batch_size: usize,
    pending: usize,
    first: std::time::Instant,
}

impl BatchClock {
    /// A clock for batches of `batch_size` rows.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            pending: 0,
            first: std::time::Instant::now(),
        }
    }

    /// Counts one more decoded row; true when the rows are due to be sent
    /// (then [`take`](Self::take) them).
    pub fn row(&mut self) -> bool {
        if self.pending == 0 {
            self.first = std::time::Instant::now();
        }
        self.pending += 1;
        self.pending >= self.batch_size
            || ((self.pending < 64 || self.pending.is_multiple_of(64))
                && self.first.elapsed() >= FLUSH_AFTER)
    }

    /// The rows decoded since the last send, and starts a new batch.
    pub fn take(&mut self) -> usize {
        std::mem::take(&mut self.pending)
    }
}

/// The producing end: a connector sends batches (or one error) until the
/// reader goes away.
#[derive(Debug, Clone)]
pub struct BatchSender {
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
}

impl BatchSender {
    /// Sends a batch; false when the reader is gone (stop and cancel).
    pub async fn send(&self, batch: Result<RecordBatch>) -> bool {
        self.tx.send(batch).await.is_ok()
    }

    /// [`send`](Self::send) from a blocking thread (a synchronous driver).
    pub fn blocking_send(&self, batch: Result<RecordBatch>) -> bool {
        self.tx.blocking_send(batch).is_ok()
    }

    /// Whether the reader went away (LIMIT satisfied, Ctrl-C, an error
    /// elsewhere in the plan).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the reader goes away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A stream of `schema` batches and the sender that feeds it. Dropping the
/// stream closes the sender's channel.
pub fn batch_channel(schema: SchemaRef) -> (BatchSender, SendableRecordBatchStream) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(IN_FLIGHT);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        BatchSender { tx },
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream)),
    )
}

/// `columns` as a batch of `rows` rows (`rows` matters when no column is
/// selected, as for `count(*)`).
pub fn record_batch(
    schema: &SchemaRef,
    columns: Vec<datafusion::arrow::array::ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let options =
        datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// One decoder per column of `schema`, made by `make` from the column's
/// Arrow type; a type `make` cannot read is an error naming the column.
pub fn decoders<D>(
    schema: &SchemaRef,
    source: &str,
    database: &str,
    make: impl Fn(&datafusion::arrow::datatypes::DataType) -> Option<D>,
) -> Result<Vec<D>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            make(f.data_type()).ok_or_else(|| {
                super::RemoteError::new(
                    source,
                    super::RemoteErrorKind::Data,
                    format!(
                        "column '{}': no {database} reading as {}",
                        f.name(),
                        f.data_type()
                    ),
                )
                .into()
            })
        })
        .collect()
}

/// A column decoder: values pushed one by one, taken as an array.
pub trait ColumnBuilder {
    /// The values so far, as an array; the builder starts over.
    fn finish(&mut self) -> datafusion::arrow::array::ArrayRef;
}

/// The pending values of `decoders` as a batch of `rows` rows.
pub fn finish_batch<D: ColumnBuilder>(
    schema: &SchemaRef,
    decoders: &mut [D],
    rows: usize,
) -> Result<RecordBatch> {
    let columns = decoders.iter_mut().map(ColumnBuilder::finish).collect();
    record_batch(schema, columns, rows)
}

/// `data` with each batch in the types of `schema` (the table's columns,
/// in order): a column of another type is cast (`CAST` semantics: a value
/// that does not fit is an error naming the column, never truncated), and
/// a NULL in a NOT NULL column is an error naming it. `what` names the
/// table in messages.
pub fn conform(
    data: SendableRecordBatchStream,
    schema: SchemaRef,
    what: String,
) -> SendableRecordBatchStream {
    use datafusion::arrow::compute::{CastOptions, cast_with_options};
    use datafusion::common::DataFusionError;
    use futures::StreamExt;
    let target = Arc::clone(&schema);
    let stream = data.map(move |batch| {
        let batch = batch?;
        if batch.num_columns() != target.fields().len() {
            return Err(DataFusionError::Plan(format!(
                "{what}: {} columns given for the table's {}",
                batch.num_columns(),
                target.fields().len()
            )));
        }
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (column, field) in batch.columns().iter().zip(target.fields()) {
            let column = if column.data_type() == field.data_type() {
                Arc::clone(column)
            } else {
                cast_with_options(column, field.data_type(), &options).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "{what}: column '{}' ({} as {}): {e}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ))
                })?
            };
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(DataFusionError::Execution(format!(
                    "{what}: column '{}' is NOT NULL, and a row has NULL there",
                    field.name()
                )));
            }
            columns.push(column);
        }
        Ok(RecordBatch::try_new(Arc::clone(&target), columns)?)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

#[cfg(test)]
mod tests {
    use super::{BatchClock, FLUSH_AFTER};

    #[test]
    fn batches_are_due_when_full_or_old() {
        let mut clock = BatchClock::new(3);
        assert!(!clock.row());
        assert!(!clock.row());
        assert!(clock.row());
        assert_eq!(clock.take(), 3);
        // A slow source: the rows go once the first is old enough.
        assert!(!clock.row());
        std::thread::sleep(FLUSH_AFTER);
        assert!(clock.row());
        assert_eq!(clock.take(), 2);
        assert_eq!(clock.take(), 0);
    }
}
