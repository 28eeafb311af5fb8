//! Result printing: `table` (aligned, for people) and `csv`, `tsv`, `json`,
//! `ndjson` (for programs). Machine formats stream batch by batch; the table
//! format buffers up to `--max-rows` rows to compute column widths.

use std::io::Write;
use std::str::FromStr;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::FormatOptions;
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned table with borders.
    Table,
    /// Comma-separated, header row first.
    Csv,
    /// Tab-separated, header row first.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "json" => Ok(Format::Json),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            other => Err(format!(
                "unknown format '{other}'; use table, csv, tsv, json or ndjson"
            )),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        })
    }
}

/// What printing a result did.
#[derive(Debug, Default)]
pub struct Printed {
    /// Rows printed.
    pub rows: usize,
    /// More rows existed than `--max-rows` allowed.
    pub truncated: bool,
}

/// Printing failed: the query (DataFusion) or the output (e.g. a closed pipe).
#[derive(Debug)]
pub enum PrintError {
    /// Running the query failed.
    Query(DataFusionError),
    /// Writing stdout failed.
    Output(std::io::Error),
    /// A Moltres statement (ATTACH, ...) failed.
    Statement(moltres::Error),
}

impl From<moltres::Error> for PrintError {
    fn from(e: moltres::Error) -> Self {
        PrintError::Statement(e)
    }
}

impl From<DataFusionError> for PrintError {
    fn from(e: DataFusionError) -> Self {
        PrintError::Query(e)
    }
}

impl From<std::io::Error> for PrintError {
    fn from(e: std::io::Error) -> Self {
        PrintError::Output(e)
    }
}

impl From<ArrowError> for PrintError {
    fn from(e: ArrowError) -> Self {
        match e {
            ArrowError::IoError(_, io) => PrintError::Output(io),
            other => PrintError::Query(DataFusionError::ArrowError(Box::new(other), None)),
        }
    }
}

/// Prints `stream` in `format`, at most `max_rows` rows. A result without
/// columns (DDL, ATTACH) prints nothing.
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    format: Format,
    max_rows: Option<usize>,
    out: &mut dyn Write,
) -> Result<Printed, PrintError> {
    let schema = stream.schema();
    let limit = max_rows.unwrap_or(usize::MAX);
    let mut printed = Printed::default();
    let mut sink = Sink::new(format, schema.clone(), out);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = limit - printed.rows;
        let batch = if batch.num_rows() > room {
            printed.truncated = true;
            batch.slice(0, room)
        } else {
            batch
        };
        printed.rows += batch.num_rows();
        sink.write(batch)?;
        if printed.truncated || printed.rows == limit {
            // Peek once so "truncated" is only reported when rows were cut.
            if !printed.truncated {
                while let Some(next) = stream.next().await {
                    if next?.num_rows() > 0 {
                        printed.truncated = true;
                        break;
                    }
                }
            }
            break;
        }
    }
    drop(stream);
    if schema.fields().is_empty() {
        return Ok(printed);
    }
    sink.finish()?;
    Ok(printed)
}

/// Formats whole batches (used by meta commands and tests).
pub fn print_batches(
    batches: &[RecordBatch],
    schema: SchemaRef,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), PrintError> {
    let mut sink = Sink::new(format, schema, out);
    for batch in batches {
        sink.write(batch.clone())?;
    }
    sink.finish()
}

enum SinkState<'a> {
    Table(Vec<RecordBatch>),
    Csv(Option<datafusion::arrow::csv::Writer<&'a mut dyn Write>>, u8),
    Json(datafusion::arrow::json::ArrayWriter<&'a mut dyn Write>),
    Ndjson(datafusion::arrow::json::LineDelimitedWriter<&'a mut dyn Write>),
    Done,
}

struct Sink<'a> {
    schema: SchemaRef,
    state: SinkState<'a>,
    out: Option<&'a mut dyn Write>,
}

impl<'a> Sink<'a> {
    fn new(format: Format, schema: SchemaRef, out: &'a mut dyn Write) -> Self {
        let (state, out) = match format {
            Format::Table => (SinkState::Table(Vec::new()), Some(out)),
            Format::Csv => (SinkState::Csv(None, b','), Some(out)),
            Format::Tsv => (SinkState::Csv(None, b'\t'), Some(out)),
            Format::Json => (
                SinkState::Json(datafusion::arrow::json::ArrayWriter::new(out)),
                None,
            ),
            Format::Ndjson => (
                SinkState::Ndjson(datafusion::arrow::json::LineDelimitedWriter::new(out)),
                None,
            ),
        };
        Self { schema, state, out }
    }

    fn csv_writer(&mut self) -> Result<(), PrintError> {
        if let SinkState::Csv(writer @ None, delimiter) = &mut self.state
            && let Some(out) = self.out.take()
        {
            *writer = Some(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_delimiter(*delimiter)
                    .with_null(String::new())
                    .build(out),
            );
        }
        Ok(())
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), PrintError> {
        if batch.num_columns() == 0 {
            return Ok(());
        }
        self.csv_writer()?;
        match &mut self.state {
            SinkState::Table(batches) => batches.push(batch),
            SinkState::Csv(Some(writer), _) => writer.write(&batch)?,
            SinkState::Json(writer) => writer.write(&batch)?,
            SinkState::Ndjson(writer) => writer.write(&batch)?,
            SinkState::Csv(None, _) | SinkState::Done => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), PrintError> {
        if self.schema.fields().is_empty() {
            return Ok(());
        }
        match std::mem::replace(&mut self.state, SinkState::Done) {
            SinkState::Table(mut batches) => {
                if batches.is_empty() {
                    batches.push(RecordBatch::new_empty(self.schema.clone()));
                }
                let options = FormatOptions::default().with_null("NULL");
                let table = pretty_format_batches_with_options(&batches, &options)?;
                if let Some(out) = self.out.take() {
                    writeln!(out, "{table}")?;
                    out.flush()?;
                }
            }
            SinkState::Csv(writer, delimiter) => {
                // A result with no rows still gets its header line.
                let writer = match writer {
                    Some(w) => w,
                    None => {
                        self.state = SinkState::Csv(None, delimiter);
                        self.csv_writer()?;
                        let SinkState::Csv(Some(mut w), _) =
                            std::mem::replace(&mut self.state, SinkState::Done)
                        else {
                            return Ok(());
                        };
                        w.write(&RecordBatch::new_empty(self.schema.clone()))?;
                        w
                    }
                };
                writer.into_inner().flush()?;
            }
            SinkState::Json(mut writer) => {
                writer.finish()?;
                let out = writer.into_inner();
                writeln!(out)?;
                out.flush()?;
            }
            SinkState::Ndjson(mut writer) => {
                writer.finish()?;
                writer.into_inner().flush()?;
            }
            SinkState::Done => {}
        }
        Ok(())
    }
}
