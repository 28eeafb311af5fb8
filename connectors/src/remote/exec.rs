//! [`RemoteScanExec`]: runs one remote query and streams its rows.
//!
//! Run-time filters: DataFusion pushes *dynamic filters* into the probe side
//! of a hash join (the build side's key bounds and, when small enough, its
//! key set) and under a top-N sort. A remote scan keeps the ones it is
//! given and, when it is first polled (a join polls its probe side only
//! after its build side is complete), adds what the database computes
//! exactly of their current value to its query as an outer `WHERE`. The
//! filter only ever removes rows the join or the sort would drop, so the
//! answer does not depend on it; it decides how many rows cross the wire
//! (TPC-H Q17: 204 part keys instead of all 6 M `lineitem` rows).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};
use futures::{StreamExt, TryStreamExt};

use super::{ColumnEstimate, RemoteDatabase, RemoteSql, ScanGroup};

/// The parts of a parallel scan (see the `partitions` module): one plan
/// and its SQL per part, each the scan's plan with one range's condition.
#[derive(Debug, Clone)]
pub struct ScanParts {
    /// Each part's plan.
    pub plans: Vec<LogicalPlan>,
    /// Each part's SQL, rendered from its plan.
    pub sqls: Vec<RemoteSql>,
    /// The column whose ranges split the rows.
    pub column: String,
    /// The parts read in one snapshot the database shares.
    pub shared_snapshot: bool,
}

