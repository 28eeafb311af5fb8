//! CSV with errors that name the file and line, and an opt-in mode that skips
//! malformed rows and reports how many were skipped.
//!
//! DataFusion's own CSV reader does the parsing. [`CheckedCsvFormatFactory`]
//! replaces the session's `csv` format factory so every way of reading CSV
//! (a quoted path in FROM, `read_csv`, `CREATE EXTERNAL TABLE`, `ATTACH` of a
//! directory) goes through [`CheckedCsvFormat`], which wraps DataFusion's
//! `CsvSource` in [`CheckedCsvSource`]. That source only changes how files are
//! opened:
//!
//! * every error raised while reading a file is prefixed with the file's path
//!   and, for byte-range (parallel) scans, the line number is made absolute;
//! * with `skip_bad_rows`, the bytes of each file are passed through a
//!   [`RecordFilter`] that drops records DataFusion could not decode (wrong
//!   field count, a value that does not parse as its column's type) before
//!   DataFusion decodes them; each skipped record is counted in the session's
//!   [`SkippedRows`] log.
//!
//! Writing CSV (COPY TO) is delegated unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::csv::reader::ReaderBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::config::CsvOptions;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, GetExt, Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::file_format::csv::{CsvFormat, CsvFormatFactory};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSinkConfig,
    FileSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::{LexOrdering, LexRequirement, PhysicalExpr};
use datafusion::physical_expr_common::sort_expr::PhysicalSortExpr;
use datafusion::physical_plan::filter_pushdown::FilterPushdownPropagation;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExprs;
use datafusion::physical_plan::sort_pushdown::SortOrderPushdownResult;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan};
use datafusion::datasource::listing::PartitionedFile;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// The option (in `OPTIONS (...)`, `read_csv(..., skip_bad_rows => true)` or a
/// TOML source) that turns on skipping of malformed rows.
pub const SKIP_BAD_ROWS: &str = "skip_bad_rows";

/// How many sample messages [`SkippedRows`] keeps.
const MAX_SAMPLES: usize = 5;

/// Records malformed CSV rows that were skipped, for the session to report.
///
/// One log lives in each session (as a `SessionConfig` extension); the shell
/// prints and clears it after every statement.
#[derive(Debug, Default)]
pub struct SkippedRows {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl SkippedRows {
    fn record(&self, message: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_SAMPLES {
            samples.push(message);
        }
    }

    /// Rows skipped since the last [`SkippedRows::take`].
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Returns the number of skipped rows and up to five messages (file, line,
    /// reason), and resets the log.
    pub fn take(&self) -> (u64, Vec<String>) {
        let count = self.count.swap(0, Ordering::Relaxed);
        let samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        (count, samples)
    }
}

/// Replaces DataFusion's `csv` format factory (see the module docs).
#[derive(Debug, Default)]
pub struct CheckedCsvFormatFactory {
    inner: CsvFormatFactory,
}

impl CheckedCsvFormatFactory {
    /// A factory that reads CSV with DataFusion's defaults.
    pub fn new() -> Self {
        <Self as Default>::default()
    }
}

impl GetExt for CheckedCsvFormatFactory {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }
}

impl FileFormatFactory for CheckedCsvFormatFactory {
    fn create(
        &self,
        state: &dyn Session,
        format_options: &HashMap<String, String>,
    ) -> Result<Arc<dyn FileFormat>> {
        let mut options = format_options.clone();
        let skip = take_bool_option(&mut options, SKIP_BAD_ROWS)?.unwrap_or(false);
        let inner = self.inner.create(state, &options)?;
        Ok(Arc::new(CheckedCsvFormat::from_format(inner, skip)))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        Arc::new(CheckedCsvFormat::new(CsvOptions::default(), false))
    }
}

/// Removes `key` or `format.key` from `options` and parses it as a boolean.
fn take_bool_option(options: &mut HashMap<String, String>, key: &str) -> Result<Option<bool>> {
    let value = options
        .remove(key)
        .or_else(|| options.remove(&format!("format.{key}")));
    value
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(DataFusionError::Configuration(format!(
                "CSV option {key} must be true or false, got '{other}'"
            ))),
        })
        .transpose()
}

