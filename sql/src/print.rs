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
        // DDL, ATTACH and the like: nothing to print.
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

/// Where rows go, per format.
enum Sink<'a> {
    /// Buffered until the end, to size the columns.
    Table {
        out: &'a mut dyn Write,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// CSV or TSV; `wrote` tracks whether the header is out.
    Csv {
        writer: Box<datafusion::arrow::csv::Writer<&'a mut dyn Write>>,
        schema: SchemaRef,
        wrote: bool,
    },
    Json(datafusion::arrow::json::ArrayWriter<&'a mut dyn Write>),
    Ndjson(datafusion::arrow::json::LineDelimitedWriter<&'a mut dyn Write>),
}

impl<'a> Sink<'a> {
    fn new(format: Format, schema: SchemaRef, out: &'a mut dyn Write) -> Self {
        let csv = |delimiter: u8, out| Sink::Csv {
            writer: Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_delimiter(delimiter)
                    .with_null(String::new())
                    .build(out),
            ),
            schema: schema.clone(),
            wrote: false,
        };
        match format {
            Format::Table => Sink::Table {
                out,
                schema,
                batches: Vec::new(),
            },
            Format::Csv => csv(b',', out),
            Format::Tsv => csv(b'\t', out),
            Format::Json => Sink::Json(datafusion::arrow::json::ArrayWriter::new(out)),
            Format::Ndjson => Sink::Ndjson(datafusion::arrow::json::LineDelimitedWriter::new(out)),
        }
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), PrintError> {
        if batch.num_columns() == 0 {
            return Ok(());
        }
        match self {
            Sink::Table { batches, .. } => batches.push(batch),
            Sink::Csv { writer, wrote, .. } => {
                writer.write(&batch)?;
                *wrote = true;
            }
            Sink::Json(writer) => writer.write(&batch)?,
            Sink::Ndjson(writer) => writer.write(&batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), PrintError> {
        match self {
            Sink::Table {
                out,
                schema,
                mut batches,
            } => {
                if schema.fields().is_empty() {
                    return Ok(());
                }
                if batches.is_empty() {
                    batches.push(RecordBatch::new_empty(schema));
                }
                let options = FormatOptions::default().with_null("NULL");
                let table = pretty_format_batches_with_options(&batches, &options)?;
                writeln!(out, "{table}")?;
                out.flush()?;
            }
            Sink::Csv {
                mut writer,
                schema,
                wrote,
            } => {
                // A result with no rows still gets its header line.
                if !wrote && !schema.fields().is_empty() {
                    writer.write(&RecordBatch::new_empty(schema))?;
                }
                writer.into_inner().flush()?;
            }
            Sink::Json(mut writer) => {
                writer.finish()?;
                let out = writer.into_inner();
                writeln!(out)?;
                out.flush()?;
            }
            Sink::Ndjson(mut writer) => {
                writer.finish()?;
                writer.into_inner().flush()?;
            }
        }
        Ok(())
    }
}
