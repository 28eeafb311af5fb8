//! Finding a CSV value that spans lines when the column holding it is not
//! read.
//!
//! Unless `newlines_in_values` is on, DataFusion reads a CSV file as lines,
//! so a value holding a line break is either an unterminated quote (which
//! folds every line after it into one value: three rows read as two) or a
//! multi-line value that a parallel read would cut apart. The CSV opener
//! refuses a batch whose string column holds a line break, but a query that
//! does not read that column (`count(*)`, `SELECT id`) never sees it.
//! [`LineBreakCheckStore`] is an object-store view used for those scans: it
//! passes the bytes through unchanged while a `csv_core` reader, configured
//! like DataFusion's, looks for a quoted value holding a line break.
//!
//! A byte-range read starts mid-line; like DataFusion, the check starts at
//! the first line boundary of each read (a lookahead read past a range's
//! end is checked the same way), so every line is checked by the read that
//! owns it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::config::CsvOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::record_filter::{async_stream_filter, csv_core_reader, read_only_error, to_store_error};

/// An object store view whose reads come back decompressed, unchanged, and
/// checked for quoted values that span lines. Writes are refused.
#[derive(Debug)]
pub(super) struct LineBreakCheckStore {
    pub inner: Arc<dyn ObjectStore>,
    pub compression: FileCompressionType,
    pub options: Arc<CsvOptions>,
    pub display_prefix: String,
}