/// DataFusion's [`CsvFormat`] with file-naming errors and optional row skipping.
#[derive(Debug)]
pub struct CheckedCsvFormat {
    inner: Arc<dyn FileFormat>,
    options: CsvOptions,
    skip_bad_rows: bool,
}

impl CheckedCsvFormat {
    /// A format reading CSV with `options`; `skip_bad_rows` drops malformed rows.
    pub fn new(options: CsvOptions, skip_bad_rows: bool) -> Self {
        let inner = Arc::new(CsvFormat::default().with_options(options.clone()));
        Self {
            inner,
            options,
            skip_bad_rows,
        }
    }

    fn from_format(inner: Arc<dyn FileFormat>, skip_bad_rows: bool) -> Self {
        let options = inner
            .downcast_ref::<CsvFormat>()
            .map(|f| f.options().clone())
            .unwrap_or_default();
        Self {
            inner,
            options,
            skip_bad_rows,
        }
    }

    /// The CSV options in force.
    pub fn options(&self) -> &CsvOptions {
        &self.options
    }
}

#[async_trait]
impl FileFormat for CheckedCsvFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        let local = store.to_string().starts_with("LocalFileSystem");
        let result = if self.skip_bad_rows {
            // Infer from the records whose field count matches the header, so
            // a malformed row cannot stop the read it is meant to skip.
            let options = config_csv_options(&self.options, state);
            let filtered: Arc<dyn ObjectStore> = Arc::new(BadRowFilterStore {
                inner: Arc::clone(store),
                compression: self.options.compression.into(),
                file_schema: None,
                options: Arc::new(options.clone()),
                log: Arc::new(SkippedRows::default()),
                display_prefix: if local { "/".into() } else { String::new() },
            });
            let mut plain = options;
            plain.compression = CompressionTypeVariant::UNCOMPRESSED;
            CsvFormat::default()
                .with_options(plain)
                .infer_schema(state, &filtered, objects)
                .await
        } else {
            self.inner.infer_schema(state, store, objects).await
        };
        result.map_err(|e| inference_error(e, objects, local))
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.inner
            .infer_stats(state, store, table_schema, object)
            .await
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.create_physical_plan(state, conf).await?;
        let Some(config) = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(plan);
        };
        let skip = self.skip_bad_rows.then(|| {
            let log = state
                .config()
                .get_extension::<SkippedRows>()
                .unwrap_or_default();
            SkipBadRows {
                options: Arc::new(config_csv_options(&self.options, state)),
                log,
            }
        });
        let source = CheckedCsvSource {
            inner: Arc::clone(&config.file_source),
            skip,
        };
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

/// Rewrites DataFusion's "Error when processing CSV file x" into the
/// `CSV file '/x': ...` form the reader uses, with a hint.
fn inference_error(error: DataFusionError, objects: &[ObjectMeta], local: bool) -> DataFusionError {
    let (location, cause) = match error {
        DataFusionError::Context(context, cause) => {
            let location = objects
                .iter()
                .find(|o| context.ends_with(o.location.as_ref()))
                .map(|o| o.location.to_string());
            match location {
                Some(location) => (location, *cause),
                None => return DataFusionError::Context(context, cause),
            }
        }
        other => return other,
    };
    let name = if local { format!("/{location}") } else { location };
    let message = cause.strip_backtrace();
    let message = message
        .strip_prefix("Arrow error: ")
        .unwrap_or(&message)
        .strip_prefix("Csv error: ")
        .unwrap_or(&message)
        .to_string();
    DataFusionError::Execution(format!(
        "CSV file '{name}': {message} (read it with skip_bad_rows=true to skip malformed rows)"
    ))
}

/// The options with session defaults filled in, as DataFusion's reader sees them.
fn config_csv_options(options: &CsvOptions, state: &dyn Session) -> CsvOptions {
    let mut options = options.clone();
    options.has_header = Some(
        options
            .has_header
            .unwrap_or_else(|| state.config_options().catalog.has_header),
    );
    options
}

