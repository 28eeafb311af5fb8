//! Files as tables: CSV/TSV, Parquet and JSON/NDJSON, one file, a directory or
//! a glob, local or in object storage.
//!
//! Every way of naming a file ends in [`open_file_table`]: a quoted path in
//! FROM ([`PathTableFactory`]), the table functions `read_csv`, `read_parquet`
//! and `read_json` ([`ReadFileFunction`]) and attached directories
//! ([`DirectorySource`]). DataFusion's listing tables do the reading; CSV goes
//! through [`CheckedCsvFormatFactory`] for file-naming errors and bad-row
//! skipping. Writing (`COPY ... TO`) is DataFusion's own.

mod atomic_write;
mod csv;
mod directory;
mod estimated;
mod line_check;
mod object_stores;
mod parquet;
mod record_filter;
mod table_functions;
mod url_table;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionState;
use futures::StreamExt;
use parking_lot::RwLock;

pub use self::csv::{
    CheckedCsvFormat, CheckedCsvFormatFactory, CheckedCsvSource, SKIP_BAD_ROWS, SkippedRows,
};
pub use directory::DirectorySource;
pub use object_stores::{LazyObjectStoreRegistry, SUPPORTED_STORE_SCHEMES};
pub use parquet::{CheckedParquetFormat, CheckedParquetFormatFactory, check_footer};
pub use table_functions::{ReadFileFunction, block_on};
pub use url_table::PathTableFactory;

/// A weak reference to the session that owns a catalog entry, so file tables
/// opened later use the session's current settings (and no reference cycle
/// keeps the session alive).
#[derive(Debug, Clone)]
pub struct SessionHandle(Weak<RwLock<SessionState>>);

impl SessionHandle {
    /// Wraps `SessionContext::state_weak_ref()`.
    pub fn new(state: Weak<RwLock<SessionState>>) -> Self {
        Self(state)
    }

    /// A snapshot of the session's state; fails once the session is gone.
    pub fn state(&self) -> Result<SessionState> {
        self.0
            .upgrade()
            .map(|state| state.read().clone())
            .ok_or_else(|| DataFusionError::Execution("the Moltres session was closed".into()))
    }
}

/// The file formats Moltres reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Comma- (or otherwise) separated values; `.tsv` is CSV with a tab.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON (one object per line), `.json`/`.ndjson`/`.jsonl`.
    Json,
}

impl FileKind {
    /// DataFusion's format factory name (file extension) for this kind.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Csv => "csv",
            FileKind::Parquet => "parquet",
            FileKind::Json => "json",
        }
    }
}

const COMPRESSION_SUFFIXES: &[(&str, &str)] = &[
    ("gz", "GZIP"),
    ("bz2", "BZIP2"),
    ("xz", "XZ"),
    ("zst", "ZSTD"),
    ("zstd", "ZSTD"),
];

/// What a file name says about its format: kind, compression, whether it is TSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNameInfo {
    /// The format, when the extension names one.
    pub kind: Option<FileKind>,
    /// `GZIP`, `BZIP2`, `XZ` or `ZSTD` when the name ends with its suffix.
    pub compression: Option<&'static str>,
    /// `.tsv`: CSV with a tab delimiter.
    pub tab_separated: bool,
    /// The extension as written, with the compression suffix (`csv.gz`).
    pub extension: String,
}

/// Reads format and compression from the last path segment.
pub fn file_name_info(path: &str) -> FileNameInfo {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let mut parts: Vec<&str> = name.split('.').skip(1).collect();
    let mut compression = None;
    if let Some(last) = parts.last()
        && let Some((_, c)) = COMPRESSION_SUFFIXES.iter().find(|(s, _)| s == last)
    {
        compression = Some(*c);
        parts.pop();
    }
    let base = parts.last().copied().unwrap_or("");
    let kind = match base {
        "csv" | "tsv" | "txt" => Some(FileKind::Csv),
        "parquet" | "pq" => Some(FileKind::Parquet),
        "json" | "ndjson" | "jsonl" => Some(FileKind::Json),
        _ => None,
    };
    let extension = match (base, compression) {
        ("", _) => String::new(),
        (b, None) => b.to_string(),
        (b, Some(_)) => format!("{b}.{}", name.rsplit('.').next().unwrap_or("")),
    };
    FileNameInfo {
        kind,
        compression,
        tab_separated: base == "tsv",
        extension,
    }
}

