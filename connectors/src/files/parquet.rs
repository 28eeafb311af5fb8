//! DataFusion's Parquet format with the footer checked first.
//!
//! The parquet crate (59) computes where the metadata starts as `file
//! length - 8 - metadata length` without checking, so a file whose footer
//! claims more metadata than the file holds (a truncated or corrupt file)
//! panics in its decoder (`attempt to subtract with overflow`, or `range
//! start must not be greater than end`). Every file is checked before
//! DataFusion reads its metadata: one read of its last 8 bytes, and an
//! error naming the file instead of a panic.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, GetExt, Result, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::datasource::file_format::{FileFormat, FileFormatFactory, FileMeta};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSinkConfig, FileSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::{LexOrdering, LexRequirement};
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// Replaces DataFusion's `parquet` format factory (see the module docs).
#[derive(Debug, Default)]
pub struct CheckedParquetFormatFactory {
    inner: ParquetFormatFactory,
}

impl CheckedParquetFormatFactory {
    /// A factory that reads Parquet with DataFusion's defaults.
    pub fn new() -> Self {
        <Self as Default>::default()
    }
}

impl GetExt for CheckedParquetFormatFactory {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }
}

impl FileFormatFactory for CheckedParquetFormatFactory {
    fn create(
        &self,
        state: &dyn Session,
        format_options: &HashMap<String, String>,
    ) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(CheckedParquetFormat::new(
            self.inner.create(state, format_options)?,
        )))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        Arc::new(CheckedParquetFormat::new(self.inner.default()))
    }
}

/// DataFusion's Parquet format, each file's footer checked before its
/// metadata is read.
pub struct CheckedParquetFormat {
    inner: Arc<dyn FileFormat>,
    /// Files whose footers passed (by location, size and change time):
    /// planning asks for a file's schema, then its statistics, and each
    /// check reads the footer.
    checked: std::sync::Mutex<std::collections::HashSet<(String, u64, i64)>>,
}

impl CheckedParquetFormat {
    fn new(inner: Arc<dyn FileFormat>) -> Self {
        Self {
            inner,
            checked: Default::default(),
        }
    }

    /// [`check_footer`], once per version of a file.
    async fn check(&self, store: &Arc<dyn ObjectStore>, object: &ObjectMeta) -> Result<()> {
        let key = (
            object.location.to_string(),
            object.size,
            object
                .last_modified
                .timestamp_nanos_opt()
                .unwrap_or_default(),
        );
        if self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        check_footer(store, object).await?;
        self.checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }
}

impl fmt::Debug for CheckedParquetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedParquetFormat").finish()
    }
}

/// An error unless `object` ends with a Parquet footer whose metadata fits
/// in the file.
pub async fn check_footer(store: &Arc<dyn ObjectStore>, object: &ObjectMeta) -> Result<()> {
    let size = object.size;
    let local = store.to_string().starts_with("LocalFileSystem");
    let name = if local {
        format!("/{}", object.location)
    } else {
        object.location.to_string()
    };
    let corrupt = |what: String| {
        DataFusionError::Execution(format!(
            "Parquet file '{name}' is truncated or corrupt: {what}"
        ))
    };
    if size < 12 {
        return Err(corrupt(format!(
            "{size} bytes cannot hold the 'PAR1' header and the 8-byte footer"
        )));
    }
    let tail = store
        .get_range(&object.location, size - 8..size)
        .await
        .map_err(|e| DataFusionError::Execution(format!("reading Parquet file '{name}': {e}")))?;
    // PAR1, or PARE (an encrypted footer): other endings are left to the
    // parquet crate, which refuses them with an error.
    if &tail[4..] != b"PAR1" && &tail[4..] != b"PARE" {
        return Ok(());
    }
    let metadata = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if metadata + 8 + 4 > size {
        return Err(corrupt(format!(
            "its footer says the metadata takes {metadata} bytes, but the file has {size}"
        )));
    }
    if &tail[4..] == b"PARE" {
        // An encrypted footer: the parquet crate refuses it (no keys).
        return Ok(());
    }
    // The parquet crate also panics on some corrupt metadata (an unknown
    // physical type: `not implemented: Type <UNKNOWN 69> not supported`);
    // decoded here first, any panic is this file's error.
    let bytes = store
        .get_range(&object.location, size - 8 - metadata..size - 8)
        .await
        .map_err(|e| DataFusionError::Execution(format!("reading Parquet file '{name}': {e}")))?;
    let decoded = std::panic::catch_unwind(|| {
        use datafusion::parquet::arrow::parquet_to_arrow_schema;
        use datafusion::parquet::file::metadata::ParquetMetaDataReader;
        let decoded = ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| e.to_string())?;
        let file = decoded.file_metadata();
        parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    match decoded {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(corrupt(e)),
        Err(panic) => Err(corrupt(format!(
            "its metadata cannot be decoded ({})",
            crate::panic_message(panic.as_ref())
        ))),
    }
}

#[async_trait]
impl FileFormat for CheckedParquetFormat {
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
        for object in objects {
            self.check(store, object).await?;
        }
        self.inner.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.check(store, object).await?;
        self.inner
            .infer_stats(state, store, table_schema, object)
            .await
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<LexOrdering>> {
        self.check(store, object).await?;
        self.inner
            .infer_ordering(state, store, table_schema, object)
            .await
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<FileMeta> {
        self.check(store, object).await?;
        self.inner
            .infer_stats_and_ordering(state, store, table_schema, object)
            .await
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_physical_plan(state, conf).await
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