/// What skipping needs at read time.
#[derive(Debug, Clone)]
struct SkipBadRows {
    options: Arc<CsvOptions>,
    log: Arc<SkippedRows>,
}

/// DataFusion's `CsvSource` whose file opener names the file in errors and,
/// when asked, skips malformed rows.
#[derive(Clone)]
pub struct CheckedCsvSource {
    inner: Arc<dyn FileSource>,
    skip: Option<SkipBadRows>,
}

impl fmt::Debug for CheckedCsvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCsvSource")
            .field("file_type", &self.inner.file_type())
            .field("skip_bad_rows", &self.skip.is_some())
            .finish()
    }
}

impl CheckedCsvSource {
    fn wrap(&self, inner: Arc<dyn FileSource>) -> Arc<dyn FileSource> {
        Arc::new(Self {
            inner,
            skip: self.skip.clone(),
        })
    }
}

impl FileSource for CheckedCsvSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        partition: usize,
    ) -> Result<Arc<dyn FileOpener>> {
        let display_prefix = display_prefix(base_config);
        let inner = match &self.skip {
            None => self
                .inner
                .create_file_opener(Arc::clone(&object_store), base_config, partition)?,
            Some(skip) => {
                // The filter hands DataFusion decompressed, clean bytes.
                let filtered: Arc<dyn ObjectStore> = Arc::new(BadRowFilterStore {
                    inner: Arc::clone(&object_store),
                    compression: base_config.file_compression_type,
                    file_schema: Some(Arc::clone(self.inner.table_schema().file_schema())),
                    options: Arc::clone(&skip.options),
                    log: Arc::clone(&skip.log),
                    display_prefix: display_prefix.clone(),
                });
                let mut config = base_config.clone();
                config.file_compression_type = FileCompressionType::UNCOMPRESSED;
                self.inner.create_file_opener(filtered, &config, partition)?
            }
        };
        Ok(Arc::new(NamedFileOpener {
            inner,
            store: object_store,
            display_prefix,
        }))
    }

    fn table_schema(&self) -> &TableSchema {
        self.inner.table_schema()
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        self.wrap(self.inner.with_batch_size(batch_size))
    }

    fn filter(&self) -> Option<Arc<dyn PhysicalExpr>> {
        self.inner.filter()
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        self.inner.projection()
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        self.inner.metrics()
    }

    fn file_type(&self) -> &str {
        self.inner.file_type()
    }

    fn fmt_extra(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_extra(t, f)?;
        if self.skip.is_some() {
            write!(f, ", skip_bad_rows=true")?;
        }
        Ok(())
    }

    fn supports_repartitioning(&self) -> bool {
        // Skipping filters whole files; byte ranges would split records.
        self.skip.is_none() && self.inner.supports_repartitioning()
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
        config: &FileScanConfig,
    ) -> Result<Option<FileScanConfig>> {
        if self.skip.is_some() {
            return Ok(None);
        }
        self.inner.repartitioned(
            target_partitions,
            repartition_file_min_size,
            output_ordering,
            config,
        )
    }

    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn FileSource>>> {
        let result = self.inner.try_pushdown_filters(filters, config)?;
        Ok(FilterPushdownPropagation {
            filters: result.filters,
            updated_node: result.updated_node.map(|node| self.wrap(node)),
        })
    }

    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
        eq_properties: &datafusion::physical_expr::EquivalenceProperties,
    ) -> Result<SortOrderPushdownResult<Arc<dyn FileSource>>> {
        Ok(
            match self.inner.try_pushdown_sort(order, eq_properties)? {
                SortOrderPushdownResult::Exact { inner } => SortOrderPushdownResult::Exact {
                    inner: self.wrap(inner),
                },
                SortOrderPushdownResult::Inexact { inner } => SortOrderPushdownResult::Inexact {
                    inner: self.wrap(inner),
                },
                SortOrderPushdownResult::Unsupported => SortOrderPushdownResult::Unsupported,
            },
        )
    }

    fn reorder_files(&self, files: Vec<PartitionedFile>) -> Vec<PartitionedFile> {
        self.inner.reorder_files(files)
    }

    fn try_pushdown_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> Result<Option<Arc<dyn FileSource>>> {
        Ok(self
            .inner
            .try_pushdown_projection(projection)?
            .map(|node| self.wrap(node)))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }
}

