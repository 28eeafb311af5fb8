//! `COPY ... TO 'file'` all or nothing.
//!
//! DataFusion writes a single output file in place: a COPY that fails
//! (a bad input row) replaced an existing file with an empty one, and one
//! that was interrupted (Ctrl-C, a timeout) left its partial upload beside
//! it (`out.parquet#1`). For a single local file, [`stage`] points the write
//! at a hidden sibling (`.moltres-<random>-out.parquet`, in the same
//! directory so the rename is atomic) and [`AtomicFileExec`] renames it over
//! the target once every row is written; on an error, or when the query is
//! dropped, the sibling and its partial uploads are removed and the target
//! is untouched. Directory outputs (`TO 'dir/'`, `PARTITIONED BY`) and
//! object stores are written as DataFusion writes them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::future::Future;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::FileSinkConfig;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures::StreamExt;

/// A single local output file's target and the sibling written first.
#[derive(Debug, Clone)]
pub(super) struct Staged {
    target: PathBuf,
    temporary: PathBuf,
}

/// `conf` writing to a hidden sibling of its target, when it writes one
/// local file; else `conf` as it is.
pub(super) fn stage(mut conf: FileSinkConfig) -> Result<(FileSinkConfig, Option<Staged>)> {
    let single = conf.table_paths.len() == 1
        && conf
            .file_output_mode
            .single_file_output(&conf.table_paths[0]);
    let local = conf.object_store_url.as_str().starts_with("file://");
    if !single || !local {
        return Ok((conf, None));
    }
    let url = conf.table_paths[0].as_str().to_string();
    let Some(target) = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    else {
        return Ok((conf, None));
    };
    let (Some(directory), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok((conf, None));
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let temporary = directory.join(format!(
        ".moltres-{:x}-{:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        name.to_string_lossy()
    ));
    let temporary_url = url::Url::from_file_path(&temporary).map_err(|()| {
        DataFusionError::Plan(format!("cannot write next to '{}'", target.display()))
    })?;
    conf.table_paths = vec![ListingTableUrl::parse(temporary_url.as_str())?];
    conf.file_output_mode = datafusion::datasource::physical_plan::FileOutputMode::SingleFile;
    Ok((conf, Some(Staged { target, temporary })))
}

impl Staged {
    /// Removes the sibling and the partial uploads next to it
    /// (`<sibling>#<n>`).
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.temporary);
        let (Some(directory), Some(name)) = (self.temporary.parent(), self.temporary.file_name())
        else {
            return;
        };
        let prefix = format!("{}#", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(directory) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    fn publish(&self) -> Result<()> {
        std::fs::rename(&self.temporary, &self.target).map_err(|e| {
            self.discard();
            DataFusionError::Execution(format!(
                "writing '{}': the output was written to '{}' but could not be moved into \
                 place: {e}",
                self.target.display(),
                self.temporary.display()
            ))
        })
    }

    pub(super) fn target(&self) -> &Path {
        &self.target
    }
}

/// Removes the sibling unless the write was published.
struct Guard {
    staged: Staged,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.staged.discard();
        }
    }
}

/// Runs a file write to a staged sibling and moves it into place when it
/// completes (see the module docs).
#[derive(Debug)]
pub struct AtomicFileExec {
    inner: Arc<dyn ExecutionPlan>,
    staged: Staged,
}

impl AtomicFileExec {
    pub(super) fn wrap(
        inner: Arc<dyn ExecutionPlan>,
        staged: Option<Staged>,
    ) -> Arc<dyn ExecutionPlan> {
        match staged {
            Some(staged) => Arc::new(Self { inner, staged }),
            None => inner,
        }
    }
}

impl DisplayAs for AtomicFileExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AtomicFileExec: target={}",
            self.staged.target().display()
        )
    }
}

impl ExecutionPlan for AtomicFileExec {
    fn name(&self) -> &str {
        "AtomicFileExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    /// The write's one partition (its row count), as it is.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [inner] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("AtomicFileExec has one child".into()))?;
        Ok(Arc::new(Self {
            inner,
            staged: self.staged.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.inner.schema();
        let mut guard = Guard {
            staged: self.staged.clone(),
            done: false,
        };
        let mut inner = self.inner.execute(partition, context)?;
        let stream = async_stream_of(async move {
            let mut batches = Vec::new();
            while let Some(batch) = inner.next().await {
                batches.push(batch?);
            }
            guard.staged.publish()?;
            guard.done = true;
            drop(guard);
            Ok(batches)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The batches of `run` (the write's row count), once it has finished.
fn async_stream_of(
    run: impl Future<Output = Result<Vec<RecordBatch>>> + Send + 'static,
) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
    futures::stream::once(run)
        .flat_map(|result| match result {
            Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
        })
        .boxed()
}