/// Reader options as `key = value` pairs, as given by a user.
///
/// Friendly names are accepted beside DataFusion's: `header`, `delim` /
/// `delimiter` / `sep`, `quote`, `escape`, `null` (a literal null string),
/// `infer_rows`, `compression`, `skip_bad_rows`; any other key is passed to
/// DataFusion's format options (`format.<key>`), which reject unknown keys.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    pairs: Vec<(String, String)>,
}

impl FileOptions {
    /// No options: formats are inferred, CSV has a header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one option.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// The value of `key` (last one wins), by its DataFusion name.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| canonical_key(k) == key)
            .map(|(_, v)| v.as_str())
    }

    /// DataFusion `format.*` options for `kind`.
    fn to_format_options(
        &self,
        kind: FileKind,
        info: &FileNameInfo,
    ) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        if let Some(c) = info.compression
            && kind != FileKind::Parquet
        {
            out.insert("format.compression".to_string(), c.to_string());
        }
        if kind == FileKind::Csv && info.tab_separated {
            out.insert("format.delimiter".to_string(), "\t".to_string());
        }
        if kind == FileKind::Csv {
            out.insert("format.has_header".to_string(), "true".to_string());
        }
        for (key, value) in &self.pairs {
            let key = canonical_key(key);
            let (key, value) = match key.as_str() {
                "null" => (
                    "null_regex".to_string(),
                    format!("^{}$", regex::escape(value)),
                ),
                "delimiter" if value == "\\t" || value.eq_ignore_ascii_case("tab") => {
                    (key, "\t".to_string())
                }
                "skip_bad_rows" if kind != FileKind::Csv => {
                    return Err(DataFusionError::Configuration(
                        "skip_bad_rows applies to CSV files only".to_string(),
                    ));
                }
                _ => (key, value.clone()),
            };
            out.insert(format!("format.{key}"), value);
        }
        Ok(out)
    }
}

fn canonical_key(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    let key = key.strip_prefix("format.").unwrap_or(&key);
    match key {
        "header" => "has_header",
        "delim" | "sep" | "separator" => "delimiter",
        "infer_rows" | "sample_size" => "schema_infer_max_rec",
        "nullstr" | "null_string" => "null",
        "ignore_errors" => "skip_bad_rows",
        other => other,
    }
    .to_string()
}

/// Parses a path or URL; unlike DataFusion's parser, globs work in URLs
/// (`s3://bucket/logs/*.json`) as well as in local paths.
pub fn parse_table_url(path: &str) -> Result<ListingTableUrl> {
    const GLOB_CHARS: &[char] = &['*', '?', '['];
    if path.contains("://")
        && let Some(first_glob) = path.find(GLOB_CHARS)
        && let Some(separator) = path[..first_glob].rfind('/')
    {
        let (base, glob) = path.split_at(separator + 1);
        return ListingTableUrl::parse(base)?.with_glob(glob);
    }
    ListingTableUrl::parse(path)
}

/// Opens `path` (a file, a directory or a glob; local, `s3://` or `http(s)://`)
/// as a table. The format comes from `kind` or else the file extension.
pub async fn open_file_table(
    state: &SessionState,
    path: &str,
    kind: Option<FileKind>,
    options: &FileOptions,
) -> Result<Arc<dyn TableProvider>> {
    open_file_table_inner(state, path, kind, options)
        .await
        .map_err(|e| match e {
            DataFusionError::Context(..) => e,
            e => DataFusionError::Context(format!("cannot read '{path}'"), Box::new(e)),
        })
}