/// How a file is shown in messages: `/abs/path` for local files, the URL otherwise.
fn display_prefix(config: &FileScanConfig) -> String {
    let url = config.object_store_url.as_str();
    if url.starts_with("file://") {
        "/".to_string()
    } else {
        url.trim_end_matches('/').to_string() + "/"
    }
}

/// Prefixes every error of a file with its path, with absolute line numbers.
struct NamedFileOpener {
    inner: Arc<dyn FileOpener>,
    store: Arc<dyn ObjectStore>,
    display_prefix: String,
}

impl FileOpener for NamedFileOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let location = file.object_meta.location.clone();
        let range_start = file.range.as_ref().map(|r| r.start).unwrap_or(0);
        let name = format!("{}{}", self.display_prefix, location);
        let store = Arc::clone(&self.store);
        let opening = self.inner.open(file);
        let opening = match opening {
            Ok(f) => f,
            Err(e) => return Err(name_error(&name, 0, e)),
        };
        Ok(Box::pin(async move {
            let stream = match opening.await {
                Ok(stream) => stream,
                Err(e) => return Err(name_error(&name, 0, e)),
            };
            let stream = stream.then(move |item| {
                let name = name.clone();
                let store = Arc::clone(&store);
                let location = location.clone();
                async move {
                    match item {
                        Ok(batch) => Ok(batch),
                        Err(e) => {
                            // A parallel scan counts lines from its byte range;
                            // count the lines before it so the number is the file's.
                            let lines_before = if range_start > 0 {
                                count_lines_before(&store, &location, range_start as u64)
                                    .await
                                    .unwrap_or(0)
                            } else {
                                0
                            };
                            Err(name_error(&name, lines_before, e))
                        }
                    }
                }
            });
            Ok(stream.boxed())
        }))
    }
}

async fn count_lines_before(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    end: u64,
) -> Result<usize> {
    let mut stream = store
        .get_opts(
            location,
            GetOptions {
                range: Some((0..end).into()),
                ..Default::default()
            },
        )
        .await?
        .into_stream();
    let mut lines = 0;
    while let Some(chunk) = stream.try_next().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    Ok(lines)
}

/// `CSV file '<name>': <message>`, with `line N` shifted by `lines_before`.
fn name_error(name: &str, lines_before: usize, error: DataFusionError) -> DataFusionError {
    let message = error.strip_backtrace();
    let message = message
        .strip_prefix("Arrow error: ")
        .unwrap_or(&message)
        .to_string();
    let message = if lines_before > 0 {
        shift_line_number(&message, lines_before)
    } else {
        message
    };
    DataFusionError::Execution(format!("CSV file '{name}': {message}"))
}

/// Adds `offset` to the number after the first "line " in `message`.
fn shift_line_number(message: &str, offset: usize) -> String {
    let Some(at) = message.find("line ") else {
        return message.to_string();
    };
    let digits_start = at + "line ".len();
    let digits: String = message[digits_start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    match digits.parse::<usize>() {
        Ok(n) => format!(
            "{}{}{}",
            &message[..digits_start],
            n + offset,
            &message[digits_start + digits.len()..]
        ),
        Err(_) => message.to_string(),
    }
}

/// An object store view that serves CSV files decompressed and without the
/// records DataFusion could not decode. Only reads go through it.
#[derive(Debug)]
struct BadRowFilterStore {
    inner: Arc<dyn ObjectStore>,
    compression: FileCompressionType,
    /// `None` checks field counts only (against the header), for inference.
    file_schema: Option<SchemaRef>,
    options: Arc<CsvOptions>,
    log: Arc<SkippedRows>,
    display_prefix: String,
}

impl fmt::Display for BadRowFilterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadRowFilter({})", self.inner)
    }
}

fn read_only_error() -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: "write through the CSV bad-row filter".into(),
        implementer: "BadRowFilterStore".into(),
    }
}

