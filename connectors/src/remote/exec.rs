//! [`RemoteScanExec`]: runs one remote query and streams its rows.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use super::{RemoteDatabase, RemoteSql};

/// Sends one SQL query to a remote database; one partition.
#[derive(Debug)]
pub struct RemoteScanExec {
    database: Arc<dyn RemoteDatabase>,
    sql: RemoteSql,
    schema: SchemaRef,
    batch_size: usize,
    /// The logical plan `sql` was rendered from, when there is one (not for
    /// passthrough), so optimizer rules can extend it.
    logical_plan: Option<LogicalPlan>,
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
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            database,
            sql,
            schema,
            batch_size,
            logical_plan: None,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Records the logical plan the SQL was rendered from.
    pub fn with_logical_plan(mut self, plan: LogicalPlan) -> Self {
        self.logical_plan = Some(plan);
        self
    }

    /// The logical plan the SQL was rendered from.
    pub fn logical_plan(&self) -> Option<&LogicalPlan> {
        self.logical_plan.as_ref()
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

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RemoteScanExec: source={}, sql={}",
            self.database.source_name(),
            self.sql
        )
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
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
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
        let stream = self
            .database
            .execute(&self.sql, Arc::clone(&self.schema), self.batch_size)?;
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
