//! [`RemoteTable`]: one table of a remote database as a DataFusion table.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{
    Column, DFSchema, Result, Statistics, TableReference, not_impl_err, plan_err,
};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, LogicalTableSource, TableProviderFilterPushDown, cast,
};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use super::pushdown::{Capability, classify};
use super::{
    CAST_TO_TEXT, ColumnEstimate, RemoteDatabase, RemoteScanExec, RemoteSql, RowRanges, ScanParts,
    WriteMode,
};

/// Writes the rows of an `INSERT` into a remote table.
#[derive(Debug)]
struct RemoteSink {
    database: Arc<dyn RemoteDatabase>,
    reference: TableReference,
    schema: SchemaRef,
    /// The table's rows go first, in the same transaction.
    overwrite: bool,
}

impl DisplayAs for RemoteSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "RemoteInsert: source={}, table={}{}",
            self.database.source_name(),
            self.reference,
            if self.overwrite { ", overwrite" } else { "" }
        )
    }
}

#[async_trait]
impl DataSink for RemoteSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mode = if self.overwrite {
            WriteMode::Overwrite
        } else {
            WriteMode::Append
        };
        self.database
            .write(&self.reference, Arc::clone(&self.schema), data, mode)
            .await
    }
}

/// The source a sink writes to, when it is a remote table's.
pub fn sink_source(sink: &dyn DataSink) -> Option<&str> {
    sink.downcast_ref::<RemoteSink>()
        .map(|sink| sink.database.source_name())
}

/// A table (or view) of a remote database.
#[derive(Debug)]
pub struct RemoteTable {
    database: Arc<dyn RemoteDatabase>,
    reference: TableReference,
    schema: SchemaRef,
    read_only: bool,
    /// The database's estimate of the table's rows.
    rows: Option<u64>,
    /// Its statistics of columns, by name.
    columns: HashMap<String, ColumnEstimate>,
    /// What one grouping may hold in memory on the server.
    aggregate_memory: Option<u64>,
    /// A column whose ranges split the table for parallel scans.
    ranges: Option<RowRanges>,
}

impl RemoteTable {
    /// `schema.table` of `database`, whose columns are `arrow_schema`.
    pub fn new(
        database: Arc<dyn RemoteDatabase>,
        schema: &str,
        table: &str,
        arrow_schema: SchemaRef,
    ) -> Self {
        Self {
            database,
            reference: TableReference::partial(schema, table),
            schema: arrow_schema,
            read_only: false,
            rows: None,
            columns: HashMap::new(),
            aggregate_memory: None,
            ranges: None,
        }
    }

    /// A column whose ranges split the table into parts read at once (see
    /// [`RemoteDatabase::row_ranges`]).
    pub fn with_row_ranges(mut self, ranges: Option<RowRanges>) -> Self {
        self.ranges = ranges;
        self
    }

    /// The database's estimate of the table's rows, if it has one.
    pub fn row_estimate(&self) -> Option<u64> {
        self.rows
    }

    /// The database's estimate of the table's rows (see
    /// [`RemoteDatabase::row_estimate`]).
    pub fn with_row_estimate(mut self, rows: Option<u64>) -> Self {
        self.rows = rows;
        self
    }

    /// The database's statistics of the table's columns (see
    /// [`RemoteDatabase::column_estimates`]).
    pub fn with_column_estimates(mut self, columns: HashMap<String, ColumnEstimate>) -> Self {
        self.columns = columns;
        self
    }

    /// The database's estimate of distinct values in `column`, if it has one.
    pub fn distinct_estimate(&self, column: &str) -> Option<u64> {
        self.columns.get(column)?.distinct
    }

    /// The estimated rows a scan returns under `filters` (conjuncts the
    /// database runs) and `limit`, from the table's statistics (see the
    /// `estimates` module); `None` without a row estimate.
    pub fn filtered_rows(&self, filters: &[Expr], limit: Option<usize>) -> Option<usize> {
        Some(super::filtered_rows(
            self.rows?,
            filters,
            &self.columns,
            limit,
        ))
    }

    /// What one grouping may hold in memory on the server (see
    /// [`RemoteDatabase::aggregate_memory`]).
    pub fn with_aggregate_memory(mut self, bytes: Option<u64>) -> Self {
        self.aggregate_memory = bytes;
        self
    }