#[async_trait]
impl ObjectStore for BadRowFilterStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> object_store::Result<PutResult> {
        Err(read_only_error())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only_error())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await?;
        let meta = result.meta.clone();
        let range = result.range.clone();
        let attributes = result.attributes.clone();
        let raw = result
            .into_stream()
            .map_err(DataFusionError::from)
            .boxed();
        let decompressed = self
            .compression
            .convert_stream(raw)
            .map_err(to_store_error)?;
        let mut filter = RecordFilter::try_new(
            format!("{}{}", self.display_prefix, location),
            self.file_schema.clone(),
            &self.options,
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

    fn list(&self, prefix: Option<&Path>) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only_error())
    }
}

fn to_store_error(e: DataFusionError) -> object_store::Error {
    object_store::Error::Generic {
        store: "csv",
        source: Box::new(e),
    }
}

/// Maps a byte stream through `f`, which is called once per chunk and once
/// more with `None` at the end.
fn async_stream_filter<F>(
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
struct RecordFilter {
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
    fn try_new(
        name: String,
        schema: Option<SchemaRef>,
        options: &CsvOptions,
        log: Arc<SkippedRows>,
    ) -> Result<Self> {
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
        let null_regex = options
            .null_regex
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| DataFusionError::Configuration(format!("CSV null_regex: {e}")))?;
        Ok(Self {
            name,
            reader: builder.build(),
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

    fn push(&mut self, input: &[u8]) -> Result<Bytes> {
        let mut out = Vec::with_capacity(input.len());
        self.parse(input, &mut out)?;
        Ok(Bytes::from(out))
    }

    fn finish(&mut self) -> Result<Bytes> {
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
            record.push(self.quote);
            for byte in field {
                if *byte == self.quote {
                    record.push(self.quote);
                }
                record.push(*byte);
            }
            record.push(self.quote);
            start = *end;
        }
        record.push(b'\n');
        record
    }

    fn decoder_builder(&self, schema: SchemaRef) -> ReaderBuilder {
        let mut builder = ReaderBuilder::new(schema)
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_truncated_rows(self.allow_truncated);
        if let Some(regex) = &self.null_regex {
            builder = builder.with_null_regex(regex.clone());
        }
        builder
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
            let read = decoder.decode(&bytes[offset..]).map_err(|e| e.to_string())?;
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
        let joined: Vec<u8> = pending.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        if self.decode(&joined, pending.len()).is_ok() {
            out.extend_from_slice(&joined);
            return Ok(());
        }
        for (line, record) in pending {
            match self.decode(&record, 1) {
                Ok(()) => out.extend_from_slice(&record),
                Err(reason) => {
                    let reason = self.describe_parse_error(&reason);
                    self.log.record(format!(
                        "CSV file '{}', line {line}: {reason}",
                        self.name
                    ))
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
            ..Default::default()
        };
        RecordFilter::try_new("t.csv".into(), Some(schema), &options, log).unwrap()
    }

    #[test]
    fn drops_bad_records_across_chunks() {
        let log = Arc::new(SkippedRows::default());
        let mut f = filter(Arc::clone(&log));
        let mut out = Vec::new();
        out.extend_from_slice(&f.push(b"id,name\n1,a\nx,b\n3,\"c").unwrap());
        out.extend_from_slice(&f.push(b"\"\"d\"\n4\n5,e,extra\n6,f\n").unwrap());
        out.extend_from_slice(&f.finish().unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"id\",\"name\"\n\"1\",\"a\"\n\"3\",\"c\"\"d\"\n\"6\",\"f\"\n"
        );
        let (count, samples) = log.take();
        assert_eq!(count, 3);
        assert!(samples[0].contains("line 5"), "{samples:?}");
        assert!(samples[1].contains("line 6"), "{samples:?}");
        assert!(samples[2].contains("line 3"), "{samples:?}");
    }

    #[test]
    fn shifts_line_numbers() {
        assert_eq!(
            shift_line_number("incorrect number of fields for line 3, expected 2", 10),
            "incorrect number of fields for line 13, expected 2"
        );
        assert_eq!(shift_line_number("no number", 10), "no number");
    }
}
