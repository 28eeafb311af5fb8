//! Rewriting CSV bytes before DataFusion decodes them: dropping records it
//! could not decode (`skip_bad_rows`) and turning null strings into empty
//! fields (DataFusion's reader ignores `null_regex`).
//!
//! [`RecordFilterStore`] is an object-store view whose reads come back
//! decompressed and rewritten by a [`RecordFilter`]; writes are refused.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::csv::reader::ReaderBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::CsvOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::csv::SkippedRows;

/// An object store view that serves CSV files decompressed and rewritten by
/// a [`RecordFilter`]. Only reads go through it.
#[derive(Debug)]
pub(super) struct RecordFilterStore {
    pub inner: Arc<dyn ObjectStore>,
    pub compression: FileCompressionType,
    /// `None` checks field counts only (against the header), for inference.
    pub file_schema: Option<SchemaRef>,
    pub options: Arc<CsvOptions>,
    /// Drop records that do not decode (else pass them on).
    pub skip_bad_rows: bool,
    /// Write fields matching `null_regex` as empty fields.
    pub rewrite_nulls: bool,
    pub log: Arc<SkippedRows>,
    pub display_prefix: String,
}

impl fmt::Display for RecordFilterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadRowFilter({})", self.inner)
    }
}

pub(super) fn read_only_error() -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: "write through the CSV bad-row filter".into(),
        implementer: "RecordFilterStore".into(),
    }
}

#[async_trait]
impl ObjectStore for RecordFilterStore {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only_error())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only_error())
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await?;
        let meta = result.meta.clone();
        let range = result.range.clone();
        let attributes = result.attributes.clone();
        let raw = result.into_stream().map_err(DataFusionError::from).boxed();
        let decompressed = self
            .compression
            .convert_stream(raw)
            .map_err(to_store_error)?;
        let mut filter = RecordFilter::try_new(
            format!("{}{}", self.display_prefix, location),
            self.file_schema.clone().filter(|_| self.skip_bad_rows),
            &self.options,
            self.rewrite_nulls,
            Arc::clone(&self.log),
        )
        .map_err(to_store_error)?;
        let filtered = async_stream_filter(decompressed, move |chunk| match chunk {
            Some(bytes) => filter.push(&bytes),
            None => filter.finish(),
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(filtered),
            meta,
            range,
            attributes,
        })
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only_error())
    }
}

pub(super) fn to_store_error(e: DataFusionError) -> object_store::Error {
    object_store::Error::Generic {
        store: "csv",
        source: Box::new(e),
    }
}

/// A `csv_core` reader that splits records as DataFusion's reader does
/// with `options`.
pub(super) fn csv_core_reader(options: &CsvOptions) -> csv_core::Reader {
    let mut builder = csv_core::ReaderBuilder::new();
    builder.delimiter(options.delimiter).quote(options.quote);
    if let Some(escape) = options.escape {
        builder.escape(Some(escape));
    }
    if let Some(comment) = options.comment {
        builder.comment(Some(comment));
    }
    if let Some(terminator) = options.terminator {
        builder.terminator(csv_core::Terminator::Any(terminator));
    }
    if let Some(double_quote) = options.double_quote {
        builder.double_quote(double_quote);
    }
    builder.build()
}

/// Maps a byte stream through `f`, which is called once per chunk and once
/// more with `None` at the end.
pub(super) fn async_stream_filter<F>(
    input: futures::stream::BoxStream<'static, Result<Bytes>>,
    mut f: F,
) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>>
where
    F: FnMut(Option<Bytes>) -> Result<Bytes> + Send + 'static,
{
    let input = input.map(Some).chain(futures::stream::iter([None]));
    input
        .map(move |item| match item {
            Some(Ok(bytes)) => f(Some(bytes)).map_err(to_store_error),
            Some(Err(e)) => Err(to_store_error(e)),
            None => f(None).map_err(to_store_error),
        })
        .try_filter(|bytes| futures::future::ready(!bytes.is_empty()))
        .boxed()
}