    /// What one grouping may hold in memory on the server, if known.
    pub fn aggregate_memory(&self) -> Option<u64> {
        self.aggregate_memory
    }

    /// Refuses `INSERT` when `read_only` (the source was attached READ_ONLY).
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The database the table lives in.
    pub fn database(&self) -> &Arc<dyn RemoteDatabase> {
        &self.database
    }

    /// The table's name in the database (`schema.table`).
    pub fn reference(&self) -> &TableReference {
        &self.reference
    }

    /// Refuses `what` when the source is read-only.
    pub fn writable(&self, what: &str) -> Result<()> {
        if self.read_only {
            return plan_err!(
                "source '{}' is attached READ_ONLY; {what} {}.{} is refused",
                self.database.source_name(),
                self.database.source_name(),
                self.reference
            );
        }
        Ok(())
    }

    /// The logical plan of a scan: the table, the `pushed` filters (already
    /// judged pushable), the projection and the limit.
    fn scan_plan(
        &self,
        projection: Option<&Vec<usize>>,
        pushed: &[Expr],
        limit: Option<usize>,
    ) -> Result<LogicalPlan> {
        self.part_plan(projection, pushed, limit, None)
    }

    /// [`scan_plan`](Self::scan_plan) of one part of a parallel scan: with
    /// the condition of its range of `ranges`' column (a system column is
    /// added to the scanned columns, and never selected).
    fn part_plan(
        &self,
        projection: Option<&Vec<usize>>,
        pushed: &[Expr],
        limit: Option<usize>,
        range: Option<(&RowRanges, Expr)>,
    ) -> Result<LogicalPlan> {
        let scanned = match range {
            Some((
                RowRanges {
                    column,
                    hidden: Some(data_type),
                    ..
                },
                _,
            )) => {
                let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
                fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                    column,
                    data_type.clone(),
                    false,
                )));
                Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
            }
            _ => Arc::clone(&self.schema),
        };
        let source = Arc::new(LogicalTableSource::new(scanned));
        let mut builder = LogicalPlanBuilder::scan(self.reference.clone(), source, None)?;
        for filter in pushed {
            builder = builder.filter(filter.clone())?;
        }
        if let Some((_, condition)) = range {
            builder = builder.filter(condition)?;
        }
        let indices: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let columns: Vec<Expr> = indices
            .iter()
            .map(|i| {
                let field = self.schema.field(*i);
                let column = Expr::Column(Column::new(Some(self.reference.clone()), field.name()));
                if field.metadata().contains_key(CAST_TO_TEXT) {
                    cast(column, DataType::Utf8).alias(field.name())
                } else {
                    column
                }
            })
            .collect();
        builder = builder.project(columns)?;
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        builder.build()
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// The database's statistics of the table (see the `estimates`
    /// module), every figure inexact; `None` when it has no row estimate.
    fn statistics(&self) -> Option<Statistics> {
        self.rows?;
        Some(super::table_statistics(
            &self.schema,
            self.rows,
            &self.columns,
        ))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| classify(self.database.pushdown(), f, &self.schema).into())
            .collect())
    }

    /// `INSERT INTO` appends and `INSERT OVERWRITE` replaces through
    /// [`RemoteDatabase::write`]: streamed, in one transaction, all rows or
    /// none.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let name = format!("{}.{}", self.database.source_name(), self.reference);
        self.writable("INSERT INTO")?;
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            other => {
                return not_impl_err!(
                    "{other} into {name}: INSERT INTO and INSERT OVERWRITE are supported"
                );
            }
        };
        let sink = RemoteSink {
            database: Arc::clone(&self.database),
            reference: self.reference.clone(),
            schema: Arc::clone(&self.schema),
            overwrite,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    /// `DELETE FROM` as one statement in the database, when it evaluates
    /// every condition exactly as DataFusion does (refused otherwise).
    async fn delete_from(
        &self,
        _state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.writable("DELETE")?;
        let sql = super::dml::delete_sql(
            self.database.as_ref(),
            self.reference.schema().unwrap_or_default(),
            self.reference.table(),
            &self.schema,
            &filters,
        )?;
        Ok(Arc::new(super::RemoteStatementExec::new(
            Arc::clone(&self.database),
            sql,
        )))
    }

    /// `UPDATE` as one statement in the database, under the same rule.
    async fn update(
        &self,
        _state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.writable("UPDATE")?;
        let sql = super::dml::update_sql(
            self.database.as_ref(),
            self.reference.schema().unwrap_or_default(),
            self.reference.table(),
            &self.schema,
            &assignments,
            &filters,
        )?;
        Ok(Arc::new(super::RemoteStatementExec::new(
            Arc::clone(&self.database),
            sql,
        )))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // DataFusion may rewrite a filter after accepting it (the simplifier
        // turns `a IN (1, NULL)` into `a = 1 OR NULL`), so a filter handed to
        // the scan is not always one the policy pushes. Those are applied
        // here, locally, over the remote rows: a filter is never dropped.
        let (remote, local): (Vec<Expr>, Vec<Expr>) = filters.iter().cloned().partition(|f| {
            classify(self.database.pushdown(), f, &self.schema) != Capability::Unsupported
        });
        let wanted: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut fetched = wanted.clone();
        for filter in &local {
            for column in filter.column_refs() {
                let index = self.schema.index_of(&column.name)?;
                if !fetched.contains(&index) {
                    fetched.push(index);
                }
            }
        }
        let remote_limit = if local.is_empty() { limit } else { None };
        let plan = self.scan_plan(Some(&fetched), &remote, remote_limit)?;
        let sql = RemoteSql::from_plan(&plan, self.database.as_ref())?;
        let fetched_schema = Arc::new(self.schema.project(&fetched)?);
        let estimate = self.filtered_rows(&remote, remote_limit);
        let mut scan = RemoteScanExec::new(
            Arc::clone(&self.database),
            sql,
            Arc::clone(&fetched_schema),
            state.config().batch_size(),
        )
        .with_logical_plan(plan)
        .with_row_estimate(estimate)
        .with_table_rows(self.rows.and_then(|r| usize::try_from(r).ok()))
        .with_column_estimates(
            fetched_schema
                .fields()
                .iter()
                .map(|f| self.columns.get(f.name()).cloned().unwrap_or_default())
                .collect(),
        );
        if let (Some(ranges), Some(rows), None) = (&self.ranges, estimate, remote_limit) {
            let wanted = super::part_count(
                rows,
                state.config().target_partitions(),
                self.database.scan_partitioning(),
                self.database.pool_status().map(|p| p.max_size),
            );
            if wanted > 1 {
                let column =
                    Expr::Column(Column::new(Some(self.reference.clone()), &ranges.column));
                let mut plans = Vec::with_capacity(wanted);
                let mut sqls = Vec::with_capacity(wanted);
                let data_type = match &ranges.hidden {
                    Some(data_type) => data_type.clone(),
                    None => self
                        .schema
                        .field_with_name(&ranges.column)?
                        .data_type()
                        .clone(),
                };
                for condition in ranges.conditions(column, &data_type, wanted) {
                    let plan =
                        self.part_plan(Some(&fetched), &remote, None, Some((ranges, condition)))?;
                    sqls.push(RemoteSql::from_plan(&plan, self.database.as_ref())?);
                    plans.push(plan);
                }
                if plans.len() > 1 {
                    scan = scan.with_parts(ScanParts {
                        plans,
                        sqls,
                        column: ranges.column.clone(),
                        shared_snapshot: ranges.shared_snapshot,
                    });
                }
            }
        }
        let scan: Arc<dyn ExecutionPlan> = Arc::new(scan);
        let Some(predicate) = conjunction(local) else {
            return Ok(scan);
        };
        let predicate = predicate
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    other => Transformed::no(other),
                })
            })?
            .data;
        let df_schema = DFSchema::try_from(fetched_schema.as_ref().clone())?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(physical, scan)?);
        if fetched.len() == wanted.len() {
            return Ok(filtered);
        }
        // Drop the columns fetched only for the filter.
        let columns = (0..wanted.len()).map(|i| {
            let name = fetched_schema.field(i).name();
            ProjectionExpr::new(Arc::new(PhysicalColumn::new(name, i)), name.clone())
        });
        Ok(Arc::new(ProjectionExec::try_new(columns, filtered)?))
    }
}
