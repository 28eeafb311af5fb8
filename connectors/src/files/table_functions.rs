//! `read_csv(path, 'key=value', ...)`, `read_parquet(path)`, `read_json(path)`.
//!
//! DataFusion plans table functions synchronously while listing files and
//! inferring a schema is asynchronous, so [`block_on`] bridges the two.

use std::future::Future;
use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Expr;

use super::{FileKind, FileOptions, open_file_table};

/// A table function that opens files of one kind (or, for `read_file`, of the
/// kind their extension says).
#[derive(Debug)]
pub struct ReadFileFunction {
    name: &'static str,
    kind: Option<FileKind>,
}

impl ReadFileFunction {
    /// `read_csv`, `read_parquet` and `read_json`.
    pub fn all() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
        [
            ("read_csv", Some(FileKind::Csv)),
            ("read_parquet", Some(FileKind::Parquet)),
            ("read_json", Some(FileKind::Json)),
        ]
        .into_iter()
        .map(|(name, kind)| {
            (
                name,
                Arc::new(ReadFileFunction { name, kind }) as Arc<dyn TableFunctionImpl>,
            )
        })
        .collect()
    }

    fn parse_args(&self, exprs: &[Expr]) -> Result<(String, FileOptions)> {
        let usage = format!("usage: {}('path' [, 'key=value' ...])", self.name);
        let mut strings = exprs.iter().map(|e| match e {
            Expr::Literal(ScalarValue::Utf8(Some(s)), _)
            | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
            | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Ok(s.clone()),
            other => plan_err!(
                "{}: arguments must be string literals, got {other}; {usage}",
                self.name
            ),
        });
        let Some(path) = strings.next() else {
            return plan_err!("{}: missing path; {usage}", self.name);
        };
        let path = path?;
        let mut options = FileOptions::new();
        for option in strings {
            let option = option?;
            let Some((key, value)) = option.split_once('=') else {
                return plan_err!("{}: option '{option}' is not key=value; {usage}", self.name);
            };
            options = options.with(key.trim(), value);
        }
        Ok((path, options))
    }
}

impl TableFunctionImpl for ReadFileFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (path, options) = self.parse_args(args.exprs())?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("session is not a SessionState".into()))?;
        let kind = self.kind;
        block_on(async move { open_file_table(&state, &path, kind, &options).await })?
    }
}

/// Runs `future` to completion from synchronous code that may itself be
/// running on a Tokio runtime.
///
/// On a multi-threaded runtime the current worker blocks in place (so object
/// store clients stay on the runtime they were created on); elsewhere the
/// future runs on a short-lived runtime in a scoped thread. Never panics.
pub fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(future)))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map(|rt| rt.block_on(future))
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
                .join()
                .map_err(|_| DataFusionError::Internal("file listing thread panicked".into()))?
        }),
    }
}