/// Splits CSV bytes into records, checks each against the schema with Arrow's
/// own decoder, and re-emits the good ones. The header passes through.
pub(super) struct RecordFilter {
    name: String,
    reader: csv_core::Reader,
    /// Records are decoded against it; `None` checks field counts only.
    schema: Option<SchemaRef>,
    /// Fields per record: the schema's, else the header's.
    expected_fields: Option<usize>,
    delimiter: u8,
    quote: u8,
    has_header: bool,
    allow_truncated: bool,
    /// Fields matching it are written empty (Arrow reads empty as NULL).
    null_regex: Option<regex::Regex>,
    log: Arc<SkippedRows>,
    /// The record being read: field bytes and field ends.
    field_bytes: Vec<u8>,
    field_ends: Vec<usize>,
    record_bytes_used: usize,
    record_ends_used: usize,
    /// Complete records waiting to be checked: (line, serialized record).
    pending: Vec<(u64, Vec<u8>)>,
    records_seen: u64,
}

/// Records checked together; a batch that fails is re-checked row by row.
const CHECK_BATCH: usize = 1024;

impl RecordFilter {
    /// Without a `schema` only field counts are checked (or nothing, when
    /// the caller does not skip bad rows and passes no schema).
    pub(super) fn try_new(
        name: String,
        schema: Option<SchemaRef>,
        options: &CsvOptions,
        rewrite_nulls: bool,
        log: Arc<SkippedRows>,
    ) -> Result<Self> {
        let null_regex = options
            .null_regex
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| DataFusionError::Configuration(format!("CSV null_regex: {e}")))?
            .filter(|_| rewrite_nulls);
        Ok(Self {
            name,
            reader: csv_core_reader(options),
            expected_fields: schema.as_ref().map(|s| s.fields().len()),
            schema,
            delimiter: options.delimiter,
            quote: options.quote,
            has_header: options.has_header.unwrap_or(true),
            allow_truncated: options.truncated_rows.unwrap_or(false),
            null_regex,
            log,
            field_bytes: vec![0; 1024],
            field_ends: vec![0; 64],
            record_bytes_used: 0,
            record_ends_used: 0,
            pending: Vec::new(),
            records_seen: 0,
        })
    }

    pub(super) fn push(&mut self, input: &[u8]) -> Result<Bytes> {
        let mut out = Vec::with_capacity(input.len());
        self.parse(input, &mut out)?;
        Ok(Bytes::from(out))
    }

    pub(super) fn finish(&mut self) -> Result<Bytes> {
        let mut out = Vec::new();
        self.parse(&[], &mut out)?;
        self.check_pending(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Feeds `input` (empty = end of file) to the record reader.
    fn parse(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let at_end = input.is_empty();
        loop {
            let line = self.reader.line();
            let (result, read, written, ends) = self.reader.read_record(
                input,
                &mut self.field_bytes[self.record_bytes_used..],
                &mut self.field_ends[self.record_ends_used..],
            );
            input = &input[read..];
            self.record_bytes_used += written;
            self.record_ends_used += ends;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {
                    if !at_end {
                        return Ok(());
                    }
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.field_bytes.len();
                    self.field_bytes.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.field_ends.len();
                    self.field_ends.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    self.complete_record(line, out)?;
                }
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn complete_record(&mut self, line: u64, out: &mut Vec<u8>) -> Result<()> {
        let fields = self.record_ends_used;
        let serialized = self.serialize_current();
        self.record_bytes_used = 0;
        self.record_ends_used = 0;
        self.records_seen += 1;
        let expected = *self.expected_fields.get_or_insert(fields);
        if self.records_seen == 1 && self.has_header {
            out.extend_from_slice(&serialized);
            return Ok(());
        }
        if fields != expected && !(self.allow_truncated && fields < expected) {
            self.log.record(format!(
                "CSV file '{}', line {line}: expected {expected} fields, found {fields}",
                self.name,
            ));
            return Ok(());
        }
        if self.schema.is_none() {
            out.extend_from_slice(&serialized);
            return Ok(());
        }
        self.pending.push((line, serialized));
        if self.pending.len() >= CHECK_BATCH {
            self.check_pending(out)?;
        }
        Ok(())
    }

    /// The current record, quoted, with a newline.
    fn serialize_current(&self) -> Vec<u8> {
        let mut record = Vec::with_capacity(self.record_bytes_used + 3 * self.record_ends_used);
        let mut start = 0;
        for (i, end) in self.field_ends[..self.record_ends_used].iter().enumerate() {
            if i > 0 {
                record.push(self.delimiter);
            }
            let field = &self.field_bytes[start..*end];
            start = *end;
            if let Some(null) = &self.null_regex
                && std::str::from_utf8(field).is_ok_and(|f| null.is_match(f))
            {
                continue;
            }
            record.push(self.quote);
            for byte in field {
                if *byte == self.quote {
                    record.push(self.quote);
                }
                record.push(*byte);
            }
            record.push(self.quote);
        }
        record.push(b'\n');
        record
    }

    fn decoder_builder(&self, schema: SchemaRef) -> ReaderBuilder {
        ReaderBuilder::new(schema)
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_truncated_rows(self.allow_truncated)
    }

    /// Decodes `bytes` with Arrow's CSV decoder; the error if it fails.
    fn decode(&self, bytes: &[u8], rows: usize) -> std::result::Result<(), String> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let mut decoder = self
            .decoder_builder(Arc::clone(schema))
            .with_batch_size(rows.max(1))
            .build_decoder();
        let mut offset = 0;
        while offset < bytes.len() {
            let read = decoder
                .decode(&bytes[offset..])
                .map_err(|e| e.to_string())?;
            if read == 0 {
                break;
            }
            offset += read;
            decoder.flush().map_err(|e| e.to_string())?;
        }
        decoder.flush().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Arrow's "Error while parsing value 'x' as type 'Int64' for column 0 at
    /// line 0. Row data: ..." (lines counted within a one-row decode) without
    /// the meaningless line, and with the column's name.
    fn describe_parse_error(&self, reason: &str) -> String {
        let reason = reason.strip_prefix("Parser error: ").unwrap_or(reason);
        let reason = reason.split(" at line 0").next().unwrap_or(reason);
        let Some((head, column)) = reason.rsplit_once("for column ") else {
            return reason.to_string();
        };
        match (column.trim().parse::<usize>(), &self.schema) {
            (Ok(i), Some(schema)) if i < schema.fields().len() => {
                format!("{head}for column '{}'", schema.field(i).name())
            }
            _ => reason.to_string(),
        }
    }

    fn check_pending(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let joined: Vec<u8> = pending
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        if self.decode(&joined, pending.len()).is_ok() {
            out.extend_from_slice(&joined);
            return Ok(());
        }
        for (line, record) in pending {
            match self.decode(&record, 1) {
                Ok(()) => out.extend_from_slice(&record),
                Err(reason) => {
                    let reason = self.describe_parse_error(&reason);
                    self.log
                        .record(format!("CSV file '{}', line {line}: {reason}", self.name))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn filter(log: Arc<SkippedRows>) -> RecordFilter {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let options = CsvOptions {
            has_header: Some(true),
            null_regex: Some("^NA$".into()),
            ..Default::default()
        };
        RecordFilter::try_new("t.csv".into(), Some(schema), &options, true, log).unwrap()
    }

    #[test]
    fn drops_bad_records_across_chunks() {
        let log = Arc::new(SkippedRows::default());
        let mut f = filter(Arc::clone(&log));
        let mut out = Vec::new();
        out.extend_from_slice(&f.push(b"id,name\n1,a\nx,b\n3,\"c").unwrap());
        out.extend_from_slice(&f.push(b"\"\"d\"\n4\n5,e,extra\n6,NA\n").unwrap());
        out.extend_from_slice(&f.finish().unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"id\",\"name\"\n\"1\",\"a\"\n\"3\",\"c\"\"d\"\n\"6\",\n"
        );
        let (count, samples) = log.take();
        assert_eq!(count, 3);
        assert!(samples[0].contains("line 5"), "{samples:?}");
        assert!(samples[1].contains("line 6"), "{samples:?}");
        assert!(samples[2].contains("line 3"), "{samples:?}");
    }
}
