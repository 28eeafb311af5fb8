//! A file table that reports its estimated rows while the query is planned.
//!
//! DataFusion's `ListingTable` reads its files' statistics (Parquet footers)
//! only when a scan is planned, after the logical optimizer has ordered the
//! joins; the join-order rules (see the `remote` module's `join_order`)
//! need a table's size before that, or they never move it. When a table is
//! opened, [`with_row_estimate`] reads the rows of up to [`SAMPLED_FILES`]
//! of its files the way a scan would (a Parquet footer's count, a CSV
//! file's size over the length of its first lines) and scales them to the
//! bytes of all its files; [`EstimatedFileTable`] reports them as its
//! [`TableProvider::statistics`] and hands everything else to the table.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, Result, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use object_store::ObjectStore;

/// Most files whose rows are read when a table is opened.
pub const SAMPLED_FILES: usize = 8;

/// A file table and its estimated rows (see the module docs).
#[derive(Debug)]
pub struct EstimatedFileTable {
    inner: Arc<ListingTable>,
    statistics: Statistics,
}

/// `table` with its estimated rows (see the module docs), or `table` alone
/// when none can be read (JSON, compressed CSV, an error: the estimate only
/// guides the plan).
pub async fn with_row_estimate(
    state: &SessionState,
    store: &Arc<dyn ObjectStore>,
    table: ListingTable,
) -> Arc<dyn TableProvider> {
    let table = Arc::new(table);
    match estimate(state, store, &table).await {
        Some(rows) => Arc::new(EstimatedFileTable {
            statistics: Statistics::new_unknown(&table.schema())
                .with_num_rows(Precision::Inexact(rows)),
            inner: table,
        }),
        None => table,
    }
}

async fn estimate(
    state: &SessionState,
    store: &Arc<dyn ObjectStore>,
    table: &ListingTable,
) -> Option<usize> {
    let format = Arc::clone(&table.options().format);
    let mut objects = Vec::new();
    for url in table.table_paths() {
        let mut files = url.list_all_files(state, store.as_ref(), "").await.ok()?;
        while let Some(object) = files.next().await {
            objects.push(object.ok()?);
        }
    }
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let (mut sampled_rows, mut sampled_bytes) = (0usize, 0u64);
    for object in objects.iter().take(SAMPLED_FILES) {
        let statistics = format
            .infer_stats(state, store, table.schema(), object)
            .await
            .ok()?;
        sampled_rows += *statistics.num_rows.get_value()?;
        sampled_bytes += object.size;
    }
    if sampled_bytes == 0 || sampled_bytes == total {
        return Some(sampled_rows);
    }
    Some((sampled_rows as f64 * total as f64 / sampled_bytes as f64) as usize)
}

#[async_trait]
impl TableProvider for EstimatedFileTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        self.inner.scan_with_args(state, args).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}