impl fmt::Display for LineBreakCheckStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineBreakCheck({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LineBreakCheckStore {
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
        // Where the read starts: 0 is a line boundary, anything else
        // (including a suffix) is not known to be one.
        let start = match &options.range {
            None => Some(0),
            Some(GetRange::Bounded(r)) => Some(r.start),
            Some(GetRange::Offset(o)) => Some(*o),
            Some(GetRange::Suffix(_)) => None,
        };
        let result = self.inner.get_opts(location, options).await?;
        let meta = result.meta.clone();
        let range = result.range.clone();
        let attributes = result.attributes.clone();
        let raw = result.into_stream().map_err(DataFusionError::from).boxed();
        let decompressed = self
            .compression
            .convert_stream(raw)
            .map_err(to_store_error)?;
        let mut check = LineBreakCheck::new(
            format!("{}{}", self.display_prefix, location),
            &self.options,
            start,
        );
        // The bytes go on as they came; the check only reads them.
        let checked = async_stream_filter(decompressed, move |chunk| match chunk {
            Some(bytes) => check.push(&bytes).map(|()| bytes),
            None => check.finish().map(|()| Bytes::new()),
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(checked),
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

/// Finds the first quoted value holding a line break, and fails there.
///
/// The usual dialect (double quotes inside quoted values, no escape and no
/// comment character) is scanned with `memchr`, quote to quote: a quote
/// opens a value only right after a delimiter or a line break, as in
/// `csv_core`; a value closes at a quote that is not doubled. Other
/// dialects go through a `csv_core` reader configured like DataFusion's.
pub(super) struct LineBreakCheck {
    name: String,
    scanner: Scanner,
    terminator: u8,
    /// Skipping to the first line boundary (a read that starts mid-file).
    skipping: bool,
    /// The read's first byte is the file's first byte, so lines can be
    /// numbered; else positions are given as byte offsets.
    from_file_start: bool,
    /// Absolute offset of the next byte, when the read's start is known.
    offset: Option<u64>,
    /// Line breaks passed (counted when reading from the file's start).
    lines: u64,
}

enum Scanner {
    Quotes {
        delimiter: u8,
        quote: u8,
        state: QuoteState,
        /// The last byte before the current chunk.
        previous: u8,
        /// Where the open quoted value started: (line, byte offset).
        opened: (u64, Option<u64>),
    },
    Records {
        reader: Box<csv_core::Reader>,
        /// Where the current record started: (line, byte offset).
        record_start: (u64, Option<u64>),
        field: Vec<u8>,
        ends: Vec<usize>,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum QuoteState {
    Outside,
    Quoted,
    /// A quote inside a quoted value was the chunk's last byte: a doubled
    /// quote if the next chunk starts with one, else the value's end.
    QuotedQuote,
}

impl LineBreakCheck {
    /// `start` is the absolute offset of the first byte, when known.
    pub(super) fn new(name: String, options: &CsvOptions, start: Option<u64>) -> Self {
        // DataFusion's reader reads `""` in a quoted value as a quote
        // whatever `double_quote` says; the check reads as it does.
        let options = &CsvOptions {
            double_quote: None,
            ..options.clone()
        };
        let plain = options.escape.is_none() && options.comment.is_none();
        let scanner = if plain {
            Scanner::Quotes {
                delimiter: options.delimiter,
                quote: options.quote,
                state: QuoteState::Outside,
                previous: b'\n',
                opened: (1, start),
            }
        } else {
            Scanner::Records {
                reader: Box::new(csv_core_reader(options)),
                record_start: (1, start),
                field: vec![0; 8 * 1024],
                ends: vec![0; 256],
            }
        };
        Self {
            name,
            scanner,
            terminator: options.terminator.unwrap_or(b'\n'),
            skipping: start != Some(0),
            from_file_start: start == Some(0),
            offset: start,
            lines: 1,
        }
    }

    pub(super) fn push(&mut self, mut input: &[u8]) -> Result<()> {
        if self.skipping {
            match memchr::memchr(self.terminator, input) {
                None => {
                    self.advance(input);
                    return Ok(());
                }
                Some(at) => {
                    self.advance(&input[..=at]);
                    input = &input[at + 1..];
                    self.skipping = false;
                    let here = (self.lines, self.offset);
                    match &mut self.scanner {
                        Scanner::Quotes { opened, .. } => *opened = here,
                        Scanner::Records { record_start, .. } => *record_start = here,
                    }
                }
            }
        }
        if input.is_empty() {
            return Ok(());
        }
        match self.scanner {
            Scanner::Quotes { .. } => self.scan_quotes(input),
            Scanner::Records { .. } => self.parse(input),
        }
    }

    pub(super) fn finish(&mut self) -> Result<()> {
        if self.skipping {
            return Ok(());
        }
        match self.scanner {
            Scanner::Quotes { .. } => Ok(()),
            Scanner::Records { .. } => self.parse(&[]),
        }
    }

    fn advance(&mut self, bytes: &[u8]) {
        if let Some(offset) = &mut self.offset {
            *offset += bytes.len() as u64;
        }
        if self.from_file_start {
            self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        }
    }

    /// The `memchr` scan of one chunk. Positions are counted per chunk, and
    /// lines only for a message.
    fn scan_quotes(&mut self, chunk: &[u8]) -> Result<()> {
        let Scanner::Quotes {
            delimiter,
            quote,
            mut state,
            mut previous,
            mut opened,
        } = self.scanner
        else {
            unreachable!("called for the quote scanner")
        };
        // Where in this chunk the open value started (None: in an earlier
        // chunk, whose place is `opened`).
        let mut opened_here: Option<usize> = None;
        let mut at = 0;
        if state == QuoteState::QuotedQuote {
            if chunk[0] == quote {
                at = 1;
                state = QuoteState::Quoted;
            } else {
                state = QuoteState::Outside;
                previous = quote;
            }
        }
        let mut result = Ok(());
        while at < chunk.len() {
            if state == QuoteState::Outside {
                let Some(q) = memchr::memchr(quote, &chunk[at..]).map(|f| at + f) else {
                    break;
                };
                let before = if q == 0 { previous } else { chunk[q - 1] };
                at = q + 1;
                // A quote opens a value only at the start of a field.
                if before == delimiter || before == b'\n' || before == b'\r' {
                    state = QuoteState::Quoted;
                    opened_here = Some(q);
                }
                continue;
            }
            let end = memchr::memchr(quote, &chunk[at..]).map(|f| at + f);
            if memchr::memchr2(b'\n', b'\r', &chunk[at..end.unwrap_or(chunk.len())]).is_some() {
                let place = match opened_here {
                    Some(q) => (
                        self.lines + memchr::memchr_iter(b'\n', &chunk[..q]).count() as u64,
                        self.offset.map(|o| o + q as u64),
                    ),
                    None => opened,
                };
                result = Err(self.error(place));
                break;
            }
            let Some(q) = end else {
                break;
            };
            at = q + 1;
            match chunk.get(at) {
                None => state = QuoteState::QuotedQuote,
                // A doubled quote: still inside the value.
                Some(next) if *next == quote => at += 1,
                Some(_) => state = QuoteState::Outside,
            }
        }
        if result.is_ok() {
            if let Some(q) = opened_here.filter(|_| state != QuoteState::Outside) {
                // Still open at the chunk's end: it started on the chunk's
                // last line (no line break since).
                opened = (
                    self.lines + memchr::memchr_iter(b'\n', &chunk[..q]).count() as u64,
                    self.offset.map(|o| o + q as u64),
                );
            }
            self.advance(chunk);
        }
        if let Some(last) = chunk.last() {
            previous = *last;
        }
        self.scanner = Scanner::Quotes {
            delimiter,
            quote,
            state,
            previous,
            opened,
        };
        result
    }

    /// Feeds `input` (empty = end of the read) to the `csv_core` reader.
    fn parse(&mut self, mut input: &[u8]) -> Result<()> {
        let at_end = input.is_empty();
        loop {
            let Scanner::Records {
                reader,
                record_start,
                field,
                ends,
            } = &mut self.scanner
            else {
                unreachable!("called for the record reader")
            };
            let (result, read, written, _) = reader.read_record(input, field, ends);
            if field[..written].iter().any(|b| *b == b'\n' || *b == b'\r') {
                let start = *record_start;
                return Err(self.error(start));
            }
            let line = reader.line();
            let (consumed, rest) = input.split_at(read);
            input = rest;
            self.advance(consumed);
            match result {
                csv_core::ReadRecordResult::InputEmpty => {
                    if !at_end {
                        return Ok(());
                    }
                }
                // Only the bytes just written are checked: reuse the buffers.
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
                csv_core::ReadRecordResult::Record => {
                    let offset = self.offset;
                    if let Scanner::Records { record_start, .. } = &mut self.scanner {
                        *record_start = (line, offset);
                    }
                }
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn error(&self, (line, offset): (u64, Option<u64>)) -> DataFusionError {
        let place = match (self.from_file_start, offset) {
            (true, _) => format!("on line {line}"),
            (false, Some(offset)) => format!("at byte {offset}"),
            (false, None) => "near the end of the file".to_string(),
        };
        DataFusionError::Execution(format!(
            "CSV file '{}': a quoted value starting {place} spans lines: an unterminated \
             quote folds the lines after it into one value. If values do span lines, read the \
             file with newlines_in_values=true (read_csv('...', 'newlines_in_values=true'))",
            self.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both scanners: the quote scan (default options) and `csv_core` (with
    /// a comment character, which only it handles).
    fn check(bytes: &[u8], start: Option<u64>, chunk: usize) -> Result<()> {
        let with_comment = CsvOptions {
            comment: Some(b'#'),
            ..CsvOptions::default()
        };
        let mut results = Vec::new();
        for options in [CsvOptions::default(), with_comment] {
            let mut check = LineBreakCheck::new("f.csv".into(), &options, start);
            let result = bytes
                .chunks(chunk)
                .try_for_each(|piece| check.push(piece))
                .and_then(|()| check.finish());
            results.push(result.map_err(|e| e.to_string()));
        }
        let first = results.remove(0);
        let second = results.remove(0);
        assert_eq!(first.is_ok(), second.is_ok(), "{first:?} {second:?}");
        first.map_err(DataFusionError::Execution)
    }

    #[test]
    fn finds_a_quoted_value_spanning_lines_in_any_chunking() {
        let folded = b"id,name\n1,\"a\n2,b\n3,c\n";
        let fine = b"id,name\n1,\"a,\"\"x\"\"\"\n2,b\n3,'c\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let e = check(folded, Some(0), chunk).unwrap_err().to_string();
            assert!(e.contains("starting on line 2 spans lines"), "{e}");
            check(fine, Some(0), chunk).unwrap();
        }
    }

    #[test]
    fn a_read_from_mid_file_starts_at_the_next_line() {
        // The first line is cut inside a quoted value: not a fold.
        check(b"bc\",d\"\n2,b\n3,c\n", Some(10), 4).unwrap();
        let e = check(b"bc,d\n2,\"b\n3,c\n", Some(10), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at byte 17"), "{e}");
        // A read that ends inside a quoted value without a line break in it.
        check(b"x\n1,\"abc", Some(3), 3).unwrap();
    }

    /// The quote scan agrees with `csv_core` on every input of a small
    /// alphabet, in every chunking (a generated class, not chosen cases).
    #[test]
    fn the_quote_scan_agrees_with_csv_core() {
        let alphabet = [b'a', b',', b'"', b'\n', b'\r'];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut folds = 0;
        for _ in 0..20_000 {
            let len = (next() % 14) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let chunk = 1 + (next() % 4) as usize;
            // `check` asserts that both scanners agree.
            folds += usize::from(check(&bytes, Some(0), chunk).is_err());
        }
        assert!(folds > 1000, "the inputs hold folds: {folds}");
    }
}
