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
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::config::CsvOptions;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, GetExt, Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::file_format::csv::{CsvFormat, CsvFormatFactory};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSinkConfig, FileSource,
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
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt};

use super::line_check::LineBreakCheckStore;
use super::record_filter::RecordFilterStore;

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
    pub(super) fn record(&self, message: String) {
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
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
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

/// Bytes read from the start of a CSV file to estimate its rows.
const ROW_SAMPLE: u64 = 64 * 1024;

/// About how many rows (lines, less the header) a CSV file holds: its
/// lines, when it is no longer than [`ROW_SAMPLE`], else its size over the
/// mean length of the whole lines in its first [`ROW_SAMPLE`] bytes.
/// `None` when the sample holds no whole line, or on any error (it only
/// guides join order and hash-table sides).
async fn sampled_rows(
    store: &Arc<dyn ObjectStore>,
    object: &ObjectMeta,
    has_header: Option<bool>,
) -> Option<usize> {
    let end = object.size.min(ROW_SAMPLE);
    let sample = store.get_range(&object.location, 0..end).await.ok()?;
    let header = usize::from(has_header.unwrap_or(true));
    let breaks = sample.iter().filter(|b| **b == b'\n').count();
    if end == object.size {
        let unterminated = usize::from(sample.last().is_some_and(|b| *b != b'\n'));
        return Some((breaks + unterminated).saturating_sub(header));
    }
    let whole = sample.iter().rposition(|b| *b == b'\n')? + 1;
    let lines = (object.size as f64 / (whole as f64 / breaks as f64)) as usize;
    Some(lines.saturating_sub(header))
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
            let filtered: Arc<dyn ObjectStore> = Arc::new(RecordFilterStore {
                inner: Arc::clone(store),
                compression: self.options.compression.into(),
                file_schema: None,
                options: Arc::new(options.clone()),
                skip_bad_rows: true,
                // Inference applies null_regex itself.
                rewrite_nulls: false,
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
        let schema = result.map_err(|e| inference_error(e, objects, local))?;
        // A header name holding a line break is an unterminated quote in
        // the header (it would fold the data into one column name and read
        // no rows), unless values may span lines.
        let newlines = self
            .options
            .newlines_in_values
            .unwrap_or(state.config_options().catalog.newlines_in_values);
        if !newlines
            && let Some(field) = schema
                .fields()
                .iter()
                .find(|f| f.name().contains(['\n', '\r']))
        {
            let shown: String = field.name().chars().take(40).collect();
            let file = objects
                .first()
                .map(|o| format!("{}{}", if local { "/" } else { "" }, o.location))
                .unwrap_or_default();
            return Err(DataFusionError::Execution(format!(
                "CSV file '{file}': the header's column name {shown:?}... holds a line break: \
                 an unterminated quote in the header folds the lines after it into one name. \
                 If values do span lines, read the file with newlines_in_values=true"
            )));
        }
        Ok(schema)
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        let mut statistics = self
            .inner
            .infer_stats(state, store, Arc::clone(&table_schema), object)
            .await?;
        // DataFusion knows nothing of a CSV file before reading it; its
        // size is a fair guess at its bytes in memory, and lets the planner
        // build hash tables on the smaller side and see a join too large
        // for the memory limit (see the engine's `joins` rule).
        if statistics.total_byte_size == Precision::Absent {
            statistics.total_byte_size =
                Precision::Inexact(usize::try_from(object.size).unwrap_or(usize::MAX));
        }
        // Its rows: its size over the length of the lines at its start.
        if statistics.num_rows == Precision::Absent
            && self.options.compression == CompressionTypeVariant::UNCOMPRESSED
            && let Some(rows) = sampled_rows(store, object, self.options.has_header).await
        {
            statistics.num_rows = Precision::Inexact(rows);
        }
        Ok(statistics)
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
        // DataFusion's CSV reader ignores null_regex (it only uses it for
        // inference), so null strings are rewritten to empty fields, which
        // Arrow reads as NULL, on the same path that skips bad rows.
        let options = Arc::new(config_csv_options(&self.options, state));
        let rewrite = (self.skip_bad_rows || self.options.null_regex.is_some()).then(|| {
            let log = state
                .config()
                .get_extension::<SkippedRows>()
                .unwrap_or_default();
            RecordRewrite {
                options: Arc::clone(&options),
                skip_bad_rows: self.skip_bad_rows,
                log,
            }
        });
        let source = CheckedCsvSource {
            inner: Arc::clone(&config.file_source),
            rewrite,
            options,
            newlines_in_values: self
                .options
                .newlines_in_values
                .unwrap_or(state.config_options().catalog.newlines_in_values),
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
        // One local file is written next to its target and moved into
        // place when complete (see `atomic_write`).
        let (conf, staged) = super::atomic_write::stage(conf)?;
        let plan = self
            .inner
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await?;
        Ok(super::atomic_write::AtomicFileExec::wrap(plan, staged))
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
    let name = if local {
        format!("/{location}")
    } else {
        location
    };
    let message = cause.strip_backtrace();
    let message = message
        .strip_prefix("Arrow error: ")
        .unwrap_or(&message)
        .strip_prefix("Csv error: ")
        .unwrap_or(&message)
        .to_string();
    // The hint only helps with malformed rows, not with unreadable files.
    let hint = if message.contains("records") || message.contains("fields") {
        " (read it with skip_bad_rows=true to skip malformed rows)"
    } else {
        ""
    };
    DataFusionError::Execution(format!("CSV file '{name}': {message}{hint}"))
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

/// Read-time rewriting of the CSV bytes (see [`RecordFilter`]).
#[derive(Debug, Clone)]
struct RecordRewrite {
    options: Arc<CsvOptions>,
    skip_bad_rows: bool,
    log: Arc<SkippedRows>,
}

/// DataFusion's `CsvSource` whose file opener names the file in errors and,
/// when asked, skips malformed rows.
#[derive(Clone)]
pub struct CheckedCsvSource {
    inner: Arc<dyn FileSource>,
    rewrite: Option<RecordRewrite>,
    /// Whether values may hold line breaks (`newlines_in_values`); when
    /// not, a value that does is an error (see [`line_break`]).
    newlines_in_values: bool,
    /// The options the file is read with (for [`LineBreakCheckStore`]).
    options: Arc<CsvOptions>,
}

impl fmt::Debug for CheckedCsvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCsvSource")
            .field("file_type", &self.inner.file_type())
            .field("rewrite", &self.rewrite)
            .finish()
    }
}

impl CheckedCsvSource {
    /// Whether line breaks are allowed in values or every string column is
    /// read (and checked by [`line_break`]); otherwise a value spanning lines
    /// in a column left unread must be found in the bytes.
    fn reads_every_string_column(&self) -> bool {
        if self.newlines_in_values {
            return true;
        }
        let Some(projection) = self.inner.projection() else {
            return true;
        };
        let read = projection.column_indices();
        self.inner
            .table_schema()
            .file_schema()
            .fields()
            .iter()
            .enumerate()
            .all(|(i, field)| {
                read.contains(&i)
                    || !matches!(
                        field.data_type(),
                        datafusion::arrow::datatypes::DataType::Utf8
                            | datafusion::arrow::datatypes::DataType::LargeUtf8
                            | datafusion::arrow::datatypes::DataType::Utf8View
                    )
            })
    }

    fn wrap(&self, inner: Arc<dyn FileSource>) -> Arc<dyn FileSource> {
        Arc::new(Self {
            inner,
            rewrite: self.rewrite.clone(),
            newlines_in_values: self.newlines_in_values,
            options: Arc::clone(&self.options),
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
        let inner = match &self.rewrite {
            None if self.reads_every_string_column() => {
                self.inner
                    .create_file_opener(Arc::clone(&object_store), base_config, partition)?
            }
            None => {
                // A line break in a column this scan does not read is found
                // in the bytes (the check hands them on decompressed).
                let checked: Arc<dyn ObjectStore> = Arc::new(LineBreakCheckStore {
                    inner: Arc::clone(&object_store),
                    compression: base_config.file_compression_type,
                    options: Arc::clone(&self.options),
                    display_prefix: display_prefix.clone(),
                });
                let mut config = base_config.clone();
                config.file_compression_type = FileCompressionType::UNCOMPRESSED;
                self.inner.create_file_opener(checked, &config, partition)?
            }
            Some(rewrite) => {
                // The filter hands DataFusion decompressed, rewritten bytes.
                // Always checked: the filter would drop a folded record as
                // one bad row (or a null pattern would hide its line breaks).
                let source: Arc<dyn ObjectStore> = if self.newlines_in_values {
                    Arc::clone(&object_store)
                } else {
                    Arc::new(LineBreakCheckStore {
                        inner: Arc::clone(&object_store),
                        compression: base_config.file_compression_type,
                        options: Arc::clone(&self.options),
                        display_prefix: display_prefix.clone(),
                    })
                };
                let compression = if self.newlines_in_values {
                    base_config.file_compression_type
                } else {
                    FileCompressionType::UNCOMPRESSED
                };
                let filtered: Arc<dyn ObjectStore> = Arc::new(RecordFilterStore {
                    inner: source,
                    compression,
                    file_schema: Some(Arc::clone(self.inner.table_schema().file_schema())),
                    options: Arc::clone(&rewrite.options),
                    skip_bad_rows: rewrite.skip_bad_rows,
                    rewrite_nulls: true,
                    log: Arc::clone(&rewrite.log),
                    display_prefix: display_prefix.clone(),
                });
                let mut config = base_config.clone();
                config.file_compression_type = FileCompressionType::UNCOMPRESSED;
                self.inner
                    .create_file_opener(filtered, &config, partition)?
            }
        };
        Ok(Arc::new(NamedFileOpener {
            inner,
            store: object_store,
            display_prefix,
            newlines_in_values: self.newlines_in_values,
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
        if let Some(rewrite) = &self.rewrite
            && rewrite.skip_bad_rows
        {
            write!(f, ", skip_bad_rows=true")?;
        }
        Ok(())
    }

    fn supports_repartitioning(&self) -> bool {
        // Rewriting reads whole files; byte ranges would split records.
        self.rewrite.is_none() && self.inner.supports_repartitioning()
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
        config: &FileScanConfig,
    ) -> Result<Option<FileScanConfig>> {
        if self.rewrite.is_some() {
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
        Ok(match self.inner.try_pushdown_sort(order, eq_properties)? {
            SortOrderPushdownResult::Exact { inner } => SortOrderPushdownResult::Exact {
                inner: self.wrap(inner),
            },
            SortOrderPushdownResult::Inexact { inner } => SortOrderPushdownResult::Inexact {
                inner: self.wrap(inner),
            },
            SortOrderPushdownResult::Unsupported => SortOrderPushdownResult::Unsupported,
        })
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
    newlines_in_values: bool,
}

/// The first value of `batch` holding a line break, as (column, value).
///
/// Unless `newlines_in_values` is on, DataFusion reads a CSV file as lines
/// (in parallel byte ranges), so a value spanning lines is either an
/// unterminated quote, which folds every line after it into one value
/// (three rows read as two, silently), or a multi-line value that a
/// parallel read would cut apart. Both are refused rather than read wrong.
fn line_break(batch: &RecordBatch) -> Option<(String, String)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    for (i, column) in batch.columns().iter().enumerate() {
        let value = match column.data_type() {
            DataType::Utf8 => {
                let strings = column.as_string::<i32>();
                if !strings.values().iter().any(|b| *b == b'\n' || *b == b'\r') {
                    continue;
                }
                strings.iter().flatten().find(|v| v.contains(['\n', '\r']))
            }
            DataType::LargeUtf8 => {
                let strings = column.as_string::<i64>();
                if !strings.values().iter().any(|b| *b == b'\n' || *b == b'\r') {
                    continue;
                }
                strings.iter().flatten().find(|v| v.contains(['\n', '\r']))
            }
            DataType::Utf8View => column
                .as_string_view()
                .iter()
                .flatten()
                .find(|v| v.contains(['\n', '\r'])),
            _ => None,
        };
        if let Some(value) = value {
            let shown: String = value.chars().take(40).collect();
            let shown = if shown.len() < value.len() {
                format!("{shown}...")
            } else {
                shown
            };
            return Some((batch.schema().field(i).name().clone(), shown));
        }
    }
    None
}

impl FileOpener for NamedFileOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let location = file.object_meta.location.clone();
        let range_start = file.range.as_ref().map(|r| r.start).unwrap_or(0);
        let name = format!("{}{}", self.display_prefix, location);
        let store = Arc::clone(&self.store);
        let newlines_in_values = self.newlines_in_values;
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
                        Ok(batch) if !newlines_in_values => match line_break(&batch) {
                            None => Ok(batch),
                            Some((column, value)) => Err(DataFusionError::Execution(format!(
                                "CSV file '{name}': column '{column}' holds a line break \
                                 ({value:?}): an unterminated quote folds the lines after it \
                                 into one value. If values do span lines, read the file with \
                                 newlines_in_values=true (read_csv('...', \
                                 'newlines_in_values=true'))"
                            ))),
                        },
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

/// Lines of the file before the first record of a byte range starting at
/// `start`: DataFusion begins a range at the first line that starts at or
/// after `start`, so a line cut by `start` counts as before.
async fn count_lines_before(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    start: u64,
) -> Result<usize> {
    let mut stream = store
        .get_opts(
            location,
            GetOptions {
                range: Some((0..start).into()),
                ..Default::default()
            },
        )
        .await?
        .into_stream();
    let mut lines = 0;
    let mut last = b'\n';
    while let Some(chunk) = stream.try_next().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        if let Some(byte) = chunk.last() {
            last = *byte;
        }
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// `CSV file '<name>': <message>` with the file's line number.
///
/// Arrow counts "incorrect number of fields for line N" from 1 but "... at
/// line N" (a value that does not parse) from 0, both including the header
/// and from the start of the byte range read.
fn name_error(name: &str, lines_before: usize, error: DataFusionError) -> DataFusionError {
    let message = error.strip_backtrace();
    // The byte-level checks (LineBreakCheckStore) already name the file;
    // Arrow and the object store wrap their message in their own prefixes.
    const CHECKED: &str = "Generic csv error: Execution error: CSV file '";
    if let Some(at) = message.find(CHECKED) {
        let start = at + CHECKED.len() - "CSV file '".len();
        return DataFusionError::Execution(message[start..].to_string());
    }
    let message = message.strip_prefix("Arrow error: ").unwrap_or(&message);
    let message = message.strip_prefix("Parser error: ").unwrap_or(message);
    let message = message
        .strip_prefix("Csv error: ")
        .unwrap_or(message)
        .to_string();
    let offset = if message.contains(" at line ") {
        lines_before + 1
    } else {
        lines_before
    };
    let message = if offset > 0 {
        shift_line_number(&message, offset)
    } else {
        message
    };
    DataFusionError::Execution(format!("CSV file '{name}': {message}"))
}

/// Adds `offset` to the number after the first "line " in `message`.
fn shift_line_number(message: &str, offset: usize) -> String {
    let Some(at) = message
        .find("line ")
        .filter(|at| message[at + 5..].starts_with(|c: char| c.is_ascii_digit()))
    else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_line_numbers() {
        assert_eq!(
            shift_line_number("incorrect number of fields for line 3, expected 2", 10),
            "incorrect number of fields for line 13, expected 2"
        );
        assert_eq!(shift_line_number("no number", 10), "no number");
    }
}