async fn open_file_table_inner(
    state: &SessionState,
    path: &str,
    kind: Option<FileKind>,
    options: &FileOptions,
) -> Result<Arc<dyn TableProvider>> {
    let url = parse_table_url(path)?;
    let store = state.runtime_env().object_store(&url)?;
    let single_file = !url.is_collection() && url.get_glob().is_none();

    // The first file decides the format of a directory or glob.
    let first = {
        let mut files = url.list_all_files(state, store.as_ref(), "").await?;
        files.next().await.transpose().map_err(|e| match e {
            DataFusionError::ObjectStore(ref inner)
                if matches!(**inner, object_store::Error::NotFound { .. }) =>
            {
                DataFusionError::Plan(format!("no such file or directory: '{path}'"))
            }
            e => e,
        })?
    };
    let Some(first) = first else {
        return Err(DataFusionError::Plan(format!(
            "no such file or directory: '{path}' (nothing matches)"
        )));
    };
    let name_info = if single_file || file_name_info(path).kind.is_some() {
        file_name_info(path)
    } else {
        file_name_info(first.location.as_ref())
    };
    let kind = kind.or(name_info.kind).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "cannot tell the format of '{path}' from its name; use read_csv, read_parquet or read_json"
        ))
    })?;
    let mut format_options = options.to_format_options(kind, &name_info)?;
    if let Some(c) = options.get("compression") {
        format_options.insert("format.compression".to_string(), c.to_string());
    }
    if kind == FileKind::Json
        && options.get("newline_delimited").is_none()
        && name_info.compression.is_none()
        && starts_with_array(store.as_ref(), &first).await?
    {
        // A `[ {...}, ... ]` document rather than one object per line.
        format_options.insert("format.newline_delimited".to_string(), "false".to_string());
    }
    let factory = state
        .get_file_format_factory(kind.extension())
        .ok_or_else(|| {
            DataFusionError::Internal(format!("no {} format registered", kind.extension()))
        })?;
    let format = factory.create(state, &format_options)?;
    // A single file is read whatever its extension; in a directory only files
    // with the first file's extension are.
    let extension = if single_file || url.get_glob().is_some() {
        String::new()
    } else {
        format!(".{}", name_info.extension)
    };
    let listing_options = ListingOptions::new(format).with_file_extension(extension);
    let config = ListingTableConfig::new(url).with_listing_options(listing_options);
    let config = if single_file {
        config
    } else {
        config.infer_partitions_from_path(state).await?
    };
    let config = config.infer_schema(state).await?;
    Ok(estimated::with_row_estimate(state, &store, ListingTable::try_new(config)?).await)
}

/// True when the file's first non-blank byte is `[` (a JSON array document).
async fn starts_with_array(
    store: &dyn object_store::ObjectStore,
    file: &object_store::ObjectMeta,
) -> Result<bool> {
    let end = file.size.min(4096);
    if end == 0 {
        return Ok(false);
    }
    let options = object_store::GetOptions {
        range: Some((0..end).into()),
        ..Default::default()
    };
    let head = store
        .get_opts(&file.location, options)
        .await?
        .bytes()
        .await?;
    Ok(head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kind_and_compression_from_names() {
        let info = file_name_info("data/x.csv.gz");
        assert_eq!(info.kind, Some(FileKind::Csv));
        assert_eq!(info.compression, Some("GZIP"));
        assert_eq!(info.extension, "csv.gz");
        let info = file_name_info("s3://b/p/y.TSV");
        assert!(info.tab_separated);
        assert_eq!(file_name_info("a/b.parquet").kind, Some(FileKind::Parquet));
        assert_eq!(file_name_info("a/b.jsonl").kind, Some(FileKind::Json));
        assert_eq!(file_name_info("a/dir").kind, None);
    }

    #[test]
    fn maps_friendly_option_names() {
        let options = FileOptions::new()
            .with("header", "false")
            .with("delim", "tab")
            .with("null", "N/A");
        let map = options
            .to_format_options(FileKind::Csv, &file_name_info("x.csv"))
            .unwrap();
        assert_eq!(map["format.has_header"], "false");
        assert_eq!(map["format.delimiter"], "\t");
        assert_eq!(map["format.null_regex"], "^N/A$");
        let err = FileOptions::new()
            .with("skip_bad_rows", "true")
            .to_format_options(FileKind::Parquet, &file_name_info("x.parquet"))
            .unwrap_err();
        assert!(err.to_string().contains("CSV"));
    }
}