/// Sends one SQL query to a remote database: one partition, or one per part
/// of a parallel scan (see [`RemoteScanExec::with_parts`]).
#[derive(Debug)]
pub struct RemoteScanExec {
    database: Arc<dyn RemoteDatabase>,
    sql: RemoteSql,
    schema: SchemaRef,
    batch_size: usize,
    /// The logical plan `sql` was rendered from, when there is one (not for
    /// passthrough), so optimizer rules can extend it.
    logical_plan: Option<LogicalPlan>,
    /// The plan is a federated sub-plan (its columns named `c0`, `c1`, ...):
    /// run-time filters apply to its result, nothing else extends it.
    federated: bool,
    /// Dynamic filters pushed in by joins and top-N sorts (see the module
    /// docs); only kept when there is a logical plan to extend.
    dynamic_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// About how many rows the query returns (from the database's
    /// statistics), for DataFusion's choice of join build sides.
    row_estimate: Option<usize>,
    /// The rows of the table, for a scan of one table.
    table_rows: Option<usize>,
    /// About how many distinct values each column holds, where known.
    column_estimates: Vec<ColumnEstimate>,
    /// The parts of a parallel scan, with what they share while they run.
    parts: Option<(ScanParts, Arc<ScanGroup>)>,
    /// The SQL actually sent, once a run added dynamic filters to it.
    sent_sql: Arc<parking_lot::Mutex<Option<String>>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RemoteScanExec {
    /// A scan of `database` running `sql`, whose rows have `schema`.
    pub fn new(
        database: Arc<dyn RemoteDatabase>,
        sql: RemoteSql,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Self {
        let properties = Self::properties_for(&schema, 1);
        Self {
            database,
            sql,
            schema,
            batch_size,
            logical_plan: None,
            federated: false,
            dynamic_filters: Vec::new(),
            row_estimate: None,
            table_rows: None,
            column_estimates: Vec::new(),
            parts: None,
            sent_sql: Arc::default(),
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Records the logical plan the SQL was rendered from.
    pub fn with_logical_plan(mut self, plan: LogicalPlan) -> Self {
        self.logical_plan = Some(plan);
        self
    }

    fn properties_for(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
        Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    /// Reads the scan as `parts` (one DataFusion partition each) instead of
    /// its one query; the SQL and plan given to [`new`](Self::new) and
    /// [`with_logical_plan`](Self::with_logical_plan) stay the whole scan's,
    /// for rules that extend it.
    pub fn with_parts(mut self, parts: ScanParts) -> Self {
        self.properties = Self::properties_for(&self.schema, parts.sqls.len().max(1));
        let group = ScanGroup::new(parts.sqls.len());
        self.parts = Some((parts, group));
        self
    }

    /// The parts of a parallel scan, if it is one.
    pub fn parts(&self) -> Option<&ScanParts> {
        self.parts.as_ref().map(|(parts, _)| parts)
    }

    /// Records the federated sub-plan the SQL was rendered from (see
    /// [`federate`](super::federate)).
    pub fn with_federated_plan(mut self, plan: LogicalPlan) -> Self {
        self.logical_plan = Some(plan);
        self.federated = true;
        self
    }

    /// The logical plan of a table's scan the SQL was rendered from, for
    /// rules that extend it (not a federated sub-plan's).
    pub fn scan_plan(&self) -> Option<&LogicalPlan> {
        self.logical_plan.as_ref().filter(|_| !self.federated)
    }

    /// About how many rows the query returns.
    pub fn with_row_estimate(mut self, rows: Option<usize>) -> Self {
        self.row_estimate = rows;
        self
    }

    /// The rows of the whole table, for a scan of one table (what a key
    /// list that reaches its rows through an index is weighed against).
    pub fn with_table_rows(mut self, rows: Option<usize>) -> Self {
        self.table_rows = rows;
        self
    }

    /// What the table's statistics say of each column (distinct values,
    /// NULLs, bounds), in the order of the scan's columns.
    pub fn with_column_estimates(mut self, columns: Vec<ColumnEstimate>) -> Self {
        self.column_estimates = columns;
        self
    }

    /// The same scan, fresh (no metrics, no SQL sent yet), without dynamic
    /// filters.
    fn without_dynamic_filters(&self) -> RemoteScanExec {
        let mut scan = RemoteScanExec::new(
            Arc::clone(&self.database),
            self.sql.clone(),
            Arc::clone(&self.schema),
            self.batch_size,
        );
        scan.logical_plan = self.logical_plan.clone();
        scan.federated = self.federated;
        scan.row_estimate = self.row_estimate;
        scan.table_rows = self.table_rows;
        scan.column_estimates = self.column_estimates.clone();
        match &self.parts {
            // A group (and snapshot) of its own for each new plan.
            Some((parts, _)) => scan.with_parts(parts.clone()),
            None => scan,
        }
    }

    /// The database scanned.
    pub fn database(&self) -> &Arc<dyn RemoteDatabase> {
        &self.database
    }

    /// Rows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The SQL this scan sends.
    pub fn sql(&self) -> &RemoteSql {
        &self.sql
    }
}

/// `plan` with `filter` (over its output columns) applied to its result: a
/// scan's own WHERE, or an outer WHERE over a federated query as a derived
/// table (never inside it, where it would run before its LIMIT).
fn filtered(
    plan: LogicalPlan,
    filter: datafusion::logical_expr::Expr,
    federated: bool,
) -> Result<LogicalPlan> {
    match plan {
        scan if !federated => LogicalPlanBuilder::from(scan).filter(filter)?.build(),
        other => {
            let columns: Vec<datafusion::logical_expr::Expr> = other
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    datafusion::logical_expr::col(datafusion::common::Column::new_unqualified(
                        f.name(),
                    ))
                })
                .collect();
            LogicalPlanBuilder::from(other)
                .alias("moltres_filtered")?
                .filter(filter)?
                .project(columns)?
                .build()
        }
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoteScanExec: source={}", self.database.source_name())?;
        if let Some(rows) = self.row_estimate {
            // The rows the planner expects (EXPLAIN ANALYZE's output_rows
            // beside it are the rows returned).
            write!(f, ", estimated_rows={rows}")?;
        }
        write!(f, ", sql={}", self.sql)?;
        if let Some((parts, _)) = &self.parts {
            write!(
                f,
                ", parts={} by {}{}",
                parts.sqls.len(),
                parts.column,
                if parts.shared_snapshot {
                    " in one snapshot"
                } else {
                    ""
                }
            )?;
        }
        if !self.dynamic_filters.is_empty() {
            match self.sent_sql.lock().as_deref() {
                // EXPLAIN ANALYZE: what was sent.
                Some(sent) if sent.len() > 2000 => {
                    let cut = (0..=2000)
                        .rev()
                        .find(|i| sent.is_char_boundary(*i))
                        .unwrap_or(0);
                    write!(f, ", sent={}... ({} bytes)", &sent[..cut], sent.len())?
                }
                Some(sent) => write!(f, ", sent={sent}")?,
                None => write!(f, ", dynamic_filters={}", self.dynamic_filters.len())?,
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // A join computes its dynamic filter only when a node below it
        // holds the filter: this is how it finds this scan.
        for filter in &self.dynamic_filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// Keeps the dynamic filters among the filters pushed down to this scan
    /// (for the next run to render); every filter stays the parent's job.
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<PushedDown> = child_pushdown_result
            .parent_filters
            .iter()
            .map(|_| PushedDown::No)
            .collect();
        let dynamic: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .filter(super::runtime_filter::is_dynamic)
            .collect();
        // A federated top-N returns its few rows as they are.
        let limited = self.federated
            && matches!(
                self.logical_plan,
                Some(LogicalPlan::Sort(_) | LogicalPlan::Limit(_))
            );
        if dynamic.is_empty() || self.logical_plan.is_none() || limited {
            return Ok(FilterPushdownPropagation {
                filters,
                updated_node: None,
            });
        }
        let mut scan = self.without_dynamic_filters();
        scan.dynamic_filters = self.dynamic_filters.clone();
        scan.dynamic_filters.extend(dynamic);
        Ok(FilterPushdownPropagation {
            filters,
            updated_node: Some(Arc::new(scan)),
        })
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        // The Arrow bytes received from the database.
        let bytes = datafusion::physical_plan::metrics::MetricBuilder::new(&self.metrics)
            .counter("bytes_received", partition);
        // This partition's plan and SQL: the scan's, or its part's.
        let (logical_plan, static_sql, group) = match &self.parts {
            Some((parts, group)) => {
                let (Some(plan), Some(sql)) =
                    (parts.plans.get(partition), parts.sqls.get(partition))
                else {
                    return datafusion::common::internal_err!(
                        "RemoteScanExec: partition {partition} of {}",
                        parts.sqls.len()
                    );
                };
                let group = (Arc::clone(group), parts.shared_snapshot);
                (Some(plan), sql.clone(), Some(group))
            }
            None => (self.logical_plan.as_ref(), self.sql.clone(), None),
        };
        let database = Arc::clone(&self.database);
        let batch_size = self.batch_size;
        let run = move |sql: &RemoteSql, schema: SchemaRef| -> Result<SendableRecordBatchStream> {
            match group {
                // The connector shares its snapshot and connections.
                Some((group, true)) => database.execute_part(sql, schema, batch_size, group),
                // Admitted by the group, then one query.
                Some((group, false)) => {
                    let sql = sql.clone();
                    let stream_schema = Arc::clone(&schema);
                    let admitted = futures::stream::once(async move {
                        let ticket = group
                            .admit(|| super::pool_has_spare(database.pool_status()))
                            .await;
                        let rows = database.execute(&sql, schema, batch_size)?;
                        Ok::<_, datafusion::common::DataFusionError>(rows.map(move |batch| {
                            let _running = &ticket;
                            batch
                        }))
                    })
                    .try_flatten();
                    Ok(Box::pin(RecordBatchStreamAdapter::new(
                        stream_schema,
                        admitted,
                    )))
                }
                None => database.execute(sql, schema, batch_size),
            }
        };
        let stream: SendableRecordBatchStream =
            match (logical_plan, self.dynamic_filters.is_empty()) {
                (Some(plan), false) => {
                    // Rendered at the first poll, when the filters have their
                    // values.
                    let database = Arc::clone(&self.database);
                    let schema = Arc::clone(&self.schema);
                    let plan = plan.clone();
                    let federated = self.federated;
                    let filters = self.dynamic_filters.clone();
                    let sent = (partition == 0).then(|| Arc::clone(&self.sent_sql));
                    // A part's share, for one part of a parallel scan (its
                    // list costs it the same).
                    let share = self.parts.as_ref().map_or(1, |(p, _)| p.sqls.len().max(1));
                    let (rows, table_rows) = (
                        self.row_estimate.map(|r| r / share),
                        self.table_rows.map(|r| r / share),
                    );
                    let columns = self.column_estimates.clone();
                    let lazy = futures::stream::once(async move {
                        let remote = plan.schema().as_arrow().clone();
                        let sizing = super::runtime_filter::Sizing {
                            rows,
                            table_rows,
                            columns: &columns,
                        };
                        let sql = match super::runtime_filter::remote_filter(
                            &filters,
                            &schema,
                            &remote,
                            database.pushdown(),
                            sizing,
                        ) {
                            Some(filter) => filtered(plan, filter, federated)
                                .and_then(|p| RemoteSql::from_plan(&p, database.as_ref()))
                                .unwrap_or(static_sql),
                            None => static_sql,
                        };
                        if let Some(sent) = sent {
                            *sent.lock() = Some(sql.to_string());
                        }
                        run(&sql, schema)
                    })
                    .try_flatten();
                    Box::pin(RecordBatchStreamAdapter::new(
                        Arc::clone(&self.schema),
                        lazy,
                    ))
                }
                // Sent at the first poll, not now: a join polls its probe
                // side only once its build side is read, and a probe scan
                // that took its connection at once held it all that time
                // (a chain of nine local joins on a pool of eight waited
                // out pool_timeout).
                _ => {
                    let schema = Arc::clone(&self.schema);
                    let lazy = futures::stream::once(async move { run(&static_sql, schema) })
                        .try_flatten();
                    Box::pin(RecordBatchStreamAdapter::new(
                        Arc::clone(&self.schema),
                        lazy,
                    ))
                }
            };
        let counted = stream.map(move |batch| {
            if let Ok(batch) = &batch {
                metrics.record_output(batch.num_rows());
                bytes.add(batch.get_array_memory_size());
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            counted,
        )))
    }

    /// A fresh scan without the dynamic filters: a plan run again (a
    /// recursive query's next round) gets new joins whose filters this
    /// scan does not hold, and an old value must not filter the new rows.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.without_dynamic_filters()))
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        let Some(mut rows) = self.row_estimate else {
            return Ok(Arc::new(statistics));
        };
        if let (Some(_), Some((parts, _))) = (args.partition(), &self.parts) {
            // One part's share.
            rows /= parts.sqls.len().max(1);
        }
        statistics = statistics.with_num_rows(Precision::Inexact(rows));
        for (column, estimate) in statistics
            .column_statistics
            .iter_mut()
            .zip(&self.column_estimates)
        {
            // A filtered scan returns at most its rows' values, within the
            // table's bounds.
            *column = super::estimates::column_statistics(estimate, Some(rows));
        }
        Ok(Arc::new(statistics))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
