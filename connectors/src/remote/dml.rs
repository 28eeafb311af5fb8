//! `DELETE` and `UPDATE` on remote tables: one statement the database runs
//! (atomic there), made only of expressions it computes exactly as
//! DataFusion does; anything else is refused rather than approximated.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::sql::unparser::Unparser;

use super::pushdown::{Capability, classify};
use super::sql::utc_literal;
use super::{RemoteDatabase, RemoteSql, Written, seal};

/// The table name quoted by the database's writer.
fn quoted_table(
    database: &dyn RemoteDatabase,
    written: &mut Written,
    schema: &str,
    table: &str,
) -> Result<String> {
    let writer = database.sql_writer();
    Ok(format!(
        "{}.{}",
        written.identifier(writer, schema)?,
        written.identifier(writer, table)?
    ))
}

/// `expr` as the database's SQL, columns unqualified, sealed by its writer.
fn render(database: &dyn RemoteDatabase, written: &mut Written, expr: &Expr) -> Result<String> {
    let expr = expr
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
                other => utc_literal(other)?,
            })
        })?
        .data;
    let mut sql = Unparser::new(database.dialect()).expr_to_sql(&expr)?;
    written.extend(seal(&mut sql, database.sql_writer())?);
    Ok(sql.to_string())
}

/// The WHERE clause of `filters`, each one Exact for the database.
fn where_clause(
    database: &dyn RemoteDatabase,
    written: &mut Written,
    schema: &Schema,
    filters: &[Expr],
    what: &str,
) -> Result<String> {
    let mut parts = Vec::with_capacity(filters.len());
    for filter in filters {
        if classify(database.pushdown(), filter, schema) != Capability::Exact {
            return plan_err!(
                "{what}: {} cannot evaluate `{filter}` exactly as Moltres does, so it is not \
                 sent; write the statement in the database's SQL with source('{}').execute(...)",
                database.kind(),
                database.source_name()
            );
        }
        parts.push(format!("({})", render(database, written, filter)?));
    }
    Ok(if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    })
}

/// `DELETE FROM schema.table WHERE ...`.
pub fn delete_sql(
    database: &dyn RemoteDatabase,
    schema_name: &str,
    table: &str,
    columns: &Schema,
    filters: &[Expr],
) -> Result<RemoteSql> {
    let what = format!("DELETE on {}.{schema_name}.{table}", database.source_name());
    let mut written = Written::default();
    let condition = where_clause(database, &mut written, columns, filters, &what)?;
    let target = quoted_table(database, &mut written, schema_name, table)?;
    RemoteSql::statement(
        format!("DELETE FROM {target}{condition}"),
        database.sql_writer(),
        &written,
    )
}

/// Whether a new value is computed exactly by the database: a literal, a
/// column, or an Exact predicate (a boolean).
fn exact_value(database: &dyn RemoteDatabase, schema: &Schema, value: &Expr) -> bool {
    match value {
        Expr::Literal(..) | Expr::Column(_) => true,
        Expr::Cast(cast) => matches!(cast.expr.as_ref(), Expr::Literal(..)),
        other => classify(database.pushdown(), other, schema) == Capability::Exact,
    }
}

/// `UPDATE schema.table SET ... WHERE ...`.
pub fn update_sql(
    database: &dyn RemoteDatabase,
    schema_name: &str,
    table: &str,
    columns: &Schema,
    assignments: &[(String, Expr)],
    filters: &[Expr],
) -> Result<RemoteSql> {
    let what = format!("UPDATE on {}.{schema_name}.{table}", database.source_name());
    let mut written = Written::default();
    let mut sets = Vec::with_capacity(assignments.len());
    for (column, value) in assignments {
        // The planner lists every column; unchanged ones are themselves.
        if matches!(value, Expr::Column(c) if &c.name == column) {
            continue;
        }
        if !exact_value(database, columns, value) {
            return plan_err!(
                "{what}: {} may not compute `{value}` for column '{column}' exactly as Moltres \
                 does (arithmetic overflows differently, ...), so it is not sent; write the \
                 statement in the database's SQL with source('{}').execute(...)",
                database.kind(),
                database.source_name()
            );
        }
        let name = written.identifier(database.sql_writer(), column)?;
        sets.push(format!(
            "{name} = {}",
            render(database, &mut written, value)?
        ));
    }
    if sets.is_empty() {
        return plan_err!("{what}: nothing to set");
    }
    let condition = where_clause(database, &mut written, columns, filters, &what)?;
    let target = quoted_table(database, &mut written, schema_name, table)?;
    RemoteSql::statement(
        format!("UPDATE {target} SET {}{condition}", sets.join(", ")),
        database.sql_writer(),
        &written,
    )
}

/// Runs one data-changing statement when executed; one row: `count`.
#[derive(Debug)]
pub struct RemoteStatementExec {
    database: Arc<dyn RemoteDatabase>,
    sql: RemoteSql,
    properties: Arc<PlanProperties>,
}

impl RemoteStatementExec {
    /// The statement it sends.
    pub fn sql(&self) -> &RemoteSql {
        &self.sql
    }

    /// The database it sends it to.
    pub fn database(&self) -> &Arc<dyn RemoteDatabase> {
        &self.database
    }

    /// A plan that runs `sql` on `database`.
    pub fn new(database: Arc<dyn RemoteDatabase>, sql: RemoteSql) -> Self {
        let schema = count_schema();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            database,
            sql,
            properties,
        }
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DisplayAs for RemoteStatementExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RemoteStatementExec: source={}, sql={}",
            self.database.source_name(),
            self.sql
        )
    }
}

impl ExecutionPlan for RemoteStatementExec {
    fn name(&self) -> &str {
        "RemoteStatementExec"
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
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let database = Arc::clone(&self.database);
        let sql = self.sql.clone();
        let schema = count_schema();
        let batch_schema = Arc::clone(&schema);
        let run = async move {
            let rows = database.execute_statement(sql.as_str()).await?;
            Ok(RecordBatch::try_new(
                batch_schema,
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(run),
        )))
    }
}
